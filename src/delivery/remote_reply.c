/*
 * remote_reply: parses what a remote SMTP server answers, line by line,
 * with every length bounded before it is trusted: the code must be three
 * digits and stay the same over a multi-line reply, a reply has at most
 * REMOTE_REPLY_LINES_MAX lines, and only REMOTE_REPLY_TEXT_MAX bytes of
 * text are kept. Also reads the EHLO keywords. Pure.
 */
#include "delivery/remote_reply.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void remote_reply_init(struct remote_reply *r)
{
	memset(r, 0, sizeof(*r));
}

/* Is s[0..len) an enhanced status code "c.sss.ddd" (RFC 3463) of class
 * `cls`, followed by a space or the end? Returns its length or 0. */
static size_t remote_reply_enhanced(const char *s, size_t len, char cls)
{
	size_t i = 0, n;

	if (len < 5 || s[0] != cls || s[1] != '.')
		return 0;
	i = 2;
	for (int part = 0; part < 2; part++) {
		for (n = 0; i < len && n < 4 && isdigit((unsigned char)s[i]);
		     n++)
			i++;
		if (n == 0 || n > 3)
			return 0;
		if (part == 0) {
			if (i >= len || s[i] != '.')
				return 0;
			i++;
		}
	}
	if (i < len && s[i] != ' ')
		return 0;
	return i;
}

static void remote_reply_text(struct remote_reply *r, const char *s, size_t len)
{
	if (r->lines > 1 && r->text_len < REMOTE_REPLY_TEXT_MAX)
		r->text[r->text_len++] = '\n';
	for (size_t i = 0; i < len && r->text_len < REMOTE_REPLY_TEXT_MAX;
	     i++) {
		unsigned char c = (unsigned char)s[i];

		r->text[r->text_len++] =
			(c < 0x20 || c >= 0x7f) ? '?' : (char)c;
	}
	r->text[r->text_len] = '\0';
}

int remote_reply_feed(struct remote_reply *r, const char *line, size_t len,
		      const char **error_r)
{
	int code;
	char sep;

	if (r->done) {
		*error_r = "reply already complete";
		return -1;
	}
	if (len > REMOTE_REPLY_LINE_MAX) {
		*error_r = "reply line too long";
		return -1;
	}
	if (r->lines >= REMOTE_REPLY_LINES_MAX) {
		*error_r = "reply has too many lines";
		return -1;
	}
	if (len < 3 || line[0] < '2' || line[0] > '5' ||
	    !isdigit((unsigned char)line[1]) ||
	    !isdigit((unsigned char)line[2])) {
		*error_r = "malformed reply (no reply code)";
		return -1;
	}
	sep = len > 3 ? line[3] : ' ';
	if (sep != ' ' && sep != '-') {
		*error_r =
			"malformed reply (no space or hyphen after the code)";
		return -1;
	}
	code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if (r->lines > 0 && code != r->code) {
		*error_r = "reply code changes within a multi-line reply";
		return -1;
	}
	r->code = code;
	r->lines++;
	line += len > 3 ? 4 : 3;
	len -= len > 3 ? 4 : 3;
	if (r->lines == 1) {
		size_t n = remote_reply_enhanced(line, len,
						 (char)('0' + code / 100));

		if (n > 0 && n < sizeof(r->enhanced)) {
			memcpy(r->enhanced, line, n);
			r->enhanced[n] = '\0';
		}
	}
	remote_reply_text(r, line, len);
	if (sep == ' ') {
		r->done = 1;
		return 1;
	}
	return 0;
}

char *remote_reply_summary(const struct remote_reply *r, char *out, size_t size)
{
	size_t o = 0;
	int n;

	if (size == 0)
		return out;
	n = snprintf(out, size, "%03d", r->code);
	o = n > 0 && (size_t)n < size ? (size_t)n : size - 1;
	if (r->text_len > 0 && o + 1 < size)
		out[o++] = ' ';
	for (size_t i = 0; i < r->text_len && o + 1 < size; i++)
		out[o++] = r->text[i] == '\n' ? ' ' : r->text[i];
	out[o] = '\0';
	return out;
}

/* Does the line l (length n) start with keyword kw, then a space or the
 * end? */
static int remote_ehlo_kw(const char *l, size_t n, const char *kw)
{
	size_t k = strlen(kw);

	return n >= k && strncasecmp(l, kw, k) == 0 && (n == k || l[k] == ' ');
}

void remote_ehlo_parse(const struct remote_reply *r, struct remote_ehlo *e)
{
	const char *p = r->text, *end = r->text + r->text_len;

	memset(e, 0, sizeof(*e));
	if (r->code != 250)
		return;
	/* The first line is the server's name and greeting. */
	p = memchr(p, '\n', (size_t)(end - p));
	while (p != NULL && p < end) {
		const char *l = p + 1, *nl = memchr(l, '\n', (size_t)(end - l));
		size_t n = (size_t)((nl != NULL ? nl : end) - l);

		if (remote_ehlo_kw(l, n, "PIPELINING")) {
			e->pipelining = 1;
		} else if (remote_ehlo_kw(l, n, "8BITMIME")) {
			e->eightbitmime = 1;
		} else if (remote_ehlo_kw(l, n, "STARTTLS")) {
			e->starttls = 1;
		} else if (remote_ehlo_kw(l, n, "SMTPUTF8")) {
			e->smtputf8 = 1;
		} else if (remote_ehlo_kw(l, n, "SIZE")) {
			e->size = 1;
			e->size_max = 0;
			if (n > 5) {
				char num[24];
				size_t k = n - 5 < sizeof(num) - 1
						   ? n - 5
						   : sizeof(num) - 1;
				char *stop;
				unsigned long long v;

				memcpy(num, l + 5, k);
				num[k] = '\0';
				v = strtoull(num, &stop, 10);
				if (stop != num && *stop == '\0' &&
				    isdigit((unsigned char)num[0]))
					e->size_max = v;
			}
		} else if (remote_ehlo_kw(l, n, "AUTH") ||
			   (n > 5 && strncasecmp(l, "AUTH=", 5) == 0)) {
			/* "AUTH PLAIN LOGIN", or the old "AUTH=PLAIN". */
			for (size_t i = 5; i < n;) {
				size_t w = 0;

				while (i + w < n && l[i + w] != ' ')
					w++;
				if (w == 5 &&
				    strncasecmp(l + i, "PLAIN", 5) == 0)
					e->auth_plain = 1;
				if (w == 5 &&
				    strncasecmp(l + i, "LOGIN", 5) == 0)
					e->auth_login = 1;
				i += w + 1;
			}
		}
		p = nl;
	}
}
