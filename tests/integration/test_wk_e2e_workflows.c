/*
 * test_wk_e2e_workflows.c - workflows (DAGs of jobs) end to end: the real
 * gateway, an execute and a schedule worker (whose releaser moves
 * workflows on), nats-server and PostgreSQL, one cluster for all tests.
 *   1. a diamond A -> B, C -> D: D's payload holds B's and C's results
 *      under `inputs` (echo returns its payload), every step ran once, and
 *      every step job carries the POST's trace id;
 *   2. a fan-out of 200 steps with one fan-in step: it sees all 200
 *      results; 202 attempts in all;
 *   3. a failing middle step (fail): its dependents are skipped and never
 *      run, the independent branch succeeds, the workflow fails;
 *   3b. a step whose parents' results make its job too large to publish is
 *      dead (saying why), its dependents skipped, the workflow failed;
 *   4. validation: a cycle (named), an unknown dependency, a duplicate id,
 *      1,001 steps, a non-object payload under depends_on: 400s that name
 *      the problem; nothing recorded;
 *   5. DELETE cancels a running workflow (the sleeping step's job is
 *      cancelled, the waiting one too), is idempotent, and is refused (409)
 *      for a finished workflow; GET /v1/workflows lists newest first with a
 *      working cursor;
 *   6. two schedule replicas, one killed with -9 during a 500-step workflow:
 *      after its restart the workflow succeeds with every step run exactly once (one
 *      job_attempts row each, attempt 1; JOBS stored exactly 500 messages);
 *   6b. PostgreSQL restarted in the middle of a 30-step chain: the releaser
 *      reconnects, listens again and the workflow succeeds;
 *   7. the time from the last parent's success to the child's start over a
 *      100-step chain (p50/p99 printed for the report);
 *   8. an Idempotency-Key makes a repeated POST answer the first workflow.
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

#include <jansson.h>

#include "yt_http.h"
#include "yt_workers.h"

#define WF_ID_MAX 40

static struct {
    yt_cluster_t c;
} g;

static int setup(void **state)
{
    /* Bodies up to 4 MiB: the too-large-inputs test posts two 700 KB payloads. */
    static char *const extra[] = {"YARD_HTTP_MAX_BODY=4194304", NULL};
    memset(&g.c, 0, sizeof g.c);
    if (yt_cluster_start(&g.c, extra) != 0 ||
        yt_worker_start(&g.c.exec, g.c.env, "execute", NULL, NULL, 0) != 0 ||
        yt_worker_start(&g.c.sched, g.c.env, "schedule", NULL, NULL, 0) != 0) {
        yt_cluster_stop(&g.c);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    yt_cluster_stop(&g.c);
    return 0;
}

/* ---- HTTP helpers -------------------------------------------------------------- */

#define TRACE_ID "4bf92f3577b34da6a3ce929d0e0e4736"
static const char *const json_headers[] = {
    "Content-Type: application/json", "traceparent: 00-" TRACE_ID "-00f067aa0ba902b7-01", NULL};

/* POSTs body to /v1/workflows. On 202 copies the id into id. Returns the
 * status; resp keeps the answer (free it). */
static int wf_post(yt_http_resp_t *resp, const char *body, char id[WF_ID_MAX])
{
    int st = yt_http_request(resp, g.c.port, "POST", "/v1/workflows", json_headers, body,
                             strlen(body));
    if (st == 202 && id) {
        json_t *doc = json_loads(resp->body, 0, NULL);
        const char *s = json_string_value(json_object_get(doc, "id"));
        const char *status = json_string_value(json_object_get(doc, "status"));
        if (!s || !status || strcmp(status, "running") != 0)
            fail_msg("POST /v1/workflows: expected 202 {\"id\",\"status\":\"running\"}, got %s",
                     yt_http_body_excerpt(resp));
        snprintf(id, WF_ID_MAX, "%s", s);
        json_decref(doc);
    }
    return st;
}

/* POSTs body, expecting 202; returns nothing, fills id. */
static void wf_start(const char *body, char id[WF_ID_MAX])
{
    yt_http_resp_t resp = {0};
    int st = wf_post(&resp, body, id);
    if (st != 202)
        fail_msg("POST /v1/workflows: expected 202, got %d: %s", st, yt_http_body_excerpt(&resp));
    yt_http_resp_free(&resp);
}

/* GET /v1/workflows/{id} as JSON (json_decref it), or NULL. */
static json_t *wf_get(const char *id)
{
    char path[128];
    yt_http_resp_t resp = {0};
    snprintf(path, sizeof path, "/v1/workflows/%s", id);
    int st = yt_http_request(&resp, g.c.port, "GET", path, NULL, NULL, 0);
    json_t *doc = st == 200 ? json_loads(resp.body, 0, NULL) : NULL;
    if (st != 200)
        fprintf(stderr, "GET %s: %d %s\n", path, st, yt_http_body_excerpt(&resp));
    yt_http_resp_free(&resp);
    return doc;
}

/* Polls GET /v1/workflows/{id} until its status is final (not running) or
 * timeout_ms passes. Returns the last document (json_decref it) or NULL. */
static json_t *wf_wait_final(const char *id, int timeout_ms)
{
    long long deadline = yt_now_ms() + timeout_ms;
    json_t *doc = NULL;
    for (;;) {
        json_decref(doc);
        doc = wf_get(id);
        const char *st = json_string_value(json_object_get(doc, "status"));
        if ((st && strcmp(st, "running") != 0) || yt_now_ms() >= deadline)
            return doc;
        yt_nap_ms(100);
    }
}

static const char *wf_status(json_t *doc)
{
    const char *s = json_string_value(json_object_get(doc, "status"));
    return s ? s : "(none)";
}

/* The step named step_id of a workflow document, or NULL. */
static json_t *wf_step(json_t *doc, const char *step_id)
{
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(doc, "steps"), i, s)
    {
        const char *id = json_string_value(json_object_get(s, "id"));
        if (id && strcmp(id, step_id) == 0)
            return s;
    }
    return NULL;
}

static const char *step_status(json_t *doc, const char *step_id)
{
    const char *s = json_string_value(json_object_get(wf_step(doc, step_id), "status"));
    return s ? s : "(none)";
}

/* Fails unless the workflow's status is want, printing its steps. */
static void expect_status(json_t *doc, const char *id, const char *want, const char *what)
{
    if (doc && strcmp(wf_status(doc), want) == 0)
        return;
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    yt_worker_log_tail(g.c.env, &g.c.sched);
    fail_msg("%s: expected workflow %s to end %s, got %s: %.600s", what, id, want,
             doc ? wf_status(doc) : "no answer", text ? text : "");
}

/* A body of n steps built by step(i, buf, cap) into a malloc'd string. */
typedef void (*step_fn)(int i, char *buf, size_t cap);
static char *wf_body(int n, step_fn step)
{
    size_t cap = 64 + (size_t)n * 8192, len = 0;
    char *body = malloc(cap), one[8192];
    assert_non_null(body);
    len += (size_t)snprintf(body, cap, "{\"name\":\"test\",\"steps\":[");
    for (int i = 0; i < n; i++) {
        step(i, one, sizeof one);
        len += (size_t)snprintf(body + len, cap - len, "%s%s", i ? "," : "", one);
    }
    snprintf(body + len, cap - len, "]}");
    return body;
}

/* Attempt rows of the workflow's jobs: total and the highest attempt. */
static void attempts_of(const char *id, long long *rows, long long *max_attempt)
{
    *rows = yt_sql_int(g.c.env,
                       "SELECT count(*) FROM job_attempts a JOIN workflow_steps s"
                       " ON s.job_id = a.job_id WHERE s.workflow_id = '%s'",
                       id);
    *max_attempt = yt_sql_int(g.c.env,
                              "SELECT coalesce(max(a.attempt), 0) FROM job_attempts a"
                              " JOIN workflow_steps s ON s.job_id = a.job_id"
                              " WHERE s.workflow_id = '%s'",
                              id);
}

/* ---- 1. diamond ----------------------------------------------------------------- */

static void test_diamond_passes_results_under_inputs(void **state)
{
    char id[WF_ID_MAX];
    wf_start("{\"name\":\"diamond\",\"steps\":["
             "{\"id\":\"A\",\"type\":\"echo\",\"payload\":{\"v\":\"a\"}},"
             "{\"id\":\"B\",\"type\":\"echo\",\"depends_on\":[\"A\"],\"payload\":{\"v\":\"b\"}},"
             "{\"id\":\"C\",\"type\":\"echo\",\"depends_on\":[\"A\"],\"payload\":{\"v\":\"c\"}},"
             "{\"id\":\"D\",\"type\":\"echo\",\"depends_on\":[\"B\",\"C\"]}]}",
             id);
    json_t *doc = wf_wait_final(id, 30000);
    expect_status(doc, id, "succeeded", "diamond A -> B, C -> D");
    json_t *inputs = json_object_get(json_object_get(wf_step(doc, "D"), "result"), "inputs");
    const char *b = json_string_value(json_object_get(json_object_get(inputs, "B"), "v"));
    const char *c = json_string_value(json_object_get(json_object_get(inputs, "C"), "v"));
    const char *a_via_b = json_string_value(
        json_object_get(json_object_get(json_object_get(json_object_get(inputs, "B"), "inputs"),
                                        "A"),
                        "v"));
    if (!b || strcmp(b, "b") != 0 || !c || strcmp(c, "c") != 0 || !a_via_b ||
        strcmp(a_via_b, "a") != 0 || json_object_size(inputs) != 2) {
        char *text = json_dumps(inputs, JSON_COMPACT);
        fail_msg("diamond: expected D's payload (echoed) to hold inputs {B: {v:b, inputs: {A: "
                 "{v:a}}}, C: {v:c, ...}}, got inputs %.400s",
                 text ? text : "(none)");
    }
    const char *steps[] = {"A", "B", "C", "D"};
    for (int i = 0; i < 4; i++) {
        json_t *s = wf_step(doc, steps[i]);
        if (strcmp(step_status(doc, steps[i]), "succeeded") != 0 ||
            json_integer_value(json_object_get(s, "attempts")) != 1)
            fail_msg("diamond: expected step %s succeeded at attempt 1, got %s with %lld attempts",
                     steps[i], step_status(doc, steps[i]),
                     (long long)json_integer_value(json_object_get(s, "attempts")));
    }
    /* D started only once both parents had finished. */
    long long early = yt_sql_int(g.c.env,
                                 "SELECT count(*) FROM workflow_steps c JOIN jobs cj ON cj.id ="
                                 " c.job_id JOIN workflow_steps p ON p.workflow_id = c.workflow_id"
                                 " AND p.step_id = ANY(c.depends_on) JOIN jobs pj ON pj.id ="
                                 " p.job_id WHERE c.workflow_id = '%s' AND cj.started_at <"
                                 " pj.finished_at",
                                 id);
    assert_int_equal(early, 0);
    /* Every step job carries the workflow's trace (the POST's traceparent). */
    long long traced = yt_sql_int(g.c.env,
                                  "SELECT count(*) FROM jobs WHERE workflow_id = '%s'"
                                  " AND trace_id = '" TRACE_ID "'",
                                  id);
    if (traced != 4)
        fail_msg("diamond: expected the 4 step jobs to carry trace id " TRACE_ID ", %lld do",
                 traced);
    long long rows, max_attempt;
    attempts_of(id, &rows, &max_attempt);
    if (rows != 4 || max_attempt != 1)
        fail_msg("diamond: expected 4 attempt rows, all attempt 1; got %lld rows, max attempt "
                 "%lld",
                 rows, max_attempt);
    json_decref(doc);
}

/* ---- 2. fan-out 200, fan-in 1 --------------------------------------------------- */

#define FAN 200

static void fan_step(int i, char *buf, size_t cap)
{
    if (i == 0) {
        snprintf(buf, cap, "{\"id\":\"root\",\"type\":\"noop\"}");
    } else if (i <= FAN) {
        snprintf(buf, cap, "{\"id\":\"s%d\",\"type\":\"echo\",\"depends_on\":[\"root\"],"
                           "\"payload\":{\"n\":%d}}",
                 i, i);
    } else {
        size_t len = (size_t)snprintf(buf, cap, "{\"id\":\"in\",\"type\":\"echo\",\"depends_on\":[");
        for (int k = 1; k <= FAN; k++)
            len += (size_t)snprintf(buf + len, cap - len, "%s\"s%d\"", k > 1 ? "," : "", k);
        snprintf(buf + len, cap - len, "]}");
    }
}

static void test_fan_out_200_fan_in_1(void **state)
{
    char id[WF_ID_MAX];
    char *body = wf_body(FAN + 2, fan_step);
    wf_start(body, id);
    free(body);
    json_t *doc = wf_wait_final(id, 120000);
    expect_status(doc, id, "succeeded", "fan-out of 200 with one fan-in");
    json_t *inputs = json_object_get(json_object_get(wf_step(doc, "in"), "result"), "inputs");
    int good = 0;
    for (int k = 1; k <= FAN; k++) {
        char key[16];
        snprintf(key, sizeof key, "s%d", k);
        good += json_integer_value(json_object_get(json_object_get(inputs, key), "n")) == k;
    }
    if (good != FAN || json_object_size(inputs) != FAN)
        fail_msg("fan-in: expected the fan-in step's inputs to hold the 200 results (s1..s200 "
                 "with their n), got %d right of %zu keys",
                 good, json_object_size(inputs));
    long long rows, max_attempt;
    attempts_of(id, &rows, &max_attempt);
    if (rows != FAN + 2 || max_attempt != 1)
        fail_msg("fan-out: expected %d attempt rows, all attempt 1; got %lld, max attempt %lld",
                 FAN + 2, rows, max_attempt);
    json_decref(doc);
}

/* ---- 3. a failing middle step --------------------------------------------------- */

static void test_failing_step_skips_dependents(void **state)
{
    char id[WF_ID_MAX];
    wf_start("{\"steps\":["
             "{\"id\":\"A\",\"type\":\"noop\"},"
             "{\"id\":\"B\",\"type\":\"fail\",\"depends_on\":[\"A\"],"
             "\"payload\":{\"message\":\"B breaks\"}},"
             "{\"id\":\"C\",\"type\":\"noop\",\"depends_on\":[\"B\"]},"
             "{\"id\":\"D\",\"type\":\"noop\",\"depends_on\":[\"C\",\"E\"]},"
             "{\"id\":\"E\",\"type\":\"noop\",\"depends_on\":[\"A\"]}]}",
             id);
    json_t *doc = wf_wait_final(id, 30000);
    expect_status(doc, id, "failed", "A -> B (fails) -> C -> D, A -> E -> D");
    static const char *const want[][2] = {
        {"A", "succeeded"}, {"B", "dead"}, {"C", "skipped"}, {"D", "skipped"}, {"E", "succeeded"}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (strcmp(step_status(doc, want[i][0]), want[i][1]) != 0)
            fail_msg("failing middle step: expected step %s %s, got %s", want[i][0], want[i][1],
                     step_status(doc, want[i][0]));
    const char *err = json_string_value(json_object_get(wf_step(doc, "B"), "error"));
    if (!err || !strstr(err, "B breaks"))
        fail_msg("failing middle step: expected B's error to be its message, got %s",
                 err ? err : "null");
    /* The skipped steps never became jobs. */
    long long ran = yt_sql_int(g.c.env,
                               "SELECT count(*) FROM jobs j JOIN workflow_steps s ON s.job_id ="
                               " j.id WHERE s.workflow_id = '%s' AND s.step_id IN ('C', 'D')",
                               id);
    assert_int_equal(ran, 0);
    if (!json_is_string(json_object_get(doc, "finished_at")))
        fail_msg("failing middle step: expected finished_at set on the failed workflow");
    json_decref(doc);
}

/* ---- 3b. inputs too large for a job --------------------------------------------- */

static void test_inputs_too_large_kill_the_step(void **state)
{
    enum { PART = 700 * 1024 };
    size_t cap = 3 * PART + 1024, len = 0;
    char *body = malloc(cap), *pad = malloc(PART + 1);
    assert_non_null(body);
    assert_non_null(pad);
    memset(pad, 'x', PART);
    pad[PART] = '\0';
    len += (size_t)snprintf(body + len, cap - len,
                            "{\"steps\":[{\"id\":\"A\",\"type\":\"echo\",\"payload\":{\"s\":\"%s\"}},",
                            pad);
    len += (size_t)snprintf(body + len, cap - len,
                            "{\"id\":\"B\",\"type\":\"echo\",\"payload\":{\"s\":\"%s\"}},", pad);
    snprintf(body + len, cap - len,
             "{\"id\":\"C\",\"type\":\"echo\",\"depends_on\":[\"A\",\"B\"]},"
             "{\"id\":\"D\",\"type\":\"noop\",\"depends_on\":[\"C\"]}]}");
    free(pad);
    char id[WF_ID_MAX];
    wf_start(body, id);
    free(body);
    json_t *doc = wf_wait_final(id, 60000);
    expect_status(doc, id, "failed", "two 700 KB results into one step");
    const char *err = json_string_value(json_object_get(wf_step(doc, "C"), "error"));
    if (strcmp(step_status(doc, "C"), "dead") != 0 || !err || !strstr(err, "inputs") ||
        strcmp(step_status(doc, "D"), "skipped") != 0)
        fail_msg("too-large inputs: expected C dead (saying why) and D skipped, got C %s (%s), "
                 "D %s",
                 step_status(doc, "C"), err ? err : "no error", step_status(doc, "D"));
    json_decref(doc);
}

/* ---- 4. validation --------------------------------------------------------------- */

static void expect_400(const char *what, const char *body, const char *const *words)
{
    yt_http_resp_t resp = {0};
    char why[256];
    int st = wf_post(&resp, body, NULL);
    if (st != 400)
        fail_msg("%s: expected 400, got %d: %s", what, st, yt_http_body_excerpt(&resp));
    if (yt_http_check_error(&resp, why, sizeof why) != 0)
        fail_msg("%s: expected the API's error shape, %s", what, why);
    for (size_t i = 0; words[i]; i++)
        if (!strstr(resp.body, words[i]))
            fail_msg("%s: expected the message to name `%s`, got %s", what, words[i],
                     yt_http_body_excerpt(&resp));
    yt_http_resp_free(&resp);
}

static void big_step(int i, char *buf, size_t cap)
{
    snprintf(buf, cap, "{\"id\":\"s%d\",\"type\":\"noop\"}", i);
}

static void test_validation_400s(void **state)
{
    long long before = yt_sql_int(g.c.env, "SELECT count(*) FROM workflows");
    expect_400("cycle",
               "{\"steps\":[{\"id\":\"root\",\"type\":\"noop\"},"
               "{\"id\":\"x\",\"type\":\"noop\",\"depends_on\":[\"root\",\"z\"]},"
               "{\"id\":\"y\",\"type\":\"noop\",\"depends_on\":[\"x\"]},"
               "{\"id\":\"z\",\"type\":\"noop\",\"depends_on\":[\"y\"]}]}",
               (const char *const[]){"cycle", "x ->", "y ->", "z ->", NULL});
    expect_400("unknown dependency",
               "{\"steps\":[{\"id\":\"a\",\"type\":\"noop\",\"depends_on\":[\"ghost\"]}]}",
               (const char *const[]){"unknown step", "ghost", NULL});
    expect_400("duplicate id",
               "{\"steps\":[{\"id\":\"a\",\"type\":\"noop\"},{\"id\":\"a\",\"type\":\"echo\"}]}",
               (const char *const[]){"duplicate step id", "`a`", NULL});
    expect_400("self dependency",
               "{\"steps\":[{\"id\":\"a\",\"type\":\"noop\",\"depends_on\":[\"a\"]}]}",
               (const char *const[]){"depends on itself", NULL});
    expect_400("payload not an object under depends_on",
               "{\"steps\":[{\"id\":\"a\",\"type\":\"noop\"},"
               "{\"id\":\"b\",\"type\":\"noop\",\"depends_on\":[\"a\"],\"payload\":[1]}]}",
               (const char *const[]){"`b`", "inputs", NULL});
    expect_400("bad job field", "{\"steps\":[{\"id\":\"a\",\"type\":\"Not A Type\"}]}",
               (const char *const[]){"`a`", "type", NULL});
    expect_400("no steps", "{\"steps\":[]}", (const char *const[]){"1 to 1000", NULL});
    char *body = wf_body(1001, big_step);
    expect_400("1001 steps", body, (const char *const[]){"1 to 1000", NULL});
    free(body);
    /* Exactly 1000 is fine. */
    body = wf_body(1000, big_step);
    char id[WF_ID_MAX];
    yt_http_resp_t resp = {0};
    int st = wf_post(&resp, body, id);
    free(body);
    if (st != 202)
        fail_msg("1000 steps: expected 202, got %d: %s", st, yt_http_body_excerpt(&resp));
    yt_http_resp_free(&resp);
    long long after = yt_sql_int(g.c.env, "SELECT count(*) FROM workflows");
    assert_int_equal(after, before + 1);
    json_t *doc = wf_wait_final(id, 120000);
    expect_status(doc, id, "succeeded", "1000 independent steps");
    json_decref(doc);
}

/* ---- 5. DELETE and the list ------------------------------------------------------ */

static void test_delete_cancels_and_list(void **state)
{
    char id[WF_ID_MAX], path[128];
    wf_start("{\"name\":\"to-cancel\",\"steps\":["
             "{\"id\":\"slow\",\"type\":\"sleep\",\"payload\":{\"ms\":60000},\"timeout_s\":120},"
             "{\"id\":\"after\",\"type\":\"noop\",\"depends_on\":[\"slow\"]}]}",
             id);
    long long running = yt_wait_sql(g.c.env, 1, 20000,
                                    "SELECT count(*) FROM workflow_steps WHERE workflow_id = '%s'"
                                    " AND step_id = 'slow' AND status = 'running'",
                                    id);
    if (running != 1)
        fail_msg("DELETE: expected the sleep step running within 20 s");
    snprintf(path, sizeof path, "/v1/workflows/%s", id);
    yt_http_resp_t resp = {0};
    int st = yt_http_request(&resp, g.c.port, "DELETE", path, NULL, NULL, 0);
    if (st != 200 || !strstr(resp.body, "\"cancelled\""))
        fail_msg("DELETE %s: expected 200 cancelled, got %d %s", path, st,
                 yt_http_body_excerpt(&resp));
    yt_http_resp_free(&resp);
    /* The running job stops (its worker is told), the waiting step never runs. */
    long long stopped = yt_wait_sql(g.c.env, 1, 20000,
                                    "SELECT count(*) FROM workflow_steps WHERE workflow_id = '%s'"
                                    " AND step_id = 'slow' AND status = 'cancelled'",
                                    id);
    json_t *doc = wf_get(id);
    if (stopped != 1 || strcmp(wf_status(doc), "cancelled") != 0 ||
        strcmp(step_status(doc, "after"), "cancelled") != 0)
        fail_msg("DELETE: expected workflow cancelled, slow cancelled (its job stopped), after "
                 "cancelled; got %s, %s, %s",
                 wf_status(doc), step_status(doc, "slow"), step_status(doc, "after"));
    json_decref(doc);
    /* Idempotent. */
    st = yt_http_request(&resp, g.c.port, "DELETE", path, NULL, NULL, 0);
    if (st != 200)
        fail_msg("DELETE again: expected 200, got %d %s", st, yt_http_body_excerpt(&resp));
    yt_http_resp_free(&resp);
    /* A finished workflow: 409. */
    char done[WF_ID_MAX];
    wf_start("{\"steps\":[{\"id\":\"only\",\"type\":\"noop\"}]}", done);
    doc = wf_wait_final(done, 20000);
    expect_status(doc, done, "succeeded", "one noop step");
    json_decref(doc);
    snprintf(path, sizeof path, "/v1/workflows/%s", done);
    st = yt_http_request(&resp, g.c.port, "DELETE", path, NULL, NULL, 0);
    if (st != 409)
        fail_msg("DELETE a succeeded workflow: expected 409, got %d %s", st,
                 yt_http_body_excerpt(&resp));
    yt_http_resp_free(&resp);
    st = yt_http_request(&resp, g.c.port, "GET",
                         "/v1/workflows/00000000-0000-7000-8000-000000000000", NULL, NULL, 0);
    assert_int_equal(st, 404);
    yt_http_resp_free(&resp);

    /* The list: newest first; a page of 1 then the next. */
    st = yt_http_request(&resp, g.c.port, "GET", "/v1/workflows?limit=1", NULL, NULL, 0);
    json_t *page = st == 200 ? json_loads(resp.body, 0, NULL) : NULL;
    json_t *first = json_array_get(json_object_get(page, "workflows"), 0);
    const char *cursor = json_string_value(json_object_get(page, "next_cursor"));
    if (!first || strcmp(json_string_value(json_object_get(first, "id")), done) != 0 || !cursor ||
        json_integer_value(json_object_get(first, "steps_total")) != 1 ||
        json_integer_value(json_object_get(first, "steps_done")) != 1)
        fail_msg("GET /v1/workflows?limit=1: expected the newest (%s, 1 of 1 steps done) and a "
                 "next_cursor, got %d %s",
                 done, st, yt_http_body_excerpt(&resp));
    yt_http_resp_free(&resp);
    char next[256];
    snprintf(next, sizeof next, "/v1/workflows?limit=1&status=cancelled&cursor=%s", cursor);
    json_decref(page);
    st = yt_http_request(&resp, g.c.port, "GET", next, NULL, NULL, 0);
    page = st == 200 ? json_loads(resp.body, 0, NULL) : NULL;
    first = json_array_get(json_object_get(page, "workflows"), 0);
    if (!first || strcmp(json_string_value(json_object_get(first, "id")), id) != 0)
        fail_msg("GET %s: expected the cancelled workflow %s, got %d %s", next, id, st,
                 yt_http_body_excerpt(&resp));
    json_decref(page);
    yt_http_resp_free(&resp);
    st = yt_http_request(&resp, g.c.port, "GET", "/v1/workflows?status=bogus", NULL, NULL, 0);
    assert_int_equal(st, 400);
    yt_http_resp_free(&resp);
}

/* ---- 5b. Idempotency-Key ---------------------------------------------------------- */

static void test_idempotency_key_repeats_the_workflow(void **state)
{
    static const char *const headers[] = {"Content-Type: application/json",
                                          "Idempotency-Key: nightly-2026-11-28", NULL};
    static const char body[] = "{\"steps\":[{\"id\":\"only\",\"type\":\"noop\"}]}";
    char ids[2][WF_ID_MAX];
    for (int i = 0; i < 2; i++) {
        yt_http_resp_t resp = {0};
        int st = yt_http_request(&resp, g.c.port, "POST", "/v1/workflows", headers, body,
                                 strlen(body));
        json_t *doc = st == 202 ? json_loads(resp.body, 0, NULL) : NULL;
        const char *id = json_string_value(json_object_get(doc, "id"));
        int dup = json_is_true(json_object_get(doc, "duplicate"));
        if (!id || dup != (i == 1))
            fail_msg("POST with Idempotency-Key, try %d: expected 202%s, got %d %s", i + 1,
                     i ? " with duplicate: true" : "", st, yt_http_body_excerpt(&resp));
        snprintf(ids[i], sizeof ids[i], "%s", id);
        json_decref(doc);
        yt_http_resp_free(&resp);
    }
    if (strcmp(ids[0], ids[1]) != 0)
        fail_msg("Idempotency-Key: expected the same workflow id twice, got %s and %s", ids[0],
                 ids[1]);
    assert_int_equal(yt_sql_int(g.c.env, "SELECT count(*) FROM workflows WHERE id = '%s'", ids[0]),
                     1);
    json_t *doc = wf_wait_final(ids[0], 20000);
    expect_status(doc, ids[0], "succeeded", "a workflow posted twice with one Idempotency-Key");
    json_decref(doc);
}

/* ---- 6. the schedule role killed -9 during 500 steps ----------------------------- */

#define LAYERS 10
#define WIDTH 50

static void layer_step(int i, char *buf, size_t cap)
{
    int layer = i / WIDTH, k = i % WIDTH;
    if (layer == 0) {
        snprintf(buf, cap, "{\"id\":\"l0s%d\",\"type\":\"noop\"}", k);
        return;
    }
    snprintf(buf, cap, "{\"id\":\"l%ds%d\",\"type\":\"noop\",\"depends_on\":[\"l%ds%d\",\"l%ds%d\"]}",
             layer, k, layer - 1, k, layer - 1, (k + 1) % WIDTH);
}

static void test_schedule_killed_mid_workflow(void **state)
{
    char id[WF_ID_MAX];
    uint64_t first, last_before, last_after, count;
    yt_worker_t replica = {0};
    /* Two schedule replicas release side by side; one of them is killed. */
    if (yt_worker_start(&replica, g.c.env, "schedule", NULL, NULL, 0) != 0)
        fail_msg("expected a second schedule worker to start");
    if (yard_js_stream_state(&first, &last_before, &count, g.c.js, "JOBS") != 0)
        fail_msg("expected JOBS stream state");
    char *body = wf_body(LAYERS * WIDTH, layer_step);
    wf_start(body, id);
    free(body);
    long long done = yt_wait_sql(g.c.env, 120, 60000,
                                 "SELECT least(count(*), 120) FROM workflow_steps"
                                 " WHERE workflow_id = '%s' AND status = 'succeeded'",
                                 id);
    if (done < 120)
        fail_msg("500 steps: expected 120 steps succeeded within 60 s before the kill, got %lld",
                 done);
    int ws = yt_worker_stop(g.c.env, &g.c.sched, SIGKILL, 5000);
    long long at_kill = yt_sql_int(g.c.env,
                                   "SELECT count(*) FROM workflow_steps WHERE workflow_id = '%s'"
                                   " AND status = 'succeeded'",
                                   id);
    fprintf(stderr, "schedule role killed (%s) with %lld of 500 steps succeeded\n",
            yt_wait_status_text(ws), at_kill);
    yt_nap_ms(1000);
    if (yt_worker_start(&g.c.sched, g.c.env, "schedule", NULL, NULL, 0) != 0)
        fail_msg("expected the schedule worker to start again");
    json_t *doc = wf_wait_final(id, 180000);
    yt_cluster_stop_worker(&g.c, &replica);
    expect_status(doc, id, "succeeded", "500 steps with the schedule role killed -9");
    json_decref(doc);
    long long rows, max_attempt;
    attempts_of(id, &rows, &max_attempt);
    long long once = yt_sql_int(g.c.env,
                                "SELECT count(*) FROM jobs j JOIN workflow_steps s ON s.job_id ="
                                " j.id WHERE s.workflow_id = '%s' AND j.attempts = 1"
                                " AND j.status = 'succeeded'",
                                id);
    if (rows != LAYERS * WIDTH || max_attempt != 1 || once != LAYERS * WIDTH)
        fail_msg("500 steps: expected 500 attempt rows, all attempt 1, 500 jobs succeeded at "
                 "attempt 1; got %lld rows, max attempt %lld, %lld jobs",
                 rows, max_attempt, once);
    if (yard_js_stream_state(&first, &last_after, &count, g.c.js, "JOBS") != 0)
        fail_msg("expected JOBS stream state");
    if (last_after - last_before != LAYERS * WIDTH)
        fail_msg("500 steps: expected JOBS to store exactly 500 messages (one per step, "
                 "republishes deduplicated), it stored %llu",
                 (unsigned long long)(last_after - last_before));
}

/* ---- 6b. PostgreSQL restarted mid-workflow -------------------------------------- */

#define PG_CHAIN 30

static void pg_chain_step(int i, char *buf, size_t cap)
{
    if (i == 0)
        snprintf(buf, cap, "{\"id\":\"p0\",\"type\":\"sleep\",\"payload\":{\"ms\":50}}");
    else
        snprintf(buf, cap,
                 "{\"id\":\"p%d\",\"type\":\"sleep\",\"payload\":{\"ms\":50},"
                 "\"depends_on\":[\"p%d\"]}",
                 i, i - 1);
}

static void test_postgres_restart_mid_workflow(void **state)
{
    char id[WF_ID_MAX];
    char *body = wf_body(PG_CHAIN, pg_chain_step);
    wf_start(body, id);
    free(body);
    long long done = yt_wait_sql(g.c.env, 5, 30000,
                                 "SELECT least(count(*), 5) FROM workflow_steps"
                                 " WHERE workflow_id = '%s' AND status = 'succeeded'",
                                 id);
    if (done < 5)
        fail_msg("PostgreSQL restart: expected 5 chain steps done within 30 s first, got %lld",
                 done);
    if (yt_pg_stop(g.c.env) != 0)
        fail_msg("expected PostgreSQL to stop");
    yt_nap_ms(2000);
    if (yt_pg_start(g.c.env) != 0)
        fail_msg("expected PostgreSQL to start again");
    /* The releaser reconnects, LISTENs again and sweeps: the chain goes on. */
    json_t *doc = wf_wait_final(id, 120000);
    expect_status(doc, id, "succeeded", "a chain of 30 with PostgreSQL restarted");
    json_decref(doc);
    long long rows, max_attempt;
    attempts_of(id, &rows, &max_attempt);
    if (rows != PG_CHAIN)
        fail_msg("PostgreSQL restart: expected one attempt row per step (30), got %lld", rows);
}

/* ---- 7. release latency ---------------------------------------------------------- */

#define CHAIN 100

static void chain_step(int i, char *buf, size_t cap)
{
    if (i == 0)
        snprintf(buf, cap, "{\"id\":\"c0\",\"type\":\"noop\"}");
    else
        snprintf(buf, cap, "{\"id\":\"c%d\",\"type\":\"noop\",\"depends_on\":[\"c%d\"]}", i,
                 i - 1);
}

static void test_release_latency(void **state)
{
    char id[WF_ID_MAX], figures[256];
    char *body = wf_body(CHAIN, chain_step);
    wf_start(body, id);
    free(body);
    json_t *doc = wf_wait_final(id, 60000);
    expect_status(doc, id, "succeeded", "a chain of 100 steps");
    json_decref(doc);
    /* Per child: its job's start minus its last parent's finish. */
    int rc = yt_sql_text(
        g.c.env, figures, sizeof figures,
        "WITH e AS (SELECT extract(epoch FROM cj.started_at - (SELECT max(pj.finished_at)"
        " FROM workflow_steps p JOIN jobs pj ON pj.id = p.job_id WHERE p.workflow_id ="
        " c.workflow_id AND p.step_id = ANY(c.depends_on))) * 1000 AS ms"
        " FROM workflow_steps c JOIN jobs cj ON cj.id = c.job_id"
        " WHERE c.workflow_id = '%s' AND cardinality(c.depends_on) > 0)"
        " SELECT format('n=%%s p50=%%s ms p99=%%s ms max=%%s ms', count(*),"
        " round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1),"
        " round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 1),"
        " round(max(ms)::numeric, 1)) FROM e",
        id);
    assert_int_equal(rc, 1);
    fprintf(stderr, "release latency (last parent succeeded -> child started), chain of %d: %s\n",
            CHAIN, figures);
    long long slow = yt_sql_int(g.c.env,
                                "SELECT count(*) FROM workflow_steps c JOIN jobs cj ON cj.id ="
                                " c.job_id JOIN workflow_steps p ON p.workflow_id ="
                                " c.workflow_id AND p.step_id = ANY(c.depends_on) JOIN jobs pj"
                                " ON pj.id = p.job_id WHERE c.workflow_id = '%s'"
                                " AND cj.started_at - pj.finished_at > interval '4 seconds'",
                                id);
    /* Generous: the notice path, not the 5 s sweep, must release them. */
    if (slow > 0)
        fail_msg("chain: expected every child to start within 4 s of its parent (the notice, "
                 "not the sweep), %lld did not (%s)",
                 slow, figures);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_diamond_passes_results_under_inputs),
        cmocka_unit_test(test_fan_out_200_fan_in_1),
        cmocka_unit_test(test_failing_step_skips_dependents),
        cmocka_unit_test(test_inputs_too_large_kill_the_step),
        cmocka_unit_test(test_validation_400s),
        cmocka_unit_test(test_idempotency_key_repeats_the_workflow),
        cmocka_unit_test(test_delete_cancels_and_list),
        cmocka_unit_test(test_release_latency),
        cmocka_unit_test(test_schedule_killed_mid_workflow),
        cmocka_unit_test(test_postgres_restart_mid_workflow),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
