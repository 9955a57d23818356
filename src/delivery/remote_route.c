/*
 * remote_route: the pure parts of routing a remote recipient: its domain,
 * domain literals, the MX list rules of RFC 5321 5.1 and the smarthost's
 * host and port. The lookups themselves are remote.c's (c-ares).
 */
#include "delivery/remote_route.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int remote_route_domain(const char *address, char *out, size_t size)
{
	const char *at = strrchr(address, '@');
	size_t n;

	if (at == NULL || at[1] == '\0')
		return 0;
	n = strlen(at + 1);
	if (n >= size)
		return 0;
	for (size_t i = 0; i <= n; i++)
		out[i] = (char)tolower((unsigned char)at[1 + i]);
	return 1;
}

int remote_route_literal(const char *domain, struct sockaddr_storage *ss)
{
	char ip[64];
	size_t n = strlen(domain);

	if (n == 0 || domain[0] != '[')
		return 0;
	if (n < 3 || domain[n - 1] != ']' || n - 2 >= sizeof(ip))
		return -1;
	memcpy(ip, domain + 1, n - 2);
	ip[n - 2] = '\0';
	memset(ss, 0, sizeof(*ss));
	if (strncasecmp(ip, "IPv6:", 5) == 0) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		s6->sin6_family = AF_INET6;
		return inet_pton(AF_INET6, ip + 5, &s6->sin6_addr) == 1 ? 1
									: -1;
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		s4->sin_family = AF_INET;
		return inet_pton(AF_INET, ip, &s4->sin_addr) == 1 ? 1 : -1;
	}
}

/* Names equal without case and a trailing dot? */
static int remote_route_same_host(const char *a, const char *b)
{
	size_t na = strlen(a), nb = strlen(b);

	if (na > 0 && a[na - 1] == '.')
		na--;
	if (nb > 0 && b[nb - 1] == '.')
		nb--;
	return na == nb && na > 0 && strncasecmp(a, b, na) == 0;
}

int remote_route_mx_filter(struct dns_mx *mx, size_t n, const char *myname)
{
	for (size_t i = 0; i < n; i++) {
		if (!remote_route_same_host(mx[i].host, myname))
			continue;
		/* Keep only the strictly better ones before it. */
		size_t keep = 0;

		while (keep < i && mx[keep].preference < mx[i].preference)
			keep++;
		return keep == 0 ? -1 : (int)keep;
	}
	return (int)n;
}

int remote_route_hostport(const char *s, char *host, size_t size,
			  unsigned *port)
{
	const char *colon = strrchr(s, ':'), *h = s;
	size_t hl;
	char *end;
	long p;

	if (colon == NULL || colon == s)
		return 0;
	hl = (size_t)(colon - s);
	if (s[0] == '[') {
		if (hl < 3 || s[hl - 1] != ']')
			return 0;
		h = s + 1;
		hl -= 2;
	}
	if (hl == 0 || hl >= size)
		return 0;
	p = strtol(colon + 1, &end, 10);
	if (end == colon + 1 || *end != '\0' || p < 1 || p > 65535)
		return 0;
	memcpy(host, h, hl);
	host[hl] = '\0';
	*port = (unsigned)p;
	return 1;
}
