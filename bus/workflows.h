/*
 * workflows.h - workflows (DAGs of jobs) in PostgreSQL: every statement on
 * the workflows and workflow_steps tables.
 *
 * A workflow is recorded whole (yard_wf_create: the workflow, its steps,
 * each with its preassigned job id and the job it will become) in one
 * statement that also notifies channel YARD_WF_CHANNEL. The schedule role
 * moves it on (yard_wf_advance, one transaction per call): steps whose
 * parent died, was cancelled or skipped become skipped; steps whose parents
 * all succeeded are released (their job rows written through jobs.h,
 * status queued, payload plus the parents' results under "inputs"); a
 * workflow with every step final becomes succeeded or failed. The caller
 * then publishes the released jobs (Nats-Msg-Id = job id) and records
 * their sequence (yard_jobs_track). A crash between the commit and the
 * publish leaves queued jobs without a sequence, which
 * yard_jobs_unpublished finds for a republish under the same id.
 *
 * A released step follows its job: the trigger of 0008_workflow_release.sql
 * copies the job's status and result to the step in the job's own
 * transaction and notifies YARD_WF_CHANNEL when the job is final.
 *
 * Step states: waiting (not released), queued/scheduled/running/failed
 * (its job's), succeeded, dead, cancelled, skipped (a parent did not
 * succeed). Workflow states: running, succeeded, failed, cancelled.
 *
 * Errors are YARD_E* codes (db.h), logged once. The caller owns the
 * connection, prepared for jobs.h (yard_jobs_connect): advance and cancel
 * change job rows through it; this module's own statements are plain SQL.
 */
#ifndef YARD_WORKFLOWS_H
#define YARD_WORKFLOWS_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "envelope.h"

/* The channel a finished step job or a new workflow notifies (payload: the
 * workflow id). */
#define YARD_WF_CHANNEL "yard_workflows"

/* One step of a new workflow. job_json is the job it becomes, a JSON object
 * with "type", "queue", "priority" (0..2), "max_attempts", "timeout_s" and
 * optionally "payload" and "notify" (JSON values). */
typedef struct {
    const char *step_id;
    const char *job_id; /* uuid text */
    const char *const *depends_on;
    size_t ndeps;
    const char *job_json;
} yard_wf_step_new_t;

typedef struct {
    const char *id;          /* uuid text */
    const char *name;        /* "" for none */
    const char *api_key_id;  /* uuid text, or NULL (auth disabled) */
    const char *traceparent; /* or NULL */
    const yard_wf_step_new_t *steps;
    size_t nsteps;
} yard_wf_new_t;

/* Records wf and its steps (all waiting) in one statement, which notifies
 * YARD_WF_CHANNEL on commit. Returns 0, YARD_EEXIST when the id or a job id
 * is taken, or an error with nothing written. */
int yard_wf_create(PGconn *c, const yard_wf_new_t *wf);

/* Copies workflow id's status (of owner's API key, or any when owner is
 * NULL) into status (16 bytes). Returns 0, YARD_ENOTFOUND, or an error. */
int yard_wf_status(char status[16], PGconn *c, const char *id, const char *owner);

/* What one advance did. envs are the released jobs (views into res),
 * to publish to jobs.execute.<queue> with Nats-Msg-Id = id. */
typedef struct {
    yard_envelope_t *envs;
    size_t released;
    size_t skipped;  /* steps skipped: PQgetvalue(skip, i, 0) is the step id */
    char status[16]; /* the workflow's status after, "" when there is none */
    PGresult *res;   /* the released steps' rows */
    PGresult *row;   /* the workflow's row (id, key, traceparent of envs) */
    PGresult *skip;  /* the skipped steps' ids, or NULL */
} yard_wf_advance_t;

/* Moves workflow id on, in one transaction (see above); now_ms stamps the
 * released jobs' created_at. Fills *out (free with yard_wf_advance_free;
 * nothing released when the workflow is gone or not running). Returns 0 or
 * an error with nothing written (try again later). */
int yard_wf_advance(yard_wf_advance_t *out, PGconn *c, const char *id, int64_t now_ms);
void yard_wf_advance_free(yard_wf_advance_t *a);

/* Sets *ids (a PGresult the caller PQclears; column 0 is the id) to at most
 * limit running workflows with an id above after ("" for the first page),
 * in id order: a sweep pages through all of them. Returns 0 or an error. */
int yard_wf_running(PGresult **ids, PGconn *c, const char *after, size_t limit);

/* What a cancel did. */
typedef struct {
    char status[16];   /* the workflow's status after (or the final one it had) */
    char **running;    /* job ids whose workers must be told (cancel requested) */
    size_t nrunning;
    size_t cancelled;  /* steps cancelled by this call */
} yard_wf_cancel_t;

/* Cancels workflow id (of owner's API key, or any when owner is NULL) if it
 * runs, in one transaction: its waiting steps become cancelled, its
 * released jobs are cancelled as yard_jobs_cancel does (a running one gets
 * its cancel requested: send the cancel notice for each of out->running),
 * the workflow becomes cancelled. A workflow already final is left alone
 * (out->status says which). Returns 0 (free with yard_wf_cancel_free),
 * YARD_ENOTFOUND, or an error with nothing written. */
int yard_wf_cancel(yard_wf_cancel_t *out, PGconn *c, const char *id, const char *owner);
void yard_wf_cancel_free(yard_wf_cancel_t *r);

/* Sets *json (malloc'd) to the workflow as GET /v1/workflows/{id} shows
 * it: id, name, status, created_at, finished_at and its steps in
 * submission order with id, job_id, depends_on, status, attempts, result,
 * error. Returns 0, YARD_ENOTFOUND (none for this owner; NULL: any), or an
 * error. */
int yard_wf_get_json(char **json, PGconn *c, const char *id, const char *owner);

/* Sets *json (malloc'd) to {"workflows":[...],"next_cursor":id|null}: at
 * most limit workflows of owner (NULL: any) in status (NULL: any) older
 * than the workflow cursor (NULL: from the newest), newest first (by
 * created_at, then id; next_cursor is the last one's id), each with id, name,
 * status, created_at, finished_at, steps_total, steps_done. Returns 0 or an
 * error. */
int yard_wf_list_json(char **json, PGconn *c, const char *owner, const char *status,
                      const char *cursor, size_t limit);

#endif
