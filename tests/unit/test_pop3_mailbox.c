/* Unit tests of pop3/pop3_mailbox: sizes and unique ids from Maildir
 * names, delivery order, the seen flag, and the wire form of messages
 * (CRLF, byte-stuffing, TOP). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "pop3/pop3_mailbox.h"

static const struct {
	const char *name;
	int ret;
	uint64_t size;
} wsize_cases[] = {
	{"1700000000.M1P2Q3.host,S=333,W=343", 1, 343},
	{"1700000000.M1P2Q3.host,S=333,W=343:2,S", 1, 343},
	{"1700000000.M1P2Q3.host,W=10,S=9:2,", 1, 10},
	{"1700000000.M1P2Q3.host,S=333", 0, 0},
	{"1700000000.M1P2Q3.host", 0, 0},
	{"1700000000.M1P2Q3.host,W=", 0, 0},
	{"1700000000.M1P2Q3.host,W=12x", 0, 0},
	{"1700000000.M1P2Q3.host:2,W=12", 0, 0}, /* after the info: no */
	{"1700000000.M1P2Q3.host,XW=12", 0, 0},
	{"1700000000.M1P2Q3.host,W=0", 1, 0},
	{",W=5", 1, 5},
	{"", 0, 0},
};

static void test_wsize(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(wsize_cases) / sizeof(wsize_cases[0]);
	     i++) {
		uint64_t size = 999;
		int ret = pop3_mailbox_name_wsize(wsize_cases[i].name, &size);

		if (ret != wsize_cases[i].ret ||
		    (ret == 1 && size != wsize_cases[i].size))
			fail_msg("%s: ret %d size %llu", wsize_cases[i].name,
				 ret, (unsigned long long)size);
	}
}

static void test_uidl(void **state)
{
	char out[POP3_UIDL_MAX + 1], long_name[100];

	(void)state;
	pop3_mailbox_uidl("1700000000.M1P2Q3.host,S=3,W=4:2,S", out);
	assert_string_equal(out, "1700000000.M1P2Q3.host,S=3,W=4");
	/* Flags do not change it. */
	pop3_mailbox_uidl("1700000000.M1P2Q3.host,S=3,W=4", out);
	assert_string_equal(out, "1700000000.M1P2Q3.host,S=3,W=4");
	/* Too long for RFC 1939 (70): a stable hash. */
	memset(long_name, 'x', 80);
	memcpy(long_name + 80, ":2,S", 5);
	pop3_mailbox_uidl(long_name, out);
	assert_string_equal(out, "H7945aa8e149e9e0341cdf4065f93da46");
	/* Exactly 70 is kept. */
	memset(long_name, 'y', 70);
	long_name[70] = '\0';
	pop3_mailbox_uidl(long_name, out);
	assert_string_equal(out, long_name);
	/* A space is outside 0x21..0x7E. */
	pop3_mailbox_uidl("a b:2,", out);
	assert_string_equal(out, "Hacc9227cc02e5f5c13e74125bce89499");
	pop3_mailbox_uidl("caf\xc3\xa9", out);
	assert_int_equal(out[0], 'H');
	assert_int_equal(strlen(out), 33);
	assert_int_equal(pop3_mailbox_base_len("abc:2,S"), 3);
	assert_int_equal(pop3_mailbox_base_len("abc"), 3);
}

static void test_sort(void **state)
{
	char *names[] = {"1700000010.M2.h", "999999999.M9.h", "1700000010.M1.h",
			 "1700000002.M5.h:2,S"};
	const char *want[] = {"999999999.M9.h", "1700000002.M5.h:2,S",
			      "1700000010.M1.h", "1700000010.M2.h"};
	struct pop3_msg m[4];

	(void)state;
	memset(m, 0, sizeof(m));
	for (int i = 0; i < 4; i++)
		m[i].name = names[i];
	pop3_mailbox_sort(m, 4);
	for (int i = 0; i < 4; i++)
		assert_string_equal(m[i].name, want[i]);
	pop3_mailbox_sort(m, 0);
}

static const struct {
	const char *name, *want;
	int ret;
} seen_cases[] = {
	{"a.b.c", "a.b.c:2,S", 1},	  {"a.b.c:2,", "a.b.c:2,S", 1},
	{"a.b.c:2,S", "a.b.c:2,S", 0},	  {"a.b.c:2,FR", "a.b.c:2,FRS", 1},
	{"a.b.c:2,DT", "a.b.c:2,DST", 1}, {"a.b.c:2,RT", "a.b.c:2,RST", 1},
	{"a.b.c:2,a", "a.b.c:2,Sa", 1},	  {"a.b.c:1,xyz", "a.b.c:2,S", 1},
};

static void test_seen_name(void **state)
{
	char out[64];

	(void)state;
	for (size_t i = 0; i < sizeof(seen_cases) / sizeof(seen_cases[0]);
	     i++) {
		int ret = pop3_mailbox_seen_name(seen_cases[i].name, out,
						 sizeof(out));
		if (ret != seen_cases[i].ret ||
		    strcmp(out, seen_cases[i].want) != 0)
			fail_msg("%s: %d %s", seen_cases[i].name, ret, out);
	}
	assert_int_equal(pop3_mailbox_seen_name("abcdef", out, 8), -1);
	/* The edge: ":2,S" and the NUL just fit, or just do not (found by
	 * fuzzing). */
	assert_int_equal(pop3_mailbox_seen_name("abc", out, 8), 1);
	assert_string_equal(out, "abc:2,S");
	assert_int_equal(pop3_mailbox_seen_name("abcd", out, 8), -1);
	assert_int_equal(pop3_mailbox_seen_name("abc:2,T", out, 12), 1);
	assert_string_equal(out, "abc:2,ST");
}

/* Converts in whole, then byte by byte, and checks both give want. */
static void check_conv(const char *name, const char *in, int stuff, int64_t top,
		       const char *want)
{
	size_t len = strlen(in), n;
	char *out = malloc(2 * len + 8), one[2 + 8];
	char got[4096];
	struct pop3_conv c;

	assert_non_null(out);
	pop3_conv_init(&c, stuff, top);
	n = pop3_conv_feed(&c, in, len, out);
	n += pop3_conv_finish(&c, out + n);
	if (n != strlen(want) || memcmp(out, want, n) != 0)
		fail_msg("%s: got \"%.*s\"", name, (int)n, out);
	free(out);
	pop3_conv_init(&c, stuff, top);
	n = 0;
	for (size_t i = 0; i < len; i++) {
		size_t k = pop3_conv_feed(&c, in + i, 1, one);
		memcpy(got + n, one, k);
		n += k;
	}
	n += pop3_conv_finish(&c, got + n);
	if (n != strlen(want) || memcmp(got, want, n) != 0)
		fail_msg("%s (bytewise): got \"%.*s\"", name, (int)n, got);
}

static const struct {
	const char *name, *in;
	int stuff;
	int64_t top;
	const char *want;
} conv_cases[] = {
	{"lf", "A: b\n\nbody\n", 1, -1, "A: b\r\n\r\nbody\r\n.\r\n"},
	{"crlf kept", "A: b\r\n\r\nbody\r\n", 1, -1,
	 "A: b\r\n\r\nbody\r\n.\r\n"},
	{"no final lf", "A: b\n\nbody", 1, -1, "A: b\r\n\r\nbody\r\n.\r\n"},
	{"final cr", "A: b\n\nbody\r", 1, -1, "A: b\r\n\r\nbody\r\n.\r\n"},
	{"empty", "", 1, -1, ".\r\n"},
	{"stuffing", "A: b\n\n.\n..x\n.\r\nx.y\n", 1, -1,
	 "A: b\r\n\r\n..\r\n...x\r\n..\r\nx.y\r\n.\r\n"},
	{"dot first line", ".x\n", 1, -1, "..x\r\n.\r\n"},
	{"no stuffing when counting", "A\n\n.x\n", 0, -1, "A\r\n\r\n.x\r\n"},
	{"top 0", "A: b\nC: d\n\nl1\nl2\n", 1, 0, "A: b\r\nC: d\r\n\r\n.\r\n"},
	{"top 1", "A: b\nC: d\n\nl1\nl2\n", 1, 1,
	 "A: b\r\nC: d\r\n\r\nl1\r\n.\r\n"},
	{"top more than body", "A: b\n\nl1\n", 1, 5, "A: b\r\n\r\nl1\r\n.\r\n"},
	{"top crlf blank line", "A: b\r\n\r\nl1\r\nl2\r\n", 1, 1,
	 "A: b\r\n\r\nl1\r\n.\r\n"},
	{"top no body", "A: b\nC: d\n", 1, 0, "A: b\r\nC: d\r\n.\r\n"},
	{"top stuffed body", "A: b\n\n.l1\nl2\n", 1, 1,
	 "A: b\r\n\r\n..l1\r\n.\r\n"},
	{"top empty header", "\nbody\n", 1, 0, "\r\n.\r\n"},
	{"lone cr kept", "a\rb\n", 1, -1, "a\rb\r\n.\r\n"},
	{"blank lines", "\n\n\n", 1, -1, "\r\n\r\n\r\n.\r\n"},
};

static void test_conv(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(conv_cases) / sizeof(conv_cases[0]); i++)
		check_conv(conv_cases[i].name, conv_cases[i].in,
			   conv_cases[i].stuff, conv_cases[i].top,
			   conv_cases[i].want);
}

/* The output never holds a bare LF or CR+CR+LF, and the size counted
 * without stuffing is what W= would say for an LF message. */
static void test_conv_random(void **state)
{
	static const char alphabet[] = "a.\n\r";
	char in[512], out[1100], tail[8];

	(void)state;
	for (int round = 0; round < 2000; round++) {
		size_t len = randombytes_uniform(sizeof(in));
		struct pop3_conv c;
		size_t n;

		for (size_t i = 0; i < len; i++)
			in[i] = alphabet[randombytes_uniform(4)];
		pop3_conv_init(&c, 1, -1);
		n = pop3_conv_feed(&c, in, len, out);
		assert_true(n <= 2 * len);
		n += pop3_conv_finish(&c, out + n);
		assert_true(n >= 3);
		assert_memory_equal(out + n - 3, ".\r\n", 3);
		for (size_t i = 0; i < n; i++)
			if (out[i] == '\n')
				assert_true(i > 0 && out[i - 1] == '\r');
		assert_true(n < 5 || out[n - 4] == '\n' || n == 3);
		/* Counting: LF-only input gets len + lines (+2 if the last
		 * line is open), which is local.c's W=. */
		{
			size_t lines = 0, lf_len = 0;
			char lf_only[512];

			for (size_t i = 0; i < len; i++) {
				if (in[i] == '\r')
					continue;
				lf_only[lf_len++] = in[i];
				lines += in[i] == '\n';
			}
			pop3_conv_init(&c, 0, -1);
			n = pop3_conv_feed(&c, lf_only, lf_len, out);
			n += pop3_conv_finish(&c, tail);
			assert_int_equal(
				n, lf_len + lines +
					   (lf_len > 0 && lf_only[lf_len - 1] !=
								    '\n'
						    ? 2
						    : 0));
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wsize),
		cmocka_unit_test(test_uidl),
		cmocka_unit_test(test_sort),
		cmocka_unit_test(test_seen_name),
		cmocka_unit_test(test_conv),
		cmocka_unit_test(test_conv_random),
	};
	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
