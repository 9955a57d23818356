/*
 * petrelctl: the administration command line. Reads the global options and
 * the config, then hands `<noun> <verb> [args]` to the noun's handler
 * through a declarative table (the shape of OpenSMTPD's smtpctl). Owns the
 * helpers every handler shares: one-line errors, the directory handle,
 * reading a password from stdin.
 */
#include "admin/ctl.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <sodium.h>

#include "directory/directory.h"
#include "lib/log.h"

#define CTL_DEFAULT_CONFIG "./petrel.conf"
#define CTL_PASSWORD_MAX 1024

struct ctl_noun {
	const char *name;
	ctl_noun_fn *fn;
	const char *usage; /* its verbs, as `petrelctl help` shows them */
};

static const struct ctl_noun ctl_nouns[] = {
	{"domain", ctl_domain, "domain add NAME | del NAME | list"},
	{"account", ctl_account,
	 "account add ADDR [--admin] | passwd ADDR | enable ADDR\n"
	 "          | disable ADDR [REASON] | del ADDR | list | show ADDR\n"
	 "          (passwords are read from stdin)"},
	{"alias", ctl_alias, "alias add ALIAS ACCOUNT | del ALIAS | list"},
	{"group", ctl_group,
	 "group add NAME | del NAME | member add NAME ADDR\n"
	 "          | member del NAME ADDR | list"},
	{"set", ctl_set, "set KEY VALUE"},
	{"get", ctl_get, "get KEY"},
	{"settings", ctl_settings, "settings"},
	{"queue", ctl_queue,
	 "queue list [QUEUE] | show ID | hold ID... | release ID...\n"
	 "          | delete ID... | retry ID... | stats"},
	{"log", ctl_log, "log search MESSAGE-ID|QUEUE-ID"},
	{"screening", ctl_screening, "screening list | unblock IP"},
	{"hijack", ctl_hijack,
	 "hijack list | release ADDR [--release-held|--delete-held]"},
	{"filter", ctl_filter,
	 "filter list | show NAME | import FILE | export\n"
	 "          | move NAME up|down|to N | enable NAME | disable NAME\n"
	 "          | delete NAME | test FILE.eml --from ADDR --to ADDR...\n"
	 "            [--auth [ACCOUNT]] [--ip IP]"},
};

#define CTL_NOUNS (sizeof(ctl_nouns) / sizeof(ctl_nouns[0]))

static void ctl_vprint(const char *prefix, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

/* One line on stderr, whatever the message holds: an argument with a
 * newline or an escape sequence cannot forge a second line. */
static void ctl_vprint(const char *prefix, const char *fmt, va_list ap)
{
	char text[1024], safe[1024];
	int n = vsnprintf(text, sizeof(text), fmt, ap);

	if (n < 0)
		snprintf(text, sizeof(text), "(error text unavailable)");
	log_sanitize(safe, sizeof(safe), text, strlen(text));
	fflush(stdout);
	fprintf(stderr, "petrelctl: %s%s\n", prefix, safe);
}

int ctl_fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ctl_vprint("", fmt, ap);
	va_end(ap);
	return 1;
}

int ctl_usage(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ctl_vprint("usage: ", fmt, ap);
	va_end(ap);
	return 2;
}

/* mkdir -p: creates path and its missing parents. Returns 0 or -1. */
static int ctl_mkdirs(const char *path)
{
	char tmp[CONFIG_PATH_MAX];
	int n = snprintf(tmp, sizeof(tmp), "%s", path);

	if (n < 0 || (size_t)n >= sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (char *p = tmp + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0750) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(tmp, 0750) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

struct directory *ctl_directory(struct ctl *ctl)
{
	char path[CONFIG_PATH_MAX + 16];
	const char *error;
	int n;

	if (ctl->dir != NULL)
		return ctl->dir;
	if (ctl_mkdirs(ctl->cfg->data_dir) < 0) {
		ctl_fail("cannot create data_dir %s: %s", ctl->cfg->data_dir,
			 strerror(errno));
		return NULL;
	}
	n = snprintf(path, sizeof(path), "%s/petrel.db", ctl->cfg->data_dir);
	if (n < 0 || (size_t)n >= sizeof(path)) {
		ctl_fail("data_dir %s: path too long", ctl->cfg->data_dir);
		return NULL;
	}
	ctl->dir = directory_open(path, &error);
	if (ctl->dir == NULL)
		ctl_fail("%s", error);
	return ctl->dir;
}

/* Reads one line of fd into out byte by byte, so that no stdio buffer
 * keeps a copy of the password. Returns its length, or -1 after an error. */
static int ctl_read_line(int fd, char *out, size_t size)
{
	size_t len = 0;
	int too_long = 0, nul = 0;

	for (;;) {
		char c;
		ssize_t r = read(fd, &c, 1);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			ctl_fail("cannot read the password: %s",
				 strerror(errno));
			return -1;
		}
		if (r == 0 || c == '\n')
			break;
		if (c == '\0')
			nul = 1;
		if (len + 1 < size)
			out[len++] = c;
		else
			too_long = 1;
	}
	if (len > 0 && out[len - 1] == '\r')
		len--;
	out[len] = '\0';
	if (too_long) {
		sodium_memzero(out, size);
		ctl_fail("the password is longer than %zu bytes", size - 1);
		return -1;
	}
	if (nul) {
		sodium_memzero(out, size);
		ctl_fail("the password has a NUL byte");
		return -1;
	}
	return (int)len;
}

/* On a terminal: a prompt on stderr, echo off while typing. */
static int ctl_read_tty(const char *prompt, char *out, size_t size)
{
	struct termios old, quiet;
	int echo_off, r;

	fprintf(stderr, "%s", prompt);
	echo_off = tcgetattr(STDIN_FILENO, &old) == 0;
	if (echo_off) {
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
	}
	r = ctl_read_line(STDIN_FILENO, out, size);
	if (echo_off)
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
	fputc('\n', stderr);
	return r;
}

int ctl_read_password(char *out, size_t size)
{
	char again[CTL_PASSWORD_MAX];
	int len;

	if (size < 2) {
		ctl_fail("no room for a password");
		return -1;
	}
	if (!isatty(STDIN_FILENO)) {
		len = ctl_read_line(STDIN_FILENO, out, size);
	} else {
		len = ctl_read_tty("Password: ", out, size);
		if (len > 0) {
			if (ctl_read_tty("Password again: ", again,
					 sizeof(again)) < 0)
				len = -1;
			else if (strcmp(out, again) != 0) {
				ctl_fail("the passwords do not match");
				len = -1;
			}
		}
		sodium_memzero(again, sizeof(again));
	}
	if (len == 0)
		ctl_fail("no password given on stdin");
	if (len <= 0) {
		sodium_memzero(out, size);
		return -1;
	}
	return 0;
}

static void ctl_help(FILE *f)
{
	fprintf(f, "usage: petrelctl [-c FILE] [--json] [--force] "
		   "<noun> <verb> [args]\n\n");
	for (size_t i = 0; i < CTL_NOUNS; i++)
		fprintf(f, "  %s\n", ctl_nouns[i].usage);
	fprintf(f, "  help\n\n"
		   "  -c FILE   config file (default ./petrel.conf if it "
		   "exists)\n"
		   "  --json    print listings as JSON\n"
		   "  --force   accept a weak password\n");
}

static const struct ctl_noun *ctl_find_noun(const char *name)
{
	for (size_t i = 0; i < CTL_NOUNS; i++)
		if (strcmp(ctl_nouns[i].name, name) == 0)
			return &ctl_nouns[i];
	return NULL;
}

/*
 * Global options: -c FILE (--config FILE, --config=FILE) before the noun;
 * --json and --force anywhere before a "--". The other words are moved to
 * the front of argv; returns their number, or -1 after a usage error.
 */
static int ctl_options(struct ctl *ctl, int argc, char **argv)
{
	int n = 0, opts = 1;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (opts && strcmp(a, "--") == 0) {
			opts = 0;
		} else if (opts && strcmp(a, "--json") == 0) {
			ctl->json = 1;
		} else if (opts && strcmp(a, "--force") == 0) {
			ctl->force = 1;
		} else if (opts && n == 0 &&
			   (strcmp(a, "-c") == 0 ||
			    strcmp(a, "--config") == 0)) {
			if (++i >= argc) {
				ctl_usage("%s needs a file name", a);
				return -1;
			}
			ctl->config_path = argv[i];
		} else if (opts && n == 0 && strncmp(a, "--config=", 9) == 0) {
			ctl->config_path = a + 9;
		} else if (opts && n == 0 &&
			   (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)) {
			argv[n++] = "help";
		} else if (opts && n == 0 && a[0] == '-') {
			ctl_usage("unknown option %s (petrelctl help lists "
				  "them)",
				  a);
			return -1;
		} else {
			argv[n++] = argv[i];
		}
	}
	argv[n] = NULL;
	return n;
}

static int ctl_load_config(struct ctl *ctl, struct config *cfg)
{
	const char *error;

	if (ctl->config_path == NULL && access(CTL_DEFAULT_CONFIG, F_OK) == 0)
		ctl->config_path = CTL_DEFAULT_CONFIG;
	if (ctl->config_path == NULL) {
		config_defaults(cfg);
		return 0;
	}
	if (config_load(cfg, ctl->config_path, &error) < 0)
		return ctl_fail("%s", error);
	return 0;
}

int main(int argc, char **argv)
{
	static struct config cfg;
	struct ctl ctl = {.cfg = &cfg};
	const struct ctl_noun *noun;
	int n, rc;

	/* The database holds password hashes: not for other users' eyes. */
	umask(027);
	n = ctl_options(&ctl, argc, argv);
	if (n < 0)
		return 2;
	if (n == 0) {
		ctl_help(stdout);
		return ctl_usage("no command given");
	}
	if (strcmp(argv[0], "help") == 0) {
		ctl_help(stdout);
		return 0;
	}
	noun = ctl_find_noun(argv[0]);
	if (noun == NULL)
		return ctl_usage("unknown command '%s' (petrelctl help lists "
				 "them)",
				 argv[0]);
	if (ctl_load_config(&ctl, &cfg) != 0)
		return 1;
	rc = noun->fn(&ctl, n - 1, argv + 1);
	directory_close(ctl.dir);
	if (fflush(stdout) != 0 || ferror(stdout))
		rc = ctl_fail("cannot write the output: %s", strerror(errno));
	return rc;
}
