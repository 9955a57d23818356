/* Shared between src/lib/io*.c only. */
#ifndef PETREL_IO_INTERNAL_H
#define PETREL_IO_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

struct event;
struct event_base;

/* Something handed to a loop from any thread: run(p) on the loop's thread,
 * which frees p. */
struct io_post {
	struct io_post *next;
	void (*run)(struct io_post *p);
};

struct io_loop {
	struct event_base *base;
	/* Posted work and finished worker jobs, run in order at the next
	 * turn; an eventfd wakes the loop when the list stops being empty. */
	pthread_mutex_t lock;
	struct io_post *head, *tail;
	int efd;
	struct event *ev;
	/* Posts not yet run, worker jobs submitted here and not completed. */
	atomic_uint pending;
};

/* Hands p to loop's thread. Any thread. */
void io_loop_push(struct io_loop *loop, struct io_post *p);
/* The loop that io_loop_run() runs on this thread, or NULL. */
struct io_loop *io_loop_current(void);

#endif
