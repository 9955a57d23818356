/* A small pool of threads for blocking work, completing on the loop. */
#ifndef PETREL_IO_WORKER_H
#define PETREL_IO_WORKER_H

struct io_loop;
struct io_workers;

/*
 * The blocking part of a job runs on a worker thread: work(state, arg),
 * where state is what thread_init returned for that thread (e.g. its own
 * database handle). done(arg) then runs on the thread of the loop that
 * submitted the job (io_loop_run() on the submitting thread), or on `loop`
 * for a job submitted from no loop. One pool serves every loop. Jobs start
 * in submission order.
 */
struct io_workers *io_workers_new(struct io_loop *loop, int threads,
				  void *(*thread_init)(void *init_arg),
				  void (*thread_deinit)(void *state),
				  void *init_arg, const char **error_r);
/* Finishes queued jobs, joins the threads, runs the last completions. */
void io_workers_free(struct io_workers *w);
/* Queues a job. Returns 0, or -1 when out of memory. */
int io_workers_submit(struct io_workers *w,
		      void (*work)(void *state, void *arg),
		      void (*done)(void *arg), void *arg);
/* Jobs queued or running. */
unsigned io_workers_pending(const struct io_workers *w);

#endif
