/*
 * pop3_parse: splits a POP3 command line into its keyword and argument
 * text, and parses the numeric arguments of LIST, RETR, DELE, TOP and UIDL.
 * Pure functions, fuzzed by tests/fuzz/fuzz_pop3_command.c.
 */
#include "pop3/pop3_parse.h"

#include <string.h>
#include <strings.h>

#define POP3_NUMBER_DIGITS_MAX 9

static const struct {
	enum pop3_verb verb;
	const char *name;
} pop3_verbs[] = {
	{POP3_CMD_USER, "USER"}, {POP3_CMD_PASS, "PASS"},
	{POP3_CMD_APOP, "APOP"}, {POP3_CMD_AUTH, "AUTH"},
	{POP3_CMD_STLS, "STLS"}, {POP3_CMD_CAPA, "CAPA"},
	{POP3_CMD_STAT, "STAT"}, {POP3_CMD_LIST, "LIST"},
	{POP3_CMD_RETR, "RETR"}, {POP3_CMD_DELE, "DELE"},
	{POP3_CMD_NOOP, "NOOP"}, {POP3_CMD_RSET, "RSET"},
	{POP3_CMD_QUIT, "QUIT"}, {POP3_CMD_TOP, "TOP"},
	{POP3_CMD_UIDL, "UIDL"},
};

#define POP3_NVERBS (sizeof(pop3_verbs) / sizeof(pop3_verbs[0]))

int pop3_parse_command(const char *line, size_t len, struct pop3_cmd *cmd)
{
	const char *sp = memchr(line, ' ', len);
	size_t klen = sp != NULL ? (size_t)(sp - line) : len;

	cmd->verb = POP3_CMD_UNKNOWN;
	cmd->args = NULL;
	cmd->args_len = 0;
	if (klen == 0 || klen > POP3_KEYWORD_MAX)
		return 0;
	for (size_t i = 0; i < POP3_NVERBS; i++) {
		if (strlen(pop3_verbs[i].name) == klen &&
		    strncasecmp(line, pop3_verbs[i].name, klen) == 0) {
			cmd->verb = pop3_verbs[i].verb;
			break;
		}
	}
	if (cmd->verb == POP3_CMD_UNKNOWN)
		return 0;
	if (sp != NULL && klen + 1 < len) {
		cmd->args = sp + 1;
		cmd->args_len = len - klen - 1;
	}
	return 1;
}

const char *pop3_verb_name(enum pop3_verb verb)
{
	for (size_t i = 0; i < POP3_NVERBS; i++)
		if (pop3_verbs[i].verb == verb)
			return pop3_verbs[i].name;
	return "";
}

/* Digits only, 1 to 9 of them. Returns 1 with *n_r, or 0. */
static int pop3_parse_number(const char *s, size_t len, unsigned long *n_r)
{
	unsigned long n = 0;

	if (len == 0 || len > POP3_NUMBER_DIGITS_MAX)
		return 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return 0;
		n = n * 10 + (unsigned long)(s[i] - '0');
	}
	*n_r = n;
	return 1;
}

int pop3_parse_msgnum(const char *s, size_t len, unsigned long *n_r)
{
	unsigned long n;

	if (s == NULL || !pop3_parse_number(s, len, &n) || n == 0)
		return 0;
	*n_r = n;
	return 1;
}

int pop3_parse_top(const char *s, size_t len, unsigned long *msg_r,
		   unsigned long *lines_r)
{
	const char *sp = s != NULL ? memchr(s, ' ', len) : NULL;
	size_t mlen;

	if (sp == NULL)
		return 0;
	mlen = (size_t)(sp - s);
	return pop3_parse_msgnum(s, mlen, msg_r) &&
	       pop3_parse_number(sp + 1, len - mlen - 1, lines_r);
}
