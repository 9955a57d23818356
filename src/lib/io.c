/*
 * io: the event loop and sockets, over libevent 2.1 and OpenSSL 3. This is
 * the only place that knows them (STYLE.md). A connection is a bufferevent
 * (plain or TLS) with one callback that receives io_event values, in the
 * style of OpenSMTPD's ioev.c.
 */
#include "lib/io.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "lib/io_internal.h"

struct io_timer {
	struct event *ev;
	void (*cb)(void *arg);
	void *arg;
};

struct io_fd {
	struct event *rd, *wr;
	int fd;
	void (*cb)(int fd, int readable, int writable, void *arg);
	void *arg;
};

struct io_signal {
	struct event *ev;
	void (*cb)(int signo, void *arg);
	void *arg;
};

struct io_listener {
	struct evconnlistener *l;
	struct event *resume;
	void (*cb)(int fd, const struct sockaddr *sa, socklen_t salen,
		   void *arg);
	void *arg;
	int port;
};

struct io_tls_ctx {
	SSL_CTX *ctx;
};

struct io {
	struct io_loop *loop;
	struct bufferevent *bev;
	int fd;
	int tls;	 /* under TLS (handshake done or running) */
	int handshaking; /* handshake running */
	int64_t read_timeout;
	void (*cb)(struct io *io, enum io_event ev, void *arg);
	void *arg;
	char tls_info[128];
};

static int io_threads_ok;

static void io_loop_init_once(void)
{
	/* Loops and workers post to each other from their threads. */
	if (evthread_use_pthreads() < 0)
		return;
	signal(SIGPIPE, SIG_IGN);
	/* A write past RLIMIT_FSIZE fails with EFBIG (the message it was
	 * for is refused) instead of killing the daemon. */
	signal(SIGXFSZ, SIG_IGN);
	io_threads_ok = 1;
}

static _Thread_local struct io_loop *io_current;

struct io_loop *io_loop_current(void)
{
	return io_current;
}

/* Takes the whole list and runs it; what is posted meanwhile waits for
 * the next wakeup, which its push has made. */
static void io_loop_run_posted(struct io_loop *loop)
{
	struct io_post *p, *next;

	pthread_mutex_lock(&loop->lock);
	p = loop->head;
	loop->head = loop->tail = NULL;
	pthread_mutex_unlock(&loop->lock);
	for (; p != NULL; p = next) {
		next = p->next;
		p->run(p);
	}
}

static void io_loop_wake_cb(evutil_socket_t fd, short what, void *arg)
{
	uint64_t n;

	if (read(fd, &n, sizeof(n)) < 0) {
		/* EAGAIN: an earlier turn drained it. */
	}
	io_loop_run_posted(arg);
}

void io_loop_push(struct io_loop *loop, struct io_post *p)
{
	uint64_t one = 1;
	int wake;

	p->next = NULL;
	pthread_mutex_lock(&loop->lock);
	/* A list that was not empty has its wakeup coming already: jobs
	 * finishing together (a group commit's) cost one. */
	wake = loop->head == NULL;
	if (loop->tail != NULL)
		loop->tail->next = p;
	else
		loop->head = p;
	loop->tail = p;
	pthread_mutex_unlock(&loop->lock);
	if (wake && write(loop->efd, &one, sizeof(one)) < 0) {
		/* The counter cannot overflow here; nothing to do. */
	}
}

struct io_loop_call {
	struct io_post post;
	struct io_loop *loop;
	void (*fn)(void *arg);
	void *arg;
};

static void io_loop_call_run(struct io_post *p)
{
	struct io_loop_call *c = (struct io_loop_call *)p;

	atomic_fetch_sub(&c->loop->pending, 1);
	c->fn(c->arg);
	free(c);
}

int io_loop_post(struct io_loop *loop, void (*fn)(void *arg), void *arg)
{
	struct io_loop_call *c = malloc(sizeof(*c));

	if (c == NULL)
		return -1;
	c->post.run = io_loop_call_run;
	c->loop = loop;
	c->fn = fn;
	c->arg = arg;
	atomic_fetch_add(&loop->pending, 1);
	io_loop_push(loop, &c->post);
	return 0;
}

unsigned io_loop_pending(const struct io_loop *loop)
{
	return atomic_load(&loop->pending);
}

void io_loop_drain(struct io_loop *loop)
{
	struct io_loop *prev = io_current;

	io_current = loop;
	while (loop->head != NULL)
		io_loop_run_posted(loop);
	io_current = prev;
}

struct io_loop *io_loop_new(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	struct io_loop *loop;

	if (pthread_once(&once, io_loop_init_once) != 0 || !io_threads_ok)
		return NULL;
	loop = calloc(1, sizeof(*loop));
	if (loop == NULL)
		return NULL;
	pthread_mutex_init(&loop->lock, NULL);
	atomic_init(&loop->pending, 0);
	loop->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	loop->base = event_base_new();
	if (loop->efd < 0 || loop->base == NULL)
		goto fail;
	loop->ev = event_new(loop->base, loop->efd, EV_READ | EV_PERSIST,
			     io_loop_wake_cb, loop);
	if (loop->ev == NULL || event_add(loop->ev, NULL) < 0)
		goto fail;
	return loop;
fail:
	io_loop_free(loop);
	return NULL;
}

void io_loop_free(struct io_loop *loop)
{
	if (loop == NULL)
		return;
	io_loop_drain(loop);
	if (loop->ev != NULL)
		event_free(loop->ev);
	if (loop->base != NULL)
		event_base_free(loop->base);
	if (loop->efd >= 0)
		close(loop->efd);
	pthread_mutex_destroy(&loop->lock);
	free(loop);
}

int io_loop_run(struct io_loop *loop)
{
	struct io_loop *prev = io_current;
	int r;

	io_current = loop;
	r = event_base_dispatch(loop->base) < 0 ? -1 : 0;
	io_current = prev;
	return r;
}

void io_loop_exit(struct io_loop *loop)
{
	event_base_loopbreak(loop->base);
}

static void io_timer_event_cb(evutil_socket_t fd, short what, void *arg)
{
	struct io_timer *t = arg;

	t->cb(t->arg);
}

struct io_timer *io_timer_new(struct io_loop *loop, void (*cb)(void *arg),
			      void *arg)
{
	struct io_timer *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return NULL;
	t->cb = cb;
	t->arg = arg;
	t->ev = evtimer_new(loop->base, io_timer_event_cb, t);
	if (t->ev == NULL) {
		free(t);
		return NULL;
	}
	return t;
}

void io_timer_add(struct io_timer *t, int64_t ms)
{
	struct timeval tv;

	if (ms < 0)
		ms = 0;
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
	evtimer_add(t->ev, &tv);
}

void io_timer_del(struct io_timer *t)
{
	evtimer_del(t->ev);
}

int io_timer_pending(const struct io_timer *t)
{
	return evtimer_pending(t->ev, NULL);
}

void io_timer_free(struct io_timer *t)
{
	if (t == NULL)
		return;
	event_free(t->ev);
	free(t);
}

static void io_fd_event_cb(evutil_socket_t fd, short what, void *arg)
{
	struct io_fd *w = arg;

	w->cb((int)fd, (what & EV_READ) != 0, (what & EV_WRITE) != 0, w->arg);
}

struct io_fd *
io_fd_new(struct io_loop *loop, int fd,
	  void (*cb)(int fd, int readable, int writable, void *arg), void *arg)
{
	struct io_fd *w = calloc(1, sizeof(*w));

	if (w == NULL)
		return NULL;
	w->fd = fd;
	w->cb = cb;
	w->arg = arg;
	w->rd = event_new(loop->base, fd, EV_READ | EV_PERSIST, io_fd_event_cb,
			  w);
	w->wr = event_new(loop->base, fd, EV_WRITE | EV_PERSIST, io_fd_event_cb,
			  w);
	if (w->rd == NULL || w->wr == NULL) {
		io_fd_free(w);
		return NULL;
	}
	return w;
}

int io_fd_want(struct io_fd *w, int readable, int writable)
{
	int r = 0;

	if (readable && !event_pending(w->rd, EV_READ, NULL))
		r |= event_add(w->rd, NULL);
	else if (!readable)
		event_del(w->rd);
	if (writable && !event_pending(w->wr, EV_WRITE, NULL))
		r |= event_add(w->wr, NULL);
	else if (!writable)
		event_del(w->wr);
	return r < 0 ? -1 : 0;
}

void io_fd_free(struct io_fd *w)
{
	if (w == NULL)
		return;
	if (w->rd != NULL)
		event_free(w->rd);
	if (w->wr != NULL)
		event_free(w->wr);
	free(w);
}

static void io_signal_event_cb(evutil_socket_t signo, short what, void *arg)
{
	struct io_signal *s = arg;

	s->cb((int)signo, s->arg);
}

struct io_signal *io_signal_new(struct io_loop *loop, int signo,
				void (*cb)(int signo, void *arg), void *arg)
{
	struct io_signal *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->cb = cb;
	s->arg = arg;
	s->ev = evsignal_new(loop->base, signo, io_signal_event_cb, s);
	if (s->ev == NULL || evsignal_add(s->ev, NULL) < 0) {
		if (s->ev != NULL)
			event_free(s->ev);
		free(s);
		return NULL;
	}
	return s;
}

void io_signal_free(struct io_signal *s)
{
	if (s == NULL)
		return;
	event_free(s->ev);
	free(s);
}

static void io_listener_accept_cb(struct evconnlistener *el, evutil_socket_t fd,
				  struct sockaddr *sa, int salen, void *arg)
{
	struct io_listener *l = arg;

	evutil_make_socket_closeonexec(fd);
	l->cb(fd, sa, (socklen_t)salen, l->arg);
}

static void io_listener_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct io_listener *l = arg;

	evconnlistener_enable(l->l);
}

static void io_listener_error_cb(struct evconnlistener *el, void *arg)
{
	struct io_listener *l = arg;
	struct timeval tv = {1, 0};
	int err = EVUTIL_SOCKET_ERROR();

	/* Out of descriptors: stop accepting for a second, never exit. */
	if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
		evconnlistener_disable(l->l);
		evtimer_add(l->resume, &tv);
	}
}

struct io_listener *
io_listener_new(struct io_loop *loop, const struct sockaddr *sa,
		socklen_t salen, unsigned flags,
		void (*accept_cb)(int fd, const struct sockaddr *sa,
				  socklen_t salen, void *arg),
		void *arg, const char **error_r)
{
	struct io_listener *l;
	struct sockaddr_storage bound;
	socklen_t blen = sizeof(bound);
	int fd, on = 1;

	fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    0);
	if (fd < 0) {
		*error_r = "socket() failed";
		return NULL;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	/* Each loop has its socket on the address; the kernel spreads new
	 * connections over them. */
	if ((flags & IO_LISTEN_SHARED) &&
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) < 0) {
		*error_r = "setsockopt(SO_REUSEPORT) failed";
		close(fd);
		return NULL;
	}
	if (sa->sa_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
	if (bind(fd, sa, salen) < 0) {
		*error_r = "bind() failed";
		close(fd);
		return NULL;
	}
	if (listen(fd, 1024) < 0) {
		*error_r = "listen() failed";
		close(fd);
		return NULL;
	}
	l = calloc(1, sizeof(*l));
	if (l == NULL) {
		close(fd);
		*error_r = "out of memory";
		return NULL;
	}
	l->cb = accept_cb;
	l->arg = arg;
	if (getsockname(fd, (struct sockaddr *)&bound, &blen) == 0)
		l->port = ntohs(
			bound.ss_family == AF_INET6
				? ((struct sockaddr_in6 *)&bound)->sin6_port
				: ((struct sockaddr_in *)&bound)->sin_port);
	l->resume = evtimer_new(loop->base, io_listener_resume_cb, l);
	l->l = evconnlistener_new(loop->base, io_listener_accept_cb, l,
				  LEV_OPT_CLOSE_ON_FREE, -1, fd);
	if (l->l == NULL || l->resume == NULL) {
		if (l->l == NULL)
			close(fd);
		io_listener_free(l);
		*error_r = "cannot listen";
		return NULL;
	}
	evconnlistener_set_error_cb(l->l, io_listener_error_cb);
	return l;
}

void io_listener_free(struct io_listener *l)
{
	if (l == NULL)
		return;
	if (l->l != NULL)
		evconnlistener_free(l->l);
	if (l->resume != NULL)
		event_free(l->resume);
	free(l);
}

int io_listener_port(const struct io_listener *l)
{
	return l->port;
}

/* The last OpenSSL error as text, for logs. */
static const char *io_tls_error(void)
{
	static __thread char text[256];
	unsigned long e = ERR_get_error();

	if (e == 0)
		return "unknown TLS error";
	ERR_error_string_n(e, text, sizeof(text));
	ERR_clear_error();
	return text;
}

struct io_tls_ctx *io_tls_server_new(const char *cert, const char *key,
				     const char **error_r)
{
	struct io_tls_ctx *t = calloc(1, sizeof(*t));

	if (t == NULL) {
		*error_r = "out of memory";
		return NULL;
	}
	t->ctx = SSL_CTX_new(TLS_server_method());
	if (t->ctx == NULL)
		goto fail;
	SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(t->ctx, SSL_OP_NO_COMPRESSION |
					    SSL_OP_NO_RENEGOTIATION |
					    SSL_OP_CIPHER_SERVER_PREFERENCE);
	if (SSL_CTX_use_certificate_chain_file(t->ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(t->ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(t->ctx) != 1)
		goto fail;
	return t;
fail:
	*error_r = io_tls_error();
	io_tls_ctx_free(t);
	return NULL;
}

struct io_tls_ctx *io_tls_client_new(int verify, const char **error_r)
{
	struct io_tls_ctx *t = calloc(1, sizeof(*t));

	if (t == NULL) {
		*error_r = "out of memory";
		return NULL;
	}
	t->ctx = SSL_CTX_new(TLS_client_method());
	if (t->ctx == NULL)
		goto fail;
	SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
	if (verify) {
		if (SSL_CTX_set_default_verify_paths(t->ctx) != 1)
			goto fail;
		SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
	}
	return t;
fail:
	*error_r = io_tls_error();
	io_tls_ctx_free(t);
	return NULL;
}

void io_tls_ctx_free(struct io_tls_ctx *t)
{
	if (t == NULL)
		return;
	SSL_CTX_free(t->ctx);
	free(t);
}

int io_tls_make_self_signed(const char *cert, const char *key,
			    const char *hostname, const char **error_r)
{
	EVP_PKEY *pkey = NULL;
	X509 *x = NULL;
	X509_NAME *name;
	X509_EXTENSION *ext = NULL;
	X509V3_CTX v3;
	char san[300];
	FILE *f = NULL;
	int fd, ret = -1;

	*error_r = "cannot make a self-signed certificate";
	pkey = EVP_EC_gen("P-256");
	x = X509_new();
	if (pkey == NULL || x == NULL)
		goto out;
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), (long)time(NULL));
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 10L * 365 * 24 * 3600);
	X509_set_pubkey(x, pkey);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
				   (const unsigned char *)hostname, -1, -1, 0);
	X509_set_issuer_name(x, name);
	snprintf(san, sizeof(san), "DNS:%s", hostname);
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
	if (ext == NULL || !X509_add_ext(x, ext, -1))
		goto out;
	if (!X509_sign(x, pkey, EVP_sha256()))
		goto out;

	fd = open(key, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || (f = fdopen(fd, "w")) == NULL) {
		if (fd >= 0)
			close(fd);
		*error_r = "cannot write the TLS key";
		goto out;
	}
	if (!PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL))
		goto out;
	if (fclose(f) != 0) {
		f = NULL;
		goto out;
	}
	f = fopen(cert, "w");
	if (f == NULL) {
		*error_r = "cannot write the TLS certificate";
		goto out;
	}
	if (!PEM_write_X509(f, x))
		goto out;
	ret = fclose(f) == 0 ? 0 : -1;
	f = NULL;
out:
	if (f != NULL)
		fclose(f);
	X509_EXTENSION_free(ext);
	X509_free(x);
	EVP_PKEY_free(pkey);
	return ret;
}

static void io_read_cb(struct bufferevent *bev, void *arg)
{
	struct io *io = arg;

	io->cb(io, IO_EV_READ, io->arg);
}

static void io_write_cb(struct bufferevent *bev, void *arg)
{
	struct io *io = arg;

	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		io->cb(io, IO_EV_FLUSHED, io->arg);
}

static void io_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct io *io = arg;

	if (what & BEV_EVENT_CONNECTED) {
		if (io->handshaking) {
			SSL *ssl = bufferevent_openssl_get_ssl(bev);

			io->handshaking = 0;
			snprintf(io->tls_info, sizeof(io->tls_info), "%s %s",
				 SSL_get_version(ssl),
				 SSL_get_cipher_name(ssl));
			io->cb(io, IO_EV_TLS_READY, io->arg);
		}
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		io->cb(io, IO_EV_TIMEOUT, io->arg);
		return;
	}
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		if (io->tls && (io->handshaking || (what & BEV_EVENT_ERROR))) {
			ERR_clear_error();
			io->cb(io, IO_EV_TLS_ERROR, io->arg);
		} else {
			io->cb(io, IO_EV_CLOSED, io->arg);
		}
	}
}

static void io_apply_timeout(struct io *io)
{
	struct timeval tv;

	if (io->read_timeout <= 0) {
		bufferevent_set_timeouts(io->bev, NULL, NULL);
		return;
	}
	tv.tv_sec = (time_t)(io->read_timeout / 1000);
	tv.tv_usec = (suseconds_t)((io->read_timeout % 1000) * 1000);
	bufferevent_set_timeouts(io->bev, &tv, NULL);
}

/* Replaces the bufferevent of io with a TLS one over the same fd. */
static int io_tls_attach(struct io *io, struct io_tls_ctx *tls, int accepting,
			 const char *servername)
{
	struct bufferevent *bev;
	SSL *ssl = SSL_new(tls->ctx);

	if (ssl == NULL)
		return -1;
	if (servername != NULL) {
		SSL_set_tlsext_host_name(ssl, servername);
		/* A verifying client checks the name too, not only the
		 * chain (RFC 6125). */
		if (!accepting &&
		    (SSL_CTX_get_verify_mode(tls->ctx) & SSL_VERIFY_PEER) &&
		    SSL_set1_host(ssl, servername) != 1) {
			SSL_free(ssl);
			return -1;
		}
	}
	/* The TLS bufferevent owns fd and ssl from here on. */
	bev = bufferevent_openssl_socket_new(
		io->loop->base, io->fd, ssl,
		accepting ? BUFFEREVENT_SSL_ACCEPTING
			  : BUFFEREVENT_SSL_CONNECTING,
		BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (bev == NULL) {
		SSL_free(ssl);
		return -1;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	io->bev = bev;
	io->tls = 1;
	io->handshaking = 1;
	bufferevent_setcb(bev, io_read_cb, io_write_cb, io_event_cb, io);
	io_apply_timeout(io);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	return 0;
}

struct io *io_new(struct io_loop *loop, int fd, struct io_tls_ctx *tls,
		  void (*cb)(struct io *io, enum io_event ev, void *arg),
		  void *arg)
{
	struct io *io = calloc(1, sizeof(*io));
	int on = 1;

	if (io == NULL) {
		close(fd);
		return NULL;
	}
	evutil_make_socket_nonblocking(fd);
	/* A reply leaves when it is written, whole (one write per turn of
	 * the loop): a client waiting for its 250 must not wait for Nagle's
	 * algorithm to meet a delayed ACK (RFC 1122 4.2.3.4). Fails
	 * harmlessly on what is not TCP. */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	io->loop = loop;
	io->fd = fd;
	io->cb = cb;
	io->arg = arg;
	if (tls != NULL) {
		if (io_tls_attach(io, tls, 1, NULL) < 0) {
			close(fd);
			free(io);
			return NULL;
		}
		return io;
	}
	/* Plain: the fd stays ours, so STARTTLS can hand it to TLS. */
	io->bev =
		bufferevent_socket_new(loop->base, fd, BEV_OPT_DEFER_CALLBACKS);
	if (io->bev == NULL) {
		close(fd);
		free(io);
		return NULL;
	}
	bufferevent_setcb(io->bev, io_read_cb, io_write_cb, io_event_cb, io);
	bufferevent_enable(io->bev, EV_READ | EV_WRITE);
	return io;
}

void io_free(struct io *io)
{
	if (io == NULL)
		return;
	if (io->bev != NULL)
		bufferevent_free(io->bev);
	if (!io->tls)
		close(io->fd);
	free(io);
}

size_t io_input_len(const struct io *io)
{
	return evbuffer_get_length(bufferevent_get_input(io->bev));
}

const char *io_input_pullup(struct io *io, size_t n)
{
	return (const char *)evbuffer_pullup(bufferevent_get_input(io->bev),
					     (ev_ssize_t)n);
}

long io_input_find_lf(struct io *io, size_t max)
{
	struct evbuffer *in = bufferevent_get_input(io->bev);
	struct evbuffer_ptr p;

	p = evbuffer_search(in, "\n", 1, NULL);
	if (p.pos < 0 || (size_t)p.pos >= max)
		return -1;
	return (long)p.pos;
}

void io_input_drain(struct io *io, size_t n)
{
	evbuffer_drain(bufferevent_get_input(io->bev), n);
}

int io_write(struct io *io, const void *data, size_t len)
{
	return bufferevent_write(io->bev, data, len) == 0 ? 0 : -1;
}

int io_printf(struct io *io, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = evbuffer_add_vprintf(bufferevent_get_output(io->bev), fmt, ap);
	va_end(ap);
	return n < 0 ? -1 : 0;
}

size_t io_output_len(const struct io *io)
{
	return evbuffer_get_length(bufferevent_get_output(io->bev));
}

void io_set_read_timeout(struct io *io, int64_t ms)
{
	io->read_timeout = ms;
	io_apply_timeout(io);
}

void io_pause(struct io *io)
{
	bufferevent_disable(io->bev, EV_READ);
}

void io_resume(struct io *io)
{
	bufferevent_enable(io->bev, EV_READ);
}

int io_starttls(struct io *io, struct io_tls_ctx *tls)
{
	if (io->tls)
		return -1;
	/* RFC 3207 4.2: whatever the client sent after STARTTLS in the
	 * clear is thrown away with the plaintext bufferevent. */
	bufferevent_free(io->bev);
	io->bev = NULL;
	if (io_tls_attach(io, tls, 1, NULL) < 0)
		return -1;
	return 0;
}

int io_starttls_client(struct io *io, struct io_tls_ctx *tls,
		       const char *servername)
{
	if (io->tls)
		return -1;
	bufferevent_free(io->bev);
	io->bev = NULL;
	return io_tls_attach(io, tls, 0, servername);
}

int io_is_tls(const struct io *io)
{
	return io->tls && !io->handshaking;
}

const char *io_tls_info(const struct io *io)
{
	return io->tls ? io->tls_info : "";
}

const char *io_tls_verify_error(const struct io *io)
{
	SSL *ssl;
	long r;

	if (!io->tls || io->bev == NULL)
		return "";
	ssl = bufferevent_openssl_get_ssl(io->bev);
	if (ssl == NULL)
		return "";
	r = SSL_get_verify_result(ssl);
	return r == X509_V_OK ? "" : X509_verify_cert_error_string(r);
}
