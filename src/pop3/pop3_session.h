/* One POP3 session (internal to src/pop3/). */
#ifndef PETREL_POP3_SESSION_H
#define PETREL_POP3_SESSION_H

#include <sys/socket.h>

struct env;
struct pop3_server;
struct pop3_session;

enum pop3_listener {
	POP3_LISTENER_PLAIN, /* port 110: plain, STLS offered */
	POP3_LISTENER_POP3S, /* port 995: implicit TLS */
};

/* Starts a session on an accepted socket (owned from now on). */
void pop3_session_new(struct pop3_server *srv, struct env *env, int fd,
		      const struct sockaddr *sa, socklen_t salen,
		      enum pop3_listener listener, const char *local_addr);
/* Shutdown: closes the session now when it waits for a command, else when
 * its current step ends. `force`: close at once. */
void pop3_session_shutdown(struct pop3_session *s, int force);

/* Called by the session (pop3_server.c): opened as it starts; closing
 * as it starts to close, giving its slot (the limits of sessions) to the
 * next client before its last reply is flushed; closed when it is freed,
 * and released at its very end (after a worker job it waited for). */
void pop3_server_session_opened(struct pop3_server *srv,
				struct pop3_session *s);
void pop3_server_session_closing(struct pop3_server *srv,
				 struct pop3_session *s);
void pop3_server_session_closed(struct pop3_server *srv,
				struct pop3_session *s);
void pop3_server_session_released(struct pop3_server *srv);
/* The mailbox lock (RFC 2449 [IN-USE]): one session per account. lock
 * returns 1 when taken, 0 when another session holds it, -1 on ENOMEM. */
int pop3_server_lock(struct pop3_server *srv, const char *account);
void pop3_server_unlock(struct pop3_server *srv, const char *account);

#endif
