/*
 * test_ctl_schedules.c - `yardctl schedules` against a real, migrated
 * PostgreSQL: create (table and --json), list, pause, resume, delete; bad
 * arguments exit 2 with a message, a missing schedule exits 1; --help.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "log.h"

static yt_env_t *g_env;

typedef struct {
    int status;
    char out[16384];
    char err[8192];
} run_t;

/* Runs yardctl schedules ARGS... (NULL-terminated). */
static void ctl(run_t *run, const char *a1, const char *a2, const char *a3, const char *a4,
                const char *a5, const char *a6, const char *a7, const char *a8, const char *a9,
                const char *a10, const char *a11)
{
    const char *args[] = {"schedules", a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, NULL};
    run->status = yt_run_program(g_env, "yardctl", args, run->out, sizeof run->out, run->err,
                                 sizeof run->err);
}

static void expect(const run_t *run, int status, const char *out_has, const char *what)
{
    if (run->status != status || (out_has && !strstr(run->out, out_has)))
        fail_msg("%s: expected exit %d with `%s` on stdout, got exit %d\nstdout: %.600s\n"
                 "stderr: %.600s", what, status, out_has ? out_has : "", run->status, run->out,
                 run->err);
}

static int setup(void **state)
{
    yard_log_init("test_ctl_schedules", YARD_LOG_ERROR);
    return yt_env_create(&g_env, YT_PG | YT_MIGRATE) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    yt_env_destroy(g_env);
    return 0;
}

static void test_create_list_pause_resume_delete(void **state)
{
    run_t r;
    ctl(&r, "create", "--name", "nightly", "--cron", "30 2 * * *", "--timezone",
        "Europe/Berlin", "--type", "echo", "--payload", "{\"a\":1}");
    expect(&r, 0, "created schedule nightly", "create");
    expect(&r, 0, "Europe/Berlin", "create prints the schedule");
    ctl(&r, "create", "--name", "nightly", "--cron", "@hourly", "--type", "noop", "--json", NULL,
        NULL, NULL);
    expect(&r, 0, "\"cron\":\"@hourly\"", "replace --json");
    ctl(&r, "list", "--json", NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
    expect(&r, 0, "{\"schedules\":[{\"name\":\"nightly\"", "list --json");
    ctl(&r, "list", NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
    expect(&r, 0, "NEXT (UTC)", "list");
    expect(&r, 0, "@hourly", "list row");
    ctl(&r, "pause", "nightly", "--json", NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
    expect(&r, 0, "\"paused\":true", "pause");
    ctl(&r, "resume", "nightly", "--json", NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
    expect(&r, 0, "\"paused\":false", "resume");
    ctl(&r, "delete", "nightly", NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
    expect(&r, 0, "deleted schedule nightly", "delete");
    ctl(&r, "delete", "nightly", NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
    expect(&r, 3, NULL, "delete of a missing schedule"); /* 3: not found */
    ctl(&r, "list", "--json", NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
    expect(&r, 0, "{\"schedules\":[]}", "empty list");
}

static void test_bad_arguments(void **state)
{
    run_t r;
    ctl(&r, "create", "--name", "x", "--cron", "61 * * * *", "--type", "noop", NULL, NULL, NULL,
        NULL);
    expect(&r, 2, NULL, "bad cron");
    if (!strstr(r.err, "minute"))
        fail_msg("bad cron: expected the message to name the minute field, got %.400s", r.err);
    ctl(&r, "create", "--name", "x", "--cron", "@daily", "--type", "noop", "--timezone",
        "Mars/Base", NULL, NULL);
    expect(&r, 2, NULL, "bad zone");
    ctl(&r, "create", "--name", "x", "--cron", "@daily", NULL, NULL, NULL, NULL, NULL, NULL);
    expect(&r, 2, NULL, "missing --type");
    ctl(&r, "create", "--name", "x", "--cron", "@daily", "--type", "noop", "--payload", "{",
        NULL, NULL);
    expect(&r, 2, NULL, "bad payload");
    ctl(&r, "frobnicate", NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
    expect(&r, 2, NULL, "unknown subcommand");
    ctl(&r, "--help", NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
    expect(&r, 0, "usage: yardctl schedules list", "--help");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_list_pause_resume_delete),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
