/*
 * workflows.c - the statements on workflows and workflow_steps
 * (workflows.h). Job rows are written only through jobs.h (the release
 * ingests its jobs there); everything here is about the DAG around them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "db_array.h"
#include "err.h"
#include "jobs.h"
#include "log.h"
#include "workflows.h"

/* Step states that are not final: the workflow waits for them. */
#define WF_STEP_OPEN "('waiting', 'queued', 'scheduled', 'running', 'failed')"
/* Step states that make their dependents skipped. */
#define WF_STEP_BROKEN "('dead', 'cancelled', 'skipped')"
/* Step states after which nothing of the step runs again. */
#define WF_STEP_DONE "('succeeded', 'dead', 'cancelled', 'skipped')"

/* ---- create ------------------------------------------------------------------ */

/* $1 id, $2 name, $3 key, $4 traceparent, then per step (arrays): $5 step
 * id, $6 job id, $7 depends_on (each an array literal), $8 job. One
 * statement: the workflow, its steps, the notice on commit. */
static const char create_sql[] =
    "WITH w AS (INSERT INTO workflows (id, name, api_key_id, traceparent)"
    " VALUES ($1::uuid, $2, $3::uuid, $4) RETURNING id),"
    " s AS (INSERT INTO workflow_steps (workflow_id, step_id, job_id, depends_on, job, position)"
    " SELECT w.id, u.step, u.job_id, u.deps::text[], u.job::jsonb, (u.pos - 1)::int"
    " FROM w, unnest($5::text[], $6::uuid[], $7::text[], $8::text[])"
    " WITH ORDINALITY AS u(step, job_id, deps, job, pos) RETURNING 1)"
    " SELECT pg_notify('" YARD_WF_CHANNEL "', $1::uuid::text), (SELECT count(*) FROM s)";

int yard_wf_create(PGconn *c, const yard_wf_new_t *wf)
{
    yard_db_array_t arr[4] = {{0}};
    const char *params[8] = {wf->id, wf->name ? wf->name : "", wf->api_key_id, wf->traceparent};
    int rc = 0;
    for (size_t i = 0; i < wf->nsteps && rc == 0; i++) {
        const yard_wf_step_new_t *s = &wf->steps[i];
        char *deps = yard_db_array_of(s->depends_on, s->ndeps);
        if (!deps) {
            rc = YARD_ENOMEM;
            break;
        }
        yard_db_array_cstr(&arr[0], s->step_id);
        yard_db_array_cstr(&arr[1], s->job_id);
        yard_db_array_cstr(&arr[2], deps);
        yard_db_array_cstr(&arr[3], s->job_json);
        free(deps);
    }
    for (int i = 0; i < 4; i++)
        if (!(params[4 + i] = yard_db_array_end(&arr[i])))
            rc = YARD_ENOMEM;
    if (rc == 0)
        rc = yard_db_query(NULL, c, "workflows: create", create_sql, 8, params);
    for (int i = 0; i < 4; i++)
        free(arr[i].buf);
    return rc;
}

int yard_wf_status(char status[16], PGconn *c, const char *id, const char *owner)
{
    PGresult *res = NULL;
    const char *params[2] = {id, owner && *owner ? owner : NULL};
    int rc = yard_db_query(&res, c, "workflows: status",
                           "SELECT status FROM workflows WHERE id = $1::uuid"
                           " AND ($2::uuid IS NULL OR api_key_id = $2::uuid)",
                           2, params);
    if (rc < 0)
        return rc;
    if (PQntuples(res) > 0)
        snprintf(status, 16, "%s", PQgetvalue(res, 0, 0));
    else
        rc = YARD_ENOTFOUND;
    PQclear(res);
    return rc;
}

/* ---- advance ----------------------------------------------------------------- */

/* $1 workflow id. Locks the workflow: advances of one workflow (two
 * schedule replicas, a cancel) run one after the other. */
static const char lock_sql[] =
    "SELECT status, api_key_id::text, traceparent, id::text FROM workflows WHERE id = $1::uuid"
    " FOR UPDATE";

/* Waiting steps downstream of a step that died, was cancelled or skipped. */
static const char skip_sql[] =
    "WITH RECURSIVE bad(step_id) AS ("
    " SELECT step_id FROM workflow_steps WHERE workflow_id = $1::uuid AND status IN "
    WF_STEP_BROKEN
    " UNION SELECT c.step_id FROM workflow_steps c JOIN bad ON bad.step_id = ANY(c.depends_on)"
    " WHERE c.workflow_id = $1::uuid AND c.status = 'waiting')"
    " UPDATE workflow_steps s SET status = 'skipped' FROM bad"
    " WHERE s.workflow_id = $1::uuid AND s.step_id = bad.step_id AND s.status = 'waiting'"
    " RETURNING s.step_id";

/* Waiting steps whose parents all succeeded, with their jobs: the payload
 * of a step with parents gets their results under "inputs". */
static const char ready_sql[] =
    "SELECT s.step_id, s.job_id::text, s.job->>'type', coalesce(s.job->>'queue', 'default'),"
    " CASE WHEN cardinality(s.depends_on) = 0 THEN (s.job->'payload')::text"
    " ELSE (coalesce(s.job->'payload', '{}'::jsonb) || jsonb_build_object('inputs',"
    " (SELECT jsonb_object_agg(p.step_id, coalesce(p.result, 'null'::jsonb))"
    " FROM workflow_steps p WHERE p.workflow_id = s.workflow_id"
    " AND p.step_id = ANY(s.depends_on))))::text END,"
    " coalesce((s.job->>'priority')::int, 1), coalesce((s.job->>'max_attempts')::int, 5),"
    " coalesce((s.job->>'timeout_s')::int, 300), (s.job->'notify')::text"
    " FROM workflow_steps s WHERE s.workflow_id = $1::uuid AND s.status = 'waiting'"
    " AND NOT EXISTS (SELECT 1 FROM workflow_steps p WHERE p.workflow_id = s.workflow_id"
    " AND p.step_id = ANY(s.depends_on) AND p.status <> 'succeeded')"
    " ORDER BY s.position";

/* $1 workflow id, $2 step ids released. */
static const char released_sql[] =
    "UPDATE workflow_steps SET status = 'queued', released_at = now()"
    " WHERE workflow_id = $1::uuid AND step_id = ANY($2::text[]) AND status = 'waiting'";

static const char finish_sql[] =
    "UPDATE workflows SET status = CASE WHEN EXISTS (SELECT 1 FROM workflow_steps"
    " WHERE workflow_id = $1::uuid AND status <> 'succeeded') THEN 'failed' ELSE 'succeeded' END,"
    " finished_at = now()"
    " WHERE id = $1::uuid AND status = 'running' AND NOT EXISTS (SELECT 1 FROM workflow_steps"
    " WHERE workflow_id = $1::uuid AND status IN " WF_STEP_OPEN ") RETURNING status";

static yard_str_t col(PGresult *res, int r, int f)
{
    if (PQgetisnull(res, r, f) || PQgetlength(res, r, f) == 0)
        return (yard_str_t){NULL, 0};
    return (yard_str_t){PQgetvalue(res, r, f), (size_t)PQgetlength(res, r, f)};
}

static void wf_rollback(PGconn *c)
{
    if (yard_db_ok(c))
        yard_db_exec_as(c, "workflows: rollback", "ROLLBACK");
}

/* Builds out->envs from the ready rows (views into out->res and the
 * workflow's row out->row, both owned by out). */
static int wf_envs(yard_wf_advance_t *out, PGresult *res, int64_t now_ms)
{
    size_t n = (size_t)PQntuples(res);
    out->envs = calloc(n ? n : 1, sizeof *out->envs);
    if (!out->envs)
        return YARD_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        int r = (int)i;
        yard_envelope_t *e = &out->envs[i];
        yard_env_init(e);
        e->step_id = col(res, r, 0);
        e->id = col(res, r, 1);
        e->type = col(res, r, 2);
        e->queue = col(res, r, 3);
        e->payload = col(res, r, 4);
        e->priority = (yard_priority_t)atoi(PQgetvalue(res, r, 5));
        e->max_attempts = (uint32_t)atoi(PQgetvalue(res, r, 6));
        e->timeout_s = (uint32_t)atoi(PQgetvalue(res, r, 7));
        e->notify = col(res, r, 8);
        e->created_at_ms = now_ms;
        e->workflow_id = col(out->row, 0, 3);
        e->api_key_id = col(out->row, 0, 1);
        e->traceparent = col(out->row, 0, 2);
    }
    out->released = n;
    return 0;
}

/* The ready steps: their jobs written (queued), the steps marked queued. */
static int wf_release(yard_wf_advance_t *out, PGconn *c, const char *id, int64_t now_ms)
{
    const char *params[2] = {id, NULL};
    int rc = yard_db_query(&out->res, c, "workflows: ready steps", ready_sql, 1, params);
    if (rc < 0 || PQntuples(out->res) == 0)
        return rc;
    if ((rc = wf_envs(out, out->res, now_ms)) < 0)
        return rc;
    const yard_envelope_t **envs = malloc(out->released * sizeof *envs);
    yard_db_array_t steps = {0};
    if (!envs)
        return YARD_ENOMEM;
    for (size_t i = 0; i < out->released; i++) {
        envs[i] = &out->envs[i];
        yard_db_array_view(&steps, out->envs[i].step_id);
    }
    rc = yard_jobs_ingest(c, envs, NULL, out->released);
    free(envs);
    if (rc == 0 && !(params[1] = yard_db_array_end(&steps)))
        rc = YARD_ENOMEM;
    if (rc == 0)
        rc = yard_db_query(NULL, c, "workflows: mark released", released_sql, 2, params);
    free(steps.buf);
    return rc;
}

int yard_wf_advance(yard_wf_advance_t *out, PGconn *c, const char *id, int64_t now_ms)
{
    PGresult *fin = NULL;
    const char *params[1] = {id};
    memset(out, 0, sizeof *out);
    int rc = yard_db_exec_as(c, "workflows: begin", "BEGIN");
    if (rc < 0)
        return rc;
    if ((rc = yard_db_query(&out->row, c, "workflows: lock", lock_sql, 1, params)) < 0)
        goto fail;
    if (PQntuples(out->row) == 0 || strcmp(PQgetvalue(out->row, 0, 0), "running") != 0) {
        if (PQntuples(out->row) > 0)
            snprintf(out->status, sizeof out->status, "%s", PQgetvalue(out->row, 0, 0));
        if ((rc = yard_db_exec_as(c, "workflows: commit", "COMMIT")) < 0)
            goto fail;
        return 0;
    }
    if ((rc = yard_db_query(&out->skip, c, "workflows: skip", skip_sql, 1, params)) < 0)
        goto fail;
    out->skipped = (size_t)PQntuples(out->skip);
    if ((rc = wf_release(out, c, id, now_ms)) < 0)
        goto fail;
    if ((rc = yard_db_query(&fin, c, "workflows: finish", finish_sql, 1, params)) < 0)
        goto fail;
    snprintf(out->status, sizeof out->status, "%s",
             PQntuples(fin) > 0 ? PQgetvalue(fin, 0, 0) : "running");
    if ((rc = yard_db_exec_as(c, "workflows: commit", "COMMIT")) < 0)
        goto fail;
    PQclear(fin);
    return 0;
fail:
    wf_rollback(c);
    PQclear(fin);
    yard_wf_advance_free(out);
    return rc;
}

void yard_wf_advance_free(yard_wf_advance_t *a)
{
    if (!a)
        return;
    free(a->envs);
    PQclear(a->res);
    PQclear(a->row);
    PQclear(a->skip);
    memset(a, 0, sizeof *a);
}

int yard_wf_running(PGresult **ids, PGconn *c, const char *after, size_t limit)
{
    char lim[24];
    snprintf(lim, sizeof lim, "%zu", limit);
    const char *params[2] = {after && *after ? after : NULL, lim};
    return yard_db_query(ids, c, "workflows: running",
                         "SELECT id::text FROM workflows WHERE status = 'running'"
                         " AND ($1::uuid IS NULL OR id > $1::uuid) ORDER BY id LIMIT $2::bigint",
                         2, params);
}

/* ---- cancel ------------------------------------------------------------------ */

int yard_wf_cancel(yard_wf_cancel_t *out, PGconn *c, const char *id, const char *owner)
{
    PGresult *lock = NULL, *jobs = NULL, *waiting = NULL;
    const char *params[2] = {id, owner && *owner ? owner : NULL};
    memset(out, 0, sizeof *out);
    int rc = yard_db_exec_as(c, "workflows: begin", "BEGIN");
    if (rc < 0)
        return rc;
    rc = yard_db_query(&lock, c, "workflows: lock for cancel",
                       "SELECT status FROM workflows WHERE id = $1::uuid"
                       " AND ($2::uuid IS NULL OR api_key_id = $2::uuid) FOR UPDATE",
                       2, params);
    if (rc < 0)
        goto fail;
    if (PQntuples(lock) == 0) {
        rc = YARD_ENOTFOUND;
        goto fail;
    }
    snprintf(out->status, sizeof out->status, "%s", PQgetvalue(lock, 0, 0));
    if (strcmp(out->status, "running") != 0) {
        PQclear(lock);
        return yard_db_exec_as(c, "workflows: commit", "COMMIT");
    }
    /* Released jobs first (in id order, as every batch of jobs is locked),
     * then the waiting steps: the trigger of each job touches its step. */
    rc = yard_db_query(&jobs, c, "workflows: open jobs",
                       "SELECT job_id::text FROM workflow_steps WHERE workflow_id = $1::uuid"
                       " AND status IN ('queued', 'scheduled', 'running', 'failed')"
                       " ORDER BY job_id",
                       1, params);
    if (rc < 0)
        goto fail;
    size_t n = (size_t)PQntuples(jobs);
    out->running = calloc(n ? n : 1, sizeof *out->running);
    if (!out->running) {
        rc = YARD_ENOMEM;
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        yard_job_state_t st;
        const char *job = PQgetvalue(jobs, (int)i, 0);
        rc = yard_jobs_cancel(&st, c, job, NULL);
        if (rc == YARD_ENOTFOUND)
            continue; /* the row is not written yet: cannot happen, a release writes it */
        if (rc < 0)
            goto fail;
        if (st == YARD_JOB_CANCELLED)
            out->cancelled++;
        if (st == YARD_JOB_RUNNING) {
            if (!(out->running[out->nrunning] = strdup(job))) {
                rc = YARD_ENOMEM;
                goto fail;
            }
            out->nrunning++;
            out->cancelled++;
        }
    }
    rc = yard_db_query(&waiting, c, "workflows: cancel waiting steps",
                       "UPDATE workflow_steps SET status = 'cancelled'"
                       " WHERE workflow_id = $1::uuid AND status = 'waiting'",
                       1, params);
    if (rc < 0)
        goto fail;
    out->cancelled += strtoul(PQcmdTuples(waiting), NULL, 10);
    rc = yard_db_query(NULL, c, "workflows: cancel",
                       "UPDATE workflows SET status = 'cancelled', finished_at = now()"
                       " WHERE id = $1::uuid",
                       1, params);
    if (rc < 0 || (rc = yard_db_exec_as(c, "workflows: commit", "COMMIT")) < 0)
        goto fail;
    snprintf(out->status, sizeof out->status, "cancelled");
    PQclear(lock);
    PQclear(jobs);
    PQclear(waiting);
    return 0;
fail:
    wf_rollback(c);
    PQclear(lock);
    PQclear(jobs);
    PQclear(waiting);
    yard_wf_cancel_free(out);
    return rc;
}

void yard_wf_cancel_free(yard_wf_cancel_t *r)
{
    if (!r)
        return;
    for (size_t i = 0; r->running && i < r->nrunning; i++)
        free(r->running[i]);
    free(r->running);
    r->running = NULL;
    r->nrunning = 0;
}

/* ---- reads ------------------------------------------------------------------- */

static const char get_sql[] =
    "SELECT json_build_object('id', w.id, 'name', w.name, 'status', w.status,"
    " 'created_at', w.created_at, 'finished_at', w.finished_at,"
    " 'steps', coalesce((SELECT json_agg(json_build_object('id', s.step_id, 'job_id', s.job_id,"
    " 'depends_on', s.depends_on, 'status', s.status, 'attempts', coalesce(j.attempts, 0),"
    " 'result', coalesce(j.result, s.result), 'error', j.last_error) ORDER BY s.position)"
    " FROM workflow_steps s LEFT JOIN jobs j ON j.id = s.job_id"
    " WHERE s.workflow_id = w.id), '[]'::json))::text"
    " FROM workflows w WHERE w.id = $1::uuid AND ($2::uuid IS NULL OR w.api_key_id = $2::uuid)";

/* $1 owner, $2 status, $3 cursor, $4 limit. One more row than the page
 * tells whether there is a next one. */
static const char list_sql[] =
    "WITH page AS (SELECT w.*, row_number() OVER (ORDER BY w.created_at DESC, w.id DESC) AS rn"
    " FROM (SELECT id, name, status, created_at, finished_at FROM workflows"
    " WHERE ($1::uuid IS NULL OR api_key_id = $1::uuid) AND ($2::text IS NULL OR status = $2)"
    " AND ($3::uuid IS NULL OR (created_at, id) < (SELECT c.created_at, c.id FROM workflows c"
    " WHERE c.id = $3::uuid)) ORDER BY created_at DESC, id DESC LIMIT $4::int + 1) w)"
    " SELECT json_build_object('workflows', coalesce(json_agg(json_build_object("
    " 'id', p.id, 'name', p.name, 'status', p.status, 'created_at', p.created_at,"
    " 'finished_at', p.finished_at,"
    " 'steps_total', (SELECT count(*) FROM workflow_steps s WHERE s.workflow_id = p.id),"
    " 'steps_done', (SELECT count(*) FROM workflow_steps s WHERE s.workflow_id = p.id"
    " AND s.status IN " WF_STEP_DONE ")) ORDER BY p.rn) FILTER (WHERE p.rn <= $4::int),"
    " '[]'::json), 'next_cursor', CASE WHEN count(*) > $4::int"
    " THEN max(p.id::text) FILTER (WHERE p.rn = $4::int) END)::text FROM page p";

/* Runs sql and copies the first column of its first row into *json.
 * Returns 0, YARD_ENOTFOUND (no row) or an error. */
static int wf_json(char **json, PGconn *c, const char *what, const char *sql, int nparams,
                   const char *const *params)
{
    PGresult *res = NULL;
    int rc = yard_db_query(&res, c, what, sql, nparams, params);
    if (rc < 0)
        return rc;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return YARD_ENOTFOUND;
    }
    char *s = strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    if (!s)
        return YARD_ENOMEM;
    *json = s;
    return 0;
}

int yard_wf_get_json(char **json, PGconn *c, const char *id, const char *owner)
{
    const char *params[2] = {id, owner && *owner ? owner : NULL};
    return wf_json(json, c, "workflows: get", get_sql, 2, params);
}

int yard_wf_list_json(char **json, PGconn *c, const char *owner, const char *status,
                      const char *cursor, size_t limit)
{
    char lim[24];
    snprintf(lim, sizeof lim, "%zu", limit);
    const char *params[4] = {owner && *owner ? owner : NULL, status && *status ? status : NULL,
                             cursor && *cursor ? cursor : NULL, lim};
    return wf_json(json, c, "workflows: list", list_sql, 4, params);
}
