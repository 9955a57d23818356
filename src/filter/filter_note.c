/*
 * filter_note: composes the notes that content filter rules send (a
 * server-generated message: it is queued, never filtered again). Owns
 * nothing.
 */
#include "filter/filter_note.h"

#include <stdio.h>
#include <string.h>

#include "filter/filter_macro.h"

/* The text with every line end as CRLF. */
static int filter_note_text(struct buf *out, const char *t)
{
	for (; *t != '\0'; t++) {
		if (*t == '\r')
			continue;
		if (*t == '\n' ? buf_append(out, "\r\n", 2) < 0
			       : buf_append(out, t, 1) < 0)
			return -1;
	}
	return 0;
}

int filter_note_compose(const struct filter_note *n, const char *hostname,
			const char *id, int64_t now, const char *orig,
			size_t orig_len, struct buf *out)
{
	char date[64], mid[300], boundary[128];

	filter_macro_date(now, date, sizeof(date));
	snprintf(mid, sizeof(mid), "<%s.note@%s>", id, hostname);
	snprintf(boundary, sizeof(boundary), "=_petrel_note_%s", id);
	if (filter_macro_header("From", n->from, out) < 0 ||
	    filter_macro_header("To", n->to, out) < 0 ||
	    filter_macro_header("Subject", n->subject, out) < 0 ||
	    filter_macro_header("Date", date, out) < 0 ||
	    filter_macro_header("Message-ID", mid, out) < 0 ||
	    buf_append_str(out, "Auto-Submitted: auto-generated\r\n"
				"MIME-Version: 1.0\r\n") < 0)
		return -1;
	if (!n->attach)
		return buf_append_str(out, "Content-Type: text/plain; "
					   "charset=utf-8\r\n"
					   "Content-Transfer-Encoding: 8bit\r\n"
					   "\r\n") < 0 ||
				       filter_note_text(out, n->text) < 0 ||
				       buf_append_str(out, "\r\n") < 0
			       ? -1
			       : 0;
	if (buf_printf(out,
		       "Content-Type: multipart/mixed; boundary=\"%s\"\r\n"
		       "\r\n--%s\r\n"
		       "Content-Type: text/plain; charset=utf-8\r\n"
		       "Content-Transfer-Encoding: 8bit\r\n\r\n",
		       boundary, boundary) < 0 ||
	    filter_note_text(out, n->text) < 0 ||
	    buf_printf(out,
		       "\r\n--%s\r\n"
		       "Content-Type: message/rfc822\r\n"
		       "Content-Disposition: attachment; "
		       "filename=\"original.eml\"\r\n\r\n",
		       boundary) < 0 ||
	    buf_append(out, orig, orig_len) < 0)
		return -1;
	if (orig_len < 2 || memcmp(orig + orig_len - 2, "\r\n", 2) != 0)
		if (buf_append(out, "\r\n", 2) < 0)
			return -1;
	return buf_printf(out, "--%s--\r\n", boundary);
}
