/*
 * chaos_worker_kill.c - 20,000 jobs while the execute worker is killed
 * with SIGKILL every two seconds and started again.
 *
 * The jobs in flight at each kill are redelivered after the ack wait (5 s
 * here) and must be recorded once: at the end every job answered 202 has
 * exactly one succeeded attempt, and no other job exists.
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

#define JOBS 20000

static void test_worker_killed_every_two_seconds(void **state)
{
    yt_cluster_t c = {0};
    assert_int_equal(yt_chaos_cluster_start(&c, 0), 0);
    yt_chaos_load_t load = {.port = c.port, .njobs = JOBS, .batch = 100, .threads = 2,
                            .job_json = "{\"type\":\"sleep\",\"payload\":{\"ms\":1}}",
                            .run = "wk"};
    yt_chaos_t *ch;
    assert_int_equal(yt_chaos_start(&ch, &load), 0);
    int kills = 0;
    long long start = yt_now_ms(), restart_total = 0;
    /* Kill while work remains (at most 90 s of chaos). */
    while (yt_now_ms() - start < 90000) {
        yt_nap_ms(2000);
        long done = (long)yt_sql_int(c.env, "SELECT count(*) FROM jobs WHERE status = 'succeeded'");
        if (done >= JOBS)
            break;
        yt_worker_stop(c.env, &c.exec, SIGKILL, 5000);
        kills++;
        long long t0 = yt_now_ms();
        assert_int_equal(yt_worker_start(&c.exec, c.env, "execute", NULL, yt_chaos_env, 0), 0);
        restart_total += yt_now_ms() - t0;
    }
    yt_chaos_finish(ch, 60000);
    printf("chaos worker-kill: %d kills with SIGKILL, a restarted worker was ready after %lld ms "
           "on average\n",
           kills, kills ? restart_total / kills : 0);
    int verdict = yt_chaos_verdict(ch, c.env, "worker-kill", kills ? restart_total / kills : -1,
                                   120000);
    yt_chaos_free(ch);
    yt_cluster_stop(&c);
    assert_true(kills >= 3);
    assert_int_equal(verdict, 0);
}

int main(void)
{
    yard_log_init("chaos_worker_kill", YARD_LOG_ERROR);
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_worker_killed_every_two_seconds)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
