/* Unit tests of pop3/pop3_maildir on a real Maildir in /tmp: the snapshot
 * (order, sizes with and without W=, a missing Maildir, 10,000 messages),
 * opening with the seen flag, a file renamed by another reader, and the
 * removal of deleted messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "unit_tmp.h"

#include "pop3/pop3_maildir.h"

struct fixture {
	char dir[64];
	char maildir[128];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char p[256];

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/petrel-test-pop3-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->maildir, sizeof(f->maildir), "%s/Maildir", f->dir);
	assert_int_equal(mkdir(f->maildir, 0700), 0);
	snprintf(p, sizeof(p), "%s/new", f->maildir);
	assert_int_equal(mkdir(p, 0700), 0);
	snprintf(p, sizeof(p), "%s/cur", f->maildir);
	assert_int_equal(mkdir(p, 0700), 0);
	snprintf(p, sizeof(p), "%s/tmp", f->maildir);
	assert_int_equal(mkdir(p, 0700), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	unit_rmtree(f->dir);
	free(f);
	return 0;
}

static void put(const struct fixture *f, const char *sub, const char *name,
		const char *text)
{
	char path[512];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s/%s", f->maildir, sub, name);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
}

static int exists(const struct fixture *f, const char *sub, const char *name)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s/%s", f->maildir, sub, name);
	return access(path, F_OK) == 0;
}

static void test_scan(void **state)
{
	struct fixture *f = *state;
	struct pop3_msg *m = NULL;
	size_t n = 0;
	const char *err = NULL;

	put(f, "new", "1700000003.M1P1Q1.h,S=6,W=8", "a\nbcd\n");
	/* No W=: counted by reading (LF -> CRLF, CRLF kept). */
	put(f, "cur", "1700000001.M1P1Q1.h:2,S", "ab\r\ncd\nef");
	put(f, "new", ".hidden", "x");
	put(f, "tmp", "1700000000.M1P1Q1.h", "in delivery");
	assert_int_equal(pop3_maildir_scan(f->maildir, &m, &n, &err), 1);
	assert_int_equal(n, 2);
	assert_string_equal(m[0].name, "1700000001.M1P1Q1.h:2,S");
	assert_true(m[0].in_cur);
	assert_int_equal(m[0].size, 4 + 4 + 4); /* ab CRLF cd CRLF ef CRLF */
	assert_string_equal(m[0].uidl, "1700000001.M1P1Q1.h");
	assert_string_equal(m[1].name, "1700000003.M1P1Q1.h,S=6,W=8");
	assert_false(m[1].in_cur);
	assert_int_equal(m[1].size, 8);
	assert_false(m[0].deleted || m[1].deleted);
	pop3_maildir_free(m, n);
	pop3_maildir_free(NULL, 0);
}

static void test_scan_missing(void **state)
{
	struct fixture *f = *state;
	struct pop3_msg *m = NULL;
	size_t n = 99;
	const char *err = NULL;
	char path[256];

	snprintf(path, sizeof(path), "%s/nobody/Maildir", f->dir);
	assert_int_equal(pop3_maildir_scan(path, &m, &n, &err), 1);
	assert_int_equal(n, 0);
	pop3_maildir_free(m, n);
}

static void read_all(int fd, char *buf, size_t size)
{
	const char *err = NULL;
	long n = pop3_maildir_read(fd, 0, buf, size - 1, &err);

	assert_true(n >= 0);
	buf[n] = '\0';
}

static void test_open_marks_seen(void **state)
{
	struct fixture *f = *state;
	char name[NAME_MAX + 8], buf[64];
	const char *err = NULL;
	int in_cur = -1, fd;

	put(f, "new", "1700000003.M1P1Q1.h,S=4,W=5", "abc\n");
	/* TOP: no flag. */
	fd = pop3_maildir_open(f->maildir, "1700000003.M1P1Q1.h,S=4,W=5", 0, 0,
			       name, sizeof(name), &in_cur, &err);
	assert_true(fd >= 0);
	close(fd);
	assert_false(in_cur);
	assert_true(exists(f, "new", "1700000003.M1P1Q1.h,S=4,W=5"));
	/* RETR: moves to cur/ with S. */
	fd = pop3_maildir_open(f->maildir, "1700000003.M1P1Q1.h,S=4,W=5", 0, 1,
			       name, sizeof(name), &in_cur, &err);
	assert_true(fd >= 0);
	read_all(fd, buf, sizeof(buf));
	close(fd);
	assert_string_equal(buf, "abc\n");
	assert_true(in_cur);
	assert_string_equal(name, "1700000003.M1P1Q1.h,S=4,W=5:2,S");
	assert_false(exists(f, "new", "1700000003.M1P1Q1.h,S=4,W=5"));
	assert_true(exists(f, "cur", "1700000003.M1P1Q1.h,S=4,W=5:2,S"));
	/* In cur/ with other flags: S is added in order. */
	put(f, "cur", "1700000004.M1P1Q1.h:2,FT", "x\n");
	fd = pop3_maildir_open(f->maildir, "1700000004.M1P1Q1.h:2,FT", 1, 1,
			       name, sizeof(name), &in_cur, &err);
	assert_true(fd >= 0);
	close(fd);
	assert_string_equal(name, "1700000004.M1P1Q1.h:2,FST");
	assert_true(exists(f, "cur", "1700000004.M1P1Q1.h:2,FST"));
}

static void test_open_renamed(void **state)
{
	struct fixture *f = *state;
	char name[NAME_MAX + 8], from[256], to[256];
	const char *err = NULL;
	int in_cur = -1, fd;

	put(f, "new", "1700000005.M1P1Q1.h", "x\n");
	/* Another reader (IMAP) moved it and flagged it meanwhile. */
	snprintf(from, sizeof(from), "%s/new/1700000005.M1P1Q1.h", f->maildir);
	snprintf(to, sizeof(to), "%s/cur/1700000005.M1P1Q1.h:2,R", f->maildir);
	assert_int_equal(rename(from, to), 0);
	fd = pop3_maildir_open(f->maildir, "1700000005.M1P1Q1.h", 0, 0, name,
			       sizeof(name), &in_cur, &err);
	assert_true(fd >= 0);
	close(fd);
	assert_true(in_cur);
	assert_string_equal(name, "1700000005.M1P1Q1.h:2,R");
	/* Gone for good: ENOENT. */
	assert_int_equal(unlink(to), 0);
	fd = pop3_maildir_open(f->maildir, "1700000005.M1P1Q1.h", 0, 0, name,
			       sizeof(name), &in_cur, &err);
	assert_int_equal(fd, -1);
	assert_int_equal(errno, ENOENT);
	assert_non_null(err);
}

static void test_expunge(void **state)
{
	struct fixture *f = *state;
	struct pop3_msg *m = NULL;
	size_t n = 0;
	const char *err = NULL;
	char from[256], to[256];

	put(f, "new", "1700000001.M1P1Q1.h", "1\n");
	put(f, "new", "1700000002.M1P1Q1.h", "2\n");
	put(f, "cur", "1700000003.M1P1Q1.h:2,S", "3\n");
	put(f, "new", "1700000004.M1P1Q1.h", "4\n");
	assert_int_equal(pop3_maildir_scan(f->maildir, &m, &n, &err), 1);
	assert_int_equal(n, 4);
	m[0].deleted = 1;
	m[2].deleted = 1;
	m[3].deleted = 1;
	/* 4 was renamed by another reader; 1 was removed by one. */
	snprintf(from, sizeof(from), "%s/new/1700000004.M1P1Q1.h", f->maildir);
	snprintf(to, sizeof(to), "%s/cur/1700000004.M1P1Q1.h:2,T", f->maildir);
	assert_int_equal(rename(from, to), 0);
	snprintf(from, sizeof(from), "%s/new/1700000001.M1P1Q1.h", f->maildir);
	assert_int_equal(unlink(from), 0);
	assert_int_equal(pop3_maildir_expunge(f->maildir, m, n, &err), 0);
	assert_true(exists(f, "new", "1700000002.M1P1Q1.h"));
	assert_false(exists(f, "cur", "1700000003.M1P1Q1.h:2,S"));
	assert_false(exists(f, "cur", "1700000004.M1P1Q1.h:2,T"));
	pop3_maildir_free(m, n);
}

static void test_scan_10000(void **state)
{
	struct fixture *f = *state;
	struct pop3_msg *m = NULL;
	size_t n = 0;
	const char *err = NULL;
	struct timespec a, b;
	double ms;

	for (int i = 0; i < 10000; i++) {
		char name[128];

		snprintf(name, sizeof(name),
			 "%d.M%06dP1Q%d.mx.example.test,S=100,W=%d",
			 1700000000 + i / 10, i, i, 100 + i % 7);
		put(f, i % 2 ? "cur" : "new", name, "");
	}
	clock_gettime(CLOCK_MONOTONIC, &a);
	assert_int_equal(pop3_maildir_scan(f->maildir, &m, &n, &err), 1);
	clock_gettime(CLOCK_MONOTONIC, &b);
	ms = (double)(b.tv_sec - a.tv_sec) * 1e3 +
	     (double)(b.tv_nsec - a.tv_nsec) / 1e6;
	print_message("scan of 10,000 messages: %.1f ms\n", ms);
	assert_int_equal(n, 10000);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(m[i].size, 100 + i % 7);
		assert_int_equal(m[i].in_cur, i % 2);
	}
	/* Sizes come from the names: no file is opened, so it is quick
	 * even under the sanitizers. */
	assert_true(ms < 2000);
	pop3_maildir_free(m, n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_scan, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scan_missing, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_open_marks_seen, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_open_renamed, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_expunge, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scan_10000, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
