/* SMTP command lines: verb, MAIL/RCPT arguments, HELO/EHLO argument. Pure. */
#ifndef PETREL_SMTP_PARSE_H
#define PETREL_SMTP_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "lib/addr.h"

enum smtp_verb {
	SMTP_CMD_UNKNOWN,
	SMTP_CMD_HELO,
	SMTP_CMD_EHLO,
	SMTP_CMD_MAIL,
	SMTP_CMD_RCPT,
	SMTP_CMD_DATA,
	SMTP_CMD_BDAT,
	SMTP_CMD_RSET,
	SMTP_CMD_NOOP,
	SMTP_CMD_QUIT,
	SMTP_CMD_VRFY,
	SMTP_CMD_EXPN,
	SMTP_CMD_HELP,
	SMTP_CMD_STARTTLS,
	SMTP_CMD_AUTH
};

struct smtp_cmd {
	enum smtp_verb verb;
	const char *args; /* into the line, after the verb's space; or NULL */
	size_t args_len;  /* 0 when args is NULL */
};

/* RFC 6152 BODY= values. */
enum smtp_body { SMTP_BODY_NONE, SMTP_BODY_7BIT, SMTP_BODY_8BITMIME };

/* The longest reply smtp_parse_mail/rcpt build, with its NUL. */
#define SMTP_PARSE_REPLY_MAX 256

struct smtp_mail_args {
	struct addr from;		  /* the null path <> is allowed */
	int64_t size;			  /* SIZE= (RFC 1870), -1 when absent;
				INT64_MAX when too large to hold */
	enum smtp_body body;		  /* SMTP_BODY_NONE when absent */
	int auth_present;		  /* AUTH= given (RFC 4954 5) */
	char auth[ADDR_FORMAT_SIZE];	  /* its decoded mailbox, "" for <> */
	char reply[SMTP_PARSE_REPLY_MAX]; /* the refusal, when -1 */
	const char *why; /* when -1: the reason for the log (static), or NULL */
};

struct smtp_rcpt_args {
	struct addr to; /* <postmaster>: local "postmaster", domain "" */
	char reply[SMTP_PARSE_REPLY_MAX]; /* the refusal, when -1 */
	const char *why; /* when -1: the reason for the log (static), or NULL */
};

/*
 * Splits one command line, given WITHOUT its CRLF, into verb and arguments.
 * The verb is matched without regard to case; out->args points into line
 * after the single space that follows the verb (NULL and 0 when nothing
 * follows it). The line reader must already have refused a line with a
 * bare CR or LF in it (STYLE.md rule 4). Returns 1, or 0 for an
 * unrecognized verb (out->verb is then SMTP_CMD_UNKNOWN).
 */
int smtp_parse_command(const char *line, size_t len, struct smtp_cmd *out);

/*
 * Parses the arguments of MAIL: "FROM:<path> [params]" (RFC 5321 4.1.1.2;
 * one space after the colon is tolerated), with the parameters SIZE=,
 * BODY= and AUTH=. Returns 0, or -1 with *reply_r pointing to the whole
 * reply line without CRLF (in out->reply, or static text), e.g.
 * "501 5.5.4 Syntax: MAIL FROM:<address>".
 */
int smtp_parse_mail(const char *args, size_t len, struct smtp_mail_args *out,
		    const char **reply_r);

/*
 * Parses the arguments of RCPT: "TO:<path>" (RFC 5321 4.1.1.3), no
 * parameters; the null path is refused, "<postmaster>" is accepted without
 * a domain (RFC 5321 4.5.1). Returns 0, or -1 with *reply_r as above.
 */
int smtp_parse_rcpt(const char *args, size_t len, struct smtp_rcpt_args *out,
		    const char **reply_r);

/*
 * Validates the argument of HELO/EHLO: a domain name or an address literal
 * (RFC 5321 4.1.1.1), trailing spaces ignored; copies it as given into out
 * (outsize bytes, NUL-terminated). Returns 1 when valid and it fits, else 0
 * (out is then "" when outsize > 0).
 */
int smtp_parse_helo(const char *args, size_t len, char *out, size_t outsize);

#endif
