/* Shared between src/lib/io*.c only. */
#ifndef PETREL_IO_INTERNAL_H
#define PETREL_IO_INTERNAL_H

struct event_base;

struct io_loop {
	struct event_base *base;
};

#endif
