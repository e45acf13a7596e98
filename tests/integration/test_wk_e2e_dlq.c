/*
 * test_wk_e2e_dlq.c - `yardctl dlq` against a real cluster (nats-server,
 * PostgreSQL, gateway, audit and execute workers): dead jobs are listed and
 * filtered; a dry run says exactly what would happen (the max_attempts each
 * job would get) and changes nothing; jobs whose cause of death is removed
 * are replayed and succeed, with that max_attempts; a replay killed halfway
 * and run again replays every letter once, also in the states a crash
 * leaves beyond the duplicate window; purge; exit codes; every --json
 * output parses; control characters in an error never reach the terminal.
 *
 * The cause of death is a program (exec handler) that fails for good while
 * a file named `broken` exists in the test folder.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "log.h"
#include "yt_http.h"
#include "yt_workers.h"

#define OUT_MAX (256 * 1024)
#define DEAD_WAIT_MS 20000

static struct {
    yt_cluster_t c;
    char exec_var[450];
    char broken[300];
    char *out, *err;
} g;

static int setup(void **state)
{
    yard_log_init("test_wk_e2e_dlq", YARD_LOG_ERROR);
    g.out = malloc(OUT_MAX);
    g.err = malloc(OUT_MAX);
    if (!g.out || !g.err || yt_cluster_start(&g.c, NULL) != 0)
        return -1;
    const char *d = g.c.env->dir;
    char path[400], conf[1024];
    snprintf(g.broken, sizeof g.broken, "%s/broken", d);
    snprintf(path, sizeof path, "%s/gate.sh", d);
    char script[600];
    snprintf(script, sizeof script,
             "#!/bin/sh\ncat >/dev/null\n"
             "if [ -e %s ]; then echo 'downstream broken' >&2; exit 1; fi\n"
             "echo '{\"ok\":true}'\n",
             g.broken);
    snprintf(conf, sizeof conf, "[gate]\npath = %s\nenv = PATH=/usr/bin:/bin\n", path);
    if (yt_write_file(g.c.env, path, script, 0755) != 0)
        return -1;
    snprintf(path, sizeof path, "%s/exec.conf", d);
    if (yt_write_file(g.c.env, path, conf, 0644) != 0)
        return -1;
    snprintf(g.exec_var, sizeof g.exec_var, "YARD_EXEC_CONFIG=%s", path);
    setenv("YARD_NATS_URL", g.c.env->nats_url, 1);
    char *extra[] = {g.exec_var, NULL};
    return yt_worker_start(&g.c.exec, g.c.env, "execute", NULL, extra, 0);
}

static int teardown(void **state)
{
    yt_cluster_stop(&g.c);
    free(g.out);
    free(g.err);
    return 0;
}

/* Runs yardctl with the NULL-terminated arguments; stdout in g.out. */
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

/* g.out parsed as JSON (fails the test when it does not parse). */
static json_t *out_json(const char *what)
{
    json_error_t e;
    json_t *v = json_loads(g.out, 0, &e);
    if (!v)
        fail_msg("%s --json: expected JSON, got (%s at line %d):\n%.2000s", what, e.text, e.line,
                 g.out);
    return v;
}

static void submit_dead(char id[YT_JOB_ID_MAX], const char *body)
{
    char got[64];
    assert_int_equal(yt_job_submit(g.c.port, body, id), 202);
    if (yt_job_wait_status(g.c.port, id, "dead", DEAD_WAIT_MS, got, sizeof got) != 0)
        fail_msg("expected job %s dead, last seen %s", id, got);
}

/* The DLQ sequence of job id's letter (0 when none), from `dlq list --json`. */
static long long seq_of(const char *id)
{
    assert_int_equal(ctl("dlq", "list", "--limit", "1000", "--json", NULL), 0);
    json_t *doc = out_json("dlq list"), *e;
    size_t i;
    long long seq = 0;
    json_array_foreach(json_object_get(doc, "dead_letters"), i, e)
        if (strcmp(json_string_value(json_object_get(e, "job_id")), id) == 0)
            seq = json_integer_value(json_object_get(e, "seq"));
    json_decref(doc);
    return seq;
}

static size_t letters(void)
{
    assert_int_equal(ctl("dlq", "list", "--limit", "1000", "--json", NULL), 0);
    json_t *doc = out_json("dlq list");
    size_t n = json_array_size(json_object_get(doc, "dead_letters"));
    json_decref(doc);
    return n;
}

/* Removes every letter (purge of all ages), so tests start from none. */
static void empty_dlq(void)
{
    yt_nap_ms(1100);
    assert_int_equal(ctl("dlq", "purge", "--older-than", "0s", NULL), 0);
    assert_int_equal(letters(), 0);
}

static void test_list_filter_dry_run_and_replay_after_the_fix(void **state)
{
    char gate[3][YT_JOB_ID_MAX], card[YT_JOB_ID_MAX], got[64];
    assert_int_equal(yt_write_file(g.c.env, g.broken, "", 0644), 0);
    for (int i = 0; i < 3; i++)
        submit_dead(gate[i], "{\"type\":\"gate\",\"payload\":{\"n\":1}}");
    submit_dead(card, "{\"type\":\"fail\",\"payload\":{\"retryable\":false,"
                      "\"message\":\"card declined\"}}");

    /* Listed, as a table and as JSON, and filtered. */
    assert_int_equal(ctl("dlq", "list", NULL), 0);
    /* An error cell is cut at 60 characters: "gate.sh" is what is sure to show. */
    if (!strstr(g.out, card) || !strstr(g.out, "card declined") ||
        !strstr(g.out, "4 dead jobs shown") || !strstr(g.out, "gate.sh"))
        fail_msg("expected the table to show 4 dead jobs with their errors, got:\n%s", g.out);
    assert_int_equal(letters(), 4);
    assert_int_equal(ctl("dlq", "list", "--error-contains", "card", "--json", NULL), 0);
    json_t *doc = out_json("dlq list --error-contains");
    json_t *arr = json_object_get(doc, "dead_letters");
    assert_int_equal(json_array_size(arr), 1);
    json_t *e = json_array_get(arr, 0);
    assert_string_equal(json_string_value(json_object_get(e, "job_id")), card);
    assert_string_equal(json_string_value(json_object_get(e, "type")), "fail");
    assert_string_equal(json_string_value(json_object_get(e, "queue")), "default");
    assert_string_equal(json_string_value(json_object_get(e, "subject")), "jobs.execute.default");
    assert_string_equal(json_string_value(json_object_get(json_object_get(e, "payload"),
                                                          "message")),
                        "card declined");
    long long card_seq = json_integer_value(json_object_get(e, "seq"));
    json_decref(doc);
    assert_int_equal(ctl("dlq", "list", "--queue", "other", NULL), 0);
    assert_non_null(strstr(g.out, "0 dead jobs shown"));
    assert_int_equal(ctl("dlq", "list", "--since", "1h", "--limit", "2", "--json", NULL), 0);
    doc = out_json("dlq list --limit 2");
    assert_int_equal(json_array_size(json_object_get(doc, "dead_letters")), 2);
    const char *cursor = json_string_value(json_object_get(doc, "next_cursor"));
    if (!cursor)
        fail_msg("expected a next_cursor after a full page, got:\n%s", g.out);
    char cur[32];
    snprintf(cur, sizeof cur, "%s", cursor);
    json_decref(doc);
    assert_int_equal(ctl("dlq", "list", "--cursor", cur, "--json", NULL), 0);
    doc = out_json("dlq list --cursor");
    assert_int_equal(json_array_size(json_object_get(doc, "dead_letters")), 2);
    json_decref(doc);

    /* show, both forms. */
    char seqtext[24];
    snprintf(seqtext, sizeof seqtext, "%lld", card_seq);
    assert_int_equal(ctl("dlq", "show", seqtext, NULL), 0);
    assert_non_null(strstr(g.out, "card declined"));
    assert_int_equal(ctl("dlq", "show", seqtext, "--json", NULL), 0);
    json_decref(out_json("dlq show"));

    /* A dry run says the max_attempts each job would get, and changes nothing. */
    assert_int_equal(ctl("dlq", "replay", "--error-contains", "downstream", "--dry-run",
                         "--json", NULL), 0);
    doc = out_json("dlq replay --dry-run");
    assert_int_equal(json_integer_value(json_object_get(doc, "would_replay")), 3);
    assert_int_equal(json_integer_value(json_object_get(doc, "replayed")), 0);
    size_t i;
    json_array_foreach(json_object_get(doc, "results"), i, e)
    {
        assert_string_equal(json_string_value(json_object_get(e, "outcome")), "would_replay");
        /* one attempt used + the 5 it was submitted with */
        assert_int_equal(json_integer_value(json_object_get(e, "max_attempts")), 6);
    }
    json_decref(doc);
    assert_int_equal(letters(), 4);
    for (int j = 0; j < 3; j++)
        assert_int_equal(yt_sql_int(g.c.env, "SELECT count(*) FROM jobs WHERE id = '%s' AND"
                                    " status = 'dead' AND max_attempts = 5 AND replays = 0",
                                    gate[j]),
                         1);

    /* The cause removed, a replay of those three: they succeed, with 6. */
    assert_int_equal(unlink(g.broken), 0);
    assert_int_equal(ctl("dlq", "replay", "--error-contains", "downstream", NULL), 0);
    if (!strstr(g.out, "3 replayed, 0 already replayed, 0 missing, 0 failed"))
        fail_msg("expected 3 replayed, got:\n%s", g.out);
    for (int j = 0; j < 3; j++) {
        if (yt_job_wait_status(g.c.port, gate[j], "succeeded", DEAD_WAIT_MS, got, sizeof got))
            fail_msg("expected replayed job %s to succeed, last seen %s", gate[j], got);
        assert_int_equal(yt_sql_int(g.c.env, "SELECT count(*) FROM jobs WHERE id = '%s' AND"
                                    " max_attempts = 6 AND attempts = 2 AND replays = 1"
                                    " AND replayed_by LIKE 'yardctl:%%'",
                                    gate[j]),
                         1);
    }
    assert_int_equal(letters(), 1);
    assert_int_equal(seq_of(card), card_seq);
    empty_dlq();
}

static void test_exit_codes_and_bad_arguments(void **state)
{
    char card[YT_JOB_ID_MAX];
    /* 3: a sequence that does not exist (today's "0 replayed", exit 0). */
    assert_int_equal(ctl("dlq", "replay", "999999", NULL), 3);
    assert_non_null(strstr(g.out, "missing #999999"));
    assert_int_equal(ctl("dlq", "replay", "999999", "--json", NULL), 3);
    json_t *doc = out_json("dlq replay 999999");
    assert_int_equal(json_integer_value(json_array_get(json_object_get(doc, "missing"), 0)),
                     999999);
    json_decref(doc);
    assert_int_equal(ctl("dlq", "show", "999999", NULL), 3);
    assert_int_equal(ctl("dlq", "replay", "--error-contains", "no such error", NULL), 3);
    assert_int_equal(ctl("jobs", "get", "0190a0f0-0000-7000-8000-000000000000", NULL), 3);
    /* 4: one replayed, one missing. */
    submit_dead(card, "{\"type\":\"fail\",\"payload\":{\"retryable\":false,"
                      "\"message\":\"partial\"}}");
    char seq[24];
    snprintf(seq, sizeof seq, "%lld", seq_of(card));
    assert_int_equal(ctl("dlq", "replay", seq, "999999", NULL), 4);
    /* 2: bad command lines. */
    assert_int_equal(ctl("dlq", "replay", NULL), 2);
    assert_int_equal(ctl("dlq", "replay", "--all", "7", NULL), 2);
    assert_int_equal(ctl("dlq", "bogus", NULL), 2);
    assert_int_equal(ctl("dlq", "list", "--limit", "0", NULL), 2);
    assert_int_equal(ctl("dlq", "purge", NULL), 2);
    assert_int_equal(ctl("dlq", "replay", "--all", "--rate", "fast", NULL), 2);
    /* Every subcommand has --help, even after its action. */
    assert_int_equal(ctl("dlq", "replay", "--help", NULL), 0);
    assert_non_null(strstr(g.out, "--dry-run"));
    assert_int_equal(ctl("--help", NULL), 0);
    assert_non_null(strstr(g.out, "exit status"));
    empty_dlq();
}

#define KILLED_JOBS 6

static void test_a_replay_killed_halfway_and_run_again_replays_each_once(void **state)
{
    char ids[KILLED_JOBS][YT_JOB_ID_MAX], got[64];
    assert_int_equal(yt_write_file(g.c.env, g.broken, "", 0644), 0);
    for (int i = 0; i < KILLED_JOBS; i++)
        submit_dead(ids[i], "{\"type\":\"gate\",\"payload\":{\"n\":2}}");
    assert_int_equal(unlink(g.broken), 0);

    /* 2 replays a second: killed after about 1.3 s, a few are done. */
    char bin[300], url[300], dsn[600];
    snprintf(bin, sizeof bin, "%s/yardctl", yt_bin_dir());
    snprintf(url, sizeof url, "YARD_NATS_URL=%s", g.c.env->nats_url);
    snprintf(dsn, sizeof dsn, "YARD_PG_DSN=%s", g.c.env->pg_dsn);
    char *argv[] = {bin, "dlq", "replay", "--all", "--rate", "2/s", NULL};
    char *env[] = {url, dsn, NULL};
    pid_t pid = yt_spawn(g.c.env, "yardctl-replay", argv, env);
    assert_true(pid > 0);
    yt_nap_ms(1300);
    assert_true(yt_kill_wait(pid, SIGKILL, 5000) >= 0);
    long long first = yt_sql_int(g.c.env, "SELECT count(*) FROM jobs WHERE replays > 0"
                                          " AND payload->>'n' = '2'");
    if (first < 1 || first >= KILLED_JOBS)
        fail_msg("expected the killed replay to have replayed some but not all of %d jobs, "
                 "it replayed %lld", KILLED_JOBS, first);

    /* Run again: the rest, and nothing twice. */
    assert_int_equal(ctl("dlq", "replay", "--all", "--json", NULL), 0);
    json_t *doc = out_json("dlq replay --all (again)");
    long long second = json_integer_value(json_object_get(doc, "replayed"));
    json_decref(doc);
    if (first + second != KILLED_JOBS)
        fail_msg("expected the second run to replay the %lld left, it replayed %lld",
                 KILLED_JOBS - first, second);
    for (int i = 0; i < KILLED_JOBS; i++) {
        if (yt_job_wait_status(g.c.port, ids[i], "succeeded", DEAD_WAIT_MS, got, sizeof got))
            fail_msg("expected job %s to succeed after its replay, last seen %s", ids[i], got);
    }
    yt_nap_ms(500); /* a second run of any job would have shown by now */
    assert_int_equal(yt_sql_int(g.c.env, "SELECT count(*) FROM jobs WHERE payload->>'n' = '2'"
                                         " AND replays = 1 AND attempts = 2"),
                     KILLED_JOBS);
    assert_int_equal(yt_sql_int(g.c.env, "SELECT count(*) FROM job_attempts a JOIN jobs j ON"
                                         " j.id = a.job_id WHERE j.payload->>'n' = '2'"),
                     2 * KILLED_JOBS);
    assert_int_equal(letters(), 0);
    /* A third run finds nothing. */
    assert_int_equal(ctl("dlq", "replay", "--all", NULL), 3);
}

static void test_crash_states_beyond_the_duplicate_window(void **state)
{
    char marked[YT_JOB_ID_MAX], done[YT_JOB_ID_MAX], got[64], seq[24];
    assert_int_equal(yt_write_file(g.c.env, g.broken, "", 0644), 0);
    submit_dead(marked, "{\"type\":\"gate\",\"payload\":{\"n\":3}}");
    submit_dead(done, "{\"type\":\"gate\",\"payload\":{\"n\":4}}");
    assert_int_equal(unlink(g.broken), 0);
    long long mseq = seq_of(marked), dseq = seq_of(done);
    assert_true(mseq > 0 && dseq > 0);

    /* Crashed after marking, before publishing: resumed, runs once. */
    assert_int_equal(yt_sql_exec(g.c.env, "UPDATE jobs SET status = 'queued', finished_at = NULL,"
                                 " js_seq = NULL, replayed_seq = %lld, replays = 1,"
                                 " replay_budget = 5, max_attempts = 6 WHERE id = '%s'",
                                 mseq, marked),
                     0);
    /* Replayed and run long ago, its copy left behind (the publish's id
     * never reached JetStream: no duplicate window can help). */
    assert_int_equal(yt_sql_exec(g.c.env, "UPDATE jobs SET status = 'succeeded',"
                                 " replayed_seq = %lld, replays = 1 WHERE id = '%s'",
                                 dseq, done),
                     0);
    assert_int_equal(ctl("dlq", "replay", "--all", "--dry-run", "--json", NULL), 0);
    json_t *doc = out_json("dlq replay --dry-run");
    assert_int_equal(json_integer_value(json_object_get(doc, "would_replay")), 1);
    assert_int_equal(json_integer_value(json_object_get(doc, "already_replayed")), 1);
    json_decref(doc);
    snprintf(seq, sizeof seq, "%lld", dseq);
    assert_int_equal(ctl("dlq", "replay", "--all", NULL), 0);
    if (!strstr(g.out, "1 replayed, 1 already replayed"))
        fail_msg("expected one resumed and one left copy removed, got:\n%s", g.out);
    if (yt_job_wait_status(g.c.port, marked, "succeeded", DEAD_WAIT_MS, got, sizeof got))
        fail_msg("expected the resumed job %s to succeed, last seen %s", marked, got);
    yt_nap_ms(500);
    assert_int_equal(yt_sql_int(g.c.env, "SELECT count(*) FROM job_attempts WHERE job_id = '%s'",
                                marked),
                     2);
    assert_int_equal(yt_sql_int(g.c.env, "SELECT count(*) FROM job_attempts WHERE job_id = '%s'",
                                done),
                     1);
    assert_int_equal(letters(), 0);
}

static void test_purge_older_than(void **state)
{
    char a[YT_JOB_ID_MAX], b[YT_JOB_ID_MAX];
    submit_dead(a, "{\"type\":\"fail\",\"payload\":{\"retryable\":false,\"message\":\"old\"}}");
    submit_dead(b, "{\"type\":\"fail\",\"payload\":{\"retryable\":false,\"message\":\"old\"}}");
    assert_int_equal(ctl("dlq", "purge", "--older-than", "1h", "--dry-run", "--json", NULL), 0);
    json_t *doc = out_json("dlq purge --dry-run");
    assert_int_equal(json_integer_value(json_object_get(doc, "would_purge")), 0);
    json_decref(doc);
    yt_nap_ms(2100);
    assert_int_equal(ctl("dlq", "purge", "--older-than", "2s", "--dry-run", NULL), 0);
    assert_non_null(strstr(g.out, "2 dead letters would be purged"));
    assert_int_equal(letters(), 2);
    assert_int_equal(ctl("dlq", "purge", "--older-than", "2s", "--json", NULL), 0);
    doc = out_json("dlq purge");
    assert_int_equal(json_integer_value(json_object_get(doc, "purged")), 2);
    json_decref(doc);
    assert_int_equal(letters(), 0);
}

static int has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 && *s != '\n')
            return 1;
    return 0;
}

static void test_control_characters_never_reach_the_terminal(void **state)
{
    char id[YT_JOB_ID_MAX];
    /* An OSC title change, a colour, a bell and a cursor move in one error. */
    submit_dead(id, "{\"type\":\"fail\",\"payload\":{\"retryable\":false,\"message\":"
                    "\"\\u001b]0;pwned\\u0007\\u001b[31mRED\\u001b[0m tail\\u001b[2J\\u0007end\"}}");
    assert_int_equal(yt_sql_int(g.c.env, "SELECT count(*) FROM jobs WHERE id = '%s' AND"
                                " last_error LIKE '%%' || chr(27) || '%%'", id),
                     1);
    const char *views[][5] = {{"dlq", "list", NULL},
                              {"jobs", "list", "--status", "dead", NULL},
                              {"jobs", "get", id, NULL}};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(ctl(views[i][0], views[i][1], views[i][2], views[i][3], NULL), 0);
        /* (get also prints the payload, as JSON: escaped, so "pwned" shows) */
        if (has_control(g.out) || (i < 2 && strstr(g.out, "pwned")) ||
            !strstr(g.out, "RED tail"))
            fail_msg("yardctl %s %s: expected the error without control characters "
                     "(\"RED tail\"), got:\n%.3000s", views[i][0], views[i][1], g.out);
    }
    assert_int_equal(ctl("dlq", "list", "--json", NULL), 0);
    if (has_control(g.out) || !strcasestr(g.out, "\\u001b"))
        fail_msg("dlq list --json: expected escapes as \\u001b, got:\n%.3000s", g.out);
    json_decref(out_json("dlq list"));
    empty_dlq();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_filter_dry_run_and_replay_after_the_fix),
        cmocka_unit_test(test_exit_codes_and_bad_arguments),
        cmocka_unit_test(test_a_replay_killed_halfway_and_run_again_replays_each_once),
        cmocka_unit_test(test_crash_states_beyond_the_duplicate_window),
        cmocka_unit_test(test_purge_older_than),
        cmocka_unit_test(test_control_characters_never_reach_the_terminal),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
