/*
 * chaos_cluster_leader_kill.c - a 3-node JetStream cluster with R3 streams
 * (the shipped ops/nats configuration), and a stream's leader killed with
 * SIGKILL in the middle of a run.
 *
 * About 1,000 jobs/s are posted through the gateway to an execute worker,
 * both connected to all three nodes. After 2 s a node is killed; the
 * remaining two elect new leaders and go on (the gateway may refuse with
 * 503 meanwhile; the producer retries with the same idempotency keys). At
 * the end every job answered 202 has exactly one succeeded attempt and no
 * other job exists. Recovery: from the kill to the first 202.
 *
 * Two victims: the node leading JOBS (submissions and deliveries stop for
 * an election), and a node leading EVENTS but not JOBS (EVENTS' leadership
 * is moved off JOBS' leader first), so that jobs keep arriving and being
 * delivered while the worker cannot store their lifecycle events and so
 * cannot record their outcomes: it holds the finished jobs until EVENTS has
 * a leader again. chaos_events_outage.c shows why it must not hand them
 * back instead, with an outage longer than an election.
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
#include "js_internal.h"
#include "log.h"
#include "yt_chaos.h"
#include "yt_nats_cluster.h"
#include "yt_workers.h"

#define JOBS 6000
#define LEADER_WAIT_MS 60000

static char *const env[] = {"YARD_JS_REPLICAS=3", "YARD_JS_ACK_WAIT_S=5", "YARD_LOG_LEVEL=warn",
                            NULL};

/* The index of the node leading stream with every replica current, or -1. */
static int stream_leader(yard_js_t *js, const yt_nats_cluster_t *nc, const char *stream)
{
    json_t *info = NULL, *st;
    size_t i;
    int found = -1;
    if (yard_js_cluster_info(&info, js) != 0)
        return -1;
    json_array_foreach(json_object_get(info, "streams"), i, st)
    {
        if (strcmp(json_string_value(json_object_get(st, "name")) ?: "", stream) != 0)
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

/* Asks the leader of stream to step down (another replica is elected). */
static void stream_step_down(yard_js_t *js, const char *stream)
{
    char subject[128];
    natsMsg *reply = NULL;
    snprintf(subject, sizeof subject, "$JS.API.STREAM.LEADER.STEPDOWN.%s", stream);
    natsConnection_RequestString(&reply, yard_js_conn(js), subject, "", 5000);
    natsMsg_Destroy(reply);
}

typedef enum { KILL_JOBS_LEADER, KILL_EVENTS_LEADER } victim_t;

/* The node to kill, once JOBS and EVENTS have leaders with current
 * replicas: JOBS' leader, or EVENTS' leader after moving EVENTS'
 * leadership off JOBS' leader. -1 when that fails within LEADER_WAIT_MS. */
static int pick_victim(yard_js_t *js, const yt_nats_cluster_t *nc, victim_t which)
{
    for (long long end = yt_now_ms() + LEADER_WAIT_MS; yt_now_ms() < end; yt_nap_ms(200)) {
        int jobs = stream_leader(js, nc, "JOBS");
        int events = stream_leader(js, nc, "EVENTS");
        if (jobs < 0 || events < 0)
            continue;
        if (which == KILL_JOBS_LEADER)
            return jobs;
        if (events != jobs)
            return events;
        stream_step_down(js, "EVENTS");
        yt_nap_ms(1000);
    }
    return -1;
}

static void leader_killed_mid_run(victim_t which, const char *scenario)
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
    int victim = pick_victim(c.js, &nc, which);
    if (victim < 0)
        fail_msg("%s: JOBS and EVENTS got no leaders with current replicas%s within %d s",
                 scenario, which == KILL_EVENTS_LEADER ? " on two nodes" : "",
                 LEADER_WAIT_MS / 1000);

    yt_chaos_load_t load = {.port = c.port, .njobs = JOBS, .batch = 20, .threads = 2,
                            .batches_per_s = 25, .job_json = "{\"type\":\"noop\"}", .run = "r3"};
    yt_chaos_t *ch;
    assert_int_equal(yt_chaos_start(&ch, &load), 0);
    yt_nap_ms(2000);
    long long killed = yt_now_ms();
    kill(nc.nodes[victim].pid, SIGKILL);
    waitpid(nc.nodes[victim].pid, NULL, 0);
    nc.nodes[victim].pid = 0;
    printf("chaos %s: killed %s, the %s leader, with SIGKILL\n", scenario, nc.nodes[victim].name,
           which == KILL_JOBS_LEADER ? "JOBS" : "EVENTS (not JOBS)");
    int all = yt_chaos_finish(ch, 120000);
    long long first = yt_chaos_first_ok_after(ch, killed);
    int verdict = yt_chaos_verdict(ch, c.env, scenario, first < 0 ? -1 : first - killed, 120000);
    if (verdict != 0)
        yt_chaos_show_stranded(c.js, scenario);
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

static void test_jobs_leader_killed_mid_run(void **state)
{
    leader_killed_mid_run(KILL_JOBS_LEADER, "r3-leader-kill");
}

static void test_events_leader_killed_mid_run(void **state)
{
    leader_killed_mid_run(KILL_EVENTS_LEADER, "r3-events-leader-kill");
}

int main(void)
{
    yard_log_init("chaos_cluster_leader_kill", YARD_LOG_ERROR);
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_jobs_leader_killed_mid_run),
                                       cmocka_unit_test(test_events_leader_killed_mid_run)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
