/*
 * chaos_cluster_leader_kill.c - a 3-node JetStream cluster with R3 streams
 * (the shipped ops/nats configuration), and the JOBS stream's leader
 * killed with SIGKILL in the middle of a run.
 *
 * About 1,000 jobs/s are posted through the gateway to an execute worker,
 * both connected to all three nodes. After 2 s the node that leads JOBS is
 * killed; the remaining two elect a new leader and go on (the gateway may
 * refuse with 503 meanwhile; the producer retries with the same idempotency
 * keys). At the end every job answered 202 has exactly one succeeded
 * attempt and no other job exists. Recovery: from the kill to the first 202.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include <jansson.h>

#include "harness.h"
#include "js_info.h"
#include "log.h"
#include "yt_chaos.h"
#include "yt_nats_cluster.h"
#include "yt_workers.h"

#define JOBS 6000

static char *const env[] = {"YARD_JS_REPLICAS=3", "YARD_JS_ACK_WAIT_S=5", "YARD_LOG_LEVEL=warn",
                            NULL};

/* The index of the node leading JOBS with every replica current, or -1. */
static int jobs_leader(yard_js_t *js, const yt_nats_cluster_t *nc)
{
    json_t *info = NULL, *st;
    size_t i;
    int found = -1;
    if (yard_js_cluster_info(&info, js) != 0)
        return -1;
    json_array_foreach(json_object_get(info, "streams"), i, st)
    {
        if (strcmp(json_string_value(json_object_get(st, "name")) ?: "", "JOBS") != 0)
            continue;
        json_t *cl = json_object_get(st, "cluster"), *rep;
        const char *leader = json_string_value(json_object_get(cl, "leader"));
        size_t k, current = 0;
        json_array_foreach(json_object_get(cl, "replicas"), k, rep)
            current += json_is_true(json_object_get(rep, "current"));
        for (int n = 0; leader && current == 2 && n < YT_NATS_NODES; n++) {
            char want[32];
            snprintf(want, sizeof want, "yard-%s", nc->nodes[n].name);
            if (strcmp(leader, want) == 0)
                found = n;
        }
    }
    json_decref(info);
    return found;
}

static void test_jobs_leader_killed_mid_run(void **state)
{
    yt_cluster_t c = {0};
    yt_nats_cluster_t nc;
    memset(&nc, 0, sizeof nc);
    assert_int_equal(yt_env_create(&c.env, YT_PG | YT_MIGRATE), 0);
    assert_int_equal(yt_nats_cluster_start(&nc, c.env), 0);
    c.gw = yt_e2e_gateway_start(c.env, &c.port, env);
    assert_true(c.gw > 0);
    assert_int_equal(yt_js_open(&c.js, c.env), 0);
    assert_int_equal(yt_worker_start(&c.audit, c.env, "audit", NULL, env, 0), 0);
    assert_int_equal(yt_worker_start(&c.exec, c.env, "execute", NULL, env, 0), 0);
    int victim = -1;
    for (long long end = yt_now_ms() + 60000; victim < 0 && yt_now_ms() < end;) {
        victim = jobs_leader(c.js, &nc);
        if (victim < 0)
            yt_nap_ms(200);
    }
    if (victim < 0)
        fail_msg("JOBS got no leader with two current replicas within 60 s");

    yt_chaos_load_t load = {.port = c.port, .njobs = JOBS, .batch = 20, .threads = 2,
                            .batches_per_s = 25, .job_json = "{\"type\":\"noop\"}", .run = "r3"};
    yt_chaos_t *ch;
    assert_int_equal(yt_chaos_start(&ch, &load), 0);
    yt_nap_ms(2000);
    long long killed = yt_now_ms();
    kill(nc.nodes[victim].pid, SIGKILL);
    waitpid(nc.nodes[victim].pid, NULL, 0);
    nc.nodes[victim].pid = 0;
    printf("chaos r3-leader-kill: killed %s, the JOBS leader, with SIGKILL\n",
           nc.nodes[victim].name);
    int all = yt_chaos_finish(ch, 120000);
    long long first = yt_chaos_first_ok_after(ch, killed);
    int verdict = yt_chaos_verdict(ch, c.env, "r3-leader-kill", first < 0 ? -1 : first - killed,
                                   120000);
    long accepted, refused, no_answer, other;
    yt_chaos_counts(ch, &accepted, &refused, &no_answer, &other);
    yt_chaos_free(ch);
    yt_cluster_stop_worker(&c, &c.exec);
    yt_cluster_stop_worker(&c, &c.audit);
    if (c.gw > 0 && yt_kill_wait(c.gw, SIGTERM, 10000) < 0)
        yt_kill_wait(c.gw, SIGKILL, 5000);
    c.gw = 0;
    yard_js_destroy(c.js, 1000);
    c.js = NULL;
    yt_nats_cluster_stop(c.env, &nc);
    yt_env_destroy(c.env);
    assert_int_equal(other, 0);
    assert_int_equal(all, 0);
    assert_int_equal(verdict, 0);
}

int main(void)
{
    yard_log_init("chaos_cluster_leader_kill", YARD_LOG_ERROR);
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_jobs_leader_killed_mid_run)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
