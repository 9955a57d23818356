/*
 * smtp_hijack: the hijack-detection stage of the end of DATA.
 */
#include "smtp/smtp_session_int.h"

void smtp_stage_hijack(struct smtp_session *s)
{
	smtp_stage_next(s);
}
