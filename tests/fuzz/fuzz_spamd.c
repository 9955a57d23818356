/*
 * Fuzzes what a spamd server can send the client: the whole input as a
 * reply, then every prefix of it as a reply still coming (eof 0) and cut
 * short (eof 1), the way the client parses as bytes arrive. Checks that
 * the rule names kept are plain words and the parser never claims more
 * than it was given.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/spamd_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_check(const struct spamd_reply *r)
{
	size_t n = strnlen(r->symbols, sizeof(r->symbols));

	if (n >= sizeof(r->symbols))
		__builtin_trap();
	for (size_t i = 0; i < n; i++) {
		char c = r->symbols[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == ','))
			__builtin_trap();
	}
	if (strnlen(r->message, sizeof(r->message)) >= sizeof(r->message))
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct spamd_reply r;
	const char *err;
	char *copy;

	if (size > 65536)
		return 0;
	/* An exact-size copy: ASan sees any read past the end. */
	copy = malloc(size > 0 ? size : 1);
	if (copy == NULL)
		return 0;
	memcpy(copy, data, size);
	for (int eof = 0; eof <= 1; eof++) {
		err = NULL;
		if (spamd_parse_reply(copy, size, eof, &r, &err) == 1)
			fuzz_check(&r);
		else if (err == NULL && eof)
			__builtin_trap(); /* at eof it is done or an error */
	}
	for (size_t n = 0; n < size && n < 512; n++)
		if (spamd_parse_reply(copy, n, 0, &r, &err) == 1)
			fuzz_check(&r);
	free(copy);
	return 0;
}
