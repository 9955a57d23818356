/* Unit tests of lib/netlist: IP and CIDR parsing and matching. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "lib/netlist.h"

struct entry_case {
	const char *text;
	int want; /* 1 parsed, 0 not an IP (a name), -1 malformed */
	unsigned prefix;
};

static const struct entry_case entry_cases[] = {
	{"192.0.2.1", 1, 32},
	{" 10.0.0.0/8 ", 1, 8},
	{"10.1.2.3/8", 1, 8},
	{"0.0.0.0/0", 1, 0},
	{"2001:db8::/32", 1, 32},
	{"::1", 1, 128},
	{"::ffff:192.0.2.1", 1, 128},
	{"mail.example.test", 0, 0},
	{"localhost", 0, 0},
	{"", 0, 0},
	{"10.0.0.0/33", -1, 0},
	{"2001:db8::/129", -1, 0},
	{"10.0.0/8", -1, 0},
	{"1.2.3", -1, 0},
	{"256.1.1.1", -1, 0},
	{"10.0.0.0/", -1, 0},
	{"10.0.0.0/8x", -1, 0},
	{"10.0.0.0/0008", -1, 0},
	{"::1/", -1, 0},
	{"fe80::zz", -1, 0},
	{"host/8", -1, 0},
	{"1111:2222:3333:4444:5555:6666:7777:8888:9999", -1, 0},
};

static void test_parse_entry(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(entry_cases) / sizeof(entry_cases[0]);
	     i++) {
		const struct entry_case *c = &entry_cases[i];
		struct netlist_entry e;
		int r = netlist_parse_entry(c->text, strlen(c->text), &e);

		if (r != c->want)
			fail_msg("%s: got %d, want %d", c->text, r, c->want);
		if (r == 1 && e.prefix != c->prefix)
			fail_msg("%s: prefix %u", c->text, e.prefix);
	}
}

struct match_case {
	const char *list, *ip;
	int want;
};

static const struct match_case match_cases[] = {
	{"10.0.0.0/8", "10.255.1.2", 1},
	{"10.0.0.0/8", "11.0.0.1", 0},
	{"10.1.2.3/8", "10.9.9.9", 1}, /* host bits cleared */
	{"192.168.1.0/25", "192.168.1.127", 1},
	{"192.168.1.0/25", "192.168.1.128", 0},
	{"192.0.2.1", "192.0.2.1", 1},
	{"192.0.2.1", "192.0.2.2", 0},
	{"0.0.0.0/0", "203.0.113.9", 1},
	{"0.0.0.0/0", "::1", 0},
	{"2001:db8::/32", "2001:db8:ffff::1", 1},
	{"2001:db8::/32", "2001:db9::1", 0},
	{"2001:db8:0:1::/63", "2001:db8:0:0::5", 1},
	{"2001:db8:0:1::/64", "2001:db8:0:0::5", 0},
	/* IPv4-mapped clients of an IPv6 listener match as IPv4. */
	{"127.0.0.0/8", "::ffff:127.0.0.1", 1},
	{"::1", "::1", 1},
	{"192.0.2.1, 198.51.100.0/24", "198.51.100.77", 1},
	{"mail.example.test, 192.0.2.1", "192.0.2.1", 1},
	{"", "192.0.2.1", 0},
	{"10.0.0.0/8", "not an ip", 0},
};

static void count_name(const char *name, size_t len, void *arg)
{
	size_t *n = arg;

	assert_true(len > 0 && name[0] != ' ' && name[len - 1] != ' ');
	(*n)++;
}

static void test_match(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(match_cases) / sizeof(match_cases[0]);
	     i++) {
		const struct match_case *c = &match_cases[i];
		struct netlist l = {0};
		const char *bad, *err;
		size_t badlen, names = 0;

		assert_int_equal(netlist_parse(&l, c->list, count_name, &names,
					       &bad, &badlen, &err),
				 0);
		if (netlist_match(&l, c->ip) != c->want)
			fail_msg("%s in %s: want %d", c->ip, c->list, c->want);
		netlist_clear(&l);
	}
}

static void test_parse_errors(void **state)
{
	struct netlist l = {0};
	const char *bad = NULL, *err = NULL;
	size_t badlen = 0, names = 0;

	(void)state;
	assert_int_equal(netlist_parse(&l, "10.0.0.0/8, mail.example.test",
				       NULL, NULL, &bad, &badlen, &err),
			 -1);
	assert_int_equal(badlen, strlen(" mail.example.test"));
	assert_non_null(err);
	netlist_clear(&l);
	assert_int_equal(netlist_parse(&l, "10.0.0.0/8,10.0.0.0/99", count_name,
				       &names, &bad, &badlen, &err),
			 -1);
	assert_memory_equal(bad, "10.0.0.0/99", badlen);
	netlist_clear(&l);
	/* Blank elements are fine. */
	assert_int_equal(netlist_parse(&l, " , 10.0.0.1 ,", NULL, NULL, &bad,
				       &badlen, &err),
			 0);
	assert_int_equal(l.n, 1);
	netlist_clear(&l);
	/* Host names are handed over trimmed; the IPs are kept. */
	names = 0;
	assert_int_equal(netlist_parse(&l, " a.example.test ,192.0.2.1, b.test",
				       count_name, &names, &bad, &badlen, &err),
			 0);
	assert_int_equal(names, 2);
	assert_int_equal(l.n, 1);
	netlist_clear(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_entry),
		cmocka_unit_test(test_match),
		cmocka_unit_test(test_parse_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
