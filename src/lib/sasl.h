/* SASL PLAIN and LOGIN messages (RFC 4616, RFC 4954). Pure. */
#ifndef PETREL_SASL_H
#define PETREL_SASL_H

#include <stddef.h>

#define SASL_FIELD_MAX 512

/*
 * Decodes base64 text (len bytes) into out (size bytes, NUL-terminated).
 * Returns the decoded length, or -1 for bad base64, a decoded NUL when
 * nul_ok is 0, or output too long.
 */
long sasl_b64decode(const char *in, size_t len, char *out, size_t size,
		    int nul_ok);

/*
 * Splits a decoded PLAIN message "authzid NUL authcid NUL passwd" (len
 * bytes). The authorization identity must be empty or equal to authcid.
 * Returns 0 with user and pass filled (each SASL_FIELD_MAX bytes), or
 * -1 when malformed.
 */
int sasl_plain_split(const char *msg, size_t len, char *user, char *pass);

#endif
