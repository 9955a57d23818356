/* Unit tests of the content filter: parser, MIME walker, macros, eval. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "filter/filter_eval.h"
#include "filter/filter_macro.h"
#include "filter/filter_mime.h"
#include "filter/filter_parse.h"

static void test_parse_errors(void **state)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
		{"rule \"x\"\n\tif size > 2 GB\n\tthen delete\nend\n",
		 "line 2: expected B, KB or MB"},
		{"rule \"x\"\n\tthen delete\nend\n",
		 "line 3: expected at least"},
		{"rule \"x\"\n\tif body matches \"(\"\n\tthen delete\nend\n",
		 "line 2: expected a regular expression"},
		{"rule \"x\"\n\tif all-messages\n\tthen reject 550 \"4.7.1 "
		 "x\"\n"
		 "end\n",
		 "line 3: expected the text to start"},
		{"rule \"x\"\n\tif all-messages\n\tthen delete\n",
		 "line 4: expected 'end'"},
		{"rule \"a\"\n\tif all-messages\n\tthen stop\nend\n"
		 "rule \"A\"\n\tif all-messages\n\tthen stop\nend\n",
		 "line 5: expected a rule name not used"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		struct filter_rules l = {0};
		char err[300];

		assert_int_equal(filter_parse(cases[i].in, strlen(cases[i].in),
					      &l, err, sizeof(err)),
				 -1);
		assert_non_null(strstr(err, cases[i].want));
		assert_int_equal(l.n, 0);
	}
}

static void test_mime(void **state)
{
	static const char msg[] =
		"Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n"
		"--b\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
		"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
		"caf=E9 soft=\r\nbreak\r\n"
		"--b\r\nContent-Type: application/pdf\r\n"
		"Content-Disposition: attachment; "
		"filename*=utf-8''r%C3%A9sum%C3%A9.pdf\r\n\r\nJVBERg==\r\n"
		"--b--\r\n";
	struct filter_mime m;
	struct buf out;

	assert_int_equal(filter_mime_parse(msg, strlen(msg), &m), 0);
	assert_int_equal(m.nparts, 2);
	assert_string_equal(buf_cstr(&m.text), "caf\xc3\xa9 softbreak");
	assert_int_equal(m.parts[1].attachment, 1);
	assert_string_equal(m.parts[1].filename, "r\xc3\xa9sum\xc3\xa9.pdf");
	assert_string_equal(m.parts[1].type, "application/pdf");
	buf_init(&out, 65536);
	assert_int_equal(filter_mime_strip(msg, strlen(msg), &m, &out), 1);
	assert_null(strstr(buf_cstr(&out), "JVBERg"));
	assert_non_null(strstr(buf_cstr(&out), "was removed"));
	buf_deinit(&out);
	filter_mime_deinit(&m);
}

static void test_macros_hostile(void **state)
{
	static const char head[] =
		"Subject: $SENDER$ =?utf-8?Q?x=0D=0AEvil:_1?=\r\n\r\n";
	struct filter_macro_ctx c = {
		.sender = "a@b.test",
		.recipient = "r@c.test",
		.header = head,
		.header_len = sizeof(head) - 1,
	};
	struct buf b;

	buf_init(&b, 4096);
	assert_int_equal(filter_macro_expand(
				 "[$SUBJECT$] $SENDERDOMAIN$ $NOPE$ $", &c, &b),
			 0);
	assert_string_equal(buf_cstr(&b),
			    "[$SENDER$ x??Evil: 1] b.test $NOPE$ $");
	buf_reset(&b);
	assert_int_equal(filter_macro_header("X-T", "a\r\nB: c", &b), 0);
	assert_string_equal(buf_cstr(&b), "X-T: a B: c\r\n");
	buf_deinit(&b);
}

static int member(void *ctx, const char *group, const char *address)
{
	return strcmp(group, "big") == 0 && strcmp(address, "a@x.test") == 0;
}

static void test_eval_recipe(void **state)
{
	static const char rules[] =
		"rule \"skip\"\n\tmatch any\n\tif sender in-group \"big\"\n"
		"\tif recipient in-group \"big\"\n\tthen skip 1\nend\n"
		"rule \"size\"\n\tif size > 1 KB\n\tthen delete\n"
		"\tthen note to \"$SENDER$\" subject \"big\"\nend\n";
	static struct filter_rcpt two[] = {{"a@x.test", 1}, {"b@x.test", 1}};
	struct filter_rules l = {0};
	struct filter_set *s;
	struct filter_result res;
	struct filter_facts f;
	char err[300], big[2048];

	assert_int_equal(
		filter_parse(rules, strlen(rules), &l, err, sizeof(err)), 2);
	s = filter_set_new(&l, err, sizeof(err));
	assert_non_null(s);
	memset(big, 'x', sizeof(big));
	memset(&f, 0, sizeof(f));
	f.sender = "s@remote.test";
	f.auth = f.client_ip = f.message_id = f.primary_domain = "";
	f.msg = big;
	f.len = sizeof(big);
	f.is_member = member;
	/* Nobody in the group: refused at SMTP time. */
	assert_int_equal(filter_eval(s, &f, &two[1], 1, &res), 0);
	assert_int_equal(res.reject, 1);
	assert_non_null(strstr(res.reply, "552 5.3.4"));
	assert_int_equal(res.nnotes, 0);
	filter_result_deinit(&res);
	/* Mixed: a keeps it, b's copy is deleted, one note. */
	assert_int_equal(filter_eval(s, &f, two, 2, &res), 0);
	assert_int_equal(res.reject, 0);
	assert_int_equal(res.out[0].deleted, 0);
	assert_int_equal(res.out[1].deleted, 1);
	assert_int_equal(res.nnotes, 1);
	assert_string_equal(res.notes[0].to, "s@remote.test");
	filter_result_deinit(&res);
	/* The null sender gets no note, and so no refusal either. */
	f.sender = "";
	assert_int_equal(filter_eval(s, &f, &two[1], 1, &res), 0);
	assert_int_equal(res.reject, 0);
	assert_int_equal(res.out[0].deleted, 1);
	assert_int_equal(res.nnotes, 0);
	filter_result_deinit(&res);
	filter_set_unref(s);
}

static void test_wildcard(void **state)
{
	assert_true(filter_wildcard("*@EXAMPLE.com", "a@example.com", 0));
	assert_false(filter_wildcard("*@example.com", "a@example.org", 0));
	assert_true(filter_wildcard("a?c*", "abcdef", 0));
	assert_false(filter_wildcard(
		"*a*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_mime),
		cmocka_unit_test(test_macros_hostile),
		cmocka_unit_test(test_eval_recipe),
		cmocka_unit_test(test_wildcard),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
