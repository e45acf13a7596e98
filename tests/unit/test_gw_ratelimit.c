/*
 * test_gw_ratelimit.c - per-key token buckets (gateway/ratelimit.c) on a fake
 * clock. Checks: a burst passes then the next request is refused with the
 * right Retry-After (a whole number of seconds >= 1, after which the request
 * does pass); refill follows elapsed time and stops at burst; keys are
 * independent; refusals take nothing; requests larger than burst; changed
 * limits; bad arguments; idle full buckets are evicted (by gw_rate_sweep and
 * from gw_rate_take, at most once a sweep interval), partial ones are kept;
 * many keys.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "err.h"
#include "log.h"
#include "ratelimit.h"

#define T0 1000000ull /* the fake clock's start, ms: far from 0 on purpose */
#define MARK -42.0    /* retry_after before a call: must survive a success */

static int setup(void **state)
{
    gw_rate_t *r = NULL;
    yard_log_init("test_gw_ratelimit", YARD_LOG_OFF);
    assert_int_equal(gw_rate_create(&r), 0);
    *state = r;
    return 0;
}

static int teardown(void **state)
{
    gw_rate_destroy(*state);
    return 0;
}

/* One take that must pass. */
static void pass(gw_rate_t *r, const char *key, double rate, double burst, double tokens,
                 uint64_t now)
{
    double retry = MARK;
    int rc = gw_rate_take(r, key, rate, burst, tokens, now, &retry);
    if (rc != 0)
        fail_msg("%s at +%llu ms (rate %g, burst %g, cost %g): expected to pass, got %s "
                 "(retry after %g s)", key, (unsigned long long)(now - T0), rate, burst, tokens,
                 yard_errname(rc), retry);
    assert_true(retry == MARK);
}

/* One take that must be refused; returns its Retry-After. */
static double refused(gw_rate_t *r, const char *key, double rate, double burst, double tokens,
                      uint64_t now)
{
    double retry = MARK;
    int rc = gw_rate_take(r, key, rate, burst, tokens, now, &retry);
    if (rc != YARD_EBUSY)
        fail_msg("%s at +%llu ms (rate %g, burst %g, cost %g): expected EBUSY, got %s", key,
                 (unsigned long long)(now - T0), rate, burst, tokens, yard_errname(rc));
    if (!(retry >= 1) || retry != floor(retry))
        fail_msg("expected Retry-After to be a whole number >= 1, got %g", retry);
    return retry;
}

static void test_burst_then_refused_with_retry_after(void **state)
{
    gw_rate_t *r = *state;

    for (int i = 0; i < 5; i++)
        pass(r, "a", 2, 5, 1, T0);
    /* One token at 2/s takes 0.5 s: rounded up to 1. */
    assert_true(refused(r, "a", 2, 5, 1, T0) == 1);
    /* 0.25/s: one token takes 4 s. */
    for (int i = 0; i < 2; i++)
        pass(r, "b", 0.25, 2, 1, T0);
    assert_true(refused(r, "b", 0.25, 2, 1, T0) == 4);
    /* 0.1/s: 10 s; 3 tokens at 1/s from empty: 3 s. */
    pass(r, "c", 0.1, 1, 1, T0);
    assert_true(refused(r, "c", 0.1, 1, 1, T0) == 10);
    for (int i = 0; i < 10; i++)
        pass(r, "d", 1, 10, 1, T0);
    assert_true(refused(r, "d", 1, 10, 3, T0) == 3);
    assert_true(refused(r, "d", 1, 10, 3, T0 + 1000) == 2);
    assert_true(refused(r, "d", 1, 10, 3, T0 + 1500) == 2); /* 1.5 s to go: 2 */
    assert_true(refused(r, "d", 1, 10, 3, T0 + 2001) == 1);
    pass(r, "d", 1, 10, 3, T0 + 3000);
    /* So high a rate that a token takes under a nanosecond: still 1, never 0. */
    pass(r, "e", 1e10, 1, 1, T0);
    assert_true(refused(r, "e", 1e10, 1, 1, T0) == 1);
}

/* Waiting exactly Retry-After seconds is enough, and one second less is not
 * (when the wait is more than a second), for several shapes of bucket. */
static void test_retry_after_is_exact(void **state)
{
    gw_rate_t *r = *state;
    static const struct {
        double rate, burst, cost;
    } cases[] = {{1, 1, 1}, {0.3, 2, 1}, {3, 10, 7}, {0.05, 3, 2}, {7.5, 20, 20}};
    char key[16];

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double rate = cases[i].rate, burst = cases[i].burst, cost = cases[i].cost;
        uint64_t now = T0;
        snprintf(key, sizeof key, "k%zu", i);
        while (gw_rate_take(r, key, rate, burst, cost, now, &(double){0}) == 0)
            ;
        double wait = refused(r, key, rate, burst, cost, now);
        double exact = ceil(cost / rate); /* drained below cost: at most this */
        if (wait > exact)
            fail_msg("case %zu: expected Retry-After <= %g, got %g", i, exact, wait);
        if (wait > 1)
            refused(r, key, rate, burst, cost, now + (uint64_t)(wait - 1) * 1000);
        pass(r, key, rate, burst, cost, now + (uint64_t)wait * 1000);
    }
}

static void test_refill_follows_the_clock_and_stops_at_burst(void **state)
{
    gw_rate_t *r = *state;

    for (int i = 0; i < 5; i++)
        pass(r, "a", 2, 5, 1, T0);
    refused(r, "a", 2, 5, 1, T0 + 499); /* 0.998 tokens */
    pass(r, "a", 2, 5, 1, T0 + 500);    /* 1 token */
    refused(r, "a", 2, 5, 1, T0 + 500);
    /* Fractions add up: 4 x 125 ms at 2/s is one token. */
    for (uint64_t t = T0 + 625; t < T0 + 1000; t += 125)
        refused(r, "a", 2, 5, 1, t);
    pass(r, "a", 2, 5, 1, T0 + 1000);
    /* An hour later the bucket holds burst, not more. */
    for (int i = 0; i < 5; i++)
        pass(r, "a", 2, 5, 1, T0 + 3600000);
    refused(r, "a", 2, 5, 1, T0 + 3600000);
    /* A clock that steps back earns nothing and breaks nothing. */
    refused(r, "a", 2, 5, 1, T0);
    pass(r, "a", 2, 5, 1, T0 + 3600500);
}

static void test_keys_are_independent_and_refusals_take_nothing(void **state)
{
    gw_rate_t *r = *state;

    for (int i = 0; i < 3; i++)
        pass(r, "a", 1, 3, 1, T0);
    refused(r, "a", 1, 3, 1, T0);
    for (int i = 0; i < 3; i++)
        pass(r, "b", 1, 3, 1, T0); /* b has its own bucket */
    /* Many refusals of a do not push its refill back. */
    for (int i = 0; i < 50; i++)
        refused(r, "a", 1, 3, 1, T0 + 10 * (uint64_t)i);
    pass(r, "a", 1, 3, 1, T0 + 1000);
    /* A refused large request takes nothing: a small one still fits. */
    refused(r, "b", 1, 3, 2, T0 + 1000);
    pass(r, "b", 1, 3, 1, T0 + 1000);
    assert_int_equal(gw_rate_count(r), 2);
}

/* A request larger than burst needs a full bucket and leaves it in debt. */
static void test_request_larger_than_burst(void **state)
{
    gw_rate_t *r = *state;

    pass(r, "a", 1, 5, 1, T0);
    assert_true(refused(r, "a", 1, 5, 8, T0) == 1); /* needs 5, has 4 */
    pass(r, "a", 1, 5, 8, T0 + 1000);               /* full: 5 - 8 = -3 */
    assert_true(refused(r, "a", 1, 5, 1, T0 + 1000) == 4);
    refused(r, "a", 1, 5, 1, T0 + 4999);
    pass(r, "a", 1, 5, 1, T0 + 5000);
}

/* Limits come with each call: a lower burst caps what the bucket holds, a
 * higher rate refills faster from then on. */
static void test_changed_limits_apply_at_once(void **state)
{
    gw_rate_t *r = *state;

    pass(r, "a", 1, 100, 1, T0); /* 99 left */
    for (int i = 0; i < 3; i++)
        pass(r, "a", 1, 3, 1, T0);
    assert_true(refused(r, "a", 1, 3, 1, T0) == 1);
    assert_true(refused(r, "a", 0.5, 3, 1, T0) == 2);
    pass(r, "a", 10, 3, 1, T0 + 100);
}

static void test_bad_arguments_are_refused(void **state)
{
    gw_rate_t *r = *state;
    double retry = MARK;

    assert_int_equal(gw_rate_take(r, "a", 0, 5, 1, T0, &retry), YARD_EINVAL);
    assert_int_equal(gw_rate_take(r, "a", -1, 5, 1, T0, &retry), YARD_EINVAL);
    assert_int_equal(gw_rate_take(r, "a", NAN, 5, 1, T0, &retry), YARD_EINVAL);
    assert_int_equal(gw_rate_take(r, "a", INFINITY, 5, 1, T0, &retry), YARD_EINVAL);
    assert_int_equal(gw_rate_take(r, "a", 1, 0.5, 1, T0, &retry), YARD_EINVAL);
    assert_int_equal(gw_rate_take(r, "a", 1, 5, 0, T0, &retry), YARD_EINVAL);
    assert_int_equal(gw_rate_take(r, "a", 1, 5, NAN, T0, &retry), YARD_EINVAL);
    assert_int_equal(gw_rate_take(r, "", 1, 5, 1, T0, &retry), YARD_EINVAL);
    assert_int_equal(gw_rate_take(r, NULL, 1, 5, 1, T0, &retry), YARD_EINVAL);
    assert_true(retry == MARK);
    assert_int_equal(gw_rate_count(r), 0);
    gw_rate_destroy(NULL);
}

static void test_idle_full_buckets_are_evicted(void **state)
{
    gw_rate_t *r = *state;
    uint64_t idle = GW_RATE_IDLE_MS;

    pass(r, "a", 10, 10, 1, T0);
    pass(r, "b", 10, 10, 1, T0);
    pass(r, "c", 10, 10, 1, T0);
    pass(r, "slow", 0.001, 1, 1, T0); /* refills in 1000 s, more than the idle time */
    pass(r, "b", 10, 10, 1, T0 + idle / 2);
    assert_int_equal(gw_rate_count(r), 4);
    assert_int_equal(gw_rate_sweep(r, T0 + idle - 1), 0);
    /* a and c have been idle long enough and are full again; b is recent;
     * slow is idle but holds 0.6 tokens, and forgetting it would give one. */
    assert_int_equal(gw_rate_sweep(r, T0 + idle), 2);
    assert_int_equal(gw_rate_count(r), 2);
    refused(r, "slow", 0.001, 1, 1, T0 + idle);
    /* An evicted key starts again full, as it would have been. */
    for (int i = 0; i < 10; i++)
        pass(r, "a", 10, 10, 1, T0 + idle);
    refused(r, "a", 10, 10, 1, T0 + idle);
    /* slow goes once it has refilled and sat idle. */
    assert_int_equal(gw_rate_sweep(r, T0 + 2 * idle + 1000000), 3);
    assert_int_equal(gw_rate_count(r), 0);
}

/* gw_rate_take sweeps by itself, at most once every GW_RATE_SWEEP_EVERY_MS. */
static void test_take_sweeps_by_itself(void **state)
{
    gw_rate_t *r = *state;
    char key[16];

    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof key, "old%d", i);
        pass(r, key, 100, 100, 1, T0);
    }
    assert_int_equal(gw_rate_count(r), 100);
    pass(r, "new", 100, 100, 1, T0 + GW_RATE_IDLE_MS);
    assert_int_equal(gw_rate_count(r), 1);
    /* Within a sweep interval, idle buckets are left alone. */
    pass(r, "newer", 100, 100, 1, T0 + GW_RATE_IDLE_MS + 1);
    assert_int_equal(gw_rate_count(r), 2);
}

/* Between two sweeps at least GW_RATE_SWEEP_EVERY_MS pass, however many
 * takes come in between. */
static void test_take_sweeps_at_most_once_an_interval(void **state)
{
    gw_rate_t *r = *state;
    uint64_t idle = GW_RATE_IDLE_MS, every = GW_RATE_SWEEP_EVERY_MS;

    pass(r, "a", 100, 100, 1, T0);                 /* sweeps (the first take) */
    pass(r, "b", 100, 100, 1, T0 + idle - every / 2); /* sweeps: a is not idle yet */
    pass(r, "c", 100, 100, 1, T0 + idle + 1);      /* a is idle, but no sweep is due */
    assert_int_equal(gw_rate_count(r), 3);
    pass(r, "d", 100, 100, 1, T0 + idle + every / 2); /* due: a goes */
    assert_int_equal(gw_rate_count(r), 3);
    double retry = MARK;
    assert_int_equal(gw_rate_take(r, "a", 100, 100, 100, T0 + idle + every / 2, &retry), 0);
    assert_int_equal(gw_rate_count(r), 4); /* a again, new and full */
}

static void test_many_keys(void **state)
{
    gw_rate_t *r = *state;
    enum { N = 5000 };
    char key[40];

    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "0190a000-0000-7000-8000-%012d", i);
        pass(r, key, 1, 1, 1, T0);
    }
    assert_int_equal(gw_rate_count(r), N);
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "0190a000-0000-7000-8000-%012d", i);
        refused(r, key, 1, 1, 1, T0 + 10);
    }
    assert_int_equal(gw_rate_count(r), N);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_burst_then_refused_with_retry_after),
        T(test_retry_after_is_exact),
        T(test_refill_follows_the_clock_and_stops_at_burst),
        T(test_keys_are_independent_and_refusals_take_nothing),
        T(test_request_larger_than_burst),
        T(test_changed_limits_apply_at_once),
        T(test_bad_arguments_are_refused),
        T(test_idle_full_buckets_are_evicted),
        T(test_take_sweeps_by_itself),
        T(test_take_sweeps_at_most_once_an_interval),
        T(test_many_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
