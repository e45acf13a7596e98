/*
 * test_jobs_list.c - GET /v1/jobs, GET /v1/jobs/{id}/attempts and
 * GET /v1/whoami on the real gateway (auth on, keys made by yardctl) against
 * real nats-server and PostgreSQL (migrated, with 0011's indexes).
 *
 * Job rows are written with SQL, so each test controls created_at, status,
 * errors and owners exactly. Checks: every filter alone and combined, error
 * text matched as text (a '%' is not a wildcard); newest-first order; pages
 * that neither repeat nor skip a job while newer jobs arrive between pages;
 * a key sees only its own jobs and attempts (admin sees all); bad filters,
 * limits and cursors are 400s that name the parameter; a listed job is the
 * same object GET /v1/jobs/{id} answers; attempts come oldest first.
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

#include "id.h"
#include "log.h"
#include "yt_http.h"
#include "yt_keys.h"
#include "yt_workers.h"

enum { K_ALICE, K_BOB, K_ADMIN, K_COUNT };
static yt_key_t keys[K_COUNT] = {
    [K_ALICE] = {.name = "alice", .scopes = "submit,read"},
    [K_BOB] = {.name = "bob", .scopes = "submit,read"},
    [K_ADMIN] = {.name = "ops", .scopes = "admin"},
};

static struct {
    yt_env_t *env;
    pid_t gw;
    int port;
    yard_id_gen_t ids;
    int minute; /* created_at of the next inserted job: base + minute */
} g;

/* ---- helpers ------------------------------------------------------------------ */

/* Inserts a job of alice's (or owner's) with created_at minutes after a fixed
 * base; fills id (may be NULL). */
static void insert_job(char *id, const yt_key_t *owner, const char *queue, const char *type,
                       const char *status, const char *error, int minute)
{
    yard_id_t uuid;
    char text[YARD_ID_TEXT_LEN + 1];
    yard_id_next(&g.ids, &uuid);
    yard_id_format(&uuid, text);
    if (yt_sql_exec(g.env,
                    "INSERT INTO jobs (id, queue, type, status, payload, last_error, max_attempts,"
                    " timeout_s, api_key_id, created_at) VALUES ('%s', '%s', '%s', '%s',"
                    " '{\"n\":%d}', %s%s%s, 3, 30, '%s',"
                    " timestamptz '2026-01-01T00:00:00Z' + interval '%d minutes')",
                    text, queue, type, status, minute, error ? "'" : "", error ? error : "NULL",
                    error ? "'" : "", owner->id, minute) != 0)
        fail_msg("expected the job row to insert");
    if (id)
        snprintf(id, YARD_ID_TEXT_LEN + 1, "%s", text);
}

/* GET path with key k: returns the status; *doc gets the parsed body. */
static int get_json(const yt_key_t *k, const char *path, json_t **doc)
{
    yt_http_resp_t r;
    const char *headers[] = {k->auth, NULL};
    int st = yt_http_request(&r, g.port, "GET", path, headers, NULL, 0);
    json_error_t err;
    *doc = st > 0 ? json_loadb(r.body, r.body_len, 0, &err) : NULL;
    if (st > 0 && !*doc)
        fail_msg("GET %s: expected a JSON body, got: %s", path, yt_http_body_excerpt(&r));
    yt_http_resp_free(&r);
    return st;
}

/* GET path expecting 200 and a list; returns the document. */
static json_t *list(const yt_key_t *k, const char *path)
{
    json_t *doc;
    int st = get_json(k, path, &doc);
    if (st != 200)
        fail_msg("GET %s as %s: expected 200, got %d: %.300s", path, k->name, st,
                 doc ? json_dumps(doc, JSON_COMPACT) : "");
    if (!json_is_array(json_object_get(doc, "jobs")) || !json_object_get(doc, "next_cursor"))
        fail_msg("GET %s: expected {\"jobs\":[...],\"next_cursor\":...}", path);
    return doc;
}

static size_t count(json_t *doc)
{
    return json_array_size(json_object_get(doc, "jobs"));
}

/* Checks every job of doc has field == value. */
static void expect_all(json_t *doc, const char *path, const char *field, const char *value)
{
    size_t i;
    json_t *job;
    json_array_foreach(json_object_get(doc, "jobs"), i, job)
    {
        const char *got = json_string_value(json_object_get(job, field));
        if (!got || strcmp(got, value) != 0)
            fail_msg("GET %s: expected every job's %s to be %s, job %zu has %s", path, field,
                     value, i, got ? got : "null");
    }
}

static void expect_count(json_t *doc, const char *path, size_t want)
{
    if (count(doc) != want)
        fail_msg("GET %s: expected %zu jobs, got %zu", path, want, count(doc));
}

/* Expects a 400 naming param in its message. */
static void expect_bad(const char *path, const char *param)
{
    yt_http_resp_t r;
    char why[300];
    const char *headers[] = {keys[K_ADMIN].auth, NULL};
    int st = yt_http_request(&r, g.port, "GET", path, headers, NULL, 0);
    if (st != 400)
        fail_msg("GET %s: expected 400, got %d: %s", path, st, yt_http_body_excerpt(&r));
    if (yt_http_check_error(&r, why, sizeof why) != 0)
        fail_msg("GET %s: %s", path, why);
    if (!strstr(r.body, param))
        fail_msg("GET %s: expected the message to name %s, got %s", path, param,
                 yt_http_body_excerpt(&r));
    yt_http_resp_free(&r);
}

/* ---- setup -------------------------------------------------------------------- */

static int setup(void **state)
{
    yard_log_init("test_jobs_list", YARD_LOG_ERROR);
    if (yt_env_create(&g.env, YT_NATS | YT_PG | YT_MIGRATE) != 0 ||
        yard_id_gen_init(&g.ids) != 0)
        return -1;
    for (int i = 0; i < K_COUNT; i++)
        if (yt_key_create(g.env, &keys[i]) != 0)
            return -1;
    g.gw = yt_auth_gateway_start(g.env, &g.port, NULL);
    return g.gw > 0 ? 0 : -1;
}

static int teardown(void **state)
{
    if (g.gw > 0 && yt_kill_wait(g.gw, SIGTERM, 10000) < 0)
        yt_kill_wait(g.gw, SIGKILL, 5000);
    yt_env_destroy(g.env);
    return 0;
}

/* Each test starts from an empty table. */
static int empty_jobs(void **state)
{
    return yt_sql_exec(g.env, "DELETE FROM jobs") == 0 ? 0 : -1;
}

/* ---- tests -------------------------------------------------------------------- */

static void test_filters_alone_and_combined(void **state)
{
    const yt_key_t *a = &keys[K_ALICE];
    /* 12 jobs: queues default/mail, types noop/email.send, statuses. */
    static const struct {
        const char *queue, *type, *status, *error;
    } rows[] = {
        {"default", "noop", "succeeded", NULL},
        {"default", "noop", "dead", "Connection REFUSED by upstream"},
        {"mail", "email.send", "dead", "smtp: 550 mailbox unavailable"},
        {"mail", "email.send", "failed", "smtp: connection refused"},
        {"mail", "email.send", "queued", NULL},
        {"default", "email.send", "running", NULL},
        {"default", "noop", "dead", "quota at 100% reached"},
        {"mail", "noop", "succeeded", NULL},
        {"default", "noop", "cancelled", NULL},
        {"mail", "email.send", "dead", "timeout after 30 s"},
        {"default", "noop", "queued", NULL},
        {"mail", "email.send", "succeeded", NULL},
    };
    for (int i = 0; i < 12; i++)
        insert_job(NULL, a, rows[i].queue, rows[i].type, rows[i].status, rows[i].error, i);
    json_t *doc = list(a, "/v1/jobs");
    expect_count(doc, "/v1/jobs", 12);
    /* Newest first: minute 11 first, minute 0 last. */
    int first = (int)json_integer_value(json_object_get(
        json_object_get(json_array_get(json_object_get(doc, "jobs"), 0), "payload"), "n"));
    int last = (int)json_integer_value(json_object_get(
        json_object_get(json_array_get(json_object_get(doc, "jobs"), 11), "payload"), "n"));
    if (first != 11 || last != 0)
        fail_msg("GET /v1/jobs: expected newest first (n=11 ... n=0), got n=%d ... n=%d", first,
                 last);
    json_decref(doc);

    static const struct {
        const char *path;
        size_t want;
        const char *field, *value;
    } cases[] = {
        {"/v1/jobs?status=dead", 4, "status", "dead"},
        {"/v1/jobs?queue=mail", 6, "queue", "mail"},
        {"/v1/jobs?type=email.send", 6, "type", "email.send"},
        {"/v1/jobs?status=dead&queue=mail", 2, "queue", "mail"},
        {"/v1/jobs?status=succeeded&type=noop&queue=default", 1, "status", "succeeded"},
        /* case-insensitive substring, URL-encoded blank */
        {"/v1/jobs?error=connection+refused", 2, NULL, NULL},
        {"/v1/jobs?error=Connection%20Refused&status=failed", 1, "status", "failed"},
        /* '%' is text, not a wildcard: only "100% reached" matches */
        {"/v1/jobs?error=0%25%20r", 1, "status", "dead"},
        {"/v1/jobs?error=no-such-text", 0, NULL, NULL},
        /* since inclusive, until exclusive: minutes 3, 4, 5 */
        {"/v1/jobs?since=2026-01-01T00:03:00Z&until=2026-01-01T00:06:00Z", 3, NULL, NULL},
        {"/v1/jobs?since=2026-01-01T01:03:00%2B01:00&until=2026-01-01T00:06:00Z", 3, NULL,
         NULL},
        {"/v1/jobs?status=&queue=&limit=", 12, NULL, NULL}, /* empty = no filter */
        {"/v1/jobs?limit=5", 5, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        doc = list(a, cases[i].path);
        expect_count(doc, cases[i].path, cases[i].want);
        if (cases[i].field)
            expect_all(doc, cases[i].path, cases[i].field, cases[i].value);
        json_decref(doc);
    }
}

static void test_pages_stay_stable_while_jobs_arrive(void **state)
{
    const yt_key_t *a = &keys[K_ALICE];
    char ids[25][YARD_ID_TEXT_LEN + 1];
    int seen[25] = {0};
    char path[256];
    for (int i = 0; i < 25; i++)
        insert_job(ids[i], a, "default", "noop", "succeeded", NULL, 100 + i);
    /* Two jobs share one created_at: the id breaks the tie. */
    yt_sql_exec(g.env, "UPDATE jobs SET created_at = (SELECT created_at FROM jobs WHERE id = '%s')"
                       " WHERE id = '%s'", ids[10], ids[11]);
    char cursor[200] = "";
    int pages = 0, total = 0;
    do {
        snprintf(path, sizeof path, "/v1/jobs?limit=10&status=succeeded%s%s",
                 cursor[0] ? "&cursor=" : "", cursor);
        json_t *doc = list(a, path);
        size_t i;
        json_t *job;
        json_array_foreach(json_object_get(doc, "jobs"), i, job)
        {
            const char *id = json_string_value(json_object_get(job, "id"));
            int k = 0;
            while (k < 25 && strcmp(ids[k], id) != 0)
                k++;
            if (k == 25)
                fail_msg("page %d: job %s is not one of the 25 listed before paging (a new "
                         "job must sort before page 1)", pages + 1, id);
            if (seen[k]++)
                fail_msg("page %d: job %s came a second time", pages + 1, id);
            total++;
        }
        json_t *next = json_object_get(doc, "next_cursor");
        snprintf(cursor, sizeof cursor, "%s", json_is_string(next) ? json_string_value(next) : "");
        json_decref(doc);
        pages++;
        /* Newer jobs arrive between pages (5 each time). */
        for (int n = 0; n < 5; n++)
            insert_job(NULL, a, "default", "noop", "succeeded", NULL, 200 + pages * 5 + n);
    } while (cursor[0] && pages < 10);
    if (pages != 3 || total != 25)
        fail_msg("expected 3 pages holding the 25 jobs once each, got %d pages, %d jobs", pages,
                 total);
}

static void test_a_key_sees_only_its_own_jobs(void **state)
{
    char alice_job[YARD_ID_TEXT_LEN + 1], bob_job[YARD_ID_TEXT_LEN + 1], path[128];
    insert_job(alice_job, &keys[K_ALICE], "default", "noop", "dead", "error of alice", 1);
    insert_job(bob_job, &keys[K_BOB], "default", "noop", "dead", "error of bob", 2);
    yt_sql_exec(g.env, "INSERT INTO job_attempts (job_id, attempt, started_at, outcome, error,"
                       " duration_ms) VALUES ('%s', 1, now(), 'dead', 'error of alice', 5)",
                alice_job);
    json_t *doc = list(&keys[K_BOB], "/v1/jobs");
    expect_count(doc, "/v1/jobs as bob", 1);
    expect_all(doc, "/v1/jobs as bob", "id", bob_job);
    json_decref(doc);
    doc = list(&keys[K_BOB], "/v1/jobs?error=alice");
    expect_count(doc, "/v1/jobs?error=alice as bob", 0);
    json_decref(doc);
    doc = list(&keys[K_ADMIN], "/v1/jobs");
    expect_count(doc, "/v1/jobs as admin", 2);
    json_decref(doc);
    snprintf(path, sizeof path, "/v1/jobs/%s/attempts", alice_job);
    int st = get_json(&keys[K_BOB], path, &doc);
    if (st != 404)
        fail_msg("GET %s as bob: expected 404 (not his job), got %d", path, st);
    json_decref(doc);
    st = get_json(&keys[K_ALICE], path, &doc);
    if (st != 200 || json_array_size(json_object_get(doc, "attempts")) != 1)
        fail_msg("GET %s as alice: expected 200 with 1 attempt, got %d", path, st);
    json_decref(doc);
}

static void test_bad_filters_are_400_naming_the_parameter(void **state)
{
    static const struct {
        const char *path, *param;
    } cases[] = {
        {"/v1/jobs?status=exploded", "status"},
        {"/v1/jobs?queue=Bad%20Queue", "queue"},
        {"/v1/jobs?type=..%2F", "type"},
        {"/v1/jobs?since=yesterday", "since"},
        {"/v1/jobs?until=2026-02-30T00:00:00Z", "until"},
        {"/v1/jobs?limit=501", "limit"},
        {"/v1/jobs?limit=0", "limit"},
        {"/v1/jobs?limit=-1", "limit"},
        {"/v1/jobs?limit=ten", "limit"},
        {"/v1/jobs?cursor=not-a-cursor", "cursor"},
        {"/v1/jobs?cursor=MTIz", "cursor"},
        {"/v1/jobs?colour=red", "colour"},
        {"/v1/jobs?status=dead&status=failed", "status"},
        {"/v1/jobs?error=%zz", "error"},
        {"/v1/jobs?error=a%00b", "error"},
        {"/v1/jobs/not-a-uuid/attempts", "UUID"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_bad(cases[i].path, cases[i].param);
    /* The largest page is allowed. */
    json_t *doc = list(&keys[K_ADMIN], "/v1/jobs?limit=500");
    json_decref(doc);
}

static void test_listed_job_equals_get_job_and_attempts_are_ordered(void **state)
{
    char id[YARD_ID_TEXT_LEN + 1], path[128];
    insert_job(id, &keys[K_ALICE], "mail", "email.send", "dead", "<b>boom</b>", 7);
    yt_sql_exec(g.env,
                "UPDATE jobs SET attempts = 3, result = '{\"partial\":true}', trace_id = "
                "'0af7651916cd43dd8448eb211c80319c' WHERE id = '%s'", id);
    for (int n = 3; n >= 1; n--)
        yt_sql_exec(g.env,
                    "INSERT INTO job_attempts (job_id, attempt, started_at, finished_at, outcome,"
                    " error, worker, duration_ms) VALUES ('%s', %d, now(), now(), '%s', 'try %d',"
                    " 'host/1', %d)", id, n, n == 3 ? "dead" : "retry", n, n * 100);
    json_t *listed = list(&keys[K_ALICE], "/v1/jobs?queue=mail");
    expect_count(listed, "/v1/jobs?queue=mail", 1);
    json_t *one;
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    if (get_json(&keys[K_ALICE], path, &one) != 200)
        fail_msg("GET %s: expected 200", path);
    json_t *first = json_array_get(json_object_get(listed, "jobs"), 0);
    if (!json_equal(first, one))
        fail_msg("expected the listed job to equal GET %s:\n%.600s\n%.600s", path,
                 json_dumps(first, JSON_COMPACT), json_dumps(one, JSON_COMPACT));
    if (strcmp(json_string_value(json_object_get(one, "trace_id")),
               "0af7651916cd43dd8448eb211c80319c") != 0)
        fail_msg("GET %s: expected the trace id", path);
    json_decref(listed);
    json_decref(one);
    snprintf(path, sizeof path, "/v1/jobs/%s/attempts", id);
    json_t *doc;
    if (get_json(&keys[K_ALICE], path, &doc) != 200)
        fail_msg("GET %s: expected 200", path);
    json_t *attempts = json_object_get(doc, "attempts");
    if (json_array_size(attempts) != 3)
        fail_msg("GET %s: expected 3 attempts, got %zu", path, json_array_size(attempts));
    for (int n = 1; n <= 3; n++) {
        json_t *a = json_array_get(attempts, (size_t)n - 1);
        char want[16];
        snprintf(want, sizeof want, "try %d", n);
        if (json_integer_value(json_object_get(a, "attempt")) != n ||
            strcmp(json_string_value(json_object_get(a, "error")), want) != 0 ||
            json_integer_value(json_object_get(a, "duration_ms")) != n * 100)
            fail_msg("GET %s: expected attempt %d with error \"%s\" and %d ms first-to-last, "
                     "got %.300s", path, n, want, n * 100, json_dumps(a, JSON_COMPACT));
    }
    json_decref(doc);
    /* A job without attempts has an empty list; an unknown job is 404. */
    insert_job(id, &keys[K_ALICE], "mail", "email.send", "queued", NULL, 8);
    snprintf(path, sizeof path, "/v1/jobs/%s/attempts", id);
    if (get_json(&keys[K_ALICE], path, &doc) != 200 ||
        json_array_size(json_object_get(doc, "attempts")) != 0)
        fail_msg("GET %s: expected 200 with no attempts", path);
    json_decref(doc);
    if (get_json(&keys[K_ADMIN], "/v1/jobs/00000000-0000-7000-8000-000000000000/attempts",
                 &doc) != 404)
        fail_msg("expected 404 for the attempts of an unknown job");
    json_decref(doc);
}

static void test_whoami_names_the_key_and_its_scopes(void **state)
{
    json_t *doc;
    if (get_json(&keys[K_ALICE], "/v1/whoami", &doc) != 200)
        fail_msg("GET /v1/whoami: expected 200");
    char *text = json_dumps(doc, JSON_COMPACT);
    if (strcmp(json_string_value(json_object_get(doc, "key_id")), keys[K_ALICE].id) != 0 ||
        strcmp(json_string_value(json_object_get(doc, "name")), "alice") != 0 ||
        !strstr(text, "\"scopes\":[\"submit\",\"read\"]"))
        fail_msg("GET /v1/whoami as alice: expected her id, name and scopes, got %s", text);
    free(text);
    json_decref(doc);
    if (get_json(&keys[K_ADMIN], "/v1/whoami", &doc) != 200)
        fail_msg("GET /v1/whoami as admin: expected 200");
    text = json_dumps(json_object_get(doc, "scopes"), JSON_COMPACT);
    if (strcmp(text, "[\"submit\",\"read\",\"admin\"]") != 0)
        fail_msg("GET /v1/whoami as admin: expected every scope, got %s", text);
    free(text);
    json_decref(doc);
    if (yt_http_status(g.port, "/v1/whoami") != 401)
        fail_msg("GET /v1/whoami without a key: expected 401");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_filters_alone_and_combined, empty_jobs),
        cmocka_unit_test_setup(test_pages_stay_stable_while_jobs_arrive, empty_jobs),
        cmocka_unit_test_setup(test_a_key_sees_only_its_own_jobs, empty_jobs),
        cmocka_unit_test_setup(test_bad_filters_are_400_naming_the_parameter, empty_jobs),
        cmocka_unit_test_setup(test_listed_job_equals_get_job_and_attempts_are_ordered,
                               empty_jobs),
        cmocka_unit_test(test_whoami_names_the_key_and_its_scopes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
