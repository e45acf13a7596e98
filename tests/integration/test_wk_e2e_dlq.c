/*
 * test_wk_e2e_dlq.c - `yardctl dlq list|replay` against a real cluster: a
 * job that dies is listed with its reason; a dry run changes nothing; a
 * replay runs it again (a second attempt, numbered on) and removes the DLQ
 * copy, and the job dies again into a new DLQ entry; bad arguments are
 * refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "log.h"
#include "yt_http.h"
#include "yt_workers.h"

static struct {
    yt_cluster_t c;
} g;

static int setup(void **state)
{
    yard_log_init("test_wk_e2e_dlq", YARD_LOG_ERROR);
    if (yt_cluster_start(&g.c, NULL) != 0)
        return -1;
    /* yardctl finds NATS the way operators point it there. */
    setenv("YARD_NATS_URL", g.c.env->nats_url, 1);
    return yt_worker_start(&g.c.exec, g.c.env, "execute", NULL, NULL, 0);
}

static int teardown(void **state)
{
    yt_cluster_stop(&g.c);
    return 0;
}

static int dlq(char *out, size_t cap, const char *a1, const char *a2, const char *a3)
{
    char err[4096];
    const char *args[] = {"dlq", a1, a2, a3, NULL};
    int rc = yt_run_program(g.c.env, "yardctl", args, out, cap, err, sizeof err);
    if (rc != 0 && rc != 2)
        fprintf(stderr, "yardctl dlq %s: exit %d; stderr:\n%s\n", a1, rc, err);
    return rc;
}

static void test_list_and_replay_a_dead_job(void **state)
{
    char id[YT_JOB_ID_MAX], got[64], out[8192];
    assert_int_equal(yt_job_submit(g.c.port,
                                   "{\"type\":\"fail\",\"payload\":{\"retryable\":false,"
                                   "\"message\":\"card declined\"}}",
                                   id),
                     202);
    if (yt_job_wait_status(g.c.port, id, "dead", 10000, got, sizeof got) != 0)
        fail_msg("expected job %s dead, last seen %s", id, got);

    assert_int_equal(dlq(out, sizeof out, "list", NULL, NULL), 0);
    if (!strstr(out, id) || !strstr(out, "card declined") || !strstr(out, "1 dead job shown"))
        fail_msg("expected the list to show job %s dying of `card declined`, got:\n%s", id, out);
    assert_int_equal(dlq(out, sizeof out, "list", "--queue", "other"), 0);
    assert_non_null(strstr(out, "0 dead jobs shown"));

    /* A dry run changes nothing. */
    assert_int_equal(dlq(out, sizeof out, "replay", "--all", "--dry-run"), 0);
    assert_non_null(strstr(out, "would replay"));
    assert_int_equal(dlq(out, sizeof out, "list", NULL, NULL), 0);
    assert_non_null(strstr(out, "1 dead job shown"));
    assert_int_equal(yt_sql_int(g.c.env, "SELECT count(*) FROM job_attempts WHERE job_id = '%s'",
                                id),
                     1);

    /* The replay runs it again: attempt 2, dead again, one new DLQ entry. */
    assert_int_equal(dlq(out, sizeof out, "replay", "--all", NULL), 0);
    if (!strstr(out, "1 replayed, 0 failed"))
        fail_msg("expected `1 replayed, 0 failed`, got:\n%s", out);
    long long n = yt_wait_sql(g.c.env, 2, 10000,
                              "SELECT count(*) FROM job_attempts WHERE job_id = '%s'", id);
    if (n != 2)
        fail_msg("expected a second attempt of job %s after the replay, found %lld", id, n);
    if (yt_job_wait_status(g.c.port, id, "dead", 10000, got, sizeof got) != 0)
        fail_msg("expected job %s dead again, last seen %s", id, got);
    assert_int_equal(yt_sql_int(g.c.env,
                                "SELECT count(*) FROM job_attempts WHERE job_id = '%s'"
                                " AND attempt = 2 AND outcome = 'failed'",
                                id),
                     1);
    for (int i = 0; i < 50; i++) {
        assert_int_equal(dlq(out, sizeof out, "list", NULL, NULL), 0);
        if (strstr(out, "1 dead job shown"))
            break;
        yt_nap_ms(100);
    }
    if (!strstr(out, "1 dead job shown") || !strstr(out, id))
        fail_msg("expected exactly the new DLQ entry of %s, got:\n%s", id, out);
}

static void test_bad_arguments(void **state)
{
    char out[4096];
    assert_int_equal(dlq(out, sizeof out, "replay", NULL, NULL), 2);
    assert_int_equal(dlq(out, sizeof out, "replay", "--all", "7"), 2);
    assert_int_equal(dlq(out, sizeof out, "bogus", NULL, NULL), 2);
    assert_int_equal(dlq(out, sizeof out, "list", "--limit", "0"), 2);
    /* A sequence that is not there: nothing replayed, not an error. */
    assert_int_equal(dlq(out, sizeof out, "replay", "999999", NULL), 0);
    assert_non_null(strstr(out, "0 replayed, 0 failed"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_and_replay_a_dead_job),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
