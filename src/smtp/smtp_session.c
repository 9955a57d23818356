/*
 * smtp_session: one SMTP conversation (RFC 5321) from greeting to close.
 * Owns the session state machine, the command table (in the style of
 * Postfix's smtpd_cmd_table), the reply function and the transcript. It
 * decides nothing itself: policy/ gives verdicts, directory/ answers who
 * is local, and the worker pool does password checks and durable commits.
 */
#include "smtp/smtp_session.h"
#include "smtp/smtp_filter.h"
#include "smtp/smtp_session_int.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "directory/directory.h"
#include "directory/settings.h"
#include "lib/addr.h"
#include "lib/buf.h"
#include "lib/dns.h"
#include "lib/addrlist.h"
#include "lib/clock.h"
#include "lib/config.h"
#include "lib/env.h"
#include "lib/header.h"
#include "lib/io.h"
#include "lib/io_worker.h"
#include "lib/log.h"
#include "policy/hijacking.h"
#include "policy/policy.h"
#include "policy/screening.h"
#include "policy/trust.h"
#include "smtp/smtp_commit.h"
#include "smtp/smtp_data.h"
#include "smtp/smtp_lookup.h"
#include "smtp/smtp_parse.h"
#include "smtp/smtp_space.h"
#include "smtp/smtp_spam.h"
#include "server/server_line.h"
#include "lib/sasl.h"

struct smtp_auth_job {
	struct smtp_session *s;
	char user[SASL_FIELD_MAX];
	char pass[SASL_FIELD_MAX];
	char ip[INET6_ADDRSTRLEN];
	char mech[8];
	int64_t now;
	const struct screen *screen;
	struct screen *blocks; /* the same, to ask whether ip is blocked */
	int trusted;
	/* out */
	int blocked; /* blocked since the session began: nothing checked */
	int result;
	const char *reason;
	struct directory_account account;
	unsigned char fp[SCREEN_FP_SIZE]; /* of what was tried */
};

static const char *const smtp_listener_names[] = {"smtp", "submission",
						  "smtps"};

/*
 * Replies queued for a client before its commands are read no more, until
 * they are written (OpenSMTPD pauses at 64 KB too): a client that sends
 * and never reads fills its socket buffers, not the daemon.
 */
#define SMTP_OUTPUT_HIGH (64 * 1024)

static void smtp_io_cb(struct io *io, enum io_event ev, void *arg);
static void smtp_process(struct smtp_session *s);
static void smtp_session_free(struct smtp_session *s);
static void smtp_wait_output(struct smtp_session *s);

const struct settings *smtp_session_settings(const struct smtp_session *s)
{
	return s->env->settings;
}

int64_t smtp_session_setting(const struct smtp_session *s, enum settings_id id)
{
	return settings_int(smtp_session_settings(s), id);
}

/*
 * Writes one transcript line, or holds or counts it (struct log_budget):
 * past log.max_lines_per_session, the lines of a mail transaction wait
 * for its DATA (and are forgotten when it ends without), events and the
 * lines of a message are written, the commands that trace mail
 * (SMTP_F_TRACE) with their replies and 4xx/5xx replies up to as many
 * again, and the rest is counted. The one place that decides what of a
 * session reaches the log.
 */
static void smtp_log_line(struct smtp_session *s, const char *dir,
			  const char *text)
{
	int64_t max =
		smtp_session_setting(s, SETTING_LOG_MAX_LINES_PER_SESSION);
	int keep = LOG_KEEP_NO;

	if ((s->tx != NULL ? !s->tx->log_released : s->log_txn) &&
	    log_budget_over(&s->log_budget, max)) {
		log_budget_hold(&s->log_budget, dir, text);
		return;
	}
	if (strcmp(dir, LOG_EVENT) == 0 ||
	    (s->tx != NULL && s->tx->log_released))
		keep = LOG_KEEP_ALWAYS;
	else if (s->log_trace || (strcmp(dir, LOG_TO_PEER) == 0 &&
				  (text[0] == '4' || text[0] == '5')))
		keep = LOG_KEEP;
	if (log_budget_admit(&s->log_budget, LOG_SMTP_IN, s->id, max, dir, keep,
			     strlen(text)))
		log_write(LOG_SMTP_IN, s->id, dir, "%s", text);
}

void smtp_session_log(struct smtp_session *s, const char *dir, const char *fmt,
		      ...)
{
	char text[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	smtp_log_line(s, dir, text);
}

/* Logs a line from the client: a command, which traces mail when trace
 * is 1 (its replies are then kept past the transcript limit too), or
 * starts a transaction (MAIL) when it is 2. */
static void smtp_log_peer(struct smtp_session *s, int trace, const char *fmt,
			  ...) __attribute__((format(printf, 3, 4)));
static void smtp_log_peer(struct smtp_session *s, int trace, const char *fmt,
			  ...)
{
	char text[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	s->log_trace = trace != 0;
	s->log_txn = trace == 2;
	smtp_log_line(s, LOG_FROM_PEER, text);
}

/* Sends one reply line and logs it. Replies may quote client text, so the
 * log copy is sanitized. */
void smtp_session_reply(struct smtp_session *s, const char *fmt, ...)
{
	char line[SMTP_REPLY_MAX], safe[SMTP_REPLY_MAX * 2];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line))
		n = sizeof(line) - 1;
	log_sanitize(safe, sizeof(safe), line, (size_t)n);
	smtp_log_line(s, LOG_TO_PEER, safe);
	if ((line[0] == '4' || line[0] == '5') && strncmp(line, "421", 3) != 0)
		s->errors++;
	io_write(s->io, line, (size_t)n);
	io_write(s->io, "\r\n", 2);
}

static void smtp_deadline_cb(void *arg);

/*
 * What each state is: its name in the log, the setting that bounds it
 * while it reads input, and whether it reads input. The states that read
 * nothing end by other means: a worker's answer, a timer, or the write
 * timeout. Every change of state goes through smtp_enter_state().
 */
static const struct smtp_state_info {
	const char *name;
	int reads;
	enum settings_id timeout;
} smtp_states[] = {
	[SMTP_STATE_HANDSHAKE] = {"TLS handshake", 1,
				  SETTING_SMTP_TIMEOUT_IDLE},
	[SMTP_STATE_STARTTLS] = {"STARTTLS reply", 0, SETTINGS_COUNT},
	[SMTP_STATE_COMMAND] = {"command", 1, SETTING_SMTP_TIMEOUT_IDLE},
	[SMTP_STATE_AUTH] = {"AUTH exchange", 1, SETTING_SMTP_TIMEOUT_COMMAND},
	[SMTP_STATE_DATA] = {"DATA", 1, SETTING_SMTP_TIMEOUT_DATA},
	[SMTP_STATE_BUSY] = {"waiting", 0, SETTINGS_COUNT},
	[SMTP_STATE_QUIT] = {"closing", 0, SETTINGS_COUNT},
};

/* The timeout of the state the session is in (a command inside a
 * transaction has smtp.timeout_command). */
static int64_t smtp_timeout_ms(struct smtp_session *s)
{
	enum settings_id id = smtp_states[s->state].timeout;

	if (s->state == SMTP_STATE_COMMAND && s->tx != NULL)
		id = SETTING_SMTP_TIMEOUT_COMMAND;
	if (id == SETTINGS_COUNT)
		id = SETTING_SMTP_TIMEOUT_IDLE;
	return smtp_session_setting(s, id) * 1000;
}

/* Starts the timeout of the state again, counted from now: called for
 * each whole line (a command, a SASL line, a line of DATA) and when the
 * state or a TLS handshake starts, never for bytes that trickle in
 * without ending a line (those restart the read timeout only). */
static void smtp_restart_deadline(struct smtp_session *s)
{
	if (s->deadline == NULL)
		s->deadline = io_timer_new(s->env->loop, smtp_deadline_cb, s);
	if (s->deadline != NULL)
		io_timer_add(s->deadline, smtp_timeout_ms(s));
}

static void smtp_set_timeout(struct smtp_session *s)
{
	io_set_read_timeout(s->io, smtp_timeout_ms(s));
	smtp_restart_deadline(s);
}

/* Enters state st: a state that reads input gets its timeout (counted
 * from now), one that does not stops reading. Reading starts again when
 * the caller resumes the input (io_resume, then smtp_process). */
static void smtp_enter_state(struct smtp_session *s, enum smtp_state st)
{
	s->state = st;
	if (smtp_states[st].reads)
		smtp_set_timeout(s);
	else
		io_pause(s->io);
}

/* A new transaction (an accepted MAIL). NULL on ENOMEM. */
static struct smtp_tx *smtp_tx_new(void)
{
	struct smtp_tx *tx = calloc(1, sizeof(*tx));

	if (tx == NULL)
		return NULL;
	buf_init(&tx->msg, 0);
	smtp_spill_init(&tx->spill);
	return tx;
}

/* Forgets the transaction (RSET, EHLO, after DATA); none is fine. */
static void smtp_reset_transaction(struct smtp_session *s)
{
	struct smtp_tx *tx = s->tx;

	/* Lines held past the transcript limit: it ended without DATA. */
	log_budget_discard(&s->log_budget);
	if (tx == NULL)
		return;
	smtp_hijack_reset(s);
	free(tx->rcpts);
	smtp_rcpt_set_deinit(&tx->rcpt_set);
	buf_deinit(&tx->msg);
	smtp_spill_reset(&tx->spill);
	smtp_filter_plan_free(tx->filter_plan);
	free(tx);
	s->tx = NULL;
}

/* Sends a last reply and closes once it is written. */
void smtp_session_close(struct smtp_session *s, const char *fmt, ...)
{
	char line[SMTP_REPLY_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	smtp_session_reply(s, "%s", line);
	smtp_enter_state(s, SMTP_STATE_QUIT);
	/* The close timer: a client that never reads this line does not
	 * keep its descriptor. */
	smtp_wait_output(s);
	/* A client that reconnects as soon as it has read this line finds
	 * its slot free (the per-IP limits). */
	smtp_server_session_closing(s->srv, s);
}

static const char *smtp_proto(const struct smtp_session *s)
{
	int tls = io_is_tls(s->io), auth = s->auth[0] != '\0';

	/* RFC 3848 protocol types for the Received header. */
	if (!s->esmtp)
		return tls ? "SMTPS" : "SMTP";
	if (auth)
		return tls ? "ESMTPSA" : "ESMTPA";
	return tls ? "ESMTPS" : "ESMTP";
}

static void smtp_greet(struct smtp_session *s)
{
	if (s->rdns_q != NULL || smtp_spam_connect_pending(s)) {
		/* Input waits too: it is read after the greeting. */
		s->greet_waiting = 1;
		io_pause(s->io);
		return;
	}
	smtp_enter_state(s, SMTP_STATE_COMMAND);
	smtp_session_reply(s, "220 %s ESMTP Petrel", s->env->cfg->hostname);
}

/* The name lookup is over (r == NULL: it timed out). */
static void smtp_rdns_done(struct smtp_session *s, const struct dns_result *r)
{
	s->rdns_q = NULL;
	io_timer_free(s->rdns_timer);
	s->rdns_timer = NULL;
	if (r != NULL && r->status == DNS_OK) {
		snprintf(s->rdns, sizeof(s->rdns), "%s", r->name);
		smtp_session_log(s, LOG_EVENT, "client name %s", s->rdns);
	} else {
		smtp_session_log(s, LOG_EVENT, "client name unknown (%s)",
				 r == NULL ? "lookup timed out"
				 : r->status == DNS_NOTFOUND
					 ? "no confirmed name"
					 : "temporary DNS failure");
	}
	smtp_session_greet_ready(s);
}

void smtp_session_greet_ready(struct smtp_session *s)
{
	if (!s->greet_waiting || s->rdns_q != NULL ||
	    smtp_spam_connect_pending(s))
		return;
	s->greet_waiting = 0;
	io_resume(s->io);
	smtp_greet(s);
}

static void smtp_rdns_cb(const struct dns_result *r, void *arg)
{
	smtp_rdns_done(arg, r);
}

static void smtp_rdns_timeout_cb(void *arg)
{
	struct smtp_session *s = arg;

	dns_cancel(s->rdns_q);
	smtp_rdns_done(s, NULL);
}

/* Starts the client name lookup, unless smtp.rdns_timeout_ms is 0. */
static void smtp_rdns_start(struct smtp_session *s, const struct sockaddr *sa)
{
	int64_t ms = smtp_session_setting(s, SETTING_SMTP_RDNS_TIMEOUT_MS);

	if (ms <= 0 || s->env->dns == NULL)
		return;
	s->rdns_timer = io_timer_new(s->env->loop, smtp_rdns_timeout_cb, s);
	if (s->rdns_timer == NULL)
		return;
	s->rdns_q = dns_rdns(s->env->dns, sa, smtp_rdns_cb, s);
	if (s->rdns_q == NULL) {
		io_timer_free(s->rdns_timer);
		s->rdns_timer = NULL;
		return;
	}
	io_timer_add(s->rdns_timer, ms);
}

void smtp_session_new(struct smtp_server *srv, struct env *env, int fd,
		      const struct sockaddr *sa, socklen_t salen,
		      enum smtp_listener listener, const char *local_addr)
{
	struct smtp_session *s = calloc(1, sizeof(*s));
	unsigned char rnd[6];

	if (s == NULL) {
		close(fd);
		return;
	}
	s->srv = srv;
	s->env = env;
	s->listener = listener;
	randombytes_buf(rnd, sizeof(rnd));
	snprintf(s->id, sizeof(s->id), "%02X%02X%02X%02X%02X%02X", rnd[0],
		 rnd[1], rnd[2], rnd[3], rnd[4], rnd[5]);
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)sa;
		inet_ntop(AF_INET6, &s6->sin6_addr, s->ip, sizeof(s->ip));
		s->port = ntohs(s6->sin6_port);
	} else {
		const struct sockaddr_in *s4 = (const void *)sa;
		inet_ntop(AF_INET, &s4->sin_addr, s->ip, sizeof(s->ip));
		s->port = ntohs(s4->sin_port);
	}
	if (salen <= sizeof(s->peer))
		memcpy(&s->peer, sa, salen);
	snprintf(s->local_addr, sizeof(s->local_addr), "%s", local_addr);
	smtp_server_session_opened(srv, s);
	smtp_session_log(s, LOG_EVENT, "connect from [%s]:%d to %s listener %s",
			 s->ip, s->port, smtp_listener_names[listener],
			 local_addr);
	s->io = io_new(env->loop, fd,
		       listener == SMTP_LISTENER_SMTPS ? env->tls : NULL,
		       smtp_io_cb, s);
	if (s->io == NULL) {
		smtp_session_log(s, LOG_EVENT, "cannot set up the connection");
		smtp_server_session_closed(srv, s, s->ip);
		s->gone = 1;
		smtp_session_free(s);
		return;
	}
	smtp_rdns_start(s, sa);
	smtp_spam_connect(s);
	if (listener == SMTP_LISTENER_SMTPS)
		smtp_enter_state(s, SMTP_STATE_HANDSHAKE);
	else
		smtp_greet(s);
}

static void smtp_session_free(struct smtp_session *s)
{
	if (s->jobs > 0) {
		/* A worker holds the session: the job's end frees it. */
		if (!s->gone) {
			s->gone = 1;
			io_free(s->io);
			s->io = NULL;
			io_timer_free(s->delay);
			s->delay = NULL;
			io_timer_free(s->stall);
			s->stall = NULL;
			io_timer_free(s->deadline);
			s->deadline = NULL;
			smtp_server_session_closed(s->srv, s, s->ip);
		}
		return;
	}
	if (!s->gone || s->io != NULL)
		smtp_server_session_closed(s->srv, s, s->ip);
	io_free(s->io);
	io_timer_free(s->delay);
	io_timer_free(s->stall);
	io_timer_free(s->deadline);
	dns_cancel(s->rdns_q);
	io_timer_free(s->rdns_timer);
	smtp_spam_free(s);
	/* What a transaction held is counted, and the last lines are not
	 * held again. */
	smtp_reset_transaction(s);
	s->log_txn = 0;
	log_budget_flush(&s->log_budget, LOG_SMTP_IN, s->id);
	smtp_session_log(s, LOG_EVENT, "disconnected: %u messages, %u errors",
			 s->messages, s->errors);
	if (s->lookup != NULL)
		sodium_memzero(s->lookup, sizeof(*s->lookup));
	free(s->lookup);
	sodium_memzero(s->sasl_user, sizeof(s->sasl_user));
	free(s);
}

void smtp_session_shutdown(struct smtp_session *s, int force)
{
	if (force) {
		smtp_session_free(s);
		return;
	}
	s->shutdown = 1;
	if (s->state == SMTP_STATE_COMMAND && s->tx == NULL)
		smtp_session_close(s, "421 4.3.2 %s Service shutting down",
				   s->env->cfg->hostname);
}

static void smtp_stall_cb(void *arg)
{
	struct smtp_session *s = arg;

	smtp_session_log(s, LOG_EVENT, "timeout: the client stopped reading%s",
			 s->state == SMTP_STATE_QUIT ? " (last reply)" : "");
	smtp_session_free(s);
}

/* Output waits for the client (replies over the bound, the last reply,
 * the 220 to STARTTLS): the write timeout closes a client that does not
 * read it within smtp.timeout_idle. IO_EV_FLUSHED stops the timer. */
static void smtp_wait_output(struct smtp_session *s)
{
	if (s->stall == NULL)
		s->stall = io_timer_new(s->env->loop, smtp_stall_cb, s);
	if (s->stall != NULL)
		io_timer_add(s->stall, smtp_session_setting(
					       s, SETTING_SMTP_TIMEOUT_IDLE) *
					       1000);
}

/* After TLS starts the session begins anew (RFC 3207 4.2). */
static void smtp_tls_ready(struct smtp_session *s)
{
	smtp_session_log(s, LOG_EVENT, "TLS started: %s", io_tls_info(s->io));
	s->helo_seen = 0;
	s->esmtp = 0;
	s->helo[0] = '\0';
	s->auth[0] = '\0';
	smtp_reset_transaction(s);
	if (s->listener == SMTP_LISTENER_SMTPS)
		smtp_greet(s);
	else
		smtp_enter_state(s, SMTP_STATE_COMMAND);
}

/* No input within the read timeout, or no whole line within the
 * deadline. */
static void smtp_timed_out(struct smtp_session *s)
{
	if (s->state == SMTP_STATE_HANDSHAKE) {
		smtp_session_log(s, LOG_EVENT, "TLS handshake timed out");
		smtp_session_free(s);
		return;
	}
	smtp_session_log(s, LOG_EVENT, "timeout in state %s",
			 smtp_states[s->state].name);
	smtp_session_close(s, "421 4.4.2 %s Error: timeout exceeded",
			   s->env->cfg->hostname);
}

static void smtp_deadline_cb(void *arg)
{
	struct smtp_session *s = arg;

	switch (s->state) {
	case SMTP_STATE_HANDSHAKE:
	case SMTP_STATE_COMMAND:
	case SMTP_STATE_AUTH:
	case SMTP_STATE_DATA:
		/* A client that reads no reply is the write timeout's. */
		if (s->draining)
			return;
		smtp_timed_out(s);
		return;
	case SMTP_STATE_STARTTLS:
	case SMTP_STATE_BUSY:
	case SMTP_STATE_QUIT:
		/* Their own timers run; entering a reading state restarts
		 * this one. */
		return;
	}
}

static void smtp_io_cb(struct io *io, enum io_event ev, void *arg)
{
	struct smtp_session *s = arg;

	switch (ev) {
	case IO_EV_READ:
		if (s->state == SMTP_STATE_STARTTLS) {
			/* Plaintext after STARTTLS: discarded when TLS starts
			 * (RFC 3207 4.2); never read as commands. */
			return;
		}
		smtp_process(s);
		return;
	case IO_EV_FLUSHED:
		if (s->stall != NULL)
			io_timer_del(s->stall);
		if (s->state == SMTP_STATE_QUIT) {
			smtp_session_free(s);
		} else if (s->draining) {
			s->draining = 0;
			io_resume(s->io);
			smtp_process(s);
		} else if (s->state == SMTP_STATE_STARTTLS) {
			if (io_starttls(s->io, s->env->tls) < 0) {
				smtp_session_log(s, LOG_EVENT,
						 "cannot start TLS");
				smtp_session_free(s);
				return;
			}
			smtp_enter_state(s, SMTP_STATE_HANDSHAKE);
		}
		return;
	case IO_EV_TIMEOUT:
		smtp_timed_out(s);
		return;
	case IO_EV_TLS_READY:
		smtp_tls_ready(s);
		return;
	case IO_EV_TLS_ERROR:
		smtp_session_log(s, LOG_EVENT, "TLS failed");
		smtp_session_free(s);
		return;
	case IO_EV_CLOSED:
		smtp_session_log(s, LOG_EVENT, "connection closed by client%s",
				 s->state == SMTP_STATE_DATA ? " during DATA"
							     : "");
		smtp_session_free(s);
		return;
	}
}

/* ---- commands ---- */

enum {
	SMTP_F_NEED_HELO = 1 << 0, /* only after HELO/EHLO */
	SMTP_F_NO_ARGS = 1 << 1,   /* takes no argument */
	SMTP_F_LAST = 1 << 2,	   /* must end a pipelined group (RFC 2920) */
	SMTP_F_SECRET = 1 << 3,	   /* arguments never logged (AUTH) */
	/* Logged, with its replies, past log.max_lines_per_session: the
	 * commands that trace a message or a login. */
	SMTP_F_TRACE = 1 << 4,
	/* Does nothing for a message: past smtp.max_junk_commands of them
	 * each counts as an error (Postfix's smtpd_junk_command_limit), so
	 * a client cannot hold its slot for ever with NOOPs. */
	SMTP_F_JUNK = 1 << 5,
};

struct smtp_command {
	enum smtp_verb verb;
	const char *name;
	unsigned flags;
	/* Validates; replies and returns 0 when refused, 1 to proceed. */
	int (*check)(struct smtp_session *s, const char *args, size_t len);
	void (*proceed)(struct smtp_session *s, const char *args, size_t len);
};

static int smtp_check_helo(struct smtp_session *s, const char *args, size_t len)
{
	char helo[256];

	if (args == NULL || !smtp_parse_helo(args, len, helo, sizeof(helo))) {
		smtp_session_reply(s, "501 5.5.4 Syntax: EHLO hostname");
		return 0;
	}
	return 1;
}

static void smtp_set_helo(struct smtp_session *s, const char *args, size_t len)
{
	smtp_parse_helo(args, len, s->helo, sizeof(s->helo));
	s->helo_seen = 1;
	smtp_reset_transaction(s);
	smtp_enter_state(s, SMTP_STATE_COMMAND);
}

static void smtp_proceed_helo(struct smtp_session *s, const char *args,
			      size_t len)
{
	smtp_set_helo(s, args, len);
	s->esmtp = 0;
	smtp_session_reply(s, "250 %s", s->env->cfg->hostname);
}

static int smtp_auth_offered(const struct smtp_session *s)
{
	return io_is_tls(s->io) || settings_bool(smtp_session_settings(s),
						 SETTING_AUTH_ALLOW_PLAINTEXT);
}

static void smtp_proceed_ehlo(struct smtp_session *s, const char *args,
			      size_t len)
{
	const char *lines[8];
	char size_line[64];
	size_t n = 0;

	smtp_set_helo(s, args, len);
	s->esmtp = 1;
	lines[n++] = "PIPELINING";
	snprintf(size_line, sizeof(size_line), "SIZE %lld",
		 (long long)smtp_session_setting(s,
						 SETTING_SMTP_MAX_MESSAGE_KB) *
			 1024);
	lines[n++] = size_line;
	lines[n++] = "8BITMIME";
	lines[n++] = "ENHANCEDSTATUSCODES";
	if (!io_is_tls(s->io) && s->env->tls != NULL)
		lines[n++] = "STARTTLS";
	if (smtp_auth_offered(s))
		lines[n++] = "AUTH PLAIN LOGIN";
	smtp_session_reply(s, "250-%s Hello %s [%s]", s->env->cfg->hostname,
			   s->helo, s->ip);
	for (size_t i = 0; i < n; i++)
		smtp_session_reply(s, "250%c%s", i + 1 == n ? ' ' : '-',
				   lines[i]);
}

static int smtp_check_starttls(struct smtp_session *s, const char *args,
			       size_t len)
{
	if (io_is_tls(s->io)) {
		smtp_session_reply(s, "503 5.5.1 TLS already active");
		return 0;
	}
	if (s->env->tls == NULL) {
		smtp_session_reply(s, "454 4.7.0 TLS not available");
		return 0;
	}
	return 1;
}

static void smtp_proceed_starttls(struct smtp_session *s, const char *args,
				  size_t len)
{
	smtp_session_reply(s, "220 2.0.0 Ready to start TLS");
	/* Nothing is read until the 220 is written and the handshake
	 * starts: a client that never reads it cannot stream plaintext into
	 * memory or keep resetting the idle timeout (the write timeout ends
	 * it). */
	smtp_enter_state(s, SMTP_STATE_STARTTLS);
	smtp_wait_output(s);
	/* The handshake's read timeout. */
	io_set_read_timeout(s->io,
			    smtp_session_setting(s, SETTING_SMTP_TIMEOUT_IDLE) *
				    1000);
}

static int smtp_check_mail(struct smtp_session *s, const char *args, size_t len)
{
	if (s->tx != NULL) {
		smtp_session_reply(s, "503 5.5.1 Error: nested MAIL command");
		return 0;
	}
	return 1;
}

static struct policy_facts smtp_facts(const struct smtp_session *s)
{
	struct policy_facts f = {
		.settings = smtp_session_settings(s),
		.client_ip = s->ip,
		.tls = io_is_tls(s->io),
		.submission = s->listener != SMTP_LISTENER_MX,
		.auth = s->auth[0] != '\0' ? s->auth : NULL,
		.trusted = policy_trust_host(s->env->trust,
					     (const struct sockaddr *)&s->peer),
		.local_ip = policy_trust_local(
			s->env->trust, (const struct sockaddr *)&s->peer),
		.now = clock_now(),
	};
	return f;
}

static void smtp_refused(struct smtp_session *s, const char *what,
			 const char *reply, const char *reason)
{
	smtp_session_log(s, LOG_EVENT, "%s refused: %s", what, reason);
	smtp_session_reply(s, "%s", reply);
}

/* The session's lookup, zeroed: one at a time, kept for the session's
 * life (a pipelined batch of RCPTs allocates nothing each). NULL on
 * ENOMEM. */
static struct smtp_lookup *smtp_lookup_get(struct smtp_session *s)
{
	if (s->lookup == NULL)
		s->lookup = malloc(sizeof(*s->lookup));
	if (s->lookup != NULL)
		memset(s->lookup, 0, sizeof(*s->lookup));
	return s->lookup;
}

/*
 * Sends a lookup of MAIL or RCPT to a lookup worker (smtp_lookup.c): the
 * session reads nothing until done runs. Returns 0, or -1 after a reply
 * (nothing started).
 */
static int smtp_lookup_wait(struct smtp_session *s, struct smtp_lookup *l,
			    void (*done)(struct smtp_lookup *l))
{
	l->s = s;
	snprintf(l->auth, sizeof(l->auth), "%s", s->auth);
	smtp_enter_state(s, SMTP_STATE_BUSY);
	s->jobs++;
	if (smtp_lookup_start(l, done) < 0) {
		s->jobs--;
		smtp_enter_state(s, SMTP_STATE_COMMAND);
		io_resume(s->io);
		smtp_session_reply(s, "452 4.3.1 Insufficient system storage");
		return -1;
	}
	return 0;
}

/* A lookup is back: returns the session to go on with, or NULL when the
 * client left meanwhile (the session is then freed, and l with it). */
static struct smtp_session *smtp_lookup_back(struct smtp_lookup *l)
{
	struct smtp_session *s = l->s;

	s->jobs--;
	if (s->gone) {
		smtp_session_free(s);
		return NULL;
	}
	smtp_enter_state(s, SMTP_STATE_COMMAND);
	if (l->failed) {
		log_error("lookup for %s failed: %s", l->rcpt ? "RCPT" : "MAIL",
			  l->error);
		smtp_session_reply(s, "451 4.3.0 Temporary lookup failure");
	}
	return s;
}

static int smtp_too_many_errors(struct smtp_session *s);

/* After the reply to a command that waited: reads on, as smtp_process
 * does after any command. */
static void smtp_lookup_resume(struct smtp_session *s, struct smtp_lookup *l)
{
	sodium_memzero(l, sizeof(*l));
	if (s->state != SMTP_STATE_COMMAND || smtp_too_many_errors(s))
		return;
	io_resume(s->io);
	smtp_process(s);
}

static void smtp_mail_looked_up(struct smtp_lookup *l)
{
	struct smtp_session *s = smtp_lookup_back(l);
	struct policy_facts f;
	struct policy_sender ps = {.addr = NULL};
	const char *reply, *reason = NULL;
	int local_unauth = 0;

	if (s == NULL)
		return;
	if (l->failed) {
		smtp_lookup_resume(s, l);
		return;
	}
	f = smtp_facts(s);
	ps.addr = &l->mail.from;
	ps.null = addr_is_null(&l->mail.from);
	ps.local = l->local;
	ps.account = l->exists ? l->account : NULL;
	reply = policy_check_mail(&f, &ps, &local_unauth, &reason);
	if (reply != NULL) {
		smtp_refused(s, "MAIL", reply, reason);
		smtp_lookup_resume(s, l);
		return;
	}
	s->tx = smtp_tx_new();
	if (s->tx == NULL) {
		smtp_session_reply(s, "452 4.3.1 Insufficient system storage");
		smtp_lookup_resume(s, l);
		return;
	}
	addr_format(&l->mail.from, s->tx->sender, sizeof(s->tx->sender));
	s->tx->local_unauth = local_unauth;
	smtp_enter_state(s, SMTP_STATE_COMMAND);
	smtp_session_reply(s, "250 2.1.0 Ok");
	smtp_lookup_resume(s, l);
}

static void smtp_proceed_mail(struct smtp_session *s, const char *args,
			      size_t len)
{
	struct smtp_lookup *l = smtp_lookup_get(s);
	const char *reply;
	int64_t max =
		smtp_session_setting(s, SETTING_SMTP_MAX_MESSAGE_KB) * 1024;

	if (l == NULL) {
		smtp_session_reply(s, "452 4.3.1 Insufficient system storage");
		return;
	}
	if (args == NULL || smtp_parse_mail(args, len, &l->mail, &reply) < 0) {
		smtp_session_reply(
			s, "%s",
			args == NULL ? "501 5.5.4 Syntax: MAIL FROM:<address>"
				     : reply);
		return;
	}
	/* A full spool would fail the message at the end of DATA, after
	 * the client sent it all: refuse the transaction now (RFC 3463
	 * 4.3.1), and the client retries later. */
	if (!smtp_space_ok(s->env->cfg->data_dir,
			   smtp_session_setting(s, SETTING_QUEUE_MIN_FREE_MB),
			   clock_mono_ms())) {
		smtp_refused(s, "MAIL", "452 4.3.1 Insufficient system storage",
			     "free space in data_dir under queue.min_free_mb");
		return;
	}
	/* RFC 1870: refuse a declared size over the limit at once. */
	if (l->mail.size > max) {
		smtp_refused(s, "MAIL",
			     "552 5.3.4 Message size exceeds fixed "
			     "maximum message size",
			     "declared SIZE too big");
		return;
	}
	l->rcpt = 0;
	smtp_lookup_wait(s, l, smtp_mail_looked_up);
}

static int smtp_check_rcpt(struct smtp_session *s, const char *args, size_t len)
{
	if (s->tx == NULL) {
		smtp_session_reply(s, "503 5.5.1 Error: need MAIL command");
		return 0;
	}
	if (s->tx->nrcpt >=
	    (size_t)smtp_session_setting(s, SETTING_SMTP_MAX_RECIPIENTS)) {
		smtp_session_reply(s, "452 4.5.3 Error: too many recipients");
		return 0;
	}
	return 1;
}

static void smtp_rcpt_looked_up(struct smtp_lookup *l)
{
	struct smtp_session *s = smtp_lookup_back(l);
	struct policy_facts f;
	const char *reply, *reason = NULL;
	struct smtp_rcpt *rc;

	if (s == NULL)
		return;
	if (l->failed)
		goto out;
	if (l->token) {
		/* A reply to a hijack alert: answered there. */
		smtp_hijack_rcpt(s, l->token_s, l->token_domain, l->may_reply);
		goto out;
	}
	f = smtp_facts(s);
	reply = smtp_spam_check_rcpt(s, &f, &reason);
	if (reply == NULL)
		reply = policy_check_rcpt(&f, &l->to.to, l->local, l->exists,
					  s->tx->local_unauth, &reason);
	if (reply != NULL) {
		smtp_refused(s, "RCPT", reply, reason);
		goto out;
	}
	if (s->tx->nrcpt == s->tx->rcpt_cap) {
		size_t ncap = s->tx->rcpt_cap ? s->tx->rcpt_cap * 2 : 4;
		struct smtp_rcpt *n = realloc(s->tx->rcpts, ncap * sizeof(*n));
		if (n == NULL) {
			smtp_session_reply(
				s, "452 4.3.1 Insufficient system storage");
			goto out;
		}
		s->tx->rcpts = n;
		s->tx->rcpt_cap = ncap;
	}
	rc = &s->tx->rcpts[s->tx->nrcpt];
	memset(rc, 0, sizeof(*rc));
	addr_format(&l->to.to, rc->addr, sizeof(rc->addr));
	rc->local = l->local;
	memcpy(rc->account, l->account, sizeof(rc->account));
	/* A recipient named twice gets the message once. */
	switch (smtp_rcpt_set_add(&s->tx->rcpt_set, s->tx->rcpts,
				  s->tx->nrcpt)) {
	case 1:
		smtp_session_reply(s, "250 2.1.5 Ok");
		goto out;
	case 0:
		break;
	default:
		smtp_session_reply(s, "452 4.3.1 Insufficient system storage");
		goto out;
	}
	s->tx->nrcpt++;
	smtp_session_reply(s, "250 2.1.5 Ok");
out:
	smtp_lookup_resume(s, l);
}

static void smtp_proceed_rcpt(struct smtp_session *s, const char *args,
			      size_t len)
{
	struct smtp_lookup *l = smtp_lookup_get(s);
	const char *reply;

	if (l == NULL) {
		smtp_session_reply(s, "452 4.3.1 Insufficient system storage");
		return;
	}
	if (args == NULL || smtp_parse_rcpt(args, len, &l->to, &reply) < 0) {
		smtp_session_reply(
			s, "%s",
			args == NULL ? "501 5.5.4 Syntax: RCPT TO:<address>"
				     : reply);
		return;
	}
	l->rcpt = 1;
	smtp_lookup_wait(s, l, smtp_rcpt_looked_up);
}

static int smtp_check_data(struct smtp_session *s, const char *args, size_t len)
{
	if (s->tx == NULL) {
		smtp_session_reply(s, "503 5.5.1 Error: need MAIL command");
		return 0;
	}
	if (s->tx->nrcpt == 0 && s->tx->hijack_reply == NULL) {
		smtp_session_reply(s, "554 5.5.1 Error: no valid recipients");
		return 0;
	}
	return 1;
}

static void smtp_proceed_data(struct smtp_session *s, const char *args,
			      size_t len)
{
	size_t max =
		(size_t)smtp_session_setting(s, SETTING_SMTP_MAX_MESSAGE_KB) *
		1024;

	smtp_data_init(&s->tx->reader,
		       (size_t)smtp_session_setting(s, SETTING_SMTP_MAX_LINE),
		       max);
	buf_deinit(&s->tx->msg);
	buf_init(&s->tx->msg, max);
	smtp_spill_reset(&s->tx->spill);
	smtp_session_reply(s, "354 End data with <CR><LF>.<CR><LF>");
	/* The message will be traced: its MAIL and RCPT lines, held past
	 * the transcript limit, are written now, and its own from now on. */
	log_budget_release(&s->log_budget, LOG_SMTP_IN, s->id);
	s->tx->log_released = 1;
	smtp_enter_state(s, SMTP_STATE_DATA);
}

static void smtp_proceed_rset(struct smtp_session *s, const char *args,
			      size_t len)
{
	smtp_reset_transaction(s);
	smtp_enter_state(s, SMTP_STATE_COMMAND);
	smtp_session_reply(s, "250 2.0.0 Ok");
}

static void smtp_proceed_noop(struct smtp_session *s, const char *args,
			      size_t len)
{
	smtp_session_reply(s, "250 2.0.0 Ok");
}

static void smtp_proceed_quit(struct smtp_session *s, const char *args,
			      size_t len)
{
	smtp_session_close(s, "221 2.0.0 Bye");
}

static void smtp_proceed_vrfy(struct smtp_session *s, const char *args,
			      size_t len)
{
	/* RFC 5321 3.5.3: no address harvesting, but no refusal either. */
	smtp_session_reply(
		s, "252 2.5.2 Cannot VRFY user, but will accept message "
		   "and attempt delivery");
}

static void smtp_proceed_expn(struct smtp_session *s, const char *args,
			      size_t len)
{
	smtp_session_reply(s, "502 5.5.1 EXPN not available");
}

static void smtp_proceed_bdat(struct smtp_session *s, const char *args,
			      size_t len)
{
	/* CHUNKING is not offered; the chunk that may follow would be read
	 * as commands, so the session ends here. */
	smtp_session_close(s, "554 5.5.1 CHUNKING not offered, closing");
}

static void smtp_proceed_help(struct smtp_session *s, const char *args,
			      size_t len)
{
	smtp_session_reply(
		s, "214-2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET NOOP");
	smtp_session_reply(s, "214-2.0.0 QUIT VRFY HELP STARTTLS AUTH");
	smtp_session_reply(s, "214 2.0.0 See RFC 5321");
}

/* ---- AUTH (RFC 4954) ---- */

static void smtp_auth_reply_cb(void *arg)
{
	struct smtp_session *s = arg;

	smtp_session_reply(s, "%s", s->delayed_reply);
	if (s->blocked) {
		smtp_session_close(s,
				   "421 4.7.0 Too many failed logins, closing");
		return;
	}
	smtp_enter_state(s, SMTP_STATE_COMMAND);
	io_resume(s->io);
	smtp_process(s);
}

static void smtp_auth_work(void *thread_state, void *arg)
{
	struct smtp_auth_job *j = arg;

	int64_t until;

	smtp_test_slow_job("AUTH");
	/* Screening blocked the address since this session began (another
	 * session's failures): no password from it is checked any more, or
	 * each session open at the block would go on guessing. */
	if (!j->trusted &&
	    screen_blocked(j->blocks, j->ip, clock_now_ms(), &until)) {
		sodium_memzero(j->pass, sizeof(j->pass));
		j->blocked = 1;
		j->result = 0;
		j->reason = "blocked";
		return;
	}
	j->result = screening_login_check(
		thread_state, j->screen, j->user, j->pass, sizeof(j->pass),
		j->ip, j->now, &j->account, &j->reason, j->fp);
}

static void smtp_auth_done(void *arg)
{
	struct smtp_auth_job *j = arg;
	struct smtp_session *s = j->s;
	char safe_user[128];
	int64_t delay;

	s->jobs--;
	if (s->gone) {
		smtp_session_log(s, LOG_EVENT,
				 "authentication check over, client gone");
		smtp_session_free(s);
		goto out;
	}
	delay = smtp_session_setting(s, SETTING_AUTH_FAIL_DELAY_MS);
	/* Frozen by hijack detection a moment ago: the directory may not
	 * know it yet. */
	if (j->result == 1 && hijacking_frozen(s->env, j->account.address)) {
		j->result = 0;
		j->reason = "frozen";
	}
	if (j->result == 1) {
		snprintf(s->auth, sizeof(s->auth), "%s", j->account.address);
		smtp_session_log(s, LOG_EVENT, "authenticated as %s (%s)",
				 s->auth, j->mech);
		hijacking_login(s->env, s->auth, s->ip, clock_now_ms());
		/* The IP's failure delays start again from the first. */
		screen_auth_ok(s->env->screen, s->ip);
		smtp_session_reply(s, "235 2.7.0 Authentication successful");
		smtp_enter_state(s, SMTP_STATE_COMMAND);
		io_resume(s->io);
		smtp_process(s);
		goto out;
	}
	log_sanitize(safe_user, sizeof(safe_user), j->user, strlen(j->user));
	if (j->blocked) {
		/* No password was checked: no 535 to count, the session
		 * ends as a new one from the address would be refused. */
		smtp_session_log(s, LOG_EVENT,
				 "authentication not checked for %s: the "
				 "address is blocked",
				 safe_user);
		s->blocked = 1;
		smtp_session_close(s,
				   "421 4.7.0 Too many failed logins, closing");
		goto out;
	}
	if (j->result < 0) {
		snprintf(s->delayed_reply, sizeof(s->delayed_reply),
			 "454 4.7.0 Temporary authentication failure");
		log_error("auth check failed for %s", safe_user);
	} else {
		/* The same reply after the same delay, whatever the reason:
		 * no account enumeration. */
		snprintf(s->delayed_reply, sizeof(s->delayed_reply),
			 "535 5.7.8 Authentication credentials invalid");
	}
	/* fail2ban-friendly: one line, fixed fields, never the password. */
	log_write(LOG_SECURITY, s->id, LOG_EVENT,
		  "auth failed: ip=%s port=%d account=%s mechanism=%s "
		  "service=smtp reason=%s",
		  s->ip, s->port, safe_user, j->mech,
		  j->result < 0 ? "error" : j->reason);
	smtp_session_log(s, LOG_EVENT, "authentication failed for %s",
			 safe_user);
	if (j->result == 0) {
		struct policy_facts f = smtp_facts(s);
		int64_t until;

		delay = screening_auth_failed(s->env, "smtp", s->id, s->ip,
					      f.trusted, safe_user, j->fp,
					      &s->blocked);
		/* Blocked by another session while this check ran. */
		if (!f.trusted && screen_blocked(s->env->screen, s->ip,
						 clock_now_ms(), &until))
			s->blocked = 1;
	}
	if (s->delay == NULL)
		s->delay = io_timer_new(s->env->loop, smtp_auth_reply_cb, s);
	if (s->delay == NULL) {
		smtp_auth_reply_cb(s);
		goto out;
	}
	io_timer_add(s->delay, delay);
out:
	sodium_memzero(j, sizeof(*j));
	free(j);
}

/* Hands a user and password to a worker for checking. */
static void smtp_auth_verify(struct smtp_session *s, const char *user,
			     char *pass)
{
	struct smtp_auth_job *j = calloc(1, sizeof(*j));

	if (j == NULL) {
		sodium_memzero(pass, SASL_FIELD_MAX);
		smtp_session_reply(
			s, "454 4.7.0 Temporary authentication failure");
		smtp_enter_state(s, SMTP_STATE_COMMAND);
		return;
	}
	j->s = s;
	snprintf(j->user, sizeof(j->user), "%s", user);
	snprintf(j->pass, sizeof(j->pass), "%s", pass);
	snprintf(j->ip, sizeof(j->ip), "%s", s->ip);
	snprintf(j->mech, sizeof(j->mech), "%s", s->sasl_mech);
	j->now = clock_now();
	j->screen = s->env->screen;
	j->blocks = s->env->screen;
	j->trusted = smtp_facts(s).trusted;
	sodium_memzero(pass, SASL_FIELD_MAX);
	sodium_memzero(s->sasl_user, sizeof(s->sasl_user));
	smtp_enter_state(s, SMTP_STATE_BUSY);
	s->jobs++;
	if (io_workers_submit(s->env->workers, smtp_auth_work, smtp_auth_done,
			      j) < 0) {
		s->jobs--;
		sodium_memzero(j, sizeof(*j));
		free(j);
		smtp_session_reply(
			s, "454 4.7.0 Temporary authentication failure");
		smtp_enter_state(s, SMTP_STATE_COMMAND);
		io_resume(s->io);
	}
}

/* Handles one SASL message (initial response or a response line). */
static void smtp_auth_step(struct smtp_session *s, const char *text, size_t len)
{
	char decoded[SASL_FIELD_MAX * 3];
	char user[SASL_FIELD_MAX], pass[SASL_FIELD_MAX];
	long n;

	if (len == 1 && text[0] == '*') {
		smtp_session_reply(s, "501 5.0.0 Authentication cancelled");
		smtp_enter_state(s, SMTP_STATE_COMMAND);
		return;
	}
	n = sasl_b64decode(text, len, decoded, sizeof(decoded),
			   s->sasl == SMTP_SASL_PLAIN);
	if (n < 0) {
		smtp_session_reply(s, "501 5.5.2 Cannot decode response");
		smtp_enter_state(s, SMTP_STATE_COMMAND);
		goto out;
	}
	switch (s->sasl) {
	case SMTP_SASL_PLAIN:
		if (sasl_plain_split(decoded, (size_t)n, user, pass) < 0) {
			smtp_session_reply(
				s, "501 5.5.2 Malformed PLAIN response");
			smtp_enter_state(s, SMTP_STATE_COMMAND);
			goto out;
		}
		smtp_auth_verify(s, user, pass);
		break;
	case SMTP_SASL_LOGIN_USER:
		if (n == 0 || (size_t)n >= sizeof(s->sasl_user)) {
			smtp_session_reply(
				s, "501 5.5.2 Malformed LOGIN response");
			smtp_enter_state(s, SMTP_STATE_COMMAND);
			goto out;
		}
		memcpy(s->sasl_user, decoded, (size_t)n + 1);
		s->sasl = SMTP_SASL_LOGIN_PASS;
		smtp_session_reply(s, "334 UGFzc3dvcmQ6"); /* "Password:" */
		smtp_enter_state(s, SMTP_STATE_AUTH);
		break;
	case SMTP_SASL_LOGIN_PASS:
		if (n == 0 || (size_t)n >= sizeof(pass)) {
			smtp_session_reply(
				s, "501 5.5.2 Malformed LOGIN response");
			smtp_enter_state(s, SMTP_STATE_COMMAND);
			goto out;
		}
		memcpy(pass, decoded, (size_t)n + 1);
		snprintf(user, sizeof(user), "%s", s->sasl_user);
		smtp_auth_verify(s, user, pass);
		break;
	}
out:
	sodium_memzero(decoded, sizeof(decoded));
	sodium_memzero(pass, sizeof(pass));
}

static int smtp_check_auth(struct smtp_session *s, const char *args, size_t len)
{
	if (!smtp_auth_offered(s)) {
		smtp_session_reply(
			s, "538 5.7.11 Encryption required for requested "
			   "authentication mechanism");
		return 0;
	}
	if (s->auth[0] != '\0') {
		smtp_session_reply(s, "503 5.5.1 Already authenticated");
		return 0;
	}
	if (s->tx != NULL) {
		smtp_session_reply(
			s, "503 5.5.1 AUTH not allowed during a transaction");
		return 0;
	}
	if (args == NULL) {
		smtp_session_reply(s, "501 5.5.4 Syntax: AUTH mechanism");
		return 0;
	}
	return 1;
}

static void smtp_proceed_auth(struct smtp_session *s, const char *args,
			      size_t len)
{
	const char *sp = memchr(args, ' ', len);
	size_t mlen = sp != NULL ? (size_t)(sp - args) : len;
	const char *init = sp != NULL ? sp + 1 : NULL;
	size_t ilen = sp != NULL ? len - mlen - 1 : 0;

	if (mlen == 5 && strncasecmp(args, "PLAIN", 5) == 0) {
		snprintf(s->sasl_mech, sizeof(s->sasl_mech), "PLAIN");
		s->sasl = SMTP_SASL_PLAIN;
		if (init == NULL) {
			smtp_session_reply(s, "334 ");
			smtp_enter_state(s, SMTP_STATE_AUTH);
			return;
		}
		/* "=" is an empty initial response (RFC 4954 4). */
		if (ilen == 1 && init[0] == '=')
			ilen = 0;
		smtp_auth_step(s, init, ilen);
		return;
	}
	if (mlen == 5 && strncasecmp(args, "LOGIN", 5) == 0) {
		snprintf(s->sasl_mech, sizeof(s->sasl_mech), "LOGIN");
		s->sasl = SMTP_SASL_LOGIN_USER;
		if (init == NULL) {
			smtp_session_reply(
				s, "334 VXNlcm5hbWU6"); /* "Username:" */
			smtp_enter_state(s, SMTP_STATE_AUTH);
			return;
		}
		smtp_auth_step(s, init, ilen);
		return;
	}
	smtp_session_reply(s,
			   "504 5.5.4 Unrecognized authentication mechanism");
}

static const struct smtp_command smtp_commands[] = {
	{SMTP_CMD_HELO, "HELO", 0, smtp_check_helo, smtp_proceed_helo},
	{SMTP_CMD_EHLO, "EHLO", SMTP_F_LAST, smtp_check_helo,
	 smtp_proceed_ehlo},
	{SMTP_CMD_STARTTLS, "STARTTLS",
	 SMTP_F_NEED_HELO | SMTP_F_NO_ARGS | SMTP_F_LAST | SMTP_F_TRACE,
	 smtp_check_starttls, smtp_proceed_starttls},
	{SMTP_CMD_AUTH, "AUTH", SMTP_F_NEED_HELO | SMTP_F_SECRET | SMTP_F_TRACE,
	 smtp_check_auth, smtp_proceed_auth},
	{SMTP_CMD_MAIL, "MAIL", SMTP_F_NEED_HELO | SMTP_F_TRACE,
	 smtp_check_mail, smtp_proceed_mail},
	{SMTP_CMD_RCPT, "RCPT", SMTP_F_NEED_HELO | SMTP_F_TRACE,
	 smtp_check_rcpt, smtp_proceed_rcpt},
	{SMTP_CMD_DATA, "DATA",
	 SMTP_F_NEED_HELO | SMTP_F_NO_ARGS | SMTP_F_LAST | SMTP_F_TRACE,
	 smtp_check_data, smtp_proceed_data},
	{SMTP_CMD_BDAT, "BDAT", SMTP_F_TRACE, NULL, smtp_proceed_bdat},
	{SMTP_CMD_RSET, "RSET", SMTP_F_NO_ARGS | SMTP_F_JUNK, NULL,
	 smtp_proceed_rset},
	{SMTP_CMD_NOOP, "NOOP", SMTP_F_JUNK, NULL, smtp_proceed_noop},
	{SMTP_CMD_QUIT, "QUIT", SMTP_F_NO_ARGS | SMTP_F_TRACE, NULL,
	 smtp_proceed_quit},
	{SMTP_CMD_VRFY, "VRFY", SMTP_F_JUNK, NULL, smtp_proceed_vrfy},
	{SMTP_CMD_EXPN, "EXPN", 0, NULL, smtp_proceed_expn},
	{SMTP_CMD_HELP, "HELP", SMTP_F_JUNK, NULL, smtp_proceed_help},
};

static const struct smtp_command *smtp_command_find(enum smtp_verb verb)
{
	for (size_t i = 0; i < sizeof(smtp_commands) / sizeof(smtp_commands[0]);
	     i++)
		if (smtp_commands[i].verb == verb)
			return &smtp_commands[i];
	return NULL;
}

static void smtp_command(struct smtp_session *s, const char *line, size_t len)
{
	const struct smtp_command *c;
	struct smtp_cmd cmd;
	char safe[600];

	if (smtp_parse_command(line, len, &cmd) != 1 ||
	    (c = smtp_command_find(cmd.verb)) == NULL) {
		smtp_log_peer(s, 0, "%s",
			      log_sanitize(safe, sizeof(safe), line, len));
		smtp_session_reply(s,
				   "500 5.5.1 Error: command not recognized");
		return;
	}
	if (c->flags & SMTP_F_SECRET) {
		/* The mechanism is fine to log; what follows never is. */
		size_t keep =
			cmd.args != NULL ? (size_t)(cmd.args - line) : len;
		const char *sp = cmd.args != NULL
					 ? memchr(cmd.args, ' ', cmd.args_len)
					 : NULL;
		if (sp != NULL)
			keep = (size_t)(sp - line);
		else if (cmd.args != NULL)
			keep = len;
		smtp_log_peer(s, (c->flags & SMTP_F_TRACE) != 0, "%s%s",
			      log_sanitize(safe, sizeof(safe), line, keep),
			      sp != NULL ? " <redacted>" : "");
	} else {
		log_sanitize(safe, sizeof(safe), line, len);
		/* A re-activation token is a credential. */
		if (cmd.verb == SMTP_CMD_RCPT)
			hijack_token_redact(safe);
		smtp_log_peer(s,
			      cmd.verb == SMTP_CMD_MAIL	       ? 2
			      : (c->flags & SMTP_F_TRACE) != 0 ? 1
							       : 0,
			      "%s", safe);
	}
	if ((c->flags & SMTP_F_NEED_HELO) && !s->helo_seen) {
		smtp_session_reply(s, "503 5.5.1 Error: send HELO/EHLO first");
		return;
	}
	if ((c->flags & SMTP_F_NO_ARGS) && cmd.args != NULL) {
		smtp_session_reply(
			s, "501 5.5.4 Syntax: %s takes no parameters", c->name);
		return;
	}
	if (cmd.verb == SMTP_CMD_DATA && io_input_len(s->io) > 0) {
		/* RFC 2920 3.1: DATA ends a group and the client must wait for
		 * 354. Text sent early would be read as commands if refused,
		 * or as a message the client never meant: end the session. */
		smtp_session_log(s, LOG_EVENT,
				 "improper pipelining after DATA");
		smtp_session_close(
			s, "554 5.5.0 Error: improper command pipelining "
			   "after DATA, closing");
		return;
	}
	if (c->check != NULL && !c->check(s, cmd.args, cmd.args_len))
		return;
	c->proceed(s, cmd.args, cmd.args_len);
	if ((c->flags & SMTP_F_JUNK) &&
	    ++s->junk > (uint64_t)smtp_session_setting(
				s, SETTING_SMTP_MAX_JUNK_COMMANDS))
		s->errors++; /* smtp.max_errors then ends the session */
}

/* ---- DATA ---- */

/*
 * Ends the transaction after the reply to DATA: commands are read again,
 * or the session closes when the server is shutting down. When the input
 * was paused (a stage or the commit waited), what is buffered is read now.
 */
static void smtp_transaction_end(struct smtp_session *s, int paused)
{
	smtp_reset_transaction(s);
	smtp_enter_state(s, SMTP_STATE_COMMAND);
	if (s->shutdown) {
		smtp_session_close(s, "421 4.3.2 %s Service shutting down",
				   s->env->cfg->hostname);
		return;
	}
	if (paused) {
		io_resume(s->io);
		smtp_process(s);
	}
}

void smtp_session_answer(struct smtp_session *s, const char *reply,
			 const char *event)
{
	smtp_session_log(s, LOG_EVENT, "%s", event);
	smtp_session_reply(s, "%s", reply);
	smtp_transaction_end(s, s->tx->stage_async);
}

void smtp_session_refuse(struct smtp_session *s, const char *reply,
			 const char *reason)
{
	smtp_session_log(s, LOG_EVENT, "message refused: %s (%zu bytes)",
			 reason, (size_t)s->tx->reader.size);
	smtp_session_reply(s, "%s", reply);
	smtp_transaction_end(s, s->tx->stage_async);
}

struct smtp_commit_ctx {
	struct smtp_commit c;
	struct smtp_session *s;
};

static void smtp_message_saved(void *arg)
{
	struct smtp_commit_ctx *x = arg;
	struct smtp_session *s = x->s;
	char mid[300];

	s->jobs--;
	if (x->c.ok) {
		log_sanitize(mid, sizeof(mid), x->c.message_id,
			     strlen(x->c.message_id));
		/* Counted; held instead when the account froze meanwhile. */
		if (!smtp_hijack_saved(s, 1, x->c.queue_id) &&
		    s->env->message_queued != NULL)
			smtp_filter_announce(&x->c, s->env);
	} else {
		smtp_hijack_saved(s, 0, NULL);
	}
	if (s->gone) {
		if (x->c.ok)
			log_write(LOG_SMTP_IN, s->id, LOG_EVENT,
				  "message saved as %s, client gone",
				  x->c.queue_id);
		smtp_session_free(s);
		goto out;
	}
	if (x->c.ok && x->c.queue_id[0] == '\0') {
		/* The content filter deleted it for every recipient. */
		s->messages++;
		s->junk = 0;
		smtp_session_reply(s, "250 2.0.0 Ok, message accepted");
	} else if (x->c.ok) {
		s->messages++;
		s->junk = 0;
		smtp_session_reply(
			s, "250 2.0.0 Ok, message saved <Message-ID: %s> as %s",
			mid, x->c.queue_id);
	} else {
		log_error("cannot spool message: %s", x->c.error);
		smtp_session_reply(s,
				   "451 4.3.0 Error: queue file write error");
	}
	smtp_transaction_end(s, 1);
out:
	smtp_commit_free(&x->c);
	free(x);
}

static void smtp_commit_work_ctx(void *thread_state, void *arg)
{
	struct smtp_commit_ctx *x = arg;

	smtp_test_slow_job("COMMIT");
	smtp_commit_work(thread_state, &x->c);
}

#define SMTP_FROM_MAX 32 /* addresses of a From: header we check */

/* policy_check_from_raw asks: is this domain one of ours? */
static int smtp_local_domain(void *ctx, const char *domain)
{
	return directory_domain_exists(ctx, domain);
}

/* The From: stage's job: the header section against the sender rules,
 * on a lookup worker (its directory reads never run on the loop). */
struct smtp_from_job {
	struct smtp_session *s;
	struct policy_facts f;
	const char
		*msg; /* the header section (s->tx->msg, unchanged meanwhile) */
	size_t len;
	/* out: NULL to go on, or the refusal (static texts) */
	const char *reply, *reason;
};

/*
 * The From: header against the sender rules (policy_check_from), with
 * directory d: parses the header section (in memory, bounded) and looks
 * up each address. Sets j->reply and j->reason to refuse.
 */
static void smtp_from_check(struct smtp_from_job *j, struct directory *d)
{
	struct addrlist_entry *list;
	struct policy_from from[SMTP_FROM_MAX];
	char accounts[SMTP_FROM_MAX][DIRECTORY_ADDRESS_MAX + 1];
	const char *err;
	struct header_field h, found;
	size_t pos = 0, n = 0, nfrom = 0;
	int parsed = 0;

	memset(&found, 0, sizeof(found));
	while (header_next(j->msg, j->len, &pos, &h) == 1) {
		if (header_is(&h, "From")) {
			found = h;
			nfrom++;
		}
	}
	list = calloc(SMTP_FROM_MAX, sizeof(*list));
	if (list == NULL) {
		j->reply = "451 4.3.1 Insufficient system storage";
		j->reason = "out of memory";
		return;
	}
	/* RFC 5322 3.6: exactly one From: field. */
	if (nfrom == 1 && addrlist_parse(found.value, found.value_len, list,
					 SMTP_FROM_MAX, &n, &err) == 0)
		parsed = 1;
	/* RFC 5322 3.6.2: From: is a mailbox-list, without groups. */
	for (size_t i = 0; parsed && i < n; i++)
		if (list[i].group[0] != '\0')
			parsed = 0;
	for (size_t i = 0; parsed && i < n; i++) {
		char text[ADDR_FORMAT_SIZE];
		int r;

		from[i].addr = &list[i].addr;
		from[i].account = NULL;
		from[i].local = 0;
		r = directory_domain_exists(d, list[i].addr.domain);
		if (r == 1) {
			from[i].local = 1;
			addr_format(&list[i].addr, text, sizeof(text));
			r = directory_resolve(d, text, accounts[i], &err);
			if (r == 1)
				from[i].account = accounts[i];
		}
		if (r < 0) {
			free(list);
			j->reply = "451 4.3.0 Temporary lookup failure";
			j->reason = "directory lookup failed";
			return;
		}
	}
	j->reply = policy_check_from(&j->f, parsed, from, parsed ? n : 0,
				     &j->reason);
	/* The From: as written: a local domain in one that did not parse,
	 * or a second From field that header_next does not count. */
	if (j->reply == NULL)
		j->reply =
			policy_check_from_raw(&j->f, parsed, j->msg, j->len,
					      smtp_local_domain, d, &j->reason);
	free(list);
}

static void smtp_from_work(void *state, void *arg)
{
	struct env_thread *t = state;
	struct smtp_from_job *j = arg;

	if (t == NULL || t->dir == NULL) {
		j->reply = "451 4.3.0 Temporary lookup failure";
		j->reason = "no directory handle";
		return;
	}
	smtp_from_check(j, t->dir);
}

static void smtp_from_done(void *arg)
{
	struct smtp_from_job *j = arg;
	struct smtp_session *s = j->s;

	s->jobs--;
	if (!smtp_stage_gone(s)) {
		if (j->reply != NULL)
			smtp_session_refuse(s, j->reply, j->reason);
		else
			smtp_stage_next(s);
	}
	free(j);
}

/* The From: stage: its check waits for a lookup worker. */
static void smtp_stage_from(struct smtp_session *s)
{
	struct smtp_from_job *j = calloc(1, sizeof(*j));
	struct io_workers *w = smtp_lookup_pool(s->env);

	if (j == NULL) {
		smtp_session_refuse(s, "451 4.3.1 Insufficient system storage",
				    "out of memory");
		return;
	}
	j->s = s;
	j->f = smtp_facts(s);
	j->msg = buf_cstr(&s->tx->msg);
	j->len = s->tx->msg.len;
	smtp_stage_wait(s);
	s->jobs++;
	if (io_workers_submit(w, smtp_from_work, smtp_from_done, j) < 0) {
		s->jobs--;
		free(j);
		smtp_session_refuse(s, "451 4.3.1 Insufficient system storage",
				    "out of memory");
	}
}

/* The last stage: stamps and spools the message on a worker; the 250
 * is sent when it is durable (smtp_message_saved). */
static void smtp_commit_message(struct smtp_session *s)
{
	struct smtp_commit_ctx *x;
	struct smtp_commit *c;

	x = calloc(1, sizeof(*x));
	if (x == NULL) {
		smtp_session_refuse(s, "451 4.3.1 Insufficient system storage",
				    "out of memory");
		return;
	}
	x->s = s;
	c = &x->c;
	c->queue = s->env->queue;
	snprintf(c->session_id, sizeof(c->session_id), "%s", s->id);
	snprintf(c->hostname, sizeof(c->hostname), "%s", s->env->cfg->hostname);
	snprintf(c->helo, sizeof(c->helo), "%s", s->helo);
	snprintf(c->rdns, sizeof(c->rdns), "%s", s->rdns);
	snprintf(c->ip, sizeof(c->ip), "%s", s->ip);
	c->port = s->port;
	snprintf(c->listener, sizeof(c->listener), "%s",
		 smtp_listener_names[s->listener]);
	snprintf(c->proto, sizeof(c->proto), "%s", smtp_proto(s));
	snprintf(c->tls_info, sizeof(c->tls_info), "%s", io_tls_info(s->io));
	snprintf(c->auth, sizeof(c->auth), "%s", s->auth);
	c->submission = s->listener != SMTP_LISTENER_MX;
	snprintf(c->sender, sizeof(c->sender), "%s", s->tx->sender);
	c->rcpts = malloc(s->tx->nrcpt * sizeof(*c->rcpts));
	if (c->rcpts == NULL) {
		free(x);
		smtp_session_refuse(s, "451 4.3.1 Insufficient system storage",
				    "out of memory");
		return;
	}
	memcpy(c->rcpts, s->tx->rcpts, s->tx->nrcpt * sizeof(*c->rcpts));
	c->nrcpt = s->tx->nrcpt;
	c->msg = s->tx->msg;	      /* moved */
	c->body_fd = s->tx->spill.fd; /* moved */
	c->body_len = s->tx->spill.len;
	c->filter_plan = s->tx->filter_plan; /* moved */
	s->tx->filter_plan = NULL;
	c->now = clock_now();
	/* The DATA result that follows names the Message-ID. */
	smtp_log_peer(
		s, 1, "[message: %llu bytes, %zu lines]",
		(unsigned long long)smtp_spill_size(&s->tx->spill, &s->tx->msg),
		(size_t)s->tx->reader.lines);
	buf_init(&s->tx->msg, 0);
	smtp_spill_init(&s->tx->spill);
	smtp_enter_state(s, SMTP_STATE_BUSY);
	s->jobs++;
	if (io_workers_submit(s->env->commit_workers, smtp_commit_work_ctx,
			      smtp_message_saved, x) < 0) {
		s->jobs--;
		smtp_commit_free(c);
		free(x);
		smtp_session_reply(s, "451 4.3.1 Insufficient system storage");
		io_resume(s->io);
		smtp_transaction_end(s, s->tx->stage_async);
	}
}

static void smtp_data_complete(struct smtp_session *s)
{
	switch (s->tx->reader.error) {
	case SMTP_DATA_OK:
		break;
	case SMTP_DATA_BARE_NEWLINE:
		smtp_session_refuse(s,
				    "550 5.6.0 Message refused: bare CR or LF "
				    "is not allowed (RFC 5321 2.3.8)",
				    "bare CR or LF");
		return;
	case SMTP_DATA_LINE_TOO_LONG:
		smtp_session_refuse(s,
				    "500 5.5.6 Message refused: line too long",
				    "line too long");
		return;
	case SMTP_DATA_TOO_BIG:
		smtp_session_refuse(s,
				    "552 5.3.4 Message size exceeds fixed "
				    "maximum message size",
				    "message too big");
		return;
	case SMTP_DATA_STOPPED:
		if (s->tx->spill.error == SMTP_SPILL_HEADER_TOO_BIG) {
			smtp_session_refuse(s,
					    "552 5.3.4 Message header size "
					    "exceeds limit",
					    "header section over "
					    "128 KB");
			return;
		}
		log_error("cannot keep a message: %s", s->tx->spill.why);
		smtp_session_refuse(s, "452 4.3.1 Insufficient system storage",
				    s->tx->spill.why);
		return;
	}
	s->tx->stage = SMTP_STAGE_FROM;
	s->tx->stage_async = 0;
	smtp_stage_next(s);
}

void smtp_stage_next(struct smtp_session *s)
{
	enum smtp_stage st = s->tx->stage;

	s->tx->stage = st + 1;
	switch (st) {
	case SMTP_STAGE_FROM:
		smtp_stage_from(s);
		return;
	case SMTP_STAGE_SPAM:
		smtp_stage_spam(s);
		return;
	case SMTP_STAGE_FILTER:
		smtp_stage_filter(s);
		return;
	case SMTP_STAGE_HIJACK:
		smtp_stage_hijack(s);
		return;
	case SMTP_STAGE_COMMIT:
	case SMTP_STAGE_COUNT:
		break;
	}
	smtp_commit_message(s);
}

void smtp_stage_wait(struct smtp_session *s)
{
	smtp_enter_state(s, SMTP_STATE_BUSY);
	s->tx->stage_async = 1;
}

int smtp_stage_gone(struct smtp_session *s)
{
	if (!s->gone)
		return 0;
	smtp_session_log(s, LOG_EVENT, "message dropped, client gone");
	smtp_session_free(s);
	return 1;
}

#ifdef PETREL_SANITIZE
void smtp_test_slow_job(const char *kind)
{
	char name[64];
	const char *v;
	char *end;
	long ms;

	snprintf(name, sizeof(name), "PETREL_TEST_SLOW_%s_MS", kind);
	v = getenv(name);
	if (v == NULL)
		return;
	ms = strtol(v, &end, 10);
	if (*end == '\0' && ms > 0) {
		struct timespec ts = {.tv_sec = ms / 1000,
				      .tv_nsec = (ms % 1000) * 1000000L};
		nanosleep(&ts, NULL);
	}
}
#endif

/* ---- input ---- */

/* Reads what can be read now: command lines, SASL lines or DATA. */
static void smtp_process(struct smtp_session *s)
{
	while (s->io != NULL &&
	       (s->state == SMTP_STATE_COMMAND || s->state == SMTP_STATE_AUTH ||
		s->state == SMTP_STATE_DATA)) {
		size_t avail = io_input_len(s->io), max, used = 0, n;
		/* n < max: a line fits, whatever the setting (it once
		 * overflowed a smaller copy). */
		char text[SMTP_LINE_LIMIT + 1];

		if (avail == 0)
			break;
		if (io_output_len(s->io) >= SMTP_OUTPUT_HIGH) {
			/* IO_EV_FLUSHED reads on. */
			s->draining = 1;
			io_pause(s->io);
			smtp_wait_output(s);
			break;
		}
		if (s->state == SMTP_STATE_DATA) {
			const char *in = io_input_pullup(s->io, avail);
			size_t lines = s->tx->reader.lines;
			int done = smtp_data_feed(&s->tx->reader, in, avail,
						  &used, &s->tx->msg);
			io_input_drain(s->io, used);
			if (s->tx->reader.lines != lines)
				smtp_restart_deadline(s);
			/* Memory stays bounded: past SMTP_SPILL_MEMORY, the
			 * body goes to the spool as it comes. */
			if (s->tx->reader.error == SMTP_DATA_OK &&
			    smtp_spill_step(&s->tx->spill, &s->tx->msg,
					    s->env->queue, done == 1) < 0)
				smtp_data_stop(&s->tx->reader);
			if (done == 1)
				smtp_data_complete(s);
			else
				break;
			continue;
		}
		max = s->state == SMTP_STATE_AUTH
			      ? SMTP_AUTH_LINE_MAX
			      : (size_t)smtp_session_setting(
					s, SETTING_SMTP_MAX_LINE);
		if (max > SMTP_LINE_LIMIT)
			max = SMTP_LINE_LIMIT; /* the size of text */
		switch (server_line_next(&s->line, s->io, max, text, &n)) {
		case SERVER_LINE_WAIT:
			return;
		case SERVER_LINE_TOO_LONG:
			smtp_session_log(s, LOG_EVENT, "command line too long");
			if (s->state == SMTP_STATE_AUTH) { /* RFC 4954 4 */
				smtp_session_reply(s,
						   "500 5.5.6 Authentication "
						   "Exchange line is too long");
				smtp_enter_state(s, SMTP_STATE_COMMAND);
			} else {
				smtp_session_reply(
					s, "500 5.5.2 Error: line too long");
			}
			break;
		case SERVER_LINE_BAD: {
			/* CRLF is the only line end (RFC 5321 2.3.8): a bare
			 * LF or CR, or a NUL, ends the transaction. */
			char safe[128];

			smtp_restart_deadline(s);
			smtp_log_peer(
				s, 0, "%s",
				log_sanitize(safe, sizeof(safe), text, n));
			sodium_memzero(text, n);
			smtp_reset_transaction(s);
			smtp_session_reply(s, "500 5.5.2 Error: bare CR or LF "
					      "or NUL in command");
			smtp_enter_state(s, SMTP_STATE_COMMAND);
			break;
		}
		case SERVER_LINE_OK:
			/* A whole line: the state's timeout starts again. */
			smtp_restart_deadline(s);
			if (s->state == SMTP_STATE_AUTH) {
				smtp_log_peer(s, 0, "<redacted>");
				smtp_auth_step(s, text, n);
			} else {
				smtp_command(s, text, n);
			}
			/* A line may carry credentials (a SASL response, or
			 * AUTH PLAIN's initial response in a command). */
			sodium_memzero(text, n + 1);
			break;
		}
		smtp_too_many_errors(s);
	}
}

/* Past smtp.max_errors, ends the session with 421. Returns 1 then. */
static int smtp_too_many_errors(struct smtp_session *s)
{
	if (s->state == SMTP_STATE_QUIT ||
	    s->errors <
		    (unsigned)smtp_session_setting(s, SETTING_SMTP_MAX_ERRORS))
		return 0;
	smtp_session_log(s, LOG_EVENT, "too many errors");
	smtp_session_close(s, "421 4.7.0 %s Error: too many errors",
			   s->env->cfg->hostname);
	return 1;
}
