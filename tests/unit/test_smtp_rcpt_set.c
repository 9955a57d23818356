/* Unit tests of smtp/smtp_rcpt_set: the duplicate-recipient check. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smtp/smtp_rcpt_set.h"

/* Adds each address in turn, as RCPT does: a new one is kept at the end
 * of the array, a duplicate is not. */
struct step {
	const char *addr;
	int want;
};

static void run(const struct step *steps, size_t n)
{
	struct smtp_rcpt *rcpts = calloc(n, sizeof(*rcpts));
	struct smtp_rcpt_set set;
	size_t kept = 0;

	assert_non_null(rcpts);
	smtp_rcpt_set_init(&set);
	for (size_t i = 0; i < n; i++) {
		int r;

		snprintf(rcpts[kept].addr, sizeof(rcpts[kept].addr), "%s",
			 steps[i].addr);
		r = smtp_rcpt_set_add(&set, rcpts, kept);
		if (r != steps[i].want)
			fail_msg("%s: got %d, want %d", steps[i].addr, r,
				 steps[i].want);
		if (r == 0)
			kept++;
	}
	smtp_rcpt_set_deinit(&set);
	free(rcpts);
}

static void test_table(void **state)
{
	static const struct step steps[] = {
		{"alice@example.test", 0},
		{"bob@example.test", 0},
		{"alice@example.test", 1},
		{"ALICE@Example.TEST", 1}, /* as strcasecmp compared */
		{"alice@example.tes", 0},
		{"<>", 0},
		{"", 0},
		{"", 1},
		{"bob@example.test", 1},
	};

	(void)state;
	run(steps, sizeof(steps) / sizeof(steps[0]));
}

/* Many recipients: the table grows many times, and every duplicate is
 * still found after it did. */
static void test_many(void **state)
{
	enum { N = 100000 };
	struct step *steps = calloc(2 * N, sizeof(*steps));
	char(*names)[32] = calloc(2 * N, sizeof(*names));
	size_t n = 0;

	(void)state;
	assert_non_null(steps);
	assert_non_null(names);
	for (size_t i = 0; i < N; i++) {
		snprintf(names[n], sizeof(names[n]), "r%zu@remote.test", i);
		steps[n].addr = names[n];
		steps[n++].want = 0;
		if (i % 2 == 1) {
			snprintf(names[n], sizeof(names[n]), "R%zu@REMOTE.test",
				 i / 2);
			steps[n].addr = names[n];
			steps[n++].want = 1;
		}
	}
	run(steps, n);
	free(names);
	free(steps);
}

/* After deinit the set is empty and may be used again. */
static void test_reuse(void **state)
{
	struct smtp_rcpt rcpts[2];
	struct smtp_rcpt_set set;

	(void)state;
	memset(rcpts, 0, sizeof(rcpts));
	snprintf(rcpts[0].addr, sizeof(rcpts[0].addr), "a@b.test");
	smtp_rcpt_set_init(&set);
	assert_int_equal(smtp_rcpt_set_add(&set, rcpts, 0), 0);
	smtp_rcpt_set_deinit(&set);
	assert_int_equal(smtp_rcpt_set_add(&set, rcpts, 0), 0);
	rcpts[1] = rcpts[0];
	assert_int_equal(smtp_rcpt_set_add(&set, rcpts, 1), 1);
	smtp_rcpt_set_deinit(&set);
	smtp_rcpt_set_deinit(&set); /* twice is fine */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_many),
		cmocka_unit_test(test_reuse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
