/*
 * dnsbl_lookup: runs the DNS side of DNSBL checks with c-ares (lib/dns.c)
 * on the loop. One lookup holds a query per IP and zone, all sent at once;
 * one timer bounds them all. What the answers mean is dnsbl.c's business;
 * this file only moves them and fills the cache.
 */
#include "policy/dnsbl_lookup.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/dns.h"
#include "lib/io.h"

struct dnsbl_pair {
	struct dnsbl_lookup *l;
	size_t idx;	     /* into l->results */
	struct dns_query *q; /* NULL when done */
	int txt;	     /* the TXT query is running */
	uint32_t ttl;	     /* of the listing's A record */
	char name[DNS_NAME_MAX];
};

struct dnsbl_lookup {
	struct dns *dns;
	struct dnsbl_cache *cache;
	struct io_timer *timer;
	int64_t now;
	dnsbl_lookup_cb *cb;
	void *arg;
	size_t n, pending;
	struct dnsbl_result *results;
	struct dnsbl_pair *pairs;
};

static void dnsbl_lookup_free(struct dnsbl_lookup *l)
{
	for (size_t i = 0; i < l->n; i++)
		dns_cancel(l->pairs[i].q);
	io_timer_free(l->timer);
	free(l->results);
	free(l->pairs);
	free(l);
}

void dnsbl_lookup_cancel(struct dnsbl_lookup *l)
{
	if (l != NULL)
		dnsbl_lookup_free(l);
}

static void dnsbl_lookup_finish(struct dnsbl_lookup *l)
{
	l->cb(l->results, l->n, l->arg);
	dnsbl_lookup_free(l);
}

/* One pair is over; the last one ends the lookup. */
static void dnsbl_pair_done(struct dnsbl_pair *p)
{
	struct dnsbl_lookup *l = p->l;

	p->q = NULL;
	if (--l->pending == 0) {
		io_timer_del(l->timer);
		dnsbl_lookup_finish(l);
	}
}

static void dnsbl_cache_result(struct dnsbl_lookup *l,
			       const struct dnsbl_pair *p, uint32_t ttl)
{
	const struct dnsbl_result *r = &l->results[p->idx];
	struct dnsbl_cache_entry e;

	if (l->cache == NULL)
		return;
	memset(&e, 0, sizeof(e));
	e.status = r->status;
	snprintf(e.answer, sizeof(e.answer), "%s", r->answer);
	snprintf(e.txt, sizeof(e.txt), "%s", r->txt);
	dnsbl_cache_put(l->cache, p->name, &e, ttl, l->now);
}

static void dnsbl_txt_cb(const struct dns_result *dr, void *arg)
{
	struct dnsbl_pair *p = arg;
	struct dnsbl_result *r = &p->l->results[p->idx];

	if (dr->status == DNS_OK && dr->ntxt > 0) {
		size_t o = 0;

		/* Control bytes would not survive the log line. */
		for (const char *c = dr->txt[0];
		     *c != '\0' && o + 1 < sizeof(r->txt); c++)
			r->txt[o++] = (unsigned char)*c < 0x20 ||
						      (unsigned char)*c >= 0x7f
					      ? '?'
					      : *c;
		r->txt[o] = '\0';
	}
	dnsbl_cache_result(p->l, p, p->ttl);
	dnsbl_pair_done(p);
}

static void dnsbl_a_cb(const struct dns_result *dr, void *arg)
{
	struct dnsbl_pair *p = arg;
	struct dnsbl_lookup *l = p->l;
	struct dnsbl_result *r = &l->results[p->idx];

	switch (dr->status) {
	case DNS_OK:
		r->status = dnsbl_answer_status(dr->addrs, dr->naddrs,
						r->answer, sizeof(r->answer));
		if (r->status == DNSBL_LISTED) {
			p->ttl = dr->ttl;
			p->txt = 1;
			p->q = dns_txt(l->dns, p->name, dnsbl_txt_cb, p);
			if (p->q != NULL)
				return;
			dnsbl_cache_result(l, p, p->ttl);
		} else if (r->status == DNSBL_CLEAN) {
			dnsbl_cache_result(l, p, dr->ttl);
		}
		break;
	case DNS_NOTFOUND:
		r->status = DNSBL_CLEAN;
		dnsbl_cache_result(
			l, p, dr->ttl > 0 ? dr->ttl : DNSBL_CACHE_NEGATIVE_TTL);
		break;
	case DNS_TEMPFAIL:
		r->status = DNSBL_TEMPFAIL;
		break;
	}
	dnsbl_pair_done(p);
}

static void dnsbl_timer_cb(void *arg)
{
	struct dnsbl_lookup *l = arg;

	for (size_t i = 0; i < l->n; i++) {
		struct dnsbl_pair *p = &l->pairs[i];

		if (p->q == NULL)
			continue;
		dns_cancel(p->q);
		p->q = NULL;
		/* A late TXT leaves the listing as it is, text-less. */
		if (!p->txt)
			l->results[p->idx].status = DNSBL_TIMEOUT;
	}
	l->pending = 0;
	dnsbl_lookup_finish(l);
}

struct dnsbl_lookup *
dnsbl_lookup_start(struct dns *dns, struct io_loop *loop,
		   struct dnsbl_cache *cache, const struct dnsbl_zone *zones,
		   size_t nzones, const struct sockaddr_storage *ips,
		   size_t nips, int received, int64_t timeout_ms, int64_t now,
		   dnsbl_lookup_cb *cb, void *arg)
{
	struct dnsbl_lookup *l = calloc(1, sizeof(*l));
	size_t n = nips * nzones;

	if (l == NULL)
		return NULL;
	l->dns = dns;
	l->cache = cache;
	l->now = now;
	l->cb = cb;
	l->arg = arg;
	l->results = calloc(n > 0 ? n : 1, sizeof(*l->results));
	l->pairs = calloc(n > 0 ? n : 1, sizeof(*l->pairs));
	l->timer = io_timer_new(loop, dnsbl_timer_cb, l);
	if (l->results == NULL || l->pairs == NULL || l->timer == NULL) {
		dnsbl_lookup_free(l);
		return NULL;
	}
	l->n = n;
	for (size_t i = 0; i < nips; i++) {
		for (size_t z = 0; z < nzones; z++) {
			size_t k = i * nzones + z;
			struct dnsbl_result *r = &l->results[k];
			struct dnsbl_pair *p = &l->pairs[k];
			struct dnsbl_cache_entry e;

			p->l = l;
			p->idx = k;
			r->zone = z;
			r->received = received;
			r->status = DNSBL_TEMPFAIL;
			if (ips[i].ss_family == AF_INET)
				inet_ntop(AF_INET,
					  &((const struct sockaddr_in *)&ips[i])
						   ->sin_addr,
					  r->ip, sizeof(r->ip));
			else
				inet_ntop(
					AF_INET6,
					&((const struct sockaddr_in6 *)&ips[i])
						 ->sin6_addr,
					r->ip, sizeof(r->ip));
			if (dns_reverse_name((const struct sockaddr *)&ips[i],
					     zones[z].zone, p->name,
					     sizeof(p->name)) < 0)
				continue; /* cannot be asked: a failure */
			if (cache != NULL &&
			    dnsbl_cache_get(cache, p->name, now, &e) == 1) {
				r->status = e.status;
				r->cached = 1;
				snprintf(r->answer, sizeof(r->answer), "%s",
					 e.answer);
				snprintf(r->txt, sizeof(r->txt), "%s", e.txt);
				continue;
			}
			if (dns == NULL)
				continue;
			p->q = dns_a(dns, p->name, dnsbl_a_cb, p);
			if (p->q != NULL)
				l->pending++;
		}
	}
	/* With every answer cached, the callback still comes from the loop. */
	io_timer_add(l->timer, l->pending > 0 ? timeout_ms : 0);
	return l;
}
