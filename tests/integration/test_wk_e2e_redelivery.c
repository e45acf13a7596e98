/*
 * test_wk_e2e_redelivery.c - the workers end to end where JetStream
 * redelivers: heartbeats, the max-deliveries ceiling, poison messages.
 * Real yard-gateway and yard-worker processes, real nats-server and
 * PostgreSQL.
 *
 * Every process runs with YARD_JS_MAX_DELIVER=3, YARD_JS_ACK_WAIT_S=2 and
 * YARD_JOB_MAX_ATTEMPTS=2 (each one ensures the consumers with its own
 * settings), the execute worker also with YARD_HANDLERS_ALLOW_CRASH=true and
 * YARD_RETRY_BASE_MS=100. In order:
 *   1. a 5 s sleep job (ack wait 2 s) is kept alive by heartbeats: one
 *      attempt, attempt 1, succeeded;
 *   2. a retryable failure with max_attempts 10 stops at the consumer's
 *      MaxDeliver (3): dead after 3 attempts, DLQ Yard-Attempts 3;
 *   3. poison: a `crash` job aborts the worker on each of its 3 deliveries
 *      (the test restarts it whenever it dies); then the job is `dead`, its
 *      envelope is in the DLQ on dlq.jobs.execute.default with Yard-Attempts
 *      3 (the max-deliveries advisory path), and JOBS no longer holds it;
 *   4. a crash job whose worker died while it was `running` is cancelled
 *      (202: a request, since it is running): when JetStream redelivers it,
 *      it must not run again (no more aborted workers) and must end
 *      `cancelled`.
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
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>

#include "log.h"
#include "yt_http.h"
#include "yt_workers.h"

#define MAX_DELIVER 3

static struct {
    yt_cluster_t c;
} g;

static char *const js_env[] = {"YARD_JS_MAX_DELIVER=3", "YARD_JS_ACK_WAIT_S=2",
                         "YARD_JOB_MAX_ATTEMPTS=2", NULL};
static char *const exec_env[] = {"YARD_JS_MAX_DELIVER=3", "YARD_JS_ACK_WAIT_S=2",
                           "YARD_JOB_MAX_ATTEMPTS=2", "YARD_HANDLERS_ALLOW_CRASH=true",
                           "YARD_RETRY_BASE_MS=100", NULL};

static int setup(void **state)
{
    /* The crash handler aborts: no core files from the workers. */
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    yard_log_init("test_wk_e2e_redelivery", YARD_LOG_ERROR);
    return yt_cluster_start(&g.c, js_env);
}

static int teardown(void **state)
{
    yt_cluster_stop(&g.c);
    return 0;
}

static void ensure_exec_worker(void)
{
    if (g.c.exec.pid > 0 && !yt_worker_exited(g.c.env, &g.c.exec))
        return;
    if (yt_worker_start(&g.c.exec, g.c.env, "execute", NULL, exec_env, 0) != 0)
        fail_msg("expected a ready execute worker, but it did not start (log above)");
}

/* The job's attempts as "1:retry,2:succeeded" into out. */
static void attempts_text(const char *id, char *out, size_t cap)
{
    yt_sql_text(g.c.env, out, cap,
                "SELECT coalesce(string_agg(attempt || ':' || outcome, ',' ORDER BY attempt), '')"
                " FROM job_attempts WHERE job_id = '%s'", id);
}

static void test_heartbeats_keep_a_long_job_past_ack_wait(void **state)
{
    char id[YT_JOB_ID_MAX], got[64], attempts[256];
    ensure_exec_worker();
    int st = yt_job_submit(g.c.port, "{\"type\":\"sleep\",\"payload\":{\"ms\":5000}}", id);
    if (st != 202)
        fail_msg("expected 202 for a sleep job, got %d", st);
    if (yt_job_wait_status(g.c.port, id, "succeeded", 15000, got, sizeof got) != 0) {
        yt_worker_log_tail(g.c.env, &g.c.exec);
        fail_msg("5 s sleep job %s (ack wait 2 s): expected succeeded within 15 s, got %s", id,
                 got);
    }
    yt_nap_ms(500); /* a second run started by a redelivery would add a row */
    attempts_text(id, attempts, sizeof attempts);
    if (strcmp(attempts, "1:succeeded") != 0)
        fail_msg("5 s sleep job %s (ack wait 2 s): expected heartbeats to prevent any "
                 "redelivery (attempts `1:succeeded`), got attempts `%s`", id, attempts);
}

static void test_max_deliver_caps_attempts(void **state)
{
    char id[YT_JOB_ID_MAX], got[64], attempts[256];
    ensure_exec_worker();
    int st = yt_job_submit(g.c.port,
                           "{\"type\":\"fail\",\"payload\":{\"retryable\":true,"
                           "\"message\":\"again\"},\"max_attempts\":10}", id);
    if (st != 202)
        fail_msg("expected 202 for a fail job with max_attempts 10, got %d", st);
    if (yt_job_wait_status(g.c.port, id, "dead", 15000, got, sizeof got) != 0) {
        yt_worker_log_tail(g.c.env, &g.c.exec);
        fail_msg("fail job %s (max_attempts 10, MaxDeliver 3): expected dead within 15 s, got "
                 "%s", id, got);
    }
    attempts_text(id, attempts, sizeof attempts);
    if (strcmp(attempts, "1:retry,2:retry,3:dead") != 0)
        fail_msg("fail job %s (max_attempts 10, MaxDeliver 3): expected attempts "
                 "`1:retry,2:retry,3:dead`, got `%s`", id, attempts);
    yard_js_msg_t *m = NULL;
    int found = yt_js_find(&m, g.c.js, "DLQ", "dlq.jobs.execute.default", "Yard-Job-Id", id);
    const char *n = found == 1 ? yt_js_header(m, "Yard-Attempts") : "";
    int ok = found == 1 && strcmp(n, "3") == 0;
    char seen[16];
    snprintf(seen, sizeof seen, "%s", n);
    yard_js_msg_destroy(m);
    if (!ok)
        fail_msg("fail job %s: expected its DLQ message with Yard-Attempts 3, found %s%s", id,
                 found == 1 ? "Yard-Attempts " : found == 0 ? "no message" : "an error (above)",
                 seen);
}

static void test_poison_message_reaches_the_dlq(void **state)
{
    char id[YT_JOB_ID_MAX], status[32] = "", why[512] = "";
    int crashes = 0, other_exits = 0, last_status = 0;
    ensure_exec_worker();
    int st = yt_job_submit(g.c.port, "{\"type\":\"crash\"}", id);
    if (st != 202)
        fail_msg("expected 202 for a crash job, got %d", st);

    long long deadline = yt_now_ms() + 60000;
    while (yt_now_ms() < deadline) {
        if (yt_worker_exited(g.c.env, &g.c.exec)) {
            int ws = g.c.exec.status;
            if (WIFSIGNALED(ws) && WTERMSIG(ws) == SIGABRT)
                crashes++;
            else
                other_exits++;
            last_status = ws;
            if (yt_worker_start(&g.c.exec, g.c.env, "execute", NULL, exec_env, YT_WORKER_NO_WAIT) != 0)
                fail_msg("expected to restart the execute worker after crash %d", crashes);
        }
        if (yt_sql_text(g.c.env, status, sizeof status, "SELECT status FROM jobs WHERE id = '%s'",
                        id) == 1 &&
            strcmp(status, "dead") == 0)
            break;
        yt_nap_ms(100);
    }
    if (strcmp(status, "dead") != 0) {
        yt_worker_log_tail(g.c.env, &g.c.exec);
        fail_msg("poison job %s: expected status dead within 60 s, got `%s` after %d worker "
                 "crashes", id, status, crashes);
    }
    if (crashes != MAX_DELIVER || other_exits != 0)
        fail_msg("poison job %s: expected each of the %d deliveries to abort a worker (SIGABRT), "
                 "got %d aborts and %d other exits (last: %s)", id, MAX_DELIVER, crashes,
                 other_exits, yt_wait_status_text(last_status));

    /* The DLQ copy, with the headers of DESIGN.md. */
    yard_js_msg_t *m = NULL;
    int found = yt_js_find(&m, g.c.js, "DLQ", "dlq.jobs.execute.default", "Yard-Job-Id", id);
    if (found != 1)
        fail_msg("poison job %s: expected a message on dlq.jobs.execute.default with its "
                 "Yard-Job-Id, found %s", id, found == 0 ? "none" : "an error (above)");
    if (strcmp(yt_js_header(m, "Yard-Original-Subject"), "jobs.execute.default") != 0)
        snprintf(why, sizeof why, "Yard-Original-Subject `%s`, expected jobs.execute.default",
                 yt_js_header(m, "Yard-Original-Subject"));
    else if (strcmp(yt_js_header(m, "Yard-Attempts"), "3") != 0)
        snprintf(why, sizeof why, "Yard-Attempts `%s`, expected 3 (max deliveries)",
                 yt_js_header(m, "Yard-Attempts"));
    else if (!*yt_js_header(m, "Yard-Last-Error") || !*yt_js_header(m, "Yard-Died-At"))
        snprintf(why, sizeof why, "Yard-Last-Error `%s`, Yard-Died-At `%s`: expected both set",
                 yt_js_header(m, "Yard-Last-Error"), yt_js_header(m, "Yard-Died-At"));
    yard_js_msg_destroy(m);
    m = NULL;
    if (why[0])
        fail_msg("poison job %s, DLQ message: %s", id, why);

    /* Gone from JOBS (deleted right after the row was marked dead). */
    deadline = yt_now_ms() + 5000;
    while ((found = yt_js_find(&m, g.c.js, "JOBS", NULL, "Nats-Msg-Id", id)) == 1 &&
           yt_now_ms() < deadline) {
        yard_js_msg_destroy(m);
        m = NULL;
        yt_nap_ms(100);
    }
    yard_js_msg_destroy(m);
    if (found != 0)
        fail_msg("poison job %s: expected JOBS to no longer hold its message, %s", id,
                 found == 1 ? "it is still there after 5 s" : "the lookup failed (above)");
    uint64_t pending = 0, ack_pending = 0;
    if (yard_js_consumer_depth(&pending, &ack_pending, g.c.js, "JOBS", "execute_default") != 0 ||
        pending + ack_pending != 0)
        fail_msg("poison job %s: expected execute_default empty, got pending %llu, ack pending "
                 "%llu", id, (unsigned long long)pending, (unsigned long long)ack_pending);
    long long attempts = yt_sql_int(g.c.env, "SELECT attempts FROM jobs WHERE id = '%s'", id);
    if (attempts != MAX_DELIVER)
        fail_msg("poison job %s: expected jobs.attempts %d, got %lld", id, MAX_DELIVER, attempts);
}

/* Waits up to timeout_ms for the execute worker to die; returns its wait
 * status, or -1 if it still runs. */
static int wait_exec_exit(int timeout_ms)
{
    long long deadline = yt_now_ms() + timeout_ms;
    while (!yt_worker_exited(g.c.env, &g.c.exec)) {
        if (yt_now_ms() >= deadline)
            return -1;
        yt_nap_ms(20);
    }
    return g.c.exec.status;
}

static void test_cancelled_running_job_is_not_run_again(void **state)
{
    char id[YT_JOB_ID_MAX], status[32] = "", cancel_status[32];
    int crashes_after = 0;
    ensure_exec_worker();
    /* It crashes after 500 ms: a job that has run that long is marked
     * running (a shorter one's row stays queued until its outcome). */
    int st = yt_job_submit(g.c.port, "{\"type\":\"crash\",\"payload\":{\"after_ms\":500}}",
                           id);
    if (st != 202)
        fail_msg("expected 202 for a crash job, got %d", st);
    int ws = wait_exec_exit(10000);
    if (ws < 0 || !WIFSIGNALED(ws) || WTERMSIG(ws) != SIGABRT)
        fail_msg("crash job %s: expected the worker to abort on it, got %s", id,
                 ws < 0 ? "still running after 10 s" : yt_wait_status_text(ws));
    /* Its worker is gone while the job is `running`: the cancel is only a
     * request (202), and the job must not run again when it is redelivered. */
    st = yt_job_cancel(g.c.port, id, cancel_status, sizeof cancel_status);
    if (st != 202)
        fail_msg("DELETE of running job %s: expected 202, got %d (status `%s`)", id, st,
                 cancel_status);
    if (yt_worker_start(&g.c.exec, g.c.env, "execute", NULL, exec_env, YT_WORKER_NO_WAIT) != 0)
        fail_msg("expected to restart the execute worker");
    long long deadline = yt_now_ms() + 15000, settled_at = 0;
    while (yt_now_ms() < deadline) {
        if (yt_worker_exited(g.c.env, &g.c.exec)) {
            crashes_after++;
            if (yt_worker_start(&g.c.exec, g.c.env, "execute", NULL, exec_env, YT_WORKER_NO_WAIT) != 0)
                fail_msg("expected to restart the execute worker");
        }
        yt_sql_text(g.c.env, status, sizeof status, "SELECT status FROM jobs WHERE id = '%s'", id);
        int final = strcmp(status, "cancelled") == 0 || strcmp(status, "dead") == 0;
        uint64_t pending = 0, ack_pending = 0;
        int empty = yard_js_consumer_depth(&pending, &ack_pending, g.c.js, "JOBS",
                                           "execute_default") == 0 && pending + ack_pending == 0;
        if (final && empty && !settled_at)
            settled_at = yt_now_ms();
        if (settled_at && yt_now_ms() - settled_at > 1000)
            break;
        yt_nap_ms(100);
    }
    if (crashes_after != 0 || strcmp(status, "cancelled") != 0)
        fail_msg("crash job %s cancelled (202) while its worker was down: expected it never to "
                 "run again and to end cancelled, got status `%s` after it crashed %d more "
                 "workers", id, status, crashes_after);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_heartbeats_keep_a_long_job_past_ack_wait),
        cmocka_unit_test(test_max_deliver_caps_attempts),
        cmocka_unit_test(test_poison_message_reaches_the_dlq),
        cmocka_unit_test(test_cancelled_running_job_is_not_run_again),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
