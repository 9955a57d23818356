/*
 * queue: the durable spool. Owns <data_dir>/queue/{incoming,active,deferred,
 * hold,bad}/, the format of the files in them and the queue ids, and
 * queue/free/, the pool of spent files that new messages reuse (see "the
 * pool" below). A message is acknowledged only after its file (bytes and
 * envelope) is fdatasync()ed and renamed into active/, and active/ is
 * fsync()ed.
 *
 * One file per message, named by its queue id, written front to back:
 *
 *   0               the message bytes, as received (CRLF), body_len bytes
 *   body_len        envelope records, env_len bytes; never rewritten
 *                   zero bytes up to the next multiple of 512: slots_off
 *   slots_off       the message status slot, 512 bytes
 *   slots_off+512   one recipient status slot per recipient, 256 bytes each
 *   size-48         the trailer, 48 bytes
 *
 * Integers are little-endian. An envelope record is u16 type, u32 length,
 * then that many bytes: lengths, never separators, so no client value can
 * end a field early or forge another (STYLE.md, "Strings and buffers" 7).
 * Strings hold no NUL, CR or LF. Types (unknown ones are skipped):
 *   1 sender  2 recipient  3 received (i64 seconds)  4 client ip
 *   5 client port (u64)  6 helo  7 listener  8 protocol  9 auth account
 *   10 Message-ID  11 subject
 * A recipient record is u8 kind (1 local, 2 remote), u32 address length,
 * the address, then the mailbox (the account address, local only) to the
 * end of the record. Sender, received and one record per status slot are
 * required; the others default to "" and 0.
 *
 * Status slots are the only part ever rewritten, in place with pwrite() and
 * fdatasync(), so a status change costs one small write and never copies
 * the message. Each starts with a CRC-32 of the rest of the slot; slots
 * never straddle a 512-byte sector, and a slot found damaged anyway (a torn
 * write) reads as "pending, no error": at worst a second delivery, never a
 * lost one.
 *   message slot:   u32 crc, u32 flags, i64 next_retry, u16 reason length,
 *                   reason (QUEUE_REASON_MAX)
 *   recipient slot: u32 crc, u8 status, 3 zero, u32 attempts, u32 0,
 *                   i64 last attempt, u16 error length, error
 *                   (QUEUE_ERROR_MAX)
 *
 * Trailer: u64 body_len, u64 slots_off, u32 env_len, u32 recipients,
 * u32 CRC-32 of the records, u32 version (1), u32 CRC-32 of the 32 bytes
 * before, u32 0, "PETRELQ1". The file's size must be exactly what the
 * trailer implies; anything else (a truncated or damaged file) is moved to
 * bad/ by the first reader, never looped over.
 *
 * Concurrency: readers take a shared OFD lock on the file, writers of a
 * slot, moves and deletes an exclusive one, so petrelctl and petreld can
 * work on the same spool. The only mutable global is the id counter; the
 * pool's list of names is per struct queue, under its own mutex.
 */
#include "queue/queue.h"
#include "lib/buf.h"
#include "lib/clock.h"
#include "lib/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define QUEUE_VERSION 1
#define QUEUE_MAGIC "PETRELQ1"
#define QUEUE_TRAILER_SIZE 48
#define QUEUE_SECTOR 512
#define QUEUE_MSG_SLOT 512
#define QUEUE_RCPT_SLOT 256
#define QUEUE_REC_HDR 6
#define QUEUE_ENV_MAX (16u * 1024 * 1024)
#define QUEUE_WBUF_SIZE 65536
#define QUEUE_DAMAGED "status record damaged"

enum queue_rec {
	QUEUE_REC_SENDER = 1,
	QUEUE_REC_RCPT = 2,
	QUEUE_REC_RECEIVED = 3,
	QUEUE_REC_CLIENT_IP = 4,
	QUEUE_REC_CLIENT_PORT = 5,
	QUEUE_REC_HELO = 6,
	QUEUE_REC_LISTENER = 7,
	QUEUE_REC_PROTOCOL = 8,
	QUEUE_REC_AUTH = 9,
	QUEUE_REC_MESSAGE_ID = 10,
	QUEUE_REC_SUBJECT = 11,
};

/* The plain string records: type, field, cap, and whether it is free text
 * that queue_text_clean() wrote (its control bytes read as spaces). */
static const struct queue_str_rec {
	uint16_t type;
	size_t offset;
	size_t max;
	int text;
} queue_str_recs[] = {
	{QUEUE_REC_CLIENT_IP, offsetof(struct queue_envelope, client_ip), 64,
	 0},
	{QUEUE_REC_HELO, offsetof(struct queue_envelope, helo), QUEUE_FIELD_MAX,
	 0},
	{QUEUE_REC_LISTENER, offsetof(struct queue_envelope, listener), 64, 0},
	{QUEUE_REC_PROTOCOL, offsetof(struct queue_envelope, protocol), 64, 0},
	{QUEUE_REC_AUTH, offsetof(struct queue_envelope, auth_account),
	 QUEUE_ADDR_MAX, 0},
	{QUEUE_REC_MESSAGE_ID, offsetof(struct queue_envelope, message_id),
	 QUEUE_FIELD_MAX, 0},
	{QUEUE_REC_SUBJECT, offsetof(struct queue_envelope, subject),
	 QUEUE_SUBJECT_MAX, 1},
};

static const char *const queue_names[QUEUE_COUNT] = {
	[QUEUE_INCOMING] = "incoming", [QUEUE_ACTIVE] = "active",
	[QUEUE_DEFERRED] = "deferred", [QUEUE_HOLD] = "hold",
	[QUEUE_BAD] = "bad",
};

/*
 * Group sync of one queue directory, for commits. A thread that renamed
 * a message into the directory waits here until an fsync() of the
 * directory that started after its change has returned. The first waiter
 * to find no fsync() running runs one for every change registered so far,
 * and the others wait for it: under load one fsync() covers the changes of
 * many threads, the more the busier the spool is (group commit).
 */
struct queue_sync_waiter {
	struct queue_sync_waiter *next;
	uint64_t seq;
	int done;
	int error; /* errno of the fsync() that covered it, 0 on success */
};

struct queue_dsync {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint64_t changes; /* changes registered, numbered from 1 */
	int running;	  /* an fsync() is under way */
	struct queue_sync_waiter *waiters;
};

/*
 * The pool: spent spool files in queue/free/, named by the id of the last
 * message they held, to be reused by new messages.
 *
 * Why: creating a file allocates an inode and deleting it frees one, and
 * on ext4 (without a journal above all) the allocation searches the inode
 * table past recently freed inodes: under load the costliest part of a
 * message's spool work. Delivery retires a fully delivered message
 * (queue_retire) by renaming its file into free/ instead of unlinking it,
 * and queue_writer_new() renames a file from free/ into incoming/ and
 * overwrites it instead of creating one. Same flushes as before; no inode
 * is allocated or freed on the spool side. A file in free/ never holds a
 * message that is anywhere in the spool: it is garbage, to reuse or remove
 * at will.
 *
 * The names are kept here, not read from free/ each time: those retired by
 * this process, and those found in free/ by queue_open(). At most
 * QUEUE_FREE_MAX files and QUEUE_FREE_BYTES bytes are kept (more are
 * unlinked), none larger than QUEUE_FREE_SIZE_MAX (queue.h): enough files
 * for a burst of messages that comes faster than delivery (the pool fills
 * only as messages are delivered), never much disk.
 *
 * A reused file is never read as its old message:
 * - Every reader but one opens a message by its name, takes the lock, and
 *   checks that the name still leads to the file it holds
 *   (queue_msg_open(): envelope loads, status updates, moves, deletes,
 *   listings, petrelctl, the hijack sweep). queue_retire() renames under
 *   the exclusive lock, so a reader that holds the lock reads the whole
 *   message and the retire waits for it; one that gets the lock after
 *   finds the name gone (ids never repeat, so it never comes back) and
 *   reports no such message.
 * - queue_body_open() hands out a descriptor without a lock, read later.
 *   The bytes never change while the file has the message's name, but may
 *   once it is retired. So a process that may race with a retire checks
 *   after reading (queue_body_check(): petrelctl queue show), and the
 *   daemon only retires when no descriptor of the message can be read any
 *   more: the one retirer is delivery of that same message, one attempt
 *   per id at a time (dispatch.c), after the last read of its own
 *   descriptor, which it closes first; the remote part, which reads
 *   through that descriptor on the workers (remote.c), has ended before
 *   delivery_finish() runs. queue_delete() (petrelctl, the hijack code)
 *   unlinks as ever: an unlinked file lives on, unchanged, for whoever
 *   still holds it, and is never reused.
 *
 * Crashes:
 * - queue_retire() renames <queue>/<id> to free/<id> and fsync()s the
 *   queue directory (the delete is durable before it is reported done,
 *   as with queue_delete()), and only then lists the name here: no writer
 *   overwrites a file whose old name a crash could bring back.
 * - Reuse renames free/<old> to incoming/<new> and writes there; as for a
 *   created file, the rename into active/ comes only after the
 *   fdatasync(), so active/ never shows a file with a mix of old and new
 *   bytes. A crash before the commit leaves the file in incoming/ (removed
 *   by queue_recover()) or in free/: never an acknowledged message.
 * - A crash can undo half of a rename between two directories, leaving
 *   free/<old> as a second name of a file that a queue also names (after
 *   fsck, with two links). Such a file is never written into: the pool
 *   takes only files with one link, at queue_open() and at reuse.
 * - Names found in free/ by queue_open() may be of a retire whose
 *   directory flush has not run (another process retiring at that
 *   instant, or one killed between its rename and its flush): before the
 *   first of them is reused, the queue directories are flushed once.
 */
struct queue_pool_file {
	char name[QUEUE_ID_SIZE];
	uint64_t size;
};

struct queue_pool {
	pthread_mutex_t lock;
	size_t count;
	uint64_t bytes; /* of the files listed */
	int off;	/* no RENAME_NOREPLACE here: no reuse */
	int unsynced;	/* names from queue_open(), directories not flushed */
	struct queue_pool_file files[QUEUE_FREE_MAX];
};

struct queue {
	char dir[PATH_MAX]; /* <data_dir>/queue */
	int fd[QUEUE_COUNT];
	int free_fd;				 /* queue/free/ */
	struct queue_dsync sync[QUEUE_COUNT];	 /* commits */
	struct queue_dsync unlinks[QUEUE_COUNT]; /* deletes */
	struct queue_pool pool;
	/* queue/events, kept open by the process that appends (the daemon's
	 * delivery), under queue_events_lock; size: what it holds by then. */
	int events_fd;
	off_t events_size;
};

struct queue_writer {
	struct queue *q;
	int fd;
	int failed;
	int committed;
	int reused;	   /* the file came from the pool */
	uint64_t old_size; /* its size then: cut at the commit if longer */
	uint64_t body_len;
	size_t buffered;
	char id[QUEUE_ID_SIZE];
	char error[256];
	unsigned char buf[QUEUE_WBUF_SIZE];
};

struct queue_trailer {
	uint64_t body_len;
	uint64_t slots_off;
	uint32_t env_len;
	uint32_t rcpt_count;
	uint32_t env_crc;
};

/* An open, locked message file. */
struct queue_msg {
	int fd;
	enum queue_name where;
	uint64_t size;
	struct queue_trailer tr;
};

/* A loaded envelope and the storage of its strings. */
struct queue_envelope_priv {
	struct queue_envelope env; /* first: queue_envelope_free casts back */
	char *arena;
	size_t arena_len;
	size_t arena_cap;
};

static atomic_uint queue_id_counter;
static _Thread_local char queue_errbuf[512];

static const char *queue_errorf(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

static const char *queue_errorf(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(queue_errbuf, sizeof(queue_errbuf), fmt, ap);
	va_end(ap);
	return queue_errbuf;
}

/* ---- names and ids ---- */

const char *queue_name_str(enum queue_name name)
{
	return (unsigned)name < QUEUE_COUNT ? queue_names[name] : "?";
}

int queue_name_parse(const char *s, enum queue_name *name_r)
{
	for (int i = 0; i < QUEUE_COUNT; i++) {
		if (strcmp(s, queue_names[i]) == 0) {
			*name_r = (enum queue_name)i;
			return 1;
		}
	}
	return 0;
}

const char *queue_rcpt_status_str(enum queue_rcpt_status status)
{
	switch (status) {
	case QUEUE_RCPT_PENDING:
		return "pending";
	case QUEUE_RCPT_DONE:
		return "done";
	case QUEUE_RCPT_FAILED:
		return "failed";
	}
	return "?";
}

const char *queue_rcpt_kind_str(enum queue_rcpt_kind kind)
{
	switch (kind) {
	case QUEUE_RCPT_LOCAL:
		return "local";
	case QUEUE_RCPT_REMOTE:
		return "remote";
	}
	return "?";
}

int queue_id_valid(const char *id)
{
	size_t i;

	if (id == NULL)
		return 0;
	for (i = 0; i < QUEUE_ID_LEN; i++) {
		char c = id[i];
		if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F')))
			return 0;
	}
	return id[i] == '\0';
}

void queue_id_make(char id_r[QUEUE_ID_SIZE])
{
	struct timespec ts;
	uint64_t us;
	uint32_t n = atomic_fetch_add(&queue_id_counter, 1);
	uint32_t tail;

	/* Real time, not the injectable clock: ids must never repeat. */
	clock_gettime(CLOCK_REALTIME, &ts);
	us = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
	/* Within a process the counter alone keeps ids apart (2^20 ids in
	 * one microsecond are impossible); the odd multiplier spreads pids so
	 * that two processes differ too. queue_writer_new checks the spool. */
	tail = ((uint32_t)getpid() * 2654435761u + n) & 0xfffffu;
	snprintf(id_r, QUEUE_ID_SIZE, "%013" PRIX64 "%05" PRIX32,
		 us & UINT64_C(0xfffffffffffff), tail);
}

/* ---- little-endian fields and CRC-32 (IEEE, as zlib's crc32) ---- */

static void queue_put16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
}

static void queue_put32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void queue_put64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint16_t queue_get16(const unsigned char *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t queue_get32(const unsigned char *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static uint64_t queue_get64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static uint32_t queue_crc32(const void *data, size_t len)
{
	static const uint32_t t[16] = {
		0x00000000, 0x1db71064, 0x3b6e20c8, 0x26d930ac,
		0x76dc4190, 0x6b6b51f4, 0x4db26158, 0x5005713c,
		0xedb88320, 0xf00f9344, 0xd6d6a3e8, 0xcb61b38c,
		0x9b64c2b0, 0x86d3d2d4, 0xa00ae278, 0xbdbdf21c,
	};
	const unsigned char *p = data;
	uint32_t crc = 0xffffffffu;

	while (len-- > 0) {
		crc ^= *p++;
		crc = (crc >> 4) ^ t[crc & 15];
		crc = (crc >> 4) ^ t[crc & 15];
	}
	return ~crc;
}

/* ---- file helpers ---- */

static int queue_write_all(int fd, const void *data, size_t len)
{
	const unsigned char *p = data;

	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int queue_pwrite_all(int fd, const void *data, size_t len, uint64_t off)
{
	const unsigned char *p = data;

	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/* Returns 1 when all len bytes were read, 0 at a short file, -1 on error. */
static int queue_pread_all(int fd, void *data, size_t len, uint64_t off)
{
	unsigned char *p = data;

	while (len > 0) {
		ssize_t n = pread(fd, p, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0)
			return 0;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 1;
}

static int queue_lock(int fd, short type, int wait)
{
	struct flock fl;

	memset(&fl, 0, sizeof(fl));
	fl.l_type = type;
	fl.l_whence = SEEK_SET;
	/* OFD locks belong to the open file, not the process: they keep
	 * threads of one process apart as well as petrelctl and petreld. */
	while (fcntl(fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, &fl) < 0) {
		if (errno != EINTR)
			return -1;
	}
	return 0;
}

/*
 * Renames id from one queue directory to another without ever replacing a
 * file there. Returns 0 or -1 (errno set).
 */
static int queue_rename(int from_dir, int to_dir, const char *id)
{
	if (renameat2(from_dir, id, to_dir, id, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -1;
	/* A file system without RENAME_NOREPLACE: link() never replaces
	 * either. A crash between the two leaves a second name that
	 * queue_recover() removes from incoming/. */
	if (linkat(from_dir, id, to_dir, id, 0) < 0)
		return -1;
	if (unlinkat(from_dir, id, 0) < 0)
		log_warn("queue: %s: cannot remove old name: %m", id);
	return 0;
}

/*
 * Makes a change already made in directory `name` durable: returns 0 once
 * an fsync() of the directory that started after the call has succeeded,
 * or -1 with errno set when that fsync() failed. See struct queue_dsync;
 * ds is the group of the kind of change: commits and deletes have one
 * each, so that a 250 never waits for a delete's fsync() to end before
 * its own can start.
 */
static int queue_dir_sync(struct queue *q, struct queue_dsync *ds,
			  enum queue_name name)
{
	struct queue_sync_waiter me;

	memset(&me, 0, sizeof(me));
	pthread_mutex_lock(&ds->lock);
	me.seq = ++ds->changes;
	me.next = ds->waiters;
	/* Taken off the list (under the lock) before this returns. */
	// cppcheck-suppress autoVariables
	ds->waiters = &me;
	while (!me.done) {
		struct queue_sync_waiter **p;
		uint64_t upto;
		int error = 0;

		if (ds->running) {
			pthread_cond_wait(&ds->cond, &ds->lock);
			continue;
		}
		/* Every change registered now was made before this fsync()
		 * starts, so it covers them all. */
		upto = ds->changes;
		ds->running = 1;
		pthread_mutex_unlock(&ds->lock);
		if (fsync(q->fd[name]) < 0)
			error = errno != 0 ? errno : EIO;
		pthread_mutex_lock(&ds->lock);
		ds->running = 0;
		for (p = &ds->waiters; *p != NULL;) {
			struct queue_sync_waiter *w = *p;

			if (w->seq <= upto) {
				w->done = 1;
				w->error = error;
				*p = w->next;
			} else {
				p = &w->next;
			}
		}
		pthread_cond_broadcast(&ds->cond);
	}
	pthread_mutex_unlock(&ds->lock);
	if (me.error != 0) {
		errno = me.error;
		return -1;
	}
	return 0;
}

static int queue_mkdir(const char *path)
{
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

struct queue_idlist {
	char (*ids)[QUEUE_ID_SIZE];
	size_t count;
	size_t cap;
};

static int queue_id_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* Adds the valid ids of directory dirfd (queue/<what>) to l, in no order;
 * l starts zeroed. Returns 0, or -1 with l freed. */
static int queue_list_dir(struct queue *q, int dirfd, const char *what,
			  struct queue_idlist *l, const char **error_r)
{
	struct dirent *e;
	DIR *dir;
	int fd;

	fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || (dir = fdopendir(fd)) == NULL) {
		*error_r = queue_errorf("cannot read %s/%s: %m", q->dir, what);
		if (fd >= 0)
			close(fd);
		free(l->ids);
		memset(l, 0, sizeof(*l));
		return -1;
	}
	while ((e = readdir(dir)) != NULL) {
		if (!queue_id_valid(e->d_name))
			continue;
		if (l->count == l->cap) {
			size_t ncap = l->cap ? l->cap * 2 : 64;
			void *n = realloc(l->ids, ncap * sizeof(*l->ids));
			if (n == NULL) {
				closedir(dir);
				free(l->ids);
				memset(l, 0, sizeof(*l));
				*error_r = "out of memory";
				return -1;
			}
			l->ids = n;
			l->cap = ncap;
		}
		memcpy(l->ids[l->count++], e->d_name, QUEUE_ID_SIZE);
	}
	closedir(dir);
	return 0;
}

/* ---- the pool (see struct queue_pool) ---- */

/* A file the pool may keep: a regular file with one name, not too large. */
static int queue_pool_fits(const struct stat *st)
{
	return S_ISREG(st->st_mode) && st->st_nlink == 1 &&
	       st->st_size <= QUEUE_FREE_SIZE_MAX;
}

/* Has the pool room for a file of size bytes? The caller holds the lock. */
static int queue_pool_has_room(const struct queue_pool *p, uint64_t size)
{
	return !p->off && p->count < QUEUE_FREE_MAX &&
	       size <= QUEUE_FREE_BYTES - p->bytes;
}

/* Lists free/<name> of size bytes. The caller holds the lock. */
static void queue_pool_add(struct queue_pool *p, const char *name,
			   uint64_t size)
{
	memcpy(p->files[p->count].name, name, QUEUE_ID_SIZE);
	p->files[p->count].size = size;
	p->count++;
	p->bytes += size;
}

/* At queue_open(): lists free/, keeps what fits, removes the rest. */
static void queue_pool_load(struct queue *q)
{
	struct queue_pool *p = &q->pool;
	struct queue_idlist l = {0};
	const char *error;

	if (queue_list_dir(q, q->free_fd, "free", &l, &error) < 0) {
		log_warn("queue: %s", error);
		return;
	}
	for (size_t i = 0; i < l.count; i++) {
		struct stat st;

		if (fstatat(q->free_fd, l.ids[i], &st, AT_SYMLINK_NOFOLLOW) ==
			    0 &&
		    queue_pool_fits(&st) &&
		    queue_pool_has_room(p, (uint64_t)st.st_size)) {
			queue_pool_add(p, l.ids[i], (uint64_t)st.st_size);
			continue;
		}
		/* Over the caps, too large, or a second name of a file that
		 * a queue names too (a crash undid half a rename). */
		unlinkat(q->free_fd, l.ids[i], 0);
	}
	free(l.ids);
	p->unsynced = p->count > 0;
}

/* Returns 1 when the pool has room for one more file of size bytes. */
static int queue_pool_room(struct queue *q, uint64_t size)
{
	int room;

	pthread_mutex_lock(&q->pool.lock);
	room = queue_pool_has_room(&q->pool, size);
	pthread_mutex_unlock(&q->pool.lock);
	return room;
}

/* Lists free/<name> of size bytes. Returns 1, or 0 when the pool is full
 * (the caller removes the file). */
static int queue_pool_put(struct queue *q, const char *name, uint64_t size)
{
	struct queue_pool *p = &q->pool;
	int kept = 0;

	pthread_mutex_lock(&p->lock);
	if (queue_pool_has_room(p, size)) {
		queue_pool_add(p, name, size);
		kept = 1;
	}
	pthread_mutex_unlock(&p->lock);
	return kept;
}

/*
 * Takes a file from the pool for message id: renames it to incoming/<id>
 * and opens it for writing (offset 0). Returns the descriptor with the
 * file's size in *size_r, or -1 when the pool has none to give (the caller
 * creates a file).
 */
static int queue_pool_take(struct queue *q, const char *id, uint64_t *size_r)
{
	struct queue_pool *p = &q->pool;
	struct queue_pool_file pf;

	for (;;) {
		struct stat st;
		int fd;

		pthread_mutex_lock(&p->lock);
		if (p->off || p->count == 0) {
			pthread_mutex_unlock(&p->lock);
			return -1;
		}
		if (p->unsynced) {
			/* Names found at queue_open(): make the removal of
			 * their old names durable before writing into any
			 * (see struct queue_pool). Once per process, under
			 * the lock so that no other writer goes ahead. */
			for (int i = QUEUE_ACTIVE; i < QUEUE_COUNT; i++) {
				if (fsync(q->fd[i]) < 0)
					log_warn("queue: fsync(%s/%s) failed: "
						 "%m",
						 q->dir, queue_names[i]);
			}
			p->unsynced = 0;
		}
		pf = p->files[--p->count];
		p->bytes -= pf.size;
		pthread_mutex_unlock(&p->lock);

		if (renameat2(q->free_fd, pf.name, q->fd[QUEUE_INCOMING], id,
			      RENAME_NOREPLACE) < 0) {
			if (errno == EINVAL || errno == ENOSYS) {
				/* Without RENAME_NOREPLACE, no pool: a
				 * plain rename could replace a file. */
				pthread_mutex_lock(&p->lock);
				p->off = 1;
				p->count = 0;
				p->bytes = 0;
				pthread_mutex_unlock(&p->lock);
				unlinkat(q->free_fd, pf.name, 0);
				return -1;
			}
			if (errno == EEXIST) {
				/* id is taken in incoming/: the caller's
				 * O_EXCL create finds it and picks another. */
				queue_pool_put(q, pf.name, pf.size);
				return -1;
			}
			continue; /* gone: taken or removed by another process */
		}
		fd = openat(q->fd[QUEUE_INCOMING], id,
			    O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd >= 0 && fstat(fd, &st) == 0 && queue_pool_fits(&st)) {
			*size_r = (uint64_t)st.st_size;
			return fd;
		}
		/* Never write into a file with another name elsewhere. */
		if (fd >= 0)
			close(fd);
		unlinkat(q->fd[QUEUE_INCOMING], id, 0);
	}
}

/* ---- open and close ---- */

struct queue *queue_open(const char *data_dir, const char **error_r)
{
	struct queue *q;
	char path[PATH_MAX + 16];
	int n;

	q = calloc(1, sizeof(*q));
	if (q == NULL) {
		*error_r = "out of memory";
		return NULL;
	}
	q->free_fd = -1;
	q->events_fd = -1;
	pthread_mutex_init(&q->pool.lock, NULL);
	for (int i = 0; i < QUEUE_COUNT; i++) {
		q->fd[i] = -1;
		pthread_mutex_init(&q->sync[i].lock, NULL);
		pthread_cond_init(&q->sync[i].cond, NULL);
		pthread_mutex_init(&q->unlinks[i].lock, NULL);
		pthread_cond_init(&q->unlinks[i].cond, NULL);
	}
	n = snprintf(q->dir, sizeof(q->dir), "%s/queue", data_dir);
	if (n < 0 || (size_t)n >= sizeof(q->dir)) {
		*error_r = "data_dir is too long";
		queue_close(q);
		return NULL;
	}
	if (queue_mkdir(data_dir) < 0 || queue_mkdir(q->dir) < 0) {
		*error_r = queue_errorf("mkdir(%s) failed: %m", q->dir);
		queue_close(q);
		return NULL;
	}
	for (int i = 0; i < QUEUE_COUNT; i++) {
		snprintf(path, sizeof(path), "%s/%s", q->dir, queue_names[i]);
		if (queue_mkdir(path) < 0 ||
		    (q->fd[i] = open(path,
				     O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
			*error_r = queue_errorf("cannot open %s: %m", path);
			queue_close(q);
			return NULL;
		}
	}
	snprintf(path, sizeof(path), "%s/free", q->dir);
	if (queue_mkdir(path) < 0 ||
	    (q->free_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		*error_r = queue_errorf("cannot open %s: %m", path);
		queue_close(q);
		return NULL;
	}
	queue_pool_load(q);
	return q;
}

void queue_close(struct queue *q)
{
	if (q == NULL)
		return;
	if (q->free_fd >= 0)
		close(q->free_fd);
	if (q->events_fd >= 0)
		close(q->events_fd);
	pthread_mutex_destroy(&q->pool.lock);
	for (int i = 0; i < QUEUE_COUNT; i++) {
		if (q->fd[i] >= 0)
			close(q->fd[i]);
		pthread_mutex_destroy(&q->sync[i].lock);
		pthread_cond_destroy(&q->sync[i].cond);
		pthread_mutex_destroy(&q->unlinks[i].lock);
		pthread_cond_destroy(&q->unlinks[i].cond);
	}
	free(q);
}

/* ---- building the tail of a file ---- */

/* Refuses CR, LF (record values are never lines anyway, but an address
 * with a line end must not reach a header or a log). */
static int queue_str_ok(const char *s, size_t max)
{
	size_t n = strlen(s);

	return n <= max && strpbrk(s, "\r\n") == NULL;
}

/*
 * Copies free text (subject, error, reason) into dst: control characters
 * become spaces, and it is cut at max bytes on a UTF-8 boundary. dst has
 * room for max + 1. Returns the length.
 */
static size_t queue_text_clean(char *dst, const char *src, size_t max)
{
	size_t n = src != NULL ? strlen(src) : 0;

	if (n > max) {
		n = max;
		while (n > 0 && ((unsigned char)src[n] & 0xc0) == 0x80)
			n--;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)src[i];
		dst[i] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
	}
	dst[n] = '\0';
	return n;
}

static const char *queue_str(const char *s)
{
	return s != NULL ? s : "";
}

static int queue_rec_add(struct buf *out, uint16_t type, const void *a,
			 size_t alen, const void *b, size_t blen)
{
	unsigned char hdr[QUEUE_REC_HDR];

	queue_put16(hdr, type);
	queue_put32(hdr + 2, (uint32_t)(alen + blen));
	if (buf_append(out, hdr, sizeof(hdr)) < 0 ||
	    buf_append(out, a, alen) < 0 || buf_append(out, b, blen) < 0)
		return -1;
	return 0;
}

static int queue_rec_u64(struct buf *out, uint16_t type, uint64_t v)
{
	unsigned char p[8];

	queue_put64(p, v);
	return queue_rec_add(out, type, p, sizeof(p), NULL, 0);
}

static void queue_msg_slot_build(unsigned char slot[QUEUE_MSG_SLOT],
				 uint32_t flags, int64_t next_retry,
				 const char *reason)
{
	char text[QUEUE_REASON_MAX + 1];
	size_t n = queue_text_clean(text, reason, QUEUE_REASON_MAX);

	memset(slot, 0, QUEUE_MSG_SLOT);
	queue_put32(slot + 4, flags);
	queue_put64(slot + 8, (uint64_t)next_retry);
	queue_put16(slot + 16, (uint16_t)n);
	memcpy(slot + 18, text, n);
	queue_put32(slot, queue_crc32(slot + 4, QUEUE_MSG_SLOT - 4));
}

static void queue_rcpt_slot_build(unsigned char slot[QUEUE_RCPT_SLOT],
				  enum queue_rcpt_status status,
				  uint32_t attempts, int64_t last_attempt,
				  const char *error)
{
	char text[QUEUE_ERROR_MAX + 1];
	size_t n = queue_text_clean(text, error, QUEUE_ERROR_MAX);

	memset(slot, 0, QUEUE_RCPT_SLOT);
	slot[4] = (unsigned char)status;
	queue_put32(slot + 8, attempts);
	queue_put64(slot + 16, (uint64_t)last_attempt);
	queue_put16(slot + 24, (uint16_t)n);
	memcpy(slot + 26, text, n);
	queue_put32(slot, queue_crc32(slot + 4, QUEUE_RCPT_SLOT - 4));
}

static uint64_t queue_round_sector(uint64_t v)
{
	return (v + QUEUE_SECTOR - 1) & ~(uint64_t)(QUEUE_SECTOR - 1);
}

/*
 * Appends everything after the message bytes (records, padding, slots,
 * trailer) to out. Returns 0, or -1 with *why set (static text).
 */
static int queue_tail_build(const struct queue_envelope *env, uint64_t body_len,
			    struct buf *out, const char **why)
{
	unsigned char slot[QUEUE_MSG_SLOT], tr[QUEUE_TRAILER_SIZE];
	char subject[QUEUE_SUBJECT_MAX + 1];
	const char *sender = queue_str(env->sender);
	uint64_t slots_off;
	size_t env_len, i;
	int64_t received = env->received != 0 ? env->received : clock_now();

	if (env->rcpt_count == 0 || env->rcpts == NULL) {
		*why = "no recipients";
		return -1;
	}
	if (env->rcpt_count > QUEUE_RCPT_MAX) {
		*why = "too many recipients";
		return -1;
	}
	if (!queue_str_ok(sender, QUEUE_ADDR_MAX)) {
		*why = "invalid sender";
		return -1;
	}
	if (queue_rec_add(out, QUEUE_REC_SENDER, sender, strlen(sender), NULL,
			  0) < 0)
		goto too_big;
	for (i = 0; i < env->rcpt_count; i++) {
		const struct queue_rcpt *r = &env->rcpts[i];
		const char *addr = queue_str(r->address);
		const char *mbox = queue_str(r->mailbox);
		unsigned char head[5 + QUEUE_ADDR_MAX];
		size_t alen = strlen(addr);

		if (addr[0] == '\0' || !queue_str_ok(addr, QUEUE_ADDR_MAX) ||
		    !queue_str_ok(mbox, QUEUE_ADDR_MAX)) {
			*why = "invalid recipient";
			return -1;
		}
		if (r->kind != QUEUE_RCPT_LOCAL &&
		    r->kind != QUEUE_RCPT_REMOTE) {
			*why = "invalid recipient kind";
			return -1;
		}
		if (r->kind == QUEUE_RCPT_LOCAL && mbox[0] == '\0') {
			*why = "local recipient without a mailbox";
			return -1;
		}
		head[0] = (unsigned char)r->kind;
		queue_put32(head + 1, (uint32_t)alen);
		memcpy(head + 5, addr, alen);
		if (queue_rec_add(out, QUEUE_REC_RCPT, head, 5 + alen, mbox,
				  strlen(mbox)) < 0)
			goto too_big;
	}
	if (queue_rec_u64(out, QUEUE_REC_RECEIVED, (uint64_t)received) < 0 ||
	    queue_rec_u64(out, QUEUE_REC_CLIENT_PORT, env->client_port) < 0)
		goto too_big;
	for (i = 0; i < sizeof(queue_str_recs) / sizeof(queue_str_recs[0]);
	     i++) {
		const struct queue_str_rec *sr = &queue_str_recs[i];
		const char *v = queue_str(
			*(const char *const *)((const char *)env + sr->offset));
		size_t n;

		if (sr->type == QUEUE_REC_SUBJECT) {
			n = queue_text_clean(subject, v, QUEUE_SUBJECT_MAX);
			v = subject;
		} else if (!queue_str_ok(v, sr->max)) {
			*why = "invalid envelope field";
			return -1;
		} else {
			n = strlen(v);
		}
		if (n > 0 && queue_rec_add(out, sr->type, v, n, NULL, 0) < 0)
			goto too_big;
	}
	env_len = out->len;
	if (env_len > QUEUE_ENV_MAX)
		goto too_big;

	slots_off = queue_round_sector(body_len + env_len);
	memset(slot, 0, sizeof(slot));
	while (out->len < slots_off - body_len) {
		size_t pad = slots_off - body_len - out->len;
		if (buf_append(out, slot,
			       pad < sizeof(slot) ? pad : sizeof(slot)) < 0)
			goto too_big;
	}
	queue_msg_slot_build(slot, env->flags, env->next_retry, env->reason);
	if (buf_append(out, slot, QUEUE_MSG_SLOT) < 0)
		goto too_big;
	for (i = 0; i < env->rcpt_count; i++) {
		const struct queue_rcpt *r = &env->rcpts[i];
		enum queue_rcpt_status st = r->status;

		if (st != QUEUE_RCPT_DONE && st != QUEUE_RCPT_FAILED)
			st = QUEUE_RCPT_PENDING;
		queue_rcpt_slot_build(slot, st, r->attempts, r->last_attempt,
				      r->error);
		if (buf_append(out, slot, QUEUE_RCPT_SLOT) < 0)
			goto too_big;
	}
	memset(tr, 0, sizeof(tr));
	queue_put64(tr, body_len);
	queue_put64(tr + 8, slots_off);
	queue_put32(tr + 16, (uint32_t)env_len);
	queue_put32(tr + 20, (uint32_t)env->rcpt_count);
	queue_put32(tr + 24, queue_crc32(out->data, env_len));
	queue_put32(tr + 28, QUEUE_VERSION);
	queue_put32(tr + 32, queue_crc32(tr, 32));
	memcpy(tr + 40, QUEUE_MAGIC, 8);
	if (buf_append(out, tr, sizeof(tr)) < 0)
		goto too_big;
	return 0;
too_big:
	*why = "envelope too large";
	return -1;
}

/* ---- parsing ---- */

static int queue_trailer_decode(const unsigned char *t, uint64_t size,
				struct queue_trailer *tr, const char **why)
{
	uint64_t end;

	if (size < QUEUE_TRAILER_SIZE) {
		*why = "file too short";
		return -1;
	}
	if (memcmp(t + 40, QUEUE_MAGIC, 8) != 0) {
		*why = "no trailer (truncated file?)";
		return -1;
	}
	if (queue_get32(t + 32) != queue_crc32(t, 32)) {
		*why = "trailer checksum mismatch";
		return -1;
	}
	if (queue_get32(t + 28) != QUEUE_VERSION) {
		*why = "unknown spool file version";
		return -1;
	}
	tr->body_len = queue_get64(t);
	tr->slots_off = queue_get64(t + 8);
	tr->env_len = queue_get32(t + 16);
	tr->rcpt_count = queue_get32(t + 20);
	tr->env_crc = queue_get32(t + 24);
	if (tr->env_len > QUEUE_ENV_MAX || tr->rcpt_count == 0 ||
	    tr->rcpt_count > QUEUE_RCPT_MAX || tr->body_len > size ||
	    tr->slots_off != queue_round_sector(tr->body_len + tr->env_len)) {
		*why = "trailer out of range";
		return -1;
	}
	end = tr->slots_off + QUEUE_MSG_SLOT +
	      (uint64_t)tr->rcpt_count * QUEUE_RCPT_SLOT + QUEUE_TRAILER_SIZE;
	if (end != size) {
		*why = "file size does not match its trailer";
		return -1;
	}
	return 0;
}

static const char *queue_arena_str(struct queue_envelope_priv *p,
				   const unsigned char *s, size_t n)
{
	char *d;

	if (n == 0)
		return "";
	if (n + 1 > p->arena_cap - p->arena_len)
		return NULL;
	d = p->arena + p->arena_len;
	memcpy(d, s, n);
	d[n] = '\0';
	p->arena_len += n + 1;
	return d;
}

/* A slot's text (reason, error) as queue_text_clean() wrote it: control
 * bytes, NUL included, read as spaces, so that a slot forged with a valid
 * CRC cannot put a line end into a listing, a log line or a bounce. */
static const char *queue_arena_text(struct queue_envelope_priv *p,
				    const unsigned char *s, size_t n)
{
	char *d = (char *)queue_arena_str(p, s, n);

	for (size_t i = 0; d != NULL && i < n; i++) {
		if ((unsigned char)d[i] < 0x20 || (unsigned char)d[i] == 0x7f)
			d[i] = ' ';
	}
	return d;
}

/* Record strings hold no NUL, CR or LF. */
static int queue_rec_str_ok(const unsigned char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\0' || s[i] == '\r' || s[i] == '\n')
			return 0;
	}
	return 1;
}

static int queue_rcpt_rec_parse(struct queue_envelope_priv *p,
				struct queue_rcpt *r, const unsigned char *v,
				size_t len)
{
	size_t alen;

	if (len < 5)
		return -1;
	alen = queue_get32(v + 1);
	if (alen == 0 || alen > QUEUE_ADDR_MAX || alen > len - 5 ||
	    len - 5 - alen > QUEUE_ADDR_MAX)
		return -1;
	if (v[0] != QUEUE_RCPT_LOCAL && v[0] != QUEUE_RCPT_REMOTE)
		return -1;
	r->kind = (enum queue_rcpt_kind)v[0];
	if (!queue_rec_str_ok(v + 5, len - 5))
		return -1;
	r->address = queue_arena_str(p, v + 5, alen);
	r->mailbox = queue_arena_str(p, v + 5 + alen, len - 5 - alen);
	if (r->address == NULL || r->mailbox == NULL)
		return -1;
	if (r->kind == QUEUE_RCPT_LOCAL && r->mailbox[0] == '\0')
		return -1;
	return 0;
}

/* Reads the slots into env; damaged slots read as pending (see top). */
static void queue_slots_parse(struct queue_envelope_priv *p,
			      const unsigned char *slots, size_t count)
{
	struct queue_envelope *env = &p->env;
	const unsigned char *s = slots;
	size_t n;

	n = queue_get16(s + 16);
	if (queue_get32(s) != queue_crc32(s + 4, QUEUE_MSG_SLOT - 4) ||
	    n > QUEUE_REASON_MAX) {
		env->next_retry = 0;
		env->flags = 0;
		env->reason = QUEUE_DAMAGED;
	} else {
		env->flags = queue_get32(s + 4);
		env->next_retry = (int64_t)queue_get64(s + 8);
		env->reason = queue_arena_text(p, s + 18, n);
	}
	for (size_t i = 0; i < count; i++) {
		struct queue_rcpt *r = &env->rcpts[i];

		s = slots + QUEUE_MSG_SLOT + i * QUEUE_RCPT_SLOT;
		n = queue_get16(s + 24);
		if (queue_get32(s) != queue_crc32(s + 4, QUEUE_RCPT_SLOT - 4) ||
		    s[4] > QUEUE_RCPT_FAILED || n > QUEUE_ERROR_MAX) {
			r->status = QUEUE_RCPT_PENDING;
			r->attempts = 0;
			r->last_attempt = 0;
			r->error = QUEUE_DAMAGED;
			continue;
		}
		r->status = (enum queue_rcpt_status)s[4];
		r->attempts = queue_get32(s + 8);
		r->last_attempt = (int64_t)queue_get64(s + 16);
		r->error = queue_arena_text(p, s + 26, n);
	}
}

/*
 * Parses the tail of a file (from offset body_len to the end) that the
 * trailer tr, already checked against the file's size, describes.
 */
static int queue_tail_parse(const struct queue_trailer *tr,
			    const unsigned char *tail,
			    struct queue_envelope **env_r, const char **why)
{
	const unsigned char *rec = tail, *end = tail + tr->env_len;
	struct queue_envelope_priv *p;
	struct queue_envelope *env;
	size_t rcpts = 0;
	int have_sender = 0, have_received = 0;

	if (queue_crc32(tail, tr->env_len) != tr->env_crc) {
		*why = "envelope checksum mismatch";
		return -1;
	}
	p = calloc(1, sizeof(*p));
	if (p == NULL) {
		*why = "out of memory";
		return -1;
	}
	env = &p->env;
	/* Each string takes at most its record's bytes (6 header bytes pay
	 * for the NULs), plus the slots' texts. */
	p->arena_cap = tr->env_len + QUEUE_REASON_MAX + 1 +
		       (size_t)tr->rcpt_count * (QUEUE_ERROR_MAX + 1);
	p->arena = malloc(p->arena_cap);
	env->rcpts = calloc(tr->rcpt_count, sizeof(*env->rcpts));
	if (p->arena == NULL || env->rcpts == NULL) {
		*why = "out of memory";
		goto fail;
	}
	env->rcpt_count = tr->rcpt_count;
	env->sender = env->client_ip = env->helo = env->listener = "";
	env->protocol = env->auth_account = env->message_id = "";
	env->subject = env->reason = "";
	env->size = tr->body_len;

	*why = "damaged envelope record";
	while (rec < end) {
		const unsigned char *v;
		uint16_t type;
		size_t len, i;

		if ((size_t)(end - rec) < QUEUE_REC_HDR)
			goto fail;
		type = queue_get16(rec);
		len = queue_get32(rec + 2);
		v = rec + QUEUE_REC_HDR;
		if (len > (size_t)(end - v))
			goto fail;
		rec = v + len;
		switch (type) {
		case QUEUE_REC_SENDER:
			if (have_sender++ || len > QUEUE_ADDR_MAX ||
			    !queue_rec_str_ok(v, len) ||
			    (env->sender = queue_arena_str(p, v, len)) == NULL)
				goto fail;
			continue;
		case QUEUE_REC_RCPT:
			if (rcpts >= env->rcpt_count ||
			    queue_rcpt_rec_parse(p, &env->rcpts[rcpts], v,
						 len) < 0)
				goto fail;
			rcpts++;
			continue;
		case QUEUE_REC_RECEIVED:
			if (have_received++ || len != 8)
				goto fail;
			env->received = (int64_t)queue_get64(v);
			continue;
		case QUEUE_REC_CLIENT_PORT:
			if (len != 8 || queue_get64(v) > 65535)
				goto fail;
			env->client_port = (unsigned)queue_get64(v);
			continue;
		default:
			break;
		}
		for (i = 0;
		     i < sizeof(queue_str_recs) / sizeof(queue_str_recs[0]);
		     i++) {
			const struct queue_str_rec *sr = &queue_str_recs[i];
			const char **field;

			if (sr->type != type)
				continue;
			field = (const char **)((char *)env + sr->offset);
			/* Like every record string it holds no NUL, CR or LF;
			 * the subject's other control bytes (ESC, ...) read
			 * as the spaces its writer made of them. */
			if (len > sr->max || !queue_rec_str_ok(v, len) ||
			    (*field = sr->text ? queue_arena_text(p, v, len)
					       : queue_arena_str(p, v, len)) ==
				    NULL)
				goto fail;
			break;
		}
		/* Unknown types are skipped: newer writers may add some. */
	}
	if (!have_sender || !have_received || rcpts != env->rcpt_count) {
		*why = "envelope incomplete";
		goto fail;
	}
	queue_slots_parse(p, tail + (tr->slots_off - tr->body_len),
			  env->rcpt_count);
	*env_r = env;
	return 1;
fail:
	queue_envelope_free(env);
	return -1;
}

int queue_envelope_parse(const void *data, size_t size,
			 struct queue_envelope **env_r, const char **error_r)
{
	const unsigned char *d = data;
	struct queue_trailer tr;

	if (size < QUEUE_TRAILER_SIZE) {
		*error_r = "file too short";
		return -1;
	}
	if (queue_trailer_decode(d + size - QUEUE_TRAILER_SIZE, size, &tr,
				 error_r) < 0)
		return -1;
	return queue_tail_parse(&tr, d + tr.body_len, env_r, error_r);
}

void queue_envelope_free(struct queue_envelope *env)
{
	struct queue_envelope_priv *p = (struct queue_envelope_priv *)env;

	if (p == NULL)
		return;
	free(p->env.rcpts);
	free(p->arena);
	free(p);
}

/* ---- writer ---- */

static const char *queue_writer_fail(struct queue_writer *w, const char *fmt,
				     ...) __attribute__((format(printf, 2, 3)));

static const char *queue_writer_fail(struct queue_writer *w, const char *fmt,
				     ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(w->error, sizeof(w->error), fmt, ap);
	va_end(ap);
	w->failed = 1;
	return w->error;
}

/* Returns 1 when id names a message in some queue already. */
static int queue_id_taken(struct queue *q, const char *id)
{
	for (int i = QUEUE_ACTIVE; i < QUEUE_COUNT; i++) {
		if (faccessat(q->fd[i], id, F_OK, AT_SYMLINK_NOFOLLOW) == 0 ||
		    errno != ENOENT)
			return 1;
	}
	return 0;
}

struct queue_writer *queue_writer_new(struct queue *q, const char **error_r)
{
	struct queue_writer *w = malloc(sizeof(*w));

	if (w == NULL) {
		*error_r = "out of memory";
		return NULL;
	}
	memset(w, 0, offsetof(struct queue_writer, buf));
	w->q = q;
	w->fd = -1;
	for (int tries = 0; tries < 16 && w->fd < 0; tries++) {
		queue_id_make(w->id);
		if (queue_id_taken(q, w->id))
			continue;
		w->fd = queue_pool_take(q, w->id, &w->old_size);
		if (w->fd >= 0) {
			w->reused = 1;
			break;
		}
		w->fd = openat(q->fd[QUEUE_INCOMING], w->id,
			       O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC |
				       O_NOFOLLOW,
			       0600);
		if (w->fd < 0 && errno != EEXIST) {
			*error_r = queue_errorf("cannot create %s/incoming/%s: "
						"%m",
						q->dir, w->id);
			free(w);
			return NULL;
		}
	}
	if (w->fd < 0) {
		*error_r = "cannot find a free queue id";
		free(w);
		return NULL;
	}
	/* Held for the writer's life: queue_recover() skips locked files. A
	 * reused file may still be locked for an instant by a reader that
	 * opened it under its old name and is about to find that name gone
	 * (queue_msg_open()): wait for it. */
	if (queue_lock(w->fd, F_WRLCK, w->reused) < 0) {
		*error_r = queue_errorf("cannot lock %s: %m", w->id);
		close(w->fd);
		unlinkat(q->fd[QUEUE_INCOMING], w->id, 0);
		free(w);
		return NULL;
	}
	return w;
}

const char *queue_writer_id(const struct queue_writer *w)
{
	return w->id;
}

static int queue_writer_flush(struct queue_writer *w)
{
	if (w->buffered == 0)
		return 0;
	if (queue_write_all(w->fd, w->buf, w->buffered) < 0) {
		queue_writer_fail(w, "write(%s/incoming/%s) failed: %m",
				  w->q->dir, w->id);
		return -1;
	}
	w->buffered = 0;
	return 0;
}

int queue_writer_write(struct queue_writer *w, const void *data, size_t len)
{
	if (w->failed || w->committed || w->fd < 0)
		return -1;
	if (w->buffered + len > sizeof(w->buf)) {
		if (queue_writer_flush(w) < 0)
			return -1;
	}
	if (len >= sizeof(w->buf)) {
		if (queue_write_all(w->fd, data, len) < 0) {
			queue_writer_fail(w, "write(%s/incoming/%s) failed: %m",
					  w->q->dir, w->id);
			return -1;
		}
	} else {
		memcpy(w->buf + w->buffered, data, len);
		w->buffered += len;
	}
	w->body_len += len;
	return 0;
}

int queue_writer_copy(struct queue_writer *w, int fd, uint64_t len)
{
	uint64_t done = 0;
	off_t in = 0;

	if (w->failed || w->committed || w->fd < 0)
		return -1;
	if (queue_writer_flush(w) < 0)
		return -1;
	/* In the kernel where the file system can (no copy through user
	 * memory; a reflink on some); by a bounce buffer otherwise. */
	while (done < len) {
		size_t want = len - done > (1u << 30) ? (1u << 30)
						      : (size_t)(len - done);
		ssize_t n = copy_file_range(fd, &in, w->fd, NULL, want, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 &&
		    (errno == EXDEV || errno == EINVAL || errno == ENOSYS ||
		     errno == EOPNOTSUPP) &&
		    done == 0)
			break;
		if (n == 0)
			errno = ENODATA; /* the source ended early */
		if (n <= 0) {
			queue_writer_fail(w,
					  "copy into %s/incoming/%s failed: %m",
					  w->q->dir, w->id);
			return -1;
		}
		done += (uint64_t)n;
	}
	while (done < len) {
		size_t want = len - done > sizeof(w->buf)
				      ? sizeof(w->buf)
				      : (size_t)(len - done);
		ssize_t n = pread(fd, w->buf, want, (off_t)done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0)
			errno = ENODATA; /* the source ended early */
		if (n <= 0 || queue_write_all(w->fd, w->buf, (size_t)n) < 0) {
			queue_writer_fail(w,
					  "copy into %s/incoming/%s failed: %m",
					  w->q->dir, w->id);
			return -1;
		}
		done += (uint64_t)n;
	}
	w->body_len += len;
	return 0;
}

int queue_scratch_open(struct queue *q, const char **error_r)
{
	char name[QUEUE_ID_SIZE + 16];
	int fd;

	/* Unnamed: nothing to clean up after a crash. */
	fd = openat(q->fd[QUEUE_INCOMING], ".", O_TMPFILE | O_RDWR | O_CLOEXEC,
		    0600);
	if (fd >= 0)
		return fd;
	if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL) {
		*error_r = queue_errorf("cannot create a file in %s/incoming: "
					"%m",
					q->dir);
		return -1;
	}
	for (int tries = 0; tries < 16; tries++) {
		char id[QUEUE_ID_SIZE];

		queue_id_make(id);
		/* Not a queue id: queue_recover() removes it all the same. */
		snprintf(name, sizeof(name), "scratch.%s", id);
		fd = openat(q->fd[QUEUE_INCOMING], name,
			    O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
			    0600);
		if (fd >= 0) {
			unlinkat(q->fd[QUEUE_INCOMING], name, 0);
			return fd;
		}
		if (errno != EEXIST)
			break;
	}
	*error_r =
		queue_errorf("cannot create a file in %s/incoming: %m", q->dir);
	return -1;
}

/* Removes the incoming file of a writer that will not be committed. */
static void queue_writer_drop(struct queue_writer *w)
{
	if (w->fd < 0)
		return;
	unlinkat(w->q->fd[QUEUE_INCOMING], w->id, 0);
	close(w->fd);
	w->fd = -1;
}

/* Writes the tail and syncs the file. Returns 0, or -1 (w->error). */
static int queue_writer_prepare(struct queue_writer *w,
				const struct queue_envelope *env)
{
	struct buf tail;
	const char *why;
	uint64_t end;

	if (w->committed || w->fd < 0) {
		queue_writer_fail(w, "message already committed or aborted");
		return -1;
	}
	if (w->failed || queue_writer_flush(w) < 0)
		return -1;
	buf_init(&tail, (size_t)QUEUE_ENV_MAX + QUEUE_SECTOR + QUEUE_MSG_SLOT +
				(size_t)QUEUE_RCPT_MAX * QUEUE_RCPT_SLOT +
				QUEUE_TRAILER_SIZE);
	if (queue_tail_build(env, w->body_len, &tail, &why) < 0) {
		buf_deinit(&tail);
		queue_writer_fail(w, "cannot queue message: %s", why);
		return -1;
	}
	if (queue_write_all(w->fd, tail.data, tail.len) < 0) {
		buf_deinit(&tail);
		queue_writer_fail(w, "write(%s/incoming/%s) failed: %m",
				  w->q->dir, w->id);
		return -1;
	}
	end = w->body_len + tail.len;
	buf_deinit(&tail);
	/* A reused file longer than this message: its size must be the
	 * trailer's (readers check it), and the fdatasync() below makes the
	 * new size durable with the bytes. */
	if (w->old_size > end && ftruncate(w->fd, (off_t)end) < 0) {
		queue_writer_fail(w, "ftruncate(%s/incoming/%s) failed: %m",
				  w->q->dir, w->id);
		return -1;
	}
	if (fdatasync(w->fd) < 0) {
		queue_writer_fail(w, "fdatasync(%s/incoming/%s) failed: %m",
				  w->q->dir, w->id);
		return -1;
	}
	return 0;
}

/* queue_commit_batch() into queue `to`. */
static int queue_commit_into(struct queue_writer *const *ws,
			     const struct queue_envelope *const *envs, size_t n,
			     enum queue_name to, int *results,
			     const char **errors_r)
{
	struct queue *q = n > 0 ? ws[0]->q : NULL;
	size_t renamed = 0, i;
	int all = 1;
	char why[256] = "";

	for (i = 0; i < n; i++) {
		struct queue_writer *w = ws[i];

		results[i] = -1;
		if (queue_writer_prepare(w, envs[i]) < 0)
			continue;
		if (queue_rename(q->fd[QUEUE_INCOMING], q->fd[to], w->id) < 0) {
			queue_writer_fail(w,
					  "rename(incoming/%s, %s/%s) "
					  "failed: %m",
					  w->id, queue_names[to], w->id);
			continue;
		}
		results[i] = 0;
		renamed++;
	}
	/* One fsync() of active/ for every rename, shared with the commits
	 * of other threads under way (queue_dir_sync). incoming/ is not
	 * synced: what the 250 needs is the file (fdatasync()ed above) and
	 * the name that finds it, in active/. A name left in incoming/ by a
	 * crash is only a second link to a committed file, or a file that
	 * was never acknowledged, and queue_recover() removes both. */
	if (renamed > 0 && queue_dir_sync(q, &q->sync[to], to) < 0) {
		snprintf(why, sizeof(why), "fsync(queue/%s) failed: %m",
			 queue_names[to]);
		log_error("queue: %s", why);
	}

	for (i = 0; i < n; i++) {
		struct queue_writer *w = ws[i];

		if (results[i] == 0 && why[0] != '\0') {
			/* Not durable: take it back, the client gets a 4xx
			 * and sends it again. */
			unlinkat(q->fd[to], w->id, 0);
			queue_writer_fail(w, "%s", why);
			results[i] = -1;
		}
		if (results[i] == 0) {
			results[i] = 1;
			w->committed = 1;
			close(w->fd);
			w->fd = -1;
		} else {
			all = 0;
			queue_writer_drop(w);
		}
		if (errors_r != NULL)
			errors_r[i] = results[i] == 1 ? NULL : w->error;
	}
	return all ? 1 : -1;
}

int queue_commit_batch(struct queue_writer *const *ws,
		       const struct queue_envelope *const *envs, size_t n,
		       int *results, const char **errors_r)
{
	return queue_commit_into(ws, envs, n, QUEUE_ACTIVE, results, errors_r);
}

int queue_writer_commit_to(struct queue_writer *w,
			   const struct queue_envelope *env, enum queue_name to,
			   const char **error_r)
{
	int result;
	const char *error = NULL;

	if (to != QUEUE_ACTIVE && to != QUEUE_DEFERRED && to != QUEUE_HOLD &&
	    to != QUEUE_BAD) {
		*error_r = queue_writer_fail(w, "cannot commit into queue %s",
					     queue_name_str(to));
		return -1;
	}
	queue_commit_into(&w, &env, 1, to, &result, &error);
	if (result != 1)
		*error_r = error;
	return result;
}

int queue_writer_commit(struct queue_writer *w,
			const struct queue_envelope *env, const char **error_r)
{
	return queue_writer_commit_to(w, env, QUEUE_ACTIVE, error_r);
}

void queue_writer_abort(struct queue_writer *w)
{
	if (w == NULL)
		return;
	if (!w->committed)
		queue_writer_drop(w);
	free(w);
}

void queue_writer_free(struct queue_writer *w)
{
	queue_writer_abort(w);
}

/* ---- existing messages ---- */

/*
 * Opens and locks (shared, or exclusive when excl) message id wherever it
 * is but incoming/, and makes sure that it is still there once locked.
 * Returns 1, 0 when there is no such message, -1 on error.
 */
static int queue_msg_open(struct queue *q, const char *id, int excl,
			  struct queue_msg *m, const char **error_r)
{
	if (!queue_id_valid(id)) {
		*error_r = "invalid queue id";
		return -1;
	}
	for (int round = 0; round < 8; round++) {
		struct stat st, st2;
		int fd = -1, name;

		for (name = QUEUE_ACTIVE; name < QUEUE_COUNT; name++) {
			fd = openat(q->fd[name], id,
				    (excl ? O_RDWR : O_RDONLY) | O_CLOEXEC |
					    O_NOFOLLOW);
			if (fd >= 0)
				break;
			if (errno != ENOENT) {
				*error_r = queue_errorf("cannot open %s/%s/%s: "
							"%m",
							q->dir,
							queue_names[name], id);
				return -1;
			}
		}
		if (fd < 0) {
			/* Looked in one place while it moved to another? */
			if (round >= 1)
				return 0;
			continue;
		}
		if (queue_lock(fd, excl ? F_WRLCK : F_RDLCK, 1) < 0 ||
		    fstat(fd, &st) < 0) {
			*error_r = queue_errorf("cannot lock %s: %m", id);
			close(fd);
			return -1;
		}
		if (fstatat(q->fd[name], id, &st2, AT_SYMLINK_NOFOLLOW) == 0 &&
		    st.st_dev == st2.st_dev && st.st_ino == st2.st_ino) {
			m->fd = fd;
			m->where = (enum queue_name)name;
			m->size = (uint64_t)st.st_size;
			return 1;
		}
		close(fd); /* moved or deleted while we waited: look again */
	}
	*error_r = "message keeps moving";
	return -1;
}

static void queue_msg_close(struct queue_msg *m)
{
	if (m->fd >= 0)
		close(m->fd);
	m->fd = -1;
}

/* Moves a damaged file into bad/ (unless it is there). */
static void queue_quarantine(struct queue *q, const char *id,
			     struct queue_msg *m, const char *why)
{
	if (m->where == QUEUE_BAD)
		return;
	if (queue_rename(q->fd[m->where], q->fd[QUEUE_BAD], id) < 0) {
		log_error("queue: %s: damaged (%s), cannot move to bad/: %m",
			  id, why);
		return;
	}
	fsync(q->fd[QUEUE_BAD]);
	fsync(q->fd[m->where]);
	log_warn("queue: %s: damaged spool file moved from %s/ to bad/: %s", id,
		 queue_names[m->where], why);
	m->where = QUEUE_BAD;
}

static int queue_msg_damaged(struct queue *q, const char *id,
			     struct queue_msg *m, const char *why,
			     const char **error_r)
{
	enum queue_name was = m->where;

	queue_quarantine(q, id, m, why);
	*error_r = queue_errorf("%s: damaged spool file%s: %s", id,
				was != QUEUE_BAD && m->where == QUEUE_BAD
					? " (moved to bad/)"
					: "",
				why);
	return -1;
}

/* Reads and checks the trailer. Returns 1, or -1 (damaged: quarantined). */
static int queue_msg_trailer(struct queue *q, const char *id,
			     struct queue_msg *m, const char **error_r)
{
	unsigned char t[QUEUE_TRAILER_SIZE];
	const char *why;
	int r;

	if (m->size < QUEUE_TRAILER_SIZE)
		return queue_msg_damaged(q, id, m, "file too short", error_r);
	r = queue_pread_all(m->fd, t, sizeof(t), m->size - sizeof(t));
	if (r < 0) {
		*error_r = queue_errorf("read(%s) failed: %m", id);
		return -1;
	}
	if (r == 0)
		return queue_msg_damaged(q, id, m, "file too short", error_r);
	if (queue_trailer_decode(t, m->size, &m->tr, &why) < 0)
		return queue_msg_damaged(q, id, m, why, error_r);
	return 1;
}

/* Reads the whole envelope of an open message. Returns 1 or -1. */
static int queue_msg_envelope(struct queue *q, const char *id,
			      struct queue_msg *m,
			      struct queue_envelope **env_r,
			      const char **error_r)
{
	unsigned char *tail;
	size_t tail_len;
	const char *why;
	int r;

	if (queue_msg_trailer(q, id, m, error_r) < 0)
		return -1;
	tail_len = (size_t)(m->size - m->tr.body_len);
	tail = malloc(tail_len);
	if (tail == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	r = queue_pread_all(m->fd, tail, tail_len, m->tr.body_len);
	if (r < 0) {
		*error_r = queue_errorf("read(%s) failed: %m", id);
		free(tail);
		return -1;
	}
	if (r == 0 || queue_tail_parse(&m->tr, tail, env_r, &why) < 0) {
		free(tail);
		return queue_msg_damaged(q, id, m, r == 0 ? "short read" : why,
					 error_r);
	}
	free(tail);
	return 1;
}

int queue_envelope_load(struct queue *q, const char *id,
			enum queue_name *queue_r, struct queue_envelope **env_r,
			const char **error_r)
{
	struct queue_msg m;
	int r;

	r = queue_msg_open(q, id, 0, &m, error_r);
	if (r <= 0)
		return r;
	r = queue_msg_envelope(q, id, &m, env_r, error_r);
	if (r == 1 && queue_r != NULL)
		*queue_r = m.where;
	queue_msg_close(&m);
	return r;
}

int queue_envelope_load_from(struct queue *q, const char *id,
			     const enum queue_name *names, size_t n,
			     enum queue_name *queue_r,
			     struct queue_envelope **env_r,
			     const char **error_r)
{
	enum queue_name where;
	int r = queue_envelope_load(q, id, &where, env_r, error_r);
	size_t i = 0;

	if (r != 1)
		return r;
	while (i < n && names[i] != where)
		i++;
	if (i == n) {
		queue_envelope_free(*env_r);
		*env_r = NULL;
		return 0;
	}
	if (queue_r != NULL)
		*queue_r = where;
	return 1;
}

int queue_body_open(struct queue *q, const char *id, int *fd_r,
		    uint64_t *offset_r, uint64_t *len_r, const char **error_r)
{
	struct queue_msg m;
	int r;

	r = queue_msg_open(q, id, 0, &m, error_r);
	if (r <= 0)
		return r;
	if (queue_msg_trailer(q, id, &m, error_r) < 0) {
		queue_msg_close(&m);
		return -1;
	}
	/* The bytes never change while the file has this id's name: no lock
	 * is needed to read them, and keeping one would block this thread's
	 * own status updates. Once the message is retired they may (the file
	 * is reused): see struct queue_pool and queue_body_check(). */
	queue_lock(m.fd, F_UNLCK, 0);
	*fd_r = m.fd;
	*offset_r = 0;
	*len_r = m.tr.body_len;
	return 1;
}

int queue_body_check(struct queue *q, const char *id, int fd,
		     const char **error_r)
{
	struct stat st, st2;
	int found = 0;

	if (!queue_id_valid(id)) {
		*error_r = "invalid queue id";
		return -1;
	}
	/* Under the shared lock no move and no retire (they hold the
	 * exclusive one) can change where the file is while we look. */
	if (queue_lock(fd, F_RDLCK, 1) < 0 || fstat(fd, &st) < 0) {
		*error_r = queue_errorf("cannot lock %s: %m", id);
		return -1;
	}
	for (int i = QUEUE_ACTIVE; i < QUEUE_COUNT && st.st_nlink > 0 && !found;
	     i++) {
		found = fstatat(q->fd[i], id, &st2, AT_SYMLINK_NOFOLLOW) == 0 &&
			st.st_dev == st2.st_dev && st.st_ino == st2.st_ino;
	}
	queue_lock(fd, F_UNLCK, 0);
	return found ? 1 : 0;
}

int queue_rcpt_set_status(struct queue *q, const char *id, size_t idx,
			  enum queue_rcpt_status status, const char *error_text,
			  const char **error_r)
{
	unsigned char slot[QUEUE_RCPT_SLOT];
	struct queue_msg m;
	uint64_t off;
	uint32_t attempts = 0;
	int r;

	if (status != QUEUE_RCPT_PENDING && status != QUEUE_RCPT_DONE &&
	    status != QUEUE_RCPT_FAILED) {
		*error_r = "invalid recipient status";
		return -1;
	}
	r = queue_msg_open(q, id, 1, &m, error_r);
	if (r <= 0)
		return r;
	if (queue_msg_trailer(q, id, &m, error_r) < 0)
		goto fail;
	if (idx >= m.tr.rcpt_count) {
		*error_r = queue_errorf("%s: no recipient %zu", id, idx);
		goto fail;
	}
	off = m.tr.slots_off + QUEUE_MSG_SLOT + (uint64_t)idx * QUEUE_RCPT_SLOT;
	r = queue_pread_all(m.fd, slot, sizeof(slot), off);
	if (r > 0 &&
	    queue_get32(slot) == queue_crc32(slot + 4, QUEUE_RCPT_SLOT - 4))
		attempts = queue_get32(slot + 8);
	if (attempts < UINT32_MAX)
		attempts++;
	queue_rcpt_slot_build(slot, status, attempts, clock_now(), error_text);
	if (queue_pwrite_all(m.fd, slot, sizeof(slot), off) < 0 ||
	    fdatasync(m.fd) < 0) {
		*error_r = queue_errorf("cannot update %s: %m", id);
		goto fail;
	}
	queue_msg_close(&m);
	return 1;
fail:
	queue_msg_close(&m);
	return -1;
}

/* queue_move() and queue_defer(): set_retry says whether next_retry
 * replaces the stored one. */
static int queue_relocate(struct queue *q, const char *id, enum queue_name to,
			  int set_retry, int64_t next_retry, const char *reason,
			  const char **error_r)
{
	unsigned char slot[QUEUE_MSG_SLOT];
	struct queue_msg m;
	uint32_t flags = 0;
	int r;

	if (to == QUEUE_INCOMING || (unsigned)to >= QUEUE_COUNT) {
		*error_r = "invalid target queue";
		return -1;
	}
	r = queue_msg_open(q, id, 1, &m, error_r);
	if (r <= 0)
		return r;
	if (queue_msg_trailer(q, id, &m, error_r) < 0)
		goto fail;
	r = queue_pread_all(m.fd, slot, sizeof(slot), m.tr.slots_off);
	if (r > 0 &&
	    queue_get32(slot) == queue_crc32(slot + 4, QUEUE_MSG_SLOT - 4)) {
		flags = queue_get32(slot + 4);
		if (!set_retry)
			next_retry = (int64_t)queue_get64(slot + 8);
	} else if (!set_retry) {
		next_retry = 0;
	}
	queue_msg_slot_build(slot, flags, next_retry, reason);
	if (queue_pwrite_all(m.fd, slot, sizeof(slot), m.tr.slots_off) < 0 ||
	    fdatasync(m.fd) < 0) {
		*error_r = queue_errorf("cannot update %s: %m", id);
		goto fail;
	}
	if (m.where != to) {
		if (queue_rename(q->fd[m.where], q->fd[to], id) < 0) {
			*error_r = queue_errorf("rename(%s/%s, %s/%s) failed: "
						"%m",
						queue_names[m.where], id,
						queue_names[to], id);
			goto fail;
		}
		if (fsync(q->fd[to]) < 0 || fsync(q->fd[m.where]) < 0) {
			*error_r = queue_errorf("fsync(%s) failed: %m", q->dir);
			goto fail;
		}
	}
	queue_msg_close(&m);
	return 1;
fail:
	queue_msg_close(&m);
	return -1;
}

int queue_move(struct queue *q, const char *id, enum queue_name to,
	       const char *reason, const char **error_r)
{
	return queue_relocate(q, id, to, to == QUEUE_ACTIVE, 0, reason,
			      error_r);
}

int queue_defer(struct queue *q, const char *id, int64_t next_retry,
		const char *reason, const char **error_r)
{
	return queue_relocate(q, id, QUEUE_DEFERRED, 1, next_retry, reason,
			      error_r);
}

int queue_set_flags(struct queue *q, const char *id, uint32_t set,
		    uint32_t clear, const char **error_r)
{
	unsigned char slot[QUEUE_MSG_SLOT];
	struct queue_msg m;
	char reason[QUEUE_REASON_MAX + 1] = "";
	uint32_t flags = 0;
	int64_t next_retry = 0;
	int r;

	r = queue_msg_open(q, id, 1, &m, error_r);
	if (r <= 0)
		return r;
	if (queue_msg_trailer(q, id, &m, error_r) < 0)
		goto fail;
	r = queue_pread_all(m.fd, slot, sizeof(slot), m.tr.slots_off);
	if (r > 0 &&
	    queue_get32(slot) == queue_crc32(slot + 4, QUEUE_MSG_SLOT - 4) &&
	    queue_get16(slot + 16) <= QUEUE_REASON_MAX) {
		flags = queue_get32(slot + 4);
		next_retry = (int64_t)queue_get64(slot + 8);
		memcpy(reason, slot + 18, queue_get16(slot + 16));
		reason[queue_get16(slot + 16)] = '\0';
	}
	flags = (flags | set) & ~clear;
	queue_msg_slot_build(slot, flags, next_retry, reason);
	if (queue_pwrite_all(m.fd, slot, sizeof(slot), m.tr.slots_off) < 0 ||
	    fdatasync(m.fd) < 0) {
		*error_r = queue_errorf("cannot update %s: %m", id);
		goto fail;
	}
	queue_msg_close(&m);
	return 1;
fail:
	queue_msg_close(&m);
	return -1;
}

int queue_rcpts_update(struct queue *q, const char *id,
		       const struct queue_rcpt_update *u, size_t n,
		       const char **error_r)
{
	unsigned char slot[QUEUE_RCPT_SLOT];
	struct queue_msg m;
	int64_t now = clock_now();
	int r;

	for (size_t i = 0; i < n; i++) {
		if (u[i].status != QUEUE_RCPT_PENDING &&
		    u[i].status != QUEUE_RCPT_DONE &&
		    u[i].status != QUEUE_RCPT_FAILED) {
			*error_r = "invalid recipient status";
			return -1;
		}
	}
	r = queue_msg_open(q, id, 1, &m, error_r);
	if (r <= 0)
		return r;
	if (queue_msg_trailer(q, id, &m, error_r) < 0)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		uint64_t off;
		uint32_t attempts = 0;
		int64_t last = 0;

		if (u[i].idx >= m.tr.rcpt_count) {
			*error_r = queue_errorf("%s: no recipient %zu", id,
						u[i].idx);
			goto fail;
		}
		off = m.tr.slots_off + QUEUE_MSG_SLOT +
		      (uint64_t)u[i].idx * QUEUE_RCPT_SLOT;
		r = queue_pread_all(m.fd, slot, sizeof(slot), off);
		if (r > 0 &&
		    queue_get32(slot) ==
			    queue_crc32(slot + 4, QUEUE_RCPT_SLOT - 4)) {
			attempts = queue_get32(slot + 8);
			last = (int64_t)queue_get64(slot + 16);
		}
		if (u[i].attempted) {
			if (attempts < UINT32_MAX)
				attempts++;
			last = now;
		}
		queue_rcpt_slot_build(slot, u[i].status, attempts, last,
				      u[i].error);
		if (queue_pwrite_all(m.fd, slot, sizeof(slot), off) < 0) {
			*error_r = queue_errorf("cannot update %s: %m", id);
			goto fail;
		}
	}
	if (n > 0 && fdatasync(m.fd) < 0) {
		*error_r = queue_errorf("cannot update %s: %m", id);
		goto fail;
	}
	queue_msg_close(&m);
	return 1;
fail:
	queue_msg_close(&m);
	return -1;
}

int queue_delete(struct queue *q, const char *id, const char **error_r)
{
	struct queue_msg m;
	int r;

	r = queue_msg_open(q, id, 1, &m, error_r);
	if (r <= 0)
		return r;
	/* Shared with the other deletes under way, not with the commits. */
	if (unlinkat(q->fd[m.where], id, 0) < 0 ||
	    queue_dir_sync(q, &q->unlinks[m.where], m.where) < 0) {
		*error_r = queue_errorf("cannot remove %s/%s: %m",
					queue_names[m.where], id);
		queue_msg_close(&m);
		return -1;
	}
	queue_msg_close(&m);
	return 1;
}

int queue_retire(struct queue *q, const char *id, const char **error_r)
{
	struct queue_msg m;
	int keep, r;

	r = queue_msg_open(q, id, 1, &m, error_r);
	if (r <= 0)
		return r;
	/* Under the exclusive lock, as queue_delete(): readers that hold
	 * the file have finished, later ones find the name gone. */
	keep = m.size <= QUEUE_FREE_SIZE_MAX && queue_pool_room(q, m.size) &&
	       renameat(q->fd[m.where], id, q->free_fd, id) == 0;
	/* The same shared flush as queue_delete(): the message is gone for
	 * good before this returns, and before any writer may reuse the
	 * file (it is listed in the pool only after the flush). */
	if ((!keep && unlinkat(q->fd[m.where], id, 0) < 0) ||
	    queue_dir_sync(q, &q->unlinks[m.where], m.where) < 0) {
		*error_r = queue_errorf("cannot remove %s/%s: %m",
					queue_names[m.where], id);
		if (keep)
			unlinkat(q->free_fd, id, 0);
		queue_msg_close(&m);
		return -1;
	}
	queue_msg_close(&m);
	if (keep && !queue_pool_put(q, id, m.size))
		unlinkat(q->free_fd, id, 0);
	return 1;
}

/* ---- listing ---- */

/* Reads the valid ids of one queue, sorted. Returns 0 or -1. */
static int queue_list_ids(struct queue *q, enum queue_name name,
			  struct queue_idlist *l, const char **error_r)
{
	memset(l, 0, sizeof(*l));
	if ((unsigned)name >= QUEUE_COUNT) {
		*error_r = "invalid queue";
		return -1;
	}
	if (queue_list_dir(q, q->fd[name], queue_names[name], l, error_r) < 0)
		return -1;
	if (l->count > 1)
		qsort(l->ids, l->count, sizeof(*l->ids), queue_id_cmp);
	return 0;
}

int queue_scan(struct queue *q, enum queue_name name, queue_scan_cb *cb,
	       void *ctx, const char **error_r)
{
	struct queue_idlist l;

	if (queue_list_ids(q, name, &l, error_r) < 0)
		return -1;
	for (size_t i = 0; i < l.count; i++) {
		if (cb(ctx, l.ids[i]) != 0)
			break;
	}
	free(l.ids);
	return 1;
}

int queue_scan_queues(struct queue *q, const enum queue_name *names, size_t n,
		      queue_scan_cb *cb, void *ctx, const char **error_r)
{
	struct queue_idlist l = {0};
	size_t kept = 0;

	/* Forward, then back: a message that moves once, from a queue not
	 * read yet to one read already, is in the second reading. */
	for (size_t k = 0; n > 0 && k < 2 * n - 1; k++) {
		enum queue_name name = names[k < n ? k : 2 * n - 2 - k];

		if ((unsigned)name >= QUEUE_COUNT) {
			free(l.ids);
			*error_r = "invalid queue";
			return -1;
		}
		if (queue_list_dir(q, q->fd[name], queue_names[name], &l,
				   error_r) < 0)
			return -1;
	}
	if (l.count > 1)
		qsort(l.ids, l.count, sizeof(*l.ids), queue_id_cmp);
	for (size_t i = 0; i < l.count; i++) {
		if (kept > 0 && strcmp(l.ids[kept - 1], l.ids[i]) == 0)
			continue;
		memmove(l.ids[kept++], l.ids[i], QUEUE_ID_SIZE);
	}
	for (size_t i = 0; i < kept; i++) {
		if (cb(ctx, l.ids[i]) != 0)
			break;
	}
	free(l.ids);
	return 1;
}

struct queue_sent_scan {
	struct queue *q;
	const enum queue_name *names;
	size_t nnames;
	const char *account;
	struct queue_sent *sent;
	int oom;
};

static int queue_sent_cb(void *ctx, const char *id)
{
	struct queue_sent_scan *sc = ctx;
	struct queue_sent *s = sc->sent;
	struct queue_envelope *e = NULL;
	const char *err;
	char *account;

	/* Gone or moved out since it was listed, or damaged: not counted. */
	if (queue_envelope_load_from(sc->q, id, sc->names, sc->nnames, NULL, &e,
				     &err) != 1)
		return 0;
	if (e->auth_account[0] == '\0' ||
	    (sc->account != NULL &&
	     strcasecmp(e->auth_account, sc->account) != 0)) {
		queue_envelope_free(e);
		return 0;
	}
	if (s->n == s->cap) {
		size_t ncap = s->cap == 0 ? 64 : s->cap * 2;
		void *a = realloc(s->ids, ncap * sizeof(*s->ids));
		void *b;

		if (a != NULL)
			s->ids = a;
		b = a != NULL ? realloc(s->accounts, ncap * sizeof(char *))
			      : NULL;
		if (b == NULL) {
			queue_envelope_free(e);
			sc->oom = 1;
			return 1;
		}
		s->accounts = b;
		s->cap = ncap;
	}
	account = strdup(e->auth_account);
	queue_envelope_free(e);
	if (account == NULL) {
		sc->oom = 1;
		return 1;
	}
	memcpy(s->ids[s->n], id, QUEUE_ID_SIZE);
	s->accounts[s->n++] = account;
	return 0;
}

int queue_sent_by(struct queue *q, const enum queue_name *names, size_t n,
		  const char *account, struct queue_sent *sent,
		  const char **error_r)
{
	struct queue_sent_scan sc = {.q = q,
				     .names = names,
				     .nnames = n,
				     .account = account,
				     .sent = sent};

	int r = queue_scan_queues(q, names, n, queue_sent_cb, &sc, error_r);

	if (r > 0 && sc.oom) {
		*error_r = "out of memory";
		r = -1;
	}
	if (r < 0)
		queue_sent_free(sent);
	return r;
}

void queue_sent_free(struct queue_sent *sent)
{
	for (size_t i = 0; i < sent->n; i++)
		free(sent->accounts[i]);
	free(sent->accounts);
	free(sent->ids);
	memset(sent, 0, sizeof(*sent));
}

int queue_recover(struct queue *q, queue_scan_cb *cb, void *ctx,
		  size_t *removed_r, const char **error_r)
{
	struct queue_idlist l;
	size_t removed = 0;

	if (queue_list_ids(q, QUEUE_INCOMING, &l, error_r) < 0)
		return -1;
	for (size_t i = 0; i < l.count; i++) {
		int fd = openat(q->fd[QUEUE_INCOMING], l.ids[i],
				O_RDWR | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			continue;
		/* A writer still at work holds its lock: leave it alone. */
		if (queue_lock(fd, F_WRLCK, 0) == 0 &&
		    unlinkat(q->fd[QUEUE_INCOMING], l.ids[i], 0) == 0)
			removed++;
		close(fd);
	}
	free(l.ids);
	if (removed > 0) {
		if (fsync(q->fd[QUEUE_INCOMING]) < 0) {
			*error_r = queue_errorf("fsync(%s/incoming) failed: %m",
						q->dir);
			return -1;
		}
		log_info("queue: removed %zu unfinished message(s) from "
			 "incoming/",
			 removed);
	}
	if (removed_r != NULL)
		*removed_r = removed;
	if (cb != NULL)
		return queue_scan(q, QUEUE_ACTIVE, cb, ctx, error_r);
	return 1;
}

int queue_stats(struct queue *q, struct queue_stats *stats_r,
		const char **error_r)
{
	memset(stats_r, 0, sizeof(*stats_r));
	for (int i = 0; i < QUEUE_COUNT; i++) {
		struct queue_idlist l;

		if (queue_list_ids(q, (enum queue_name)i, &l, error_r) < 0)
			return -1;
		for (size_t k = 0; k < l.count; k++) {
			struct stat st;
			if (fstatat(q->fd[i], l.ids[k], &st,
				    AT_SYMLINK_NOFOLLOW) < 0)
				continue; /* moved meanwhile */
			stats_r->messages[i]++;
			stats_r->bytes[i] += (uint64_t)st.st_size;
		}
		free(l.ids);
	}
	return 1;
}

/* ---- event counts ---- */

#define QUEUE_EVENTS_MAX (1024 * 1024)

static pthread_mutex_t queue_events_lock = PTHREAD_MUTEX_INITIALIZER;

int queue_event_add(struct queue *q, enum queue_event ev, uint64_t count,
		    int64_t now, const char **error_r)
{
	char line[64], path[PATH_MAX + 16], old[PATH_MAX + 16];
	struct stat st;
	int n, rc = 0;

	if ((unsigned)ev >= QUEUE_EV_COUNT || count == 0)
		return 0;
	n = snprintf(line, sizeof(line), "%lld %d %llu\n", (long long)now,
		     (int)ev, (unsigned long long)count);
	snprintf(path, sizeof(path), "%s/events", q->dir);
	snprintf(old, sizeof(old), "%s/events.1", q->dir);
	pthread_mutex_lock(&queue_events_lock);
	/* Opened once and kept: two events per message. Another process
	 * that rotated the file meanwhile only makes a few lines land in
	 * events.1, which is read too. */
	if (q->events_fd >= 0 && q->events_size > QUEUE_EVENTS_MAX) {
		close(q->events_fd);
		q->events_fd = -1;
		if (stat(path, &st) == 0 && st.st_size > QUEUE_EVENTS_MAX)
			rename(path, old);
	}
	if (q->events_fd < 0) {
		q->events_fd = open(
			path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
		q->events_size =
			q->events_fd >= 0 && fstat(q->events_fd, &st) == 0
				? st.st_size
				: 0;
	}
	if (q->events_fd < 0 ||
	    queue_write_all(q->events_fd, line, (size_t)n) < 0) {
		*error_r = queue_errorf("cannot write %s: %m", path);
		rc = -1;
	} else {
		q->events_size += n;
	}
	pthread_mutex_unlock(&queue_events_lock);
	return rc;
}

static int queue_events_read(const char *path, int64_t now,
			     uint64_t hour[QUEUE_EV_COUNT],
			     uint64_t day[QUEUE_EV_COUNT])
{
	FILE *f = fopen(path, "re");
	char line[128];

	if (f == NULL)
		return errno == ENOENT ? 0 : -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		long long t;
		unsigned long long c;
		int ev;

		if (sscanf(line, "%lld %d %llu", &t, &ev, &c) != 3 || ev < 0 ||
		    ev >= QUEUE_EV_COUNT || t > now)
			continue;
		if (t > now - 86400)
			day[ev] += c;
		if (t > now - 3600)
			hour[ev] += c;
	}
	fclose(f);
	return 0;
}

int queue_event_counts(struct queue *q, int64_t now,
		       uint64_t hour[QUEUE_EV_COUNT],
		       uint64_t day[QUEUE_EV_COUNT], const char **error_r)
{
	char path[PATH_MAX + 16];

	memset(hour, 0, sizeof(uint64_t) * QUEUE_EV_COUNT);
	memset(day, 0, sizeof(uint64_t) * QUEUE_EV_COUNT);
	snprintf(path, sizeof(path), "%s/events.1", q->dir);
	if (queue_events_read(path, now, hour, day) < 0) {
		*error_r = queue_errorf("cannot read %s: %m", path);
		return -1;
	}
	snprintf(path, sizeof(path), "%s/events", q->dir);
	if (queue_events_read(path, now, hour, day) < 0) {
		*error_r = queue_errorf("cannot read %s: %m", path);
		return -1;
	}
	return 1;
}
