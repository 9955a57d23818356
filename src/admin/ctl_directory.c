/*
 * ctl_directory: petrelctl's directory nouns (domain, account, alias,
 * group, set, get, settings). Each command runs in one directory
 * transaction, so a failure leaves nothing half-written. Passwords come
 * from stdin only, are checked for weakness here (--force overrides) and
 * are wiped as soon as they are hashed.
 */
#include "admin/ctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>
#include <sodium.h>

#include "directory/directory.h"
#include "filter/filter_store.h"
#include "lib/buf.h"

#define CTL_PASSWORD_MAX 1024
#define CTL_PASSWORD_MIN_CHARS 10

/* Opens the directory and starts the command's transaction; NULL after
 * printing an error. */
static struct directory *ctl_begin(struct ctl *ctl)
{
	struct directory *d = ctl_directory(ctl);
	const char *error;

	if (d == NULL)
		return NULL;
	if (directory_begin(d, &error) < 0) {
		ctl_fail("%s", error);
		return NULL;
	}
	return d;
}

/* Ends the transaction: commits when r > 0, else rolls back and prints
 * *error_r (read only now, after the call that set it). Returns the exit
 * status. */
static int ctl_end(struct directory *d, int r, const char **error_r)
{
	if (r > 0 && directory_commit(d, error_r) > 0)
		return 0;
	directory_rollback(d);
	return ctl_fail("%s", *error_r != NULL ? *error_r : "failed");
}

/* Joins argv with single spaces into b. Returns 0, or -1 if too long. */
static int ctl_join(struct buf *b, int argc, char **argv)
{
	for (int i = 0; i < argc; i++)
		if ((i > 0 && buf_append_str(b, " ") < 0) ||
		    buf_append_str(b, argv[i]) < 0)
			return -1;
	return 0;
}

/* --- domain --- */

#define CTL_DOMAIN_USAGE "petrelctl domain add NAME | del NAME | list"

static int ctl_domain_add(struct ctl *ctl, int argc, char **argv)
{
	struct directory *d = ctl_begin(ctl);
	const char *error = NULL;
	int rc;

	if (d == NULL)
		return 1;
	rc = ctl_end(d, directory_domain_add(d, argv[0], &error), &error);
	if (rc == 0 && !ctl->json)
		printf("domain %s added\n", argv[0]);
	return rc;
}

static int ctl_domain_del(struct ctl *ctl, int argc, char **argv)
{
	struct directory *d = ctl_begin(ctl);
	const char *error = NULL;
	int rc;

	if (d == NULL)
		return 1;
	rc = ctl_end(d, directory_domain_del(d, argv[0], &error), &error);
	if (rc == 0 && !ctl->json)
		printf("domain %s deleted\n", argv[0]);
	return rc;
}

static void ctl_domain_cb(const char *name, void *ctx)
{
	json_t *list = ctx;

	if (list == NULL)
		printf("%s\n", name);
	else
		json_array_append_new(list, json_pack("{s:s}", "name", name));
}

static int ctl_domain_list(struct ctl *ctl, int argc, char **argv)
{
	struct directory *d = ctl_begin(ctl);
	json_t *list = ctl->json ? json_array() : NULL;
	const char *error = NULL;
	int rc;

	if (d == NULL) {
		json_decref(list);
		return 1;
	}
	rc = ctl_end(d, directory_domain_list(d, ctl_domain_cb, list, &error),
		     &error);
	if (rc != 0 || list == NULL) {
		json_decref(list);
		return rc;
	}
	return ctl_json_print(list);
}

int ctl_domain(struct ctl *ctl, int argc, char **argv)
{
	static const struct ctl_verb verbs[] = {
		{"add", 1, 1, ctl_domain_add},
		{"del", 1, 1, ctl_domain_del},
		{"list", 0, 0, ctl_domain_list},
	};

	return ctl_dispatch(ctl, verbs, sizeof(verbs) / sizeof(verbs[0]),
			    CTL_DOMAIN_USAGE, argc, argv);
}

/* --- account --- */

#define CTL_ACCOUNT_USAGE                                                      \
	"petrelctl account add ADDR [--admin] | passwd ADDR | enable ADDR | "  \
	"disable ADDR [REASON] | del ADDR | list | show ADDR"

/*
 * Passwords that the first guesses of any attacker try: leaked-list
 * favourites of 10 characters or more (shorter ones are refused anyway).
 * Compared without regard to case.
 */
static const char *const ctl_common_passwords[] = {
	"password123",	"password1234",	 "password12345", "password2023",
	"password2024", "password2025",	 "passw0rd123",	  "p@ssw0rd123",
	"p@ssword123",	"qwertyuiop",	 "qwertyuiop1",	  "qwertyuiop123",
	"qwerty1234",	"qwerty12345",	 "qwerty123456",  "1234567890",
	"12345678910",	"123456789a",	 "1234567890a",	  "123456789012",
	"1234512345",	"1122334455",	 "1111111111",	  "0000000000",
	"9876543210",	"0987654321",	 "0123456789",	  "1q2w3e4r5t",
	"1q2w3e4r5t6y", "1qaz2wsx3edc",	 "zaq12wsxcde3",  "zaq1xsw2cde3",
	"q1w2e3r4t5",	"a1b2c3d4e5",	 "abcdefghij",	  "abc1234567",
	"abcd123456",	"a123456789",	 "asdfghjkl1",	  "asdfghjkl123",
	"zxcvbnm123",	"zxcvbnm1234",	 "iloveyou12",	  "iloveyou123",
	"iloveyou1234", "letmein123",	 "letmein1234",	  "welcome123",
	"welcome1234",	"welcome2024",	 "welcome2025",	  "changeme123",
	"changeme1234", "administrator", "admin12345",	  "admin123456",
	"adminadmin",	"rootroot12",	 "football123",	  "baseball123",
	"basketball",	"basketball1",	 "sunshine123",	  "princess123",
	"starwars123",	"trustno1234",	 "superman123",	  "batman1234",
	"dragon1234",	"dragon12345",	 "monkey12345",	  "master1234",
	"master12345",	"shadow1234",	 "michael123",	  "jennifer123",
	"jessica123",	"computer123",	 "internet123",	  "whatever123",
	"summer2023",	"summer2024",	 "summer2025",	  "winter2023",
	"winter2024",	"spring2024",	 "autumn2024",	  "christmas1",
	"christmas123", "chocolate1",	 "butterfly1",	  "1234qwerasdf",
	"qwer1234asdf", "qazwsxedcrfv",	 "1qazxsw23edc",  "passwordpassword",
	"mypassword",	"mypassword1",	 "secret1234",	  "secret12345",
	"default123",	"login12345",	 "test123456",	  "testtest12",
	"guest12345",	"mailserver",	 "postmaster",	  "helloworld",
	"hello12345",	"loveyou123",	 "11111111111",	  "123123123123",
	"1231231234",	"987654321a",
};

/* Characters, not bytes: UTF-8 continuation bytes are not counted. */
static size_t ctl_utf8_chars(const char *s)
{
	size_t n = 0;

	for (; *s != '\0'; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			n++;
	return n;
}

/* Why a password is too weak for the account, or NULL when it is not. */
static const char *ctl_password_weakness(const char *password,
					 const char *address)
{
	const char *at = strchr(address, '@');
	size_t local = at != NULL ? (size_t)(at - address) : strlen(address);

	if (ctl_utf8_chars(password) < CTL_PASSWORD_MIN_CHARS)
		return "it is shorter than 10 characters";
	if ((strlen(password) == local &&
	     strncasecmp(password, address, local) == 0) ||
	    strcasecmp(password, address) == 0)
		return "it is the account's own name";
	for (size_t i = 0;
	     i < sizeof(ctl_common_passwords) / sizeof(ctl_common_passwords[0]);
	     i++)
		if (strcasecmp(password, ctl_common_passwords[i]) == 0)
			return "it is one of the most common passwords";
	return NULL;
}

/* Reads a password from stdin and checks its strength. Returns 0, or 1
 * after printing an error (out wiped). */
static int ctl_new_password(struct ctl *ctl, const char *address, char *out,
			    size_t size)
{
	const char *weak;

	if (ctl_read_password(out, size) < 0)
		return 1;
	weak = ctl_password_weakness(out, address);
	if (weak != NULL && !ctl->force) {
		sodium_memzero(out, size);
		return ctl_fail("weak password: %s (--force accepts it)", weak);
	}
	return 0;
}

static int ctl_account_add(struct ctl *ctl, int argc, char **argv)
{
	char password[CTL_PASSWORD_MAX];
	const char *address = NULL, *error = NULL;
	struct directory *d;
	int is_admin = 0, r, rc;

	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--admin") == 0)
			is_admin = 1;
		else if (address == NULL)
			address = argv[i];
		else
			return ctl_usage("petrelctl account add ADDR [--admin] "
					 "(the password is read from stdin, "
					 "never from the command line)");
	}
	if (address == NULL)
		return ctl_usage("petrelctl account add ADDR [--admin]");
	d = ctl_directory(ctl);
	if (d == NULL)
		return 1;
	/* Refuse a bad address before asking for a password. */
	if (directory_account_can_add(d, address, &error) < 0)
		return ctl_fail("%s", error);
	if (ctl_new_password(ctl, address, password, sizeof(password)) != 0)
		return 1;
	if (ctl_begin(ctl) == NULL) {
		sodium_memzero(password, sizeof(password));
		return 1;
	}
	r = directory_account_add(d, address, password, is_admin, &error);
	sodium_memzero(password, sizeof(password));
	rc = ctl_end(d, r, &error);
	if (rc == 0 && !ctl->json)
		printf("account %s added\n", address);
	return rc;
}

static int ctl_account_passwd(struct ctl *ctl, int argc, char **argv)
{
	char password[CTL_PASSWORD_MAX];
	struct directory_account a;
	struct directory *d = ctl_directory(ctl);
	const char *error = NULL;
	int r, rc;

	if (d == NULL)
		return 1;
	r = directory_account_get(d, argv[0], &a, &error);
	if (r <= 0)
		return ctl_fail("%s", error);
	if (ctl_new_password(ctl, a.address, password, sizeof(password)) != 0)
		return 1;
	if (ctl_begin(ctl) == NULL) {
		sodium_memzero(password, sizeof(password));
		return 1;
	}
	r = directory_account_passwd(d, a.address, password, &error);
	sodium_memzero(password, sizeof(password));
	rc = ctl_end(d, r, &error);
	if (rc == 0 && !ctl->json)
		printf("password of %s changed\n", a.address);
	return rc;
}

static int ctl_account_state(struct ctl *ctl, const char *address,
			     enum directory_account_state state,
			     const char *reason, const char *done)
{
	struct directory *d = ctl_begin(ctl);
	const char *error = NULL;
	int rc;

	if (d == NULL)
		return 1;
	rc = ctl_end(d,
		     directory_account_set_state(d, address, state, reason,
						 (int64_t)time(NULL), &error),
		     &error);
	if (rc == 0 && !ctl->json)
		printf("account %s %s\n", address, done);
	return rc;
}

static int ctl_account_enable(struct ctl *ctl, int argc, char **argv)
{
	return ctl_account_state(ctl, argv[0], DIRECTORY_ACCOUNT_ENABLED, "",
				 "enabled");
}

static int ctl_account_disable(struct ctl *ctl, int argc, char **argv)
{
	struct buf reason;
	int rc;

	buf_init(&reason, 255);
	if (argc == 1)
		buf_append_str(&reason, "disabled by an administrator");
	else if (ctl_join(&reason, argc - 1, argv + 1) < 0) {
		buf_deinit(&reason);
		return ctl_fail("the reason is longer than 255 bytes");
	}
	rc = ctl_account_state(ctl, argv[0], DIRECTORY_ACCOUNT_DISABLED,
			       buf_cstr(&reason), "disabled");
	buf_deinit(&reason);
	return rc;
}

static int ctl_account_del(struct ctl *ctl, int argc, char **argv)
{
	struct directory *d = ctl_begin(ctl);
	const char *error = NULL;
	int rc;

	if (d == NULL)
		return 1;
	rc = ctl_end(d, directory_account_del(d, argv[0], &error), &error);
	if (rc == 0 && !ctl->json)
		printf("account %s deleted\n", argv[0]);
	return rc;
}

static const char *ctl_state_name(enum directory_account_state s)
{
	switch (s) {
	case DIRECTORY_ACCOUNT_ENABLED:
		return "enabled";
	case DIRECTORY_ACCOUNT_DISABLED:
		return "disabled";
	case DIRECTORY_ACCOUNT_FROZEN:
		return "frozen";
	}
	return "unknown";
}

static json_t *ctl_account_json(const struct directory_account *a)
{
	return json_pack("{s:s, s:s, s:s, s:I, s:b, s:I, s:I, s:I}", "address",
			 a->address, "state", ctl_state_name(a->state),
			 "state_reason", a->state_reason, "state_time",
			 (json_int_t)a->state_time, "admin", a->is_admin,
			 "quota_mb", (json_int_t)a->quota_mb, "created",
			 (json_int_t)a->created, "last_login",
			 (json_int_t)a->last_login);
}

static void ctl_account_cb(const struct directory_account *a, void *ctx)
{
	json_t *list = ctx;

	if (list == NULL)
		printf("%-40s %-8s%s\n", a->address, ctl_state_name(a->state),
		       a->is_admin ? " admin" : "");
	else
		json_array_append_new(list, ctl_account_json(a));
}

static int ctl_account_list(struct ctl *ctl, int argc, char **argv)
{
	struct directory *d = ctl_begin(ctl);
	json_t *list = ctl->json ? json_array() : NULL;
	const char *error = NULL;
	int rc;

	if (d == NULL) {
		json_decref(list);
		return 1;
	}
	rc = ctl_end(d, directory_account_list(d, ctl_account_cb, list, &error),
		     &error);
	if (rc != 0 || list == NULL) {
		json_decref(list);
		return rc;
	}
	return ctl_json_print(list);
}

struct ctl_aliases_ctx {
	const char *account;
	json_t *list;
};

static void ctl_aliases_cb(const char *alias, const char *account, void *ctx)
{
	struct ctl_aliases_ctx *c = ctx;

	if (strcmp(account, c->account) == 0)
		json_array_append_new(c->list, json_string(alias));
}

static int ctl_account_show(struct ctl *ctl, int argc, char **argv)
{
	struct directory *d = ctl_begin(ctl);
	struct directory_account a;
	struct ctl_aliases_ctx c = {.list = json_array()};
	const char *error = NULL;
	char t1[64], t2[64];
	json_t *j, *v;
	size_t i;
	int r, rc;

	if (d == NULL || c.list == NULL) {
		json_decref(c.list);
		return d == NULL ? 1 : ctl_fail("out of memory");
	}
	r = directory_account_get(d, argv[0], &a, &error);
	if (r > 0) {
		c.account = a.address;
		r = directory_alias_list(d, ctl_aliases_cb, &c, &error);
	}
	rc = ctl_end(d, r, &error);
	if (rc != 0) {
		json_decref(c.list);
		return rc;
	}
	if (ctl->json) {
		j = ctl_account_json(&a);
		if (j != NULL) {
			json_object_set(j, "aliases", c.list);
			ctl_hijack_window(d, a.address, j);
		}
		json_decref(c.list);
		return ctl_json_print(j);
	}
	printf("address:    %s\n", a.address);
	if (a.state == DIRECTORY_ACCOUNT_ENABLED)
		printf("state:      enabled\n");
	else
		printf("state:      %s since %s%s%s%s\n",
		       ctl_state_name(a.state),
		       ctl_time(a.state_time, t1, sizeof(t1)),
		       a.state_reason[0] != '\0' ? " (" : "", a.state_reason,
		       a.state_reason[0] != '\0' ? ")" : "");
	printf("admin:      %s\n", a.is_admin ? "yes" : "no");
	if (a.quota_mb == 0)
		printf("quota:      unlimited\n");
	else
		printf("quota:      %lld MB\n", (long long)a.quota_mb);
	printf("created:    %s\n", ctl_time(a.created, t1, sizeof(t1)));
	printf("last login: %s\n", ctl_time(a.last_login, t2, sizeof(t2)));
	printf("aliases:    ");
	if (json_array_size(c.list) == 0)
		printf("none");
	json_array_foreach(c.list, i, v)
	{
		printf("%s%s", i > 0 ? ", " : "", json_string_value(v));
	}
	printf("\n");
	json_decref(c.list);
	return ctl_hijack_window(d, a.address, NULL) < 0 ? 1 : 0;
}

int ctl_account(struct ctl *ctl, int argc, char **argv)
{
	static const struct ctl_verb verbs[] = {
		{"add", 1, -1, ctl_account_add},
		{"passwd", 1, 1, ctl_account_passwd},
		{"enable", 1, 1, ctl_account_enable},
		{"disable", 1, -1, ctl_account_disable},
		{"del", 1, 1, ctl_account_del},
		{"list", 0, 0, ctl_account_list},
		{"show", 1, 1, ctl_account_show},
	};

	return ctl_dispatch(ctl, verbs, sizeof(verbs) / sizeof(verbs[0]),
			    CTL_ACCOUNT_USAGE, argc, argv);
}

/* --- alias --- */

#define CTL_ALIAS_USAGE "petrelctl alias add ALIAS ACCOUNT | del ALIAS | list"

static int ctl_alias_add(struct ctl *ctl, int argc, char **argv)
{
	struct directory *d = ctl_begin(ctl);
	const char *error = NULL;
	int rc;

	if (d == NULL)
		return 1;
	rc = ctl_end(d, directory_alias_add(d, argv[0], argv[1], &error),
		     &error);
	if (rc == 0 && !ctl->json)
		printf("alias %s -> %s added\n", argv[0], argv[1]);
	return rc;
}

static int ctl_alias_del(struct ctl *ctl, int argc, char **argv)
{
	struct directory *d = ctl_begin(ctl);
	const char *error = NULL;
	int rc;

	if (d == NULL)
		return 1;
	rc = ctl_end(d, directory_alias_del(d, argv[0], &error), &error);
	if (rc == 0 && !ctl->json)
		printf("alias %s deleted\n", argv[0]);
	return rc;
}

static void ctl_alias_cb(const char *alias, const char *account, void *ctx)
{
	json_t *list = ctx;

	if (list == NULL)
		printf("%s -> %s\n", alias, account);
	else
		json_array_append_new(list,
				      json_pack("{s:s, s:s}", "alias", alias,
						"account", account));
}

static int ctl_alias_list(struct ctl *ctl, int argc, char **argv)
{
	struct directory *d = ctl_begin(ctl);
	json_t *list = ctl->json ? json_array() : NULL;
	const char *error = NULL;
	int rc;

	if (d == NULL) {
		json_decref(list);
		return 1;
	}
	rc = ctl_end(d, directory_alias_list(d, ctl_alias_cb, list, &error),
		     &error);
	if (rc != 0 || list == NULL) {
		json_decref(list);
		return rc;
	}
	return ctl_json_print(list);
}

int ctl_alias(struct ctl *ctl, int argc, char **argv)
{
	static const struct ctl_verb verbs[] = {
		{"add", 2, 2, ctl_alias_add},
		{"del", 1, 1, ctl_alias_del},
		{"list", 0, 0, ctl_alias_list},
	};

	return ctl_dispatch(ctl, verbs, sizeof(verbs) / sizeof(verbs[0]),
			    CTL_ALIAS_USAGE, argc, argv);
}

/* --- group --- */

#define CTL_GROUP_USAGE                                                        \
	"petrelctl group add NAME | del NAME | member add NAME ADDR | "        \
	"member del NAME ADDR | list"

static int ctl_group_add(struct ctl *ctl, int argc, char **argv)
{
	struct directory *d = ctl_begin(ctl);
	const char *error = NULL;
	int rc;

	if (d == NULL)
		return 1;
	rc = ctl_end(d, directory_group_add(d, argv[0], &error), &error);
	if (rc == 0 && !ctl->json)
		printf("group %s added\n", argv[0]);
	return rc;
}

/* Says which content filter rules name a group that is gone: their
 * conditions on it match nobody from now on (filter_store.h). */
static void ctl_group_warn_rules(struct directory *d, const char *group)
{
	struct buf names;
	int n;

	buf_init(&names, 64 * 1024);
	n = filter_store_group_rules(d, group, &names);
	if (n > 0)
		fprintf(stderr,
			"petrelctl: warning: group %s is named by filter "
			"rule%s %s; %s now match%s nobody\n",
			group, n == 1 ? "" : "s", buf_cstr(&names),
			n == 1 ? "its condition on it"
			       : "their conditions on it",
			n == 1 ? "es" : "");
	buf_deinit(&names);
}

static int ctl_group_del(struct ctl *ctl, int argc, char **argv)
{
	struct directory *d = ctl_begin(ctl);
	const char *error = NULL;
	int rc;

	if (d == NULL)
		return 1;
	rc = ctl_end(d, directory_group_del(d, argv[0], &error), &error);
	if (rc == 0 && !ctl->json)
		printf("group %s deleted\n", argv[0]);
	if (rc == 0)
		ctl_group_warn_rules(d, argv[0]);
	return rc;
}

static int ctl_group_member_add(struct ctl *ctl, int argc, char **argv)
{
	struct directory *d = ctl_begin(ctl);
	const char *error = NULL;
	int rc;

	if (d == NULL)
		return 1;
	rc = ctl_end(d, directory_group_member_add(d, argv[0], argv[1], &error),
		     &error);
	if (rc == 0 && !ctl->json)
		printf("%s added to group %s\n", argv[1], argv[0]);
	return rc;
}

static int ctl_group_member_del(struct ctl *ctl, int argc, char **argv)
{
	struct directory *d = ctl_begin(ctl);
	const char *error = NULL;
	int rc;

	if (d == NULL)
		return 1;
	rc = ctl_end(d, directory_group_member_del(d, argv[0], argv[1], &error),
		     &error);
	if (rc == 0 && !ctl->json)
		printf("%s removed from group %s\n", argv[1], argv[0]);
	return rc;
}

static void ctl_group_cb(const char *name, const char *members, void *ctx)
{
	json_t *list = ctx, *m;
	const char *p = members;

	if (list == NULL) {
		printf("%s:%s%s\n", name, members[0] != '\0' ? " " : "",
		       members);
		return;
	}
	/* Addresses hold no ", " (directory.h): the join splits back. */
	m = json_array();
	while (m != NULL && *p != '\0') {
		const char *end = strstr(p, ", ");
		size_t n = end != NULL ? (size_t)(end - p) : strlen(p);

		json_array_append_new(m, json_stringn(p, n));
		p += n;
		if (*p != '\0')
			p += 2;
	}
	json_array_append_new(
		list, json_pack("{s:s, s:o*}", "name", name, "members", m));
}

static int ctl_group_list(struct ctl *ctl, int argc, char **argv)
{
	struct directory *d = ctl_begin(ctl);
	json_t *list = ctl->json ? json_array() : NULL;
	const char *error = NULL;
	int rc;

	if (d == NULL) {
		json_decref(list);
		return 1;
	}
	rc = ctl_end(d, directory_group_list(d, ctl_group_cb, list, &error),
		     &error);
	if (rc != 0 || list == NULL) {
		json_decref(list);
		return rc;
	}
	return ctl_json_print(list);
}

int ctl_group(struct ctl *ctl, int argc, char **argv)
{
	static const struct ctl_verb verbs[] = {
		{"add", 1, 1, ctl_group_add},
		{"del", 1, 1, ctl_group_del},
		{"member add", 2, 2, ctl_group_member_add},
		{"member del", 2, 2, ctl_group_member_del},
		{"list", 0, 0, ctl_group_list},
	};

	return ctl_dispatch(ctl, verbs, sizeof(verbs) / sizeof(verbs[0]),
			    CTL_GROUP_USAGE, argc, argv);
}

/* --- settings --- */

static const char *ctl_type_name(enum settings_type t)
{
	switch (t) {
	case SETTINGS_BOOL:
		return "bool";
	case SETTINGS_INT:
		return "int";
	case SETTINGS_ENUM:
		return "enum";
	case SETTINGS_LIST:
		return "list";
	case SETTINGS_STR:
		return "string";
	case SETTINGS_DECIMAL:
		return "decimal";
	}
	return "?";
}

/* Loads the settings snapshot inside the command's transaction. NULL
 * after printing an error. */
static struct settings *ctl_settings_load(struct ctl *ctl)
{
	struct directory *d = ctl_begin(ctl);
	struct settings *s;
	const char *error = NULL;

	if (d == NULL)
		return NULL;
	s = directory_settings_load(d, &error);
	if (ctl_end(d, s != NULL, &error) != 0) {
		settings_unref(s);
		return NULL;
	}
	return s;
}

int ctl_set(struct ctl *ctl, int argc, char **argv)
{
	struct directory *d;
	struct settings *s;
	struct buf value;
	const char *error = NULL;
	int id, r, rc;

	if (argc < 2)
		return ctl_usage("petrelctl set KEY VALUE");
	/* A list may come as several words: "set trusted.hosts a, b". */
	buf_init(&value, 1024 * 1024);
	if (ctl_join(&value, argc - 1, argv + 1) < 0) {
		buf_deinit(&value);
		return ctl_fail("the value is too long");
	}
	d = ctl_begin(ctl);
	if (d == NULL) {
		buf_deinit(&value);
		return 1;
	}
	r = directory_setting_set(d, argv[0], buf_cstr(&value), &error);
	buf_deinit(&value);
	rc = ctl_end(d, r, &error);
	if (rc != 0 || ctl->json)
		return rc;
	id = settings_lookup(argv[0]);
	s = ctl_settings_load(ctl);
	if (s == NULL)
		return 1;
	printf("%s = %s\n", argv[0], settings_str(s, (enum settings_id)id));
	settings_unref(s);
	return 0;
}

int ctl_get(struct ctl *ctl, int argc, char **argv)
{
	struct settings *s;
	int id, rc = 0;

	if (argc != 1)
		return ctl_usage("petrelctl get KEY");
	id = settings_lookup(argv[0]);
	if (id < 0)
		return ctl_fail("unknown setting '%s' (petrelctl settings "
				"lists them)",
				argv[0]);
	s = ctl_settings_load(ctl);
	if (s == NULL)
		return 1;
	if (ctl->json)
		rc = ctl_json_print(
			json_pack("{s:s, s:s}", "name", argv[0], "value",
				  settings_str(s, (enum settings_id)id)));
	else
		printf("%s\n", settings_str(s, (enum settings_id)id));
	settings_unref(s);
	return rc;
}

static json_t *ctl_setting_json(const struct settings *s, int id)
{
	const struct settings_def *def = settings_def((enum settings_id)id);
	json_t *j;

	j = json_pack("{s:s, s:s, s:s, s:s, s:s}", "name", def->name, "type",
		      ctl_type_name(def->type), "value",
		      settings_str(s, (enum settings_id)id), "default",
		      def->defval, "help", def->help);
	if (j == NULL)
		return NULL;
	if (def->type == SETTINGS_INT || def->type == SETTINGS_DECIMAL) {
		json_object_set_new(j, "min", json_integer(def->min));
		json_object_set_new(j, "max", json_integer(def->max));
	} else if (def->type == SETTINGS_ENUM) {
		json_object_set_new(j, "choices", json_string(def->choices));
	}
	return j;
}

int ctl_settings(struct ctl *ctl, int argc, char **argv)
{
	struct settings *s;
	json_t *list = NULL;

	if (argc != 0)
		return ctl_usage("petrelctl settings");
	s = ctl_settings_load(ctl);
	if (s == NULL)
		return 1;
	if (ctl->json)
		list = json_array();
	for (int id = 0; id < SETTINGS_COUNT; id++) {
		const struct settings_def *def =
			settings_def((enum settings_id)id);

		if (list != NULL) {
			json_array_append_new(list, ctl_setting_json(s, id));
			continue;
		}
		if (ctl->json)
			break; /* out of memory: reported below */
		printf("%s = %s\n    %s (default: %s", def->name,
		       settings_str(s, (enum settings_id)id), def->help,
		       def->defval[0] != '\0' ? def->defval : "empty");
		if (def->type == SETTINGS_INT || def->type == SETTINGS_DECIMAL)
			printf(", %lld to %lld", (long long)def->min,
			       (long long)def->max);
		else if (def->type == SETTINGS_ENUM)
			printf(", one of %s", def->choices);
		printf(")\n");
	}
	settings_unref(s);
	return ctl->json ? ctl_json_print(list) : 0;
}
