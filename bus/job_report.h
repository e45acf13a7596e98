/*
 * job_report.h - jobs as operators read them (`yardctl jobs list|get`):
 * read-only queries of PostgreSQL answered as JSON documents built by the
 * server (json_build_object), so the shapes match GET /v1/jobs/{id}.
 */
#ifndef YARD_JOB_REPORT_H
#define YARD_JOB_REPORT_H

#include <stdint.h>

#include <jansson.h>
#include <libpq-fe.h>

/* Which jobs; NULL / 0 fields do not filter. */
typedef struct {
    const char *status; /* a state name (jobs.h) */
    const char *queue;
    const char *type;
    int64_t since_ms;   /* created at or after (Unix ms) */
    int limit;          /* 1..1000 */
} yard_job_filter_t;

/* Sets *out to a JSON array of the jobs f selects, newest first: each
 * {"id","type","queue","status","attempts","max_attempts","created_at",
 * "updated_at","finished_at","last_error"}. Returns 0 (json_decref it), or
 * an error (logged). */
int yard_job_report_list(json_t **out, PGconn *c, const yard_job_filter_t *f);

/* Sets *out to job id in full (the fields of GET /v1/jobs/{id}, the replay
 * record, and "history": its attempts in order). Returns 0, YARD_ENOTFOUND,
 * YARD_EINVAL (id is not a UUID), or an error. */
int yard_job_report_get(json_t **out, PGconn *c, const char *id);

#endif
