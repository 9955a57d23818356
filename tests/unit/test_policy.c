/* Unit tests of policy/: relay control, submission and the sender
 * authentication rules, table-driven over settings and facts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
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
	{"no auth, local role second of two",
	 {NULL},
	 NULL,
	 0,
	 1,
	 2,
	 {{"x@remote.test", 0, NULL}, {"postmaster@example.test", 1, NULL}},
	 "550 5.7.1"},
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

/* Our domains for policy_check_from_raw; "fail.test" fails the lookup. */
static size_t raw_lookups;

static int raw_is_local(void *ctx, const char *domain)
{
	(void)ctx;
	raw_lookups++;
	if (strcmp(domain, "fail.test") == 0)
		return -1;
	return strcmp(domain, "example.test") == 0 ||
	       strcmp(domain, "example.org") == 0;
}

struct raw_case {
	const char *name;
	const char *settings[3];
	const char *auth;
	int trusted, parsed;
	const char *msg;
	const char *want;
};

#define RAW_REFUSED "550 5.7.1 Authentication required for this From: address"

static const struct raw_case raw_cases[] = {
	/* Without AUTH: where a local domain appears in a From: that the
	 * address parser did not take, the From: is refused. */
	{"two From: fields",
	 {NULL},
	 NULL,
	 0,
	 0,
	 "From: x@remote.test\r\nFrom: postmaster@example.test\r\n\r\nb\r\n",
	 RAW_REFUSED},
	{"two From: fields, the same role",
	 {NULL},
	 NULL,
	 0,
	 0,
	 "From: postmaster@example.test\r\nFrom: postmaster@example.test\r\n"
	 "\r\n",
	 RAW_REFUSED},
	{"group",
	 {NULL},
	 NULL,
	 0,
	 0,
	 "From: x: postmaster@example.test;\r\n",
	 RAW_REFUSED},
	{"group, upper case",
	 {NULL},
	 NULL,
	 0,
	 0,
	 "From: x: Postmaster@EXAMPLE.Test;\r\n",
	 RAW_REFUSED},
	{"group, trailing dot",
	 {NULL},
	 NULL,
	 0,
	 0,
	 "From: x: postmaster@example.test.;\r\n",
	 RAW_REFUSED},
	{"group, folded",
	 {NULL},
	 NULL,
	 0,
	 0,
	 "Subject: s\r\nFrom: x: a@remote.test,\r\n\tpostmaster@example.test;"
	 "\r\nTo: y@example.org\r\n\r\n",
	 RAW_REFUSED},
	{"group, local non-role account",
	 {NULL},
	 NULL,
	 0,
	 0,
	 "From: x: alice@example.test;\r\n",
	 RAW_REFUSED},
	{"in a comment",
	 {NULL},
	 NULL,
	 0,
	 0,
	 "From: <x@remote.test (postmaster@example.test)\r\n",
	 RAW_REFUSED},
	{"in a quoted display name",
	 {NULL},
	 NULL,
	 0,
	 0,
	 "From: \"postmaster@example.test\" <x@remote.test>, (\r\n",
	 RAW_REFUSED},
	{"quoted pair in the domain",
	 {NULL},
	 NULL,
	 0,
	 0,
	 "From: \"postmaster@exam\\ple.test\" <x@remote.test>>\r\n",
	 RAW_REFUSED},
	{"CFWS around @ and dots",
	 {NULL},
	 NULL,
	 0,
	 0,
	 "From: postmaster @ (c) example ( x ) . test, (\r\n",
	 RAW_REFUSED},
	{"Q encoded-word",
	 {NULL},
	 NULL,
	 0,
	 0,
	 "From: =?utf-8?q?postmaster=40example=2Etest?= <x@remote.test>>\r\n",
	 RAW_REFUSED},
	{"B encoded-word in a group",
	 {NULL},
	 NULL,
	 0,
	 0,
	 "From: g: =?utf-8?b?cG9zdG1hc3RlckBleGFtcGxlLnRlc3Q=?= "
	 "<x@remote.test>;\r\n",
	 RAW_REFUSED},
	{"second field written From :",
	 {NULL},
	 NULL,
	 0,
	 1,
	 "From: x@remote.test\r\nFrom : postmaster@example.test\r\n\r\n",
	 RAW_REFUSED},
	{"From: after a line that is not a field",
	 {NULL},
	 NULL,
	 0,
	 0,
	 "Subject: s\r\nnot a field\r\nFrom: postmaster@example.test\r\n\r\n",
	 RAW_REFUSED},
	{"trusted, not exempt",
	 {NULL},
	 NULL,
	 1,
	 0,
	 "From: x: postmaster@example.test;\r\n",
	 RAW_REFUSED},
	/* Fail closed when there is more than we look at. */
	{"too many domains",
	 {NULL},
	 NULL,
	 0,
	 0,
	 "From: g: a@d1.test, a@d2.test, a@d3.test, a@d4.test, a@d5.test, "
	 "a@d6.test, a@d7.test, a@d8.test, a@d9.test, a@d10.test, a@d11.test, "
	 "a@d12.test, a@d13.test, a@d14.test, a@d15.test, a@d16.test, "
	 "a@d17.test, a@d18.test, a@d19.test, a@d20.test, a@d21.test, "
	 "a@d22.test, a@d23.test, a@d24.test, a@d25.test, a@d26.test, "
	 "a@d27.test, a@d28.test, a@d29.test, a@d30.test, a@d31.test, "
	 "a@d32.test, a@d33.test;\r\n",
	 RAW_REFUSED},
	{"lookup failure",
	 {NULL},
	 NULL,
	 0,
	 0,
	 "From: g: a@fail.test;\r\n",
	 "451 4.3.0"},
	/* Accepted as before. */
	{"remote group",
	 {NULL},
	 NULL,
	 0,
	 0,
	 "From: x: postmaster@remote.test;\r\n",
	 NULL},
	{"two remote From: fields",
	 {NULL},
	 NULL,
	 0,
	 0,
	 "From: a@remote.test\r\nFrom: b@remote.test\r\n\r\n",
	 NULL},
	{"not an address, no @",
	 {NULL},
	 NULL,
	 0,
	 0,
	 "From: postmaster example.test\r\n",
	 NULL},
	{"a subdomain is not ours",
	 {NULL},
	 NULL,
	 0,
	 0,
	 "From: x: a@mail.example.test, b@example.test.evil.test;\r\n",
	 NULL},
	{"domain literal",
	 {NULL},
	 NULL,
	 0,
	 0,
	 "From: x: a@[192.0.2.1];\r\n",
	 NULL},
	{"no From:", {NULL}, NULL, 0, 0, "Subject: s\r\n\r\nb\r\n", NULL},
	{"From: in the body",
	 {NULL},
	 NULL,
	 0,
	 0,
	 "Subject: s\r\n\r\nFrom: postmaster@example.test\r\n",
	 NULL},
	{"parsed: policy_check_from decides",
	 {NULL},
	 NULL,
	 0,
	 1,
	 "From: postmaster@example.test\r\n\r\n",
	 NULL},
	{"rule off",
	 {"auth.require_for_role_senders=off", NULL},
	 NULL,
	 0,
	 0,
	 "From: x: postmaster@example.test;\r\n",
	 NULL},
	{"trusted, exempt",
	 {"trusted.exempt_from=auth.require_for_role_senders", NULL},
	 NULL,
	 1,
	 0,
	 "From: x: postmaster@example.test;\r\n",
	 NULL},
	{"local senders rule off too",
	 {"auth.require_for_local_senders=off", NULL},
	 NULL,
	 0,
	 0,
	 "From: x: postmaster@example.test;\r\n",
	 RAW_REFUSED},
	/* With AUTH: one From: field, "From :" counted. */
	{"auth, second field written From :",
	 {NULL},
	 ALICE,
	 0,
	 1,
	 "From: alice@example.test\r\nFrom : bob@example.test\r\n\r\n",
	 "550 5.7.1 Message needs one valid From: header"},
	{"auth, one field",
	 {NULL},
	 ALICE,
	 0,
	 1,
	 "From: alice@example.test\r\nSubject: s\r\n\r\n",
	 NULL},
	{"auth, From : counted, rule off",
	 {"auth.match_from_header=off", NULL},
	 ALICE,
	 0,
	 1,
	 "From: alice@example.test\r\nFrom : bob@example.test\r\n\r\n",
	 NULL},
};

static void test_from_raw_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(raw_cases) / sizeof(raw_cases[0]); i++) {
		const struct raw_case *c = &raw_cases[i];
		struct settings *set = settings_with(c->settings);
		const char *reason = NULL, *got;
		struct policy_facts f = {.settings = set,
					 .client_ip = "192.0.2.1",
					 .auth = c->auth,
					 .trusted = c->trusted,
					 .now = 1700000000};

		got = policy_check_from_raw(&f, c->parsed, c->msg,
					    strlen(c->msg), raw_is_local, NULL,
					    &reason);
		check_verdict(c->name, got, c->want, reason);
		settings_unref(set);
	}
}

/* A From: past the bounds is refused without looking at every "@". */
static void test_from_raw_bounds(void **state)
{
	struct settings *set = settings_new();
	struct policy_facts f = {.settings = set, .client_ip = "192.0.2.1"};
	const char *reason = NULL, *got;
	char *msg = malloc(70000);
	size_t n = 0;

	(void)state;
	assert_non_null(set);
	assert_non_null(msg);
	/* 1,025 "@"s of one remote domain in a group: one lookup. */
	n = (size_t)snprintf(msg, 70000, "From: g: ");
	for (int i = 0; i < 1025; i++)
		n += (size_t)snprintf(msg + n, 70000 - n, "a@r.test,");
	n += (size_t)snprintf(msg + n, 70000 - n, ";\r\n\r\n");
	raw_lookups = 0;
	got = policy_check_from_raw(&f, 0, msg, n, raw_is_local, NULL, &reason);
	check_verdict("too many @", got, RAW_REFUSED, reason);
	assert_int_equal(raw_lookups, 1);
	/* 1,024 are looked at. */
	n = (size_t)snprintf(msg, 70000, "From: g: ");
	for (int i = 0; i < 1024; i++)
		n += (size_t)snprintf(msg + n, 70000 - n, "a@r.test,");
	n += (size_t)snprintf(msg + n, 70000 - n, ";\r\n\r\n");
	got = policy_check_from_raw(&f, 0, msg, n, raw_is_local, NULL, &reason);
	check_verdict("1024 @", got, NULL, reason);
	/* A field over 64 KiB. */
	n = (size_t)snprintf(msg, 70000, "From: g:");
	memset(msg + n, ' ', 66000);
	n += 66000;
	n += (size_t)snprintf(msg + n, 70000 - n, ";\r\n\r\n");
	got = policy_check_from_raw(&f, 0, msg, n, raw_is_local, NULL, &reason);
	check_verdict("long field", got, RAW_REFUSED, reason);
	/* Comments that never close after many "@": linear, one domain
	 * window each. */
	n = (size_t)snprintf(msg, 70000, "From: ");
	for (int i = 0; i < 1000; i++)
		n += (size_t)snprintf(msg + n, 70000 - n, "@(");
	n += (size_t)snprintf(msg + n, 70000 - n, "\r\n\r\n");
	got = policy_check_from_raw(&f, 0, msg, n, raw_is_local, NULL, &reason);
	check_verdict("open comments", got, NULL, reason);
	free(msg);
	settings_unref(set);
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
		cmocka_unit_test(test_from_raw_table),
		cmocka_unit_test(test_from_raw_bounds),
		cmocka_unit_test(test_role_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
