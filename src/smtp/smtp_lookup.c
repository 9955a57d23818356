/*
 * smtp_lookup: the directory reads of MAIL and RCPT, on a lookup worker
 * with its own directory handle (smtp_lookup.h). Only reads: what the
 * session then decides stays in smtp_session.c and policy/.
 */
#include "smtp/smtp_lookup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "lib/env.h"
#include "lib/io_worker.h"
#include "smtp/smtp_session_int.h"

struct smtp_lookup_job {
	struct smtp_lookup *l;
	void (*done)(struct smtp_lookup *l);
};

static void smtp_lookup_fail(struct smtp_lookup *l, const char *what,
			     const char *err)
{
	l->failed = 1;
	snprintf(l->error, sizeof(l->error), "%s: %s", what,
		 err != NULL ? err : "lookup failed");
}

/* <postmaster> without a domain (RFC 5321 4.5.1): the first of our
 * domains whose postmaster exists. */
struct smtp_pm_ctx {
	struct directory *dir;
	char *account;
};

static void smtp_pm_cb(const char *domain, void *arg)
{
	struct smtp_pm_ctx *c = arg;
	char addr[DIRECTORY_ADDRESS_MAX + 1];
	const char *err;

	if (c->account[0] != '\0')
		return;
	snprintf(addr, sizeof(addr), "postmaster@%s", domain);
	if (directory_resolve(c->dir, addr, c->account, &err) != 1)
		c->account[0] = '\0';
}

/* May account re-activate accounts of domain: the domain's postmaster, or
 * an admin account of it? */
static int smtp_lookup_may_reply(struct directory *d, const char *account,
				 const char *domain)
{
	struct directory_account a;
	const char *at = strrchr(account, '@'), *err;

	if (account[0] == '\0' || at == NULL || strcasecmp(at + 1, domain) != 0)
		return 0;
	if (directory_account_get(d, account, &a, &err) != 1)
		return 0;
	return a.is_admin || ((size_t)(at - account) == 10 &&
			      strncasecmp(account, "postmaster", 10) == 0);
}

/* The reply address of a hijack alert of one of our domains? Returns 1
 * (l->token set), 0, or -1 when the lookup failed. */
static int smtp_lookup_token(struct directory *d, struct smtp_lookup *l,
			     const char *text)
{
	const char *err = NULL;
	int r;

	if (!hijack_token_rcpt(text, l->token_s, l->token_domain,
			       sizeof(l->token_domain)))
		return 0;
	r = directory_domain_exists(d, l->token_domain);
	if (r != 1) {
		sodium_memzero(l->token_s, sizeof(l->token_s));
		if (r < 0)
			smtp_lookup_fail(l, "domain", err);
		return r < 0 ? -1 : 0;
	}
	l->token = 1;
	l->may_reply = smtp_lookup_may_reply(d, l->auth, l->token_domain);
	return 1;
}

static void smtp_lookup_work(void *state, void *arg)
{
	struct smtp_lookup_job *j = arg;
	struct smtp_lookup *l = j->l;
	struct env_thread *t = state;
	struct directory *d = t != NULL ? t->dir : NULL;
	const struct addr *a;
	char text[ADDR_FORMAT_SIZE];
	const char *err = NULL;
	int r;

	if (d == NULL) {
		smtp_lookup_fail(l, "directory", "no directory handle");
		return;
	}
	if (l->rcpt) {
		a = &l->to.to;
		addr_format(a, text, sizeof(text));
		if (smtp_lookup_token(d, l, text) != 0)
			return;
		if (a->domain[0] == '\0') {
			struct smtp_pm_ctx c = {.dir = d,
						.account = l->account};

			l->account[0] = '\0';
			if (directory_domain_list(d, smtp_pm_cb, &c, &err) <
			    0) {
				smtp_lookup_fail(l, "domains", err);
				return;
			}
			l->local = 1;
			l->exists = l->account[0] != '\0';
			return;
		}
	} else {
		a = &l->mail.from;
		if (addr_is_null(a))
			return;
		addr_format(a, text, sizeof(text));
	}
	r = directory_domain_exists(d, a->domain);
	if (r < 0) {
		smtp_lookup_fail(l, "domain", NULL);
		return;
	}
	l->local = r == 1;
	if (!l->local)
		return;
	r = directory_resolve(d, text, l->account, &err);
	if (r < 0) {
		smtp_lookup_fail(l, "resolve", err);
		return;
	}
	l->exists = r == 1;
}

static void smtp_lookup_done(void *arg)
{
	struct smtp_lookup_job *j = arg;
	struct smtp_lookup *l = j->l;
	void (*done)(struct smtp_lookup *) = j->done;

	free(j);
	done(l);
}

struct io_workers *smtp_lookup_pool(const struct env *env)
{
	return env->lookup_workers != NULL ? env->lookup_workers : env->workers;
}

int smtp_lookup_start(struct smtp_lookup *l,
		      void (*done)(struct smtp_lookup *l))
{
	struct io_workers *w = smtp_lookup_pool(l->s->env);
	struct smtp_lookup_job *j = malloc(sizeof(*j));

	if (j == NULL)
		return -1;
	j->l = l;
	j->done = done;
	if (io_workers_submit(w, smtp_lookup_work, smtp_lookup_done, j) < 0) {
		free(j);
		return -1;
	}
	return 0;
}
