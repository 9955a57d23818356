/* The spam score of a message: its parts, the thresholds, and the
 * X-Spam-* headers and subject tag it earns. Pure. */
#ifndef PETREL_SPAM_H
#define PETREL_SPAM_H

#include <stddef.h>

struct buf;

#define SPAM_TESTS_MAX 1536

/* What a message scored, and from which rules. */
struct spam_score {
	double score; /* DNSBL weights plus spamd's score */
	/* The rules, comma-separated: "DNSBL_zone" for each listing
	 * ("DNSBL_RCVD_zone" for a Received header's IP), then spamd's. */
	char tests[SPAM_TESTS_MAX];
};

/* Adds points and a rule name (or a comma-separated list of them) to s.
 * Names that do not fit are left out whole. */
void spam_score_add(struct spam_score *s, double points, const char *tests);

enum spam_verdict {
	SPAM_HAM,    /* below spam.tag_score */
	SPAM_TAG,    /* at or above spam.tag_score: flag and tag */
	SPAM_REJECT, /* at or above spam.reject_score: refuse (550 5.7.1) */
};

enum spam_verdict spam_verdict(double score, double tag_score,
			       double reject_score);

/*
 * Rewrites the header section of msg (a whole message, CRLF lines):
 * removes every X-Spam-* field that came with it, then adds
 * X-Spam-Flag: YES (tagged only), X-Spam-Score: S and X-Spam-Status:
 * Yes|No, score=S required=R tests=... (folded) at the end of the header
 * section; when tagged and subject_tag is not empty, the Subject gets
 * "TAG " in front (once: not again when it already starts with it), or a
 * Subject: TAG field when there was none. Returns 0, or -1 when the new
 * message does not fit msg's maximum (msg unchanged).
 */
int spam_headers_apply(struct buf *msg, const struct spam_score *s,
		       double required, int tagged, const char *subject_tag);

/* Removes the X-Spam-* fields only. Returns 0 or -1 as above. */
int spam_headers_strip(struct buf *msg);

#endif
