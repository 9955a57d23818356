/*
 * smtp_spill: keeps a message under DATA in bounded memory (smtp_spill.h).
 * Small messages, nearly all mail, never touch the disk before the
 * commit. A large one keeps its header section in memory, where the
 * end-of-DATA stages read and change it, and its body in an unnamed
 * scratch file on the spool's file system; the commit copies that file
 * behind the stamped header (copy_file_range), and the content filter
 * reads the whole message through a mapping (smtp_view_open).
 */
#include "smtp/smtp_spill.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lib/header.h"
#include "queue/queue.h"

void smtp_spill_init(struct smtp_spill *sp)
{
	memset(sp, 0, sizeof(*sp));
	sp->fd = -1;
	sp->error = SMTP_SPILL_OK;
}

void smtp_spill_reset(struct smtp_spill *sp)
{
	if (sp->fd >= 0)
		close(sp->fd);
	smtp_spill_init(sp);
}

/*
 * Where the header section of msg ends for good, or (size_t)-1 when it
 * does not end within SMTP_SPILL_MEMORY bytes. It ends after the empty
 * line, or at a whole line that is no header field (header_next leaves
 * such a line to the body); a line cut by the end of msg decides nothing.
 */
static size_t smtp_spill_head_end(const struct buf *msg)
{
	struct header_field f;
	size_t pos = 0, last;

	do
		last = pos;
	while (header_next(msg->data, msg->len, &pos, &f) == 1);
	if (pos > SMTP_SPILL_MEMORY)
		return (size_t)-1;
	if (pos > last) /* the empty line, consumed */
		return pos;
	if (pos < msg->len && memchr(msg->data + pos, '\n', msg->len - pos))
		return pos;
	return (size_t)-1;
}

static int smtp_spill_write(struct smtp_spill *sp, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(sp->fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			snprintf(sp->why, sizeof(sp->why),
				 "cannot write the message: %s",
				 strerror(errno));
			return -1;
		}
		p += w;
		n -= (size_t)w;
		sp->len += (uint64_t)w;
	}
	return 0;
}

int smtp_spill_step(struct smtp_spill *sp, struct buf *msg, struct queue *q,
		    int final)
{
	const char *err = NULL;

	if (sp->error != SMTP_SPILL_OK)
		return -1;
	if (sp->fd < 0) {
		size_t end;

		if (msg->len <= SMTP_SPILL_MEMORY)
			return 0;
		end = smtp_spill_head_end(msg);
		if (end == (size_t)-1) {
			sp->error = SMTP_SPILL_HEADER_TOO_BIG;
			return -1;
		}
		sp->fd = queue_scratch_open(q, &err);
		if (sp->fd < 0) {
			snprintf(sp->why, sizeof(sp->why), "%s", err);
			sp->error = SMTP_SPILL_NO_SPOOL;
			return -1;
		}
		sp->head_len = end;
	}
	if (!final && msg->len - sp->head_len < SMTP_SPILL_CHUNK)
		return 0;
	if (smtp_spill_write(sp, msg->data + sp->head_len,
			     msg->len - sp->head_len) < 0) {
		sp->error = SMTP_SPILL_NO_SPOOL;
		buf_truncate(msg, sp->head_len);
		return -1;
	}
	buf_truncate(msg, sp->head_len);
	return 0;
}

uint64_t smtp_spill_size(const struct smtp_spill *sp, const struct buf *msg)
{
	return (uint64_t)msg->len + (sp->fd >= 0 ? sp->len : 0);
}

int smtp_view_open(struct smtp_view *v, const struct buf *msg,
		   const struct smtp_spill *sp)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE), head, body;
	char *base;

	memset(v, 0, sizeof(*v));
	if (sp->fd < 0 || sp->len == 0) {
		v->data = buf_cstr(msg);
		v->len = msg->len;
		return 0;
	}
	if (sp->len > SIZE_MAX / 2) {
		errno = EFBIG;
		return -1;
	}
	/* [anonymous: ... header][file: body][anonymous: zeros, the NUL],
	 * the header ending where the file's first page starts. */
	head = (msg->len + page - 1) / page * page;
	body = ((size_t)sp->len + 1 + page - 1) / page * page;
	base = mmap(NULL, head + body, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED)
		return -1;
	if (mmap(base + head, (size_t)sp->len, PROT_READ,
		 MAP_SHARED | MAP_FIXED, sp->fd, 0) == MAP_FAILED) {
		int e = errno;

		munmap(base, head + body);
		errno = e;
		return -1;
	}
	memcpy(base + head - msg->len, msg->data, msg->len);
	v->map = base;
	v->map_len = head + body;
	v->data = base + head - msg->len;
	v->len = msg->len + (size_t)sp->len;
	return 0;
}

void smtp_view_close(struct smtp_view *v)
{
	if (v->map != NULL)
		munmap(v->map, v->map_len);
	memset(v, 0, sizeof(*v));
}
