/*
 * Fuzzes policy_check_from_raw, the reader of From: fields as written. The
 * first byte picks the facts (AUTH or not, parsed or not, the role rule on
 * or off); the rest is the message. example.test is our domain.
 */
#include <stdint.h>
#include <string.h>

#include "directory/settings.h"
#include "policy/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t lookups;

static int is_local(void *ctx, const char *domain)
{
	size_t n = strlen(domain);

	(void)ctx;
	/* Never more lookups than distinct domains kept, never an empty
	 * domain or one longer than DNS allows; names (not [literals]) in
	 * lower case. */
	if (n == 0 || n > 255 || ++lookups > POLICY_FROM_DOMAINS)
		__builtin_trap();
	for (size_t i = 0; i < n && domain[0] != '['; i++)
		if (domain[i] >= 'A' && domain[i] <= 'Z')
			__builtin_trap();
	return strcmp(domain, "example.test") == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct settings *on, *off;
	struct policy_facts f;
	const char *reply, *reason = NULL;
	uint8_t mode;

	if (on == NULL) {
		on = settings_new();
		off = settings_new();
		if (on == NULL || off == NULL)
			__builtin_trap();
		settings_set(off,
			     (enum settings_id)settings_lookup(
				     "auth.require_for_role_senders"),
			     "off");
	}
	if (size == 0)
		return 0;
	mode = data[0];
	memset(&f, 0, sizeof(f));
	f.settings = mode & 4 ? off : on;
	f.client_ip = "192.0.2.1";
	f.auth = mode & 1 ? "alice@example.test" : NULL;
	f.submission = f.auth != NULL;
	f.now = 1700000000;
	lookups = 0;
	reply = policy_check_from_raw(&f, (mode & 2) != 0,
				      (const char *)data + 1, size - 1,
				      is_local, NULL, &reason);
	if (reply != NULL &&
	    (reason == NULL || (reply[0] != '4' && reply[0] != '5') ||
	     strlen(reply) < 4 || reply[3] != ' '))
		__builtin_trap();
	return 0;
}
