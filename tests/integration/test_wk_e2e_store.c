/*
 * test_wk_e2e_store.c - what the result store writes per job (issue 12's
 * hot path, bus/jobs.h): the claim only reads, a short job's row is written
 * once, with its outcome, and a job that runs longer is marked running a
 * few tens of milliseconds after it starts. Real yard-gateway and
 * yard-worker processes, real nats-server and PostgreSQL.
 *
 *   1. 200 noop jobs with the audit role stopped (no ingest: the execute
 *      worker is the only writer of jobs): all succeed, each has one attempt
 *      row and a complete row (started_at, finished_at, js_seq, payload),
 *      and PostgreSQL counts 200 row inserts into jobs and no update: one
 *      row write per job (the claim wrote each row `running` first, then the
 *      finish updated it: 400 writes); their started and succeeded events
 *      travel in groups (events.jobs.group: a few messages, not 400 single
 *      events.jobs.started/succeeded ones), and the audit role, started
 *      again, records each as its own row;
 *   2. a 3 s sleep job shows `running` (GET /v1/jobs/{id}) within 1.5 s of
 *      its submission, then succeeds: the deferred start write.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "js.h"
#include "log.h"
#include "yt_http.h"
#include "yt_workers.h"

#define SHORT_JOBS 200
#define STATS_WAIT_MS 25000 /* a backend reports its counts within ~10 s of going idle */

static struct {
    yt_cluster_t c;
} g;

static void ensure_exec_worker(void)
{
    if (g.c.exec.pid > 0 && !yt_worker_exited(g.c.env, &g.c.exec))
        return;
    if (yt_worker_start(&g.c.exec, g.c.env, "execute", NULL, NULL, 0) != 0)
        fail_msg("expected a ready execute worker, but it did not start (log above)");
}

static void test_short_jobs_cost_one_row_write(void **state)
{
    char(*ids)[YT_JOB_ID_MAX] = calloc(SHORT_JOBS, sizeof *ids);
    char *body = yt_batch_body("{\"type\":\"noop\",\"payload\":{\"pad\":\"xxxxxxxx\"}}", SHORT_JOBS);
    assert_non_null(ids);
    assert_non_null(body);
    /* Without the audit role nothing ingests queued rows. */
    yt_cluster_stop_worker(&g.c, &g.c.audit);
    long long ins0 = yt_sql_int(g.c.env, "SELECT n_tup_ins FROM pg_stat_user_tables "
                                         "WHERE relname = 'jobs'");
    long long upd0 = yt_sql_int(g.c.env, "SELECT n_tup_upd FROM pg_stat_user_tables "
                                         "WHERE relname = 'jobs'");
    ensure_exec_worker();
    size_t n = 0;
    int st = yt_job_submit_batch(g.c.port, body, ids, SHORT_JOBS, &n);
    free(body);
    if (st != 202 || n != SHORT_JOBS)
        fail_msg("expected %d jobs accepted by the batch route, got HTTP %d and %zu", SHORT_JOBS,
                 st, n);
    char *arr = yt_sql_id_array(ids, SHORT_JOBS);
    assert_non_null(arr);
    long long done = yt_wait_sql(g.c.env, SHORT_JOBS, 30000,
                                 "SELECT count(*) FROM jobs WHERE id = ANY(%s) AND status = "
                                 "'succeeded' AND attempts = 1 AND started_at IS NOT NULL AND "
                                 "finished_at IS NOT NULL AND js_seq IS NOT NULL AND payload = "
                                 "'{\"pad\":\"xxxxxxxx\"}'",
                                 arr);
    if (done != SHORT_JOBS)
        fail_msg("expected %d complete succeeded rows within 30 s, got %lld", SHORT_JOBS, done);
    long long attempts = yt_sql_int(g.c.env,
                                    "SELECT count(*) FROM job_attempts WHERE job_id = ANY(%s) "
                                    "AND attempt = 1 AND outcome = 'succeeded'",
                                    arr);
    free(arr);
    if (attempts != SHORT_JOBS)
        fail_msg("expected one succeeded attempt row per job (%d), got %lld", SHORT_JOBS,
                 attempts);
    /* The worker's backends report their counts once idle. */
    long long ins = yt_wait_sql(g.c.env, ins0 + SHORT_JOBS, STATS_WAIT_MS,
                                "SELECT n_tup_ins FROM pg_stat_user_tables WHERE relname = "
                                "'jobs'");
    long long upd = yt_sql_int(g.c.env, "SELECT n_tup_upd FROM pg_stat_user_tables "
                                        "WHERE relname = 'jobs'");
    if (ins - ins0 != SHORT_JOBS || upd - upd0 != 0)
        fail_msg("expected %d row inserts and no update of jobs (one write per short job), "
                 "got %lld inserts and %lld updates",
                 SHORT_JOBS, ins - ins0, upd - upd0);
    uint64_t groups = 0, single = 0, one = 0;
    if (yard_js_subject_count(&groups, g.c.js, "EVENTS", "events.jobs.group") != 0)
        fail_msg("expected to count events.jobs.group messages");
    if (yard_js_subject_count(&one, g.c.js, "EVENTS", "events.jobs.started") != 0)
        fail_msg("expected to count events.jobs.started messages");
    single += one;
    if (yard_js_subject_count(&one, g.c.js, "EVENTS", "events.jobs.succeeded") != 0)
        fail_msg("expected to count events.jobs.succeeded messages");
    single += one;
    if (groups == 0 || groups > SHORT_JOBS / 4 || single != 0)
        fail_msg("expected the %d jobs' started and succeeded events in a few group messages, "
                 "got %llu groups and %llu single events",
                 SHORT_JOBS, (unsigned long long)groups, (unsigned long long)single);
    if (yt_worker_start(&g.c.audit, g.c.env, "audit", NULL, NULL, 0) != 0)
        fail_msg("expected the audit worker to start again");
    arr = yt_sql_id_array(ids, SHORT_JOBS);
    assert_non_null(arr);
    long long rows = yt_wait_sql(g.c.env, 3 * SHORT_JOBS, 30000,
                                 "SELECT count(*) FROM audit_log WHERE job_id = ANY(%s) AND "
                                 "event IN ('job.accepted', 'job.started', 'job.succeeded')",
                                 arr);
    free(arr);
    free(ids);
    if (rows != 3 * SHORT_JOBS)
        fail_msg("expected %d audit rows (accepted, started, succeeded per job), got %lld",
                 3 * SHORT_JOBS, rows);
}

static void test_long_job_is_marked_running(void **state)
{
    char id[YT_JOB_ID_MAX], got[32] = "";
    ensure_exec_worker();
    int st = yt_job_submit(g.c.port, "{\"type\":\"sleep\",\"payload\":{\"ms\":3000}}", id);
    if (st != 202)
        fail_msg("expected 202 for a sleep job, got %d", st);
    if (yt_job_wait_status(g.c.port, id, "running", 1500, got, sizeof got) != 0)
        fail_msg("sleep job %s: expected `running` within 1.5 s of its submission, got `%s`", id,
                 got);
    if (yt_job_wait_status(g.c.port, id, "succeeded", 15000, got, sizeof got) != 0)
        fail_msg("sleep job %s: expected `succeeded` within 15 s, got `%s`", id, got);
    long long started = yt_sql_int(g.c.env,
                                   "SELECT count(*) FROM jobs WHERE id = '%s' AND started_at "
                                   "IS NOT NULL AND started_at < finished_at - interval '2 s'",
                                   id);
    if (started != 1)
        fail_msg("sleep job %s: expected started_at about 3 s before finished_at", id);
}

static int setup(void **state)
{
    yard_log_init("test_wk_e2e_store", YARD_LOG_ERROR);
    return yt_cluster_start(&g.c, NULL);
}

static int teardown(void **state)
{
    yt_cluster_stop(&g.c);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_short_jobs_cost_one_row_write),
        cmocka_unit_test(test_long_job_is_marked_running),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
