/*
 * hijack: the sliding windows of hijack detection (see hijack.h). Each
 * account has its sends and logins in time order in growable arrays; what
 * leaves the window is dropped from the front. Accounts are found through
 * a hash table. Pure.
 */
#include "policy/hijack.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <sodium.h>

#include "directory/directory.h"
#include "directory/settings.h"
#include "filter/filter_mime.h"
#include "lib/buf.h"

#define HIJACK_BUCKETS 1024

struct hijack_account {
	struct hijack_account *next;
	char name[DIRECTORY_ADDRESS_MAX + 1];
	struct hijack_event *ev;
	size_t nev, evcap;
	/* One login per IP, its latest: the count of IPs is their number. */
	struct hijack_login *lg;
	size_t nlg, lgcap;
	/* Sums over ev, by private_ip: checking a send costs no walk. */
	unsigned msgs[2];
	uint64_t rcpts[2];
	int frozen;
	int64_t frozen_at;
};

struct hijack {
	struct hijack_account *buckets[HIJACK_BUCKETS];
};

struct hijack *hijack_new(void)
{
	return calloc(1, sizeof(struct hijack));
}

static void hijack_account_free(struct hijack_account *a)
{
	free(a->ev);
	free(a->lg);
	free(a);
}

void hijack_free(struct hijack *h)
{
	if (h == NULL)
		return;
	for (size_t i = 0; i < HIJACK_BUCKETS; i++) {
		struct hijack_account *a = h->buckets[i], *next;

		for (; a != NULL; a = next) {
			next = a->next;
			hijack_account_free(a);
		}
	}
	free(h);
}

void hijack_limits_get(const struct settings *s, struct hijack_limits *l)
{
	l->window_ms = settings_int(s, SETTING_HIJACK_MINUTES) * 60000;
	l->messages = (unsigned)settings_int(s, SETTING_HIJACK_MAX_MESSAGES);
	l->recipients =
		(unsigned)settings_int(s, SETTING_HIJACK_MAX_RECIPIENTS);
	l->ips = (unsigned)settings_int(s, SETTING_HIJACK_MAX_IPS);
	l->private_messages =
		(unsigned)settings_int(s, SETTING_HIJACK_PRIVATE_MAX_MESSAGES);
	l->private_recipients = (unsigned)settings_int(
		s, SETTING_HIJACK_PRIVATE_MAX_RECIPIENTS);
	l->private_ips =
		(unsigned)settings_int(s, SETTING_HIJACK_PRIVATE_MAX_IPS);
}

int hijack_ip_private(const char *ip)
{
	unsigned char a[16];

	if (inet_pton(AF_INET, ip, a) == 1) {
		return a[0] == 127 || a[0] == 10 || a[0] == 0 ||
		       (a[0] == 172 && (a[1] & 0xf0) == 16) ||
		       (a[0] == 192 && a[1] == 168) ||
		       (a[0] == 169 && a[1] == 254) ||
		       (a[0] == 100 && (a[1] & 0xc0) == 64);
	}
	if (inet_pton(AF_INET6, ip, a) == 1) {
		static const unsigned char loop[16] = {[15] = 1};
		static const unsigned char mapped[12] = {
			[10] = 0xff, [11] = 0xff};
		char v4[INET_ADDRSTRLEN];

		if (memcmp(a, mapped, sizeof(mapped)) == 0 &&
		    inet_ntop(AF_INET, a + 12, v4, sizeof(v4)) != NULL)
			return hijack_ip_private(v4);
		return memcmp(a, loop, 16) == 0 || (a[0] & 0xfe) == 0xfc ||
		       (a[0] == 0xfe && (a[1] & 0xc0) == 0x80);
	}
	return 0;
}

int hijack_exempt(const char *list, const char *account)
{
	const char *at = strrchr(account, '@'), *p = list;
	char acc[DIRECTORY_ADDRESS_MAX + 1];
	size_t k;

	/* Both sides lower-case: fnmatch's FNM_CASEFOLD is a GNU extension. */
	for (k = 0; k < sizeof(acc) - 1 && account[k] != '\0'; k++)
		acc[k] = (char)tolower((unsigned char)account[k]);
	acc[k] = '\0';

	if (at != NULL && (size_t)(at - account) == 10 &&
	    strncasecmp(account, "postmaster", 10) == 0)
		return 1;
	while (p != NULL && *p != '\0') {
		char pat[DIRECTORY_ADDRESS_MAX + 1];
		size_t n;

		while (*p == ' ' || *p == ',')
			p++;
		n = strcspn(p, ",");
		while (n > 0 && p[n - 1] == ' ')
			n--;
		if (n > 0 && n < sizeof(pat)) {
			for (k = 0; k < n; k++)
				pat[k] = (char)tolower((unsigned char)p[k]);
			pat[n] = '\0';
			if (fnmatch(pat, acc, 0) == 0)
				return 1;
		}
		p += strcspn(p, ",");
	}
	return 0;
}

const char *hijack_result_str(enum hijack_result r)
{
	switch (r) {
	case HIJACK_OK:
		return "ok";
	case HIJACK_OVER_MESSAGES:
		return "messages";
	case HIJACK_OVER_RECIPIENTS:
		return "recipients";
	case HIJACK_OVER_IPS:
		return "client IPs";
	case HIJACK_FROZEN:
		return "frozen";
	}
	return "?";
}

static unsigned hijack_hash(const char *s)
{
	unsigned h = 2166136261u;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)tolower((unsigned char)*s)) * 16777619u;
	return h % HIJACK_BUCKETS;
}

static struct hijack_account *hijack_find(const struct hijack *h,
					  const char *name)
{
	struct hijack_account *a = h->buckets[hijack_hash(name)];

	while (a != NULL && strcasecmp(a->name, name) != 0)
		a = a->next;
	return a;
}

static struct hijack_account *hijack_get(struct hijack *h, const char *name)
{
	struct hijack_account *a = hijack_find(h, name);
	unsigned b;

	if (a != NULL)
		return a;
	if (strlen(name) > DIRECTORY_ADDRESS_MAX)
		return NULL;
	a = calloc(1, sizeof(*a));
	if (a == NULL)
		return NULL;
	snprintf(a->name, sizeof(a->name), "%s", name);
	b = hijack_hash(name);
	a->next = h->buckets[b];
	h->buckets[b] = a;
	return a;
}

/* Makes room for one more element of size sz in *arr. 0 or -1. */
static int hijack_grow(void **arr, size_t n, size_t *cap, size_t sz)
{
	size_t ncap;
	void *p;

	if (n < *cap)
		return 0;
	ncap = *cap == 0 ? 16 : *cap * 2;
	p = realloc(*arr, ncap * sz);
	if (p == NULL)
		return -1;
	*arr = p;
	*cap = ncap;
	return 0;
}

/* Keeps the events after `since`: arrays are in time order. */
static void hijack_trim(struct hijack_account *a, int64_t since)
{
	size_t i = 0;

	while (i < a->nev && a->ev[i].time <= since) {
		a->msgs[a->ev[i].private_ip != 0]--;
		a->rcpts[a->ev[i].private_ip != 0] -= a->ev[i].rcpts;
		i++;
	}
	if (i > 0) {
		memmove(a->ev, a->ev + i, (a->nev - i) * sizeof(*a->ev));
		a->nev -= i;
	}
	i = 0;
	while (i < a->nlg && a->lg[i].time <= since)
		i++;
	if (i > 0) {
		memmove(a->lg, a->lg + i, (a->nlg - i) * sizeof(*a->lg));
		a->nlg -= i;
	}
}

int hijack_login(struct hijack *h, const char *account, const char *ip,
		 int private_ip, int64_t time)
{
	struct hijack_account *a = hijack_get(h, account);
	struct hijack_login *l;
	size_t i;

	if (a == NULL)
		return -1;
	for (i = 0; i < a->nlg; i++) {
		if (strcmp(a->lg[i].ip, ip) != 0)
			continue;
		if (a->lg[i].time >= time)
			return 0; /* a later one is known */
		memmove(a->lg + i, a->lg + i + 1,
			(a->nlg - i - 1) * sizeof(*a->lg));
		a->nlg--;
		break;
	}
	if (hijack_grow((void **)&a->lg, a->nlg, &a->lgcap, sizeof(*a->lg)) < 0)
		return -1;
	/* In time order, even when loaded out of order. */
	i = a->nlg;
	while (i > 0 && a->lg[i - 1].time > time)
		i--;
	memmove(a->lg + i + 1, a->lg + i, (a->nlg - i) * sizeof(*a->lg));
	l = &a->lg[i];
	memset(l, 0, sizeof(*l));
	l->time = time;
	l->private_ip = private_ip;
	snprintf(l->ip, sizeof(l->ip), "%s", ip);
	a->nlg++;
	return 0;
}

int hijack_record(struct hijack *h, const char *account,
		  const struct hijack_event *ev)
{
	struct hijack_account *a = hijack_get(h, account);
	size_t i;

	if (a == NULL ||
	    hijack_grow((void **)&a->ev, a->nev, &a->evcap, sizeof(*a->ev)) < 0)
		return -1;
	i = a->nev;
	while (i > 0 && a->ev[i - 1].time > ev->time)
		i--;
	memmove(a->ev + i + 1, a->ev + i, (a->nev - i) * sizeof(*a->ev));
	a->ev[i] = *ev;
	a->nev++;
	a->msgs[ev->private_ip != 0]++;
	a->rcpts[ev->private_ip != 0] += ev->rcpts;
	return 0;
}

/* Does an event of class `priv` count under the limit `private_max`'s
 * class `cls`? With private_max 0, everything is one class. */
static int hijack_in_class(int priv, int cls, unsigned private_max)
{
	if (private_max == 0)
		return 1;
	return (priv != 0) == (cls != 0);
}

static void hijack_count(const struct hijack_account *a, int priv,
			 const struct hijack_limits *l, struct hijack_tally *t)
{
	memset(t, 0, sizeof(*t));
	t->private_class = priv;
	t->max_messages = priv && l->private_messages > 0 ? l->private_messages
							  : l->messages;
	t->max_recipients = priv && l->private_recipients > 0
				    ? l->private_recipients
				    : l->recipients;
	t->max_ips = priv && l->private_ips > 0 ? l->private_ips : l->ips;
	if (a == NULL)
		return;
	t->messages = l->private_messages == 0 ? a->msgs[0] + a->msgs[1]
					       : a->msgs[priv != 0];
	t->recipients = (unsigned)(l->private_recipients == 0
					   ? a->rcpts[0] + a->rcpts[1]
					   : a->rcpts[priv != 0]);
	for (size_t i = 0; i < a->nlg; i++)
		if (hijack_in_class(a->lg[i].private_ip, priv, l->private_ips))
			t->ips++;
}

void hijack_tally(struct hijack *h, const char *account, int private_ip,
		  const struct hijack_limits *l, int64_t now,
		  struct hijack_tally *t_r)
{
	struct hijack_account *a = hijack_find(h, account);

	if (a != NULL)
		hijack_trim(a, now - l->window_ms);
	hijack_count(a, private_ip, l, t_r);
}

int hijack_send(struct hijack *h, const char *account,
		const struct hijack_event *ev, const struct hijack_limits *l,
		int64_t now, struct hijack_tally *t_r)
{
	struct hijack_account *a = hijack_get(h, account);
	struct hijack_tally t;
	int r = HIJACK_OK;

	if (a == NULL)
		return -1;
	hijack_trim(a, now - l->window_ms);
	hijack_count(a, ev->private_ip, l, &t);
	t.messages++;
	t.recipients += ev->rcpts;
	if (a->frozen)
		r = HIJACK_FROZEN;
	else if (t.messages > t.max_messages)
		r = HIJACK_OVER_MESSAGES;
	else if (t.recipients > t.max_recipients)
		r = HIJACK_OVER_RECIPIENTS;
	else if (t.ips > t.max_ips)
		r = HIJACK_OVER_IPS;
	if (t_r != NULL)
		*t_r = t;
	if (r != HIJACK_OK)
		return r;
	return hijack_record(h, account, ev) < 0 ? -1 : HIJACK_OK;
}

void hijack_unsend(struct hijack *h, const char *account, int64_t time)
{
	struct hijack_account *a = hijack_find(h, account);

	if (a == NULL)
		return;
	for (size_t i = a->nev; i > 0; i--) {
		if (a->ev[i - 1].time == time) {
			a->msgs[a->ev[i - 1].private_ip != 0]--;
			a->rcpts[a->ev[i - 1].private_ip != 0] -=
				a->ev[i - 1].rcpts;
			memmove(a->ev + i - 1, a->ev + i,
				(a->nev - i) * sizeof(*a->ev));
			a->nev--;
			return;
		}
	}
}

void hijack_freeze(struct hijack *h, const char *account, int64_t now)
{
	struct hijack_account *a = hijack_get(h, account);

	if (a != NULL) {
		a->frozen = 1;
		a->frozen_at = now;
	}
}

int hijack_frozen(const struct hijack *h, const char *account)
{
	const struct hijack_account *a = hijack_find(h, account);

	return a != NULL && a->frozen;
}

void hijack_reset(struct hijack *h, const char *account)
{
	struct hijack_account *a = hijack_find(h, account);

	if (a == NULL)
		return;
	a->nev = 0;
	a->nlg = 0;
	memset(a->msgs, 0, sizeof(a->msgs));
	memset(a->rcpts, 0, sizeof(a->rcpts));
	a->frozen = 0;
}

void hijack_expire(struct hijack *h, int64_t now, int64_t window_ms)
{
	for (size_t b = 0; b < HIJACK_BUCKETS; b++) {
		struct hijack_account **pp = &h->buckets[b];

		while (*pp != NULL) {
			struct hijack_account *a = *pp;

			hijack_trim(a, now - window_ms);
			if (a->nev == 0 && a->nlg == 0 && !a->frozen) {
				*pp = a->next;
				hijack_account_free(a);
			} else {
				pp = &a->next;
			}
		}
	}
}

size_t hijack_events(const struct hijack *h, const char *account,
		     const struct hijack_event **ev_r)
{
	const struct hijack_account *a = hijack_find(h, account);

	*ev_r = a != NULL ? a->ev : NULL;
	return a != NULL ? a->nev : 0;
}

size_t hijack_logins(const struct hijack *h, const char *account,
		     const struct hijack_login **lg_r)
{
	const struct hijack_account *a = hijack_find(h, account);

	*lg_r = a != NULL ? a->lg : NULL;
	return a != NULL ? a->nlg : 0;
}

/* --- re-activation tokens --- */

void hijack_token_new(char token_r[HIJACK_TOKEN_LEN + 1])
{
	static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
	unsigned char rnd[HIJACK_TOKEN_LEN];

	/* One random byte per character, 5 bits of each kept: 130 bits. */
	randombytes_buf(rnd, sizeof(rnd));
	for (size_t i = 0; i < HIJACK_TOKEN_LEN; i++)
		token_r[i] = alphabet[rnd[i] & 31];
	token_r[HIJACK_TOKEN_LEN] = '\0';
	sodium_memzero(rnd, sizeof(rnd));
}

void hijack_token_hash(const char *token, char hash_r[65])
{
	unsigned char h[32];

	crypto_generichash(h, sizeof(h), (const unsigned char *)token,
			   strlen(token), NULL, 0);
	sodium_bin2hex(hash_r, 65, h, sizeof(h));
}

int hijack_token_rcpt(const char *address, char token_r[HIJACK_TOKEN_LEN + 1],
		      char *domain_r, size_t domain_size)
{
	size_t plen = strlen(HIJACK_TOKEN_PREFIX);
	const char *at = strrchr(address, '@');

	if (at == NULL ||
	    strncasecmp(address, HIJACK_TOKEN_PREFIX, plen) != 0 ||
	    (size_t)(at - address) != plen + HIJACK_TOKEN_LEN)
		return 0;
	for (size_t i = 0; i < HIJACK_TOKEN_LEN; i++) {
		char c = (char)tolower((unsigned char)address[plen + i]);

		if (!((c >= 'a' && c <= 'z') || (c >= '2' && c <= '7')))
			return 0;
		token_r[i] = c;
	}
	token_r[HIJACK_TOKEN_LEN] = '\0';
	if (snprintf(domain_r, domain_size, "%s", at + 1) >= (int)domain_size)
		return 0;
	for (char *p = domain_r; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	return 1;
}

/* --- the reply's order --- */

/* The first word of the first unquoted, non-empty line of text. */
static int hijack_first_word(const char *text, char *word_r, size_t size)
{
	const char *p = text;

	while (*p != '\0') {
		size_t n = strcspn(p, "\r\n"), i = 0, w = 0;

		while (i < n && (p[i] == ' ' || p[i] == '\t'))
			i++;
		if (i < n && p[i] != '>') {
			while (i + w < n && !isspace((unsigned char)p[i + w]) &&
			       w + 1 < size) {
				word_r[w] =
					(char)tolower((unsigned char)p[i + w]);
				w++;
			}
			/* Trailing punctuation: "release." */
			while (w > 0 && ispunct((unsigned char)word_r[w - 1]))
				w--;
			word_r[w] = '\0';
			return 1;
		}
		p += n;
		while (*p == '\r' || *p == '\n')
			p++;
	}
	word_r[0] = '\0';
	return 0;
}

/* Enough of a reply to find its first line: the parts that hold it come
 * first, and the walk stays on the loop. */
#define HIJACK_REPLY_MAX (256 * 1024)

int hijack_reply_word(const char *msg, size_t len, char *word_r, size_t size)
{
	struct filter_mime m;
	int r = 0;

	word_r[0] = '\0';
	if (filter_mime_parse(msg,
			      len > HIJACK_REPLY_MAX ? HIJACK_REPLY_MAX : len,
			      &m) < 0)
		return 0;
	if (buf_append(&m.text, "", 1) == 0)
		r = hijack_first_word(m.text.data, word_r, size);
	filter_mime_deinit(&m);
	return r;
}

/* --- the alert --- */

void hijack_alert_subject(const struct hijack_alert *a, char *out, size_t size)
{
	snprintf(out, size, "Account %s frozen: possible hijack (too many %s)",
		 a->account, hijack_result_str(a->why));
}

static void hijack_time(int64_t t, char *out, size_t size)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t <= 0 || gmtime_r(&tt, &tm) == NULL ||
	    strftime(out, size, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(out, size, "never");
}

struct hijack_count {
	char key[HIJACK_DOMAINS_MAX];
	unsigned n;
};

/* Adds n to key's count in a small table. */
static void hijack_count_add(struct hijack_count *t, size_t *nt, size_t max,
			     const char *key, size_t klen, unsigned n)
{
	for (size_t i = 0; i < *nt; i++) {
		if (strlen(t[i].key) == klen &&
		    strncasecmp(t[i].key, key, klen) == 0) {
			t[i].n += n;
			return;
		}
	}
	if (*nt < max && klen < sizeof(t[0].key)) {
		memcpy(t[*nt].key, key, klen);
		t[*nt].key[klen] = '\0';
		t[*nt].n = n;
		(*nt)++;
	}
}

static int hijack_count_cmp(const void *a, const void *b)
{
	const struct hijack_count *x = a, *y = b;

	return x->n < y->n ? 1 : x->n > y->n ? -1 : strcmp(x->key, y->key);
}

#define HIJACK_TABLE_MAX 256

int hijack_alert_text(const struct hijack_alert *a, struct buf *out)
{
	const struct hijack_tally *t = &a->tally;
	struct hijack_count *ips, *doms;
	size_t nips = 0, ndoms = 0, shown = 0;
	char when[64], last[64], expires[64];
	int rc = 0;

	ips = calloc(HIJACK_TABLE_MAX, sizeof(*ips));
	doms = calloc(HIJACK_TABLE_MAX, sizeof(*doms));
	if (ips == NULL || doms == NULL) {
		free(ips);
		free(doms);
		return -1;
	}
	for (size_t i = 0; i < a->nev; i++) {
		const char *d = a->ev[i].domains;

		hijack_count_add(ips, &nips, HIJACK_TABLE_MAX, a->ev[i].ip,
				 strlen(a->ev[i].ip), 1);
		while (*d != '\0') {
			size_t n = strcspn(d, ",");

			hijack_count_add(doms, &ndoms, HIJACK_TABLE_MAX, d, n,
					 1);
			d += n;
			while (*d == ',' || *d == ' ')
				d++;
		}
	}
	/* IPs the account logged in from without sending count too. */
	for (size_t i = 0; i < a->nlg; i++)
		hijack_count_add(ips, &nips, HIJACK_TABLE_MAX, a->lg[i].ip,
				 strlen(a->lg[i].ip), 0);
	qsort(ips, nips, sizeof(*ips), hijack_count_cmp);
	qsort(doms, ndoms, sizeof(*doms), hijack_count_cmp);
	hijack_time(a->now, when, sizeof(when));
	hijack_time(a->last_login, last, sizeof(last));
	hijack_time(a->token_expires, expires, sizeof(expires));
	rc |= buf_printf(
		out,
		"The account %s was frozen at %s on %s,\n"
		"because it crossed the limit of %s it may send in %lld "
		"minutes:\n\n",
		a->account, when, a->hostname, hijack_result_str(a->why),
		(long long)(a->window_ms / 60000));
	rc |= buf_printf(out,
			 "  messages:   %u (limit %u)\n"
			 "  recipients: %u (limit %u)\n"
			 "  client IPs: %u (limit %u)%s\n\n",
			 t->messages, t->max_messages, t->recipients,
			 t->max_recipients, t->ips, t->max_ips,
			 t->private_class
				 ? "\n  (counted as sent from reserved "
				   "or private IPs)"
				 : "");
	rc |= buf_printf(out,
			 "It can no longer log in (SMTP and POP3), and nothing "
			 "it sends leaves.\n"
			 "Mail to it is still accepted. Last login: %s.\n\n",
			 last);
	rc |= buf_printf(out, "Client IPs in the window (messages sent):\n");
	for (size_t i = 0; i < nips; i++)
		rc |= buf_printf(out, "  %s: %u\n", ips[i].key, ips[i].n);
	rc |= buf_printf(out, "\nSubjects of the burst (up to 10):\n");
	for (size_t i = a->nev; i > 0 && shown < 10; i--, shown++)
		rc |= buf_printf(out, "  %s\n",
				 a->ev[i - 1].subject[0] != '\0'
					 ? a->ev[i - 1].subject
					 : "(no subject)");
	rc |= buf_printf(out, "\nTop recipient domains:\n");
	for (size_t i = 0; i < ndoms && i < 10; i++)
		rc |= buf_printf(out, "  %s: %u messages\n", doms[i].key,
				 doms[i].n);
	rc |= buf_printf(
		out,
		"\n%zu message(s) from the account that were waiting in the "
		"queue\nwere moved to the hold queue.\n\n",
		a->held);
	rc |= buf_printf(
		out,
		"What to do:\n"
		"- If the account was hijacked, change its password first:\n"
		"    petrelctl account passwd %s\n"
		"- To re-activate it, reply to this message (to %s),\n"
		"  from an authenticated session of the postmaster or an "
		"admin\n"
		"  account of the domain. The first line of the reply "
		"decides\n"
		"  the held messages:\n"
		"    release  - send them on\n"
		"    delete   - discard them\n"
		"    anything else (e.g. OK) - keep them on hold\n"
		"  This reply address works once, until %s.\n"
		"- Or on the server:\n"
		"    petrelctl hijack release %s "
		"[--release-held|--delete-held]\n"
		"    petrelctl queue list hold; petrelctl queue delete ID\n",
		a->account, a->reply_to, expires, a->account);
	free(ips);
	free(doms);
	return rc;
}

void hijack_token_redact(char *text)
{
	size_t plen = strlen(HIJACK_TOKEN_PREFIX);

	for (char *p = text; *p != '\0'; p++) {
		if (strncasecmp(p, HIJACK_TOKEN_PREFIX, plen) != 0)
			continue;
		p += plen;
		for (size_t i = 0; i < HIJACK_TOKEN_LEN && *p != '\0' &&
				   *p != '@' && *p != '>';
		     i++, p++)
			*p = '*';
		if (*p == '\0')
			return;
	}
}
