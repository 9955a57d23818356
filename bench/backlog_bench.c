/*
 * backlog_bench: fills a data directory's queue with a backlog, as a
 * restart after an outage finds it: N committed messages in active/, each
 * to alice@example.test (local) or to friend@remote.test (remote).
 * bench/backlog.py starts petreld on it and measures how it drains.
 *   build/backlog_bench DATA_DIR N local|remote
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "queue/queue.h"

int main(int argc, char **argv)
{
	struct queue_rcpt rcpt = {.error = ""};
	struct queue_envelope env = {0};
	struct queue *q;
	const char *err;
	long n;

	if (argc != 4 ||
	    (strcmp(argv[3], "local") != 0 && strcmp(argv[3], "remote") != 0)) {
		fprintf(stderr,
			"usage: backlog_bench DATA_DIR N local|remote\n");
		return 2;
	}
	n = strtol(argv[2], NULL, 10);
	if (strcmp(argv[3], "local") == 0) {
		rcpt.address = rcpt.mailbox = "alice@example.test";
		rcpt.kind = QUEUE_RCPT_LOCAL;
	} else {
		rcpt.address = "friend@remote.test";
		rcpt.mailbox = "";
		rcpt.kind = QUEUE_RCPT_REMOTE;
	}
	env.sender = "bob@example.test";
	env.rcpts = &rcpt;
	env.rcpt_count = 1;
	env.received = (int64_t)time(NULL);
	env.client_ip = "127.0.0.1";
	env.helo = "bench.test";
	env.listener = "smtp";
	env.protocol = "ESMTP";
	env.auth_account = "";
	env.subject = "backlog";
	q = queue_open(argv[1], &err);
	if (q == NULL) {
		fprintf(stderr, "backlog_bench: %s\n", err);
		return 1;
	}
	for (long i = 0; i < n; i++) {
		struct queue_writer *w = queue_writer_new(q, &err);
		char body[256], mid[64];
		int len;

		snprintf(mid, sizeof(mid), "<backlog.%ld@bench.test>", i);
		len = snprintf(body, sizeof(body),
			       "From: bob@example.test\r\nSubject: backlog\r\n"
			       "Message-ID: %s\r\n\r\nmessage %ld\r\n",
			       mid, i);
		env.message_id = mid;
		if (w == NULL || queue_writer_write(w, body, (size_t)len) < 0 ||
		    queue_writer_commit(w, &env, &err) != 1) {
			fprintf(stderr, "backlog_bench: %s\n",
				w == NULL ? err : "commit failed");
			queue_writer_free(w);
			queue_close(q);
			return 1;
		}
		queue_writer_free(w);
	}
	queue_close(q);
	return 0;
}
