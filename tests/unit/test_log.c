/* Unit tests of lib/log: log_sanitize, and the daily files under a fake
 * clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <dirent.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "lib/clock.h"
#include "lib/log.h"

#define S(x) x, sizeof(x) - 1

struct sanitize_case {
	const char *name;
	const char *input;
	size_t len;
	size_t dstsize;
	const char *want;
};

static const struct sanitize_case sanitize_cases[] = {
	{"plain", S("hello"), 64, "hello"},
	{"space and tilde kept", S(" ~!"), 64, " ~!"},
	{"CRLF", S("a\r\nb"), 64, "a\\x0d\\x0ab"},
	{"backslash", S("a\\b"), 64, "a\\x5cb"},
	{"8-bit", S("\xc3\xa9"), 64, "\\xc3\\xa9"},
	{"NUL", S("a\0b"), 64, "a\\x00b"},
	{"DEL and tab", S("\x7f\t"), 64, "\\x7f\\x09"},
	{"ESC sequence", S("\x1b[2J"), 64, "\\x1b[2J"},
	{"empty", S(""), 64, ""},
	{"cut", S("abcdefghij"), 8, "abcd..."},
	{"exact fit", S("abcdefg"), 8, "abcdefg"},
	{"one over", S("abcdefgh"), 8, "abcd..."},
	{"escape not split",
	 S("ab\x01"
	   "cdefgh"),
	 8, "ab..."},
	{"escapes fit exactly", S("\x01\x02"), 9, "\\x01\\x02"},
	{"escapes one over", S("\x01\x02"), 8, "\\x01..."},
	{"size 4 cut", S("abcdef"), 4, "..."},
	{"size 4 fits", S("abc"), 4, "abc"},
	{"size 2 fits", S("a"), 2, "a"},
	{"size 2 cut", S("abc"), 2, ""},
	{"size 1", S("abc"), 1, ""},
};

static void test_sanitize(void **state)
{
	char dst[128];

	(void)state;
	for (size_t i = 0;
	     i < sizeof(sanitize_cases) / sizeof(sanitize_cases[0]); i++) {
		const struct sanitize_case *c = &sanitize_cases[i];
		char *got;

		memset(dst, 'Z', sizeof(dst));
		got = log_sanitize(dst, c->dstsize, c->input, c->len);
		assert_ptr_equal(got, dst);
		if (strcmp(dst, c->want) != 0)
			fail_msg("%s: got [%s], want [%s]", c->name, dst,
				 c->want);
		assert_true(strlen(dst) < c->dstsize);
		/* Nothing written past dstsize. */
		assert_int_equal(dst[c->dstsize], 'Z');
	}
	/* dstsize 0: nothing written at all. */
	dst[0] = 'Z';
	log_sanitize(dst, 0, "abc", 3);
	assert_int_equal(dst[0], 'Z');
}

static char log_dir[256];

static int64_t utc_ms(int y, int mon, int d, int h, int mi, int s, int ms)
{
	struct tm tm = {0};

	tm.tm_year = y - 1900;
	tm.tm_mon = mon - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = s;
	return (int64_t)timegm(&tm) * 1000 + ms;
}

/* Reads dir/name into out; returns its length, or -1 when missing. */
static long read_log(const char *dir, const char *name, char *out, size_t size)
{
	char path[512];
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "rb");
	if (f == NULL)
		return -1;
	n = fread(out, 1, size - 1, f);
	out[n] = '\0';
	fclose(f);
	return (long)n;
}

static void remove_tree(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;

	if (d == NULL) {
		unlink(path);
		return;
	}
	while ((e = readdir(d)) != NULL) {
		char sub[512];

		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
		remove_tree(sub);
	}
	closedir(d);
	rmdir(path);
}

static int setup(void **state)
{
	(void)state;
	setenv("TZ", "UTC", 1);
	tzset();
	snprintf(log_dir, sizeof(log_dir), "/tmp/petrel-test-log-XXXXXX");
	if (mkdtemp(log_dir) == NULL)
		return -1;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	log_deinit();
	clock_set_fake(-1);
	remove_tree(log_dir);
	return 0;
}

static void test_file_names(void **state)
{
	(void)state;
	assert_string_equal(log_file_name(LOG_SMTP_IN), "smtp-in");
	assert_string_equal(log_file_name(LOG_SMTP_OUT), "smtp-out");
	assert_string_equal(log_file_name(LOG_POP3), "pop3");
	assert_string_equal(log_file_name(LOG_SECURITY), "security");
	assert_string_equal(log_file_name(LOG_SYSTEM), "system");
	assert_string_equal(log_file_name(LOG_ADMIN), "admin");
	assert_string_equal(log_file_name(LOG_FILE_COUNT), "system");
}

static void test_files(void **state)
{
	char dir[300], text[4096];
	const char *err = NULL;

	(void)state;
	/* log_init creates the folder, parents included. */
	snprintf(dir, sizeof(dir), "%s/a/b", log_dir);
	assert_int_equal(log_init(dir, 0, &err), 0);

	clock_set_fake(utc_ms(2024, 3, 5, 13, 14, 15, 678));
	log_write(LOG_SMTP_IN, "S1", LOG_FROM_PEER, "EHLO %s", "client");
	clock_advance(327);
	log_write(LOG_SMTP_IN, "S1", LOG_TO_PEER, "250 %d", 42);
	log_write(LOG_SMTP_OUT, "S2", LOG_EVENT, "connected");
	log_write(LOG_SECURITY, NULL, NULL, "no session");
	log_info("started");
	log_warn("careful");
	log_error("broken");

	assert_true(read_log(dir, "smtp-in-2024-03-05.log", text,
			     sizeof(text)) > 0);
	assert_string_equal(text, "2024-03-05 13:14:15.678 S1 <-- EHLO client\n"
				  "2024-03-05 13:14:16.005 S1 --> 250 42\n");
	assert_true(read_log(dir, "smtp-out-2024-03-05.log", text,
			     sizeof(text)) > 0);
	assert_string_equal(text, "2024-03-05 13:14:16.005 S2 *** connected\n");
	assert_true(read_log(dir, "security-2024-03-05.log", text,
			     sizeof(text)) > 0);
	assert_string_equal(text, "2024-03-05 13:14:16.005 - *** no session\n");
	assert_true(read_log(dir, "system-2024-03-05.log", text, sizeof(text)) >
		    0);
	assert_string_equal(text,
			    "2024-03-05 13:14:16.005 - *** started\n"
			    "2024-03-05 13:14:16.005 - *** warning: careful\n"
			    "2024-03-05 13:14:16.005 - *** error: broken\n");
	assert_int_equal(
		read_log(dir, "pop3-2024-03-05.log", text, sizeof(text)), -1);

	/* Past midnight, the next day's file. */
	clock_set_fake(utc_ms(2024, 3, 6, 0, 0, 0, 1));
	log_write(LOG_SMTP_IN, "S3", LOG_FROM_PEER, "QUIT");
	assert_true(read_log(dir, "smtp-in-2024-03-06.log", text,
			     sizeof(text)) > 0);
	assert_string_equal(text, "2024-03-06 00:00:00.001 S3 <-- QUIT\n");
	assert_true(read_log(dir, "smtp-in-2024-03-05.log", text,
			     sizeof(text)) > 0);
	assert_null(strstr(text, "QUIT"));

	/* Reopen (SIGHUP) appends to the same file. */
	log_reopen();
	log_write(LOG_SMTP_IN, "S3", LOG_TO_PEER, "221 bye");
	assert_true(read_log(dir, "smtp-in-2024-03-06.log", text,
			     sizeof(text)) > 0);
	assert_string_equal(text, "2024-03-06 00:00:00.001 S3 <-- QUIT\n"
				  "2024-03-06 00:00:00.001 S3 --> 221 bye\n");
	log_deinit();
}

/* The transcript budget: the limit, the second allowance for the lines
 * that are kept, the lines that always pass, and a transaction's lines
 * held until its DATA or forgotten without it. */
static void test_budget(void **state)
{
	struct log_budget b;
	static char text[128 * 1024];
	const char *err;
	int w;

	(void)state;
	assert_int_equal(log_init(log_dir, 0, &err), 0);
	clock_set_fake(utc_ms(2024, 1, 3, 0, 0, 0, 0));
	memset(&b, 0, sizeof(b));
	/* Under the limit: everything. */
	for (int i = 0; i < 3; i++)
		assert_int_equal(log_budget_admit(&b, LOG_SMTP_IN, "B", 3,
						  LOG_FROM_PEER, LOG_KEEP_NO,
						  4),
				 1);
	assert_false(log_budget_over(&b, 3) == 0);
	/* Over: plain lines are counted, kept ones pass 3 more times. */
	assert_int_equal(log_budget_admit(&b, LOG_SMTP_IN, "B", 3,
					  LOG_FROM_PEER, LOG_KEEP_NO, 4),
			 0);
	for (w = 0; w < 10; w++)
		if (!log_budget_admit(&b, LOG_SMTP_IN, "B", 3, LOG_TO_PEER,
				      LOG_KEEP, 10))
			break;
	assert_int_equal(w, 3);
	assert_int_equal(log_budget_admit(&b, LOG_SMTP_IN, "B", 3, LOG_EVENT,
					  LOG_KEEP_ALWAYS, 5),
			 1);
	/* A transaction forgotten, then one that reaches DATA. */
	log_budget_hold(&b, LOG_FROM_PEER, "MAIL FROM:<lost@x>");
	log_budget_discard(&b);
	log_budget_hold(&b, LOG_FROM_PEER, "MAIL FROM:<kept@x>");
	log_budget_hold(&b, LOG_TO_PEER, "250 2.1.0 Ok");
	log_budget_release(&b, LOG_SMTP_IN, "B");
	/* Held past LOG_BUDGET_HELD_MAX: the rest counted, and said. */
	for (int i = 0; i < 1000; i++)
		log_budget_hold(&b, LOG_FROM_PEER, "RCPT TO:<someone@x.test>");
	log_budget_release(&b, LOG_SMTP_IN, "B");
	log_budget_flush(&b, LOG_SMTP_IN, "B");
	assert_true(read_log(log_dir, "smtp-in-2024-01-03.log", text,
			     sizeof(text)) > 0);
	assert_null(strstr(text, "lost@x"));
	assert_non_null(strstr(text, "B <-- MAIL FROM:<kept@x>\n"
				     "2024-01-03 00:00:00.000 B --> 250 2.1.0 "
				     "Ok\n"));
	assert_non_null(strstr(text, "transcript limit of 3 lines reached"));
	assert_non_null(
		strstr(text, "second transcript limit of 3 lines reached"));
	assert_non_null(strstr(text, " more lines of this transaction not "
				     "logged\n"));
	/* The summary counts the commands not written: the plain one, the
	 * forgotten MAIL and the RCPT lines that were not held. */
	assert_non_null(strstr(text, "more commands, "));
	assert_null(b.held);
	log_deinit();
}

/* Over-long text is cut and marked, and stays one line. */
static void test_long_line(void **state)
{
	static char big[20000], text[20000];
	const char *err;
	long n;

	(void)state;
	assert_int_equal(log_init(log_dir, 0, &err), 0);
	clock_set_fake(utc_ms(2024, 1, 2, 3, 4, 5, 6));
	memset(big, 'x', sizeof(big) - 1);
	log_write(LOG_POP3, "P1", LOG_FROM_PEER, "%s", big);
	n = read_log(log_dir, "pop3-2024-01-02.log", text, sizeof(text));
	assert_true(n > 100 && n <= 8192);
	assert_memory_equal(text, "2024-01-02 03:04:05.006 P1 <-- xxx", 34);
	assert_memory_equal(text + n - 4, "...\n", 4);
	assert_ptr_equal(strchr(text, '\n'), text + n - 1);
	log_deinit();
}

/* A second log_init to another folder writes there from then on. */
static void test_reinit_other_dir(void **state)
{
	char a[300], b[300], text[1024];
	const char *err;

	(void)state;
	snprintf(a, sizeof(a), "%s/one", log_dir);
	snprintf(b, sizeof(b), "%s/two", log_dir);
	clock_set_fake(utc_ms(2024, 6, 1, 12, 0, 0, 0));
	assert_int_equal(log_init(a, 0, &err), 0);
	log_write(LOG_ADMIN, "A", LOG_EVENT, "first");
	assert_int_equal(log_init(b, 0, &err), 0);
	log_write(LOG_ADMIN, "A", LOG_EVENT, "second");
	assert_true(read_log(a, "admin-2024-06-01.log", text, sizeof(text)) >
		    0);
	assert_string_equal(text, "2024-06-01 12:00:00.000 A *** first\n");
	assert_true(read_log(b, "admin-2024-06-01.log", text, sizeof(text)) >
		    0);
	assert_string_equal(text, "2024-06-01 12:00:00.000 A *** second\n");
	log_deinit();
}

static void test_init_error(void **state)
{
	char path[300];
	const char *err = NULL;
	FILE *f;

	(void)state;
	/* A file where a folder should be. */
	snprintf(path, sizeof(path), "%s/file", log_dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/file/sub", log_dir);
	assert_int_equal(log_init(path, 0, &err), -1);
	assert_non_null(err);
	/* NULL: stderr only, fine. */
	assert_int_equal(log_init(NULL, 0, &err), 0);
	log_write(LOG_SMTP_IN, "S", LOG_EVENT, "nowhere");
	log_deinit();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sanitize),
		cmocka_unit_test(test_file_names),
		cmocka_unit_test_setup_teardown(test_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_budget, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_line, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_reinit_other_dir, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_init_error, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
