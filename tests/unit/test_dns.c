/* Unit tests of lib/dns: DNSBL names, and the resolver on a real loop
 * answering from /etc/hosts (no network). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/dns.h"
#include "lib/io.h"

static struct sockaddr_storage addr_of(const char *ip)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (strchr(ip, ':') != NULL) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, ip, &s4->sin_addr), 1);
	}
	return ss;
}

static void test_reverse_name(void **state)
{
	static const struct {
		const char *ip, *zone, *want;
	} cases[] = {
		{"192.0.2.99", "zen.example.test",
		 "99.2.0.192.zen.example.test"},
		{"127.0.0.2", "bl.test", "2.0.0.127.bl.test"},
		{"2001:db8::1", "bl.test",
		 "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0."
		 "0."
		 "2.bl.test"},
		{"::ffff:1.2.3.4", "z",
		 "4.0.3.0.2.0.1.0.f.f.f.f.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0."
		 "0."
		 "0.z"},
	};
	char out[256];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sockaddr_storage ss = addr_of(cases[i].ip);

		assert_int_equal(dns_reverse_name((struct sockaddr *)&ss,
						  cases[i].zone, out,
						  sizeof(out)),
				 0);
		assert_string_equal(out, cases[i].want);
	}
}

static void test_reverse_name_too_long(void **state)
{
	struct sockaddr_storage v4 = addr_of("192.0.2.1"),
				v6 = addr_of("2001:db8::1");
	struct sockaddr_storage other;
	char out[80];

	(void)state;
	/* "1.2.0.192." is 10 bytes, then the zone and its NUL. */
	assert_int_equal(
		dns_reverse_name((struct sockaddr *)&v4, "abcde", out, 16), 0);
	assert_string_equal(out, "1.2.0.192.abcde");
	assert_int_equal(
		dns_reverse_name((struct sockaddr *)&v4, "abcdef", out, 16),
		-1);
	/* 64 bytes of nibbles: not in 64. */
	assert_int_equal(dns_reverse_name((struct sockaddr *)&v6, "z", out, 64),
			 -1);
	assert_int_equal(dns_reverse_name((struct sockaddr *)&v6, "z", out, 66),
			 0);
	memset(&other, 0, sizeof(other));
	other.ss_family = AF_UNIX;
	assert_int_equal(dns_reverse_name((struct sockaddr *)&other, "z", out,
					  sizeof(out)),
			 -1);
}

struct answer {
	struct io_loop *loop;
	int calls;
	enum dns_status status;
	char name[DNS_NAME_MAX];
	size_t naddrs;
	int has_loopback;
};

static void answer_cb(const struct dns_result *r, void *arg)
{
	struct answer *a = arg;

	a->calls++;
	a->status = r->status;
	snprintf(a->name, sizeof(a->name), "%s", r->name);
	a->naddrs = r->naddrs;
	for (size_t i = 0; i < r->naddrs; i++) {
		const struct sockaddr_in *s4 =
			(const struct sockaddr_in *)&r->addrs[i];
		if (s4->sin_family == AF_INET &&
		    ntohl(s4->sin_addr.s_addr) == INADDR_LOOPBACK)
			a->has_loopback = 1;
	}
	io_loop_exit(a->loop);
}

static void stop_cb(void *arg)
{
	io_loop_exit(arg);
}

/* Runs the loop until the answer or ms. */
static void run_for(struct io_loop *loop, int64_t ms)
{
	struct io_timer *t = io_timer_new(loop, stop_cb, loop);

	assert_non_null(t);
	io_timer_add(t, ms);
	io_loop_run(loop);
	io_timer_free(t);
}

/* The server is a UDP socket that reads nothing and answers nothing:
 * every answer must come from /etc/hosts, or time out. */
static int silent_fd = -1;

static struct dns *resolver(struct io_loop *loop)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	const char *err = NULL;
	char servers[64];
	struct dns *d;

	if (silent_fd < 0) {
		silent_fd = socket(AF_INET, SOCK_DGRAM, 0);
		assert_true(silent_fd >= 0);
		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		assert_int_equal(
			bind(silent_fd, (struct sockaddr *)&sin, sizeof(sin)),
			0);
	}
	assert_int_equal(getsockname(silent_fd, (struct sockaddr *)&sin, &len),
			 0);
	snprintf(servers, sizeof(servers), "127.0.0.1:%u", ntohs(sin.sin_port));
	d = dns_new(loop, servers, 200, 1, &err);
	assert_non_null(d);
	return d;
}

static void test_rdns_loopback_from_hosts(void **state)
{
	struct io_loop *loop = io_loop_new();
	struct dns *d = resolver(loop);
	struct sockaddr_storage ss = addr_of("127.0.0.1");
	struct answer a = {.loop = loop};

	(void)state;
	assert_non_null(dns_rdns(d, (struct sockaddr *)&ss, answer_cb, &a));
	/* Never inside the call: the caller has its handle first. */
	assert_int_equal(a.calls, 0);
	run_for(loop, 5000);
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.status, DNS_OK);
	assert_string_equal(a.name, "localhost");
	dns_free(d);
	io_loop_free(loop);
}

static void test_addrs_from_hosts(void **state)
{
	struct io_loop *loop = io_loop_new();
	struct dns *d = resolver(loop);
	struct answer a = {.loop = loop};

	(void)state;
	assert_non_null(dns_addrs(d, "localhost", answer_cb, &a));
	run_for(loop, 5000);
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.status, DNS_OK);
	assert_true(a.naddrs >= 1);
	assert_true(a.has_loopback);
	dns_free(d);
	io_loop_free(loop);
}

static void test_timeout_is_tempfail(void **state)
{
	struct io_loop *loop = io_loop_new();
	struct dns *d = resolver(loop);
	struct answer a = {.loop = loop};

	(void)state;
	/* Nothing answers on the server's port: a temporary failure. */
	assert_non_null(dns_mx(d, "example.test", answer_cb, &a));
	run_for(loop, 5000);
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.status, DNS_TEMPFAIL);
	dns_free(d);
	io_loop_free(loop);
}

static void test_cancel_and_bad_names(void **state)
{
	struct io_loop *loop = io_loop_new();
	struct dns *d = resolver(loop);
	struct sockaddr_storage ss = addr_of("127.0.0.1");
	struct answer a = {.loop = loop}, b = {.loop = loop};
	struct dns_query *q;

	(void)state;
	q = dns_rdns(d, (struct sockaddr *)&ss, answer_cb, &a);
	assert_non_null(q);
	dns_cancel(q);
	/* A query cancelled while running is dropped too. */
	assert_non_null(dns_a(d, "2.0.0.127.bl.example.test", answer_cb, &b));
	run_for(loop, 50);
	assert_int_equal(a.calls, 0);
	assert_null(dns_a(d, "bad name", answer_cb, &a));
	assert_null(dns_txt(d, "", answer_cb, &a));
	assert_null(dns_mx(d, "a\nb", answer_cb, &a));
	/* Freed with a query pending: no callback, no leak. */
	dns_free(d);
	assert_int_equal(a.calls, 0);
	assert_int_equal(b.calls, 0);
	io_loop_free(loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reverse_name),
		cmocka_unit_test(test_reverse_name_too_long),
		cmocka_unit_test(test_rdns_loopback_from_hosts),
		cmocka_unit_test(test_addrs_from_hosts),
		cmocka_unit_test(test_timeout_is_tempfail),
		cmocka_unit_test(test_cancel_and_bad_names),
	};

	int r = cmocka_run_group_tests(tests, NULL, NULL);

	if (silent_fd >= 0)
		close(silent_fd);
	return r;
}
