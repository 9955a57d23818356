/*
 * filter_mime: walks a message's MIME structure (RFC 2045, 2046) for the
 * content filter, within fixed limits of nesting and parts, so that a
 * hostile message costs at most a few passes over its bytes. It finds the
 * leaves (type, file name from RFC 2231 parameters or RFC 2047 words), and
 * collects the decoded text of the text parts (base64, quoted-printable;
 * UTF-8, Latin-1) for "body contains". Rewrites messages without their
 * attachments. Owns only what it allocates into struct filter_mime.
 */
#include "filter/filter_mime.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/codec.h"
#include "lib/addrlist.h"
#include "lib/header.h"

#define FILTER_MIME_HEADER_MAX 8192 /* an unfolded MIME header field */
#define FILTER_XSTR(x) FILTER_STR(x)
#define FILTER_STR(x) #x
#define FILTER_MIME_BOUNDARY_WHY                                               \
	"MIME boundary too long to read whole (Content-Type field "            \
	"over " FILTER_XSTR(FILTER_MIME_HEADER_MAX) " bytes or an RFC 2231 "   \
						    "piece over 1023)"
#define FILTER_MIME_DEPTH_WHY                                                  \
	"MIME structure deeper than " FILTER_XSTR(                             \
		FILTER_MIME_DEPTH_MAX) " levels"

struct filter_mime_walk {
	const char *msg;
	size_t len;
	struct filter_mime *m;
	size_t cap;
};

/* --- decoders --- */

int filter_mime_base64(const char *in, size_t len, struct buf *out)
{
	unsigned acc = 0;
	int bits = 0;
	char chunk[512];
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		int v = codec_base64_value((unsigned char)in[i]);

		if (in[i] == '=')
			break;
		if (v < 0)
			continue; /* line ends, white space, junk */
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			chunk[n++] = (char)((acc >> bits) & 0xff);
			if (n == sizeof(chunk)) {
				if (buf_append(out, chunk, n) < 0)
					return -1;
				n = 0;
			}
		}
	}
	return buf_append(out, chunk, n);
}

int filter_mime_qp(const char *in, size_t len, struct buf *out)
{
	size_t i = 0, run = 0;

	while (i < len) {
		int h1, h2;

		if (in[i] != '=') {
			i++;
			run++;
			continue;
		}
		if (buf_append(out, in + i - run, run) < 0)
			return -1;
		run = 0;
		/* RFC 2045 6.7: "=" at the end of a line is a soft break. */
		if (i + 1 < len && in[i + 1] == '\n') {
			i += 2;
		} else if (i + 2 < len && in[i + 1] == '\r' &&
			   in[i + 2] == '\n') {
			i += 3;
		} else if (i + 2 < len &&
			   (h1 = codec_hex_value((unsigned char)in[i + 1])) >=
				   0 &&
			   (h2 = codec_hex_value((unsigned char)in[i + 2])) >=
				   0) {
			char c = (char)(h1 * 16 + h2);
			if (buf_append(out, &c, 1) < 0)
				return -1;
			i += 3;
		} else {
			/* A lone '=' is kept as written (rule 3 of 6.7). */
			i++;
			run = 1;
		}
	}
	return buf_append(out, in + len - run, run);
}

/* Length of the UTF-8 sequence at p (n bytes left), 0 when not valid. */
static size_t filter_utf8_len(const unsigned char *p, size_t n)
{
	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		return n >= 2 && (p[1] & 0xc0) == 0x80 ? 2 : 0;
	if (p[0] >= 0xe0 && p[0] <= 0xef) {
		if (n < 3 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80)
			return 0;
		if (p[0] == 0xe0 && p[1] < 0xa0)
			return 0; /* overlong */
		if (p[0] == 0xed && p[1] >= 0xa0)
			return 0; /* surrogates */
		return 3;
	}
	if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		if (n < 4 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 ||
		    (p[3] & 0xc0) != 0x80)
			return 0;
		if ((p[0] == 0xf0 && p[1] < 0x90) ||
		    (p[0] == 0xf4 && p[1] > 0x8f))
			return 0;
		return 4;
	}
	return 0;
}

int filter_mime_to_utf8(const char *in, size_t len, const char *charset,
			struct buf *out)
{
	const unsigned char *p = (const unsigned char *)in;
	int latin1 =
		charset != NULL && (strcasecmp(charset, "iso-8859-1") == 0 ||
				    strcasecmp(charset, "latin1") == 0 ||
				    strcasecmp(charset, "iso_8859-1") == 0 ||
				    strcasecmp(charset, "windows-1252") == 0 ||
				    strcasecmp(charset, "cp1252") == 0);
	size_t i = 0, run = 0;

	while (i < len) {
		size_t l;

		if (p[i] < 0x80) {
			i++;
			run++;
			continue;
		}
		if (latin1) {
			unsigned char two[2] = {
				(unsigned char)(0xc0 | (p[i] >> 6)),
				(unsigned char)(0x80 | (p[i] & 0x3f))};
			if (buf_append(out, in + i - run, run) < 0 ||
			    buf_append(out, two, 2) < 0)
				return -1;
			run = 0;
			i++;
			continue;
		}
		l = filter_utf8_len(p + i, len - i);
		if (l > 0) {
			i += l;
			run += l;
			continue;
		}
		if (buf_append(out, in + i - run, run) < 0 ||
		    buf_append(out, "?", 1) < 0)
			return -1;
		run = 0;
		i++;
	}
	return buf_append(out, in + len - run, run);
}

/* --- header parameters --- */

/* Copies an unfolded header value into out (size bytes). Returns its
 * length: size - 1 when it may have been cut. */
static size_t filter_unfold(const struct header_field *f, char *out,
			    size_t size)
{
	return header_unfold(f, out, size);
}

/* Skips white space and RFC 5322 comments. */
static const char *filter_skip_cfws(const char *s)
{
	for (;;) {
		while (*s == ' ' || *s == '\t')
			s++;
		if (*s != '(')
			return s;
		for (int depth = 0; *s != '\0'; s++) {
			if (*s == '\\' && s[1] != '\0')
				s++;
			else if (*s == '(')
				depth++;
			else if (*s == ')' && --depth == 0) {
				s++;
				break;
			}
		}
	}
}

/* The first word of a Content-Type / Disposition value, lower-cased. */
static void filter_main_value(const char *v, char *out, size_t size)
{
	size_t n = 0;

	v = filter_skip_cfws(v);
	while (*v != '\0' && *v != ';' && *v != ' ' && *v != '\t' &&
	       *v != '(' && n + 1 < size)
		out[n++] = (char)tolower((unsigned char)*v++);
	out[n] = '\0';
}

/* Reads one parameter value (token or quoted string) at s into out; sets
 * *cut_r when it did not fit. Returns the position after it. */
static const char *filter_param_value(const char *s, char *out, size_t size,
				      int *cut_r)
{
	size_t n = 0;

	s = filter_skip_cfws(s);
	if (*s == '"') {
		for (s++; *s != '\0' && *s != '"'; s++) {
			if (*s == '\\' && s[1] != '\0')
				s++;
			if (n + 1 < size)
				out[n++] = *s;
			else
				*cut_r = 1;
		}
		if (*s == '"')
			s++;
	} else {
		while (*s != '\0' && *s != ';' && *s != ' ' && *s != '\t') {
			if (n + 1 < size)
				out[n++] = *s;
			else
				*cut_r = 1;
			s++;
		}
	}
	out[n] = '\0';
	return s;
}

#define FILTER_PARAM_SEGMENTS 32

/*
 * Finds parameter attr of a header value (after its first word), with
 * RFC 2231 continuations (attr*0, attr*1*, ...) and charsets (attr*=
 * utf-8''%E2%82%AC), and RFC 2047 words in a plain value (which RFC 2047
 * 5 forbids but mailers write). Writes UTF-8 into out. A value as long
 * as the header field fits the buffers here; *cut_r (may be NULL) is set
 * when some of it did not fit in them or in out, so that a caller to whom
 * a cut value means something else (a boundary) can tell. Returns 1 if
 * found, else 0.
 */
static int filter_param(const char *v, const char *attr, char *out, size_t size,
			int *cut_r)
{
	char seg[FILTER_PARAM_SEGMENTS][1024];
	int have[FILTER_PARAM_SEGMENTS] = {0}, ext[FILTER_PARAM_SEGMENTS] = {0};
	char plain[FILTER_MIME_HEADER_MAX] = "";
	int found_plain = 0, found_ext = 0, cut = 0, seg_cut = 0;
	size_t alen = strlen(attr);
	const char *s = strchr(v, ';');

	while (s != NULL && *s == ';') {
		char name[80], val[FILTER_MIME_HEADER_MAX];
		size_t n = 0;
		int val_cut = 0;

		s = filter_skip_cfws(s + 1);
		while (*s != '\0' && *s != '=' && *s != ';' &&
		       n + 1 < sizeof(name))
			name[n++] = *s++;
		while (n > 0 && (name[n - 1] == ' ' || name[n - 1] == '\t'))
			n--;
		name[n] = '\0';
		if (*s != '=') {
			s = strchr(s, ';');
			continue;
		}
		s = filter_param_value(s + 1, val, sizeof(val), &val_cut);
		s = filter_skip_cfws(s);
		if (*s != ';')
			s = strchr(s, ';');
		if (n < alen || strncasecmp(name, attr, alen) != 0)
			continue;
		if (n == alen) {
			snprintf(plain, sizeof(plain), "%s", val);
			found_plain = 1;
			cut = val_cut;
		} else if (name[alen] == '*') {
			const char *rest = name + alen + 1;
			int idx = 0, star = 0;

			if (*rest == '\0') {
				star = 1; /* attr*=charset''value */
			} else {
				if (!isdigit((unsigned char)*rest))
					continue;
				idx = (int)strtol(rest, (char **)&rest, 10);
				if (*rest == '*')
					star = 1, rest++;
				if (*rest != '\0')
					continue;
			}
			if (idx < 0 || idx >= FILTER_PARAM_SEGMENTS) {
				seg_cut = 1;
				continue;
			}
			if ((size_t)snprintf(seg[idx], sizeof(seg[idx]), "%s",
					     val) >= sizeof(seg[idx]) ||
			    val_cut)
				seg_cut = 1;
			have[idx] = 1;
			ext[idx] = star;
			found_ext = 1;
		}
	}
	if (found_ext && have[0]) {
		struct buf raw, conv;
		char charset[64] = "";
		int r;

		buf_init(&raw, 8192);
		buf_init(&conv, size > 0 ? size * 4 : 1);
		for (int i = 0; i < FILTER_PARAM_SEGMENTS && have[i]; i++) {
			const char *p = seg[i];

			if (i == 0 && ext[0]) {
				/* charset'language'value (RFC 2231 4). */
				const char *q1 = strchr(p, '\'');
				const char *q2 = q1 != NULL
							 ? strchr(q1 + 1, '\'')
							 : NULL;
				if (q1 != NULL && q2 != NULL) {
					snprintf(charset, sizeof(charset),
						 "%.*s", (int)(q1 - p), p);
					p = q2 + 1;
				}
			}
			for (; *p != '\0'; p++) {
				int h1, h2;
				char c = *p;

				if (ext[i] && *p == '%' &&
				    (h1 = codec_hex_value(
					     (unsigned char)p[1])) >= 0 &&
				    (h2 = codec_hex_value(
					     (unsigned char)p[2])) >= 0) {
					c = (char)(h1 * 16 + h2);
					p += 2;
				}
				if (buf_append(&raw, &c, 1) < 0)
					seg_cut = 1;
			}
		}
		r = filter_mime_to_utf8(raw.data != NULL ? raw.data : "",
					raw.len, charset, &conv);
		if (r < 0 ||
		    (size_t)snprintf(out, size, "%s", buf_cstr(&conv)) >= size)
			seg_cut = 1;
		cut = seg_cut;
		buf_deinit(&raw);
		buf_deinit(&conv);
	} else if (found_plain) {
		if (addrlist_decode_words(plain, strlen(plain), out, size) +
			    1 >=
		    size)
			cut = 1;
	} else {
		return 0;
	}
	/* No control characters in what we log or compare. */
	for (char *p = out; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	if (cut_r != NULL)
		*cut_r = cut;
	return 1;
}

/* --- walking --- */

/* Finds the next boundary line "--b" in [from, end) at a line start.
 * Returns its offset, or end. *last_r is set for "--b--". */
static size_t filter_find_boundary(const char *msg, size_t from, size_t end,
				   const char *b, size_t blen, int *last_r,
				   size_t *after_r)
{
	size_t p = from;

	while (p + 2 + blen <= end) {
		const char *hit;

		if ((p == from || msg[p - 1] == '\n') && msg[p] == '-' &&
		    msg[p + 1] == '-' && memcmp(msg + p + 2, b, blen) == 0) {
			size_t q = p + 2 + blen;

			*last_r = q + 1 < end && msg[q] == '-' &&
				  msg[q + 1] == '-';
			if (*last_r)
				q += 2;
			/* Transport padding (RFC 2046 5.1.1), then the
			 * line end. */
			while (q < end && (msg[q] == ' ' || msg[q] == '\t'))
				q++;
			if (q == end || msg[q] == '\r' || msg[q] == '\n') {
				if (q < end && msg[q] == '\r')
					q++;
				if (q < end && msg[q] == '\n')
					q++;
				*after_r = q;
				return p;
			}
		}
		hit = memchr(msg + p, '\n', end - p);
		if (hit == NULL)
			break;
		p = (size_t)(hit - msg) + 1;
	}
	*last_r = 1;
	*after_r = end;
	return end;
}

static int filter_add_text(struct filter_mime_walk *w, const char *body,
			   size_t blen, const char *cte, const char *charset,
			   int html)
{
	struct buf dec, conv;
	const char *src = body;
	size_t slen = blen;
	int r = 0;

	buf_init(&dec, FILTER_MIME_TEXT_MAX);
	buf_init(&conv, FILTER_MIME_TEXT_MAX);
	if (strcmp(cte, "base64") == 0) {
		if (filter_mime_base64(body, blen, &dec) < 0)
			goto out;
		src = dec.data != NULL ? dec.data : "";
		slen = dec.len;
	} else if (strcmp(cte, "quoted-printable") == 0) {
		if (filter_mime_qp(body, blen, &dec) < 0)
			goto out;
		src = dec.data != NULL ? dec.data : "";
		slen = dec.len;
	}
	if (filter_mime_to_utf8(src, slen, charset, &conv) < 0)
		goto out;
	if (w->m->text.len > 0 && buf_append(&w->m->text, "\n", 1) < 0)
		goto out;
	if (html) {
		/* Tags out, so that "free <b>money</b>" reads as text. */
		int in_tag = 0;
		size_t run = 0, i;
		const char *t = buf_cstr(&conv);

		for (i = 0; i < conv.len; i++) {
			if (!in_tag && t[i] == '<') {
				if (buf_append(&w->m->text, t + i - run, run) <
				    0)
					goto out;
				run = 0;
				in_tag = 1;
			} else if (in_tag) {
				if (t[i] == '>')
					in_tag = 0;
			} else {
				run++;
			}
		}
		if (buf_append(&w->m->text, t + i - run, run) < 0)
			goto out;
	} else if (buf_append(&w->m->text, buf_cstr(&conv), conv.len) < 0) {
		goto out;
	}
out:
	buf_deinit(&dec);
	buf_deinit(&conv);
	return r;
}

/* Marks the walk as stopped short at a limit; the first reason stays. */
static void filter_limit(struct filter_mime_walk *w, const char *why)
{
	if (!w->m->limit_hit)
		w->m->limit_why = why;
	w->m->limit_hit = 1;
}

static int filter_walk(struct filter_mime_walk *w, size_t start, size_t end,
		       int depth, const char *default_type)
{
	/* A boundary may be as long as its header field: RFC 2046 5.1.1
	 * allows 70 characters, but mail clients accept longer ones, and a
	 * boundary cut here would match no line and hide every part. */
	char value[FILTER_MIME_HEADER_MAX], boundary[FILTER_MIME_HEADER_MAX];
	char ctype[128], cte[64] = "7bit", disp[64] = "", charset[64] = "";
	char filename[256] = "";
	struct header_field f;
	size_t pos = 0, body;
	int have_type = 0, boundary_cut = 0, cut = 0;

	boundary[0] = '\0';

	snprintf(ctype, sizeof(ctype), "%s", default_type);
	while (header_next(w->msg + start, end - start, &pos, &f) == 1) {
		if (header_is(&f, "Content-Type") && !have_type) {
			/* A field that fills value may have lost the end of
			 * its boundary, or the boundary itself. */
			boundary_cut =
				filter_unfold(&f, value, sizeof(value)) + 1 >=
				sizeof(value);
			filter_main_value(value, ctype, sizeof(ctype));
			if (strchr(ctype, '/') == NULL)
				snprintf(ctype, sizeof(ctype), "%s",
					 "text/plain");
			have_type = 1;
			if (filter_param(value, "boundary", boundary,
					 sizeof(boundary), &cut) == 1 &&
			    cut)
				boundary_cut = 1;
			filter_param(value, "charset", charset, sizeof(charset),
				     NULL);
			if (filename[0] == '\0')
				filter_param(value, "name", filename,
					     sizeof(filename), NULL);
		} else if (header_is(&f, "Content-Transfer-Encoding")) {
			filter_unfold(&f, value, sizeof(value));
			filter_main_value(value, cte, sizeof(cte));
		} else if (header_is(&f, "Content-Disposition")) {
			char fn[256];

			filter_unfold(&f, value, sizeof(value));
			filter_main_value(value, disp, sizeof(disp));
			if (filter_param(value, "filename", fn, sizeof(fn),
					 NULL))
				snprintf(filename, sizeof(filename), "%s", fn);
		}
	}
	body = start + pos;
	if (strncmp(ctype, "multipart/", 10) == 0 && boundary_cut) {
		/* Held rather than read as one opaque part: its attachments
		 * would go unseen. */
		filter_limit(w, FILTER_MIME_BOUNDARY_WHY);
		return 0;
	}
	if (strncmp(ctype, "multipart/", 10) == 0 && boundary[0] != '\0') {
		size_t blen = strlen(boundary), p, after;
		int last = 0;

		if (depth >= FILTER_MIME_DEPTH_MAX) {
			filter_limit(w, FILTER_MIME_DEPTH_WHY);
			return 0;
		}
		/* The preamble before the first boundary is skipped. */
		p = filter_find_boundary(w->msg, body, end, boundary, blen,
					 &last, &after);
		while (p < end && !last) {
			size_t part = after, next, pend;

			next = filter_find_boundary(w->msg, part, end, boundary,
						    blen, &last, &after);
			/* The CRLF before a boundary belongs to it. */
			pend = next;
			if (pend > part && w->msg[pend - 1] == '\n')
				pend--;
			if (pend > part && w->msg[pend - 1] == '\r')
				pend--;
			if (filter_walk(w, part, pend, depth + 1,
					strcmp(ctype, "multipart/digest") == 0
						? "message/rfc822"
						: "text/plain") < 0)
				return -1;
			p = next;
		}
		return 0;
	}
	if (strcmp(ctype, "message/rfc822") == 0 &&
	    strcmp(disp, "attachment") &&
	    (strcmp(cte, "7bit") == 0 || strcmp(cte, "8bit") == 0 ||
	     strcmp(cte, "binary") == 0)) {
		if (depth >= FILTER_MIME_DEPTH_MAX) {
			filter_limit(w, FILTER_MIME_DEPTH_WHY);
			return 0;
		}
		return filter_walk(w, body, end, depth + 1, "text/plain");
	}
	if (w->m->nparts >= FILTER_MIME_PARTS_MAX) {
		filter_limit(w, "MIME structure with more than " FILTER_XSTR(
					FILTER_MIME_PARTS_MAX) " parts");
		return 0;
	}
	if (w->m->nparts == w->cap) {
		size_t cap = w->cap == 0 ? 8 : w->cap * 2;
		struct filter_mime_part *v =
			realloc(w->m->parts, cap * sizeof(*v));
		if (v == NULL)
			return -1;
		w->m->parts = v;
		w->cap = cap;
	}
	{
		struct filter_mime_part *pt = &w->m->parts[w->m->nparts++];
		int is_text = strcmp(ctype, "text/plain") == 0 ||
			      strcmp(ctype, "text/html") == 0;

		memset(pt, 0, sizeof(*pt));
		snprintf(pt->type, sizeof(pt->type), "%s", ctype);
		snprintf(pt->filename, sizeof(pt->filename), "%s", filename);
		pt->attachment =
			strcmp(disp, "attachment") == 0 || filename[0] != '\0';
		pt->depth = depth;
		pt->start = start;
		pt->body = body;
		pt->end = end;
		if (is_text && !pt->attachment)
			return filter_add_text(w, w->msg + body, end - body,
					       cte, charset,
					       strcmp(ctype, "text/html") == 0);
	}
	return 0;
}

int filter_mime_parse(const char *msg, size_t len, struct filter_mime *m)
{
	struct filter_mime_walk w;

	memset(m, 0, sizeof(*m));
	w = (struct filter_mime_walk){msg, len, m, 0};
	buf_init(&m->text, FILTER_MIME_TEXT_MAX);
	if (filter_walk(&w, 0, len, 0, "text/plain") < 0) {
		filter_mime_deinit(m);
		return -1;
	}
	return 0;
}

void filter_mime_deinit(struct filter_mime *m)
{
	free(m->parts);
	m->parts = NULL;
	m->nparts = 0;
	buf_deinit(&m->text);
}

/* The text part that takes an attachment's place. */
static int filter_strip_note(struct buf *out, const struct filter_mime_part *p)
{
	return buf_printf(out,
			  "Content-Type: text/plain; charset=utf-8\r\n"
			  "Content-Transfer-Encoding: 8bit\r\n\r\n"
			  "[The attachment \"%s\" (%s) was removed by the "
			  "content filter.]\r\n",
			  p->filename[0] != '\0' ? p->filename : "unnamed",
			  p->type);
}

int filter_mime_strip(const char *msg, size_t len, const struct filter_mime *m,
		      struct buf *out)
{
	size_t at = 0;
	int removed = 0;

	for (size_t i = 0; i < m->nparts; i++) {
		const struct filter_mime_part *p = &m->parts[i];

		if (!p->attachment || p->start < at)
			continue;
		if (p->start == 0) {
			/* The message is one attachment: keep its header
			 * fields but the MIME ones, and give it a text body. */
			struct header_field f;
			size_t pos = 0;

			while (header_next(msg, len, &pos, &f) == 1) {
				if (f.name_len >= 8 &&
				    strncasecmp(f.name, "Content-", 8) == 0)
					continue;
				if (buf_append(out, f.raw, f.raw_len) < 0)
					return -1;
			}
			if (filter_strip_note(out, p) < 0)
				return -1;
			return 1;
		}
		if (buf_append(out, msg + at, p->start - at) < 0 ||
		    filter_strip_note(out, p) < 0)
			return -1;
		/* filter_strip_note ends with CRLF; the part's own last
		 * line end belongs to the boundary that follows. */
		out->len -= 2;
		out->data[out->len] = '\0';
		at = p->end;
		removed++;
	}
	if (buf_append(out, msg + at, len - at) < 0)
		return -1;
	return removed;
}
