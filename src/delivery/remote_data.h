/* The wire form of a message sent with DATA: dot-stuffing and CRLF. */
#ifndef PETREL_REMOTE_DATA_H
#define PETREL_REMOTE_DATA_H

#include <stddef.h>

struct buf;

/*
 * A streaming encoder over a message cut in arbitrary chunks. Every line
 * leaves as "line CRLF": a bare CR or a bare LF in the spool (which the
 * SMTP server never lets in, but a bounce or a damaged file might hold)
 * becomes CRLF, so no bare CR or LF ever reaches the wire (SMTP
 * smuggling); a line that starts with "." gets a second one (RFC 5321
 * 4.5.2).
 */
struct remote_data {
	int bol; /* at the beginning of a line */
	int cr;	 /* the last byte was a CR, its LF not yet seen */
};

void remote_data_init(struct remote_data *d);
/* Appends the wire form of in[0..len) to out. Returns 0, or -1 when out
 * is full (then out holds part of it: give up on this message). */
int remote_data_encode(struct remote_data *d, const void *in, size_t len,
		       struct buf *out);
/* Ends the message: a CRLF when its last line had none, then ".CRLF".
 * Returns 0 or -1. */
int remote_data_finish(struct remote_data *d, struct buf *out);

/*
 * Is addr fit for "MAIL FROM:<addr>" / "RCPT TO:<addr>"? Refuses control
 * characters (CR, LF, NUL above all: a command must never be split), '<'
 * and '>', and more than 512 bytes. "" is fine (the null sender). Pure.
 */
int remote_data_addr_ok(const char *addr);

#endif
