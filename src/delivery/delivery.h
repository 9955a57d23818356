/* Delivery of spooled messages. */
#ifndef PETREL_DELIVERY_H
#define PETREL_DELIVERY_H

struct queue;

/*
 * Delivers message id of the spool q to each of its pending local
 * recipients (local.h), marking each one done durably right after its
 * Maildir rename (a crash in between means at worst a second copy, never
 * none). A recipient that fails for the moment stays pending with its
 * error; one whose mailbox can not exist is marked failed. Remote
 * recipients are left pending. When no recipient at all is pending any
 * more, the spool file is removed. Messages on hold or in bad/ are left
 * alone. One line per recipient goes to the system log.
 * Returns 1 when no local recipient is pending, 0 when some are (try again
 * later), -1 on error (*error_r, valid until this thread's next call).
 * Blocking: for a worker thread.
 */
int delivery_local_run(struct queue *q, const char *data_dir,
		       const char *hostname, const char *id,
		       const char **error_r);

#endif
