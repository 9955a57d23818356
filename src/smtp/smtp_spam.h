/* The SMTP session's spam controls: DNSBL lookups at connect, the DNSBL
 * refusal at RCPT, and the spam-scoring stage (smtp_stage_spam). */
#ifndef PETREL_SMTP_SPAM_H
#define PETREL_SMTP_SPAM_H

struct policy_facts;
struct smtp_session;

/* Starts the DNSBL lookups of the client's IP when dnsbl.zones names
 * any. Each result is logged when they are all in. */
void smtp_spam_connect(struct smtp_session *s);
/* 1 while those lookups run (the greeting waits for them), else 0. */
int smtp_spam_connect_pending(const struct smtp_session *s);
/*
 * RCPT TO under dnsbl.action reject: NULL to go on, or the refusal
 * ("554 5.7.1 ..." with the zone's text; owned by the session, valid until
 * the next call) with *reason_r for the log. Authenticated sessions and
 * trusted hosts are never refused (dnsbl_check_rcpt).
 */
const char *smtp_spam_check_rcpt(struct smtp_session *s,
				 const struct policy_facts *f,
				 const char **reason_r);
/* Cancels what is running and frees the session's spam state. */
void smtp_spam_free(struct smtp_session *s);

#endif
