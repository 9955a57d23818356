/*
 * filter_rule: the content filter's rule model (filter_rule.h), its
 * canonical text (what `petrelctl filter export` prints and the directory
 * stores) and wildcard matching. Owns nothing beyond the rules it frees.
 */
#include "filter/filter_rule.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

void filter_rule_deinit(struct filter_rule *r)
{
	if (r == NULL)
		return;
	free(r->name);
	free(r->description);
	for (size_t i = 0; i < r->nconds; i++) {
		free(r->conds[i].name);
		free(r->conds[i].value);
	}
	free(r->conds);
	for (size_t i = 0; i < r->nactions; i++) {
		free(r->actions[i].a);
		free(r->actions[i].b);
		free(r->actions[i].subject);
		free(r->actions[i].text);
	}
	free(r->actions);
	memset(r, 0, sizeof(*r));
}

void filter_rules_clear(struct filter_rules *l)
{
	for (size_t i = 0; i < l->n; i++)
		filter_rule_deinit(&l->v[i]);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

int filter_rules_push(struct filter_rules *l, struct filter_rule *r)
{
	if (l->n >= FILTER_RULES_MAX) {
		filter_rule_deinit(r);
		return -1;
	}
	if (l->n == l->cap) {
		size_t cap = l->cap == 0 ? 16 : l->cap * 2;
		struct filter_rule *v = realloc(l->v, cap * sizeof(*v));

		if (v == NULL) {
			filter_rule_deinit(r);
			return -1;
		}
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = *r;
	memset(r, 0, sizeof(*r));
	return 0;
}

static const char *const filter_cond_words[] = {
	[FILTER_COND_ALL] = "all-messages",
	[FILTER_COND_SIZE_OVER] = "size >",
	[FILTER_COND_SIZE_UNDER] = "size <",
	[FILTER_COND_SENDER_GROUP] = "sender in-group",
	[FILTER_COND_RCPT_GROUP] = "recipient in-group",
	[FILTER_COND_SENDER_IS] = "sender is",
	[FILTER_COND_SENDER_DOMAIN] = "sender-domain is",
	[FILTER_COND_RCPT_IS] = "recipient is",
	[FILTER_COND_RCPT_DOMAIN] = "recipient-domain is",
	[FILTER_COND_HEADER_CONTAINS] = "header contains",
	[FILTER_COND_HEADER_MATCHES] = "header matches",
	[FILTER_COND_BODY_CONTAINS] = "body contains",
	[FILTER_COND_BODY_MATCHES] = "body matches",
	[FILTER_COND_HAS_ATTACHMENT] = "has-attachment",
	[FILTER_COND_ATTACHMENT_NAME] = "attachment-name is",
	[FILTER_COND_ATTACHMENT_TYPE] = "attachment-type is",
	[FILTER_COND_AUTHENTICATED] = "authenticated",
	[FILTER_COND_CLIENT_IP] = "client-ip in",
	[FILTER_COND_SPAM_SCORE] = "spam-score >",
};

static const char *const filter_action_words[] = {
	[FILTER_ACT_DELETE] = "delete",
	[FILTER_ACT_REJECT] = "reject",
	[FILTER_ACT_NOTE] = "note",
	[FILTER_ACT_ADD_HEADER] = "add-header",
	[FILTER_ACT_REMOVE_HEADER] = "remove-header",
	[FILTER_ACT_COPY] = "copy-to",
	[FILTER_ACT_REDIRECT] = "redirect-to",
	[FILTER_ACT_HOLD] = "move-to hold",
	[FILTER_ACT_BAD] = "move-to bad",
	[FILTER_ACT_STRIP] = "strip-attachments",
	[FILTER_ACT_SKIP] = "skip",
	[FILTER_ACT_STOP] = "stop",
};

const char *filter_cond_kind_str(enum filter_cond_kind k)
{
	if ((size_t)k >= sizeof(filter_cond_words) / sizeof(*filter_cond_words))
		return "?";
	return filter_cond_words[k];
}

const char *filter_action_kind_str(enum filter_action_kind k)
{
	if ((size_t)k >=
	    sizeof(filter_action_words) / sizeof(*filter_action_words))
		return "?";
	return filter_action_words[k];
}

/* Appends s as a quoted string: '"' and '\\' escaped, LF as \n, tab as
 * \t, other control bytes as \xNN (the parser reads all of them back). */
static int filter_write_quoted(struct buf *out, const char *s)
{
	static const char hex[] = "0123456789abcdef";

	if (buf_append(out, "\"", 1) < 0)
		return -1;
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0';
	     p++) {
		char esc[4] = {'\\', 0, 0, 0};
		size_t n = 2;

		if (*p == '"' || *p == '\\')
			esc[1] = (char)*p;
		else if (*p == '\n')
			esc[1] = 'n';
		else if (*p == '\t')
			esc[1] = 't';
		else if (*p < 0x20 || *p == 0x7f) {
			esc[1] = 'x';
			esc[2] = hex[*p >> 4];
			esc[3] = hex[*p & 15];
			n = 4;
		} else {
			esc[0] = (char)*p;
			n = 1;
		}
		if (buf_append(out, esc, n) < 0)
			return -1;
	}
	return buf_append(out, "\"", 1);
}

static const char *const filter_units[] = {"B", "KB", "MB"};

static int filter_write_cond(const struct filter_cond *c, struct buf *out)
{
	if (buf_append_str(out, c->negate ? "\tif not " : "\tif ") < 0)
		return -1;
	switch (c->kind) {
	case FILTER_COND_SIZE_OVER:
	case FILTER_COND_SIZE_UNDER:
		if (buf_printf(out, "%s %llu %s", filter_cond_kind_str(c->kind),
			       (unsigned long long)c->amount,
			       filter_units[c->unit]) < 0)
			return -1;
		break;
	case FILTER_COND_SPAM_SCORE:
		if (buf_printf(out, "spam-score > %s", c->value) < 0)
			return -1;
		break;
	case FILTER_COND_HEADER_CONTAINS:
	case FILTER_COND_HEADER_MATCHES:
		if (buf_append_str(out, "header ") < 0 ||
		    filter_write_quoted(out, c->name) < 0 ||
		    buf_append_str(out, c->kind == FILTER_COND_HEADER_CONTAINS
						? " contains "
						: " matches ") < 0 ||
		    filter_write_quoted(out, c->value) < 0)
			return -1;
		break;
	case FILTER_COND_ALL:
	case FILTER_COND_HAS_ATTACHMENT:
	case FILTER_COND_AUTHENTICATED:
		if (buf_append_str(out, filter_cond_kind_str(c->kind)) < 0)
			return -1;
		break;
	default:
		if (buf_append_str(out, filter_cond_kind_str(c->kind)) < 0 ||
		    buf_append(out, " ", 1) < 0 ||
		    filter_write_quoted(out, c->value) < 0)
			return -1;
		break;
	}
	if (c->case_sensitive && buf_append_str(out, " case-sensitive") < 0)
		return -1;
	return buf_append(out, "\n", 1);
}

static int filter_write_action(const struct filter_action *a, struct buf *out)
{
	if (buf_append_str(out, "\tthen ") < 0 ||
	    buf_append_str(out, filter_action_kind_str(a->kind)) < 0)
		return -1;
	switch (a->kind) {
	case FILTER_ACT_REJECT:
		if (buf_printf(out, " %u ", a->code) < 0 ||
		    filter_write_quoted(out, a->a) < 0)
			return -1;
		break;
	case FILTER_ACT_SKIP:
		if (buf_printf(out, " %u", a->code) < 0)
			return -1;
		break;
	case FILTER_ACT_ADD_HEADER:
		if (buf_append(out, " ", 1) < 0 ||
		    filter_write_quoted(out, a->a) < 0 ||
		    buf_append(out, " ", 1) < 0 ||
		    filter_write_quoted(out, a->b) < 0)
			return -1;
		break;
	case FILTER_ACT_REMOVE_HEADER:
	case FILTER_ACT_COPY:
	case FILTER_ACT_REDIRECT:
		if (buf_append(out, " ", 1) < 0 ||
		    filter_write_quoted(out, a->a) < 0)
			return -1;
		break;
	case FILTER_ACT_NOTE:
		/* One field a line, so that a long text stays readable. */
		if (buf_append_str(out, " to ") < 0 ||
		    filter_write_quoted(out, a->a) < 0)
			return -1;
		if (a->b != NULL && (buf_append_str(out, "\n\t\tfrom ") < 0 ||
				     filter_write_quoted(out, a->b) < 0))
			return -1;
		if (a->subject != NULL &&
		    (buf_append_str(out, "\n\t\tsubject ") < 0 ||
		     filter_write_quoted(out, a->subject) < 0))
			return -1;
		if (a->text != NULL &&
		    (buf_append_str(out, "\n\t\ttext ") < 0 ||
		     filter_write_quoted(out, a->text) < 0))
			return -1;
		if (a->attach &&
		    buf_append_str(out, "\n\t\tattach-original") < 0)
			return -1;
		break;
	default:
		break;
	}
	return buf_append(out, "\n", 1);
}

static const char *const filter_scopes[] = {"all", "inbound", "outbound"};

int filter_rule_write(const struct filter_rule *r, struct buf *out)
{
	if (buf_append_str(out, "rule ") < 0 ||
	    filter_write_quoted(out, r->name) < 0 ||
	    buf_append(out, "\n", 1) < 0)
		return -1;
	if (r->description != NULL &&
	    (buf_append_str(out, "\tdescription ") < 0 ||
	     filter_write_quoted(out, r->description) < 0 ||
	     buf_append(out, "\n", 1) < 0))
		return -1;
	if (buf_printf(out, "\tenabled %s\n\tscope %s\n\tmatch %s\n",
		       r->enabled ? "yes" : "no", filter_scopes[r->scope],
		       r->match_any ? "any" : "all") < 0)
		return -1;
	for (size_t i = 0; i < r->nconds; i++)
		if (filter_write_cond(&r->conds[i], out) < 0)
			return -1;
	for (size_t i = 0; i < r->nactions; i++)
		if (filter_write_action(&r->actions[i], out) < 0)
			return -1;
	return buf_append_str(out, "end\n");
}

int filter_rules_write(const struct filter_rules *l, struct buf *out)
{
	if (buf_append_str(out, "# Petrel content filter rules, in order "
				"(petrelctl filter export)\n") < 0)
		return -1;
	for (size_t i = 0; i < l->n; i++) {
		if (buf_append(out, "\n", 1) < 0 ||
		    filter_rule_write(&l->v[i], out) < 0)
			return -1;
	}
	return 0;
}

static int filter_fold(unsigned char c, int case_sensitive)
{
	return case_sensitive ? c : tolower(c);
}

int filter_wildcard(const char *pattern, const char *text, int case_sensitive)
{
	const char *p = pattern, *t = text;
	const char *star = NULL, *mark = NULL;

	/* Greedy with one backtrack point: the last '*' seen. A later '*'
	 * replaces it, so each text byte is retried at most once per star:
	 * no exponential blow-up on "*a*a*a*b". */
	while (*t != '\0') {
		if (*p == '*') {
			star = ++p;
			mark = t;
		} else if (*p != '\0' &&
			   (*p == '?' ||
			    filter_fold((unsigned char)*p, case_sensitive) ==
				    filter_fold((unsigned char)*t,
						case_sensitive))) {
			p++;
			t++;
		} else if (star != NULL) {
			p = star;
			t = ++mark;
		} else {
			return 0;
		}
	}
	while (*p == '*')
		p++;
	return *p == '\0';
}
