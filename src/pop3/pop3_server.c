/*
 * pop3_server: the POP3 listeners (plain with STLS, and implicit TLS), the
 * limits on sessions in all and per client IP, the mailbox locks that give
 * a second session on a mailbox -ERR [IN-USE] (RFC 2449 8.1.2), and the
 * list of live sessions for a clean shutdown. Sessions are pop3_session.c.
 */
#include "pop3/pop3_server.h"
#include "pop3/pop3_session.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "directory/settings.h"
#include "lib/config.h"
#include "lib/env.h"
#include "lib/io.h"
#include "lib/log.h"

#define POP3_SERVER_LISTENERS_MAX (2 * CONFIG_LISTEN_MAX)
#define POP3_BUCKETS 1024

struct pop3_ip_count {
	struct pop3_ip_count *next;
	unsigned count;
	char ip[INET6_ADDRSTRLEN];
};

struct pop3_lock {
	struct pop3_lock *next;
	char account[]; /* lower-case address */
};

struct pop3_listen {
	struct pop3_server *srv;
	struct io_listener *l;
	enum pop3_listener kind;
	char text[64];
};

struct pop3_session_ref {
	struct pop3_session_ref *next;
	struct pop3_session *s;
};

struct pop3_server {
	struct env *env;
	struct pop3_listen listen[POP3_SERVER_LISTENERS_MAX];
	size_t nlisten;
	unsigned sessions; /* counted against the limits */
	unsigned alive;	   /* allocated, including those ending */
	int freed;	   /* pop3_server_free was called */
	struct pop3_ip_count *ips[POP3_BUCKETS];
	struct pop3_lock *locks[POP3_BUCKETS];
	struct pop3_session_ref *live;
	struct io_timer *grace;
};

static unsigned pop3_hash(const char *s)
{
	unsigned h = 5381;

	for (; *s != '\0'; s++)
		h = h * 33 + (unsigned char)*s;
	return h % POP3_BUCKETS;
}

static struct pop3_ip_count *pop3_ip_find(struct pop3_server *srv,
					  const char *ip, int create)
{
	unsigned h = pop3_hash(ip);
	struct pop3_ip_count *c;

	for (c = srv->ips[h]; c != NULL; c = c->next)
		if (strcmp(c->ip, ip) == 0)
			return c;
	if (!create || (c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	snprintf(c->ip, sizeof(c->ip), "%s", ip);
	c->next = srv->ips[h];
	srv->ips[h] = c;
	return c;
}

static void pop3_ip_release(struct pop3_server *srv, const char *ip)
{
	unsigned h = pop3_hash(ip);
	struct pop3_ip_count **pp, *c;

	for (pp = &srv->ips[h]; (c = *pp) != NULL; pp = &c->next) {
		if (strcmp(c->ip, ip) != 0)
			continue;
		if (--c->count == 0) {
			*pp = c->next;
			free(c);
		}
		return;
	}
}

int pop3_server_lock(struct pop3_server *srv, const char *account)
{
	unsigned h = pop3_hash(account);
	size_t len = strlen(account);
	struct pop3_lock *l;

	for (l = srv->locks[h]; l != NULL; l = l->next)
		if (strcmp(l->account, account) == 0)
			return 0;
	l = malloc(sizeof(*l) + len + 1);
	if (l == NULL)
		return -1;
	memcpy(l->account, account, len + 1);
	l->next = srv->locks[h];
	srv->locks[h] = l;
	return 1;
}

void pop3_server_unlock(struct pop3_server *srv, const char *account)
{
	unsigned h = pop3_hash(account);
	struct pop3_lock **pp, *l;

	for (pp = &srv->locks[h]; (l = *pp) != NULL; pp = &l->next) {
		if (strcmp(l->account, account) == 0) {
			*pp = l->next;
			free(l);
			return;
		}
	}
}

static void pop3_addr_text(const struct sockaddr *sa, char *ip, size_t size,
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

/* Refuses a connection over a limit: one line, then close. On the POP3S
 * port the line would not be TLS, so the socket is only closed. */
static void pop3_refuse(int fd, enum pop3_listener kind, const char *ip,
			int port, const char *why)
{
	static const char reply[] =
		"-ERR [SYS/TEMP] Too many connections, try again later\r\n";

	log_write(LOG_POP3, "-", LOG_EVENT,
		  "refused connection from [%s]:%d: %s", ip, port, why);
	if (kind == POP3_LISTENER_PLAIN &&
	    write(fd, reply, sizeof(reply) - 1) < 0) {
		/* The peer is gone already. */
	}
	close(fd);
}

static void pop3_accept_cb(int fd, const struct sockaddr *sa, socklen_t salen,
			   void *arg)
{
	struct pop3_listen *ln = arg;
	struct pop3_server *srv = ln->srv;
	const struct settings *set = srv->env->settings;
	struct pop3_ip_count *c;
	char ip[INET6_ADDRSTRLEN];
	int port;

	pop3_addr_text(sa, ip, sizeof(ip), &port);
	if (srv->env->shutting_down) {
		close(fd);
		return;
	}
	if (srv->sessions >= settings_int(set, SETTING_POP3_MAX_SESSIONS)) {
		pop3_refuse(fd, ln->kind, ip, port,
			    "pop3.max_sessions reached");
		return;
	}
	c = pop3_ip_find(srv, ip, 1);
	if (c == NULL) {
		close(fd);
		return;
	}
	if (c->count >= settings_int(set, SETTING_POP3_MAX_SESSIONS_PER_IP)) {
		if (c->count == 0)
			pop3_ip_release(srv, ip);
		pop3_refuse(fd, ln->kind, ip, port,
			    "pop3.max_sessions_per_ip reached");
		return;
	}
	c->count++;
	srv->sessions++;
	srv->alive++;
	pop3_session_new(srv, srv->env, fd, sa, salen, ln->kind, ln->text);
}

void pop3_server_session_opened(struct pop3_server *srv, struct pop3_session *s)
{
	struct pop3_session_ref *r = malloc(sizeof(*r));

	if (r == NULL)
		return;
	r->s = s;
	r->next = srv->live;
	srv->live = r;
}

void pop3_server_session_closed(struct pop3_server *srv, struct pop3_session *s,
				const char *ip)
{
	struct pop3_session_ref **pp, *r;

	pop3_ip_release(srv, ip);
	srv->sessions--;
	for (pp = &srv->live; (r = *pp) != NULL; pp = &r->next) {
		if (r->s == s) {
			*pp = r->next;
			free(r);
			break;
		}
	}
}

static void pop3_server_destroy(struct pop3_server *srv)
{
	for (int i = 0; i < POP3_BUCKETS; i++) {
		while (srv->ips[i] != NULL) {
			struct pop3_ip_count *c = srv->ips[i];
			srv->ips[i] = c->next;
			free(c);
		}
		while (srv->locks[i] != NULL) {
			struct pop3_lock *l = srv->locks[i];
			srv->locks[i] = l->next;
			free(l);
		}
	}
	io_timer_free(srv->grace);
	free(srv);
}

void pop3_server_session_released(struct pop3_server *srv)
{
	if (--srv->alive == 0 && srv->freed)
		pop3_server_destroy(srv);
}

static int pop3_server_bind(struct pop3_server *srv,
			    const struct config_listen_list *list,
			    enum pop3_listener kind, const char **error_r)
{
	static char err[256];

	for (size_t i = 0; i < list->count; i++) {
		struct pop3_listen *ln = &srv->listen[srv->nlisten];
		const char *e;

		ln->srv = srv;
		ln->kind = kind;
		snprintf(ln->text, sizeof(ln->text), "%s", list->addr[i].text);
		ln->l = io_listener_new(
			srv->env->loop,
			(const struct sockaddr *)&list->addr[i].ss,
			list->addr[i].sslen, pop3_accept_cb, ln, &e);
		if (ln->l == NULL) {
			snprintf(err, sizeof(err), "cannot listen on %s: %s",
				 list->addr[i].text, e);
			*error_r = err;
			return -1;
		}
		srv->nlisten++;
		log_info("listening for POP3 (%s) on %s",
			 kind == POP3_LISTENER_PLAIN ? "pop3" : "pop3s",
			 ln->text);
	}
	return 0;
}

struct pop3_server *pop3_server_new(struct env *env, const char **error_r)
{
	struct pop3_server *srv = calloc(1, sizeof(*srv));

	if (srv == NULL) {
		*error_r = "out of memory";
		return NULL;
	}
	srv->env = env;
	if (env->tls == NULL && env->cfg->listen_pop3s.count > 0) {
		*error_r = "listen_pop3s needs a TLS certificate";
		free(srv);
		return NULL;
	}
	if (pop3_server_bind(srv, &env->cfg->listen_pop3, POP3_LISTENER_PLAIN,
			     error_r) < 0 ||
	    pop3_server_bind(srv, &env->cfg->listen_pop3s, POP3_LISTENER_POP3S,
			     error_r) < 0) {
		pop3_server_free(srv);
		return NULL;
	}
	return srv;
}

static void pop3_server_grace_cb(void *arg)
{
	struct pop3_server *srv = arg;

	while (srv->live != NULL)
		pop3_session_shutdown(srv->live->s, 1);
}

void pop3_server_shutdown(struct pop3_server *srv, int64_t grace_ms)
{
	struct pop3_session_ref *r, *next;

	for (size_t i = 0; i < srv->nlisten; i++) {
		io_listener_free(srv->listen[i].l);
		srv->listen[i].l = NULL;
	}
	srv->nlisten = 0;
	for (r = srv->live; r != NULL; r = next) {
		next = r->next;
		pop3_session_shutdown(r->s, 0);
	}
	if (srv->live != NULL && srv->grace == NULL) {
		srv->grace =
			io_timer_new(srv->env->loop, pop3_server_grace_cb, srv);
		if (srv->grace != NULL)
			io_timer_add(srv->grace, grace_ms);
	}
}

unsigned pop3_server_sessions(const struct pop3_server *srv)
{
	return srv->sessions;
}

void pop3_server_free(struct pop3_server *srv)
{
	if (srv == NULL)
		return;
	for (size_t i = 0; i < srv->nlisten; i++)
		io_listener_free(srv->listen[i].l);
	srv->nlisten = 0;
	io_timer_free(srv->grace);
	srv->grace = NULL;
	/* Keep the server alive while sessions finish their last step. */
	srv->alive++;
	srv->freed = 1;
	while (srv->live != NULL)
		pop3_session_shutdown(srv->live->s, 1);
	pop3_server_session_released(srv);
}
