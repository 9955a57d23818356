/* Unit tests of policy/: relay control, submission and the sender
 * authentication rules, table-driven over settings and facts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "directory/settings.h"
#include "lib/addr.h"
#include "policy/policy.h"

#define ALICE "alice@example.test"

/* Settings as "name=value" pairs, NULL-terminated. */
static struct settings *settings_with(const char *const *pairs)
{
	struct settings *s = settings_new();

	assert_non_null(s);
	for (size_t i = 0; pairs != NULL && pairs[i] != NULL; i++) {
		char name[128];
		const char *eq = strchr(pairs[i], '=');
		int id;

		assert_non_null(eq);
		assert_true((size_t)(eq - pairs[i]) < sizeof(name));
		memcpy(name, pairs[i], (size_t)(eq - pairs[i]));
		name[eq - pairs[i]] = '\0';
		id = settings_lookup(name);
		assert_true(id >= 0);
		assert_int_equal(settings_set(s, (enum settings_id)id, eq + 1),
				 0);
	}
	return s;
}

static void check_verdict(const char *name, const char *got, const char *want,
			  const char *reason)
{
	if (want == NULL) {
		if (got != NULL)
			fail_msg("%s: refused with %s", name, got);
		return;
	}
	if (got == NULL || strncmp(got, want, strlen(want)) != 0)
		fail_msg("%s: got %s, want %s", name, got ? got : "accept",
			 want);
	/* Every refusal says why, for the log. */
	if (reason == NULL || reason[0] == '\0')
		fail_msg("%s: refusal without a reason", name);
}

struct mail_case {
	const char *name;
	const char *settings[4];
	const char *sender;  /* "" for <> */
	int local;	     /* the sender's domain is ours */
	const char *account; /* what the sender resolves to, or NULL */
	const char *auth;
	int submission, trusted, local_ip;
	const char *want; /* reply prefix, NULL to accept */
	int local_unauth; /* expected *local_unauth_r */
};

static const struct mail_case mail_cases[] = {
	/* Submission needs AUTH, whatever the sender. */
	{"submission without auth",
	 {NULL},
	 "x@remote.test",
	 0,
	 NULL,
	 NULL,
	 1,
	 0,
	 0,
	 "530 5.7.0",
	 0},
	{"submission with auth",
	 {NULL},
	 ALICE,
	 1,
	 ALICE,
	 ALICE,
	 1,
	 0,
	 0,
	 NULL,
	 0},
	/* auth.require_for_local_senders (on by default). */
	{"mx: remote sender",
	 {NULL},
	 "x@remote.test",
	 0,
	 NULL,
	 NULL,
	 0,
	 0,
	 0,
	 NULL,
	 0},
	{"mx: local sender without auth",
	 {NULL},
	 ALICE,
	 1,
	 ALICE,
	 NULL,
	 0,
	 0,
	 0,
	 "530 5.7.0",
	 0},
	{"mx: unknown local sender without auth",
	 {NULL},
	 "nobody@example.test",
	 1,
	 NULL,
	 NULL,
	 0,
	 0,
	 0,
	 "530 5.7.0",
	 0},
	{"mx: local sender, rule off",
	 {"auth.require_for_local_senders=off", NULL},
	 ALICE,
	 1,
	 ALICE,
	 NULL,
	 0,
	 0,
	 0,
	 NULL,
	 0},
	{"mx: local sender, except_to_local",
	 {"auth.except_to_local=on", NULL},
	 ALICE,
	 1,
	 ALICE,
	 NULL,
	 0,
	 0,
	 0,
	 NULL,
	 1},
	{"mx: null sender", {NULL}, "", 0, NULL, NULL, 0, 0, 0, NULL, 0},
	{"trusted host, not exempt",
	 {NULL},
	 ALICE,
	 1,
	 ALICE,
	 NULL,
	 0,
	 1,
	 0,
	 "530 5.7.0",
	 0},
	{"trusted host, exempt",
	 {"trusted.exempt_from=auth.require_for_local_senders", NULL},
	 ALICE,
	 1,
	 ALICE,
	 NULL,
	 0,
	 1,
	 0,
	 NULL,
	 0},
	{"exemption is for trusted hosts only",
	 {"trusted.exempt_from=auth.require_for_local_senders", NULL},
	 ALICE,
	 1,
	 ALICE,
	 NULL,
	 0,
	 0,
	 0,
	 "530 5.7.0",
	 0},
	/* auth.require_for_role_senders (on by default). */
	{"role sender, local rule off",
	 {"auth.require_for_local_senders=off", NULL},
	 "postmaster@example.test",
	 1,
	 ALICE,
	 NULL,
	 0,
	 0,
	 0,
	 "530 5.7.0",
	 0},
	{"role sender, case",
	 {"auth.require_for_local_senders=off", NULL},
	 "Abuse@example.test",
	 1,
	 NULL,
	 NULL,
	 0,
	 0,
	 0,
	 "530 5.7.0",
	 0},
	{"role sender, both off",
	 {"auth.require_for_local_senders=off",
	  "auth.require_for_role_senders=off", NULL},
	 "webmaster@example.test",
	 1,
	 NULL,
	 NULL,
	 0,
	 0,
	 0,
	 NULL,
	 0},
	{"remote role sender",
	 {NULL},
	 "postmaster@remote.test",
	 0,
	 NULL,
	 NULL,
	 0,
	 0,
	 0,
	 NULL,
	 0},
	{"role sender, trusted and exempt",
	 {"auth.require_for_local_senders=off",
	  "trusted.exempt_from=auth.require_for_role_senders", NULL},
	 "postmaster@example.test",
	 1,
	 NULL,
	 NULL,
	 0,
	 1,
	 0,
	 NULL,
	 0},
	/* auth.require_for_local_ips (off by default). */
	{"local ip, rule off",
	 {NULL},
	 "x@remote.test",
	 0,
	 NULL,
	 NULL,
	 0,
	 0,
	 1,
	 NULL,
	 0},
	{"local ip, rule on",
	 {"auth.require_for_local_ips=on", NULL},
	 "x@remote.test",
	 0,
	 NULL,
	 NULL,
	 0,
	 0,
	 1,
	 "530 5.7.0",
	 0},
	{"local ip, rule on, trusted",
	 {"auth.require_for_local_ips=on", NULL},
	 "x@remote.test",
	 0,
	 NULL,
	 NULL,
	 0,
	 1,
	 1,
	 NULL,
	 0},
	{"local ip, rule on, authenticated",
	 {"auth.require_for_local_ips=on", NULL},
	 ALICE,
	 1,
	 ALICE,
	 ALICE,
	 0,
	 0,
	 1,
	 NULL,
	 0},
	{"other ip, rule on",
	 {"auth.require_for_local_ips=on", NULL},
	 "x@remote.test",
	 0,
	 NULL,
	 NULL,
	 0,
	 0,
	 0,
	 NULL,
	 0},
	/* auth.match_return_path (on by default). */
	{"own address", {NULL}, ALICE, 1, ALICE, ALICE, 1, 0, 0, NULL, 0},
	{"own alias",
	 {NULL},
	 "info@example.test",
	 1,
	 ALICE,
	 ALICE,
	 1,
	 0,
	 0,
	 NULL,
	 0},
	{"account case differs",
	 {NULL},
	 "Alice@Example.test",
	 1,
	 "alice@example.test",
	 "ALICE@example.test",
	 1,
	 0,
	 0,
	 NULL,
	 0},
	{"another account",
	 {NULL},
	 "bob@example.test",
	 1,
	 "bob@example.test",
	 ALICE,
	 1,
	 0,
	 0,
	 "550 5.7.1",
	 0},
	{"unknown local address",
	 {NULL},
	 "nobody@example.test",
	 1,
	 NULL,
	 ALICE,
	 1,
	 0,
	 0,
	 "550 5.7.1",
	 0},
	{"remote address",
	 {NULL},
	 "alice@gmail.test",
	 0,
	 NULL,
	 ALICE,
	 1,
	 0,
	 0,
	 "550 5.7.1",
	 0},
	{"another account, rule off",
	 {"auth.match_return_path=off", NULL},
	 "bob@example.test",
	 1,
	 "bob@example.test",
	 ALICE,
	 1,
	 0,
	 0,
	 NULL,
	 0},
	/* The null sender on authenticated sessions. */
	{"null sender, auth",
	 {NULL},
	 "",
	 0,
	 NULL,
	 ALICE,
	 1,
	 0,
	 0,
	 "550 5.7.1",
	 0},
	{"null sender, auth, allowed",
	 {"auth.allow_null_sender=on", NULL},
	 "",
	 0,
	 NULL,
	 ALICE,
	 1,
	 0,
	 0,
	 NULL,
	 0},
};

static void test_mail_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(mail_cases) / sizeof(mail_cases[0]);
	     i++) {
		const struct mail_case *c = &mail_cases[i];
		struct settings *set = settings_with(c->settings);
		struct addr a;
		const char *err, *reason = NULL, *got;
		struct policy_facts f = {.settings = set,
					 .client_ip = "192.0.2.1",
					 .submission = c->submission,
					 .auth = c->auth,
					 .trusted = c->trusted,
					 .local_ip = c->local_ip,
					 .now = 1700000000};
		struct policy_sender s = {.addr = &a,
					  .null = c->sender[0] == '\0',
					  .local = c->local,
					  .account = c->account};
		int local_unauth = -1;

		memset(&a, 0, sizeof(a));
		if (c->sender[0] != '\0')
			assert_int_equal(
				addr_parse_mailbox(c->sender, &a, &err), 0);
		got = policy_check_mail(&f, &s, &local_unauth, &reason);
		check_verdict(c->name, got, c->want, reason);
		if (local_unauth != c->local_unauth)
			fail_msg("%s: local_unauth %d", c->name, local_unauth);
		settings_unref(set);
	}
}

struct rcpt_case {
	const char *name;
	const char *auth;
	int trusted, local, exists, local_unauth;
	const char *want; /* reply prefix, NULL to accept */
};

static const struct rcpt_case rcpt_cases[] = {
	{"local existing, no auth", NULL, 0, 1, 1, 0, NULL},
	{"local unknown, no auth", NULL, 0, 1, 0, 0, "550 5.1.1"},
	{"local unknown, auth", ALICE, 0, 1, 0, 0, "550 5.1.1"},
	{"remote, no auth: no relay", NULL, 0, 0, 0, 0, "550 5.7.1"},
	{"remote, auth: relay", ALICE, 0, 0, 0, 0, NULL},
	{"remote, trusted host: relay", NULL, 1, 0, 0, 0, NULL},
	{"except_to_local: local ok", NULL, 0, 1, 1, 1, NULL},
	{"except_to_local: remote refused", NULL, 0, 0, 0, 1, "530 5.7.0"},
	{"except_to_local: even from a trusted host", NULL, 1, 0, 0, 1,
	 "530 5.7.0"},
};

static void test_rcpt_table(void **state)
{
	struct settings *set = settings_new();
	struct addr a;
	const char *err;

	(void)state;
	assert_int_equal(addr_parse_mailbox("x@example.test", &a, &err), 0);
	for (size_t i = 0; i < sizeof(rcpt_cases) / sizeof(rcpt_cases[0]);
	     i++) {
		const struct rcpt_case *c = &rcpt_cases[i];
		struct policy_facts f = {.settings = set,
					 .client_ip = "192.0.2.1",
					 .auth = c->auth,
					 .trusted = c->trusted,
					 .now = 1700000000};
		const char *reason = NULL;
		const char *got = policy_check_rcpt(&f, &a, c->local, c->exists,
						    c->local_unauth, &reason);
		check_verdict(c->name, got, c->want, reason);
	}
	settings_unref(set);
}

struct from_case {
	const char *name;
	const char *settings[3];
	const char *auth;
	int trusted, parsed;
	size_t n;
	struct {
		const char *addr;
		int local;
		const char *account;
	} from[3];
	const char *want;
};

static const struct from_case from_cases[] = {
	{"own address", {NULL}, ALICE, 0, 1, 1, {{ALICE, 1, ALICE}}, NULL},
	{"own alias and address",
	 {NULL},
	 ALICE,
	 0,
	 1,
	 2,
	 {{"info@example.test", 1, ALICE}, {ALICE, 1, ALICE}},
	 NULL},
	{"one of two is another account",
	 {NULL},
	 ALICE,
	 0,
	 1,
	 2,
	 {{ALICE, 1, ALICE}, {"bob@example.test", 1, "bob@example.test"}},
	 "550 5.7.1"},
	{"remote From",
	 {NULL},
	 ALICE,
	 0,
	 1,
	 1,
	 {{"a@gmail.test", 0, NULL}},
	 "550 5.7.1"},
	{"no From", {NULL}, ALICE, 0, 0, 0, {{NULL, 0, NULL}}, "550 5.7.1"},
	{"empty group only",
	 {NULL},
	 ALICE,
	 0,
	 1,
	 0,
	 {{NULL, 0, NULL}},
	 "550 5.7.1"},
	{"rule off",
	 {"auth.match_from_header=off", NULL},
	 ALICE,
	 0,
	 0,
	 0,
	 {{NULL, 0, NULL}},
	 NULL},
	{"trusted, exempt",
	 {"trusted.exempt_from=auth.match_from_header", NULL},
	 ALICE,
	 1,
	 1,
	 1,
	 {{"x@remote.test", 0, NULL}},
	 NULL},
	/* Without AUTH: only the role rule looks at From:. */
	{"no auth, remote From",
	 {NULL},
	 NULL,
	 0,
	 1,
	 1,
	 {{"x@remote.test", 0, NULL}},
	 NULL},
	{"no auth, no From", {NULL}, NULL, 0, 0, 0, {{NULL, 0, NULL}}, NULL},
	{"no auth, local role From",
	 {NULL},
	 NULL,
	 0,
	 1,
	 1,
	 {{"postmaster@example.test", 1, ALICE}},
	 "550 5.7.1"},
	{"no auth, local role From, rule off",
	 {"auth.require_for_role_senders=off", NULL},
	 NULL,
	 0,
	 1,
	 1,
	 {{"postmaster@example.test", 1, ALICE}},
	 NULL},
	{"no auth, remote role From",
	 {NULL},
	 NULL,
	 0,
	 1,
	 1,
	 {{"postmaster@remote.test", 0, NULL}},
	 NULL},
};

static void test_from_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(from_cases) / sizeof(from_cases[0]);
	     i++) {
		const struct from_case *c = &from_cases[i];
		struct settings *set = settings_with(c->settings);
		struct addr addrs[3];
		struct policy_from from[3];
		const char *err, *reason = NULL, *got;
		struct policy_facts f = {.settings = set,
					 .client_ip = "192.0.2.1",
					 .submission = 1,
					 .auth = c->auth,
					 .trusted = c->trusted,
					 .now = 1700000000};

		for (size_t k = 0; k < c->n; k++) {
			assert_int_equal(addr_parse_mailbox(c->from[k].addr,
							    &addrs[k], &err),
					 0);
			from[k].addr = &addrs[k];
			from[k].local = c->from[k].local;
			from[k].account = c->from[k].account;
		}
		got = policy_check_from(&f, c->parsed, from, c->n, &reason);
		check_verdict(c->name, got, c->want, reason);
		settings_unref(set);
	}
}

static void test_role_names(void **state)
{
	(void)state;
	assert_true(policy_role_local_part("postmaster"));
	assert_true(policy_role_local_part("ABUSE"));
	assert_true(policy_role_local_part("webmaster"));
	assert_false(policy_role_local_part("postmasters"));
	assert_false(policy_role_local_part("alice"));
	assert_false(policy_role_local_part(""));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mail_table),
		cmocka_unit_test(test_rcpt_table),
		cmocka_unit_test(test_from_table),
		cmocka_unit_test(test_role_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
