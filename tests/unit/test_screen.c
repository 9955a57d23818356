/* Unit tests of policy/screen: failed-login blocks with their expiry and
 * doubling, repeated passwords, IPv6 /64, delays, connection limits. The
 * clock is the test's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "directory/settings.h"
#include "policy/screen.h"

#define T0 1700000000000LL /* ms */
#define MIN 60000LL

static struct settings *settings_with(const char *const *pairs)
{
	struct settings *s = settings_new();

	assert_non_null(s);
	for (size_t i = 0; pairs[i] != NULL; i += 2) {
		int id = settings_lookup(pairs[i]);
		assert_true(id >= 0);
		assert_int_equal(
			settings_set(s, (enum settings_id)id, pairs[i + 1]), 0);
	}
	return s;
}

static void fail_with(struct screen *s, const struct settings *set,
		      const char *ip, const char *pass, int64_t now,
		      struct screen_verdict *v)
{
	unsigned char fp[SCREEN_FP_SIZE];

	screen_fingerprint(s, "alice@example.test", pass, strlen(pass), fp);
	screen_auth_failed(s, set, ip, 0, "alice@example.test", fp, now, v);
}

/* screen_key: {name, ip, want}. An IPv6 address counts per /64 whatever
 * its written form; an IPv4-mapped one (RFC 4291 2.5.5.2) is the IPv4
 * host it stands for, so a dual-stack listener cannot be used to get a
 * second allowance; what is not an address is kept as written. */
static const struct {
	const char *name, *ip, *want;
} key_cases[] = {
	{"ipv4", "192.0.2.7", "192.0.2.7"},
	{"ipv6 full /64", "2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"},
	{"ipv6 compressed", "2001:db8::1", "2001:db8::/64"},
	{"ipv6 uncompressed", "2001:0db8:0000:0000:0000:0000:0000:0001",
	 "2001:db8::/64"},
	{"ipv6 upper case", "2001:DB8:1:2:AAAA:BBBB:CCCC:DDDD",
	 "2001:db8:1:2::/64"},
	{"ipv6 all hextets", "2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
	{"ipv6 no zero run", "2001:db8:ffff:fffe:1:2:3:4",
	 "2001:db8:ffff:fffe::/64"},
	{"loopback", "::1", "::/64"},
	{"unspecified", "::", "::/64"},
	{"link local", "fe80::1:2:3:4", "fe80::/64"},
	{"mapped", "::ffff:192.0.2.7", "192.0.2.7"},
	{"mapped short", "::ffff:1.2.3.4", "1.2.3.4"},
	{"mapped upper case", "::FFFF:1.2.3.4", "1.2.3.4"},
	{"mapped hex", "::ffff:102:304", "1.2.3.4"},
	{"mapped full", "0:0:0:0:0:ffff:0102:0304", "1.2.3.4"},
	/* Not mapped: the deprecated IPv4-compatible form and the SIIT
	 * prefix are IPv6 addresses of their own (RFC 4291 2.5.5.1). */
	{"ipv4 compatible", "::1.2.3.4", "::/64"},
	{"siit", "::ffff:0:1.2.3.4", "::/64"},
	{"invalid", "not-an-ip", "not-an-ip"},
	{"two zero runs", "2001:db8::1::2", "2001:db8::1::2"},
	{"empty", "", ""},
};

static void test_keys(void **state)
{
	char key[SCREEN_KEY_SIZE];

	(void)state;
	for (size_t i = 0; i < sizeof(key_cases) / sizeof(key_cases[0]); i++) {
		memset(key, 'x', sizeof(key));
		screen_key(key_cases[i].ip, key);
		if (strcmp(key, key_cases[i].want) != 0)
			fail_msg("%s: screen_key(\"%s\") = \"%s\", want \"%s\"",
				 key_cases[i].name, key_cases[i].ip, key,
				 key_cases[i].want);
	}
}

/* The same /64 in any form is one key; a neighbouring /64, or the next
 * IPv4 address, is another. */
static void test_keys_group(void **state)
{
	static const char *const same[][2] = {
		{"2001:db8:1:2::1", "2001:0db8:0001:0002:0000:0000:0000:0001"},
		{"2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff"},
		{"2001:db8::1", "2001:db8:0:0:1::"},
		{"::1", "::2"},
		{"::ffff:1.2.3.4", "1.2.3.4"},
		{"::ffff:1.2.3.4", "::ffff:0102:0304"},
	};
	static const char *const apart[][2] = {
		{"2001:db8:1:2::1", "2001:db8:1:3::1"},
		{"2001:db8::1", "2001:db9::1"},
		{"::1", "::1:0:0:0:1"},
		{"::ffff:1.2.3.4", "::ffff:1.2.3.5"},
		{"::ffff:1.2.3.4", "::1.2.3.4"},
		{"1.2.3.4", "1.2.3.5"},
	};
	char a[SCREEN_KEY_SIZE], b[SCREEN_KEY_SIZE];

	(void)state;
	for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
		screen_key(same[i][0], a);
		screen_key(same[i][1], b);
		if (strcmp(a, b) != 0)
			fail_msg("%s and %s: keys %s and %s differ", same[i][0],
				 same[i][1], a, b);
	}
	for (size_t i = 0; i < sizeof(apart) / sizeof(apart[0]); i++) {
		screen_key(apart[i][0], a);
		screen_key(apart[i][1], b);
		if (strcmp(a, b) == 0)
			fail_msg("%s and %s: the same key %s", apart[i][0],
				 apart[i][1], a);
	}
}

/* A string longer than a key is cut, never written past the key. */
static void test_key_long_string(void **state)
{
	char ip[200], key[SCREEN_KEY_SIZE + 8];

	(void)state;
	memset(ip, 'a', sizeof(ip) - 1);
	ip[sizeof(ip) - 1] = '\0';
	memset(key, '#', sizeof(key));
	screen_key(ip, key);
	assert_int_equal(strlen(key), SCREEN_KEY_SIZE - 1);
	assert_memory_equal(key, ip, SCREEN_KEY_SIZE - 1);
	for (size_t i = SCREEN_KEY_SIZE; i < sizeof(key); i++)
		assert_int_equal(key[i], '#');
}

static void test_block_after_failures_and_expiry(void **state)
{
	const char *p[] = {"auth.fail_delay_ms",
			   "1000",
			   "screening.auth_failures",
			   "3",
			   "screening.block_minutes",
			   "30",
			   NULL};
	struct settings *set = settings_with(p);
	struct screen *s = screen_new();
	struct screen_verdict v;
	int64_t until;

	(void)state;
	fail_with(s, set, "192.0.2.1", "a", T0, &v);
	assert_true(v.counted);
	assert_false(v.blocked);
	assert_int_equal(v.delay_ms, 1000);
	fail_with(s, set, "192.0.2.1", "b", T0 + 1000, &v);
	assert_int_equal(v.delay_ms, 2000);
	assert_null(
		screen_connect(s, set, SCREEN_SMTP, "192.0.2.1", 0, T0 + 1500));
	screen_disconnect(s, SCREEN_SMTP, "192.0.2.1");
	fail_with(s, set, "192.0.2.1", "c", T0 + 2000, &v);
	assert_int_equal(v.delay_ms, 4000);
	assert_true(v.blocked);
	assert_int_equal(v.offenses, 1);
	assert_int_equal(v.until, T0 / 1000 + 2 + 30 * 60);
	assert_true(screen_blocked(s, "192.0.2.1", T0 + 3000, &until));
	assert_non_null(
		screen_connect(s, set, SCREEN_SMTP, "192.0.2.1", 0, T0 + 3000));
	/* Others are not concerned; trusted hosts never refused. */
	assert_null(
		screen_connect(s, set, SCREEN_SMTP, "192.0.2.2", 0, T0 + 3000));
	assert_null(
		screen_connect(s, set, SCREEN_SMTP, "192.0.2.1", 1, T0 + 3000));
	/* The block ends on time. */
	assert_non_null(screen_connect(s, set, SCREEN_SMTP, "192.0.2.1", 0,
				       T0 + 2000 + 30 * MIN - 1000));
	assert_null(screen_connect(s, set, SCREEN_SMTP, "192.0.2.1", 0,
				   T0 + 2000 + 30 * MIN + 1000));
	/* A second offence lasts twice as long. */
	for (int i = 0; i < 3; i++)
		fail_with(s, set, "192.0.2.1",
			  i == 0   ? "x"
			  : i == 1 ? "y"
				   : "z",
			  T0 + 40 * MIN + i, &v);
	assert_true(v.blocked);
	assert_int_equal(v.offenses, 2);
	assert_int_equal(v.until, (T0 + 40 * MIN + 2) / 1000 + 60 * 60);
	screen_free(s);
	settings_unref(set);
}

static void test_block_doubling_capped_at_a_day(void **state)
{
	const char *p[] = {"screening.auth_failures", "1",
			   "screening.block_minutes", "600", NULL};
	struct settings *set = settings_with(p);
	struct screen *s = screen_new();
	struct screen_verdict v;

	(void)state;
	/* Loaded from the directory: three blocks so far. */
	screen_load_block(s, "192.0.2.9", T0 / 1000 - 10, 3);
	fail_with(s, set, "192.0.2.9", "p", T0, &v);
	assert_true(v.blocked);
	assert_int_equal(v.offenses, 4);
	assert_int_equal(v.until, T0 / 1000 + 1440 * 60);
	screen_free(s);
	settings_unref(set);
}

/* A reload of the directory's blocks (screening_reload) while a new block
 * is still being written keeps that block; once saved, the directory is
 * the truth again (petrelctl screening unblock). */
static void test_unsaved_block_survives_reload(void **state)
{
	const char *p[] = {"screening.auth_failures", "1", NULL};
	struct settings *set = settings_with(p);
	struct screen *s = screen_new();
	struct screen_verdict v;
	int64_t until;

	(void)state;
	fail_with(s, set, "192.0.2.7", "p", T0, &v);
	assert_true(v.blocked);
	/* The directory does not have it yet: an old record only. */
	screen_clear_blocks(s);
	screen_load_block(s, "192.0.2.7", T0 / 1000 - 3600, 1);
	assert_true(screen_blocked(s, "192.0.2.7", T0 + 1, &until));
	assert_int_equal(until, v.until);
	/* That reload may have missed a change: the caller reloads again. */
	assert_int_equal(screen_block_saved(s, v.key), 1);
	/* Unblocked in the directory: the next reload lifts it. */
	screen_clear_blocks(s);
	assert_false(screen_blocked(s, "192.0.2.7", T0 + 2, &until));
	/* Saved without a reload in between: nothing to do again. */
	fail_with(s, set, "192.0.2.8", "p", T0 + 3, &v);
	assert_true(v.blocked);
	assert_int_equal(screen_block_saved(s, v.key), 0);
	screen_free(s);
	settings_unref(set);
}

static void test_same_password_counts_once(void **state)
{
	const char *p[] = {"screening.auth_failures", "3", NULL};
	struct settings *set = settings_with(p);
	struct screen *s = screen_new();
	struct screen_verdict v;

	(void)state;
	for (int i = 0; i < 10; i++) {
		fail_with(s, set, "192.0.2.3", "old password", T0 + i * 1000,
			  &v);
		assert_false(v.blocked);
		assert_int_equal(v.ip_failures, 1);
		assert_int_equal(v.counted, i == 0);
	}
	/* Outside the window it counts again. */
	fail_with(s, set, "192.0.2.3", "old password", T0 + 11 * MIN, &v);
	assert_true(v.counted);
	screen_free(s);
	settings_unref(set);
}

static void test_ipv6_counted_per_64(void **state)
{
	const char *p[] = {"screening.auth_failures", "2", NULL};
	struct settings *set = settings_with(p);
	struct screen *s = screen_new();
	struct screen_verdict v;
	int64_t until;

	(void)state;
	fail_with(s, set, "2001:db8:0:1::a", "a", T0, &v);
	fail_with(s, set, "2001:db8:0:1::b", "b", T0 + 1, &v);
	assert_true(v.blocked);
	assert_string_equal(v.key, "2001:db8:0:1::/64");
	assert_true(screen_blocked(s, "2001:db8:0:1:ffff::1", T0 + 2, &until));
	assert_false(screen_blocked(s, "2001:db8:0:2::1", T0 + 2, &until));
	screen_free(s);
	settings_unref(set);
}

static void test_delay_capped_and_reset(void **state)
{
	const char *p[] = {"auth.fail_delay_ms", "1000",
			   "screening.auth_failures", "0", NULL};
	struct settings *set = settings_with(p);
	struct screen *s = screen_new();
	struct screen_verdict v;
	char pass[8];

	(void)state;
	for (int i = 0; i < 8; i++) {
		pass[0] = (char)('a' + i);
		pass[1] = '\0';
		fail_with(s, set, "192.0.2.4", pass, T0 + i, &v);
		assert_false(v.blocked); /* 0: never block */
	}
	assert_int_equal(v.delay_ms, 16000);
	screen_auth_ok(s, "192.0.2.4");
	fail_with(s, set, "192.0.2.4", "z", T0 + 100, &v);
	assert_int_equal(v.delay_ms, 1000);
	screen_free(s);
	settings_unref(set);
}

static void test_notify_once_per_window(void **state)
{
	const char *p[] = {"screening.notify_after", "3",
			   "screening.auth_failures", "0", NULL};
	struct settings *set = settings_with(p);
	struct screen *s = screen_new();
	struct screen_verdict v;
	int notes = 0;
	char ip[32], pass[8];

	(void)state;
	/* From many IPs, against one account. */
	for (int i = 0; i < 6; i++) {
		snprintf(ip, sizeof(ip), "198.51.100.%d", i + 1);
		snprintf(pass, sizeof(pass), "p%d", i);
		fail_with(s, set, ip, pass, T0 + i, &v);
		notes += v.notify;
	}
	assert_int_equal(notes, 1);
	assert_int_equal(v.account_failures, 6);
	screen_free(s);
	settings_unref(set);
}

static void test_connection_limits(void **state)
{
	const char *p[] = {"screening.max_connections_per_ip", "2",
			   "screening.max_connects_per_minute", "3", NULL};
	struct settings *set = settings_with(p);
	struct screen *s = screen_new();

	(void)state;
	assert_null(screen_connect(s, set, SCREEN_SMTP, "192.0.2.5", 0, T0));
	assert_null(screen_connect(s, set, SCREEN_SMTP, "192.0.2.5", 0, T0));
	assert_non_null(
		screen_connect(s, set, SCREEN_SMTP, "192.0.2.5", 0, T0));
	screen_disconnect(s, SCREEN_SMTP, "192.0.2.5");
	assert_null(
		screen_connect(s, set, SCREEN_SMTP, "192.0.2.5", 0, T0 + 1));
	screen_disconnect(s, SCREEN_SMTP, "192.0.2.5");
	screen_disconnect(s, SCREEN_SMTP, "192.0.2.5");
	/* Three connects in the minute: the fourth waits for a token. */
	assert_non_null(
		screen_connect(s, set, SCREEN_SMTP, "192.0.2.5", 0, T0 + 2));
	assert_non_null(screen_connect(s, set, SCREEN_SMTP, "192.0.2.5", 0,
				       T0 + 10000));
	assert_null(screen_connect(s, set, SCREEN_SMTP, "192.0.2.5", 0,
				   T0 + 20001));
	screen_disconnect(s, SCREEN_SMTP, "192.0.2.5");
	/* Trusted: never refused. */
	for (int i = 0; i < 5; i++)
		assert_null(screen_connect(s, set, SCREEN_SMTP, "192.0.2.5", 1,
					   T0 + 20002));
	screen_expire(s, set, T0 + 10 * MIN);
	screen_free(s);
	settings_unref(set);
}

/* One count per IP for all services: each service has its own limit, the
 * screening limit holds for them together, and trusted hosts are held to
 * the service's limit but not to screening's. */
static void test_connections_per_service(void **state)
{
	const char *p[] = {"smtp.max_sessions_per_ip",
			   "2",
			   "pop3.max_sessions_per_ip",
			   "2",
			   "screening.max_connections_per_ip",
			   "2",
			   "screening.max_connects_per_minute",
			   "0",
			   NULL};
	struct settings *set = settings_with(p);
	struct screen *s = screen_new();
	const char *ip = "192.0.2.9";

	(void)state;
	assert_null(screen_connect(s, set, SCREEN_SMTP, ip, 0, T0));
	assert_null(screen_connect(s, set, SCREEN_POP3, ip, 0, T0));
	assert_string_equal(screen_connect(s, set, SCREEN_SMTP, ip, 0, T0),
			    "screening.max_connections_per_ip reached");
	assert_string_equal(screen_connect(s, set, SCREEN_POP3, ip, 0, T0),
			    "screening.max_connections_per_ip reached");
	/* Trusted: the service's own limit only. */
	assert_null(screen_connect(s, set, SCREEN_SMTP, ip, 1, T0));
	assert_string_equal(screen_connect(s, set, SCREEN_SMTP, ip, 1, T0),
			    "smtp.max_sessions_per_ip reached");
	assert_null(screen_connect(s, set, SCREEN_POP3, ip, 1, T0));
	assert_string_equal(screen_connect(s, set, SCREEN_POP3, ip, 1, T0),
			    "pop3.max_sessions_per_ip reached");
	/* A disconnect too many of one service frees nothing of another. */
	for (int i = 0; i < 3; i++)
		screen_disconnect(s, SCREEN_POP3, ip);
	assert_null(screen_connect(s, set, SCREEN_POP3, ip, 1, T0));
	assert_string_equal(screen_connect(s, set, SCREEN_SMTP, ip, 1, T0),
			    "smtp.max_sessions_per_ip reached");
	assert_string_equal(screen_connect(s, set, SCREEN_POP3, ip, 0, T0),
			    "screening.max_connections_per_ip reached");
	screen_disconnect(s, SCREEN_SMTP, ip);
	screen_disconnect(s, SCREEN_SMTP, ip);
	assert_null(screen_connect(s, set, SCREEN_SMTP, ip, 0, T0));
	/* IPv6: one count per /64. */
	assert_null(screen_connect(s, set, SCREEN_POP3, "2001:db8::1", 0, T0));
	assert_null(screen_connect(s, set, SCREEN_POP3, "2001:db8::2", 0, T0));
	assert_string_equal(
		screen_connect(s, set, SCREEN_SMTP, "2001:db8::3", 0, T0),
		"screening.max_connections_per_ip reached");
	screen_free(s);
	settings_unref(set);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_keys_group),
		cmocka_unit_test(test_key_long_string),
		cmocka_unit_test(test_block_after_failures_and_expiry),
		cmocka_unit_test(test_block_doubling_capped_at_a_day),
		cmocka_unit_test(test_unsaved_block_survives_reload),
		cmocka_unit_test(test_same_password_counts_once),
		cmocka_unit_test(test_ipv6_counted_per_64),
		cmocka_unit_test(test_delay_capped_and_reset),
		cmocka_unit_test(test_notify_once_per_window),
		cmocka_unit_test(test_connection_limits),
		cmocka_unit_test(test_connections_per_service),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
