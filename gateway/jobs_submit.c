/*
 * jobs_submit.c - POST /v1/jobs and POST /v1/jobs/batch.
 *
 * A submission is validated, given its id (UUIDv7, or derived from the
 * Idempotency-Key so a retry maps to the same id), encoded as an envelope
 * and published asynchronously with Nats-Msg-Id = id. The request is
 * answered only when every PubAck is back: 202 for stored jobs, 503 with
 * Retry-After when JetStream did not confirm, so no job is answered 202 and
 * then lost. The loop never waits: acks hop back through gw_ack_post.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "body.h"
#include "envelope.h"
#include "err.h"
#include "gw.h"
#include "jobs.h"
#include "log.h"

#define GW_BATCH_MAX 1000

typedef struct gw_submit gw_submit_t;

/* One job of a submission and its outcome. A valid job goes through:
 * (an idempotency key: PostgreSQL lookup, a known job is a duplicate) ->
 * publish to JOBS -> its accepted event stored (EVENTS, with the JOBS
 * sequence, shared with the jobs acked at the same time) -> answered. */
typedef struct {
    gw_ack_t ack; /* first: the ack hop hands it back */
    gw_submit_t *owner;
    char id[YARD_ID_TEXT_LEN + 1];
    char queue[YARD_QUEUE_NAME_MAX + 1];
    char subject[YARD_JS_NAME_MAX];
    int scheduled;
    int idem;       /* has an idempotency key */
    int status;     /* 0 pending; 202 stored; 4xx/503 refused */
    int duplicate;  /* JOBS or PostgreSQL had it already */
    uint64_t seq;   /* its JOBS sequence */
    char *env;      /* the encoded envelope until both publishes are done */
    size_t env_len;
    const char *code;
    char message[256];
} gw_item_t;

struct gw_submit {
    gw_t *gw;
    yard_http_req_t *req;
    int batch;
    size_t n, outstanding;
    char tp[GW_TRACEPARENT_LEN + 1];
    char trace[YARD_TRACE_ID_LEN + 1]; /* tp's trace id, for the log */
    gw_item_t items[];
};

static int64_t gw_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A view of s for an optional envelope field: absent when NULL or empty. */
static yard_str_t opt_str(const char *s)
{
    return s && *s ? (yard_str_t){s, strlen(s)} : (yard_str_t){NULL, 0};
}

static void item_release(gw_item_t *it)
{
    free(it->env);
    it->env = NULL;
}

static void item_fail(gw_item_t *it, int status, const char *code, const char *message)
{
    it->status = status;
    it->code = code;
    snprintf(it->message, sizeof it->message, "%.255s", message);
}

static json_t *item_json(const gw_item_t *it)
{
    if (it->status == 202) {
        json_t *o = json_pack("{s:s, s:s}", "id", it->id, "status",
                              it->scheduled ? "scheduled" : "queued");
        if (it->duplicate)
            json_object_set_new(o, "duplicate", json_true());
        return o;
    }
    return json_pack("{s:{s:s, s:s}}", "error", "code", it->code, "message", it->message);
}

static void submit_count(gw_t *gw, const gw_item_t *it)
{
    const char *outcome = it->status == 202 ? (it->duplicate ? "duplicate" : "accepted")
                          : it->status == 503 ? "unavailable"
                                              : "rejected";
    yard_metrics_counter_add(
        yard_metrics_counter_with(gw->m_published, it->queue[0] ? it->queue : "-", outcome, NULL),
        1);
}

/* Everything is back: answer and free. */
static void submit_finish(gw_submit_t *s)
{
    gw_t *gw = s->gw;
    size_t ok = 0, unavailable = 0;
    for (size_t i = 0; i < s->n; i++) {
        item_release(&s->items[i]);
        submit_count(gw, &s->items[i]);
        ok += s->items[i].status == 202;
        unavailable += s->items[i].status == 503;
    }
    if (!s->batch) {
        gw_item_t *it = &s->items[0];
        if (it->status == 202)
            gw_respond_json(s->req, 202, item_json(it));
        else if (it->status == 503)
            gw_respond_unavailable(s->req, it->message);
        else
            yard_http_respond_error(s->req, it->status, it->code, it->message);
    } else if (ok == 0 && unavailable > 0) {
        gw_respond_unavailable(s->req, "JetStream did not confirm any job of the batch");
    } else {
        json_t *results = json_array();
        for (size_t i = 0; i < s->n; i++)
            json_array_append_new(results, item_json(&s->items[i]));
        gw_respond_json(s->req, 202,
                        json_pack("{s:I, s:I, s:o}", "accepted", (json_int_t)ok, "failed",
                                  (json_int_t)(s->n - ok), "results", results));
    }
    free(s);
}

/* Loop thread: the accepted event that carried the job is stored (or not:
 * the job is in JOBS all the same; it runs, and its claim records it). */
static void submit_on_event(void *ud, int rc)
{
    gw_item_t *it = ud;
    gw_submit_t *s = it->owner;
    item_release(it);
    if (--s->outstanding == 0)
        submit_finish(s);
}

/* Loop thread: the PubAck of the job (or its failure) came back. */
static void submit_on_ack(gw_ack_t *ack)
{
    gw_item_t *it = (gw_item_t *)ack;
    gw_submit_t *s = it->owner;
    if (ack->rc == 0) {
        it->status = 202;
        it->duplicate = ack->duplicate;
        /* Answered once the audit role's copy is stored too. */
        gw_accepted_add(s->gw, it->seq, it->env, it->env_len, submit_on_event, it);
        return;
    }
    yard_log_ctx_t ctx = {yard_http_req_id(s->req), it->id, s->trace};
    YARD_LOG_WARN(&ctx, "publish not confirmed: %s", yard_strerror(ack->rc));
    item_fail(it, 503, "unavailable", "JetStream did not confirm the job; retry");
    item_release(it);
    if (--s->outstanding == 0)
        submit_finish(s);
}

/* nats.c thread: hand the PubAck to the loop. */
static void submit_on_puback(void *ud, int rc, const yard_js_puback_t *pa)
{
    gw_item_t *it = ud;
    it->ack.rc = rc;
    it->ack.duplicate = pa ? pa->duplicate : 0;
    it->seq = pa ? pa->seq : 0;
    gw_ack_post(it->owner->gw, &it->ack);
}

/* Nonzero if the n bytes at s are lower-case hex, not all zero. */
static int tp_hex_field(const char *s, size_t n)
{
    int nonzero = 0;
    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
        nonzero |= s[i] != '0';
    }
    return nonzero;
}

/* Nonzero for a W3C traceparent "vv-<32 hex>-<16 hex>-ff": lower-case hex,
 * version not ff, trace and parent ids not all zero. */
static int tp_valid(const char *t, size_t len)
{
    return len == GW_TRACEPARENT_LEN && t[2] == '-' && t[35] == '-' && t[52] == '-' &&
           (tp_hex_field(t, 2) || (t[0] == '0' && t[1] == '0')) && memcmp(t, "ff", 2) != 0 &&
           tp_hex_field(t + 3, 32) && tp_hex_field(t + 36, 16) &&
           (tp_hex_field(t + 53, 2) || (t[53] == '0' && t[54] == '0'));
}

/* A W3C traceparent: the client's if well formed, else a fresh one. */
static void submit_traceparent(gw_t *gw, char out[GW_TRACEPARENT_LEN + 1], const char *given,
                               size_t len)
{
    static const char hex[] = "0123456789abcdef";
    if (given && tp_valid(given, len)) {
        memcpy(out, given, len);
        out[len] = '\0';
        return;
    }
    uint8_t r[24];
    yard_id_random(&gw->ids, r, sizeof r);
    char *p = out;
    memcpy(p, "00-", 3);
    p += 3;
    for (int i = 0; i < 24; i++) {
        if (i == 16)
            *p++ = '-';
        *p++ = hex[r[i] >> 4];
        *p++ = hex[r[i] & 15];
    }
    memcpy(p, "-01", 4);
}

/* Nonzero if the n bytes are printable ASCII (an Idempotency-Key). */
static int printable_ascii(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return 0;
    return 1;
}

/* Refuses (413, naming the limit) an envelope of size bytes that JOBS
 * (YARD_JS_MAX_MSG_SIZE) or the NATS server (its max_payload, less room for
 * headers) would not take. Returns 0 when it fits, -1 when refused. */
static int submit_check_size(gw_t *gw, gw_item_t *it, size_t size)
{
    int64_t server = yard_js_max_payload(gw->js);
    char msg[256];
    if (size > YARD_JS_MAX_MSG_SIZE - GW_NATS_HEADERS_ROOM) {
        snprintf(msg, sizeof msg,
                 "the encoded job is %zu bytes, over the limit of %d; send a smaller payload",
                 size, YARD_JS_MAX_MSG_SIZE - GW_NATS_HEADERS_ROOM);
    } else if (server > 0 && (int64_t)size > server - GW_NATS_HEADERS_ROOM) {
        snprintf(msg, sizeof msg,
                 "the encoded job is %zu bytes, over this cluster's limit of %lld (NATS "
                 "max_payload %lld less %d for headers); send a smaller payload",
                 size, (long long)(server - GW_NATS_HEADERS_ROOM), (long long)server,
                 GW_NATS_HEADERS_ROOM);
    } else {
        return 0;
    }
    item_fail(it, 413, "job_too_large", msg);
    return -1;
}

/* Validates and encodes one job object, ready to publish (it->env); on
 * refusal marks the item. */
static void submit_one(gw_submit_t *s, gw_item_t *it, json_t *obj, const gw_principal_t *who,
                       const char *header_idem, const char *tp)
{
    gw_t *gw = s->gw;
    gw_job_spec_t spec;
    char err[256];
    yard_id_t id;
    it->owner = s;
    it->ack.complete = submit_on_ack;
    if (gw_job_spec_parse(&spec, obj, &gw->rules, err, sizeof err) < 0) {
        item_fail(it, 400, "invalid_job", err);
        return;
    }
    snprintf(it->queue, sizeof it->queue, "%s", spec.queue);
    const char *idem = spec.idempotency_key ? spec.idempotency_key : header_idem;
    if (spec.idempotency_key && header_idem && strcmp(spec.idempotency_key, header_idem) != 0) {
        item_fail(it, 400, "invalid_job",
                  "the Idempotency-Key header and field `idempotency_key` differ");
        goto out;
    }
    if (idem)
        yard_id_from_idempotency(&id, gw->id_secret, who->key_id, strlen(who->key_id), idem,
                                 strlen(idem));
    else
        yard_id_next(&gw->ids, &id);
    yard_id_format(&id, it->id);

    int64_t now = gw_wall_ms();
    yard_envelope_t env;
    yard_env_init(&env);
    env.id = (yard_str_t){it->id, YARD_ID_TEXT_LEN};
    env.type = (yard_str_t){spec.type, strlen(spec.type)};
    env.queue = (yard_str_t){spec.queue, strlen(spec.queue)};
    env.payload = (yard_str_t){spec.payload_json, spec.payload_len};
    env.notify = (yard_str_t){spec.notify_json, spec.notify_len};
    env.secrets = (yard_str_t){spec.secrets_sealed, spec.secrets_sealed_len};
    env.priority = spec.priority;
    env.max_attempts = spec.max_attempts;
    env.timeout_s = spec.timeout_s;
    env.run_at_ms = spec.run_at_ms > now ? spec.run_at_ms : 0;
    env.created_at_ms = now;
    env.idempotency_key = opt_str(idem);
    env.api_key_id = opt_str(who->key_id);
    env.traceparent = (yard_str_t){tp, GW_TRACEPARENT_LEN};
    it->scheduled = env.run_at_ms != 0;

    size_t cap = yard_env_encoded_size_max(&env), len = 0;
    if (submit_check_size(gw, it, cap) < 0)
        goto out;
    it->env = malloc(cap);
    int rc = it->env ? yard_env_encode(&env, it->env, cap, &len) : YARD_ENOMEM;
    if (rc < 0) {
        yard_log_ctx_t ctx = {yard_http_req_id(s->req), it->id, s->trace};
        YARD_LOG_ERROR(&ctx, "cannot encode job: %s", yard_strerror(rc));
        item_fail(it, 500, "internal", "the job could not be encoded");
        item_release(it);
        goto out;
    }
    it->env_len = len;
    it->idem = idem != NULL;
    if (it->scheduled)
        snprintf(it->subject, sizeof it->subject, "%s", YARD_SUBJ_SCHEDULE);
    else {
        char durable[YARD_JS_NAME_MAX]; /* the subject of the job's priority tier */
        yard_js_execute_tier_names(durable, it->subject, spec.queue, (int)spec.priority);
    }
out:
    gw_job_spec_clear(&spec);
}

/* Publishes every job still pending to JOBS (loop thread). */
static void submit_publish(gw_submit_t *s)
{
    for (size_t i = 0; i < s->n; i++) {
        gw_item_t *it = &s->items[i];
        if (it->status != 0 || !it->env)
            continue;
        yard_js_header_t hdr = {YARD_HDR_TRACEPARENT, s->tp};
        char msg_id[YARD_MSGID_MAX];
        yard_js_msg_id(msg_id, YARD_MSGID_JOB, it->id, 0);
        yard_js_pub_t pub = {it->subject, msg_id, &hdr, 1, it->env, it->env_len};
        int rc = yard_js_publish_async(s->gw->js, &pub, submit_on_puback, it);
        if (rc == 0) {
            s->outstanding++;
            continue;
        }
        item_release(it);
        if (rc == YARD_EUNAVAIL || rc == YARD_EBUSY) {
            item_fail(it, 503, "unavailable",
                      rc == YARD_EBUSY ? "too many jobs waiting for JetStream; retry"
                                       : "JetStream is unavailable; retry");
        } else {
            yard_log_ctx_t ctx = {yard_http_req_id(s->req), it->id, s->trace};
            YARD_LOG_ERROR(&ctx, "cannot publish job: %s", yard_strerror(rc));
            item_fail(it, 500, "internal", "the job could not be published");
        }
    }
}

/* Pool thread: which jobs with an idempotency key PostgreSQL has already.
 * JetStream forgets the ids of jobs that left JOBS when it restarts, so
 * PostgreSQL answers for them. When it cannot answer, JetStream's duplicate
 * window (and the claim, which never runs a finished job) still holds. */
static void submit_known_work(PGconn *conn, void *ud)
{
    gw_submit_t *s = ud;
    const char **ids = calloc(s->n, sizeof *ids);
    int *known = calloc(s->n, sizeof *known);
    size_t *at = calloc(s->n, sizeof *at), k = 0;
    for (size_t i = 0; ids && known && at && i < s->n; i++)
        if (s->items[i].status == 0 && s->items[i].idem) {
            at[k] = i;
            ids[k++] = s->items[i].id;
        }
    if (conn && k && yard_jobs_known(conn, ids, k, known) == 0) {
        for (size_t j = 0; j < k; j++)
            if (known[j]) {
                gw_item_t *it = &s->items[at[j]];
                it->status = 202;
                it->duplicate = 1;
            }
    } else if (conn && k) {
        gw_pool_conn_check(conn);
    }
    free(ids);
    free(known);
    free(at);
}

/* Loop thread: the lookup is done; publish what is new. */
static void submit_known_done(void *ud)
{
    gw_submit_t *s = ud;
    for (size_t i = 0; i < s->n; i++)
        if (s->items[i].duplicate)
            item_release(&s->items[i]);
    submit_publish(s);
    if (--s->outstanding == 0)
        submit_finish(s);
}

json_t *gw_request_body(yard_http_req_t *req)
{
    size_t ctl = 0, len = 0;
    const char *ct = yard_http_req_header(req, "Content-Type", &ctl);
    const char *body = yard_http_req_body(req, &len);
    gw_body_kind_t kind;
    json_t *doc = NULL;
    char err[256];
    if (gw_body_kind(&kind, ct, ct ? ctl : 0) < 0) {
        yard_http_respond_error(req, 415, "unsupported_media_type",
                                ct ? "send application/json or application/msgpack"
                                   : "a Content-Type header is required: application/json or "
                                     "application/msgpack");
        return NULL;
    }
    if (gw_body_decode(&doc, kind, body, len, err, sizeof err) < 0) {
        yard_http_respond_error(req, 400, "bad_request", err);
        return NULL;
    }
    return doc;
}

static void submit_start(gw_t *gw, yard_http_req_t *req, int batch)
{
    char tp[GW_TRACEPARENT_LEN + 1], trace[YARD_TRACE_ID_LEN + 1];
    size_t n = 1, idem_len = 0, tp_len = 0;
    gw_principal_t who;
    /* The request's trace (the client's, or a new one) is known before
     * anything can refuse it, so even a refusal's access-log line has it. */
    const char *given_tp = yard_http_req_header(req, "traceparent", &tp_len);
    submit_traceparent(gw, tp, given_tp, given_tp ? tp_len : 0);
    memcpy(trace, tp + YARD_TRACE_ID_OFFSET, YARD_TRACE_ID_LEN);
    trace[YARD_TRACE_ID_LEN] = '\0';
    yard_http_req_set_trace(req, trace);
    /* The key is checked before the body is decoded: decoding a large body
     * costs the event loop milliseconds, which an unknown caller never gets. */
    if (gw_authenticate(gw, req, YARD_SCOPE_SUBMIT, &who) < 0)
        return;
    json_t *doc = gw_request_body(req);
    json_t *jobs = NULL;
    if (!doc)
        return;
    if (batch) {
        jobs = json_object_get(doc, "jobs");
        if (!json_is_object(doc) || json_object_size(doc) != 1 || !json_is_array(jobs) ||
            json_array_size(jobs) == 0 || json_array_size(jobs) > GW_BATCH_MAX) {
            yard_http_respond_error(req, 400, "bad_request",
                                    "a batch is {\"jobs\": [...]} with 1 to 1000 jobs");
            json_decref(doc);
            return;
        }
        n = json_array_size(jobs);
    }
    const char *idem = yard_http_req_header(req, "Idempotency-Key", &idem_len);
    if (idem && (batch || idem_len == 0 || idem_len > YARD_ENV_IDEM_MAX ||
                 !printable_ascii(idem, idem_len))) {
        yard_http_respond_error(req, 400, "bad_request",
                                batch ? "a batch takes `idempotency_key` per job, not the "
                                        "Idempotency-Key header"
                                      : "Idempotency-Key must be 1 to 255 printable ASCII "
                                        "characters");
        json_decref(doc);
        return;
    }
    if (gw_rate_charge(gw, req, &who, (double)n) < 0) {
        json_decref(doc);
        return;
    }
    gw_submit_t *s = calloc(1, sizeof *s + n * sizeof s->items[0]);
    if (!s) {
        yard_http_respond_error(req, 500, "internal", "out of memory");
        json_decref(doc);
        return;
    }
    s->gw = gw;
    s->req = req;
    s->batch = batch;
    s->n = n;
    memcpy(s->tp, tp, sizeof s->tp);
    memcpy(s->trace, trace, sizeof s->trace);
    /* Count one extra so no ack can finish the submission while we loop. */
    s->outstanding = 1;
    size_t with_idem = 0;
    for (size_t i = 0; i < n; i++) {
        submit_one(s, &s->items[i], batch ? json_array_get(jobs, i) : doc, &who, idem, s->tp);
        with_idem += s->items[i].status == 0 && s->items[i].idem;
    }
    json_decref(doc);
    /* Repeats of an idempotency key are looked up first (then published). */
    if (with_idem && gw_pool_submit(gw->pool, submit_known_work, submit_known_done, s) == 0)
        return;
    submit_publish(s);
    if (--s->outstanding == 0)
        submit_finish(s);
}

static void submit_single(yard_http_req_t *req, void *ud)
{
    submit_start(ud, req, 0);
}

static void submit_batch(yard_http_req_t *req, void *ud)
{
    submit_start(ud, req, 1);
}

int gw_jobs_submit_routes(gw_t *gw)
{
    int rc = yard_http_router_add(gw->router, "POST", "/v1/jobs", submit_single, gw);
    return rc < 0 ? rc : yard_http_router_add(gw->router, "POST", "/v1/jobs/batch", submit_batch, gw);
}

void gw_request_traceparent(gw_t *gw, yard_http_req_t *req, char tp[GW_TRACEPARENT_LEN + 1])
{
    size_t len = 0;
    char trace[YARD_TRACE_ID_LEN + 1];
    const char *given = yard_http_req_header(req, "traceparent", &len);
    submit_traceparent(gw, tp, given, given ? len : 0);
    memcpy(trace, tp + YARD_TRACE_ID_OFFSET, YARD_TRACE_ID_LEN);
    trace[YARD_TRACE_ID_LEN] = '\0';
    yard_http_req_set_trace(req, trace);
}
