/*
 * io_worker: threads for the work that must never run on the event loop:
 * password hashing, fsync, SQLite writes (DESIGN.md, "Rules of the house").
 * A pool serves every loop: a finished job goes back to the loop that
 * submitted it (io_loop_push), which runs its completion; a job submitted
 * from no loop's thread completes on the pool's own loop.
 */
#include "lib/io_worker.h"
#include "lib/io.h"
#include "lib/io_internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

struct io_job {
	struct io_post post; /* first: the loop runs it as a post */
	struct io_job *next;
	struct io_workers *w;
	struct io_loop *loop; /* where done() runs */
	void (*work)(void *state, void *arg);
	void (*done)(void *arg);
	void *arg;
};

struct io_job_list {
	struct io_job *head, *tail;
};

struct io_workers {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct io_job_list todo;
	int stopping;
	int nthreads;
	pthread_t *threads;
	atomic_uint pending;
	struct io_loop *loop; /* for jobs submitted from no loop */
	void *(*thread_init)(void *);
	void (*thread_deinit)(void *);
	void *init_arg;
};

static void io_job_push(struct io_job_list *l, struct io_job *j)
{
	j->next = NULL;
	if (l->tail != NULL)
		l->tail->next = j;
	else
		l->head = j;
	l->tail = j;
}

static struct io_job *io_job_pop(struct io_job_list *l)
{
	struct io_job *j = l->head;

	if (j != NULL) {
		l->head = j->next;
		if (l->head == NULL)
			l->tail = NULL;
	}
	return j;
}

static void *io_worker_main(void *arg)
{
	struct io_workers *w = arg;
	void *state =
		w->thread_init != NULL ? w->thread_init(w->init_arg) : NULL;

	for (;;) {
		struct io_job *j;

		pthread_mutex_lock(&w->lock);
		while (w->todo.head == NULL && !w->stopping)
			pthread_cond_wait(&w->cond, &w->lock);
		j = io_job_pop(&w->todo);
		pthread_mutex_unlock(&w->lock);
		if (j == NULL)
			break;
		j->work(state, j->arg);
		io_loop_push(j->loop, &j->post);
	}
	if (w->thread_deinit != NULL)
		w->thread_deinit(state);
	return NULL;
}

/* A finished job's completion, on the loop that submitted it. */
static void io_job_complete(struct io_post *p)
{
	struct io_job *j = (struct io_job *)p;

	atomic_fetch_sub(&j->w->pending, 1);
	atomic_fetch_sub(&j->loop->pending, 1);
	if (j->done != NULL)
		j->done(j->arg);
	free(j);
}

struct io_workers *io_workers_new(struct io_loop *loop, int threads,
				  void *(*thread_init)(void *init_arg),
				  void (*thread_deinit)(void *state),
				  void *init_arg, const char **error_r)
{
	struct io_workers *w = calloc(1, sizeof(*w));

	if (w == NULL || threads < 1) {
		free(w);
		*error_r = "cannot create workers";
		return NULL;
	}
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	w->thread_init = thread_init;
	w->thread_deinit = thread_deinit;
	w->init_arg = init_arg;
	w->loop = loop;
	w->threads = calloc((size_t)threads, sizeof(*w->threads));
	if (w->threads == NULL)
		goto fail;
	for (int i = 0; i < threads; i++) {
		if (pthread_create(&w->threads[i], NULL, io_worker_main, w) !=
		    0)
			goto fail;
		w->nthreads++;
	}
	return w;
fail:
	*error_r = "cannot create worker threads";
	io_workers_free(w);
	return NULL;
}

void io_workers_free(struct io_workers *w)
{
	if (w == NULL)
		return;
	pthread_mutex_lock(&w->lock);
	w->stopping = 1;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	for (int i = 0; i < w->nthreads; i++)
		pthread_join(w->threads[i], NULL);
	/* The last completions of the jobs of this thread's loop; the other
	 * loops ran theirs before they stopped. */
	if (io_loop_current() == NULL || io_loop_current() == w->loop)
		io_loop_drain(w->loop);
	free(w->threads);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->cond);
	free(w);
}

int io_workers_submit(struct io_workers *w,
		      void (*work)(void *state, void *arg),
		      void (*done)(void *arg), void *arg)
{
	struct io_job *j = malloc(sizeof(*j));

	if (j == NULL)
		return -1;
	j->post.run = io_job_complete;
	j->w = w;
	j->loop = io_loop_current() != NULL ? io_loop_current() : w->loop;
	j->work = work;
	j->done = done;
	j->arg = arg;
	atomic_fetch_add(&w->pending, 1);
	atomic_fetch_add(&j->loop->pending, 1);
	pthread_mutex_lock(&w->lock);
	io_job_push(&w->todo, j);
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
	return 0;
}

unsigned io_workers_pending(const struct io_workers *w)
{
	return atomic_load(&w->pending);
}
