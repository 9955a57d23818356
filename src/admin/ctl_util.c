/*
 * ctl_util: what every petrelctl noun shares: verb dispatch with argument
 * counts, JSON output, time formatting.
 */
#include "admin/ctl.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

/*
 * Finds the verb that argv starts with and checks its argument count.
 * Returns the handler's exit status, or 2 after a usage error.
 */
int ctl_dispatch(struct ctl *ctl, const struct ctl_verb *verbs, size_t count,
		 const char *usage, int argc, char **argv)
{
	for (size_t i = 0; i < count; i++) {
		const char *v = verbs[i].name;
		const char *sp = strchr(v, ' ');
		int words = 1, n;

		if (sp == NULL) {
			if (argc < 1 || strcmp(argv[0], v) != 0)
				continue;
		} else {
			size_t l = (size_t)(sp - v);
			if (argc < 2 || strlen(argv[0]) != l ||
			    strncmp(argv[0], v, l) != 0 ||
			    strcmp(argv[1], sp + 1) != 0)
				continue;
			words = 2;
		}
		n = argc - words;
		if (n < verbs[i].min || (verbs[i].max >= 0 && n > verbs[i].max))
			return ctl_usage("%s", usage);
		return verbs[i].fn(ctl, n, argv + words);
	}
	return ctl_usage("%s", usage);
}

/* Prints a JSON value on stdout and frees it. Returns the exit status. */
int ctl_json_print(json_t *j)
{
	int r;

	if (j == NULL)
		return ctl_fail("out of memory");
	r = json_dumpf(j, stdout, JSON_INDENT(2));
	json_decref(j);
	if (r < 0)
		return ctl_fail("cannot write the JSON output");
	fputc('\n', stdout);
	return 0;
}

/* "2024-05-01 12:00:00 UTC", or "never" for 0. */
const char *ctl_time(int64_t t, char *buf, size_t size)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t == 0 || gmtime_r(&tt, &tm) == NULL ||
	    strftime(buf, size, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(buf, size, "%s", t == 0 ? "never" : "?");
	return buf;
}
