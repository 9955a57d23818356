/*
 * A message under DATA, in bounded memory: the first SMTP_SPILL_MEMORY
 * bytes are kept in memory; past them, only the header section stays
 * there and the rest goes into a scratch file of the spool as it arrives.
 * A session's memory thus does not depend on the message's size.
 */
#ifndef PETREL_SMTP_SPILL_H
#define PETREL_SMTP_SPILL_H

#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

struct queue;

/* A message up to this size stays in memory whole; a larger one must end
 * its header section within it (else 552 5.3.4). */
#define SMTP_SPILL_MEMORY (128 * 1024)
/* Past the header section, bytes are written out in chunks of this size
 * (the most kept in memory besides the header section). */
#define SMTP_SPILL_CHUNK (64 * 1024)

enum smtp_spill_error {
	SMTP_SPILL_OK,
	SMTP_SPILL_HEADER_TOO_BIG, /* no end of header within the memory */
	SMTP_SPILL_NO_SPOOL	   /* the scratch file failed */
};

struct smtp_spill {
	int fd;		 /* -1: the whole message is in memory */
	uint64_t len;	 /* bytes in fd: the message past head_len */
	size_t head_len; /* once spilled: the header section in msg */
	enum smtp_spill_error error;
	char why[160]; /* for the log, with SMTP_SPILL_NO_SPOOL */
};

void smtp_spill_init(struct smtp_spill *sp);
/* Closes the scratch file, if any, and starts over. */
void smtp_spill_reset(struct smtp_spill *sp);

/*
 * Called after DATA bytes were appended to msg. When msg passes
 * SMTP_SPILL_MEMORY (or, once spilled, has SMTP_SPILL_CHUNK bytes past the
 * header section, or final is set) the bytes past the header section move
 * into the scratch file. Returns 0, or -1 with sp->error set (sticky:
 * the caller stops keeping the message).
 */
int smtp_spill_step(struct smtp_spill *sp, struct buf *msg, struct queue *q,
		    int final);

/* The message's size: msg and what is in the scratch file. */
uint64_t smtp_spill_size(const struct smtp_spill *sp, const struct buf *msg);

/*
 * The whole message as one read-only run of bytes, followed by a NUL: msg
 * itself when nothing was spilled, else msg (the header section) copied
 * in front of a mapping of the scratch file, page-aligned so that no body
 * byte is copied. Returns 0, or -1 (errno) when it cannot be mapped.
 */
struct smtp_view {
	const char *data;
	size_t len;
	void *map; /* NULL when data points into msg */
	size_t map_len;
};
int smtp_view_open(struct smtp_view *v, const struct buf *msg,
		   const struct smtp_spill *sp);
void smtp_view_close(struct smtp_view *v);

#endif
