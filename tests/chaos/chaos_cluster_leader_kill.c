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
 * The victim leads both JOBS and EVENTS; the worker is connected to
 * another node, and another node leads the consumer execute_default
 * (leaderships are moved so first). While EVENTS elects a new leader the
 * worker cannot store its outcomes' lifecycle events, so it cannot record
 * them, yet the consumer keeps delivering. The
 * worker must hold the finished jobs and try again, not hand their messages
 * back: each hand-back spends one of the consumer's MaxDeliver deliveries,
 * about one a second, and a message out of deliveries is never delivered
 * again (its job stays `running`, or the poison path marks it dead). The
 * consumers here allow 4 deliveries (YARD_JS_MAX_DELIVER), so an election's
 * few seconds weigh as 40 s would against the default 25 (likely the stall
 * seen once under AddressSanitizer, whose load slows elections).
 * chaos_events_outage.c shows the same with an outage longer than any
 * election.
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
#include "yt_http.h"
#include "yt_nats_cluster.h"
#include "yt_workers.h"

#define JOBS 6000
#define LEADER_WAIT_MS 60000

#define MAX_DELIVER "4"

static char *const env[] = {"YARD_JS_REPLICAS=3", "YARD_JS_ACK_WAIT_S=5", "YARD_LOG_LEVEL=warn",
                            "YARD_JS_MAX_DELIVER=" MAX_DELIVER, "YARD_JOB_MAX_ATTEMPTS=3", NULL};

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

/* The index of the node leading consumer durable of JOBS, or -1. */
static int consumer_leader(yard_js_t *js, const yt_nats_cluster_t *nc, const char *durable)
{
    jsConsumerInfo *ci = NULL;
    jsErrCode jerr = 0;
    int found = -1;
    if (js_GetConsumerInfo(&ci, yard_js_ctx(js), "JOBS", durable, NULL, &jerr) != NATS_OK)
        return -1;
    for (int n = 0; ci->Cluster && ci->Cluster->Leader && n < YT_NATS_NODES; n++) {
        char want[32];
        snprintf(want, sizeof want, "yard-%s", nc->nodes[n].name);
        if (strcmp(ci->Cluster->Leader, want) == 0)
            found = n;
    }
    jsConsumerInfo_Destroy(ci);
    return found;
}

/* Asks the leader of a stream or consumer (what: "STREAM.LEADER.STEPDOWN.<stream>"
 * or "CONSUMER.LEADER.STEPDOWN.<stream>.<consumer>") to step down: another
 * replica is elected. */
static void step_down(yard_js_t *js, const char *what)
{
    char subject[160];
    natsMsg *reply = NULL;
    snprintf(subject, sizeof subject, "$JS.API.%s", what);
    natsConnection_RequestString(&reply, yard_js_conn(js), subject, "", 5000);
    natsMsg_Destroy(reply);
}

/* The index of the node the program with process pid (a worker: its NATS
 * connection is named host:pid) is connected to, from the nodes' /connz;
 * -1 when none lists it. */
static int node_of(const yt_nats_cluster_t *nc, pid_t pid)
{
    char want[32];
    snprintf(want, sizeof want, ":%d\"", (int)pid);
    for (int n = 0; n < YT_NATS_NODES; n++) {
        yt_http_resp_t r = {0};
        int st = yt_http_request(&r, nc->nodes[n].mon_port, "GET", "/connz?limit=1024", NULL,
                                 NULL, 0);
        int here = st == 200 && strstr(r.body, want) != NULL;
        yt_http_resp_free(&r);
        if (here)
            return n;
    }
    return -1;
}

/* The index of the node to kill: it leads JOBS and EVENTS (with current
 * replicas), the execute worker is connected to another node and another
 * node leads the consumer execute_default, so that the worker goes on
 * fetching while EVENTS elects a new leader. Leaderships are moved until it
 * is so; -1 when that fails within LEADER_WAIT_MS. */
static int pick_victim(yard_js_t *js, const yt_nats_cluster_t *nc, pid_t worker)
{
    for (long long end = yt_now_ms() + LEADER_WAIT_MS; yt_now_ms() < end; yt_nap_ms(200)) {
        int jobs = stream_leader(js, nc, "JOBS");
        int events = stream_leader(js, nc, "EVENTS");
        int deliveries = consumer_leader(js, nc, "execute_default");
        int fetcher = node_of(nc, worker);
        if (jobs < 0 || events < 0 || deliveries < 0 || fetcher < 0)
            continue;
        if (jobs != fetcher && jobs == events && deliveries != jobs)
            return jobs;
        step_down(js, jobs == fetcher   ? "STREAM.LEADER.STEPDOWN.JOBS"
                      : jobs != events ? "STREAM.LEADER.STEPDOWN.EVENTS"
                                       : "CONSUMER.LEADER.STEPDOWN.JOBS.execute_default");
        yt_nap_ms(1000);
    }
    return -1;
}

static void test_jobs_leader_killed_mid_run(void **state)
{
    const char *scenario = "r3-leader-kill";
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
    int victim = pick_victim(c.js, &nc, c.exec.pid);
    if (victim < 0)
        fail_msg("JOBS and EVENTS got no common leader apart from the worker's node and "
                 "execute_default's leader within %d s",
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
    printf("chaos %s: killed %s, the JOBS and EVENTS leader, with SIGKILL\n", scenario,
           nc.nodes[victim].name);
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

int main(void)
{
    yard_log_init("chaos_cluster_leader_kill", YARD_LOG_ERROR);
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_jobs_leader_killed_mid_run)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
