/*
 * test_wk_e2e_exec_escape.c - an exec program cannot leave processes behind
 * or start without bound: real gateway, worker, nats-server and PostgreSQL.
 *
 *   exec-escape    starts `setsid sleep` (a new session and process group,
 *                  out of reach of the group kill), records its pid, exits 0:
 *                  the job succeeds and the escapee is gone within 3 s.
 *   exec-escape-slow  the same, then sleeps past its 1 s timeout: the job is
 *                  recorded `timeout`, and the escapee is gone too.
 *   exec-forker    runs as `nobody` with max_processes 5 and starts 20
 *                  background sleeps: the sixth fork fails, and the job dies
 *                  with the shell's "Cannot fork" as its error.
 *   exec-forker-free  the same program without the limit succeeds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "log.h"
#include "yt_workers.h"

static struct {
    yt_cluster_t c;
    char exec_var[400];
} g;

static int write_exec_files(void)
{
    static const char escape_sh[] =
        "#!/bin/sh\n"
        "# leaves a process in its own session, then exits 0 (or sleeps past the timeout)\n"
        "cat >/dev/null\n"
        "setsid sh -c 'echo $$ > esc.'\"$1\"'.tmp && mv esc.'\"$1\"'.tmp esc.'\"$1\"'.pid; "
        "exec sleep 3917' </dev/null >/dev/null 2>&1 &\n"
        "while [ ! -s esc.$1.pid ]; do sleep 0.05; done\n"
        "if [ \"$1\" = slow ]; then sleep 30; fi\n"
        "echo '{\"ok\":true}'\n";
    static const char forker_sh[] =
        "#!/bin/sh\n"
        "cat >/dev/null\n"
        "for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do sleep 3 & done\n"
        "echo '{\"started\":20}'\n";
    char conf[2048];
    const char *d = g.c.env->dir;
    snprintf(conf, sizeof conf,
             "[exec-escape]\npath = %s/escape.sh\nargs = fast\nenv = PATH=/usr/bin:/bin\n"
             "dir = %s\n\n"
             "[exec-escape-slow]\npath = %s/escape.sh\nargs = slow\nenv = PATH=/usr/bin:/bin\n"
             "dir = %s\ntimeout_s = 1\nterm_grace_ms = 500\n\n"
             "[exec-forker]\npath = %s/forker.sh\nenv = PATH=/usr/bin:/bin\nuser = nobody\n"
             "max_processes = 5\n\n"
             "[exec-forker-free]\npath = %s/forker.sh\nenv = PATH=/usr/bin:/bin\nuser = nobody\n"
             "max_processes = 0\n",
             d, d, d, d, d, d);
    if (yt_write_file(g.c.env, "escape.sh", escape_sh, 0755) ||
        yt_write_file(g.c.env, "forker.sh", forker_sh, 0755) ||
        yt_write_file(g.c.env, "exec.conf", conf, 0644))
        return -1;
    snprintf(g.exec_var, sizeof g.exec_var, "YARD_EXEC_CONFIG=%s/exec.conf", d);
    return 0;
}

/* The pid recorded in <dir>/esc.<which>.pid, or -1. */
static pid_t escapee(const char *which)
{
    char path[400];
    int pid = -1;
    snprintf(path, sizeof path, "%s/esc.%s.pid", g.c.env->dir, which);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    if (fscanf(f, "%d", &pid) != 1)
        pid = -1;
    fclose(f);
    return (pid_t)pid;
}

/* Whether pid runs the test's `sleep 3917` and is not a zombie. */
static int escapee_alive(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *close = strrchr(buf, ')');
    if (!strstr(buf, "(sleep)") || !close)
        return 0;
    return close[2] != 'Z' && close[2] != 'X';
}

static void run_and_check_gone(const char *type, const char *which, const char *want)
{
    char body[128], id[YT_JOB_ID_MAX], got[64];
    snprintf(body, sizeof body, "{\"type\":\"%s\",\"max_attempts\":1}", type);
    assert_int_equal(yt_job_submit(g.c.port, body, id), 202);
    if (yt_job_wait_status(g.c.port, id, want, 20000, got, sizeof got) != 0) {
        yt_worker_log_tail(g.c.env, &g.c.exec);
        fail_msg("%s: expected %s, got %s", type, want, got);
    }
    pid_t pid = escapee(which);
    if (pid <= 0)
        fail_msg("%s: the program did not record its escapee's pid", type);
    long long end = yt_now_ms() + 3000;
    while (escapee_alive(pid) && yt_now_ms() < end)
        yt_nap_ms(50);
    if (escapee_alive(pid)) {
        kill(pid, SIGKILL);
        fail_msg("%s: the process it started with setsid (pid %d) still runs after the job "
                 "ended",
                 type, (int)pid);
    }
}

static void test_escapee_of_a_finished_job_is_killed(void **state)
{
    run_and_check_gone("exec-escape", "fast", "succeeded");
}

static void test_escapee_of_a_timed_out_job_is_killed(void **state)
{
    run_and_check_gone("exec-escape-slow", "slow", "dead");
}

static void test_process_limit(void **state)
{
    char id[YT_JOB_ID_MAX], got[64], err[512];
    assert_int_equal(yt_job_submit(g.c.port, "{\"type\":\"exec-forker\",\"max_attempts\":1}", id),
                     202);
    if (yt_job_wait_status(g.c.port, id, "dead", 20000, got, sizeof got) != 0)
        fail_msg("exec-forker (max_processes 5, 20 background sleeps): expected dead, got %s",
                 got);
    yt_sql_text(g.c.env, err, sizeof err, "SELECT coalesce(last_error, '') FROM jobs WHERE id = '%s'",
                id);
    if (!strstr(err, "fork"))
        fail_msg("exec-forker: expected the failed fork in the error, got `%s`", err);
    assert_int_equal(
        yt_job_submit(g.c.port, "{\"type\":\"exec-forker-free\",\"max_attempts\":1}", id), 202);
    if (yt_job_wait_status(g.c.port, id, "succeeded", 20000, got, sizeof got) != 0)
        fail_msg("exec-forker-free (no process limit): expected succeeded, got %s", got);
}

static int setup(void **state)
{
    yard_log_init("test_wk_e2e_exec_escape", YARD_LOG_ERROR);
    if (yt_cluster_start(&g.c, NULL) != 0 || write_exec_files() != 0)
        return -1;
    char *exec_env[] = {g.exec_var, NULL};
    return yt_worker_start(&g.c.exec, g.c.env, "execute", NULL, exec_env, 0);
}

static int teardown(void **state)
{
    yt_cluster_stop(&g.c);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escapee_of_a_finished_job_is_killed),
        cmocka_unit_test(test_escapee_of_a_timed_out_job_is_killed),
        cmocka_unit_test(test_process_limit),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
