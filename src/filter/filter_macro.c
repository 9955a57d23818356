/*
 * filter_macro: expands $MACRO$ words in the content filter's notes and
 * added headers. One pass over the template: a value is appended as data
 * and never read again, so a hostile Subject cannot inject macros; values
 * lose their control characters, so none can inject header lines. Owns
 * nothing.
 */
#include "filter/filter_macro.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lib/addrlist.h"
#include "lib/header.h"

#define FILTER_MACRO_VALUE_MAX 2048

/* Appends s (n bytes) with control characters as spaces. */
static int filter_macro_data(struct buf *out, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		char ch = c < 0x20 || c == 0x7f ? ' ' : (char)c;

		if (buf_append(out, &ch, 1) < 0)
			return -1;
	}
	return 0;
}

static int filter_macro_str(struct buf *out, const char *s)
{
	return s == NULL ? 0 : filter_macro_data(out, s, strlen(s));
}

/* The decoded, unfolded value of the first header field `name`. */
static int filter_macro_field(struct buf *out, const struct filter_macro_ctx *c,
			      const char *name, size_t nlen)
{
	struct header_field f;
	size_t pos = 0;
	char value[FILTER_MACRO_VALUE_MAX];

	if (c->header == NULL)
		return 0;
	while (header_next(c->header, c->header_len, &pos, &f) == 1) {
		if (f.name_len != nlen || strncasecmp(f.name, name, nlen) != 0)
			continue;
		addrlist_decode_words(f.value, f.value_len, value,
				      sizeof(value));
		/* Trim the space after the colon. */
		return filter_macro_str(out, value + strspn(value, " \t"));
	}
	return 0;
}

void filter_macro_date(int64_t t, char *out, size_t size)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL ||
	    strftime(out, size, "%a, %d %b %Y %H:%M:%S +0000", &tm) == 0)
		snprintf(out, size, "%s", "Thu, 01 Jan 1970 00:00:00 +0000");
}

/* Appends the value of macro word (n bytes, without the '$'s). Returns 1
 * when it is a macro, 0 when not, -1 when out is full. */
static int filter_macro_one(struct buf *out, const struct filter_macro_ctx *c,
			    const char *w, size_t n)
{
	const char *addr = NULL, *at;
	int part = 0; /* 0 whole, 1 domain, 2 mailbox */

#define IS(lit) (n == sizeof(lit) - 1 && memcmp(w, lit, n) == 0)
	if (IS("SENDER"))
		addr = c->sender, part = 0;
	else if (IS("SENDERDOMAIN"))
		addr = c->sender, part = 1;
	else if (IS("SENDERMAILBOX"))
		addr = c->sender, part = 2;
	else if (IS("RECIPIENT"))
		addr = c->recipient, part = 0;
	else if (IS("RECIPIENTDOMAIN"))
		addr = c->recipient, part = 1;
	else if (IS("RECIPIENTMAILBOX"))
		addr = c->recipient, part = 2;
	else if (IS("FROM"))
		return filter_macro_field(out, c, "From", 4) < 0 ? -1 : 1;
	else if (IS("SUBJECT"))
		return filter_macro_field(out, c, "Subject", 7) < 0 ? -1 : 1;
	else if (IS("MESSAGEID"))
		return filter_macro_str(out, c->message_id) < 0 ? -1 : 1;
	else if (IS("FILTERRULENAME"))
		return filter_macro_str(out, c->rule_name) < 0 ? -1 : 1;
	else if (IS("PRIMARYDOMAIN"))
		return filter_macro_str(out, c->primary_domain) < 0 ? -1 : 1;
	else if (IS("MESSAGESIZE"))
		return buf_printf(out, "%llu", (unsigned long long)c->size) < 0
			       ? -1
			       : 1;
	else if (IS("CURRENTTIME")) {
		char date[64];

		filter_macro_date(c->now, date, sizeof(date));
		return buf_append_str(out, date) < 0 ? -1 : 1;
	} else if (n > 7 && memcmp(w, "HEADER:", 7) == 0)
		return filter_macro_field(out, c, w + 7, n - 7) < 0 ? -1 : 1;
	else
		return 0;
#undef IS
	if (addr == NULL)
		return 1;
	at = strrchr(addr, '@');
	if (part == 0)
		return filter_macro_str(out, addr) < 0 ? -1 : 1;
	if (part == 1)
		return filter_macro_str(out, at != NULL ? at + 1 : "") < 0 ? -1
									   : 1;
	return filter_macro_data(out, addr,
				 at != NULL ? (size_t)(at - addr)
					    : strlen(addr)) < 0
		       ? -1
		       : 1;
}

int filter_macro_expand(const char *tmpl, const struct filter_macro_ctx *c,
			struct buf *out)
{
	const char *p = tmpl;

	while (*p != '\0') {
		const char *d = strchr(p, '$'), *e;
		int r;

		if (d == NULL)
			return buf_append_str(out, p);
		if (buf_append(out, p, (size_t)(d - p)) < 0)
			return -1;
		e = strchr(d + 1, '$');
		if (e == NULL)
			return buf_append_str(out, d);
		r = filter_macro_one(out, c, d + 1, (size_t)(e - d - 1));
		if (r < 0)
			return -1;
		if (r == 1) {
			p = e + 1;
		} else {
			/* Not a macro: the '$' is text, and the closing one
			 * may open the next macro. */
			if (buf_append(out, d, (size_t)(e - d)) < 0)
				return -1;
			p = e;
		}
	}
	return 0;
}

int filter_macro_header(const char *name, const char *value, struct buf *out)
{
	size_t col, n = strlen(value), i = 0;

	if (buf_printf(out, "%s:", name) < 0)
		return -1;
	col = strlen(name) + 1;
	while (i < n) {
		size_t ws = i, word;

		/* One word with the white space before it. */
		while (ws < n &&
		       (value[ws] == ' ' || value[ws] == '\t' ||
			(unsigned char)value[ws] < 0x20 || value[ws] == 0x7f))
			ws++;
		if (ws == n)
			break;
		word = ws;
		while (word < n && value[word] != ' ' && value[word] != '\t' &&
		       (unsigned char)value[word] >= 0x20 &&
		       value[word] != 0x7f)
			word++;
		word -= ws;
		if (word > 900)
			word = 900;
		if (col > strlen(name) + 1 && col + 1 + word > 78) {
			if (buf_append(out, "\r\n", 2) < 0)
				return -1;
			col = 0;
		}
		if (buf_append(out, " ", 1) < 0 ||
		    buf_append(out, value + ws, word) < 0)
			return -1;
		col += 1 + word;
		i = ws + word;
		/* A cut word: skip the rest of it. */
		while (i < n && value[i] != ' ' && value[i] != '\t' &&
		       (unsigned char)value[i] >= 0x20 && value[i] != 0x7f)
			i++;
	}
	return buf_append(out, "\r\n", 2);
}
