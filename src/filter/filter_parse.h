/* The content filter's rule file format (docs/filter.md). Pure. */
#ifndef PETREL_FILTER_PARSE_H
#define PETREL_FILTER_PARSE_H

#include <stddef.h>

#include "filter/filter_rule.h"

#define FILTER_FILE_MAX (16 * 1024 * 1024) /* bytes of a rule file */

/*
 * Parses a rule file of len bytes (not necessarily NUL-terminated) and
 * appends its rules, in order, to out. Every value is checked here: regular
 * expressions compile (PCRE2), networks parse, addresses are addresses,
 * reply codes are 4xx or 5xx with a matching enhanced status code, names
 * are unique. Returns the number of rules read (>= 0), or -1 with error
 * (errsize bytes) set to "line N: expected ..." and out unchanged.
 */
int filter_parse(const char *text, size_t len, struct filter_rules *out,
		 char *error, size_t errsize);

/*
 * Parses exactly one rule (the text of one rule as filter_rule_write()
 * writes it) into *r. Returns 0, or -1 with error set.
 */
int filter_parse_rule(const char *text, size_t len, struct filter_rule *r,
		      char *error, size_t errsize);

#endif
