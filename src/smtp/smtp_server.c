/*
 * smtp_server: the three SMTP listeners (MX, submission, implicit TLS)
 * and what SMTP tells the shared server (server/server.c) about itself:
 * its limits, its refusal lines, how its sessions start and end. Sessions
 * themselves are smtp_session.c.
 */
#include "smtp/smtp_server.h"
#include "smtp/smtp_session.h"

#include <stdlib.h>
#include <unistd.h>

#include "lib/config.h"
#include "lib/env.h"
#include "server/server.h"

struct smtp_server {
	struct env *env;
	struct server *core;
};

static const char *const smtp_kind_names[] = {
	[SMTP_LISTENER_MX] = "mx",
	[SMTP_LISTENER_SUBMISSION] = "submission",
	[SMTP_LISTENER_SMTPS] = "smtps",
};

static void smtp_server_session_new(void *ctx, int fd,
				    const struct sockaddr *sa, socklen_t salen,
				    int kind, const char *local_addr)
{
	struct smtp_server *srv = ctx;

	smtp_session_new(srv, srv->env, fd, sa, salen, (enum smtp_listener)kind,
			 local_addr);
}

static void smtp_server_session_shutdown(void *session, int force)
{
	smtp_session_shutdown(session, force);
}

static const struct server_ops smtp_server_ops = {
	.proto = "SMTP",
	.name = "smtp",
	.log = LOG_SMTP_IN,
	.log_brackets = 0,
	.service = SCREEN_SMTP,
	.max_sessions = SETTING_SMTP_MAX_SESSIONS,
	.kind_names = smtp_kind_names,
	.busy_line = "421 4.7.0 Too many connections, try again later",
	.blocked_line = "421 4.7.0 Too many failed logins, try again later",
	.quiet_kinds = 0,
	.session_new = smtp_server_session_new,
	.session_shutdown = smtp_server_session_shutdown,
};

void smtp_server_session_opened(struct smtp_server *srv, struct smtp_session *s)
{
	server_session_opened(srv->core, s);
}

void smtp_server_session_closing(struct smtp_server *srv,
				 struct smtp_session *s)
{
	server_session_closing(srv->core, s);
}

void smtp_server_session_closed(struct smtp_server *srv, struct smtp_session *s,
				const char *ip)
{
	server_session_closed(srv->core, s);
}

struct smtp_server *smtp_server_new(struct env *env, struct smtp_server *share,
				    const char **error_r)
{
	struct smtp_server *srv = calloc(1, sizeof(*srv));

	if (srv == NULL ||
	    (srv->core = server_new(env, &smtp_server_ops, srv,
				    share != NULL ? share->core : NULL)) ==
		    NULL) {
		free(srv);
		*error_r = "out of memory";
		return NULL;
	}
	srv->env = env;
	if (server_listen(srv->core, &env->cfg->listen_smtp, SMTP_LISTENER_MX,
			  error_r) < 0 ||
	    server_listen(srv->core, &env->cfg->listen_submission,
			  SMTP_LISTENER_SUBMISSION, error_r) < 0 ||
	    server_listen(srv->core, &env->cfg->listen_smtps,
			  SMTP_LISTENER_SMTPS, error_r) < 0) {
		smtp_server_free(srv);
		return NULL;
	}
	return srv;
}

void smtp_server_shutdown(struct smtp_server *srv, int64_t grace_ms)
{
	server_shutdown(srv->core, grace_ms);
}

unsigned smtp_server_sessions(const struct smtp_server *srv)
{
	return server_sessions(srv->core);
}

void smtp_server_free(struct smtp_server *srv)
{
	if (srv == NULL)
		return;
	server_free(srv->core);
	free(srv);
}
