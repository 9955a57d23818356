/* Accept/refuse decisions: pure functions of a transaction's facts. */
#ifndef PETREL_POLICY_H
#define PETREL_POLICY_H

#include <stddef.h>
#include <stdint.h>

struct addr;
struct settings;

/* The facts of a session and transaction that decisions depend on. */
struct policy_facts {
	const struct settings *settings;
	const char *client_ip;
	int tls;	  /* the session is under TLS */
	int submission;	  /* on the submission or smtps listener */
	const char *auth; /* authenticated account, or NULL */
	int64_t now;	  /* epoch seconds */
};

/*
 * A verdict: NULL to accept, or the whole reply line ("550 5.7.1 ...",
 * static) with *reason_r set to one line for the log saying why.
 */

/* MAIL FROM: may this session send at all, with this sender? */
const char *policy_check_mail(const struct policy_facts *f,
			      const struct addr *sender, int sender_local,
			      const char **reason_r);

/*
 * RCPT TO: relay control. rcpt_local: the domain is one of ours;
 * rcpt_exists: it names an account or alias there.
 */
const char *policy_check_rcpt(const struct policy_facts *f,
			      const struct addr *rcpt, int rcpt_local,
			      int rcpt_exists, const char **reason_r);

#endif
