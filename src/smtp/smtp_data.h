/* The DATA reader: dot-unstuffing and end-of-data detection. Pure. */
#ifndef PETREL_SMTP_DATA_H
#define PETREL_SMTP_DATA_H

#include <stddef.h>

#include "lib/buf.h"

/* Sticky: the first error is kept, and the rest of the message is read
 * and discarded up to the real end, so that the session can answer it. */
enum smtp_data_error {
	SMTP_DATA_OK,
	SMTP_DATA_BARE_NEWLINE,	 /* a LF without CR, or a CR without LF */
	SMTP_DATA_LINE_TOO_LONG, /* a line over max_line, CRLF counted */
	SMTP_DATA_TOO_BIG,	 /* over max_size, or out refused an append */
	SMTP_DATA_STOPPED /* the caller stopped keeping it (smtp_data_stop) */
};

/* Where in a line the reader is; internal, but public so that the reader
 * needs no allocation. */
enum smtp_data_state {
	SMTP_DATA_S_BOL,   /* at the start of a line */
	SMTP_DATA_S_TEXT,  /* inside a line */
	SMTP_DATA_S_CR,	   /* after a CR inside a line */
	SMTP_DATA_S_DOT,   /* after a '.' at the start of a line */
	SMTP_DATA_S_DOTCR, /* after ".\r" at the start of a line */
	SMTP_DATA_S_DONE   /* after the final ".\r\n" */
};

struct smtp_data_reader {
	size_t max_line;  /* longest line, CRLF counted */
	size_t max_size;  /* largest message, in unstuffed bytes */
	size_t size;	  /* unstuffed message bytes read, discarded ones too */
	size_t lines;	  /* CRLF line ends read */
	size_t nul_bytes; /* NUL bytes read: passed through, counted */
	size_t line_len;  /* unstuffed bytes of the current line so far */
	enum smtp_data_state state;
	enum smtp_data_error error;
};

/* Starts a message: the initial state counts as the start of a line. */
void smtp_data_init(struct smtp_data_reader *r, size_t max_line,
		    size_t max_size);

/* The caller can not keep the message: from now on the reader discards
 * it up to the real end, as after any error (the first error stays). */
void smtp_data_stop(struct smtp_data_reader *r);

/*
 * Reads len bytes of DATA input (RFC 5321 4.1.1.4, 4.5.2), appending the
 * unstuffed message to out: its lines with their CRLF, a leading '.' of a
 * line removed, the final ".\r\n" left out. CRLF is the only line end and
 * CRLF "." CRLF the only end of data (SMTP smuggling). out receives the
 * message up to the first error (r->error, sticky) and never more than
 * max_size bytes, the same however the input is split; after an error the
 * input is still read, and discarded, up to the real end.
 * Returns 0 when it needs more input (*used_r = len), or 1 when the end was
 * reached (*used_r = bytes consumed, through the final LF; the bytes after
 * it are the next commands and are not consumed; a later call returns 1
 * with *used_r = 0). Never -1.
 */
int smtp_data_feed(struct smtp_data_reader *r, const char *in, size_t len,
		   size_t *used_r, struct buf *out);

#endif
