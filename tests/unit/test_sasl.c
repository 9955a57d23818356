/* Unit tests of lib/sasl: base64 decoding and the PLAIN message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "lib/sasl.h"

struct b64_case {
	const char *name;
	const char *in;
	size_t size; /* of the output buffer; 0: 64 */
	int nul_ok;
	long want;	 /* -1: refused */
	const char *out; /* want bytes */
};

static const struct b64_case b64_cases[] = {
	{"hello", "aGVsbG8=", 0, 0, 5, "hello"},
	{"two pad", "YQ==", 0, 0, 1, "a"},
	{"one pad", "YWI=", 0, 0, 2, "ab"},
	{"no pad", "YWJj", 0, 0, 3, "abc"},
	{"address", "YWxpY2VAZXhhbXBsZS50ZXN0", 0, 0, 18, "alice@example.test"},
	{"plus and slash", "+/+/", 0, 1, 3, "\xfb\xff\xbf"},
	{"empty", "", 0, 0, 0, ""},
	{"PLAIN with NULs allowed", "AGFsaWNlAHNlY3JldA==", 0, 1, 13,
	 "\0alice\0secret"},
	{"PLAIN with NULs refused", "AGFsaWNlAHNlY3JldA==", 0, 0, -1, NULL},
	{"lone NUL allowed", "AA==", 0, 1, 1, "\0"},
	{"lone NUL refused", "AA==", 0, 0, -1, NULL},
	{"NUL at the end refused", "YWJjAA==", 0, 0, -1, NULL},
	{"8-bit", "w6k=", 0, 0, 2, "\xc3\xa9"},
	/* invalid characters */
	{"dollar", "aGV$bG8=", 0, 0, -1, NULL},
	{"space inside", "aGVs bG8=", 0, 0, -1, NULL},
	{"leading space", " aGVsbG8=", 0, 0, -1, NULL},
	{"trailing CRLF", "aGVsbG8=\r\n", 0, 0, -1, NULL},
	{"LF inside", "aGVs\nbG8=", 0, 0, -1, NULL},
	{"URL-safe alphabet", "-_-_", 0, 1, -1, NULL},
	{"garbage after padding", "aGVsbG8=!", 0, 0, -1, NULL},
	{"data after padding", "YQ==YQ==", 0, 0, -1, NULL},
	{"cancel star", "*", 0, 0, -1, NULL},
	/* bad padding */
	{"missing padding", "aGVsbG8", 0, 0, -1, NULL},
	{"missing one of two", "YQ=", 0, 0, -1, NULL},
	{"missing both", "YQ", 0, 0, -1, NULL},
	{"too much padding", "YQ===", 0, 0, -1, NULL},
	{"padding after a full group", "YWJj=", 0, 0, -1, NULL},
	{"padding inside", "Y=Q=", 0, 0, -1, NULL},
	{"only padding", "=", 0, 0, -1, NULL},
	{"only two pads", "==", 0, 0, -1, NULL},
	{"one char", "Y", 0, 0, -1, NULL},
	{"non-zero pad bits", "YR==", 0, 0, -1, NULL},
	/* output bound: size counts the NUL */
	{"fits exactly", "aGVsbG8=", 6, 0, 5, "hello"},
	{"one byte short", "aGVsbG8=", 5, 0, -1, NULL},
	{"empty in one byte", "", 1, 0, 0, ""},
	{"no room at all", "", (size_t)-1, 0, -1, NULL},
};

static void test_b64decode(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(b64_cases) / sizeof(b64_cases[0]); i++) {
		const struct b64_case *c = &b64_cases[i];
		char out[64 + 1];
		size_t size = c->size == 0	      ? 64
			      : c->size == (size_t)-1 ? 0
						      : c->size;
		long got;

		memset(out, 'Z', sizeof(out));
		got = sasl_b64decode(c->in, strlen(c->in), out, size,
				     c->nul_ok);
		if (got != c->want)
			fail_msg("%s: got %ld, want %ld", c->name, got,
				 c->want);
		if (got < 0)
			continue;
		if (memcmp(out, c->out, (size_t)got) != 0)
			fail_msg("%s: bad output", c->name);
		if (out[got] != '\0')
			fail_msg("%s: not NUL-terminated", c->name);
		/* Nothing written past size. */
		assert_true(size >= sizeof(out) || out[size] == 'Z');
	}
}

/* Only len bytes of the input are read. */
static void test_b64decode_len(void **state)
{
	char out[16];

	(void)state;
	assert_int_equal(sasl_b64decode("YQ==garbage", 4, out, sizeof(out), 0),
			 1);
	assert_string_equal(out, "a");
	assert_int_equal(sasl_b64decode("YWJj\0YWJj", 9, out, sizeof(out), 0),
			 -1);
}

#define F(s) s, sizeof(s) - 1

struct plain_case {
	const char *name;
	const char *msg;
	size_t len;
	int want;
	const char *user;
	const char *pass;
};

static const struct plain_case plain_cases[] = {
	{"authzid empty", F("\0alice@example.test\0secret"), 0,
	 "alice@example.test", "secret"},
	{"authzid equal", F("alice@example.test\0alice@example.test\0secret"),
	 0, "alice@example.test", "secret"},
	{"password with spaces and 8-bit", F("\0alice\0correct horse \xc3\xa9"),
	 0, "alice", "correct horse \xc3\xa9"},
	{"one-byte fields", F("\0a\0b"), 0, "a", "b"},
	/* acting for another identity is not offered */
	{"authzid different", F("bob\0alice\0secret"), -1, NULL, NULL},
	{"authzid a prefix of authcid", F("alic\0alice\0secret"), -1, NULL,
	 NULL},
	{"authcid a prefix of authzid", F("alicex\0alice\0secret"), -1, NULL,
	 NULL},
	{"authzid in another case", F("ALICE\0alice\0secret"), -1, NULL, NULL},
	/* empty fields */
	{"empty user", F("\0\0secret"), -1, NULL, NULL},
	{"empty user, authzid set", F("alice\0\0secret"), -1, NULL, NULL},
	{"empty password", F("\0alice\0"), -1, NULL, NULL},
	{"all empty", F("\0\0"), -1, NULL, NULL},
	/* missing separators */
	{"empty message", F(""), -1, NULL, NULL},
	{"no NUL", F("alice secret"), -1, NULL, NULL},
	{"one NUL", F("alice\0secret"), -1, NULL, NULL},
	{"one leading NUL", F("\0alice"), -1, NULL, NULL},
	/* RFC 4616 2: passwd = 1*SAFE, no NUL in it */
	{"NUL in the password", F("\0alice\0sec\0ret"), -1, NULL, NULL},
	{"NUL after the password", F("\0alice\0secret\0"), -1, NULL, NULL},
};

static void test_plain_split(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(plain_cases) / sizeof(plain_cases[0]);
	     i++) {
		const struct plain_case *c = &plain_cases[i];
		char user[SASL_FIELD_MAX], pass[SASL_FIELD_MAX];
		int got;

		got = sasl_plain_split(c->msg, c->len, user, pass);
		if (got != c->want)
			fail_msg("%s: got %d, want %d", c->name, got, c->want);
		if (got < 0)
			continue;
		if (strcmp(user, c->user) != 0 || strcmp(pass, c->pass) != 0)
			fail_msg("%s: user [%s] pass [%s]", c->name, user,
				 pass);
	}
}

/* Builds "authzid NUL user NUL pass" with fields of the given lengths. */
static size_t plain_msg(char *msg, size_t zlen, size_t ulen, size_t plen)
{
	size_t o = 0;

	memset(msg + o, 'u', zlen);
	o += zlen;
	msg[o++] = '\0';
	memset(msg + o, 'u', ulen);
	o += ulen;
	msg[o++] = '\0';
	memset(msg + o, 'p', plen);
	o += plen;
	return o;
}

struct long_case {
	size_t zlen, ulen, plen;
	int want;
};

static const struct long_case long_cases[] = {
	{0, SASL_FIELD_MAX - 1, 6, 0},
	{0, SASL_FIELD_MAX, 6, -1},
	{0, 4 * SASL_FIELD_MAX, 6, -1},
	{0, 5, SASL_FIELD_MAX - 1, 0},
	{0, 5, SASL_FIELD_MAX, -1},
	{0, 5, 4 * SASL_FIELD_MAX, -1},
	{SASL_FIELD_MAX - 1, SASL_FIELD_MAX - 1, SASL_FIELD_MAX - 1, 0},
	{SASL_FIELD_MAX, SASL_FIELD_MAX, 6, -1},
	{4 * SASL_FIELD_MAX, 5, 6, -1},
};

static void test_plain_split_long(void **state)
{
	static char msg[16 * SASL_FIELD_MAX];

	(void)state;
	for (size_t i = 0; i < sizeof(long_cases) / sizeof(long_cases[0]);
	     i++) {
		const struct long_case *c = &long_cases[i];
		/* One byte of slack each way: an overrun shows under ASan
		 * and in the canaries. */
		char user[SASL_FIELD_MAX + 1], pass[SASL_FIELD_MAX + 1];
		size_t len = plain_msg(msg, c->zlen, c->ulen, c->plen);
		int got;

		user[SASL_FIELD_MAX] = 'Z';
		pass[SASL_FIELD_MAX] = 'Z';
		got = sasl_plain_split(msg, len, user, pass);
		if (got != c->want)
			fail_msg("authzid %zu user %zu pass %zu: got %d",
				 c->zlen, c->ulen, c->plen, got);
		assert_int_equal(user[SASL_FIELD_MAX], 'Z');
		assert_int_equal(pass[SASL_FIELD_MAX], 'Z');
		if (got == 0) {
			assert_int_equal(strlen(user), c->ulen);
			assert_int_equal(strlen(pass), c->plen);
		}
	}
}

/* The two together, as the session uses them for AUTH PLAIN. */
static void test_plain_roundtrip(void **state)
{
	char decoded[3 * SASL_FIELD_MAX];
	char user[SASL_FIELD_MAX], pass[SASL_FIELD_MAX];
	const char *in = "AGFsaWNlQGV4YW1wbGUudGVzdABjb3JyZWN0IGhvcnNlIGJhdHRl"
			 "cnkgc3RhcGxl";
	long n;

	(void)state;
	n = sasl_b64decode(in, strlen(in), decoded, sizeof(decoded), 1);
	assert_true(n > 0);
	assert_int_equal(sasl_plain_split(decoded, (size_t)n, user, pass), 0);
	assert_string_equal(user, "alice@example.test");
	assert_string_equal(pass, "correct horse battery staple");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_b64decode),
		cmocka_unit_test(test_b64decode_len),
		cmocka_unit_test(test_plain_split),
		cmocka_unit_test(test_plain_split_long),
		cmocka_unit_test(test_plain_roundtrip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
