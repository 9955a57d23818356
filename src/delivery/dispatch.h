/* The queue manager: schedules every spooled message for delivery. */
#ifndef PETREL_DISPATCH_H
#define PETREL_DISPATCH_H

struct env;
struct delivery_dispatch;

/* Recovers the spool (leftovers of a crash), then schedules every message
 * of the active queue and every deferred one at its retry time. Starts
 * remote delivery (remote.h). NULL on error with *error_r set. */
struct delivery_dispatch *delivery_dispatch_new(struct env *env,
						const char **error_r);
/* A message was committed: deliver it now. */
void delivery_dispatch_add(struct delivery_dispatch *d, const char *id);
/* Looks at the queues again now: deferred messages whose time has come
 * and every message of the active queue not being delivered (after
 * petrelctl released, retried or bounced some: SIGUSR1). */
void delivery_dispatch_rescan(struct delivery_dispatch *d);
/* Shutdown: start nothing new; outgoing connections close now, and what
 * they had not finished stays in active/ for the next start. */
void delivery_dispatch_stop(struct delivery_dispatch *d);
void delivery_dispatch_free(struct delivery_dispatch *d);

#endif
