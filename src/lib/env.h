/* What the daemon's parts share: the loop, workers, handles, settings. */
#ifndef PETREL_ENV_H
#define PETREL_ENV_H

struct config;
struct io_loop;
struct io_workers;
struct io_tls_ctx;
struct directory;
struct dns;
struct dnsbl_cache;
struct policy_trust;
struct screen;
struct hijacking;
struct queue;
struct settings;

/*
 * One per event loop, owned by petreld.c. Loop 0 (the main thread) also
 * runs the signals, the settings reload, the queue manager and remote
 * delivery; each other loop only accepts and serves sessions. What a loop
 * owns (its loop, directory handle, resolver, trusted hosts, settings
 * reference) is used on its thread only; what the loops share is
 * marked "shared" and is safe from any of them.
 */
struct env {
	const struct config *cfg;
	unsigned loop_index; /* 0: the main loop */
	struct io_loop *loop;
	struct io_workers *workers; /* shared, as the other pools */
	/* Pools of their own, so that a 250 never waits behind other work:
	 * spooling accepted messages, and delivering them. */
	struct io_workers *commit_workers;
	struct io_workers *delivery_workers;
	/* The directory reads of MAIL and RCPT (smtp_lookup.c): never
	 * behind a password check. NULL: they go to workers. */
	struct io_workers *lookup_workers;
	struct io_tls_ctx *tls; /* server certificate (shared) */
	struct directory *dir;	/* the loop thread's handle: reads only */
	struct queue *queue;	/* shared */
	struct dns *dns;	/* the resolver (dns_server, or the system's) */
	/* DNSBL answers by TTL, shared by the sessions of every loop. */
	struct dnsbl_cache *dnsbl_cache;
	/* Trusted hosts and local networks of the current settings. */
	struct policy_trust *trust;
	/* Failed-login and connection screening (SMTP and POP3), shared. */
	struct screen *screen;
	/* Hijack detection: every account's sending window, shared. */
	struct hijacking *hijacking;
	/* The current settings snapshot; replaced (not changed) on reload,
	 * so a holder of a reference keeps a consistent view. Loop 0 loads
	 * it and hands it to the other loops. */
	struct settings *settings;
	/* Called on the loop when a message was committed to the spool: it
	 * reaches the queue manager on loop 0. */
	void (*message_queued)(struct env *env, const char *queue_id);
	int shutting_down;
};

/* A worker thread's own handles (io_workers thread state). */
struct env_thread {
	struct directory *dir;
};

#endif
