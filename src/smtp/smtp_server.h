/* The SMTP listeners and the sessions they accept. */
#ifndef PETREL_SMTP_SERVER_H
#define PETREL_SMTP_SERVER_H

#include <stdint.h>

struct env;
struct smtp_server;

/* Binds listen_smtp, listen_submission and listen_smtps of env->cfg on
 * env's loop. share: the SMTP server of another loop, whose session limit
 * this one shares (NULL for the first). NULL on error with *error_r set
 * (a line naming the address). */
struct smtp_server *smtp_server_new(struct env *env, struct smtp_server *share,
				    const char **error_r);
/* SIGTERM: stops accepting; idle sessions get 421 and are closed, sessions
 * in a transaction finish it first (at most `grace_ms`). */
void smtp_server_shutdown(struct smtp_server *srv, int64_t grace_ms);
/* Sessions still open. */
unsigned smtp_server_sessions(const struct smtp_server *srv);
void smtp_server_free(struct smtp_server *srv);

#endif
