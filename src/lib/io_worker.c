/*
 * io_worker: threads for the work that must never run on the event loop:
 * password hashing, fsync, SQLite writes (DESIGN.md, "Rules of the house").
 * Finished jobs go on a list and an eventfd wakes the loop, which runs
 * their completions.
 */
#include "lib/io_worker.h"
#include "lib/io.h"
#include "lib/io_internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/event.h>

struct io_job {
	struct io_job *next;
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
	struct io_job_list todo, finished;
	int stopping;
	int nthreads;
	pthread_t *threads;
	atomic_uint pending;
	int efd;
	struct event *ev;
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
	uint64_t one = 1;

	for (;;) {
		struct io_job *j;
		int wake;

		pthread_mutex_lock(&w->lock);
		while (w->todo.head == NULL && !w->stopping)
			pthread_cond_wait(&w->cond, &w->lock);
		j = io_job_pop(&w->todo);
		pthread_mutex_unlock(&w->lock);
		if (j == NULL)
			break;
		j->work(state, j->arg);
		pthread_mutex_lock(&w->lock);
		/* The loop takes the whole list at each wakeup: a list that
		 * was not empty has a wakeup coming already (jobs finishing
		 * together, as a group commit's do, cost one). */
		wake = w->finished.head == NULL;
		io_job_push(&w->finished, j);
		pthread_mutex_unlock(&w->lock);
		if (wake && write(w->efd, &one, sizeof(one)) < 0) {
			/* The counter cannot overflow here; nothing to do. */
		}
	}
	if (w->thread_deinit != NULL)
		w->thread_deinit(state);
	return NULL;
}

/* Runs every finished job's completion on the loop thread. */
static void io_workers_complete(struct io_workers *w)
{
	struct io_job_list done;

	pthread_mutex_lock(&w->lock);
	done = w->finished;
	w->finished.head = w->finished.tail = NULL;
	pthread_mutex_unlock(&w->lock);
	for (struct io_job *j = done.head, *next; j != NULL; j = next) {
		next = j->next;
		atomic_fetch_sub(&w->pending, 1);
		if (j->done != NULL)
			j->done(j->arg);
		free(j);
	}
}

static void io_workers_event_cb(int fd, short what, void *arg)
{
	uint64_t n;

	if (read(fd, &n, sizeof(n)) < 0) {
		/* EAGAIN: another wakeup already drained it. */
	}
	io_workers_complete(arg);
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
	w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	w->threads = calloc((size_t)threads, sizeof(*w->threads));
	if (w->efd < 0 || w->threads == NULL)
		goto fail;
	w->ev = event_new(loop->base, w->efd, EV_READ | EV_PERSIST,
			  io_workers_event_cb, w);
	if (w->ev == NULL || event_add(w->ev, NULL) < 0)
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
	io_workers_complete(w);
	if (w->ev != NULL)
		event_free(w->ev);
	if (w->efd >= 0)
		close(w->efd);
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
	j->work = work;
	j->done = done;
	j->arg = arg;
	atomic_fetch_add(&w->pending, 1);
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
