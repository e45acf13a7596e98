/*
 * test_gateway_submit.c - the real yard-gateway over real HTTP, against a
 * real nats-server and PostgreSQL, with auth disabled: job submission.
 *
 * One environment and one gateway serve the whole file; the tests run in
 * order and the last two break things on purpose (nats-server stopped, then
 * the gateway stopped with SIGTERM). Each test measures the JOBS stream
 * before and after, so it does not depend on what earlier tests published.
 * Checks: a job answered 202 is in JOBS under its priority tier's subject
 * (jobs.execute.default.HIGH for a high one) with Nats-Msg-Id = its id and an envelope that says what was sent; the
 * Idempotency-Key dedupes (same id, "duplicate":true, one message); a batch
 * of 1000 is stored whole and one of 1001 is refused; run_at in the future
 * goes to jobs.schedule; msgpack bodies; a body just under 1 MiB is stored,
 * and against a nats-server with the default 1 MiB max_payload a job too big
 * for it gets 413, never 500; GET /v1/queues; with nats-server
 * gone every POST gets 503 with Retry-After and none 202, and the gateway
 * recovers when it is back; PostgreSQL restarted under it fails no request
 * (its pool replaces the connections the server closed before using them);
 * SIGTERM answers the requests in flight and exits 0.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <msgpack.h>

#include "config.h"
#include "envelope.h"
#include "err.h"
#include "harness.h"
#include "id.h"
#include "js_internal.h" /* raw JetStream checks */
#include "log.h"
#include "yt_http.h"

#define SUBJ_DEFAULT YARD_SUBJ_EXECUTE "default"
#define SUBJ_DEFAULT_HIGH "jobs.execute.default.HIGH" /* the high priority tier */

static struct {
    yt_env_t *env;
    pid_t gw;
    int port;
    yard_config_t cfg;
    yard_js_t *js; /* the test's own view of JetStream */
} g;

/* ---- helpers ---------------------------------------------------------------- */

static const char *const json_ct[] = {"Content-Type: application/json", NULL};

static int post(yt_http_resp_t *r, const char *path, const char *const headers[],
                const char *body)
{
    return yt_http_request(r, g.port, "POST", path, headers ? headers : json_ct, body,
                           strlen(body));
}

/* Fails unless r has status want; names what was sent. */
static void expect_status(const char *what, const yt_http_resp_t *r, int got, int want)
{
    if (got != want)
        fail_msg("%s: expected HTTP %d, got %d: %s", what, want, got,
                 got > 0 ? yt_http_body_excerpt(r) : "(no response)");
}

static json_t *body_json(const char *what, const yt_http_resp_t *r)
{
    json_error_t jerr;
    json_t *doc = json_loadb(r->body, r->body_len, 0, &jerr);
    if (!doc)
        fail_msg("%s: expected a JSON body, got (%s): %s", what, jerr.text,
                 yt_http_body_excerpt(r));
    return doc;
}

/* Fails unless id is a canonical lowercase UUID. */
static void expect_uuid(const char *what, const char *id)
{
    yard_id_t parsed;
    char canon[YARD_ID_TEXT_LEN + 1];
    if (!id || yard_id_parse(&parsed, id, strlen(id)) != 0)
        fail_msg("%s: expected a UUID id, got %s", what, id ? id : "none");
    yard_id_format(&parsed, canon);
    if (strcmp(canon, id) != 0)
        fail_msg("%s: expected the canonical lowercase UUID, got %s", what, id);
}

static uint64_t subject_count(const char *subject)
{
    uint64_t n = 0;
    int rc = yard_js_subject_count(&n, g.js, YARD_STREAM_JOBS, subject);
    if (rc != 0)
        fail_msg("counting %s in JOBS: %s", subject, yard_strerror(rc));
    return n;
}

/* The last message of JOBS on subject (natsMsg_Destroy it). */
static natsMsg *last_msg(const char *subject)
{
    natsMsg *m = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetLastMsg(&m, yard_js_ctx(g.js), YARD_STREAM_JOBS, subject, NULL, &jerr);
    if (s != NATS_OK)
        fail_msg("expected a message on %s in JOBS, got %s (JetStream error %d)", subject,
                 natsStatus_GetText(s), (int)jerr);
    return m;
}

static void expect_msg_id(natsMsg *m, const char *id)
{
    const char *v = NULL;
    if (natsMsgHeader_Get(m, "Nats-Msg-Id", &v) != NATS_OK || !v || strcmp(v, id) != 0)
        fail_msg("expected Nats-Msg-Id %s on %s, got %s", id, natsMsg_GetSubject(m),
                 v ? v : "none");
}

static int str_eq(yard_str_t s, const char *want)
{
    return want ? yard_str_eq_cstr(s, want) : s.len == 0;
}

/* Fails unless the envelope's JSON text s is the same JSON as want_text. */
static void expect_json_eq(const char *what, yard_str_t s, const char *want_text)
{
    json_t *got = json_loadb(s.ptr ? s.ptr : "", s.len, JSON_DECODE_ANY, NULL);
    json_t *want = json_loads(want_text, JSON_DECODE_ANY, NULL);
    int eq = got && want && json_equal(got, want);
    json_decref(got);
    json_decref(want);
    if (!eq)
        fail_msg("%s: expected %s, got %.*s", what, want_text, (int)s.len, s.ptr ? s.ptr : "");
}

static void rfc3339(char out[32], time_t t)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* POSTs body to /v1/jobs, expects 202 with {"id","status":want_status};
 * copies the id. */
static void submit_ok(char id[YARD_ID_TEXT_LEN + 1], const char *const headers[],
                      const char *body, const char *want_status)
{
    yt_http_resp_t r;
    int st = post(&r, "/v1/jobs", headers, body);
    expect_status(body, &r, st, 202);
    json_t *doc = body_json(body, &r);
    const char *got_id = json_string_value(json_object_get(doc, "id"));
    const char *status = json_string_value(json_object_get(doc, "status"));
    expect_uuid(body, got_id);
    if (!status || strcmp(status, want_status) != 0)
        fail_msg("%s: expected status \"%s\", got %s", body, want_status, yt_http_body_excerpt(&r));
    snprintf(id, YARD_ID_TEXT_LEN + 1, "%s", got_id);
    json_decref(doc);
    yt_http_resp_free(&r);
}

/* ---- setup ------------------------------------------------------------------- */

static int setup(void **state)
{
    static char *const extra[] = {"YARD_AUTH_DISABLED=true", "YARD_RATE_PER_S=1000000",
                                  "YARD_RATE_BURST=1000000", "YARD_JS_PUBLISH_TIMEOUT_MS=2000",
                                  "YARD_ID_SECRET=test-secret", NULL};
    yard_log_init("test_gateway_submit", YARD_LOG_ERROR);
    if (yt_env_create(&g.env, YT_NATS | YT_PG | YT_MIGRATE) != 0)
        return -1;
    g.gw = yt_gateway_start(g.env, &g.port, extra);
    if (g.gw < 0)
        return -1;
    yard_config_defaults(&g.cfg);
    yard_config_set(&g.cfg, "nats_url", g.env->nats_url);
    yard_config_set(&g.cfg, "js_publish_timeout_ms", "2000");
    if (yard_js_connect(&g.js, &g.cfg, "test_gateway_submit") != 0) {
        fprintf(stderr, "test_gateway_submit: cannot connect to nats-server\n");
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    if (g.gw > 0 && yt_kill_wait(g.gw, SIGTERM, 10000) < 0)
        yt_kill_wait(g.gw, SIGKILL, 5000);
    yard_js_destroy(g.js, 1000);
    yt_env_destroy(g.env);
    return 0;
}

/* ---- tests --------------------------------------------------------------------- */

static void test_job_is_in_jobs_stream_with_its_envelope(void **state)
{
    static const char body[] =
        "{\"type\":\"email.send\",\"payload\":{\"to\":\"a@example.com\",\"n\":[1,2.5,null]},"
        "\"priority\":\"high\",\"max_attempts\":7,\"timeout_s\":42}";
    char id[YARD_ID_TEXT_LEN + 1];
    const char *const headers[] = {
        "Content-Type: application/json",
        "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", NULL};
    uint64_t before = subject_count(SUBJ_DEFAULT_HIGH);
    int64_t t0 = wall_ms();
    submit_ok(id, headers, body, "queued");
    assert_true(subject_count(SUBJ_DEFAULT_HIGH) == before + 1);

    natsMsg *m = last_msg(SUBJ_DEFAULT_HIGH);
    expect_msg_id(m, id);
    const char *tp = NULL;
    natsMsgHeader_Get(m, "traceparent", &tp);
    if (!tp || strcmp(tp, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01") != 0)
        fail_msg("expected the client's traceparent on the message, got %s", tp ? tp : "none");
    yard_envelope_t env;
    int rc = yard_env_decode(&env, natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m));
    if (rc != 0)
        fail_msg("expected the message to decode as an envelope, got %s", yard_strerror(rc));
    if (!str_eq(env.id, id) || !str_eq(env.type, "email.send") || !str_eq(env.queue, "default"))
        fail_msg("envelope: expected id %s type email.send queue default, got %.*s %.*s %.*s", id,
                 (int)env.id.len, env.id.ptr, (int)env.type.len, env.type.ptr,
                 (int)env.queue.len, env.queue.ptr);
    expect_json_eq("envelope payload", env.payload, "{\"to\":\"a@example.com\",\"n\":[1,2.5,null]}");
    assert_int_equal(env.max_attempts, 7);
    assert_int_equal(env.timeout_s, 42);
    assert_int_equal(env.priority, YARD_PRIO_HIGH);
    assert_true(env.run_at_ms == 0);
    if (env.created_at_ms < t0 - 5000 || env.created_at_ms > wall_ms() + 5000)
        fail_msg("envelope: expected created_at near %lld, got %lld", (long long)t0,
                 (long long)env.created_at_ms);
    if (!str_eq(env.api_key_id, NULL))
        fail_msg("envelope: expected no api key with auth disabled, got %.*s",
                 (int)env.api_key_id.len, env.api_key_id.ptr);
    assert_true(str_eq(env.traceparent, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"));
    natsMsg_Destroy(m);

    /* Defaults: max_attempts 5, timeout_s 300, no payload. */
    submit_ok(id, NULL, "{\"type\":\"noop\"}", "queued");
    m = last_msg(SUBJ_DEFAULT);
    expect_msg_id(m, id);
    assert_int_equal(yard_env_decode(&env, natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m)), 0);
    assert_int_equal(env.max_attempts, 5);
    assert_int_equal(env.timeout_s, 300);
    assert_true(env.payload.len == 0);
    assert_true(env.traceparent.len == 55); /* a fresh one */
    natsMsg_Destroy(m);
}

static void test_idempotency_key_gives_one_id_and_one_message(void **state)
{
    char key[96], hdr[128], id1[YARD_ID_TEXT_LEN + 1];
    snprintf(key, sizeof key, "order-%lld-%d", (long long)wall_ms(), (int)getpid());
    snprintf(hdr, sizeof hdr, "Idempotency-Key: %s", key);
    const char *const headers[] = {"Content-Type: application/json", hdr, NULL};
    static const char body[] = "{\"type\":\"charge\",\"payload\":{\"cents\":1200}}";
    uint64_t before = subject_count(SUBJ_DEFAULT);

    yt_http_resp_t r1, r2;
    int st = post(&r1, "/v1/jobs", headers, body);
    expect_status("first submit with an Idempotency-Key", &r1, st, 202);
    st = post(&r2, "/v1/jobs", headers, body);
    expect_status("second submit with the same Idempotency-Key", &r2, st, 202);
    json_t *a = body_json("first", &r1), *b = body_json("second", &r2);
    const char *ida = json_string_value(json_object_get(a, "id"));
    const char *idb = json_string_value(json_object_get(b, "id"));
    expect_uuid("first", ida);
    if (!idb || strcmp(ida, idb) != 0)
        fail_msg("expected the same id twice, got %s then %s", ida, idb ? idb : "none");
    if (json_object_get(a, "duplicate"))
        fail_msg("expected no \"duplicate\" on the first answer, got %s", r1.body);
    if (!json_is_true(json_object_get(b, "duplicate")))
        fail_msg("expected \"duplicate\":true on the second answer, got %s", r2.body);
    snprintf(id1, sizeof id1, "%s", ida);
    json_decref(a);
    json_decref(b);
    yt_http_resp_free(&r1);
    yt_http_resp_free(&r2);

    uint64_t after = subject_count(SUBJ_DEFAULT);
    if (after != before + 1)
        fail_msg("expected exactly one message for the key, got %llu",
                 (unsigned long long)(after - before));
    natsMsg *m = last_msg(SUBJ_DEFAULT);
    expect_msg_id(m, id1);
    yard_envelope_t env;
    assert_int_equal(yard_env_decode(&env, natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m)), 0);
    assert_true(str_eq(env.idempotency_key, key));
    natsMsg_Destroy(m);

    /* Another key, another id. */
    char id2[YARD_ID_TEXT_LEN + 1], hdr2[160];
    snprintf(hdr2, sizeof hdr2, "Idempotency-Key: %s-other", key);
    const char *const headers2[] = {"Content-Type: application/json", hdr2, NULL};
    submit_ok(id2, headers2, body, "queued");
    assert_string_not_equal(id1, id2);
}

/* Nonzero when s (len bytes) is a W3C traceparent the gateway may pass on:
 * version 00, 32 and 16 lowercase hex digits not all zero, 2 of flags. */
static int traceparent_ok(const char *s, size_t len)
{
    int nonzero_trace = 0, nonzero_parent = 0;
    if (len != 55 || s[0] != '0' || s[1] != '0')
        return 0;
    for (size_t i = 0; i < len; i++) {
        int dash = i == 2 || i == 35 || i == 52;
        char c = s[i];
        if (dash != (c == '-') || (!dash && !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))))
            return 0;
        nonzero_trace |= i > 2 && i < 35 && c != '0';
        nonzero_parent |= i > 35 && i < 52 && c != '0';
    }
    return nonzero_trace && nonzero_parent;
}

/* A traceparent that only looks like one (dashes in place, not hex, not
 * ASCII) must not travel on: the gateway starts a fresh trace instead. */
static void test_malformed_traceparent_is_replaced(void **state)
{
    static const char *const bad[] = {
        "traceparent: zz-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "traceparent: 00-00000000000000000000000000000000-b7ad6b7169203331-01",
        "traceparent: 00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01",
        "traceparent: 00-0af7651916cd43dd8448eb211c8031\xc3\xa9-b7ad6b7169203331-01",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char id[YARD_ID_TEXT_LEN + 1];
        const char *const headers[] = {"Content-Type: application/json", bad[i], NULL};
        submit_ok(id, headers, "{\"type\":\"noop\"}", "queued");
        natsMsg *m = last_msg(SUBJ_DEFAULT);
        expect_msg_id(m, id);
        const char *tp = NULL;
        natsMsgHeader_Get(m, "traceparent", &tp);
        yard_envelope_t env;
        assert_int_equal(yard_env_decode(&env, natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m)),
                         0);
        if (!tp || !traceparent_ok(tp, strlen(tp)) || !traceparent_ok(env.traceparent.ptr,
                                                                     env.traceparent.len))
            fail_msg("sent \"%s\": expected a well-formed W3C traceparent on the message and in "
                     "the envelope, got header %s, envelope %.*s", bad[i], tp ? tp : "none",
                     (int)env.traceparent.len, env.traceparent.ptr);
        natsMsg_Destroy(m);
    }
}

/* {"jobs":[n jobs]} (free it). */
static char *batch_body(int n)
{
    size_t cap = (size_t)n * 64 + 32, len = 0;
    char *s = malloc(cap);
    len += (size_t)snprintf(s, cap, "{\"jobs\":[");
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(s + len, cap - len, "%s{\"type\":\"noop\",\"payload\":%d}",
                                i ? "," : "", i);
    snprintf(s + len, cap - len, "]}");
    return s;
}

static void test_batch_of_1000_is_stored_whole(void **state)
{
    char *body = batch_body(1000);
    uint64_t before = subject_count(SUBJ_DEFAULT);
    yt_http_resp_t r;
    int st = post(&r, "/v1/jobs/batch", NULL, body);
    expect_status("a batch of 1000", &r, st, 202);
    json_t *doc = body_json("a batch of 1000", &r);
    json_t *results = json_object_get(doc, "results");
    if (json_integer_value(json_object_get(doc, "accepted")) != 1000 ||
        json_integer_value(json_object_get(doc, "failed")) != 0 || json_array_size(results) != 1000)
        fail_msg("a batch of 1000: expected accepted 1000, failed 0, 1000 results, got %s",
                 yt_http_body_excerpt(&r));
    /* Every result queued, with its own id. */
    json_t *ids = json_object();
    for (size_t i = 0; i < 1000; i++) {
        json_t *it = json_array_get(results, i);
        const char *id = json_string_value(json_object_get(it, "id"));
        const char *status = json_string_value(json_object_get(it, "status"));
        if (!id || !status || strcmp(status, "queued") != 0)
            fail_msg("a batch of 1000: result %zu is not queued: %s", i,
                     json_dumps(it, JSON_COMPACT));
        expect_uuid("a batch result", id);
        json_object_set_new(ids, id, json_true());
    }
    assert_int_equal(json_object_size(ids), 1000);
    json_decref(ids);
    json_decref(doc);
    yt_http_resp_free(&r);
    free(body);
    uint64_t after = subject_count(SUBJ_DEFAULT);
    if (after != before + 1000)
        fail_msg("a batch of 1000: expected 1000 new messages, got %llu",
                 (unsigned long long)(after - before));
}

static void test_batch_of_1001_is_refused(void **state)
{
    char *body = batch_body(1001), why[512];
    uint64_t before = subject_count(SUBJ_DEFAULT);
    yt_http_resp_t r;
    int st = post(&r, "/v1/jobs/batch", NULL, body);
    expect_status("a batch of 1001", &r, st, 400);
    if (yt_http_check_error(&r, why, sizeof why) != 0)
        fail_msg("a batch of 1001: %s", why);
    yt_http_resp_free(&r);
    free(body);
    st = post(&r, "/v1/jobs/batch", NULL, "{\"jobs\":[]}");
    expect_status("an empty batch", &r, st, 400);
    yt_http_resp_free(&r);
    assert_true(subject_count(SUBJ_DEFAULT) == before);
}

static void test_run_at_in_the_future_is_scheduled(void **state)
{
    char at[32], body[160], id[YARD_ID_TEXT_LEN + 1];
    time_t when = time(NULL) + 3600;
    rfc3339(at, when);
    snprintf(body, sizeof body, "{\"type\":\"report\",\"run_at\":\"%s\"}", at);
    uint64_t before = subject_count(YARD_SUBJ_SCHEDULE);
    uint64_t before_exec = subject_count(SUBJ_DEFAULT);
    submit_ok(id, NULL, body, "scheduled");
    assert_true(subject_count(YARD_SUBJ_SCHEDULE) == before + 1);
    assert_true(subject_count(SUBJ_DEFAULT) == before_exec);
    natsMsg *m = last_msg(YARD_SUBJ_SCHEDULE);
    expect_msg_id(m, id);
    yard_envelope_t env;
    assert_int_equal(yard_env_decode(&env, natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m)), 0);
    if (env.run_at_ms != (int64_t)when * 1000)
        fail_msg("expected run_at %lld in the envelope, got %lld", (long long)when * 1000,
                 (long long)env.run_at_ms);
    assert_true(str_eq(env.queue, "default"));
    natsMsg_Destroy(m);

    /* run_at in the past: run now. */
    rfc3339(at, time(NULL) - 3600);
    snprintf(body, sizeof body, "{\"type\":\"report\",\"run_at\":\"%s\"}", at);
    submit_ok(id, NULL, body, "queued");
    m = last_msg(SUBJ_DEFAULT);
    expect_msg_id(m, id);
    natsMsg_Destroy(m);
}

static void test_msgpack_body_is_accepted(void **state)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4);
    msgpack_pack_str_with_body(&pk, "type", 4);
    msgpack_pack_str_with_body(&pk, "resize", 6);
    msgpack_pack_str_with_body(&pk, "payload", 7);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str_with_body(&pk, "w", 1);
    msgpack_pack_int(&pk, 640);
    msgpack_pack_str_with_body(&pk, "tags", 4);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_true(&pk);
    msgpack_pack_nil(&pk);
    msgpack_pack_str_with_body(&pk, "max_attempts", 12);
    msgpack_pack_int(&pk, 3);
    msgpack_pack_str_with_body(&pk, "timeout_s", 9);
    msgpack_pack_int(&pk, 9);

    const char *const headers[] = {"Content-Type: application/msgpack", NULL};
    yt_http_resp_t r;
    int st = yt_http_request(&r, g.port, "POST", "/v1/jobs", headers, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    expect_status("a msgpack job", &r, st, 202);
    json_t *doc = body_json("a msgpack job", &r);
    const char *id = json_string_value(json_object_get(doc, "id"));
    expect_uuid("a msgpack job", id);
    natsMsg *m = last_msg(SUBJ_DEFAULT);
    expect_msg_id(m, id);
    yard_envelope_t env;
    assert_int_equal(yard_env_decode(&env, natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m)), 0);
    assert_true(str_eq(env.type, "resize"));
    expect_json_eq("msgpack payload", env.payload, "{\"w\":640,\"tags\":[true,null]}");
    assert_int_equal(env.max_attempts, 3);
    assert_int_equal(env.timeout_s, 9);
    natsMsg_Destroy(m);
    json_decref(doc);
    yt_http_resp_free(&r);
}

/* An empty string is a string: in a msgpack body as in a JSON one. */
static void test_msgpack_empty_string_is_accepted(void **state)
{
    /* {"type":"noop","payload":{"note":""}} */
    static const char body[] = "\x82\xa4type\xa4noop\xa7payload\x81\xa4note\xa0";
    const char *const headers[] = {"Content-Type: application/msgpack", NULL};
    yt_http_resp_t r;
    int st = yt_http_request(&r, g.port, "POST", "/v1/jobs", headers, body, sizeof body - 1);
    expect_status("a msgpack job whose payload holds an empty string", &r, st, 202);
    json_t *doc = body_json("a msgpack job with an empty string", &r);
    natsMsg *m = last_msg(SUBJ_DEFAULT);
    expect_msg_id(m, json_string_value(json_object_get(doc, "id")));
    yard_envelope_t env;
    assert_int_equal(yard_env_decode(&env, natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m)), 0);
    expect_json_eq("msgpack payload with an empty string", env.payload, "{\"note\":\"\"}");
    natsMsg_Destroy(m);
    json_decref(doc);
    yt_http_resp_free(&r);
}

/* A body 161 bytes under the gateway's 1 MiB limit: its envelope is over
 * 1 MiB, nats-server's default max_payload. */
#define NEAR_LIMIT_BODY 1048415
#define MIB (1024 * 1024)

/* {"type":"noop","payload":"xx..."} of exactly n bytes (free it). */
static char *job_of_size(size_t n)
{
    static const char head[] = "{\"type\":\"noop\",\"payload\":\"", tail[] = "\"}";
    size_t h = sizeof head - 1, t = sizeof tail - 1;
    char *s = malloc(n + 1);
    assert_non_null(s);
    assert_true(n >= h + t);
    memcpy(s, head, h);
    memset(s + h, 'x', n - h - t);
    memcpy(s + n - t, tail, t);
    s[n] = '\0';
    return s;
}

static void test_body_near_1mib_is_stored(void **state)
{
    char *body = job_of_size(NEAR_LIMIT_BODY);
    uint64_t before = subject_count(SUBJ_DEFAULT);
    yt_http_resp_t r;
    int st = post(&r, "/v1/jobs", NULL, body);
    free(body);
    expect_status("a job of 1,048,415 bytes", &r, st, 202);
    yt_http_resp_free(&r);
    if (subject_count(SUBJ_DEFAULT) != before + 1)
        fail_msg("a job of 1,048,415 bytes: answered 202, expected it in JOBS");
}

/* Restarts nats-server with its default max_payload (1 MiB) or with the
 * harness's, and waits until the gateway stores jobs again. */
static void restart_nats(int default_payload)
{
    if (default_payload)
        g.env->flags |= YT_NATS_DEFAULT_PAYLOAD;
    else
        g.env->flags &= ~(unsigned)YT_NATS_DEFAULT_PAYLOAD;
    assert_int_equal(yt_nats_stop(g.env), 0);
    assert_int_equal(yt_nats_start(g.env), 0);
    long long deadline = yt_now_ms() + 10000;
    yt_http_resp_t r;
    int st;
    do {
        st = post(&r, "/v1/jobs", NULL, "{\"type\":\"noop\"}");
        yt_http_resp_free(&r);
    } while (st != 202 && yt_now_ms() < deadline && usleep(100 * 1000) == 0);
    if (st != 202)
        fail_msg("after restarting nats-server: expected 202 within 10 s, got %d", st);
    while (!yard_js_connected(g.js) && yt_now_ms() < deadline)
        usleep(50 * 1000);
}

/* Fails unless r is a 413 job_too_large that names the limit. */
static void expect_too_large(const char *what, const yt_http_resp_t *r, int st)
{
    char why[512];
    expect_status(what, r, st, 413);
    if (yt_http_check_error(r, why, sizeof why) != 0)
        fail_msg("%s: %s", what, why);
    if (strcmp(yt_http_error_code(r), "job_too_large") != 0 || !strstr(r->body, "max_payload") ||
        !strstr(r->body, "1048576"))
        fail_msg("%s: expected job_too_large naming max_payload 1048576, got %s", what,
                 yt_http_body_excerpt(r));
}

/* nats-server refuses messages over its max_payload: the gateway reads that
 * limit and refuses the job itself (413), before nats.c would fail the
 * publish (500). Sizes from 900 KiB to 1 MiB: 16 KiB apart, then 61 bytes
 * apart across the last 2 KiB where the limit lies. */
static void test_default_max_payload_gives_413_not_500(void **state)
{
    restart_nats(1);
    char *body = job_of_size(NEAR_LIMIT_BODY), what[96];
    uint64_t before = subject_count(SUBJ_DEFAULT);
    yt_http_resp_t r;
    int st = post(&r, "/v1/jobs", NULL, body);
    free(body);
    expect_too_large("a job of 1,048,415 bytes, nats-server max_payload 1 MiB", &r, st);
    yt_http_resp_free(&r);

    int n202 = 0, n413 = 0;
    for (size_t n = 900 * 1024;; n += n < MIB - 2048 ? 16 * 1024 : 61) {
        if (n > MIB)
            n = MIB;
        snprintf(what, sizeof what, "a job of %zu bytes, nats-server max_payload 1 MiB", n);
        body = job_of_size(n);
        st = post(&r, "/v1/jobs", NULL, body);
        free(body);
        if (st == 413)
            expect_too_large(what, &r, st);
        else if (st != 202)
            fail_msg("%s: expected 202 or 413, got %d: %s", what, st,
                     st > 0 ? yt_http_body_excerpt(&r) : "(no response)");
        n202 += st == 202;
        n413 += st == 413;
        yt_http_resp_free(&r);
        if (n == MIB)
            break;
    }
    if (n202 == 0 || n413 == 0)
        fail_msg("from 900 KiB to 1 MiB: expected some 202 and some 413, got %d and %d", n202,
                 n413);
    if (subject_count(SUBJ_DEFAULT) != before + (uint64_t)n202)
        fail_msg("expected the %d jobs answered 202 in JOBS, found %llu", n202,
                 (unsigned long long)(subject_count(SUBJ_DEFAULT) - before));
    restart_nats(0);
}

static void test_queues_show_pending(void **state)
{
    uint64_t pending = 0, ack_pending = 0;
    assert_int_equal(yard_js_consumer_depth(&pending, &ack_pending, g.js, YARD_STREAM_JOBS,
                                            "execute_default"), 0);
    uint64_t stored = subject_count(SUBJ_DEFAULT);
    /* No worker runs: every stored execute message is pending. */
    if (pending != stored || stored < 1000)
        fail_msg("expected execute_default pending == %llu messages, got %llu",
                 (unsigned long long)stored, (unsigned long long)pending);
    /* The queue is its three priority tiers: GET /v1/queues adds them up. */
    for (int tier = 0; tier < YARD_JS_TIERS; tier += 2) {
        char durable[YARD_JS_NAME_MAX], subject[YARD_JS_NAME_MAX];
        uint64_t p = 0, ap = 0;
        yard_js_execute_tier_names(durable, subject, "default", tier);
        assert_int_equal(yard_js_consumer_depth(&p, &ap, g.js, YARD_STREAM_JOBS, durable), 0);
        pending += p;
    }
    yt_http_resp_t r;
    int st = yt_http_request(&r, g.port, "GET", "/v1/queues", NULL, NULL, 0);
    expect_status("GET /v1/queues", &r, st, 200);
    json_t *doc = body_json("GET /v1/queues", &r);
    json_t *queues = json_object_get(doc, "queues"), *q = NULL;
    for (size_t i = 0; i < json_array_size(queues); i++) {
        const char *name = json_string_value(json_object_get(json_array_get(queues, i), "name"));
        if (name && strcmp(name, "default") == 0)
            q = json_array_get(queues, i);
    }
    if (!q)
        fail_msg("GET /v1/queues: expected a queue named default, got %s", yt_http_body_excerpt(&r));
    if ((uint64_t)json_integer_value(json_object_get(q, "pending")) != pending ||
        !json_is_integer(json_object_get(q, "in_flight")) ||
        json_integer_value(json_object_get(q, "dead")) != 0)
        fail_msg("GET /v1/queues: expected default with pending %llu, in_flight and dead 0, got %s",
                 (unsigned long long)pending, yt_http_body_excerpt(&r));
    json_decref(doc);
    yt_http_resp_free(&r);

    /* The same depth reaches /metrics (refreshed every 5 s) for dashboards
     * and autoscalers. */
    char want[96];
    snprintf(want, sizeof want, "yard_queue_pending{queue=\"default\"} %llu",
             (unsigned long long)pending);
    int seen = 0;
    for (int i = 0; i < 80 && !seen; i++) {
        st = yt_http_request(&r, g.port, "GET", "/metrics", NULL, NULL, 0);
        expect_status("GET /metrics", &r, st, 200);
        seen = r.body && strstr(r.body, want) && strstr(r.body, "yard_dlq_size{queue=\"default\"} 0");
        yt_http_resp_free(&r);
        if (!seen)
            usleep(100000);
    }
    if (!seen)
        fail_msg("GET /metrics: expected `%s` and a zero yard_dlq_size within 8 s", want);
}

#define OUTAGE_POSTS 50

/* n GET path requests at once on n connections; fails the test unless
 * every answer is 200 (what says which request of when). */
static void get_all_at_once(const char *path, int n, const char *when)
{
    yt_http_conn_t *conns[32] = {0};
    assert_true(n <= 32);
    for (int i = 0; i < n; i++) {
        if (yt_http_connect(&conns[i], g.port) != 0 ||
            yt_http_send_request(conns[i], "GET", path, NULL, NULL, 0) != 0)
            fail_msg("%s: request %d of %d could not be sent", when, i + 1, n);
    }
    for (int i = 0; i < n; i++) {
        yt_http_resp_t r = {0};
        int st = yt_http_read(conns[i], &r, 15000);
        if (st != 200)
            fail_msg("%s: GET %s %d of %d answered %d: %s", when, path, i + 1, n, st,
                     st > 0 ? yt_http_body_excerpt(&r) : "(no response)");
        yt_http_resp_free(&r);
        yt_http_close(conns[i]);
    }
}

/* PostgreSQL restarted under a running gateway: the server closed every
 * connection of the gateway's pool, and none of the requests after it is
 * back may fail for that (each pooled connection failed one request before
 * it was replaced: a 503 for every pool thread after every restart). */
static void test_postgres_restart_fails_no_request(void **state)
{
    (void)state;
    /* Requests at once, so that every pool thread holds a connection. */
    get_all_at_once("/v1/jobs?limit=5", 32, "before the restart");
    if (yt_pg_stop(g.env) != 0 || yt_pg_start(g.env) != 0)
        fail_msg("PostgreSQL did not restart");
    for (int i = 0; i < 8; i++) {
        char when[64];
        snprintf(when, sizeof when, "request %d after the restart", i + 1);
        get_all_at_once("/v1/jobs?limit=5", 1, when);
    }
    get_all_at_once("/v1/jobs?limit=5", 32, "at once after the restart");
}

static void test_nats_down_gives_503_and_recovers(void **state)
{
    char why[512];
    yt_http_conn_t *conns[OUTAGE_POSTS] = {0};
    int n202 = 0, n503 = 0;
    assert_int_equal(yt_nats_stop(g.env), 0);

    /* Sent at once on 50 connections, then every answer is read. */
    for (int i = 0; i < OUTAGE_POSTS; i++) {
        char body[64];
        snprintf(body, sizeof body, "{\"type\":\"noop\",\"payload\":%d}", i);
        assert_int_equal(yt_http_connect(&conns[i], g.port), 0);
        assert_int_equal(yt_http_send_request(conns[i], "POST", "/v1/jobs", json_ct, body,
                                              strlen(body)), 0);
    }
    for (int i = 0; i < OUTAGE_POSTS; i++) {
        yt_http_resp_t r;
        int st = yt_http_read(conns[i], &r, 15000);
        n202 += st == 202;
        if (st == 503) {
            n503++;
            const char *ra = yt_http_header(&r, "Retry-After");
            if (!ra || atoi(ra) < 1)
                fail_msg("POST %d with NATS down: expected 503 with Retry-After >= 1, got %s", i,
                         ra ? ra : "no Retry-After");
            if (yt_http_check_error(&r, why, sizeof why) != 0)
                fail_msg("POST %d with NATS down: %s", i, why);
        } else if (st != 202) {
            fail_msg("POST %d with NATS down: expected 503, got %d: %s", i, st,
                     st > 0 ? yt_http_body_excerpt(&r) : "(no response)");
        }
        yt_http_resp_free(&r);
        yt_http_close(conns[i]);
    }
    if (n202 != 0)
        fail_msg("with nats-server stopped: expected no 202 of %d POSTs, got %d (and %d x 503)",
                 OUTAGE_POSTS, n202, n503);
    /* A batch too. */
    yt_http_resp_t r;
    int st = post(&r, "/v1/jobs/batch", NULL, "{\"jobs\":[{\"type\":\"noop\"},{\"type\":\"noop\"}]}");
    expect_status("a batch with NATS down", &r, st, 503);
    yt_http_resp_free(&r);
    st = yt_http_request(&r, g.port, "GET", "/readyz", NULL, NULL, 0);
    expect_status("GET /readyz with NATS down", &r, st, 503);
    yt_http_resp_free(&r);
    st = yt_http_request(&r, g.port, "GET", "/healthz", NULL, NULL, 0);
    expect_status("GET /healthz with NATS down", &r, st, 200);
    yt_http_resp_free(&r);

    /* Back: 202 again within a few seconds, and the job is really stored. */
    assert_int_equal(yt_nats_start(g.env), 0);
    long long deadline = yt_now_ms() + 8000;
    char id[YARD_ID_TEXT_LEN + 1] = "";
    do {
        st = post(&r, "/v1/jobs", NULL, "{\"type\":\"after.outage\"}");
        if (st == 202) {
            json_t *doc = body_json("after the outage", &r);
            snprintf(id, sizeof id, "%s", json_string_value(json_object_get(doc, "id")));
            json_decref(doc);
        } else if (st != 503) {
            fail_msg("while NATS comes back: expected 503 or 202, got %d: %s", st,
                     st > 0 ? yt_http_body_excerpt(&r) : "(no response)");
        }
        yt_http_resp_free(&r);
        if (st != 202)
            usleep(100 * 1000);
    } while (st != 202 && yt_now_ms() < deadline);
    if (st != 202)
        fail_msg("expected the gateway to answer 202 within 8 s of nats-server's return, got %d",
                 st);
    deadline = yt_now_ms() + 5000;
    while (!yard_js_connected(g.js) && yt_now_ms() < deadline)
        usleep(50 * 1000);
    natsMsg *m = last_msg(SUBJ_DEFAULT);
    expect_msg_id(m, id);
    natsMsg_Destroy(m);
    deadline = yt_now_ms() + 5000;
    do {
        st = yt_http_request(&r, g.port, "GET", "/readyz", NULL, NULL, 0);
        yt_http_resp_free(&r);
    } while (st != 200 && yt_now_ms() < deadline && usleep(100 * 1000) == 0);
    expect_status("GET /readyz after NATS is back", &r, st, 200);
}

#define INFLIGHT 10

/* SIGTERM while jobs wait for their PubAck (nats-server frozen) and while a
 * request is half sent: each is answered, then the gateway exits 0. */
static void test_sigterm_answers_in_flight_requests(void **state)
{
    yt_http_conn_t *conns[INFLIGHT + 1] = {0}, *half = NULL;
    static const char half_body[] = "{\"type\":\"late.half\"}";
    char head[256];
    char ids[INFLIGHT + 1][YARD_ID_TEXT_LEN + 1];

    assert_int_equal(yt_http_connect(&half, g.port), 0);
    int hl = snprintf(head, sizeof head,
                      "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\n\r\n%.5s",
                      strlen(half_body), half_body);
    assert_int_equal(yt_http_send_raw(half, head, (size_t)hl), 0);

    assert_int_equal(yt_freeze(g.env->nats_pid), 0);
    for (int i = 0; i < INFLIGHT; i++) {
        char body[64];
        snprintf(body, sizeof body, "{\"type\":\"in.flight\",\"payload\":%d}", i);
        assert_int_equal(yt_http_connect(&conns[i], g.port), 0);
        assert_int_equal(yt_http_send_request(conns[i], "POST", "/v1/jobs", json_ct, body,
                                              strlen(body)), 0);
    }
    usleep(300 * 1000); /* received, published, waiting for acks */
    kill(g.gw, SIGTERM);
    usleep(200 * 1000);
    assert_int_equal(yt_http_send_raw(half, half_body + 5, strlen(half_body) - 5), 0);
    conns[INFLIGHT] = half;
    kill(g.env->nats_pid, SIGCONT);

    for (int i = 0; i <= INFLIGHT; i++) {
        yt_http_resp_t r;
        int st = yt_http_read(conns[i], &r, 10000);
        if (st != 202)
            fail_msg("in-flight request %d at SIGTERM: expected 202, got %d: %s", i, st,
                     st > 0 ? yt_http_body_excerpt(&r) : "(no response)");
        if (!r.will_close)
            fail_msg("in-flight request %d at SIGTERM: expected Connection: close", i);
        json_t *doc = body_json("in flight", &r);
        snprintf(ids[i], sizeof ids[i], "%s", json_string_value(json_object_get(doc, "id")));
        json_decref(doc);
        yt_http_resp_free(&r);
        yt_http_close(conns[i]);
    }
    /* Signal 0: wait without a second SIGTERM (one sent after the gateway has
     * closed its signal handlers would kill it, and prove nothing). */
    int status = yt_kill_wait(g.gw, 0, 10000);
    pid_t pid = g.gw;
    g.gw = -1;
    if (status == -1) {
        yt_kill_wait(pid, SIGKILL, 5000);
        yt_log_tail(g.env, "gateway");
        fail_msg("expected the gateway to exit within 10 s of SIGTERM; it did not");
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        yt_log_tail(g.env, "gateway");
        fail_msg("expected the gateway to exit 0 after SIGTERM, got %s %d",
                 WIFEXITED(status) ? "exit" : "signal",
                 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    }
    /* Every job answered 202 is stored. */
    for (int i = 0; i <= INFLIGHT; i++) {
        yard_js_msg_t *m = NULL;
        int found = 0;
        uint64_t last = 0;
        jsStreamInfo *si = NULL;
        assert_int_equal(js_GetStreamInfo(&si, yard_js_ctx(g.js), YARD_STREAM_JOBS, NULL, NULL),
                         NATS_OK);
        last = si->State.LastSeq;
        jsStreamInfo_Destroy(si);
        for (uint64_t seq = last; seq > 0 && seq + 40 > last && !found; seq--) {
            if (yard_js_get_msg(&m, g.js, YARD_STREAM_JOBS, seq) != 0)
                continue;
            const char *v = yard_js_msg_header(m, "Nats-Msg-Id");
            found = v && strcmp(v, ids[i]) == 0;
            yard_js_msg_destroy(m);
        }
        if (!found)
            fail_msg("in-flight job %s was answered 202 but is not in JOBS", ids[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_job_is_in_jobs_stream_with_its_envelope),
        cmocka_unit_test(test_idempotency_key_gives_one_id_and_one_message),
        cmocka_unit_test(test_malformed_traceparent_is_replaced),
        cmocka_unit_test(test_batch_of_1000_is_stored_whole),
        cmocka_unit_test(test_batch_of_1001_is_refused),
        cmocka_unit_test(test_run_at_in_the_future_is_scheduled),
        cmocka_unit_test(test_msgpack_body_is_accepted),
        cmocka_unit_test(test_msgpack_empty_string_is_accepted),
        cmocka_unit_test(test_body_near_1mib_is_stored),
        cmocka_unit_test(test_default_max_payload_gives_413_not_500),
        cmocka_unit_test(test_queues_show_pending),
        cmocka_unit_test(test_postgres_restart_fails_no_request),
        cmocka_unit_test(test_nats_down_gives_503_and_recovers),
        cmocka_unit_test(test_sigterm_answers_in_flight_requests),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
