/* Fuzzes the content filter's rule file parser: whatever parses must write
 * back to a text that parses to the same text (the round trip export and
 * import rely on), and must compile. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "filter/filter_eval.h"
#include "filter/filter_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct filter_rules l = {0}, l2 = {0};
	struct filter_set *set;
	struct buf a, b;
	char err[300];

	if (filter_parse((const char *)data, size, &l, err, sizeof(err)) < 0)
		return 0;
	buf_init(&a, FILTER_FILE_MAX * 2);
	buf_init(&b, FILTER_FILE_MAX * 2);
	if (filter_rules_write(&l, &a) == 0) {
		if (filter_parse(buf_cstr(&a), a.len, &l2, err, sizeof(err)) <
		    0)
			abort();
		if (filter_rules_write(&l2, &b) < 0 || a.len != b.len ||
		    memcmp(a.data, b.data, a.len) != 0)
			abort();
	}
	filter_rules_clear(&l2);
	buf_deinit(&a);
	buf_deinit(&b);
	set = filter_set_new(&l, err, sizeof(err));
	filter_set_unref(set);
	return 0;
}
