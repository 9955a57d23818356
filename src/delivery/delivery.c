/*
 * delivery: runs the delivery of one spooled message. For now the local
 * part: each pending local recipient into its Maildir (local.c), with the
 * outcome recorded in the spool (queue.c) recipient by recipient, so that
 * a crash repeats at most the one delivery that was under way. Owns no
 * state: every call works from the spool file alone.
 */
#include "delivery/delivery.h"
#include "delivery/local.h"
#include "lib/log.h"
#include "queue/queue.h"

#include <limits.h>
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
	if (pending == 0 && queue_delete(q, id, &error) < 0) {
		*error_r = delivery_errorf("%s", error);
		result = -1;
		goto out;
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
