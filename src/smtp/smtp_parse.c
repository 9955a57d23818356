/*
 * smtp_parse: the SMTP command-line parser. Splits a line into verb and
 * arguments, and parses the arguments of MAIL, RCPT and HELO/EHLO into
 * plain structs, or a whole reply line saying what is wrong. Pure: the
 * session feeds it lines already cut at CRLF and acts on the result.
 */
#include "smtp/smtp_parse.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "lib/codec.h"
#include "lib/log.h"

/* The longest parameter text echoed in a reply: enough to recognize it,
 * too short to carry anything (STYLE.md rule 5). */
#define SMTP_PARSE_ECHO_MAX 64

static const struct {
	const char *name;
	size_t len;
	enum smtp_verb verb;
} smtp_verbs[] = {
	{"HELO", 4, SMTP_CMD_HELO},	    {"EHLO", 4, SMTP_CMD_EHLO},
	{"MAIL", 4, SMTP_CMD_MAIL},	    {"RCPT", 4, SMTP_CMD_RCPT},
	{"DATA", 4, SMTP_CMD_DATA},	    {"BDAT", 4, SMTP_CMD_BDAT},
	{"RSET", 4, SMTP_CMD_RSET},	    {"NOOP", 4, SMTP_CMD_NOOP},
	{"QUIT", 4, SMTP_CMD_QUIT},	    {"VRFY", 4, SMTP_CMD_VRFY},
	{"EXPN", 4, SMTP_CMD_EXPN},	    {"HELP", 4, SMTP_CMD_HELP},
	{"STARTTLS", 8, SMTP_CMD_STARTTLS}, {"AUTH", 4, SMTP_CMD_AUTH},
};

static const char smtp_reply_badchar[] =
	"501 5.5.2 Syntax error: bad character in command";
static const char smtp_reply_mail_syntax[] =
	"501 5.5.4 Syntax: MAIL FROM:<address>";
static const char smtp_reply_rcpt_syntax[] =
	"501 5.5.4 Syntax: RCPT TO:<address>";
static const char smtp_reply_bad_sender[] =
	"501 5.1.7 Bad sender address syntax";
static const char smtp_reply_bad_rcpt[] =
	"501 5.1.3 Bad recipient address syntax";
static const char smtp_reply_param_syntax[] =
	"501 5.5.4 Syntax error in parameters";

int smtp_parse_command(const char *line, size_t len, struct smtp_cmd *out)
{
	const char *sp = memchr(line, ' ', len);
	size_t vlen = sp != NULL ? (size_t)(sp - line) : len;

	out->verb = SMTP_CMD_UNKNOWN;
	out->args = NULL;
	out->args_len = 0;
	if (vlen < len && len - vlen - 1 > 0) {
		out->args = line + vlen + 1;
		out->args_len = len - vlen - 1;
	}
	for (size_t i = 0; i < sizeof(smtp_verbs) / sizeof(smtp_verbs[0]);
	     i++) {
		if (smtp_verbs[i].len == vlen &&
		    strncasecmp(smtp_verbs[i].name, line, vlen) == 0) {
			out->verb = smtp_verbs[i].verb;
			return 1;
		}
	}
	return 0;
}

/* STYLE.md rule 7 (Exim's 21Nails): no CR, LF or NUL in any argument, so
 * that nothing a client sends can break a line of queue metadata. */
static int smtp_has_bad_char(const char *s, size_t len)
{
	return memchr(s, '\r', len) != NULL || memchr(s, '\n', len) != NULL ||
	       memchr(s, '\0', len) != NULL;
}

/* esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-") */
static int smtp_keyword_valid(const char *s, size_t n)
{
	if (n == 0 || s[0] == '-')
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '-'))
			return 0;
	}
	return 1;
}

/* esmtp-value = 1*(%d33-60 / %d62-126) */
static int smtp_value_valid(const char *s, size_t n)
{
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 33 || c > 126 || c == '=')
			return 0;
	}
	return 1;
}

/* Builds "<prefix> <param>" into reply, the parameter sanitized and cut. */
static const char *smtp_reply_param(char *reply, const char *prefix,
				    const char *param, size_t n)
{
	char safe[SMTP_PARSE_ECHO_MAX + 8];

	log_sanitize(safe, sizeof(safe), param,
		     n > SMTP_PARSE_ECHO_MAX ? SMTP_PARSE_ECHO_MAX : n);
	snprintf(reply, SMTP_PARSE_REPLY_MAX, "%s %s%s", prefix, safe,
		 n > SMTP_PARSE_ECHO_MAX ? "..." : "");
	return reply;
}

/* SIZE=1*20DIGIT (RFC 1870 6); a value past INT64_MAX saturates there,
 * which the size check then refuses as too big. */
static int smtp_parse_size(const char *v, size_t n, int64_t *out)
{
	int64_t x = 0;

	if (n == 0 || n > 20)
		return -1;
	for (size_t i = 0; i < n; i++) {
		int d;

		if (v[i] < '0' || v[i] > '9')
			return -1;
		d = v[i] - '0';
		if (x > (INT64_MAX - d) / 10)
			x = INT64_MAX;
		else
			x = x * 10 + d;
	}
	*out = x;
	return 0;
}

/*
 * AUTH=<> or AUTH=xtext (RFC 4954 5, xtext of RFC 3461 4): the decoded text
 * must be a mailbox. Writes its normal form ("" for <>) into out.
 */
static int smtp_parse_auth(const char *v, size_t n, char *out, size_t size)
{
	char dec[ADDR_FORMAT_SIZE];
	size_t o = 0;
	struct addr a;
	const char *err;

	if (n == 2 && v[0] == '<' && v[1] == '>') {
		out[0] = '\0';
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v[i];

		if (c == '+') {
			int hi, lo;

			if (i + 2 >= n)
				return -1;
			hi = codec_hex_value(v[i + 1]);
			lo = codec_hex_value(v[i + 2]);
			if (hi < 0 || lo < 0)
				return -1;
			c = (unsigned char)(hi * 16 + lo);
			i += 2;
			/* A decoded control or 8-bit byte is never part of
			 * a mailbox. */
			if (c < 0x20 || c > 0x7e)
				return -1;
		} else if (c < 33 || c > 126 || c == '=') {
			return -1;
		}
		if (o + 1 >= sizeof(dec))
			return -1;
		dec[o++] = (char)c;
	}
	dec[o] = '\0';
	if (addr_parse_mailbox(dec, &a, &err) < 0)
		return -1;
	return addr_format(&a, out, size) < 0 ? -1 : 0;
}

/*
 * "FROM:" / "TO:" and the path after it. Returns the offset just past the
 * path, or -1 with *syntax set when the frame is wrong, or -2 when the
 * path does not parse (*why_r set).
 */
static int smtp_parse_path_arg(const char *args, size_t len, const char *kw,
			       size_t kwlen, int null_ok, struct addr *out,
			       const char **why_r)
{
	size_t p = kwlen;
	int n;

	if (len < kwlen || strncasecmp(args, kw, kwlen) != 0) {
		*why_r = "missing keyword";
		return -1;
	}
	/* Many clients send "FROM: <a@b>"; one space is harmless. */
	if (p < len && args[p] == ' ')
		p++;
	if (p >= len || args[p] != '<') {
		*why_r = "missing <";
		return -1;
	}
	if (!null_ok && len - p >= 12 &&
	    strncasecmp(args + p, "<postmaster>", 12) == 0) {
		/* RFC 5321 4.5.1: must be accepted without a domain. */
		memset(out, 0, sizeof(*out));
		memcpy(out->local, "postmaster", 11);
		return (int)(p + 12);
	}
	n = addr_parse_path(args + p, len - p, null_ok, out, why_r);
	if (n < 0)
		return -2;
	return (int)p + n;
}

/* Splits the next parameter at args[*pos]: skips spaces, then "KEY[=VALUE]".
 * Returns 1 with the parts set, 0 at the end, -1 on bad syntax. */
static int smtp_next_param(const char *args, size_t len, size_t *pos,
			   const char **param, size_t *plen, size_t *klen,
			   const char **val, size_t *vlen)
{
	size_t p = *pos, start;
	const char *eq;

	if (p < len && args[p] != ' ')
		return -1; /* junk right after the path */
	while (p < len && args[p] == ' ')
		p++;
	if (p == len) {
		*pos = p;
		return 0;
	}
	start = p;
	while (p < len && args[p] != ' ')
		p++;
	*param = args + start;
	*plen = p - start;
	*pos = p;
	eq = memchr(*param, '=', *plen);
	*klen = eq != NULL ? (size_t)(eq - *param) : *plen;
	*val = eq != NULL ? eq + 1 : NULL;
	*vlen = eq != NULL ? *plen - *klen - 1 : 0;
	if (!smtp_keyword_valid(*param, *klen) ||
	    (*val != NULL && !smtp_value_valid(*val, *vlen)))
		return -1;
	return 1;
}

static int smtp_keyword_is(const char *k, size_t klen, const char *name)
{
	return strlen(name) == klen && strncasecmp(k, name, klen) == 0;
}

static int smtp_fail(const char **reply_r, const char *reply, const char **why,
		     const char *reason)
{
	*reply_r = reply;
	if (*why == NULL)
		*why = reason;
	return -1;
}

int smtp_parse_mail(const char *args, size_t len, struct smtp_mail_args *out,
		    const char **reply_r)
{
	const char *param, *val, *why = NULL;
	size_t plen, klen, vlen, pos;
	int n, r;

	memset(out, 0, sizeof(*out));
	out->size = -1;
	out->why = NULL;
	if (args == NULL)
		args = "";
	if (smtp_has_bad_char(args, len))
		return smtp_fail(reply_r, smtp_reply_badchar, &out->why,
				 "CR, LF or NUL in arguments");
	n = smtp_parse_path_arg(args, len, "FROM:", 5, 1, &out->from, &why);
	if (n == -1)
		return smtp_fail(reply_r, smtp_reply_mail_syntax, &out->why,
				 why);
	if (n < 0)
		return smtp_fail(reply_r, smtp_reply_bad_sender, &out->why,
				 why);
	pos = (size_t)n;
	while ((r = smtp_next_param(args, len, &pos, &param, &plen, &klen, &val,
				    &vlen)) == 1) {
		if (smtp_keyword_is(param, klen, "SIZE")) {
			if (out->size >= 0)
				goto duplicate;
			if (val == NULL ||
			    smtp_parse_size(val, vlen, &out->size) < 0) {
				out->size = -1;
				goto bad_value;
			}
		} else if (smtp_keyword_is(param, klen, "BODY")) {
			if (out->body != SMTP_BODY_NONE)
				goto duplicate;
			if (val == NULL)
				goto bad_value;
			if (smtp_keyword_is(val, vlen, "7BIT"))
				out->body = SMTP_BODY_7BIT;
			else if (smtp_keyword_is(val, vlen, "8BITMIME"))
				out->body = SMTP_BODY_8BITMIME;
			else /* BINARYMIME needs CHUNKING: not offered. */
				goto unsupported;
		} else if (smtp_keyword_is(param, klen, "AUTH")) {
			if (out->auth_present)
				goto duplicate;
			if (val == NULL ||
			    smtp_parse_auth(val, vlen, out->auth,
					    sizeof(out->auth)) < 0) {
				out->auth[0] = '\0';
				goto bad_value;
			}
			out->auth_present = 1;
		} else {
			/* Including RET= and ENVID=: DSN (RFC 3461) is not
			 * offered, and SMTPUTF8 neither. */
			goto unsupported;
		}
	}
	if (r < 0)
		return smtp_fail(reply_r, smtp_reply_param_syntax, &out->why,
				 "bad parameter syntax");
	return 0;

duplicate:
	return smtp_fail(reply_r,
			 smtp_reply_param(out->reply,
					  "501 5.5.4 Duplicate parameter",
					  param, klen),
			 &out->why, "duplicate parameter");
bad_value:
	return smtp_fail(reply_r,
			 smtp_reply_param(out->reply, "501 5.5.4 Bad parameter",
					  param, plen),
			 &out->why, "bad parameter value");
unsupported:
	return smtp_fail(reply_r,
			 smtp_reply_param(out->reply,
					  "555 5.5.4 Unsupported parameter",
					  param, plen),
			 &out->why, "unsupported parameter");
}

int smtp_parse_rcpt(const char *args, size_t len, struct smtp_rcpt_args *out,
		    const char **reply_r)
{
	const char *param, *val, *why = NULL;
	size_t plen, klen, vlen, pos;
	int n, r;

	memset(out, 0, sizeof(*out));
	out->why = NULL;
	if (args == NULL)
		args = "";
	if (smtp_has_bad_char(args, len))
		return smtp_fail(reply_r, smtp_reply_badchar, &out->why,
				 "CR, LF or NUL in arguments");
	n = smtp_parse_path_arg(args, len, "TO:", 3, 0, &out->to, &why);
	if (n == -1)
		return smtp_fail(reply_r, smtp_reply_rcpt_syntax, &out->why,
				 why);
	if (n < 0)
		return smtp_fail(reply_r, smtp_reply_bad_rcpt, &out->why, why);
	pos = (size_t)n;
	r = smtp_next_param(args, len, &pos, &param, &plen, &klen, &val, &vlen);
	if (r < 0)
		return smtp_fail(reply_r, smtp_reply_param_syntax, &out->why,
				 "bad parameter syntax");
	if (r > 0) /* NOTIFY=, ORCPT= (DSN) and the rest: none offered. */
		return smtp_fail(
			reply_r,
			smtp_reply_param(out->reply,
					 "555 5.5.4 Unsupported parameter",
					 param, plen),
			&out->why, "unsupported parameter");
	return 0;
}

int smtp_parse_helo(const char *args, size_t len, char *out, size_t outsize)
{
	char norm[ADDR_DOMAIN_MAX + 1];
	const char *err;

	if (outsize > 0)
		out[0] = '\0';
	if (args == NULL)
		return 0;
	while (len > 0 && args[len - 1] == ' ')
		len--;
	if (len == 0 || len >= outsize)
		return 0;
	if (args[0] == '[') {
		if (addr_parse_domain(args, len, norm, &err) < 0)
			return 0;
	} else {
		if (len > ADDR_DOMAIN_MAX || memchr(args, '\0', len) != NULL)
			return 0;
		memcpy(norm, args, len);
		norm[len] = '\0';
		if (!addr_domain_valid(norm))
			return 0;
	}
	memcpy(out, args, len);
	out[len] = '\0';
	return 1;
}
