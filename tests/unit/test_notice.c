/* Unit tests of delivery/notice: the composed message (headers, RFC 2047
 * subject, CRLF body, cleaning, long lines, attachment). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "delivery/notice.h"
#include "lib/buf.h"

static const char *compose(struct buf *out, const struct notice *n)
{
	buf_init(out, 1 << 20);
	assert_int_equal(
		notice_compose(n, "<id.notice@mx.test>", "b0/mx.test", out), 0);
	assert_int_equal(buf_append(out, "", 1), 0);
	return out->data;
}

static struct notice base(void)
{
	struct notice n;

	memset(&n, 0, sizeof(n));
	n.hostname = "mx.test";
	n.from = "postmaster@example.test";
	n.from_name = "Petrel";
	n.to[n.nto++] = "postmaster@example.test";
	n.to[n.nto++] = "admin@example.net";
	n.subject = "Account frozen";
	n.text = "line one\nline two\r\n";
	n.now = 1700000000;
	return n;
}

static void test_plain(void **state)
{
	struct notice n = base();
	struct buf out;
	const char *m;

	(void)state;
	m = compose(&out, &n);
	assert_non_null(strstr(m, "Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"));
	assert_non_null(
		strstr(m, "From: Petrel <postmaster@example.test>\r\n"));
	assert_non_null(strstr(m, "To: <postmaster@example.test>,\r\n "
				  "<admin@example.net>\r\n"));
	assert_non_null(strstr(m, "Subject: Account frozen\r\n"));
	assert_non_null(strstr(m, "Message-ID: <id.notice@mx.test>\r\n"));
	assert_non_null(strstr(m, "Auto-Submitted: auto-generated\r\n"));
	assert_null(strstr(m, "Reply-To"));
	assert_non_null(strstr(m, "\r\n\r\nline one\r\nline two\r\n"));
	/* Every line ends in CRLF. */
	for (const char *p = m; (p = strchr(p, '\n')) != NULL; p++)
		assert_int_equal(p[-1], '\r');
	buf_deinit(&out);
}

static void test_encoded_subject_and_cleaning(void **state)
{
	struct notice n = base();
	struct buf out;
	const char *m;

	(void)state;
	n.subject = "Konto gesperrt: J\xc3\xb6rg\r\nBcc: x@evil.test";
	n.reply_to = "reactivate+abc@example.test\r\nX: y";
	n.text = "a\x01\x7f"
		 "b\n";
	m = compose(&out, &n);
	/* No header can be smuggled in through a value. */
	assert_null(strstr(m, "\r\nBcc:"));
	assert_null(strstr(m, "\r\nX: y"));
	assert_non_null(strstr(m, "Subject: =?UTF-8?B?"));
	assert_non_null(
		strstr(m, "Reply-To: <reactivate+abc@example.test  X: y>"));
	assert_non_null(strstr(m, "\r\n\r\na  b\r\n"));
	buf_deinit(&out);
}

static void test_long_line_and_attachment(void **state)
{
	struct notice n = base();
	char text[3000];
	struct buf out;
	const char *m, *body;
	size_t longest = 0, cur = 0;

	(void)state;
	memset(text, 'x', sizeof(text) - 1);
	text[sizeof(text) - 1] = '\0';
	n.text = text;
	n.attach = "Subject: original\r\n\r\nhello\r\n";
	n.attach_len = strlen(n.attach);
	m = compose(&out, &n);
	assert_non_null(strstr(
		m, "Content-Type: multipart/mixed; boundary=\"b0/mx.test\""));
	assert_non_null(strstr(m, "--b0/mx.test\r\nContent-Type: message/rfc822"
				  "\r\nContent-Disposition: attachment\r\n\r\n"
				  "Subject: original\r\n\r\nhello\r\n"));
	assert_non_null(strstr(m, "\r\n--b0/mx.test--\r\n"));
	body = strstr(m, "\r\n\r\n");
	for (const char *p = body; *p != '\0'; p++) {
		cur = *p == '\n' ? 0 : cur + 1;
		if (cur > longest)
			longest = cur;
	}
	assert_true(longest <= 999); /* 998 and the CR */
	buf_deinit(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain),
		cmocka_unit_test(test_encoded_subject_and_cleaning),
		cmocka_unit_test(test_long_line_and_attachment),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
