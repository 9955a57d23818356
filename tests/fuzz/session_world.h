/*
 * session_world: what the session harnesses (fuzz_smtp_session.c and
 * fuzz_pop3_session.c) share. A world made once per process: a data_dir
 * in a temporary folder (on /dev/shm when there is one, so that the
 * spool's fsyncs cost nothing) with a domain, accounts, a mailbox and a
 * TLS certificate; one event loop, the worker pools and two settings
 * snapshots. After each input the world is put back as it was: the queue
 * emptied, the rows the sessions wrote to the directory removed, the
 * screening and hijack state made anew.
 *
 * One input is one session, driven over a socketpair on the real loop by
 * a client that is itself a struct io (so that it can do TLS with the
 * io module's client side). The input's first byte chooses:
 *
 *   bits 0-1  the listener (each harness says what they mean)
 *   bit 2     auth.allow_plaintext on (else off)
 *   bits 3-5  the client's address (world_addrs below)
 *   bit 6     the client completes TLS when it is offered (the reply to
 *             STARTTLS or STLS, or an implicit TLS listener); else it
 *             goes on writing plaintext, which the handshake must refuse
 *   bit 7     small socket buffers (4 KB): short writes, slow flushes
 *
 * The rest is what the client writes, cut into writes at each "~|~"; a
 * piece "~*N~text" writes text N times (a large message or a long
 * pipeline; 320 KB at most). A write waits until the server has read the
 * one before (the socket holds none of it) and answered, so that partial
 * lines and pipelined groups arrive as written. The client reads and
 * discards the server's output as it comes (checking each line with the
 * harness's check_line), half-closes its end once the input is spent,
 * and the input ends when the server has closed and nothing is left for
 * the loop (worker jobs and their completions). A piece "~!" closes the
 * client's socket at once, as soon as the piece before it is written,
 * without waiting for an answer: the server finds its client gone in the
 * middle of whatever it was doing (a password check, a commit, a
 * transfer).
 *
 * Besides ASan, LSan and UBSan: a session that does not end within
 * WORLD_DEADLINE_MS aborts (the client always reads and closes, so a
 * server that waits past that waits for nothing), and so does a
 * descriptor left open once the session ended.
 *
 * With PETREL_FUZZ_TRACE set in the environment, what each side sends and
 * the daemon's logs are copied to stderr (to read a reproducer).
 *
 * argon2id: the directory hashes with the INTERACTIVE limits (64 MiB), tens
 * of milliseconds per check. This file defines crypto_pwhash_str and
 * crypto_pwhash_str_verify, which the executable's link prefers to
 * libsodium's: accounts are hashed with the smallest limits, and the
 * directory's dummy hash for unknown accounts (64 MiB, a password nobody
 * has) is answered "no match" without the work. Every other check is
 * libsodium's own argon2id verification.
 */
#ifndef PETREL_FUZZ_SESSION_WORLD_H
#define PETREL_FUZZ_SESSION_WORLD_H

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>
#include <sqlite3.h>

#include "delivery/local.h"
#include "directory/directory.h"
#include "directory/settings.h"
#include "lib/config.h"
#include "lib/env.h"
#include "lib/io.h"
#include "lib/io_worker.h"
#include "lib/log.h"
#include "policy/dnsbl.h"
#include "policy/hijacking.h"
#include "policy/screen.h"
#include "policy/trust.h"
#include "queue/queue.h"

#define WORLD_DOMAIN "example.org"
#define WORLD_USER "user@example.org"
#define WORLD_PASS "secret"
#define WORLD_DISABLED "off@example.org"
#define WORLD_POSTMASTER "postmaster@example.org"
#define WORLD_SEPARATOR "~|~"
#define WORLD_DEADLINE_MS 10000
#define WORLD_SMALL_BUFFER 4096
#define WORLD_QUIET_TURNS 4
#define WORLD_REPEAT "~*"
#define WORLD_ABORT "~!"
#define WORLD_REPEAT_MAX (320 * 1024)

/* The client addresses bits 3-5 choose: a stranger, loopback, a local
 * network (trusted.local_networks), a trusted host (trusted.hosts), a
 * stranger and loopback in IPv6, an IPv4-mapped stranger, another
 * stranger. */
static const char *const world_addrs[8] = {
	"192.0.2.10",	"127.0.0.1", "10.1.2.3",	  "198.51.100.7",
	"2001:db8::25", "::1",	     "::ffff:192.0.2.11", "203.0.113.5",
};

/* What bits 0-7 of the first byte chose. */
struct world_options {
	unsigned listener;
	int plaintext;
	const char *addr;
	int tls;
	int small_buffers;
};

/* What a harness tells the client about its protocol. */
struct world_proto {
	/* The reply after which the server starts TLS ("220 2.0.0 Ready
	 * to start TLS"). */
	const char *tls_ready;
	/* Whether the listener starts with TLS (SMTPS, POP3S). */
	int (*implicit_tls)(unsigned listener);
	/* Starts the session on fd (owned by it from now on). */
	void (*start)(int fd, const struct sockaddr *sa, socklen_t salen,
		      unsigned listener);
	/* Checks one line of plaintext output (CRLF cut, len without it;
	 * cut: only its first len bytes are here, it was longer); aborts
	 * when it is not well formed. *state is 0 at the start and after
	 * TLS starts, for the checker's own use. */
	void (*check_line)(unsigned *state, const char *line, size_t len,
			   int cut);
};

static struct world {
	int ready;
	char dir[256];
	char db_path[512];
	struct config cfg;
	struct env env;
	struct settings *settings[2]; /* auth.allow_plaintext off, on */
	struct io_tls_ctx *client_tls;
	sqlite3 *db; /* the harness's own handle, for the resets */
	int64_t db_version;
	char maildir[1024];
	int trace; /* PETREL_FUZZ_TRACE */
} world;

/* ---- argon2id at the smallest cost (see the comment at the top) ---- */

int crypto_pwhash_str(char out[crypto_pwhash_STRBYTES],
		      const char *const passwd, unsigned long long passwdlen,
		      unsigned long long opslimit, size_t memlimit)
{
	(void)opslimit;
	(void)memlimit;
	return crypto_pwhash_argon2id_str(out, passwd, passwdlen,
					  crypto_pwhash_argon2id_OPSLIMIT_MIN,
					  crypto_pwhash_argon2id_MEMLIMIT_MIN);
}

int crypto_pwhash_str_verify(const char str[crypto_pwhash_STRBYTES],
			     const char *const passwd,
			     unsigned long long passwdlen)
{
	/* The hashes made here say m=8 (KiB); only the dummy says more. */
	if (strstr(str, "$m=8,") == NULL)
		return -1;
	return crypto_pwhash_argon2id_str_verify(str, passwd, passwdlen);
}

/* ---- making the world ---- */

static void world_fail(const char *what, const char *err)
{
	fprintf(stderr, "session world: %s: %s\n", what,
		err != NULL ? err : strerror(errno));
	abort();
}

static void world_rmtree(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;

	if (d != NULL) {
		while ((e = readdir(d)) != NULL) {
			char sub[1024];

			if (strcmp(e->d_name, ".") == 0 ||
			    strcmp(e->d_name, "..") == 0)
				continue;
			snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
			if (e->d_type == DT_DIR)
				world_rmtree(sub);
			else
				unlink(sub);
		}
		closedir(d);
	}
	rmdir(path);
}

static void world_atexit(void)
{
	if (world.dir[0] != '\0')
		world_rmtree(world.dir);
}

/* Removes the folders of processes that died without their atexit (a
 * crash found): "petrel-fuzz-<pid>-XXXXXX" whose pid is gone. */
static void world_remove_stale(const char *base)
{
	DIR *d = opendir(base);
	struct dirent *e;

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		char path[600], *end;
		long pid;

		if (strncmp(e->d_name, "petrel-fuzz-", 12) != 0)
			continue;
		pid = strtol(e->d_name + 12, &end, 10);
		if (end == e->d_name + 12 || *end != '-' || pid <= 0 ||
		    kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue;
		snprintf(path, sizeof(path), "%s/%s", base, e->d_name);
		world_rmtree(path);
	}
	closedir(d);
}

static void *world_thread_init(void *arg)
{
	struct env_thread *t = calloc(1, sizeof(*t));
	const char *err;

	if (t == NULL)
		world_fail("worker", "out of memory");
	t->dir = directory_open(arg, &err);
	if (t->dir == NULL)
		world_fail("worker directory", err);
	return t;
}

static void world_thread_deinit(void *state)
{
	struct env_thread *t = state;

	directory_close(t->dir);
	free(t);
}

static void world_nop_work(void *state, void *arg)
{
	(void)state;
	(void)arg;
}

static void world_nop_done(void *arg)
{
	(void)arg;
	io_loop_exit(world.env.loop);
}

/* A message reached the queue: it stays there until world_end. */
static void world_message_queued(struct env *env, const char *queue_id)
{
	(void)env;
	(void)queue_id;
}

static struct settings *world_settings(int plaintext)
{
	/* Short and small, so that every limit is in reach of a short
	 * input, and nothing waits: no delays, no DNS, no spamd. */
	static const struct {
		enum settings_id id;
		const char *value;
	} set[] = {
		{SETTING_AUTH_FAIL_DELAY_MS, "0"},
		{SETTING_SMTP_RDNS_TIMEOUT_MS, "0"},
		{SETTING_QUEUE_MIN_FREE_MB, "0"},
		{SETTING_SMTP_MAX_LINE, "512"},
		/* Past SMTP_SPILL_MEMORY (128 KB) the message spills to a
		 * scratch file; "~*N~" pieces reach both. */
		{SETTING_SMTP_MAX_MESSAGE_KB, "256"},
		{SETTING_SMTP_MAX_RECIPIENTS, "3"},
		{SETTING_SMTP_MAX_ERRORS, "10"},
		/* High enough that a flood of HELP, answered 18 bytes for
		 * each byte read, passes the output bound (64 KB) within one
		 * read of 4 KB. */
		{SETTING_SMTP_MAX_JUNK_COMMANDS, "1000"},
		{SETTING_POP3_MAX_ERRORS, "10"},
		{SETTING_LOG_MAX_LINES_PER_SESSION, "20"},
		{SETTING_SCREENING_AUTH_FAILURES, "4"},
		{SETTING_SCREENING_NOTIFY_AFTER, "2"},
		{SETTING_HIJACK_MAX_MESSAGES, "2"},
		{SETTING_HIJACK_MAX_RECIPIENTS, "4"},
		{SETTING_TRUSTED_HOSTS, "198.51.100.7"},
		{SETTING_TRUSTED_LOCAL_NETWORKS, "10.0.0.0/8"},
		/* A session that needs its timeout to end is a hang here
		 * (WORLD_DEADLINE_MS): these only must not fire first. */
		{SETTING_SMTP_TIMEOUT_IDLE, "60"},
		{SETTING_SMTP_TIMEOUT_COMMAND, "60"},
		{SETTING_SMTP_TIMEOUT_DATA, "60"},
		{SETTING_POP3_TIMEOUT_IDLE, "60"},
	};
	struct settings *s = settings_new();

	if (s == NULL)
		world_fail("settings", "out of memory");
	for (size_t i = 0; i < sizeof(set) / sizeof(set[0]); i++)
		if (settings_set(s, set[i].id, set[i].value) < 0)
			world_fail("settings", settings_def(set[i].id)->name);
	if (settings_set(s, SETTING_AUTH_ALLOW_PLAINTEXT,
			 plaintext ? "on" : "off") < 0)
		world_fail("settings", "auth.allow_plaintext");
	return s;
}

static void world_directory(struct directory *d)
{
	const char *err;

	if (directory_domain_add(d, WORLD_DOMAIN, &err) < 0 ||
	    directory_account_add(d, WORLD_USER, WORLD_PASS, 0, &err) < 0 ||
	    directory_account_add(d, WORLD_POSTMASTER, WORLD_PASS, 0, &err) <
		    0 ||
	    directory_account_add(d, WORLD_DISABLED, WORLD_PASS, 0, &err) < 0 ||
	    directory_account_set_state(d, WORLD_DISABLED,
					DIRECTORY_ACCOUNT_DISABLED, "test", 0,
					&err) < 0 ||
	    directory_alias_add(d, "alias@" WORLD_DOMAIN, WORLD_USER, &err) < 0)
		world_fail("directory", err);
}

/* Makes the world once per process. */
static void world_init(void)
{
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	char cert[600], key[600];
	const char *err;

	if (world.ready)
		return;
	world.trace = getenv("PETREL_FUZZ_TRACE") != NULL;
	if (sodium_init() < 0)
		world_fail("sodium_init", "failed");
	/* Nothing reaches a file (nor stderr unless tracing), but every
	 * line is formatted. */
	if (log_init(NULL, world.trace, &err) < 0)
		world_fail("log", err);
	world_remove_stale(base);
	snprintf(world.dir, sizeof(world.dir), "%s/petrel-fuzz-%ld-XXXXXX",
		 base, (long)getpid());
	if (mkdtemp(world.dir) == NULL)
		world_fail("mkdtemp", NULL);
	atexit(world_atexit);

	config_defaults(&world.cfg);
	snprintf(world.cfg.hostname, sizeof(world.cfg.hostname),
		 "mx.example.org");
	snprintf(world.cfg.data_dir, sizeof(world.cfg.data_dir), "%s",
		 world.dir);
	snprintf(world.cfg.log_dir, sizeof(world.cfg.log_dir), "%s/log",
		 world.dir);
	snprintf(cert, sizeof(cert), "%s/cert.pem", world.dir);
	snprintf(key, sizeof(key), "%s/key.pem", world.dir);
	snprintf(world.cfg.tls_cert, sizeof(world.cfg.tls_cert), "%s", cert);
	snprintf(world.cfg.tls_key, sizeof(world.cfg.tls_key), "%s", key);
	/* No listeners: sessions are handed their socket directly. */
	world.cfg.listen_smtp.count = 0;
	world.cfg.listen_submission.count = 0;
	world.cfg.listen_smtps.count = 0;
	world.cfg.listen_pop3.count = 0;
	world.cfg.listen_pop3s.count = 0;
	world.cfg.listen_admin.count = 0;
	world.cfg.loops = 1;

	if (io_tls_make_self_signed(cert, key, world.cfg.hostname, &err) < 0)
		world_fail("certificate", err);
	world.env.tls = io_tls_server_new(cert, key, &err);
	if (world.env.tls == NULL)
		world_fail("TLS", err);
	world.client_tls = io_tls_client_new(0, &err);
	if (world.client_tls == NULL)
		world_fail("TLS client", err);

	snprintf(world.db_path, sizeof(world.db_path), "%s/petrel.db",
		 world.dir);
	world.env.cfg = &world.cfg;
	world.env.dir = directory_open(world.db_path, &err);
	if (world.env.dir == NULL)
		world_fail("directory", err);
	world_directory(world.env.dir);
	if (sqlite3_open(world.db_path, &world.db) != SQLITE_OK)
		world_fail("sqlite3_open", sqlite3_errmsg(world.db));
	sqlite3_busy_timeout(world.db, 5000);

	world.settings[0] = world_settings(0);
	world.settings[1] = world_settings(1);
	world.env.settings = world.settings[0];
	world.env.queue = queue_open(world.dir, &err);
	if (world.env.queue == NULL)
		world_fail("queue", err);
	world.env.loop = io_loop_new();
	if (world.env.loop == NULL)
		world_fail("loop", "out of memory");
	world.env.trust = policy_trust_new(world.settings[0], NULL);
	world.env.dnsbl_cache = dnsbl_cache_new(64);
	if (world.env.trust == NULL || world.env.dnsbl_cache == NULL)
		world_fail("policy", "out of memory");
	/* One thread each: the fewer the threads, the more an input plays
	 * the same way twice. */
	world.env.workers =
		io_workers_new(world.env.loop, 1, world_thread_init,
			       world_thread_deinit, world.db_path, &err);
	world.env.commit_workers =
		io_workers_new(world.env.loop, 1, NULL, NULL, NULL, &err);
	if (world.env.workers == NULL || world.env.commit_workers == NULL)
		world_fail("workers", err);
	/* The worker has opened its directory once a job went through: a
	 * process that exits at once must not remove the folder under a
	 * thread that is starting. */
	if (io_workers_submit(world.env.workers, world_nop_work, world_nop_done,
			      NULL) < 0 ||
	    io_loop_run(world.env.loop) < 0)
		world_fail("workers", "cannot start");
	world.env.message_queued = world_message_queued;
	if (!local_maildir_path(world.dir, WORLD_USER, world.maildir,
				sizeof(world.maildir)))
		world_fail("maildir path", "too long");
	world.ready = 1;
}

/* ---- putting it back after each input ---- */

struct world_ids {
	char id[64][QUEUE_ID_SIZE];
	size_t n;
};

static int world_collect(void *ctx, const char *id)
{
	struct world_ids *ids = ctx;

	if (ids->n == sizeof(ids->id) / sizeof(ids->id[0]))
		return 1;
	snprintf(ids->id[ids->n++], QUEUE_ID_SIZE, "%s", id);
	return 0;
}

/* Empties every queue. */
static void world_queue_clear(void)
{
	for (int q = 0; q < QUEUE_COUNT; q++) {
		struct world_ids ids;
		const char *err;

		do {
			ids.n = 0;
			if (queue_scan(world.env.queue, (enum queue_name)q,
				       world_collect, &ids, &err) < 0)
				world_fail("queue_scan", err);
			for (size_t i = 0; i < ids.n; i++)
				queue_delete(world.env.queue, ids.id[i], &err);
		} while (ids.n == sizeof(ids.id) / sizeof(ids.id[0]));
	}
}

/* The rows that sessions write (failures, blocks, hijack windows and
 * tokens, logins, frozen accounts) are removed, when there are any. */
static void world_db_reset(void)
{
	static const char sql[] =
		"BEGIN;"
		"DELETE FROM security_events;"
		"DELETE FROM screening_blocks;"
		"DELETE FROM hijack_sends;"
		"DELETE FROM hijack_logins;"
		"DELETE FROM hijack_tokens;"
		"UPDATE accounts SET state = 0, state_reason = '',"
		"  state_time = 0 WHERE state = 2;"
		"UPDATE accounts SET last_login = 0 WHERE last_login != 0;"
		"COMMIT;";
	sqlite3_stmt *st;
	char *msg = NULL;
	int64_t v = -1;

	if (sqlite3_prepare_v2(world.db, "PRAGMA data_version", -1, &st,
			       NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (v == world.db_version)
		return;
	world.db_version = v;
	if (sqlite3_exec(world.db, sql, NULL, NULL, &msg) != SQLITE_OK)
		world_fail("database reset", msg);
}

/* What /proc says fd is ("socket:[1234]"), or "" when it is closed. */
static void world_fd_target(int fd, char *target, size_t size)
{
	char link[64];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, target, size - 1);
	target[n > 0 ? n : 0] = '\0';
}

/* The descriptors open now, as bits (fds[fd / 64] bit fd % 64). */
#define WORLD_FDS_MAX 4096

static void world_fds(uint64_t fds[WORLD_FDS_MAX / 64])
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;

	memset(fds, 0, WORLD_FDS_MAX / 8);
	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		long fd = strtol(e->d_name, NULL, 10);

		if (e->d_name[0] != '.' && fd >= 0 && fd < WORLD_FDS_MAX &&
		    fd != dirfd(d))
			fds[fd / 64] |= (uint64_t)1 << (fd % 64);
	}
	closedir(d);
}

/* Aborts when the input left a descriptor open: every one is the
 * session's or its jobs', and all must be closed once it ended. The
 * directory's database files are opened for good on first use. */
static void world_check_fds(const uint64_t before[WORLD_FDS_MAX / 64])
{
	uint64_t after[WORLD_FDS_MAX / 64];

	world_fds(after);
	for (int fd = 0; fd < WORLD_FDS_MAX; fd++) {
		char target[1024];

		if (!(after[fd / 64] >> (fd % 64) & 1) ||
		    (before[fd / 64] >> (fd % 64) & 1))
			continue;
		world_fd_target(fd, target, sizeof(target));
		if (strstr(target, "/petrel.db") != NULL)
			continue;
		fprintf(stderr, "session world: descriptor %d (%s) left open\n",
			fd, target);
		abort();
	}
}

/* Before an input: the options' settings, fresh screening and hijack
 * state. */
static void world_begin(const struct world_options *o)
{
	const char *err;

	world.env.settings = world.settings[o->plaintext ? 1 : 0];
	world.env.screen = screen_new();
	if (world.env.screen == NULL || hijacking_start(&world.env, &err) < 0)
		world_fail("screen or hijacking", "out of memory");
}

/* After an input: everything it changed put back. */
static void world_end(void)
{
	hijacking_stop(&world.env);
	screen_free(world.env.screen);
	world.env.screen = NULL;
	world_queue_clear();
	world_db_reset();
}

static void world_parse_options(uint8_t b, struct world_options *o)
{
	o->listener = b & 3;
	o->plaintext = (b >> 2) & 1;
	o->addr = world_addrs[(b >> 3) & 7];
	o->tls = (b >> 6) & 1;
	o->small_buffers = (b >> 7) & 1;
}

static socklen_t world_sockaddr(const char *text, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (strchr(text, ':') != NULL) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(50123);
		inet_pton(AF_INET6, text, &s6->sin6_addr);
		return sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons(50123);
		inet_pton(AF_INET, text, &s4->sin_addr);
		return sizeof(*s4);
	}
}

/* ---- the client ---- */

static void world_trace(const char *who, const void *data, size_t len)
{
	if (world.trace)
		fprintf(stderr, "%s %zu bytes: %.*s\n", who, len, (int)len,
			(const char *)data);
}

struct world_client {
	const struct world_proto *proto;
	const struct world_options *opt;
	struct io *io;	     /* NULL once it ended */
	int fd;		     /* io's descriptor */
	int wfd;	     /* a dup of fd: sees the server close */
	struct io_fd *watch; /* on wfd, once io ended */
	struct io_timer *poll, *deadline, *fin;
	const uint8_t *in;
	size_t len, pos;
	int writing;	    /* a write waits to be read by the server */
	int input_done;	    /* all written, the end half-closed */
	int tls_wait;	    /* the TLS handshake runs: writes wait */
	int plain;	    /* output is plaintext lines (checked) */
	int server_gone;    /* the server closed its end */
	int aborted;	    /* the client closed its socket ("~!") */
	char server_fd[64]; /* what /proc says the server's socket is */
	int sfd;	    /* the server's descriptor */
	unsigned polls;	    /* of the current wait */
	unsigned quiet;	    /* turns of the loop with nothing moving */
	int queued;	    /* what the server had not read at the last turn */
	unsigned fin_polls;
	char line[1100]; /* a line of output being gathered */
	size_t line_len;
	int line_cut;	/* it was longer than sizeof(line) */
	unsigned check; /* check_line's state */
};

static void world_client_end(struct world_client *c);
static void world_check_done(struct world_client *c);

/* Runs cb at the next turn of the loop. After a few turns with nothing
 * new, each turn first sleeps a little: the server waits for a worker,
 * which then has the processor (a timer of 1 ms would wait longer than
 * the work). */
static void world_next_turn(struct io_timer *t, unsigned *turns)
{
	if ((*turns)++ >= 16) {
		struct timespec ts = {.tv_sec = 0, .tv_nsec = 50000};

		nanosleep(&ts, NULL);
	}
	io_timer_add(t, 0);
}

static void world_poll(struct world_client *c)
{
	world_next_turn(c->poll, &c->polls);
}

/* A piece "~*N~text" is text written N times (N decimal, at most
 * WORLD_REPEAT_MAX bytes in all): a large message or a long pipeline from
 * a short input. Returns how many times *piece (then the text, of *len
 * bytes) is written. */
static size_t world_repeat(const char **piece, size_t *len)
{
	const char *p = *piece, *end = *piece + *len;
	size_t times = 0;

	if (*len < 4 || memcmp(p, WORLD_REPEAT, strlen(WORLD_REPEAT)) != 0)
		return 1;
	for (p += strlen(WORLD_REPEAT); p < end && *p >= '0' && *p <= '9'; p++)
		times = times < WORLD_REPEAT_MAX
				? times * 10 + (size_t)(*p - '0')
				: times;
	if (p == end || *p != '~' || p + 1 == end)
		return 1;
	p++;
	*len = (size_t)(end - p);
	*piece = p;
	if (times > WORLD_REPEAT_MAX / *len)
		times = WORLD_REPEAT_MAX / *len;
	return times;
}

/* Whether the next piece is "~!". */
static int world_abort_next(const struct world_client *c)
{
	size_t n = strlen(WORLD_ABORT), sep = strlen(WORLD_SEPARATOR);

	return c->len - c->pos >= n &&
	       memcmp(c->in + c->pos, WORLD_ABORT, n) == 0 &&
	       (c->len - c->pos == n ||
		(c->len - c->pos >= n + sep &&
		 memcmp(c->in + c->pos + n, WORLD_SEPARATOR, sep) == 0));
}

/* Whether the server's socket is still open: its descriptor still names
 * the same socket (a descriptor number is reused at once). */
static int world_server_open(const struct world_client *c)
{
	char target[64];

	world_fd_target(c->sfd, target, sizeof(target));
	return strcmp(target, c->server_fd) == 0;
}

/* "~!": the client's socket is closed now, both descriptors; the input
 * ends once the server's is closed too and no job is left. */
static void world_client_abort(struct world_client *c)
{
	world_trace("client event", "abort", 5);
	io_timer_del(c->poll);
	io_free(c->io);
	c->io = NULL;
	close(c->wfd);
	c->wfd = -1;
	c->aborted = 1;
	c->pos = c->len;
	world_check_done(c);
}

/* Writes the next piece of input, or half-closes when there is none. */
static void world_client_next(struct world_client *c)
{
	const uint8_t *p, *end = c->in + c->len;
	const char *piece;
	size_t n, times;

	if (c->io == NULL || c->tls_wait || c->writing || c->input_done)
		return;
	if (c->pos >= c->len) {
		c->input_done = 1;
		shutdown(c->fd, SHUT_WR);
		return;
	}
	if (world_abort_next(c)) {
		world_client_abort(c);
		return;
	}
	p = memmem(c->in + c->pos, c->len - c->pos, WORLD_SEPARATOR,
		   strlen(WORLD_SEPARATOR));
	n = (size_t)((p != NULL ? p : end) - (c->in + c->pos));
	c->writing = 1;
	c->polls = 0;
	c->quiet = 0;
	piece = (const char *)c->in + c->pos;
	times = n > 0 ? world_repeat(&piece, &n) : 0;
	if (times == 0) {
		/* Nothing to write: only a turn of the loop. */
		world_poll(c);
	} else {
		world_trace("client", piece, n);
		for (size_t i = 0; i < times; i++)
			io_write(c->io, piece, n);
	}
	c->pos = (size_t)((p != NULL ? p + strlen(WORLD_SEPARATOR) : end) -
			  c->in);
}

static void world_poll_cb(void *arg)
{
	struct world_client *c = arg;
	int queued = 0, readable = 0;

	if (c->io == NULL || !c->writing)
		return;
	if (world_abort_next(c) && io_output_len(c->io) == 0) {
		/* Written: the client leaves without waiting. */
		world_client_abort(c);
		return;
	}
	/* Unread by the server, or output not read by us yet (a reply to
	 * STARTTLS must be seen before more plaintext goes out). */
	if (ioctl(c->fd, SIOCOUTQ, &queued) < 0 ||
	    ioctl(c->fd, FIONREAD, &readable) < 0)
		queued = readable = 0;
	if (queued > 0 || readable > 0 || io_input_len(c->io) > 0 ||
	    io_output_len(c->io) > 0) {
		if (c->quiet > 0 || queued != c->queued)
			c->polls = 0; /* something moved: quick turns */
		c->quiet = 0;
	} else {
		if (c->quiet == 0)
			c->polls = 0;
		c->quiet++;
	}
	c->queued = queued;
	/* The server reads in one turn and runs its (deferred) read
	 * callback in the next; its reply reaches the socket in the turn
	 * after: a few quiet turns mean it has answered what it read. */
	if (c->quiet < WORLD_QUIET_TURNS) {
		world_poll(c);
		return;
	}
	c->writing = 0;
	world_client_next(c);
}

static void world_start_tls(struct world_client *c)
{
	c->plain = 0;
	c->tls_wait = 1;
	if (c->writing) {
		/* The rest of that write went out as plaintext before the
		 * reply was read: the handshake meets it. */
		c->writing = 0;
		io_timer_del(c->poll);
	}
	if (io_starttls_client(c->io, world.client_tls, NULL) < 0)
		world_client_end(c);
}

/* A line of output (without its CRLF). */
static void world_line(struct world_client *c, const char *line, size_t len,
		       int cut)
{
	c->proto->check_line(&c->check, line, len, cut);
	if (cut || len != strlen(c->proto->tls_ready) ||
	    memcmp(line, c->proto->tls_ready, len) != 0)
		return;
	/* What follows is the server's side of a handshake. */
	c->plain = 0;
	if (c->opt->tls)
		world_start_tls(c);
}

static void world_read(struct world_client *c)
{
	size_t avail = io_input_len(c->io);
	const char *in = io_input_pullup(c->io, avail);

	world_trace(c->plain ? "server" : "server (not plaintext)", in, avail);
	for (size_t i = 0; i < avail && c->plain; i++) {
		char ch = in[i];

		/* CRLF ends every line; a bare CR or LF is never sent. */
		if (ch == '\n') {
			if (c->line_len == 0 ||
			    c->line[c->line_len - 1] != '\r') {
				fprintf(stderr, "bare LF in the output\n");
				abort();
			}
			c->line_len--;
			c->line[c->line_len] = '\0';
			world_line(c, c->line, c->line_len, c->line_cut);
			c->line_len = 0;
			c->line_cut = 0;
			if (c->io == NULL || c->tls_wait) {
				/* The connection ended, or TLS started: the
				 * input buffer is gone. */
				return;
			}
			continue;
		}
		if (c->line_len > 0 && c->line[c->line_len - 1] == '\r') {
			fprintf(stderr, "bare CR in the output\n");
			abort();
		}
		if (c->line_len == sizeof(c->line) - 1) {
			/* Keep the start; the last byte stays last. */
			c->line_cut = 1;
			c->line_len--;
		}
		c->line[c->line_len++] = ch;
	}
	io_input_drain(c->io, avail);
}

static void world_watch_cb(int fd, int readable, int writable, void *arg)
{
	struct world_client *c = arg;
	char buf[4096];
	ssize_t n;

	(void)readable;
	(void)writable;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		continue;
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	/* 0: the server closed; ECONNRESET: it closed with input unread. */
	c->server_gone = 1;
	io_fd_free(c->watch);
	c->watch = NULL;
	world_check_done(c);
}

/* The client's connection ended (the server closed, or TLS failed): from
 * here the duplicate descriptor waits for the server's close. */
static void world_client_end(struct world_client *c)
{
	if (c->io == NULL)
		return;
	io_timer_del(c->poll);
	io_free(c->io);
	c->io = NULL;
	shutdown(c->wfd, SHUT_WR);
	c->watch = io_fd_new(world.env.loop, c->wfd, world_watch_cb, c);
	if (c->watch == NULL || io_fd_want(c->watch, 1, 0) < 0)
		world_fail("watch", "out of memory");
}

static void world_client_cb(struct io *io, enum io_event ev, void *arg)
{
	struct world_client *c = arg;

	(void)io;
	switch (ev) {
	case IO_EV_READ:
		world_read(c);
		return;
	case IO_EV_FLUSHED:
		if (c->writing)
			world_poll(c);
		return;
	case IO_EV_TLS_READY:
		world_trace("client event", "TLS ready", 9);
		c->tls_wait = 0;
		c->plain = 1;
		c->line_len = 0;
		c->line_cut = 0;
		c->check = 0;
		world_client_next(c);
		return;
	case IO_EV_TIMEOUT:
	case IO_EV_TLS_ERROR:
	case IO_EV_CLOSED:
		world_trace("client event",
			    ev == IO_EV_CLOSED ? "closed" : "TLS error",
			    ev == IO_EV_CLOSED ? 6 : 9);
		world_client_end(c);
		return;
	}
}

/* The loop stops once the server closed and no job or post is left. */
static void world_check_done(struct world_client *c)
{
	if (c->aborted && !c->server_gone && !world_server_open(c))
		c->server_gone = 1;
	if (c->io != NULL || (!c->server_gone && !c->aborted))
		return;
	if (!c->server_gone) {
		/* Aborted: the server has not noticed yet. */
		world_next_turn(c->fin, &c->fin_polls);
		return;
	}
	if (io_loop_pending(world.env.loop) == 0) {
		io_loop_exit(world.env.loop);
		return;
	}
	/* A worker job of a session that is gone: its completion frees
	 * the session. */
	world_next_turn(c->fin, &c->fin_polls);
}

static void world_fin_cb(void *arg)
{
	world_check_done(arg);
}

static void world_deadline_cb(void *arg)
{
	struct world_client *c = arg;

	fprintf(stderr,
		"session world: the session did not end within %d ms "
		"(input %zu of %zu bytes written, server %s, %u jobs or "
		"posts pending)\n",
		WORLD_DEADLINE_MS, c->pos, c->len,
		c->server_gone ? "closed" : "open",
		io_loop_pending(world.env.loop));
	abort();
}

static void world_small_buffers(int fd)
{
	int size = WORLD_SMALL_BUFFER;

	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
}

/* Plays one input (first byte: options; the rest: what the client
 * writes) against one session of proto. */
static void world_run(const struct world_proto *proto, const uint8_t *data,
		      size_t size)
{
	struct world_options opt;
	struct world_client c;
	struct sockaddr_storage ss;
	socklen_t sslen;
	uint64_t fds[WORLD_FDS_MAX / 64];
	int sv[2];

	if (size == 0)
		return;
	world_init();
	world_parse_options(data[0], &opt);
	memset(&c, 0, sizeof(c));
	c.proto = proto;
	c.opt = &opt;
	c.in = data + 1;
	c.len = size - 1;
	c.plain = 1;

	world_begin(&opt);
	world_fds(fds);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		world_fail("socketpair", NULL);
	if (opt.small_buffers) {
		world_small_buffers(sv[0]);
		world_small_buffers(sv[1]);
	}
	c.fd = sv[1];
	c.sfd = sv[0];
	world_fd_target(sv[0], c.server_fd, sizeof(c.server_fd));
	c.wfd = dup(sv[1]);
	if (c.wfd < 0 || fcntl(c.wfd, F_SETFL, O_NONBLOCK) < 0)
		world_fail("dup", NULL);
	c.io = io_new(world.env.loop, sv[1], NULL, world_client_cb, &c);
	c.poll = io_timer_new(world.env.loop, world_poll_cb, &c);
	c.deadline = io_timer_new(world.env.loop, world_deadline_cb, &c);
	c.fin = io_timer_new(world.env.loop, world_fin_cb, &c);
	if (c.io == NULL || c.poll == NULL || c.deadline == NULL ||
	    c.fin == NULL)
		world_fail("client", "out of memory");
	io_timer_add(c.deadline, WORLD_DEADLINE_MS);

	sslen = world_sockaddr(opt.addr, &ss);
	proto->start(sv[0], (const struct sockaddr *)&ss, sslen, opt.listener);
	if (proto->implicit_tls(opt.listener)) {
		c.plain = 0;
		if (opt.tls) {
			c.tls_wait = 1;
			if (io_starttls_client(c.io, world.client_tls, NULL) <
			    0)
				world_client_end(&c);
		}
	}
	world_client_next(&c);
	io_loop_run(world.env.loop);

	io_timer_free(c.fin);
	io_timer_free(c.poll);
	io_timer_free(c.deadline);
	io_fd_free(c.watch);
	io_free(c.io);
	if (c.wfd >= 0)
		close(c.wfd);
	world_end();
	world_check_fds(fds);
}

#endif
