/* Bounded growable byte buffer. */
#ifndef PETREL_BUF_H
#define PETREL_BUF_H

#include <stddef.h>
#include <stdarg.h>

/*
 * A buffer that grows on demand up to a hard maximum `max` bytes of content.
 * The content is always followed by a NUL byte (not counted in len), so
 * buf_cstr() is safe for text. Appends past `max` fail and leave the buffer
 * unchanged. Never keep a pointer into data across an append: it may move.
 */
struct buf {
	char *data;
	size_t len;
	size_t cap;
	size_t max;
};

/* Sets up an empty buffer that may hold at most max bytes (a max above
 * SIZE_MAX / 4 counts as SIZE_MAX / 4). No allocation. */
void buf_init(struct buf *b, size_t max);
/* Frees the storage; the buffer may be reused after buf_init(). */
void buf_deinit(struct buf *b);
/* Empties the buffer, keeping its storage. */
void buf_reset(struct buf *b);
/* Returns 0 on success, -1 when the result would exceed max (or on ENOMEM). */
int buf_append(struct buf *b, const void *data, size_t len);
/* Appends a NUL-terminated string. Returns 0 or -1 as buf_append(). */
int buf_append_str(struct buf *b, const char *s);
/* Appends at most max bytes of s (NULL: nothing), control characters and
 * DEL as spaces: for a header value that must stay one line. Returns 0 or
 * -1 as buf_append(). */
int buf_append_clean(struct buf *b, const char *s, size_t max);
/* Appends formatted text. Returns 0, or -1 if it does not fit (unchanged). */
int buf_printf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int buf_vprintf(struct buf *b, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
/* Removes the first n bytes (all if n >= len). */
void buf_consume(struct buf *b, size_t n);
/* Keeps the first len bytes (all when len >= the length). */
void buf_truncate(struct buf *b, size_t len);
/* Returns the content as a NUL-terminated string ("" when empty); the
 * pointer belongs to the buffer and is valid until the next change. */
const char *buf_cstr(const struct buf *b);
/* Takes the storage out of the buffer (NUL-terminated, caller frees) and
 * leaves the buffer empty. Returns NULL on ENOMEM. */
char *buf_steal(struct buf *b);

#endif
