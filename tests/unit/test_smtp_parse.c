/* Unit tests of smtp/smtp_parse: command lines, MAIL, RCPT, HELO. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "smtp/smtp_parse.h"

#define BAD_CHAR "501 5.5.2 Syntax error: bad character in command"
#define MAIL_SYNTAX "501 5.5.4 Syntax: MAIL FROM:<address>"
#define RCPT_SYNTAX "501 5.5.4 Syntax: RCPT TO:<address>"
#define BAD_SENDER "501 5.1.7 Bad sender address syntax"
#define BAD_RCPT "501 5.1.3 Bad recipient address syntax"
#define PARAM_SYNTAX "501 5.5.4 Syntax error in parameters"

struct command_case {
	const char *name;
	const char *line;
	size_t len; /* 0: strlen(line) */
	int want;
	enum smtp_verb verb;
	const char *args; /* NULL: none */
};

static const struct command_case command_cases[] = {
	{"helo", "HELO client.example", 0, 1, SMTP_CMD_HELO, "client.example"},
	{"ehlo lower", "ehlo client.example", 0, 1, SMTP_CMD_EHLO,
	 "client.example"},
	{"mail", "MAIL FROM:<a@b.example>", 0, 1, SMTP_CMD_MAIL,
	 "FROM:<a@b.example>"},
	{"mail mixed case", "mAiL from:<>", 0, 1, SMTP_CMD_MAIL, "from:<>"},
	{"rcpt", "RCPT TO:<a@b.example>", 0, 1, SMTP_CMD_RCPT,
	 "TO:<a@b.example>"},
	{"data", "DATA", 0, 1, SMTP_CMD_DATA, NULL},
	{"data trailing space", "DATA ", 0, 1, SMTP_CMD_DATA, NULL},
	{"data with args", "DATA x", 0, 1, SMTP_CMD_DATA, "x"},
	{"bdat", "BDAT 100 LAST", 0, 1, SMTP_CMD_BDAT, "100 LAST"},
	{"rset", "RSET", 0, 1, SMTP_CMD_RSET, NULL},
	{"noop", "NOOP", 0, 1, SMTP_CMD_NOOP, NULL},
	{"noop with text", "noop hello there", 0, 1, SMTP_CMD_NOOP,
	 "hello there"},
	{"quit", "QUIT", 0, 1, SMTP_CMD_QUIT, NULL},
	{"vrfy", "VRFY user", 0, 1, SMTP_CMD_VRFY, "user"},
	{"expn", "EXPN list", 0, 1, SMTP_CMD_EXPN, "list"},
	{"help", "HELP", 0, 1, SMTP_CMD_HELP, NULL},
	{"starttls", "StartTLS", 0, 1, SMTP_CMD_STARTTLS, NULL},
	{"auth", "AUTH PLAIN AGEAYg==", 0, 1, SMTP_CMD_AUTH, "PLAIN AGEAYg=="},
	{"two spaces: args keep one", "MAIL  FROM:<>", 0, 1, SMTP_CMD_MAIL,
	 " FROM:<>"},
	{"verb glued to args", "MAILFROM:<>", 0, 0, SMTP_CMD_UNKNOWN, NULL},
	{"verb too long", "DATAX", 0, 0, SMTP_CMD_UNKNOWN, NULL},
	{"verb too short", "DAT", 0, 0, SMTP_CMD_UNKNOWN, NULL},
	{"leading space", " DATA", 0, 0, SMTP_CMD_UNKNOWN, "DATA"},
	{"empty", "", 0, 0, SMTP_CMD_UNKNOWN, NULL},
	{"unknown with args", "XYZZY plugh", 0, 0, SMTP_CMD_UNKNOWN, "plugh"},
	{"tab is not a separator", "MAIL\tFROM:<>", 0, 0, SMTP_CMD_UNKNOWN,
	 NULL},
	{"NUL in verb", "DATA\0", 5, 0, SMTP_CMD_UNKNOWN, NULL},
	{"8-bit verb", "D\xc3\x81TA", 0, 0, SMTP_CMD_UNKNOWN, NULL},
};

static void test_command(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(command_cases) / sizeof(command_cases[0]);
	     i++) {
		const struct command_case *c = &command_cases[i];
		size_t len = c->len != 0 ? c->len : strlen(c->line);
		struct smtp_cmd cmd;
		int got = smtp_parse_command(c->line, len, &cmd);

		if (got != c->want || cmd.verb != c->verb)
			fail_msg("%s: got %d verb %d, want %d verb %d", c->name,
				 got, cmd.verb, c->want, c->verb);
		if (c->args == NULL) {
			if (cmd.args != NULL || cmd.args_len != 0)
				fail_msg("%s: args not NULL", c->name);
			continue;
		}
		if (cmd.args == NULL || cmd.args_len != strlen(c->args) ||
		    memcmp(cmd.args, c->args, cmd.args_len) != 0)
			fail_msg("%s: bad args", c->name);
		/* args point into the line. */
		assert_true(cmd.args > c->line && cmd.args < c->line + len);
	}
}

struct mail_case {
	const char *name;
	const char *args;
	size_t len;	   /* 0: strlen(args) */
	const char *reply; /* NULL: accepted */
	const char *from;
	int64_t size;
	enum smtp_body body;
	int auth_present;
	const char *auth;
};

static const struct mail_case mail_cases[] = {
	{"plain", "FROM:<a@b.example>", 0, NULL, "a@b.example", -1,
	 SMTP_BODY_NONE, 0, ""},
	{"lower keyword", "from:<a@B.example>", 0, NULL, "a@b.example", -1,
	 SMTP_BODY_NONE, 0, ""},
	{"one space after colon", "FROM: <a@b.example>", 0, NULL, "a@b.example",
	 -1, SMTP_BODY_NONE, 0, ""},
	{"null sender", "FROM:<>", 0, NULL, "", -1, SMTP_BODY_NONE, 0, ""},
	{"source route", "FROM:<@relay.example:a@b.example>", 0, NULL,
	 "a@b.example", -1, SMTP_BODY_NONE, 0, ""},
	{"two spaces after colon", "FROM:  <a@b.example>", 0, MAIL_SYNTAX, NULL,
	 0, SMTP_BODY_NONE, 0, NULL},
	{"space before colon", "FROM :<a@b.example>", 0, MAIL_SYNTAX, NULL, 0,
	 SMTP_BODY_NONE, 0, NULL},
	{"no brackets", "FROM:a@b.example", 0, MAIL_SYNTAX, NULL, 0,
	 SMTP_BODY_NONE, 0, NULL},
	{"no keyword", "<a@b.example>", 0, MAIL_SYNTAX, NULL, 0, SMTP_BODY_NONE,
	 0, NULL},
	{"keyword only", "FROM:", 0, MAIL_SYNTAX, NULL, 0, SMTP_BODY_NONE, 0,
	 NULL},
	{"wrong keyword", "TO:<a@b.example>", 0, MAIL_SYNTAX, NULL, 0,
	 SMTP_BODY_NONE, 0, NULL},
	{"empty", "", 0, MAIL_SYNTAX, NULL, 0, SMTP_BODY_NONE, 0, NULL},
	{"unterminated path", "FROM:<a@b.example", 0, BAD_SENDER, NULL, 0,
	 SMTP_BODY_NONE, 0, NULL},
	{"bad domain", "FROM:<a@b..example>", 0, BAD_SENDER, NULL, 0,
	 SMTP_BODY_NONE, 0, NULL},
	{"no domain", "FROM:<a>", 0, BAD_SENDER, NULL, 0, SMTP_BODY_NONE, 0,
	 NULL},
	{"8-bit address", "FROM:<\xc3\xa9@b.example>", 0, BAD_SENDER, NULL, 0,
	 SMTP_BODY_NONE, 0, NULL},
	{"junk after path", "FROM:<a@b.example>x", 0, PARAM_SYNTAX, NULL, 0,
	 SMTP_BODY_NONE, 0, NULL},
	{"size", "FROM:<a@b.example> SIZE=1000", 0, NULL, "a@b.example", 1000,
	 SMTP_BODY_NONE, 0, ""},
	{"size zero lower", "FROM:<a@b.example> size=0", 0, NULL, "a@b.example",
	 0, SMTP_BODY_NONE, 0, ""},
	{"size 20 digits saturates", "FROM:<> SIZE=99999999999999999999", 0,
	 NULL, "", INT64_MAX, SMTP_BODY_NONE, 0, ""},
	{"size max", "FROM:<> SIZE=9223372036854775807", 0, NULL, "", INT64_MAX,
	 SMTP_BODY_NONE, 0, ""},
	{"size 21 digits", "FROM:<> SIZE=100000000000000000000", 0,
	 "501 5.5.4 Bad parameter SIZE=100000000000000000000", NULL, 0,
	 SMTP_BODY_NONE, 0, NULL},
	{"size not a number", "FROM:<> SIZE=x", 0,
	 "501 5.5.4 Bad parameter SIZE=x", NULL, 0, SMTP_BODY_NONE, 0, NULL},
	{"size negative", "FROM:<> SIZE=-1", 0,
	 "501 5.5.4 Bad parameter SIZE=-1", NULL, 0, SMTP_BODY_NONE, 0, NULL},
	{"size no value", "FROM:<> SIZE", 0, "501 5.5.4 Bad parameter SIZE",
	 NULL, 0, SMTP_BODY_NONE, 0, NULL},
	{"size empty value", "FROM:<> SIZE=", 0, PARAM_SYNTAX, NULL, 0,
	 SMTP_BODY_NONE, 0, NULL},
	{"size twice", "FROM:<> SIZE=1 SIZE=2", 0,
	 "501 5.5.4 Duplicate parameter SIZE", NULL, 0, SMTP_BODY_NONE, 0,
	 NULL},
	{"body 8bitmime", "FROM:<> BODY=8BITMIME", 0, NULL, "", -1,
	 SMTP_BODY_8BITMIME, 0, ""},
	{"body 7bit lower", "FROM:<> body=7bit", 0, NULL, "", -1,
	 SMTP_BODY_7BIT, 0, ""},
	{"body binarymime", "FROM:<> BODY=BINARYMIME", 0,
	 "555 5.5.4 Unsupported parameter BODY=BINARYMIME", NULL, 0,
	 SMTP_BODY_NONE, 0, NULL},
	{"body no value", "FROM:<> BODY", 0, "501 5.5.4 Bad parameter BODY",
	 NULL, 0, SMTP_BODY_NONE, 0, NULL},
	{"body twice", "FROM:<> BODY=7BIT body=8BITMIME", 0,
	 "501 5.5.4 Duplicate parameter body", NULL, 0, SMTP_BODY_NONE, 0,
	 NULL},
	{"auth null", "FROM:<a@b.example> AUTH=<>", 0, NULL, "a@b.example", -1,
	 SMTP_BODY_NONE, 1, ""},
	{"auth mailbox", "FROM:<a@b.example> AUTH=a@B.example", 0, NULL,
	 "a@b.example", -1, SMTP_BODY_NONE, 1, "a@b.example"},
	{"auth xtext", "FROM:<> AUTH=e+3Dmc2@x.example", 0, NULL, "", -1,
	 SMTP_BODY_NONE, 1, "e=mc2@x.example"},
	{"auth xtext plus", "FROM:<> AUTH=a+2Bb@x.example", 0, NULL, "", -1,
	 SMTP_BODY_NONE, 1, "a+b@x.example"},
	{"auth xtext quoted", "FROM:<> AUTH=\"a+20b\"@x.example", 0, NULL, "",
	 -1, SMTP_BODY_NONE, 1, "\"a b\"@x.example"},
	{"auth decodes to NUL", "FROM:<> AUTH=a+00@x.example", 0,
	 "501 5.5.4 Bad parameter AUTH=a+00@x.example", NULL, 0, SMTP_BODY_NONE,
	 0, NULL},
	{"auth decodes to CR", "FROM:<> AUTH=a+0D@x.example", 0,
	 "501 5.5.4 Bad parameter AUTH=a+0D@x.example", NULL, 0, SMTP_BODY_NONE,
	 0, NULL},
	{"auth bad hex", "FROM:<> AUTH=a+ZZ@x.example", 0,
	 "501 5.5.4 Bad parameter AUTH=a+ZZ@x.example", NULL, 0, SMTP_BODY_NONE,
	 0, NULL},
	{"auth cut hex", "FROM:<> AUTH=a@x.example+4", 0,
	 "501 5.5.4 Bad parameter AUTH=a@x.example+4", NULL, 0, SMTP_BODY_NONE,
	 0, NULL},
	{"auth not a mailbox", "FROM:<> AUTH=alice", 0,
	 "501 5.5.4 Bad parameter AUTH=alice", NULL, 0, SMTP_BODY_NONE, 0,
	 NULL},
	{"auth twice", "FROM:<> AUTH=<> AUTH=<>", 0,
	 "501 5.5.4 Duplicate parameter AUTH", NULL, 0, SMTP_BODY_NONE, 0,
	 NULL},
	{"all three, extra spaces",
	 "FROM:<a@b.example>  SIZE=10  BODY=7BIT "
	 "AUTH=<>  ",
	 0, NULL, "a@b.example", 10, SMTP_BODY_7BIT, 1, ""},
	{"ret refused", "FROM:<> RET=HDRS", 0,
	 "555 5.5.4 Unsupported parameter RET=HDRS", NULL, 0, SMTP_BODY_NONE, 0,
	 NULL},
	{"envid refused", "FROM:<> ENVID=abc", 0,
	 "555 5.5.4 Unsupported parameter ENVID=abc", NULL, 0, SMTP_BODY_NONE,
	 0, NULL},
	{"smtputf8 refused", "FROM:<> SMTPUTF8", 0,
	 "555 5.5.4 Unsupported parameter SMTPUTF8", NULL, 0, SMTP_BODY_NONE, 0,
	 NULL},
	{"unknown refused", "FROM:<> XFOO=bar", 0,
	 "555 5.5.4 Unsupported parameter XFOO=bar", NULL, 0, SMTP_BODY_NONE, 0,
	 NULL},
	{"bad keyword", "FROM:<> -X=1", 0, PARAM_SYNTAX, NULL, 0,
	 SMTP_BODY_NONE, 0, NULL},
	{"empty keyword", "FROM:<> =1", 0, PARAM_SYNTAX, NULL, 0,
	 SMTP_BODY_NONE, 0, NULL},
	{"8-bit value", "FROM:<> XFOO=\xff", 0, PARAM_SYNTAX, NULL, 0,
	 SMTP_BODY_NONE, 0, NULL},
	{"equals in value", "FROM:<> XFOO=a=b", 0, PARAM_SYNTAX, NULL, 0,
	 SMTP_BODY_NONE, 0, NULL},
	{"CR", "FROM:<a@b.example>\r", 0, BAD_CHAR, NULL, 0, SMTP_BODY_NONE, 0,
	 NULL},
	{"LF in param", "FROM:<a@b.example> SIZE=1\n0", 0, BAD_CHAR, NULL, 0,
	 SMTP_BODY_NONE, 0, NULL},
	{"NUL", "FROM:<a@b.example>\0 SIZE=1", 26, BAD_CHAR, NULL, 0,
	 SMTP_BODY_NONE, 0, NULL},
	{"bare LF before path", "FROM:\n<a@b.example>", 0, BAD_CHAR, NULL, 0,
	 SMTP_BODY_NONE, 0, NULL},
};

static void test_mail(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(mail_cases) / sizeof(mail_cases[0]);
	     i++) {
		const struct mail_case *c = &mail_cases[i];
		size_t len = c->len != 0 ? c->len : strlen(c->args);
		struct smtp_mail_args m;
		const char *reply = NULL;
		char from[ADDR_FORMAT_SIZE];
		int got = smtp_parse_mail(c->args, len, &m, &reply);

		if (c->reply != NULL) {
			if (got != -1 || reply == NULL ||
			    strcmp(reply, c->reply) != 0)
				fail_msg("%s: got %d [%s], want [%s]", c->name,
					 got, reply != NULL ? reply : "",
					 c->reply);
			assert_non_null(m.why);
			continue;
		}
		if (got != 0)
			fail_msg("%s: refused: %s", c->name, reply);
		assert_true(addr_format(&m.from, from, sizeof(from)) >= 0);
		if (strcmp(from, c->from) != 0 || m.size != c->size ||
		    m.body != c->body || m.auth_present != c->auth_present ||
		    strcmp(m.auth, c->auth) != 0)
			fail_msg("%s: got from [%s] size %lld body %d auth %d "
				 "[%s]",
				 c->name, from, (long long)m.size, m.body,
				 m.auth_present, m.auth);
	}
}

/* A long parameter is echoed cut and the reply stays one short line. */
static void test_mail_echo_bounded(void **state)
{
	char args[1200];
	struct smtp_mail_args m;
	const char *reply;
	size_t n;

	(void)state;
	n = (size_t)snprintf(args, sizeof(args), "FROM:<> X");
	memset(args + n, 'A', sizeof(args) - n - 1);
	args[sizeof(args) - 1] = '\0';
	assert_int_equal(smtp_parse_mail(args, strlen(args), &m, &reply), -1);
	assert_true(strlen(reply) < 120);
	assert_memory_equal(reply, "555 5.5.4 Unsupported parameter XAAA", 36);
	assert_string_equal(reply + strlen(reply) - 3, "...");

	/* Echoed text never carries a backslash or control byte raw. */
	assert_int_equal(smtp_parse_mail("FROM:<> X=a\\b", 13, &m, &reply), -1);
	assert_string_equal(reply, "555 5.5.4 Unsupported parameter X=a\\x5cb");

	assert_int_equal(smtp_parse_mail(NULL, 0, &m, &reply), -1);
	assert_string_equal(reply, MAIL_SYNTAX);
}

struct rcpt_case {
	const char *name;
	const char *args;
	size_t len;
	const char *reply;
	const char *local;
	const char *domain;
};

static const struct rcpt_case rcpt_cases[] = {
	{"plain", "TO:<a@B.example>", 0, NULL, "a", "b.example"},
	{"lower, one space", "to: <a@b.example>", 0, NULL, "a", "b.example"},
	{"source route", "TO:<@x.example,@y.example:a@b.example>", 0, NULL, "a",
	 "b.example"},
	{"trailing spaces", "TO:<a@b.example>  ", 0, NULL, "a", "b.example"},
	{"postmaster bare", "TO:<postmaster>", 0, NULL, "postmaster", ""},
	{"postmaster any case", "TO:<PostMaster>", 0, NULL, "postmaster", ""},
	{"postmaster with domain", "TO:<Postmaster@X.example>", 0, NULL,
	 "Postmaster", "x.example"},
	{"postmaster prefix", "TO:<postmasterx>", 0, BAD_RCPT, NULL, NULL},
	{"postmaster junk", "TO:<postmaster>x", 0, PARAM_SYNTAX, NULL, NULL},
	{"null path", "TO:<>", 0, BAD_RCPT, NULL, NULL},
	{"null path spaced", "TO: <>", 0, BAD_RCPT, NULL, NULL},
	{"no domain", "TO:<alice>", 0, BAD_RCPT, NULL, NULL},
	{"bad domain", "TO:<a@-b.example>", 0, BAD_RCPT, NULL, NULL},
	{"no brackets", "TO:a@b.example", 0, RCPT_SYNTAX, NULL, NULL},
	{"wrong keyword", "FROM:<a@b.example>", 0, RCPT_SYNTAX, NULL, NULL},
	{"two spaces", "TO:  <a@b.example>", 0, RCPT_SYNTAX, NULL, NULL},
	{"empty", "", 0, RCPT_SYNTAX, NULL, NULL},
	{"junk after path", "TO:<a@b.example>x", 0, PARAM_SYNTAX, NULL, NULL},
	{"notify refused", "TO:<a@b.example> NOTIFY=NEVER", 0,
	 "555 5.5.4 Unsupported parameter NOTIFY=NEVER", NULL, NULL},
	{"orcpt refused", "TO:<a@b.example> ORCPT=rfc822;a@b.example", 0,
	 "555 5.5.4 Unsupported parameter ORCPT=rfc822;a@b.example", NULL,
	 NULL},
	{"postmaster param", "TO:<postmaster> X", 0,
	 "555 5.5.4 Unsupported parameter X", NULL, NULL},
	{"bad param", "TO:<a@b.example> \x01", 0, PARAM_SYNTAX, NULL, NULL},
	{"LF", "TO:<a@b.example>\n", 0, BAD_CHAR, NULL, NULL},
	{"CR inside", "TO:<a\r@b.example>", 0, BAD_CHAR, NULL, NULL},
	{"NUL", "TO:<a@b.example>\0", 17, BAD_CHAR, NULL, NULL},
};

static void test_rcpt(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(rcpt_cases) / sizeof(rcpt_cases[0]);
	     i++) {
		const struct rcpt_case *c = &rcpt_cases[i];
		size_t len = c->len != 0 ? c->len : strlen(c->args);
		struct smtp_rcpt_args r;
		const char *reply = NULL;
		int got = smtp_parse_rcpt(c->args, len, &r, &reply);

		if (c->reply != NULL) {
			if (got != -1 || reply == NULL ||
			    strcmp(reply, c->reply) != 0)
				fail_msg("%s: got %d [%s], want [%s]", c->name,
					 got, reply != NULL ? reply : "",
					 c->reply);
			assert_non_null(r.why);
			continue;
		}
		if (got != 0)
			fail_msg("%s: refused: %s", c->name, reply);
		if (strcmp(r.to.local, c->local) != 0 ||
		    strcmp(r.to.domain, c->domain) != 0)
			fail_msg("%s: got [%s] [%s]", c->name, r.to.local,
				 r.to.domain);
	}
}

struct helo_case {
	const char *name;
	const char *args;
	size_t outsize;
	int want;
	const char *out;
};

static const struct helo_case helo_cases[] = {
	{"name", "client.example", 256, 1, "client.example"},
	{"case kept", "Client.Example", 256, 1, "Client.Example"},
	{"single label", "localhost", 256, 1, "localhost"},
	{"trailing spaces", "client.example  ", 256, 1, "client.example"},
	{"ipv4 literal", "[192.0.2.1]", 256, 1, "[192.0.2.1]"},
	{"ipv6 literal", "[IPv6:2001:db8::1]", 256, 1, "[IPv6:2001:db8::1]"},
	{"bare ip", "192.0.2.1", 256, 1, "192.0.2.1"},
	{"fits exactly", "abc", 4, 1, "abc"},
	{"too long for out", "abcd", 4, 0, ""},
	{"empty", "", 256, 0, ""},
	{"only spaces", "   ", 256, 0, ""},
	{"underscore", "my_pc", 256, 0, ""},
	{"two words", "client example", 256, 0, ""},
	{"leading space", " client.example", 256, 0, ""},
	{"trailing dot", "client.example.", 256, 0, ""},
	{"bad literal", "[1.2.3]", 256, 0, ""},
	{"general literal", "[x:y]", 256, 0, ""},
	{"literal junk", "[1.2.3.4]x", 256, 0, ""},
	{"hyphen start", "-client", 256, 0, ""},
	{"CR", "client\r", 256, 0, ""},
	{"8-bit", "cli\xc3\xa9nt", 256, 0, ""},
};

static void test_helo(void **state)
{
	char out[256];

	(void)state;
	for (size_t i = 0; i < sizeof(helo_cases) / sizeof(helo_cases[0]);
	     i++) {
		const struct helo_case *c = &helo_cases[i];
		int got;

		memset(out, 'X', sizeof(out));
		got = smtp_parse_helo(c->args, strlen(c->args), out,
				      c->outsize);
		if (got != c->want || strcmp(out, c->out) != 0)
			fail_msg("%s: got %d [%s]", c->name, got, out);
	}
	assert_int_equal(smtp_parse_helo(NULL, 0, out, sizeof(out)), 0);
	assert_int_equal(smtp_parse_helo("a\0b", 3, out, sizeof(out)), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_command),
		cmocka_unit_test(test_mail),
		cmocka_unit_test(test_mail_echo_bounded),
		cmocka_unit_test(test_rcpt),
		cmocka_unit_test(test_helo),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
