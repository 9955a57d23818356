/* Stamping and spooling an accepted message (runs on a worker thread). */
#ifndef PETREL_SMTP_COMMIT_H
#define PETREL_SMTP_COMMIT_H

#include <stdint.h>

#include "directory/directory.h"
#include "lib/addr.h"
#include "lib/buf.h"
#include "queue/queue.h"

struct env;
struct smtp_filter_plan;

struct smtp_rcpt {
	char addr[ADDR_FORMAT_SIZE];		 /* as given in RCPT TO */
	char account[DIRECTORY_ADDRESS_MAX + 1]; /* local: the mailbox */
	int local;
};

/* The facts of the trace headers (RFC 5321 4.4). */
struct smtp_stamp {
	const char *hostname;
	const char *helo;
	const char *rdns; /* "" when unknown */
	const char *ip;
	const char *proto;    /* ESMTP, ESMTPS, ESMTPA, ESMTPSA, SMTP */
	const char *tls_info; /* "" when not under TLS */
	const char *queue_id;
	const char *rcpt_for; /* the one recipient, or NULL */
	const char *auth;     /* authenticated account, or "" */
	int submission;	      /* add Date: when missing */
	int64_t now;
};

/*
 * Writes the stamped header section of msg into out: Received first,
 * X-Authenticated-Sender when authenticated (every client-supplied one is
 * dropped), the client's fields, Message-ID (and on submission Date) when
 * missing, and the empty line. Returns the offset in msg where the body
 * starts (the caller appends msg from there), or -1 when out is full.
 * message_id_r (size bytes) gets the Message-ID, subject_r the Subject.
 */
long smtp_stamp_headers(struct buf *out, const char *msg, size_t len,
			const struct smtp_stamp *st, char *message_id_r,
			size_t mid_size, char *subject_r, size_t subj_size);

struct smtp_commit {
	/* in */
	struct queue *queue;
	char session_id[24];
	char hostname[256];
	char helo[256];
	char rdns[256]; /* "" when unknown */
	char ip[64];
	int port;
	char listener[64];
	char proto[12];
	char tls_info[128];
	char auth[DIRECTORY_ADDRESS_MAX + 1];
	int submission;
	char sender[ADDR_FORMAT_SIZE];
	struct smtp_rcpt *rcpts; /* owned */
	size_t nrcpt;
	/* The message: msg, then body_len bytes of file body_fd from its
	 * start when body_fd >= 0 (a large message, smtp_spill.h); both
	 * owned. A commit that is not calloc()ed sets body_fd to -1. */
	struct buf msg;
	int body_fd;
	uint64_t body_len;
	int64_t now;
	/* What the content filter decided (smtp_filter.h), owned; NULL:
	 * spool the message as it is. */
	struct smtp_filter_plan *filter_plan;
	/* The queue the message is committed into: QUEUE_ACTIVE (also when
	 * left 0), or QUEUE_HOLD / QUEUE_BAD with reason (a copy that a
	 * filter rule holds goes there at once, never through active/). */
	enum queue_name into;
	const char *reason;
	/* out */
	int ok;
	char queue_id[64];
	char message_id[256];
	char error[256];
};

/* The worker half: stamps, writes and durably commits the message. */
void smtp_commit_work(void *thread_state, void *arg);
/* Frees a commit job (accepts NULL). */
void smtp_commit_free(struct smtp_commit *c);

#endif
