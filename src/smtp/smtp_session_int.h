/*
 * The SMTP session's insides, shared by smtp_session.c and the end-of-DATA
 * stages that live in their own files (spam scoring, content filter,
 * hijack detection). Nothing outside src/smtp/ includes this.
 */
#ifndef PETREL_SMTP_SESSION_INT_H
#define PETREL_SMTP_SESSION_INT_H

#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>

#include "directory/directory.h"
#include "directory/settings.h"
#include "lib/addr.h"
#include "lib/buf.h"
#include "lib/dns.h"
#include "lib/log.h"
#include "lib/sasl.h"
#include "smtp/smtp_commit.h"
#include "smtp/smtp_data.h"
#include "smtp/smtp_rcpt_set.h"
#include "smtp/smtp_session.h"
#include "smtp/smtp_spill.h"
#include "server/server_line.h"

struct io_timer;
struct smtp_filter_plan;
struct hijack_event;
struct smtp_hijack_reply;
struct smtp_lookup;

/*
 * At the end of DATA the message goes through these stages in order. A
 * stage either refuses the message (smtp_session_refuse) or hands it on
 * with smtp_stage_next(), at once or later from a callback; meanwhile the
 * session is SMTP_STATE_BUSY with its input paused. A stage that waits
 * (a worker job, a network answer) calls smtp_stage_gone() first when it
 * resumes: the client may have left, and then the session is freed there.
 */
enum smtp_stage {
	SMTP_STAGE_FROM,   /* the From: header against the sender rules */
	SMTP_STAGE_SPAM,   /* DNSBL weights and the spamd score */
	SMTP_STAGE_FILTER, /* the content filter */
	SMTP_STAGE_HIJACK, /* the sending account's window */
	SMTP_STAGE_COMMIT, /* stamp, spool durably, 250 */
	SMTP_STAGE_COUNT
};

/* RFC 4954 4: a SASL response line may be 12288 octets long. */
#define SMTP_AUTH_LINE_MAX 12288
/* The largest smtp.max_line the settings accept (settings.h): a command
 * line is copied into a buffer of this size, so a longer setting is
 * clamped to it (a unit test keeps the two equal). */
#define SMTP_LINE_LIMIT 65536
#define SMTP_REPLY_MAX 1024

enum smtp_state {
	SMTP_STATE_HANDSHAKE, /* TLS handshake running */
	SMTP_STATE_STARTTLS,  /* 220 for STARTTLS sent, waiting for flush */
	SMTP_STATE_COMMAND,   /* reading commands */
	SMTP_STATE_AUTH,      /* reading SASL responses */
	SMTP_STATE_DATA,      /* reading the message */
	SMTP_STATE_BUSY,      /* a worker job or a delay is running */
	SMTP_STATE_QUIT,      /* last reply sent, close once flushed */
};

enum smtp_sasl_step {
	SMTP_SASL_PLAIN,
	SMTP_SASL_LOGIN_USER,
	SMTP_SASL_LOGIN_PASS,
};

/*
 * One mail transaction (RFC 5321 3.3): made by a MAIL that is accepted,
 * freed at RSET, a new HELO/EHLO, or the reply to its DATA.
 */
struct smtp_tx {
	int local_unauth; /* local sender without AUTH: local rcpts only */
	char sender[ADDR_FORMAT_SIZE];
	struct smtp_rcpt *rcpts;
	size_t nrcpt, rcpt_cap;
	struct smtp_rcpt_set rcpt_set; /* the addresses in rcpts */
	struct smtp_data_reader reader;
	/* The message: whole, or past SMTP_SPILL_MEMORY bytes its header
	 * section, the rest in spill's scratch file (smtp_spill.h). The
	 * stages read and change the header section here. */
	struct buf msg;
	struct smtp_spill spill;
	/* The transaction reached DATA: its lines are written past the
	 * transcript limit (struct log_budget). */
	int log_released;

	/* The message's spam score, for the stages after the spam stage
	 * (the content filter): spam_scored is 0 when it was not scored. */
	int spam_scored;
	double spam_score;

	/* End of DATA: the stage the message is in (smtp_stage_next). */
	enum smtp_stage stage;
	int stage_async; /* a stage of this message waited */
	/* What the content filter decided (smtp_filter.c); NULL: nothing. */
	struct smtp_filter_plan *filter_plan;

	/* Hijack detection (smtp_hijack.c): the message's count until it is
	 * saved, and a reply to an alert named in RCPT. */
	struct hijack_event *hijack_ev;
	struct smtp_hijack_reply *hijack_reply;
};

struct smtp_session {
	struct smtp_server *srv;
	struct env *env;
	struct io *io;
	enum smtp_listener listener;
	enum smtp_state state;
	char id[24];
	char ip[INET6_ADDRSTRLEN];
	int port;
	struct sockaddr_storage peer;
	char local_addr[64];

	int helo_seen;
	int esmtp;
	char helo[256];
	char auth[DIRECTORY_ADDRESS_MAX + 1]; /* "" when not authenticated */

	enum smtp_sasl_step sasl;
	char sasl_mech[8];
	char sasl_user[SASL_FIELD_MAX];

	/* The transaction: from MAIL to the end of its DATA or RSET; NULL
	 * outside one. */
	struct smtp_tx *tx;
	/* The directory lookup of MAIL or RCPT (smtp_lookup.c), one at a
	 * time; NULL until the first. */
	struct smtp_lookup *lookup;

	unsigned errors;
	unsigned messages;
	uint64_t junk; /* NOOP, RSET, VRFY, HELP since the last message */
	/* The transcript's share of the logs (log.max_lines_per_session),
	 * and whether the last command traces mail (SMTP_F_TRACE): its
	 * replies are logged past the limit too. */
	struct log_budget log_budget;
	int log_trace;
	/* The last command starts a transaction (MAIL), and the transaction
	 * reached DATA: past the limit, its lines are held until then, and
	 * written from then on (struct log_budget). */
	int log_txn;
	struct server_line_reader line; /* command and SASL lines */
	int gone; /* connection closed while a job was running */
	/* Worker jobs that hold the session (AUTH, commit, filter, reply to
	 * a hijack alert): it is freed only when none is left. Not "no
	 * delay timer": a failed AUTH keeps one for the session's life. */
	unsigned jobs;
	int shutdown; /* close at the end of the transaction */
	struct io_timer *delay;
	char delayed_reply[SMTP_REPLY_MAX];
	/* Output over SMTP_OUTPUT_HIGH: input waits until it is written. */
	int draining;
	struct io_timer *stall; /* the write timeout */
	/* The state's timeout counted from the last whole line: bytes that
	 * trickle in restart the read timeout, not this (slowloris). */
	struct io_timer *deadline;

	/* The client's name (forward-confirmed reverse DNS), looked up
	 * while the connection starts; the greeting waits for it. */
	struct dns_query *rdns_q;
	struct io_timer *rdns_timer;
	int greet_waiting;
	int blocked;		 /* failed-login screening blocked the IP */
	char rdns[DNS_NAME_MAX]; /* "" when unknown */

	/* Spam controls (smtp_spam.c): DNSBL results of the client, looked
	 * up at connect (the greeting waits for them too), and the spam
	 * stage's work; NULL when there is none. */
	struct smtp_spam *spam;
};

/* Runs the next stage of the message (smtp_session.c). */
void smtp_stage_next(struct smtp_session *s);
/* Called by a stage before it waits: pauses the session's input. */
void smtp_stage_wait(struct smtp_session *s);
/* Called by a stage when its wait ends: returns 1 (and frees the session)
 * when the client is gone, 0 to go on. */
int smtp_stage_gone(struct smtp_session *s);

/* The stages, each in its own file. */
void smtp_stage_spam(struct smtp_session *s);
void smtp_stage_filter(struct smtp_session *s);
void smtp_stage_hijack(struct smtp_session *s);

/* Hijack detection's other hooks (smtp_hijack.c). RCPT to the reply
 * address of an alert of domain (token, wiped here; may_reply: the
 * session's account may re-activate accounts of the domain, as looked up
 * by smtp_lookup.c): answers the RCPT. */
void smtp_hijack_rcpt(struct smtp_session *s, char *token, const char *domain,
		      int may_reply);
/* The message was saved (ok) or not: records or takes back its count.
 * Returns 1 when it was moved to hold (its account froze meanwhile). */
int smtp_hijack_saved(struct smtp_session *s, int ok, const char *queue_id);
/* The transaction ends: forgets what smtp_hijack_* kept. */
void smtp_hijack_reset(struct smtp_session *s);

/* What the stages may use of the session (smtp_session.c). */
const struct settings *smtp_session_settings(const struct smtp_session *s);
int64_t smtp_session_setting(const struct smtp_session *s, enum settings_id id);
/* A transcript line: dir is LOG_EVENT, LOG_TO_PEER or LOG_FROM_PEER. */
void smtp_session_log(struct smtp_session *s, const char *dir, const char *fmt,
		      ...) __attribute__((format(printf, 3, 4)));
/* One reply line, logged. */
void smtp_session_reply(struct smtp_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Refuses the message under DATA with a reply and a logged reason, and
 * ends the transaction; the session reads commands again. */
void smtp_session_refuse(struct smtp_session *s, const char *reply,
			 const char *reason);
/* Ends the message under DATA with a reply other than the commit's, and a
 * logged event. */
void smtp_session_answer(struct smtp_session *s, const char *reply,
			 const char *event);
/* Refuses with a last reply and closes the session. */
void smtp_session_close(struct smtp_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Sends the greeting that waits for the connect-time lookups, once none
 * is left (smtp_session.c). */
void smtp_session_greet_ready(struct smtp_session *s);

#ifdef PETREL_SANITIZE
/* Test builds only: a worker job of the given kind ("AUTH", "COMMIT",
 * "FILTER") first sleeps PETREL_TEST_SLOW_<kind>_MS milliseconds when
 * that variable is set, so that a test can end the session while the job
 * runs. The release build has no such hook. */
void smtp_test_slow_job(const char *kind);
#else
#define smtp_test_slow_job(kind) ((void)0)
#endif

#endif
