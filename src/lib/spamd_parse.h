/* SpamAssassin's spamd protocol (SPAMC/1.5): the request head, the reply
 * parser and the spamd address. Pure. */
#ifndef PETREL_SPAMD_PARSE_H
#define PETREL_SPAMD_PARSE_H

#include <stddef.h>
#include <sys/socket.h>

#define SPAMD_REPLY_MAX (256 * 1024) /* a longer reply is refused */
#define SPAMD_SYMBOLS_MAX 1024	     /* rule names kept, comma-separated */

struct spamd_reply {
	int code;	  /* 0 is EX_OK; spamd's other codes are sysexits */
	char message[64]; /* "EX_OK", sanitized */
	int spam;	  /* "Spam: True" */
	double score;	  /* the message's score */
	double threshold; /* spamd's own required score */
	/* The rules that hit, comma-separated ("GTUBE,MISSING_DATE"), from
	 * a SYMBOLS body or the table of a REPORT body; cut at a whole name
	 * when too many. Only [A-Za-z0-9_] names are kept. */
	char symbols[SPAMD_SYMBOLS_MAX];
	int has_score; /* a Spam: header was there */
};

/*
 * Parses the reply to a SYMBOLS, REPORT or CHECK request: the status line
 * "SPAMD/1.x CODE MESSAGE", header lines up to an empty line
 * (Content-length, Spam: "True|False|Yes|No ; SCORE / THRESHOLD"), then
 * the body. Lines end in CRLF or LF. eof: the server closed the
 * connection (data is all there will be).
 * Returns 1 when the reply is complete (its body as long as its
 * Content-length says, or up to eof without one), 0 when more input is
 * needed, -1 when it is malformed or refuses the request (a non-zero
 * code, no Spam: header), with *error_r (static text).
 */
int spamd_parse_reply(const char *data, size_t len, int eof,
		      struct spamd_reply *r, const char **error_r);

/*
 * The request head for a message of msg_len bytes: "SYMBOLS SPAMC/1.5",
 * Content-length, then the empty line. Returns the length written, or -1
 * when it does not fit.
 */
int spamd_request_head(const char *command, size_t msg_len, char *out,
		       size_t size);

/*
 * Parses spam.spamd: "IP:PORT" or "[IPv6]:PORT" (a literal address; the
 * port 1-65535). Returns 0 with *ss and *len_r filled, or -1.
 */
int spamd_parse_addr(const char *text, struct sockaddr_storage *ss,
		     socklen_t *len_r);

#endif
