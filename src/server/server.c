/*
 * server: the part the SMTP and POP3 servers share. Owns a protocol's
 * listeners, the limit on its sessions in all, the list of its live
 * sessions and the graceful shutdown. The limits per client IP are counted
 * once, in policy/screen.c, for every protocol together; the protocol's
 * own part (its sessions, its words) comes in through server_ops.
 */
#include "server/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/clock.h"
#include "lib/config.h"
#include "lib/env.h"
#include "lib/io.h"
#include "policy/trust.h"

#define SERVER_LISTENERS_MAX (3 * CONFIG_LISTEN_MAX)

struct server_listen {
	struct server *srv;
	struct io_listener *l;
	int kind;
	char text[64];
};

/* A session from its accept to its free. */
struct server_conn {
	struct server_conn *next;
	void *session;
	int counted; /* holds a slot: not yet released */
	char ip[INET6_ADDRSTRLEN];
};

/* Sessions counted against ops->max_sessions, by the servers of every
 * loop together. */
struct server_slots {
	atomic_uint n;
	atomic_uint refs;
};

struct server {
	struct env *env;
	const struct server_ops *ops;
	void *ctx;
	struct server_listen listen[SERVER_LISTENERS_MAX];
	size_t nlisten;
	struct server_slots *slots;
	unsigned nlive; /* sessions not yet freed */
	struct server_conn *live;
	struct server_conn *opening; /* in ops->session_new, not claimed */
	struct io_timer *grace;
};

/* Numeric text of a peer address. */
static void server_addr_text(const struct sockaddr *sa, char *ip, size_t size,
			     int *port_r)
{
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)sa;
		inet_ntop(AF_INET6, &s6->sin6_addr, ip, (socklen_t)size);
		*port_r = ntohs(s6->sin6_port);
	} else {
		const struct sockaddr_in *s4 = (const void *)sa;
		inet_ntop(AF_INET, &s4->sin_addr, ip, (socklen_t)size);
		*port_r = ntohs(s4->sin_port);
	}
}

/* Refuses a connection over a limit: one line, then close. The socket is
 * fresh, so the short write fits in its buffer. */
static void server_refuse(struct server *srv, int fd, int kind, const char *ip,
			  int port, const char *why)
{
	const struct server_ops *ops = srv->ops;
	const char *line = strncmp(why, "blocked", 7) == 0 ? ops->blocked_line
							   : ops->busy_line;
	char text[256];
	int n;

	log_write(ops->log, "-", LOG_EVENT,
		  "refused connection from %s%s%s:%d: %s",
		  ops->log_brackets ? "[" : "", ip,
		  ops->log_brackets ? "]" : "", port, why);
	n = snprintf(text, sizeof(text), "%s\r\n", line);
	if (!(ops->quiet_kinds & (1u << kind)) && n > 0 &&
	    (size_t)n < sizeof(text) && write(fd, text, (size_t)n) < 0) {
		/* The peer is gone already. */
	}
	close(fd);
}

static void server_accept_cb(int fd, const struct sockaddr *sa, socklen_t salen,
			     void *arg)
{
	struct server_listen *ln = arg;
	struct server *srv = ln->srv;
	const struct server_ops *ops = srv->ops;
	const struct settings *set = srv->env->settings;
	struct server_conn *c;
	const char *why;
	char ip[INET6_ADDRSTRLEN], reason[64];
	int port;

	server_addr_text(sa, ip, sizeof(ip), &port);
	if (srv->env->shutting_down) {
		close(fd);
		return;
	}
	/* Taken first, given back when refused: the loops count at once. */
	if (atomic_fetch_add(&srv->slots->n, 1) >=
	    settings_int(set, ops->max_sessions)) {
		atomic_fetch_sub(&srv->slots->n, 1);
		snprintf(reason, sizeof(reason), "%s.max_sessions reached",
			 ops->name);
		server_refuse(srv, fd, ln->kind, ip, port, reason);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		atomic_fetch_sub(&srv->slots->n, 1);
		close(fd);
		return;
	}
	/* The protocol's sessions per IP, then dynamic screening (blocks,
	 * connections per IP and per minute) over all protocols. */
	why = screen_connect(srv->env->screen, set, ops->service, ip,
			     policy_trust_host(srv->env->trust, sa),
			     clock_now_ms());
	if (why != NULL) {
		free(c);
		atomic_fetch_sub(&srv->slots->n, 1);
		server_refuse(srv, fd, ln->kind, ip, port, why);
		return;
	}
	snprintf(c->ip, sizeof(c->ip), "%s", ip);
	c->counted = 1;
	srv->opening = c;
	ops->session_new(srv->ctx, fd, sa, salen, ln->kind, ln->text);
	if (srv->opening == c) {
		/* The session never started (out of memory). */
		srv->opening = NULL;
		screen_disconnect(srv->env->screen, ops->service, c->ip);
		atomic_fetch_sub(&srv->slots->n, 1);
		free(c);
	}
}

void server_session_opened(struct server *srv, void *session)
{
	struct server_conn *c = srv->opening;

	if (c == NULL)
		return;
	srv->opening = NULL;
	c->session = session;
	c->next = srv->live;
	srv->live = c;
	srv->nlive++;
}

static struct server_conn **server_find(struct server *srv, void *session)
{
	struct server_conn **pp;

	for (pp = &srv->live; *pp != NULL; pp = &(*pp)->next)
		if ((*pp)->session == session)
			return pp;
	return NULL;
}

static void server_release(struct server *srv, struct server_conn *c)
{
	if (!c->counted)
		return;
	c->counted = 0;
	screen_disconnect(srv->env->screen, srv->ops->service, c->ip);
	atomic_fetch_sub(&srv->slots->n, 1);
}

void server_session_closing(struct server *srv, void *session)
{
	struct server_conn **pp = server_find(srv, session);

	if (pp != NULL)
		server_release(srv, *pp);
}

void server_session_closed(struct server *srv, void *session)
{
	struct server_conn **pp = server_find(srv, session), *c;

	if (pp == NULL)
		return;
	c = *pp;
	server_release(srv, c);
	*pp = c->next;
	srv->nlive--;
	free(c);
}

struct server *server_new(struct env *env, const struct server_ops *ops,
			  void *ctx, struct server *share)
{
	struct server *srv = calloc(1, sizeof(*srv));

	if (srv == NULL)
		return NULL;
	if (share != NULL) {
		srv->slots = share->slots;
	} else if ((srv->slots = calloc(1, sizeof(*srv->slots))) == NULL) {
		free(srv);
		return NULL;
	}
	atomic_fetch_add(&srv->slots->refs, 1);
	srv->env = env;
	srv->ops = ops;
	srv->ctx = ctx;
	return srv;
}

int server_listen(struct server *srv, const struct config_listen_list *list,
		  int kind, const char **error_r)
{
	static char err[256];

	for (size_t i = 0; i < list->count; i++) {
		struct server_listen *ln;
		const char *e;

		if (srv->nlisten == SERVER_LISTENERS_MAX) {
			*error_r = "too many listeners";
			return -1;
		}
		ln = &srv->listen[srv->nlisten];
		ln->srv = srv;
		ln->kind = kind;
		snprintf(ln->text, sizeof(ln->text), "%s", list->addr[i].text);
		ln->l = io_listener_new(
			srv->env->loop,
			(const struct sockaddr *)&list->addr[i].ss,
			list->addr[i].sslen,
			srv->env->cfg->loops > 1 ? IO_LISTEN_SHARED : 0,
			server_accept_cb, ln, &e);
		if (ln->l == NULL) {
			snprintf(err, sizeof(err), "cannot listen on %s: %s",
				 list->addr[i].text, e);
			*error_r = err;
			return -1;
		}
		srv->nlisten++;
		if (srv->env->loop_index == 0)
			log_info("listening for %s (%s) on %s", srv->ops->proto,
				 srv->ops->kind_names[kind], ln->text);
	}
	return 0;
}

static void server_close_listeners(struct server *srv)
{
	for (size_t i = 0; i < srv->nlisten; i++) {
		io_listener_free(srv->listen[i].l);
		srv->listen[i].l = NULL;
	}
	srv->nlisten = 0;
}

/* Frees every session still open; each leaves the list as it goes. */
static void server_force_all(struct server *srv)
{
	while (srv->live != NULL) {
		struct server_conn *c = srv->live;

		srv->ops->session_shutdown(c->session, 1);
		if (srv->live == c) {
			/* A session that did not say it closed. */
			server_session_closed(srv, c->session);
		}
	}
}

static void server_grace_cb(void *arg)
{
	/* Grace is over: whatever is still open is closed now. */
	server_force_all(arg);
}

void server_shutdown(struct server *srv, int64_t grace_ms)
{
	struct server_conn *c, *next;

	server_close_listeners(srv);
	for (c = srv->live; c != NULL; c = next) {
		next = c->next;
		srv->ops->session_shutdown(c->session, 0);
	}
	if (srv->live != NULL && srv->grace == NULL) {
		srv->grace = io_timer_new(srv->env->loop, server_grace_cb, srv);
		if (srv->grace != NULL)
			io_timer_add(srv->grace, grace_ms);
	}
}

unsigned server_sessions(const struct server *srv)
{
	return srv->nlive;
}

void server_free(struct server *srv)
{
	if (srv == NULL)
		return;
	server_close_listeners(srv);
	io_timer_free(srv->grace);
	srv->grace = NULL;
	server_force_all(srv);
	if (atomic_fetch_sub(&srv->slots->refs, 1) == 1)
		free(srv->slots);
	free(srv);
}
