/*
 * workflows.c - POST /v1/workflows, GET /v1/workflows[/{id}] and
 * DELETE /v1/workflows/{id}.
 *
 * A workflow is validated (workflow_spec.h), given its id and one job id
 * per step (time-ordered ids, made on the loop thread), and recorded whole
 * in PostgreSQL in one durable statement (workflows.h yard_wf_create),
 * which notifies the schedule role: it releases the roots at once and every
 * later step when its parents succeed. The answer, 202 {"id","status":
 * "running"}, comes after that commit, so an accepted workflow is never
 * lost: if no schedule role hears the notice, its sweep finds the workflow.
 * Keys see and cancel only their own workflows, unless they are admin.
 * Every database call runs on the pool.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "events.h"
#include "gw.h"
#include "log.h"
#include "workflow_dag.h"
#include "workflow_spec.h"
#include "workflows.h"

#define WF_LIST_DEFAULT 50
#define WF_LIST_MAX 500
/* An Idempotency-Key on POST /v1/workflows maps to the workflow id through
 * this prefix, apart from the same key's job id. */
#define WF_IDEM_PREFIX "workflow:"

typedef struct {
    gw_t *gw;
    yard_http_req_t *req;
    char id[YARD_ID_TEXT_LEN + 1];
    char owner[GW_AUTH_ID_MAX + 1]; /* reads and cancels: "" = any key */
    char actor_key[GW_AUTH_ID_MAX + 1]; /* the caller's key id ("" with auth off): events */
    /* POST */
    int idem; /* the id comes from an Idempotency-Key: a repeat is a duplicate */
    char tp[GW_TRACEPARENT_LEN + 1]; /* the workflow's trace: every step job carries it */
    json_t *doc;
    gw_wf_spec_t spec;
    char (*job_ids)[YARD_ID_TEXT_LEN + 1];
    yard_wf_step_new_t *steps;
    /* GET list */
    char status_filter[16];
    char cursor[YARD_ID_TEXT_LEN + 1];
    size_t limit;
    /* DELETE */
    yard_wf_cancel_t cancel;
    /* the answer */
    int status;
    char *body;
    const char *code;
    char message[256];
} wf_task_t;

static void task_free(wf_task_t *t)
{
    gw_wf_spec_clear(&t->spec);
    json_decref(t->doc);
    free(t->job_ids);
    free(t->steps);
    yard_wf_cancel_free(&t->cancel);
    free(t->body);
    free(t);
}

static void task_fail(wf_task_t *t, int status, const char *code, const char *message)
{
    t->status = status;
    t->code = code;
    snprintf(t->message, sizeof t->message, "%s", message);
}

/* A pool error: 503 when PostgreSQL is away, 500 otherwise. */
static void task_db_fail(wf_task_t *t, PGconn *conn, int rc)
{
    gw_pool_conn_check(conn);
    if (rc == YARD_EUNAVAIL || rc == YARD_ETIMEOUT || rc == YARD_EBUSY || !conn)
        task_fail(t, 503, "unavailable", "PostgreSQL is unavailable; retry");
    else
        task_fail(t, 500, "internal", "the workflow store failed");
}

/* Loop thread: answer from what the work found, then free. */
static void task_done(void *ud)
{
    wf_task_t *t = ud;
    if (t->status < 400)
        yard_http_respond(t->req, t->status, "application/json", NULL, t->body, strlen(t->body));
    else if (t->status == 503)
        gw_respond_unavailable(t->req, t->message);
    else
        yard_http_respond_error(t->req, t->status, t->code, t->message);
    task_free(t);
}

static wf_task_t *task_new(gw_t *gw, yard_http_req_t *req)
{
    wf_task_t *t = calloc(1, sizeof *t);
    if (!t) {
        yard_http_respond_error(req, 500, "internal", "out of memory");
        return NULL;
    }
    t->gw = gw;
    t->req = req;
    return t;
}

static void task_submit(wf_task_t *t, gw_work_fn work, gw_done_fn done)
{
    if (gw_pool_submit(t->gw->pool, work, done, t) < 0) {
        gw_respond_unavailable(t->req, "the gateway is overloaded; retry");
        task_free(t);
    }
}

/* Sets the answer body to a JSON value (consumed). */
static void task_json(wf_task_t *t, int status, json_t *v)
{
    t->body = v ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    if (t->body)
        t->status = status;
    else
        task_fail(t, 500, "internal", "out of memory");
}

/* Publishes the workflow's lifecycle event name (events.h) on this pool
 * thread, after the commit; a repeat is a no-op (same event id). tp is the
 * workflow's traceparent, or NULL. Failures are logged by
 * yard_event_publish: the state in PostgreSQL is right either way. */
static void wf_event(const wf_task_t *t, const char *name, const char *tp)
{
    char actor[GW_AUTH_ID_MAX + 8], trace[YARD_TRACE_ID_LEN + 1] = "";
    if (t->actor_key[0])
        snprintf(actor, sizeof actor, "key:%s", t->actor_key);
    else
        snprintf(actor, sizeof actor, "gateway");
    if (tp && strlen(tp) >= YARD_TRACE_ID_OFFSET + YARD_TRACE_ID_LEN)
        snprintf(trace, sizeof trace, "%.*s", YARD_TRACE_ID_LEN, tp + YARD_TRACE_ID_OFFSET);
    yard_event_t e = {YARD_EVENT_WORKFLOW, name, t->id, NULL, actor, 0, trace[0] ? trace : NULL,
                      NULL};
    yard_event_publish(t->gw->js, &e, t->gw->cfg.js_publish_timeout_ms);
}

/* ---- POST /v1/workflows ------------------------------------------------------ */

/* 202 for a repeat of an Idempotency-Key: the first workflow's id and
 * status. Returns 0, or YARD_ENOTFOUND when there is none yet. */
static int create_repeat(wf_task_t *t, PGconn *conn)
{
    char status[16];
    int rc = yard_wf_status(status, conn, t->id, NULL);
    if (rc == 0)
        task_json(t, 202, json_pack("{s:s, s:s, s:b}", "id", t->id, "status", status,
                                    "duplicate", 1));
    return rc;
}

static void create_work(PGconn *conn, void *ud)
{
    wf_task_t *t = ud;
    yard_wf_new_t wf = {t->id, t->spec.name, t->owner[0] ? t->owner : NULL, t->tp, t->steps,
                        t->spec.n};
    int rc = conn ? 0 : YARD_EUNAVAIL;
    if (rc == 0 && t->idem && (rc = create_repeat(t, conn)) != YARD_ENOTFOUND)
        goto out;
    rc = conn ? yard_wf_create(conn, &wf) : YARD_EUNAVAIL;
    /* The same key posted twice at once: the other one won. */
    if (rc == YARD_EEXIST && t->idem && create_repeat(t, conn) == 0)
        return;
    if (rc == 0) {
        task_json(t, 202, json_pack("{s:s, s:s}", "id", t->id, "status", "running"));
        wf_event(t, "accepted", t->tp);
    }
out:
    if (rc < 0)
        task_db_fail(t, conn, rc);
}

static void create_done(void *ud)
{
    wf_task_t *t = ud;
    if (t->status == 202) {
        yard_log_ctx_t ctx = {yard_http_req_id(t->req), NULL, NULL};
        YARD_LOG_INFO(&ctx, "workflow %s accepted: %zu steps", t->id, t->spec.n);
    }
    task_done(t);
}

/* Nonzero for 1 to 255 printable ASCII bytes (an Idempotency-Key). */
static int idem_valid(const char *s, size_t n)
{
    if (n == 0 || n > YARD_ENV_IDEM_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return 0;
    return 1;
}

static void create_workflow(yard_http_req_t *req, void *ud)
{
    gw_t *gw = ud;
    gw_principal_t who;
    char err[512], tp[GW_TRACEPARENT_LEN + 1];
    yard_id_t id;
    gw_request_traceparent(gw, req, tp);
    /* The key first: no body of an unknown caller is decoded. */
    if (gw_authenticate(gw, req, YARD_SCOPE_SUBMIT, &who) < 0)
        return;
    json_t *doc = gw_request_body(req);
    if (!doc)
        return;
    /* Each step is a job: it costs what a job of a batch costs. */
    size_t cost = json_array_size(json_object_get(doc, "steps"));
    cost = cost < 1 ? 1 : cost > YARD_WF_MAX_STEPS ? YARD_WF_MAX_STEPS : cost;
    if (gw_rate_charge(gw, req, &who, (double)cost) < 0) {
        json_decref(doc);
        return;
    }
    wf_task_t *t = task_new(gw, req);
    if (!t) {
        json_decref(doc);
        return;
    }
    t->doc = doc;
    memcpy(t->tp, tp, sizeof t->tp);
    int rc = gw_wf_spec_parse(&t->spec, doc, &gw->rules, err, sizeof err);
    if (rc < 0) {
        if (rc == YARD_ENOMEM)
            yard_http_respond_error(req, 500, "internal", "out of memory");
        else
            yard_http_respond_error(req, 400, "invalid_workflow", err);
        task_free(t);
        return;
    }
    t->job_ids = calloc(t->spec.n, sizeof *t->job_ids);
    t->steps = calloc(t->spec.n, sizeof *t->steps);
    if (!t->job_ids || !t->steps) {
        yard_http_respond_error(req, 500, "internal", "out of memory");
        task_free(t);
        return;
    }
    snprintf(t->owner, sizeof t->owner, "%s", who.key_id);
    snprintf(t->actor_key, sizeof t->actor_key, "%s", who.key_id);
    size_t idem_len = 0;
    const char *idem = yard_http_req_header(req, "Idempotency-Key", &idem_len);
    if (idem && !idem_valid(idem, idem_len)) {
        yard_http_respond_error(req, 400, "bad_request",
                                "Idempotency-Key must be 1 to 255 printable ASCII characters");
        task_free(t);
        return;
    }
    if (idem) {
        /* Its own namespace: the same key on POST /v1/jobs names a job. */
        char scoped[sizeof WF_IDEM_PREFIX + YARD_ENV_IDEM_MAX];
        int n = snprintf(scoped, sizeof scoped, "%s%.*s", WF_IDEM_PREFIX, (int)idem_len, idem);
        yard_id_from_idempotency(&id, gw->id_secret, who.key_id, strlen(who.key_id), scoped,
                                 (size_t)n);
        t->idem = 1;
    } else {
        yard_id_next(&gw->ids, &id);
    }
    yard_id_format(&id, t->id);
    for (size_t i = 0; i < t->spec.n; i++) {
        const gw_wf_step_spec_t *s = &t->spec.steps[i];
        yard_id_next(&gw->ids, &id);
        yard_id_format(&id, t->job_ids[i]);
        t->steps[i] = (yard_wf_step_new_t){s->id, t->job_ids[i], s->depends_on, s->ndeps,
                                           s->job_json};
    }
    task_submit(t, create_work, create_done);
}

/* ---- GET /v1/workflows/{id} -------------------------------------------------- */

/* A task for route /v1/workflows/{id}: the id checked, the owner set (a
 * key without admin sees only its own). Answers and returns NULL when
 * refused. */
static wf_task_t *id_task(gw_t *gw, yard_http_req_t *req, unsigned scope)
{
    gw_principal_t who;
    size_t len = 0;
    yard_id_t id;
    const char *text = yard_http_req_param(req, "id", &len);
    if (gw_access(gw, req, scope, 1, &who) < 0)
        return NULL;
    if (yard_id_parse(&id, text, len) < 0) {
        yard_http_respond_error(req, 400, "bad_request", "a workflow id is a UUID");
        return NULL;
    }
    wf_task_t *t = task_new(gw, req);
    if (!t)
        return NULL;
    yard_id_format(&id, t->id);
    if (!(who.scopes & YARD_SCOPE_ADMIN))
        snprintf(t->owner, sizeof t->owner, "%s", who.key_id);
    snprintf(t->actor_key, sizeof t->actor_key, "%s", who.key_id);
    return t;
}

static void get_work(PGconn *conn, void *ud)
{
    wf_task_t *t = ud;
    int rc = conn ? yard_wf_get_json(&t->body, conn, t->id, t->owner) : YARD_EUNAVAIL;
    if (rc == 0)
        t->status = 200;
    else if (rc == YARD_ENOTFOUND)
        task_fail(t, 404, "not_found", "no such workflow");
    else
        task_db_fail(t, conn, rc);
}

static void get_workflow(yard_http_req_t *req, void *ud)
{
    wf_task_t *t = id_task(ud, req, YARD_SCOPE_READ);
    if (t)
        task_submit(t, get_work, task_done);
}

/* ---- GET /v1/workflows ------------------------------------------------------- */

static const char *const wf_states[] = {"running", "succeeded", "failed", "cancelled"};

/* Reads the query (status, limit, cursor) into t. Returns 0, or -1 with the
 * reason in err. */
static int list_query(wf_task_t *t, const char *q, size_t qlen, char *err, size_t cap)
{
    t->limit = WF_LIST_DEFAULT;
    while (q && qlen > 0) {
        const char *amp = memchr(q, '&', qlen), *eq;
        size_t plen = amp ? (size_t)(amp - q) : qlen;
        eq = memchr(q, '=', plen);
        size_t klen = eq ? (size_t)(eq - q) : plen;
        const char *val = eq ? eq + 1 : q + plen;
        size_t vlen = eq ? plen - klen - 1 : 0;
        char v[64];
        if (vlen >= sizeof v) {
            snprintf(err, cap, "query parameter `%.*s` is too long", (int)(klen < 32 ? klen : 32),
                     q);
            return -1;
        }
        memcpy(v, val, vlen);
        v[vlen] = '\0';
        if (klen == 6 && memcmp(q, "status", 6) == 0) {
            size_t k = 0;
            while (k < sizeof wf_states / sizeof wf_states[0] && strcmp(v, wf_states[k]) != 0)
                k++;
            if (k == sizeof wf_states / sizeof wf_states[0]) {
                snprintf(err, cap, "status must be running, succeeded, failed or cancelled");
                return -1;
            }
            snprintf(t->status_filter, sizeof t->status_filter, "%s", wf_states[k]);
        } else if (klen == 5 && memcmp(q, "limit", 5) == 0) {
            char *end = NULL;
            long n = strtol(v, &end, 10);
            if (!vlen || *end || n < 1 || n > WF_LIST_MAX) {
                snprintf(err, cap, "limit must be an integer from 1 to %d", WF_LIST_MAX);
                return -1;
            }
            t->limit = (size_t)n;
        } else if (klen == 6 && memcmp(q, "cursor", 6) == 0) {
            yard_id_t id;
            if (yard_id_parse(&id, v, vlen) < 0) {
                snprintf(err, cap, "cursor must be a next_cursor of an earlier answer");
                return -1;
            }
            yard_id_format(&id, t->cursor);
        } else if (klen > 0) {
            snprintf(err, cap, "unknown query parameter `%.*s` (status, limit, cursor)",
                     (int)(klen < 32 ? klen : 32), q);
            return -1;
        }
        q += plen + (amp ? 1 : 0);
        qlen -= plen + (amp ? 1 : 0);
    }
    return 0;
}

static void list_work(PGconn *conn, void *ud)
{
    wf_task_t *t = ud;
    int rc = conn ? yard_wf_list_json(&t->body, conn, t->owner, t->status_filter, t->cursor,
                                      t->limit)
                  : YARD_EUNAVAIL;
    if (rc == 0)
        t->status = 200;
    else
        task_db_fail(t, conn, rc);
}

static void list_workflows(yard_http_req_t *req, void *ud)
{
    gw_t *gw = ud;
    gw_principal_t who;
    size_t qlen = 0;
    char err[160];
    if (gw_access(gw, req, YARD_SCOPE_READ, 1, &who) < 0)
        return;
    wf_task_t *t = task_new(gw, req);
    if (!t)
        return;
    const char *q = yard_http_req_query(req, &qlen);
    if (list_query(t, q, q ? qlen : 0, err, sizeof err) < 0) {
        yard_http_respond_error(req, 400, "bad_request", err);
        task_free(t);
        return;
    }
    if (!(who.scopes & YARD_SCOPE_ADMIN))
        snprintf(t->owner, sizeof t->owner, "%s", who.key_id);
    task_submit(t, list_work, task_done);
}

/* ---- DELETE /v1/workflows/{id} ----------------------------------------------- */

/* 200 {"id","status":"cancelled","cancelled_steps"} when it was running (or
 * was cancelled before: DELETE is idempotent), 409 when it had finished. */
static void cancel_work(PGconn *conn, void *ud)
{
    wf_task_t *t = ud;
    int rc = conn ? yard_wf_cancel(&t->cancel, conn, t->id, t->owner) : YARD_EUNAVAIL;
    if (rc == YARD_ENOTFOUND) {
        task_fail(t, 404, "not_found", "no such workflow");
        return;
    }
    if (rc < 0) {
        task_db_fail(t, conn, rc);
        return;
    }
    if (strcmp(t->cancel.status, "cancelled") != 0) {
        char msg[96];
        snprintf(msg, sizeof msg, "the workflow has already finished: %s", t->cancel.status);
        task_fail(t, 409, "conflict", msg);
        return;
    }
    task_json(t, 200,
              json_pack("{s:s, s:s, s:I}", "id", t->id, "status", "cancelled", "cancelled_steps",
                        (json_int_t)t->cancel.cancelled));
    wf_event(t, "cancelled", NULL);
}

static void cancel_done(void *ud)
{
    wf_task_t *t = ud;
    /* Running step jobs: tell their workers (at most once; PostgreSQL has
     * the request, which their next poll reads anyway). */
    for (size_t i = 0; t->status == 200 && i < t->cancel.nrunning; i++) {
        char subject[sizeof YARD_SUBJ_CANCEL + YARD_ID_TEXT_LEN];
        snprintf(subject, sizeof subject, "%s%s", YARD_SUBJ_CANCEL, t->cancel.running[i]);
        yard_js_notify(t->gw->js, subject, t->cancel.running[i], strlen(t->cancel.running[i]));
    }
    if (t->status == 200) {
        yard_log_ctx_t ctx = {yard_http_req_id(t->req), NULL, NULL};
        YARD_LOG_INFO(&ctx, "workflow %s cancelled: %zu steps cancelled", t->id,
                      t->cancel.cancelled);
    }
    task_done(t);
}

static void cancel_workflow(yard_http_req_t *req, void *ud)
{
    wf_task_t *t = id_task(ud, req, YARD_SCOPE_SUBMIT);
    if (t)
        task_submit(t, cancel_work, cancel_done);
}

int gw_workflows_routes(gw_t *gw)
{
    int rc = yard_http_router_add(gw->router, "POST", "/v1/workflows", create_workflow, gw);
    if (rc == 0)
        rc = yard_http_router_add(gw->router, "GET", "/v1/workflows", list_workflows, gw);
    if (rc == 0)
        rc = yard_http_router_add(gw->router, "GET", "/v1/workflows/{id}", get_workflow, gw);
    if (rc == 0)
        rc = yard_http_router_add(gw->router, "DELETE", "/v1/workflows/{id}", cancel_workflow,
                                  gw);
    return rc;
}
