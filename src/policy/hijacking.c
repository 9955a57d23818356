/*
 * hijacking: the daemon's side of hijack detection (see hijacking.h). The
 * windows live on the loop (policy/hijack.c), so that 50 sessions of one
 * account sending at once are judged one after the other and not one
 * message more than the limit gets through. New sends and logins are
 * written to the directory in one transaction per poll tick.
 */
#include "policy/hijacking.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "delivery/notice.h"
#include "directory/directory.h"
#include "directory/settings.h"
#include "lib/buf.h"
#include "lib/clock.h"
#include "lib/config.h"
#include "lib/env.h"
#include "lib/io_worker.h"
#include "lib/log.h"
#include "queue/queue.h"

#define HIJACKING_FROZEN_MAX 256 /* accounts frozen since the start */
#define HIJACKING_PRUNE_MS 60000 /* how often old rows are forgotten */

struct hijacking_login {
	char account[DIRECTORY_ADDRESS_MAX + 1];
	char ip[HIJACK_IP_MAX];
	int64_t time;
};

/* What the next flush writes. */
struct hijacking_batch {
	struct directory_hijack_send *sends;
	size_t nsends, sendcap;
	struct hijacking_login *logins;
	size_t nlogins, logincap;
	int64_t prune_before; /* 0: no pruning */
};

/* Shared by the loops: every entry point takes the lock. Nothing is
 * called back while it is held. */
struct hijacking {
	pthread_mutex_t lock;
	struct hijack *h;
	struct hijacking_batch batch;
	int flushing;
	int64_t last_prune;
	char frozen[HIJACKING_FROZEN_MAX][DIRECTORY_ADDRESS_MAX + 1];
	size_t nfrozen;
};

/* --- the windows in the directory --- */

struct hijacking_load {
	struct hijack *h;
};

static void hijacking_load_send(const struct directory_hijack_send *s,
				void *ctx)
{
	struct hijacking_load *l = ctx;
	struct hijack_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.time = s->time;
	ev.rcpts = s->rcpts;
	snprintf(ev.ip, sizeof(ev.ip), "%s", s->ip);
	ev.private_ip = hijack_ip_private(ev.ip);
	snprintf(ev.subject, sizeof(ev.subject), "%s", s->subject);
	snprintf(ev.domains, sizeof(ev.domains), "%s", s->domains);
	hijack_record(l->h, s->account, &ev);
}

static void hijacking_load_login(const char *account, int64_t time,
				 const char *ip, void *ctx)
{
	struct hijacking_load *l = ctx;

	hijack_login(l->h, account, ip, hijack_ip_private(ip), time);
}

int hijacking_start(struct env *env, const char **error_r)
{
	struct hijacking *hj = calloc(1, sizeof(*hj));
	struct hijack_limits lim;
	struct hijacking_load l;

	if (hj == NULL || (hj->h = hijack_new()) == NULL) {
		free(hj);
		*error_r = "out of memory";
		return -1;
	}
	hijack_limits_get(env->settings, &lim);
	l.h = hj->h;
	if (directory_hijack_load(env->dir, NULL,
				  clock_now_ms() - lim.window_ms,
				  hijacking_load_send, hijacking_load_login, &l,
				  error_r) < 0) {
		hijack_free(hj->h);
		free(hj);
		return -1;
	}
	hj->last_prune = clock_now_ms();
	pthread_mutex_init(&hj->lock, NULL);
	env->hijacking = hj;
	return 0;
}

static void hijacking_batch_free(struct hijacking_batch *b)
{
	free(b->sends);
	free(b->logins);
	memset(b, 0, sizeof(*b));
}

/* Writes a batch in one transaction. Returns 0 or -1. */
static int hijacking_batch_write(struct directory *dir,
				 const struct hijacking_batch *b)
{
	const char *err = NULL;
	int rc = 0;

	if (directory_begin(dir, &err) < 0) {
		log_error("hijack detection: cannot record: %s", err);
		return -1;
	}
	for (size_t i = 0; i < b->nsends && rc == 0; i++)
		if (directory_hijack_send_add(dir, &b->sends[i], &err) < 0)
			rc = -1;
	for (size_t i = 0; i < b->nlogins && rc == 0; i++)
		if (directory_hijack_login_add(dir, b->logins[i].account,
					       b->logins[i].time,
					       b->logins[i].ip, &err) < 0)
			rc = -1;
	if (rc == 0 && b->prune_before > 0 &&
	    directory_hijack_forget(dir, NULL, b->prune_before, &err) < 0)
		rc = -1;
	if (rc == 0 && directory_commit(dir, &err) < 0)
		rc = -1;
	if (rc < 0) {
		directory_rollback(dir);
		log_error("hijack detection: cannot record: %s", err);
	}
	return rc;
}

void hijacking_stop(struct env *env)
{
	struct hijacking *hj = env->hijacking;

	if (hj == NULL)
		return;
	if (hj->batch.nsends > 0 || hj->batch.nlogins > 0)
		hijacking_batch_write(env->dir, &hj->batch);
	hijacking_batch_free(&hj->batch);
	hijack_free(hj->h);
	pthread_mutex_destroy(&hj->lock);
	free(hj);
	env->hijacking = NULL;
}

struct hijacking_flush {
	struct hijacking *hj;
	struct hijacking_batch b;
};

static void hijacking_flush_work(void *thread_state, void *arg)
{
	struct env_thread *t = thread_state;
	struct hijacking_flush *f = arg;

	if (t != NULL && t->dir != NULL)
		hijacking_batch_write(t->dir, &f->b);
}

static void hijacking_flush_done(void *arg)
{
	struct hijacking_flush *f = arg;

	pthread_mutex_lock(&f->hj->lock);
	f->hj->flushing = 0;
	pthread_mutex_unlock(&f->hj->lock);
	hijacking_batch_free(&f->b);
	free(f);
}

void hijacking_tick(struct env *env, int64_t now_ms)
{
	struct hijacking *hj = env->hijacking;
	struct hijacking_flush *f;
	int prune;

	if (hj == NULL)
		return;
	pthread_mutex_lock(&hj->lock);
	if (hj->flushing) {
		pthread_mutex_unlock(&hj->lock);
		return;
	}
	prune = now_ms - hj->last_prune >= HIJACKING_PRUNE_MS;
	if (prune) {
		struct hijack_limits lim;

		hijack_limits_get(env->settings, &lim);
		hijack_expire(hj->h, now_ms, lim.window_ms);
		hj->last_prune = now_ms;
		/* Rows older than the window as it is set now: a login per
		 * session must not pile up for a week. A window made longer
		 * later fills from then on. */
		hj->batch.prune_before = now_ms - lim.window_ms;
	}
	f = hj->batch.nsends == 0 && hj->batch.nlogins == 0 && !prune
		    ? NULL
		    : calloc(1, sizeof(*f));
	if (f != NULL) {
		f->hj = hj;
		f->b = hj->batch;
		memset(&hj->batch, 0, sizeof(hj->batch));
		hj->flushing = 1;
		if (io_workers_submit(env->workers, hijacking_flush_work,
				      hijacking_flush_done, f) < 0) {
			hj->batch = f->b; /* next tick */
			hj->flushing = 0;
			free(f);
		}
	}
	pthread_mutex_unlock(&hj->lock);
}

/* --- counting --- */

static int hijacking_grow(void **arr, size_t n, size_t *cap, size_t sz)
{
	void *p;

	if (n < *cap)
		return 0;
	p = realloc(*arr, (*cap == 0 ? 64 : *cap * 2) * sz);
	if (p == NULL)
		return -1;
	*arr = p;
	*cap = *cap == 0 ? 64 : *cap * 2;
	return 0;
}

void hijacking_login(struct env *env, const char *account, const char *ip,
		     int64_t now_ms)
{
	struct hijacking *hj = env->hijacking;
	struct hijacking_batch *b;
	struct hijacking_login *l;

	if (hj == NULL)
		return;
	pthread_mutex_lock(&hj->lock);
	hijack_login(hj->h, account, ip, hijack_ip_private(ip), now_ms);
	b = &hj->batch;
	if (hijacking_grow((void **)&b->logins, b->nlogins, &b->logincap,
			   sizeof(*b->logins)) == 0) {
		l = &b->logins[b->nlogins++];
		snprintf(l->account, sizeof(l->account), "%s", account);
		snprintf(l->ip, sizeof(l->ip), "%s", ip);
		l->time = now_ms;
	}
	pthread_mutex_unlock(&hj->lock);
}

static enum hijack_result hijacking_check_locked(struct env *env,
						 const char *account,
						 struct hijack_event *ev,
						 int64_t now_ms,
						 struct hijack_tally *t_r)
{
	struct hijacking *hj = env->hijacking;
	struct hijack_limits lim;
	int r;

	if (hijack_frozen(hj->h, account))
		return HIJACK_FROZEN;
	if (!settings_bool(env->settings, SETTING_HIJACK_ENABLED) ||
	    hijack_exempt(settings_str(env->settings, SETTING_HIJACK_EXEMPT),
			  account))
		return HIJACK_OK;
	hijack_limits_get(env->settings, &lim);
	ev->private_ip = hijack_ip_private(ev->ip);
	/* Distinct times, so that one send can be taken back alone. */
	ev->time = now_ms;
	r = hijack_send(hj->h, account, ev, &lim, now_ms, t_r);
	if (r < 0) {
		/* Out of memory: let it through rather than refuse. */
		ev->time = 0;
		return HIJACK_OK;
	}
	if (r != HIJACK_OK)
		ev->time = 0;
	return (enum hijack_result)r;
}

enum hijack_result hijacking_check(struct env *env, const char *account,
				   struct hijack_event *ev, int64_t now_ms,
				   struct hijack_tally *t_r)
{
	struct hijacking *hj = env->hijacking;
	enum hijack_result r;

	ev->time = 0;
	if (hj == NULL)
		return HIJACK_OK;
	pthread_mutex_lock(&hj->lock);
	r = hijacking_check_locked(env, account, ev, now_ms, t_r);
	pthread_mutex_unlock(&hj->lock);
	return r;
}

void hijacking_sent(struct env *env, const char *account,
		    const struct hijack_event *ev)
{
	struct hijacking *hj = env->hijacking;
	struct hijacking_batch *b;
	struct directory_hijack_send *s;

	if (hj == NULL || ev->time == 0)
		return;
	pthread_mutex_lock(&hj->lock);
	b = &hj->batch;
	if (hijacking_grow((void **)&b->sends, b->nsends, &b->sendcap,
			   sizeof(*b->sends)) < 0) {
		pthread_mutex_unlock(&hj->lock);
		return;
	}
	s = &b->sends[b->nsends++];
	memset(s, 0, sizeof(*s));
	snprintf(s->account, sizeof(s->account), "%s", account);
	s->time = ev->time;
	snprintf(s->ip, sizeof(s->ip), "%s", ev->ip);
	s->rcpts = ev->rcpts;
	snprintf(s->subject, sizeof(s->subject), "%s", ev->subject);
	snprintf(s->domains, sizeof(s->domains), "%s", ev->domains);
	pthread_mutex_unlock(&hj->lock);
}

void hijacking_unsend(struct env *env, const char *account,
		      const struct hijack_event *ev)
{
	struct hijacking *hj = env->hijacking;

	if (hj == NULL || ev->time == 0)
		return;
	pthread_mutex_lock(&hj->lock);
	hijack_unsend(hj->h, account, ev->time);
	pthread_mutex_unlock(&hj->lock);
}

int hijacking_frozen(struct env *env, const char *account)
{
	struct hijacking *hj = env->hijacking;
	int r;

	if (hj == NULL)
		return 0;
	pthread_mutex_lock(&hj->lock);
	r = hijack_frozen(hj->h, account);
	pthread_mutex_unlock(&hj->lock);
	return r;
}

void hijacking_reload(struct env *env)
{
	struct hijacking *hj = env->hijacking;
	size_t i = 0;

	if (hj == NULL)
		return;
	pthread_mutex_lock(&hj->lock);
	while (i < hj->nfrozen) {
		struct directory_account a;
		const char *err;
		int r = directory_account_get(env->dir, hj->frozen[i], &a,
					      &err);

		if (r == 0 || (r == 1 && a.state != DIRECTORY_ACCOUNT_FROZEN)) {
			hijack_reset(hj->h, hj->frozen[i]);
			log_write(
				LOG_SECURITY, "-", LOG_EVENT,
				"account %s re-activated by an administrator: "
				"window reset",
				hj->frozen[i]);
			memmove(hj->frozen[i], hj->frozen[i + 1],
				(hj->nfrozen - i - 1) * sizeof(hj->frozen[0]));
			hj->nfrozen--;
			continue;
		}
		i++;
	}
	pthread_mutex_unlock(&hj->lock);
}

static void hijacking_forget_frozen(struct hijacking *hj, const char *account)
{
	for (size_t i = 0; i < hj->nfrozen; i++) {
		if (strcasecmp(hj->frozen[i], account) == 0) {
			memmove(hj->frozen[i], hj->frozen[i + 1],
				(hj->nfrozen - i - 1) * sizeof(hj->frozen[0]));
			hj->nfrozen--;
			return;
		}
	}
}

/* --- the freeze --- */

/* Moves every message of account waiting in the queues `from` to `to` (or
 * deletes them when to is QUEUE_COUNT). Returns how many; their ids in
 * *ids_r when wanted (caller frees). */
static size_t hijacking_move_all(struct queue *q, const char *account,
				 const enum queue_name *from, size_t nfrom,
				 enum queue_name to, const char *reason,
				 char (**ids_r)[QUEUE_ID_SIZE])
{
	struct queue_sent sent = {0};
	const char *err;
	size_t moved = 0;

	if (queue_sent_by(q, from, nfrom, account, &sent, &err) < 0)
		log_error("hijack detection: %s", err);
	for (size_t i = 0; i < sent.n; i++) {
		int r = to == QUEUE_COUNT
				? queue_delete(q, sent.ids[i], &err)
				: queue_move(q, sent.ids[i], to, reason, &err);

		if (r == 1)
			memmove(sent.ids[moved++], sent.ids[i], QUEUE_ID_SIZE);
		else if (r < 0)
			log_error("hijack detection: %s: %s", sent.ids[i], err);
	}
	if (ids_r != NULL) {
		*ids_r = sent.ids;
		sent.ids = NULL;
	}
	queue_sent_free(&sent);
	return moved;
}

struct hijacking_freeze_job {
	struct env *env;
	struct queue *q;
	char session[32];
	char account[DIRECTORY_ADDRESS_MAX + 1];
	char ip[HIJACK_IP_MAX];
	char hostname[256];
	char notify[4096];
	enum hijack_result why;
	struct hijack_tally t;
	int64_t now_ms, window_ms, token_hours;
	struct hijack_event *ev;
	size_t nev;
	struct hijack_login *lg;
	size_t nlg;
	/* out */
	size_t held;
	char alert_id[QUEUE_ID_SIZE];
	int alert;
};

static void hijacking_freeze_work(void *thread_state, void *arg)
{
	struct env_thread *t = thread_state;
	struct hijacking_freeze_job *j = arg;
	static const enum queue_name from[] = {QUEUE_ACTIVE, QUEUE_DEFERRED};
	char reason[256], token[HIJACK_TOKEN_LEN + 1], hash[65];
	char reply_to[DIRECTORY_ADDRESS_MAX + 1], pm[DIRECTORY_ADDRESS_MAX + 1];
	char subject[512];
	const char *err, *domain = strrchr(j->account, '@');
	struct directory_account a;
	struct hijack_alert al;
	struct notice n;
	struct buf text;
	int64_t now = j->now_ms / 1000;
	int r;

	if (t == NULL || t->dir == NULL || domain == NULL)
		return;
	domain++;
	snprintf(reason, sizeof(reason),
		 "hijack: %u messages, %u recipients, %u client IPs in %lld "
		 "minutes (limit of %s crossed)",
		 j->t.messages, j->t.recipients, j->t.ips,
		 (long long)(j->window_ms / 60000), hijack_result_str(j->why));
	if (directory_account_set_state(t->dir, j->account,
					DIRECTORY_ACCOUNT_FROZEN, reason, now,
					&err) < 0)
		log_error("cannot freeze %s: %s", j->account, err);
	if (directory_security_event_add(t->dir, now, "account-frozen",
					 j->account, j->ip, reason, &err) < 0)
		log_error("cannot record the freeze of %s: %s", j->account,
			  err);
	j->held = hijacking_move_all(j->q, j->account, from, 2, QUEUE_HOLD,
				     "hijack: the sender's account is frozen",
				     NULL);
	memset(&a, 0, sizeof(a));
	directory_account_get(t->dir, j->account, &a, &err);

	hijack_token_new(token);
	hijack_token_hash(token, hash);
	if (directory_hijack_token_add(t->dir, hash, j->account, now,
				       now + j->token_hours * 3600, &err) < 0)
		log_error("cannot store the re-activation token: %s", err);
	snprintf(reply_to, sizeof(reply_to), "%s%s@%s", HIJACK_TOKEN_PREFIX,
		 token, domain);
	sodium_memzero(token, sizeof(token));

	memset(&al, 0, sizeof(al));
	al.account = j->account;
	al.hostname = j->hostname;
	al.why = j->why;
	al.tally = j->t;
	al.window_ms = j->window_ms;
	al.now = now;
	al.last_login = a.last_login;
	al.ev = j->ev;
	al.nev = j->nev;
	al.lg = j->lg;
	al.nlg = j->nlg;
	al.held = j->held;
	al.reply_to = reply_to;
	al.token_expires = now + j->token_hours * 3600;
	buf_init(&text, 1024 * 1024);
	hijack_alert_subject(&al, subject, sizeof(subject));
	if (hijack_alert_text(&al, &text) < 0 || buf_append(&text, "", 1) < 0) {
		log_error("hijack alert for %s: too long", j->account);
		buf_deinit(&text);
		return;
	}
	memset(&n, 0, sizeof(n));
	snprintf(pm, sizeof(pm), "postmaster@%s", domain);
	n.hostname = j->hostname;
	n.from = pm;
	n.from_name = "Petrel hijack detection";
	n.to[n.nto++] = pm;
	for (char *p = j->notify; *p != '\0' && n.nto < NOTICE_TO_MAX;) {
		size_t len = strcspn(p, ",");
		char *next = p + len;

		if (*next == ',')
			*next++ = '\0';
		while (*p == ' ')
			p++;
		if (*p != '\0')
			n.to[n.nto++] = p;
		p = next;
	}
	n.reply_to = reply_to;
	n.subject = subject;
	n.text = text.data;
	n.listener = "hijack-alert";
	n.now = now;
	r = notice_queue(j->q, t->dir, &n, j->alert_id, &err);
	if (r == 1)
		j->alert = 1;
	else if (r == 0) /* no error text: err is an earlier call's */
		log_error("cannot queue the hijack alert for %s: no recipient "
			  "(%s and hijack.notify name no mailbox)",
			  j->account, pm);
	else
		log_error("cannot queue the hijack alert for %s: %s",
			  j->account, err);
	buf_deinit(&text);
}

static void hijacking_freeze_done(void *arg)
{
	struct hijacking_freeze_job *j = arg;

	log_write(LOG_SECURITY, j->session, LOG_EVENT,
		  "account %s: %zu queued message(s) moved to hold; alert %s%s",
		  j->account, j->held, j->alert ? "queued as " : "not sent",
		  j->alert ? j->alert_id : "");
	if (j->alert && j->env->message_queued != NULL)
		j->env->message_queued(j->env, j->alert_id);
	free(j->ev);
	free(j->lg);
	free(j);
}

void hijacking_freeze(struct env *env, const char *session, const char *account,
		      const char *ip, enum hijack_result why,
		      const struct hijack_tally *t)
{
	struct hijacking *hj = env->hijacking;
	struct hijacking_freeze_job *j;
	const struct hijack_event *ev;
	const struct hijack_login *lg;
	struct hijack_limits lim;

	if (hj == NULL)
		return;
	pthread_mutex_lock(&hj->lock);
	/* Sessions of other loops may cross the limit at the same moment:
	 * the first to get here freezes, once. */
	if (hijack_frozen(hj->h, account)) {
		pthread_mutex_unlock(&hj->lock);
		return;
	}
	hijack_limits_get(env->settings, &lim);
	hijack_freeze(hj->h, account, clock_now_ms());
	if (hj->nfrozen < HIJACKING_FROZEN_MAX)
		snprintf(hj->frozen[hj->nfrozen++], sizeof(hj->frozen[0]), "%s",
			 account);
	/* The one security event of the freeze. */
	log_write(LOG_SECURITY, session, LOG_EVENT,
		  "account frozen: account=%s ip=%s limit=%s messages=%u/%u "
		  "recipients=%u/%u ips=%u/%u window=%lldmin",
		  account, ip, hijack_result_str(why), t->messages,
		  t->max_messages, t->recipients, t->max_recipients, t->ips,
		  t->max_ips, (long long)(lim.window_ms / 60000));
	j = calloc(1, sizeof(*j));
	if (j == NULL) {
		pthread_mutex_unlock(&hj->lock);
		return;
	}
	j->env = env;
	j->q = env->queue;
	snprintf(j->session, sizeof(j->session), "%s", session);
	snprintf(j->account, sizeof(j->account), "%s", account);
	snprintf(j->ip, sizeof(j->ip), "%s", ip);
	snprintf(j->hostname, sizeof(j->hostname), "%s", env->cfg->hostname);
	snprintf(j->notify, sizeof(j->notify), "%s",
		 settings_str(env->settings, SETTING_HIJACK_NOTIFY));
	j->why = why;
	j->t = *t;
	j->now_ms = clock_now_ms();
	j->window_ms = lim.window_ms;
	j->token_hours =
		settings_int(env->settings, SETTING_HIJACK_TOKEN_HOURS);
	j->nev = hijack_events(hj->h, account, &ev);
	j->nlg = hijack_logins(hj->h, account, &lg);
	j->ev = j->nev > 0 ? malloc(j->nev * sizeof(*ev)) : NULL;
	j->lg = j->nlg > 0 ? malloc(j->nlg * sizeof(*lg)) : NULL;
	if (j->ev != NULL)
		memcpy(j->ev, ev, j->nev * sizeof(*ev));
	else
		j->nev = 0;
	if (j->lg != NULL)
		memcpy(j->lg, lg, j->nlg * sizeof(*lg));
	else
		j->nlg = 0;
	pthread_mutex_unlock(&hj->lock);
	if (io_workers_submit(env->workers, hijacking_freeze_work,
			      hijacking_freeze_done, j) < 0) {
		log_error("cannot freeze %s: out of memory", account);
		free(j->ev);
		free(j->lg);
		free(j);
	}
}

struct hijacking_hold_job {
	struct queue *q;
	char id[QUEUE_ID_SIZE];
	char account[DIRECTORY_ADDRESS_MAX + 1];
};

static void hijacking_hold_work(void *thread_state, void *arg)
{
	struct hijacking_hold_job *j = arg;
	const char *err;

	(void)thread_state;
	if (queue_move(j->q, j->id, QUEUE_HOLD,
		       "hijack: the sender's account is frozen", &err) < 0)
		log_error("hijack detection: %s: %s", j->id, err);
}

void hijacking_hold(struct env *env, const char *queue_id, const char *account)
{
	struct hijacking_hold_job *j = calloc(1, sizeof(*j));

	if (j == NULL)
		return;
	j->q = env->queue;
	snprintf(j->id, sizeof(j->id), "%s", queue_id);
	snprintf(j->account, sizeof(j->account), "%s", account);
	log_write(LOG_SECURITY, "-", LOG_EVENT,
		  "message %s of the frozen account %s moved to hold", j->id,
		  j->account);
	if (io_workers_submit(env->workers, hijacking_hold_work, free, j) < 0)
		free(j);
}

/* --- re-activation by reply --- */

struct hijacking_reply_job {
	struct env *env;
	struct queue *q;
	char session[32];
	char replier[DIRECTORY_ADDRESS_MAX + 1];
	char token[HIJACK_TOKEN_LEN + 1];
	char domain[256];
	char word[32];
	char hostname[256];
	int64_t now;
	void (*done)(void *arg, int ok, const char *text);
	void *arg;
	/* out */
	int ok;
	char account[DIRECTORY_ADDRESS_MAX + 1];
	char text[512];
	char (*released)[QUEUE_ID_SIZE];
	size_t nreleased;
	char confirm_id[QUEUE_ID_SIZE];
	int confirmed;
};

static void hijacking_reply_work(void *thread_state, void *arg)
{
	struct env_thread *t = thread_state;
	struct hijacking_reply_job *j = arg;
	static const enum queue_name hold[] = {QUEUE_HOLD};
	char hash[65], event[600], subject[400], body[1024];
	const char *err = "no directory", *why = "";
	struct directory_account a;
	size_t n = 0;
	const char *what;
	struct notice nt;
	int r;

	if (t == NULL || t->dir == NULL) {
		snprintf(j->text, sizeof(j->text), "451 4.3.0 %s", err);
		return;
	}
	hijack_token_hash(j->token, hash);
	sodium_memzero(j->token, sizeof(j->token));
	r = directory_hijack_token_take(t->dir, hash, j->domain, j->now,
					j->account, sizeof(j->account), &why,
					&err);
	if (r < 0) {
		snprintf(j->text, sizeof(j->text),
			 "451 4.3.0 Temporary lookup failure");
		return;
	}
	if (r == 0) {
		snprintf(event, sizeof(event),
			 "reply to a hijack alert from %s refused: %s",
			 j->replier, why);
		directory_security_event_add(t->dir, j->now,
					     "reactivation-refused", j->replier,
					     NULL, event, &err);
		snprintf(j->text, sizeof(j->text),
			 "550 5.7.1 Re-activation refused: %s", why);
		return;
	}
	if (directory_account_get(t->dir, j->account, &a, &err) != 1 ||
	    a.state != DIRECTORY_ACCOUNT_FROZEN) {
		j->ok = 1;
		snprintf(j->text, sizeof(j->text),
			 "250 2.0.0 Ok: account %s is not frozen", j->account);
		return;
	}
	snprintf(event, sizeof(event),
		 "re-activated by %s (reply to the alert, order \"%s\")",
		 j->replier, j->word);
	if (directory_account_set_state(t->dir, j->account,
					DIRECTORY_ACCOUNT_ENABLED, event,
					j->now, &err) < 0 ||
	    directory_hijack_forget(t->dir, j->account, 0, &err) < 0) {
		snprintf(j->text, sizeof(j->text),
			 "451 4.3.0 Cannot re-activate: %s", err);
		return;
	}
	directory_security_event_add(t->dir, j->now, "account-reactivated",
				     j->account, NULL, event, &err);
	if (strcmp(j->word, "release") == 0) {
		n = hijacking_move_all(j->q, j->account, hold, 1, QUEUE_ACTIVE,
				       NULL, &j->released);
		j->nreleased = n;
		what = "released (sent on)";
	} else if (strcmp(j->word, "delete") == 0) {
		n = hijacking_move_all(j->q, j->account, hold, 1, QUEUE_COUNT,
				       NULL, NULL);
		what = "deleted";
	} else {
		/* Counted; moving where it is keeps it there. */
		n = hijacking_move_all(j->q, j->account, hold, 1, QUEUE_HOLD,
				       "hijack: the sender's account was "
				       "frozen",
				       NULL);
		what = "left on hold";
	}
	j->ok = 1;
	snprintf(j->text, sizeof(j->text),
		 "250 2.0.0 Ok: account %s re-activated; %zu held message(s) "
		 "%s",
		 j->account, n, what);
	snprintf(subject, sizeof(subject), "Account %s re-activated",
		 j->account);
	snprintf(body, sizeof(body),
		 "The account %s was re-activated by %s, replying to the\n"
		 "hijack alert. Its sending window starts anew.\n\n"
		 "%zu held message(s) %s%s.\n",
		 j->account, j->replier, n, what,
		 n > 0 && strcmp(what, "left on hold") == 0
			 ? " (petrelctl queue list hold shows them)"
			 : "");
	memset(&nt, 0, sizeof(nt));
	nt.hostname = j->hostname;
	snprintf(event, sizeof(event), "postmaster@%s", j->domain);
	nt.from = event;
	nt.from_name = "Petrel hijack detection";
	nt.to[nt.nto++] = j->replier;
	nt.subject = subject;
	nt.text = body;
	nt.listener = "hijack-alert";
	nt.now = j->now;
	if (notice_queue(j->q, t->dir, &nt, j->confirm_id, &err) == 1)
		j->confirmed = 1;
}

static void hijacking_reply_done(void *arg)
{
	struct hijacking_reply_job *j = arg;
	struct env *env = j->env;

	log_write(LOG_SECURITY, j->session, LOG_EVENT,
		  "reply to a hijack alert from %s: %s", j->replier, j->text);
	if (j->ok && j->account[0] != '\0' && env->hijacking != NULL) {
		pthread_mutex_lock(&env->hijacking->lock);
		hijack_reset(env->hijacking->h, j->account);
		hijacking_forget_frozen(env->hijacking, j->account);
		pthread_mutex_unlock(&env->hijacking->lock);
	}
	if (env->message_queued != NULL) {
		for (size_t i = 0; i < j->nreleased; i++)
			env->message_queued(env, j->released[i]);
		if (j->confirmed)
			env->message_queued(env, j->confirm_id);
	}
	j->done(j->arg, j->ok, j->text);
	free(j->released);
	free(j);
}

int hijacking_reply(struct env *env, const char *session, const char *replier,
		    const char *token, const char *domain, const char *word,
		    void (*done)(void *arg, int ok, const char *text),
		    void *arg)
{
	struct hijacking_reply_job *j = calloc(1, sizeof(*j));

	if (j == NULL)
		return -1;
	j->env = env;
	j->q = env->queue;
	snprintf(j->session, sizeof(j->session), "%s", session);
	snprintf(j->replier, sizeof(j->replier), "%s", replier);
	snprintf(j->token, sizeof(j->token), "%s", token);
	snprintf(j->domain, sizeof(j->domain), "%s", domain);
	snprintf(j->word, sizeof(j->word), "%s", word);
	snprintf(j->hostname, sizeof(j->hostname), "%s", env->cfg->hostname);
	j->now = clock_now();
	j->done = done;
	j->arg = arg;
	if (io_workers_submit(env->workers, hijacking_reply_work,
			      hijacking_reply_done, j) < 0) {
		free(j);
		return -1;
	}
	return 0;
}
