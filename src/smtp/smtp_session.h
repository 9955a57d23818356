/* One SMTP session (internal to src/smtp/). */
#ifndef PETREL_SMTP_SESSION_H
#define PETREL_SMTP_SESSION_H

#include <sys/socket.h>

struct env;
struct smtp_server;
struct smtp_session;

enum smtp_listener {
	SMTP_LISTENER_MX,	  /* port 25: plain, STARTTLS offered */
	SMTP_LISTENER_SUBMISSION, /* port 587: STARTTLS, AUTH required */
	SMTP_LISTENER_SMTPS,	  /* port 465: implicit TLS, AUTH required */
};

/* Starts a session on an accepted socket (owned from now on). */
void smtp_session_new(struct smtp_server *srv, struct env *env, int fd,
		      const struct sockaddr *sa, socklen_t salen,
		      enum smtp_listener listener, const char *local_addr);
/* Shutdown: closes the session now when it is idle (421), else when its
 * transaction ends. `force`: close at once. */
void smtp_session_shutdown(struct smtp_session *s, int force);

/* Called by the session when it starts and ends (smtp_server.c);
 * closing gives its slot (the limits of sessions) to the next client as
 * the session starts to close, before its last reply is flushed. */
void smtp_server_session_opened(struct smtp_server *srv,
				struct smtp_session *s);
void smtp_server_session_closing(struct smtp_server *srv,
				 struct smtp_session *s);
void smtp_server_session_closed(struct smtp_server *srv, struct smtp_session *s,
				const char *ip);

#endif
