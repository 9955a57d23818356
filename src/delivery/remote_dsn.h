/* Delivery status notifications: bounces and delay warnings (RFC 3464). */
#ifndef PETREL_REMOTE_DSN_H
#define PETREL_REMOTE_DSN_H

#include <stddef.h>
#include <stdint.h>

struct buf;

struct remote_dsn_rcpt {
	const char *address;	/* Final-Recipient */
	const char *status;	/* "5.1.1", "4.4.1" (RFC 3463) */
	const char *remote_mta; /* the server that answered, or "" */
	const char *diagnostic; /* its reply or our reason, one line */
	int64_t last_attempt;	/* 0: none */
};

struct remote_dsn {
	const char *hostname;	/* Reporting-MTA, MAILER-DAEMON@ */
	const char *to;		/* the original sender (To:) */
	const char *queue_id;	/* of the original */
	const char *message_id; /* of this report, "<...>" */
	const char *boundary;	/* unique: not in the headers */
	int64_t arrival;	/* of the original */
	int64_t now;		/* Date: */
	int delayed;		/* a delay warning, not a bounce */
	int64_t retry_until;	/* delayed: when we give up */
	const struct remote_dsn_rcpt *rcpts;
	size_t nrcpt;
	/* The original's header section (CRLF lines), cut by the caller. */
	const char *headers;
	size_t headers_len;
};

/*
 * Writes the whole report, header and body, CRLF lines, into out: a
 * multipart/report; report-type=delivery-status with a text/plain part
 * for people, the message/delivery-status part (RFC 3464) and the
 * original headers as text/rfc822-headers (RFC 6522). Every value that
 * came from outside is cleaned of control characters. Returns 0, or -1
 * when out is full. Pure.
 */
int remote_dsn_compose(const struct remote_dsn *d, struct buf *out);

/* RFC 5322 date of t (UTC): "Mon, 02 Jan 2006 15:04:05 +0000". */
void remote_dsn_date(int64_t t, char *out, size_t size);

#endif
