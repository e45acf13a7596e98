/*
 * chaos_pg_restart.c - PostgreSQL restarted in the middle of a run.
 *
 * About 1,000 jobs/s are posted; after 2 s PostgreSQL is stopped, and
 * started again 4 s later. The execute worker's readiness must go red
 * during the outage and green again after it (workers back off and
 * recover by themselves). At the end every job answered 202 has exactly
 * one succeeded attempt and no other job exists. Recovery: from the
 * restart until the worker answers /readyz 200 again.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>

#include "harness.h"
#include "log.h"
#include "yt_chaos.h"
#include "yt_http.h"
#include "yt_workers.h"

#define JOBS 6000

static void test_pg_restarted_mid_run(void **state)
{
    yt_cluster_t c = {0};
    char *const env[] = {"YARD_JS_ACK_WAIT_S=5", "YARD_WORKER_UNREADY_AFTER_S=1", NULL};
    assert_int_equal(yt_cluster_start(&c, env), 0);
    assert_int_equal(yt_worker_start(&c.exec, c.env, "execute", NULL, env, 0), 0);
    yt_chaos_load_t load = {.port = c.port, .njobs = JOBS, .batch = 20, .threads = 2,
                            .batches_per_s = 25, .job_json = "{\"type\":\"noop\"}", .run = "pg"};
    yt_chaos_t *ch;
    assert_int_equal(yt_chaos_start(&ch, &load), 0);
    yt_nap_ms(2000);
    assert_int_equal(yt_pg_stop(c.env), 0);
    int red = 0;
    long long until = yt_now_ms() + 4000;
    while (yt_now_ms() < until) {
        red |= yt_http_status(c.exec.metrics_port, "/readyz") == 503;
        yt_nap_ms(100);
    }
    long long restarted = yt_now_ms();
    assert_int_equal(yt_pg_start(c.env), 0);
    long long green = -1;
    until = yt_now_ms() + 60000;
    while (yt_now_ms() < until) {
        if (yt_http_status(c.exec.metrics_port, "/readyz") == 200) {
            green = yt_now_ms();
            break;
        }
        yt_nap_ms(50);
    }
    int all = yt_chaos_finish(ch, 90000);
    int verdict = yt_chaos_verdict(ch, c.env, "pg-restart", green < 0 ? -1 : green - restarted,
                                   120000);
    yt_chaos_free(ch);
    yt_cluster_stop(&c);
    if (!red)
        fail_msg("the execute worker stayed ready while PostgreSQL was down");
    if (green < 0)
        fail_msg("the execute worker did not become ready within 60 s of PostgreSQL's restart");
    assert_int_equal(all, 0);
    assert_int_equal(verdict, 0);
}

int main(void)
{
    yard_log_init("chaos_pg_restart", YARD_LOG_ERROR);
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_pg_restarted_mid_run)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
