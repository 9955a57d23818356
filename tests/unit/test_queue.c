/* Unit tests of queue/queue: ids, the spool file round trip, in-place
 * status updates, moves, scans, damaged files, recovery, group commit, the
 * pool of reused files. */
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
#include <pthread.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "unit_tmp.h"

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

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/petrel-test-queue-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->q = queue_open(f->dir, &error);
	if (f->q == NULL)
		fail_msg("queue_open: %s", error);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	queue_close(f->q);
	unit_rmtree(f->dir);
	free(f);
	return 0;
}

static void spool_path(const struct fixture *f, const char *queue,
		       const char *id, char *out, size_t size)
{
	snprintf(out, size, "%s/queue/%s/%s", f->dir, queue, id);
}

static int exists(const struct fixture *f, const char *queue, const char *id)
{
	char path[256];

	spool_path(f, queue, id, path, sizeof(path));
	return access(path, F_OK) == 0;
}

static struct queue_rcpt test_rcpts[] = {
	{.address = "bob@example.com",
	 .mailbox = "bob@example.com",
	 .kind = QUEUE_RCPT_LOCAL},
	{.address = "Sales@Example.com",
	 .mailbox = "carol@example.com",
	 .kind = QUEUE_RCPT_LOCAL},
	{.address = "dave@remote.test", .kind = QUEUE_RCPT_REMOTE},
};

static void test_envelope(struct queue_envelope *env)
{
	memset(env, 0, sizeof(*env));
	env->sender = "alice@example.org";
	env->rcpts = test_rcpts;
	env->rcpt_count = 3;
	env->received = 1700000000;
	env->client_ip = "192.0.2.7";
	env->client_port = 54321;
	env->helo = "client.example.org";
	env->listener = "submission";
	env->protocol = "ESMTPSA";
	env->auth_account = "alice@example.org";
	env->message_id = "<abc.123@example.org>";
	env->subject = "Hello there";
}

/* Commits a message with body and env; returns the id in id_r. */
static void commit(struct fixture *f, const char *body, size_t len,
		   const struct queue_envelope *env, char *id_r)
{
	const char *error = NULL;
	struct queue_writer *w = queue_writer_new(f->q, &error);

	if (w == NULL)
		fail_msg("queue_writer_new: %s", error);
	snprintf(id_r, QUEUE_ID_SIZE, "%s", queue_writer_id(w));
	assert_true(queue_id_valid(id_r));
	assert_true(exists(f, "incoming", id_r));
	assert_int_equal(queue_writer_write(w, body, len), 0);
	if (queue_writer_commit(w, env, &error) != 1)
		fail_msg("commit: %s", error);
	queue_writer_free(w);
	assert_false(exists(f, "incoming", id_r));
	assert_true(exists(f, "active", id_r));
}

static const char test_body[] = "Subject: Hello there\r\n"
				"Message-ID: <abc.123@example.org>\r\n"
				"\r\n"
				"Body line\r\n";

static char *read_body(struct fixture *f, const char *id, uint64_t *len_r)
{
	const char *error = NULL;
	uint64_t off, len;
	char *data;
	int fd;

	if (queue_body_open(f->q, id, &fd, &off, &len, &error) != 1)
		fail_msg("queue_body_open: %s", error);
	data = malloc(len + 1);
	assert_non_null(data);
	assert_int_equal(pread(fd, data, len, (off_t)off), (ssize_t)len);
	data[len] = '\0';
	close(fd);
	*len_r = len;
	return data;
}

/* ---- ids ---- */

static const struct {
	const char *name;
	const char *id;
	int want;
} id_cases[] = {
	{"valid", "0123456789ABCDEF01", 1},
	{"empty", "", 0},
	{"path traversal", "../x", 0},
	{"traversal of the right length", "../../../../../etc", 0},
	{"lower case", "0123456789abcdef01", 0},
	{"one short", "0123456789ABCDEF0", 0},
	{"one long", "0123456789ABCDEF012", 0},
	{"slash", "0123456789ABCDEF/1", 0},
	{"not hex", "0123456789ABCDEFG1", 0},
	{"NULL", NULL, 0},
};

static void test_ids(void **state)
{
	static char ids[2000][QUEUE_ID_SIZE];

	(void)state;
	for (size_t i = 0; i < sizeof(id_cases) / sizeof(id_cases[0]); i++) {
		if (queue_id_valid(id_cases[i].id) != id_cases[i].want)
			fail_msg("%s: want %d", id_cases[i].name,
				 id_cases[i].want);
	}
	for (size_t i = 0; i < 2000; i++) {
		queue_id_make(ids[i]);
		assert_true(queue_id_valid(ids[i]));
		/* The time part never goes back. */
		if (i > 0)
			assert_true(strncmp(ids[i - 1], ids[i], 13) <= 0);
	}
	for (size_t i = 0; i < 2000; i++) {
		for (size_t k = i + 1; k < 2000; k++) {
			if (strcmp(ids[i], ids[k]) == 0)
				fail_msg("duplicate id %s", ids[i]);
		}
	}
	/* Later ids sort after earlier ones. */
	usleep(2000);
	{
		char later[QUEUE_ID_SIZE];
		queue_id_make(later);
		assert_true(strcmp(ids[1999], later) < 0);
	}
}

static void test_names(void **state)
{
	enum queue_name n;

	(void)state;
	for (int i = 0; i < QUEUE_COUNT; i++) {
		assert_int_equal(queue_name_parse(queue_name_str(i), &n), 1);
		assert_int_equal(n, i);
	}
	assert_int_equal(queue_name_parse("../active", &n), 0);
	assert_int_equal(queue_name_parse("", &n), 0);
	assert_string_equal(queue_rcpt_status_str(QUEUE_RCPT_FAILED), "failed");
	assert_string_equal(queue_rcpt_kind_str(QUEUE_RCPT_REMOTE), "remote");
}

/* ---- round trip ---- */

static void test_roundtrip(void **state)
{
	struct fixture *f = *state;
	struct queue_envelope env, *got = NULL;
	enum queue_name where;
	const char *error = NULL;
	struct queue_writer *w;
	char id[QUEUE_ID_SIZE], *body, *big;
	size_t big_len = 300000;
	uint64_t len;

	test_envelope(&env);
	/* A body in pieces, one of them larger than the writer's buffer. */
	big = malloc(big_len);
	assert_non_null(big);
	for (size_t i = 0; i < big_len; i++)
		big[i] = (i % 80 == 79) ? '\n' : (char)('a' + i % 26);
	w = queue_writer_new(f->q, &error);
	assert_non_null(w);
	snprintf(id, sizeof(id), "%s", queue_writer_id(w));
	assert_int_equal(queue_writer_write(w, test_body, 10), 0);
	assert_int_equal(queue_writer_write(w, test_body + 10,
					    sizeof(test_body) - 1 - 10),
			 0);
	assert_int_equal(queue_writer_write(w, big, big_len), 0);
	assert_int_equal(queue_writer_write(w, "end\r\n", 5), 0);
	assert_int_equal(queue_writer_commit(w, &env, &error), 1);
	/* A committed writer takes no more bytes nor a second commit. */
	assert_int_equal(queue_writer_write(w, "x", 1), -1);
	assert_int_equal(queue_writer_commit(w, &env, &error), -1);
	queue_writer_free(w);
	assert_true(exists(f, "active", id));

	assert_int_equal(queue_envelope_load(f->q, id, &where, &got, &error),
			 1);
	assert_int_equal(where, QUEUE_ACTIVE);
	assert_string_equal(got->sender, "alice@example.org");
	assert_int_equal(got->rcpt_count, 3);
	for (size_t i = 0; i < 3; i++) {
		assert_string_equal(got->rcpts[i].address,
				    test_rcpts[i].address);
		assert_string_equal(got->rcpts[i].mailbox,
				    test_rcpts[i].mailbox != NULL
					    ? test_rcpts[i].mailbox
					    : "");
		assert_int_equal(got->rcpts[i].kind, test_rcpts[i].kind);
		assert_int_equal(got->rcpts[i].status, QUEUE_RCPT_PENDING);
		assert_int_equal(got->rcpts[i].attempts, 0);
		assert_string_equal(got->rcpts[i].error, "");
	}
	assert_int_equal(got->received, 1700000000);
	assert_string_equal(got->client_ip, "192.0.2.7");
	assert_int_equal(got->client_port, 54321);
	assert_string_equal(got->helo, "client.example.org");
	assert_string_equal(got->listener, "submission");
	assert_string_equal(got->protocol, "ESMTPSA");
	assert_string_equal(got->auth_account, "alice@example.org");
	assert_string_equal(got->message_id, "<abc.123@example.org>");
	assert_string_equal(got->subject, "Hello there");
	assert_int_equal(got->size, sizeof(test_body) - 1 + big_len + 5);
	assert_int_equal(got->next_retry, 0);
	assert_string_equal(got->reason, "");
	queue_envelope_free(got);

	body = read_body(f, id, &len);
	assert_int_equal(len, sizeof(test_body) - 1 + big_len + 5);
	assert_memory_equal(body, test_body, sizeof(test_body) - 1);
	assert_memory_equal(body + sizeof(test_body) - 1, big, big_len);
	assert_memory_equal(body + len - 5, "end\r\n", 5);
	free(body);
	free(big);
}

static void test_defaults_and_cleaning(void **state)
{
	struct fixture *f = *state;
	struct queue_rcpt r = {.address = "x@remote.test",
			       .kind = QUEUE_RCPT_REMOTE};
	struct queue_envelope env, *got = NULL;
	char id[QUEUE_ID_SIZE], subject[400];
	const char *error = NULL;

	/* Null sender, every optional field left NULL, received 0 (now), a
	 * subject with control characters and too long for listings. */
	memset(&env, 0, sizeof(env));
	env.rcpts = &r;
	env.rcpt_count = 1;
	memset(subject, 'x', sizeof(subject) - 1);
	subject[sizeof(subject) - 1] = '\0';
	subject[0] = '\t';
	subject[1] = '\x1b';
	env.subject = subject;
	commit(f, "", 0, &env, id);
	assert_int_equal(queue_envelope_load(f->q, id, NULL, &got, &error), 1);
	assert_string_equal(got->sender, "");
	assert_string_equal(got->helo, "");
	assert_string_equal(got->auth_account, "");
	assert_true(got->received > 1600000000);
	assert_int_equal(strlen(got->subject), QUEUE_SUBJECT_MAX);
	assert_int_equal(got->subject[0], ' ');
	assert_int_equal(got->subject[1], ' ');
	assert_int_equal(got->size, 0);
	queue_envelope_free(got);
}

/* A subject cut in the middle of a UTF-8 character is cut before it. */
static void test_subject_utf8_cut(void **state)
{
	struct fixture *f = *state;
	struct queue_rcpt r = {.address = "x@remote.test",
			       .kind = QUEUE_RCPT_REMOTE};
	struct queue_envelope env, *got = NULL;
	char id[QUEUE_ID_SIZE], subject[QUEUE_SUBJECT_MAX + 8];
	const char *error = NULL;

	memset(&env, 0, sizeof(env));
	env.rcpts = &r;
	env.rcpt_count = 1;
	memset(subject, 'a', QUEUE_SUBJECT_MAX - 1);
	memcpy(subject + QUEUE_SUBJECT_MAX - 1, "\xc3\xa9zz", 5);
	env.subject = subject;
	commit(f, "x", 1, &env, id);
	assert_int_equal(queue_envelope_load(f->q, id, NULL, &got, &error), 1);
	assert_int_equal(strlen(got->subject), QUEUE_SUBJECT_MAX - 1);
	queue_envelope_free(got);
}

static const struct {
	const char *name;
	const char *sender;
	const char *address;
	const char *mailbox;
	enum queue_rcpt_kind kind;
	size_t count;
	const char *helo;
} bad_env_cases[] = {
	{"CR in sender", "a\r@x", "b@y", "b@y", QUEUE_RCPT_LOCAL, 1, ""},
	{"LF in recipient", "a@x", "b\n@y", "b@y", QUEUE_RCPT_LOCAL, 1, ""},
	{"LF in mailbox", "a@x", "b@y", "b@y\n", QUEUE_RCPT_LOCAL, 1, ""},
	{"empty recipient", "a@x", "", "b@y", QUEUE_RCPT_LOCAL, 1, ""},
	{"local without mailbox", "a@x", "b@y", "", QUEUE_RCPT_LOCAL, 1, ""},
	{"bad kind", "a@x", "b@y", "b@y", (enum queue_rcpt_kind)7, 1, ""},
	{"no recipients", "a@x", "b@y", "b@y", QUEUE_RCPT_LOCAL, 0, ""},
	{"CRLF in helo", "a@x", "b@y", "b@y", QUEUE_RCPT_LOCAL, 1,
	 "x\r\nRCPT TO:<evil@x>"},
};

static void test_bad_envelopes(void **state)
{
	struct fixture *f = *state;

	for (size_t i = 0; i < sizeof(bad_env_cases) / sizeof(bad_env_cases[0]);
	     i++) {
		struct queue_rcpt r = {.address = bad_env_cases[i].address,
				       .mailbox = bad_env_cases[i].mailbox,
				       .kind = bad_env_cases[i].kind};
		struct queue_envelope env;
		const char *error = NULL;
		struct queue_writer *w = queue_writer_new(f->q, &error);
		char id[QUEUE_ID_SIZE];

		assert_non_null(w);
		snprintf(id, sizeof(id), "%s", queue_writer_id(w));
		memset(&env, 0, sizeof(env));
		env.sender = bad_env_cases[i].sender;
		env.rcpts = &r;
		env.rcpt_count = bad_env_cases[i].count;
		env.helo = bad_env_cases[i].helo;
		assert_int_equal(queue_writer_write(w, "x\r\n", 3), 0);
		if (queue_writer_commit(w, &env, &error) != -1)
			fail_msg("%s: commit succeeded", bad_env_cases[i].name);
		assert_non_null(error);
		queue_writer_free(w);
		/* A failed commit leaves nothing behind. */
		assert_false(exists(f, "incoming", id));
		assert_false(exists(f, "active", id));
	}
}

static void test_abort(void **state)
{
	struct fixture *f = *state;
	const char *error = NULL;
	struct queue_writer *w = queue_writer_new(f->q, &error);
	char id[QUEUE_ID_SIZE];

	assert_non_null(w);
	snprintf(id, sizeof(id), "%s", queue_writer_id(w));
	assert_int_equal(queue_writer_write(w, "abc", 3), 0);
	assert_true(exists(f, "incoming", id));
	queue_writer_abort(w);
	assert_false(exists(f, "incoming", id));
	queue_writer_free(NULL);
}

/* A large message: its header written, its body copied from a scratch
 * file (queue_writer_copy), byte for byte; the scratch file leaves no
 * name in incoming/. */
static void test_scratch_copy(void **state)
{
	struct fixture *f = *state;
	const char *error = NULL, *head = "Subject: big\r\n\r\n";
	size_t n = 3 * 65536 + 17, hl = strlen(head);
	char *body = malloc(n), id[QUEUE_ID_SIZE], path[300], *got;
	struct queue_envelope env;
	struct queue_writer *w;
	uint64_t len;
	DIR *d;
	struct dirent *e;
	int fd, names = 0;

	assert_non_null(body);
	for (size_t i = 0; i < n; i++)
		body[i] = (char)(i * 131 + i / 7);
	fd = queue_scratch_open(f->q, &error);
	if (fd < 0)
		fail_msg("queue_scratch_open: %s", error);
	snprintf(path, sizeof(path), "%s/queue/incoming", f->dir);
	d = opendir(path);
	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		names += e->d_name[0] != '.';
	closedir(d);
	assert_int_equal(names, 0);
	assert_int_equal(write(fd, body, n), (ssize_t)n);
	w = queue_writer_new(f->q, &error);
	assert_non_null(w);
	snprintf(id, sizeof(id), "%s", queue_writer_id(w));
	assert_int_equal(queue_writer_write(w, head, hl), 0);
	assert_int_equal(queue_writer_copy(w, fd, n), 0);
	test_envelope(&env);
	if (queue_writer_commit(w, &env, &error) != 1)
		fail_msg("commit: %s", error);
	queue_writer_free(w);
	got = read_body(f, id, &len);
	assert_int_equal(len, hl + n);
	assert_memory_equal(got, head, hl);
	assert_memory_equal(got + hl, body, n);
	free(got);
	/* A source shorter than asked fails the message. */
	w = queue_writer_new(f->q, &error);
	assert_non_null(w);
	assert_int_equal(queue_writer_copy(w, fd, n + 1), -1);
	assert_int_equal(queue_writer_write(w, "x", 1), -1);
	queue_writer_free(w);
	close(fd);
	free(body);
}

/* ---- status updates ---- */

static void test_status_durable(void **state)
{
	struct fixture *f = *state;
	struct queue_envelope env, *got = NULL;
	const char *error = NULL;
	char id[QUEUE_ID_SIZE], path[256], long_error[600], *body;
	struct stat st1, st2;
	struct queue *q2;
	uint64_t len;

	test_envelope(&env);
	commit(f, test_body, sizeof(test_body) - 1, &env, id);
	spool_path(f, "active", id, path, sizeof(path));
	assert_int_equal(stat(path, &st1), 0);

	memset(long_error, 'e', sizeof(long_error) - 1);
	long_error[sizeof(long_error) - 1] = '\0';
	assert_int_equal(queue_rcpt_set_status(f->q, id, 1, QUEUE_RCPT_DONE,
					       NULL, &error),
			 1);
	assert_int_equal(queue_rcpt_set_status(f->q, id, 2, QUEUE_RCPT_PENDING,
					       "451 4.4.1 try\r\nlater",
					       &error),
			 1);
	assert_int_equal(queue_rcpt_set_status(f->q, id, 2, QUEUE_RCPT_PENDING,
					       long_error, &error),
			 1);
	assert_int_equal(queue_rcpt_set_status(f->q, id, 0, QUEUE_RCPT_FAILED,
					       "550 5.1.1 no such user",
					       &error),
			 1);
	/* Out of range, bad status, unknown message. */
	assert_int_equal(queue_rcpt_set_status(f->q, id, 3, QUEUE_RCPT_DONE,
					       NULL, &error),
			 -1);
	assert_int_equal(queue_rcpt_set_status(f->q, id, 0,
					       (enum queue_rcpt_status)9, NULL,
					       &error),
			 -1);
	assert_int_equal(queue_rcpt_set_status(f->q, "0000000000000000FF", 0,
					       QUEUE_RCPT_DONE, NULL, &error),
			 0);
	assert_int_equal(queue_rcpt_set_status(f->q, "../../x", 0,
					       QUEUE_RCPT_DONE, NULL, &error),
			 -1);

	/* The file was updated in place: same inode, same size. */
	assert_int_equal(stat(path, &st2), 0);
	assert_int_equal(st1.st_ino, st2.st_ino);
	assert_int_equal(st1.st_size, st2.st_size);

	/* A fresh handle (as after a restart) sees it all. */
	q2 = queue_open(f->dir, &error);
	assert_non_null(q2);
	assert_int_equal(queue_envelope_load(q2, id, NULL, &got, &error), 1);
	assert_int_equal(got->rcpts[0].status, QUEUE_RCPT_FAILED);
	assert_string_equal(got->rcpts[0].error, "550 5.1.1 no such user");
	assert_int_equal(got->rcpts[0].attempts, 1);
	assert_true(got->rcpts[0].last_attempt > 0);
	assert_int_equal(got->rcpts[1].status, QUEUE_RCPT_DONE);
	assert_string_equal(got->rcpts[1].error, "");
	assert_int_equal(got->rcpts[2].status, QUEUE_RCPT_PENDING);
	assert_int_equal(got->rcpts[2].attempts, 2);
	assert_int_equal(strlen(got->rcpts[2].error), QUEUE_ERROR_MAX);
	queue_envelope_free(got);
	queue_close(q2);

	body = read_body(f, id, &len);
	assert_int_equal(len, sizeof(test_body) - 1);
	assert_memory_equal(body, test_body, len);
	free(body);
}

/* ---- moves, deletes, scans ---- */

struct collect {
	char ids[16][QUEUE_ID_SIZE];
	size_t count;
	size_t stop_after;
};

static int collect_cb(void *ctx, const char *id)
{
	struct collect *c = ctx;

	if (c->count < 16)
		snprintf(c->ids[c->count], QUEUE_ID_SIZE, "%s", id);
	c->count++;
	return c->stop_after != 0 && c->count >= c->stop_after;
}

static void test_move_delete_scan(void **state)
{
	struct fixture *f = *state;
	struct queue_envelope env, *got = NULL;
	struct queue_stats stats;
	struct collect c;
	enum queue_name where;
	const char *error = NULL;
	char ids[3][QUEUE_ID_SIZE];

	test_envelope(&env);
	for (int i = 0; i < 3; i++)
		commit(f, test_body, sizeof(test_body) - 1, &env, ids[i]);

	assert_int_equal(queue_move(f->q, ids[1], QUEUE_HOLD,
				    "held by the administrator", &error),
			 1);
	assert_true(exists(f, "hold", ids[1]));
	assert_false(exists(f, "active", ids[1]));
	assert_int_equal(
		queue_envelope_load(f->q, ids[1], &where, &got, &error), 1);
	assert_int_equal(where, QUEUE_HOLD);
	assert_string_equal(got->reason, "held by the administrator");
	queue_envelope_free(got);

	memset(&c, 0, sizeof(c));
	assert_int_equal(queue_scan(f->q, QUEUE_ACTIVE, collect_cb, &c, &error),
			 1);
	assert_int_equal(c.count, 2);
	assert_string_equal(c.ids[0], ids[0]);
	assert_string_equal(c.ids[1], ids[2]);
	assert_true(strcmp(c.ids[0], c.ids[1]) < 0);
	memset(&c, 0, sizeof(c));
	c.stop_after = 1;
	assert_int_equal(queue_scan(f->q, QUEUE_ACTIVE, collect_cb, &c, &error),
			 1);
	assert_int_equal(c.count, 1);

	assert_int_equal(queue_defer(f->q, ids[2], 1800000000,
				     "451 4.4.1 connection refused", &error),
			 1);
	assert_int_equal(
		queue_envelope_load(f->q, ids[2], &where, &got, &error), 1);
	assert_int_equal(where, QUEUE_DEFERRED);
	assert_int_equal(got->next_retry, 1800000000);
	queue_envelope_free(got);
	/* A hold keeps the retry time; back to active resets it and the
	 * reason. */
	assert_int_equal(queue_move(f->q, ids[2], QUEUE_HOLD, "x", &error), 1);
	assert_int_equal(
		queue_envelope_load(f->q, ids[2], &where, &got, &error), 1);
	assert_int_equal(got->next_retry, 1800000000);
	queue_envelope_free(got);
	assert_int_equal(queue_move(f->q, ids[2], QUEUE_ACTIVE, NULL, &error),
			 1);
	assert_int_equal(
		queue_envelope_load(f->q, ids[2], &where, &got, &error), 1);
	assert_int_equal(where, QUEUE_ACTIVE);
	assert_int_equal(got->next_retry, 0);
	assert_string_equal(got->reason, "");
	queue_envelope_free(got);
	/* Moving where it is only changes the reason. */
	assert_int_equal(
		queue_move(f->q, ids[2], QUEUE_ACTIVE, "again", &error), 1);
	assert_int_equal(queue_move(f->q, ids[2], QUEUE_INCOMING, NULL, &error),
			 -1);

	assert_int_equal(queue_stats(f->q, &stats, &error), 1);
	assert_int_equal(stats.messages[QUEUE_ACTIVE], 2);
	assert_int_equal(stats.messages[QUEUE_HOLD], 1);
	assert_int_equal(stats.messages[QUEUE_DEFERRED], 0);
	assert_true(stats.bytes[QUEUE_HOLD] > sizeof(test_body));

	assert_int_equal(queue_delete(f->q, ids[1], &error), 1);
	assert_false(exists(f, "hold", ids[1]));
	assert_int_equal(queue_delete(f->q, ids[1], &error), 0);
	assert_int_equal(queue_envelope_load(f->q, ids[1], NULL, &got, &error),
			 0);
	assert_int_equal(queue_move(f->q, ids[1], QUEUE_ACTIVE, NULL, &error),
			 0);
	assert_int_equal(queue_delete(f->q, "../queue/x", &error), -1);
	assert_int_equal(queue_envelope_load(f->q, "..", NULL, &got, &error),
			 -1);
	assert_string_equal(error, "invalid queue id");
}

/* ---- damaged files ---- */

static void damage(struct fixture *f, const char *id, off_t at, int truncate)
{
	char path[256];
	struct stat st;
	int fd;

	spool_path(f, "active", id, path, sizeof(path));
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	if (truncate) {
		assert_int_equal(ftruncate(fd, st.st_size - at), 0);
	} else {
		unsigned char c;
		assert_int_equal(pread(fd, &c, 1, at), 1);
		c ^= 0x5a;
		assert_int_equal(pwrite(fd, &c, 1, at), 1);
	}
	close(fd);
}

static void expect_bad(struct fixture *f, const char *id)
{
	struct queue_envelope *got = NULL;
	const char *error = NULL;

	assert_int_equal(queue_envelope_load(f->q, id, NULL, &got, &error), -1);
	assert_null(got);
	assert_non_null(strstr(error, "damaged"));
	assert_false(exists(f, "active", id));
	assert_true(exists(f, "bad", id));
	/* Found again in bad/: the same answer, and it stays there. */
	assert_int_equal(queue_envelope_load(f->q, id, NULL, &got, &error), -1);
	assert_true(exists(f, "bad", id));
	/* It can still be deleted. */
	assert_int_equal(queue_delete(f->q, id, &error), 1);
}

/* Several queues read as one, each message once; the messages of an
 * authenticated account among them. */
static void test_scan_queues_sent_by(void **state)
{
	static const enum queue_name both[] = {QUEUE_ACTIVE, QUEUE_DEFERRED};
	static const enum queue_name hold[] = {QUEUE_HOLD};
	struct fixture *f = *state;
	struct queue_envelope env;
	struct queue_sent sent = {0};
	struct collect c = {0};
	const char *error = NULL;
	char ids[4][QUEUE_ID_SIZE];

	test_envelope(&env);
	commit(f, test_body, sizeof(test_body) - 1, &env, ids[0]);
	commit(f, test_body, sizeof(test_body) - 1, &env, ids[1]);
	env.auth_account = "Bob@Example.org";
	commit(f, test_body, sizeof(test_body) - 1, &env, ids[2]);
	env.auth_account = "";
	commit(f, test_body, sizeof(test_body) - 1, &env, ids[3]);
	assert_int_equal(
		queue_defer(f->q, ids[1], 1800000000, "451 4.4.1 x", &error),
		1);
	assert_int_equal(queue_move(f->q, ids[2], QUEUE_HOLD, "x", &error), 1);

	/* active/ is read twice (forward and back), listed once. */
	assert_int_equal(
		queue_scan_queues(f->q, both, 2, collect_cb, &c, &error), 1);
	assert_int_equal(c.count, 3);
	assert_string_equal(c.ids[0], ids[0]);
	assert_string_equal(c.ids[1], ids[1]);
	assert_string_equal(c.ids[2], ids[3]);
	memset(&c, 0, sizeof(c));
	c.stop_after = 2;
	assert_int_equal(
		queue_scan_queues(f->q, both, 2, collect_cb, &c, &error), 1);
	assert_int_equal(c.count, 2);

	/* By account, without case; the unauthenticated one is nobody's. */
	assert_int_equal(queue_sent_by(f->q, both, 2, "ALICE@example.ORG",
				       &sent, &error),
			 1);
	assert_int_equal(sent.n, 2);
	assert_string_equal(sent.ids[0], ids[0]);
	assert_string_equal(sent.ids[1], ids[1]);
	assert_string_equal(sent.accounts[1], "alice@example.org");
	queue_sent_free(&sent);
	assert_int_equal(sent.n, 0);
	assert_null(sent.ids);
	assert_int_equal(
		queue_sent_by(f->q, both, 2, "bob@example.org", &sent, &error),
		1);
	assert_int_equal(sent.n, 0); /* bob's is on hold */
	queue_sent_free(&sent);
	assert_int_equal(queue_sent_by(f->q, hold, 1, NULL, &sent, &error), 1);
	assert_int_equal(sent.n, 1);
	assert_string_equal(sent.ids[0], ids[2]);
	assert_string_equal(sent.accounts[0], "Bob@Example.org");
	queue_sent_free(&sent);
	assert_int_equal(queue_sent_by(f->q, both, 2, NULL, &sent, &error), 1);
	assert_int_equal(sent.n, 2);
	queue_sent_free(&sent);
}

static void test_damaged(void **state)
{
	struct fixture *f = *state;
	struct queue_envelope env, *got = NULL;
	const char *error = NULL;
	char id[QUEUE_ID_SIZE], path[256];
	size_t body = sizeof(test_body) - 1;
	int fd;

	test_envelope(&env);
	/* Truncated by a few bytes, by one, cut to the message alone. */
	commit(f, test_body, body, &env, id);
	damage(f, id, 10, 1);
	expect_bad(f, id);
	commit(f, test_body, body, &env, id);
	damage(f, id, 1, 1);
	expect_bad(f, id);
	commit(f, test_body, body, &env, id);
	spool_path(f, "active", id, path, sizeof(path));
	assert_int_equal(truncate(path, (off_t)body), 0);
	expect_bad(f, id);
	commit(f, test_body, body, &env, id);
	spool_path(f, "active", id, path, sizeof(path));
	assert_int_equal(truncate(path, 0), 0);
	expect_bad(f, id);

	/* A flipped byte in the envelope, in the trailer. */
	commit(f, test_body, body, &env, id);
	damage(f, id, (off_t)body + 3, 0);
	expect_bad(f, id);
	commit(f, test_body, body, &env, id);
	spool_path(f, "active", id, path, sizeof(path));
	{
		struct stat st;
		assert_int_equal(stat(path, &st), 0);
		damage(f, id, st.st_size - 40, 0);
	}
	expect_bad(f, id);

	/* Not a spool file at all. */
	queue_id_make(id);
	spool_path(f, "active", id, path, sizeof(path));
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "hello world\n", 12), 12);
	close(fd);
	expect_bad(f, id);

	/* Status changes and moves detect it too. */
	commit(f, test_body, body, &env, id);
	damage(f, id, 2, 1);
	assert_int_equal(queue_rcpt_set_status(f->q, id, 0, QUEUE_RCPT_DONE,
					       NULL, &error),
			 -1);
	assert_true(exists(f, "bad", id));
	assert_int_equal(queue_delete(f->q, id, &error), 1);

	/* A damaged status slot (a torn write) reads as pending. */
	commit(f, test_body, body, &env, id);
	assert_int_equal(queue_rcpt_set_status(f->q, id, 1, QUEUE_RCPT_DONE,
					       NULL, &error),
			 1);
	{
		struct stat st;
		spool_path(f, "active", id, path, sizeof(path));
		assert_int_equal(stat(path, &st), 0);
		/* trailer 48, slots of 256 for recipients 2 and 1 */
		damage(f, id, st.st_size - 48 - 2 * 256 + 30, 0);
	}
	assert_int_equal(queue_envelope_load(f->q, id, NULL, &got, &error), 1);
	assert_int_equal(got->rcpts[1].status, QUEUE_RCPT_PENDING);
	assert_string_equal(got->rcpts[1].error, "status record damaged");
	assert_int_equal(got->rcpts[0].status, QUEUE_RCPT_PENDING);
	assert_string_equal(got->rcpts[0].error, "");
	queue_envelope_free(got);
	/* And a new update repairs it. */
	assert_int_equal(queue_rcpt_set_status(f->q, id, 1, QUEUE_RCPT_DONE,
					       NULL, &error),
			 1);
	assert_int_equal(queue_envelope_load(f->q, id, NULL, &got, &error), 1);
	assert_int_equal(got->rcpts[1].status, QUEUE_RCPT_DONE);
	queue_envelope_free(got);
}

/* ---- the pure parser ---- */

static void test_parse(void **state)
{
	struct fixture *f = *state;
	struct queue_envelope env, *got = NULL;
	const char *error = NULL;
	char id[QUEUE_ID_SIZE], path[256];
	unsigned char *data;
	struct stat st;
	int fd;

	test_envelope(&env);
	commit(f, test_body, sizeof(test_body) - 1, &env, id);
	spool_path(f, "active", id, path, sizeof(path));
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	data = malloc((size_t)st.st_size);
	assert_non_null(data);
	assert_int_equal(read(fd, data, (size_t)st.st_size), st.st_size);
	close(fd);

	assert_int_equal(
		queue_envelope_parse(data, (size_t)st.st_size, &got, &error),
		1);
	assert_string_equal(got->rcpts[2].address, "dave@remote.test");
	queue_envelope_free(got);
	assert_int_equal(queue_envelope_parse(data, 0, &got, &error), -1);
	assert_int_equal(queue_envelope_parse(data, 47, &got, &error), -1);
	/* Every prefix and every single-byte change outside the slots fails
	 * cleanly (or parses), never crashes. */
	for (size_t n = 0; n < (size_t)st.st_size; n++)
		assert_int_equal(queue_envelope_parse(data, n, &got, &error),
				 -1);
	for (size_t i = sizeof(test_body) - 1; i < (size_t)st.st_size; i++) {
		data[i] ^= 0x01;
		if (queue_envelope_parse(data, (size_t)st.st_size, &got,
					 &error) == 1)
			queue_envelope_free(got);
		data[i] ^= 0x01;
	}
	free(data);
}

static uint32_t crc32_ieee(const unsigned char *p, size_t len)
{
	uint32_t crc = 0xffffffffu;

	while (len-- > 0) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1)));
	}
	return ~crc;
}

static void put_le32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

/* A subject record forged with a control byte (checksums made valid, as
 * a forger or a writer bug would) reads back as its writer would have
 * written it: NUL, CR and LF, which no record string holds, make the
 * envelope damaged; the other control bytes read as spaces, as queue.h
 * promises for the subject. */
static void test_parse_subject_controls(void **state)
{
	static const struct {
		unsigned char c;
		const char *want; /* NULL: refused */
	} cases[] = {
		{0x1b, "Hello there"}, {0x01, "Hello there"},
		{0x7f, "Hello there"}, {'\t', "Hello there"},
		{0x1f, "Hello there"}, {'\r', NULL},
		{'\n', NULL},	       {'\0', NULL},
	};
	struct fixture *f = *state;
	struct queue_envelope env;
	char id[QUEUE_ID_SIZE], path[256];
	size_t body = sizeof(test_body) - 1, size;
	unsigned char *data, *t, *at;
	struct stat st;
	int fd;

	test_envelope(&env);
	commit(f, test_body, body, &env, id);
	spool_path(f, "active", id, path, sizeof(path));
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	size = (size_t)st.st_size;
	data = malloc(size);
	assert_non_null(data);
	assert_int_equal(read(fd, data, size), st.st_size);
	close(fd);
	t = data + size - 48;
	/* The envelope records follow the body; the subject's is there. */
	at = memmem(data + body, size - body, "Hello there", 11);
	assert_non_null(at);
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		struct queue_envelope *got = NULL;
		const char *error = NULL;
		uint32_t env_len = (uint32_t)t[16] | (uint32_t)t[17] << 8 |
				   (uint32_t)t[18] << 16 |
				   (uint32_t)t[19] << 24;

		at[5] = cases[i].c;
		put_le32(t + 24, crc32_ieee(data + body, env_len));
		put_le32(t + 32, crc32_ieee(t, 32));
		if (cases[i].want == NULL) {
			assert_int_equal(
				queue_envelope_parse(data, size, &got, &error),
				-1);
			assert_non_null(strstr(error, "damaged"));
			assert_null(got);
			continue;
		}
		if (queue_envelope_parse(data, size, &got, &error) != 1)
			fail_msg("byte 0x%02x: %s", cases[i].c, error);
		assert_string_equal(got->subject, cases[i].want);
		queue_envelope_free(got);
	}
	free(data);
}

/* ---- recovery ---- */

static void test_recover(void **state)
{
	struct fixture *f = *state;
	struct queue_envelope env;
	struct collect c;
	const char *error = NULL;
	struct queue_writer *live;
	char id[QUEUE_ID_SIZE], left[QUEUE_ID_SIZE], path[256];
	size_t removed = 99;
	int fd;

	test_envelope(&env);
	commit(f, test_body, sizeof(test_body) - 1, &env, id);
	/* What a crash before the commit leaves. */
	queue_id_make(left);
	spool_path(f, "incoming", left, path, sizeof(path));
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "partial", 7), 7);
	close(fd);
	/* A file that is not ours is left alone. */
	spool_path(f, "incoming", "README", path, sizeof(path));
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	close(fd);
	/* A writer still at work keeps its file. */
	live = queue_writer_new(f->q, &error);
	assert_non_null(live);

	memset(&c, 0, sizeof(c));
	assert_int_equal(queue_recover(f->q, collect_cb, &c, &removed, &error),
			 1);
	assert_int_equal(removed, 1);
	assert_false(exists(f, "incoming", left));
	assert_true(exists(f, "incoming", "README"));
	assert_true(exists(f, "incoming", queue_writer_id(live)));
	assert_int_equal(c.count, 1);
	assert_string_equal(c.ids[0], id);

	assert_int_equal(queue_writer_write(live, "x\r\n", 3), 0);
	assert_int_equal(queue_writer_commit(live, &env, &error), 1);
	queue_writer_free(live);
	assert_int_equal(queue_recover(f->q, NULL, NULL, &removed, &error), 1);
	assert_int_equal(removed, 0);
}

/* ---- group commit ---- */

static void test_batch(void **state)
{
	struct fixture *f = *state;
	struct queue_writer *ws[4];
	const struct queue_envelope *envs[4];
	struct queue_envelope env, empty;
	const char *errors[4], *error = NULL;
	char ids[4][QUEUE_ID_SIZE];
	int results[4];

	test_envelope(&env);
	memset(&empty, 0, sizeof(empty));
	for (int i = 0; i < 4; i++) {
		ws[i] = queue_writer_new(f->q, &error);
		assert_non_null(ws[i]);
		snprintf(ids[i], sizeof(ids[i]), "%s", queue_writer_id(ws[i]));
		assert_int_equal(queue_writer_write(ws[i], test_body,
						    sizeof(test_body) - 1),
				 0);
		envs[i] = &env;
	}
	assert_int_equal(queue_commit_batch(ws, envs, 3, results, errors), 1);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(results[i], 1);
		assert_null(errors[i]);
		assert_true(exists(f, "active", ids[i]));
		queue_writer_free(ws[i]);
	}
	/* One bad envelope fails alone. */
	for (int i = 0; i < 3; i++) {
		ws[i] = queue_writer_new(f->q, &error);
		assert_non_null(ws[i]);
		snprintf(ids[i], sizeof(ids[i]), "%s", queue_writer_id(ws[i]));
	}
	envs[1] = &empty;
	assert_int_equal(queue_commit_batch(ws, envs, 4, results, NULL), -1);
	assert_int_equal(results[0], 1);
	assert_int_equal(results[1], -1);
	assert_int_equal(results[2], 1);
	assert_int_equal(results[3], 1);
	assert_false(exists(f, "incoming", ids[1]));
	assert_false(exists(f, "active", ids[1]));
	assert_true(exists(f, "active", ids[3]));
	for (int i = 0; i < 4; i++)
		queue_writer_free(ws[i]);
	assert_int_equal(queue_commit_batch(ws, envs, 0, results, NULL), 1);
}

/* A commit straight into hold or bad: the file is never in active/ (a
 * crash cannot deliver what a rule held), and it carries its reason. */
static void test_commit_to(void **state)
{
	static const enum queue_name into[] = {QUEUE_HOLD, QUEUE_BAD};
	struct fixture *f = *state;
	struct queue_envelope env, *got = NULL;
	enum queue_name where;
	const char *error = NULL;
	char id[QUEUE_ID_SIZE];

	test_envelope(&env);
	for (size_t i = 0; i < sizeof(into) / sizeof(into[0]); i++) {
		struct queue_writer *w = queue_writer_new(f->q, &error);

		assert_non_null(w);
		snprintf(id, sizeof(id), "%s", queue_writer_id(w));
		env.reason = "content filter rule \"Hold\"";
		assert_int_equal(
			queue_writer_write(w, test_body, sizeof(test_body) - 1),
			0);
		if (queue_writer_commit_to(w, &env, into[i], &error) != 1)
			fail_msg("commit_to: %s", error);
		queue_writer_free(w);
		assert_false(exists(f, "incoming", id));
		assert_false(exists(f, "active", id));
		assert_true(exists(f, queue_name_str(into[i]), id));
		assert_int_equal(
			queue_envelope_load(f->q, id, &where, &got, &error), 1);
		assert_int_equal(where, into[i]);
		assert_string_equal(got->reason,
				    "content filter rule \"Hold\"");
		assert_string_equal(got->sender, "alice@example.org");
		queue_envelope_free(got);
		/* Released like any held message. */
		assert_int_equal(
			queue_move(f->q, id, QUEUE_ACTIVE, NULL, &error), 1);
		assert_true(exists(f, "active", id));
	}
	/* Never into incoming/: that is where uncommitted files are. */
	{
		struct queue_writer *w = queue_writer_new(f->q, &error);

		assert_non_null(w);
		snprintf(id, sizeof(id), "%s", queue_writer_id(w));
		error = NULL;
		assert_int_equal(
			queue_writer_commit_to(w, &env, QUEUE_INCOMING, &error),
			-1);
		assert_non_null(error);
		queue_writer_free(w);
		assert_false(exists(f, "incoming", id));
	}
}

#define CONCURRENT_THREADS 8
#define CONCURRENT_EACH 6

struct concurrent_job {
	struct fixture *f;
	char ids[CONCURRENT_EACH][QUEUE_ID_SIZE];
	int ok;
};

static void *concurrent_commit(void *arg)
{
	struct concurrent_job *j = arg;
	struct queue_envelope env;

	test_envelope(&env);
	j->ok = 1;
	for (int i = 0; i < CONCURRENT_EACH; i++) {
		const char *error = NULL;
		struct queue_writer *w = queue_writer_new(j->f->q, &error);

		if (w == NULL) {
			j->ok = 0;
			break;
		}
		snprintf(j->ids[i], sizeof(j->ids[i]), "%s",
			 queue_writer_id(w));
		if (queue_writer_write(w, test_body, sizeof(test_body) - 1) <
			    0 ||
		    queue_writer_commit(w, &env, &error) != 1)
			j->ok = 0;
		queue_writer_free(w);
	}
	return NULL;
}

/* Commits of many threads at once share the fsync() of active/: each
 * returns only when its own message is in active/, whole, and nothing is
 * left in incoming/. Deletes of many threads share it the same way. */
static void test_concurrent_commits(void **state)
{
	struct fixture *f = *state;
	struct concurrent_job jobs[CONCURRENT_THREADS];
	pthread_t t[CONCURRENT_THREADS];
	struct queue_stats st;
	const char *error = NULL;

	memset(jobs, 0, sizeof(jobs));
	for (int i = 0; i < CONCURRENT_THREADS; i++) {
		jobs[i].f = f;
		assert_int_equal(pthread_create(&t[i], NULL, concurrent_commit,
						&jobs[i]),
				 0);
	}
	for (int i = 0; i < CONCURRENT_THREADS; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	for (int i = 0; i < CONCURRENT_THREADS; i++) {
		assert_true(jobs[i].ok);
		for (int k = 0; k < CONCURRENT_EACH; k++) {
			struct queue_envelope *got;
			enum queue_name where;

			assert_int_equal(
				queue_envelope_load(f->q, jobs[i].ids[k],
						    &where, &got, &error),
				1);
			assert_int_equal(where, QUEUE_ACTIVE);
			assert_int_equal(got->size, sizeof(test_body) - 1);
			queue_envelope_free(got);
		}
	}
	assert_int_equal(queue_stats(f->q, &st, &error), 1);
	assert_int_equal(st.messages[QUEUE_INCOMING], 0);
	assert_int_equal(st.messages[QUEUE_ACTIVE],
			 CONCURRENT_THREADS * CONCURRENT_EACH);
	for (int i = 0; i < CONCURRENT_THREADS; i++)
		for (int k = 0; k < CONCURRENT_EACH; k++)
			assert_int_equal(
				queue_delete(f->q, jobs[i].ids[k], &error), 1);
	assert_int_equal(queue_stats(f->q, &st, &error), 1);
	assert_int_equal(st.messages[QUEUE_ACTIVE], 0);
}

/* Flags survive moves and deferrals; queue_set_flags keeps the retry
 * time and reason. */
static void test_flags(void **state)
{
	struct fixture *f = *state;
	struct queue_envelope env, *got;
	enum queue_name where;
	const char *error = NULL;
	char id[QUEUE_ID_SIZE];

	test_envelope(&env);
	commit(f, test_body, sizeof(test_body) - 1, &env, id);
	assert_int_equal(queue_envelope_load(f->q, id, &where, &got, &error),
			 1);
	assert_int_equal(got->flags, 0);
	queue_envelope_free(got);
	assert_int_equal(queue_defer(f->q, id, 1800000000, "later", &error), 1);
	assert_int_equal(
		queue_set_flags(f->q, id, QUEUE_FLAG_WARNED, 0, &error), 1);
	assert_int_equal(queue_envelope_load(f->q, id, &where, &got, &error),
			 1);
	assert_int_equal(where, QUEUE_DEFERRED);
	assert_int_equal(got->flags, QUEUE_FLAG_WARNED);
	assert_int_equal(got->next_retry, 1800000000);
	assert_string_equal(got->reason, "later");
	queue_envelope_free(got);
	assert_int_equal(queue_move(f->q, id, QUEUE_HOLD, "held", &error), 1);
	assert_int_equal(queue_set_flags(f->q, id, QUEUE_FLAG_BOUNCE,
					 QUEUE_FLAG_WARNED, &error),
			 1);
	assert_int_equal(queue_move(f->q, id, QUEUE_ACTIVE, NULL, &error), 1);
	assert_int_equal(queue_envelope_load(f->q, id, &where, &got, &error),
			 1);
	assert_int_equal(got->flags, QUEUE_FLAG_BOUNCE);
	assert_int_equal(got->next_retry, 0);
	queue_envelope_free(got);
	assert_int_equal(
		queue_set_flags(f->q, "0123456789ABCDEF01", 1, 0, &error), 0);
}

static void test_rcpts_update(void **state)
{
	struct fixture *f = *state;
	struct queue_envelope env, *got;
	const char *error = NULL;
	char id[QUEUE_ID_SIZE];
	struct queue_rcpt_update u[3] = {
		{.idx = 0, .status = QUEUE_RCPT_DONE, .attempted = 1},
		{.idx = 2,
		 .status = QUEUE_RCPT_PENDING,
		 .error = "451 later\r\nx",
		 .attempted = 1},
		{.idx = 1, .status = QUEUE_RCPT_FAILED, .error = "550 no"},
	};

	test_envelope(&env);
	commit(f, test_body, sizeof(test_body) - 1, &env, id);
	assert_int_equal(queue_rcpts_update(f->q, id, u, 3, &error), 1);
	assert_int_equal(queue_envelope_load(f->q, id, NULL, &got, &error), 1);
	assert_int_equal(got->rcpts[0].status, QUEUE_RCPT_DONE);
	assert_int_equal(got->rcpts[0].attempts, 1);
	assert_true(got->rcpts[0].last_attempt > 0);
	assert_int_equal(got->rcpts[1].status, QUEUE_RCPT_FAILED);
	assert_int_equal(got->rcpts[1].attempts, 0); /* not attempted */
	assert_string_equal(got->rcpts[1].error, "550 no");
	assert_int_equal(got->rcpts[2].status, QUEUE_RCPT_PENDING);
	assert_string_equal(got->rcpts[2].error, "451 later  x");
	queue_envelope_free(got);
	/* Again: the attempts add up. */
	assert_int_equal(queue_rcpts_update(f->q, id, &u[1], 1, &error), 1);
	assert_int_equal(queue_envelope_load(f->q, id, NULL, &got, &error), 1);
	assert_int_equal(got->rcpts[2].attempts, 2);
	queue_envelope_free(got);
	/* Out of range and bad status: refused, nothing written. */
	u[0].idx = 3;
	assert_int_equal(queue_rcpts_update(f->q, id, u, 1, &error), -1);
	u[0].idx = 0;
	u[0].status = (enum queue_rcpt_status)7;
	assert_int_equal(queue_rcpts_update(f->q, id, u, 1, &error), -1);
	assert_int_equal(
		queue_rcpts_update(f->q, "0123456789ABCDEF01", u, 0, &error),
		0);
}

static void test_events(void **state)
{
	struct fixture *f = *state;
	uint64_t hour[QUEUE_EV_COUNT], day[QUEUE_EV_COUNT];
	const char *error = NULL;
	int64_t now = 1700000000;

	assert_int_equal(queue_event_counts(f->q, now, hour, day, &error), 1);
	assert_int_equal(day[QUEUE_EV_RECEIVED], 0);
	assert_int_equal(
		queue_event_add(f->q, QUEUE_EV_RECEIVED, 2, now - 100, &error),
		0);
	assert_int_equal(
		queue_event_add(f->q, QUEUE_EV_RECEIVED, 1, now - 7200, &error),
		0);
	assert_int_equal(
		queue_event_add(f->q, QUEUE_EV_BOUNCED, 5, now - 90000, &error),
		0);
	assert_int_equal(
		queue_event_add(f->q, QUEUE_EV_DELIVERED, 0, now, &error), 0);
	assert_int_equal(queue_event_counts(f->q, now, hour, day, &error), 1);
	assert_int_equal(hour[QUEUE_EV_RECEIVED], 2);
	assert_int_equal(day[QUEUE_EV_RECEIVED], 3);
	assert_int_equal(day[QUEUE_EV_BOUNCED], 0); /* older than a day */
	assert_int_equal(day[QUEUE_EV_DELIVERED], 0);
}

/* ---- the pool of spent files (queue/free/) ---- */

static ino_t ino_of(const struct fixture *f, const char *queue, const char *id)
{
	char path[256];
	struct stat st;

	spool_path(f, queue, id, path, sizeof(path));
	if (stat(path, &st) < 0)
		fail_msg("stat(%s): %m", path);
	return st.st_ino;
}

static size_t count_files(const struct fixture *f, const char *queue)
{
	char path[256];
	struct dirent *e;
	size_t n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "%s/queue/%s", f->dir, queue);
	d = opendir(path);
	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* A body of len bytes that says which message it is at every line. */
static char *make_body(size_t len, unsigned tag)
{
	char *b = malloc(len + 1);
	size_t i = 0;

	assert_non_null(b);
	while (i < len) {
		char line[64];
		int n = snprintf(line, sizeof(line), "%08x line %zu\r\n", tag,
				 i);
		size_t take = (size_t)n < len - i ? (size_t)n : len - i;

		memcpy(b + i, line, take);
		i += take;
	}
	b[len] = '\0';
	return b;
}

static void check_message(struct fixture *f, const char *id, const char *body,
			  size_t len, size_t rcpts)
{
	struct queue_envelope *got = NULL;
	const char *error = NULL;
	uint64_t got_len;
	char *data;

	if (queue_envelope_load(f->q, id, NULL, &got, &error) != 1)
		fail_msg("%s: %s", id, error != NULL ? error : "gone");
	assert_int_equal(got->size, len);
	assert_int_equal(got->rcpt_count, rcpts);
	queue_envelope_free(got);
	data = read_body(f, id, &got_len);
	assert_int_equal(got_len, len);
	assert_memory_equal(data, body, len);
	free(data);
}

/* A retired message's file is the next message's: same inode, no new file
 * created, and the old message is gone for every reader. */
static void test_reuse(void **state)
{
	struct fixture *f = *state;
	struct queue_envelope env, *got = NULL;
	struct queue_stats st;
	struct collect c;
	const char *error = NULL;
	char a[QUEUE_ID_SIZE], b[QUEUE_ID_SIZE];
	enum queue_name n;
	ino_t ino;

	test_envelope(&env);
	commit(f, test_body, sizeof(test_body) - 1, &env, a);
	ino = ino_of(f, "active", a);
	assert_int_equal(queue_retire(f->q, a, &error), 1);
	assert_false(exists(f, "active", a));
	assert_true(exists(f, "free", a));
	assert_int_equal(ino_of(f, "free", a), ino);
	/* Gone like a deleted message. */
	assert_int_equal(queue_envelope_load(f->q, a, NULL, &got, &error), 0);
	assert_int_equal(queue_retire(f->q, a, &error), 0);
	assert_int_equal(queue_delete(f->q, a, &error), 0);
	assert_int_equal(queue_move(f->q, a, QUEUE_ACTIVE, NULL, &error), 0);
	/* free/ is no queue: not listed, not counted, not a name. */
	assert_int_equal(queue_name_parse("free", &n), 0);
	assert_int_equal(queue_stats(f->q, &st, &error), 1);
	for (int i = 0; i < QUEUE_COUNT; i++)
		assert_int_equal(st.messages[i], 0);

	commit(f, test_body, sizeof(test_body) - 1, &env, b);
	assert_int_equal(ino_of(f, "active", b), ino);
	assert_int_equal(count_files(f, "free"), 0);
	check_message(f, b, test_body, sizeof(test_body) - 1, 3);
	memset(&c, 0, sizeof(c));
	assert_int_equal(queue_scan(f->q, QUEUE_ACTIVE, collect_cb, &c, &error),
			 1);
	assert_int_equal(c.count, 1);
	assert_string_equal(c.ids[0], b);

	/* A fresh handle (a restart) finds free/ and reuses it too. */
	assert_int_equal(queue_retire(f->q, b, &error), 1);
	queue_close(f->q);
	f->q = queue_open(f->dir, &error);
	assert_non_null(f->q);
	assert_true(exists(f, "free", b));
	commit(f, "x\r\n", 3, &env, a);
	assert_int_equal(ino_of(f, "active", a), ino);
	check_message(f, a, "x\r\n", 3, 3);
}

/* A short message in the file of a long one reads back exactly: the file
 * is cut to the new length (readers check the size against the trailer). */
static void test_reuse_shorter(void **state)
{
	struct fixture *f = *state;
	struct queue_rcpt one = {.address = "x@remote.test",
				 .kind = QUEUE_RCPT_REMOTE};
	struct queue_envelope env, small;
	const char *error = NULL;
	char a[QUEUE_ID_SIZE], b[QUEUE_ID_SIZE], path[256];
	size_t long_len = 200000;
	char *long_body = make_body(long_len, 0xa);
	struct stat st;
	ino_t ino;

	test_envelope(&env);
	commit(f, long_body, long_len, &env, a);
	ino = ino_of(f, "active", a);
	assert_int_equal(queue_rcpt_set_status(f->q, a, 2, QUEUE_RCPT_FAILED,
					       "550 no", &error),
			 1);
	assert_int_equal(queue_retire(f->q, a, &error), 1);

	memset(&small, 0, sizeof(small));
	small.sender = "s@example.org";
	small.rcpts = &one;
	small.rcpt_count = 1;
	commit(f, test_body, sizeof(test_body) - 1, &small, b);
	assert_int_equal(ino_of(f, "active", b), ino);
	check_message(f, b, test_body, sizeof(test_body) - 1, 1);
	spool_path(f, "active", b, path, sizeof(path));
	assert_int_equal(stat(path, &st), 0);
	assert_true(st.st_size < 4096);
	{
		struct queue_envelope *got = NULL;

		assert_int_equal(
			queue_envelope_load(f->q, b, NULL, &got, &error), 1);
		assert_string_equal(got->sender, "s@example.org");
		assert_int_equal(got->rcpts[0].status, QUEUE_RCPT_PENDING);
		assert_string_equal(got->rcpts[0].error, "");
		assert_int_equal(got->rcpts[0].attempts, 0);
		queue_envelope_free(got);
	}
	/* And a longer one in the short file. */
	assert_int_equal(queue_retire(f->q, b, &error), 1);
	commit(f, long_body, long_len, &env, a);
	assert_int_equal(ino_of(f, "active", a), ino);
	check_message(f, a, long_body, long_len, 3);
	free(long_body);
}

/* Puts n files of size bytes (sparse) into free/, as another process or
 * an earlier run would have left them. */
static void fill_free(const struct fixture *f, size_t n, off_t size)
{
	for (size_t i = 0; i < n; i++) {
		char id[QUEUE_ID_SIZE], path[256];
		int fd;

		queue_id_make(id);
		spool_path(f, "free", id, path, sizeof(path));
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
		assert_true(fd >= 0);
		assert_int_equal(ftruncate(fd, size), 0);
		close(fd);
	}
}

static void empty_free(const struct fixture *f)
{
	char dir[256];
	struct dirent *e;
	DIR *d;

	snprintf(dir, sizeof(dir), "%s/queue/free", f->dir);
	d = opendir(dir);
	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] != '.')
			assert_int_equal(unlinkat(dirfd(d), e->d_name, 0), 0);
	}
	closedir(d);
}

static void reopen(struct fixture *f)
{
	const char *error = NULL;

	queue_close(f->q);
	f->q = queue_open(f->dir, &error);
	if (f->q == NULL)
		fail_msg("queue_open: %s", error);
}

/* The pool keeps at most QUEUE_FREE_MAX files and QUEUE_FREE_BYTES bytes,
 * none too large, none with a second name; the rest is unlinked, at open
 * and at retire. */
static void test_pool_cap(void **state)
{
	struct fixture *f = *state;
	struct queue_envelope env;
	const char *error = NULL;
	char ids[3][QUEUE_ID_SIZE], path[256], other[256];
	size_t big_len = QUEUE_FREE_SIZE_MAX + 1;
	char *big = make_body(big_len, 0xb);

	test_envelope(&env);
	/* Too large to keep: unlinked. */
	commit(f, big, big_len, &env, ids[0]);
	assert_int_equal(queue_retire(f->q, ids[0], &error), 1);
	assert_int_equal(count_files(f, "free"), 0);

	/* Over the file cap at open, with a second name of a live message
	 * and a file too large among them. */
	commit(f, "live\r\n", 6, &env, ids[0]);
	spool_path(f, "active", ids[0], other, sizeof(other));
	spool_path(f, "free", "0000000000000000AA", path, sizeof(path));
	assert_int_equal(link(other, path), 0);
	fill_free(f, QUEUE_FREE_MAX + 5, 0);
	fill_free(f, 1, QUEUE_FREE_SIZE_MAX + 1);
	reopen(f);
	assert_int_equal(count_files(f, "free"), QUEUE_FREE_MAX);
	assert_false(exists(f, "free", "0000000000000000AA"));
	check_message(f, ids[0], "live\r\n", 6, 3);
	/* Full: two taken, two back, the third unlinked. */
	commit(f, "a\r\n", 3, &env, ids[1]);
	commit(f, "b\r\n", 3, &env, ids[2]);
	assert_int_equal(count_files(f, "free"), QUEUE_FREE_MAX - 2);
	assert_int_equal(queue_retire(f->q, ids[0], &error), 1);
	assert_int_equal(queue_retire(f->q, ids[1], &error), 1);
	assert_int_equal(count_files(f, "free"), QUEUE_FREE_MAX);
	assert_int_equal(queue_retire(f->q, ids[2], &error), 1);
	assert_int_equal(count_files(f, "free"), QUEUE_FREE_MAX);
	assert_false(exists(f, "free", ids[2]));
	assert_int_equal(count_files(f, "active"), 0);

	/* The byte cap, at open and at retire. */
	empty_free(f);
	reopen(f);
	commit(f, "c\r\n", 3, &env, ids[0]);
	fill_free(f, QUEUE_FREE_BYTES / QUEUE_FREE_SIZE_MAX + 3,
		  QUEUE_FREE_SIZE_MAX);
	reopen(f);
	assert_int_equal(count_files(f, "free"),
			 QUEUE_FREE_BYTES / QUEUE_FREE_SIZE_MAX);
	assert_int_equal(queue_retire(f->q, ids[0], &error), 1);
	assert_false(exists(f, "free", ids[0]));
	assert_int_equal(count_files(f, "free"),
			 QUEUE_FREE_BYTES / QUEUE_FREE_SIZE_MAX);
	free(big);
}

/* At start-up, incoming/ is emptied (a reused file left there by a crash
 * included) and free/ is left to the pool. */
static void test_recover_leaves_free(void **state)
{
	struct fixture *f = *state;
	struct queue_envelope env;
	const char *error = NULL;
	char ids[4][QUEUE_ID_SIZE], left[QUEUE_ID_SIZE], from[256], to[256];
	size_t removed = 0;
	int fd;

	test_envelope(&env);
	for (int i = 0; i < 4; i++)
		commit(f, test_body, sizeof(test_body) - 1, &env, ids[i]);
	for (int i = 0; i < 3; i++)
		assert_int_equal(queue_retire(f->q, ids[i], &error), 1);
	/* What a crash after the rename out of free/ leaves: half new,
	 * half old bytes, in incoming/. */
	queue_id_make(left);
	spool_path(f, "free", ids[0], from, sizeof(from));
	spool_path(f, "incoming", left, to, sizeof(to));
	assert_int_equal(rename(from, to), 0);
	fd = open(to, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "partial", 7), 7);
	close(fd);

	queue_close(f->q);
	f->q = queue_open(f->dir, &error);
	assert_non_null(f->q);
	assert_int_equal(queue_recover(f->q, NULL, NULL, &removed, &error), 1);
	assert_int_equal(removed, 1);
	assert_int_equal(count_files(f, "incoming"), 0);
	assert_int_equal(count_files(f, "free"), 2);
	assert_true(exists(f, "free", ids[1]));
	assert_true(exists(f, "free", ids[2]));
	check_message(f, ids[3], test_body, sizeof(test_body) - 1, 3);
	/* The pool still works after it. */
	commit(f, "y\r\n", 3, &env, left);
	assert_int_equal(count_files(f, "free"), 1);
}

/* A descriptor of a message's bytes (queue_body_open) that outlives the
 * message: once the file is reused it reads the new message, and
 * queue_body_check says so. */
static void test_retired_reader(void **state)
{
	struct fixture *f = *state;
	struct queue_envelope env;
	const char *error = NULL;
	char a[QUEUE_ID_SIZE], b[QUEUE_ID_SIZE], buf[64];
	uint64_t off, len;
	int fd, fd2;

	test_envelope(&env);
	commit(f, "old message\r\n", 13, &env, a);
	assert_int_equal(queue_body_open(f->q, a, &fd, &off, &len, &error), 1);
	assert_int_equal(queue_body_check(f->q, a, fd, &error), 1);
	/* Moves keep it the message's. */
	assert_int_equal(queue_move(f->q, a, QUEUE_HOLD, "x", &error), 1);
	assert_int_equal(queue_body_check(f->q, a, fd, &error), 1);
	assert_int_equal(queue_move(f->q, a, QUEUE_ACTIVE, NULL, &error), 1);
	assert_int_equal(queue_body_check(f->q, a, fd, &error), 1);

	assert_int_equal(queue_retire(f->q, a, &error), 1);
	assert_int_equal(queue_body_check(f->q, a, fd, &error), 0);
	commit(f, "new message\r\n", 13, &env, b);
	assert_int_equal(pread(fd, buf, 13, (off_t)off), 13);
	assert_memory_equal(buf, "new message\r\n", 13);
	assert_int_equal(queue_body_check(f->q, a, fd, &error), 0);
	/* Under the other id it is the file of b, which it now is. */
	assert_int_equal(queue_body_check(f->q, b, fd, &error), 1);
	close(fd);

	/* A deleted message's file is never reused: a reader keeps reading
	 * its bytes, and the check says it is gone all the same. */
	assert_int_equal(queue_body_open(f->q, b, &fd2, &off, &len, &error), 1);
	assert_int_equal(queue_delete(f->q, b, &error), 1);
	assert_int_equal(queue_body_check(f->q, b, fd2, &error), 0);
	commit(f, "third message\r\n", 15, &env, a);
	assert_int_equal(pread(fd2, buf, 13, 0), 13);
	assert_memory_equal(buf, "new message\r\n", 13);
	close(fd2);
	assert_int_equal(queue_body_check(f->q, "../x", 0, &error), -1);
}

#define CHURN_THREADS 8
#define CHURN_EACH 40

struct churn_job {
	struct fixture *f;
	unsigned n;
	char kept[CHURN_EACH][QUEUE_ID_SIZE];
	size_t nkept;
	char error[256];
};

/* Commits messages of varying size, each read back whole, and retires
 * most of them at once: writers and retirers of every thread share the
 * pool. */
static void *churn(void *arg)
{
	struct churn_job *j = arg;
	struct queue_envelope env;

	test_envelope(&env);
	for (unsigned i = 0; i < CHURN_EACH && j->error[0] == '\0'; i++) {
		unsigned tag = j->n << 16 | i;
		size_t len = 20 + (size_t)((tag * 2654435761u) % 30000);
		char *body = make_body(len, tag), *got;
		const char *error = NULL;
		struct queue_writer *w = queue_writer_new(j->f->q, &error);
		struct queue_envelope *e = NULL;
		char id[QUEUE_ID_SIZE];
		uint64_t off, glen;
		int fd;

		if (w == NULL) {
			snprintf(j->error, sizeof(j->error), "new: %s", error);
			free(body);
			break;
		}
		snprintf(id, sizeof(id), "%s", queue_writer_id(w));
		if (queue_writer_write(w, body, len) < 0 ||
		    queue_writer_commit(w, &env, &error) != 1)
			snprintf(j->error, sizeof(j->error), "commit: %s",
				 error != NULL ? error : "write");
		queue_writer_free(w);
		if (j->error[0] == '\0' &&
		    (queue_envelope_load(j->f->q, id, NULL, &e, &error) != 1 ||
		     e->size != len))
			snprintf(j->error, sizeof(j->error), "load %s", id);
		queue_envelope_free(e);
		got = malloc(len);
		if (j->error[0] == '\0' &&
		    (got == NULL || queue_body_open(j->f->q, id, &fd, &off,
						    &glen, &error) != 1)) {
			snprintf(j->error, sizeof(j->error), "open %s", id);
		} else if (j->error[0] == '\0') {
			if (glen != len ||
			    pread(fd, got, len, (off_t)off) != (ssize_t)len ||
			    memcmp(got, body, len) != 0)
				snprintf(j->error, sizeof(j->error),
					 "%s: not what was written", id);
			close(fd);
		}
		free(got);
		free(body);
		if (j->error[0] != '\0')
			break;
		if (i % 5 == 4) {
			snprintf(j->kept[j->nkept++], QUEUE_ID_SIZE, "%s", id);
		} else if (queue_retire(j->f->q, id, &error) != 1) {
			snprintf(j->error, sizeof(j->error), "retire %s: %s",
				 id, error);
		}
	}
	return NULL;
}

static void test_concurrent_reuse(void **state)
{
	struct fixture *f = *state;
	struct churn_job *jobs = calloc(CHURN_THREADS, sizeof(*jobs));
	pthread_t t[CHURN_THREADS];
	struct queue_stats st;
	const char *error = NULL;
	size_t kept = 0;

	assert_non_null(jobs);
	for (unsigned i = 0; i < CHURN_THREADS; i++) {
		jobs[i].f = f;
		jobs[i].n = i;
		assert_int_equal(pthread_create(&t[i], NULL, churn, &jobs[i]),
				 0);
	}
	for (int i = 0; i < CHURN_THREADS; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	for (unsigned i = 0; i < CHURN_THREADS; i++) {
		if (jobs[i].error[0] != '\0')
			fail_msg("thread %u: %s", i, jobs[i].error);
		/* What was kept is still whole, after all the reuse. */
		for (size_t k = 0; k < jobs[i].nkept; k++) {
			unsigned idx = (unsigned)(k * 5 + 4);
			unsigned tag = i << 16 | idx;
			size_t len = 20 + (size_t)((tag * 2654435761u) % 30000);
			char *body = make_body(len, tag);

			check_message(f, jobs[i].kept[k], body, len, 3);
			free(body);
		}
		kept += jobs[i].nkept;
	}
	assert_int_equal(queue_stats(f->q, &st, &error), 1);
	assert_int_equal(st.messages[QUEUE_INCOMING], 0);
	assert_int_equal(st.messages[QUEUE_ACTIVE], kept);
	assert_int_equal(count_files(f, "incoming"), 0);
	/* Retired files were reused: far fewer in free/ than retired. */
	assert_true(count_files(f, "free") <=
		    CHURN_THREADS * CHURN_EACH - kept);
	assert_true(count_files(f, "free") <= CHURN_THREADS);
	free(jobs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ids),
		cmocka_unit_test(test_names),
		cmocka_unit_test_setup_teardown(test_roundtrip, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_defaults_and_cleaning,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_subject_utf8_cut, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_bad_envelopes, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_abort, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scratch_copy, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_status_durable, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_move_delete_scan, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_scan_queues_sent_by, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_damaged, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parse_subject_controls,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_recover, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_to, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_commits, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_flags, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rcpts_update, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_events, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reuse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reuse_shorter, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_pool_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recover_leaves_free, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_retired_reader, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_reuse, setup,
						teardown),
	};

	/* Quarantine warnings go to the system log: keep the output quiet. */
	log_init(NULL, 0, NULL);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
