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
/* Shutdown: start nothing new (what runs finishes). */
void delivery_dispatch_stop(struct delivery_dispatch *d);
void delivery_dispatch_free(struct delivery_dispatch *d);

#endif
