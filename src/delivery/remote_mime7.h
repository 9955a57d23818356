/* The 7-bit downgrade of an 8-bit message (RFC 6152 3, RFC 2045). */
#ifndef PETREL_REMOTE_MIME7_H
#define PETREL_REMOTE_MIME7_H

#include <stddef.h>
#include <stdint.h>

struct buf;

#define REMOTE_MIME7_PARTS 256 /* parts whose conversion is remembered */

/*
 * What a scan of the whole message found, so that the downgrade, which
 * runs as the message streams out, knows at the headers of each part
 * whether its body must be converted. Parts are numbered in the order
 * their headers start (0: the message itself).
 */
struct remote_mime7_info {
	int unconvertible; /* 8-bit bytes where no conversion can go */
	uint64_t eightbit[REMOTE_MIME7_PARTS / 64]; /* leaf bodies with 8-bit */
	uint64_t not_utf8[REMOTE_MIME7_PARTS / 64]; /* ... not valid UTF-8 */
};

struct remote_mime7;

/*
 * A streaming MIME walker over a message in CRLF lines, cut in arbitrary
 * chunks. With info NULL it scans (remote_mime7_result() then says what
 * it found); with the info of a scan of the same bytes it converts:
 * - leaf parts whose body holds 8-bit bytes become quoted-printable (their
 *   Content-Transfer-Encoding header replaced or added; a part without a
 *   Content-Type gets "text/plain; charset=utf-8", or unknown-8bit (RFC
 *   1428) when the bytes are not UTF-8, and a message without MIME-Version
 *   gets one);
 * - multiparts and message/rfc822 parts are walked into, their "8bit" or
 *   "binary" encoding becomes "7bit";
 * - unstructured header fields (Subject, Comments, Content-Description)
 *   with 8-bit bytes become RFC 2047 encoded-words.
 * What can not be converted this way (8-bit bytes in other header fields,
 * in a preamble or epilogue, in a multipart without boundary, in a part
 * past REMOTE_MIME7_PARTS or REMOTE_MIME7 nesting, or in an over-long
 * header block) sets `unconvertible`: such a message is not sent to a
 * server without 8BITMIME (5.6.3). Pure. NULL on ENOMEM.
 */
struct remote_mime7 *remote_mime7_new(const struct remote_mime7_info *info);
void remote_mime7_free(struct remote_mime7 *m);
/* Feeds in[0..len); converted bytes are appended to out (NULL when
 * scanning). Returns 0, or -1 when out is full. */
int remote_mime7_feed(struct remote_mime7 *m, const void *in, size_t len,
		      struct buf *out);
/* The end of the message. Returns 0 or -1 as remote_mime7_feed(). */
int remote_mime7_finish(struct remote_mime7 *m, struct buf *out);
/* After remote_mime7_finish() of a scan: what it found. */
void remote_mime7_result(const struct remote_mime7 *m,
			 struct remote_mime7_info *info_r);

#endif
