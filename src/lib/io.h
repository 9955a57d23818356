/* The event loop, timers, signals, listeners and connections (plain/TLS). */
#ifndef PETREL_IO_H
#define PETREL_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/*
 * Only src/lib/io*.c know libevent and OpenSSL; everyone else sees these
 * opaque types. One loop per thread; every callback runs on the loop.
 */
struct io_loop;
struct io_timer;
struct io_signal;
struct io_listener;
struct io_tls_ctx;
struct io;

/* Loop. */
struct io_loop *io_loop_new(void);
void io_loop_free(struct io_loop *loop);
/* Runs until io_loop_exit(). Returns 0, or -1 on error. */
int io_loop_run(struct io_loop *loop);
void io_loop_exit(struct io_loop *loop);
/* Runs fn(arg) on loop's thread at its next turn, in the order posted.
 * Any thread may post. Returns 0, or -1 when out of memory. */
int io_loop_post(struct io_loop *loop, void (*fn)(void *arg), void *arg);
/* Posts not yet run, and worker jobs submitted on this loop whose
 * completion has not run: a loop may stop only at 0. */
unsigned io_loop_pending(const struct io_loop *loop);
/* Runs what is waiting for the loop now, as its thread (after it
 * stopped, before freeing what the completions use). */
void io_loop_drain(struct io_loop *loop);

/* Timers: one-shot; re-arm in the callback for periodic work. */
struct io_timer *io_timer_new(struct io_loop *loop, void (*cb)(void *arg),
			      void *arg);
void io_timer_add(struct io_timer *t, int64_t ms);
void io_timer_del(struct io_timer *t);
int io_timer_pending(const struct io_timer *t);
void io_timer_free(struct io_timer *t);

/* A descriptor owned by someone else (the resolver's sockets): cb runs on
 * the loop when fd is readable and/or writable, as asked by io_fd_want(). */
struct io_fd;
struct io_fd *
io_fd_new(struct io_loop *loop, int fd,
	  void (*cb)(int fd, int readable, int writable, void *arg), void *arg);
/* What to watch from now on; both 0 stops watching. Returns 0 or -1. */
int io_fd_want(struct io_fd *w, int readable, int writable);
/* Stops watching (the descriptor is not closed). NULL is fine. */
void io_fd_free(struct io_fd *w);

/* Signals, delivered on the loop. */
struct io_signal *io_signal_new(struct io_loop *loop, int signo,
				void (*cb)(int signo, void *arg), void *arg);
void io_signal_free(struct io_signal *s);

/*
 * A bound, listening socket (SO_REUSEADDR, IPV6_V6ONLY for IPv6). accept_cb
 * owns the new fd. When accept() fails with EMFILE/ENFILE the listener
 * pauses for a second instead of spinning or exiting. NULL on error with
 * *error_r set (static text; errno kept).
 */
#define IO_LISTEN_SHARED 1u /* SO_REUSEPORT: one socket per loop */
struct io_listener *
io_listener_new(struct io_loop *loop, const struct sockaddr *sa,
		socklen_t salen, unsigned flags,
		void (*accept_cb)(int fd, const struct sockaddr *sa,
				  socklen_t salen, void *arg),
		void *arg, const char **error_r);
void io_listener_free(struct io_listener *l);
/* The port actually bound (useful with port 0). */
int io_listener_port(const struct io_listener *l);

/* TLS server context from PEM files. NULL on error with *error_r. */
struct io_tls_ctx *io_tls_server_new(const char *cert, const char *key,
				     const char **error_r);
/* TLS client context (for remote delivery). verify: check the peer's
 * chain against the system's CAs and, with the servername given to
 * io_starttls_client(), its name. */
struct io_tls_ctx *io_tls_client_new(int verify, const char **error_r);
void io_tls_ctx_free(struct io_tls_ctx *ctx);
/* Makes a self-signed certificate and key (EC P-256, 10 years) for
 * hostname, written to cert/key (mode 0600 for the key). 0 or -1. */
int io_tls_make_self_signed(const char *cert, const char *key,
			    const char *hostname, const char **error_r);

/* Connection events given to the callback. */
enum io_event {
	IO_EV_READ,	 /* new input is buffered */
	IO_EV_FLUSHED,	 /* all output was written to the socket */
	IO_EV_TIMEOUT,	 /* no input within the read timeout */
	IO_EV_CLOSED,	 /* the peer closed, or a socket error */
	IO_EV_TLS_READY, /* the TLS handshake completed */
	IO_EV_TLS_ERROR, /* the TLS handshake or a TLS read failed */
};

/*
 * A connection over fd (owned from now on). With tls != NULL the server
 * side of an implicit TLS handshake starts at once. Reading is on.
 */
struct io *io_new(struct io_loop *loop, int fd, struct io_tls_ctx *tls,
		  void (*cb)(struct io *io, enum io_event ev, void *arg),
		  void *arg);
/* Closes the socket and frees. Accepts NULL. Safe inside the callback
 * only as the callback's last action. */
void io_free(struct io *io);

size_t io_input_len(const struct io *io);
/*
 * Makes the first n bytes of input contiguous (n <= io_input_len) and
 * returns them; valid until the next input call.
 */
const char *io_input_pullup(struct io *io, size_t n);
/* Offset of the first LF within the first `max` input bytes, or -1. */
long io_input_find_lf(struct io *io, size_t max);
void io_input_drain(struct io *io, size_t n);

/* Queues output. Returns 0, or -1 on error (the connection is failing). */
int io_write(struct io *io, const void *data, size_t len);
int io_printf(struct io *io, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
size_t io_output_len(const struct io *io);

/* Read timeout in ms (0: none). Re-armed by every read. */
void io_set_read_timeout(struct io *io, int64_t ms);
/* Stop / start reading from the socket (backpressure while busy). */
void io_pause(struct io *io);
void io_resume(struct io *io);

/*
 * Starts the server side of TLS on a plaintext connection (STARTTLS):
 * every input byte buffered so far is discarded (RFC 3207 section 4.2:
 * plaintext sent before the handshake must not survive it), then the
 * handshake runs; IO_EV_TLS_READY or IO_EV_TLS_ERROR follows. Call it once
 * the reply to STARTTLS has been flushed. Returns 0 or -1.
 */
int io_starttls(struct io *io, struct io_tls_ctx *tls);
/* Client side TLS (remote delivery). */
int io_starttls_client(struct io *io, struct io_tls_ctx *tls,
		       const char *servername);
int io_is_tls(const struct io *io);
/* Why the peer's certificate did not verify (a verifying client context,
 * after IO_EV_TLS_ERROR), or "" when it did or was not checked. Static
 * text. */
const char *io_tls_verify_error(const struct io *io);
/* "TLSv1.3 TLS_AES_256_GCM_SHA384", or "" when not under TLS. */
const char *io_tls_info(const struct io *io);

#endif
