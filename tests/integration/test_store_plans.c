/*
 * test_store_plans.c - the hot path's statements are planned once per
 * connection (jobs.h YARD_JOBS_PLAN_ONCE, the audit writer's connection), so
 * the plan made first must stay good as the tables grow. Real PostgreSQL,
 * migrated; the plans are PostgreSQL's own (EXPLAIN EXECUTE of the prepared
 * statements, made while the tables are empty, the worst case).
 *
 *   1. the claim, ingest, start and outcome statements of bus/jobs.c: no
 *      sequential scan, hash or merge join, hashed subplan on jobs or
 *      job_attempts (a nested loop of primary-key probes whatever the size);
 *   2. the audit append's statements (bus/audit.c): the same on audit_log,
 *      and the screen probes the unique event_id index (an EXISTS there was
 *      planned as a bitmap scan per row: 183 us a row at 1,000 jobs/s);
 *   3. after 20,000 jobs and an ANALYZE, the claim still probes the
 *      primary key.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "db.h"
#include "harness.h"
#include "jobs.h"
#include "log.h"
#include "migrate.h"

static yt_env_t *g_env;

/* The plan of EXECUTE name(args) on c, one string (malloc'd), or NULL. */
static char *plan_of(PGconn *c, const char *name, int nargs)
{
    char sql[1024];
    size_t len = (size_t)snprintf(sql, sizeof sql, "EXPLAIN EXECUTE %s", name);
    for (int i = 0; i < nargs; i++)
        len += (size_t)snprintf(sql + len, sizeof sql - len, "%s'{}'", i ? ", " : "(");
    if (nargs > 0)
        snprintf(sql + len, sizeof sql - len, ")");
    PGresult *res = PQexec(c, sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        fprintf(stderr, "EXPLAIN EXECUTE %s failed: %s", name, PQerrorMessage(c));
        PQclear(res);
        return NULL;
    }
    size_t cap = 1;
    for (int r = 0; r < PQntuples(res); r++)
        cap += (size_t)PQgetlength(res, r, 0) + 1;
    char *out = calloc(1, cap);
    for (int r = 0; out && r < PQntuples(res); r++) {
        strcat(out, PQgetvalue(res, r, 0));
        strcat(out, "\n");
    }
    PQclear(res);
    return out;
}

/* Fails when the plan of name reads a whole table or builds a hash of one. */
static void assert_probes_only(PGconn *c, const char *name, int nargs)
{
    static const char *const bad[] = {"Seq Scan on jobs",       "Seq Scan on job_attempts",
                                      "Seq Scan on audit_log",  "Hash Join",
                                      "Hash Right Join",        "Hash Left Join",
                                      "Merge Join",             "hashed SubPlan",
                                      "Bitmap Heap Scan on jobs"};
    char *plan = plan_of(c, name, nargs);
    assert_non_null(plan);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (strstr(plan, bad[i]))
            fail_msg("expected %s to probe indexes only, but its plan has \"%s\":\n%s", name,
                     bad[i], plan);
    free(plan);
}

static PGconn *connect_migrated(void)
{
    PGconn *c = NULL;
    assert_int_equal(yard_db_connect(&c, g_env->pg_dsn, 10), 0);
    return c;
}

static void test_jobs_statements_probe(void **state)
{
    PGconn *c = NULL;
    assert_int_equal(yard_jobs_connect(&c, g_env->pg_dsn, 10, YARD_JOBS_FAST | YARD_JOBS_PLAN_ONCE),
                     0);
    assert_probes_only(c, "yard_claim", 4);
    assert_probes_only(c, "yard_ingest", 21);
    assert_probes_only(c, "yard_start", 21);
    assert_probes_only(c, "yard_finish", 27);
    yard_db_close(c);
}

static void test_audit_statements_probe(void **state)
{
    PGconn *c = connect_migrated();
    assert_int_equal(yard_audit_use_role(c), 0);
    assert_probes_only(c, "yard_audit_screen", 2);
    /* One plain probe of the unique index per row: the EXISTS it replaced
     * planned a bitmap scan per row, 14 times the time (183 us a row). */
    char *screen = plan_of(c, "yard_audit_screen", 2);
    assert_non_null(screen);
    if (!strstr(screen, "Index Scan using audit_log_event_id_key") &&
        !strstr(screen, "Index Only Scan using audit_log_event_id_key"))
        fail_msg("expected the screen to probe audit_log_event_id_key, but:\n%s", screen);
    free(screen);
    assert_probes_only(c, "yard_audit_insert", 10);
    char *plan = plan_of(c, "yard_audit_last", 0);
    assert_non_null(plan);
    if (!strstr(plan, "Index Scan Backward using audit_log_pkey"))
        fail_msg("expected the last row read backward on the primary key, but:\n%s", plan);
    free(plan);
    yard_db_close(c);
}

static void test_claim_plan_after_growth(void **state)
{
    PGconn *c = NULL, *owner = connect_migrated();
    assert_int_equal(yard_jobs_connect(&c, g_env->pg_dsn, 10, YARD_JOBS_FAST | YARD_JOBS_PLAN_ONCE),
                     0);
    /* Planned on the empty table first, then the table grows. */
    char *plan = plan_of(c, "yard_claim", 4);
    assert_non_null(plan);
    free(plan);
    PGresult *res = PQexec(owner, "INSERT INTO jobs (id, queue, type, status, payload, max_attempts, timeout_s) "
                                  "SELECT gen_random_uuid(), 'default', 'noop', 'succeeded', '{}', 3, 60 "
                                  "FROM generate_series(1, 20000); ANALYZE jobs");
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        fail_msg("expected 20,000 jobs inserted, but: %s", PQerrorMessage(owner));
    PQclear(res);
    assert_probes_only(c, "yard_claim", 4);
    plan = plan_of(c, "yard_claim", 4);
    assert_non_null(plan);
    if (!strstr(plan, "jobs_pkey"))
        fail_msg("expected the claim to probe jobs_pkey, but:\n%s", plan);
    free(plan);
    yard_db_close(c);
    yard_db_close(owner);
}

static int setup(void **state)
{
    yard_log_init("test_store_plans", YARD_LOG_WARN);
    if (yt_env_create(&g_env, YT_PG) != 0) {
        fprintf(stderr, "test_store_plans: cannot start PostgreSQL\n");
        return -1;
    }
    PGconn *c = NULL;
    if (yard_db_connect(&c, g_env->pg_dsn, 10) != 0 ||
        yard_migrate_run(c, yard_migrations, yard_migrations_count, NULL) != 0) {
        yard_db_close(c);
        return -1;
    }
    yard_db_close(c);
    return 0;
}

static int teardown(void **state)
{
    yt_env_destroy(g_env);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jobs_statements_probe),
        cmocka_unit_test(test_audit_statements_probe),
        cmocka_unit_test(test_claim_plan_after_growth),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
