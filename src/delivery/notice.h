/* Messages the server writes itself: alerts and notes to the postmaster. */
#ifndef PETREL_NOTICE_H
#define PETREL_NOTICE_H

#include <stddef.h>
#include <stdint.h>

#include "queue/queue.h"

struct buf;
struct directory;

#define NOTICE_TO_MAX 16 /* recipients of one notice */

struct notice {
	const char *hostname;
	const char *from;      /* the From: address */
	const char *from_name; /* its display name, or NULL */
	const char *to[NOTICE_TO_MAX];
	size_t nto;
	const char *reply_to; /* or NULL */
	const char *subject;  /* UTF-8 */
	const char *text;     /* UTF-8; LF or CRLF line ends */
	/* A message to attach as message/rfc822 (CRLF lines), or NULL. */
	const char *attach;
	size_t attach_len;
	/* The envelope's listener, which says what wrote it ("notice",
	 * "hijack-alert", "filter-note"): counters and filters skip it. */
	const char *listener;
	int64_t now;
};

/*
 * Writes the whole message into out: header section (Date, From, To,
 * Reply-To, Subject as an RFC 2047 word when not ASCII, Message-ID,
 * Auto-Submitted: auto-generated, MIME) and a UTF-8 text body with CRLF
 * line ends, lines of more than 998 octets cut. Every value is cleaned of
 * control characters. Returns 0, or -1 when out is full. Pure.
 */
int notice_compose(const struct notice *n, const char *message_id,
		   const char *boundary, struct buf *out);

/*
 * Queues a notice from the null sender (so that it never starts a loop)
 * to its recipients: addresses in local domains go to their mailbox (one
 * that resolves to none is skipped), others are sent out. Blocking: for a
 * worker thread. Returns 1 with the queue id in id_r, 0 when no recipient
 * was left, -1 on error with *error_r.
 */
int notice_queue(struct queue *q, struct directory *dir, const struct notice *n,
		 char id_r[QUEUE_ID_SIZE], const char **error_r);

/*
 * notice_queue() to recipients already resolved (nr of them, at least
 * one; their status pending): for a caller that looked them up where it
 * had the directory. Returns 1 with the queue id in id_r, -1 on error.
 */
int notice_queue_rcpts(struct queue *q, const struct notice *n,
		       struct queue_rcpt *rcpts, size_t nr,
		       char id_r[QUEUE_ID_SIZE], const char **error_r);

#endif
