/*
 * test_wk_idle.c - an idle cluster leaves nats-server idle. Real
 * yard-gateway and yard-worker processes (every role: execute, schedule,
 * audit, notify), real nats-server and PostgreSQL.
 *
 * After one job has gone through (so every fetch loop has taken a batch and
 * gone back to waiting), nats-server's own count of messages received
 * (/varz in_msgs) grows by at most IDLE_MSGS_PER_S a second over
 * IDLE_WINDOW_MS. The workers' fetch loops once looked without waiting
 * (no_wait pull requests), and the late "no messages" answer of such a look
 * ended the next wait at once: every idle loop spun, and an idle cluster
 * sent nats-server over 8,000 pull requests a second (73% of a core for
 * nats-server, 10-17% for each worker). Waiting loops send a few dozen.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "log.h"
#include "yt_http.h"
#include "yt_workers.h"

#define IDLE_WINDOW_MS 5000
#define IDLE_SETTLE_MS 2000 /* after the job: the loops go back to waiting */
#define IDLE_MSGS_PER_S 400 /* measured: about 80; spinning loops: over 8,000 */

static struct {
    yt_cluster_t c;
    yt_worker_t notify;
} g;

/* nats-server's in_msgs (GET /varz on its monitoring port), or -1. */
static long long nats_in_msgs(void)
{
    yt_http_resp_t resp = {0};
    long long n = -1;
    if (yt_http_request(&resp, g.c.env->nats_mon_port, "GET", "/varz", NULL, NULL, 0) == 200) {
        json_t *v = json_loads(resp.body, 0, NULL);
        json_t *in = json_object_get(v, "in_msgs");
        if (json_is_integer(in))
            n = json_integer_value(in);
        json_decref(v);
    }
    yt_http_resp_free(&resp);
    return n;
}

static void test_idle_cluster_sends_few_messages(void **state)
{
    char id[YT_JOB_ID_MAX], got[32];
    assert_int_equal(yt_job_submit(g.c.port, "{\"type\":\"noop\"}", id), 202);
    if (yt_job_wait_status(g.c.port, id, "succeeded", 20000, got, sizeof got) != 0)
        fail_msg("expected the job to succeed, but it is %s", got);
    yt_nap_ms(IDLE_SETTLE_MS);
    long long before = nats_in_msgs();
    yt_nap_ms(IDLE_WINDOW_MS);
    long long after = nats_in_msgs();
    assert_true(before >= 0 && after >= before);
    long long per_s = (after - before) * 1000 / IDLE_WINDOW_MS;
    fprintf(stderr, "idle cluster: nats-server received %lld messages/s\n", per_s);
    if (per_s > IDLE_MSGS_PER_S)
        fail_msg("expected an idle cluster to send nats-server at most %d messages/s, but it "
                 "sent %lld/s (a fetch loop spins)",
                 IDLE_MSGS_PER_S, per_s);
}

static int setup(void **state)
{
    yard_log_init("test_wk_idle", YARD_LOG_ERROR);
    static char *const notify_env[] = {"YARD_NOTIFY_SECRET=idle-test-secret", NULL};
    if (yt_cluster_start(&g.c, NULL) != 0)
        return -1;
    if (yt_worker_start(&g.c.exec, g.c.env, "execute", NULL, NULL, 0) != 0 ||
        yt_worker_start(&g.c.sched, g.c.env, "schedule", NULL, NULL, 0) != 0 ||
        yt_worker_start(&g.notify, g.c.env, "notify", NULL, notify_env, 0) != 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    yt_cluster_stop_worker(&g.c, &g.notify);
    yt_cluster_stop(&g.c);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idle_cluster_sends_few_messages),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
