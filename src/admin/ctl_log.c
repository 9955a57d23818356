/*
 * ctl_log: `petrelctl log search ID`. Given a Message-ID or a queue id, it
 * finds the log lines that name it, in every protocol's file of every day,
 * follows them to the sessions they belong to (the second field of a line)
 * and to the queue ids they mention (a Message-ID leads to the queue id
 * of the "message saved" line, which leads to the delivery lines), and
 * prints every line of those sessions in time order, each prefixed with
 * the name of its log.
 */
#include "admin/ctl.h"

#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "queue/queue.h"

#define CTL_LOG_USAGE "log search MESSAGE-ID|QUEUE-ID"
#define CTL_LOG_MAX_KEYS 256 /* search terms and sessions followed */
#define CTL_LOG_PASSES 4     /* rounds of following ids to sessions */
#define CTL_LOG_SID_MAX 64

struct ctl_log_keys {
	char *v[CTL_LOG_MAX_KEYS];
	size_t n;
};

struct ctl_log_line {
	char *text;
	const char *log; /* log_file_name() */
	size_t seq;	 /* read order: ties keep it */
};

static int ctl_log_has(const struct ctl_log_keys *k, const char *s, size_t len)
{
	for (size_t i = 0; i < k->n; i++)
		if (strlen(k->v[i]) == len && memcmp(k->v[i], s, len) == 0)
			return 1;
	return 0;
}

/* Adds s[0..len) unless present. Returns 1 when added, 0 otherwise. */
static int ctl_log_add(struct ctl_log_keys *k, const char *s, size_t len)
{
	char *c;

	if (len == 0 || ctl_log_has(k, s, len) || k->n == CTL_LOG_MAX_KEYS)
		return 0;
	c = strndup(s, len);
	if (c == NULL)
		return 0;
	k->v[k->n++] = c;
	return 1;
}

static void ctl_log_keys_free(struct ctl_log_keys *k)
{
	for (size_t i = 0; i < k->n; i++)
		free(k->v[i]);
	k->n = 0;
}

/* The session field of a line "YYYY-MM-DD HH:MM:SS.mmm SID DIR text":
 * *sid_r and its length, or 0 when the line has another shape. */
static size_t ctl_log_sid(const char *line, const char **sid_r)
{
	const char *p = strchr(line, ' ');

	if (p == NULL || (p = strchr(p + 1, ' ')) == NULL)
		return 0;
	p++;
	*sid_r = p;
	return strcspn(p, " \n");
}

static int ctl_log_mentions(const struct ctl_log_keys *terms, const char *line)
{
	for (size_t i = 0; i < terms->n; i++)
		if (strstr(line, terms->v[i]) != NULL)
			return 1;
	return 0;
}

/* Adds every queue id the line names (18 upper-case hex digits standing
 * alone). Returns how many were new. */
static int ctl_log_queue_ids(struct ctl_log_keys *terms, const char *line)
{
	int added = 0;

	for (const char *p = line; *p != '\0'; p++) {
		size_t n = 0;

		if (p > line && isalnum((unsigned char)p[-1]))
			continue;
		while (n <= QUEUE_ID_LEN && ((p[n] >= '0' && p[n] <= '9') ||
					     (p[n] >= 'A' && p[n] <= 'F')))
			n++;
		if (n == QUEUE_ID_LEN && !isalnum((unsigned char)p[n]))
			added += ctl_log_add(terms, p, n);
	}
	return added;
}

/* The log files: "<name>-YYYY-MM-DD.log" for every protocol, sorted by
 * name. Returns their count, or -1 after printing an error. */
static int ctl_log_files(const char *log_dir, char ***files_r,
			 const char ***logs_r)
{
	struct dirent **ents = NULL;
	char **files = NULL;
	const char **logs = NULL;
	int n = scandir(log_dir, &ents, NULL, alphasort), count = 0;

	if (n < 0) {
		ctl_fail("cannot read %s: %m", log_dir);
		return -1;
	}
	files = calloc((size_t)n + 1, sizeof(*files));
	logs = calloc((size_t)n + 1, sizeof(*logs));
	for (int i = 0; i < n; i++) {
		const char *name = ents[i]->d_name;
		size_t len = strlen(name);

		for (int f = 0;
		     files != NULL && logs != NULL && f < LOG_FILE_COUNT; f++) {
			const char *base = log_file_name((enum log_file)f);
			size_t bl = strlen(base);

			/* base + "-YYYY-MM-DD.log" */
			if (len != bl + 15 || strncmp(name, base, bl) != 0 ||
			    name[bl] != '-' || strcmp(name + len - 4, ".log"))
				continue;
			if (asprintf(&files[count], "%s/%s", log_dir, name) <
			    0) {
				files[count] = NULL;
				break;
			}
			logs[count++] = base;
			break;
		}
		free(ents[i]);
	}
	free(ents);
	if (files == NULL || logs == NULL) {
		free(files);
		free(logs);
		ctl_fail("out of memory");
		return -1;
	}
	*files_r = files;
	*logs_r = logs;
	return count;
}

/*
 * One pass over a file. Without out: lines that mention a term add their
 * session, and the queue ids they name as terms; returns how many keys
 * were new. With out: collects the lines of the sessions found (or that
 * mention a term).
 */
static int ctl_log_pass(const char *path, const char *log,
			struct ctl_log_keys *terms, struct ctl_log_keys *sids,
			struct ctl_log_line **out, size_t *nout, size_t *cap)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t lcap = 0;
	int added = 0;

	if (f == NULL)
		return 0; /* rotated away while we read: nothing to say */
	while (getline(&line, &lcap, f) > 0) {
		const char *sid = NULL;
		size_t sl = ctl_log_sid(line, &sid);
		int hit = ctl_log_mentions(terms, line);

		if (out == NULL) {
			if (!hit)
				continue;
			if (sl > 0 && sl <= CTL_LOG_SID_MAX &&
			    !(sl == 1 && sid[0] == '-'))
				added += ctl_log_add(sids, sid, sl);
			added += ctl_log_queue_ids(terms, line);
			continue;
		}
		if (!hit && !(sl > 0 && ctl_log_has(sids, sid, sl)))
			continue;
		if (*nout == *cap) {
			size_t nc = *cap ? *cap * 2 : 64;
			struct ctl_log_line *n = realloc(*out, nc * sizeof(*n));
			if (n == NULL)
				break;
			*out = n;
			*cap = nc;
		}
		line[strcspn(line, "\n")] = '\0';
		(*out)[*nout].text = strdup(line);
		(*out)[*nout].log = log;
		(*out)[*nout].seq = *nout;
		if ((*out)[*nout].text != NULL)
			(*nout)++;
	}
	free(line);
	fclose(f);
	return added;
}

/* By timestamp (the first 23 characters), then in read order. */
static int ctl_log_line_cmp(const void *a, const void *b)
{
	const struct ctl_log_line *x = a, *y = b;
	int c = strncmp(x->text, y->text, 23);

	if (c != 0)
		return c;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int ctl_log_search(struct ctl *ctl, int argc, char **argv)
{
	struct ctl_log_keys terms = {0}, sids = {0};
	struct ctl_log_line *lines = NULL;
	size_t nlines = 0, cap = 0;
	char **files;
	const char **logs;
	char term[1024];
	const char *id = argv[0];
	int nfiles, rc = 0;
	json_t *j = NULL;

	(void)argc;
	if (id[0] == '\0' || strlen(id) > 900 || strpbrk(id, " \t\r\n"))
		return ctl_usage("%s (one id, without spaces)", CTL_LOG_USAGE);
	/* A Message-ID is searched with its angle brackets, so that
	 * "a@b" does not find "xa@b"; a queue id as it is written. */
	if (strlen(id) == QUEUE_ID_LEN &&
	    strspn(id, "0123456789abcdefABCDEF") == QUEUE_ID_LEN) {
		for (size_t i = 0; i <= QUEUE_ID_LEN; i++)
			term[i] = (char)toupper((unsigned char)id[i]);
	} else if (id[0] == '<') {
		snprintf(term, sizeof(term), "%s", id);
	} else {
		snprintf(term, sizeof(term), "<%s>", id);
	}
	ctl_log_add(&terms, term, strlen(term));

	nfiles = ctl_log_files(ctl->cfg->log_dir, &files, &logs);
	if (nfiles < 0) {
		ctl_log_keys_free(&terms);
		return 1;
	}
	for (int pass = 0; pass < CTL_LOG_PASSES; pass++) {
		int added = 0;

		for (int i = 0; i < nfiles; i++)
			added += ctl_log_pass(files[i], logs[i], &terms, &sids,
					      NULL, NULL, NULL);
		if (added == 0)
			break;
	}
	for (int i = 0; i < nfiles; i++)
		ctl_log_pass(files[i], logs[i], &terms, &sids, &lines, &nlines,
			     &cap);
	if (nlines > 1)
		qsort(lines, nlines, sizeof(*lines), ctl_log_line_cmp);

	if (ctl->json)
		j = json_array();
	for (size_t i = 0; i < nlines; i++) {
		if (j != NULL)
			json_array_append_new(j, json_pack("{s:s, s:s}", "log",
							   lines[i].log, "line",
							   lines[i].text));
		else if (!ctl->json)
			printf("%-8s %s\n", lines[i].log, lines[i].text);
		free(lines[i].text);
	}
	if (ctl->json)
		rc = ctl_json_print(j);
	else if (nlines == 0)
		rc = ctl_fail("no log line mentions %s (in %s)", term,
			      ctl->cfg->log_dir);
	free(lines);
	for (int i = 0; i < nfiles; i++)
		free(files[i]);
	free(files);
	free(logs);
	ctl_log_keys_free(&terms);
	ctl_log_keys_free(&sids);
	return rc;
}

int ctl_log(struct ctl *ctl, int argc, char **argv)
{
	static const struct ctl_verb verbs[] = {
		{"search", 1, 1, ctl_log_search},
	};

	return ctl_dispatch(ctl, verbs, sizeof(verbs) / sizeof(verbs[0]),
			    CTL_LOG_USAGE, argc, argv);
}
