/*
 * hijack_bench: what hijack detection costs one message on the loop. 1000
 * accounts with full windows (499 of 500 messages, 5 client IPs); each
 * iteration judges one more message of one account and takes it back, as
 * a refused message would. Prints nanoseconds per judgement.
 *   build/hijack_bench [iterations]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "policy/hijack.h"

#define ACCOUNTS 1000
#define PER_ACCOUNT 499

static int64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	long iterations = argc > 1 ? strtol(argv[1], NULL, 10) : 1000000;
	struct hijack *h = hijack_new();
	struct hijack_limits l;
	struct hijack_event ev;
	char name[64];
	int64_t t0 = 1700000000000LL, start, ns;
	long ok = 0;

	if (h == NULL || sodium_init() < 0 || iterations <= 0)
		return 1;
	memset(&l, 0, sizeof(l));
	l.window_ms = 30 * 60000;
	l.messages = 500;
	l.recipients = 1000;
	l.ips = 5;
	memset(&ev, 0, sizeof(ev));
	ev.rcpts = 1;
	snprintf(ev.subject, sizeof(ev.subject), "quarterly report");
	snprintf(ev.domains, sizeof(ev.domains), "example.net");
	for (int a = 0; a < ACCOUNTS; a++) {
		snprintf(name, sizeof(name), "user%d@example.test", a);
		for (int i = 0; i < 5; i++) {
			char ip[32];

			snprintf(ip, sizeof(ip), "198.51.100.%d", i + 1);
			hijack_login(h, name, ip, 0, t0);
		}
		for (int i = 0; i < PER_ACCOUNT; i++) {
			ev.time = t0 + i;
			snprintf(ev.ip, sizeof(ev.ip), "198.51.100.%d",
				 i % 5 + 1);
			hijack_record(h, name, &ev);
		}
	}
	start = bench_now_ns();
	for (long i = 0; i < iterations; i++) {
		int64_t now = t0 + 600000 + i;

		snprintf(name, sizeof(name), "user%ld@example.test",
			 i % ACCOUNTS);
		ev.time = now;
		if (hijack_send(h, name, &ev, &l, now, NULL) == HIJACK_OK) {
			ok++;
			hijack_unsend(h, name, now);
		}
	}
	ns = bench_now_ns() - start;
	printf("hijack_send + unsend: %.0f ns per message (%ld judged, %ld "
	       "under the limit; %d accounts with %d messages in the "
	       "window)\n",
	       (double)ns / (double)iterations, iterations, ok, ACCOUNTS,
	       PER_ACCOUNT);
	hijack_free(h);
	return 0;
}
