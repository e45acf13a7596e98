/*
 * audit.c - the audit role: two consume loops.
 *   ingest   (ingest.c, consumer `submissions`): accepted jobs become
 *            queued rows of the jobs table;
 *   the log  (here, consumer `audit` on events.>): every lifecycle event
 *            becomes one audit_log row (bus/audit.h), a batch of events
 *            in one transaction. The gateway's grouped accepted event is
 *            expanded to one job.accepted row per job, and a group of
 *            events (the execute worker's) to one row per event.
 * The log's connection switches to the yard_audit_writer role (it may only
 * read and append audit_log) and commits durably before the events are
 * acked, so a crash redelivers them, and their unique event ids make the
 * second delivery a no-op: exactly one row per event.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "accepted.h"
#include "audit.h"
#include "consume_loop.h"
#include "db.h"
#include "envelope.h"
#include "err.h"
#include "events.h"
#include "log.h"

/* Messages per batch: an accepted event may expand to 1,000 rows and a
 * group (the execute worker's) to a few hundred, so a batch stays within a
 * few thousand rows (its memory: the rows and their strings). */
#define AUDIT_EVENTS_PER_FETCH 8
#define AUDIT_RETRY_MS 1000
#define AUDIT_PG_CONNECT_S 5

struct wk_runtime {
    wk_runtime_t *ingest;
    wk_loop_t *log;
    PGconn *conn; /* the log's, as yard_audit_writer */
};

/* One batch's rows and the strings they point to. */
typedef struct {
    yard_audit_row_t *rows;
    char **owned; /* every malloc'd string of the rows */
    size_t n, cap, nowned, capowned;
} audit_batch_t;

static char *audit_keep(audit_batch_t *b, char *s)
{
    if (!s)
        return NULL;
    if (b->nowned == b->capowned) {
        size_t cap = b->capowned ? 2 * b->capowned : 256;
        char **o = realloc(b->owned, cap * sizeof *o);
        if (!o) {
            free(s);
            return NULL;
        }
        b->owned = o;
        b->capowned = cap;
    }
    b->owned[b->nowned++] = s;
    return s;
}

static int audit_push(audit_batch_t *b, const yard_audit_row_t *r)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 256;
        yard_audit_row_t *rows = realloc(b->rows, cap * sizeof *rows);
        if (!rows)
            return YARD_ENOMEM;
        b->rows = rows;
        b->cap = cap;
    }
    b->rows[b->n++] = *r;
    return 0;
}

static void audit_batch_free(audit_batch_t *b)
{
    for (size_t i = 0; i < b->nowned; i++)
        free(b->owned[i]);
    free(b->owned);
    free(b->rows);
}

/* Nonzero for canonical lowercase UUID text (what uuid::text prints). */
static int audit_uuid_ok(const char *s)
{
    if (!s || strlen(s) != 36)
        return 0;
    for (int i = 0; i < 36; i++) {
        int dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    }
    return 1;
}

static char *audit_strndup(yard_str_t v)
{
    return v.len ? strndup(v.ptr, v.len) : NULL;
}

/* Sets key in obj to a string (or null when s is NULL), ignoring failures
 * (a detail is best effort beyond what the row's columns hold). */
static void audit_set_str(json_t *obj, const char *key, const char *s)
{
    json_object_set_new(obj, key, s ? json_string(s) : json_null());
}

/* Adds the rows of one accepted event (one per job). */
static int audit_add_accepted(audit_batch_t *b, const void *data, size_t len)
{
    yard_accepted_reader_t r;
    yard_accepted_t job;
    uint32_t count = 0;
    int rc = yard_accepted_open(&r, data, len, &count);
    while (rc == 0 && (rc = yard_accepted_next(&r, &job)) == 1) {
        rc = 0; /* a job read: go on to the next */
        yard_envelope_t env;
        char trace[YARD_TRACE_ID_LEN + 1], idbuf[YARD_EVENT_ID_MAX], actor[128];
        if (yard_env_decode(&env, job.env, job.len) < 0) {
            YARD_LOG_WARN(NULL, "audit: unreadable job in an accepted event; not recorded");
            continue;
        }
        char *id = audit_keep(b, audit_strndup(env.id));
        char *key = audit_strndup(env.api_key_id);
        snprintf(actor, sizeof actor, "%s%s", key ? "key:" : "gateway", key ? key : "");
        free(key);
        const char *tid = yard_env_trace_id(trace, env.traceparent);
        json_t *d = json_object();
        char *type = audit_strndup(env.type), *queue = audit_strndup(env.queue);
        char *wf = audit_keep(b, audit_strndup(env.workflow_id));
        audit_set_str(d, "type", type);
        audit_set_str(d, "queue", queue);
        json_object_set_new(d, "jobs_seq", json_integer((json_int_t)job.seq));
        audit_set_str(d, "trace_id", tid);
        free(type);
        free(queue);
        /* ev.job.accepted.<id>, the id scheme of events.h (id is UUID text). */
        if (!id || !audit_uuid_ok(id) ||
            snprintf(idbuf, sizeof idbuf, "ev.job.%s.%s", YARD_EVENT_ACCEPTED, id) < 0) {
            json_decref(d);
            YARD_LOG_WARN(NULL, "audit: accepted job without a usable id; not recorded");
            continue;
        }
        yard_audit_row_t row = {0};
        row.event_id = audit_keep(b, strdup(idbuf));
        row.at_us = env.created_at_ms * 1000;
        row.event = "job.accepted";
        row.job_id = audit_uuid_ok(id) ? id : NULL;
        row.workflow_id = audit_uuid_ok(wf) ? wf : NULL;
        row.actor = audit_keep(b, strdup(actor));
        row.detail = audit_keep(b, json_dumps(d, JSON_COMPACT));
        json_decref(d);
        if (!row.event_id || !row.actor || !row.detail || audit_push(b, &row) < 0)
            return YARD_ENOMEM;
    }
    if (rc < 0)
        YARD_LOG_WARN(NULL, "audit: malformed accepted event (%s); the rest of it not recorded",
                      yard_strerror(rc));
    return 0;
}

/* Adds the row of one JSON lifecycle event. */
static int audit_add_event(audit_batch_t *b, const char *subject, const void *data, size_t len)
{
    yard_event_read_t ev;
    if (yard_event_read(&ev, data, len) < 0) {
        YARD_LOG_WARN(NULL, "audit: unreadable event on %s; not recorded", subject);
        return 0;
    }
    json_t *d = ev.data; /* the row's detail: the data, the trace id, the target */
    audit_set_str(d, "trace_id", ev.trace_id);
    if (ev.target)
        audit_set_str(d, "target", ev.target);
    if (ev.job_id && !audit_uuid_ok(ev.job_id))
        audit_set_str(d, "job_ref", ev.job_id);
    if (ev.workflow_id && !audit_uuid_ok(ev.workflow_id))
        audit_set_str(d, "workflow_ref", ev.workflow_id);
    yard_audit_row_t row = {0};
    row.event_id = audit_keep(b, strdup(ev.id));
    row.at_us = ev.at_ms * 1000;
    row.event = audit_keep(b, strdup(ev.event));
    row.job_id = audit_uuid_ok(ev.job_id) ? audit_keep(b, strdup(ev.job_id)) : NULL;
    row.workflow_id = audit_uuid_ok(ev.workflow_id) ? audit_keep(b, strdup(ev.workflow_id)) : NULL;
    row.actor = audit_keep(b, strdup(ev.actor));
    row.detail = audit_keep(b, json_dumps(d, JSON_COMPACT));
    int oom = !row.event_id || !row.event || !row.actor || !row.detail ||
              (ev.job_id && audit_uuid_ok(ev.job_id) && !row.job_id);
    yard_event_read_free(&ev);
    return oom ? YARD_ENOMEM : audit_push(b, &row);
}

/* Adds the rows of a group of JSON lifecycle events (events.h). */
static int audit_add_group(audit_batch_t *b, const char *subject, const void *data, size_t len)
{
    const char *p = data, *end = p + len, *ev;
    size_t n;
    int rc = 0;
    while (rc == 0 && yard_event_group_next(&p, end, &ev, &n))
        rc = audit_add_event(b, subject, ev, n);
    return rc;
}

/* Makes the log's connection usable: connected, as yard_audit_writer. */
static int audit_conn(wk_runtime_t *rt, wk_t *wk)
{
    int rc = yard_db_ensure(&rt->conn, wk->cfg.pg_dsn, AUDIT_PG_CONNECT_S);
    if (rc <= 0)
        return rc; /* kept (not closed by a PostgreSQL restart), or an error */
    if ((rc = yard_audit_use_role(rt->conn)) < 0) {
        yard_db_close(rt->conn);
        rt->conn = NULL;
    }
    return rc;
}

/* Appends the rows; a batch PostgreSQL refuses is retried row by row, and a
 * row still refused is recorded without its detail. */
static int audit_write(PGconn *c, audit_batch_t *b, size_t *written)
{
    int rc = yard_audit_append(c, b->rows, b->n, written);
    if (rc != YARD_EPG)
        return rc;
    size_t total = 0, one = 0;
    for (size_t i = 0; i < b->n; i++) {
        rc = yard_audit_append(c, &b->rows[i], 1, &one);
        if (rc == YARD_EPG) {
            yard_audit_row_t r = b->rows[i];
            r.detail = NULL;
            YARD_LOG_ERROR(NULL, "audit: %s refused; recorded without its detail", r.event_id);
            rc = yard_audit_append(c, &r, 1, &one);
        }
        if (rc < 0)
            return rc;
        total += one;
    }
    *written = total;
    return 0;
}

static void audit_log_batch(wk_t *wk, PGconn *unused, yard_js_msg_t **msgs, int n, void *ud)
{
    wk_runtime_t *rt = ud;
    audit_batch_t b = {0};
    size_t written = 0;
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        size_t len = 0;
        const void *data = yard_js_msg_data(msgs[i], &len);
        const char *subject = yard_js_msg_subject(msgs[i]);
        if (strcmp(subject, YARD_SUBJ_EVENT_ACCEPTED) == 0)
            rc = audit_add_accepted(&b, data, len);
        else if (strcmp(subject, YARD_SUBJ_EVENT_GROUP) == 0)
            rc = audit_add_group(&b, subject, data, len);
        else
            rc = audit_add_event(&b, subject, data, len);
    }
    int64_t t0 = wk_clock_us();
    if (rc == 0)
        rc = audit_conn(rt, wk);
    if (rc == 0)
        rc = audit_write(rt->conn, &b, &written);
    wk_store_health(wk, rc);
    wk_time_add(wk, "postgres", wk_clock_us() - t0);
    for (int i = 0; i < n; i++) {
        if (rc == 0)
            yard_js_ack(msgs[i]);
        else
            yard_js_nak(msgs[i], AUDIT_RETRY_MS);
    }
    if (rc < 0) {
        YARD_LOG_WARN(NULL, "audit: cannot record %zu events (%s); retrying", b.n,
                      yard_strerror(rc));
        usleep(AUDIT_RETRY_MS * 1000);
    } else {
        YARD_LOG_DEBUG(NULL, "audit: %zu events, %zu rows appended in %lld us", b.n, written,
                       (long long)(wk_clock_us() - t0));
    }
    audit_batch_free(&b);
}

int wk_audit_start(wk_runtime_t **out, wk_t *wk)
{
    wk_runtime_t *rt = calloc(1, sizeof *rt);
    if (!rt)
        return YARD_ENOMEM;
    int rc = wk_loop_start(&rt->log, wk, YARD_STREAM_EVENTS, YARD_CONSUMER_AUDIT,
                           AUDIT_EVENTS_PER_FETCH, 0, audit_log_batch, rt);
    if (rc == 0 && (rc = wk_ingest_start(&rt->ingest, wk)) < 0) {
        atomic_store(&wk->stopping, 1);
        wk_loop_join(rt->log);
    }
    if (rc < 0) {
        free(rt);
        return rc;
    }
    *out = rt;
    return 0;
}

void wk_audit_join(wk_runtime_t *rt)
{
    if (!rt)
        return;
    wk_ingest_join(rt->ingest);
    wk_loop_join(rt->log);
    yard_db_close(rt->conn);
    free(rt);
}
