/*
 * jobs_read.c - GET /v1/jobs/{id}, DELETE /v1/jobs/{id} (cancel) and
 * GET /v1/queues.
 *
 * Each runs its PostgreSQL or JetStream requests on the pool (never on the
 * loop) and answers from the pool's done callback. A key sees and cancels
 * only the jobs it submitted, unless it has the admin scope.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "err.h"
#include "events.h"
#include "gw.h"
#include "jobs.h"
#include "jobs_list.h"
#include "log.h"
#include "queue_stats.h"


typedef struct {
    gw_t *gw;
    yard_http_req_t *req;
    char id[YARD_ID_TEXT_LEN + 1];
    char owner[GW_AUTH_ID_MAX + 1]; /* "" = any key (admin or auth off) */
    char actor[GW_AUTH_ID_MAX + 8]; /* "key:<id>", or "gateway" when auth is off */
    int status;
    char *body;       /* JSON answer, malloc'd */
    const char *code; /* error code when status >= 400 */
    char message[160];
} read_task_t;

static void task_fail(read_task_t *t, int status, const char *code, const char *message)
{
    t->status = status;
    t->code = code;
    snprintf(t->message, sizeof t->message, "%s", message);
}

/* Loop thread: answer from what the work found. */
static void read_done(void *ud)
{
    read_task_t *t = ud;
    if (t->status < 400)
        yard_http_respond(t->req, t->status, "application/json", NULL, t->body, strlen(t->body));
    else if (t->status == 503)
        gw_respond_unavailable(t->req, t->message);
    else
        yard_http_respond_error(t->req, t->status, t->code, t->message);
    free(t->body);
    free(t);
}

/* Takes the checked {id} and caller into a new task; answers and returns
 * NULL when the caller is refused or the id is malformed. */
static read_task_t *read_begin(gw_t *gw, yard_http_req_t *req, unsigned scope)
{
    gw_principal_t who;
    size_t len = 0;
    yard_id_t id;
    const char *text = yard_http_req_param(req, "id", &len);
    if (gw_access(gw, req, scope, 1, &who) < 0)
        return NULL;
    if (yard_id_parse(&id, text, len) < 0) {
        yard_http_respond_error(req, 400, "bad_request", "a job id is a UUID");
        return NULL;
    }
    read_task_t *t = calloc(1, sizeof *t);
    if (!t) {
        yard_http_respond_error(req, 500, "internal", "out of memory");
        return NULL;
    }
    t->gw = gw;
    t->req = req;
    yard_id_format(&id, t->id);
    if (!(who.scopes & YARD_SCOPE_ADMIN))
        snprintf(t->owner, sizeof t->owner, "%s", who.key_id);
    if (who.key_id[0])
        snprintf(t->actor, sizeof t->actor, "key:%s", who.key_id);
    else
        snprintf(t->actor, sizeof t->actor, "gateway");
    return t;
}

static void read_submit(read_task_t *t, gw_work_fn work)
{
    int rc = gw_pool_submit(t->gw->pool, work, read_done, t);
    if (rc < 0) {
        gw_respond_unavailable(t->req, "the gateway is overloaded; retry");
        free(t);
    }
}

/* Runs sql with ($1 = id, $2 = owner or NULL); returns 1 with the first
 * column of the first row copied into t->body, 0 for no row, < 0 on error
 * (t set to 503). */
static int read_query(read_task_t *t, PGconn *conn, const char *what, const char *sql)
{
    PGresult *res = NULL;
    const char *params[2] = {t->id, t->owner[0] ? t->owner : NULL};
    int rc = conn ? yard_db_query(&res, conn, what, sql, 2, params) : YARD_EUNAVAIL;
    if (rc < 0) {
        gw_pool_conn_check(conn);
        task_fail(t, 503, "unavailable", "PostgreSQL is unavailable; retry");
        return rc;
    }
    int found = PQntuples(res) > 0;
    if (found && !(t->body = strdup(PQgetvalue(res, 0, 0)))) {
        task_fail(t, 500, "internal", "out of memory");
        found = YARD_ENOMEM;
    }
    PQclear(res);
    return found;
}

static const char job_sql[] =
    "SELECT " YARD_JOBS_JSON_SQL "::text"
    " FROM jobs WHERE id = $1::uuid AND ($2::uuid IS NULL OR api_key_id = $2::uuid)";

static void get_job_work(PGconn *conn, void *ud)
{
    read_task_t *t = ud;
    int found = read_query(t, conn, "get job", job_sql);
    if (found == 1)
        t->status = 200;
    else if (found == 0)
        task_fail(t, 404, "not_found", "no such job");
}

static void get_job(yard_http_req_t *req, void *ud)
{
    read_task_t *t = read_begin(ud, req, YARD_SCOPE_READ);
    if (t)
        read_submit(t, get_job_work);
}

/* Cancels a job that has not finished (jobs.h yard_jobs_cancel): 200 when
 * it is cancelled (also a second time: DELETE is idempotent), 202 when it
 * runs and its worker is told, 409 when it finished otherwise. */
static void cancel_job_work(PGconn *conn, void *ud)
{
    read_task_t *t = ud;
    yard_job_state_t st;
    int rc = conn ? yard_jobs_cancel(&st, conn, t->id, t->owner[0] ? t->owner : NULL)
                  : YARD_EUNAVAIL;
    if (rc == YARD_ENOTFOUND) {
        task_fail(t, 404, "not_found", "no such job");
        return;
    }
    if (rc < 0) {
        gw_pool_conn_check(conn);
        task_fail(t, 503, "unavailable", "PostgreSQL is unavailable; retry");
        return;
    }
    if (st == YARD_JOB_CANCELLED) {
        /* On this pool thread, after the commit (a repeat is a no-op: same
         * event id). A running job's cancel is recorded by its worker. */
        yard_event_t e = {YARD_EVENT_JOB, YARD_EVENT_CANCELLED, t->id, NULL, t->actor, 0, NULL,
                          "{\"by\":\"api\"}"};
        yard_event_publish(t->gw->js, &e, t->gw->cfg.js_publish_timeout_ms);
    }
    if (st == YARD_JOB_CANCELLED || st == YARD_JOB_RUNNING) {
        json_t *doc = json_pack("{s:s, s:s, s:b}", "id", t->id, "status", yard_job_state_name(st),
                                "cancel_requested", 1);
        t->body = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
        json_decref(doc);
        t->status = !t->body ? 500 : st == YARD_JOB_RUNNING ? 202 : 200;
        if (!t->body)
            task_fail(t, 500, "internal", "out of memory");
        return;
    }
    char msg[96];
    snprintf(msg, sizeof msg, "the job has already finished: %s", yard_job_state_name(st));
    task_fail(t, 409, "conflict", msg);
}

static void cancel_done(void *ud)
{
    read_task_t *t = ud;
    /* 200 too: a job PostgreSQL still shows queued may have started less
     * than the start write's delay ago (jobs.h yard_jobs_claim); its worker
     * stops it now rather than when that write finds it cancelled. */
    if (t->status == 202 || t->status == 200) {
        char subject[sizeof YARD_SUBJ_CANCEL + YARD_ID_TEXT_LEN];
        snprintf(subject, sizeof subject, "%s%s", YARD_SUBJ_CANCEL, t->id);
        /* Buffered, never blocks the loop; at most once, PostgreSQL backs it. */
        yard_js_notify(t->gw->js, subject, t->id, strlen(t->id));
    }
    read_done(t);
}

static void cancel_job(yard_http_req_t *req, void *ud)
{
    read_task_t *t = read_begin(ud, req, YARD_SCOPE_SUBMIT);
    if (t && gw_pool_submit(t->gw->pool, cancel_job_work, cancel_done, t) < 0) {
        gw_respond_unavailable(req, "the gateway is overloaded; retry");
        free(t);
    }
}

/* GET /v1/queues: per served queue, JetStream's view (pending, in flight)
 * and the dead letters kept in DLQ. */
static void queues_work(PGconn *conn, void *ud)
{
    read_task_t *t = ud;
    gw_t *gw = t->gw;
    json_t *list = json_array();
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < gw->nqueues; i++) {
        gw_queue_stats_t st;
        rc = gw_queue_stats_read(gw, i, &st);
        if (rc == 0)
            json_array_append_new(list, json_pack("{s:s, s:I, s:I, s:I}", "name", gw->queues[i],
                                                  "pending", (json_int_t)st.pending, "in_flight",
                                                  (json_int_t)st.in_flight, "dead",
                                                  (json_int_t)st.dead));
    }
    if (rc < 0) {
        task_fail(t, 503, "unavailable", "JetStream did not answer; retry");
        json_decref(list);
        return;
    }
    json_t *doc = json_pack("{s:o}", "queues", list);
    t->body = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    t->status = t->body ? 200 : 500;
    if (!t->body)
        task_fail(t, 500, "internal", "out of memory");
}

static void get_queues(yard_http_req_t *req, void *ud)
{
    gw_t *gw = ud;
    gw_principal_t who;
    if (gw_access(gw, req, YARD_SCOPE_READ, 1, &who) < 0)
        return;
    read_task_t *t = calloc(1, sizeof *t);
    if (!t) {
        yard_http_respond_error(req, 500, "internal", "out of memory");
        return;
    }
    t->gw = gw;
    t->req = req;
    read_submit(t, queues_work);
}

int gw_jobs_read_routes(gw_t *gw)
{
    int rc = yard_http_router_add(gw->router, "GET", "/v1/jobs/{id}", get_job, gw);
    if (rc == 0)
        rc = yard_http_router_add(gw->router, "DELETE", "/v1/jobs/{id}", cancel_job, gw);
    if (rc == 0)
        rc = yard_http_router_add(gw->router, "GET", "/v1/queues", get_queues, gw);
    return rc;
}
