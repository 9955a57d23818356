/* DNS blocklists: the zone list, what an answer means, the refusal at RCPT,
 * the IPs of Received headers, and the cache of answers. Pure. */
#ifndef PETREL_DNSBL_H
#define PETREL_DNSBL_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct policy_facts;

#define DNSBL_ZONES_MAX 16
#define DNSBL_ZONE_MAX 200 /* a zone name; room left for the reversed IP */
#define DNSBL_TEXT_MAX 256 /* a zone's message, a TXT record kept */
#define DNSBL_IPS_MAX 8	   /* Received header IPs looked up per message */

/* One element of dnsbl.zones: "zone:weight:message". */
struct dnsbl_zone {
	char zone[DNSBL_ZONE_MAX];
	double weight;
	char message[DNSBL_TEXT_MAX]; /* "" when none was given */
};

/*
 * Parses dnsbl.zones (a settings LIST, "a, b"): each element is
 * "zone[:weight[:message]]" (weight: a decimal, 1 when left out). A
 * message may hold commas: an element that does not start with a zone
 * name and a ':' continues the previous element's message (joined by
 * ", "). Fills up to max zones, *n_r their count. Returns 0, or -1 with
 * *error_r (static text).
 */
int dnsbl_zones_parse(const char *list, struct dnsbl_zone *zones, size_t max,
		      size_t *n_r, const char **error_r);

/* What a lookup of one IP in one zone found. */
enum dnsbl_status {
	DNSBL_CLEAN,	/* NXDOMAIN, or no answer in 127.0.0.0/8 */
	DNSBL_LISTED,	/* an A record in 127.0.0.0/8 */
	DNSBL_REFUSED,	/* 127.255.255.0/24: the zone refused the query */
	DNSBL_TEMPFAIL, /* server failure */
	DNSBL_TIMEOUT,	/* no answer within dnsbl.timeout_ms */
};

/* A short word for the log ("listed", "not listed", ...). Static. */
const char *dnsbl_status_name(enum dnsbl_status st);

/*
 * What the A records of a DNSBL answer mean: DNSBL_LISTED when one is in
 * 127.0.0.0/8 (the first such is written to answer_r, dotted), except for
 * 127.255.255.0/24, the error codes of Spamhaus and others (DNSBL_REFUSED,
 * unless another answer lists); DNSBL_CLEAN otherwise: an address outside
 * 127/8 is a wildcard or a hijacked zone, never a listing.
 */
enum dnsbl_status dnsbl_answer_status(const struct sockaddr_storage *addrs,
				      size_t n, char *answer_r, size_t size);

/* The result of one IP in one zone, as the session keeps it. */
struct dnsbl_result {
	size_t zone;		   /* index into the zone list */
	char ip[INET6_ADDRSTRLEN]; /* the address looked up */
	int received;		   /* it came from a Received header */
	enum dnsbl_status status;
	char answer[INET_ADDRSTRLEN]; /* DNSBL_LISTED: the A record */
	char txt[DNSBL_TEXT_MAX];     /* DNSBL_LISTED: its TXT, or "" */
	int cached;		      /* answered from the cache */
};

/*
 * The refusal text of a listing: "554 5.7.1 " and the zone's message with
 * "%s" replaced by the client's IP ("%%" by "%"; any other '%' kept as
 * is: the admin's text is never a format string), or "Service
 * unavailable; client [IP] blocked using ZONE" when it has none. Returns
 * reply, cut at size.
 */
char *dnsbl_reply(const struct dnsbl_zone *z, const char *ip, char *reply,
		  size_t size);

/*
 * RCPT TO under dnsbl.action reject: refuses (554 5.7.1) when the client
 * IP itself (not a Received header) is listed by a zone, unless the
 * session authenticated or the client is a trusted host. Returns NULL to
 * accept, or reply (filled) with reason (filled) for the log.
 */
const char *dnsbl_check_rcpt(const struct policy_facts *f, int reject,
			     const struct dnsbl_zone *zones, size_t nzones,
			     const struct dnsbl_result *results, size_t n,
			     char *reply, size_t reply_size, char *reason,
			     size_t reason_size);

/* The sum of the weights of the zones that list (each zone counted once
 * per IP). */
double dnsbl_weight(const struct dnsbl_zone *zones, size_t nzones,
		    const struct dnsbl_result *results, size_t n);

/*
 * The IPs of the message's Received headers that are worth a lookup:
 * address literals in square brackets ("[192.0.2.1]", "[IPv6:2001:db8::1]"),
 * the conventional place of the connecting address; private, loopback,
 * link-local and unspecified ones are skipped, as is `skip` (the client's
 * own address, checked at connect; NULL: none), and duplicates. Stops at
 * the end of the header section. Returns how many were written (<= max).
 */
size_t dnsbl_received_ips(const char *msg, size_t len,
			  const struct sockaddr *skip,
			  struct sockaddr_storage *out, size_t max);

/*
 * The cache of DNSBL answers, keyed by the looked-up name, honouring
 * their TTL: listings keep the A record's TTL, clean answers the negative
 * TTL of the zone's SOA (RFC 2308), both capped; failures are never kept.
 * When full, expired entries go first, then the one closest to expiry.
 */
struct dnsbl_cache;

struct dnsbl_cache_entry {
	enum dnsbl_status status; /* DNSBL_CLEAN or DNSBL_LISTED */
	char answer[INET_ADDRSTRLEN];
	char txt[DNSBL_TEXT_MAX];
};

#define DNSBL_CACHE_TTL_MAX 86400
#define DNSBL_CACHE_NEGATIVE_TTL 300 /* when the server gave none */

/* NULL on ENOMEM. */
struct dnsbl_cache *dnsbl_cache_new(size_t max);
void dnsbl_cache_free(struct dnsbl_cache *c);
/* Returns 1 with *e_r filled when name is there and not expired, else 0. */
int dnsbl_cache_get(struct dnsbl_cache *c, const char *name, int64_t now,
		    struct dnsbl_cache_entry *e_r);
/* Keeps e for ttl seconds (0: not kept). */
void dnsbl_cache_put(struct dnsbl_cache *c, const char *name,
		     const struct dnsbl_cache_entry *e, uint32_t ttl,
		     int64_t now);
/* Entries held, expired ones included (tests). */
size_t dnsbl_cache_size(struct dnsbl_cache *c);

#endif
