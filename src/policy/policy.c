/*
 * policy: every accept/refuse decision of an SMTP transaction, as pure
 * functions of its facts (DESIGN.md, "Rules of the house"), in the style of
 * Postfix's smtpd_check.c: a check returns NULL or the whole reply.
 *
 * The sender authentication rules (REFERENCE.md, "Sender authentication")
 * are settings; trusted hosts may relay without AUTH and are exempt from
 * the rules trusted.exempt_from names.
 */
#include "policy/policy.h"

#include <stddef.h>
#include <string.h>
#include <strings.h>

#include "directory/settings.h"
#include "lib/addr.h"

static int policy_on(const struct policy_facts *f, enum settings_id id)
{
	return settings_bool(f->settings, id);
}

/* Is the trusted client exempt from the rule named like its setting? */
static int policy_exempt(const struct policy_facts *f, const char *rule)
{
	const char *p = settings_str(f->settings, SETTING_TRUSTED_EXEMPT_FROM);
	size_t n = strlen(rule);

	if (!f->trusted)
		return 0;
	/* A normalized list: "a, b, c". */
	while (*p != '\0') {
		size_t w = strcspn(p, ",");
		if (w == n && strncasecmp(p, rule, n) == 0)
			return 1;
		p += w;
		while (*p == ',' || *p == ' ')
			p++;
	}
	return 0;
}

/* Does the address belong to the authenticated account? */
static int policy_owns(const struct policy_facts *f, const char *account)
{
	return account != NULL && f->auth != NULL &&
	       strcasecmp(account, f->auth) == 0;
}

int policy_role_local_part(const char *local)
{
	static const char *const roles[] = {"postmaster", "abuse", "webmaster"};

	for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++)
		if (strcasecmp(local, roles[i]) == 0)
			return 1;
	return 0;
}

const char *policy_check_mail(const struct policy_facts *f,
			      const struct policy_sender *s,
			      int *local_unauth_r, const char **reason_r)
{
	*local_unauth_r = 0;
	/* RFC 6409 4.3: the submission ports take mail from authenticated
	 * users only. */
	if (f->submission && f->auth == NULL) {
		*reason_r = "unauthenticated MAIL on the submission port";
		return "530 5.7.0 Authentication required";
	}
	if (f->auth == NULL && f->local_ip && !f->trusted &&
	    policy_on(f, SETTING_AUTH_REQUIRE_FOR_LOCAL_IPS)) {
		*reason_r = "auth.require_for_local_ips: client in "
			    "trusted.local_networks without AUTH";
		return "530 5.7.0 Authentication required";
	}
	if (f->auth != NULL) {
		if (s->null) {
			if (policy_on(f, SETTING_AUTH_ALLOW_NULL_SENDER))
				return NULL;
			*reason_r = "null sender from an authenticated session "
				    "(auth.allow_null_sender is off)";
			return "550 5.7.1 Null sender not allowed for "
			       "authenticated senders";
		}
		if (policy_on(f, SETTING_AUTH_MATCH_RETURN_PATH) &&
		    !policy_exempt(f, "auth.match_return_path") &&
		    !policy_owns(f, s->account)) {
			*reason_r = "auth.match_return_path: MAIL FROM is not "
				    "the authenticated account or its alias";
			return "550 5.7.1 Sender address does not match "
			       "authenticated account";
		}
		return NULL;
	}
	if (s->null || !s->local)
		return NULL;
	if (policy_on(f, SETTING_AUTH_REQUIRE_FOR_ROLE_SENDERS) &&
	    !policy_exempt(f, "auth.require_for_role_senders") &&
	    policy_role_local_part(s->addr->local)) {
		*reason_r = "auth.require_for_role_senders: role sender "
			    "without AUTH";
		return "530 5.7.0 Authentication required";
	}
	if (policy_on(f, SETTING_AUTH_REQUIRE_FOR_LOCAL_SENDERS) &&
	    !policy_exempt(f, "auth.require_for_local_senders")) {
		if (policy_on(f, SETTING_AUTH_EXCEPT_TO_LOCAL)) {
			*local_unauth_r = 1;
			return NULL;
		}
		*reason_r = "auth.require_for_local_senders: local sender "
			    "without AUTH";
		return "530 5.7.0 Authentication required";
	}
	return NULL;
}

const char *policy_check_rcpt(const struct policy_facts *f,
			      const struct addr *rcpt, int rcpt_local,
			      int rcpt_exists, int local_unauth,
			      const char **reason_r)
{
	(void)rcpt;
	if (rcpt_local) {
		if (!rcpt_exists) {
			*reason_r = "no such local account or alias";
			return "550 5.1.1 No such user here";
		}
		return NULL;
	}
	/* auth.except_to_local lets a local sender without AUTH write to
	 * local recipients only. */
	if (local_unauth) {
		*reason_r = "auth.except_to_local: local sender without AUTH "
			    "to a remote recipient";
		return "530 5.7.0 Authentication required";
	}
	/* Never an open relay: only authenticated sessions and trusted
	 * hosts send out. */
	if (f->auth == NULL && !f->trusted) {
		*reason_r = "relay to a remote domain without authentication";
		return "550 5.7.1 Relaying denied: authentication required";
	}
	return NULL;
}

const char *policy_check_from(const struct policy_facts *f, int parsed,
			      const struct policy_from *from, size_t n,
			      const char **reason_r)
{
	if (f->auth == NULL) {
		if (!policy_on(f, SETTING_AUTH_REQUIRE_FOR_ROLE_SENDERS) ||
		    policy_exempt(f, "auth.require_for_role_senders") ||
		    !parsed)
			return NULL;
		for (size_t i = 0; i < n; i++) {
			if (from[i].local &&
			    policy_role_local_part(from[i].addr->local)) {
				*reason_r = "auth.require_for_role_senders: "
					    "From: a local role address "
					    "without AUTH";
				return "550 5.7.1 Authentication required "
				       "for this From: address";
			}
		}
		return NULL;
	}
	if (!policy_on(f, SETTING_AUTH_MATCH_FROM_HEADER) ||
	    policy_exempt(f, "auth.match_from_header"))
		return NULL;
	if (!parsed || n == 0) {
		*reason_r = "auth.match_from_header: no parsable From: header";
		return "550 5.7.1 Message needs one valid From: header";
	}
	for (size_t i = 0; i < n; i++) {
		if (!policy_owns(f, from[i].account)) {
			*reason_r = "auth.match_from_header: a From: address "
				    "is not the authenticated account or its "
				    "alias";
			return "550 5.7.1 From: header does not match "
			       "authenticated account";
		}
	}
	return NULL;
}
