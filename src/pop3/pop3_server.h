/* The POP3 listeners and the sessions they accept. */
#ifndef PETREL_POP3_SERVER_H
#define PETREL_POP3_SERVER_H

#include <stdint.h>

struct env;
struct pop3_server;

/* Binds listen_pop3 (STLS offered) and listen_pop3s (implicit TLS) of
 * env->cfg on env's loop. share: the POP3 server of another loop, whose
 * session limit and mailbox locks this one shares (NULL for the first).
 * NULL on error with *error_r set (a line naming the address). */
struct pop3_server *pop3_server_new(struct env *env, struct pop3_server *share,
				    const char **error_r);
/* SIGTERM: stops accepting; idle sessions are told and closed, sessions
 * busy with a mailbox finish that step first (at most `grace_ms`). */
void pop3_server_shutdown(struct pop3_server *srv, int64_t grace_ms);
/* Sessions still open. */
unsigned pop3_server_sessions(const struct pop3_server *srv);
/* Closes every session. Sessions waiting on a worker job end when the job
 * completes (io_workers_free runs it), and the server with the last one.
 * Accepts NULL. */
void pop3_server_free(struct pop3_server *srv);

#endif
