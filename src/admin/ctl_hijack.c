/*
 * ctl_hijack: `petrelctl hijack list | release ADDR [--release-held |
 * --delete-held]`, and the hijack window that `account show` prints. A
 * release re-activates a frozen account at once: the daemon sees the
 * directory change within a second and starts the account's window anew.
 */
#include "admin/ctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "directory/directory.h"
#include "directory/settings.h"
#include "policy/hijack.h"
#include "queue/queue.h"

#define CTL_HIJACK_USAGE                                                       \
	"hijack list | release ADDR [--release-held|--delete-held]"

/* --- the window --- */

static void ctl_hijack_send_cb(const struct directory_hijack_send *s, void *ctx)
{
	struct hijack_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.time = s->time;
	ev.rcpts = s->rcpts;
	snprintf(ev.ip, sizeof(ev.ip), "%s", s->ip);
	ev.private_ip = hijack_ip_private(ev.ip);
	hijack_record(ctx, s->account, &ev);
}

static void ctl_hijack_login_cb(const char *account, int64_t time,
				const char *ip, void *ctx)
{
	hijack_login(ctx, account, ip, hijack_ip_private(ip), time);
}

int ctl_hijack_window(struct directory *d, const char *account, json_t *j)
{
	struct settings *s;
	struct hijack_limits lim;
	struct hijack_tally t;
	struct hijack *h = hijack_new();
	const char *err;
	int64_t now = (int64_t)time(NULL) * 1000;

	s = directory_settings_load(d, &err);
	if (s == NULL || h == NULL) {
		settings_unref(s);
		hijack_free(h);
		ctl_fail("%s", s == NULL ? err : "out of memory");
		return -1;
	}
	hijack_limits_get(s, &lim);
	if (directory_hijack_load(d, account, now - lim.window_ms,
				  ctl_hijack_send_cb, ctl_hijack_login_cb, h,
				  &err) < 0) {
		settings_unref(s);
		hijack_free(h);
		ctl_fail("%s", err);
		return -1;
	}
	hijack_tally(h, account, 0, &lim, now, &t);
	if (j != NULL) {
		json_object_set_new(
			j, "hijack_window",
			json_pack(
				"{s:I, s:i, s:i, s:i, s:i, s:i, s:i, s:b}",
				"minutes", (json_int_t)(lim.window_ms / 60000),
				"messages", (int)t.messages, "max_messages",
				(int)t.max_messages, "recipients",
				(int)t.recipients, "max_recipients",
				(int)t.max_recipients, "ips", (int)t.ips,
				"max_ips", (int)t.max_ips, "exempt",
				hijack_exempt(
					settings_str(s, SETTING_HIJACK_EXEMPT),
					account)));
	} else {
		printf("window:     %u/%u messages, %u/%u recipients, %u/%u "
		       "client IPs in %lld minutes%s\n",
		       t.messages, t.max_messages, t.recipients,
		       t.max_recipients, t.ips, t.max_ips,
		       (long long)(lim.window_ms / 60000),
		       hijack_exempt(settings_str(s, SETTING_HIJACK_EXEMPT),
				     account)
			       ? " (exempt)"
			       : "");
	}
	settings_unref(s);
	hijack_free(h);
	return 0;
}

/* --- held messages --- */

static const enum queue_name ctl_held_queue[] = {QUEUE_HOLD};

static size_t ctl_held_count(const struct queue_sent *h, const char *account)
{
	size_t n = 0;

	for (size_t i = 0; i < h->n; i++)
		if (strcasecmp(h->accounts[i], account) == 0)
			n++;
	return n;
}

/* --- list --- */

struct ctl_frozen {
	json_t *json;
	struct queue_sent *held;
	size_t count;
};

static void ctl_frozen_cb(const struct directory_account *a, void *ctx)
{
	struct ctl_frozen *f = ctx;
	char when[64];
	size_t held;

	if (a->state != DIRECTORY_ACCOUNT_FROZEN)
		return;
	f->count++;
	held = ctl_held_count(f->held, a->address);
	if (f->json != NULL) {
		json_array_append_new(
			f->json,
			json_pack("{s:s, s:I, s:s, s:I}", "address", a->address,
				  "since", (json_int_t)a->state_time, "reason",
				  a->state_reason, "held", (json_int_t)held));
		return;
	}
	printf("%s  frozen since %s  held %zu  (%s)\n", a->address,
	       ctl_time(a->state_time, when, sizeof(when)), held,
	       a->state_reason);
}

static int ctl_hijack_list(struct ctl *ctl, int argc, char **argv)
{
	struct directory *d = ctl_directory(ctl);
	struct queue_sent held = {0};
	struct ctl_frozen f = {0};
	struct queue *q;
	const char *err;
	int rc = 0;

	(void)argc;
	(void)argv;
	if (d == NULL || (q = ctl_queue_open(ctl)) == NULL)
		return 1;
	if (queue_sent_by(q, ctl_held_queue, 1, NULL, &held, &err) < 0) {
		rc = ctl_fail("%s", err);
		goto out;
	}
	f.held = &held;
	if (ctl->json && (f.json = json_array()) == NULL) {
		rc = ctl_fail("out of memory");
		goto out;
	}
	if (directory_account_list(d, ctl_frozen_cb, &f, &err) < 0) {
		json_decref(f.json);
		rc = ctl_fail("%s", err);
		goto out;
	}
	if (f.json != NULL)
		rc = ctl_json_print(f.json);
	else if (f.count == 0)
		printf("no account is frozen\n");
out:
	queue_sent_free(&held);
	queue_close(q);
	return rc;
}

/* --- release --- */

static int ctl_hijack_release(struct ctl *ctl, int argc, char **argv)
{
	struct directory *d = ctl_directory(ctl);
	struct queue_sent held = {0};
	struct directory_account a;
	struct queue *q;
	const char *err = NULL, *mode = "keep";
	char reason[128];
	size_t done = 0;
	int64_t now = (int64_t)time(NULL);
	int r, rc = 0;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--release-held") == 0)
			mode = "release";
		else if (strcmp(argv[i], "--delete-held") == 0)
			mode = "delete";
		else
			return ctl_usage("%s", CTL_HIJACK_USAGE);
	}
	if (d == NULL)
		return 1;
	r = directory_account_get(d, argv[0], &a, &err);
	if (r < 0)
		return ctl_fail("%s", err);
	if (r == 0)
		return ctl_fail("no account %s", argv[0]);
	if (a.state != DIRECTORY_ACCOUNT_FROZEN)
		return ctl_fail("%s is not frozen", a.address);
	snprintf(reason, sizeof(reason), "re-activated with petrelctl");
	if (directory_begin(d, &err) < 0 ||
	    directory_account_set_state(d, a.address, DIRECTORY_ACCOUNT_ENABLED,
					reason, now, &err) < 0 ||
	    directory_hijack_forget(d, a.address, 0, &err) < 0 ||
	    directory_security_event_add(d, now, "account-reactivated",
					 a.address, NULL, reason, &err) < 0 ||
	    directory_commit(d, &err) < 0) {
		directory_rollback(d);
		return ctl_fail("%s", err != NULL ? err : "failed");
	}
	if ((q = ctl_queue_open(ctl)) == NULL)
		return 1;
	if (queue_sent_by(q, ctl_held_queue, 1, a.address, &held, &err) < 0) {
		rc = ctl_fail("%s", err);
		goto out;
	}
	for (size_t i = 0; i < held.n && strcmp(mode, "keep") != 0; i++) {
		r = strcmp(mode, "release") == 0
			    ? queue_move(q, held.ids[i], QUEUE_ACTIVE, NULL,
					 &err)
			    : queue_delete(q, held.ids[i], &err);
		if (r < 0)
			rc = ctl_fail("%s: %s", held.ids[i], err);
		else if (r == 1)
			done++;
	}
	if (strcmp(mode, "release") == 0 && done > 0)
		ctl_queue_kick(ctl);
	printf("%s re-activated; %zu held message(s) %s\n", a.address,
	       strcmp(mode, "keep") == 0 ? held.n : done,
	       strcmp(mode, "release") == 0  ? "released"
	       : strcmp(mode, "delete") == 0 ? "deleted"
					     : "left on hold");
out:
	queue_sent_free(&held);
	queue_close(q);
	return rc;
}

int ctl_hijack(struct ctl *ctl, int argc, char **argv)
{
	static const struct ctl_verb verbs[] = {
		{"list", 0, 0, ctl_hijack_list},
		{"release", 1, 2, ctl_hijack_release},
	};

	return ctl_dispatch(ctl, verbs, sizeof(verbs) / sizeof(verbs[0]),
			    CTL_HIJACK_USAGE, argc, argv);
}
