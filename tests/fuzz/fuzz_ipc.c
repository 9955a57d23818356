/*
 * Fuzzes the message layer's decoders (lib/ipc.c): a packet (its first
 * byte says whether a descriptor came with it) through ipc_parse, then its
 * payload through the record reader as a receiver would read a message:
 * strings, numbers and bytes in a fixed order, and the end.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lib/ipc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ipc_msg m;
	struct ipc_reader r;
	char s[320];
	uint64_t v;
	const unsigned char *p;
	size_t n;

	if (size < 1)
		return 0;
	if (ipc_parse(data + 1, size - 1, data[0] & 1, &m) < 0)
		return 0;
	/* Whatever the payload, the reader never reads past it. */
	ipc_reader_init(&r, m.data, m.len);
	for (int i = 0; i < 64; i++) {
		uint16_t tag = (uint16_t)(m.type + (unsigned)i);

		if (ipc_get_str(&r, tag, s, sizeof(s)) == 0) {
			if (strlen(s) >= sizeof(s))
				__builtin_trap();
			continue;
		}
		if (ipc_get_u64(&r, tag, &v) == 0)
			continue;
		if (ipc_get_bytes(&r, tag, &p, &n) == 0) {
			if (p < m.data || p + n > m.data + m.len)
				__builtin_trap();
			continue;
		}
		break;
	}
	(void)ipc_get_end(&r);
	return 0;
}
