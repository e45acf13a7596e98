/*
 * test_wk_e2e_priority.c - priorities reorder work, end to end.
 *
 * One execute worker with 2 handler threads and fetches of 4 (so at most
 * 2 + 2 x 4 = 10 jobs are fetched ahead of the handlers):
 *   1. With a backlog of 600 `low` sleep jobs, a `high` job posted later
 *      starts before them: at most one fetch round of low jobs starts
 *      between its post and its start, while hundreds of low jobs still
 *      wait.
 *   2. No starvation: while 200 `high` jobs are worked off, low jobs of the
 *      backlog keep starting.
 *   3. GET /v1/queues counts every tier: pending work of all three.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "yt_http.h"
#include "yt_workers.h"

#define LOW_JOBS 600
#define HIGH_JOBS 200
#define IN_FLIGHT_MAX 10 /* 2 handlers + 2 fetches of 4 */
#define SLEEP_JOB(prio) "{\"type\":\"sleep\",\"priority\":\"" prio "\",\"payload\":{\"ms\":15}}"

static char *const exec_env[] = {"YARD_WORKER_CONCURRENCY=2", "YARD_WORKER_BATCH=4", NULL};

static struct {
    yt_cluster_t c;
} g;

static int setup(void **state)
{
    yard_log_init("test_wk_e2e_priority", YARD_LOG_ERROR);
    return yt_cluster_start(&g.c, NULL);
}

static int teardown(void **state)
{
    yt_cluster_stop(&g.c);
    return 0;
}

static void submit_n(const char *job, int n)
{
    char *body = yt_batch_body(job, n);
    size_t accepted = 0;
    assert_non_null(body);
    char(*ids)[YT_JOB_ID_MAX] = calloc((size_t)n, sizeof *ids);
    assert_non_null(ids);
    int st = yt_job_submit_batch(g.c.port, body, ids, (size_t)n, &accepted);
    free(body);
    free(ids);
    if (st != 202 || accepted != (size_t)n)
        fail_msg("expected 202 with %d accepted, got HTTP %d with %zu", n, st, accepted);
}

static void test_queues_count_every_tier(void **state)
{
    /* No execute worker yet: everything stays pending. */
    submit_n(SLEEP_JOB("low"), LOW_JOBS);
    submit_n(SLEEP_JOB("normal"), 3);
    submit_n(SLEEP_JOB("high"), 2);
    yt_http_resp_t r = {0};
    char want[64];
    snprintf(want, sizeof want, "\"pending\":%d", LOW_JOBS + 5);
    int ok = 0;
    for (int i = 0; i < 50 && !ok; i++) {
        yt_http_resp_free(&r);
        int st = yt_http_request(&r, g.c.port, "GET", "/v1/queues", NULL, NULL, 0);
        ok = st == 200 && strstr(r.body, want) != NULL;
        if (!ok)
            yt_nap_ms(200);
    }
    if (!ok)
        fail_msg("GET /v1/queues: expected %s (all tiers), got %s", want,
                 yt_http_body_excerpt(&r));
    yt_http_resp_free(&r);
}

static void test_high_starts_before_low_backlog(void **state)
{
    if (yt_worker_start(&g.c.exec, g.c.env, "execute", NULL, exec_env, 0) != 0)
        fail_msg("expected a ready execute worker");
    long long started = yt_wait_sql(g.c.env, 20, 20000,
                                    "SELECT least(count(*), 20) FROM jobs WHERE priority = 0"
                                    " AND status = 'succeeded'");
    if (started != 20)
        fail_msg("expected low jobs to start running, got %lld done", started);
    char id[YT_JOB_ID_MAX], got[64];
    long long posted_at = yt_sql_int(g.c.env, "SELECT (extract(epoch FROM clock_timestamp())"
                                              " * 1000)::bigint");
    if (yt_job_submit(g.c.port, SLEEP_JOB("high"), id) != 202)
        fail_msg("expected the high job accepted");
    if (yt_job_wait_status(g.c.port, id, "succeeded", 20000, got, sizeof got) != 0)
        fail_msg("high job %s: expected succeeded, got %s", id, got);
    long long overtaken = yt_sql_int(g.c.env,
                                     "SELECT count(*) FROM jobs WHERE priority = 0 AND started_at"
                                     " > to_timestamp(%lld / 1000.0) AND started_at <"
                                     " (SELECT started_at FROM jobs WHERE id = '%s')",
                                     posted_at, id);
    long long waiting = yt_sql_int(g.c.env,
                                   "SELECT count(*) FROM jobs WHERE priority = 0 AND (started_at"
                                   " IS NULL OR started_at > (SELECT started_at FROM jobs WHERE"
                                   " id = '%s'))", id);
    printf("test_wk_e2e_priority: the high job started after %lld low jobs; %lld low jobs were "
           "still waiting\n", overtaken, waiting);
    if (waiting < LOW_JOBS / 4)
        fail_msg("expected most of the low backlog still waiting when the high job started, "
                 "got %lld waiting: the test cannot tell", waiting);
    if (overtaken > IN_FLIGHT_MAX + 4)
        fail_msg("expected the high job to start within one fetch round (at most %d low jobs "
                 "before it), got %lld", IN_FLIGHT_MAX + 4, overtaken);
}

static void test_low_progresses_under_high_backlog(void **state)
{
    long long posted_at = yt_sql_int(g.c.env, "SELECT (extract(epoch FROM clock_timestamp())"
                                              " * 1000)::bigint");
    submit_n(SLEEP_JOB("high"), HIGH_JOBS);
    long long done = yt_wait_sql(g.c.env, HIGH_JOBS + 3, 60000,
                                 "SELECT count(*) FROM jobs WHERE priority = 2"
                                 " AND status = 'succeeded'");
    if (done != HIGH_JOBS + 3)
        fail_msg("expected %d high jobs succeeded, got %lld", HIGH_JOBS + 3, done);
    long long low_during = yt_sql_int(g.c.env,
                                      "SELECT count(*) FROM jobs WHERE priority = 0 AND started_at"
                                      " BETWEEN to_timestamp(%lld / 1000.0)"
                                      " AND (SELECT max(started_at) FROM jobs WHERE priority = 2)",
                                      posted_at);
    long long low_left = yt_sql_int(g.c.env, "SELECT count(*) FROM jobs WHERE priority = 0 AND"
                                             " status <> 'succeeded'");
    printf("test_wk_e2e_priority: %lld low jobs started while %d high jobs were worked off "
           "(%lld low left)\n", low_during, HIGH_JOBS, low_left);
    if (low_during < 5)
        fail_msg("expected low jobs to keep starting under a high backlog (no starvation), got "
                 "%lld", low_during);
    if (low_left == 0)
        fail_msg("the low backlog ran out before the high one: the test cannot tell");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_queues_count_every_tier),
        cmocka_unit_test(test_high_starts_before_low_backlog),
        cmocka_unit_test(test_low_progresses_under_high_backlog),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
