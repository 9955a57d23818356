/* Replies of remote SMTP servers: a bounded parser, and EHLO keywords. */
#ifndef PETREL_REMOTE_REPLY_H
#define PETREL_REMOTE_REPLY_H

#include <stddef.h>
#include <stdint.h>

/*
 * Bounds. RFC 5321 4.5.3.1.5 caps a reply line at 512 octets; we take
 * more from lax servers, but a line past REMOTE_REPLY_LINE_MAX or a reply
 * of more than REMOTE_REPLY_LINES_MAX lines is a protocol error, never a
 * reason to grow without end (OpenSMTPD's CVE-2020-8794 was a reply
 * parser that trusted the server).
 */
#define REMOTE_REPLY_LINE_MAX 2048
#define REMOTE_REPLY_LINES_MAX 200
#define REMOTE_REPLY_TEXT_MAX 4096 /* kept of the text; the rest is cut */

struct remote_reply {
	int code;	   /* 200..599 once the first line was fed */
	char enhanced[16]; /* "5.1.1" from the first line, or "" */
	/* The text after the code of every line, joined with '\n'; bytes
	 * that are not printable ASCII become '?'. Cut at
	 * REMOTE_REPLY_TEXT_MAX. */
	char text[REMOTE_REPLY_TEXT_MAX + 1];
	size_t text_len;
	size_t lines;
	int done;
};

void remote_reply_init(struct remote_reply *r);

/*
 * Feeds one line of a reply, without its line end. Returns 1 when the
 * reply is complete (the line had "NNN " or was "NNN" alone), 0 when more
 * lines follow ("NNN-"), -1 for a malformed line, a code that changes
 * within the reply, or too many lines (*error_r: static text). Pure.
 */
int remote_reply_feed(struct remote_reply *r, const char *line, size_t len,
		      const char **error_r);

/*
 * One line for logs, queue errors and DSNs: "550 5.1.1 text text", the
 * lines joined with spaces, cut at size. Returns out.
 */
char *remote_reply_summary(const struct remote_reply *r, char *out,
			   size_t size);

/* What an EHLO reply announces (RFC 5321 4.1.1.1 and the extensions). */
struct remote_ehlo {
	int pipelining;	   /* RFC 2920 */
	int size;	   /* RFC 1870: SIZE announced */
	uint64_t size_max; /* its limit, 0: none given */
	int eightbitmime;  /* RFC 6152 */
	int starttls;	   /* RFC 3207 */
	int smtputf8;	   /* RFC 6531 */
	int auth_plain;	   /* RFC 4954 AUTH with PLAIN */
	int auth_login;
};

/* Reads the keywords of a complete EHLO reply (the first line, the
 * server's name, is skipped). Pure. */
void remote_ehlo_parse(const struct remote_reply *r, struct remote_ehlo *e);

#endif
