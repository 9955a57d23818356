/* Unit tests of pop3/pop3_parse: command lines, message numbers, TOP. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "pop3/pop3_parse.h"

static const struct {
	const char *name;
	const char *line;
	int ret;
	enum pop3_verb verb;
	const char *args; /* NULL: none */
} command_cases[] = {
	{"stat", "STAT", 1, POP3_CMD_STAT, NULL},
	{"lower case", "stat", 1, POP3_CMD_STAT, NULL},
	{"mixed case", "sTaT", 1, POP3_CMD_STAT, NULL},
	{"list arg", "LIST 1", 1, POP3_CMD_LIST, "1"},
	{"retr", "RETR 42", 1, POP3_CMD_RETR, "42"},
	{"top", "TOP 1 10", 1, POP3_CMD_TOP, "1 10"},
	{"user", "USER alice@example.test", 1, POP3_CMD_USER,
	 "alice@example.test"},
	{"pass keeps spaces", "PASS a b  c ", 1, POP3_CMD_PASS, "a b  c "},
	{"trailing space only", "STAT ", 1, POP3_CMD_STAT, NULL},
	{"two spaces", "LIST  1", 1, POP3_CMD_LIST, " 1"},
	{"auth", "AUTH PLAIN AGEAYg==", 1, POP3_CMD_AUTH, "PLAIN AGEAYg=="},
	{"capa", "CAPA", 1, POP3_CMD_CAPA, NULL},
	{"stls", "STLS", 1, POP3_CMD_STLS, NULL},
	{"apop", "APOP a b", 1, POP3_CMD_APOP, "a b"},
	{"every verb: dele", "DELE 1", 1, POP3_CMD_DELE, "1"},
	{"noop", "NOOP", 1, POP3_CMD_NOOP, NULL},
	{"rset", "RSET", 1, POP3_CMD_RSET, NULL},
	{"quit", "QUIT", 1, POP3_CMD_QUIT, NULL},
	{"uidl", "UIDL", 1, POP3_CMD_UIDL, NULL},
	{"empty", "", 0, POP3_CMD_UNKNOWN, NULL},
	{"space first", " STAT", 0, POP3_CMD_UNKNOWN, NULL},
	{"unknown", "HELO x", 0, POP3_CMD_UNKNOWN, NULL},
	{"prefix", "STA", 0, POP3_CMD_UNKNOWN, NULL},
	{"longer", "STATS", 0, POP3_CMD_UNKNOWN, NULL},
	{"tab", "STAT\t1", 0, POP3_CMD_UNKNOWN, NULL},
	{"smtp", "EHLO example.com", 0, POP3_CMD_UNKNOWN, NULL},
};

static void test_command(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(command_cases) / sizeof(command_cases[0]);
	     i++) {
		const char *line = command_cases[i].line;
		struct pop3_cmd cmd;
		int ret = pop3_parse_command(line, strlen(line), &cmd);

		if (ret != command_cases[i].ret ||
		    cmd.verb != command_cases[i].verb)
			fail_msg("%s: ret %d verb %d", command_cases[i].name,
				 ret, cmd.verb);
		if (command_cases[i].args == NULL) {
			if (cmd.args != NULL || cmd.args_len != 0)
				fail_msg("%s: args", command_cases[i].name);
		} else if (cmd.args == NULL ||
			   cmd.args_len != strlen(command_cases[i].args) ||
			   memcmp(cmd.args, command_cases[i].args,
				  cmd.args_len) != 0) {
			fail_msg("%s: args differ", command_cases[i].name);
		}
	}
}

static void test_command_not_terminated(void **state)
{
	/* The line is len bytes: no NUL needed after it. */
	char line[8] = {'R', 'E', 'T', 'R', ' ', '7', 'X', 'X'};
	struct pop3_cmd cmd;

	(void)state;
	assert_int_equal(pop3_parse_command(line, 6, &cmd), 1);
	assert_int_equal(cmd.verb, POP3_CMD_RETR);
	assert_int_equal(cmd.args_len, 1);
	assert_int_equal(cmd.args[0], '7');
	/* A NUL inside is just a byte of an unknown keyword. */
	assert_int_equal(pop3_parse_command("ST\0T", 4, &cmd), 0);
}

static void test_verb_name(void **state)
{
	(void)state;
	assert_string_equal(pop3_verb_name(POP3_CMD_RETR), "RETR");
	assert_string_equal(pop3_verb_name(POP3_CMD_TOP), "TOP");
	assert_string_equal(pop3_verb_name(POP3_CMD_UNKNOWN), "");
}

static const struct {
	const char *in;
	int ret;
	unsigned long n;
} msgnum_cases[] = {
	{"1", 1, 1},	      {"10000", 1, 10000},
	{"007", 1, 7},	      {"999999999", 1, 999999999},
	{"0", 0, 0},	      {"000", 0, 0},
	{"", 0, 0},	      {"-1", 0, 0},
	{"+1", 0, 0},	      {" 1", 0, 0},
	{"1 ", 0, 0},	      {"1a", 0, 0},
	{"1000000000", 0, 0}, {"99999999999999999999999", 0, 0},
};

static void test_msgnum(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(msgnum_cases) / sizeof(msgnum_cases[0]);
	     i++) {
		unsigned long n = 12345;
		int ret = pop3_parse_msgnum(msgnum_cases[i].in,
					    strlen(msgnum_cases[i].in), &n);

		if (ret != msgnum_cases[i].ret ||
		    (ret == 1 && n != msgnum_cases[i].n))
			fail_msg("\"%s\": ret %d n %lu", msgnum_cases[i].in,
				 ret, n);
	}
	assert_int_equal(pop3_parse_msgnum(NULL, 0, NULL), 0);
}

static const struct {
	const char *in;
	int ret;
	unsigned long msg, lines;
} top_cases[] = {
	{"1 0", 1, 1, 0},
	{"3 10", 1, 3, 10},
	{"12 999999999", 1, 12, 999999999},
	{"1", 0, 0, 0},
	{"1 ", 0, 0, 0},
	{" 1 1", 0, 0, 0},
	{"1  1", 0, 0, 0},
	{"0 1", 0, 0, 0},
	{"1 -1", 0, 0, 0},
	{"1 1 1", 0, 0, 0},
	{"a 1", 0, 0, 0},
	{"1 1000000000", 0, 0, 0},
};

static void test_top(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(top_cases) / sizeof(top_cases[0]); i++) {
		unsigned long m = 0, l = 0;
		int ret = pop3_parse_top(top_cases[i].in,
					 strlen(top_cases[i].in), &m, &l);

		if (ret != top_cases[i].ret ||
		    (ret == 1 &&
		     (m != top_cases[i].msg || l != top_cases[i].lines)))
			fail_msg("\"%s\": ret %d %lu %lu", top_cases[i].in, ret,
				 m, l);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_command),
		cmocka_unit_test(test_command_not_terminated),
		cmocka_unit_test(test_verb_name),
		cmocka_unit_test(test_msgnum),
		cmocka_unit_test(test_top),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
