/*
 * spam: adds up a message's score, compares it with spam.tag_score and
 * spam.reject_score, and writes the X-Spam-* header fields and the
 * subject tag. A client's own X-Spam-* fields are removed first, so that
 * a reader (or the content filter) never trusts a forged "X-Spam-Flag: NO".
 */
#include "policy/spam.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "lib/buf.h"
#include "lib/header.h"

void spam_score_add(struct spam_score *s, double points, const char *tests)
{
	size_t have = strlen(s->tests);
	const char *p = tests;

	s->score += points;
	while (p != NULL && *p != '\0') {
		size_t n = strcspn(p, ",");

		if (n > 0 && have + (have > 0) + n < sizeof(s->tests)) {
			if (have > 0)
				s->tests[have++] = ',';
			memcpy(s->tests + have, p, n);
			have += n;
			s->tests[have] = '\0';
		}
		p += n;
		if (*p == ',')
			p++;
	}
}

enum spam_verdict spam_verdict(double score, double tag_score,
			       double reject_score)
{
	/* Scores are compared in tenths, as they are shown. */
	double shown =
		(double)(long long)(score * 10 + (score < 0 ? -0.5 : 0.5)) / 10;

	if (shown >= reject_score)
		return SPAM_REJECT;
	if (shown >= tag_score)
		return SPAM_TAG;
	return SPAM_HAM;
}

static int spam_is_xspam(const struct header_field *f)
{
	return f->name_len >= 7 && strncasecmp(f->name, "X-Spam-", 7) == 0;
}

/* "tests=A,B,C" folded before a name that would pass 78 columns. */
static int spam_append_tests(struct buf *out, const char *tests, size_t col)
{
	const char *p = tests;

	if (*p == '\0')
		return buf_append_str(out, "none");
	while (*p != '\0') {
		size_t n = strcspn(p, ",");
		int comma = p[n] == ',';

		if (col + n + 1 > 78 && col > 8) {
			if (buf_append_str(out, "\r\n\t") < 0)
				return -1;
			col = 8;
		}
		if (buf_append(out, p, n + (size_t)comma) < 0)
			return -1;
		col += n + (size_t)comma;
		p += n + (size_t)comma;
	}
	return 0;
}

/* The rewrite: with s NULL, only the stripping. */
static int spam_rewrite(struct buf *msg, const struct spam_score *s,
			double required, int tagged, const char *subject_tag)
{
	struct buf out;
	struct header_field f;
	size_t pos = 0, end = 0, tag_len = strlen(subject_tag);
	int subject_seen = 0;
	char num[32];

	/* Room for the new fields even when the message is at its cap. */
	buf_init(&out, msg->max + 8192);
	while (header_next(msg->data, msg->len, &pos, &f) == 1) {
		end = pos;
		if (spam_is_xspam(&f))
			continue;
		if (s != NULL && tagged && tag_len > 0 &&
		    header_is(&f, "Subject") && !subject_seen) {
			const char *v = f.value;
			size_t vl = f.value_len;

			subject_seen = 1;
			while (vl > 0 && (*v == ' ' || *v == '\t')) {
				v++;
				vl--;
			}
			if (vl >= tag_len &&
			    memcmp(v, subject_tag, tag_len) == 0) {
				if (buf_append(&out, f.raw, f.raw_len) < 0)
					goto fail;
				continue;
			}
			if (buf_printf(&out, "Subject: %s%s", subject_tag,
				       vl > 0 ? " " : "") < 0 ||
			    buf_append(&out, v, vl) < 0 ||
			    buf_append_str(&out, "\r\n") < 0)
				goto fail;
			continue;
		}
		if (buf_append(&out, f.raw, f.raw_len) < 0)
			goto fail;
	}
	if (s != NULL) {
		if (tagged && tag_len > 0 && !subject_seen &&
		    buf_printf(&out, "Subject: %s\r\n", subject_tag) < 0)
			goto fail;
		size_t line;

		snprintf(num, sizeof(num), "%.1f", s->score);
		if ((tagged &&
		     buf_append_str(&out, "X-Spam-Flag: YES\r\n") < 0) ||
		    buf_printf(&out, "X-Spam-Score: %s\r\n", num) < 0)
			goto fail;
		line = out.len;
		if (buf_printf(&out,
			       "X-Spam-Status: %s, score=%s required=%.1f "
			       "tests=",
			       tagged ? "Yes" : "No", num, required) < 0 ||
		    spam_append_tests(&out, s->tests, out.len - line) < 0 ||
		    buf_append_str(&out, "\r\n") < 0)
			goto fail;
	}
	/* The empty line (or the first body line) and the body. */
	if (buf_append(&out, msg->data + end, msg->len - end) < 0)
		goto fail;
	buf_deinit(msg);
	*msg = out;
	return 0;
fail:
	buf_deinit(&out);
	return -1;
}

int spam_headers_apply(struct buf *msg, const struct spam_score *s,
		       double required, int tagged, const char *subject_tag)
{
	return spam_rewrite(msg, s, required, tagged, subject_tag);
}

int spam_headers_strip(struct buf *msg)
{
	return spam_rewrite(msg, NULL, 0, 0, "");
}
