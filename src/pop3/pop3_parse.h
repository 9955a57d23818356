/* The POP3 command parser (RFC 1939, RFC 2449, RFC 2595, RFC 5034). Pure. */
#ifndef PETREL_POP3_PARSE_H
#define PETREL_POP3_PARSE_H

#include <stddef.h>
#include <stdint.h>

/* RFC 2449 4: keywords are at most 4 characters, arguments 40; we allow
 * longer arguments for passwords and SASL responses (see pop3_session.c). */
#define POP3_KEYWORD_MAX 4

enum pop3_verb {
	POP3_CMD_UNKNOWN = 0,
	POP3_CMD_USER,
	POP3_CMD_PASS,
	POP3_CMD_APOP,
	POP3_CMD_AUTH,
	POP3_CMD_STLS,
	POP3_CMD_CAPA,
	POP3_CMD_STAT,
	POP3_CMD_LIST,
	POP3_CMD_RETR,
	POP3_CMD_DELE,
	POP3_CMD_NOOP,
	POP3_CMD_RSET,
	POP3_CMD_QUIT,
	POP3_CMD_TOP,
	POP3_CMD_UIDL,
};

struct pop3_cmd {
	enum pop3_verb verb;
	/* What follows the keyword and one space; NULL when nothing does.
	 * Points into the line given to pop3_parse_command. */
	const char *args;
	size_t args_len;
};

/*
 * Parses one command line (without its CRLF, len bytes, not necessarily
 * NUL-terminated). The keyword is case-insensitive (RFC 1939 3) and ends at
 * the first space; everything after that one space is the argument text,
 * kept whole (PASS may contain spaces, RFC 1939 7). A keyword followed by
 * a space and nothing else counts as having no argument.
 * Returns 1 with cmd filled for a known keyword, 0 for an unknown or
 * malformed one (cmd->verb POP3_CMD_UNKNOWN, cmd->args NULL).
 */
int pop3_parse_command(const char *line, size_t len, struct pop3_cmd *cmd);

/* The keyword of a verb in upper case ("RETR"); "" for UNKNOWN. */
const char *pop3_verb_name(enum pop3_verb verb);

/*
 * A message number (RFC 1939: a decimal number of 1 or more): digits only,
 * no sign, no spaces, at most 9 digits. Returns 1 with *n_r set, or 0.
 * Whether the message exists is the caller's question.
 */
int pop3_parse_msgnum(const char *s, size_t len, unsigned long *n_r);

/*
 * TOP's arguments "msg n" (RFC 1939 7): a message number, one space, and a
 * non-negative number of lines (at most 9 digits). Returns 1 or 0.
 */
int pop3_parse_top(const char *s, size_t len, unsigned long *msg_r,
		   unsigned long *lines_r);

#endif
