/* The queue manager's decisions over time: retries, warnings, expiry,
 * loops. Pure: the time is an argument. */
#ifndef PETREL_QMGR_POLICY_H
#define PETREL_QMGR_POLICY_H

#include <stddef.h>
#include <stdint.h>

/*
 * When to try again after the attempt-th failed try (1 for the first):
 * first seconds after now, then twice as long after each further try, at
 * most max (queue.retry_first, queue.retry_max). Seconds since the epoch.
 */
int64_t qmgr_policy_next_retry(int64_t now, uint32_t attempts, int64_t first,
			       int64_t max);

/* The last moment a message received at `received` is retried
 * (queue.max_days; 0 days: none, one try only). */
int64_t qmgr_policy_give_up(int64_t received, int64_t max_days);

/* 1 when a message still waiting should bring its sender a delay warning
 * now: warnings on, none sent yet, and warn_hours passed since it came. */
int qmgr_policy_warn_due(int64_t received, int64_t now, int enabled,
			 int64_t warn_hours, int warned);

/*
 * Counts the "Received:" fields of a header section (CRLF or LF lines,
 * ending at the first empty line or at len). Pure.
 */
size_t qmgr_policy_hops(const char *headers, size_t len);

/* The length of the header section of msg[0..len): up to and including
 * the empty line, or len when there is none. */
size_t qmgr_policy_header_len(const char *msg, size_t len);

#endif
