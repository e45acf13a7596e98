/*
 * test_wk_heartbeat.c - the execute runtime keeps a job from being
 * redelivered exactly while its handler heart-beats (handler.h).
 *
 * The runtime runs in this process (wk_execute_start) with two C handlers
 * registered by the test, against a real nats-server and PostgreSQL, with
 * AckWait 2 s:
 *   1. `beat` works 3 x AckWait, heart-beating every WK_HEARTBEAT_MS (the
 *      slowest rhythm handler.h allows): it runs once, never redelivered;
 *   2. `hang` blocks without any heartbeat: its ack deadline stops being
 *      extended, JetStream redelivers the job while the first run still
 *      blocks, and the redelivered copy runs (and ends the job).
 * Without real heartbeats (in-progress acks for every running job whatever
 * its handler does) the second test fails; without in-progress acks at all
 * the first one does.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "envelope.h"
#include "err.h"
#include "harness.h"
#include "log.h"
#include "wk.h"
#include "yt_workers.h"

#define ACK_WAIT_S 2
#define BEAT_WORK_MS (3 * ACK_WAIT_S * 1000)
/* The blocked first run of `hang` gives up after this without a redelivery. */
#define HANG_MAX_MS (5 * ACK_WAIT_S * 1000)
#define BEAT_ID "01900000-0000-7000-8000-0000000000b1"
#define HANG_ID "01900000-0000-7000-8000-0000000000b2"

static struct {
    yt_env_t *env;
    wk_t wk;
    wk_runtime_t *rt;
    atomic_int beat_runs, hang_runs;
} g;

static void nap_ms(int64_t ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Works BEAT_WORK_MS, heart-beating every WK_HEARTBEAT_MS. */
static void beat_handler(const wk_job_t *job, wk_result_t *res, void *ud)
{
    atomic_fetch_add(&g.beat_runs, 1);
    for (int64_t done = 0; done < BEAT_WORK_MS; done += WK_HEARTBEAT_MS) {
        nap_ms(WK_HEARTBEAT_MS);
        wk_outcome_t o = wk_job_check(job);
        if (o != WK_OUTCOME_OK) {
            wk_result_set(res, o, "stopped after %lld ms", (long long)done);
            return;
        }
        wk_job_heartbeat(job);
    }
}

/* First run: blocks, never heart-beating, until a second run has started
 * (or HANG_MAX_MS). Later runs end at once. */
static void hang_handler(const wk_job_t *job, wk_result_t *res, void *ud)
{
    if (atomic_fetch_add(&g.hang_runs, 1) > 0)
        return;
    int64_t end = wk_clock_ms() + HANG_MAX_MS;
    while (atomic_load(&g.hang_runs) < 2 && wk_clock_ms() < end &&
           !(job->cancelled && atomic_load(job->cancelled)))
        nap_ms(WK_POLL_MS);
}

static int setup(void **state)
{
    wk_t *wk = &g.wk;
    yard_log_init("test_wk_heartbeat", YARD_LOG_ERROR);
    if (yt_env_create(&g.env, YT_NATS | YT_PG | YT_MIGRATE) != 0)
        return -1;
    yard_config_defaults(&wk->cfg);
    yard_config_set(&wk->cfg, "nats_url", g.env->nats_url);
    yard_config_set(&wk->cfg, "pg_dsn", g.env->pg_dsn);
    yard_config_set(&wk->cfg, "js_ack_wait_s", "2");
    yard_config_set(&wk->cfg, "worker_concurrency", "4");
    yard_config_set(&wk->cfg, "worker_drain_timeout_s", "1");
    wk->role = "execute";
    snprintf(wk->worker_name, sizeof wk->worker_name, "test_wk_heartbeat:%d", (int)getpid());
    int n = yard_js_parse_queues("default", wk->queue_bufs, wk->queues, WK_MAX_QUEUES);
    if (n != 1)
        return -1;
    wk->nqueues = 1;
    if (wk_registry_create(&wk->registry) != 0 ||
        wk_registry_add(wk->registry, "beat", beat_handler, NULL) != 0 ||
        wk_registry_add(wk->registry, "hang", hang_handler, NULL) != 0 ||
        wk_metrics_init(wk) != 0 || yt_js_open(&wk->js, g.env) != 0 ||
        yard_js_ensure_topology(wk->js, &wk->cfg, wk->queues, wk->nqueues, NULL) != 0)
        return -1;
    return wk_execute_start(&g.rt, wk) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    wk_t *wk = &g.wk;
    atomic_store(&wk->stop_ms, wk_clock_ms());
    atomic_store(&wk->stopping, 1);
    wk_execute_join(g.rt);
    yard_js_destroy(wk->js, 1000);
    wk_registry_destroy(wk->registry);
    wk_metrics_fini(wk);
    yt_env_destroy(g.env);
    return 0;
}

/* Publishes a job of type to jobs.execute.default, as the gateway would. */
static void submit(const char *id, const char *type)
{
    yard_envelope_t env;
    char buf[512];
    size_t len = 0;
    yard_env_init(&env);
    env.id = (yard_str_t){id, strlen(id)};
    env.type = (yard_str_t){type, strlen(type)};
    env.max_attempts = 3;
    env.timeout_s = 60;
    env.created_at_ms = wk_wall_ms();
    assert_int_equal(yard_env_encode(&env, buf, sizeof buf, &len), 0);
    yard_js_pub_t pub = {.subject = "jobs.execute.default", .msg_id = id, .data = buf, .len = len};
    int rc = yard_js_publish(NULL, g.wk.js, &pub, 5000);
    if (rc != 0)
        fail_msg("expected to publish job %s, got %s", id, yard_strerror(rc));
}

static void test_heartbeating_handler_is_not_redelivered(void **state)
{
    submit(BEAT_ID, "beat");
    long long ok = yt_wait_sql(g.env, 1, BEAT_WORK_MS + 10000,
                               "SELECT count(*) FROM jobs WHERE id = '%s' AND status = "
                               "'succeeded'", BEAT_ID);
    nap_ms(ACK_WAIT_S * 1000); /* a redelivery still due would start a second run */
    int runs = atomic_load(&g.beat_runs);
    if (ok != 1 || runs != 1)
        fail_msg("`beat` (%d ms of work, a heartbeat every %d ms, AckWait %d s): expected it "
                 "to succeed after exactly 1 run, got %s after %d runs",
                 BEAT_WORK_MS, WK_HEARTBEAT_MS, ACK_WAIT_S,
                 ok == 1 ? "succeeded" : "no success", runs);
}

static void test_silent_handler_is_redelivered(void **state)
{
    long long t0 = yt_now_ms();
    submit(HANG_ID, "hang");
    long long ok = yt_wait_sql(g.env, 1, HANG_MAX_MS + 10000,
                               "SELECT count(*) FROM jobs WHERE id = '%s' AND status = "
                               "'succeeded'", HANG_ID);
    long long took = yt_now_ms() - t0;
    int runs = atomic_load(&g.hang_runs);
    if (ok != 1 || runs != 2)
        fail_msg("`hang` (no heartbeat, AckWait %d s): expected JetStream to redeliver it "
                 "while its first run blocked (2 runs), got %d runs after %lld ms (%s)",
                 ACK_WAIT_S, runs, took, ok == 1 ? "succeeded" : "not succeeded");
    if (took >= HANG_MAX_MS)
        fail_msg("`hang`: expected the redelivery within %d ms, came after %lld ms",
                 HANG_MAX_MS, took);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_heartbeating_handler_is_not_redelivered),
        cmocka_unit_test(test_silent_handler_is_redelivered),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
