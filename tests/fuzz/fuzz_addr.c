/* Fuzzes the address parsers: addr_parse_path on the input (the first byte
 * says whether <> is allowed), addr_parse_mailbox and addr_parse_domain on
 * it as a string. Whatever parses must be clean (no control or 8-bit byte,
 * within the limits, domain lower-case) and must round-trip: formatted and
 * parsed again, it is the same address. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/addr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_check_clean(const char *s, size_t max, int lower)
{
	size_t n = strnlen(s, max + 1);

	if (n > max)
		abort();
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c > 0x7e || (lower && c >= 'A' && c <= 'Z'))
			abort();
	}
}

static void fuzz_check_addr(const struct addr *a)
{
	char text[ADDR_FORMAT_SIZE];
	struct addr b;
	const char *err;
	int n;

	fuzz_check_clean(a->local, ADDR_LOCAL_MAX, 0);
	/* "[IPv6:" keeps its capitals; names are lower-case. */
	fuzz_check_clean(a->domain, ADDR_DOMAIN_MAX, a->domain[0] != '[');
	if (addr_is_null(a))
		return;
	if (a->local[0] == '\0' || a->domain[0] == '\0')
		abort();
	n = addr_format(a, text, sizeof(text));
	if (n <= 0 || (size_t)n != strlen(text))
		abort();
	if (addr_parse_mailbox(text, &b, &err) < 0)
		abort();
	if (strcmp(a->local, b.local) != 0 || strcmp(a->domain, b.domain) != 0)
		abort();
	if (!addr_equal(a, &b))
		abort();
	if (a->domain[0] != '[' && !addr_domain_valid(a->domain))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char dom[ADDR_DOMAIN_MAX + 1];
	struct addr a;
	const char *err = NULL;
	char *str;
	int n;

	if (size == 0)
		return 0;
	n = addr_parse_path((const char *)data + 1, size - 1, data[0] & 1, &a,
			    &err);
	if (n == 0 || n < -1 || (n > 0 && (size_t)n > size - 1))
		abort();
	if (n > 0) {
		if (data[n] != '>')
			abort();
		fuzz_check_addr(&a);
		if (addr_is_null(&a) && !(data[0] & 1))
			abort();
	} else if (err == NULL) {
		abort();
	}

	str = malloc(size + 1);
	if (str == NULL)
		return 0;
	memcpy(str, data, size);
	str[size] = '\0';
	if (addr_parse_mailbox(str, &a, &err) == 0) {
		if (addr_is_null(&a))
			abort();
		fuzz_check_addr(&a);
	}
	if (addr_parse_domain(str, size, dom, &err) == 0)
		fuzz_check_clean(dom, ADDR_DOMAIN_MAX, dom[0] != '[');
	else if (dom[0] != '\0')
		abort();
	(void)addr_domain_valid(str);
	free(str);
	return 0;
}
