/* Runs local delivery of spooled messages on the workers, with retries. */
#ifndef PETREL_DISPATCH_H
#define PETREL_DISPATCH_H

struct env;
struct delivery_dispatch;

/* Recovers the spool (leftovers of a crash) and schedules every message
 * waiting in the active queue. NULL on error with *error_r set. */
struct delivery_dispatch *delivery_dispatch_new(struct env *env,
						const char **error_r);
/* A message was committed: deliver its local recipients. */
void delivery_dispatch_add(struct delivery_dispatch *d, const char *id);
/* Retries at once the messages waiting to retry, and schedules every
 * message of the active queue not already being delivered (after
 * petrelctl released or retried some: SIGUSR1). */
void delivery_dispatch_rescan(struct delivery_dispatch *d);
/* Shutdown: start nothing new (what runs finishes). */
void delivery_dispatch_stop(struct delivery_dispatch *d);
void delivery_dispatch_free(struct delivery_dispatch *d);

#endif
