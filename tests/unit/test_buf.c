/* Unit tests of lib/buf: the bounded growable buffer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/buf.h"

struct append_case {
	const char *name;
	size_t max;
	const char *parts[4]; /* appended in order; NULL ends */
	int want[4];	      /* each append's return */
	const char *content;
};

static const struct append_case append_cases[] = {
	{"one", 10, {"abc"}, {0}, "abc"},
	{"several", 10, {"ab", "cd", "ef"}, {0, 0, 0}, "abcdef"},
	{"exactly max", 6, {"abc", "def"}, {0, 0}, "abcdef"},
	{"past max refused, unchanged", 5, {"abc", "def"}, {0, -1}, "abc"},
	{"past max then fits", 5, {"abc", "defg", "de"}, {0, -1, 0}, "abcde"},
	{"first past max", 2, {"abc", "ab"}, {-1, 0}, "ab"},
	{"empty appends", 0, {"", "", "x"}, {0, 0, -1}, ""},
	{"max zero", 0, {"a"}, {-1}, ""},
	{"past growth step",
	 1000,
	 {"0123456789012345678901234567890123456789012345678901234567890123456"
	  "789",
	  "0123456789012345678901234567890123456789012345678901234567890123456"
	  "789"},
	 {0, 0},
	 "0123456789012345678901234567890123456789012345678901234567890123456"
	 "7890123456789012345678901234567890123456789012345678901234567890123"
	 "456789"},
};

static void test_append(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(append_cases) / sizeof(append_cases[0]);
	     i++) {
		const struct append_case *c = &append_cases[i];
		struct buf b;

		buf_init(&b, c->max);
		for (size_t j = 0; j < 4 && c->parts[j] != NULL; j++) {
			int got = buf_append_str(&b, c->parts[j]);

			if (got != c->want[j])
				fail_msg("%s: append %zu returned %d", c->name,
					 j, got);
		}
		assert_string_equal(buf_cstr(&b), c->content);
		assert_int_equal(b.len, strlen(c->content));
		assert_true(b.len <= b.max);
		buf_deinit(&b);
	}
}

static void test_binary_and_cstr(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, 16);
	assert_string_equal(buf_cstr(&b), "");
	assert_int_equal(buf_append(&b, "a\0b", 3), 0);
	assert_int_equal(b.len, 3);
	assert_memory_equal(b.data, "a\0b", 4); /* NUL after the content */
	assert_int_equal(buf_append(&b, NULL, 0), 0);
	assert_int_equal(b.len, 3);
	buf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_string_equal(buf_cstr(&b), "");
	assert_non_null(b.data); /* storage kept */
	buf_deinit(&b);
	assert_null(b.data);
	assert_string_equal(buf_cstr(&b), "");
	/* Reusable after deinit. */
	buf_init(&b, 4);
	assert_int_equal(buf_append_str(&b, "four"), 0);
	assert_string_equal(buf_cstr(&b), "four");
	buf_deinit(&b);
}

/* A huge bound is not a way around the checks. */
static void test_huge_bound(void **state)
{
	struct buf b;
	char c = 'x';

	(void)state;
	buf_init(&b, SIZE_MAX);
	assert_int_equal(buf_append(&b, &c, 1), 0);
	assert_int_equal(buf_append(&b, &c, SIZE_MAX), -1);
	assert_int_equal(buf_append(&b, &c, SIZE_MAX - 1), -1);
	assert_int_equal(b.len, 1);
	assert_string_equal(buf_cstr(&b), "x");
	buf_deinit(&b);
}

struct printf_case {
	const char *name;
	size_t max;
	const char *prefix;
	int value;
	int want;
	const char *content;
};

static const struct printf_case printf_cases[] = {
	{"fits", 20, "", 42, 0, "n=42"},
	{"after text", 20, "ab ", 7, 0, "ab n=7"},
	{"exactly max", 6, "ab", 12, 0, "abn=12"},
	{"past max unchanged", 5, "ab", 12, -1, "ab"},
	{"empty buffer past max", 3, "", 1234, -1, ""},
};

static void test_printf(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(printf_cases) / sizeof(printf_cases[0]);
	     i++) {
		const struct printf_case *c = &printf_cases[i];
		struct buf b;
		int got;

		buf_init(&b, c->max);
		assert_int_equal(buf_append_str(&b, c->prefix), 0);
		got = buf_printf(&b, "n=%d", c->value);
		if (got != c->want)
			fail_msg("%s: returned %d", c->name, got);
		assert_string_equal(buf_cstr(&b), c->content);
		assert_int_equal(b.len, strlen(c->content));
		buf_deinit(&b);
	}
}

static void test_printf_empty_and_long(void **state)
{
	struct buf b;
	char big[300];

	(void)state;
	buf_init(&b, 1000);
	assert_int_equal(buf_printf(&b, "%s", ""), 0);
	assert_string_equal(buf_cstr(&b), "");
	memset(big, 'y', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(buf_printf(&b, "%s|%s", big, big), 0);
	assert_int_equal(b.len, 2 * 299 + 1);
	assert_int_equal(buf_printf(&b, "%s", big), 0);
	assert_int_equal(buf_printf(&b, "%s", big), -1);
	assert_int_equal(b.len, 3 * 299 + 1);
	assert_int_equal(strlen(buf_cstr(&b)), b.len);
	buf_deinit(&b);
}

struct consume_case {
	const char *name;
	const char *content;
	size_t n;
	const char *left;
};

static const struct consume_case consume_cases[] = {
	{"none", "abcdef", 0, "abcdef"},      {"some", "abcdef", 2, "cdef"},
	{"all but one", "abcdef", 5, "f"},    {"all", "abcdef", 6, ""},
	{"more than all", "abcdef", 100, ""}, {"from empty", "", 3, ""},
};

static void test_consume(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(consume_cases) / sizeof(consume_cases[0]);
	     i++) {
		const struct consume_case *c = &consume_cases[i];
		struct buf b;

		buf_init(&b, 100);
		assert_int_equal(buf_append_str(&b, c->content), 0);
		buf_consume(&b, c->n);
		if (strcmp(buf_cstr(&b), c->left) != 0)
			fail_msg("%s: left [%s]", c->name, buf_cstr(&b));
		assert_int_equal(b.len, strlen(c->left));
		/* Room comes back after a consume. */
		assert_int_equal(buf_append_str(&b, "xyz"), 0);
		buf_deinit(&b);
	}
}

static void test_steal(void **state)
{
	struct buf b;
	char *s;

	(void)state;
	buf_init(&b, 100);
	assert_int_equal(buf_append_str(&b, "hello"), 0);
	s = buf_steal(&b);
	assert_non_null(s);
	assert_string_equal(s, "hello");
	assert_int_equal(b.len, 0);
	assert_null(b.data);
	assert_string_equal(buf_cstr(&b), "");
	/* Still usable, with the same bound. */
	assert_int_equal(buf_append_str(&b, "again"), 0);
	assert_string_equal(buf_cstr(&b), "again");
	free(s);
	buf_deinit(&b);

	/* Stealing from an empty buffer gives an empty string to free. */
	buf_init(&b, 100);
	s = buf_steal(&b);
	assert_non_null(s);
	assert_string_equal(s, "");
	free(s);
	buf_deinit(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_append),
		cmocka_unit_test(test_binary_and_cstr),
		cmocka_unit_test(test_huge_bound),
		cmocka_unit_test(test_printf),
		cmocka_unit_test(test_printf_empty_and_long),
		cmocka_unit_test(test_consume),
		cmocka_unit_test(test_steal),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
