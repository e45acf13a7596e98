/*
 * chaos_nats_restart.c - nats-server restarted in the middle of a run.
 *
 * About 1,000 jobs/s are posted; after 2 s nats-server is stopped, and
 * started again 5 s later (longer than the gateway's 2 s publish timeout,
 * so requests caught in the outage are answered). During the outage the
 * gateway must refuse with 503 (never answer 202 for a job it then loses,
 * never 500) and it must
 * recover by itself; the producer retries refused batches with the same
 * idempotency keys. At the end every job answered 202 has exactly one
 * succeeded attempt and no other job exists. Recovery: from the restart to
 * the first 202.
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
#include "yt_workers.h"

#define JOBS 6000

static void test_nats_restarted_mid_run(void **state)
{
    yt_cluster_t c = {0};
    /* A publish waits at most 2 s for its PubAck, and the outage lasts 5 s:
     * requests caught in it are answered 503, whatever the timing. */
    char *const env[] = {"YARD_JS_ACK_WAIT_S=5", "YARD_JS_PUBLISH_TIMEOUT_MS=2000", NULL};
    assert_int_equal(yt_cluster_start(&c, env), 0);
    assert_int_equal(yt_worker_start(&c.exec, c.env, "execute", NULL, env, 0), 0);
    yt_chaos_load_t load = {.port = c.port, .njobs = JOBS, .batch = 20, .threads = 2,
                            .batches_per_s = 25, .job_json = "{\"type\":\"noop\"}", .run = "nats"};
    yt_chaos_t *ch;
    assert_int_equal(yt_chaos_start(&ch, &load), 0);
    yt_nap_ms(2000);
    assert_int_equal(yt_nats_stop(c.env), 0);
    long refused0, a, n, o;
    yt_chaos_counts(ch, &a, &refused0, &n, &o);
    yt_nap_ms(5000);
    long long restarted = yt_now_ms();
    assert_int_equal(yt_nats_start(c.env), 0);
    int all = yt_chaos_finish(ch, 90000);
    long accepted, refused, no_answer, other;
    yt_chaos_counts(ch, &accepted, &refused, &no_answer, &other);
    long long first = yt_chaos_first_ok_after(ch, restarted);
    int verdict = yt_chaos_verdict(ch, c.env, "nats-restart", first < 0 ? -1 : first - restarted,
                                   120000);
    yt_chaos_free(ch);
    yt_cluster_stop(&c);
    if (refused <= refused0)
        fail_msg("the gateway refused nothing while NATS was down: the outage was not felt");
    assert_int_equal(other, 0);
    assert_int_equal(all, 0);
    assert_int_equal(verdict, 0);
}

int main(void)
{
    yard_log_init("chaos_nats_restart", YARD_LOG_ERROR);
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_nats_restarted_mid_run)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
