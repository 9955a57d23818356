/*
 * clock: every module asks the time here, so that tests can set it. Pure
 * modules take the time as an argument instead (STYLE.md, "Layout").
 */
#include "lib/clock.h"

#include <stdatomic.h>

static _Atomic int64_t clock_fake_ms = -1;

int64_t clock_now_ms(void)
{
	struct timespec ts;
	int64_t fake = atomic_load(&clock_fake_ms);

	if (fake >= 0)
		return fake;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

time_t clock_now(void)
{
	return (time_t)(clock_now_ms() / 1000);
}

int64_t clock_mono_ms(void)
{
	struct timespec ts;
	int64_t fake = atomic_load(&clock_fake_ms);

	if (fake >= 0)
		return fake;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void clock_set_fake(int64_t ms)
{
	atomic_store(&clock_fake_ms, ms < 0 ? -1 : ms);
}

void clock_advance(int64_t ms)
{
	atomic_fetch_add(&clock_fake_ms, ms);
}
