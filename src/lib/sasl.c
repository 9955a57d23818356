/*
 * sasl: the decoding half of the SASL mechanisms the SMTP and POP3 servers
 * offer, PLAIN (RFC 4616) and LOGIN's base64 lines, as pure functions so
 * they can be fuzzed.
 * Callers wipe the buffers with sodium_memzero once the check is done.
 */
#include "lib/sasl.h"

#include <string.h>

#include <sodium.h>

long sasl_b64decode(const char *in, size_t len, char *out, size_t size,
		    int nul_ok)
{
	size_t outlen = 0;
	const char *end = NULL;

	if (size == 0)
		return -1;
	if (sodium_base642bin((unsigned char *)out, size - 1, in, len, NULL,
			      &outlen, &end,
			      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    end != in + len)
		return -1;
	out[outlen] = '\0';
	if (!nul_ok && memchr(out, '\0', outlen) != NULL)
		return -1;
	return (long)outlen;
}

int sasl_plain_split(const char *msg, size_t len, char *user, char *pass)
{
	const char *nul1 = memchr(msg, '\0', len), *nul2;
	size_t zlen, ulen, plen;

	if (nul1 == NULL)
		return -1;
	nul2 = memchr(nul1 + 1, '\0', len - (size_t)(nul1 + 1 - msg));
	if (nul2 == NULL)
		return -1;
	zlen = (size_t)(nul1 - msg);
	ulen = (size_t)(nul2 - nul1 - 1);
	plen = len - (size_t)(nul2 + 1 - msg);
	if (ulen == 0 || plen == 0 || ulen >= SASL_FIELD_MAX ||
	    plen >= SASL_FIELD_MAX)
		return -1;
	/* passwd = 1*SAFE (RFC 4616 2): a third NUL makes the message
	 * malformed, and would cut the password that gets checked. */
	if (memchr(nul2 + 1, '\0', plen) != NULL)
		return -1;
	/* Acting for another identity is not offered. */
	if (zlen != 0 && (zlen != ulen || memcmp(msg, nul1 + 1, ulen) != 0))
		return -1;
	memcpy(user, nul1 + 1, ulen);
	user[ulen] = '\0';
	memcpy(pass, nul2 + 1, plen);
	pass[plen] = '\0';
	return 0;
}
