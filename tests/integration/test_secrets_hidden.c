/*
 * test_secrets_hidden.c - no secret reaches a printed config or a log line.
 *
 * The gateway, an execute worker and yardctl get a NATS URL with a
 * password, a PostgreSQL DSN with a quoted password holding spaces (and an
 * sslpassword), and an id secret. --print-config of each, and the logs of
 * a gateway and a worker that lived through a NATS outage (their
 * "not reachable" and "reconnected" lines name the server), must not
 * contain any of the secret values. And a gateway asked to run without API
 * keys on a non-loopback address refuses to start.
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

#define NATS_PASS "natsPASS7731"
#define PG_PASS "pg PASS 4456"
#define SSL_PASS "sslPASS8812"
#define ID_SECRET "idSECRET9923"
/* A private key for jobs' sealed secrets (32 bytes 0x01..0x20). */
#define SEALED_KEY "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA="

static const char *const secrets[] = {NATS_PASS, "PASS 4456", SSL_PASS, ID_SECRET, SEALED_KEY};

static struct {
    yt_env_t *env;
    char nats_url[400], pg_dsn[700], id_secret[64];
} g;

/* Reads <dir>/<name>.log (malloc'd, NUL-terminated) or NULL. */
static char *read_log(const char *name)
{
    char path[400];
    snprintf(path, sizeof path, "%s/%s.log", g.env->dir, name);
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    size_t got = buf ? fread(buf, 1, (size_t)n, f) : 0;
    fclose(f);
    if (buf)
        buf[got] = '\0';
    return buf;
}

static void assert_no_secret(const char *what, const char *text)
{
    for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++) {
        const char *hit = strstr(text, secrets[i]);
        if (hit) {
            const char *line = hit;
            while (line > text && line[-1] != '\n')
                line--;
            const char *end = strchr(hit, '\n');
            fail_msg("%s shows the secret `%s`: %.*s", what, secrets[i],
                     (int)(end ? end - line : (long)strlen(line)), line);
        }
    }
}

/* Runs program with args and the secret-laden settings, waits for it, and
 * returns what it printed (malloc'd) and its exit status. */
static char *run(const char *name, char *const argv[], int *status, char *const more_env[])
{
    char *env[8];
    size_t n = 0;
    env[n++] = g.nats_url;
    env[n++] = g.pg_dsn;
    env[n++] = g.id_secret;
    for (size_t i = 0; more_env && more_env[i] && n < 7; i++)
        env[n++] = more_env[i];
    env[n] = NULL;
    pid_t pid = yt_spawn(g.env, name, argv, env);
    assert_true(pid > 0);
    *status = yt_kill_wait(pid, 0, 20000);
    if (*status < 0) {
        yt_kill_wait(pid, SIGKILL, 5000);
        fail_msg("%s did not finish in 20 s", name);
    }
    char *out = read_log(name);
    assert_non_null(out);
    return out;
}

static void test_print_config_hides_secrets(void **state)
{
    char gw[300], wk[300], ctl[300];
    snprintf(gw, sizeof gw, "%s/yard-gateway", yt_bin_dir());
    snprintf(wk, sizeof wk, "%s/yard-worker", yt_bin_dir());
    snprintf(ctl, sizeof ctl, "%s/yardctl", yt_bin_dir());
    char *const a_gw[] = {gw, "--print-config", NULL};
    char *const a_wk[] = {wk, "--role", "execute", "--print-config", NULL};
    char *const a_ctl[] = {ctl, "--print-config", NULL};
    struct {
        const char *name;
        char *const *argv;
    } progs[] = {{"print-gateway", a_gw}, {"print-worker", a_wk}, {"print-yardctl", a_ctl}};
    for (size_t i = 0; i < sizeof progs / sizeof progs[0]; i++) {
        int st;
        char *const more[] = {"YARD_SECRETS_PRIVATE_KEYS=" SEALED_KEY, NULL};
        char *out = run(progs[i].name, progs[i].argv, &st, more);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            fail_msg("%s --print-config failed: %s", progs[i].name, out);
        if (!strstr(out, "nats_url") || !strstr(out, "pg_dsn") ||
            !strstr(out, "secrets_private_keys"))
            fail_msg("%s --print-config shows no nats_url/pg_dsn/secrets_private_keys: %s",
                     progs[i].name, out);
        /* The non-secret parts stay, so an operator sees where it connects. */
        if (!strstr(out, "nats://yard:***@127.0.0.1"))
            fail_msg("%s --print-config: expected the NATS URL with its password masked: %s",
                     progs[i].name, out);
        assert_no_secret(progs[i].name, out);
        free(out);
    }
}

static void test_logs_through_an_outage_hide_secrets(void **state)
{
    int port;
    yt_worker_t w;
    char *const extra[] = {g.nats_url, g.pg_dsn, g.id_secret, "YARD_LOG_LEVEL=debug", NULL};
    pid_t gw = yt_gateway_start(g.env, &port, extra);
    assert_true(gw > 0);
    assert_int_equal(yt_worker_start(&w, g.env, "execute", "default", extra, 0), 0);
    /* A NATS outage makes both log the server they try to reach. */
    assert_int_equal(yt_nats_stop(g.env), 0);
    sleep(3);
    assert_int_equal(yt_nats_start(g.env), 0);
    sleep(3);
    assert_true(yt_kill_wait(gw, SIGTERM, 15000) >= 0);
    yt_worker_stop(g.env, &w, SIGTERM, 15000);
    char *log = read_log("gateway");
    assert_non_null(log);
    if (!strstr(log, "reconnected") && !strstr(log, "disconnected"))
        fail_msg("the gateway's log does not show the NATS outage; the test proves nothing");
    assert_no_secret("the gateway's log", log);
    free(log);
    log = read_log(w.name);
    assert_non_null(log);
    assert_no_secret("the worker's log", log);
    free(log);
}

static void test_auth_disabled_refused_off_loopback(void **state)
{
    char gw[300];
    snprintf(gw, sizeof gw, "%s/yard-gateway", yt_bin_dir());
    char *const argv[] = {gw, NULL};
    char *const more[] = {"YARD_AUTH_DISABLED=true", "YARD_HTTP_ADDR=0.0.0.0",
                          "YARD_HTTP_PORT=0", NULL};
    int st;
    char *out = run("gateway-open", argv, &st, more);
    if (!WIFEXITED(st) || WEXITSTATUS(st) == 0)
        fail_msg("a gateway without API keys on 0.0.0.0 started (status %d): %s", st, out);
    if (!strstr(out, "auth_disabled is refused"))
        fail_msg("the refusal does not say why: %s", out);
    free(out);
}

static int setup(void **state)
{
    yard_log_init("test_secrets_hidden", YARD_LOG_ERROR);
    if (yt_env_create(&g.env, YT_NATS | YT_PG | YT_MIGRATE) != 0)
        return -1;
    snprintf(g.nats_url, sizeof g.nats_url, "YARD_NATS_URL=nats://yard:" NATS_PASS "@127.0.0.1:%d",
             g.env->nats_port);
    snprintf(g.pg_dsn, sizeof g.pg_dsn,
             "YARD_PG_DSN=%s password='" PG_PASS "' sslpassword=" SSL_PASS, g.env->pg_dsn);
    snprintf(g.id_secret, sizeof g.id_secret, "YARD_ID_SECRET=" ID_SECRET);
    return 0;
}

static int teardown(void **state)
{
    yt_env_destroy(g.env);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_print_config_hides_secrets),
        cmocka_unit_test(test_logs_through_an_outage_hide_secrets),
        cmocka_unit_test(test_auth_disabled_refused_off_loopback),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
