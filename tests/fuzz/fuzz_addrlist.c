/* Fuzzes the address-list parser and the encoded-word decoder. The first
 * byte picks the entry limit (0 to 8) and an output size; the rest is the
 * field value. Whatever parses must hold: count within the limit, an
 * output array of exactly that many entries (ASan sees a write past it),
 * terminated names that are valid UTF-8 without control characters, and
 * addresses that format, parse back with addr_parse_mailbox to the same
 * address, and parse back as a list. A larger limit gives the same
 * entries. The decoder's output is terminated, clean, within its size, and
 * a prefix of the output for a larger size, never cut inside a character. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/addrlist.h"

#define FUZZ_MAX 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Valid UTF-8 (RFC 3629) without C0, DEL or C1 controls. */
static void fuzz_check_text(const char *s, size_t size)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t n = strnlen(s, size);

	if (n >= size)
		abort();
	for (size_t i = 0; i < n;) {
		unsigned long cp;
		size_t k;

		if (u[i] < 0x80) {
			if (u[i] < 0x20 || u[i] == 0x7f)
				abort();
			i++;
			continue;
		}
		if (u[i] >= 0xc2 && u[i] <= 0xdf)
			k = 2;
		else if (u[i] >= 0xe0 && u[i] <= 0xef)
			k = 3;
		else if (u[i] >= 0xf0 && u[i] <= 0xf4)
			k = 4;
		else
			abort();
		if (i + k > n)
			abort();
		cp = u[i] & (0x7f >> k);
		for (size_t j = 1; j < k; j++) {
			if ((u[i + j] & 0xc0) != 0x80)
				abort();
			cp = (cp << 6) | (u[i + j] & 0x3f);
		}
		if ((k == 3 && cp < 0x800) || (k == 4 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) ||
		    (cp >= 0x80 && cp < 0xa0))
			abort();
		i += k;
	}
}

static void fuzz_check_entry(const struct addrlist_entry *e)
{
	char text[ADDR_FORMAT_SIZE];
	struct addr b;
	const char *err;
	int n;

	if (strnlen(e->addr.local, sizeof(e->addr.local)) >=
		    sizeof(e->addr.local) ||
	    strnlen(e->addr.domain, sizeof(e->addr.domain)) >=
		    sizeof(e->addr.domain))
		abort();
	if (e->addr.local[0] == '\0' || e->addr.domain[0] == '\0')
		abort();
	n = addr_format(&e->addr, text, sizeof(text));
	if (n <= 0 || (size_t)n != strlen(text))
		abort();
	if (addr_parse_mailbox(text, &b, &err) < 0)
		abort();
	if (strcmp(e->addr.local, b.local) != 0 ||
	    strcmp(e->addr.domain, b.domain) != 0)
		abort();
	if (e->addr.domain[0] != '[' && !addr_domain_valid(e->addr.domain))
		abort();
	fuzz_check_text(e->display, sizeof(e->display));
	fuzz_check_text(e->group, sizeof(e->group));
}

static int fuzz_same(const struct addrlist_entry *a,
		     const struct addrlist_entry *b)
{
	return strcmp(a->addr.local, b->addr.local) == 0 &&
	       strcmp(a->addr.domain, b->addr.domain) == 0 &&
	       strcmp(a->display, b->display) == 0 &&
	       strcmp(a->group, b->group) == 0;
}

/* The addresses, formatted and joined by commas, parse to themselves. */
static void fuzz_check_relist(const struct addrlist_entry *e, size_t count)
{
	static struct addrlist_entry again[FUZZ_MAX];
	char list[FUZZ_MAX * (ADDR_FORMAT_SIZE + 2)];
	const char *err;
	size_t n = 0, c2;

	for (size_t i = 0; i < count; i++) {
		int k = addr_format(&e[i].addr, list + n, ADDR_FORMAT_SIZE);

		if (k <= 0)
			abort();
		n += (size_t)k;
		list[n++] = ',';
	}
	if (addrlist_parse(list, n, again, FUZZ_MAX, &c2, &err) < 0 ||
	    c2 != count)
		abort();
	for (size_t i = 0; i < count; i++) {
		if (strcmp(e[i].addr.local, again[i].addr.local) != 0 ||
		    strcmp(e[i].addr.domain, again[i].addr.domain) != 0)
			abort();
	}
}

static void fuzz_decode(const char *in, size_t len, size_t small)
{
	/* B turns 4 bytes into 3, each up to 3 bytes of UTF-8. */
	size_t big = 3 * len + 16;
	char *a = malloc(big), *b = malloc(small);
	size_t na, nb;

	if (a == NULL || b == NULL) {
		free(a);
		free(b);
		return;
	}
	na = addrlist_decode_words(in, len, a, big);
	nb = addrlist_decode_words(in, len, b, small);
	if (na >= big || na != strlen(a) || nb >= small || nb != strlen(b))
		abort();
	fuzz_check_text(a, big);
	fuzz_check_text(b, small);
	if (nb > na || memcmp(a, b, nb) != 0)
		abort();
	if (nb < na && ((unsigned char)a[nb] & 0xc0) == 0x80)
		abort();
	free(a);
	free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct addrlist_entry all[FUZZ_MAX];
	struct addrlist_entry *out = NULL;
	const char *in, *err = NULL;
	size_t len, max, count = 1234, count_all;
	int rc, rc_all;

	if (size == 0)
		return 0;
	max = data[0] % (FUZZ_MAX + 1);
	in = (const char *)data + 1;
	len = size - 1;

	if (max > 0) {
		out = malloc(max * sizeof(*out));
		if (out == NULL)
			return 0;
	}
	rc = addrlist_parse(in, len, out, max, &count, &err);
	if (rc != 0 && rc != -1)
		abort();
	if (rc < 0) {
		if (err == NULL || count != 0)
			abort();
	} else {
		if (count > max)
			abort();
		for (size_t i = 0; i < count; i++)
			fuzz_check_entry(&out[i]);
		fuzz_check_relist(out, count);
	}

	/* The limit only ever refuses: with room for more, the same. */
	rc_all = addrlist_parse(in, len, all, FUZZ_MAX, &count_all, &err);
	if (rc == 0) {
		if (rc_all != 0 || count_all != count)
			abort();
		for (size_t i = 0; i < count; i++) {
			if (!fuzz_same(&out[i], &all[i]))
				abort();
		}
	}
	free(out);

	fuzz_decode(in, len, (size_t)data[0] % 37 + 1);
	return 0;
}
