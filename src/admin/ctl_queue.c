/*
 * ctl_queue: petrelctl's `queue` noun: list, show, hold, release, delete,
 * retry, bounce and stats over the spool of src/queue/. Every change is one
 * durable queue operation; after moving messages into the active queue it
 * wakes the running daemon (SIGUSR1 to the pid of <data_dir>/petreld.pid,
 * whose lock proves the daemon alive) so that they leave at once. `bounce`
 * only marks the message: the daemon writes the report to the sender.
 */
#include "admin/ctl.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/clock.h"
#include "queue/queue.h"

#define CTL_QUEUE_USAGE                                                        \
	"queue list [QUEUE] | show ID | hold ID... | release ID...\n"          \
	"          | delete ID... | retry ID... | bounce ID... | stats"

/* The queues an admin sees; incoming holds only messages being received. */
static const enum queue_name ctl_queue_shown[] = {QUEUE_ACTIVE, QUEUE_DEFERRED,
						  QUEUE_HOLD, QUEUE_BAD};
#define CTL_QUEUE_NSHOWN (sizeof(ctl_queue_shown) / sizeof(*ctl_queue_shown))

struct queue *ctl_queue_open(const struct ctl *ctl)
{
	const char *err;
	struct queue *q = queue_open(ctl->cfg->data_dir, &err);

	if (q == NULL)
		ctl_fail("%s", err);
	return q;
}

int ctl_queue_kick(const struct ctl *ctl)
{
	char path[CONFIG_PATH_MAX + 16], buf[32];
	ssize_t n;
	long pid;
	int fd, r = 0;

	snprintf(path, sizeof(path), "%s/petreld.pid", ctl->cfg->data_dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	/* A lock we can take means no daemon holds it: a stale file. */
	if (flock(fd, LOCK_SH | LOCK_NB) == 0 || errno != EWOULDBLOCK) {
		close(fd);
		return 0;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	pid = strtol(buf, NULL, 10);
	if (pid > 1 && kill((pid_t)pid, SIGUSR1) == 0)
		r = 1;
	return r;
}

static void ctl_queue_size(uint64_t bytes, char *buf, size_t size)
{
	if (bytes < 10 * 1024)
		snprintf(buf, size, "%llu", (unsigned long long)bytes);
	else if (bytes < 10 * 1024 * 1024)
		snprintf(buf, size, "%lluK",
			 (unsigned long long)((bytes + 1023) / 1024));
	else
		snprintf(buf, size, "%lluM",
			 (unsigned long long)((bytes + 1024 * 1024 - 1) /
					      (1024 * 1024)));
}

static json_t *ctl_queue_json(const char *id, enum queue_name name,
			      const struct queue_envelope *e)
{
	json_t *rcpts = json_array(), *j;

	for (size_t i = 0; rcpts != NULL && i < e->rcpt_count; i++) {
		const struct queue_rcpt *r = &e->rcpts[i];
		json_array_append_new(
			rcpts,
			json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:s}",
				  "address", r->address, "mailbox", r->mailbox,
				  "kind", queue_rcpt_kind_str(r->kind),
				  "status", queue_rcpt_status_str(r->status),
				  "attempts", (json_int_t)r->attempts,
				  "last_attempt", (json_int_t)r->last_attempt,
				  "error", r->error));
	}
	if (rcpts == NULL)
		return NULL;
	j = json_pack("{s:s, s:s, s:s, s:I, s:I, s:s, s:I, s:s, s:s, s:s, "
		      "s:s, s:s, s:s, s:I, s:s, s:o, s:I, s:b, s:b}",
		      "id", id, "queue", queue_name_str(name), "sender",
		      e->sender, "size", (json_int_t)e->size, "received",
		      (json_int_t)e->received, "client_ip", e->client_ip,
		      "client_port", (json_int_t)e->client_port, "helo",
		      e->helo, "listener", e->listener, "protocol", e->protocol,
		      "auth_account", e->auth_account, "message_id",
		      e->message_id, "subject", e->subject, "next_retry",
		      (json_int_t)e->next_retry, "reason", e->reason,
		      "recipients", rcpts, "age",
		      (json_int_t)(clock_now() - e->received), "warned",
		      (e->flags & QUEUE_FLAG_WARNED) != 0, "bounce",
		      (e->flags & QUEUE_FLAG_BOUNCE) != 0);
	return j;
}

/* "3d4h", "2h10m", "5m", "40s". */
static void ctl_queue_age(int64_t secs, char *buf, size_t size)
{
	if (secs < 0)
		secs = 0;
	if (secs >= 86400)
		snprintf(buf, size, "%lldd%lldh", (long long)(secs / 86400),
			 (long long)(secs % 86400 / 3600));
	else if (secs >= 3600)
		snprintf(buf, size, "%lldh%lldm", (long long)(secs / 3600),
			 (long long)(secs % 3600 / 60));
	else if (secs >= 60)
		snprintf(buf, size, "%lldm", (long long)(secs / 60));
	else
		snprintf(buf, size, "%llds", (long long)secs);
}

/* One message of `queue list`: a line with the id, queue, size, arrival
 * and sender, one with the age, subject and retry time, then one indented
 * line per recipient with its state, attempts and last error. */
static void ctl_queue_print(const char *id, enum queue_name name,
			    const struct queue_envelope *e)
{
	char size[32], when[64], age[32];

	ctl_queue_size(e->size, size, sizeof(size));
	ctl_queue_age(clock_now() - e->received, age, sizeof(age));
	printf("%s  %-8s %6s  %s  <%s>\n", id, queue_name_str(name), size,
	       ctl_time(e->received, when, sizeof(when)), e->sender);
	printf("    age %s, subject: %s\n", age, e->subject);
	if (name == QUEUE_DEFERRED && e->next_retry != 0)
		printf("    next retry %s\n",
		       ctl_time(e->next_retry, when, sizeof(when)));
	if (e->reason[0] != '\0')
		printf("    (%s)\n", e->reason);
	for (size_t i = 0; i < e->rcpt_count; i++) {
		const struct queue_rcpt *r = &e->rcpts[i];
		printf("    %s  %s %s", r->address,
		       queue_rcpt_kind_str(r->kind),
		       queue_rcpt_status_str(r->status));
		if (r->attempts > 0)
			printf(" (%u attempt%s)", r->attempts,
			       r->attempts == 1 ? "" : "s");
		if (r->error[0] != '\0')
			printf(": %s", r->error);
		printf("\n");
	}
}

struct ctl_queue_list {
	struct queue *q;
	enum queue_name only;	      /* QUEUE_COUNT: every queue shown */
	const enum queue_name *names; /* the queues listed */
	size_t nnames;
	json_t *json; /* NULL: text */
	size_t count, damaged;
	uint64_t bytes;
};

/* Prints one message found by the scan, under the queue it is in now. */
static int ctl_queue_list_cb(void *ctx, const char *id)
{
	struct ctl_queue_list *l = ctx;
	struct queue_envelope *e;
	enum queue_name where;
	const char *err;
	int r = queue_envelope_load_from(l->q, id, l->names, l->nnames, &where,
					 &e, &err);

	if (r == 0)
		return 0; /* delivered, deleted or moved out since it was read */
	if (r < 0) {
		/* Damaged files go to bad/; say so and go on. */
		fprintf(stderr, "petrelctl: %s: %s\n", id, err);
		l->damaged++;
		return 0;
	}
	l->count++;
	l->bytes += e->size;
	if (l->json != NULL)
		json_array_append_new(l->json, ctl_queue_json(id, where, e));
	else
		ctl_queue_print(id, where, e);
	queue_envelope_free(e);
	return 0;
}

static int ctl_queue_list(struct ctl *ctl, int argc, char **argv)
{
	struct ctl_queue_list l = {0};
	const char *err;
	int r, rc;

	l.only = QUEUE_COUNT;
	if (argc == 1 && !queue_name_parse(argv[0], &l.only))
		return ctl_usage("no queue \"%s\" (active, deferred, hold, "
				 "bad, incoming)",
				 argv[0]);
	l.q = ctl_queue_open(ctl);
	if (l.q == NULL)
		return 1;
	/* incoming: only a count (messages being received). */
	if (l.only == QUEUE_INCOMING) {
		struct queue_stats st;

		rc = queue_stats(l.q, &st, &err) < 0 ? ctl_fail("%s", err) : 0;
		queue_close(l.q);
		if (rc == 0 && !ctl->json)
			printf("%zu message(s) being received\n",
			       st.messages[QUEUE_INCOMING]);
		return rc != 0 || !ctl->json ? rc
					     : ctl_json_print(json_array());
	}
	if (ctl->json && (l.json = json_array()) == NULL) {
		queue_close(l.q);
		return ctl_fail("out of memory");
	}
	l.names = l.only == QUEUE_COUNT ? ctl_queue_shown : &l.only;
	l.nnames = l.only == QUEUE_COUNT ? CTL_QUEUE_NSHOWN : 1;
	/* Oldest first, whatever queue each is in. */
	r = queue_scan_queues(l.q, l.names, l.nnames, ctl_queue_list_cb, &l,
			      &err);
	queue_close(l.q);
	if (r < 0) {
		json_decref(l.json);
		return ctl_fail("%s", err);
	}
	if (l.json != NULL) {
		rc = ctl_json_print(l.json);
	} else {
		char size[32];

		rc = 0;
		ctl_queue_size(l.bytes, size, sizeof(size));
		if (l.count == 0)
			printf("%s is empty\n",
			       l.only == QUEUE_COUNT ? "the queue"
						     : queue_name_str(l.only));
		else
			printf("-- %zu message(s), %s bytes\n", l.count, size);
	}
	return rc != 0 ? rc : l.damaged > 0 ? 1 : 0;
}

/* Checks an id from the command line. */
static int ctl_queue_id_ok(const char *id)
{
	if (queue_id_valid(id))
		return 1;
	ctl_fail("\"%s\" is not a queue id (18 hex digits)", id);
	return 0;
}

static int ctl_queue_show(struct ctl *ctl, int argc, char **argv)
{
	struct queue *q;
	struct queue_envelope *e;
	enum queue_name where;
	const char *err;
	char when[64];
	int r, fd;
	uint64_t off, len;

	if (!ctl_queue_id_ok(argv[0]))
		return 1;
	q = ctl_queue_open(ctl);
	if (q == NULL)
		return 1;
	r = queue_envelope_load(q, argv[0], &where, &e, &err);
	if (r <= 0) {
		queue_close(q);
		return r == 0 ? ctl_fail("no message %s in the queue", argv[0])
			      : ctl_fail("%s: %s", argv[0], err);
	}
	if (ctl->json) {
		json_t *j = ctl_queue_json(argv[0], where, e);

		queue_envelope_free(e);
		queue_close(q);
		return ctl_json_print(j);
	}
	printf("id:          %s\n", argv[0]);
	printf("queue:       %s\n", queue_name_str(where));
	if (e->reason[0] != '\0')
		printf("reason:      %s\n", e->reason);
	printf("received:    %s\n", ctl_time(e->received, when, sizeof(when)));
	if (e->next_retry != 0)
		printf("next retry:  %s\n",
		       ctl_time(e->next_retry, when, sizeof(when)));
	printf("size:        %llu bytes\n", (unsigned long long)e->size);
	printf("sender:      <%s>\n", e->sender);
	printf("client:      [%s]:%u, helo %s\n", e->client_ip, e->client_port,
	       e->helo);
	printf("listener:    %s (%s)\n", e->listener, e->protocol);
	if (e->auth_account[0] != '\0')
		printf("account:     %s\n", e->auth_account);
	if (e->flags & QUEUE_FLAG_WARNED)
		printf("warned:      the sender was told of the delay\n");
	if (e->flags & QUEUE_FLAG_BOUNCE)
		printf("bounce:      to be returned to the sender\n");
	printf("message-id:  %s\n", e->message_id);
	printf("subject:     %s\n", e->subject);
	for (size_t i = 0; i < e->rcpt_count; i++) {
		const struct queue_rcpt *rc = &e->rcpts[i];

		printf("recipient:   %s  %s %s, %u attempt(s)", rc->address,
		       queue_rcpt_kind_str(rc->kind),
		       queue_rcpt_status_str(rc->status), rc->attempts);
		if (rc->last_attempt != 0)
			printf(", last %s",
			       ctl_time(rc->last_attempt, when, sizeof(when)));
		if (rc->error[0] != '\0')
			printf(": %s", rc->error);
		printf("\n");
	}
	queue_envelope_free(e);
	/* The header section, as stored (the trace headers Petrel added
	 * first). Read whole and checked before it is shown: the daemon may
	 * deliver the message meanwhile and reuse its file for another one
	 * (queue_body_check). Then, as when it is gone before, no header. */
	r = queue_body_open(q, argv[0], &fd, &off, &len, &err);
	if (r <= 0) {
		queue_close(q);
		return r == 0 ? 0 : ctl_fail("%s: %s", argv[0], err);
	}
	{
		FILE *f = fdopen(fd, "r");
		struct buf head;
		char *line = NULL;
		size_t cap = 0;
		uint64_t done = 0;
		ssize_t n;

		if (f == NULL) {
			close(fd);
			queue_close(q);
			return ctl_fail("%s: %s", argv[0], strerror(errno));
		}
		buf_init(&head, (size_t)len);
		if (fseeko(f, (off_t)off, SEEK_SET) == 0) {
			while (done < len &&
			       (n = getline(&line, &cap, f)) > 0) {
				if ((uint64_t)n > len - done)
					n = (ssize_t)(len - done);
				done += (uint64_t)n;
				if (n <= 2 && (line[0] == '\n' ||
					       (line[0] == '\r' && n == 2)))
					break; /* the end of the header */
				if (buf_append(&head, line, (size_t)n) < 0)
					break;
			}
		}
		free(line);
		r = queue_body_check(q, argv[0], fileno(f), &err);
		fclose(f);
		queue_close(q);
		if (r == 1) {
			printf("\n");
			if (head.len > 0)
				fwrite(head.data, 1, head.len, stdout);
		}
		buf_deinit(&head);
		if (r < 0)
			return ctl_fail("%s: %s", argv[0], err);
	}
	return 0;
}

/* What hold, release, delete and retry do to one message. */
enum ctl_queue_op { CTL_HOLD, CTL_RELEASE, CTL_DELETE, CTL_RETRY, CTL_BOUNCE };

static int ctl_queue_change(struct ctl *ctl, int argc, char **argv,
			    enum ctl_queue_op op)
{
	struct queue *q;
	int rc = 0, kick = 0;

	for (int i = 0; i < argc; i++)
		if (!ctl_queue_id_ok(argv[i]))
			return 1;
	q = ctl_queue_open(ctl);
	if (q == NULL)
		return 1;
	for (int i = 0; i < argc; i++) {
		const char *id = argv[i], *err = NULL, *done = NULL;
		struct queue_envelope *e;
		enum queue_name where;
		int r = queue_envelope_load(q, id, &where, &e, &err);

		if (r <= 0) {
			rc = r == 0 ? ctl_fail("no message %s in the queue", id)
				    : ctl_fail("%s: %s", id, err);
			continue;
		}
		queue_envelope_free(e);
		switch (op) {
		case CTL_HOLD:
			if (where == QUEUE_BAD) {
				rc = ctl_fail("%s is in the bad queue", id);
				continue;
			}
			r = queue_move(q, id, QUEUE_HOLD,
				       "held by the administrator", &err);
			done = "held";
			break;
		case CTL_RELEASE:
			if (where != QUEUE_HOLD) {
				rc = ctl_fail("%s is not on hold (it is in %s)",
					      id, queue_name_str(where));
				continue;
			}
			r = queue_move(q, id, QUEUE_ACTIVE, NULL, &err);
			done = "released";
			kick = 1;
			break;
		case CTL_RETRY:
			if (where == QUEUE_HOLD || where == QUEUE_BAD) {
				rc = ctl_fail("%s is in %s: release it or "
					      "delete it",
					      id, queue_name_str(where));
				continue;
			}
			r = queue_move(q, id, QUEUE_ACTIVE, NULL, &err);
			done = "queued for delivery now";
			kick = 1;
			break;
		case CTL_DELETE:
			r = queue_delete(q, id, &err);
			done = "deleted";
			break;
		case CTL_BOUNCE:
			if (where == QUEUE_BAD) {
				rc = ctl_fail("%s is in the bad queue: delete "
					      "it",
					      id);
				continue;
			}
			/* The daemon fails its pending recipients and
			 * writes the report. */
			r = queue_set_flags(q, id, QUEUE_FLAG_BOUNCE, 0, &err);
			if (r == 1)
				r = queue_move(q, id, QUEUE_ACTIVE, NULL, &err);
			done = "returned to the sender";
			kick = 1;
			break;
		}
		if (r == 0)
			rc = ctl_fail("no message %s in the queue", id);
		else if (r < 0)
			rc = ctl_fail("%s: %s", id, err);
		else
			printf("%s %s\n", id, done);
	}
	queue_close(q);
	if (kick)
		ctl_queue_kick(ctl);
	return rc;
}

static int ctl_queue_hold(struct ctl *ctl, int argc, char **argv)
{
	return ctl_queue_change(ctl, argc, argv, CTL_HOLD);
}

static int ctl_queue_release(struct ctl *ctl, int argc, char **argv)
{
	return ctl_queue_change(ctl, argc, argv, CTL_RELEASE);
}

static int ctl_queue_delete(struct ctl *ctl, int argc, char **argv)
{
	return ctl_queue_change(ctl, argc, argv, CTL_DELETE);
}

static int ctl_queue_retry(struct ctl *ctl, int argc, char **argv)
{
	return ctl_queue_change(ctl, argc, argv, CTL_RETRY);
}

static int ctl_queue_bounce(struct ctl *ctl, int argc, char **argv)
{
	return ctl_queue_change(ctl, argc, argv, CTL_BOUNCE);
}

static const char *const ctl_queue_events[QUEUE_EV_COUNT] = {
	[QUEUE_EV_RECEIVED] = "received",
	[QUEUE_EV_DELIVERED] = "delivered",
	[QUEUE_EV_DEFERRED] = "deferred",
	[QUEUE_EV_BOUNCED] = "bounced",
};

static json_t *ctl_queue_events_json(const uint64_t *v)
{
	json_t *o = json_object();

	for (int i = 0; o != NULL && i < QUEUE_EV_COUNT; i++)
		json_object_set_new(o, ctl_queue_events[i],
				    json_integer((json_int_t)v[i]));
	return o;
}

static int ctl_queue_stats(struct ctl *ctl, int argc, char **argv)
{
	struct queue_stats st;
	struct queue *q;
	const char *err;
	json_t *j = NULL;
	uint64_t hour[QUEUE_EV_COUNT], day[QUEUE_EV_COUNT];
	int r;

	q = ctl_queue_open(ctl);
	if (q == NULL)
		return 1;
	r = queue_stats(q, &st, &err);
	if (r > 0)
		r = queue_event_counts(q, clock_now(), hour, day, &err);
	queue_close(q);
	if (r < 0)
		return ctl_fail("%s", err);
	if (ctl->json)
		j = json_object();
	for (int n = 0; n < QUEUE_COUNT; n++) {
		if (j != NULL) {
			json_object_set_new(
				j, queue_name_str((enum queue_name)n),
				json_pack("{s:I, s:I}", "messages",
					  (json_int_t)st.messages[n], "bytes",
					  (json_int_t)st.bytes[n]));
		} else if (!ctl->json) {
			char size[32];

			ctl_queue_size(st.bytes[n], size, sizeof(size));
			printf("%-9s %6zu message(s) %8s bytes\n",
			       queue_name_str((enum queue_name)n),
			       st.messages[n], size);
		}
	}
	if (j != NULL) {
		json_object_set_new(j, "last_hour",
				    ctl_queue_events_json(hour));
		json_object_set_new(j, "last_day", ctl_queue_events_json(day));
		return ctl_json_print(j);
	}
	if (ctl->json)
		return ctl_fail("out of memory");
	for (int k = 0; k < 2; k++) {
		const uint64_t *v = k == 0 ? hour : day;

		printf("%s:", k == 0 ? "last hour" : "last day ");
		for (int i = 0; i < QUEUE_EV_COUNT; i++)
			printf("%s %llu %s", i > 0 ? "," : "",
			       (unsigned long long)v[i], ctl_queue_events[i]);
		printf("\n");
	}
	return 0;
}

int ctl_queue(struct ctl *ctl, int argc, char **argv)
{
	static const struct ctl_verb verbs[] = {
		{"list", 0, 1, ctl_queue_list},
		{"show", 1, 1, ctl_queue_show},
		{"hold", 1, -1, ctl_queue_hold},
		{"release", 1, -1, ctl_queue_release},
		{"delete", 1, -1, ctl_queue_delete},
		{"retry", 1, -1, ctl_queue_retry},
		{"bounce", 1, -1, ctl_queue_bounce},
		{"stats", 0, 0, ctl_queue_stats},
	};

	return ctl_dispatch(ctl, verbs, sizeof(verbs) / sizeof(verbs[0]),
			    CTL_QUEUE_USAGE, argc, argv);
}
