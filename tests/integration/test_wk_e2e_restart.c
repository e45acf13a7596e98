/*
 * test_wk_e2e_restart.c - what survives a restart of every process and of
 * nats-server. Real yard-gateway and yard-worker processes, real
 * nats-server and PostgreSQL; each test has a cluster of its own.
 *   5. idempotency across restarts (YARD_RETRY_BASE_MS=60000): job A
 *      succeeded and job B failed once (waiting a minute for its retry) are
 *      submitted with Idempotency-Keys; after the gateway, the workers and
 *      nats-server are stopped and started again, the same submissions get
 *      202 with the first ids and "duplicate":true, and neither job runs
 *      again;
 *   6. no accepted job is lost across a nats-server restart
 *      (YARD_RESCUE_AFTER_S=5, YARD_RESCUE_INTERVAL_S=1): rounds of 1,000
 *      sleep jobs posted in batches of 50 (each with its own idempotency
 *      key, a refused batch retried with the same body) while PostgreSQL
 *      restarts and then nats-server is stopped and started (the sequence
 *      that lost jobs); every accepted job succeeds, none has two
 *      succeeded attempts, and execute_default ends empty. Rounds stop once
 *      one has hit the window (the execute worker failed to claim or record
 *      during the outage);
 *   7. the rescuer: jobs whose JOBS messages vanish are republished and run
 *      once; jobs JOBS still holds are never doubled.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "log.h"
#include "js_internal.h"
#include "yt_http.h"
#include "yt_workers.h"

static struct {
    yt_cluster_t c;
    char *const *env; /* what every process of the test gets */
} g;

static char *const idem_env[] = {"YARD_RETRY_BASE_MS=60000", NULL};
/* AckWait 5 s: acks lost in the outage come back (and are acked without a
 * run) within seconds instead of a minute. */
static char *const rescue_env[] = {"YARD_RESCUE_AFTER_S=5", "YARD_RESCUE_INTERVAL_S=1",
                                   "YARD_JS_ACK_WAIT_S=5", NULL};

static int cluster_up(char *const *env)
{
    memset(&g.c, 0, sizeof g.c);
    g.env = env;
    if (yt_cluster_start(&g.c, env) != 0 ||
        yt_worker_start(&g.c.exec, g.c.env, "execute", NULL, env, 0) != 0 ||
        yt_worker_start(&g.c.sched, g.c.env, "schedule", NULL, env, 0) != 0) {
        yt_cluster_stop(&g.c);
        return -1;
    }
    return 0;
}

static int setup_idem(void **state)
{
    return cluster_up(idem_env);
}

static int setup_rescue(void **state)
{
    return cluster_up(rescue_env);
}

static int teardown(void **state)
{
    yt_cluster_stop(&g.c);
    return 0;
}

/* Waits up to timeout_ms for the gateway's /readyz to answer 200. */
static int wait_gateway_ready(int timeout_ms)
{
    long long deadline = yt_now_ms() + timeout_ms;
    int st;
    while ((st = yt_http_status(g.c.port, "/readyz")) != 200 && yt_now_ms() < deadline)
        yt_nap_ms(50);
    return st;
}

/* ---- 5. idempotency across restarts -------------------------------------- */

/* POSTs body to /v1/jobs with Idempotency-Key: key. On 202 copies the id and
 * sets *duplicate from the answer. Returns the HTTP status or < 0; the body
 * of another answer goes to why (cap bytes). */
static int submit_idem(const char *key, const char *body, char id[YT_JOB_ID_MAX], int *duplicate,
                       char *why, size_t cap)
{
    char hdr[300];
    snprintf(hdr, sizeof hdr, "Idempotency-Key: %s", key);
    const char *const headers[] = {"Content-Type: application/json", hdr, NULL};
    yt_http_resp_t r;
    int st = yt_http_request(&r, g.c.port, "POST", "/v1/jobs", headers, body, strlen(body));
    id[0] = '\0';
    *duplicate = 0;
    why[0] = '\0';
    if (st == 202) {
        json_t *doc = json_loadb(r.body, r.body_len, 0, NULL);
        const char *s = json_string_value(json_object_get(doc, "id"));
        snprintf(id, YT_JOB_ID_MAX, "%s", s ? s : "");
        *duplicate = json_is_true(json_object_get(doc, "duplicate"));
        json_decref(doc);
    }
    if (st > 0)
        snprintf(why, cap, "%s", yt_http_body_excerpt(&r));
    yt_http_resp_free(&r);
    return st;
}

/* Submits again (503 retried for 10 s) and expects 202 with first_id and
 * "duplicate":true. */
static void expect_duplicate(const char *name, const char *key, const char *body,
                             const char *first_id)
{
    char id[YT_JOB_ID_MAX], why[400];
    int dup = 0, st;
    long long deadline = yt_now_ms() + 10000;
    while ((st = submit_idem(key, body, id, &dup, why, sizeof why)) != 202 &&
           yt_now_ms() < deadline)
        yt_nap_ms(200);
    if (st != 202 || strcmp(id, first_id) != 0 || !dup)
        fail_msg("job %s resubmitted after the restarts with Idempotency-Key %s: expected 202 "
                 "with id %s and \"duplicate\":true, got HTTP %d: %s", name, key, first_id, st,
                 why);
}

static void stop_everything_and_restart(void)
{
    yt_cluster_stop_worker(&g.c, &g.c.sched);
    yt_cluster_stop_worker(&g.c, &g.c.exec);
    yt_cluster_stop_worker(&g.c, &g.c.audit);
    if (g.c.gw > 0 && yt_kill_wait(g.c.gw, SIGTERM, 10000) < 0)
        yt_kill_wait(g.c.gw, SIGKILL, 5000);
    g.c.gw = 0;
    if (yt_nats_stop(g.c.env) != 0)
        fail_msg("expected nats-server to stop");
    if (yt_nats_start(g.c.env) != 0)
        fail_msg("expected nats-server to start again on its store");
    g.c.gw = yt_e2e_gateway_start(g.c.env, &g.c.port, g.env);
    if (g.c.gw < 0)
        fail_msg("expected the gateway to start again (log above)");
    if (yt_worker_start(&g.c.audit, g.c.env, "audit", NULL, g.env, 0) != 0 ||
        yt_worker_start(&g.c.exec, g.c.env, "execute", NULL, g.env, 0) != 0 ||
        yt_worker_start(&g.c.sched, g.c.env, "schedule", NULL, g.env, 0) != 0)
        fail_msg("expected the workers to start again (log above)");
    int st = wait_gateway_ready(20000);
    if (st != 200)
        fail_msg("expected the restarted gateway's /readyz 200 within 20 s, got %d", st);
}

#define BODY_A "{\"type\":\"echo\",\"payload\":{\"a\":1}}"
#define BODY_B "{\"type\":\"fail\",\"payload\":{\"retryable\":true,\"message\":\"boom\"}," \
               "\"max_attempts\":3}"

static void test_idempotency_survives_restarts(void **state)
{
    char id_a[YT_JOB_ID_MAX], id_b[YT_JOB_ID_MAX], got[64], why[400];
    int dup = 0;
    int st = submit_idem("k-a", BODY_A, id_a, &dup, why, sizeof why);
    if (st != 202 || dup)
        fail_msg("job A with Idempotency-Key k-a: expected 202, not a duplicate; got HTTP %d: %s",
                 st, why);
    if (yt_job_wait_status(g.c.port, id_a, "succeeded", 10000, got, sizeof got) != 0)
        fail_msg("job A %s: expected succeeded within 10 s, got %s", id_a, got);
    st = submit_idem("k-b", BODY_B, id_b, &dup, why, sizeof why);
    if (st != 202 || dup)
        fail_msg("job B with Idempotency-Key k-b: expected 202, not a duplicate; got HTTP %d: %s",
                 st, why);
    long long n = yt_wait_sql(g.c.env, 1, 10000,
                              "SELECT count(*) FROM jobs WHERE id = '%s' AND status = 'failed'"
                              " AND attempts = 1", id_b);
    if (n != 1)
        fail_msg("job B %s (retryable failure, retry in 60 s): expected status failed with "
                 "attempts 1 within 10 s", id_b);

    stop_everything_and_restart();

    expect_duplicate("A", "k-a", BODY_A, id_a);
    expect_duplicate("B", "k-b", BODY_B, id_b);
    yt_nap_ms(5000);
    char status_a[32] = "", status_b[32] = "";
    yt_sql_text(g.c.env, status_a, sizeof status_a, "SELECT status FROM jobs WHERE id = '%s'",
                id_a);
    long long rows_a = yt_sql_int(g.c.env,
                                  "SELECT count(*) FROM job_attempts WHERE job_id = '%s'", id_a);
    if (strcmp(status_a, "succeeded") != 0 || rows_a != 1) {
        yt_worker_log_tail(g.c.env, &g.c.exec);
        fail_msg("job A %s, 5 s after its duplicate submission: expected succeeded with 1 "
                 "job_attempts row, got `%s` with %lld", id_a, status_a, rows_a);
    }
    yt_sql_text(g.c.env, status_b, sizeof status_b, "SELECT status FROM jobs WHERE id = '%s'",
                id_b);
    long long att_b = yt_sql_int(g.c.env, "SELECT attempts FROM jobs WHERE id = '%s'", id_b);
    long long rows_b = yt_sql_int(g.c.env,
                                  "SELECT count(*) FROM job_attempts WHERE job_id = '%s'", id_b);
    if (att_b != 1 || rows_b != 1) {
        yt_worker_log_tail(g.c.env, &g.c.exec);
        fail_msg("job B %s (next retry due a minute after its first attempt), 5 s after its "
                 "duplicate submission: expected attempts 1 and 1 job_attempts row (no extra "
                 "run), got status `%s`, attempts %lld, %lld rows", id_b, status_b, att_b,
                 rows_b);
    }
}

/* ---- 6. no accepted job is lost across a nats-server restart ------------- */

#define ROUND_JOBS 1000
#define BATCH_JOBS 50
#define ROUND_BATCHES (ROUND_JOBS / BATCH_JOBS)
#define MAX_ROUNDS 4
#define TEST_BUDGET_MS 170000
#define SETTLE_MS 60000
#define DEPTH_DIAG_MS 75000 /* longer than the default AckWait (60 s) */

typedef struct {
    int round;
    int port;
    long long deadline;
    char (*ids)[YT_JOB_ID_MAX]; /* ROUND_JOBS, "" until accepted */
    atomic_int batches_done;
    atomic_int refusals;        /* answers other than a full 202 */
    int failed_batch;           /* -1, or a batch never accepted by the deadline */
    int last_status;
} poster_t;

/* The batch body of batch b of round r: 50 sleep jobs, keys r<r>-<index>. */
static char *batch_body(int r, int b)
{
    size_t cap = BATCH_JOBS * 120 + 32, len = 0;
    char *s = malloc(cap);
    if (!s)
        return NULL;
    len += (size_t)snprintf(s, cap, "{\"jobs\":[");
    for (int i = 0; i < BATCH_JOBS; i++)
        len += (size_t)snprintf(s + len, cap - len,
                                "%s{\"type\":\"sleep\",\"payload\":{\"ms\":5},"
                                "\"idempotency_key\":\"r%d-%d\"}",
                                i ? "," : "", r, b * BATCH_JOBS + i);
    snprintf(s + len, cap - len, "]}");
    return s;
}

/* Posts one batch; copies the id of each job accepted into its slot.
 * Returns the number of jobs of the batch that have an id now, or -1 when
 * the answer was not a 202 (status in *st). */
static int post_batch(poster_t *p, int b, const char *body, int *st)
{
    static const char *const ct[] = {"Content-Type: application/json", NULL};
    yt_http_resp_t r;
    *st = yt_http_request(&r, p->port, "POST", "/v1/jobs/batch", ct, body, strlen(body));
    int have = -1;
    if (*st == 202) {
        json_t *doc = json_loadb(r.body, r.body_len, 0, NULL);
        json_t *results = json_object_get(doc, "results");
        have = 0;
        for (int i = 0; i < BATCH_JOBS; i++) {
            const char *id = json_string_value(json_object_get(json_array_get(results, (size_t)i),
                                                               "id"));
            char *slot = p->ids[b * BATCH_JOBS + i];
            if (id && !slot[0])
                snprintf(slot, YT_JOB_ID_MAX, "%s", id);
            have += slot[0] != '\0';
        }
        json_decref(doc);
    }
    yt_http_resp_free(&r);
    return have;
}

static void *poster_main(void *arg)
{
    poster_t *p = arg;
    for (int b = 0; b < ROUND_BATCHES; b++) {
        char *body = batch_body(p->round, b);
        int st = 0;
        if (!body) {
            p->failed_batch = b;
            break;
        }
        /* A refused batch (or part of one) goes again with the same body:
         * the idempotency keys make it the same jobs. */
        while (post_batch(p, b, body, &st) != BATCH_JOBS) {
            atomic_fetch_add(&p->refusals, 1);
            p->last_status = st;
            if (yt_now_ms() >= p->deadline) {
                p->failed_batch = b;
                break;
            }
            yt_nap_ms(100);
        }
        free(body);
        if (p->failed_batch >= 0)
            break;
        atomic_fetch_add(&p->batches_done, 1);
        yt_nap_ms(20); /* spread the round over the outage */
    }
    return NULL;
}

/* The size of the execute worker's log, or 0. */
static long log_size(void)
{
    char path[400];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s.log", g.c.env->dir, g.c.exec.name);
    return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

/* Counts lines of the execute worker's log after byte from that say a claim
 * or a commit failed. */
static int window_hits(long from)
{
    char path[400], line[4096];
    int hits = 0;
    snprintf(path, sizeof path, "%s/%s.log", g.c.env->dir, g.c.exec.name);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    fseek(f, from, SEEK_SET);
    while (fgets(line, sizeof line, f))
        hits += strstr(line, "cannot record") || strstr(line, "cannot claim");
    fclose(f);
    return hits;
}

/* Prints up to 5 accepted jobs that have not succeeded, with status and
 * attempts. */
static void print_unfinished(const char *arr)
{
    PGresult *res = yt_sql_query(g.c.env,
                                 "SELECT u.id::text, coalesce(j.status, 'missing'),"
                                 " coalesce(j.attempts, 0) FROM unnest(%s) AS u(id)"
                                 " LEFT JOIN jobs j ON j.id = u.id"
                                 " WHERE j.status IS DISTINCT FROM 'succeeded' LIMIT 5", arr);
    for (int i = 0; res && i < PQntuples(res); i++)
        fprintf(stderr, "  not succeeded: %s %s (attempts %s)\n", PQgetvalue(res, i, 0),
                PQgetvalue(res, i, 1), PQgetvalue(res, i, 2));
    PQclear(res);
}

static void test_no_job_lost_across_nats_restarts(void **state)
{
    long long t_start = yt_now_ms();
    int hit_rounds = 0, rounds = 0;
    char (*ids)[YT_JOB_ID_MAX] = calloc(ROUND_JOBS, YT_JOB_ID_MAX);
    assert_non_null(ids);
    for (int r = 0; r < MAX_ROUNDS && hit_rounds == 0; r++) {
        if (r > 0 && yt_now_ms() - t_start > TEST_BUDGET_MS - SETTLE_MS - 20000)
            break;
        rounds++;
        memset(ids, 0, (size_t)ROUND_JOBS * YT_JOB_ID_MAX);
        long from = log_size();
        poster_t p = {.round = r, .port = g.c.port, .ids = ids, .failed_batch = -1,
                      .deadline = yt_now_ms() + 60000};
        atomic_init(&p.batches_done, 0);
        atomic_init(&p.refusals, 0);
        pthread_t th;
        if (pthread_create(&th, NULL, poster_main, &p) != 0)
            fail_msg("expected to start the posting thread");

        /* Each round stops nats-server a little later into the posting. */
        int after = 2 + 3 * r;
        long long wait_until = yt_now_ms() + 10000;
        while (atomic_load(&p.batches_done) < after && p.failed_batch < 0 &&
               yt_now_ms() < wait_until)
            yt_nap_ms(2);
        /* The sequence that lost jobs: PostgreSQL restarts (claims and
         * commits fail, "cannot record ... will run again"), then, while
         * the workers recover, nats-server restarts. */
        int pg_rc = yt_pg_stop(g.c.env);
        yt_nap_ms(1000);
        pg_rc = pg_rc == 0 ? yt_pg_start(g.c.env) : pg_rc;
        yt_nap_ms(1500);
        int stop_rc = yt_nats_stop(g.c.env);
        yt_nap_ms(1500);
        int start_rc = yt_nats_start(g.c.env);
        if (pg_rc != 0)
            fail_msg("round %d: expected PostgreSQL to stop and start again", r + 1);
        pthread_join(th, NULL);
        if (stop_rc != 0 || start_rc != 0)
            fail_msg("round %d: expected nats-server to stop and start again (stop %d, start %d)",
                     r + 1, stop_rc, start_rc);
        if (p.failed_batch >= 0)
            fail_msg("round %d: expected the gateway to accept every batch again after "
                     "nats-server came back, batch %d was still refused after 60 s (last HTTP "
                     "%d)", r + 1, p.failed_batch, p.last_status);

        /* Every accepted job must succeed. */
        char *arr = yt_sql_id_array(ids, ROUND_JOBS);
        assert_non_null(arr);
        long long left = TEST_BUDGET_MS - (yt_now_ms() - t_start);
        int settle = left < SETTLE_MS ? (left > 5000 ? (int)left : 5000) : SETTLE_MS;
        long long ok = yt_wait_sql(g.c.env, ROUND_JOBS, settle,
                                   "SELECT count(*) FROM jobs WHERE id = ANY(%s)"
                                   " AND status = 'succeeded'", arr);
        int hits = window_hits(from);
        hit_rounds += hits > 0;
        fprintf(stderr, "round %d: %d jobs accepted (%d refused answers on the way), outage "
                        "after %d batches, %d claim/commit failures in the worker's log\n",
                r + 1, ROUND_JOBS, atomic_load(&p.refusals), after, hits);
        if (ok != ROUND_JOBS) {
            char counts[256] = "";
            yt_sql_status_counts(g.c.env, ids, ROUND_JOBS, counts, sizeof counts);
            print_unfinished(arr);
            yt_worker_log_tail(g.c.env, &g.c.exec);
            free(arr);
            free(ids);
            fail_msg("round %d: expected all %d accepted jobs succeeded within %d s of the "
                     "nats-server restart, lost %lld (statuses %s)", r + 1, ROUND_JOBS,
                     settle / 1000, ROUND_JOBS - ok, counts);
        }
        long long twice = yt_sql_int(g.c.env,
                                     "SELECT count(*) FROM (SELECT job_id FROM job_attempts"
                                     " WHERE job_id = ANY(%s) AND outcome = 'succeeded'"
                                     " GROUP BY job_id HAVING count(*) > 1) d", arr);
        free(arr);
        if (twice != 0) {
            free(ids);
            fail_msg("round %d: expected at most one succeeded attempt per job, %lld jobs have "
                     "more", r + 1, twice);
        }
    }
    free(ids);
    fprintf(stderr, "%d of %d rounds hit the window (a claim or commit failed during the "
                    "outage)\n", hit_rounds, rounds);

    /* Nothing may be left for execute_default: checked 10 s after the last
     * round (twice AckWait: an ack lost in the outage comes back once); if it is not empty then, polling goes on (within the test's
     * budget) only to say how long it took to drain. */
    uint64_t pending = 0, ack_pending = 0, first_pending = 0, first_ack_pending = 0;
    long long t_end = yt_now_ms(), budget = TEST_BUDGET_MS - (t_end - t_start);
    long long diag_ms = budget > DEPTH_DIAG_MS ? DEPTH_DIAG_MS : budget > 10000 ? budget : 10000;
    long long drained_ms = -1;
    int rc, reported = 0;
    for (;;) {
        rc = yard_js_consumer_depth(&pending, &ack_pending, g.c.js, "JOBS", "execute_default");
        long long now = yt_now_ms();
        if (rc == 0 && pending + ack_pending == 0) {
            drained_ms = now - t_end;
            break;
        }
        if (!reported && now - t_end >= 10000) {
            reported = 1;
            first_pending = pending;
            first_ack_pending = ack_pending;
        }
        if (now - t_end >= diag_ms)
            break;
        yt_nap_ms(200);
    }
    if (!reported && drained_ms >= 0)
        return;
    char after[128];
    if (drained_ms >= 0)
        snprintf(after, sizeof after, "it drained %lld s after the last round", drained_ms / 1000);
    else
        snprintf(after, sizeof after, "still pending %llu, ack pending %llu after %lld s%s",
                 (unsigned long long)pending, (unsigned long long)ack_pending, diag_ms / 1000,
                 rc != 0 ? " (reading the consumer failed, above)" : "");
    fail_msg("after the rounds: expected execute_default to hold nothing within 10 s, got "
             "pending %llu, ack pending %llu; %s", (unsigned long long)first_pending,
             (unsigned long long)first_ack_pending, after);
}

/* ---- 7. the rescuer ---------------------------------------------------- */

#define LOST_JOBS 10
#define KEPT_JOBS 5

/* Jobs whose JOBS messages vanish (purged while no execute worker ran) are
 * republished by the schedule role's rescuer and run once; jobs whose
 * messages JOBS still holds are left alone (never doubled). */
static void test_rescuer_republishes_only_lost_jobs(void **state)
{
    char ids[LOST_JOBS + KEPT_JOBS][YT_JOB_ID_MAX];
    yt_cluster_stop_worker(&g.c, &g.c.exec);
    for (int i = 0; i < LOST_JOBS; i++)
        if (yt_job_submit(g.c.port, "{\"type\":\"noop\"}", ids[i]) != 202)
            fail_msg("expected job %d to be accepted", i);
    char *lost = yt_sql_id_array(ids, LOST_JOBS);
    assert_non_null(lost);
    if (yt_wait_sql(g.c.env, LOST_JOBS, 10000,
                    "SELECT count(*) FROM jobs WHERE id = ANY(%s) AND status = 'queued'",
                    lost) != LOST_JOBS)
        fail_msg("expected the %d jobs recorded as queued", LOST_JOBS);
    /* Lose them: JOBS forgets every message it holds. */
    assert_int_equal(js_PurgeStream(yard_js_ctx(g.c.js), "JOBS", NULL, NULL), NATS_OK);
    for (int i = LOST_JOBS; i < LOST_JOBS + KEPT_JOBS; i++)
        if (yt_job_submit(g.c.port, "{\"type\":\"noop\"}", ids[i]) != 202)
            fail_msg("expected job %d to be accepted", i);
    /* After rescue_after_s (5 s), JOBS holds the kept 5 and one copy of each
     * lost job: 15, never more. */
    uint64_t first = 0, last = 0, count = 0;
    long long deadline = yt_now_ms() + 15000;
    while (yt_now_ms() < deadline) {
        if (yard_js_stream_state(&first, &last, &count, g.c.js, "JOBS") == 0 &&
            count >= LOST_JOBS + KEPT_JOBS)
            break;
        yt_nap_ms(200);
    }
    yt_nap_ms(3000); /* more passes of the rescuer must not add copies */
    assert_int_equal(yard_js_stream_state(&first, &last, &count, g.c.js, "JOBS"), 0);
    if (count != LOST_JOBS + KEPT_JOBS)
        fail_msg("expected JOBS to hold %d messages (5 kept, 10 rescued once), got %llu",
                 LOST_JOBS + KEPT_JOBS, (unsigned long long)count);
    if (yt_worker_start(&g.c.exec, g.c.env, "execute", NULL, g.env, 0) != 0)
        fail_msg("expected the execute worker to start again");
    char *all = yt_sql_id_array(ids, LOST_JOBS + KEPT_JOBS);
    assert_non_null(all);
    long long ok = yt_wait_sql(g.c.env, LOST_JOBS + KEPT_JOBS, 20000,
                               "SELECT count(*) FROM jobs WHERE id = ANY(%s)"
                               " AND status = 'succeeded' AND attempts = 1", all);
    long long rows = yt_sql_int(g.c.env, "SELECT count(*) FROM job_attempts WHERE job_id = ANY(%s)",
                                all);
    free(all);
    free(lost);
    if (ok != LOST_JOBS + KEPT_JOBS || rows != LOST_JOBS + KEPT_JOBS)
        fail_msg("expected all %d jobs succeeded once (one attempt row each), got %lld "
                 "succeeded and %lld attempt rows", LOST_JOBS + KEPT_JOBS, ok, rows);
}

int main(void)
{
    yard_log_init("test_wk_e2e_restart", YARD_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_idempotency_survives_restarts, setup_idem, teardown),
        cmocka_unit_test_setup_teardown(test_no_job_lost_across_nats_restarts, setup_rescue,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_rescuer_republishes_only_lost_jobs, setup_rescue,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
