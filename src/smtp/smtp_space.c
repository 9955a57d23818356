/*
 * smtp_space: the free-space watch of the spool (queue.min_free_mb). A
 * full disk must not make the daemon accept a transaction that fails
 * half-way, at the end of DATA, after the client sent the whole message:
 * below the threshold MAIL gets 452 4.3.1 (RFC 3463: mail system full)
 * and the client retries later. Owns the shared last answer: statvfs is
 * called at most once a second, whichever loop asks, and the system log
 * gets one line when the state changes, not one per refused MAIL.
 */
#include "smtp/smtp_space.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/statvfs.h>

#include "lib/log.h"

#define SMTP_SPACE_EVERY_MS 1000

static struct {
	pthread_mutex_t lock;
	int checked;	    /* an answer is there */
	int64_t checked_ms; /* when */
	int64_t min_mb;	    /* the threshold it was measured against */
	int low;	    /* under the threshold */
	int failed;	    /* the last statvfs failed (logged once) */
} smtp_space = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Free megabytes for an unprivileged writer, or -1 with errno set. */
static int64_t smtp_space_free_mb(const char *dir)
{
	struct statvfs v;
	uint64_t kb;

	if (statvfs(dir, &v) < 0)
		return -1;
	kb = v.f_frsize >= 1024 ? (uint64_t)v.f_bavail * (v.f_frsize / 1024)
				: (uint64_t)v.f_bavail * v.f_frsize / 1024;
	return (int64_t)(kb / 1024);
}

int smtp_space_ok(const char *dir, int64_t min_mb, int64_t now_ms)
{
	int ok;

	pthread_mutex_lock(&smtp_space.lock);
	if (min_mb <= 0) {
		if (smtp_space.low)
			log_info("queue.min_free_mb is 0: the free-space "
				 "check is off, new transactions accepted");
		smtp_space.low = 0;
		smtp_space.checked = 0;
	} else if (!smtp_space.checked || min_mb != smtp_space.min_mb ||
		   now_ms - smtp_space.checked_ms >= SMTP_SPACE_EVERY_MS ||
		   now_ms < smtp_space.checked_ms) {
		int64_t free_mb = smtp_space_free_mb(dir);

		if (free_mb < 0) {
			if (!smtp_space.failed)
				log_error("statvfs(%s) failed: %s", dir,
					  strerror(errno));
			smtp_space.failed = 1;
		} else {
			int low = free_mb < min_mb;

			if (low && !smtp_space.low)
				log_warn("%s: %lld MB free, under "
					 "queue.min_free_mb (%lld): new "
					 "transactions get 452 4.3.1",
					 dir, (long long)free_mb,
					 (long long)min_mb);
			else if (!low && smtp_space.low)
				log_info("%s: %lld MB free, queue.min_free_mb "
					 "(%lld) met again: new transactions "
					 "accepted",
					 dir, (long long)free_mb,
					 (long long)min_mb);
			smtp_space.low = low;
			smtp_space.failed = 0;
		}
		smtp_space.checked = 1;
		smtp_space.checked_ms = now_ms;
		smtp_space.min_mb = min_mb;
	}
	ok = !smtp_space.low;
	pthread_mutex_unlock(&smtp_space.lock);
	return ok;
}
