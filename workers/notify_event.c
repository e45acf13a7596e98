/*
 * notify_event.c - the execute role's side of webhook notifications
 * (notify.h): which outcomes a job asked to hear about, and the message
 * published to jobs.notify after the outcome's commit and before the job's
 * ack (execute_commit.c), or again when a redelivery finds the job final
 * (execute_fetch.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "err.h"
#include "log.h"
#include "notify.h"

/* The states a bare-URL spec (or one without "on") asks for. */
static int notify_default_on(yard_job_state_t s)
{
    return s == YARD_JOB_SUCCEEDED || s == YARD_JOB_DEAD;
}

int wk_notify_wants(yard_str_t notify, yard_job_state_t state, char *url, size_t cap)
{
    if (!notify.len ||
        (state != YARD_JOB_SUCCEEDED && state != YARD_JOB_FAILED && state != YARD_JOB_DEAD))
        return 0;
    json_t *spec = json_loadb(notify.ptr, notify.len, JSON_DECODE_ANY, NULL);
    json_t *u = json_is_object(spec) ? json_object_get(spec, "url") : spec;
    json_t *on = json_is_object(spec) ? json_object_get(spec, "on") : NULL;
    int wants = 0;
    if (json_is_string(u) && json_string_length(u) < cap) {
        if (!json_is_array(on)) {
            wants = notify_default_on(state);
        } else {
            size_t i;
            json_t *v;
            json_array_foreach(on, i, v) {
                const char *name = json_string_value(v);
                if (name && strcmp(name, yard_job_state_name(state)) == 0)
                    wants = 1;
            }
        }
        if (wants)
            memcpy(url, json_string_value(u), json_string_length(u) + 1);
    }
    json_decref(spec);
    return wants;
}

/* Copies s (a view) into a new jansson string, or NULL when absent. */
static json_t *notify_str(yard_str_t s)
{
    return s.len ? json_stringn(s.ptr, s.len) : NULL;
}

/* Builds the message of o for url: {"url":...,"event":{...}} and "key"
 * (the submitting API key's id) when the job has one, compact text
 * (malloc'd), or NULL when out of memory. */
static char *notify_message(const wk_notify_outcome_t *o, const char *url)
{
    const yard_envelope_t *env = o->env;
    char when[40], event[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    snprintf(event, sizeof event, "job.%s", yard_job_state_name(o->state));
    json_t *ev = json_pack("{s:s,s:s,s:o*,s:o*,s:s,s:i}", "event", event, "job_id", o->job_id,
                           "type", notify_str(env->type), "queue", notify_str(env->queue),
                           "status", yard_job_state_name(o->state), "attempts", (int)o->attempt);
    int bad = !ev;
    if (!bad && o->state == YARD_JOB_SUCCEEDED) {
        json_t *r = o->result_json ? json_loads(o->result_json, JSON_DECODE_ANY, NULL) : NULL;
        bad = json_object_set_new(ev, "result", r ? r : json_null()) < 0;
    } else if (!bad) {
        bad = json_object_set_new(ev, "error", json_string(o->error ? o->error : "")) < 0;
    }
    if (!bad)
        bad = json_object_set_new(ev, "time", json_string(when)) < 0;
    if (!bad && env->workflow_id.len)
        bad = json_object_set_new(ev, "workflow_id", notify_str(env->workflow_id)) < 0 ||
              json_object_set_new(ev, "step_id", notify_str(env->step_id)) < 0;
    json_t *msg = bad ? NULL : json_pack("{s:s,s:O}", "url", url, "event", ev);
    if (msg && env->api_key_id.len &&
        json_object_set_new(msg, "key", notify_str(env->api_key_id)) < 0) {
        json_decref(msg);
        msg = NULL;
    }
    char *text = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
    json_decref(msg);
    json_decref(ev);
    return text;
}

int wk_notify_publish(wk_t *wk, const wk_notify_outcome_t *o)
{
    char url[2100], msg_id[YARD_MSGID_MAX];
    yard_log_ctx_t ctx = {NULL, o->job_id, NULL};
    if (!wk_notify_wants(o->env->notify, o->state, url, sizeof url))
        return 0;
    char *text = notify_message(o, url);
    if (!text) {
        YARD_LOG_ERROR(&ctx, "notify: cannot build the %s notification: out of memory",
                       yard_job_state_name(o->state));
        return YARD_ENOMEM;
    }
    yard_js_msg_id(msg_id, YARD_MSGID_NOTIFY, o->job_id, o->attempt);
    yard_js_header_t hdr = {YARD_HDR_JOB_ID, o->job_id};
    yard_js_pub_t pub = {YARD_SUBJ_NOTIFY, msg_id, &hdr, 1, text, strlen(text)};
    int64_t t0 = wk_clock_us();
    int rc = yard_js_publish(NULL, wk->js, &pub, wk->cfg.js_publish_timeout_ms);
    wk_time_add(wk, "jetstream", wk_clock_us() - t0);
    if (rc < 0)
        YARD_LOG_ERROR(&ctx, "notify: cannot publish the %s notification to %s: %s",
                       yard_job_state_name(o->state), YARD_SUBJ_NOTIFY, yard_strerror(rc));
    else
        YARD_LOG_DEBUG(&ctx, "notify: %s notification published", yard_job_state_name(o->state));
    free(text);
    return rc;
}

int wk_notify_republish(wk_t *wk, PGconn *conn, const yard_envelope_t *env, const char *job_id)
{
    const char *params[] = {job_id};
    yard_log_ctx_t ctx = {NULL, job_id, NULL};
    PGresult *res = PQexecParams(conn,
                                 "SELECT status, attempts, result::text, last_error FROM jobs "
                                 "WHERE id = $1::uuid",
                                 1, NULL, params, NULL, NULL, 0);
    int rc = 0;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        YARD_LOG_WARN(&ctx, "notify: cannot read the job's outcome to notify it again: %s",
                      PQerrorMessage(conn));
        rc = YARD_EPG;
    } else if (PQntuples(res) == 1) {
        yard_job_state_t state;
        wk_notify_outcome_t o = {env, job_id, (unsigned)atoi(PQgetvalue(res, 0, 1)),
                                 YARD_JOB_SUCCEEDED,
                                 PQgetisnull(res, 0, 2) ? NULL : PQgetvalue(res, 0, 2),
                                 PQgetisnull(res, 0, 3) ? NULL : PQgetvalue(res, 0, 3)};
        if (yard_job_state_parse(&state, PQgetvalue(res, 0, 0)) == 0 &&
            (state == YARD_JOB_SUCCEEDED || state == YARD_JOB_DEAD)) {
            o.state = state;
            rc = wk_notify_publish(wk, &o);
        }
    }
    PQclear(res);
    return rc;
}
