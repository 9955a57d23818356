/*
 * filter_eval: the content filter's evaluator. A rule set is compiled once
 * (PCRE2 patterns, JIT where available; networks; lower-cased needles)
 * and shared read-only between threads. A message is looked at once per
 * evaluation (header fields decoded, MIME walked only when a rule asks for
 * the body or attachments), then the rules run per recipient and return
 * actions; nothing here does I/O. Regex matches run under PCRE2 match,
 * depth and heap limits: hitting one fails the evaluation, and the caller
 * holds the message.
 */
#include "filter/filter_eval.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "filter/filter_macro.h"
#include "filter/filter_mime.h"
#include "lib/addrlist.h"
#include "lib/header.h"
#include "lib/netlist.h"

#define FILTER_HEADER_VALUE_MAX 4096
#define FILTER_HEADERS_MAX 2000

struct filter_ccond {
	pcre2_code *re;
	struct netlist nets;
	char *needle; /* contains: lower-cased unless case-sensitive */
	size_t needle_len;
	uint64_t bytes; /* size conditions */
	double score;
};

struct filter_set {
	int refs;
	struct filter_rules rules;
	struct filter_ccond **cc; /* per rule, per condition */
	int content;		  /* filter_set_reads_content() */
};

/* --- compiling --- */

/* A copy of n bytes and a NUL. Not strndup: message text may hold NUL
 * bytes (DATA passes them, and so do encoded words), and every one of
 * the n bytes is used. */
static char *filter_memdup(const char *s, size_t n)
{
	char *c = malloc(n + 1);

	if (c != NULL) {
		memcpy(c, s, n);
		c[n] = '\0';
	}
	return c;
}

static void filter_lower(char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		s[i] = (char)tolower((unsigned char)s[i]);
}

static void filter_set_free(struct filter_set *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; s->cc != NULL && i < s->rules.n; i++) {
		for (size_t j = 0; s->cc[i] != NULL && j < s->rules.v[i].nconds;
		     j++) {
			pcre2_code_free(s->cc[i][j].re);
			netlist_clear(&s->cc[i][j].nets);
			free(s->cc[i][j].needle);
		}
		free(s->cc[i]);
	}
	free(s->cc);
	filter_rules_clear(&s->rules);
	free(s);
}

static int filter_compile_cond(const struct filter_cond *c,
			       struct filter_ccond *cc, char *error,
			       size_t errsize)
{
	static const uint64_t unit[] = {1, 1024, 1024 * 1024};
	const char *bad, *err;
	size_t badlen;

	switch (c->kind) {
	case FILTER_COND_SIZE_OVER:
	case FILTER_COND_SIZE_UNDER:
		cc->bytes = c->amount * unit[c->unit];
		break;
	case FILTER_COND_SPAM_SCORE:
		cc->score = strtod(c->value, NULL);
		break;
	case FILTER_COND_CLIENT_IP:
		if (netlist_parse(&cc->nets, c->value, NULL, NULL, &bad,
				  &badlen, &err) < 0) {
			snprintf(error, errsize, "bad network list: %s", err);
			return -1;
		}
		break;
	case FILTER_COND_HEADER_CONTAINS:
	case FILTER_COND_BODY_CONTAINS:
		cc->needle_len = strlen(c->value);
		cc->needle = strdup(c->value);
		if (cc->needle == NULL) {
			snprintf(error, errsize, "out of memory");
			return -1;
		}
		if (!c->case_sensitive)
			filter_lower(cc->needle, cc->needle_len);
		break;
	case FILTER_COND_HEADER_MATCHES:
	case FILTER_COND_BODY_MATCHES: {
		int e;
		PCRE2_SIZE off;
		uint32_t opts = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF;

		if (!c->case_sensitive)
			opts |= PCRE2_CASELESS;
		cc->re = pcre2_compile((PCRE2_SPTR)c->value,
				       PCRE2_ZERO_TERMINATED, opts, &e, &off,
				       NULL);
		if (cc->re == NULL) {
			PCRE2_UCHAR msg[128];

			pcre2_get_error_message(e, msg, sizeof(msg));
			snprintf(error, errsize, "regular expression: %s",
				 (const char *)msg);
			return -1;
		}
		/* JIT makes a scan of a large body fast; without it (no JIT
		 * on this CPU) the interpreter runs under the same limits. */
		(void)pcre2_jit_compile(cc->re, PCRE2_JIT_COMPLETE);
		break;
	}
	default:
		break;
	}
	return 0;
}

static int filter_cond_reads_content(const struct filter_cond *c)
{
	switch (c->kind) {
	case FILTER_COND_HEADER_CONTAINS:
	case FILTER_COND_HEADER_MATCHES:
	case FILTER_COND_BODY_CONTAINS:
	case FILTER_COND_BODY_MATCHES:
	case FILTER_COND_HAS_ATTACHMENT:
	case FILTER_COND_ATTACHMENT_NAME:
	case FILTER_COND_ATTACHMENT_TYPE:
		return 1;
	case FILTER_COND_ALL:
	case FILTER_COND_SIZE_OVER:
	case FILTER_COND_SIZE_UNDER:
	case FILTER_COND_SENDER_GROUP:
	case FILTER_COND_RCPT_GROUP:
	case FILTER_COND_SENDER_IS:
	case FILTER_COND_SENDER_DOMAIN:
	case FILTER_COND_RCPT_IS:
	case FILTER_COND_RCPT_DOMAIN:
	case FILTER_COND_AUTHENTICATED:
	case FILTER_COND_CLIENT_IP:
	case FILTER_COND_SPAM_SCORE:
		break;
	}
	return 0;
}

struct filter_set *filter_set_new(struct filter_rules *rules, char *error,
				  size_t errsize)
{
	struct filter_set *s = calloc(1, sizeof(*s));

	if (s == NULL) {
		filter_rules_clear(rules);
		snprintf(error, errsize, "out of memory");
		return NULL;
	}
	s->refs = 1;
	s->rules = *rules;
	memset(rules, 0, sizeof(*rules));
	s->cc = calloc(s->rules.n + 1, sizeof(*s->cc));
	if (s->cc == NULL) {
		snprintf(error, errsize, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < s->rules.n; i++) {
		const struct filter_rule *r = &s->rules.v[i];

		s->cc[i] = calloc(r->nconds + 1, sizeof(**s->cc));
		if (s->cc[i] == NULL) {
			snprintf(error, errsize, "out of memory");
			goto fail;
		}
		for (size_t j = 0; j < r->nconds; j++) {
			char e[200];

			if (filter_compile_cond(&r->conds[j], &s->cc[i][j], e,
						sizeof(e)) < 0) {
				snprintf(error, errsize, "rule \"%.60s\": %s",
					 r->name, e);
				goto fail;
			}
			if (r->enabled &&
			    filter_cond_reads_content(&r->conds[j]))
				s->content = 1;
		}
	}
	return s;
fail:
	filter_set_free(s);
	return NULL;
}

int filter_set_reads_content(const struct filter_set *s)
{
	return s->content;
}

void filter_set_ref(struct filter_set *s)
{
	__atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
}

void filter_set_unref(struct filter_set *s)
{
	if (s != NULL && __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) == 0)
		filter_set_free(s);
}

const struct filter_rules *filter_set_rules(const struct filter_set *s)
{
	return &s->rules;
}

/* --- the message, looked at once --- */

struct filter_hdr {
	const char *name;
	size_t name_len;
	char *value; /* unfolded, RFC 2047 decoded */
	char *lower;
	size_t len;
};

struct filter_msg {
	const struct filter_facts *f;
	struct filter_hdr *h;
	size_t nh;
	size_t header_len; /* bytes of the header section */
	int mime_done;
	struct filter_mime mime;
	char *lower_text; /* the MIME text, lower-cased */
	pcre2_match_context *mctx;
	pcre2_match_data *md;
	char error[256];
};

static int filter_msg_init(struct filter_msg *m, const struct filter_facts *f)
{
	struct header_field hf;
	size_t pos = 0, cap = 0;
	char *value = malloc(FILTER_HEADER_VALUE_MAX);

	memset(m, 0, sizeof(*m));
	m->f = f;
	if (value == NULL)
		return -1;
	while (header_next(f->msg, f->len, &pos, &hf) == 1) {
		struct filter_hdr *h;
		size_t n;

		if (m->nh == FILTER_HEADERS_MAX)
			continue;
		if (m->nh == cap) {
			size_t nc = cap == 0 ? 32 : cap * 2;
			struct filter_hdr *v = realloc(m->h, nc * sizeof(*v));
			if (v == NULL)
				goto fail;
			m->h = v;
			cap = nc;
		}
		n = addrlist_decode_words(hf.value, hf.value_len, value,
					  FILTER_HEADER_VALUE_MAX);
		h = &m->h[m->nh];
		h->name = hf.name;
		h->name_len = hf.name_len;
		/* Without the white space after the colon. */
		{
			size_t sk = strspn(value, " \t");
			h->value = filter_memdup(value + sk, n - sk);
			h->len = n - sk;
		}
		h->lower = h->value != NULL ? filter_memdup(h->value, h->len)
					    : NULL;
		if (h->value == NULL || h->lower == NULL) {
			free(h->value);
			free(h->lower);
			goto fail;
		}
		filter_lower(h->lower, h->len);
		m->nh++;
	}
	m->header_len = pos;
	free(value);
	m->mctx = pcre2_match_context_create(NULL);
	m->md = pcre2_match_data_create(1, NULL);
	if (m->mctx == NULL || m->md == NULL)
		return -1;
	pcre2_set_match_limit(m->mctx, FILTER_MATCH_LIMIT);
	pcre2_set_depth_limit(m->mctx, FILTER_DEPTH_LIMIT);
	pcre2_set_heap_limit(m->mctx, FILTER_HEAP_LIMIT_KB);
	return 0;
fail:
	free(value);
	return -1;
}

static void filter_msg_deinit(struct filter_msg *m)
{
	for (size_t i = 0; i < m->nh; i++) {
		free(m->h[i].value);
		free(m->h[i].lower);
	}
	free(m->h);
	if (m->mime_done)
		filter_mime_deinit(&m->mime);
	free(m->lower_text);
	pcre2_match_context_free(m->mctx);
	pcre2_match_data_free(m->md);
}

/* The MIME structure, walked on first use. Returns 0 or -1 (error set). */
static int filter_msg_mime(struct filter_msg *m)
{
	if (m->mime_done)
		return 0;
	if (filter_mime_parse(m->f->msg, m->f->len, &m->mime) < 0) {
		snprintf(m->error, sizeof(m->error),
			 "out of memory reading the MIME structure");
		return -1;
	}
	m->mime_done = 1;
	if (m->mime.limit_hit) {
		snprintf(m->error, sizeof(m->error), "%s", m->mime.limit_why);
		return -1;
	}
	return 0;
}

/* Runs a compiled pattern. Returns 1 match, 0 none, -1 limit or error. */
static int filter_re(struct filter_msg *m, const struct filter_rule *r,
		     pcre2_code *re, const char *s, size_t n)
{
	int rc = pcre2_match(re, (PCRE2_SPTR)s, n, 0, 0, m->md, m->mctx);

	if (rc >= 0)
		return 1;
	if (rc == PCRE2_ERROR_NOMATCH)
		return 0;
	{
		PCRE2_UCHAR msg[120];

		pcre2_get_error_message(rc, msg, sizeof(msg));
		snprintf(m->error, sizeof(m->error),
			 "rule \"%.60s\": regular expression failed: %s",
			 r->name, (const char *)msg);
	}
	return -1;
}

static int filter_field_is(const struct filter_hdr *h, const char *name)
{
	return strcmp(name, "*") == 0 ||
	       (strlen(name) == h->name_len &&
		strncasecmp(h->name, name, h->name_len) == 0);
}

static const char *filter_domain_of(const char *addr)
{
	const char *at = strrchr(addr, '@');

	return at != NULL ? at + 1 : "";
}

/* One condition for one recipient, before negation: 1, 0, or -1. */
static int filter_cond_holds(struct filter_msg *m, const struct filter_rule *r,
			     const struct filter_cond *c,
			     const struct filter_ccond *cc, const char *rcpt)
{
	const struct filter_facts *f = m->f;
	int v;

	switch (c->kind) {
	case FILTER_COND_ALL:
		return 1;
	case FILTER_COND_SIZE_OVER:
		return f->len > cc->bytes;
	case FILTER_COND_SIZE_UNDER:
		return f->len < cc->bytes;
	case FILTER_COND_SENDER_GROUP:
	case FILTER_COND_RCPT_GROUP: {
		const char *who =
			c->kind == FILTER_COND_SENDER_GROUP ? f->sender : rcpt;
		if (who[0] == '\0' || f->is_member == NULL)
			return 0;
		v = f->is_member(f->ctx, c->value, who);
		if (v < 0)
			snprintf(m->error, sizeof(m->error),
				 "rule \"%.60s\": group lookup failed",
				 r->name);
		return v;
	}
	case FILTER_COND_SENDER_IS:
		return f->sender[0] != '\0' &&
		       filter_wildcard(c->value, f->sender, 0);
	case FILTER_COND_RCPT_IS:
		return filter_wildcard(c->value, rcpt, 0);
	case FILTER_COND_SENDER_DOMAIN:
		return f->sender[0] != '\0' &&
		       filter_wildcard(c->value, filter_domain_of(f->sender),
				       0);
	case FILTER_COND_RCPT_DOMAIN:
		return filter_wildcard(c->value, filter_domain_of(rcpt), 0);
	case FILTER_COND_HEADER_CONTAINS:
		for (size_t i = 0; i < m->nh; i++) {
			const struct filter_hdr *h = &m->h[i];
			const char *hay =
				c->case_sensitive ? h->value : h->lower;
			if (filter_field_is(h, c->name) &&
			    memmem(hay, h->len, cc->needle, cc->needle_len) !=
				    NULL)
				return 1;
		}
		return 0;
	case FILTER_COND_HEADER_MATCHES:
		for (size_t i = 0; i < m->nh; i++) {
			if (!filter_field_is(&m->h[i], c->name))
				continue;
			v = filter_re(m, r, cc->re, m->h[i].value, m->h[i].len);
			if (v != 0)
				return v;
		}
		return 0;
	case FILTER_COND_BODY_CONTAINS:
		if (filter_msg_mime(m) < 0)
			return -1;
		if (c->case_sensitive)
			return memmem(buf_cstr(&m->mime.text), m->mime.text.len,
				      cc->needle, cc->needle_len) != NULL;
		if (m->lower_text == NULL) {
			m->lower_text = filter_memdup(buf_cstr(&m->mime.text),
						      m->mime.text.len);
			if (m->lower_text == NULL) {
				snprintf(m->error, sizeof(m->error),
					 "out of memory");
				return -1;
			}
			filter_lower(m->lower_text, m->mime.text.len);
		}
		return memmem(m->lower_text, m->mime.text.len, cc->needle,
			      cc->needle_len) != NULL;
	case FILTER_COND_BODY_MATCHES:
		if (filter_msg_mime(m) < 0)
			return -1;
		return filter_re(m, r, cc->re, buf_cstr(&m->mime.text),
				 m->mime.text.len);
	case FILTER_COND_HAS_ATTACHMENT:
	case FILTER_COND_ATTACHMENT_NAME:
	case FILTER_COND_ATTACHMENT_TYPE:
		if (filter_msg_mime(m) < 0)
			return -1;
		for (size_t i = 0; i < m->mime.nparts; i++) {
			const struct filter_mime_part *p = &m->mime.parts[i];

			if (!p->attachment)
				continue;
			if (c->kind == FILTER_COND_HAS_ATTACHMENT ||
			    (c->kind == FILTER_COND_ATTACHMENT_NAME &&
			     filter_wildcard(c->value, p->filename, 0)) ||
			    (c->kind == FILTER_COND_ATTACHMENT_TYPE &&
			     filter_wildcard(c->value, p->type, 0)))
				return 1;
		}
		return 0;
	case FILTER_COND_AUTHENTICATED:
		return f->auth[0] != '\0';
	case FILTER_COND_CLIENT_IP:
		return netlist_match(&cc->nets, f->client_ip);
	case FILTER_COND_SPAM_SCORE:
		return f->spam_scored && f->spam_score > cc->score;
	}
	return 0;
}

/* Whether the rule's conditions hold: 1, 0, -1 on failure. */
static int filter_rule_holds(struct filter_msg *m, const struct filter_set *s,
			     size_t ri, const char *rcpt)
{
	const struct filter_rule *r = &s->rules.v[ri];

	for (size_t j = 0; j < r->nconds; j++) {
		int v = filter_cond_holds(m, r, &r->conds[j], &s->cc[ri][j],
					  rcpt);

		if (v < 0)
			return -1;
		if (r->conds[j].negate)
			v = !v;
		if (r->match_any && v)
			return 1;
		if (!r->match_any && !v)
			return 0;
	}
	return r->match_any ? 0 : 1;
}

/* --- results --- */

static void filter_outcome_init(struct filter_outcome *o)
{
	memset(o, 0, sizeof(*o));
	buf_init(&o->edits, 1024 * 1024);
	buf_init(&o->redirect, 64 * 1024);
	buf_init(&o->copies, 64 * 1024);
	buf_init(&o->fired, 64 * 1024);
}

static void filter_outcome_deinit(struct filter_outcome *o)
{
	buf_deinit(&o->edits);
	buf_deinit(&o->redirect);
	buf_deinit(&o->copies);
	buf_deinit(&o->fired);
}

void filter_result_deinit(struct filter_result *res)
{
	for (size_t i = 0; res->out != NULL && i < res->nrcpt; i++)
		filter_outcome_deinit(&res->out[i]);
	free(res->out);
	for (size_t i = 0; i < res->nnotes; i++) {
		free(res->notes[i].to);
		free(res->notes[i].from);
		free(res->notes[i].subject);
		free(res->notes[i].text);
	}
	free(res->notes);
	free(res->fired);
	res->out = NULL;
	res->notes = NULL;
	res->fired = NULL;
	res->nrcpt = res->nnotes = res->nfired = 0;
}

static int filter_list_add(struct buf *b, const char *list)
{
	if (b->len > 0 && buf_append(b, ",", 1) < 0)
		return -1;
	return buf_append_str(b, list);
}

static char *filter_expand(const char *tmpl, const struct filter_macro_ctx *mc)
{
	struct buf b;
	char *s;

	buf_init(&b, 256 * 1024);
	if (filter_macro_expand(tmpl, mc, &b) < 0) {
		buf_deinit(&b);
		return NULL;
	}
	s = buf_steal(&b);
	buf_deinit(&b);
	return s;
}

static int filter_add_note(struct filter_result *res, size_t ri,
			   const struct filter_action *a,
			   const struct filter_macro_ctx *mc,
			   const char *sender)
{
	struct filter_note *v, *n;
	char *to;

	for (size_t i = 0; i < res->nnotes; i++)
		if (res->notes[i].rule == ri)
			return 0; /* once per message and rule */
	to = filter_expand(a->a, mc);
	if (to == NULL)
		return -1;
	/* Never to the null sender (RFC 3834 2, RFC 5321 6.1). */
	if (to[strspn(to, " ,")] == '\0') {
		free(to);
		return 0;
	}
	v = realloc(res->notes, (res->nnotes + 1) * sizeof(*v));
	if (v == NULL) {
		free(to);
		return -1;
	}
	res->notes = v;
	n = &v[res->nnotes];
	memset(n, 0, sizeof(*n));
	n->rule = ri;
	n->to = to;
	n->from = filter_expand(
		a->b != NULL ? a->b : "postmaster@$PRIMARYDOMAIN$", mc);
	n->subject = filter_expand(a->subject != NULL
					   ? a->subject
					   : "Message from the content filter",
				   mc);
	n->text = filter_expand(a->text != NULL ? a->text : "", mc);
	n->attach = a->attach;
	n->to_sender = sender[0] != '\0' && strcasecmp(to, sender) == 0;
	res->nnotes++;
	if (n->from == NULL || n->subject == NULL || n->text == NULL)
		return -1;
	return 0;
}

static int filter_note_fired(struct filter_result *res, size_t ri,
			     const struct filter_rule *r)
{
	struct filter_fired *v, *fd;
	size_t len = 0;

	for (size_t i = 0; i < res->nfired; i++) {
		if (res->fired[i].rule == ri) {
			res->fired[i].nrcpt++;
			return 0;
		}
	}
	v = realloc(res->fired, (res->nfired + 1) * sizeof(*v));
	if (v == NULL)
		return -1;
	res->fired = v;
	fd = &v[res->nfired++];
	memset(fd, 0, sizeof(*fd));
	fd->rule = ri;
	fd->nrcpt = 1;
	for (size_t i = 0; i < r->nactions; i++) {
		int w = snprintf(fd->actions + len, sizeof(fd->actions) - len,
				 "%s%s", i > 0 ? ", " : "",
				 filter_action_kind_str(r->actions[i].kind));
		if (w < 0 || (size_t)w >= sizeof(fd->actions) - len)
			break;
		len += (size_t)w;
	}
	return 0;
}

static int filter_has_size_cond(const struct filter_rule *r)
{
	for (size_t j = 0; j < r->nconds; j++)
		if (r->conds[j].kind == FILTER_COND_SIZE_OVER &&
		    !r->conds[j].negate)
			return 1;
	return 0;
}

/* Copies s into dst as printable ASCII (reply text). */
static void filter_ascii(char *dst, size_t size, const char *s)
{
	size_t n = 0;

	for (; *s != '\0' && n + 1 < size; s++)
		dst[n++] = (unsigned char)*s >= 32 && (unsigned char)*s < 127
				   ? *s
				   : '?';
	dst[n] = '\0';
}

/* Runs the rules for recipient k. Returns 0 or -1 (m->error set). */
static int filter_eval_rcpt(const struct filter_set *s, struct filter_msg *m,
			    const struct filter_rcpt *rc,
			    struct filter_outcome *o, struct filter_result *res,
			    size_t *reject_rule_r)
{
	const struct filter_facts *f = m->f;
	size_t i = 0;

	while (i < s->rules.n) {
		const struct filter_rule *r = &s->rules.v[i];
		size_t ri = i++, skip = 0;
		struct filter_macro_ctx mc;
		int v, stop = 0;

		if (!r->enabled ||
		    (r->scope == FILTER_SCOPE_INBOUND && !rc->local) ||
		    (r->scope == FILTER_SCOPE_OUTBOUND && rc->local))
			continue;
		v = filter_rule_holds(m, s, ri, rc->address);
		if (v < 0)
			return -1;
		if (v == 0)
			continue;
		if (filter_note_fired(res, ri, r) < 0 ||
		    buf_printf(&o->fired, "%s%zu", o->fired.len > 0 ? "," : "",
			       ri) < 0)
			goto nomem;
		memset(&mc, 0, sizeof(mc));
		mc.sender = f->sender;
		mc.recipient = rc->address;
		mc.rule_name = r->name;
		mc.primary_domain = f->primary_domain;
		mc.message_id = f->message_id;
		mc.header = f->msg;
		mc.header_len = m->header_len;
		mc.size = f->len;
		mc.now = f->now;
		for (size_t j = 0; j < r->nactions; j++) {
			const struct filter_action *a = &r->actions[j];

			switch (a->kind) {
			case FILTER_ACT_DELETE:
				o->deleted = 1;
				stop = 1;
				break;
			case FILTER_ACT_REJECT:
				if (!res->reject) {
					char text[420];

					filter_ascii(text, sizeof(text), a->a);
					res->reject = 1;
					*reject_rule_r = ri;
					snprintf(res->reply, sizeof(res->reply),
						 "%u %s", a->code, text);
				}
				stop = 1;
				break;
			case FILTER_ACT_NOTE:
				if (filter_add_note(res, ri, a, &mc,
						    f->sender) < 0)
					goto nomem;
				break;
			case FILTER_ACT_ADD_HEADER: {
				char *val = filter_expand(a->b, &mc);
				int rr;

				if (val == NULL)
					goto nomem;
				rr = buf_append(&o->edits, "+", 1) < 0 ||
				     filter_macro_header(a->a, val, &o->edits) <
					     0;
				free(val);
				if (rr)
					goto nomem;
				break;
			}
			case FILTER_ACT_REMOVE_HEADER:
				if (buf_printf(&o->edits, "-%s\n", a->a) < 0)
					goto nomem;
				break;
			case FILTER_ACT_COPY:
				if (filter_list_add(&o->copies, a->a) < 0)
					goto nomem;
				break;
			case FILTER_ACT_REDIRECT:
				if (filter_list_add(&o->redirect, a->a) < 0)
					goto nomem;
				break;
			case FILTER_ACT_HOLD:
			case FILTER_ACT_BAD:
				if (a->kind == FILTER_ACT_BAD)
					o->bad = 1;
				else
					o->hold = 1;
				if (o->reason[0] == '\0' ||
				    a->kind == FILTER_ACT_BAD)
					snprintf(o->reason, sizeof(o->reason),
						 "content filter rule "
						 "\"%.200s\"",
						 r->name);
				break;
			case FILTER_ACT_STRIP:
				o->strip = 1;
				break;
			case FILTER_ACT_SKIP:
				skip += a->code;
				break;
			case FILTER_ACT_STOP:
				stop = 1;
				break;
			}
		}
		if (stop)
			break;
		i += skip;
	}
	return 0;
nomem:
	snprintf(m->error, sizeof(m->error), "out of memory");
	return -1;
}

int filter_eval(const struct filter_set *s, const struct filter_facts *f,
		const struct filter_rcpt *rcpts, size_t nrcpt,
		struct filter_result *res)
{
	struct filter_msg m;
	size_t reject_rule = 0, delete_rule = 0;
	int all_deleted = nrcpt > 0, noted = 0;

	memset(res, 0, sizeof(*res));
	if (filter_msg_init(&m, f) < 0) {
		snprintf(m.error, sizeof(m.error), "out of memory");
		goto fail;
	}
	res->out = calloc(nrcpt + 1, sizeof(*res->out));
	if (res->out == NULL) {
		snprintf(m.error, sizeof(m.error), "out of memory");
		goto fail;
	}
	res->nrcpt = nrcpt;
	for (size_t k = 0; k < nrcpt; k++)
		filter_outcome_init(&res->out[k]);
	for (size_t k = 0; k < nrcpt; k++) {
		if (filter_eval_rcpt(s, &m, &rcpts[k], &res->out[k], res,
				     &reject_rule) < 0)
			goto fail;
		if (!res->out[k].deleted)
			all_deleted = 0;
	}
	/* Delete-and-tell-the-sender for every recipient: refuse now, so
	 * that the sender's own server tells them (no backscatter). */
	for (size_t i = 0; all_deleted && !res->reject && i < res->nnotes;
	     i++) {
		if (res->notes[i].to_sender) {
			noted = 1;
			delete_rule = res->notes[i].rule;
			if (filter_has_size_cond(&s->rules.v[delete_rule]))
				break;
		}
	}
	if (noted) {
		const struct filter_rule *r = &s->rules.v[delete_rule];
		char name[FILTER_NAME_MAX + 1];
		size_t w = 0;

		filter_ascii(name, sizeof(name), r->name);
		for (size_t i = 0; name[i] != '\0'; i++)
			if (name[i] == '"')
				name[i] = '\'';
		res->reject = 1;
		if (filter_has_size_cond(r))
			snprintf(res->reply, sizeof(res->reply),
				 "552 5.3.4 Message size exceeds the limit "
				 "set by rule \"%s\"",
				 name);
		else
			snprintf(res->reply, sizeof(res->reply),
				 "550 5.7.1 Message refused by content filter "
				 "rule \"%s\"",
				 name);
		/* The refusal tells the sender: drop those notes. */
		for (size_t i = 0; i < res->nnotes; i++) {
			if (res->notes[i].to_sender) {
				free(res->notes[i].to);
				free(res->notes[i].from);
				free(res->notes[i].subject);
				free(res->notes[i].text);
				continue;
			}
			res->notes[w++] = res->notes[i];
		}
		res->nnotes = w;
	}
	(void)reject_rule;
	filter_msg_deinit(&m);
	return 0;
fail:
	filter_result_deinit(res);
	res->failed = 1;
	snprintf(res->error, sizeof(res->error), "%s",
		 m.error[0] != '\0' ? m.error : "filter failed");
	filter_msg_deinit(&m);
	return -1;
}

/* --- carrying out the edits --- */

int filter_outcome_apply(const struct filter_outcome *o, const char *msg,
			 size_t len, struct buf *out)
{
	struct header_field hf;
	size_t pos = 0, body;
	const char *e = buf_cstr(&o->edits), *end = e + o->edits.len;
	struct buf stripped;
	int r = -1;

	buf_init(&stripped, len + 1024 * 1024);
	if (o->strip) {
		struct filter_mime mm;

		if (filter_mime_parse(msg, len, &mm) < 0)
			goto out;
		if (filter_mime_strip(msg, len, &mm, &stripped) < 0) {
			filter_mime_deinit(&mm);
			goto out;
		}
		filter_mime_deinit(&mm);
		msg = buf_cstr(&stripped);
		len = stripped.len;
	}
	/* Added fields go on top (newest first, as trace fields do);
	 * removals apply to the client's fields only. */
	for (const char *p = e; p < end;) {
		const char *next;

		if (*p == '+') {
			/* A folded field ends at a CRLF not followed by a
			 * space. */
			const char *q = p + 1;
			for (;;) {
				const char *crlf = strstr(q, "\r\n");
				if (crlf == NULL) {
					q = end;
					break;
				}
				q = crlf + 2;
				if (*q != ' ')
					break;
			}
			if (buf_append(out, p + 1, (size_t)(q - p - 1)) < 0)
				goto out;
			next = q;
		} else {
			next = strchr(p, '\n');
			next = next != NULL ? next + 1 : end;
		}
		p = next;
	}
	while (header_next(msg, len, &pos, &hf) == 1) {
		int drop = 0;

		for (const char *p = e; p < end && !drop;) {
			const char *nl = strchr(p, '\n');
			const char *next = nl != NULL ? nl + 1 : end;

			if (*p == '-' && nl != NULL &&
			    (size_t)(nl - p - 1) == hf.name_len &&
			    strncasecmp(p + 1, hf.name, hf.name_len) == 0)
				drop = 1;
			p = next;
		}
		if (!drop && buf_append(out, hf.raw, hf.raw_len) < 0)
			goto out;
	}
	/* header_next stops after the empty line, or at the first line
	 * that is no field (then the body starts there): one empty line
	 * either way. */
	body = pos;
	if (buf_append(out, "\r\n", 2) < 0 ||
	    buf_append(out, msg + body, len - body) < 0)
		goto out;
	r = 0;
out:
	buf_deinit(&stripped);
	return r;
}

int filter_outcome_same(const struct filter_outcome *a,
			const struct filter_outcome *b)
{
	return a->deleted == b->deleted && a->hold == b->hold &&
	       a->bad == b->bad && a->strip == b->strip &&
	       a->edits.len == b->edits.len &&
	       memcmp(buf_cstr(&a->edits), buf_cstr(&b->edits), a->edits.len) ==
		       0 &&
	       strcmp(a->reason, b->reason) == 0;
}
