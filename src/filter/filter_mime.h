/* A bounded MIME walker for the content filter (RFC 2045-2047, 2231). Pure. */
#ifndef PETREL_FILTER_MIME_H
#define PETREL_FILTER_MIME_H

#include <stddef.h>

#include "lib/buf.h"

#define FILTER_MIME_DEPTH_MAX 16 /* nested multiparts and messages */
#define FILTER_MIME_PARTS_MAX 1000
#define FILTER_MIME_TEXT_MAX (64u * 1024 * 1024) /* decoded text kept */

struct filter_mime_part {
	char type[128];	    /* "text/plain", lower-case */
	char filename[256]; /* UTF-8, control characters as '?'; "" none */
	int attachment;	    /* a file: disposition attachment or a name */
	int depth;	    /* 0: the message itself */
	/* Offsets in the message: the part's header, body and end. */
	size_t start, body, end;
};

struct filter_mime {
	struct filter_mime_part *parts; /* the leaves, in message order */
	size_t nparts;
	/* The text of the text/plain and text/html leaves that are not
	 * attachments: transfer encoding undone, converted to UTF-8 (bytes
	 * that are not UTF-8 become '?'), HTML tags dropped; parts are
	 * separated by a newline. */
	struct buf text;
	/* Set when a limit was reached (depth, parts, a boundary in a
	 * Content-Type field too long to read whole): what lies past it was
	 * not looked at. limit_why names the first one (static text). */
	int limit_hit;
	const char *limit_why;
};

/*
 * Walks the message (header and body, len bytes) into *m (free with
 * filter_mime_deinit). Never fails on bad MIME: what cannot be parsed is
 * taken as one opaque part. Returns 0, or -1 on ENOMEM.
 */
int filter_mime_parse(const char *msg, size_t len, struct filter_mime *m);
void filter_mime_deinit(struct filter_mime *m);

/*
 * Writes the message without its attachments into out: each attachment
 * part is replaced by a text/plain part naming the file; a message that is
 * itself one attachment gets a text body instead. Returns the number of
 * attachments removed, or -1 when out is full.
 */
int filter_mime_strip(const char *msg, size_t len, const struct filter_mime *m,
		      struct buf *out);

/* Decoders, exposed for tests: append the decoded bytes to out. Return 0
 * or -1 when out is full. */
int filter_mime_base64(const char *in, size_t len, struct buf *out);
int filter_mime_qp(const char *in, size_t len, struct buf *out);
/* Converts len bytes in charset (UTF-8, US-ASCII, ISO-8859-1/Latin-1,
 * Windows-1252; anything else is read as UTF-8) to UTF-8. */
int filter_mime_to_utf8(const char *in, size_t len, const char *charset,
			struct buf *out);

#endif
