/*
 * pop3_session: one POP3 conversation (RFC 1939) from greeting to close:
 * the AUTHORIZATION, TRANSACTION and UPDATE states, the command table
 * (pop3_check_<cmd> validates, pop3_proceed_<cmd> acts), CAPA (RFC 2449),
 * STLS (RFC 2595), AUTH PLAIN (RFC 5034), the reply function and the
 * transcript. Password checks, the mailbox snapshot, message reads and the
 * removal of deleted messages run on the worker threads; the loop only
 * moves bytes.
 */
#include "pop3/pop3_session.h"
#include "server/server_line.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <sodium.h>

#include "delivery/local.h"
#include "directory/directory.h"
#include "directory/settings.h"
#include "lib/clock.h"
#include "lib/config.h"
#include "lib/env.h"
#include "lib/io.h"
#include "lib/io_worker.h"
#include "lib/log.h"
#include "lib/sasl.h"
#include "policy/screening.h"
#include "policy/trust.h"
#include "pop3/pop3_mailbox.h"
#include "pop3/pop3_maildir.h"
#include "pop3/pop3_parse.h"

/*
 * RFC 2449 4 caps a command at 255 octets and RFC 5034 4 lets a SASL
 * response be longer; passwords of SASL_FIELD_MAX bytes and a PLAIN
 * response for them (base64 of ~1.2 KB) must fit.
 */
#define POP3_LINE_MAX 2048
#define POP3_REPLY_MAX 1024
#define POP3_XFER_CHUNK 131072
/* Output queued before the next read of a message waits for the socket. */
#define POP3_XFER_HIGH (256 * 1024)
/*
 * Replies queued for a client before its commands are read no more, and
 * the slice of a LIST or UIDL listing queued at a time (OpenSMTPD pauses
 * at 64 KB too): a client that sends and never reads fills its socket
 * buffers, not the daemon.
 */
#define POP3_OUTPUT_HIGH (64 * 1024)
/* Failed logins in one session before it is closed. */
#define POP3_AUTH_FAILURES_MAX 3

enum pop3_state {
	POP3_STATE_HANDSHAKE,	  /* TLS handshake running */
	POP3_STATE_STLS,	  /* +OK for STLS sent, waiting for flush */
	POP3_STATE_AUTHORIZATION, /* reading commands, not logged in */
	POP3_STATE_SASL,	  /* reading a SASL response line */
	POP3_STATE_TRANSACTION,	  /* logged in, reading commands */
	POP3_STATE_BUSY,	  /* a worker job, a delay or a transfer */
	POP3_STATE_DRAIN,	  /* replies over the bound: waiting for them */
	POP3_STATE_LISTING,	  /* a listing waits for output to drain */
	POP3_STATE_QUIT,	  /* last reply sent, close once flushed */
};

/* A RETR or TOP in progress. The read job owns it while it runs. */
struct pop3_xfer {
	int fd;
	unsigned long msgno;
	uint64_t off;  /* next byte of the file to read */
	uint64_t sent; /* bytes queued to the client */
	struct pop3_conv conv;
	char *in, *out;
	size_t outlen;
	int eof;
	int waiting; /* for the output to drain */
	/* The +OK line, sent with the first chunk: one segment for a small
	 * message, not a line and then data behind Nagle and delayed ACK. */
	char head[64];
	size_t headlen;
	const char *error;
	char errbuf[256];
};

struct pop3_session {
	struct pop3_server *srv;
	struct env *env;
	struct io *io;
	enum pop3_listener listener;
	enum pop3_state state;
	char id[24];
	char ip[INET6_ADDRSTRLEN];
	int port;
	struct sockaddr_storage peer;
	char local_addr[64];

	char user[SASL_FIELD_MAX]; /* USER's argument, "" when none */
	char account[DIRECTORY_ADDRESS_MAX + 1]; /* "" until logged in */
	char mech[8];
	char maildir[PATH_MAX];
	int locked;

	struct pop3_msg *msgs; /* the snapshot taken at login */
	size_t count;
	struct pop3_xfer *xfer;
	/* LIST or UIDL without an argument, sent as the output drains: the
	 * kind (POP3_LISTING_*), the next index and the lines sent. */
	int listing;
	size_t list_next;
	size_t list_lines;

	unsigned errors;
	unsigned auth_failures;
	/* The transcript's share of the logs (log.max_lines_per_session),
	 * and whether the last command traces mail or a login
	 * (POP3_F_TRACE): its replies are logged past the limit too. */
	struct log_budget log_budget;
	int log_trace;
	unsigned retrieved;
	unsigned removed;
	struct server_line_reader line; /* command and SASL lines */
	int job;			/* a worker job holds the session */
	int gone;			/* closed while a job was running */
	int closed;			/* no longer counted by the server */
	int shutdown;			/* close once the current step ends */
	int close_after_delay;
	int blocked; /* failed-login screening blocked the IP */
	struct io_timer *delay;
	struct io_timer *stall; /* the write timeout */
	/* pop3.timeout_idle counted from the last command (or the TLS
	 * handshake's start): bytes that trickle in without ending a line
	 * do not restart it, as they restart the read timeout. */
	struct io_timer *deadline;
	char delayed_reply[POP3_REPLY_MAX];
};

/* One worker job; `work` runs on a worker, `done` on the loop. */
struct pop3_job {
	struct pop3_session *s;
	void (*work)(struct env_thread *t, struct pop3_job *j);
	void (*done)(struct pop3_session *s, struct pop3_job *j);
	/* auth */
	char user[SASL_FIELD_MAX];
	char pass[SASL_FIELD_MAX];
	char ip[INET6_ADDRSTRLEN];
	int64_t now;
	const struct screen *screen;
	struct screen *blocks; /* asked whether the IP is blocked now */
	int trusted;
	int blocked; /* the IP was blocked: no password was checked */
	int result;
	const char *reason;
	struct directory_account account;
	unsigned char fp[SCREEN_FP_SIZE]; /* of what a failed login tried */
	/* scan, open, expunge */
	char maildir[PATH_MAX];
	struct pop3_msg *msgs;
	size_t count;
	char name[NAME_MAX + 8];
	int in_cur;
	int mark_seen;
	unsigned long msgno;
	int64_t top_lines;
	int fd;
	int err;
	size_t failed;
	const char *error;
	char errbuf[512];
	/* read */
	struct pop3_xfer *xfer;
};

static void pop3_io_cb(struct io *io, enum io_event ev, void *arg);
static void pop3_process(struct pop3_session *s);
static void pop3_free(struct pop3_session *s);
static void pop3_xfer_next(struct pop3_session *s);
static void pop3_wait_output(struct pop3_session *s);

static int64_t pop3_setting(const struct pop3_session *s, enum settings_id id)
{
	return settings_int(s->env->settings, id);
}

static void pop3_log(struct pop3_session *s, const char *dir, const char *fmt,
		     ...) __attribute__((format(printf, 3, 4)));
/*
 * Writes one transcript line, or counts it (log_budget_admit): past
 * log.max_lines_per_session only the events that keep, the commands that
 * trace mail or a login (POP3_F_TRACE) with their replies, and -ERR
 * replies are written. The one place that decides what of a session
 * reaches the log.
 */
static void pop3_log_line(struct pop3_session *s, const char *dir, int keep,
			  const char *text)
{
	if (s->log_trace || (strcmp(dir, LOG_TO_PEER) == 0 && text[0] == '-'))
		keep = 1;
	if (log_budget_admit(&s->log_budget, LOG_POP3, s->id,
			     pop3_setting(s, SETTING_LOG_MAX_LINES_PER_SESSION),
			     dir, keep, strlen(text)))
		log_write(LOG_POP3, s->id, dir, "%s", text);
}

/* Logs an event (always kept) or a reply line. */
static void pop3_log(struct pop3_session *s, const char *dir, const char *fmt,
		     ...)
{
	char text[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	pop3_log_line(s, dir, strcmp(dir, LOG_EVENT) == 0, text);
}

/* Logs a line from the client: a command, which traces mail or a login
 * when trace (its replies are then kept past the transcript limit). */
static void pop3_log_peer(struct pop3_session *s, int trace, const char *fmt,
			  ...) __attribute__((format(printf, 3, 4)));
static void pop3_log_peer(struct pop3_session *s, int trace, const char *fmt,
			  ...)
{
	char text[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	s->log_trace = trace;
	pop3_log_line(s, LOG_FROM_PEER, 0, text);
}

/* Sends one reply line and logs it; -ERR replies count as client errors
 * (STYLE.md). Replies may quote client text, so the log copy is
 * sanitized. */
static void pop3_reply(struct pop3_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void pop3_reply(struct pop3_session *s, const char *fmt, ...)
{
	char line[POP3_REPLY_MAX], safe[POP3_REPLY_MAX * 2];
	va_list ap;
	int n;

	if (s->io == NULL)
		return;
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line))
		n = sizeof(line) - 1;
	log_sanitize(safe, sizeof(safe), line, (size_t)n);
	pop3_log_line(s, LOG_TO_PEER, 0, safe);
	if (line[0] == '-')
		s->errors++;
	io_write(s->io, line, (size_t)n);
	io_write(s->io, "\r\n", 2);
}

static void pop3_deadline_cb(void *arg);

/* Starts the autologout timer again: RFC 1939 3 lets a command reset it,
 * not a byte (a client that sends one byte at a time, and never ends the
 * line, is closed all the same). */
static void pop3_restart_deadline(struct pop3_session *s)
{
	if (s->deadline == NULL)
		s->deadline = io_timer_new(s->env->loop, pop3_deadline_cb, s);
	if (s->deadline != NULL)
		io_timer_add(s->deadline,
			     pop3_setting(s, SETTING_POP3_TIMEOUT_IDLE) * 1000);
}

static void pop3_set_timeout(struct pop3_session *s)
{
	io_set_read_timeout(s->io,
			    pop3_setting(s, SETTING_POP3_TIMEOUT_IDLE) * 1000);
	pop3_restart_deadline(s);
}

/* Sends a last reply and closes once it is written. */
static void pop3_close(struct pop3_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void pop3_close(struct pop3_session *s, const char *fmt, ...)
{
	char line[POP3_REPLY_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	pop3_reply(s, "%s", line);
	s->state = POP3_STATE_QUIT;
	io_pause(s->io);
	/* The close timer: a client that never reads this line does not
	 * keep its descriptor. */
	pop3_wait_output(s);
	/* A client that reconnects as soon as it has read this line finds
	 * its slot free (the per-IP limits). */
	pop3_server_session_closing(s->srv, s);
}

/* The state to read commands in. */
static enum pop3_state pop3_command_state(const struct pop3_session *s)
{
	return s->account[0] != '\0' ? POP3_STATE_TRANSACTION
				     : POP3_STATE_AUTHORIZATION;
}

/* A busy step ended: read commands again, or close when shutting down. */
static void pop3_ready(struct pop3_session *s)
{
	if (s->shutdown) {
		pop3_close(s, "-ERR [SYS/TEMP] Server shutting down");
		return;
	}
	s->state = pop3_command_state(s);
	pop3_set_timeout(s);
	io_resume(s->io);
	pop3_process(s);
}

static void pop3_greet(struct pop3_session *s)
{
	s->state = POP3_STATE_AUTHORIZATION;
	pop3_set_timeout(s);
	/* No APOP timestamp: APOP needs the clear password, which the
	 * directory does not keep (argon2id hashes only). */
	pop3_reply(s, "+OK %s Petrel POP3 server ready", s->env->cfg->hostname);
}

void pop3_session_new(struct pop3_server *srv, struct env *env, int fd,
		      const struct sockaddr *sa, socklen_t salen,
		      enum pop3_listener listener, const char *local_addr)
{
	struct pop3_session *s;
	char ip[INET6_ADDRSTRLEN];
	unsigned char rnd[6];
	int port;

	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)sa;
		inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
		port = ntohs(s6->sin6_port);
	} else {
		const struct sockaddr_in *s4 = (const void *)sa;
		inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
		port = ntohs(s4->sin_port);
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		/* The server gives the slot back (server_session_opened
		 * was not called). */
		close(fd);
		return;
	}
	s->srv = srv;
	s->env = env;
	s->listener = listener;
	randombytes_buf(rnd, sizeof(rnd));
	snprintf(s->id, sizeof(s->id), "%02X%02X%02X%02X%02X%02X", rnd[0],
		 rnd[1], rnd[2], rnd[3], rnd[4], rnd[5]);
	memcpy(s->ip, ip, sizeof(s->ip));
	s->port = port;
	if (salen <= sizeof(s->peer))
		memcpy(&s->peer, sa, salen);
	snprintf(s->local_addr, sizeof(s->local_addr), "%s", local_addr);
	pop3_server_session_opened(srv, s);
	pop3_log(s, LOG_EVENT, "connect from [%s]:%d to %s listener %s", s->ip,
		 s->port, listener == POP3_LISTENER_POP3S ? "pop3s" : "pop3",
		 local_addr);
	s->io = io_new(env->loop, fd,
		       listener == POP3_LISTENER_POP3S ? env->tls : NULL,
		       pop3_io_cb, s);
	if (s->io == NULL) {
		pop3_log(s, LOG_EVENT, "cannot set up the connection");
		pop3_free(s);
		return;
	}
	if (listener == POP3_LISTENER_POP3S) {
		s->state = POP3_STATE_HANDSHAKE;
		pop3_set_timeout(s);
	} else {
		pop3_greet(s);
	}
}

static void pop3_xfer_free(struct pop3_session *s)
{
	struct pop3_xfer *x = s->xfer;

	if (x == NULL)
		return;
	if (x->fd >= 0)
		close(x->fd);
	free(x->in);
	free(x->out);
	free(x);
	s->xfer = NULL;
	if (s->stall != NULL)
		io_timer_del(s->stall);
}

static void pop3_free(struct pop3_session *s)
{
	struct pop3_server *srv = s->srv;

	io_free(s->io);
	s->io = NULL;
	if (!s->closed) {
		s->closed = 1;
		pop3_server_session_closed(srv, s);
	}
	if (s->stall != NULL)
		io_timer_del(s->stall);
	if (s->deadline != NULL)
		io_timer_del(s->deadline);
	if (s->job) {
		/* A worker holds the session: end when it returns. */
		s->gone = 1;
		return;
	}
	io_timer_free(s->delay);
	pop3_xfer_free(s);
	io_timer_free(s->stall);
	io_timer_free(s->deadline);
	if (s->locked)
		pop3_server_unlock(srv, s->account);
	log_budget_flush(&s->log_budget, LOG_POP3, s->id);
	pop3_log(s, LOG_EVENT,
		 "disconnected: %u retrieved, %u deleted, %u errors",
		 s->retrieved, s->removed, s->errors);
	pop3_maildir_free(s->msgs, s->count);
	sodium_memzero(s->user, sizeof(s->user));
	free(s);
	pop3_server_session_released(srv);
}

void pop3_session_shutdown(struct pop3_session *s, int force)
{
	if (force) {
		pop3_free(s);
		return;
	}
	s->shutdown = 1;
	switch (s->state) {
	case POP3_STATE_AUTHORIZATION:
	case POP3_STATE_TRANSACTION:
	case POP3_STATE_SASL:
	case POP3_STATE_DRAIN:
		/* RFC 1939 6: no UPDATE state without QUIT. */
		pop3_close(s, "-ERR [SYS/TEMP] Server shutting down");
		break;
	case POP3_STATE_HANDSHAKE:
	case POP3_STATE_STLS:
		pop3_free(s);
		break;
	case POP3_STATE_BUSY:
	case POP3_STATE_LISTING:
	case POP3_STATE_QUIT:
		break;
	}
}

/* ---- worker jobs ---- */

static void pop3_job_work(void *thread_state, void *arg)
{
	struct pop3_job *j = arg;

	j->work(thread_state, j);
}

static void pop3_job_done(void *arg)
{
	struct pop3_job *j = arg;
	struct pop3_session *s = j->s;

	s->job = 0;
	if (s->gone) {
		/* done only cleans up the job's results here. */
		j->done(s, j);
		pop3_free(s);
	} else {
		/* done may end the session: s is not touched after it. */
		j->done(s, j);
	}
	sodium_memzero(j, sizeof(*j));
	free(j);
}

static struct pop3_job *
pop3_job_new(struct pop3_session *s,
	     void (*work)(struct env_thread *, struct pop3_job *),
	     void (*done)(struct pop3_session *, struct pop3_job *))
{
	struct pop3_job *j = calloc(1, sizeof(*j));

	if (j == NULL)
		return NULL;
	j->s = s;
	j->work = work;
	j->done = done;
	j->fd = -1;
	return j;
}

/* Hands j to a worker; the session waits. Returns 0, or -1 (j freed). */
static int pop3_job_submit(struct pop3_session *s, struct pop3_job *j)
{
	s->state = POP3_STATE_BUSY;
	io_pause(s->io);
	s->job = 1;
	if (io_workers_submit(s->env->workers, pop3_job_work, pop3_job_done,
			      j) < 0) {
		s->job = 0;
		sodium_memzero(j, sizeof(*j));
		free(j);
		return -1;
	}
	return 0;
}

/* ---- login ---- */

static int pop3_auth_offered(const struct pop3_session *s)
{
	return io_is_tls(s->io) ||
	       settings_bool(s->env->settings, SETTING_AUTH_ALLOW_PLAINTEXT);
}

static int pop3_check_plaintext(struct pop3_session *s)
{
	if (pop3_auth_offered(s))
		return 1;
	/* RFC 2595 2.1 and RFC 3206 [AUTH]; Dovecot's wording. */
	pop3_reply(s, "-ERR [AUTH] Plaintext authentication disallowed on "
		      "non-secure (SSL/TLS) connections");
	return 0;
}

static void pop3_scan_work(struct env_thread *t, struct pop3_job *j)
{
	const char *err = NULL;

	j->result = pop3_maildir_scan(j->maildir, &j->msgs, &j->count, &err);
	if (j->result < 0)
		snprintf(j->errbuf, sizeof(j->errbuf), "%s", err);
}

static void pop3_scan_done(struct pop3_session *s, struct pop3_job *j)
{
	uint64_t total = 0;

	if (s->gone) {
		pop3_maildir_free(j->msgs, j->count);
		return;
	}
	if (j->result < 0) {
		log_error("pop3: cannot read the mailbox of %s: %s", s->account,
			  j->errbuf);
		pop3_server_unlock(s->srv, s->account);
		s->locked = 0;
		s->account[0] = '\0';
		pop3_reply(s, "-ERR [SYS/TEMP] Cannot open the mailbox, try "
			      "again later");
		pop3_ready(s);
		return;
	}
	s->msgs = j->msgs;
	s->count = j->count;
	for (size_t i = 0; i < s->count; i++)
		total += s->msgs[i].size;
	/* The IP's failure delays start again from the first. */
	screen_auth_ok(s->env->screen, s->ip);
	pop3_log(s, LOG_EVENT,
		 "logged in as %s (%s): %zu messages, %llu octets", s->account,
		 s->mech, s->count, (unsigned long long)total);
	pop3_reply(s, "+OK Logged in, %zu messages (%llu octets)", s->count,
		   (unsigned long long)total);
	pop3_ready(s);
}

/* Authenticated: lock the mailbox and take its snapshot (RFC 1939 4). */
static void pop3_login(struct pop3_session *s, const char *account)
{
	struct pop3_job *j;
	int r;

	r = pop3_server_lock(s->srv, account);
	if (r <= 0) {
		pop3_log(s, LOG_EVENT, "%s: %s", account,
			 r == 0 ? "mailbox in use by another session"
				: "out of memory");
		pop3_reply(s, r == 0 ? "-ERR [IN-USE] Mailbox is locked by "
				       "another POP3 session"
				     : "-ERR [SYS/TEMP] Out of memory");
		pop3_ready(s);
		return;
	}
	snprintf(s->account, sizeof(s->account), "%s", account);
	s->locked = 1;
	j = pop3_job_new(s, pop3_scan_work, pop3_scan_done);
	if (j == NULL || !local_maildir_path(s->env->cfg->data_dir, account,
					     j->maildir, sizeof(j->maildir))) {
		free(j);
		goto fail;
	}
	snprintf(s->maildir, sizeof(s->maildir), "%s", j->maildir);
	if (pop3_job_submit(s, j) < 0)
		goto fail;
	return;
fail:
	pop3_server_unlock(s->srv, s->account);
	s->locked = 0;
	s->account[0] = '\0';
	pop3_reply(s, "-ERR [SYS/TEMP] Cannot open the mailbox");
	pop3_ready(s);
}

static void pop3_auth_reply_cb(void *arg)
{
	struct pop3_session *s = arg;

	if (s->blocked) {
		/* One reply to the command, and it says the session ends. */
		pop3_log(s, LOG_EVENT, "blocked by failed-login screening");
		pop3_close(s, "-ERR [SYS/TEMP] Too many failed logins, "
			      "closing");
		return;
	}
	if (s->close_after_delay) {
		pop3_log(s, LOG_EVENT, "too many authentication failures");
		pop3_close(s, "%s", s->delayed_reply);
		return;
	}
	pop3_reply(s, "%s", s->delayed_reply);
	pop3_ready(s);
}

static void pop3_auth_work(struct env_thread *t, struct pop3_job *j)
{
	int64_t until;

	/* Screening blocked the address since this session began (another
	 * session's failures, or a check that ran meanwhile): no password
	 * from it is checked any more, or each session open at the block
	 * would go on guessing (POP3_AUTH_FAILURES_MAX each). */
	if (!j->trusted &&
	    screen_blocked(j->blocks, j->ip, clock_now_ms(), &until)) {
		sodium_memzero(j->pass, sizeof(j->pass));
		j->blocked = 1;
		j->result = 0;
		j->reason = "blocked";
		return;
	}
	j->result = screening_login_check(t, j->screen, j->user, j->pass,
					  sizeof(j->pass), j->ip, j->now,
					  &j->account, &j->reason, j->fp);
}

static void pop3_auth_done(struct pop3_session *s, struct pop3_job *j)
{
	char safe_user[128];
	const char *reply;
	int64_t delay = pop3_setting(s, SETTING_AUTH_FAIL_DELAY_MS);
	int64_t until;

	if (s->gone)
		return;
	s->user[0] = '\0';
	if (j->result == 1) {
		pop3_login(s, j->account.address);
		return;
	}
	log_sanitize(safe_user, sizeof(safe_user), j->user, strlen(j->user));
	if (j->result < 0) {
		reply = "-ERR [SYS/TEMP] Temporary authentication failure";
		log_error("pop3: auth check failed for %s", safe_user);
	} else if (strcmp(j->reason, "disabled") == 0 ||
		   strcmp(j->reason, "frozen") == 0) {
		/* Said only to who gave the right password (directory.h);
		 * not a credentials problem, so not [AUTH] (RFC 3206). */
		reply = strcmp(j->reason, "frozen") == 0
				? "-ERR [SYS/PERM] Account is frozen; ask the "
				  "postmaster"
				: "-ERR [SYS/PERM] Account is disabled; ask "
				  "the "
				  "postmaster";
	} else {
		/* The same reply after the same delay, whatever the reason:
		 * no account enumeration. */
		reply = "-ERR [AUTH] Authentication failed";
	}
	snprintf(s->delayed_reply, sizeof(s->delayed_reply), "%s", reply);
	/* fail2ban-friendly: one line, fixed fields, never the password;
	 * the same line as SMTP's. */
	log_write(LOG_SECURITY, s->id, LOG_EVENT,
		  "auth failed: ip=%s port=%d account=%s mechanism=%s "
		  "service=pop3 reason=%s",
		  s->ip, s->port, safe_user, s->mech,
		  j->result < 0 ? "error" : j->reason);
	pop3_log(s, LOG_EVENT, "authentication failed for %s", safe_user);
	if (j->blocked) {
		s->blocked = 1;
	} else if (j->result == 0) {
		/* The same counts as SMTP's: switching protocols gains an
		 * attacker nothing. */
		delay = screening_auth_failed(s->env, "pop3", s->id, s->ip,
					      j->trusted, safe_user, j->fp,
					      &s->blocked);
		/* Blocked by another session while this check ran. */
		if (!j->trusted && screen_blocked(s->env->screen, s->ip,
						  clock_now_ms(), &until))
			s->blocked = 1;
		if (++s->auth_failures >= POP3_AUTH_FAILURES_MAX)
			s->close_after_delay = 1;
	}
	s->state = POP3_STATE_BUSY;
	if (s->delay == NULL)
		s->delay = io_timer_new(s->env->loop, pop3_auth_reply_cb, s);
	if (s->delay == NULL) {
		pop3_auth_reply_cb(s);
		return;
	}
	io_timer_add(s->delay, delay);
}

/* Hands a user and password to a worker for checking; wipes pass. */
static void pop3_auth_verify(struct pop3_session *s, const char *user,
			     char *pass, size_t pass_size)
{
	struct pop3_job *j = pop3_job_new(s, pop3_auth_work, pop3_auth_done);

	if (j != NULL) {
		snprintf(j->user, sizeof(j->user), "%s", user);
		snprintf(j->pass, sizeof(j->pass), "%s", pass);
		snprintf(j->ip, sizeof(j->ip), "%s", s->ip);
		j->now = clock_now();
		j->screen = s->env->screen;
		j->blocks = s->env->screen;
		j->trusted = policy_trust_host(
			s->env->trust, (const struct sockaddr *)&s->peer);
	}
	sodium_memzero(pass, pass_size);
	sodium_memzero(s->user, sizeof(s->user));
	if (j == NULL || pop3_job_submit(s, j) < 0) {
		pop3_reply(s,
			   "-ERR [SYS/TEMP] Temporary authentication failure");
		pop3_ready(s);
	}
}

/* ---- commands ---- */

enum {
	POP3_F_AUTHORIZATION = 1 << 0, /* before login */
	POP3_F_TRANSACTION = 1 << 1,   /* after login */
	POP3_F_NO_ARGS = 1 << 2,       /* takes no argument */
	POP3_F_SECRET = 1 << 3,	       /* argument never logged */
	/* Logged, with its replies, past log.max_lines_per_session: the
	 * commands that trace a login or a message. */
	POP3_F_TRACE = 1 << 4,
};

struct pop3_command {
	enum pop3_verb verb;
	unsigned flags;
	/* Validates; replies and returns 0 when refused, 1 to proceed. */
	int (*check)(struct pop3_session *s, const char *args, size_t len);
	void (*proceed)(struct pop3_session *s, const char *args, size_t len);
};

static void pop3_proceed_capa(struct pop3_session *s, const char *args,
			      size_t len)
{
	const char *lines[12];
	char note[48];
	size_t n = 0;
	int auth = s->account[0] == '\0';

	lines[n++] = "CAPA";
	lines[n++] = "TOP";
	lines[n++] = "UIDL";
	lines[n++] = "RESP-CODES";
	lines[n++] = "AUTH-RESP-CODE";
	lines[n++] = "PIPELINING";
	if (auth && pop3_auth_offered(s)) {
		lines[n++] = "USER";
		lines[n++] = "SASL PLAIN";
	}
	if (auth && !io_is_tls(s->io) && s->env->tls != NULL)
		lines[n++] = "STLS";
	lines[n++] = "IMPLEMENTATION Petrel";
	pop3_reply(s, "+OK Capability list follows");
	for (size_t i = 0; i < n; i++) {
		io_write(s->io, lines[i], strlen(lines[i]));
		io_write(s->io, "\r\n", 2);
	}
	io_write(s->io, ".\r\n", 3);
	snprintf(note, sizeof(note), "[%zu capability lines]", n);
	pop3_log_line(s, LOG_EVENT, 0, note);
}

static int pop3_check_stls(struct pop3_session *s, const char *args, size_t len)
{
	if (io_is_tls(s->io)) {
		pop3_reply(s, "-ERR TLS is already active");
		return 0;
	}
	if (s->env->tls == NULL) {
		pop3_reply(s, "-ERR [SYS/PERM] TLS is not available");
		return 0;
	}
	return 1;
}

static void pop3_proceed_stls(struct pop3_session *s, const char *args,
			      size_t len)
{
	pop3_reply(s, "+OK Begin TLS negotiation");
	/* RFC 2595 4: what the client sent after STLS in the clear is never
	 * read as commands; io_starttls discards it once this is flushed.
	 * Until then nothing is read: a client that never reads the +OK
	 * cannot stream plaintext into memory or keep resetting the idle
	 * timeout. */
	s->state = POP3_STATE_STLS;
	io_pause(s->io);
	pop3_wait_output(s);
}

static int pop3_check_user(struct pop3_session *s, const char *args, size_t len)
{
	if (!pop3_check_plaintext(s))
		return 0;
	if (args == NULL) {
		pop3_reply(s, "-ERR Syntax: USER name");
		return 0;
	}
	if (len > DIRECTORY_ADDRESS_MAX) {
		pop3_reply(s, "-ERR [AUTH] Invalid user name");
		return 0;
	}
	return 1;
}

static void pop3_proceed_user(struct pop3_session *s, const char *args,
			      size_t len)
{
	memcpy(s->user, args, len);
	s->user[len] = '\0';
	/* Whether the account exists is not said (RFC 1939 7 allows -ERR
	 * here; that would let anyone list our accounts). */
	pop3_reply(s, "+OK Send your password");
}

static int pop3_check_pass(struct pop3_session *s, const char *args, size_t len)
{
	if (!pop3_check_plaintext(s))
		return 0;
	if (s->user[0] == '\0') {
		pop3_reply(s, "-ERR USER first");
		return 0;
	}
	if (args == NULL) {
		pop3_reply(s, "-ERR Syntax: PASS password");
		return 0;
	}
	if (len >= SASL_FIELD_MAX) {
		s->user[0] = '\0';
		pop3_reply(s, "-ERR [AUTH] Password too long");
		return 0;
	}
	return 1;
}

static void pop3_proceed_pass(struct pop3_session *s, const char *args,
			      size_t len)
{
	char pass[SASL_FIELD_MAX], user[SASL_FIELD_MAX];

	/* RFC 1939 7: the whole rest of the line, spaces included. */
	memcpy(pass, args, len);
	pass[len] = '\0';
	snprintf(user, sizeof(user), "%s", s->user);
	snprintf(s->mech, sizeof(s->mech), "USER");
	pop3_auth_verify(s, user, pass, sizeof(pass));
	sodium_memzero(user, sizeof(user));
}

static void pop3_proceed_apop(struct pop3_session *s, const char *args,
			      size_t len)
{
	pop3_reply(s, "-ERR [AUTH] APOP is not available");
}

/* One SASL PLAIN message (the initial response or a response line). */
static void pop3_sasl_step(struct pop3_session *s, const char *text, size_t len)
{
	char decoded[SASL_FIELD_MAX * 3];
	char user[SASL_FIELD_MAX], pass[SASL_FIELD_MAX];
	long n;

	if (len == 1 && text[0] == '*') {
		/* RFC 5034 4: the client cancelled. */
		pop3_reply(s, "-ERR Authentication cancelled");
		s->state = POP3_STATE_AUTHORIZATION;
		return;
	}
	n = sasl_b64decode(text, len, decoded, sizeof(decoded), 1);
	if (n < 0 || sasl_plain_split(decoded, (size_t)n, user, pass) < 0) {
		pop3_reply(s, n < 0 ? "-ERR Cannot decode the response"
				    : "-ERR Malformed PLAIN response");
		s->state = POP3_STATE_AUTHORIZATION;
	} else {
		pop3_auth_verify(s, user, pass, sizeof(pass));
	}
	sodium_memzero(decoded, sizeof(decoded));
	sodium_memzero(user, sizeof(user));
	sodium_memzero(pass, sizeof(pass));
}

static int pop3_check_auth(struct pop3_session *s, const char *args, size_t len)
{
	if (args == NULL) {
		/* The mechanism list (RFC 1734's form, which Outlook and
		 * others still ask for). */
		pop3_reply(s, "+OK");
		if (pop3_auth_offered(s))
			io_write(s->io, "PLAIN\r\n", 7);
		io_write(s->io, ".\r\n", 3);
		return 0;
	}
	return pop3_check_plaintext(s);
}

static void pop3_proceed_auth(struct pop3_session *s, const char *args,
			      size_t len)
{
	const char *sp = memchr(args, ' ', len);
	size_t mlen = sp != NULL ? (size_t)(sp - args) : len;
	const char *init = sp != NULL ? sp + 1 : NULL;
	size_t ilen = sp != NULL ? len - mlen - 1 : 0;

	if (mlen != 5 || strncasecmp(args, "PLAIN", 5) != 0) {
		pop3_reply(s, "-ERR Unsupported authentication mechanism");
		return;
	}
	snprintf(s->mech, sizeof(s->mech), "PLAIN");
	s->user[0] = '\0';
	if (init == NULL) {
		/* RFC 5034 4: an empty challenge. */
		if (s->io != NULL)
			io_write(s->io, "+ \r\n", 4);
		pop3_log(s, LOG_TO_PEER, "+ ");
		s->state = POP3_STATE_SASL;
		return;
	}
	/* "=" is an empty initial response (RFC 5034 4). */
	if (ilen == 1 && init[0] == '=')
		ilen = 0;
	pop3_sasl_step(s, init, ilen);
}

/* A message number of the snapshot that is not deleted: its index, or -1
 * after replying -ERR. */
static long pop3_message(struct pop3_session *s, const char *args, size_t len)
{
	unsigned long n;

	if (args == NULL || !pop3_parse_msgnum(args, len, &n)) {
		pop3_reply(s, "-ERR Invalid message number");
		return -1;
	}
	if (n > s->count) {
		pop3_reply(s, "-ERR No such message");
		return -1;
	}
	if (s->msgs[n - 1].deleted) {
		pop3_reply(s, "-ERR Message %lu is deleted", n);
		return -1;
	}
	return (long)(n - 1);
}

static void pop3_totals(const struct pop3_session *s, size_t *count_r,
			uint64_t *size_r)
{
	size_t count = 0;
	uint64_t size = 0;

	for (size_t i = 0; i < s->count; i++) {
		if (s->msgs[i].deleted)
			continue;
		count++;
		size += s->msgs[i].size;
	}
	*count_r = count;
	*size_r = size;
}

static void pop3_proceed_stat(struct pop3_session *s, const char *args,
			      size_t len)
{
	size_t count;
	uint64_t size;

	pop3_totals(s, &count, &size);
	pop3_reply(s, "+OK %zu %llu", count, (unsigned long long)size);
}

enum {
	POP3_LISTING_LIST = 1,
	POP3_LISTING_UIDL = 2,
};

/* Queues head (the +OK line, or NULL) and the next lines of the listing,
 * up to POP3_OUTPUT_HIGH of output. Returns 1 when the whole listing (with
 * its "." line) is queued, 0 when the rest waits for the output to
 * drain. */
static int pop3_listing_next(struct pop3_session *s, const char *head)
{
	char chunk[8192];
	size_t len = 0;
	int done;

	/* The +OK line goes out with the first lines (one TLS record). */
	if (head != NULL) {
		len = strlen(head);
		memcpy(chunk, head, len);
	}

	while (s->list_next < s->count &&
	       io_output_len(s->io) + len < POP3_OUTPUT_HIGH) {
		const struct pop3_msg *m = &s->msgs[s->list_next++];
		char line[POP3_UIDL_MAX + 48];
		int n;

		if (m->deleted)
			continue;
		if (s->listing == POP3_LISTING_UIDL)
			n = snprintf(line, sizeof(line), "%zu %s\r\n",
				     s->list_next, m->uidl);
		else
			n = snprintf(line, sizeof(line), "%zu %llu\r\n",
				     s->list_next, (unsigned long long)m->size);
		if (n < 0 || (size_t)n >= sizeof(line))
			continue; /* cannot happen: the sizes are bounded */
		if (len + (size_t)n > sizeof(chunk)) {
			io_write(s->io, chunk, len);
			len = 0;
		}
		memcpy(chunk + len, line, (size_t)n);
		len += (size_t)n;
		s->list_lines++;
	}
	done = s->list_next >= s->count;
	if (done) {
		if (len + 3 > sizeof(chunk)) {
			io_write(s->io, chunk, len);
			len = 0;
		}
		memcpy(chunk + len, ".\r\n", 3);
		len += 3;
	}
	if (len > 0)
		io_write(s->io, chunk, len);
	if (done) {
		char note[48];

		snprintf(note, sizeof(note), "[%zu lines]", s->list_lines);
		pop3_log_line(s, LOG_EVENT, 0, note);
		s->listing = 0;
	}
	return done;
}

/* LIST and UIDL without an argument. A listing of 10,000 messages is
 * ~400 KB, and a client may ask for it again and again without reading:
 * it is queued a slice at a time, as the client reads (like RETR). */
static void pop3_listing(struct pop3_session *s, int uidl)
{
	size_t count;
	uint64_t size;
	char head[96]; /* fits "+OK <20 digits> messages (<20> octets)" */

	pop3_totals(s, &count, &size);
	if (uidl)
		snprintf(head, sizeof(head), "+OK Unique-ID listing follows");
	else
		snprintf(head, sizeof(head), "+OK %zu messages (%llu octets)",
			 count, (unsigned long long)size);
	pop3_log(s, LOG_TO_PEER, "%s", head);
	memcpy(head + strlen(head), "\r\n", 3);
	s->listing = uidl ? POP3_LISTING_UIDL : POP3_LISTING_LIST;
	s->list_next = 0;
	s->list_lines = 0;
	if (pop3_listing_next(s, head))
		return;
	/* IO_EV_FLUSHED sends the next slice. */
	s->state = POP3_STATE_LISTING;
	io_pause(s->io);
	pop3_wait_output(s);
}

static void pop3_proceed_list(struct pop3_session *s, const char *args,
			      size_t len)
{
	long i;

	if (args == NULL) {
		pop3_listing(s, 0);
		return;
	}
	if ((i = pop3_message(s, args, len)) < 0)
		return;
	pop3_reply(s, "+OK %ld %llu", i + 1,
		   (unsigned long long)s->msgs[i].size);
}

static void pop3_proceed_uidl(struct pop3_session *s, const char *args,
			      size_t len)
{
	long i;

	if (args == NULL) {
		pop3_listing(s, 1);
		return;
	}
	if ((i = pop3_message(s, args, len)) < 0)
		return;
	pop3_reply(s, "+OK %ld %s", i + 1, s->msgs[i].uidl);
}

static void pop3_proceed_dele(struct pop3_session *s, const char *args,
			      size_t len)
{
	long i = pop3_message(s, args, len);

	if (i < 0)
		return;
	/* RFC 1939 5: only marked; removed in the UPDATE state. */
	s->msgs[i].deleted = 1;
	pop3_reply(s, "+OK Message %ld deleted", i + 1);
}

static void pop3_proceed_noop(struct pop3_session *s, const char *args,
			      size_t len)
{
	pop3_reply(s, "+OK");
}

static void pop3_proceed_rset(struct pop3_session *s, const char *args,
			      size_t len)
{
	size_t count;
	uint64_t size;

	for (size_t i = 0; i < s->count; i++)
		s->msgs[i].deleted = 0;
	pop3_totals(s, &count, &size);
	pop3_reply(s, "+OK %zu messages (%llu octets)", count,
		   (unsigned long long)size);
}

/* ---- RETR and TOP: streamed in chunks read on the workers ---- */

static void pop3_stall_cb(void *arg)
{
	struct pop3_session *s = arg;

	pop3_log(s, LOG_EVENT, "timeout: the client stopped reading%s",
		 s->state == POP3_STATE_QUIT ? " (last reply)" : "");
	pop3_free(s);
}

/* Output waits for the client (a slice of a listing or a message, replies
 * over the bound, the STLS +OK, the last reply): the write timeout closes a
 * client that does not read it within pop3.timeout_idle. IO_EV_FLUSHED
 * stops the timer. */
static void pop3_wait_output(struct pop3_session *s)
{
	if (s->stall == NULL)
		s->stall = io_timer_new(s->env->loop, pop3_stall_cb, s);
	if (s->stall != NULL)
		io_timer_add(s->stall,
			     pop3_setting(s, SETTING_POP3_TIMEOUT_IDLE) * 1000);
}

static void pop3_xfer_end(struct pop3_session *s)
{
	struct pop3_xfer *x = s->xfer;

	pop3_log(s, LOG_EVENT, "message %lu: %llu octets sent", x->msgno,
		 (unsigned long long)x->sent);
	pop3_xfer_free(s);
	pop3_ready(s);
}

static void pop3_read_work(struct env_thread *t, struct pop3_job *j)
{
	struct pop3_xfer *x = j->xfer;
	const char *err = NULL;
	size_t got = 0;
	long n = 1;

	/* Fill the chunk, or reach the end: the end line then goes out with
	 * the last data instead of alone behind Nagle and delayed ACK. */
	while (got < POP3_XFER_CHUNK && n > 0) {
		n = pop3_maildir_read(x->fd, x->off, x->in + got,
				      POP3_XFER_CHUNK - got, &err);
		if (n < 0) {
			snprintf(x->errbuf, sizeof(x->errbuf), "%s", err);
			x->error = x->errbuf;
			x->outlen = 0;
			return;
		}
		x->off += (uint64_t)n;
		got += (size_t)n;
	}
	/* The first chunk follows the +OK line already in out. */
	x->outlen = x->headlen +
		    pop3_conv_feed(&x->conv, x->in, got, x->out + x->headlen);
	if (n == 0 || x->conv.done) {
		x->outlen += pop3_conv_finish(&x->conv, x->out + x->outlen);
		x->eof = 1;
	}
}

static void pop3_read_done(struct pop3_session *s, struct pop3_job *j)
{
	struct pop3_xfer *x = s->xfer;

	if (s->gone)
		return;
	if (x->error != NULL) {
		log_error("pop3: %s: message %lu: %s", s->account, x->msgno,
			  x->error);
		if (x->headlen > 0) {
			/* Nothing sent yet: a plain -ERR will do. */
			pop3_reply(s, "-ERR [SYS/TEMP] Cannot read message %lu",
				   x->msgno);
			pop3_xfer_free(s);
			pop3_ready(s);
			return;
		}
		/* The +OK is out: the only way to say it is to close. */
		pop3_free(s);
		return;
	}
	/* The first chunk starts with the +OK line (one TLS record). */
	x->headlen = 0;
	io_write(s->io, x->out, x->outlen);
	x->sent += x->outlen;
	if (x->eof) {
		pop3_xfer_end(s);
		return;
	}
	if (io_output_len(s->io) < POP3_XFER_HIGH) {
		pop3_xfer_next(s);
		return;
	}
	/* Wait for IO_EV_FLUSHED; a client that stops reading is closed. */
	x->waiting = 1;
	pop3_wait_output(s);
}

static void pop3_xfer_next(struct pop3_session *s)
{
	struct pop3_job *j = pop3_job_new(s, pop3_read_work, pop3_read_done);

	if (j != NULL) {
		j->xfer = s->xfer;
		if (pop3_job_submit(s, j) == 0)
			return;
	}
	pop3_log(s, LOG_EVENT, "cannot queue a read: closing");
	pop3_free(s);
}

static void pop3_open_work(struct env_thread *t, struct pop3_job *j)
{
	const char *err = NULL;

	j->fd = pop3_maildir_open(j->maildir, j->msgs->name, j->in_cur,
				  j->mark_seen, j->name, sizeof(j->name),
				  &j->in_cur, &err);
	if (j->fd < 0) {
		j->err = errno;
		snprintf(j->errbuf, sizeof(j->errbuf), "%s", err);
	}
}

static void pop3_open_done(struct pop3_session *s, struct pop3_job *j)
{
	struct pop3_msg *m = j->msgs;
	struct pop3_xfer *x;
	char *name;

	if (s->gone) {
		if (j->fd >= 0)
			close(j->fd);
		return;
	}
	if (j->fd < 0) {
		if (j->err == ENOENT) {
			pop3_log(s, LOG_EVENT, "message %lu is gone", j->msgno);
			pop3_reply(s,
				   "-ERR Message %lu was removed by "
				   "another client",
				   j->msgno);
		} else {
			log_error("pop3: %s: %s", s->account, j->errbuf);
			pop3_reply(s,
				   "-ERR [SYS/TEMP] Cannot read message "
				   "%lu",
				   j->msgno);
		}
		pop3_ready(s);
		return;
	}
	if (strcmp(j->name, m->name) != 0 && (name = strdup(j->name)) != NULL) {
		free(m->name);
		m->name = name;
		m->in_cur = j->in_cur != 0;
	}
	x = calloc(1, sizeof(*x));
	if (x != NULL) {
		x->in = malloc(POP3_XFER_CHUNK);
		x->out = malloc(2 * POP3_XFER_CHUNK + sizeof(x->head) + 8);
	}
	if (x == NULL || x->in == NULL || x->out == NULL) {
		if (x != NULL) {
			free(x->in);
			free(x->out);
			free(x);
		}
		close(j->fd);
		pop3_reply(s, "-ERR [SYS/TEMP] Out of memory");
		pop3_ready(s);
		return;
	}
	x->fd = j->fd;
	x->msgno = j->msgno;
	pop3_conv_init(&x->conv, 1, j->top_lines);
	s->xfer = x;
	if (j->top_lines < 0) {
		s->retrieved++;
		snprintf(x->head, sizeof(x->head), "+OK %llu octets",
			 (unsigned long long)m->size);
	} else {
		snprintf(x->head, sizeof(x->head),
			 "+OK Top of message follows");
	}
	pop3_log(s, LOG_TO_PEER, "%s", x->head);
	x->headlen = strlen(x->head);
	memcpy(x->out, x->head, x->headlen);
	memcpy(x->out + x->headlen, "\r\n", 2);
	x->headlen += 2;
	pop3_xfer_next(s);
}

static void pop3_retrieve(struct pop3_session *s, long i, int64_t top_lines)
{
	struct pop3_job *j = pop3_job_new(s, pop3_open_work, pop3_open_done);

	if (j == NULL) {
		pop3_reply(s, "-ERR [SYS/TEMP] Out of memory");
		return;
	}
	snprintf(j->maildir, sizeof(j->maildir), "%s", s->maildir);
	/* The job reads the message's entry; the session leaves the snapshot
	 * alone while it waits. */
	j->msgs = &s->msgs[i];
	j->in_cur = s->msgs[i].in_cur;
	j->msgno = (unsigned long)i + 1;
	j->top_lines = top_lines;
	j->mark_seen = top_lines < 0;
	if (pop3_job_submit(s, j) < 0) {
		pop3_reply(s, "-ERR [SYS/TEMP] Server busy");
		pop3_ready(s);
	}
}

static void pop3_proceed_retr(struct pop3_session *s, const char *args,
			      size_t len)
{
	long i = pop3_message(s, args, len);

	if (i >= 0)
		pop3_retrieve(s, i, -1);
}

static void pop3_proceed_top(struct pop3_session *s, const char *args,
			     size_t len)
{
	unsigned long n, lines;

	if (args == NULL || !pop3_parse_top(args, len, &n, &lines)) {
		pop3_reply(s, "-ERR Syntax: TOP message lines");
		return;
	}
	if (n > s->count) {
		pop3_reply(s, "-ERR No such message");
		return;
	}
	if (s->msgs[n - 1].deleted) {
		pop3_reply(s, "-ERR Message %lu is deleted", n);
		return;
	}
	pop3_retrieve(s, (long)n - 1, (int64_t)lines);
}

/* ---- QUIT and the UPDATE state ---- */

static void pop3_expunge_work(struct env_thread *t, struct pop3_job *j)
{
	const char *err = NULL;

	j->failed = pop3_maildir_expunge(j->maildir, j->msgs, j->count, &err);
	if (j->failed > 0)
		snprintf(j->errbuf, sizeof(j->errbuf), "%s", err);
}

static void pop3_expunge_done(struct pop3_session *s, struct pop3_job *j)
{
	size_t marked = 0;

	for (size_t i = 0; i < s->count; i++)
		marked += s->msgs[i].deleted;
	s->removed = (unsigned)(marked - j->failed);
	if (j->failed > 0)
		log_error("pop3: %s: %zu deleted messages not removed: %s",
			  s->account, j->failed, j->errbuf);
	pop3_log(s, LOG_EVENT, "update: %zu of %zu deleted messages removed",
		 marked - j->failed, marked);
	if (s->gone)
		return;
	if (j->failed > 0)
		pop3_close(s, "-ERR [SYS/TEMP] Some deleted messages not "
			      "removed");
	else
		pop3_close(s,
			   "+OK %s Petrel POP3 server signing off (%zu "
			   "messages deleted)",
			   s->env->cfg->hostname, marked);
}

static void pop3_proceed_quit(struct pop3_session *s, const char *args,
			      size_t len)
{
	struct pop3_job *j;
	int any = 0;

	if (s->account[0] == '\0') {
		pop3_close(s, "+OK %s Petrel POP3 server signing off",
			   s->env->cfg->hostname);
		return;
	}
	for (size_t i = 0; i < s->count && !any; i++)
		any = s->msgs[i].deleted;
	if (!any) {
		pop3_close(s, "+OK %s Petrel POP3 server signing off",
			   s->env->cfg->hostname);
		return;
	}
	/* RFC 1939 6: the UPDATE state. */
	j = pop3_job_new(s, pop3_expunge_work, pop3_expunge_done);
	if (j != NULL) {
		snprintf(j->maildir, sizeof(j->maildir), "%s", s->maildir);
		j->msgs = s->msgs;
		j->count = s->count;
		if (pop3_job_submit(s, j) == 0)
			return;
	}
	pop3_close(s, "-ERR [SYS/TEMP] Some deleted messages not removed");
}

static const struct pop3_command pop3_commands[] = {
	{POP3_CMD_CAPA,
	 POP3_F_AUTHORIZATION | POP3_F_TRANSACTION | POP3_F_NO_ARGS, NULL,
	 pop3_proceed_capa},
	{POP3_CMD_STLS, POP3_F_AUTHORIZATION | POP3_F_NO_ARGS | POP3_F_TRACE,
	 pop3_check_stls, pop3_proceed_stls},
	{POP3_CMD_USER, POP3_F_AUTHORIZATION, pop3_check_user,
	 pop3_proceed_user},
	{POP3_CMD_PASS, POP3_F_AUTHORIZATION | POP3_F_SECRET | POP3_F_TRACE,
	 pop3_check_pass, pop3_proceed_pass},
	{POP3_CMD_APOP, POP3_F_AUTHORIZATION | POP3_F_SECRET | POP3_F_TRACE,
	 NULL, pop3_proceed_apop},
	{POP3_CMD_AUTH, POP3_F_AUTHORIZATION | POP3_F_SECRET | POP3_F_TRACE,
	 pop3_check_auth, pop3_proceed_auth},
	{POP3_CMD_STAT, POP3_F_TRANSACTION | POP3_F_NO_ARGS, NULL,
	 pop3_proceed_stat},
	{POP3_CMD_LIST, POP3_F_TRANSACTION, NULL, pop3_proceed_list},
	{POP3_CMD_UIDL, POP3_F_TRANSACTION, NULL, pop3_proceed_uidl},
	{POP3_CMD_RETR, POP3_F_TRANSACTION | POP3_F_TRACE, NULL,
	 pop3_proceed_retr},
	{POP3_CMD_TOP, POP3_F_TRANSACTION, NULL, pop3_proceed_top},
	{POP3_CMD_DELE, POP3_F_TRANSACTION | POP3_F_TRACE, NULL,
	 pop3_proceed_dele},
	{POP3_CMD_NOOP,
	 POP3_F_AUTHORIZATION | POP3_F_TRANSACTION | POP3_F_NO_ARGS, NULL,
	 pop3_proceed_noop},
	{POP3_CMD_RSET, POP3_F_TRANSACTION | POP3_F_NO_ARGS, NULL,
	 pop3_proceed_rset},
	{POP3_CMD_QUIT,
	 POP3_F_AUTHORIZATION | POP3_F_TRANSACTION | POP3_F_NO_ARGS |
		 POP3_F_TRACE,
	 NULL, pop3_proceed_quit},
};

static const struct pop3_command *pop3_command_find(enum pop3_verb verb)
{
	for (size_t i = 0; i < sizeof(pop3_commands) / sizeof(pop3_commands[0]);
	     i++)
		if (pop3_commands[i].verb == verb)
			return &pop3_commands[i];
	return NULL;
}

/* The transcript line of a command; secrets are cut (STYLE.md 5). */
static void pop3_log_command(struct pop3_session *s,
			     const struct pop3_command *c,
			     const struct pop3_cmd *cmd, const char *line,
			     size_t len)
{
	char safe[600];
	size_t keep = len;
	int redact = 0;
	int trace = c != NULL && (c->flags & POP3_F_TRACE);

	if (c != NULL && (c->flags & POP3_F_SECRET) && cmd->args != NULL) {
		const char *sp = NULL;

		/* AUTH: the mechanism is fine to log; PASS, APOP: nothing. */
		if (cmd->verb == POP3_CMD_AUTH)
			sp = memchr(cmd->args, ' ', cmd->args_len);
		keep = sp != NULL ? (size_t)(sp - line)
		       : cmd->verb == POP3_CMD_AUTH
			       ? len
			       : (size_t)(cmd->args - 1 - line);
		redact = keep < len;
	} else if (c == NULL && len > POP3_KEYWORD_MAX + 4) {
		/* An unknown line may be a SASL response or a password sent
		 * out of turn (after a refused AUTH): only its start. */
		pop3_log_peer(s, 0, "%s... [unknown, %zu bytes]",
			      log_sanitize(safe, sizeof(safe), line,
					   POP3_KEYWORD_MAX),
			      len);
		return;
	}
	pop3_log_peer(s, trace, "%s%s",
		      log_sanitize(safe, sizeof(safe), line, keep),
		      redact ? " <redacted>" : "");
}

static void pop3_command(struct pop3_session *s, const char *line, size_t len)
{
	const struct pop3_command *c = NULL;
	struct pop3_cmd cmd;
	unsigned want;

	if (pop3_parse_command(line, len, &cmd) == 1)
		c = pop3_command_find(cmd.verb);
	pop3_log_command(s, c, &cmd, line, len);
	if (c == NULL) {
		pop3_reply(s, "-ERR Unknown command");
		return;
	}
	want = s->account[0] != '\0' ? POP3_F_TRANSACTION
				     : POP3_F_AUTHORIZATION;
	if (!(c->flags & want)) {
		pop3_reply(s, want == POP3_F_TRANSACTION
				      ? "-ERR Command not valid after login"
				      : "-ERR Command not valid before login");
		return;
	}
	if ((c->flags & POP3_F_NO_ARGS) && cmd.args != NULL) {
		pop3_reply(s, "-ERR Syntax: %s takes no argument",
			   pop3_verb_name(cmd.verb));
		return;
	}
	if (c->check != NULL && !c->check(s, cmd.args, cmd.args_len))
		return;
	c->proceed(s, cmd.args, cmd.args_len);
}

/* ---- input ---- */

static void pop3_tls_ready(struct pop3_session *s)
{
	pop3_log(s, LOG_EVENT, "TLS started: %s", io_tls_info(s->io));
	if (s->listener == POP3_LISTENER_POP3S) {
		pop3_greet(s);
		return;
	}
	/* RFC 2595 4: no new greeting; whatever was said before is
	 * forgotten. */
	s->user[0] = '\0';
	s->state = POP3_STATE_AUTHORIZATION;
	pop3_set_timeout(s);
	pop3_process(s);
}

/* The deadline passed with no command (or no finished handshake). */
static void pop3_deadline_cb(void *arg)
{
	struct pop3_session *s = arg;

	switch (s->state) {
	case POP3_STATE_AUTHORIZATION:
	case POP3_STATE_TRANSACTION:
	case POP3_STATE_SASL:
		/* RFC 1939 3: the autologout timer; no UPDATE state. */
		pop3_log(s, LOG_EVENT, "timeout: idle too long");
		pop3_close(s, "-ERR Autologout: idle for too long");
		return;
	case POP3_STATE_HANDSHAKE:
	case POP3_STATE_STLS:
		pop3_log(s, LOG_EVENT, "TLS handshake timed out");
		pop3_free(s);
		return;
	case POP3_STATE_BUSY:
	case POP3_STATE_DRAIN:
	case POP3_STATE_LISTING:
	case POP3_STATE_QUIT:
		/* Their own timers (the write timeout) run; reading commands
		 * again restarts this one. */
		return;
	}
}

static void pop3_io_cb(struct io *io, enum io_event ev, void *arg)
{
	struct pop3_session *s = arg;

	switch (ev) {
	case IO_EV_READ:
		pop3_process(s);
		return;
	case IO_EV_FLUSHED:
		if (s->stall != NULL)
			io_timer_del(s->stall);
		if (s->state == POP3_STATE_QUIT) {
			pop3_free(s);
		} else if (s->state == POP3_STATE_DRAIN) {
			pop3_ready(s);
		} else if (s->state == POP3_STATE_LISTING) {
			if (pop3_listing_next(s, NULL))
				pop3_ready(s);
			else
				pop3_wait_output(s);
		} else if (s->state == POP3_STATE_STLS) {
			if (io_starttls(s->io, s->env->tls) < 0) {
				pop3_log(s, LOG_EVENT, "cannot start TLS");
				pop3_free(s);
				return;
			}
			s->state = POP3_STATE_HANDSHAKE;
		} else if (s->xfer != NULL && s->xfer->waiting) {
			s->xfer->waiting = 0;
			pop3_xfer_next(s);
		}
		return;
	case IO_EV_TIMEOUT:
		if (s->state == POP3_STATE_HANDSHAKE ||
		    s->state == POP3_STATE_STLS) {
			pop3_log(s, LOG_EVENT, "TLS handshake timed out");
			pop3_free(s);
			return;
		}
		/* RFC 1939 3: the autologout timer; no UPDATE state. */
		pop3_log(s, LOG_EVENT, "timeout: idle too long");
		pop3_close(s, "-ERR Autologout: idle for too long");
		return;
	case IO_EV_TLS_READY:
		pop3_tls_ready(s);
		return;
	case IO_EV_TLS_ERROR:
		pop3_log(s, LOG_EVENT, "TLS failed");
		pop3_free(s);
		return;
	case IO_EV_CLOSED:
		pop3_log(s, LOG_EVENT, "connection closed by client%s",
			 s->account[0] != '\0' ? " without QUIT" : "");
		pop3_free(s);
		return;
	}
}

/* Reads the command or SASL lines that are complete now. */
static void pop3_process(struct pop3_session *s)
{
	while (s->io != NULL && (s->state == POP3_STATE_AUTHORIZATION ||
				 s->state == POP3_STATE_TRANSACTION ||
				 s->state == POP3_STATE_SASL)) {
		size_t avail = io_input_len(s->io), n;
		char text[POP3_LINE_MAX + 1];

		/* Replies the client has not read pass the bound: read no
		 * more commands until they drain (IO_EV_FLUSHED). */
		if (s->state != POP3_STATE_SASL &&
		    io_output_len(s->io) >= POP3_OUTPUT_HIGH) {
			s->state = POP3_STATE_DRAIN;
			io_pause(s->io);
			pop3_wait_output(s);
			break;
		}
		if (avail == 0)
			break;
		switch (server_line_next(&s->line, s->io, POP3_LINE_MAX, text,
					 &n)) {
		case SERVER_LINE_WAIT:
			return;
		case SERVER_LINE_TOO_LONG:
			pop3_log(s, LOG_EVENT, "command line too long");
			pop3_reply(s, "-ERR Line too long");
			if (s->state == POP3_STATE_SASL)
				s->state = POP3_STATE_AUTHORIZATION;
			break;
		case SERVER_LINE_BAD:
			/* A whole line: the autologout timer starts again.
			 * CRLF is the only line end (STYLE.md 4); a NUL
			 * would cut what is logged from what is read. */
			pop3_restart_deadline(s);
			sodium_memzero(text, n);
			pop3_log_peer(s, 0, "[malformed line]");
			pop3_reply(s, "-ERR Lines must end with CRLF "
				      "and hold no NUL");
			if (s->state == POP3_STATE_SASL)
				s->state = POP3_STATE_AUTHORIZATION;
			break;
		case SERVER_LINE_OK:
			pop3_restart_deadline(s);
			if (s->state == POP3_STATE_SASL) {
				pop3_log_peer(s, 0, "<redacted>");
				pop3_sasl_step(s, text, n);
			} else {
				pop3_command(s, text, n);
			}
			sodium_memzero(text, n + 1);
			break;
		}
		if (s->io != NULL && s->state != POP3_STATE_QUIT &&
		    s->errors >= (unsigned)pop3_setting(
					 s, SETTING_POP3_MAX_ERRORS)) {
			pop3_log(s, LOG_EVENT, "too many errors");
			pop3_close(s, "-ERR Too many errors, closing");
		}
	}
}
