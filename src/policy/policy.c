/*
 * policy: every accept/refuse decision of an SMTP transaction, as pure
 * functions of its facts (DESIGN.md, "Rules of the house"), in the style of
 * Postfix's smtpd_check.c: a check returns NULL or the whole reply.
 */
#include "policy/policy.h"

#include <stddef.h>

#include "directory/settings.h"
#include "lib/addr.h"

const char *policy_check_mail(const struct policy_facts *f,
			      const struct addr *sender, int sender_local,
			      const char **reason_r)
{
	/* RFC 6409 4.3: the submission ports take mail from authenticated
	 * users only. */
	if (f->submission && f->auth == NULL) {
		*reason_r = "unauthenticated MAIL on the submission port";
		return "530 5.7.0 Authentication required";
	}
	return NULL;
}

const char *policy_check_rcpt(const struct policy_facts *f,
			      const struct addr *rcpt, int rcpt_local,
			      int rcpt_exists, const char **reason_r)
{
	if (rcpt_local) {
		if (!rcpt_exists) {
			*reason_r = "no such local account or alias";
			return "550 5.1.1 No such user here";
		}
		return NULL;
	}
	/* Never an open relay: only authenticated sessions send out. */
	if (f->auth == NULL) {
		*reason_r = "relay to a remote domain without authentication";
		return "550 5.7.1 Relaying denied: authentication required";
	}
	return NULL;
}
