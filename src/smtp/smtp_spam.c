/*
 * smtp_spam: the session's spam controls. At connect, the client's IP is
 * looked up in the DNSBL zones (the greeting waits, within
 * dnsbl.timeout_ms); at RCPT, dnsbl.action reject refuses a listed client
 * that neither authenticated nor is trusted; at the end of DATA, the spam
 * stage adds up the DNSBL weights (and those of the Received headers'
 * IPs, with dnsbl.check_received) and spamd's score, logs why, refuses at
 * spam.reject_score, and otherwise writes X-Spam-* fields (and the
 * subject tag at spam.tag_score). The decisions are policy/dnsbl.c's and
 * policy/spam.c's; this file carries facts in and verdicts out.
 */
#include "smtp/smtp_spam.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "directory/settings.h"
#include "lib/buf.h"
#include "lib/clock.h"
#include "lib/env.h"
#include "lib/header.h"
#include "lib/log.h"
#include "lib/spamd.h"
#include "policy/dnsbl.h"
#include "policy/dnsbl_lookup.h"
#include "policy/policy.h"
#include "policy/spam.h"
#include "policy/trust.h"
#include "smtp/smtp_session_int.h"

struct smtp_spam {
	/* dnsbl.zones as the session started: results point into it.
	 * Both arrays are as long as the list (idle sessions stay small). */
	struct dnsbl_zone *zones;
	size_t nzones;
	/* The client's IP, one result per zone. */
	struct dnsbl_lookup *connect_q;
	struct dnsbl_result *results;
	size_t nresults;
	int exempt_logged; /* "listing ignored" said once */

	/* The stage. */
	struct dnsbl_lookup *rcvd_q;
	struct spamd_check *spamd_q;
	struct spam_score score;
	int scored;
	char reply[SMTP_REPLY_MAX];
	char reason[512];
};

static struct smtp_spam *smtp_spam_get(struct smtp_session *s)
{
	if (s->spam == NULL)
		s->spam = calloc(1, sizeof(*s->spam));
	return s->spam;
}

void smtp_spam_free(struct smtp_session *s)
{
	if (s->spam == NULL)
		return;
	dnsbl_lookup_cancel(s->spam->connect_q);
	dnsbl_lookup_cancel(s->spam->rcvd_q);
	spamd_check_cancel(s->spam->spamd_q);
	free(s->spam->zones);
	free(s->spam->results);
	free(s->spam);
	s->spam = NULL;
}

/* One transcript line per result. */
static void smtp_spam_log_result(struct smtp_session *s,
				 const struct dnsbl_zone *zones,
				 const struct dnsbl_result *r)
{
	const char *origin = r->received ? "Received header IP " : "";

	if (r->status == DNSBL_LISTED)
		smtp_session_log(
			s, LOG_EVENT,
			"DNSBL %s: %s%s listed (%s%s%s%s), weight %.1f%s",
			zones[r->zone].zone, origin, r->ip, r->answer,
			r->txt[0] != '\0' ? ", \"" : "", r->txt,
			r->txt[0] != '\0' ? "\"" : "", zones[r->zone].weight,
			r->cached ? " (cached)" : "");
	else
		smtp_session_log(s, LOG_EVENT, "DNSBL %s: %s%s %s%s%s%s",
				 zones[r->zone].zone, origin, r->ip,
				 dnsbl_status_name(r->status),
				 r->status == DNSBL_REFUSED ? " (" : "",
				 r->status == DNSBL_REFUSED ? r->answer : "",
				 r->status == DNSBL_REFUSED ? ")"
				 : r->cached		    ? " (cached)"
							    : "");
}

/* ---- at connect ---- */

static void smtp_spam_connect_cb(const struct dnsbl_result *results, size_t n,
				 void *arg)
{
	struct smtp_session *s = arg;
	struct smtp_spam *sp = s->spam;

	sp->connect_q = NULL;
	if (n > DNSBL_ZONES_MAX)
		n = DNSBL_ZONES_MAX;
	sp->results = n > 0 ? malloc(n * sizeof(*results)) : NULL;
	if (sp->results == NULL)
		n = 0;
	else
		memcpy(sp->results, results, n * sizeof(*results));
	sp->nresults = n;
	for (size_t i = 0; i < n; i++)
		smtp_spam_log_result(s, sp->zones, &results[i]);
	smtp_session_greet_ready(s);
}

void smtp_spam_connect(struct smtp_session *s)
{
	const struct settings *st = smtp_session_settings(s);
	const char *list = settings_str(st, SETTING_DNSBL_ZONES), *err = NULL;
	struct smtp_spam *sp;
	struct dnsbl_zone *zones;
	size_t n = 0;

	if (list[0] == '\0' || s->env->dns == NULL)
		return;
	sp = smtp_spam_get(s);
	if (sp == NULL)
		return;
	zones = malloc(DNSBL_ZONES_MAX * sizeof(*zones));
	if (zones == NULL)
		return;
	if (dnsbl_zones_parse(list, zones, DNSBL_ZONES_MAX, &n, &err) < 0 ||
	    n == 0) {
		/* The settings table checked it; a stale value is skipped. */
		if (err != NULL)
			log_warn("dnsbl.zones: %s", err);
		free(zones);
		return;
	}
	sp->zones = malloc(n * sizeof(*zones));
	if (sp->zones != NULL)
		memcpy(sp->zones, zones, n * sizeof(*zones));
	free(zones);
	if (sp->zones == NULL)
		return;
	sp->nzones = n;
	sp->connect_q = dnsbl_lookup_start(
		s->env->dns, s->env->loop, s->env->dnsbl_cache, sp->zones,
		sp->nzones, &s->peer, 1, 0,
		smtp_session_setting(s, SETTING_DNSBL_TIMEOUT_MS), clock_now(),
		smtp_spam_connect_cb, s);
}

int smtp_spam_connect_pending(const struct smtp_session *s)
{
	return s->spam != NULL && s->spam->connect_q != NULL;
}

/* ---- RCPT ---- */

const char *smtp_spam_check_rcpt(struct smtp_session *s,
				 const struct policy_facts *f,
				 const char **reason_r)
{
	struct smtp_spam *sp = s->spam;
	int reject;
	const char *reply;

	if (sp == NULL || sp->nresults == 0)
		return NULL;
	reject = strcmp(settings_str(smtp_session_settings(s),
				     SETTING_DNSBL_ACTION),
			"reject") == 0;
	reply = dnsbl_check_rcpt(f, reject, sp->zones, sp->nzones, sp->results,
				 sp->nresults, sp->reply, sizeof(sp->reply),
				 sp->reason, sizeof(sp->reason));
	if (reply != NULL) {
		*reason_r = sp->reason;
		return reply;
	}
	if (reject && !sp->exempt_logged && (f->auth != NULL || f->trusted) &&
	    dnsbl_weight(sp->zones, sp->nzones, sp->results, sp->nresults) !=
		    0) {
		sp->exempt_logged = 1;
		smtp_session_log(s, LOG_EVENT, "DNSBL listing not refused: %s",
				 f->auth != NULL ? "authenticated session"
						 : "trusted host");
	}
	return NULL;
}

/* ---- the stage ---- */

static void smtp_spam_spamd(struct smtp_session *s);
static void smtp_spam_finish(struct smtp_session *s);

/* The Message-ID, sanitized, for the score line: `petrelctl log search`
 * finds a refused message by it too. "" when there is none. */
static void smtp_spam_message_id(const struct smtp_session *s, char *out,
				 size_t size)
{
	struct header_field f;
	size_t pos = 0;
	char v[256];

	out[0] = '\0';
	while (header_next(buf_cstr(&s->tx->msg), s->tx->msg.len, &pos, &f) ==
	       1) {
		if (!header_is(&f, "Message-ID"))
			continue;
		log_sanitize(out, size, v, header_unfold(&f, v, sizeof(v)));
		return;
	}
}

/* Adds the listings of results (those with a weight) to the score. */
static void smtp_spam_add_dnsbl(struct smtp_spam *sp,
				const struct dnsbl_result *results, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct dnsbl_result *r = &results[i];
		char name[DNSBL_ZONE_MAX + 16];

		if (r->status != DNSBL_LISTED || r->zone >= sp->nzones)
			continue;
		snprintf(name, sizeof(name), "DNSBL_%s%s",
			 r->received ? "RCVD_" : "", sp->zones[r->zone].zone);
		spam_score_add(&sp->score, sp->zones[r->zone].weight, name);
	}
}

static void smtp_spam_rcvd_cb(const struct dnsbl_result *results, size_t n,
			      void *arg)
{
	struct smtp_session *s = arg;
	struct smtp_spam *sp = s->spam;

	sp->rcvd_q = NULL;
	if (smtp_stage_gone(s))
		return;
	for (size_t i = 0; i < n; i++)
		smtp_spam_log_result(s, sp->zones, &results[i]);
	smtp_spam_add_dnsbl(sp, results, n);
	smtp_spam_spamd(s);
}

static void smtp_spam_spamd_cb(const struct spamd_reply *r, const char *error,
			       void *arg)
{
	struct smtp_session *s = arg;
	struct smtp_spam *sp = s->spam;

	sp->spamd_q = NULL;
	if (smtp_stage_gone(s))
		return;
	if (r == NULL) {
		smtp_session_log(s, LOG_EVENT,
				 "spamd: %s; message not scored by spamd",
				 error);
	} else {
		smtp_session_log(s, LOG_EVENT,
				 "spamd: score %.1f (its own threshold %.1f), "
				 "rules %s",
				 r->score, r->threshold,
				 r->symbols[0] != '\0' ? r->symbols : "none");
		spam_score_add(&sp->score, r->score, r->symbols);
		sp->scored = 1;
	}
	smtp_spam_finish(s);
}

/* spamd's part, when spam.spamd names one and the message is not too
 * big for it. */
static void smtp_spam_spamd(struct smtp_session *s)
{
	const struct settings *st = smtp_session_settings(s);
	const char *addr = settings_str(st, SETTING_SPAM_SPAMD);
	struct smtp_spam *sp = s->spam;
	struct sockaddr_storage ss;
	struct smtp_view view;
	socklen_t len;
	size_t max = (size_t)settings_int(st, SETTING_SPAM_MAX_KB) * 1024;
	uint64_t size = smtp_spill_size(&s->tx->spill, &s->tx->msg);

	if (addr[0] == '\0') {
		smtp_spam_finish(s);
		return;
	}
	if (size > max) {
		smtp_session_log(s, LOG_EVENT,
				 "spamd: not asked, the message (%llu KB) is "
				 "over spam.max_kb (%zu KB); message not "
				 "scored by spamd",
				 (unsigned long long)(size + 1023) / 1024,
				 max / 1024);
		smtp_spam_finish(s);
		return;
	}
	if (spamd_parse_addr(addr, &ss, &len) < 0) {
		smtp_session_log(s, LOG_EVENT,
				 "spamd: bad spam.spamd; message not scored "
				 "by spamd");
		smtp_spam_finish(s);
		return;
	}
	/* spamd gets a copy of at most spam.max_kb: a large message is read
	 * through a mapping (smtp_spill.h). */
	if (smtp_view_open(&view, &s->tx->msg, &s->tx->spill) < 0) {
		smtp_session_log(s, LOG_EVENT,
				 "spamd: cannot map the message (%s); message "
				 "not scored by spamd",
				 strerror(errno));
		smtp_spam_finish(s);
		return;
	}
	sp->spamd_q = spamd_check_start(
		s->env->loop, (const struct sockaddr *)&ss, len, view.data,
		view.len, settings_int(st, SETTING_SPAM_TIMEOUT_MS),
		smtp_spam_spamd_cb, s);
	smtp_view_close(&view);
	if (sp->spamd_q == NULL) {
		smtp_session_log(s, LOG_EVENT,
				 "spamd: out of memory; message not scored "
				 "by spamd");
		smtp_spam_finish(s);
		return;
	}
	smtp_stage_wait(s);
}

/* The score is in: log it, then refuse, or mark the message and go on. */
static void smtp_spam_finish(struct smtp_session *s)
{
	const struct settings *st = smtp_session_settings(s);
	struct smtp_spam *sp = s->spam;
	double tag = settings_decimal(st, SETTING_SPAM_TAG_SCORE);
	double reject = settings_decimal(st, SETTING_SPAM_REJECT_SCORE);
	enum spam_verdict v;
	char mid[300], reason[SPAM_TESTS_MAX + 64];
	const char *tests;

	if (!sp->scored) {
		smtp_session_log(s, LOG_EVENT, "spam: message not scored");
		smtp_stage_next(s);
		return;
	}
	v = spam_verdict(sp->score.score, tag, reject);
	tests = sp->score.tests[0] != '\0' ? sp->score.tests : "none";
	smtp_spam_message_id(s, mid, sizeof(mid));
	smtp_session_log(s, LOG_EVENT,
			 "spam score %.1f (tag at %.1f, refuse at %.1f), "
			 "tests=%s%s%s: %s",
			 sp->score.score, tag, reject, tests,
			 mid[0] != '\0' ? ", Message-ID " : "", mid,
			 v == SPAM_REJECT ? "refused"
			 : v == SPAM_TAG  ? "tagged as spam"
					  : "accepted");
	s->tx->spam_scored = 1;
	s->tx->spam_score = sp->score.score;
	if (v == SPAM_REJECT) {
		snprintf(reason, sizeof(reason), "spam score %.1f, tests=%s",
			 sp->score.score, tests);
		smtp_session_refuse(s,
				    "550 5.7.1 Message refused: it looks like "
				    "spam",
				    reason);
		return;
	}
	if (spam_headers_apply(&s->tx->msg, &sp->score, tag, v == SPAM_TAG,
			       settings_str(st, SETTING_SPAM_SUBJECT_TAG)) <
	    0) {
		smtp_session_refuse(s, "451 4.3.1 Insufficient system storage",
				    "no room for the X-Spam-* headers");
		return;
	}
	smtp_stage_next(s);
}

void smtp_stage_spam(struct smtp_session *s)
{
	const struct settings *st = smtp_session_settings(s);
	int zones = settings_str(st, SETTING_DNSBL_ZONES)[0] != '\0';
	int spamd = settings_str(st, SETTING_SPAM_SPAMD)[0] != '\0';
	int auth = s->auth[0] != '\0';
	int trusted =
		policy_trust_host(s->env->trust, (struct sockaddr *)&s->peer);
	struct smtp_spam *sp;

	s->tx->spam_scored = 0;
	s->tx->spam_score = 0;
	if (!zones && !spamd) {
		smtp_stage_next(s);
		return;
	}
	if (auth && !settings_bool(st, SETTING_SPAM_SCORE_AUTHENTICATED)) {
		smtp_session_log(s, LOG_EVENT,
				 "spam: not scored, authenticated session");
		smtp_stage_next(s);
		return;
	}
	sp = smtp_spam_get(s);
	if (sp == NULL || spam_headers_strip(&s->tx->msg) < 0) {
		smtp_session_refuse(s, "451 4.3.1 Insufficient system storage",
				    "out of memory");
		return;
	}
	memset(&sp->score, 0, sizeof(sp->score));
	sp->scored = 0;
	/* DNSBL listings say nothing of an authenticated user's mail or of
	 * a trusted host's: they count for the others only. */
	if (sp->nzones > 0 && !auth && !trusted) {
		size_t nips;
		struct sockaddr_storage ips[DNSBL_IPS_MAX];

		sp->scored = 1;
		smtp_spam_add_dnsbl(sp, sp->results, sp->nresults);
		nips = settings_bool(st, SETTING_DNSBL_CHECK_RECEIVED)
			       ? dnsbl_received_ips(buf_cstr(&s->tx->msg),
						    s->tx->msg.len,
						    (struct sockaddr *)&s->peer,
						    ips, DNSBL_IPS_MAX)
			       : 0;
		if (nips > 0 && s->env->dns != NULL) {
			sp->rcvd_q = dnsbl_lookup_start(
				s->env->dns, s->env->loop, s->env->dnsbl_cache,
				sp->zones, sp->nzones, ips, nips, 1,
				settings_int(st, SETTING_DNSBL_TIMEOUT_MS),
				clock_now(), smtp_spam_rcvd_cb, s);
			if (sp->rcvd_q != NULL) {
				smtp_stage_wait(s);
				return;
			}
		}
	} else if (sp->nzones > 0) {
		smtp_session_log(
			s, LOG_EVENT, "spam: DNSBL weights not counted, %s",
			auth ? "authenticated session" : "trusted host");
	}
	smtp_spam_spamd(s);
}
