/* RFC 5322 address lists (From:, Sender:, To:, Cc:, Reply-To:) and RFC 2047
 * encoded words. Pure. */
#ifndef PETREL_ADDRLIST_H
#define PETREL_ADDRLIST_H

#include <stddef.h>

#include "lib/addr.h"

#define ADDRLIST_DISPLAY_MAX 256

struct addrlist_entry {
	/* The addr-spec, in addr.h's normal form: a quoted local part in
	 * its canonical quoted form, the domain lower-case. */
	struct addr addr;
	/* The display name, if any: quotes and comments removed, encoded
	 * words decoded to UTF-8, cut at ADDRLIST_DISPLAY_MAX - 1 bytes; ""
	 * when there is none. For a bare "a@b (Name)", the text of the
	 * first comment after it. Always valid UTF-8 without control
	 * characters. Only ever a name: never compare it with an account. */
	char display[ADDRLIST_DISPLAY_MAX];
	/* The name of the group it belongs to ("" for none), as written but
	 * in the same form as display (quotes and comments removed, encoded
	 * words decoded). */
	char group[ADDRLIST_DISPLAY_MAX];
};

/*
 * Parses the value of an address field (len bytes, not NUL-terminated,
 * folded or unfolded) as an RFC 5322 address-list (3.4): mailboxes with or
 * without display names ("Name" <a@b>, Name <a@b>, a@b, a@b (Name)),
 * comments, nested, anywhere white space may be, quoted local parts,
 * groups ("Team: a@b, c@d;", "undisclosed-recipients:;"), encoded words in
 * display names (never in an addr-spec), and the obsolete forms that real
 * mail still carries (route addresses "<@x:a@b>", empty list elements,
 * CFWS around dots). An addr-spec without a domain, 8-bit bytes outside
 * quoted strings and comments, NUL anywhere, a line end that is not a
 * fold, or unbalanced quotes, brackets or parentheses make the list
 * unparsable; addrlist.c's head comment lists the exact forms.
 * Fills out[0 .. max) (out may be NULL when max is 0) and sets *count_r to
 * the number of mailboxes (0 for an empty list or empty groups). Returns 0,
 * or -1 with *count_r 0 and *error_r set to a short static text when the
 * value is not an address list or holds more than max mailboxes. Groups
 * are accepted wherever they appear: a caller parsing From: or Sender:
 * (mailbox-list, RFC 5322 3.6.2) checks that *count_r > 0 and that every
 * entry's group is "".
 */
int addrlist_parse(const char *value, size_t len, struct addrlist_entry *out,
		   size_t max, size_t *count_r, const char **error_r);

/*
 * Decodes the RFC 2047 encoded words of a header text (len bytes) into
 * out as UTF-8: B and Q encodings; charsets UTF-8, US-ASCII and
 * ISO-8859-1 (and its common alias Windows-1252 for the printable range)
 * are converted, a word in any other charset is copied as written. White
 * space between two adjacent encoded words is dropped (6.2); folds are
 * unfolded. Control characters and bytes that are not UTF-8 become '?',
 * tab a space. out is always terminated when size > 0; returns the length
 * written (cut at size - 1, never inside a UTF-8 sequence).
 */
size_t addrlist_decode_words(const char *in, size_t len, char *out,
			     size_t size);

#endif
