/*
 * ctl_screening: `petrelctl screening list | unblock IP`. Blocks live in
 * the directory; the daemon reloads them when it changes, so an unblock
 * takes effect within a second.
 */
#include "admin/ctl.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "directory/directory.h"
#include "policy/screen.h"

#define CTL_SCREENING_USAGE "screening list | unblock IP"

struct ctl_blocks {
	json_t *json; /* NULL: text */
	size_t count;
};

static void ctl_block_cb(const struct directory_block *b, void *ctx)
{
	struct ctl_blocks *l = ctx;
	char until[64], since[64];

	l->count++;
	if (l->json != NULL) {
		json_array_append_new(
			l->json,
			json_pack("{s:s, s:I, s:i, s:s, s:I}", "ip", b->ip,
				  "until", (json_int_t)b->until, "offenses",
				  b->offenses, "reason", b->reason, "created",
				  (json_int_t)b->created));
		return;
	}
	printf("%-24s until %s  (block %d, since %s: %s)\n", b->ip,
	       ctl_time(b->until, until, sizeof(until)), b->offenses,
	       ctl_time(b->created, since, sizeof(since)), b->reason);
}

static int ctl_screening_list(struct ctl *ctl, int argc, char **argv)
{
	struct directory *d = ctl_directory(ctl);
	struct ctl_blocks l = {0};
	const char *err;

	(void)argc;
	(void)argv;
	if (d == NULL)
		return 1;
	if (ctl->json && (l.json = json_array()) == NULL)
		return ctl_fail("out of memory");
	if (directory_block_list(d, (int64_t)time(NULL), ctl_block_cb, &l,
				 &err) < 0) {
		json_decref(l.json);
		return ctl_fail("%s", err);
	}
	if (l.json != NULL)
		return ctl_json_print(l.json);
	if (l.count == 0)
		printf("no IP is blocked\n");
	return 0;
}

static int ctl_screening_unblock(struct ctl *ctl, int argc, char **argv)
{
	struct directory *d = ctl_directory(ctl);
	char key[SCREEN_KEY_SIZE];
	const char *err;
	int r;

	(void)argc;
	if (d == NULL)
		return 1;
	/* An IPv6 address stands for its /64, as blocks do; a key as
	 * listed ("2001:db8::/64") is taken as it is. */
	if (strchr(argv[0], '/') != NULL)
		snprintf(key, sizeof(key), "%s", argv[0]);
	else
		screen_key(argv[0], key);
	r = directory_block_del(d, key, (int64_t)time(NULL), &err);
	if (r < 0)
		return ctl_fail("%s", err);
	if (r == 0)
		return ctl_fail("%s is not blocked", key);
	printf("%s unblocked\n", key);
	return 0;
}

int ctl_screening(struct ctl *ctl, int argc, char **argv)
{
	static const struct ctl_verb verbs[] = {
		{"list", 0, 0, ctl_screening_list},
		{"unblock", 1, 1, ctl_screening_unblock},
	};

	return ctl_dispatch(ctl, verbs, sizeof(verbs) / sizeof(verbs[0]),
			    CTL_SCREENING_USAGE, argc, argv);
}
