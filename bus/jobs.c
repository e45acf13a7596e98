/*
 * jobs.c - the job lifecycle (jobs.h): states, transitions, and the
 * statements that change job rows.
 *
 * The status lists in the statements' WHERE clauses are written from the
 * transition table at prepare time, so the table is the one rule. Batch
 * statements take a batch as a few PostgreSQL arrays and write it with one
 * statement (unnest): whole or not at all, in one round trip.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "db_array.h"
#include "err.h"
#include "jobs.h"
#include "log.h"

/* ---- states and transitions ------------------------------------------------ */

static const char *const state_names[YARD_JOB_NSTATES] = {
    "queued", "scheduled", "running", "succeeded", "failed", "dead", "cancelled"};

#define Q (1u << YARD_JOB_QUEUED)
#define S (1u << YARD_JOB_SCHEDULED)
#define R (1u << YARD_JOB_RUNNING)
#define OK (1u << YARD_JOB_SUCCEEDED)
#define F (1u << YARD_JOB_FAILED)
#define D (1u << YARD_JOB_DEAD)
#define C (1u << YARD_JOB_CANCELLED)
/* The states each state may move to (the table of jobs.h). */
static const unsigned transitions[YARD_JOB_NSTATES] = {
    [YARD_JOB_QUEUED] = R | OK | F | D | C,
    [YARD_JOB_SCHEDULED] = Q | R | OK | F | D | C,
    [YARD_JOB_RUNNING] = R | OK | F | D | C,
    [YARD_JOB_SUCCEEDED] = 0,
    [YARD_JOB_FAILED] = R | OK | F | D | C,
    [YARD_JOB_DEAD] = Q,
    [YARD_JOB_CANCELLED] = 0,
};
#undef Q
#undef S
#undef R
#undef OK
#undef F
#undef D
#undef C

const char *yard_job_state_name(yard_job_state_t s)
{
    return (unsigned)s < YARD_JOB_NSTATES ? state_names[s] : "?";
}

int yard_job_state_parse(yard_job_state_t *out, const char *name)
{
    for (int i = 0; name && i < YARD_JOB_NSTATES; i++)
        if (strcmp(name, state_names[i]) == 0) {
            *out = (yard_job_state_t)i;
            return 0;
        }
    return YARD_EINVAL;
}

int yard_job_state_final(yard_job_state_t s)
{
    return s == YARD_JOB_SUCCEEDED || s == YARD_JOB_DEAD || s == YARD_JOB_CANCELLED;
}

int yard_job_transition_allowed(yard_job_state_t from, yard_job_state_t to)
{
    return (unsigned)from < YARD_JOB_NSTATES && (unsigned)to < YARD_JOB_NSTATES &&
           (transitions[from] >> to & 1u);
}

/* Writes "'a', 'b'" (SQL text literals) of the states that may move to to
 * into buf: the WHERE clause of a statement making that transition. */
static void states_into(char *buf, size_t cap, yard_job_state_t to)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int s = 0; s < YARD_JOB_NSTATES; s++)
        if (yard_job_transition_allowed((yard_job_state_t)s, to))
            len += (size_t)snprintf(buf + len, cap - len, "%s'%s'", len ? ", " : "",
                                    state_names[s]);
}

/* Writes "'succeeded', 'dead', 'cancelled'": the final states. */
static void final_states(char *buf, size_t cap)
{
    size_t len = 0;
    for (int s = 0; s < YARD_JOB_NSTATES; s++)
        if (yard_job_state_final((yard_job_state_t)s))
            len += (size_t)snprintf(buf + len, cap - len, "%s'%s'", len ? ", " : "",
                                    state_names[s]);
}

/* ---- statements -------------------------------------------------------------------- */

/* Job rows from arrays, one element per job: u is the batch. */
#define JOBS_ARRAYS 21
#define JOBS_U_ARGS                                                                             \
    "$1::uuid[], $2::text[], $3::text[], $4::smallint[], $5::text[], $6::int[], $7::int[],"       \
    " $8::bigint[], $9::text[], $10::uuid[], $11::text[], $12::bigint[], $13::text[], $14::int[],"\
    " $15::bigint[], $16::text[], $17::text[], $18::uuid[], $19::text[], $20::text[], $21::text[]"
#define JOBS_U_COLS                                                                             \
    "id, queue, type, priority, payload, max_attempts, timeout_s, run_at, idem, key, trace,"      \
    " created, status, attempts, seq, tp, notify, wf, step, sched, secrets"
#define JOBS_U "u AS (SELECT * FROM unnest(" JOBS_U_ARGS ") AS u(" JOBS_U_COLS "))"
/* The row's columns from u (started_at comes after them). */
#define JOBS_INSERT_COLS                                                                        \
    "INSERT INTO jobs AS j (id, queue, type, status, priority, payload, max_attempts,"          \
    " timeout_s, run_at, idempotency_key, api_key_id, trace_id, created_at, attempts,"          \
    " js_seq, traceparent, notify, workflow_id, step_id, schedule_name, secrets_sealed"
#define JOBS_INSERT_VALS                                                                        \
    " SELECT u.id, u.queue, u.type, u.status, u.priority, u.payload::jsonb, u.max_attempts,"    \
    " u.timeout_s, CASE WHEN u.run_at > 0 THEN to_timestamp(u.run_at / 1000.0) END, u.idem,"    \
    " u.key, u.trace, to_timestamp(u.created / 1000.0), u.attempts, nullif(u.seq, 0), u.tp,"    \
    " u.notify::jsonb, u.wf, u.step, u.sched, u.secrets"
#define JOBS_INSERT                                                                             \
    JOBS_INSERT_COLS ", started_at)" JOBS_INSERT_VALS                                          \
    ", CASE WHEN u.status = 'running' THEN now() END FROM u ORDER BY u.id"
/* The extra arrays of an outcome ($22-$26), after the job's. */
#define JOBS_FINISH_ARRAYS 5

/* What the claim returns for a job whose cancel was requested: the start
 * statement makes it cancelled. */
#define JOBS_CLAIM_WRITE (-3)
#define JOBS_CLAIM_WRITE_SQL "-3"

/* Statement texts with %s for status lists: (name, format, list kinds). */
enum { L_NONE, L_TO_RUNNING, L_TO_DEAD, L_TO_CANCELLED, L_FINAL };

static const struct {
    const char *name;
    const char *fmt;
    int list;
} stmts[] = {
    {"yard_ingest", "WITH " JOBS_U " " JOBS_INSERT " ON CONFLICT (id) DO NOTHING", L_NONE},
    /* A claim reads: per message ($1 ids, $2 keys, $3 types, $4 payloads;
     * the first column is its 1-based position), the attempt to run
     * (finished attempts + 1; 1 when the job has no row yet), 0 when the job
     * must not run (final), -1 / -2 when the row belongs to another key /
     * another message, JOBS_CLAIM_WRITE when its cancel was requested (the
     * start statement below makes it cancelled). */
    {"yard_claim",
     "SELECT u.i, CASE WHEN j.id IS NULL THEN 1"
     " WHEN j.api_key_id IS DISTINCT FROM u.key THEN -1"
     " WHEN j.type <> u.type OR j.payload IS DISTINCT FROM u.payload::jsonb THEN -2"
     " WHEN j.status NOT IN (%s) THEN 0"
     " WHEN j.cancel_requested_at IS NOT NULL THEN " JOBS_CLAIM_WRITE_SQL
     " ELSE j.attempts + 1 END"
     " FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[]) WITH ORDINALITY"
     " AS u(id, key, type, payload, i) LEFT JOIN jobs j ON j.id = u.id",
     L_TO_RUNNING},
    /* A start writes what a claim read: the job is running (its row is
     * created if ingest has not written it), and returns, per message, the
     * attempt it runs, 0 when the job must not run (final, or its cancel was
     * requested: then it becomes cancelled here), or -1 / -2 when the row
     * belongs to another key / another message. The outer SELECT reads the
     * rows as they were before this statement (one snapshot for the whole
     * statement), and only for messages that started nothing. */
    {"yard_start",
     "WITH " JOBS_U ", c AS (" JOBS_INSERT
     " ON CONFLICT (id) DO UPDATE SET updated_at = now(),"
     " status = CASE WHEN j.cancel_requested_at IS NULL THEN 'running' ELSE 'cancelled' END,"
     " finished_at = CASE WHEN j.cancel_requested_at IS NULL THEN j.finished_at ELSE now() END,"
     " started_at = coalesce(j.started_at, now()), js_seq = EXCLUDED.js_seq"
     " WHERE j.status IN (%s) AND j.api_key_id IS NOT DISTINCT FROM EXCLUDED.api_key_id"
     " AND j.type = EXCLUDED.type AND j.payload IS NOT DISTINCT FROM EXCLUDED.payload"
     " RETURNING j.id, CASE WHEN j.status = 'running' THEN j.attempts + 1 ELSE 0 END AS n)"
     /* Only a message that claimed nothing looks at the row it met. */
     " SELECT u.id::text, coalesce(c.n, (SELECT CASE"
     " WHEN o.api_key_id IS DISTINCT FROM u.key THEN -1"
     " WHEN o.type <> u.type OR o.payload IS DISTINCT FROM u.payload::jsonb THEN -2 ELSE 0 END"
     " FROM jobs o WHERE o.id = u.id), 0)"
     " FROM u LEFT JOIN c ON c.id = u.id",
     L_TO_RUNNING},
    /* $22: the reason. */
    {"yard_dead",
     "WITH " JOBS_U " " JOBS_INSERT
     " ON CONFLICT (id) DO UPDATE SET status = 'dead', updated_at = now(),"
     " attempts = GREATEST(j.attempts, EXCLUDED.attempts), last_error = $22, finished_at = now()"
     " WHERE j.status IN (%s)",
     L_TO_DEAD},
    /* Outcomes: the job arrays (status: the new state, attempts: the
     * attempt), $22 started ms, $23 outcome, $24 error, $25 duration ms,
     * $26 result (arrays), $27 worker. The row is created in its new state
     * when neither ingest nor a start wrote it (a short job's common path:
     * one row write); a final state is never overwritten, nor a row another
     * key or message made. */
    {"yard_finish",
     "WITH u AS (SELECT * FROM unnest(" JOBS_U_ARGS ", $22::bigint[], $23::text[], $24::text[],"
     " $25::bigint[], $26::text[]) AS u(" JOBS_U_COLS ", started, outcome, error, duration,"
     " result)),"
     " a AS (INSERT INTO job_attempts (job_id, attempt, started_at, outcome, error, worker,"
     " duration_ms) SELECT id, attempts, to_timestamp(started / 1000.0), outcome, error, $27,"
     " GREATEST(duration, 0) FROM u ORDER BY id ON CONFLICT (job_id, attempt) DO NOTHING) "
     JOBS_INSERT_COLS ", started_at, result, last_error, finished_at)" JOBS_INSERT_VALS
     ", to_timestamp(u.started / 1000.0), u.result::jsonb,"
     " CASE WHEN u.status = 'succeeded' THEN NULL ELSE u.error END,"
     " CASE WHEN u.status IN (%s) THEN clock_timestamp() END FROM u ORDER BY u.id"
     " ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, result = EXCLUDED.result,"
     " updated_at = now(),"
     " last_error = EXCLUDED.last_error, attempts = GREATEST(j.attempts, EXCLUDED.attempts),"
     " finished_at = EXCLUDED.finished_at, started_at = coalesce(j.started_at,"
     " EXCLUDED.started_at), js_seq = coalesce(EXCLUDED.js_seq, j.js_seq)"
     " WHERE j.status NOT IN (%s) AND j.api_key_id IS NOT DISTINCT FROM EXCLUDED.api_key_id"
     " AND j.type = EXCLUDED.type AND j.payload IS NOT DISTINCT FROM EXCLUDED.payload",
     L_FINAL},
    {"yard_cancel_requested",
     "SELECT id::text FROM jobs WHERE id = ANY($1::uuid[]) AND cancel_requested_at IS NOT NULL",
     L_NONE},
    /* $1 id, $2 owner key or NULL. A running job keeps running until its
     * worker sees cancel_requested_at. */
    {"yard_cancel",
     "UPDATE jobs SET cancel_requested_at = coalesce(cancel_requested_at, now()),"
     " updated_at = now(),"
     " status = CASE WHEN status = 'running' THEN status ELSE 'cancelled' END,"
     " finished_at = CASE WHEN status = 'running' THEN finished_at ELSE now() END"
     " WHERE id = $1::uuid AND ($2::uuid IS NULL OR api_key_id = $2::uuid)"
     " AND status IN (%s) RETURNING status",
     L_TO_CANCELLED},
    {"yard_status",
     "SELECT status FROM jobs WHERE id = $1::uuid AND ($2::uuid IS NULL OR api_key_id = $2::uuid)",
     L_NONE},
    {"yard_replay",
     "UPDATE jobs SET status = 'queued', finished_at = NULL, updated_at = now() WHERE id = $1::uuid"
     " AND status = 'dead' RETURNING 1",
     L_NONE},
    {"yard_replay_undo",
     "UPDATE jobs SET status = 'dead', finished_at = now(), updated_at = now() WHERE id = $1::uuid"
     " AND status = 'queued'",
     L_NONE},
    {"yard_release",
     "UPDATE jobs SET status = 'queued', js_seq = $2::bigint, updated_at = now()"
     " WHERE id = $1::uuid"
     " AND status = 'scheduled'",
     L_NONE},
    {"yard_track",
     "UPDATE jobs SET js_seq = $3::bigint, updated_at = now() WHERE id = $1::uuid"
     " AND ($2::bigint = 0 OR js_seq IS NULL OR js_seq = $2::bigint)",
     L_NONE},
    {"yard_known", "SELECT id::text FROM jobs WHERE id = ANY($1::uuid[])", L_NONE},
    /* $1 queue names. Per queue, seconds since its oldest queued job became
     * due (run_at for a job that was scheduled, else created_at), 0 when
     * none: one lookup of jobs_queue_status_idx per queue. */
    {"yard_queued_age",
     "SELECT q.name, coalesce((SELECT GREATEST(extract(epoch FROM now()"
     " - min(coalesce(j.run_at, j.created_at))), 0) FROM jobs j"
     " WHERE j.queue = q.name AND j.status = 'queued'), 0)::float8"
     " FROM unnest($1::text[]) AS q(name)",
     L_NONE},
    /* Replays of dead letters (yard_jobs_replay_plan / _mark): $1 id. */
    {"yard_replay_state",
     "SELECT status, attempts, max_attempts, coalesce(replay_budget, max_attempts),"
     " coalesce(replayed_seq, 0), js_seq IS NULL FROM jobs WHERE id = $1::uuid",
     L_NONE},
    /* $1 id, $2 DLQ sequence, $3 who, $4 ceiling of max_attempts. SET reads
     * the row as it was, so the budget is the one before this replay. */
    {"yard_replay_mark",
     "UPDATE jobs SET status = 'queued', finished_at = NULL, js_seq = NULL, updated_at = now(),"
     " replay_budget = coalesce(replay_budget, max_attempts),"
     " max_attempts = LEAST(attempts + coalesce(replay_budget, max_attempts), $4::int),"
     " replayed_seq = $2::bigint, replays = replays + 1, replayed_at = now(), replayed_by = $3"
     " WHERE id = $1::uuid AND status = 'dead' AND coalesce(replayed_seq, 0) < $2::bigint"
     " RETURNING max_attempts",
     L_NONE},
    /* $1 seconds without change, $2 limit. Served by jobs_status_updated_idx. */
    {"yard_stale",
     "SELECT id::text, type, queue, payload::text, priority, max_attempts, timeout_s,"
     " coalesce((extract(epoch FROM run_at) * 1000)::bigint, 0),"
     " (extract(epoch FROM created_at) * 1000)::bigint, idempotency_key, api_key_id::text,"
     " traceparent, notify::text, workflow_id::text, step_id, schedule_name, status,"
     " coalesce(js_seq, 0), secrets_sealed FROM jobs"
     " WHERE status IN ('queued', 'running', 'failed')"
     " AND updated_at < now() - $1::bigint * interval '1 second'"
     " ORDER BY updated_at LIMIT $2::bigint",
     L_NONE},
    /* $1 seconds without change, $2 limit: released workflow steps whose
     * publish was never recorded (the releaser stopped in between). */
    {"yard_unpublished",
     "SELECT id::text, type, queue, payload::text, priority, max_attempts, timeout_s,"
     " coalesce((extract(epoch FROM run_at) * 1000)::bigint, 0),"
     " (extract(epoch FROM created_at) * 1000)::bigint, idempotency_key, api_key_id::text,"
     " traceparent, notify::text, workflow_id::text, step_id, schedule_name, status,"
     " coalesce(js_seq, 0), secrets_sealed FROM jobs"
     " WHERE status = 'queued' AND js_seq IS NULL AND workflow_id IS NOT NULL"
     " AND updated_at < now() - $1::bigint * interval '1 second'"
     " ORDER BY updated_at LIMIT $2::bigint",
     L_NONE},
    /* $1 clock offset (s), $2 limit, $3 look-ahead (ms): scheduled jobs due
     * within the look-ahead, earliest first, locked for the caller's
     * transaction; rows another transaction holds are skipped (served by
     * jobs_scheduled_run_at_idx). The columns of yard_stale (run_at rounded
     * up, so a wait for it never ends early), then the database's clock
     * (with the offset) in ms. */
    {"yard_due",
     "SELECT id::text, type, queue, payload::text, priority, max_attempts, timeout_s,"
     " coalesce(ceil(extract(epoch FROM run_at) * 1000)::bigint, 0),"
     " (extract(epoch FROM created_at) * 1000)::bigint, idempotency_key, api_key_id::text,"
     " traceparent, notify::text, workflow_id::text, step_id, schedule_name, status,"
     " coalesce(js_seq, 0), secrets_sealed,"
     " (extract(epoch FROM clock_timestamp() + $1::bigint * interval '1 second') * 1000)::bigint"
     " FROM jobs WHERE status = 'scheduled' AND run_at <= now() + $1::bigint * interval '1 second'"
     " + $3::bigint * interval '1 millisecond'"
     " ORDER BY run_at LIMIT $2::bigint FOR UPDATE SKIP LOCKED",
     L_NONE},
    /* $1 ids, $2 JOBS sequences, $3 PubAck times (Unix ms): the released
     * jobs, scheduled -> queued. */
    {"yard_due_release",
     "UPDATE jobs j SET status = 'queued', js_seq = u.seq, updated_at = now(),"
     " released_at = to_timestamp(u.acked / 1000.0)"
     " FROM unnest($1::uuid[], $2::bigint[], $3::bigint[]) AS u(id, seq, acked)"
     " WHERE j.id = u.id AND j.status = 'scheduled'",
     L_NONE},
};

int yard_jobs_prepare(PGconn *c, int mode)
{
    char a[160], b[160], sql[4096];
    /* By default batch statements are planned for the batch at hand: a
     * generic plan, made once while the table was small, would keep a
     * sequential scan of jobs (or a hash join over it) as it grows. With
     * YARD_JOBS_PLAN_ONCE (jobs.h) they are planned once, with those plans
     * discouraged so that a plan made on an empty table is index probes. */
    int rc = mode & YARD_JOBS_PLAN_ONCE
                 ? yard_db_plan_once(c, "jobs: plan mode")
                 : yard_db_exec_as(c, "jobs: plan mode", "SET plan_cache_mode = force_custom_plan");
    if (rc == 0 && (mode & YARD_JOBS_FAST))
        rc = yard_db_exec_as(c, "jobs: commit mode", "SET synchronous_commit = off");
    for (size_t i = 0; rc == 0 && i < sizeof stmts / sizeof stmts[0]; i++) {
        switch (stmts[i].list) {
        case L_TO_RUNNING:
            states_into(a, sizeof a, YARD_JOB_RUNNING);
            break;
        case L_TO_DEAD:
            states_into(a, sizeof a, YARD_JOB_DEAD);
            break;
        case L_TO_CANCELLED:
            states_into(a, sizeof a, YARD_JOB_CANCELLED);
            break;
        case L_FINAL:
            final_states(a, sizeof a);
            break;
        default:
            a[0] = '\0';
        }
        memcpy(b, a, sizeof b);
        /* The formats hold as many %s as their list is used (0 to 2). */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
        snprintf(sql, sizeof sql, stmts[i].fmt, a, b);
#pragma GCC diagnostic pop
        rc = yard_db_prepare(c, stmts[i].name, sql);
    }
    return rc;
}

int yard_jobs_connect(PGconn **conn, const char *dsn, int timeout_s, int mode)
{
    /* Alive, not only ok: after a PostgreSQL restart every idle connection
     * is closed by the server, and the first statement on each would fail. */
    int rc = yard_db_ensure(conn, dsn, timeout_s);
    if (rc <= 0)
        return rc;
    if ((rc = yard_jobs_prepare(*conn, mode)) < 0) {
        yard_db_close(*conn);
        *conn = NULL;
    }
    return rc;
}

int yard_jobs_probe(PGconn *c)
{
    return yard_db_exec_as(c, "jobs: readiness probe",
                           "SELECT 1 FROM jobs WHERE false; SELECT 1 FROM job_attempts WHERE false");
}

/* ---- batch writes --------------------------------------------------------------------- */

static int cmp_env(const void *a, const void *b, void *envs_arg)
{
    const yard_envelope_t *const *envs = envs_arg;
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    int c = memcmp(envs[i]->id.ptr, envs[j]->id.ptr, YARD_ENV_ID_LEN);
    return c ? c : (i > j) - (i < j);
}

/* The positions of the n envelopes in id order (the order rows are locked
 * in, so concurrent batches never deadlock), the earliest position first
 * among equal ids: that one keeps the job, later ones are repeats. Returns
 * a malloc'd array (free it), or NULL when out of memory. */
static size_t *jobs_order(const yard_envelope_t *const *envs, size_t n)
{
    size_t *order = malloc((n ? n : 1) * sizeof *order);
    for (size_t i = 0; order && i < n; i++)
        order[i] = i;
    if (order)
        qsort_r(order, n, sizeof *order, cmp_env, (void *)envs);
    return order;
}

/* Nonzero when order[k] repeats the id of order[k - 1] (jobs_order). */
static int jobs_repeat(const yard_envelope_t *const *envs, const size_t *order, size_t k)
{
    return k > 0 &&
           memcmp(envs[order[k]]->id.ptr, envs[order[k - 1]]->id.ptr, YARD_ENV_ID_LEN) == 0;
}

/* The rows a batch statement writes: one per envelope, with its status
 * and attempts (NULL: 0), its JOBS sequence (seqs NULL: 0) and, for an
 * outcome, its attempt record (att NULL: no outcome arrays). */
typedef struct {
    const yard_envelope_t *const *envs;
    const uint64_t *seqs;
    const char *const *statuses;
    const unsigned *attempts;
    const yard_job_attempt_t *att;
    size_t n;
} jobs_rows_t;

/* Writes the rows with stmt (its first JOBS_ARRAYS parameters are the job
 * arrays, then JOBS_FINISH_ARRAYS outcome arrays when rows->att is set;
 * extra holds the rest). Rows are sent in id order; a job id given twice is
 * sent once (its earliest copy). When out is not NULL the statement returns
 * (id, number) rows and out[i] gets the number of envs[i] (0 for its second
 * copy or no row).
 * Returns 0 or an error with nothing written. */
static int jobs_write(PGconn *c, const char *stmt, const char *what, const jobs_rows_t *rows,
                      const char *const *extra, int nextra, int *out)
{
    enum { NARR = JOBS_ARRAYS + JOBS_FINISH_ARRAYS };
    yard_db_array_t arr[NARR] = {{0}};
    size_t n = rows->n;
    const yard_envelope_t *const *envs = rows->envs;
    int narr = rows->att ? NARR : JOBS_ARRAYS;
    size_t *order = jobs_order(envs, n);
    const char *params[NARR + 2];
    PGresult *res = NULL;
    int rc = 0;
    if (!order)
        return YARD_ENOMEM;
    for (size_t k = 0; k < n; k++) {
        size_t i = order[k];
        const yard_envelope_t *e = envs[i];
        if (out)
            out[i] = 0;
        if (jobs_repeat(envs, order, k))
            continue; /* the same job twice in one batch: once is enough */
        /* The trace id is the second field of a traceparent. */
        yard_str_t trace =
            e->traceparent.len >= YARD_TRACE_ID_OFFSET + YARD_TRACE_ID_LEN
                ? (yard_str_t){e->traceparent.ptr + YARD_TRACE_ID_OFFSET, YARD_TRACE_ID_LEN}
                : (yard_str_t){NULL, 0};
        yard_db_array_view(&arr[0], e->id);
        yard_db_array_view(&arr[1], e->queue);
        yard_db_array_view(&arr[2], e->type);
        yard_db_array_num(&arr[3], e->priority);
        yard_db_array_view(&arr[4], e->payload);
        yard_db_array_num(&arr[5], e->max_attempts);
        yard_db_array_num(&arr[6], e->timeout_s);
        yard_db_array_num(&arr[7], e->run_at_ms);
        yard_db_array_view(&arr[8], e->idempotency_key);
        yard_db_array_view(&arr[9], e->api_key_id);
        yard_db_array_view(&arr[10], trace);
        yard_db_array_num(&arr[11], e->created_at_ms);
        yard_db_array_cstr(&arr[12], rows->statuses[i]);
        yard_db_array_num(&arr[13], rows->attempts ? rows->attempts[i] : 0);
        yard_db_array_num(&arr[14], rows->seqs ? (long long)rows->seqs[i] : 0);
        yard_db_array_view(&arr[15], e->traceparent);
        yard_db_array_view(&arr[16], e->notify);
        yard_db_array_view(&arr[17], e->workflow_id);
        yard_db_array_view(&arr[18], e->step_id);
        yard_db_array_view(&arr[19], e->schedule);
        yard_db_array_view(&arr[20], e->secrets);
        if (rows->att) {
            const yard_job_attempt_t *a = &rows->att[i];
            yard_db_array_num(&arr[21], a->started_ms);
            yard_db_array_cstr(&arr[22], a->outcome);
            yard_db_array_cstr(&arr[23], a->error);
            yard_db_array_num(&arr[24], a->duration_ms);
            yard_db_array_cstr(&arr[25], a->result_json);
        }
    }
    for (int i = 0; i < narr; i++)
        if (!(params[i] = yard_db_array_end(&arr[i])))
            rc = YARD_ENOMEM;
    for (int i = 0; i < nextra; i++)
        params[narr + i] = extra[i];
    if (rc == 0)
        rc = yard_db_query_prepared(out ? &res : NULL, c, stmt, what, narr + nextra, params);
    if (rc == 0 && out) {
        /* Map each returned id back to its first position. */
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
    for (int i = 0; i < narr; i++)
        free(arr[i].buf);
    free(order);
    return rc;
}

/* An array of n status names: state for all, or per envelope when state is
 * negative (scheduled when run_at is set, else queued). NULL if out of memory. */
static const char **statuses_new(const yard_envelope_t *const *envs, size_t n, int state)
{
    const char **st = malloc((n ? n : 1) * sizeof *st);
    for (size_t i = 0; st && i < n; i++)
        st[i] = state >= 0 ? state_names[state]
                : envs[i]->run_at_ms > 0 ? state_names[YARD_JOB_SCHEDULED]
                                         : state_names[YARD_JOB_QUEUED];
    return st;
}

/* Writes the n jobs with stmt, each in state (negative: scheduled when
 * run_at is set, else queued); out as jobs_write's. */
static int jobs_write_in(PGconn *c, const char *stmt, const char *what,
                         const yard_envelope_t *const *envs, const uint64_t *seqs, size_t n,
                         int state, int *out)
{
    const char **st = statuses_new(envs, n, state);
    if (!st)
        return YARD_ENOMEM;
    jobs_rows_t rows = {envs, seqs, st, NULL, NULL, n};
    int rc = jobs_write(c, stmt, what, &rows, NULL, 0, out);
    free(st);
    return rc;
}

int yard_jobs_ingest(PGconn *c, const yard_envelope_t *const *envs, const uint64_t *seqs,
                     size_t n)
{
    return jobs_write_in(c, "yard_ingest", "jobs: ingest", envs, seqs, n, -1, NULL);
}

int yard_jobs_hold(PGconn *c, const yard_envelope_t *const *envs, const uint64_t *seqs,
                   size_t n)
{
    return jobs_write_in(c, "yard_ingest", "jobs: hold scheduled", envs, seqs, n,
                         YARD_JOB_SCHEDULED, NULL);
}

int yard_jobs_start(PGconn *c, const yard_envelope_t *const *envs, const uint64_t *seqs,
                    size_t n, int *attempt)
{
    return jobs_write_in(c, "yard_start", "jobs: start", envs, seqs, n, YARD_JOB_RUNNING,
                         attempt);
}

/* Sets dup[i] for every envs[i] whose id an earlier envelope has. Returns 0
 * or YARD_ENOMEM. */
static int jobs_mark_repeats(const yard_envelope_t *const *envs, size_t n, int *dup)
{
    size_t *order = jobs_order(envs, n);
    if (!order)
        return YARD_ENOMEM;
    for (size_t k = 0; k < n; k++)
        dup[order[k]] = jobs_repeat(envs, order, k);
    free(order);
    return 0;
}

int yard_jobs_claim(PGconn *c, const yard_envelope_t *const *envs, const uint64_t *seqs,
                    size_t n, int *attempt)
{
    yard_db_array_t arr[4] = {{0}};
    const char *params[4];
    PGresult *res = NULL;
    int *dup = malloc((n ? n : 1) * sizeof *dup);
    int rc = dup ? jobs_mark_repeats(envs, n, dup) : YARD_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        attempt[i] = 0;
        yard_db_array_view(&arr[0], envs[i]->id);
        yard_db_array_view(&arr[1], envs[i]->api_key_id);
        yard_db_array_view(&arr[2], envs[i]->type);
        yard_db_array_view(&arr[3], envs[i]->payload);
    }
    for (int i = 0; i < 4; i++)
        if (!(params[i] = yard_db_array_end(&arr[i])))
            rc = YARD_ENOMEM;
    if (rc == 0 && n)
        rc = yard_db_query_prepared(&res, c, "yard_claim", "jobs: claim", 4, params);
    for (int i = 0; i < 4; i++)
        free(arr[i].buf);
    size_t nwrite = 0;
    for (int r = 0; rc == 0 && r < PQntuples(res); r++) {
        long pos = atol(PQgetvalue(res, r, 0)) - 1;
        if (pos < 0 || (size_t)pos >= n)
            continue;
        attempt[pos] = dup[pos] ? 0 : atoi(PQgetvalue(res, r, 1));
        nwrite += attempt[pos] == JOBS_CLAIM_WRITE;
    }
    PQclear(res);
    /* Cancel requests on jobs not final yet (rare): the start statement
     * makes those jobs cancelled, then they do not run. */
    if (rc == 0 && nwrite) {
        const yard_envelope_t **w = malloc(nwrite * sizeof *w);
        uint64_t *ws = malloc(nwrite * sizeof *ws);
        int *wa = malloc(nwrite * sizeof *wa);
        size_t k = 0;
        if (!w || !ws || !wa)
            rc = YARD_ENOMEM;
        for (size_t i = 0; rc == 0 && i < n; i++)
            if (attempt[i] == JOBS_CLAIM_WRITE) {
                w[k] = envs[i];
                ws[k++] = seqs ? seqs[i] : 0;
            }
        if (rc == 0)
            rc = yard_jobs_start(c, w, ws, k, wa);
        for (size_t i = 0, m = 0; rc == 0 && i < n; i++)
            if (attempt[i] == JOBS_CLAIM_WRITE)
                attempt[i] = wa[m++];
        free(w);
        free(ws);
        free(wa);
    }
    free(dup);
    return rc;
}

int yard_jobs_mark_dead(PGconn *c, const yard_envelope_t *env, uint64_t seq, unsigned attempts,
                        const char *reason)
{
    const char *status[1] = {state_names[YARD_JOB_DEAD]};
    const char *extra[1] = {reason};
    jobs_rows_t rows = {&env, &seq, status, &attempts, NULL, 1};
    return jobs_write(c, "yard_dead", "jobs: mark dead", &rows, extra, 1, NULL);
}

int yard_jobs_finish(PGconn *c, const yard_job_attempt_t *a, size_t n, const char *worker)
{
    const yard_envelope_t **envs = malloc((n ? n : 1) * sizeof *envs);
    uint64_t *seqs = malloc((n ? n : 1) * sizeof *seqs);
    const char **st = malloc((n ? n : 1) * sizeof *st);
    unsigned *att = malloc((n ? n : 1) * sizeof *att);
    int rc = envs && seqs && st && att ? 0 : YARD_ENOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        envs[i] = a[i].env;
        seqs[i] = a[i].seq;
        st[i] = yard_job_state_name(a[i].state);
        att[i] = a[i].attempt;
    }
    const char *extra[1] = {worker};
    jobs_rows_t rows = {envs, seqs, st, att, a, n};
    if (rc == 0)
        rc = jobs_write(c, "yard_finish", "jobs: finish", &rows, extra, 1, NULL);
    free(envs);
    free(seqs);
    free(st);
    free(att);
    return rc;
}

/* Runs the id-array query stmt and sets flags[i] for the ids it returns. */
static int jobs_flag_ids(PGconn *c, const char *stmt, const char *what, const char *const *ids,
                         size_t n, int *flags)
{
    PGresult *res = NULL;
    char *arr = yard_db_array_of(ids, n);
    for (size_t i = 0; i < n; i++)
        flags[i] = 0;
    if (!arr)
        return YARD_ENOMEM;
    const char *params[1] = {arr};
    int rc = yard_db_query_prepared(&res, c, stmt, what, 1, params);
    free(arr);
    if (rc < 0)
        return rc;
    for (int r = 0; r < PQntuples(res); r++)
        for (size_t i = 0; i < n; i++)
            if (strcmp(PQgetvalue(res, r, 0), ids[i]) == 0)
                flags[i] = 1;
    PQclear(res);
    return 0;
}

int yard_jobs_cancel_requested(PGconn *c, const char *const *ids, size_t n, int *flags)
{
    return jobs_flag_ids(c, "yard_cancel_requested", "jobs: cancel check", ids, n, flags);
}

int yard_jobs_known(PGconn *c, const char *const *ids, size_t n, int *known)
{
    return jobs_flag_ids(c, "yard_known", "jobs: known ids", ids, n, known);
}

int yard_jobs_queued_age(PGconn *c, const char *const *queues, size_t n, double *ages)
{
    PGresult *res = NULL;
    char *arr = yard_db_array_of(queues, n);
    if (!arr)
        return YARD_ENOMEM;
    const char *params[1] = {arr};
    int rc = yard_db_query_prepared(&res, c, "yard_queued_age", "jobs: oldest queued", 1, params);
    free(arr);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n; i++)
        ages[i] = 0;
    for (int r = 0; r < PQntuples(res); r++)
        for (size_t i = 0; i < n; i++)
            if (strcmp(PQgetvalue(res, r, 0), queues[i]) == 0)
                ages[i] = strtod(PQgetvalue(res, r, 1), NULL);
    PQclear(res);
    return 0;
}

/* Runs stmt with params; when it returns a row, parses its first column as
 * a state into *state (may be NULL). Returns 1 (a row), 0 (none) or an error. */
static int jobs_one(PGconn *c, const char *stmt, const char *what, int nparams,
                    const char *const *params, yard_job_state_t *state)
{
    PGresult *res = NULL;
    int rc = yard_db_query_prepared(&res, c, stmt, what, nparams, params);
    if (rc < 0)
        return rc;
    int found = PQntuples(res) > 0;
    if (found && state && yard_job_state_parse(state, PQgetvalue(res, 0, 0)) < 0)
        rc = YARD_EPG;
    PQclear(res);
    return rc < 0 ? rc : found;
}

int yard_jobs_cancel(yard_job_state_t *out, PGconn *c, const char *id, const char *owner)
{
    const char *params[2] = {id, owner && *owner ? owner : NULL};
    yard_job_state_t st;
    int rc = jobs_one(c, "yard_cancel", "jobs: cancel", 2, params, &st);
    if (rc == 0) /* nothing to cancel: say why */
        rc = jobs_one(c, "yard_status", "jobs: status", 2, params, &st);
    if (rc < 0)
        return rc;
    if (rc == 0)
        return YARD_ENOTFOUND;
    *out = st;
    return 0;
}

int yard_jobs_replay(PGconn *c, const char *id)
{
    const char *params[1] = {id};
    int rc = jobs_one(c, "yard_replay", "jobs: replay", 1, params, NULL);
    return rc < 0 ? rc : rc == 1 ? 0 : YARD_ESTATE;
}

int yard_jobs_replay_undo(PGconn *c, const char *id)
{
    const char *params[1] = {id};
    int rc = jobs_one(c, "yard_replay_undo", "jobs: replay undo", 1, params, NULL);
    return rc < 0 ? rc : 0;
}

int yard_jobs_release(PGconn *c, const char *id, uint64_t seq)
{
    char s[24];
    snprintf(s, sizeof s, "%llu", (unsigned long long)seq);
    const char *params[2] = {id, s};
    int rc = jobs_one(c, "yard_release", "jobs: release", 2, params, NULL);
    return rc < 0 ? rc : 0;
}

int yard_jobs_track(PGconn *c, const char *id, uint64_t old_seq, uint64_t seq)
{
    char o[24], s[24];
    snprintf(o, sizeof o, "%llu", (unsigned long long)old_seq);
    snprintf(s, sizeof s, "%llu", (unsigned long long)seq);
    const char *params[3] = {id, o, s};
    int rc = jobs_one(c, "yard_track", "jobs: track", 3, params, NULL);
    return rc < 0 ? rc : 0;
}

/* ---- stuck jobs ----------------------------------------------------------------------- */

static yard_str_t col(PGresult *res, int r, int f)
{
    if (PQgetisnull(res, r, f))
        return (yard_str_t){NULL, 0};
    return (yard_str_t){PQgetvalue(res, r, f), (size_t)PQgetlength(res, r, f)};
}

/* Fills *out from a yard_stale / yard_due result (res is taken over, also
 * on error). Returns 0 or YARD_ENOMEM. */
static int jobs_rows(yard_jobs_stale_t *out, PGresult *res)
{
    size_t n = (size_t)PQntuples(res);
    yard_job_stale_t *rows = calloc(n ? n : 1, sizeof *rows);
    if (!rows) {
        PQclear(res);
        return YARD_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        int r = (int)i;
        yard_envelope_t *e = &rows[i].env;
        yard_env_init(e);
        e->id = col(res, r, 0);
        e->type = col(res, r, 1);
        e->queue = col(res, r, 2);
        e->payload = col(res, r, 3);
        e->priority = (yard_priority_t)atoi(PQgetvalue(res, r, 4));
        e->max_attempts = (uint32_t)atoi(PQgetvalue(res, r, 5));
        e->timeout_s = (uint32_t)atoi(PQgetvalue(res, r, 6));
        e->run_at_ms = strtoll(PQgetvalue(res, r, 7), NULL, 10);
        e->created_at_ms = strtoll(PQgetvalue(res, r, 8), NULL, 10);
        e->idempotency_key = col(res, r, 9);
        e->api_key_id = col(res, r, 10);
        e->traceparent = col(res, r, 11);
        e->notify = col(res, r, 12);
        e->workflow_id = col(res, r, 13);
        e->step_id = col(res, r, 14);
        e->schedule = col(res, r, 15);
        if (yard_job_state_parse(&rows[i].state, PQgetvalue(res, r, 16)) < 0)
            rows[i].state = YARD_JOB_QUEUED;
        rows[i].seq = strtoull(PQgetvalue(res, r, 17), NULL, 10);
        e->secrets = col(res, r, 18);
    }
    out->rows = rows;
    out->n = n;
    out->res = res;
    return 0;
}

/* Runs stmt (the columns of yard_stale) with (older_than_s, limit) and
 * fills *out with its rows. */
static int jobs_rebuild(yard_jobs_stale_t *out, PGconn *c, const char *stmt, const char *what,
                        int64_t older_than_s, size_t limit)
{
    char age[24], lim[24];
    PGresult *res = NULL;
    snprintf(age, sizeof age, "%lld", (long long)older_than_s);
    snprintf(lim, sizeof lim, "%zu", limit);
    const char *params[2] = {age, lim};
    int rc = yard_db_query_prepared(&res, c, stmt, what, 2, params);
    return rc < 0 ? rc : jobs_rows(out, res);
}

int yard_jobs_stale(yard_jobs_stale_t *out, PGconn *c, int64_t older_than_s, size_t limit)
{
    return jobs_rebuild(out, c, "yard_stale", "jobs: stuck jobs", older_than_s, limit);
}

int yard_jobs_unpublished(yard_jobs_stale_t *out, PGconn *c, int64_t older_than_s, size_t limit)
{
    return jobs_rebuild(out, c, "yard_unpublished", "jobs: unpublished workflow steps",
                        older_than_s, limit);
}

/* ---- due scheduled jobs ------------------------------------------------------------------ */

int yard_jobs_due_begin(yard_jobs_stale_t *out, int64_t *db_now_ms, PGconn *c,
                        int64_t clock_offset_s, int64_t lookahead_ms, size_t limit)
{
    char off[24], lim[24], ahead[24];
    PGresult *res = NULL;
    snprintf(off, sizeof off, "%lld", (long long)clock_offset_s);
    snprintf(lim, sizeof lim, "%zu", limit);
    snprintf(ahead, sizeof ahead, "%lld", (long long)lookahead_ms);
    const char *params[3] = {off, lim, ahead};
    int rc = yard_db_exec_as(c, "jobs: due begin", "BEGIN");
    if (rc == 0)
        rc = yard_db_query_prepared(&res, c, "yard_due", "jobs: due scheduled jobs", 3, params);
    if (rc == 0) {
        *db_now_ms = PQntuples(res) > 0 ? strtoll(PQgetvalue(res, 0, 19), NULL, 10) : 0;
        if ((rc = jobs_rows(out, res)) == 0)
            return 0;
    }
    yard_jobs_due_abort(c);
    return rc;
}

int yard_jobs_due_commit(PGconn *c, const char *const *ids, const uint64_t *seqs,
                         const int64_t *acked_ms, size_t n)
{
    int rc = 0;
    if (n > 0) {
        yard_db_array_t a[3] = {{0}};
        const char *params[3];
        for (size_t i = 0; i < n; i++) {
            yard_db_array_cstr(&a[0], ids[i]);
            yard_db_array_num(&a[1], (long long)seqs[i]);
            yard_db_array_num(&a[2], (long long)acked_ms[i]);
        }
        for (int i = 0; i < 3; i++)
            if (!(params[i] = yard_db_array_end(&a[i])))
                rc = YARD_ENOMEM;
        if (rc == 0)
            rc = yard_db_query_prepared(NULL, c, "yard_due_release", "jobs: release due jobs", 3,
                                        params);
        for (int i = 0; i < 3; i++)
            free(a[i].buf);
    }
    if (rc == 0)
        rc = yard_db_exec_as(c, "jobs: due commit", "COMMIT");
    if (rc < 0)
        yard_jobs_due_abort(c);
    return rc;
}

void yard_jobs_due_abort(PGconn *c)
{
    if (c && PQtransactionStatus(c) != PQTRANS_IDLE)
        yard_db_exec_as(c, "jobs: due rollback", "ROLLBACK");
}

void yard_jobs_stale_free(yard_jobs_stale_t *s)
{
    if (!s)
        return;
    free(s->rows);
    PQclear(s->res);
    s->rows = NULL;
    s->res = NULL;
    s->n = 0;
}

/* ---- replays of dead letters ----------------------------------------------------------- */

/* The max_attempts a replay grants: attempts + budget, within the envelope's
 * bound. */
static unsigned replay_grant(long attempts, long budget)
{
    long max = attempts + budget;
    return (unsigned)(max > YARD_ENV_ATTEMPTS_MAX ? YARD_ENV_ATTEMPTS_MAX : max < 1 ? 1 : max);
}

int yard_jobs_replay_plan(yard_jobs_replay_t *out, PGconn *c, const char *id, uint64_t dlq_seq)
{
    const char *params[1] = {id};
    PGresult *res = NULL;
    int rc = yard_db_query_prepared(&res, c, "yard_replay_state", "jobs: replay state", 1, params);
    if (rc < 0)
        return rc;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return YARD_ENOTFOUND;
    }
    yard_jobs_replay_t p = {0};
    if (yard_job_state_parse(&p.state, PQgetvalue(res, 0, 0)) < 0)
        rc = YARD_EPG;
    long attempts = atol(PQgetvalue(res, 0, 1)), max = atol(PQgetvalue(res, 0, 2));
    long budget = atol(PQgetvalue(res, 0, 3));
    uint64_t replayed = strtoull(PQgetvalue(res, 0, 4), NULL, 10);
    int unpublished = PQgetvalue(res, 0, 5)[0] == 't';
    PQclear(res);
    if (rc < 0)
        return rc;
    if (replayed >= dlq_seq) {
        /* Marked by a replay of this letter whose publish was not recorded:
         * publish again (the same Nats-Msg-Id dedupes a publish that was). */
        int resume = replayed == dlq_seq && p.state == YARD_JOB_QUEUED && unpublished;
        p.plan = resume ? YARD_REPLAY_RESUME : YARD_REPLAY_DONE;
        p.max_attempts = (unsigned)max;
    } else if (p.state == YARD_JOB_DEAD) {
        p.plan = YARD_REPLAY_FRESH;
        p.max_attempts = replay_grant(attempts, budget);
    } else {
        p.plan = YARD_REPLAY_REFUSED;
        p.max_attempts = (unsigned)max;
    }
    *out = p;
    return 0;
}

int yard_jobs_replay_mark(unsigned *max_attempts, PGconn *c, const char *id, uint64_t dlq_seq,
                          const char *who)
{
    char seq[24], cap[16];
    PGresult *res = NULL;
    snprintf(seq, sizeof seq, "%llu", (unsigned long long)dlq_seq);
    snprintf(cap, sizeof cap, "%d", YARD_ENV_ATTEMPTS_MAX);
    const char *params[4] = {id, seq, who, cap};
    int rc = yard_db_query_prepared(&res, c, "yard_replay_mark", "jobs: replay", 4, params);
    if (rc < 0)
        return rc;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return YARD_ESTATE;
    }
    *max_attempts = (unsigned)atol(PQgetvalue(res, 0, 0));
    PQclear(res);
    return 0;
}
