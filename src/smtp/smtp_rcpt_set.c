/*
 * smtp_rcpt_set: the duplicate-recipient check of a transaction. A
 * message may name smtp.max_recipients (up to 100,000) recipients, and
 * comparing each with all before it was quadratic. Open addressing over
 * indexes into the session's recipient array; the hash is SipHash with a
 * random key, so that a client cannot choose addresses that collide.
 */
#include "smtp/smtp_rcpt_set.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

void smtp_rcpt_set_init(struct smtp_rcpt_set *set)
{
	memset(set, 0, sizeof(*set));
}

void smtp_rcpt_set_deinit(struct smtp_rcpt_set *set)
{
	free(set->slots);
	smtp_rcpt_set_init(set);
}

/* strcasecmp's equality: ASCII letters folded. */
static uint64_t smtp_rcpt_hash(const struct smtp_rcpt_set *set,
			       const char *addr)
{
	unsigned char low[ADDR_FORMAT_SIZE];
	unsigned char out[crypto_shorthash_BYTES];
	size_t n = 0;
	uint64_t h;

	for (; n < sizeof(low) && addr[n] != '\0'; n++) {
		unsigned char c = (unsigned char)addr[n];
		low[n] = c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
	}
	crypto_shorthash(out, low, n, set->key);
	memcpy(&h, out, sizeof(h));
	return h;
}

/* The slot of addr: the one that holds it, or the empty one where it
 * goes. */
static size_t smtp_rcpt_slot(const struct smtp_rcpt_set *set,
			     const struct smtp_rcpt *rcpts, const char *addr)
{
	size_t mask = set->cap - 1;
	size_t i = (size_t)smtp_rcpt_hash(set, addr) & mask;

	while (set->slots[i] != 0 &&
	       strcasecmp(rcpts[set->slots[i] - 1].addr, addr) != 0)
		i = (i + 1) & mask;
	return i;
}

/* Doubles the table (at most half full after it). Returns 0 or -1. */
static int smtp_rcpt_grow(struct smtp_rcpt_set *set,
			  const struct smtp_rcpt *rcpts)
{
	struct smtp_rcpt_set bigger = *set;

	bigger.cap = set->cap != 0 ? set->cap * 2 : 64;
	bigger.slots = calloc(bigger.cap, sizeof(*bigger.slots));
	if (bigger.slots == NULL)
		return -1;
	for (size_t i = 0; i < set->cap; i++) {
		uint32_t v = set->slots[i];

		if (v != 0)
			bigger.slots[smtp_rcpt_slot(&bigger, rcpts,
						    rcpts[v - 1].addr)] = v;
	}
	free(set->slots);
	*set = bigger;
	return 0;
}

int smtp_rcpt_set_add(struct smtp_rcpt_set *set, const struct smtp_rcpt *rcpts,
		      size_t index)
{
	size_t i;

	if (index >= UINT32_MAX)
		return -1;
	if (set->cap == 0)
		randombytes_buf(set->key, sizeof(set->key));
	if ((set->n + 1) * 2 > set->cap && smtp_rcpt_grow(set, rcpts) < 0)
		return -1;
	i = smtp_rcpt_slot(set, rcpts, rcpts[index].addr);
	if (set->slots[i] != 0)
		return 1;
	set->slots[i] = (uint32_t)index + 1;
	set->n++;
	return 0;
}
