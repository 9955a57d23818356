/*
 * spamd: asks SpamAssassin's spamd for a message's score over its own
 * protocol (SPAMC/1.5, a SYMBOLS request). A check owns its socket, its
 * timer and the reply read so far; it ends in exactly one callback (or a
 * cancel). Parsing is spamd_parse.c's.
 */
#include "lib/spamd.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/io.h"

struct spamd_check {
	struct io_loop *loop;
	int fd;		  /* while connecting */
	struct io_fd *cw; /* watches the connect */
	struct io *io;	  /* once connected */
	struct io_timer *timer;
	const char *error; /* set before the timer fires at once: a failure */
	char *msg;
	size_t len;
	spamd_cb *cb;
	void *arg;
};

static void spamd_free(struct spamd_check *c)
{
	io_fd_free(c->cw);
	if (c->fd >= 0)
		close(c->fd);
	io_free(c->io);
	io_timer_free(c->timer);
	free(c->msg);
	free(c);
}

void spamd_check_cancel(struct spamd_check *c)
{
	if (c != NULL)
		spamd_free(c);
}

/* Ends the check with a failure or a reply. */
static void spamd_end(struct spamd_check *c, const struct spamd_reply *r,
		      const char *error)
{
	c->cb(r, error, c->arg);
	spamd_free(c);
}

/* A failure found outside the loop's callbacks: reported from the loop. */
static void spamd_fail_later(struct spamd_check *c, const char *error)
{
	c->error = error;
	io_timer_add(c->timer, 0);
}

static void spamd_timer_cb(void *arg)
{
	struct spamd_check *c = arg;

	spamd_end(c, NULL, c->error != NULL ? c->error : "spamd timed out");
}

/* Parses what has come; ends the check when the reply is complete or
 * broken. */
static void spamd_input(struct spamd_check *c, int eof)
{
	struct spamd_reply r;
	const char *error = NULL;
	size_t n = io_input_len(c->io);
	int ret;

	if (n > SPAMD_REPLY_MAX) {
		spamd_end(c, NULL, "spamd reply too long");
		return;
	}
	if (n == 0 && eof) {
		spamd_end(c, NULL, "spamd closed the connection");
		return;
	}
	ret = spamd_parse_reply(n > 0 ? io_input_pullup(c->io, n) : "", n, eof,
				&r, &error);
	if (ret == 1)
		spamd_end(c, &r, NULL);
	else if (ret < 0)
		spamd_end(c, NULL, error);
}

static void spamd_io_cb(struct io *io, enum io_event ev, void *arg)
{
	struct spamd_check *c = arg;

	switch (ev) {
	case IO_EV_READ:
		spamd_input(c, 0);
		return;
	case IO_EV_CLOSED:
		spamd_input(c, 1);
		return;
	case IO_EV_TIMEOUT:
	case IO_EV_TLS_ERROR:
		spamd_end(c, NULL, "spamd connection failed");
		return;
	case IO_EV_FLUSHED:
	case IO_EV_TLS_READY:
		return;
	}
}

static void spamd_connect_cb(int fd, int readable, int writable, void *arg)
{
	struct spamd_check *c = arg;
	char head[128];
	int err = 0, n;
	socklen_t len = sizeof(err);

	io_fd_free(c->cw);
	c->cw = NULL;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err != 0) {
		spamd_end(c, NULL,
			  err == ECONNREFUSED ? "spamd refused the connection"
					      : "cannot connect to spamd");
		return;
	}
	c->fd = -1; /* the io owns it from here */
	c->io = io_new(c->loop, fd, NULL, spamd_io_cb, c);
	n = spamd_request_head("SYMBOLS", c->len, head, sizeof(head));
	if (c->io == NULL || n < 0 || io_write(c->io, head, (size_t)n) < 0 ||
	    io_write(c->io, c->msg, c->len) < 0) {
		if (c->io == NULL)
			close(fd);
		spamd_end(c, NULL, "cannot write to spamd");
		return;
	}
	free(c->msg); /* the output buffer has its copy */
	c->msg = NULL;
}

struct spamd_check *spamd_check_start(struct io_loop *loop,
				      const struct sockaddr *sa,
				      socklen_t salen, const char *msg,
				      size_t len, int64_t timeout_ms,
				      spamd_cb *cb, void *arg)
{
	struct spamd_check *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->loop = loop;
	c->fd = -1;
	c->cb = cb;
	c->arg = arg;
	c->len = len;
	c->msg = malloc(len > 0 ? len : 1);
	c->timer = io_timer_new(loop, spamd_timer_cb, c);
	if (c->msg == NULL || c->timer == NULL) {
		spamd_free(c);
		return NULL;
	}
	memcpy(c->msg, msg, len);
	c->fd = socket(sa->sa_family,
		       SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		spamd_fail_later(c, "cannot make a socket for spamd");
		return c;
	}
	if (connect(c->fd, sa, salen) < 0 && errno != EINPROGRESS) {
		spamd_fail_later(c, errno == ECONNREFUSED
					    ? "spamd refused the connection"
					    : "cannot connect to spamd");
		return c;
	}
	c->cw = io_fd_new(loop, c->fd, spamd_connect_cb, c);
	if (c->cw == NULL || io_fd_want(c->cw, 0, 1) < 0) {
		spamd_fail_later(c, "out of memory");
		return c;
	}
	io_timer_add(c->timer, timeout_ms);
	return c;
}
