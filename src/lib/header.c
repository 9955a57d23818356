/*
 * header: iterates the fields of a message's header section (RFC 5322 2.2)
 * without copying. The SMTP server uses it to stamp trace headers, drop
 * client-supplied X-Authenticated-Sender fields and read the Message-ID.
 */
#include "lib/header.h"

#include <string.h>
#include <strings.h>

/* End of the line starting at p: offset just after its LF (or len). */
static size_t header_line_end(const char *msg, size_t len, size_t p)
{
	const char *lf = memchr(msg + p, '\n', len - p);

	return lf != NULL ? (size_t)(lf - msg) + 1 : len;
}

int header_next(const char *msg, size_t len, size_t *pos,
		struct header_field *f)
{
	size_t p = *pos, n, end;

	if (p >= len)
		return 0;
	if (msg[p] == '\n') {
		*pos = p + 1;
		return 0;
	}
	if (msg[p] == '\r' && p + 1 < len && msg[p + 1] == '\n') {
		*pos = p + 2;
		return 0;
	}
	/* field-name = 1*ftext, printable US-ASCII but ':' (33..126). */
	for (n = p; n < len && msg[n] != ':'; n++) {
		unsigned char c = (unsigned char)msg[n];
		if (c < 33 || c > 126)
			return 0;
	}
	if (n == len || n == p)
		return 0;
	end = header_line_end(msg, len, p);
	/* Folded continuation lines start with white space. */
	while (end < len && (msg[end] == ' ' || msg[end] == '\t'))
		end = header_line_end(msg, len, end);
	f->name = msg + p;
	f->name_len = n - p;
	f->value = msg + n + 1;
	f->value_len = end - (n + 1);
	while (f->value_len > 0 && (f->value[f->value_len - 1] == '\n' ||
				    f->value[f->value_len - 1] == '\r'))
		f->value_len--;
	f->raw = msg + p;
	f->raw_len = end - p;
	*pos = end;
	return 1;
}

int header_is(const struct header_field *f, const char *name)
{
	size_t n = strlen(name);

	return f->name_len == n && strncasecmp(f->name, name, n) == 0;
}

size_t header_unfold(const struct header_field *f, char *out, size_t size)
{
	size_t o = 0;

	if (size == 0)
		return 0;
	for (size_t i = 0; i < f->value_len && o + 1 < size; i++) {
		unsigned char c = (unsigned char)f->value[i];

		/* Only the CRLF of a fold goes; a bare CR is a control
		 * character like any other. */
		if (c == '\n' || (c == '\r' && i + 1 < f->value_len &&
				  f->value[i + 1] == '\n'))
			continue;
		if (c == '\t')
			c = ' ';
		if (c < 0x20 || c == 0x7f)
			c = '?';
		if (c == ' ' && (o == 0 || out[o - 1] == ' '))
			continue;
		out[o++] = (char)c;
	}
	while (o > 0 && out[o - 1] == ' ')
		o--;
	out[o] = '\0';
	return o;
}
