/*
 * store_1m.c - how fast the store's reads and hot-path statements are with
 * 1,000,000 jobs: a page of GET /v1/jobs per filter, GET /v1/jobs/{id}, the
 * queue ages, the rescuer's sweep, and the execute worker's claim (a read)
 * and finish (256 outcomes, half of them new rows).
 *
 * A measurement, not a test (nothing here passes or fails on a time). Build
 * and run it by hand:
 *
 *   make build/tests/bench/store_1m
 *   YARD_SRC_DIR=$PWD build/tests/bench/store_1m [rows] [runs]
 *
 * It starts a throwaway PostgreSQL (the test harness; fsync off, which does
 * not matter for reads), applies the migrations, writes `rows` jobs (default
 * 1,000,000) with generate_series: 8 queues, 20 types, 50 API keys (blocks
 * of 100 consecutive jobs, so keys and statuses are independent), 30 days
 * of created_at, statuses mostly succeeded with some failed/dead carrying
 * errors. Then, per filter, it reads the first page (limit 50) and the page
 * after it through yard_jobs_list (the gateway's own code) `runs` times
 * (default 300) and prints p50, p99 and max, and prints each query's plan
 * (auto_explain with ANALYZE, sent to this client as a notice). First it
 * prints what those indexes cost writers (insert_cost). Last, the same
 * for the other statements (store_statements), through bus/jobs.c's own
 * functions, each with its plan.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db.h"
#include "harness.h"
#include "jobs.h"
#include "jobs_list.h"
#include "log.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void print_notice(void *arg, const char *message)
{
    int *show = arg;
    if (*show)
        fputs(message, stdout);
}

/* The next_cursor of a page, copied into out ("" when none). */
static void next_cursor(const char *doc, char *out, size_t cap)
{
    const char *p = strstr(doc, "\"next_cursor\":\"");
    out[0] = '\0';
    if (p) {
        p += 15;
        size_t n = strcspn(p, "\"");
        snprintf(out, cap, "%.*s", (int)(n < cap ? n : cap - 1), p);
    }
}

/* What 0011's indexes cost writers: 50,000 jobs inserted 256 per statement
 * (like the audit role's ingest), then each moved to running and to
 * succeeded (like a worker), with and without them. Prints both times;
 * leaves the table empty with every index in place. Returns 0 or -1. */
static int insert_cost(PGconn *c)
{
    static const char *const drop =
        "DROP INDEX jobs_list_idx, jobs_list_status_idx, jobs_list_type_idx, jobs_list_key_idx,"
        " jobs_list_key_status_idx, jobs_last_error_trgm_idx";
    char sql[1024];
    double ms[2];
    for (int with = 1; with >= 0; with--) {
        if (yard_db_exec(c, "BEGIN") != 0 || (!with && yard_db_exec(c, drop) != 0))
            return -1;
        long long t0 = yt_now_ms();
        for (int b = 0; b < 50000 / 250; b++) {
            snprintf(sql, sizeof sql,
                     "INSERT INTO jobs (id, queue, type, status, payload, max_attempts, timeout_s,"
                     " api_key_id, created_at) SELECT gen_random_uuid(), 'q' || (i %% 8),"
                     " 't' || (i %% 20), 'queued', '{}', 3, 60, gen_random_uuid(),"
                     " now() + i * interval '1 ms' FROM generate_series(%d, %d) AS i",
                     b * 250, b * 250 + 249);
            if (yard_db_exec(c, sql) != 0)
                return -1;
        }
        if (yard_db_exec(c, "UPDATE jobs SET status = 'running', attempts = 1") != 0 ||
            yard_db_exec(c, "UPDATE jobs SET status = 'succeeded', result = '{}',"
                            " finished_at = now()") != 0)
            return -1;
        ms[with] = (double)(yt_now_ms() - t0);
        if (yard_db_exec(c, "ROLLBACK") != 0)
            return -1;
    }
    printf("write cost: 50,000 jobs inserted, then run and finished: %.0f ms with 0011's "
           "indexes, %.0f ms without (x%.2f)\n", ms[1], ms[0], ms[1] / ms[0]);
    return 0;
}

/* ---- the other statements ------------------------------------------------- */

#define STORE_BATCH 256

/* Ids, payloads and key ids of the generated table (main's INSERT). */
static void row_id(char out[37], long i)
{
    snprintf(out, 37, "%08lx-0000-7000-8000-%012lx", i, i);
}

typedef struct {
    char id[STORE_BATCH][37], key[STORE_BATCH][37], type[STORE_BATCH][8],
        queue[STORE_BATCH][8], payload[STORE_BATCH][32];
    yard_envelope_t env[STORE_BATCH];
    const yard_envelope_t *envs[STORE_BATCH];
    uint64_t seqs[STORE_BATCH];
    yard_job_attempt_t recs[STORE_BATCH];
} store_batch_t;

/* A worker's batch: the first half jobs the table has (as their messages
 * would carry them), the second half new ids beyond it; outcomes succeeded. */
static void store_batch_make(store_batch_t *b, long rows)
{
    for (int k = 0; k < STORE_BATCH; k++) {
        /* The existing half from the middle of the table. */
        long i = k < STORE_BATCH / 2 ? rows / 2 + k : rows + 1 + k;
        yard_envelope_t *e = &b->env[k];
        row_id(b->id[k], i);
        snprintf(b->key[k], sizeof b->key[k], "00000000-0000-4000-8000-%012lx", (i / 100) % 50);
        snprintf(b->type[k], sizeof b->type[k], "t%ld", i % 20);
        snprintf(b->queue[k], sizeof b->queue[k], "q%ld", i % 8);
        snprintf(b->payload[k], sizeof b->payload[k], "{\"n\": %ld}", i);
        memset(e, 0, sizeof *e);
        e->id = (yard_str_t){b->id[k], 36};
        e->type = (yard_str_t){b->type[k], strlen(b->type[k])};
        e->queue = (yard_str_t){b->queue[k], strlen(b->queue[k])};
        e->payload = (yard_str_t){b->payload[k], strlen(b->payload[k])};
        e->api_key_id = (yard_str_t){b->key[k], 36};
        e->max_attempts = 5;
        e->timeout_s = 60;
        e->created_at_ms = 1767225600000LL + i;
        b->envs[k] = e;
        b->seqs[k] = (uint64_t)i;
        b->recs[k] = (yard_job_attempt_t){e, (uint64_t)i, b->id[k], 1, 1767225600000LL, 1,
                                          "succeeded", YARD_JOB_SUCCEEDED, "{\"ok\":true}", NULL};
    }
}

/* Runs statement k of store_statements once; returns 0 or -1. */
static int store_run(PGconn *c, int k, store_batch_t *b)
{
    static const char get_sql[] =
        "SELECT " YARD_JOBS_JSON_SQL "::text FROM jobs WHERE id = $1::uuid"
        " AND ($2::uuid IS NULL OR api_key_id = $2::uuid)";
    static const char *const queues[8] = {"q0", "q1", "q2", "q3", "q4", "q5", "q6", "q7"};
    char id[37];
    row_id(id, 777777);
    switch (k) {
    case 0:
    case 1: {
        const char *params[2] = {id, k == 1 ? "00000000-0000-4000-8000-000000000007" : NULL};
        PGresult *r = PQexecParams(c, get_sql, 2, NULL, params, NULL, NULL, 0);
        int ok = PQresultStatus(r) == PGRES_TUPLES_OK;
        PQclear(r);
        return ok ? 0 : -1;
    }
    case 2: {
        double ages[8];
        return yard_jobs_queued_age(c, queues, 8, ages) == 0 ? 0 : -1;
    }
    case 3: {
        yard_jobs_stale_t st = {0};
        int rc = yard_jobs_stale(&st, c, 300, 500);
        yard_jobs_stale_free(&st);
        return rc == 0 ? 0 : -1;
    }
    case 4: {
        int attempt[STORE_BATCH];
        return yard_jobs_claim(c, b->envs, b->seqs, STORE_BATCH, attempt) == 0 ? 0 : -1;
    }
    default:
        /* Rolled back: every run meets the same table. */
        if (yard_db_exec(c, "BEGIN") != 0)
            return -1;
        int rc = yard_jobs_finish(c, b->recs, STORE_BATCH, "bench:1");
        return yard_db_exec(c, "ROLLBACK") == 0 && rc == 0 ? 0 : -1;
    }
}

/* Times and explains the store's statements besides the list. */
static int store_statements(PGconn *c, long rows, int runs, double *ms, int *show_plans)
{
    static const char *const names[] = {
        "GET /v1/jobs/{id} (admin)",
        "GET /v1/jobs/{id} (a key's)",
        "queued age of 8 queues (gauges)",
        "rescuer: 500 stale live jobs",
        "claim: 256 messages (a read)",
        "finish: 256 outcomes, 128 new rows",
    };
    store_batch_t *b = calloc(1, sizeof *b);
    if (!b || yard_jobs_prepare(c, YARD_JOBS_DURABLE) != 0)
        return -1;
    store_batch_make(b, rows);
    /* Timed without auto_explain's analysis, explained after. */
    if (yard_db_exec(c, "SET auto_explain.log_min_duration = -1") != 0)
        return -1;
    printf("\n%-40s %9s %9s %9s\n", "statement", "p50 ms", "p99 ms", "max ms");
    int n = (int)(sizeof names / sizeof names[0]);
    for (int k = 0; k < n; k++) {
        for (int r = 0; r < runs; r++) {
            struct timespec t0, t1;
            clock_gettime(CLOCK_MONOTONIC, &t0);
            if (store_run(c, k, b) != 0)
                return -1;
            clock_gettime(CLOCK_MONOTONIC, &t1);
            ms[r] = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
        }
        qsort(ms, (size_t)runs, sizeof *ms, cmp_double);
        printf("%-40s %9.2f %9.2f %9.2f\n", names[k], ms[runs / 2], ms[(runs * 99) / 100],
               ms[runs - 1]);
    }
    printf("\nPlans (EXPLAIN ANALYZE, through auto_explain):\n");
    if (yard_db_exec(c, "SET auto_explain.log_min_duration = 0") != 0)
        return -1;
    *show_plans = 1;
    for (int k = 0; k < n; k++) {
        printf("\n-- %s\n", names[k]);
        if (store_run(c, k, b) != 0)
            return -1;
    }
    *show_plans = 0;
    free(b);
    return 0;
}

int main(int argc, char **argv)
{
    long rows = argc > 1 ? atol(argv[1]) : 1000000;
    int runs = argc > 2 ? atoi(argv[2]) : 300;
    yt_env_t *env = NULL;
    PGconn *c = NULL;
    int show_plans = 0;
    char sql[4096];
    yard_log_init("store_1m", YARD_LOG_WARN);
    if (yt_env_create(&env, YT_PG | YT_MIGRATE) != 0 || yard_db_connect(&c, env->pg_dsn, 10) != 0)
        return 1;
    PQsetNoticeProcessor(c, print_notice, &show_plans);
    if (insert_cost(c) != 0)
        return 1;
    long long t0 = yt_now_ms();
    snprintf(sql, sizeof sql,
             "INSERT INTO jobs (id, queue, type, status, payload, last_error, attempts,"
             " max_attempts, timeout_s, api_key_id, created_at, finished_at)"
             " SELECT (lpad(to_hex(i), 8, '0') || '-0000-7000-8000-' || lpad(to_hex(i), 12, '0'))::uuid,"
             "  'q' || (i %% 8), 't' || (i %% 20),"
             "  CASE WHEN i %% 100 < 80 THEN 'succeeded' WHEN i %% 100 < 88 THEN 'failed'"
             "       WHEN i %% 100 < 93 THEN 'dead' WHEN i %% 100 < 97 THEN 'queued' ELSE 'running' END,"
             "  jsonb_build_object('n', i),"
             "  CASE WHEN i %% 100 BETWEEN 80 AND 92 THEN (ARRAY['connection refused by upstream',"
             "       'timeout after 30 s', 'smtp: 550 mailbox unavailable', 'disk quota exceeded',"
             "       'exit status 2'])[1 + i %% 5] || ' #' || i END,"
             "  1 + i %% 3, 5, 60,"
             "  ('00000000-0000-4000-8000-' || lpad(to_hex((i / 100) %% 50), 12, '0'))::uuid,"
             "  timestamptz '2026-01-01' + (i * interval '2592 milliseconds'),"
             "  timestamptz '2026-01-01' + (i * interval '2592 milliseconds') + interval '1 second'"
             " FROM generate_series(1, %ld) AS i", rows);
    if (yard_db_exec(c, sql) != 0 || yard_db_exec(c, "VACUUM ANALYZE jobs") != 0)
        return 1;
    printf("%ld jobs written and analyzed in %.1f s\n", rows, (yt_now_ms() - t0) / 1000.0);

    static const char owner[] = "00000000-0000-4000-8000-000000000007";
    static const struct {
        const char *name;
        yard_jobs_filter_t f;
    } cases[] = {
        {"no filter", {0}},
        {"status=dead", {.status = "dead"}},
        {"queue=q3", {.queue = "q3"}},
        {"status=failed&queue=q3", {.status = "failed", .queue = "q3"}},
        {"type=t7", {.type = "t7"}},
        {"queue=q5&type=t13&status=succeeded", {.queue = "q5", .type = "t13", .status = "succeeded"}},
        {"error=quota", {.error = "quota"}},
        {"status=dead&error=refused", {.status = "dead", .error = "refused"}},
        {"since/until (one day)", {.since = "2026-01-10T00:00:00Z", .until = "2026-01-11T00:00:00Z"}},
        {"owner (non-admin key)", {.owner = owner}},
        {"owner&status=failed", {.owner = owner, .status = "failed"}},
        {"owner&status=cancelled (no match)", {.owner = owner, .status = "cancelled"}},
        {"error=#777781 (one match)", {.error = "#777781"}},
        {"status=failed&queue=q3&type=t4 (none)", {.status = "failed", .queue = "q3", .type = "t4"}},
    };
    double *ms = calloc((size_t)runs, sizeof *ms);
    printf("%-40s %9s %9s %9s   (page 2 via cursor: p50 p99)\n", "filter (limit 50)", "p50 ms",
           "p99 ms", "max ms");
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        double p2[2] = {0, 0};
        for (int page = 0; page < 2; page++) {
            yard_jobs_filter_t f = cases[k].f;
            char cursor[YARD_JOBS_CURSOR_MAX + 1] = "";
            if (page == 1) {
                char *doc = NULL;
                if (yard_jobs_list(&doc, c, &f) != 0)
                    return 1;
                next_cursor(doc, cursor, sizeof cursor);
                free(doc);
                if (!cursor[0])
                    break;
                f.cursor = cursor;
            }
            for (int r = 0; r < runs; r++) {
                char *doc = NULL;
                struct timespec a, b;
                clock_gettime(CLOCK_MONOTONIC, &a);
                if (yard_jobs_list(&doc, c, &f) != 0)
                    return 1;
                clock_gettime(CLOCK_MONOTONIC, &b);
                ms[r] = (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6;
                free(doc);
            }
            qsort(ms, (size_t)runs, sizeof *ms, cmp_double);
            if (page == 0)
                printf("%-40s %9.2f %9.2f %9.2f", cases[k].name, ms[runs / 2],
                       ms[(runs * 99) / 100], ms[runs - 1]);
            else
                p2[0] = ms[runs / 2], p2[1] = ms[(runs * 99) / 100];
        }
        printf("   (%.2f %.2f)\n", p2[0], p2[1]);
    }
    printf("\nPlans (EXPLAIN ANALYZE of the first page of each filter):\n");
    yard_db_exec(c, "LOAD 'auto_explain'; SET auto_explain.log_min_duration = 0;"
                    " SET auto_explain.log_analyze = on; SET auto_explain.log_buffers = on;"
                    " SET auto_explain.log_timing = on; SET auto_explain.log_level = notice;"
                    " SET auto_explain.log_triggers = on");
    show_plans = 1;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char *doc = NULL;
        printf("\n-- %s\n", cases[k].name);
        if (yard_jobs_list(&doc, c, &cases[k].f) == 0)
            free(doc);
    }
    /* And a page after the first: the cursor is an index condition. */
    {
        yard_jobs_filter_t f = {.status = "dead"};
        char *doc = NULL, cursor[YARD_JOBS_CURSOR_MAX + 1] = "";
        show_plans = 0;
        if (yard_jobs_list(&doc, c, &f) == 0) {
            next_cursor(doc, cursor, sizeof cursor);
            free(doc);
        }
        f.cursor = cursor;
        show_plans = 1;
        printf("\n-- status=dead, page 2 (cursor)\n");
        if (cursor[0] && yard_jobs_list(&doc, c, &f) == 0)
            free(doc);
    }
    show_plans = 0;
    if (store_statements(c, rows, runs, ms, &show_plans) != 0) {
        fprintf(stderr, "store_1m: a statement failed (above)\n");
        return 1;
    }
    free(ms);
    yard_db_close(c);
    yt_env_destroy(env);
    return 0;
}
