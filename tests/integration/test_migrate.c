/*
 * test_migrate.c - the migration runner and `yardctl migrate` against a real
 * PostgreSQL.
 *
 * One PostgreSQL serves the whole file (started by the harness, without
 * YT_MIGRATE); every test gets a new empty database of its own, so the tests
 * do not depend on each other's order. Checks: the schema DESIGN.md needs
 * appears with its columns, indexes and rules; a second run changes nothing;
 * a changed migration is refused; a failing migration is rolled back;
 * concurrent runs apply each migration once; status reports; and the real
 * yardctl binary, run twice.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "db.h"
#include "err.h"
#include "harness.h"
#include "jobs.h"
#include "log.h"
#include "migrate.h"

static yt_env_t *g_env;
static int g_db_seq; /* names the per-test databases */

/* One test's database. */
typedef struct {
    char name[32];
    char dsn[640];
    PGconn *conn;
} tdb_t;

/* ---- helpers --------------------------------------------------------------- */

/* Runs sql on c and fails the test, naming the statement, unless it works. */
static PGresult *q(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        fail_msg("expected \"%s\" to succeed, got: %s", sql, PQerrorMessage(c));
    return r;
}

/* The one value sql returns, as a new string (free it). */
static char *q1(PGconn *c, const char *sql)
{
    PGresult *r = q(c, sql);
    if (PQntuples(r) != 1 || PQnfields(r) != 1)
        fail_msg("expected one value from \"%s\", got %d rows", sql, PQntuples(r));
    char *v = strdup(PQgetisnull(r, 0, 0) ? "(null)" : PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

static long q1_long(PGconn *c, const char *sql)
{
    char *v = q1(c, sql);
    long n = atol(v);
    free(v);
    return n;
}

/* Runs sql, which must fail with SQLSTATE state. */
static void q_fails(PGconn *c, const char *sql, const char *state)
{
    PGresult *r = PQexec(c, sql);
    const char *got = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    if (PQresultStatus(r) != PGRES_FATAL_ERROR || !got || strcmp(got, state) != 0)
        fail_msg("expected \"%s\" to fail with SQLSTATE %s, got status %s, SQLSTATE %s",
                 sql, state, PQresStatus(PQresultStatus(r)), got ? got : "none");
    PQclear(r);
}

/* Creates an empty database and connects to it with yard_db_connect. */
static void tdb_open(tdb_t *db)
{
    char sql[96];
    PGconn *admin = NULL;

    snprintf(db->name, sizeof db->name, "t%d", ++g_db_seq);
    assert_int_equal(yard_db_connect(&admin, g_env->pg_dsn, 10), 0);
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", db->name);
    PQclear(q(admin, sql));
    yard_db_close(admin);
    /* In a conninfo string the last dbname wins. */
    snprintf(db->dsn, sizeof db->dsn, "%s dbname=%s", g_env->pg_dsn, db->name);
    db->conn = NULL;
    assert_int_equal(yard_db_connect(&db->conn, db->dsn, 10), 0);
}

static int setup_db(void **state)
{
    tdb_t *db = calloc(1, sizeof *db);
    assert_non_null(db);
    tdb_open(db);
    *state = db;
    return 0;
}

static int teardown_db(void **state)
{
    tdb_t *db = *state;
    if (db)
        yard_db_close(db->conn);
    free(db);
    return 0;
}

static int setup_env(void **state)
{
    yard_log_init("test_migrate", YARD_LOG_WARN);
    if (yt_env_create(&g_env, YT_PG) != 0) {
        fprintf(stderr, "test_migrate: cannot start PostgreSQL\n");
        return -1;
    }
    return 0;
}

static int teardown_env(void **state)
{
    yt_env_destroy(g_env);
    g_env = NULL;
    return 0;
}

/* Runs every embedded migration on c and checks how many were applied. */
static void migrate_expect(PGconn *c, int expected_applied)
{
    int applied = -1;
    assert_int_equal(yard_migrate_run(c, yard_migrations, yard_migrations_count, &applied), 0);
    assert_int_equal(applied, expected_applied);
}

/* Everything about the schema that a migration could change, one line per
 * column, index, constraint, trigger, function and schema_migrations row,
 * sorted: two equal fingerprints mean nothing changed. */
static char *fingerprint(PGconn *c)
{
    return q1(c,
              "SELECT string_agg(x, E'\\n' ORDER BY x) FROM ("
              " SELECT format('column %s.%s %s %s %s', table_name, column_name, data_type,"
              "   is_nullable, column_default) FROM information_schema.columns"
              "   WHERE table_schema = 'public'"
              " UNION ALL SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname = 'public'"
              " UNION ALL SELECT format('constraint %s %s %s', conrelid::regclass, conname,"
              "   pg_get_constraintdef(oid)) FROM pg_constraint"
              "   WHERE connamespace = 'public'::regnamespace"
              " UNION ALL SELECT 'trigger ' || pg_get_triggerdef(oid) FROM pg_trigger"
              "   WHERE NOT tgisinternal"
              " UNION ALL SELECT format('function %s %s', proname, md5(prosrc)) FROM pg_proc"
              "   WHERE pronamespace = 'public'::regnamespace"
              " UNION ALL SELECT format('relation %s %s', oid::regclass, relfilenode) FROM pg_class"
              "   WHERE relnamespace = 'public'::regnamespace"
              " UNION ALL SELECT format('migration %s %s %s %s', version, name, checksum, applied_at)"
              "   FROM schema_migrations"
              ") AS s(x)");
}

/* ---- the schema ------------------------------------------------------------ */

static const struct {
    const char *table;
    const char *columns; /* in order */
} expected_tables[] = {
    {"jobs", "id,queue,type,status,priority,payload,result,last_error,attempts,max_attempts,"
             "timeout_s,run_at,idempotency_key,api_key_id,workflow_id,step_id,schedule_name,"
             "trace_id,created_at,updated_at,started_at,finished_at,cancel_requested_at,js_seq,"
             "traceparent,notify,released_at,replay_budget,replayed_seq,replays,replayed_at,"
             "replayed_by,secrets_sealed"},
    {"job_attempts", "job_id,attempt,started_at,finished_at,outcome,error,worker,duration_ms"},
    {"workflows", "id,name,status,api_key_id,created_at,updated_at,finished_at,traceparent"},
    {"workflow_steps", "workflow_id,step_id,job_id,depends_on,status,result,created_at,updated_at,"
                       "job,position,released_at"},
    {"schedules", "name,cron,timezone,job,enabled,next_run_at,last_run_at,last_job_id,api_key_id,"
                  "created_at,updated_at,catch_up"},
    {"schedule_firings", "schedule_name,fire_at,job_id,fired_at"},
    {"api_keys", "id,name,prefix,key_hash,scopes,rate_per_s,burst,created_at,revoked_at,"
                 "last_used_at"},
    {"audit_log", "seq,event_id,at,event,job_id,workflow_id,actor,detail,prev_hash,hash"},
    {"schema_migrations", "version,name,checksum,applied_at"},
};

/* Every index, as pg_indexes spells its definition. */
static const char *const expected_indexes[] = {
    "CREATE UNIQUE INDEX jobs_pkey ON public.jobs USING btree (id)",
    /* 0015_hot_path: the sweeps' indexes hold the live rows only */
    "CREATE INDEX jobs_queue_live_idx ON public.jobs USING btree (queue, status, "
    "COALESCE(run_at, created_at)) "
    "WHERE (status = ANY (ARRAY['queued'::text, 'scheduled'::text, 'running'::text, "
    "'failed'::text]))",
    "CREATE INDEX jobs_live_updated_idx ON public.jobs USING btree (status, updated_at) "
    "WHERE (status = ANY (ARRAY['queued'::text, 'running'::text, 'failed'::text]))",
    "CREATE INDEX jobs_scheduled_run_at_idx ON public.jobs USING btree (run_at) "
    "WHERE (status = 'scheduled'::text)",
    "CREATE INDEX jobs_workflow_idx ON public.jobs USING btree (workflow_id) "
    "WHERE (workflow_id IS NOT NULL)",
    "CREATE INDEX jobs_finished_at_idx ON public.jobs USING btree (finished_at) "
    "WHERE (status = ANY (ARRAY['succeeded'::text, 'dead'::text, 'cancelled'::text]))",
    "CREATE UNIQUE INDEX job_attempts_pkey ON public.job_attempts USING btree (job_id, attempt)",
    "CREATE UNIQUE INDEX workflows_pkey ON public.workflows USING btree (id)",
    "CREATE INDEX workflows_running_idx ON public.workflows USING btree (updated_at) "
    "WHERE (status = 'running'::text)",
    "CREATE UNIQUE INDEX workflow_steps_pkey ON public.workflow_steps USING btree "
    "(workflow_id, step_id)",
    "CREATE UNIQUE INDEX workflow_steps_job_id_key ON public.workflow_steps USING btree (job_id)",
    "CREATE INDEX workflows_key_created_idx ON public.workflows USING btree "
    "(api_key_id, created_at DESC, id DESC)",
    "CREATE INDEX workflows_created_idx ON public.workflows USING btree "
    "(created_at DESC, id DESC)",
    "CREATE UNIQUE INDEX schedules_pkey ON public.schedules USING btree (name)",
    "CREATE INDEX schedules_due_idx ON public.schedules USING btree (next_run_at) WHERE enabled",
    "CREATE UNIQUE INDEX schedule_firings_pkey ON public.schedule_firings USING btree "
    "(schedule_name, fire_at)",
    "CREATE UNIQUE INDEX schedule_firings_job_id_key ON public.schedule_firings USING btree "
    "(job_id)",
    "CREATE UNIQUE INDEX api_keys_pkey ON public.api_keys USING btree (id)",
    "CREATE UNIQUE INDEX api_keys_prefix_key ON public.api_keys USING btree (prefix)",
    "CREATE UNIQUE INDEX audit_log_pkey ON public.audit_log USING btree (seq)",
    "CREATE UNIQUE INDEX audit_log_event_id_key ON public.audit_log USING btree (event_id)",
    "CREATE INDEX audit_log_job_idx ON public.audit_log USING btree (job_id) "
    "WHERE (job_id IS NOT NULL)",
    "CREATE INDEX audit_log_workflow_idx ON public.audit_log USING btree (workflow_id) "
    "WHERE (workflow_id IS NOT NULL)",
    "CREATE INDEX audit_log_at_idx ON public.audit_log USING brin (at)",
    "CREATE UNIQUE INDEX schema_migrations_pkey ON public.schema_migrations USING btree (version)",
    /* 0011_job_list_indexes */
    "CREATE INDEX jobs_list_idx ON public.jobs USING btree (created_at DESC, id DESC)",
    "CREATE INDEX jobs_list_status_idx ON public.jobs USING btree (status, created_at DESC, id DESC)",
    "CREATE INDEX jobs_list_type_idx ON public.jobs USING btree (type, created_at DESC, id DESC)",
    "CREATE INDEX jobs_list_key_idx ON public.jobs USING btree (api_key_id, created_at DESC, "
    "id DESC) WHERE (api_key_id IS NOT NULL)",
    "CREATE INDEX jobs_list_key_status_idx ON public.jobs USING btree (api_key_id, status, "
    "created_at DESC, id DESC) WHERE (api_key_id IS NOT NULL)",
    "CREATE INDEX jobs_last_error_trgm_idx ON public.jobs USING gin (last_error gin_trgm_ops) "
    "WHERE (last_error IS NOT NULL)",
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static void test_fresh_database_gets_every_table_and_index(void **state)
{
    tdb_t *db = *state;
    char sql[512];

    assert_true(yard_migrations_count >= 5);
    assert_int_equal(q1_long(db->conn, "SELECT count(*) FROM pg_class "
                                       "WHERE relnamespace = 'public'::regnamespace"), 0);
    migrate_expect(db->conn, (int)yard_migrations_count);

    for (size_t i = 0; i < NELEM(expected_tables); i++) {
        snprintf(sql, sizeof sql,
                 "SELECT coalesce(string_agg(column_name, ',' ORDER BY ordinal_position), "
                 "'(no such table)') FROM information_schema.columns "
                 "WHERE table_schema = 'public' AND table_name = '%s'",
                 expected_tables[i].table);
        char *cols = q1(db->conn, sql);
        if (strcmp(cols, expected_tables[i].columns) != 0)
            fail_msg("table %s: expected columns %s, got %s", expected_tables[i].table,
                     expected_tables[i].columns, cols);
        free(cols);
    }
    assert_int_equal(q1_long(db->conn, "SELECT count(*) FROM information_schema.tables "
                                       "WHERE table_schema = 'public'"),
                     (long)NELEM(expected_tables));

    PGresult *r = q(db->conn, "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public'");
    for (size_t i = 0; i < NELEM(expected_indexes); i++) {
        int found = 0;
        for (int row = 0; row < PQntuples(r) && !found; row++)
            found = strcmp(PQgetvalue(r, row, 0), expected_indexes[i]) == 0;
        if (!found)
            fail_msg("expected index \"%s\", not found", expected_indexes[i]);
    }
    assert_int_equal(PQntuples(r), (int)NELEM(expected_indexes));
    PQclear(r);

    /* Every embedded migration is recorded, with its name. */
    r = q(db->conn, "SELECT version, name, length(checksum) FROM schema_migrations ORDER BY 1");
    assert_int_equal(PQntuples(r), (int)yard_migrations_count);
    for (size_t i = 0; i < yard_migrations_count; i++) {
        assert_int_equal(atoi(PQgetvalue(r, (int)i, 0)), yard_migrations[i].version);
        assert_string_equal(PQgetvalue(r, (int)i, 1), yard_migrations[i].name);
        assert_string_equal(PQgetvalue(r, (int)i, 2), "64");
    }
    PQclear(r);
}

/* The rules the schema promises: enumerations, idempotency keys, triggers
 * (and, for jobs, the store's statements). */
static void test_schema_enforces_its_rules(void **state)
{
    tdb_t *db = *state;
    PGconn *c = db->conn;

    migrate_expect(c, (int)yard_migrations_count);

    /* jobs: status, queue and bounds are checked; updated_at follows updates. */
    PQclear(q(c, "INSERT INTO jobs (id, queue, type, max_attempts, timeout_s) VALUES "
                 "('00000000-0000-7000-8000-000000000001', 'default', 'noop', 3, 30)"));
    q_fails(c, "INSERT INTO jobs (id, queue, type, status, max_attempts, timeout_s) VALUES "
               "(gen_random_uuid(), 'default', 'noop', 'lost', 3, 30)", "23514");
    q_fails(c, "INSERT INTO jobs (id, queue, type, max_attempts, timeout_s) VALUES "
               "(gen_random_uuid(), 'a b', 'noop', 3, 30)", "23514");
    q_fails(c, "INSERT INTO jobs (id, queue, type, max_attempts, timeout_s) VALUES "
               "(gen_random_uuid(), 'default', 'jobs.>', 3, 30)", "23514");
    q_fails(c, "INSERT INTO jobs (id, queue, type, max_attempts, timeout_s) VALUES "
               "(gen_random_uuid(), 'default', 'noop', 0, 30)", "23514");
    q_fails(c, "INSERT INTO jobs (id, queue, type, max_attempts, timeout_s, workflow_id) VALUES "
               "(gen_random_uuid(), 'default', 'noop', 3, 30, gen_random_uuid())", "23514");
    /* No trigger stamps updated_at (0015): the store's statements do. */
    PQclear(q(c, "UPDATE jobs SET updated_at = now() - interval '1 hour'"));
    assert_int_equal(yard_jobs_prepare(c, YARD_JOBS_DURABLE), 0);
    assert_int_equal(yard_jobs_track(c, "00000000-0000-7000-8000-000000000001", 0, 5), 0);
    assert_int_equal(q1_long(c, "SELECT count(*) FROM jobs "
                                "WHERE updated_at > now() - interval '1 minute'"), 1);

    /* job_attempts: (job_id, attempt) admits one result; outcomes are checked. */
    const char *attempt = "INSERT INTO job_attempts (job_id, attempt, started_at, outcome) VALUES "
                          "('00000000-0000-7000-8000-000000000001', 1, now(), 'succeeded')";
    PQclear(q(c, attempt));
    q_fails(c, attempt, "23505");
    q_fails(c, "INSERT INTO job_attempts (job_id, attempt, started_at, outcome) VALUES "
               "('00000000-0000-7000-8000-000000000001', 2, now(), 'maybe')", "23514");
    /* No foreign key to jobs (0015): the finish writes both in one statement,
     * retention deletes both. */
    assert_int_equal(q1_long(c, "SELECT count(*) FROM pg_constraint WHERE conrelid = "
                                "'job_attempts'::regclass AND contype = 'f'"), 0);

    /* api_keys: scopes only from the three; prefixes unique. */
    PQclear(q(c, "INSERT INTO api_keys (id, name, prefix, key_hash, scopes) VALUES "
                 "(gen_random_uuid(), 'ops', 'yk_abcdef', sha256('k'), '{submit,read,admin}')"));
    q_fails(c, "INSERT INTO api_keys (id, name, prefix, key_hash, scopes) VALUES "
               "(gen_random_uuid(), 'ops', 'yk_abcdeg', sha256('k'), '{submit,root}')", "23514");
    q_fails(c, "INSERT INTO api_keys (id, name, prefix, key_hash, scopes) VALUES "
               "(gen_random_uuid(), 'ops', 'yk_abcdef', sha256('k'), '{read}')", "23505");

    /* schedules: five cron fields. */
    PQclear(q(c, "INSERT INTO schedules (name, cron, job) VALUES ('nightly', '0 3 * * *', "
                 "'{\"type\":\"noop\"}')"));
    q_fails(c, "INSERT INTO schedules (name, cron, job) VALUES ('bad', '0 3 * *', '{}')", "23514");
    /* ... or an @ name (0007); catch_up is skip or once. */
    PQclear(q(c, "INSERT INTO schedules (name, cron, job, catch_up) VALUES ('hourly', '@hourly', "
                 "'{\"type\":\"noop\"}', 'once')"));
    q_fails(c, "INSERT INTO schedules (name, cron, job) VALUES ('bad', '@often', '{}')", "23514");
    q_fails(c, "INSERT INTO schedules (name, cron, job, catch_up) VALUES ('bad', '@daily', '{}', "
               "'all')", "23514");

    /* workflow_steps: no step depends on itself. */
    PQclear(q(c, "INSERT INTO workflows (id) VALUES ('00000000-0000-7000-8000-0000000000f1')"));
    q_fails(c, "INSERT INTO workflow_steps (workflow_id, step_id, job_id, depends_on) VALUES "
               "('00000000-0000-7000-8000-0000000000f1', 'a', gen_random_uuid(), '{a}')", "23514");

    /* audit_log: event ids are unique; rows can be added, never changed. */
    const char *event = "INSERT INTO audit_log (event_id, event, hash) VALUES "
                        "('ev-1', 'job.queued', sha256('x'))";
    PQclear(q(c, event));
    q_fails(c, event, "23505");
    q_fails(c, "UPDATE audit_log SET event = 'job.failed'", "42501");
    q_fails(c, "DELETE FROM audit_log", "42501");
    q_fails(c, "TRUNCATE audit_log", "42501");
    assert_int_equal(q1_long(c, "SELECT count(*) FROM audit_log"), 1);
}

static void test_second_run_changes_nothing(void **state)
{
    tdb_t *db = *state;

    migrate_expect(db->conn, (int)yard_migrations_count);
    char *before = fingerprint(db->conn);
    migrate_expect(db->conn, 0);
    char *after = fingerprint(db->conn);
    assert_true(strlen(before) > 1000);
    assert_string_equal(before, after);
    free(before);
    free(after);
}

/* The advisory lock is released: no session holds it. */
static void assert_unlocked(PGconn *c)
{
    assert_int_equal(q1_long(c, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"), 0);
}

static void test_changed_migration_is_refused(void **state)
{
    tdb_t *db = *state;
    int applied = 12345;

    migrate_expect(db->conn, (int)yard_migrations_count);

    /* The database's record was tampered with. */
    PQclear(q(db->conn, "UPDATE schema_migrations SET checksum = repeat('0', 64) "
                        "WHERE version = 2"));
    assert_int_equal(yard_migrate_run(db->conn, yard_migrations, yard_migrations_count, &applied),
                     YARD_ECONFIG);
    assert_int_equal(applied, 12345);
    assert_unlocked(db->conn);
    PQclear(q(db->conn, "DELETE FROM schema_migrations WHERE version = 2"));

    /* Migration 1's SQL changed after it was applied: refused before
     * anything is applied, even the now unrecorded version 2. */
    yard_migration_t *edited = calloc(yard_migrations_count, sizeof *edited);
    assert_non_null(edited);
    memcpy(edited, yard_migrations, yard_migrations_count * sizeof *edited);
    edited[0].sql = "SELECT 1; -- edited after it was applied";
    assert_int_equal(yard_migrate_run(db->conn, edited, yard_migrations_count, &applied),
                     YARD_ECONFIG);
    assert_int_equal(applied, 12345);
    assert_unlocked(db->conn);
    assert_int_equal(q1_long(db->conn, "SELECT count(*) FROM schema_migrations"),
                     (long)yard_migrations_count - 1);
    free(edited);

    yard_migrate_status_t st;
    yard_migration_state_t states[64];
    assert_true(yard_migrations_count <= NELEM(states));
    assert_int_equal(yard_migrate_status(&st, states, db->conn, yard_migrations,
                                         yard_migrations_count), 0);
    assert_int_equal(st.pending, 1);
    assert_int_equal(states[1], YARD_MIGRATION_PENDING);
}

/* Runs list plus one extra migration that fails, and checks that the extra
 * migration left nothing behind and the run returned want. */
static void expect_extra_migration_fails(tdb_t *db, const char *sql, int want)
{
    size_t n = yard_migrations_count + 1;
    yard_migration_t *list = calloc(n, sizeof *list);
    int applied = 12345;

    assert_non_null(list);
    memcpy(list, yard_migrations, yard_migrations_count * sizeof *list);
    list[n - 1] = (yard_migration_t){yard_migrations[n - 2].version + 1, "9999_broken", sql};
    assert_int_equal(yard_migrate_run(db->conn, list, n, &applied), want);
    assert_int_equal(applied, 12345);
    assert_unlocked(db->conn);
    assert_int_equal(q1_long(db->conn, "SELECT count(*) FROM schema_migrations"),
                     (long)yard_migrations_count);
    free(list);
}

static void test_failed_migration_is_rolled_back(void **state)
{
    tdb_t *db = *state;

    migrate_expect(db->conn, (int)yard_migrations_count);
    expect_extra_migration_fails(db, "CREATE TABLE half_done (x int);\n"
                                     "SELECT no_such_column FROM jobs;\n", YARD_EPG);
    assert_int_equal(q1_long(db->conn, "SELECT count(*) FROM pg_class "
                                       "WHERE relname = 'half_done'"), 0);
    expect_extra_migration_fails(db, "ROLLBACK; CREATE TABLE escaped (x int);", YARD_ECONFIG);
    /* The connection is usable afterwards and the run completes. */
    migrate_expect(db->conn, 0);
}

static void test_bad_input_is_refused(void **state)
{
    tdb_t *db = *state;
    const yard_migration_t backwards[] = {{2, "0002_b", "SELECT 1"}, {1, "0001_a", "SELECT 1"}};
    const yard_migration_t no_sql[] = {{1, "0001_a", NULL}};
    int applied = 12345;

    assert_int_equal(yard_migrate_run(db->conn, backwards, 2, &applied), YARD_EINVAL);
    assert_int_equal(yard_migrate_run(db->conn, no_sql, 1, &applied), YARD_EINVAL);
    PQclear(q(db->conn, "BEGIN"));
    assert_int_equal(yard_migrate_run(db->conn, yard_migrations, yard_migrations_count, &applied),
                     YARD_EINVAL);
    PQclear(q(db->conn, "ROLLBACK"));
    assert_int_equal(applied, 12345);
    assert_int_equal(q1_long(db->conn, "SELECT count(*) FROM pg_class "
                                       "WHERE relnamespace = 'public'::regnamespace"), 0);
}

static void test_status_reports_where_the_database_stands(void **state)
{
    tdb_t *db = *state;
    yard_migrate_status_t st;
    yard_migration_state_t states[64];

    assert_true(yard_migrations_count <= NELEM(states));
    assert_int_equal(yard_migrate_status(&st, states, db->conn, yard_migrations,
                                         yard_migrations_count), 0);
    assert_int_equal(st.version, 0);
    assert_int_equal(st.pending, yard_migrations_count);
    assert_int_equal(st.applied, 0);
    /* Status only reads. */
    assert_int_equal(q1_long(db->conn, "SELECT count(*) FROM pg_class "
                                       "WHERE relnamespace = 'public'::regnamespace"), 0);

    migrate_expect(db->conn, (int)yard_migrations_count);
    /* A newer build applied a version this one does not know: not an error. */
    PQclear(q(db->conn, "INSERT INTO schema_migrations (version, name, checksum) "
                        "VALUES (999999, '999999_future', 'abc')"));
    migrate_expect(db->conn, 0);
    assert_int_equal(yard_migrate_status(&st, states, db->conn, yard_migrations,
                                         yard_migrations_count), 0);
    assert_int_equal(st.version, 999999);
    assert_int_equal(st.applied, yard_migrations_count);
    assert_int_equal(st.pending, 0);
    assert_int_equal(st.changed, 0);
    assert_int_equal(st.unknown, 1);
    for (size_t i = 0; i < yard_migrations_count; i++)
        assert_int_equal(states[i], YARD_MIGRATION_APPLIED);
}

/* ---- concurrency ----------------------------------------------------------- */

typedef struct {
    PGconn *conn;
    pthread_barrier_t *start;
    int rc;
    int applied;
} racer_t;

static void *racer_run(void *arg)
{
    racer_t *r = arg;
    pthread_barrier_wait(r->start);
    r->rc = yard_migrate_run(r->conn, yard_migrations, yard_migrations_count, &r->applied);
    return NULL;
}

#define RACERS 2
#define RACE_ROUNDS 4

static void test_concurrent_runs_apply_each_migration_once(void **state)
{
    tdb_t *first = *state;

    for (int round = 0; round < RACE_ROUNDS; round++) {
        tdb_t fresh;
        tdb_t *db = first;
        racer_t racers[RACERS];
        pthread_t threads[RACERS];
        pthread_barrier_t start;

        if (round > 0) {
            tdb_open(&fresh);
            db = &fresh;
        }
        pthread_barrier_init(&start, NULL, RACERS);
        for (int i = 0; i < RACERS; i++) {
            racers[i] = (racer_t){NULL, &start, 1, -1};
            assert_int_equal(yard_db_connect(&racers[i].conn, db->dsn, 10), 0);
        }
        for (int i = 0; i < RACERS; i++)
            assert_int_equal(pthread_create(&threads[i], NULL, racer_run, &racers[i]), 0);
        int total = 0;
        for (int i = 0; i < RACERS; i++) {
            pthread_join(threads[i], NULL);
            if (racers[i].rc != 0)
                fail_msg("round %d: racer %d expected 0, got %s", round, i,
                         yard_errname(racers[i].rc));
            total += racers[i].applied;
            yard_db_close(racers[i].conn);
        }
        pthread_barrier_destroy(&start);
        if (total != (int)yard_migrations_count)
            fail_msg("round %d: expected %zu migrations applied in all, got %d", round,
                     yard_migrations_count, total);
        assert_int_equal(q1_long(db->conn, "SELECT count(DISTINCT version) FROM schema_migrations"),
                         (long)yard_migrations_count);
        assert_int_equal(q1_long(db->conn, "SELECT count(*) FROM schema_migrations"),
                         (long)yard_migrations_count);
        assert_unlocked(db->conn);
        if (round > 0)
            yard_db_close(fresh.conn);
    }
}

/* ---- yardctl --------------------------------------------------------------- */

/* Runs `yardctl args...` with YARD_PG_DSN=dsn; fills out and err with what it
 * printed and returns its exit status (-1 if a signal ended it). */
static int run_yardctl(char *out, size_t outcap, char *err, size_t errcap, const char *dsn,
                       const char *arg1, const char *arg2)
{
    /* dsn names a database of g_env's server; yt_run_program sets its own. */
    yt_env_t env = *g_env;
    snprintf(env.pg_dsn, sizeof env.pg_dsn, "%s", dsn);
    const char *args[] = {arg1, arg2, NULL};
    return yt_run_program(&env, "yardctl", args, out, outcap, err, errcap);
}

static void expect_output(const char *what, const char *text, const char *want)
{
    if (!strstr(text, want))
        fail_msg("expected %s to contain \"%s\", got:\n%s", what, want, text);
}

static void test_yardctl_migrate(void **state)
{
    tdb_t *db = *state;
    char out[8192], err[8192], want[128];
    int last = yard_migrations[yard_migrations_count - 1].version;
    int rc;

    rc = run_yardctl(out, sizeof out, err, sizeof err, db->dsn, "migrate", NULL);
    if (rc != 0)
        fail_msg("expected yardctl migrate to exit 0, got %d; stderr:\n%s", rc, err);
    snprintf(want, sizeof want, "applied %zu migrations (now at version %d)\n",
             yard_migrations_count, last);
    expect_output("the first run's stdout", out, want);

    rc = run_yardctl(out, sizeof out, err, sizeof err, db->dsn, "migrate", NULL);
    if (rc != 0)
        fail_msg("expected a second yardctl migrate to exit 0, got %d; stderr:\n%s", rc, err);
    snprintf(want, sizeof want, "up to date at version %d\n", last);
    expect_output("the second run's stdout", out, want);
    assert_int_equal(q1_long(db->conn, "SELECT count(*) FROM schema_migrations"),
                     (long)yard_migrations_count);

    rc = run_yardctl(out, sizeof out, err, sizeof err, db->dsn, "migrate", "--status");
    assert_int_equal(rc, 0);
    expect_output("migrate --status", out, yard_migrations[0].name);
    snprintf(want, sizeof want, "database at version %d: %zu applied, 0 pending", last,
             yard_migrations_count);
    expect_output("migrate --status", out, want);

    /* A changed migration makes it fail, naming the migration. */
    PQclear(q(db->conn, "UPDATE schema_migrations SET checksum = 'x' WHERE version = 1"));
    rc = run_yardctl(out, sizeof out, err, sizeof err, db->dsn, "migrate", NULL);
    assert_int_equal(rc, 1);
    expect_output("stderr of a run against a changed migration", err, yard_migrations[0].name);

    /* No server: exit 1, and the password stays out of the log. */
    char dsn[128];
    snprintf(dsn, sizeof dsn, "postgresql://yard:s3cret-pw@127.0.0.1:%d/yard?connect_timeout=3",
             yt_free_port());
    rc = run_yardctl(out, sizeof out, err, sizeof err, dsn, "migrate", NULL);
    assert_int_equal(rc, 1);
    expect_output("stderr without a server", err, "cannot connect to PostgreSQL");
    if (strstr(err, "s3cret-pw") || strstr(out, "s3cret-pw"))
        fail_msg("expected the password to stay out of the output, got:\n%s%s", out, err);

    /* Usage errors exit 2 with a hint. */
    rc = run_yardctl(out, sizeof out, err, sizeof err, db->dsn, "migrat", NULL);
    assert_int_equal(rc, 2);
    expect_output("stderr of an unknown command", err, "Did you mean 'migrate'?");
    rc = run_yardctl(out, sizeof out, err, sizeof err, db->dsn, "help", "migrate");
    assert_int_equal(rc, 0);
    expect_output("yardctl help migrate", out, "usage: yardctl migrate [--status]");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fresh_database_gets_every_table_and_index,
                                        setup_db, teardown_db),
        cmocka_unit_test_setup_teardown(test_schema_enforces_its_rules, setup_db, teardown_db),
        cmocka_unit_test_setup_teardown(test_second_run_changes_nothing, setup_db, teardown_db),
        cmocka_unit_test_setup_teardown(test_changed_migration_is_refused, setup_db, teardown_db),
        cmocka_unit_test_setup_teardown(test_failed_migration_is_rolled_back, setup_db,
                                        teardown_db),
        cmocka_unit_test_setup_teardown(test_bad_input_is_refused, setup_db, teardown_db),
        cmocka_unit_test_setup_teardown(test_status_reports_where_the_database_stands, setup_db,
                                        teardown_db),
        cmocka_unit_test_setup_teardown(test_concurrent_runs_apply_each_migration_once, setup_db,
                                        teardown_db),
        cmocka_unit_test_setup_teardown(test_yardctl_migrate, setup_db, teardown_db),
    };
    return cmocka_run_group_tests(tests, setup_env, teardown_env);
}
