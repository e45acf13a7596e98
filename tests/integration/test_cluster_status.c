/*
 * test_cluster_status.c - `make status` (ops/cluster.sh status) tells the
 * truth about the local cluster. The real script starts the real cluster
 * (nats-server, PostgreSQL, the gateway, one worker per role) in the test's
 * folder on free loopback ports, then:
 *   1. status lists nats, postgres, the gateway and every worker, each with
 *      the PID of its pid file, `alive`, its ports (the workers' metrics
 *      ports base, base + 1, ...) and `ready`, and exits 0, also when the
 *      YARD_UP_* variables of `up` are gone (it reads what `up` recorded);
 *   2. a worker killed with SIGKILL shows `dead` and status exits 3;
 *   3. after `down` every row is `stopped` and status exits 3.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define OUT_MAX 8192
/* The roles ops/cluster.sh starts, in its order (metrics port base + i). */
static const char *const roles[] = {"execute", "schedule", "audit"};
#define NROLES (sizeof roles / sizeof roles[0])

static struct {
    yt_env_t *env; /* only the folder: the script starts the servers */
    char data[400];
    int metrics_base;
    int up;
} g;

/* Runs `ops/cluster.sh cmd` with the cluster's data folder; its output
 * (stdout and stderr, cut to OUT_MAX) goes to out. Returns its exit code,
 * or -1 if it did not exit normally. */
static int cluster_sh(const char *cmd, char out[OUT_MAX])
{
    char line[1024];
    snprintf(line, sizeof line, "bash %s/ops/cluster.sh %s 2>&1", yt_src_dir(), cmd);
    FILE *p = popen(line, "r");
    if (!p) {
        snprintf(out, OUT_MAX, "popen failed");
        return -1;
    }
    size_t n = fread(out, 1, OUT_MAX - 1, p);
    out[n] = '\0';
    while (fread(line, 1, sizeof line, p) > 0)
        ; /* drain the rest, so the script does not block */
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Copies the script's pid files into the test's folder, where tests/run.sh
 * looks for leftovers if this test dies before `down`. */
static void register_pids(void)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd,
             "for f in %s/run/*.pid; do cp \"$f\" \"%s/cluster-$(basename \"$f\")\"; done",
             g.data, g.env->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not copy the cluster's pid files\n");
}

/* Nonzero if 127.0.0.1:port can be bound now. */
static int port_free(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), ok;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0)
        return 0;
    ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

/* A base port with NROLES free ports from it (the workers' metrics ports),
 * or -1. May race with another program, like yt_free_port. */
static int free_port_run(void)
{
    for (int tries = 0; tries < 100; tries++) {
        int base = yt_free_port(), ok = base > 0 && base + (int)NROLES < 65536;
        for (size_t i = 1; ok && i < NROLES; i++)
            ok = port_free(base + (int)i);
        if (ok)
            return base;
    }
    return -1;
}

static void set_port(const char *var, int port)
{
    char v[16];
    snprintf(v, sizeof v, "%d", port);
    setenv(var, v, 1);
}

static int setup(void **state)
{
    char out[OUT_MAX];
    if (yt_env_create(&g.env, 0) != 0)
        return -1;
    snprintf(g.data, sizeof g.data, "%s/yard", g.env->dir);
    setenv("YARD_DATA_DIR", g.data, 1);
    setenv("YARD_BIN", yt_bin_dir(), 1);
    /* Free ports, and metrics ports from a base with NROLES free ones. */
    set_port("YARD_UP_HTTP_PORT", yt_free_port());
    set_port("YARD_UP_NATS_PORT", yt_free_port());
    set_port("YARD_UP_NATS_MON_PORT", yt_free_port());
    set_port("YARD_UP_PG_PORT", yt_free_port());
    g.metrics_base = free_port_run();
    if (g.metrics_base < 0)
        return -1;
    set_port("YARD_UP_METRICS_PORT_BASE", g.metrics_base);
    unsetenv("YARD_API_KEY");
    unsetenv("YARD_ID_SECRET");
    int rc = cluster_sh("up", out);
    g.up = 1;
    register_pids();
    if (rc != 0) {
        fprintf(stderr, "expected `cluster.sh up` to exit 0, got %d:\n%s\n", rc, out);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    char out[OUT_MAX];
    if (g.up && cluster_sh("down", out) != 0)
        fprintf(stderr, "cluster.sh down:\n%s\n", out);
    yt_env_destroy(g.env);
    return 0;
}

/* The line of status output whose first word is name, copied into line
 * (cap bytes); 0, or -1 when there is none. */
static int status_row(const char *out, const char *name, char *line, size_t cap)
{
    size_t nl = strlen(name);
    for (const char *p = out; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, name, nl) == 0 && p[nl] == ' ') {
            size_t len = strcspn(p, "\n");
            snprintf(line, cap, "%.*s", (int)len, p);
            return 0;
        }
    }
    return -1;
}

/* The PID in <data>/run/<name>.pid, or -1. */
static long pid_file(const char *name)
{
    char path[500];
    long pid = -1;
    snprintf(path, sizeof path, "%s/run/%s.pid", g.data, name);
    FILE *f = fopen(path, "r");
    if (f) {
        if (fscanf(f, "%ld", &pid) != 1)
            pid = -1;
        fclose(f);
    }
    return pid;
}

/* Checks that name's row says: its pid file's PID, state, the port text
 * (may be NULL) and readiness ready (a prefix: "ready", "-"). */
static void expect_row(const char *out, const char *name, const char *state, const char *port,
                       const char *ready)
{
    char line[512], want_pid[32] = "-";
    char got_name[64], got_pid[32], got_state[32];
    if (status_row(out, name, line, sizeof line) != 0)
        fail_msg("expected a status row for %s, got:\n%s", name, out);
    if (sscanf(line, "%63s %31s %31s", got_name, got_pid, got_state) != 3)
        fail_msg("expected `NAME PID STATE PORTS READY` for %s, got `%s`", name, line);
    long pid = pid_file(name);
    if (pid > 0)
        snprintf(want_pid, sizeof want_pid, "%ld", pid);
    if (strcmp(got_pid, want_pid) != 0)
        fail_msg("%s: expected PID %s (its pid file), got `%s`", name, want_pid, line);
    if (strcmp(got_state, state) != 0)
        fail_msg("%s: expected state %s, got `%s`", name, state, line);
    if (port && !strstr(line, port))
        fail_msg("%s: expected port %s in its row, got `%s`", name, port, line);
    const char *last = strrchr(line, ' ');
    if (!last || strncmp(last + 1, ready, strlen(ready)) != 0 ||
        (strcmp(ready, "ready") == 0 && strstr(line, "not ready")))
        fail_msg("%s: expected readiness `%s`, got `%s`", name, ready, line);
}

static void test_status_reports_every_process(void **state)
{
    char out[OUT_MAX], port[32];
    /* What `up` recorded counts, not the environment of `status`. */
    unsetenv("YARD_UP_HTTP_PORT");
    unsetenv("YARD_UP_METRICS_PORT_BASE");
    int rc = cluster_sh("status", out);
    if (rc != 0)
        fail_msg("expected `status` to exit 0 with everything up, got %d:\n%s", rc, out);
    if (strncmp(out, "NAME", 4) != 0)
        fail_msg("expected a header line first, got:\n%s", out);
    snprintf(port, sizeof port, "%s (clients)", getenv("YARD_UP_NATS_PORT"));
    expect_row(out, "nats", "alive", port, "ready");
    expect_row(out, "postgres", "alive", getenv("YARD_UP_PG_PORT"), "ready");
    expect_row(out, "gateway", "alive", " (http)", "ready");
    for (size_t i = 0; i < NROLES; i++) {
        char name[64];
        snprintf(name, sizeof name, "worker-%s", roles[i]);
        snprintf(port, sizeof port, "%d (metrics)", g.metrics_base + (int)i);
        expect_row(out, name, "alive", port, "ready");
    }

    /* A worker that died is shown dead, and status fails. */
    long audit = pid_file("worker-audit");
    assert_true(audit > 0);
    kill((pid_t)audit, SIGKILL);
    for (int i = 0; i < 100 && kill((pid_t)audit, 0) == 0; i++)
        usleep(50 * 1000);
    rc = cluster_sh("status", out);
    if (rc != 3)
        fail_msg("expected `status` to exit 3 with worker-audit killed, got %d:\n%s", rc, out);
    expect_row(out, "worker-audit", "dead", NULL, "-");
    expect_row(out, "worker-execute", "alive", NULL, "ready");

    /* After down, nothing runs. */
    rc = cluster_sh("down", out);
    if (rc != 0)
        fail_msg("expected `down` to exit 0, got %d:\n%s", rc, out);
    g.up = 0;
    rc = cluster_sh("status", out);
    if (rc != 3)
        fail_msg("expected `status` to exit 3 after down, got %d:\n%s", rc, out);
    expect_row(out, "nats", "stopped", NULL, "-");
    expect_row(out, "postgres", "stopped", NULL, "-");
    expect_row(out, "gateway", "stopped", NULL, "-");
    expect_row(out, "worker-execute", "stopped", NULL, "-");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_status_reports_every_process, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
