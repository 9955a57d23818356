/*
 * Fuzzes the 7-bit downgrade (remote_mime7.c) with a message from anyone:
 * the input is scanned in two chunks cut at a point the first byte picks,
 * then, when the scan finds it convertible, converted in chunks cut
 * elsewhere: no byte above 127 may come out, and the output, scanned
 * again, must be convertible too (a conversion that broke the structure
 * would show as 8-bit data or headers where none can go).
 */
#include <stdint.h>
#include <string.h>

#include "delivery/remote_mime7.h"
#include "lib/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_run(const struct remote_mime7_info *info, const uint8_t *p,
		     size_t n, size_t cut, struct buf *out,
		     struct remote_mime7_info *res)
{
	struct remote_mime7 *m = remote_mime7_new(info);

	if (m == NULL)
		return;
	if (cut > n)
		cut = n;
	if (remote_mime7_feed(m, p, cut, out) < 0 ||
	    remote_mime7_feed(m, p + cut, n - cut, out) < 0 ||
	    remote_mime7_finish(m, out) < 0)
		__builtin_trap();
	if (res != NULL)
		remote_mime7_result(m, res);
	remote_mime7_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct remote_mime7_info info, again;
	struct buf out;
	size_t cut;

	if (size < 1 || size > 200000)
		return 0;
	cut = data[0] * size / 256;
	data++;
	size--;
	fuzz_run(NULL, data, size, cut, NULL, &info);
	if (info.unconvertible)
		return 0;
	buf_init(&out, size * 6 + 1024 * 1024);
	fuzz_run(&info, data, size, size - cut, &out, NULL);
	for (size_t i = 0; i < out.len; i++)
		if ((unsigned char)out.data[i] & 0x80)
			__builtin_trap();
	fuzz_run(NULL, (const uint8_t *)out.data, out.len, cut, NULL, &again);
	if (again.unconvertible)
		__builtin_trap();
	buf_deinit(&out);
	return 0;
}
