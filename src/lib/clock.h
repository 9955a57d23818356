/* The injectable clock. */
#ifndef PETREL_CLOCK_H
#define PETREL_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Milliseconds since the epoch: the real time, or the fake one when set. */
int64_t clock_now_ms(void);
/* Seconds since the epoch. */
time_t clock_now(void);
/* Monotonic milliseconds, for timeouts and durations (fake when set). */
int64_t clock_mono_ms(void);
/* Tests: pin both clocks to ms (>= 0); a negative value restores them. */
void clock_set_fake(int64_t ms);
/* Tests: moves the fake clock forward by ms. */
void clock_advance(int64_t ms);

#endif
