/*
 * smtp_hijack: hijack detection in the SMTP session. The stage before the
 * commit counts the message of an authenticated account against its
 * window (policy/hijacking.c) and refuses it at the limit: 452 when
 * throttling, or 550 and the end of the session when the account is
 * frozen. It also carries out a postmaster's reply to an alert, whose
 * recipient (reactivate+TOKEN@domain) RCPT set aside.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "directory/directory.h"
#include "directory/settings.h"
#include "lib/clock.h"
#include "lib/env.h"
#include "lib/header.h"
#include "lib/log.h"
#include "policy/hijacking.h"
#include "smtp/smtp_session_int.h"

struct smtp_hijack_reply {
	char token[HIJACK_TOKEN_LEN + 1];
	char domain[ADDR_DOMAIN_MAX + 1];
};

void smtp_hijack_rcpt(struct smtp_session *s, char *token, const char *domain,
		      int may_reply)
{
	if (!may_reply) {
		log_write(LOG_SECURITY, s->id, LOG_EVENT,
			  "reply to a hijack alert refused: ip=%s account=%s "
			  "domain=%s: not the postmaster or an admin of the "
			  "domain",
			  s->ip, s->auth[0] != '\0' ? s->auth : "(none)",
			  domain);
		smtp_session_reply(s,
				   "550 5.7.1 Only the postmaster or an admin "
				   "of %s may re-activate its accounts",
				   domain);
		sodium_memzero(token, HIJACK_TOKEN_LEN + 1);
		return;
	}
	if (s->tx->hijack_reply != NULL) {
		smtp_session_reply(s,
				   "452 4.5.3 One re-activation per message");
		sodium_memzero(token, HIJACK_TOKEN_LEN + 1);
		return;
	}
	s->tx->hijack_reply = calloc(1, sizeof(*s->tx->hijack_reply));
	if (s->tx->hijack_reply == NULL) {
		smtp_session_reply(s, "452 4.3.1 Insufficient system storage");
		sodium_memzero(token, HIJACK_TOKEN_LEN + 1);
		return;
	}
	memcpy(s->tx->hijack_reply->token, token, HIJACK_TOKEN_LEN + 1);
	snprintf(s->tx->hijack_reply->domain,
		 sizeof(s->tx->hijack_reply->domain), "%s", domain);
	sodium_memzero(token, HIJACK_TOKEN_LEN + 1);
	smtp_session_reply(s, "250 2.1.5 Ok");
}

static void smtp_hijack_reply_done(void *arg, int ok, const char *text)
{
	struct smtp_session *s = arg;

	s->jobs--;
	if (smtp_stage_gone(s))
		return;
	if (!ok) {
		smtp_session_refuse(s, text, "reply to a hijack alert refused");
		return;
	}
	free(s->tx->hijack_reply);
	s->tx->hijack_reply = NULL;
	if (s->tx->nrcpt == 0) {
		smtp_session_answer(s, text,
				    "reply to a hijack alert carried out");
		return;
	}
	/* Other recipients: the message goes on to them. */
	smtp_session_log(s, LOG_EVENT, "reply to a hijack alert: %s", text);
	smtp_stage_hijack(s);
}

/* The subject and recipient domains of the message, for the alert. */
/* 1 when the domain d (n bytes) is in list, ", "-separated, len bytes. */
static int smtp_hijack_listed(const char *list, size_t len, const char *d,
			      size_t n)
{
	size_t start = 0;

	while (start < len) {
		const char *comma = memchr(list + start, ',', len - start);
		size_t end = comma != NULL ? (size_t)(comma - list) : len;

		if (end - start == n && strncasecmp(list + start, d, n) == 0)
			return 1;
		start = end + 2;
	}
	return 0;
}

static void smtp_hijack_describe(struct smtp_session *s,
				 struct hijack_event *ev)
{
	const char *msg = buf_cstr(&s->tx->msg);
	struct header_field h;
	size_t pos = 0, o = 0;

	while (header_next(msg, s->tx->msg.len, &pos, &h) == 1) {
		if (header_is(&h, "Subject")) {
			header_unfold(&h, ev->subject, sizeof(ev->subject));
			break;
		}
	}
	for (size_t i = 0; i < s->tx->nrcpt; i++) {
		const char *d = strrchr(s->tx->rcpts[i].addr, '@');
		size_t n;

		if (d == NULL)
			continue;
		d++;
		n = strlen(d);
		/* Looked up in the bounded list itself, not against every
		 * earlier recipient: linear in the recipients. */
		if (o + n + 3 > sizeof(ev->domains) ||
		    smtp_hijack_listed(ev->domains, o, d, n))
			continue;
		o += (size_t)snprintf(ev->domains + o, sizeof(ev->domains) - o,
				      "%s%s", o > 0 ? ", " : "", d);
	}
}

void smtp_stage_hijack(struct smtp_session *s)
{
	struct hijack_event *ev;
	struct hijack_tally t;
	enum hijack_result r;
	char word[32];

	if (s->tx->hijack_reply != NULL) {
		struct smtp_view view;

		/* A reply as large as a spilled message is read whole
		 * (hijack_reply_word reads its first 256 KB). */
		if (smtp_view_open(&view, &s->tx->msg, &s->tx->spill) == 0) {
			hijack_reply_word(view.data, view.len, word,
					  sizeof(word));
			smtp_view_close(&view);
		} else {
			hijack_reply_word(buf_cstr(&s->tx->msg), s->tx->msg.len,
					  word, sizeof(word));
		}
		smtp_stage_wait(s);
		s->jobs++;
		if (hijacking_reply(s->env, s->id, s->auth,
				    s->tx->hijack_reply->token,
				    s->tx->hijack_reply->domain, word,
				    smtp_hijack_reply_done, s) < 0) {
			s->jobs--;
			smtp_session_refuse(s,
					    "451 4.3.1 Insufficient system "
					    "storage",
					    "out of memory");
		}
		return;
	}
	if (s->auth[0] == '\0') {
		smtp_stage_next(s);
		return;
	}
	ev = calloc(1, sizeof(*ev));
	if (ev == NULL) {
		smtp_session_refuse(s, "451 4.3.1 Insufficient system storage",
				    "out of memory");
		return;
	}
	snprintf(ev->ip, sizeof(ev->ip), "%s", s->ip);
	ev->rcpts = (unsigned)s->tx->nrcpt;
	smtp_hijack_describe(s, ev);
	r = hijacking_check(s->env, s->auth, ev, clock_now_ms(), &t);
	if (r == HIJACK_OK) {
		if (ev->time != 0) {
			s->tx->hijack_ev = ev;
			smtp_session_log(s, LOG_EVENT,
					 "hijack window of %s: %u/%u messages, "
					 "%u/%u recipients, %u/%u client IPs",
					 s->auth, t.messages, t.max_messages,
					 t.recipients, t.max_recipients, t.ips,
					 t.max_ips);
		} else {
			free(ev);
		}
		smtp_stage_next(s);
		return;
	}
	free(ev);
	if (r == HIJACK_FROZEN) {
		smtp_session_log(s, LOG_EVENT,
				 "message refused: account %s is "
				 "frozen",
				 s->auth);
		smtp_session_close(s, "550 5.7.1 Account frozen: too many "
				      "messages; ask the postmaster");
		return;
	}
	if (strcmp(settings_str(smtp_session_settings(s),
				SETTING_HIJACK_ACTION),
		   "throttle") == 0) {
		char reason[600];

		snprintf(reason, sizeof(reason),
			 "hijack.%s limit of %s reached (%u messages, %u "
			 "recipients, %u client IPs in the window with this "
			 "message)",
			 r == HIJACK_OVER_MESSAGES     ? "max_messages"
			 : r == HIJACK_OVER_RECIPIENTS ? "max_recipients"
						       : "max_ips",
			 s->auth, t.messages, t.recipients, t.ips);
		smtp_session_refuse(s,
				    "452 4.7.1 Sending limit reached; try "
				    "again later",
				    reason);
		return;
	}
	hijacking_freeze(s->env, s->id, s->auth, s->ip, r, &t);
	smtp_session_log(s, LOG_EVENT,
			 "message refused: account %s frozen (too many %s)",
			 s->auth, hijack_result_str(r));
	smtp_session_close(s,
			   "550 5.7.1 Account frozen: too many %s; ask "
			   "the postmaster",
			   hijack_result_str(r));
}

int smtp_hijack_saved(struct smtp_session *s, int ok, const char *queue_id)
{
	int held = 0;

	if (s->tx->hijack_ev != NULL) {
		if (ok)
			hijacking_sent(s->env, s->auth, s->tx->hijack_ev);
		else
			hijacking_unsend(s->env, s->auth, s->tx->hijack_ev);
		free(s->tx->hijack_ev);
		s->tx->hijack_ev = NULL;
	}
	if (ok && s->auth[0] != '\0' && hijacking_frozen(s->env, s->auth)) {
		hijacking_hold(s->env, queue_id, s->auth);
		held = 1;
	}
	return held;
}

void smtp_hijack_reset(struct smtp_session *s)
{
	if (s->tx->hijack_ev != NULL) {
		hijacking_unsend(s->env, s->auth, s->tx->hijack_ev);
		free(s->tx->hijack_ev);
		s->tx->hijack_ev = NULL;
	}
	if (s->tx->hijack_reply != NULL) {
		sodium_memzero(s->tx->hijack_reply,
			       sizeof(*s->tx->hijack_reply));
		free(s->tx->hijack_reply);
		s->tx->hijack_reply = NULL;
	}
}
