/*
 * smtp_server: the three SMTP listeners (MX, submission, implicit TLS),
 * the limits on sessions in all and per client IP, and the list of live
 * sessions for a clean shutdown. Sessions themselves are smtp_session.c.
 */
#include "smtp/smtp_server.h"
#include "smtp/smtp_session.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "directory/settings.h"
#include "lib/config.h"
#include "lib/clock.h"
#include "lib/env.h"
#include "policy/screen.h"
#include "policy/trust.h"
#include "lib/io.h"
#include "lib/log.h"

#define SMTP_SERVER_LISTENERS_MAX (3 * CONFIG_LISTEN_MAX)
#define SMTP_IP_BUCKETS 1024

struct smtp_ip_count {
	struct smtp_ip_count *next;
	unsigned count;
	char ip[INET6_ADDRSTRLEN];
};

struct smtp_listen {
	struct smtp_server *srv;
	struct io_listener *l;
	enum smtp_listener kind;
	char text[64];
};

struct smtp_session_ref {
	struct smtp_session_ref *next;
	struct smtp_session *s;
};

struct smtp_server {
	struct env *env;
	struct smtp_listen listen[SMTP_SERVER_LISTENERS_MAX];
	size_t nlisten;
	unsigned sessions;
	struct smtp_ip_count *ips[SMTP_IP_BUCKETS];
	struct smtp_session_ref *live;
	struct io_timer *grace;
};

static unsigned smtp_ip_hash(const char *ip)
{
	unsigned h = 5381;

	for (; *ip != '\0'; ip++)
		h = h * 33 + (unsigned char)*ip;
	return h % SMTP_IP_BUCKETS;
}

static struct smtp_ip_count *smtp_ip_find(struct smtp_server *srv,
					  const char *ip, int create)
{
	unsigned h = smtp_ip_hash(ip);
	struct smtp_ip_count *c;

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

static void smtp_ip_release(struct smtp_server *srv, const char *ip)
{
	unsigned h = smtp_ip_hash(ip);
	struct smtp_ip_count **pp, *c;

	for (pp = &srv->ips[h]; (c = *pp) != NULL; pp = &c->next) {
		if (strcmp(c->ip, ip) != 0)
			continue;
		/* A count of 0: an entry made for a connection that was
		 * then refused. */
		if (c->count > 0)
			c->count--;
		if (c->count == 0) {
			*pp = c->next;
			free(c);
		}
		return;
	}
}

/* Numeric text of a peer address. */
static void smtp_addr_text(const struct sockaddr *sa, char *ip, size_t size,
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
static void smtp_refuse(int fd, const char *ip, int port, const char *why)
{
	static const char busy[] =
		"421 4.7.0 Too many connections, try again later\r\n";
	static const char blocked[] =
		"421 4.7.0 Too many failed logins, try again later\r\n";
	int is_block = strncmp(why, "blocked", 7) == 0;

	log_write(LOG_SMTP_IN, "-", LOG_EVENT,
		  "refused connection from %s:%d: %s", ip, port, why);
	if (write(fd, is_block ? blocked : busy,
		  (is_block ? sizeof(blocked) : sizeof(busy)) - 1) < 0) {
		/* The peer is gone already. */
	}
	close(fd);
}

static void smtp_accept_cb(int fd, const struct sockaddr *sa, socklen_t salen,
			   void *arg)
{
	struct smtp_listen *ln = arg;
	struct smtp_server *srv = ln->srv;
	const struct settings *set = srv->env->settings;
	struct smtp_ip_count *c;
	const char *why;
	char ip[INET6_ADDRSTRLEN];
	int port;

	smtp_addr_text(sa, ip, sizeof(ip), &port);
	if (srv->env->shutting_down) {
		close(fd);
		return;
	}
	if (srv->sessions >= settings_int(set, SETTING_SMTP_MAX_SESSIONS)) {
		smtp_refuse(fd, ip, port, "smtp.max_sessions reached");
		return;
	}
	c = smtp_ip_find(srv, ip, 1);
	if (c == NULL) {
		close(fd);
		return;
	}
	if (c->count >= settings_int(set, SETTING_SMTP_MAX_SESSIONS_PER_IP)) {
		if (c->count == 0)
			smtp_ip_release(srv, ip);
		smtp_refuse(fd, ip, port, "smtp.max_sessions_per_ip reached");
		return;
	}
	/* Dynamic screening: blocks, connections per IP and per minute
	 * over SMTP and POP3 together. */
	why = screen_connect(srv->env->screen, set, ip,
			     policy_trust_host(srv->env->trust, sa),
			     clock_now_ms());
	if (why != NULL) {
		if (c->count == 0)
			smtp_ip_release(srv, ip);
		smtp_refuse(fd, ip, port, why);
		return;
	}
	c->count++;
	srv->sessions++;
	smtp_session_new(srv, srv->env, fd, sa, salen, ln->kind, ln->text);
}

/* Called by the session as it frees itself. */
void smtp_server_session_closed(struct smtp_server *srv, struct smtp_session *s,
				const char *ip)
{
	struct smtp_session_ref **pp, *r;

	smtp_ip_release(srv, ip);
	screen_disconnect(srv->env->screen, ip);
	srv->sessions--;
	for (pp = &srv->live; (r = *pp) != NULL; pp = &r->next) {
		if (r->s == s) {
			*pp = r->next;
			free(r);
			break;
		}
	}
}

/* Sessions register themselves so shutdown can reach them. */
void smtp_server_session_opened(struct smtp_server *srv, struct smtp_session *s)
{
	struct smtp_session_ref *r = malloc(sizeof(*r));

	if (r == NULL)
		return;
	r->s = s;
	r->next = srv->live;
	srv->live = r;
}

static int smtp_server_bind(struct smtp_server *srv,
			    const struct config_listen_list *list,
			    enum smtp_listener kind, const char **error_r)
{
	static char err[256];

	for (size_t i = 0; i < list->count; i++) {
		struct smtp_listen *ln = &srv->listen[srv->nlisten];
		const char *e;

		ln->srv = srv;
		ln->kind = kind;
		snprintf(ln->text, sizeof(ln->text), "%s", list->addr[i].text);
		ln->l = io_listener_new(
			srv->env->loop,
			(const struct sockaddr *)&list->addr[i].ss,
			list->addr[i].sslen, smtp_accept_cb, ln, &e);
		if (ln->l == NULL) {
			snprintf(err, sizeof(err), "cannot listen on %s: %s",
				 list->addr[i].text, e);
			*error_r = err;
			return -1;
		}
		srv->nlisten++;
		log_info("listening for SMTP (%s) on %s",
			 kind == SMTP_LISTENER_MX	    ? "mx"
			 : kind == SMTP_LISTENER_SUBMISSION ? "submission"
							    : "smtps",
			 ln->text);
	}
	return 0;
}

struct smtp_server *smtp_server_new(struct env *env, const char **error_r)
{
	struct smtp_server *srv = calloc(1, sizeof(*srv));

	if (srv == NULL) {
		*error_r = "out of memory";
		return NULL;
	}
	srv->env = env;
	if (smtp_server_bind(srv, &env->cfg->listen_smtp, SMTP_LISTENER_MX,
			     error_r) < 0 ||
	    smtp_server_bind(srv, &env->cfg->listen_submission,
			     SMTP_LISTENER_SUBMISSION, error_r) < 0 ||
	    smtp_server_bind(srv, &env->cfg->listen_smtps, SMTP_LISTENER_SMTPS,
			     error_r) < 0) {
		smtp_server_free(srv);
		return NULL;
	}
	return srv;
}

static void smtp_server_grace_cb(void *arg)
{
	struct smtp_server *srv = arg;

	/* Grace is over: whatever is still open is closed now. */
	while (srv->live != NULL)
		smtp_session_shutdown(srv->live->s, 1);
}

void smtp_server_shutdown(struct smtp_server *srv, int64_t grace_ms)
{
	struct smtp_session_ref *r, *next;

	for (size_t i = 0; i < srv->nlisten; i++) {
		io_listener_free(srv->listen[i].l);
		srv->listen[i].l = NULL;
	}
	srv->nlisten = 0;
	for (r = srv->live; r != NULL; r = next) {
		next = r->next;
		smtp_session_shutdown(r->s, 0);
	}
	if (srv->live != NULL && srv->grace == NULL) {
		srv->grace =
			io_timer_new(srv->env->loop, smtp_server_grace_cb, srv);
		if (srv->grace != NULL)
			io_timer_add(srv->grace, grace_ms);
	}
}

unsigned smtp_server_sessions(const struct smtp_server *srv)
{
	return srv->sessions;
}

void smtp_server_free(struct smtp_server *srv)
{
	if (srv == NULL)
		return;
	for (size_t i = 0; i < srv->nlisten; i++)
		io_listener_free(srv->listen[i].l);
	while (srv->live != NULL)
		smtp_session_shutdown(srv->live->s, 1);
	for (int i = 0; i < SMTP_IP_BUCKETS; i++) {
		while (srv->ips[i] != NULL) {
			struct smtp_ip_count *c = srv->ips[i];
			srv->ips[i] = c->next;
			free(c);
		}
	}
	io_timer_free(srv->grace);
	free(srv);
}
