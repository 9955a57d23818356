/*
 * petreld: the daemon's wiring and nothing else: config, logs, directory,
 * spool, TLS, listeners, privilege drop, signals, the event loops and their
 * worker threads, and the settings snapshot that follows the database.
 *
 * One event loop per core (config key loops). Loop 0 is the main thread:
 * signals, the settings and filter reloads, hijack detection's ticks, the
 * queue manager and remote delivery. Every loop, loop 0 included, has its
 * own sockets on the listening addresses (SO_REUSEPORT: the kernel spreads
 * the connections) and serves the sessions it accepted, with its own
 * directory handle, resolver and trusted hosts. The worker pools, the
 * spool, the DNSBL cache, the screening and hijack state are shared, each
 * safe from any loop (lib/env.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <dirent.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "delivery/dispatch.h"
#include "directory/directory.h"
#include "directory/settings.h"
#include "filter/filter_eval.h"
#include "filter/filter_store.h"
#include "lib/clock.h"
#include "lib/config.h"
#include "lib/dns.h"
#include "lib/env.h"
#include "lib/io.h"
#include "lib/io_worker.h"
#include "lib/log.h"
#include "policy/hijacking.h"
#include "policy/screening.h"
#include "policy/dnsbl.h"
#include "policy/trust.h"
#include "queue/queue.h"
#include "pop3/pop3_server.h"
#include "smtp/smtp_filter.h"
#include "smtp/smtp_server.h"

/* The build writes revision.h (cmake/revision.cmake). */
#if __has_include("revision.h")
#include "revision.h"
#else
#define PETREL_REVISION "unknown"
#endif

#define PETRELD_SETTINGS_POLL_MS 250
#define PETRELD_SHUTDOWN_GRACE_MS 10000
#define PETRELD_DNS_TIMEOUT_MS 2000 /* per try; callers bound the total */
#define PETRELD_DNSBL_CACHE 4096    /* DNSBL answers kept */
#define PETRELD_NOFILE_MAX ((rlim_t)1 << 20)
#define PETRELD_NOFILE_SPARE 1024 /* spool, delivery, logs, databases */

/* A loop after the first: its thread, its env, its servers. */
struct petreld_loop {
	struct env env;
	pthread_t thread;
	int running;
	struct smtp_server *smtp;
	struct pop3_server *pop3;
	struct io_timer *exit_timer;
};

/* A settings snapshot on its way to the loops: the last to take it says
 * so in the log (the tests wait for that line). */
struct petreld_reload {
	atomic_uint waiting;
	int64_t change;
};

struct petreld_reload_msg {
	struct petreld_loop *l;
	struct settings *s;
	struct petreld_reload *r;
};

static struct {
	struct config cfg;
	struct env env; /* loop 0's */
	struct smtp_server *smtp;
	struct pop3_server *pop3;
	struct petreld_loop *loops; /* loops 1 .. nloops-1 */
	unsigned nloops;
	atomic_uint loops_running;
	struct delivery_dispatch *dispatch;
	struct io_timer *settings_timer;
	struct io_timer *exit_timer;
	int64_t data_version, changes;
	unsigned ticks;
	char db_path[CONFIG_PATH_MAX + 16];
	char pid_path[CONFIG_PATH_MAX + 16];
	int pid_fd;
	uid_t uid;
	gid_t gid;
} petreld;

/*
 * Every session, spool file and delivery attempt holds descriptors, and
 * the soft limit is often 1,024, below what smtp.max_sessions allows: it
 * is raised to the hard limit (at most PETRELD_NOFILE_MAX). Says so, and
 * warns when even that is short of the session and active queue limits.
 */
static void petreld_nofile(const struct settings *s)
{
	rlim_t want = (rlim_t)settings_int(s, SETTING_SMTP_MAX_SESSIONS) +
		      (rlim_t)settings_int(s, SETTING_POP3_MAX_SESSIONS) +
		      (rlim_t)settings_int(s, SETTING_QUEUE_ACTIVE_LIMIT) +
		      PETRELD_NOFILE_SPARE;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_cur < rl.rlim_max && rl.rlim_cur < PETRELD_NOFILE_MAX) {
		rlim_t cur = rl.rlim_cur;

		rl.rlim_cur = rl.rlim_max < PETRELD_NOFILE_MAX
				      ? rl.rlim_max
				      : PETRELD_NOFILE_MAX;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			rl.rlim_cur = cur;
	}
	if (rl.rlim_cur < want)
		log_warn("descriptor limit %llu is below the %llu that "
			 "smtp.max_sessions, pop3.max_sessions and "
			 "queue.active_limit need: raise it (ulimit -n, "
			 "LimitNOFILE=) or lower them",
			 (unsigned long long)rl.rlim_cur,
			 (unsigned long long)want);
	else
		log_info("descriptor limit %llu",
			 (unsigned long long)rl.rlim_cur);
}

static void petreld_usage(void)
{
	fprintf(stderr, "usage: petreld [-n] -c FILE | -V\n"
			"  -c FILE  the config file\n"
			"  -n       check the config and exit\n"
			"  -V       print the revision built and exit\n");
	exit(2);
}

static int petreld_mkdir(const char *path, mode_t mode)
{
	char tmp[CONFIG_PATH_MAX + 64];
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(tmp))
		return -1;
	memcpy(tmp, path, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (tmp[i] != '/' && tmp[i] != '\0')
			continue;
		tmp[i] = '\0';
		if (mkdir(tmp, mode) < 0 && errno != EEXIST)
			return -1;
		tmp[i] = i < n ? '/' : '\0';
	}
	return 0;
}

/*
 * The hand-over of data_dir and log_dir to `user`, done as root on a tree
 * that user already owns, and so may change while it is walked. Walked by
 * descriptors: each directory is opened relative to its parent's descriptor
 * with O_NOFOLLOW and changed with fchown(), so a component swapped for a
 * symbolic link never leads the walk (or a chown) outside the tree.
 * Symbolic links are not followed nor changed; a regular file is opened
 * without following links and changed only when it has one link, since a
 * hard link planted in the tree could name a file outside it (root's own,
 * say) and fchown() would hand that file over.
 */
#define PETRELD_CHOWN_DEPTH 32

static void petreld_chown_fd(int fd, const char *path)
{
	struct stat st;

	if (fstat(fd, &st) < 0) {
		log_warn("chown %s: %s", path, strerror(errno));
		return;
	}
	if (st.st_uid == petreld.uid && st.st_gid == petreld.gid)
		return;
	if (S_ISREG(st.st_mode) && st.st_nlink != 1) {
		log_warn("chown %s: not done, the file has %lu links (one "
			 "may be outside %s)",
			 path, (unsigned long)st.st_nlink,
			 petreld.cfg.data_dir);
		return;
	}
	if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
		return;
	if (fchown(fd, petreld.uid, petreld.gid) < 0)
		log_warn("chown %s: %s", path, strerror(errno));
}

/* Hands directory dfd (closed here) and all below it to the user. */
static void petreld_chown_tree(int dfd, const char *path, int depth)
{
	char sub[PATH_MAX];
	struct dirent *e;
	struct stat st;
	DIR *d;
	int fd;

	petreld_chown_fd(dfd, path);
	if (depth >= PETRELD_CHOWN_DEPTH) {
		log_warn("chown %s: more than %d levels deep, not walked", path,
			 PETRELD_CHOWN_DEPTH);
		close(dfd);
		return;
	}
	d = fdopendir(dfd);
	if (d == NULL) {
		log_warn("chown %s: %s", path, strerror(errno));
		close(dfd);
		return;
	}
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
		if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			fd = openat(dirfd(d), e->d_name,
				    O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
					    O_CLOEXEC);
			if (fd >= 0)
				petreld_chown_tree(fd, sub, depth + 1);
			continue;
		}
		if (!S_ISREG(st.st_mode))
			continue;
		/* O_NONBLOCK: a FIFO swapped in never blocks the open. */
		fd = openat(dirfd(d), e->d_name,
			    O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY |
				    O_CLOEXEC);
		if (fd < 0)
			continue;
		petreld_chown_fd(fd, sub);
		close(fd);
	}
	closedir(d);
}

/* The top, `path`, is the config's: the directories above it are the
 * administrator's, but it must not itself be a symbolic link. */
static void petreld_chown(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0) {
		log_warn("chown %s: %s (not handed over to the user)", path,
			 strerror(errno));
		return;
	}
	petreld_chown_tree(fd, path, 0);
}

/*
 * Started as root: hand data and logs to `user`, then become it. A user
 * name that resolves to uid 0 runs as root only when it is "root" itself:
 * a second account with uid 0 (or a name that now points there) would
 * otherwise keep every privilege without anyone having asked for it.
 */
static void petreld_drop_privileges(const struct config *cfg)
{
	struct passwd *pw;
	size_t n;

	if (geteuid() != 0)
		return;
	pw = getpwnam(cfg->user);
	if (pw == NULL)
		fatal("user \"%s\" does not exist (config key user)",
		      cfg->user);
	if (pw->pw_uid == 0) {
		if (strcmp(cfg->user, "root") != 0)
			fatal("user \"%s\" has uid 0: petreld would run as "
			      "root; name an unprivileged user, or write "
			      "user = root to mean it",
			      cfg->user);
		log_warn("running as root (user = root): no privilege drop");
		return;
	}
	petreld.uid = pw->pw_uid;
	petreld.gid = pw->pw_gid;
	petreld_chown(cfg->data_dir);
	/* Inside data_dir it was done; walking it again from its path
	 * would follow a link planted in a component between the two. */
	n = strlen(cfg->data_dir);
	if (strncmp(cfg->log_dir, cfg->data_dir, n) != 0 ||
	    cfg->log_dir[n] != '/')
		petreld_chown(cfg->log_dir);
	if (setgroups(1, &pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
	    setuid(pw->pw_uid) < 0)
		fatal("cannot drop privileges to %s: %s", cfg->user,
		      strerror(errno));
	if (setuid(0) == 0)
		fatal("privileges were not dropped");
	log_info("running as user %s", cfg->user);
}

/* Fails start-up when the user petreld now runs as lacks `mode` on path;
 * a path that does not exist yet is skipped when `optional`. */
static void petreld_check_path(const char *path, int mode, int optional)
{
	struct passwd *pw;
	char uid[32];
	int e;

	if (access(path, mode) == 0 || (optional && errno == ENOENT))
		return;
	e = errno;
	pw = getpwuid(geteuid());
	snprintf(uid, sizeof(uid), "uid %ld", (long)geteuid());
	fatal("user %s cannot open %s: %s (check its mode and owner, and "
	      "those of the directories above it)",
	      pw != NULL ? pw->pw_name : uid, path, strerror(e));
}

/*
 * After the privilege drop, before anything says "ready": every path the
 * daemon needs, checked as the user it now is. Without this, a data_dir
 * below a folder that user cannot enter starts "fine" and fails every
 * AUTH and every delivery.
 */
static void petreld_check_paths(const struct config *cfg)
{
	static const char *const db_files[] = {"", "-wal", "-shm"};
	char path[CONFIG_PATH_MAX + 64];

	petreld_check_path(cfg->data_dir, R_OK | W_OK | X_OK, 0);
	/* access(), not open(): closing any descriptor of the database would
	 * drop the POSIX locks SQLite holds on it in this process. */
	for (size_t i = 0; i < sizeof(db_files) / sizeof(db_files[0]); i++) {
		snprintf(path, sizeof(path), "%s%s", petreld.db_path,
			 db_files[i]);
		petreld_check_path(path, R_OK | W_OK, i > 0);
	}
	snprintf(path, sizeof(path), "%s/queue", cfg->data_dir);
	petreld_check_path(path, R_OK | W_OK | X_OK, 0);
	for (int q = 0; q < QUEUE_COUNT; q++) {
		snprintf(path, sizeof(path), "%s/queue/%s", cfg->data_dir,
			 queue_name_str((enum queue_name)q));
		petreld_check_path(path, R_OK | W_OK | X_OK, 0);
	}
	snprintf(path, sizeof(path), "%s/queue/free", cfg->data_dir);
	petreld_check_path(path, R_OK | W_OK | X_OK, 0);
	/* Made at the first local delivery. */
	snprintf(path, sizeof(path), "%s/mail", cfg->data_dir);
	petreld_check_path(path, R_OK | W_OK | X_OK, 1);
	/* A new file each day, and on SIGHUP. */
	petreld_check_path(cfg->log_dir, W_OK | X_OK, 0);
}

/*
 * <data_dir>/petreld.pid, locked for the daemon's life: a second petreld
 * on the same data is refused, and petrelctl knows whom to signal (and that
 * the pid is live: the file is locked).
 */
static void petreld_pidfile(const struct config *cfg)
{
	char buf[32];
	ssize_t n;

	snprintf(petreld.pid_path, sizeof(petreld.pid_path), "%s/petreld.pid",
		 cfg->data_dir);
	petreld.pid_fd =
		open(petreld.pid_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (petreld.pid_fd < 0)
		fatal("cannot open %s: %s", petreld.pid_path, strerror(errno));
	if (flock(petreld.pid_fd, LOCK_EX | LOCK_NB) < 0) {
		n = errno == EWOULDBLOCK
			    ? read(petreld.pid_fd, buf, sizeof(buf) - 1)
			    : -1;
		buf[n > 0 ? n : 0] = '\0';
		buf[strcspn(buf, "\n")] = '\0';
		fatal("another petreld (pid %s) is running on %s",
		      buf[0] != '\0' ? buf : "?", cfg->data_dir);
	}
	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (ftruncate(petreld.pid_fd, 0) < 0 ||
	    pwrite(petreld.pid_fd, buf, (size_t)n, 0) != n)
		fatal("cannot write %s: %s", petreld.pid_path, strerror(errno));
}

static void *petreld_thread_init(void *arg)
{
	struct env_thread *t = calloc(1, sizeof(*t));
	const char *err;

	if (t == NULL)
		return NULL;
	t->dir = directory_open(petreld.db_path, &err);
	if (t->dir == NULL)
		log_error("worker cannot open the directory: %s", err);
	return t;
}

static void petreld_thread_deinit(void *state)
{
	struct env_thread *t = state;

	if (t == NULL)
		return;
	directory_close(t->dir);
	free(t);
}

static void petreld_reload_done(struct petreld_reload *r)
{
	if (atomic_fetch_sub(&r->waiting, 1) != 1)
		return;
	log_info("directory changed: settings reloaded (change %lld)",
		 (long long)r->change);
	free(r);
}

/* On loop l: the new snapshot, and the trusted hosts built from it with
 * the loop's own resolver. */
static void petreld_reload_apply(void *arg)
{
	struct petreld_reload_msg *m = arg;
	struct env *env = &m->l->env;

	settings_unref(env->settings);
	env->settings = m->s;
	/* No resolver: the loop has stopped, this is main draining it. */
	if (env->dns != NULL) {
		policy_trust_free(env->trust);
		env->trust = policy_trust_new(m->s, env->dns);
	}
	petreld_reload_done(m->r);
	free(m);
}

/* Hands snapshot s (applied on loop 0 already) to every other loop. */
static void petreld_reload_send(struct settings *s)
{
	struct petreld_reload *r = malloc(sizeof(*r));

	if (r == NULL) {
		log_error("cannot reload settings: out of memory");
		return;
	}
	atomic_init(&r->waiting, 1);
	r->change = petreld.changes;
	for (unsigned i = 1; i < petreld.nloops; i++) {
		struct petreld_loop *l = &petreld.loops[i - 1];
		struct petreld_reload_msg *m = malloc(sizeof(*m));

		if (!l->running || petreld.env.shutting_down || m == NULL) {
			free(m);
			continue;
		}
		m->l = l;
		m->s = s;
		m->r = r;
		settings_ref(s);
		atomic_fetch_add(&r->waiting, 1);
		if (io_loop_post(l->env.loop, petreld_reload_apply, m) < 0) {
			atomic_fetch_sub(&r->waiting, 1);
			settings_unref(s);
			free(m);
			log_error("cannot reload the settings of loop %u: "
				  "out of memory",
				  i);
		}
	}
	petreld_reload_done(r);
}

/* A new settings snapshot and what depends on it. */
static void petreld_reload(void)
{
	const char *err;
	struct settings *s = directory_settings_load(petreld.env.dir, &err);

	if (s == NULL) {
		log_error("cannot reload settings: %s", err);
		return;
	}
	settings_unref(petreld.env.settings);
	petreld.env.settings = s;
	policy_trust_free(petreld.env.trust);
	petreld.env.trust = policy_trust_new(s, petreld.env.dns);
	screening_reload(&petreld.env);
	hijacking_reload(&petreld.env);
	petreld_reload_send(s);
}

/*
 * Follows the database: a new snapshot whenever another process (petrelctl,
 * the web admin) committed a change. PRAGMA data_version moves on any
 * commit of another connection, the daemon's own workers included; the
 * change counter only on an administrator's change.
 */
/* Follows the content filter's rules: recompiled when their version in
 * the directory moved (petrelctl filter ...), then used by the sessions
 * that start a message after it. A set that fails to compile leaves the
 * previous one in place. */
static void petreld_filter_poll(void)
{
	static int64_t version = -1;
	int64_t v;
	const char *err;
	char error[300];
	struct filter_set *set;

	if (directory_filter_version(petreld.env.dir, &v, &err) != 1 ||
	    v == version)
		return;
	set = filter_store_load(petreld.env.dir, error, sizeof(error));
	if (set == NULL) {
		if (version != -2)
			log_error("cannot load the filter rules: %s", error);
		version = -2;
		return;
	}
	smtp_filter_install(set);
	if (version != -1)
		log_info("directory changed: filter rules reloaded (%zu rules)",
			 filter_set_rules(set)->n);
	filter_set_unref(set);
	version = v;
}

static void petreld_settings_cb(void *arg)
{
	int64_t v, n;

	if (directory_data_version(petreld.env.dir, &v) == 1 &&
	    v != petreld.data_version) {
		petreld.data_version = v;
		if (directory_change_count(petreld.env.dir, &n) == 1 &&
		    n != petreld.changes) {
			petreld.changes = n;
			petreld_reload();
		}
	}
	hijacking_tick(&petreld.env, clock_now_ms());
	/* Now and then, forget idle screening state. */
	if (++petreld.ticks % (60000 / PETRELD_SETTINGS_POLL_MS) == 0)
		screen_expire(petreld.env.screen, petreld.env.settings,
			      clock_now_ms());
	petreld_filter_poll();
	io_timer_add(petreld.settings_timer, PETRELD_SETTINGS_POLL_MS);
}

/* Loop l (not 0) stops once its sessions and its jobs are done. */
static void petreld_loop_exit_cb(void *arg)
{
	struct petreld_loop *l = arg;

	if ((l->smtp == NULL || smtp_server_sessions(l->smtp) == 0) &&
	    (l->pop3 == NULL || pop3_server_sessions(l->pop3) == 0) &&
	    io_loop_pending(l->env.loop) == 0) {
		io_loop_exit(l->env.loop);
		return;
	}
	io_timer_add(l->exit_timer, 50);
}

/* SIGTERM, on loop l's thread. */
static void petreld_loop_shutdown(void *arg)
{
	struct petreld_loop *l = arg;

	l->env.shutting_down = 1;
	if (l->smtp != NULL)
		smtp_server_shutdown(l->smtp, PETRELD_SHUTDOWN_GRACE_MS);
	if (l->pop3 != NULL)
		pop3_server_shutdown(l->pop3, PETRELD_SHUTDOWN_GRACE_MS);
	io_timer_add(l->exit_timer, 0);
}

static void petreld_exit_cb(void *arg)
{
	if ((petreld.smtp == NULL || smtp_server_sessions(petreld.smtp) == 0) &&
	    (petreld.pop3 == NULL || pop3_server_sessions(petreld.pop3) == 0) &&
	    atomic_load(&petreld.loops_running) == 0 &&
	    io_loop_pending(petreld.env.loop) == 0 &&
	    io_workers_pending(petreld.env.workers) == 0 &&
	    io_workers_pending(petreld.env.commit_workers) == 0 &&
	    io_workers_pending(petreld.env.lookup_workers) == 0 &&
	    io_workers_pending(petreld.env.delivery_workers) == 0) {
		io_loop_exit(petreld.env.loop);
		return;
	}
	io_timer_add(petreld.exit_timer, 50);
}

static void petreld_signal_cb(int signo, void *arg)
{
	if (signo == SIGHUP) {
		log_reopen();
		log_info("SIGHUP: log files reopened");
		return;
	}
	if (signo == SIGUSR1) {
		/* petrelctl queue release/retry moved messages into active. */
		delivery_dispatch_rescan(petreld.dispatch);
		return;
	}
	if (petreld.env.shutting_down)
		return;
	log_info("%s: finishing transactions and exiting",
		 signo == SIGTERM ? "SIGTERM" : "SIGINT");
	petreld.env.shutting_down = 1;
	delivery_dispatch_stop(petreld.dispatch);
	if (petreld.smtp != NULL)
		smtp_server_shutdown(petreld.smtp, PETRELD_SHUTDOWN_GRACE_MS);
	if (petreld.pop3 != NULL)
		pop3_server_shutdown(petreld.pop3, PETRELD_SHUTDOWN_GRACE_MS);
	for (unsigned i = 1; i < petreld.nloops; i++) {
		struct petreld_loop *l = &petreld.loops[i - 1];

		if (l->running &&
		    io_loop_post(l->env.loop, petreld_loop_shutdown, l) < 0)
			fatal("cannot stop loop %u: out of memory", i);
	}
	io_timer_add(petreld.exit_timer, 0);
}

static void petreld_message_queued(struct env *env, const char *id)
{
	delivery_dispatch_add(petreld.dispatch, id);
}

static void petreld_message_queued_cb(void *arg)
{
	delivery_dispatch_add(petreld.dispatch, arg);
	free(arg);
}

/* From another loop: the queue manager is loop 0's. */
static void petreld_message_queued_post(struct env *env, const char *id)
{
	char *copy = strdup(id);

	if (copy == NULL || io_loop_post(petreld.env.loop,
					 petreld_message_queued_cb, copy) < 0) {
		/* It is in active/: the next start, or a rescan (SIGUSR1,
		 * petrelctl queue retry), delivers it. */
		log_error("queue: %s: out of memory, delivery waits for a "
			  "rescan",
			  id);
		free(copy);
	}
}

/* Loop i's env, resolver, caches and listeners (before the privileges
 * are dropped: the ports may be privileged). */
static void petreld_loop_new(unsigned i)
{
	struct petreld_loop *l = &petreld.loops[i - 1];
	struct env *env = &l->env;
	const char *err;

	*env = petreld.env;
	env->loop_index = i;
	env->loop = io_loop_new();
	if (env->loop == NULL)
		fatal("cannot create event loop %u", i);
	env->dir = directory_open(petreld.db_path, &err);
	if (env->dir == NULL)
		fatal("directory %s: %s", petreld.db_path, err);
	settings_ref(env->settings);
	env->dns = dns_new(env->loop, petreld.cfg.dns_server,
			   PETRELD_DNS_TIMEOUT_MS, 2, &err);
	if (env->dns == NULL)
		fatal("resolver: %s", err);
	env->trust = policy_trust_new(env->settings, env->dns);
	l->exit_timer = io_timer_new(env->loop, petreld_loop_exit_cb, l);
	if (l->exit_timer == NULL)
		fatal("out of memory");
	env->message_queued = petreld_message_queued_post;
	l->smtp = smtp_server_new(env, petreld.smtp, &err);
	if (l->smtp == NULL)
		fatal("%s", err);
	l->pop3 = pop3_server_new(env, petreld.pop3, &err);
	if (l->pop3 == NULL)
		fatal("%s", err);
}

static void *petreld_loop_main(void *arg)
{
	struct petreld_loop *l = arg;
	struct env *env = &l->env;
	char name[16];

	/* For top -H and /proc/PID/task/TID/comm. */
	snprintf(name, sizeof(name), "petreld-loop%u", env->loop_index);
	pthread_setname_np(pthread_self(), name);
	io_loop_run(env->loop);
	/* What belongs to this thread goes with it; the loop itself (and
	 * what may still be posted to it) is freed by main. */
	smtp_server_free(l->smtp);
	pop3_server_free(l->pop3);
	l->smtp = NULL;
	l->pop3 = NULL;
	io_timer_free(l->exit_timer);
	l->exit_timer = NULL;
	policy_trust_free(env->trust);
	env->trust = NULL;
	dns_free(env->dns);
	env->dns = NULL;
	atomic_fetch_sub(&petreld.loops_running, 1);
	return NULL;
}

/* Starts loops 1 .. nloops-1, with the signals blocked: they are loop
 * 0's. */
static void petreld_loops_start(void)
{
	sigset_t all, old;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (unsigned i = 1; i < petreld.nloops; i++) {
		struct petreld_loop *l = &petreld.loops[i - 1];

		/* The pools exist now. */
		l->env.workers = petreld.env.workers;
		l->env.commit_workers = petreld.env.commit_workers;
		l->env.lookup_workers = petreld.env.lookup_workers;
		l->env.delivery_workers = petreld.env.delivery_workers;
		atomic_fetch_add(&petreld.loops_running, 1);
		if (pthread_create(&l->thread, NULL, petreld_loop_main, l) != 0)
			fatal("cannot start event loop %u", i);
		l->running = 1;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* After every loop stopped (each freed its servers, timer, resolver and
 * trusted hosts on its own thread): what their posts left, and the rest. */
static void petreld_loops_free(void)
{
	for (unsigned i = 1; i < petreld.nloops; i++) {
		struct petreld_loop *l = &petreld.loops[i - 1];
		struct env *env = &l->env;

		if (l->running)
			pthread_join(l->thread, NULL);
		l->running = 0;
		io_loop_drain(env->loop);
		settings_unref(env->settings);
		directory_close(env->dir);
		io_loop_free(env->loop);
	}
	free(petreld.loops);
	petreld.loops = NULL;
}

static void petreld_tls(const struct config *cfg)
{
	const char *err;

	if (access(cfg->tls_cert, R_OK) != 0 &&
	    access(cfg->tls_key, R_OK) != 0) {
		char dir[CONFIG_PATH_MAX];
		char *slash;

		snprintf(dir, sizeof(dir), "%s", cfg->tls_cert);
		slash = strrchr(dir, '/');
		if (slash != NULL) {
			*slash = '\0';
			petreld_mkdir(dir, 0750);
		}
		if (io_tls_make_self_signed(cfg->tls_cert, cfg->tls_key,
					    cfg->hostname, &err) < 0)
			fatal("%s", err);
		log_info("made a self-signed certificate for %s in %s",
			 cfg->hostname, cfg->tls_cert);
	}
	petreld.env.tls = io_tls_server_new(cfg->tls_cert, cfg->tls_key, &err);
	if (petreld.env.tls == NULL)
		fatal("TLS: %s (%s, %s)", err, cfg->tls_cert, cfg->tls_key);
}

int main(int argc, char **argv)
{
	struct config *cfg = &petreld.cfg;
	const char *config_path = NULL, *err;
	struct io_signal *sigs[4];
	int check_only = 0, opt;

	while ((opt = getopt(argc, argv, "c:nhV")) != -1) {
		switch (opt) {
		case 'c':
			config_path = optarg;
			break;
		case 'V':
			printf("petreld %s\n", PETREL_REVISION);
			return 0;
		case 'n':
			check_only = 1;
			break;
		default:
			petreld_usage();
		}
	}
	if (config_path == NULL || optind != argc)
		petreld_usage();
	if (config_load(cfg, config_path, &err) < 0) {
		fprintf(stderr, "petreld: %s\n", err);
		return 1;
	}
	if (check_only) {
		printf("petreld: %s: configuration OK\n", config_path);
		return 0;
	}
	if (sodium_init() < 0) {
		fprintf(stderr, "petreld: libsodium failed to start\n");
		return 1;
	}
	umask(027);
	if (petreld_mkdir(cfg->data_dir, 0750) < 0) {
		fprintf(stderr, "petreld: cannot create %s: %s\n",
			cfg->data_dir, strerror(errno));
		return 1;
	}
	if (log_init(cfg->log_dir, 1, &err) < 0) {
		fprintf(stderr, "petreld: %s: %s\n", cfg->log_dir, err);
		return 1;
	}
	log_info("petreld %s starting, hostname %s, data in %s",
		 PETREL_REVISION, cfg->hostname, cfg->data_dir);
	petreld_pidfile(cfg);

	snprintf(petreld.db_path, sizeof(petreld.db_path), "%s/petrel.db",
		 cfg->data_dir);
	petreld.env.cfg = cfg;
	petreld.env.dir = directory_open(petreld.db_path, &err);
	if (petreld.env.dir == NULL)
		fatal("directory %s: %s", petreld.db_path, err);
	petreld.env.settings = directory_settings_load(petreld.env.dir, &err);
	if (petreld.env.settings == NULL)
		fatal("settings: %s", err);
	petreld_nofile(petreld.env.settings);
	directory_data_version(petreld.env.dir, &petreld.data_version);
	directory_change_count(petreld.env.dir, &petreld.changes);
	petreld.env.queue = queue_open(cfg->data_dir, &err);
	if (petreld.env.queue == NULL)
		fatal("spool: %s", err);
	petreld_tls(cfg);

	petreld.env.loop = io_loop_new();
	if (petreld.env.loop == NULL)
		fatal("cannot create the event loop");
	petreld.env.dns = dns_new(petreld.env.loop, cfg->dns_server,
				  PETRELD_DNS_TIMEOUT_MS, 2, &err);
	if (petreld.env.dns == NULL)
		fatal("resolver: %s", err);
	petreld.env.trust =
		policy_trust_new(petreld.env.settings, petreld.env.dns);
	petreld.env.dnsbl_cache = dnsbl_cache_new(PETRELD_DNSBL_CACHE);
	if (petreld.env.dnsbl_cache == NULL)
		fatal("out of memory");
	petreld.env.screen = screen_new();
	if (petreld.env.screen == NULL)
		fatal("out of memory");
	screening_reload(&petreld.env);
	if (hijacking_start(&petreld.env, &err) < 0)
		fatal("hijack detection: %s", err);
	petreld.env.message_queued = petreld_message_queued;
	petreld.smtp = smtp_server_new(&petreld.env, NULL, &err);
	if (petreld.smtp == NULL)
		fatal("%s", err);
	petreld.pop3 = pop3_server_new(&petreld.env, NULL, &err);
	if (petreld.pop3 == NULL)
		fatal("%s", err);
	petreld.nloops = (unsigned)cfg->loops;
	petreld.loops = calloc(petreld.nloops, sizeof(*petreld.loops));
	if (petreld.loops == NULL)
		fatal("out of memory");
	for (unsigned i = 1; i < petreld.nloops; i++)
		petreld_loop_new(i);
	petreld_drop_privileges(cfg);
	petreld_check_paths(cfg);

	petreld.env.workers = io_workers_new(petreld.env.loop, cfg->workers,
					     petreld_thread_init,
					     petreld_thread_deinit, NULL, &err);
	if (petreld.env.workers == NULL)
		fatal("%s", err);
	petreld.env.lookup_workers = io_workers_new(
		petreld.env.loop, cfg->workers, petreld_thread_init,
		petreld_thread_deinit, NULL, &err);
	if (petreld.env.lookup_workers == NULL)
		fatal("%s", err);
	/* Spooling needs no directory handle of its own. */
	petreld.env.commit_workers = io_workers_new(
		petreld.env.loop, cfg->commit_workers, NULL, NULL, NULL, &err);
	if (petreld.env.commit_workers == NULL)
		fatal("%s", err);
	petreld.env.delivery_workers = io_workers_new(
		petreld.env.loop, cfg->delivery_workers, petreld_thread_init,
		petreld_thread_deinit, NULL, &err);
	if (petreld.env.delivery_workers == NULL)
		fatal("%s", err);
	petreld.dispatch = delivery_dispatch_new(&petreld.env, &err);
	if (petreld.dispatch == NULL)
		fatal("delivery: %s", err);

	petreld_filter_poll();
	petreld.settings_timer =
		io_timer_new(petreld.env.loop, petreld_settings_cb, NULL);
	petreld.exit_timer =
		io_timer_new(petreld.env.loop, petreld_exit_cb, NULL);
	if (petreld.settings_timer == NULL || petreld.exit_timer == NULL)
		fatal("out of memory");
	io_timer_add(petreld.settings_timer, PETRELD_SETTINGS_POLL_MS);
	sigs[0] = io_signal_new(petreld.env.loop, SIGHUP, petreld_signal_cb,
				NULL);
	sigs[1] = io_signal_new(petreld.env.loop, SIGTERM, petreld_signal_cb,
				NULL);
	sigs[2] = io_signal_new(petreld.env.loop, SIGINT, petreld_signal_cb,
				NULL);
	sigs[3] = io_signal_new(petreld.env.loop, SIGUSR1, petreld_signal_cb,
				NULL);
	petreld_loops_start();
	log_info("petreld ready (%u event loop%s)", petreld.nloops,
		 petreld.nloops == 1 ? "" : "s");
	io_loop_run(petreld.env.loop);

	log_info("petreld stopped");
	for (int i = 0; i < 4; i++)
		io_signal_free(sigs[i]);
	petreld_loops_free();
	smtp_server_free(petreld.smtp);
	pop3_server_free(petreld.pop3);
	/* The commits first: their completions hand messages to delivery. */
	io_workers_free(petreld.env.commit_workers);
	io_workers_free(petreld.env.lookup_workers);
	io_workers_free(petreld.env.workers);
	io_workers_free(petreld.env.delivery_workers);
	/* What the windows gained since the last tick. */
	hijacking_stop(&petreld.env);
	delivery_dispatch_free(petreld.dispatch);
	io_timer_free(petreld.settings_timer);
	io_timer_free(petreld.exit_timer);
	io_tls_ctx_free(petreld.env.tls);
	queue_close(petreld.env.queue);
	policy_trust_free(petreld.env.trust);
	screen_free(petreld.env.screen);
	dns_free(petreld.env.dns);
	dnsbl_cache_free(petreld.env.dnsbl_cache);
	settings_unref(petreld.env.settings);
	directory_close(petreld.env.dir);
	io_loop_free(petreld.env.loop);
	unlink(petreld.pid_path);
	close(petreld.pid_fd);
	log_deinit();
	return 0;
}
