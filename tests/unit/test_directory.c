/*
 * Unit tests of directory/directory: domains, accounts, password checks,
 * aliases, groups, settings, data_version and schema migrations, each on a
 * fresh database in a temporary folder. argon2id costs ~0.1 s a hash, so
 * only the account tests hash, and few times.
 *
 * The migration test writes an old database by hand, so this file, unlike
 * the rest of the tree outside src/directory/, includes <sqlite3.h>.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/stat.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "directory/directory.h"

struct fixture {
	char dir[64];
	char path[128];
	struct directory *d;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	const char *error = NULL;

	if (f == NULL)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/petrel-test-dir-XXXXXX");
	if (mkdtemp(f->dir) == NULL) {
		free(f);
		return -1;
	}
	snprintf(f->path, sizeof(f->path), "%s/petrel.db", f->dir);
	f->d = directory_open(f->path, &error);
	if (f->d == NULL) {
		print_error("directory_open: %s\n", error);
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static void fixture_remove(struct fixture *f)
{
	static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};
	char p[160];

	for (size_t i = 0; i < 4; i++) {
		snprintf(p, sizeof(p), "%s%s", f->path, suffix[i]);
		unlink(p);
	}
	rmdir(f->dir);
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	directory_close(f->d);
	fixture_remove(f);
	free(f);
	return 0;
}

/* Fails the test unless r == want; prints the directory's error. */
#define EXPECT(call, want)                                                     \
	do {                                                                   \
		const char *error_ = NULL;                                     \
		int r_ = (call);                                               \
		(void)error_;                                                  \
		if (r_ != (want))                                              \
			fail_msg("%s: got %d, want %d", #call, r_, (want));    \
	} while (0)

/* Checks a call's result and its error text (read through error_r: only
 * after the call has set it). */
static void expect_error(int got, int want, const char **error_r,
			 const char *substring, const char *what)
{
	const char *error = *error_r;

	if (got != want)
		fail_msg("%s: got %d, want %d (%s)", what, got, want,
			 error != NULL ? error : "no error");
	if (substring != NULL &&
	    (error == NULL || strstr(error, substring) == NULL))
		fail_msg("%s: error [%s] lacks [%s]", what,
			 error != NULL ? error : "(null)", substring);
}

/* --- opening --- */

static void test_open(void **state)
{
	struct fixture *f = *state;
	struct directory *d2;
	const char *error = NULL;
	char wal[160];

	assert_true(directory_schema_version() >= 2);
	assert_int_equal(directory_db_version(f->d),
			 directory_schema_version());
	/* Opening again finds the schema in place. */
	d2 = directory_open(f->path, &error);
	assert_non_null(d2);
	assert_int_equal(directory_db_version(d2), directory_schema_version());
	directory_close(d2);
	directory_close(NULL);
	/* WAL mode: a -wal file beside the database. */
	expect_error(directory_domain_add(f->d, "example.test", &error), 1,
		     &error, NULL, "domain add");
	snprintf(wal, sizeof(wal), "%s-wal", f->path);
	assert_int_equal(access(wal, F_OK), 0);
	/* A folder that does not exist: an error, not a crash. */
	assert_null(directory_open("/nonexistent/petrel/petrel.db", &error));
	assert_non_null(error);
	assert_non_null(strstr(error, "/nonexistent/petrel/petrel.db"));
}

/* --- domains --- */

struct domain_case {
	const char *name;
	const char *input;
	const char *want; /* stored name, or NULL: refused */
};

static const struct domain_case domain_cases[] = {
	{"plain", "example.test", "example.test"},
	{"upper case stored lower", "Mail.EXAMPLE.org", "mail.example.org"},
	{"single label", "localdomain", "localdomain"},
	{"digits and hyphen", "a-1.b2.test", "a-1.b2.test"},
	{"empty", "", NULL},
	{"underscore", "ex_ample.test", NULL},
	{"space", "ex ample.test", NULL},
	{"leading dot", ".example.test", NULL},
	{"trailing dot", "example.test.", NULL},
	{"two dots", "example..test", NULL},
	{"label starts with hyphen", "-example.test", NULL},
	{"label ends with hyphen", "example-.test", NULL},
	{"last label ends with hyphen", "example.test-", NULL},
	{"at sign", "a@example.test", NULL},
	{"8-bit", "\xc3\xa9xample.test", NULL},
	{"control", "example.test\n", NULL},
	{"address literal", "[192.0.2.1]", NULL},
};

static void test_domain_names(void **state)
{
	struct fixture *f = *state;
	char name[300];

	for (size_t i = 0; i < sizeof(domain_cases) / sizeof(domain_cases[0]);
	     i++) {
		const struct domain_case *c = &domain_cases[i];
		const char *error = NULL;
		int r = directory_domain_add(f->d, c->input, &error);

		if (c->want == NULL) {
			if (r != -1 || error == NULL ||
			    strstr(error, "invalid domain") == NULL)
				fail_msg("%s: got %d [%s]", c->name, r,
					 error != NULL ? error : "");
			continue;
		}
		if (r != 1)
			fail_msg("%s: refused: %s", c->name, error);
		if (directory_domain_exists(f->d, c->want) != 1)
			fail_msg("%s: %s not stored", c->name, c->want);
	}
	/* Length edges: labels of 63 and 64, names of 255 and 256. */
	memset(name, 'a', 63);
	memcpy(name + 63, ".test", 6);
	EXPECT(directory_domain_add(f->d, name, &error_), 1);
	memset(name, 'b', 64);
	memcpy(name + 64, ".test", 6);
	EXPECT(directory_domain_add(f->d, name, &error_), -1);
	/* 4 labels of 63 + 3 dots = 255 */
	for (int l = 0; l < 4; l++) {
		memset(name + l * 64, 'c', 63);
		name[l * 64 + 63] = '.';
	}
	name[255] = '\0';
	EXPECT(directory_domain_add(f->d, name, &error_), 1);
	name[255] = 'c';
	name[256] = '\0';
	EXPECT(directory_domain_add(f->d, name, &error_), -1);
}

struct domain_list_ctx {
	char names[8][64];
	int n;
};

static void domain_list_cb(const char *name, void *ctx)
{
	struct domain_list_ctx *c = ctx;

	if (c->n < 8)
		snprintf(c->names[c->n], sizeof(c->names[0]), "%s", name);
	c->n++;
}

static void test_domains(void **state)
{
	struct fixture *f = *state;
	struct domain_list_ctx list = {0};
	const char *error = NULL;

	expect_error(directory_domain_add(f->d, "b.test", &error), 1, &error,
		     NULL, "add b.test");
	expect_error(directory_domain_add(f->d, "A.test", &error), 1, &error,
		     NULL, "add A.test");
	expect_error(directory_domain_add(f->d, "B.TEST", &error), -1, &error,
		     "domain b.test already exists", "add B.TEST again");
	assert_int_equal(directory_domain_exists(f->d, "a.test"), 1);
	assert_int_equal(directory_domain_exists(f->d, "A.TEST"), 1);
	assert_int_equal(directory_domain_exists(f->d, "c.test"), 0);
	assert_int_equal(directory_domain_exists(f->d, ""), 0);
	assert_int_equal(
		directory_domain_list(f->d, domain_list_cb, &list, &error), 1);
	assert_int_equal(list.n, 2);
	assert_string_equal(list.names[0], "a.test");
	assert_string_equal(list.names[1], "b.test");
	expect_error(directory_domain_del(f->d, "c.test", &error), 0, &error,
		     "domain c.test does not exist", "del c.test");
	expect_error(directory_domain_del(f->d, "B.Test", &error), 1, &error,
		     NULL, "del B.Test");
	assert_int_equal(directory_domain_exists(f->d, "b.test"), 0);
	expect_error(directory_domain_del(f->d, "bad_name", &error), -1, &error,
		     "invalid domain", "del bad_name");
}

/* --- addresses --- */

struct address_case {
	const char *name;
	const char *input;
	const char *error; /* NULL: accepted */
};

static const struct address_case address_cases[] = {
	{"plain", "alice@example.test", NULL},
	{"upper case", "Alice@EXAMPLE.Test", NULL},
	{"dots", "first.last@example.test", NULL},
	{"atext", "a+tag_x!#$%&'*/=?^`{|}~-@example.test", NULL},
	{"no at", "alice.example.test", "exactly one '@'"},
	{"two at", "a@b@example.test", "exactly one '@'"},
	{"empty", "", "exactly one '@'"},
	{"empty local", "@example.test", "local part is empty"},
	{"space", "a b@example.test", "not allowed"},
	{"quoted", "\"a b\"@example.test", "not allowed"},
	{"comma", "a,b@example.test", "not allowed"},
	{"angle", "<a@example.test>", "not allowed"},
	{"leading dot", ".a@example.test", "starts or ends with a dot"},
	{"trailing dot", "a.@example.test", "starts or ends with a dot"},
	{"two dots", "a..b@example.test", "two dots in a row"},
	{"CRLF", "a\r\n@example.test", "not allowed"},
	{"NUL-free control", "a\x01@example.test", "not allowed"},
	{"8-bit", "\xc3\xa9@example.test", "not allowed"},
	{"empty domain", "a@", "domain is empty"},
	{"bad domain", "a@ex_ample.test", "only letters, digits"},
	{"domain two dots", "a@example..test", "empty label"},
	{"unknown domain", "a@other.test", "domain other.test does not exist"},
	{"unknown domain lower", "a@OTHER.test",
	 "domain other.test does not exist"},
};

static void test_addresses(void **state)
{
	struct fixture *f = *state;
	char addr[400];
	const char *error = NULL;

	expect_error(directory_domain_add(f->d, "example.test", &error), 1,
		     &error, NULL, "domain add");
	for (size_t i = 0; i < sizeof(address_cases) / sizeof(address_cases[0]);
	     i++) {
		const struct address_case *c = &address_cases[i];

		error = NULL;
		expect_error(directory_account_can_add(f->d, c->input, &error),
			     c->error == NULL ? 1 : -1, &error, c->error,
			     c->name);
	}
	/* Local part of 64 and 65. */
	memset(addr, 'x', 64);
	memcpy(addr + 64, "@example.test", 14);
	EXPECT(directory_account_can_add(f->d, addr, &error_), 1);
	memset(addr, 'x', 65);
	memcpy(addr + 65, "@example.test", 14);
	error = NULL;
	expect_error(directory_account_can_add(f->d, addr, &error), -1, &error,
		     "longer than 64", "local 65");
}

/* --- accounts --- */

struct account_list_ctx {
	struct directory_account a[4];
	int n;
};

static void account_list_cb(const struct directory_account *a, void *ctx)
{
	struct account_list_ctx *c = ctx;

	if (c->n < 4)
		c->a[c->n] = *a;
	c->n++;
}

static void test_accounts(void **state)
{
	struct fixture *f = *state;
	struct directory_account a;
	struct account_list_ctx list = {0};
	const char *error = NULL;

	expect_error(directory_domain_add(f->d, "example.test", &error), 1,
		     &error, NULL, "domain add");
	expect_error(directory_account_add(f->d, "Alice@Example.TEST",
					   "correct horse battery", 1, &error),
		     1, &error, NULL, "add alice");
	/* Duplicates in any case; unknown domains; bad addresses. None of
	 * these gets as far as hashing. */
	expect_error(directory_account_add(f->d, "ALICE@example.test", "x", 0,
					   &error),
		     -1, &error, "account alice@example.test already exists",
		     "add alice again");
	expect_error(
		directory_account_add(f->d, "bob@nowhere.test", "x", 0, &error),
		-1, &error, "domain nowhere.test does not exist",
		"unknown domain");
	expect_error(directory_account_add(f->d, "bob", "x", 0, &error), -1,
		     &error, "invalid address", "bad address");
	expect_error(
		directory_account_add(f->d, "bob@example.test", "", 0, &error),
		-1, &error, "empty", "empty password");

	expect_error(
		directory_account_get(f->d, "alice@EXAMPLE.test", &a, &error),
		1, &error, NULL, "get alice");
	assert_string_equal(a.address, "alice@example.test");
	assert_int_equal(a.state, DIRECTORY_ACCOUNT_ENABLED);
	assert_int_equal(a.is_admin, 1);
	assert_int_equal(a.quota_mb, 0);
	assert_true(a.created > 0);
	assert_int_equal(a.last_login, 0);
	assert_true(a.id > 0);
	expect_error(
		directory_account_get(f->d, "nobody@example.test", &a, &error),
		0, &error, "account nobody@example.test does not exist",
		"get nobody");
	expect_error(directory_account_get(f->d, "not an address", &a, &error),
		     0, &error, "invalid address", "get bad");

	/* State, with reason and time. */
	expect_error(directory_account_set_state(f->d, "alice@example.test",
						 DIRECTORY_ACCOUNT_DISABLED,
						 "left", 1000, &error),
		     1, &error, NULL, "disable");
	assert_int_equal(
		directory_account_get(f->d, "alice@example.test", &a, &error),
		1);
	assert_int_equal(a.state, DIRECTORY_ACCOUNT_DISABLED);
	assert_string_equal(a.state_reason, "left");
	assert_int_equal(a.state_time, 1000);
	expect_error(directory_account_set_state(f->d, "nobody@example.test",
						 DIRECTORY_ACCOUNT_FROZEN, "",
						 1, &error),
		     0, &error, "does not exist", "freeze nobody");
	expect_error(directory_account_set_state(f->d, "alice@example.test",
						 DIRECTORY_ACCOUNT_FROZEN,
						 "a\nb", 1, &error),
		     -1, &error, "control", "reason with newline");
	expect_error(directory_account_touch_login(f->d, "alice@example.test",
						   2000, &error),
		     1, &error, NULL, "touch");
	assert_int_equal(
		directory_account_get(f->d, "alice@example.test", &a, &error),
		1);
	assert_int_equal(a.last_login, 2000);
	expect_error(directory_account_touch_login(f->d, "x@example.test", 2000,
						   &error),
		     0, &error, "does not exist", "touch nobody");
	expect_error(directory_account_passwd(f->d, "x@example.test",
					      "whatever", &error),
		     0, &error, "does not exist", "passwd nobody");

	assert_int_equal(
		directory_account_list(f->d, account_list_cb, &list, &error),
		1);
	assert_int_equal(list.n, 1);
	assert_string_equal(list.a[0].address, "alice@example.test");

	/* A domain with accounts stays. */
	expect_error(directory_domain_del(f->d, "example.test", &error), -1,
		     &error, "still has 1 account(s)", "del busy domain");
	assert_int_equal(directory_domain_exists(f->d, "example.test"), 1);
	expect_error(directory_account_del(f->d, "Alice@example.test", &error),
		     1, &error, NULL, "del alice");
	expect_error(directory_account_del(f->d, "alice@example.test", &error),
		     0, &error, "does not exist", "del alice again");
	expect_error(directory_domain_del(f->d, "example.test", &error), 1,
		     &error, NULL, "del empty domain");
}

static void test_verify(void **state)
{
	struct fixture *f = *state;
	static const char pw[] = "correct horse battery";
	struct directory_account a;
	const char *error = NULL, *reason = NULL;

	expect_error(directory_domain_add(f->d, "example.test", &error), 1,
		     &error, NULL, "domain add");
	expect_error(directory_account_add(f->d, "carol@example.test", pw, 0,
					   &error),
		     1, &error, NULL, "add carol");

	memset(&a, 0, sizeof(a));
	assert_int_equal(directory_account_verify(f->d, "Carol@Example.test",
						  pw, strlen(pw), &a, &reason,
						  &error),
			 1);
	assert_string_equal(a.address, "carol@example.test");
	assert_int_equal(directory_account_verify(f->d, "carol@example.test",
						  "wrong", 5, &a, &reason,
						  &error),
			 0);
	assert_string_equal(reason, "password");
	/* The length counts: a prefix of the right password is wrong. */
	assert_int_equal(directory_account_verify(f->d, "carol@example.test",
						  pw, strlen(pw) - 1, NULL,
						  &reason, &error),
			 0);
	assert_string_equal(reason, "password");
	assert_int_equal(directory_account_verify(f->d, "dave@example.test", pw,
						  strlen(pw), &a, &reason,
						  &error),
			 0);
	assert_string_equal(reason, "unknown");
	assert_int_equal(directory_account_verify(f->d, "no address", pw,
						  strlen(pw), &a, &reason,
						  &error),
			 0);
	assert_string_equal(reason, "unknown");

	assert_int_equal(directory_account_set_state(f->d, "carol@example.test",
						     DIRECTORY_ACCOUNT_DISABLED,
						     "", 1, &error),
			 1);
	assert_int_equal(directory_account_verify(f->d, "carol@example.test",
						  pw, strlen(pw), &a, &reason,
						  &error),
			 0);
	assert_string_equal(reason, "disabled");
	assert_int_equal(directory_account_set_state(f->d, "carol@example.test",
						     DIRECTORY_ACCOUNT_FROZEN,
						     "hijack", 2, &error),
			 1);
	assert_int_equal(directory_account_verify(f->d, "carol@example.test",
						  pw, strlen(pw), &a, &reason,
						  &error),
			 0);
	assert_string_equal(reason, "frozen");

	/* Enabled again, with a new password: the old one no longer works. */
	assert_int_equal(directory_account_set_state(f->d, "carol@example.test",
						     DIRECTORY_ACCOUNT_ENABLED,
						     NULL, 3, &error),
			 1);
	expect_error(directory_account_passwd(f->d, "carol@example.test",
					      "another long secret", &error),
		     1, &error, NULL, "passwd");
	assert_int_equal(directory_account_verify(f->d, "carol@example.test",
						  pw, strlen(pw), &a, &reason,
						  &error),
			 0);
	assert_int_equal(directory_account_verify(f->d, "carol@example.test",
						  "another long secret", 19, &a,
						  &reason, &error),
			 1);
}

/* --- aliases --- */

struct alias_list_ctx {
	char text[512];
};

static void alias_list_cb(const char *alias, const char *account, void *ctx)
{
	struct alias_list_ctx *c = ctx;
	size_t n = strlen(c->text);

	snprintf(c->text + n, sizeof(c->text) - n, "%s>%s;", alias, account);
}

static void test_aliases(void **state)
{
	struct fixture *f = *state;
	struct alias_list_ctx list = {""};
	char account[DIRECTORY_ADDRESS_MAX + 1];
	const char *error = NULL;

	expect_error(directory_domain_add(f->d, "example.test", &error), 1,
		     &error, NULL, "domain add");
	expect_error(directory_domain_add(f->d, "other.test", &error), 1,
		     &error, NULL, "domain add");
	expect_error(directory_account_add(f->d, "alice@example.test",
					   "correct horse battery", 0, &error),
		     1, &error, NULL, "add alice");

	expect_error(directory_alias_add(f->d, "Postmaster@Example.test",
					 "ALICE@example.test", &error),
		     1, &error, NULL, "alias add");
	expect_error(directory_alias_add(f->d, "abuse@other.test",
					 "alice@example.test", &error),
		     1, &error, NULL, "alias in another local domain");
	expect_error(directory_alias_add(f->d, "postmaster@example.test",
					 "alice@example.test", &error),
		     -1, &error, "alias postmaster@example.test already exists",
		     "dup alias");
	expect_error(directory_alias_add(f->d, "x@remote.test",
					 "alice@example.test", &error),
		     -1, &error, "domain remote.test does not exist",
		     "alias in unknown domain");
	expect_error(directory_alias_add(f->d, "x@example.test",
					 "bob@example.test", &error),
		     -1, &error, "account bob@example.test does not exist",
		     "alias to nobody");
	expect_error(directory_alias_add(f->d, "alice@example.test",
					 "alice@example.test", &error),
		     -1, &error, "is an account", "alias over an account");
	expect_error(directory_alias_add(f->d, "x y@example.test",
					 "alice@example.test", &error),
		     -1, &error, "invalid address", "bad alias");
	/* An alias's address cannot become an account. */
	expect_error(directory_account_can_add(f->d, "postmaster@example.test",
					       &error),
		     -1, &error, "already an alias of alice@example.test",
		     "account over an alias");

	/* Resolution: account, alias, in any case; others are nobody. */
	assert_int_equal(
		directory_resolve(f->d, "ALICE@example.test", account, &error),
		1);
	assert_string_equal(account, "alice@example.test");
	assert_int_equal(directory_resolve(f->d, "POSTMASTER@EXAMPLE.TEST",
					   account, &error),
			 1);
	assert_string_equal(account, "alice@example.test");
	assert_int_equal(
		directory_resolve(f->d, "abuse@other.test", account, &error),
		1);
	assert_int_equal(
		directory_resolve(f->d, "bob@example.test", account, &error),
		0);
	assert_int_equal(
		directory_resolve(f->d, "\"x\"@example.test", account, &error),
		0);

	assert_int_equal(
		directory_alias_list(f->d, alias_list_cb, &list, &error), 1);
	assert_string_equal(list.text,
			    "abuse@other.test>alice@example.test;"
			    "postmaster@example.test>alice@example.test;");

	expect_error(directory_alias_del(f->d, "ABUSE@other.test", &error), 1,
		     &error, NULL, "alias del");
	expect_error(directory_alias_del(f->d, "abuse@other.test", &error), 0,
		     &error, "alias abuse@other.test does not exist",
		     "alias del again");
	/* An alias holds its domain... */
	expect_error(directory_domain_del(f->d, "example.test", &error), -1,
		     &error, "1 alias(es)", "del domain with alias");
	/* ...and goes with its account. */
	expect_error(directory_account_del(f->d, "alice@example.test", &error),
		     1, &error, NULL, "del alice");
	assert_int_equal(directory_resolve(f->d, "postmaster@example.test",
					   account, &error),
			 0);
	list.text[0] = '\0';
	assert_int_equal(
		directory_alias_list(f->d, alias_list_cb, &list, &error), 1);
	assert_string_equal(list.text, "");
}

/* --- groups --- */

static void group_list_cb(const char *name, const char *members, void *ctx)
{
	struct alias_list_ctx *c = ctx;
	size_t n = strlen(c->text);

	snprintf(c->text + n, sizeof(c->text) - n, "%s=[%s];", name, members);
}

static void test_groups(void **state)
{
	struct fixture *f = *state;
	struct alias_list_ctx list = {""};
	const char *error = NULL;

	expect_error(directory_group_add(f->d, "Sales", &error), 1, &error,
		     NULL, "add sales");
	expect_error(directory_group_add(f->d, "sales", &error), -1, &error,
		     "group sales already exists", "add sales again");
	expect_error(directory_group_add(f->d, "no spaces", &error), -1, &error,
		     "invalid group name", "bad name");
	expect_error(directory_group_add(f->d, "", &error), -1, &error,
		     "invalid group name", "empty name");
	expect_error(directory_group_add(f->d, "empty", &error), 1, &error,
		     NULL, "add empty");

	expect_error(
		directory_group_member_add(f->d, "SALES", "Bob@X.test", &error),
		1, &error, NULL, "member add");
	expect_error(
		directory_group_member_add(f->d, "sales", "amy@x.test", &error),
		1, &error, NULL, "member add amy");
	expect_error(
		directory_group_member_add(f->d, "sales", "bob@x.TEST", &error),
		-1, &error, "already a member", "member add again");
	expect_error(directory_group_member_add(f->d, "nogroup", "bob@x.test",
						&error),
		     -1, &error, "group nogroup does not exist",
		     "member of nothing");
	expect_error(directory_group_member_add(f->d, "sales", "bob", &error),
		     -1, &error, "invalid address", "bad member");

	assert_int_equal(directory_group_is_member(f->d, "Sales", "BOB@x.test"),
			 1);
	assert_int_equal(directory_group_is_member(f->d, "sales", "eve@x.test"),
			 0);
	assert_int_equal(directory_group_is_member(f->d, "empty", "bob@x.test"),
			 0);
	assert_int_equal(directory_group_is_member(f->d, "none", "bob@x.test"),
			 0);

	assert_int_equal(
		directory_group_list(f->d, group_list_cb, &list, &error), 1);
	assert_string_equal(list.text,
			    "empty=[];sales=[amy@x.test, bob@x.test];");

	expect_error(
		directory_group_member_del(f->d, "sales", "bob@x.test", &error),
		1, &error, NULL, "member del");
	expect_error(
		directory_group_member_del(f->d, "sales", "bob@x.test", &error),
		0, &error, "bob@x.test is not a member of group sales",
		"member del again");
	expect_error(
		directory_group_member_del(f->d, "none", "bob@x.test", &error),
		0, &error, "group none does not exist", "member del none");
	expect_error(directory_group_del(f->d, "SALES", &error), 1, &error,
		     NULL, "group del");
	expect_error(directory_group_del(f->d, "sales", &error), 0, &error,
		     "group sales does not exist", "group del again");
	assert_int_equal(directory_group_is_member(f->d, "sales", "amy@x.test"),
			 0);
	list.text[0] = '\0';
	assert_int_equal(
		directory_group_list(f->d, group_list_cb, &list, &error), 1);
	assert_string_equal(list.text, "empty=[];");
}

/* --- settings --- */

struct setting_case {
	const char *name;
	const char *setting;
	const char *value;
	int want;	    /* directory_setting_set's result */
	const char *expect; /* stored text, or the error's part */
};

static const struct setting_case setting_cases[] = {
	{"bool", "hijack.enabled", "no", 1, "off"},
	{"int", "hijack.minutes", "60", 1, "60"},
	{"int too small", "hijack.minutes", "0", -1, "1 to 10080"},
	{"int too big", "hijack.max_messages", "1000001", -1, "1 to 1000000"},
	{"int not a number", "hijack.minutes", "lots", -1, "whole number"},
	{"enum", "hijack.action", "Throttle", 1, "throttle"},
	{"enum other", "hijack.action", "bounce", -1, "freeze|throttle"},
	{"list", "trusted.hosts", "10.0.0.0/8 ,host.example", 1,
	 "10.0.0.0/8, host.example"},
	{"control", "trusted.hosts", "a\nb", -1, "control characters"},
	{"unknown", "no.such", "1", -1, "unknown setting 'no.such'"},
	{"unknown case", "Hijack.Enabled", "on", -1, "unknown setting"},
};

static void test_settings(void **state)
{
	struct fixture *f = *state;
	struct settings *s;
	char value[256];
	const char *error = NULL;

	for (size_t i = 0; i < sizeof(setting_cases) / sizeof(setting_cases[0]);
	     i++) {
		const struct setting_case *c = &setting_cases[i];
		int r;

		error = NULL;
		r = directory_setting_set(f->d, c->setting, c->value, &error);
		if (c->want < 0) {
			expect_error(r, -1, &error, c->expect, c->name);
			continue;
		}
		expect_error(r, 1, &error, NULL, c->name);
		assert_int_equal(directory_setting_get(f->d, c->setting, value,
						       sizeof(value), &error),
				 1);
		if (strcmp(value, c->expect) != 0)
			fail_msg("%s: stored [%s], want [%s]", c->name, value,
				 c->expect);
	}
	/* Refused values left the stored ones alone. */
	assert_int_equal(directory_setting_get(f->d, "hijack.minutes", value,
					       sizeof(value), &error),
			 1);
	assert_string_equal(value, "60");
	/* Never set: the default. Unknown: 0. Too small a buffer: -1. */
	assert_int_equal(directory_setting_get(f->d, "smtp.max_line", value,
					       sizeof(value), &error),
			 1);
	assert_string_equal(value, "1000");
	assert_int_equal(directory_setting_get(f->d, "no.such", value,
					       sizeof(value), &error),
			 0);
	assert_int_equal(
		directory_setting_get(f->d, "trusted.hosts", value, 4, &error),
		-1);
	/* Set again: replaced, not added. */
	assert_int_equal(
		directory_setting_set(f->d, "hijack.minutes", "90", &error), 1);

	s = directory_settings_load(f->d, &error);
	assert_non_null(s);
	assert_int_equal(settings_int(s, SETTING_HIJACK_MINUTES), 90);
	assert_false(settings_bool(s, SETTING_HIJACK_ENABLED));
	assert_string_equal(settings_str(s, SETTING_HIJACK_ACTION), "throttle");
	assert_string_equal(settings_str(s, SETTING_TRUSTED_HOSTS),
			    "10.0.0.0/8, host.example");
	assert_int_equal(settings_int(s, SETTING_SMTP_MAX_LINE), 1000);
	assert_true(settings_bool(s, SETTING_AUTH_MATCH_FROM_HEADER));
	settings_unref(s);
}

/* --- transactions and data_version --- */

static void test_transactions(void **state)
{
	struct fixture *f = *state;
	const char *error = NULL;

	assert_int_equal(directory_begin(f->d, &error), 1);
	assert_int_equal(directory_domain_add(f->d, "gone.test", &error), 1);
	assert_int_equal(directory_group_add(f->d, "gone", &error), 1);
	directory_rollback(f->d);
	assert_int_equal(directory_domain_exists(f->d, "gone.test"), 0);
	assert_int_equal(directory_group_is_member(f->d, "gone", "a@b.test"),
			 0);
	assert_int_equal(directory_group_del(f->d, "gone", &error), 0);

	assert_int_equal(directory_begin(f->d, &error), 1);
	assert_int_equal(directory_domain_add(f->d, "kept.test", &error), 1);
	assert_int_equal(directory_commit(f->d, &error), 1);
	assert_int_equal(directory_domain_exists(f->d, "kept.test"), 1);
	/* A rollback outside a transaction is harmless. */
	directory_rollback(f->d);
	assert_int_equal(directory_domain_exists(f->d, "kept.test"), 1);
}

static void test_data_version(void **state)
{
	struct fixture *f = *state;
	struct directory *other;
	int64_t v1 = -1, v2 = -1, v3 = -1;
	const char *error = NULL;

	other = directory_open(f->path, &error);
	assert_non_null(other);
	assert_int_equal(directory_data_version(f->d, &v1), 1);
	/* Unchanged while nobody else writes. */
	assert_int_equal(directory_data_version(f->d, &v2), 1);
	assert_true(v1 == v2);
	/* Another connection commits: the version moves. */
	assert_int_equal(
		directory_setting_set(other, "hijack.minutes", "15", &error),
		1);
	assert_int_equal(directory_data_version(f->d, &v3), 1);
	assert_true(v3 != v2);
	directory_close(other);
}

/* --- migrations --- */

/* The schema as version 1 shipped it, written without the directory. */
static const char v1_schema[] =
	"PRAGMA journal_mode = WAL;"
	"CREATE TABLE schema_version (version INTEGER PRIMARY KEY,"
	"  applied INTEGER NOT NULL);"
	"CREATE TABLE domains (id INTEGER PRIMARY KEY,"
	"  name TEXT NOT NULL UNIQUE, created INTEGER NOT NULL);"
	"CREATE TABLE accounts (id INTEGER PRIMARY KEY,"
	"  address TEXT NOT NULL UNIQUE,"
	"  domain_id INTEGER NOT NULL REFERENCES domains(id)"
	"    ON DELETE RESTRICT,"
	"  password TEXT NOT NULL,"
	"  state INTEGER NOT NULL DEFAULT 0 CHECK (state IN (0, 1, 2)),"
	"  state_reason TEXT NOT NULL DEFAULT '',"
	"  state_time INTEGER NOT NULL DEFAULT 0,"
	"  is_admin INTEGER NOT NULL DEFAULT 0,"
	"  quota_mb INTEGER NOT NULL DEFAULT 0,"
	"  created INTEGER NOT NULL,"
	"  last_login INTEGER NOT NULL DEFAULT 0);"
	"CREATE TABLE aliases (id INTEGER PRIMARY KEY,"
	"  address TEXT NOT NULL UNIQUE,"
	"  domain_id INTEGER NOT NULL REFERENCES domains(id)"
	"    ON DELETE RESTRICT,"
	"  account_id INTEGER NOT NULL REFERENCES accounts(id)"
	"    ON DELETE CASCADE);"
	"CREATE TABLE groups (id INTEGER PRIMARY KEY,"
	"  name TEXT NOT NULL UNIQUE);"
	"CREATE TABLE group_members ("
	"  group_id INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,"
	"  address TEXT NOT NULL, PRIMARY KEY (group_id, address));"
	"CREATE TABLE settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);"
	"CREATE TABLE security_events (id INTEGER PRIMARY KEY,"
	"  time INTEGER NOT NULL, kind TEXT NOT NULL, account TEXT, ip TEXT,"
	"  text TEXT NOT NULL);"
	"INSERT INTO schema_version VALUES (1, 1700000000);"
	"INSERT INTO domains VALUES (1, 'old.test', 1700000000);"
	"INSERT INTO accounts (id, address, domain_id, password, state,"
	"  state_reason, state_time, is_admin, quota_mb, created)"
	"  VALUES (1, 'ann@old.test', 1, '$argon2id$not-a-real-hash', 1,"
	"  'on leave', 1700000100, 1, 250, 1700000000);"
	"INSERT INTO aliases VALUES (1, 'info@old.test', 1, 1);"
	"INSERT INTO groups VALUES (1, 'staff');"
	"INSERT INTO group_members VALUES (1, 'ann@old.test');"
	"INSERT INTO settings VALUES ('hijack.minutes', '45');";

/* Runs SQL on a database file with plain SQLite. */
static void raw_exec(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	char *err = NULL;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
		fail_msg("raw sql: %s", err);
	sqlite3_close(db);
}

static int raw_count(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int n = -1;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

static void test_migrate_v1(void **state)
{
	struct fixture *f = *state;
	struct directory_account a;
	char account[DIRECTORY_ADDRESS_MAX + 1], value[64];
	const char *error = NULL;
	struct directory *d;

	/* Swap the fixture's database for a version 1 one. */
	directory_close(f->d);
	f->d = NULL;
	fixture_remove(f);
	assert_int_equal(mkdir(f->dir, 0700), 0);
	raw_exec(f->path, v1_schema);
	assert_int_equal(raw_count(f->path, "SELECT MAX(version) FROM "
					    "schema_version"),
			 1);

	f->d = directory_open(f->path, &error);
	if (f->d == NULL)
		fail_msg("open v1: %s", error);
	assert_int_equal(directory_db_version(f->d),
			 directory_schema_version());
	/* One row per version, each applied once. */
	assert_int_equal(raw_count(f->path, "SELECT COUNT(*) FROM "
					    "schema_version"),
			 directory_schema_version());
	/* Version 2's indexes are there. */
	assert_int_equal(raw_count(f->path,
				   "SELECT COUNT(*) FROM sqlite_master WHERE "
				   "type = 'index' AND name IN "
				   "('accounts_domain', 'aliases_domain', "
				   "'aliases_account', 'security_events_time', "
				   "'security_events_account')"),
			 5);
	/* The data came through. */
	assert_int_equal(
		directory_account_get(f->d, "ann@old.test", &a, &error), 1);
	assert_int_equal(a.state, DIRECTORY_ACCOUNT_DISABLED);
	assert_string_equal(a.state_reason, "on leave");
	assert_int_equal(a.quota_mb, 250);
	assert_int_equal(a.is_admin, 1);
	assert_int_equal(
		directory_resolve(f->d, "info@old.test", account, &error), 1);
	assert_string_equal(account, "ann@old.test");
	assert_int_equal(
		directory_group_is_member(f->d, "staff", "ann@old.test"), 1);
	assert_int_equal(directory_setting_get(f->d, "hijack.minutes", value,
					       sizeof(value), &error),
			 1);
	assert_string_equal(value, "45");
	assert_int_equal(
		directory_security_event_add(f->d, 1700000200, "auth-failure",
					     "ann@old.test", "192.0.2.1",
					     "password", &error),
		1);
	/* Opening again migrates nothing more. */
	d = directory_open(f->path, &error);
	assert_non_null(d);
	directory_close(d);
	assert_int_equal(raw_count(f->path, "SELECT COUNT(*) FROM "
					    "schema_version"),
			 directory_schema_version());
}

static void test_newer_schema_refused(void **state)
{
	struct fixture *f = *state;
	const char *error = NULL;
	char sql[128];

	snprintf(sql, sizeof(sql),
		 "INSERT INTO schema_version VALUES (%d, 1700000000)",
		 directory_schema_version() + 1);
	raw_exec(f->path, sql);
	assert_null(directory_open(f->path, &error));
	assert_non_null(error);
	assert_non_null(strstr(error, "newer than this program"));
}

static void test_security_events(void **state)
{
	struct fixture *f = *state;
	const char *error = NULL;

	assert_int_equal(
		directory_security_event_add(f->d, 100, "hijack", "a@b.test",
					     NULL, "frozen after 500", &error),
		1);
	assert_int_equal(directory_security_event_add(f->d, 101, "screening",
						      NULL, "192.0.2.7", NULL,
						      &error),
			 1);
	assert_int_equal(raw_count(f->path, "SELECT COUNT(*) FROM "
					    "security_events"),
			 2);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_open),
		T(test_domain_names),
		T(test_domains),
		T(test_addresses),
		T(test_accounts),
		T(test_verify),
		T(test_aliases),
		T(test_groups),
		T(test_settings),
		T(test_transactions),
		T(test_data_version),
		T(test_migrate_v1),
		T(test_newer_schema_refused),
		T(test_security_events),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
