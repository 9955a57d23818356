/*
 * settings: the table of every setting (name, type, default, range) and the
 * reference-counted snapshots the daemon reads them from. Pure: storing
 * values is the directory's business (directory.c).
 */
#include "directory/settings.h"

#include <ctype.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/addr.h"
#include "lib/netlist.h"
#include "lib/spamd_parse.h"
#include "policy/dnsbl.h"

#define SETTINGS_DEF_ENTRY(id, nm, ty, dv, mn, mx, ch, hp)                     \
	[SETTING_##id] = {.name = nm,                                          \
			  .type = SETTINGS_##ty,                               \
			  .defval = dv,                                        \
			  .min = mn,                                           \
			  .max = mx,                                           \
			  .choices = ch,                                       \
			  .help = hp},
static const struct settings_def settings_defs[SETTINGS_COUNT] = {
	SETTINGS_TABLE(SETTINGS_DEF_ENTRY)};
#undef SETTINGS_DEF_ENTRY

struct settings {
	atomic_int refcount;
	char *text[SETTINGS_COUNT]; /* NULL: the default */
	int64_t num[SETTINGS_COUNT];
};

const struct settings_def *settings_def(enum settings_id id)
{
	return (unsigned)id < SETTINGS_COUNT ? &settings_defs[id] : NULL;
}

int settings_lookup(const char *name)
{
	for (int i = 0; i < SETTINGS_COUNT; i++)
		if (strcmp(settings_defs[i].name, name) == 0)
			return i;
	return -1;
}

static int settings_parse_bool(const char *v)
{
	static const char *const yes[] = {"on", "yes", "true", "1"};
	static const char *const no[] = {"off", "no", "false", "0"};

	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(v, yes[i]) == 0)
			return 1;
		if (strcasecmp(v, no[i]) == 0)
			return 0;
	}
	return -1;
}

/* Is `v` one of the '|'-separated words of `choices`? */
static int settings_in_choices(const char *choices, const char *v)
{
	size_t n = strlen(v);
	const char *p = choices;

	while (*p != '\0') {
		size_t w = strcspn(p, "|");
		if (w == n && strncasecmp(p, v, n) == 0)
			return 1;
		p += w;
		if (*p == '|')
			p++;
	}
	return 0;
}

int settings_parse_decimal(const char *text, int64_t *milli_r)
{
	const char *p = text;
	int64_t v = 0;
	int neg = 0, digits = 0, frac = 0;

	if (*p == '-' || *p == '+')
		neg = *p++ == '-';
	for (; isdigit((unsigned char)*p); p++) {
		if (++digits > 9)
			return -1;
		v = v * 10 + (*p - '0');
	}
	v *= 1000;
	if (*p == '.') {
		int64_t scale = 100;

		for (p++; isdigit((unsigned char)*p); p++) {
			if (++frac > 3)
				return -1;
			v += (*p - '0') * scale;
			scale /= 10;
		}
		if (frac == 0)
			return -1;
	}
	if (digits == 0 || *p != '\0')
		return -1;
	*milli_r = neg ? -v : v;
	return 0;
}

/* The settings whose text has a form of its own to check: dnsbl.zones,
 * spam.spamd. Returns 0 or -1 with *error_r. */
static int settings_check_form(enum settings_id id, const char *norm,
			       const char **error_r)
{
	if (id == SETTING_DNSBL_ZONES) {
		struct dnsbl_zone zones[DNSBL_ZONES_MAX];
		size_t n;

		return dnsbl_zones_parse(norm, zones, DNSBL_ZONES_MAX, &n,
					 error_r);
	}
	if (id == SETTING_SPAM_SPAMD && norm[0] != '\0') {
		struct sockaddr_storage ss;
		socklen_t len;

		if (spamd_parse_addr(norm, &ss, &len) < 0) {
			*error_r = "expected IP:PORT or [IPv6]:PORT";
			return -1;
		}
	}
	return 0;
}

static int settings_normalize_list(const char *value, char *norm,
				   size_t normsize)
{
	size_t o = 0;
	const char *p = value;

	norm[0] = '\0';
	while (*p != '\0') {
		size_t n;

		while (*p == ',' || isspace((unsigned char)*p))
			p++;
		if (*p == '\0')
			break;
		n = strcspn(p, ",");
		while (n > 0 && isspace((unsigned char)p[n - 1]))
			n--;
		if (o + n + 3 > normsize)
			return -1;
		if (o > 0) {
			memcpy(norm + o, ", ", 2);
			o += 2;
		}
		memcpy(norm + o, p, n);
		o += n;
		norm[o] = '\0';
		p += n;
		while (*p != '\0' && *p != ',')
			p++;
	}
	return 0;
}

/* Checks each element of a normalized list (", "-separated) against the
 * setting's choices and, for the network settings, as IPs and CIDRs (and
 * host names for trusted.hosts). Returns 0 or -1 with *error_r. */
static int settings_check_list(enum settings_id id,
			       const struct settings_def *d, const char *norm,
			       const char **error_r)
{
	const char *p = norm;

	if (d->choices == NULL && id != SETTING_TRUSTED_LOCAL_NETWORKS &&
	    id != SETTING_TRUSTED_HOSTS && id != SETTING_HIJACK_NOTIFY &&
	    id != SETTING_HIJACK_EXEMPT)
		return 0; /* free text */
	while (*p != '\0') {
		size_t n = strcspn(p, ",");
		char item[ADDR_DOMAIN_MAX + 1];
		struct netlist_entry e;
		int r;

		if (n >= sizeof(item)) {
			*error_r = "list element too long";
			return -1;
		}
		memcpy(item, p, n);
		item[n] = '\0';
		if (d->choices != NULL &&
		    !settings_in_choices(d->choices, item)) {
			*error_r = "not one of the allowed values";
			return -1;
		}
		if (id == SETTING_HIJACK_NOTIFY) {
			struct addr a;
			const char *why;

			if (addr_parse_mailbox(item, &a, &why) < 0) {
				*error_r = "expected addresses (local@domain)";
				return -1;
			}
		}
		/* Patterns: one '@', no space (wildcards are free). */
		if (id == SETTING_HIJACK_EXEMPT &&
		    (strchr(item, '@') == NULL ||
		     strchr(item, '@') != strrchr(item, '@') ||
		     strchr(item, ' ') != NULL)) {
			*error_r = "expected address patterns "
				   "(user@example.com, *@lists.example.com)";
			return -1;
		}
		if (id == SETTING_TRUSTED_LOCAL_NETWORKS ||
		    id == SETTING_TRUSTED_HOSTS) {
			r = netlist_parse_entry(item, n, &e);
			if (r < 0 || (r == 0 && id != SETTING_TRUSTED_HOSTS)) {
				*error_r = "expected IPs or CIDRs";
				return -1;
			}
			if (r == 0 && !addr_domain_valid(item)) {
				*error_r = "expected IPs, CIDRs or host names";
				return -1;
			}
		}
		p += n;
		while (*p == ',' || *p == ' ')
			p++;
	}
	return 0;
}

int settings_normalize(enum settings_id id, const char *value, char *norm,
		       size_t normsize, const char **error_r)
{
	const struct settings_def *d = settings_def(id);
	int n;

	if (d == NULL) {
		*error_r = "unknown setting";
		return -1;
	}
	for (const char *p = value; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			*error_r = "control characters are not allowed";
			return -1;
		}
	}
	switch (d->type) {
	case SETTINGS_BOOL: {
		int b = settings_parse_bool(value);
		if (b < 0) {
			*error_r = "expected on or off";
			return -1;
		}
		n = snprintf(norm, normsize, "%s", b ? "on" : "off");
		break;
	}
	case SETTINGS_INT: {
		char *end;
		long long x;

		errno = 0;
		x = strtoll(value, &end, 10);
		if (errno != 0 || end == value || *end != '\0') {
			*error_r = "expected a whole number";
			return -1;
		}
		if (x < d->min || x > d->max) {
			*error_r = "number out of the allowed range";
			return -1;
		}
		n = snprintf(norm, normsize, "%lld", x);
		break;
	}
	case SETTINGS_ENUM:
		if (!settings_in_choices(d->choices, value)) {
			*error_r = "not one of the allowed values";
			return -1;
		}
		n = snprintf(norm, normsize, "%s", value);
		for (char *p = norm; *p != '\0'; p++)
			*p = (char)tolower((unsigned char)*p);
		break;
	case SETTINGS_LIST:
		if (strlen(value) > (size_t)d->max ||
		    settings_normalize_list(value, norm, normsize) < 0) {
			*error_r = "list too long";
			return -1;
		}
		if (settings_check_list(id, d, norm, error_r) < 0)
			return -1;
		if (d->choices != NULL)
			for (char *p = norm; *p != '\0'; p++)
				*p = (char)tolower((unsigned char)*p);
		return settings_check_form(id, norm, error_r);
	case SETTINGS_DECIMAL: {
		int64_t milli;

		if (settings_parse_decimal(value, &milli) < 0) {
			*error_r = "expected a number (like 5 or -1.5, at "
				   "most 3 decimals)";
			return -1;
		}
		if (milli < d->min * 1000 || milli > d->max * 1000) {
			*error_r = "number out of the allowed range";
			return -1;
		}
		n = snprintf(norm, normsize, "%s%lld.%03lld",
			     milli < 0 ? "-" : "",
			     (long long)(milli < 0 ? -milli : milli) / 1000,
			     (long long)(milli < 0 ? -milli : milli) % 1000);
		/* "5.000" -> "5.0", "1.250" -> "1.25" */
		if (n > 0 && (size_t)n < normsize) {
			while (n > 2 && norm[n - 1] == '0' &&
			       norm[n - 2] != '.')
				norm[--n] = '\0';
		}
		break;
	}
	case SETTINGS_STR:
	default:
		if (strlen(value) > (size_t)d->max) {
			*error_r = "text too long";
			return -1;
		}
		n = snprintf(norm, normsize, "%s", value);
		break;
	}
	if (n < 0 || (size_t)n >= normsize) {
		*error_r = "value too long";
		return -1;
	}
	return settings_check_form(id, norm, error_r);
}

/* The number a normalized value stands for (bool, int; decimal in
 * thousandths). */
static int64_t settings_number(enum settings_type t, const char *v)
{
	if (t == SETTINGS_BOOL)
		return strcmp(v, "on") == 0;
	if (t == SETTINGS_INT)
		return strtoll(v, NULL, 10);
	if (t == SETTINGS_DECIMAL) {
		int64_t milli = 0;
		settings_parse_decimal(v, &milli);
		return milli;
	}
	return 0;
}

struct settings *settings_new(void)
{
	struct settings *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	atomic_init(&s->refcount, 1);
	for (int i = 0; i < SETTINGS_COUNT; i++)
		s->num[i] = settings_number(settings_defs[i].type,
					    settings_defs[i].defval);
	return s;
}

void settings_ref(struct settings *s)
{
	atomic_fetch_add(&s->refcount, 1);
}

void settings_unref(struct settings *s)
{
	if (s == NULL || atomic_fetch_sub(&s->refcount, 1) != 1)
		return;
	for (int i = 0; i < SETTINGS_COUNT; i++)
		free(s->text[i]);
	free(s);
}

int settings_set(struct settings *s, enum settings_id id, const char *value)
{
	const struct settings_def *d = settings_def(id);
	const char *error;
	size_t size;
	char *norm;

	if (d == NULL)
		return -1;
	size = strlen(value) * 2 + 16;
	norm = malloc(size);
	if (norm == NULL)
		return -1;
	if (settings_normalize(id, value, norm, size, &error) < 0) {
		free(norm);
		return -1;
	}
	free(s->text[id]);
	s->text[id] = norm;
	s->num[id] = settings_number(d->type, norm);
	return 0;
}

int settings_bool(const struct settings *s, enum settings_id id)
{
	return (unsigned)id < SETTINGS_COUNT && s->num[id] != 0;
}

int64_t settings_int(const struct settings *s, enum settings_id id)
{
	return (unsigned)id < SETTINGS_COUNT ? s->num[id] : 0;
}

double settings_decimal(const struct settings *s, enum settings_id id)
{
	return (unsigned)id < SETTINGS_COUNT ? (double)s->num[id] / 1000.0 : 0;
}

const char *settings_str(const struct settings *s, enum settings_id id)
{
	if ((unsigned)id >= SETTINGS_COUNT)
		return "";
	return s->text[id] != NULL ? s->text[id] : settings_defs[id].defval;
}
