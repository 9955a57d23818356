/* Security and protocol settings: names, types, defaults, ranges, snapshots. */
#ifndef PETREL_SETTINGS_H
#define PETREL_SETTINGS_H

#include <stddef.h>
#include <stdint.h>

enum settings_type {
	SETTINGS_BOOL, /* "on" / "off" */
	SETTINGS_INT,  /* integer in [min, max] */
	SETTINGS_ENUM, /* one word of `choices` ("a|b|c") */
	SETTINGS_LIST, /* comma-separated items, normalized to "a, b" */
	SETTINGS_STR,  /* free text of at most max bytes */
	/* a decimal ("-1.25", at most 3 decimals) in [min, max] */
	SETTINGS_DECIMAL,
};

/*
 * Every setting, named `section.key` (DESIGN.md). X(ID, name, type, default,
 * min, max, choices, help). The table is the single source of truth: the
 * directory validates against it, `petrelctl settings` prints it, and the
 * daemon reads the snapshot through the ids.
 */
/* The rules trusted.exempt_from may name. */
#define POLICY_EXEMPTIONS                                                      \
	"auth.require_for_local_senders|auth.require_for_role_senders|"        \
	"auth.match_return_path|auth.match_from_header"

#define SETTINGS_TABLE(X)                                                      \
	X(AUTH_ALLOW_PLAINTEXT, "auth.allow_plaintext", BOOL, "off", 0, 1,     \
	  NULL, "allow AUTH, USER/PASS without TLS")                           \
	X(AUTH_REQUIRE_FOR_LOCAL_SENDERS, "auth.require_for_local_senders",    \
	  BOOL, "on", 0, 1, NULL,                                              \
	  "MAIL FROM in a local domain needs an authenticated session")        \
	X(AUTH_EXCEPT_TO_LOCAL, "auth.except_to_local", BOOL, "off", 0, 1,     \
	  NULL, "let unauthenticated local senders write to local recipients") \
	X(AUTH_REQUIRE_FOR_LOCAL_IPS, "auth.require_for_local_ips", BOOL,      \
	  "off", 0, 1, NULL,                                                   \
	  "sessions from trusted.local_networks must authenticate")            \
	X(AUTH_MATCH_RETURN_PATH, "auth.match_return_path", BOOL, "on", 0, 1,  \
	  NULL, "MAIL FROM must be the authenticated account or its alias")    \
	X(AUTH_MATCH_FROM_HEADER, "auth.match_from_header", BOOL, "on", 0, 1,  \
	  NULL, "From: header must be the authenticated account or its alias") \
	X(AUTH_REQUIRE_FOR_ROLE_SENDERS, "auth.require_for_role_senders",      \
	  BOOL, "on", 0, 1, NULL,                                              \
	  "postmaster@, abuse@, webmaster@ senders must authenticate")         \
	X(AUTH_ALLOW_NULL_SENDER, "auth.allow_null_sender", BOOL, "off", 0, 1, \
	  NULL, "allow MAIL FROM:<> on authenticated submission")              \
	X(AUTH_FAIL_DELAY_MS, "auth.fail_delay_ms", INT, "1000", 0, 30000,     \
	  NULL, "delay before every 535 reply")                                \
	X(HIJACK_ENABLED, "hijack.enabled", BOOL, "on", 0, 1, NULL,            \
	  "detect hijacked accounts by their sending rate")                    \
	X(HIJACK_ACTION, "hijack.action", ENUM, "freeze", 0, 0,                \
	  "freeze|throttle", "at the limit: freeze the account, or 452")       \
	X(HIJACK_MAX_MESSAGES, "hijack.max_messages", INT, "500", 1, 1000000,  \
	  NULL, "messages an account may send in the window")                  \
	X(HIJACK_MAX_RECIPIENTS, "hijack.max_recipients", INT, "1000", 1,      \
	  10000000, NULL, "recipients an account may send to in the window")   \
	X(HIJACK_MAX_IPS, "hijack.max_ips", INT, "5", 1, 100000, NULL,         \
	  "distinct client IPs an account may authenticate from in the "       \
	  "window")                                                            \
	X(HIJACK_MINUTES, "hijack.minutes", INT, "30", 1, 10080, NULL,         \
	  "length of the sliding window, in minutes")                          \
	X(HIJACK_EXEMPT, "hijack.exempt", LIST, "", 0, 65536, NULL,            \
	  "accounts never counted (wildcards: *@lists.example.com)")           \
	X(HIJACK_PRIVATE_MAX_MESSAGES, "hijack.private_max_messages", INT,     \
	  "0", 0, 1000000, NULL,                                               \
	  "messages from reserved/private IPs in the window, counted apart; "  \
	  "0: counted with the others")                                        \
	X(HIJACK_PRIVATE_MAX_RECIPIENTS, "hijack.private_max_recipients", INT, \
	  "0", 0, 10000000, NULL,                                              \
	  "recipients from reserved/private IPs in the window, counted "       \
	  "apart; 0: counted with the others")                                 \
	X(HIJACK_PRIVATE_MAX_IPS, "hijack.private_max_ips", INT, "0", 0,       \
	  100000, NULL,                                                        \
	  "distinct reserved/private IPs in the window, counted apart; 0: "    \
	  "counted with the others")                                           \
	X(HIJACK_NOTIFY, "hijack.notify", LIST, "", 0, 4096, NULL,             \
	  "addresses told of a frozen account, besides the domain's "          \
	  "postmaster")                                                        \
	X(HIJACK_TOKEN_HOURS, "hijack.token_hours", INT, "72", 1, 8760, NULL,  \
	  "hours the re-activation token of an alert stays valid")             \
	X(TRUSTED_HOSTS, "trusted.hosts", LIST, "", 0, 65536, NULL,            \
	  "IPs, CIDRs or host names that may relay without AUTH")              \
	X(TRUSTED_EXEMPT_FROM, "trusted.exempt_from", LIST, "", 0, 4096,       \
	  POLICY_EXEMPTIONS, "rules trusted hosts are exempt from")            \
	X(TRUSTED_LOCAL_NETWORKS, "trusted.local_networks", LIST, "", 0,       \
	  65536, NULL, "the server's own networks (CIDR list)")                \
	X(DNSBL_ZONES, "dnsbl.zones", LIST, "", 0, 65536, NULL,                \
	  "DNS blocklists: zone:weight:message")                               \
	X(DNSBL_ACTION, "dnsbl.action", ENUM, "reject", 0, 0, "reject|score",  \
	  "refuse listed clients, or only add to their score")                 \
	X(DNSBL_TIMEOUT_MS, "dnsbl.timeout_ms", INT, "2000", 10, 60000, NULL,  \
	  "how long to wait for a DNSBL answer")                               \
	X(DNSBL_CHECK_RECEIVED, "dnsbl.check_received", BOOL, "off", 0, 1,     \
	  NULL,                                                                \
	  "also look up the public IPs of the message's Received headers "     \
	  "(they add their weight to the score, never refuse)")                \
	X(SPAM_SPAMD, "spam.spamd", STR, "", 0, 64, NULL,                      \
	  "SpamAssassin spamd to score messages, IP:PORT ([IPv6]:PORT); "      \
	  "empty: none")                                                       \
	X(SPAM_MAX_KB, "spam.max_kb", INT, "500", 1, 102400, NULL,             \
	  "larger messages are not given to spamd")                            \
	X(SPAM_TIMEOUT_MS, "spam.timeout_ms", INT, "15000", 100, 600000, NULL, \
	  "how long to wait for spamd's answer")                               \
	X(SPAM_SCORE_AUTHENTICATED, "spam.score_authenticated", BOOL, "off",   \
	  0, 1, NULL, "score the messages of authenticated sessions too")      \
	X(SPAM_TAG_SCORE, "spam.tag_score", DECIMAL, "5.0", -1000, 1000, NULL, \
	  "score from which a message gets X-Spam-Flag: YES and the subject "  \
	  "tag")                                                               \
	X(SPAM_REJECT_SCORE, "spam.reject_score", DECIMAL, "12.0", -1000,      \
	  100000, NULL, "score from which a message is refused (550 5.7.1)")   \
	X(SPAM_SUBJECT_TAG, "spam.subject_tag", STR, "***SPAM***", 0, 64,      \
	  NULL, "put before the Subject of tagged messages; empty: none")      \
	X(POP3_MAX_SESSIONS, "pop3.max_sessions", INT, "1000", 1, 1000000,     \
	  NULL, "concurrent POP3 sessions in all")                             \
	X(POP3_MAX_SESSIONS_PER_IP, "pop3.max_sessions_per_ip", INT, "20", 1,  \
	  1000000, NULL, "concurrent POP3 sessions from one IP")               \
	X(POP3_TIMEOUT_IDLE, "pop3.timeout_idle", INT, "600", 1, 86400, NULL,  \
	  "seconds to wait for a command (RFC 1939 3: at least 10 minutes)")   \
	X(POP3_MAX_ERRORS, "pop3.max_errors", INT, "20", 1, 1000, NULL,        \
	  "-ERR replies before the session is closed")                         \
	X(SCREENING_AUTH_FAILURES, "screening.auth_failures", INT, "5", 0, 64, \
	  NULL,                                                                \
	  "failed logins from one IP (a /64 for IPv6) that block it; 0: "      \
	  "never block")                                                       \
	X(SCREENING_AUTH_MINUTES, "screening.auth_minutes", INT, "10", 1,      \
	  10080, NULL, "the window those failures are counted in, minutes")    \
	X(SCREENING_BLOCK_MINUTES, "screening.block_minutes", INT, "30", 1,    \
	  1440, NULL,                                                          \
	  "how long a block lasts; doubled for each earlier block, up to a "   \
	  "day")                                                               \
	X(SCREENING_NOTIFY_AFTER, "screening.notify_after", INT, "20", 0,      \
	  100000, NULL,                                                        \
	  "failed logins on one account in the window that send a note to "    \
	  "the postmaster; 0: none")                                           \
	X(SCREENING_MAX_CONNECTIONS_PER_IP,                                    \
	  "screening.max_connections_per_ip", INT, "50", 1, 1000000, NULL,     \
	  "concurrent SMTP and POP3 sessions from one IP")                     \
	X(SCREENING_MAX_CONNECTS_PER_MINUTE,                                   \
	  "screening.max_connects_per_minute", INT, "600", 0, 10000000, NULL,  \
	  "new SMTP and POP3 sessions from one IP per minute; 0: no limit")    \
	X(SMTP_MAX_LINE, "smtp.max_line", INT, "1000", 512, 65536, NULL,       \
	  "longest command or DATA line, CRLF included")                       \
	X(SMTP_MAX_MESSAGE_KB, "smtp.max_message_kb", INT, "25600", 1,         \
	  1048576, NULL, "largest message accepted, in KB")                    \
	X(SMTP_MAX_RECIPIENTS, "smtp.max_recipients", INT, "100", 1, 100000,   \
	  NULL, "recipients per message")                                      \
	X(SMTP_MAX_ERRORS, "smtp.max_errors", INT, "10", 1, 1000, NULL,        \
	  "client errors before 421 and close")                                \
	X(SMTP_MAX_JUNK_COMMANDS, "smtp.max_junk_commands", INT, "100", 1,     \
	  1000000, NULL,                                                       \
	  "NOOP, RSET, VRFY and HELP since the last message before each "      \
	  "counts as an error")                                                \
	X(SMTP_MAX_SESSIONS, "smtp.max_sessions", INT, "2000", 1, 1000000,     \
	  NULL, "concurrent SMTP sessions in all")                             \
	X(SMTP_MAX_SESSIONS_PER_IP, "smtp.max_sessions_per_ip", INT, "50", 1,  \
	  1000000, NULL, "concurrent SMTP sessions from one IP")               \
	X(SMTP_TIMEOUT_IDLE, "smtp.timeout_idle", INT, "300", 1, 86400, NULL,  \
	  "seconds to wait for a command outside a transaction")               \
	X(SMTP_TIMEOUT_COMMAND, "smtp.timeout_command", INT, "300", 1, 86400,  \
	  NULL, "seconds to wait for a command inside a transaction")          \
	X(SMTP_TIMEOUT_DATA, "smtp.timeout_data", INT, "180", 1, 86400, NULL,  \
	  "seconds to wait for more DATA (RFC 5321 4.5.3.2.6: 3 minutes)")     \
	X(SMTP_RDNS_TIMEOUT_MS, "smtp.rdns_timeout_ms", INT, "5000", 0, 60000, \
	  NULL,                                                                \
	  "longest wait for the client's reverse DNS name before the "         \
	  "greeting; 0: no lookup (the name is \"unknown\")")                  \
	X(LOG_MAX_LINES_PER_SESSION, "log.max_lines_per_session", INT, "1000", \
	  0, 100000000, NULL,                                                  \
	  "transcript lines an SMTP or POP3 session writes before only the "   \
	  "lines that trace mail and errors are logged (the rest are counted " \
	  "in one summary line)")                                              \
	X(QUEUE_MIN_FREE_MB, "queue.min_free_mb", INT, "100", 0,               \
	  1000000000000, NULL,                                                 \
	  "free megabytes in data_dir below which new transactions get 452 "   \
	  "4.3.1 (0: no check)")                                               \
	X(QUEUE_RETRY_FIRST, "queue.retry_first", INT, "300", 1, 86400, NULL,  \
	  "seconds before the first retry of a deferred message")              \
	X(QUEUE_RETRY_MAX, "queue.retry_max", INT, "3600", 1, 86400, NULL,     \
	  "longest pause between retries, in seconds (the pause doubles "      \
	  "from queue.retry_first up to it)")                                  \
	X(QUEUE_MAX_DAYS, "queue.max_days", INT, "2", 0, 365, NULL,            \
	  "days a message is retried before it bounces (0: one try only)")     \
	X(QUEUE_DELAY_WARNING, "queue.delay_warning", BOOL, "on", 0, 1, NULL,  \
	  "tell the sender when a message is delayed (queue.warn_hours)")      \
	X(QUEUE_WARN_HOURS, "queue.warn_hours", INT, "4", 0, 720, NULL,        \
	  "hours in the queue before the delay warning (0: at the first "      \
	  "deferral)")                                                         \
	X(QUEUE_MAX_HOPS, "queue.max_hops", INT, "50", 1, 1000, NULL,          \
	  "Received headers a message may carry; more is a loop (bad queue)")  \
	X(QUEUE_ACTIVE_LIMIT, "queue.active_limit", INT, "5000", 1, 1000000,   \
	  NULL,                                                                \
	  "messages the queue manager works on at once, each with its spool "  \
	  "file open; the rest wait in the queue, oldest first")               \
	X(QUEUE_MAX_CONNECTIONS, "queue.max_connections", INT, "50", 1, 10000, \
	  NULL, "outgoing SMTP connections in all")                            \
	X(QUEUE_MAX_PER_DESTINATION, "queue.max_per_destination", INT, "5", 1, \
	  1000, NULL,                                                          \
	  "outgoing SMTP connections to one domain (or the smarthost)")        \
	X(QUEUE_MAX_MESSAGES_PER_CONNECTION,                                   \
	  "queue.max_messages_per_connection", INT, "100", 1, 100000, NULL,    \
	  "messages sent over one connection before it is closed")             \
	X(QUEUE_TIMEOUT_CONNECT, "queue.timeout_connect", INT, "30", 1, 3600,  \
	  NULL, "seconds to wait for a TCP connection to a remote server")     \
	X(QUEUE_TIMEOUT_GREETING, "queue.timeout_greeting", INT, "300", 1,     \
	  3600, NULL, "seconds to wait for the 220 (RFC 5321 4.5.3.2.1)")      \
	X(QUEUE_TIMEOUT_COMMAND, "queue.timeout_command", INT, "300", 1, 3600, \
	  NULL,                                                                \
	  "seconds to wait for the reply to EHLO, STARTTLS, AUTH, MAIL, RCPT " \
	  "(RFC 5321 4.5.3.2.2-3)")                                            \
	X(QUEUE_TIMEOUT_DATA_INIT, "queue.timeout_data_init", INT, "120", 1,   \
	  3600, NULL, "seconds to wait for the 354 (RFC 5321 4.5.3.2.4)")      \
	X(QUEUE_TIMEOUT_DATA_BLOCK, "queue.timeout_data_block", INT, "180", 1, \
	  3600, NULL,                                                          \
	  "seconds a block of message data may take to send (RFC 5321 "        \
	  "4.5.3.2.5)")                                                        \
	X(QUEUE_TIMEOUT_DATA_DONE, "queue.timeout_data_done", INT, "600", 1,   \
	  3600, NULL,                                                          \
	  "seconds to wait for the reply to the final dot (RFC 5321 "          \
	  "4.5.3.2.6)")                                                        \
	X(QUEUE_REMOTE_PORT, "queue.remote_port", INT, "25", 1, 65535, NULL,   \
	  "TCP port of the remote mail servers found by MX (not the "          \
	  "smarthost's)")                                                      \
	X(TLS_OUTBOUND, "tls.outbound", ENUM, "may", 0, 0,                     \
	  "none|may|encrypt|verify",                                           \
	  "STARTTLS to remote servers: never, when offered, required, or "     \
	  "required with a verified certificate and name")

#define SETTINGS_ENUM_ID(id, ...) SETTING_##id,
enum settings_id { SETTINGS_TABLE(SETTINGS_ENUM_ID) SETTINGS_COUNT };
#undef SETTINGS_ENUM_ID

struct settings_def {
	const char *name;
	enum settings_type type;
	const char *defval;
	int64_t min, max; /* INT: range; LIST, STR: max length */
	const char *choices;
	const char *help;
};

/* The definition of a setting (static storage). */
const struct settings_def *settings_def(enum settings_id id);
/* The id of a setting by name. Returns the id, or -1 when unknown. */
int settings_lookup(const char *name);
/*
 * Validates a value for a setting and writes its normalized text into
 * norm ("on"/"off" for booleans, "a, b" for lists). Returns 0, or -1 with
 * *error_r set to a static message that says what was expected.
 */
int settings_normalize(enum settings_id id, const char *value, char *norm,
		       size_t normsize, const char **error_r);

/*
 * A snapshot: every setting's value at one moment. Reference counted, so a
 * session keeps the snapshot it started with while the daemon loads a new
 * one. Values are read only through the accessors.
 */
struct settings;

/* A new snapshot holding the defaults; refcount 1. NULL on ENOMEM. */
struct settings *settings_new(void);
void settings_ref(struct settings *s);
/* Drops a reference; frees at zero. Accepts NULL. */
void settings_unref(struct settings *s);
/* Stores a value (already normalized, or validated here). Returns 0/-1. */
int settings_set(struct settings *s, enum settings_id id, const char *value);
int settings_bool(const struct settings *s, enum settings_id id);
int64_t settings_int(const struct settings *s, enum settings_id id);
/* A DECIMAL setting's value. */
double settings_decimal(const struct settings *s, enum settings_id id);
/*
 * Parses a decimal number: an optional sign, digits, and an optional '.'
 * with at most 3 more digits ("12", "-0.5", "5.25"); at most 9 digits
 * before the point. Writes thousandths into *milli_r. Returns 0, or -1
 * when the text is not such a number. Pure, and independent of the locale.
 */
int settings_parse_decimal(const char *text, int64_t *milli_r);
/* The text of any setting; owned by the snapshot. */
const char *settings_str(const struct settings *s, enum settings_id id);

#endif
