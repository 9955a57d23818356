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
 * One per daemon, owned by petreld.c. Everything here is used on the loop
 * thread only, but for the worker pools, which are how blocking work
 * leaves it.
 */
struct env {
	const struct config *cfg;
	struct io_loop *loop;
	struct io_workers *workers;
	/* Pools of their own, so that a 250 never waits behind other work:
	 * spooling accepted messages, and delivering them. */
	struct io_workers *commit_workers;
	struct io_workers *delivery_workers;
	struct io_tls_ctx *tls; /* server certificate */
	struct directory *dir;	/* the loop thread's handle: reads only */
	struct queue *queue;
	struct dns *dns; /* the resolver (dns_server, or the system's) */
	/* DNSBL answers by TTL, shared by the sessions. */
	struct dnsbl_cache *dnsbl_cache;
	/* Trusted hosts and local networks of the current settings. */
	struct policy_trust *trust;
	/* Failed-login and connection screening (SMTP and POP3). */
	struct screen *screen;
	/* Hijack detection: every account's sending window. */
	struct hijacking *hijacking;
	/* The current settings snapshot; replaced (not changed) on reload,
	 * so a holder of a reference keeps a consistent view. */
	struct settings *settings;
	/* Called on the loop when a message was committed to the spool. */
	void (*message_queued)(struct env *env, const char *queue_id);
	int shutting_down;
};

/* A worker thread's own handles (io_workers thread state). */
struct env_thread {
	struct directory *dir;
};

#endif
