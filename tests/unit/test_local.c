/* Unit tests of delivery/local (Maildir delivery) and delivery/delivery
 * (delivery_local_run over the spool). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "unit_tmp.h"

#include "delivery/delivery.h"
#include "delivery/local.h"
#include "lib/log.h"
#include "queue/queue.h"

struct fixture {
	char dir[64];
	struct queue *q;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	const char *error = NULL;
	char logdir[128];

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/petrel-test-local-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->q = queue_open(f->dir, &error);
	assert_non_null(f->q);
	snprintf(logdir, sizeof(logdir), "%s/log", f->dir);
	assert_int_equal(log_init(logdir, 0, &error), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	log_deinit();
	queue_close(f->q);
	unit_rmtree(f->dir);
	free(f);
	return 0;
}

/* The names in <maildir>/<sub>; returns how many (at most max). */
static size_t list_dir(const char *path, char names[][512], size_t max)
{
	struct dirent *e;
	size_t n = 0;
	DIR *d = opendir(path);

	if (d == NULL)
		return 0;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		if (n < max)
			snprintf(names[n], 512, "%s", e->d_name);
		n++;
	}
	closedir(d);
	return n;
}

static char *read_file(const char *path, size_t *len_r)
{
	struct stat st;
	char *data;
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	data = malloc((size_t)st.st_size + 1);
	assert_non_null(data);
	assert_int_equal(read(fd, data, (size_t)st.st_size), st.st_size);
	data[st.st_size] = '\0';
	close(fd);
	*len_r = (size_t)st.st_size;
	return data;
}

/* Files in new/ of an account's Maildir. */
static size_t new_count(struct fixture *f, const char *account)
{
	char md[512], path[520], names[4][512];

	assert_int_equal(local_maildir_path(f->dir, account, md, sizeof(md)),
			 1);
	snprintf(path, sizeof(path), "%s/new", md);
	return list_dir(path, names, 4);
}

/* ---- paths ---- */

static const struct {
	const char *account;
	const char *want; /* NULL: refused */
} path_cases[] = {
	{"bob@example.com", "D/mail/example.com/bob/Maildir"},
	{"Bob.Smith@Example.COM", "D/mail/example.com/bob.smith/Maildir"},
	{"a+tag@x.test", "D/mail/x.test/a+tag/Maildir"},
	{"no-at-sign", NULL},
	{"@example.com", NULL},
	{"bob@", NULL},
	{"../x@example.com", NULL},
	{"..@example.com", NULL},
	{".hidden@example.com", NULL},
	{"bob@..", NULL},
	{"bob@.example.com", NULL},
	{"a/b@example.com", NULL},
	{"bob@example.com/../../etc", NULL},
	{"bo\nb@example.com", NULL},
	{"bob@exa\x7fmple.com", NULL},
	{NULL, NULL},
};

static void test_paths(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(path_cases) / sizeof(path_cases[0]);
	     i++) {
		char path[256];
		int r = local_maildir_path("D", path_cases[i].account, path,
					   sizeof(path));

		if (path_cases[i].want == NULL) {
			if (r != 0)
				fail_msg("%s: accepted as %s",
					 path_cases[i].account, path);
			continue;
		}
		assert_int_equal(r, 1);
		assert_string_equal(path, path_cases[i].want);
	}
	{
		char small[10];
		assert_int_equal(local_maildir_path("D", "bob@example.com",
						    small, sizeof(small)),
				 0);
	}
}

/* ---- one delivery ---- */

/* Writes data into a scratch file at offset 7 and returns its fd. */
static int body_file(struct fixture *f, const char *data, size_t len)
{
	char path[128];
	int fd;

	snprintf(path, sizeof(path), "%s/body", f->dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "garbage", 7, 0), 7);
	assert_int_equal(pwrite(fd, data, len, 7), (ssize_t)len);
	return fd;
}

static void deliver_and_check(struct fixture *f, const char *body, size_t len,
			      const char *sender, const char *want_body,
			      size_t want_len, size_t want_lines)
{
	struct local_delivery d;
	const char *error = NULL;
	char path[512], md[512], sub[600], full[1200], names[4][512];
	char want_head[256], *got;
	unsigned long long s, w;
	size_t got_len, head_len;
	struct stat st;
	int fd = body_file(f, body, len);

	memset(&d, 0, sizeof(d));
	d.data_dir = f->dir;
	d.hostname = "mx.example.test";
	d.account = "bob@example.com";
	d.sender = sender;
	d.recipient = "bob@example.com";
	d.body_fd = fd;
	d.body_offset = 7;
	d.body_len = len;
	if (local_deliver(&d, path, sizeof(path), &error) != 1)
		fail_msg("local_deliver: %s", error);
	close(fd);

	assert_int_equal(
		local_maildir_path(f->dir, "bob@example.com", md, sizeof(md)),
		1);
	/* Folders 0700, tmp/ left empty, one file in new/ named right. */
	const char *subs[] = {"", "/tmp", "/new", "/cur"};
	for (int i = 0; i < 4; i++) {
		snprintf(sub, sizeof(sub), "%s%s", md, subs[i]);
		assert_int_equal(stat(sub, &st), 0);
		assert_true(S_ISDIR(st.st_mode));
		assert_int_equal(st.st_mode & 0777, 0700);
	}
	snprintf(sub, sizeof(sub), "%s/tmp", md);
	assert_int_equal(list_dir(sub, names, 4), 0);
	snprintf(sub, sizeof(sub), "%s/new", md);
	assert_int_equal(list_dir(sub, names, 4), 1);
	assert_non_null(strstr(path, "mail/example.com/bob/Maildir/new/"));
	assert_non_null(strstr(path, names[0]));
	/* <secs>.M<usecs>P<pid>Q<n>.<host>,S=<size>,W=<size with CRLF> */
	{
		unsigned long long secs, usecs;
		long pid;
		unsigned q;
		char host[128];
		assert_int_equal(sscanf(names[0], "%llu.M%lluP%ldQ%u.%127[^,]",
					&secs, &usecs, &pid, &q, host),
				 5);
		assert_int_equal(pid, (long)getpid());
		assert_true(usecs < 1000000);
		assert_string_equal(host, "mx.example.test");
	}
	assert_int_equal(
		sscanf(strstr(names[0], ",S="), ",S=%llu,W=%llu", &s, &w), 2);

	snprintf(full, sizeof(full), "%s/new/%s", md, names[0]);
	assert_int_equal(stat(full, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	got = read_file(full, &got_len);
	assert_int_equal(s, got_len);
	snprintf(want_head, sizeof(want_head),
		 "Return-Path: <%s>\nDelivered-To: <bob@example.com>\n",
		 sender);
	head_len = strlen(want_head);
	assert_int_equal(got_len, head_len + want_len);
	assert_memory_equal(got, want_head, head_len);
	assert_memory_equal(got + head_len, want_body, want_len);
	/* W= counts a CR for every LF: the size as POP3 sends it. */
	assert_int_equal(w, got_len + 2 + want_lines);
	free(got);
	unlink(full);
}

static void test_deliver(void **state)
{
	struct fixture *f = *state;
	static const char body[] = "Subject: hi\r\n\r\nline one\r\nbare\rcr\n"
				   "lf only\nend\r\n";
	static const char want[] = "Subject: hi\n\nline one\nbare\rcr\n"
				   "lf only\nend\n";

	deliver_and_check(f, body, sizeof(body) - 1, "alice@example.org", want,
			  sizeof(want) - 1, 6);
	/* The null sender, an empty message, a message ending in CR. */
	deliver_and_check(f, "", 0, "", "", 0, 0);
	deliver_and_check(f, "x\r", 2, "", "x\r", 2, 0);
}

/* A CRLF split across the chunks that are read from the spool. */
static void test_deliver_large(void **state)
{
	struct fixture *f = *state;
	size_t len = 200000, n = 0, lines = 0;
	char *body = malloc(len), *want = malloc(len);

	assert_non_null(body);
	assert_non_null(want);
	for (size_t i = 0; i < len; i++) {
		/* A line ending at every 65536k - 1 boundary and more. */
		int cr = (i % 65536 == 65535) || (i % 100 == 98);
		int lf = (i % 65536 == 0 && i > 0) || (i % 100 == 99);
		if (cr && i + 1 < len) {
			body[i] = '\r';
		} else if (lf && i > 0 && body[i - 1] == '\r') {
			body[i] = '\n';
		} else {
			body[i] = (char)('a' + i % 26);
		}
	}
	for (size_t i = 0; i < len; i++) {
		if (body[i] == '\r' && i + 1 < len && body[i + 1] == '\n')
			continue;
		want[n++] = body[i];
		lines += body[i] == '\n';
	}
	deliver_and_check(f, body, len, "a@b", want, n, lines);
	free(body);
	free(want);
}

static void test_deliver_refused(void **state)
{
	struct fixture *f = *state;
	struct local_delivery d;
	const char *error = NULL;
	char path[256];
	int fd = body_file(f, "x\r\n", 3);

	memset(&d, 0, sizeof(d));
	d.data_dir = f->dir;
	d.hostname = "mx";
	d.account = "../../etc@example.com";
	d.sender = "";
	d.recipient = "x@example.com";
	d.body_fd = fd;
	d.body_len = 3;
	assert_int_equal(local_deliver(&d, path, sizeof(path), &error), 0);
	assert_non_null(error);
	/* A line end in a header value would forge headers. */
	d.account = "bob@example.com";
	d.sender = "a@b>\r\nX-Forged: yes";
	assert_int_equal(local_deliver(&d, path, sizeof(path), &error), 0);
	/* A body shorter than announced: temporary, nothing left in tmp/. */
	d.sender = "";
	d.body_len = 100;
	assert_int_equal(local_deliver(&d, path, sizeof(path), &error), -1);
	{
		char md[512], tmp[520], names[4][512];
		assert_int_equal(local_maildir_path(f->dir, "bob@example.com",
						    md, sizeof(md)),
				 1);
		snprintf(tmp, sizeof(tmp), "%s/tmp", md);
		assert_int_equal(list_dir(tmp, names, 4), 0);
	}
	close(fd);
}

/* ---- delivery_local_run ---- */

static void spool(struct fixture *f, struct queue_rcpt *rcpts, size_t n,
		  char *id_r)
{
	static const char msg[] = "Subject: test\r\n\r\nhello\r\n";
	struct queue_envelope env;
	const char *error = NULL;
	struct queue_writer *w = queue_writer_new(f->q, &error);

	assert_non_null(w);
	memset(&env, 0, sizeof(env));
	env.sender = "alice@example.org";
	env.rcpts = rcpts;
	env.rcpt_count = n;
	assert_int_equal(queue_writer_write(w, msg, sizeof(msg) - 1), 0);
	if (queue_writer_commit(w, &env, &error) != 1)
		fail_msg("commit: %s", error);
	snprintf(id_r, QUEUE_ID_SIZE, "%s", queue_writer_id(w));
	queue_writer_free(w);
}

static int in_queue(struct fixture *f, const char *id, const char *queue)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/queue/%s/%s", f->dir, queue, id);
	return access(path, F_OK) == 0;
}

static void test_run_all_local(void **state)
{
	struct fixture *f = *state;
	struct queue_rcpt r[2] = {
		{.address = "bob@example.com",
		 .mailbox = "bob@example.com",
		 .kind = QUEUE_RCPT_LOCAL},
		{.address = "sales@example.com",
		 .mailbox = "carol@example.com",
		 .kind = QUEUE_RCPT_LOCAL},
	};
	const char *error = NULL;
	char id[QUEUE_ID_SIZE], logpath[700], *log;
	size_t len;

	spool(f, r, 2, id);
	assert_int_equal(delivery_local_run(f->q, f->dir, "mx", id, &error), 1);
	assert_int_equal(new_count(f, "bob@example.com"), 1);
	assert_int_equal(new_count(f, "carol@example.com"), 1);
	/* Every recipient done: the spool file is gone. */
	assert_false(in_queue(f, id, "active"));
	assert_int_equal(delivery_local_run(f->q, f->dir, "mx", id, &error),
			 -1);
	assert_string_equal(error, "no such message");

	/* One line per delivery in the system log, by queue id. */
	{
		char names[4][512];
		snprintf(logpath, sizeof(logpath), "%s/log", f->dir);
		assert_int_equal(list_dir(logpath, names, 4), 1);
		snprintf(logpath, sizeof(logpath), "%s/log/%s", f->dir,
			 names[0]);
	}
	log = read_file(logpath, &len);
	assert_non_null(strstr(log, id));
	assert_non_null(strstr(log, "delivered to <bob@example.com> in "
				    "mail/example.com/bob/Maildir/new/"));
	assert_non_null(strstr(log, "delivered to <sales@example.com> in "
				    "mail/example.com/carol/Maildir/new/"));
	free(log);
}

static void test_run_remote_stays(void **state)
{
	struct fixture *f = *state;
	struct queue_rcpt r[2] = {
		{.address = "dave@remote.test", .kind = QUEUE_RCPT_REMOTE},
		{.address = "bob@example.com",
		 .mailbox = "bob@example.com",
		 .kind = QUEUE_RCPT_LOCAL},
	};
	struct queue_envelope *env = NULL;
	const char *error = NULL;
	char id[QUEUE_ID_SIZE];

	spool(f, r, 2, id);
	assert_int_equal(delivery_local_run(f->q, f->dir, "mx", id, &error), 1);
	assert_true(in_queue(f, id, "active"));
	assert_int_equal(queue_envelope_load(f->q, id, NULL, &env, &error), 1);
	assert_int_equal(env->rcpts[0].status, QUEUE_RCPT_PENDING);
	assert_int_equal(env->rcpts[0].attempts, 0);
	assert_int_equal(env->rcpts[1].status, QUEUE_RCPT_DONE);
	queue_envelope_free(env);
	/* Run again: nothing delivered twice. */
	assert_int_equal(delivery_local_run(f->q, f->dir, "mx", id, &error), 1);
	assert_int_equal(new_count(f, "bob@example.com"), 1);
}

static void test_run_one_fails(void **state)
{
	struct fixture *f = *state;
	struct queue_rcpt r[2] = {
		{.address = "bob@example.com",
		 .mailbox = "bob@example.com",
		 .kind = QUEUE_RCPT_LOCAL},
		{.address = "carol@example.com",
		 .mailbox = "carol@example.com",
		 .kind = QUEUE_RCPT_LOCAL},
	};
	struct queue_envelope *env = NULL;
	const char *error = NULL;
	char id[QUEUE_ID_SIZE], block[256];
	int fd;

	/* carol's Maildir can not be made: a file stands in the way. */
	snprintf(block, sizeof(block), "%s/mail", f->dir);
	assert_int_equal(mkdir(block, 0700), 0);
	snprintf(block, sizeof(block), "%s/mail/example.com", f->dir);
	assert_int_equal(mkdir(block, 0700), 0);
	snprintf(block, sizeof(block), "%s/mail/example.com/carol", f->dir);
	fd = open(block, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	close(fd);

	spool(f, r, 2, id);
	assert_int_equal(delivery_local_run(f->q, f->dir, "mx", id, &error), 0);
	assert_int_equal(new_count(f, "bob@example.com"), 1);
	assert_true(in_queue(f, id, "active"));
	assert_int_equal(queue_envelope_load(f->q, id, NULL, &env, &error), 1);
	assert_int_equal(env->rcpts[0].status, QUEUE_RCPT_DONE);
	assert_int_equal(env->rcpts[1].status, QUEUE_RCPT_PENDING);
	assert_int_equal(env->rcpts[1].attempts, 1);
	assert_non_null(strstr(env->rcpts[1].error, "cannot create"));
	queue_envelope_free(env);

	/* Cleared: the retry delivers carol only, then the file goes. */
	assert_int_equal(unlink(block), 0);
	assert_int_equal(delivery_local_run(f->q, f->dir, "mx", id, &error), 1);
	assert_int_equal(new_count(f, "bob@example.com"), 1);
	assert_int_equal(new_count(f, "carol@example.com"), 1);
	assert_false(in_queue(f, id, "active"));
}

static void test_run_permanent_and_hold(void **state)
{
	struct fixture *f = *state;
	struct queue_rcpt bad[1] = {
		{.address = "x@example.com",
		 .mailbox = "../x@example.com",
		 .kind = QUEUE_RCPT_LOCAL},
	};
	struct queue_rcpt good[1] = {
		{.address = "bob@example.com",
		 .mailbox = "bob@example.com",
		 .kind = QUEUE_RCPT_LOCAL},
	};
	const char *error = NULL;
	char id[QUEUE_ID_SIZE];

	/* A mailbox that can not exist fails for good: nothing pending. */
	spool(f, bad, 1, id);
	assert_int_equal(delivery_local_run(f->q, f->dir, "mx", id, &error), 1);
	assert_false(in_queue(f, id, "active"));

	/* A held message is left alone. */
	spool(f, good, 1, id);
	assert_int_equal(queue_move(f->q, id, QUEUE_HOLD, "test", &error), 1);
	assert_int_equal(delivery_local_run(f->q, f->dir, "mx", id, &error), 0);
	assert_int_equal(new_count(f, "bob@example.com"), 0);
	assert_true(in_queue(f, id, "hold"));
	assert_int_equal(delivery_local_run(f->q, f->dir, "mx",
					    "../../../etc/passwd", &error),
			 -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_paths),
		cmocka_unit_test_setup_teardown(test_deliver, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deliver_large, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_deliver_refused, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_run_all_local, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_run_remote_stays, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_run_one_fails, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_run_permanent_and_hold,
						setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
