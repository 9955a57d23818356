/* Unit tests of lib/addr: RFC 5321 paths, mailboxes and domains. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "lib/addr.h"

#define L64 "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijkl"
#define LABEL63                                                                \
	"abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijk"
#define LABEL62 "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghij"
#define DOMAIN255 LABEL63 "." LABEL63 "." LABEL63 "." LABEL63
/* Every label valid, 256 octets in all. */
#define DOMAIN256 LABEL63 "." LABEL63 "." LABEL63 "." LABEL62 ".a"
/* Needs quoting (a space): 62 octets inside, 64 quoted; 63 inside, 65. */
#define X59 "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefg"

struct path_case {
	const char *name;
	const char *input;
	size_t len; /* 0: strlen(input) */
	int null_ok;
	int want; /* bytes consumed, or -1 */
	const char *local;
	const char *domain;
};

static const struct path_case path_cases[] = {
	{"simple", "<user@example.com>", 0, 0, 18, "user", "example.com"},
	{"domain lower-cased, local kept", "<User@Example.COM>", 0, 0, 18,
	 "User", "example.com"},
	{"null path allowed", "<>", 0, 1, 2, "", ""},
	{"null path refused", "<>", 0, 0, -1, NULL, NULL},
	{"null path then params", "<> SIZE=10", 0, 1, 2, "", ""},
	{"source route dropped", "<@a.example,@b.example:user@c.example>", 0, 0,
	 38, "user", "c.example"},
	{"source route one hop", "<@a.example:u@c.example>", 0, 0, 24, "u",
	 "c.example"},
	{"source route literal", "<@[192.0.2.1]:u@c.example>", 0, 0, 26, "u",
	 "c.example"},
	{"source route bad domain", "<@a..b:u@c.example>", 0, 0, -1, NULL,
	 NULL},
	{"source route no colon", "<@a.example>", 0, 0, -1, NULL, NULL},
	{"source route comma no at", "<@a.example,b:u@c>", 0, 0, -1, NULL,
	 NULL},
	{"source route then null", "<@a.example:>", 0, 1, -1, NULL, NULL},
	{"quoted kept", "<\"john smith\"@example.com>", 0, 0, 26,
	 "\"john smith\"", "example.com"},
	{"quoted unneeded", "<\"john\"@example.com>", 0, 0, 20, "john",
	 "example.com"},
	{"quoted dot-string unquoted", "<\"a.b\"@x.org>", 0, 0, 13, "a.b",
	 "x.org"},
	{"quoted needless escape", "<\"j\\ohn\"@example.com>", 0, 0, 21, "john",
	 "example.com"},
	{"quoted escaped quote", "<\"a\\\"b\"@x.org>", 0, 0, 14, "\"a\\\"b\"",
	 "x.org"},
	{"quoted escaped backslash", "<\"a\\\\b\"@x.org>", 0, 0, 14,
	 "\"a\\\\b\"", "x.org"},
	{"quoted needless escape kept canonical", "<\"a\\ b\\c\"@x.org>", 0, 0,
	 16, "\"a bc\"", "x.org"},
	{"quoted double dot", "<\"a..b\"@x.org>", 0, 0, 14, "\"a..b\"",
	 "x.org"},
	{"quoted gt inside", "<\"a>b\"@x.org>", 0, 0, 13, "\"a>b\"", "x.org"},
	{"quoted empty", "<\"\"@x.org>", 0, 0, -1, NULL, NULL},
	{"quoted unterminated", "<\"abc@x.org>", 0, 0, -1, NULL, NULL},
	{"quoted DEL", "<\"a\x7f\"@x.org>", 0, 0, -1, NULL, NULL},
	{"quoted tab", "<\"a\tb\"@x.org>", 0, 0, -1, NULL, NULL},
	{"quoted 8-bit", "<\"a\xc3\xa9\"@x.org>", 0, 0, -1, NULL, NULL},
	{"quoted backslash at end", "<\"a\\", 0, 0, -1, NULL, NULL},
	{"all atext", "<a!#$%&'*+-/=?^_`{|}~@x.com>", 0, 0, 28,
	 "a!#$%&'*+-/=?^_`{|}~", "x.com"},
	{"ipv4 literal", "<user@[192.0.2.1]>", 0, 0, 18, "user", "[192.0.2.1]"},
	{"ipv6 literal normalized", "<user@[IPv6:2001:DB8:0::1]>", 0, 0, 27,
	 "user", "[IPv6:2001:db8::1]"},
	{"ipv6 tag any case", "<user@[ipv6:::1]>", 0, 0, 17, "user",
	 "[IPv6:::1]"},
	{"ipv4 literal short", "<user@[1.2.3]>", 0, 0, -1, NULL, NULL},
	{"ipv4 literal big octet", "<user@[1.2.3.256]>", 0, 0, -1, NULL, NULL},
	{"ipv6 literal without tag", "<user@[::1]>", 0, 0, -1, NULL, NULL},
	{"ipv6 literal bad", "<user@[IPv6:1:::2]>", 0, 0, -1, NULL, NULL},
	{"general literal", "<user@[tag:foo]>", 0, 0, -1, NULL, NULL},
	{"literal unterminated", "<user@[1.2.3.4>", 0, 0, -1, NULL, NULL},
	{"literal empty", "<user@[]>", 0, 0, -1, NULL, NULL},
	{"trailing bytes not consumed", "<user@example.com> SIZE=1", 0, 0, 18,
	 "user", "example.com"},
	{"no angle brackets", "user@example.com", 0, 0, -1, NULL, NULL},
	{"no closing bracket", "<user@example.com", 0, 0, -1, NULL, NULL},
	{"no domain", "<user>", 0, 0, -1, NULL, NULL},
	{"empty domain", "<user@>", 0, 0, -1, NULL, NULL},
	{"empty local", "<@example.com>", 0, 0, -1, NULL, NULL},
	{"two ats", "<a@b@c>", 0, 0, -1, NULL, NULL},
	{"space inside", "< user@x.org>", 0, 0, -1, NULL, NULL},
	{"space before bracket", "<user@x.org >", 0, 0, -1, NULL, NULL},
	{"leading dot", "<.user@x.org>", 0, 0, -1, NULL, NULL},
	{"trailing dot", "<user.@x.org>", 0, 0, -1, NULL, NULL},
	{"double dot", "<us..er@x.org>", 0, 0, -1, NULL, NULL},
	{"label leading hyphen", "<u@-x.org>", 0, 0, -1, NULL, NULL},
	{"label trailing hyphen", "<u@x-.org>", 0, 0, -1, NULL, NULL},
	{"label inner hyphen", "<u@x-y.org>", 0, 0, 11, "u", "x-y.org"},
	{"underscore", "<u@x_y.org>", 0, 0, -1, NULL, NULL},
	{"domain trailing dot", "<u@x.org.>", 0, 0, -1, NULL, NULL},
	{"domain leading dot", "<u@.x.org>", 0, 0, -1, NULL, NULL},
	{"domain 8-bit", "<u@exa\xc3\xa9mple.com>", 0, 0, -1, NULL, NULL},
	{"local 8-bit", "<us\xc3\xa9r@x.com>", 0, 0, -1, NULL, NULL},
	{"local control", "<us\x01r@x.com>", 0, 0, -1, NULL, NULL},
	{"local CR", "<us\rr@x.com>", 0, 0, -1, NULL, NULL},
	{"NUL in domain", "<u@x.com\0>", 9, 0, -1, NULL, NULL},
	{"NUL in local", "<u\0@x.com>", 10, 0, -1, NULL, NULL},
	{"cut short", "<user@example.com>", 10, 0, -1, NULL, NULL},
	{"empty input", "", 0, 1, -1, NULL, NULL},
	{"lone bracket", "<", 0, 1, -1, NULL, NULL},
	{"local 64", "<" L64 "@x.org>", 0, 0, 72, L64, "x.org"},
	{"local 65", "<" L64 "a@x.org>", 0, 0, -1, NULL, NULL},
	{"quoted local 64 unquoted", "<\"" L64 "\"@x.org>", 0, 0, 74, L64,
	 "x.org"},
	{"quoted local needs 64", "<\"a b" X59 "\"@x.org>", 0, 0, 72,
	 "\"a b" X59 "\"", "x.org"},
	{"quoted local needs 65", "<\"a b" X59 "c\"@x.org>", 0, 0, -1, NULL,
	 NULL},
	{"quoted local escapes to 65", "<\"a\\\\" X59 "c\"@x.org>", 0, 0, -1,
	 NULL, NULL},
	{"label 63", "<u@" LABEL63 ".org>", 0, 0, 71, "u", LABEL63 ".org"},
	{"label 64", "<u@" LABEL63 "a.org>", 0, 0, -1, NULL, NULL},
	{"domain 255", "<u@" DOMAIN255 ">", 0, 0, 259, "u", DOMAIN255},
	{"domain 256", "<u@" DOMAIN256 ">", 0, 0, -1, NULL, NULL},
	{"numeric domain", "<u@1.2.3.4>", 0, 0, 11, "u", "1.2.3.4"},
};

static void test_parse_path(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(path_cases) / sizeof(path_cases[0]);
	     i++) {
		const struct path_case *c = &path_cases[i];
		size_t len = c->len != 0 ? c->len : strlen(c->input);
		struct addr a;
		const char *err = NULL;
		int got = addr_parse_path(c->input, len, c->null_ok, &a, &err);

		if (got != c->want)
			fail_msg("%s: got %d, want %d (%s)", c->name, got,
				 c->want, err != NULL ? err : "");
		if (got < 0) {
			if (err == NULL || err[0] == '\0')
				fail_msg("%s: no error text", c->name);
			continue;
		}
		if (strcmp(a.local, c->local) != 0 ||
		    strcmp(a.domain, c->domain) != 0)
			fail_msg("%s: got [%s] [%s], want [%s] [%s]", c->name,
				 a.local, a.domain, c->local, c->domain);
	}
}

/* Every address parsed formats to a mailbox that parses back to itself. */
static void test_round_trip(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(path_cases) / sizeof(path_cases[0]);
	     i++) {
		const struct path_case *c = &path_cases[i];
		size_t len = c->len != 0 ? c->len : strlen(c->input);
		char text[ADDR_FORMAT_SIZE];
		struct addr a, b;
		const char *err;

		if (addr_parse_path(c->input, len, 1, &a, &err) < 0 ||
		    addr_is_null(&a))
			continue;
		assert_true(addr_format(&a, text, sizeof(text)) > 0);
		if (addr_parse_mailbox(text, &b, &err) < 0)
			fail_msg("%s: %s does not parse: %s", c->name, text,
				 err);
		assert_string_equal(a.local, b.local);
		assert_string_equal(a.domain, b.domain);
	}
}

struct mailbox_case {
	const char *name;
	const char *input;
	int want;
	const char *local;
	const char *domain;
};

static const struct mailbox_case mailbox_cases[] = {
	{"simple", "user@example.com", 0, "user", "example.com"},
	{"upper domain", "Info@Example.COM", 0, "Info", "example.com"},
	{"quoted", "\"a b\"@x.org", 0, "\"a b\"", "x.org"},
	{"literal", "u@[10.0.0.1]", 0, "u", "[10.0.0.1]"},
	{"no domain", "user", -1, NULL, NULL},
	{"no local", "@x.org", -1, NULL, NULL},
	{"empty domain", "user@", -1, NULL, NULL},
	{"trailing space", "user@x.org ", -1, NULL, NULL},
	{"trailing junk", "user@x.org>", -1, NULL, NULL},
	{"brackets", "<user@x.org>", -1, NULL, NULL},
	{"empty", "", -1, NULL, NULL},
	{"two ats", "a@b@c", -1, NULL, NULL},
	{"newline", "user@x.org\n", -1, NULL, NULL},
};

static void test_parse_mailbox(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(mailbox_cases) / sizeof(mailbox_cases[0]);
	     i++) {
		const struct mailbox_case *c = &mailbox_cases[i];
		struct addr a;
		const char *err = NULL;
		int got = addr_parse_mailbox(c->input, &a, &err);

		if (got != c->want)
			fail_msg("%s: got %d, want %d (%s)", c->name, got,
				 c->want, err != NULL ? err : "");
		if (got < 0) {
			assert_non_null(err);
			assert_string_equal(a.local, "");
			continue;
		}
		assert_string_equal(a.local, c->local);
		assert_string_equal(a.domain, c->domain);
	}
}

struct domain_case {
	const char *name;
	const char *input;
	int want;
};

static const struct domain_case domain_cases[] = {
	{"name", "example.com", 1},	     {"single label", "localhost", 1},
	{"upper", "EXAMPLE.com", 1},	     {"digits", "1.2.3.4", 1},
	{"hyphen inside", "a-b.c", 1},	     {"label 63", LABEL63 ".org", 1},
	{"label 64", LABEL63 "x.org", 0},    {"255 octets", DOMAIN255, 1},
	{"256 octets", DOMAIN256, 0},	     {"empty", "", 0},
	{"leading hyphen", "-a.b", 0},	     {"trailing hyphen", "a-.b", 0},
	{"trailing hyphen last", "a.b-", 0}, {"trailing dot", "a.b.", 0},
	{"leading dot", ".a.b", 0},	     {"double dot", "a..b", 0},
	{"underscore", "a_b.c", 0},	     {"space", "a b.c", 0},
	{"literal", "[1.2.3.4]", 0},	     {"8-bit", "\xc3\xa9.com", 0},
};

static void test_domain_valid(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(domain_cases) / sizeof(domain_cases[0]);
	     i++) {
		const struct domain_case *c = &domain_cases[i];

		if (addr_domain_valid(c->input) != c->want)
			fail_msg("%s: want %d", c->name, c->want);
	}
}

struct parse_domain_case {
	const char *name;
	const char *input;
	int want;
	const char *norm;
};

static const struct parse_domain_case parse_domain_cases[] = {
	{"name lower-cased", "Mail.Example.COM", 0, "mail.example.com"},
	{"ipv4 literal", "[192.0.2.1]", 0, "[192.0.2.1]"},
	{"ipv6 literal", "[IPv6:0:0::1]", 0, "[IPv6:::1]"},
	{"trailing junk", "example.com x", -1, ""},
	{"literal trailing junk", "[1.2.3.4]x", -1, ""},
	{"empty", "", -1, ""},
	{"bad", "exa_mple.com", -1, ""},
};

static void test_parse_domain(void **state)
{
	(void)state;
	for (size_t i = 0;
	     i < sizeof(parse_domain_cases) / sizeof(parse_domain_cases[0]);
	     i++) {
		const struct parse_domain_case *c = &parse_domain_cases[i];
		char out[ADDR_DOMAIN_MAX + 1];
		const char *err = NULL;

		if (addr_parse_domain(c->input, strlen(c->input), out, &err) !=
		    c->want)
			fail_msg("%s: want %d", c->name, c->want);
		if (c->want < 0)
			assert_non_null(err);
		assert_string_equal(out, c->norm);
	}
}

static void test_format(void **state)
{
	struct addr a;
	char out[ADDR_FORMAT_SIZE];
	char small[8];
	const char *err;

	(void)state;
	assert_int_equal(addr_parse_mailbox("user@example.com", &a, &err), 0);
	assert_int_equal(addr_format(&a, out, sizeof(out)), 16);
	assert_string_equal(out, "user@example.com");
	assert_false(addr_is_null(&a));

	assert_int_equal(addr_format(&a, small, sizeof(small)), -1);
	assert_string_equal(small, "");
	assert_int_equal(addr_format(&a, out, 17), 16);
	assert_int_equal(addr_format(&a, out, 16), -1);

	memset(&a, 0, sizeof(a));
	assert_true(addr_is_null(&a));
	assert_int_equal(addr_format(&a, out, sizeof(out)), 0);
	assert_string_equal(out, "");

	memcpy(a.local, "postmaster", 11);
	assert_false(addr_is_null(&a));
	assert_int_equal(addr_format(&a, out, sizeof(out)), 10);
	assert_string_equal(out, "postmaster");

	/* The longest address fits ADDR_FORMAT_SIZE. */
	assert_int_equal(addr_parse_mailbox(L64 "@" DOMAIN255, &a, &err), 0);
	assert_int_equal(addr_format(&a, out, sizeof(out)),
			 ADDR_FORMAT_SIZE - 1);
}

struct equal_case {
	const char *name;
	const char *a;
	const char *b;
	int want;
};

static const struct equal_case equal_cases[] = {
	{"same", "u@x.org", "u@x.org", 1},
	{"domain case", "u@X.ORG", "u@x.org", 1},
	{"local case", "User@x.org", "uSER@x.org", 1},
	{"quoted needless", "\"user\"@x.org", "user@x.org", 1},
	{"quoted case", "\"A B\"@x.org", "\"a b\"@x.org", 1},
	{"other local", "u@x.org", "v@x.org", 0},
	{"other domain", "u@x.org", "u@y.org", 0},
	{"subdomain", "u@x.org", "u@a.x.org", 0},
};

static void test_equal(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(equal_cases) / sizeof(equal_cases[0]);
	     i++) {
		const struct equal_case *c = &equal_cases[i];
		struct addr a, b;
		const char *err;

		assert_int_equal(addr_parse_mailbox(c->a, &a, &err), 0);
		assert_int_equal(addr_parse_mailbox(c->b, &b, &err), 0);
		if (addr_equal(&a, &b) != c->want)
			fail_msg("%s: want %d", c->name, c->want);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_path),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_parse_mailbox),
		cmocka_unit_test(test_domain_valid),
		cmocka_unit_test(test_parse_domain),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_equal),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
