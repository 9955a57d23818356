/* Fuzzes config_parse: any text gives 0, or -1 with one error line naming
 * the file and a line; never a crash, a leak or an unterminated field. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct config fuzz_cfg;

static void fuzz_check_str(const char *s, size_t size)
{
	if (memchr(s, '\0', size) == NULL)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *err = NULL;
	int ret;

	config_defaults(&fuzz_cfg);
	ret = config_parse(&fuzz_cfg, "fuzz.conf", (const char *)data, size,
			   &err);
	if (err != fuzz_cfg.error)
		abort();
	fuzz_check_str(fuzz_cfg.error, sizeof(fuzz_cfg.error));
	if (ret == -1) {
		if (strncmp(err, "fuzz.conf:", 10) != 0 ||
		    strchr(err, '\n') != NULL)
			abort();
		return 0;
	}
	if (ret != 0 || err[0] != '\0')
		abort();
	fuzz_check_str(fuzz_cfg.hostname, sizeof(fuzz_cfg.hostname));
	fuzz_check_str(fuzz_cfg.data_dir, sizeof(fuzz_cfg.data_dir));
	fuzz_check_str(fuzz_cfg.log_dir, sizeof(fuzz_cfg.log_dir));
	fuzz_check_str(fuzz_cfg.tls_cert, sizeof(fuzz_cfg.tls_cert));
	fuzz_check_str(fuzz_cfg.tls_key, sizeof(fuzz_cfg.tls_key));
	fuzz_check_str(fuzz_cfg.smarthost, sizeof(fuzz_cfg.smarthost));
	fuzz_check_str(fuzz_cfg.dns_server, sizeof(fuzz_cfg.dns_server));
	fuzz_check_str(fuzz_cfg.user, sizeof(fuzz_cfg.user));
	if (fuzz_cfg.workers < 1 || fuzz_cfg.workers > 64 ||
	    fuzz_cfg.listen_smtp.count > CONFIG_LISTEN_MAX ||
	    fuzz_cfg.listen_admin.count > CONFIG_LISTEN_MAX)
		abort();
	if (fuzz_cfg.data_dir[0] == '\0' || fuzz_cfg.log_dir[0] == '\0')
		abort();
	return 0;
}
