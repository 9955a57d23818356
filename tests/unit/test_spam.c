/* Unit tests of the spam score: spamd's protocol (lib/spamd_parse), the
 * thresholds and the X-Spam-* header rewrite (policy/spam), and the
 * decimal settings they use. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>

#include "directory/settings.h"
#include "lib/buf.h"
#include "lib/spamd_parse.h"
#include "policy/spam.h"

struct reply_case {
	const char *name;
	const char *data;
	int eof;
	int want; /* 1 done, 0 more, -1 error */
	int spam;
	double score, threshold;
	const char *symbols;
};

#define GTUBE_SYMBOLS "GTUBE,MISSING_DATE,MISSING_MID,NO_RECEIVED"

static const struct reply_case reply_cases[] = {
	{"symbols",
	 "SPAMD/1.1 0 EX_OK\r\nContent-length: 42\r\n"
	 "Spam: True ; 1003.3 / 5.0\r\n\r\n" GTUBE_SYMBOLS,
	 0, 1, 1, 1003.3, 5.0, GTUBE_SYMBOLS},
	{"symbols with a line end",
	 "SPAMD/1.1 0 EX_OK\r\nContent-length: 9\r\n"
	 "Spam: False ; -1.5 / 5.0\r\n\r\nA_B,C_D\r\n",
	 0, 1, 0, -1.5, 5.0, "A_B,C_D"},
	{"no rules", "SPAMD/1.1 0 EX_OK\r\nSpam: False ; 0.0 / 5.0\r\n\r\n", 1,
	 1, 0, 0, 5.0, ""},
	{"check without body, needs eof",
	 "SPAMD/1.1 0 EX_OK\r\nSpam: False ; 0.0 / 5.0\r\n\r\n", 0, 0, 0, 0, 0,
	 ""},
	{"body still coming",
	 "SPAMD/1.1 0 EX_OK\r\nContent-length: 42\r\n"
	 "Spam: True ; 1003.3 / 5.0\r\n\r\nGTUBE",
	 0, 0, 0, 0, 0, ""},
	{"cut short at eof",
	 "SPAMD/1.1 0 EX_OK\r\nContent-length: 42\r\n"
	 "Spam: True ; 1003.3 / 5.0\r\n\r\nGTUBE",
	 1, -1, 0, 0, 0, ""},
	{"headers still coming", "SPAMD/1.1 0 EX_OK\r\nSpam: Tr", 0, 0, 0, 0, 0,
	 ""},
	{"LF line ends",
	 "SPAMD/1.1 0 EX_OK\nContent-length: 5\nSpam: Yes ; 7 / 5\n\nA_1,B", 0,
	 1, 1, 7, 5, "A_1,B"},
	{"error code", "SPAMD/1.0 76 Bad header line: x\r\n\r\n", 0, -1, 0, 0,
	 0, ""},
	{"not spamd", "HTTP/1.1 200 OK\r\n\r\n", 0, -1, 0, 0, 0, ""},
	{"no Spam header", "SPAMD/1.1 0 EX_OK\r\nContent-length: 0\r\n\r\n", 0,
	 -1, 0, 0, 0, ""},
	{"bad Spam header", "SPAMD/1.1 0 EX_OK\r\nSpam: Maybe ; 1 / 5\r\n\r\n",
	 1, -1, 0, 0, 0, ""},
	{"score overflow",
	 "SPAMD/1.1 0 EX_OK\r\nSpam: True ; 99999999999999 / 5\r\n\r\n", 1, -1,
	 0, 0, 0, ""},
	{"bad content length",
	 "SPAMD/1.1 0 EX_OK\r\nContent-length: -4\r\nSpam: True ; 1 / "
	 "5\r\n\r\n",
	 1, -1, 0, 0, 0, ""},
	{"header without colon", "SPAMD/1.1 0 EX_OK\r\nSpam True\r\n\r\n", 1,
	 -1, 0, 0, 0, ""},
	{"odd rule names dropped",
	 "SPAMD/1.1 0 EX_OK\r\nContent-length: 27\r\n"
	 "Spam: True ; 6.0 / 5.0\r\n\r\nGOOD,b\x01"
	 "d,<script>,ALSO_GOOD",
	 0, 1, 1, 6.0, 5.0, "GOOD,ALSO_GOOD"},
};

static void test_parse_reply(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(reply_cases) / sizeof(reply_cases[0]);
	     i++) {
		const struct reply_case *c = &reply_cases[i];
		struct spamd_reply r;
		const char *err = NULL;
		int got;

		print_message("case %s\n", c->name);
		got = spamd_parse_reply(c->data, strlen(c->data), c->eof, &r,
					&err);
		assert_int_equal(got, c->want);
		if (got < 0)
			assert_non_null(err);
		if (got != 1)
			continue;
		assert_int_equal(r.spam, c->spam);
		assert_true(r.score > c->score - 0.001 &&
			    r.score < c->score + 0.001);
		assert_true(r.threshold > c->threshold - 0.001 &&
			    r.threshold < c->threshold + 0.001);
		assert_string_equal(r.symbols, c->symbols);
	}
}

/* What spamd 4.0 sends for REPORT (the table's rule names are kept). */
static void test_parse_report(void **state)
{
	const char *report =
		"Spam detection software, running on the system \"vm\",\n"
		"has identified this incoming email as possible spam.\n\n"
		"Content analysis details:   (1003.3 points, 5.0 required)\n\n"
		" pts rule name              description\n"
		"---- ---------------------- ------------------------------\n"
		" 0.6 MISSING_MID            Missing Message-Id: header\n"
		"-0.0 NO_RECEIVED            Informational: message has no\n"
		"                            Received headers\n"
		"1000 GTUBE                  BODY: Generic Test for "
		"Unsolicited\n"
		" 0.0 TVD_SPACE_RATIO        No description available.\n\n";
	char data[2048];
	struct spamd_reply r;
	const char *err;

	(void)state;
	snprintf(data, sizeof(data),
		 "SPAMD/1.1 0 EX_OK\r\nContent-length: %zu\r\n"
		 "Spam: True ; 1003.3 / 5.0\r\n\r\n%s",
		 strlen(report), report);
	assert_int_equal(spamd_parse_reply(data, strlen(data), 0, &r, &err), 1);
	assert_string_equal(r.symbols,
			    "MISSING_MID,NO_RECEIVED,GTUBE,TVD_SPACE_RATIO");
}

static void test_request_head(void **state)
{
	char out[128];

	(void)state;
	assert_int_equal(spamd_request_head("SYMBOLS", 117, out, sizeof(out)),
			 (int)strlen("SYMBOLS SPAMC/1.5\r\nContent-length: "
				     "117\r\n\r\n"));
	assert_string_equal(out,
			    "SYMBOLS SPAMC/1.5\r\nContent-length: 117\r\n\r\n");
	assert_int_equal(spamd_request_head("SYMBOLS", 117, out, 10), -1);
}

struct addr_case {
	const char *text;
	int ok;
	int family;
	int port;
};

static const struct addr_case addr_cases[] = {
	{"127.0.0.1:783", 1, AF_INET, 783},
	{"[::1]:7830", 1, AF_INET6, 7830},
	{"127.0.0.1", 0, 0, 0},
	{"127.0.0.1:", 0, 0, 0},
	{"127.0.0.1:0", 0, 0, 0},
	{"127.0.0.1:65536", 0, 0, 0},
	{"127.0.0.1:78x", 0, 0, 0},
	{"::1:783", 0, 0, 0},
	{"[::1]783", 0, 0, 0},
	{"localhost:783", 0, 0, 0},
	{"", 0, 0, 0},
};

static void test_parse_addr(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(addr_cases) / sizeof(addr_cases[0]);
	     i++) {
		struct sockaddr_storage ss;
		socklen_t len;
		int r = spamd_parse_addr(addr_cases[i].text, &ss, &len);

		print_message("case %s\n", addr_cases[i].text);
		assert_int_equal(r, addr_cases[i].ok ? 0 : -1);
		if (r < 0)
			continue;
		assert_int_equal(ss.ss_family, addr_cases[i].family);
		assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port),
				 addr_cases[i].port);
	}
}

struct decimal_case {
	const char *setting;
	const char *input;
	const char *want; /* NULL: refused */
};

static const struct decimal_case decimal_cases[] = {
	{"spam.tag_score", "5", "5.0"},
	{"spam.tag_score", "5.0", "5.0"},
	{"spam.tag_score", "4.25", "4.25"},
	{"spam.tag_score", "-1.5", "-1.5"},
	{"spam.tag_score", "+7.125", "7.125"},
	{"spam.tag_score", "0", "0.0"},
	{"spam.tag_score", "1000", "1000.0"},
	{"spam.tag_score", "1000.001", NULL},
	{"spam.tag_score", "1.2345", NULL},
	{"spam.tag_score", "1.", NULL},
	{"spam.tag_score", ".5", NULL},
	{"spam.tag_score", "five", NULL},
	{"spam.tag_score", "1e3", NULL},
	{"spam.tag_score", "", NULL},
	{"spam.reject_score", "12", "12.0"},
	{"spam.spamd", "127.0.0.1:783", "127.0.0.1:783"},
	{"spam.spamd", "", ""},
	{"spam.spamd", "spamd.example.test", NULL},
	{"spam.subject_tag", "[SPAM]", "[SPAM]"},
};

static void test_settings(void **state)
{
	struct settings *s = settings_new();

	(void)state;
	for (size_t i = 0; i < sizeof(decimal_cases) / sizeof(decimal_cases[0]);
	     i++) {
		const struct decimal_case *c = &decimal_cases[i];
		char norm[128];
		const char *err = NULL;
		int id = settings_lookup(c->setting);
		int r;

		print_message("case %s %s\n", c->setting, c->input);
		assert_true(id >= 0);
		r = settings_normalize((enum settings_id)id, c->input, norm,
				       sizeof(norm), &err);
		assert_int_equal(r, c->want != NULL ? 0 : -1);
		if (c->want != NULL)
			assert_string_equal(norm, c->want);
	}
	assert_true(settings_decimal(s, SETTING_SPAM_TAG_SCORE) == 5.0);
	assert_true(settings_decimal(s, SETTING_SPAM_REJECT_SCORE) == 12.0);
	assert_int_equal(settings_set(s, SETTING_SPAM_TAG_SCORE, "-2.5"), 0);
	assert_true(settings_decimal(s, SETTING_SPAM_TAG_SCORE) == -2.5);
	settings_unref(s);
}

static void test_verdict(void **state)
{
	(void)state;
	assert_int_equal(spam_verdict(0, 5, 12), SPAM_HAM);
	assert_int_equal(spam_verdict(4.9, 5, 12), SPAM_HAM);
	assert_int_equal(spam_verdict(5.0, 5, 12), SPAM_TAG);
	/* compared as shown, to one decimal: 4.96 shows as 5.0 */
	assert_int_equal(spam_verdict(4.96, 5, 12), SPAM_TAG);
	assert_int_equal(spam_verdict(11.9, 5, 12), SPAM_TAG);
	assert_int_equal(spam_verdict(12, 5, 12), SPAM_REJECT);
	assert_int_equal(spam_verdict(1003.3, 5, 12), SPAM_REJECT);
	assert_int_equal(spam_verdict(-3, -5, 12), SPAM_TAG);
}

static void test_score_add(void **state)
{
	struct spam_score s;

	(void)state;
	memset(&s, 0, sizeof(s));
	spam_score_add(&s, 8, "DNSBL_bl.example.test");
	spam_score_add(&s, 2.5, "A,B,,C");
	spam_score_add(&s, 0, "");
	assert_true(s.score == 10.5);
	assert_string_equal(s.tests, "DNSBL_bl.example.test,A,B,C");
}

struct rewrite_case {
	const char *name;
	const char *in;
	double score;
	const char *tests;
	int tagged;
	const char *tag;
	const char *want;
};

static const struct rewrite_case rewrite_cases[] = {
	{"ham, client's X-Spam fields removed",
	 "From: a@x.test\r\nX-Spam-Flag: NO\r\nX-Spam-Status: No, "
	 "score=-100\r\n\tfolded\r\nx-spam-score: -100\r\nSubject: hi\r\n\r\n"
	 "X-Spam-Flag: NO (body, kept)\r\n",
	 1.0, "A", 0, "***SPAM***",
	 "From: a@x.test\r\nSubject: hi\r\nX-Spam-Score: 1.0\r\n"
	 "X-Spam-Status: No, score=1.0 required=5.0 tests=A\r\n\r\n"
	 "X-Spam-Flag: NO (body, kept)\r\n"},
	{"tagged", "From: a@x.test\r\nSubject: cheap pills\r\n\r\nbody\r\n",
	 8.0, "DNSBL_bl.example.test", 1, "***SPAM***",
	 "From: a@x.test\r\nSubject: ***SPAM*** cheap pills\r\n"
	 "X-Spam-Flag: YES\r\nX-Spam-Score: 8.0\r\n"
	 "X-Spam-Status: Yes, score=8.0 required=5.0 "
	 "tests=DNSBL_bl.example.test\r\n\r\nbody\r\n"},
	{"tagged twice keeps one tag",
	 "Subject: ***SPAM*** cheap pills\r\n\r\nbody\r\n", 8.0, "", 1,
	 "***SPAM***",
	 "Subject: ***SPAM*** cheap pills\r\nX-Spam-Flag: YES\r\n"
	 "X-Spam-Score: 8.0\r\n"
	 "X-Spam-Status: Yes, score=8.0 required=5.0 tests=none\r\n\r\n"
	 "body\r\n"},
	{"tagged without a subject", "From: a@x.test\r\n\r\nbody\r\n", 6.0, "X",
	 1, "[SPAM]",
	 "From: a@x.test\r\nSubject: [SPAM]\r\nX-Spam-Flag: YES\r\n"
	 "X-Spam-Score: 6.0\r\n"
	 "X-Spam-Status: Yes, score=6.0 required=5.0 tests=X\r\n\r\nbody\r\n"},
	{"empty tag: subject untouched", "Subject: s\r\n\r\nb\r\n", 6.0, "X", 1,
	 "",
	 "Subject: s\r\nX-Spam-Flag: YES\r\nX-Spam-Score: 6.0\r\n"
	 "X-Spam-Status: Yes, score=6.0 required=5.0 tests=X\r\n\r\nb\r\n"},
	{"long tests folded", "Subject: s\r\n\r\nb\r\n", 1.0,
	 "AAAAAAAAAAAAAAAAAAAA,BBBBBBBBBBBBBBBBBBBB,CCCCCCCCCCCCCCCCCCCC,"
	 "DDDDDDDDDDDDDDDDDDDD",
	 0, "",
	 "Subject: s\r\nX-Spam-Score: 1.0\r\n"
	 "X-Spam-Status: No, score=1.0 required=5.0 "
	 "tests=AAAAAAAAAAAAAAAAAAAA,\r\n\tBBBBBBBBBBBBBBBBBBBB,"
	 "CCCCCCCCCCCCCCCCCCCC,DDDDDDDDDDDDDDDDDDDD\r\n\r\nb\r\n"},
};

static void test_headers_apply(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(rewrite_cases) / sizeof(rewrite_cases[0]);
	     i++) {
		const struct rewrite_case *c = &rewrite_cases[i];
		struct spam_score sc;
		struct buf b;

		print_message("case %s\n", c->name);
		memset(&sc, 0, sizeof(sc));
		spam_score_add(&sc, c->score, c->tests);
		buf_init(&b, 65536);
		assert_int_equal(buf_append_str(&b, c->in), 0);
		assert_int_equal(
			spam_headers_apply(&b, &sc, 5.0, c->tagged, c->tag), 0);
		assert_string_equal(buf_cstr(&b), c->want);
		buf_deinit(&b);
	}
}

static void test_headers_strip(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, 1024);
	assert_int_equal(buf_append_str(&b, "X-Spam-Flag: NO\r\nA: b\r\n"
					    "X-Spam-Report: x\r\n\r\nbody\r\n"),
			 0);
	assert_int_equal(spam_headers_strip(&b), 0);
	assert_string_equal(buf_cstr(&b), "A: b\r\n\r\nbody\r\n");
	buf_deinit(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_reply),
		cmocka_unit_test(test_parse_report),
		cmocka_unit_test(test_request_head),
		cmocka_unit_test(test_parse_addr),
		cmocka_unit_test(test_settings),
		cmocka_unit_test(test_verdict),
		cmocka_unit_test(test_score_add),
		cmocka_unit_test(test_headers_apply),
		cmocka_unit_test(test_headers_strip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
