/* The content filter's place in the SMTP server: the stage at the end of
 * DATA and what the commit does with its plan. */
#ifndef PETREL_SMTP_FILTER_H
#define PETREL_SMTP_FILTER_H

struct env;
struct filter_set;
struct smtp_commit;
struct smtp_filter_plan;

/* Makes `set` the rules of the messages that come next (takes a
 * reference; NULL: no rules). Loop thread only. */
void smtp_filter_install(struct filter_set *set);

/* Frees a plan (accepts NULL). */
void smtp_filter_plan_free(struct smtp_filter_plan *p);

/*
 * The commit with a filter plan (worker thread, from smtp_commit_work):
 * spools each copy (recipients with the same outcome share one), moves
 * held ones into hold or bad, queues the notes. Sets c->ok, c->queue_id
 * (the first copy's; "" when every copy was deleted) and c->message_id.
 */
void smtp_filter_commit(void *thread_state, struct smtp_commit *c);

/* On the loop after the commit: hands the message to delivery
 * (env->message_queued); with a filter plan, each spooled copy that is
 * not held and each note. */
void smtp_filter_announce(const struct smtp_commit *c, struct env *env);

#endif
