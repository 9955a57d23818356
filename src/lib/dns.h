/* Asynchronous DNS on the event loop (c-ares): reverse names, MX,
 * addresses, A and TXT records. */
#ifndef PETREL_DNS_H
#define PETREL_DNS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct io_loop;
struct dns;
struct dns_query;

enum dns_status {
	DNS_OK,
	DNS_NOTFOUND, /* the name does not exist, or has no such record */
	DNS_TEMPFAIL  /* timeout, server failure, refused: try again later */
};

#define DNS_NAME_MAX 256
#define DNS_ANSWERS_MAX 32 /* kept of one answer; the rest is dropped */

struct dns_mx {
	unsigned preference;
	char host[DNS_NAME_MAX];
};

struct dns_result {
	enum dns_status status;
	/* dns_rdns: the forward-confirmed name, or "" (status DNS_NOTFOUND
	 * when the PTR is missing or does not lead back to the address). */
	char name[DNS_NAME_MAX];
	/* dns_mx: by preference, lowest first (equal ones in random
	 * order, RFC 5321 5.1). */
	struct dns_mx *mx;
	size_t nmx;
	/* dns_addrs: IPv6 and IPv4 addresses with the port 0; dns_a: IPv4
	 * only. */
	struct sockaddr_storage *addrs;
	size_t naddrs;
	/* dns_txt: the strings of each record, joined; one per record. */
	char **txt;
	size_t ntxt;
	/* The smallest TTL of the answer (A); for dns_a's DNS_NOTFOUND, the
	 * negative-caching TTL of the zone's SOA (RFC 2308), 0 without one. */
	uint32_t ttl;
};

/* Called once per query, on the loop, unless the query was cancelled. The
 * result is only valid during the call. */
typedef void dns_cb(const struct dns_result *r, void *arg);

/*
 * A resolver on loop. servers: "IP:PORT[,IP:PORT...]" (the dns_server
 * config key), or NULL/"" for /etc/resolv.conf. Each try waits timeout_ms;
 * tries >= 1. Returns NULL with *error_r (static text) on failure.
 */
struct dns *dns_new(struct io_loop *loop, const char *servers, int timeout_ms,
		    int tries, const char **error_r);
/* Every query still pending is dropped without its callback. */
void dns_free(struct dns *d);

/* Each returns a handle for dns_cancel(), or NULL when the query could not
 * be started (out of memory, a bad name): then cb is never called. */

/* The name of an address (PTR), confirmed by a forward lookup (A/AAAA)
 * that leads back to it, as Postfix and RFC 8601 readers expect. Names
 * come from /etc/hosts first, then DNS. */
struct dns_query *dns_rdns(struct dns *d, const struct sockaddr *sa, dns_cb *cb,
			   void *arg);
/* The MX records of a domain. A null MX (RFC 7505, "0 .") comes back as
 * one record with host "". */
struct dns_query *dns_mx(struct dns *d, const char *domain, dns_cb *cb,
			 void *arg);
/* The IPv6 and IPv4 addresses of a host (AAAA then A), /etc/hosts first. */
struct dns_query *dns_addrs(struct dns *d, const char *host, dns_cb *cb,
			    void *arg);
/* The A records of a name, with their TTL (DNSBL lookups). */
struct dns_query *dns_a(struct dns *d, const char *name, dns_cb *cb, void *arg);
/* The TXT records of a name. */
struct dns_query *dns_txt(struct dns *d, const char *name, dns_cb *cb,
			  void *arg);
/* The callback will not be called. The handle is invalid afterwards. */
void dns_cancel(struct dns_query *q);

/* The DNSBL name of an address: reversed octets (IPv4) or nibbles (IPv6),
 * then ".zone". Returns 0, or -1 when it does not fit. Pure. */
int dns_reverse_name(const struct sockaddr *sa, const char *zone, char *out,
		     size_t size);

#endif
