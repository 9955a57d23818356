/*
 * log: per-protocol daily files in log_dir, plus stderr. Owns the open file
 * descriptors; rolls over to a new file when the local date changes; writes
 * each line with one write() on an O_APPEND descriptor so lines of different
 * threads and processes (petreld, petrelctl) never interleave.
 *
 * The log file gets every line at once: a line that is in the file when a
 * client reads the reply it describes survives a crash of the process.
 * The copy on stderr, when stderr is not a terminal (a pipe to a service
 * manager, a file), is gathered and written every LOG_STDERR_FLUSH_MS,
 * when LOG_STDERR_BUF is full, on log_reopen, log_deinit and exit: one
 * write() for many lines instead of one more per line. A crash can lose
 * the last fraction of a second of that copy, never of the files.
 */
#include "lib/log.h"
#include "lib/clock.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 8192
#define LOG_STDERR_BUF 65536
#define LOG_STDERR_FLUSH_MS 100

static const char *const log_names[LOG_FILE_COUNT] = {
	[LOG_SMTP_IN] = "smtp-in", [LOG_SMTP_OUT] = "smtp-out",
	[LOG_POP3] = "pop3",	   [LOG_SECURITY] = "security",
	[LOG_SYSTEM] = "system",   [LOG_ADMIN] = "admin",
};

static struct {
	pthread_mutex_t lock;
	char dir[4096];
	int have_dir;
	int to_stderr;
	int fd[LOG_FILE_COUNT];
	int day[LOG_FILE_COUNT]; /* yyyymmdd of the open file */
	/* The gathered stderr copy (see the top of the file). */
	int buffered;
	char *ebuf;
	size_t elen;
	pthread_t flusher;
	int flusher_running;
	int stopping;
	pthread_cond_t cond;
} log_state = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.to_stderr = 1,
	.fd = {-1, -1, -1, -1, -1, -1},
	.cond = PTHREAD_COND_INITIALIZER,
};

/* Called with the lock held: writes out the gathered stderr lines. */
static void log_stderr_flush(void)
{
	size_t off = 0;

	while (off < log_state.elen) {
		ssize_t n = write(STDERR_FILENO, log_state.ebuf + off,
				  log_state.elen - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break; /* nowhere to report it */
		off += (size_t)n;
	}
	log_state.elen = 0;
}

static void *log_flusher_main(void *arg)
{
	pthread_mutex_lock(&log_state.lock);
	while (!log_state.stopping) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += LOG_STDERR_FLUSH_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&log_state.cond, &log_state.lock, &ts);
		log_stderr_flush();
	}
	pthread_mutex_unlock(&log_state.lock);
	return NULL;
}

static void log_atexit(void)
{
	pthread_mutex_lock(&log_state.lock);
	if (log_state.elen > 0)
		log_stderr_flush();
	pthread_mutex_unlock(&log_state.lock);
}

/* Called with the lock held: stops gathering, flushes, frees. */
static void log_stderr_unbuffer(void)
{
	if (log_state.flusher_running) {
		log_state.stopping = 1;
		pthread_cond_broadcast(&log_state.cond);
		pthread_mutex_unlock(&log_state.lock);
		pthread_join(log_state.flusher, NULL);
		pthread_mutex_lock(&log_state.lock);
		log_state.flusher_running = 0;
		log_state.stopping = 0;
	}
	if (log_state.elen > 0)
		log_stderr_flush();
	log_state.buffered = 0;
	free(log_state.ebuf);
	log_state.ebuf = NULL;
}

/* Called with the lock held: gathers the stderr copy when stderr is not a
 * terminal. Falls back to a write per line when that cannot be set up. */
static void log_stderr_buffer(void)
{
	static int atexit_done;

	if (log_state.buffered || isatty(STDERR_FILENO))
		return;
	log_state.ebuf = malloc(LOG_STDERR_BUF);
	if (log_state.ebuf == NULL)
		return;
	log_state.elen = 0;
	log_state.stopping = 0;
	if (pthread_create(&log_state.flusher, NULL, log_flusher_main, NULL) !=
	    0) {
		free(log_state.ebuf);
		log_state.ebuf = NULL;
		return;
	}
	log_state.flusher_running = 1;
	log_state.buffered = 1;
	if (!atexit_done && atexit(log_atexit) == 0)
		atexit_done = 1;
}

const char *log_file_name(enum log_file f)
{
	return (unsigned)f < LOG_FILE_COUNT ? log_names[f] : "system";
}

static int log_mkdirs(const char *path)
{
	char tmp[4096];
	size_t i, n = strlen(path);

	if (n == 0 || n >= sizeof(tmp))
		return -1;
	memcpy(tmp, path, n + 1);
	for (i = 1; i <= n; i++) {
		if (tmp[i] != '/' && tmp[i] != '\0')
			continue;
		tmp[i] = '\0';
		if (mkdir(tmp, 0750) < 0 && errno != EEXIST)
			return -1;
		tmp[i] = i < n ? '/' : '\0';
	}
	return 0;
}

static void log_close_all(void)
{
	for (int i = 0; i < LOG_FILE_COUNT; i++) {
		if (log_state.fd[i] >= 0)
			close(log_state.fd[i]);
		log_state.fd[i] = -1;
		log_state.day[i] = 0;
	}
}

int log_init(const char *log_dir, int to_stderr, const char **error_r)
{
	int n;

	pthread_mutex_lock(&log_state.lock);
	/* Files open in a previous folder would keep being written. */
	log_close_all();
	log_state.to_stderr = to_stderr;
	if (to_stderr)
		log_stderr_buffer();
	else if (log_state.buffered)
		log_stderr_unbuffer();
	log_state.have_dir = 0;
	if (log_dir != NULL) {
		n = snprintf(log_state.dir, sizeof(log_state.dir), "%s",
			     log_dir);
		if (n < 0 || (size_t)n >= sizeof(log_state.dir) ||
		    log_mkdirs(log_dir) < 0) {
			pthread_mutex_unlock(&log_state.lock);
			*error_r = "cannot create log directory";
			return -1;
		}
		log_state.have_dir = 1;
	}
	pthread_mutex_unlock(&log_state.lock);
	return 0;
}

void log_reopen(void)
{
	pthread_mutex_lock(&log_state.lock);
	log_close_all();
	if (log_state.elen > 0)
		log_stderr_flush();
	pthread_mutex_unlock(&log_state.lock);
}

void log_deinit(void)
{
	pthread_mutex_lock(&log_state.lock);
	log_close_all();
	if (log_state.buffered)
		log_stderr_unbuffer();
	log_state.have_dir = 0;
	pthread_mutex_unlock(&log_state.lock);
}

/* Called with the lock held. Returns the fd for today's file, or -1. */
static int log_fd(enum log_file f, const struct tm *tm)
{
	char path[4200];
	int day = (tm->tm_year + 1900) * 10000 + (tm->tm_mon + 1) * 100 +
		  tm->tm_mday;
	int n;

	if (!log_state.have_dir)
		return -1;
	if (log_state.fd[f] >= 0 && log_state.day[f] == day)
		return log_state.fd[f];
	if (log_state.fd[f] >= 0)
		close(log_state.fd[f]);
	log_state.fd[f] = -1;
	n = snprintf(path, sizeof(path), "%s/%s-%04d-%02d-%02d.log",
		     log_state.dir, log_names[f], tm->tm_year + 1900,
		     tm->tm_mon + 1, tm->tm_mday);
	if (n < 0 || (size_t)n >= sizeof(path))
		return -1;
	log_state.fd[f] =
		open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	log_state.day[f] = day;
	return log_state.fd[f];
}

__attribute__((format(printf, 4, 0))) static void
log_vwrite(enum log_file f, const char *session, const char *dir,
	   const char *fmt, va_list ap)
{
	char line[LOG_LINE_MAX];
	struct tm tm;
	int64_t ms = clock_now_ms();
	time_t secs = (time_t)(ms / 1000);
	size_t len;
	int n, fd;

	if ((unsigned)f >= LOG_FILE_COUNT)
		f = LOG_SYSTEM;
	localtime_r(&secs, &tm);
	n = snprintf(
		line, sizeof(line), "%04d-%02d-%02d %02d:%02d:%02d.%03d %s %s ",
		tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		tm.tm_min, tm.tm_sec, (int)(ms % 1000),
		session != NULL ? session : "-", dir != NULL ? dir : "***");
	if (n < 0)
		return;
	len = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
	n = vsnprintf(line + len, sizeof(line) - len, fmt, ap);
	if (n < 0)
		return;
	len += (size_t)n;
	if (len > sizeof(line) - 2) {
		/* Over-long text is cut and marked, never split. */
		len = sizeof(line) - 5;
		memcpy(line + len, "...", 3);
		len += 3;
	}
	line[len++] = '\n';

	pthread_mutex_lock(&log_state.lock);
	fd = log_fd(f, &tm);
	if (fd >= 0 && write(fd, line, len) < 0) {
		/* Nowhere better to report it than stderr. */
		if (!log_state.to_stderr)
			fprintf(stderr, "log write failed: %s\n",
				strerror(errno));
	}
	if (log_state.to_stderr && log_state.buffered) {
		size_t nlen = strlen(log_names[f]);

		if (log_state.elen + nlen + 1 + len > LOG_STDERR_BUF)
			log_stderr_flush();
		memcpy(log_state.ebuf + log_state.elen, log_names[f], nlen);
		log_state.ebuf[log_state.elen + nlen] = ' ';
		memcpy(log_state.ebuf + log_state.elen + nlen + 1, line, len);
		log_state.elen += nlen + 1 + len;
	} else if (log_state.to_stderr) {
		fprintf(stderr, "%s %.*s", log_names[f], (int)len, line);
	}
	pthread_mutex_unlock(&log_state.lock);
}

void log_write(enum log_file f, const char *session, const char *dir,
	       const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(f, session, dir, fmt, ap);
	va_end(ap);
}

void log_budget_flush(struct log_budget *b, enum log_file f,
		      const char *session)
{
	log_budget_discard(b);
	free(b->held);
	b->held = NULL;
	if (b->skipped_cmds == 0 && b->skipped_bytes == 0)
		return;
	log_write(f, session, LOG_EVENT,
		  "%llu more commands, %llu bytes, not logged",
		  (unsigned long long)b->skipped_cmds,
		  (unsigned long long)b->skipped_bytes);
	b->lines++;
	b->skipped_cmds = 0;
	b->skipped_bytes = 0;
}

int log_budget_over(const struct log_budget *b, int64_t max)
{
	return max >= 0 && b->lines >= (uint64_t)max;
}

void log_budget_hold(struct log_budget *b, const char *dir, const char *text)
{
	size_t n = strlen(text), need = strlen(dir) + 1 + n + 1;
	int command = strcmp(dir, LOG_FROM_PEER) == 0;

	if (b->held == NULL)
		b->held = malloc(LOG_BUDGET_HELD_MAX);
	if (b->held == NULL || b->held_len + need > LOG_BUDGET_HELD_MAX) {
		b->held_dropped++;
		b->skipped_cmds += command ? 1 : 0;
		b->skipped_bytes += n;
		return;
	}
	b->held_len += (size_t)snprintf(b->held + b->held_len,
					LOG_BUDGET_HELD_MAX - b->held_len,
					"%s %s\n", dir, text);
	b->held_cmds += command ? 1 : 0;
}

void log_budget_release(struct log_budget *b, enum log_file f,
			const char *session)
{
	size_t pos = 0;

	while (pos < b->held_len) {
		char *nl = memchr(b->held + pos, '\n', b->held_len - pos);
		char *sp = memchr(b->held + pos, ' ', b->held_len - pos);

		if (nl == NULL || sp == NULL || sp > nl)
			break;
		*sp = '\0';
		*nl = '\0';
		log_write(f, session, b->held + pos, "%s", sp + 1);
		b->lines++;
		pos = (size_t)(nl - b->held) + 1;
	}
	if (b->held_dropped > 0) {
		log_write(f, session, LOG_EVENT,
			  "%llu more lines of this transaction not logged",
			  (unsigned long long)b->held_dropped);
		b->lines++;
	}
	b->held_len = 0;
	b->held_cmds = 0;
	b->held_dropped = 0;
}

void log_budget_discard(struct log_budget *b)
{
	/* The dropped lines were counted as they came. */
	b->skipped_cmds += b->held_cmds;
	b->skipped_bytes += b->held_len;
	b->held_len = 0;
	b->held_cmds = 0;
	b->held_dropped = 0;
}

/* The notice that a limit of max lines was reached, once (*said). */
static void log_budget_notice(struct log_budget *b, enum log_file f,
			      const char *session, int *said, const char *what,
			      const char *from_now, int64_t max)
{
	if (*said)
		return;
	*said = 1;
	b->lines++;
	log_write(f, session, LOG_EVENT,
		  "%stranscript limit of %lld lines reached: only the lines "
		  "%s from now on",
		  what, (long long)max, from_now);
}

int log_budget_admit(struct log_budget *b, enum log_file f, const char *session,
		     int64_t max, const char *dir, int keep, size_t len)
{
	int command = dir != NULL && strcmp(dir, LOG_FROM_PEER) == 0;

	if (keep == LOG_KEEP_ALWAYS || !log_budget_over(b, max)) {
		b->lines++;
		return 1;
	}
	log_budget_notice(b, f, session, &b->over, "",
			  "that trace mail and errors", max);
	if (keep == LOG_KEEP && b->kept < (uint64_t)max) {
		b->kept++;
		b->lines++;
		return 1;
	}
	if (keep == LOG_KEEP)
		log_budget_notice(b, f, session, &b->over_kept, "second ",
				  "of messages", max);
	b->skipped_cmds += command ? 1 : 0;
	b->skipped_bytes += len;
	if (command && b->skipped_cmds >= LOG_BUDGET_SUMMARY_EVERY)
		log_budget_flush(b, f, session);
	return 0;
}

#define LOG_LEVEL_FN(name, prefix)                                             \
	void name(const char *fmt, ...)                                        \
	{                                                                      \
		char text[LOG_LINE_MAX];                                       \
		va_list ap;                                                    \
		va_start(ap, fmt);                                             \
		vsnprintf(text, sizeof(text), fmt, ap);                        \
		va_end(ap);                                                    \
		log_write(LOG_SYSTEM, "-", LOG_EVENT, prefix "%s", text);      \
	}

LOG_LEVEL_FN(log_info, "")
LOG_LEVEL_FN(log_warn, "warning: ")
LOG_LEVEL_FN(log_error, "error: ")

void fatal(const char *fmt, ...)
{
	char text[LOG_LINE_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	log_write(LOG_SYSTEM, "-", LOG_EVENT, "fatal: %s", text);
	log_atexit();
	if (!log_state.to_stderr)
		fprintf(stderr, "fatal: %s\n", text);
	exit(1);
}

char *log_sanitize(char *dst, size_t dstsize, const void *src, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = src;
	size_t o = 0, i, total = 0;
	int cut;

	if (dstsize == 0)
		return dst;
	/* Room for "..." is kept only when the whole text does not fit. */
	for (i = 0; i < len && total < dstsize; i++)
		total += (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '\\') ? 1 : 4;
	cut = total >= dstsize;
	for (i = 0; i < len; i++) {
		unsigned char c = s[i];
		size_t need = (c >= 0x20 && c < 0x7f && c != '\\') ? 1 : 4;

		if (cut && o + need + 4 > dstsize) {
			if (dstsize >= 4) {
				o = o + 3 < dstsize ? o : dstsize - 4;
				memcpy(dst + o, "...", 3);
				o += 3;
			}
			break;
		}
		if (need == 1) {
			dst[o++] = (char)c;
		} else {
			dst[o++] = '\\';
			dst[o++] = 'x';
			dst[o++] = hex[c >> 4];
			dst[o++] = hex[c & 15];
		}
	}
	dst[o < dstsize ? o : dstsize - 1] = '\0';
	return dst;
}
