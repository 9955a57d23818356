/*
 * smtp_commit: the worker half of accepting a message: stamp the trace
 * headers, write the message into the spool and commit it durably. Runs on
 * a worker thread, because the commit fsyncs; the 250 is sent only when it
 * returns success (DESIGN.md, "Spool and mailboxes").
 */
#include "smtp/smtp_commit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "queue/queue.h"
#include "smtp/smtp_filter.h"

#define SMTP_HEADER_ROOM (64 * 1024)

void smtp_commit_work(void *thread_state, void *arg)
{
	struct smtp_commit *c = arg;
	struct queue_writer *w;
	struct queue_rcpt *qr = NULL;
	struct queue_envelope env;
	struct smtp_stamp st;
	struct buf head;
	char subject[QUEUE_SUBJECT_MAX + 1];
	const char *err = NULL;
	enum queue_name to = c->into == QUEUE_HOLD || c->into == QUEUE_BAD
				     ? c->into
				     : QUEUE_ACTIVE;
	long body;

	if (c->filter_plan != NULL) {
		smtp_filter_commit(thread_state, c);
		return;
	}
	c->ok = 0;
	buf_init(&head, c->msg.len + SMTP_HEADER_ROOM);
	w = queue_writer_new(c->queue, &err);
	if (w == NULL) {
		snprintf(c->error, sizeof(c->error), "%s", err);
		goto out;
	}
	snprintf(c->queue_id, sizeof(c->queue_id), "%s", queue_writer_id(w));
	memset(&st, 0, sizeof(st));
	st.hostname = c->hostname;
	st.helo = c->helo;
	st.rdns = c->rdns;
	st.ip = c->ip;
	st.proto = c->proto;
	st.tls_info = c->tls_info;
	st.queue_id = c->queue_id;
	st.rcpt_for = c->nrcpt == 1 ? c->rcpts[0].addr : NULL;
	st.auth = c->auth;
	st.submission = c->submission;
	st.now = c->now;
	body = smtp_stamp_headers(&head, buf_cstr(&c->msg), c->msg.len, &st,
				  c->message_id, sizeof(c->message_id), subject,
				  sizeof(subject));
	if (body < 0) {
		snprintf(c->error, sizeof(c->error), "header too large");
		goto out;
	}
	if (queue_writer_write(w, head.data, head.len) < 0 ||
	    queue_writer_write(w, buf_cstr(&c->msg) + body,
			       c->msg.len - (size_t)body) < 0 ||
	    (c->body_fd >= 0 &&
	     queue_writer_copy(w, c->body_fd, c->body_len) < 0)) {
		snprintf(c->error, sizeof(c->error), "spool write failed");
		goto out;
	}
	qr = calloc(c->nrcpt, sizeof(*qr));
	if (qr == NULL) {
		snprintf(c->error, sizeof(c->error), "out of memory");
		goto out;
	}
	for (size_t i = 0; i < c->nrcpt; i++) {
		qr[i].address = c->rcpts[i].addr;
		qr[i].mailbox = c->rcpts[i].local ? c->rcpts[i].account : "";
		qr[i].kind = c->rcpts[i].local ? QUEUE_RCPT_LOCAL
					       : QUEUE_RCPT_REMOTE;
		qr[i].status = QUEUE_RCPT_PENDING;
		qr[i].error = "";
	}
	memset(&env, 0, sizeof(env));
	env.sender = c->sender;
	env.rcpts = qr;
	env.rcpt_count = c->nrcpt;
	env.received = c->now;
	env.client_ip = c->ip;
	env.client_port = (unsigned)c->port;
	env.helo = c->helo;
	env.listener = c->listener;
	env.protocol = c->proto;
	env.auth_account = c->auth;
	env.message_id = c->message_id;
	env.subject = subject;
	env.reason = to != QUEUE_ACTIVE ? c->reason : NULL;
	if (queue_writer_commit_to(w, &env, to, &err) != 1) {
		snprintf(c->error, sizeof(c->error), "%s", err);
		goto out;
	}
	c->ok = 1;
out:
	queue_writer_free(w);
	free(qr);
	buf_deinit(&head);
}

void smtp_commit_free(struct smtp_commit *c)
{
	if (c == NULL)
		return;
	free(c->rcpts);
	c->rcpts = NULL;
	smtp_filter_plan_free(c->filter_plan);
	c->filter_plan = NULL;
	buf_deinit(&c->msg);
	if (c->body_fd >= 0)
		close(c->body_fd);
	c->body_fd = -1;
}
