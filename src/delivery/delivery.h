/* Delivery of spooled messages. */
#ifndef PETREL_DELIVERY_H
#define PETREL_DELIVERY_H

#include <stddef.h>
#include <stdint.h>

#include "delivery/remote.h"
#include "delivery/remote_mime7.h"
#include "queue/queue.h"

struct directory;
struct settings;

/*
 * Delivers message id of the spool q to each of its pending local
 * recipients (local.h), marking each one done durably right after its
 * Maildir rename (a crash in between means at worst a second copy, never
 * none). A recipient that fails for the moment stays pending with its
 * error; one whose mailbox can not exist is marked failed. Remote
 * recipients are left pending. When no recipient at all is pending any
 * more, the spool file is removed. Messages on hold or in bad/ are left
 * alone. One line per recipient goes to the system log.
 * Returns 1 when no local recipient is pending, 0 when some are (try again
 * later), -1 on error (*error_r, valid until this thread's next call).
 * Blocking: for a worker thread.
 */
int delivery_local_run(struct queue *q, const char *data_dir,
		       const char *hostname, const char *id,
		       const char **error_r);

/*
 * One delivery attempt of one message, in three steps: delivery_prepare()
 * and delivery_finish() run on a worker thread, the remote part between
 * them on the loop (remote.h). The queue manager (dispatch.c) drives them.
 */

/* What the worker functions need; every pointer is the caller's. */
struct delivery_ctx {
	struct queue *q;
	struct directory *dir; /* the worker thread's handle */
	const char *data_dir;
	const char *hostname;
	const struct settings *settings;
	int64_t now; /* seconds since the epoch */
};

/* What became of one recipient in this attempt. */
struct delivery_rcpt {
	enum remote_outcome outcome; /* REMOTE_NONE: not tried now */
	char error[QUEUE_ERROR_MAX + 1];
	char status[16]; /* RFC 3463 */
	char mta[256];	 /* the remote server, or "" */
	int recorded;	 /* already written to the spool */
};

enum delivery_next {
	DELIVERY_DROP,	 /* nothing to do (gone, held, bad, moved) */
	DELIVERY_SEND,	 /* remote recipients wait: remote_submit() */
	DELIVERY_FINISH, /* go on with delivery_finish() */
};

struct delivery_msg {
	char id[QUEUE_ID_SIZE];
	int fresh;    /* committed messages it counts as received */
	int held;     /* the loop found the sender frozen while sending */
	int stopping; /* shutdown: leave what is left in active/ */
	/* Set by delivery_prepare(). */
	enum delivery_next next;
	struct queue_envelope *env; /* owned */
	int body_fd;		    /* owned, -1 when closed */
	uint64_t body_len;
	int eightbit;
	struct remote_mime7_info mime7; /* with eightbit: for a downgrade */
	struct delivery_rcpt *rcpts;	/* env->rcpt_count, owned */
	size_t remote_pending;
	/* Set by delivery_finish(). */
	char notices[2][QUEUE_ID_SIZE]; /* bounces and warnings queued */
	size_t nnotices;
	int64_t next_retry; /* deferred until then, 0: not deferred */
	char error[256];    /* trouble of the step, for the log */
};

/*
 * Loads message m->id and gets it ready: held and bad messages are left
 * alone; a message of a frozen account goes to hold; one with more than
 * queue.max_hops Received headers to bad (a loop); one the administrator
 * asked to return (QUEUE_FLAG_BOUNCE) has its pending recipients failed.
 * Local recipients are delivered now (each recorded durably at once);
 * remote ones are counted in m->remote_pending. Sets m->next. Returns 1,
 * or -1 on error (m->error; m->next is DELIVERY_DROP). Blocking.
 */
int delivery_prepare(const struct delivery_ctx *ctx, struct delivery_msg *m);

/*
 * Records the attempt: recipients that failed for good (or whose time ran
 * out, queue.max_days) are returned to the sender in one RFC 3464 report
 * (never to the null sender; a failed report goes to the postmaster), the
 * statuses are written at once, a delay warning goes out when due
 * (queue.warn_hours), and the message is removed when nothing is pending
 * (queue_retire: m->body_fd is closed first, and the caller must hold no
 * other descriptor of the message, its remote jobs all done), or deferred
 * to its next retry. Returns 1, or -1 on error (m->error). Blocking.
 */
int delivery_finish(const struct delivery_ctx *ctx, struct delivery_msg *m);

/* Frees what delivery_prepare() left in m (not m). */
void delivery_msg_clear(struct delivery_msg *m);

/* A deferred message and its next retry time (the queue manager keeps
 * them in memory, so that its passes read only what is due). */
struct delivery_retry {
	int64_t at; /* seconds since the epoch */
	char id[QUEUE_ID_SIZE];
};

/* What one pass of the queue manager found. */
struct delivery_scan_result {
	char (*due)[QUEUE_ID_SIZE]; /* to deliver now; caller frees */
	size_t ndue;
	struct delivery_retry *later; /* deferred, not yet due; frees */
	size_t nlater;
};

/*
 * One pass over the spool. With `all`, every envelope in deferred/ is
 * read (at start): the due ones are moved into active/, the others listed
 * in r->later. Otherwise only the n messages of `candidates` are looked at
 * (their time came by the schedule in memory): those still in deferred/
 * and due are moved into active/, those found deferred to a later time go
 * to r->later; the rest (moved or removed meanwhile) are dropped. Then the
 * ids in active/ (a listing, no envelope read) are added to r->due.
 * Returns 1, or -1 on error (r is then empty). Blocking.
 */
int delivery_scan(struct queue *q, int64_t now, int all,
		  const struct delivery_retry *candidates, size_t n,
		  struct delivery_scan_result *r, const char **error_r);

#endif
