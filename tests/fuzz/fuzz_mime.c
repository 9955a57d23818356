/* Fuzzes the content filter's MIME walker and attachment stripping. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "filter/filter_mime.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct filter_mime m;
	struct buf out;

	if (filter_mime_parse((const char *)data, size, &m) < 0)
		return 0;
	for (size_t i = 0; i < m.nparts; i++)
		if (m.parts[i].start > m.parts[i].body ||
		    m.parts[i].body > m.parts[i].end || m.parts[i].end > size)
			abort();
	buf_init(&out, size * 2 + 65536);
	filter_mime_strip((const char *)data, size, &m, &out);
	buf_deinit(&out);
	filter_mime_deinit(&m);
	return 0;
}
