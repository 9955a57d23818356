/*
 * filter_store: loads the content filter's rules from the directory (one
 * text per rule, in order) and compiles them into a set; answers the
 * evaluator's group questions from the directory, and which rules name a
 * group. Owns nothing.
 */
#include "filter/filter_store.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "directory/directory.h"
#include "filter/filter_parse.h"

struct filter_store_ctx {
	struct filter_rules rules;
	char *error;
	size_t errsize;
	int failed;
};

static void filter_store_cb(const char *name, int enabled, const char *text,
			    void *arg)
{
	struct filter_store_ctx *x = arg;
	struct filter_rule r;
	char err[256];

	if (x->failed)
		return;
	if (filter_parse_rule(text, strlen(text), &r, err, sizeof(err)) < 0) {
		snprintf(x->error, x->errsize, "rule \"%.80s\": %s", name, err);
		x->failed = 1;
		return;
	}
	r.enabled = enabled;
	if (filter_rules_push(&x->rules, &r) < 0) {
		snprintf(x->error, x->errsize, "too many rules");
		x->failed = 1;
	}
}

struct filter_set *filter_store_load(struct directory *d, char *error,
				     size_t errsize)
{
	struct filter_store_ctx x;
	const char *err;

	memset(&x, 0, sizeof(x));
	x.error = error;
	x.errsize = errsize;
	if (directory_filter_list(d, filter_store_cb, &x, &err) < 0) {
		snprintf(error, errsize, "%s", err);
		x.failed = 1;
	}
	if (x.failed) {
		filter_rules_clear(&x.rules);
		return NULL;
	}
	return filter_set_new(&x.rules, error, errsize);
}

int filter_store_is_member(void *ctx, const char *group, const char *address)
{
	return directory_group_is_member(ctx, group, address);
}

struct filter_store_group {
	const char *group;
	struct buf *out;
	int n;
};

static void filter_store_group_cb(const char *name, int enabled,
				  const char *text, void *arg)
{
	struct filter_store_group *g = arg;
	struct filter_rule r;
	char err[256];

	(void)enabled;
	if (filter_parse_rule(text, strlen(text), &r, err, sizeof(err)) < 0)
		return;
	for (size_t i = 0; i < r.nconds; i++) {
		const struct filter_cond *c = &r.conds[i];

		if ((c->kind == FILTER_COND_SENDER_GROUP ||
		     c->kind == FILTER_COND_RCPT_GROUP) &&
		    strcasecmp(c->value, g->group) == 0) {
			buf_printf(g->out, "%s\"%s\"", g->n > 0 ? ", " : "",
				   name);
			g->n++;
			break;
		}
	}
	filter_rule_deinit(&r);
}

int filter_store_group_rules(struct directory *d, const char *group,
			     struct buf *out)
{
	struct filter_store_group g = {group, out, 0};
	const char *err;

	if (directory_filter_list(d, filter_store_group_cb, &g, &err) < 0)
		return -1;
	return g.n;
}

struct filter_store_first {
	char *out;
	size_t size;
};

static void filter_store_domain_cb(const char *name, void *arg)
{
	struct filter_store_first *f = arg;

	if (f->out[0] == '\0')
		snprintf(f->out, f->size, "%s", name);
}

void filter_store_primary_domain(struct directory *d, char *out, size_t size)
{
	struct filter_store_first f = {out, size};
	const char *err;

	out[0] = '\0';
	directory_domain_list(d, filter_store_domain_cb, &f, &err);
}
