/* Trusted hosts and the server's own networks, built from a settings
 * snapshot; host names in trusted.hosts are resolved when it is built. */
#ifndef PETREL_TRUST_H
#define PETREL_TRUST_H

#include <sys/socket.h>

struct dns;
struct settings;
struct policy_trust;

/*
 * Builds the lists of trusted.hosts and trusted.local_networks (values the
 * settings table already checked). Host names are looked up with dns (NULL:
 * they are ignored) and their addresses join the trusted hosts as the
 * answers come; each lookup is logged. Returns NULL when out of memory.
 */
struct policy_trust *policy_trust_new(const struct settings *s,
				      struct dns *dns);
/* Cancels the lookups still running. NULL is fine. */
void policy_trust_free(struct policy_trust *t);

/* 1 when the client address is a trusted host, else 0 (t NULL: 0). */
int policy_trust_host(const struct policy_trust *t, const struct sockaddr *sa);
/* 1 when it is in trusted.local_networks. */
int policy_trust_local(const struct policy_trust *t, const struct sockaddr *sa);

#endif
