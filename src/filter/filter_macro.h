/* Macros of the content filter's notes and headers ($SENDER$ ...). Pure. */
#ifndef PETREL_FILTER_MACRO_H
#define PETREL_FILTER_MACRO_H

#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

/* What the macros stand for. Every string may be NULL (as ""). */
struct filter_macro_ctx {
	const char *sender;    /* envelope sender, "" for <> */
	const char *recipient; /* the recipient the rule fired for */
	const char *rule_name;
	const char *primary_domain;
	const char *message_id; /* as in the header, "<...>" */
	/* The message's header section (for $FROM$, $SUBJECT$,
	 * $HEADER:Name$); header_len bytes. */
	const char *header;
	size_t header_len;
	uint64_t size; /* $MESSAGESIZE$, bytes */
	int64_t now;   /* $CURRENTTIME$, seconds since the epoch */
};

/*
 * Appends tmpl to out with each known macro replaced by its value. A value
 * is inserted as data: it is never scanned for macros again, so a Subject
 * of "$SENDER$" stays that text. Values from the message are unfolded,
 * RFC 2047 words decoded, and every control character (CR and LF
 * included) becomes a space. Unknown $WORDS$ and lone '$' are copied as
 * written. Returns 0, or -1 when out is full.
 */
int filter_macro_expand(const char *tmpl, const struct filter_macro_ctx *c,
			struct buf *out);

/*
 * Appends one header field "Name: value\r\n" to out, value cleaned of
 * control characters and folded at white space so that lines stay within
 * 78 characters where possible (RFC 5322 2.1.1) and never exceed 998; a
 * run without white space longer than that is cut. Returns 0 or -1.
 */
int filter_macro_header(const char *name, const char *value, struct buf *out);

/* "Mon, 02 Jan 2006 15:04:05 +0000" for t (UTC). */
void filter_macro_date(int64_t t, char *out, size_t size);

#endif
