/* Unit tests of the SMTP session's fixed sizes against the settings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "directory/settings.h"
#include "smtp/smtp_session_int.h"

/* smtp_process copies a command line into SMTP_LINE_LIMIT + 1 bytes: the
 * largest smtp.max_line must fit (it once overflowed a smaller buffer),
 * and a limit above it would refuse lines the setting allows. */
static void test_line_limit_is_max_line_max(void **state)
{
	const struct settings_def *d = settings_def(SETTING_SMTP_MAX_LINE);

	(void)state;
	assert_int_equal(d->max, SMTP_LINE_LIMIT);
	assert_true(SMTP_AUTH_LINE_MAX <= SMTP_LINE_LIMIT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_line_limit_is_max_line_max),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
