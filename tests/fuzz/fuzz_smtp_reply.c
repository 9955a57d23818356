/*
 * Fuzzes what a remote SMTP server can send the client: the input is cut
 * into lines as the client cuts them (at LF, a CR before it dropped), fed
 * to the bounded reply parser, and complete replies go through the EHLO
 * keyword reader and the one-line summary. Also pushes the input through
 * the DATA encoder and checks that no bare CR or LF and no unstuffed dot
 * line comes out (OpenSMTPD's CVE-2020-8794 was in this code).
 */
#include <stdint.h>
#include <string.h>

#include "delivery/remote_data.h"
#include "delivery/remote_reply.h"
#include "lib/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_check_wire(const char *w, size_t n)
{
	int bol = 1;

	for (size_t i = 0; i < n; i++) {
		if (w[i] == '\r' && (i + 1 >= n || w[i + 1] != '\n'))
			__builtin_trap();
		if (w[i] == '\n' && (i == 0 || w[i - 1] != '\r'))
			__builtin_trap();
		if (bol && w[i] == '.' && i + 2 < n && w[i + 1] != '.' &&
		    !(w[i + 1] == '\r' && i + 3 == n))
			__builtin_trap();
		bol = w[i] == '\n';
	}
	if (n < 3 || memcmp(w + n - 3, ".\r\n", 3) != 0)
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size;
	struct remote_reply r;
	struct remote_ehlo e;
	struct remote_data d;
	char sum[300];
	struct buf out;

	remote_reply_init(&r);
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)((nl != NULL ? nl : end) - p);
		const char *err;
		int rc;

		if (n > 0 && p[n - 1] == '\r')
			n--;
		rc = remote_reply_feed(&r, p, n, &err);
		if (rc < 0) {
			remote_reply_init(&r);
		} else if (rc == 1) {
			if (r.code < 200 || r.code > 599 ||
			    r.text_len > REMOTE_REPLY_TEXT_MAX ||
			    strlen(r.text) != r.text_len)
				__builtin_trap();
			remote_ehlo_parse(&r, &e);
			remote_reply_summary(&r, sum, sizeof(sum));
			if (strlen(sum) >= sizeof(sum))
				__builtin_trap();
			remote_reply_init(&r);
		}
		p = nl != NULL ? nl + 1 : end;
	}

	buf_init(&out, size * 3 + 16);
	remote_data_init(&d);
	/* In two pieces: the state must carry across a chunk boundary. */
	if (remote_data_encode(&d, data, size / 2, &out) < 0 ||
	    remote_data_encode(&d, data + size / 2, size - size / 2, &out) <
		    0 ||
	    remote_data_finish(&d, &out) < 0)
		__builtin_trap();
	fuzz_check_wire(out.data, out.len);
	buf_deinit(&out);
	return 0;
}
