/* The daemon's config file: `key = value` lines, `#` comments. */
#ifndef PETREL_CONFIG_H
#define PETREL_CONFIG_H

#include <limits.h>
#include <stddef.h>
#include <sys/socket.h>

#define CONFIG_LISTEN_MAX 8
#define CONFIG_PATH_MAX 1024

/* One address to bind: numeric IPv4 "1.2.3.4:25" or IPv6 "[::1]:25". */
struct config_listen {
	struct sockaddr_storage ss;
	socklen_t sslen;
	char text[64]; /* as written, normalized: "127.0.0.1:2525" */
};

struct config_listen_list {
	struct config_listen addr[CONFIG_LISTEN_MAX];
	size_t count; /* 0: this listener is off ("none") */
};

struct config {
	char hostname[256];
	char data_dir[CONFIG_PATH_MAX];
	char log_dir[CONFIG_PATH_MAX];
	struct config_listen_list listen_smtp;
	struct config_listen_list listen_submission;
	struct config_listen_list listen_smtps;
	struct config_listen_list listen_pop3;
	struct config_listen_list listen_pop3s;
	struct config_listen_list listen_admin;
	char tls_cert[CONFIG_PATH_MAX];
	char tls_key[CONFIG_PATH_MAX];
	char smarthost[256]; /* "host:port", "" for MX lookup */
	/* A file (not world-readable) with "user password" for AUTH to the
	 * smarthost; "" for none. */
	char smarthost_auth[CONFIG_PATH_MAX];
	char dns_server[64]; /* "ip:port", "" for the system's */
	char user[64];	     /* drop to this user when started as root */
	int workers;	     /* threads for blocking work */
	/* Threads that write and commit accepted messages to the spool:
	 * each waits on the disk, and the more wait at once the more
	 * messages one flush covers (group commit). */
	int commit_workers;
	int delivery_workers; /* threads of local delivery and the queue */
	/* Event loops, each a thread with its own listening sockets and
	 * sessions; default: one per core. */
	int loops;

	char error[512]; /* the last error of config_load/config_parse */
};

/* Fills every key with its default (DESIGN.md). */
void config_defaults(struct config *cfg);

/*
 * Parses a whole config text over the defaults already in cfg. `name` is
 * the file name used in errors. Returns 0, or -1 with *error_r set to one
 * line "NAME:LINE: what is wrong" (pointing into cfg->error).
 * Defaults that depend on other keys (log_dir, tls_cert, tls_key) are
 * filled in afterwards when left unset.
 */
int config_parse(struct config *cfg, const char *name, const char *text,
		 size_t len, const char **error_r);

/* Reads and parses a file (defaults first). Returns 0 or -1 as above. */
int config_load(struct config *cfg, const char *path, const char **error_r);

/*
 * Parses a listen value: "none", or a list separated by commas or spaces of
 * "IPv4:port" and "[IPv6]:port". Returns 0, or -1 on a bad address.
 */
int config_parse_listen(const char *value, struct config_listen_list *out);

#endif
