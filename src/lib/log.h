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
 * A session writes its first `max` lines; past them only the lines that
 * trace mail and errors ("keep": connect, TLS, AUTH results, MAIL, RCPT,
 * the DATA result, 4xx/5xx, disconnect), and counts the rest for one
 * summary line.
 */
struct log_budget {
	uint64_t lines;		/* lines written */
	uint64_t skipped_cmds;	/* commands not written since the summary */
	uint64_t skipped_bytes; /* bytes of lines not written, since then */
	int over; /* the notice that the limit was reached is out */
};

/* A summary line once this many commands were not written (a long
 * session still says, now and then, what it did). */
#define LOG_BUDGET_SUMMARY_EVERY 10000

/*
 * Decides whether a transcript line of len bytes is written into f: yes
 * when under max lines or when keep; otherwise it is counted (a command
 * when dir is LOG_FROM_PEER). Writes the notice when the first line is
 * dropped and a summary every LOG_BUDGET_SUMMARY_EVERY commands dropped.
 * Returns 1 to write the line, 0 to drop it.
 */
int log_budget_admit(struct log_budget *b, enum log_file f, const char *session,
		     int64_t max, const char *dir, int keep, size_t len);
/* Writes the summary line ("N more commands, M bytes, not logged") when
 * lines were dropped since the last one; for the end of a session. */
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
