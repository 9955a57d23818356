/*
 * ctl_filter: `petrelctl filter ...`, the content filter's rules: list,
 * show, import (replaces the set, all or nothing), export (the canonical
 * file), move, enable, disable, delete, and test (runs the rules on a
 * message file and prints what would happen, doing none of it).
 */
#include "admin/ctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "directory/directory.h"
#include "filter/filter_eval.h"
#include "filter/filter_parse.h"
#include "filter/filter_store.h"
#include "lib/clock.h"

#define CTL_FILTER_USAGE                                                       \
	"petrelctl filter list | show NAME | import FILE | export\n"           \
	"          | move NAME up|down|to N | enable NAME | disable NAME\n"    \
	"          | delete NAME\n"                                            \
	"          | test FILE.eml --from ADDR --to ADDR [--to ADDR...]\n"     \
	"            [--auth [ACCOUNT]] [--ip IP]"

/* Reads a whole file (at most max bytes) into b. Returns 0, or -1 after
 * printing an error. */
static int ctl_filter_read(const char *path, struct buf *b, size_t max)
{
	FILE *f = fopen(path, "rb");
	char chunk[65536];
	size_t n;

	if (f == NULL)
		return ctl_fail("cannot open %s: %m", path);
	buf_init(b, max);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (buf_append(b, chunk, n) < 0) {
			fclose(f);
			buf_deinit(b);
			return ctl_fail("%s is larger than %zu bytes", path,
					max);
		}
	}
	if (ferror(f)) {
		fclose(f);
		buf_deinit(b);
		return ctl_fail("cannot read %s: %m", path);
	}
	fclose(f);
	return 0;
}

struct ctl_filter_rows {
	struct filter_rules rules;
	int failed;
	char error[400];
};

static void ctl_filter_row_cb(const char *name, int enabled, const char *text,
			      void *arg)
{
	struct ctl_filter_rows *x = arg;
	struct filter_rule r;
	char err[256];

	if (x->failed)
		return;
	if (filter_parse_rule(text, strlen(text), &r, err, sizeof(err)) < 0) {
		snprintf(x->error, sizeof(x->error),
			 "stored rule \"%.80s\" is damaged: %s", name, err);
		x->failed = 1;
		return;
	}
	r.enabled = enabled;
	if (filter_rules_push(&x->rules, &r) < 0) {
		snprintf(x->error, sizeof(x->error), "out of memory");
		x->failed = 1;
	}
}

/* The stored rules, parsed. Returns 0, or 1 after printing an error. */
static int ctl_filter_load(struct ctl *ctl, struct filter_rules *out)
{
	struct directory *d = ctl_directory(ctl);
	struct ctl_filter_rows x;
	const char *err;

	if (d == NULL)
		return 1;
	memset(&x, 0, sizeof(x));
	if (directory_filter_list(d, ctl_filter_row_cb, &x, &err) < 0) {
		filter_rules_clear(&x.rules);
		return ctl_fail("%s", err);
	}
	if (x.failed) {
		filter_rules_clear(&x.rules);
		return ctl_fail("%s", x.error);
	}
	*out = x.rules;
	return 0;
}

static const char *ctl_filter_scope(enum filter_scope s)
{
	return s == FILTER_SCOPE_INBOUND    ? "inbound"
	       : s == FILTER_SCOPE_OUTBOUND ? "outbound"
					    : "all";
}

static int ctl_filter_list(struct ctl *ctl, int argc, char **argv)
{
	struct filter_rules l;
	json_t *arr = NULL;

	if (ctl_filter_load(ctl, &l) != 0)
		return 1;
	if (ctl->json)
		arr = json_array();
	else if (l.n == 0)
		printf("no filter rules\n");
	for (size_t i = 0; i < l.n; i++) {
		const struct filter_rule *r = &l.v[i];
		char actions[300] = "";
		size_t len = 0;

		for (size_t j = 0; j < r->nactions; j++) {
			int w = snprintf(
				actions + len, sizeof(actions) - len, "%s%s",
				j > 0 ? ", " : "",
				filter_action_kind_str(r->actions[j].kind));
			if (w < 0 || (size_t)w >= sizeof(actions) - len)
				break;
			len += (size_t)w;
		}
		if (arr != NULL)
			json_array_append_new(
				arr,
				json_pack("{s:I,s:s,s:b,s:s,s:s,s:I,s:s}",
					  "position", (json_int_t)(i + 1),
					  "name", r->name, "enabled",
					  r->enabled, "scope",
					  ctl_filter_scope(r->scope), "match",
					  r->match_any ? "any" : "all",
					  "conditions", (json_int_t)r->nconds,
					  "actions", actions));
		else
			printf("%3zu  %-8s %-8s \"%s\": %zu condition%s -> "
			       "%s\n",
			       i + 1, r->enabled ? "enabled" : "disabled",
			       ctl_filter_scope(r->scope), r->name, r->nconds,
			       r->nconds == 1 ? "" : "s", actions);
	}
	filter_rules_clear(&l);
	return arr != NULL ? ctl_json_print(arr) : 0;
}

/* Finds rule `name` (without regard to case). Returns its index or -1. */
static long ctl_filter_find(const struct filter_rules *l, const char *name)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcasecmp(l->v[i].name, name) == 0)
			return (long)i;
	return -1;
}

static int ctl_filter_show(struct ctl *ctl, int argc, char **argv)
{
	struct filter_rules l;
	struct buf b;
	long i;
	int rc = 0;

	if (ctl_filter_load(ctl, &l) != 0)
		return 1;
	i = ctl_filter_find(&l, argv[0]);
	if (i < 0) {
		filter_rules_clear(&l);
		return ctl_fail("no filter rule is named \"%s\"", argv[0]);
	}
	buf_init(&b, FILTER_RULE_TEXT_MAX * 4);
	if (filter_rule_write(&l.v[i], &b) < 0)
		rc = ctl_fail("the rule is too large to print");
	else
		fwrite(b.data, 1, b.len, stdout);
	buf_deinit(&b);
	filter_rules_clear(&l);
	return rc;
}

static int ctl_filter_export(struct ctl *ctl, int argc, char **argv)
{
	struct filter_rules l;
	struct buf b;
	int rc = 0;

	if (ctl_filter_load(ctl, &l) != 0)
		return 1;
	buf_init(&b, FILTER_FILE_MAX);
	if (filter_rules_write(&l, &b) < 0)
		rc = ctl_fail("the rules are too large to export");
	else if (fwrite(b.data, 1, b.len, stdout) != b.len ||
		 fflush(stdout) != 0)
		rc = ctl_fail("cannot write the rules: %m");
	buf_deinit(&b);
	filter_rules_clear(&l);
	return rc;
}

struct ctl_filter_groups {
	const char *want;
	int found;
};

static void ctl_filter_group_cb(const char *name, const char *members,
				void *arg)
{
	struct ctl_filter_groups *g = arg;

	if (strcasecmp(name, g->want) == 0)
		g->found = 1;
}

static void ctl_filter_warn_groups(struct directory *d,
				   const struct filter_rules *l)
{
	for (size_t i = 0; i < l->n; i++) {
		for (size_t j = 0; j < l->v[i].nconds; j++) {
			const struct filter_cond *c = &l->v[i].conds[j];
			struct ctl_filter_groups g = {c->value, 0};
			const char *err;

			if (c->kind != FILTER_COND_SENDER_GROUP &&
			    c->kind != FILTER_COND_RCPT_GROUP)
				continue;
			if (directory_group_list(d, ctl_filter_group_cb, &g,
						 &err) > 0 &&
			    !g.found)
				fprintf(stderr,
					"petrelctl: warning: rule \"%s\" names "
					"group %s, which does not exist (it "
					"matches nobody)\n",
					l->v[i].name, c->value);
		}
	}
}

static int ctl_filter_import(struct ctl *ctl, int argc, char **argv)
{
	struct directory *d;
	struct filter_rules l = {0};
	struct buf file, text;
	char error[400];
	const char *err = NULL;
	int n, r = 1;

	if (ctl_filter_read(argv[0], &file, FILTER_FILE_MAX) < 0)
		return 1;
	n = filter_parse(buf_cstr(&file), file.len, &l, error, sizeof(error));
	buf_deinit(&file);
	if (n < 0)
		return ctl_fail("%s: %s", argv[0], error);
	d = ctl_directory(ctl);
	if (d == NULL) {
		filter_rules_clear(&l);
		return 1;
	}
	buf_init(&text, FILTER_RULE_TEXT_MAX);
	if (directory_begin(d, &err) < 0)
		goto fail;
	if (directory_filter_clear(d, &err) < 0)
		goto fail;
	for (size_t i = 0; i < l.n; i++) {
		buf_reset(&text);
		if (filter_rule_write(&l.v[i], &text) < 0) {
			snprintf(error, sizeof(error),
				 "rule \"%.80s\" is longer than %d bytes",
				 l.v[i].name, FILTER_RULE_TEXT_MAX);
			err = error;
			goto fail;
		}
		if (directory_filter_append(d, l.v[i].name, l.v[i].enabled,
					    buf_cstr(&text), &err) < 0)
			goto fail;
	}
	if (directory_commit(d, &err) < 0)
		goto fail;
	r = 0;
	if (!ctl->json)
		printf("imported %d rule%s\n", n, n == 1 ? "" : "s");
	/* Say which groups the rules name that do not exist (yet): such a
	 * condition matches nobody until the group is made. */
	ctl_filter_warn_groups(d, &l);
	filter_rules_clear(&l);
	buf_deinit(&text);
	return r;
fail:
	directory_rollback(d);
	filter_rules_clear(&l);
	buf_deinit(&text);
	return ctl_fail("%s", err != NULL ? err : "import failed");
}

/* Rewrites rule `name` with a new enabled state. */
static int ctl_filter_set_enabled(struct ctl *ctl, const char *name,
				  int enabled)
{
	struct filter_rules l;
	struct directory *d;
	struct buf text;
	const char *err = NULL;
	long i;
	int rc = 0;

	if (ctl_filter_load(ctl, &l) != 0)
		return 1;
	i = ctl_filter_find(&l, name);
	if (i < 0) {
		filter_rules_clear(&l);
		return ctl_fail("no filter rule is named \"%s\"", name);
	}
	d = ctl_directory(ctl);
	l.v[i].enabled = enabled;
	buf_init(&text, FILTER_RULE_TEXT_MAX);
	if (filter_rule_write(&l.v[i], &text) < 0 ||
	    directory_filter_update(d, l.v[i].name, enabled, buf_cstr(&text),
				    &err) <= 0)
		rc = ctl_fail("%s", err != NULL ? err : "rule too large");
	else if (!ctl->json)
		printf("rule \"%s\" %s\n", l.v[i].name,
		       enabled ? "enabled" : "disabled");
	buf_deinit(&text);
	filter_rules_clear(&l);
	return rc;
}

static int ctl_filter_enable(struct ctl *ctl, int argc, char **argv)
{
	return ctl_filter_set_enabled(ctl, argv[0], 1);
}

static int ctl_filter_disable(struct ctl *ctl, int argc, char **argv)
{
	return ctl_filter_set_enabled(ctl, argv[0], 0);
}

static int ctl_filter_delete(struct ctl *ctl, int argc, char **argv)
{
	struct directory *d = ctl_directory(ctl);
	const char *err = NULL;

	if (d == NULL)
		return 1;
	if (directory_filter_delete(d, argv[0], &err) <= 0)
		return ctl_fail("%s", err);
	if (!ctl->json)
		printf("rule \"%s\" deleted\n", argv[0]);
	return 0;
}

static int ctl_filter_move(struct ctl *ctl, int argc, char **argv)
{
	struct directory *d = ctl_directory(ctl);
	const char *err = NULL;
	int64_t pos, to;
	char *end;

	if (d == NULL)
		return 1;
	if (directory_begin(d, &err) < 0)
		return ctl_fail("%s", err);
	if (directory_filter_position(d, argv[0], &pos, &err) <= 0)
		goto fail;
	if (argc == 2 && strcmp(argv[1], "up") == 0) {
		to = pos - 1;
	} else if (argc == 2 && strcmp(argv[1], "down") == 0) {
		to = pos + 1;
	} else if (argc == 3 && strcmp(argv[1], "to") == 0) {
		to = strtoll(argv[2], &end, 10);
		if (*end != '\0' || argv[2][0] == '\0' || to < 1) {
			directory_rollback(d);
			return ctl_usage("%s", CTL_FILTER_USAGE);
		}
	} else {
		directory_rollback(d);
		return ctl_usage("%s", CTL_FILTER_USAGE);
	}
	if (directory_filter_move(d, argv[0], to, &err) <= 0 ||
	    directory_filter_position(d, argv[0], &pos, &err) <= 0 ||
	    directory_commit(d, &err) < 0)
		goto fail;
	if (!ctl->json)
		printf("rule \"%s\" is now at position %lld\n", argv[0],
		       (long long)pos);
	return 0;
fail:
	directory_rollback(d);
	return ctl_fail("%s", err != NULL ? err : "move failed");
}

static int ctl_filter_local(struct directory *d, const char *addr)
{
	const char *at = strrchr(addr, '@');

	return at != NULL && directory_domain_exists(d, at + 1) == 1;
}

static int ctl_filter_test(struct ctl *ctl, int argc, char **argv)
{
	struct directory *d;
	struct filter_set *set;
	struct filter_facts f;
	struct filter_result res;
	struct filter_rcpt rcpts[100];
	const char *from = NULL, *auth = "", *ip = "127.0.0.1";
	char primary[256], error[300];
	struct buf msg;
	size_t n = 0;
	int rc;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--from") == 0 && i + 1 < argc) {
			from = argv[++i];
		} else if (strcmp(argv[i], "--to") == 0 && i + 1 < argc &&
			   n < 100) {
			rcpts[n++].address = argv[++i];
		} else if (strcmp(argv[i], "--ip") == 0 && i + 1 < argc) {
			ip = argv[++i];
		} else if (strcmp(argv[i], "--auth") == 0) {
			auth = i + 1 < argc && argv[i + 1][0] != '-'
				       ? argv[++i]
				       : (from != NULL ? from : "yes");
		} else {
			return ctl_usage("%s", CTL_FILTER_USAGE);
		}
	}
	if (from == NULL || n == 0)
		return ctl_usage("%s", CTL_FILTER_USAGE);
	d = ctl_directory(ctl);
	if (d == NULL)
		return 1;
	set = filter_store_load(d, error, sizeof(error));
	if (set == NULL)
		return ctl_fail("%s", error);
	if (ctl_filter_read(argv[0], &msg, 1024u * 1024 * 1024) < 0) {
		filter_set_unref(set);
		return 1;
	}
	for (size_t i = 0; i < n; i++)
		rcpts[i].local = ctl_filter_local(d, rcpts[i].address);
	filter_store_primary_domain(d, primary, sizeof(primary));
	memset(&f, 0, sizeof(f));
	f.sender = strcmp(from, "<>") == 0 ? "" : from;
	f.auth = auth;
	f.client_ip = ip;
	f.msg = buf_cstr(&msg);
	f.len = msg.len;
	f.message_id = "";
	f.primary_domain = primary;
	f.now = clock_now();
	f.is_member = filter_store_is_member;
	f.ctx = d;
	rc = filter_eval(set, &f, rcpts, n, &res);
	if (rc < 0) {
		printf("filter fails: %s\nthe message would be held\n",
		       res.error);
		goto out;
	}
	for (size_t i = 0; i < res.nfired; i++)
		printf("rule \"%s\" matches (%zu recipient%s): %s\n",
		       filter_set_rules(set)->v[res.fired[i].rule].name,
		       res.fired[i].nrcpt, res.fired[i].nrcpt == 1 ? "" : "s",
		       res.fired[i].actions);
	if (res.nfired == 0)
		printf("no rule matches\n");
	if (res.reject) {
		printf("refused at SMTP time: %s\n", res.reply);
	} else {
		for (size_t i = 0; i < n; i++) {
			const struct filter_outcome *o = &res.out[i];

			printf("%s: ", rcpts[i].address);
			if (o->deleted) {
				printf("deleted\n");
				continue;
			}
			printf("%s", o->bad    ? "to the bad queue"
				     : o->hold ? "to the hold queue"
					       : "delivered");
			if (o->redirect.len > 0)
				printf(", redirected to %s",
				       buf_cstr(&o->redirect));
			if (o->copies.len > 0)
				printf(", copied to %s", buf_cstr(&o->copies));
			if (o->strip)
				printf(", attachments stripped");
			if (o->edits.len > 0)
				printf(", headers changed");
			printf("\n");
		}
	}
	for (size_t i = 0; i < res.nnotes; i++)
		printf("note to %s from %s: %s%s\n", res.notes[i].to,
		       res.notes[i].from, res.notes[i].subject,
		       res.notes[i].attach ? " (original attached)" : "");
	filter_result_deinit(&res);
out:
	buf_deinit(&msg);
	filter_set_unref(set);
	return 0;
}

static const struct ctl_verb ctl_filter_verbs[] = {
	{"list", 0, 0, ctl_filter_list},
	{"show", 1, 1, ctl_filter_show},
	{"import", 1, 1, ctl_filter_import},
	{"export", 0, 0, ctl_filter_export},
	{"move", 2, 3, ctl_filter_move},
	{"enable", 1, 1, ctl_filter_enable},
	{"disable", 1, 1, ctl_filter_disable},
	{"delete", 1, 1, ctl_filter_delete},
	{"test", 3, -1, ctl_filter_test},
};

int ctl_filter(struct ctl *ctl, int argc, char **argv)
{
	return ctl_dispatch(ctl, ctl_filter_verbs,
			    sizeof(ctl_filter_verbs) /
				    sizeof(*ctl_filter_verbs),
			    CTL_FILTER_USAGE, argc, argv);
}
