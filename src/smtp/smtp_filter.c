/*
 * smtp_filter: the content-filter stage of the end of DATA
 * (smtp_session_int.h). The rules run on a worker (regular expressions
 * over a large body, group lookups in the directory) before the 250, so a
 * rule can refuse the message instead of bouncing it later. What they
 * decide becomes a plan that the commit carries out: one spooled copy per
 * distinct outcome (recipients with the same outcome share it), held
 * copies committed straight into hold or bad, notes queued from the null
 * sender through delivery/notice.c. A
 * filter that fails holds the whole message with the reason: nothing is
 * lost. Owns the installed rule set and the plans.
 */
#include "smtp/smtp_filter.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "delivery/notice.h"
#include "filter/filter_eval.h"
#include "filter/filter_store.h"
#include "lib/clock.h"
#include "lib/config.h"
#include "lib/env.h"
#include "lib/header.h"
#include "lib/io_worker.h"
#include "lib/log.h"
#include "queue/queue.h"
#include "smtp/smtp_session_int.h"

struct smtp_filter_copy {
	struct smtp_rcpt *rcpts;
	size_t n;
	struct buf msg; /* the changed message, when modified */
	int modified;
	enum queue_name queue; /* active, hold or bad */
	char reason[QUEUE_REASON_MAX];
	const struct filter_outcome *o;
};

/* A note, composed and queued by the commit (delivery/notice.c). */
struct smtp_filter_note {
	struct smtp_rcpt *rcpts; /* resolved on the filter's worker */
	size_t n;
	char *from, *subject, *text; /* expanded; owned */
	int attach;		     /* the original as message/rfc822 */
};

struct smtp_filter_plan {
	struct smtp_filter_copy *copies;
	size_t ncopies;
	struct smtp_filter_note *notes;
	size_t nnotes;
	/* Filled by the commit: ids to hand to delivery. */
	char (*ids)[QUEUE_ID_SIZE];
	size_t nids;
};

struct smtp_filter_job {
	struct smtp_session *s;
	struct filter_set *set;
	struct smtp_rcpt *rcpts;
	struct filter_rcpt *frcpts;
	size_t nrcpt;
	char sender[ADDR_FORMAT_SIZE];
	char auth[DIRECTORY_ADDRESS_MAX + 1];
	char ip[64];
	char hostname[256];
	char message_id[256];
	const char *msg; /* the whole message: view */
	size_t len;
	struct smtp_view view;
	double spam_score;
	int spam_scored;
	struct filter_result res;
	int failed;
	char error[300];
	struct smtp_filter_plan *plan;
};

/* The rules in force, for the sessions of every loop: replaced by loop 0,
 * taken with a reference by a message as it reaches the filter. */
static pthread_mutex_t smtp_filter_lock = PTHREAD_MUTEX_INITIALIZER;
static struct filter_set *smtp_filter_current;

void smtp_filter_install(struct filter_set *set)
{
	struct filter_set *old;

	if (set != NULL)
		filter_set_ref(set);
	pthread_mutex_lock(&smtp_filter_lock);
	old = smtp_filter_current;
	smtp_filter_current = set;
	pthread_mutex_unlock(&smtp_filter_lock);
	filter_set_unref(old);
}

/* The rules in force with a reference, or NULL. */
static struct filter_set *smtp_filter_get(void)
{
	struct filter_set *set;

	pthread_mutex_lock(&smtp_filter_lock);
	set = smtp_filter_current;
	if (set != NULL)
		filter_set_ref(set);
	pthread_mutex_unlock(&smtp_filter_lock);
	return set;
}

void smtp_filter_plan_free(struct smtp_filter_plan *p)
{
	if (p == NULL)
		return;
	for (size_t i = 0; i < p->ncopies; i++) {
		free(p->copies[i].rcpts);
		buf_deinit(&p->copies[i].msg);
	}
	free(p->copies);
	for (size_t i = 0; i < p->nnotes; i++) {
		free(p->notes[i].rcpts);
		free(p->notes[i].from);
		free(p->notes[i].subject);
		free(p->notes[i].text);
	}
	free(p->notes);
	free(p->ids);
	free(p);
}

/* Appends a recipient to a list unless it is there. Returns 0 or -1. */
static int smtp_filter_add_rcpt(struct smtp_rcpt **v, size_t *n,
				const struct smtp_rcpt *r)
{
	struct smtp_rcpt *nv;

	for (size_t i = 0; i < *n; i++)
		if (strcasecmp((*v)[i].addr, r->addr) == 0)
			return 0;
	nv = realloc(*v, (*n + 1) * sizeof(*nv));
	if (nv == NULL)
		return -1;
	*v = nv;
	nv[(*n)++] = *r;
	return 0;
}

/* Fills r for an address (local when it resolves to an account here).
 * Returns 1, 0 when it is not usable (local domain, no such account). */
static int smtp_filter_target(struct directory *d, const char *addr,
			      int need_local, struct smtp_rcpt *r)
{
	const char *at = strrchr(addr, '@'), *err;
	int local;

	memset(r, 0, sizeof(*r));
	if (at == NULL || strlen(addr) >= sizeof(r->addr))
		return 0;
	snprintf(r->addr, sizeof(r->addr), "%s", addr);
	local = d != NULL && directory_domain_exists(d, at + 1) == 1;
	if (local) {
		if (directory_resolve(d, addr, r->account, &err) != 1)
			return 0;
		r->local = 1;
		return 1;
	}
	return need_local ? 0 : 1;
}

/* The copy of outcome o, made if new. NULL on ENOMEM. */
static struct smtp_filter_copy *
smtp_filter_copy_for(struct smtp_filter_plan *p, const struct filter_outcome *o)
{
	struct smtp_filter_copy *v, *c;

	for (size_t i = 0; i < p->ncopies; i++)
		if (filter_outcome_same(p->copies[i].o, o))
			return &p->copies[i];
	v = realloc(p->copies, (p->ncopies + 1) * sizeof(*v));
	if (v == NULL)
		return NULL;
	p->copies = v;
	c = &v[p->ncopies++];
	memset(c, 0, sizeof(*c));
	c->o = o;
	c->queue = o->bad ? QUEUE_BAD : o->hold ? QUEUE_HOLD : QUEUE_ACTIVE;
	snprintf(c->reason, sizeof(c->reason), "%s", o->reason);
	buf_init(&c->msg, 0);
	return c;
}

/* Calls fn for each address of a "a,b" list. */
static int smtp_filter_each(const char *list, struct directory *d,
			    struct smtp_filter_copy *c, const char *sid,
			    int *added_r)
{
	char one[ADDR_FORMAT_SIZE];
	const char *s = list;

	while (*s != '\0') {
		size_t n;
		struct smtp_rcpt r;

		s += strspn(s, ", ");
		n = strcspn(s, ", ");
		if (n == 0)
			break;
		snprintf(one, sizeof(one), "%.*s", (int)n, s);
		s += n;
		if (!smtp_filter_target(d, one, 1, &r)) {
			char q[120];

			log_write(LOG_SMTP_IN, sid, LOG_EVENT,
				  "filter: %s is no local account, skipped",
				  log_sanitize(q, sizeof(q), one, strlen(one)));
			continue;
		}
		if (smtp_filter_add_rcpt(&c->rcpts, &c->n, &r) < 0)
			return -1;
		(*added_r)++;
	}
	return 0;
}

/* Builds the plan from the result (worker thread). Returns 0 or -1. */
static int smtp_filter_plan_make(struct smtp_filter_job *j, struct directory *d)
{
	struct smtp_filter_plan *p = calloc(1, sizeof(*p));

	if (p == NULL)
		return -1;
	j->plan = p;
	for (size_t k = 0; k < j->nrcpt; k++) {
		const struct filter_outcome *o = &j->res.out[k];
		struct smtp_filter_copy *c;
		int added = 0;

		if (o->deleted)
			continue;
		c = smtp_filter_copy_for(p, o);
		if (c == NULL)
			return -1;
		if (o->redirect.len > 0) {
			if (smtp_filter_each(buf_cstr(&o->redirect), d, c,
					     j->s->id, &added) < 0)
				return -1;
			if (added == 0) {
				/* Nowhere to go: hold it rather than lose. */
				struct filter_outcome *w =
					(struct filter_outcome *)o;
				w->hold = 1;
				snprintf(w->reason, sizeof(w->reason),
					 "content filter: no redirect target "
					 "exists");
				c = smtp_filter_copy_for(p, o);
				if (c == NULL ||
				    smtp_filter_add_rcpt(&c->rcpts, &c->n,
							 &j->rcpts[k]) < 0)
					return -1;
			}
		} else if (smtp_filter_add_rcpt(&c->rcpts, &c->n,
						&j->rcpts[k]) < 0) {
			return -1;
		}
		if (o->copies.len > 0 &&
		    smtp_filter_each(buf_cstr(&o->copies), d, c, j->s->id,
				     &added) < 0)
			return -1;
	}
	for (size_t i = 0; i < p->ncopies; i++) {
		struct smtp_filter_copy *c = &p->copies[i];

		if (c->o->edits.len == 0 && !c->o->strip)
			continue;
		buf_init(&c->msg, j->len + 2 * 1024 * 1024);
		if (filter_outcome_apply(c->o, j->msg, j->len, &c->msg) < 0)
			return -1;
		c->modified = 1;
	}
	for (size_t i = 0; i < j->res.nnotes; i++) {
		struct filter_note *fn = &j->res.notes[i];
		struct smtp_filter_note *v, *n;
		const char *s = fn->to;

		v = realloc(p->notes, (p->nnotes + 1) * sizeof(*v));
		if (v == NULL)
			return -1;
		p->notes = v;
		n = &v[p->nnotes++];
		memset(n, 0, sizeof(*n));
		/* Taken over from the result, which the job frees. */
		n->from = fn->from;
		n->subject = fn->subject;
		n->text = fn->text;
		fn->from = fn->subject = fn->text = NULL;
		n->attach = fn->attach;
		/* The note's To: names them all: at most NOTICE_TO_MAX. */
		while (*s != '\0' && n->n < NOTICE_TO_MAX) {
			char one[ADDR_FORMAT_SIZE];
			struct smtp_rcpt r;
			size_t len;

			s += strspn(s, ", ");
			len = strcspn(s, ", ");
			if (len == 0)
				break;
			snprintf(one, sizeof(one), "%.*s", (int)len, s);
			s += len;
			if (smtp_filter_target(d, one, 0, &r) &&
			    smtp_filter_add_rcpt(&n->rcpts, &n->n, &r) < 0)
				return -1;
		}
	}
	return 0;
}

/* What the rules may ask about the job's message, with directory d for
 * the groups. primary: the primary domain, for macros ("" when the
 * caller needs none). */
static void smtp_filter_facts(const struct smtp_filter_job *j,
			      struct directory *d, const char *primary,
			      struct filter_facts *f)
{
	memset(f, 0, sizeof(*f));
	f->sender = j->sender;
	f->auth = j->auth;
	f->client_ip = j->ip;
	f->msg = j->msg;
	f->len = j->len;
	f->message_id = j->message_id;
	f->primary_domain = primary;
	f->spam_score = j->spam_score;
	f->spam_scored = j->spam_scored;
	f->now = clock_now();
	f->is_member = filter_store_is_member;
	f->ctx = d;
}

static void smtp_filter_work(void *thread_state, void *arg)
{
	struct smtp_filter_job *j = arg;
	struct env_thread *t = thread_state;
	struct directory *d = t != NULL ? t->dir : NULL;
	struct filter_facts f;
	char primary[256] = "";

	smtp_test_slow_job("FILTER");
	if (d == NULL) {
		j->failed = 1;
		snprintf(j->error, sizeof(j->error), "no directory handle");
		return;
	}
	filter_store_primary_domain(d, primary, sizeof(primary));
	smtp_filter_facts(j, d, primary, &f);
	if (filter_eval(j->set, &f, j->frcpts, j->nrcpt, &j->res) < 0) {
		j->failed = 1;
		snprintf(j->error, sizeof(j->error), "%s", j->res.error);
		return;
	}
	if (j->res.reject)
		return;
	if (smtp_filter_plan_make(j, d) < 0) {
		smtp_filter_plan_free(j->plan);
		j->plan = NULL;
		j->failed = 1;
		snprintf(j->error, sizeof(j->error),
			 "out of memory carrying out the rules");
	}
}

static void smtp_filter_job_free(struct smtp_filter_job *j)
{
	smtp_view_close(&j->view);
	filter_result_deinit(&j->res);
	filter_set_unref(j->set);
	smtp_filter_plan_free(j->plan);
	free(j->rcpts);
	free(j->frcpts);
	free(j);
}

/* A plan that changes nothing needs no special commit. */
static int smtp_filter_plan_trivial(const struct smtp_filter_job *j)
{
	const struct filter_outcome *o;

	if (j->res.nnotes > 0)
		return 0;
	for (size_t k = 0; k < j->nrcpt; k++) {
		o = &j->res.out[k];
		if (o->deleted || o->hold || o->bad || o->strip ||
		    o->edits.len > 0 || o->redirect.len > 0 ||
		    o->copies.len > 0)
			return 0;
	}
	return 1;
}

static void smtp_filter_done(void *arg)
{
	struct smtp_filter_job *j = arg;
	struct smtp_session *s = j->s;
	const struct filter_rules *rules = filter_set_rules(j->set);
	char mid[300];

	s->jobs--;
	if (smtp_stage_gone(s)) {
		smtp_filter_job_free(j);
		return;
	}
	log_sanitize(mid, sizeof(mid), j->message_id, strlen(j->message_id));
	for (size_t i = 0; !j->failed && i < j->res.nfired; i++) {
		const struct filter_fired *fd = &j->res.fired[i];
		char name[FILTER_NAME_MAX * 4 + 8];

		log_sanitize(name, sizeof(name), rules->v[fd->rule].name,
			     strlen(rules->v[fd->rule].name));
		smtp_session_log(s, LOG_EVENT,
				 "filter rule \"%s\" fired for %zu "
				 "recipient%s: %s; Message-ID: %s",
				 name, fd->nrcpt, fd->nrcpt == 1 ? "" : "s",
				 fd->actions, mid[0] != '\0' ? mid : "none");
	}
	if (j->failed) {
		/* Hold it, with the reason: never lose a message because the
		 * filter could not decide. */
		struct smtp_filter_plan *p = calloc(1, sizeof(*p));
		struct smtp_filter_copy *c =
			p != NULL ? calloc(1, sizeof(*c)) : NULL;

		smtp_session_log(s, LOG_EVENT,
				 "filter failed: %s; the message is held",
				 j->error);
		if (c == NULL) {
			free(p);
			smtp_filter_job_free(j);
			smtp_session_refuse(
				s, "451 4.3.0 Temporary filter failure",
				"filter failed");
			return;
		}
		c->rcpts = j->rcpts;
		c->n = j->nrcpt;
		j->rcpts = NULL;
		c->queue = QUEUE_HOLD;
		snprintf(c->reason, sizeof(c->reason),
			 "content filter failed: %s", j->error);
		buf_init(&c->msg, 0);
		p->copies = c;
		p->ncopies = 1;
		smtp_filter_plan_free(s->tx->filter_plan);
		s->tx->filter_plan = p;
	} else if (j->res.reject) {
		char reason[600], reply[512];

		snprintf(reply, sizeof(reply), "%s", j->res.reply);
		snprintf(reason, sizeof(reason), "content filter: %s", reply);
		smtp_filter_job_free(j);
		smtp_session_refuse(s, reply, reason);
		return;
	} else if (!smtp_filter_plan_trivial(j)) {
		smtp_filter_plan_free(s->tx->filter_plan);
		s->tx->filter_plan = j->plan;
		j->plan = NULL;
	}
	smtp_filter_job_free(j);
	smtp_stage_next(s);
}

/*
 * Rules that ask only about the envelope, the size, the client and
 * groups (the 2 MB recipe) are decided on the loop, with its directory
 * handle, when none of them fires: the message goes on unchanged, as the
 * worker would have let it, one thread hand-off sooner. Anything else
 * (a rule fires, one reads the message, an error) goes to the worker,
 * which evaluates again and carries the actions out. Returns 1 when the
 * message goes on unchanged.
 */
static int smtp_filter_quick(struct smtp_filter_job *j, struct directory *d)
{
	struct filter_facts f;
	int r;

	if (d == NULL || filter_set_reads_content(j->set))
		return 0;
	smtp_filter_facts(j, d, "", &f);
	r = filter_eval(j->set, &f, j->frcpts, j->nrcpt, &j->res) == 0 &&
	    j->res.nfired == 0 && !j->res.reject && j->res.nnotes == 0;
	filter_result_deinit(&j->res);
	memset(&j->res, 0, sizeof(j->res));
	return r;
}

void smtp_stage_filter(struct smtp_session *s)
{
	struct smtp_filter_job *j;
	struct filter_set *set;
	const struct filter_rules *rules;
	struct header_field h;
	size_t pos = 0, enabled = 0;

	set = smtp_filter_get();
	if (set == NULL) {
		smtp_stage_next(s);
		return;
	}
	rules = filter_set_rules(set);
	for (size_t i = 0; i < rules->n; i++)
		enabled += rules->v[i].enabled != 0;
	j = enabled == 0 ? NULL : calloc(1, sizeof(*j));
	if (j == NULL) {
		filter_set_unref(set);
		if (enabled == 0) {
			smtp_stage_next(s);
			return;
		}
		goto nomem;
	}
	j->s = s;
	j->set = set; /* the job's reference */
	j->nrcpt = s->tx->nrcpt;
	j->rcpts = malloc((s->tx->nrcpt + 1) * sizeof(*j->rcpts));
	j->frcpts = malloc((s->tx->nrcpt + 1) * sizeof(*j->frcpts));
	if (j->rcpts == NULL || j->frcpts == NULL) {
		smtp_filter_job_free(j);
		goto nomem;
	}
	memcpy(j->rcpts, s->tx->rcpts, s->tx->nrcpt * sizeof(*j->rcpts));
	for (size_t i = 0; i < s->tx->nrcpt; i++) {
		j->frcpts[i].address = j->rcpts[i].addr;
		j->frcpts[i].local = j->rcpts[i].local;
	}
	snprintf(j->sender, sizeof(j->sender), "%s", s->tx->sender);
	snprintf(j->auth, sizeof(j->auth), "%s", s->auth);
	snprintf(j->ip, sizeof(j->ip), "%s", s->ip);
	/* Set by the spam stage, which runs before this one. */
	j->spam_score = s->tx->spam_score;
	j->spam_scored = s->tx->spam_scored;
	snprintf(j->hostname, sizeof(j->hostname), "%s", s->env->cfg->hostname);
	while (header_next(buf_cstr(&s->tx->msg), s->tx->msg.len, &pos, &h) ==
	       1) {
		if (header_is(&h, "Message-ID")) {
			header_unfold(&h, j->message_id, sizeof(j->message_id));
			break;
		}
	}
	/* The message stays in s->tx->msg (and s->tx->spill), untouched while the
	 * session waits. */
	if (smtp_view_open(&j->view, &s->tx->msg, &s->tx->spill) < 0) {
		char why[160];

		snprintf(why, sizeof(why), "cannot map the message: %s",
			 strerror(errno));
		smtp_filter_job_free(j);
		smtp_session_refuse(s, "451 4.3.0 Temporary filter failure",
				    why);
		return;
	}
	j->msg = j->view.data;
	j->len = j->view.len;
	if (smtp_filter_quick(j, s->env->dir)) {
		smtp_filter_job_free(j);
		smtp_stage_next(s);
		return;
	}
	smtp_stage_wait(s);
	s->jobs++;
	if (io_workers_submit(s->env->workers, smtp_filter_work,
			      smtp_filter_done, j) < 0) {
		s->jobs--;
		smtp_filter_job_free(j);
		goto nomem;
	}
	return;
nomem:
	smtp_session_refuse(s, "451 4.3.1 Insufficient system storage",
			    "out of memory");
}

/* --- the commit --- */

static int smtp_filter_add_id(struct smtp_filter_plan *p, const char *id)
{
	char(*v)[QUEUE_ID_SIZE] = realloc(p->ids, (p->nids + 1) * sizeof(*v));

	if (v == NULL)
		return -1;
	p->ids = v;
	snprintf(v[p->nids++], QUEUE_ID_SIZE, "%.*s", QUEUE_ID_LEN, id);
	return 0;
}

/* Splits a note's From ("a@x" or "Name <a@x>") into display name and
 * address. */
static void smtp_filter_from(const char *from, char *name, size_t nsize,
			     char *addr, size_t asize)
{
	const char *lt = strrchr(from, '<'), *gt;

	name[0] = '\0';
	snprintf(addr, asize, "%s", from);
	if (lt == NULL || (gt = strchr(lt, '>')) == NULL)
		return;
	snprintf(addr, asize, "%.*s", (int)(gt - lt - 1), lt + 1);
	while (lt > from && lt[-1] == ' ')
		lt--;
	if (*from == '"' && lt > from + 1 && lt[-1] == '"')
		snprintf(name, nsize, "%.*s", (int)(lt - from - 2), from + 1);
	else
		snprintf(name, nsize, "%.*s", (int)(lt - from), from);
}

/* Queues one note from the null sender, listener "filter-note" (so that
 * counters and the filter itself skip it). Returns 1, 0 when it had no
 * recipient, -1 on error. */
static int smtp_filter_queue_note(struct smtp_commit *c,
				  const struct smtp_filter_note *fn, char *id_r)
{
	struct queue_rcpt qr[NOTICE_TO_MAX];
	struct notice n;
	struct smtp_view view;
	char name[256], from[ADDR_FORMAT_SIZE];
	const char *err;
	int queued;

	if (fn->n == 0)
		return 0;
	memset(&view, 0, sizeof(view));
	memset(&n, 0, sizeof(n));
	memset(qr, 0, sizeof(qr));
	smtp_filter_from(fn->from, name, sizeof(name), from, sizeof(from));
	n.hostname = c->hostname;
	n.from = from;
	n.from_name = name[0] != '\0' ? name : NULL;
	for (size_t i = 0; i < fn->n && i < NOTICE_TO_MAX; i++) {
		const struct smtp_rcpt *r = &fn->rcpts[i];

		n.to[n.nto++] = r->addr;
		qr[i].address = r->addr;
		qr[i].mailbox = r->local ? r->account : "";
		qr[i].kind = r->local ? QUEUE_RCPT_LOCAL : QUEUE_RCPT_REMOTE;
		qr[i].status = QUEUE_RCPT_PENDING;
		qr[i].error = "";
	}
	n.subject = fn->subject;
	n.text = fn->text;
	if (fn->attach) {
		struct smtp_spill sp;

		/* The original, header and body (smtp_spill.h). */
		smtp_spill_init(&sp);
		sp.fd = c->body_fd;
		sp.len = c->body_len;
		if (smtp_view_open(&view, &c->msg, &sp) < 0) {
			log_write(LOG_SMTP_IN, c->session_id, LOG_EVENT,
				  "filter: cannot queue a note: cannot map "
				  "the message: %s",
				  strerror(errno));
			return -1;
		}
		n.attach = view.data;
		n.attach_len = view.len;
	}
	n.listener = "filter-note";
	n.now = c->now;
	queued = notice_queue_rcpts(c->queue, &n, qr, n.nto, id_r, &err);
	if (queued != 1)
		log_write(LOG_SMTP_IN, c->session_id, LOG_EVENT,
			  "filter: cannot queue a note: %s", err);
	smtp_view_close(&view);
	return queued == 1 ? 1 : -1;
}

void smtp_filter_commit(void *thread_state, struct smtp_commit *c)
{
	struct smtp_filter_plan *p = c->filter_plan;

	c->ok = 0;
	c->queue_id[0] = '\0';
	for (size_t i = 0; i < p->ncopies; i++) {
		struct smtp_filter_copy *cp = &p->copies[i];
		struct smtp_commit one = *c;

		one.filter_plan = NULL;
		one.rcpts = cp->rcpts;
		one.nrcpt = cp->n;
		one.into = cp->queue;
		one.reason = cp->reason;
		if (cp->modified) {
			/* The changed message is whole in memory. */
			one.msg = cp->msg;
			one.body_fd = -1;
			one.body_len = 0;
		}
		if (cp->n == 0)
			continue;
		smtp_commit_work(thread_state, &one);
		if (!one.ok) {
			snprintf(c->error, sizeof(c->error), "%s", one.error);
			return;
		}
		if (c->queue_id[0] == '\0') {
			snprintf(c->queue_id, sizeof(c->queue_id), "%s",
				 one.queue_id);
			snprintf(c->message_id, sizeof(c->message_id), "%s",
				 one.message_id);
		}
		if (cp->queue != QUEUE_ACTIVE) {
			/* Committed into hold/ or bad/ directly: nothing to
			 * deliver. */
			log_write(LOG_SMTP_IN, c->session_id, LOG_EVENT,
				  "filter: %s put into %s (%s)", one.queue_id,
				  queue_name_str(cp->queue), cp->reason);
			continue;
		}
		if (smtp_filter_add_id(p, one.queue_id) < 0) {
			snprintf(c->error, sizeof(c->error), "out of memory");
			return;
		}
	}
	for (size_t i = 0; i < p->nnotes; i++) {
		char id[QUEUE_ID_SIZE];
		int r = smtp_filter_queue_note(c, &p->notes[i], id);

		if (r > 0) {
			log_write(LOG_SMTP_IN, c->session_id, LOG_EVENT,
				  "filter: note queued as %s", id);
			smtp_filter_add_id(p, id);
		}
	}
	c->ok = 1;
}

void smtp_filter_announce(const struct smtp_commit *c, struct env *env)
{
	const struct smtp_filter_plan *p = c->filter_plan;

	if (env->message_queued == NULL)
		return;
	if (p == NULL) {
		env->message_queued(env, c->queue_id);
		return;
	}
	for (size_t i = 0; i < p->nids; i++)
		env->message_queued(env, p->ids[i]);
}
