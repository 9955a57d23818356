/* Unit tests of policy/hijack: the exact sliding window (no boundary lets
 * twice the limit through), recipients and client IPs, private limits,
 * freezing, taking a send back, exemptions, tokens, the reply's order and
 * the alert text. The clock is the test's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "lib/buf.h"
#include "policy/hijack.h"

#define T0 1700000000000LL /* ms */
#define MIN 60000LL
#define A "alice@example.test"

static struct hijack_limits limits(unsigned messages, unsigned rcpts,
				   unsigned ips)
{
	struct hijack_limits l;

	memset(&l, 0, sizeof(l));
	l.window_ms = 30 * MIN;
	l.messages = messages;
	l.recipients = rcpts;
	l.ips = ips;
	return l;
}

static int send_at(struct hijack *h, const struct hijack_limits *l, int64_t now,
		   const char *ip, unsigned rcpts)
{
	struct hijack_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.time = now;
	ev.rcpts = rcpts;
	snprintf(ev.ip, sizeof(ev.ip), "%s", ip);
	ev.private_ip = hijack_ip_private(ip);
	return hijack_send(h, A, &ev, l, now, NULL);
}

static void test_exactly_n_in_the_window(void **state)
{
	struct hijack *h = hijack_new();
	struct hijack_limits l = limits(5, 1000, 5);

	(void)state;
	for (int i = 0; i < 5; i++)
		assert_int_equal(send_at(h, &l, T0 + i * 1000, "192.0.2.1", 1),
				 HIJACK_OK);
	assert_int_equal(send_at(h, &l, T0 + 5000, "192.0.2.1", 1),
			 HIJACK_OVER_MESSAGES);
	/* A refused message is not counted: still over until the first
	 * send leaves the window, 30 minutes after it. */
	assert_int_equal(send_at(h, &l, T0 + 30 * MIN - 1, "192.0.2.1", 1),
			 HIJACK_OVER_MESSAGES);
	assert_int_equal(send_at(h, &l, T0 + 30 * MIN, "192.0.2.1", 1),
			 HIJACK_OK);
	assert_int_equal(send_at(h, &l, T0 + 30 * MIN + 1, "192.0.2.1", 1),
			 HIJACK_OVER_MESSAGES);
	hijack_free(h);
}

static void test_no_boundary_burst(void **state)
{
	/* A fixed bucket would let 5 at the end of one bucket and 5 at the
	 * start of the next through: the sliding window does not. */
	struct hijack *h = hijack_new();
	struct hijack_limits l = limits(5, 1000, 5);
	int ok = 0;

	(void)state;
	for (int i = 0; i < 5; i++)
		ok += send_at(h, &l, T0 + 29 * MIN + i, "192.0.2.1", 1) ==
		      HIJACK_OK;
	for (int i = 0; i < 5; i++)
		ok += send_at(h, &l, T0 + 31 * MIN + i, "192.0.2.1", 1) ==
		      HIJACK_OK;
	assert_int_equal(ok, 5);
	hijack_free(h);
}

static void test_recipients_and_ips(void **state)
{
	struct hijack *h = hijack_new();
	struct hijack_limits l = limits(500, 10, 2);
	struct hijack_tally t;

	(void)state;
	assert_int_equal(send_at(h, &l, T0, "192.0.2.1", 10), HIJACK_OK);
	assert_int_equal(send_at(h, &l, T0 + 1, "192.0.2.1", 1),
			 HIJACK_OVER_RECIPIENTS);
	hijack_reset(h, A);
	hijack_login(h, A, "192.0.2.1", 0, T0);
	hijack_login(h, A, "192.0.2.2", 0, T0 + 1);
	hijack_login(h, A, "192.0.2.1", 0, T0 + 2);
	assert_int_equal(send_at(h, &l, T0 + 3, "192.0.2.2", 1), HIJACK_OK);
	hijack_login(h, A, "192.0.2.3", 0, T0 + 4);
	assert_int_equal(send_at(h, &l, T0 + 5, "192.0.2.3", 1),
			 HIJACK_OVER_IPS);
	hijack_tally(h, A, 0, &l, T0 + 6, &t);
	assert_int_equal(t.ips, 3);
	assert_int_equal(t.messages, 1);
	/* Logins leave the window too. */
	hijack_tally(h, A, 0, &l, T0 + 30 * MIN + 3, &t);
	assert_int_equal(t.ips, 1);
	hijack_free(h);
}

static void test_private_limits(void **state)
{
	struct hijack *h = hijack_new();
	struct hijack_limits l = limits(2, 1000, 5);

	(void)state;
	l.private_messages = 3;
	assert_true(hijack_ip_private("10.1.2.3"));
	assert_true(hijack_ip_private("::1"));
	assert_true(hijack_ip_private("fd00::1"));
	assert_true(hijack_ip_private("::ffff:192.168.1.1"));
	assert_false(hijack_ip_private("192.0.2.1"));
	assert_false(hijack_ip_private("2001:db8::1"));
	/* Counted apart: 3 from private IPs, 2 from public ones. */
	for (int i = 0; i < 3; i++)
		assert_int_equal(send_at(h, &l, T0 + i, "10.0.0.1", 1),
				 HIJACK_OK);
	assert_int_equal(send_at(h, &l, T0 + 3, "10.0.0.1", 1),
			 HIJACK_OVER_MESSAGES);
	assert_int_equal(send_at(h, &l, T0 + 4, "192.0.2.1", 1), HIJACK_OK);
	assert_int_equal(send_at(h, &l, T0 + 5, "192.0.2.1", 1), HIJACK_OK);
	assert_int_equal(send_at(h, &l, T0 + 6, "192.0.2.1", 1),
			 HIJACK_OVER_MESSAGES);
	hijack_free(h);
}

static void test_freeze_unsend_expire(void **state)
{
	struct hijack *h = hijack_new();
	struct hijack_limits l = limits(2, 1000, 5);
	const struct hijack_event *ev;

	(void)state;
	assert_int_equal(send_at(h, &l, T0, "192.0.2.1", 1), HIJACK_OK);
	assert_int_equal(send_at(h, &l, T0 + 1, "192.0.2.1", 1), HIJACK_OK);
	/* A message not accepted after all gives its place back. */
	hijack_unsend(h, A, T0 + 1);
	assert_int_equal(hijack_events(h, A, &ev), 1);
	assert_int_equal(send_at(h, &l, T0 + 2, "192.0.2.1", 1), HIJACK_OK);
	hijack_freeze(h, A, T0 + 3);
	assert_true(hijack_frozen(h, A));
	assert_int_equal(send_at(h, &l, T0 + 40 * MIN, "192.0.2.1", 1),
			 HIJACK_FROZEN);
	/* Frozen accounts stay known after their window is empty. */
	hijack_expire(h, T0 + 60 * MIN, l.window_ms);
	assert_true(hijack_frozen(h, "ALICE@example.test"));
	hijack_reset(h, A);
	assert_false(hijack_frozen(h, A));
	hijack_expire(h, T0 + 60 * MIN, l.window_ms);
	assert_int_equal(hijack_events(h, A, &ev), 0);
	hijack_free(h);
}

static void test_exempt(void **state)
{
	(void)state;
	assert_true(hijack_exempt("", "postmaster@example.test"));
	assert_true(hijack_exempt("", "PostMaster@example.test"));
	assert_false(hijack_exempt("", "postmasters@example.test"));
	assert_true(
		hijack_exempt("newsletter@example.test, *@lists.example.test",
			      "anyone@LISTS.example.test"));
	assert_true(
		hijack_exempt("newsletter@example.test, *@lists.example.test",
			      "newsletter@example.test"));
	assert_false(
		hijack_exempt("newsletter@example.test, *@lists.example.test",
			      "alice@example.test"));
}

static void test_tokens(void **state)
{
	char t1[HIJACK_TOKEN_LEN + 1], t2[HIJACK_TOKEN_LEN + 1];
	char h1[65], h2[65], tok[HIJACK_TOKEN_LEN + 1], dom[64], addr[128];
	char line[200];

	(void)state;
	hijack_token_new(t1);
	hijack_token_new(t2);
	assert_int_equal(strlen(t1), HIJACK_TOKEN_LEN);
	assert_string_not_equal(t1, t2);
	hijack_token_hash(t1, h1);
	hijack_token_hash(t1, h2);
	assert_string_equal(h1, h2);
	assert_int_equal(strlen(h1), 64);
	snprintf(addr, sizeof(addr), "Reactivate+%s@Example.TEST", t1);
	assert_int_equal(hijack_token_rcpt(addr, tok, dom, sizeof(dom)), 1);
	assert_string_equal(tok, t1);
	assert_string_equal(dom, "example.test");
	assert_int_equal(hijack_token_rcpt("reactivate+short@example.test", tok,
					   dom, sizeof(dom)),
			 0);
	assert_int_equal(
		hijack_token_rcpt("alice@example.test", tok, dom, sizeof(dom)),
		0);
	snprintf(line, sizeof(line), "RCPT TO:<reactivate+%s@example.test>",
		 t1);
	hijack_token_redact(line);
	assert_null(strstr(line, t1));
	assert_non_null(strstr(line, "reactivate+****"));
}

static void test_reply_word(void **state)
{
	static const char plain[] = "From: a@b\r\nSubject: Re: x\r\n\r\n"
				    "\r\n  Release.\r\n> quoted\r\n";
	static const char quoted[] = "Subject: x\r\n\r\n> delete\r\nOK\r\n";
	static const char multi[] =
		"Content-Type: multipart/alternative; boundary=\"b1\"\r\n"
		"\r\npreamble\r\n--b1\r\n"
		"Content-Type: text/plain; charset=utf-8\r\n"
		"Content-Transfer-Encoding: base64\r\n\r\n"
		"ZGVsZXRlCgo+IHF1b3RlZAo=\r\n--b1--\r\n";
	static const char qp[] =
		"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
		"=72elease now\r\n";
	static const char empty[] = "Subject: x\r\n\r\n\r\n";
	char w[32];

	(void)state;
	assert_int_equal(hijack_reply_word(plain, strlen(plain), w, sizeof(w)),
			 1);
	assert_string_equal(w, "release");
	hijack_reply_word(quoted, strlen(quoted), w, sizeof(w));
	assert_string_equal(w, "ok");
	hijack_reply_word(multi, strlen(multi), w, sizeof(w));
	assert_string_equal(w, "delete");
	hijack_reply_word(qp, strlen(qp), w, sizeof(w));
	assert_string_equal(w, "release");
	assert_int_equal(hijack_reply_word(empty, strlen(empty), w, sizeof(w)),
			 0);
}

static void test_alert_text(void **state)
{
	static const char samples[] =
		"\nSubjects of the burst (up to 10):\n"
		"  offer 11\n  offer 10\n  offer 9\n  offer 8\n  offer 7\n"
		"  offer 6\n  offer 5\n  offer 4\n  offer 3\n  offer 2\n"
		"\nTop recipient domains:\n";
	struct hijack_event ev[12];
	struct hijack_login lg[1];
	struct hijack_alert a;
	struct buf out;

	(void)state;
	memset(ev, 0, sizeof(ev));
	for (int i = 0; i < 12; i++) {
		ev[i].time = T0 + i;
		ev[i].rcpts = 1;
		snprintf(ev[i].ip, sizeof(ev[i].ip), "%s",
			 i < 8 ? "198.51.100.7" : "203.0.113.9");
		snprintf(ev[i].subject, sizeof(ev[i].subject), "offer %d", i);
		snprintf(ev[i].domains, sizeof(ev[i].domains), "%s",
			 i % 3 == 0 ? "a.test, b.test" : "b.test");
	}
	memset(lg, 0, sizeof(lg));
	snprintf(lg[0].ip, sizeof(lg[0].ip), "192.0.2.99");
	memset(&a, 0, sizeof(a));
	a.account = A;
	a.hostname = "mx.example.test";
	a.why = HIJACK_OVER_MESSAGES;
	a.tally.messages = 13;
	a.tally.max_messages = 12;
	a.window_ms = 30 * MIN;
	a.now = T0 / 1000;
	a.ev = ev;
	a.nev = 12;
	a.lg = lg;
	a.nlg = 1;
	a.held = 4;
	a.reply_to = "reactivate+x@example.test";
	buf_init(&out, 65536);
	assert_int_equal(hijack_alert_text(&a, &out), 0);
	assert_int_equal(buf_append(&out, "", 1), 0);
	assert_non_null(strstr(out.data, "messages:   13 (limit 12)"));
	assert_non_null(strstr(out.data, "198.51.100.7: 8"));
	assert_non_null(strstr(out.data, "203.0.113.9: 4"));
	assert_non_null(strstr(out.data, "192.0.2.99: 0"));
	assert_non_null(strstr(out.data, "b.test: 12 messages"));
	assert_non_null(strstr(out.data, "a.test: 4 messages"));
	/* Ten samples, the latest first: the events come oldest first
	 * (hijack_events()), so the block runs from offer 11 down to offer
	 * 2, and the two oldest are left out. */
	assert_non_null(strstr(out.data, samples));
	assert_null(strstr(out.data, "offer 1\n"));
	assert_null(strstr(out.data, "offer 0\n"));
	assert_non_null(strstr(out.data, "4 message(s) from the account"));
	assert_non_null(strstr(out.data, "reactivate+x@example.test"));
	buf_deinit(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exactly_n_in_the_window),
		cmocka_unit_test(test_no_boundary_burst),
		cmocka_unit_test(test_recipients_and_ips),
		cmocka_unit_test(test_private_limits),
		cmocka_unit_test(test_freeze_unsend_expire),
		cmocka_unit_test(test_exempt),
		cmocka_unit_test(test_tokens),
		cmocka_unit_test(test_reply_word),
		cmocka_unit_test(test_alert_text),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
