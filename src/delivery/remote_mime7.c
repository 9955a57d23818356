/*
 * remote_mime7: the MIME-aware downgrade of an 8-bit message for a server
 * that does not offer 8BITMIME (RFC 6152 3: the client must not send 8-bit
 * data to it as is; like Postfix, we convert rather than return it). One
 * line-driven state machine serves both passes: the scan on a worker
 * before the message is sent, and the conversion as it streams out, so
 * that both number the parts alike. Owns nothing outside its state. Pure.
 */
#include "delivery/remote_mime7.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/addr.h"
#include "lib/addrlist.h"
#include "lib/buf.h"

#define MIME7_SEG 998	    /* bytes of a line handled at a time */
#define MIME7_HDR_MAX 65536 /* header block of one part */
#define MIME7_DEPTH 16	    /* nested multiparts */
#define MIME7_BOUNDARY 70   /* RFC 2046 5.1.1 */
#define MIME7_QP_COLS 75    /* RFC 2045 6.7 (5): 76 with the "=" */
#define MIME7_WORD_BYTES 45 /* per encoded-word: 60 base64 characters */

enum mime7_mode {
	MIME7_HEADERS, /* collecting a part's header block */
	MIME7_LEAF,    /* a body that is copied or converted */
	MIME7_OPAQUE,  /* preamble, epilogue, what can not be converted */
};

struct remote_mime7 {
	const struct remote_mime7_info *info; /* NULL: scanning */
	struct remote_mime7_info res;
	enum mime7_mode mode;
	char bounds[MIME7_DEPTH][MIME7_BOUNDARY + 1];
	int digest[MIME7_DEPTH + 1]; /* default type message/rfc822 */
	size_t nbounds;
	size_t part;	    /* number of the part under way */
	size_t nparts;	    /* parts started */
	int message_level;  /* the part is a message (top or rfc822) */
	int qp;		    /* converting this leaf */
	size_t col;	    /* output column in quoted-printable */
	int part8;	    /* scan: the leaf has 8-bit bytes */
	int bad_utf8;	    /* scan: ... that are not UTF-8 */
	int utf8_need;	    /* continuation bytes expected */
	int leaf_container; /* scan: multipart/message leaf (not walked) */
	char line[MIME7_SEG];
	size_t linelen;
	int cont; /* the segment continues a longer line */
	struct buf hdr;
	int hdr_over;
};

static int mime7_is8(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] & 0x80)
			return 1;
	return 0;
}

static int mime7_bit(const uint64_t *set, size_t i)
{
	return i < REMOTE_MIME7_PARTS && (set[i / 64] >> (i % 64) & 1);
}

static void mime7_set(uint64_t *set, size_t i)
{
	set[i / 64] |= (uint64_t)1 << (i % 64);
}

/* Feeds bytes to a UTF-8 validator; *need carries a character split
 * between calls. Returns 0 when they are not UTF-8. */
static int mime7_utf8(int *need, const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = p[i];

		if (*need > 0) {
			if ((c & 0xc0) != 0x80)
				return 0;
			(*need)--;
		} else if (c < 0x80) {
			continue;
		} else if (c >= 0xc2 && c <= 0xdf) {
			*need = 1;
		} else if (c >= 0xe0 && c <= 0xef) {
			*need = 2;
		} else if (c >= 0xf0 && c <= 0xf4) {
			*need = 3;
		} else {
			return 0;
		}
	}
	return 1;
}

static int mime7_out(struct remote_mime7 *m, struct buf *out, const void *p,
		     size_t n)
{
	if (m->info == NULL)
		return 0;
	return buf_append(out, p, n);
}

/* ---- parts ---- */

/* The end of the part under way: the scan notes what its body held. */
static void mime7_end_part(struct remote_mime7 *m)
{
	if (m->info != NULL || m->mode != MIME7_LEAF)
		return;
	if (m->utf8_need > 0)
		m->bad_utf8 = 1;
	if (!m->part8)
		return;
	if (m->leaf_container || m->part >= REMOTE_MIME7_PARTS) {
		m->res.unconvertible = 1;
		return;
	}
	mime7_set(m->res.eightbit, m->part);
	if (m->bad_utf8)
		mime7_set(m->res.not_utf8, m->part);
}

static void mime7_begin_part(struct remote_mime7 *m, int message_level)
{
	m->mode = MIME7_HEADERS;
	m->part = m->nparts++;
	m->message_level = message_level;
	m->qp = 0;
	m->col = 0;
	m->part8 = 0;
	m->bad_utf8 = 0;
	m->utf8_need = 0;
	m->leaf_container = 0;
	m->hdr_over = 0;
	buf_reset(&m->hdr);
}

/* ---- header fields ---- */

struct mime7_fields {
	char type[128]; /* "text/plain", lower case, "" when absent */
	char boundary[MIME7_BOUNDARY + 1];
	char cte[32]; /* lower case, "" when absent */
	int mime_version;
};

static void mime7_lower(char *dst, size_t size, const char *p, size_t n)
{
	size_t k = 0;

	for (size_t i = 0; i < n && k + 1 < size; i++)
		dst[k++] =
			(char)(p[i] >= 'A' && p[i] <= 'Z' ? p[i] + 32 : p[i]);
	dst[k] = '\0';
}

static const char *mime7_skip_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
		p++;
	return p;
}

/* A token: up to whitespace, ';' or a tspecial. */
static const char *mime7_token(const char *p, const char *end)
{
	while (p < end && (unsigned char)*p > ' ' &&
	       strchr(";()<>@,:\\\"[]?=", *p) == NULL)
		p++;
	return p;
}

/* Reads the value of Content-Type: the type and the boundary. */
static void mime7_content_type(const char *p, const char *end,
			       struct mime7_fields *f)
{
	const char *t;

	p = mime7_skip_ws(p, end);
	t = p;
	while (p < end && *p != ';' && *p != ' ' && *p != '\t' && *p != '\r' &&
	       *p != '(')
		p++;
	mime7_lower(f->type, sizeof(f->type), t, (size_t)(p - t));
	while (p < end) {
		const char *name, *ne;

		while (p < end && *p != ';')
			p++;
		if (p == end)
			return;
		p = mime7_skip_ws(p + 1, end);
		name = p;
		p = ne = mime7_token(p, end);
		p = mime7_skip_ws(p, end);
		if (p == end || *p != '=')
			continue;
		p = mime7_skip_ws(p + 1, end);
		if (ne - name == 8 && strncasecmp(name, "boundary", 8) == 0) {
			size_t k = 0;
			int quoted = p < end && *p == '"';

			if (quoted)
				p++;
			while (p < end && k < MIME7_BOUNDARY &&
			       (quoted ? *p != '"'
				       : (unsigned char)*p > ' ' &&
						 *p != ';')) {
				if (quoted && *p == '\\' && p + 1 < end)
					p++;
				if (*p != '\r' && *p != '\n')
					f->boundary[k++] = *p;
				p++;
			}
			f->boundary[k] = '\0';
		}
	}
}

typedef int mime7_field_cb(struct remote_mime7 *m, const char *name,
			   size_t nlen, const char *field, size_t flen,
			   void *ctx);

/* Calls cb for each field of the header block (with its CRLFs). */
static int mime7_fields_walk(struct remote_mime7 *m, mime7_field_cb *cb,
			     void *ctx)
{
	const char *p = m->hdr.data, *end;

	/* An empty header block has no storage yet: data is NULL, and even
	 * NULL + 0 is undefined (C11 6.5.6). */
	if (m->hdr.len == 0)
		return 0;
	end = p + m->hdr.len;
	while (p < end) {
		const char *f = p, *colon;

		/* A field ends at a CRLF that no whitespace follows. */
		for (;;) {
			const char *nl = memchr(p, '\n', (size_t)(end - p));

			p = nl == NULL ? end : nl + 1;
			if (p >= end || (*p != ' ' && *p != '\t'))
				break;
		}
		colon = memchr(f, ':', (size_t)(p - f));
		if (cb(m, f, colon != NULL ? (size_t)(colon - f) : 0, f,
		       (size_t)(p - f), ctx) < 0)
			return -1;
	}
	return 0;
}

static int mime7_name_is(const char *name, size_t nlen, const char *want)
{
	return nlen == strlen(want) && strncasecmp(name, want, nlen) == 0;
}

/* Unstructured fields (RFC 5322 3.6.5, RFC 2045 8) may carry RFC 2047
 * encoded-words in place of their whole text. */
static int mime7_unstructured(const char *name, size_t nlen)
{
	return mime7_name_is(name, nlen, "subject") ||
	       mime7_name_is(name, nlen, "comments") ||
	       mime7_name_is(name, nlen, "content-description");
}

/* Address fields (RFC 5322 3.6.2, 3.6.3, 3.6.6): an 8-bit display name
 * becomes encoded-words (RFC 2047 5 (3)) while the addresses stay as
 * they are. */
static int mime7_address_field(const char *name, size_t nlen)
{
	static const char *const names[] = {
		"from",	     "sender",	  "reply-to",	 "to",
		"cc",	     "bcc",	  "resent-from", "resent-sender",
		"resent-to", "resent-cc", "resent-bcc",
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (mime7_name_is(name, nlen, names[i]))
			return 1;
	return 0;
}

#define MIME7_ADDRS_MAX 64 /* addresses of one field we rewrite */

/* The entries of an address field that can be written again in 7 bits:
 * parsed, without groups, every address ASCII. Returns the count (list
 * allocated, caller frees), or -1. */
static int mime7_addresses(const char *v, const char *end,
			   struct addrlist_entry **list_r)
{
	struct addrlist_entry *list = calloc(MIME7_ADDRS_MAX, sizeof(*list));
	const char *err;
	size_t n = 0;

	*list_r = NULL;
	while (end > v && (end[-1] == '\n' || end[-1] == '\r'))
		end--;
	if (list == NULL ||
	    addrlist_parse(v, (size_t)(end - v), list, MIME7_ADDRS_MAX, &n,
			   &err) < 0 ||
	    n == 0) {
		free(list);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		if (list[i].group[0] != '\0' ||
		    mime7_is8(list[i].addr.local, strlen(list[i].addr.local)) ||
		    mime7_is8(list[i].addr.domain,
			      strlen(list[i].addr.domain))) {
			free(list);
			return -1;
		}
	}
	*list_r = list;
	return (int)n;
}

static int mime7_read_field(struct remote_mime7 *m, const char *name,
			    size_t nlen, const char *field, size_t flen,
			    void *ctx)
{
	struct mime7_fields *f = ctx;
	const char *v = field + nlen + 1, *end = field + flen;

	if (m->info == NULL && mime7_is8(field, flen) &&
	    (nlen == 0 || !mime7_unstructured(name, nlen))) {
		struct addrlist_entry *list = NULL;

		if (nlen == 0 || !mime7_address_field(name, nlen) ||
		    mime7_addresses(v, end, &list) < 0)
			m->res.unconvertible = 1;
		free(list);
	}
	if (nlen == 0)
		return 0;
	if (mime7_name_is(name, nlen, "content-type")) {
		mime7_content_type(v, end, f);
	} else if (mime7_name_is(name, nlen, "content-transfer-encoding")) {
		const char *t = mime7_skip_ws(v, end);

		mime7_lower(f->cte, sizeof(f->cte), t,
			    (size_t)(mime7_token(t, end) - t));
	} else if (mime7_name_is(name, nlen, "mime-version")) {
		f->mime_version = 1;
	}
	return 0;
}

static const char mime7_b64[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int mime7_base64(struct buf *out, const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;
		char q[4];

		if (i + 1 < n)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		q[0] = mime7_b64[v >> 18 & 63];
		q[1] = mime7_b64[v >> 12 & 63];
		q[2] = i + 1 < n ? mime7_b64[v >> 6 & 63] : '=';
		q[3] = i + 2 < n ? mime7_b64[v & 63] : '=';
		if (buf_append(out, q, 4) < 0)
			return -1;
	}
	return 0;
}

static int mime7_words(struct buf *out, const unsigned char *text, size_t n);

/* "Subject: =?utf-8?B?...?=" (RFC 2047 2, 5 (1)): the unfolded text in
 * words that never split a UTF-8 character, one per folded line. */
static int mime7_encode_field(struct buf *out, const char *name, size_t nlen,
			      const char *v, const char *end)
{
	unsigned char text[MIME7_HDR_MAX];
	size_t n = 0;

	v = mime7_skip_ws(v, end);
	for (; v < end && n < sizeof(text); v++)
		if (*v != '\r' && *v != '\n')
			text[n++] = (unsigned char)*v;
	while (n > 0 && (text[n - 1] == ' ' || text[n - 1] == '\t'))
		n--;
	if (buf_append(out, name, nlen) < 0 || buf_append(out, ":", 1) < 0 ||
	    mime7_words(out, text, n) < 0)
		return -1;
	return buf_append(out, "\r\n", 2);
}

/* Encoded-words of text, each after a space, a fold before each one
 * after the first. */
static int mime7_words(struct buf *out, const unsigned char *text, size_t n)
{
	const char *charset;
	size_t i = 0;
	int need = 0;

	charset = mime7_utf8(&need, text, n) && need == 0 ? "utf-8"
							  : "unknown-8bit";
	while (i < n) {
		size_t k = n - i < MIME7_WORD_BYTES ? n - i : MIME7_WORD_BYTES;

		/* Back off to the start of a character. */
		if (charset[0] == 'u' && charset[1] == 't' && i + k < n)
			while (k > 1 && (text[i + k] & 0xc0) == 0x80)
				k--;
		/* The fold goes before each word after the first. */
		if (buf_append_str(out, i > 0 ? "\r\n " : " ") < 0 ||
		    buf_printf(out, "=?%s?B?", charset) < 0)
			return -1;
		if (mime7_base64(out, text + i, k) < 0 ||
		    buf_append(out, "?=", 2) < 0)
			return -1;
		i += k;
	}
	return 0;
}

/* " \"text\"" with '"' and '\\' escaped (RFC 5322 3.2.4). */
static int mime7_quoted(struct buf *out, const char *text)
{
	int rc = buf_append_str(out, " \"");

	for (; *text != '\0'; text++) {
		if (*text == '"' || *text == '\\')
			rc |= buf_append(out, "\\", 1);
		rc |= buf_append(out, text, 1);
	}
	return rc | buf_append(out, "\"", 1);
}

/* An address field again, in 7 bits: "Name: =?utf-8?B?...?= <a@b>,". */
static int mime7_encode_addresses(struct buf *out, const char *name,
				  size_t nlen, const char *v, const char *end)
{
	struct addrlist_entry *list;
	int n = mime7_addresses(v, end, &list), rc = 0;

	if (n < 0)
		return -1; /* read_field found it convertible: cannot be */
	rc |= buf_append(out, name, nlen);
	rc |= buf_append(out, ":", 1);
	for (int i = 0; i < n && rc == 0; i++) {
		char a[ADDR_FORMAT_SIZE];
		const unsigned char *d = (const unsigned char *)list[i].display;

		addr_format(&list[i].addr, a, sizeof(a));
		if (i > 0)
			rc |= buf_append_str(out, ",\r\n");
		if (d[0] == '\0')
			rc |= buf_append_str(out, " ");
		else if (!mime7_is8(list[i].display, strlen(list[i].display)))
			rc |= mime7_quoted(out, list[i].display);
		else
			rc |= mime7_words(out, d, strlen(list[i].display));
		rc |= buf_printf(out, "%s<%s>", d[0] != '\0' ? " " : "", a);
	}
	free(list);
	return rc | buf_append(out, "\r\n", 2);
}

struct mime7_emit {
	struct buf *out;
	const char *cte; /* replacement encoding, NULL: keep */
};

static int mime7_write_field(struct remote_mime7 *m, const char *name,
			     size_t nlen, const char *field, size_t flen,
			     void *ctx)
{
	struct mime7_emit *e = ctx;

	(void)m;
	if (nlen > 0 && e->cte != NULL &&
	    mime7_name_is(name, nlen, "content-transfer-encoding"))
		return buf_printf(e->out, "Content-Transfer-Encoding: %s\r\n",
				  e->cte);
	if (nlen > 0 && mime7_is8(field, flen) &&
	    mime7_unstructured(name, nlen))
		return mime7_encode_field(e->out, field, nlen, field + nlen + 1,
					  field + flen);
	if (nlen > 0 && mime7_is8(field, flen) &&
	    mime7_address_field(name, nlen))
		return mime7_encode_addresses(e->out, field, nlen,
					      field + nlen + 1, field + flen);
	return buf_append(e->out, field, flen);
}

static int mime7_is_container_cte(const char *cte)
{
	return strcmp(cte, "8bit") == 0 || strcmp(cte, "binary") == 0;
}

/* The blank line after a part's headers: decide what the part is. */
static int mime7_headers_done(struct remote_mime7 *m, struct buf *out)
{
	struct mime7_fields f;
	struct mime7_emit e = {.out = out, .cte = NULL};
	int multipart, rfc822, walk, had_type;
	size_t depth = m->nbounds;

	if (m->hdr_over) {
		m->mode = MIME7_OPAQUE;
		return mime7_out(m, out, "\r\n", 2);
	}
	memset(&f, 0, sizeof(f));
	if (mime7_fields_walk(m, mime7_read_field, &f) < 0)
		return -1;
	had_type = f.type[0] != '\0' && strchr(f.type, '/') != NULL;
	if (!had_type)
		snprintf(f.type, sizeof(f.type), "%s",
			 m->digest[depth] && !m->message_level
				 ? "message/rfc822"
				 : "text/plain");
	multipart = strncmp(f.type, "multipart/", 10) == 0;
	rfc822 = strcmp(f.type, "message/rfc822") == 0;
	walk = (multipart && f.boundary[0] != '\0' && depth < MIME7_DEPTH) ||
	       rfc822;
	if (walk && mime7_is_container_cte(f.cte))
		e.cte = "7bit";
	m->qp = 0;
	if (!walk && m->info != NULL && mime7_bit(m->info->eightbit, m->part))
		m->qp = 1;
	if (m->qp)
		e.cte = "quoted-printable";
	if (m->info != NULL) {
		if (mime7_fields_walk(m, mime7_write_field, &e) < 0)
			return -1;
		if (m->qp && f.cte[0] == '\0' &&
		    buf_append_str(out, "Content-Transfer-Encoding: "
					"quoted-printable\r\n") < 0)
			return -1;
		if (m->qp && !f.mime_version && m->message_level &&
		    buf_append_str(out, "MIME-Version: 1.0\r\n") < 0)
			return -1;
		if (m->qp && !had_type &&
		    buf_printf(out, "Content-Type: text/plain; charset=%s\r\n",
			       mime7_bit(m->info->not_utf8, m->part)
				       ? "unknown-8bit"
				       : "utf-8") < 0)
			return -1;
		if (buf_append(out, "\r\n", 2) < 0)
			return -1;
	}
	if (multipart && walk) {
		snprintf(m->bounds[depth], sizeof(m->bounds[depth]), "%s",
			 f.boundary);
		m->nbounds++;
		m->digest[m->nbounds] = strcmp(f.type, "multipart/digest") == 0;
		m->mode = MIME7_OPAQUE; /* the preamble */
		return 0;
	}
	if (rfc822) {
		mime7_begin_part(m, 1);
		return 0;
	}
	m->leaf_container = multipart || strncmp(f.type, "message/", 8) == 0;
	m->mode = MIME7_LEAF;
	return 0;
}

/* ---- lines ---- */

/* Is the segment the boundary line of an enclosing multipart? Returns
 * its level + 1 (0: no); *close_r for the closing "--boundary--". */
static size_t mime7_boundary(const struct remote_mime7 *m, const char *p,
			     size_t n, int *close_r)
{
	if (n < 2 || p[0] != '-' || p[1] != '-')
		return 0;
	for (size_t k = m->nbounds; k > 0; k--) {
		const char *b = m->bounds[k - 1];
		size_t bl = strlen(b), rest;

		if (n - 2 < bl || memcmp(p + 2, b, bl) != 0)
			continue;
		rest = 2 + bl;
		*close_r =
			n - rest >= 2 && p[rest] == '-' && p[rest + 1] == '-';
		if (*close_r)
			rest += 2;
		/* RFC 2046 5.1.1: only linear white space may follow. */
		while (rest < n && (p[rest] == ' ' || p[rest] == '\t'))
			rest++;
		if (rest == n)
			return k;
	}
	return 0;
}

/* Quoted-printable (RFC 2045 6.7) of one segment; eol: the line ends
 * here (a hard line break, and trailing white space is encoded). */
static int mime7_qp(struct remote_mime7 *m, const char *p, size_t n, int eol,
		    struct buf *out)
{
	static const char hex[] = "0123456789ABCDEF";

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		int enc = c == '=' || c > 126 || (c < 32 && c != '\t') ||
			  ((c == ' ' || c == '\t') && eol && i + 1 == n);
		char e[3] = {'=', hex[c >> 4], hex[c & 15]};
		size_t w = enc ? 3 : 1;

		if (m->col + w > MIME7_QP_COLS) {
			if (buf_append(out, "=\r\n", 3) < 0)
				return -1;
			m->col = 0;
		}
		if (buf_append(out, enc ? e : (const char *)&p[i], w) < 0)
			return -1;
		m->col += w;
	}
	if (eol) {
		m->col = 0;
		return buf_append(out, "\r\n", 2);
	}
	return 0;
}

static int mime7_segment(struct remote_mime7 *m, const char *p, size_t n,
			 int eol, struct buf *out)
{
	size_t level;
	int close = 0;

	if (!m->cont && m->mode != MIME7_HEADERS &&
	    (level = mime7_boundary(m, p, eol ? n : 0, &close)) > 0) {
		mime7_end_part(m);
		m->nbounds = close ? level - 1 : level;
		if (close)
			m->mode = MIME7_OPAQUE; /* the epilogue */
		else
			mime7_begin_part(m, 0);
		if (mime7_out(m, out, p, n) < 0 ||
		    mime7_out(m, out, "\r\n", 2) < 0)
			return -1;
		return 0;
	}
	switch (m->mode) {
	case MIME7_HEADERS:
		if (!m->cont && eol && n == 0)
			return mime7_headers_done(m, out);
		if (!m->hdr_over && m->hdr.len + n + 2 <= MIME7_HDR_MAX) {
			if (buf_append(&m->hdr, p, n) < 0 ||
			    (eol && buf_append(&m->hdr, "\r\n", 2) < 0))
				return -1;
			return 0;
		}
		if (!m->hdr_over) {
			/* Too long to understand: sent as it is. */
			m->hdr_over = 1;
			if (m->info == NULL &&
			    mime7_is8(m->hdr.data, m->hdr.len))
				m->res.unconvertible = 1;
			if (mime7_out(m, out, m->hdr.data, m->hdr.len) < 0)
				return -1;
			buf_reset(&m->hdr);
		}
		if (m->info == NULL && mime7_is8(p, n))
			m->res.unconvertible = 1;
		break;
	case MIME7_LEAF:
		if (m->info == NULL) {
			if (mime7_is8(p, n)) {
				m->part8 = 1;
				if (!mime7_utf8(&m->utf8_need,
						(const unsigned char *)p, n))
					m->bad_utf8 = 1;
			}
			return 0;
		}
		if (m->qp)
			return mime7_qp(m, p, n, eol, out);
		break;
	case MIME7_OPAQUE:
		if (m->info == NULL && mime7_is8(p, n))
			m->res.unconvertible = 1;
		break;
	}
	if (mime7_out(m, out, p, n) < 0 ||
	    (eol && mime7_out(m, out, "\r\n", 2) < 0))
		return -1;
	return 0;
}

/* One line, or a piece of a long one (a CR at its end is kept for the
 * next piece, where it may turn out to end the line). */
static int mime7_flush_line(struct remote_mime7 *m, int eol, struct buf *out)
{
	size_t n = m->linelen;
	int keep = 0, r;

	if (n > 0 && m->line[n - 1] == '\r') {
		n--;
		keep = !eol;
	}
	r = mime7_segment(m, m->line, n, eol, out);
	m->linelen = 0;
	m->cont = !eol;
	if (keep)
		m->line[m->linelen++] = '\r';
	return r;
}

int remote_mime7_feed(struct remote_mime7 *m, const void *in, size_t len,
		      struct buf *out)
{
	const char *p = in;

	for (size_t i = 0; i < len; i++) {
		if (p[i] == '\n') {
			if (mime7_flush_line(m, 1, out) < 0)
				return -1;
			continue;
		}
		if (m->linelen == sizeof(m->line) &&
		    mime7_flush_line(m, 0, out) < 0)
			return -1;
		m->line[m->linelen++] = p[i];
	}
	return 0;
}

int remote_mime7_finish(struct remote_mime7 *m, struct buf *out)
{
	if ((m->linelen > 0 || m->cont) && mime7_flush_line(m, 1, out) < 0)
		return -1;
	if (m->mode == MIME7_HEADERS) {
		/* A message that is all headers. */
		if (mime7_headers_done(m, out) < 0)
			return -1;
	}
	mime7_end_part(m);
	return 0;
}

void remote_mime7_result(const struct remote_mime7 *m,
			 struct remote_mime7_info *info_r)
{
	*info_r = m->res;
}

struct remote_mime7 *remote_mime7_new(const struct remote_mime7_info *info)
{
	struct remote_mime7 *m = calloc(1, sizeof(*m));

	if (m == NULL)
		return NULL;
	m->info = info;
	buf_init(&m->hdr, MIME7_HDR_MAX);
	mime7_begin_part(m, 1);
	return m;
}

void remote_mime7_free(struct remote_mime7 *m)
{
	if (m == NULL)
		return;
	buf_deinit(&m->hdr);
	free(m);
}
