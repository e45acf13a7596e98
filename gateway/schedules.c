/*
 * schedules.c - the cron schedule routes:
 *   POST   /v1/schedules                 create or replace (submit scope)
 *   GET    /v1/schedules                 list (read)
 *   GET    /v1/schedules/{name}          one (read)
 *   DELETE /v1/schedules/{name}          delete (submit)
 *   POST   /v1/schedules/{name}/pause    stop firing (submit)
 *   POST   /v1/schedules/{name}/resume   fire again from now on (submit)
 *
 * The body of POST is {"name","cron","timezone"?,"job":{job fields},
 * "catch_up"?:"skip"|"once","paused"?:bool}; the job template is checked by
 * the job spec rules of POST /v1/jobs (without run_at and idempotency_key)
 * and stored with its defaults filled in. The cron text and zone are
 * checked here (bus/cron.h) and the first firing computed, so a schedule
 * that would never fire is refused. The statements (bus/schedules.h) run on
 * the pool; a key without the admin scope sees and changes only its own
 * schedules.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cron.h"
#include "err.h"
#include "events.h"
#include "gw.h"
#include "log.h"
#include "schedules.h"

typedef enum { ACT_PUT, ACT_LIST, ACT_GET, ACT_DELETE, ACT_PAUSE, ACT_RESUME } sched_act_t;

typedef struct {
    gw_t *gw;
    yard_http_req_t *req;
    sched_act_t act;
    char owner[GW_AUTH_ID_MAX + 1]; /* "" = any (admin or auth off) */
    char key_id[GW_AUTH_ID_MAX + 1]; /* the caller's key ("" when auth is off) */
    char name[YARD_SCHEDULE_NAME_MAX + 1];
    char cron[YARD_CRON_TEXT_MAX + 1];
    char tz[YARD_TZ_NAME_MAX + 1];
    char catch_up[8];
    int paused;
    char *job_json; /* normalised template (ACT_PUT) */
    int64_t next_s;
    int status;
    char *body;
    const char *code;
    char message[200];
} sched_task_t;

static void task_free(sched_task_t *t)
{
    free(t->job_json);
    free(t->body);
    free(t);
}

static void task_fail(sched_task_t *t, int status, const char *code, const char *message)
{
    t->status = status;
    t->code = code;
    snprintf(t->message, sizeof t->message, "%s", message);
}

static void sched_done(void *ud)
{
    sched_task_t *t = ud;
    if (t->status < 400)
        yard_http_respond(t->req, t->status, "application/json", NULL, t->body,
                          t->body ? strlen(t->body) : 0);
    else if (t->status == 503)
        gw_respond_unavailable(t->req, t->message);
    else
        yard_http_respond_error(t->req, t->status, t->code, t->message);
    task_free(t);
}

/* Maps a store error onto the answer. */
static void sched_store_error(sched_task_t *t, PGconn *conn, int rc)
{
    if (rc == YARD_ENOTFOUND) {
        task_fail(t, 404, "not_found", "no such schedule");
    } else if (rc == YARD_EEXIST) {
        task_fail(t, 409, "conflict", "a schedule of another API key has this name");
    } else if (rc == YARD_ENOMEM) {
        task_fail(t, 500, "internal", "out of memory");
    } else {
        gw_pool_conn_check(conn);
        task_fail(t, 503, "unavailable", "PostgreSQL is unavailable; retry");
    }
}

/* The operator event of a change that was committed (on this pool
 * thread); reads list nothing. A failed publish is logged by
 * yard_event_publish. */
static void sched_event(const sched_task_t *t, int created)
{
    static const char *const actions[] = {
        [ACT_DELETE] = "deleted", [ACT_PAUSE] = "paused", [ACT_RESUME] = "resumed"};
    const char *action = t->act == ACT_PUT ? (created ? "created" : "updated")
                         : t->act == ACT_DELETE || t->act == ACT_PAUSE || t->act == ACT_RESUME
                             ? actions[t->act]
                             : NULL;
    char actor[GW_AUTH_ID_MAX + 8], key[24], name[48];
    yard_event_t e;
    if (!action)
        return;
    if (t->key_id[0])
        snprintf(actor, sizeof actor, "key:%s", t->key_id);
    else
        snprintf(actor, sizeof actor, "gateway");
    yard_schedules_event(&e, key, name, action, t->name, actor,
                         t->act == ACT_DELETE ? NULL : t->body);
    yard_event_publish(t->gw->js, &e, t->gw->cfg.js_publish_timeout_ms);
}

static void sched_work(PGconn *conn, void *ud)
{
    sched_task_t *t = ud;
    const char *owner = t->owner[0] ? t->owner : NULL;
    int rc = conn ? 0 : YARD_EUNAVAIL, created = 0;
    if (rc == 0) {
        switch (t->act) {
        case ACT_PUT: {
            yard_schedule_def_t d = {t->name,     t->cron,    t->tz,
                                     t->job_json, t->catch_up, t->paused,
                                     t->key_id[0] ? t->key_id : NULL, t->next_s};
            rc = yard_schedules_put(&t->body, &created, conn, &d, owner);
            t->status = created ? 201 : 200;
            break;
        }
        case ACT_LIST:
            rc = yard_schedules_list(&t->body, conn, owner);
            t->status = 200;
            break;
        case ACT_GET:
            rc = yard_schedules_get(&t->body, conn, t->name, owner);
            t->status = 200;
            break;
        case ACT_DELETE:
            rc = yard_schedules_delete(conn, t->name, owner);
            if (rc == 0) {
                json_t *doc = json_pack("{s:s, s:b}", "name", t->name, "deleted", 1);
                t->body = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
                json_decref(doc);
                rc = t->body ? 0 : YARD_ENOMEM;
            }
            t->status = 200;
            break;
        case ACT_PAUSE:
        case ACT_RESUME: {
            char cron[YARD_CRON_TEXT_MAX + 1], tz[YARD_TZ_NAME_MAX + 1];
            yard_cron_t c;
            int64_t next = 0;
            rc = yard_schedules_lookup(conn, t->name, owner, cron, sizeof cron, tz, sizeof tz);
            if (rc == 0 && t->act == ACT_RESUME && yard_cron_parse(&c, cron, NULL, 0) == 0 &&
                yard_cron_next(&next, &c, tz, (int64_t)time(NULL)) < 0)
                next = 0;
            if (rc == 0)
                rc = yard_schedules_set_paused(&t->body, conn, t->name, owner,
                                               t->act == ACT_PAUSE, next);
            t->status = 200;
            break;
        }
        }
    }
    if (rc < 0)
        sched_store_error(t, conn, rc);
    else
        sched_event(t, created);
}

/* A new task for req after the access check (answers and returns NULL when
 * refused); copies {name} when the route has one. */
static sched_task_t *sched_begin(gw_t *gw, yard_http_req_t *req, unsigned scope, sched_act_t act)
{
    gw_principal_t who;
    size_t len = 0;
    const char *name = yard_http_req_param(req, "name", &len);
    if (gw_access(gw, req, scope, 1, &who) < 0)
        return NULL;
    if (name && !yard_schedule_name_valid(name, len)) {
        yard_http_respond_error(req, 400, "bad_request",
                                "a schedule name is 1 to 200 bytes without '/', blanks or "
                                "control characters");
        return NULL;
    }
    sched_task_t *t = calloc(1, sizeof *t);
    if (!t) {
        yard_http_respond_error(req, 500, "internal", "out of memory");
        return NULL;
    }
    t->gw = gw;
    t->req = req;
    t->act = act;
    if (name)
        memcpy(t->name, name, len);
    snprintf(t->key_id, sizeof t->key_id, "%s", who.key_id);
    if (!(who.scopes & YARD_SCOPE_ADMIN))
        snprintf(t->owner, sizeof t->owner, "%s", who.key_id);
    return t;
}

static void sched_submit(sched_task_t *t)
{
    if (gw_pool_submit(t->gw->pool, sched_work, sched_done, t) < 0) {
        gw_respond_unavailable(t->req, "the gateway is overloaded; retry");
        task_free(t);
    }
}

/* The template stored for job (already checked): the spec with defaults. */
static char *sched_job_json(const gw_job_spec_t *spec)
{
    static const char *const prio[] = {"low", "normal", "high"};
    json_t *o = json_pack("{s:s, s:s, s:s, s:i, s:i}", "type", spec->type, "queue", spec->queue,
                          "priority", prio[spec->priority], "max_attempts",
                          (int)spec->max_attempts, "timeout_s", (int)spec->timeout_s);
    json_error_t e;
    if (o && spec->payload_json)
        json_object_set_new(o, "payload", json_loadb(spec->payload_json, spec->payload_len,
                                                     JSON_DECODE_ANY, &e));
    if (o && spec->notify_json)
        json_object_set_new(o, "notify", json_loadb(spec->notify_json, spec->notify_len,
                                                    JSON_DECODE_ANY, &e));
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return text;
}

/* Checks the POST body into t. Returns 0, or YARD_EINVAL with why. */
static int sched_parse(sched_task_t *t, json_t *doc, char *why, size_t cap)
{
    static const char *const known[] = {"name", "cron", "timezone", "job", "catch_up", "paused"};
    const char *key;
    json_t *v;
    if (!json_is_object(doc)) {
        snprintf(why, cap, "the body must be a JSON object");
        return YARD_EINVAL;
    }
    json_object_foreach(doc, key, v) {
        size_t i = 0;
        while (i < sizeof known / sizeof known[0] && strcmp(key, known[i]) != 0)
            i++;
        if (i == sizeof known / sizeof known[0]) {
            snprintf(why, cap, "unknown field `%.64s`", key);
            return YARD_EINVAL;
        }
    }
    const char *name = json_string_value(json_object_get(doc, "name"));
    if (!name || !yard_schedule_name_valid(name, json_string_length(json_object_get(doc, "name")))) {
        snprintf(why, cap, "field `name` is required: 1 to 200 bytes without '/', blanks or "
                           "control characters");
        return YARD_EINVAL;
    }
    snprintf(t->name, sizeof t->name, "%s", name);
    const char *cron = json_string_value(json_object_get(doc, "cron"));
    yard_cron_t c;
    if (!cron) {
        snprintf(why, cap, "field `cron` is required: 5 fields or @hourly, @daily, ...");
        return YARD_EINVAL;
    }
    if (yard_cron_parse(&c, cron, why, cap) < 0)
        return YARD_EINVAL;
    snprintf(t->cron, sizeof t->cron, "%s", cron);
    json_t *tzv = json_object_get(doc, "timezone");
    const char *tz = tzv ? json_string_value(tzv) : "UTC";
    if (!tz || !yard_tz_valid(tz)) {
        snprintf(why, cap, "field `timezone` must be an IANA time zone such as "
                           "\"Europe/Berlin\" or \"UTC\"");
        return YARD_EINVAL;
    }
    snprintf(t->tz, sizeof t->tz, "%s", tz);
    json_t *cu = json_object_get(doc, "catch_up");
    const char *catch_up = cu ? json_string_value(cu) : "skip";
    if (!catch_up || (strcmp(catch_up, "skip") != 0 && strcmp(catch_up, "once") != 0)) {
        snprintf(why, cap, "field `catch_up` must be \"skip\" or \"once\"");
        return YARD_EINVAL;
    }
    snprintf(t->catch_up, sizeof t->catch_up, "%s", catch_up);
    json_t *pv = json_object_get(doc, "paused");
    if (pv && !json_is_boolean(pv)) {
        snprintf(why, cap, "field `paused` must be true or false");
        return YARD_EINVAL;
    }
    t->paused = pv && json_is_true(pv);
    json_t *job = json_object_get(doc, "job");
    if (!json_is_object(job)) {
        snprintf(why, cap, "field `job` is required: an object with the fields of POST /v1/jobs");
        return YARD_EINVAL;
    }
    if (json_object_get(job, "run_at") || json_object_get(job, "idempotency_key")) {
        snprintf(why, cap, "field `job`: a schedule's job takes no run_at or idempotency_key");
        return YARD_EINVAL;
    }
    if (json_object_get(job, "secrets")) {
        snprintf(why, cap, "field `job`: a schedule's job takes no secrets (sealed secrets are "
                           "for POST /v1/jobs only)");
        return YARD_EINVAL;
    }
    gw_job_spec_t spec;
    char err[200];
    if (gw_job_spec_parse(&spec, job, &t->gw->rules, err, sizeof err) < 0) {
        snprintf(why, cap, "field `job`: %s", err);
        return YARD_EINVAL;
    }
    t->job_json = sched_job_json(&spec);
    gw_job_spec_clear(&spec);
    if (!t->job_json) {
        snprintf(why, cap, "field `job` could not be stored");
        return YARD_EINVAL;
    }
    if (yard_cron_next(&t->next_s, &c, t->tz, (int64_t)time(NULL)) < 0) {
        snprintf(why, cap, "cron `%s` never fires", cron);
        return YARD_EINVAL;
    }
    return 0;
}

static void post_schedule(yard_http_req_t *req, void *ud)
{
    gw_t *gw = ud;
    sched_task_t *t = sched_begin(gw, req, YARD_SCOPE_SUBMIT, ACT_PUT);
    if (!t)
        return;
    json_t *doc = gw_request_body(req);
    if (!doc) {
        task_free(t);
        return;
    }
    char why[256];
    int rc = sched_parse(t, doc, why, sizeof why);
    json_decref(doc);
    if (rc < 0) {
        yard_http_respond_error(req, 400, "bad_request", why);
        task_free(t);
        return;
    }
    sched_submit(t);
}

#define SCHED_ROUTE(fn, scope, act)                                                            \
    static void fn(yard_http_req_t *req, void *ud)                                             \
    {                                                                                          \
        sched_task_t *t = sched_begin(ud, req, scope, act);                                    \
        if (t)                                                                                 \
            sched_submit(t);                                                                   \
    }
SCHED_ROUTE(list_schedules, YARD_SCOPE_READ, ACT_LIST)
SCHED_ROUTE(get_schedule, YARD_SCOPE_READ, ACT_GET)
SCHED_ROUTE(delete_schedule, YARD_SCOPE_SUBMIT, ACT_DELETE)
SCHED_ROUTE(pause_schedule, YARD_SCOPE_SUBMIT, ACT_PAUSE)
SCHED_ROUTE(resume_schedule, YARD_SCOPE_SUBMIT, ACT_RESUME)

int gw_schedules_routes(gw_t *gw)
{
    static const struct {
        const char *method, *path;
        void (*fn)(yard_http_req_t *, void *);
    } routes[] = {
        {"POST", "/v1/schedules", post_schedule},
        {"GET", "/v1/schedules", list_schedules},
        {"GET", "/v1/schedules/{name}", get_schedule},
        {"DELETE", "/v1/schedules/{name}", delete_schedule},
        {"POST", "/v1/schedules/{name}/pause", pause_schedule},
        {"POST", "/v1/schedules/{name}/resume", resume_schedule},
    };
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < sizeof routes / sizeof routes[0]; i++)
        rc = yard_http_router_add(gw->router, routes[i].method, routes[i].path, routes[i].fn, gw);
    return rc;
}
