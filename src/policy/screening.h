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

/* Loads the blocks of the directory into env->screen (at start, and when
 * the directory changed: petrelctl screening unblock). */
void screening_reload(struct env *env);

#endif
