/*
 * Hijack detection, the pure part: per account, the messages, recipients
 * and client IPs of the sliding window, and the verdict on the next
 * message. Exact: every send and login is kept with its time until it
 * leaves the window, so no fixed bucket lets twice the limit through at a
 * boundary. Time is an argument (milliseconds); no I/O.
 */
#ifndef PETREL_HIJACK_H
#define PETREL_HIJACK_H

#include <stddef.h>
#include <stdint.h>

struct settings;
struct hijack;

#define HIJACK_IP_MAX 64
#define HIJACK_SUBJECT_MAX 128
#define HIJACK_DOMAINS_MAX 256

struct hijack_limits {
	int64_t window_ms;
	unsigned messages, recipients, ips;
	/* Sends and logins from reserved/private IPs: counted apart under
	 * these limits; 0 counts them with the others. */
	unsigned private_messages, private_recipients, private_ips;
};

/* One message an account sent. */
struct hijack_event {
	int64_t time;
	unsigned rcpts;
	int private_ip;
	char ip[HIJACK_IP_MAX];
	char subject[HIJACK_SUBJECT_MAX];
	char domains[HIJACK_DOMAINS_MAX]; /* ", "-separated */
};

/* One login (SMTP AUTH) of an account. */
struct hijack_login {
	int64_t time;
	int private_ip;
	char ip[HIJACK_IP_MAX];
};

enum hijack_result {
	HIJACK_OK,
	HIJACK_OVER_MESSAGES,
	HIJACK_OVER_RECIPIENTS,
	HIJACK_OVER_IPS,
	HIJACK_FROZEN, /* frozen already: refused without counting */
};

/* The counts of the class (private or not) a send was judged in, with
 * the message in question included, and the limits that applied. */
struct hijack_tally {
	unsigned messages, recipients, ips;
	unsigned max_messages, max_recipients, max_ips;
	int private_class;
};

struct hijack *hijack_new(void);
void hijack_free(struct hijack *h);

/* The limits of a settings snapshot. */
void hijack_limits_get(const struct settings *s, struct hijack_limits *l);
/* Is ip (text) reserved or private: 127/8, 10/8, 172.16/12, 192.168/16,
 * 169.254/16, 100.64/10, 0/8, ::1, fc00::/7, fe80::/10? */
int hijack_ip_private(const char *ip);
/* Is account exempt: a postmaster, or matching one of the list's
 * patterns (", "-separated, shell wildcards, case-insensitive)? */
int hijack_exempt(const char *list, const char *account);
/* "messages", "recipients", "client IPs", "frozen" */
const char *hijack_result_str(enum hijack_result r);

/* Records a login (also when loading the window at start). 0 or -1. */
int hijack_login(struct hijack *h, const char *account, const char *ip,
		 int private_ip, int64_t time);
/*
 * Judges the next message of account: with it, would the window exceed a
 * limit? HIJACK_OK records it (the caller takes it back with
 * hijack_unsend() if it is not accepted after all); anything else records
 * nothing. *t_r (may be NULL) gets the counts with the message included.
 * -1 (as a result) when out of memory.
 */
int hijack_send(struct hijack *h, const char *account,
		const struct hijack_event *ev, const struct hijack_limits *l,
		int64_t now, struct hijack_tally *t_r);
/* Records a send without judging it (loading the window at start). */
int hijack_record(struct hijack *h, const char *account,
		  const struct hijack_event *ev);
/* Takes back the send of account recorded at `time`. */
void hijack_unsend(struct hijack *h, const char *account, int64_t time);
/* The counts of account now, in the class of a send from a private IP or
 * not, without a new message. */
void hijack_tally(struct hijack *h, const char *account, int private_ip,
		  const struct hijack_limits *l, int64_t now,
		  struct hijack_tally *t_r);

/* Marks account frozen: every later hijack_send() answers HIJACK_FROZEN
 * until hijack_reset(). */
void hijack_freeze(struct hijack *h, const char *account, int64_t now);
int hijack_frozen(const struct hijack *h, const char *account);
/* Forgets the account's window and frozen mark (re-activation). */
void hijack_reset(struct hijack *h, const char *account);
/* Forgets what left the window; accounts with nothing left go. */
void hijack_expire(struct hijack *h, int64_t now, int64_t window_ms);

/* The account's sends and logins in memory, oldest first (valid until the
 * next call that changes h). Returns their number. */
size_t hijack_events(const struct hijack *h, const char *account,
		     const struct hijack_event **ev_r);
size_t hijack_logins(const struct hijack *h, const char *account,
		     const struct hijack_login **lg_r);

/* The recipient that carries a re-activation reply: reactivate+TOKEN@DOMAIN
 * (the alert's Reply-To). */
#define HIJACK_TOKEN_PREFIX "reactivate+"
#define HIJACK_TOKEN_LEN 26 /* 130 bits in lower-case base32 */

/* Writes a fresh random token (HIJACK_TOKEN_LEN characters and a NUL). */
void hijack_token_new(char token_r[HIJACK_TOKEN_LEN + 1]);
/* Its stored form: the hex BLAKE2b hash (65 bytes with the NUL). */
void hijack_token_hash(const char *token, char hash_r[65]);
/* Replaces, in a log line, every token after HIJACK_TOKEN_PREFIX by '*'. */
void hijack_token_redact(char *text);
/* Is address a re-activation recipient? 1 with the token and domain. */
int hijack_token_rcpt(const char *address, char token_r[HIJACK_TOKEN_LEN + 1],
		      char *domain_r, size_t domain_size);
/*
 * The order of a re-activation reply: the first word of the first line of
 * its text (the first text/plain part of a multipart message, decoded
 * from quoted-printable or base64), lower-case, into word_r. Quoted lines
 * ("> ...") are skipped. Returns 1, or 0 when the text is empty.
 */
int hijack_reply_word(const char *msg, size_t len, char *word_r, size_t size);

struct buf;

/* What the alert tells. */
struct hijack_alert {
	const char *account;
	const char *hostname;
	enum hijack_result why;
	struct hijack_tally tally;
	int64_t window_ms;
	int64_t now;	    /* seconds */
	int64_t last_login; /* seconds; 0: unknown */
	const struct hijack_event *ev;
	size_t nev;
	const struct hijack_login *lg;
	size_t nlg;
	size_t held;
	const char *reply_to;
	int64_t token_expires; /* seconds */
};

/* The alert's subject and text (UTF-8, LF line ends). 0 or -1 when out is
 * full. */
void hijack_alert_subject(const struct hijack_alert *a, char *out, size_t size);
int hijack_alert_text(const struct hijack_alert *a, struct buf *out);

#endif
