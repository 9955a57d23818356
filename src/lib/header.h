/* RFC 5322 header section iteration. Pure. */
#ifndef PETREL_HEADER_H
#define PETREL_HEADER_H

#include <stddef.h>

struct header_field {
	const char *name; /* not NUL-terminated */
	size_t name_len;
	const char *value; /* after the colon, folded lines included */
	size_t value_len;  /* without the final CRLF */
	const char *raw;   /* the whole field with its final CRLF */
	size_t raw_len;
};

/*
 * Reads the next header field of msg from *pos. Returns 1 with *f filled
 * and *pos moved past the field; 0 at the end of the header section, with
 * *pos at the first byte of the body: after the empty line, or at the first
 * line that is not a field (no "name:" with printable name characters, as
 * RFC 5322 2.2 requires), which then belongs to the body.
 */
int header_next(const char *msg, size_t len, size_t *pos,
		struct header_field *f);

/* 1 when the field's name is `name`, case-insensitively. */
int header_is(const struct header_field *f, const char *name);

/*
 * Copies the value with folding removed (CRLF before white space dropped)
 * and surrounding white space trimmed into out, control characters
 * replaced by '?'. Returns the length (cut at size - 1).
 */
size_t header_unfold(const struct header_field *f, char *out, size_t size);

#endif
