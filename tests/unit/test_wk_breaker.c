/*
 * test_wk_breaker.c - the per-host circuit breaker's state machine
 * (workers/breaker.h) on an injected clock: closed -> open after N
 * consecutive failures, fail fast with the remaining cool-down, one probe
 * (half-open) while others wait, the probe's success closes and its
 * failure reopens, a lost probe lets another go, hosts are independent,
 * and the bounded table evicts only healthy hosts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "breaker.h"
#include "err.h"

static int64_t now_ms;

static int64_t fake_clock(void *ud)
{
    return now_ms;
}

static wk_breaker_t *make(unsigned failures, int64_t cooldown, size_t hosts)
{
    wk_breaker_t *b = NULL;
    wk_breaker_opts_t o = {failures, cooldown, hosts, fake_clock, NULL};
    now_ms = 1000000;
    assert_int_equal(wk_breaker_create(&b, &o), 0);
    return b;
}

/* Fails host n times, each call allowed first. */
static void fail_n(wk_breaker_t *b, const char *host, int n)
{
    for (int i = 0; i < n; i++) {
        int64_t wait = -1;
        if (wk_breaker_allow(b, host, &wait, NULL) != 0)
            fail_msg("call %d to %s: expected allowed, got refused (wait %lld)", i + 1, host,
                     (long long)wait);
        wk_breaker_report(b, host, 0);
    }
}

static void test_opens_after_n_consecutive_failures(void **state)
{
    wk_breaker_t *b = make(5, 30000, 16);
    int64_t wait = 0;
    fail_n(b, "a:80", 4);
    assert_int_equal(wk_breaker_state(b, "a:80"), WK_CIRCUIT_CLOSED);
    /* A success in between resets the count. */
    assert_int_equal(wk_breaker_allow(b, "a:80", &wait, NULL), 0);
    wk_breaker_report(b, "a:80", 1);
    fail_n(b, "a:80", 4);
    assert_int_equal(wk_breaker_state(b, "a:80"), WK_CIRCUIT_CLOSED);
    fail_n(b, "a:80", 1);
    assert_int_equal(wk_breaker_state(b, "a:80"), WK_CIRCUIT_OPEN);
    /* Fails fast with the rest of the cool-down. */
    now_ms += 10000;
    assert_int_equal(wk_breaker_allow(b, "a:80", &wait, NULL), YARD_EBUSY);
    assert_int_equal(wait, 20000);
    /* Other hosts are not affected. */
    assert_int_equal(wk_breaker_allow(b, "b:80", &wait, NULL), 0);
    wk_breaker_destroy(b);
}

static void test_one_probe_then_close(void **state)
{
    wk_breaker_t *b = make(2, 1000, 16);
    int64_t wait = 0;
    int probe = 0;
    fail_n(b, "h:443", 2);
    now_ms += 999;
    assert_int_equal(wk_breaker_allow(b, "h:443", &wait, &probe), YARD_EBUSY);
    assert_int_equal(wait, 1);
    now_ms += 1;
    assert_int_equal(wk_breaker_allow(b, "h:443", &wait, &probe), 0);
    assert_int_equal(probe, 1);
    assert_int_equal(wk_breaker_state(b, "h:443"), WK_CIRCUIT_HALF_OPEN);
    /* While the probe runs, everyone else waits. */
    now_ms += 100;
    assert_int_equal(wk_breaker_allow(b, "h:443", &wait, &probe), YARD_EBUSY);
    assert_true(wait > 0 && wait <= 1000);
    wk_breaker_report(b, "h:443", 1);
    assert_int_equal(wk_breaker_state(b, "h:443"), WK_CIRCUIT_CLOSED);
    assert_int_equal(wk_breaker_allow(b, "h:443", &wait, &probe), 0);
    assert_int_equal(probe, 0);
    wk_breaker_destroy(b);
}

static void test_failed_probe_reopens(void **state)
{
    wk_breaker_t *b = make(3, 5000, 16);
    int64_t wait = 0;
    int probe = 0;
    fail_n(b, "h:80", 3);
    now_ms += 5000;
    assert_int_equal(wk_breaker_allow(b, "h:80", &wait, &probe), 0);
    assert_int_equal(probe, 1);
    wk_breaker_report(b, "h:80", 0);
    assert_int_equal(wk_breaker_state(b, "h:80"), WK_CIRCUIT_OPEN);
    assert_int_equal(wk_breaker_allow(b, "h:80", &wait, &probe), YARD_EBUSY);
    assert_int_equal(wait, 5000);
    wk_breaker_destroy(b);
}

static void test_lost_probe_lets_another_go(void **state)
{
    wk_breaker_t *b = make(1, 2000, 16);
    int64_t wait = 0;
    int probe = 0;
    fail_n(b, "h:80", 1);
    now_ms += 2000;
    assert_int_equal(wk_breaker_allow(b, "h:80", &wait, &probe), 0);
    assert_int_equal(probe, 1);
    /* Its caller never reports. A cool-down later, another probe goes. */
    now_ms += 1999;
    assert_int_equal(wk_breaker_allow(b, "h:80", &wait, &probe), YARD_EBUSY);
    now_ms += 1;
    assert_int_equal(wk_breaker_allow(b, "h:80", &wait, &probe), 0);
    assert_int_equal(probe, 1);
    wk_breaker_destroy(b);
}

typedef struct {
    int n;
    char hosts[8][64];
    wk_circuit_state_t states[8];
    uint64_t opened[8];
} seen_t;

static void collect(void *ud, const char *host, wk_circuit_state_t s, uint64_t opened)
{
    seen_t *seen = ud;
    if (seen->n < 8) {
        snprintf(seen->hosts[seen->n], sizeof seen->hosts[0], "%s", host);
        seen->states[seen->n] = s;
        seen->opened[seen->n] = opened;
    }
    seen->n++;
}

static void test_metrics_walk_and_bounded_table(void **state)
{
    wk_breaker_t *b = make(1, 1000, 2);
    int64_t wait = 0;
    seen_t seen = {0};
    fail_n(b, "bad:80", 1);          /* opens */
    now_ms += 1000;
    assert_int_equal(wk_breaker_allow(b, "bad:80", &wait, NULL), 0);
    wk_breaker_report(b, "bad:80", 0); /* opens again */
    /* Healthy hosts never take a slot from the open one. */
    for (int i = 0; i < 10; i++) {
        char host[32];
        snprintf(host, sizeof host, "ok%d:80", i);
        wk_breaker_report(b, host, 1);
        fail_n(b, host, 0);
    }
    /* The one free slot goes to a failing host; a third failing host
     * finds no healthy slot to take and is not tracked (always allowed). */
    wk_breaker_report(b, "flaky:80", 0);
    assert_int_equal(wk_breaker_state(b, "flaky:80"), WK_CIRCUIT_OPEN);
    wk_breaker_report(b, "other:80", 0);
    assert_int_equal(wk_breaker_state(b, "other:80"), WK_CIRCUIT_CLOSED);
    assert_int_equal(wk_breaker_allow(b, "other:80", &wait, NULL), 0);
    assert_int_equal(wk_breaker_state(b, "bad:80"), WK_CIRCUIT_OPEN);
    wk_breaker_each(b, 1, collect, &seen);
    assert_int_equal(seen.n, 1); /* the limit holds */
    seen.n = 0;
    wk_breaker_each(b, 50, collect, &seen);
    assert_int_equal(seen.n, 2);
    for (int i = 0; i < 2; i++) {
        if (!strcmp(seen.hosts[i], "bad:80"))
            assert_int_equal(seen.opened[i], 2);
        else
            assert_string_equal(seen.hosts[i], "flaky:80");
        assert_int_equal(seen.states[i], WK_CIRCUIT_OPEN);
    }
    assert_string_equal(wk_circuit_state_name(WK_CIRCUIT_HALF_OPEN), "half_open");
    wk_breaker_destroy(b);
}

static void test_bad_options(void **state)
{
    wk_breaker_t *b = NULL;
    wk_breaker_opts_t o = {0, 1000, 4, NULL, NULL};
    assert_int_equal(wk_breaker_create(&b, &o), YARD_EINVAL);
    o.failures = 1;
    o.cooldown_ms = 0;
    assert_int_equal(wk_breaker_create(&b, &o), YARD_EINVAL);
    o.cooldown_ms = 1;
    o.max_hosts = 0;
    assert_int_equal(wk_breaker_create(&b, &o), YARD_EINVAL);
    assert_null(b);
    wk_breaker_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_opens_after_n_consecutive_failures),
        cmocka_unit_test(test_one_probe_then_close),
        cmocka_unit_test(test_failed_probe_reopens),
        cmocka_unit_test(test_lost_probe_lets_another_go),
        cmocka_unit_test(test_metrics_walk_and_bounded_table),
        cmocka_unit_test(test_bad_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
