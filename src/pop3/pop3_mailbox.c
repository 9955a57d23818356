/*
 * pop3_mailbox: the pure half of POP3 over Maildir: unique ids from file
 * names, sizes from the W= that delivery wrote, delivery order, the seen
 * flag in a file name, and the conversion of a stored message into its
 * wire form (CRLF, byte-stuffing, TOP). File access is pop3_maildir.c's.
 */
#include "pop3/pop3_mailbox.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

size_t pop3_mailbox_base_len(const char *name)
{
	return strcspn(name, ":");
}

int pop3_mailbox_name_wsize(const char *name, uint64_t *size_r)
{
	size_t base = pop3_mailbox_base_len(name);
	const char *p = name;

	/* The fields after the unique part are ",KEY=VALUE" (Dovecot's
	 * maildir_filename_get_size); W= is the size with CRLF. */
	while ((p = memchr(p, ',', base - (size_t)(p - name))) != NULL) {
		uint64_t n = 0;
		size_t digits = 0;

		p++;
		if ((size_t)(p - name) + 2 > base || p[0] != 'W' || p[1] != '=')
			continue;
		for (const char *q = p + 2;
		     q < name + base && *q >= '0' && *q <= '9' && digits < 19;
		     q++, digits++)
			n = n * 10 + (uint64_t)(*q - '0');
		if (digits == 0 ||
		    (p + 2 + digits < name + base && p[2 + digits] != ','))
			continue;
		*size_r = n;
		return 1;
	}
	return 0;
}

void pop3_mailbox_uidl(const char *name, char *out)
{
	static const char hex[] = "0123456789abcdef";
	size_t base = pop3_mailbox_base_len(name);
	unsigned char h[16];
	int ok = base > 0 && base <= POP3_UIDL_MAX;

	for (size_t i = 0; ok && i < base; i++)
		ok = (unsigned char)name[i] >= 0x21 &&
		     (unsigned char)name[i] <= 0x7e;
	if (ok) {
		memcpy(out, name, base);
		out[base] = '\0';
		return;
	}
	crypto_generichash(h, sizeof(h), (const unsigned char *)name, base,
			   NULL, 0);
	out[0] = 'H';
	for (size_t i = 0; i < sizeof(h); i++) {
		out[1 + 2 * i] = hex[h[i] >> 4];
		out[2 + 2 * i] = hex[h[i] & 15];
	}
	out[1 + 2 * sizeof(h)] = '\0';
}

static int pop3_mailbox_cmp(const void *a, const void *b)
{
	const struct pop3_msg *x = a, *y = b;
	unsigned long long tx = strtoull(x->name, NULL, 10);
	unsigned long long ty = strtoull(y->name, NULL, 10);

	if (tx != ty)
		return tx < ty ? -1 : 1;
	return strcmp(x->name, y->name);
}

void pop3_mailbox_sort(struct pop3_msg *msgs, size_t n)
{
	if (n > 1)
		qsort(msgs, n, sizeof(*msgs), pop3_mailbox_cmp);
}

int pop3_mailbox_seen_name(const char *name, char *out, size_t size)
{
	size_t base = pop3_mailbox_base_len(name), len = strlen(name), n;
	const char *flags;

	/* The longest result is the name with ":2,S" appended, and NUL. */
	if (len + 5 > size)
		return -1;
	if (name[base] != ':' || strncmp(name + base, ":2,", 3) != 0) {
		/* No info, or an experimental one (":1,"): replace it, as
		 * the Maildir spec lets a reader do. */
		memcpy(out, name, base);
		memcpy(out + base, ":2,S", 5);
		return 1;
	}
	flags = name + base + 3;
	if (strchr(flags, 'S') != NULL) {
		memcpy(out, name, len + 1);
		return 0;
	}
	/* Flags are kept in ASCII order (maildir spec). */
	n = base + 3;
	memcpy(out, name, n);
	while (*flags != '\0' && *flags < 'S')
		out[n++] = *flags++;
	out[n++] = 'S';
	while (*flags != '\0')
		out[n++] = *flags++;
	out[n] = '\0';
	return 1;
}

void pop3_conv_init(struct pop3_conv *c, int stuff, int64_t top_lines)
{
	memset(c, 0, sizeof(*c));
	c->stuff = stuff;
	c->body_lines = top_lines;
	c->bol = 1;
	c->line_empty = 1;
	/* TOP 0 on a message whose header is empty still ends there. */
}

/* A line just ended: the header ends at the first empty line (RFC 5322
 * 2.1); in the body, TOP counts lines down. */
static void pop3_conv_line_end(struct pop3_conv *c)
{
	if (!c->in_body) {
		if (c->line_empty) {
			c->in_body = 1;
			if (c->body_lines == 0)
				c->done = 1;
		}
	} else if (c->body_lines > 0 && --c->body_lines == 0) {
		c->done = 1;
	}
	c->bol = 1;
	c->line_empty = 1;
	c->cr = 0;
}

size_t pop3_conv_feed(struct pop3_conv *c, const char *in, size_t len,
		      char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < len && !c->done; i++) {
		char ch = in[i];

		if (ch == '\n') {
			if (!c->cr)
				out[o++] = '\r';
			out[o++] = '\n';
			pop3_conv_line_end(c);
			continue;
		}
		if (c->bol && ch == '.' && c->stuff)
			out[o++] = '.';
		out[o++] = ch;
		c->bol = 0;
		c->cr = ch == '\r';
		if (ch != '\r')
			c->line_empty = 0;
	}
	return o;
}

size_t pop3_conv_finish(struct pop3_conv *c, char *out)
{
	size_t o = 0;

	if (!c->bol) {
		if (!c->cr)
			out[o++] = '\r';
		out[o++] = '\n';
		c->bol = 1;
	}
	if (c->stuff) {
		memcpy(out + o, ".\r\n", 3);
		o += 3;
	}
	return o;
}
