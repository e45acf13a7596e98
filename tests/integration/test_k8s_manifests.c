/*
 * test_k8s_manifests.c - the Kubernetes manifests (ops/k8s/) and the
 * Dockerfile agree with the real programs. It starts nats-server and an
 * empty PostgreSQL database and runs ops/k8s/check.py against them (what it
 * checks is listed at its top: yamllint, security context and resources, the
 * migration Job really migrating, each Deployment's program started with its
 * command, flags and settings and answering its probes, each KEDA trigger
 * naming a consumer the programs created, selectors, the Helm values, the
 * Dockerfile's packages):
 *   1. the manifests as shipped pass every check;
 *   2. a copy with five mistakes fails, naming each: a KEDA consumer no
 *      program creates, a readiness probe on a route the gateway does not
 *      serve, a flag yard-worker does not take, a setting that does not
 *      exist, a command the image does not hold.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "harness.h"

#define OUT_MAX (64 * 1024)
#define PRINT_MAX 6000 /* of the checker's output, on failure */

static struct {
    yt_env_t *env;
    char out[OUT_MAX];
} g;

static int group_setup(void **state)
{
    return yt_env_create(&g.env, YT_NATS | YT_PG) == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
    yt_env_destroy(g.env);
    return 0;
}

/* Runs the checker on the manifests in dir (NULL: ops/k8s as shipped);
 * its output goes to g.out. Returns its exit code, or -1. */
static int run_checker(const char *dir)
{
    char cmd[4096], dir_arg[600] = "";
    if (dir)
        snprintf(dir_arg, sizeof dir_arg, " --dir '%s'", dir);
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 '%s/ops/k8s/check.py' --bin '%s' --nats-url '%s' "
             "--nats-monitor %d --pg-dsn '%s' --work '%s'%s 2>&1",
             yt_src_dir(), yt_bin_dir(), g.env->nats_url, g.env->nats_mon_port, g.env->pg_dsn,
             g.env->dir, dir_arg);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    size_t n = fread(g.out, 1, OUT_MAX - 1, p);
    g.out[n] = '\0';
    char sink[4096];
    while (fread(sink, 1, sizeof sink, p) > 0)
        ;
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The last PRINT_MAX bytes of the checker's output. */
static const char *out_tail(void)
{
    size_t n = strlen(g.out);
    return n > PRINT_MAX ? g.out + n - PRINT_MAX : g.out;
}

static void test_shipped_manifests_pass(void **state)
{
    int rc = run_checker(NULL);
    if (rc != 0)
        fail_msg("expected ops/k8s/check.py to pass on the shipped manifests (exit 0), got "
                 "exit %d:\n%s", rc, out_tail());
    if (!strstr(g.out, " checks, 0 failed"))
        fail_msg("expected the checker's summary `N checks, 0 failed`, got:\n%s", out_tail());
    /* Its notes (what was checked statically only) and summary. */
    size_t n = strlen(g.out);
    fprintf(stderr, "ops/k8s/check.py:\n%s", n > 1500 ? g.out + n - 1500 : g.out);
}

/* Replaces the first `from` in file dir/name with `to`. */
static void edit(const char *dir, const char *name, const char *from, const char *to)
{
    char path[700], buf[32768], copy[33000];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("expected to read %s: %s", path, strerror(errno));
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *at = strstr(buf, from);
    if (!at)
        fail_msg("expected `%s` in %s (the test edits it)", from, path);
    snprintf(copy, sizeof copy, "%.*s%s%s", (int)(at - buf), buf, to, at + strlen(from));
    f = fopen(path, "w");
    if (!f || fputs(copy, f) < 0 || fclose(f) != 0)
        fail_msg("expected to write %s", path);
}

static void expect_failure_line(const char *needle, const char *what)
{
    for (const char *p = strstr(g.out, "FAIL: "); p; p = strstr(p + 1, "FAIL: ")) {
        size_t len = strcspn(p, "\n");
        const char *hit = strstr(p, needle);
        if (hit && hit < p + len)
            return;
    }
    fail_msg("expected the checker to report %s (a FAIL line with `%s`), got:\n%s", what, needle,
             out_tail());
}

static void test_broken_manifests_fail(void **state)
{
    char dir[400], cmd[1200];
    snprintf(dir, sizeof dir, "%s/k8s-broken", g.env->dir);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s/ops/k8s' '%s'", dir, yt_src_dir(), dir);
    assert_int_equal(system(cmd), 0);
    edit(dir, "worker-execute-default.yaml", "consumer: \"execute_default\"",
         "consumer: \"execute_defualt\"");
    edit(dir, "gateway.yaml", "path: /readyz", "path: /ready");
    edit(dir, "worker-audit.yaml", "\"--metrics-port\"", "\"--metrics-prot\"");
    edit(dir, "config.yaml", "YARD_WORKER_CONCURRENCY:", "YARD_WORKER_CONCURENCY:");
    edit(dir, "worker-schedule.yaml", "/usr/local/bin/yard-worker", "/usr/local/bin/yard-wrker");

    int rc = run_checker(dir);
    if (rc != 1)
        fail_msg("expected the checker to fail (exit 1) on the broken copy, got exit %d:\n%s", rc,
                 out_tail());
    expect_failure_line("execute_defualt, which the programs did not create",
                        "the KEDA consumer no program creates");
    expect_failure_line("GET /ready answered 404", "the probe on a route the gateway lacks");
    expect_failure_line("--metrics-prot", "the flag yard-worker does not take");
    expect_failure_line("YARD_WORKER_CONCURENCY is not a setting", "the unknown setting");
    expect_failure_line("/usr/local/bin/yard-wrker is not a program the Dockerfile installs",
                        "the command the image lacks");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shipped_manifests_pass),
        cmocka_unit_test(test_broken_manifests_fail),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
