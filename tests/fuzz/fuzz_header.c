/* Fuzzes the header iterator and the header stamping of accepted mail. */
#include <stdint.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/header.h"
#include "smtp/smtp_commit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *msg = (const char *)data;
	struct header_field f;
	size_t pos = 0, last = 0;
	char out[256];
	struct buf b;
	char mid[256], subj[128];
	long body;
	struct smtp_stamp st = {
		.hostname = "mx.example.test",
		.helo = "client",
		.rdns = "",
		.ip = "127.0.0.1",
		.proto = "ESMTPSA",
		.tls_info = "",
		.queue_id = "0123456789ABCDEF",
		.rcpt_for = "a@example.test",
		.auth = "a@example.test",
		.submission = 1,
		.now = 1700000000,
	};

	while (header_next(msg, size, &pos, &f) == 1) {
		/* Always moves forward, never past the end. */
		if (pos <= last || pos > size)
			__builtin_trap();
		last = pos;
		header_unfold(&f, out, sizeof(out));
		if (strlen(out) >= sizeof(out))
			__builtin_trap();
	}
	if (pos > size)
		__builtin_trap();

	buf_init(&b, size + 4096);
	body = smtp_stamp_headers(&b, msg, size, &st, mid, sizeof(mid), subj,
				  sizeof(subj));
	if (body > (long)size)
		__builtin_trap();
	buf_deinit(&b);
	return 0;
}
