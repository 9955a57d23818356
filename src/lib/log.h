/* Per-protocol daily log files, plus stderr. */
#ifndef PETREL_LOG_H
#define PETREL_LOG_H

#include <stddef.h>

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
