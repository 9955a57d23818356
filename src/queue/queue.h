/* The durable spool: one file per message under <data_dir>/queue/<queue>/. */
#ifndef PETREL_QUEUE_H
#define PETREL_QUEUE_H

#include <stddef.h>
#include <stdint.h>

/*
 * Queue ids: 13 upper-case hex digits of microseconds since the epoch, then
 * 5 of process and counter, e.g. "0061A2B3C4D5E0F3A1". They sort by time as
 * strings and name the spool file, so every id that comes from outside is
 * checked with queue_id_valid() first (no path can be smuggled in).
 */
#define QUEUE_ID_LEN 18
#define QUEUE_ID_SIZE (QUEUE_ID_LEN + 1)

/* Caps of the envelope fields, in bytes. Longer subjects, error texts and
 * reasons are cut; longer addresses and other fields fail the commit. */
#define QUEUE_ADDR_MAX 512
#define QUEUE_FIELD_MAX 1000 /* helo, auth account, Message-ID, ... */
#define QUEUE_SUBJECT_MAX 200
#define QUEUE_ERROR_MAX 230  /* per recipient, updated in place */
#define QUEUE_REASON_MAX 400 /* hold reason / message error */
#define QUEUE_RCPT_MAX 10000

/* The pool of spent spool files (queue/free/, see queue_retire) keeps at
 * most QUEUE_FREE_MAX files and QUEUE_FREE_BYTES bytes, none larger than
 * QUEUE_FREE_SIZE_MAX: enough for a burst of small messages, never much
 * disk. */
#define QUEUE_FREE_MAX 4096
#define QUEUE_FREE_BYTES (64u * 1024 * 1024)
#define QUEUE_FREE_SIZE_MAX (256 * 1024)

enum queue_name {
	QUEUE_INCOMING, /* being received; never acknowledged */
	QUEUE_ACTIVE,	/* committed; to deliver now */
	QUEUE_DEFERRED, /* waiting for next_retry */
	QUEUE_HOLD,	/* stopped by an administrator (or a rule) */
	QUEUE_BAD,	/* damaged or undeliverable files, for inspection */
	QUEUE_COUNT
};

/* The values are stored on disk: never renumber. */
enum queue_rcpt_status {
	QUEUE_RCPT_PENDING = 0,
	QUEUE_RCPT_DONE = 1,
	QUEUE_RCPT_FAILED = 2 /* failed for good */
};

enum queue_rcpt_kind {
	QUEUE_RCPT_LOCAL = 1, /* into the Maildir of `mailbox` */
	QUEUE_RCPT_REMOTE = 2 /* over SMTP */
};

struct queue_rcpt {
	const char *address; /* as given in RCPT TO, without <> */
	const char *mailbox; /* local: the account address; remote: "" */
	enum queue_rcpt_kind kind;
	/* Mutable part, updated in place by queue_rcpt_set_status(). */
	enum queue_rcpt_status status;
	uint32_t attempts;
	int64_t last_attempt; /* seconds since the epoch, 0: never */
	const char *error;    /* last error text, "" for none */
};

/*
 * A message's envelope. To commit, the caller fills it (NULL strings count
 * as ""); a loaded envelope owns every string (queue_envelope_free).
 * Strings may not hold CR, LF or NUL (they are refused), except the subject,
 * error texts and reason, whose control characters become spaces.
 */
struct queue_envelope {
	const char *sender; /* "" is the null sender <> */
	struct queue_rcpt *rcpts;
	size_t rcpt_count; /* 1..QUEUE_RCPT_MAX */
	int64_t received;  /* seconds since the epoch; 0 at commit: now */
	const char *client_ip;
	unsigned client_port;
	const char *helo;
	const char *listener;	  /* "smtp", "submission", "inject", ... */
	const char *protocol;	  /* "ESMTP", "ESMTPSA", ... */
	const char *auth_account; /* "" when not authenticated */
	const char *message_id;
	const char *subject; /* cut at QUEUE_SUBJECT_MAX, for listings */
	uint64_t size;	     /* set by the spool: bytes of the message */
	/* Mutable part, updated in place by queue_move()/queue_defer()
	 * (which keep the flags) and queue_set_flags(). */
	int64_t next_retry; /* seconds since the epoch, 0: as soon as possible */
	const char *reason; /* why held, deferred or bad; "" for none */
	uint32_t flags;	    /* QUEUE_FLAG_* */
};

/* Message flags, stored on disk: never renumber. */
#define QUEUE_FLAG_WARNED 0x1 /* the sender was told of the delay */
#define QUEUE_FLAG_BOUNCE 0x2 /* return it to the sender (admin's order) */

/* One change of queue_rcpts_update(). */
struct queue_rcpt_update {
	size_t idx;
	enum queue_rcpt_status status;
	const char *error; /* NULL: none */
	int attempted;	   /* count an attempt and stamp the time */
};

struct queue_stats {
	size_t messages[QUEUE_COUNT];
	uint64_t bytes[QUEUE_COUNT];
};

struct queue;
struct queue_writer;

/*
 * Error texts (`error_r`) of every function here point to storage of the
 * calling thread (or of the writer) and stay valid until the next call of
 * this module on the same thread (or writer). Every function is blocking
 * and may be called from several threads at once.
 */

/* "active" for QUEUE_ACTIVE, ...; "?" for a bad value. */
const char *queue_name_str(enum queue_name name);
/* Returns 1 and sets *name_r for "incoming" ... "bad", 0 otherwise. */
int queue_name_parse(const char *s, enum queue_name *name_r);
/* "pending", "done", "failed"; "local", "remote". */
const char *queue_rcpt_status_str(enum queue_rcpt_status status);
const char *queue_rcpt_kind_str(enum queue_rcpt_kind kind);

/* Returns 1 when id is QUEUE_ID_LEN characters of [0-9A-F], 0 otherwise. */
int queue_id_valid(const char *id);
/* Makes a new id (unique in this process; the spool checks the others). */
void queue_id_make(char id_r[QUEUE_ID_SIZE]);

/*
 * Opens the spool of data_dir, creating <data_dir>/queue/<name>/ and
 * queue/free/ (the pool of spent files, never a queue; mode 0700) as
 * needed. Returns the spool (free with queue_close), or NULL with *error_r
 * set.
 */
struct queue *queue_open(const char *data_dir, const char **error_r);
void queue_close(struct queue *q);

/*
 * Starts a new message in incoming/ with a fresh id, in a file taken from
 * the pool of retired ones when there is one (overwritten), else in a new
 * file. Returns the writer, or NULL with *error_r set. The writer belongs
 * to one thread at a time.
 */
struct queue_writer *queue_writer_new(struct queue *q, const char **error_r);
/* The message's queue id (owned by the writer). */
const char *queue_writer_id(const struct queue_writer *w);
/* Appends message bytes (buffered). Returns 0, or -1 once a write failed
 * (the commit then fails too). */
int queue_writer_write(struct queue_writer *w, const void *data, size_t len);
/* Appends len bytes of file fd, from its offset 0, as message bytes (in
 * the kernel where it can: copy_file_range). Returns 0, or -1 once a
 * write failed. */
int queue_writer_copy(struct queue_writer *w, int fd, uint64_t len);
/*
 * A scratch file on the spool's file system, for the part of a message
 * being received that is not kept in memory: open for reading and
 * writing, unnamed (O_TMPFILE, or unlinked at once), so that nothing is
 * left after a crash. Returns the descriptor (the caller closes it), or
 * -1 with *error_r set.
 */
int queue_scratch_open(struct queue *q, const char **error_r);
/*
 * Makes the message durable: writes the envelope, fdatasync()s the file,
 * renames it into active/ and fsync()s active/ (one fsync() shared with
 * the commits of other threads under way at the same time). Returns 1
 * only then (the 250 may be sent), or -1 with *error_r set (the file is
 * removed). The writer is still to be freed.
 */
int queue_writer_commit(struct queue_writer *w,
			const struct queue_envelope *env, const char **error_r);
/*
 * queue_writer_commit() into queue `to` (active, deferred, hold or bad)
 * with env->reason: one rename, so that a message a rule holds is never
 * in active/, not even for an instant a crash could hit. Returns as
 * queue_writer_commit(); -1 for incoming.
 */
int queue_writer_commit_to(struct queue_writer *w,
			   const struct queue_envelope *env, enum queue_name to,
			   const char **error_r);
/*
 * Group commit of n writers: each file is written and fdatasync()ed and
 * renamed, then active/ is fsync()ed once for them all. results[i]
 * is 1 when writer i is durable, -1 when it failed (errors_r[i] says why,
 * errors_r may be NULL). Returns 1 when all succeeded, -1 otherwise.
 */
int queue_commit_batch(struct queue_writer *const *ws,
		       const struct queue_envelope *const *envs, size_t n,
		       int *results, const char **errors_r);
/* Drops a message that was not committed: removes its file, frees w. */
void queue_writer_abort(struct queue_writer *w);
/* Frees the writer; an uncommitted message is aborted. NULL is fine. */
void queue_writer_free(struct queue_writer *w);

/*
 * Loads the envelope of message id from active, deferred, hold or bad.
 * Returns 1 with *env_r (caller frees with queue_envelope_free) and
 * *queue_r (may be NULL), 0 when there is no such message, -1 on error. A
 * damaged file is moved to bad/ (unless it is there) and -1 is returned.
 */
int queue_envelope_load(struct queue *q, const char *id,
			enum queue_name *queue_r, struct queue_envelope **env_r,
			const char **error_r);
/* As queue_envelope_load(), but 0 also when the message is in none of
 * the n queues (moved out of them since it was listed). */
int queue_envelope_load_from(struct queue *q, const char *id,
			     const enum queue_name *names, size_t n,
			     enum queue_name *queue_r,
			     struct queue_envelope **env_r,
			     const char **error_r);
void queue_envelope_free(struct queue_envelope *env);

/*
 * Parses a whole spool file held in memory (the fuzzing entry point; the
 * loader reads only the tail of the file). Returns 1 with *env_r (caller
 * frees), or -1 with *error_r saying what is damaged.
 */
int queue_envelope_parse(const void *data, size_t size,
			 struct queue_envelope **env_r, const char **error_r);

/*
 * Opens the message bytes of id for reading: *fd_r (caller closes) holds
 * them at [*offset_r, *offset_r + *len_r). Returns 1, 0 when there is no
 * such message, -1 on error (damaged files go to bad/ as above). The fd
 * holds no lock. Its bytes stay the message's while the message is in the
 * spool; once it is retired (queue_retire) the file may be reused for
 * another message, so a reader that may race with its delivery checks
 * with queue_body_check() after reading.
 */
int queue_body_open(struct queue *q, const char *id, int *fd_r,
		    uint64_t *offset_r, uint64_t *len_r, const char **error_r);
/*
 * Is fd (from queue_body_open) still the file of message id? Returns 1
 * when it is: what was read from it before the call was that message's.
 * Returns 0 when the message left the spool meanwhile (what was read may
 * belong to another message), -1 on error.
 */
int queue_body_check(struct queue *q, const char *id, int fd,
		     const char **error_r);

/*
 * Records one delivery attempt of recipient idx: its new status and error
 * text (NULL: none), one more attempt, the time. Durable on return (the
 * fixed-size status record is rewritten in place and fdatasync()ed; the
 * message bytes are not touched). Returns 1, 0 when there is no such
 * message, -1 on error (idx out of range included).
 */
int queue_rcpt_set_status(struct queue *q, const char *id, size_t idx,
			  enum queue_rcpt_status status, const char *error_text,
			  const char **error_r);

/*
 * Rewrites n recipient slots of message id at once (one fdatasync()): each
 * gets its status and error; those with `attempted` one more attempt at
 * the current time. Returns as queue_rcpt_set_status().
 */
int queue_rcpts_update(struct queue *q, const char *id,
		       const struct queue_rcpt_update *u, size_t n,
		       const char **error_r);
/* Sets and clears message flags (QUEUE_FLAG_*), durably, wherever the
 * message is. Returns 1, 0 when there is no such message, -1 on error. */
int queue_set_flags(struct queue *q, const char *id, uint32_t set,
		    uint32_t clear, const char **error_r);

/*
 * Moves message id into queue `to` (active, deferred, hold or bad) and sets
 * its reason (NULL: clears it); into active, next_retry is reset to 0.
 * Durable on return. Moving a message where it already is only updates
 * the reason. Returns 1, 0 when there is no such message, -1 on error.
 */
int queue_move(struct queue *q, const char *id, enum queue_name to,
	       const char *reason, const char **error_r);
/* Moves id into deferred/ with its next retry time and reason. Returns as
 * queue_move(). */
int queue_defer(struct queue *q, const char *id, int64_t next_retry,
		const char *reason, const char **error_r);
/* Removes message id for good (durable). Returns 1, 0 when there is no such
 * message, -1 on error. */
int queue_delete(struct queue *q, const char *id, const char **error_r);
/*
 * queue_delete() for a message that delivery is done with: the same
 * durable removal, but its file goes to the pool (queue/free/) for a new
 * message to reuse. Only for the delivery of that message, after its last
 * read of the message's bytes with its descriptors closed: any other
 * descriptor of it open in this process could read another message's
 * bytes later. Returns as queue_delete().
 */
int queue_retire(struct queue *q, const char *id, const char **error_r);

/* Called for each id; returns 0 to go on, anything else to stop. */
typedef int queue_scan_cb(void *ctx, const char *id);
/*
 * Calls cb for every message in one queue, ids in ascending order (oldest
 * first). Returns 1 (also when cb stopped), -1 on error.
 */
int queue_scan(struct queue *q, enum queue_name name, queue_scan_cb *cb,
	       void *ctx, const char **error_r);
/*
 * Calls cb once for every message in any of the n queues, ids in ascending
 * order, each read so that a message moved between two of them while they
 * are read (a retry taking it from deferred/ to active/) is still found,
 * and found once. The id names no queue: cb learns where the message is
 * now from queue_envelope_load(). Returns 1 (also when cb stopped), -1.
 */
int queue_scan_queues(struct queue *q, const enum queue_name *names, size_t n,
		      queue_scan_cb *cb, void *ctx, const char **error_r);

/* Messages sent by authenticated accounts: ids[i] was sent by accounts[i]. */
struct queue_sent {
	char (*ids)[QUEUE_ID_SIZE];
	char **accounts;
	size_t n, cap;
};
/*
 * Fills *sent (zeroed by the caller) with the messages now in one of the n
 * queues that account sent (compared without case), or that any
 * authenticated account sent when account is NULL; read as by
 * queue_scan_queues(). Returns 1, or -1 with *sent emptied.
 */
int queue_sent_by(struct queue *q, const enum queue_name *names, size_t n,
		  const char *account, struct queue_sent *sent,
		  const char **error_r);
/* Frees what *sent holds and zeroes it. */
void queue_sent_free(struct queue_sent *sent);

/*
 * At start-up: removes every file left in incoming/ (never acknowledged;
 * files a live writer still holds are skipped; queue/free/ holds garbage
 * and is left to the pool), then calls cb (may be NULL)
 * for every message in active/, to deliver. *removed_r (may be NULL) gets
 * the number removed. Returns 1, or -1 on error.
 */
int queue_recover(struct queue *q, queue_scan_cb *cb, void *ctx,
		  size_t *removed_r, const char **error_r);

/* What the spool counts for `petrelctl queue stats` (stored as numbers:
 * never renumber). */
enum queue_event {
	QUEUE_EV_RECEIVED = 0,	/* messages committed */
	QUEUE_EV_DELIVERED = 1, /* recipients delivered */
	QUEUE_EV_DEFERRED = 2,	/* deliveries deferred (per message try) */
	QUEUE_EV_BOUNCED = 3,	/* recipients returned to the sender */
	QUEUE_EV_COUNT
};

/* Records count events of one kind at time now (appended to
 * <data_dir>/queue/events, rotated at 1 MB). Returns 0 or -1. */
int queue_event_add(struct queue *q, enum queue_event ev, uint64_t count,
		    int64_t now, const char **error_r);
/* Sums the events of the last hour and of the last day before now.
 * Returns 1, or -1 on error. */
int queue_event_counts(struct queue *q, int64_t now,
		       uint64_t hour[QUEUE_EV_COUNT],
		       uint64_t day[QUEUE_EV_COUNT], const char **error_r);

/* Counts messages and bytes per queue. Returns 1, or -1 on error. */
int queue_stats(struct queue *q, struct queue_stats *stats_r,
		const char **error_r);

#endif
