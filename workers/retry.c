/*
 * retry.c - exponential backoff with equal jitter (retry.h).
 */
#include "retry.h"

int64_t wk_retry_ceiling_ms(int64_t base_ms, int64_t cap_ms, unsigned attempt)
{
    int64_t d = base_ms;
    for (unsigned i = 1; i < attempt && d < cap_ms; i++)
        d *= 2;
    return d < cap_ms ? d : cap_ms;
}

int64_t wk_retry_delay_ms(int64_t base_ms, int64_t cap_ms, unsigned attempt, double random01)
{
    if (random01 < 0)
        random01 = 0;
    if (random01 >= 1)
        random01 = 0.999999;
    int64_t c = wk_retry_ceiling_ms(base_ms, cap_ms, attempt);
    return c - c / 2 + (int64_t)((double)(c / 2) * random01);
}
