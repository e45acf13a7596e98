/*
 * jobs_list_p99.c - how fast a page of GET /v1/jobs is with 1,000,000 jobs.
 *
 * A measurement, not a test (nothing here passes or fails on a time). Build
 * and run it by hand:
 *
 *   make build/tests/bench/jobs_list_p99
 *   YARD_SRC_DIR=$PWD build/tests/bench/jobs_list_p99 [rows] [runs]
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
 * prints what those indexes cost writers (insert_cost).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db.h"
#include "harness.h"
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

int main(int argc, char **argv)
{
    long rows = argc > 1 ? atol(argv[1]) : 1000000;
    int runs = argc > 2 ? atoi(argv[2]) : 300;
    yt_env_t *env = NULL;
    PGconn *c = NULL;
    int show_plans = 0;
    char sql[4096];
    yard_log_init("jobs_list_p99", YARD_LOG_WARN);
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
                    " SET auto_explain.log_timing = on; SET auto_explain.log_level = notice");
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
    free(ms);
    yard_db_close(c);
    yt_env_destroy(env);
    return 0;
}
