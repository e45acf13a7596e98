/*
 * chaos_gateway_kill.c - the gateway killed with SIGKILL in the middle of
 * a run, and started again on the same port a second later.
 *
 * Requests in flight at the kill get no answer; the producer sends those
 * batches again with the same idempotency keys. Every job the gateway
 * answered 202 must still complete, exactly once, and no other job exists
 * (a job stored but never answered is answered by the retry, with the
 * same id). Recovery: from the restart to the first 202.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>

#include "harness.h"
#include "log.h"
#include "yt_chaos.h"
#include "yt_workers.h"

#define JOBS 6000

static void test_gateway_killed_mid_run(void **state)
{
    yt_cluster_t c = {0};
    assert_int_equal(yt_chaos_cluster_start(&c, 0), 0);
    yt_chaos_load_t load = {.port = c.port, .njobs = JOBS, .batch = 20, .threads = 4,
                            .batches_per_s = 13, .job_json = "{\"type\":\"noop\"}", .run = "gw"};
    yt_chaos_t *ch;
    assert_int_equal(yt_chaos_start(&ch, &load), 0);
    yt_nap_ms(2000);
    assert_true(yt_kill_wait(c.gw, SIGKILL, 5000) >= 0);
    yt_nap_ms(1000);
    char port_var[32];
    snprintf(port_var, sizeof port_var, "YARD_HTTP_PORT=%d", c.port);
    char *const again[] = {"YARD_JS_ACK_WAIT_S=5", port_var, NULL};
    long long restarted = yt_now_ms();
    int port = 0;
    c.gw = yt_e2e_gateway_start(c.env, &port, again);
    assert_true(c.gw > 0);
    assert_int_equal(port, c.port);
    int all = yt_chaos_finish(ch, 90000);
    long accepted, refused, no_answer, other;
    yt_chaos_counts(ch, &accepted, &refused, &no_answer, &other);
    long long first = yt_chaos_first_ok_after(ch, restarted);
    int verdict = yt_chaos_verdict(ch, c.env, "gateway-kill", first < 0 ? -1 : first - restarted,
                                   120000);
    yt_chaos_free(ch);
    yt_cluster_stop(&c);
    if (no_answer == 0 && refused == 0)
        fail_msg("no request went unanswered: the kill was not felt");
    assert_int_equal(other, 0);
    assert_int_equal(all, 0);
    assert_int_equal(verdict, 0);
}

int main(void)
{
    yard_log_init("chaos_gateway_kill", YARD_LOG_ERROR);
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_gateway_killed_mid_run)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
