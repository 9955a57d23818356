/* The content filter's rule model: named, ordered rules of conditions and
 * actions. Pure. */
#ifndef PETREL_FILTER_RULE_H
#define PETREL_FILTER_RULE_H

#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

#define FILTER_NAME_MAX 200	   /* bytes of a rule name */
#define FILTER_VALUE_MAX 16384	   /* bytes of one quoted value */
#define FILTER_CONDS_MAX 64	   /* conditions of one rule */
#define FILTER_ACTIONS_MAX 64	   /* actions of one rule */
#define FILTER_RULES_MAX 10000	   /* rules of one set */
#define FILTER_RULE_TEXT_MAX 65536 /* bytes of one rule's text */

/* Which recipients a rule applies to. */
enum filter_scope {
	FILTER_SCOPE_ALL = 0,
	FILTER_SCOPE_INBOUND,  /* local recipients */
	FILTER_SCOPE_OUTBOUND, /* remote recipients */
};

enum filter_cond_kind {
	FILTER_COND_ALL = 0,	     /* all-messages */
	FILTER_COND_SIZE_OVER,	     /* size > N [B|KB|MB] */
	FILTER_COND_SIZE_UNDER,	     /* size < N [B|KB|MB] */
	FILTER_COND_SENDER_GROUP,    /* sender in-group "g" */
	FILTER_COND_RCPT_GROUP,	     /* recipient in-group "g" */
	FILTER_COND_SENDER_IS,	     /* sender is "*@example.com" */
	FILTER_COND_SENDER_DOMAIN,   /* sender-domain is "*.example.com" */
	FILTER_COND_RCPT_IS,	     /* recipient is "..." */
	FILTER_COND_RCPT_DOMAIN,     /* recipient-domain is "..." */
	FILTER_COND_HEADER_CONTAINS, /* header "Name" contains "text" */
	FILTER_COND_HEADER_MATCHES,  /* header "Name" matches "regex" */
	FILTER_COND_BODY_CONTAINS,   /* body contains "text" */
	FILTER_COND_BODY_MATCHES,    /* body matches "regex" */
	FILTER_COND_HAS_ATTACHMENT,  /* has-attachment */
	FILTER_COND_ATTACHMENT_NAME, /* attachment-name is "*.exe" */
	FILTER_COND_ATTACHMENT_TYPE, /* attachment-type is "image/png" */
	FILTER_COND_AUTHENTICATED,   /* authenticated */
	FILTER_COND_CLIENT_IP,	     /* client-ip in "10.0.0.0/8, ::1" */
	FILTER_COND_SPAM_SCORE,	     /* spam-score > 5.5 */
};

enum filter_size_unit { FILTER_UNIT_B = 0, FILTER_UNIT_KB, FILTER_UNIT_MB };

struct filter_cond {
	enum filter_cond_kind kind;
	int negate;	    /* "if not ..." */
	int case_sensitive; /* contains / matches / is: "case-sensitive" */
	/* size: amount in unit (KB = 1024 bytes, MB = 1024 KB) */
	uint64_t amount;
	enum filter_size_unit unit;
	/* header: the field name ("*": any field) */
	char *name;
	/* group, pattern, text, regex, CIDR list, or the spam score as
	 * written ("5.5"); owned */
	char *value;
};

enum filter_action_kind {
	FILTER_ACT_DELETE = 0,	  /* delete */
	FILTER_ACT_REJECT,	  /* reject 552 "5.3.4 text" */
	FILTER_ACT_NOTE,	  /* note to "..." from ... subject ... */
	FILTER_ACT_ADD_HEADER,	  /* add-header "Name" "value" */
	FILTER_ACT_REMOVE_HEADER, /* remove-header "Name" */
	FILTER_ACT_COPY,	  /* copy-to "a@x, b@x" */
	FILTER_ACT_REDIRECT,	  /* redirect-to "a@x" */
	FILTER_ACT_HOLD,	  /* move-to hold */
	FILTER_ACT_BAD,		  /* move-to bad */
	FILTER_ACT_STRIP,	  /* strip-attachments */
	FILTER_ACT_SKIP,	  /* skip N */
	FILTER_ACT_STOP,	  /* stop */
};

struct filter_action {
	enum filter_action_kind kind;
	unsigned code; /* reject: 4xx or 5xx; skip: N */
	/* reject: the text after the code ("5.3.4 Message too big");
	 * add-header / remove-header: the field name; copy / redirect: the
	 * address list; note: to */
	char *a;
	/* add-header: the value (with macros); note: from */
	char *b;
	/* note: subject, text */
	char *subject;
	char *text;
	int attach; /* note: attach-original */
};

struct filter_rule {
	char *name;
	char *description; /* NULL: none */
	int enabled;
	enum filter_scope scope;
	int match_any; /* 0: every condition, 1: any */
	struct filter_cond *conds;
	size_t nconds;
	struct filter_action *actions;
	size_t nactions;
};

/* A whole ordered rule list. */
struct filter_rules {
	struct filter_rule *v;
	size_t n, cap;
};

/* Frees what the rule owns (not the struct itself). Accepts NULL. */
void filter_rule_deinit(struct filter_rule *r);
/* Frees every rule and the array; the list is empty after. */
void filter_rules_clear(struct filter_rules *l);
/* Moves *r (its storage) into the list. Returns 0, -1 on ENOMEM or past
 * FILTER_RULES_MAX (then r is deinitialized). */
int filter_rules_push(struct filter_rules *l, struct filter_rule *r);

/*
 * Appends the canonical text of one rule ("rule \"name\"" ... "end\n")
 * to out. The parser reads it back into the same rule, and writing that
 * again gives the same bytes. Returns 0, or -1 when out is full.
 */
int filter_rule_write(const struct filter_rule *r, struct buf *out);
/* The whole file: a comment line, then each rule, blank lines between. */
int filter_rules_write(const struct filter_rules *l, struct buf *out);

/* The words of the format ("size", "delete", ...), for messages. */
const char *filter_cond_kind_str(enum filter_cond_kind k);
const char *filter_action_kind_str(enum filter_action_kind k);

/*
 * Wildcard match of text against pattern: '*' any run of bytes, '?' one
 * byte, everything else itself; ASCII letters without regard to case
 * unless case_sensitive. Linear in the product of the lengths at worst
 * (no backtracking blow-up). Returns 1 on a match, else 0.
 */
int filter_wildcard(const char *pattern, const char *text, int case_sensitive);

#endif
