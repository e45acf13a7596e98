/*
 * test_wk_e2e_failures.c - the workers end to end when jobs do not simply
 * succeed: cancellation, retries with backoff, and the dead-letter stream.
 * Real yard-gateway and yard-worker processes, real nats-server and
 * PostgreSQL.
 *
 * One environment, one gateway and one audit worker serve the whole file;
 * the execute worker (YARD_RETRY_BASE_MS=200) starts in the first test:
 *   1. cancel before start: a queued job cancelled (200 cancelled) with no
 *      execute worker never runs once one starts: no attempt row, status
 *      stays cancelled, the execute consumer holds nothing for it;
 *   2. cancel while running: a 20 s sleep job cancelled (202) becomes
 *      `cancelled` within 2 s with one attempt whose outcome is cancelled;
 *   3. a retryable failure with max_attempts 4: attempts 1..4 whose start
 *      times are spaced by the exponential backoff (gap after attempt n at
 *      least base*2^(n-1)/2 - 50 ms, each gap at least the previous minus
 *      50 ms), status dead, and its DLQ message with the headers of
 *      DESIGN.md;
 *   4. a non-retryable failure: dead after one attempt, in the DLQ;
 *   5. a type no handler knows is dead at its first attempt (no_handler);
 *      a payload the handler refuses (sleep {"ms":"x"}) is dead at once.
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

#define RETRY_BASE_MS 200
#define JITTER_SLACK_MS 50
#define SUBJ_DEFAULT "jobs.execute.default"
#define DLQ_DEFAULT "dlq.jobs.execute.default"

static struct {
    yt_cluster_t c;
} g;

static char *const exec_env[] = {"YARD_RETRY_BASE_MS=200", NULL};

static void ensure_exec_worker(void)
{
    if (g.c.exec.pid > 0 && !yt_worker_exited(g.c.env, &g.c.exec))
        return;
    if (yt_worker_start(&g.c.exec, g.c.env, "execute", NULL, exec_env, 0) != 0)
        fail_msg("expected a ready execute worker, but it did not start (log above)");
}

/* Pending plus ack-pending of execute_default, or -1. */
static long long exec_depth(uint64_t *pending, uint64_t *ack_pending)
{
    if (yard_js_consumer_depth(pending, ack_pending, g.c.js, "JOBS", "execute_default") != 0)
        return -1;
    return (long long)(*pending + *ack_pending);
}

static long long wait_exec_depth_zero(int timeout_ms, uint64_t *pending, uint64_t *ack_pending)
{
    long long deadline = yt_now_ms() + timeout_ms, d;
    while ((d = exec_depth(pending, ack_pending)) != 0 && yt_now_ms() < deadline)
        yt_nap_ms(50);
    return d;
}

/* Submits body and expects 202; copies the id. */
static void submit(const char *body, char id[YT_JOB_ID_MAX])
{
    int st = yt_job_submit(g.c.port, body, id);
    if (st != 202)
        fail_msg("%s: expected 202, got %d", body, st);
}

static void wait_status(const char *id, const char *want, int timeout_ms)
{
    char got[64];
    if (yt_job_wait_status(g.c.port, id, want, timeout_ms, got, sizeof got) != 0) {
        yt_worker_log_tail(g.c.env, &g.c.exec);
        fail_msg("job %s: expected status %s within %d ms, got %s", id, want, timeout_ms, got);
    }
}

/* Finds the DLQ message of job id (waiting up to 5 s) and checks its
 * headers. */
static void expect_dlq(const char *id, unsigned attempts, const char *error_part)
{
    yard_js_msg_t *m = NULL;
    char want_attempts[16];
    long long deadline = yt_now_ms() + 5000;
    int found;
    while ((found = yt_js_find(&m, g.c.js, "DLQ", DLQ_DEFAULT, "Yard-Job-Id", id)) == 0 &&
           yt_now_ms() < deadline)
        yt_nap_ms(100);
    if (found != 1)
        fail_msg("job %s: expected a message on %s with Yard-Job-Id %s, found %s", id,
                 DLQ_DEFAULT, id, found == 0 ? "none" : "an error (above)");
    snprintf(want_attempts, sizeof want_attempts, "%u", attempts);
    const char *orig = yt_js_header(m, "Yard-Original-Subject");
    const char *att = yt_js_header(m, "Yard-Attempts");
    const char *err = yt_js_header(m, "Yard-Last-Error");
    const char *died = yt_js_header(m, "Yard-Died-At");
    char why[512] = "";
    if (strcmp(orig, SUBJ_DEFAULT) != 0)
        snprintf(why, sizeof why, "Yard-Original-Subject `%s`, expected `%s`", orig, SUBJ_DEFAULT);
    else if (strcmp(att, want_attempts) != 0)
        snprintf(why, sizeof why, "Yard-Attempts `%s`, expected `%s`", att, want_attempts);
    else if (!strstr(err, error_part))
        snprintf(why, sizeof why, "Yard-Last-Error `%s`, expected it to contain `%s`", err,
                 error_part);
    else {
        struct tm tm = {0};
        const char *end = strptime(died, "%Y-%m-%dT%H:%M:%S", &tm);
        time_t t = end ? timegm(&tm) : 0, now = time(NULL);
        if (!end || (*end != 'Z' && *end != '.' && *end != '+') || t < now - 120 || t > now + 5)
            snprintf(why, sizeof why, "Yard-Died-At `%s`, expected an RFC 3339 time of the "
                     "last two minutes", died);
    }
    yard_js_msg_destroy(m);
    if (why[0])
        fail_msg("job %s, DLQ message: %s", id, why);
}

/* ---- setup ------------------------------------------------------------------ */

static int setup(void **state)
{
    yard_log_init("test_wk_e2e_failures", YARD_LOG_ERROR);
    return yt_cluster_start(&g.c, NULL);
}

static int teardown(void **state)
{
    yt_cluster_stop(&g.c);
    return 0;
}

/* ---- tests ------------------------------------------------------------------ */

static void test_cancel_before_start_never_runs(void **state)
{
    char id[YT_JOB_ID_MAX], status[32];
    uint64_t pending = 0, ack_pending = 0;
    assert_int_equal(g.c.exec.pid, 0); /* no execute worker yet */
    submit("{\"type\":\"sleep\",\"payload\":{\"ms\":100}}", id);
    wait_status(id, "queued", 2000);
    int st = yt_job_cancel(g.c.port, id, status, sizeof status);
    if (st != 200 || strcmp(status, "cancelled") != 0)
        fail_msg("DELETE of queued job %s: expected 200 with status cancelled, got %d with "
                 "status `%s`", id, st, status);
    if (exec_depth(&pending, &ack_pending) != 1)
        fail_msg("expected the cancelled job's message still waiting in execute_default "
                 "(pending 1), got pending %llu, ack pending %llu",
                 (unsigned long long)pending, (unsigned long long)ack_pending);

    ensure_exec_worker();
    long long depth = wait_exec_depth_zero(10000, &pending, &ack_pending);
    if (depth != 0)
        fail_msg("expected the worker to drop the cancelled job's message (execute_default "
                 "empty) within 10 s, got pending %llu, ack pending %llu",
                 (unsigned long long)pending, (unsigned long long)ack_pending);
    yt_nap_ms(2500);
    long long attempts = yt_sql_int(g.c.env, "SELECT count(*) FROM job_attempts WHERE job_id = '%s'",
                                    id);
    if (attempts != 0)
        fail_msg("job %s cancelled before start: expected no attempt row, got %lld", id,
                 attempts);
    if (yt_job_status(g.c.port, id, status, sizeof status) != 200 ||
        strcmp(status, "cancelled") != 0)
        fail_msg("job %s cancelled before start: expected status to stay cancelled, got `%s`",
                 id, status);
    if (exec_depth(&pending, &ack_pending) != 0)
        fail_msg("expected execute_default to stay empty, got pending %llu, ack pending %llu",
                 (unsigned long long)pending, (unsigned long long)ack_pending);
}

static void test_cancel_while_running_stops_the_job(void **state)
{
    char id[YT_JOB_ID_MAX], status[32], got[64];
    uint64_t pending = 0, ack_pending = 0;
    ensure_exec_worker();
    submit("{\"type\":\"sleep\",\"payload\":{\"ms\":20000}}", id);
    wait_status(id, "running", 10000);
    yt_nap_ms(200); /* let the handler start sleeping */
    int st = yt_job_cancel(g.c.port, id, status, sizeof status);
    long long t0 = yt_now_ms();
    if (st != 202)
        fail_msg("DELETE of running job %s: expected 202, got %d (status `%s`)", id, st, status);
    if (yt_job_wait_status(g.c.port, id, "cancelled", 2000, got, sizeof got) != 0) {
        yt_worker_log_tail(g.c.env, &g.c.exec);
        fail_msg("running job %s: expected status cancelled within 2 s of the 202, got %s", id,
                 got);
    }
    long long took = yt_now_ms() - t0;
    char outcome[64];
    long long rows = yt_sql_int(g.c.env, "SELECT count(*) FROM job_attempts WHERE job_id = '%s'",
                                id);
    yt_sql_text(g.c.env, outcome, sizeof outcome,
                "SELECT outcome || ' after ' || duration_ms || ' ms' FROM job_attempts"
                " WHERE job_id = '%s' AND attempt = 1", id);
    if (rows != 1 || strncmp(outcome, "cancelled ", 10) != 0)
        fail_msg("cancelled job %s: expected one attempt with outcome cancelled, got %lld rows, "
                 "attempt 1 `%s` (cancel seen after %lld ms)", id, rows, outcome, took);
    if (wait_exec_depth_zero(5000, &pending, &ack_pending) != 0)
        fail_msg("cancelled job %s: expected its message terminated (execute_default empty), "
                 "got pending %llu, ack pending %llu", id, (unsigned long long)pending,
                 (unsigned long long)ack_pending);
}

static void test_retryable_failure_backs_off_then_dead_letters(void **state)
{
    char id[YT_JOB_ID_MAX], body[256], msg[64];
    ensure_exec_worker();
    snprintf(msg, sizeof msg, "boom-%lld", yt_now_ms());
    snprintf(body, sizeof body,
             "{\"type\":\"fail\",\"payload\":{\"retryable\":true,\"message\":\"%s\"},"
             "\"max_attempts\":4}", msg);
    submit(body, id);
    wait_status(id, "dead", 20000);

    PGresult *r = yt_sql_query(g.c.env,
                               "SELECT attempt, outcome, coalesce(error, ''),"
                               " round(extract(epoch FROM started_at) * 1000)::bigint"
                               " FROM job_attempts WHERE job_id = '%s' ORDER BY attempt", id);
    assert_non_null(r);
    int n = PQntuples(r);
    if (n != 4) {
        PQclear(r);
        fail_msg("job %s (retryable fail, max_attempts 4): expected 4 attempt rows, got %d", id,
                 n);
    }
    long long started[4], gaps[3];
    char why[512] = "";
    for (int i = 0; i < 4 && !why[0]; i++) {
        const char *want = i < 3 ? "retry" : "dead";
        started[i] = strtoll(PQgetvalue(r, i, 3), NULL, 10);
        if (atoi(PQgetvalue(r, i, 0)) != i + 1)
            snprintf(why, sizeof why, "row %d is attempt %s, expected %d", i,
                     PQgetvalue(r, i, 0), i + 1);
        else if (strcmp(PQgetvalue(r, i, 1), want) != 0)
            snprintf(why, sizeof why, "attempt %d has outcome `%s`, expected `%s`", i + 1,
                     PQgetvalue(r, i, 1), want);
        else if (!strstr(PQgetvalue(r, i, 2), msg))
            snprintf(why, sizeof why, "attempt %d has error `%s`, expected it to hold `%s`",
                     i + 1, PQgetvalue(r, i, 2), msg);
    }
    PQclear(r);
    if (why[0])
        fail_msg("job %s: %s", id, why);
    for (int i = 0; i < 3 && !why[0]; i++) {
        long long c = (long long)RETRY_BASE_MS << i; /* ceiling of the delay after attempt i+1 */
        gaps[i] = started[i + 1] - started[i];
        if (gaps[i] < c / 2 - JITTER_SLACK_MS)
            snprintf(why, sizeof why, "gap after attempt %d is %lld ms, expected at least "
                     "%lld ms (delay uniform in [%lld, %lld])", i + 1, gaps[i],
                     c / 2 - JITTER_SLACK_MS, c / 2, c);
        else if (gaps[i] > c + 1000)
            snprintf(why, sizeof why, "gap after attempt %d is %lld ms, expected at most "
                     "%lld ms (delay uniform in [%lld, %lld], 1 s of slack)", i + 1, gaps[i],
                     c + 1000, c / 2, c);
        else if (i > 0 && gaps[i] < gaps[i - 1] - JITTER_SLACK_MS)
            snprintf(why, sizeof why, "gap after attempt %d (%lld ms) is shorter than the one "
                     "before (%lld ms)", i + 1, gaps[i], gaps[i - 1]);
    }
    if (why[0])
        fail_msg("job %s, backoff with base %d ms: %s", id, RETRY_BASE_MS, why);
    long long attempts = yt_sql_int(g.c.env, "SELECT attempts FROM jobs WHERE id = '%s'", id);
    if (attempts != 4)
        fail_msg("job %s: expected jobs.attempts 4, got %lld", id, attempts);
    expect_dlq(id, 4, msg);
}

static void test_non_retryable_failure_is_dead_at_once(void **state)
{
    char id[YT_JOB_ID_MAX], body[256], msg[64], outcome[64];
    ensure_exec_worker();
    snprintf(msg, sizeof msg, "fatal-%lld", yt_now_ms());
    snprintf(body, sizeof body,
             "{\"type\":\"fail\",\"payload\":{\"retryable\":false,\"message\":\"%s\"},"
             "\"max_attempts\":4}", msg);
    submit(body, id);
    wait_status(id, "dead", 10000);
    yt_nap_ms(300); /* a wrong retry would show up as a second row */
    long long rows = yt_sql_int(g.c.env, "SELECT count(*) FROM job_attempts WHERE job_id = '%s'",
                                id);
    yt_sql_text(g.c.env, outcome, sizeof outcome,
                "SELECT outcome FROM job_attempts WHERE job_id = '%s' AND attempt = 1", id);
    if (rows != 1 || strcmp(outcome, "failed") != 0)
        fail_msg("job %s (non-retryable fail): expected exactly one attempt with outcome "
                 "failed, got %lld rows, attempt 1 `%s`", id, rows, outcome);
    expect_dlq(id, 1, msg);
}

/* The job's attempts as "1:retry,2:dead" into out. */
static void attempts_text(const char *id, char *out, size_t cap)
{
    yt_sql_text(g.c.env, out, cap,
                "SELECT coalesce(string_agg(attempt || ':' || outcome, ',' ORDER BY attempt), '')"
                " FROM job_attempts WHERE job_id = '%s'", id);
}

static void test_unknown_type_and_bad_payload_end_dead(void **state)
{
    char unknown[YT_JOB_ID_MAX], bad[YT_JOB_ID_MAX], attempts[256], err[512];
    ensure_exec_worker();
    submit("{\"type\":\"no-such-handler\",\"max_attempts\":2}", unknown);
    submit("{\"type\":\"sleep\",\"payload\":{\"ms\":\"x\"},\"max_attempts\":3}", bad);
    wait_status(unknown, "dead", 10000);
    wait_status(bad, "dead", 10000);
    attempts_text(unknown, attempts, sizeof attempts);
    yt_sql_text(g.c.env, err, sizeof err, "SELECT coalesce(last_error, '') FROM jobs WHERE id = '%s'",
                unknown);
    if (strcmp(attempts, "1:failed") != 0 || !strstr(err, "no_handler") ||
        !strstr(err, "no-such-handler"))
        fail_msg("job %s of an unknown type (max_attempts 2): expected attempts "
                 "`1:failed` and last_error `no_handler: ...` naming the type, got `%s` and "
                 "`%s`", unknown,
                 attempts, err);
    yt_nap_ms(300);
    attempts_text(bad, attempts, sizeof attempts);
    yt_sql_text(g.c.env, err, sizeof err, "SELECT coalesce(last_error, '') FROM jobs WHERE id = '%s'",
                bad);
    if (strcmp(attempts, "1:failed") != 0 || !strstr(err, "sleep"))
        fail_msg("sleep job %s with payload {\"ms\":\"x\"}: expected attempts `1:failed` and "
                 "an error naming the handler, got `%s` and `%s`", bad, attempts, err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cancel_before_start_never_runs),
        cmocka_unit_test(test_cancel_while_running_stops_the_job),
        cmocka_unit_test(test_retryable_failure_backs_off_then_dead_letters),
        cmocka_unit_test(test_non_retryable_failure_is_dead_at_once),
        cmocka_unit_test(test_unknown_type_and_bad_payload_end_dead),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
