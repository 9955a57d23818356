/*
 * local: delivery into <data_dir>/mail/<domain>/<localpart>/Maildir by the
 * Maildir protocol (https://cr.yp.to/proto/maildir.html), as Dovecot's
 * maildir-save.c does it: write a uniquely named file in tmp/, fsync() it,
 * rename() it into new/ and fsync() new/, so that a message is either whole
 * in new/ or absent. Owns nothing but the Maildir file names' counter.
 * Messages are stored with LF line ends, as qmail, Postfix and Dovecot
 * store them; the size with CRLF goes into the name (W=) for POP3 and IMAP.
 */
#include "delivery/local.h"
#include "lib/log.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LOCAL_CHUNK 65536
#define LOCAL_PART_MAX 255
#define LOCAL_HOST_MAX 200

struct local_out {
	int fd;
	char *buf;
	size_t len;
	uint64_t size;	/* bytes written to the file */
	uint64_t lines; /* LF bytes among them */
};

/*
 * Group fsync() of new/ folders: threads that renamed a message into the
 * same new/ at about the same time share one fsync() of it. A thread
 * registers its rename, then waits until an fsync() of that folder that
 * started after the registration has returned; the first to find none
 * running runs it for everyone registered so far. A few folders at a
 * time are tracked; past that, a thread syncs on its own.
 */
#define LOCAL_SYNC_SLOTS 16

struct local_sync_waiter {
	struct local_sync_waiter *next;
	uint64_t seq;
	int done;
	int error;
};

struct local_sync_slot {
	char path[PATH_MAX + 8];
	int users; /* threads registered: the slot is free at 0 */
	int running;
	uint64_t changes;
	struct local_sync_waiter *waiters;
};

static pthread_mutex_t local_sync_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t local_sync_cond = PTHREAD_COND_INITIALIZER;
static struct local_sync_slot local_syncs[LOCAL_SYNC_SLOTS];

static atomic_uint local_counter;
static _Thread_local char local_errbuf[512];

static const char *local_errorf(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

static const char *local_errorf(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(local_errbuf, sizeof(local_errbuf), fmt, ap);
	va_end(ap);
	return local_errbuf;
}

/* A domain or localpart that is safe as one path component. */
static int local_part_ok(const char *s, size_t n)
{
	if (n == 0 || n > LOCAL_PART_MAX || s[0] == '.')
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f || c == '/')
			return 0;
	}
	return 1;
}

/* Writes "mail/<domain>/<localpart>/Maildir" into rel. Returns 1 or 0. */
static int local_maildir_rel(const char *account, char *rel, size_t size)
{
	const char *at = account != NULL ? strrchr(account, '@') : NULL;
	size_t llen, dlen, i;
	int n;

	if (at == NULL)
		return 0;
	llen = (size_t)(at - account);
	dlen = strlen(at + 1);
	if (!local_part_ok(account, llen) || !local_part_ok(at + 1, dlen))
		return 0;
	n = snprintf(rel, size, "mail/%s/%.*s/Maildir", at + 1, (int)llen,
		     account);
	if (n < 0 || (size_t)n >= size)
		return 0;
	/* One mailbox per address whatever its case (RFC 5321 2.4 lets the
	 * local part be case-sensitive; no mail system here does that). */
	for (i = 5; i < 5 + dlen + 1 + llen; i++)
		rel[i] = (char)tolower((unsigned char)rel[i]);
	return 1;
}

int local_maildir_path(const char *data_dir, const char *account, char *path_r,
		       size_t size)
{
	char rel[PATH_MAX];
	int n;

	if (!local_maildir_rel(account, rel, sizeof(rel)))
		return 0;
	n = snprintf(path_r, size, "%s/%s", data_dir, rel);
	return n >= 0 && (size_t)n < size;
}

static int local_fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int r;

	if (fd < 0)
		return -1;
	r = fsync(fd);
	close(fd);
	return r;
}

/* local_fsync_dir(path), shared with the other threads that wait for
 * the same folder (see local_syncs). Returns 0 or -1 (errno set). */
static int local_fsync_dir_shared(const char *path)
{
	struct local_sync_slot *slot = NULL, *free_slot = NULL;
	struct local_sync_waiter me;

	if (strlen(path) >= sizeof(slot->path))
		return local_fsync_dir(path);
	memset(&me, 0, sizeof(me));
	pthread_mutex_lock(&local_sync_lock);
	for (int i = 0; i < LOCAL_SYNC_SLOTS && slot == NULL; i++) {
		if (local_syncs[i].users == 0) {
			if (free_slot == NULL)
				free_slot = &local_syncs[i];
		} else if (strcmp(local_syncs[i].path, path) == 0) {
			slot = &local_syncs[i];
		}
	}
	if (slot == NULL && free_slot == NULL) {
		pthread_mutex_unlock(&local_sync_lock);
		return local_fsync_dir(path);
	}
	if (slot == NULL) {
		slot = free_slot;
		snprintf(slot->path, sizeof(slot->path), "%s", path);
		slot->changes = 0;
		slot->running = 0;
		slot->waiters = NULL;
	}
	slot->users++;
	me.seq = ++slot->changes;
	me.next = slot->waiters;
	slot->waiters = &me;
	while (!me.done) {
		struct local_sync_waiter **p;
		uint64_t upto;
		int error = 0;

		if (slot->running) {
			pthread_cond_wait(&local_sync_cond, &local_sync_lock);
			continue;
		}
		upto = slot->changes;
		slot->running = 1;
		pthread_mutex_unlock(&local_sync_lock);
		if (local_fsync_dir(path) < 0)
			error = errno != 0 ? errno : EIO;
		pthread_mutex_lock(&local_sync_lock);
		slot->running = 0;
		for (p = &slot->waiters; *p != NULL;) {
			struct local_sync_waiter *w = *p;

			if (w->seq <= upto) {
				w->done = 1;
				w->error = error;
				*p = w->next;
			} else {
				p = &w->next;
			}
		}
		pthread_cond_broadcast(&local_sync_cond);
	}
	slot->users--;
	pthread_mutex_unlock(&local_sync_lock);
	if (me.error != 0) {
		errno = me.error;
		return -1;
	}
	return 0;
}

/*
 * Makes every folder of <data_dir>/<rel> and its tmp/, new/ and cur/; each
 * one made is made durable by an fsync() of its parent. Returns 0 or -1.
 */
static int local_mkdirs(const char *data_dir, const char *rel)
{
	static const char *const subs[] = {"tmp", "new", "cur"};
	char path[PATH_MAX + 8];
	size_t base, len;
	int n;

	n = snprintf(path, sizeof(path), "%s/%s", data_dir, rel);
	if (n < 0 || (size_t)n >= sizeof(path) - 5) {
		errno = ENAMETOOLONG;
		return -1;
	}
	len = (size_t)n;
	base = strlen(data_dir) + 1;
	for (size_t i = base; i <= len; i++) {
		if (path[i] != '/' && path[i] != '\0')
			continue;
		path[i] = '\0';
		if (mkdir(path, 0700) == 0) {
			char *slash = strrchr(path, '/');
			*slash = '\0';
			if (local_fsync_dir(path) < 0)
				return -1;
			*slash = '/';
		} else if (errno != EEXIST) {
			return -1;
		}
		if (i < len)
			path[i] = '/';
	}
	for (size_t i = 0; i < 3; i++) {
		snprintf(path + len, sizeof(path) - len, "/%s", subs[i]);
		if (mkdir(path, 0700) < 0 && errno != EEXIST)
			return -1;
	}
	path[len] = '\0';
	return local_fsync_dir(path);
}

/* The host part of a Maildir name: '/' and ':' are encoded as the Maildir
 * spec says, since they would end the name or start its flags. */
static void local_host_part(const char *hostname, char *out, size_t size)
{
	size_t o = 0;

	for (const char *p = hostname; *p != '\0' && o + 5 < size; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '/' || c == ':') {
			o += (size_t)snprintf(out + o, size - o, "\\%03o", c);
		} else if (c > 0x20 && c < 0x7f) {
			out[o++] = (char)c;
		}
	}
	if (o == 0)
		out[o++] = 'x';
	out[o] = '\0';
}

static int local_flush(struct local_out *o)
{
	size_t done = 0;

	while (done < o->len) {
		ssize_t n = write(o->fd, o->buf + done, o->len - done);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		done += (size_t)n;
	}
	o->len = 0;
	return 0;
}

static int local_put(struct local_out *o, const char *data, size_t n)
{
	while (n > 0) {
		size_t room = LOCAL_CHUNK - o->len;
		size_t k = n < room ? n : room;

		memcpy(o->buf + o->len, data, k);
		for (const char *p = data, *end = data + k;
		     (p = memchr(p, '\n', (size_t)(end - p))) != NULL; p++)
			o->lines++;
		o->len += k;
		o->size += k;
		data += k;
		n -= k;
		if (o->len == LOCAL_CHUNK && local_flush(o) < 0)
			return -1;
	}
	return 0;
}

/*
 * Copies the message from the spool into o, CRLF turned into LF (a CR
 * that ends a chunk waits for the next one). Returns 0, or -1 with
 * *error_r set.
 */
static int local_copy_body(const struct local_delivery *d, struct local_out *o,
			   const char **error_r)
{
	char *in = malloc(LOCAL_CHUNK);
	uint64_t off = d->body_offset, left = d->body_len;
	int cr = 0;

	if (in == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	while (left > 0) {
		size_t want = left < LOCAL_CHUNK ? (size_t)left : LOCAL_CHUNK;
		ssize_t n = pread(d->body_fd, in, want, (off_t)off);
		size_t start = 0;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			*error_r =
				n < 0 ? local_errorf("reading the spool "
						     "file failed: %m")
				      : "spool file shorter than its message";
			free(in);
			return -1;
		}
		off += (uint64_t)n;
		left -= (uint64_t)n;
		for (size_t i = 0; i < (size_t)n; i++) {
			const char *p;

			if (cr) {
				cr = 0;
				if (in[i] != '\n' && local_put(o, "\r", 1) < 0)
					goto write_failed;
			}
			p = memchr(in + i, '\r', (size_t)n - i);
			if (p == NULL)
				break;
			i = (size_t)(p - in);
			if (local_put(o, in + start, i - start) < 0)
				goto write_failed;
			start = i + 1;
			cr = 1;
		}
		if (local_put(o, in + start, (size_t)n - start) < 0)
			goto write_failed;
	}
	free(in);
	if (cr && local_put(o, "\r", 1) < 0)
		goto write_failed_freed;
	return 0;
write_failed:
	free(in);
write_failed_freed:
	*error_r = local_errorf("write failed: %m");
	return -1;
}

static int local_addr_ok(const char *s)
{
	return s != NULL && strpbrk(s, "\r\n") == NULL && strlen(s) <= 1000;
}

int local_deliver(const struct local_delivery *d, char *path_r,
		  size_t path_size, const char **error_r)
{
	char rel[PATH_MAX], dir[PATH_MAX], host[LOCAL_HOST_MAX + 8];
	char base[LOCAL_HOST_MAX + 96], tmp[PATH_MAX + 400];
	char final[PATH_MAX + 400], newdir[PATH_MAX + 8];
	struct local_out o = {.fd = -1};
	struct timespec ts;
	unsigned q = atomic_fetch_add(&local_counter, 1);
	int n, fd = -1;

	if (!local_maildir_rel(d->account, rel, sizeof(rel))) {
		*error_r = "invalid mailbox name";
		return 0;
	}
	if (!local_addr_ok(d->sender) || !local_addr_ok(d->recipient)) {
		*error_r = "invalid address for a header";
		return 0;
	}
	n = snprintf(dir, sizeof(dir), "%s/%s", d->data_dir, rel);
	if (n < 0 || (size_t)n >= sizeof(dir) - 64) {
		*error_r = "mailbox path too long";
		return 0;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	local_host_part(d->hostname != NULL ? d->hostname : "localhost", host,
			sizeof(host));
	snprintf(base, sizeof(base), "%lld.M%06ldP%ldQ%u.%s",
		 (long long)ts.tv_sec, ts.tv_nsec / 1000, (long)getpid(), q,
		 host);
	snprintf(tmp, sizeof(tmp), "%s/tmp/%s", dir, base);
	snprintf(newdir, sizeof(newdir), "%s/new", dir);

	for (int tries = 0; tries < 2 && fd < 0; tries++) {
		fd = open(tmp,
			  O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
			  0600);
		if (fd >= 0 || errno != ENOENT || tries > 0)
			break;
		if (local_mkdirs(d->data_dir, rel) < 0) {
			*error_r = local_errorf("cannot create %s: %m", rel);
			return -1;
		}
	}
	if (fd < 0) {
		*error_r =
			local_errorf("cannot create %s/tmp/%s: %m", rel, base);
		return -1;
	}
	o.fd = fd;
	o.buf = malloc(LOCAL_CHUNK);
	if (o.buf == NULL) {
		*error_r = "out of memory";
		goto fail;
	}
	{
		char head[2100];
		n = snprintf(head, sizeof(head),
			     "Return-Path: <%s>\nDelivered-To: <%s>\n",
			     d->sender, d->recipient);
		if (n < 0 || (size_t)n >= sizeof(head) ||
		    local_put(&o, head, (size_t)n) < 0) {
			*error_r = local_errorf("write failed: %m");
			goto fail;
		}
	}
	if (local_copy_body(d, &o, error_r) < 0)
		goto fail;
	if (local_flush(&o) < 0) {
		*error_r = local_errorf("write to %s/tmp failed: %m", rel);
		goto fail;
	}
	if (fsync(fd) < 0) {
		*error_r = local_errorf("fsync of %s/tmp/%s failed: %m", rel,
					base);
		goto fail;
	}
	n = snprintf(final, sizeof(final), "%s/%s,S=%" PRIu64 ",W=%" PRIu64,
		     newdir, base, o.size, o.size + o.lines);
	if (n < 0 || (size_t)n >= sizeof(final)) {
		*error_r = "mailbox path too long";
		goto fail;
	}
	if (rename(tmp, final) < 0) {
		*error_r = local_errorf("rename into %s/new failed: %m", rel);
		goto fail;
	}
	if (local_fsync_dir_shared(newdir) < 0) {
		/* The file is in new/ but may not survive a crash; report it
		 * as failed so that it is tried again (twice, never zero). */
		*error_r = local_errorf("fsync of %s/new failed: %m", rel);
		close(fd);
		free(o.buf);
		return -1;
	}
	close(fd);
	free(o.buf);
	if (path_r != NULL)
		snprintf(path_r, path_size, "%s/new/%s", rel,
			 final + strlen(newdir) + 1);
	return 1;
fail:
	close(fd);
	unlink(tmp);
	free(o.buf);
	return -1;
}
