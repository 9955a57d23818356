/*
 * screen: per-IP state for dynamic screening (REFERENCE.md, "Dynamic
 * screening"), kept in two small hash tables (IPs and accounts) on the
 * loop thread:
 *  - concurrent connections (per service and in all; the servers' only
 *    count per IP) and a token bucket for connects per minute;
 *  - failed logins in a sliding window, each with the fingerprint of what
 *    was tried, so that one old password retried by a phone counts once;
 *  - blocks (loaded from the directory, which keeps them across
 *    restarts), each one twice as long as the one before, up to a day.
 * Pure: times come from the caller.
 */
#include "policy/screen.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "directory/settings.h"

#define SCREEN_BUCKETS 4096
#define SCREEN_FAILS_MAX 64  /* distinct failures kept per IP */
#define SCREEN_DELAY_STEPS 5 /* delays double 5 times: 1x .. 16x */
#define SCREEN_DELAY_MAX_MS 30000
#define SCREEN_BLOCK_MAX_MIN 1440
#define SCREEN_ACCOUNT_MAX 320

struct screen_fail {
	int64_t t; /* ms */
	unsigned char fp[SCREEN_FP_SIZE];
};

struct screen_ip {
	char key[SCREEN_KEY_SIZE];
	unsigned conns;			     /* all services */
	unsigned svc_conns[SCREEN_SERVICES]; /* of each */
	double tokens;
	int64_t refill_ms;	   /* 0: the bucket was never used */
	struct screen_fail *fails; /* ring, SCREEN_FAILS_MAX, lazily */
	unsigned nfails, next_fail;
	unsigned consecutive; /* failures since the last success */
	int64_t last_fail_ms;
	int64_t block_until; /* epoch seconds */
	int offenses;
	int unsaved; /* blocked here, not yet in the directory */
	int stale;   /* blocks were reloaded meanwhile, without this one */
	struct screen_ip *next;
};

struct screen_account {
	char name[SCREEN_ACCOUNT_MAX];
	int64_t window_start; /* ms */
	unsigned count;
	int notified;
	struct screen_account *next;
};

/* The per-IP limit of each service, and its refusal. */
static const struct {
	enum settings_id max_per_ip;
	const char *reached;
} screen_services[SCREEN_SERVICES] = {
	[SCREEN_SMTP] = {SETTING_SMTP_MAX_SESSIONS_PER_IP,
			 "smtp.max_sessions_per_ip reached"},
	[SCREEN_POP3] = {SETTING_POP3_MAX_SESSIONS_PER_IP,
			 "pop3.max_sessions_per_ip reached"},
};

struct screen {
	/* Recursive: a reload holds it across screen_clear_blocks() and
	 * the screen_load_block() calls that follow (screen_lock()). */
	pthread_mutex_t lock;
	unsigned char key[crypto_generichash_KEYBYTES];
	struct screen_ip *ips[SCREEN_BUCKETS];
	struct screen_account *accounts[SCREEN_BUCKETS];
};

static unsigned screen_hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)(*s >= 'A' && *s <= 'Z' ? *s + 32 : *s);
		h *= 16777619u;
	}
	return h % SCREEN_BUCKETS;
}

void screen_key(const char *ip, char key[SCREEN_KEY_SIZE])
{
	unsigned char a[16];
	static const unsigned char mapped[12] = {0, 0, 0, 0, 0,	   0,
						 0, 0, 0, 0, 0xff, 0xff};

	if (inet_pton(AF_INET6, ip, a) == 1) {
		char text[INET6_ADDRSTRLEN];

		if (memcmp(a, mapped, sizeof(mapped)) == 0) {
			inet_ntop(AF_INET, a + 12, key, SCREEN_KEY_SIZE);
			return;
		}
		memset(a + 8, 0, 8);
		inet_ntop(AF_INET6, a, text, sizeof(text));
		snprintf(key, SCREEN_KEY_SIZE, "%s/64", text);
		return;
	}
	snprintf(key, SCREEN_KEY_SIZE, "%s", ip);
}

struct screen *screen_new(void)
{
	struct screen *s = calloc(1, sizeof(struct screen));
	pthread_mutexattr_t attr;

	if (s == NULL)
		return NULL;
	randombytes_buf(s->key, sizeof(s->key));
	pthread_mutexattr_init(&attr);
	pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&s->lock, &attr);
	pthread_mutexattr_destroy(&attr);
	return s;
}

void screen_lock(struct screen *s)
{
	pthread_mutex_lock(&s->lock);
}

void screen_unlock(struct screen *s)
{
	pthread_mutex_unlock(&s->lock);
}

void screen_fingerprint(const struct screen *s, const char *account,
			const char *password, size_t password_len,
			unsigned char fp[SCREEN_FP_SIZE])
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, s->key, sizeof(s->key), SCREEN_FP_SIZE);
	crypto_generichash_update(&st, (const unsigned char *)account,
				  strlen(account) + 1);
	crypto_generichash_update(&st, (const unsigned char *)password,
				  password_len);
	crypto_generichash_final(&st, fp, SCREEN_FP_SIZE);
	sodium_memzero(&st, sizeof(st));
}

void screen_free(struct screen *s)
{
	if (s == NULL)
		return;
	sodium_memzero(s->key, sizeof(s->key));
	for (size_t i = 0; i < SCREEN_BUCKETS; i++) {
		while (s->ips[i] != NULL) {
			struct screen_ip *e = s->ips[i];
			s->ips[i] = e->next;
			free(e->fails);
			free(e);
		}
		while (s->accounts[i] != NULL) {
			struct screen_account *a = s->accounts[i];
			s->accounts[i] = a->next;
			free(a);
		}
	}
	pthread_mutex_destroy(&s->lock);
	free(s);
}

/* The entry of a key; created when create. NULL when absent (or out of
 * memory). */
static struct screen_ip *screen_ip_get(struct screen *s, const char *key,
				       int create)
{
	unsigned h = screen_hash(key);
	struct screen_ip *e;

	for (e = s->ips[h]; e != NULL; e = e->next)
		if (strcmp(e->key, key) == 0)
			return e;
	if (!create)
		return NULL;
	e = calloc(1, sizeof(*e));
	if (e == NULL)
		return NULL;
	snprintf(e->key, sizeof(e->key), "%s", key);
	e->next = s->ips[h];
	s->ips[h] = e;
	return e;
}

static void screen_clear_blocks_locked(struct screen *s)
{
	for (size_t i = 0; i < SCREEN_BUCKETS; i++)
		for (struct screen_ip *e = s->ips[i]; e != NULL; e = e->next) {
			if (e->unsaved) {
				e->stale = 1;
				continue;
			}
			e->block_until = 0;
			e->offenses = 0;
		}
}

static void screen_load_block_locked(struct screen *s, const char *key,
				     int64_t until, int offenses)
{
	struct screen_ip *e = screen_ip_get(s, key, 1);

	if (e == NULL || e->unsaved)
		return;
	e->block_until = until;
	e->offenses = offenses;
}

static int screen_block_saved_locked(struct screen *s, const char *key)
{
	struct screen_ip *e = screen_ip_get(s, key, 0);
	int stale = 0;

	if (e != NULL) {
		stale = e->stale;
		e->unsaved = 0;
		e->stale = 0;
	}
	return stale;
}

static int screen_blocked_locked(struct screen *s, const char *ip,
				 int64_t now_ms, int64_t *until_r)
{
	char key[SCREEN_KEY_SIZE];
	struct screen_ip *e;

	screen_key(ip, key);
	e = screen_ip_get(s, key, 0);
	if (e == NULL || e->block_until * 1000 <= now_ms)
		return 0;
	*until_r = e->block_until;
	return 1;
}

static const char *screen_connect_locked(struct screen *s,
					 const struct settings *set,
					 enum screen_service svc,
					 const char *ip, int trusted,
					 int64_t now_ms)
{
	char key[SCREEN_KEY_SIZE];
	struct screen_ip *e;
	int64_t rate =
		settings_int(set, SETTING_SCREENING_MAX_CONNECTS_PER_MINUTE);

	screen_key(ip, key);
	e = screen_ip_get(s, key, 1);
	if (e == NULL)
		return "out of memory";
	/* The service's own limit holds for trusted hosts too. */
	if (e->svc_conns[svc] >=
	    (unsigned)settings_int(set, screen_services[svc].max_per_ip))
		return screen_services[svc].reached;
	if (!trusted) {
		if (e->block_until * 1000 > now_ms)
			return "blocked by failed-login screening";
		if (e->conns >=
		    (unsigned)settings_int(
			    set, SETTING_SCREENING_MAX_CONNECTIONS_PER_IP))
			return "screening.max_connections_per_ip reached";
		if (rate > 0) {
			/* A bucket of `rate` tokens, refilled at rate per
			 * minute: bursts up to the limit, never more than
			 * the limit in any minute after the first. */
			if (e->refill_ms == 0) {
				e->tokens = (double)rate;
			} else if (now_ms > e->refill_ms) {
				e->tokens += (double)(now_ms - e->refill_ms) *
					     (double)rate / 60000.0;
				if (e->tokens > (double)rate)
					e->tokens = (double)rate;
			}
			e->refill_ms = now_ms;
			if (e->tokens < 1.0)
				return "screening.max_connects_per_minute "
				       "reached";
			e->tokens -= 1.0;
		}
	}
	e->conns++;
	e->svc_conns[svc]++;
	return NULL;
}

static void screen_disconnect_locked(struct screen *s, enum screen_service svc,
				     const char *ip)
{
	char key[SCREEN_KEY_SIZE];
	struct screen_ip *e;

	screen_key(ip, key);
	e = screen_ip_get(s, key, 0);
	if (e == NULL || e->svc_conns[svc] == 0)
		return;
	e->svc_conns[svc]--;
	e->conns--;
}

static struct screen_account *screen_account_get(struct screen *s,
						 const char *name)
{
	unsigned h = screen_hash(name);
	struct screen_account *a;

	for (a = s->accounts[h]; a != NULL; a = a->next)
		if (strcasecmp(a->name, name) == 0)
			return a;
	a = calloc(1, sizeof(*a));
	if (a == NULL)
		return NULL;
	snprintf(a->name, sizeof(a->name), "%s", name);
	a->next = s->accounts[h];
	s->accounts[h] = a;
	return a;
}

static void screen_auth_failed_locked(struct screen *s,
				      const struct settings *set,
				      const char *ip, int trusted,
				      const char *account,
				      const unsigned char fp[SCREEN_FP_SIZE],
				      int64_t now_ms, struct screen_verdict *v)
{
	int64_t window =
		settings_int(set, SETTING_SCREENING_AUTH_MINUTES) * 60000;
	int64_t limit = settings_int(set, SETTING_SCREENING_AUTH_FAILURES);
	int64_t base = settings_int(set, SETTING_AUTH_FAIL_DELAY_MS);
	int64_t notify = settings_int(set, SETTING_SCREENING_NOTIFY_AFTER);
	struct screen_ip *e;
	unsigned steps;

	memset(v, 0, sizeof(*v));
	screen_key(ip, v->key);
	v->delay_ms = base;
	e = screen_ip_get(s, v->key, 1);
	if (e == NULL)
		return;
	/* The delay grows with each failure in a row (in the window): 1x,
	 * 2x, 4x ... */
	if (now_ms - e->last_fail_ms >= window)
		e->consecutive = 0;
	e->last_fail_ms = now_ms;
	steps = e->consecutive < SCREEN_DELAY_STEPS ? e->consecutive
						    : SCREEN_DELAY_STEPS - 1;
	e->consecutive++;
	v->delay_ms = base << steps;
	if (v->delay_ms > SCREEN_DELAY_MAX_MS)
		v->delay_ms =
			base > SCREEN_DELAY_MAX_MS ? base : SCREEN_DELAY_MAX_MS;

	if (e->fails == NULL)
		e->fails = calloc(SCREEN_FAILS_MAX, sizeof(*e->fails));
	if (e->fails != NULL) {
		unsigned live = 0;
		int seen = 0;

		for (unsigned i = 0; i < e->nfails; i++) {
			const struct screen_fail *f = &e->fails[i];
			if (f->t > now_ms - window) {
				live++;
				if (memcmp(f->fp, fp, SCREEN_FP_SIZE) == 0)
					seen = 1;
			}
		}
		if (!seen) {
			struct screen_fail *f = &e->fails[e->next_fail];

			f->t = now_ms;
			memcpy(f->fp, fp, SCREEN_FP_SIZE);
			e->next_fail = (e->next_fail + 1) % SCREEN_FAILS_MAX;
			if (e->nfails < SCREEN_FAILS_MAX)
				e->nfails++;
			else
				live--; /* the oldest was overwritten */
			live++;
			v->counted = 1;
		}
		v->ip_failures = live;
		if (v->counted && !trusted && limit > 0 &&
		    live >= (unsigned)limit &&
		    e->block_until * 1000 <= now_ms) {
			int64_t minutes = settings_int(
				set, SETTING_SCREENING_BLOCK_MINUTES);

			for (int i = 0;
			     i < e->offenses && minutes < SCREEN_BLOCK_MAX_MIN;
			     i++)
				minutes *= 2;
			if (minutes > SCREEN_BLOCK_MAX_MIN)
				minutes = SCREEN_BLOCK_MAX_MIN;
			e->offenses++;
			e->block_until = now_ms / 1000 + minutes * 60;
			e->unsaved = 1;
			/* A fresh start once the block ends. */
			e->nfails = 0;
			e->next_fail = 0;
			v->blocked = 1;
			v->until = e->block_until;
			v->offenses = e->offenses;
		}
	}

	if (notify > 0 && account != NULL && account[0] != '\0') {
		struct screen_account *a = screen_account_get(s, account);

		if (a != NULL) {
			if (now_ms - a->window_start >= window) {
				a->window_start = now_ms;
				a->count = 0;
				a->notified = 0;
			}
			if (v->counted)
				a->count++;
			v->account_failures = a->count;
			if (!a->notified && a->count >= (unsigned)notify) {
				a->notified = 1;
				v->notify = 1;
			}
		}
	}
}

static void screen_auth_ok_locked(struct screen *s, const char *ip)
{
	char key[SCREEN_KEY_SIZE];
	struct screen_ip *e;

	screen_key(ip, key);
	e = screen_ip_get(s, key, 0);
	if (e != NULL)
		e->consecutive = 0;
}

static void screen_expire_locked(struct screen *s, const struct settings *set,
				 int64_t now_ms)
{
	int64_t window =
		settings_int(set, SETTING_SCREENING_AUTH_MINUTES) * 60000;

	for (size_t i = 0; i < SCREEN_BUCKETS; i++) {
		struct screen_ip **pp = &s->ips[i], *e;

		while ((e = *pp) != NULL) {
			int live = 0;

			for (unsigned k = 0; k < e->nfails; k++)
				if (e->fails[k].t > now_ms - window)
					live = 1;
			/* Keep what still limits: connections, a bucket
			 * not yet full, failures, a block or its record. */
			if (e->conns > 0 || live || e->offenses > 0 ||
			    (e->refill_ms != 0 &&
			     now_ms - e->refill_ms < 60000)) {
				pp = &e->next;
				continue;
			}
			*pp = e->next;
			free(e->fails);
			free(e);
		}
		{
			struct screen_account **ap = &s->accounts[i], *a;

			while ((a = *ap) != NULL) {
				if (now_ms - a->window_start < window) {
					ap = &a->next;
					continue;
				}
				*ap = a->next;
				free(a);
			}
		}
	}
}

/* --- the public functions: one lock, since the loops share the screen --- */

void screen_clear_blocks(struct screen *s)
{
	pthread_mutex_lock(&s->lock);
	screen_clear_blocks_locked(s);
	pthread_mutex_unlock(&s->lock);
}

void screen_load_block(struct screen *s, const char *key, int64_t until,
		       int offenses)
{
	pthread_mutex_lock(&s->lock);
	screen_load_block_locked(s, key, until, offenses);
	pthread_mutex_unlock(&s->lock);
}

int screen_block_saved(struct screen *s, const char *key)
{
	int r;

	pthread_mutex_lock(&s->lock);
	r = screen_block_saved_locked(s, key);
	pthread_mutex_unlock(&s->lock);
	return r;
}

int screen_blocked(struct screen *s, const char *ip, int64_t now_ms,
		   int64_t *until_r)
{
	int r;

	pthread_mutex_lock(&s->lock);
	r = screen_blocked_locked(s, ip, now_ms, until_r);
	pthread_mutex_unlock(&s->lock);
	return r;
}

const char *screen_connect(struct screen *s, const struct settings *set,
			   enum screen_service svc, const char *ip, int trusted,
			   int64_t now_ms)
{
	const char *r;

	pthread_mutex_lock(&s->lock);
	r = screen_connect_locked(s, set, svc, ip, trusted, now_ms);
	pthread_mutex_unlock(&s->lock);
	return r;
}

void screen_disconnect(struct screen *s, enum screen_service svc,
		       const char *ip)
{
	pthread_mutex_lock(&s->lock);
	screen_disconnect_locked(s, svc, ip);
	pthread_mutex_unlock(&s->lock);
}

void screen_auth_failed(struct screen *s, const struct settings *set,
			const char *ip, int trusted, const char *account,
			const unsigned char fp[SCREEN_FP_SIZE], int64_t now_ms,
			struct screen_verdict *v)
{
	pthread_mutex_lock(&s->lock);
	screen_auth_failed_locked(s, set, ip, trusted, account, fp, now_ms, v);
	pthread_mutex_unlock(&s->lock);
}

void screen_auth_ok(struct screen *s, const char *ip)
{
	pthread_mutex_lock(&s->lock);
	screen_auth_ok_locked(s, ip);
	pthread_mutex_unlock(&s->lock);
}

void screen_expire(struct screen *s, const struct settings *set, int64_t now_ms)
{
	pthread_mutex_lock(&s->lock);
	screen_expire_locked(s, set, now_ms);
	pthread_mutex_unlock(&s->lock);
}
