/* Unit tests of smtp/smtp_data: dot-unstuffing, end of data, smuggling. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "smtp/smtp_data.h"

#define S(x) x, sizeof(x) - 1
#define MAX_LINE 1000
#define MAX_SIZE 10000

struct result {
	int ret;
	size_t used;
	struct buf out;
	struct smtp_data_reader r;
};

/*
 * Feeds in[0..len) as a first chunk of `cut` bytes, then the rest in
 * chunks of `step` bytes (0: all at once), stopping at the end of data,
 * like a session that drains what was used.
 */
static void feed(const char *in, size_t len, size_t cut, size_t step,
		 size_t max_line, size_t max_size, struct result *res)
{
	size_t pos = 0;

	buf_init(&res->out, max_size + 100);
	smtp_data_init(&res->r, max_line, max_size);
	res->ret = 0;
	res->used = 0;
	while (pos < len || (pos == 0 && len == 0)) {
		size_t n =
			pos == 0 && cut > 0 ? cut : (step ? step : len - pos);
		size_t used = 12345;

		if (n > len - pos)
			n = len - pos;
		res->ret =
			smtp_data_feed(&res->r, in + pos, n, &used, &res->out);
		assert_in_range(res->ret, 0, 1);
		assert_true(used <= n);
		if (res->ret == 0)
			assert_int_equal(used, n);
		pos += used;
		res->used += used;
		assert_true(res->out.len <= max_size);
		if (res->ret == 1 || len == 0)
			break;
	}
}

struct data_case {
	const char *name;
	const char *input;
	size_t len;
	size_t max_line;
	size_t max_size;
	int want;
	size_t used; /* when want is 1 */
	const char *out;
	size_t out_len;
	enum smtp_data_error error;
};

#define OK SMTP_DATA_OK
#define BARE SMTP_DATA_BARE_NEWLINE
#define LONG SMTP_DATA_LINE_TOO_LONG
#define BIG SMTP_DATA_TOO_BIG

/* Whatever a smuggling sequence is followed by is still message. */
#define SMUGGLE(name, seq, out)                                                \
	{                                                                      \
		"smuggle " name,                                               \
			S("Hi" seq "MAIL FROM:<a@b.example>\r\n.\r\n"),        \
			MAX_LINE, MAX_SIZE, 1,                                 \
			sizeof("Hi" seq "MAIL FROM:<a@b.example>\r\n.\r\n") -  \
				1,                                             \
			S(out), BARE                                           \
	}

static const struct data_case data_cases[] = {
	{"empty message", S(".\r\n"), MAX_LINE, MAX_SIZE, 1, 3, S(""), OK},
	{"one line", S("Hello\r\n.\r\n"), MAX_LINE, MAX_SIZE, 1, 10,
	 S("Hello\r\n"), OK},
	{"empty lines", S("\r\n\r\n.\r\n"), MAX_LINE, MAX_SIZE, 1, 7,
	 S("\r\n\r\n"), OK},
	{"dot stuffed", S("..hidden\r\n.\r\n"), MAX_LINE, MAX_SIZE, 1, 13,
	 S(".hidden\r\n"), OK},
	{"dot then text", S("a\r\n.x\r\n.\r\n"), MAX_LINE, MAX_SIZE, 1, 10,
	 S("a\r\nx\r\n"), OK},
	{"dot space", S(". \r\n.\r\n"), MAX_LINE, MAX_SIZE, 1, 7, S(" \r\n"),
	 OK},
	{"two dots line", S("..\r\n.\r\n"), MAX_LINE, MAX_SIZE, 1, 7,
	 S(".\r\n"), OK},
	{"three dots line", S("...\r\n.\r\n"), MAX_LINE, MAX_SIZE, 1, 8,
	 S("..\r\n"), OK},
	{"dot not at start", S("a.\r\n.\r\n"), MAX_LINE, MAX_SIZE, 1, 7,
	 S("a.\r\n"), OK},
	{"needs more", S("Hello\r\n"), MAX_LINE, MAX_SIZE, 0, 0, S("Hello\r\n"),
	 OK},
	{"needs more after dot", S("Hello\r\n."), MAX_LINE, MAX_SIZE, 0, 0,
	 S("Hello\r\n"), OK},
	{"needs more after dot CR", S("Hello\r\n.\r"), MAX_LINE, MAX_SIZE, 0, 0,
	 S("Hello\r\n"), OK},
	{"needs more mid line", S("Hel"), MAX_LINE, MAX_SIZE, 0, 0, S("Hel"),
	 OK},
	{"nothing", S(""), MAX_LINE, MAX_SIZE, 0, 0, S(""), OK},
	{"pipelined after end", S("Hi\r\n.\r\nQUIT\r\n"), MAX_LINE, MAX_SIZE, 1,
	 7, S("Hi\r\n"), OK},
	{"pipelined after empty", S(".\r\nRSET\r\n"), MAX_LINE, MAX_SIZE, 1, 3,
	 S(""), OK},
	{"NUL passed through", S("a\0b\r\n.\r\n"), MAX_LINE, MAX_SIZE, 1, 8,
	 S("a\0b\r\n"), OK},
	{"NUL before dot", S("Hi\r\n\0.\r\nX\r\n.\r\n"), MAX_LINE, MAX_SIZE, 1,
	 14, S("Hi\r\n\0.\r\nX\r\n"), OK},
	SMUGGLE("LF.LF", "\n.\n", "Hi"),
	SMUGGLE("LF.CRLF", "\n.\r\n", "Hi"),
	SMUGGLE("CR.LF", "\r.\n", "Hi"),
	SMUGGLE("CR.CR", "\r.\r", "Hi"),
	SMUGGLE("CR.CRLF", "\r.\r\n", "Hi"),
	SMUGGLE("CRLF.LF", "\r\n.\n", "Hi\r\n"),
	SMUGGLE("CRLF.CR", "\r\n.\r", "Hi\r\n"),
	SMUGGLE("CRLF.CRCRLF", "\r\n.\r\r\n", "Hi\r\n"),
	SMUGGLE("LF LF", "\n\n", "Hi"),
	SMUGGLE("CR CR", "\r\r", "Hi"),
	SMUGGLE("LFCR.CRLF", "\n\r.\r\n", "Hi"),
	{"smuggle never ends", S("Hi\n.\nMAIL FROM:<a@b.example>\n.\n"),
	 MAX_LINE, MAX_SIZE, 0, 0, S("Hi"), BARE},
	{"smuggle CRLF.LF then real end", S("Hi\r\n.\n\r\n.\r\n"), MAX_LINE,
	 MAX_SIZE, 1, 11, S("Hi\r\n"), BARE},
	{"bare LF mid line", S("a\nb\r\n.\r\n"), MAX_LINE, MAX_SIZE, 1, 8,
	 S("a"), BARE},
	{"bare CR mid line", S("a\rb\r\n.\r\n"), MAX_LINE, MAX_SIZE, 1, 8,
	 S("a"), BARE},
	{"bare LF first", S("\n.\r\n"), MAX_LINE, MAX_SIZE, 0, 0, S(""), BARE},
	{"bare CR first", S("\r.\r\n"), MAX_LINE, MAX_SIZE, 0, 0, S(""), BARE},
	{"CR CR LF", S("a\r\r\n.\r\n"), MAX_LINE, MAX_SIZE, 1, 7, S("a"), BARE},
	{"line at limit", S("12345678\r\n.\r\n"), 10, MAX_SIZE, 1, 13,
	 S("12345678\r\n"), OK},
	{"line over limit", S("123456789\r\n.\r\n"), 10, MAX_SIZE, 1, 14,
	 S("12345678"), LONG},
	{"stuffed line at limit", S("..2345678\r\n.\r\n"), 10, MAX_SIZE, 1, 14,
	 S(".2345678\r\n"), OK},
	{"long line then more", S("ok\r\n123456789012\r\nabc\r\n.\r\n"), 10,
	 MAX_SIZE, 1, 26, S("ok\r\n12345678"), LONG},
	{"long line never ended", S("1234567890123"), 10, MAX_SIZE, 0, 0,
	 S("12345678"), LONG},
	{"size at limit", S("1234\r\n12\r\n.\r\n"), MAX_LINE, 10, 1, 13,
	 S("1234\r\n12\r\n"), OK},
	{"size over limit", S("12345\r\n123\r\n.\r\n"), MAX_LINE, 10, 1, 15,
	 S("12345\r\n123"), BIG},
	{"size over limit then more", S("12345\r\n1234567\r\nabc\r\n.\r\n"),
	 MAX_LINE, 10, 1, 24, S("12345\r\n123"), BIG},
	{"first error sticks", S("123456789012\r\na\nb\r\n.\r\n"), 10, MAX_SIZE,
	 1, 22, S("12345678"), LONG},
};

static void check_case(const struct data_case *c, const struct result *res,
		       const char *how)
{
	if (res->ret != c->want)
		fail_msg("%s (%s): got %d, want %d", c->name, how, res->ret,
			 c->want);
	if (res->used != (c->want == 1 ? c->used : c->len))
		fail_msg("%s (%s): used %zu", c->name, how, res->used);
	if (res->out.len != c->out_len ||
	    memcmp(buf_cstr(&res->out), c->out, c->out_len) != 0)
		fail_msg("%s (%s): out [%s]", c->name, how,
			 buf_cstr(&res->out));
	if (res->r.error != c->error)
		fail_msg("%s (%s): error %d, want %d", c->name, how,
			 res->r.error, c->error);
}

static void test_cases_whole(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(data_cases) / sizeof(data_cases[0]);
	     i++) {
		const struct data_case *c = &data_cases[i];
		struct result res;

		feed(c->input, c->len, 0, 0, c->max_line, c->max_size, &res);
		check_case(c, &res, "whole");
		buf_deinit(&res.out);
	}
}

/* Every case split in two at every position, and fed byte by byte, gives
 * the same result as fed whole. */
static void test_cases_split(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(data_cases) / sizeof(data_cases[0]);
	     i++) {
		const struct data_case *c = &data_cases[i];
		struct result whole, res;
		char how[32];

		feed(c->input, c->len, 0, 0, c->max_line, c->max_size, &whole);
		for (size_t cut = 1; cut < c->len; cut++) {
			snprintf(how, sizeof(how), "cut at %zu", cut);
			feed(c->input, c->len, cut, 0, c->max_line, c->max_size,
			     &res);
			check_case(c, &res, how);
			assert_int_equal(res.r.size, whole.r.size);
			assert_int_equal(res.r.lines, whole.r.lines);
			assert_int_equal(res.r.nul_bytes, whole.r.nul_bytes);
			buf_deinit(&res.out);
		}
		feed(c->input, c->len, 0, 1, c->max_line, c->max_size, &res);
		check_case(c, &res, "byte by byte");
		assert_int_equal(res.r.size, whole.r.size);
		assert_int_equal(res.r.lines, whole.r.lines);
		buf_deinit(&res.out);
		buf_deinit(&whole.out);
	}
}

static void test_counters(void **state)
{
	struct result res;

	(void)state;
	feed(S("a\r\n..b\r\n\0\0\r\n.\r\n"), 0, 0, MAX_LINE, MAX_SIZE, &res);
	assert_int_equal(res.ret, 1);
	assert_int_equal(res.r.lines, 3);
	assert_int_equal(res.r.size, 3 + 4 + 4);
	assert_int_equal(res.r.size, res.out.len);
	assert_int_equal(res.r.nul_bytes, 2);
	buf_deinit(&res.out);

	/* Past the size limit the message is still counted. */
	feed(S("12345\r\n12345\r\n.\r\n"), 0, 0, MAX_LINE, 8, &res);
	assert_int_equal(res.r.error, SMTP_DATA_TOO_BIG);
	assert_int_equal(res.r.size, 14);
	assert_int_equal(res.r.lines, 2);
	buf_deinit(&res.out);
}

/* The end split at every byte boundary, pipelined bytes after it. */
static void test_end_split_pipelined(void **state)
{
	static const char in[] = "Subject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n";
	size_t len = sizeof(in) - 1, end = len - 6;

	(void)state;
	for (size_t a = 0; a <= len; a++) {
		for (size_t b = a; b <= len; b++) {
			struct smtp_data_reader r;
			struct buf out;
			size_t used, total = 0;
			int ret;

			buf_init(&out, 1000);
			smtp_data_init(&r, MAX_LINE, MAX_SIZE);
			ret = smtp_data_feed(&r, in, a, &used, &out);
			total += used;
			if (ret == 0) {
				ret = smtp_data_feed(&r, in + a, b - a, &used,
						     &out);
				total += used;
			}
			if (ret == 0) {
				ret = smtp_data_feed(&r, in + b, len - b, &used,
						     &out);
				total += used;
			}
			assert_int_equal(ret, 1);
			assert_int_equal(total, end);
			assert_string_equal(buf_cstr(&out),
					    "Subject: x\r\n\r\nbody\r\n");
			assert_int_equal(r.error, SMTP_DATA_OK);
			buf_deinit(&out);
		}
	}
}

static void test_after_end(void **state)
{
	struct smtp_data_reader r;
	struct buf out;
	size_t used = 99;

	(void)state;
	buf_init(&out, 100);
	smtp_data_init(&r, MAX_LINE, MAX_SIZE);
	assert_int_equal(smtp_data_feed(&r, S(".\r\n"), &used, &out), 1);
	assert_int_equal(used, 3);
	assert_int_equal(smtp_data_feed(&r, S("more\r\n.\r\n"), &used, &out),
			 1);
	assert_int_equal(used, 0);
	assert_int_equal(out.len, 0);

	/* A new message after init. */
	smtp_data_init(&r, MAX_LINE, MAX_SIZE);
	assert_int_equal(smtp_data_feed(&r, S("x\r\n.\r\n"), &used, &out), 1);
	assert_string_equal(buf_cstr(&out), "x\r\n");
	buf_deinit(&out);
}

/* out refusing an append (its own bound) stops the message as too big. */
static void test_out_bound(void **state)
{
	struct smtp_data_reader r;
	struct buf out;
	size_t used;

	(void)state;
	buf_init(&out, 4);
	smtp_data_init(&r, MAX_LINE, MAX_SIZE);
	assert_int_equal(
		smtp_data_feed(&r, S("abcdef\r\nxyz\r\n.\r\n"), &used, &out),
		1);
	assert_int_equal(r.error, SMTP_DATA_TOO_BIG);
	assert_true(out.len <= 4);
	buf_deinit(&out);
}

/* A large message in big chunks: appended in runs, all of it kept. */
static void test_large(void **state)
{
	static char in[200000];
	struct result res;
	size_t n = 0;

	(void)state;
	while (n + 100 < sizeof(in) - 10) {
		memset(in + n, (n / 100) % 2 ? '.' : 'x', 98);
		memcpy(in + n + 98, "\r\n", 2);
		n += 100;
	}
	memcpy(in + n, ".\r\n", 3);
	n += 3;
	feed(in, n, 4093, 8192, MAX_LINE, sizeof(in), &res);
	assert_int_equal(res.ret, 1);
	assert_int_equal(res.used, n);
	assert_int_equal(res.r.error, SMTP_DATA_OK);
	assert_int_equal(res.r.lines, (n - 3) / 100);
	/* Every other line is dot-stuffed: one byte less. */
	assert_int_equal(res.out.len, n - 3 - res.r.lines / 2);
	buf_deinit(&res.out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cases_whole),
		cmocka_unit_test(test_cases_split),
		cmocka_unit_test(test_counters),
		cmocka_unit_test(test_end_split_pipelined),
		cmocka_unit_test(test_after_end),
		cmocka_unit_test(test_out_bound),
		cmocka_unit_test(test_large),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
