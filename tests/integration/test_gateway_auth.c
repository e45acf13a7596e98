/*
 * test_gateway_auth.c - the real yard-gateway with authentication on, keys
 * made by the real yardctl, over real HTTP against a real nats-server and
 * PostgreSQL.
 *
 * Checks: no key -> 401 with WWW-Authenticate; a wrong key or scheme -> 401;
 * a read-only key submitting -> 403; a submit key -> 202, its key id in the
 * envelope; GET /v1/jobs/{id} shows a job to its submitter and to admin
 * (200 with every field) but not to another key (404); DELETE cancels a
 * queued job (200, then 200 again), refuses a finished one (409); a key made
 * with --rate 5 --burst 5 gets 429 with Retry-After on its 6th quick request;
 * a key revoked with yardctl is refused within auth_refresh_s + 1 s.
 * No worker writes job rows yet, so the read path is fed with SQL.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "config.h"
#include "db.h"
#include "envelope.h"
#include "err.h"
#include "harness.h"
#include "id.h"
#include "js_internal.h" /* raw JetStream checks */
#include "log.h"
#include "yt_http.h"

/* The keys the tests use, made by yardctl in setup. */
typedef struct {
    const char *name;
    const char *scopes;
    const char *rate, *burst; /* NULL: the default */
    char key[128];
    char id[YARD_ID_TEXT_LEN + 1];
    char auth[192]; /* "Authorization: Bearer <key>" */
} test_key_t;

enum { K_ALICE, K_CAROL, K_READER, K_ADMIN, K_LIMITED, K_REVOKEE, K_COUNT };

static test_key_t keys[K_COUNT] = {
    [K_ALICE] = {"alice", "submit,read", NULL, NULL, "", "", ""},
    [K_CAROL] = {"carol", "submit", NULL, NULL, "", "", ""},
    [K_READER] = {"reader", "read", NULL, NULL, "", "", ""},
    [K_ADMIN] = {"ops", "admin", NULL, NULL, "", "", ""},
    [K_LIMITED] = {"limited", "submit,read", "5", "5", "", "", ""},
    [K_REVOKEE] = {"revokee", "submit,read", NULL, NULL, "", "", ""},
};

static struct {
    yt_env_t *env;
    pid_t gw;
    int port;
    PGconn *db;
    yard_config_t cfg;
    yard_js_t *js;
    yard_id_gen_t ids;
} g;

/* ---- helpers ---------------------------------------------------------------- */

/* Runs `yardctl argv...` with YARD_PG_DSN; out gets stdout, err stderr.
 * Returns the exit status, or -1. */
static int yardctl(char *out, size_t outcap, char *err, size_t errcap, char *const args[])
{
    return yt_run_program(g.env, "yardctl", (const char *const *)args, out, outcap, err, errcap);
}

/* The one value of sql with params (NULL for none; "" when NULL). */
static void sql1(char *out, size_t cap, const char *sql, int n, const char *const *params)
{
    PGresult *res = NULL;
    int rc = yard_db_query(&res, g.db, "test query", sql, n, params);
    if (rc != 0)
        fail_msg("expected \"%s\" to work, got %s", sql, yard_strerror(rc));
    if (PQntuples(res) != 1)
        fail_msg("expected one row from \"%s\", got %d", sql, PQntuples(res));
    snprintf(out, cap, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
}

static int make_key(test_key_t *k)
{
    char out[512], err[2048];
    char *args[12] = {"keys", "create", "--name", (char *)k->name, "--scopes", (char *)k->scopes,
                      "--quiet"};
    int n = 7;
    if (k->rate) {
        args[n++] = "--rate";
        args[n++] = (char *)k->rate;
    }
    if (k->burst) {
        args[n++] = "--burst";
        args[n++] = (char *)k->burst;
    }
    args[n] = NULL;
    int rc = yardctl(out, sizeof out, err, sizeof err, args);
    out[strcspn(out, "\r\n")] = '\0';
    if (rc != 0 || strncmp(out, "yk_", 3) != 0 || strchr(out, ' ')) {
        fprintf(stderr, "test_gateway_auth: yardctl keys create --name %s: expected exit 0 and "
                        "only a key on stdout, got exit %d, stdout \"%.100s\", stderr:\n%.1500s\n",
                k->name, rc, out, err);
        return -1;
    }
    snprintf(k->key, sizeof k->key, "%.127s", out);
    snprintf(k->auth, sizeof k->auth, "Authorization: Bearer %.127s", out);
    const char *params[] = {k->name};
    PGresult *res = NULL;
    if (yard_db_query(&res, g.db, "key id", "SELECT id::text FROM api_keys WHERE name = $1", 1,
                      params) != 0 || PQntuples(res) != 1) {
        PQclear(res);
        return -1;
    }
    snprintf(k->id, sizeof k->id, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return 0;
}

/* A request with key k (NULL: no Authorization) and optional JSON body. */
static int call(yt_http_resp_t *r, const test_key_t *k, const char *method, const char *path,
                const char *body)
{
    const char *headers[3] = {NULL, NULL, NULL};
    int n = 0;
    if (k)
        headers[n++] = k->auth;
    if (body)
        headers[n++] = "Content-Type: application/json";
    return yt_http_request(r, g.port, method, path, headers, body, body ? strlen(body) : 0);
}

static void expect_error(const char *what, yt_http_resp_t *r, int got, int want,
                         const char *want_code)
{
    char why[512];
    if (got != want)
        fail_msg("%s: expected HTTP %d, got %d: %s", what, want, got,
                 got > 0 ? yt_http_body_excerpt(r) : "(no response)");
    if (yt_http_check_error(r, why, sizeof why) != 0)
        fail_msg("%s: %s", what, why);
    if (strcmp(yt_http_error_code(r), want_code) != 0)
        fail_msg("%s: expected error code %s, got %s", what, want_code, yt_http_body_excerpt(r));
}

static void expect_status(const char *what, const yt_http_resp_t *r, int got, int want)
{
    if (got != want)
        fail_msg("%s: expected HTTP %d, got %d: %s", what, want, got,
                 got > 0 ? yt_http_body_excerpt(r) : "(no response)");
}

/* Inserts a job row owned by owner (a key id) with status; fills id. */
static void insert_job(char id[YARD_ID_TEXT_LEN + 1], const char *owner, const char *status)
{
    yard_id_t uuid;
    yard_id_next(&g.ids, &uuid);
    yard_id_format(&uuid, id);
    const char *params[] = {id, owner, status};
    int rc = yard_db_query(
        NULL, g.db, "insert job",
        "INSERT INTO jobs (id, queue, type, status, priority, payload, result, last_error,"
        " attempts, max_attempts, timeout_s, api_key_id, started_at, finished_at)"
        " VALUES ($1::uuid, 'default', 'email.send', $3, 2, '{\"to\":\"a@example.com\"}',"
        " CASE WHEN $3 = 'succeeded' THEN '{\"sent\":true}'::jsonb END,"
        " CASE WHEN $3 = 'succeeded' THEN 'first try timed out' END,"
        " CASE WHEN $3 IN ('succeeded', 'running') THEN 2 ELSE 0 END, 4, 60, $2::uuid,"
        " CASE WHEN $3 IN ('succeeded', 'running') THEN now() END,"
        " CASE WHEN $3 = 'succeeded' THEN now() END)",
        3, params);
    if (rc != 0)
        fail_msg("expected the job row to insert, got %s", yard_strerror(rc));
}

/* ---- setup ------------------------------------------------------------------- */

static int setup(void **state)
{
    static char *const extra[] = {"YARD_AUTH_REFRESH_S=1", "YARD_ID_SECRET=auth-test", NULL};
    yard_log_init("test_gateway_auth", YARD_LOG_ERROR);
    if (yt_env_create(&g.env, YT_NATS | YT_PG | YT_MIGRATE) != 0)
        return -1;
    if (yard_db_connect(&g.db, g.env->pg_dsn, 10) != 0 || yard_id_gen_init(&g.ids) != 0)
        return -1;
    for (int i = 0; i < K_COUNT; i++) {
        if (make_key(&keys[i]) != 0)
            return -1;
    }
    g.gw = yt_gateway_start(g.env, &g.port, extra);
    if (g.gw < 0)
        return -1;
    /* Ready = NATS, PostgreSQL and the keys loaded. */
    long long deadline = yt_now_ms() + 10000;
    int st;
    do {
        yt_http_resp_t r;
        st = yt_http_request(&r, g.port, "GET", "/readyz", NULL, NULL, 0);
        yt_http_resp_free(&r);
    } while (st != 200 && yt_now_ms() < deadline && usleep(50 * 1000) == 0);
    if (st != 200) {
        fprintf(stderr, "test_gateway_auth: the gateway is not ready after 10 s (%d)\n", st);
        yt_log_tail(g.env, "gateway");
        return -1;
    }
    yard_config_defaults(&g.cfg);
    yard_config_set(&g.cfg, "nats_url", g.env->nats_url);
    return yard_js_connect(&g.js, &g.cfg, "test_gateway_auth") == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    if (g.gw > 0 && yt_kill_wait(g.gw, SIGTERM, 10000) < 0)
        yt_kill_wait(g.gw, SIGKILL, 5000);
    yard_js_destroy(g.js, 1000);
    yard_db_close(g.db);
    yt_env_destroy(g.env);
    return 0;
}

/* ---- tests --------------------------------------------------------------------- */

static void test_no_key_is_401_with_www_authenticate(void **state)
{
    yt_http_resp_t r;
    int st = call(&r, NULL, "POST", "/v1/jobs", "{\"type\":\"noop\"}");
    expect_error("POST /v1/jobs without a key", &r, st, 401, "unauthorized");
    const char *wa = yt_http_header(&r, "WWW-Authenticate");
    if (!wa || strncmp(wa, "Bearer", 6) != 0)
        fail_msg("POST /v1/jobs without a key: expected WWW-Authenticate: Bearer, got %s",
                 wa ? wa : "none");
    yt_http_resp_free(&r);
    st = call(&r, NULL, "GET", "/v1/queues", NULL);
    expect_error("GET /v1/queues without a key", &r, st, 401, "unauthorized");
    assert_non_null(yt_http_header(&r, "WWW-Authenticate"));
    yt_http_resp_free(&r);
    /* Probes need none. */
    st = call(&r, NULL, "GET", "/healthz", NULL);
    expect_status("GET /healthz without a key", &r, st, 200);
    yt_http_resp_free(&r);
}

static void test_wrong_key_or_scheme_is_401(void **state)
{
    test_key_t bad = keys[K_ALICE];
    char wrong_key[128];
    size_t n = strlen(bad.key);
    yt_http_resp_t r;
    /* The right prefix with a wrong secret. */
    snprintf(wrong_key, sizeof wrong_key, "%s", keys[K_ALICE].key);
    wrong_key[n - 1] = wrong_key[n - 1] == 'a' ? 'b' : 'a';
    snprintf(bad.auth, sizeof bad.auth, "Authorization: Bearer %s", wrong_key);
    int st = call(&r, &bad, "POST", "/v1/jobs", "{\"type\":\"noop\"}");
    expect_error("a key with a wrong secret", &r, st, 401, "unauthorized");
    assert_non_null(yt_http_header(&r, "WWW-Authenticate"));
    yt_http_resp_free(&r);

    static const struct {
        const char *head; /* the header up to the key */
        int with_key;     /* followed by alice's (valid) key */
    } wrong[] = {
        {"Authorization: Bearer yk_notakeyatall", 0},
        {"Authorization: Bearer ", 0},
        {"Authorization: Bearer", 0},
        {"Authorization: Token ", 1},
        {"Authorization: Basic ", 1},
        {"Authorization: ", 1},
        {"Authorization: Bearer x", 1},
    };
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
        snprintf(bad.auth, sizeof bad.auth, "%s%s", wrong[i].head,
                 wrong[i].with_key ? keys[K_ALICE].key : "");
        st = call(&r, &bad, "POST", "/v1/jobs", "{\"type\":\"noop\"}");
        char what[128];
        snprintf(what, sizeof what, "header \"%s%s\"", wrong[i].head,
                 wrong[i].with_key ? "<key>" : "");
        expect_error(what, &r, st, 401, "unauthorized");
        yt_http_resp_free(&r);
    }
    /* The scheme is case-insensitive. */
    snprintf(bad.auth, sizeof bad.auth, "Authorization: bearer   %s", keys[K_ALICE].key);
    st = call(&r, &bad, "GET", "/v1/queues", NULL);
    expect_status("scheme `bearer` in lower case", &r, st, 200);
    yt_http_resp_free(&r);
}

static void test_read_only_key_cannot_submit(void **state)
{
    yt_http_resp_t r;
    char id[YARD_ID_TEXT_LEN + 1], path[64];
    int st = call(&r, &keys[K_READER], "POST", "/v1/jobs", "{\"type\":\"noop\"}");
    expect_error("a read key POSTing a job", &r, st, 403, "forbidden");
    yt_http_resp_free(&r);
    st = call(&r, &keys[K_READER], "POST", "/v1/jobs/batch", "{\"jobs\":[{\"type\":\"noop\"}]}");
    expect_error("a read key POSTing a batch", &r, st, 403, "forbidden");
    yt_http_resp_free(&r);
    insert_job(id, keys[K_READER].id, "queued");
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    st = call(&r, &keys[K_READER], "DELETE", path, NULL);
    expect_error("a read key cancelling", &r, st, 403, "forbidden");
    yt_http_resp_free(&r);
    /* A submit-only key cannot read. */
    st = call(&r, &keys[K_CAROL], "GET", "/v1/queues", NULL);
    expect_error("a submit-only key reading queues", &r, st, 403, "forbidden");
    yt_http_resp_free(&r);
}

static void test_submit_key_is_accepted_and_named_in_the_envelope(void **state)
{
    yt_http_resp_t r;
    int st = call(&r, &keys[K_ALICE], "POST", "/v1/jobs", "{\"type\":\"noop\",\"payload\":1}");
    expect_status("a submit key POSTing", &r, st, 202);
    json_t *doc = json_loadb(r.body, r.body_len, 0, NULL);
    const char *id = json_string_value(json_object_get(doc, "id"));
    assert_non_null(id);
    natsMsg *m = NULL;
    assert_int_equal(js_GetLastMsg(&m, yard_js_ctx(g.js), YARD_STREAM_JOBS, "jobs.execute.default",
                                   NULL, NULL), NATS_OK);
    yard_envelope_t env;
    assert_int_equal(yard_env_decode(&env, natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m)), 0);
    if (!yard_str_eq_cstr(env.id, id) || !yard_str_eq_cstr(env.api_key_id, keys[K_ALICE].id))
        fail_msg("expected job %s with api key %s in the envelope, got %.*s with key %.*s", id,
                 keys[K_ALICE].id, (int)env.id.len, env.id.ptr, (int)env.api_key_id.len,
                 env.api_key_id.ptr);
    natsMsg_Destroy(m);
    json_decref(doc);
    yt_http_resp_free(&r);
    /* Admin implies submit. */
    st = call(&r, &keys[K_ADMIN], "POST", "/v1/jobs", "{\"type\":\"noop\"}");
    expect_status("an admin key POSTing", &r, st, 202);
    yt_http_resp_free(&r);

    /* The gateway records the use with its next key refresh (every 1 s here). */
    char used[8] = "f";
    const char *params[1] = {keys[K_ALICE].id};
    for (int i = 0; i < 40 && strcmp(used, "t") != 0; i++) {
        usleep(100000);
        sql1(used, sizeof used, "SELECT last_used_at IS NOT NULL FROM api_keys WHERE id = $1::uuid",
             1, params);
    }
    if (strcmp(used, "t") != 0)
        fail_msg("expected api_keys.last_used_at of key %s set within 4 s of its use",
                 keys[K_ALICE].id);
}

static void test_jobs_are_visible_to_their_submitter_and_admin(void **state)
{
    char id[YARD_ID_TEXT_LEN + 1], path[64];
    yt_http_resp_t r;
    insert_job(id, keys[K_ALICE].id, "succeeded");
    snprintf(path, sizeof path, "/v1/jobs/%s", id);

    int st = call(&r, &keys[K_READER], "GET", path, NULL);
    expect_error("another key's read of a job", &r, st, 404, "not_found");
    yt_http_resp_free(&r);
    st = call(&r, &keys[K_ALICE], "GET", path, NULL);
    expect_status("the submitter's read of its job", &r, st, 200);
    yt_http_resp_free(&r);

    st = call(&r, &keys[K_ADMIN], "GET", path, NULL);
    expect_status("admin's read of a job", &r, st, 200);
    json_t *doc = json_loadb(r.body, r.body_len, 0, NULL);
    if (!doc)
        fail_msg("GET %s: expected JSON, got %s", path, yt_http_body_excerpt(&r));
    static const char *const fields[] = {
        "id", "type", "queue", "status", "priority", "attempts", "max_attempts", "timeout_s",
        "payload", "result", "last_error", "run_at", "created_at", "updated_at", "started_at",
        "finished_at", "cancel_requested"};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        if (!json_object_get(doc, fields[i]))
            fail_msg("GET %s: expected field %s, got %s", path, fields[i], yt_http_body_excerpt(&r));
    }
    json_t *want = json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:i, s:i, s:{s:s}, s:{s:b}, s:s, s:b}",
                             "id", id, "type", "email.send", "queue", "default", "status",
                             "succeeded", "priority", "high", "attempts", 2, "max_attempts", 4,
                             "timeout_s", 60, "payload", "to", "a@example.com", "result", "sent", 1,
                             "last_error", "first try timed out", "cancel_requested", 0);
    const char *k;
    json_t *v;
    json_object_foreach(want, k, v)
    {
        if (!json_equal(json_object_get(doc, k), v))
            fail_msg("GET %s: expected %s = %s, got %s", path, k,
                     json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT), yt_http_body_excerpt(&r));
    }
    if (!json_is_null(json_object_get(doc, "run_at")) ||
        !json_is_string(json_object_get(doc, "created_at")) ||
        !json_is_string(json_object_get(doc, "finished_at")))
        fail_msg("GET %s: expected run_at null and created_at, finished_at times, got %s", path,
                 yt_http_body_excerpt(&r));
    json_decref(want);
    json_decref(doc);
    yt_http_resp_free(&r);

    /* No such job; not a UUID. */
    yard_id_t other;
    char other_id[YARD_ID_TEXT_LEN + 1], other_path[64];
    yard_id_next(&g.ids, &other);
    yard_id_format(&other, other_id);
    snprintf(other_path, sizeof other_path, "/v1/jobs/%s", other_id);
    st = call(&r, &keys[K_ADMIN], "GET", other_path, NULL);
    expect_error("admin's read of a job that does not exist", &r, st, 404, "not_found");
    yt_http_resp_free(&r);
    st = call(&r, &keys[K_ADMIN], "GET", "/v1/jobs/not-a-uuid", NULL);
    expect_error("GET /v1/jobs/not-a-uuid", &r, st, 400, "bad_request");
    yt_http_resp_free(&r);
}

static void test_cancel_queued_finished_and_foreign_jobs(void **state)
{
    char id[YARD_ID_TEXT_LEN + 1], path[64], status[32];
    const char *params[1];
    yt_http_resp_t r;
    insert_job(id, keys[K_ALICE].id, "queued");
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    params[0] = id;

    /* Another submitter cannot see it, so cannot cancel it. */
    int st = call(&r, &keys[K_CAROL], "DELETE", path, NULL);
    expect_error("another submitter cancelling a job", &r, st, 404, "not_found");
    yt_http_resp_free(&r);
    sql1(status, sizeof status, "SELECT status FROM jobs WHERE id = $1::uuid", 1, params);
    assert_string_equal(status, "queued");

    for (int round = 0; round < 2; round++) {
        st = call(&r, &keys[K_ALICE], "DELETE", path, NULL);
        expect_status(round ? "cancelling again" : "cancelling a queued job", &r, st, 200);
        json_t *doc = json_loadb(r.body, r.body_len, 0, NULL);
        const char *s = json_string_value(json_object_get(doc, "status"));
        const char *got_id = json_string_value(json_object_get(doc, "id"));
        if (!s || strcmp(s, "cancelled") != 0 || !got_id || strcmp(got_id, id) != 0)
            fail_msg("DELETE %s (%d): expected {\"id\":\"%s\",\"status\":\"cancelled\"}, got %s", path,
                     round + 1, id, yt_http_body_excerpt(&r));
        json_decref(doc);
        yt_http_resp_free(&r);
    }
    sql1(status, sizeof status,
         "SELECT status || ' ' || (cancel_requested_at IS NOT NULL) FROM jobs WHERE id = $1::uuid",
         1, params);
    assert_string_equal(status, "cancelled true");

    /* A finished job cannot be cancelled, even by admin. */
    insert_job(id, keys[K_ALICE].id, "succeeded");
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    st = call(&r, &keys[K_ADMIN], "DELETE", path, NULL);
    expect_error("cancelling a succeeded job", &r, st, 409, "conflict");
    yt_http_resp_free(&r);
    sql1(status, sizeof status, "SELECT status FROM jobs WHERE id = $1::uuid", 1, params);
    assert_string_equal(status, "succeeded");

    /* A running one is asked to stop: 202, cancel_requested. */
    insert_job(id, keys[K_ALICE].id, "running");
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    st = call(&r, &keys[K_ADMIN], "DELETE", path, NULL);
    expect_status("cancelling a running job", &r, st, 202);
    yt_http_resp_free(&r);
    sql1(status, sizeof status,
         "SELECT status || ' ' || (cancel_requested_at IS NOT NULL) FROM jobs WHERE id = $1::uuid",
         1, params);
    assert_string_equal(status, "running true");
}

#define RATE_REQUESTS 6

static void test_rate_limit_gives_429_with_retry_after(void **state)
{
    yt_http_conn_t *c = NULL;
    const char *headers[] = {keys[K_LIMITED].auth, NULL};
    int statuses[RATE_REQUESTS];
    char why[512];
    /* Pipelined on one connection: six requests within a few milliseconds. */
    assert_int_equal(yt_http_connect(&c, g.port), 0);
    for (int i = 0; i < RATE_REQUESTS; i++)
        assert_int_equal(yt_http_send_request(c, "GET", "/v1/queues", headers, NULL, 0), 0);
    for (int i = 0; i < RATE_REQUESTS; i++) {
        yt_http_resp_t r;
        statuses[i] = yt_http_read(c, &r, 10000);
        if (i == RATE_REQUESTS - 1 && statuses[i] == 429) {
            const char *ra = yt_http_header(&r, "Retry-After");
            if (!ra || atoi(ra) < 1)
                fail_msg("the 429: expected Retry-After >= 1, got %s", ra ? ra : "none");
            if (yt_http_check_error(&r, why, sizeof why) != 0)
                fail_msg("the 429: %s", why);
            if (strcmp(yt_http_error_code(&r), "rate_limited") != 0)
                fail_msg("the 429: expected code rate_limited, got %s", yt_http_body_excerpt(&r));
        }
        yt_http_resp_free(&r);
    }
    yt_http_close(c);
    for (int i = 0; i < RATE_REQUESTS; i++) {
        int want = i < 5 ? 200 : 429;
        if (statuses[i] != want)
            fail_msg("a key with --rate 5 --burst 5, request %d of %d at once: expected %d, got "
                     "%d (all: %d %d %d %d %d %d)", i + 1, RATE_REQUESTS, want, statuses[i],
                     statuses[0], statuses[1], statuses[2], statuses[3], statuses[4], statuses[5]);
    }
    /* Other keys are not held back. */
    yt_http_resp_t r;
    int st = call(&r, &keys[K_ALICE], "GET", "/v1/queues", NULL);
    expect_status("another key while one is limited", &r, st, 200);
    yt_http_resp_free(&r);
    /* It refills: one token after 200 ms. */
    usleep(1100 * 1000);
    st = call(&r, &keys[K_LIMITED], "GET", "/v1/queues", NULL);
    expect_status("the limited key a second later", &r, st, 200);
    yt_http_resp_free(&r);
}

/* Workflows belong to the key that posted them, like jobs: submit scope to
 * post and cancel, read scope to see; another key gets 404; admin sees
 * all. (No schedule worker runs here: the workflow stays running.) */
static void test_workflows_belong_to_their_key(void **state)
{
    static const char body[] = "{\"name\":\"owned\",\"steps\":[{\"id\":\"a\",\"type\":\"noop\"}]}";
    yt_http_resp_t r;
    char id[YARD_ID_TEXT_LEN + 1], path[96], owner[64];
    int st = call(&r, &keys[K_READER], "POST", "/v1/workflows", body);
    expect_error("a read-only key posts a workflow", &r, st, 403, "forbidden");
    yt_http_resp_free(&r);
    st = call(&r, &keys[K_ALICE], "POST", "/v1/workflows", body);
    expect_status("alice posts a workflow", &r, st, 202);
    const char *at = strstr(r.body, "\"id\":\"");
    if (!at)
        fail_msg("alice's workflow: expected an id, got %s", yt_http_body_excerpt(&r));
    snprintf(id, sizeof id, "%.36s", at + 6);
    yt_http_resp_free(&r);
    const char *params[] = {id};
    sql1(owner, sizeof owner, "SELECT coalesce(api_key_id::text, '') FROM workflows WHERE id = $1::uuid",
         1, params);
    if (strcmp(owner, keys[K_ALICE].id) != 0)
        fail_msg("alice's workflow: expected api_key_id %s, got \"%s\"", keys[K_ALICE].id, owner);
    snprintf(path, sizeof path, "/v1/workflows/%s", id);
    st = call(&r, &keys[K_ALICE], "GET", path, NULL);
    expect_status("alice reads her workflow", &r, st, 200);
    yt_http_resp_free(&r);
    st = call(&r, &keys[K_ADMIN], "GET", path, NULL);
    expect_status("admin reads alice's workflow", &r, st, 200);
    yt_http_resp_free(&r);
    st = call(&r, &keys[K_READER], "GET", path, NULL);
    expect_error("reader reads alice's workflow", &r, st, 404, "not_found");
    yt_http_resp_free(&r);
    st = call(&r, &keys[K_CAROL], "GET", path, NULL);
    expect_error("carol (submit only) reads a workflow", &r, st, 403, "forbidden");
    yt_http_resp_free(&r);
    st = call(&r, &keys[K_READER], "GET", "/v1/workflows", NULL);
    expect_status("reader lists workflows", &r, st, 200);
    if (strstr(r.body, id))
        fail_msg("reader's list: expected no sign of alice's workflow, got %s",
                 yt_http_body_excerpt(&r));
    yt_http_resp_free(&r);
    st = call(&r, &keys[K_ALICE], "GET", "/v1/workflows", NULL);
    expect_status("alice lists workflows", &r, st, 200);
    if (!strstr(r.body, id))
        fail_msg("alice's list: expected her workflow %s, got %s", id, yt_http_body_excerpt(&r));
    yt_http_resp_free(&r);
    st = call(&r, &keys[K_CAROL], "DELETE", path, NULL);
    expect_error("carol cancels alice's workflow", &r, st, 404, "not_found");
    yt_http_resp_free(&r);
    st = call(&r, &keys[K_ALICE], "DELETE", path, NULL);
    expect_status("alice cancels her workflow", &r, st, 200);
    yt_http_resp_free(&r);
}

static void test_revoked_key_is_refused_within_refresh(void **state)
{
    char out[1024], err[2048];
    yt_http_resp_t r;
    int st = call(&r, &keys[K_REVOKEE], "GET", "/v1/queues", NULL);
    expect_status("a key before its revocation", &r, st, 200);
    yt_http_resp_free(&r);

    char *args[] = {"keys", "revoke", keys[K_REVOKEE].id, NULL};
    int rc = yardctl(out, sizeof out, err, sizeof err, args);
    if (rc != 0)
        fail_msg("yardctl keys revoke: expected exit 0, got %d: %.1000s", rc, err);
    long long t0 = yt_now_ms(), refused_at = -1;
    /* auth_refresh_s is 1: refused within 2 s, and from then on. */
    while (yt_now_ms() - t0 < 3000) {
        st = call(&r, &keys[K_REVOKEE], "GET", "/v1/queues", NULL);
        if (st == 401 && refused_at < 0)
            refused_at = yt_now_ms();
        else if (st != 401 && refused_at >= 0)
            fail_msg("a revoked key: expected 401 for good once refused, got %d", st);
        else if (st != 401 && st != 200)
            fail_msg("a key being revoked: expected 200 or 401, got %d: %s", st,
                     st > 0 ? yt_http_body_excerpt(&r) : "(no response)");
        yt_http_resp_free(&r);
        usleep(50 * 1000);
    }
    if (refused_at < 0 || refused_at - t0 > 2000)
        fail_msg("a revoked key: expected 401 within 2000 ms (auth_refresh_s 1 + 1 s), got %s %lld "
                 "ms", refused_at < 0 ? "none after" : "it after", refused_at < 0 ? 3000LL :
                 refused_at - t0);
    st = call(&r, &keys[K_REVOKEE], "POST", "/v1/jobs", "{\"type\":\"noop\"}");
    expect_error("a revoked key submitting", &r, st, 401, "unauthorized");
    yt_http_resp_free(&r);
    /* The other keys still work. */
    st = call(&r, &keys[K_ALICE], "GET", "/v1/queues", NULL);
    expect_status("another key after a revocation", &r, st, 200);
    yt_http_resp_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_key_is_401_with_www_authenticate),
        cmocka_unit_test(test_wrong_key_or_scheme_is_401),
        cmocka_unit_test(test_read_only_key_cannot_submit),
        cmocka_unit_test(test_submit_key_is_accepted_and_named_in_the_envelope),
        cmocka_unit_test(test_jobs_are_visible_to_their_submitter_and_admin),
        cmocka_unit_test(test_cancel_queued_finished_and_foreign_jobs),
        cmocka_unit_test(test_workflows_belong_to_their_key),
        cmocka_unit_test(test_rate_limit_gives_429_with_retry_after),
        cmocka_unit_test(test_revoked_key_is_refused_within_refresh),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
