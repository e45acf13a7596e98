/*
 * test_gw_dlq.c - GET /v1/dlq and POST /v1/dlq/replay on a real cluster
 * with API keys: a key with read sees only the dead letters of the jobs it
 * submitted, admin sees all; filters and the cursor; replay needs admin,
 * reports missing sequences, a dry run changes nothing, a replay runs the
 * job again; bad requests get 400 with the API's error shape.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "log.h"
#include "yt_http.h"
#include "yt_workers.h"

#define WAIT_MS 20000

typedef struct {
    const char *name, *scopes;
    char auth[200];
} key_t_;

enum { K_ALICE, K_BOB, K_ADMIN, K_SUBMITTER, K_COUNT };
static key_t_ keys[K_COUNT] = {
    [K_ALICE] = {"alice", "submit,read", ""},
    [K_BOB] = {"bob", "submit,read", ""},
    [K_ADMIN] = {"ops", "admin", ""},
    [K_SUBMITTER] = {"submitter", "submit", ""},
};

static struct {
    yt_cluster_t c;
    char alice_job[YT_JOB_ID_MAX], bob_job[YT_JOB_ID_MAX];
} g;

static int make_key(key_t_ *k)
{
    char out[512], err[4096];
    const char *args[] = {"keys", "create", "--name", k->name, "--scopes", k->scopes, "--quiet",
                          NULL};
    int rc = yt_run_program(g.c.env, "yardctl", args, out, sizeof out, err, sizeof err);
    out[strcspn(out, "\r\n")] = '\0';
    if (rc != 0 || strncmp(out, "yk_", 3) != 0) {
        fprintf(stderr, "keys create %s: exit %d\n%s\n", k->name, rc, err);
        return -1;
    }
    snprintf(k->auth, sizeof k->auth, "Authorization: Bearer %.150s", out);
    return 0;
}

static int call(yt_http_resp_t *r, int key, const char *method, const char *path,
                const char *body)
{
    const char *headers[3] = {NULL, NULL, NULL};
    int n = 0;
    if (key >= 0)
        headers[n++] = keys[key].auth;
    if (body)
        headers[n++] = "Content-Type: application/json";
    return yt_http_request(r, g.c.port, method, path, headers, body, body ? strlen(body) : 0);
}

/* Submits a job that dies with message as key k; copies its id. */
static int submit_dead(int k, const char *message, char id[YT_JOB_ID_MAX])
{
    char body[256];
    yt_http_resp_t r = {0};
    snprintf(body, sizeof body,
             "{\"type\":\"fail\",\"payload\":{\"retryable\":false,\"message\":\"%s\"}}", message);
    /* Keys reach the gateway at its next refresh (1 s). */
    int st = 0;
    for (int i = 0; i < 50 && (st = call(&r, k, "POST", "/v1/jobs", body)) == 401; i++) {
        yt_http_resp_free(&r);
        yt_nap_ms(100);
    }
    if (st != 202) {
        fprintf(stderr, "submit as %s: HTTP %d %s\n", keys[k].name, st, yt_http_body_excerpt(&r));
        yt_http_resp_free(&r);
        return -1;
    }
    json_t *doc = json_loadb(r.body, r.body_len, 0, NULL);
    snprintf(id, YT_JOB_ID_MAX, "%s", json_string_value(json_object_get(doc, "id")));
    json_decref(doc);
    yt_http_resp_free(&r);
    return yt_wait_sql(g.c.env, 1, WAIT_MS,
                       "SELECT count(*) FROM jobs WHERE id = '%s' AND status = 'dead'", id) == 1
               ? 0
               : -1;
}

static int setup(void **state)
{
    yard_log_init("test_gw_dlq", YARD_LOG_ERROR);
    char *extra[] = {"YARD_AUTH_DISABLED=false", "YARD_AUTH_REFRESH_S=1", NULL};
    if (yt_cluster_start(&g.c, extra) != 0)
        return -1;
    setenv("YARD_NATS_URL", g.c.env->nats_url, 1);
    if (yt_worker_start(&g.c.exec, g.c.env, "execute", NULL, NULL, 0) != 0)
        return -1;
    for (int k = 0; k < K_COUNT; k++)
        if (make_key(&keys[k]) != 0)
            return -1;
    if (submit_dead(K_ALICE, "alice broke it", g.alice_job) != 0 ||
        submit_dead(K_BOB, "bob broke it", g.bob_job) != 0)
        return -1;
    /* Both letters are in the DLQ once both rows are dead (the copy first). */
    return 0;
}

static int teardown(void **state)
{
    yt_cluster_stop(&g.c);
    return 0;
}

/* GETs path as key k, expects 200 and returns the dead_letters' job ids
 * joined by ',' in out; the document in *doc if not NULL. */
static void list_as(int k, const char *path, char *out, size_t cap, json_t **doc)
{
    yt_http_resp_t r = {0};
    int st = call(&r, k, "GET", path, NULL);
    if (st != 200)
        fail_msg("GET %s as %s: expected 200, got %d %s", path, keys[k].name, st,
                 yt_http_body_excerpt(&r));
    json_t *d = json_loadb(r.body, r.body_len, 0, NULL);
    if (!d)
        fail_msg("GET %s: expected JSON, got %s", path, yt_http_body_excerpt(&r));
    size_t i, len = 0;
    json_t *e;
    out[0] = '\0';
    json_array_foreach(json_object_get(d, "dead_letters"), i, e)
    {
        len += (size_t)snprintf(out + len, cap - len, "%s%s", len ? "," : "",
                                json_string_value(json_object_get(e, "job_id")));
        /* Every field of the contract is there. */
        const char *fields[] = {"seq", "job_id", "type", "queue", "subject", "attempts",
                                "error", "died_at", "payload"};
        for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++)
            if (!json_object_get(e, fields[f]))
                fail_msg("GET %s: letter without \"%s\": %s", path, fields[f],
                         yt_http_body_excerpt(&r));
    }
    if (!json_object_get(d, "next_cursor"))
        fail_msg("GET %s: no next_cursor", path);
    if (doc)
        *doc = d;
    else
        json_decref(d);
    yt_http_resp_free(&r);
}

static void expect_error(yt_http_resp_t *r, int got, int want, const char *what)
{
    char why[256];
    if (got != want)
        fail_msg("%s: expected HTTP %d, got %d %s", what, want, got, yt_http_body_excerpt(r));
    if (yt_http_check_error(r, why, sizeof why) != 0)
        fail_msg("%s: %s", what, why);
    yt_http_resp_free(r);
}

static void test_each_key_sees_its_own_letters(void **state)
{
    char ids[1024];
    list_as(K_ALICE, "/v1/dlq", ids, sizeof ids, NULL);
    assert_string_equal(ids, g.alice_job);
    list_as(K_BOB, "/v1/dlq", ids, sizeof ids, NULL);
    assert_string_equal(ids, g.bob_job);
    list_as(K_ADMIN, "/v1/dlq", ids, sizeof ids, NULL);
    if (!strstr(ids, g.alice_job) || !strstr(ids, g.bob_job))
        fail_msg("admin: expected both letters, got %s", ids);
    list_as(K_ADMIN, "/v1/dlq?error=bob%20broke&queue=default&since=2020-01-01T00:00:00Z", ids,
            sizeof ids, NULL);
    assert_string_equal(ids, g.bob_job);
    list_as(K_ADMIN, "/v1/dlq?queue=nope", ids, sizeof ids, NULL);
    assert_string_equal(ids, "");

    /* Pages: one letter, then the rest from next_cursor. */
    json_t *doc = NULL;
    char path[128];
    list_as(K_ADMIN, "/v1/dlq?limit=1", ids, sizeof ids, &doc);
    assert_string_equal(ids, g.alice_job);
    const char *cursor = json_string_value(json_object_get(doc, "next_cursor"));
    assert_non_null(cursor);
    snprintf(path, sizeof path, "/v1/dlq?limit=1&cursor=%s", cursor);
    json_decref(doc);
    list_as(K_ADMIN, path, ids, sizeof ids, NULL);
    assert_string_equal(ids, g.bob_job);

    yt_http_resp_t r = {0};
    expect_error(&r, call(&r, -1, "GET", "/v1/dlq", NULL), 401, "GET /v1/dlq without a key");
    expect_error(&r, call(&r, K_SUBMITTER, "GET", "/v1/dlq", NULL), 403,
                 "GET /v1/dlq without read");
    expect_error(&r, call(&r, K_ADMIN, "GET", "/v1/dlq?limit=0", NULL), 400, "limit=0");
    expect_error(&r, call(&r, K_ADMIN, "GET", "/v1/dlq?since=yesterday", NULL), 400,
                 "since=yesterday");
}

static void test_replay_needs_admin_and_runs_the_job(void **state)
{
    yt_http_resp_t r = {0};
    const char *dry = "{\"all\":true,\"error_contains\":\"alice\",\"dry_run\":true}";
    expect_error(&r, call(&r, K_ALICE, "POST", "/v1/dlq/replay", dry), 403,
                 "replay as a read key");
    expect_error(&r, call(&r, K_ADMIN, "POST", "/v1/dlq/replay", "{\"all\":true,\"seqs\":[1]}"),
                 400, "all and seqs");
    expect_error(&r, call(&r, K_ADMIN, "POST", "/v1/dlq/replay", "{\"bogus\":1}"), 400,
                 "unknown field");
    expect_error(&r, call(&r, K_ADMIN, "POST", "/v1/dlq/replay", "{\"seqs\":[0]}"), 400,
                 "seq 0");

    /* A missing sequence is reported as such. */
    int st = call(&r, K_ADMIN, "POST", "/v1/dlq/replay", "{\"seqs\":[999999]}");
    assert_int_equal(st, 200);
    json_t *doc = json_loadb(r.body, r.body_len, 0, NULL);
    assert_int_equal(json_integer_value(json_array_get(json_object_get(doc, "missing"), 0)),
                     999999);
    assert_int_equal(json_integer_value(json_object_get(doc, "replayed")), 0);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(doc, "results"), 0), "outcome")),
                        "missing");
    json_decref(doc);
    yt_http_resp_free(&r);

    /* Dry run: says it, changes nothing. */
    st = call(&r, K_ADMIN, "POST", "/v1/dlq/replay", dry);
    assert_int_equal(st, 200);
    doc = json_loadb(r.body, r.body_len, 0, NULL);
    assert_int_equal(json_integer_value(json_object_get(doc, "would_replay")), 1);
    json_t *res0 = json_array_get(json_object_get(doc, "results"), 0);
    assert_string_equal(json_string_value(json_object_get(res0, "job_id")), g.alice_job);
    assert_int_equal(json_integer_value(json_object_get(res0, "max_attempts")), 6);
    json_decref(doc);
    yt_http_resp_free(&r);
    assert_int_equal(yt_sql_int(g.c.env, "SELECT count(*) FROM jobs WHERE id = '%s' AND"
                                " status = 'dead' AND replays = 0", g.alice_job),
                     1);

    /* The replay: the job runs again (and dies again, its cause stays). */
    st = call(&r, K_ADMIN, "POST", "/v1/dlq/replay",
              "{\"all\":true,\"error_contains\":\"alice\"}");
    assert_int_equal(st, 200);
    doc = json_loadb(r.body, r.body_len, 0, NULL);
    assert_int_equal(json_integer_value(json_object_get(doc, "replayed")), 1);
    json_decref(doc);
    yt_http_resp_free(&r);
    long long n = yt_wait_sql(g.c.env, 2, WAIT_MS,
                              "SELECT count(*) FROM job_attempts WHERE job_id = '%s'",
                              g.alice_job);
    assert_int_equal(n, 2);
    assert_int_equal(yt_sql_int(g.c.env, "SELECT count(*) FROM jobs WHERE id = '%s' AND"
                                " replays = 1 AND replayed_by LIKE 'api:%%'", g.alice_job),
                     1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_key_sees_its_own_letters),
        cmocka_unit_test(test_replay_needs_admin_and_runs_the_job),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
