/* Unit tests of remote delivery's pure parts: the reply parser and EHLO
 * keywords, dot-stuffing, routing decisions, the retry schedule and loop
 * detection, the composition of delivery status notifications, and the
 * 7-bit downgrade for servers without 8BITMIME. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "delivery/qmgr_policy.h"
#include "delivery/remote_data.h"
#include "delivery/remote_dsn.h"
#include "delivery/remote_mime7.h"
#include "delivery/remote_reply.h"
#include "delivery/remote_route.h"
#include "lib/buf.h"

/* ---- replies ---- */

struct reply_case {
	const char *name;
	const char *lines[6]; /* fed in order, NULL ends */
	int want_rc;	      /* of the last line fed */
	int code;
	const char *enhanced;
	const char *text;
};

static const struct reply_case reply_cases[] = {
	{"one line", {"250 2.0.0 Ok", NULL}, 1, 250, "2.0.0", "2.0.0 Ok"},
	{"no enhanced code",
	 {"220 mx.example ESMTP", NULL},
	 1,
	 220,
	 "",
	 "mx.example ESMTP"},
	{"bare code", {"250", NULL}, 1, 250, "", ""},
	{"multi-line",
	 {"550-5.1.1 one", "550-two", "550 5.1.1 three", NULL},
	 1,
	 550,
	 "5.1.1",
	 "5.1.1 one\ntwo\n5.1.1 three"},
	{"continuation pending", {"250-first", NULL}, 0, 250, "", "first"},
	{"code changes", {"250-a", "550 b", NULL}, -1, 0, NULL, NULL},
	{"no code", {"hello", NULL}, -1, 0, NULL, NULL},
	{"short", {"25", NULL}, -1, 0, NULL, NULL},
	{"class 1", {"150 x", NULL}, -1, 0, NULL, NULL},
	{"class 6", {"650 x", NULL}, -1, 0, NULL, NULL},
	{"bad separator", {"250x", NULL}, -1, 0, NULL, NULL},
	{"enhanced of another class",
	 {"550 4.1.1 x", NULL},
	 1,
	 550,
	 "",
	 "4.1.1 x"},
	{"enhanced too long part",
	 {"550 5.1234.1 x", NULL},
	 1,
	 550,
	 "",
	 "5.1234.1 x"},
	{"control bytes", {"250 a\001b\377c", NULL}, 1, 250, "", "a?b?c"},
};

static void test_reply_cases(void **state)
{
	for (size_t i = 0; i < sizeof(reply_cases) / sizeof(*reply_cases);
	     i++) {
		const struct reply_case *c = &reply_cases[i];
		struct remote_reply r;
		const char *err = NULL;
		int rc = 0;

		remote_reply_init(&r);
		for (size_t k = 0; c->lines[k] != NULL; k++) {
			rc = remote_reply_feed(&r, c->lines[k],
					       strlen(c->lines[k]), &err);
			if (rc < 0)
				break;
		}
		if (rc != c->want_rc)
			fail_msg("%s: rc %d, want %d", c->name, rc, c->want_rc);
		if (rc < 0) {
			assert_non_null(err);
			continue;
		}
		assert_int_equal(r.code, c->code);
		assert_string_equal(r.enhanced, c->enhanced);
		assert_string_equal(r.text, c->text);
	}
}

static void test_reply_bounds(void **state)
{
	struct remote_reply r;
	char line[REMOTE_REPLY_LINE_MAX + 10];
	const char *err;
	char sum[16];

	/* A line past the cap is an error, not a reason to grow. */
	memset(line, 'x', sizeof(line));
	memcpy(line, "250-", 4);
	remote_reply_init(&r);
	assert_int_equal(remote_reply_feed(&r, line, sizeof(line), &err), -1);
	/* Too many lines. */
	remote_reply_init(&r);
	for (int i = 0; i < REMOTE_REPLY_LINES_MAX; i++)
		assert_int_equal(remote_reply_feed(&r, "250-x", 5, &err), 0);
	assert_int_equal(remote_reply_feed(&r, "250 x", 5, &err), -1);
	/* The kept text is capped, the rest still parsed. */
	memset(line, 'y', REMOTE_REPLY_LINE_MAX);
	memcpy(line, "250-", 4);
	remote_reply_init(&r);
	for (int i = 0; i < 3; i++)
		assert_int_equal(remote_reply_feed(&r, line,
						   REMOTE_REPLY_LINE_MAX, &err),
				 0);
	assert_int_equal(remote_reply_feed(&r, "250 end", 7, &err), 1);
	assert_int_equal(r.text_len, REMOTE_REPLY_TEXT_MAX);
	assert_int_equal(strlen(r.text), REMOTE_REPLY_TEXT_MAX);
	/* Fed after completion: refused. */
	assert_int_equal(remote_reply_feed(&r, "250 x", 5, &err), -1);
	/* The summary joins lines and fits its buffer. */
	remote_reply_init(&r);
	remote_reply_feed(&r, "451-a", 5, &err);
	remote_reply_feed(&r, "451 b", 5, &err);
	assert_string_equal(remote_reply_summary(&r, sum, sizeof(sum)),
			    "451 a b");
	remote_reply_init(&r);
	remote_reply_feed(&r, "451 a very long text indeed", 27, &err);
	assert_string_equal(remote_reply_summary(&r, sum, sizeof(sum)),
			    "451 a very long");
}

static void test_ehlo(void **state)
{
	static const char *const lines[] = {
		"250-mx.example.com hello",
		"250-PIPELINING",
		"250-size 1000",
		"250-8BITMIME",
		"250-STARTTLS",
		"250-AUTH LOGIN PLAIN",
		"250-PIPELININGX",
		"250 SMTPUTF8",
	};
	struct remote_reply r;
	struct remote_ehlo e;
	const char *err;

	remote_reply_init(&r);
	for (size_t i = 0; i < 8; i++)
		remote_reply_feed(&r, lines[i], strlen(lines[i]), &err);
	remote_ehlo_parse(&r, &e);
	assert_true(e.pipelining && e.size && e.eightbitmime && e.starttls &&
		    e.smtputf8 && e.auth_plain && e.auth_login);
	assert_int_equal(e.size_max, 1000);

	/* The greeting line is not a keyword; SIZE without a number, old
	 * AUTH=, junk numbers. */
	remote_reply_init(&r);
	remote_reply_feed(&r, "250-STARTTLS", 12, &err);
	remote_reply_feed(&r, "250-AUTH=LOGIN", 14, &err);
	remote_reply_feed(&r, "250 SIZE 12x", 12, &err);
	remote_ehlo_parse(&r, &e);
	assert_false(e.starttls);
	assert_true(e.auth_login);
	assert_false(e.auth_plain);
	assert_true(e.size);
	assert_int_equal(e.size_max, 0);

	/* Not 250: nothing. */
	remote_reply_init(&r);
	remote_reply_feed(&r, "502-x", 5, &err);
	remote_reply_feed(&r, "502 PIPELINING", 14, &err);
	remote_ehlo_parse(&r, &e);
	assert_false(e.pipelining);
}

/* ---- DATA ---- */

struct data_case {
	const char *name;
	const char *in;
	const char *want;
};

static const struct data_case data_cases[] = {
	{"plain", "a\r\nb\r\n", "a\r\nb\r\n.\r\n"},
	{"no final line end", "a\r\nb", "a\r\nb\r\n.\r\n"},
	{"empty", "", ".\r\n"},
	{"leading dot", ".x\r\n", "..x\r\n.\r\n"},
	{"dot line", "a\r\n.\r\nb\r\n", "a\r\n..\r\nb\r\n.\r\n"},
	{"dots", "..\r\n", "...\r\n.\r\n"},
	{"dot not at start", "a.b\r\n", "a.b\r\n.\r\n"},
	{"bare LF", "a\nb\n", "a\r\nb\r\n.\r\n"},
	{"bare CR", "a\rb\r\n", "a\r\nb\r\n.\r\n"},
	{"CR at the end", "a\r", "a\r\n.\r\n"},
	{"CR CR LF", "a\r\r\n", "a\r\n\r\n.\r\n"},
	{"smuggling LF.LF", "a\n.\nb", "a\r\n..\r\nb\r\n.\r\n"},
	{"smuggling CR.CR", "a\r.\rb", "a\r\n..\r\nb\r\n.\r\n"},
	{"dot after bare CR", "x\r.y", "x\r\n..y\r\n.\r\n"},
};

static void test_data_cases(void **state)
{
	for (size_t i = 0; i < sizeof(data_cases) / sizeof(*data_cases); i++) {
		const struct data_case *c = &data_cases[i];
		size_t n = strlen(c->in);

		/* Every cut into two chunks gives the same bytes. */
		for (size_t cut = 0; cut <= n; cut++) {
			struct remote_data d;
			struct buf out;

			buf_init(&out, 1024);
			remote_data_init(&d);
			assert_int_equal(
				remote_data_encode(&d, c->in, cut, &out), 0);
			assert_int_equal(remote_data_encode(&d, c->in + cut,
							    n - cut, &out),
					 0);
			assert_int_equal(remote_data_finish(&d, &out), 0);
			if (strcmp(buf_cstr(&out), c->want) != 0)
				fail_msg("%s (cut %zu): got \"%s\"", c->name,
					 cut, buf_cstr(&out));
			buf_deinit(&out);
		}
	}
}

static void test_data_full_and_addr(void **state)
{
	struct remote_data d;
	struct buf out;

	buf_init(&out, 4);
	remote_data_init(&d);
	assert_int_equal(remote_data_encode(&d, "abcdef", 6, &out), -1);
	buf_deinit(&out);

	assert_true(remote_data_addr_ok(""));
	assert_true(remote_data_addr_ok("a@b.example"));
	assert_true(remote_data_addr_ok("\"a b\"@b.example"));
	assert_false(remote_data_addr_ok("a@b\r\nRCPT TO:<x@y>"));
	assert_false(remote_data_addr_ok("a@b\n"));
	assert_false(remote_data_addr_ok("a>@b"));
	assert_false(remote_data_addr_ok("a<@b"));
	assert_false(remote_data_addr_ok("a\x7f@b"));
}

/* ---- routing ---- */

static void test_route_domain_and_literal(void **state)
{
	struct sockaddr_storage ss;
	char d[16], ip[64];

	assert_int_equal(remote_route_domain("A@Ex.Example", d, sizeof(d)), 1);
	assert_string_equal(d, "ex.example");
	assert_int_equal(remote_route_domain("\"a@b\"@c.test", d, sizeof(d)),
			 1);
	assert_string_equal(d, "c.test");
	assert_int_equal(remote_route_domain("nodomain", d, sizeof(d)), 0);
	assert_int_equal(remote_route_domain("a@", d, sizeof(d)), 0);
	assert_int_equal(remote_route_domain("a@a-very-long-domain.example", d,
					     sizeof(d)),
			 0);

	assert_int_equal(remote_route_literal("example.com", &ss), 0);
	assert_int_equal(remote_route_literal("[192.0.2.1]", &ss), 1);
	assert_int_equal(ss.ss_family, AF_INET);
	inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, ip,
		  sizeof(ip));
	assert_string_equal(ip, "192.0.2.1");
	assert_int_equal(remote_route_literal("[IPv6:2001:db8::1]", &ss), 1);
	assert_int_equal(ss.ss_family, AF_INET6);
	assert_int_equal(remote_route_literal("[2001:db8::1]", &ss), -1);
	assert_int_equal(remote_route_literal("[192.0.2.300]", &ss), -1);
	assert_int_equal(remote_route_literal("[192.0.2.1", &ss), -1);
	assert_int_equal(remote_route_literal("[]", &ss), -1);
}

static void test_route_mx_filter(void **state)
{
	struct dns_mx mx[4];

	memset(mx, 0, sizeof(mx));
	mx[0].preference = 10;
	snprintf(mx[0].host, sizeof(mx[0].host), "a.example");
	mx[1].preference = 10;
	snprintf(mx[1].host, sizeof(mx[1].host), "b.example");
	mx[2].preference = 20;
	snprintf(mx[2].host, sizeof(mx[2].host), "Me.Example.");
	mx[3].preference = 30;
	snprintf(mx[3].host, sizeof(mx[3].host), "c.example");
	/* Not among them: all stay. */
	assert_int_equal(remote_route_mx_filter(mx, 4, "other.example"), 4);
	/* A backup MX: only the better ones remain. */
	assert_int_equal(remote_route_mx_filter(mx, 4, "me.example"), 2);
	/* The best MX: a loop. */
	assert_int_equal(remote_route_mx_filter(mx, 4, "a.example"), -1);
	/* Same preference as ours counts as not better. */
	assert_int_equal(remote_route_mx_filter(mx, 4, "b.example"), -1);
	assert_int_equal(remote_route_mx_filter(mx, 0, "me.example"), 0);
}

static void test_route_hostport(void **state)
{
	char h[64];
	unsigned port;

	assert_int_equal(
		remote_route_hostport("relay.example:587", h, sizeof(h), &port),
		1);
	assert_string_equal(h, "relay.example");
	assert_int_equal(port, 587);
	assert_int_equal(remote_route_hostport("[::1]:25", h, sizeof(h), &port),
			 1);
	assert_string_equal(h, "::1");
	assert_int_equal(
		remote_route_hostport("127.0.0.1:2525", h, sizeof(h), &port),
		1);
	assert_string_equal(h, "127.0.0.1");
	assert_int_equal(remote_route_hostport("relay", h, sizeof(h), &port),
			 0);
	assert_int_equal(remote_route_hostport("relay:0", h, sizeof(h), &port),
			 0);
	assert_int_equal(
		remote_route_hostport("relay:70000", h, sizeof(h), &port), 0);
	assert_int_equal(remote_route_hostport(":25", h, sizeof(h), &port), 0);
	assert_int_equal(remote_route_hostport("relay:2x", h, sizeof(h), &port),
			 0);
}

/* ---- schedule ---- */

static void test_retry_schedule(void **state)
{
	static const struct {
		uint32_t attempts;
		int64_t want;
	} cases[] = {{0, 300},	{1, 300},    {2, 600},
		     {3, 1200}, {4, 2400},   {5, 3600},
		     {6, 3600}, {100, 3600}, {UINT32_MAX, 3600}};

	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++)
		assert_int_equal(qmgr_policy_next_retry(1000, cases[i].attempts,
							300, 3600),
				 1000 + cases[i].want);
	/* A maximum below the first pause: the first wins. */
	assert_int_equal(qmgr_policy_next_retry(0, 5, 60, 10), 60);
	assert_int_equal(qmgr_policy_next_retry(0, 1, 0, 0), 1);

	assert_int_equal(qmgr_policy_give_up(1000, 2), 1000 + 2 * 86400);
	assert_int_equal(qmgr_policy_give_up(1000, 0), 1000);

	/* Warnings: after warn_hours, once, when on. */
	assert_false(qmgr_policy_warn_due(0, 4 * 3600 - 1, 1, 4, 0));
	assert_true(qmgr_policy_warn_due(0, 4 * 3600, 1, 4, 0));
	assert_false(qmgr_policy_warn_due(0, 4 * 3600, 1, 4, 1));
	assert_false(qmgr_policy_warn_due(0, 4 * 3600, 0, 4, 0));
	assert_true(qmgr_policy_warn_due(100, 100, 1, 0, 0));
}

static void test_hops(void **state)
{
	static const struct {
		const char *name, *msg;
		size_t hops, hlen;
	} cases[] = {
		{"none", "Subject: x\r\n\r\nReceived: body\r\n", 0, 14},
		{"two", "Received: a\r\nreceived: b\r\n folded\r\n\r\nb", 2,
		 37},
		{"LF lines", "Received: a\nReceived: b\n\nx", 2, 25},
		{"not a prefix", "X-Received: a\r\nReceivedx\r\n\r\n", 0, 28},
		{"no body", "Received: a\r\n", 1, 13},
		{"empty", "", 0, 0},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		size_t n = strlen(cases[i].msg);

		if (qmgr_policy_hops(cases[i].msg, n) != cases[i].hops)
			fail_msg("%s: hops", cases[i].name);
		if (qmgr_policy_header_len(cases[i].msg, n) != cases[i].hlen)
			fail_msg("%s: header length %zu", cases[i].name,
				 qmgr_policy_header_len(cases[i].msg, n));
	}
}

/* ---- DSN ---- */

static void test_dsn_bounce(void **state)
{
	static const char headers[] = "Received: from x\r\n\tby y\r\n"
				      "Subject: hello\r\nBare: cr\rhere\r\n"
				      "\r\nbody must not appear\r\n";
	struct remote_dsn_rcpt rc[2] = {
		{"a@remote.example", "5.1.1", "mx.remote.example",
		 "host mx.remote.example said: 550 5.1.1 no\r\nInjected: x",
		 1700000000},
		{"b@remote.example", "5.1.10", "",
		 "the domain accepts no mail (null MX)", 0},
	};
	struct remote_dsn d = {
		.hostname = "mx.example.test",
		.to = "alice@example.test",
		.queue_id = "0123456789ABCDEF01",
		.message_id = "<x.dsn@mx.example.test>",
		.boundary = "B0UNDARY/mx",
		.arrival = 1699990000,
		.now = 1700000000,
		.rcpts = rc,
		.nrcpt = 2,
		.headers = headers,
		.headers_len = sizeof(headers) - 1,
	};
	struct buf out;
	const char *s;

	buf_init(&out, 65536);
	assert_int_equal(remote_dsn_compose(&d, &out), 0);
	s = buf_cstr(&out);
	assert_non_null(strstr(
		s, "From: Mail Delivery System <MAILER-DAEMON@mx.example.test>"
		   "\r\nTo: <alice@example.test>\r\n"
		   "Subject: Undelivered Mail Returned to Sender\r\n"
		   "Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"));
	assert_non_null(strstr(s, "Auto-Submitted: auto-replied\r\n"));
	assert_non_null(strstr(s, "Content-Type: multipart/report; "
				  "report-type=delivery-status;\r\n"
				  "\tboundary=\"B0UNDARY/mx\"\r\n"));
	assert_non_null(strstr(s, "Reporting-MTA: dns; mx.example.test\r\n"));
	assert_non_null(strstr(s, "Arrival-Date: Tue, 14 Nov 2023 19:26:40"));
	assert_non_null(strstr(s, "Final-Recipient: rfc822; a@remote.example"
				  "\r\nAction: failed\r\nStatus: 5.1.1\r\n"
				  "Remote-MTA: dns; mx.remote.example\r\n"
				  "Diagnostic-Code: smtp; host mx.remote"
				  ".example said: 550 5.1.1 no  Injected: x"
				  "\r\nLast-Attempt-Date: "));
	assert_non_null(strstr(s, "Final-Recipient: rfc822; b@remote.example"
				  "\r\nAction: failed\r\nStatus: 5.1.10\r\n"
				  "Diagnostic-Code: x-petrel; "));
	/* The header section only, CRLF everywhere, no bare CR. */
	assert_non_null(strstr(s, "Content-Type: text/rfc822-headers\r\n\r\n"
				  "Received: from x\r\n\tby y\r\n"
				  "Subject: hello\r\nBare: cr here\r\n\r\n"
				  "--B0UNDARY/mx--\r\n"));
	assert_null(strstr(s, "body must not appear"));
	assert_null(strstr(s, "\r\nInjected"));
	for (size_t i = 0; i < out.len; i++) {
		if (s[i] == '\n')
			assert_true(i > 0 && s[i - 1] == '\r');
		if (s[i] == '\r')
			assert_true(s[i + 1] == '\n');
	}
	buf_deinit(&out);

	/* Too small a buffer: -1, never a cut report. */
	buf_init(&out, 200);
	assert_int_equal(remote_dsn_compose(&d, &out), -1);
	buf_deinit(&out);
}

static void test_dsn_delayed(void **state)
{
	struct remote_dsn_rcpt rc = {"a@r.example", "4.2.0", "mx.r.example",
				     "451 try later", 1700000000};
	struct remote_dsn d = {
		.hostname = "mx.example.test",
		.to = "alice@example.test",
		.queue_id = "Q",
		.message_id = "<m>",
		.boundary = "B",
		.arrival = 1700000000,
		.now = 1700000000,
		.delayed = 1,
		.retry_until = 1700172800,
		.rcpts = &rc,
		.nrcpt = 1,
		.headers = "Subject: s\r\n",
		.headers_len = 12,
	};
	struct buf out;
	const char *s;

	buf_init(&out, 65536);
	assert_int_equal(remote_dsn_compose(&d, &out), 0);
	s = buf_cstr(&out);
	assert_non_null(
		strstr(s, "Subject: Delayed Mail (still being retried)\r\n"));
	assert_non_null(strstr(s, "Action: delayed\r\nStatus: 4.2.0\r\n"));
	assert_non_null(strstr(
		s, "Will-Retry-Until: Thu, 16 Nov 2023 22:13:20 +0000\r\n"));
	assert_non_null(strstr(s, "You need not send it again."));
	buf_deinit(&out);
}

/* ---- 7-bit downgrade ---- */

struct mime7_case {
	const char *name;
	const char *in;
	int unconvertible;
	const char *want; /* the conversion; NULL: unconvertible */
};

static const struct mime7_case mime7_cases[] = {
	{"plain 7-bit message untouched", "Subject: hi\r\n\r\nhello\r\n", 0,
	 "Subject: hi\r\n\r\nhello\r\n"},
	{"non-MIME 8-bit body gets MIME headers",
	 "Subject: hi\r\n\r\ncaf\xc3\xa9 =\r\n", 0,
	 "Subject: hi\r\nContent-Transfer-Encoding: quoted-printable\r\n"
	 "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
	 "\r\ncaf=C3=A9 =3D\r\n"},
	{"latin-1 body is unknown-8bit", "X: y\r\n\r\ncaf\xe9\r\n", 0,
	 "X: y\r\nContent-Transfer-Encoding: quoted-printable\r\n"
	 "MIME-Version: 1.0\r\nContent-Type: text/plain; "
	 "charset=unknown-8bit\r\n\r\ncaf=E9\r\n"},
	{"declared 8bit part, trailing space, dot line",
	 "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
	 "Content-Transfer-Encoding: 8bit\r\n\r\n\xc3\xa9 \r\n.\r\n",
	 0,
	 "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
	 "Content-Transfer-Encoding: quoted-printable\r\n\r\n=C3=A9=20\r\n"
	 ".\r\n"},
	{"multipart: only the 8-bit part converted",
	 "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; "
	 "boundary=\"b 1\"\r\nContent-Transfer-Encoding: 8bit\r\n\r\npre\r\n"
	 "--b 1\r\nContent-Type: text/plain\r\n\r\nascii\r\n--b 1\r\n"
	 "Content-Type: text/plain; charset=utf-8\r\n"
	 "Content-Transfer-Encoding: 8bit\r\n\r\n\xc3\xa9t\xc3\xa9\r\n"
	 "--b 1--\r\nepilogue\r\n",
	 0,
	 "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; "
	 "boundary=\"b 1\"\r\nContent-Transfer-Encoding: 7bit\r\n\r\npre\r\n"
	 "--b 1\r\nContent-Type: text/plain\r\n\r\nascii\r\n--b 1\r\n"
	 "Content-Type: text/plain; charset=utf-8\r\n"
	 "Content-Transfer-Encoding: quoted-printable\r\n\r\n=C3=A9t=C3=A9\r\n"
	 "--b 1--\r\nepilogue\r\n"},
	{"nested message/rfc822",
	 "Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n"
	 "Content-Type: message/rfc822\r\nContent-Transfer-Encoding: 8bit\r\n"
	 "\r\nSubject: inner\r\n\r\n\xc3\xa9\r\n--x--\r\n",
	 0,
	 "Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n"
	 "Content-Type: message/rfc822\r\nContent-Transfer-Encoding: 7bit\r\n"
	 "\r\nSubject: inner\r\nContent-Transfer-Encoding: quoted-printable\r\n"
	 "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
	 "\r\n=C3=A9\r\n--x--\r\n"},
	{"8-bit subject becomes an encoded-word",
	 "Subject: caf\xc3\xa9\r\n\r\nx\r\n", 0,
	 "Subject: =?utf-8?B?Y2Fmw6k=?=\r\n\r\nx\r\n"},
	{"long 8-bit subject: whole characters per word",
	 "Subject: \xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
	 "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
	 "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
	 "\r\n\r\nx\r\n",
	 0,
	 "Subject: "
	 "=?utf-8?B?"
	 "w6nDqcOpw6nDqcOpw6nDqcOpw6nDqcOpw6nDqcOpw6nDqcOpw6nDqcOpw6k=?="
	 "\r\n =?utf-8?B?w6k=?=\r\n\r\nx\r\n"},
	{"8-bit display names become encoded-words",
	 "From: J\xc3\xa9r\xc3\xb4me <j@example.test>\r\n"
	 "To: a@b.test, \"Q \\\"x\\\"\" <q@b.test>,\r\n"
	 " \xc3\x9c <u@b.test>\r\n\r\nx\r\n",
	 0,
	 "From: =?utf-8?B?SsOpcsO0bWU=?= <j@example.test>\r\n"
	 "To: <a@b.test>,\r\n \"Q \\\"x\\\"\" <q@b.test>,\r\n"
	 " =?utf-8?B?w5w=?= <u@b.test>\r\n\r\nx\r\n"},
	{"8-bit address can not be converted",
	 "From: J <j\xc3\xa9@example.test>\r\n\r\nx\r\n", 1, NULL},
	{"8-bit group can not be converted",
	 "To: T\xc3\xa9"
	 "am: a@b.test;\r\n\r\nx\r\n",
	 1, NULL},
	{"8-bit in an unparsable From can not be converted",
	 "From: J\xc3\xa9r\xc3\xb4me\r\n\r\nx\r\n", 1, NULL},
	{"8-bit preamble can not be converted",
	 "Content-Type: multipart/mixed; boundary=x\r\n\r\n\xc3\xa9\r\n--x\r\n"
	 "\r\na\r\n--x--\r\n",
	 1, NULL},
	{"8-bit in a multipart without boundary",
	 "Content-Type: multipart/mixed\r\n\r\n\xc3\xa9\r\n", 1, NULL},
	{"boundary with trailing white space, outer boundary closes inner",
	 "Content-Type: multipart/mixed; boundary=o\r\n\r\n--o \r\n"
	 "Content-Type: multipart/alternative; boundary=i\r\n\r\n--i\r\n"
	 "\r\n\xff\r\n--o--\r\n",
	 0,
	 "Content-Type: multipart/mixed; boundary=o\r\n\r\n--o \r\n"
	 "Content-Type: multipart/alternative; boundary=i\r\n\r\n--i\r\n"
	 "Content-Transfer-Encoding: quoted-printable\r\n"
	 "Content-Type: text/plain; charset=unknown-8bit\r\n\r\n=FF\r\n"
	 "--o--\r\n"},
	{"control bytes and soft line breaks",
	 "\r\n\xff\x01"
	 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	 "x\r\n",
	 0,
	 "Content-Transfer-Encoding: quoted-printable\r\nMIME-Version: 1.0\r\n"
	 "Content-Type: text/plain; charset=unknown-8bit\r\n\r\n=FF=01"
	 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	 "=\r\n"
	 "x\r\n"},
};

static void mime7_run(const char *in, size_t n, size_t cut,
		      const struct remote_mime7_info *info, struct buf *out)
{
	struct remote_mime7 *m = remote_mime7_new(info);

	assert_non_null(m);
	assert_int_equal(remote_mime7_feed(m, in, cut, out), 0);
	assert_int_equal(remote_mime7_feed(m, in + cut, n - cut, out), 0);
	assert_int_equal(remote_mime7_finish(m, out), 0);
	remote_mime7_free(m);
}

static void test_mime7_cases(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(mime7_cases) / sizeof(*mime7_cases);
	     i++) {
		const struct mime7_case *c = &mime7_cases[i];
		size_t n = strlen(c->in);

		/* Every cut into two chunks gives the same result. */
		for (size_t cut = 0; cut <= n; cut++) {
			struct remote_mime7_info info;
			struct remote_mime7 *m = remote_mime7_new(NULL);
			struct buf out;

			assert_non_null(m);
			assert_int_equal(remote_mime7_feed(m, c->in, cut, NULL),
					 0);
			assert_int_equal(remote_mime7_feed(m, c->in + cut,
							   n - cut, NULL),
					 0);
			assert_int_equal(remote_mime7_finish(m, NULL), 0);
			remote_mime7_result(m, &info);
			remote_mime7_free(m);
			if (info.unconvertible != c->unconvertible)
				fail_msg("%s (cut %zu): unconvertible %d",
					 c->name, cut, info.unconvertible);
			if (c->want == NULL)
				continue;
			buf_init(&out, 65536);
			mime7_run(c->in, n, cut, &info, &out);
			if (strcmp(buf_cstr(&out), c->want) != 0)
				fail_msg("%s (cut %zu): got \"%s\"", c->name,
					 cut, buf_cstr(&out));
			for (size_t k = 0; k < out.len; k++)
				assert_false((unsigned char)out.data[k] & 0x80);
			buf_deinit(&out);
		}
	}
}

/* A line longer than the walker's segments, 8-bit throughout: every
 * output line stays within 76 characters and holds no 8-bit byte. */
static void test_mime7_long_line(void **state)
{
	static char in[5000];
	struct remote_mime7_info info;
	struct remote_mime7 *m;
	struct buf out;
	size_t n, col = 0;

	(void)state;
	n = (size_t)snprintf(in, sizeof(in), "Subject: x\r\n\r\n");
	memset(in + n, 0xe9, 4000);
	n += 4000;
	memcpy(in + n, "\r\nend\r\n", 7);
	n += 7;
	m = remote_mime7_new(NULL);
	assert_int_equal(remote_mime7_feed(m, in, n, NULL), 0);
	assert_int_equal(remote_mime7_finish(m, NULL), 0);
	remote_mime7_result(m, &info);
	remote_mime7_free(m);
	assert_false(info.unconvertible);
	buf_init(&out, 1 << 20);
	mime7_run(in, n, 1234, &info, &out);
	for (size_t k = 0; k < out.len; k++) {
		assert_false((unsigned char)out.data[k] & 0x80);
		if (out.data[k] == '\n') {
			assert_true(col <= 77);
			col = 0;
		} else {
			col++;
		}
	}
	assert_non_null(strstr(buf_cstr(&out), "=E9=E9=\r\n=E9"));
	assert_non_null(strstr(buf_cstr(&out), "=E9\r\nend\r\n"));
	buf_deinit(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reply_cases),
		cmocka_unit_test(test_reply_bounds),
		cmocka_unit_test(test_ehlo),
		cmocka_unit_test(test_data_cases),
		cmocka_unit_test(test_data_full_and_addr),
		cmocka_unit_test(test_route_domain_and_literal),
		cmocka_unit_test(test_route_mx_filter),
		cmocka_unit_test(test_route_hostport),
		cmocka_unit_test(test_retry_schedule),
		cmocka_unit_test(test_hops),
		cmocka_unit_test(test_dsn_bounce),
		cmocka_unit_test(test_dsn_delayed),
		cmocka_unit_test(test_mime7_cases),
		cmocka_unit_test(test_mime7_long_line),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
