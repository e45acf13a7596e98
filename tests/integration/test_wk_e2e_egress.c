/*
 * test_wk_e2e_egress.c - the egress guard and the per-host circuit breaker
 * of the `http` job type end to end: the real gateway and execute workers,
 * real nats-server and PostgreSQL, and an HTTP server on 127.0.0.1
 * (yt_hook.h).
 *
 * Two execute workers serve two queues:
 *   default   YARD_EGRESS_ALLOW=127.0.0.1/32, redirects followed, circuit
 *             after 5 failures, 3 s cool-down;
 *   noallow   no allow-list (the defaults: redirects not followed).
 * Tests:
 *   - a job to 169.254.169.254 dies at its first attempt with the refusal
 *     (link-local) as its error;
 *   - a redirect from the allowed server to 169.254.169.254 is refused too:
 *     the redirect target is checked;
 *   - on noallow, a job to http://localhost:<port>/ (a name resolving to
 *     loopback) and one to 127.0.0.1 die with the refusal, and the server
 *     gets no request;
 *   - a host answering 500 opens its circuit after 5 failures: the next
 *     two jobs make no request for the cool-down (the server's count stays
 *     at 5, no attempt is recorded for them), yard_circuit_state says open;
 *     then the host is healed and one probe goes, at least a cool-down
 *     after the 5th failure, and both jobs succeed at their first attempt.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "yt_hook.h"
#include "yt_http.h"
#include "yt_workers.h"

#define COOLDOWN_MS 3000

static struct {
    yt_cluster_t c;
    yt_hook_t *hook;
    yt_worker_t noallow;
    atomic_int healed;
} g;

static yt_hook_answer_t answer(void *ud, const char *path, int hit)
{
    if (!strcmp(path, "/redirect"))
        return (yt_hook_answer_t){302, "http://169.254.169.254/latest/meta-data/"};
    if (!strcmp(path, "/down"))
        return (yt_hook_answer_t){atomic_load(&g.healed) ? 200 : 500, NULL};
    return (yt_hook_answer_t){200, NULL};
}

static int setup(void **state)
{
    yard_log_init("test_wk_e2e_egress", YARD_LOG_ERROR);
    char *cluster_env[] = {"YARD_JS_QUEUES=default,noallow", NULL};
    if (yt_cluster_start(&g.c, cluster_env) != 0 || yt_hook_start(&g.hook, answer, NULL) != 0)
        return -1;
    char *allowed_env[] = {"YARD_EGRESS_ALLOW=127.0.0.1/32", "YARD_EGRESS_FOLLOW_REDIRECTS=1",
                           "YARD_CIRCUIT_FAILURES=5", "YARD_CIRCUIT_COOLDOWN_S=3",
                           "YARD_RETRY_BASE_MS=100", "YARD_RETRY_CAP_MS=200", NULL};
    char *plain_env[] = {"YARD_RETRY_BASE_MS=100", NULL};
    if (yt_worker_start(&g.c.exec, g.c.env, "execute", "default", allowed_env, 0) != 0)
        return -1;
    return yt_worker_start(&g.noallow, g.c.env, "execute", "noallow", plain_env, 0);
}

static int teardown(void **state)
{
    yt_cluster_stop_worker(&g.c, &g.noallow);
    yt_cluster_stop(&g.c);
    yt_hook_stop(g.hook);
    return 0;
}

/* ---- helpers -------------------------------------------------------------------- */

static void submit_http(const char *queue, const char *url, int max_attempts,
                        char id[YT_JOB_ID_MAX])
{
    char body[512];
    snprintf(body, sizeof body,
             "{\"type\":\"http\",\"queue\":\"%s\",\"max_attempts\":%d,\"payload\":{\"url\":\"%s\"}}",
             queue, max_attempts, url);
    int st = yt_job_submit(g.c.port, body, id);
    if (st != 202)
        fail_msg("%s: expected 202, got %d", body, st);
}

static void wait_status(const char *id, const char *want, int timeout_ms)
{
    char got[64];
    if (yt_job_wait_status(g.c.port, id, want, timeout_ms, got, sizeof got) != 0) {
        yt_worker_log_tail(g.c.env, &g.c.exec);
        fail_msg("job %s: expected status %s within %d ms, got %s", id, want, timeout_ms, got);
    }
}

/* Expects job id's attempts to read want ("1:failed") and its last error to
 * hold each of the NULL-terminated fragments. */
static void expect_job(const char *id, const char *want_attempts, const char *const *fragments)
{
    char attempts[256], error[1024];
    yt_sql_text(g.c.env, attempts, sizeof attempts,
                "SELECT coalesce(string_agg(attempt || ':' || outcome, ',' ORDER BY attempt), '')"
                " FROM job_attempts WHERE job_id = '%s'", id);
    yt_sql_text(g.c.env, error, sizeof error,
                "SELECT coalesce(last_error, '') FROM jobs WHERE id = '%s'", id);
    if (strcmp(attempts, want_attempts) != 0)
        fail_msg("job %s: expected attempts `%s`, got `%s` (error: %s)", id, want_attempts,
                 attempts, error);
    for (; fragments && *fragments; fragments++)
        if (!strstr(error, *fragments))
            fail_msg("job %s: expected its error to say `%s`, got `%s`", id, *fragments, error);
}

/* The value of the sample `name{host="<host>"}` on the default worker's
 * /metrics, or -1 when absent. */
static double metric(const char *name, const char *host)
{
    yt_http_resp_t resp = {0};
    char key[256];
    double v = -1;
    snprintf(key, sizeof key, "%s{host=\"%s\"} ", name, host);
    if (yt_http_request(&resp, g.c.exec.metrics_port, "GET", "/metrics", NULL, NULL, 0) == 200) {
        const char *p = strstr(resp.body, key);
        if (p)
            v = strtod(p + strlen(key), NULL);
    }
    yt_http_resp_free(&resp);
    return v;
}

/* ---- tests ------------------------------------------------------------------------ */

static void test_metadata_address_refused(void **state)
{
    char id[YT_JOB_ID_MAX];
    submit_http("default", "http://169.254.169.254/latest/meta-data/", 3, id);
    wait_status(id, "dead", 20000);
    expect_job(id, "1:failed",
               (const char *const[]){"egress refused: 169.254.169.254 is link-local", NULL});
}

static void test_redirect_target_checked(void **state)
{
    char id[YT_JOB_ID_MAX], url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/redirect", yt_hook_port(g.hook));
    submit_http("default", url, 3, id);
    wait_status(id, "dead", 20000);
    expect_job(id, "1:failed",
               (const char *const[]){"egress refused: 169.254.169.254 is link-local", NULL});
    if (yt_hook_count(g.hook, "/redirect") != 1)
        fail_msg("/redirect: expected 1 request (the allowed first hop), got %d",
                 yt_hook_count(g.hook, "/redirect"));
}

static void test_loopback_names_refused_without_allow_list(void **state)
{
    char by_name[YT_JOB_ID_MAX], by_addr[YT_JOB_ID_MAX], url[128];
    snprintf(url, sizeof url, "http://localhost:%d/secret", yt_hook_port(g.hook));
    submit_http("noallow", url, 3, by_name);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/secret", yt_hook_port(g.hook));
    submit_http("noallow", url, 3, by_addr);
    wait_status(by_name, "dead", 20000);
    wait_status(by_addr, "dead", 20000);
    /* localhost resolves to 127.0.0.1 and/or ::1: either refusal is right. */
    expect_job(by_name, "1:failed", (const char *const[]){"egress refused: ", "is loopback", NULL});
    expect_job(by_addr, "1:failed",
               (const char *const[]){"egress refused: 127.0.0.1 is loopback", NULL});
    if (yt_hook_count(g.hook, "/secret") != 0)
        fail_msg("/secret: expected no request, got %d", yt_hook_count(g.hook, "/secret"));
}

static void test_circuit_opens_after_5_failures_then_probes(void **state)
{
    char first[YT_JOB_ID_MAX], next1[YT_JOB_ID_MAX], next2[YT_JOB_ID_MAX], url[128], host[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/down", yt_hook_port(g.hook));
    snprintf(host, sizeof host, "127.0.0.1:%d", yt_hook_port(g.hook));
    submit_http("default", url, 5, first);
    wait_status(first, "dead", 20000);
    assert_int_equal(yt_hook_count(g.hook, "/down"), 5);
    yt_hook_req_t fifth;
    assert_int_equal(yt_hook_get(g.hook, "/down", 4, &fifth), 0);

    /* Open: the next jobs make no request and spend no attempt. */
    submit_http("default", url, 5, next1);
    submit_http("default", url, 5, next2);
    yt_nap_ms(1000);
    if (yt_hook_count(g.hook, "/down") != 5) {
        yt_worker_log_tail(g.c.env, &g.c.exec);
        fail_msg("/down: expected no request while the circuit is open, got %d in all",
                 yt_hook_count(g.hook, "/down"));
    }
    long long attempts = yt_sql_int(g.c.env,
                                    "SELECT count(*) FROM job_attempts WHERE job_id IN ('%s','%s')",
                                    next1, next2);
    if (attempts != 0)
        fail_msg("expected no attempt recorded while the circuit is open, got %lld", attempts);
    double state_now = metric("yard_circuit_state", host);
    double opened = metric("yard_circuit_opened_total", host);
    if (state_now != 1 || opened != 1)
        fail_msg("metrics for %s: expected yard_circuit_state 1 and opened_total 1, got %g and %g",
                 host, state_now, opened);

    /* Healed: after the cool-down one probe goes; its success closes the
     * circuit and the other job follows. */
    atomic_store(&g.healed, 1);
    wait_status(next1, "succeeded", 20000);
    wait_status(next2, "succeeded", 20000);
    expect_job(next1, "1:succeeded", NULL);
    expect_job(next2, "1:succeeded", NULL);
    assert_int_equal(yt_hook_count(g.hook, "/down"), 7);
    yt_hook_req_t probe;
    assert_int_equal(yt_hook_get(g.hook, "/down", 5, &probe), 0);
    if (probe.at_ms - fifth.at_ms < COOLDOWN_MS - 100)
        fail_msg("the probe came %lld ms after the 5th failure; expected the %d ms cool-down",
                 probe.at_ms - fifth.at_ms, COOLDOWN_MS);
    if (metric("yard_circuit_state", host) != 0)
        fail_msg("yard_circuit_state{host=\"%s\"}: expected 0 (closed) after the probe", host);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metadata_address_refused),
        cmocka_unit_test(test_redirect_target_checked),
        cmocka_unit_test(test_loopback_names_refused_without_allow_list),
        cmocka_unit_test(test_circuit_opens_after_5_failures_then_probes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
