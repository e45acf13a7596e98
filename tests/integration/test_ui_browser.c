/*
 * test_ui_browser.c - the web console in a real headless Chromium against
 * the real gateway (auth on), execute and audit workers, nats-server and
 * PostgreSQL.
 *
 * This file makes the world (keys by yardctl, jobs through the API that the
 * execute worker runs to their end) and then runs ui_browser.py, which
 * drives Chromium through chromedriver (python3-selenium) and checks: sign
 * in; find a failed job by its error text and share the link; its attempts,
 * durations and trace id; an HTML/script error shown as text with nothing
 * run; a read-only key sees no cancel or replay button and the API refuses
 * it (403); replay of a dead letter with a confirmation, then the job
 * succeeds; a real workflow (a diamond with a dead branch) drawn as a
 * layered graph with each step's state, and a real schedule with its next
 * fire time (the schedule role runs too); no request leaves for another
 * host. The script's output is printed, bounded.
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
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "log.h"
#include "yt_http.h"
#include "yt_keys.h"
#include "yt_workers.h"

#define PYTHON "/usr/bin/python3" /* Debian's, which has python3-selenium */
#define BROWSER_TIMEOUT_S 240

enum { K_ADMIN, K_USER, K_READER, K_COUNT };
static yt_key_t keys[K_COUNT] = {
    [K_ADMIN] = {.name = "ops", .scopes = "admin"},
    [K_USER] = {.name = "user", .scopes = "submit,read"},
    [K_READER] = {.name = "reader", .scopes = "read"},
};

static yt_cluster_t c;

/* POSTs a job as key k; copies its id. Fails the test unless 202. */
static void submit(const yt_key_t *k, const char *body, char id[YT_JOB_ID_MAX])
{
    yt_http_resp_t r;
    const char *headers[] = {k->auth, "Content-Type: application/json", NULL};
    int st = yt_http_request(&r, c.port, "POST", "/v1/jobs", headers, body, strlen(body));
    json_t *doc = st == 202 ? json_loadb(r.body, r.body_len, 0, NULL) : NULL;
    const char *s = json_string_value(json_object_get(doc, "id"));
    if (st != 202 || !s)
        fail_msg("POST /v1/jobs %s: expected 202 with an id, got %d: %s", body, st,
                 yt_http_body_excerpt(&r));
    snprintf(id, YT_JOB_ID_MAX, "%s", s);
    json_decref(doc);
    yt_http_resp_free(&r);
}

static void wait_status(const char *id, const char *want)
{
    if (yt_wait_sql(c.env, 1, 60000, "SELECT count(*) FROM jobs WHERE id = '%s' AND status = '%s'",
                    id, want) != 1) {
        yt_worker_log_tail(c.env, &c.exec);
        fail_msg("expected job %s to become %s within 60 s", id, want);
    }
}

/* An exec job type that fails until a switch file exists: dead at first,
 * it succeeds once replayed after the browser script creates the file. */
static char switch_path[300], exec_env[340];

static int write_flaky_type(void)
{
    char script[300], conf[300];
    snprintf(switch_path, sizeof switch_path, "%s/flaky.ok", c.env->dir);
    snprintf(script, sizeof script, "%s/flaky.sh", c.env->dir);
    snprintf(conf, sizeof conf, "%s/exec.conf", c.env->dir);
    FILE *f = fopen(script, "w");
    if (!f)
        return -1;
    fprintf(f, "#!/bin/sh\nif [ -e %s ]; then echo '{\"ok\":true}'; exit 0; fi\n"
               "echo 'flaky: the switch file is missing' >&2\nexit 1\n", switch_path);
    fclose(f);
    chmod(script, 0755);
    if (!(f = fopen(conf, "w")))
        return -1;
    fprintf(f, "[flaky]\npath = %s\n", script);
    fclose(f);
    snprintf(exec_env, sizeof exec_env, "YARD_EXEC_CONFIG=%s", conf);
    return 0;
}

static int setup(void **state)
{
    static char *const extra[] = {"YARD_RETRY_BASE_MS=200", NULL};
    yard_log_init("test_ui_browser", YARD_LOG_ERROR);
    if (access("/usr/bin/chromium", X_OK) != 0 || access("/usr/bin/chromedriver", X_OK) != 0 ||
        system(PYTHON " -c 'import selenium' 2>/dev/null") != 0) {
        fprintf(stderr, "test_ui_browser: chromium, chromium-driver and python3-selenium are "
                        "needed (run ops/install-deps.sh)\n");
        return -1;
    }
    if (yt_auth_cluster_start(&c, keys, K_COUNT, extra) != 0 || write_flaky_type() != 0)
        return -1;
    char *const exec_extra[] = {"YARD_RETRY_BASE_MS=200", exec_env, NULL};
    /* The schedule role releases workflow steps (the workflow page's graph). */
    if (yt_worker_start(&c.sched, c.env, "schedule", NULL, extra, 0) != 0)
        return -1;
    return yt_worker_start(&c.exec, c.env, "execute", NULL, exec_extra, 0);
}

static int teardown(void **state)
{
    yt_cluster_stop(&c);
    return 0;
}

static void test_console_in_chromium(void **state)
{
    char quota[YT_JOB_ID_MAX], xss[YT_JOB_ID_MAX], ok[YT_JOB_ID_MAX], flaky[YT_JOB_ID_MAX];
    char reader_job[YT_JOB_ID_MAX] = "0195a1f0-0000-7000-8000-00000000beef";
    submit(&keys[K_USER], "{\"type\":\"noop\"}", ok);
    submit(&keys[K_USER],
           "{\"type\":\"fail\",\"max_attempts\":2,\"payload\":{\"retryable\":true,"
           "\"message\":\"disk quota exceeded on volume 7\"}}",
           quota);
    submit(&keys[K_USER],
           "{\"type\":\"fail\",\"payload\":{\"message\":\"<img src=x onerror=\\\"window.__xss=1;"
           "document.title='pwned'\\\"><script>window.__xss=2</script> boom\"}}",
           xss);
    submit(&keys[K_USER], "{\"type\":\"flaky\",\"max_attempts\":1}", flaky);
    wait_status(ok, "succeeded");
    wait_status(flaky, "dead");
    wait_status(quota, "dead");
    wait_status(xss, "dead");
    /* A queued job of the read-only key (it cannot submit one), in a queue
     * no worker serves. */
    if (yt_sql_exec(c.env,
                    "INSERT INTO jobs (id, queue, type, status, max_attempts, timeout_s,"
                    " api_key_id) VALUES ('%s', 'parked', 'noop', 'queued', 1, 30, '%s')",
                    reader_job, keys[K_READER].id) != 0)
        fail_msg("expected the reader's job row to insert");

    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", c.port);
    char script[300];
    snprintf(script, sizeof script, "%s/tests/integration/ui_browser.py", yt_src_dir());
    char *const argv[] = {PYTHON, script, "--url", url, "--admin-key", keys[K_ADMIN].key,
                          "--user-key", keys[K_USER].key, "--reader-key", keys[K_READER].key,
                          "--quota-job", quota, "--xss-job", xss, "--reader-job", reader_job,
                          "--flaky-job", flaky, "--flaky-switch", switch_path, NULL};
    int rc = yt_script_run(c.env, "ui_browser", argv, BROWSER_TIMEOUT_S);
    if (rc != 0) {
        yt_log_tail(c.env, "gateway");
        fail_msg("expected ui_browser.py to pass every check, it exited %d (its output above)",
                 rc);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_console_in_chromium),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
