/*
 * The command line reader that SMTP and POP3 share: CRLF lines of a
 * bounded length from a session's input, with the same rules for both
 * (STYLE.md 4): the bound holds before a whole line has arrived, an
 * over-long line is dropped up to its end, a line with a bare CR or LF or
 * a NUL is refused, and the bytes of every line are wiped from the input
 * buffer once copied (a line may carry a password).
 */
#ifndef PETREL_SERVER_LINE_H
#define PETREL_SERVER_LINE_H

#include <stddef.h>

struct io;

enum server_line {
	SERVER_LINE_WAIT,     /* no whole line yet */
	SERVER_LINE_OK,	      /* a line, without its CRLF, in out */
	SERVER_LINE_TOO_LONG, /* a line over max: dropped */
	SERVER_LINE_BAD	      /* bare CR or LF, or NUL: dropped, raw in out */
};

struct server_line_reader {
	int skip; /* dropping the rest of an over-long line */
};

/*
 * Takes the next line of io's input: at most max bytes with its CRLF,
 * copied into out (at least max + 1 bytes). OK: out holds the line
 * without CRLF and a NUL, *len_r its length. BAD: out holds the first
 * *len_r raw bytes (for the log; never used as a command). TOO_LONG: the
 * line is dropped up to its LF, and when that has not arrived, the rest
 * as it comes. WAIT: nothing more to do until more input arrives.
 */
enum server_line server_line_next(struct server_line_reader *r, struct io *io,
				  size_t max, char *out, size_t *len_r);

#endif
