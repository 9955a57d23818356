/* Remote delivery: destinations, connections and the SMTP client. */
#ifndef PETREL_REMOTE_H
#define PETREL_REMOTE_H

#include <stddef.h>
#include <stdint.h>

#include "queue/queue.h"

struct env;
struct remote_mime7_info;
struct remote;

enum remote_outcome {
	REMOTE_NONE = 0, /* not tried (shutdown) */
	REMOTE_DONE,	 /* 2xx after the final dot */
	REMOTE_TEMP,	 /* 4xx, a connection failure, DNS trouble */
	REMOTE_PERM,	 /* 5xx, null MX, no such domain */
};

/* One recipient of a job and, once the job is done, what became of it. */
struct remote_rcpt {
	size_t idx;	     /* in the envelope */
	const char *address; /* the caller's, valid until done */
	enum remote_outcome outcome;
	char error[QUEUE_ERROR_MAX + 1]; /* "host ... said: ..." */
	char status[16];		 /* RFC 3463 status for DSNs */
	char mta[256];			 /* the server that answered, or "" */
	int accepted;			 /* private: 2xx to RCPT */
};

/*
 * Some recipients of one message, all in one domain (or all through the
 * smarthost), to send in one SMTP transaction. The caller fills the first
 * part and keeps the job, the message's strings and body_fd alive until
 * done() runs (on the loop, exactly once, never inside remote_submit()).
 */
struct remote_job {
	char id[QUEUE_ID_SIZE];
	const char *sender; /* "" for <> */
	const char *message_id;
	const char *auth_account; /* checked for a frozen account, or "" */
	char domain[256];	  /* lower case; "" with a smarthost */
	uint64_t size;		  /* message bytes (SIZE, RFC 1870) */
	int eightbit;		  /* holds 8-bit bytes (BODY=8BITMIME) */
	/* with eightbit: what a 7-bit downgrade converts (remote_mime7.h) */
	const struct remote_mime7_info *mime7;
	int body_fd; /* read with pread() on the workers */
	uint64_t body_len;
	struct remote_rcpt *rcpts;
	size_t nrcpt;
	void (*done)(struct remote_job *job, void *arg);
	void *arg;
	/* out: the sender's account is frozen; nothing was sent */
	int held;
	/* private */
	struct remote_job *next;
};

/*
 * The remote delivery of the daemon: reads the smarthost (and its
 * credentials file, which must not be readable by others) from env->cfg,
 * settings from env->settings at each use. NULL with *error_r on error.
 */
struct remote *remote_new(struct env *env, const char **error_r);
/* Queues a job for its destination; connections open as the limits
 * allow (queue.max_connections, queue.max_per_destination). */
void remote_submit(struct remote *r, struct remote_job *job);
/* Shutdown: every connection is closed at once; the recipients of the
 * jobs under way or waiting are left REMOTE_NONE (tried again after the
 * restart) and their done() runs. */
void remote_stop(struct remote *r);
/* Connections open now (tests, stats). */
size_t remote_connections(const struct remote *r);
void remote_free(struct remote *r);

#endif
