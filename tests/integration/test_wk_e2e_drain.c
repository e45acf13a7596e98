/*
 * test_wk_e2e_drain.c - the graceful drain of an execute worker end to end:
 * real yard-gateway and yard-worker processes, real nats-server and
 * PostgreSQL.
 *
 * 2,000 `sleep` jobs of 50 ms go to one execute worker with
 * YARD_WORKER_CONCURRENCY=32 (YARD_WORKER_DRAIN_TIMEOUT_S=10). About a
 * second later, with part of them done, it gets SIGTERM: it must exit 0
 * within the drain timeout. A new worker then finishes the rest, and in the
 * end every one of the 2,000 jobs is `succeeded` with exactly one
 * job_attempts row, whose outcome is succeeded: none lost, none run twice.
 *
 * Then the hard stop: 4 jobs of 4 s on a worker with
 * YARD_WORKER_DRAIN_TIMEOUT_S=1 get SIGTERM while running: the worker exits
 * 0 about a second later, records nothing for them (they are handed back),
 * and a new worker runs each of them to exactly one succeeded attempt.
 *
 * Last, a job handed back that way must keep all of its max_attempts: a
 * sleep job (max_attempts 2) that times out on every run, handed back once
 * by a drain, must still run twice (two `timeout`/dead attempts) before it
 * is dead, since the hand-back was not an attempt (nothing was recorded).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "log.h"
#include "yt_http.h"
#include "yt_workers.h"

#define DRAIN_JOBS 2000
#define DRAIN_BATCH 1000
#define DRAIN_TIMEOUT_S 10

static struct {
    yt_cluster_t c;
} g;

static char *const exec_env[] = {"YARD_WORKER_CONCURRENCY=32", "YARD_WORKER_DRAIN_TIMEOUT_S=10",
                                 NULL};
static char *const short_drain[] = {"YARD_WORKER_CONCURRENCY=4", "YARD_WORKER_DRAIN_TIMEOUT_S=1",
                                    NULL};

static int setup(void **state)
{
    yard_log_init("test_wk_e2e_drain", YARD_LOG_ERROR);
    return yt_cluster_start(&g.c, NULL);
}

static int teardown(void **state)
{
    yt_cluster_stop(&g.c);
    return 0;
}

static void test_sigterm_drains_without_losing_or_repeating_jobs(void **state)
{
    static const char job[] = "{\"type\":\"sleep\",\"payload\":{\"ms\":50}}";
    char(*ids)[YT_JOB_ID_MAX] = calloc(DRAIN_JOBS, sizeof *ids);
    char *body = yt_batch_body(job, DRAIN_BATCH);
    assert_non_null(ids);
    assert_non_null(body);

    if (yt_worker_start(&g.c.exec, g.c.env, "execute", NULL, exec_env, 0) != 0)
        fail_msg("expected a ready execute worker, but it did not start (log above)");
    for (int b = 0; b < DRAIN_JOBS / DRAIN_BATCH; b++) {
        size_t accepted = 0;
        int st = yt_job_submit_batch(g.c.port, body, ids + b * DRAIN_BATCH, DRAIN_BATCH, &accepted);
        if (st != 202 || accepted != DRAIN_BATCH)
            fail_msg("batch %d: expected 202 with %d jobs accepted, got HTTP %d with %zu", b,
                     DRAIN_BATCH, st, accepted);
    }
    free(body);
    char *arr = yt_sql_id_array(ids, DRAIN_JOBS);
    assert_non_null(arr);
    yt_nap_ms(1000);

    long long before = yt_sql_int(g.c.env,
                                  "SELECT count(*) FROM jobs WHERE id = ANY(%s)"
                                  " AND status = 'succeeded'", arr);
    long long t0 = yt_now_ms();
    int ws = yt_worker_stop(g.c.env, &g.c.exec, SIGTERM, DRAIN_TIMEOUT_S * 1000 + 2000);
    long long took = yt_now_ms() - t0;
    if (ws < 0) {
        yt_worker_log_tail(g.c.env, &g.c.exec);
        yt_worker_stop(g.c.env, &g.c.exec, SIGKILL, 5000);
        fail_msg("expected the worker to exit within the drain timeout (%d s) of SIGTERM, it "
                 "was still running after %lld ms", DRAIN_TIMEOUT_S, took);
    }
    if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0) {
        yt_worker_log_tail(g.c.env, &g.c.exec);
        fail_msg("expected the drained worker to exit 0, got %s after %lld ms",
                 yt_wait_status_text(ws), took);
    }
    if (took > DRAIN_TIMEOUT_S * 1000)
        fail_msg("expected the drain to end within %d s, it took %lld ms", DRAIN_TIMEOUT_S, took);
    if (before <= 0 || before >= DRAIN_JOBS)
        fail_msg("expected SIGTERM to land mid-run (some but not all of %d jobs done), %lld were "
                 "done: the test does not test the drain", DRAIN_JOBS, before);

    if (yt_worker_start(&g.c.exec, g.c.env, "execute", NULL, exec_env, 0) != 0)
        fail_msg("expected a second execute worker to start (log above)");
    long long done = yt_wait_sql(g.c.env, DRAIN_JOBS, 60000,
                                 "SELECT count(*) FROM jobs WHERE id = ANY(%s)"
                                 " AND status = 'succeeded'", arr);
    if (done != DRAIN_JOBS) {
        char states[512];
        yt_sql_text(g.c.env, states, sizeof states,
                    "SELECT string_agg(status || ': ' || n, ', ') FROM (SELECT status, count(*)"
                    " AS n FROM jobs WHERE id = ANY(%s) GROUP BY status) s", arr);
        yt_worker_log_tail(g.c.env, &g.c.exec);
        fail_msg("expected all %d jobs succeeded within 60 s of the second worker, got %lld "
                 "(by status: %s)", DRAIN_JOBS, done, states);
    }
    yt_nap_ms(500); /* a job run twice would add a row late */
    long long rows = yt_sql_int(g.c.env, "SELECT count(*) FROM job_attempts WHERE job_id = ANY(%s)",
                                arr);
    long long ok = yt_sql_int(g.c.env,
                              "SELECT count(*) FROM job_attempts WHERE job_id = ANY(%s)"
                              " AND outcome = 'succeeded'", arr);
    long long one = yt_sql_int(g.c.env,
                               "SELECT count(*) FROM (SELECT job_id FROM job_attempts"
                               " WHERE job_id = ANY(%s) GROUP BY job_id HAVING count(*) = 1) s",
                               arr);
    char other[256] = "";
    if (rows != ok)
        yt_sql_text(g.c.env, other, sizeof other,
                    "SELECT string_agg(outcome || ': ' || n, ', ') FROM (SELECT outcome,"
                    " count(*) AS n FROM job_attempts WHERE job_id = ANY(%s)"
                    " GROUP BY outcome) s", arr);
    free(arr);
    free(ids);
    if (rows != DRAIN_JOBS || ok != DRAIN_JOBS || one != DRAIN_JOBS)
        fail_msg("expected exactly one succeeded attempt row for each of the %d jobs (%lld done "
                 "before SIGTERM, drain %lld ms); got %lld rows, %lld succeeded, %lld jobs with "
                 "exactly one row (outcomes: %s)", DRAIN_JOBS, before, took, rows, ok, one,
                 other[0] ? other : "all succeeded");
}

static void test_drain_timeout_hands_running_jobs_back(void **state)
{
    static const char job[] = "{\"type\":\"sleep\",\"payload\":{\"ms\":4000}}";
    char ids[4][YT_JOB_ID_MAX];
    if (g.c.exec.pid > 0)
        yt_worker_stop(g.c.env, &g.c.exec, SIGTERM, 15000);
    if (yt_worker_start(&g.c.exec, g.c.env, "execute", NULL, short_drain, 0) != 0)
        fail_msg("expected a ready execute worker, but it did not start (log above)");
    for (int i = 0; i < 4; i++) {
        int st = yt_job_submit(g.c.port, job, ids[i]);
        if (st != 202)
            fail_msg("%s: expected 202, got %d", job, st);
    }
    char *arr = yt_sql_id_array(ids, 4);
    assert_non_null(arr);
    long long running = yt_wait_sql(g.c.env, 4, 10000,
                                    "SELECT count(*) FROM jobs WHERE id = ANY(%s)"
                                    " AND status = 'running'", arr);
    if (running != 4) {
        free(arr);
        fail_msg("expected the 4 sleep jobs running within 10 s, got %lld", running);
    }
    yt_nap_ms(300);
    long long t0 = yt_now_ms();
    int ws = yt_worker_stop(g.c.env, &g.c.exec, SIGTERM, 5000);
    long long took = yt_now_ms() - t0;
    long long rows = yt_sql_int(g.c.env, "SELECT count(*) FROM job_attempts WHERE job_id = ANY(%s)",
                                arr);
    if (ws < 0 || !WIFEXITED(ws) || WEXITSTATUS(ws) != 0 || took < 900 || took > 3000) {
        free(arr);
        yt_worker_log_tail(g.c.env, &g.c.exec);
        if (ws < 0)
            yt_worker_stop(g.c.env, &g.c.exec, SIGKILL, 5000);
        fail_msg("4 s jobs, drain timeout 1 s: expected the worker to exit 0 after 1 to 3 s, got "
                 "%s after %lld ms", ws < 0 ? "still running" : yt_wait_status_text(ws), took);
    }
    if (rows != 0) {
        free(arr);
        fail_msg("jobs stopped by the drain timeout: expected no attempt recorded (handed back), "
                 "got %lld rows", rows);
    }
    if (yt_worker_start(&g.c.exec, g.c.env, "execute", NULL, exec_env, 0) != 0) {
        free(arr);
        fail_msg("expected a second execute worker to start (log above)");
    }
    long long done = yt_wait_sql(g.c.env, 4, 20000,
                                 "SELECT count(*) FROM jobs WHERE id = ANY(%s)"
                                 " AND status = 'succeeded'", arr);
    yt_nap_ms(300);
    char attempts[512];
    yt_sql_text(g.c.env, attempts, sizeof attempts,
                "SELECT coalesce(string_agg(outcome, ','), '') FROM job_attempts"
                " WHERE job_id = ANY(%s)", arr);
    free(arr);
    if (done != 4 || strcmp(attempts, "succeeded,succeeded,succeeded,succeeded") != 0)
        fail_msg("handed-back jobs: expected all 4 succeeded with one succeeded attempt each, "
                 "got %lld succeeded and attempts `%s`", done, attempts);
}

static void test_hand_back_does_not_use_up_attempts(void **state)
{
    static const char job[] =
        "{\"type\":\"sleep\",\"payload\":{\"ms\":4000},\"timeout_s\":2,\"max_attempts\":2}";
    char id[YT_JOB_ID_MAX], got[64], attempts[256];
    if (g.c.exec.pid > 0)
        yt_worker_stop(g.c.env, &g.c.exec, SIGTERM, 15000);
    if (yt_worker_start(&g.c.exec, g.c.env, "execute", NULL, short_drain, 0) != 0)
        fail_msg("expected a ready execute worker, but it did not start (log above)");
    int st = yt_job_submit(g.c.port, job, id);
    if (st != 202)
        fail_msg("%s: expected 202, got %d", job, st);
    if (yt_job_wait_status(g.c.port, id, "running", 10000, got, sizeof got) != 0)
        fail_msg("job %s: expected running within 10 s, got %s", id, got);
    yt_nap_ms(300);
    int ws = yt_worker_stop(g.c.env, &g.c.exec, SIGTERM, 5000);
    if (ws < 0 || !WIFEXITED(ws) || WEXITSTATUS(ws) != 0)
        fail_msg("expected the worker to exit 0 after its 1 s drain, got %s",
                 ws < 0 ? "still running after 5 s" : yt_wait_status_text(ws));
    if (yt_sql_int(g.c.env, "SELECT count(*) FROM job_attempts WHERE job_id = '%s'", id) != 0)
        fail_msg("job %s handed back by the drain: expected no attempt recorded", id);
    if (yt_worker_start(&g.c.exec, g.c.env, "execute", NULL, exec_env, 0) != 0)
        fail_msg("expected a second execute worker to start (log above)");
    if (yt_job_wait_status(g.c.port, id, "dead", 20000, got, sizeof got) != 0)
        fail_msg("job %s (times out on every run, max_attempts 2): expected dead within 20 s, "
                 "got %s", id, got);
    yt_sql_text(g.c.env, attempts, sizeof attempts,
                "SELECT coalesce(string_agg(attempt || ':' || outcome, ',' ORDER BY attempt), '')"
                " FROM job_attempts WHERE job_id = '%s'", id);
    long long runs = yt_sql_int(g.c.env, "SELECT count(*) FROM job_attempts WHERE job_id = '%s'",
                                id);
    if (runs != 2)
        fail_msg("job %s (max_attempts 2) handed back once by a drain: expected 2 recorded runs "
                 "before dead (the hand-back is not an attempt), got %lld: `%s`", id, runs,
                 attempts);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sigterm_drains_without_losing_or_repeating_jobs),
        cmocka_unit_test(test_drain_timeout_hands_running_jobs_back),
        cmocka_unit_test(test_hand_back_does_not_use_up_attempts),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
