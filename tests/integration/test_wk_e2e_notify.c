/*
 * test_wk_e2e_notify.c - signed webhook notifications end to end: the real
 * gateway, an execute worker and `yard-worker --role notify`, real
 * nats-server and PostgreSQL, and a receiver on 127.0.0.1 (yt_hook.h)
 * that the notify worker may reach because YARD_EGRESS_ALLOW lists it.
 *
 *   - a job that succeeds and one that fails then dies (max_attempts 2),
 *     both with notify on succeeded, failed and dead: the receiver gets
 *     exactly three POSTs (job.succeeded; job.failed for attempt 1;
 *     job.dead for attempt 2), each with a Yard-Signature that verifies
 *     with the secret (HMAC-SHA256 over "<t>.<body>", recomputed here with
 *     libsodium) and a body naming the job, its status and attempts; a job
 *     whose spec asks only for dead and succeeds sends nothing; a bad spec
 *     gets a 400 naming notify.on;
 *   - a receiver answering 500, 500, then 200 gets three tries of the same
 *     notification (same Yard-Notification-Id), and no fourth;
 *   - a message of a job already final that comes back (as after a crash
 *     between the commit and the ack; here a copy published by the test,
 *     with a notify spec the first run did not carry) publishes the job's
 *     notification from its recorded outcome; a second copy is dropped by
 *     the duplicate window: the receiver gets one POST;
 *   - a receiver failing 6 times (YARD_NOTIFY_MAX_ATTEMPTS=7, circuit after 5
 *     failures, 2 s cool-down): the circuit opens after the 5th try, the
 *     6th comes only after a cool-down (the probe), fails and reopens it, the
 *     7th comes a cool-down later and is delivered: the deferrals spent no
 *     try, else the notification would have reached the DLQ;
 *   - a job submitted with an API key (through a second gateway, with auth)
 *     is signed with that key's webhook secret, which `yardctl keys
 *     notify-secret PREFIX` prints, and names the key in Yard-Key-Id; the
 *     cluster's secret does not verify it;
 *   - a notify worker without the allow-list refuses the loopback URL: the
 *     receiver gets nothing, and the notification lands in the DLQ
 *     (dlq.jobs.notify) with the refusal as Yard-Last-Error.
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
#include <time.h>

#include <jansson.h>
#include <sodium.h>

#include "envelope.h"
#include "err.h"
#include "log.h"
#include "yt_hook.h"
#include "yt_http.h"
#include "yt_workers.h"

#define SECRET "test-notify-secret-0123456789"
#define QUIET_MS 1500 /* how long "no more requests" is watched */
#define COOLDOWN_MS 2000

static struct {
    yt_cluster_t c;
    yt_hook_t *hook;
    yt_worker_t notify;
} g;

static yt_hook_answer_t answer(void *ud, const char *path, int hit)
{
    if (!strcmp(path, "/flaky"))
        return (yt_hook_answer_t){hit <= 2 ? 500 : 200, NULL};
    if (!strcmp(path, "/down"))
        return (yt_hook_answer_t){hit <= 6 ? 503 : 200, NULL};
    return (yt_hook_answer_t){200, NULL};
}

static int start_notify(const char *allow)
{
    char *env[] = {"YARD_NOTIFY_SECRET=" SECRET, "YARD_RETRY_BASE_MS=100",
                   "YARD_RETRY_CAP_MS=400", "YARD_NOTIFY_MAX_ATTEMPTS=7",
                   "YARD_CIRCUIT_COOLDOWN_S=2", (char *)allow, NULL};
    return yt_worker_start(&g.notify, g.c.env, "notify", NULL, env, 0);
}

static int setup(void **state)
{
    yard_log_init("test_wk_e2e_notify", YARD_LOG_ERROR);
    if (sodium_init() < 0 || yt_cluster_start(&g.c, NULL) != 0 ||
        yt_hook_start(&g.hook, answer, NULL) != 0)
        return -1;
    char *exec_env[] = {"YARD_RETRY_BASE_MS=100", "YARD_RETRY_CAP_MS=200", NULL};
    if (yt_worker_start(&g.c.exec, g.c.env, "execute", NULL, exec_env, 0) != 0)
        return -1;
    return start_notify("YARD_EGRESS_ALLOW=127.0.0.1/32");
}

static int teardown(void **state)
{
    yt_cluster_stop_worker(&g.c, &g.notify);
    yt_cluster_stop(&g.c);
    yt_hook_stop(g.hook);
    return 0;
}

/* ---- helpers -------------------------------------------------------------------- */

static void submit(const char *body, char id[YT_JOB_ID_MAX])
{
    int st = yt_job_submit(g.c.port, body, id);
    if (st != 202)
        fail_msg("%s: expected 202, got %d", body, st);
}

static void wait_status(const char *id, const char *want)
{
    char got[64];
    if (yt_job_wait_status(g.c.port, id, want, 20000, got, sizeof got) != 0) {
        yt_worker_log_tail(g.c.env, &g.c.exec);
        fail_msg("job %s: expected status %s within 20 s, got %s", id, want, got);
    }
}

static void expect_requests(const char *path, int want)
{
    int n = yt_hook_wait(g.hook, path, want, 20000);
    if (n != want) {
        yt_worker_log_tail(g.c.env, &g.notify);
        fail_msg("%s: expected %d requests within 20 s, got %d", path, want, n);
    }
    yt_nap_ms(QUIET_MS);
    if ((n = yt_hook_count(g.hook, path)) != want)
        fail_msg("%s: expected exactly %d requests, got %d after %d ms more", path, want, n,
                 QUIET_MS);
}

/* Nonzero if r's Yard-Signature verifies with secret; fails the test when
 * the header is malformed or its time is not near now. */
static int signature_verifies(const yt_hook_req_t *r, const char *secret)
{
    long long t = 0;
    char v1[80] = "", mine[2 * crypto_auth_hmacsha256_BYTES + 1], ts[32];
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    if (sscanf(r->signature, "t=%lld,v1=%64[0-9a-f]", &t, v1) != 2 || strlen(v1) != 64)
        fail_msg("Yard-Signature `%s`: expected t=<unix time>,v1=<64 hex>", r->signature);
    long long now = (long long)time(NULL);
    if (t < now - 120 || t > now + 5)
        fail_msg("Yard-Signature time %lld is not near now (%lld)", t, now);
    crypto_auth_hmacsha256_state st;
    int tl = snprintf(ts, sizeof ts, "%lld.", t);
    crypto_auth_hmacsha256_init(&st, (const unsigned char *)secret, strlen(secret));
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)ts, (unsigned long long)tl);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)r->body, r->body_len);
    crypto_auth_hmacsha256_final(&st, mac);
    sodium_bin2hex(mine, sizeof mine, mac, sizeof mac);
    return strcmp(mine, v1) == 0;
}

/* Checks r's Yard-Signature against its body with SECRET (a job without an
 * API key); fails the test when it does not verify. */
static void expect_signed(const yt_hook_req_t *r)
{
    if (!signature_verifies(r, SECRET))
        fail_msg("Yard-Signature `%s` does not verify with the cluster's secret: "
                 "HMAC-SHA256(secret, \"<t>.\" + body); body %s",
                 r->signature, r->body);
    if (r->key_id[0])
        fail_msg("Yard-Key-Id: expected none for a job without an API key, got `%s`", r->key_id);
    if (strcmp(r->content_type, "application/json") != 0)
        fail_msg("Content-Type: expected application/json, got `%s`", r->content_type);
}

/* Finds among the n requests on path the one whose body has event ev for
 * job id; fails when there is none. Returns its parsed body (decref). */
static json_t *find_event(const char *path, int n, const char *ev, const char *id,
                          yt_hook_req_t *out)
{
    for (int i = 0; i < n; i++) {
        if (yt_hook_get(g.hook, path, i, out) != 0)
            break;
        json_t *b = json_loads(out->body, 0, NULL);
        const char *e = json_string_value(json_object_get(b, "event"));
        const char *j = json_string_value(json_object_get(b, "job_id"));
        if (e && j && !strcmp(e, ev) && !strcmp(j, id))
            return b;
        json_decref(b);
    }
    fail_msg("%s: no %s notification for job %s among %d requests", path, ev, id, n);
    return NULL;
}

/* The value of yard_notifications_total{outcome="<outcome>"} on the notify
 * worker's /metrics, or -1 when absent. */
static double notifications(const char *outcome)
{
    yt_http_resp_t resp = {0};
    char key[128];
    double v = -1;
    snprintf(key, sizeof key, "yard_notifications_total{outcome=\"%s\"} ", outcome);
    if (yt_http_request(&resp, g.notify.metrics_port, "GET", "/metrics", NULL, NULL, 0) == 200) {
        const char *p = strstr(resp.body, key);
        if (p)
            v = strtod(p + strlen(key), NULL);
    }
    yt_http_resp_free(&resp);
    return v;
}

/* ---- tests ------------------------------------------------------------------------ */

static void test_each_event_once_and_signed(void **state)
{
    char ok_id[YT_JOB_ID_MAX], bad_id[YT_JOB_ID_MAX], quiet_id[YT_JOB_ID_MAX], body[512];
    int port = yt_hook_port(g.hook);
    snprintf(body, sizeof body,
             "{\"type\":\"echo\",\"payload\":{\"n\":42},\"notify\":{\"url\":"
             "\"http://127.0.0.1:%d/hook\",\"on\":[\"succeeded\",\"failed\",\"dead\"]}}",
             port);
    submit(body, ok_id);
    snprintf(body, sizeof body,
             "{\"type\":\"fail\",\"payload\":{\"retryable\":true,\"message\":\"boom\"},"
             "\"max_attempts\":2,\"notify\":{\"url\":\"http://127.0.0.1:%d/hook\",\"on\":"
             "[\"succeeded\",\"failed\",\"dead\"]}}",
             port);
    submit(body, bad_id);
    snprintf(body, sizeof body,
             "{\"type\":\"noop\",\"notify\":{\"url\":\"http://127.0.0.1:%d/hook\",\"on\":"
             "[\"dead\"]}}",
             port);
    submit(body, quiet_id);
    /* A spec naming an unknown outcome is refused at the door. */
    snprintf(body, sizeof body,
             "{\"type\":\"noop\",\"notify\":{\"url\":\"http://127.0.0.1:%d/hook\",\"on\":"
             "[\"finished\"]}}",
             port);
    yt_http_resp_t resp = {0};
    int st = yt_http_request(&resp, g.c.port, "POST", "/v1/jobs",
                             (const char *const[]){"Content-Type: application/json", NULL}, body,
                             strlen(body));
    if (st != 400 || !strstr(resp.body, "notify.on"))
        fail_msg("notify on [\"finished\"]: expected 400 naming notify.on, got %d %s", st,
                 yt_http_body_excerpt(&resp));
    yt_http_resp_free(&resp);

    wait_status(ok_id, "succeeded");
    wait_status(bad_id, "dead");
    wait_status(quiet_id, "succeeded");
    expect_requests("/hook", 3);

    yt_hook_req_t r;
    char ids[3][160];
    json_t *b = find_event("/hook", 3, "job.succeeded", ok_id, &r);
    expect_signed(&r);
    snprintf(ids[0], sizeof ids[0], "%s", r.notif_id);
    assert_string_equal(json_string_value(json_object_get(b, "status")), "succeeded");
    assert_string_equal(json_string_value(json_object_get(b, "type")), "echo");
    assert_string_equal(json_string_value(json_object_get(b, "queue")), "default");
    assert_int_equal(json_integer_value(json_object_get(b, "attempts")), 1);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(b, "result"), "n")), 42);
    assert_non_null(json_string_value(json_object_get(b, "time")));
    assert_string_equal(r.event, "job.succeeded");
    json_decref(b);

    b = find_event("/hook", 3, "job.failed", bad_id, &r);
    expect_signed(&r);
    snprintf(ids[1], sizeof ids[1], "%s", r.notif_id);
    assert_string_equal(json_string_value(json_object_get(b, "status")), "failed");
    assert_int_equal(json_integer_value(json_object_get(b, "attempts")), 1);
    assert_string_equal(json_string_value(json_object_get(b, "error")), "boom");
    json_decref(b);

    b = find_event("/hook", 3, "job.dead", bad_id, &r);
    expect_signed(&r);
    snprintf(ids[2], sizeof ids[2], "%s", r.notif_id);
    assert_string_equal(json_string_value(json_object_get(b, "status")), "dead");
    assert_int_equal(json_integer_value(json_object_get(b, "attempts")), 2);
    json_decref(b);

    /* Each notification has its own id, derived from the job and attempt. */
    if (!strcmp(ids[0], ids[1]) || !strcmp(ids[1], ids[2]) || !strstr(ids[2], bad_id))
        fail_msg("notification ids `%s`, `%s`, `%s`: expected distinct ids naming the job", ids[0],
                 ids[1], ids[2]);
}

static void test_500_twice_then_200_gets_three_tries(void **state)
{
    char id[YT_JOB_ID_MAX], body[256];
    snprintf(body, sizeof body,
             "{\"type\":\"noop\",\"notify\":\"http://127.0.0.1:%d/flaky\"}",
             yt_hook_port(g.hook));
    submit(body, id);
    wait_status(id, "succeeded");
    expect_requests("/flaky", 3);
    yt_hook_req_t first, r;
    assert_int_equal(yt_hook_get(g.hook, "/flaky", 0, &first), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(yt_hook_get(g.hook, "/flaky", i, &r), 0);
        expect_signed(&r);
        if (strcmp(r.notif_id, first.notif_id) != 0 || !strstr(r.body, id))
            fail_msg("try %d: expected the same notification (id %s, job %s), got id %s body %s",
                     i + 1, first.notif_id, id, r.notif_id, r.body);
    }
    /* So far: 3 + 1 delivered, 2 retried (the two 500s). */
    double delivered = notifications("delivered"), retried = notifications("retried");
    if (delivered != 4 || retried != 2)
        fail_msg("yard_notifications_total: expected delivered 4 and retried 2, got %g and %g",
                 delivered, retried);
}

/* Publishes a copy of job id's envelope (echo, payload {"k":1}) with a
 * notify spec for path on jobs.execute.default under Nats-Msg-Id msg_id. */
static void publish_copy(const char *id, const char *path, const char *msg_id)
{
    char notify[256], buf[4096];
    size_t len = 0;
    yard_envelope_t env;
    snprintf(notify, sizeof notify, "{\"url\":\"http://127.0.0.1:%d%s\",\"on\":[\"succeeded\"]}",
             yt_hook_port(g.hook), path);
    yard_env_init(&env);
    env.id = (yard_str_t){id, strlen(id)};
    env.type = YARD_STR("echo");
    env.payload = YARD_STR("{\"k\":1}");
    env.notify = (yard_str_t){notify, strlen(notify)};
    env.created_at_ms = (int64_t)time(NULL) * 1000;
    assert_int_equal(yard_env_encode(&env, buf, sizeof buf, &len), 0);
    yard_js_pub_t pub = {"jobs.execute.default", msg_id, NULL, 0, buf, len};
    int rc = yard_js_publish(NULL, g.c.js, &pub, 5000);
    if (rc != 0)
        fail_msg("expected JetStream to take the copy of job %s, got %s", id, yard_strerror(rc));
}

static void test_redelivered_final_job_notifies_once(void **state)
{
    char id[YT_JOB_ID_MAX], msg_id[96];
    submit("{\"type\":\"echo\",\"payload\":{\"k\":1}}", id);
    wait_status(id, "succeeded");
    snprintf(msg_id, sizeof msg_id, "%s.test-copy.1", id);
    publish_copy(id, "/late", msg_id);
    expect_requests("/late", 1);
    yt_hook_req_t r;
    assert_int_equal(yt_hook_get(g.hook, "/late", 0, &r), 0);
    expect_signed(&r);
    json_t *b = find_event("/late", 1, "job.succeeded", id, &r);
    assert_int_equal(json_integer_value(json_object_get(b, "attempts")), 1);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(b, "result"), "k")), 1);
    json_decref(b);
    /* Another copy: the notification's id is the same, JetStream drops it. */
    snprintf(msg_id, sizeof msg_id, "%s.test-copy.2", id);
    publish_copy(id, "/late", msg_id);
    expect_requests("/late", 1);
}

static void test_open_circuit_spends_no_try(void **state)
{
    char id[YT_JOB_ID_MAX], body[256];
    snprintf(body, sizeof body, "{\"type\":\"noop\",\"notify\":\"http://127.0.0.1:%d/down\"}",
             yt_hook_port(g.hook));
    submit(body, id);
    wait_status(id, "succeeded");
    int n = yt_hook_wait(g.hook, "/down", 7, 30000);
    if (n != 7) {
        yt_worker_log_tail(g.c.env, &g.notify);
        fail_msg("/down: expected 7 tries within 30 s, got %d", n);
    }
    yt_hook_req_t r[7];
    for (int i = 0; i < 7; i++)
        assert_int_equal(yt_hook_get(g.hook, "/down", i, &r[i]), 0);
    /* Tries 1-5 back off (100-400 ms); 6 and 7 wait for the cool-down. */
    for (int i = 5; i < 7; i++)
        if (r[i].at_ms - r[i - 1].at_ms < COOLDOWN_MS - 100)
            fail_msg("try %d came %lld ms after try %d: expected the %d ms cool-down of the open "
                     "circuit",
                     i + 1, r[i].at_ms - r[i - 1].at_ms, i, COOLDOWN_MS);
    if (notifications("deferred") < 1)
        fail_msg("yard_notifications_total{outcome=\"deferred\"}: expected at least 1, got %g",
                 notifications("deferred"));
    if (notifications("dead") != 0)
        fail_msg("expected no notification in the DLQ, yard_notifications_total dead is %g",
                 notifications("dead"));
    expect_requests("/down", 7);
}

static void test_per_key_secret(void **state)
{
    char key[128], out[256], err[2048], secret[80], prefix[16], body[256], auth[200];
    char id[YT_JOB_ID_MAX] = "";
    int port = 0;
    const char *create[] = {"keys", "create", "--name", "hooks", "--scopes", "submit", "--quiet",
                            NULL};
    setenv("YARD_NOTIFY_SECRET", SECRET, 1); /* yardctl derives from the workers' secret */
    if (yt_run_program(g.c.env, "yardctl", create, key, sizeof key, err, sizeof err) != 0)
        fail_msg("yardctl keys create failed: %s", err);
    key[strcspn(key, "\n")] = '\0';
    snprintf(prefix, sizeof prefix, "%.8s", key + 3); /* yk_<prefix>_... */
    const char *show[] = {"keys", "notify-secret", prefix, NULL};
    if (yt_run_program(g.c.env, "yardctl", show, out, sizeof out, err, sizeof err) != 0)
        fail_msg("yardctl keys notify-secret %s failed: %s", prefix, err);
    if (sscanf(out, "%64[0-9a-f]", secret) != 1 || strlen(secret) != 64)
        fail_msg("yardctl keys notify-secret: expected 64 hex characters, got `%s`", out);
    pid_t gw = yt_gateway_start(g.c.env, &port, (char *[]){"YARD_ID_SECRET=k", NULL});
    if (gw < 0)
        fail_msg("the gateway with auth did not start");
    snprintf(body, sizeof body, "{\"type\":\"noop\",\"notify\":\"http://127.0.0.1:%d/keyed\"}",
             yt_hook_port(g.hook));
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
    yt_http_resp_t resp = {0};
    /* The new gateway answers 503 until it is ready (NATS, PostgreSQL, keys). */
    long long ready_by = yt_now_ms() + 20000;
    int st;
    while ((st = yt_http_request(&resp, port, "POST", "/v1/jobs",
                                 (const char *const[]){"Content-Type: application/json", auth,
                                                       NULL},
                                 body, strlen(body))) == 503 &&
           yt_now_ms() < ready_by) {
        yt_http_resp_free(&resp);
        yt_nap_ms(200);
    }
    if (st != 202)
        fprintf(stderr, "submit with the key: %s\n", yt_http_body_excerpt(&resp));
    json_t *doc = json_loads(resp.body ? resp.body : "", 0, NULL);
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(doc, "id")) ?: "");
    json_decref(doc);
    yt_http_resp_free(&resp);
    yt_kill_wait(gw, SIGTERM, 10000);
    if (st != 202 || !id[0])
        fail_msg("submit with the key: expected 202 with an id, got %d", st);
    wait_status(id, "succeeded");
    expect_requests("/keyed", 1);
    yt_hook_req_t r;
    assert_int_equal(yt_hook_get(g.hook, "/keyed", 0, &r), 0);
    if (!signature_verifies(&r, secret))
        fail_msg("Yard-Signature `%s` does not verify with the key's secret", r.signature);
    if (signature_verifies(&r, SECRET))
        fail_msg("Yard-Signature `%s` verifies with the cluster's secret: expected the key's",
                 r.signature);
    long long known = yt_sql_int(g.c.env, "SELECT count(*) FROM api_keys WHERE id = '%s'",
                                 r.key_id[0] ? r.key_id : "00000000-0000-0000-0000-000000000000");
    if (known != 1)
        fail_msg("Yard-Key-Id `%s`: expected the id of the key that submitted the job", r.key_id);
}

static void test_loopback_refused_without_allow_list(void **state)
{
    char id[YT_JOB_ID_MAX], body[256], why[512] = "";
    yt_cluster_stop_worker(&g.c, &g.notify);
    if (start_notify(NULL) != 0)
        fail_msg("the notify worker without an allow-list did not start");
    snprintf(body, sizeof body, "{\"type\":\"noop\",\"notify\":\"http://127.0.0.1:%d/refused\"}",
             yt_hook_port(g.hook));
    submit(body, id);
    wait_status(id, "succeeded");
    long long deadline = yt_now_ms() + 20000;
    int found = 0;
    while (found <= 0 && yt_now_ms() < deadline) {
        found = yt_js_find_header(g.c.js, "DLQ", "dlq.jobs.notify", "Yard-Job-Id", id,
                                  "Yard-Last-Error", why, sizeof why);
        if (found <= 0)
            yt_nap_ms(100);
    }
    if (found != 1) {
        yt_worker_log_tail(g.c.env, &g.notify);
        fail_msg("job %s: expected its notification in dlq.jobs.notify within 20 s", id);
    }
    if (!strstr(why, "egress refused: 127.0.0.1 is loopback"))
        fail_msg("Yard-Last-Error: expected the egress refusal, got `%s`", why);
    if (yt_hook_count(g.hook, "/refused") != 0)
        fail_msg("the receiver got %d requests on /refused; expected none",
                 yt_hook_count(g.hook, "/refused"));
    /* Once the receiver is allowed, the dead notification is replayed from
     * the DLQ as it is (yardctl dlq replay), and delivered once. */
    yt_cluster_stop_worker(&g.c, &g.notify);
    if (start_notify("YARD_EGRESS_ALLOW=127.0.0.1/32") != 0)
        fail_msg("the notify worker with the allow-list did not start again");
    char out[4096], err[4096], nats[300];
    snprintf(nats, sizeof nats, "%s", g.c.env->nats_url);
    setenv("YARD_NATS_URL", nats, 1);
    const char *list[] = {"dlq", "list", "--json", NULL};
    if (yt_run_program(g.c.env, "yardctl", list, out, sizeof out, err, sizeof err) != 0 ||
        !strstr(out, "\"notify\"") || !strstr(out, id))
        fail_msg("expected `yardctl dlq list` to show the notification of job %s as type "
                 "notify, got: %s %s",
                 id, out, err);
    const char *replay[] = {"dlq", "replay", "--all", NULL};
    if (yt_run_program(g.c.env, "yardctl", replay, out, sizeof out, err, sizeof err) != 0)
        fail_msg("expected `yardctl dlq replay --all` to replay the notification, got: %s %s",
                 out, err);
    if (yt_hook_wait(g.hook, "/refused", 1, 20000) < 1)
        fail_msg("the replayed notification of job %s did not reach the receiver", id);
    if (yt_js_find_header(g.c.js, "DLQ", "dlq.jobs.notify", "Yard-Job-Id", id, "Yard-Last-Error",
                          why, sizeof why) == 1)
        fail_msg("job %s: its notification is still in the DLQ after the replay", id);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_event_once_and_signed),
        cmocka_unit_test(test_500_twice_then_200_gets_three_tries),
        cmocka_unit_test(test_redelivered_final_job_notifies_once),
        cmocka_unit_test(test_open_circuit_spends_no_try),
        cmocka_unit_test(test_per_key_secret),
        cmocka_unit_test(test_loopback_refused_without_allow_list),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
