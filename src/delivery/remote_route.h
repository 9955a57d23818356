/* Routing decisions of remote delivery (RFC 5321 section 5). Pure. */
#ifndef PETREL_REMOTE_ROUTE_H
#define PETREL_REMOTE_ROUTE_H

#include <stddef.h>
#include <sys/socket.h>

#include "lib/dns.h"

/*
 * The domain of a recipient address (after the last '@'), lower-cased,
 * into out. Returns 1, or 0 when there is none or it does not fit.
 */
int remote_route_domain(const char *address, char *out, size_t size);

/*
 * A domain literal: "[192.0.2.1]" or "[IPv6:2001:db8::1]" (RFC 5321
 * 4.1.3) into *ss with port 0. Returns 1 for a literal, 0 for a domain
 * name, -1 for a malformed literal.
 */
int remote_route_literal(const char *domain, struct sockaddr_storage *ss);

/*
 * Applies RFC 5321 5.1 to an MX list sorted by preference: when our own
 * name (myname, compared without case and a trailing dot) is among the
 * hosts, that host and every one of the same or a worse preference are
 * dropped, so that we never relay to ourselves or to a backup MX that
 * would send the mail back. Returns how many records are left (they stay
 * at the front of mx), or -1 when we are the best MX ourselves: mail for
 * the domain loops back to us.
 */
int remote_route_mx_filter(struct dns_mx *mx, size_t n, const char *myname);

/*
 * "host:port", "[host]:port", "1.2.3.4:port" or "[::1]:port" (the
 * smarthost key) into host (without brackets) and *port. Returns 1, or 0
 * when it is malformed.
 */
int remote_route_hostport(const char *s, char *host, size_t size,
			  unsigned *port);

#endif
