/*
 * store.c - batched, idempotent PostgreSQL writes of the workers (store.h).
 *
 * Statements are prepared once per connection and sent in pipeline mode:
 * everything up to one PQpipelineSync runs as one implicit transaction, so a
 * batch is written whole or not at all, in one round trip.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "err.h"
#include "log.h"
#include "store.h"

#define STORE_MAX_PARAMS 16

/* The columns a job row gets from its envelope, shared by ingest, claim and
 * mark-dead: $1 id, $2 queue, $3 type, $4 status, $5 priority, $6 payload,
 * $7 max_attempts, $8 timeout_s, $9 run_at ms, $10 idempotency key, $11 api
 * key id, $12 trace, $13 created_at ms, $14 attempts. */
#define STORE_JOB_INSERT                                                                    \
    "INSERT INTO jobs (id, queue, type, status, priority, payload, max_attempts, timeout_s," \
    " run_at, idempotency_key, api_key_id, trace_id, created_at, attempts, started_at)"     \
    " VALUES ($1::uuid, $2, $3, $4, $5::smallint, $6::jsonb, $7::int, $8::int,"             \
    " CASE WHEN $9::bigint > 0 THEN to_timestamp($9::bigint / 1000.0) END, $10,"            \
    " $11::uuid, $12, to_timestamp($13::bigint / 1000.0), $14::int,"                        \
    " CASE WHEN $4 = 'running' THEN now() END)"

static const struct {
    const char *name, *sql;
} store_stmts[] = {
    {"wk_ingest", STORE_JOB_INSERT " ON CONFLICT (id) DO UPDATE SET status = 'queued'"
                                   " WHERE jobs.status = 'scheduled' AND EXCLUDED.status = 'queued'"},
    /* A claim returns the attempt number to run (finished attempts + 1), or 0
     * when the job must not run: it is final, or its cancel was requested
     * (then it becomes cancelled here). Attempts count only finished runs,
     * so a crash or a drain hand-back does not use one up. */
    {"wk_claim",
     STORE_JOB_INSERT " ON CONFLICT (id) DO UPDATE SET"
                      " status = CASE WHEN jobs.cancel_requested_at IS NULL THEN 'running'"
                      " ELSE 'cancelled' END,"
                      " finished_at = CASE WHEN jobs.cancel_requested_at IS NULL"
                      " THEN jobs.finished_at ELSE now() END,"
                      " started_at = coalesce(jobs.started_at, now())"
                      " WHERE jobs.status IN ('queued', 'scheduled', 'failed', 'running')"
                      " RETURNING CASE WHEN jobs.status = 'running' THEN jobs.attempts + 1"
                      " ELSE 0 END"},
    {"wk_dead", STORE_JOB_INSERT " ON CONFLICT (id) DO UPDATE SET status = 'dead',"
                                 " attempts = GREATEST(jobs.attempts, EXCLUDED.attempts),"
                                 " last_error = $15, finished_at = now()"
                                 " WHERE jobs.status NOT IN ('succeeded', 'dead', 'cancelled')"},
    {"wk_attempt",
     "INSERT INTO job_attempts (job_id, attempt, started_at, finished_at, outcome, error, worker,"
     " duration_ms) VALUES ($1::uuid, $2::int, to_timestamp($3::bigint / 1000.0), now(), $4, $5,"
     " $6, $7::bigint) ON CONFLICT (job_id, attempt) DO NOTHING"},
    {"wk_finish",
     "UPDATE jobs SET status = $2, result = $3::jsonb, last_error = $4,"
     " attempts = GREATEST(attempts, $5::int),"
     " finished_at = CASE WHEN $2 IN ('succeeded', 'dead', 'cancelled') THEN now() END"
     " WHERE id = $1::uuid AND status NOT IN ('succeeded', 'dead', 'cancelled')"},
};

static const char *const state_names[] = {"succeeded", "failed", "dead", "cancelled"};

int wk_store_prepare(PGconn *conn)
{
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

/* One statement of a pipeline: a prepared name and its text parameters. */
typedef struct {
    const char *name;
    int nparams;
    const char *params[STORE_MAX_PARAMS];
    char buf[6][24]; /* room for numbers printed as text */
} store_call_t;

/* Sends calls in one pipeline and sync; rows[i] (may be NULL) gets the
 * integer in the first column of the first row statement i returned (0 when
 * it returned none). Returns 0, or an error after which
 * nothing was committed. */
static int store_pipeline(PGconn *conn, const store_call_t *calls, size_t n, int *rows,
                          const char *what)
{
    int rc = 0;
    if (PQenterPipelineMode(conn) != 1) {
        YARD_LOG_ERROR(NULL, "store: %s: cannot enter pipeline mode: %s", what,
                       PQerrorMessage(conn));
        return PQstatus(conn) == CONNECTION_OK ? YARD_EPG : YARD_EUNAVAIL;
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (PQsendQueryPrepared(conn, calls[i].name, calls[i].nparams, calls[i].params, NULL,
                                NULL, 0) != 1)
            rc = YARD_EPG;
    }
    if (rc == 0 && PQpipelineSync(conn) != 1)
        rc = YARD_EPG;
    if (rc < 0) {
        YARD_LOG_ERROR(NULL, "store: %s: cannot send: %s", what, PQerrorMessage(conn));
        PQexitPipelineMode(conn);
        return PQstatus(conn) == CONNECTION_OK ? YARD_EPG : YARD_EUNAVAIL;
    }
    /* One result (then NULL) per statement, then the sync's result. */
    for (size_t i = 0; i <= n;) {
        PGresult *r = PQgetResult(conn);
        if (!r) {
            if (PQstatus(conn) != CONNECTION_OK) {
                rc = YARD_EUNAVAIL;
                break;
            }
            continue; /* end of one statement's results */
        }
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_PIPELINE_SYNC) {
            PQclear(r);
            break;
        }
        if (st == PGRES_FATAL_ERROR && rc == 0) {
            YARD_LOG_ERROR(NULL, "store: %s: %s", what, PQresultErrorMessage(r));
            rc = YARD_EPG;
        } else if (st == PGRES_PIPELINE_ABORTED && rc == 0) {
            rc = YARD_EPG;
        }
        if (rows && i < n)
            rows[i] = st == PGRES_TUPLES_OK && PQntuples(r) > 0 ? atoi(PQgetvalue(r, 0, 0)) : 0;
        PQclear(r);
        i++;
    }
    if (PQexitPipelineMode(conn) != 1 && rc == 0) {
        YARD_LOG_ERROR(NULL, "store: %s: cannot leave pipeline mode: %s", what,
                       PQerrorMessage(conn));
        rc = YARD_EPG;
    }
    if (rc < 0 && PQstatus(conn) != CONNECTION_OK)
        rc = YARD_EUNAVAIL;
    return rc;
}

/* Copies s (a view) into a new NUL-terminated string, or NULL if absent. */
static char *store_dup(yard_str_t s)
{
    if (!s.ptr || !s.len)
        return NULL;
    char *p = malloc(s.len + 1);
    if (p) {
        memcpy(p, s.ptr, s.len);
        p[s.len] = '\0';
    }
    return p;
}

/* The 14 job-row parameters of env (strings copied into owned[], which the
 * caller frees with store_free_owned). */
#define STORE_OWNED 8
static void store_job_params(store_call_t *c, char *owned[STORE_OWNED],
                             const yard_envelope_t *env, const char *status, unsigned attempts)
{
    yard_str_t strs[STORE_OWNED] = {env->id,  env->queue,           env->type,
                                    env->payload, env->idempotency_key, env->api_key_id,
                                    env->traceparent, {NULL, 0}};
    for (int i = 0; i < STORE_OWNED; i++)
        owned[i] = store_dup(strs[i]);
    snprintf(c->buf[0], sizeof c->buf[0], "%d", (int)env->priority);
    snprintf(c->buf[1], sizeof c->buf[1], "%u", env->max_attempts);
    snprintf(c->buf[2], sizeof c->buf[2], "%u", env->timeout_s);
    snprintf(c->buf[3], sizeof c->buf[3], "%lld", (long long)env->run_at_ms);
    snprintf(c->buf[4], sizeof c->buf[4], "%lld", (long long)env->created_at_ms);
    snprintf(c->buf[5], sizeof c->buf[5], "%u", attempts);
    /* The trace id is the second field of a traceparent. */
    char *tp = owned[6];
    if (tp && strlen(tp) >= 35 && tp[2] == '-') {
        memmove(tp, tp + 3, 32);
        tp[32] = '\0';
    }
    const char *p[14] = {owned[0], owned[1], owned[2], status,   c->buf[0], owned[3], c->buf[1],
                         c->buf[2], c->buf[3], owned[4], owned[5], owned[6], c->buf[4], c->buf[5]};
    memcpy(c->params, p, sizeof p);
    c->nparams = 14;
}

static void store_free_owned(char *owned[STORE_OWNED])
{
    for (int i = 0; i < STORE_OWNED; i++)
        free(owned[i]);
}

/* Orders statements by job id: every batch then locks rows in the same
 * order, so concurrent batches (ingest, claim, finish on other workers) wait
 * for each other but never deadlock. */
static int store_by_id(const void *a, const void *b, void *envs_arg)
{
    const yard_envelope_t *const *envs = envs_arg;
    const yard_envelope_t *x = envs[*(const size_t *)a], *y = envs[*(const size_t *)b];
    return memcmp(x->id.ptr, y->id.ptr, YARD_ENV_ID_LEN);
}

static int store_by_job_id(const void *a, const void *b)
{
    return strcmp(((const wk_attempt_t *)a)->job_id, ((const wk_attempt_t *)b)->job_id);
}

/* Runs one job-row statement for each of n envelopes, in id order; rows[i]
 * (may be NULL) gets what statement i of the caller's order returned (see
 * store_pipeline). */
static int store_jobs(PGconn *conn, const char *stmt, const yard_envelope_t *const *envs,
                      const char *const *statuses, const unsigned *attempts, size_t n,
                      int *rows, const char *what)
{
    store_call_t *calls = calloc(n ? n : 1, sizeof *calls);
    char **owned_flat = calloc(n * STORE_OWNED + 1, sizeof *owned_flat);
    size_t *order = calloc(n ? n : 1, sizeof *order);
    int *sorted_rows = calloc(n ? n : 1, sizeof *sorted_rows);
    int rc;
    if (!calls || !owned_flat || !order || !sorted_rows) {
        free(calls);
        free(owned_flat);
        free(order);
        free(sorted_rows);
        return YARD_ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    qsort_r(order, n, sizeof *order, store_by_id, (void *)envs);
    for (size_t k = 0; k < n; k++) {
        size_t i = order[k];
        calls[k].name = stmt;
        store_job_params(&calls[k], &owned_flat[k * STORE_OWNED], envs[i], statuses[i],
                         attempts ? attempts[i] : 0);
    }
    rc = store_pipeline(conn, calls, n, sorted_rows, what);
    for (size_t k = 0; rows && k < n; k++)
        rows[order[k]] = sorted_rows[k];
    free(order);
    free(sorted_rows);
    for (size_t i = 0; i < n; i++)
        store_free_owned(&owned_flat[i * STORE_OWNED]);
    free(owned_flat);
    free(calls);
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
    int rc = store_jobs(conn, "wk_ingest", envs, st, NULL, n, NULL, "ingest");
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
    int rc = store_jobs(conn, "wk_claim", envs, st, NULL, n, attempt, "claim");
    free(st);
    return rc;
}

int wk_store_finish(PGconn *conn, const wk_attempt_t *given, size_t n, const char *worker)
{
    store_call_t *calls = calloc(2 * n + 1, sizeof *calls);
    wk_attempt_t *a = malloc((n ? n : 1) * sizeof *a);
    if (!calls || !a) {
        free(calls);
        free(a);
        return YARD_ENOMEM;
    }
    memcpy(a, given, n * sizeof *a);
    qsort(a, n, sizeof *a, store_by_job_id); /* lock order: see store_by_id */
    for (size_t i = 0; i < n; i++) {
        store_call_t *ins = &calls[2 * i], *upd = &calls[2 * i + 1];
        ins->name = "wk_attempt";
        snprintf(ins->buf[0], sizeof ins->buf[0], "%u", a[i].attempt);
        snprintf(ins->buf[1], sizeof ins->buf[1], "%lld", (long long)a[i].started_ms);
        snprintf(ins->buf[2], sizeof ins->buf[2], "%lld",
                 (long long)(a[i].duration_ms < 0 ? 0 : a[i].duration_ms));
        const char *pi[7] = {a[i].job_id, ins->buf[0], ins->buf[1], a[i].outcome,
                             a[i].error,  worker,      ins->buf[2]};
        memcpy(ins->params, pi, sizeof pi);
        ins->nparams = 7;
        upd->name = "wk_finish";
        const char *pu[5] = {a[i].job_id, state_names[a[i].state], a[i].result_json,
                             a[i].state == WK_STATE_SUCCEEDED ? NULL : a[i].error, ins->buf[0]};
        memcpy(upd->params, pu, sizeof pu);
        upd->nparams = 5;
    }
    int rc = store_pipeline(conn, calls, 2 * n, NULL, "finish");
    free(calls);
    free(a);
    return rc;
}

int wk_store_mark_dead(PGconn *conn, const yard_envelope_t *env, unsigned attempts,
                       const char *reason)
{
    store_call_t call = {0};
    char *owned[STORE_OWNED];
    call.name = "wk_dead";
    store_job_params(&call, owned, env, "dead", attempts);
    call.params[14] = reason;
    call.nparams = 15;
    int rc = store_pipeline(conn, &call, 1, NULL, "mark dead");
    store_free_owned(owned);
    return rc;
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
