/*
 * jobs_list.h - reading jobs for people and scripts: pages of the job list
 * (GET /v1/jobs) and a job's attempts (GET /v1/jobs/{id}/attempts).
 *
 * The gateway and yardctl share this code, so a job reads the same
 * everywhere: YARD_JOBS_JSON_SQL is the one SQL expression that renders a
 * job row as the API's job object (also for GET /v1/jobs/{id}).
 *
 * The list is newest first by (created_at, id): created_at is the time the
 * gateway accepted the job (from its envelope), so a job added while a client
 * pages sorts before the first page and never shifts later pages. The cursor
 * is opaque to clients: base64url of the last row's (created_at in
 * microseconds, id); the next page starts strictly after it. Indexes:
 * schemas/migrations/0011_job_list_indexes.sql.
 *
 * Everything here runs blocking queries on a connection the calling thread
 * owns (in the gateway: a pool thread, never the loop).
 */
#ifndef YARD_JOBS_LIST_H
#define YARD_JOBS_LIST_H

#include <stddef.h>

#include <libpq-fe.h>

#define YARD_JOBS_LIST_DEFAULT 50  /* rows per page when none is asked for */
#define YARD_JOBS_LIST_MAX 500     /* the largest page; more is refused */
#define YARD_JOBS_ERROR_TEXT_MAX 200 /* bytes of an error-text filter */
#define YARD_JOBS_CURSOR_MAX 96    /* bytes of a cursor's text */

/* The SQL expression (over a row of jobs, unqualified columns) that renders
 * the API's job object as json. */
#define YARD_JOBS_JSON_SQL                                                                   \
    "json_build_object("                                                                    \
    " 'id', id, 'type', type, 'queue', queue, 'status', status,"                           \
    " 'priority', (ARRAY['low','normal','high'])[priority + 1],"                           \
    " 'attempts', attempts, 'max_attempts', max_attempts, 'timeout_s', timeout_s,"         \
    " 'payload', payload, 'result', result, 'last_error', last_error,"                     \
    " 'run_at', run_at, 'created_at', created_at, 'updated_at', updated_at,"               \
    " 'started_at', started_at, 'finished_at', finished_at,"                               \
    " 'cancel_requested', cancel_requested_at IS NOT NULL,"                                \
    " 'workflow_id', workflow_id, 'step_id', step_id, 'schedule_name', schedule_name,"     \
    " 'trace_id', trace_id, 'has_secrets', secrets_sealed IS NOT NULL)"

/* What a page asks for. Every pointer may be NULL (no such filter); strings
 * are NUL-terminated and borrowed for the call. */
typedef struct {
    const char *status; /* a job state name (jobs.h) */
    const char *queue;  /* a queue name (names.h) */
    const char *type;   /* a job type name (names.h) */
    const char *since;  /* RFC 3339: created_at >= since */
    const char *until;  /* RFC 3339: created_at < until */
    const char *error;  /* case-insensitive substring of last_error */
    const char *owner;  /* api key id (uuid text): only its jobs */
    const char *cursor; /* next_cursor of the page before */
    size_t limit;       /* 1..YARD_JOBS_LIST_MAX; 0 means YARD_JOBS_LIST_DEFAULT */
} yard_jobs_filter_t;

/* Checks every field of f against the rules above. Returns 0, or YARD_EINVAL
 * with a message for the client in why (cap bytes) naming the field, e.g.
 * "status: must be one of queued, scheduled, ...". Logs nothing. */
int yard_jobs_filter_check(const yard_jobs_filter_t *f, char *why, size_t cap);

/* Reads one page: sets *out to a malloc'd NUL-terminated JSON document
 * {"jobs":[job...],"next_cursor":"..."|null} (the caller frees it), where
 * next_cursor is null on the last page. f must pass yard_jobs_filter_check
 * (YARD_EINVAL otherwise, nothing run). Returns 0, a yard_db_query error
 * (logged) or YARD_ENOMEM; *out is set only on success. */
int yard_jobs_list(char **out, PGconn *c, const yard_jobs_filter_t *f);

/* Reads the attempts of job id (uuid text), oldest first, when owner (api key
 * id, or NULL for any) submitted it: sets *out to a malloc'd JSON document
 * {"job_id":"...","attempts":[{"attempt","started_at","finished_at",
 * "outcome","error","worker","duration_ms"}...]} (the caller frees it).
 * Returns 0, YARD_ENOTFOUND when there is no such job for owner,
 * YARD_EINVAL for an id that is not a uuid, a yard_db_query error (logged)
 * or YARD_ENOMEM; *out is set only on success. */
int yard_jobs_attempts(char **out, PGconn *c, const char *id, const char *owner);

#endif
