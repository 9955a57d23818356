/* petrelctl's nouns: one handler per noun, dispatched from petrelctl.c. */
#ifndef PETREL_CTL_H
#define PETREL_CTL_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "lib/config.h"

struct directory;

/* What every handler gets: the loaded config and the global flags. */
struct ctl {
	const struct config *cfg;
	const char *config_path;
	int json;  /* --json: machine-readable listings */
	int force; /* --force: e.g. accept a weak password */
	/* Opened on first use by ctl_directory(); closed by main. */
	struct directory *dir;
};

/*
 * A noun handler: argv[0] is the verb, argv[1..] its arguments. Returns the
 * exit status: 0 on success; otherwise it has printed one line on stderr
 * (ctl_fail) and returns 1, or 2 for a usage error.
 */
typedef int ctl_noun_fn(struct ctl *ctl, int argc, char **argv);

/* Prints "petrelctl: <message>" on stderr; returns 1. */
int ctl_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints "petrelctl: usage: ..." on stderr; returns 2. */
int ctl_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The directory, opened (and migrated) on first call; NULL after printing
 * an error. */
struct directory *ctl_directory(struct ctl *ctl);
/* Reads a password from stdin (one line, CR/LF stripped). Returns 0, or -1
 * after printing an error. Callers wipe it with sodium_memzero. */
int ctl_read_password(char *out, size_t size);

/* One verb of a noun: its words ("add", or "member add"), how many
 * arguments follow them (max -1: any number), and its handler. */
struct ctl_verb {
	const char *name;
	int min, max;
	int (*fn)(struct ctl *ctl, int argc, char **argv);
};

/*
 * Finds the verb that argv starts with and checks its argument count.
 * Returns the handler's exit status, or 2 after a usage error.
 */
int ctl_dispatch(struct ctl *ctl, const struct ctl_verb *verbs, size_t count,
		 const char *usage, int argc, char **argv);
/* Prints a JSON value on stdout and frees it (NULL: out of memory).
 * Returns the exit status. */
int ctl_json_print(json_t *j);
/* "2024-05-01 12:00:00 UTC", or "never" for 0. */
const char *ctl_time(int64_t t, char *buf, size_t size);

/* src/admin/ctl_directory.c */
ctl_noun_fn ctl_domain, ctl_account, ctl_alias, ctl_group, ctl_set, ctl_get,
	ctl_settings;
/* src/admin/ctl_queue.c */
ctl_noun_fn ctl_queue;
struct queue;
/* The spool, opened; NULL after printing an error. */
struct queue *ctl_queue_open(const struct ctl *ctl);
/* Wakes the daemon, if one runs, to pick up messages put into active.
 * Returns 1 when it was signalled, 0 when none runs. */
int ctl_queue_kick(const struct ctl *ctl);
/* src/admin/ctl_hijack.c */
ctl_noun_fn ctl_hijack;
/* Adds the account's hijack window (counts and limits) to j, or prints it
 * when j is NULL. Returns 0, or -1 on error (printed). */
int ctl_hijack_window(struct directory *d, const char *account, json_t *j);
/* src/admin/ctl_log.c */
ctl_noun_fn ctl_log;
/* src/admin/ctl_screening.c */
ctl_noun_fn ctl_screening;
/* src/admin/ctl_filter.c */
ctl_noun_fn ctl_filter;

#endif
