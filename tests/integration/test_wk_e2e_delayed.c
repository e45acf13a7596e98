/*
 * test_wk_e2e_delayed.c - delayed jobs of any length, end to end: the real
 * gateway and workers against real nats-server and PostgreSQL, with the
 * consumers' MaxDeliver scaled down to 3 (so a design that redelivers a
 * waiting job drops it quickly).
 *   1. A job 30 hours ahead is held in PostgreSQL (its jobs.schedule
 *      message acked, nothing pending or redelivered), is not released
 *      early, and runs once the schedule role's injected clock
 *      (schedule_clock_offset_s) reaches its run_at.
 *   2. 1,000 jobs due the same moment, held (locked ahead of their run_at)
 *      by schedule replica A; replica B started; A killed with -9 as they
 *      fall due: every job runs exactly once (one attempt row), none
 *      before its run_at; prints the release lateness.
 *   3. 10,000 jobs due at the same second (YT_DELAYED_N overrides): all run
 *      once; prints release and start lateness p50/p99.
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

#include "js.h"
#include "log.h"
#include "yt_workers.h"

#define HOURS_30_S (30LL * 3600)
#define KILL_JOBS 1000
#define SAME_SECOND_JOBS 10000
#define BATCH 1000
#define LATENESS_P99_MAX_MS 5000 /* generous: a shared machine; the figures are printed */

static char *const common_env[] = {"YARD_JS_MAX_DELIVER=3", "YARD_JOB_MAX_ATTEMPTS=2", NULL};

static struct {
    yt_cluster_t c;
    yt_worker_t sched2;
} g;

static int setup(void **state)
{
    yard_log_init("test_wk_e2e_delayed", YARD_LOG_ERROR);
    if (yt_cluster_start(&g.c, common_env) != 0)
        return -1;
    if (yt_worker_start(&g.c.exec, g.c.env, "execute", NULL, common_env, 0) != 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    yt_cluster_stop_worker(&g.c, &g.sched2);
    yt_cluster_stop(&g.c);
    return 0;
}

static void start_sched(yt_worker_t *w, long long offset_s)
{
    char offset[64];
    snprintf(offset, sizeof offset, "YARD_SCHEDULE_CLOCK_OFFSET_S=%lld", offset_s);
    char *const env[] = {common_env[0], common_env[1], offset, NULL};
    yt_cluster_stop_worker(&g.c, w); /* one left by a failed test */
    if (yt_worker_start(w, g.c.env, "schedule", NULL, env, 0) != 0)
        fail_msg("expected a ready schedule worker (offset %lld s); it did not start", offset_s);
}

/* Submits n noop jobs due at run_at (RFC 3339) in batches; ids gets them. */
static void submit_due(char (*ids)[YT_JOB_ID_MAX], int n, const char *run_at)
{
    char job[160];
    snprintf(job, sizeof job, "{\"type\":\"noop\",\"run_at\":\"%s\"}", run_at);
    for (int b = 0; b < n; b += BATCH) {
        int k = n - b < BATCH ? n - b : BATCH;
        char *body = yt_batch_body(job, k);
        size_t accepted = 0;
        assert_non_null(body);
        int st = yt_job_submit_batch(g.c.port, body, ids + b, (size_t)k, &accepted);
        free(body);
        if (st != 202 || accepted != (size_t)k)
            fail_msg("batch at %d: expected 202 with %d accepted, got HTTP %d with %zu", b, k, st,
                     accepted);
    }
}

/* Waits until all n jobs succeeded; then checks each has exactly one
 * attempt row, none started before run_at, and prints the lateness of the
 * release (released_at - run_at) and of the start (started_at - run_at). */
static void expect_all_ran_once(char (*ids)[YT_JOB_ID_MAX], int n, int timeout_ms,
                                const char *what)
{
    char *arr = yt_sql_id_array(ids, (size_t)n);
    assert_non_null(arr);
    long long done = yt_wait_sql(g.c.env, n, timeout_ms,
                                 "SELECT count(*) FROM jobs WHERE id = ANY(%s)"
                                 " AND status = 'succeeded'", arr);
    if (done != n) {
        char counts[256];
        yt_sql_status_counts(g.c.env, ids, (size_t)n, counts, sizeof counts);
        free(arr);
        fail_msg("%s: expected %d jobs succeeded within %d ms, got %lld (%s)", what, n,
                 timeout_ms, done, counts);
    }
    long long attempts = yt_sql_int(g.c.env, "SELECT count(*) FROM job_attempts WHERE job_id ="
                                             " ANY(%s)", arr);
    long long second = yt_sql_int(g.c.env, "SELECT count(*) FROM job_attempts WHERE job_id ="
                                           " ANY(%s) AND attempt > 1", arr);
    long long early = yt_sql_int(g.c.env,
                                 "SELECT count(*) FROM jobs j JOIN job_attempts a ON a.job_id = j.id"
                                 " WHERE j.id = ANY(%s) AND (a.started_at < j.run_at"
                                 " OR j.released_at < j.run_at)", arr);
    char fig[256];
    yt_sql_text(g.c.env, fig, sizeof fig,
                "SELECT format('release p50 %%s ms, p99 %%s ms, max %%s ms; start p50 %%s ms,"
                " p99 %%s ms', round(percentile_cont(0.5) WITHIN GROUP (ORDER BY r)),"
                " round(percentile_cont(0.99) WITHIN GROUP (ORDER BY r)), round(max(r)),"
                " round(percentile_cont(0.5) WITHIN GROUP (ORDER BY s)),"
                " round(percentile_cont(0.99) WITHIN GROUP (ORDER BY s))) FROM (SELECT"
                " extract(epoch FROM released_at - run_at) * 1000 AS r,"
                " extract(epoch FROM started_at - run_at) * 1000 AS s FROM jobs"
                " WHERE id = ANY(%s)) x", arr);
    long long p99 = yt_sql_int(g.c.env,
                               "SELECT round(percentile_cont(0.99) WITHIN GROUP (ORDER BY"
                               " extract(epoch FROM released_at - run_at) * 1000)) FROM jobs"
                               " WHERE id = ANY(%s)", arr);
    free(arr);
    printf("test_wk_e2e_delayed: %s: %d jobs: lateness %s\n", what, n, fig);
    if (attempts != n || second != 0)
        fail_msg("%s: expected exactly one attempt per job (%d rows), got %lld rows, %lld of "
                 "them a second attempt", what, n, attempts, second);
    if (early != 0)
        fail_msg("%s: expected no job released or started before its run_at, got %lld", what,
                 early);
    if (p99 < 0 || p99 > LATENESS_P99_MAX_MS)
        fail_msg("%s: expected release lateness p99 under %d ms, got %lld ms", what,
                 LATENESS_P99_MAX_MS, p99);
}

static void test_job_30_hours_ahead_runs(void **state)
{
    char id[1][YT_JOB_ID_MAX], at[40], got[64];
    start_sched(&g.c.sched, 0);
    yt_rfc3339_in(at, (int)(HOURS_30_S * 1000));
    submit_due(id, 1, at);
    if (yt_job_wait_status(g.c.port, id[0], "scheduled", 10000, got, sizeof got) != 0)
        fail_msg("job %s: expected scheduled, got %s", id[0], got);
    /* Taken off jobs.schedule: nothing pending, nothing waiting for an ack. */
    uint64_t pending = 1, ack_pending = 1;
    for (int i = 0; i < 100 && (pending || ack_pending); i++) {
        yt_nap_ms(100);
        assert_int_equal(yard_js_consumer_depth(&pending, &ack_pending, g.c.js, YARD_STREAM_JOBS,
                                                YARD_CONSUMER_SCHEDULE), 0);
    }
    if (pending || ack_pending)
        fail_msg("job %s: expected jobs.schedule empty once held, got %llu pending and %llu "
                 "waiting for an ack", id[0], (unsigned long long)pending,
                 (unsigned long long)ack_pending);
    /* Longer than MaxDeliver (3) short naks would take: still scheduled. */
    yt_nap_ms(3000);
    yt_job_status(g.c.port, id[0], got, sizeof got);
    if (strcmp(got, "scheduled") != 0)
        fail_msg("job %s (30 h ahead): expected still scheduled, got %s", id[0], got);
    /* The role's clock moved to 3 s before the job's run_at. */
    yt_cluster_stop_worker(&g.c, &g.c.sched);
    long long ahead_s = yt_sql_int(g.c.env, "SELECT floor(extract(epoch FROM run_at - now()))"
                                            " FROM jobs WHERE id = '%s'", id[0]);
    if (ahead_s < HOURS_30_S - 60)
        fail_msg("job %s: expected run_at 30 h ahead, got %lld s", id[0], ahead_s);
    long long t0 = yt_now_ms();
    start_sched(&g.c.sched, ahead_s - 3);
    if (yt_job_wait_status(g.c.port, id[0], "succeeded", 30000, got, sizeof got) != 0)
        fail_msg("job %s: expected succeeded once the clock reached its run_at, got %s", id[0],
                 got);
    long long waited = yt_now_ms() - t0;
    long long attempts = yt_sql_int(g.c.env, "SELECT count(*) FROM job_attempts WHERE job_id ="
                                             " '%s'", id[0]);
    if (attempts != 1)
        fail_msg("job %s: expected one attempt, got %lld", id[0], attempts);
    if (waited < 2000)
        fail_msg("job %s: ran %lld ms after the clock moved, before its run_at (3 s)", id[0],
                 waited);
    yt_cluster_stop_worker(&g.c, &g.c.sched);
}

/* How many of the n jobs no transaction holds locked now. */
static long long unlocked(const char *arr)
{
    return yt_sql_int(g.c.env, "SELECT count(*) FROM (SELECT 1 FROM jobs WHERE id = ANY(%s)"
                               " FOR UPDATE SKIP LOCKED) x", arr);
}

static void test_two_replicas_one_killed_run_each_job_once(void **state)
{
    char(*ids)[YT_JOB_ID_MAX] = calloc(KILL_JOBS, sizeof *ids);
    char at[40];
    assert_non_null(ids);
    /* Replica A alone first, so that A is the one holding the due jobs. */
    start_sched(&g.c.sched, 0);
    int ahead_ms = 8000;
    long long t0 = yt_now_ms();
    yt_rfc3339_in(at, ahead_ms);
    submit_due(ids, KILL_JOBS, at);
    char *arr = yt_sql_id_array(ids, KILL_JOBS);
    assert_non_null(arr);
    /* Every row written (and so seen by A's look-ahead) well before run_at. */
    long long rows = yt_wait_sql(g.c.env, KILL_JOBS, ahead_ms - 2000,
                                 "SELECT count(*) FROM jobs WHERE id = ANY(%s)"
                                 " AND status = 'scheduled'", arr);
    if (rows != KILL_JOBS || yt_now_ms() - t0 > ahead_ms - 1500) {
        free(arr);
        fail_msg("%lld of %d jobs scheduled %lld ms after posting, too close to their run_at: "
                 "the test cannot tell", rows, KILL_JOBS, yt_now_ms() - t0);
    }
    /* A locks the jobs ahead of their run_at (its look-ahead). */
    long long free_rows = KILL_JOBS;
    while (yt_now_ms() - t0 < ahead_ms - 100 && (free_rows = unlocked(arr)) > 0)
        yt_nap_ms(20);
    free(arr);
    printf("test_wk_e2e_delayed: replica A held %lld of %d jobs before their run_at\n",
           KILL_JOBS - free_rows, KILL_JOBS);
    if (free_rows == KILL_JOBS)
        fail_msg("expected replica A to hold the jobs before their run_at, it held none");
    start_sched(&g.sched2, 0);
    /* Kill A as the jobs fall due: mid-publish or before its commit. */
    long long wait = ahead_ms + 10 - (yt_now_ms() - t0);
    if (wait > 0)
        yt_nap_ms((int)wait);
    if (yt_worker_stop(g.c.env, &g.c.sched, SIGKILL, 5000) < 0)
        fail_msg("expected the schedule replica to die on SIGKILL");
    expect_all_ran_once(ids, KILL_JOBS, 60000, "two replicas, the holder killed -9");
    yt_cluster_stop_worker(&g.c, &g.sched2);
    free(ids);
}

static void test_10000_due_the_same_second(void **state)
{
    const char *env_n = getenv("YT_DELAYED_N");
    int n = env_n && atoi(env_n) > 0 ? atoi(env_n) : SAME_SECOND_JOBS;
    char(*ids)[YT_JOB_ID_MAX] = calloc((size_t)n, sizeof *ids);
    char at[40];
    assert_non_null(ids);
    start_sched(&g.c.sched, 0);
    start_sched(&g.sched2, 0);
    int ahead_ms = 25000;
    long long t0 = yt_now_ms();
    yt_rfc3339_in(at, ahead_ms);
    submit_due(ids, n, at);
    long long posted = yt_now_ms() - t0;
    if (posted > ahead_ms - 3000)
        fail_msg("posting %d jobs took %lld ms, past their run_at: the test cannot tell", n,
                 posted);
    expect_all_ran_once(ids, n, ahead_ms + 90000, "due the same second");
    free(ids);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_job_30_hours_ahead_runs),
        cmocka_unit_test(test_two_replicas_one_killed_run_each_job_once),
        cmocka_unit_test(test_10000_due_the_same_second),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
