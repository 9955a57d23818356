/*
 * spamd_parse: the pure half of the spamd client. spamd answers
 * "SPAMD/1.1 0 EX_OK", headers, an empty line and a body (SpamAssassin's
 * spamd/PROTOCOL). Everything in a reply is treated as hostile: lengths
 * are bounded, numbers are parsed by hand (no locale, no overflow), rule
 * names are kept only when they are plain words.
 */
#include "lib/spamd_parse.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* The next line of data[*pos..len) without its end (CRLF or LF). Returns
 * 1 with *line, *n set and *pos moved past it, 0 when no line end is
 * there yet. */
static int spamd_line(const char *data, size_t len, size_t *pos,
		      const char **line, size_t *n)
{
	const char *lf = memchr(data + *pos, '\n', len - *pos);
	size_t l;

	if (lf == NULL)
		return 0;
	l = (size_t)(lf - (data + *pos));
	*line = data + *pos;
	*pos += l + 1;
	if (l > 0 && (*line)[l - 1] == '\r')
		l--;
	*n = l;
	return 1;
}

/* A decimal number at s[*i..n): sign, digits, optional fraction. Returns
 * 0 with *v set and *i moved, -1 when there is none or it is absurd. */
static int spamd_number(const char *s, size_t n, size_t *i, double *v)
{
	double x = 0, scale = 1;
	int neg = 0, digits = 0;

	if (*i < n && (s[*i] == '-' || s[*i] == '+'))
		neg = s[(*i)++] == '-';
	while (*i < n && isdigit((unsigned char)s[*i])) {
		if (++digits > 9)
			return -1;
		x = x * 10 + (s[(*i)++] - '0');
	}
	if (*i < n && s[*i] == '.') {
		int frac = 0;

		(*i)++;
		while (*i < n && isdigit((unsigned char)s[*i])) {
			if (++frac <= 6) {
				scale /= 10;
				x += (s[*i] - '0') * scale;
			}
			(*i)++;
		}
		digits += frac;
	}
	if (digits == 0)
		return -1;
	*v = neg ? -x : x;
	return 0;
}

static void spamd_skip_ws(const char *s, size_t n, size_t *i)
{
	while (*i < n && (s[*i] == ' ' || s[*i] == '\t'))
		(*i)++;
}

/* "True ; 1003.3 / 5.0" */
static int spamd_parse_spam(const char *v, size_t n, struct spamd_reply *r)
{
	size_t i = 0, w;

	spamd_skip_ws(v, n, &i);
	w = i;
	while (i < n && isalpha((unsigned char)v[i]))
		i++;
	w = i - w;
	if ((w == 4 && strncasecmp(v + i - w, "True", 4) == 0) ||
	    (w == 3 && strncasecmp(v + i - w, "Yes", 3) == 0))
		r->spam = 1;
	else if ((w == 5 && strncasecmp(v + i - w, "False", 5) == 0) ||
		 (w == 2 && strncasecmp(v + i - w, "No", 2) == 0))
		r->spam = 0;
	else
		return -1;
	spamd_skip_ws(v, n, &i);
	if (i >= n || v[i] != ';')
		return -1;
	i++;
	spamd_skip_ws(v, n, &i);
	if (spamd_number(v, n, &i, &r->score) < 0)
		return -1;
	spamd_skip_ws(v, n, &i);
	if (i >= n || v[i] != '/')
		return -1;
	i++;
	spamd_skip_ws(v, n, &i);
	if (spamd_number(v, n, &i, &r->threshold) < 0)
		return -1;
	spamd_skip_ws(v, n, &i);
	return i == n ? 0 : -1;
}

/* Appends one rule name to r->symbols, if it is a plain word and fits. */
static void spamd_add_symbol(struct spamd_reply *r, const char *s, size_t n)
{
	size_t have = strlen(r->symbols);

	if (n == 0 || n > 64)
		return;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_')
			return;
	if (have + (have > 0) + n >= sizeof(r->symbols))
		return;
	if (have > 0)
		r->symbols[have++] = ',';
	memcpy(r->symbols + have, s, n);
	r->symbols[have + n] = '\0';
}

/* A SYMBOLS body: "NAME,NAME,...", maybe with a line end. */
static void spamd_parse_symbols(struct spamd_reply *r, const char *b, size_t n)
{
	size_t i = 0;

	while (i < n) {
		size_t start, end;

		while (i < n && (b[i] == ',' || isspace((unsigned char)b[i])))
			i++;
		start = i;
		while (i < n && b[i] != ',' && !isspace((unsigned char)b[i]))
			i++;
		end = i;
		spamd_add_symbol(r, b + start, end - start);
	}
}

/* A REPORT body: after the "---- ----" rule, lines " 1.2 NAME  text";
 * descriptions may continue on lines that start with blanks and no
 * number. */
static void spamd_parse_report(struct spamd_reply *r, const char *b, size_t n)
{
	size_t pos = 0, l;
	const char *line;
	int table = 0;

	while (pos < n) {
		size_t i = 0, s;
		double pts;

		if (spamd_line(b, n, &pos, &line, &l) == 0) {
			line = b + pos; /* the last line, without its end */
			l = n - pos;
			pos = n;
		}

		if (!table) {
			table = l >= 4 && memcmp(line, "----", 4) == 0;
			continue;
		}
		spamd_skip_ws(line, l, &i);
		if (spamd_number(line, l, &i, &pts) < 0)
			continue;
		if (i >= l || (line[i] != ' ' && line[i] != '\t'))
			continue;
		spamd_skip_ws(line, l, &i);
		s = i;
		while (i < l && line[i] != ' ' && line[i] != '\t')
			i++;
		spamd_add_symbol(r, line + s, i - s);
	}
}

int spamd_parse_reply(const char *data, size_t len, int eof,
		      struct spamd_reply *r, const char **error_r)
{
	size_t pos = 0, n, i, clen = 0;
	const char *line;
	int have_clen = 0, have_status = 0;

	memset(r, 0, sizeof(*r));
	if (len > SPAMD_REPLY_MAX) {
		*error_r = "reply too long";
		return -1;
	}
	/* The status line. */
	for (;;) {
		if (spamd_line(data, len, &pos, &line, &n) == 0)
			goto more;
		if (!have_status) {
			size_t m;

			if (n < 8 || memcmp(line, "SPAMD/", 6) != 0) {
				*error_r = "not a spamd reply";
				return -1;
			}
			i = 6;
			while (i < n && line[i] != ' ')
				i++;
			spamd_skip_ws(line, n, &i);
			if (i >= n || !isdigit((unsigned char)line[i])) {
				*error_r = "no status code in the reply";
				return -1;
			}
			while (i < n && isdigit((unsigned char)line[i])) {
				if (r->code > 9999) {
					*error_r = "bad status code";
					return -1;
				}
				r->code = r->code * 10 + (line[i++] - '0');
			}
			spamd_skip_ws(line, n, &i);
			for (m = 0; i < n && m + 1 < sizeof(r->message); i++)
				r->message[m++] =
					isprint((unsigned char)line[i])
						? line[i]
						: '?';
			r->message[m] = '\0';
			have_status = 1;
			if (r->code != 0) {
				*error_r = "spamd refused the request";
				return -1;
			}
			continue;
		}
		if (n == 0)
			break; /* end of the headers */
		{
			const char *colon = memchr(line, ':', n);
			size_t nl, vi;

			if (colon == NULL) {
				*error_r = "bad header line in the reply";
				return -1;
			}
			nl = (size_t)(colon - line);
			vi = nl + 1;
			if (nl == 14 &&
			    strncasecmp(line, "Content-length", 14) == 0) {
				double v;

				spamd_skip_ws(line, n, &vi);
				if (spamd_number(line, n, &vi, &v) < 0 ||
				    v < 0 || v > SPAMD_REPLY_MAX ||
				    v != (double)(size_t)v) {
					*error_r = "bad Content-length";
					return -1;
				}
				clen = (size_t)v;
				have_clen = 1;
			} else if (nl == 4 &&
				   strncasecmp(line, "Spam", 4) == 0) {
				if (spamd_parse_spam(line + vi, n - vi, r) <
				    0) {
					*error_r = "bad Spam: header";
					return -1;
				}
				r->has_score = 1;
			}
		}
	}
	if (have_clen) {
		if (len - pos < clen)
			goto more;
		n = clen;
	} else {
		if (!eof)
			goto more;
		n = len - pos;
	}
	if (!r->has_score) {
		*error_r = "no Spam: header in the reply";
		return -1;
	}
	/* A REPORT body has a rule of dashes before its table. */
	if (memmem(data + pos, n, "\n----", 5) != NULL ||
	    (n >= 4 && memcmp(data + pos, "----", 4) == 0))
		spamd_parse_report(r, data + pos, n);
	else
		spamd_parse_symbols(r, data + pos, n);
	return 1;
more:
	if (eof) {
		*error_r = "reply cut short";
		return -1;
	}
	return 0;
}

int spamd_request_head(const char *command, size_t msg_len, char *out,
		       size_t size)
{
	int n = snprintf(out, size,
			 "%s SPAMC/1.5\r\nContent-length: %zu\r\n\r\n", command,
			 msg_len);

	return n < 0 || (size_t)n >= size ? -1 : n;
}

int spamd_parse_addr(const char *text, struct sockaddr_storage *ss,
		     socklen_t *len_r)
{
	char host[INET6_ADDRSTRLEN];
	const char *port, *colon;
	size_t hl;
	long p = 0;

	memset(ss, 0, sizeof(*ss));
	if (text[0] == '[') {
		const char *close = strchr(text, ']');
		if (close == NULL || close[1] != ':')
			return -1;
		hl = (size_t)(close - text - 1);
		if (hl >= sizeof(host))
			return -1;
		memcpy(host, text + 1, hl);
		port = close + 2;
	} else {
		colon = strrchr(text, ':');
		if (colon == NULL)
			return -1;
		hl = (size_t)(colon - text);
		if (hl >= sizeof(host))
			return -1;
		memcpy(host, text, hl);
		port = colon + 1;
	}
	host[hl] = '\0';
	if (*port == '\0')
		return -1;
	for (const char *c = port; *c != '\0'; c++) {
		if (!isdigit((unsigned char)*c) || p > 65535)
			return -1;
		p = p * 10 + (*c - '0');
	}
	if (p < 1 || p > 65535)
		return -1;
	if (text[0] != '[') {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
		if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
			return -1;
		s4->sin_family = AF_INET;
		s4->sin_port = htons((unsigned short)p);
		*len_r = sizeof(*s4);
		return 0;
	}
	{
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
		if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1)
			return -1;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((unsigned short)p);
		*len_r = sizeof(*s6);
		return 0;
	}
}
