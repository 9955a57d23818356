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
	int trusted;	  /* the client is one of trusted.hosts */
	int local_ip;	  /* the client is in trusted.local_networks */
	int64_t now;	  /* epoch seconds */
};

/* What MAIL FROM named, as the directory sees it. */
struct policy_sender {
	const struct addr *addr;
	int null;	     /* MAIL FROM:<> */
	int local;	     /* its domain is one of ours */
	const char *account; /* the account it is or is an alias of, or NULL */
};

/*
 * A verdict: NULL to accept, or the whole reply line ("550 5.7.1 ...",
 * static) with *reason_r set to one line for the log saying why.
 */

/*
 * MAIL FROM: may this session send at all, with this sender? Submission
 * needs AUTH; then auth.require_for_local_ips, the null sender on
 * authenticated sessions (auth.allow_null_sender),
 * auth.match_return_path, auth.require_for_role_senders and
 * auth.require_for_local_senders. *local_unauth_r is set to 1 when the
 * sender is let through only for local recipients (auth.except_to_local):
 * the RCPT check then refuses remote ones.
 */
const char *policy_check_mail(const struct policy_facts *f,
			      const struct policy_sender *s,
			      int *local_unauth_r, const char **reason_r);

/*
 * RCPT TO: relay control. rcpt_local: the domain is one of ours;
 * rcpt_exists: it names an account or alias there; local_unauth: as set by
 * policy_check_mail.
 */
const char *policy_check_rcpt(const struct policy_facts *f,
			      const struct addr *rcpt, int rcpt_local,
			      int rcpt_exists, int local_unauth,
			      const char **reason_r);

/* One address of the From: header, as the directory sees it. */
struct policy_from {
	const struct addr *addr;
	int local;	     /* its domain is one of ours */
	const char *account; /* the account it is or is an alias of, or NULL */
};

/*
 * After DATA: the From: header. parsed: it was there once and parsed as
 * an address list (n addresses, maybe 0). For authenticated sessions,
 * auth.match_from_header wants at least one address and every one the
 * account's; for the others, auth.require_for_role_senders refuses a
 * local role address (postmaster@, abuse@, webmaster@).
 */
const char *policy_check_from(const struct policy_facts *f, int parsed,
			      const struct policy_from *from, size_t n,
			      const char **reason_r);

/* Is domain (lower case) one of ours? 1 yes, 0 no, -1 the lookup failed. */
typedef int policy_local_domain_fn(void *ctx, const char *domain);

/*
 * After DATA, when policy_check_from accepted: the From: fields as
 * written. msg is the message (len bytes; its header section is read up
 * to the first empty line); parsed as for policy_check_from. With AUTH,
 * a second From-like field is refused under auth.match_from_header.
 * Without AUTH, a From: that the address parser could not read as one
 * field (two From: fields, a group, bad syntax), or a second From-like
 * field ("From :", which the header parser does not count), is refused
 * under auth.require_for_role_senders when a local domain appears in any
 * of them after an "@": in an address, a display name, a comment, a group
 * or an RFC 2047 encoded-word. Which address a mail reader shows for such
 * a header is anyone's guess, so its local part is not trusted either.
 * is_local is asked about each distinct domain (at most
 * POLICY_FROM_DOMAINS of them; past that, or past 1,024 "@"s or a field
 * of 64 KiB, the From: is refused: fail closed).
 * Returns NULL to accept, or the whole reply (static) with *reason_r set.
 */
#define POLICY_FROM_DOMAINS 32
const char *policy_check_from_raw(const struct policy_facts *f, int parsed,
				  const char *msg, size_t len,
				  policy_local_domain_fn *is_local, void *ctx,
				  const char **reason_r);

/* 1 when local is a role name whose mail must be authenticated. */
int policy_role_local_part(const char *local);

#endif
