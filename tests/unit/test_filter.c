/* Unit tests of the content filter: parser, MIME walker, macros, every
 * condition (and its negation) and every action of the evaluator, the
 * PCRE2 limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

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

/* --- every condition, and each negated --- */

static const char m_plain[] =
	"From: <s@remote.test>\r\nTo: <bob@example.test>\r\n"
	"Subject: Hello World\r\nX-Spam-Flag: YES\r\n"
	"Message-ID: <m1@remote.test>\r\n\r\n"
	"plain body with a Needle   inside\r\n";
static const char m_base64[] =
	"Subject: b\r\nMIME-Version: 1.0\r\n"
	"Content-Type: text/plain; charset=utf-8\r\n"
	"Content-Transfer-Encoding: base64\r\n\r\n"
	"VGhlIFNlY3JldCB3b3JkIGlzIHN3b3JkZmlzaC4NCg==\r\n";
static const char m_qp[] = "Subject: q\r\nMIME-Version: 1.0\r\n"
			   "Content-Type: text/plain; charset=utf-8\r\n"
			   "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
			   "un caf=C3=A9 au =\r\nlait\r\n";
static const char m_latin1[] =
	"Subject: l\r\nMIME-Version: 1.0\r\n"
	"Content-Type: text/plain; charset=iso-8859-1\r\n"
	"Content-Transfer-Encoding: 8bit\r\n\r\n"
	"caf\xe9 cr\xe8me\r\n";
static const char m_attach[] =
	"Subject: a\r\nMIME-Version: 1.0\r\n"
	"Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n"
	"--b\r\nContent-Type: text/plain\r\n\r\nsee the report\r\n"
	"--b\r\nContent-Type: application/pdf; name=\"Report.PDF\"\r\n"
	"Content-Disposition: attachment; filename=\"Report.PDF\"\r\n"
	"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n"
	"--b--\r\n";

/* Groups: "senders" holds s@remote.test, "rcpts" bob@example.test;
 * "broken" fails the lookup; any other name is no group at all. */
static int groups(void *ctx, const char *group, const char *address)
{
	(void)ctx;
	if (strcmp(group, "broken") == 0)
		return -1;
	return (strcmp(group, "senders") == 0 &&
		strcmp(address, "s@remote.test") == 0) ||
	       (strcmp(group, "rcpts") == 0 &&
		strcmp(address, "bob@example.test") == 0);
}

struct facts_opt {
	const char *auth, *ip;
	int scored;
	double score;
};

static void facts(struct filter_facts *f, const char *msg,
		  const struct facts_opt *o)
{
	memset(f, 0, sizeof(*f));
	f->sender = "s@remote.test";
	f->auth = o != NULL && o->auth != NULL ? o->auth : "";
	f->client_ip = o != NULL && o->ip != NULL ? o->ip : "192.0.2.7";
	f->msg = msg;
	f->len = strlen(msg);
	f->message_id = "<m1@remote.test>";
	f->primary_domain = "example.test";
	f->spam_scored = o != NULL && o->scored;
	f->spam_score = o != NULL ? o->score : 0;
	f->now = 1700000000;
	f->is_member = groups;
}

/* Compiles rules (failing the test on an error). */
static struct filter_set *compile(const char *text)
{
	struct filter_rules l = {0};
	struct filter_set *s;
	char err[300];

	if (filter_parse(text, strlen(text), &l, err, sizeof(err)) < 0)
		fail_msg("parse: %s\n%s", err, text);
	s = filter_set_new(&l, err, sizeof(err));
	if (s == NULL)
		fail_msg("compile: %s", err);
	return s;
}

/* Whether "if [not] cond" fires for bob@example.test: 1, 0, or -1 when
 * the evaluation failed. */
static int fires(const char *cond, int negate, const char *msg,
		 const struct facts_opt *o)
{
	char text[1024];
	static const struct filter_rcpt bob = {"bob@example.test", 1};
	struct filter_set *s;
	struct filter_result res;
	struct filter_facts f;
	int r;

	snprintf(text, sizeof(text),
		 "rule \"t\"\n\tif %s%s\n\tthen add-header \"X-Hit\" "
		 "\"1\"\nend\n",
		 negate ? "not " : "", cond);
	s = compile(text);
	facts(&f, msg, o);
	if (filter_eval(s, &f, &bob, 1, &res) < 0)
		r = -1;
	else
		r = res.out[0].edits.len > 0;
	filter_result_deinit(&res);
	filter_set_unref(s);
	return r;
}

static void test_conditions(void **state)
{
	static const struct facts_opt authed = {.auth = "s@remote.test"};
	static const struct facts_opt v6 = {.ip = "2001:db8::5"};
	static const struct facts_opt spam6 = {.scored = 1, .score = 6.0};
	static const struct facts_opt spam5 = {.scored = 1, .score = 5.0};
	static const struct {
		const char *name, *cond, *msg;
		const struct facts_opt *o;
		int want;
	} cases[] = {
		{"all messages", "all-messages", m_plain, NULL, 1},
		{"size over, small message", "size > 1 KB", m_plain, NULL, 0},
		{"size over, in bytes", "size > 100 B", m_plain, NULL, 1},
		{"size under", "size < 1 KB", m_plain, NULL, 1},
		{"size under, MB", "size < 1 MB", m_plain, NULL, 1},
		{"size under, too small", "size < 10 B", m_plain, NULL, 0},
		{"sender in group", "sender in-group \"senders\"", m_plain,
		 NULL, 1},
		{"sender not in group", "sender in-group \"rcpts\"", m_plain,
		 NULL, 0},
		{"group that does not exist", "sender in-group \"later\"",
		 m_plain, NULL, 0},
		{"recipient in group", "recipient in-group \"rcpts\"", m_plain,
		 NULL, 1},
		{"recipient not in group", "recipient in-group \"senders\"",
		 m_plain, NULL, 0},
		{"sender wildcard", "sender is \"*@REMOTE.test\"", m_plain,
		 NULL, 1},
		{"sender wildcard ?", "sender is \"?@remote.*\"", m_plain, NULL,
		 1},
		{"sender wildcard, no", "sender is \"x*@remote.test\"", m_plain,
		 NULL, 0},
		{"sender domain", "sender-domain is \"*.test\"", m_plain, NULL,
		 1},
		{"sender domain, no", "sender-domain is \"example.test\"",
		 m_plain, NULL, 0},
		{"recipient wildcard", "recipient is \"bob@*\"", m_plain, NULL,
		 1},
		{"recipient wildcard, no", "recipient is \"alice@*\"", m_plain,
		 NULL, 0},
		{"recipient domain", "recipient-domain is \"EXAMPLE.test\"",
		 m_plain, NULL, 1},
		{"recipient domain, no", "recipient-domain is \"remote.*\"",
		 m_plain, NULL, 0},
		{"header contains, any case",
		 "header \"subject\" contains \"hello world\"", m_plain, NULL,
		 1},
		{"header contains, case-sensitive",
		 "header \"Subject\" contains \"hello\" case-sensitive",
		 m_plain, NULL, 0},
		{"header contains, other field",
		 "header \"Subject\" contains \"YES\"", m_plain, NULL, 0},
		{"header contains, any field", "header \"*\" contains \"yes\"",
		 m_plain, NULL, 1},
		{"header matches",
		 "header \"Subject\" matches \"^hel+o\\\\s+w\"", m_plain, NULL,
		 1},
		{"header matches, no", "header \"Subject\" matches \"^World\"",
		 m_plain, NULL, 0},
		{"header matches, case-sensitive",
		 "header \"Subject\" matches \"^hello\" case-sensitive",
		 m_plain, NULL, 0},
		{"body contains", "body contains \"NEEDLE\"", m_plain, NULL, 1},
		{"body contains, no", "body contains \"haystack\"", m_plain,
		 NULL, 0},
		{"body contains, not in the header",
		 "body contains \"Hello World\"", m_plain, NULL, 0},
		{"body matches", "body matches \"needle\\\\s+inside\"", m_plain,
		 NULL, 1},
		{"body matches, no", "body matches \"^inside\"", m_plain, NULL,
		 0},
		{"base64 body", "body contains \"secret word is swordfish\"",
		 m_base64, NULL, 1},
		{"base64 body, not the encoded text",
		 "body contains \"VGhlIFNlY3JldC\"", m_base64, NULL, 0},
		{"base64 body, regex", "body matches \"sword\\\\w+\\\\.\"",
		 m_base64, NULL, 1},
		{"quoted-printable body",
		 "body contains \"caf\xc3\xa9 au lait\"", m_qp, NULL, 1},
		{"Latin-1 body, as UTF-8",
		 "body contains \"caf\xc3\xa9 cr\xc3\xa8me\"", m_latin1, NULL,
		 1},
		{"Latin-1 body, regex", "body matches \"caf. cr.me\"", m_latin1,
		 NULL, 1},
		{"has attachment", "has-attachment", m_attach, NULL, 1},
		{"has attachment, no", "has-attachment", m_plain, NULL, 0},
		{"file name wildcard", "attachment-name is \"*.pdf\"", m_attach,
		 NULL, 1},
		{"file name wildcard ?", "attachment-name is \"Rep?rt.*\"",
		 m_attach, NULL, 1},
		{"file name wildcard, no", "attachment-name is \"*.exe\"",
		 m_attach, NULL, 0},
		{"attachment type", "attachment-type is \"application/*\"",
		 m_attach, NULL, 1},
		{"attachment type, no", "attachment-type is \"image/*\"",
		 m_attach, NULL, 0},
		{"attachment type, the text part is none",
		 "attachment-type is \"text/*\"", m_attach, NULL, 0},
		{"authenticated", "authenticated", m_plain, &authed, 1},
		{"not authenticated", "authenticated", m_plain, NULL, 0},
		{"client IP in CIDR",
		 "client-ip in \"10.0.0.0/8, 192.0.2.0/24\"", m_plain, NULL, 1},
		{"client IPv6 in CIDR", "client-ip in \"2001:db8::/32\"",
		 m_plain, &v6, 1},
		{"client IP not in CIDR", "client-ip in \"10.0.0.0/8, ::1\"",
		 m_plain, NULL, 0},
		{"spam score above", "spam-score > 5.5", m_plain, &spam6, 1},
		{"spam score below", "spam-score > 5.5", m_plain, &spam5, 0},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		int got = fires(cases[i].cond, 0, cases[i].msg, cases[i].o);
		int neg = fires(cases[i].cond, 1, cases[i].msg, cases[i].o);

		if (got != cases[i].want || neg != !cases[i].want)
			fail_msg("%s: got %d, negated %d, want %d",
				 cases[i].name, got, neg, cases[i].want);
	}
	/* Not scored (no spam stage): the condition is false, and so its
	 * negation true. */
	assert_int_equal(fires("spam-score > 0", 0, m_plain, NULL), 0);
	assert_int_equal(fires("spam-score > 0", 1, m_plain, NULL), 1);
	/* A group lookup that fails fails the evaluation (the message is
	 * held), whichever way the condition is written. */
	assert_int_equal(fires("sender in-group \"broken\"", 0, m_plain, NULL),
			 -1);
	assert_int_equal(fires("sender in-group \"broken\"", 1, m_plain, NULL),
			 -1);
}

/* NUL bytes pass DATA, and an encoded word can decode to one: the text
 * and header values the rules read are copied whole, past a NUL (they
 * were strndup()ed and then lowered to their full length: a heap
 * overflow in the filter's worker). */
static void test_nul_bytes(void **state)
{
	static const char msg[] =
		"Subject: =?utf-8?B?QQBCIE5FRURMRQ==?=\r\n\r\n"
		"a\0b needle after the NUL\r\n";
	static const struct filter_rcpt bob = {"bob@example.test", 1};
	static const char *const conds[] = {
		"body contains \"NEEDLE AFTER\"",
		"header \"Subject\" contains \"b needle\"",
	};

	for (size_t i = 0; i < sizeof(conds) / sizeof(*conds); i++) {
		char text[256];
		struct filter_set *set;
		struct filter_result res;
		struct filter_facts f;

		snprintf(text, sizeof(text),
			 "rule \"t\"\n\tif %s\n\tthen add-header \"X-Hit\" "
			 "\"1\"\nend\n",
			 conds[i]);
		set = compile(text);
		facts(&f, msg, NULL);
		f.len = sizeof(msg) - 1;
		assert_int_equal(filter_eval(set, &f, &bob, 1, &res), 0);
		if (res.out[0].edits.len == 0)
			fail_msg("%s did not fire", conds[i]);
		filter_result_deinit(&res);
		filter_set_unref(set);
	}
	(void)state;
}

/* Every condition kind is written back as itself (client-ip was read as
 * all-messages once). */
static void test_conditions_round_trip(void **state)
{
	static const char text[] =
		"rule \"r\"\n\tenabled yes\n\tscope all\n\tmatch any\n"
		"\tif client-ip in \"10.0.0.0/8, ::1\"\n"
		"\tif not spam-score > 5.5\n\tif not authenticated\n"
		"\tif attachment-type is \"image/*\"\n"
		"\tif header \"Subject\" contains \"x\" case-sensitive\n"
		"\tthen stop\nend\n";
	struct filter_rules l = {0};
	struct buf out;
	char err[300];

	assert_int_equal(filter_parse(text, strlen(text), &l, err, sizeof(err)),
			 1);
	assert_int_equal(l.v[0].conds[0].kind, FILTER_COND_CLIENT_IP);
	buf_init(&out, 65536);
	assert_int_equal(filter_rule_write(&l.v[0], &out), 0);
	assert_string_equal(buf_cstr(&out), text);
	buf_deinit(&out);
	filter_rules_clear(&l);
}

static void test_match_any_all(void **state)
{
	/* all: both must hold; any: one is enough. */
	assert_int_equal(
		fires("all-messages\n\tif size > 1 MB", 0, m_plain, NULL), 0);
	{
		static const struct filter_rcpt bob = {"bob@example.test", 1};
		struct filter_set *s =
			compile("rule \"t\"\n\tmatch any\n\tif size > 1 MB\n"
				"\tif all-messages\n\tthen stop\nend\n");
		struct filter_result res;
		struct filter_facts f;

		facts(&f, m_plain, NULL);
		assert_int_equal(filter_eval(s, &f, &bob, 1, &res), 0);
		assert_int_equal(res.nfired, 1);
		filter_result_deinit(&res);
		filter_set_unref(s);
	}
}

/* --- every action --- */

/* Runs rules for the recipients; the result in *res (deinit after). */
static void run(const char *rules, const char *msg, const char *sender,
		const struct filter_rcpt *rcpts, size_t n,
		struct filter_result *res)
{
	struct filter_set *s = compile(rules);
	struct filter_facts f;

	facts(&f, msg, NULL);
	f.sender = sender;
	assert_int_equal(filter_eval(s, &f, rcpts, n, res), 0);
	filter_set_unref(s);
}

static const struct filter_rcpt bob_alice[] = {
	{"bob@example.test", 1},
	{"alice@example.test", 1},
};

static void test_action_delete_reject(void **state)
{
	struct filter_result res;

	/* delete: only the recipients the rule matched; no note, so no
	 * refusal either. */
	run("rule \"d\"\n\tif recipient is \"bob@*\"\n\tthen delete\nend\n"
	    "rule \"after\"\n\tif all-messages\n"
	    "\tthen add-header \"X-After\" \"1\"\nend\n",
	    m_plain, "s@remote.test", bob_alice, 2, &res);
	assert_int_equal(res.reject, 0);
	assert_int_equal(res.out[0].deleted, 1);
	assert_int_equal(res.out[0].edits.len, 0); /* no rule after it */
	assert_int_equal(res.out[1].deleted, 0);
	assert_non_null(strstr(buf_cstr(&res.out[1].edits), "X-After"));
	filter_result_deinit(&res);
	/* delete for all with a note to the sender: refused (no size
	 * condition: 550 5.7.1). */
	run("rule \"d\"\n\tif all-messages\n\tthen delete\n"
	    "\tthen note to \"$SENDER$\"\nend\n",
	    m_plain, "s@remote.test", bob_alice, 2, &res);
	assert_int_equal(res.reject, 1);
	assert_non_null(strstr(res.reply, "550 5.7.1"));
	assert_non_null(strstr(res.reply, "\"d\""));
	assert_int_equal(res.nnotes, 0);
	filter_result_deinit(&res);
	/* reject: the rule's own code and text, for the whole message. */
	run("rule \"r\"\n\tif recipient is \"alice@*\"\n"
	    "\tthen reject 451 \"4.7.0 Try later\"\nend\n",
	    m_plain, "s@remote.test", bob_alice, 2, &res);
	assert_int_equal(res.reject, 1);
	assert_string_equal(res.reply, "451 4.7.0 Try later");
	filter_result_deinit(&res);
}

static void test_action_note(void **state)
{
	struct filter_result res;
	static const char rules[] =
		"rule \"n\"\n\tif all-messages\n"
		"\tthen note to \"$SENDER$, admin@example.test\"\n"
		"\t\tsubject \"Re: $SUBJECT$ for $RECIPIENT$\"\n"
		"\t\ttext \"$FILTERRULENAME$: $MESSAGESIZE$ bytes\\n\" "
		"attach-original\nend\n";

	/* Once per message and rule, with the first recipient's macros. */
	run(rules, m_plain, "s@remote.test", bob_alice, 2, &res);
	assert_int_equal(res.reject, 0);
	assert_int_equal(res.nnotes, 1);
	assert_string_equal(res.notes[0].to,
			    "s@remote.test, admin@example.test");
	assert_string_equal(res.notes[0].from, "postmaster@example.test");
	assert_string_equal(res.notes[0].subject,
			    "Re: Hello World for bob@example.test");
	{
		char want[64];

		snprintf(want, sizeof(want), "n: %zu bytes\n", strlen(m_plain));
		assert_string_equal(res.notes[0].text, want);
	}
	assert_int_equal(res.notes[0].attach, 1);
	assert_int_equal(res.nfired, 1);
	assert_int_equal(res.fired[0].nrcpt, 2);
	assert_string_equal(res.fired[0].actions, "note");
	filter_result_deinit(&res);
	/* Never to the null sender. */
	run("rule \"n\"\n\tif all-messages\n\tthen note to \"$SENDER$\" "
	    "from \"filter@example.test\"\nend\n",
	    m_plain, "", bob_alice, 1, &res);
	assert_int_equal(res.nnotes, 0);
	filter_result_deinit(&res);
	run("rule \"n\"\n\tif all-messages\n\tthen note to \"$SENDER$\" "
	    "from \"filter@example.test\"\nend\n",
	    m_plain, "s@remote.test", bob_alice, 1, &res);
	assert_int_equal(res.nnotes, 1);
	assert_string_equal(res.notes[0].from, "filter@example.test");
	assert_int_equal(res.notes[0].attach, 0);
	filter_result_deinit(&res);
}

static void test_action_headers(void **state)
{
	struct filter_result res;
	struct buf out;
	const char *t;

	run("rule \"h\"\n\tif all-messages\n"
	    "\tthen add-header \"X-Filtered\" \"by $FILTERRULENAME$ for "
	    "$RECIPIENTMAILBOX$\"\n"
	    "\tthen remove-header \"x-spam-flag\"\nend\n",
	    m_plain, "s@remote.test", bob_alice, 1, &res);
	buf_init(&out, 65536);
	assert_int_equal(filter_outcome_apply(&res.out[0], m_plain,
					      strlen(m_plain), &out),
			 0);
	t = buf_cstr(&out);
	/* Added on top of the header section; every X-Spam-Flag gone; the
	 * body untouched. */
	assert_true(strncmp(t, "X-Filtered: by h for bob\r\n", 26) == 0);
	assert_null(strstr(t, "X-Spam-Flag"));
	assert_non_null(strstr(t, "Subject: Hello World\r\n"));
	assert_non_null(strstr(t, "\r\n\r\nplain body with a Needle"));
	buf_deinit(&out);
	filter_result_deinit(&res);
}

static void test_action_copy_redirect_queues(void **state)
{
	struct filter_result res;

	run("rule \"c\"\n\tif recipient is \"bob@*\"\n"
	    "\tthen copy-to \"a@example.test, b@example.test\"\nend\n"
	    "rule \"r\"\n\tif recipient is \"alice@*\"\n"
	    "\tthen redirect-to \"c@example.test\"\nend\n",
	    m_plain, "s@remote.test", bob_alice, 2, &res);
	assert_string_equal(buf_cstr(&res.out[0].copies),
			    "a@example.test, b@example.test");
	assert_int_equal(res.out[0].redirect.len, 0);
	assert_string_equal(buf_cstr(&res.out[1].redirect), "c@example.test");
	assert_int_equal(res.out[1].copies.len, 0);
	/* The same message into the same queue: one spooled copy serves
	 * both (each recipient's copies and redirect are added to it). */
	assert_true(filter_outcome_same(&res.out[0], &res.out[1]));
	filter_result_deinit(&res);

	/* hold, then bad: bad wins and names its rule. */
	run("rule \"h\"\n\tif all-messages\n\tthen move-to hold\nend\n"
	    "rule \"b\"\n\tif recipient is \"alice@*\"\n"
	    "\tthen move-to bad\nend\n",
	    m_plain, "s@remote.test", bob_alice, 2, &res);
	assert_int_equal(res.out[0].hold, 1);
	assert_int_equal(res.out[0].bad, 0);
	assert_string_equal(res.out[0].reason, "content filter rule \"h\"");
	assert_int_equal(res.out[1].bad, 1);
	assert_string_equal(res.out[1].reason, "content filter rule \"b\"");
	assert_false(filter_outcome_same(&res.out[0], &res.out[1]));
	filter_result_deinit(&res);

	/* The same outcome for both: one copy can serve them. */
	run("rule \"h\"\n\tif all-messages\n\tthen move-to hold\n"
	    "\tthen add-header \"X-H\" \"1\"\nend\n",
	    m_plain, "s@remote.test", bob_alice, 2, &res);
	assert_true(filter_outcome_same(&res.out[0], &res.out[1]));
	filter_result_deinit(&res);
}

static void test_action_strip(void **state)
{
	struct filter_result res;
	struct buf out;

	run("rule \"s\"\n\tif attachment-name is \"*.pdf\"\n"
	    "\tthen strip-attachments\nend\n",
	    m_attach, "s@remote.test", bob_alice, 1, &res);
	assert_int_equal(res.out[0].strip, 1);
	buf_init(&out, 65536);
	assert_int_equal(filter_outcome_apply(&res.out[0], m_attach,
					      strlen(m_attach), &out),
			 0);
	assert_null(strstr(buf_cstr(&out), "JVBERi0xLjQK"));
	assert_non_null(strstr(buf_cstr(&out), "Report.PDF"));
	assert_non_null(strstr(buf_cstr(&out), "see the report"));
	buf_deinit(&out);
	filter_result_deinit(&res);
}

static void test_action_skip_stop(void **state)
{
	struct filter_result res;

	/* skip 2 passes over the next two rules, the disabled one among
	 * them; stop ends the list after its own actions. */
	run("rule \"1\"\n\tif all-messages\n\tthen skip 2\nend\n"
	    "rule \"2\"\n\tenabled no\n\tif all-messages\n"
	    "\tthen add-header \"X-2\" \"x\"\nend\n"
	    "rule \"3\"\n\tif all-messages\n"
	    "\tthen add-header \"X-3\" \"x\"\nend\n"
	    "rule \"4\"\n\tif all-messages\n"
	    "\tthen add-header \"X-4\" \"x\"\n\tthen stop\nend\n"
	    "rule \"5\"\n\tif all-messages\n"
	    "\tthen add-header \"X-5\" \"x\"\nend\n",
	    m_plain, "s@remote.test", bob_alice, 1, &res);
	assert_string_equal(buf_cstr(&res.out[0].edits), "+X-4: x\r\n");
	assert_string_equal(buf_cstr(&res.out[0].fired), "0,3");
	filter_result_deinit(&res);
	/* A skip only counts when its rule fires. */
	run("rule \"1\"\n\tif size > 1 MB\n\tthen skip 1\nend\n"
	    "rule \"2\"\n\tif all-messages\n"
	    "\tthen add-header \"X-2\" \"x\"\nend\n",
	    m_plain, "s@remote.test", bob_alice, 1, &res);
	assert_string_equal(buf_cstr(&res.out[0].edits), "+X-2: x\r\n");
	filter_result_deinit(&res);
}

/* A hostile regular expression on a hostile message stops at the PCRE2
 * match limit: the evaluation fails (the message is held) at once instead
 * of backtracking for ages. */
/* A multipart message whose boundary is n bytes of 'L' (quoted), with
 * a text part and an evil.exe attachment; pad adds a parameter of pad
 * bytes after the boundary, continuation splits the boundary into RFC 2231
 * pieces of that many bytes (0: one plain value). */
static void long_boundary_msg(struct buf *b, size_t n, size_t pad,
			      size_t continuation)
{
	char bd[10000];

	assert_true(n < sizeof(bd));
	memset(bd, 'L', n);
	bd[n] = '\0';
	buf_init(b, 1024 * 1024);
	assert_int_equal(buf_append_str(b, "Subject: a\r\nMIME-Version: 1.0\r\n"
					   "Content-Type: multipart/mixed;"),
			 0);
	if (continuation == 0) {
		assert_int_equal(buf_printf(b, " boundary=\"%s\"", bd), 0);
	} else {
		for (size_t i = 0, k = 0; i < n; i += continuation, k++)
			assert_int_equal(
				buf_printf(b, "\r\n boundary*%zu=\"%.*s\";", k,
					   (int)continuation, bd + i),
				0);
	}
	for (size_t i = 0; i < pad; i++)
		assert_int_equal(buf_append_str(b, i == 0 ? ";\r\n x=" : "x"),
				 0);
	assert_int_equal(
		buf_printf(b,
			   "\r\n\r\n--%s\r\nContent-Type: text/plain\r\n\r\n"
			   "see the file\r\n--%s\r\n"
			   "Content-Type: application/x-msdownload; "
			   "name=evil.exe\r\n"
			   "Content-Disposition: attachment\r\n\r\nMZ\r\n"
			   "--%s--\r\n",
			   bd, bd, bd),
		0);
}

/* RFC 2046 5.1.1 allows boundaries of 70 characters, but mail clients
 * accept longer ones and show the parts: the walker must find them too,
 * or hold the message, never see one opaque part. */
static void test_mime_long_boundary(void **state)
{
	static const struct {
		const char *name;
		size_t n, pad, continuation;
		int want_parts; /* 0: held (limit_hit) */
	} cases[] = {
		{"70, the RFC's limit", 70, 0, 0, 2},
		{"255", 255, 0, 0, 2},
		{"256", 256, 0, 0, 2},
		{"300", 300, 0, 0, 2},
		{"1023", 1023, 0, 0, 2},
		{"1024", 1024, 0, 0, 2},
		{"5000", 5000, 0, 0, 2},
		{"300 in RFC 2231 pieces of 100", 300, 0, 100, 2},
		{"3000 in RFC 2231 pieces of 1000", 3000, 0, 1000, 2},
		{"an RFC 2231 piece too long to keep", 3000, 0, 1500, 0},
		{"300 in a field past 8 KB", 300, 9000, 0, 0},
		{"9000, the field past 8 KB", 9000, 0, 0, 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		struct filter_mime m;
		struct buf b;

		long_boundary_msg(&b, cases[i].n, cases[i].pad,
				  cases[i].continuation);
		assert_int_equal(filter_mime_parse(b.data, b.len, &m), 0);
		if (cases[i].want_parts == 0) {
			if (!m.limit_hit)
				fail_msg("%s: not held", cases[i].name);
			assert_non_null(strstr(m.limit_why, "boundary"));
		} else {
			if (m.limit_hit || m.nparts != 2)
				fail_msg("%s: %zu parts, limit %d",
					 cases[i].name, m.nparts, m.limit_hit);
			assert_string_equal(buf_cstr(&m.text), "see the file");
			assert_int_equal(m.parts[1].attachment, 1);
			assert_string_equal(m.parts[1].filename, "evil.exe");
		}
		/* The rules see it: they fire, or the message is held. */
		assert_int_equal(fires("attachment-name is \"*.exe\"", 0,
				       buf_cstr(&b), NULL),
				 cases[i].want_parts ? 1 : -1);
		assert_int_equal(fires("body contains \"the file\"", 0,
				       buf_cstr(&b), NULL),
				 cases[i].want_parts ? 1 : -1);
		filter_mime_deinit(&m);
		buf_deinit(&b);
	}
}

static void test_regex_limit(void **state)
{
	char msg[256];
	static const struct filter_rcpt bob = {"bob@example.test", 1};
	struct filter_set *s;
	struct filter_result res;
	struct filter_facts f;
	struct timespec t0, t1;

	snprintf(msg, sizeof(msg), "Subject: %s!\r\n\r\n%s!\r\n",
		 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	for (int body = 0; body < 2; body++) {
		s = compile(body ? "rule \"evil\"\n\tif body matches "
				   "\"^(a|aa)+$\"\n\tthen delete\nend\n"
				 : "rule \"evil\"\n\tif header \"Subject\" "
				   "matches \"^(a+)+$\"\n\tthen delete\nend\n");
		facts(&f, msg, NULL);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		assert_int_equal(filter_eval(s, &f, &bob, 1, &res), -1);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		assert_non_null(strstr(res.error, "rule \"evil\""));
		assert_non_null(strstr(res.error, "limit"));
		/* 2^40 steps without the limit; well under a few seconds
		 * with it, sanitizers included. */
		assert_true(t1.tv_sec - t0.tv_sec < 5);
		filter_result_deinit(&res);
		filter_set_unref(s);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_mime),
		cmocka_unit_test(test_mime_long_boundary),
		cmocka_unit_test(test_macros_hostile),
		cmocka_unit_test(test_eval_recipe),
		cmocka_unit_test(test_wildcard),
		cmocka_unit_test(test_conditions),
		cmocka_unit_test(test_nul_bytes),
		cmocka_unit_test(test_conditions_round_trip),
		cmocka_unit_test(test_match_any_all),
		cmocka_unit_test(test_action_delete_reject),
		cmocka_unit_test(test_action_note),
		cmocka_unit_test(test_action_headers),
		cmocka_unit_test(test_action_copy_redirect_queues),
		cmocka_unit_test(test_action_strip),
		cmocka_unit_test(test_action_skip_stop),
		cmocka_unit_test(test_regex_limit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
