/*
 * config: parses petrel.conf into struct config. Pure: no I/O but the one
 * read in config_load(). Every error names the file and the line, so an
 * admin can fix it from the one line petreld prints before exiting.
 */
#include "lib/config.h"
#include "lib/addr.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONFIG_FILE_MAX (1024 * 1024)
#define CONFIG_LINE_MAX 4096

enum config_type {
	CONFIG_STR,
	CONFIG_PATH,
	CONFIG_HOST,
	CONFIG_LISTEN,
	CONFIG_HOSTPORT,
	CONFIG_IPPORT,
	CONFIG_USER,
	CONFIG_INT
};

struct config_key {
	const char *name;
	enum config_type type;
	size_t offset;
	size_t size;
};

#define CK(n, t)                                                               \
	{                                                                      \
#n, t, offsetof(struct config, n),                             \
			sizeof(((struct config *)0)->n)                        \
	}

static const struct config_key config_keys[] = {
	CK(hostname, CONFIG_HOST),
	CK(data_dir, CONFIG_PATH),
	CK(log_dir, CONFIG_PATH),
	CK(listen_smtp, CONFIG_LISTEN),
	CK(listen_submission, CONFIG_LISTEN),
	CK(listen_smtps, CONFIG_LISTEN),
	CK(listen_pop3, CONFIG_LISTEN),
	CK(listen_pop3s, CONFIG_LISTEN),
	CK(listen_admin, CONFIG_LISTEN),
	CK(tls_cert, CONFIG_PATH),
	CK(tls_key, CONFIG_PATH),
	CK(smarthost, CONFIG_HOSTPORT),
	CK(smarthost_auth, CONFIG_PATH),
	CK(dns_server, CONFIG_IPPORT),
	CK(user, CONFIG_USER),
	CK(workers, CONFIG_INT),
	CK(commit_workers, CONFIG_INT),
	CK(delivery_workers, CONFIG_INT),
	CK(loops, CONFIG_INT),
};

static void config_set_default_listen(struct config_listen_list *l,
				      const char *v)
{
	if (config_parse_listen(v, l) < 0)
		l->count = 0;
}

void config_defaults(struct config *cfg)
{
	long cores;

	memset(cfg, 0, sizeof(*cfg));
	if (gethostname(cfg->hostname, sizeof(cfg->hostname) - 1) < 0 ||
	    cfg->hostname[0] == '\0')
		snprintf(cfg->hostname, sizeof(cfg->hostname), "localhost");
	snprintf(cfg->data_dir, sizeof(cfg->data_dir), "./var");
	config_set_default_listen(&cfg->listen_smtp, "127.0.0.1:2525");
	config_set_default_listen(&cfg->listen_submission, "127.0.0.1:2587");
	config_set_default_listen(&cfg->listen_smtps, "127.0.0.1:2465");
	config_set_default_listen(&cfg->listen_pop3, "127.0.0.1:2110");
	config_set_default_listen(&cfg->listen_pop3s, "127.0.0.1:2995");
	config_set_default_listen(&cfg->listen_admin, "127.0.0.1:8025");
	snprintf(cfg->user, sizeof(cfg->user), "petrel");
	cfg->workers = 4;
	cfg->commit_workers = 32;
	cfg->delivery_workers = 8;
	cores = sysconf(_SC_NPROCESSORS_ONLN);
	cfg->loops = cores < 1 ? 1 : cores > 64 ? 64 : (int)cores;
}

/* Parses "1.2.3.4:25" or "[::1]:25" into one listen entry. */
static int config_parse_one_listen(const char *s, size_t len,
				   struct config_listen *out)
{
	char host[64], portstr[8];
	const char *colon;
	size_t hlen;
	char *end;
	long port;

	if (len == 0 || len >= 64)
		return -1;
	memset(out, 0, sizeof(*out));
	if (s[0] == '[') {
		const char *rb = memchr(s, ']', len);
		if (rb == NULL || (size_t)(rb - s) + 1 >= len || rb[1] != ':')
			return -1;
		hlen = (size_t)(rb - s) - 1;
		memcpy(host, s + 1, hlen);
		host[hlen] = '\0';
		colon = rb + 1;
	} else {
		colon = memchr(s, ':', len);
		if (colon == NULL)
			return -1;
		hlen = (size_t)(colon - s);
		memcpy(host, s, hlen);
		host[hlen] = '\0';
		if (memchr(colon + 1, ':', len - hlen - 1) != NULL)
			return -1;
	}
	hlen = len - (size_t)(colon + 1 - s);
	if (hlen == 0 || hlen >= sizeof(portstr))
		return -1;
	memcpy(portstr, colon + 1, hlen);
	portstr[hlen] = '\0';
	for (size_t i = 0; i < hlen; i++)
		if (!isdigit((unsigned char)portstr[i]))
			return -1;
	errno = 0;
	port = strtol(portstr, &end, 10);
	if (errno != 0 || *end != '\0' || port < 1 || port > 65535)
		return -1;

	if (s[0] == '[') {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->ss;
		char norm[INET6_ADDRSTRLEN];

		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
			return -1;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		out->sslen = sizeof(*sin6);
		inet_ntop(AF_INET6, &sin6->sin6_addr, norm, sizeof(norm));
		snprintf(out->text, sizeof(out->text), "[%s]:%ld", norm, port);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)&out->ss;
		char norm[INET_ADDRSTRLEN];

		if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
			return -1;
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		out->sslen = sizeof(*sin);
		inet_ntop(AF_INET, &sin->sin_addr, norm, sizeof(norm));
		snprintf(out->text, sizeof(out->text), "%s:%ld", norm, port);
	}
	return 0;
}

int config_parse_listen(const char *value, struct config_listen_list *out)
{
	const char *p = value;

	memset(out, 0, sizeof(*out));
	if (strcmp(value, "none") == 0)
		return 0;
	while (*p != '\0') {
		size_t n;

		while (*p == ',' || *p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			break;
		n = strcspn(p, ", \t");
		if (out->count == CONFIG_LISTEN_MAX ||
		    config_parse_one_listen(p, n, &out->addr[out->count]) < 0)
			return -1;
		out->count++;
		p += n;
	}
	return out->count > 0 ? 0 : -1;
}

/* A host name: dot-separated labels of letters, digits and '-' (not at
 * either end), 1 to 63 octets each, 253 in all (RFC 1035 2.3.4), no
 * trailing dot: what goes into the greeting and Received headers. */
static int config_valid_host(const char *v)
{
	return strlen(v) <= 253 && addr_domain_valid(v);
}

static int config_valid_hostport(const char *v, int numeric)
{
	const char *colon;
	char host[256];
	size_t hlen;
	struct config_listen_list l;

	if (v[0] == '\0')
		return 1; /* empty: unset */
	if (config_parse_listen(v, &l) == 0 && l.count == 1)
		return 1;
	if (numeric)
		return 0;
	colon = strrchr(v, ':');
	if (colon == NULL || colon == v)
		return 0;
	hlen = (size_t)(colon - v);
	if (hlen >= sizeof(host))
		return 0;
	memcpy(host, v, hlen);
	host[hlen] = '\0';
	if (!config_valid_host(host) || colon[1] == '\0' ||
	    strlen(colon + 1) > 5)
		return 0;
	for (const char *q = colon + 1; *q; q++)
		if (!isdigit((unsigned char)*q))
			return 0;
	long port = strtol(colon + 1, NULL, 10);
	return port >= 1 && port <= 65535;
}

__attribute__((format(printf, 4, 5))) static int
config_fail(struct config *cfg, const char *name, unsigned line,
	    const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(cfg->error, sizeof(cfg->error), "%s:%u: %s", name, line, msg);
	return -1;
}

static int config_set(struct config *cfg, const struct config_key *k,
		      const char *v)
{
	char *field = (char *)cfg + k->offset;
	int n;

	switch (k->type) {
	case CONFIG_LISTEN:
		return config_parse_listen(v,
					   (struct config_listen_list *)field);
	case CONFIG_INT: {
		char *end;
		long x;

		errno = 0;
		x = strtol(v, &end, 10);
		if (errno != 0 || end == v || *end != '\0' || x < 1 || x > 64)
			return -1;
		*(int *)field = (int)x;
		return 0;
	}
	case CONFIG_HOST:
		if (!config_valid_host(v))
			return -1;
		break;
	case CONFIG_HOSTPORT:
		if (!config_valid_hostport(v, 0))
			return -1;
		break;
	case CONFIG_IPPORT:
		if (!config_valid_hostport(v, 1))
			return -1;
		break;
	case CONFIG_USER:
		if (v[0] == '\0')
			return -1;
		for (const char *q = v; *q; q++)
			if (!isalnum((unsigned char)*q) && *q != '-' &&
			    *q != '_' && *q != '.')
				return -1;
		break;
	case CONFIG_PATH:
		if (v[0] == '\0')
			return -1;
		break;
	case CONFIG_STR:
		break;
	}
	n = snprintf(field, k->size, "%s", v);
	return (n < 0 || (size_t)n >= k->size) ? -1 : 0;
}

static const char *config_expect(enum config_type t)
{
	switch (t) {
	case CONFIG_LISTEN:
		return "expected \"none\" or IP:PORT / [IPv6]:PORT, "
		       "separated by commas";
	case CONFIG_INT:
		return "expected a number from 1 to 64";
	case CONFIG_HOST:
		return "expected a host name";
	case CONFIG_HOSTPORT:
		return "expected HOST:PORT";
	case CONFIG_IPPORT:
		return "expected IP:PORT";
	case CONFIG_USER:
		return "expected a user name";
	case CONFIG_PATH:
		return "expected a path (too long or empty)";
	case CONFIG_STR:
		break;
	}
	return "bad value";
}

/* Fills the paths left unset from data_dir. Returns 0, or -1 when one does
 * not fit: a cut path would point somewhere else. */
static int config_fill_derived(struct config *cfg, int have_log, int have_cert,
			       int have_key)
{
	int n;

	if (!have_log) {
		n = snprintf(cfg->log_dir, sizeof(cfg->log_dir), "%s/log",
			     cfg->data_dir);
		if (n < 0 || (size_t)n >= sizeof(cfg->log_dir))
			return -1;
	}
	if (!have_cert) {
		n = snprintf(cfg->tls_cert, sizeof(cfg->tls_cert),
			     "%s/tls/cert.pem", cfg->data_dir);
		if (n < 0 || (size_t)n >= sizeof(cfg->tls_cert))
			return -1;
	}
	if (!have_key) {
		n = snprintf(cfg->tls_key, sizeof(cfg->tls_key),
			     "%s/tls/key.pem", cfg->data_dir);
		if (n < 0 || (size_t)n >= sizeof(cfg->tls_key))
			return -1;
	}
	return 0;
}

int config_parse(struct config *cfg, const char *name, const char *text,
		 size_t len, const char **error_r)
{
	unsigned lineno = 0, data_dir_line = 0;
	size_t pos = 0;
	int have_log = 0, have_cert = 0, have_key = 0;
	unsigned char seen[sizeof(config_keys) / sizeof(config_keys[0])] = {0};

	cfg->error[0] = '\0';
	*error_r = cfg->error;
	while (pos < len) {
		char line[CONFIG_LINE_MAX];
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t n = nl != NULL ? (size_t)(nl - (text + pos)) : len - pos;
		char *key, *val, *eq, *end;
		size_t i;

		lineno++;
		if (n >= sizeof(line))
			return config_fail(cfg, name, lineno, "line too long");
		memcpy(line, text + pos, n);
		line[n] = '\0';
		pos += n + (nl != NULL ? 1 : 0);
		if (memchr(line, '\0', n) != NULL)
			return config_fail(cfg, name, lineno,
					   "NUL byte in line");
		/* '#' starts a comment anywhere: no value needs one. */
		if ((end = strchr(line, '#')) != NULL)
			*end = '\0';
		key = line;
		while (isspace((unsigned char)*key))
			key++;
		end = key + strlen(key);
		while (end > key && isspace((unsigned char)end[-1]))
			*--end = '\0';
		if (*key == '\0')
			continue;
		eq = strchr(key, '=');
		if (eq == NULL)
			return config_fail(cfg, name, lineno,
					   "expected \"key = value\"");
		val = eq + 1;
		while (eq > key && isspace((unsigned char)eq[-1]))
			eq--;
		*eq = '\0';
		while (isspace((unsigned char)*val))
			val++;
		if (*key == '\0')
			return config_fail(cfg, name, lineno, "missing key");
		for (i = 0; i < sizeof(config_keys) / sizeof(config_keys[0]);
		     i++)
			if (strcmp(config_keys[i].name, key) == 0)
				break;
		if (i == sizeof(config_keys) / sizeof(config_keys[0])) {
			char safe[80];
			size_t k;
			for (k = 0; k < sizeof(safe) - 1 && key[k] != '\0'; k++)
				safe[k] = isprint((unsigned char)key[k])
						  ? key[k]
						  : '?';
			safe[k] = '\0';
			return config_fail(cfg, name, lineno,
					   "unknown key \"%s\"", safe);
		}
		if (seen[i])
			return config_fail(cfg, name, lineno,
					   "key \"%s\" set twice", key);
		seen[i] = 1;
		if (config_set(cfg, &config_keys[i], val) < 0)
			return config_fail(cfg, name, lineno,
					   "bad value for \"%s\": %s",
					   config_keys[i].name,
					   config_expect(config_keys[i].type));
		if (strcmp(key, "data_dir") == 0)
			data_dir_line = lineno;
		else if (strcmp(key, "log_dir") == 0)
			have_log = 1;
		else if (strcmp(key, "tls_cert") == 0)
			have_cert = 1;
		else if (strcmp(key, "tls_key") == 0)
			have_key = 1;
	}
	if (config_fill_derived(cfg, have_log, have_cert, have_key) < 0)
		return config_fail(cfg, name, data_dir_line,
				   "data_dir too long to derive log_dir, "
				   "tls_cert and tls_key from: set them");
	return 0;
}

int config_load(struct config *cfg, const char *path, const char **error_r)
{
	struct stat st;
	char *text;
	ssize_t got;
	size_t off = 0;
	int fd, ret;

	config_defaults(cfg);
	*error_r = cfg->error;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(cfg->error, sizeof(cfg->error), "%s: %s", path,
			 strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    st.st_size > CONFIG_FILE_MAX) {
		snprintf(cfg->error, sizeof(cfg->error),
			 "%s: not a regular file of at most 1 MB", path);
		close(fd);
		return -1;
	}
	text = malloc((size_t)st.st_size + 1);
	if (text == NULL) {
		close(fd);
		snprintf(cfg->error, sizeof(cfg->error), "%s: out of memory",
			 path);
		return -1;
	}
	while (off < (size_t)st.st_size &&
	       (got = read(fd, text + off, (size_t)st.st_size - off)) > 0)
		off += (size_t)got;
	close(fd);
	ret = config_parse(cfg, path, text, off, error_r);
	free(text);
	return ret;
}
