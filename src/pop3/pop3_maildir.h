/* Maildir file access for POP3: scan, open for reading, expunge. Blocking:
 * called on worker threads only. */
#ifndef PETREL_POP3_MAILDIR_H
#define PETREL_POP3_MAILDIR_H

#include <stddef.h>
#include <stdint.h>

#include "pop3/pop3_mailbox.h"

/*
 * Lists new/ and cur/ of the Maildir at `maildir` into a snapshot sorted
 * in delivery order (*msgs_r, *count_r; the caller frees with
 * pop3_maildir_free). A message's size comes from the W= of its name, or
 * else from reading it. A Maildir that does not exist yet is an empty
 * mailbox. Returns 1, or -1 with *error_r (thread-local text).
 */
int pop3_maildir_scan(const char *maildir, struct pop3_msg **msgs_r,
		      size_t *count_r, const char **error_r);
/* Frees a snapshot. Accepts NULL. */
void pop3_maildir_free(struct pop3_msg *msgs, size_t count);

/*
 * Opens a message for reading. When it is no longer where the snapshot
 * saw it (another client changed its flags), it is looked up by base name
 * in cur/ and new/. With mark_seen, a message in new/ moves to cur/ with
 * the S flag, and one in cur/ gets the S flag (RFC 1939 says nothing;
 * this is what Maildir readers do with a retrieved message). name_r
 * (size bytes) gets the message's name afterwards and *in_cur_r its
 * folder. Returns the fd, or -1 with errno (ENOENT: the message is gone)
 * and *error_r set.
 */
int pop3_maildir_open(const char *maildir, const char *name, int in_cur,
		      int mark_seen, char *name_r, size_t size, int *in_cur_r,
		      const char **error_r);

/*
 * Reads up to len bytes at offset off of fd. Returns the bytes read
 * (0 at the end), or -1 with *error_r set.
 */
long pop3_maildir_read(int fd, uint64_t off, char *buf, size_t len,
		       const char **error_r);

/*
 * The UPDATE state (RFC 1939 6): removes every message of msgs[] that is
 * marked deleted. A message already gone counts as removed. Returns the
 * number that could not be removed (0: all done), with *error_r set to
 * the first failure.
 */
size_t pop3_maildir_expunge(const char *maildir, const struct pop3_msg *msgs,
			    size_t count, const char **error_r);

#endif
