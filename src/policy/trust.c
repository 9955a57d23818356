/*
 * trust: the trusted hosts (IPs, CIDRs, and host names resolved when the
 * settings are loaded) and the local networks. The daemon builds a new
 * one with each settings snapshot and frees the old one, which cancels
 * its pending lookups.
 */
#include "policy/trust.h"

#include <stdlib.h>
#include <string.h>

#include "directory/settings.h"
#include "lib/dns.h"
#include "lib/log.h"
#include "lib/netlist.h"

#define TRUST_NAMES_MAX 64 /* host names looked up per snapshot */

struct trust_lookup {
	struct policy_trust *t;
	struct dns_query *q;
	char name[DNS_NAME_MAX];
};

struct policy_trust {
	struct netlist hosts, local;
	struct trust_lookup lookups[TRUST_NAMES_MAX];
	size_t nlookups;
};

static void trust_lookup_cb(const struct dns_result *r, void *arg)
{
	struct trust_lookup *l = arg;

	l->q = NULL;
	if (r->status != DNS_OK) {
		log_warn("trusted.hosts: cannot resolve %s (%s)", l->name,
			 r->status == DNS_NOTFOUND ? "no such host"
						   : "temporary failure");
		return;
	}
	for (size_t i = 0; i < r->naddrs; i++)
		netlist_add_sockaddr(&l->t->hosts,
				     (const struct sockaddr *)&r->addrs[i]);
	log_info("trusted.hosts: %s has %zu address(es)", l->name, r->naddrs);
}

struct trust_build {
	struct policy_trust *t;
	struct dns *dns;
};

/* A host name of trusted.hosts: look it up. */
static void trust_name_cb(const char *name, size_t len, void *arg)
{
	struct trust_build *b = arg;
	struct trust_lookup *l;

	if (b->dns == NULL || len >= DNS_NAME_MAX ||
	    b->t->nlookups == TRUST_NAMES_MAX)
		return;
	l = &b->t->lookups[b->t->nlookups];
	memcpy(l->name, name, len);
	l->name[len] = '\0';
	l->t = b->t;
	l->q = dns_addrs(b->dns, l->name, trust_lookup_cb, l);
	if (l->q != NULL)
		b->t->nlookups++;
}

struct policy_trust *policy_trust_new(const struct settings *s, struct dns *dns)
{
	struct policy_trust *t = calloc(1, sizeof(*t));
	struct trust_build b = {.t = t, .dns = dns};
	const char *bad, *err;
	size_t badlen;

	if (t == NULL)
		return NULL;
	/* The values were checked when they were set: errors here mean
	 * nothing is added. */
	netlist_parse(&t->hosts, settings_str(s, SETTING_TRUSTED_HOSTS),
		      trust_name_cb, &b, &bad, &badlen, &err);
	netlist_parse(&t->local,
		      settings_str(s, SETTING_TRUSTED_LOCAL_NETWORKS), NULL,
		      NULL, &bad, &badlen, &err);
	return t;
}

void policy_trust_free(struct policy_trust *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->nlookups; i++)
		dns_cancel(t->lookups[i].q);
	netlist_clear(&t->hosts);
	netlist_clear(&t->local);
	free(t);
}

int policy_trust_host(const struct policy_trust *t, const struct sockaddr *sa)
{
	return t != NULL && netlist_match_sockaddr(&t->hosts, sa);
}

int policy_trust_local(const struct policy_trust *t, const struct sockaddr *sa)
{
	return t != NULL && netlist_match_sockaddr(&t->local, sa);
}
