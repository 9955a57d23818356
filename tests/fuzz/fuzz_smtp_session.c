/* Fuzzes one whole SMTP session per input: smtp_session.c on a
 * socketpair, with the real event loop, worker pools, directory, spool and
 * TLS (session_world.h says how an input is played). The listener (bits
 * 0-1 of the first byte): 0 and 3 MX, 1 submission, 2 implicit TLS. The
 * world knows user@example.org, password "secret" (AUTH PLAIN
 * AHVzZXJAZXhhbXBsZS5vcmcAc2VjcmV0), off@example.org (disabled, same
 * password), postmaster@ and alias@example.org; content filter rules
 * (fuzz_rules) that words in a message's Subject or body turn on. The
 * session starts as an accepted connection would (smtp_session_new with
 * the socket): the accept path of server/server.c (session limits, the
 * per-IP counts) is not part of it.
 *
 * Every line the server sends must be a reply line of RFC 5321 4.2: a
 * code of three digits (2-5, 0-5, 0-9), then a space, a hyphen or the
 * end, CRLF, at most 512 octets (4.5.3.1.5); the lines of a multi-line
 * reply share their code. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "filter/filter_store.h"
#include "session_world.h"
#include "smtp/smtp_filter.h"
#include "smtp/smtp_server.h"
#include "smtp/smtp_session.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct smtp_server *fuzz_smtp;

static int fuzz_implicit_tls(unsigned listener)
{
	return listener == 2;
}

static void fuzz_start(int fd, const struct sockaddr *sa, socklen_t salen,
		       unsigned listener)
{
	static const enum smtp_listener kinds[4] = {
		SMTP_LISTENER_MX,
		SMTP_LISTENER_SUBMISSION,
		SMTP_LISTENER_SMTPS,
		SMTP_LISTENER_MX,
	};
	static const char *const local[4] = {
		"127.0.0.1:25",
		"127.0.0.1:587",
		"127.0.0.1:465",
		"[::1]:25",
	};

	smtp_session_new(fuzz_smtp, &world.env, fd, sa, salen,
			 kinds[listener & 3], local[listener & 3]);
}

static void fuzz_bad_reply(const char *why, const char *line, size_t len)
{
	fprintf(stderr, "malformed SMTP reply (%s): %.*s\n", why,
		(int)(len > 200 ? 200 : len), line);
	abort();
}

/* *state: 0, or 1000 + the code of a multi-line reply under way. */
static void fuzz_check_line(unsigned *state, const char *line, size_t len,
			    int cut)
{
	unsigned code;

	if (cut || len + 2 > 512)
		fuzz_bad_reply("longer than 512 octets", line, len);
	if (len < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' ||
	    line[1] > '5' || line[2] < '0' || line[2] > '9')
		fuzz_bad_reply("no reply code", line, len);
	if (len > 3 && line[3] != ' ' && line[3] != '-')
		fuzz_bad_reply("no space or hyphen after the code", line, len);
	code = (unsigned)(line[0] - '0') * 100 +
	       (unsigned)(line[1] - '0') * 10 + (unsigned)(line[2] - '0');
	if (*state != 0 && *state != 1000 + code)
		fuzz_bad_reply("code changed within a reply", line, len);
	*state = len > 3 && line[3] == '-' ? 1000 + code : 0;
}

/* Content filter rules that a message turns on by what it carries (a
 * word in its Subject or body), so that the fuzzer reaches each action. */
static const char *const fuzz_rules[][2] = {
	{"big skip", "rule \"big skip\"\n\tenabled yes\n\tscope all\n"
		     "\tmatch any\n\tif sender in-group \"big\"\n"
		     "\tif recipient in-group \"big\"\n\tthen skip 1\nend\n"},
	{"size", "rule \"size\"\n\tenabled yes\n\tscope all\n\tmatch all\n"
		 "\tif size > 100 KB\n\tif header \"Subject\" contains "
		 "\"f-size\"\n\tthen delete\n\tthen note to \"$SENDER$\" "
		 "subject \"Too large: $SUBJECT$\" text \"$MESSAGESIZE$ "
		 "bytes\\n\"\nend\n"},
	{"reject", "rule \"reject\"\n\tenabled yes\n\tscope all\n"
		   "\tmatch all\n\tif header \"Subject\" contains "
		   "\"f-reject\"\n\tthen reject 550 \"5.7.1 Refused by "
		   "rule\"\nend\n"},
	{"hold", "rule \"hold\"\n\tenabled yes\n\tscope inbound\n"
		 "\tmatch all\n\tif header \"Subject\" contains \"f-hold\"\n"
		 "\tthen move-to hold\nend\n"},
	{"bad", "rule \"bad\"\n\tenabled yes\n\tscope outbound\n"
		"\tmatch any\n\tif attachment-name is \"*.exe\"\n"
		"\tif header \"*\" matches \"f-(bad|worse)$\"\n"
		"\tthen move-to bad\nend\n"},
	{"edit", "rule \"edit\"\n\tenabled yes\n\tscope all\n\tmatch all\n"
		 "\tif body contains \"f-edit\"\n\tthen add-header "
		 "\"X-Filter\" \"$SENDER$ $HEADER:From$ $FILTERRULENAME$\"\n"
		 "\tthen remove-header \"Received\"\n"
		 "\tthen strip-attachments\nend\n"},
	{"route",
	 "rule \"route\"\n\tenabled yes\n\tscope inbound\n"
	 "\tmatch all\n\tif recipient is \"alias@*\"\n"
	 "\tif body matches \"f-(copy|redirect)\"\n"
	 "\tthen copy-to \"postmaster@example.org\"\n"
	 "\tthen redirect-to \"user@example.org, nobody@example.org\"\n"
	 "end\n"},
	{"delete", "rule \"delete\"\n\tenabled yes\n\tscope all\n"
		   "\tmatch all\n\tif not authenticated\n"
		   "\tif header \"Subject\" contains \"f-delete\"\n"
		   "\tthen delete\nend\n"},
	{"note", "rule \"note\"\n\tenabled yes\n\tscope all\n\tmatch all\n"
		 "\tif has-attachment\n\tif client-ip in \"192.0.2.0/24, "
		 "2001:db8::/32\"\n\tthen note to \"postmaster@example.org\" "
		 "subject \"attachment from $SENDER$\" attach-original\n"
		 "\tthen stop\nend\n"},
	{"spam", "rule \"spam\"\n\tenabled yes\n\tscope all\n\tmatch all\n"
		 "\tif spam-score > 5.5\n\tthen move-to hold\nend\n"},
};

/* Installs fuzz_rules and the group "big" (postmaster@example.org). */
static void fuzz_filters(void)
{
	struct directory *d = world.env.dir;
	struct filter_set *set;
	char error[256];
	const char *err;

	if (directory_group_add(d, "big", &err) < 0 ||
	    directory_group_member_add(d, "big", WORLD_POSTMASTER, &err) < 0)
		world_fail("group", err);
	for (size_t i = 0; i < sizeof(fuzz_rules) / sizeof(fuzz_rules[0]); i++)
		if (directory_filter_append(d, fuzz_rules[i][0], 1,
					    fuzz_rules[i][1], &err) < 0)
			world_fail("filter rule", err);
	set = filter_store_load(d, error, sizeof(error));
	if (set == NULL)
		world_fail("filter rules", error);
	smtp_filter_install(set);
	filter_set_unref(set);
}

static const struct world_proto fuzz_proto = {
	.tls_ready = "220 2.0.0 Ready to start TLS",
	.implicit_tls = fuzz_implicit_tls,
	.start = fuzz_start,
	.check_line = fuzz_check_line,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (fuzz_smtp == NULL) {
		const char *err;

		world_init();
		fuzz_filters();
		fuzz_smtp = smtp_server_new(&world.env, NULL, &err);
		if (fuzz_smtp == NULL)
			world_fail("smtp_server_new", err);
	}
	world_run(&fuzz_proto, data, size);
	return 0;
}
