/*
 * filter_parse: reads the rule file format of docs/filter.md, a line at a
 * time: "rule \"name\"" opens a rule, "end" closes it, and each line in
 * between starts with a keyword (description, enabled, scope, match, if,
 * then, or a field of the note above it). Values are quoted strings with
 * \" \\ \n \t \xNN escapes. Every error names its line and what was
 * expected there. Owns nothing: the rules it makes belong to the caller.
 */
#include "filter/filter_parse.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "lib/codec.h"
#include "lib/addr.h"
#include "lib/netlist.h"

#define FILTER_TOKENS_MAX 16

struct filter_token {
	int quoted;
	char *s; /* NUL-terminated; owned */
	size_t len;
};

struct filter_parser {
	const char *text;
	size_t len, pos;
	unsigned line;
	struct filter_token tok[FILTER_TOKENS_MAX];
	size_t ntok;
	char *error;
	size_t errsize;
};

static int filter_fail(struct filter_parser *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int filter_fail(struct filter_parser *p, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(p->error, p->errsize, "line %u: %s", p->line, msg);
	return -1;
}

static void filter_tokens_free(struct filter_parser *p)
{
	for (size_t i = 0; i < p->ntok; i++)
		free(p->tok[i].s);
	p->ntok = 0;
}

/* Reads a quoted string at line[*i] (the opening quote) into a new token.
 * Returns 0, or -1 with the error set. */
static int filter_read_quoted(struct filter_parser *p, const char *line,
			      size_t n, size_t *i, struct filter_token *t)
{
	struct buf b;
	size_t k = *i + 1;

	buf_init(&b, FILTER_VALUE_MAX);
	for (;;) {
		unsigned char c;
		char out;

		if (k >= n) {
			buf_deinit(&b);
			return filter_fail(p, "expected '\"' to close the "
					      "string");
		}
		c = (unsigned char)line[k++];
		if (c == '"')
			break;
		if (c < 0x20 || c == 0x7f) {
			buf_deinit(&b);
			return filter_fail(p, "expected no control character "
					      "in a string (write \\n or \\t)");
		}
		out = (char)c;
		if (c == '\\') {
			int h1, h2;

			if (k >= n) {
				buf_deinit(&b);
				return filter_fail(p, "expected a character "
						      "after '\\'");
			}
			c = (unsigned char)line[k++];
			if (c == 'n')
				out = '\n';
			else if (c == 't')
				out = '\t';
			else if (c == '"' || c == '\\')
				out = (char)c;
			else if (c == 'x' && k + 1 < n &&
				 (h1 = codec_hex_value(line[k])) >= 0 &&
				 (h2 = codec_hex_value(line[k + 1])) >= 0 &&
				 (h1 | h2) != 0) {
				out = (char)(h1 * 16 + h2);
				k += 2;
			} else {
				buf_deinit(&b);
				return filter_fail(p,
						   "expected \\n, \\t, \\\", "
						   "\\\\ or \\xNN (not NUL) "
						   "after '\\'");
			}
		}
		if (buf_append(&b, &out, 1) < 0) {
			buf_deinit(&b);
			return filter_fail(p,
					   "expected a string of at most "
					   "%d bytes",
					   FILTER_VALUE_MAX);
		}
	}
	t->quoted = 1;
	t->len = b.len;
	t->s = buf_steal(&b);
	buf_deinit(&b);
	if (t->s == NULL)
		return filter_fail(p, "out of memory");
	*i = k;
	return 0;
}

/*
 * Reads the next line that is not blank or a comment into p->tok.
 * Returns 1, 0 at the end of the text, -1 with the error set.
 */
static int filter_next_line(struct filter_parser *p)
{
	filter_tokens_free(p);
	while (p->pos < p->len) {
		const char *line = p->text + p->pos;
		const char *nl = memchr(line, '\n', p->len - p->pos);
		size_t n = nl != NULL ? (size_t)(nl - line) : p->len - p->pos;
		size_t i = 0;

		p->pos += n + (nl != NULL);
		p->line++;
		if (n > 0 && line[n - 1] == '\r')
			n--;
		while (i < n) {
			struct filter_token *t;
			size_t start;

			if (line[i] == ' ' || line[i] == '\t') {
				i++;
				continue;
			}
			if (line[i] == '#' && p->ntok == 0)
				break;
			if (p->ntok == FILTER_TOKENS_MAX) {
				filter_tokens_free(p);
				return filter_fail(p,
						   "expected at most %d "
						   "words on a line",
						   FILTER_TOKENS_MAX);
			}
			t = &p->tok[p->ntok];
			if (line[i] == '"') {
				if (filter_read_quoted(p, line, n, &i, t) < 0) {
					filter_tokens_free(p);
					return -1;
				}
				p->ntok++;
				continue;
			}
			start = i;
			while (i < n && line[i] != ' ' && line[i] != '\t' &&
			       line[i] != '"') {
				unsigned char c = (unsigned char)line[i];
				if (c < 0x20 || c >= 0x7f) {
					filter_tokens_free(p);
					return filter_fail(
						p,
						"expected a keyword, a number "
						"or a quoted string");
				}
				i++;
			}
			t->quoted = 0;
			t->len = i - start;
			t->s = strndup(line + start, t->len);
			if (t->s == NULL) {
				filter_tokens_free(p);
				return filter_fail(p, "out of memory");
			}
			p->ntok++;
		}
		if (p->ntok > 0)
			return 1;
	}
	return 0;
}

/* 1 when token i is the keyword w. */
static int filter_is(const struct filter_parser *p, size_t i, const char *w)
{
	return i < p->ntok && !p->tok[i].quoted && strcmp(p->tok[i].s, w) == 0;
}

/* Takes the string of token i (must be quoted, non-empty); NULL after
 * setting the error ("expected <what>"). */
static char *filter_take_string(struct filter_parser *p, size_t i,
				const char *what)
{
	char *s;

	if (i >= p->ntok || !p->tok[i].quoted) {
		filter_fail(p, "expected %s in quotes", what);
		return NULL;
	}
	s = p->tok[i].s;
	p->tok[i].s = NULL;
	return s;
}

/* Fails unless the line has exactly n tokens. */
static int filter_line_ends(struct filter_parser *p, size_t n)
{
	if (p->ntok > n)
		return filter_fail(p,
				   "expected the end of the line after "
				   "'%s'",
				   p->tok[n - 1].quoted ? "\"...\""
							: p->tok[n - 1].s);
	return 0;
}

static int filter_parse_number(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!isdigit((unsigned char)s[0]) || strlen(s) > 19)
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (*end != '\0' || errno != 0 || v > max)
		return -1;
	*out = v;
	return 0;
}

static int filter_valid_group(const char *g)
{
	size_t n = strlen(g);

	if (n == 0 || n > 64)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)g[i]) && !strchr("._-", g[i]))
			return 0;
	return 1;
}

/* A header field name: 1*ftext (RFC 5322 2.2), at most 100 bytes. */
static int filter_valid_field(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 100)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 33 || c > 126 || c == ':')
			return 0;
	}
	return 1;
}

/* A wildcard pattern of printable ASCII without spaces or controls. */
static int filter_valid_pattern(const char *s)
{
	if (*s == '\0' || strlen(s) > 1000)
		return 0;
	for (; *s != '\0'; s++)
		if ((unsigned char)*s <= 32 || (unsigned char)*s >= 127)
			return 0;
	return 1;
}

static int filter_has_ctl(const char *s, int allow_lf)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c < 0x20 && c != '\t' && !(allow_lf && c == '\n')) ||
		    c == 0x7f)
			return 1;
	}
	return 0;
}

static int filter_check_regex(struct filter_parser *p, const char *re,
			      int case_sensitive)
{
	int err;
	PCRE2_SIZE off;
	pcre2_code *code;
	uint32_t opts = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF;

	if (!case_sensitive)
		opts |= PCRE2_CASELESS;
	code = pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED, opts, &err,
			     &off, NULL);
	if (code == NULL) {
		PCRE2_UCHAR msg[128];

		pcre2_get_error_message(err, msg, sizeof(msg));
		return filter_fail(p,
				   "expected a regular expression (PCRE2): %s "
				   "at offset %zu",
				   (const char *)msg, (size_t)off);
	}
	pcre2_code_free(code);
	return 0;
}

/* A list of addresses "a@b, c@d" (copy-to, redirect-to). */
static int filter_check_addresses(struct filter_parser *p, const char *list)
{
	const char *s = list;
	size_t count = 0;

	for (;;) {
		char one[ADDR_FORMAT_SIZE];
		struct addr a;
		const char *err;
		size_t n;

		while (*s == ' ' || *s == ',')
			s++;
		if (*s == '\0')
			break;
		n = strcspn(s, ", ");
		if (n >= sizeof(one))
			return filter_fail(p,
					   "expected addresses of at "
					   "most %d bytes",
					   ADDR_FORMAT_SIZE - 1);
		memcpy(one, s, n);
		one[n] = '\0';
		if (addr_parse_mailbox(one, &a, &err) < 0 ||
		    a.domain[0] == '\0')
			return filter_fail(p,
					   "expected an address like "
					   "user@example.com, not '%.60s' (%s)",
					   one,
					   err != NULL ? err : "no domain");
		count++;
		s += n;
	}
	if (count == 0 || count > 100)
		return filter_fail(p, "expected 1 to 100 addresses separated "
				      "by commas");
	return 0;
}

/* "if [not] ..." of the current line into c. */
static int filter_parse_cond(struct filter_parser *p, struct filter_cond *c)
{
	size_t i = 1, n;

	memset(c, 0, sizeof(*c));
	if (filter_is(p, i, "not")) {
		c->negate = 1;
		i++;
	}
	if (i >= p->ntok || p->tok[i].quoted)
		return filter_fail(p, "expected a condition after 'if'");
	/* A trailing "case-sensitive" is read for the kinds that take it. */
	n = p->ntok;
	if (n > i + 1 && !p->tok[n - 1].quoted &&
	    strcmp(p->tok[n - 1].s, "case-sensitive") == 0) {
		c->case_sensitive = 1;
		n--;
	}
	if (filter_is(p, i, "all-messages")) {
		c->kind = FILTER_COND_ALL;
		n = i + 1;
	} else if (filter_is(p, i, "has-attachment")) {
		c->kind = FILTER_COND_HAS_ATTACHMENT;
		n = i + 1;
	} else if (filter_is(p, i, "authenticated")) {
		c->kind = FILTER_COND_AUTHENTICATED;
		n = i + 1;
	} else if (filter_is(p, i, "size")) {
		uint64_t v;

		if (filter_is(p, i + 1, ">"))
			c->kind = FILTER_COND_SIZE_OVER;
		else if (filter_is(p, i + 1, "<"))
			c->kind = FILTER_COND_SIZE_UNDER;
		else
			return filter_fail(p, "expected '>' or '<' after "
					      "'size'");
		if (i + 2 >= p->ntok || p->tok[i + 2].quoted ||
		    filter_parse_number(p->tok[i + 2].s, 1ULL << 40, &v) < 0)
			return filter_fail(p,
					   "expected a whole number after "
					   "'size %s'",
					   p->tok[i + 1].s);
		c->amount = v;
		if (filter_is(p, i + 3, "B"))
			c->unit = FILTER_UNIT_B;
		else if (filter_is(p, i + 3, "KB"))
			c->unit = FILTER_UNIT_KB;
		else if (filter_is(p, i + 3, "MB"))
			c->unit = FILTER_UNIT_MB;
		else
			return filter_fail(p, "expected B, KB or MB after the "
					      "size");
		n = i + 4;
	} else if (filter_is(p, i, "spam-score")) {
		const char *s;
		int dot = 0, ok;

		if (!filter_is(p, i + 1, ">"))
			return filter_fail(p, "expected '>' after "
					      "'spam-score'");
		s = i + 2 < p->ntok && !p->tok[i + 2].quoted ? p->tok[i + 2].s
							     : "";
		ok = isdigit((unsigned char)s[0]) && strlen(s) <= 12;
		for (const char *q = s; ok && *q != '\0'; q++) {
			if (*q == '.' && !dot && isdigit((unsigned char)q[1]))
				dot = 1;
			else if (!isdigit((unsigned char)*q))
				ok = 0;
		}
		if (!ok)
			return filter_fail(p, "expected a score like 5 or 7.5 "
					      "after 'spam-score >'");
		c->kind = FILTER_COND_SPAM_SCORE;
		c->value = p->tok[i + 2].s;
		p->tok[i + 2].s = NULL;
		n = i + 3;
	} else if (filter_is(p, i, "sender") || filter_is(p, i, "recipient")) {
		int snd = filter_is(p, i, "sender");

		if (filter_is(p, i + 1, "in-group")) {
			c->kind = snd ? FILTER_COND_SENDER_GROUP
				      : FILTER_COND_RCPT_GROUP;
			if ((c->value = filter_take_string(
				     p, i + 2, "a group name")) == NULL)
				return -1;
			if (!filter_valid_group(c->value))
				return filter_fail(p,
						   "expected a group name of "
						   "1 to 64 letters, digits, "
						   "'.', '_' or '-'");
		} else if (filter_is(p, i + 1, "is")) {
			c->kind = snd ? FILTER_COND_SENDER_IS
				      : FILTER_COND_RCPT_IS;
			if ((c->value = filter_take_string(
				     p, i + 2, "an address pattern")) == NULL)
				return -1;
			if (!filter_valid_pattern(c->value))
				return filter_fail(p, "expected an address "
						      "pattern like "
						      "*@example.com");
		} else {
			return filter_fail(p,
					   "expected 'in-group' or 'is' "
					   "after '%s'",
					   snd ? "sender" : "recipient");
		}
		n = i + 3;
	} else if (filter_is(p, i, "sender-domain") ||
		   filter_is(p, i, "recipient-domain")) {
		c->kind = filter_is(p, i, "sender-domain")
				  ? FILTER_COND_SENDER_DOMAIN
				  : FILTER_COND_RCPT_DOMAIN;
		if (!filter_is(p, i + 1, "is"))
			return filter_fail(p, "expected 'is' after '%s'",
					   p->tok[i].s);
		if ((c->value = filter_take_string(p, i + 2,
						   "a domain pattern")) == NULL)
			return -1;
		if (!filter_valid_pattern(c->value))
			return filter_fail(p, "expected a domain pattern like "
					      "*.example.com");
		n = i + 3;
	} else if (filter_is(p, i, "header")) {
		if ((c->name = filter_take_string(
			     p, i + 1, "a header field name")) == NULL)
			return -1;
		if (strcmp(c->name, "*") != 0 && !filter_valid_field(c->name))
			return filter_fail(p, "expected a header field name "
					      "(or \"*\" for any)");
		if (filter_is(p, i + 2, "contains"))
			c->kind = FILTER_COND_HEADER_CONTAINS;
		else if (filter_is(p, i + 2, "matches"))
			c->kind = FILTER_COND_HEADER_MATCHES;
		else
			return filter_fail(p, "expected 'contains' or "
					      "'matches' after the field "
					      "name");
		if ((c->value = filter_take_string(p, i + 3, "the text")) ==
		    NULL)
			return -1;
		n = i + 4;
	} else if (filter_is(p, i, "body")) {
		if (filter_is(p, i + 1, "contains"))
			c->kind = FILTER_COND_BODY_CONTAINS;
		else if (filter_is(p, i + 1, "matches"))
			c->kind = FILTER_COND_BODY_MATCHES;
		else
			return filter_fail(p, "expected 'contains' or "
					      "'matches' after 'body'");
		if ((c->value = filter_take_string(p, i + 2, "the text")) ==
		    NULL)
			return -1;
		n = i + 3;
	} else if (filter_is(p, i, "attachment-name") ||
		   filter_is(p, i, "attachment-type")) {
		c->kind = filter_is(p, i, "attachment-name")
				  ? FILTER_COND_ATTACHMENT_NAME
				  : FILTER_COND_ATTACHMENT_TYPE;
		if (!filter_is(p, i + 1, "is"))
			return filter_fail(p, "expected 'is' after '%s'",
					   p->tok[i].s);
		if ((c->value = filter_take_string(p, i + 2, "a pattern")) ==
		    NULL)
			return -1;
		if (c->value[0] == '\0' || filter_has_ctl(c->value, 0))
			return filter_fail(p, "expected a pattern like "
					      "*.exe");
		n = i + 3;
	} else if (filter_is(p, i, "client-ip")) {
		struct netlist l = {0};
		const char *bad, *err;
		size_t badlen;

		c->kind = FILTER_COND_CLIENT_IP;
		if (!filter_is(p, i + 1, "in"))
			return filter_fail(p, "expected 'in' after "
					      "'client-ip'");
		if ((c->value = filter_take_string(
			     p, i + 2, "a list of IPs and CIDRs")) == NULL)
			return -1;
		if (netlist_parse(&l, c->value, NULL, NULL, &bad, &badlen,
				  &err) < 0 ||
		    l.n == 0) {
			netlist_clear(&l);
			return filter_fail(p, "expected IPs or CIDRs like "
					      "10.0.0.0/8, 2001:db8::/32");
		}
		netlist_clear(&l);
		n = i + 3;
	} else {
		return filter_fail(p,
				   "expected a condition (size, sender, "
				   "recipient, header, body, ...), not "
				   "'%.40s'",
				   p->tok[i].s);
	}
	if (c->case_sensitive && c->kind != FILTER_COND_HEADER_CONTAINS &&
	    c->kind != FILTER_COND_HEADER_MATCHES &&
	    c->kind != FILTER_COND_BODY_CONTAINS &&
	    c->kind != FILTER_COND_BODY_MATCHES)
		return filter_fail(p, "expected 'case-sensitive' only after "
				      "'contains' or 'matches'");
	if (c->case_sensitive)
		n++;
	if (filter_line_ends(p, n) < 0)
		return -1;
	if ((c->kind == FILTER_COND_HEADER_CONTAINS ||
	     c->kind == FILTER_COND_BODY_CONTAINS) &&
	    c->value[0] == '\0')
		return filter_fail(p, "expected a text that is not empty");
	if ((c->kind == FILTER_COND_HEADER_MATCHES ||
	     c->kind == FILTER_COND_BODY_MATCHES) &&
	    filter_check_regex(p, c->value, c->case_sensitive) < 0)
		return -1;
	return 0;
}

/* The fields of a note: "to", "from", "subject", "text" with a string,
 * "attach-original" alone; from token i of the current line on. */
static int filter_parse_note_fields(struct filter_parser *p, size_t i,
				    struct filter_action *a)
{
	while (i < p->ntok) {
		char **slot = NULL;
		const char *w = p->tok[i].s;

		if (filter_is(p, i, "attach-original")) {
			a->attach = 1;
			i++;
			continue;
		}
		if (filter_is(p, i, "to"))
			slot = &a->a;
		else if (filter_is(p, i, "from"))
			slot = &a->b;
		else if (filter_is(p, i, "subject"))
			slot = &a->subject;
		else if (filter_is(p, i, "text"))
			slot = &a->text;
		else
			return filter_fail(p, "expected to, from, subject, "
					      "text or attach-original in "
					      "the note");
		if (*slot != NULL)
			return filter_fail(p,
					   "expected '%s' only once in a "
					   "note",
					   w);
		if ((*slot = filter_take_string(p, i + 1, "a value")) == NULL)
			return -1;
		if (slot != &a->text && filter_has_ctl(*slot, 0))
			return filter_fail(p, "expected '%s' on one line", w);
		i += 2;
	}
	return 0;
}

static int filter_parse_action(struct filter_parser *p, struct filter_action *a)
{
	size_t n = 2;

	memset(a, 0, sizeof(*a));
	if (filter_is(p, 1, "delete")) {
		a->kind = FILTER_ACT_DELETE;
	} else if (filter_is(p, 1, "stop")) {
		a->kind = FILTER_ACT_STOP;
	} else if (filter_is(p, 1, "strip-attachments")) {
		a->kind = FILTER_ACT_STRIP;
	} else if (filter_is(p, 1, "move-to")) {
		if (filter_is(p, 2, "hold"))
			a->kind = FILTER_ACT_HOLD;
		else if (filter_is(p, 2, "bad"))
			a->kind = FILTER_ACT_BAD;
		else
			return filter_fail(p, "expected 'hold' or 'bad' after "
					      "'move-to'");
		n = 3;
	} else if (filter_is(p, 1, "skip")) {
		uint64_t v;

		if (p->ntok < 3 || p->tok[2].quoted ||
		    filter_parse_number(p->tok[2].s, FILTER_RULES_MAX, &v) <
			    0 ||
		    v == 0)
			return filter_fail(p,
					   "expected a number of rules "
					   "(1 to %d) after 'skip'",
					   FILTER_RULES_MAX);
		a->kind = FILTER_ACT_SKIP;
		a->code = (unsigned)v;
		n = 3;
	} else if (filter_is(p, 1, "reject")) {
		uint64_t v;
		const char *t;

		if (p->ntok < 3 || p->tok[2].quoted ||
		    filter_parse_number(p->tok[2].s, 599, &v) < 0 || v < 400 ||
		    strlen(p->tok[2].s) != 3)
			return filter_fail(p, "expected a reply code from 400 "
					      "to 599 after 'reject'");
		a->kind = FILTER_ACT_REJECT;
		a->code = (unsigned)v;
		if ((a->a = filter_take_string(p, 3, "the reply text")) == NULL)
			return -1;
		t = a->a;
		/* RFC 3463: class.subject.detail, the class that of the
		 * reply code. */
		if (t[0] != p->tok[2].s[0] || t[1] != '.' ||
		    !isdigit((unsigned char)t[2]) ||
		    strspn(t + 2, "0123456789") > 3 ||
		    t[2 + strspn(t + 2, "0123456789")] != '.' ||
		    !isdigit((unsigned char)t[3 + strspn(t + 2, "0123456789")]))
			return filter_fail(p,
					   "expected the text to start "
					   "with an enhanced status code "
					   "like %c.7.1",
					   p->tok[2].s[0]);
		for (; *t != '\0'; t++)
			if ((unsigned char)*t < 32 || (unsigned char)*t > 126)
				return filter_fail(p, "expected printable "
						      "ASCII in the reply "
						      "text");
		if (strlen(a->a) > 400)
			return filter_fail(p, "expected a reply text of at "
					      "most 400 bytes");
		n = 4;
	} else if (filter_is(p, 1, "add-header")) {
		a->kind = FILTER_ACT_ADD_HEADER;
		if ((a->a = filter_take_string(p, 2, "a field name")) == NULL ||
		    (a->b = filter_take_string(p, 3, "a field value")) == NULL)
			return -1;
		if (!filter_valid_field(a->a))
			return filter_fail(p, "expected a header field name");
		if (filter_has_ctl(a->b, 0) || strlen(a->b) > 900)
			return filter_fail(p, "expected a field value on one "
					      "line, at most 900 bytes");
		n = 4;
	} else if (filter_is(p, 1, "remove-header")) {
		a->kind = FILTER_ACT_REMOVE_HEADER;
		if ((a->a = filter_take_string(p, 2, "a field name")) == NULL)
			return -1;
		if (!filter_valid_field(a->a))
			return filter_fail(p, "expected a header field name");
		n = 3;
	} else if (filter_is(p, 1, "copy-to") ||
		   filter_is(p, 1, "redirect-to")) {
		a->kind = filter_is(p, 1, "copy-to") ? FILTER_ACT_COPY
						     : FILTER_ACT_REDIRECT;
		if ((a->a = filter_take_string(p, 2, "a list of addresses")) ==
		    NULL)
			return -1;
		if (filter_check_addresses(p, a->a) < 0)
			return -1;
		n = 3;
	} else if (filter_is(p, 1, "note")) {
		a->kind = FILTER_ACT_NOTE;
		if (!filter_is(p, 2, "to"))
			return filter_fail(p, "expected 'to' after 'note'");
		if (filter_parse_note_fields(p, 2, a) < 0)
			return -1;
		if (a->a[0] == '\0')
			return filter_fail(p, "expected a recipient after "
					      "'to'");
		return 0;
	} else {
		return filter_fail(p, "expected an action (delete, reject, "
				      "note, add-header, ...) after 'then'");
	}
	return filter_line_ends(p, n);
}

static int filter_push_cond(struct filter_parser *p, struct filter_rule *r,
			    struct filter_cond *c)
{
	struct filter_cond *v;

	if (r->nconds == FILTER_CONDS_MAX)
		return filter_fail(p,
				   "expected at most %d conditions in a "
				   "rule",
				   FILTER_CONDS_MAX);
	v = realloc(r->conds, (r->nconds + 1) * sizeof(*v));
	if (v == NULL)
		return filter_fail(p, "out of memory");
	r->conds = v;
	r->conds[r->nconds++] = *c;
	memset(c, 0, sizeof(*c));
	return 0;
}

static int filter_push_action(struct filter_parser *p, struct filter_rule *r,
			      struct filter_action *a)
{
	struct filter_action *v;

	if (r->nactions == FILTER_ACTIONS_MAX)
		return filter_fail(p, "expected at most %d actions in a rule",
				   FILTER_ACTIONS_MAX);
	v = realloc(r->actions, (r->nactions + 1) * sizeof(*v));
	if (v == NULL)
		return filter_fail(p, "out of memory");
	r->actions = v;
	r->actions[r->nactions++] = *a;
	memset(a, 0, sizeof(*a));
	return 0;
}

/* The lines of a rule after its "rule" line, through "end". */
static int filter_parse_body(struct filter_parser *p, struct filter_rule *r)
{
	int seen_enabled = 0, seen_scope = 0, seen_match = 0, r2;
	struct filter_action *note = NULL;

	while ((r2 = filter_next_line(p)) == 1) {
		const char *w = p->tok[0].quoted ? "" : p->tok[0].s;

		if (note != NULL &&
		    (strcmp(w, "from") == 0 || strcmp(w, "subject") == 0 ||
		     strcmp(w, "text") == 0 || strcmp(w, "to") == 0 ||
		     strcmp(w, "attach-original") == 0)) {
			if (filter_parse_note_fields(p, 0, note) < 0)
				return -1;
			continue;
		}
		note = NULL;
		if (strcmp(w, "end") == 0) {
			if (filter_line_ends(p, 1) < 0)
				return -1;
			if (r->nconds == 0)
				return filter_fail(p, "expected at least one "
						      "'if' line before 'end' "
						      "(if all-messages)");
			if (r->nactions == 0)
				return filter_fail(p, "expected at least one "
						      "'then' line before "
						      "'end'");
			return 0;
		} else if (strcmp(w, "description") == 0) {
			if (r->description != NULL)
				return filter_fail(p, "expected one "
						      "description only");
			if ((r->description = filter_take_string(
				     p, 1, "a description")) == NULL)
				return -1;
			if (filter_has_ctl(r->description, 0))
				return filter_fail(p, "expected a description "
						      "on one line");
			if (filter_line_ends(p, 2) < 0)
				return -1;
		} else if (strcmp(w, "enabled") == 0) {
			if (seen_enabled++)
				return filter_fail(p, "expected 'enabled' "
						      "only once");
			if (filter_is(p, 1, "yes"))
				r->enabled = 1;
			else if (filter_is(p, 1, "no"))
				r->enabled = 0;
			else
				return filter_fail(p, "expected yes or no "
						      "after 'enabled'");
			if (filter_line_ends(p, 2) < 0)
				return -1;
		} else if (strcmp(w, "scope") == 0) {
			if (seen_scope++)
				return filter_fail(p, "expected 'scope' only "
						      "once");
			if (filter_is(p, 1, "all"))
				r->scope = FILTER_SCOPE_ALL;
			else if (filter_is(p, 1, "inbound"))
				r->scope = FILTER_SCOPE_INBOUND;
			else if (filter_is(p, 1, "outbound"))
				r->scope = FILTER_SCOPE_OUTBOUND;
			else
				return filter_fail(p, "expected all, inbound "
						      "or outbound after "
						      "'scope'");
			if (filter_line_ends(p, 2) < 0)
				return -1;
		} else if (strcmp(w, "match") == 0) {
			if (seen_match++)
				return filter_fail(p, "expected 'match' only "
						      "once");
			if (filter_is(p, 1, "all"))
				r->match_any = 0;
			else if (filter_is(p, 1, "any"))
				r->match_any = 1;
			else
				return filter_fail(p, "expected all or any "
						      "after 'match'");
			if (filter_line_ends(p, 2) < 0)
				return -1;
		} else if (strcmp(w, "if") == 0) {
			struct filter_cond c;
			int rc = filter_parse_cond(p, &c);

			if (rc == 0)
				rc = filter_push_cond(p, r, &c);
			free(c.name);
			free(c.value);
			if (rc < 0)
				return -1;
		} else if (strcmp(w, "then") == 0) {
			struct filter_action a;
			int rc = filter_parse_action(p, &a);
			int is_note = a.kind == FILTER_ACT_NOTE;

			if (rc == 0)
				rc = filter_push_action(p, r, &a);
			free(a.a);
			free(a.b);
			free(a.subject);
			free(a.text);
			if (rc < 0)
				return -1;
			if (is_note)
				note = &r->actions[r->nactions - 1];
		} else if (strcmp(w, "rule") == 0) {
			return filter_fail(p, "expected 'end' before the next "
					      "'rule'");
		} else {
			return filter_fail(p, "expected if, then, enabled, "
					      "scope, match, description or "
					      "end");
		}
	}
	if (r2 < 0)
		return -1;
	p->line++;
	return filter_fail(p, "expected 'end' to close rule \"%.60s\"",
			   r->name);
}

/* The "rule" line is in p->tok: reads the whole rule into *r. */
static int filter_parse_one(struct filter_parser *p, struct filter_rule *r)
{
	memset(r, 0, sizeof(*r));
	r->enabled = 1;
	if (!filter_is(p, 0, "rule"))
		return filter_fail(p, "expected 'rule \"name\"'");
	if ((r->name = filter_take_string(p, 1, "the rule name")) == NULL)
		return -1;
	if (r->name[0] == '\0' || strlen(r->name) > FILTER_NAME_MAX ||
	    filter_has_ctl(r->name, 0) || strchr(r->name, '\t') != NULL)
		return filter_fail(p,
				   "expected a rule name of 1 to %d bytes "
				   "on one line",
				   FILTER_NAME_MAX);
	if (filter_line_ends(p, 2) < 0)
		return -1;
	return filter_parse_body(p, r);
}

int filter_parse(const char *text, size_t len, struct filter_rules *out,
		 char *error, size_t errsize)
{
	struct filter_parser p;
	struct filter_rules got = {0};
	int r;

	memset(&p, 0, sizeof(p));
	p.text = text;
	p.len = len;
	p.error = error;
	p.errsize = errsize;
	if (len > FILTER_FILE_MAX) {
		snprintf(error, errsize,
			 "line 1: expected a file of at most "
			 "%d bytes",
			 FILTER_FILE_MAX);
		return -1;
	}
	if (memchr(text, '\0', len) != NULL) {
		snprintf(error, errsize,
			 "line 1: expected text, not a NUL "
			 "byte");
		return -1;
	}
	while ((r = filter_next_line(&p)) == 1) {
		struct filter_rule rule;
		unsigned line = p.line;

		if (filter_parse_one(&p, &rule) < 0) {
			filter_rule_deinit(&rule);
			goto fail;
		}
		for (size_t i = 0; i < got.n; i++) {
			if (strcasecmp(got.v[i].name, rule.name) == 0) {
				p.line = line;
				filter_fail(&p,
					    "expected a rule name not used "
					    "before: \"%.60s\"",
					    rule.name);
				filter_rule_deinit(&rule);
				goto fail;
			}
		}
		if (filter_rules_push(&got, &rule) < 0) {
			p.line = line;
			filter_fail(&p, "expected at most %d rules",
				    FILTER_RULES_MAX);
			goto fail;
		}
	}
	if (r < 0)
		goto fail;
	filter_tokens_free(&p);
	for (size_t i = 0; i < got.n; i++) {
		if (filter_rules_push(out, &got.v[i]) < 0) {
			snprintf(error, errsize, "line %u: out of memory",
				 p.line);
			for (size_t j = i + 1; j < got.n; j++)
				filter_rule_deinit(&got.v[j]);
			got.n = 0;
			filter_rules_clear(&got);
			return -1;
		}
	}
	r = (int)got.n;
	free(got.v);
	return r;
fail:
	filter_tokens_free(&p);
	filter_rules_clear(&got);
	return -1;
}

int filter_parse_rule(const char *text, size_t len, struct filter_rule *r,
		      char *error, size_t errsize)
{
	struct filter_rules l = {0};

	memset(r, 0, sizeof(*r));
	if (filter_parse(text, len, &l, error, errsize) < 0)
		return -1;
	if (l.n != 1) {
		snprintf(error, errsize, "line 1: expected exactly one rule");
		filter_rules_clear(&l);
		return -1;
	}
	*r = l.v[0];
	l.n = 0;
	filter_rules_clear(&l);
	return 0;
}
