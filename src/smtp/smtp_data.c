/*
 * smtp_data: the DATA reader. Turns the dot-stuffed DATA stream into the
 * message, incrementally, byte-exact across any split of the input, and
 * finds the one true end: CRLF "." CRLF. A bare CR or LF is never a line
 * end: it marks the message bad and the reader discards up to the real
 * end, so that "\n.\n" and friends can not end the message early and have
 * what follows read as commands (SMTP smuggling, CVE-2023-51764..51766).
 * Pure: no I/O; the session feeds it and answers by r->error.
 */
#include "smtp/smtp_data.h"

#include <string.h>

void smtp_data_init(struct smtp_data_reader *r, size_t max_line,
		    size_t max_size)
{
	memset(r, 0, sizeof(*r));
	r->max_line = max_line;
	r->max_size = max_size;
	r->state = SMTP_DATA_S_BOL;
	r->error = SMTP_DATA_OK;
}

static void smtp_data_fail(struct smtp_data_reader *r, enum smtp_data_error e)
{
	if (r->error == SMTP_DATA_OK)
		r->error = e;
}

void smtp_data_stop(struct smtp_data_reader *r)
{
	smtp_data_fail(r, SMTP_DATA_STOPPED);
}

/* n bytes of the message: counted, and appended while all is well. Cut
 * at the exact byte where max_size is passed, so that out is the same
 * however the input was split. */
static void smtp_data_put(struct smtp_data_reader *r, struct buf *out,
			  const char *p, size_t n)
{
	size_t room = r->size < r->max_size ? r->max_size - r->size : 0;

	r->size += n;
	if (r->error != SMTP_DATA_OK)
		return;
	if (n > room) {
		n = room;
		smtp_data_fail(r, SMTP_DATA_TOO_BIG);
	}
	/* out refuses only past its own bound or on ENOMEM: the message
	 * can not be kept either way. */
	if (n > 0 && buf_append(out, p, n) < 0)
		smtp_data_fail(r, SMTP_DATA_TOO_BIG);
}

/* n bytes of text of the current line: the line limit (RFC 5321
 * 4.5.3.1.6, CRLF counted) is checked at the exact byte that passes it. */
static void smtp_data_text(struct smtp_data_reader *r, struct buf *out,
			   const char *p, size_t n)
{
	size_t max = r->max_line > 2 ? r->max_line - 2 : 0;
	size_t room = r->line_len < max ? max - r->line_len : 0;

	r->line_len += n;
	if (n <= room) {
		smtp_data_put(r, out, p, n);
		return;
	}
	smtp_data_put(r, out, p, room);
	smtp_data_fail(r, SMTP_DATA_LINE_TOO_LONG);
	smtp_data_put(r, out, p + room, n - room);
}

/* A bare CR or LF: kept as one byte of content of a bad message. */
static void smtp_data_bare(struct smtp_data_reader *r, struct buf *out,
			   const char *c)
{
	smtp_data_fail(r, SMTP_DATA_BARE_NEWLINE);
	smtp_data_text(r, out, c, 1);
}

/*
 * From the start of a line at in[*i]: takes every whole line that needs
 * nothing of the byte-wise reader below (no leading dot, CRLF its only CR
 * or LF, within the line limit) and appends them all at once, as the
 * byte-wise reader would have, line by line. Stops at the first other
 * line, or at a line not yet whole, and leaves it to that reader. Returns
 * the number of lines taken.
 */
static size_t smtp_data_lines(struct smtp_data_reader *r, const char *in,
			      size_t len, size_t *i, struct buf *out)
{
	size_t max = r->max_line > 2 ? r->max_line - 2 : 0;
	size_t start = *i, pos = *i, n = 0;

	while (pos < len && in[pos] != '.') {
		const char *lf = memchr(in + pos, '\n', len - pos);
		size_t text, k;

		if (lf == NULL || lf == in + pos || lf[-1] != '\r')
			break;
		text = (size_t)(lf - 1 - (in + pos));
		if (text > max || memchr(in + pos, '\r', text) != NULL)
			break;
		for (k = pos; k < pos + text; k++) {
			const char *z = memchr(in + k, '\0', pos + text - k);

			if (z == NULL)
				break;
			r->nul_bytes++;
			k = (size_t)(z - in);
		}
		pos += text + 2;
		n++;
	}
	if (n > 0) {
		smtp_data_put(r, out, in + start, pos - start);
		r->lines += n;
		r->line_len = 0;
		*i = pos;
	}
	return n;
}

int smtp_data_feed(struct smtp_data_reader *r, const char *in, size_t len,
		   size_t *used_r, struct buf *out)
{
	size_t i = 0;

	if (r->state == SMTP_DATA_S_DONE) {
		*used_r = 0;
		return 1;
	}
	while (i < len) {
		char c = in[i];

		switch (r->state) {
		case SMTP_DATA_S_BOL:
			if (c == '.') {
				r->state = SMTP_DATA_S_DOT;
				i++;
				continue;
			}
			/* The common case, whole lines at a time; the state
			 * stays BOL after them. */
			if (r->error == SMTP_DATA_OK &&
			    smtp_data_lines(r, in, len, &i, out) > 0)
				continue;
			r->state = SMTP_DATA_S_TEXT;
			continue;
		case SMTP_DATA_S_TEXT: {
			size_t start = i;

			while (i < len && in[i] != '\r' && in[i] != '\n') {
				if (in[i] == '\0')
					r->nul_bytes++;
				i++;
			}
			if (i > start)
				smtp_data_text(r, out, in + start, i - start);
			if (i == len)
				break;
			if (in[i] == '\r') {
				r->state = SMTP_DATA_S_CR;
			} else {
				smtp_data_bare(r, out, "\n");
			}
			i++;
			continue;
		}
		case SMTP_DATA_S_CR:
			if (c == '\n') {
				smtp_data_put(r, out, "\r\n", 2);
				r->lines++;
				r->line_len = 0;
				r->state = SMTP_DATA_S_BOL;
				i++;
				continue;
			}
			/* The CR was bare; this byte is read again as text
			 * (another CR may yet be a line end). */
			smtp_data_bare(r, out, "\r");
			r->state = SMTP_DATA_S_TEXT;
			continue;
		case SMTP_DATA_S_DOT:
			if (c == '\r') {
				r->state = SMTP_DATA_S_DOTCR;
				i++;
				continue;
			}
			/* RFC 5321 4.5.2: the leading dot goes, the rest of
			 * the line is read as text. */
			r->state = SMTP_DATA_S_TEXT;
			continue;
		case SMTP_DATA_S_DOTCR:
			if (c == '\n') {
				r->state = SMTP_DATA_S_DONE;
				*used_r = i + 1;
				return 1;
			}
			/* ".\r" and no LF: a stuffed dot, then a bare CR. */
			smtp_data_bare(r, out, "\r");
			r->state = SMTP_DATA_S_TEXT;
			continue;
		case SMTP_DATA_S_DONE:
			break;
		}
		break;
	}
	*used_r = len;
	return 0;
}
