/*
 * remote_data: the byte-level encoding of DATA for the SMTP client (see
 * remote_data.h). Pure; table-driven tests in tests/unit/test_remote.c.
 */
#include "delivery/remote_data.h"

#include <string.h>

#include "lib/buf.h"

void remote_data_init(struct remote_data *d)
{
	d->bol = 1;
	d->cr = 0;
}

int remote_data_encode(struct remote_data *d, const void *in, size_t len,
		       struct buf *out)
{
	const unsigned char *p = in;
	size_t run = 0; /* start of the plain bytes not yet copied */

	for (size_t i = 0; i < len; i++) {
		unsigned char c = p[i];

		if (d->cr && c != '\n') {
			/* A bare CR ended the line before this byte. */
			if (buf_append(out, p + run, i - run) < 0 ||
			    buf_append(out, "\r\n", 2) < 0)
				return -1;
			run = i;
			d->cr = 0;
			d->bol = 1;
		}
		if (c == '\r') {
			if (buf_append(out, p + run, i - run) < 0)
				return -1;
			run = i + 1;
			d->cr = 1;
			continue;
		}
		if (c == '\n') {
			/* CRLF or a bare LF: both leave as CRLF. */
			if (buf_append(out, p + run, i - run) < 0 ||
			    buf_append(out, "\r\n", 2) < 0)
				return -1;
			run = i + 1;
			d->cr = 0;
			d->bol = 1;
			continue;
		}
		if (d->bol && c == '.') {
			if (buf_append(out, p + run, i - run) < 0 ||
			    buf_append(out, ".", 1) < 0)
				return -1;
			run = i;
		}
		d->bol = 0;
	}
	return buf_append(out, p + run, len - run);
}

int remote_data_finish(struct remote_data *d, struct buf *out)
{
	if (d->cr || !d->bol) {
		if (buf_append(out, "\r\n", 2) < 0)
			return -1;
	}
	d->cr = 0;
	d->bol = 1;
	return buf_append(out, ".\r\n", 3);
}

int remote_data_addr_ok(const char *addr)
{
	size_t n = strlen(addr);

	if (n > 512)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)addr[i];

		if (c < 0x20 || c == 0x7f || c == '<' || c == '>')
			return 0;
	}
	return 1;
}
