/*
 * Unit tests of policy/hijacking, the daemon's side of hijack detection:
 * the re-activation token that a freeze issues and a reply to the alert
 * takes, against hijack.token_hours, on the injected clock (lib/clock.h)
 * rather than by editing the stored expiry. The real freeze and reply
 * jobs run on a worker pool and an event loop of their own, over a
 * directory and a spool in a temporary folder.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ftw.h>
#include <glob.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "unit_tmp.h"
#include <sodium.h>

#include "directory/directory.h"
#include "directory/settings.h"
#include "lib/clock.h"
#include "lib/config.h"
#include "lib/env.h"
#include "lib/io.h"
#include "lib/io_worker.h"
#include "lib/log.h"
#include "policy/hijacking.h"
#include "queue/queue.h"

#define T0 1700000000000LL /* ms */
#define HOUR 3600000LL
#define SEC 1000LL
#define A "alice@example.test"
#define PM "postmaster@example.test"

struct fixture {
	char dir[64];
	char db[128];
	struct config cfg;
	struct env env;
	struct io_timer *idle;
	unsigned ticks;
	char alert_id[QUEUE_ID_SIZE];
	/* the outcome of the last reply */
	int replied, ok;
	char text[512];
};

static void *thread_init(void *arg)
{
	struct fixture *f = arg;
	struct env_thread *t = calloc(1, sizeof(*t));
	const char *err;

	if (t != NULL)
		t->dir = directory_open(f->db, &err);
	return t;
}

static void thread_deinit(void *state)
{
	struct env_thread *t = state;

	if (t == NULL)
		return;
	directory_close(t->dir);
	free(t);
}

static void queued_cb(struct env *env, const char *queue_id)
{
	struct fixture *f =
		(struct fixture *)((char *)env - offsetof(struct fixture, env));

	/* The first message queued after a freeze is its alert. */
	if (f->alert_id[0] == '\0')
		snprintf(f->alert_id, sizeof(f->alert_id), "%s", queue_id);
}

/* Stops the loop once every job submitted to it has completed. */
static void idle_cb(void *arg)
{
	struct fixture *f = arg;

	if (io_loop_pending(f->env.loop) == 0 || ++f->ticks > 2000) {
		io_loop_exit(f->env.loop);
		return;
	}
	io_timer_add(f->idle, 5);
}

static void run_jobs(struct fixture *f)
{
	f->ticks = 0;
	io_timer_add(f->idle, 5);
	assert_int_equal(io_loop_run(f->env.loop), 0);
	assert_int_equal(io_loop_pending(f->env.loop), 0);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	const char *err = NULL;
	char logdir[128];

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/petrel-test-hijacking-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->db, sizeof(f->db), "%s/petrel.db", f->dir);
	snprintf(logdir, sizeof(logdir), "%s/log", f->dir);
	assert_int_equal(log_init(logdir, 0, &err), 0);
	clock_set_fake(T0);
	config_defaults(&f->cfg);
	snprintf(f->cfg.hostname, sizeof(f->cfg.hostname), "mx.example.test");
	snprintf(f->cfg.data_dir, sizeof(f->cfg.data_dir), "%s", f->dir);
	f->env.cfg = &f->cfg;
	f->env.dir = directory_open(f->db, &err);
	assert_non_null(f->env.dir);
	assert_int_equal(directory_domain_add(f->env.dir, "example.test", &err),
			 1);
	for (size_t i = 0; i < 2; i++)
		assert_int_equal(
			directory_account_add(f->env.dir, i == 0 ? A : PM,
					      "correct horse battery staple", 0,
					      &err),
			1);
	f->env.settings = directory_settings_load(f->env.dir, &err);
	assert_non_null(f->env.settings);
	f->env.queue = queue_open(f->dir, &err);
	assert_non_null(f->env.queue);
	f->env.loop = io_loop_new();
	assert_non_null(f->env.loop);
	f->env.workers = io_workers_new(f->env.loop, 1, thread_init,
					thread_deinit, f, &err);
	assert_non_null(f->env.workers);
	f->env.message_queued = queued_cb;
	f->idle = io_timer_new(f->env.loop, idle_cb, f);
	assert_non_null(f->idle);
	assert_int_equal(hijacking_start(&f->env, &err), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	io_workers_free(f->env.workers);
	io_loop_drain(f->env.loop);
	hijacking_stop(&f->env);
	io_timer_free(f->idle);
	io_loop_free(f->env.loop);
	queue_close(f->env.queue);
	settings_unref(f->env.settings);
	directory_close(f->env.dir);
	log_deinit();
	clock_set_fake(-1);
	unit_rmtree(f->dir);
	free(f);
	return 0;
}

/* Sets hijack.token_hours and takes the new snapshot, as the daemon's
 * reload does. */
static void set_token_hours(struct fixture *f, const char *hours)
{
	const char *err = NULL;
	struct settings *s;

	assert_int_equal(directory_setting_set(f->env.dir, "hijack.token_hours",
					       hours, &err),
			 1);
	s = directory_settings_load(f->env.dir, &err);
	assert_non_null(s);
	settings_unref(f->env.settings);
	f->env.settings = s;
}

static int account_state(struct fixture *f)
{
	struct directory_account a;
	const char *err = NULL;

	assert_int_equal(directory_account_get(f->env.dir, A, &a, &err), 1);
	return (int)a.state;
}

/* Freezes alice now (on the fake clock) and returns the token of the
 * alert's Reply-To, read back from the spool. */
static void freeze(struct fixture *f, char token_r[HIJACK_TOKEN_LEN + 1])
{
	static const char prefix[] = "Reply-To: <" HIJACK_TOKEN_PREFIX;
	struct hijack_tally t;
	uint64_t off = 0, len = 0;
	const char *err = NULL, *p;
	char head[8192];
	ssize_t n;
	int fd = -1;

	memset(&t, 0, sizeof(t));
	t.messages = 6;
	t.max_messages = 5;
	f->alert_id[0] = '\0';
	hijacking_freeze(&f->env, "test", A, "192.0.2.1", HIJACK_OVER_MESSAGES,
			 &t);
	run_jobs(f);
	assert_int_equal(account_state(f), DIRECTORY_ACCOUNT_FROZEN);
	assert_true(f->alert_id[0] != '\0');
	assert_int_equal(queue_body_open(f->env.queue, f->alert_id, &fd, &off,
					 &len, &err),
			 1);
	n = pread(fd, head, sizeof(head) - 1,
		  (off_t)off); /* the headers are first */
	close(fd);
	assert_true(n > 0);
	head[n] = '\0';
	p = strstr(head, prefix);
	assert_non_null(p);
	p += strlen(prefix);
	assert_int_equal(strcspn(p, "@"), HIJACK_TOKEN_LEN);
	memcpy(token_r, p, HIJACK_TOKEN_LEN);
	token_r[HIJACK_TOKEN_LEN] = '\0';
}

static void reply_done(void *arg, int ok, const char *text)
{
	struct fixture *f = arg;

	f->replied = 1;
	f->ok = ok;
	snprintf(f->text, sizeof(f->text), "%s", text);
}

/* The postmaster replies "ok" with token at ms on the fake clock: 1 when
 * the account was re-activated, 0 when refused (f->text says why). */
static int reply_at(struct fixture *f, const char *token, int64_t ms)
{
	clock_set_fake(ms);
	f->replied = 0;
	assert_int_equal(hijacking_reply(&f->env, "test", PM, token,
					 "example.test", "ok", reply_done, f),
			 0);
	run_jobs(f);
	assert_true(f->replied);
	return f->ok;
}

static void expect_expired(struct fixture *f, const char *token, int64_t ms)
{
	assert_int_equal(reply_at(f, token, ms), 0);
	assert_string_equal(f->text,
			    "550 5.7.1 Re-activation refused: token expired");
	assert_int_equal(account_state(f), DIRECTORY_ACCOUNT_FROZEN);
}

static void expect_accepted(struct fixture *f, const char *token, int64_t ms)
{
	assert_int_equal(reply_at(f, token, ms), 1);
	assert_non_null(
		strstr(f->text, "250 2.0.0 Ok: account " A " re-activated"));
	assert_int_equal(account_state(f), DIRECTORY_ACCOUNT_ENABLED);
}

/* The default, 72 hours: the token is refused from the second its time
 * is up, and the same token is taken one second before (a refusal does
 * not use it up, so only the clock tells the two apart). */
static void test_token_hours_default(void **state)
{
	struct fixture *f = *state;
	char token[HIJACK_TOKEN_LEN + 1];

	freeze(f, token);
	expect_expired(f, token, T0 + 72 * HOUR + 30 * SEC);
	expect_expired(f, token, T0 + 72 * HOUR);
	expect_accepted(f, token, T0 + 72 * HOUR - SEC);
	/* Single use. */
	assert_int_equal(reply_at(f, token, T0 + 72 * HOUR - SEC), 0);
	assert_string_equal(
		f->text, "550 5.7.1 Re-activation refused: token already used");
	sodium_memzero(token, sizeof(token));
}

/* A changed hijack.token_hours is honoured by the next freeze: with 2
 * hours, a token 2 hours old is refused where 72 hours would take it;
 * with 100, one 72 hours old is still good. */
static void test_token_hours_changed(void **state)
{
	struct fixture *f = *state;
	char token[HIJACK_TOKEN_LEN + 1];
	int64_t t1 = T0 + 500 * HOUR, t2 = T0 + 1000 * HOUR;

	set_token_hours(f, "2");
	clock_set_fake(t1);
	freeze(f, token);
	expect_expired(f, token, t1 + 2 * HOUR);
	expect_accepted(f, token, t1 + 2 * HOUR - SEC);

	set_token_hours(f, "100");
	clock_set_fake(t2);
	freeze(f, token);
	expect_expired(f, token, t2 + 100 * HOUR);
	expect_accepted(f, token, t2 + 100 * HOUR - SEC);
	sodium_memzero(token, sizeof(token));
}

/* A domain without a postmaster account, and hijack.notify empty: the
 * freeze still happens, no alert can be queued, and the log says why
 * (notice_queue() answers 0 and sets no error text of its own). */
static void test_freeze_without_a_postmaster(void **state)
{
	struct fixture *f = *state;
	struct hijack_tally t;
	struct directory_account a;
	const char *err = NULL;
	char path[160], text[8192];
	FILE *fp;
	glob_t g;
	size_t n;

	assert_int_equal(directory_domain_add(f->env.dir, "other.test", &err),
			 1);
	assert_int_equal(directory_account_add(f->env.dir, "carol@other.test",
					       "correct horse battery staple",
					       0, &err),
			 1);
	memset(&t, 0, sizeof(t));
	f->alert_id[0] = '\0';
	hijacking_freeze(&f->env, "test", "carol@other.test", "192.0.2.1",
			 HIJACK_OVER_MESSAGES, &t);
	run_jobs(f);
	assert_int_equal(
		directory_account_get(f->env.dir, "carol@other.test", &a, &err),
		1);
	assert_int_equal(a.state, DIRECTORY_ACCOUNT_FROZEN);
	assert_string_equal(f->alert_id, "");
	snprintf(path, sizeof(path), "%s/log/system-*.log", f->dir);
	assert_int_equal(glob(path, 0, NULL, &g), 0);
	assert_int_equal(g.gl_pathc, 1);
	fp = fopen(g.gl_pathv[0], "r");
	globfree(&g);
	assert_non_null(fp);
	n = fread(text, 1, sizeof(text) - 1, fp);
	fclose(fp);
	text[n] = '\0';
	assert_non_null(strstr(text, "cannot queue the hijack alert for "
				     "carol@other.test: no recipient"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_token_hours_default, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_token_hours_changed, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_freeze_without_a_postmaster, setup, teardown),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
