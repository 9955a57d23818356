/*
 * smtp_stamp: the trace and identity headers an accepted message gets
 * (RFC 5321 4.4, RFC 3848, RFC 5322 3.6): Received, X-Authenticated-Sender
 * (client-supplied ones removed first, so the header can be trusted),
 * Message-ID and, on submission, Date when missing. Pure but for the
 * random part of a new Message-ID.
 */
#include "smtp/smtp_commit.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "lib/header.h"

static void smtp_stamp_date(int64_t now, char *out, size_t size)
{
	time_t t = (time_t)now;
	struct tm tm;
	static const char *const days[] = {"Sun", "Mon", "Tue", "Wed",
					   "Thu", "Fri", "Sat"};
	static const char *const months[] = {"Jan", "Feb", "Mar", "Apr",
					     "May", "Jun", "Jul", "Aug",
					     "Sep", "Oct", "Nov", "Dec"};
	long off;

	localtime_r(&t, &tm);
	off = tm.tm_gmtoff / 60;
	/* RFC 5322 3.3, in English whatever the locale. */
	snprintf(out, size, "%s, %d %s %04d %02d:%02d:%02d %c%02ld%02ld",
		 days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon],
		 tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec,
		 off < 0 ? '-' : '+', (off < 0 ? -off : off) / 60,
		 (off < 0 ? -off : off) % 60);
}

long smtp_stamp_headers(struct buf *out, const char *msg, size_t len,
			const struct smtp_stamp *st, char *message_id_r,
			size_t mid_size, char *subject_r, size_t subj_size)
{
	struct header_field f;
	size_t pos = 0;
	int have_mid = 0, have_date = 0, r = 0;
	char date[64];

	message_id_r[0] = '\0';
	subject_r[0] = '\0';
	smtp_stamp_date(st->now, date, sizeof(date));
	/* TCP-info is an address-literal: "[IPv6:...]" for IPv6 (RFC 5321
	 * 4.1.3, 4.4). */
	r |= buf_printf(out,
			"Received: from %s (%s [%s%s])\r\n\tby %s (Petrel) "
			"with %s id %s",
			st->helo[0] != '\0' ? st->helo : "unknown",
			st->rdns[0] != '\0' ? st->rdns : "unknown",
			strchr(st->ip, ':') != NULL ? "IPv6:" : "", st->ip,
			st->hostname, st->proto, st->queue_id);
	if (st->tls_info[0] != '\0')
		r |= buf_printf(out, "\r\n\t(%s)", st->tls_info);
	if (st->rcpt_for != NULL)
		r |= buf_printf(out, "\r\n\tfor <%s>", st->rcpt_for);
	r |= buf_printf(out, "; %s\r\n", date);
	if (st->auth[0] != '\0')
		r |= buf_printf(out, "X-Authenticated-Sender: %s\r\n",
				st->auth);
	while (header_next(msg, len, &pos, &f) == 1) {
		if (header_is(&f, "X-Authenticated-Sender"))
			continue;
		if (header_is(&f, "Message-ID") && !have_mid) {
			/* An empty one names nothing: the logs would name
			 * the message by an id it does not carry. Replace
			 * it with ours. */
			char probe[2];

			if (header_unfold(&f, probe, sizeof(probe)) == 0)
				continue;
			have_mid = 1;
			header_unfold(&f, message_id_r, mid_size);
		} else if (header_is(&f, "Date")) {
			have_date = 1;
		} else if (header_is(&f, "Subject") && subject_r[0] == '\0') {
			header_unfold(&f, subject_r, subj_size);
		}
		r |= buf_append(out, f.raw, f.raw_len);
		/* A last field without its CRLF still ends its line. */
		if (f.raw_len < 2 || f.raw[f.raw_len - 1] != '\n')
			r |= buf_append(out, "\r\n", 2);
	}
	if (!have_mid) {
		unsigned char rnd[8];
		char mid[512];

		randombytes_buf(rnd, sizeof(rnd));
		snprintf(mid, sizeof(mid),
			 "<%s.%02x%02x%02x%02x%02x%02x%02x%02x@%s>",
			 st->queue_id, rnd[0], rnd[1], rnd[2], rnd[3], rnd[4],
			 rnd[5], rnd[6], rnd[7], st->hostname);
		/* The header gets the whole id even when the caller's
		 * copy is cut. */
		r |= buf_printf(out, "Message-ID: %s\r\n", mid);
		snprintf(message_id_r, mid_size, "%s", mid);
	}
	if (st->submission && !have_date)
		r |= buf_printf(out, "Date: %s\r\n", date);
	r |= buf_append(out, "\r\n", 2);
	if (r != 0)
		return -1;
	/* header_next stopped at the body (after the empty line, if any). */
	return (long)pos;
}
