/*
 * Fuzzes the spool file parser (queue_envelope_parse): the input is a
 * whole spool file. It is parsed as is, then once more with its checksums
 * and magic repaired, so that mutations reach the record parser behind
 * them. A parsed envelope must keep the promises of queue.h.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "queue/queue.h"

#define TRAILER 48

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t crc32_ieee(const uint8_t *p, size_t len)
{
	uint32_t crc = 0xffffffffu;

	while (len-- > 0) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1)));
	}
	return ~crc;
}

static uint64_t get_le(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = n - 1; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static int has_control(const char *s)
{
	for (; *s != '\0'; s++) {
		if ((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f)
			return 1;
	}
	return 0;
}

static void check(const struct queue_envelope *env)
{
	const char *s[] = {env->sender,	    env->client_ip, env->helo,
			   env->listener,   env->protocol,  env->auth_account,
			   env->message_id, env->subject,   env->reason};

	if (env->rcpt_count == 0 || env->rcpt_count > QUEUE_RCPT_MAX)
		__builtin_trap();
	for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++) {
		if (s[i] == NULL || strpbrk(s[i], "\r\n") != NULL)
			__builtin_trap();
	}
	if (strlen(env->subject) > QUEUE_SUBJECT_MAX ||
	    strlen(env->reason) > QUEUE_REASON_MAX)
		__builtin_trap();
	/* Free text reads back as its writer made it: control characters
	 * as spaces. */
	if (has_control(env->subject) || has_control(env->reason))
		__builtin_trap();
	for (size_t i = 0; i < env->rcpt_count; i++) {
		const struct queue_rcpt *r = &env->rcpts[i];
		if (r->address == NULL || r->address[0] == '\0' ||
		    r->mailbox == NULL || r->error == NULL ||
		    strlen(r->error) > QUEUE_ERROR_MAX || has_control(r->error))
			__builtin_trap();
		if (r->kind == QUEUE_RCPT_LOCAL && r->mailbox[0] == '\0')
			__builtin_trap();
		if (r->status != QUEUE_RCPT_PENDING &&
		    r->status != QUEUE_RCPT_DONE &&
		    r->status != QUEUE_RCPT_FAILED)
			__builtin_trap();
	}
}

static void parse(const uint8_t *data, size_t size)
{
	struct queue_envelope *env = NULL;
	const char *error = NULL;

	if (queue_envelope_parse(data, size, &env, &error) == 1) {
		check(env);
		queue_envelope_free(env);
	} else if (error == NULL || env != NULL) {
		__builtin_trap();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy, *t;
	uint64_t body_len, env_len;

	parse(data, size);
	if (size < TRAILER)
		return 0;
	/* An exact-size copy, so ASan sees reads past the end. */
	copy = malloc(size);
	if (copy == NULL)
		return 0;
	memcpy(copy, data, size);
	t = copy + size - TRAILER;
	body_len = get_le(t, 8);
	env_len = get_le(t + 16, 4);
	memcpy(t + 40, "PETRELQ1", 8);
	if (body_len <= size - TRAILER && env_len <= size - TRAILER - body_len)
		put_le32(t + 24, crc32_ieee(copy + body_len, (size_t)env_len));
	put_le32(t + 32, crc32_ieee(t, 32));
	parse(copy, size);
	free(copy);
	return 0;
}
