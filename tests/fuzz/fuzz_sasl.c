/* Fuzzes SASL PLAIN/LOGIN decoding: base64 and the PLAIN split. */
#include <stdint.h>
#include <string.h>

#include "lib/sasl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char decoded[SASL_FIELD_MAX * 3];
	char user[SASL_FIELD_MAX], pass[SASL_FIELD_MAX];
	long n;

	n = sasl_b64decode((const char *)data, size, decoded, sizeof(decoded),
			   1);
	if (n >= (long)sizeof(decoded))
		__builtin_trap();
	if (n >= 0 && sasl_plain_split(decoded, (size_t)n, user, pass) == 0) {
		if (strlen(user) >= sizeof(user) ||
		    strlen(pass) >= sizeof(pass))
			__builtin_trap();
	}
	/* The raw input as a decoded PLAIN message, too. */
	sasl_plain_split((const char *)data, size, user, pass);
	return 0;
}
