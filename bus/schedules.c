/*
 * schedules.c - the statements on cron schedules (schedules.h).
 *
 * Plain parameterised statements (not prepared): schedules change rarely
 * and a firing is one row at a time, so a prepare per connection would
 * cost more than it saves.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "db.h"
#include "err.h"
#include "log.h"
#include "schedules.h"

#define UTC_TEXT(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
/* One schedule's JSON (schedules.h), from row s. */
#define SCHED_JSON                                                                             \
    "json_build_object('name', s.name, 'cron', s.cron, 'timezone', s.timezone, 'job', s.job,"  \
    " 'catch_up', s.catch_up, 'paused', NOT s.enabled, 'next_fire_at', " UTC_TEXT("s.next_run_at") \
    ", 'last_fire_at', " UTC_TEXT("s.last_run_at") ", 'last_job_id', s.last_job_id,"           \
    " 'created_at', " UTC_TEXT("s.created_at") ")"
#define OWNER_IS(p) "(" p "::uuid IS NULL OR s.api_key_id = " p "::uuid)"

int yard_schedule_name_valid(const char *name, size_t len)
{
    if (!name || len == 0 || len > YARD_SCHEDULE_NAME_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)name[i];
        if (ch <= ' ' || ch == 0x7f || ch == '/')
            return 0;
    }
    return 1;
}

static void secs_text(char out[24], int64_t s)
{
    snprintf(out, 24, "%lld", (long long)s);
}

/* Runs sql with params; with a row, copies its first column into *json_out
 * (malloc'd). Returns 0, YARD_ENOTFOUND (no row) or an error. */
/* PostgreSQL's json text has blanks after ':' and ','; the API answers
 * compact JSON, keys in the order written. A malloc'd copy, or NULL. */
static char *sched_compact(const char *text)
{
    json_error_t e;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &e);
    char *out = v ? json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY) : NULL;
    json_decref(v);
    return out;
}

static int sched_json_query(char **json_out, PGconn *c, const char *what, const char *sql,
                            int nparams, const char *const *params)
{
    PGresult *res = NULL;
    int rc = yard_db_query(&res, c, what, sql, nparams, params);
    if (rc < 0)
        return rc;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return YARD_ENOTFOUND;
    }
    char *json = json_out ? sched_compact(PQgetvalue(res, 0, 0)) : NULL;
    PQclear(res);
    if (json_out && !json)
        return YARD_ENOMEM;
    if (json_out)
        *json_out = json;
    return 0;
}

int yard_schedules_put(char **json_out, int *created, PGconn *c, const yard_schedule_def_t *d,
                       const char *owner)
{
    static const char sql[] =
        "INSERT INTO schedules AS s (name, cron, timezone, job, enabled, catch_up, api_key_id,"
        " next_run_at) VALUES ($1, $2, $3, $4::jsonb, NOT $5::boolean, $6, $7::uuid,"
        " CASE WHEN $8::bigint > 0 THEN to_timestamp($8::bigint) END)"
        " ON CONFLICT (name) DO UPDATE SET cron = EXCLUDED.cron, timezone = EXCLUDED.timezone,"
        " job = EXCLUDED.job, enabled = EXCLUDED.enabled, catch_up = EXCLUDED.catch_up,"
        " next_run_at = EXCLUDED.next_run_at WHERE " OWNER_IS("$9")
        " RETURNING (xmax = 0)::int::text, " SCHED_JSON "::text";
    char next[24];
    secs_text(next, d->next_fire_s);
    const char *params[9] = {d->name,     d->cron,       d->timezone,
                             d->job_json, d->paused ? "true" : "false",
                             d->catch_up, d->api_key_id, next,
                             owner};
    PGresult *res = NULL;
    int rc = yard_db_query(&res, c, "schedules: put", sql, 9, params);
    if (rc < 0)
        return rc;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return YARD_EEXIST;
    }
    char *json = sched_compact(PQgetvalue(res, 0, 1));
    int was_created = strcmp(PQgetvalue(res, 0, 0), "1") == 0;
    PQclear(res);
    if (!json)
        return YARD_ENOMEM;
    *json_out = json;
    *created = was_created;
    return 0;
}

int yard_schedules_get(char **json_out, PGconn *c, const char *name, const char *owner)
{
    static const char sql[] = "SELECT " SCHED_JSON "::text FROM schedules s WHERE s.name = $1"
                              " AND " OWNER_IS("$2");
    const char *params[2] = {name, owner};
    return sched_json_query(json_out, c, "schedules: get", sql, 2, params);
}

int yard_schedules_list(char **json_out, PGconn *c, const char *owner)
{
    static const char sql[] =
        "SELECT json_build_object('schedules', coalesce(json_agg(" SCHED_JSON
        " ORDER BY s.name), '[]'::json))::text FROM schedules s WHERE " OWNER_IS("$1");
    const char *params[1] = {owner};
    return sched_json_query(json_out, c, "schedules: list", sql, 1, params);
}

int yard_schedules_delete(PGconn *c, const char *name, const char *owner)
{
    static const char sql[] =
        "WITH d AS (DELETE FROM schedules s WHERE s.name = $1 AND " OWNER_IS("$2")
        " RETURNING s.name), f AS (DELETE FROM schedule_firings WHERE schedule_name IN"
        " (SELECT name FROM d)) SELECT name FROM d";
    const char *params[2] = {name, owner};
    return sched_json_query(NULL, c, "schedules: delete", sql, 2, params);
}

int yard_schedules_lookup(PGconn *c, const char *name, const char *owner, char *cron,
                          size_t cron_cap, char *tz, size_t tz_cap)
{
    static const char sql[] =
        "SELECT s.cron, s.timezone FROM schedules s WHERE s.name = $1 AND " OWNER_IS("$2");
    const char *params[2] = {name, owner};
    PGresult *res = NULL;
    int rc = yard_db_query(&res, c, "schedules: lookup", sql, 2, params);
    if (rc < 0)
        return rc;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return YARD_ENOTFOUND;
    }
    snprintf(cron, cron_cap, "%s", PQgetvalue(res, 0, 0));
    snprintf(tz, tz_cap, "%s", PQgetvalue(res, 0, 1));
    PQclear(res);
    return 0;
}

int yard_schedules_set_paused(char **json_out, PGconn *c, const char *name, const char *owner,
                              int paused, int64_t next_fire_s)
{
    static const char sql[] =
        "UPDATE schedules s SET enabled = NOT $3::boolean, next_run_at = CASE WHEN $3::boolean"
        " THEN s.next_run_at WHEN $4::bigint > 0 THEN to_timestamp($4::bigint) END"
        " WHERE s.name = $1 AND " OWNER_IS("$2") " RETURNING " SCHED_JSON "::text";
    char next[24];
    secs_text(next, next_fire_s);
    const char *params[4] = {name, owner, paused ? "true" : "false", next};
    return sched_json_query(json_out, c, paused ? "schedules: pause" : "schedules: resume", sql,
                            4, params);
}

/* ---- firing ----------------------------------------------------------------------- */

static yard_str_t sched_col(PGresult *res, int f)
{
    if (PQgetisnull(res, 0, f))
        return (yard_str_t){NULL, 0};
    return (yard_str_t){PQgetvalue(res, 0, f), (size_t)PQgetlength(res, 0, f)};
}

int yard_schedules_due_begin(yard_schedule_due_t *out, PGconn *c, int64_t clock_offset_s)
{
    static const char sql[] =
        "SELECT name, cron, timezone, catch_up, api_key_id::text, job->>'type',"
        " coalesce(job->>'queue', 'default'), (job->'payload')::text,"
        " coalesce(job->>'priority', 'normal'), coalesce((job->>'max_attempts')::int, 0),"
        " coalesce((job->>'timeout_s')::int, 0), (job->'notify')::text,"
        " extract(epoch FROM next_run_at)::bigint,"
        " floor(extract(epoch FROM now() + $1::bigint * interval '1 second'))::bigint"
        " FROM schedules WHERE enabled AND next_run_at <= now() + $1::bigint * interval '1 second'"
        " ORDER BY next_run_at LIMIT 1 FOR UPDATE SKIP LOCKED";
    char off[24];
    secs_text(off, clock_offset_s);
    const char *params[1] = {off};
    PGresult *res = NULL;
    int rc = yard_db_exec_as(c, "schedules: begin", "BEGIN");
    if (rc == 0)
        rc = yard_db_query(&res, c, "schedules: due", sql, 1, params);
    if (rc < 0) {
        yard_schedules_abort(c);
        return rc;
    }
    if (PQntuples(res) == 0) {
        PQclear(res);
        yard_schedules_abort(c);
        return 0;
    }
    yard_schedule_due_t d = {0};
    d.res = res;
    d.name = PQgetvalue(res, 0, 0);
    d.cron = PQgetvalue(res, 0, 1);
    d.tz = PQgetvalue(res, 0, 2);
    d.catch_up = PQgetvalue(res, 0, 3);
    d.api_key_id = sched_col(res, 4);
    d.type = sched_col(res, 5);
    d.queue = sched_col(res, 6);
    d.payload = sched_col(res, 7);
    const char *prio = PQgetvalue(res, 0, 8);
    d.priority = strcmp(prio, "high") == 0  ? YARD_PRIO_HIGH
                 : strcmp(prio, "low") == 0 ? YARD_PRIO_LOW
                                            : YARD_PRIO_NORMAL;
    d.max_attempts = (uint32_t)atoi(PQgetvalue(res, 0, 9));
    d.timeout_s = (uint32_t)atoi(PQgetvalue(res, 0, 10));
    d.notify = sched_col(res, 11);
    d.fire_s = strtoll(PQgetvalue(res, 0, 12), NULL, 10);
    d.now_s = strtoll(PQgetvalue(res, 0, 13), NULL, 10);
    *out = d;
    return 1;
}

int yard_schedules_fire_record(PGconn *c, const char *name, int64_t fire_s, const char *job_id)
{
    static const char sql[] =
        "INSERT INTO schedule_firings (schedule_name, fire_at, job_id)"
        " VALUES ($1, to_timestamp($2::bigint), $3::uuid) ON CONFLICT DO NOTHING RETURNING 1";
    char fire[24];
    secs_text(fire, fire_s);
    const char *params[3] = {name, fire, job_id};
    int rc = sched_json_query(NULL, c, "schedules: record firing", sql, 3, params);
    return rc == YARD_ENOTFOUND ? 0 : rc < 0 ? rc : 1;
}

int yard_schedules_fire_commit(PGconn *c, const char *name, int64_t next_s, int64_t fire_s,
                               const char *job_id)
{
    static const char sql[] =
        "UPDATE schedules SET next_run_at = CASE WHEN $2::bigint > 0"
        " THEN to_timestamp($2::bigint) END,"
        " last_run_at = CASE WHEN $4::uuid IS NULL THEN last_run_at"
        " ELSE to_timestamp($3::bigint) END, last_job_id = coalesce($4::uuid, last_job_id)"
        " WHERE name = $1";
    char next[24], fire[24];
    secs_text(next, next_s);
    secs_text(fire, fire_s);
    const char *params[4] = {name, next, fire, job_id};
    int rc = yard_db_query(NULL, c, "schedules: advance", sql, 4, params);
    if (rc == 0)
        rc = yard_db_exec_as(c, "schedules: commit", "COMMIT");
    if (rc < 0)
        yard_schedules_abort(c);
    return rc;
}

void yard_schedules_abort(PGconn *c)
{
    if (c && PQtransactionStatus(c) != PQTRANS_IDLE)
        yard_db_exec_as(c, "schedules: rollback", "ROLLBACK");
}

void yard_schedules_due_clear(yard_schedule_due_t *d)
{
    if (!d)
        return;
    PQclear(d->res);
    memset(d, 0, sizeof *d);
}

void yard_schedule_job_id(yard_id_t *out, const char *name, int64_t fire_s)
{
    static const char domain[] = "switchyard schedule firing";
    uint8_t secret[YARD_ID_SECRET_LEN];
    char fire[24];
    yard_id_secret_from_text(secret, domain);
    secs_text(fire, fire_s);
    yard_id_from_idempotency(out, secret, name, strlen(name), fire, strlen(fire));
}

void yard_schedules_event(yard_event_t *e, char key[24], char event_name[48], const char *action,
                          const char *name, const char *actor, const char *data_json)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(key, 24, "%lld%09ld", (long long)ts.tv_sec, ts.tv_nsec);
    snprintf(event_name, 48, "schedule_%s", action);
    *e = (yard_event_t){YARD_EVENT_OPS, event_name, name, key, actor, 0, NULL, data_json};
}
