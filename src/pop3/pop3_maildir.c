/*
 * pop3_maildir: the blocking half of POP3 over Maildir, run on worker
 * threads: taking the snapshot of new/ and cur/ at login, opening a
 * message (and marking it seen), and removing deleted messages at QUIT.
 * Another reader (Dovecot's IMAP) may rename files meanwhile to change
 * their flags; a message is then found again by its base name.
 */
#include "pop3/pop3_maildir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define POP3_MAILDIR_CHUNK 65536

static _Thread_local char pop3_maildir_errbuf[512];

static const char *pop3_maildir_errorf(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

static const char *pop3_maildir_errorf(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(pop3_maildir_errbuf, sizeof(pop3_maildir_errbuf), fmt, ap);
	va_end(ap);
	return pop3_maildir_errbuf;
}

void pop3_maildir_free(struct pop3_msg *msgs, size_t count)
{
	if (msgs == NULL)
		return;
	for (size_t i = 0; i < count; i++)
		free(msgs[i].name);
	free(msgs);
}

/* The size with CRLF of a message without W= in its name: read it. */
static int pop3_maildir_count(int dfd, const char *name, uint64_t *size_r)
{
	struct pop3_conv c;
	char *in, *out;
	uint64_t size = 0;
	char tail[8];
	int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0)
		return -1;
	in = malloc(POP3_MAILDIR_CHUNK);
	out = malloc(2 * POP3_MAILDIR_CHUNK);
	if (in == NULL || out == NULL) {
		free(in);
		free(out);
		close(fd);
		errno = ENOMEM;
		return -1;
	}
	pop3_conv_init(&c, 0, -1);
	for (;;) {
		ssize_t n = read(fd, in, POP3_MAILDIR_CHUNK);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			free(in);
			free(out);
			close(fd);
			errno = e;
			return -1;
		}
		if (n == 0)
			break;
		size += pop3_conv_feed(&c, in, (size_t)n, out);
	}
	size += pop3_conv_finish(&c, tail);
	free(in);
	free(out);
	close(fd);
	*size_r = size;
	return 0;
}

struct pop3_list {
	struct pop3_msg *msgs;
	size_t count, cap;
};

static int pop3_maildir_scan_dir(const char *maildir, const char *sub,
				 int in_cur, struct pop3_list *l,
				 const char **error_r)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *d;
	int n = snprintf(path, sizeof(path), "%s/%s", maildir, sub);

	if (n < 0 || (size_t)n >= sizeof(path)) {
		*error_r = "mailbox path too long";
		return -1;
	}
	d = opendir(path);
	if (d == NULL) {
		if (errno == ENOENT)
			return 0;
		*error_r = pop3_maildir_errorf("cannot open %s: %m", path);
		return -1;
	}
	while ((errno = 0, de = readdir(d)) != NULL) {
		struct pop3_msg *m;
		uint64_t size;

		if (de->d_name[0] == '.' ||
		    (de->d_type != DT_REG && de->d_type != DT_UNKNOWN))
			continue;
		if (!pop3_mailbox_name_wsize(de->d_name, &size) &&
		    pop3_maildir_count(dirfd(d), de->d_name, &size) < 0) {
			if (errno == ENOENT || errno == ELOOP)
				continue; /* gone meanwhile, or a link */
			*error_r = pop3_maildir_errorf("cannot read %s/%s: %m",
						       path, de->d_name);
			closedir(d);
			return -1;
		}
		if (l->count == l->cap) {
			size_t ncap = l->cap != 0 ? l->cap * 2 : 64;
			struct pop3_msg *nm =
				realloc(l->msgs, ncap * sizeof(*nm));
			if (nm == NULL)
				goto nomem;
			l->msgs = nm;
			l->cap = ncap;
		}
		m = &l->msgs[l->count];
		memset(m, 0, sizeof(*m));
		m->name = strdup(de->d_name);
		if (m->name == NULL)
			goto nomem;
		m->size = size;
		m->in_cur = in_cur != 0;
		pop3_mailbox_uidl(m->name, m->uidl);
		l->count++;
	}
	if (errno != 0) {
		*error_r = pop3_maildir_errorf("cannot read %s: %m", path);
		closedir(d);
		return -1;
	}
	closedir(d);
	return 0;
nomem:
	*error_r = "out of memory";
	closedir(d);
	return -1;
}

int pop3_maildir_scan(const char *maildir, struct pop3_msg **msgs_r,
		      size_t *count_r, const char **error_r)
{
	struct pop3_list l = {0};

	if (pop3_maildir_scan_dir(maildir, "new", 0, &l, error_r) < 0 ||
	    pop3_maildir_scan_dir(maildir, "cur", 1, &l, error_r) < 0) {
		pop3_maildir_free(l.msgs, l.count);
		return -1;
	}
	pop3_mailbox_sort(l.msgs, l.count);
	*msgs_r = l.msgs;
	*count_r = l.count;
	return 1;
}

/* Looks for a file with the same base name in cur/, then new/. Returns 1
 * with name_r and *in_cur_r, 0 when there is none, -1 on error. */
static int pop3_maildir_find(const char *maildir, const char *name,
			     char *name_r, size_t size, int *in_cur_r)
{
	static const char *const subs[] = {"cur", "new"};
	size_t base = pop3_mailbox_base_len(name);

	for (int i = 0; i < 2; i++) {
		char path[PATH_MAX];
		struct dirent *de;
		DIR *d;
		int n = snprintf(path, sizeof(path), "%s/%s", maildir, subs[i]);

		if (n < 0 || (size_t)n >= sizeof(path))
			return -1;
		d = opendir(path);
		if (d == NULL) {
			if (errno == ENOENT)
				continue;
			return -1;
		}
		while ((de = readdir(d)) != NULL) {
			if (pop3_mailbox_base_len(de->d_name) != base ||
			    strncmp(de->d_name, name, base) != 0)
				continue;
			n = snprintf(name_r, size, "%s", de->d_name);
			closedir(d);
			if (n < 0 || (size_t)n >= size)
				return -1;
			*in_cur_r = i == 0;
			return 1;
		}
		closedir(d);
	}
	return 0;
}

/* Opens <maildir>/<cur|new>/<name>. Returns the fd or -1 (errno). */
static int pop3_maildir_open_at(const char *maildir, const char *name,
				int in_cur)
{
	char path[PATH_MAX];
	int n = snprintf(path, sizeof(path), "%s/%s/%s", maildir,
			 in_cur ? "cur" : "new", name);

	if (n < 0 || (size_t)n >= sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
}

int pop3_maildir_open(const char *maildir, const char *name, int in_cur,
		      int mark_seen, char *name_r, size_t size, int *in_cur_r,
		      const char **error_r)
{
	char seen[NAME_MAX + 8], from[PATH_MAX], to[PATH_MAX];
	int fd, n, r;

	n = snprintf(name_r, size, "%s", name);
	if (n < 0 || (size_t)n >= size) {
		*error_r = "message name too long";
		errno = ENAMETOOLONG;
		return -1;
	}
	*in_cur_r = in_cur;
	fd = pop3_maildir_open_at(maildir, name_r, *in_cur_r);
	if (fd < 0 && errno == ENOENT) {
		r = pop3_maildir_find(maildir, name, name_r, size, in_cur_r);
		if (r == 1) {
			fd = pop3_maildir_open_at(maildir, name_r, *in_cur_r);
		} else {
			errno = r == 0 ? ENOENT : EIO;
			fd = -1;
		}
	}
	if (fd < 0) {
		*error_r =
			pop3_maildir_errorf("cannot open %s/%s: %m",
					    *in_cur_r ? "cur" : "new", name_r);
		return -1;
	}
	if (!mark_seen)
		return fd;
	r = pop3_mailbox_seen_name(name_r, seen, sizeof(seen));
	if (r == 0 && *in_cur_r)
		return fd;
	if (r < 0)
		return fd; /* a name too long for the flag: leave it */
	snprintf(from, sizeof(from), "%s/%s/%s", maildir,
		 *in_cur_r ? "cur" : "new", name_r);
	n = snprintf(to, sizeof(to), "%s/cur/%s", maildir, seen);
	if (n < 0 || (size_t)n >= sizeof(to))
		return fd;
	/* The open fd reads the message whatever its name becomes; a failed
	 * rename only leaves the flag unset. */
	if (rename(from, to) == 0 &&
	    (size_t)snprintf(name_r, size, "%s", seen) < size)
		*in_cur_r = 1;
	return fd;
}

long pop3_maildir_read(int fd, uint64_t off, char *buf, size_t len,
		       const char **error_r)
{
	for (;;) {
		ssize_t n = pread(fd, buf, len, (off_t)off);

		if (n >= 0)
			return (long)n;
		if (errno != EINTR) {
			*error_r = pop3_maildir_errorf("read failed: %m");
			return -1;
		}
	}
}

static int pop3_maildir_unlink(const char *maildir, const char *name,
			       int in_cur)
{
	char path[PATH_MAX];
	int n = snprintf(path, sizeof(path), "%s/%s/%s", maildir,
			 in_cur ? "cur" : "new", name);

	if (n < 0 || (size_t)n >= sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return unlink(path);
}

static void pop3_maildir_fsync_dir(const char *maildir, const char *sub)
{
	char path[PATH_MAX];
	int fd, n = snprintf(path, sizeof(path), "%s/%s", maildir, sub);

	if (n < 0 || (size_t)n >= sizeof(path))
		return;
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return;
	if (fsync(fd) < 0) {
		/* The unlinks happened; only their durability is unsure. */
	}
	close(fd);
}

size_t pop3_maildir_expunge(const char *maildir, const struct pop3_msg *msgs,
			    size_t count, const char **error_r)
{
	size_t failed = 0, removed = 0;

	for (size_t i = 0; i < count; i++) {
		char name[NAME_MAX + 8];
		int in_cur;

		if (!msgs[i].deleted)
			continue;
		if (pop3_maildir_unlink(maildir, msgs[i].name,
					msgs[i].in_cur) == 0) {
			removed++;
			continue;
		}
		if (errno == ENOENT) {
			int r = pop3_maildir_find(maildir, msgs[i].name, name,
						  sizeof(name), &in_cur);
			if (r == 0)
				continue; /* removed by someone else */
			if (r == 1 &&
			    pop3_maildir_unlink(maildir, name, in_cur) == 0) {
				removed++;
				continue;
			}
			if (r == 1 && errno == ENOENT)
				continue;
		}
		if (failed++ == 0)
			*error_r = pop3_maildir_errorf("cannot remove %s: %m",
						       msgs[i].name);
	}
	if (removed > 0) {
		pop3_maildir_fsync_dir(maildir, "cur");
		pop3_maildir_fsync_dir(maildir, "new");
	}
	return failed;
}
