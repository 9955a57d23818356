/* Fuzzes the DATA reader. The first 6 bytes set max_line, max_size and
 * four chunk sizes; the rest is fed once whole and once in those chunks.
 * Both must agree; out never exceeds max_size; the end is found exactly at
 * the first CRLF "." CRLF (or a "." CRLF at the very start) and nowhere
 * else; and a message read without error is the dot-unstuffed input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp_data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_HEADER 6

struct fuzz_run {
	struct smtp_data_reader r;
	struct buf out;
	int ret;
	size_t used;
};

static void fuzz_feed(struct fuzz_run *run, const char *in, size_t len,
		      size_t max_line, size_t max_size, const uint8_t *chunks)
{
	size_t pos = 0, k = 0;

	smtp_data_init(&run->r, max_line, max_size);
	buf_init(&run->out, max_size + 64);
	run->ret = 0;
	run->used = 0;
	do {
		size_t n = len - pos, used = (size_t)-1;

		if (chunks != NULL && n > (size_t)chunks[k % 4] % 32 + 1)
			n = (size_t)chunks[k % 4] % 32 + 1;
		k++;
		run->ret =
			smtp_data_feed(&run->r, in + pos, n, &used, &run->out);
		if (run->ret < 0 || run->ret > 1 || used > n ||
		    (run->ret == 0 && used != n))
			abort();
		if (run->out.len > max_size)
			abort();
		pos += used;
		run->used += used;
	} while (run->ret == 0 && pos < len);
}

/* Where the data must end: after the first "\r\n.\r\n", or after a ".\r\n"
 * at the start. 0 when it must not end. */
static size_t fuzz_expected_end(const char *in, size_t len)
{
	const char *p;

	if (len >= 3 && memcmp(in, ".\r\n", 3) == 0)
		return 3;
	p = memmem(in, len, "\r\n.\r\n", 5);
	return p != NULL ? (size_t)(p - in) + 5 : 0;
}

/* A message read without error: the input before the final ".\r\n" is
 * CRLF-terminated lines, each without bare CR or LF, and out is those
 * lines with one leading dot removed. */
static void fuzz_check_unstuffed(const char *in, size_t used,
				 const struct buf *out, size_t max_line)
{
	size_t body = used - 3, i = 0, o = 0;

	while (i < body) {
		const char *eol = memmem(in + i, body - i, "\r\n", 2);
		size_t start = i, n;

		if (eol == NULL)
			abort();
		if (in[start] == '.')
			start++;
		n = (size_t)(eol - (in + start));
		if (memchr(in + start, '\r', n) != NULL ||
		    memchr(in + start, '\n', n) != NULL)
			abort();
		if (n + 2 > max_line)
			abort();
		if (o + n + 2 > out->len ||
		    memcmp(out->data + o, in + start, n) != 0 ||
		    memcmp(out->data + o + n, "\r\n", 2) != 0)
			abort();
		o += n + 2;
		i = (size_t)(eol - in) + 2;
	}
	if (o != out->len)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_run whole, split;
	const char *in = (const char *)data + FUZZ_HEADER;
	size_t len, max_line, max_size, end;

	if (size < FUZZ_HEADER)
		return 0;
	len = size - FUZZ_HEADER;
	max_line = data[0] & 0x80 ? 1000 : 3 + (size_t)(data[0] % 64);
	max_size = data[1] == 255 ? 1000000 : (size_t)data[1] * 4;

	fuzz_feed(&whole, in, len, max_line, max_size, NULL);
	fuzz_feed(&split, in, len, max_line, max_size, data + 2);

	if (whole.ret != split.ret || whole.used != split.used ||
	    whole.out.len != split.out.len ||
	    memcmp(buf_cstr(&whole.out), buf_cstr(&split.out), whole.out.len) !=
		    0 ||
	    whole.r.error != split.r.error || whole.r.size != split.r.size ||
	    whole.r.lines != split.r.lines ||
	    whole.r.nul_bytes != split.r.nul_bytes)
		abort();

	end = fuzz_expected_end(in, len);
	if (end == 0 ? whole.ret != 0 || whole.used != len
		     : whole.ret != 1 || whole.used != end)
		abort();
	if (whole.ret == 1 && whole.r.error == SMTP_DATA_OK)
		fuzz_check_unstuffed(in, whole.used, &whole.out, max_line);
	if (whole.r.error == SMTP_DATA_OK && whole.r.size != whole.out.len)
		abort();

	buf_deinit(&whole.out);
	buf_deinit(&split.out);
	return 0;
}
