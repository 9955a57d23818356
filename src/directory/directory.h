/* The directory: domains, accounts, aliases, groups, settings, events. */
#ifndef PETREL_DIRECTORY_H
#define PETREL_DIRECTORY_H

#include <stddef.h>
#include <stdint.h>

#include "directory/settings.h"

/*
 * One open SQLite database (WAL mode) at <data_dir>/petrel.db. A handle is
 * used by one thread at a time: the event loop has its own, each worker
 * thread opens its own. Unless said otherwise, functions return 1 done,
 * 0 not found / no, -1 error with *error_r set (owned by the handle, valid
 * until its next call). Functions that change or delete one named thing
 * also set *error_r when they return 0 ("account a@b.example does not
 * exist"), so that a caller can print it.
 *
 * Addresses are "local@domain": one '@', a dot-atom local part of 1-64
 * characters, a domain of letters, digits, hyphens and dots (255 at most).
 * Addresses, domains and group names are compared without regard to case
 * and stored lower-case.
 */
struct directory;

#define DIRECTORY_ADDRESS_MAX 320 /* 64 local + '@' + 255 domain */

enum directory_account_state {
	DIRECTORY_ACCOUNT_ENABLED = 0,
	DIRECTORY_ACCOUNT_DISABLED = 1,
	DIRECTORY_ACCOUNT_FROZEN = 2,
};

struct directory_account {
	int64_t id;
	char address[DIRECTORY_ADDRESS_MAX + 1]; /* lower-case domain */
	enum directory_account_state state;
	char state_reason[256];
	int64_t state_time; /* epoch seconds of the last state change */
	int is_admin;
	int64_t quota_mb; /* 0: unlimited */
	int64_t created;
	int64_t last_login; /* 0: never */
};

/* Opens (creating and migrating as needed) the database file. NULL on error
 * with *error_r set to static or thread-local text. */
struct directory *directory_open(const char *path, const char **error_r);
/* Accepts NULL. */
void directory_close(struct directory *d);
/* The schema version the code expects / the database holds. */
int directory_schema_version(void);
int directory_db_version(struct directory *d);
/* The counter of administrators' changes (settings, domains, accounts'
 * states and passwords, aliases, groups, blocks): it moves
 * on every such change, and on nothing the daemon records for itself. */
int directory_change_count(struct directory *d, int64_t *count_r);
/* PRAGMA data_version: changes when another connection committed. */
int directory_data_version(struct directory *d, int64_t *version_r);

/* Transactions for multi-step admin commands (petrelctl: one per command). */
int directory_begin(struct directory *d, const char **error_r);
int directory_commit(struct directory *d, const char **error_r);
void directory_rollback(struct directory *d);

/* Domains (names are stored lower-case). */
int directory_domain_add(struct directory *d, const char *name,
			 const char **error_r);
int directory_domain_del(struct directory *d, const char *name,
			 const char **error_r);
/* 1 when `name` is one of our domains, 0 when not, -1 on error. */
int directory_domain_exists(struct directory *d, const char *name);
int directory_domain_list(struct directory *d,
			  void (*cb)(const char *name, void *ctx), void *ctx,
			  const char **error_r);

/* Accounts. `address` must be in an existing domain. */
int directory_account_add(struct directory *d, const char *address,
			  const char *password, int is_admin,
			  const char **error_r);
/* The checks of directory_account_add without the (slow) hashing, so
 * that petrelctl can refuse before it asks for a password: 1 when the
 * account could be added now, -1 with *error_r saying why not. */
int directory_account_can_add(struct directory *d, const char *address,
			      const char **error_r);
int directory_account_passwd(struct directory *d, const char *address,
			     const char *password, const char **error_r);
int directory_account_set_state(struct directory *d, const char *address,
				enum directory_account_state state,
				const char *reason, int64_t now,
				const char **error_r);
int directory_account_del(struct directory *d, const char *address,
			  const char **error_r);
/* 1 and *out filled, 0 no such account, -1 error. */
int directory_account_get(struct directory *d, const char *address,
			  struct directory_account *out, const char **error_r);
int directory_account_list(struct directory *d,
			   void (*cb)(const struct directory_account *a,
				      void *ctx),
			   void *ctx, const char **error_r);
/*
 * Checks a password (argon2id: slow on purpose, call it off the event loop).
 * Unknown accounts are checked against a dummy hash so that they take the
 * same time. Returns 1 when the account exists, is enabled and the password
 * matches (*out filled, may be NULL; *reason_r "ok"), 0 otherwise
 * (*reason_r: "unknown", "password", "disabled", "frozen"; the password is
 * checked first, so the state is told only to who knows it), -1 on error.
 */
int directory_account_verify(struct directory *d, const char *address,
			     const char *password, size_t password_len,
			     struct directory_account *out,
			     const char **reason_r, const char **error_r);
int directory_account_touch_login(struct directory *d, const char *address,
				  int64_t now, const char **error_r);

/* Aliases: alias address -> account address (both in local domains). */
int directory_alias_add(struct directory *d, const char *alias,
			const char *account, const char **error_r);
int directory_alias_del(struct directory *d, const char *alias,
			const char **error_r);
int directory_alias_list(struct directory *d,
			 void (*cb)(const char *alias, const char *account,
				    void *ctx),
			 void *ctx, const char **error_r);
/*
 * Resolves a local address (account or alias) to its account address.
 * Returns 1 with account_r filled (DIRECTORY_ADDRESS_MAX + 1 bytes), 0 when
 * there is no such local account or alias, -1 on error.
 */
int directory_resolve(struct directory *d, const char *address, char *account_r,
		      const char **error_r);

/* Groups of addresses, for the content filter's conditions. */
int directory_group_add(struct directory *d, const char *name,
			const char **error_r);
int directory_group_del(struct directory *d, const char *name,
			const char **error_r);
int directory_group_member_add(struct directory *d, const char *group,
			       const char *address, const char **error_r);
int directory_group_member_del(struct directory *d, const char *group,
			       const char *address, const char **error_r);
int directory_group_is_member(struct directory *d, const char *group,
			      const char *address);
/* Calls cb once per group with its members joined by ", " ("" if none). */
int directory_group_list(struct directory *d,
			 void (*cb)(const char *name, const char *members,
				    void *ctx),
			 void *ctx, const char **error_r);

/* Settings (validated against settings.h's table). */
int directory_setting_set(struct directory *d, const char *name,
			  const char *value, const char **error_r);
/* Writes the current text of a setting (default if never set) into
 * value_r. Returns 1, or 0 for an unknown name, -1 on error. */
int directory_setting_get(struct directory *d, const char *name, char *value_r,
			  size_t size, const char **error_r);
/* A new snapshot of every setting (refcount 1). NULL on error. */
struct settings *directory_settings_load(struct directory *d,
					 const char **error_r);

/* IPs blocked by failed-login screening (a /64 for IPv6: "2001:db8::/64"). */
struct directory_block {
	char ip[64];
	int64_t until; /* epoch seconds; in the past: only a record */
	int offenses;  /* blocks so far: each one doubles the next */
	char reason[256];
	int64_t created;
};

/* Blocks ip until `until` (insert or replace). Returns 1, or -1. */
int directory_block_put(struct directory *d, const char *ip, int64_t until,
			int offenses, const char *reason, int64_t now,
			const char **error_r);
/* Ends a running block of ip (its record stays). Returns 1, 0 when ip was
 * not blocked, -1 on error. */
int directory_block_del(struct directory *d, const char *ip, int64_t now,
			const char **error_r);
/* Calls cb for each row whose until is after `since` (latest first).
 * Returns 1 or -1. */
int directory_block_list(struct directory *d, int64_t since,
			 void (*cb)(const struct directory_block *b, void *ctx),
			 void *ctx, const char **error_r);
/* Forgets rows whose until is before `before`. Returns 1 or -1. */
int directory_block_prune(struct directory *d, int64_t before,
			  const char **error_r);

/* Security events (auth failures, screening, hijack), for the record. */
int directory_security_event_add(struct directory *d, int64_t now,
				 const char *kind, const char *account,
				 const char *ip, const char *text,
				 const char **error_r);

/*
 * Hijack detection: every message an account sent over an authenticated
 * session and every login, with times in milliseconds, so the sliding
 * windows survive a restart; and the alerts' re-activation tokens.
 */
struct directory_hijack_send {
	char account[DIRECTORY_ADDRESS_MAX + 1];
	int64_t time; /* ms */
	char ip[64];
	unsigned rcpts;
	char subject[128];
	char domains[256]; /* recipient domains, ", "-separated */
};

int directory_hijack_send_add(struct directory *d,
			      const struct directory_hijack_send *s,
			      const char **error_r);
int directory_hijack_login_add(struct directory *d, const char *account,
			       int64_t time, const char *ip,
			       const char **error_r);
/* Calls the callbacks (either may be NULL) for the sends, then the logins,
 * after `since` (ms), of one account (NULL: all), oldest first. Returns 1
 * or -1. */
int directory_hijack_load(struct directory *d, const char *account,
			  int64_t since,
			  void (*send_cb)(const struct directory_hijack_send *s,
					  void *ctx),
			  void (*login_cb)(const char *account, int64_t time,
					   const char *ip, void *ctx),
			  void *ctx, const char **error_r);
/* account: forgets its sends and logins (re-activation resets the
 * window). NULL: forgets every row before `before` (ms) and the tokens
 * expired by then. Returns 1 or -1. */
int directory_hijack_forget(struct directory *d, const char *account,
			    int64_t before, const char **error_r);
/* Stores a token's hash (hex) for account, valid until expires (seconds).
 * Returns 1 or -1. */
int directory_hijack_token_add(struct directory *d, const char *hash,
			       const char *account, int64_t now,
			       int64_t expires, const char **error_r);
/* Uses a token: 1 with the account it was made for when it is known, of
 * `domain`, unused and unexpired (it is used from now on); 0 with *why_r
 * otherwise (a token of another domain stays usable); -1 on error. */
int directory_hijack_token_take(struct directory *d, const char *hash,
				const char *domain, int64_t now,
				char *account_r, size_t size,
				const char **why_r, const char **error_r);

/*
 * Content filter rules, in order; each stored as its text in the rule
 * file format (the directory does not parse it). Names are unique without
 * regard to case. Every change counts one more in the filter version.
 */
int directory_filter_version(struct directory *d, int64_t *version_r,
			     const char **error_r);
/* Calls cb for every rule in order. Returns 1 or -1. */
int directory_filter_list(struct directory *d,
			  void (*cb)(const char *name, int enabled,
				     const char *text, void *ctx),
			  void *ctx, const char **error_r);
/* Deletes every rule (an import replaces the set). Returns 1 or -1. */
int directory_filter_clear(struct directory *d, const char **error_r);
/* Adds a rule at the end. Returns 1, or -1 (a name in use included). */
int directory_filter_append(struct directory *d, const char *name, int enabled,
			    const char *text, const char **error_r);
/* Replaces a rule's text and state; 0 when there is no such rule. */
int directory_filter_update(struct directory *d, const char *name, int enabled,
			    const char *text, const char **error_r);
int directory_filter_delete(struct directory *d, const char *name,
			    const char **error_r);
/* Moves a rule to position `to` (1 is first; clamped to the list). */
int directory_filter_move(struct directory *d, const char *name, int64_t to,
			  const char **error_r);
/* The 1-based position of a rule; 0 when there is no such rule. */
int directory_filter_position(struct directory *d, const char *name,
			      int64_t *pos_r, const char **error_r);

#endif
