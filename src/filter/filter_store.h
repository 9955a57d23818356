/* The content filter's rules as the directory keeps them. */
#ifndef PETREL_FILTER_STORE_H
#define PETREL_FILTER_STORE_H

#include <stddef.h>

#include "filter/filter_eval.h"

struct directory;

/*
 * Reads every rule of the directory, in order, and compiles them. Returns
 * the set (refcount 1; an empty set when there are no rules), or NULL
 * with error set (a rule that no longer parses names itself).
 */
struct filter_set *filter_store_load(struct directory *d, char *error,
				     size_t errsize);

/* filter_facts.is_member over a directory handle (ctx). */
int filter_store_is_member(void *ctx, const char *group, const char *address);

/*
 * The names of the rules with a condition on group (sender or recipient
 * in-group, without regard to case), appended to out as "\"a\", \"b\"".
 * Returns how many, or -1 when the rules cannot be read.
 */
int filter_store_group_rules(struct directory *d, const char *group,
			     struct buf *out);

/* The primary domain: the first local domain by name ("" when none). */
void filter_store_primary_domain(struct directory *d, char *out, size_t size);

#endif
