/* Lists of networks (IPs and CIDRs, IPv4 and IPv6) and matching a client
 * address against them. Pure. */
#ifndef PETREL_NETLIST_H
#define PETREL_NETLIST_H

#include <stddef.h>
#include <sys/socket.h>

struct netlist_entry {
	int family;		/* AF_INET or AF_INET6 */
	unsigned char addr[16]; /* network byte order; host bits zeroed */
	unsigned prefix;	/* 0..32 or 0..128 */
};

struct netlist {
	struct netlist_entry *v;
	size_t n, cap;
};

/*
 * Parses one element, len bytes of s: an IP ("192.0.2.1", "2001:db8::1")
 * or a CIDR ("10.0.0.0/8", "2001:db8::/32"); host bits are cleared.
 * Returns 1 with *out filled, 0 when s is no IP at all (perhaps a host
 * name), or -1 when it looks like one but is malformed ("10.0.0.0/33",
 * "1.2.3/8", "::1/").
 */
int netlist_parse_entry(const char *s, size_t len, struct netlist_entry *out);

/* Called for an element that is no IP (a host name), trimmed. */
typedef void netlist_name_cb(const char *name, size_t len, void *arg);

/*
 * Parses a comma-separated list of IPs and CIDRs into l (appended). Host
 * names go to name_cb (callers resolve them); with name_cb NULL they are
 * an error. Returns 0, or -1 with *error_r (a static text) and *bad_r,
 * *bad_len_r pointing at the element.
 */
int netlist_parse(struct netlist *l, const char *list, netlist_name_cb *name_cb,
		  void *arg, const char **bad_r, size_t *bad_len_r,
		  const char **error_r);

/* Appends an entry, or an address as a full-length prefix. 0 or -1. */
int netlist_add(struct netlist *l, const struct netlist_entry *e);
int netlist_add_sockaddr(struct netlist *l, const struct sockaddr *sa);

/* 1 when the address (text form, or a sockaddr) is in one of the
 * networks, else 0. IPv4-mapped IPv6 addresses match as IPv4. */
int netlist_match(const struct netlist *l, const char *ip);
int netlist_match_sockaddr(const struct netlist *l, const struct sockaddr *sa);

void netlist_clear(struct netlist *l);

#endif
