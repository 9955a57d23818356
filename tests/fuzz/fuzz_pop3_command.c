/* Fuzzes the POP3 command parser: pop3_parse_command on the input as a
 * line, then the message-number and TOP parsers on its argument text and
 * on the whole input; and the Maildir-name and wire-form functions of
 * pop3_mailbox on the same bytes. Nothing may read outside the input, and
 * what is accepted must hold the documented shapes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "pop3/pop3_mailbox.h"
#include "pop3/pop3_parse.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	/* The UIDL hash is BLAKE2b from libsodium. */
	return sodium_init() < 0 ? 1 : 0;
}

static void fuzz_numbers(const char *s, size_t len)
{
	unsigned long n, m;

	if (pop3_parse_msgnum(s, len, &n)) {
		if (n == 0 || len == 0 || len > 9)
			abort();
		for (size_t i = 0; i < len; i++)
			if (s[i] < '0' || s[i] > '9')
				abort();
	}
	if (pop3_parse_top(s, len, &n, &m)) {
		const char *sp = memchr(s, ' ', len);

		if (n == 0 || sp == NULL || sp == s || sp + 1 == s + len)
			abort();
	}
}

static void fuzz_name(const uint8_t *data, size_t size)
{
	char *name = malloc(size + 1), out[POP3_UIDL_MAX + 1], seen[600];
	uint64_t w;
	size_t n;
	int r;

	if (name == NULL)
		return;
	memcpy(name, data, size);
	name[size] = '\0';
	pop3_mailbox_uidl(name, out);
	n = strlen(out);
	if (n == 0 || n > POP3_UIDL_MAX)
		abort();
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)out[i] < 0x21 ||
		    (unsigned char)out[i] > 0x7e)
			abort();
	(void)pop3_mailbox_name_wsize(name, &w);
	r = pop3_mailbox_seen_name(name, seen, sizeof(seen));
	if (r >= 0) {
		const char *info = strstr(seen, ":2,");
		if (info == NULL || strchr(info, 'S') == NULL)
			abort();
	}
	free(name);
}

static void fuzz_conv(const uint8_t *data, size_t size)
{
	struct pop3_conv c;
	char *out = malloc(2 * size + 8);
	size_t n, half = size / 2;
	int64_t top = size > 0 ? (int64_t)(data[0] % 8) - 1 : -1;

	if (out == NULL)
		return;
	pop3_conv_init(&c, 1, top);
	n = pop3_conv_feed(&c, (const char *)data, half, out);
	n += pop3_conv_feed(&c, (const char *)data + half, size - half,
			    out + n);
	if (n > 2 * size)
		abort();
	n += pop3_conv_finish(&c, out + n);
	if (n < 3 || memcmp(out + n - 3, ".\r\n", 3) != 0)
		abort();
	/* Every LF ends a CRLF; the end line is alone on its line. */
	for (size_t i = 0; i < n; i++)
		if (out[i] == '\n' && (i == 0 || out[i - 1] != '\r'))
			abort();
	if (n > 3 && out[n - 4] != '\n')
		abort();
	/* A line of the body that is a lone "." can only be the end. */
	for (size_t i = 0; i + 3 < n; i++)
		if ((i == 0 || out[i - 1] == '\n') &&
		    memcmp(out + i, ".\r\n", 3) == 0)
			abort();
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *line = (const char *)data;
	struct pop3_cmd cmd;
	int ret = pop3_parse_command(line, size, &cmd);

	if (ret != 0 && ret != 1)
		abort();
	if ((ret == 1) != (cmd.verb != POP3_CMD_UNKNOWN))
		abort();
	if (cmd.args != NULL) {
		if (cmd.args_len == 0 || cmd.args <= line ||
		    cmd.args + cmd.args_len != line + size ||
		    cmd.args[-1] != ' ')
			abort();
		fuzz_numbers(cmd.args, cmd.args_len);
	} else if (cmd.args_len != 0) {
		abort();
	}
	if (ret == 1 && strlen(pop3_verb_name(cmd.verb)) == 0)
		abort();
	fuzz_numbers(line, size);
	fuzz_name(data, size);
	fuzz_conv(data, size);
	return 0;
}
