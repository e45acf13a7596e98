/*
 * workflow_release.c - the workflow releaser (wk.h), a thread of the
 * schedule role: it moves workflows on (bus/workflows.h yard_wf_advance)
 * and publishes the steps it releases.
 *
 * How it learns that a parent finished: the job's own transaction (the
 * execute worker's finish, a cancel) copies the job's state to its step and
 * notifies channel yard_workflows with the workflow id (the trigger of
 * 0008_workflow_release.sql); this thread LISTENs and advances each
 * workflow named. A new workflow notifies the same way, so its roots start
 * at once. The safety net is a sweep: at start, after every reconnect and
 * every WF_SWEEP_MS it advances every running workflow (a notice sent while
 * no releaser listened is never lost work), and it republishes released
 * jobs whose publish was never recorded (the releaser died between its
 * commit and the PubAck).
 *
 * Exactly once: a step is released in one transaction (its job row written,
 * the step marked queued) under the workflow's row lock, so two schedule
 * replicas never release it twice; its job id is fixed when the workflow is
 * created and is the message's Nats-Msg-Id, so a republish is dropped by
 * the duplicate window, and the execute claim never runs a finished job.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "db.h"
#include "err.h"
#include "events.h"
#include "jobs.h"
#include "log.h"
#include "wk.h"
#include "workflows.h"

#define WF_SWEEP_MS 5000          /* every running workflow is advanced this often */
#define WF_SWEEP_PAGE 200         /* running workflows advanced per sweep query */
#define WF_REPUBLISH_AFTER_S 5    /* a released job unpublished this long is republished */
#define WF_REPUBLISH_BATCH 500    /* unpublished jobs looked at per sweep */
#define WF_TICK_MS 200            /* the longest wait for a notice: stop checks */
#define WF_NOTICES_MAX 1024       /* distinct workflows noted per turn; beyond: a sweep */
#define WF_PG_CONNECT_S 5         /* PostgreSQL connect timeout */
#define WF_RETRY_MS 1000          /* pause after PostgreSQL failed */

struct wk_release {
    wk_t *wk;
    pthread_t thread;
    PGconn *conn;
    int64_t next_sweep_ms;
    char notes[WF_NOTICES_MAX][YARD_ENV_ID_LEN + 1];
    size_t nnotes;
};

/* Marks a released job that can never be encoded dead (its step follows,
 * the trigger notifies). Returns YARD_EINVAL, or the store's error. */
static int release_unpublishable(wk_release_t *r, const yard_envelope_t *env, const char *id)
{
    char why[160];
    yard_log_ctx_t ctx = {NULL, id, NULL};
    snprintf(why, sizeof why,
             "workflow step: its job cannot be encoded (payload of %zu bytes with the parents' "
             "results under inputs; at most %u)",
             env->payload.len, YARD_ENV_PAYLOAD_MAX);
    int rc = yard_jobs_mark_dead(r->conn, env, 0, 0, why);
    YARD_LOG_ERROR(&ctx, "workflows: %s; marked dead%s", why, rc < 0 ? " failed" : "");
    return rc < 0 ? rc : YARD_EINVAL;
}

/* Publishes one job (Nats-Msg-Id = its id) to its execute subject and
 * records the sequence. Returns 0 or an error (logged). */
static int release_publish(wk_release_t *r, const yard_envelope_t *env)
{
    wk_t *wk = r->wk;
    char id[YARD_ENV_ID_LEN + 1] = "", queue[YARD_ENV_NAME_MAX + 1] = "";
    char subject[YARD_JS_NAME_MAX], durable[YARD_JS_NAME_MAX], msg_id[YARD_MSGID_MAX];
    char tp[YARD_ENV_TP_MAX + 1] = "";
    memcpy(id, env->id.ptr, env->id.len < YARD_ENV_ID_LEN ? env->id.len : YARD_ENV_ID_LEN);
    memcpy(queue, env->queue.ptr,
           env->queue.len <= YARD_ENV_NAME_MAX ? env->queue.len : YARD_ENV_NAME_MAX);
    if (env->traceparent.len > 0 && env->traceparent.len <= YARD_ENV_TP_MAX)
        memcpy(tp, env->traceparent.ptr, env->traceparent.len);
    yard_js_execute_names(durable, subject, queue);
    yard_js_msg_id(msg_id, YARD_MSGID_JOB, id, 0);
    size_t cap = yard_env_encoded_size_max(env), len = 0;
    char *buf = malloc(cap);
    int rc = buf ? yard_env_encode(env, buf, cap, &len) : YARD_ENOMEM;
    yard_js_puback_t ack = {0};
    yard_js_header_t hdr = {YARD_HDR_TRACEPARENT, tp};
    yard_js_pub_t pub = {subject, msg_id, &hdr, tp[0] ? 1 : 0, buf, len};
    if (rc == YARD_EINVAL) {
        /* Never publishable (its payload with the parents' results is over
         * the envelope's bounds): dead now, so its dependents are skipped
         * and the workflow ends instead of waiting forever. */
        free(buf);
        return release_unpublishable(r, env, id);
    }
    int64_t t0 = wk_clock_us();
    if (rc == 0)
        rc = yard_js_publish(&ack, wk->js, &pub, wk->cfg.js_publish_timeout_ms);
    wk_time_add(wk, "jetstream", wk_clock_us() - t0);
    free(buf);
    if (rc == 0)
        rc = yard_jobs_track(r->conn, id, 0, ack.seq);
    if (rc < 0) {
        yard_log_ctx_t ctx = {NULL, id, NULL};
        YARD_LOG_WARN(&ctx, "workflows: cannot publish the released step to %s (%s); the "
                            "sweep republishes it",
                      subject, yard_strerror(rc));
    }
    return rc;
}

/* Lifecycle events of one advance, after its commit: each skipped step
 * (keyed by its step id) and the workflow's end. A failed publish is logged
 * by yard_event_publish; the audit log then lacks that row (the workflow's
 * state in PostgreSQL is right either way). */
static void release_events(wk_release_t *r, const char *id, const yard_wf_advance_t *a)
{
    char actor[160], data[200];
    int64_t timeout = r->wk->cfg.js_publish_timeout_ms;
    wk_event_actor(actor, sizeof actor, r->wk);
    for (size_t i = 0; a->skip && i < a->skipped; i++) {
        const char *step = PQgetvalue(a->skip, (int)i, 0);
        json_t *d = json_pack("{s:s}", "step_id", step);
        char *dj = d ? json_dumps(d, JSON_COMPACT) : NULL;
        yard_event_t e = {YARD_EVENT_WORKFLOW, "step_skipped", id, step, actor, 0, NULL, dj};
        yard_event_publish(r->wk->js, &e, timeout);
        free(dj);
        json_decref(d);
    }
    if (!strcmp(a->status, "succeeded") || !strcmp(a->status, "failed")) {
        snprintf(data, sizeof data, "{\"skipped\":%zu}", a->skipped);
        yard_event_t e = {YARD_EVENT_WORKFLOW, a->status, id, NULL, actor, 0, NULL, data};
        yard_event_publish(r->wk->js, &e, timeout);
    }
}

/* Advances workflow id and publishes what it released. */
static void release_advance(wk_release_t *r, const char *id)
{
    yard_wf_advance_t a;
    int rc = yard_wf_advance(&a, r->conn, id, wk_wall_ms());
    wk_store_health(r->wk, rc);
    if (rc < 0) {
        YARD_LOG_WARN(NULL, "workflows: cannot advance workflow %s (%s); the sweep retries", id,
                      yard_strerror(rc));
        return;
    }
    size_t published = 0;
    for (size_t i = 0; i < a.released; i++)
        published += release_publish(r, &a.envs[i]) == 0;
    release_events(r, id, &a);
    if (a.released || a.skipped || strcmp(a.status, "running") != 0)
        YARD_LOG_INFO(NULL,
                      "workflows: workflow %s: %zu steps released (%zu published), %zu skipped; "
                      "%s",
                      id, a.released, published, a.skipped, a.status[0] ? a.status : "gone");
    yard_wf_advance_free(&a);
}

/* Republishes released jobs whose publish was never recorded. */
static void release_republish(wk_release_t *r)
{
    yard_jobs_stale_t lost = {0};
    if (yard_jobs_unpublished(&lost, r->conn, WF_REPUBLISH_AFTER_S, WF_REPUBLISH_BATCH) < 0)
        return;
    size_t done = 0;
    for (size_t i = 0; i < lost.n && !atomic_load(&r->wk->stopping); i++)
        done += release_publish(r, &lost.rows[i].env) == 0;
    if (lost.n)
        YARD_LOG_WARN(NULL, "workflows: %zu released steps had no recorded publish; %zu "
                            "republished (same job ids)",
                      lost.n, done);
    yard_jobs_stale_free(&lost);
}

/* Advances every running workflow, a page at a time. */
static void release_sweep(wk_release_t *r)
{
    char after[YARD_ENV_ID_LEN + 1] = "";
    for (;;) {
        PGresult *ids = NULL;
        if (yard_wf_running(&ids, r->conn, after, WF_SWEEP_PAGE) < 0)
            return;
        int n = PQntuples(ids);
        for (int i = 0; i < n && !atomic_load(&r->wk->stopping); i++)
            release_advance(r, PQgetvalue(ids, i, 0));
        if (n > 0)
            snprintf(after, sizeof after, "%s", PQgetvalue(ids, n - 1, 0));
        PQclear(ids);
        if (n < WF_SWEEP_PAGE || atomic_load(&r->wk->stopping))
            break;
    }
    release_republish(r);
}

/* Connected, prepared and listening. Returns 0, or an error (logged): wait
 * and retry. */
static int release_connect(wk_release_t *r)
{
    /* A kept connection is listening; a new one (the first, or one that
     * replaced a connection a PostgreSQL restart closed) is prepared and
     * listens, or is closed so that the next call starts again. (Telling
     * them apart by the connection's address, as before, failed: a new
     * PGconn may reuse the old one's, and after a restart a workflow then
     * moved one step per sweep, every 5 s.) */
    int rc = yard_db_ensure(&r->conn, r->wk->cfg.pg_dsn, WF_PG_CONNECT_S);
    if (rc <= 0)
        return rc;
    if ((rc = yard_jobs_prepare(r->conn, YARD_JOBS_DURABLE)) < 0 ||
        (rc = yard_db_exec_as(r->conn, "workflows: listen", "LISTEN " YARD_WF_CHANNEL)) < 0) {
        yard_db_close(r->conn);
        r->conn = NULL;
        return rc;
    }
    r->next_sweep_ms = 0; /* notices sent while nobody listened: sweep now */
    return 0;
}

/* Notes the workflow ids notified on the connection (deduplicated); too
 * many for one turn bring the sweep forward instead. */
static void release_take_notices(wk_release_t *r)
{
    PGnotify *n;
    while ((n = PQnotifies(r->conn)) != NULL) {
        size_t i = 0;
        if (strlen(n->extra) == YARD_ENV_ID_LEN) {
            while (i < r->nnotes && strcmp(r->notes[i], n->extra) != 0)
                i++;
            if (i == r->nnotes && r->nnotes < WF_NOTICES_MAX)
                memcpy(r->notes[r->nnotes++], n->extra, YARD_ENV_ID_LEN + 1);
            else if (i == r->nnotes)
                r->next_sweep_ms = 0;
        }
        PQfreemem(n);
    }
}

/* Waits up to ms for a notice. Returns 0, or an error when the connection
 * broke. */
static int release_wait(wk_release_t *r, int ms)
{
    struct pollfd p = {PQsocket(r->conn), POLLIN, 0};
    if (p.fd < 0)
        return YARD_EUNAVAIL;
    if (poll(&p, 1, ms) > 0 && !PQconsumeInput(r->conn)) {
        YARD_LOG_WARN(NULL, "workflows: the PostgreSQL connection broke: %s",
                      PQerrorMessage(r->conn));
        return YARD_EUNAVAIL;
    }
    return 0;
}

static void *release_main(void *arg)
{
    wk_release_t *r = arg;
    wk_t *wk = r->wk;
    while (!atomic_load(&wk->stopping)) {
        if (release_connect(r) < 0) {
            wk_store_health(wk, YARD_EUNAVAIL);
            usleep(WF_RETRY_MS * 1000);
            continue;
        }
        release_take_notices(r);
        if (r->nnotes == 0 && wk_clock_ms() < r->next_sweep_ms) {
            int64_t left = r->next_sweep_ms - wk_clock_ms();
            if (release_wait(r, (int)(left < WF_TICK_MS ? left : WF_TICK_MS)) < 0) {
                yard_db_close(r->conn);
                r->conn = NULL;
                continue;
            }
            release_take_notices(r);
        }
        /* Notices that come while advancing wait in libpq for the next turn. */
        for (size_t i = 0; i < r->nnotes && !atomic_load(&wk->stopping); i++)
            release_advance(r, r->notes[i]);
        r->nnotes = 0;
        if (wk_clock_ms() >= r->next_sweep_ms && !atomic_load(&wk->stopping)) {
            release_sweep(r);
            r->next_sweep_ms = wk_clock_ms() + WF_SWEEP_MS;
        }
    }
    return NULL;
}

int wk_release_start(wk_release_t **out, wk_t *wk)
{
    wk_release_t *r = calloc(1, sizeof *r);
    if (!r)
        return YARD_ENOMEM;
    r->wk = wk;
    if (pthread_create(&r->thread, NULL, release_main, r) != 0) {
        free(r);
        YARD_LOG_ERROR(NULL, "workflows: cannot start the releaser's thread");
        return YARD_EIO;
    }
    *out = r;
    return 0;
}

void wk_release_join(wk_release_t *r)
{
    if (!r)
        return;
    pthread_join(r->thread, NULL);
    yard_db_close(r->conn);
    free(r);
}
