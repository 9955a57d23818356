/* The content filter's evaluation: a compiled rule set, run per recipient,
 * returning the actions to take. Pure (group membership is asked through a
 * callback). */
#ifndef PETREL_FILTER_EVAL_H
#define PETREL_FILTER_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include "filter/filter_rule.h"
#include "lib/buf.h"

/* PCRE2 bounds on one match (a hostile message cannot stall the server). */
#define FILTER_MATCH_LIMIT 2000000
#define FILTER_DEPTH_LIMIT 20000
#define FILTER_HEAP_LIMIT_KB 20000

/*
 * A compiled, immutable rule set: regular expressions compiled once,
 * networks parsed. Reference counted (atomically): the daemon swaps in a
 * new one when the rules change while workers finish with the old one.
 */
struct filter_set;

/* Compiles the rules, taking them over (*rules is left empty). Returns the
 * set (refcount 1), or NULL with error set (the rules are freed). */
struct filter_set *filter_set_new(struct filter_rules *rules, char *error,
				  size_t errsize);
void filter_set_ref(struct filter_set *s);
/* Drops a reference; frees at zero. Accepts NULL. */
void filter_set_unref(struct filter_set *s);
/* The rules, in order (owned by the set). */
const struct filter_rules *filter_set_rules(const struct filter_set *s);
/* 1 when an enabled rule looks at the message itself (a header, the
 * body, attachments): evaluating the set then walks the message. 0 when
 * it asks only about the envelope, the size, the client and groups. */
int filter_set_reads_content(const struct filter_set *s);

/* The facts of one message. Strings are never NULL. */
struct filter_facts {
	const char *sender; /* envelope sender, "" for <> */
	const char *auth;   /* authenticated account, "" when not */
	const char *client_ip;
	const char *msg; /* the message as received: header and body */
	size_t len;
	const char *message_id; /* "" when none yet */
	const char *primary_domain;
	double spam_score; /* valid when spam_scored */
	int spam_scored;
	int64_t now;
	/* 1 when address is a member of group, 0 when not (or no such
	 * group), -1 on error. */
	int (*is_member)(void *ctx, const char *group, const char *address);
	void *ctx;
};

struct filter_rcpt {
	const char *address;
	int local; /* inbound: delivered here */
};

/* What the rules decided for one recipient. */
struct filter_outcome {
	int deleted;
	int hold, bad; /* bad wins */
	int strip;     /* strip attachments */
	/* Header edits in order: "+Name: folded value\r\n" to add, "-Name\n"
	 * to remove every field of that name. */
	struct buf edits;
	struct buf redirect; /* "a@x,b@y": instead of the recipient */
	struct buf copies;   /* "a@x,b@y": in addition */
	char reason[256];    /* hold / bad: which rule */
	/* The indexes of the rules that fired, ',' separated text. */
	struct buf fired;
};

struct filter_note {
	size_t rule;
	char *to, *from, *subject, *text; /* expanded; owned */
	int attach;
	int to_sender; /* addressed to the envelope sender */
};

/* One rule that fired, for the log: once per message and rule. */
struct filter_fired {
	size_t rule;
	size_t nrcpt;	   /* recipients it fired for */
	char actions[300]; /* "delete, note" */
};

struct filter_result {
	size_t nrcpt;
	struct filter_outcome *out; /* one per recipient */
	/* Refuse the message at SMTP time (before the 250): reply is the
	 * whole reply line, without CRLF. */
	int reject;
	char reply[512];
	struct filter_note *notes;
	size_t nnotes;
	struct filter_fired *fired;
	size_t nfired;
	/* The filter could not decide (regex limit, lookup error, MIME
	 * limit): the message is to be held with this reason. */
	int failed;
	char error[256];
};

/*
 * Runs the enabled rules in order for each recipient: a rule whose scope
 * fits and whose conditions hold applies its actions for that recipient;
 * "skip N" passes over the next N rules, "stop", "delete" and "reject"
 * end the list. A note is made once per message and rule (its macros
 * from the first recipient it fired for) and never to the null sender.
 * When every recipient's message is deleted and a note tells the sender,
 * the result is a refusal instead (552 5.3.4 when a size condition
 * decided, else 550 5.7.1), and the note to the sender is dropped: the
 * sender's own server tells them, and we send no backscatter.
 * Returns 0 with *res filled (free with filter_result_deinit), or -1 with
 * res->failed and res->error set (then res holds no actions).
 */
int filter_eval(const struct filter_set *s, const struct filter_facts *f,
		const struct filter_rcpt *rcpts, size_t nrcpt,
		struct filter_result *res);
void filter_result_deinit(struct filter_result *res);

/*
 * Applies an outcome's header edits and attachment stripping to msg
 * (header and body, len bytes), writing the new message into out.
 * Returns 0, or -1 when out is full.
 */
int filter_outcome_apply(const struct filter_outcome *o, const char *msg,
			 size_t len, struct buf *out);

/* 1 when two outcomes give the same message to the same places (they can
 * share one copy), else 0. */
int filter_outcome_same(const struct filter_outcome *a,
			const struct filter_outcome *b);

#endif
