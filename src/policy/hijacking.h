/*
 * The daemon's side of hijack detection: the windows of every account
 * (policy/hijack.c) kept in the directory across restarts, the freeze
 * (account state, held queue, alert to the postmaster) and the
 * re-activation by a reply to the alert.
 */
#ifndef PETREL_HIJACKING_H
#define PETREL_HIJACKING_H

#include <stddef.h>
#include <stdint.h>

#include "policy/hijack.h"

struct env;

/* Loads the windows from the directory (start-up). 0, or -1 with
 * *error_r. */
int hijacking_start(struct env *env, const char **error_r);
/* Writes what is not yet in the directory, and frees (shutdown). */
void hijacking_stop(struct env *env);
/* The directory changed (an administrator's change): accounts frozen here
 * that petrelctl re-activated get a fresh window. */
void hijacking_reload(struct env *env);
/* Every poll tick: records the new sends and logins in the directory (one
 * transaction on a worker), and now and then forgets old ones. */
void hijacking_tick(struct env *env, int64_t now_ms);

/* A successful SMTP login of account from ip. */
void hijacking_login(struct env *env, const char *account, const char *ip,
		     int64_t now_ms);
/*
 * Judges a message that account is about to send (ev: ip, rcpts,
 * subject, domains filled; time and private_ip are set here). HIJACK_OK
 * also when detection is off or the account is exempt; then ev->time is 0
 * when nothing was counted. On HIJACK_OK with ev->time set, the caller
 * calls hijacking_sent() once the message is accepted, or
 * hijacking_unsend() when it is not.
 */
enum hijack_result hijacking_check(struct env *env, const char *account,
				   struct hijack_event *ev, int64_t now_ms,
				   struct hijack_tally *t_r);
void hijacking_sent(struct env *env, const char *account,
		    const struct hijack_event *ev);
void hijacking_unsend(struct env *env, const char *account,
		      const struct hijack_event *ev);
/* Is account frozen (here, before the directory may know it)? */
int hijacking_frozen(struct env *env, const char *account);

/*
 * Freezes account now (it crossed a limit): from here on nothing of it is
 * accepted; then, on a worker, its state in the directory, its queued
 * messages moved to hold, the security event, and the alert to the
 * postmaster of its domain and hijack.notify.
 */
void hijacking_freeze(struct env *env, const char *session, const char *account,
		      const char *ip, enum hijack_result why,
		      const struct hijack_tally *t);
/* Moves a message of a frozen account that was committed while it was
 * being frozen to hold (on a worker). */
void hijacking_hold(struct env *env, const char *queue_id, const char *account);

/*
 * A reply to an alert, from the authenticated account `replier`, with the
 * token and domain of its recipient and `word`, the first word of its
 * text. On a worker: checks and uses the token, re-activates the account,
 * releases or deletes its held mail (release / delete), confirms to the
 * replier. done(arg, ok, text) runs on the loop with the outcome (text
 * for the SMTP reply and the log).
 */
int hijacking_reply(struct env *env, const char *session, const char *replier,
		    const char *token, const char *domain, const char *word,
		    void (*done)(void *arg, int ok, const char *text),
		    void *arg);

#endif
