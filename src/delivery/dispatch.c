/*
 * dispatch: the queue manager. Owns, in the daemon, the active and
 * deferred queues: every message committed, found in active/ at start, or
 * whose retry time came in deferred/ is handed, one attempt at a time, to
 * delivery_prepare() on a worker (local recipients, checks), then its
 * remote recipients, grouped by domain, to remote.c, and at last to
 * delivery_finish() on a worker (statuses, bounces, warnings, deferral).
 * A message is never in two attempts at once: the live attempts are kept
 * here by id. The retry times of the deferred messages are kept here in
 * a heap: read from every envelope once at start, then pushed at each
 * deferral (nothing else puts a message into deferred/), so that a pass
 * reads only the envelopes whose time has come, however many wait. A pass
 * runs at the earliest retry time, every minute, and on SIGUSR1
 * (petrelctl), and lists active/ too; a restart finds everything again in
 * the spool, which is the only durable record.
 *
 * At most queue.active_limit attempts run at once (each holds its spool
 * file open, and a remote one may wait long for a connection): what comes
 * beyond waits in active/, and a pass picks it up, oldest first, when a
 * tenth of the attempts are done (so that a slow destination holding most
 * of them delays the rest little, and a pass lists active/ at most once
 * per tenth). The live attempts are found by id in a hash table, so a
 * backlog of any size costs nothing per message committed.
 */
#include "delivery/dispatch.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "delivery/delivery.h"
#include "delivery/remote.h"
#include "delivery/remote_route.h"
#include "directory/settings.h"
#include "lib/clock.h"
#include "lib/config.h"
#include "lib/env.h"
#include "lib/io.h"
#include "lib/io_worker.h"
#include "lib/log.h"
#include "queue/queue.h"

#define DISPATCH_SCAN_MS (60 * 1000) /* at least this often */
#define DISPATCH_JOB_RCPTS 50	     /* recipients per SMTP transaction */
#define DISPATCH_BUCKETS 4096	     /* of the live attempts' hash table */

struct dispatch_msg {
	struct delivery_dispatch *d;
	struct delivery_msg m;
	struct settings *settings; /* the snapshot of this attempt */
	struct remote_job *jobs;
	struct remote_rcpt *rrcpts;
	size_t njobs, jobs_left;
	int result;
	int finished; /* delivery_finish() ran too, on the same job */
	struct dispatch_msg *prev, *next;
	struct dispatch_msg *hnext; /* in its bucket */
	uint32_t hash;
};

struct dispatch_scan {
	struct delivery_dispatch *d;
	int64_t now;
	int all; /* read every deferred envelope (the first pass) */
	struct delivery_retry *cands; /* due by the heap */
	size_t ncands;
	struct delivery_scan_result res;
	int result;
	char error[256];
};

struct delivery_dispatch {
	struct env *env;
	struct remote *remote;
	atomic_int stopped;	   /* read by the workers too */
	struct dispatch_msg *msgs; /* attempts under way */
	size_t nmsgs;
	struct dispatch_msg *buckets[DISPATCH_BUCKETS]; /* the same, by id */
	int backlog;	/* a message was left in active/ at the limit */
	int unreceived; /* committed, left waiting: not counted received */
	struct io_timer *scan_timer;
	int64_t scan_at; /* ms (clock_now_ms) the timer is set for */
	int scanning;
	int scan_again;
	/* Deferred messages by retry time (a min-heap); an entry may be
	 * stale (the message moved or deferred again): the pass checks. */
	struct delivery_retry *retries;
	size_t nretries, retries_cap;
	int loaded; /* the heap holds every deferred message */
};

static void dispatch_schedule(struct delivery_dispatch *d, int64_t at_ms);
static void dispatch_add(struct delivery_dispatch *d, const char *id,
			 int fresh);

/* ---- the retry heap ---- */

static void dispatch_retry_swap(struct delivery_retry *a,
				struct delivery_retry *b)
{
	struct delivery_retry t = *a;

	*a = *b;
	*b = t;
}

/* Adds id at time at. Without memory the heap is read again from the
 * spool at the next pass. */
static void dispatch_retry_push(struct delivery_dispatch *d, const char *id,
				int64_t at)
{
	size_t i;

	if (d->nretries == d->retries_cap) {
		size_t cap = d->retries_cap ? d->retries_cap * 2 : 256;
		void *p = realloc(d->retries, cap * sizeof(*d->retries));

		if (p == NULL) {
			d->loaded = 0;
			return;
		}
		d->retries = p;
		d->retries_cap = cap;
	}
	i = d->nretries++;
	d->retries[i].at = at;
	snprintf(d->retries[i].id, sizeof(d->retries[i].id), "%s", id);
	while (i > 0 && d->retries[(i - 1) / 2].at > d->retries[i].at) {
		dispatch_retry_swap(&d->retries[(i - 1) / 2], &d->retries[i]);
		i = (i - 1) / 2;
	}
}

static void dispatch_retry_pop(struct delivery_dispatch *d)
{
	size_t i = 0;

	d->retries[0] = d->retries[--d->nretries];
	for (;;) {
		size_t l = 2 * i + 1, m = i;

		if (l < d->nretries && d->retries[l].at < d->retries[m].at)
			m = l;
		if (l + 1 < d->nretries &&
		    d->retries[l + 1].at < d->retries[m].at)
			m = l + 1;
		if (m == i)
			return;
		dispatch_retry_swap(&d->retries[i], &d->retries[m]);
		i = m;
	}
}

/* How many attempts may run at once (queue.active_limit). */
static size_t dispatch_limit(const struct delivery_dispatch *d)
{
	return (size_t)settings_int(d->env->settings,
				    SETTING_QUEUE_ACTIVE_LIMIT);
}

/* FNV-1a of a queue id. */
static uint32_t dispatch_hash(const char *id)
{
	uint32_t h = 2166136261u;

	for (; *id != '\0'; id++) {
		h ^= (unsigned char)*id;
		h *= 16777619u;
	}
	return h;
}

static struct dispatch_msg *dispatch_find(struct delivery_dispatch *d,
					  const char *id)
{
	uint32_t h = dispatch_hash(id);

	for (struct dispatch_msg *x = d->buckets[h % DISPATCH_BUCKETS];
	     x != NULL; x = x->hnext)
		if (x->hash == h && strcmp(x->m.id, id) == 0)
			return x;
	return NULL;
}

static void dispatch_msg_free(struct dispatch_msg *x)
{
	struct delivery_dispatch *d = x->d;
	struct dispatch_msg **pp = &d->buckets[x->hash % DISPATCH_BUCKETS];

	while (*pp != NULL && *pp != x)
		pp = &(*pp)->hnext;
	if (*pp == x)
		*pp = x->hnext;
	if (x->prev != NULL)
		x->prev->next = x->next;
	else
		d->msgs = x->next;
	if (x->next != NULL)
		x->next->prev = x->prev;
	d->nmsgs--;
	delivery_msg_clear(&x->m);
	settings_unref(x->settings);
	free(x->jobs);
	free(x->rrcpts);
	free(x);
	/* Room again: a pass takes what waited, oldest first. */
	if (d->backlog && !d->stopped) {
		size_t limit = dispatch_limit(d);

		if (d->nmsgs + (limit >= 10 ? limit / 10 : 1) <= limit) {
			d->backlog = 0;
			dispatch_schedule(d, 0);
		}
	}
}

static void dispatch_ctx(struct dispatch_msg *x, void *thread_state,
			 struct delivery_ctx *ctx)
{
	struct env_thread *t = thread_state;
	const struct config *cfg = x->d->env->cfg;

	memset(ctx, 0, sizeof(*ctx));
	ctx->q = x->d->env->queue;
	ctx->dir = t != NULL ? t->dir : NULL;
	ctx->data_dir = cfg->data_dir;
	ctx->hostname = cfg->hostname;
	ctx->settings = x->settings;
	ctx->now = clock_now();
}

/* ---- finish ---- */

static void dispatch_finish_work(void *thread_state, void *arg)
{
	struct dispatch_msg *x = arg;
	struct delivery_ctx ctx;

	dispatch_ctx(x, thread_state, &ctx);
	x->result = delivery_finish(&ctx, &x->m);
}

static void dispatch_finish_done(void *arg)
{
	struct dispatch_msg *x = arg;
	struct delivery_dispatch *d = x->d;
	char notices[2][QUEUE_ID_SIZE];
	size_t n = x->m.nnotices;

	if (x->result < 0)
		log_error("delivery of %s: %s", x->m.id, x->m.error);
	memcpy(notices, x->m.notices, sizeof(notices));
	if (x->m.next_retry > 0) {
		dispatch_retry_push(d, x->m.id, x->m.next_retry);
		dispatch_schedule(d, x->m.next_retry * 1000);
	}
	dispatch_msg_free(x);
	/* Bounces and warnings leave at once. */
	for (size_t i = 0; i < n; i++)
		dispatch_add(d, notices[i], 0);
}

static void dispatch_finish(struct dispatch_msg *x)
{
	if (io_workers_submit(x->d->env->delivery_workers, dispatch_finish_work,
			      dispatch_finish_done, x) < 0) {
		log_error("delivery of %s: out of memory", x->m.id);
		dispatch_msg_free(x);
	}
}

/* ---- remote ---- */

static void dispatch_job_done(struct remote_job *job, void *arg)
{
	struct dispatch_msg *x = arg;

	for (size_t i = 0; i < job->nrcpt; i++) {
		const struct remote_rcpt *rc = &job->rcpts[i];
		struct delivery_rcpt *o = &x->m.rcpts[rc->idx];

		o->outcome = rc->outcome;
		memcpy(o->error, rc->error, sizeof(o->error));
		memcpy(o->status, rc->status, sizeof(o->status));
		memcpy(o->mta, rc->mta, sizeof(o->mta));
	}
	if (job->held)
		x->m.held = 1;
	if (--x->jobs_left > 0)
		return;
	x->m.stopping = x->d->stopped;
	dispatch_finish(x);
}

/* Groups the pending remote recipients by domain (all together through a
 * smarthost) into jobs of at most DISPATCH_JOB_RCPTS. */
static int dispatch_send(struct dispatch_msg *x)
{
	const struct queue_envelope *env = x->m.env;
	int smarthost = x->d->env->cfg->smarthost[0] != '\0';
	size_t n = 0, nj = 0;
	char(*domains)[256];
	int *taken;

	x->rrcpts = calloc(x->m.remote_pending, sizeof(*x->rrcpts));
	x->jobs = calloc(x->m.remote_pending, sizeof(*x->jobs));
	domains = calloc(env->rcpt_count, sizeof(*domains));
	taken = calloc(env->rcpt_count, sizeof(*taken));
	if (x->rrcpts == NULL || x->jobs == NULL || domains == NULL ||
	    taken == NULL) {
		free(domains);
		free(taken);
		return -1;
	}
	for (size_t i = 0; i < env->rcpt_count; i++) {
		const struct queue_rcpt *rc = &env->rcpts[i];

		if (rc->status != QUEUE_RCPT_PENDING ||
		    rc->kind != QUEUE_RCPT_REMOTE) {
			taken[i] = 1;
			continue;
		}
		if (smarthost)
			domains[i][0] = '\0';
		else if (!remote_route_domain(rc->address, domains[i],
					      sizeof(domains[i])))
			snprintf(domains[i], sizeof(domains[i]), "%s",
				 "invalid.");
	}
	for (size_t i = 0; i < env->rcpt_count; i++) {
		struct remote_job *j;

		if (taken[i])
			continue;
		j = &x->jobs[nj++];
		snprintf(j->id, sizeof(j->id), "%s", x->m.id);
		j->sender = env->sender;
		j->message_id = env->message_id;
		j->auth_account = env->auth_account;
		snprintf(j->domain, sizeof(j->domain), "%s", domains[i]);
		j->size = x->m.body_len;
		j->eightbit = x->m.eightbit;
		j->mime7 = &x->m.mime7;
		j->body_fd = x->m.body_fd;
		j->body_len = x->m.body_len;
		j->rcpts = &x->rrcpts[n];
		j->done = dispatch_job_done;
		j->arg = x;
		for (size_t k = i;
		     k < env->rcpt_count && j->nrcpt < DISPATCH_JOB_RCPTS;
		     k++) {
			if (taken[k] || strcmp(domains[k], domains[i]) != 0)
				continue;
			taken[k] = 1;
			x->rrcpts[n].idx = k;
			x->rrcpts[n].address = env->rcpts[k].address;
			n++;
			j->nrcpt++;
		}
	}
	free(domains);
	free(taken);
	x->njobs = x->jobs_left = nj;
	for (size_t i = 0; i < nj; i++)
		remote_submit(x->d->remote, &x->jobs[i]);
	return 0;
}

/* ---- prepare ---- */

static void dispatch_prepare_work(void *thread_state, void *arg)
{
	struct dispatch_msg *x = arg;
	struct delivery_ctx ctx;

	dispatch_ctx(x, thread_state, &ctx);
	x->result = delivery_prepare(&ctx, &x->m);
	/* Nothing to send (local recipients only, the common case): the
	 * attempt ends here, on this thread, without a turn through the
	 * loop and back to a worker. */
	if (x->m.next == DELIVERY_FINISH) {
		if (x->result < 0)
			log_error("delivery of %s: %s", x->m.id, x->m.error);
		x->m.stopping = atomic_load(&x->d->stopped);
		ctx.now = clock_now();
		x->result = delivery_finish(&ctx, &x->m);
		x->finished = 1;
	}
}

static void dispatch_prepare_done(void *arg)
{
	struct dispatch_msg *x = arg;
	struct delivery_dispatch *d = x->d;

	if (x->finished) {
		dispatch_finish_done(x);
		return;
	}
	if (x->result < 0)
		log_error("delivery of %s: %s", x->m.id, x->m.error);
	switch (x->m.next) {
	case DELIVERY_DROP:
		dispatch_msg_free(x);
		return;
	case DELIVERY_SEND:
		if (d->stopped) {
			/* What was delivered locally is recorded; the rest
			 * waits in active/ for the next start. */
			x->m.stopping = 1;
			dispatch_finish(x);
			return;
		}
		if (dispatch_send(x) < 0) {
			log_error("delivery of %s: out of memory", x->m.id);
			dispatch_msg_free(x);
		}
		return;
	case DELIVERY_FINISH:
		x->m.stopping = d->stopped;
		dispatch_finish(x);
		return;
	}
}

static void dispatch_add(struct delivery_dispatch *d, const char *id, int fresh)
{
	struct dispatch_msg *x;

	if (d == NULL || d->stopped || !queue_id_valid(id) ||
	    dispatch_find(d, id) != NULL)
		return;
	if (d->nmsgs >= dispatch_limit(d)) {
		d->backlog = 1; /* it waits in active/ for a pass */
		d->unreceived += fresh;
		return;
	}
	x = calloc(1, sizeof(*x));
	if (x == NULL) {
		d->unreceived += fresh;
		return; /* found again by the next scan */
	}
	x->d = d;
	snprintf(x->m.id, sizeof(x->m.id), "%.*s", QUEUE_ID_LEN, id);
	x->hash = dispatch_hash(id);
	x->hnext = d->buckets[x->hash % DISPATCH_BUCKETS];
	d->buckets[x->hash % DISPATCH_BUCKETS] = x;
	/* The next attempt counts those the limit left waiting too. */
	x->m.fresh = fresh + d->unreceived;
	d->unreceived = 0;
	x->m.body_fd = -1;
	x->settings = d->env->settings;
	settings_ref(x->settings);
	x->next = d->msgs;
	if (d->msgs != NULL)
		d->msgs->prev = x;
	d->msgs = x;
	d->nmsgs++;
	if (io_workers_submit(d->env->delivery_workers, dispatch_prepare_work,
			      dispatch_prepare_done, x) < 0) {
		d->unreceived += x->m.fresh;
		dispatch_msg_free(x);
	}
}

void delivery_dispatch_add(struct delivery_dispatch *d, const char *id)
{
	dispatch_add(d, id, 1);
}

/* ---- scans ---- */

static void dispatch_scan_work(void *thread_state, void *arg)
{
	struct dispatch_scan *s = arg;
	const char *err = NULL;

	(void)thread_state;
	s->result = delivery_scan(s->d->env->queue, s->now, s->all, s->cands,
				  s->ncands, &s->res, &err);
	if (s->result < 0)
		snprintf(s->error, sizeof(s->error), "%s", err);
}

static void dispatch_scan_done(void *arg)
{
	struct dispatch_scan *s = arg;
	struct delivery_dispatch *d = s->d;
	size_t added = 0;

	d->scanning = 0;
	if (s->result < 0) {
		log_error("queue scan: %s", s->error);
		/* Tried again at the next pass. */
		for (size_t i = 0; i < s->ncands; i++)
			dispatch_retry_push(d, s->cands[i].id, s->cands[i].at);
	} else if (s->all) {
		d->loaded = 1;
	}
	for (size_t i = 0; i < s->res.nlater; i++)
		dispatch_retry_push(d, s->res.later[i].id, s->res.later[i].at);
	for (size_t i = 0; i < s->res.ndue && !d->stopped; i++) {
		size_t before = d->nmsgs;

		dispatch_add(d, s->res.due[i], 0);
		added += d->nmsgs > before;
	}
	if (added > 0)
		log_info("queue scan: %zu message(s) picked up", added);
	if (d->nretries > 0)
		dispatch_schedule(d, d->retries[0].at * 1000);
	free(s->res.due);
	free(s->res.later);
	free(s->cands);
	free(s);
	if (d->scan_again && !d->stopped) {
		d->scan_again = 0;
		dispatch_schedule(d, 0);
	}
}

static void dispatch_scan_cb(void *arg)
{
	struct delivery_dispatch *d = arg;
	struct dispatch_scan *s;

	d->scan_at = 0;
	if (d->stopped)
		return;
	/* The next one at the latest in a minute. */
	dispatch_schedule(d, clock_now_ms() + DISPATCH_SCAN_MS);
	if (d->scanning) {
		d->scan_again = 1;
		return;
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return;
	s->d = d;
	s->now = clock_now();
	if (!d->loaded) {
		/* The first pass (or one after a lack of memory) reads every
		 * deferred envelope; what the heap held is found again. */
		s->all = 1;
		d->nretries = 0;
	} else {
		size_t cap = 0;

		while (d->nretries > 0 && d->retries[0].at <= s->now) {
			if (s->ncands == cap) {
				size_t c = cap ? cap * 2 : 64;
				void *p = realloc(s->cands,
						  c * sizeof(*s->cands));

				if (p == NULL)
					break; /* the rest at the next pass */
				s->cands = p;
				cap = c;
			}
			s->cands[s->ncands++] = d->retries[0];
			dispatch_retry_pop(d);
		}
	}
	d->scanning = 1;
	if (io_workers_submit(d->env->delivery_workers, dispatch_scan_work,
			      dispatch_scan_done, s) < 0) {
		d->scanning = 0;
		for (size_t i = 0; i < s->ncands; i++)
			dispatch_retry_push(d, s->cands[i].id, s->cands[i].at);
		free(s->cands);
		free(s);
	}
}

/* Makes sure a scan runs at at_ms (0: now) or earlier. */
static void dispatch_schedule(struct delivery_dispatch *d, int64_t at_ms)
{
	int64_t now = clock_now_ms();

	if (d->stopped)
		return;
	if (d->scan_at != 0 && io_timer_pending(d->scan_timer) &&
	    d->scan_at <= at_ms)
		return;
	d->scan_at = at_ms > now ? at_ms : now;
	io_timer_add(d->scan_timer, d->scan_at - now);
}

void delivery_dispatch_rescan(struct delivery_dispatch *d)
{
	if (d == NULL || d->stopped)
		return;
	log_info("queue rescan requested");
	dispatch_schedule(d, 0);
}

/* ---- life ---- */

struct delivery_dispatch *delivery_dispatch_new(struct env *env,
						const char **error_r)
{
	struct delivery_dispatch *d = calloc(1, sizeof(*d));
	size_t removed = 0;

	if (d == NULL) {
		*error_r = "out of memory";
		return NULL;
	}
	d->env = env;
	d->remote = remote_new(env, error_r);
	d->scan_timer = io_timer_new(env->loop, dispatch_scan_cb, d);
	if (d->remote == NULL || d->scan_timer == NULL) {
		if (d->scan_timer == NULL && d->remote != NULL)
			*error_r = "out of memory";
		remote_free(d->remote);
		io_timer_free(d->scan_timer);
		free(d);
		return NULL;
	}
	/* incoming/ leftovers go; active/ and deferred/ are picked up by
	 * the first scan, at once. */
	if (queue_recover(env->queue, NULL, NULL, &removed, error_r) < 0) {
		delivery_dispatch_free(d);
		return NULL;
	}
	dispatch_schedule(d, 0);
	return d;
}

void delivery_dispatch_stop(struct delivery_dispatch *d)
{
	if (d == NULL || d->stopped)
		return;
	d->stopped = 1;
	io_timer_del(d->scan_timer);
	/* Their jobs come back now, and their attempts are finished (what
	 * was done is recorded) on the workers before the daemon exits. */
	remote_stop(d->remote);
}

void delivery_dispatch_free(struct delivery_dispatch *d)
{
	if (d == NULL)
		return;
	delivery_dispatch_stop(d);
	/* The workers are gone: what is left will never report. */
	while (d->msgs != NULL)
		dispatch_msg_free(d->msgs);
	remote_free(d->remote);
	io_timer_free(d->scan_timer);
	free(d->retries);
	free(d);
}
