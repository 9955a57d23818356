/* The daemon's side of screening: counting a failed login on any service,
 * logging it, keeping blocks in the directory, reloading them. */
#ifndef PETREL_SCREENING_H
#define PETREL_SCREENING_H

#include <stdint.h>

#include "policy/screen.h"

struct env;

/*
 * A failed login (SMTP AUTH, POP3 PASS/AUTH) from ip for account (as the
 * client gave it). Counts it (policy/screen.c), writes the security log
 * line of a new block and records it in the directory (on a worker), and
 * returns the delay to wait before the failure reply. *blocked_r: the IP
 * is blocked from now: end the session after the reply.
 */
int64_t screening_auth_failed(struct env *env, const char *service,
			      const char *session, const char *ip, int trusted,
			      const char *account,
			      const unsigned char fp[SCREEN_FP_SIZE],
			      int *blocked_r);

struct env_thread;
struct directory_account;

/*
 * The blocking half of a login, for SMTP AUTH and POP3 alike, on a worker
 * thread: checks user and pass in the directory (t's handle), records the
 * login time or the failure as a security event, and for a failure writes
 * the fingerprint screening counts it by into fp_r. Wipes pass. Returns
 * as directory_account_verify() (-1 without a directory handle), with
 * *account_r and *reason_r.
 */
int screening_login_check(struct env_thread *t, const struct screen *screen,
			  const char *user, char *pass, size_t pass_size,
			  const char *ip, int64_t now,
			  struct directory_account *account_r,
			  const char **reason_r,
			  unsigned char fp_r[SCREEN_FP_SIZE]);

/* Loads the blocks of the directory into env->screen (at start, and when
 * the directory changed: petrelctl screening unblock). */
void screening_reload(struct env *env);

#endif
