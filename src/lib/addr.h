/* RFC 5321 mail addresses: paths, mailboxes, domains. Pure. */
#ifndef PETREL_ADDR_H
#define PETREL_ADDR_H

#include <stddef.h>

#define ADDR_LOCAL_MAX 64   /* RFC 5321 4.5.3.1.1 */
#define ADDR_DOMAIN_MAX 255 /* RFC 5321 4.5.3.1.2 */
#define ADDR_LABEL_MAX 63   /* RFC 1035 2.3.4 */
/* Room for "local@domain" and its NUL: enough for addr_format(). */
#define ADDR_FORMAT_SIZE (ADDR_LOCAL_MAX + 1 + ADDR_DOMAIN_MAX + 1)

/*
 * A parsed address. local is a Dot-string ("john.smith") or, when the local
 * part needs quoting, its canonical Quoted-string ("\"john smith\"", with
 * only '"' and '\\' escaped); case is kept. domain is lower-case: a name
 * ("example.com") or an address literal ("[192.0.2.1]",
 * "[IPv6:2001:db8::1]"). The null path <> has both empty; RCPT TO:<postmaster>
 * has local "postmaster" and an empty domain.
 */
struct addr {
	char local[ADDR_LOCAL_MAX + 1];
	char domain[ADDR_DOMAIN_MAX + 1];
};

/*
 * Parses an RFC 5321 Path ("<local@domain>") at the start of s (len bytes,
 * need not be NUL-terminated); the obsolete source route "<@a,@b:x@y>" is
 * accepted and dropped, "<>" only when null_ok. 8-bit bytes, control
 * characters and NUL are refused. Returns the number of bytes consumed
 * (through the '>', > 0), or -1 with *error_r set to a short static text.
 */
int addr_parse_path(const char *s, size_t len, int null_ok, struct addr *out,
		    const char **error_r);

/*
 * Parses a whole NUL-terminated "local@domain" string (no angle brackets).
 * Returns 0, or -1 with *error_r set to a short static text.
 */
int addr_parse_mailbox(const char *s, struct addr *out, const char **error_r);

/*
 * Parses a whole domain: a name or an address literal, len bytes of s, into
 * out (ADDR_DOMAIN_MAX + 1 bytes) in the normal form struct addr keeps.
 * Returns 0, or -1 with *error_r set to a short static text (out "").
 */
int addr_parse_domain(const char *s, size_t len, char *out,
		      const char **error_r);

/*
 * Writes "local@domain" ("local" when the domain is empty, "" for the null
 * path) into out. Returns the length written, or -1 if it does not fit in
 * size bytes (out is then "" when size > 0).
 */
int addr_format(const struct addr *a, char *out, size_t size);

/* Returns 1 for the null path <>, else 0. */
int addr_is_null(const struct addr *a);

/*
 * Returns 1 when domain is a valid domain name: dot-separated labels of
 * letters, digits and '-' (not at either end of a label), each 1 to 63
 * octets, 255 in all, no trailing dot. Address literals are not names: 0.
 */
int addr_domain_valid(const char *domain);

/* Returns 1 when both are the same address (local part and domain compared
 * without regard to case, as local accounts are), else 0. */
int addr_equal(const struct addr *a, const struct addr *b);

#endif
