/*
 * dnsbl: the pure half of DNS blocklist checks. Parses dnsbl.zones, says
 * what an answer means (only 127.0.0.0/8 lists), builds the refusal text,
 * decides the refusal at RCPT, finds the IPs of Received headers, and
 * keeps the cache of answers by TTL. The lookups themselves run in
 * dnsbl_lookup.c.
 */
#include "policy/dnsbl.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "directory/settings.h"
#include "lib/addr.h"
#include "lib/header.h"
#include "policy/policy.h"

/* ---- the zone list ---- */

/* Does item start with "zone:" where zone is a domain name? Returns the
 * zone's length, or 0. */
static size_t dnsbl_zone_prefix(const char *item, size_t len)
{
	char zone[DNSBL_ZONE_MAX];
	const char *colon = memchr(item, ':', len);
	size_t n = colon != NULL ? (size_t)(colon - item) : len;

	if (n == 0 || n >= sizeof(zone))
		return 0;
	memcpy(zone, item, n);
	zone[n] = '\0';
	if (strchr(zone, '.') == NULL || !addr_domain_valid(zone))
		return 0;
	return n;
}

int dnsbl_zones_parse(const char *list, struct dnsbl_zone *zones, size_t max,
		      size_t *n_r, const char **error_r)
{
	const char *p = list;
	size_t n = 0;

	*n_r = 0;
	while (*p != '\0') {
		size_t len, zl;
		const char *item;

		while (*p == ',' || *p == ' ')
			p++;
		if (*p == '\0')
			break;
		item = p;
		len = strcspn(p, ",");
		p += len;
		while (len > 0 && isspace((unsigned char)item[len - 1]))
			len--;
		zl = dnsbl_zone_prefix(item, len);
		if (zl == 0) {
			/* The rest of the previous message, after a comma. */
			struct dnsbl_zone *z;
			size_t have;

			if (n == 0 || zones[n - 1].message[0] == '\0') {
				*error_r = "expected zone:weight:message "
					   "(the zone a domain name)";
				return -1;
			}
			z = &zones[n - 1];
			have = strlen(z->message);
			if (have + 2 + len >= sizeof(z->message)) {
				*error_r = "DNSBL message too long";
				return -1;
			}
			memcpy(z->message + have, ", ", 2);
			memcpy(z->message + have + 2, item, len);
			z->message[have + 2 + len] = '\0';
			continue;
		}
		if (n == max) {
			*error_r = "too many DNSBL zones";
			return -1;
		}
		memset(&zones[n], 0, sizeof(zones[n]));
		memcpy(zones[n].zone, item, zl);
		zones[n].zone[zl] = '\0';
		for (char *c = zones[n].zone; *c != '\0'; c++)
			*c = (char)tolower((unsigned char)*c);
		zones[n].weight = 1.0;
		if (zl < len) {
			const char *w = item + zl + 1;
			size_t rest = len - zl - 1;
			const char *colon = memchr(w, ':', rest);
			size_t wl = colon != NULL ? (size_t)(colon - w) : rest;
			char num[32];
			int64_t milli;

			if (wl == 0 || wl >= sizeof(num)) {
				*error_r = "expected a DNSBL weight (a number)";
				return -1;
			}
			memcpy(num, w, wl);
			num[wl] = '\0';
			if (settings_parse_decimal(num, &milli) < 0 ||
			    milli < -1000000 || milli > 1000000) {
				*error_r = "DNSBL weight: expected a number "
					   "from -1000 to 1000";
				return -1;
			}
			zones[n].weight = (double)milli / 1000.0;
			if (colon != NULL) {
				size_t ml = rest - wl - 1;

				if (ml >= sizeof(zones[n].message)) {
					*error_r = "DNSBL message too long";
					return -1;
				}
				memcpy(zones[n].message, colon + 1, ml);
				zones[n].message[ml] = '\0';
			}
		}
		n++;
	}
	*n_r = n;
	return 0;
}

/* ---- answers ---- */

const char *dnsbl_status_name(enum dnsbl_status st)
{
	switch (st) {
	case DNSBL_CLEAN:
		return "not listed";
	case DNSBL_LISTED:
		return "listed";
	case DNSBL_REFUSED:
		return "query refused by the zone";
	case DNSBL_TEMPFAIL:
		return "temporary DNS failure";
	case DNSBL_TIMEOUT:
		return "timed out";
	}
	return "?";
}

enum dnsbl_status dnsbl_answer_status(const struct sockaddr_storage *addrs,
				      size_t n, char *answer_r, size_t size)
{
	enum dnsbl_status st = DNSBL_CLEAN;

	if (size > 0)
		answer_r[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		const struct sockaddr_in *sin =
			(const struct sockaddr_in *)&addrs[i];
		const unsigned char *b;

		if (addrs[i].ss_family != AF_INET)
			continue;
		b = (const unsigned char *)&sin->sin_addr;
		if (b[0] != 127)
			continue;
		if (b[1] == 255 && b[2] == 255) {
			if (st == DNSBL_CLEAN) {
				st = DNSBL_REFUSED;
				inet_ntop(AF_INET, &sin->sin_addr, answer_r,
					  (socklen_t)size);
			}
			continue;
		}
		inet_ntop(AF_INET, &sin->sin_addr, answer_r, (socklen_t)size);
		return DNSBL_LISTED;
	}
	return st;
}

/* ---- refusal ---- */

char *dnsbl_reply(const struct dnsbl_zone *z, const char *ip, char *reply,
		  size_t size)
{
	size_t o;
	int n;

	if (z->message[0] == '\0') {
		n = snprintf(reply, size,
			     "554 5.7.1 Service unavailable; client [%s] "
			     "blocked using %s",
			     ip, z->zone);
		(void)n; /* cut: still one valid line */
		return reply;
	}
	n = snprintf(reply, size, "554 5.7.1 ");
	if (n < 0 || (size_t)n >= size)
		return reply;
	o = (size_t)n;
	for (const char *p = z->message; *p != '\0' && o + 1 < size; p++) {
		if (p[0] == '%' && p[1] == 's') {
			size_t l = strlen(ip);
			if (o + l >= size)
				break;
			memcpy(reply + o, ip, l);
			o += l;
			p++;
			continue;
		}
		if (p[0] == '%' && p[1] == '%')
			p++;
		/* The settings refuse control characters; be sure. */
		reply[o++] = (unsigned char)*p < 0x20 ? ' ' : *p;
	}
	reply[o] = '\0';
	return reply;
}

const char *dnsbl_check_rcpt(const struct policy_facts *f, int reject,
			     const struct dnsbl_zone *zones, size_t nzones,
			     const struct dnsbl_result *results, size_t n,
			     char *reply, size_t reply_size, char *reason,
			     size_t reason_size)
{
	if (!reject || f->auth != NULL || f->trusted)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		const struct dnsbl_result *r = &results[i];

		if (r->status != DNSBL_LISTED || r->received ||
		    r->zone >= nzones)
			continue;
		dnsbl_reply(&zones[r->zone], r->ip, reply, reply_size);
		snprintf(reason, reason_size, "client %s listed by %s (%s)",
			 r->ip, zones[r->zone].zone, r->answer);
		return reply;
	}
	return NULL;
}

double dnsbl_weight(const struct dnsbl_zone *zones, size_t nzones,
		    const struct dnsbl_result *results, size_t n)
{
	double w = 0;

	for (size_t i = 0; i < n; i++)
		if (results[i].status == DNSBL_LISTED &&
		    results[i].zone < nzones)
			w += zones[results[i].zone].weight;
	return w;
}

/* ---- Received headers ---- */

/* Addresses that no public blocklist lists: RFC 1918, loopback,
 * link-local, CGNAT, unspecified, ULA, multicast. */
static int dnsbl_ip_private(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET) {
		const unsigned char *b =
			(const unsigned char *)&((const struct sockaddr_in *)ss)
				->sin_addr;
		return b[0] == 0 || b[0] == 10 || b[0] == 127 ||
		       (b[0] == 169 && b[1] == 254) ||
		       (b[0] == 172 && (b[1] & 0xf0) == 16) ||
		       (b[0] == 192 && b[1] == 168) ||
		       (b[0] == 100 && (b[1] & 0xc0) == 64) || b[0] >= 224;
	}
	{
		const struct in6_addr *a =
			&((const struct sockaddr_in6 *)ss)->sin6_addr;
		return IN6_IS_ADDR_UNSPECIFIED(a) || IN6_IS_ADDR_LOOPBACK(a) ||
		       IN6_IS_ADDR_LINKLOCAL(a) || IN6_IS_ADDR_MULTICAST(a) ||
		       IN6_IS_ADDR_V4MAPPED(a) ||
		       (a->s6_addr[0] & 0xfe) == 0xfc;
	}
}

static int dnsbl_same_ip(const struct sockaddr_storage *a,
			 const struct sockaddr *b)
{
	if (a->ss_family != b->sa_family)
		return 0;
	if (a->ss_family == AF_INET)
		return memcmp(&((const struct sockaddr_in *)a)->sin_addr,
			      &((const struct sockaddr_in *)b)->sin_addr,
			      sizeof(struct in_addr)) == 0;
	return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
		      &((const struct sockaddr_in6 *)b)->sin6_addr,
		      sizeof(struct in6_addr)) == 0;
}

/* Parses "1.2.3.4" or "IPv6:..." (the RFC 5321 address literal forms). */
static int dnsbl_parse_literal(const char *s, size_t len,
			       struct sockaddr_storage *ss)
{
	char text[INET6_ADDRSTRLEN + 8];

	if (len >= sizeof(text))
		return -1;
	memcpy(text, s, len);
	text[len] = '\0';
	memset(ss, 0, sizeof(*ss));
	if (strncasecmp(text, "IPv6:", 5) == 0) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
		s6->sin6_family = AF_INET6;
		return inet_pton(AF_INET6, text + 5, &s6->sin6_addr) == 1 ? 0
									  : -1;
	}
	{
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
		s4->sin_family = AF_INET;
		if (inet_pton(AF_INET, text, &s4->sin_addr) == 1)
			return 0;
	}
	{
		/* Some write a bare IPv6 address in the brackets. */
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
		memset(ss, 0, sizeof(*ss));
		s6->sin6_family = AF_INET6;
		return inet_pton(AF_INET6, text, &s6->sin6_addr) == 1 ? 0 : -1;
	}
}

size_t dnsbl_received_ips(const char *msg, size_t len,
			  const struct sockaddr *skip,
			  struct sockaddr_storage *out, size_t max)
{
	struct header_field f;
	size_t pos = 0, n = 0;

	while (n < max && header_next(msg, len, &pos, &f) == 1) {
		const char *v = f.value, *end = f.value + f.value_len;

		if (!header_is(&f, "Received"))
			continue;
		while (n < max && v < end) {
			const char *open = memchr(v, '[', (size_t)(end - v));
			const char *close;
			struct sockaddr_storage ss;
			int dup = 0;

			if (open == NULL)
				break;
			close = memchr(open, ']', (size_t)(end - open));
			if (close == NULL)
				break;
			v = close + 1;
			if (dnsbl_parse_literal(open + 1,
						(size_t)(close - open - 1),
						&ss) < 0 ||
			    dnsbl_ip_private(&ss) ||
			    (skip != NULL && dnsbl_same_ip(&ss, skip)))
				continue;
			for (size_t i = 0; i < n; i++)
				if (dnsbl_same_ip(&out[i],
						  (const struct sockaddr *)&ss))
					dup = 1;
			if (!dup)
				out[n++] = ss;
		}
	}
	return n;
}

/* ---- the cache ---- */

#define DNSBL_CACHE_NONE ((size_t)-1)

struct dnsbl_cache_slot {
	char name[DNSBL_ZONE_MAX + 80]; /* "" when free */
	int64_t expires;
	struct dnsbl_cache_entry e;
	uint32_t hash;
	size_t next; /* the next slot of its bucket */
};

/* Shared by the loops, under its lock. Names are found through a hash
 * table (a connection looks up one name per zone); a full cache gives
 * the slot that expires first to the new name. */
struct dnsbl_cache {
	pthread_mutex_t lock;
	size_t max, used;
	struct dnsbl_cache_slot *slots;
	size_t nbuckets; /* a power of two */
	size_t *buckets; /* first slot of each, or DNSBL_CACHE_NONE */
};

struct dnsbl_cache *dnsbl_cache_new(size_t max)
{
	struct dnsbl_cache *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->max = max > 0 ? max : 1;
	c->nbuckets = 1;
	while (c->nbuckets < c->max)
		c->nbuckets *= 2;
	c->slots = calloc(c->max, sizeof(*c->slots));
	c->buckets = malloc(c->nbuckets * sizeof(*c->buckets));
	if (c->slots == NULL || c->buckets == NULL) {
		free(c->slots);
		free(c->buckets);
		free(c);
		return NULL;
	}
	for (size_t i = 0; i < c->nbuckets; i++)
		c->buckets[i] = DNSBL_CACHE_NONE;
	pthread_mutex_init(&c->lock, NULL);
	return c;
}

void dnsbl_cache_free(struct dnsbl_cache *c)
{
	if (c == NULL)
		return;
	free(c->slots);
	free(c->buckets);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

/* FNV-1a of the name in lower case: DNS names compare without case. */
static uint32_t dnsbl_cache_hash(const char *name)
{
	uint32_t h = 2166136261u;

	for (; *name != '\0'; name++) {
		h ^= (unsigned char)tolower((unsigned char)*name);
		h *= 16777619u;
	}
	return h;
}

static struct dnsbl_cache_slot *dnsbl_cache_find(struct dnsbl_cache *c,
						 const char *name, uint32_t h)
{
	for (size_t i = c->buckets[h & (c->nbuckets - 1)];
	     i != DNSBL_CACHE_NONE; i = c->slots[i].next)
		if (c->slots[i].hash == h &&
		    strcasecmp(c->slots[i].name, name) == 0)
			return &c->slots[i];
	return NULL;
}

static void dnsbl_cache_link(struct dnsbl_cache *c, struct dnsbl_cache_slot *s)
{
	size_t *head = &c->buckets[s->hash & (c->nbuckets - 1)];

	s->next = *head;
	*head = (size_t)(s - c->slots);
}

static void dnsbl_cache_unlink(struct dnsbl_cache *c,
			       struct dnsbl_cache_slot *s)
{
	size_t *pp = &c->buckets[s->hash & (c->nbuckets - 1)];
	size_t idx = (size_t)(s - c->slots);

	while (*pp != DNSBL_CACHE_NONE && *pp != idx)
		pp = &c->slots[*pp].next;
	if (*pp == idx)
		*pp = s->next;
}

int dnsbl_cache_get(struct dnsbl_cache *c, const char *name, int64_t now,
		    struct dnsbl_cache_entry *e_r)
{
	uint32_t h = dnsbl_cache_hash(name);
	struct dnsbl_cache_slot *s;
	int r = 0;

	pthread_mutex_lock(&c->lock);
	s = dnsbl_cache_find(c, name, h);
	if (s != NULL && s->expires > now) {
		*e_r = s->e;
		r = 1;
	}
	pthread_mutex_unlock(&c->lock);
	return r;
}

void dnsbl_cache_put(struct dnsbl_cache *c, const char *name,
		     const struct dnsbl_cache_entry *e, uint32_t ttl,
		     int64_t now)
{
	uint32_t h = dnsbl_cache_hash(name);
	struct dnsbl_cache_slot *s;

	if (ttl == 0 || strlen(name) >= sizeof(s->name))
		return;
	if (ttl > DNSBL_CACHE_TTL_MAX)
		ttl = DNSBL_CACHE_TTL_MAX;
	pthread_mutex_lock(&c->lock);
	s = dnsbl_cache_find(c, name, h);
	if (s == NULL) {
		if (c->used < c->max) {
			s = &c->slots[c->used++];
		} else {
			/* Full: the entry that expires first makes room (an
			 * expired one, when there is any). */
			s = &c->slots[0];
			for (size_t i = 1; i < c->used; i++)
				if (c->slots[i].expires < s->expires)
					s = &c->slots[i];
			dnsbl_cache_unlink(c, s);
		}
		snprintf(s->name, sizeof(s->name), "%s", name);
		s->hash = h;
		dnsbl_cache_link(c, s);
	}
	s->expires = now + (int64_t)ttl;
	s->e = *e;
	pthread_mutex_unlock(&c->lock);
}

size_t dnsbl_cache_size(struct dnsbl_cache *c)
{
	size_t n;

	pthread_mutex_lock(&c->lock);
	n = c->used;
	pthread_mutex_unlock(&c->lock);
	return n;
}
