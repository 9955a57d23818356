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
	struct io_timer *retry;
	struct dispatch_job *next; /* on the retry list */
};

struct delivery_dispatch {
	struct env *env;
	int stopped;
	struct dispatch_job *retries;
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

static void dispatch_unlink_retry(struct delivery_dispatch *d,
				  struct dispatch_job *j)
{
	for (struct dispatch_job **pp = &d->retries; *pp != NULL;
	     pp = &(*pp)->next) {
		if (*pp == j) {
			*pp = j->next;
			return;
		}
	}
}

static void dispatch_retry_cb(void *arg)
{
	struct dispatch_job *j = arg;

	dispatch_unlink_retry(j->d, j);
	io_timer_free(j->retry);
	j->retry = NULL;
	dispatch_submit(j->d, j);
}

static void dispatch_done(void *arg)
{
	struct dispatch_job *j = arg;
	struct delivery_dispatch *d = j->d;

	if (j->result == 1 || d->stopped) {
		free(j);
		return;
	}
	/* Some local recipient is still pending (or an error): retry. */
	log_warn("delivery of %s incomplete (%s), retrying in %d s", j->id,
		 j->error[0] != '\0' ? j->error : "recipients pending",
		 DISPATCH_RETRY_MS / 1000);
	j->retry = io_timer_new(d->env->loop, dispatch_retry_cb, j);
	if (j->retry == NULL) {
		free(j);
		return;
	}
	j->next = d->retries;
	d->retries = j;
	io_timer_add(j->retry, DISPATCH_RETRY_MS);
}

static void dispatch_submit(struct delivery_dispatch *d, struct dispatch_job *j)
{
	if (d->stopped || io_workers_submit(d->env->workers, dispatch_work,
					    dispatch_done, j) < 0)
		free(j);
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
	dispatch_submit(d, j);
}

static int dispatch_scan_cb(void *ctx, const char *id)
{
	delivery_dispatch_add(ctx, id);
	return 0;
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
	while (d->retries != NULL) {
		struct dispatch_job *j = d->retries;
		d->retries = j->next;
		io_timer_free(j->retry);
		free(j);
	}
}

void delivery_dispatch_free(struct delivery_dispatch *d)
{
	if (d == NULL)
		return;
	delivery_dispatch_stop(d);
	free(d);
}
