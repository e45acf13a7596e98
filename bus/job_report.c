/*
 * job_report.c - read-only job queries for operators (job_report.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "err.h"
#include "id.h"
#include "job_report.h"
#include "log.h"

/* Parses the first column of every row as JSON into an array. */
static int rows_json(json_t **out, PGresult *res)
{
    json_t *arr = json_array();
    for (int r = 0; arr && r < PQntuples(res); r++) {
        json_t *v = json_loads(PQgetvalue(res, r, 0), 0, NULL);
        if (!v || json_array_append_new(arr, v) < 0) {
            json_decref(arr);
            return YARD_ENOMEM;
        }
    }
    if (!arr)
        return YARD_ENOMEM;
    *out = arr;
    return 0;
}

int yard_job_report_list(json_t **out, PGconn *c, const yard_job_filter_t *f)
{
    static const char sql[] =
        "SELECT json_build_object('id', id, 'type', type, 'queue', queue, 'status', status,"
        " 'attempts', attempts, 'max_attempts', max_attempts, 'created_at', created_at,"
        " 'updated_at', updated_at, 'finished_at', finished_at, 'last_error', last_error)::text"
        " FROM jobs WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR queue = $2)"
        " AND ($3::text IS NULL OR type = $3)"
        " AND ($4::bigint IS NULL OR created_at >= to_timestamp($4::bigint / 1000.0))"
        " ORDER BY created_at DESC, id DESC LIMIT $5::int";
    char since[24], limit[16];
    PGresult *res = NULL;
    snprintf(since, sizeof since, "%lld", (long long)f->since_ms);
    snprintf(limit, sizeof limit, "%d", f->limit > 0 ? f->limit : 100);
    const char *params[5] = {f->status, f->queue, f->type, f->since_ms ? since : NULL, limit};
    int rc = yard_db_query(&res, c, "jobs: list", sql, 5, params);
    if (rc < 0)
        return rc;
    rc = rows_json(out, res);
    PQclear(res);
    return rc;
}

int yard_job_report_get(json_t **out, PGconn *c, const char *id)
{
    static const char sql[] =
        "SELECT json_build_object("
        " 'id', id, 'type', type, 'queue', queue, 'status', status,"
        " 'priority', (ARRAY['low','normal','high'])[priority + 1],"
        " 'attempts', attempts, 'max_attempts', max_attempts, 'timeout_s', timeout_s,"
        " 'payload', payload, 'result', result, 'last_error', last_error,"
        " 'run_at', run_at, 'created_at', created_at, 'updated_at', updated_at,"
        " 'started_at', started_at, 'finished_at', finished_at,"
        " 'cancel_requested', cancel_requested_at IS NOT NULL,"
        " 'workflow_id', workflow_id, 'step_id', step_id, 'schedule_name', schedule_name,"
        " 'api_key_id', api_key_id, 'trace_id', trace_id,"
        " 'has_secrets', secrets_sealed IS NOT NULL, 'replays', replays,"
        " 'replayed_at', replayed_at, 'replayed_by', replayed_by,"
        " 'history', (SELECT coalesce(json_agg(json_build_object('attempt', attempt,"
        " 'started_at', started_at, 'finished_at', finished_at, 'outcome', outcome,"
        " 'error', error, 'worker', worker, 'duration_ms', duration_ms) ORDER BY attempt),"
        " '[]'::json) FROM job_attempts a WHERE a.job_id = j.id))::text"
        " FROM jobs j WHERE id = $1::uuid";
    yard_id_t parsed;
    char text[YARD_ID_TEXT_LEN + 1];
    PGresult *res = NULL;
    if (!id || yard_id_parse(&parsed, id, strlen(id)) < 0)
        return YARD_EINVAL;
    yard_id_format(&parsed, text);
    const char *params[1] = {text};
    int rc = yard_db_query(&res, c, "jobs: get", sql, 1, params);
    if (rc < 0)
        return rc;
    json_t *arr = NULL;
    rc = PQntuples(res) ? rows_json(&arr, res) : YARD_ENOTFOUND;
    PQclear(res);
    if (rc == 0) {
        *out = json_incref(json_array_get(arr, 0));
        json_decref(arr);
    }
    return rc;
}
