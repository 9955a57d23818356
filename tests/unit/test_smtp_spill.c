/* Unit tests of smtp/smtp_spill: a message under DATA in bounded memory. */
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "unit_tmp.h"

#include "lib/buf.h"
#include "queue/queue.h"
#include "smtp/smtp_spill.h"

#define MEM SMTP_SPILL_MEMORY

struct fixture {
	char dir[64];
	struct queue *q;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	const char *error = NULL;

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/petrel-test-spill-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->q = queue_open(f->dir, &error);
	if (f->q == NULL)
		fail_msg("queue_open: %s", error);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	queue_close(f->q);
	unit_rmtree(f->dir);
	free(f);
	return 0;
}

/* A message of a header section of hlen bytes (fields of 100 bytes, the
 * last one cut to fit, then the empty line when blank) and blen bytes of
 * body lines. */
static char *make(size_t hlen, int blank, size_t blen, size_t *len_r)
{
	char *m = malloc(hlen + blen + 1);
	size_t o = 0;

	assert_non_null(m);
	while (o < hlen - (blank ? 2 : 0)) {
		size_t left = hlen - (blank ? 2 : 0) - o;
		size_t n = left < 100 ? left : 100;

		/* "X: xxx...\r\n" of n bytes (n >= 5 but for the last). */
		for (size_t i = 0; i < n; i++)
			m[o + i] = i == 0 ? 'X' : i == 1 ? ':' : 'x';
		if (n >= 4) {
			m[o + n - 2] = '\r';
			m[o + n - 1] = '\n';
		}
		o += n;
	}
	if (blank) {
		memcpy(m + o, "\r\n", 2);
		o += 2;
	}
	for (size_t i = 0; i < blen; i++)
		m[o + i] = (i % 80 == 78)   ? '\r'
			   : (i % 80 == 79) ? '\n'
					    : (char)('a' + i % 26);
	*len_r = o + blen;
	m[*len_r] = '\0';
	return m;
}

/* Feeds msg in chunks of step bytes, as the session does. Returns what
 * the last step returned. */
static int feed(struct fixture *f, struct smtp_spill *sp, struct buf *b,
		const char *msg, size_t len, size_t step)
{
	int r = 0;

	for (size_t o = 0; o < len && r == 0; o += step) {
		size_t n = len - o < step ? len - o : step;

		assert_int_equal(buf_append(b, msg + o, n), 0);
		r = smtp_spill_step(sp, b, f->q, 0);
		/* Memory stays bounded whatever the size. */
		assert_true(b->len <= MEM + SMTP_SPILL_CHUNK + step);
	}
	if (r == 0)
		r = smtp_spill_step(sp, b, f->q, 1);
	return r;
}

/* The view is the message, byte for byte, and a NUL after it. */
static void check_view(const struct buf *b, const struct smtp_spill *sp,
		       const char *msg, size_t len)
{
	struct smtp_view v;

	assert_int_equal(smtp_view_open(&v, b, sp), 0);
	assert_int_equal(v.len, len);
	assert_memory_equal(v.data, msg, len);
	assert_int_equal(v.data[len], '\0');
	smtp_view_close(&v);
}

static void test_cases(void **state)
{
	struct fixture *f = *state;
	static const struct {
		const char *name;
		size_t hlen;
		int blank;
		size_t blen;
		int want;	 /* smtp_spill_step's last result */
		int spilled;	 /* a scratch file holds the body */
		size_t head_len; /* kept in memory at the end (0: all) */
	} cases[] = {
		{"small: all in memory", 300, 1, 2000, 0, 0, 0},
		{"exactly the bound: in memory", 300, 1, MEM - 300, 0, 0, 0},
		{"one past: body out", 300, 1, MEM - 299, 0, 1, 300},
		{"large body", 4000, 1, 3 * MEM + 12345, 0, 1, 4000},
		{"page-sized body", 4096, 1, 40 * 4096, 0, 1, 4096},
		{"header ends at the bound", MEM, 1, 5000, 0, 1, MEM},
		{"header past the bound", MEM + 2, 1, 5000, -1, 0, 0},
		{"header without end", MEM + 5000, 0, 0, -1, 0, 0},
		{"large header, small message: in memory", MEM - 10, 0, 0, 0, 0,
		 0},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		static const size_t steps[] = {1000, 4093, 65537, 1 << 20};

		for (size_t k = 0; k < sizeof(steps) / sizeof(*steps); k++) {
			struct smtp_spill sp;
			struct buf b;
			size_t len;
			char *msg = make(cases[i].hlen, cases[i].blank,
					 cases[i].blen, &len);
			int r;

			smtp_spill_init(&sp);
			buf_init(&b, 64u << 20);
			r = feed(f, &sp, &b, msg, len, steps[k]);
			if (r != cases[i].want)
				fail_msg("%s (step %zu): got %d", cases[i].name,
					 steps[k], r);
			if (r == 0) {
				if ((sp.fd >= 0) != cases[i].spilled)
					fail_msg("%s (step %zu): spilled %d",
						 cases[i].name, steps[k],
						 sp.fd >= 0);
				if (cases[i].spilled)
					assert_int_equal(b.len,
							 cases[i].head_len);
				else
					assert_int_equal(b.len, len);
				assert_int_equal(smtp_spill_size(&sp, &b), len);
				check_view(&b, &sp, msg, len);
			} else {
				assert_int_equal(sp.error,
						 SMTP_SPILL_HEADER_TOO_BIG);
			}
			smtp_spill_reset(&sp);
			assert_int_equal(sp.fd, -1);
			buf_deinit(&b);
			free(msg);
		}
	}
}

/* A body that starts without the empty line: the header section ends at
 * the first whole line that is no field, never at a line cut by the end
 * of what has arrived. */
static void test_no_blank_line(void **state)
{
	struct fixture *f = *state;
	const char *head = "Subject: x\r\nFrom: a@b\r\n";
	size_t hl = strlen(head), len = hl + MEM + 100;
	char *msg = malloc(len + 1);
	struct smtp_spill sp;
	struct buf b;

	assert_non_null(msg);
	memcpy(msg, head, hl);
	for (size_t i = hl; i < len; i++)
		msg[i] = (i - hl) % 50 == 48   ? '\r'
			 : (i - hl) % 50 == 49 ? '\n'
					       : ' ' + 1 + (char)(i % 20);
	smtp_spill_init(&sp);
	buf_init(&b, 64u << 20);
	assert_int_equal(feed(f, &sp, &b, msg, len, 777), 0);
	assert_true(sp.fd >= 0);
	assert_int_equal(b.len, hl);
	check_view(&b, &sp, msg, len);
	smtp_spill_reset(&sp);
	buf_deinit(&b);
	free(msg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_cases, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_blank_line, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
