/* Per-protocol daily log files, plus stderr. */
#ifndef PETREL_LOG_H
#define PETREL_LOG_H

#include <stddef.h>
#include <stdint.h>

/*
 * The files, one per protocol and day, in log_dir: "<name>-YYYY-MM-DD.log".
 * Each line: timestamp, session id, direction ("<--" from the peer, "-->"
 * to the peer, "***" an event), text.
 */
enum log_file {
	LOG_SMTP_IN,
	LOG_SMTP_OUT,
	LOG_POP3,
	LOG_SECURITY,
	LOG_SYSTEM,
	LOG_ADMIN,
	LOG_FILE_COUNT
};

#define LOG_FROM_PEER "<--"
#define LOG_TO_PEER "-->"
#define LOG_EVENT "***"

/* Opens logging into log_dir (created if missing; NULL: stderr only), and
 * copies every line to stderr when to_stderr. Returns 0, or -1 with error_r
 * set (static text). */
int log_init(const char *log_dir, int to_stderr, const char **error_r);
/* Closes and reopens the files (SIGHUP, after rotation by logrotate). */
void log_reopen(void);
void log_deinit(void);
/* The base name of a log file ("smtp-in"). */
const char *log_file_name(enum log_file f);

/* Writes one line. `text` made by fmt must already be sanitized where it
 * carries client bytes (log_sanitize). Safe from any thread. */
void log_write(enum log_file f, const char *session, const char *dir,
	       const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/*
 * What one session may write to its transcript. Every command and reply
 * is a line, so a client that sends NOOPs and reads the replies could make
 * the logs grow faster than it sends, and fill the disk the spool needs.
 * A session writes its first `max` lines. Past them:
 * - lines that must always be there (LOG_KEEP_ALWAYS: connect, TLS,
 *   disconnect, the events of a message) are written;
 * - lines that trace mail or report errors (LOG_KEEP: AUTH, QUIT, 4xx/5xx
 *   replies) are written up to `max` more;
 * - the lines of a mail transaction (MAIL, RCPT and their replies) are
 *   held (log_budget_hold) and written only when its DATA starts, so that
 *   every message can still be traced while a MAIL/RSET loop writes
 *   nothing;
 * - the rest is counted for one summary line.
 */
enum log_keep {
	LOG_KEEP_NO = 0,
	LOG_KEEP = 1,	    /* within the second allowance */
	LOG_KEEP_ALWAYS = 2 /* whatever the count */
};

/* The most bytes of transaction lines held at once: a transaction with
 * more RCPT lines has the rest counted, and says so when written. */
#define LOG_BUDGET_HELD_MAX (16 * 1024)

struct log_budget {
	uint64_t lines;		/* lines written */
	uint64_t kept;		/* LOG_KEEP lines written past the limit */
	uint64_t skipped_cmds;	/* commands not written since the summary */
	uint64_t skipped_bytes; /* bytes of lines not written, since then */
	int over;      /* the notice that the limit was reached is out */
	int over_kept; /* and the notice for the second one */
	/* Held transaction lines, each "<dir> <text>\n"; NULL when none. */
	char *held;
	size_t held_len;
	uint64_t held_cmds, held_dropped;
};

/* A summary line once this many commands were not written (a long
 * session still says, now and then, what it did). */
#define LOG_BUDGET_SUMMARY_EVERY 10000

/*
 * Decides whether a transcript line of len bytes is written into f: yes
 * when under max lines or as keep (enum log_keep) allows; otherwise it is
 * counted (a command when dir is LOG_FROM_PEER). Writes a notice when
 * each limit is first reached and a summary every
 * LOG_BUDGET_SUMMARY_EVERY commands dropped. Returns 1 to write the line,
 * 0 to drop it.
 */
int log_budget_admit(struct log_budget *b, enum log_file f, const char *session,
		     int64_t max, const char *dir, int keep, size_t len);
/* Past the first limit (log_budget_over), a line of a transaction is held
 * here instead of written. */
int log_budget_over(const struct log_budget *b, int64_t max);
void log_budget_hold(struct log_budget *b, const char *dir, const char *text);
/* The transaction reached DATA: writes what was held. */
void log_budget_release(struct log_budget *b, enum log_file f,
			const char *session);
/* The transaction ended without DATA: what was held is counted. */
void log_budget_discard(struct log_budget *b);
/* Counts what is held and writes the summary line ("N more commands, M
 * bytes, not logged") when lines were dropped since the last one; for the
 * end of a session (it frees what log_budget_hold kept). */
void log_budget_flush(struct log_budget *b, enum log_file f,
		      const char *session);

/* Daemon events, into the system log. */
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Start-up errors, broken invariants, out of memory: logs and exits 1. */
void fatal(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));

/*
 * Copies len bytes of client text into dst (dstsize > 0, always terminated),
 * escaping every byte that is not printable ASCII as "\xNN" and cutting it
 * at dstsize with "..." at the end. Returns dst.
 */
char *log_sanitize(char *dst, size_t dstsize, const void *src, size_t len);

#endif
