/*
 * screening: glue between the pure screen (policy/screen.c), the logs and
 * the directory, shared by the SMTP and POP3 servers.
 */
#include "policy/screening.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "delivery/notice.h"
#include "directory/directory.h"
#include "directory/settings.h"
#include "lib/clock.h"
#include "lib/config.h"
#include "lib/env.h"
#include "lib/io_worker.h"
#include "lib/log.h"

/* How long a block's record is kept to double the next one. */
#define SCREENING_RECORD_DAYS 7

struct screening_job {
	struct env *env;
	struct screen *screen;
	char key[SCREEN_KEY_SIZE];
	char reason[256];
	int64_t until, now;
	int offenses;
};

static void screening_block_work(void *thread_state, void *arg)
{
	struct env_thread *t = thread_state;
	struct screening_job *j = arg;
	const char *err = NULL;

	if (t == NULL || t->dir == NULL)
		return;
	if (directory_block_put(t->dir, j->key, j->until, j->offenses,
				j->reason, j->now, &err) < 0 ||
	    directory_security_event_add(t->dir, j->now, "ip-blocked", NULL,
					 j->key, j->reason, &err) < 0)
		log_error("cannot record the block of %s: %s", j->key, err);
	directory_block_prune(t->dir, j->now - SCREENING_RECORD_DAYS * 86400,
			      &err);
}

static void screening_block_done(void *arg)
{
	struct screening_job *j = arg;

	/* The directory has it (or never will): reloads read it there. A
	 * reload that kept it while unsaved may have missed an unblock
	 * made since: read the blocks again. */
	if (screen_block_saved(j->screen, j->key))
		screening_reload(j->env);
	free(j);
}

/* The note to the postmaster when an account reaches
 * screening.notify_after failed logins. */
struct screening_note {
	struct queue *q;
	char account[DIRECTORY_ADDRESS_MAX + 1];
	char ip[64];
	char service[16];
	char hostname[256];
	unsigned failures;
	int64_t minutes, now;
	/* out */
	char id[QUEUE_ID_SIZE];
	int queued;
	struct env *env;
};

static void screening_note_work(void *thread_state, void *arg)
{
	struct env_thread *t = thread_state;
	struct screening_note *j = arg;
	const char *domain = strrchr(j->account, '@'), *err = NULL;
	char pm[DIRECTORY_ADDRESS_MAX + 1], subject[512], text[2048];
	struct notice n;
	int r;

	/* Only for accounts of our domains: never mail a stranger's
	 * postmaster about a name an attacker typed. */
	if (t == NULL || t->dir == NULL || domain == NULL ||
	    directory_domain_exists(t->dir, domain + 1) != 1)
		return;
	snprintf(pm, sizeof(pm), "postmaster@%s", domain + 1);
	snprintf(subject, sizeof(subject), "Failed logins on %s", j->account);
	snprintf(text, sizeof(text),
		 "The account %s has had %u failed logins in the last %lld "
		 "minutes\n(screening.notify_after), the latest from %s over "
		 "%s.\n\n"
		 "Its password may be under attack. The account is not "
		 "locked:\nthe IPs that fail too often are blocked instead "
		 "(petrelctl screening list).\n"
		 "If the password is weak, change it:\n"
		 "    petrelctl account passwd %s\n",
		 j->account, j->failures, (long long)j->minutes, j->ip,
		 j->service, j->account);
	memset(&n, 0, sizeof(n));
	n.hostname = j->hostname;
	n.from = pm;
	n.from_name = "Petrel screening";
	n.to[n.nto++] = pm;
	n.subject = subject;
	n.text = text;
	n.listener = "notice";
	n.now = j->now;
	r = notice_queue(j->q, t->dir, &n, j->id, &err);
	if (r == 1)
		j->queued = 1;
	else if (r < 0)
		log_error("cannot queue the screening note: %s",
			  err != NULL ? err : "unknown error");
	else
		log_error("cannot queue the screening note for %s: %s has no "
			  "mailbox",
			  j->account, pm);
}

static void screening_note_done(void *arg)
{
	struct screening_note *j = arg;

	if (j->queued && j->env->message_queued != NULL)
		j->env->message_queued(j->env, j->id);
	free(j);
}

static void screening_notify(struct env *env, const char *service,
			     const char *ip, const char *account,
			     unsigned failures)
{
	struct screening_note *j = calloc(1, sizeof(*j));

	if (j == NULL)
		return;
	j->env = env;
	j->q = env->queue;
	snprintf(j->account, sizeof(j->account), "%s", account);
	snprintf(j->ip, sizeof(j->ip), "%s", ip);
	snprintf(j->service, sizeof(j->service), "%s", service);
	snprintf(j->hostname, sizeof(j->hostname), "%s", env->cfg->hostname);
	j->failures = failures;
	j->minutes =
		settings_int(env->settings, SETTING_SCREENING_AUTH_MINUTES);
	j->now = clock_now();
	if (io_workers_submit(env->workers, screening_note_work,
			      screening_note_done, j) < 0)
		free(j);
}

int64_t screening_auth_failed(struct env *env, const char *service,
			      const char *session, const char *ip, int trusted,
			      const char *account,
			      const unsigned char fp[SCREEN_FP_SIZE],
			      int *blocked_r)
{
	struct screen_verdict v;
	struct screening_job *j;
	char when[32];
	struct tm tm;
	time_t until;

	*blocked_r = 0;
	screen_auth_failed(env->screen, env->settings, ip, trusted, account, fp,
			   clock_now_ms(), &v);
	if (v.notify) {
		log_write(LOG_SECURITY, session, LOG_EVENT,
			  "account %s: %u failed logins in "
			  "screening.auth_minutes (screening.notify_after): "
			  "the postmaster is told",
			  account, v.account_failures);
		screening_notify(env, service, ip, account, v.account_failures);
	}
	if (!v.blocked)
		return v.delay_ms;
	*blocked_r = 1;
	until = (time_t)v.until;
	if (gmtime_r(&until, &tm) == NULL ||
	    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(when, sizeof(when), "?");
	/* fail2ban-friendly, like the failure lines. */
	log_write(LOG_SECURITY, session, LOG_EVENT,
		  "ip blocked: ip=%s key=%s until=%s offenses=%d "
		  "failures=%u service=%s",
		  ip, v.key, when, v.offenses, v.ip_failures, service);
	j = calloc(1, sizeof(*j));
	if (j == NULL) {
		screen_block_saved(env->screen, v.key);
		return v.delay_ms;
	}
	j->env = env;
	j->screen = env->screen;
	snprintf(j->key, sizeof(j->key), "%s", v.key);
	snprintf(j->reason, sizeof(j->reason),
		 "%u failed logins (%s), block %d", v.ip_failures, service,
		 v.offenses);
	j->until = v.until;
	j->offenses = v.offenses;
	j->now = clock_now();
	if (io_workers_submit(env->workers, screening_block_work,
			      screening_block_done, j) < 0) {
		screen_block_saved(env->screen, v.key);
		free(j);
	}
	return v.delay_ms;
}

int screening_login_check(struct env_thread *t, const struct screen *screen,
			  const char *user, char *pass, size_t pass_size,
			  const char *ip, int64_t now,
			  struct directory_account *account_r,
			  const char **reason_r,
			  unsigned char fp_r[SCREEN_FP_SIZE])
{
	const char *err = NULL;
	int r = -1;

	*reason_r = "unknown";
	if (t != NULL && t->dir != NULL) {
		r = directory_account_verify(t->dir, user, pass, strlen(pass),
					     account_r, reason_r, &err);
		if (r == 1)
			directory_account_touch_login(
				t->dir, account_r->address, now, &err);
		else if (r == 0)
			directory_security_event_add(t->dir, now,
						     "auth-failure", user, ip,
						     *reason_r, &err);
	}
	/* Screening counts a password retried as one failure. */
	if (r != 1)
		screen_fingerprint(screen, user, pass, strlen(pass), fp_r);
	sodium_memzero(pass, pass_size);
	return r;
}

static void screening_load_cb(const struct directory_block *b, void *ctx)
{
	screen_load_block(ctx, b->ip, b->until, b->offenses);
}

void screening_reload(struct env *env)
{
	const char *err;

	screen_lock(env->screen);
	screen_clear_blocks(env->screen);
	if (directory_block_list(env->dir,
				 clock_now() - SCREENING_RECORD_DAYS * 86400,
				 screening_load_cb, env->screen, &err) < 0)
		log_error("cannot load the screening blocks: %s", err);
	screen_unlock(env->screen);
}
