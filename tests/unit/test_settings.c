/* Unit tests of directory/settings: the table, validation and
 * normalization of each type, and reference-counted snapshots. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "directory/settings.h"

struct normalize_case {
	const char *name;
	const char *setting;
	const char *input;
	const char *want; /* NULL: refused */
};

static const struct normalize_case normalize_cases[] = {
	/* bool: every accepted form, in any case */
	{"bool on", "hijack.enabled", "on", "on"},
	{"bool ON", "hijack.enabled", "ON", "on"},
	{"bool yes", "hijack.enabled", "yes", "on"},
	{"bool True", "hijack.enabled", "True", "on"},
	{"bool 1", "hijack.enabled", "1", "on"},
	{"bool off", "hijack.enabled", "off", "off"},
	{"bool No", "hijack.enabled", "No", "off"},
	{"bool false", "hijack.enabled", "false", "off"},
	{"bool 0", "hijack.enabled", "0", "off"},
	{"bool empty", "hijack.enabled", "", NULL},
	{"bool 2", "hijack.enabled", "2", NULL},
	{"bool onn", "hijack.enabled", "onn", NULL},
	{"bool enabled", "hijack.enabled", "enabled", NULL},
	/* int: the edges of hijack.minutes [1, 10080] */
	{"int min", "hijack.minutes", "1", "1"},
	{"int max", "hijack.minutes", "10080", "10080"},
	{"int below min", "hijack.minutes", "0", NULL},
	{"int above max", "hijack.minutes", "10081", NULL},
	{"int negative", "hijack.minutes", "-5", NULL},
	{"int plus sign", "hijack.minutes", "+30", "30"},
	{"int leading zeros", "hijack.minutes", "007", "7"},
	{"int empty", "hijack.minutes", "", NULL},
	{"int trailing junk", "hijack.minutes", "30m", NULL},
	{"int trailing space", "hijack.minutes", "30 ", NULL},
	{"int float", "hijack.minutes", "1.5", NULL},
	{"int hex", "hijack.minutes", "0x10", NULL},
	{"int overflow", "hijack.minutes", "99999999999999999999", NULL},
	/* int with 0 as the minimum: auth.fail_delay_ms [0, 30000] */
	{"int zero allowed", "auth.fail_delay_ms", "0", "0"},
	{"int max 30000", "auth.fail_delay_ms", "30000", "30000"},
	{"int 30001", "auth.fail_delay_ms", "30001", NULL},
	/* int: smtp.max_line [512, 65536] */
	{"int 511", "smtp.max_line", "511", NULL},
	{"int 512", "smtp.max_line", "512", "512"},
	{"int 65536", "smtp.max_line", "65536", "65536"},
	{"int 65537", "smtp.max_line", "65537", NULL},
	/* log.max_lines_per_session [0, 100000000] */
	{"log lines 0", "log.max_lines_per_session", "0", "0"},
	{"log lines max", "log.max_lines_per_session", "100000000",
	 "100000000"},
	{"log lines above", "log.max_lines_per_session", "100000001", NULL},
	{"log lines negative", "log.max_lines_per_session", "-1", NULL},
	/* queue.min_free_mb [0, 10^12]: past any disk, so a test can
	 * make any data_dir look full */
	{"min free 0", "queue.min_free_mb", "0", "0"},
	{"min free max", "queue.min_free_mb", "1000000000000", "1000000000000"},
	{"min free above", "queue.min_free_mb", "1000000000001", NULL},
	/* enum */
	{"enum freeze", "hijack.action", "freeze", "freeze"},
	{"enum throttle", "hijack.action", "throttle", "throttle"},
	{"enum upper case", "hijack.action", "FREEZE", "freeze"},
	{"enum other", "hijack.action", "reject", NULL},
	{"enum prefix", "hijack.action", "free", NULL},
	{"enum longer", "hijack.action", "freezes", NULL},
	{"enum empty", "hijack.action", "", NULL},
	{"enum both", "hijack.action", "freeze|throttle", NULL},
	{"enum dnsbl score", "dnsbl.action", "score", "score"},
	/* list: normalized to "a, b" */
	{"list one", "trusted.hosts", "10.0.0.1", "10.0.0.1"},
	{"list comma", "trusted.hosts", "a,b", "a, b"},
	{"list spaces", "trusted.hosts", "  a ,  b  ", "a, b"},
	{"list empty items", "trusted.hosts", ",a,,b,", "a, b"},
	{"list empty", "trusted.hosts", "", ""},
	{"list only commas", "trusted.hosts", " , ,", ""},
	{"list already normal", "trusted.hosts", "a, b, c", "a, b, c"},
	{"list inner space kept", "dnsbl.zones", "zen.spamhaus.org:5:listed",
	 "zen.spamhaus.org:5:listed"},
	/* control characters are refused in every type */
	{"bool tab", "hijack.enabled", "on\t", NULL},
	{"int newline", "hijack.minutes", "30\n", NULL},
	{"enum CR", "hijack.action", "freeze\r", NULL},
	{"list newline", "trusted.hosts", "a\nb", NULL},
	{"list ESC", "trusted.hosts", "a\x1b[2J", NULL},
	{"list DEL", "trusted.hosts", "a\x7f", NULL},
	/* hijack.notify: addresses; hijack.exempt: address patterns */
	{"notify addresses", "hijack.notify", "a@example.test,b@x.test",
	 "a@example.test, b@x.test"},
	{"notify not an address", "hijack.notify", "a@example.test, bob", NULL},
	{"notify bad domain", "hijack.notify", "a@exa mple.test", NULL},
	{"exempt patterns", "hijack.exempt", "*@lists.example.test,news@x.test",
	 "*@lists.example.test, news@x.test"},
	{"exempt no at", "hijack.exempt", "lists.example.test", NULL},
	{"exempt two at", "hijack.exempt", "a@b@c", NULL},
};

static void test_normalize(void **state)
{
	char norm[256];

	(void)state;
	for (size_t i = 0;
	     i < sizeof(normalize_cases) / sizeof(normalize_cases[0]); i++) {
		const struct normalize_case *c = &normalize_cases[i];
		const char *error = NULL;
		int id = settings_lookup(c->setting);
		int r;

		if (id < 0)
			fail_msg("%s: no setting %s", c->name, c->setting);
		r = settings_normalize((enum settings_id)id, c->input, norm,
				       sizeof(norm), &error);
		if (c->want == NULL) {
			if (r != -1)
				fail_msg("%s: accepted [%s] as [%s]", c->name,
					 c->input, norm);
			if (error == NULL || error[0] == '\0')
				fail_msg("%s: refused without a reason",
					 c->name);
		} else {
			if (r != 0)
				fail_msg("%s: refused [%s]: %s", c->name,
					 c->input, error);
			if (strcmp(norm, c->want) != 0)
				fail_msg("%s: got [%s], want [%s]", c->name,
					 norm, c->want);
		}
	}
}

/* The lists with a format: choices, IPs and CIDRs, host names. */
static void test_list_checks(void **state)
{
	static const struct {
		const char *name, *value;
		int ok;
	} cases[] = {
		{"trusted.exempt_from", "auth.match_from_header", 1},
		{"trusted.exempt_from",
		 "AUTH.MATCH_RETURN_PATH, auth.require_for_role_senders", 1},
		{"trusted.exempt_from", "auth.match_from_header, nope", 0},
		{"trusted.local_networks", "10.0.0.0/8, 2001:db8::/32", 1},
		{"trusted.local_networks", "10.0.0.0/33", 0},
		{"trusted.local_networks", "mail.example.test", 0},
		{"trusted.hosts", "192.0.2.1, mail.example.test", 1},
		{"trusted.hosts", "bad_host!", 0},
		{"trusted.hosts", "", 1},
	};
	char norm[512];
	const char *error;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int id = settings_lookup(cases[i].name);
		int r = settings_normalize((enum settings_id)id, cases[i].value,
					   norm, sizeof(norm), &error);

		assert_true(id >= 0);
		if ((r == 0) != cases[i].ok)
			fail_msg("%s = %s: %d", cases[i].name, cases[i].value,
				 r);
	}
	/* Choices come out lower-case. */
	assert_int_equal(settings_normalize((enum settings_id)settings_lookup(
						    "trusted.exempt_from"),
					    "AUTH.MATCH_FROM_HEADER", norm,
					    sizeof(norm), &error),
			 0);
	assert_string_equal(norm, "auth.match_from_header");
}

static void test_list_length(void **state)
{
	/* A list of address patterns, normalized already ("a@b, a@b"). */
	int id = settings_lookup("hijack.exempt");
	size_t max, size;
	char *value, *norm;
	const char *error;

	(void)state;
	assert_true(id >= 0);
	max = (size_t)settings_def((enum settings_id)id)->max;
	size = 3 * max;
	value = malloc(max + 2);
	norm = malloc(size);
	assert_non_null(value);
	assert_non_null(norm);
	{
		/* k items "a@b" joined by ", " are 5k - 2 long; the first
		 * one's local part grows by what is left. */
		size_t k = (max + 2) / 5, pad = max + 2 - 5 * k, o = 0;

		for (size_t i = 0; i < k; i++) {
			if (i > 0) {
				memcpy(value + o, ", ", 2);
				o += 2;
			}
			memset(value + o, 'a', i == 0 ? 1 + pad : 1);
			o += i == 0 ? 1 + pad : 1;
			memcpy(value + o, "@b", 2);
			o += 2;
		}
		assert_int_equal(o, max);
	}
	value[max] = '\0';
	assert_int_equal(settings_normalize((enum settings_id)id, value, norm,
					    size, &error),
			 0);
	assert_int_equal(strlen(norm), max);
	value[max] = 'a';
	value[max + 1] = '\0';
	assert_int_equal(settings_normalize((enum settings_id)id, value, norm,
					    size, &error),
			 -1);
	/* The output must fit too: a short buffer is an error, not a cut. */
	assert_int_equal(settings_normalize((enum settings_id)id, "a@c, d@f",
					    norm, 4, &error),
			 -1);
	free(value);
	free(norm);
}

static void test_lookup(void **state)
{
	(void)state;
	assert_int_equal(settings_lookup("hijack.enabled"),
			 SETTING_HIJACK_ENABLED);
	assert_int_equal(settings_lookup("auth.match_from_header"),
			 SETTING_AUTH_MATCH_FROM_HEADER);
	assert_int_equal(settings_lookup("no.such"), -1);
	assert_int_equal(settings_lookup(""), -1);
	assert_int_equal(settings_lookup("HIJACK.ENABLED"), -1);
	assert_int_equal(settings_lookup("hijack.enabled "), -1);
	assert_null(settings_def(SETTINGS_COUNT));
	assert_null(settings_def((enum settings_id) - 1));
}

/* Every row of the table is sound: a section.key name, its default valid
 * for its own type, help text, and no name twice. */
static void test_table(void **state)
{
	char norm[512];

	(void)state;
	for (int i = 0; i < SETTINGS_COUNT; i++) {
		const struct settings_def *d =
			settings_def((enum settings_id)i);
		const char *error = NULL;

		assert_non_null(d);
		assert_non_null(strchr(d->name, '.'));
		assert_int_equal(settings_lookup(d->name), i);
		assert_non_null(d->help);
		assert_true(d->help[0] != '\0');
		if (settings_normalize((enum settings_id)i, d->defval, norm,
				       sizeof(norm), &error) != 0)
			fail_msg("%s: default [%s] refused: %s", d->name,
				 d->defval, error);
		if (strcmp(norm, d->defval) != 0)
			fail_msg("%s: default [%s] is not normalized ([%s])",
				 d->name, d->defval, norm);
		if (d->type == SETTINGS_INT)
			assert_true(d->min <= d->max);
		if (d->type == SETTINGS_ENUM)
			assert_non_null(d->choices);
	}
}

struct default_case {
	enum settings_id id;
	int64_t want;
};

static void test_defaults(void **state)
{
	static const struct default_case cases[] = {
		{SETTING_AUTH_ALLOW_PLAINTEXT, 0},
		{SETTING_AUTH_REQUIRE_FOR_LOCAL_SENDERS, 1},
		{SETTING_AUTH_MATCH_RETURN_PATH, 1},
		{SETTING_AUTH_MATCH_FROM_HEADER, 1},
		{SETTING_AUTH_EXCEPT_TO_LOCAL, 0},
		{SETTING_HIJACK_ENABLED, 1},
		{SETTING_HIJACK_MAX_MESSAGES, 500},
		{SETTING_HIJACK_MINUTES, 30},
		{SETTING_AUTH_FAIL_DELAY_MS, 1000},
		{SETTING_SMTP_MAX_LINE, 1000},
		{SETTING_SMTP_MAX_RECIPIENTS, 100},
	};
	struct settings *s = settings_new();

	(void)state;
	assert_non_null(s);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(settings_int(s, cases[i].id), cases[i].want);
	assert_true(settings_bool(s, SETTING_HIJACK_ENABLED));
	assert_false(settings_bool(s, SETTING_AUTH_ALLOW_PLAINTEXT));
	assert_string_equal(settings_str(s, SETTING_HIJACK_ACTION), "freeze");
	assert_string_equal(settings_str(s, SETTING_TRUSTED_HOSTS), "");
	assert_string_equal(settings_str(s, SETTING_HIJACK_MINUTES), "30");
	/* Out of range ids read as nothing, never out of bounds. */
	assert_int_equal(settings_int(s, SETTINGS_COUNT), 0);
	assert_false(settings_bool(s, SETTINGS_COUNT));
	assert_string_equal(settings_str(s, SETTINGS_COUNT), "");
	settings_unref(s);
}

static void test_snapshot_set(void **state)
{
	struct settings *s = settings_new();

	(void)state;
	assert_non_null(s);
	assert_int_equal(settings_set(s, SETTING_HIJACK_MINUTES, "60"), 0);
	assert_int_equal(settings_int(s, SETTING_HIJACK_MINUTES), 60);
	assert_string_equal(settings_str(s, SETTING_HIJACK_MINUTES), "60");
	assert_int_equal(settings_set(s, SETTING_HIJACK_ENABLED, "no"), 0);
	assert_false(settings_bool(s, SETTING_HIJACK_ENABLED));
	assert_string_equal(settings_str(s, SETTING_HIJACK_ENABLED), "off");
	assert_int_equal(settings_set(s, SETTING_TRUSTED_HOSTS, "a,b"), 0);
	assert_string_equal(settings_str(s, SETTING_TRUSTED_HOSTS), "a, b");
	/* A refused value leaves the old one. */
	assert_int_equal(settings_set(s, SETTING_HIJACK_MINUTES, "0"), -1);
	assert_int_equal(settings_int(s, SETTING_HIJACK_MINUTES), 60);
	assert_int_equal(settings_set(s, SETTING_HIJACK_ACTION, "x"), -1);
	assert_string_equal(settings_str(s, SETTING_HIJACK_ACTION), "freeze");
	assert_int_equal(settings_set(s, SETTINGS_COUNT, "1"), -1);
	settings_unref(s);
}

static void test_refcount(void **state)
{
	struct settings *s = settings_new();

	(void)state;
	assert_non_null(s);
	settings_ref(s);
	settings_unref(s);
	/* Still alive after one of two references is dropped. */
	assert_int_equal(settings_set(s, SETTING_HIJACK_MINUTES, "45"), 0);
	assert_int_equal(settings_int(s, SETTING_HIJACK_MINUTES), 45);
	settings_unref(s);
	settings_unref(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_normalize),
		cmocka_unit_test(test_list_length),
		cmocka_unit_test(test_list_checks),
		cmocka_unit_test(test_lookup),
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_snapshot_set),
		cmocka_unit_test(test_refcount),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
