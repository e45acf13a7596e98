/*
 * store.c - batched, idempotent PostgreSQL writes of the workers (store.h).
 *
 * Statements are prepared once per connection and are set-based: a batch
 * of jobs travels as a few PostgreSQL arrays and is written by one statement
 * (unnest), so it is written whole or not at all, in one round trip, without
 * paying per-row statement overhead.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "err.h"
#include "log.h"
#include "store.h"

#define STORE_MAX_PARAMS 16

/* Job rows from arrays, one element per job ($1 id, $2 queue, $3 type,
 * $4 priority, $5 payload, $6 max_attempts, $7 timeout_s, $8 run_at ms,
 * $9 idempotency key, $10 api key id, $11 trace id, $12 created_at ms,
 * $13 status, $14 attempts), in id order. One statement per batch: set-based
 * writes cost a fraction of one statement per row. */
#define STORE_JOBS_INSERT                                                                      \
    "INSERT INTO jobs (id, queue, type, status, priority, payload, max_attempts, timeout_s,"    \
    " run_at, idempotency_key, api_key_id, trace_id, created_at, attempts, started_at)"        \
    " SELECT u.id, u.queue, u.type, u.status, u.priority, u.payload::jsonb, u.max_attempts,"   \
    " u.timeout_s, CASE WHEN u.run_at > 0 THEN to_timestamp(u.run_at / 1000.0) END, u.idem,"   \
    " u.key, u.trace, to_timestamp(u.created / 1000.0), u.attempts,"                           \
    " CASE WHEN u.status = 'running' THEN now() END"                                           \
    " FROM unnest($1::uuid[], $2::text[], $3::text[], $4::smallint[], $5::text[], $6::int[],"  \
    " $7::int[], $8::bigint[], $9::text[], $10::uuid[], $11::text[], $12::bigint[],"          \
    " $13::text[], $14::int[]) AS u(id, queue, type, priority, payload, max_attempts,"         \
    " timeout_s, run_at, idem, key, trace, created, status, attempts) ORDER BY u.id"

static const struct {
    const char *name, *sql;
} store_stmts[] = {
    {"wk_ingest", STORE_JOBS_INSERT " ON CONFLICT (id) DO UPDATE SET status = 'queued'"
                                    " WHERE jobs.status = 'scheduled' AND EXCLUDED.status = 'queued'"},
    /* A claim returns, per job, the attempt number to run (finished attempts
     * + 1), or 0 when the job must not run: it is final, or its cancel was
     * requested (then it becomes cancelled here). Attempts count only
     * finished runs, so a crash or a drain hand-back does not use one up. */
    {"wk_claim",
     STORE_JOBS_INSERT " ON CONFLICT (id) DO UPDATE SET"
                       " status = CASE WHEN jobs.cancel_requested_at IS NULL THEN 'running'"
                       " ELSE 'cancelled' END,"
                       " finished_at = CASE WHEN jobs.cancel_requested_at IS NULL"
                       " THEN jobs.finished_at ELSE now() END,"
                       " started_at = coalesce(jobs.started_at, now())"
                       " WHERE jobs.status IN ('queued', 'scheduled', 'failed', 'running')"
                       " RETURNING jobs.id::text, CASE WHEN jobs.status = 'running'"
                       " THEN jobs.attempts + 1 ELSE 0 END"},
    /* $15: the reason. */
    {"wk_dead", STORE_JOBS_INSERT " ON CONFLICT (id) DO UPDATE SET status = 'dead',"
                                  " attempts = GREATEST(jobs.attempts, EXCLUDED.attempts),"
                                  " last_error = $15, finished_at = now()"
                                  " WHERE jobs.status NOT IN ('succeeded', 'dead', 'cancelled')"},
    /* Outcomes: $1 id, $2 attempt, $3 started ms, $4 outcome, $5 error,
     * $6 duration ms, $7 state, $8 result (arrays), $9 worker. */
    {"wk_finish",
     "WITH u AS (SELECT * FROM unnest($1::uuid[], $2::int[], $3::bigint[], $4::text[],"
     " $5::text[], $6::bigint[], $7::text[], $8::text[]) AS u(id, attempt, started, outcome,"
     " error, duration, state, result) ORDER BY id),"
     " a AS (INSERT INTO job_attempts (job_id, attempt, started_at, outcome, error, worker,"
     " duration_ms) SELECT id, attempt, to_timestamp(started / 1000.0), outcome, error, $9,"
     " GREATEST(duration, 0) FROM u ON CONFLICT (job_id, attempt) DO NOTHING)"
     " UPDATE jobs j SET status = u.state, result = u.result::jsonb,"
     " last_error = CASE WHEN u.state = 'succeeded' THEN NULL ELSE u.error END,"
     " attempts = GREATEST(j.attempts, u.attempt),"
     " finished_at = CASE WHEN u.state IN ('succeeded', 'dead', 'cancelled') THEN now() END"
     " FROM u WHERE j.id = u.id AND j.status NOT IN ('succeeded', 'dead', 'cancelled')"},
};

static const char *const state_names[] = {"succeeded", "failed", "dead", "cancelled"};

int wk_store_prepare(PGconn *conn, wk_store_mode_t mode)
{
    if (mode == WK_STORE_FAST && yard_db_exec_as(conn, "store: commit mode",
                                                 "SET synchronous_commit = off") < 0)
        return PQstatus(conn) == CONNECTION_OK ? YARD_EPG : YARD_EUNAVAIL;
    for (size_t i = 0; i < sizeof store_stmts / sizeof store_stmts[0]; i++) {
        PGresult *r = PQprepare(conn, store_stmts[i].name, store_stmts[i].sql, 0, NULL);
        int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok)
            YARD_LOG_ERROR(NULL, "store: prepare %s: %s", store_stmts[i].name,
                           PQerrorMessage(conn));
        PQclear(r);
        if (!ok)
            return PQstatus(conn) == CONNECTION_OK ? YARD_EPG : YARD_EUNAVAIL;
    }
    return 0;
}

/* A PostgreSQL array literal being built: {"a","b",NULL}. */
typedef struct {
    char *buf;
    size_t len, cap;
    int n;
    int oom;
} store_arr_t;

static void arr_put(store_arr_t *a, const char *s, size_t n)
{
    if (a->oom)
        return;
    if (a->len + n + 2 > a->cap) {
        size_t cap = a->cap ? a->cap : 256;
        while (a->len + n + 2 > cap)
            cap *= 2;
        char *b = realloc(a->buf, cap);
        if (!b) {
            a->oom = 1;
            return;
        }
        a->buf = b;
        a->cap = cap;
    }
    memcpy(a->buf + a->len, s, n);
    a->len += n;
    a->buf[a->len] = '\0';
}

/* Appends one element: NULL when s is NULL, else s quoted and escaped. */
static void arr_str(store_arr_t *a, const char *s, size_t n)
{
    arr_put(a, a->n++ ? "," : "{", 1);
    if (!s) {
        arr_put(a, "NULL", 4);
        return;
    }
    arr_put(a, "\"", 1);
    size_t from = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"' || s[i] == '\\') {
            arr_put(a, s + from, i - from);
            arr_put(a, "\\", 1);
            from = i;
        }
    }
    arr_put(a, s + from, n - from);
    arr_put(a, "\"", 1);
}

static void arr_view(store_arr_t *a, yard_str_t v)
{
    arr_str(a, v.len ? v.ptr : NULL, v.len);
}

static void arr_num(store_arr_t *a, long long v)
{
    char num[24];
    int n = snprintf(num, sizeof num, "%lld", v);
    arr_str(a, num, (size_t)n);
}

/* Closes the literal ("{}" when empty); returns it, or NULL if out of memory. */
static const char *arr_end(store_arr_t *a)
{
    arr_put(a, a->n ? "}" : "{}", a->n ? 1 : 2);
    return a->oom ? NULL : a->buf;
}

/* Runs one prepared statement with text parameters; *res (may be NULL)
 * keeps the result for the caller to read and PQclear. Returns 0 or an
 * error (logged). */
static int store_exec(PGconn *conn, const char *stmt, int nparams, const char *const *params,
                      PGresult **res, const char *what)
{
    PGresult *r = PQexecPrepared(conn, stmt, nparams, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        YARD_LOG_ERROR(NULL, "store: %s: %s", what, PQresultErrorMessage(r));
        PQclear(r);
        return PQstatus(conn) == CONNECTION_OK ? YARD_EPG : YARD_EUNAVAIL;
    }
    if (res)
        *res = r;
    else
        PQclear(r);
    return 0;
}

#define STORE_JOB_ARRAYS 14

static int store_cmp_env(const void *a, const void *b, void *envs_arg)
{
    const yard_envelope_t *const *envs = envs_arg;
    const yard_envelope_t *x = envs[*(const size_t *)a], *y = envs[*(const size_t *)b];
    return memcmp(x->id.ptr, y->id.ptr, YARD_ENV_ID_LEN);
}

/* Writes n job rows with stmt (its first 14 parameters are the job arrays;
 * extra holds the rest). Rows are sent in id order, so concurrent batches
 * lock rows in the same order and never deadlock; a job id given twice is
 * sent once. When out is not NULL the statement returns (id, number) rows
 * and out[i] gets the number of envs[i] (0 for a duplicate or no row).
 * Returns 0 or an error with nothing written. */
static int store_jobs(PGconn *conn, const char *stmt, const yard_envelope_t *const *envs,
                      const char *const *statuses, const unsigned *attempts, size_t n,
                      const char *const *extra, int nextra, int *out, const char *what)
{
    store_arr_t arr[STORE_JOB_ARRAYS] = {{0}};
    size_t *order = malloc((n ? n : 1) * sizeof *order);
    const char *params[STORE_MAX_PARAMS];
    PGresult *res = NULL;
    int rc = 0;
    if (!order)
        return YARD_ENOMEM;
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    qsort_r(order, n, sizeof *order, store_cmp_env, (void *)envs);
    for (size_t k = 0; k < n; k++) {
        const yard_envelope_t *e = envs[order[k]];
        if (out)
            out[order[k]] = 0;
        if (k > 0 && memcmp(e->id.ptr, envs[order[k - 1]]->id.ptr, YARD_ENV_ID_LEN) == 0)
            continue; /* the same job twice in one batch: once is enough */
        /* The trace id is the second field of a traceparent. */
        yard_str_t trace = e->traceparent.len >= 35 ? (yard_str_t){e->traceparent.ptr + 3, 32}
                                                    : (yard_str_t){NULL, 0};
        arr_view(&arr[0], e->id);
        arr_view(&arr[1], e->queue);
        arr_view(&arr[2], e->type);
        arr_num(&arr[3], e->priority);
        arr_view(&arr[4], e->payload);
        arr_num(&arr[5], e->max_attempts);
        arr_num(&arr[6], e->timeout_s);
        arr_num(&arr[7], e->run_at_ms);
        arr_view(&arr[8], e->idempotency_key);
        arr_view(&arr[9], e->api_key_id);
        arr_view(&arr[10], trace);
        arr_num(&arr[11], e->created_at_ms);
        arr_str(&arr[12], statuses[order[k]], strlen(statuses[order[k]]));
        arr_num(&arr[13], attempts ? attempts[order[k]] : 0);
    }
    for (int i = 0; i < STORE_JOB_ARRAYS; i++)
        if (!(params[i] = arr_end(&arr[i])))
            rc = YARD_ENOMEM;
    for (int i = 0; i < nextra; i++)
        params[STORE_JOB_ARRAYS + i] = extra[i];
    if (rc == 0)
        rc = store_exec(conn, stmt, STORE_JOB_ARRAYS + nextra, params, out ? &res : NULL, what);
    if (rc == 0 && out) {
        /* Few rows: map each returned id back to its positions. */
        for (int r = 0; r < PQntuples(res); r++) {
            const char *id = PQgetvalue(res, r, 0);
            int v = atoi(PQgetvalue(res, r, 1));
            for (size_t i = 0; i < n; i++)
                if (memcmp(envs[i]->id.ptr, id, YARD_ENV_ID_LEN) == 0) {
                    out[i] = v;
                    break;
                }
        }
        PQclear(res);
    }
    for (int i = 0; i < STORE_JOB_ARRAYS; i++)
        free(arr[i].buf);
    free(order);
    return rc;
}

int wk_store_ingest(PGconn *conn, const yard_envelope_t *const *envs, const int *scheduled,
                    size_t n)
{
    const char **st = malloc((n ? n : 1) * sizeof *st);
    if (!st)
        return YARD_ENOMEM;
    for (size_t i = 0; i < n; i++)
        st[i] = scheduled[i] ? "scheduled" : "queued";
    int rc = store_jobs(conn, "wk_ingest", envs, st, NULL, n, NULL, 0, NULL, "ingest");
    free(st);
    return rc;
}

int wk_store_claim(PGconn *conn, const yard_envelope_t *const *envs, size_t n, int *attempt)
{
    const char **st = malloc((n ? n : 1) * sizeof *st);
    if (!st)
        return YARD_ENOMEM;
    for (size_t i = 0; i < n; i++)
        st[i] = "running";
    int rc = store_jobs(conn, "wk_claim", envs, st, NULL, n, NULL, 0, attempt, "claim");
    free(st);
    return rc;
}

int wk_store_finish(PGconn *conn, const wk_attempt_t *a, size_t n, const char *worker)
{
    store_arr_t arr[8] = {{0}};
    const char *params[9];
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        const char *state = state_names[a[i].state];
        arr_str(&arr[0], a[i].job_id, strlen(a[i].job_id));
        arr_num(&arr[1], a[i].attempt);
        arr_num(&arr[2], a[i].started_ms);
        arr_str(&arr[3], a[i].outcome, strlen(a[i].outcome));
        arr_str(&arr[4], a[i].error, a[i].error ? strlen(a[i].error) : 0);
        arr_num(&arr[5], a[i].duration_ms);
        arr_str(&arr[6], state, strlen(state));
        arr_str(&arr[7], a[i].result_json, a[i].result_json ? strlen(a[i].result_json) : 0);
    }
    for (int i = 0; i < 8; i++)
        if (!(params[i] = arr_end(&arr[i])))
            rc = YARD_ENOMEM;
    params[8] = worker;
    if (rc == 0)
        rc = store_exec(conn, "wk_finish", 9, params, NULL, "finish");
    for (int i = 0; i < 8; i++)
        free(arr[i].buf);
    return rc;
}

int wk_store_mark_dead(PGconn *conn, const yard_envelope_t *env, unsigned attempts,
                       const char *reason)
{
    const char *status[1] = {"dead"};
    const char *extra[1] = {reason};
    return store_jobs(conn, "wk_dead", &env, status, &attempts, 1, extra, 1, NULL, "mark dead");
}

int wk_store_cancel_requested(PGconn *conn, const char *const *ids, size_t n, int *flags)
{
    size_t cap = n * (YARD_ENV_ID_LEN + 1) + 3, len = 0;
    char *arr = malloc(cap);
    PGresult *res = NULL;
    if (!arr)
        return YARD_ENOMEM;
    arr[len++] = '{';
    for (size_t i = 0; i < n; i++) {
        len += (size_t)snprintf(arr + len, cap - len, "%s%s", i ? "," : "", ids[i]);
        flags[i] = 0;
    }
    arr[len++] = '}';
    arr[len] = '\0';
    const char *params[1] = {arr};
    int rc = yard_db_query(&res, conn, "cancel check",
                           "SELECT id::text FROM jobs WHERE id = ANY($1::uuid[])"
                           " AND cancel_requested_at IS NOT NULL",
                           1, params);
    free(arr);
    if (rc < 0)
        return rc;
    for (int r = 0; r < PQntuples(res); r++) {
        for (size_t i = 0; i < n; i++)
            if (strcmp(PQgetvalue(res, r, 0), ids[i]) == 0)
                flags[i] = 1;
    }
    PQclear(res);
    return 0;
}
