/* Dynamic screening: failed logins block an IP for a while; connections
 * per IP are limited in number and rate. Pure: the caller passes the time
 * and persists blocks (directory_block_put). */
#ifndef PETREL_SCREEN_H
#define PETREL_SCREEN_H

#include <stddef.h>
#include <stdint.h>

struct settings;
struct screen;

#define SCREEN_KEY_SIZE 64 /* "2001:db8:1:2::/64" and NUL */
#define SCREEN_FP_SIZE 16  /* a keyed hash of account and password */

/* The unit an IP is counted in: an IPv4 address as is, an IPv6 one as
 * its /64 ("2001:db8:1:2::/64"), an IPv4-mapped one as IPv4. */
void screen_key(const char *ip, char key[SCREEN_KEY_SIZE]);

/* A new screen with a random key for screen_fingerprint(). */
struct screen *screen_new(void);
/* The keyed hash of what a login tried (account and password): equal for
 * the same attempt, useless to anyone without the process's key. Safe
 * from any thread. */
void screen_fingerprint(const struct screen *s, const char *account,
			const char *password, size_t password_len,
			unsigned char fp[SCREEN_FP_SIZE]);
void screen_free(struct screen *s);
/* Every function here takes the screen's lock, so the loops may share it.
 * Held around a reload (clear, then load), no loop sees the blocks half
 * loaded. Recursive. */
void screen_lock(struct screen *s);
void screen_unlock(struct screen *s);

/* Blocks known to the directory: clear, then load each (key, until in
 * epoch seconds, offenses so far). Rows in the past are records that
 * make the next block longer. A block that screen_auth_failed() set and
 * that is not saved yet is neither cleared nor replaced: a reload while
 * it is being written must not lift it. */
void screen_clear_blocks(struct screen *s);
void screen_load_block(struct screen *s, const char *key, int64_t until,
		       int offenses);
/* The block of key (screen_verdict.key) is in the directory now. */
/* Returns 1 when blocks were reloaded while it was unsaved: they may have
 * changed in the directory since (an unblock), so reload them again. */
int screen_block_saved(struct screen *s, const char *key);

/* The services whose sessions are counted per IP, each against its own
 * <service>.max_sessions_per_ip as well as against the screening limits
 * of all of them together. */
enum screen_service { SCREEN_SMTP, SCREEN_POP3, SCREEN_SERVICES };

/*
 * A new connection to svc from ip at now_ms (epoch milliseconds). Returns
 * NULL and counts it (screen_disconnect() ends it), or the reason it is
 * refused (static text, for the log): <service>.max_sessions_per_ip, then,
 * for all but trusted hosts, a block ("blocked ..."),
 * screening.max_connections_per_ip, screening.max_connects_per_minute.
 * This is the one count of sessions per IP (IPv6 per /64, screen_key).
 */
const char *screen_connect(struct screen *s, const struct settings *set,
			   enum screen_service svc, const char *ip, int trusted,
			   int64_t now_ms);
void screen_disconnect(struct screen *s, enum screen_service svc,
		       const char *ip);

/* When ip is blocked: 1 with *until_r (epoch seconds). */
int screen_blocked(struct screen *s, const char *ip, int64_t now_ms,
		   int64_t *until_r);

struct screen_verdict {
	int64_t delay_ms;     /* before the failure reply: 1x, 2x, 4x ...
			     auth.fail_delay_ms, capped */
	int counted;	      /* 0: the same wrong password again */
	unsigned ip_failures; /* counted in the window */
	int blocked;	      /* this failure blocked the IP ... */
	int64_t until;	      /* ... until (epoch seconds) */
	int offenses;	      /* blocks of this IP, this one included */
	char key[SCREEN_KEY_SIZE];
	int notify; /* the account just reached screening.notify_after */
	unsigned account_failures;
};

/* A failed login from ip for account (as given; "" when none) with the
 * fingerprint of what was tried. Trusted hosts are never blocked. */
void screen_auth_failed(struct screen *s, const struct settings *set,
			const char *ip, int trusted, const char *account,
			const unsigned char fp[SCREEN_FP_SIZE], int64_t now_ms,
			struct screen_verdict *v);
/* A successful login: the IP's delays start again from the first. */
void screen_auth_ok(struct screen *s, const char *ip);

/* Forgets what no longer matters (idle IPs, old failures); call now and
 * then. */
void screen_expire(struct screen *s, const struct settings *set,
		   int64_t now_ms);

#endif
