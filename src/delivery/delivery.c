/*
 * delivery: the blocking steps of delivering one spooled message, run on
 * the worker threads: delivery_local_run (local recipients only), and the
 * queue manager's delivery_prepare / delivery_finish around the remote
 * part (remote.c): local recipients into their Maildir (local.c), the
 * outcome of each recipient recorded in the spool (queue.c) so that a
 * crash repeats at most the delivery that was under way, bounces and
 * delay warnings (remote_dsn.c), retries (qmgr_policy.c). Owns no state:
 * every call works from the spool file and its arguments.
 */
#include "delivery/delivery.h"
#include "delivery/local.h"
#include "delivery/qmgr_policy.h"
#include "delivery/remote_dsn.h"
#include "delivery/remote_route.h"
#include "directory/directory.h"
#include "directory/settings.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "queue/queue.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static _Thread_local char delivery_errbuf[512];

static const char *delivery_errorf(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

static const char *delivery_errorf(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(delivery_errbuf, sizeof(delivery_errbuf), fmt, ap);
	va_end(ap);
	return delivery_errbuf;
}

int delivery_local_run(struct queue *q, const char *data_dir,
		       const char *hostname, const char *id,
		       const char **error_r)
{
	struct queue_envelope *env;
	enum queue_name where;
	const char *error;
	uint64_t off = 0, len = 0;
	size_t pending_local = 0, pending = 0;
	int fd = -1, r, result = 1;

	r = queue_envelope_load(q, id, &where, &env, &error);
	if (r <= 0) {
		*error_r = r == 0 ? "no such message"
				  : delivery_errorf("%s", error);
		return -1;
	}
	if (where == QUEUE_HOLD || where == QUEUE_BAD) {
		*error_r = delivery_errorf("message is in %s/",
					   queue_name_str(where));
		queue_envelope_free(env);
		return 0;
	}
	for (size_t i = 0; i < env->rcpt_count; i++) {
		struct queue_rcpt *rc = &env->rcpts[i];
		struct local_delivery d;
		enum queue_rcpt_status st;
		char path[PATH_MAX], addr[600], why[300];

		if (rc->status != QUEUE_RCPT_PENDING)
			continue;
		if (rc->kind != QUEUE_RCPT_LOCAL) {
			pending++;
			continue;
		}
		if (fd < 0) {
			r = queue_body_open(q, id, &fd, &off, &len, &error);
			if (r <= 0) {
				*error_r =
					r == 0 ? "no such message"
					       : delivery_errorf("%s", error);
				result = -1;
				goto out;
			}
		}
		memset(&d, 0, sizeof(d));
		d.data_dir = data_dir;
		d.hostname = hostname;
		d.account = rc->mailbox;
		d.sender = env->sender;
		d.recipient = rc->mailbox;
		d.body_fd = fd;
		d.body_offset = off;
		d.body_len = len;
		log_sanitize(addr, sizeof(addr), rc->address,
			     strlen(rc->address));
		r = local_deliver(&d, path, sizeof(path), &error);
		if (r == 1) {
			st = QUEUE_RCPT_DONE;
			error = NULL;
		} else {
			st = r == 0 ? QUEUE_RCPT_FAILED : QUEUE_RCPT_PENDING;
			log_sanitize(why, sizeof(why), error, strlen(error));
		}
		if (queue_rcpt_set_status(q, id, i, st, error, &error) <= 0) {
			*error_r = delivery_errorf(
				"%s: cannot record the "
				"delivery to <%s>: %s",
				id, addr, error != NULL ? error : "gone");
			result = -1;
			goto out;
		}
		if (r == 1) {
			log_sanitize(why, sizeof(why), path, strlen(path));
			log_write(LOG_SYSTEM, id, LOG_EVENT,
				  "delivered to <%s> in %s", addr, why);
		} else if (r == 0) {
			log_write(LOG_SYSTEM, id, LOG_EVENT,
				  "delivery to <%s> failed: %s", addr, why);
		} else {
			log_write(LOG_SYSTEM, id, LOG_EVENT,
				  "delivery to <%s> deferred: %s", addr, why);
			pending_local++;
		}
	}
	pending += pending_local;
	if (pending == 0) {
		/* The file goes back to the spool's pool, to be reused:
		 * our descriptor of it is closed first (queue_retire). */
		if (fd >= 0)
			close(fd);
		fd = -1;
		if (queue_retire(q, id, &error) < 0) {
			*error_r = delivery_errorf("%s", error);
			result = -1;
			goto out;
		}
	}
	result = pending_local > 0 ? 0 : 1;
	if (result == 0)
		*error_r = delivery_errorf("%zu local recipient(s) pending",
					   pending_local);
out:
	if (fd >= 0)
		close(fd);
	queue_envelope_free(env);
	return result;
}

/* ---- the queue manager's steps (delivery.h) ---- */

#define DELIVERY_HEADERS_MAX (64 * 1024) /* of the original, in reports */
#define DELIVERY_NOTICE_MAX (256 * 1024)

static void delivery_msg_error(struct delivery_msg *m, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void delivery_msg_error(struct delivery_msg *m, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(m->error, sizeof(m->error), fmt, ap);
	va_end(ap);
}

static void delivery_set(struct delivery_rcpt *r, enum remote_outcome o,
			 const char *status, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void delivery_set(struct delivery_rcpt *r, enum remote_outcome o,
			 const char *status, const char *fmt, ...)
{
	va_list ap;

	r->outcome = o;
	snprintf(r->status, sizeof(r->status), "%s", status);
	va_start(ap, fmt);
	vsnprintf(r->error, sizeof(r->error), fmt, ap);
	va_end(ap);
}

void delivery_msg_clear(struct delivery_msg *m)
{
	if (m->body_fd >= 0)
		close(m->body_fd);
	m->body_fd = -1;
	queue_envelope_free(m->env);
	m->env = NULL;
	free(m->rcpts);
	m->rcpts = NULL;
}

/* Reads the header section of the message (at most DELIVERY_HEADERS_MAX,
 * cut after a whole line). Returns its length, or -1. */
static ssize_t delivery_headers(int fd, uint64_t len, char *buf, size_t size)
{
	size_t want = len < size ? (size_t)len : size;
	size_t got = 0;

	while (got < want) {
		ssize_t n = pread(fd, buf + got, want - got, (off_t)got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	got = qmgr_policy_header_len(buf, got);
	if (got == want && want == size) {
		/* Cut: keep whole lines only. */
		while (got > 0 && buf[got - 1] != '\n')
			got--;
	}
	return (ssize_t)got;
}

static int delivery_has_8bit(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] & 0x80)
			return 1;
	return 0;
}

/* Does the message hold a byte above 127 (BODY=8BITMIME)? Then it is
 * walked once more to learn which parts a downgrade for a server without
 * 8BITMIME must convert (remote_mime7.h) into *info. */
static int delivery_eightbit(int fd, uint64_t len,
			     struct remote_mime7_info *info)
{
	unsigned char chunk[65536];
	struct remote_mime7 *scan = NULL;
	uint64_t off = 0;

	memset(info, 0, sizeof(*info));
	while (off < len) {
		size_t want = len - off < sizeof(chunk) ? (size_t)(len - off)
							: sizeof(chunk);
		ssize_t n = pread(fd, chunk, want, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (scan != NULL) {
			remote_mime7_feed(scan, chunk, (size_t)n, NULL);
		} else if (delivery_has_8bit(chunk, (size_t)n)) {
			scan = remote_mime7_new(NULL);
			if (scan == NULL) {
				/* Without the walk, no downgrade. */
				info->unconvertible = 1;
				return 1;
			}
			off = 0;
			continue;
		}
		off += (uint64_t)n;
	}
	if (scan == NULL)
		return 0;
	remote_mime7_finish(scan, NULL);
	remote_mime7_result(scan, info);
	remote_mime7_free(scan);
	return 1;
}

static int delivery_frozen(struct directory *dir, const char *account)
{
	struct directory_account a;
	const char *err;

	if (dir == NULL || account[0] == '\0')
		return 0;
	return directory_account_get(dir, account, &a, &err) == 1 &&
	       a.state == DIRECTORY_ACCOUNT_FROZEN;
}

int delivery_prepare(const struct delivery_ctx *ctx, struct delivery_msg *m)
{
	struct queue_envelope *env;
	enum queue_name where;
	const char *error;
	char *head = NULL;
	ssize_t hlen;
	size_t hops, left = 0, failed = 0;
	uint64_t body_offset = 0;
	int r;

	m->next = DELIVERY_DROP;
	m->body_fd = -1;
	m->remote_pending = 0;
	r = queue_envelope_load(ctx->q, m->id, &where, &m->env, &error);
	if (r <= 0) {
		if (r < 0)
			delivery_msg_error(m, "%s", error);
		return r < 0 ? -1 : 1;
	}
	env = m->env;
	if (m->fresh > 0)
		queue_event_add(ctx->q, QUEUE_EV_RECEIVED, (uint64_t)m->fresh,
				ctx->now, &error);
	if (where == QUEUE_HOLD || where == QUEUE_BAD)
		return 1;
	/* Deferred meanwhile (a scan raced with the end of a try): its
	 * time has not come. */
	if (where == QUEUE_DEFERRED && env->next_retry > ctx->now)
		return 1;
	m->rcpts = calloc(env->rcpt_count, sizeof(*m->rcpts));
	if (m->rcpts == NULL) {
		delivery_msg_error(m, "out of memory");
		return -1;
	}
	if (env->flags & QUEUE_FLAG_BOUNCE) {
		for (size_t i = 0; i < env->rcpt_count; i++)
			if (env->rcpts[i].status == QUEUE_RCPT_PENDING)
				delivery_set(&m->rcpts[i], REMOTE_PERM, "5.0.0",
					     "returned to the sender by the "
					     "mail administrator");
		log_write(LOG_SYSTEM, m->id, LOG_EVENT,
			  "returned to the sender by the administrator");
		m->next = DELIVERY_FINISH;
		return 1;
	}
	if (delivery_frozen(ctx->dir, env->auth_account)) {
		char why[QUEUE_REASON_MAX];

		snprintf(why, sizeof(why), "the sender's account %s is frozen",
			 env->auth_account);
		if (queue_move(ctx->q, m->id, QUEUE_HOLD, why, &error) < 0) {
			delivery_msg_error(m, "%s", error);
			return -1;
		}
		log_write(LOG_SYSTEM, m->id, LOG_EVENT, "held: %s", why);
		return 1;
	}
	r = queue_body_open(ctx->q, m->id, &m->body_fd, &body_offset,
			    &m->body_len, &error);
	if (r <= 0) {
		if (r < 0)
			delivery_msg_error(m, "%s", error);
		return r < 0 ? -1 : 1;
	}
	head = malloc(DELIVERY_HEADERS_MAX);
	if (head == NULL) {
		delivery_msg_error(m, "out of memory");
		return -1;
	}
	hlen = delivery_headers(m->body_fd, m->body_len, head,
				DELIVERY_HEADERS_MAX);
	hops = hlen > 0 ? qmgr_policy_hops(head, (size_t)hlen) : 0;
	free(head);
	if ((int64_t)hops >
	    settings_int(ctx->settings, SETTING_QUEUE_MAX_HOPS)) {
		char why[QUEUE_REASON_MAX];

		snprintf(why, sizeof(why),
			 "mail loop: %zu Received headers (queue.max_hops is "
			 "%lld)",
			 hops,
			 (long long)settings_int(ctx->settings,
						 SETTING_QUEUE_MAX_HOPS));
		if (queue_move(ctx->q, m->id, QUEUE_BAD, why, &error) < 0) {
			delivery_msg_error(m, "%s", error);
			return -1;
		}
		log_write(LOG_SYSTEM, m->id, LOG_EVENT, "moved to bad/: %s",
			  why);
		return 1;
	}
	for (size_t i = 0; i < env->rcpt_count; i++)
		left += env->rcpts[i].status == QUEUE_RCPT_PENDING;
	for (size_t i = 0; i < env->rcpt_count; i++) {
		struct queue_rcpt *rc = &env->rcpts[i];
		struct delivery_rcpt *out = &m->rcpts[i];
		struct local_delivery d;
		struct queue_rcpt_update u;
		char path[PATH_MAX], addr[600], why[300];

		if (rc->status != QUEUE_RCPT_PENDING)
			continue;
		left--;
		if (rc->kind != QUEUE_RCPT_LOCAL) {
			m->remote_pending++;
			continue;
		}
		memset(&d, 0, sizeof(d));
		d.data_dir = ctx->data_dir;
		d.hostname = ctx->hostname;
		d.account = rc->mailbox;
		d.sender = env->sender;
		d.recipient = rc->mailbox;
		d.body_fd = m->body_fd;
		d.body_offset = 0;
		d.body_len = m->body_len;
		log_sanitize(addr, sizeof(addr), rc->address,
			     strlen(rc->address));
		r = local_deliver(&d, path, sizeof(path), &error);
		if (r == 1 && left == 0 && m->remote_pending == 0 &&
		    failed == 0) {
			/* The last recipient, all delivered: delivery_finish()
			 * removes the message next, and writing (and
			 * flushing) its status first would be lost work. A
			 * crash in between delivers it again: twice at
			 * worst, never zero times. */
			out->outcome = REMOTE_DONE;
			log_sanitize(why, sizeof(why), path, strlen(path));
			log_write(LOG_SYSTEM, m->id, LOG_EVENT,
				  "delivered to <%s> in %s", addr, why);
			continue;
		}
		if (r == 1) {
			/* Recorded at once: a crash now costs no copy. */
			u.idx = i;
			u.status = QUEUE_RCPT_DONE;
			u.error = NULL;
			u.attempted = 1;
			if (queue_rcpts_update(ctx->q, m->id, &u, 1, &error) <=
			    0) {
				delivery_msg_error(m,
						   "cannot record the delivery "
						   "to <%s>: %s",
						   addr, error);
				return -1;
			}
			out->outcome = REMOTE_DONE;
			out->recorded = 1;
			log_sanitize(why, sizeof(why), path, strlen(path));
			log_write(LOG_SYSTEM, m->id, LOG_EVENT,
				  "delivered to <%s> in %s", addr, why);
			continue;
		}
		failed++;
		log_sanitize(why, sizeof(why), error, strlen(error));
		if (r == 0) {
			delivery_set(out, REMOTE_PERM, "5.1.1",
				     "local delivery to <%s> failed: %s", addr,
				     why);
		} else {
			delivery_set(out, REMOTE_TEMP, "4.2.0",
				     "local delivery to <%s> deferred: %s",
				     addr, why);
		}
		log_write(LOG_SYSTEM, m->id, LOG_EVENT, "%s", out->error);
	}
	if (m->remote_pending > 0) {
		m->eightbit =
			delivery_eightbit(m->body_fd, m->body_len, &m->mime7);
		m->next = DELIVERY_SEND;
	} else {
		m->next = DELIVERY_FINISH;
	}
	return 1;
}

/* ---- reports ---- */

struct delivery_pm {
	struct directory *dir;
	char account[DIRECTORY_ADDRESS_MAX + 1];
	char address[DIRECTORY_ADDRESS_MAX + 1];
};

static void delivery_pm_cb(const char *domain, void *ctx)
{
	struct delivery_pm *pm = ctx;
	const char *err;

	if (pm->account[0] != '\0')
		return;
	snprintf(pm->address, sizeof(pm->address), "postmaster@%s", domain);
	if (directory_resolve(pm->dir, pm->address, pm->account, &err) != 1)
		pm->account[0] = '\0';
}

/*
 * Where a report about m goes: the sender; for a report that failed
 * itself (a double bounce) the postmaster; nowhere for a failed report to
 * the postmaster. Fills rc (address, mailbox, kind; strings in the
 * buffers). Returns 1, or 0 when there is nobody to tell.
 */
static int delivery_report_to(const struct delivery_ctx *ctx,
			      const struct queue_envelope *env, int delayed,
			      struct queue_rcpt *rc,
			      char addr[DIRECTORY_ADDRESS_MAX + 1],
			      char account[DIRECTORY_ADDRESS_MAX + 1],
			      int *double_r)
{
	const char *err;
	char domain[256];

	*double_r = 0;
	memset(rc, 0, sizeof(*rc));
	if (env->sender[0] == '\0') {
		struct delivery_pm pm = {.dir = ctx->dir};

		/* Never to the null sender (RFC 5321 6.1, 4.5.5); a report
		 * that failed goes to the postmaster, once. */
		if (delayed || strcmp(env->listener, "dsn-postmaster") == 0 ||
		    ctx->dir == NULL)
			return 0;
		delivery_pm_cb(ctx->hostname, &pm);
		if (pm.account[0] == '\0')
			directory_domain_list(ctx->dir, delivery_pm_cb, &pm,
					      &err);
		if (pm.account[0] == '\0')
			return 0;
		snprintf(addr, DIRECTORY_ADDRESS_MAX + 1, "%s", pm.address);
		snprintf(account, DIRECTORY_ADDRESS_MAX + 1, "%s", pm.account);
		rc->address = addr;
		rc->mailbox = account;
		rc->kind = QUEUE_RCPT_LOCAL;
		*double_r = 1;
		return 1;
	}
	if (strlen(env->sender) > DIRECTORY_ADDRESS_MAX)
		return 0;
	snprintf(addr, DIRECTORY_ADDRESS_MAX + 1, "%s", env->sender);
	rc->address = addr;
	rc->mailbox = "";
	rc->kind = QUEUE_RCPT_REMOTE;
	if (ctx->dir != NULL &&
	    remote_route_domain(addr, domain, sizeof(domain)) &&
	    directory_domain_exists(ctx->dir, domain) == 1) {
		if (directory_resolve(ctx->dir, addr, account, &err) != 1)
			return 0; /* a local sender without a mailbox */
		rc->mailbox = account;
		rc->kind = QUEUE_RCPT_LOCAL;
	}
	return 1;
}

/*
 * Queues a report about the recipients idx[0..n) of m: a bounce, or a
 * delay warning. Returns 1 (its id in id_r), 0 when nobody is to be told,
 * -1 on error (m->error).
 */
static int delivery_report(const struct delivery_ctx *ctx,
			   struct delivery_msg *m, int delayed,
			   const size_t *idx, size_t n, int64_t retry_until,
			   char id_r[QUEUE_ID_SIZE])
{
	const struct queue_envelope *env = m->env;
	struct remote_dsn_rcpt *dr = NULL;
	struct remote_dsn dsn;
	struct queue_envelope ne;
	struct queue_rcpt rc;
	struct queue_writer *w = NULL;
	struct buf out;
	char addr[DIRECTORY_ADDRESS_MAX + 1],
		account[DIRECTORY_ADDRESS_MAX + 1];
	char mid[400], boundary[80], *head = NULL;
	const char *error;
	ssize_t hlen = 0;
	int dbl, r = -1;

	if (!delivery_report_to(ctx, env, delayed, &rc, addr, account, &dbl)) {
		log_write(LOG_SYSTEM, m->id, LOG_EVENT, "no %s sent: %s",
			  delayed ? "delay warning" : "bounce",
			  env->sender[0] == '\0' ? "the sender is <>"
						 : "no mailbox for the sender");
		return 0;
	}
	buf_init(&out, DELIVERY_NOTICE_MAX);
	dr = calloc(n, sizeof(*dr));
	head = malloc(DELIVERY_HEADERS_MAX);
	w = queue_writer_new(ctx->q, &error);
	if (dr == NULL || head == NULL || w == NULL) {
		delivery_msg_error(m, "cannot queue a report: %s",
				   w == NULL ? error : "out of memory");
		goto out;
	}
	if (m->body_fd >= 0)
		hlen = delivery_headers(m->body_fd, m->body_len, head,
					DELIVERY_HEADERS_MAX);
	if (hlen < 0)
		hlen = 0;
	for (size_t i = 0; i < n; i++) {
		const struct delivery_rcpt *o = &m->rcpts[idx[i]];

		dr[i].address = env->rcpts[idx[i]].address;
		dr[i].status = o->status[0] != '\0' ? o->status
			       : delayed	    ? "4.0.0"
						    : "5.0.0";
		dr[i].remote_mta = o->mta;
		dr[i].diagnostic = o->error;
		dr[i].last_attempt = ctx->now;
	}
	snprintf(mid, sizeof(mid), "<%s.%s@%s>", queue_writer_id(w),
		 delayed ? "delay" : "dsn", ctx->hostname);
	snprintf(boundary, sizeof(boundary), "%s/%s", queue_writer_id(w),
		 ctx->hostname);
	memset(&dsn, 0, sizeof(dsn));
	dsn.hostname = ctx->hostname;
	dsn.to = env->sender[0] != '\0' ? env->sender : rc.address;
	dsn.queue_id = m->id;
	dsn.message_id = mid;
	dsn.boundary = boundary;
	dsn.arrival = env->received;
	dsn.now = ctx->now;
	dsn.delayed = delayed;
	dsn.retry_until = retry_until;
	dsn.rcpts = dr;
	dsn.nrcpt = n;
	dsn.headers = head;
	dsn.headers_len = (size_t)hlen;
	if (remote_dsn_compose(&dsn, &out) < 0) {
		delivery_msg_error(m, "report too large");
		goto out;
	}
	if (queue_writer_write(w, out.data, out.len) < 0) {
		delivery_msg_error(m, "cannot write a report");
		goto out;
	}
	memset(&ne, 0, sizeof(ne));
	ne.sender = "";
	ne.rcpts = &rc;
	ne.rcpt_count = 1;
	ne.received = ctx->now;
	ne.client_ip = "127.0.0.1";
	ne.helo = ctx->hostname;
	ne.listener = dbl ? "dsn-postmaster" : "dsn";
	ne.protocol = "local";
	ne.message_id = mid;
	ne.subject = delayed ? "Delayed Mail (still being retried)"
			     : "Undelivered Mail Returned to Sender";
	if (queue_writer_commit(w, &ne, &error) != 1) {
		delivery_msg_error(m, "cannot queue a report: %s", error);
		goto out;
	}
	snprintf(id_r, QUEUE_ID_SIZE, "%s", queue_writer_id(w));
	log_sanitize(addr, sizeof(addr), rc.address, strlen(rc.address));
	log_write(LOG_SYSTEM, m->id, LOG_EVENT, "%s to <%s> queued as %s",
		  delayed ? "delay warning"
		  : dbl	  ? "double bounce (to the postmaster)"
			  : "bounce",
		  addr, id_r);
	r = 1;
out:
	queue_writer_free(w);
	free(head);
	free(dr);
	buf_deinit(&out);
	return r;
}

int delivery_finish(const struct delivery_ctx *ctx, struct delivery_msg *m)
{
	const struct settings *s = ctx->settings;
	struct queue_envelope *cur = NULL;
	struct queue_rcpt_update *ups = NULL;
	size_t *idx = NULL, nidx = 0, nups = 0, pending = 0;
	uint64_t delivered = 0, bounced = 0;
	enum queue_name where;
	const char *error, *reason = "";
	int64_t give_up;
	uint32_t attempts = 0;
	int r, result = -1;

	m->nnotices = 0;
	m->next_retry = 0;
	if (m->env == NULL || m->rcpts == NULL)
		return 1;
	r = queue_envelope_load(ctx->q, m->id, &where, &cur, &error);
	if (r <= 0) {
		/* Deleted meanwhile by the administrator. */
		if (r < 0)
			delivery_msg_error(m, "%s", error);
		return r < 0 ? -1 : 1;
	}
	idx = calloc(cur->rcpt_count, sizeof(*idx));
	ups = calloc(cur->rcpt_count, sizeof(*ups));
	if (idx == NULL || ups == NULL ||
	    cur->rcpt_count != m->env->rcpt_count) {
		delivery_msg_error(m, "out of memory");
		goto out;
	}
	give_up = qmgr_policy_give_up(cur->received,
				      settings_int(s, SETTING_QUEUE_MAX_DAYS));
	/* Out of time: what is still deferred fails now (RFC 3463 4.4.7). */
	for (size_t i = 0; i < cur->rcpt_count; i++) {
		struct delivery_rcpt *o = &m->rcpts[i];

		if (o->outcome == REMOTE_TEMP && ctx->now >= give_up &&
		    !m->stopping && !m->held) {
			char last[QUEUE_ERROR_MAX + 1];

			snprintf(last, sizeof(last), "%s", o->error);
			delivery_set(o, REMOTE_PERM, "4.4.7",
				     "delivery time expired; last error: %s",
				     last);
		}
	}
	/* Bounce first, record after: a crash in between sends the report
	 * twice at worst, never not at all. */
	if (!m->held) {
		for (size_t i = 0; i < cur->rcpt_count; i++)
			if (m->rcpts[i].outcome == REMOTE_PERM &&
			    cur->rcpts[i].status == QUEUE_RCPT_PENDING)
				idx[nidx++] = i;
		if (nidx > 0) {
			r = delivery_report(ctx, m, 0, idx, nidx, 0,
					    m->notices[m->nnotices]);
			if (r < 0)
				goto out;
			if (r == 1)
				m->nnotices++;
			bounced = nidx;
		}
	}
	for (size_t i = 0; i < cur->rcpt_count; i++) {
		struct delivery_rcpt *o = &m->rcpts[i];
		struct queue_rcpt_update *u = &ups[nups];

		if (o->recorded) {
			delivered++;
			continue;
		}
		if (cur->rcpts[i].status != QUEUE_RCPT_PENDING)
			continue;
		if (o->outcome == REMOTE_NONE ||
		    (m->held && o->outcome != REMOTE_DONE)) {
			pending++;
			if (cur->rcpts[i].attempts > attempts)
				attempts = cur->rcpts[i].attempts;
			continue;
		}
		u->idx = i;
		u->attempted = 1;
		u->error = o->error;
		if (o->outcome == REMOTE_DONE) {
			u->status = QUEUE_RCPT_DONE;
			delivered++;
		} else if (o->outcome == REMOTE_PERM) {
			u->status = QUEUE_RCPT_FAILED;
		} else {
			u->status = QUEUE_RCPT_PENDING;
			pending++;
			if (cur->rcpts[i].attempts + 1 > attempts)
				attempts = cur->rcpts[i].attempts + 1;
			if (reason[0] == '\0')
				reason = o->error;
		}
		nups++;
	}
	/* Nothing left to do: the message goes, and the statuses need no
	 * writing first, unless it cannot be removed. Its file goes back to
	 * the spool's pool for a new message: the body is read no more (the
	 * remote jobs, which read it through m->body_fd, are all done, and
	 * the bounce is queued), and the descriptor is closed before the
	 * file can be reused (queue_retire). */
	if (pending == 0) {
		if (m->body_fd >= 0)
			close(m->body_fd);
		m->body_fd = -1;
		if (queue_retire(ctx->q, m->id, &error) < 0) {
			delivery_msg_error(m, "%s", error);
			if (nups > 0)
				queue_rcpts_update(ctx->q, m->id, ups, nups,
						   &error);
			goto out;
		}
		queue_event_add(ctx->q, QUEUE_EV_DELIVERED, delivered, ctx->now,
				&error);
		queue_event_add(ctx->q, QUEUE_EV_BOUNCED, bounced, ctx->now,
				&error);
		log_write(LOG_SYSTEM, m->id, LOG_EVENT,
			  "removed: no recipient is pending");
		result = 1;
		goto out;
	}
	if (nups > 0 &&
	    queue_rcpts_update(ctx->q, m->id, ups, nups, &error) < 0) {
		delivery_msg_error(m, "%s", error);
		goto out;
	}
	queue_event_add(ctx->q, QUEUE_EV_DELIVERED, delivered, ctx->now,
			&error);
	queue_event_add(ctx->q, QUEUE_EV_BOUNCED, bounced, ctx->now, &error);
	if (m->held) {
		char why[QUEUE_REASON_MAX];

		snprintf(why, sizeof(why), "the sender's account %s is frozen",
			 m->env->auth_account);
		if (queue_move(ctx->q, m->id, QUEUE_HOLD, why, &error) < 0) {
			delivery_msg_error(m, "%s", error);
			goto out;
		}
		log_write(LOG_SYSTEM, m->id, LOG_EVENT, "held: %s", why);
		result = 1;
		goto out;
	}
	if (where == QUEUE_HOLD || where == QUEUE_BAD || m->stopping) {
		/* Held meanwhile, or shutting down: stays where it is. */
		result = 1;
		goto out;
	}
	/* A delay warning, once, to a real sender. */
	if (m->env->sender[0] != '\0' &&
	    qmgr_policy_warn_due(cur->received, ctx->now,
				 settings_bool(s, SETTING_QUEUE_DELAY_WARNING),
				 settings_int(s, SETTING_QUEUE_WARN_HOURS),
				 (cur->flags & QUEUE_FLAG_WARNED) != 0)) {
		nidx = 0;
		for (size_t i = 0; i < cur->rcpt_count; i++)
			if (cur->rcpts[i].status == QUEUE_RCPT_PENDING &&
			    m->rcpts[i].outcome == REMOTE_TEMP)
				idx[nidx++] = i;
		if (nidx > 0) {
			r = delivery_report(ctx, m, 1, idx, nidx, give_up,
					    m->notices[m->nnotices]);
			if (r == 1)
				m->nnotices++;
			if (r >= 0)
				queue_set_flags(ctx->q, m->id,
						QUEUE_FLAG_WARNED, 0, &error);
		}
	}
	m->next_retry = qmgr_policy_next_retry(
		ctx->now, attempts > 0 ? attempts : 1,
		settings_int(s, SETTING_QUEUE_RETRY_FIRST),
		settings_int(s, SETTING_QUEUE_RETRY_MAX));
	/* The last try comes at the give-up time, not after it. */
	if (give_up > ctx->now && m->next_retry > give_up)
		m->next_retry = give_up;
	if (queue_defer(ctx->q, m->id, m->next_retry, reason, &error) < 0) {
		delivery_msg_error(m, "%s", error);
		m->next_retry = 0;
		goto out;
	}
	queue_event_add(ctx->q, QUEUE_EV_DEFERRED, 1, ctx->now, &error);
	log_write(LOG_SYSTEM, m->id, LOG_EVENT,
		  "deferred: %zu recipient(s) pending, next try in %lld s",
		  pending, (long long)(m->next_retry - ctx->now));
	result = 1;
out:
	free(idx);
	free(ups);
	queue_envelope_free(cur);
	return result;
}

/* ---- scanning ---- */

struct delivery_scan_state {
	struct queue *q;
	int64_t now;
	struct delivery_scan_result *r;
	size_t cap, later_cap;
	int active; /* listing active/: every id is due */
	int failed; /* out of memory: the pass is incomplete */
};

static int delivery_scan_push(struct delivery_scan_state *st, const char *id)
{
	struct delivery_scan_result *r = st->r;

	if (r->ndue == st->cap) {
		size_t cap = st->cap ? st->cap * 2 : 64;
		void *p = realloc(r->due, cap * sizeof(*r->due));

		if (p == NULL)
			return -1;
		r->due = p;
		st->cap = cap;
	}
	snprintf(r->due[r->ndue++], QUEUE_ID_SIZE, "%s", id);
	return 0;
}

static int delivery_scan_later(struct delivery_scan_state *st, const char *id,
			       int64_t at)
{
	struct delivery_scan_result *r = st->r;

	if (r->nlater == st->later_cap) {
		size_t cap = st->later_cap ? st->later_cap * 2 : 64;
		void *p = realloc(r->later, cap * sizeof(*r->later));

		if (p == NULL)
			return -1;
		r->later = p;
		st->later_cap = cap;
	}
	r->later[r->nlater].at = at;
	snprintf(r->later[r->nlater].id, QUEUE_ID_SIZE, "%s", id);
	r->nlater++;
	return 0;
}

/* One deferred message: into active/ when due, else into later. */
static int delivery_scan_one(struct delivery_scan_state *st, const char *id)
{
	struct queue_envelope *env;
	enum queue_name where;
	const char *error;
	int r = 0;

	if (queue_envelope_load(st->q, id, &where, &env, &error) != 1)
		return 0;
	if (where == QUEUE_DEFERRED) {
		if (env->next_retry <= st->now) {
			if (queue_move(st->q, id, QUEUE_ACTIVE, env->reason,
				       &error) == 1)
				r = delivery_scan_push(st, id);
		} else {
			r = delivery_scan_later(st, id, env->next_retry);
		}
	}
	queue_envelope_free(env);
	return r;
}

static int delivery_scan_cb(void *ctx, const char *id)
{
	struct delivery_scan_state *st = ctx;

	if ((st->active ? delivery_scan_push(st, id)
			: delivery_scan_one(st, id)) < 0) {
		st->failed = 1;
		return 1;
	}
	return 0;
}

int delivery_scan(struct queue *q, int64_t now, int all,
		  const struct delivery_retry *candidates, size_t n,
		  struct delivery_scan_result *r, const char **error_r)
{
	struct delivery_scan_state st = {.q = q, .now = now, .r = r};
	int rc = 1;

	memset(r, 0, sizeof(*r));
	if (all) {
		rc = queue_scan(q, QUEUE_DEFERRED, delivery_scan_cb, &st,
				error_r);
	} else {
		for (size_t i = 0; i < n; i++) {
			if (!queue_id_valid(candidates[i].id))
				continue;
			if (delivery_scan_one(&st, candidates[i].id) < 0) {
				*error_r = "out of memory";
				rc = -1;
				break;
			}
		}
	}
	if (rc > 0 && !st.failed) {
		st.active = 1;
		rc = queue_scan(q, QUEUE_ACTIVE, delivery_scan_cb, &st,
				error_r);
	}
	if (rc > 0 && st.failed) {
		*error_r = "out of memory";
		rc = -1;
	}
	if (rc < 0) {
		free(r->due);
		free(r->later);
		memset(r, 0, sizeof(*r));
		return -1;
	}
	return 1;
}
