/*
 * test_wk_e2e_ops.c - yardctl's incident commands against a real cluster:
 * `jobs list|get|cancel|retry`, `queues`, `cluster status`, `prune` and the
 * schedule role's retention, `--help` of every command; every --json
 * output parses (jansson) and says what the cluster holds.
 *
 * Retention: finished jobs are aged by setting finished_at in SQL; the
 * schedule worker runs with retention_s 3600 and prunes every second, and
 * must remove exactly the finished jobs older than the hour (and their
 * attempts), nothing younger, nothing unfinished.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "log.h"
#include "yt_http.h"
#include "yt_workers.h"

#define OUT_MAX (256 * 1024)
#define WAIT_MS 20000

static struct {
    yt_cluster_t c;
    char *out, *err;
} g;

static int setup(void **state)
{
    yard_log_init("test_wk_e2e_ops", YARD_LOG_ERROR);
    g.out = malloc(OUT_MAX);
    g.err = malloc(OUT_MAX);
    if (!g.out || !g.err || yt_cluster_start(&g.c, NULL) != 0)
        return -1;
    setenv("YARD_NATS_URL", g.c.env->nats_url, 1);
    return yt_worker_start(&g.c.exec, g.c.env, "execute", NULL, NULL, 0);
}

static int teardown(void **state)
{
    yt_cluster_stop(&g.c);
    free(g.out);
    free(g.err);
    return 0;
}

static int ctl(const char *a0, ...)
{
    const char *args[15];
    va_list ap;
    int n = 0;
    args[n++] = a0;
    va_start(ap, a0);
    while (n < 14 && (args[n] = va_arg(ap, const char *)) != NULL)
        n++;
    va_end(ap);
    args[n] = NULL;
    return yt_run_program(g.c.env, "yardctl", args, g.out, OUT_MAX, g.err, OUT_MAX);
}

static json_t *out_json(const char *what)
{
    json_error_t e;
    json_t *v = json_loads(g.out, 0, &e);
    if (!v)
        fail_msg("%s --json: expected JSON, got (%s at line %d):\n%.2000s", what, e.text, e.line,
                 g.out);
    return v;
}

static void submit_wait(char id[YT_JOB_ID_MAX], const char *body, const char *status)
{
    char got[64];
    assert_int_equal(yt_job_submit(g.c.port, body, id), 202);
    if (yt_job_wait_status(g.c.port, id, status, WAIT_MS, got, sizeof got) != 0)
        fail_msg("expected job %s %s, last seen %s", id, status, got);
}

static void test_jobs_list_get_cancel_retry(void **state)
{
    char ok[YT_JOB_ID_MAX], dead[YT_JOB_ID_MAX], slow[YT_JOB_ID_MAX], got[64];
    submit_wait(ok, "{\"type\":\"echo\",\"queue\":\"default\",\"payload\":{\"hi\":1}}",
                "succeeded");
    submit_wait(dead, "{\"type\":\"fail\",\"payload\":{\"retryable\":false,\"message\":\"nope\"}}",
                "dead");
    submit_wait(slow, "{\"type\":\"sleep\",\"payload\":{\"ms\":60000}}", "running");

    assert_int_equal(ctl("jobs", "list", "--status", "dead", "--json", NULL), 0);
    json_t *doc = out_json("jobs list --status dead");
    json_t *jobs = json_object_get(doc, "jobs");
    assert_int_equal(json_array_size(jobs), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(jobs, 0), "id")), dead);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(jobs, 0), "last_error")), "nope");
    json_decref(doc);
    assert_int_equal(ctl("jobs", "list", "--type", "echo", "--since", "1h", "--limit", "5",
                         "--json", NULL), 0);
    doc = out_json("jobs list --type echo");
    assert_int_equal(json_array_size(json_object_get(doc, "jobs")), 1);
    json_decref(doc);
    assert_int_equal(ctl("jobs", "list", NULL), 0);
    if (!strstr(g.out, ok) || !strstr(g.out, dead) || !strstr(g.out, slow) ||
        !strstr(g.out, "3 jobs shown"))
        fail_msg("expected a table of the 3 jobs, got:\n%s", g.out);
    assert_int_equal(ctl("jobs", "list", "--status", "bogus", NULL), 2);

    assert_int_equal(ctl("jobs", "get", ok, "--json", NULL), 0);
    doc = out_json("jobs get");
    assert_string_equal(json_string_value(json_object_get(doc, "status")), "succeeded");
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(doc, "result"), "hi")), 1);
    assert_int_equal(json_array_size(json_object_get(doc, "history")), 1);
    json_decref(doc);
    assert_int_equal(ctl("jobs", "get", ok, NULL), 0);
    assert_non_null(strstr(g.out, "succeeded"));
    assert_int_equal(ctl("jobs", "get", "not-a-uuid", NULL), 2);

    /* cancel: the running job stops; a finished one refuses. */
    assert_int_equal(ctl("jobs", "cancel", slow, "--json", NULL), 0);
    json_decref(out_json("jobs cancel"));
    if (yt_job_wait_status(g.c.port, slow, "cancelled", WAIT_MS, got, sizeof got) != 0)
        fail_msg("expected job %s cancelled, last seen %s", slow, got);
    assert_int_equal(ctl("jobs", "cancel", ok, NULL), 1);
    assert_non_null(strstr(g.out, "already finished"));

    /* retry: a dead job runs again (and dies again: its cause stays). */
    assert_int_equal(ctl("jobs", "retry", ok, NULL), 1);
    assert_int_equal(ctl("jobs", "retry", dead, "--json", NULL), 0);
    doc = out_json("jobs retry");
    assert_string_equal(json_string_value(json_object_get(doc, "outcome")), "replayed");
    json_decref(doc);
    long long n = yt_wait_sql(g.c.env, 2, WAIT_MS,
                              "SELECT count(*) FROM job_attempts WHERE job_id = '%s'", dead);
    assert_int_equal(n, 2);
}

static void test_queues_and_cluster_status(void **state)
{
    assert_int_equal(ctl("queues", "--json", NULL), 0);
    json_t *doc = out_json("queues");
    json_t *q = json_array_get(json_object_get(doc, "queues"), 0);
    assert_string_equal(json_string_value(json_object_get(q, "name")), "default");
    assert_true(json_is_integer(json_object_get(q, "pending")));
    assert_true(json_is_integer(json_object_get(q, "in_flight")));
    assert_true(json_integer_value(json_object_get(q, "dead")) >= 1);
    assert_true(json_is_number(json_object_get(q, "oldest_pending_age_s")));
    json_decref(doc);
    assert_int_equal(ctl("queues", NULL), 0);
    assert_non_null(strstr(g.out, "OLDEST PENDING"));

    assert_int_equal(ctl("cluster", "status", "--json", NULL), 0);
    doc = out_json("cluster status");
    size_t i, j;
    json_t *s, *c;
    int seen = 0;
    json_array_foreach(json_object_get(doc, "streams"), i, s)
    {
        const char *name = json_string_value(json_object_get(s, "name"));
        if (strcmp(name, "JOBS") == 0) {
            seen |= 1;
            assert_int_equal(json_integer_value(json_object_get(s, "replicas")), 1);
            json_array_foreach(json_object_get(s, "consumers"), j, c)
                if (strcmp(json_string_value(json_object_get(c, "name")), "execute_default") == 0)
                    seen |= 2;
        }
        seen |= strcmp(name, "DLQ") == 0 ? 4 : 0;
    }
    if (seen != 7)
        fail_msg("expected streams JOBS (with consumer execute_default) and DLQ, got:\n%.3000s",
                 g.out);
    assert_true(json_integer_value(json_object_get(json_object_get(doc, "account"), "streams")) >=
                3);
    json_decref(doc);
    assert_int_equal(ctl("cluster", "status", NULL), 0);
    assert_non_null(strstr(g.out, "execute_default"));
    assert_int_equal(ctl("cluster", NULL), 2);
}

static void test_help_of_every_command(void **state)
{
    const char *cmds[] = {"migrate", "keys", "dlq", "jobs", "queues", "cluster", "prune"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        assert_int_equal(ctl(cmds[i], "--help", NULL), 0);
        if (!strstr(g.out, "usage: yardctl") || !strstr(g.out, "Exit status"))
            fail_msg("yardctl %s --help: expected its usage and exit status, got:\n%s", cmds[i],
                     g.out);
    }
    assert_int_equal(ctl("--help", NULL), 0);
    assert_non_null(strstr(g.out, "3  not found"));
    assert_int_equal(ctl("--print-config", NULL), 0);
    assert_non_null(strstr(g.out, "retention_s = 1209600"));
    assert_int_equal(ctl("keys", "list", "--json", NULL), 0);
    json_decref(out_json("keys list"));
    assert_int_equal(ctl("migrate", "--status", "--json", NULL), 0);
    json_t *doc = out_json("migrate --status");
    assert_int_equal(json_integer_value(json_object_get(doc, "pending")), 0);
    json_decref(doc);
}

/* Ages job id: finished (and its attempts) hours ago. */
static void age(const char *id, int minutes)
{
    assert_int_equal(yt_sql_exec(g.c.env, "UPDATE jobs SET finished_at = now() - interval '%d"
                                 " minutes' WHERE id = '%s'", minutes, id),
                     0);
}

static void test_retention_removes_exactly_what_is_older(void **state)
{
    char old_ok[YT_JOB_ID_MAX], old_dead[YT_JOB_ID_MAX], young[YT_JOB_ID_MAX];
    char edge[YT_JOB_ID_MAX], waiting[YT_JOB_ID_MAX];
    submit_wait(old_ok, "{\"type\":\"noop\"}", "succeeded");
    submit_wait(old_dead, "{\"type\":\"fail\",\"payload\":{\"retryable\":false}}", "dead");
    submit_wait(young, "{\"type\":\"noop\"}", "succeeded");
    submit_wait(edge, "{\"type\":\"noop\"}", "succeeded");
    /* Not finished: never pruned, however old. */
    submit_wait(waiting, "{\"type\":\"noop\",\"run_at\":\"2999-01-01T00:00:00Z\"}", "scheduled");
    age(old_ok, 120);
    age(old_dead, 61);
    age(young, 30);
    age(edge, 59);
    assert_int_equal(yt_sql_exec(g.c.env, "UPDATE jobs SET created_at = now() - interval"
                                 " '1 day' WHERE id = '%s'", waiting),
                     0);
    long long before = yt_sql_int(g.c.env, "SELECT count(*) FROM jobs");
    long long old_total = yt_sql_int(g.c.env, "SELECT count(*) FROM jobs WHERE status IN"
                                     " ('succeeded', 'dead', 'cancelled') AND finished_at <"
                                     " now() - interval '1 hour'");
    assert_true(old_total >= 2);

    /* The dry run counts them and deletes nothing. */
    assert_int_equal(ctl("prune", "--dry-run", "--older-than", "1h", "--json", NULL), 0);
    json_t *doc = out_json("prune --dry-run");
    assert_int_equal(json_integer_value(json_object_get(doc, "jobs")), old_total);
    assert_true(json_integer_value(json_object_get(doc, "attempts")) >= 2);
    json_decref(doc);
    assert_int_equal(ctl("prune", "--dry-run", "--older-than", "1h", NULL), 0);
    assert_non_null(strstr(g.out, "would be deleted"));
    assert_int_equal(yt_sql_int(g.c.env, "SELECT count(*) FROM jobs"), before);

    /* The schedule role prunes every second with retention_s 3600. */
    char *extra[] = {"YARD_RETENTION_S=3600", "YARD_RETENTION_INTERVAL_S=1",
                     "YARD_RETENTION_BATCH=1", NULL};
    assert_int_equal(yt_worker_start(&g.c.sched, g.c.env, "schedule", NULL, extra, 0), 0);
    long long left = yt_wait_sql(g.c.env, 0, WAIT_MS,
                                 "SELECT count(*) FROM jobs WHERE id IN ('%s', '%s')", old_ok,
                                 old_dead);
    if (left != 0)
        fail_msg("expected the schedule role to prune the two jobs finished over an hour ago, "
                 "%lld left", left);
    yt_nap_ms(1500); /* another pass or two: nothing younger may go */
    assert_int_equal(yt_sql_int(g.c.env, "SELECT count(*) FROM jobs WHERE id IN ('%s', '%s',"
                                " '%s')", young, edge, waiting),
                     3);
    assert_int_equal(yt_sql_int(g.c.env, "SELECT count(*) FROM job_attempts WHERE job_id IN"
                                " ('%s', '%s')", old_ok, old_dead),
                     0);
    assert_int_equal(yt_sql_int(g.c.env, "SELECT count(*) FROM jobs"), before - old_total);
    yt_cluster_stop_worker(&g.c, &g.c.sched);

    /* yardctl prune does the same on demand. */
    age(edge, 90);
    assert_int_equal(ctl("prune", "--older-than", "1h", "--json", NULL), 0);
    doc = out_json("prune");
    assert_int_equal(json_integer_value(json_object_get(doc, "deleted")), 1);
    json_decref(doc);
    assert_int_equal(yt_sql_int(g.c.env, "SELECT count(*) FROM jobs WHERE id = '%s'", edge), 0);
    assert_int_equal(yt_sql_int(g.c.env, "SELECT count(*) FROM jobs WHERE id = '%s'", young), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jobs_list_get_cancel_retry),
        cmocka_unit_test(test_queues_and_cluster_status),
        cmocka_unit_test(test_help_of_every_command),
        cmocka_unit_test(test_retention_removes_exactly_what_is_older),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
