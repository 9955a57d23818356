/* What the SMTP and POP3 servers share: listeners, session limits, the
 * list of live sessions and a graceful shutdown. */
#ifndef PETREL_SERVER_H
#define PETREL_SERVER_H

#include <stdint.h>
#include <sys/socket.h>

#include "directory/settings.h"
#include "lib/log.h"
#include "policy/screen.h"

struct config_listen_list;
struct env;
struct server;

/* What a protocol tells the shared server about itself. */
struct server_ops {
	const char *proto; /* "SMTP": "listening for SMTP (mx) ..." */
	const char *name;  /* "smtp": "smtp.max_sessions reached" */
	enum log_file log; /* where refusals are logged */
	int log_brackets;  /* the refusal logs the IP as "[ip]" */
	enum screen_service service;
	enum settings_id max_sessions; /* sessions of this server in all */
	const char *const *kind_names; /* of each listener kind */
	/* The line (no CRLF) a refused client gets: too many connections,
	 * or its IP is blocked. */
	const char *busy_line;
	const char *blocked_line;
	/* Listener kinds (bits) where a refused client gets no line (it
	 * expects TLS first). */
	unsigned quiet_kinds;
	/* Starts a session on fd. The session calls server_session_opened()
	 * before anything that may end it, and server_session_closed() when
	 * it is freed. */
	void (*session_new)(void *ctx, int fd, const struct sockaddr *sa,
			    socklen_t salen, int kind, const char *local_addr);
	/* SIGTERM (force 0: finish the current step, then close) or the end
	 * of the grace (force 1: free now, so server_session_closed). */
	void (*session_shutdown)(void *session, int force);
};

/* A server of ops on env's loop, whose session_new gets ctx. With share
 * (the same protocol's server of another loop), both count their sessions
 * against ops->max_sessions together. NULL when out of memory. */
struct server *server_new(struct env *env, const struct server_ops *ops,
			  void *ctx, struct server *share);
/* Listens on every address of list for listener kind. -1 with *error_r
 * (static text naming the address), or 0. */
int server_listen(struct server *srv, const struct config_listen_list *list,
		  int kind, const char **error_r);

/* The session that ops->session_new is starting now. */
void server_session_opened(struct server *srv, void *session);
/* The session ends: its slot (among ops->max_sessions and the per-IP
 * counts of policy/screen.c) is given to the next client at once, though
 * its last reply may still be on its way. Idempotent. */
void server_session_closing(struct server *srv, void *session);
/* The session is freed: released if it was not, and off the live list. */
void server_session_closed(struct server *srv, void *session);

/* SIGTERM: stops accepting and asks each session to end
 * (ops->session_shutdown), forcing those left after grace_ms. */
void server_shutdown(struct server *srv, int64_t grace_ms);
/* Sessions not yet freed (a session saying goodbye still counts). */
unsigned server_sessions(const struct server *srv);
/* Closes the listeners and frees every session still open. Accepts
 * NULL. */
void server_free(struct server *srv);

#endif
