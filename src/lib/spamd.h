/* A client of SpamAssassin's spamd on the event loop: one message, one
 * connection, one answer. */
#ifndef PETREL_SPAMD_H
#define PETREL_SPAMD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "lib/spamd_parse.h"

struct io_loop;
struct spamd_check;

/* Called once, on the loop and never from inside spamd_check_start():
 * with the reply, or with r NULL and error saying why (static text). */
typedef void spamd_cb(const struct spamd_reply *r, const char *error,
		      void *arg);

/*
 * Connects to spamd at sa, sends a SYMBOLS request with the message
 * (copied; the caller may free it at once) and parses the reply. The
 * whole exchange must end within timeout_ms. Returns NULL when out of
 * memory (cb is then never called).
 */
struct spamd_check *spamd_check_start(struct io_loop *loop,
				      const struct sockaddr *sa,
				      socklen_t salen, const char *msg,
				      size_t len, int64_t timeout_ms,
				      spamd_cb *cb, void *arg);
/* Stops a check before its callback; cb is not called. NULL is fine. */
void spamd_check_cancel(struct spamd_check *c);

#endif
