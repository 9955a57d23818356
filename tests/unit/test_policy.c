/* Unit tests of policy/: relay control and submission rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "directory/settings.h"
#include "lib/addr.h"
#include "policy/policy.h"

struct rcpt_case {
	const char *name;
	const char *auth;
	int local, exists;
	const char *want; /* reply prefix, NULL to accept */
};

static const struct rcpt_case rcpt_cases[] = {
	{"local existing, no auth", NULL, 1, 1, NULL},
	{"local unknown, no auth", NULL, 1, 0, "550 5.1.1"},
	{"local unknown, auth", "a@example.test", 1, 0, "550 5.1.1"},
	{"remote, no auth: no relay", NULL, 0, 0, "550 5.7.1"},
	{"remote, auth: relay", "a@example.test", 0, 0, NULL},
};

static void test_rcpt_table(void **state)
{
	struct settings *set = settings_new();
	struct addr a;
	const char *err;

	assert_int_equal(addr_parse_mailbox("x@example.test", &a, &err), 0);
	for (size_t i = 0; i < sizeof(rcpt_cases) / sizeof(rcpt_cases[0]);
	     i++) {
		const struct rcpt_case *c = &rcpt_cases[i];
		struct policy_facts f = {.settings = set,
					 .client_ip = "192.0.2.1",
					 .auth = c->auth,
					 .now = 1700000000};
		const char *reason = NULL;
		const char *got =
			policy_check_rcpt(&f, &a, c->local, c->exists, &reason);
		if (c->want == NULL) {
			if (got != NULL)
				fail_msg("%s: refused with %s", c->name, got);
		} else {
			if (got == NULL ||
			    strncmp(got, c->want, strlen(c->want)) != 0)
				fail_msg("%s: got %s", c->name,
					 got ? got : "accept");
			/* Every refusal says why, for the log. */
			assert_non_null(reason);
		}
	}
	settings_unref(set);
}

static void test_mail_submission_needs_auth(void **state)
{
	struct settings *set = settings_new();
	struct addr a;
	const char *err, *reason = NULL;
	struct policy_facts f = {.settings = set, .submission = 1};

	addr_parse_mailbox("a@example.test", &a, &err);
	assert_non_null(policy_check_mail(&f, &a, 1, &reason));
	assert_non_null(reason);
	f.auth = "a@example.test";
	assert_null(policy_check_mail(&f, &a, 1, &reason));
	f.auth = NULL;
	f.submission = 0;
	assert_null(policy_check_mail(&f, &a, 0, &reason));
	settings_unref(set);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rcpt_table),
		cmocka_unit_test(test_mail_submission_needs_auth),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
