/*
 * test_valgrind_e2e.c - a short end-to-end run of the gateway and an execute
 * worker under valgrind (memcheck): no definite leak, no memory error.
 *
 * Real nats-server and PostgreSQL; the gateway and the execute worker run
 * under `valgrind --leak-check=full`, the audit role normally. Jobs of the
 * built-in types (noop, echo, sleep, a failing one, an unknown type) and a
 * few bad requests go through; then both get SIGTERM, and each valgrind log
 * must report "definitely lost: 0 bytes" (or no leak at all) and
 * "ERROR SUMMARY: 0 errors".
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
#include <unistd.h>

#include "harness.h"
#include "log.h"
#include "yt_http.h"
#include "yt_workers.h"

#define START_WAIT_MS 90000

static struct {
    yt_env_t *env;
    pid_t gw, wk;
    int port, metrics_port;
    yt_worker_t audit;
    int asan; /* the programs are an AddressSanitizer build: nothing to run */
} g;

static pid_t spawn_under_valgrind(const char *name, const char *prog, char *const args[],
                                  char *const env[])
{
    char bin[400], log_opt[500];
    snprintf(bin, sizeof bin, "%s/%s", yt_bin_dir(), prog);
    snprintf(log_opt, sizeof log_opt, "--log-file=%s/%s.valgrind", g.env->dir, name);
    char *argv[24] = {"valgrind", "--leak-check=full", "--show-leak-kinds=definite",
                      "--errors-for-leak-kinds=definite", "--track-fds=no", log_opt, bin};
    size_t n = 7;
    for (size_t i = 0; args && args[i] && n < 23; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    return yt_spawn(g.env, name, argv, env);
}

static int wait_ok(int port, const char *path, pid_t pid)
{
    long long end = yt_now_ms() + START_WAIT_MS;
    while (yt_now_ms() < end) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid)
            return -1;
        if (yt_http_status(port, path) == 200)
            return 0;
        yt_nap_ms(200);
    }
    return -1;
}

/* Checks <dir>/<name>.valgrind: no definite leak, no error. */
static void check_log(const char *name)
{
    char path[400], line[512];
    int errors_ok = 0, leak_seen = 0, leak_ok = 0;
    snprintf(path, sizeof path, "%s/%s.valgrind", g.env->dir, name);
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("no valgrind log at %s", path);
    while (fgets(line, sizeof line, f)) {
        if (strstr(line, "ERROR SUMMARY: 0 errors"))
            errors_ok = 1;
        if (strstr(line, "definitely lost:")) {
            leak_seen = 1;
            leak_ok = strstr(line, "definitely lost: 0 bytes") != NULL;
        }
        if (strstr(line, "All heap blocks were freed"))
            leak_ok = leak_seen = 1;
    }
    fclose(f);
    if (!errors_ok || !leak_seen || !leak_ok) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "tail -n 60 '%s' >&2", path);
        if (system(cmd) != 0)
            fprintf(stderr, "(could not show %s)\n", path);
        fail_msg("%s under valgrind: %s", name,
                 !errors_ok ? "memory errors reported" : "definite leaks reported");
    }
    print_message("%s: no definite leak, no memory error under valgrind\n", name);
}

/* Whether the built gateway carries AddressSanitizer (`make asan`): valgrind
 * cannot run such a binary, and ASan checks that build instead. */
static int built_with_asan(void)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "readelf -d '%s/yard-gateway' 2>/dev/null | grep -q libasan",
             yt_bin_dir());
    return system(cmd) == 0;
}

static void test_gateway_and_worker_under_valgrind(void **state)
{
    if (g.asan) {
        print_message("the programs are built with AddressSanitizer: valgrind cannot run them "
                      "(this test runs on the normal build)\n");
        skip();
    }
    static const char *const jobs[] = {
        "{\"type\":\"noop\"}",
        "{\"type\":\"echo\",\"payload\":{\"a\":[1,2,3],\"b\":\"x\"}}",
        "{\"type\":\"sleep\",\"payload\":{\"ms\":20}}",
        "{\"type\":\"fail\",\"payload\":{\"retryable\":false,\"message\":\"no\"},\"max_attempts\":1}",
        "{\"type\":\"no-such-type\"}",
    };
    char ids[40][YT_JOB_ID_MAX];
    int n = 0;
    for (int round = 0; round < 8; round++)
        for (size_t i = 0; i < sizeof jobs / sizeof jobs[0]; i++) {
            int st = yt_job_submit(g.port, jobs[i], ids[n]);
            if (st != 202)
                fail_msg("%s: expected 202, got %d", jobs[i], st);
            n++;
        }
    char *batch = yt_batch_body("{\"type\":\"noop\"}", 50);
    char bids[50][YT_JOB_ID_MAX];
    size_t accepted = 0;
    assert_int_equal(yt_job_submit_batch(g.port, batch, bids, 50, &accepted), 202);
    free(batch);
    assert_int_equal((int)accepted, 50);
    /* Some bad requests take the error paths. */
    yt_http_resp_t r;
    static const char *const ct[] = {"Content-Type: application/json", NULL};
    assert_int_equal(yt_http_request(&r, g.port, "POST", "/v1/jobs", ct, "{bad", 4), 400);
    yt_http_resp_free(&r);
    assert_int_equal(yt_http_request(&r, g.port, "GET", "/v1/jobs/not-an-id", NULL, NULL, 0),
                     400);
    yt_http_resp_free(&r);
    /* Every job reaches a final state. */
    for (int i = 0; i < n; i++) {
        char got[64];
        long long end = yt_now_ms() + 60000;
        for (;;) {
            yt_job_status(g.port, ids[i], got, sizeof got);
            if (!strcmp(got, "succeeded") || !strcmp(got, "dead"))
                break;
            if (yt_now_ms() > end)
                fail_msg("job %s: not finished within 60 s (status %s)", ids[i], got);
            yt_nap_ms(100);
        }
    }
    assert_true(yt_kill_wait(g.gw, SIGTERM, 60000) >= 0);
    g.gw = 0;
    assert_true(yt_kill_wait(g.wk, SIGTERM, 60000) >= 0);
    g.wk = 0;
    check_log("gateway");
    check_log("worker");
}

static int setup(void **state)
{
    static char port_var[32], metrics_arg[16], nats_var[300], pg_var[600];
    yard_log_init("test_valgrind_e2e", YARD_LOG_ERROR);
    if ((g.asan = built_with_asan()))
        return 0;
    if (yt_env_create(&g.env, YT_NATS | YT_PG | YT_MIGRATE) != 0)
        return -1;
    g.port = yt_free_port();
    g.metrics_port = yt_free_port();
    snprintf(port_var, sizeof port_var, "YARD_HTTP_PORT=%d", g.port);
    snprintf(metrics_arg, sizeof metrics_arg, "%d", g.metrics_port);
    snprintf(nats_var, sizeof nats_var, "YARD_NATS_URL=%s", g.env->nats_url);
    snprintf(pg_var, sizeof pg_var, "YARD_PG_DSN=%s", g.env->pg_dsn);
    char *const env[] = {port_var, nats_var, pg_var, "YARD_AUTH_DISABLED=true",
                         "YARD_HTTP_ADDR=127.0.0.1", "YARD_LOG_LEVEL=warn",
                         "YARD_JS_PUBLISH_TIMEOUT_MS=20000", NULL};
    g.gw = spawn_under_valgrind("gateway", "yard-gateway", NULL, env);
    if (g.gw < 0 || wait_ok(g.port, "/healthz", g.gw) != 0) {
        yt_log_tail(g.env, "gateway");
        return -1;
    }
    char *const args[] = {"--role", "execute", "--metrics-port", metrics_arg, NULL};
    g.wk = spawn_under_valgrind("worker", "yard-worker", args, env);
    if (g.wk < 0 || wait_ok(g.metrics_port, "/readyz", g.wk) != 0) {
        yt_log_tail(g.env, "worker");
        return -1;
    }
    return yt_worker_start(&g.audit, g.env, "audit", NULL, NULL, 0);
}

static int teardown(void **state)
{
    if (g.asan)
        return 0;
    if (g.gw > 0)
        yt_kill_wait(g.gw, SIGKILL, 5000);
    if (g.wk > 0)
        yt_kill_wait(g.wk, SIGKILL, 5000);
    if (g.audit.pid > 0)
        yt_worker_stop(g.env, &g.audit, SIGTERM, 20000);
    yt_env_destroy(g.env);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gateway_and_worker_under_valgrind),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
