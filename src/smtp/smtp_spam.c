/*
 * smtp_spam: the spam-scoring stage of the end of DATA (smtp_session_int.h).
 */
#include "smtp/smtp_session_int.h"

void smtp_stage_spam(struct smtp_session *s)
{
	smtp_stage_next(s);
}
