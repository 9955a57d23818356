/*
 * netlist: IPs and CIDRs parsed with inet_pton (no hand-rolled dotted
 * quad parsing), matched by prefix. Used for trusted.hosts and
 * trusted.local_networks.
 */
#include "lib/netlist.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#define NETLIST_TEXT_MAX 64

int netlist_parse_entry(const char *s, size_t len, struct netlist_entry *out)
{
	char text[NETLIST_TEXT_MAX];
	const char *slash;
	size_t alen;
	unsigned long prefix = 0;
	int has_prefix = 0, v6;

	while (len > 0 && isspace((unsigned char)*s)) {
		s++;
		len--;
	}
	while (len > 0 && isspace((unsigned char)s[len - 1]))
		len--;
	if (len == 0)
		return 0;
	slash = memchr(s, '/', len);
	alen = slash != NULL ? (size_t)(slash - s) : len;
	v6 = memchr(s, ':', alen) != NULL;
	/* No colon and not only digits and dots: a host name. */
	if (!v6) {
		for (size_t i = 0; i < alen; i++)
			if (!isdigit((unsigned char)s[i]) && s[i] != '.')
				return slash != NULL ? -1 : 0;
	}
	if (alen == 0 || alen >= sizeof(text))
		return -1;
	memcpy(text, s, alen);
	text[alen] = '\0';
	memset(out, 0, sizeof(*out));
	out->family = v6 ? AF_INET6 : AF_INET;
	if (inet_pton(out->family, text, out->addr) != 1)
		return -1;
	if (slash != NULL) {
		const char *p = slash + 1, *end = s + len;

		if (p == end || end - p > 3)
			return -1;
		for (; p < end; p++) {
			if (!isdigit((unsigned char)*p))
				return -1;
			prefix = prefix * 10 + (unsigned long)(*p - '0');
		}
		has_prefix = 1;
	}
	if (!has_prefix)
		prefix = v6 ? 128 : 32;
	if (prefix > (v6 ? 128u : 32u))
		return -1;
	out->prefix = (unsigned)prefix;
	/* Clear the host bits, so that 10.1.2.3/8 means 10.0.0.0/8. */
	for (unsigned bit = out->prefix; bit < (v6 ? 128u : 32u); bit++)
		out->addr[bit / 8] &= (unsigned char)~(0x80u >> (bit % 8));
	return 1;
}

int netlist_add(struct netlist *l, const struct netlist_entry *e)
{
	if (l->n == l->cap) {
		size_t ncap = l->cap != 0 ? l->cap * 2 : 8;
		struct netlist_entry *v = realloc(l->v, ncap * sizeof(*v));

		if (v == NULL)
			return -1;
		l->v = v;
		l->cap = ncap;
	}
	l->v[l->n++] = *e;
	return 0;
}

int netlist_add_sockaddr(struct netlist *l, const struct sockaddr *sa)
{
	struct netlist_entry e;

	memset(&e, 0, sizeof(e));
	if (sa->sa_family == AF_INET) {
		e.family = AF_INET;
		e.prefix = 32;
		memcpy(e.addr, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		e.family = AF_INET6;
		e.prefix = 128;
		memcpy(e.addr, &((const struct sockaddr_in6 *)sa)->sin6_addr,
		       16);
	} else {
		return -1;
	}
	return netlist_add(l, &e);
}

int netlist_parse(struct netlist *l, const char *list, netlist_name_cb *name_cb,
		  void *arg, const char **bad_r, size_t *bad_len_r,
		  const char **error_r)
{
	const char *p = list;

	while (*p != '\0') {
		size_t len = strcspn(p, ",");
		struct netlist_entry e;
		int r = netlist_parse_entry(p, len, &e);
		const char *w = p;
		size_t wlen = len;

		while (wlen > 0 && isspace((unsigned char)*w)) {
			w++;
			wlen--;
		}
		while (wlen > 0 && isspace((unsigned char)w[wlen - 1]))
			wlen--;
		if (r == 1) {
			if (netlist_add(l, &e) < 0) {
				*error_r = "out of memory";
				*bad_r = p;
				*bad_len_r = len;
				return -1;
			}
		} else if (wlen > 0 && (r < 0 || name_cb == NULL)) {
			*error_r = r < 0 ? "malformed IP or CIDR"
					 : "expected an IP or a CIDR";
			*bad_r = p;
			*bad_len_r = len;
			return -1;
		} else if (wlen > 0) {
			name_cb(w, wlen, arg);
		}
		p += len;
		if (*p == ',')
			p++;
	}
	return 0;
}

static int netlist_match_bytes(const struct netlist *l, int family,
			       const unsigned char *addr)
{
	for (size_t i = 0; i < l->n; i++) {
		const struct netlist_entry *e = &l->v[i];
		unsigned full = e->prefix / 8, rest = e->prefix % 8;

		if (e->family != family)
			continue;
		if (memcmp(e->addr, addr, full) != 0)
			continue;
		if (rest != 0) {
			unsigned char mask =
				(unsigned char)(0xffu << (8 - rest));
			if ((e->addr[full] & mask) != (addr[full] & mask))
				continue;
		}
		return 1;
	}
	return 0;
}

static int netlist_match_family(const struct netlist *l, int family,
				const unsigned char *addr)
{
	static const unsigned char mapped[12] = {0, 0, 0, 0, 0,	   0,
						 0, 0, 0, 0, 0xff, 0xff};

	if (family == AF_INET6 && memcmp(addr, mapped, sizeof(mapped)) == 0)
		return netlist_match_bytes(l, AF_INET, addr + 12);
	return netlist_match_bytes(l, family, addr);
}

int netlist_match(const struct netlist *l, const char *ip)
{
	unsigned char addr[16];

	if (inet_pton(AF_INET, ip, addr) == 1)
		return netlist_match_family(l, AF_INET, addr);
	if (inet_pton(AF_INET6, ip, addr) == 1)
		return netlist_match_family(l, AF_INET6, addr);
	return 0;
}

int netlist_match_sockaddr(const struct netlist *l, const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return netlist_match_family(
			l, AF_INET,
			(const unsigned char *)&((const struct sockaddr_in *)sa)
				->sin_addr);
	if (sa->sa_family == AF_INET6)
		return netlist_match_family(
			l, AF_INET6,
			((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr);
	return 0;
}

void netlist_clear(struct netlist *l)
{
	free(l->v);
	l->v = NULL;
	l->n = l->cap = 0;
}
