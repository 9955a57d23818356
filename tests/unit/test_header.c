/* Unit tests of lib/header: header_next, header_is, header_unfold. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "lib/header.h"

#define MAX_FIELDS 8

/* One expected field: its name, raw value and raw bytes. */
struct want_field {
	const char *name;
	const char *value; /* value_len = strlen unless vlen is set */
	size_t vlen;
	const char *raw;
	size_t rlen;
};

struct next_case {
	const char *name;
	const char *msg;
	size_t len; /* 0: strlen(msg) */
	struct want_field fields[MAX_FIELDS];
	size_t nfields;
	size_t body; /* *pos after the final 0 */
};

static const struct next_case next_cases[] = {
	{"empty input", "", 0, {{0}}, 0, 0},
	{"only the empty line", "\r\nbody", 0, {{0}}, 0, 2},
	{"only an LF", "\nbody", 0, {{0}}, 0, 1},
	{"plain fields",
	 "From: a@b.example\r\nTo: c@d.example\r\n\r\nbody\r\n",
	 0,
	 {{"From", " a@b.example", 0, "From: a@b.example\r\n", 0},
	  {"To", " c@d.example", 0, "To: c@d.example\r\n", 0}},
	 2,
	 38},
	{"no space after colon",
	 "Subject:x\r\n\r\n",
	 0,
	 {{"Subject", "x", 0, "Subject:x\r\n", 0}},
	 1,
	 13},
	{"empty value",
	 "Subject:\r\n\r\n",
	 0,
	 {{"Subject", "", 0, "Subject:\r\n", 0}},
	 1,
	 12},
	{"folded with space and tab",
	 "Subject: one\r\n two\r\n\tthree\r\nTo: x\r\n\r\nb",
	 0,
	 {{"Subject", " one\r\n two\r\n\tthree", 0,
	   "Subject: one\r\n two\r\n\tthree\r\n", 0},
	  {"To", " x", 0, "To: x\r\n", 0}},
	 2,
	 37},
	{"last field without CRLF",
	 "From: a\r\nSubject: x",
	 0,
	 {{"From", " a", 0, "From: a\r\n", 0},
	  {"Subject", " x", 0, "Subject: x", 0}},
	 2,
	 19},
	{"last field folded without CRLF",
	 "Subject: x\r\n y",
	 0,
	 {{"Subject", " x\r\n y", 0, "Subject: x\r\n y", 0}},
	 1,
	 14},
	{"folded line ends the input",
	 "Subject: x\r\n ",
	 0,
	 {{"Subject", " x\r\n ", 0, "Subject: x\r\n ", 0}},
	 1,
	 13},
	{"header only, ends with CRLF",
	 "Subject: x\r\n",
	 0,
	 {{"Subject", " x", 0, "Subject: x\r\n", 0}},
	 1,
	 12},
	{"non-field line starts the body",
	 "From: a\r\nthis is the body\r\n",
	 0,
	 {{"From", " a", 0, "From: a\r\n", 0}},
	 1,
	 9},
	{"line without a colon",
	 "From: a\r\nnocolon\r\nTo: b\r\n",
	 0,
	 {{"From", " a", 0, "From: a\r\n", 0}},
	 1,
	 9},
	{"space before the colon is not a name",
	 "From: a\r\nSubject : x\r\n\r\n",
	 0,
	 {{"From", " a", 0, "From: a\r\n", 0}},
	 1,
	 9},
	{"empty name", ": x\r\n\r\n", 0, {{0}}, 0, 0},
	{"first line is a continuation", " Subject: x\r\n\r\n", 0, {{0}}, 0, 0},
	{"8-bit name", "Subj\xc3\xa9t: x\r\n\r\n", 0, {{0}}, 0, 0},
	{"NUL in name", "Su\0ject: x\r\n\r\n", 14, {{0}}, 0, 0},
	{"name runs to the end", "Subject", 0, {{0}}, 0, 0},
	{"LF-only line ends",
	 "From: a\nSubject: one\n two\n\nbody\n",
	 0,
	 {{"From", " a", 0, "From: a\n", 0},
	  {"Subject", " one\n two", 0, "Subject: one\n two\n", 0}},
	 2,
	 27},
	{"NUL in a value",
	 "X-Test: a\0b\r\nTo: c\r\n\r\n",
	 22,
	 {{"X-Test", " a\0b", 4, "X-Test: a\0b\r\n", 13},
	  {"To", " c", 0, "To: c\r\n", 0}},
	 2,
	 22},
	{"colon in the value",
	 "Date: Mon, 2 Jan 2006 15:04:05 +0000\r\n\r\n",
	 0,
	 {{"Date", " Mon, 2 Jan 2006 15:04:05 +0000", 0,
	   "Date: Mon, 2 Jan 2006 15:04:05 +0000\r\n", 0}},
	 1,
	 40},
};

static void test_next(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(next_cases) / sizeof(next_cases[0]);
	     i++) {
		const struct next_case *c = &next_cases[i];
		size_t len = c->len != 0 ? c->len : strlen(c->msg);
		size_t pos = 0, n = 0;
		struct header_field f;
		int r;

		while ((r = header_next(c->msg, len, &pos, &f)) == 1) {
			const struct want_field *w = &c->fields[n];
			size_t vlen, rlen;

			if (n == c->nfields)
				fail_msg("%s: extra field %.*s", c->name,
					 (int)f.name_len, f.name);
			vlen = w->vlen != 0 ? w->vlen : strlen(w->value);
			rlen = w->rlen != 0 ? w->rlen : strlen(w->raw);
			if (f.name_len != strlen(w->name) ||
			    memcmp(f.name, w->name, f.name_len) != 0)
				fail_msg("%s: field %zu name %.*s", c->name, n,
					 (int)f.name_len, f.name);
			if (f.value_len != vlen ||
			    memcmp(f.value, w->value, vlen) != 0)
				fail_msg("%s: field %zu value [%.*s]", c->name,
					 n, (int)f.value_len, f.value);
			if (f.raw_len != rlen ||
			    memcmp(f.raw, w->raw, rlen) != 0)
				fail_msg("%s: field %zu raw [%.*s]", c->name, n,
					 (int)f.raw_len, f.raw);
			/* Fields point into the message, not into copies. */
			assert_true(f.raw >= c->msg &&
				    f.raw + rlen <= c->msg + len);
			assert_true(pos == (size_t)(f.raw - c->msg) + rlen);
			n++;
		}
		if (r != 0)
			fail_msg("%s: returned %d", c->name, r);
		if (n != c->nfields)
			fail_msg("%s: %zu fields, want %zu", c->name, n,
				 c->nfields);
		if (pos != c->body)
			fail_msg("%s: body at %zu, want %zu", c->name, pos,
				 c->body);
	}
}

/* At or past the end the iterator keeps returning 0 and leaves pos. */
static void test_next_at_end(void **state)
{
	const char *msg = "Subject: x";
	struct header_field f;
	size_t pos = strlen(msg);

	(void)state;
	assert_int_equal(header_next(msg, strlen(msg), &pos, &f), 0);
	assert_int_equal(pos, strlen(msg));
	pos = 100;
	assert_int_equal(header_next(msg, strlen(msg), &pos, &f), 0);
	assert_int_equal(pos, 100);
	/* A lone CR at the end is not an empty line. */
	pos = 0;
	assert_int_equal(header_next("\r", 1, &pos, &f), 0);
	assert_int_equal(pos, 0);
}

struct is_case {
	const char *field;
	const char *name;
	int want;
};

static const struct is_case is_cases[] = {
	{"Subject: x\r\n", "Subject", 1},
	{"subject: x\r\n", "Subject", 1},
	{"SUBJECT: x\r\n", "subject", 1},
	{"X-Authenticated-Sender: x\r\n", "x-authenticated-sender", 1},
	{"Subject: x\r\n", "Subj", 0},
	{"Subj: x\r\n", "Subject", 0},
	{"Subjects: x\r\n", "Subject", 0},
	{"Message-ID: <a@b>\r\n", "Message-Id", 1},
	{"Message-ID: <a@b>\r\n", "Message_ID", 0},
	{"Resent-Date: x\r\n", "Date", 0},
};

static void test_is(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(is_cases) / sizeof(is_cases[0]); i++) {
		const struct is_case *c = &is_cases[i];
		struct header_field f;
		size_t pos = 0;

		assert_int_equal(
			header_next(c->field, strlen(c->field), &pos, &f), 1);
		if (header_is(&f, c->name) != c->want)
			fail_msg("%s is %s: want %d", c->field, c->name,
				 c->want);
	}
}

struct unfold_case {
	const char *name;
	const char *field;
	size_t len; /* 0: strlen(field) */
	size_t size;
	const char *want;
};

static const struct unfold_case unfold_cases[] = {
	{"plain", "Subject: hello world\r\n", 0, 64, "hello world"},
	{"trimmed", "Subject:   hello  \t \r\n", 0, 64, "hello"},
	{"folded", "Subject: one\r\n two\r\n\tthree\r\n", 0, 64,
	 "one two three"},
	{"fold without white space before it", "Subject: one\r\n\ttwo\r\n", 0,
	 64, "one two"},
	{"inner runs of white space", "Subject: a \t  b\r\n", 0, 64, "a b"},
	{"empty", "Subject:\r\n", 0, 64, ""},
	{"only white space", "Subject: \r\n \t\r\n", 0, 64, ""},
	{"LF-only fold", "Subject: one\n two\n", 0, 64, "one two"},
	{"NUL replaced", "Subject: a\0b\r\n", 14, 64, "a?b"},
	{"control chars replaced",
	 "Subject: a\x01"
	 "b\x1b[0m\x7f"
	 "c\r\n",
	 0, 64, "a?b?[0m?c"},
	{"bare CR replaced", "Subject: a\rb\r\n", 0, 64, "a?b"},
	{"8-bit kept", "Subject: caf\xc3\xa9\r\n", 0, 64, "caf\xc3\xa9"},
	{"cut at size", "Subject: hello world\r\n", 0, 6, "hello"},
	{"cut then trimmed", "Subject: hello world\r\n", 0, 7, "hello"},
	{"size one", "Subject: hello\r\n", 0, 1, ""},
	{"exactly fits", "Subject: hello\r\n", 0, 6, "hello"},
};

static void test_unfold(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(unfold_cases) / sizeof(unfold_cases[0]);
	     i++) {
		const struct unfold_case *c = &unfold_cases[i];
		size_t len = c->len != 0 ? c->len : strlen(c->field);
		char out[64 + 1];
		struct header_field f;
		size_t pos = 0, got;

		memset(out, 'Z', sizeof(out));
		assert_int_equal(header_next(c->field, len, &pos, &f), 1);
		got = header_unfold(&f, out, c->size);
		if (got != strlen(c->want) || strcmp(out, c->want) != 0)
			fail_msg("%s: got %zu [%s], want [%s]", c->name, got,
				 out, c->want);
		/* Nothing written past size. */
		assert_true(c->size >= sizeof(out) || out[c->size] == 'Z');
	}
}

static void test_unfold_size_zero(void **state)
{
	const char *msg = "Subject: hello\r\n";
	struct header_field f;
	size_t pos = 0;
	char out[4] = "ZZZ";

	(void)state;
	assert_int_equal(header_next(msg, strlen(msg), &pos, &f), 1);
	assert_int_equal(header_unfold(&f, out, 0), 0);
	assert_string_equal(out, "ZZZ");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_next),
		cmocka_unit_test(test_next_at_end),
		cmocka_unit_test(test_is),
		cmocka_unit_test(test_unfold),
		cmocka_unit_test(test_unfold_size_zero),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
