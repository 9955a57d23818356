/*
 * addrlist: parses the value of an RFC 5322 address field (3.4, with the
 * obsolete forms of 4.4 that real mail still carries) into struct
 * addrlist_entry, and decodes RFC 2047 encoded words. Pure: no I/O, no
 * allocation, linear time (each list element is scanned twice at most,
 * every encoded word once, comment nesting is bounded).
 *
 * The sender-authentication rules compare these addresses with the account,
 * so the parser fails closed wherever an address comes out. Decisions:
 *
 * Lexical. NUL is refused anywhere (quoted strings and comments included:
 * a C string reader would see a different value). CR and LF only appear as
 * a fold, CRLF followed by a space or tab; any other line end is refused
 * (header injection). The obsolete control characters (obs-NO-WS-CTL)
 * are allowed only inside quoted strings and comments; 8-bit bytes also
 * in atoms (RFC 6532), which can only end up in display names.
 * Comments nest up to ADDRLIST_COMMENT_DEPTH (32) levels; deeper ones make
 * the value unparsable.
 *
 * Obsolete forms accepted (4.4): empty list elements (", , a@b,", also in
 * groups); route addresses "<@a.test,@b.test:x@y.test>" (the route's domains
 * must be valid, then they are dropped, as addr.c does); CFWS around the
 * dots and the '@' of an addr-spec ("john . smith @ example (c) . org",
 * obs-local-part, obs-domain), and local parts mixing atoms and quoted
 * strings ("john"."smith"); '.' in display names after the first word
 * ("Joe Q. Public", obs-phrase). Also accepted: a group whose ';' is missing
 * at the very end of the value ("undisclosed-recipients:"). Refused: empty
 * words in a local part ("a..b", ".a"), a display name holding '@' or any
 * other special outside quotes, two addresses in one element ("a@b <c@d>",
 * "<a@b> <c@d>"), "<>", nested groups, groups without a name, a local part
 * without a domain, and a domain that is not a host name or IP literal.
 *
 * Normal form. The local part is the concatenation of its words' contents
 * (quotes and quoted-pairs removed) joined by single dots, whatever CFWS
 * surrounded them; the domain the concatenation of its atoms. The result
 * goes through addr_parse_mailbox, so it gets addr.c's canonical form
 * ("\"john\".smith" is john.smith, "\"a b\".c" is "\"a b.c\"") and exactly
 * its limits and character rules (64 and 255 octets, no 8-bit or control
 * character in a local part, host name syntax): what the envelope parser
 * refuses never comes out of here. IP literal domains are accepted as
 * addr.c accepts them, "[192.0.2.1]" and "[IPv6:...]" (normalized); white
 * space is allowed only next to the brackets, quoted-pairs and general
 * literals are refused.
 *
 * Display names (and group names, in the same form). The words of the
 * phrase are joined with one space where CFWS separated them and none
 * where nothing did; comments are dropped. A quoted string's content is
 * taken with quoted-pairs removed and folds unfolded, and is never decoded:
 * "=?utf-8?q?x?=" inside quotes stays as written (RFC 2047 5(3)). An atom
 * made entirely of encoded words is decoded; two such atoms separated only
 * by white space are joined without it (6.2), a comment between them keeps
 * them apart. A bare addr-spec followed by a comment ("a@b (Name)") takes
 * the first comment after its domain as display name, with its encoded
 * words decoded (5(1)): only ever a name, never parsed for an address, so
 * "a@b (<boss@x>)" is the single address a@b. A display name that looks
 * like an address ("\"boss@company.test\" <spammer@evil.test>") is only a
 * name; unquoted, it is refused. Output is valid UTF-8 cut at a character
 * boundary: invalid bytes and control characters (C0, DEL, C1) become '?',
 * tab becomes a space.
 *
 * Encoded words (addrlist_decode_words and the above): a white-space
 * delimited run (in a phrase: an atom) is decoded when it consists entirely
 * of encoded words, several glued together without white space included
 * (broken mailers write them so). The charset is matched without regard to
 * case, an RFC 2231 language suffix ("utf-8*en") ignored: utf-8, utf8,
 * us-ascii, ascii, iso-8859-1 and its aliases, windows-1252 and cp1252
 * (its 0x80-0x9f characters through the windows-1252 table; in
 * iso-8859-1 those are C1 controls and become '?'). B accepts missing
 * padding, Q hex digits of either case. The 75-octet limit of 2 is not
 * enforced. A word in another charset or with a bad encoding is copied as
 * written, and white space next to it is kept. UTF-8 sequences split
 * across adjacent words are joined back.
 */
#include "lib/codec.h"
#include "lib/addrlist.h"

#include <string.h>
#include <strings.h>

#define ADDRLIST_COMMENT_DEPTH 32
/* "\"" escaped local part "\"@" domain: each content byte escaped at most
 * once, the domain within ADDR_DOMAIN_MAX. */
#define ADDRLIST_MAILBOX_SIZE (2 * ADDR_LOCAL_MAX + 4 + ADDR_DOMAIN_MAX + 1)

/* ---- Text output: bounded, valid UTF-8, no control characters ---- */

struct addrlist_text {
	char *buf;
	size_t size;
	size_t len;
	int full;	      /* a character did not fit: write no more */
	int phrase;	      /* white space collapsed and trimmed */
	int prev_ew;	      /* the last unit was a decoded encoded word */
	size_t spaces;	      /* white space seen and not yet written */
	unsigned char seq[4]; /* a UTF-8 sequence being assembled */
	size_t seq_len, seq_need;
};

static void addrlist_text_init(struct addrlist_text *t, char *buf, size_t size,
			       int phrase)
{
	memset(t, 0, sizeof(*t));
	t->buf = buf;
	t->size = size;
	t->phrase = phrase;
	if (size > 0)
		buf[0] = '\0';
}

/* Appends n bytes that form whole characters, or nothing and stops the
 * output when they do not fit before the NUL. */
static void addrlist_text_put(struct addrlist_text *t, const char *s, size_t n)
{
	if (t->full)
		return;
	if (t->size == 0 || n > t->size - 1 - t->len) {
		t->full = 1;
		return;
	}
	memcpy(t->buf + t->len, s, n);
	t->len += n;
	t->buf[t->len] = '\0';
}

/* Writes one code point as UTF-8; control characters become '?'. */
static void addrlist_text_cp(struct addrlist_text *t, unsigned long cp)
{
	char u[4];
	size_t n;

	if (cp == '\t')
		cp = ' ';
	if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		cp = '?';
	if (cp < 0x80) {
		u[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (char)(0xc0 | (cp >> 6));
		u[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (char)(0xe0 | (cp >> 12));
		u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		u[0] = (char)(0xf0 | (cp >> 18));
		u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	addrlist_text_put(t, u, n);
}

/* An unfinished UTF-8 sequence becomes one '?'. */
static void addrlist_text_utf8_end(struct addrlist_text *t)
{
	if (t->seq_len > 0) {
		t->seq_len = 0;
		addrlist_text_cp(t, '?');
	}
}

/* Feeds one byte of text that should be UTF-8 (RFC 3629 3: no overlong
 * forms, no surrogates, nothing past U+10FFFF). */
static void addrlist_text_byte(struct addrlist_text *t, unsigned char c)
{
	if (t->seq_len > 0) {
		unsigned char lead = t->seq[0];
		int ok = (c & 0xc0) == 0x80;

		if (ok && t->seq_len == 1)
			ok = !(lead == 0xe0 && c < 0xa0) &&
			     !(lead == 0xed && c > 0x9f) &&
			     !(lead == 0xf0 && c < 0x90) &&
			     !(lead == 0xf4 && c > 0x8f);
		if (ok) {
			unsigned long cp;

			t->seq[t->seq_len++] = c;
			if (t->seq_len < t->seq_need)
				return;
			cp = t->seq[0] & (0x7f >> t->seq_need);
			for (size_t i = 1; i < t->seq_need; i++)
				cp = (cp << 6) | (t->seq[i] & 0x3f);
			t->seq_len = 0;
			addrlist_text_cp(t, cp);
			return;
		}
		addrlist_text_utf8_end(t);
	}
	if (c < 0x80) {
		addrlist_text_cp(t, c);
		return;
	}
	if (c >= 0xc2 && c <= 0xdf)
		t->seq_need = 2;
	else if (c >= 0xe0 && c <= 0xef)
		t->seq_need = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		t->seq_need = 4;
	else {
		addrlist_text_cp(t, '?');
		return;
	}
	t->seq[0] = c;
	t->seq_len = 1;
}

/* Before a unit that is not joined to a previous encoded word: ends a
 * pending sequence and writes the pending white space. */
static void addrlist_text_begin(struct addrlist_text *t)
{
	addrlist_text_utf8_end(t);
	if (t->phrase && t->spaces > 0)
		t->spaces = t->len > 0 ? 1 : 0;
	for (; t->spaces > 0 && !t->full; t->spaces--)
		addrlist_text_put(t, " ", 1);
	t->spaces = 0;
}

static void addrlist_text_finish(struct addrlist_text *t)
{
	addrlist_text_utf8_end(t);
	if (t->phrase)
		t->spaces = 0;
	addrlist_text_begin(t);
}

/* Literal text: quoted-pairs removed when unescape, folds (CRLF before
 * white space) dropped when unfold. */
static void addrlist_text_raw(struct addrlist_text *t, const char *s, size_t n,
			      int unescape, int unfold)
{
	addrlist_text_begin(t);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (unfold && (c == '\r' || c == '\n'))
			continue;
		if (unescape && c == '\\' && i + 1 < n)
			c = (unsigned char)s[++i];
		addrlist_text_byte(t, c);
	}
	addrlist_text_utf8_end(t);
	t->prev_ew = 0;
}

/* ---- RFC 2047 encoded words ---- */

enum addrlist_charset {
	ADDRLIST_CS_OTHER,
	ADDRLIST_CS_UTF8,
	ADDRLIST_CS_ASCII,
	ADDRLIST_CS_LATIN1,
	ADDRLIST_CS_CP1252,
};

struct addrlist_ew {
	const char *charset; /* without a language suffix */
	size_t charset_len;
	char encoding; /* 'B' or 'Q' */
	const char *text;
	size_t text_len;
	size_t total; /* from "=?" through "?=" */
};

/* RFC 2047 2 token: printable ASCII but especials. */
static int addrlist_is_token(unsigned char c)
{
	return c > 0x20 && c < 0x7f && strchr("()<>@,;:\\\"/[]?.=", c) == NULL;
}

/* One encoded word at the start of s[0..n): its syntax only. */
static int addrlist_ew_parse(const char *s, size_t n, struct addrlist_ew *ew)
{
	size_t i = 2, cs_end;

	if (n < 2 || s[0] != '=' || s[1] != '?')
		return 0;
	while (i < n && addrlist_is_token((unsigned char)s[i]))
		i++;
	if (i == 2 || i >= n || s[i] != '?')
		return 0;
	cs_end = i;
	ew->charset = s + 2;
	ew->charset_len = cs_end - 2;
	for (size_t k = 0; k < ew->charset_len; k++) {
		if (ew->charset[k] == '*') {
			ew->charset_len = k; /* RFC 2231 5 */
			break;
		}
	}
	if (cs_end + 2 >= n || s[cs_end + 2] != '?')
		return 0;
	switch (s[cs_end + 1]) {
	case 'B':
	case 'b':
		ew->encoding = 'B';
		break;
	case 'Q':
	case 'q':
		ew->encoding = 'Q';
		break;
	default:
		return 0;
	}
	i = cs_end + 3;
	ew->text = s + i;
	while (i < n && s[i] > 0x20 && s[i] < 0x7f && s[i] != '?')
		i++;
	ew->text_len = (size_t)(s + i - ew->text);
	if (ew->text_len == 0 || i + 1 >= n || s[i] != '?' || s[i + 1] != '=')
		return 0;
	ew->total = i + 2;
	return 1;
}

static enum addrlist_charset addrlist_charset(const struct addrlist_ew *ew)
{
	static const struct {
		const char *name;
		enum addrlist_charset cs;
	} names[] = {
		{"utf-8", ADDRLIST_CS_UTF8},
		{"utf8", ADDRLIST_CS_UTF8},
		{"us-ascii", ADDRLIST_CS_ASCII},
		{"ascii", ADDRLIST_CS_ASCII},
		{"iso-8859-1", ADDRLIST_CS_LATIN1},
		{"iso8859-1", ADDRLIST_CS_LATIN1},
		{"iso_8859-1", ADDRLIST_CS_LATIN1},
		{"latin1", ADDRLIST_CS_LATIN1},
		{"l1", ADDRLIST_CS_LATIN1},
		{"windows-1252", ADDRLIST_CS_CP1252},
		{"cp1252", ADDRLIST_CS_CP1252},
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strlen(names[i].name) == ew->charset_len &&
		    strncasecmp(names[i].name, ew->charset, ew->charset_len) ==
			    0)
			return names[i].cs;
	}
	return ADDRLIST_CS_OTHER;
}

/* Whether the encoded text decodes: B (RFC 2047 4.1, padding may be
 * missing, never wrong) or Q (4.2, "=" and two hex digits). */
static int addrlist_ew_valid(const struct addrlist_ew *ew)
{
	const unsigned char *s = (const unsigned char *)ew->text;
	size_t n = ew->text_len, data = 0, pad = 0;

	if (ew->encoding == 'Q') {
		for (size_t i = 0; i < n; i++) {
			if (s[i] != '=')
				continue;
			if (i + 2 >= n)
				return 0;
			if (codec_hex_value(s[i + 1]) < 0 ||
			    codec_hex_value(s[i + 2]) < 0)
				return 0;
			i += 2;
		}
		return 1;
	}
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '=')
			pad++;
		else if (pad > 0 || codec_base64_value(s[i]) < 0)
			return 0;
		else
			data++;
	}
	if (pad > 2 || data % 4 == 1)
		return 0;
	return pad == 0 || (data + pad) % 4 == 0;
}

/* Windows-1252 0x80-0x9f; 0 where it has no character. */
static const unsigned short addrlist_cp1252[32] = {
	0x20ac, 0,	0x201a, 0x0192, 0x201e, 0x2026, 0x2020, 0x2021,
	0x02c6, 0x2030, 0x0160, 0x2039, 0x0152, 0,	0x017d, 0,
	0,	0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014,
	0x02dc, 0x2122, 0x0161, 0x203a, 0x0153, 0,	0x017e, 0x0178,
};

static void addrlist_ew_out(struct addrlist_text *t, enum addrlist_charset cs,
			    unsigned char b)
{
	switch (cs) {
	case ADDRLIST_CS_UTF8:
		addrlist_text_byte(t, b);
		break;
	case ADDRLIST_CS_ASCII:
		addrlist_text_cp(t, b < 0x80 ? b : '?');
		break;
	case ADDRLIST_CS_CP1252:
		if (b >= 0x80 && b < 0xa0) {
			unsigned long cp = addrlist_cp1252[b - 0x80];

			addrlist_text_cp(t, cp != 0 ? cp : '?');
			break;
		}
		addrlist_text_cp(t, b);
		break;
	default:
		addrlist_text_cp(t, b); /* Latin-1: the code point itself */
		break;
	}
}

/* Writes a valid encoded word in a known charset, decoded. */
static void addrlist_text_ew(struct addrlist_text *t,
			     const struct addrlist_ew *ew,
			     enum addrlist_charset cs)
{
	const unsigned char *s = (const unsigned char *)ew->text;
	size_t n = ew->text_len;

	if (t->prev_ew) {
		/* RFC 2047 6.2: white space between adjacent encoded words
		 * is not displayed; a UTF-8 character they split joins. */
		t->spaces = 0;
		if (cs != ADDRLIST_CS_UTF8)
			addrlist_text_utf8_end(t);
	} else {
		addrlist_text_begin(t);
	}
	if (ew->encoding == 'Q') {
		for (size_t i = 0; i < n; i++) {
			unsigned char b = s[i];

			if (b == '_') {
				b = ' ';
			} else if (b == '=') {
				b = (unsigned char)(codec_hex_value(s[i + 1]) *
							    16 +
						    codec_hex_value(s[i + 2]));
				i += 2;
			}
			addrlist_ew_out(t, cs, b);
		}
	} else {
		unsigned long acc = 0;
		int bits = 0;

		for (size_t i = 0; i < n && s[i] != '='; i++) {
			acc = ((acc << 6) |
			       (unsigned long)codec_base64_value(s[i])) &
			      0xffffff;
			bits += 6;
			if (bits >= 8) {
				bits -= 8;
				addrlist_ew_out(t, cs,
						(unsigned char)(acc >> bits));
			}
		}
	}
	if (cs != ADDRLIST_CS_UTF8)
		addrlist_text_utf8_end(t);
	t->prev_ew = 1;
}

/* s[0..n): a run without white space. Decoded when it is made of encoded
 * words only, else copied. */
static void addrlist_text_run(struct addrlist_text *t, const char *s, size_t n)
{
	struct addrlist_ew ew;
	size_t i;

	for (i = 0; i < n; i += ew.total) {
		if (!addrlist_ew_parse(s + i, n - i, &ew))
			break;
	}
	if (n == 0 || i < n) {
		addrlist_text_raw(t, s, n, 0, 0);
		return;
	}
	for (i = 0; i < n; i += ew.total) {
		enum addrlist_charset cs;

		(void)addrlist_ew_parse(s + i, n - i, &ew);
		cs = addrlist_charset(&ew);
		if (cs != ADDRLIST_CS_OTHER && addrlist_ew_valid(&ew))
			addrlist_text_ew(t, &ew, cs);
		else
			addrlist_text_raw(t, s + i, ew.total, 0, 0);
	}
}

static int addrlist_is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* A fold at s[i]: CRLF followed by a space or tab. */
static int addrlist_is_fold(const char *s, size_t n, size_t i)
{
	return i + 2 < n && s[i] == '\r' && s[i + 1] == '\n' &&
	       addrlist_is_wsp(s[i + 2]);
}

/* Header text (comment: the inside of a comment, where parentheses
 * delimit words and quoted-pairs are removed) with its encoded words
 * decoded. */
static void addrlist_text_words(struct addrlist_text *t, const char *s,
				size_t n, int comment)
{
	size_t i = 0;

	while (i < n) {
		size_t j;
		int esc = 0;

		if (addrlist_is_wsp(s[i])) {
			t->spaces++;
			i++;
			continue;
		}
		if (addrlist_is_fold(s, n, i)) {
			i += 2;
			continue;
		}
		if (comment && (s[i] == '(' || s[i] == ')')) {
			addrlist_text_raw(t, s + i, 1, 0, 0);
			i++;
			continue;
		}
		for (j = i; j < n; j++) {
			if (addrlist_is_wsp(s[j]) || addrlist_is_fold(s, n, j))
				break;
			if (comment && (s[j] == '(' || s[j] == ')'))
				break;
			if (comment && s[j] == '\\' && j + 1 < n) {
				esc = 1;
				j++;
			}
		}
		if (esc)
			addrlist_text_raw(t, s + i, j - i, 1, 0);
		else
			addrlist_text_run(t, s + i, j - i);
		i = j;
	}
	addrlist_text_finish(t);
}

size_t addrlist_decode_words(const char *in, size_t len, char *out, size_t size)
{
	struct addrlist_text t;

	addrlist_text_init(&t, out, size, 0);
	addrlist_text_words(&t, in, len, 0);
	return t.len;
}

/* ---- RFC 5322 lexical tokens (3.2) ---- */

enum addrlist_tok_type {
	ADDRLIST_T_END,
	ADDRLIST_T_ATOM,
	ADDRLIST_T_QUOTED,  /* start and len: the inside of the quotes */
	ADDRLIST_T_LITERAL, /* start and len: the inside of the brackets */
	ADDRLIST_T_SPECIAL, /* c: one of , ; < > : @ . */
};

struct addrlist_tok {
	enum addrlist_tok_type type;
	size_t start, len;
	char c;
	size_t end; /* the position after the token */
};

/* What the CFWS before a token held. */
struct addrlist_cfws {
	int any;	       /* white space or a comment */
	int comment;	       /* a comment */
	size_t c_start, c_len; /* the inside of the first comment */
};

struct addrlist_parser {
	const char *s;
	size_t len;
	const char *error;
};

static int addrlist_fail(struct addrlist_parser *p, const char *error)
{
	p->error = error;
	return -1;
}

/* RFC 5322 3.2.3 atext, with RFC 6532 3.2's UTF8-non-ascii: 8-bit bytes
 * make display names ("J\xc3\xb6rg <j@x>"); in a local part or domain
 * addr_parse_mailbox refuses them. */
static int addrlist_is_atext(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c >= 0x80 ||
	       (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* The error for a byte that cannot appear where it is. */
static const char *addrlist_char_error(unsigned char c, const char *otherwise)
{
	if (c == '\0')
		return "NUL in address list";
	if (c == '\r' || c == '\n')
		return "line end in address list";
	if (c >= 0x80)
		return "8-bit character outside quotes";
	if (c < 0x20 || c == 0x7f)
		return "control character in address list";
	return otherwise;
}

/* A byte inside a quoted string or comment: anything but NUL and a line
 * end that is not a fold (obs-qtext, obs-ctext, 8-bit for RFC 6532). On
 * success *i moves past it (and past a fold's CRLF). */
static int addrlist_inner_byte(struct addrlist_parser *p, size_t *i)
{
	unsigned char c = (unsigned char)p->s[*i];

	if (c == '\0')
		return addrlist_fail(p, "NUL in address list");
	if (c == '\r' || c == '\n') {
		if (!addrlist_is_fold(p->s, p->len, *i))
			return addrlist_fail(p, "line end in address list");
		*i += 2;
		return 0;
	}
	if (c == '\\') {
		/* quoted-pair (3.2.1, obs-qp without NUL, CR and LF) */
		if (*i + 1 >= p->len)
			return addrlist_fail(p, "backslash at end");
		c = (unsigned char)p->s[*i + 1];
		if (c == '\0' || c == '\r' || c == '\n')
			return addrlist_fail(p, addrlist_char_error(c, ""));
		*i += 2;
		return 0;
	}
	(*i)++;
	return 0;
}

/* Skips CFWS (3.2.2) from *pos, recording what it held in cf. */
static int addrlist_cfws(struct addrlist_parser *p, size_t *pos,
			 struct addrlist_cfws *cf)
{
	size_t i = *pos;

	memset(cf, 0, sizeof(*cf));
	while (i < p->len) {
		size_t start, depth = 1;

		if (addrlist_is_wsp(p->s[i])) {
			cf->any = 1;
			i++;
			continue;
		}
		if (addrlist_is_fold(p->s, p->len, i)) {
			cf->any = 1;
			i += 2;
			continue;
		}
		if (p->s[i] != '(')
			break;
		start = ++i;
		while (depth > 0) {
			if (i >= p->len)
				return addrlist_fail(p, "unterminated comment");
			if (p->s[i] == '(') {
				if (++depth > ADDRLIST_COMMENT_DEPTH)
					return addrlist_fail(
						p, "comments nested too deep");
				i++;
			} else if (p->s[i] == ')') {
				depth--;
				i++;
			} else if (addrlist_inner_byte(p, &i) < 0) {
				return -1;
			}
		}
		if (!cf->comment) {
			cf->c_start = start;
			cf->c_len = i - 1 - start;
		}
		cf->any = 1;
		cf->comment = 1;
	}
	*pos = i;
	return 0;
}

/* Reads the token after the CFWS at *pos; *pos is left unchanged (the
 * token ends at tok->end). */
static int addrlist_next(struct addrlist_parser *p, size_t pos,
			 struct addrlist_tok *tok, struct addrlist_cfws *cf)
{
	size_t i = pos;
	unsigned char c;

	if (addrlist_cfws(p, &i, cf) < 0)
		return -1;
	memset(tok, 0, sizeof(*tok));
	tok->start = i;
	if (i >= p->len) {
		tok->type = ADDRLIST_T_END;
		tok->end = i;
		return 0;
	}
	c = (unsigned char)p->s[i];
	if (addrlist_is_atext(c)) {
		while (i < p->len && addrlist_is_atext((unsigned char)p->s[i]))
			i++;
		tok->type = ADDRLIST_T_ATOM;
		tok->len = i - tok->start;
		tok->end = i;
		return 0;
	}
	if (c == '"') {
		tok->start = ++i;
		for (;;) {
			if (i >= p->len)
				return addrlist_fail(
					p, "unterminated quoted string");
			if (p->s[i] == '"')
				break;
			if (addrlist_inner_byte(p, &i) < 0)
				return -1;
		}
		tok->type = ADDRLIST_T_QUOTED;
		tok->len = i - tok->start;
		tok->end = i + 1;
		return 0;
	}
	if (c == '[') {
		/* 3.4.1 domain-literal: dtext and FWS; obs-dtext is not
		 * taken (addr.c refuses what it would add). */
		tok->start = ++i;
		for (;;) {
			if (i >= p->len)
				return addrlist_fail(
					p, "unterminated domain literal");
			c = (unsigned char)p->s[i];
			if (c == ']')
				break;
			if (addrlist_is_fold(p->s, p->len, i)) {
				i += 2;
				continue;
			}
			if (c == '[' || c == '\\' ||
			    (!addrlist_is_wsp((char)c) &&
			     (c <= 0x20 || c >= 0x7f)))
				return addrlist_fail(
					p, addrlist_char_error(
						   c, "bad domain literal"));
			i++;
		}
		tok->type = ADDRLIST_T_LITERAL;
		tok->len = i - tok->start;
		tok->end = i + 1;
		return 0;
	}
	if (c != '\0' && strchr(",;<>:@.", c) != NULL) {
		tok->type = ADDRLIST_T_SPECIAL;
		tok->c = (char)c;
		tok->len = 1;
		tok->end = i + 1;
		return 0;
	}
	if (c == ')')
		return addrlist_fail(p, "unbalanced parenthesis");
	if (c == ']')
		return addrlist_fail(p, "unbalanced bracket");
	return addrlist_fail(p, addrlist_char_error(c, "bad character"));
}

static int addrlist_is_special(const struct addrlist_tok *tok, char c)
{
	return tok->type == ADDRLIST_T_SPECIAL && tok->c == c;
}

/* ---- Address specification (3.4.1, 4.4) ---- */

/* domain = dot-atom / domain-literal / obs-domain, from *pos into dom
 * (ADDR_DOMAIN_MAX + 1 bytes, not yet validated); *pos ends after the CFWS
 * that follows, which trail describes. */
static int addrlist_domain(struct addrlist_parser *p, size_t *pos, char *dom,
			   struct addrlist_cfws *trail)
{
	struct addrlist_tok tok;
	struct addrlist_cfws cf;
	size_t n = 0;

	if (addrlist_next(p, *pos, &tok, &cf) < 0)
		return -1;
	if (tok.type == ADDRLIST_T_LITERAL) {
		size_t a = tok.start, b = tok.start + tok.len;

		/* FWS next to the brackets only: addr.c refuses it inside. */
		while (a < b && (addrlist_is_wsp(p->s[a]) || p->s[a] == '\r' ||
				 p->s[a] == '\n'))
			a++;
		while (b > a && (addrlist_is_wsp(p->s[b - 1]) ||
				 p->s[b - 1] == '\r' || p->s[b - 1] == '\n'))
			b--;
		if (b - a + 2 > ADDR_DOMAIN_MAX)
			return addrlist_fail(p, "bad domain literal");
		dom[0] = '[';
		memcpy(dom + 1, p->s + a, b - a);
		dom[b - a + 1] = ']';
		dom[b - a + 2] = '\0';
		*pos = tok.end;
		return addrlist_cfws(p, pos, trail);
	}
	for (;;) {
		if (tok.type != ADDRLIST_T_ATOM)
			return addrlist_fail(
				p,
				tok.type == ADDRLIST_T_END ||
						tok.type == ADDRLIST_T_SPECIAL
					? "missing domain"
					: "bad domain");
		if (tok.len > ADDR_DOMAIN_MAX - n)
			return addrlist_fail(p, "domain too long");
		memcpy(dom + n, p->s + tok.start, tok.len);
		n += tok.len;
		dom[n] = '\0';
		*pos = tok.end;
		if (addrlist_cfws(p, pos, trail) < 0)
			return -1;
		if (*pos >= p->len || p->s[*pos] != '.')
			return 0;
		if (n >= ADDR_DOMAIN_MAX)
			return addrlist_fail(p, "domain too long");
		dom[n++] = '.';
		dom[n] = '\0';
		(*pos)++;
		if (addrlist_next(p, *pos, &tok, &cf) < 0)
			return -1;
	}
}

/* addr-spec = local-part "@" domain at *pos, into out in addr.c's normal
 * form; *pos ends after the CFWS that follows, which trail describes. */
static int addrlist_addr_spec(struct addrlist_parser *p, size_t *pos,
			      struct addr *out, struct addrlist_cfws *trail)
{
	char local[ADDR_LOCAL_MAX + 1];
	char dom[ADDR_DOMAIN_MAX + 1];
	char text[ADDRLIST_MAILBOX_SIZE];
	struct addrlist_tok tok;
	struct addrlist_cfws cf;
	const char *err;
	size_t n = 0, o = 0;

	/* local-part = dot-atom / quoted-string / obs-local-part: the
	 * words' contents, joined by dots. */
	for (;;) {
		const char *w;
		size_t wl;

		if (addrlist_next(p, *pos, &tok, &cf) < 0)
			return -1;
		if (tok.type != ADDRLIST_T_ATOM &&
		    tok.type != ADDRLIST_T_QUOTED)
			return addrlist_fail(p, tok.type == ADDRLIST_T_END
							? "missing address"
							: "bad local part");
		w = p->s + tok.start;
		wl = tok.len;
		for (size_t i = 0; i < wl; i++) {
			unsigned char c = (unsigned char)w[i];

			if (tok.type == ADDRLIST_T_QUOTED) {
				if (c == '\r' || c == '\n')
					continue; /* a fold */
				if (c == '\\')
					c = (unsigned char)w[++i];
			}
			if (n >= ADDR_LOCAL_MAX)
				return addrlist_fail(p, "local part too long");
			local[n++] = (char)c;
		}
		if (addrlist_next(p, tok.end, &tok, &cf) < 0)
			return -1;
		*pos = tok.end;
		if (addrlist_is_special(&tok, '@'))
			break;
		if (!addrlist_is_special(&tok, '.'))
			return addrlist_fail(
				p, tok.type == ADDRLIST_T_ATOM ||
						   tok.type == ADDRLIST_T_QUOTED
					   ? "bad local part"
					   : "missing domain");
		if (n >= ADDR_LOCAL_MAX)
			return addrlist_fail(p, "local part too long");
		local[n++] = '.';
	}
	if (addrlist_domain(p, pos, dom, trail) < 0)
		return -1;

	/* Quoted, so that addr_parse_mailbox takes any content and gives
	 * its canonical form and verdict. */
	text[o++] = '"';
	for (size_t i = 0; i < n; i++) {
		if (local[i] == '"' || local[i] == '\\')
			text[o++] = '\\';
		text[o++] = local[i];
	}
	text[o++] = '"';
	text[o++] = '@';
	memcpy(text + o, dom, strlen(dom) + 1);
	if (addr_parse_mailbox(text, out, &err) < 0)
		return addrlist_fail(p, err);
	return 0;
}

/* angle-addr / obs-angle-addr after the '<' at *pos; *pos ends after '>'. */
static int addrlist_angle(struct addrlist_parser *p, size_t *pos,
			  struct addr *out)
{
	struct addrlist_tok tok;
	struct addrlist_cfws cf;

	if (addrlist_next(p, *pos, &tok, &cf) < 0)
		return -1;
	if (addrlist_is_special(&tok, '>'))
		return addrlist_fail(p, "empty address");
	if (addrlist_is_special(&tok, ',') || addrlist_is_special(&tok, '@')) {
		/* obs-route = obs-domain-list ":" (4.4): at least one
		 * domain, each checked, then dropped. */
		int hops = 0, after_domain = 0;

		for (;;) {
			char dom[ADDR_DOMAIN_MAX + 1],
				norm[ADDR_DOMAIN_MAX + 1];
			const char *err;

			*pos = tok.end;
			if (addrlist_is_special(&tok, ':') && hops > 0)
				break;
			if (addrlist_is_special(&tok, '@') && !after_domain) {
				if (addrlist_domain(p, pos, dom, &cf) < 0)
					return -1;
				if (addr_parse_domain(dom, strlen(dom), norm,
						      &err) < 0)
					return addrlist_fail(p, err);
				hops++;
				after_domain = 1;
			} else if (addrlist_is_special(&tok, ',')) {
				after_domain = 0;
			} else {
				return addrlist_fail(p, "bad route");
			}
			if (addrlist_next(p, *pos, &tok, &cf) < 0)
				return -1;
		}
	}
	if (addrlist_addr_spec(p, pos, out, &cf) < 0)
		return -1;
	if (*pos >= p->len || p->s[*pos] != '>')
		return addrlist_fail(p, *pos >= p->len
						? "missing >"
						: "bad character in address");
	(*pos)++;
	return 0;
}

/* A display-name phrase (3.2.5 phrase, obs-phrase) from pos up to the
 * delimiter at end, decoded into out. */
static int addrlist_phrase(struct addrlist_parser *p, size_t pos, size_t end,
			   char *out, size_t size)
{
	struct addrlist_text t;
	struct addrlist_tok tok;
	struct addrlist_cfws cf;
	int first = 1;

	addrlist_text_init(&t, out, size, 1);
	for (;; pos = tok.end, first = 0) {
		if (addrlist_next(p, pos, &tok, &cf) < 0)
			return -1;
		if (tok.start >= end)
			break;
		if (cf.any && !first)
			t.spaces = 1;
		if (cf.comment)
			t.prev_ew = 0;
		if (tok.type == ADDRLIST_T_ATOM)
			addrlist_text_run(&t, p->s + tok.start, tok.len);
		else if (tok.type == ADDRLIST_T_QUOTED)
			addrlist_text_raw(&t, p->s + tok.start, tok.len, 1, 1);
		else if (addrlist_is_special(&tok, '.') && !first)
			addrlist_text_raw(&t, ".", 1, 0, 0);
		else
			return addrlist_fail(p, "bad display name");
	}
	addrlist_text_finish(&t);
	return 0;
}

/* The end of the list element at pos: the first ',', ';', '<' or ':' (or
 * the end) outside quotes, comments and literals, into tok. */
static int addrlist_scan(struct addrlist_parser *p, size_t pos,
			 struct addrlist_tok *tok)
{
	struct addrlist_cfws cf;

	for (;; pos = tok->end) {
		if (addrlist_next(p, pos, tok, &cf) < 0)
			return -1;
		if (tok->type == ADDRLIST_T_END)
			return 0;
		if (tok->type == ADDRLIST_T_SPECIAL &&
		    strchr(",;<:", tok->c) != NULL)
			return 0;
		if (addrlist_is_special(tok, '>'))
			return addrlist_fail(p, "unbalanced >");
	}
}

int addrlist_parse(const char *value, size_t len, struct addrlist_entry *out,
		   size_t max, size_t *count_r, const char **error_r)
{
	struct addrlist_parser p = {value, len, NULL};
	char group[ADDRLIST_DISPLAY_MAX];
	size_t pos = 0, count = 0;
	int in_group = 0, need_sep = 0;

	*count_r = 0;
	group[0] = '\0';
	for (;;) {
		struct addrlist_tok tok, delim;
		struct addrlist_cfws cf;
		struct addrlist_entry *e;

		if (addrlist_next(&p, pos, &tok, &cf) < 0)
			goto fail;
		if (tok.type == ADDRLIST_T_END)
			break;
		if (addrlist_is_special(&tok, ',')) {
			/* obs-addr-list, obs-mbox-list, obs-group-list:
			 * empty elements. */
			pos = tok.end;
			need_sep = 0;
			continue;
		}
		if (addrlist_is_special(&tok, ';')) {
			if (!in_group) {
				p.error = "; outside a group";
				goto fail;
			}
			in_group = 0;
			group[0] = '\0';
			pos = tok.end;
			need_sep = 1;
			continue;
		}
		if (need_sep) {
			p.error = "missing comma between addresses";
			goto fail;
		}
		if (addrlist_scan(&p, pos, &delim) < 0)
			goto fail;
		if (addrlist_is_special(&delim, ':')) {
			if (in_group) {
				p.error = "nested group";
				goto fail;
			}
			if (delim.start == tok.start) {
				p.error = "group without a name";
				goto fail;
			}
			if (addrlist_phrase(&p, pos, delim.start, group,
					    sizeof(group)) < 0)
				goto fail;
			in_group = 1;
			pos = delim.end;
			continue;
		}
		if (count >= max) {
			p.error = "too many addresses";
			goto fail;
		}
		e = &out[count];
		memset(e, 0, sizeof(*e));
		if (addrlist_is_special(&delim, '<')) {
			if (addrlist_phrase(&p, pos, delim.start, e->display,
					    sizeof(e->display)) < 0)
				goto fail;
			pos = delim.end;
			if (addrlist_angle(&p, &pos, &e->addr) < 0)
				goto fail;
		} else {
			if (addrlist_addr_spec(&p, &pos, &e->addr, &cf) < 0)
				goto fail;
			if (pos != delim.start) {
				p.error = "bad character after address";
				goto fail;
			}
			if (cf.comment) {
				/* "a@b (Name)": the comment names it. */
				struct addrlist_text t;

				addrlist_text_init(&t, e->display,
						   sizeof(e->display), 1);
				addrlist_text_words(&t, value + cf.c_start,
						    cf.c_len, 1);
			}
		}
		memcpy(e->group, group, sizeof(e->group));
		count++;
		need_sep = 1;
	}
	*count_r = count;
	return 0;
fail:
	*error_r = p.error;
	return -1;
}
