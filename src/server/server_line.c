/* server_line: the command line reader of SMTP and POP3 (server_line.h). */
#include "server/server_line.h"

#include <string.h>

#include <sodium.h>

#include "lib/io.h"

enum server_line server_line_next(struct server_line_reader *r, struct io *io,
				  size_t max, char *out, size_t *len_r)
{
	for (;;) {
		size_t avail = io_input_len(io), n;
		const char *line;
		long lf;

		*len_r = 0;
		if (avail == 0)
			return SERVER_LINE_WAIT;
		/* The bound holds before a whole line has arrived. */
		lf = io_input_find_lf(io, r->skip ? avail : max);
		if (lf < 0) {
			if (r->skip) {
				io_input_drain(io, avail);
				return SERVER_LINE_WAIT;
			}
			if (avail < max)
				return SERVER_LINE_WAIT;
			/* Up to its LF when it is here already (a pipelined
			 * command may follow), else all, and the rest as it
			 * comes. */
			lf = io_input_find_lf(io, avail);
			io_input_drain(io, lf >= 0 ? (size_t)lf + 1 : avail);
			r->skip = lf < 0;
			return SERVER_LINE_TOO_LONG;
		}
		n = (size_t)lf; /* n < max: the line fits in out */
		line = io_input_pullup(io, n + 1);
		if (r->skip) {
			/* The end of a line dropped before. */
			io_input_drain(io, n + 1);
			r->skip = 0;
			continue;
		}
		if (n == 0 || line[n - 1] != '\r' ||
		    memchr(line, '\r', n - 1) != NULL ||
		    memchr(line, '\0', n) != NULL) {
			*len_r = n + 1 < max ? n + 1 : max;
			memcpy(out, line, *len_r);
			out[*len_r] = '\0';
			sodium_memzero((void *)line, n + 1);
			io_input_drain(io, n + 1);
			return SERVER_LINE_BAD;
		}
		memcpy(out, line, n - 1);
		out[n - 1] = '\0';
		*len_r = n - 1;
		/* Its memory is freed by the drain: no password stays in it. */
		sodium_memzero((void *)line, n + 1);
		io_input_drain(io, n + 1);
		return SERVER_LINE_OK;
	}
}
