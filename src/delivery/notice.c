/*
 * notice: the messages Petrel writes itself (hijack alerts and their
 * confirmations, screening notes, content filter notes). Composed here
 * and queued from the null sender like any other message, so they are
 * delivered, retried and traced like the rest.
 */
#include "delivery/notice.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "delivery/remote_dsn.h"
#include "delivery/remote_route.h"
#include "directory/directory.h"
#include "lib/buf.h"
#include "lib/log.h"

#define NOTICE_MAX (64 * 1024 * 1024) /* attachment included */
#define NOTICE_LINE_MAX 998	      /* RFC 5322 2.1.1 */
#define NOTICE_WORD_IN 45 /* input octets per encoded word (60 out) */

static int notice_ascii(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			return 0;
	return 1;
}

/* Free text in a header field: as it is when ASCII, else RFC 2047 words
 * of base64 (never splitting a UTF-8 sequence), folded between words. */
static int notice_text(struct buf *out, const char *value, size_t max)
{
	char clean[1024], enc[128];
	size_t n, i = 0;
	int rc = 0;

	n = value != NULL ? strlen(value) : 0;
	if (n > max)
		n = max;
	if (n >= sizeof(clean))
		n = sizeof(clean) - 1;
	for (size_t k = 0; k < n; k++) {
		unsigned char c = (unsigned char)value[k];
		clean[k] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
	}
	clean[n] = '\0';
	if (notice_ascii(clean))
		return buf_append_str(out, clean);
	while (i < n) {
		size_t len = n - i > NOTICE_WORD_IN ? NOTICE_WORD_IN : n - i;

		/* Back off to the start of a UTF-8 sequence. */
		while (len > 1 && i + len < n &&
		       ((unsigned char)clean[i + len] & 0xc0) == 0x80)
			len--;
		sodium_bin2base64(enc, sizeof(enc),
				  (const unsigned char *)clean + i, len,
				  sodium_base64_VARIANT_ORIGINAL);
		rc |= buf_printf(out, "%s=?UTF-8?B?%s?=", i > 0 ? "\r\n " : "",
				 enc);
		i += len;
	}
	return rc;
}

/* The body: CRLF line ends, lines cut at NOTICE_LINE_MAX. */
static int notice_body(struct buf *out, const char *text)
{
	const char *p = text != NULL ? text : "";
	int rc = 0;

	while (*p != '\0') {
		size_t n = strcspn(p, "\n");
		size_t len = n;

		if (len > 0 && p[len - 1] == '\r')
			len--;
		if (len > NOTICE_LINE_MAX)
			len = NOTICE_LINE_MAX;
		for (size_t k = 0; k < len; k++) {
			unsigned char c = (unsigned char)p[k];
			char ch = (c < 0x20 && c != '\t') || c == 0x7f
					  ? ' '
					  : (char)c;

			rc |= buf_append(out, &ch, 1);
		}
		rc |= buf_append(out, "\r\n", 2);
		p += n;
		if (*p == '\n')
			p++;
	}
	return rc;
}

int notice_compose(const struct notice *n, const char *message_id,
		   const char *boundary, struct buf *out)
{
	char date[64];
	int rc = 0;

	remote_dsn_date(n->now, date, sizeof(date));
	rc |= buf_printf(out, "Date: %s\r\n", date);
	rc |= buf_append_str(out, "From: ");
	if (n->from_name != NULL && n->from_name[0] != '\0') {
		rc |= notice_text(out, n->from_name, 200);
		rc |= buf_append_str(out, " ");
	}
	rc |= buf_append_str(out, "<");
	rc |= buf_append_clean(out, n->from, DIRECTORY_ADDRESS_MAX);
	rc |= buf_append_str(out, ">\r\nTo: ");
	for (size_t i = 0; i < n->nto && i < NOTICE_TO_MAX; i++) {
		rc |= buf_append_str(out, i > 0 ? ",\r\n <" : "<");
		rc |= buf_append_clean(out, n->to[i], DIRECTORY_ADDRESS_MAX);
		rc |= buf_append_str(out, ">");
	}
	rc |= buf_append_str(out, "\r\n");
	if (n->reply_to != NULL && n->reply_to[0] != '\0') {
		rc |= buf_append_str(out, "Reply-To: <");
		rc |= buf_append_clean(out, n->reply_to, DIRECTORY_ADDRESS_MAX);
		rc |= buf_append_str(out, ">\r\n");
	}
	rc |= buf_append_str(out, "Subject: ");
	rc |= notice_text(out, n->subject, 300);
	rc |= buf_append_str(out, "\r\nMessage-ID: ");
	rc |= buf_append_clean(out, message_id, 300);
	rc |= buf_append_str(out, "\r\nAuto-Submitted: auto-generated\r\n"
				  "MIME-Version: 1.0\r\n");
	if (n->attach == NULL) {
		rc |= buf_append_str(
			out, "Content-Type: text/plain; charset=utf-8\r\n"
			     "Content-Transfer-Encoding: 8bit\r\n"
			     "\r\n");
		return rc | notice_body(out, n->text);
	}
	rc |= buf_printf(out,
			 "Content-Type: multipart/mixed; boundary=\"%s\"\r\n"
			 "\r\n"
			 "This is a MIME-encapsulated message.\r\n"
			 "\r\n"
			 "--%s\r\n"
			 "Content-Type: text/plain; charset=utf-8\r\n"
			 "Content-Transfer-Encoding: 8bit\r\n"
			 "\r\n",
			 boundary, boundary);
	rc |= notice_body(out, n->text);
	rc |= buf_printf(out,
			 "\r\n--%s\r\n"
			 "Content-Type: message/rfc822\r\n"
			 "Content-Disposition: attachment\r\n"
			 "\r\n",
			 boundary);
	rc |= buf_append(out, n->attach, n->attach_len);
	if (n->attach_len > 0 && n->attach[n->attach_len - 1] != '\n')
		rc |= buf_append_str(out, "\r\n");
	rc |= buf_printf(out, "\r\n--%s--\r\n", boundary);
	return rc;
}

/* The envelope recipient for address: its mailbox when local. Returns 1,
 * 0 when it is local without a mailbox (skipped), -1 on error. */
static int notice_rcpt(struct directory *dir, const char *address,
		       struct queue_rcpt *rc, char *mailbox,
		       const char **error_r)
{
	char domain[256];
	int r;

	memset(rc, 0, sizeof(*rc));
	rc->address = address;
	rc->mailbox = "";
	rc->kind = QUEUE_RCPT_REMOTE;
	if (!remote_route_domain(address, domain, sizeof(domain)))
		return 0;
	r = directory_domain_exists(dir, domain);
	if (r < 0) {
		*error_r = "directory lookup failed";
		return -1;
	}
	if (r == 0)
		return 1;
	r = directory_resolve(dir, address, mailbox, error_r);
	if (r <= 0)
		return r;
	rc->mailbox = mailbox;
	rc->kind = QUEUE_RCPT_LOCAL;
	return 1;
}

int notice_queue(struct queue *q, struct directory *dir, const struct notice *n,
		 char id_r[QUEUE_ID_SIZE], const char **error_r)
{
	struct queue_rcpt rcpts[NOTICE_TO_MAX];
	char mailboxes[NOTICE_TO_MAX][DIRECTORY_ADDRESS_MAX + 1];
	size_t nr = 0;

	for (size_t i = 0; i < n->nto && i < NOTICE_TO_MAX; i++) {
		int dup = 0, r;

		for (size_t k = 0; k < nr; k++)
			if (strcasecmp(rcpts[k].address, n->to[i]) == 0)
				dup = 1;
		if (dup)
			continue;
		r = notice_rcpt(dir, n->to[i], &rcpts[nr], mailboxes[nr],
				error_r);
		if (r < 0)
			return -1;
		if (r == 1)
			nr++;
	}
	if (nr == 0)
		return 0;
	return notice_queue_rcpts(q, n, rcpts, nr, id_r, error_r);
}

int notice_queue_rcpts(struct queue *q, const struct notice *n,
		       struct queue_rcpt *rcpts, size_t nr,
		       char id_r[QUEUE_ID_SIZE], const char **error_r)
{
	char mid[400], boundary[400];
	struct queue_envelope env;
	struct queue_writer *w = NULL;
	struct buf out;
	int r = -1;

	w = queue_writer_new(q, error_r);
	if (w == NULL)
		return -1;
	buf_init(&out, NOTICE_MAX);
	snprintf(mid, sizeof(mid), "<%s.%s@%s>", queue_writer_id(w),
		 n->listener != NULL ? n->listener : "notice", n->hostname);
	snprintf(boundary, sizeof(boundary), "%s/%s", queue_writer_id(w),
		 n->hostname);
	if (notice_compose(n, mid, boundary, &out) < 0) {
		*error_r = "notice too large";
		goto out;
	}
	if (queue_writer_write(w, out.data, out.len) < 0) {
		*error_r = "cannot write the notice";
		goto out;
	}
	memset(&env, 0, sizeof(env));
	env.sender = "";
	env.rcpts = rcpts;
	env.rcpt_count = nr;
	env.received = n->now;
	env.client_ip = "127.0.0.1";
	env.helo = n->hostname;
	env.listener = n->listener != NULL ? n->listener : "notice";
	env.protocol = "local";
	env.message_id = mid;
	env.subject = n->subject;
	if (queue_writer_commit(w, &env, error_r) != 1)
		goto out;
	snprintf(id_r, QUEUE_ID_SIZE, "%s", queue_writer_id(w));
	r = 1;
out:
	queue_writer_free(w);
	buf_deinit(&out);
	return r;
}
