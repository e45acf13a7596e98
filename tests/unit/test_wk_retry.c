/*
 * test_wk_retry.c - backoff: the ceiling doubles up to the cap, the delay
 * stays in [c/2, c], and the gaps of one job never shrink.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "retry.h"

static void test_ceiling_doubles_to_cap(void **state)
{
    assert_true(wk_retry_ceiling_ms(1000, 300000, 1) == 1000);
    assert_true(wk_retry_ceiling_ms(1000, 300000, 2) == 2000);
    assert_true(wk_retry_ceiling_ms(1000, 300000, 5) == 16000);
    assert_true(wk_retry_ceiling_ms(1000, 300000, 9) == 256000);
    assert_true(wk_retry_ceiling_ms(1000, 300000, 10) == 300000);
    assert_true(wk_retry_ceiling_ms(1000, 300000, 100) == 300000); /* no overflow */
}

static void test_delay_bounds_and_growth(void **state)
{
    for (unsigned a = 1; a < 12; a++) {
        int64_t c = wk_retry_ceiling_ms(200, 60000, a);
        int64_t lo = wk_retry_delay_ms(200, 60000, a, 0.0);
        int64_t hi = wk_retry_delay_ms(200, 60000, a, 0.999999);
        assert_true(lo >= c / 2 && lo <= c);
        assert_true(hi >= c / 2 && hi <= c);
        /* Below the cap, the shortest next gap is never below the longest
         * previous one. */
        if (a > 1 && c == 2 * wk_retry_ceiling_ms(200, 60000, a - 1))
            assert_true(lo >= wk_retry_delay_ms(200, 60000, a - 1, 0.999999));
    }
    assert_true(wk_retry_delay_ms(1000, 1000, 3, -1) >= 500);
    assert_true(wk_retry_delay_ms(1000, 1000, 3, 7) <= 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ceiling_doubles_to_cap),
        cmocka_unit_test(test_delay_bounds_and_growth),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
