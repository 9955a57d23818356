/*
 * directory: the SQLite store of domains, accounts (argon2id hashes),
 * aliases, groups, settings and security events, and its schema
 * migrations. Owns <data_dir>/petrel.db; the only module that includes
 * <sqlite3.h>. Every statement is prepared and its values bound (STYLE.md
 * rule 6): no text from an admin or a client is ever spliced into SQL.
 */
#include "directory/directory.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>
#include <sqlite3.h>

#include "lib/buf.h"
#include "lib/log.h"

#define DIRECTORY_BUSY_TIMEOUT_MS 5000
#define DIRECTORY_DOMAIN_MAX 255
#define DIRECTORY_LOCAL_MAX 64
#define DIRECTORY_GROUP_MAX 64
#define DIRECTORY_REASON_MAX 255
#define DIRECTORY_GROUP_LIST_MAX (1024 * 1024)

/* Statements of directory_query_int kept prepared, per handle: the
 * lookups of every RCPT and every message would otherwise parse their SQL
 * each time. Keyed by the SQL text (a literal at every call site). */
#define DIRECTORY_STMT_CACHE 16

struct directory_cached_stmt {
	const char *sql;
	sqlite3_stmt *st;
};

struct directory {
	sqlite3 *db;
	char error[256];
	struct directory_cached_stmt cache[DIRECTORY_STMT_CACHE];
	size_t ncached;
};

/*
 * The schema, one entry per version: entry N-1 takes a database from
 * version N-1 to N (entry 0 makes version 1 of an empty file). Never edit an entry that has shipped; add the next one.
 * All pending entries run in one transaction with the version rows, so a
 * crash mid-way leaves the database at the old version. (An entry that must
 * rebuild a table with foreign keys off needs its own handling: the pragma
 * is a no-op inside a transaction.)
 */
static const char *const directory_migrations[] = {
	/* 1: everything. */
	"CREATE TABLE domains ("
	"  id INTEGER PRIMARY KEY,"
	"  name TEXT NOT NULL UNIQUE,"
	"  created INTEGER NOT NULL);"
	"CREATE TABLE accounts ("
	"  id INTEGER PRIMARY KEY,"
	"  address TEXT NOT NULL UNIQUE,"
	"  domain_id INTEGER NOT NULL"
	"    REFERENCES domains(id) ON DELETE RESTRICT,"
	"  password TEXT NOT NULL,"
	"  state INTEGER NOT NULL DEFAULT 0 CHECK (state IN (0, 1, 2)),"
	"  state_reason TEXT NOT NULL DEFAULT '',"
	"  state_time INTEGER NOT NULL DEFAULT 0,"
	"  is_admin INTEGER NOT NULL DEFAULT 0,"
	"  quota_mb INTEGER NOT NULL DEFAULT 0,"
	"  created INTEGER NOT NULL,"
	"  last_login INTEGER NOT NULL DEFAULT 0);"
	"CREATE TABLE aliases ("
	"  id INTEGER PRIMARY KEY,"
	"  address TEXT NOT NULL UNIQUE,"
	"  domain_id INTEGER NOT NULL"
	"    REFERENCES domains(id) ON DELETE RESTRICT,"
	"  account_id INTEGER NOT NULL"
	"    REFERENCES accounts(id) ON DELETE CASCADE);"
	"CREATE TABLE groups ("
	"  id INTEGER PRIMARY KEY,"
	"  name TEXT NOT NULL UNIQUE);"
	"CREATE TABLE group_members ("
	"  group_id INTEGER NOT NULL"
	"    REFERENCES groups(id) ON DELETE CASCADE,"
	"  address TEXT NOT NULL,"
	"  PRIMARY KEY (group_id, address));"
	"CREATE TABLE settings ("
	"  name TEXT PRIMARY KEY,"
	"  value TEXT NOT NULL);"
	"CREATE TABLE security_events ("
	"  id INTEGER PRIMARY KEY,"
	"  time INTEGER NOT NULL,"
	"  kind TEXT NOT NULL,"
	"  account TEXT,"
	"  ip TEXT,"
	"  text TEXT NOT NULL);",
	/* 2: indexes on the foreign keys (a cascade or RESTRICT check scans
	 * the child table without one) and for events by account and time. */
	"CREATE INDEX accounts_domain ON accounts (domain_id);"
	"CREATE INDEX aliases_domain ON aliases (domain_id);"
	"CREATE INDEX aliases_account ON aliases (account_id);"
	"CREATE INDEX security_events_time ON security_events (time);"
	"CREATE INDEX security_events_account"
	"  ON security_events (account, time);",
	/* 3: IPs blocked by failed-login screening. A row outlives its
	 * block (until) as the IP's record of offenses. */
	"CREATE TABLE screening_blocks ("
	"  ip TEXT PRIMARY KEY,"
	"  until INTEGER NOT NULL,"
	"  offenses INTEGER NOT NULL DEFAULT 1,"
	"  reason TEXT NOT NULL DEFAULT '',"
	"  created INTEGER NOT NULL);",
	/* 4: hijack detection. Every message an account sent over an
	 * authenticated session and every login (the sliding windows, kept
	 * across restarts), and the single-use re-activation tokens of the
	 * alerts, stored hashed. */
	"CREATE TABLE hijack_sends ("
	"  id INTEGER PRIMARY KEY,"
	"  account TEXT NOT NULL,"
	"  time INTEGER NOT NULL,"
	"  ip TEXT NOT NULL,"
	"  rcpts INTEGER NOT NULL,"
	"  subject TEXT NOT NULL DEFAULT '',"
	"  domains TEXT NOT NULL DEFAULT '');"
	"CREATE INDEX hijack_sends_account ON hijack_sends (account, time);"
	"CREATE TABLE hijack_logins ("
	"  id INTEGER PRIMARY KEY,"
	"  account TEXT NOT NULL,"
	"  time INTEGER NOT NULL,"
	"  ip TEXT NOT NULL);"
	"CREATE INDEX hijack_logins_account ON hijack_logins (account, time);"
	"CREATE TABLE hijack_tokens ("
	"  hash TEXT PRIMARY KEY,"
	"  account TEXT NOT NULL,"
	"  created INTEGER NOT NULL,"
	"  expires INTEGER NOT NULL,"
	"  used INTEGER NOT NULL DEFAULT 0);",
	/* 5: content filter rules, in order, each as its text in the rule
	 * file format (src/filter/filter_parse.c); `enabled` repeats the
	 * text's "enabled" line for listings. filter_state.version counts
	 * every change of the rules, so that the daemon recompiles them
	 * only when they changed. */
	"CREATE TABLE filter_rules ("
	"  id INTEGER PRIMARY KEY,"
	"  position INTEGER NOT NULL,"
	"  name TEXT NOT NULL UNIQUE COLLATE NOCASE,"
	"  enabled INTEGER NOT NULL DEFAULT 1,"
	"  text TEXT NOT NULL);"
	"CREATE INDEX filter_rules_position ON filter_rules (position);"
	"CREATE TABLE filter_state ("
	"  id INTEGER PRIMARY KEY CHECK (id = 1),"
	"  version INTEGER NOT NULL);"
	"INSERT INTO filter_state (id, version) VALUES (1, 0);",
	/* 6: what the daemon follows: a counter that every change an
	 * administrator makes moves (and nothing the daemon writes for its
	 * own bookkeeping: logins, hijack windows), so that it reloads only
	 * when there is something new. */
	"CREATE TABLE changes ("
	"  id INTEGER PRIMARY KEY CHECK (id = 1),"
	"  n INTEGER NOT NULL);"
	"INSERT INTO changes VALUES (1, 0);"
	"CREATE TRIGGER settings_insert AFTER INSERT ON settings"
	"  BEGIN UPDATE changes SET n = n + 1; END;"
	"CREATE TRIGGER settings_update AFTER UPDATE ON settings"
	"  BEGIN UPDATE changes SET n = n + 1; END;"
	"CREATE TRIGGER settings_delete AFTER DELETE ON settings"
	"  BEGIN UPDATE changes SET n = n + 1; END;"
	"CREATE TRIGGER domains_insert AFTER INSERT ON domains"
	"  BEGIN UPDATE changes SET n = n + 1; END;"
	"CREATE TRIGGER domains_update AFTER UPDATE ON domains"
	"  BEGIN UPDATE changes SET n = n + 1; END;"
	"CREATE TRIGGER domains_delete AFTER DELETE ON domains"
	"  BEGIN UPDATE changes SET n = n + 1; END;"
	"CREATE TRIGGER aliases_insert AFTER INSERT ON aliases"
	"  BEGIN UPDATE changes SET n = n + 1; END;"
	"CREATE TRIGGER aliases_update AFTER UPDATE ON aliases"
	"  BEGIN UPDATE changes SET n = n + 1; END;"
	"CREATE TRIGGER aliases_delete AFTER DELETE ON aliases"
	"  BEGIN UPDATE changes SET n = n + 1; END;"
	"CREATE TRIGGER groups_insert AFTER INSERT ON groups"
	"  BEGIN UPDATE changes SET n = n + 1; END;"
	"CREATE TRIGGER groups_update AFTER UPDATE ON groups"
	"  BEGIN UPDATE changes SET n = n + 1; END;"
	"CREATE TRIGGER groups_delete AFTER DELETE ON groups"
	"  BEGIN UPDATE changes SET n = n + 1; END;"
	"CREATE TRIGGER group_members_insert AFTER INSERT ON group_members"
	"  BEGIN UPDATE changes SET n = n + 1; END;"
	"CREATE TRIGGER group_members_update AFTER UPDATE ON group_members"
	"  BEGIN UPDATE changes SET n = n + 1; END;"
	"CREATE TRIGGER group_members_delete AFTER DELETE ON group_members"
	"  BEGIN UPDATE changes SET n = n + 1; END;"
	"CREATE TRIGGER screening_blocks_insert AFTER INSERT ON "
	"screening_blocks"
	"  BEGIN UPDATE changes SET n = n + 1; END;"
	"CREATE TRIGGER screening_blocks_update AFTER UPDATE ON "
	"screening_blocks"
	"  BEGIN UPDATE changes SET n = n + 1; END;"
	"CREATE TRIGGER screening_blocks_delete AFTER DELETE ON "
	"screening_blocks"
	"  BEGIN UPDATE changes SET n = n + 1; END;"
	"CREATE TRIGGER accounts_insert AFTER INSERT ON accounts"
	"  BEGIN UPDATE changes SET n = n + 1; END;"
	"CREATE TRIGGER accounts_update AFTER UPDATE OF state, password, "
	"is_admin, quota_mb ON accounts"
	"  BEGIN UPDATE changes SET n = n + 1; END;"
	"CREATE TRIGGER accounts_delete AFTER DELETE ON accounts"
	"  BEGIN UPDATE changes SET n = n + 1; END;",
};

#define DIRECTORY_SCHEMA_VERSION                                               \
	((int)(sizeof(directory_migrations) / sizeof(directory_migrations[0])))

/* The hash unknown accounts are checked against, so that a wrong address
 * costs the same argon2id time as a wrong password (no user enumeration by
 * timing). Same parameters as crypto_pwhash_str with the INTERACTIVE
 * limits; its password is not any account's. */
static const char directory_dummy_hash[] =
	"$argon2id$v=19$m=65536,t=2,p=1$oYVWjyp/5DmNVq1biqdMpQ$"
	"/VA1fpm4/HahBD+uUj3NfOzNYXhxdt815TlxdNEtR0E";

static _Thread_local char directory_open_error[256];

/* --- errors --- */

static void directory_verror(struct directory *d, const char **error_r,
			     const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

static void directory_verror(struct directory *d, const char **error_r,
			     const char *fmt, va_list ap)
{
	vsnprintf(d->error, sizeof(d->error), fmt, ap);
	if (error_r != NULL)
		*error_r = d->error;
}

/* Sets the handle's error text; returns -1. */
static int directory_fail(struct directory *d, const char **error_r,
			  const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int directory_fail(struct directory *d, const char **error_r,
			  const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	directory_verror(d, error_r, fmt, ap);
	va_end(ap);
	return -1;
}

/* Sets the handle's error text; returns 0 (not found). */
static int directory_none(struct directory *d, const char **error_r,
			  const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int directory_none(struct directory *d, const char **error_r,
			  const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	directory_verror(d, error_r, fmt, ap);
	va_end(ap);
	return 0;
}

/* A database failure while doing `what`; returns -1. */
static int directory_dberror(struct directory *d, const char **error_r,
			     const char *what)
{
	return directory_fail(d, error_r, "cannot %s: %s", what,
			      sqlite3_errmsg(d->db));
}

/* Client or admin text made safe to quote in an error line. */
static const char *directory_quote(char *dst, size_t size, const char *s)
{
	return log_sanitize(dst, size, s, strlen(s));
}

/* --- statements --- */

/*
 * Prepares sql and binds one value per character of `types`: 't' a
 * const char * (NULL binds NULL), 'i' an int64_t. Returns the statement,
 * or NULL with the error set.
 */
static sqlite3_stmt *directory_vstmt(struct directory *d, const char **error_r,
				     const char *sql, const char *types,
				     va_list ap)
{
	sqlite3_stmt *st = NULL;
	int rc = SQLITE_OK;

	if (sqlite3_prepare_v2(d->db, sql, -1, &st, NULL) != SQLITE_OK) {
		directory_dberror(d, error_r, "prepare a query");
		sqlite3_finalize(st);
		return NULL;
	}
	for (int i = 0; types[i] != '\0' && rc == SQLITE_OK; i++) {
		if (types[i] == 't') {
			const char *s = va_arg(ap, const char *);
			rc = s == NULL ? sqlite3_bind_null(st, i + 1)
				       : sqlite3_bind_text(st, i + 1, s, -1,
							   SQLITE_TRANSIENT);
		} else {
			rc = sqlite3_bind_int64(
				st, i + 1, (sqlite3_int64)va_arg(ap, int64_t));
		}
	}
	if (rc != SQLITE_OK) {
		directory_dberror(d, error_r, "bind a query's values");
		sqlite3_finalize(st);
		return NULL;
	}
	return st;
}

static sqlite3_stmt *directory_stmt(struct directory *d, const char **error_r,
				    const char *sql, const char *types, ...)
{
	sqlite3_stmt *st;
	va_list ap;

	va_start(ap, types);
	st = directory_vstmt(d, error_r, sql, types, ap);
	va_end(ap);
	return st;
}

/*
 * Runs a statement that returns no rows (bound as directory_stmt). Returns
 * the number of rows it changed (>= 0), or -1 with the error set, saying
 * it could not `what`.
 */
static int directory_exec(struct directory *d, const char **error_r,
			  const char *what, const char *sql, const char *types,
			  ...)
{
	sqlite3_stmt *st;
	va_list ap;
	int rc;

	va_start(ap, types);
	st = directory_vstmt(d, error_r, sql, types, ap);
	va_end(ap);
	if (st == NULL)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		;
	if (rc != SQLITE_DONE) {
		directory_dberror(d, error_r, what);
		sqlite3_finalize(st);
		return -1;
	}
	sqlite3_finalize(st);
	return sqlite3_changes(d->db);
}

static void directory_cache_clear(struct directory *d)
{
	for (size_t i = 0; i < d->ncached; i++)
		sqlite3_finalize(d->cache[i].st);
	d->ncached = 0;
}

/*
 * Runs a query for one integer (first column of the first row). Returns 1
 * with *value_r set, 0 when there is no row, -1 on error. The statement
 * stays prepared for the next call with the same SQL (reset, its values
 * cleared: no read transaction is left open).
 */
static int directory_query_int(struct directory *d, const char **error_r,
			       int64_t *value_r, const char *sql,
			       const char *types, ...)
{
	sqlite3_stmt *st = NULL;
	va_list ap;
	size_t i;
	int rc, result;

	for (i = 0; i < d->ncached; i++) {
		if (d->cache[i].sql == sql || strcmp(d->cache[i].sql, sql) == 0)
			break;
	}
	va_start(ap, types);
	if (i < d->ncached) {
		st = d->cache[i].st;
		rc = SQLITE_OK;
		for (int k = 0; types[k] != '\0' && rc == SQLITE_OK; k++) {
			if (types[k] == 't') {
				const char *s = va_arg(ap, const char *);
				rc = s == NULL ? sqlite3_bind_null(st, k + 1)
					       : sqlite3_bind_text(
							 st, k + 1, s, -1,
							 SQLITE_TRANSIENT);
			} else {
				rc = sqlite3_bind_int64(
					st, k + 1,
					(sqlite3_int64)va_arg(ap, int64_t));
			}
		}
		if (rc != SQLITE_OK) {
			directory_dberror(d, error_r, "bind a query's values");
			sqlite3_clear_bindings(st);
			va_end(ap);
			return -1;
		}
	} else {
		st = directory_vstmt(d, error_r, sql, types, ap);
		if (st != NULL && d->ncached < DIRECTORY_STMT_CACHE) {
			d->cache[d->ncached].sql = sql;
			d->cache[d->ncached].st = st;
			i = d->ncached++;
		}
	}
	va_end(ap);
	if (st == NULL)
		return -1;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*value_r = sqlite3_column_int64(st, 0);
		result = 1;
	} else if (rc == SQLITE_DONE) {
		result = 0;
	} else {
		directory_dberror(d, error_r, "read the directory");
		result = -1;
	}
	if (i < d->ncached) {
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
	} else {
		sqlite3_finalize(st);
	}
	return result;
}

/* Runs a script of several statements (migrations), each prepared in turn.
 * Returns 0, or -1 with the error set. */
static int directory_exec_script(struct directory *d, const char **error_r,
				 const char *sql)
{
	const char *p = sql;

	while (*p != '\0') {
		sqlite3_stmt *st = NULL;
		const char *tail = NULL;
		int rc;

		if (sqlite3_prepare_v2(d->db, p, -1, &st, &tail) != SQLITE_OK) {
			directory_dberror(d, error_r, "prepare the schema");
			sqlite3_finalize(st);
			return -1;
		}
		if (st == NULL) /* only blanks or comments were left */
			break;
		while ((rc = sqlite3_step(st)) == SQLITE_ROW)
			;
		sqlite3_finalize(st);
		if (rc != SQLITE_DONE)
			return directory_dberror(d, error_r,
						 "update the schema");
		p = tail;
	}
	return 0;
}

/* Copies a text column into dst (size bytes); "" for NULL. */
static void directory_column_text(sqlite3_stmt *st, int col, char *dst,
				  size_t size)
{
	const unsigned char *t = sqlite3_column_text(st, col);

	snprintf(dst, size, "%s", t != NULL ? (const char *)t : "");
}

/* --- names --- */

static int directory_is_atext(unsigned char c)
{
	/* RFC 5322 3.2.3 atext: the characters of an unquoted local part. */
	return isalnum(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

/* Why `s` (len bytes, lower-case) is not a domain name, or NULL if it is:
 * letters, digits and hyphens in dot-separated labels (RFC 1035 2.3.1). */
static const char *directory_domain_problem(const char *s, size_t len)
{
	size_t label = 0;

	if (len == 0)
		return "the domain is empty";
	if (len > DIRECTORY_DOMAIN_MAX)
		return "the domain is longer than 255 characters";
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '.') {
			if (label == 0)
				return "the domain has an empty label";
			if (s[i - 1] == '-')
				return "a domain label ends with a hyphen";
			label = 0;
			continue;
		}
		if (!isalnum(c) && c != '-')
			return "the domain may hold only letters, digits, "
			       "hyphens and dots";
		if (c == '-' && label == 0)
			return "a domain label starts with a hyphen";
		if (++label > 63)
			return "a domain label is longer than 63 characters";
	}
	if (label == 0)
		return "the domain has an empty label";
	if (s[len - 1] == '-')
		return "a domain label ends with a hyphen";
	return NULL;
}

/* Why the local part is not a dot-atom (RFC 5321 4.1.2), or NULL. */
static const char *directory_local_problem(const char *s, size_t len)
{
	if (len == 0)
		return "the local part is empty";
	if (len > DIRECTORY_LOCAL_MAX)
		return "the local part is longer than 64 characters";
	if (s[0] == '.' || s[len - 1] == '.')
		return "the local part starts or ends with a dot";
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '.') {
			if (s[i + 1] == '.')
				return "the local part has two dots in a row";
			continue;
		}
		if (!directory_is_atext((unsigned char)s[i]))
			return "the local part has a character that is not "
			       "allowed";
	}
	return NULL;
}

static void directory_lower(char *s)
{
	for (; *s != '\0'; s++)
		*s = (char)tolower((unsigned char)*s);
}

/*
 * Checks an address and writes it lower-cased into out (DIRECTORY_ADDRESS_MAX
 * + 1 bytes); *domain_r points at its domain inside out. Returns 0, or -1
 * with the error set.
 */
static int directory_norm_address(struct directory *d, const char *in,
				  char *out, const char **domain_r,
				  const char **error_r)
{
	char q[96];
	const char *problem = NULL;
	const char *at = strchr(in, '@');
	size_t len = strlen(in);

	if (at == NULL || strchr(at + 1, '@') != NULL)
		problem = "it needs exactly one '@'";
	else if ((problem = directory_local_problem(in, (size_t)(at - in))) ==
		 NULL) {
		problem = directory_domain_problem(at + 1, strlen(at + 1));
	}
	if (problem == NULL && len > DIRECTORY_ADDRESS_MAX)
		problem = "it is too long";
	if (problem != NULL)
		return directory_fail(d, error_r, "invalid address '%s': %s",
				      directory_quote(q, sizeof(q), in),
				      problem);
	memcpy(out, in, len + 1);
	directory_lower(out);
	*domain_r = out + (at - in) + 1;
	return 0;
}

/* Checks a domain name and writes it lower-cased into out
 * (DIRECTORY_DOMAIN_MAX + 1 bytes). Returns 0, or -1 with the error set. */
static int directory_norm_domain(struct directory *d, const char *in, char *out,
				 const char **error_r)
{
	char q[96];
	size_t len = strlen(in);
	const char *problem = directory_domain_problem(in, len);

	if (problem != NULL)
		return directory_fail(d, error_r, "invalid domain '%s': %s",
				      directory_quote(q, sizeof(q), in),
				      problem);
	memcpy(out, in, len + 1);
	directory_lower(out);
	return 0;
}

/* Group names: 1-64 of letters, digits, '.', '_' and '-'; lower-cased into
 * out (DIRECTORY_GROUP_MAX + 1 bytes). Returns 0, or -1 with the error. */
static int directory_norm_group(struct directory *d, const char *in, char *out,
				const char **error_r)
{
	char q[96];
	size_t len = strlen(in);
	int ok = len > 0 && len <= DIRECTORY_GROUP_MAX;

	for (size_t i = 0; ok && i < len; i++)
		ok = isalnum((unsigned char)in[i]) || strchr("._-", in[i]);
	if (!ok)
		return directory_fail(d, error_r,
				      "invalid group name '%s': use 1 to 64 "
				      "letters, digits, '.', '_' or '-'",
				      directory_quote(q, sizeof(q), in));
	memcpy(out, in, len + 1);
	directory_lower(out);
	return 0;
}

/* --- opening and migrations --- */

int directory_schema_version(void)
{
	return DIRECTORY_SCHEMA_VERSION;
}

int directory_db_version(struct directory *d)
{
	int64_t v = 0;

	if (directory_query_int(d, NULL, &v,
				"SELECT COALESCE(MAX(version), 0) "
				"FROM schema_version",
				"") < 0)
		return -1;
	return (int)v;
}

/* Brings the schema up to DIRECTORY_SCHEMA_VERSION. Returns 0 or -1. */
static int directory_migrate(struct directory *d, const char **error_r)
{
	int64_t have = 0;

	if (directory_exec(d, error_r, "create the schema_version table",
			   "CREATE TABLE IF NOT EXISTS schema_version ("
			   "  version INTEGER PRIMARY KEY,"
			   "  applied INTEGER NOT NULL)",
			   "") < 0)
		return -1;
	if (directory_query_int(d, error_r, &have,
				"SELECT COALESCE(MAX(version), 0) "
				"FROM schema_version",
				"") < 0)
		return -1;
	if (have == DIRECTORY_SCHEMA_VERSION)
		return 0;
	/* IMMEDIATE takes the write lock first, then the version is read
	 * again: two programs opening a new database migrate it once. */
	if (directory_begin(d, error_r) < 0)
		return -1;
	if (directory_query_int(d, error_r, &have,
				"SELECT COALESCE(MAX(version), 0) "
				"FROM schema_version",
				"") < 0)
		goto fail;
	if (have < 0) {
		directory_fail(d, error_r,
			       "the schema_version table is corrupt");
		goto fail;
	}
	if (have > DIRECTORY_SCHEMA_VERSION) {
		directory_fail(d, error_r,
			       "the database has schema version %lld, newer "
			       "than this program's %d",
			       (long long)have, DIRECTORY_SCHEMA_VERSION);
		goto fail;
	}
	for (int v = (int)have; v < DIRECTORY_SCHEMA_VERSION; v++) {
		/* directory_migrations[v] takes version v to v + 1. */
		if (directory_exec_script(d, error_r, directory_migrations[v]) <
			    0 ||
		    directory_exec(d, error_r, "record the schema version",
				   "INSERT INTO schema_version "
				   "(version, applied) VALUES (?, ?)",
				   "ii", (int64_t)v + 1,
				   (int64_t)time(NULL)) < 0)
			goto fail;
	}
	if (directory_commit(d, error_r) < 0)
		goto fail;
	return 0;
fail:
	directory_rollback(d);
	return -1;
}

struct directory *directory_open(const char *path, const char **error_r)
{
	struct directory *d;
	const char *error = NULL;
	sqlite3_stmt *st;
	int wal = 0;

	if (sodium_init() < 0) {
		*error_r = "cannot initialize libsodium";
		return NULL;
	}
	d = calloc(1, sizeof(*d));
	if (d == NULL) {
		*error_r = "out of memory";
		return NULL;
	}
	if (sqlite3_open_v2(path, &d->db,
			    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
				    SQLITE_OPEN_NOMUTEX,
			    NULL) != SQLITE_OK) {
		snprintf(directory_open_error, sizeof(directory_open_error),
			 "cannot open %s: %s", path,
			 d->db != NULL ? sqlite3_errmsg(d->db)
				       : "out of memory");
		goto fail;
	}
	sqlite3_extended_result_codes(d->db, 1);
	sqlite3_busy_timeout(d->db, DIRECTORY_BUSY_TIMEOUT_MS);
	/* WAL: the daemon's readers never wait for petrelctl's writers. */
	st = directory_stmt(d, &error, "PRAGMA journal_mode = WAL", "");
	if (st != NULL) {
		if (sqlite3_step(st) == SQLITE_ROW) {
			const unsigned char *m = sqlite3_column_text(st, 0);
			wal = m != NULL &&
			      (strcmp((const char *)m, "wal") == 0 ||
			       strcmp((const char *)m, "memory") == 0);
		}
		sqlite3_finalize(st);
		if (!wal)
			directory_dberror(d, &error, "switch to WAL mode");
	}
	if (error == NULL &&
	    directory_exec(d, &error, "turn on foreign keys",
			   "PRAGMA foreign_keys = ON", "") >= 0)
		directory_migrate(d, &error);
	if (error != NULL) {
		snprintf(directory_open_error, sizeof(directory_open_error),
			 "%s: %s", path, error);
		goto fail;
	}
	return d;
fail:
	*error_r = directory_open_error;
	directory_cache_clear(d);
	sqlite3_close_v2(d->db);
	free(d);
	return NULL;
}

void directory_close(struct directory *d)
{
	if (d == NULL)
		return;
	directory_cache_clear(d);
	sqlite3_close_v2(d->db);
	free(d);
}

int directory_change_count(struct directory *d, int64_t *count_r)
{
	if (directory_query_int(d, NULL, count_r,
				"SELECT n FROM changes WHERE id = 1", "") <= 0)
		return -1;
	return 1;
}

int directory_data_version(struct directory *d, int64_t *version_r)
{
	if (directory_query_int(d, NULL, version_r, "PRAGMA data_version",
				"") <= 0)
		return -1;
	return 1;
}

int directory_begin(struct directory *d, const char **error_r)
{
	return directory_exec(d, error_r, "begin a transaction",
			      "BEGIN IMMEDIATE", "") < 0
		       ? -1
		       : 1;
}

int directory_commit(struct directory *d, const char **error_r)
{
	return directory_exec(d, error_r, "commit", "COMMIT", "") < 0 ? -1 : 1;
}

void directory_rollback(struct directory *d)
{
	if (sqlite3_get_autocommit(d->db) == 0)
		directory_exec(d, NULL, "roll back", "ROLLBACK", "");
}

/* --- domains --- */

/* The id of a domain (already normalized). 1 found, 0 not, -1 error. */
static int directory_domain_id(struct directory *d, const char *name,
			       int64_t *id_r, const char **error_r)
{
	return directory_query_int(d, error_r, id_r,
				   "SELECT id FROM domains WHERE name = ?", "t",
				   name);
}

int directory_domain_add(struct directory *d, const char *name,
			 const char **error_r)
{
	char dom[DIRECTORY_DOMAIN_MAX + 1];
	int64_t id;
	int r;

	if (directory_norm_domain(d, name, dom, error_r) < 0)
		return -1;
	r = directory_domain_id(d, dom, &id, error_r);
	if (r < 0)
		return -1;
	if (r > 0)
		return directory_fail(d, error_r, "domain %s already exists",
				      dom);
	if (directory_exec(d, error_r, "add the domain",
			   "INSERT INTO domains (name, created) VALUES (?, ?)",
			   "ti", dom, (int64_t)time(NULL)) < 0)
		return -1;
	return 1;
}

int directory_domain_del(struct directory *d, const char *name,
			 const char **error_r)
{
	char dom[DIRECTORY_DOMAIN_MAX + 1];
	int64_t id, accounts = 0, aliases = 0;
	int r;

	if (directory_norm_domain(d, name, dom, error_r) < 0)
		return -1;
	r = directory_domain_id(d, dom, &id, error_r);
	if (r <= 0)
		return r < 0 ? -1
			     : directory_none(d, error_r,
					      "domain %s does not exist", dom);
	if (directory_query_int(d, error_r, &accounts,
				"SELECT COUNT(*) FROM accounts "
				"WHERE domain_id = ?",
				"i", id) < 0 ||
	    directory_query_int(d, error_r, &aliases,
				"SELECT COUNT(*) FROM aliases "
				"WHERE domain_id = ?",
				"i", id) < 0)
		return -1;
	if (accounts > 0 || aliases > 0)
		return directory_fail(d, error_r,
				      "domain %s still has %lld account(s) and "
				      "%lld alias(es); delete them first",
				      dom, (long long)accounts,
				      (long long)aliases);
	if (directory_exec(d, error_r, "delete the domain",
			   "DELETE FROM domains WHERE id = ?", "i", id) < 0)
		return -1;
	return 1;
}

int directory_domain_exists(struct directory *d, const char *name)
{
	char dom[DIRECTORY_DOMAIN_MAX + 1];
	int64_t id;
	size_t len = strlen(name);

	if (len > DIRECTORY_DOMAIN_MAX)
		return 0;
	memcpy(dom, name, len + 1);
	directory_lower(dom);
	return directory_domain_id(d, dom, &id, NULL);
}

int directory_domain_list(struct directory *d,
			  void (*cb)(const char *name, void *ctx), void *ctx,
			  const char **error_r)
{
	sqlite3_stmt *st;
	int rc;

	st = directory_stmt(d, error_r,
			    "SELECT name FROM domains ORDER BY name", "");
	if (st == NULL)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		cb((const char *)sqlite3_column_text(st, 0), ctx);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return directory_dberror(d, error_r, "list the domains");
	return 1;
}

/* --- accounts --- */

#define DIRECTORY_ACCOUNT_COLUMNS                                              \
	"id, address, state, state_reason, state_time, is_admin, quota_mb, "   \
	"created, last_login"

static void directory_account_row(sqlite3_stmt *st, struct directory_account *a)
{
	memset(a, 0, sizeof(*a));
	a->id = sqlite3_column_int64(st, 0);
	directory_column_text(st, 1, a->address, sizeof(a->address));
	a->state = (enum directory_account_state)sqlite3_column_int(st, 2);
	directory_column_text(st, 3, a->state_reason, sizeof(a->state_reason));
	a->state_time = sqlite3_column_int64(st, 4);
	a->is_admin = sqlite3_column_int(st, 5) != 0;
	a->quota_mb = sqlite3_column_int64(st, 6);
	a->created = sqlite3_column_int64(st, 7);
	a->last_login = sqlite3_column_int64(st, 8);
}

/* The id of an account (already normalized). 1 found, 0 not, -1 error. */
static int directory_account_id(struct directory *d, const char *address,
				int64_t *id_r, const char **error_r)
{
	return directory_query_int(d, error_r, id_r,
				   "SELECT id FROM accounts WHERE address = ?",
				   "t", address);
}

/* The account an alias (already normalized) points to: 1 with account_r
 * filled, 0 when no such alias, -1 on error. */
static int directory_alias_target(struct directory *d, const char *alias,
				  char *account_r, const char **error_r)
{
	sqlite3_stmt *st;
	int rc;

	st = directory_stmt(d, error_r,
			    "SELECT ac.address FROM aliases al "
			    "JOIN accounts ac ON ac.id = al.account_id "
			    "WHERE al.address = ?",
			    "t", alias);
	if (st == NULL)
		return -1;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		directory_column_text(st, 0, account_r,
				      DIRECTORY_ADDRESS_MAX + 1);
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc != SQLITE_DONE)
		return directory_dberror(d, error_r, "look up the alias");
	return 0;
}

/* Hashes a password with argon2id into hash (crypto_pwhash_STRBYTES).
 * Returns 0, or -1 with the error set. */
static int directory_hash(struct directory *d, const char *password, char *hash,
			  const char **error_r)
{
	size_t len = strlen(password);

	if (len == 0)
		return directory_fail(d, error_r, "the password is empty");
	if (crypto_pwhash_str(hash, password, len,
			      crypto_pwhash_OPSLIMIT_INTERACTIVE,
			      crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
		return directory_fail(d, error_r,
				      "cannot hash the password: out of "
				      "memory");
	return 0;
}

/* The checks of directory_account_add before hashing: a valid address in
 * one of our domains that is neither an account nor an alias. 1 with
 * *domain_id_r set, -1 with the error set. */
static int directory_account_check(struct directory *d, const char *address,
				   char *addr, int64_t *domain_id_r,
				   const char **error_r)
{
	char target[DIRECTORY_ADDRESS_MAX + 1];
	const char *dom;
	int64_t id;
	int r;

	if (directory_norm_address(d, address, addr, &dom, error_r) < 0)
		return -1;
	r = directory_domain_id(d, dom, domain_id_r, error_r);
	if (r <= 0)
		return r < 0 ? -1
			     : directory_fail(d, error_r,
					      "domain %s does not exist", dom);
	r = directory_account_id(d, addr, &id, error_r);
	if (r != 0)
		return r < 0 ? -1
			     : directory_fail(d, error_r,
					      "account %s already exists",
					      addr);
	r = directory_alias_target(d, addr, target, error_r);
	if (r != 0)
		return r < 0 ? -1
			     : directory_fail(d, error_r,
					      "%s is already an alias of %s",
					      addr, target);
	return 1;
}

int directory_account_can_add(struct directory *d, const char *address,
			      const char **error_r)
{
	char addr[DIRECTORY_ADDRESS_MAX + 1];
	int64_t domain_id;

	return directory_account_check(d, address, addr, &domain_id, error_r);
}

int directory_account_add(struct directory *d, const char *address,
			  const char *password, int is_admin,
			  const char **error_r)
{
	char addr[DIRECTORY_ADDRESS_MAX + 1];
	char hash[crypto_pwhash_STRBYTES];
	int64_t domain_id;
	int r;

	if (directory_account_check(d, address, addr, &domain_id, error_r) < 0)
		return -1;
	if (directory_hash(d, password, hash, error_r) < 0)
		return -1;
	r = directory_exec(d, error_r, "add the account",
			   "INSERT INTO accounts (address, domain_id, password,"
			   " is_admin, created, state_time)"
			   " VALUES (?, ?, ?, ?, ?, ?)",
			   "titiii", addr, domain_id, hash,
			   (int64_t)(is_admin != 0), (int64_t)time(NULL),
			   (int64_t)time(NULL));
	sodium_memzero(hash, sizeof(hash));
	return r < 0 ? -1 : 1;
}

int directory_account_passwd(struct directory *d, const char *address,
			     const char *password, const char **error_r)
{
	char addr[DIRECTORY_ADDRESS_MAX + 1];
	char hash[crypto_pwhash_STRBYTES];
	const char *dom;
	int64_t id;
	int r;

	if (directory_norm_address(d, address, addr, &dom, error_r) < 0)
		return -1;
	r = directory_account_id(d, addr, &id, error_r);
	if (r <= 0)
		return r < 0 ? -1
			     : directory_none(d, error_r,
					      "account %s does not exist",
					      addr);
	if (directory_hash(d, password, hash, error_r) < 0)
		return -1;
	r = directory_exec(d, error_r, "change the password",
			   "UPDATE accounts SET password = ? WHERE id = ?",
			   "ti", hash, id);
	sodium_memzero(hash, sizeof(hash));
	return r < 0 ? -1 : 1;
}

int directory_account_set_state(struct directory *d, const char *address,
				enum directory_account_state state,
				const char *reason, int64_t now,
				const char **error_r)
{
	char addr[DIRECTORY_ADDRESS_MAX + 1];
	const char *dom;
	int r;

	if (reason == NULL)
		reason = "";
	if (state != DIRECTORY_ACCOUNT_ENABLED &&
	    state != DIRECTORY_ACCOUNT_DISABLED &&
	    state != DIRECTORY_ACCOUNT_FROZEN)
		return directory_fail(d, error_r, "invalid account state %d",
				      (int)state);
	if (strlen(reason) > DIRECTORY_REASON_MAX)
		return directory_fail(d, error_r,
				      "the reason is longer than %d bytes",
				      DIRECTORY_REASON_MAX);
	for (const char *p = reason; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return directory_fail(d, error_r,
					      "the reason has control "
					      "characters");
	if (directory_norm_address(d, address, addr, &dom, error_r) < 0)
		return -1;
	r = directory_exec(d, error_r, "change the account's state",
			   "UPDATE accounts SET state = ?, state_reason = ?,"
			   " state_time = ? WHERE address = ?",
			   "itit", (int64_t)state, reason, now, addr);
	if (r < 0)
		return -1;
	if (r == 0)
		return directory_none(d, error_r, "account %s does not exist",
				      addr);
	return 1;
}

int directory_account_del(struct directory *d, const char *address,
			  const char **error_r)
{
	char addr[DIRECTORY_ADDRESS_MAX + 1];
	const char *dom;
	int r;

	if (directory_norm_address(d, address, addr, &dom, error_r) < 0)
		return -1;
	/* Its aliases go with it (ON DELETE CASCADE). */
	r = directory_exec(d, error_r, "delete the account",
			   "DELETE FROM accounts WHERE address = ?", "t", addr);
	if (r < 0)
		return -1;
	if (r == 0)
		return directory_none(d, error_r, "account %s does not exist",
				      addr);
	return 1;
}

int directory_account_get(struct directory *d, const char *address,
			  struct directory_account *out, const char **error_r)
{
	char addr[DIRECTORY_ADDRESS_MAX + 1];
	const char *dom;
	sqlite3_stmt *st;
	int rc;

	if (directory_norm_address(d, address, addr, &dom, error_r) < 0)
		return 0; /* what is not an address is no account */
	st = directory_stmt(d, error_r,
			    "SELECT " DIRECTORY_ACCOUNT_COLUMNS
			    " FROM accounts WHERE address = ?",
			    "t", addr);
	if (st == NULL)
		return -1;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		directory_account_row(st, out);
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc != SQLITE_DONE)
		return directory_dberror(d, error_r, "read the account");
	return directory_none(d, error_r, "account %s does not exist", addr);
}

int directory_account_list(struct directory *d,
			   void (*cb)(const struct directory_account *a,
				      void *ctx),
			   void *ctx, const char **error_r)
{
	struct directory_account a;
	sqlite3_stmt *st;
	int rc;

	st = directory_stmt(d, error_r,
			    "SELECT " DIRECTORY_ACCOUNT_COLUMNS
			    " FROM accounts ORDER BY address",
			    "");
	if (st == NULL)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		directory_account_row(st, &a);
		cb(&a, ctx);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return directory_dberror(d, error_r, "list the accounts");
	return 1;
}

int directory_account_verify(struct directory *d, const char *address,
			     const char *password, size_t password_len,
			     struct directory_account *out,
			     const char **reason_r, const char **error_r)
{
	char addr[DIRECTORY_ADDRESS_MAX + 1];
	char hash[crypto_pwhash_STRBYTES];
	struct directory_account a = {0};
	sqlite3_stmt *st = NULL;
	const char *dom, *ignored;
	int rc = SQLITE_DONE, match;

	*reason_r = "unknown";
	if (directory_norm_address(d, address, addr, &dom, &ignored) == 0) {
		st = directory_stmt(d, error_r,
				    "SELECT " DIRECTORY_ACCOUNT_COLUMNS
				    ", password FROM accounts"
				    " WHERE address = ?",
				    "t", addr);
		if (st == NULL)
			return -1;
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			directory_account_row(st, &a);
			directory_column_text(st, 9, hash, sizeof(hash));
		}
		sqlite3_finalize(st);
		if (rc != SQLITE_ROW && rc != SQLITE_DONE)
			return directory_dberror(d, error_r,
						 "read the account");
	}
	/* The hash is checked whatever the account: the same work for an
	 * unknown address as for a wrong password. */
	if (rc != SQLITE_ROW)
		memcpy(hash, directory_dummy_hash,
		       sizeof(directory_dummy_hash));
	match = crypto_pwhash_str_verify(hash, password,
					 (unsigned long long)password_len) == 0;
	sodium_memzero(hash, sizeof(hash));
	if (rc != SQLITE_ROW)
		return 0;
	if (!match) {
		*reason_r = "password";
		return 0;
	}
	if (a.state == DIRECTORY_ACCOUNT_DISABLED) {
		*reason_r = "disabled";
		return 0;
	}
	if (a.state == DIRECTORY_ACCOUNT_FROZEN) {
		*reason_r = "frozen";
		return 0;
	}
	*reason_r = "ok";
	if (out != NULL)
		*out = a;
	return 1;
}

int directory_account_touch_login(struct directory *d, const char *address,
				  int64_t now, const char **error_r)
{
	char addr[DIRECTORY_ADDRESS_MAX + 1];
	const char *dom;
	int r;

	if (directory_norm_address(d, address, addr, &dom, error_r) < 0)
		return -1;
	r = directory_exec(d, error_r, "record the login",
			   "UPDATE accounts SET last_login = ?"
			   " WHERE address = ?",
			   "it", now, addr);
	if (r < 0)
		return -1;
	if (r == 0)
		return directory_none(d, error_r, "account %s does not exist",
				      addr);
	return 1;
}

/* --- aliases --- */

int directory_alias_add(struct directory *d, const char *alias,
			const char *account, const char **error_r)
{
	char al[DIRECTORY_ADDRESS_MAX + 1], ac[DIRECTORY_ADDRESS_MAX + 1];
	char target[DIRECTORY_ADDRESS_MAX + 1];
	const char *al_dom, *ac_dom;
	int64_t domain_id, account_id, id;
	int r;

	if (directory_norm_address(d, alias, al, &al_dom, error_r) < 0 ||
	    directory_norm_address(d, account, ac, &ac_dom, error_r) < 0)
		return -1;
	r = directory_domain_id(d, al_dom, &domain_id, error_r);
	if (r <= 0)
		return r < 0 ? -1
			     : directory_fail(d, error_r,
					      "domain %s does not exist",
					      al_dom);
	r = directory_account_id(d, ac, &account_id, error_r);
	if (r <= 0)
		return r < 0 ? -1
			     : directory_fail(d, error_r,
					      "account %s does not exist", ac);
	r = directory_account_id(d, al, &id, error_r);
	if (r != 0)
		return r < 0 ? -1
			     : directory_fail(d, error_r,
					      "%s is an account; an alias "
					      "cannot have its address",
					      al);
	r = directory_alias_target(d, al, target, error_r);
	if (r != 0)
		return r < 0 ? -1
			     : directory_fail(d, error_r,
					      "alias %s already exists (it "
					      "points to %s)",
					      al, target);
	if (directory_exec(d, error_r, "add the alias",
			   "INSERT INTO aliases (address, domain_id, "
			   "account_id) VALUES (?, ?, ?)",
			   "tii", al, domain_id, account_id) < 0)
		return -1;
	return 1;
}

int directory_alias_del(struct directory *d, const char *alias,
			const char **error_r)
{
	char al[DIRECTORY_ADDRESS_MAX + 1];
	const char *dom;
	int r;

	if (directory_norm_address(d, alias, al, &dom, error_r) < 0)
		return -1;
	r = directory_exec(d, error_r, "delete the alias",
			   "DELETE FROM aliases WHERE address = ?", "t", al);
	if (r < 0)
		return -1;
	if (r == 0)
		return directory_none(d, error_r, "alias %s does not exist",
				      al);
	return 1;
}

int directory_alias_list(struct directory *d,
			 void (*cb)(const char *alias, const char *account,
				    void *ctx),
			 void *ctx, const char **error_r)
{
	sqlite3_stmt *st;
	int rc;

	st = directory_stmt(d, error_r,
			    "SELECT al.address, ac.address FROM aliases al "
			    "JOIN accounts ac ON ac.id = al.account_id "
			    "ORDER BY al.address",
			    "");
	if (st == NULL)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		cb((const char *)sqlite3_column_text(st, 0),
		   (const char *)sqlite3_column_text(st, 1), ctx);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return directory_dberror(d, error_r, "list the aliases");
	return 1;
}

int directory_resolve(struct directory *d, const char *address, char *account_r,
		      const char **error_r)
{
	char addr[DIRECTORY_ADDRESS_MAX + 1];
	const char *dom;
	int64_t id;
	int r;

	if (directory_norm_address(d, address, addr, &dom, error_r) < 0)
		return 0; /* what is not an address is nobody here */
	r = directory_account_id(d, addr, &id, error_r);
	if (r < 0)
		return -1;
	if (r > 0) {
		memcpy(account_r, addr, strlen(addr) + 1);
		return 1;
	}
	return directory_alias_target(d, addr, account_r, error_r);
}

/* --- groups --- */

static int directory_group_id(struct directory *d, const char *name,
			      int64_t *id_r, const char **error_r)
{
	return directory_query_int(d, error_r, id_r,
				   "SELECT id FROM groups WHERE name = ?", "t",
				   name);
}

int directory_group_add(struct directory *d, const char *name,
			const char **error_r)
{
	char g[DIRECTORY_GROUP_MAX + 1];
	int64_t id;
	int r;

	if (directory_norm_group(d, name, g, error_r) < 0)
		return -1;
	r = directory_group_id(d, g, &id, error_r);
	if (r != 0)
		return r < 0 ? -1
			     : directory_fail(d, error_r,
					      "group %s already exists", g);
	if (directory_exec(d, error_r, "add the group",
			   "INSERT INTO groups (name) VALUES (?)", "t", g) < 0)
		return -1;
	return 1;
}

int directory_group_del(struct directory *d, const char *name,
			const char **error_r)
{
	char g[DIRECTORY_GROUP_MAX + 1];
	int r;

	if (directory_norm_group(d, name, g, error_r) < 0)
		return -1;
	/* Its members go with it (ON DELETE CASCADE). */
	r = directory_exec(d, error_r, "delete the group",
			   "DELETE FROM groups WHERE name = ?", "t", g);
	if (r < 0)
		return -1;
	if (r == 0)
		return directory_none(d, error_r, "group %s does not exist", g);
	return 1;
}

int directory_group_member_add(struct directory *d, const char *group,
			       const char *address, const char **error_r)
{
	char g[DIRECTORY_GROUP_MAX + 1], addr[DIRECTORY_ADDRESS_MAX + 1];
	const char *dom;
	int64_t id, one;
	int r;

	if (directory_norm_group(d, group, g, error_r) < 0 ||
	    directory_norm_address(d, address, addr, &dom, error_r) < 0)
		return -1;
	r = directory_group_id(d, g, &id, error_r);
	if (r <= 0)
		return r < 0 ? -1
			     : directory_fail(d, error_r,
					      "group %s does not exist", g);
	r = directory_query_int(d, error_r, &one,
				"SELECT 1 FROM group_members"
				" WHERE group_id = ? AND address = ?",
				"it", id, addr);
	if (r != 0)
		return r < 0 ? -1
			     : directory_fail(d, error_r,
					      "%s is already a member of group "
					      "%s",
					      addr, g);
	if (directory_exec(d, error_r, "add the group member",
			   "INSERT INTO group_members (group_id, address)"
			   " VALUES (?, ?)",
			   "it", id, addr) < 0)
		return -1;
	return 1;
}

int directory_group_member_del(struct directory *d, const char *group,
			       const char *address, const char **error_r)
{
	char g[DIRECTORY_GROUP_MAX + 1], addr[DIRECTORY_ADDRESS_MAX + 1];
	const char *dom;
	int64_t id;
	int r;

	if (directory_norm_group(d, group, g, error_r) < 0 ||
	    directory_norm_address(d, address, addr, &dom, error_r) < 0)
		return -1;
	r = directory_group_id(d, g, &id, error_r);
	if (r <= 0)
		return r < 0 ? -1
			     : directory_none(d, error_r,
					      "group %s does not exist", g);
	r = directory_exec(d, error_r, "remove the group member",
			   "DELETE FROM group_members"
			   " WHERE group_id = ? AND address = ?",
			   "it", id, addr);
	if (r < 0)
		return -1;
	if (r == 0)
		return directory_none(
			d, error_r, "%s is not a member of group %s", addr, g);
	return 1;
}

int directory_group_is_member(struct directory *d, const char *group,
			      const char *address)
{
	char g[DIRECTORY_GROUP_MAX + 1], addr[DIRECTORY_ADDRESS_MAX + 1];
	const char *dom, *ignored;
	int64_t one;

	if (directory_norm_group(d, group, g, &ignored) < 0 ||
	    directory_norm_address(d, address, addr, &dom, &ignored) < 0)
		return 0;
	return directory_query_int(d, NULL, &one,
				   "SELECT 1 FROM group_members m"
				   " JOIN groups g ON g.id = m.group_id"
				   " WHERE g.name = ? AND m.address = ?",
				   "tt", g, addr);
}

int directory_group_list(struct directory *d,
			 void (*cb)(const char *name, const char *members,
				    void *ctx),
			 void *ctx, const char **error_r)
{
	char name[DIRECTORY_GROUP_MAX + 1] = "";
	sqlite3_stmt *st;
	struct buf members;
	int rc, have = 0, ret = 1;

	/* One row per member (or one with a NULL member for an empty group),
	 * in order; each group is handed out when the next one starts. */
	st = directory_stmt(d, error_r,
			    "SELECT g.name, m.address FROM groups g"
			    " LEFT JOIN group_members m ON m.group_id = g.id"
			    " ORDER BY g.name, m.address",
			    "");
	if (st == NULL)
		return -1;
	buf_init(&members, DIRECTORY_GROUP_LIST_MAX);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *g = (const char *)sqlite3_column_text(st, 0);
		const char *m = (const char *)sqlite3_column_text(st, 1);

		if (g == NULL)
			continue;
		if (!have || strcmp(g, name) != 0) {
			if (have)
				cb(name, buf_cstr(&members), ctx);
			snprintf(name, sizeof(name), "%s", g);
			buf_reset(&members);
			have = 1;
		}
		if (m != NULL &&
		    ((members.len > 0 && buf_append_str(&members, ", ") < 0) ||
		     buf_append_str(&members, m) < 0)) {
			ret = directory_fail(d, error_r,
					     "group %s has too many members to "
					     "list",
					     name);
			break;
		}
	}
	if (ret > 0 && rc != SQLITE_DONE)
		ret = directory_dberror(d, error_r, "list the groups");
	if (ret > 0 && have)
		cb(name, buf_cstr(&members), ctx);
	sqlite3_finalize(st);
	buf_deinit(&members);
	return ret;
}

/* --- settings --- */

int directory_setting_set(struct directory *d, const char *name,
			  const char *value, const char **error_r)
{
	const struct settings_def *def;
	const char *why;
	char q[96];
	char *norm;
	size_t size;
	int id, r;

	id = settings_lookup(name);
	if (id < 0)
		return directory_fail(d, error_r, "unknown setting '%s'",
				      directory_quote(q, sizeof(q), name));
	def = settings_def((enum settings_id)id);
	/* A list grows by one byte per comma when normalized ("a,b" to
	 * "a, b"). */
	size = strlen(value) * 2 + 16;
	norm = malloc(size);
	if (norm == NULL)
		return directory_fail(d, error_r, "out of memory");
	if (settings_normalize((enum settings_id)id, value, norm, size, &why) <
	    0) {
		free(norm);
		if (def->type == SETTINGS_INT)
			return directory_fail(
				d, error_r, "%s: %s (%lld to %lld)", name, why,
				(long long)def->min, (long long)def->max);
		if (def->type == SETTINGS_ENUM)
			return directory_fail(d, error_r, "%s: %s (%s)", name,
					      why, def->choices);
		if (def->type == SETTINGS_LIST || def->type == SETTINGS_STR)
			return directory_fail(d, error_r,
					      "%s: %s (at most %lld bytes)",
					      name, why, (long long)def->max);
		return directory_fail(d, error_r, "%s: %s", name, why);
	}
	r = directory_exec(d, error_r, "store the setting",
			   "INSERT INTO settings (name, value) VALUES (?, ?)"
			   " ON CONFLICT (name) DO UPDATE"
			   " SET value = excluded.value",
			   "tt", def->name, norm);
	free(norm);
	return r < 0 ? -1 : 1;
}

int directory_setting_get(struct directory *d, const char *name, char *value_r,
			  size_t size, const char **error_r)
{
	const struct settings_def *def;
	sqlite3_stmt *st;
	const char *v;
	char q[96];
	int id, rc, n;

	id = settings_lookup(name);
	if (id < 0)
		return directory_none(d, error_r, "unknown setting '%s'",
				      directory_quote(q, sizeof(q), name));
	def = settings_def((enum settings_id)id);
	st = directory_stmt(d, error_r,
			    "SELECT value FROM settings WHERE name = ?", "t",
			    def->name);
	if (st == NULL)
		return -1;
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		sqlite3_finalize(st);
		return directory_dberror(d, error_r, "read the setting");
	}
	v = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
	n = snprintf(value_r, size, "%s", v != NULL ? v : def->defval);
	sqlite3_finalize(st);
	if (n < 0 || (size_t)n >= size)
		return directory_fail(d, error_r,
				      "the value of %s is too long to read",
				      def->name);
	return 1;
}

struct settings *directory_settings_load(struct directory *d,
					 const char **error_r)
{
	struct settings *s;
	sqlite3_stmt *st;
	int rc;

	s = settings_new();
	if (s == NULL) {
		directory_fail(d, error_r, "out of memory");
		return NULL;
	}
	st = directory_stmt(d, error_r, "SELECT name, value FROM settings", "");
	if (st == NULL) {
		settings_unref(s);
		return NULL;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);
		const char *value = (const char *)sqlite3_column_text(st, 1);
		int id = name != NULL ? settings_lookup(name) : -1;

		/* A row this program does not know (written by a newer one)
		 * or no longer accepts keeps the default. */
		if (id >= 0 && value != NULL)
			(void)settings_set(s, (enum settings_id)id, value);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		directory_dberror(d, error_r, "read the settings");
		settings_unref(s);
		return NULL;
	}
	return s;
}

/* --- security events --- */

int directory_security_event_add(struct directory *d, int64_t now,
				 const char *kind, const char *account,
				 const char *ip, const char *text,
				 const char **error_r)
{
	if (directory_exec(d, error_r, "record the security event",
			   "INSERT INTO security_events"
			   " (time, kind, account, ip, text)"
			   " VALUES (?, ?, ?, ?, ?)",
			   "itttt", now, kind, account, ip,
			   text != NULL ? text : "") < 0)
		return -1;
	return 1;
}

/* --- screening blocks --- */

int directory_block_put(struct directory *d, const char *ip, int64_t until,
			int offenses, const char *reason, int64_t now,
			const char **error_r)
{
	if (directory_exec(
		    d, error_r, "record the block",
		    "INSERT INTO screening_blocks"
		    " (ip, until, offenses, reason, created)"
		    " VALUES (?, ?, ?, ?, ?)"
		    " ON CONFLICT (ip) DO UPDATE SET until = excluded.until,"
		    " offenses = excluded.offenses,"
		    " reason = excluded.reason, created = excluded.created",
		    "tiiti", ip, until, (int64_t)offenses, reason, now) < 0)
		return -1;
	return 1;
}

int directory_block_del(struct directory *d, const char *ip, int64_t now,
			const char **error_r)
{
	/* The record of offenses stays; only the block ends. */
	int n = directory_exec(d, error_r, "lift the block",
			       "UPDATE screening_blocks SET until = ?"
			       " WHERE ip = ? AND until > ?",
			       "iti", now, ip, now);

	return n < 0 ? -1 : n > 0 ? 1 : 0;
}

int directory_block_list(struct directory *d, int64_t since,
			 void (*cb)(const struct directory_block *b, void *ctx),
			 void *ctx, const char **error_r)
{
	sqlite3_stmt *st;
	int rc;

	st = directory_stmt(d, error_r,
			    "SELECT ip, until, offenses, reason, created"
			    " FROM screening_blocks WHERE until > ?"
			    " ORDER BY until DESC",
			    "i", since);
	if (st == NULL)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct directory_block b;

		memset(&b, 0, sizeof(b));
		directory_column_text(st, 0, b.ip, sizeof(b.ip));
		b.until = sqlite3_column_int64(st, 1);
		b.offenses = sqlite3_column_int(st, 2);
		directory_column_text(st, 3, b.reason, sizeof(b.reason));
		b.created = sqlite3_column_int64(st, 4);
		cb(&b, ctx);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return directory_dberror(d, error_r, "list the blocks");
	return 1;
}

int directory_block_prune(struct directory *d, int64_t before,
			  const char **error_r)
{
	return directory_exec(d, error_r, "forget old blocks",
			      "DELETE FROM screening_blocks WHERE until < ?",
			      "i", before) < 0
		       ? -1
		       : 1;
}

/* --- hijack detection --- */

int directory_hijack_send_add(struct directory *d,
			      const struct directory_hijack_send *s,
			      const char **error_r)
{
	return directory_exec(d, error_r, "record a send",
			      "INSERT INTO hijack_sends"
			      " (account, time, ip, rcpts, subject, domains)"
			      " VALUES (?, ?, ?, ?, ?, ?)",
			      "tititt", s->account, s->time, s->ip,
			      (int64_t)s->rcpts, s->subject, s->domains) < 0
		       ? -1
		       : 1;
}

int directory_hijack_login_add(struct directory *d, const char *account,
			       int64_t time, const char *ip,
			       const char **error_r)
{
	return directory_exec(d, error_r, "record a login",
			      "INSERT INTO hijack_logins (account, time, ip)"
			      " VALUES (?, ?, ?)",
			      "tit", account, time, ip) < 0
		       ? -1
		       : 1;
}

int directory_hijack_load(struct directory *d, const char *account,
			  int64_t since,
			  void (*send_cb)(const struct directory_hijack_send *s,
					  void *ctx),
			  void (*login_cb)(const char *account, int64_t time,
					   const char *ip, void *ctx),
			  void *ctx, const char **error_r)
{
	sqlite3_stmt *st;
	int rc;

	st = directory_stmt(d, error_r,
			    "SELECT account, time, ip, rcpts, subject, domains"
			    " FROM hijack_sends WHERE time > ?"
			    " AND (? IS NULL OR account = ?) ORDER BY time, id",
			    "itt", since, account, account);
	if (st == NULL)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct directory_hijack_send s;

		memset(&s, 0, sizeof(s));
		directory_column_text(st, 0, s.account, sizeof(s.account));
		s.time = sqlite3_column_int64(st, 1);
		directory_column_text(st, 2, s.ip, sizeof(s.ip));
		s.rcpts = (unsigned)sqlite3_column_int64(st, 3);
		directory_column_text(st, 4, s.subject, sizeof(s.subject));
		directory_column_text(st, 5, s.domains, sizeof(s.domains));
		if (send_cb != NULL)
			send_cb(&s, ctx);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return directory_dberror(d, error_r, "load the sends");
	st = directory_stmt(d, error_r,
			    "SELECT account, time, ip FROM hijack_logins"
			    " WHERE time > ? AND (? IS NULL OR account = ?)"
			    " ORDER BY time, id",
			    "itt", since, account, account);
	if (st == NULL)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		char acc[DIRECTORY_ADDRESS_MAX + 1], ip[64];

		directory_column_text(st, 0, acc, sizeof(acc));
		directory_column_text(st, 2, ip, sizeof(ip));
		if (login_cb != NULL)
			login_cb(acc, sqlite3_column_int64(st, 1), ip, ctx);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return directory_dberror(d, error_r, "load the logins");
	return 1;
}

int directory_hijack_forget(struct directory *d, const char *account,
			    int64_t before, const char **error_r)
{
	if (account != NULL)
		return directory_exec(d, error_r, "reset the window",
				      "DELETE FROM hijack_sends"
				      " WHERE account = ?",
				      "t", account) < 0 ||
				       directory_exec(
					       d, error_r, "reset the window",
					       "DELETE FROM hijack_logins"
					       " WHERE account = ?",
					       "t", account) < 0
			       ? -1
			       : 1;
	return directory_exec(d, error_r, "prune the windows",
			      "DELETE FROM hijack_sends WHERE time < ?", "i",
			      before) < 0 ||
			       directory_exec(d, error_r, "prune the windows",
					      "DELETE FROM hijack_logins"
					      " WHERE time < ?",
					      "i", before) < 0 ||
			       directory_exec(d, error_r, "prune the tokens",
					      "DELETE FROM hijack_tokens"
					      " WHERE expires < ?",
					      "i", before / 1000) < 0
		       ? -1
		       : 1;
}

int directory_hijack_token_add(struct directory *d, const char *hash,
			       const char *account, int64_t now,
			       int64_t expires, const char **error_r)
{
	return directory_exec(d, error_r, "store the token",
			      "INSERT INTO hijack_tokens"
			      " (hash, account, created, expires)"
			      " VALUES (?, ?, ?, ?)",
			      "ttii", hash, account, now, expires) < 0
		       ? -1
		       : 1;
}

int directory_hijack_token_take(struct directory *d, const char *hash,
				const char *domain, int64_t now,
				char *account_r, size_t size,
				const char **why_r, const char **error_r)
{
	sqlite3_stmt *st;
	int64_t expires = 0, used = 0;
	const char *at;
	int rc, found = 0, n;

	st = directory_stmt(d, error_r,
			    "SELECT account, expires, used FROM hijack_tokens"
			    " WHERE hash = ?",
			    "t", hash);
	if (st == NULL)
		return -1;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		found = 1;
		directory_column_text(st, 0, account_r, size);
		expires = sqlite3_column_int64(st, 1);
		used = sqlite3_column_int64(st, 2);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return directory_dberror(d, error_r, "look up the token");
	if (!found) {
		*why_r = "unknown token";
		return 0;
	}
	at = strrchr(account_r, '@');
	if (at == NULL || strcasecmp(at + 1, domain) != 0) {
		*why_r = "token of another domain";
		return 0;
	}
	if (used != 0) {
		*why_r = "token already used";
		return 0;
	}
	if (expires <= now) {
		*why_r = "token expired";
		return 0;
	}
	/* Single use: whoever marks it first wins. */
	n = directory_exec(d, error_r, "use the token",
			   "UPDATE hijack_tokens SET used = ?"
			   " WHERE hash = ? AND used = 0",
			   "it", now, hash);
	if (n < 0)
		return -1;
	if (n == 0) {
		*why_r = "token already used";
		return 0;
	}
	*why_r = "ok";
	return 1;
}

/* --- content filter rules --- */

static int directory_filter_bump(struct directory *d, const char **error_r)
{
	return directory_exec(d, error_r, "count the filter change",
			      "UPDATE filter_state SET version = version + 1",
			      "") < 0
		       ? -1
		       : 1;
}

static int directory_filter_none(struct directory *d, const char **error_r,
				 const char *name)
{
	char q[240];

	return directory_none(d, error_r, "no filter rule is named \"%s\"",
			      directory_quote(q, sizeof(q), name));
}

int directory_filter_version(struct directory *d, int64_t *version_r,
			     const char **error_r)
{
	int r = directory_query_int(d, error_r, version_r,
				    "SELECT version FROM filter_state", "");

	if (r == 0)
		*version_r = 0;
	return r < 0 ? -1 : 1;
}

int directory_filter_list(struct directory *d,
			  void (*cb)(const char *name, int enabled,
				     const char *text, void *ctx),
			  void *ctx, const char **error_r)
{
	sqlite3_stmt *st;
	int rc;

	st = directory_stmt(d, error_r,
			    "SELECT name, enabled, text FROM filter_rules "
			    "ORDER BY position, id",
			    "");
	if (st == NULL)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		cb((const char *)sqlite3_column_text(st, 0),
		   sqlite3_column_int(st, 1),
		   (const char *)sqlite3_column_text(st, 2), ctx);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return directory_dberror(d, error_r, "list the filter rules");
	return 1;
}

int directory_filter_clear(struct directory *d, const char **error_r)
{
	if (directory_exec(d, error_r, "delete the filter rules",
			   "DELETE FROM filter_rules", "") < 0)
		return -1;
	return directory_filter_bump(d, error_r);
}

int directory_filter_append(struct directory *d, const char *name, int enabled,
			    const char *text, const char **error_r)
{
	int64_t pos = 0;

	if (directory_query_int(d, error_r, &pos,
				"SELECT COALESCE(MAX(position), 0) + 1 "
				"FROM filter_rules",
				"") < 0)
		return -1;
	if (directory_exec(d, error_r, "add the filter rule",
			   "INSERT INTO filter_rules (position, name, enabled,"
			   " text) VALUES (?, ?, ?, ?)",
			   "itit", pos, name, (int64_t)(enabled != 0),
			   text) < 0)
		return -1;
	return directory_filter_bump(d, error_r);
}

int directory_filter_update(struct directory *d, const char *name, int enabled,
			    const char *text, const char **error_r)
{
	int r = directory_exec(d, error_r, "change the filter rule",
			       "UPDATE filter_rules SET enabled = ?, text = ?"
			       " WHERE name = ?",
			       "itt", (int64_t)(enabled != 0), text, name);

	if (r < 0)
		return -1;
	if (r == 0)
		return directory_filter_none(d, error_r, name);
	return directory_filter_bump(d, error_r);
}

int directory_filter_delete(struct directory *d, const char *name,
			    const char **error_r)
{
	int r = directory_exec(d, error_r, "delete the filter rule",
			       "DELETE FROM filter_rules WHERE name = ?", "t",
			       name);

	if (r < 0)
		return -1;
	if (r == 0)
		return directory_filter_none(d, error_r, name);
	return directory_filter_bump(d, error_r);
}

int directory_filter_position(struct directory *d, const char *name,
			      int64_t *pos_r, const char **error_r)
{
	if (directory_query_int(d, error_r, pos_r,
				"SELECT COUNT(*) FROM filter_rules r1, "
				"filter_rules r2 WHERE r2.name = ? AND "
				"(r1.position < r2.position OR "
				"(r1.position = r2.position AND r1.id <= "
				"r2.id))",
				"t", name) < 0)
		return -1;
	if (*pos_r == 0)
		return directory_filter_none(d, error_r, name);
	return 1;
}

int directory_filter_move(struct directory *d, const char *name, int64_t to,
			  const char **error_r)
{
	int64_t id, n, from;
	int r;

	r = directory_query_int(d, error_r, &id,
				"SELECT id FROM filter_rules WHERE name = ?",
				"t", name);
	if (r < 0)
		return -1;
	if (r == 0)
		return directory_filter_none(d, error_r, name);
	/* Positions 1..n in order first, so that they are dense. */
	if (directory_exec(d, error_r, "renumber the filter rules",
			   "UPDATE filter_rules SET position = (SELECT COUNT(*)"
			   " FROM filter_rules r2 WHERE r2.position <"
			   " filter_rules.position OR (r2.position ="
			   " filter_rules.position AND r2.id <="
			   " filter_rules.id))",
			   "") < 0 ||
	    directory_query_int(d, error_r, &n,
				"SELECT COUNT(*) FROM filter_rules", "") < 0 ||
	    directory_query_int(
		    d, error_r, &from,
		    "SELECT position FROM filter_rules WHERE id = ?", "i",
		    id) < 0)
		return -1;
	if (to < 1)
		to = 1;
	if (to > n)
		to = n;
	if (to < from &&
	    directory_exec(d, error_r, "move the filter rule",
			   "UPDATE filter_rules SET position = position + 1"
			   " WHERE position >= ? AND position < ?",
			   "ii", to, from) < 0)
		return -1;
	if (to > from &&
	    directory_exec(d, error_r, "move the filter rule",
			   "UPDATE filter_rules SET position = position - 1"
			   " WHERE position > ? AND position <= ?",
			   "ii", from, to) < 0)
		return -1;
	if (directory_exec(d, error_r, "move the filter rule",
			   "UPDATE filter_rules SET position = ? WHERE id = ?",
			   "ii", to, id) < 0)
		return -1;
	return directory_filter_bump(d, error_r);
}
