/*
 * test_wk_e2e_audit.c - lifecycle events and the hash-chained audit log,
 * end to end: real yard-gateway, yard-worker (audit, execute) and yardctl
 * against real nats-server and PostgreSQL. One cluster for the file; the
 * tests run in order and each checks the rows of its own jobs.
 *   1. 5,000 noop jobs give exactly job.accepted, job.started and
 *      job.succeeded per job (started before succeeded in the chain), seq
 *      counts 1..N without a gap, every row carries an actor and its job's
 *      trace id (a client's traceparent reaches all three rows), and
 *      `yardctl audit verify` passes (also --json and --since);
 *   2. the audit worker killed with -9 while it writes, then restarted:
 *      3,000 more jobs still give exactly three rows each (a redelivered
 *      event is appended when it comes back, so here started precedes
 *      succeeded by event time), no gap, and the chain verifies;
 *   3. a redelivered batch of events (the same event ids appended again
 *      through yard_audit_append) adds no row;
 *   4. operator actions and failures: `yardctl keys create|revoke` give
 *      ops.key_created / ops.key_revoked with an operator actor; a failing
 *      job gives job.attempt_failed then job.dead; `yardctl dlq replay`
 *      gives job.replayed; DELETE of a scheduled job gives job.cancelled;
 *   5. the yard_audit_writer role may not UPDATE or DELETE (refused by
 *      privilege even with the append-only trigger disabled); a row altered
 *      by a superuser makes `yardctl audit verify` fail naming that row.
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

#include <libpq-fe.h>

#include "audit.h"
#include "log.h"
#include "yt_http.h"
#include "yt_workers.h"

#define BIG_RUN 5000
#define KILL_RUN 3000
#define BATCH 1000
#define WAIT_MS 120000
#define TRACE_ID "4bf92f3577b34da6a3ce929d0e0e4736"
#define TRACEPARENT "00-" TRACE_ID "-00f067aa0ba902b7-01"

static struct {
    yt_cluster_t c;
} g;

static int setup(void **state)
{
    yard_log_init("test_wk_e2e_audit", YARD_LOG_ERROR);
    if (yt_cluster_start(&g.c, NULL) != 0)
        return -1;
    if (yt_worker_start(&g.c.exec, g.c.env, "execute", NULL, NULL, 0) != 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    yt_cluster_stop(&g.c);
    return 0;
}

/* ---- helpers ------------------------------------------------------------------- */

/* Posts n noop jobs in batches of BATCH into ids. */
static void submit_noops(char (*ids)[YT_JOB_ID_MAX], int n)
{
    char *body = yt_batch_body("{\"type\":\"noop\"}", BATCH);
    assert_non_null(body);
    for (int b = 0; b < n / BATCH; b++) {
        size_t accepted = 0;
        int st = yt_job_submit_batch(g.c.port, body, ids + b * BATCH, BATCH, &accepted);
        if (st != 202 || accepted != BATCH)
            fail_msg("batch %d: expected 202 with %d jobs, got HTTP %d with %zu", b, BATCH, st,
                     accepted);
    }
    free(body);
}

/* Waits until the n jobs of arr have 3 audit rows each; fails saying what
 * is there otherwise. */
static void wait_rows(const char *arr, int n)
{
    long long rows = yt_wait_sql(g.c.env, 3LL * n, WAIT_MS,
                                 "SELECT count(*) FROM audit_log WHERE job_id = ANY(%s)", arr);
    if (rows != 3LL * n) {
        char by[512];
        yt_sql_text(g.c.env, by, sizeof by,
                    "SELECT string_agg(event || ': ' || k, ', ') FROM (SELECT event, count(*) AS "
                    "k FROM audit_log WHERE job_id = ANY(%s) GROUP BY event) s",
                    arr);
        yt_worker_log_tail(g.c.env, &g.c.audit);
        fail_msg("expected %d audit rows (3 per job) within %d s, got %lld (%s)", 3 * n,
                 WAIT_MS / 1000, rows, by);
    }
}

/* Checks that each of the n jobs of arr has exactly one row of each of
 * the three events, started before succeeded, and one trace id. Before
 * means earlier in the chain (seq) when by_seq, else by event time: events
 * redelivered after a crash are appended when they come back. */
static void expect_three_rows_each(const char *arr, int n, int by_seq)
{
    const char *order = by_seq ? "seq" : "at";
    long long good = yt_sql_int(
        g.c.env,
        "SELECT count(*) FROM (SELECT job_id FROM audit_log WHERE job_id = ANY(%s) "
        "GROUP BY job_id HAVING count(*) = 3 "
        " AND count(*) FILTER (WHERE event = 'job.accepted') = 1"
        " AND count(*) FILTER (WHERE event = 'job.started') = 1"
        " AND count(*) FILTER (WHERE event = 'job.succeeded') = 1"
        " AND max(%s) FILTER (WHERE event = 'job.started') <="
        "     max(%s) FILTER (WHERE event = 'job.succeeded')"
        " AND count(DISTINCT detail->>'trace_id') = 1"
        " AND bool_and(detail->>'trace_id' ~ '^[0-9a-f]{32}$')"
        " AND bool_and(actor IS NOT NULL AND actor <> '')) t",
        arr, order, order);
    if (good != n)
        fail_msg("expected all %d jobs with exactly accepted, started, succeeded (in order, "
                 "one trace id, actors set), got %lld",
                 n, good);
}

/* The whole log: seq is 1..count without a gap, event ids are unique. */
static void expect_no_gap(void)
{
    long long count = yt_sql_int(g.c.env, "SELECT count(*) FROM audit_log");
    long long max = yt_sql_int(g.c.env, "SELECT coalesce(max(seq), 0) FROM audit_log");
    long long ids = yt_sql_int(g.c.env, "SELECT count(DISTINCT event_id) FROM audit_log");
    if (count != max || ids != count)
        fail_msg("expected seq 1..N without gaps and unique event ids, got %lld rows, max seq "
                 "%lld, %lld distinct event ids",
                 count, max, ids);
}

typedef struct {
    int status;
    char out[8192], err[8192];
} run_t;

static void yardctl(run_t *r, const char *const *args)
{
    r->status = yt_run_program(g.c.env, "yardctl", args, r->out, sizeof r->out, r->err,
                               sizeof r->err);
}
#define YARDCTL(run, ...) yardctl((run), (const char *const[]){__VA_ARGS__, NULL})

/* Runs `yardctl audit verify` and expects it to pass over every row (rows
 * may be appended meanwhile: the count it reports lies between the counts
 * before and after). */
static void expect_verify_ok(void)
{
    run_t r;
    long long before = yt_sql_int(g.c.env, "SELECT count(*) FROM audit_log");
    YARDCTL(&r, "audit", "verify");
    long long after = yt_sql_int(g.c.env, "SELECT count(*) FROM audit_log");
    long long checked = -1, first = -1, last = -1;
    const char *p = strstr(r.out, "audit log intact: ");
    if (p)
        sscanf(p, "audit log intact: %lld rows checked (seq %lld to %lld)", &checked, &first,
               &last);
    if (r.status != 0 || first != 1 || last != checked || checked < before || checked > after)
        fail_msg("expected `yardctl audit verify` to pass over all %lld..%lld rows from seq 1, "
                 "got exit %d:\n%s\n%.2000s",
                 before, after, r.status, r.out, r.err);
}

/* ---- 1. many jobs --------------------------------------------------------------- */

static void test_5000_jobs_give_ordered_rows_and_verify(void **state)
{
    char(*ids)[YT_JOB_ID_MAX] = calloc(BIG_RUN + 1, sizeof *ids);
    assert_non_null(ids);
    submit_noops(ids, BIG_RUN);
    /* One more with the client's traceparent. */
    static const char *const hdrs[] = {"Content-Type: application/json",
                                       "traceparent: " TRACEPARENT, NULL};
    static const char job[] = "{\"type\":\"noop\"}";
    yt_http_resp_t resp = {0};
    int st = yt_http_request(&resp, g.c.port, "POST", "/v1/jobs", hdrs, job, sizeof job - 1);
    const char *p = st == 202 ? strstr(resp.body, "\"id\":\"") : NULL;
    if (!p)
        fail_msg("expected 202 with an id for the traced job, got %d", st);
    snprintf(ids[BIG_RUN], YT_JOB_ID_MAX, "%.36s", p + 6);
    yt_http_resp_free(&resp);

    char *arr = yt_sql_id_array(ids, BIG_RUN + 1);
    assert_non_null(arr);
    long long t0 = yt_now_ms();
    wait_rows(arr, BIG_RUN + 1);
    printf("test_wk_e2e_audit: %d audit rows written within %.2f s of the last submit\n",
           3 * (BIG_RUN + 1), (yt_now_ms() - t0) / 1000.0);
    expect_three_rows_each(arr, BIG_RUN + 1, 1);
    expect_no_gap();

    /* Actors: the gateway (auth off) accepted, the execute worker ran. */
    long long wrong = yt_sql_int(g.c.env,
                                 "SELECT count(*) FROM audit_log WHERE job_id = ANY(%s) AND NOT "
                                 "((event = 'job.accepted' AND actor = 'gateway') OR (event <> "
                                 "'job.accepted' AND actor LIKE 'worker:execute@%%'))",
                                 arr);
    if (wrong != 0)
        fail_msg("expected accepted rows by `gateway` and the others by `worker:execute@...`, "
                 "got %lld rows with another actor",
                 wrong);
    long long traced = yt_sql_int(g.c.env,
                                  "SELECT count(*) FROM audit_log WHERE job_id = '%s' AND "
                                  "detail->>'trace_id' = '" TRACE_ID "'",
                                  ids[BIG_RUN]);
    if (traced != 3)
        fail_msg("expected the 3 rows of job %s to carry trace id %s, got %lld", ids[BIG_RUN],
                 TRACE_ID, traced);

    expect_verify_ok();
    run_t r;
    YARDCTL(&r, "audit", "verify", "--json");
    if (r.status != 0 || !strstr(r.out, "\"ok\":true"))
        fail_msg("expected verify --json to say ok, got exit %d: %s", r.status, r.out);
    YARDCTL(&r, "audit", "verify", "--since", "100");
    if (r.status != 0 || !strstr(r.out, "(seq 100 to"))
        fail_msg("expected verify --since 100 to start at row 100, got exit %d: %s", r.status,
                 r.out);
    YARDCTL(&r, "audit", "tail", "-n", "3");
    if (r.status != 0 || !strstr(r.out, "job.") || strlen(r.out) < 100)
        fail_msg("expected `audit tail -n 3` to print rows, got exit %d: %.300s", r.status,
                 r.out);
    free(arr);
    free(ids);
}

/* ---- 2. kill -9 ------------------------------------------------------------------- */

static void test_audit_killed_mid_run_leaves_no_gap_or_duplicate(void **state)
{
    char(*ids)[YT_JOB_ID_MAX] = calloc(KILL_RUN, sizeof *ids);
    assert_non_null(ids);
    long long before = yt_sql_int(g.c.env, "SELECT count(*) FROM audit_log");
    submit_noops(ids, KILL_RUN);
    char *arr = yt_sql_id_array(ids, KILL_RUN);
    assert_non_null(arr);
    /* Kill it once it has written some of this run's rows, not all. */
    long long seen = 0;
    long long deadline = yt_now_ms() + WAIT_MS;
    while (yt_now_ms() < deadline) {
        seen = yt_sql_int(g.c.env, "SELECT count(*) FROM audit_log WHERE job_id = ANY(%s)", arr);
        if (seen > 0)
            break;
        yt_nap_ms(5);
    }
    if (yt_worker_stop(g.c.env, &g.c.audit, SIGKILL, 10000) < 0)
        fail_msg("expected the audit worker to die on SIGKILL");
    long long at_kill =
        yt_sql_int(g.c.env, "SELECT count(*) FROM audit_log WHERE job_id = ANY(%s)", arr);
    printf("test_wk_e2e_audit: audit worker killed with %lld of %d rows of this run written\n",
           at_kill, 3 * KILL_RUN);
    if (at_kill <= 0)
        fail_msg("expected the kill to land after some rows were written, got %lld", at_kill);
    if (yt_worker_start(&g.c.audit, g.c.env, "audit", NULL, NULL, 0) != 0)
        fail_msg("expected the audit worker to start again (log above)");
    wait_rows(arr, KILL_RUN);
    expect_three_rows_each(arr, KILL_RUN, 0);
    expect_no_gap();
    long long after = yt_sql_int(g.c.env, "SELECT count(*) FROM audit_log");
    if (after - before != 3LL * KILL_RUN)
        fail_msg("expected exactly %d new rows, got %lld", 3 * KILL_RUN, after - before);
    expect_verify_ok();
    free(arr);
    free(ids);
}

/* ---- 3. redelivery ---------------------------------------------------------------- */

static void test_redelivered_events_add_no_row(void **state)
{
    PGconn *c = PQconnectdb(g.c.env->pg_dsn);
    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("expected to connect to PostgreSQL: %s", PQerrorMessage(c));
    assert_int_equal(yard_audit_use_role(c), 0);
    PGresult *res = PQexec(c, "SELECT event_id, (extract(epoch FROM at) * 1000000)::bigint, "
                              "event, job_id::text, actor, detail::text FROM audit_log "
                              "ORDER BY seq DESC LIMIT 50");
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    int n = PQntuples(res);
    yard_audit_row_t rows[50];
    for (int i = 0; i < n; i++) {
        rows[i] = (yard_audit_row_t){0, PQgetvalue(res, i, 0), strtoll(PQgetvalue(res, i, 1),
                                                                        NULL, 10),
                                     PQgetvalue(res, i, 2), PQgetvalue(res, i, 3), NULL,
                                     PQgetvalue(res, i, 4), PQgetvalue(res, i, 5)};
    }
    long long before = yt_sql_int(g.c.env, "SELECT count(*) FROM audit_log");
    size_t written = 99;
    int rc = yard_audit_append(c, rows, (size_t)n, &written);
    long long after = yt_sql_int(g.c.env, "SELECT count(*) FROM audit_log");
    PQclear(res);
    PQfinish(c);
    if (rc != 0 || written != 0 || after != before)
        fail_msg("expected %d redelivered events to add nothing, got rc %d, %zu written, rows "
                 "%lld -> %lld",
                 n, rc, written, before, after);
    expect_verify_ok();
}

/* ---- 4. operator actions and failures ----------------------------------------------- */

static long long rows_of(const char *event, const char *where)
{
    return yt_sql_int(g.c.env, "SELECT count(*) FROM audit_log WHERE event = '%s' AND %s", event,
                      where);
}

static void test_operator_actions_and_failures_are_recorded(void **state)
{
    run_t r;
    char id[YT_JOB_ID_MAX], sched_id[YT_JOB_ID_MAX], status[64], cond[256], key_id[40] = "";
    setenv("YARD_NATS_URL", g.c.env->nats_url, 1);

    YARDCTL(&r, "keys", "create", "--name", "auditor", "--scopes", "read");
    const char *p = strstr(r.out, "  id      ");
    if (r.status != 0 || !p)
        fail_msg("expected `yardctl keys create` to succeed, got %d: %s %s", r.status, r.out,
                 r.err);
    sscanf(p + 10, "%36s", key_id);
    YARDCTL(&r, "keys", "revoke", key_id);
    if (r.status != 0)
        fail_msg("expected `yardctl keys revoke %s` to succeed, got %d: %s", key_id, r.status,
                 r.err);

    /* Fails twice: attempt 1 failed (retried), attempt 2 dead. */
    if (yt_job_submit(g.c.port,
                      "{\"type\":\"fail\",\"max_attempts\":2,\"payload\":{\"retryable\":true}}",
                      id) != 202)
        fail_msg("expected the failing job to be accepted");
    if (yt_job_wait_status(g.c.port, id, "dead", 60000, status, sizeof status) != 0)
        fail_msg("expected job %s dead within 60 s, got %s", id, status);
    /* A scheduled job, cancelled before it runs. */
    char run_at[40], body[160];
    yt_rfc3339_in(run_at, 600000);
    snprintf(body, sizeof body, "{\"type\":\"noop\",\"run_at\":\"%s\"}", run_at);
    if (yt_job_submit(g.c.port, body, sched_id) != 202)
        fail_msg("expected the scheduled job to be accepted");
    if (yt_job_wait_status(g.c.port, sched_id, "scheduled", 20000, status, sizeof status) != 0)
        fail_msg("expected job %s scheduled within 20 s, got %s", sched_id, status);
    if (yt_job_cancel(g.c.port, sched_id, status, sizeof status) != 200)
        fail_msg("expected DELETE of scheduled job %s to answer 200, got %s", sched_id, status);

    YARDCTL(&r, "dlq", "replay", "--all");
    if (r.status != 0 || !strstr(r.out, id))
        fail_msg("expected `yardctl dlq replay --all` to replay job %s, got %d: %s %s", id,
                 r.status, r.out, r.err);

    snprintf(cond, sizeof cond, "detail->>'target' = '%s' AND actor LIKE 'yardctl:%%'", key_id);
    long long created = yt_wait_sql(g.c.env, 1, 20000,
                                    "SELECT count(*) FROM audit_log WHERE event = "
                                    "'ops.key_created' AND %s",
                                    cond);
    if (created != 1 || rows_of("ops.key_revoked", cond) != 1)
        fail_msg("expected one ops.key_created and one ops.key_revoked row for key %s by an "
                 "operator, got %lld and %lld",
                 key_id, created, rows_of("ops.key_revoked", cond));
    snprintf(cond, sizeof cond, "job_id = '%s'", id);
    if (yt_wait_sql(g.c.env, 1, 20000,
                    "SELECT count(*) FROM audit_log WHERE event = 'job.replayed' AND %s"
                    " AND actor LIKE 'yardctl:%%' AND detail ? 'dlq_seq'",
                    cond) != 1)
        fail_msg("expected one job.replayed row for job %s by an operator", id);
    if (rows_of("job.attempt_failed", cond) < 1 ||
        rows_of("job.dead", "detail->>'attempt' = '2' AND job_id IN (SELECT job_id FROM "
                            "audit_log WHERE event = 'job.replayed')") != 1)
        fail_msg("expected job.attempt_failed and one job.dead (attempt 2) for job %s, got %lld "
                 "and %lld",
                 id, rows_of("job.attempt_failed", cond), rows_of("job.dead", cond));
    long long first_dead = yt_sql_int(
        g.c.env, "SELECT min(seq) FROM audit_log WHERE event = 'job.dead' AND %s", cond);
    long long failed = yt_sql_int(
        g.c.env, "SELECT max(seq) FROM audit_log WHERE event = 'job.attempt_failed' AND "
                 "detail->>'attempt' = '1' AND %s", cond);
    if (!(failed > 0 && failed < first_dead))
        fail_msg("expected attempt 1's failure (seq %lld) before the death (seq %lld)", failed,
                 first_dead);
    snprintf(cond, sizeof cond, "job_id = '%s' AND actor = 'gateway'", sched_id);
    if (yt_wait_sql(g.c.env, 1, 20000,
                    "SELECT count(*) FROM audit_log WHERE event = 'job.cancelled' AND %s",
                    cond) != 1)
        fail_msg("expected one job.cancelled row by the gateway for job %s", sched_id);
    expect_no_gap();
    expect_verify_ok();
}

/* ---- 4b. schedule and workflow changes ------------------------------------------------ */

static int post_json(const char *path, const char *body, char *out, size_t cap)
{
    static const char *const ct[] = {"Content-Type: application/json", NULL};
    yt_http_resp_t r;
    int st = yt_http_request(&r, g.c.port, "POST", path, ct, body, body ? strlen(body) : 0);
    snprintf(out, cap, "%s", st > 0 && r.body ? r.body : "");
    yt_http_resp_free(&r);
    return st;
}

static void test_schedule_and_workflow_changes_are_recorded(void **state)
{
    char out[2048], wf_ok[64] = "", wf_failed[64] = "", wf_cancelled[64] = "", cond[256];
    if (!g.c.sched.pid && yt_worker_start(&g.c.sched, g.c.env, "schedule", NULL, NULL, 0) != 0)
        fail_msg("expected the schedule role to start");
    /* A schedule created, paused and deleted through the API. */
    assert_int_equal(post_json("/v1/schedules",
                               "{\"name\":\"audit-sched\",\"cron\":\"*/5 * * * *\","
                               "\"job\":{\"type\":\"noop\"}}",
                               out, sizeof out),
                     201);
    assert_int_equal(post_json("/v1/schedules/audit-sched/pause", "{}", out, sizeof out), 200);
    yt_http_resp_t r;
    assert_int_equal(yt_http_request(&r, g.c.port, "DELETE", "/v1/schedules/audit-sched", NULL,
                                     NULL, 0),
                     200);
    yt_http_resp_free(&r);
    static const char *const sched_events[] = {"ops.schedule_created", "ops.schedule_paused",
                                               "ops.schedule_deleted"};
    for (size_t i = 0; i < 3; i++)
        if (yt_wait_sql(g.c.env, 1, 20000,
                        "SELECT count(*) FROM audit_log WHERE event = '%s' AND "
                        "detail->>'target' = 'audit-sched' AND actor = 'gateway'",
                        sched_events[i]) != 1)
            fail_msg("expected one %s row for schedule audit-sched by the gateway",
                     sched_events[i]);
    /* A workflow that succeeds, one whose root dies (its child is skipped),
     * one cancelled while its root sleeps. */
    assert_int_equal(post_json("/v1/workflows",
                               "{\"steps\":[{\"id\":\"a\",\"type\":\"noop\"},"
                               "{\"id\":\"b\",\"type\":\"noop\",\"depends_on\":[\"a\"]}]}",
                               out, sizeof out),
                     202);
    sscanf(strstr(out, "\"id\"") + 6, "%36s", wf_ok);
    assert_int_equal(post_json("/v1/workflows",
                               "{\"steps\":[{\"id\":\"a\",\"type\":\"fail\",\"max_attempts\":1,"
                               "\"payload\":{\"retryable\":false}},"
                               "{\"id\":\"b\",\"type\":\"noop\",\"depends_on\":[\"a\"]}]}",
                               out, sizeof out),
                     202);
    sscanf(strstr(out, "\"id\"") + 6, "%36s", wf_failed);
    assert_int_equal(post_json("/v1/workflows",
                               "{\"steps\":[{\"id\":\"a\",\"type\":\"sleep\","
                               "\"payload\":{\"ms\":5000}},"
                               "{\"id\":\"b\",\"type\":\"noop\",\"depends_on\":[\"a\"]}]}",
                               out, sizeof out),
                     202);
    sscanf(strstr(out, "\"id\"") + 6, "%36s", wf_cancelled);
    char path[96];
    snprintf(path, sizeof path, "/v1/workflows/%s", wf_cancelled);
    yt_nap_ms(500);
    assert_int_equal(yt_http_request(&r, g.c.port, "DELETE", path, NULL, NULL, 0), 200);
    yt_http_resp_free(&r);
    struct {
        const char *id, *event;
    } want[] = {{wf_ok, "workflow.accepted"},       {wf_ok, "workflow.succeeded"},
                {wf_failed, "workflow.accepted"},   {wf_failed, "workflow.step_skipped"},
                {wf_failed, "workflow.failed"},     {wf_cancelled, "workflow.accepted"},
                {wf_cancelled, "workflow.cancelled"}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        snprintf(cond, sizeof cond, "workflow_id = '%s'", want[i].id);
        if (yt_wait_sql(g.c.env, 1, 30000,
                        "SELECT count(*) FROM audit_log WHERE event = '%s' AND %s", want[i].event,
                        cond) != 1)
            fail_msg("expected one %s row for workflow %s, got %lld", want[i].event, want[i].id,
                     rows_of(want[i].event, cond));
    }
    expect_no_gap();
    expect_verify_ok();
}

/* ---- 5. privileges and tampering ---------------------------------------------------- */

/* Runs sql as yard_audit_writer; returns the error message ("" if it ran). */
static void as_writer(const char *sql, char *err, size_t cap)
{
    PGconn *c = PQconnectdb(g.c.env->pg_dsn);
    PGresult *res = PQexec(c, "SET ROLE " YARD_AUDIT_DB_ROLE);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        fail_msg("expected SET ROLE %s to work: %s", YARD_AUDIT_DB_ROLE, PQerrorMessage(c));
    PQclear(res);
    res = PQexec(c, sql);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    snprintf(err, cap, "%s", ok ? "" : PQresultErrorMessage(res));
    PQclear(res);
    PQfinish(c);
}

static void test_writer_role_cannot_change_rows_and_tampering_is_found(void **state)
{
    char err[512];
    /* With the trigger out of the way, only the privileges refuse. */
    assert_int_equal(yt_sql_exec(g.c.env, "ALTER TABLE audit_log DISABLE TRIGGER "
                                          "audit_log_append_only"),
                     0);
    as_writer("UPDATE audit_log SET actor = 'mallory' WHERE seq = 1", err, sizeof err);
    if (!strstr(err, "permission denied"))
        fail_msg("expected UPDATE as %s to be refused by privilege, got \"%s\"",
                 YARD_AUDIT_DB_ROLE, err[0] ? err : "(it ran)");
    as_writer("DELETE FROM audit_log WHERE seq = 1", err, sizeof err);
    if (!strstr(err, "permission denied"))
        fail_msg("expected DELETE as %s to be refused by privilege, got \"%s\"",
                 YARD_AUDIT_DB_ROLE, err[0] ? err : "(it ran)");

    long long rows = yt_sql_int(g.c.env, "SELECT count(*) FROM audit_log");
    long long victim = rows / 2;
    assert_int_equal(yt_sql_exec(g.c.env, "UPDATE audit_log SET actor = 'mallory' WHERE seq = %lld",
                                 victim),
                     0);
    assert_int_equal(yt_sql_exec(g.c.env, "ALTER TABLE audit_log ENABLE TRIGGER "
                                          "audit_log_append_only"),
                     0);
    run_t r;
    char want[64];
    YARDCTL(&r, "audit", "verify");
    snprintf(want, sizeof want, "BROKEN at row %lld ", victim);
    if (r.status != 1 || !strstr(r.out, want) || !strstr(r.out, "altered"))
        fail_msg("expected verify to fail naming row %lld as altered, got exit %d: %s", victim,
                 r.status, r.out);
    YARDCTL(&r, "audit", "verify", "--json");
    snprintf(want, sizeof want, "\"bad_seq\":%lld", victim);
    if (r.status != 1 || !strstr(r.out, want))
        fail_msg("expected verify --json to give %s, got exit %d: %s", want, r.status, r.out);
    /* Past the altered row the chain is intact again (its link is trusted). */
    char since[32];
    snprintf(since, sizeof since, "%lld", victim + 1);
    YARDCTL(&r, "audit", "verify", "--since", since);
    if (r.status != 0)
        fail_msg("expected verify --since %s to pass, got exit %d: %s", since, r.status, r.out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_5000_jobs_give_ordered_rows_and_verify),
        cmocka_unit_test(test_audit_killed_mid_run_leaves_no_gap_or_duplicate),
        cmocka_unit_test(test_redelivered_events_add_no_row),
        cmocka_unit_test(test_operator_actions_and_failures_are_recorded),
        cmocka_unit_test(test_schedule_and_workflow_changes_are_recorded),
        cmocka_unit_test(test_writer_role_cannot_change_rows_and_tampering_is_found),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
