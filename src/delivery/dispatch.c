/*
 * dispatch: hands spooled messages to local delivery on the worker threads,
 * one job per message, and retries the ones whose local recipients could
 * not all be served (a full disk, a broken mailbox) after a pause. At start
 * it recovers the spool and picks up what a crash left in the active queue.
 */
#include "delivery/dispatch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "delivery/delivery.h"
#include "lib/config.h"
#include "lib/env.h"
#include "lib/io.h"
#include "lib/io_worker.h"
#include "lib/log.h"
#include "queue/queue.h"

#define DISPATCH_RETRY_MS (60 * 1000)

struct dispatch_job {
	struct delivery_dispatch *d;
	char id[64];
	int result;
	char error[256];
	struct io_timer *retry;		  /* set while waiting to retry */
	struct dispatch_job *prev, *next; /* on the list of live jobs */
};

struct delivery_dispatch {
	struct env *env;
	int stopped;
	/* Every job running or waiting to retry: a message is never handed
	 * out twice at once. */
	struct dispatch_job *jobs;
	size_t njobs;
};

static void dispatch_submit(struct delivery_dispatch *d,
			    struct dispatch_job *j);

static void dispatch_work(void *thread_state, void *arg)
{
	struct dispatch_job *j = arg;
	const struct config *cfg = j->d->env->cfg;
	const char *err = NULL;

	j->result = delivery_local_run(j->d->env->queue, cfg->data_dir,
				       cfg->hostname, j->id, &err);
	snprintf(j->error, sizeof(j->error), "%s", err != NULL ? err : "");
}

static void dispatch_link(struct delivery_dispatch *d, struct dispatch_job *j)
{
	j->prev = NULL;
	j->next = d->jobs;
	if (d->jobs != NULL)
		d->jobs->prev = j;
	d->jobs = j;
	d->njobs++;
}

/* Unlinks and frees j. */
static void dispatch_job_free(struct dispatch_job *j)
{
	struct delivery_dispatch *d = j->d;

	if (j->prev != NULL)
		j->prev->next = j->next;
	else
		d->jobs = j->next;
	if (j->next != NULL)
		j->next->prev = j->prev;
	d->njobs--;
	io_timer_free(j->retry);
	free(j);
}

static void dispatch_retry_cb(void *arg)
{
	struct dispatch_job *j = arg;

	io_timer_free(j->retry);
	j->retry = NULL;
	dispatch_submit(j->d, j);
}

static void dispatch_done(void *arg)
{
	struct dispatch_job *j = arg;
	struct delivery_dispatch *d = j->d;

	if (j->result == 1 || d->stopped) {
		dispatch_job_free(j);
		return;
	}
	/* Some local recipient is still pending (or an error): retry. */
	log_warn("delivery of %s incomplete (%s), retrying in %d s", j->id,
		 j->error[0] != '\0' ? j->error : "recipients pending",
		 DISPATCH_RETRY_MS / 1000);
	j->retry = io_timer_new(d->env->loop, dispatch_retry_cb, j);
	if (j->retry == NULL) {
		dispatch_job_free(j);
		return;
	}
	io_timer_add(j->retry, DISPATCH_RETRY_MS);
}

static void dispatch_submit(struct delivery_dispatch *d, struct dispatch_job *j)
{
	if (d->stopped || io_workers_submit(d->env->workers, dispatch_work,
					    dispatch_done, j) < 0)
		dispatch_job_free(j);
}

void delivery_dispatch_add(struct delivery_dispatch *d, const char *id)
{
	struct dispatch_job *j;

	if (d == NULL || d->stopped)
		return;
	j = calloc(1, sizeof(*j));
	if (j == NULL)
		return;
	j->d = d;
	snprintf(j->id, sizeof(j->id), "%s", id);
	dispatch_link(d, j);
	dispatch_submit(d, j);
}

static int dispatch_scan_cb(void *ctx, const char *id)
{
	delivery_dispatch_add(ctx, id);
	return 0;
}

static int dispatch_id_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

struct dispatch_rescan {
	struct delivery_dispatch *d;
	char **busy; /* sorted ids of the live jobs */
	size_t nbusy;
	size_t added;
};

static int dispatch_rescan_cb(void *ctx, const char *id)
{
	struct dispatch_rescan *r = ctx;
	const char *key = id;

	if (r->nbusy > 0 && bsearch(&key, r->busy, r->nbusy, sizeof(char *),
				    dispatch_id_cmp) != NULL)
		return 0;
	delivery_dispatch_add(r->d, id);
	r->added++;
	return 0;
}

void delivery_dispatch_rescan(struct delivery_dispatch *d)
{
	struct dispatch_rescan r = {.d = d};
	const char *err;
	size_t i = 0;

	if (d == NULL || d->stopped)
		return;
	/* Those waiting to retry go now: the admin asked for it. */
	for (struct dispatch_job *j = d->jobs; j != NULL; j = j->next) {
		if (j->retry == NULL)
			continue;
		io_timer_free(j->retry);
		j->retry = NULL;
		if (io_workers_submit(d->env->workers, dispatch_work,
				      dispatch_done, j) < 0) {
			/* Left for the next rescan. */
			j->retry = io_timer_new(d->env->loop, dispatch_retry_cb,
						j);
			if (j->retry != NULL)
				io_timer_add(j->retry, DISPATCH_RETRY_MS);
		}
	}
	if (d->njobs > 0) {
		r.busy = calloc(d->njobs, sizeof(char *));
		if (r.busy == NULL) {
			log_error("queue rescan: out of memory");
			return;
		}
		for (struct dispatch_job *j = d->jobs; j != NULL; j = j->next)
			r.busy[i++] = j->id;
		r.nbusy = i;
		qsort(r.busy, r.nbusy, sizeof(char *), dispatch_id_cmp);
	}
	if (queue_scan(d->env->queue, QUEUE_ACTIVE, dispatch_rescan_cb, &r,
		       &err) < 0)
		log_error("queue rescan: %s", err);
	else
		log_info("queue rescan: %zu message(s) picked up", r.added);
	free(r.busy);
}

struct delivery_dispatch *delivery_dispatch_new(struct env *env,
						const char **error_r)
{
	struct delivery_dispatch *d = calloc(1, sizeof(*d));

	if (d == NULL) {
		*error_r = "out of memory";
		return NULL;
	}
	d->env = env;
	if (queue_recover(env->queue, dispatch_scan_cb, d, NULL, error_r) < 0) {
		free(d);
		return NULL;
	}
	return d;
}

void delivery_dispatch_stop(struct delivery_dispatch *d)
{
	if (d == NULL)
		return;
	d->stopped = 1;
	/* Jobs waiting to retry go now; running ones free themselves when
	 * their worker reports. */
	for (struct dispatch_job *j = d->jobs, *next; j != NULL; j = next) {
		next = j->next;
		if (j->retry != NULL)
			dispatch_job_free(j);
	}
}

void delivery_dispatch_free(struct delivery_dispatch *d)
{
	if (d == NULL)
		return;
	delivery_dispatch_stop(d);
	/* The workers are gone: what is left will never report. */
	while (d->jobs != NULL)
		dispatch_job_free(d->jobs);
	free(d);
}
