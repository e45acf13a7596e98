/*
 * dlq.c - GET /v1/dlq and POST /v1/dlq/replay: dead letters over HTTP,
 * through the DLQ library (bus/dlq.h) that `yardctl dlq` uses.
 *
 *   GET /v1/dlq?queue=&error=&since=&limit=&cursor=   (scope read)
 *     -> {"dead_letters":[{"seq","job_id","type","queue","subject","attempts",
 *         "error","died_at","payload"}],"next_cursor":"<seq>"|null}
 *     A key without admin sees only the letters of jobs it submitted.
 *   POST /v1/dlq/replay   (scope admin)
 *     {"seqs":[…]} or {"all":true,"queue"?,"error_contains"?,"since"?}, "dry_run"?
 *     -> {"replayed":N,"would_replay":N,"missing":[seq…],"results":[{"seq","job_id",
 *         "outcome"…}]}; at most GW_DLQ_REPLAY_MAX letters per request.
 *
 * Reading letters and replaying block on JetStream and PostgreSQL, so both
 * run on the pool (pool.h), never on the loop; the loop only parses and
 * answers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "body.h"
#include "db.h"
#include "dlq.h"
#include "err.h"
#include "gw.h"
#include "log.h"

#define GW_DLQ_LIMIT_DEFAULT 100
#define GW_DLQ_LIMIT_MAX 1000
#define GW_DLQ_SCAN_MAX 10000    /* letters looked at per GET; a cursor goes on */
#define GW_DLQ_REPLAY_MAX 1000   /* letters replayed per POST */
#define GW_DLQ_PARAM_MAX 256

typedef struct {
    gw_t *gw;
    yard_http_req_t *req;
    char owner[GW_AUTH_ID_MAX + 1];
    char who[GW_AUTH_NAME_MAX + 64];
    char queue[GW_DLQ_PARAM_MAX], error[GW_DLQ_PARAM_MAX];
    yard_dlq_filter_t f;
    int dry_run;
    uint64_t *seqs;
    size_t nseqs;
    int status;
    char *body;
    const char *code;
    char message[200];
} dlq_task_t;

static void task_free(dlq_task_t *t)
{
    free(t->seqs);
    free(t->body);
    free(t);
}

static void task_fail(dlq_task_t *t, int status, const char *code, const char *message)
{
    t->status = status;
    t->code = code;
    snprintf(t->message, sizeof t->message, "%s", message);
}

/* Sets t's answer to doc (consumed). */
static void task_answer(dlq_task_t *t, json_t *doc)
{
    t->body = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (t->body)
        t->status = 200;
    else
        task_fail(t, 500, "internal", "out of memory");
}

static void dlq_done(void *ud)
{
    dlq_task_t *t = ud;
    if (t->status < 400)
        yard_http_respond(t->req, t->status, "application/json", NULL, t->body, strlen(t->body));
    else if (t->status == 503)
        gw_respond_unavailable(t->req, t->message);
    else
        yard_http_respond_error(t->req, t->status, t->code, t->message);
    task_free(t);
}

static void dlq_submit(dlq_task_t *t, gw_work_fn work)
{
    if (gw_pool_submit(t->gw->pool, work, dlq_done, t) < 0) {
        gw_respond_unavailable(t->req, "the gateway is overloaded; retry");
        task_free(t);
    }
}

/* A new task for req after the access check for scope; NULL when refused
 * (answered). */
static dlq_task_t *dlq_begin(gw_t *gw, yard_http_req_t *req, unsigned scope)
{
    gw_principal_t who;
    if (gw_access(gw, req, scope, 1, &who) < 0)
        return NULL;
    dlq_task_t *t = calloc(1, sizeof *t);
    if (!t) {
        yard_http_respond_error(req, 500, "internal", "out of memory");
        return NULL;
    }
    t->gw = gw;
    t->req = req;
    if (!(who.scopes & YARD_SCOPE_ADMIN))
        snprintf(t->owner, sizeof t->owner, "%s", who.key_id);
    snprintf(t->who, sizeof t->who, "api:%s", who.key_id[0] ? who.key_id : "anonymous");
    return t;
}

/* ---- GET /v1/dlq ------------------------------------------------------------------ */

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Copies the decoded value of parameter name of query q (len bytes) into
 * out (cap bytes). Returns 1 (found), 0 (absent) or -1 (too long or a bad
 * %-escape). */
static int query_param(char *out, size_t cap, const char *q, size_t len, const char *name)
{
    size_t nlen = strlen(name);
    const char *end = q + len;
    while (q && q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *stop = amp ? amp : end;
        if ((size_t)(stop - q) > nlen && strncmp(q, name, nlen) == 0 && q[nlen] == '=') {
            size_t n = 0;
            for (const char *p = q + nlen + 1; p < stop; p++) {
                char c = *p;
                if (c == '+') {
                    c = ' ';
                } else if (c == '%') {
                    if (stop - p < 3 || hexval(p[1]) < 0 || hexval(p[2]) < 0)
                        return -1;
                    c = (char)(hexval(p[1]) * 16 + hexval(p[2]));
                    p += 2;
                }
                if (n + 1 >= cap || c == '\0')
                    return -1;
                out[n++] = c;
            }
            out[n] = '\0';
            return 1;
        }
        q = amp ? amp + 1 : end;
    }
    return 0;
}

static void list_work(PGconn *conn, void *ud)
{
    dlq_task_t *t = ud;
    yard_dlq_list_t l;
    if (yard_dlq_list(&l, t->gw->js, &t->f) < 0) {
        task_fail(t, 503, "unavailable", "JetStream did not answer; retry");
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < l.n; i++)
        json_array_append_new(arr, yard_dlq_entry_json(&l.items[i]));
    task_answer(t, json_pack("{s:o*, s:o*}", "dead_letters", arr, "next_cursor",
                             l.next_cursor ? json_sprintf("%llu",
                                                          (unsigned long long)l.next_cursor)
                                           : json_null()));
    yard_dlq_list_free(&l);
}

static void get_dlq(yard_http_req_t *req, void *ud)
{
    size_t qlen = 0;
    const char *q = yard_http_req_query(req, &qlen);
    char since[GW_DLQ_PARAM_MAX], limit[32], cursor[32];
    dlq_task_t *t = dlq_begin(ud, req, YARD_SCOPE_READ);
    if (!t)
        return;
    int bad = 0, rc;
    t->f.limit = GW_DLQ_LIMIT_DEFAULT;
    t->f.scan_max = GW_DLQ_SCAN_MAX;
    t->f.owner = t->owner[0] ? t->owner : NULL;
    if ((rc = query_param(t->queue, sizeof t->queue, q, qlen, "queue")) < 0)
        bad = 1;
    t->f.queue = rc > 0 ? t->queue : NULL;
    if ((rc = query_param(t->error, sizeof t->error, q, qlen, "error")) < 0)
        bad = 1;
    t->f.error_contains = rc > 0 ? t->error : NULL;
    if ((rc = query_param(since, sizeof since, q, qlen, "since")) < 0 ||
        (rc > 0 && yard_dlq_parse_time(&t->f.since_ms, since) < 0))
        bad = 1;
    if ((rc = query_param(limit, sizeof limit, q, qlen, "limit")) != 0) {
        char *end;
        long n = rc > 0 ? strtol(limit, &end, 10) : 0;
        if (rc < 0 || *end || n < 1 || n > GW_DLQ_LIMIT_MAX)
            bad = 1;
        t->f.limit = (size_t)n;
    }
    if ((rc = query_param(cursor, sizeof cursor, q, qlen, "cursor")) != 0) {
        char *end;
        t->f.after_seq = rc > 0 ? strtoull(cursor, &end, 10) : 0;
        if (rc < 0 || *end || !cursor[0])
            bad = 1;
    }
    if (bad) {
        yard_http_respond_error(req, 400, "bad_request",
                                "query: queue and error are text, since an RFC 3339 UTC time, "
                                "limit 1 to 1000, cursor the next_cursor of a previous page");
        task_free(t);
        return;
    }
    dlq_submit(t, list_work);
}

/* ---- POST /v1/dlq/replay ----------------------------------------------------------- */

static void replay_work(PGconn *conn, void *ud)
{
    dlq_task_t *t = ud;
    gw_t *gw = t->gw;
    if (!conn) {
        task_fail(t, 503, "unavailable", "PostgreSQL is unavailable; retry");
        return;
    }
    if (!t->seqs) { /* all, or filters: select first */
        yard_dlq_list_t l;
        t->f.limit = GW_DLQ_REPLAY_MAX;
        if (yard_dlq_list(&l, gw->js, &t->f) < 0) {
            task_fail(t, 503, "unavailable", "JetStream did not answer; retry");
            return;
        }
        t->seqs = calloc(l.n ? l.n : 1, sizeof *t->seqs);
        for (size_t i = 0; t->seqs && i < l.n; i++)
            t->seqs[t->nseqs++] = l.items[i].seq;
        yard_dlq_list_free(&l);
        if (!t->seqs) {
            task_fail(t, 500, "internal", "out of memory");
            return;
        }
    }
    yard_dlq_replay_opts_t o = {t->dry_run, t->who, gw->cfg.js_publish_timeout_ms};
    json_t *results = json_array(), *missing = json_array();
    size_t replayed = 0, would = 0;
    for (size_t i = 0; i < t->nseqs; i++) {
        yard_dlq_result_t r;
        int rc = yard_dlq_replay(&r, gw->js, conn, t->seqs[i], &o);
        if (rc < 0 && !yard_db_ok(conn)) {
            gw_pool_conn_check(conn);
            json_decref(results);
            json_decref(missing);
            task_fail(t, 503, "unavailable", "PostgreSQL went away; retry (a replay resumes)");
            return;
        }
        replayed += r.outcome == YARD_DLQ_REPLAYED;
        would += r.outcome == YARD_DLQ_WOULD_REPLAY;
        if (r.outcome == YARD_DLQ_MISSING)
            json_array_append_new(missing, json_integer((json_int_t)r.seq));
        json_array_append_new(results, yard_dlq_result_json(&r));
    }
    task_answer(t, json_pack("{s:I, s:I, s:o*, s:o*}", "replayed", (json_int_t)replayed,
                             "would_replay", (json_int_t)would, "missing", missing, "results",
                             results));
}

/* Reads the replay request doc into t. Returns 0, or -1 with a 400 message
 * in t. */
static int replay_parse(dlq_task_t *t, json_t *doc)
{
    const char *key;
    json_t *v;
    int all = 0;
    if (!json_is_object(doc)) {
        task_fail(t, 400, "bad_request", "the body is a JSON object");
        return -1;
    }
    json_object_foreach(doc, key, v)
    {
        if (!strcmp(key, "seqs") && json_is_array(v) && json_array_size(v) >= 1 &&
            json_array_size(v) <= GW_DLQ_REPLAY_MAX) {
            t->seqs = calloc(json_array_size(v), sizeof *t->seqs);
            size_t i;
            json_t *s;
            json_array_foreach(v, i, s)
            {
                if (!t->seqs || !json_is_integer(s) || json_integer_value(s) < 1) {
                    task_fail(t, 400, "bad_request", "seqs holds DLQ sequences (integers >= 1)");
                    return -1;
                }
                t->seqs[t->nseqs++] = (uint64_t)json_integer_value(s);
            }
        } else if (!strcmp(key, "all") && json_is_boolean(v)) {
            all = json_is_true(v);
        } else if (!strcmp(key, "dry_run") && json_is_boolean(v)) {
            t->dry_run = json_is_true(v);
        } else if (!strcmp(key, "queue") && json_is_string(v) &&
                   json_string_length(v) < sizeof t->queue) {
            snprintf(t->queue, sizeof t->queue, "%s", json_string_value(v));
            t->f.queue = t->queue;
        } else if (!strcmp(key, "error_contains") && json_is_string(v) &&
                   json_string_length(v) < sizeof t->error) {
            snprintf(t->error, sizeof t->error, "%s", json_string_value(v));
            t->f.error_contains = t->error;
        } else if (!strcmp(key, "since") && json_is_string(v) &&
                   yard_dlq_parse_time(&t->f.since_ms, json_string_value(v)) == 0) {
        } else {
            char msg[160];
            snprintf(msg, sizeof msg, "field '%.60s' is unknown or has a bad value", key);
            task_fail(t, 400, "bad_request", msg);
            return -1;
        }
    }
    int filtered = t->f.queue || t->f.error_contains || t->f.since_ms;
    if (!t->seqs == !all || (t->seqs && filtered)) {
        task_fail(t, 400, "bad_request",
                  "send {\"seqs\":[...]} (1 to 1000 DLQ sequences) or {\"all\":true} with "
                  "optional queue, error_contains, since; not both");
        return -1;
    }
    return 0;
}

static void post_replay(yard_http_req_t *req, void *ud)
{
    size_t len = 0, ctl = 0;
    const char *ct = yard_http_req_header(req, "Content-Type", &ctl);
    const char *body = yard_http_req_body(req, &len);
    gw_body_kind_t kind;
    json_t *doc = NULL;
    char err[256];
    dlq_task_t *t = dlq_begin(ud, req, YARD_SCOPE_ADMIN);
    if (!t)
        return;
    if (gw_body_kind(&kind, ct, ct ? ctl : 0) < 0) {
        yard_http_respond_error(req, 415, "unsupported_media_type",
                                "send application/json or application/msgpack");
        task_free(t);
        return;
    }
    if (gw_body_decode(&doc, kind, body, len, err, sizeof err) < 0) {
        yard_http_respond_error(req, 400, "bad_request", err);
        task_free(t);
        return;
    }
    int rc = replay_parse(t, doc);
    json_decref(doc);
    if (rc < 0) {
        yard_http_respond_error(req, t->status, t->code, t->message);
        task_free(t);
        return;
    }
    dlq_submit(t, replay_work);
}

int gw_dlq_routes(gw_t *gw)
{
    int rc = yard_http_router_add(gw->router, "GET", "/v1/dlq", get_dlq, gw);
    if (rc == 0)
        rc = yard_http_router_add(gw->router, "POST", "/v1/dlq/replay", post_replay, gw);
    return rc;
}
