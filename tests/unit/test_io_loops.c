/* Several event loops and one worker pool: a job completes on the loop
 * that submitted it, posts run on their loop in order, and the pending
 * counts say when a loop may stop. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/io.h"
#include "lib/io_worker.h"

#define LOOPS 3
#define JOBS 200

struct loop_thread {
	struct io_loop *loop;
	pthread_t thread;
	pthread_t self; /* the thread's id, seen from inside */
	struct io_workers *w;
	atomic_int done;    /* completions run here */
	atomic_int foreign; /* completions of other loops' jobs run here */
	atomic_int posts;   /* posts run here */
	int order_ok;	    /* the posts ran in the order posted */
	int next_post;
	struct io_timer *stop;
};

struct job {
	struct loop_thread *owner;
	atomic_int *worked;
};

static void job_work(void *state, void *arg)
{
	struct job *j = arg;

	(void)state;
	atomic_fetch_add(j->worked, 1);
}

static void job_done(void *arg)
{
	struct job *j = arg;

	if (pthread_equal(pthread_self(), j->owner->self))
		atomic_fetch_add(&j->owner->done, 1);
	else
		atomic_fetch_add(&j->owner->foreign, 1);
	free(j);
}

static atomic_int worked;

/* Submits JOBS jobs from the loop's own thread, at its first turn. */
static void submit_all(void *arg)
{
	struct loop_thread *t = arg;

	for (int i = 0; i < JOBS; i++) {
		struct job *j = malloc(sizeof(*j));

		assert_non_null(j);
		j->owner = t;
		j->worked = &worked;
		assert_int_equal(io_workers_submit(t->w, job_work, job_done, j),
				 0);
	}
}

static void stop_when_idle(void *arg)
{
	struct loop_thread *t = arg;

	if (io_loop_pending(t->loop) == 0 && atomic_load(&t->done) == JOBS) {
		io_loop_exit(t->loop);
		return;
	}
	io_timer_add(t->stop, 5);
}

static void *loop_main(void *arg)
{
	struct loop_thread *t = arg;

	t->self = pthread_self();
	io_loop_run(t->loop);
	return NULL;
}

struct post {
	struct loop_thread *t;
	int n;
};

static void post_run(void *arg)
{
	struct post *p = arg;

	if (!pthread_equal(pthread_self(), p->t->self) ||
	    p->n != p->t->next_post)
		p->t->order_ok = 0;
	p->t->next_post++;
	atomic_fetch_add(&p->t->posts, 1);
	free(p);
}

static void test_jobs_complete_where_submitted(void **state)
{
	struct loop_thread t[LOOPS];
	struct io_loop *main_loop = io_loop_new();
	struct io_workers *w;
	const char *err;

	(void)state;
	assert_non_null(main_loop);
	w = io_workers_new(main_loop, 4, NULL, NULL, NULL, &err);
	assert_non_null(w);
	atomic_store(&worked, 0);
	for (int i = 0; i < LOOPS; i++) {
		t[i].loop = io_loop_new();
		assert_non_null(t[i].loop);
		t[i].w = w;
		atomic_init(&t[i].done, 0);
		atomic_init(&t[i].foreign, 0);
		atomic_init(&t[i].posts, 0);
		t[i].order_ok = 1;
		t[i].next_post = 0;
		t[i].stop = io_timer_new(t[i].loop, stop_when_idle, &t[i]);
		assert_non_null(t[i].stop);
		/* Posted before the thread runs: waits for its first turn. */
		assert_int_equal(io_loop_post(t[i].loop, submit_all, &t[i]), 0);
		assert_int_equal(io_loop_pending(t[i].loop), 1);
		io_timer_add(t[i].stop, 5);
		assert_int_equal(
			pthread_create(&t[i].thread, NULL, loop_main, &t[i]),
			0);
	}
	/* Posts from this thread (not a loop's): run on their loop, in
	 * order. */
	for (int n = 0; n < 100; n++) {
		for (int i = 0; i < LOOPS; i++) {
			struct post *p = malloc(sizeof(*p));

			assert_non_null(p);
			p->t = &t[i];
			p->n = n;
			assert_int_equal(io_loop_post(t[i].loop, post_run, p),
					 0);
		}
	}
	for (int i = 0; i < LOOPS; i++)
		assert_int_equal(pthread_join(t[i].thread, NULL), 0);
	for (int i = 0; i < LOOPS; i++) {
		/* Every job completed on its own loop, none elsewhere. */
		assert_int_equal(atomic_load(&t[i].done), JOBS);
		assert_int_equal(atomic_load(&t[i].foreign), 0);
		assert_int_equal(io_loop_pending(t[i].loop), 0);
		/* Posts may still be waiting if the loop stopped first:
		 * drained here, as its thread would. */
		t[i].self = pthread_self();
		io_loop_drain(t[i].loop);
		assert_int_equal(atomic_load(&t[i].posts), 100);
		assert_true(t[i].order_ok);
	}
	assert_int_equal(atomic_load(&worked), LOOPS * JOBS);
	assert_int_equal(io_workers_pending(w), 0);
	io_workers_free(w);
	for (int i = 0; i < LOOPS; i++) {
		io_timer_free(t[i].stop);
		io_loop_free(t[i].loop);
	}
	io_loop_free(main_loop);
}

static atomic_int outside_done;

static void outside_job_done(void *arg)
{
	(void)arg;
	atomic_fetch_add(&outside_done, 1);
}

/* A job submitted from no loop's thread completes on the pool's loop;
 * freeing the pool runs what is left. */
static void test_job_from_no_loop_completes_on_the_pool_loop(void **state)
{
	struct io_loop *loop = io_loop_new();
	struct io_workers *w;
	struct job js[10];
	const char *err;

	(void)state;
	assert_non_null(loop);
	w = io_workers_new(loop, 2, NULL, NULL, NULL, &err);
	assert_non_null(w);
	atomic_store(&worked, 0);
	atomic_store(&outside_done, 0);
	for (int i = 0; i < 10; i++) {
		js[i].owner = NULL;
		js[i].worked = &worked;
		assert_int_equal(io_workers_submit(w, job_work,
						   outside_job_done, &js[i]),
				 0);
	}
	/* Nothing runs the loop: the completions wait for it. */
	assert_int_equal(io_loop_pending(loop), 10);
	io_workers_free(w);
	assert_int_equal(atomic_load(&outside_done), 10);
	assert_int_equal(io_loop_pending(loop), 0);
	io_loop_free(loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_jobs_complete_where_submitted),
		cmocka_unit_test(
			test_job_from_no_loop_completes_on_the_pool_loop),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
