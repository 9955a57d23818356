/*
 * dns: c-ares driven by the event loop. c-ares tells which of its sockets
 * to watch (sock_state_cb) and when it next needs the clock
 * (ares_timeout); we watch them with io_fd and one timer, and hand events
 * back with ares_process_fd. Queries are small objects freed in c-ares's
 * callback; a cancelled one just loses its user callback.
 */
#include "lib/dns.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ares.h>

#include "lib/io.h"

#define DNS_MX_MAX DNS_ANSWERS_MAX

struct dns_sock {
	int fd;
	struct io_fd *w;
	struct dns_sock *next;
};

struct dns {
	struct io_loop *loop;
	ares_channel channel;
	struct io_timer *timer;
	struct dns_sock *socks;
	/* Queries are started from the loop, never inside dns_rdns() and
	 * friends: an answer from /etc/hosts comes at once, and the caller
	 * must have its handle before its callback runs. */
	struct dns_query *starting, **starting_tail;
	struct io_timer *start_timer;
	int destroying;
};

enum dns_kind { DNS_Q_RDNS, DNS_Q_MX, DNS_Q_ADDRS, DNS_Q_A, DNS_Q_TXT };

struct dns_query {
	struct dns *d;
	enum dns_kind kind;
	dns_cb *cb; /* NULL once cancelled */
	void *arg;
	struct sockaddr_storage sa; /* dns_rdns: the address to confirm */
	char name[DNS_NAME_MAX];    /* what to look up; dns_rdns: the PTR
				       name, to confirm */
	struct dns_query *next;	    /* on the starting list */
};

static void dns_launch(struct dns_query *q);

static void dns_schedule(struct dns *d)
{
	struct timeval tv, *t;

	if (d->destroying)
		return;
	t = ares_timeout(d->channel, NULL, &tv);
	if (t == NULL)
		io_timer_del(d->timer);
	else
		io_timer_add(d->timer, (int64_t)t->tv_sec * 1000 +
					       (t->tv_usec + 999) / 1000);
}

static void dns_timer_cb(void *arg)
{
	struct dns *d = arg;

	ares_process_fd(d->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	dns_schedule(d);
}

static void dns_start_cb(void *arg)
{
	struct dns *d = arg;
	struct dns_query *q = d->starting;

	d->starting = NULL;
	d->starting_tail = &d->starting;
	while (q != NULL) {
		struct dns_query *next = q->next;

		if (q->cb == NULL)
			free(q); /* cancelled before it started */
		else
			dns_launch(q);
		q = next;
	}
	dns_schedule(d);
}

static void dns_fd_cb(int fd, int readable, int writable, void *arg)
{
	struct dns *d = arg;

	ares_process_fd(d->channel, readable ? fd : ARES_SOCKET_BAD,
			writable ? fd : ARES_SOCKET_BAD);
	dns_schedule(d);
}

static void dns_sock_state_cb(void *data, ares_socket_t fd, int readable,
			      int writable)
{
	struct dns *d = data;
	struct dns_sock **pp, *s;

	for (pp = &d->socks; (s = *pp) != NULL; pp = &s->next)
		if (s->fd == fd)
			break;
	if (!readable && !writable) {
		if (s != NULL) {
			*pp = s->next;
			io_fd_free(s->w);
			free(s);
		}
		return;
	}
	if (s == NULL) {
		s = calloc(1, sizeof(*s));
		if (s == NULL)
			return; /* the query times out */
		s->fd = fd;
		s->w = io_fd_new(d->loop, fd, dns_fd_cb, d);
		if (s->w == NULL) {
			free(s);
			return;
		}
		s->next = d->socks;
		d->socks = s;
	}
	io_fd_want(s->w, readable, writable);
}

struct dns *dns_new(struct io_loop *loop, const char *servers, int timeout_ms,
		    int tries, const char **error_r)
{
	struct ares_options opts;
	struct dns *d;
	int r;

	if (ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS) {
		*error_r = "cannot initialize c-ares";
		return NULL;
	}
	d = calloc(1, sizeof(*d));
	if (d == NULL) {
		ares_library_cleanup();
		*error_r = "out of memory";
		return NULL;
	}
	d->loop = loop;
	memset(&opts, 0, sizeof(opts));
	opts.sock_state_cb = dns_sock_state_cb;
	opts.sock_state_cb_data = d;
	opts.timeout = timeout_ms > 0 ? timeout_ms : 1000;
	opts.tries = tries > 0 ? tries : 1;
	r = ares_init_options(&d->channel, &opts,
			      ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS |
				      ARES_OPT_TRIES);
	if (r != ARES_SUCCESS) {
		*error_r = "cannot start the resolver (c-ares)";
		free(d);
		ares_library_cleanup();
		return NULL;
	}
	if (servers != NULL && servers[0] != '\0' &&
	    ares_set_servers_ports_csv(d->channel, servers) != ARES_SUCCESS) {
		*error_r = "bad dns_server (expected IP:PORT)";
		ares_destroy(d->channel);
		free(d);
		ares_library_cleanup();
		return NULL;
	}
	d->starting_tail = &d->starting;
	d->timer = io_timer_new(loop, dns_timer_cb, d);
	d->start_timer = io_timer_new(loop, dns_start_cb, d);
	if (d->timer == NULL || d->start_timer == NULL) {
		io_timer_free(d->timer);
		io_timer_free(d->start_timer);
		*error_r = "out of memory";
		ares_destroy(d->channel);
		free(d);
		ares_library_cleanup();
		return NULL;
	}
	return d;
}

void dns_free(struct dns *d)
{
	if (d == NULL)
		return;
	d->destroying = 1;
	while (d->starting != NULL) {
		struct dns_query *q = d->starting;
		d->starting = q->next;
		free(q);
	}
	ares_destroy(d->channel); /* callbacks see ARES_EDESTRUCTION */
	while (d->socks != NULL) {
		struct dns_sock *s = d->socks;
		d->socks = s->next;
		io_fd_free(s->w);
		free(s);
	}
	io_timer_free(d->timer);
	io_timer_free(d->start_timer);
	free(d);
	ares_library_cleanup();
}

void dns_cancel(struct dns_query *q)
{
	if (q != NULL)
		q->cb = NULL;
}

static enum dns_status dns_status_of(int status)
{
	switch (status) {
	case ARES_SUCCESS:
		return DNS_OK;
	case ARES_ENODATA:
	case ARES_ENOTFOUND:
	case ARES_ENONAME:
		return DNS_NOTFOUND;
	default:
		return DNS_TEMPFAIL;
	}
}

/* A host name we are willing to show and use: letters, digits, '-', '_'
 * and dots, at most DNS_NAME_MAX - 1 bytes, not empty. */
static int dns_name_ok(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n >= DNS_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];
		if (!isalnum(c) && c != '-' && c != '.' && c != '_')
			return 0;
	}
	return 1;
}

/* Queues a query to start on the loop. name: what to look up (checked),
 * or NULL for dns_rdns. */
static struct dns_query *dns_query_new(struct dns *d, enum dns_kind kind,
				       const char *name, dns_cb *cb, void *arg)
{
	struct dns_query *q;

	if (name != NULL && !dns_name_ok(name))
		return NULL;
	q = calloc(1, sizeof(*q));
	if (q == NULL)
		return NULL;
	q->d = d;
	q->kind = kind;
	q->cb = cb;
	q->arg = arg;
	if (name != NULL)
		snprintf(q->name, sizeof(q->name), "%s", name);
	*d->starting_tail = q;
	d->starting_tail = &q->next;
	if (!io_timer_pending(d->start_timer))
		io_timer_add(d->start_timer, 0);
	return q;
}

/* Delivers r (unless cancelled or the resolver is going) and frees q. */
static void dns_finish(struct dns_query *q, const struct dns_result *r)
{
	if (q->cb != NULL && !q->d->destroying)
		q->cb(r, q->arg);
	free(q);
}

static void dns_fail(struct dns_query *q, enum dns_status status)
{
	struct dns_result r;

	memset(&r, 0, sizeof(r));
	r.status = status;
	dns_finish(q, &r);
}

static int dns_same_addr(const struct sockaddr *a, const struct sockaddr *b)
{
	if (a->sa_family != b->sa_family)
		return 0;
	if (a->sa_family == AF_INET)
		return memcmp(&((const struct sockaddr_in *)a)->sin_addr,
			      &((const struct sockaddr_in *)b)->sin_addr,
			      sizeof(struct in_addr)) == 0;
	if (a->sa_family == AF_INET6)
		return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
			      &((const struct sockaddr_in6 *)b)->sin6_addr,
			      sizeof(struct in6_addr)) == 0;
	return 0;
}

/* --- reverse lookups --- */

static void dns_rdns_forward_cb(void *arg, int status, int timeouts,
				struct ares_addrinfo *ai)
{
	struct dns_query *q = arg;
	struct dns_result r;
	int match = 0;

	(void)timeouts;
	memset(&r, 0, sizeof(r));
	if (status == ARES_SUCCESS && ai != NULL) {
		for (struct ares_addrinfo_node *n = ai->nodes; n != NULL;
		     n = n->ai_next)
			if (dns_same_addr(n->ai_addr,
					  (const struct sockaddr *)&q->sa))
				match = 1;
	}
	if (ai != NULL)
		ares_freeaddrinfo(ai);
	if (match) {
		r.status = DNS_OK;
		snprintf(r.name, sizeof(r.name), "%s", q->name);
	} else {
		r.status = status == ARES_SUCCESS ? DNS_NOTFOUND
						  : dns_status_of(status);
	}
	dns_finish(q, &r);
}

static void dns_rdns_ptr_cb(void *arg, int status, int timeouts,
			    struct hostent *h)
{
	struct dns_query *q = arg;
	struct ares_addrinfo_hints hints;

	(void)timeouts;
	if (status != ARES_SUCCESS || h == NULL || h->h_name == NULL ||
	    !dns_name_ok(h->h_name) || q->cb == NULL || q->d->destroying) {
		dns_fail(q, status == ARES_SUCCESS ? DNS_NOTFOUND
						   : dns_status_of(status));
		return;
	}
	snprintf(q->name, sizeof(q->name), "%s", h->h_name);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = q->sa.ss_family;
	hints.ai_flags = ARES_AI_NOSORT;
	/* Called from inside c-ares: the next query may start here. */
	ares_getaddrinfo(q->d->channel, q->name, NULL, &hints,
			 dns_rdns_forward_cb, q);
}

struct dns_query *dns_rdns(struct dns *d, const struct sockaddr *sa, dns_cb *cb,
			   void *arg)
{
	struct dns_query *q;

	if (sa->sa_family != AF_INET && sa->sa_family != AF_INET6)
		return NULL;
	q = dns_query_new(d, DNS_Q_RDNS, NULL, cb, arg);
	if (q == NULL)
		return NULL;
	memcpy(&q->sa, sa,
	       sa->sa_family == AF_INET ? sizeof(struct sockaddr_in)
					: sizeof(struct sockaddr_in6));
	return q;
}

/* --- MX --- */

static int dns_mx_cmp(const void *a, const void *b)
{
	const struct dns_mx *x = a, *y = b;

	return (x->preference > y->preference) -
	       (x->preference < y->preference);
}

static void dns_mx_cb(void *arg, int status, int timeouts, unsigned char *abuf,
		      int alen)
{
	struct dns_query *q = arg;
	struct ares_mx_reply *mx = NULL;
	struct dns_mx list[DNS_MX_MAX];
	struct dns_result r;
	size_t n = 0;

	(void)timeouts;
	memset(&r, 0, sizeof(r));
	if (status == ARES_SUCCESS)
		status = ares_parse_mx_reply(abuf, alen, &mx);
	if (status != ARES_SUCCESS) {
		dns_fail(q, dns_status_of(status));
		return;
	}
	for (struct ares_mx_reply *m = mx; m != NULL && n < DNS_MX_MAX;
	     m = m->next) {
		/* A null MX is "." (c-ares gives ""); other names must be
		 * host names. */
		if (m->host[0] != '\0' && !dns_name_ok(m->host))
			continue;
		list[n].preference = m->priority;
		snprintf(list[n].host, sizeof(list[n].host), "%s", m->host);
		n++;
	}
	ares_free_data(mx);
	/* Shuffle, then a stable order by preference: equal preferences end
	 * up in random order (RFC 5321 5.1). */
	for (size_t i = n; i > 1; i--) {
		size_t j = (size_t)random() % i;
		struct dns_mx t = list[i - 1];
		list[i - 1] = list[j];
		list[j] = t;
	}
	for (size_t i = 1; i < n; i++)
		for (size_t j = i;
		     j > 0 && dns_mx_cmp(&list[j - 1], &list[j]) > 0; j--) {
			struct dns_mx t = list[j];
			list[j] = list[j - 1];
			list[j - 1] = t;
		}
	r.status = n > 0 ? DNS_OK : DNS_NOTFOUND;
	r.mx = list;
	r.nmx = n;
	dns_finish(q, &r);
}

struct dns_query *dns_mx(struct dns *d, const char *domain, dns_cb *cb,
			 void *arg)
{
	return dns_query_new(d, DNS_Q_MX, domain, cb, arg);
}

/* --- addresses --- */

static void dns_addrs_cb(void *arg, int status, int timeouts,
			 struct ares_addrinfo *ai)
{
	struct dns_query *q = arg;
	struct sockaddr_storage list[DNS_ANSWERS_MAX];
	struct dns_result r;
	size_t n = 0;

	(void)timeouts;
	memset(&r, 0, sizeof(r));
	if (status != ARES_SUCCESS || ai == NULL) {
		if (ai != NULL)
			ares_freeaddrinfo(ai);
		dns_fail(q, status == ARES_SUCCESS ? DNS_NOTFOUND
						   : dns_status_of(status));
		return;
	}
	r.ttl = UINT32_MAX;
	for (struct ares_addrinfo_node *a = ai->nodes;
	     a != NULL && n < DNS_ANSWERS_MAX; a = a->ai_next) {
		size_t len;

		if (a->ai_family == AF_INET)
			len = sizeof(struct sockaddr_in);
		else if (a->ai_family == AF_INET6)
			len = sizeof(struct sockaddr_in6);
		else
			continue;
		memset(&list[n], 0, sizeof(list[n]));
		memcpy(&list[n], a->ai_addr, len);
		if (a->ai_ttl >= 0 && (uint32_t)a->ai_ttl < r.ttl)
			r.ttl = (uint32_t)a->ai_ttl;
		n++;
	}
	ares_freeaddrinfo(ai);
	if (r.ttl == UINT32_MAX)
		r.ttl = 0;
	r.status = n > 0 ? DNS_OK : DNS_NOTFOUND;
	r.addrs = list;
	r.naddrs = n;
	dns_finish(q, &r);
}

struct dns_query *dns_addrs(struct dns *d, const char *host, dns_cb *cb,
			    void *arg)
{
	return dns_query_new(d, DNS_Q_ADDRS, host, cb, arg);
}

/* --- A and TXT (DNSBL) --- */

/* Skips a domain name in a DNS message at *off (labels or a compression
 * pointer). Returns 0, or -1 when it runs past the end. */
static int dns_skip_name(const unsigned char *m, int len, int *off)
{
	while (*off < len) {
		unsigned c = m[*off];

		if (c == 0) {
			(*off)++;
			return 0;
		}
		if ((c & 0xc0) == 0xc0) {
			*off += 2;
			return *off <= len ? 0 : -1;
		}
		if ((c & 0xc0) != 0)
			return -1;
		*off += 1 + (int)c;
	}
	return -1;
}

/* The negative-caching TTL of a "no such name" or "no data" answer
 * (RFC 2308 5): the smaller of the SOA record's TTL and its MINIMUM, from
 * the authority section. 0 when there is no SOA. */
static uint32_t dns_negative_ttl(const unsigned char *m, int len)
{
	int off = 12, qd, an, ns;

	if (m == NULL || len < 12)
		return 0;
	qd = m[4] << 8 | m[5];
	an = m[6] << 8 | m[7];
	ns = m[8] << 8 | m[9];
	for (int i = 0; i < qd; i++)
		if (dns_skip_name(m, len, &off) < 0 || (off += 4) > len)
			return 0;
	for (int i = 0; i < an + ns; i++) {
		unsigned type, rdlen;
		uint32_t ttl;

		if (dns_skip_name(m, len, &off) < 0 || off + 10 > len)
			return 0;
		type = (unsigned)(m[off] << 8 | m[off + 1]);
		ttl = (uint32_t)m[off + 4] << 24 | (uint32_t)m[off + 5] << 16 |
		      (uint32_t)m[off + 6] << 8 | m[off + 7];
		rdlen = (unsigned)(m[off + 8] << 8 | m[off + 9]);
		off += 10;
		if (off + (int)rdlen > len)
			return 0;
		if (i >= an && type == 6 /* SOA */ && rdlen >= 22) {
			const unsigned char *p = m + off + rdlen - 4;
			uint32_t min = (uint32_t)p[0] << 24 |
				       (uint32_t)p[1] << 16 |
				       (uint32_t)p[2] << 8 | p[3];
			return ttl < min ? ttl : min;
		}
		off += (int)rdlen;
	}
	return 0;
}

static void dns_a_cb(void *arg, int status, int timeouts, unsigned char *abuf,
		     int alen)
{
	struct dns_query *q = arg;
	struct ares_addrttl ttls[DNS_ANSWERS_MAX];
	struct sockaddr_storage list[DNS_ANSWERS_MAX];
	int n = DNS_ANSWERS_MAX;
	struct dns_result r;

	(void)timeouts;
	memset(&r, 0, sizeof(r));
	if (status == ARES_SUCCESS)
		status = ares_parse_a_reply(abuf, alen, NULL, ttls, &n);
	if (status != ARES_SUCCESS) {
		r.status = dns_status_of(status);
		if (r.status == DNS_NOTFOUND)
			r.ttl = dns_negative_ttl(abuf, alen);
		dns_finish(q, &r);
		return;
	}
	r.ttl = UINT32_MAX;
	for (int i = 0; i < n; i++) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&list[i];

		memset(&list[i], 0, sizeof(list[i]));
		sin->sin_family = AF_INET;
		sin->sin_addr = ttls[i].ipaddr;
		if (ttls[i].ttl >= 0 && (uint32_t)ttls[i].ttl < r.ttl)
			r.ttl = (uint32_t)ttls[i].ttl;
	}
	if (r.ttl == UINT32_MAX)
		r.ttl = 0;
	r.status = n > 0 ? DNS_OK : DNS_NOTFOUND;
	r.addrs = list;
	r.naddrs = (size_t)n;
	dns_finish(q, &r);
}

struct dns_query *dns_a(struct dns *d, const char *name, dns_cb *cb, void *arg)
{
	return dns_query_new(d, DNS_Q_A, name, cb, arg);
}

static void dns_txt_cb(void *arg, int status, int timeouts, unsigned char *abuf,
		       int alen)
{
	struct dns_query *q = arg;
	struct ares_txt_ext *txt = NULL;
	char *list[DNS_ANSWERS_MAX];
	struct dns_result r;
	size_t n = 0;

	(void)timeouts;
	memset(&r, 0, sizeof(r));
	if (status == ARES_SUCCESS)
		status = ares_parse_txt_reply_ext(abuf, alen, &txt);
	if (status != ARES_SUCCESS) {
		dns_fail(q, dns_status_of(status));
		return;
	}
	/* A record may be split into several strings: join them. */
	for (struct ares_txt_ext *t = txt; t != NULL; t = t->next) {
		size_t have, len = t->length;
		char *s;

		if (t->record_start || n == 0) {
			if (n == DNS_ANSWERS_MAX)
				break;
			list[n] = calloc(1, 1);
			if (list[n] == NULL)
				break;
			n++;
		}
		have = strlen(list[n - 1]);
		if (have + len > 4096)
			continue;
		s = realloc(list[n - 1], have + len + 1);
		if (s == NULL)
			continue;
		memcpy(s + have, t->txt, len);
		s[have + len] = '\0';
		/* NUL bytes would cut the text: make them '?' */
		for (size_t i = have; i < have + len; i++)
			if (s[i] == '\0')
				s[i] = '?';
		list[n - 1] = s;
	}
	ares_free_data(txt);
	r.status = n > 0 ? DNS_OK : DNS_NOTFOUND;
	r.txt = list;
	r.ntxt = n;
	dns_finish(q, &r);
	for (size_t i = 0; i < n; i++)
		free(list[i]);
}

struct dns_query *dns_txt(struct dns *d, const char *name, dns_cb *cb,
			  void *arg)
{
	return dns_query_new(d, DNS_Q_TXT, name, cb, arg);
}

/* Starts q in c-ares (on the loop; its callback may run at once). */
static void dns_launch(struct dns_query *q)
{
	ares_channel ch = q->d->channel;
	struct ares_addrinfo_hints hints;

	switch (q->kind) {
	case DNS_Q_RDNS:
		if (q->sa.ss_family == AF_INET)
			ares_gethostbyaddr(
				ch, &((struct sockaddr_in *)&q->sa)->sin_addr,
				sizeof(struct in_addr), AF_INET,
				dns_rdns_ptr_cb, q);
		else
			ares_gethostbyaddr(
				ch, &((struct sockaddr_in6 *)&q->sa)->sin6_addr,
				sizeof(struct in6_addr), AF_INET6,
				dns_rdns_ptr_cb, q);
		break;
	case DNS_Q_MX:
		ares_query(ch, q->name, 1 /* IN */, 15 /* MX */, dns_mx_cb, q);
		break;
	case DNS_Q_ADDRS:
		memset(&hints, 0, sizeof(hints));
		hints.ai_family = AF_UNSPEC;
		ares_getaddrinfo(ch, q->name, NULL, &hints, dns_addrs_cb, q);
		break;
	case DNS_Q_A:
		ares_query(ch, q->name, 1 /* IN */, 1 /* A */, dns_a_cb, q);
		break;
	case DNS_Q_TXT:
		ares_query(ch, q->name, 1 /* IN */, 16 /* TXT */, dns_txt_cb,
			   q);
		break;
	}
}

int dns_reverse_name(const struct sockaddr *sa, const char *zone, char *out,
		     size_t size)
{
	size_t used = 0;
	int n;

	if (sa->sa_family == AF_INET) {
		const unsigned char *b =
			(const unsigned char *)&((const struct sockaddr_in *)sa)
				->sin_addr;
		n = snprintf(out, size, "%u.%u.%u.%u.%s", b[3], b[2], b[1],
			     b[0], zone);
		return n < 0 || (size_t)n >= size ? -1 : 0;
	}
	if (sa->sa_family != AF_INET6)
		return -1;
	{
		const unsigned char *b =
			((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
		static const char hex[] = "0123456789abcdef";

		for (int i = 15; i >= 0; i--) {
			if (used + 4 >= size)
				return -1;
			out[used++] = hex[b[i] & 0xf];
			out[used++] = '.';
			out[used++] = hex[b[i] >> 4];
			out[used++] = '.';
		}
		n = snprintf(out + used, size - used, "%s", zone);
		return n < 0 || (size_t)n >= size - used ? -1 : 0;
	}
}
