/* Unit tests of policy/dnsbl: the zone list, answers, the refusal text and
 * decision at RCPT, Received header IPs and the TTL cache (time injected). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>

#include "directory/settings.h"
#include "lib/dns.h"
#include "policy/dnsbl.h"
#include "policy/policy.h"

struct zones_case {
	const char *name;
	const char *list;
	int ok;
	size_t n;
	const char *zone0;
	double weight0;
	const char *message0;
	const char *zone1;
};

static const struct zones_case zones_cases[] = {
	{"empty", "", 1, 0, NULL, 0, NULL, NULL},
	{"zone only", "bl.example.test", 1, 1, "bl.example.test", 1, "", NULL},
	{"zone and weight", "bl.example.test:8", 1, 1, "bl.example.test", 8, "",
	 NULL},
	{"decimal weight", "bl.example.test:2.5:x", 1, 1, "bl.example.test",
	 2.5, "x", NULL},
	{"negative weight", "wl.example.test:-3:", 1, 1, "wl.example.test", -3,
	 "", NULL},
	{"message with colons", "bl.example.test:8:see http://x.test:80/a", 1,
	 1, "bl.example.test", 8, "see http://x.test:80/a", NULL},
	{"message with a comma",
	 "zen.example.test:8:Listed at %s, see https://x.test/?ip=%s, "
	 "b.example.test:1:B",
	 1, 2, "zen.example.test", 8, "Listed at %s, see https://x.test/?ip=%s",
	 "b.example.test"},
	{"two zones", "a.example.test:1:A, b.example.test:2:B", 1, 2,
	 "a.example.test", 1, "A", "b.example.test"},
	{"upper case zone", "BL.Example.TEST:3", 1, 1, "bl.example.test", 3, "",
	 NULL},
	{"bad weight", "bl.example.test:x:msg", 0, 0, NULL, 0, NULL, NULL},
	{"empty weight", "bl.example.test::msg", 0, 0, NULL, 0, NULL, NULL},
	{"weight too big", "bl.example.test:5000:msg", 0, 0, NULL, 0, NULL,
	 NULL},
	{"not a zone", "hello world", 0, 0, NULL, 0, NULL, NULL},
	{"single label", "localhost:3:x", 0, 0, NULL, 0, NULL, NULL},
	{"continuation without message", "a.example.test:1, oops", 0, 0, NULL,
	 0, NULL, NULL},
};

static void test_zones_parse(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(zones_cases) / sizeof(zones_cases[0]);
	     i++) {
		const struct zones_case *c = &zones_cases[i];
		struct dnsbl_zone z[DNSBL_ZONES_MAX];
		const char *err = NULL;
		size_t n = 99;
		int r = dnsbl_zones_parse(c->list, z, DNSBL_ZONES_MAX, &n,
					  &err);

		print_message("case %s\n", c->name);
		assert_int_equal(r, c->ok ? 0 : -1);
		if (!c->ok) {
			assert_non_null(err);
			continue;
		}
		assert_int_equal(n, c->n);
		if (n == 0)
			continue;
		assert_string_equal(z[0].zone, c->zone0);
		assert_true(z[0].weight == c->weight0);
		assert_string_equal(z[0].message, c->message0);
		if (c->zone1 != NULL)
			assert_string_equal(z[1].zone, c->zone1);
	}
}

static void test_zones_too_many(void **state)
{
	char list[4096] = "";
	struct dnsbl_zone z[DNSBL_ZONES_MAX];
	const char *err = NULL;
	size_t n;

	(void)state;
	for (int i = 0; i <= DNSBL_ZONES_MAX; i++) {
		size_t l = strlen(list);
		snprintf(list + l, sizeof(list) - l, "%sz%d.example.test:1",
			 i ? ", " : "", i);
	}
	assert_int_equal(dnsbl_zones_parse(list, z, DNSBL_ZONES_MAX, &n, &err),
			 -1);
	assert_string_equal(err, "too many DNSBL zones");
}

/* The settings table checks dnsbl.zones with the same parser. */
static void test_zones_setting(void **state)
{
	char norm[512];
	const char *err;

	(void)state;
	assert_int_equal(settings_normalize(SETTING_DNSBL_ZONES,
					    "a.example.test:4:Listed at %s, "
					    "see x",
					    norm, sizeof(norm), &err),
			 0);
	assert_string_equal(norm, "a.example.test:4:Listed at %s, see x");
	assert_int_equal(settings_normalize(SETTING_DNSBL_ZONES,
					    "a.example.test:four", norm,
					    sizeof(norm), &err),
			 -1);
}

static struct sockaddr_storage v4(const char *ip)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *s = (struct sockaddr_in *)&ss;

	memset(&ss, 0, sizeof(ss));
	s->sin_family = AF_INET;
	assert_int_equal(inet_pton(AF_INET, ip, &s->sin_addr), 1);
	return ss;
}

static struct sockaddr_storage v6(const char *ip)
{
	struct sockaddr_storage ss;
	struct sockaddr_in6 *s = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof(ss));
	s->sin6_family = AF_INET6;
	assert_int_equal(inet_pton(AF_INET6, ip, &s->sin6_addr), 1);
	return ss;
}

struct answer_case {
	const char *name;
	const char *addrs[3];
	enum dnsbl_status want;
	const char *answer;
};

static const struct answer_case answer_cases[] = {
	{"127.0.0.2 lists", {"127.0.0.2"}, DNSBL_LISTED, "127.0.0.2"},
	{"127.0.0.10 lists", {"127.0.0.10"}, DNSBL_LISTED, "127.0.0.10"},
	{"127.1.2.3 lists", {"127.1.2.3"}, DNSBL_LISTED, "127.1.2.3"},
	{"outside 127/8 does not", {"192.0.2.1"}, DNSBL_CLEAN, ""},
	{"wildcard 10.x does not", {"10.0.0.1"}, DNSBL_CLEAN, ""},
	{"128.0.0.2 does not", {"128.0.0.2"}, DNSBL_CLEAN, ""},
	{"error code", {"127.255.255.254"}, DNSBL_REFUSED, "127.255.255.254"},
	{"listing after a wildcard",
	 {"192.0.2.1", "127.0.0.4"},
	 DNSBL_LISTED,
	 "127.0.0.4"},
	{"listing after an error code",
	 {"127.255.255.252", "127.0.0.3"},
	 DNSBL_LISTED,
	 "127.0.0.3"},
	{"no answers", {NULL}, DNSBL_CLEAN, ""},
};

static void test_answer_status(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(answer_cases) / sizeof(answer_cases[0]);
	     i++) {
		const struct answer_case *c = &answer_cases[i];
		struct sockaddr_storage a[3];
		char ans[INET_ADDRSTRLEN];
		size_t n = 0;

		print_message("case %s\n", c->name);
		while (n < 3 && c->addrs[n] != NULL) {
			a[n] = v4(c->addrs[n]);
			n++;
		}
		assert_int_equal(dnsbl_answer_status(a, n, ans, sizeof(ans)),
				 c->want);
		assert_string_equal(ans, c->answer);
	}
	{
		/* An AAAA in the answer is no listing. */
		struct sockaddr_storage a = v6("::1");
		char ans[INET_ADDRSTRLEN];
		assert_int_equal(dnsbl_answer_status(&a, 1, ans, sizeof(ans)),
				 DNSBL_CLEAN);
	}
}

static void test_reverse_names(void **state)
{
	struct sockaddr_storage a = v4("192.0.2.99");
	struct sockaddr_storage b = v6("2001:db8::1");
	char name[DNS_NAME_MAX];

	(void)state;
	assert_int_equal(dns_reverse_name((struct sockaddr *)&a,
					  "bl.example.test", name,
					  sizeof(name)),
			 0);
	assert_string_equal(name, "99.2.0.192.bl.example.test");
	assert_int_equal(dns_reverse_name((struct sockaddr *)&b,
					  "bl.example.test", name,
					  sizeof(name)),
			 0);
	assert_string_equal(name, "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0."
				  "0.0.0.8.b.d.0.1.0.0.2.bl.example.test");
}

struct reply_case {
	const char *name;
	const char *message;
	const char *want;
};

static const struct reply_case reply_cases[] = {
	{"default text", "",
	 "554 5.7.1 Service unavailable; client [192.0.2.7] blocked using "
	 "bl.example.test"},
	{"ip substituted", "Listed at %s, see https://x.test/?%s",
	 "554 5.7.1 Listed at 192.0.2.7, see https://x.test/?192.0.2.7"},
	{"percent kept", "100% spam %d %n", "554 5.7.1 100% spam %d %n"},
	{"double percent", "50%% sure", "554 5.7.1 50% sure"},
	{"trailing percent", "odd %", "554 5.7.1 odd %"},
};

static void test_reply(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(reply_cases) / sizeof(reply_cases[0]);
	     i++) {
		struct dnsbl_zone z;
		char reply[512];

		memset(&z, 0, sizeof(z));
		snprintf(z.zone, sizeof(z.zone), "bl.example.test");
		snprintf(z.message, sizeof(z.message), "%s",
			 reply_cases[i].message);
		print_message("case %s\n", reply_cases[i].name);
		assert_string_equal(
			dnsbl_reply(&z, "192.0.2.7", reply, sizeof(reply)),
			reply_cases[i].want);
	}
	{
		/* Cut at the buffer, still terminated. */
		struct dnsbl_zone z;
		char reply[20];

		memset(&z, 0, sizeof(z));
		snprintf(z.zone, sizeof(z.zone), "bl.example.test");
		snprintf(z.message, sizeof(z.message), "%s %s %s", "%s", "%s",
			 "%s");
		dnsbl_reply(&z, "192.0.2.7", reply, sizeof(reply));
		assert_true(strlen(reply) < sizeof(reply));
	}
}

static void test_check_rcpt(void **state)
{
	struct dnsbl_zone zones[2];
	struct dnsbl_result res[2];
	struct policy_facts f;
	char reply[256], reason[256];
	const char *r;

	(void)state;
	memset(zones, 0, sizeof(zones));
	memset(res, 0, sizeof(res));
	memset(&f, 0, sizeof(f));
	snprintf(zones[0].zone, sizeof(zones[0].zone), "a.example.test");
	snprintf(zones[1].zone, sizeof(zones[1].zone), "b.example.test");
	snprintf(zones[1].message, sizeof(zones[1].message), "%s",
		 "Go away %s");
	zones[0].weight = 1;
	zones[1].weight = 4.5;
	res[0].zone = 0;
	res[0].status = DNSBL_CLEAN;
	snprintf(res[0].ip, sizeof(res[0].ip), "192.0.2.7");
	res[1].zone = 1;
	res[1].status = DNSBL_LISTED;
	snprintf(res[1].ip, sizeof(res[1].ip), "192.0.2.7");
	snprintf(res[1].answer, sizeof(res[1].answer), "127.0.0.2");

	r = dnsbl_check_rcpt(&f, 1, zones, 2, res, 2, reply, sizeof(reply),
			     reason, sizeof(reason));
	assert_non_null(r);
	assert_string_equal(r, "554 5.7.1 Go away 192.0.2.7");
	assert_string_equal(reason, "client 192.0.2.7 listed by b.example.test "
				    "(127.0.0.2)");
	/* score only */
	assert_null(dnsbl_check_rcpt(&f, 0, zones, 2, res, 2, reply,
				     sizeof(reply), reason, sizeof(reason)));
	/* authenticated: never refused */
	f.auth = "alice@example.test";
	assert_null(dnsbl_check_rcpt(&f, 1, zones, 2, res, 2, reply,
				     sizeof(reply), reason, sizeof(reason)));
	/* trusted host: never refused */
	f.auth = NULL;
	f.trusted = 1;
	assert_null(dnsbl_check_rcpt(&f, 1, zones, 2, res, 2, reply,
				     sizeof(reply), reason, sizeof(reason)));
	/* a Received header's listing never refuses */
	f.trusted = 0;
	res[1].received = 1;
	assert_null(dnsbl_check_rcpt(&f, 1, zones, 2, res, 2, reply,
				     sizeof(reply), reason, sizeof(reason)));
	/* timeouts and failures are no listing */
	res[1].received = 0;
	res[1].status = DNSBL_TIMEOUT;
	assert_null(dnsbl_check_rcpt(&f, 1, zones, 2, res, 2, reply,
				     sizeof(reply), reason, sizeof(reason)));
	res[1].status = DNSBL_LISTED;
	assert_true(dnsbl_weight(zones, 2, res, 2) == 4.5);
	res[0].status = DNSBL_LISTED;
	assert_true(dnsbl_weight(zones, 2, res, 2) == 5.5);
}

static void test_received_ips(void **state)
{
	const char *msg = "Received: from a.example.test (a.example.test "
			  "[203.0.113.5])\r\n"
			  "\tby mx.example.test with ESMTP id 1\r\n"
			  "Received: from b (unknown [10.1.2.3]) by x\r\n"
			  "Received: from c ([IPv6:2001:db8::25]) by x\r\n"
			  "Received: from d ([203.0.113.5]) by x\r\n"
			  "Received: from e ([127.0.0.1]) by x\r\n"
			  "Received: from f ([192.0.2.50]) by x\r\n"
			  "Received: from g ([not.an.ip]) by x\r\n"
			  "X-Other: [198.51.100.1]\r\n"
			  "Subject: hi\r\n"
			  "\r\n"
			  "Received: from body ([198.51.100.2])\r\n";
	struct sockaddr_storage out[DNSBL_IPS_MAX];
	struct sockaddr_storage skip = v4("192.0.2.50");
	char text[INET6_ADDRSTRLEN];
	size_t n;

	(void)state;
	n = dnsbl_received_ips(msg, strlen(msg), (struct sockaddr *)&skip, out,
			       DNSBL_IPS_MAX);
	assert_int_equal(n, 2);
	inet_ntop(AF_INET, &((struct sockaddr_in *)&out[0])->sin_addr, text,
		  sizeof(text));
	assert_string_equal(text, "203.0.113.5");
	inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&out[1])->sin6_addr, text,
		  sizeof(text));
	assert_string_equal(text, "2001:db8::25");
	/* the cap */
	assert_int_equal(dnsbl_received_ips(msg, strlen(msg), NULL, out, 1), 1);
}

static void test_cache(void **state)
{
	struct dnsbl_cache *c = dnsbl_cache_new(2);
	struct dnsbl_cache_entry e, got;

	(void)state;
	assert_non_null(c);
	memset(&e, 0, sizeof(e));
	e.status = DNSBL_LISTED;
	snprintf(e.answer, sizeof(e.answer), "127.0.0.2");
	snprintf(e.txt, sizeof(e.txt), "listed");
	dnsbl_cache_put(c, "1.0.0.127.a.test", &e, 60, 1000);
	assert_int_equal(dnsbl_cache_get(c, "1.0.0.127.a.test", 1000, &got), 1);
	assert_string_equal(got.txt, "listed");
	/* The TTL is honoured: valid through 1059, gone at 1060. */
	assert_int_equal(dnsbl_cache_get(c, "1.0.0.127.A.TEST", 1059, &got), 1);
	assert_int_equal(dnsbl_cache_get(c, "1.0.0.127.a.test", 1060, &got), 0);
	/* TTL 0 is not kept. */
	dnsbl_cache_put(c, "2.0.0.127.a.test", &e, 0, 1000);
	assert_int_equal(dnsbl_cache_get(c, "2.0.0.127.a.test", 1000, &got), 0);
	/* A huge TTL is capped. */
	dnsbl_cache_put(c, "3.0.0.127.a.test", &e, 4000000000u, 1000);
	assert_int_equal(dnsbl_cache_get(c, "3.0.0.127.a.test",
					 1000 + DNSBL_CACHE_TTL_MAX - 1, &got),
			 1);
	assert_int_equal(dnsbl_cache_get(c, "3.0.0.127.a.test",
					 1000 + DNSBL_CACHE_TTL_MAX, &got),
			 0);
	/* Full: the expired entry makes room. */
	assert_int_equal(dnsbl_cache_size(c), 2);
	e.status = DNSBL_CLEAN;
	dnsbl_cache_put(c, "4.0.0.127.a.test", &e, 30, 2000);
	assert_int_equal(dnsbl_cache_size(c), 2);
	assert_int_equal(dnsbl_cache_get(c, "4.0.0.127.a.test", 2000, &got), 1);
	assert_int_equal(got.status, DNSBL_CLEAN);
	assert_int_equal(dnsbl_cache_get(c, "3.0.0.127.a.test", 2000, &got), 1);
	dnsbl_cache_free(c);
	dnsbl_cache_free(NULL);
}

/* Many names through a small cache: each found by its name (any case)
 * while it is among the newest, the evicted ones gone, a name put again
 * updated in place. */
static void test_cache_many(void **state)
{
	struct dnsbl_cache *c = dnsbl_cache_new(8);
	struct dnsbl_cache_entry e, got;
	char name[64];

	(void)state;
	assert_non_null(c);
	memset(&e, 0, sizeof(e));
	for (int i = 0; i < 100; i++) {
		e.status = i % 2 ? DNSBL_LISTED : DNSBL_CLEAN;
		snprintf(e.txt, sizeof(e.txt), "n%d", i);
		snprintf(name, sizeof(name), "%d.0.0.127.zone.test", i);
		/* Later names expire later: the oldest makes room. */
		dnsbl_cache_put(c, name, &e, (uint32_t)(100 + i), 1000);
		assert_true(dnsbl_cache_size(c) <= 8);
	}
	for (int i = 0; i < 100; i++) {
		snprintf(name, sizeof(name), "%d.0.0.127.ZONE.test", i);
		assert_int_equal(dnsbl_cache_get(c, name, 1000, &got),
				 i >= 92 ? 1 : 0);
		if (i >= 92) {
			snprintf(name, sizeof(name), "n%d", i);
			assert_string_equal(got.txt, name);
		}
	}
	snprintf(e.txt, sizeof(e.txt), "again");
	dnsbl_cache_put(c, "95.0.0.127.zone.test", &e, 500, 1000);
	assert_int_equal(dnsbl_cache_size(c), 8);
	assert_int_equal(dnsbl_cache_get(c, "95.0.0.127.zone.test", 1400, &got),
			 1);
	assert_string_equal(got.txt, "again");
	dnsbl_cache_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_zones_parse),
		cmocka_unit_test(test_zones_too_many),
		cmocka_unit_test(test_zones_setting),
		cmocka_unit_test(test_answer_status),
		cmocka_unit_test(test_reverse_names),
		cmocka_unit_test(test_reply),
		cmocka_unit_test(test_check_rcpt),
		cmocka_unit_test(test_received_ips),
		cmocka_unit_test(test_cache),
		cmocka_unit_test(test_cache_many),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
