/*
 * test_wk_e2e_run.c - the workers end to end, the happy paths: the real
 * yard-gateway and yard-worker processes against real nats-server and
 * PostgreSQL.
 *
 * One environment, one gateway and one audit worker serve the whole file;
 * the tests run in order and start or stop execute and schedule workers:
 *   1. 10,000 noop jobs posted in 10 batches of 1000, one execute worker:
 *      every job succeeded, each with exactly one attempt row (attempt 1,
 *      succeeded); prints the end-to-end jobs/s.
 *   2. No execute worker: 200 jobs posted one by one are visible as
 *      `queued` through GET /v1/jobs/{id}; p99 of the time from the 202 to
 *      the first such answer is at most 100 ms (prints p50 and p99).
 *   3. A job with run_at 2 s ahead and a schedule worker: `scheduled`
 *      first, then `succeeded`, its attempt starting no earlier than run_at.
 *   4. A scheduled job cancelled before its run_at (200 cancelled) never
 *      runs: no attempt, still cancelled, nothing left in the consumers.
 *   5. echo: the result is the payload.
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

#define NOOP_BATCHES 10
#define NOOP_BATCH_SIZE 1000
#define NOOP_TOTAL (NOOP_BATCHES * NOOP_BATCH_SIZE)
#define VISIBLE_JOBS 200
#define VISIBLE_P99_MAX_MS 100

static struct {
    yt_cluster_t c;
} g;

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void start_worker(yt_worker_t *w, const char *role)
{
    if (w->pid > 0 && !yt_worker_exited(g.c.env, w))
        return;
    if (yt_worker_start(w, g.c.env, role, NULL, NULL, 0) != 0)
        fail_msg("expected a ready %s worker, but it did not start (log above)", role);
}

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

/* ---- setup ------------------------------------------------------------------ */

static int setup(void **state)
{
    yard_log_init("test_wk_e2e_run", YARD_LOG_ERROR);
    return yt_cluster_start(&g.c, NULL);
}

static int teardown(void **state)
{
    yt_cluster_stop(&g.c);
    return 0;
}

/* ---- tests ------------------------------------------------------------------ */

static void test_10000_noop_jobs_succeed_exactly_once(void **state)
{
    static const char job[] = "{\"type\":\"noop\"}";
    char(*ids)[YT_JOB_ID_MAX] = calloc(NOOP_TOTAL, sizeof *ids);
    char *body = yt_batch_body(job, NOOP_BATCH_SIZE);
    assert_non_null(ids);
    assert_non_null(body);

    start_worker(&g.c.exec, "execute");
    long long t0 = yt_now_ms();
    for (int b = 0; b < NOOP_BATCHES; b++) {
        size_t accepted = 0;
        int st = yt_job_submit_batch(g.c.port, body, ids + b * NOOP_BATCH_SIZE, NOOP_BATCH_SIZE,
                                     &accepted);
        if (st != 202 || accepted != NOOP_BATCH_SIZE)
            fail_msg("batch %d: expected 202 with %d jobs accepted, got HTTP %d with %zu", b,
                     NOOP_BATCH_SIZE, st, accepted);
    }
    long long posted = yt_now_ms();
    char *arr = yt_sql_id_array(ids, NOOP_TOTAL);
    assert_non_null(arr);
    long long done = yt_wait_sql(g.c.env, NOOP_TOTAL, 60000,
                                 "SELECT count(*) FROM jobs WHERE id = ANY(%s)"
                                 " AND status = 'succeeded'", arr);
    long long t1 = yt_now_ms();
    if (done != NOOP_TOTAL) {
        char states[512];
        yt_sql_text(g.c.env, states, sizeof states,
                    "SELECT string_agg(status || ': ' || n, ', ') FROM (SELECT status, count(*)"
                    " AS n FROM jobs WHERE id = ANY(%s) GROUP BY status) s", arr);
        yt_worker_log_tail(g.c.env, &g.c.exec);
        fail_msg("expected %d noop jobs succeeded within 60 s, got %lld (by status: %s)",
                 NOOP_TOTAL, done, states);
    }
    printf("test_wk_e2e_run: %d noop jobs end to end (posted in %.2f s, all succeeded after "
           "%.2f s): %.0f jobs/s\n",
           NOOP_TOTAL, (posted - t0) / 1000.0, (t1 - t0) / 1000.0,
           NOOP_TOTAL * 1000.0 / (double)(t1 - t0 > 0 ? t1 - t0 : 1));

    long long rows = yt_sql_int(g.c.env, "SELECT count(*) FROM job_attempts WHERE job_id = ANY(%s)",
                                arr);
    long long good = yt_sql_int(g.c.env,
                                "SELECT count(*) FROM job_attempts WHERE job_id = ANY(%s)"
                                " AND attempt = 1 AND outcome = 'succeeded'", arr);
    long long jobs_with_one = yt_sql_int(g.c.env,
                                         "SELECT count(*) FROM (SELECT job_id FROM job_attempts"
                                         " WHERE job_id = ANY(%s) GROUP BY job_id"
                                         " HAVING count(*) = 1) s", arr);
    long long attempts_col = yt_sql_int(g.c.env,
                                        "SELECT count(*) FROM jobs WHERE id = ANY(%s)"
                                        " AND attempts = 1", arr);
    free(arr);
    free(body);
    free(ids);
    if (rows != NOOP_TOTAL || good != NOOP_TOTAL || jobs_with_one != NOOP_TOTAL)
        fail_msg("expected %d job_attempts rows, all attempt 1 succeeded, one per job; got %lld "
                 "rows, %lld of them attempt 1 succeeded, %lld jobs with exactly one row",
                 NOOP_TOTAL, rows, good, jobs_with_one);
    if (attempts_col != NOOP_TOTAL)
        fail_msg("expected jobs.attempts = 1 for all %d jobs, got %lld", NOOP_TOTAL,
                 attempts_col);
}

static void test_queued_is_visible_without_execute_workers(void **state)
{
    long long lat[VISIBLE_JOBS];
    char id[YT_JOB_ID_MAX], status[32];
    if (g.c.exec.pid > 0) {
        int ws = yt_worker_stop(g.c.env, &g.c.exec, SIGTERM, 40000);
        if (ws < 0 || !WIFEXITED(ws) || WEXITSTATUS(ws) != 0)
            fail_msg("expected the execute worker to exit 0 on SIGTERM, got %s",
                     ws < 0 ? "still running after 40 s" : yt_wait_status_text(ws));
    }
    for (int i = 0; i < VISIBLE_JOBS; i++) {
        int st = yt_job_submit(g.c.port, "{\"type\":\"noop\"}", id);
        if (st != 202)
            fail_msg("job %d: expected 202, got %d", i, st);
        long long t202 = yt_now_ms(), deadline = t202 + 5000;
        for (;;) {
            st = yt_job_status(g.c.port, id, status, sizeof status);
            if (st == 200 && strcmp(status, "queued") == 0)
                break;
            if (st == 200)
                fail_msg("job %s with no execute worker: expected status queued, got %s", id,
                         status);
            if (st != 404)
                fail_msg("job %s: expected GET to answer 404 or 200, got %d", id, st);
            if (yt_now_ms() >= deadline)
                fail_msg("job %s: expected GET /v1/jobs/{id} to answer 200 queued within 5 s "
                         "of its 202, still 404", id);
            yt_nap_ms(1);
        }
        lat[i] = yt_now_ms() - t202;
    }
    qsort(lat, VISIBLE_JOBS, sizeof lat[0], cmp_ll);
    long long p50 = lat[VISIBLE_JOBS / 2 - 1], p99 = lat[(VISIBLE_JOBS * 99 + 99) / 100 - 1];
    printf("test_wk_e2e_run: queued visible after the 202 (%d jobs): p50 %lld ms, p99 %lld ms, "
           "max %lld ms\n", VISIBLE_JOBS, p50, p99, lat[VISIBLE_JOBS - 1]);
    if (p99 > VISIBLE_P99_MAX_MS)
        fail_msg("expected p99 from 202 to a 200 `queued` of at most %d ms, got %lld ms "
                 "(p50 %lld ms)", VISIBLE_P99_MAX_MS, p99, p50);
}

/* Formats wall-clock ms as RFC 3339 with milliseconds (UTC). */
static void rfc3339(char out[40], int64_t ms)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(out, 40, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 40 - n, ".%03dZ", (int)(ms % 1000));
}

/* Starts the execute and schedule workers and submits a 10 ms sleep job to
 * run run_in_ms from now; waits until it shows `scheduled` (within
 * wait_ms). Sets id, and *run_at to its run_at. */
static void submit_scheduled(char id[YT_JOB_ID_MAX], int64_t *run_at, int run_in_ms, int wait_ms)
{
    char got[64], at[40], body[160];
    start_worker(&g.c.exec, "execute");
    start_worker(&g.c.sched, "schedule");
    *run_at = wall_ms() + run_in_ms;
    rfc3339(at, *run_at);
    snprintf(body, sizeof body, "{\"type\":\"sleep\",\"payload\":{\"ms\":10},\"run_at\":\"%s\"}",
             at);
    int st = yt_job_submit(g.c.port, body, id);
    if (st != 202)
        fail_msg("%s: expected 202, got %d", body, st);
    if (yt_job_wait_status(g.c.port, id, "scheduled", wait_ms, got, sizeof got) != 0)
        fail_msg("job %s (run_at %s): expected status scheduled within %d ms, got %s", id, at,
                 wait_ms, got);
}

static void test_run_at_is_scheduled_then_runs_no_earlier(void **state)
{
    char id[YT_JOB_ID_MAX], got[64];
    int64_t run_at;
    submit_scheduled(id, &run_at, 2000, 1500);
    if (wall_ms() >= run_at)
        fail_msg("job %s: saw `scheduled` only after run_at; the test cannot tell", id);
    if (yt_job_wait_status(g.c.port, id, "succeeded", 15000, got, sizeof got) != 0)
        fail_msg("job %s (run_at %lld): expected succeeded within 15 s, got %s", id,
                 (long long)run_at, got);
    int64_t seen = wall_ms();
    if (seen < run_at)
        fail_msg("job %s: succeeded at %lld, %lld ms before its run_at", id, (long long)seen,
                 (long long)(run_at - seen));
    long long stored = yt_sql_int(g.c.env,
                                  "SELECT round(extract(epoch FROM run_at) * 1000)::bigint"
                                  " FROM jobs WHERE id = '%s'", id);
    if (stored < run_at - 1 || stored > run_at + 1)
        fail_msg("job %s: expected jobs.run_at = %lld ms, got %lld", id, (long long)run_at,
                 stored);
    PGresult *r = yt_sql_query(g.c.env,
                               "SELECT attempt, outcome, round(extract(epoch FROM started_at)"
                               " * 1000)::bigint FROM job_attempts WHERE job_id = '%s'"
                               " ORDER BY attempt", id);
    assert_non_null(r);
    if (PQntuples(r) != 1 || strcmp(PQgetvalue(r, 0, 1), "succeeded") != 0)
        fail_msg("job %s: expected one attempt, succeeded; got %d rows, first %s", id,
                 PQntuples(r), PQntuples(r) ? PQgetvalue(r, 0, 1) : "-");
    long long started = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
    PQclear(r);
    if (started < run_at)
        fail_msg("job %s: expected its attempt to start at or after run_at %lld, it started "
                 "%lld ms early", id, (long long)run_at, (long long)run_at - started);
}

static void test_scheduled_job_cancelled_before_run_at_never_runs(void **state)
{
    char id[YT_JOB_ID_MAX], status[32];
    int64_t run_at;
    submit_scheduled(id, &run_at, 1500, 1000);
    int st = yt_job_cancel(g.c.port, id, status, sizeof status);
    if (st != 200 || strcmp(status, "cancelled") != 0)
        fail_msg("DELETE of scheduled job %s: expected 200 with status cancelled, got %d with "
                 "`%s`", id, st, status);
    while (wall_ms() < run_at + 2500)
        yt_nap_ms(50);
    uint64_t p1 = 0, a1 = 0, p2 = 0, a2 = 0;
    long long attempts = yt_sql_int(g.c.env, "SELECT count(*) FROM job_attempts WHERE job_id = '%s'",
                                    id);
    yt_job_status(g.c.port, id, status, sizeof status);
    if (attempts != 0 || strcmp(status, "cancelled") != 0)
        fail_msg("scheduled job %s cancelled before run_at: expected no attempt and status "
                 "cancelled 2.5 s after run_at, got %lld attempts and status `%s`", id, attempts,
                 status);
    if (yard_js_consumer_depth(&p1, &a1, g.c.js, "JOBS", "schedule") != 0 ||
        yard_js_consumer_depth(&p2, &a2, g.c.js, "JOBS", "execute_default") != 0 ||
        p1 + a1 + p2 + a2 != 0)
        fail_msg("scheduled job %s cancelled: expected consumers schedule and execute_default "
                 "empty 2.5 s after run_at, got schedule %llu/%llu, execute_default %llu/%llu "
                 "(pending/ack pending)", id, (unsigned long long)p1, (unsigned long long)a1,
                 (unsigned long long)p2, (unsigned long long)a2);
}

static void test_echo_result_is_the_payload(void **state)
{
    static const char payload[] = "{\"a\":[1,2.5,{\"b\":\"c\"}],\"s\":\"caf\u00e9\",\"n\":null}";
    char id[YT_JOB_ID_MAX], got[64], body[256], result[512];
    start_worker(&g.c.exec, "execute");
    snprintf(body, sizeof body, "{\"type\":\"echo\",\"payload\":%s}", payload);
    int st = yt_job_submit(g.c.port, body, id);
    if (st != 202)
        fail_msg("%s: expected 202, got %d", body, st);
    if (yt_job_wait_status(g.c.port, id, "succeeded", 10000, got, sizeof got) != 0)
        fail_msg("echo job %s: expected succeeded within 10 s, got %s", id, got);
    long long same = yt_sql_int(g.c.env,
                                "SELECT (result = '%s'::jsonb)::int FROM jobs WHERE id = '%s'",
                                payload, id);
    if (same != 1) {
        yt_sql_text(g.c.env, result, sizeof result, "SELECT result::text FROM jobs WHERE id = '%s'",
                    id);
        fail_msg("echo job %s: expected result %s, got %s", id, payload, result);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_10000_noop_jobs_succeed_exactly_once),
        cmocka_unit_test(test_queued_is_visible_without_execute_workers),
        cmocka_unit_test(test_run_at_is_scheduled_then_runs_no_earlier),
        cmocka_unit_test(test_scheduled_job_cancelled_before_run_at_never_runs),
        cmocka_unit_test(test_echo_result_is_the_payload),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
