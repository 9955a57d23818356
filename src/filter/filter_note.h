/* Composing the content filter's notes. Pure. */
#ifndef PETREL_FILTER_NOTE_H
#define PETREL_FILTER_NOTE_H

#include <stddef.h>
#include <stdint.h>

#include "filter/filter_eval.h"
#include "lib/buf.h"

/*
 * Writes a whole note message (CRLF lines) into out: From, To, Subject
 * (folded, cleaned), Date, Message-ID <id@hostname>, Auto-Submitted:
 * auto-generated (RFC 3834, so that responders do not answer it), and the
 * text as text/plain UTF-8; with n->attach, a multipart/mixed with the
 * original as message/rfc822 after the text. Returns 0, or -1 when out is
 * full.
 */
int filter_note_compose(const struct filter_note *n, const char *hostname,
			const char *id, int64_t now, const char *orig,
			size_t orig_len, struct buf *out);

#endif
