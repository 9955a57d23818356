/* Local delivery: one message into one account's Maildir. */
#ifndef PETREL_LOCAL_H
#define PETREL_LOCAL_H

#include <stddef.h>
#include <stdint.h>

/* What local_deliver() needs; every string is the caller's. */
struct local_delivery {
	const char *data_dir;  /* mailboxes are under <data_dir>/mail/ */
	const char *hostname;  /* last part of the Maildir file name */
	const char *account;   /* the mailbox's account address */
	const char *sender;    /* Return-Path; "" for the null sender <> */
	const char *recipient; /* Delivered-To */
	int body_fd;	       /* the message (CRLF), read with pread() */
	uint64_t body_offset;
	uint64_t body_len;
};

/*
 * Writes "<data_dir>/mail/<domain>/<localpart>/Maildir" for an account
 * address "localpart@domain" (lower-cased) into path_r. Parts that could
 * leave the mail folder ("", ".", "..", a leading dot, '/', control
 * characters) are refused. Returns 1, or 0 for an address that can not
 * name a mailbox (or a path that does not fit).
 */
int local_maildir_path(const char *data_dir, const char *account, char *path_r,
		       size_t size);

/*
 * Delivers d's message by the Maildir protocol: a new file in tmp/ with
 * "Return-Path: <sender>" and "Delivered-To: <recipient>" first and every
 * CRLF turned into LF, fsync(), rename into new/ as
 * "<secs>.M<usecs>P<pid>Q<n>.<host>,S=<size>,W=<size with CRLF>", fsync()
 * of new/. Folders are made as needed (mode 0700; files 0600). The message
 * is streamed in chunks, never held whole in memory.
 * Returns 1 when delivered (*path_r, when not NULL, gets the new file's
 * path relative to data_dir), 0 when the account can not be delivered to
 * (for good), -1 on a temporary error. *error_r is set on 0 and -1 and
 * stays valid until this thread's next call here.
 */
int local_deliver(const struct local_delivery *d, char *path_r,
		  size_t path_size, const char **error_r);

#endif
