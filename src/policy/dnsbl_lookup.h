/* DNSBL lookups on the loop: every IP in every zone, at once, through the
 * cache, within one time limit. */
#ifndef PETREL_DNSBL_LOOKUP_H
#define PETREL_DNSBL_LOOKUP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "policy/dnsbl.h"

struct dns;
struct io_loop;
struct dnsbl_lookup;

/* Called once, on the loop and never from inside dnsbl_lookup_start(),
 * with one result per IP and zone (IP by IP, zones in order). The
 * results are valid during the call; the lookup is freed after it. */
typedef void dnsbl_lookup_cb(const struct dnsbl_result *results, size_t n,
			     void *arg);

/*
 * Looks up each of ips in each of zones: the A record of the reversed
 * name (dns_reverse_name), and, when it lists, its TXT record for the log.
 * Answers come from cache when it has them, and go into it. After
 * timeout_ms the ones still missing are DNSBL_TIMEOUT (a listing whose
 * TXT is late keeps an empty text). received: mark the results as coming
 * from Received headers. Returns NULL when out of memory (cb is then never
 * called).
 */
struct dnsbl_lookup *
dnsbl_lookup_start(struct dns *dns, struct io_loop *loop,
		   struct dnsbl_cache *cache, const struct dnsbl_zone *zones,
		   size_t nzones, const struct sockaddr_storage *ips,
		   size_t nips, int received, int64_t timeout_ms, int64_t now,
		   dnsbl_lookup_cb *cb, void *arg);
/* Stops a lookup before its callback; cb is not called. NULL is fine. */
void dnsbl_lookup_cancel(struct dnsbl_lookup *l);

#endif
