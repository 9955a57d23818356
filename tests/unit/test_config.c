/* Unit tests of lib/config: petrel.conf parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "lib/config.h"

#define S(x) x, sizeof(x) - 1

static struct config cfg;

static int parse(const char *text, size_t len, const char **error_r)
{
	config_defaults(&cfg);
	return config_parse(&cfg, "t.conf", text, len, error_r);
}

static void test_defaults(void **state)
{
	const char *err;

	(void)state;
	assert_int_equal(parse(S(""), &err), 0);
	assert_true(cfg.hostname[0] != '\0');
	assert_string_equal(cfg.data_dir, "./var");
	assert_string_equal(cfg.log_dir, "./var/log");
	assert_string_equal(cfg.tls_cert, "./var/tls/cert.pem");
	assert_string_equal(cfg.tls_key, "./var/tls/key.pem");
	assert_int_equal(cfg.listen_smtp.count, 1);
	assert_string_equal(cfg.listen_smtp.addr[0].text, "127.0.0.1:2525");
	assert_string_equal(cfg.listen_submission.addr[0].text,
			    "127.0.0.1:2587");
	assert_string_equal(cfg.listen_smtps.addr[0].text, "127.0.0.1:2465");
	assert_string_equal(cfg.listen_pop3.addr[0].text, "127.0.0.1:2110");
	assert_string_equal(cfg.listen_pop3s.addr[0].text, "127.0.0.1:2995");
	assert_string_equal(cfg.listen_admin.addr[0].text, "127.0.0.1:8025");
	assert_string_equal(cfg.smarthost, "");
	assert_string_equal(cfg.dns_server, "");
	assert_string_equal(cfg.user, "petrel");
	assert_int_equal(cfg.workers, 4);
	assert_int_equal(cfg.commit_workers, 32);
	assert_int_equal(cfg.delivery_workers, 8);
	assert_int_equal(cfg.loops, (int)sysconf(_SC_NPROCESSORS_ONLN));
	assert_string_equal(cfg.error, "");
}

static void test_every_key(void **state)
{
	static const char text[] =
		"# every key\n"
		"hostname = mx.example.com\n"
		"data_dir = /srv/petrel\n"
		"log_dir = /var/log/petrel\n"
		"listen_smtp = 0.0.0.0:25\n"
		"listen_submission = 192.0.2.1:587, [2001:db8::1]:587\n"
		"listen_smtps = [::]:465\n"
		"listen_pop3 = none\n"
		"listen_pop3s = 127.0.0.1:995\n"
		"listen_admin = [::1]:8080\n"
		"tls_cert = /etc/petrel/cert.pem\n"
		"tls_key = /etc/petrel/key.pem\n"
		"smarthost = relay.example.net:2525\n"
		"dns_server = 192.0.2.53:53\n"
		"user = mail\n"
		"workers = 16\n"
		"commit_workers = 48\n"
		"delivery_workers = 8\n"
		"loops = 3\n";
	const char *err;

	(void)state;
	assert_int_equal(parse(S(text), &err), 0);
	assert_string_equal(cfg.hostname, "mx.example.com");
	assert_string_equal(cfg.data_dir, "/srv/petrel");
	assert_string_equal(cfg.log_dir, "/var/log/petrel");
	assert_int_equal(cfg.listen_smtp.count, 1);
	assert_string_equal(cfg.listen_smtp.addr[0].text, "0.0.0.0:25");
	assert_int_equal(cfg.listen_submission.count, 2);
	assert_string_equal(cfg.listen_submission.addr[0].text,
			    "192.0.2.1:587");
	assert_string_equal(cfg.listen_submission.addr[1].text,
			    "[2001:db8::1]:587");
	assert_string_equal(cfg.listen_smtps.addr[0].text, "[::]:465");
	assert_int_equal(cfg.listen_pop3.count, 0);
	assert_string_equal(cfg.listen_pop3s.addr[0].text, "127.0.0.1:995");
	assert_string_equal(cfg.listen_admin.addr[0].text, "[::1]:8080");
	assert_string_equal(cfg.tls_cert, "/etc/petrel/cert.pem");
	assert_string_equal(cfg.tls_key, "/etc/petrel/key.pem");
	assert_string_equal(cfg.smarthost, "relay.example.net:2525");
	assert_string_equal(cfg.dns_server, "192.0.2.53:53");
	assert_string_equal(cfg.user, "mail");
	assert_int_equal(cfg.workers, 16);
	assert_int_equal(cfg.commit_workers, 48);
	assert_int_equal(cfg.delivery_workers, 8);
	assert_int_equal(cfg.loops, 3);
}

/* log_dir and the TLS files follow data_dir unless set. */
static void test_derived(void **state)
{
	const char *err;

	(void)state;
	assert_int_equal(parse(S("data_dir = /d\ntls_key = /k.pem\n"), &err),
			 0);
	assert_string_equal(cfg.log_dir, "/d/log");
	assert_string_equal(cfg.tls_cert, "/d/tls/cert.pem");
	assert_string_equal(cfg.tls_key, "/k.pem");
}

/* A data_dir too long to derive the other paths from is an error, not a
 * silently cut path. */
static void test_derived_too_long(void **state)
{
	char text[CONFIG_PATH_MAX + 64];
	char dir[CONFIG_PATH_MAX];
	const char *err;
	int n;

	(void)state;
	memset(dir, 'd', sizeof(dir) - 1);
	dir[0] = '/';
	dir[sizeof(dir) - 1] = '\0'; /* 1023 octets: fits data_dir */
	n = snprintf(text, sizeof(text), "\ndata_dir = %s\n", dir);
	assert_true(n > 0 && (size_t)n < sizeof(text));
	assert_int_equal(parse(text, (size_t)n, &err), -1);
	assert_non_null(strstr(err, "t.conf:2: "));
	assert_non_null(strstr(err, "data_dir"));

	/* With every derived path set, it is fine. */
	n = snprintf(text, sizeof(text),
		     "log_dir = /l\ntls_cert = /c\ntls_key = /k\n"
		     "data_dir = %s\n",
		     dir);
	assert_true(n > 0 && (size_t)n < sizeof(text));
	assert_int_equal(parse(text, (size_t)n, &err), 0);
	assert_string_equal(cfg.data_dir, dir);
}

static void test_syntax(void **state)
{
	static const char text[] =
		"\n"
		"   # indented comment\n"
		"\thostname\t=\tmx.example.com   # trailing comment\r\n"
		"workers=2\n"
		"user =petrel2\n"
		"\n"
		"   \n"
		"data_dir = /with spaces/inside"; /* no final newline */
	const char *err;

	(void)state;
	assert_int_equal(parse(S(text), &err), 0);
	assert_string_equal(cfg.hostname, "mx.example.com");
	assert_int_equal(cfg.workers, 2);
	assert_string_equal(cfg.user, "petrel2");
	assert_string_equal(cfg.data_dir, "/with spaces/inside");
}

struct listen_case {
	const char *name;
	const char *value;
	int want;
	size_t count;
	const char *first; /* normalized text of addr[0] */
	int family;
	int port;
};

static const struct listen_case listen_cases[] = {
	{"ipv4", "127.0.0.1:25", 0, 1, "127.0.0.1:25", AF_INET, 25},
	{"ipv6 loopback", "[::1]:25", 0, 1, "[::1]:25", AF_INET6, 25},
	{"ipv6 normalized", "[2001:DB8:0:0::1]:2525", 0, 1,
	 "[2001:db8::1]:2525", AF_INET6, 2525},
	{"ipv6 any", "[::]:25", 0, 1, "[::]:25", AF_INET6, 25},
	{"none", "none", 0, 0, NULL, 0, 0},
	{"list by commas", "127.0.0.1:25,[::1]:25", 0, 2, "127.0.0.1:25",
	 AF_INET, 25},
	{"list by spaces", "127.0.0.1:25 [::1]:26  10.0.0.1:27", 0, 3,
	 "127.0.0.1:25", AF_INET, 25},
	{"port 65535", "127.0.0.1:65535", 0, 1, "127.0.0.1:65535", AF_INET,
	 65535},
	{"eight",
	 "1.0.0.1:1,1.0.0.2:1,1.0.0.3:1,1.0.0.4:1,1.0.0.5:1,1.0.0.6:1,"
	 "1.0.0.7:1,1.0.0.8:1",
	 0, 8, "1.0.0.1:1", AF_INET, 1},
	{"nine",
	 "1.0.0.1:1,1.0.0.2:1,1.0.0.3:1,1.0.0.4:1,1.0.0.5:1,1.0.0.6:1,"
	 "1.0.0.7:1,1.0.0.8:1,1.0.0.9:1",
	 -1, 0, NULL, 0, 0},
	{"empty", "", -1, 0, NULL, 0, 0},
	{"no port", "127.0.0.1", -1, 0, NULL, 0, 0},
	{"empty port", "127.0.0.1:", -1, 0, NULL, 0, 0},
	{"port zero", "127.0.0.1:0", -1, 0, NULL, 0, 0},
	{"port too big", "127.0.0.1:65536", -1, 0, NULL, 0, 0},
	{"port not a number", "127.0.0.1:smtp", -1, 0, NULL, 0, 0},
	{"port signed", "127.0.0.1:+25", -1, 0, NULL, 0, 0},
	{"bad ipv4", "127.0.0.256:25", -1, 0, NULL, 0, 0},
	{"short ipv4", "127.1:25", -1, 0, NULL, 0, 0},
	{"host name", "localhost:25", -1, 0, NULL, 0, 0},
	{"ipv6 unbracketed", "::1:25", -1, 0, NULL, 0, 0},
	{"ipv6 no port", "[::1]", -1, 0, NULL, 0, 0},
	{"ipv6 bad", "[::g]:25", -1, 0, NULL, 0, 0},
	{"ipv6 unclosed", "[::1:25", -1, 0, NULL, 0, 0},
	{"ipv4 in brackets", "[127.0.0.1]:25", -1, 0, NULL, 0, 0},
	{"none in a list", "none,127.0.0.1:25", -1, 0, NULL, 0, 0},
};

static void test_listen(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(listen_cases) / sizeof(listen_cases[0]);
	     i++) {
		const struct listen_case *c = &listen_cases[i];
		struct config_listen_list l;
		int got = config_parse_listen(c->value, &l);

		if (got != c->want)
			fail_msg("%s: got %d", c->name, got);
		if (got < 0)
			continue;
		assert_int_equal(l.count, c->count);
		if (c->count == 0)
			continue;
		assert_string_equal(l.addr[0].text, c->first);
		assert_int_equal(l.addr[0].ss.ss_family, c->family);
		if (c->family == AF_INET) {
			const struct sockaddr_in *sin =
				(const struct sockaddr_in *)&l.addr[0].ss;
			assert_int_equal(ntohs(sin->sin_port), c->port);
			assert_int_equal(l.addr[0].sslen, sizeof(*sin));
		} else {
			const struct sockaddr_in6 *sin6 =
				(const struct sockaddr_in6 *)&l.addr[0].ss;
			assert_int_equal(ntohs(sin6->sin6_port), c->port);
			assert_int_equal(l.addr[0].sslen, sizeof(*sin6));
		}
	}
}

struct error_case {
	const char *name;
	const char *text;
	size_t len;	  /* 0: strlen(text) */
	const char *want; /* the whole error line */
};

#define BADV(key, what) "bad value for \"" key "\": " what

static const struct error_case error_cases[] = {
	{"unknown key", "hostname = a\nfoo = bar\n", 0,
	 "t.conf:2: unknown key \"foo\""},
	{"unknown key sanitized", "f\x01o = bar\n", 0,
	 "t.conf:1: unknown key \"f?o\""},
	{"key case matters", "HOSTNAME = a\n", 0,
	 "t.conf:1: unknown key \"HOSTNAME\""},
	{"missing equals", "\nhostname mx.example.com\n", 0,
	 "t.conf:2: expected \"key = value\""},
	{"missing key", "= value\n", 0, "t.conf:1: missing key"},
	{"duplicate key", "user = a\n# c\nuser = b\n", 0,
	 "t.conf:3: key \"user\" set twice"},
	{"NUL", "user = a\0b\n", 11, "t.conf:1: NUL byte in line"},
	{"NUL in comment", "# a\0b\n", 6, "t.conf:1: NUL byte in line"},
	{"bad host", "hostname = mx_1.example\n", 0,
	 "t.conf:1: " BADV("hostname", "expected a host name")},
	{"host label ends in hyphen", "hostname = e--------\n", 0,
	 "t.conf:1: " BADV("hostname", "expected a host name")},
	{"host label 64",
	 "hostname = "
	 "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz"
	 "abcdefghijkl.example\n",
	 0, "t.conf:1: " BADV("hostname", "expected a host name")},
	{"host trailing dot", "hostname = mx.example.\n", 0,
	 "t.conf:1: " BADV("hostname", "expected a host name")},
	{"smarthost label hyphen", "smarthost = relay-.example:25\n", 0,
	 "t.conf:1: " BADV("smarthost", "expected HOST:PORT")},
	{"empty host", "hostname =\n", 0,
	 "t.conf:1: " BADV("hostname", "expected a host name")},
	{"empty path", "data_dir =\n", 0,
	 "t.conf:1: " BADV("data_dir", "expected a path (too long or empty)")},
	{"bad ipv4 listen", "listen_smtp = 1.2.3.4.5:25\n", 0,
	 "t.conf:1: " BADV("listen_smtp",
			   "expected \"none\" or IP:PORT / [IPv6]:PORT, "
			   "separated by commas")},
	{"bad ipv6 listen", "listen_pop3 = [::x]:110\n", 0,
	 "t.conf:1: " BADV("listen_pop3",
			   "expected \"none\" or IP:PORT / [IPv6]:PORT, "
			   "separated by commas")},
	{"listen port", "listen_admin = 127.0.0.1:99999\n", 0,
	 "t.conf:1: " BADV("listen_admin",
			   "expected \"none\" or IP:PORT / [IPv6]:PORT, "
			   "separated by commas")},
	{"smarthost no port", "smarthost = relay.example\n", 0,
	 "t.conf:1: " BADV("smarthost", "expected HOST:PORT")},
	{"smarthost bad port", "smarthost = relay.example:0\n", 0,
	 "t.conf:1: " BADV("smarthost", "expected HOST:PORT")},
	{"smarthost bad host", "smarthost = re lay:25\n", 0,
	 "t.conf:1: " BADV("smarthost", "expected HOST:PORT")},
	{"dns name", "dns_server = ns.example:53\n", 0,
	 "t.conf:1: " BADV("dns_server", "expected IP:PORT")},
	{"bad user", "user = a b\n", 0,
	 "t.conf:1: " BADV("user", "expected a user name")},
	{"user slash", "user = ../x\n", 0,
	 "t.conf:1: " BADV("user", "expected a user name")},
	{"workers zero", "workers = 0\n", 0,
	 "t.conf:1: " BADV("workers", "expected a number from 1 to 64")},
	{"workers big", "workers = 65\n", 0,
	 "t.conf:1: " BADV("workers", "expected a number from 1 to 64")},
	{"workers text", "workers = four\n", 0,
	 "t.conf:1: " BADV("workers", "expected a number from 1 to 64")},
	{"workers junk", "workers = 4x\n", 0,
	 "t.conf:1: " BADV("workers", "expected a number from 1 to 64")},
};

static void test_errors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(error_cases) / sizeof(error_cases[0]);
	     i++) {
		const struct error_case *c = &error_cases[i];
		size_t len = c->len != 0 ? c->len : strlen(c->text);
		const char *err = NULL;
		int got = parse(c->text, len, &err);

		if (got != -1 || err == NULL || strcmp(err, c->want) != 0)
			fail_msg("%s: got %d [%s]", c->name, got,
				 err != NULL ? err : "");
		assert_ptr_equal(err, cfg.error);
	}
}

static void test_line_too_long(void **state)
{
	static char text[8000];
	const char *err;
	size_t n;

	(void)state;
	n = (size_t)snprintf(text, sizeof(text), "user = a\n# x\nuser = ");
	memset(text + n, 'u', 5000);
	n += 5000;
	text[n++] = '\n';
	assert_int_equal(parse(text, n, &err), -1);
	assert_string_equal(err, "t.conf:3: line too long");

	/* A line that fits, but a value too long for its field. */
	n = (size_t)snprintf(text, sizeof(text), "hostname = ");
	for (int i = 0; i < 60; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "abcde.");
	n += (size_t)snprintf(text + n, sizeof(text) - n, "x\n");
	assert_int_equal(parse(text, n, &err), -1);
	assert_string_equal(
		err, "t.conf:1: " BADV("hostname", "expected a host name"));
}

static void test_load(void **state)
{
	char path[] = "/tmp/petrel-test-config-XXXXXX";
	static const char text[] = "hostname = loaded.example\n";
	const char *err;
	int fd;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, sizeof(text) - 1),
			 (ssize_t)sizeof(text) - 1);
	close(fd);
	assert_int_equal(config_load(&cfg, path, &err), 0);
	assert_string_equal(cfg.hostname, "loaded.example");
	assert_string_equal(cfg.user, "petrel"); /* defaults first */

	fd = open(path, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "\nbogus = 1\n", 11), 11);
	close(fd);
	assert_int_equal(config_load(&cfg, path, &err), -1);
	assert_non_null(strstr(err, ":2: unknown key \"bogus\""));
	assert_memory_equal(err, path, strlen(path));
	unlink(path);

	assert_int_equal(config_load(&cfg, path, &err), -1);
	assert_memory_equal(err, path, strlen(path));

	assert_int_equal(config_load(&cfg, "/tmp", &err), -1);
	assert_non_null(strstr(err, "/tmp"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_every_key),
		cmocka_unit_test(test_derived),
		cmocka_unit_test(test_derived_too_long),
		cmocka_unit_test(test_syntax),
		cmocka_unit_test(test_listen),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_line_too_long),
		cmocka_unit_test(test_load),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
