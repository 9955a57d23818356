/*
 * remote: remote delivery over SMTP. Owns the destinations (one per
 * recipient domain, or one for the smarthost), their routes (MX records
 * through c-ares, A/AAAA as the implicit MX, RFC 5321 5.1), the
 * connections and the SMTP client that runs on each: greeting, EHLO (HELO
 * when EHLO is refused), STARTTLS as tls.outbound says, AUTH to the
 * smarthost, then as many transactions (PIPELINING when offered) as jobs
 * wait for the destination, within queue.max_messages_per_connection.
 * Every wait has the timeout of RFC 5321 4.5.3.2; every reply goes through
 * the bounded parser of remote_reply.c; message bytes leave through the
 * encoder of remote_data.c, read from the spool in chunks on the worker
 * threads. Each session's transcript goes to the smtp-out log.
 *
 * Lifetimes: a job belongs to the caller and comes back through its
 * done(); a connection belongs to its destination; a destination lives
 * while it has jobs, connections or a lookup under way.
 */
#include "delivery/remote.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "delivery/remote_data.h"
#include "delivery/remote_mime7.h"
#include "delivery/remote_reply.h"
#include "delivery/remote_route.h"
#include "directory/directory.h"
#include "directory/settings.h"
#include "lib/buf.h"
#include "lib/config.h"
#include "lib/dns.h"
#include "lib/env.h"
#include "lib/io.h"
#include "lib/io_worker.h"
#include "lib/log.h"

#define REMOTE_ADDRS_MAX 10	     /* addresses tried by one connection */
#define REMOTE_MX_MAX 10	     /* MX hosts looked up */
#define REMOTE_CHUNK 65536	     /* bytes read from the spool at a time */
#define REMOTE_OUT_HIGH (256 * 1024) /* wait for the socket above this */
#define REMOTE_QUIT_MS 5000
#define REMOTE_SMTP_PORT 25
#define REMOTE_MIME7_SLACK (512 * 1024) /* see remote_send_chunk() */

enum remote_route_state {
	REMOTE_ROUTE_NONE,
	REMOTE_ROUTE_RESOLVING,
	REMOTE_ROUTE_READY
};

struct remote_addr {
	char host[DNS_NAME_MAX]; /* the MX name (TLS name, logs) */
	unsigned pref;
	struct sockaddr_storage ss; /* with the port */
	char text[80];		    /* "192.0.2.1" / "2001:db8::1" */
};

struct remote_dest;

/* One MX host being looked up. */
struct remote_lookup {
	struct remote_dest *d;
	struct dns_query *q;
	size_t slot; /* its place in MX order */
};

struct remote_dest {
	struct remote *r;
	char key[256]; /* the domain, "" for the smarthost */
	struct remote_job *head, *tail;
	size_t njobs;
	size_t nconns;	  /* open or opening */
	size_t nstarting; /* not yet ready for a job */
	enum remote_route_state route;
	struct dns_query *mxq;
	struct remote_lookup lookups[REMOTE_MX_MAX];
	size_t nlookups_pending;
	struct dns_mx mx[REMOTE_MX_MAX];
	size_t nmx;
	struct remote_addr *per_mx[REMOTE_MX_MAX]; /* lookup results */
	size_t per_mx_n[REMOTE_MX_MAX];
	int any_tempfail;
	struct remote_addr addrs[REMOTE_ADDRS_MAX];
	size_t naddrs;
	struct remote_dest *prev, *next;
};

enum remote_state {
	RS_CONNECTING,
	RS_GREETING,
	RS_EHLO,
	RS_HELO,
	RS_STARTTLS,
	RS_TLS,
	RS_AUTH,
	RS_AUTH_USER,
	RS_AUTH_PASS,
	RS_READY,
	RS_MAIL,
	RS_RCPT,
	RS_DATA,
	RS_PIPE,
	RS_BODY,
	RS_DOT,
	RS_DISCARD, /* the dot after a 354 that came without recipients */
	RS_RSET,
	RS_QUIT,
};

struct remote_conn {
	struct remote *r;
	struct remote_dest *d;
	char sid[16];
	size_t ai;  /* addrs index */
	int no_tls; /* this address failed TLS under "may": plaintext */
	int fd;	    /* while connecting */
	struct io_fd *cw;
	struct io *io;
	struct io_timer *timer;
	enum remote_state state;
	int ready_once; /* reached RS_READY with this address */
	int tls_done;
	int auth_step; /* AUTH LOGIN prompts answered */
	struct remote_reply reply;
	struct remote_ehlo ehlo;
	size_t messages;
	/* The transaction under way. */
	struct remote_job *job;
	size_t rcpt_i; /* next RCPT reply to read (or send) */
	size_t pipe_i; /* replies read in RS_PIPE: 0 MAIL, 1..n, n+1 */
	size_t accepted;
	int mail_failed;
	struct remote_data enc;
	int downgrade;		   /* 8-bit message, no 8BITMIME: convert */
	struct remote_mime7 *down; /* the conversion under way */
	uint64_t body_off;
	int reading;	/* a chunk read is on a worker */
	int want_flush; /* wait for IO_EV_FLUSHED before reading more */
	int dead;	/* closed while reading: free when it reports */
	int busy;	/* inside one of its callbacks (depth) */
	int zombie;	/* freed while busy: release on the way out */
	char error[QUEUE_ERROR_MAX + 1]; /* why it failed (last) */
	char status[16];
	int perm; /* the failure is permanent */
	struct remote_conn *next;
};

struct remote_read {
	struct remote_conn *c;
	int fd;
	uint64_t off;
	size_t want;
	ssize_t got;
	int err;
	char data[REMOTE_CHUNK];
};

struct remote {
	struct env *env;
	struct remote_dest *dests;
	struct remote_conn *conns;
	size_t nconns;
	int stopped;
	struct io_tls_ctx *tls;	       /* no verification */
	struct io_tls_ctx *tls_verify; /* chain and name */
	/* The smarthost, when set. */
	char smarthost[256];
	unsigned smarthost_port;
	char auth_user[256];
	char auth_pass[256];
	int have_auth;
	struct io_timer *kick_timer;
	struct remote_job *orphans; /* no memory for their destination */
};

static void remote_dest_kick(struct remote_dest *d);
static void remote_conn_close(struct remote_conn *c);
static void remote_conn_next_addr(struct remote_conn *c);
static void remote_ready(struct remote_conn *c);
static void remote_send_body(struct remote_conn *c);
static void remote_orphans(struct remote *r);

/* Every entry into a connection (I/O, timer, worker report) is bracketed
 * by these, so that a connection closed deep inside is only released on
 * the way out. */
static void remote_enter(struct remote_conn *c)
{
	c->busy++;
}

static void remote_leave(struct remote_conn *c)
{
	if (--c->busy == 0 && c->zombie)
		free(c);
}

static int remote_conn_alive(const struct remote_conn *c)
{
	return !c->zombie;
}

/* ---- small helpers ---- */

/* snprintf that cuts on purpose (errors and log texts have caps). */
static void remote_fmt(char *dst, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void remote_fmt(char *dst, size_t size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(dst, size, fmt, ap);
	va_end(ap);
}

static int64_t remote_setting(struct remote *r, enum settings_id id)
{
	return settings_int(r->env->settings, id);
}

static void remote_arm(struct remote_conn *c, enum settings_id id)
{
	io_timer_add(c->timer, remote_setting(c->r, id) * 1000);
}

static void remote_log(struct remote_conn *c, const char *dir, const char *fmt,
		       ...) __attribute__((format(printf, 3, 4)));

static void remote_log(struct remote_conn *c, const char *dir, const char *fmt,
		       ...)
{
	char text[1200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	log_write(LOG_SMTP_OUT, c->sid, dir, "%s", text);
}

/* Sends one command line (logged; AUTH data is hidden). */
static int remote_cmd(struct remote_conn *c, const char *logged,
		      const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int remote_cmd(struct remote_conn *c, const char *logged,
		      const char *fmt, ...)
{
	char line[1200];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line) - 2)
		return -1;
	/* Our own commands hold no CR or LF (addresses were checked), but
	 * a line end inside one would split it: refuse, never send. */
	if (strpbrk(line, "\r\n") != NULL)
		return -1;
	if (logged != NULL) {
		remote_log(c, LOG_TO_PEER, "%s", logged);
	} else {
		char safe[1200];

		log_sanitize(safe, sizeof(safe), line, (size_t)n);
		remote_log(c, LOG_TO_PEER, "%s", safe);
	}
	memcpy(line + n, "\r\n", 2);
	return io_write(c->io, line, (size_t)n + 2);
}

static const char *remote_addr_host(const struct remote_conn *c)
{
	return c->d->addrs[c->ai].host;
}

/* Sets c's error from the current reply: "host H[IP] said: 550 ... (in
 * reply to CMD)". */
static void remote_error_reply(struct remote_conn *c, const char *cmd)
{
	char sum[600];

	remote_reply_summary(&c->reply, sum, sizeof(sum));
	remote_fmt(c->error, sizeof(c->error),
		   "host %s[%s] said: %s (in reply to %s)", remote_addr_host(c),
		   c->d->addrs[c->ai].text, sum, cmd);
	if (c->reply.enhanced[0] != '\0')
		snprintf(c->status, sizeof(c->status), "%s", c->reply.enhanced);
	else
		snprintf(c->status, sizeof(c->status), "%d.0.0",
			 c->reply.code / 100);
	c->perm = c->reply.code >= 500;
}

static void remote_error(struct remote_conn *c, const char *status,
			 const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void remote_error(struct remote_conn *c, const char *status,
			 const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->error, sizeof(c->error), fmt, ap);
	va_end(ap);
	snprintf(c->status, sizeof(c->status), "%s", status);
	c->perm = status[0] == '5';
}

/* Sets the outcome of one recipient from the current reply. */
static void remote_rcpt_reply(struct remote_conn *c, struct remote_rcpt *rc,
			      const char *cmd)
{
	char sum[600];

	remote_reply_summary(&c->reply, sum, sizeof(sum));
	remote_fmt(rc->error, sizeof(rc->error),
		   "host %s[%s] said: %s (in reply to %s)", remote_addr_host(c),
		   c->d->addrs[c->ai].text, sum, cmd);
	if (c->reply.enhanced[0] != '\0')
		snprintf(rc->status, sizeof(rc->status), "%s",
			 c->reply.enhanced);
	else
		snprintf(rc->status, sizeof(rc->status), "%d.0.0",
			 c->reply.code / 100);
	snprintf(rc->mta, sizeof(rc->mta), "%s", remote_addr_host(c));
	if (c->reply.code < 300)
		rc->outcome = REMOTE_DONE;
	else
		rc->outcome = c->reply.code >= 500 ? REMOTE_PERM : REMOTE_TEMP;
}

/* ---- jobs ---- */

static void remote_job_log(struct remote_conn *c, struct remote_job *j)
{
	for (size_t i = 0; i < j->nrcpt; i++) {
		struct remote_rcpt *rc = &j->rcpts[i];
		const char *what = rc->outcome == REMOTE_DONE	? "sent"
				   : rc->outcome == REMOTE_PERM ? "bounced"
				   : rc->outcome == REMOTE_TEMP ? "deferred"
								: "not tried";
		char addr[600], mid[300];

		log_sanitize(addr, sizeof(addr), rc->address,
			     strlen(rc->address));
		log_sanitize(mid, sizeof(mid), j->message_id,
			     strlen(j->message_id));
		log_write(LOG_SMTP_OUT, c != NULL ? c->sid : "-", LOG_EVENT,
			  "%s: to=<%s> message-id=%s status=%s (%s)", j->id,
			  addr, mid, what, rc->error);
	}
}

/* Gives a job back: recipients still undecided get `outcome` with the
 * error (or c's). */
static void remote_job_done(struct remote_conn *c, struct remote_job *j,
			    enum remote_outcome outcome, const char *status,
			    const char *error, const char *mta)
{
	for (size_t i = 0; i < j->nrcpt; i++) {
		struct remote_rcpt *rc = &j->rcpts[i];

		if (rc->outcome != REMOTE_NONE)
			continue;
		rc->outcome = outcome;
		if (outcome == REMOTE_NONE)
			continue;
		remote_fmt(rc->error, sizeof(rc->error), "%s", error);
		snprintf(rc->status, sizeof(rc->status), "%s", status);
		snprintf(rc->mta, sizeof(rc->mta), "%s",
			 mta != NULL ? mta : "");
	}
	if (!j->held)
		remote_job_log(c, j);
	j->done(j, j->arg);
}

static struct remote_job *remote_dest_pop(struct remote_dest *d)
{
	struct remote_job *j = d->head;

	if (j == NULL)
		return NULL;
	d->head = j->next;
	if (d->head == NULL)
		d->tail = NULL;
	d->njobs--;
	j->next = NULL;
	return j;
}

/* Every waiting job of d fails with the same error (no route, or no
 * server reachable). */
static void remote_dest_fail_all(struct remote_dest *d, int perm,
				 const char *status, const char *error)
{
	struct remote_job *j;

	while ((j = remote_dest_pop(d)) != NULL)
		remote_job_done(NULL, j,
				d->r->stopped ? REMOTE_NONE
				: perm	      ? REMOTE_PERM
					      : REMOTE_TEMP,
				status, error, NULL);
}

static void remote_dest_free(struct remote_dest *d)
{
	struct remote *r = d->r;

	if (d->prev != NULL)
		d->prev->next = d->next;
	else
		r->dests = d->next;
	if (d->next != NULL)
		d->next->prev = d->prev;
	for (size_t i = 0; i < REMOTE_MX_MAX; i++)
		free(d->per_mx[i]);
	free(d);
}

/* Frees d when nothing needs it any more (the route is looked up anew
 * for the next burst of mail). Returns 1 when freed. */
static int remote_dest_gc(struct remote_dest *d)
{
	if (d->njobs > 0 || d->nconns > 0 || d->route == REMOTE_ROUTE_RESOLVING)
		return 0;
	remote_dest_free(d);
	return 1;
}

/* ---- routes ---- */

static void remote_addr_set(struct remote_addr *a, const char *host,
			    unsigned pref, const struct sockaddr_storage *ss,
			    unsigned port)
{
	snprintf(a->host, sizeof(a->host), "%s", host);
	a->pref = pref;
	a->ss = *ss;
	if (ss->ss_family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&a->ss;

		s6->sin6_port = htons((uint16_t)port);
		inet_ntop(AF_INET6, &s6->sin6_addr, a->text, sizeof(a->text));
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&a->ss;

		s4->sin_port = htons((uint16_t)port);
		inet_ntop(AF_INET, &s4->sin_addr, a->text, sizeof(a->text));
	}
}

static unsigned remote_port(struct remote_dest *d)
{
	if (d->key[0] == '\0')
		return d->r->smarthost_port;
	return (unsigned)remote_setting(d->r, SETTING_QUEUE_REMOTE_PORT);
}

static void remote_route_ready(struct remote_dest *d)
{
	d->route = REMOTE_ROUTE_READY;
	if (d->naddrs == 0) {
		/* Every MX host lacked an address. */
		if (d->any_tempfail)
			remote_dest_fail_all(d, 0, "4.4.3",
					     "temporary failure looking up the "
					     "addresses of the mail servers");
		else
			remote_dest_fail_all(d, 1, "5.4.4",
					     "the mail servers of the domain "
					     "have no address");
		d->route = REMOTE_ROUTE_NONE;
		remote_dest_gc(d);
		return;
	}
	remote_dest_kick(d);
}

/* All MX hosts looked up: their addresses in MX order. */
static void remote_route_collect(struct remote_dest *d)
{
	d->naddrs = 0;
	for (size_t i = 0; i < d->nmx; i++) {
		for (size_t k = 0;
		     k < d->per_mx_n[i] && d->naddrs < REMOTE_ADDRS_MAX; k++)
			d->addrs[d->naddrs++] = d->per_mx[i][k];
		free(d->per_mx[i]);
		d->per_mx[i] = NULL;
		d->per_mx_n[i] = 0;
	}
	remote_route_ready(d);
}

static void remote_addrs_cb(const struct dns_result *res, void *arg)
{
	struct remote_lookup *l = arg;
	struct remote_dest *d = l->d;
	size_t slot = l->slot;

	l->q = NULL;
	if (res->status == DNS_OK && res->naddrs > 0) {
		d->per_mx[slot] =
			calloc(res->naddrs, sizeof(struct remote_addr));
		if (d->per_mx[slot] != NULL) {
			for (size_t i = 0; i < res->naddrs; i++)
				remote_addr_set(&d->per_mx[slot][i],
						d->mx[slot].host,
						d->mx[slot].preference,
						&res->addrs[i], remote_port(d));
			d->per_mx_n[slot] = res->naddrs;
		}
	} else if (res->status == DNS_TEMPFAIL) {
		d->any_tempfail = 1;
	}
	if (--d->nlookups_pending == 0)
		remote_route_collect(d);
}

static void remote_lookup_hosts(struct remote_dest *d)
{
	d->nlookups_pending = d->nmx;
	for (size_t i = 0; i < d->nmx; i++) {
		struct remote_lookup *l = &d->lookups[i];

		l->d = d;
		l->slot = i;
		l->q = dns_addrs(d->r->env->dns, d->mx[i].host, remote_addrs_cb,
				 l);
		if (l->q == NULL) {
			d->any_tempfail = 1;
			d->nlookups_pending--;
		}
	}
	if (d->nlookups_pending == 0)
		remote_route_collect(d);
}

static void remote_route_fail(struct remote_dest *d, int perm,
			      const char *status, const char *error)
{
	d->route = REMOTE_ROUTE_NONE;
	remote_dest_fail_all(d, perm, status, error);
	remote_dest_gc(d);
}

static void remote_mx_cb(const struct dns_result *res, void *arg)
{
	struct remote_dest *d = arg;
	char error[QUEUE_ERROR_MAX + 1];
	int n;

	d->mxq = NULL;
	if (res->status == DNS_TEMPFAIL) {
		remote_fmt(error, sizeof(error),
			   "temporary failure looking up the MX records of %s",
			   d->key);
		remote_route_fail(d, 0, "4.4.3", error);
		return;
	}
	if (res->status == DNS_NOTFOUND) {
		/* No MX: the domain itself is the implicit MX (RFC 5321
		 * 5.1), preference 0. */
		d->nmx = 1;
		d->mx[0].preference = 0;
		snprintf(d->mx[0].host, sizeof(d->mx[0].host), "%s", d->key);
		remote_lookup_hosts(d);
		return;
	}
	if (res->nmx == 1 && res->mx[0].host[0] == '\0') {
		/* RFC 7505: the domain accepts no mail at all. */
		remote_fmt(error, sizeof(error),
			   "the domain %s accepts no mail (null MX, RFC 7505)",
			   d->key);
		remote_route_fail(d, 1, "5.1.10", error);
		return;
	}
	d->nmx = 0;
	for (size_t i = 0; i < res->nmx && d->nmx < REMOTE_MX_MAX; i++)
		if (res->mx[i].host[0] != '\0')
			d->mx[d->nmx++] = res->mx[i];
	n = remote_route_mx_filter(d->mx, d->nmx, d->r->env->cfg->hostname);
	if (n <= 0) {
		remote_fmt(error, sizeof(error),
			   "mail for %s loops back to myself (MX)", d->key);
		remote_route_fail(d, 1, "5.4.6", error);
		return;
	}
	d->nmx = (size_t)n;
	remote_lookup_hosts(d);
}

static void remote_route_start(struct remote_dest *d)
{
	struct remote *r = d->r;
	struct sockaddr_storage ss;
	int lit;

	d->route = REMOTE_ROUTE_RESOLVING;
	d->any_tempfail = 0;
	d->naddrs = 0;
	if (d->key[0] == '\0') {
		/* The smarthost: its address records, no MX. */
		d->nmx = 1;
		d->mx[0].preference = 0;
		snprintf(d->mx[0].host, sizeof(d->mx[0].host), "%s",
			 r->smarthost);
		remote_lookup_hosts(d);
		return;
	}
	lit = remote_route_literal(d->key, &ss);
	if (lit < 0) {
		remote_route_fail(d, 1, "5.1.2", "malformed address literal");
		return;
	}
	if (lit == 1) {
		remote_addr_set(&d->addrs[0], d->key, 0, &ss, remote_port(d));
		d->naddrs = 1;
		remote_route_ready(d);
		return;
	}
	d->mxq = dns_mx(r->env->dns, d->key, remote_mx_cb, d);
	if (d->mxq == NULL)
		remote_route_fail(d, 0, "4.4.3", "cannot start a DNS lookup");
}

/* ---- connections ---- */

static int remote_tls_mode(struct remote *r)
{
	const char *m = settings_str(r->env->settings, SETTING_TLS_OUTBOUND);

	if (r->have_auth && (strcmp(m, "none") == 0 || strcmp(m, "may") == 0))
		return 2; /* credentials only over TLS */
	if (strcmp(m, "none") == 0)
		return 0;
	if (strcmp(m, "encrypt") == 0)
		return 2;
	if (strcmp(m, "verify") == 0)
		return 3;
	return 1; /* may */
}

static void remote_conn_free(struct remote_conn *c)
{
	struct remote *r = c->r;
	struct remote_dest *d = c->d;

	for (struct remote_conn **pp = &r->conns; *pp != NULL;
	     pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	r->nconns--;
	d->nconns--;
	if (!c->ready_once)
		d->nstarting--;
	io_timer_free(c->timer);
	c->timer = NULL;
	remote_mime7_free(c->down);
	c->down = NULL;
	if (c->busy > 0) {
		c->zombie = 1;
		return;
	}
	free(c);
}

/* Closes the socket (not the connection object). */
static void remote_conn_drop_io(struct remote_conn *c)
{
	if (c->cw != NULL) {
		io_fd_free(c->cw);
		c->cw = NULL;
	}
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
	io_free(c->io);
	c->io = NULL;
	io_timer_del(c->timer);
}

/* The end of a connection: its job (if any) gets c's error, the socket
 * closes, and the destination may open another one. */
static void remote_conn_close(struct remote_conn *c)
{
	struct remote *r = c->r;
	struct remote_dest *d = c->d;
	struct remote_job *j = c->job;

	remote_conn_drop_io(c);
	if (c->reading) {
		/* A chunk is being read for it: finish when it reports. */
		c->dead = 1;
		return;
	}
	c->job = NULL;
	if (j != NULL)
		remote_job_done(c, j,
				r->stopped ? REMOTE_NONE
				: c->perm  ? REMOTE_PERM
					   : REMOTE_TEMP,
				c->status, c->error, remote_addr_host(c));
	remote_conn_free(c);
	if (r->stopped)
		return;
	/* Room for another connection, here or elsewhere. */
	if (!remote_dest_gc(d))
		remote_dest_kick(d);
	for (struct remote_dest *o = r->dests, *next; o != NULL; o = next) {
		next = o->next;
		if (o != d)
			remote_dest_kick(o);
	}
}

/* A failure before the connection was ready for mail: try the next
 * address; after the last one, every waiting job of the destination
 * fails with this error (the destination is unreachable now). */
static void remote_conn_fail_addr(struct remote_conn *c)
{
	struct remote_dest *d = c->d;

	remote_log(c, LOG_EVENT, "%s", c->error);
	remote_conn_drop_io(c);
	if (c->r->stopped) {
		remote_conn_close(c);
		return;
	}
	if (c->ai + 1 < d->naddrs) {
		c->ai++;
		c->no_tls = 0;
		remote_conn_next_addr(c);
		return;
	}
	/* Only this connection's view: others may still be at work, but
	 * nothing queued would fare better now. */
	remote_dest_fail_all(d, 0, c->status[0] == '5' ? "4.4.1" : c->status,
			     c->error);
	remote_conn_close(c);
}

static void remote_timeout(struct remote_conn *c);

static void remote_timer_cb(void *arg)
{
	struct remote_conn *c = arg;

	remote_enter(c);
	remote_timeout(c);
	remote_leave(c);
}

static void remote_timeout(struct remote_conn *c)
{
	if (c->state == RS_QUIT) {
		remote_conn_close(c);
		return;
	}
	if (c->state == RS_CONNECTING)
		remote_error(c, "4.4.1", "connect to %s[%s] timed out",
			     remote_addr_host(c), c->d->addrs[c->ai].text);
	else
		remote_error(c, "4.4.2", "host %s[%s] timed out (%s)",
			     remote_addr_host(c), c->d->addrs[c->ai].text,
			     c->state == RS_BODY ? "while sending the message"
						 : "waiting for a reply");
	if (c->state < RS_READY)
		remote_conn_fail_addr(c);
	else {
		remote_log(c, LOG_EVENT, "%s", c->error);
		remote_conn_close(c);
	}
}

/* ---- the SMTP dialogue ---- */

static void remote_send_ehlo(struct remote_conn *c, int helo)
{
	c->state = helo ? RS_HELO : RS_EHLO;
	if (remote_cmd(c, NULL, "%s %s", helo ? "HELO" : "EHLO",
		       c->r->env->cfg->hostname) < 0) {
		remote_error(c, "4.3.0", "cannot send to %s",
			     remote_addr_host(c));
		remote_conn_fail_addr(c);
		return;
	}
	remote_arm(c, SETTING_QUEUE_TIMEOUT_COMMAND);
}

static void remote_auth_start(struct remote_conn *c)
{
	struct remote *r = c->r;
	char plain[600], b64[900];
	size_t ul = strlen(r->auth_user), pl = strlen(r->auth_pass);

	if (!io_is_tls(c->io)) {
		remote_error(c, "4.7.0",
			     "not sending the smarthost credentials to %s "
			     "without TLS",
			     remote_addr_host(c));
		remote_conn_fail_addr(c);
		return;
	}
	if (c->ehlo.auth_plain && ul + pl + 2 <= sizeof(plain)) {
		plain[0] = '\0';
		memcpy(plain + 1, r->auth_user, ul);
		plain[1 + ul] = '\0';
		memcpy(plain + 2 + ul, r->auth_pass, pl);
		sodium_bin2base64(b64, sizeof(b64), (unsigned char *)plain,
				  ul + pl + 2, sodium_base64_VARIANT_ORIGINAL);
		sodium_memzero(plain, sizeof(plain));
		c->state = RS_AUTH;
		remote_cmd(c, "AUTH PLAIN (credentials hidden)",
			   "AUTH PLAIN %s", b64);
		sodium_memzero(b64, sizeof(b64));
	} else if (c->ehlo.auth_login) {
		c->state = RS_AUTH_USER;
		c->auth_step = 0;
		remote_cmd(c, NULL, "AUTH LOGIN");
	} else {
		remote_error(c, "4.7.0",
			     "host %s offers no AUTH PLAIN or LOGIN",
			     remote_addr_host(c));
		remote_conn_fail_addr(c);
		return;
	}
	remote_arm(c, SETTING_QUEUE_TIMEOUT_COMMAND);
}

/* After EHLO (or HELO): STARTTLS, AUTH, or ready for mail. */
static void remote_after_ehlo(struct remote_conn *c)
{
	int mode = remote_tls_mode(c->r);

	if (!c->tls_done && mode > 0 && !(mode == 1 && c->no_tls)) {
		if (c->ehlo.starttls) {
			c->state = RS_STARTTLS;
			remote_cmd(c, NULL, "STARTTLS");
			remote_arm(c, SETTING_QUEUE_TIMEOUT_COMMAND);
			return;
		}
		if (mode >= 2) {
			remote_error(c, "4.7.4",
				     "TLS is required, but host %s[%s] does "
				     "not offer STARTTLS",
				     remote_addr_host(c),
				     c->d->addrs[c->ai].text);
			remote_conn_fail_addr(c);
			return;
		}
	}
	if (c->r->have_auth && c->d->key[0] == '\0') {
		remote_auth_start(c);
		return;
	}
	remote_ready(c);
}

static void remote_start_tls(struct remote_conn *c)
{
	int mode = remote_tls_mode(c->r);
	struct io_tls_ctx *ctx = mode == 3 ? c->r->tls_verify : c->r->tls;

	c->state = RS_TLS;
	if (ctx == NULL ||
	    io_starttls_client(c->io, ctx, remote_addr_host(c)) < 0) {
		remote_error(c, "4.7.5", "cannot start TLS with %s",
			     remote_addr_host(c));
		remote_conn_fail_addr(c);
		return;
	}
	remote_arm(c, SETTING_QUEUE_TIMEOUT_COMMAND);
}

static void remote_tls_failed(struct remote_conn *c)
{
	const char *why = io_tls_verify_error(c->io);
	int mode = remote_tls_mode(c->r);

	remote_error(c, "4.7.5", "TLS with %s[%s] failed%s%s",
		     remote_addr_host(c), c->d->addrs[c->ai].text,
		     why[0] != '\0' ? ": " : "", why);
	if (mode == 1) {
		/* Opportunistic TLS: the same server once more, in the
		 * clear (as Postfix does). */
		remote_log(c, LOG_EVENT, "%s; trying again without TLS",
			   c->error);
		remote_conn_drop_io(c);
		c->no_tls = 1;
		remote_conn_next_addr(c);
		return;
	}
	remote_conn_fail_addr(c);
}

/* Starts the transaction of job j. */
static void remote_mail(struct remote_conn *c)
{
	struct remote_job *j = c->job;
	char params[80] = "";
	size_t o = 0;

	c->rcpt_i = 0;
	c->pipe_i = 0;
	c->accepted = 0;
	c->mail_failed = 0;
	if (c->ehlo.size)
		o += (size_t)snprintf(params + o, sizeof(params) - o,
				      " SIZE=%llu",
				      (unsigned long long)j->size);
	if (j->eightbit && c->ehlo.eightbitmime)
		snprintf(params + o, sizeof(params) - o, " BODY=8BITMIME");
	log_write(LOG_SMTP_OUT, c->sid, LOG_EVENT,
		  "%s: from=<%s> size=%llu nrcpt=%zu", j->id, j->sender,
		  (unsigned long long)j->size, j->nrcpt);
	if (remote_cmd(c, NULL, "MAIL FROM:<%s>%s", j->sender, params) < 0)
		goto fail;
	if (c->ehlo.pipelining) {
		/* RFC 2920: MAIL, every RCPT and DATA in one go. */
		for (size_t i = 0; i < j->nrcpt; i++)
			if (remote_cmd(c, NULL, "RCPT TO:<%s>",
				       j->rcpts[i].address) < 0)
				goto fail;
		if (remote_cmd(c, NULL, "DATA") < 0)
			goto fail;
		c->state = RS_PIPE;
	} else {
		c->state = RS_MAIL;
	}
	remote_arm(c, SETTING_QUEUE_TIMEOUT_COMMAND);
	return;
fail:
	remote_error(c, "4.3.0", "cannot send to %s", remote_addr_host(c));
	remote_conn_close(c);
}

/* Is the sender's account frozen (hijack detection)? Then nothing of
 * its mail leaves. */
static int remote_frozen(struct remote *r, const char *account)
{
	struct directory_account a;
	const char *err;

	if (account == NULL || account[0] == '\0' || r->env->dir == NULL)
		return 0;
	if (directory_account_get(r->env->dir, account, &a, &err) != 1)
		return 0;
	return a.state == DIRECTORY_ACCOUNT_FROZEN;
}

/* Ready for a transaction: take the next job, or leave. */
static void remote_ready(struct remote_conn *c)
{
	struct remote *r = c->r;
	struct remote_dest *d = c->d;

	if (!c->ready_once) {
		d->nstarting--;
		c->ready_once = 1;
	}
	c->state = RS_READY;
	io_timer_del(c->timer);
	for (;;) {
		struct remote_job *j;
		int64_t max = remote_setting(
			r, SETTING_QUEUE_MAX_MESSAGES_PER_CONNECTION);

		if (r->stopped || (int64_t)c->messages >= max ||
		    (j = remote_dest_pop(d)) == NULL) {
			c->state = RS_QUIT;
			remote_cmd(c, NULL, "QUIT");
			io_timer_add(c->timer, REMOTE_QUIT_MS);
			return;
		}
		if (remote_frozen(r, j->auth_account)) {
			j->held = 1;
			log_write(LOG_SMTP_OUT, c->sid, LOG_EVENT,
				  "%s: not sent: the sender's account is "
				  "frozen",
				  j->id);
			remote_job_done(c, j, REMOTE_NONE, "", "", NULL);
			continue;
		}
		if (c->ehlo.size && c->ehlo.size_max > 0 &&
		    j->size > c->ehlo.size_max) {
			char e[QUEUE_ERROR_MAX + 1];

			remote_fmt(e, sizeof(e),
				   "message size %llu exceeds the limit of "
				   "host %s (%llu)",
				   (unsigned long long)j->size,
				   remote_addr_host(c),
				   (unsigned long long)c->ehlo.size_max);
			remote_job_done(c, j, REMOTE_PERM, "5.3.4", e,
					remote_addr_host(c));
			continue;
		}
		c->downgrade = j->eightbit && !c->ehlo.eightbitmime;
		if (c->downgrade &&
		    (j->mime7 == NULL || j->mime7->unconvertible)) {
			char e[QUEUE_ERROR_MAX + 1];

			/* RFC 6152 3: never 8-bit data to a server that did
			 * not offer 8BITMIME; RFC 3463 5.6.3. */
			remote_fmt(e, sizeof(e),
				   "message has 8-bit data that can not be "
				   "converted to 7 bits, and host %s does not "
				   "offer 8BITMIME",
				   remote_addr_host(c));
			remote_job_done(c, j, REMOTE_PERM, "5.6.3", e,
					remote_addr_host(c));
			continue;
		}
		if (!remote_data_addr_ok(j->sender)) {
			remote_job_done(c, j, REMOTE_PERM, "5.1.7",
					"invalid sender address", NULL);
			continue;
		}
		for (size_t i = 0; i < j->nrcpt; i++) {
			struct remote_rcpt *rc = &j->rcpts[i];

			if (!remote_data_addr_ok(rc->address)) {
				rc->outcome = REMOTE_PERM;
				snprintf(rc->status, sizeof(rc->status),
					 "5.1.3");
				remote_fmt(rc->error, sizeof(rc->error),
					   "invalid recipient address");
			}
		}
		c->job = j;
		c->messages++;
		remote_mail(c);
		return;
	}
}

static void remote_send_rcpt(struct remote_conn *c)
{
	struct remote_job *j = c->job;

	/* Skip recipients already decided (a malformed address). */
	while (c->rcpt_i < j->nrcpt &&
	       j->rcpts[c->rcpt_i].outcome != REMOTE_NONE)
		c->rcpt_i++;
	if (c->rcpt_i == j->nrcpt) {
		if (c->accepted == 0) {
			c->state = RS_RSET;
			remote_cmd(c, NULL, "RSET");
		} else {
			c->state = RS_DATA;
			remote_cmd(c, NULL, "DATA");
			remote_arm(c, SETTING_QUEUE_TIMEOUT_DATA_INIT);
			return;
		}
	} else {
		c->state = RS_RCPT;
		remote_cmd(c, NULL, "RCPT TO:<%s>",
			   j->rcpts[c->rcpt_i].address);
	}
	remote_arm(c, SETTING_QUEUE_TIMEOUT_COMMAND);
}

/* The transaction ended (2xx to the dot, or refused): the job goes back,
 * then RSET if the session is in a transaction, or the next job. */
static void remote_end_job(struct remote_conn *c, int rset)
{
	struct remote_job *j = c->job;

	c->job = NULL;
	remote_job_done(c, j, c->perm ? REMOTE_PERM : REMOTE_TEMP, c->status,
			c->error, remote_addr_host(c));
	if (rset) {
		c->state = RS_RSET;
		remote_cmd(c, NULL, "RSET");
		remote_arm(c, SETTING_QUEUE_TIMEOUT_COMMAND);
		return;
	}
	remote_ready(c);
}

/* The rest of a job failed as a whole (MAIL refused, DATA refused...):
 * its undecided recipients take the reply. */
static void remote_fail_rest(struct remote_conn *c, const char *cmd,
			     int accepted_only)
{
	struct remote_job *j = c->job;

	for (size_t i = 0; i < j->nrcpt; i++) {
		struct remote_rcpt *rc = &j->rcpts[i];

		if (accepted_only ? !rc->accepted : rc->outcome != REMOTE_NONE)
			continue;
		rc->accepted = 0;
		remote_rcpt_reply(c, rc, cmd);
	}
}

static void remote_body_start(struct remote_conn *c)
{
	c->state = RS_BODY;
	remote_data_init(&c->enc);
	remote_mime7_free(c->down);
	c->down = NULL;
	if (c->downgrade) {
		c->down = remote_mime7_new(c->job->mime7);
		if (c->down == NULL) {
			remote_error(c, "4.3.0", "out of memory");
			remote_conn_close(c);
			return;
		}
		remote_log(c, LOG_EVENT,
			   "%s: converting the 8-bit message to 7 bits (no "
			   "8BITMIME)",
			   c->job->id);
	}
	c->body_off = 0;
	c->want_flush = 0;
	remote_arm(c, SETTING_QUEUE_TIMEOUT_DATA_BLOCK);
	remote_send_body(c);
}

static void remote_reply_data(struct remote_conn *c)
{
	if (c->reply.code == 354 && c->accepted > 0 && !c->mail_failed) {
		remote_body_start(c);
		return;
	}
	if (c->reply.code == 354) {
		/* RFC 2920 3.1: a 354 with no recipient accepted; end the
		 * empty message at once. */
		c->state = RS_DISCARD;
		io_write(c->io, ".\r\n", 3);
		remote_log(c, LOG_TO_PEER, ".");
		remote_arm(c, SETTING_QUEUE_TIMEOUT_DATA_DONE);
		return;
	}
	if (c->accepted > 0 && !c->mail_failed)
		remote_fail_rest(c, "DATA", 1);
	remote_end_job(c, 1);
}

/* A whole reply arrived in state c->state. */
static void remote_on_reply(struct remote_conn *c)
{
	int code = c->reply.code;
	struct remote_job *j = c->job;

	switch (c->state) {
	case RS_GREETING:
		if (code != 220) {
			remote_error_reply(c, "the greeting");
			remote_conn_fail_addr(c);
			return;
		}
		remote_send_ehlo(c, 0);
		return;
	case RS_EHLO:
		if (code == 250) {
			remote_ehlo_parse(&c->reply, &c->ehlo);
			if (c->tls_done && !io_is_tls(c->io))
				c->tls_done = 0;
			remote_after_ehlo(c);
			return;
		}
		if (code >= 500 && !c->tls_done) {
			remote_send_ehlo(c, 1); /* RFC 5321 3.2 */
			return;
		}
		remote_error_reply(c, "EHLO");
		remote_conn_fail_addr(c);
		return;
	case RS_HELO:
		if (code != 250) {
			remote_error_reply(c, "HELO");
			remote_conn_fail_addr(c);
			return;
		}
		memset(&c->ehlo, 0, sizeof(c->ehlo));
		remote_after_ehlo(c);
		return;
	case RS_STARTTLS:
		if (code != 220) {
			remote_error_reply(c, "STARTTLS");
			if (remote_tls_mode(c->r) == 1) {
				/* "may": go on in the clear. */
				c->no_tls = 1;
				remote_after_ehlo(c);
				return;
			}
			remote_conn_fail_addr(c);
			return;
		}
		remote_start_tls(c);
		return;
	case RS_AUTH:
	case RS_AUTH_PASS:
		if (code != 235) {
			remote_error_reply(c, "AUTH");
			c->perm = 0; /* our configuration: retry later */
			c->status[0] = '4';
			remote_conn_fail_addr(c);
			return;
		}
		remote_ready(c);
		return;
	case RS_AUTH_USER: {
		struct remote *r = c->r;
		char b64[600];
		const char *v = r->auth_user;

		if (code != 334) {
			remote_error_reply(c, "AUTH");
			c->perm = 0;
			c->status[0] = '4';
			remote_conn_fail_addr(c);
			return;
		}
		/* Two 334 prompts: user name, then password (whatever
		 * their text says). */
		if (c->auth_step++ > 0)
			v = r->auth_pass;
		sodium_bin2base64(b64, sizeof(b64), (const unsigned char *)v,
				  strlen(v), sodium_base64_VARIANT_ORIGINAL);
		remote_cmd(c, "(credentials hidden)", "%s", b64);
		sodium_memzero(b64, sizeof(b64));
		if (v == r->auth_pass)
			c->state = RS_AUTH_PASS;
		remote_arm(c, SETTING_QUEUE_TIMEOUT_COMMAND);
		return;
	}
	case RS_MAIL:
		if (code >= 300) {
			remote_fail_rest(c, "MAIL FROM", 0);
			remote_end_job(c, 1);
			return;
		}
		remote_send_rcpt(c);
		return;
	case RS_RCPT: {
		struct remote_rcpt *rc = &j->rcpts[c->rcpt_i];

		if (code < 300) {
			rc->accepted = 1;
			c->accepted++;
		} else {
			remote_rcpt_reply(c, rc, "RCPT TO");
		}
		c->rcpt_i++;
		remote_send_rcpt(c);
		return;
	}
	case RS_DATA:
		remote_reply_data(c);
		return;
	case RS_PIPE: {
		size_t i = c->pipe_i++;

		if (i == 0) {
			if (code >= 300) {
				c->mail_failed = 1;
				remote_fail_rest(c, "MAIL FROM", 0);
			}
			return;
		}
		if (i <= j->nrcpt) {
			struct remote_rcpt *rc = &j->rcpts[i - 1];

			if (c->mail_failed || rc->outcome != REMOTE_NONE)
				return;
			if (code < 300) {
				rc->accepted = 1;
				c->accepted++;
			} else {
				remote_rcpt_reply(c, rc, "RCPT TO");
			}
			return;
		}
		remote_reply_data(c);
		return;
	}
	case RS_DOT:
		remote_fail_rest(c, "end of DATA", 1);
		/* Those accepted took the reply; 2xx made them done. */
		if (code < 300)
			c->perm = 0;
		remote_end_job(c, 0);
		return;
	case RS_DISCARD:
		remote_end_job(c, 1);
		return;
	case RS_RSET:
		if (code != 250) {
			remote_error_reply(c, "RSET");
			remote_conn_close(c);
			return;
		}
		remote_ready(c);
		return;
	case RS_QUIT:
		remote_conn_close(c);
		return;
	case RS_READY:
	case RS_BODY:
	case RS_CONNECTING:
	case RS_TLS:
		/* Unasked: a 421 before closing, most likely. */
		remote_error_reply(c, "nothing");
		remote_log(c, LOG_EVENT, "%s", c->error);
		if (c->state < RS_READY)
			remote_conn_fail_addr(c);
		else
			remote_conn_close(c);
		return;
	}
}

/* Reads whole reply lines from the input, bounded. */
static void remote_read_input(struct remote_conn *c)
{
	while (c->io != NULL && !c->dead) {
		size_t avail = io_input_len(c->io);
		long lf;
		const char *line, *err;
		size_t n;
		char safe[700];
		int r;

		if (avail == 0)
			return;
		lf = io_input_find_lf(c->io, REMOTE_REPLY_LINE_MAX + 2);
		if (lf < 0) {
			if (avail > REMOTE_REPLY_LINE_MAX + 2) {
				remote_error(
					c, "4.5.0",
					"host %s sent a reply line too long",
					remote_addr_host(c));
				goto broken;
			}
			return;
		}
		line = io_input_pullup(c->io, (size_t)lf + 1);
		n = (size_t)lf;
		if (n > 0 && line[n - 1] == '\r')
			n--;
		log_sanitize(safe, sizeof(safe), line, n);
		remote_log(c, LOG_FROM_PEER, "%s", safe);
		r = remote_reply_feed(&c->reply, line, n, &err);
		io_input_drain(c->io, (size_t)lf + 1);
		if (r < 0) {
			remote_error(c, "4.5.0", "host %s: %s",
				     remote_addr_host(c), err);
			goto broken;
		}
		if (r == 1) {
			remote_on_reply(c);
			/* c may be gone: only look at it through the loop
			 * condition when it is still ours. */
			if (!remote_conn_alive(c))
				return;
			remote_reply_init(&c->reply);
		}
	}
	return;
broken:
	remote_log(c, LOG_EVENT, "%s", c->error);
	if (c->state < RS_READY)
		remote_conn_fail_addr(c);
	else
		remote_conn_close(c);
}

/* ---- the message bytes ---- */

static void remote_read_work(void *state, void *arg)
{
	struct remote_read *rd = arg;
	ssize_t n;

	do
		n = pread(rd->fd, rd->data, rd->want, (off_t)rd->off);
	while (n < 0 && errno == EINTR);
	rd->got = n;
	rd->err = n < 0 ? errno : 0;
}

/* The wire form of one chunk (the end of the message with last): through
 * the 7-bit downgrade when it is on, then dot-stuffing. Returns 0 or -1. */
static int remote_send_chunk(struct remote_conn *c, const char *data,
			     size_t len, int last, struct buf *out)
{
	struct buf conv;
	int r = 0;

	if (c->down == NULL)
		return remote_data_encode(&c->enc, data, len, out) < 0 ||
				       (last &&
					remote_data_finish(&c->enc, out) < 0)
			       ? -1
			       : 0;
	/* Quoted-printable at most triples the bytes; a header block of
	 * up to 64 KiB may come out at once, its encoded-words larger. */
	buf_init(&conv, len * 3 + REMOTE_MIME7_SLACK);
	if (remote_mime7_feed(c->down, data, len, &conv) < 0 ||
	    (last && remote_mime7_finish(c->down, &conv) < 0) ||
	    remote_data_encode(&c->enc, conv.data, conv.len, out) < 0 ||
	    (last && remote_data_finish(&c->enc, out) < 0))
		r = -1;
	buf_deinit(&conv);
	return r;
}

static void remote_read_done(void *arg)
{
	struct remote_read *rd = arg;
	struct remote_conn *c = rd->c;
	struct buf out;

	c->reading = 0;
	remote_enter(c);
	if (c->dead) {
		free(rd);
		remote_conn_close(c);
		remote_leave(c);
		return;
	}
	if (rd->got <= 0) {
		remote_error(
			c, "4.3.0", "cannot read message %s: %s", c->job->id,
			rd->got < 0 ? strerror(rd->err) : "file too short");
		free(rd);
		remote_log(c, LOG_EVENT, "%s", c->error);
		/* The server must not take half a message: drop the
		 * connection without the final dot. */
		remote_conn_close(c);
		remote_leave(c);
		return;
	}
	buf_init(&out, ((size_t)rd->got * 3 + REMOTE_MIME7_SLACK) * 2 + 16);
	c->body_off += (uint64_t)rd->got;
	if (remote_send_chunk(c, rd->data, (size_t)rd->got,
			      c->body_off >= c->job->body_len, &out) < 0 ||
	    io_write(c->io, out.data, out.len) < 0) {
		buf_deinit(&out);
		free(rd);
		remote_error(c, "4.3.0", "cannot send message %s", c->job->id);
		remote_conn_close(c);
		remote_leave(c);
		return;
	}
	buf_deinit(&out);
	free(rd);
	remote_arm(c, SETTING_QUEUE_TIMEOUT_DATA_BLOCK);
	if (c->body_off >= c->job->body_len) {
		remote_log(c, LOG_TO_PEER, "(%llu bytes of message %s)",
			   (unsigned long long)c->job->body_len, c->job->id);
		remote_log(c, LOG_TO_PEER, ".");
		c->state = RS_DOT;
		remote_arm(c, SETTING_QUEUE_TIMEOUT_DATA_DONE);
	} else if (io_output_len(c->io) > REMOTE_OUT_HIGH) {
		c->want_flush = 1;
	} else {
		remote_send_body(c);
	}
	remote_leave(c);
}

/* Reads the next chunk on a worker; remote_read_done sends it. */
static void remote_send_body(struct remote_conn *c)
{
	struct remote_read *rd;
	uint64_t left = c->job->body_len - c->body_off;

	if (left == 0) {
		/* An empty message: only the dot. */
		struct buf out;

		buf_init(&out, 16);
		remote_data_finish(&c->enc, &out);
		io_write(c->io, out.data, out.len);
		buf_deinit(&out);
		remote_log(c, LOG_TO_PEER, ".");
		c->state = RS_DOT;
		remote_arm(c, SETTING_QUEUE_TIMEOUT_DATA_DONE);
		return;
	}
	rd = calloc(1, sizeof(*rd));
	if (rd == NULL) {
		remote_error(c, "4.3.0", "out of memory");
		remote_conn_close(c);
		return;
	}
	rd->c = c;
	rd->fd = c->job->body_fd;
	rd->off = c->body_off;
	rd->want = left < REMOTE_CHUNK ? (size_t)left : REMOTE_CHUNK;
	c->reading = 1;
	if (io_workers_submit(c->r->env->workers, remote_read_work,
			      remote_read_done, rd) < 0) {
		c->reading = 0;
		free(rd);
		remote_error(c, "4.3.0", "out of memory");
		remote_conn_close(c);
	}
}

/* ---- connection events ---- */

static void remote_io_cb(struct io *io, enum io_event ev, void *arg)
{
	struct remote_conn *c = arg;

	remote_enter(c);
	switch (ev) {
	case IO_EV_READ:
		remote_read_input(c);
		break;
	case IO_EV_FLUSHED:
		if (c->state == RS_BODY && c->want_flush && !c->reading) {
			c->want_flush = 0;
			remote_arm(c, SETTING_QUEUE_TIMEOUT_DATA_BLOCK);
			remote_send_body(c);
		}
		break;
	case IO_EV_TIMEOUT:
		break;
	case IO_EV_TLS_READY:
		c->tls_done = 1;
		remote_log(c, LOG_EVENT, "TLS established: %s",
			   io_tls_info(c->io));
		memset(&c->ehlo, 0, sizeof(c->ehlo));
		/* RFC 3207 4.2: forget what was learnt, EHLO again. */
		remote_send_ehlo(c, 0);
		break;
	case IO_EV_TLS_ERROR:
		if (c->state == RS_TLS) {
			remote_tls_failed(c);
			break;
		}
		/* A TLS error later is a broken connection. */
		/* fall through */
	case IO_EV_CLOSED:
		if (c->state == RS_QUIT) {
			remote_conn_close(c);
			break;
		}
		remote_error(c, "4.4.2", "host %s[%s] closed the connection%s",
			     remote_addr_host(c), c->d->addrs[c->ai].text,
			     c->state == RS_BODY || c->state == RS_DOT
				     ? " during the message"
				     : "");
		remote_log(c, LOG_EVENT, "%s", c->error);
		if (c->state < RS_READY)
			remote_conn_fail_addr(c);
		else
			remote_conn_close(c);
		break;
	}
	remote_leave(c);
}

static void remote_connect_cb(int fd, int readable, int writable, void *arg)
{
	struct remote_conn *c = arg;
	int err = 0;
	socklen_t len = sizeof(err);

	remote_enter(c);
	io_fd_free(c->cw);
	c->cw = NULL;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err != 0) {
		remote_error(c, "4.4.1", "connect to %s[%s]:%u: %s",
			     remote_addr_host(c), c->d->addrs[c->ai].text,
			     remote_port(c->d), strerror(err));
		remote_conn_fail_addr(c);
		remote_leave(c);
		return;
	}
	c->fd = -1; /* the io owns it from here */
	c->io = io_new(c->r->env->loop, fd, NULL, remote_io_cb, c);
	if (c->io == NULL) {
		remote_error(c, "4.3.0", "out of memory");
		remote_conn_fail_addr(c);
		remote_leave(c);
		return;
	}
	remote_log(c, LOG_EVENT, "connected to %s[%s]:%u", remote_addr_host(c),
		   c->d->addrs[c->ai].text, remote_port(c->d));
	c->state = RS_GREETING;
	remote_reply_init(&c->reply);
	remote_arm(c, SETTING_QUEUE_TIMEOUT_GREETING);
	remote_leave(c);
}

/* Connects to addrs[c->ai]. */
static void remote_conn_next_addr(struct remote_conn *c)
{
	struct remote_addr *a = &c->d->addrs[c->ai];
	socklen_t len = a->ss.ss_family == AF_INET6
				? sizeof(struct sockaddr_in6)
				: sizeof(struct sockaddr_in);
	int fd;

	c->state = RS_CONNECTING;
	c->tls_done = 0;
	memset(&c->ehlo, 0, sizeof(c->ehlo));
	remote_reply_init(&c->reply);
	if (c->d->key[0] == '\0')
		remote_log(c, LOG_EVENT, "connecting to smarthost %s[%s]:%u%s",
			   a->host, a->text, remote_port(c->d),
			   c->no_tls ? " (without TLS)" : "");
	else
		remote_log(c, LOG_EVENT,
			   "connecting to %s[%s]:%u (MX %u for %s)%s", a->host,
			   a->text, remote_port(c->d), a->pref, c->d->key,
			   c->no_tls ? " (without TLS)" : "");
	fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    0);
	if (fd < 0) {
		remote_error(c, "4.4.1", "socket: %s", strerror(errno));
		remote_conn_fail_addr(c);
		return;
	}
	if (connect(fd, (struct sockaddr *)&a->ss, len) < 0 &&
	    errno != EINPROGRESS) {
		remote_error(c, "4.4.1", "connect to %s[%s]:%u: %s", a->host,
			     a->text, remote_port(c->d), strerror(errno));
		close(fd);
		remote_conn_fail_addr(c);
		return;
	}
	c->fd = fd;
	c->cw = io_fd_new(c->r->env->loop, fd, remote_connect_cb, c);
	if (c->cw == NULL || io_fd_want(c->cw, 0, 1) < 0) {
		remote_error(c, "4.3.0", "out of memory");
		remote_conn_fail_addr(c);
		return;
	}
	remote_arm(c, SETTING_QUEUE_TIMEOUT_CONNECT);
}

static void remote_conn_start(struct remote_dest *d)
{
	struct remote *r = d->r;
	struct remote_conn *c = calloc(1, sizeof(*c));
	unsigned char rnd[5];

	if (c == NULL)
		return;
	c->r = r;
	c->d = d;
	c->fd = -1;
	randombytes_buf(rnd, sizeof(rnd));
	snprintf(c->sid, sizeof(c->sid), "O%02X%02X%02X%02X%02X", rnd[0],
		 rnd[1], rnd[2], rnd[3], rnd[4]);
	c->timer = io_timer_new(r->env->loop, remote_timer_cb, c);
	if (c->timer == NULL) {
		free(c);
		return;
	}
	c->next = r->conns;
	r->conns = c;
	r->nconns++;
	d->nconns++;
	d->nstarting++;
	remote_enter(c);
	remote_conn_next_addr(c);
	remote_leave(c);
}

/* ---- destinations ---- */

static void remote_dest_kick(struct remote_dest *d)
{
	struct remote *r = d->r;
	int64_t per = remote_setting(r, SETTING_QUEUE_MAX_PER_DESTINATION);
	int64_t total = remote_setting(r, SETTING_QUEUE_MAX_CONNECTIONS);

	if (r->stopped || d->njobs == 0)
		return;
	if (d->route == REMOTE_ROUTE_NONE) {
		remote_route_start(d);
		return;
	}
	if (d->route != REMOTE_ROUTE_READY)
		return;
	/* Connections being opened take the waiting jobs once ready; open
	 * more only for jobs beyond them. */
	while (d->njobs > d->nstarting && (int64_t)d->nconns < per &&
	       (int64_t)r->nconns < total) {
		size_t before = d->nconns;

		remote_conn_start(d);
		if (d->nconns <= before)
			break; /* failed at once (and maybe freed d) */
	}
}

static void remote_orphans(struct remote *r)
{
	struct remote_job *j;

	while ((j = r->orphans) != NULL) {
		r->orphans = j->next;
		remote_job_done(NULL, j, r->stopped ? REMOTE_NONE : REMOTE_TEMP,
				"4.3.0", "out of memory", NULL);
	}
}

static void remote_kick_cb(void *arg)
{
	struct remote *r = arg;

	remote_orphans(r);
	for (struct remote_dest *d = r->dests, *next; d != NULL; d = next) {
		next = d->next;
		remote_dest_kick(d);
	}
}

void remote_submit(struct remote *r, struct remote_job *job)
{
	struct remote_dest *d;
	const char *key = r->smarthost[0] != '\0' ? "" : job->domain;

	job->next = NULL;
	job->held = 0;
	for (d = r->dests; d != NULL; d = d->next)
		if (strcmp(d->key, key) == 0)
			break;
	if (d == NULL) {
		d = calloc(1, sizeof(*d));
		if (d == NULL) {
			/* Not now: the done() comes from the kick timer. */
			log_error("remote: out of memory");
			job->next = r->orphans;
			r->orphans = job;
			io_timer_add(r->kick_timer, 0);
			return;
		}
		d->r = r;
		snprintf(d->key, sizeof(d->key), "%s", key);
		d->next = r->dests;
		if (r->dests != NULL)
			r->dests->prev = d;
		r->dests = d;
	}
	if (d->tail != NULL)
		d->tail->next = job;
	else
		d->head = job;
	d->tail = job;
	d->njobs++;
	/* Started from the loop, so that done() never runs in here. */
	io_timer_add(r->kick_timer, 0);
}

/* ---- the whole ---- */

/*
 * Reads "user password" from the smarthost_auth file. Credentials never
 * sit where someone else may read or change them: the file must belong to
 * root or to the user petreld runs as, give nothing to others, and give
 * its group at most read, and that only when the group is petreld's own
 * (root:petrel 0640, as packages lay such files out). Returns 0, or -1
 * with *error_r.
 */
static int remote_auth_load(struct remote *r, const char *path,
			    const char **error_r)
{
	static char err[CONFIG_PATH_MAX + 128];
	char data[600], *sp, *nl;
	struct stat st;
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || fstat(fd, &st) < 0) {
		snprintf(err, sizeof(err), "smarthost_auth %s: %s", path,
			 strerror(errno));
		if (fd >= 0)
			close(fd);
		*error_r = err;
		return -1;
	}
	if ((st.st_mode & S_IRWXO) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		snprintf(err, sizeof(err),
			 "smarthost_auth %s must be a file that others can "
			 "not read (chmod 600)",
			 path);
		*error_r = err;
		return -1;
	}
	if (st.st_uid != 0 && st.st_uid != geteuid()) {
		close(fd);
		snprintf(err, sizeof(err),
			 "smarthost_auth %s is owned by uid %ld: it must "
			 "belong to root or to the user petreld runs as",
			 path, (long)st.st_uid);
		*error_r = err;
		return -1;
	}
	if ((st.st_mode & (S_IWGRP | S_IXGRP)) != 0 ||
	    ((st.st_mode & S_IRGRP) != 0 && st.st_gid != getegid())) {
		close(fd);
		snprintf(err, sizeof(err),
			 "smarthost_auth %s: its group (gid %ld, mode %03o) "
			 "may read it: chmod 600, or give it to petreld's own "
			 "group with mode 640",
			 path, (long)st.st_gid, (unsigned)(st.st_mode & 0777));
		*error_r = err;
		return -1;
	}
	n = read(fd, data, sizeof(data) - 1);
	close(fd);
	if (n <= 0) {
		snprintf(err, sizeof(err), "smarthost_auth %s: empty", path);
		*error_r = err;
		return -1;
	}
	data[n] = '\0';
	nl = strpbrk(data, "\r\n");
	if (nl != NULL)
		*nl = '\0';
	sp = strchr(data, ' ');
	if (sp == NULL || sp == data || sp[1] == '\0' ||
	    (size_t)(sp - data) >= sizeof(r->auth_user) ||
	    strlen(sp + 1) >= sizeof(r->auth_pass)) {
		sodium_memzero(data, sizeof(data));
		snprintf(err, sizeof(err),
			 "smarthost_auth %s: expected one line \"USER "
			 "PASSWORD\"",
			 path);
		*error_r = err;
		return -1;
	}
	*sp = '\0';
	memcpy(r->auth_user, data, (size_t)(sp - data) + 1);
	memcpy(r->auth_pass, sp + 1, strlen(sp + 1) + 1);
	sodium_memzero(data, sizeof(data));
	r->have_auth = 1;
	return 0;
}

struct remote *remote_new(struct env *env, const char **error_r)
{
	struct remote *r = calloc(1, sizeof(*r));
	const struct config *cfg = env->cfg;

	if (r == NULL) {
		*error_r = "out of memory";
		return NULL;
	}
	r->env = env;
	if (cfg->smarthost[0] != '\0' &&
	    !remote_route_hostport(cfg->smarthost, r->smarthost,
				   sizeof(r->smarthost), &r->smarthost_port)) {
		*error_r = "smarthost: expected HOST:PORT";
		free(r);
		return NULL;
	}
	if (cfg->smarthost_auth[0] != '\0') {
		if (r->smarthost[0] == '\0') {
			*error_r = "smarthost_auth is set without a smarthost";
			free(r);
			return NULL;
		}
		if (remote_auth_load(r, cfg->smarthost_auth, error_r) < 0) {
			free(r);
			return NULL;
		}
	}
	r->tls = io_tls_client_new(0, error_r);
	r->tls_verify = io_tls_client_new(1, error_r);
	r->kick_timer = io_timer_new(env->loop, remote_kick_cb, r);
	if (r->tls == NULL || r->tls_verify == NULL || r->kick_timer == NULL) {
		if (r->kick_timer == NULL)
			*error_r = "out of memory";
		remote_free(r);
		return NULL;
	}
	return r;
}

size_t remote_connections(const struct remote *r)
{
	return r != NULL ? r->nconns : 0;
}

void remote_stop(struct remote *r)
{
	if (r == NULL || r->stopped)
		return;
	r->stopped = 1;
	while (r->conns != NULL) {
		struct remote_conn *c = r->conns;

		if (c->dead) {
			/* Waiting for its read; it is closed already. */
			struct remote_conn *o = c;

			while (o != NULL && o->dead)
				o = o->next;
			if (o == NULL)
				break;
			c = o;
		}
		remote_enter(c);
		remote_error(c, "4.3.2", "shutting down");
		remote_conn_close(c);
		remote_leave(c);
	}
	for (struct remote_dest *d = r->dests, *next; d != NULL; d = next) {
		next = d->next;
		if (d->mxq != NULL) {
			dns_cancel(d->mxq);
			d->mxq = NULL;
		}
		for (size_t i = 0; i < REMOTE_MX_MAX; i++) {
			if (d->lookups[i].q != NULL) {
				dns_cancel(d->lookups[i].q);
				d->lookups[i].q = NULL;
			}
		}
		d->route = REMOTE_ROUTE_NONE;
		remote_dest_fail_all(d, 0, "4.3.2", "shutting down");
	}
	remote_orphans(r);
}

void remote_free(struct remote *r)
{
	if (r == NULL)
		return;
	remote_stop(r);
	/* What is left waits for a worker that will never report. */
	while (r->conns != NULL) {
		struct remote_conn *c = r->conns;

		c->reading = 0;
		c->busy = 0;
		remote_conn_free(c);
	}
	while (r->dests != NULL)
		remote_dest_free(r->dests);
	io_timer_free(r->kick_timer);
	io_tls_ctx_free(r->tls);
	io_tls_ctx_free(r->tls_verify);
	sodium_memzero(r->auth_pass, sizeof(r->auth_pass));
	free(r);
}
