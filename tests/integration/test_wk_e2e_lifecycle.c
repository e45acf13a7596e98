/*
 * test_wk_e2e_lifecycle.c - what the job lifecycle promises when messages
 * or the store misbehave. Real yard-gateway and yard-worker processes, real
 * nats-server and PostgreSQL; each test has a cluster of its own.
 *   1. one bad message does not hurt its neighbours: 20 good noop jobs and
 *      two envelopes the store cannot take (api_key_id "not-a-uuid", payload
 *      "{not json") published straight to JetStream reach the execute worker
 *      in one fetch; the 20 succeed at attempt 1, the two land in the DLQ
 *      with a Yard-Last-Error naming the field, execute_default is empty and
 *      JOBS holds neither of them;
 *   2. a message may not take over another job: a second message with the
 *      id of a finished job but another api_key_id is dead-lettered ("another
 *      API key") and changes nothing (for a job of the gateway, and for one
 *      published with a key of its own);
 *   3. a job type no handler knows is dead at its first attempt (no_handler),
 *      unless the worker runs with YARD_WORKER_RETRY_UNKNOWN_TYPES=1;
 *   4. /readyz tells the truth: with table jobs renamed the execute worker
 *      (after YARD_WORKER_UNREADY_AFTER_S) and the gateway answer 503, and
 *      200 again once it is back, and the job submitted meanwhile succeeds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "envelope.h"
#include "err.h"
#include "id.h"
#include "log.h"
#include "accepted.h"
#include "yt_http.h"
#include "yt_workers.h"

#define SUBJ_DEFAULT "jobs.execute.default"
#define GOOD_JOBS 20
#define BAD_JOBS 2

static struct {
    yt_cluster_t c;
    yard_id_gen_t ids;
} g;

static int setup(void **state)
{
    memset(&g.c, 0, sizeof g.c);
    if (yard_id_gen_init(&g.ids) != 0)
        return -1;
    if (yt_cluster_start(&g.c, NULL) != 0) {
        yt_cluster_stop(&g.c);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    yt_cluster_stop(&g.c);
    return 0;
}

static void start_exec(char *const extra_env[])
{
    if (yt_worker_start(&g.c.exec, g.c.env, "execute", NULL, extra_env, 0) != 0)
        fail_msg("expected a ready execute worker, but it did not start (log above)");
}

static void new_id(char out[YT_JOB_ID_MAX])
{
    yard_id_t id;
    yard_id_next(&g.ids, &id);
    yard_id_format(&id, out);
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* What publish_job puts in an envelope besides the defaults. NULL strings
 * are left absent. */
typedef struct {
    const char *id, *type, *payload, *api_key_id;
    const char *msg_id; /* Nats-Msg-Id; NULL: none */
} job_msg_t;

/* Encodes j as an envelope (max_attempts 3, timeout_s 30, created now) into
 * buf (4096 bytes); returns its length. */
static size_t encode_job(const job_msg_t *j, char *buf)
{
    yard_envelope_t env;
    size_t len = 0;
    yard_env_init(&env);
    env.id = (yard_str_t){j->id, strlen(j->id)};
    env.type = (yard_str_t){j->type, strlen(j->type)};
    if (j->payload)
        env.payload = (yard_str_t){j->payload, strlen(j->payload)};
    if (j->api_key_id)
        env.api_key_id = (yard_str_t){j->api_key_id, strlen(j->api_key_id)};
    env.max_attempts = 3;
    env.timeout_s = 30;
    env.created_at_ms = wall_ms();
    int rc = yard_env_encode(&env, buf, 4096, &len);
    if (rc != 0)
        fail_msg("expected to encode the envelope of job %s, got %s", j->id, yard_strerror(rc));
    return len;
}

/* Publishes j on jobs.execute.default, waiting for the PubAck. */
static void publish_job(const job_msg_t *j)
{
    char buf[4096];
    size_t len = encode_job(j, buf);
    yard_js_pub_t pub = {SUBJ_DEFAULT, j->msg_id, NULL, 0, buf, len};
    yard_js_puback_t ack;
    int rc = yard_js_publish(&ack, g.c.js, &pub, 5000);
    if (rc != 0)
        fail_msg("expected JetStream to take job %s on %s, got %s", j->id, SUBJ_DEFAULT,
                 yard_strerror(rc));
    if (ack.duplicate)
        fail_msg("job %s: expected a new message on %s, JetStream called it a duplicate", j->id,
                 SUBJ_DEFAULT);
}

/* Pending plus ack-pending of execute_default, or -1. */
static long long exec_depth(uint64_t *pending, uint64_t *ack_pending)
{
    *pending = *ack_pending = 0;
    if (yard_js_consumer_depth(pending, ack_pending, g.c.js, "JOBS", "execute_default") != 0)
        return -1;
    return (long long)(*pending + *ack_pending);
}

/* Prints the last n warn or error lines of the execute worker's log (its
 * tail is otherwise full of /readyz access lines), each cut to 300 bytes. */
static void exec_log_problems(int n)
{
    char path[400], line[2048], keep[8][301];
    int count = 0;
    snprintf(path, sizeof path, "%s/%s.log", g.c.env->dir, g.c.exec.name);
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    if (n > 8)
        n = 8;
    while (fgets(line, sizeof line, f)) {
        if (!strstr(line, "\"level\":\"warn\"") && !strstr(line, "\"level\":\"error\""))
            continue;
        line[strcspn(line, "\n")] = '\0';
        snprintf(keep[count % n], sizeof keep[0], "%.300s", line);
        count++;
    }
    fclose(f);
    fprintf(stderr, "last warn/error lines of %s:\n", path);
    for (int i = count > n ? count - n : 0; i < count; i++)
        fprintf(stderr, "  %s\n", keep[i % n]);
}

/* ---- 1. one bad message must not hurt its neighbours --------------------- */

static void test_bad_message_spares_its_neighbours(void **state)
{
    char good[GOOD_JOBS][YT_JOB_ID_MAX], bad[BAD_JOBS][YT_JOB_ID_MAX];
    static const char *const bad_field[BAD_JOBS] = {"api_key_id", "payload"};
    uint64_t pending, ack_pending;

    /* The consumer must exist before publishing: under interest retention a
     * message nobody wants is dropped at once. */
    if (exec_depth(&pending, &ack_pending) != 0)
        fail_msg("expected an empty execute_default consumer before the test, got depth %lld "
                 "(pending %llu, ack pending %llu)", exec_depth(&pending, &ack_pending),
                 (unsigned long long)pending, (unsigned long long)ack_pending);

    /* No execute worker yet: everything waits in JOBS for one fetch. */
    for (int i = 0, gi = 0, bi = 0; i < GOOD_JOBS + BAD_JOBS; i++) {
        if (i == 7 || i == 14) {
            new_id(bad[bi]);
            job_msg_t j = {bad[bi], "noop", bi == 1 ? "{not json" : NULL,
                           bi == 0 ? "not-a-uuid" : NULL, bad[bi]};
            publish_job(&j);
            bi++;
        } else {
            new_id(good[gi]);
            job_msg_t j = {good[gi], "noop", NULL, NULL, good[gi]};
            publish_job(&j);
            gi++;
        }
    }
    start_exec(NULL);

    char *arr = yt_sql_id_array(good, GOOD_JOBS);
    assert_non_null(arr);
    long long deadline = yt_now_ms() + 20000, ok = -1, depth = -1;
    int in_dlq[BAD_JOBS] = {0}, in_jobs[BAD_JOBS] = {1, 1};
    char last_error[BAD_JOBS][512];
    for (;;) {
        ok = yt_sql_int(g.c.env,
                        "SELECT count(*) FROM jobs WHERE id = ANY(%s) AND status = 'succeeded'"
                        " AND attempts = 1", arr);
        int bad_done = 1;
        for (int b = 0; b < BAD_JOBS; b++) {
            if (!in_dlq[b])
                in_dlq[b] = yt_js_find_header(g.c.js, "DLQ", NULL, "Yard-Job-Id", bad[b],
                                              "Yard-Last-Error", last_error[b],
                                              sizeof last_error[b]) == 1;
            if (in_dlq[b])
                in_jobs[b] = yt_js_find_header(g.c.js, "JOBS", NULL, "Nats-Msg-Id", bad[b], NULL,
                                               NULL, 0) != 0;
            bad_done &= in_dlq[b] && !in_jobs[b];
        }
        depth = exec_depth(&pending, &ack_pending);
        if ((ok == GOOD_JOBS && bad_done && depth == 0) || yt_now_ms() >= deadline)
            break;
        yt_nap_ms(200);
    }

    char counts[256] = "";
    yt_sql_status_counts(g.c.env, good, GOOD_JOBS, counts, sizeof counts);
    free(arr);
    if (ok != GOOD_JOBS) {
        yt_worker_log_tail(g.c.env, &g.c.exec);
        fail_msg("20 good noop jobs fetched in one batch with 2 bad ones: expected all 20 "
                 "succeeded at attempt 1 within 20 s, got %lld (statuses %s)", ok, counts);
    }
    for (int b = 0; b < BAD_JOBS; b++) {
        if (!in_dlq[b]) {
            yt_worker_log_tail(g.c.env, &g.c.exec);
            fail_msg("bad job %s (%s the store cannot cast): expected a DLQ message with its "
                     "Yard-Job-Id within 20 s, found none", bad[b], bad_field[b]);
        }
        if (!strstr(last_error[b], bad_field[b]))
            fail_msg("bad job %s: expected its DLQ Yard-Last-Error to name the field `%s`, got "
                     "`%s`", bad[b], bad_field[b], last_error[b]);
        if (in_jobs[b])
            fail_msg("bad job %s (%s): expected JOBS to no longer hold its message once it is "
                     "in the DLQ, it is still there after 20 s", bad[b], bad_field[b]);
    }
    if (depth != 0)
        fail_msg("expected execute_default to hold nothing pending or ack-pending, got pending "
                 "%llu, ack pending %llu", (unsigned long long)pending,
                 (unsigned long long)ack_pending);
}

/* ---- 2. a message may not take over another job -------------------------- */

/* Publishes a message with job id's id, api key other_key and payload
 * {"v":2}, then checks after 5 s that the job kept its first result, ran
 * once, and that the message went to the DLQ. */
/* The audit role's ingest the same: in one accepted event, jobs the store
 * cannot take are skipped, and the good ones around them recorded. */
static void test_bad_accepted_event_spares_its_neighbours(void **state)
{
    enum { N = 7 };
    char ids[N][YT_JOB_ID_MAX], bufs[N][4096], event[N * 4200];
    yard_accepted_t jobs[N];
    for (int i = 0; i < N; i++) {
        new_id(ids[i]);
        /* jobs 5 and 6 (in the middle of the event) are bad */
        job_msg_t j = {ids[i], "noop", i == 6 ? "{not json" : NULL, i == 5 ? "not-a-uuid" : NULL,
                       NULL};
        jobs[i == 5 ? 2 : i == 2 ? 5 : i] = (yard_accepted_t){0, bufs[i], encode_job(&j, bufs[i])};
    }
    size_t len = 0;
    assert_int_equal(yard_accepted_encode(event, sizeof event, jobs, N, &len), 0);
    yard_js_pub_t pub = {YARD_SUBJ_EVENT_ACCEPTED, NULL, NULL, 0, event, len};
    assert_int_equal(yard_js_publish(NULL, g.c.js, &pub, 5000), 0);
    char *arr = yt_sql_id_array(ids, 5);
    assert_non_null(arr);
    long long n = yt_wait_sql(g.c.env, 5, 10000,
                              "SELECT count(*) FROM jobs WHERE id = ANY(%s) AND status = 'queued'",
                              arr);
    free(arr);
    if (n != 5)
        fail_msg("expected the 5 good jobs of the accepted event recorded as queued within 10 s, "
                 "got %lld", n);
    long long b = yt_sql_int(g.c.env, "SELECT count(*) FROM jobs WHERE id IN ('%s', '%s')",
                             ids[5], ids[6]);
    uint64_t pending = 1, ack_pending = 1;
    long long deadline = yt_now_ms() + 10000;
    while (yt_now_ms() < deadline &&
           (yard_js_consumer_depth(&pending, &ack_pending, g.c.js, "EVENTS", "submissions") != 0 ||
            pending + ack_pending > 0))
        yt_nap_ms(100);
    if (b != 0 || pending + ack_pending != 0)
        fail_msg("expected the 2 bad jobs skipped (no row, nothing left for `submissions`), "
                 "got %lld rows, pending %llu, ack pending %llu", b, (unsigned long long)pending,
                 (unsigned long long)ack_pending);
}

static void check_takeover_refused(const char *id, const char *other_key)
{
    job_msg_t j = {id, "echo", "{\"v\":2}", other_key, NULL};
    /* No Nats-Msg-Id: JetStream's dedupe would drop a message with the
     * job's id before any worker saw it. */
    publish_job(&j);
    yt_nap_ms(5000);

    char result[256] = "";
    yt_sql_text(g.c.env, result, sizeof result,
                "SELECT coalesce(result::text, 'NULL') FROM jobs WHERE id = '%s'", id);
    long long same = yt_sql_int(g.c.env,
                                "SELECT (result = '{\"v\":1}'::jsonb)::int FROM jobs"
                                " WHERE id = '%s'", id);
    long long attempts = yt_sql_int(g.c.env, "SELECT attempts FROM jobs WHERE id = '%s'", id);
    long long rows = yt_sql_int(g.c.env, "SELECT count(*) FROM job_attempts WHERE job_id = '%s'",
                                id);
    if (same != 1 || attempts != 1 || rows != 1) {
        yt_worker_log_tail(g.c.env, &g.c.exec);
        fail_msg("job %s, then a message with its id, api key %s and payload {\"v\":2}: "
                 "expected result {\"v\": 1}, attempts 1, 1 job_attempts row after 5 s; got "
                 "result %s, attempts %lld, %lld rows", id, other_key, result, attempts, rows);
    }
    char last_error[512] = "";
    int found = 0;
    long long deadline = yt_now_ms() + 5000;
    while ((found = yt_js_find_header(g.c.js, "DLQ", NULL, "Yard-Job-Id", id, "Yard-Last-Error",
                                      last_error, sizeof last_error)) == 0 &&
           yt_now_ms() < deadline)
        yt_nap_ms(200);
    if (found != 1) {
        yt_worker_log_tail(g.c.env, &g.c.exec);
        fail_msg("job %s: expected the message with api key %s to be dead-lettered (a DLQ "
                 "message with Yard-Job-Id %s), found %s", id, other_key, id,
                 found == 0 ? "none" : "an error (above)");
    }
    if (!strstr(last_error, "another API key"))
        fail_msg("job %s: expected the DLQ Yard-Last-Error of the foreign message to contain "
                 "`another API key`, got `%s`", id, last_error);
}

static void test_foreign_message_cannot_take_over_a_gateway_job(void **state)
{
    char id[YT_JOB_ID_MAX], got[64], key[YT_JOB_ID_MAX];
    start_exec(NULL);
    int st = yt_job_submit(g.c.port, "{\"type\":\"echo\",\"payload\":{\"v\":1}}", id);
    if (st != 202)
        fail_msg("expected 202 for an echo job, got %d", st);
    if (yt_job_wait_status(g.c.port, id, "succeeded", 10000, got, sizeof got) != 0)
        fail_msg("echo job %s: expected succeeded within 10 s, got %s", id, got);
    new_id(key);
    check_takeover_refused(id, key);
}

static void test_foreign_message_cannot_take_over_a_keyed_job(void **state)
{
    char id[YT_JOB_ID_MAX], key_a[YT_JOB_ID_MAX], key_b[YT_JOB_ID_MAX];
    start_exec(NULL);
    new_id(id);
    new_id(key_a);
    new_id(key_b);
    job_msg_t j = {id, "echo", "{\"v\":1}", key_a, id};
    publish_job(&j);
    long long n = yt_wait_sql(g.c.env, 1, 10000,
                              "SELECT count(*) FROM jobs WHERE id = '%s' AND status = 'succeeded'",
                              id);
    if (n != 1) {
        char status[32] = "";
        yt_sql_text(g.c.env, status, sizeof status, "SELECT status FROM jobs WHERE id = '%s'", id);
        yt_worker_log_tail(g.c.env, &g.c.exec);
        fail_msg("echo job %s published with api key %s: expected succeeded within 10 s, got "
                 "`%s`", id, key_a, status);
    }
    long long owner = yt_sql_int(g.c.env,
                                 "SELECT (api_key_id = '%s')::int FROM jobs WHERE id = '%s'",
                                 key_a, id);
    if (owner != 1)
        fail_msg("echo job %s: expected api_key_id %s in its row", id, key_a);
    check_takeover_refused(id, key_b);
}

/* ---- 3. unknown job types ------------------------------------------------ */

#define UNKNOWN_JOB "{\"type\":\"send-email\",\"max_attempts\":5}"

typedef struct {
    char status[32];
    long long attempts;
    char last_error[512];
} job_row_t;

static void read_row(const char *id, job_row_t *r)
{
    char buf[700] = "";
    memset(r, 0, sizeof *r);
    if (yt_sql_text(g.c.env, buf, sizeof buf,
                    "SELECT status || '|' || attempts || '|' || coalesce(last_error, '')"
                    " FROM jobs WHERE id = '%s'", id) != 1)
        return;
    char *p1 = strchr(buf, '|'), *p2 = p1 ? strchr(p1 + 1, '|') : NULL;
    if (!p1 || !p2)
        return;
    *p1 = *p2 = '\0';
    snprintf(r->status, sizeof r->status, "%.*s", (int)sizeof r->status - 1, buf);
    r->attempts = strtoll(p1 + 1, NULL, 10);
    snprintf(r->last_error, sizeof r->last_error, "%.*s", (int)sizeof r->last_error - 1, p2 + 1);
}

static void test_unknown_type_is_dead_at_once(void **state)
{
    char id[YT_JOB_ID_MAX];
    job_row_t row;
    start_exec(NULL);
    int st = yt_job_submit(g.c.port, UNKNOWN_JOB, id);
    if (st != 202)
        fail_msg("expected 202 for a send-email job, got %d", st);
    long long deadline = yt_now_ms() + 15000;
    for (;;) {
        read_row(id, &row);
        if (strcmp(row.status, "dead") == 0 || row.attempts > 1 || yt_now_ms() >= deadline)
            break;
        yt_nap_ms(100);
    }
    if (strcmp(row.status, "dead") != 0 || row.attempts != 1) {
        yt_worker_log_tail(g.c.env, &g.c.exec);
        fail_msg("send-email job %s (no handler, max_attempts 5): expected status dead at "
                 "attempt 1 within 15 s, got status `%s`, attempts %lld, last_error `%s`", id,
                 row.status, row.attempts, row.last_error);
    }
    if (!strstr(row.last_error, "no_handler") || !strstr(row.last_error, "send-email"))
        fail_msg("send-email job %s: expected last_error to contain `no_handler` and "
                 "`send-email`, got `%s`", id, row.last_error);
    int found = yt_js_find_header(g.c.js, "DLQ", NULL, "Yard-Job-Id", id, NULL, NULL, 0);
    if (found != 1)
        fail_msg("send-email job %s: expected a DLQ message with its Yard-Job-Id, found %s", id,
                 found == 0 ? "none" : "an error (above)");
}

static void test_unknown_type_retried_when_asked(void **state)
{
    static char *const retry_env[] = {"YARD_WORKER_RETRY_UNKNOWN_TYPES=1",
                                      "YARD_RETRY_BASE_MS=200", NULL};
    char id[YT_JOB_ID_MAX];
    job_row_t row;
    int saw_failed_1 = 0;
    start_exec(retry_env);
    int st = yt_job_submit(g.c.port, UNKNOWN_JOB, id);
    if (st != 202)
        fail_msg("expected 202 for a send-email job, got %d", st);
    long long deadline = yt_now_ms() + 15000;
    for (;;) {
        read_row(id, &row);
        if (strcmp(row.status, "failed") == 0 && row.attempts == 1)
            saw_failed_1 = 1;
        /* A short backoff may hide the failed state between two polls: the
         * first attempt's row tells it too. */
        if (!saw_failed_1 && row.attempts >= 1)
            saw_failed_1 = yt_sql_int(g.c.env,
                                      "SELECT count(*) FROM job_attempts WHERE job_id = '%s'"
                                      " AND attempt = 1 AND outcome IN ('retry', 'failed')"
                                      " AND EXISTS (SELECT 1 FROM job_attempts WHERE job_id ="
                                      " '%s' AND attempt = 2)", id, id) == 1;
        if ((saw_failed_1 && row.attempts >= 2) || yt_now_ms() >= deadline)
            break;
        yt_nap_ms(20);
    }
    if (!saw_failed_1 || row.attempts < 2) {
        yt_worker_log_tail(g.c.env, &g.c.exec);
        fail_msg("send-email job %s with YARD_WORKER_RETRY_UNKNOWN_TYPES=1: expected status "
                 "failed at attempt 1, then more attempts within 15 s; %s, last seen status "
                 "`%s`, attempts %lld, last_error `%s`", id,
                 saw_failed_1 ? "saw failed at attempt 1" : "never saw failed at attempt 1",
                 row.status, row.attempts, row.last_error);
    }
    /* The same reason as without the setting: the job has no handler. */
    if (!strstr(row.last_error, "no_handler") || !strstr(row.last_error, "send-email"))
        fail_msg("send-email job %s retried: expected last_error to contain `no_handler` and "
                 "`send-email`, got `%s`", id, row.last_error);
}

/* ---- 4. readiness tells the truth ----------------------------------------- */

/* Polls the execute worker's and the gateway's /readyz until both answer
 * want or deadline passes; returns nonzero if they did, the last answers in
 * *wk and *gw. */
static int readyz_both(int want, long long deadline, int *wk, int *gw)
{
    do {
        *wk = yt_http_status(g.c.exec.metrics_port, "/readyz");
        *gw = yt_http_status(g.c.port, "/readyz");
        if (*wk == want && *gw == want)
            return 1;
        yt_nap_ms(200);
    } while (yt_now_ms() < deadline);
    return 0;
}

static void test_readiness_follows_the_store(void **state)
{
    static char *const ready_env[] = {"YARD_WORKER_UNREADY_AFTER_S=5", NULL};
    char id[YT_JOB_ID_MAX], got[64];
    start_exec(ready_env);
    int wk = yt_http_status(g.c.exec.metrics_port, "/readyz");
    int gw = yt_http_status(g.c.port, "/readyz");
    if (wk != 200 || gw != 200)
        fail_msg("healthy cluster: expected /readyz 200 from the execute worker and the "
                 "gateway, got %d and %d", wk, gw);

    /* PostgreSQL stays up, but every claim fails. */
    if (yt_sql_exec(g.c.env, "SET lock_timeout = '5s'; ALTER TABLE jobs RENAME TO jobs_broken") !=
        0)
        fail_msg("expected to rename table jobs (error above)");
    int st = yt_job_submit(g.c.port, "{\"type\":\"noop\"}", id);
    if (st != 202)
        fail_msg("with table jobs renamed: expected 202 for a noop job (the accept path does "
                 "not write to PostgreSQL), got %d", st);
    long long deadline = yt_now_ms() + 15000;
    if (!readyz_both(503, deadline, &wk, &gw)) {
        exec_log_problems(4);
        fail_msg("table jobs renamed, claims failing every second: expected /readyz 503 from "
                 "the execute worker and the gateway within 15 s, got %d and %d", wk, gw);
    }

    if (yt_sql_exec(g.c.env, "SET lock_timeout = '5s'; ALTER TABLE jobs_broken RENAME TO jobs") !=
        0)
        fail_msg("expected to rename table jobs_broken back (error above)");
    deadline = yt_now_ms() + 15000;
    if (!readyz_both(200, deadline, &wk, &gw)) {
        exec_log_problems(4);
        fail_msg("table jobs back: expected /readyz 200 from the execute worker and the gateway "
                 "within 15 s, got %d and %d", wk, gw);
    }
    long long left = deadline - yt_now_ms();
    if (yt_job_wait_status(g.c.port, id, "succeeded", left > 1000 ? (int)left : 1000, got,
                           sizeof got) != 0) {
        exec_log_problems(4);
        fail_msg("noop job %s submitted while table jobs was renamed: expected succeeded within "
                 "15 s of the table's return, got %s", id, got);
    }
}

int main(void)
{
    yard_log_init("test_wk_e2e_lifecycle", YARD_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_bad_message_spares_its_neighbours, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_accepted_event_spares_its_neighbours, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_foreign_message_cannot_take_over_a_gateway_job, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_foreign_message_cannot_take_over_a_keyed_job, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_unknown_type_is_dead_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_type_retried_when_asked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_readiness_follows_the_store, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
