/*
 * The directory lookups of MAIL and RCPT, run on a lookup worker: a loop
 * thread never reads SQLite (docs/architecture.md, "Flows"). The session
 * waits for the answer in a state that reads no input, then decides with
 * policy/ as before.
 */
#ifndef PETREL_SMTP_LOOKUP_H
#define PETREL_SMTP_LOOKUP_H

#include "directory/directory.h"
#include "lib/addr.h"
#include "policy/hijack.h"
#include "smtp/smtp_parse.h"

struct smtp_session;

struct smtp_lookup {
	struct smtp_session *s;
	int rcpt; /* 0: MAIL, 1: RCPT */
	struct smtp_mail_args mail;
	struct smtp_rcpt_args to;
	char auth[DIRECTORY_ADDRESS_MAX + 1]; /* the session's account */
	/* out */
	int failed;	 /* a lookup failed: 451 4.3.0 */
	char error[160]; /* why, for the system log */
	int local;	 /* the domain is ours */
	int exists;	 /* ... and the address names an account */
	char account[DIRECTORY_ADDRESS_MAX + 1];
	/* RCPT: the address is the reply address of a hijack alert of one
	 * of our domains; may_reply: the session's account may use it. */
	int token;
	int may_reply;
	char token_s[HIJACK_TOKEN_LEN + 1];
	char token_domain[ADDR_DOMAIN_MAX + 1];
};

struct env;
struct io_workers;

/* The pool that runs directory reads for sessions: the lookup workers,
 * or the general ones where there are none (a test harness). */
struct io_workers *smtp_lookup_pool(const struct env *env);

/*
 * Starts the lookup of l (l->s, l->rcpt, the parsed command and l->auth
 * set) on a lookup worker; done(l) then runs on the session's loop, and
 * the caller frees l there. The session counts the job (s->jobs) and
 * reads no input meanwhile. Returns 0, or -1 (nothing started) when out
 * of memory.
 */
int smtp_lookup_start(struct smtp_lookup *l,
		      void (*done)(struct smtp_lookup *l));

#endif
