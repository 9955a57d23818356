/*
 * addr: parses RFC 5321 paths and mailboxes into struct addr, and formats
 * them back. Pure: no I/O, no allocation. Strict on purpose (STYLE.md rule
 * 8, validators fail closed): no 8-bit (SMTPUTF8 is not offered), no
 * control characters, no general address literals, a normalized result so
 * that two spellings of one address compare and store alike.
 */
#include "lib/addr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static int addr_is_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9');
}

/* RFC 5322 3.2.3 atext, as RFC 5321 4.1.2 uses it. */
static int addr_is_atext(unsigned char c)
{
	return addr_is_alnum(c) ||
	       (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* Printable US-ASCII or space: what a quoted string may hold. */
static int addr_is_print(unsigned char c)
{
	return c >= 0x20 && c <= 0x7e;
}

/* The error for an unexpected byte: a more useful one for the bytes that
 * never belong in an address. */
static const char *addr_char_error(const char *s, size_t len, size_t pos,
				   const char *otherwise)
{
	unsigned char c;

	if (pos >= len)
		return otherwise;
	c = (unsigned char)s[pos];
	if (c >= 0x80)
		return "8-bit character in address";
	if (c < 0x20 || c == 0x7f)
		return "control character in address";
	return otherwise;
}

/* RFC 5321 4.1.2 Dot-string: atoms of atext joined by single dots. */
static int addr_dot_string_valid(const char *s, size_t n)
{
	if (n == 0 || s[0] == '.' || s[n - 1] == '.')
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '.' ? s[i + 1] == '.' : !addr_is_atext(c))
			return 0;
	}
	return 1;
}

/* RFC 5321 4.1.2 Domain as sub-domains of Let-dig [Ldh-str], with the
 * length limits of RFC 1035 2.3.4. */
static int addr_name_valid(const char *s, size_t n)
{
	size_t label = 0;

	if (n == 0 || n > ADDR_DOMAIN_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return 0;
			label = 0;
			continue;
		}
		if (!addr_is_alnum(c) && (c != '-' || label == 0))
			return 0;
		if (++label > ADDR_LABEL_MAX)
			return 0;
	}
	return label > 0 && s[n - 1] != '-';
}

int addr_domain_valid(const char *domain)
{
	return addr_name_valid(domain, strlen(domain));
}

/*
 * Local-part = Dot-string / Quoted-string at s[*pos]. A quoted string whose
 * content is a valid Dot-string is stored unquoted; any other is stored in
 * canonical quoted form, so that equal addresses are equal strings.
 */
static int addr_parse_local(const char *s, size_t len, size_t *pos, char *out,
			    const char **error_r)
{
	char content[ADDR_LOCAL_MAX + 1];
	size_t p = *pos, n = 0, o = 0;

	if (p < len && s[p] != '"') {
		while (p < len &&
		       (addr_is_atext((unsigned char)s[p]) || s[p] == '.'))
			p++;
		n = p - *pos;
		if (n == 0) {
			*error_r = addr_char_error(s, len, p,
						   "missing local part");
			return -1;
		}
		if (n > ADDR_LOCAL_MAX) {
			*error_r = "local part too long";
			return -1;
		}
		if (!addr_dot_string_valid(s + *pos, n)) {
			*error_r = "bad local part";
			return -1;
		}
		memcpy(out, s + *pos, n);
		out[n] = '\0';
		*pos = p;
		return 0;
	}
	if (p >= len) {
		*error_r = "missing local part";
		return -1;
	}

	/* RFC 5321 4.1.2 Quoted-string: qtextSMTP and quoted-pairSMTP. */
	for (p++;; p++) {
		unsigned char c;

		if (p >= len) {
			*error_r = "unterminated quoted string";
			return -1;
		}
		c = (unsigned char)s[p];
		if (c == '"')
			break;
		if (c == '\\') {
			p++;
			if (p >= len) {
				*error_r = "unterminated quoted string";
				return -1;
			}
			c = (unsigned char)s[p];
		}
		if (!addr_is_print(c)) {
			*error_r = addr_char_error(
				s, len, p, "bad character in local part");
			return -1;
		}
		if (n == ADDR_LOCAL_MAX) {
			*error_r = "local part too long";
			return -1;
		}
		content[n++] = (char)c;
	}
	*pos = p + 1;
	if (n == 0) {
		/* Legal in RFC 5321, but no account has an empty name and
		 * an empty one breaks paths built from it: fail closed. */
		*error_r = "empty local part";
		return -1;
	}
	if (addr_dot_string_valid(content, n)) {
		memcpy(out, content, n);
		out[n] = '\0';
		return 0;
	}
	out[o++] = '"';
	for (size_t i = 0; i < n; i++) {
		int esc = content[i] == '"' || content[i] == '\\';

		/* This character, the closing quote and the NUL. */
		if (o + (size_t)esc + 3 > ADDR_LOCAL_MAX + 1) {
			*error_r = "local part too long";
			return -1;
		}
		if (esc)
			out[o++] = '\\';
		out[o++] = content[i];
	}
	out[o++] = '"';
	out[o] = '\0';
	return 0;
}

/* address-literal = "[" ( IPv4 / "IPv6:" IPv6 ) "]" (RFC 5321 4.1.3),
 * written back in inet_ntop's normal form. General literals: refused. */
static int addr_parse_literal(const char *s, size_t len, size_t *pos, char *out,
			      size_t outsize, const char **error_r)
{
	char text[INET6_ADDRSTRLEN + 8];
	char norm[INET6_ADDRSTRLEN];
	unsigned char bin[sizeof(struct in6_addr)];
	size_t p = *pos + 1, n;
	int v6;

	while (p < len && s[p] != ']' && addr_is_print((unsigned char)s[p]) &&
	       s[p] != ' ' && s[p] != '[' && s[p] != '\\')
		p++;
	if (p >= len || s[p] != ']') {
		*error_r = addr_char_error(s, len, p, "bad address literal");
		return -1;
	}
	n = p - (*pos + 1);
	if (n >= sizeof(text)) {
		*error_r = "bad address literal";
		return -1;
	}
	memcpy(text, s + *pos + 1, n);
	text[n] = '\0';
	v6 = n > 5 && strncasecmp(text, "IPv6:", 5) == 0;
	if (!v6 && strspn(text, "0123456789.") != n) {
		*error_r = "unsupported address literal";
		return -1;
	}
	if (inet_pton(v6 ? AF_INET6 : AF_INET, v6 ? text + 5 : text, bin) !=
		    1 ||
	    inet_ntop(v6 ? AF_INET6 : AF_INET, bin, norm, sizeof(norm)) ==
		    NULL) {
		*error_r = "bad address literal";
		return -1;
	}
	n = (size_t)snprintf(out, outsize, "[%s%s]", v6 ? "IPv6:" : "", norm);
	if (n >= outsize) {
		*error_r = "bad address literal";
		return -1;
	}
	*pos = p + 1;
	return 0;
}

/* Domain / address-literal at s[*pos], into out (ADDR_DOMAIN_MAX + 1
 * bytes), names lower-cased. */
static int addr_domain_at(const char *s, size_t len, size_t *pos, char *out,
			  const char **error_r)
{
	size_t p = *pos, n;

	if (p < len && s[p] == '[')
		return addr_parse_literal(s, len, pos, out, ADDR_DOMAIN_MAX + 1,
					  error_r);
	while (p < len && (addr_is_alnum((unsigned char)s[p]) || s[p] == '-' ||
			   s[p] == '.'))
		p++;
	n = p - *pos;
	if (n == 0) {
		*error_r = addr_char_error(s, len, p, "missing domain");
		return -1;
	}
	if (n > ADDR_DOMAIN_MAX) {
		*error_r = "domain too long";
		return -1;
	}
	if (!addr_name_valid(s + *pos, n)) {
		*error_r = "bad domain";
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		char c = s[*pos + i];

		out[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
	}
	out[n] = '\0';
	*pos = p;
	return 0;
}

/* Mailbox = Local-part "@" ( Domain / address-literal ). */
static int addr_parse_mailbox_at(const char *s, size_t len, size_t *pos,
				 struct addr *out, const char **error_r)
{
	if (addr_parse_local(s, len, pos, out->local, error_r) < 0)
		return -1;
	if (*pos >= len || s[*pos] != '@') {
		*error_r = addr_char_error(s, len, *pos,
					   *pos >= len || s[*pos] == '>'
						   ? "missing domain"
						   : "bad local part");
		return -1;
	}
	(*pos)++;
	return addr_domain_at(s, len, pos, out->domain, error_r);
}

int addr_parse_path(const char *s, size_t len, int null_ok, struct addr *out,
		    const char **error_r)
{
	struct addr tmp;
	size_t pos = 1;

	memset(out, 0, sizeof(*out));
	if (len == 0 || s[0] != '<') {
		*error_r = "missing <";
		return -1;
	}
	if (len > 1 && s[1] == '>') {
		if (!null_ok) {
			*error_r = "null path not allowed";
			return -1;
		}
		return 2;
	}
	/* RFC 5321 4.1.2 A-d-l, obsolete: parsed, then dropped (C.2). */
	if (pos < len && s[pos] == '@') {
		for (;;) {
			pos++;
			if (addr_domain_at(s, len, &pos, tmp.domain, error_r) <
			    0)
				return -1;
			if (pos < len && s[pos] == ',' && pos + 1 < len &&
			    s[pos + 1] == '@') {
				pos++;
				continue;
			}
			if (pos < len && s[pos] == ':') {
				pos++;
				break;
			}
			*error_r = addr_char_error(s, len, pos,
						   "bad source route");
			return -1;
		}
	}
	if (addr_parse_mailbox_at(s, len, &pos, &tmp, error_r) < 0)
		return -1;
	if (pos >= len || s[pos] != '>') {
		*error_r = addr_char_error(
			s, len, pos,
			pos >= len ? "missing >" : "bad character in domain");
		return -1;
	}
	*out = tmp;
	return (int)(pos + 1);
}

int addr_parse_mailbox(const char *s, struct addr *out, const char **error_r)
{
	struct addr tmp;
	size_t len = strlen(s), pos = 0;

	memset(out, 0, sizeof(*out));
	if (addr_parse_mailbox_at(s, len, &pos, &tmp, error_r) < 0)
		return -1;
	if (pos != len) {
		*error_r =
			addr_char_error(s, len, pos, "bad character in domain");
		return -1;
	}
	*out = tmp;
	return 0;
}

int addr_parse_domain(const char *s, size_t len, char *out,
		      const char **error_r)
{
	size_t pos = 0;

	if (addr_domain_at(s, len, &pos, out, error_r) < 0) {
		out[0] = '\0';
		return -1;
	}
	if (pos != len) {
		*error_r = addr_char_error(s, len, pos, "bad domain");
		out[0] = '\0';
		return -1;
	}
	return 0;
}

int addr_format(const struct addr *a, char *out, size_t size)
{
	int n;

	if (a->domain[0] == '\0')
		n = snprintf(out, size, "%s", a->local);
	else
		n = snprintf(out, size, "%s@%s", a->local, a->domain);
	if (n < 0 || (size_t)n >= size) {
		if (size > 0)
			out[0] = '\0';
		return -1;
	}
	return n;
}

int addr_is_null(const struct addr *a)
{
	return a->local[0] == '\0' && a->domain[0] == '\0';
}

int addr_equal(const struct addr *a, const struct addr *b)
{
	return strcasecmp(a->local, b->local) == 0 &&
	       strcasecmp(a->domain, b->domain) == 0;
}
