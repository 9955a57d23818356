/*
 * smtp_filter: the content-filter stage of the end of DATA (smtp_session_int.h).
 */
#include "smtp/smtp_session_int.h"

void smtp_stage_filter(struct smtp_session *s)
{
	smtp_stage_next(s);
}
