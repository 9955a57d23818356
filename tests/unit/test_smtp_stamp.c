/* Unit tests of smtp/smtp_stamp: trace and identity headers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cmocka.h>

#include "lib/buf.h"
#include "lib/header.h"
#include "smtp/smtp_commit.h"

/* 2006-01-02 15:04:05 UTC, a Monday. */
#define NOW 1136214245
#define DATE_UTC "Mon, 2 Jan 2006 15:04:05 +0000"

struct stamped {
	struct buf out;
	long body;
	char mid[256];
	char subject[256];
};

static struct smtp_stamp base_stamp(void)
{
	struct smtp_stamp st = {
		.hostname = "mx.example.test",
		.helo = "client.example",
		.rdns = "",
		.ip = "192.0.2.1",
		.proto = "ESMTP",
		.tls_info = "",
		.queue_id = "Q0123456789",
		.rcpt_for = NULL,
		.auth = "",
		.submission = 0,
		.now = NOW,
	};
	return st;
}

static void set_tz(const char *tz)
{
	assert_int_equal(setenv("TZ", tz, 1), 0);
	tzset();
}

static int setup(void **state)
{
	(void)state;
	set_tz("UTC");
	return 0;
}

/* Stamps msg (strlen) into r->out with a generous bound. */
static void stamp(struct stamped *r, const char *msg,
		  const struct smtp_stamp *st)
{
	buf_init(&r->out, 1 << 20);
	memset(r->mid, 'Z', sizeof(r->mid));
	memset(r->subject, 'Z', sizeof(r->subject));
	r->body = smtp_stamp_headers(&r->out, msg, strlen(msg), st, r->mid,
				     sizeof(r->mid), r->subject,
				     sizeof(r->subject));
	assert_true(r->body >= 0);
}

/* The Received field: everything up to the first CRLF not followed by a
 * fold. */
static size_t received_len(const struct stamped *r)
{
	struct header_field f;
	size_t pos = 0;

	assert_int_equal(header_next(r->out.data, r->out.len, &pos, &f), 1);
	assert_true(header_is(&f, "Received"));
	return f.raw_len;
}

/* Counts the fields of the stamped header section named name (any case)
 * and copies the unfolded value of the first one into value. */
static int count_fields(const struct stamped *r, const char *name, char *value,
			size_t size)
{
	struct header_field f;
	size_t pos = 0;
	int n = 0;

	while (header_next(r->out.data, r->out.len, &pos, &f) == 1)
		if (header_is(&f, name) && n++ == 0 && value != NULL)
			header_unfold(&f, value, size);
	/* The stamped section always ends with the empty line. */
	assert_int_equal(pos, r->out.len);
	return n;
}

struct received_case {
	const char *name;
	const char *helo;
	const char *rdns;
	const char *ip;
	const char *proto;
	const char *tls_info;
	const char *rcpt_for;
	const char *want;
};

static const struct received_case received_cases[] = {
	{"plain", "client.example", "", "192.0.2.1", "ESMTP", "", NULL,
	 "Received: from client.example (unknown [192.0.2.1])\r\n"
	 "\tby mx.example.test (Petrel) with ESMTP id Q0123456789; " DATE_UTC
	 "\r\n"},
	{"reverse DNS name", "client.example", "host.client.example",
	 "192.0.2.1", "SMTP", "", NULL,
	 "Received: from client.example (host.client.example [192.0.2.1])\r\n"
	 "\tby mx.example.test (Petrel) with SMTP id Q0123456789; " DATE_UTC
	 "\r\n"},
	{"no HELO", "", "", "192.0.2.1", "SMTP", "", NULL,
	 "Received: from unknown (unknown [192.0.2.1])\r\n"
	 "\tby mx.example.test (Petrel) with SMTP id Q0123456789; " DATE_UTC
	 "\r\n"},
	{"one recipient", "client.example", "", "192.0.2.1", "ESMTP", "",
	 "bob@example.test",
	 "Received: from client.example (unknown [192.0.2.1])\r\n"
	 "\tby mx.example.test (Petrel) with ESMTP id Q0123456789\r\n"
	 "\tfor <bob@example.test>; " DATE_UTC "\r\n"},
	{"TLS", "client.example", "", "192.0.2.1", "ESMTPS",
	 "TLSv1.3 TLS_AES_256_GCM_SHA384 256/256", NULL,
	 "Received: from client.example (unknown [192.0.2.1])\r\n"
	 "\tby mx.example.test (Petrel) with ESMTPS id Q0123456789\r\n"
	 "\t(TLSv1.3 TLS_AES_256_GCM_SHA384 256/256); " DATE_UTC "\r\n"},
	{"TLS and one recipient", "[192.0.2.1]", "", "192.0.2.1", "ESMTPSA",
	 "TLSv1.2 ECDHE-RSA-AES128-GCM-SHA256 128/128", "bob@example.test",
	 "Received: from [192.0.2.1] (unknown [192.0.2.1])\r\n"
	 "\tby mx.example.test (Petrel) with ESMTPSA id Q0123456789\r\n"
	 "\t(TLSv1.2 ECDHE-RSA-AES128-GCM-SHA256 128/128)\r\n"
	 "\tfor <bob@example.test>; " DATE_UTC "\r\n"},
	/* RFC 5321 4.4: TCP-info is an address-literal, "IPv6:" for v6. */
	{"IPv6 client", "client.example", "", "2001:db8::1", "ESMTP", "", NULL,
	 "Received: from client.example (unknown [IPv6:2001:db8::1])\r\n"
	 "\tby mx.example.test (Petrel) with ESMTP id Q0123456789; " DATE_UTC
	 "\r\n"},
	{"IPv6 loopback", "client.example", "localhost", "::1", "ESMTP", "",
	 NULL,
	 "Received: from client.example (localhost [IPv6:::1])\r\n"
	 "\tby mx.example.test (Petrel) with ESMTP id Q0123456789; " DATE_UTC
	 "\r\n"},
};

static void test_received(void **state)
{
	(void)state;
	for (size_t i = 0;
	     i < sizeof(received_cases) / sizeof(received_cases[0]); i++) {
		const struct received_case *c = &received_cases[i];
		struct smtp_stamp st = base_stamp();
		struct stamped r;
		size_t n;

		st.helo = c->helo;
		st.rdns = c->rdns;
		st.ip = c->ip;
		st.proto = c->proto;
		st.tls_info = c->tls_info;
		st.rcpt_for = c->rcpt_for;
		stamp(&r, "Subject: x\r\n\r\nbody\r\n", &st);
		n = received_len(&r);
		if (n != strlen(c->want) || memcmp(r.out.data, c->want, n) != 0)
			fail_msg("%s: got [%.*s]\nwant [%s]", c->name, (int)n,
				 r.out.data, c->want);
		buf_deinit(&r.out);
	}
}

struct date_case {
	const char *tz;
	int64_t now;
	const char *want;
};

static const struct date_case date_cases[] = {
	{"UTC", NOW, DATE_UTC},
	/* POSIX TZ: the offset is west of UTC, so these are -03:30 and
	 * +05:45. */
	{"<-0330>3:30", NOW, "Mon, 2 Jan 2006 11:34:05 -0330"},
	{"<+0545>-5:45", NOW, "Mon, 2 Jan 2006 20:49:05 +0545"},
	{"UTC", 0, "Thu, 1 Jan 1970 00:00:00 +0000"},
	{"UTC", 1709251199, "Thu, 29 Feb 2024 23:59:59 +0000"},
	{"UTC", 1735689600, "Wed, 1 Jan 2025 00:00:00 +0000"},
	{"UTC", 1758500000, "Mon, 22 Sep 2025 00:13:20 +0000"},
};

/* RFC 5322 3.3 dates, in the Received header and in an added Date. */
static void test_date(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(date_cases) / sizeof(date_cases[0]);
	     i++) {
		const struct date_case *c = &date_cases[i];
		struct smtp_stamp st = base_stamp();
		struct stamped r;
		char want[128], date[128];
		size_t n;

		set_tz(c->tz);
		st.now = c->now;
		st.submission = 1;
		stamp(&r, "Subject: x\r\n\r\n", &st);
		n = received_len(&r);
		snprintf(want, sizeof(want), "; %s\r\n", c->want);
		if (n < strlen(want) || memcmp(r.out.data + n - strlen(want),
					       want, strlen(want)) != 0)
			fail_msg("%s %lld: got [%.*s]", c->tz,
				 (long long)c->now, (int)n, r.out.data);
		assert_int_equal(count_fields(&r, "Date", date, sizeof(date)),
				 1);
		assert_string_equal(date, c->want);
		buf_deinit(&r.out);
	}
	set_tz("UTC");
}

/* Received first, then our X-Authenticated-Sender, the client's fields in
 * order, the added fields and the empty line. */
static void test_layout(void **state)
{
	struct smtp_stamp st = base_stamp();
	struct stamped r;
	const char *msg = "From: alice@example.test\r\n"
			  "To: bob@example.test\r\n"
			  "Subject: hi\r\n"
			  "\r\n"
			  "body\r\n";
	char want[1024];
	size_t n;

	(void)state;
	st.auth = "alice@example.test";
	st.submission = 1;
	stamp(&r, msg, &st);
	n = received_len(&r);
	snprintf(want, sizeof(want),
		 "X-Authenticated-Sender: alice@example.test\r\n"
		 "From: alice@example.test\r\n"
		 "To: bob@example.test\r\n"
		 "Subject: hi\r\n"
		 "Message-ID: %s\r\n"
		 "Date: " DATE_UTC "\r\n"
		 "\r\n",
		 r.mid);
	assert_int_equal(r.out.len - n, strlen(want));
	assert_memory_equal(r.out.data + n, want, strlen(want));
	assert_int_equal(r.body, strlen(msg) - strlen("body\r\n"));
	assert_string_equal(r.subject, "hi");
	buf_deinit(&r.out);
}

struct xas_case {
	const char *name;
	const char *auth;
	const char *msg;
};

static const struct xas_case xas_cases[] = {
	{"none supplied", "alice@example.test", "Subject: x\r\n\r\nb\r\n"},
	{"one supplied", "alice@example.test",
	 "X-Authenticated-Sender: ceo@example.test\r\nSubject: x\r\n\r\nb\r\n"},
	{"any case", "alice@example.test",
	 "x-authenticated-sender: a@x.test\r\n"
	 "X-AUTHENTICATED-SENDER: b@x.test\r\n"
	 "X-Authenticated-sender:c@x.test\r\n"
	 "Subject: x\r\n\r\nb\r\n"},
	{"folded", "alice@example.test",
	 "Subject: x\r\nX-Authenticated-Sender:\r\n\tceo@example.test\r\n"
	 " (really)\r\nTo: bob@example.test\r\n\r\nb\r\n"},
	{"last field without CRLF", "alice@example.test",
	 "Subject: x\r\nX-Authenticated-Sender: ceo@example.test"},
	{"supplied, not authenticated", "",
	 "X-Authenticated-Sender: ceo@example.test\r\n"
	 "x-authenticated-sender: ceo@example.test\r\nSubject: x\r\n\r\nb\r\n"},
	{"folded, not authenticated", "",
	 "X-Authenticated-Sender:\r\n ceo@example.test\r\nSubject: x\r\n\r\n"},
};

static void test_authenticated_sender(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(xas_cases) / sizeof(xas_cases[0]); i++) {
		const struct xas_case *c = &xas_cases[i];
		struct smtp_stamp st = base_stamp();
		struct stamped r;
		char value[256];
		int n;

		st.auth = c->auth;
		stamp(&r, c->msg, &st);
		n = count_fields(&r, "X-Authenticated-Sender", value,
				 sizeof(value));
		if (c->auth[0] == '\0' ? n != 0 : n != 1)
			fail_msg("%s: %d X-Authenticated-Sender fields",
				 c->name, n);
		if (n == 1 && strcmp(value, c->auth) != 0)
			fail_msg("%s: value %s", c->name, value);
		/* Nothing of a supplied one is left, continuation lines
		 * included. */
		if (strstr(r.out.data, "ceo@") != NULL ||
		    strstr(r.out.data, "(really)") != NULL ||
		    strstr(r.out.data, "@x.test") != NULL)
			fail_msg("%s: supplied value left: %s", c->name,
				 r.out.data);
		/* The other fields stay. */
		assert_int_equal(count_fields(&r, "Subject", NULL, 0), 1);
		assert_string_equal(r.subject, "x");
		buf_deinit(&r.out);
	}
}

struct mid_case {
	const char *name;
	const char *msg;
	const char *want; /* NULL: generated */
	int nfields;	  /* Message-ID fields stamped */
};

static const struct mid_case mid_cases[] = {
	{"present", "Message-ID: <abc@client.example>\r\n\r\n",
	 "<abc@client.example>", 1},
	{"any case", "message-id: <abc@client.example>\r\n\r\n",
	 "<abc@client.example>", 1},
	{"folded", "Message-ID:\r\n <abc@client.example>\r\n\r\n",
	 "<abc@client.example>", 1},
	{"first of two", "Message-ID: <one@x>\r\nMessage-ID: <two@x>\r\n\r\n",
	 "<one@x>", 2},
	{"missing", "Subject: x\r\n\r\nb\r\n", NULL, 1},
	{"no header at all", "", NULL, 1},
	{"in the body only", "Subject: x\r\n\r\nMessage-ID: <body@x>\r\n", NULL,
	 1},
	/* An empty one can not be what the logs name the message by: it
	 * is replaced by a new one. */
	{"empty", "Message-ID:\r\nSubject: x\r\n\r\n", NULL, 1},
	{"white space only", "Message-ID: \r\n \r\nSubject: x\r\n\r\n", NULL,
	 1},
};

static int generated_mid(const char *mid)
{
	const char *want_prefix = "<Q0123456789.";
	const char *want_suffix = "@mx.example.test>";
	size_t n = strlen(mid), p = strlen(want_prefix),
	       s = strlen(want_suffix);

	if (n != p + 16 + s || strncmp(mid, want_prefix, p) != 0 ||
	    strcmp(mid + n - s, want_suffix) != 0)
		return 0;
	for (size_t i = p; i < p + 16; i++)
		if (strchr("0123456789abcdef", mid[i]) == NULL)
			return 0;
	return 1;
}

static void test_message_id(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(mid_cases) / sizeof(mid_cases[0]); i++) {
		const struct mid_case *c = &mid_cases[i];
		struct smtp_stamp st = base_stamp();
		struct stamped r;
		char value[256];
		int n;

		stamp(&r, c->msg, &st);
		if (c->want != NULL ? strcmp(r.mid, c->want) != 0
				    : !generated_mid(r.mid))
			fail_msg("%s: returned %s", c->name, r.mid);
		/* The message carries the returned id, once: the logs and
		 * `petrelctl log search` find it by that. */
		n = count_fields(&r, "Message-ID", value, sizeof(value));
		if (n != c->nfields)
			fail_msg("%s: %d Message-ID fields", c->name, n);
		if (strcmp(value, r.mid) != 0)
			fail_msg("%s: field %s, returned %s", c->name, value,
				 r.mid);
		buf_deinit(&r.out);
	}
}

static void test_message_id_unique(void **state)
{
	char seen[64][256];

	(void)state;
	for (size_t i = 0; i < 64; i++) {
		struct smtp_stamp st = base_stamp();
		struct stamped r;

		stamp(&r, "Subject: x\r\n\r\n", &st);
		assert_true(generated_mid(r.mid));
		for (size_t j = 0; j < i; j++)
			assert_string_not_equal(seen[j], r.mid);
		snprintf(seen[i], sizeof(seen[i]), "%s", r.mid);
		buf_deinit(&r.out);
	}
}

static void test_message_id_cut(void **state)
{
	struct smtp_stamp st = base_stamp();
	struct buf out;
	char mid[8], subject[8];

	(void)state;
	buf_init(&out, 4096);
	assert_true(smtp_stamp_headers(&out, "Message-ID: <abcdefgh@x>\r\n\r\n",
				       28, &st, mid, sizeof(mid), subject,
				       sizeof(subject)) == 28);
	assert_string_equal(mid, "<abcdef");
	assert_string_equal(subject, "");
	/* The field itself is kept whole. */
	assert_non_null(strstr(out.data, "Message-ID: <abcdefgh@x>\r\n"));
	buf_reset(&out);
	/* A generated one is whole in the header, cut in the copy. */
	assert_true(smtp_stamp_headers(&out, "", 0, &st, mid, sizeof(mid),
				       subject, sizeof(subject)) == 0);
	assert_string_equal(mid, "<Q01234");
	{
		struct stamped r = {.out = out};
		char value[256];

		assert_int_equal(
			count_fields(&r, "Message-ID", value, sizeof(value)),
			1);
		assert_true(generated_mid(value));
	}
	buf_deinit(&out);
}

struct date_add_case {
	const char *name;
	int submission;
	const char *msg;
	int want_added;
};

static const struct date_add_case date_add_cases[] = {
	{"submission, missing", 1, "Subject: x\r\n\r\n", 1},
	{"submission, present", 1,
	 "Date: Sun, 1 Jan 2006 00:00:00 +0000\r\nSubject: x\r\n\r\n", 0},
	{"submission, present in any case", 1,
	 "DATE: Sun, 1 Jan 2006 00:00:00 +0000\r\n\r\n", 0},
	{"relay, missing", 0, "Subject: x\r\n\r\n", 0},
	{"relay, present", 0, "Date: Sun, 1 Jan 2006 00:00:00 +0000\r\n\r\n",
	 0},
	{"submission, only Resent-Date", 1,
	 "Resent-Date: Sun, 1 Jan 2006 00:00:00 +0000\r\n\r\n", 1},
};

static void test_date_added(void **state)
{
	(void)state;
	for (size_t i = 0;
	     i < sizeof(date_add_cases) / sizeof(date_add_cases[0]); i++) {
		const struct date_add_case *c = &date_add_cases[i];
		struct smtp_stamp st = base_stamp();
		struct stamped r;
		int had = strncasecmp(c->msg, "Date:", 5) == 0 ||
			  strstr(c->msg, "\nDate:") != NULL;
		char value[128];
		int n;

		st.submission = c->submission;
		stamp(&r, c->msg, &st);
		n = count_fields(&r, "Date", value, sizeof(value));
		if (n != had + c->want_added)
			fail_msg("%s: %d Date fields", c->name, n);
		if (c->want_added && strcmp(value, DATE_UTC) != 0)
			fail_msg("%s: Date %s", c->name, value);
		if (!c->want_added && had &&
		    strcmp(value, "Sun, 1 Jan 2006 00:00:00 +0000") != 0)
			fail_msg("%s: Date %s", c->name, value);
		buf_deinit(&r.out);
	}
}

struct subject_case {
	const char *msg;
	const char *want;
};

static const struct subject_case subject_cases[] = {
	{"Subject: hello\r\n\r\n", "hello"},
	{"Subject: hello\r\n world\r\n\r\n", "hello world"},
	{"subject:\r\n\thello\r\n\r\n", "hello"},
	{"Subject: one\r\nSubject: two\r\n\r\n", "one"},
	{"Subject: a\x01"
	 "b\r\n\r\n",
	 "a?b"},
	{"From: a@b\r\n\r\n", ""},
	{"From: a@b\r\n\r\nSubject: in the body\r\n", ""},
	{"Subject: \r\nSubject: second\r\n\r\n", "second"},
};

static void test_subject(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(subject_cases) / sizeof(subject_cases[0]);
	     i++) {
		const struct subject_case *c = &subject_cases[i];
		struct smtp_stamp st = base_stamp();
		struct stamped r;

		stamp(&r, c->msg, &st);
		if (strcmp(r.subject, c->want) != 0)
			fail_msg("[%s]: subject [%s]", c->msg, r.subject);
		buf_deinit(&r.out);
	}
}

struct body_case {
	const char *name;
	const char *msg;
	long want;	    /* offset of the body in msg */
	const char *fields; /* the client's fields as stamped */
};

static const struct body_case body_cases[] = {
	{"empty line", "Subject: x\r\nTo: y\r\n\r\nbody\r\n", 21,
	 "Subject: x\r\nTo: y\r\n"},
	{"empty body", "Subject: x\r\n\r\n", 14, "Subject: x\r\n"},
	{"no empty line, no body", "Subject: x\r\n", 12, "Subject: x\r\n"},
	{"last field without CRLF", "Subject: x", 10, "Subject: x\r\n"},
	{"folded last field without CRLF", "Subject: x\r\n y", 14,
	 "Subject: x\r\n y\r\n"},
	{"no empty line before the body", "Subject: x\r\nnot a field\r\n", 12,
	 "Subject: x\r\n"},
	{"body only", "just text\r\n", 0, ""},
	{"empty message", "", 0, ""},
	{"empty line only", "\r\nbody\r\n", 2, ""},
	{"empty line in the body", "Subject: x\r\n\r\n\r\nTo: y\r\n", 14,
	 "Subject: x\r\n"},
};

static void test_body_offset(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(body_cases) / sizeof(body_cases[0]);
	     i++) {
		const struct body_case *c = &body_cases[i];
		struct smtp_stamp st = base_stamp();
		struct stamped r;
		char want[512];
		size_t n;

		stamp(&r, c->msg, &st);
		if (r.body != c->want)
			fail_msg("%s: body at %ld, want %ld", c->name, r.body,
				 c->want);
		n = received_len(&r);
		snprintf(want, sizeof(want), "%sMessage-ID: %s\r\n\r\n",
			 c->fields, r.mid);
		if (r.out.len - n != strlen(want) ||
		    memcmp(r.out.data + n, want, strlen(want)) != 0)
			fail_msg("%s: got [%s]", c->name, r.out.data + n);
		buf_deinit(&r.out);
	}
}

/* The bound on out is honoured: -1 when the stamped header does not fit,
 * success when it fits exactly. */
static void test_bound(void **state)
{
	const char *msg = "From: alice@example.test\r\n"
			  "X-Authenticated-Sender: ceo@example.test\r\n"
			  "Subject: a subject\r\n\r\nbody\r\n";
	struct smtp_stamp st = base_stamp();
	struct stamped r;
	char mid[256], subject[256];
	size_t need;

	(void)state;
	st.auth = "alice@example.test";
	st.submission = 1;
	st.tls_info = "TLSv1.3 TLS_AES_256_GCM_SHA384 256/256";
	st.rcpt_for = "bob@example.test";
	stamp(&r, msg, &st);
	need = r.out.len;
	buf_deinit(&r.out);

	for (size_t max = 0; max <= need; max++) {
		struct buf out;
		long got;

		buf_init(&out, max);
		got = smtp_stamp_headers(&out, msg, strlen(msg), &st, mid,
					 sizeof(mid), subject, sizeof(subject));
		if (max < need && got != -1)
			fail_msg("bound %zu of %zu: returned %ld", max, need,
				 got);
		if (max == need && got != r.body)
			fail_msg("exact bound %zu: returned %ld", max, got);
		assert_true(out.len <= max);
		buf_deinit(&out);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_received),
		cmocka_unit_test(test_date),
		cmocka_unit_test(test_layout),
		cmocka_unit_test(test_authenticated_sender),
		cmocka_unit_test(test_message_id),
		cmocka_unit_test(test_message_id_unique),
		cmocka_unit_test(test_message_id_cut),
		cmocka_unit_test(test_date_added),
		cmocka_unit_test(test_subject),
		cmocka_unit_test(test_body_offset),
		cmocka_unit_test(test_bound),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
