/*
 * remote_dsn: composes delivery status notifications (RFC 3464, RFC 6522):
 * the bounce after a 5xx or the last try, and the delay warning. The
 * queue manager sends them from the null sender so that they never start
 * a loop (RFC 5321 6.1). Pure.
 */
#include "delivery/remote_dsn.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "lib/buf.h"

void remote_dsn_date(int64_t t, char *out, size_t size)
{
	static const char *const days[] = {"Sun", "Mon", "Tue", "Wed",
					   "Thu", "Fri", "Sat"};
	static const char *const months[] = {"Jan", "Feb", "Mar", "Apr",
					     "May", "Jun", "Jul", "Aug",
					     "Sep", "Oct", "Nov", "Dec"};
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL) {
		snprintf(out, size, "Thu, 01 Jan 1970 00:00:00 +0000");
		return;
	}
	snprintf(out, size, "%s, %02d %s %04d %02d:%02d:%02d +0000",
		 days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12],
		 tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* Appends the original headers: CRLF lines only, cut at a line end. */
static int remote_dsn_headers(struct buf *out, const char *h, size_t len)
{
	size_t i = 0;

	while (i < len) {
		const char *nl = memchr(h + i, '\n', len - i);
		size_t n = nl != NULL ? (size_t)(nl - (h + i)) : len - i;

		if (n > 0 && h[i + n - 1] == '\r')
			n--;
		if (n == 0)
			break; /* the end of the header section */
		for (size_t k = 0; k < n; k++) {
			unsigned char c = (unsigned char)h[i + k];
			char ch = (c == '\r' || c == '\0') ? ' ' : (char)c;

			if (buf_append(out, &ch, 1) < 0)
				return -1;
		}
		if (buf_append(out, "\r\n", 2) < 0)
			return -1;
		if (nl == NULL)
			break;
		i = (size_t)(nl - h) + 1;
	}
	return 0;
}

int remote_dsn_compose(const struct remote_dsn *d, struct buf *out)
{
	char date[64], arrival[64], when[64];
	int rc = 0;

	remote_dsn_date(d->now, date, sizeof(date));
	remote_dsn_date(d->arrival, arrival, sizeof(arrival));
	rc |= buf_printf(out, "From: Mail Delivery System <MAILER-DAEMON@");
	rc |= buf_append_clean(out, d->hostname, 255);
	rc |= buf_printf(out, ">\r\nTo: <");
	rc |= buf_append_clean(out, d->to, 512);
	rc |= buf_printf(out,
			 ">\r\nSubject: %s\r\n"
			 "Date: %s\r\n"
			 "Message-ID: ",
			 d->delayed ? "Delayed Mail (still being retried)"
				    : "Undelivered Mail Returned to Sender",
			 date);
	rc |= buf_append_clean(out, d->message_id, 300);
	rc |= buf_printf(out,
			 "\r\nAuto-Submitted: auto-replied\r\n"
			 "MIME-Version: 1.0\r\n"
			 "Content-Type: multipart/report; "
			 "report-type=delivery-status;\r\n"
			 "\tboundary=\"%s\"\r\n"
			 "\r\n"
			 "This is a MIME-encapsulated message.\r\n"
			 "\r\n"
			 "--%s\r\n"
			 "Content-Description: Notification\r\n"
			 "Content-Type: text/plain; charset=us-ascii\r\n"
			 "\r\n"
			 "This is the mail system at host ",
			 d->boundary, d->boundary);
	rc |= buf_append_clean(out, d->hostname, 255);
	rc |= buf_printf(out, ".\r\n\r\n");
	if (d->delayed) {
		remote_dsn_date(d->retry_until, when, sizeof(when));
		rc |= buf_printf(
			out,
			"Your message could not be delivered yet to the\r\n"
			"recipients below. It is still in the queue, and\r\n"
			"delivery will be tried again until %s.\r\n"
			"You need not send it again.\r\n",
			when);
	} else {
		rc |= buf_printf(
			out,
			"I'm sorry to have to inform you that your message\r\n"
			"could not be delivered to one or more recipients.\r\n"
			"It is attached below.\r\n");
	}
	rc |= buf_printf(out, "\r\n");
	for (size_t i = 0; i < d->nrcpt; i++) {
		const struct remote_dsn_rcpt *r = &d->rcpts[i];

		rc |= buf_printf(out, "<");
		rc |= buf_append_clean(out, r->address, 512);
		rc |= buf_printf(out, ">: ");
		rc |= buf_append_clean(out, r->diagnostic, 900);
		rc |= buf_printf(out, "\r\n\r\n");
	}
	rc |= buf_printf(out,
			 "--%s\r\n"
			 "Content-Description: Delivery report\r\n"
			 "Content-Type: message/delivery-status\r\n"
			 "\r\n"
			 "Reporting-MTA: dns; ",
			 d->boundary);
	rc |= buf_append_clean(out, d->hostname, 255);
	rc |= buf_printf(out, "\r\nX-Petrel-Queue-ID: ");
	rc |= buf_append_clean(out, d->queue_id, 64);
	rc |= buf_printf(out, "\r\nArrival-Date: %s\r\n", arrival);
	for (size_t i = 0; i < d->nrcpt; i++) {
		const struct remote_dsn_rcpt *r = &d->rcpts[i];

		rc |= buf_printf(out, "\r\nFinal-Recipient: rfc822; ");
		rc |= buf_append_clean(out, r->address, 512);
		rc |= buf_printf(out, "\r\nAction: %s\r\nStatus: ",
				 d->delayed ? "delayed" : "failed");
		rc |= buf_append_clean(out, r->status, 16);
		rc |= buf_printf(out, "\r\n");
		if (r->remote_mta != NULL && r->remote_mta[0] != '\0') {
			rc |= buf_printf(out, "Remote-MTA: dns; ");
			rc |= buf_append_clean(out, r->remote_mta, 255);
			rc |= buf_printf(out, "\r\n");
		}
		if (r->diagnostic != NULL && r->diagnostic[0] != '\0') {
			/* "smtp;" when it is the server's reply. */
			rc |= buf_printf(out, "Diagnostic-Code: %s; ",
					 r->remote_mta != NULL &&
							 r->remote_mta[0] !=
								 '\0'
						 ? "smtp"
						 : "x-petrel");
			rc |= buf_append_clean(out, r->diagnostic, 900);
			rc |= buf_printf(out, "\r\n");
		}
		if (r->last_attempt > 0) {
			remote_dsn_date(r->last_attempt, when, sizeof(when));
			rc |= buf_printf(out, "Last-Attempt-Date: %s\r\n",
					 when);
		}
		if (d->delayed) {
			remote_dsn_date(d->retry_until, when, sizeof(when));
			rc |= buf_printf(out, "Will-Retry-Until: %s\r\n", when);
		}
	}
	rc |= buf_printf(out,
			 "\r\n--%s\r\n"
			 "Content-Description: Undelivered Message Headers\r\n"
			 "Content-Type: text/rfc822-headers\r\n"
			 "\r\n",
			 d->boundary);
	rc |= remote_dsn_headers(out, d->headers, d->headers_len);
	rc |= buf_printf(out, "\r\n--%s--\r\n", d->boundary);
	return rc != 0 ? -1 : 0;
}
