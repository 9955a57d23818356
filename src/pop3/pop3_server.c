/*
 * pop3_server: the POP3 listeners (plain with STLS, and implicit TLS),
 * what POP3 tells the shared server (server/server.c) about itself, and
 * the mailbox locks that give a second session on a mailbox -ERR [IN-USE]
 * (RFC 2449 8.1.2). Sessions are pop3_session.c.
 */
#include "pop3/pop3_server.h"
#include "pop3/pop3_session.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "lib/config.h"
#include "lib/env.h"
#include "server/server.h"

#define POP3_BUCKETS 1024

struct pop3_lock {
	struct pop3_lock *next;
	char account[]; /* lower-case address */
};

/* The mailboxes in use, by the sessions of every loop. */
struct pop3_locks {
	pthread_mutex_t lock;
	atomic_uint refs;
	struct pop3_lock *b[POP3_BUCKETS];
};

struct pop3_server {
	struct env *env;
	struct server *core;
	unsigned alive; /* sessions allocated, including those ending */
	int freed;	/* pop3_server_free was called */
	struct pop3_locks *locks;
};

static const char *const pop3_kind_names[] = {
	[POP3_LISTENER_PLAIN] = "pop3",
	[POP3_LISTENER_POP3S] = "pop3s",
};

static void pop3_server_session_new(void *ctx, int fd,
				    const struct sockaddr *sa, socklen_t salen,
				    int kind, const char *local_addr)
{
	struct pop3_server *srv = ctx;

	pop3_session_new(srv, srv->env, fd, sa, salen, (enum pop3_listener)kind,
			 local_addr);
}

static void pop3_server_session_shutdown(void *session, int force)
{
	pop3_session_shutdown(session, force);
}

static const struct server_ops pop3_server_ops = {
	.proto = "POP3",
	.name = "pop3",
	.log = LOG_POP3,
	.log_brackets = 1,
	.service = SCREEN_POP3,
	.max_sessions = SETTING_POP3_MAX_SESSIONS,
	.kind_names = pop3_kind_names,
	.busy_line = "-ERR [SYS/TEMP] Too many connections, try again later",
	.blocked_line = "-ERR [SYS/TEMP] Too many failed logins, try again "
			"later",
	/* On the POP3S port the line would not be TLS: only close. */
	.quiet_kinds = 1u << POP3_LISTENER_POP3S,
	.session_new = pop3_server_session_new,
	.session_shutdown = pop3_server_session_shutdown,
};

static unsigned pop3_hash(const char *s)
{
	unsigned h = 5381;

	for (; *s != '\0'; s++)
		h = h * 33 + (unsigned char)*s;
	return h % POP3_BUCKETS;
}

int pop3_server_lock(struct pop3_server *srv, const char *account)
{
	struct pop3_locks *ls = srv->locks;
	unsigned h = pop3_hash(account);
	size_t len = strlen(account);
	struct pop3_lock *l;
	int r = 1;

	pthread_mutex_lock(&ls->lock);
	for (l = ls->b[h]; l != NULL; l = l->next)
		if (strcmp(l->account, account) == 0)
			break;
	if (l != NULL) {
		r = 0;
	} else if ((l = malloc(sizeof(*l) + len + 1)) == NULL) {
		r = -1;
	} else {
		memcpy(l->account, account, len + 1);
		l->next = ls->b[h];
		ls->b[h] = l;
	}
	pthread_mutex_unlock(&ls->lock);
	return r;
}

void pop3_server_unlock(struct pop3_server *srv, const char *account)
{
	struct pop3_locks *ls = srv->locks;
	unsigned h = pop3_hash(account);
	struct pop3_lock **pp, *l;

	pthread_mutex_lock(&ls->lock);
	for (pp = &ls->b[h]; (l = *pp) != NULL; pp = &l->next) {
		if (strcmp(l->account, account) == 0) {
			*pp = l->next;
			free(l);
			break;
		}
	}
	pthread_mutex_unlock(&ls->lock);
}

void pop3_server_session_opened(struct pop3_server *srv, struct pop3_session *s)
{
	srv->alive++;
	server_session_opened(srv->core, s);
}

void pop3_server_session_closing(struct pop3_server *srv,
				 struct pop3_session *s)
{
	if (srv->core != NULL)
		server_session_closing(srv->core, s);
}

void pop3_server_session_closed(struct pop3_server *srv, struct pop3_session *s)
{
	if (srv->core != NULL)
		server_session_closed(srv->core, s);
}

static void pop3_locks_unref(struct pop3_locks *ls)
{
	if (ls == NULL || atomic_fetch_sub(&ls->refs, 1) != 1)
		return;
	for (int i = 0; i < POP3_BUCKETS; i++) {
		while (ls->b[i] != NULL) {
			struct pop3_lock *l = ls->b[i];
			ls->b[i] = l->next;
			free(l);
		}
	}
	pthread_mutex_destroy(&ls->lock);
	free(ls);
}

static void pop3_server_destroy(struct pop3_server *srv)
{
	pop3_locks_unref(srv->locks);
	free(srv);
}

void pop3_server_session_released(struct pop3_server *srv)
{
	if (--srv->alive == 0 && srv->freed)
		pop3_server_destroy(srv);
}

struct pop3_server *pop3_server_new(struct env *env, struct pop3_server *share,
				    const char **error_r)
{
	struct pop3_server *srv;

	if (env->tls == NULL && env->cfg->listen_pop3s.count > 0) {
		*error_r = "listen_pop3s needs a TLS certificate";
		return NULL;
	}
	srv = calloc(1, sizeof(*srv));
	if (srv == NULL)
		goto nomem;
	if (share != NULL) {
		srv->locks = share->locks;
	} else {
		srv->locks = calloc(1, sizeof(*srv->locks));
		if (srv->locks == NULL)
			goto nomem;
		pthread_mutex_init(&srv->locks->lock, NULL);
	}
	atomic_fetch_add(&srv->locks->refs, 1);
	srv->core = server_new(env, &pop3_server_ops, srv,
			       share != NULL ? share->core : NULL);
	if (srv->core == NULL)
		goto nomem;
	srv->env = env;
	if (server_listen(srv->core, &env->cfg->listen_pop3,
			  POP3_LISTENER_PLAIN, error_r) < 0 ||
	    server_listen(srv->core, &env->cfg->listen_pop3s,
			  POP3_LISTENER_POP3S, error_r) < 0) {
		pop3_server_free(srv);
		return NULL;
	}
	return srv;
nomem:
	if (srv != NULL)
		pop3_locks_unref(srv->locks);
	free(srv);
	*error_r = "out of memory";
	return NULL;
}

void pop3_server_shutdown(struct pop3_server *srv, int64_t grace_ms)
{
	server_shutdown(srv->core, grace_ms);
}

unsigned pop3_server_sessions(const struct pop3_server *srv)
{
	return server_sessions(srv->core);
}

void pop3_server_free(struct pop3_server *srv)
{
	if (srv == NULL)
		return;
	/* Sessions waiting on a worker job outlive the shared server: keep
	 * this one (the locks) until the last of them ends. */
	srv->alive++;
	srv->freed = 1;
	server_free(srv->core);
	srv->core = NULL;
	pop3_server_session_released(srv);
}
