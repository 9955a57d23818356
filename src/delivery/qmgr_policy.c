/*
 * qmgr_policy: the retry schedule (a few minutes, then doubling up to a
 * maximum, as Postfix's minimal/maximal backoff), the give-up time
 * (queue.max_days, RFC 5321 4.5.4.1 asks for at least 4-5 days; the admin
 * chooses), the delay warning, and the hop count that detects loops
 * (RFC 5321 6.3). Pure.
 */
#include "delivery/qmgr_policy.h"

#include <string.h>
#include <strings.h>

int64_t qmgr_policy_next_retry(int64_t now, uint32_t attempts, int64_t first,
			       int64_t max)
{
	int64_t delay = first > 0 ? first : 1;

	if (max < delay)
		max = delay;
	for (uint32_t i = 1; i < attempts && delay < max; i++)
		delay *= 2;
	if (delay > max)
		delay = max;
	return now + delay;
}

int64_t qmgr_policy_give_up(int64_t received, int64_t max_days)
{
	return received + (max_days > 0 ? max_days : 0) * 86400;
}

int qmgr_policy_warn_due(int64_t received, int64_t now, int enabled,
			 int64_t warn_hours, int warned)
{
	if (!enabled || warned)
		return 0;
	return now >= received + (warn_hours > 0 ? warn_hours : 0) * 3600;
}

size_t qmgr_policy_header_len(const char *msg, size_t len)
{
	size_t i = 0;

	while (i < len) {
		const char *nl = memchr(msg + i, '\n', len - i);
		size_t n;

		if (nl == NULL)
			return len;
		n = (size_t)(nl - (msg + i));
		if (n == 0 || (n == 1 && msg[i] == '\r'))
			return (size_t)(nl - msg) + 1;
		i = (size_t)(nl - msg) + 1;
	}
	return len;
}

size_t qmgr_policy_hops(const char *headers, size_t len)
{
	size_t hops = 0, i = 0;

	len = qmgr_policy_header_len(headers, len);
	while (i < len) {
		const char *nl = memchr(headers + i, '\n', len - i);
		size_t n = nl != NULL ? (size_t)(nl - (headers + i)) : len - i;

		if (n >= 9 && strncasecmp(headers + i, "Received:", 9) == 0)
			hops++;
		if (nl == NULL)
			break;
		i += n + 1;
	}
	return hops;
}
