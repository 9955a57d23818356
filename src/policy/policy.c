/*
 * policy: every accept/refuse decision of an SMTP transaction, as pure
 * functions of its facts (DESIGN.md, "Rules of the house"), in the style of
 * Postfix's smtpd_check.c: a check returns NULL or the whole reply.
 *
 * The sender authentication rules (REFERENCE.md, "Sender authentication")
 * are settings; trusted hosts may relay without AUTH and are exempt from
 * the rules trusted.exempt_from names.
 */
#include "policy/policy.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "directory/settings.h"
#include "lib/addr.h"
#include "lib/addrlist.h"

static int policy_on(const struct policy_facts *f, enum settings_id id)
{
	return settings_bool(f->settings, id);
}

/* Is the trusted client exempt from the rule named like its setting? */
static int policy_exempt(const struct policy_facts *f, const char *rule)
{
	const char *p = settings_str(f->settings, SETTING_TRUSTED_EXEMPT_FROM);
	size_t n = strlen(rule);

	if (!f->trusted)
		return 0;
	/* A normalized list: "a, b, c". */
	while (*p != '\0') {
		size_t w = strcspn(p, ",");
		if (w == n && strncasecmp(p, rule, n) == 0)
			return 1;
		p += w;
		while (*p == ',' || *p == ' ')
			p++;
	}
	return 0;
}

/* Does the address belong to the authenticated account? */
static int policy_owns(const struct policy_facts *f, const char *account)
{
	return account != NULL && f->auth != NULL &&
	       strcasecmp(account, f->auth) == 0;
}

int policy_role_local_part(const char *local)
{
	static const char *const roles[] = {"postmaster", "abuse", "webmaster"};

	for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++)
		if (strcasecmp(local, roles[i]) == 0)
			return 1;
	return 0;
}

const char *policy_check_mail(const struct policy_facts *f,
			      const struct policy_sender *s,
			      int *local_unauth_r, const char **reason_r)
{
	*local_unauth_r = 0;
	/* RFC 6409 4.3: the submission ports take mail from authenticated
	 * users only. */
	if (f->submission && f->auth == NULL) {
		*reason_r = "unauthenticated MAIL on the submission port";
		return "530 5.7.0 Authentication required";
	}
	if (f->auth == NULL && f->local_ip && !f->trusted &&
	    policy_on(f, SETTING_AUTH_REQUIRE_FOR_LOCAL_IPS)) {
		*reason_r = "auth.require_for_local_ips: client in "
			    "trusted.local_networks without AUTH";
		return "530 5.7.0 Authentication required";
	}
	if (f->auth != NULL) {
		if (s->null) {
			if (policy_on(f, SETTING_AUTH_ALLOW_NULL_SENDER))
				return NULL;
			*reason_r = "null sender from an authenticated session "
				    "(auth.allow_null_sender is off)";
			return "550 5.7.1 Null sender not allowed for "
			       "authenticated senders";
		}
		if (policy_on(f, SETTING_AUTH_MATCH_RETURN_PATH) &&
		    !policy_exempt(f, "auth.match_return_path") &&
		    !policy_owns(f, s->account)) {
			*reason_r = "auth.match_return_path: MAIL FROM is not "
				    "the authenticated account or its alias";
			return "550 5.7.1 Sender address does not match "
			       "authenticated account";
		}
		return NULL;
	}
	if (s->null || !s->local)
		return NULL;
	if (policy_on(f, SETTING_AUTH_REQUIRE_FOR_ROLE_SENDERS) &&
	    !policy_exempt(f, "auth.require_for_role_senders") &&
	    policy_role_local_part(s->addr->local)) {
		*reason_r = "auth.require_for_role_senders: role sender "
			    "without AUTH";
		return "530 5.7.0 Authentication required";
	}
	if (policy_on(f, SETTING_AUTH_REQUIRE_FOR_LOCAL_SENDERS) &&
	    !policy_exempt(f, "auth.require_for_local_senders")) {
		if (policy_on(f, SETTING_AUTH_EXCEPT_TO_LOCAL)) {
			*local_unauth_r = 1;
			return NULL;
		}
		*reason_r = "auth.require_for_local_senders: local sender "
			    "without AUTH";
		return "530 5.7.0 Authentication required";
	}
	return NULL;
}

const char *policy_check_rcpt(const struct policy_facts *f,
			      const struct addr *rcpt, int rcpt_local,
			      int rcpt_exists, int local_unauth,
			      const char **reason_r)
{
	(void)rcpt;
	if (rcpt_local) {
		if (!rcpt_exists) {
			*reason_r = "no such local account or alias";
			return "550 5.1.1 No such user here";
		}
		return NULL;
	}
	/* auth.except_to_local lets a local sender without AUTH write to
	 * local recipients only. */
	if (local_unauth) {
		*reason_r = "auth.except_to_local: local sender without AUTH "
			    "to a remote recipient";
		return "530 5.7.0 Authentication required";
	}
	/* Never an open relay: only authenticated sessions and trusted
	 * hosts send out. */
	if (f->auth == NULL && !f->trusted) {
		*reason_r = "relay to a remote domain without authentication";
		return "550 5.7.1 Relaying denied: authentication required";
	}
	return NULL;
}

const char *policy_check_from(const struct policy_facts *f, int parsed,
			      const struct policy_from *from, size_t n,
			      const char **reason_r)
{
	if (f->auth == NULL) {
		if (!policy_on(f, SETTING_AUTH_REQUIRE_FOR_ROLE_SENDERS) ||
		    policy_exempt(f, "auth.require_for_role_senders") ||
		    !parsed)
			return NULL;
		for (size_t i = 0; i < n; i++) {
			if (from[i].local &&
			    policy_role_local_part(from[i].addr->local)) {
				*reason_r = "auth.require_for_role_senders: "
					    "From: a local role address "
					    "without AUTH";
				return "550 5.7.1 Authentication required "
				       "for this From: address";
			}
		}
		return NULL;
	}
	if (!policy_on(f, SETTING_AUTH_MATCH_FROM_HEADER) ||
	    policy_exempt(f, "auth.match_from_header"))
		return NULL;
	if (!parsed || n == 0) {
		*reason_r = "auth.match_from_header: no parsable From: header";
		return "550 5.7.1 Message needs one valid From: header";
	}
	for (size_t i = 0; i < n; i++) {
		if (!policy_owns(f, from[i].account)) {
			*reason_r = "auth.match_from_header: a From: address "
				    "is not the authenticated account or its "
				    "alias";
			return "550 5.7.1 From: header does not match "
			       "authenticated account";
		}
	}
	return NULL;
}

/* ---- From: fields as written ---- */

#define POLICY_DOMAIN_MAX 255	    /* RFC 1035 2.3.4 */
#define POLICY_DOMAIN_WINDOW 1024   /* bytes read after an "@" */
#define POLICY_FROM_ATS 1024	    /* "@"s looked at in all From: fields */
#define POLICY_FROM_VALUE_MAX 65536 /* bytes of one From: field */

enum policy_scan_verdict {
	POLICY_SCAN_CLEAN,
	POLICY_SCAN_LOCAL,    /* a local domain appears */
	POLICY_SCAN_TOO_MUCH, /* more than we look at: fail closed */
	POLICY_SCAN_LOOKUP,   /* is_local failed */
	POLICY_SCAN_NOMEM,
};

struct policy_scan {
	policy_local_domain_fn *is_local;
	void *ctx;
	char seen[POLICY_FROM_DOMAINS][POLICY_DOMAIN_MAX + 1];
	size_t nseen, nats;
	enum policy_scan_verdict verdict;
};

static int policy_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Skips white space, line ends and comments (nested, with quoted pairs):
 * RFC 5322 4.4 (obs-domain) lets CFWS stand around "@" and the dots of a
 * domain, and mail readers take it. */
static const char *policy_skip_cfws(const char *p, const char *end)
{
	size_t depth = 0;

	while (p < end) {
		if (*p == '(')
			depth++;
		else if (*p == ')' && depth > 0)
			depth--;
		else if (*p == '\\' && depth > 0 && p + 1 < end)
			p++;
		else if (depth == 0 && !policy_ws(*p))
			break;
		p++;
	}
	return p;
}

static int policy_label_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '_' || c >= 0x80;
}

/*
 * Reads the domain that follows an "@" (p is just after it) into out, lower
 * case: labels of letters, digits, "-", "_", 8-bit bytes and quoted pairs,
 * dots between them with CFWS around, trailing dots dropped; or a domain
 * literal. Returns its length: 0 when there is none or it is too long.
 */
static size_t policy_domain_at(const char *p, const char *end, char *out)
{
	size_t k = 0;

	if (end - p > POLICY_DOMAIN_WINDOW)
		end = p + POLICY_DOMAIN_WINDOW;
	p = policy_skip_cfws(p, end);
	if (p < end && *p == '[') {
		while (p < end && *p != ']' && k < POLICY_DOMAIN_MAX - 1)
			out[k++] = *p++;
		if (p == end || *p != ']')
			return 0;
		out[k++] = ']';
		out[k] = '\0';
		return k;
	}
	for (;;) {
		const char *q;

		while (p < end) {
			unsigned char c = (unsigned char)*p;

			if (c == '\\' && p + 1 < end &&
			    policy_label_char((unsigned char)p[1]))
				c = (unsigned char)*++p;
			if (!policy_label_char(c))
				break;
			if (k == POLICY_DOMAIN_MAX)
				return 0;
			out[k++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
			p++;
		}
		q = policy_skip_cfws(p, end);
		if (q == end || *q != '.')
			break;
		if (k == POLICY_DOMAIN_MAX)
			return 0;
		out[k++] = '.';
		p = policy_skip_cfws(q + 1, end);
	}
	while (k > 0 && out[k - 1] == '.')
		k--;
	out[k] = '\0';
	return k;
}

/* Looks the domain up once; sets the verdict when it is ours. */
static void policy_scan_domain(struct policy_scan *sc, const char *domain)
{
	int r;

	for (size_t i = 0; i < sc->nseen; i++)
		if (strcmp(sc->seen[i], domain) == 0)
			return;
	if (sc->nseen == POLICY_FROM_DOMAINS) {
		sc->verdict = POLICY_SCAN_TOO_MUCH;
		return;
	}
	snprintf(sc->seen[sc->nseen++], POLICY_DOMAIN_MAX + 1, "%s", domain);
	r = sc->is_local(sc->ctx, domain);
	if (r < 0)
		sc->verdict = POLICY_SCAN_LOOKUP;
	else if (r > 0)
		sc->verdict = POLICY_SCAN_LOCAL;
}

/* Every "@" of the text, wherever it is: address, quoted display name,
 * comment, group. */
static void policy_scan_text(struct policy_scan *sc, const char *p, size_t n)
{
	const char *end = p + n, *at = p;
	char domain[POLICY_DOMAIN_MAX + 1];

	while (sc->verdict == POLICY_SCAN_CLEAN && at < end &&
	       (at = memchr(at, '@', (size_t)(end - at))) != NULL) {
		if (++sc->nats > POLICY_FROM_ATS) {
			sc->verdict = POLICY_SCAN_TOO_MUCH;
			return;
		}
		at++;
		if (policy_domain_at(at, end, domain) > 0)
			policy_scan_domain(sc, domain);
	}
}

/* One From: field value: as written, then with its RFC 2047 encoded-words
 * decoded ("=?utf-8?q?postmaster=40example.test?="), which some readers
 * decode even where RFC 2047 5 forbids them. */
static void policy_scan_field(struct policy_scan *sc, const char *p, size_t n)
{
	size_t size;
	char *text;

	if (n > POLICY_FROM_VALUE_MAX) {
		sc->verdict = POLICY_SCAN_TOO_MUCH;
		return;
	}
	policy_scan_text(sc, p, n);
	if (sc->verdict != POLICY_SCAN_CLEAN || memchr(p, '=', n) == NULL)
		return;
	/* A B word of 4 characters gives 3 bytes, each at most 3 in UTF-8
	 * (ISO-8859-1, Windows-1252). */
	size = 3 * n + 1;
	text = malloc(size);
	if (text == NULL) {
		sc->verdict = POLICY_SCAN_NOMEM;
		return;
	}
	policy_scan_text(sc, text, addrlist_decode_words(p, n, text, size));
	free(text);
}

/*
 * Walks the header section of msg (up to the first empty line) as a
 * lenient reader would: a field is a line that does not start with white
 * space, with its continuation lines; its name ends at the colon, white
 * space before the colon allowed (RFC 5322 4.5.3). Scans each From field
 * when sc is not NULL. Returns the number of From fields.
 */
static size_t policy_from_fields(const char *msg, size_t len,
				 struct policy_scan *sc)
{
	const char *p = msg, *end = msg + len, *value = NULL, *vend = NULL;
	size_t nfrom = 0;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *eol = nl != NULL ? nl : end, *next = eol;
		const char *colon, *ne;

		if (nl != NULL)
			next = nl + 1;
		if (eol > p && eol[-1] == '\r')
			eol--;
		if (eol == p)
			break; /* the empty line: the body follows */
		if (*p == ' ' || *p == '\t') {
			if (value != NULL)
				vend = eol;
			p = next;
			continue;
		}
		if (value != NULL && sc != NULL &&
		    sc->verdict == POLICY_SCAN_CLEAN)
			policy_scan_field(sc, value, (size_t)(vend - value));
		value = NULL;
		colon = memchr(p, ':', (size_t)(eol - p));
		if (colon != NULL) {
			ne = colon;
			while (ne > p && (ne[-1] == ' ' || ne[-1] == '\t'))
				ne--;
			if (ne - p == 4 && strncasecmp(p, "from", 4) == 0) {
				nfrom++;
				value = colon + 1;
				vend = eol;
			}
		}
		p = next;
	}
	if (value != NULL && sc != NULL && sc->verdict == POLICY_SCAN_CLEAN)
		policy_scan_field(sc, value, (size_t)(vend - value));
	return nfrom;
}

const char *policy_check_from_raw(const struct policy_facts *f, int parsed,
				  const char *msg, size_t len,
				  policy_local_domain_fn *is_local, void *ctx,
				  const char **reason_r)
{
	struct policy_scan *sc;
	size_t nfrom = policy_from_fields(msg, len, NULL);
	enum policy_scan_verdict v;

	if (f->auth != NULL) {
		/* policy_check_from has seen one From:, but a reader may
		 * show a second one written "From :". */
		if (nfrom <= 1 ||
		    !policy_on(f, SETTING_AUTH_MATCH_FROM_HEADER) ||
		    policy_exempt(f, "auth.match_from_header"))
			return NULL;
		*reason_r = "auth.match_from_header: more than one From: field";
		return "550 5.7.1 Message needs one valid From: header";
	}
	if (!policy_on(f, SETTING_AUTH_REQUIRE_FOR_ROLE_SENDERS) ||
	    policy_exempt(f, "auth.require_for_role_senders") ||
	    (parsed && nfrom <= 1))
		return NULL;
	sc = calloc(1, sizeof(*sc));
	if (sc == NULL) {
		*reason_r = "out of memory";
		return "451 4.3.1 Insufficient system storage";
	}
	sc->is_local = is_local;
	sc->ctx = ctx;
	policy_from_fields(msg, len, sc);
	v = sc->verdict;
	free(sc);
	switch (v) {
	case POLICY_SCAN_CLEAN:
		return NULL;
	case POLICY_SCAN_LOCAL:
		*reason_r = "auth.require_for_role_senders: a local domain "
			    "in a From: that does not parse, without AUTH";
		return "550 5.7.1 Authentication required for this From: "
		       "address";
	case POLICY_SCAN_TOO_MUCH:
		*reason_r = "auth.require_for_role_senders: a From: that "
			    "does not parse and is too large to check, "
			    "without AUTH";
		return "550 5.7.1 Authentication required for this From: "
		       "address";
	case POLICY_SCAN_LOOKUP:
		*reason_r = "directory lookup failed";
		return "451 4.3.0 Temporary lookup failure";
	case POLICY_SCAN_NOMEM:
		break;
	}
	*reason_r = "out of memory";
	return "451 4.3.1 Insufficient system storage";
}
