/* The recipients of a transaction named so far, as a hash set over the
 * session's recipient array: RCPT's duplicate check in constant time. */
#ifndef PETREL_SMTP_RCPT_SET_H
#define PETREL_SMTP_RCPT_SET_H

#include <stddef.h>
#include <stdint.h>

#include "smtp/smtp_commit.h"

struct smtp_rcpt_set {
	uint32_t *slots; /* index + 1 into the recipients; 0: empty */
	size_t cap;	 /* slots, a power of two (0: none yet) */
	size_t n;	 /* recipients in the set */
	unsigned char key[16];
};

/* An empty set. No allocation. */
void smtp_rcpt_set_init(struct smtp_rcpt_set *set);
/* Frees the storage; the set is empty again, ready for use. */
void smtp_rcpt_set_deinit(struct smtp_rcpt_set *set);
/*
 * rcpts[index] is a new recipient; rcpts[0..index) are those in the set.
 * Returns 1 when its address is already there (compared as strcasecmp
 * does), 0 when it was added, -1 out of memory (not added).
 */
int smtp_rcpt_set_add(struct smtp_rcpt_set *set, const struct smtp_rcpt *rcpts,
		      size_t index);

#endif
