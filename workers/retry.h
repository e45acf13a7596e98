/*
 * retry.h - when a failed job runs again.
 *
 * Exponential backoff with jitter: with c = min(cap, base * 2^(n-1)), the
 * delay before attempt n+1 is uniformly random in [c/2, c] ("equal
 * jitter"). Jitter spreads the retries of many jobs that failed together (an
 * outage) instead of hammering the recovered service in waves; the floor of
 * c/2 keeps the gaps of one job growing until the cap (gap n+1 >= c(n+1)/2 =
 * c(n) >= gap n), which full jitter ([0, c]) would not, so a job does not
 * retry faster after more failures.
 */
#ifndef WK_RETRY_H
#define WK_RETRY_H

#include <stdint.h>

/* The delay in ms after failed attempt `attempt` (1-based): c/2 + c/2 *
 * random01. random01 is a uniform value in [0, 1) supplied by the caller
 * (tests pass fixed ones). */
int64_t wk_retry_delay_ms(int64_t base_ms, int64_t cap_ms, unsigned attempt, double random01);

/* The upper bound of that delay (no jitter): min(cap, base * 2^(attempt-1)). */
int64_t wk_retry_ceiling_ms(int64_t base_ms, int64_t cap_ms, unsigned attempt);

#endif
