/* Fuzzes the SMTP command parser: smtp_parse_command on the input as a
 * line, then the MAIL, RCPT and HELO argument parsers on its arguments
 * whatever the verb. Replies must be one short clean line with a 5xx code;
 * what is accepted must be a clean address. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_check_reply(const char *reply, const char *why)
{
	size_t n;

	if (reply == NULL || why == NULL)
		abort();
	n = strnlen(reply, SMTP_PARSE_REPLY_MAX);
	if (n >= SMTP_PARSE_REPLY_MAX || n < 10)
		abort();
	if (reply[0] != '5' || reply[1] < '0' || reply[1] > '5' ||
	    reply[2] < '0' || reply[2] > '9' || reply[3] != ' ')
		abort();
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)reply[i] < 0x20 ||
		    (unsigned char)reply[i] > 0x7e)
			abort();
}

static void fuzz_check_addr(const struct addr *a, int null_ok)
{
	char text[ADDR_FORMAT_SIZE];
	struct addr b;
	const char *err;

	if (addr_is_null(a)) {
		if (!null_ok)
			abort();
		return;
	}
	if (addr_format(a, text, sizeof(text)) <= 0)
		abort();
	for (const char *p = text; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
			abort();
	if (a->domain[0] == '\0') {
		/* Only RCPT TO:<postmaster> has no domain. */
		if (null_ok || strcmp(a->local, "postmaster") != 0)
			abort();
		return;
	}
	if (addr_parse_mailbox(text, &b, &err) < 0 ||
	    strcmp(a->local, b.local) != 0 || strcmp(a->domain, b.domain) != 0)
		abort();
}

static void fuzz_args(const char *args, size_t len)
{
	struct smtp_mail_args m;
	struct smtp_rcpt_args r;
	const char *reply = NULL;
	char helo[300];

	if (smtp_parse_mail(args, len, &m, &reply) == 0) {
		fuzz_check_addr(&m.from, 1);
		if (m.size < -1)
			abort();
		if (memchr(args, '\r', len) != NULL ||
		    memchr(args, '\n', len) != NULL ||
		    memchr(args, '\0', len) != NULL)
			abort();
		if (m.auth_present && m.auth[0] != '\0') {
			struct addr au;
			const char *err;

			if (addr_parse_mailbox(m.auth, &au, &err) < 0)
				abort();
		}
	} else {
		fuzz_check_reply(reply, m.why);
	}
	reply = NULL;
	if (smtp_parse_rcpt(args, len, &r, &reply) == 0)
		fuzz_check_addr(&r.to, 0);
	else
		fuzz_check_reply(reply, r.why);
	if (smtp_parse_helo(args, len, helo, sizeof(helo)) == 1) {
		size_t n = strlen(helo);

		if (n == 0 || n > len || memcmp(helo, args, n) != 0)
			abort();
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)helo[i] <= 0x20 ||
			    (unsigned char)helo[i] > 0x7e)
				abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *line = (const char *)data;
	struct smtp_cmd cmd;
	int ret;

	ret = smtp_parse_command(line, size, &cmd);
	if (ret != 0 && ret != 1)
		abort();
	if ((ret == 1) != (cmd.verb != SMTP_CMD_UNKNOWN))
		abort();
	if (cmd.args != NULL) {
		if (cmd.args_len == 0 || cmd.args <= line ||
		    cmd.args + cmd.args_len != line + size ||
		    cmd.args[-1] != ' ')
			abort();
	} else if (cmd.args_len != 0) {
		abort();
	}
	/* The argument parsers on the arguments, and on the whole input. */
	if (cmd.args != NULL)
		fuzz_args(cmd.args, cmd.args_len);
	fuzz_args(line, size);
	return 0;
}
