/* Fuzzes one whole POP3 session per input: pop3_session.c on a
 * socketpair, with the real event loop, worker pool, directory, Maildir
 * and TLS (session_world.h says how an input is played). The listener
 * (bit 0 of the first byte): 0 plain with STLS, 1 implicit TLS. The
 * mailbox of user@example.org (password "secret") is made anew for every
 * input: five messages in new/ and cur/, one of them 300 KB so that a
 * transfer takes more than one read and waits for the output to drain.
 * off@example.org is disabled (same password). The session starts as
 * an accepted connection would (pop3_session_new with the socket): the
 * accept path of server/server.c is not part of it.
 *
 * Every line the server sends ends with CRLF (a bare CR or LF aborts),
 * the first is a response, and an -ERR line is well formed; which lines
 * are responses and which the body of a multi-line one depends on the
 * commands, so no more is checked. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pop3/pop3_server.h"
#include "pop3/pop3_session.h"
#include "session_world.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_BIG_SIZE (300 * 1024)

static struct pop3_server *fuzz_pop3;
static char *fuzz_big;

static int fuzz_implicit_tls(unsigned listener)
{
	return (listener & 1) != 0;
}

static void fuzz_start(int fd, const struct sockaddr *sa, socklen_t salen,
		       unsigned listener)
{
	pop3_session_new(fuzz_pop3, &world.env, fd, sa, salen,
			 (listener & 1) ? POP3_LISTENER_POP3S
					: POP3_LISTENER_PLAIN,
			 (listener & 1) ? "127.0.0.1:995" : "127.0.0.1:110");
}

/* *state: 1 once the first line was seen. */
static void fuzz_check_line(unsigned *state, const char *line, size_t len,
			    int cut)
{
	/* The first line (the greeting, or after STLS the reply to the
	 * next command) is a response: "+OK", "-ERR" or a SASL "+ ". */
	if (*state == 0 && !(len >= 3 && memcmp(line, "+OK", 3) == 0) &&
	    !(len >= 4 && memcmp(line, "-ERR", 4) == 0) &&
	    !(len >= 2 && memcmp(line, "+ ", 2) == 0)) {
		fprintf(stderr, "POP3 response without status: %.*s\n",
			(int)(len > 200 ? 200 : len), line);
		abort();
	}
	*state = 1;
	/* A status line is "+OK" or "-ERR", then a space or the end. */
	if (!cut && len > 4 && memcmp(line, "-ERR", 4) == 0 && line[4] != ' ') {
		fprintf(stderr, "malformed -ERR line: %.*s\n",
			(int)(len > 200 ? 200 : len), line);
		abort();
	}
}

static const struct world_proto fuzz_proto = {
	.tls_ready = "+OK Begin TLS negotiation",
	.implicit_tls = fuzz_implicit_tls,
	.start = fuzz_start,
	.check_line = fuzz_check_line,
};

static void fuzz_write(const char *dir, const char *name, const char *text)
{
	char path[1400];
	int fd;
	size_t len = strlen(text);

	snprintf(path, sizeof(path), "%s/%s/%s", world.maildir, dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, text, len) != (ssize_t)len)
		world_fail(path, NULL);
	close(fd);
}

static void fuzz_mkdirs(const char *path)
{
	char tmp[1100];

	if (strlen(path) >= sizeof(tmp))
		world_fail(path, NULL);
	memcpy(tmp, path, strlen(path) + 1);
	for (char *p = tmp + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		mkdir(tmp, 0700);
		*p = '/';
	}
	if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
		world_fail(tmp, NULL);
}

/* The mailbox of WORLD_USER as every POP3 input finds it: messages in
 * new/ and cur/, seen and not, with and without sizes in their names,
 * CRLF and bare LF, dots at line starts, a line alone with a dot, no
 * final newline, and one larger than a transfer chunk. */
static void fuzz_mailbox(const char *big)
{
	static const char *const sub[] = {"tmp", "new", "cur"};
	char path[1100];

	for (size_t i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/%s", world.maildir, sub[i]);
		world_rmtree(path);
		fuzz_mkdirs(path);
	}
	fuzz_write("cur", "1700000000.M1P1.fuzz,S=96,W=100:2,S",
		   "From: a@example.net\r\nSubject: one\r\n\r\nhello\r\n"
		   ".dotted line\r\n..two dots\r\nlast line\r\n");
	fuzz_write("new", "1700000001.M2P1.fuzz,S=60",
		   "From: b@example.net\nSubject: two\n\nbare LF\n.\n"
		   "..\nend without newline");
	fuzz_write("new", "1700000002.M3P1.fuzz",
		   "Subject: three\r\n\r\n.\r\n");
	fuzz_write("cur", "1700000003.M4P1.fuzz:2,", "");
	if (big != NULL) {
		/* Its size in the name (CRLF already): the scan need not
		 * read it. */
		char name[96];

		snprintf(name, sizeof(name), "1700000004.M5P1.fuzz,S=%zu,W=%zu",
			 strlen(big), strlen(big));
		fuzz_write("new", name, big);
	}
}

/* A message larger than a transfer chunk (POP3_XFER_CHUNK, 128 KB), of
 * CRLF lines, some starting with a dot. */
static char *fuzz_make_big(void)
{
	char *big = malloc(FUZZ_BIG_SIZE + 1);
	size_t n = 0;

	if (big == NULL)
		world_fail("big message", "out of memory");
	n += (size_t)snprintf(big, FUZZ_BIG_SIZE,
			      "From: c@example.net\r\nSubject: big\r\n\r\n");
	while (n + 80 < FUZZ_BIG_SIZE) {
		memset(big + n, n % 7 == 0 ? '.' : 'x', 70);
		memcpy(big + n + 70, "\r\n", 2);
		n += 72;
	}
	big[n] = '\0';
	return big;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (fuzz_pop3 == NULL) {
		const char *err;

		world_init();
		fuzz_big = fuzz_make_big();
		fuzz_pop3 = pop3_server_new(&world.env, NULL, &err);
		if (fuzz_pop3 == NULL)
			world_fail("pop3_server_new", err);
	}
	if (size == 0)
		return 0;
	fuzz_mailbox(fuzz_big);
	world_run(&fuzz_proto, data, size);
	return 0;
}
