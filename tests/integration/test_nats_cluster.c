/*
 * test_nats_cluster.c - Switchyard on the 3-node JetStream cluster of
 * ops/nats/ with R3 streams. Three real nats-servers from the shipped
 * configuration on loopback (yt_nats_cluster.h), real PostgreSQL, the real
 * gateway, audit and execute workers, all with YARD_JS_REPLICAS=3 and the
 * three nodes' URLs. One cluster for the whole group, in this order:
 *   1. the topology is replicated: a gateway started first with
 *      YARD_JS_REPLICAS=1 makes R1 streams; the programs started then with 3
 *      update them in place, and JOBS, EVENTS and DLQ report 3 replicas (a
 *      leader and two current peers, within a minute) in cluster `switchyard`
 *      (ops/nats/node-*.conf), and so do all five consumers;
 *   2. 200 jobs through the gateway all succeed, each exactly once (one
 *      attempt row per job);
 *   3. with the node leading JOBS stopped, the cluster elects another, and
 *      100 more jobs submitted then (retried with the same idempotency keys
 *      while the gateway reconnects) all succeed once; the node, started
 *      again, catches up: JOBS has 3 current replicas again;
 *   4. with two nodes stopped (no quorum) the gateway refuses a job (503, not
 *      202: nothing is accepted that JetStream did not store); with both
 *      back, the same submission (same idempotency key) is accepted and the
 *      job runs once.
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
#include <unistd.h>

#include "js_internal.h" /* raw stream and consumer info: replicas, leader, peers */
#include "yt_http.h"
#include "yt_nats_cluster.h"
#include "yt_workers.h"

#define REPLICAS 3
#define FIRST_JOBS 200
#define LATER_JOBS 100
#define BATCH 100
#define RUN_WAIT_MS 120000
#define SUBMIT_WAIT_MS 90000
#define REPLICATE_WAIT_MS 60000

static char *const programs_env[] = {"YARD_JS_REPLICAS=3", "YARD_LOG_LEVEL=warn", NULL};
static char *const r1_env[] = {"YARD_JS_REPLICAS=1", "YARD_LOG_LEVEL=warn", NULL};

static struct {
    yt_env_t *env;
    yt_nats_cluster_t nats;
    pid_t gw;
    int port;
    yt_worker_t audit, exec;
    yard_js_t *js;
    int64_t r1_replicas; /* JOBS's replicas after the R1 gateway ran (-1: unknown) */
} g;

/* The configured replicas of stream, or -1. */
static int64_t stream_replicas(const char *stream)
{
    jsStreamInfo *si = NULL;
    if (js_GetStreamInfo(&si, yard_js_ctx(g.js), stream, NULL, NULL) != NATS_OK)
        return -1;
    int64_t r = si->Config->Replicas;
    jsStreamInfo_Destroy(si);
    return r;
}

/* Removes the stopped first gateway's pid file (the next one writes its own). */
static void unlink_gateway_pid(void)
{
    char path[400];
    snprintf(path, sizeof path, "%s/gateway.pid", g.env->dir);
    unlink(path);
}

static int group_setup(void **state)
{
    memset(&g, 0, sizeof g);
    if (yt_env_create(&g.env, YT_PG | YT_MIGRATE) != 0)
        return -1;
    if (yt_nats_cluster_start(&g.nats, g.env) != 0)
        return -1;
    /* First a topology of R1 streams, as a single-node setup had it. */
    g.gw = yt_e2e_gateway_start(g.env, &g.port, r1_env);
    if (g.gw < 0 || yt_js_open(&g.js, g.env) != 0)
        return -1;
    g.r1_replicas = stream_replicas(YARD_STREAM_JOBS);
    if (yt_kill_wait(g.gw, SIGTERM, 10000) < 0)
        yt_kill_wait(g.gw, SIGKILL, 5000);
    unlink_gateway_pid();
    g.gw = yt_e2e_gateway_start(g.env, &g.port, programs_env);
    if (g.gw < 0)
        return -1;
    if (yt_worker_start(&g.audit, g.env, "audit", NULL, programs_env, 0) != 0 ||
        yt_worker_start(&g.exec, g.env, "execute", NULL, programs_env, 0) != 0)
        return -1;
    return 0;
}

static int group_teardown(void **state)
{
    if (!g.env)
        return 0;
    if (g.exec.pid > 0 && yt_worker_stop(g.env, &g.exec, SIGTERM, 40000) < 0)
        yt_worker_stop(g.env, &g.exec, SIGKILL, 5000);
    if (g.audit.pid > 0 && yt_worker_stop(g.env, &g.audit, SIGTERM, 40000) < 0)
        yt_worker_stop(g.env, &g.audit, SIGKILL, 5000);
    if (g.gw > 0 && yt_kill_wait(g.gw, SIGTERM, 10000) < 0)
        yt_kill_wait(g.gw, SIGKILL, 5000);
    yard_js_destroy(g.js, 1000);
    yt_nats_cluster_stop(g.env, &g.nats);
    yt_env_destroy(g.env);
    return 0;
}

/* Describes cluster info ci in out: "leader X, peers a(current) b(...)". */
static void describe_cluster(const jsClusterInfo *ci, char *out, size_t cap)
{
    size_t len = (size_t)snprintf(out, cap, "cluster %s, leader %s, peers",
                                  ci && ci->Name ? ci->Name : "(none)",
                                  ci && ci->Leader ? ci->Leader : "(none)");
    for (int i = 0; ci && i < ci->ReplicasLen && len < cap; i++)
        len += (size_t)snprintf(out + len, cap - len, " %s(%s)", ci->Replicas[i]->Name,
                                ci->Replicas[i]->Current ? "current" : "behind");
}

/* Nonzero when ci has a leader in cluster `switchyard` and REPLICAS - 1
 * peers, all current when want_current. */
static int replicated(const jsClusterInfo *ci, int want_current)
{
    if (!ci || !ci->Leader || !ci->Leader[0] || !ci->Name || strcmp(ci->Name, "switchyard") != 0 ||
        ci->ReplicasLen != REPLICAS - 1)
        return 0;
    for (int i = 0; want_current && i < ci->ReplicasLen; i++)
        if (!ci->Replicas[i]->Current || ci->Replicas[i]->Offline)
            return 0;
    return 1;
}

/* Polls stream (consumer NULL) or consumer of stream until it reports a
 * leader and REPLICAS - 1 current peers in cluster `switchyard` (and, for
 * a stream, REPLICAS in its config), or REPLICATE_WAIT_MS pass. Right after
 * an R1 stream is scaled to R3 its new peers take a moment to catch up (and
 * a node stopped before they have can leave a consumer without a leader:
 * measured with nats-server 2.9.10), hence the wait. */
static void expect_replicated(const char *stream, const char *consumer)
{
    char what[512] = "";
    long long deadline = yt_now_ms() + REPLICATE_WAIT_MS;
    for (;;) {
        jsErrCode jerr = 0;
        int64_t replicas = REPLICAS;
        int ok = 0;
        natsStatus s;
        if (consumer) {
            jsConsumerInfo *ci = NULL;
            s = js_GetConsumerInfo(&ci, yard_js_ctx(g.js), stream, consumer, NULL, &jerr);
            if (s == NATS_OK) {
                describe_cluster(ci->Cluster, what, sizeof what);
                ok = replicated(ci->Cluster, 1);
                jsConsumerInfo_Destroy(ci);
            }
        } else {
            jsStreamInfo *si = NULL;
            s = js_GetStreamInfo(&si, yard_js_ctx(g.js), stream, NULL, &jerr);
            if (s == NATS_OK) {
                describe_cluster(si->Cluster, what, sizeof what);
                replicas = si->Config->Replicas;
                ok = replicas == REPLICAS && replicated(si->Cluster, 1);
                jsStreamInfo_Destroy(si);
            }
        }
        if (s != NATS_OK)
            snprintf(what, sizeof what, "%s (JetStream error %d)", natsStatus_GetText(s),
                     (int)jerr);
        if (ok)
            return;
        if (yt_now_ms() >= deadline)
            fail_msg("expected %s%s%s with %d replicas (config replicas %d, a leader and %d "
                     "current peers in cluster switchyard) within %d ms, got config replicas "
                     "%lld, %s", consumer ? "consumer " : "stream ", consumer ? consumer : stream,
                     consumer ? " of its stream" : "", REPLICAS, REPLICAS, REPLICAS - 1,
                     REPLICATE_WAIT_MS, (long long)replicas, what);
        yt_nap_ms(200);
    }
}

static void test_topology_is_replicated(void **state)
{
    if (g.r1_replicas != 1)
        fail_msg("expected the first gateway (YARD_JS_REPLICAS=1) to make JOBS with 1 replica, "
                 "got %lld", (long long)g.r1_replicas);
    expect_replicated(YARD_STREAM_JOBS, NULL);
    expect_replicated(YARD_STREAM_EVENTS, NULL);
    expect_replicated(YARD_STREAM_DLQ, NULL);
    expect_replicated(YARD_STREAM_JOBS, "execute_default");
    expect_replicated(YARD_STREAM_JOBS, YARD_CONSUMER_SCHEDULE);
    expect_replicated(YARD_STREAM_JOBS, YARD_CONSUMER_NOTIFY);
    expect_replicated(YARD_STREAM_EVENTS, YARD_CONSUMER_SUBMISSIONS);
    expect_replicated(YARD_STREAM_EVENTS, YARD_CONSUMER_AUDIT);
}

/* Submits n noop jobs with idempotency keys <tag>-<i> in batches, retrying
 * a batch that is not answered 202 (the same keys make a retry harmless)
 * until SUBMIT_WAIT_MS. Fills ids. */
static void submit_jobs(const char *tag, char (*ids)[YT_JOB_ID_MAX], int n)
{
    for (int first = 0; first < n; first += BATCH) {
        int count = n - first < BATCH ? n - first : BATCH;
        size_t cap = (size_t)count * 96 + 32, len = 0, accepted = 0;
        char *body = malloc(cap);
        assert_non_null(body);
        len += (size_t)snprintf(body, cap, "{\"jobs\":[");
        for (int i = 0; i < count; i++)
            len += (size_t)snprintf(body + len, cap - len,
                                    "%s{\"type\":\"noop\",\"idempotency_key\":\"%s-%d\"}",
                                    i ? "," : "", tag, first + i);
        snprintf(body + len, cap - len, "]}");
        long long deadline = yt_now_ms() + SUBMIT_WAIT_MS;
        int st;
        while ((st = yt_job_submit_batch(g.port, body, ids + first, (size_t)count, &accepted)) !=
                   202 || accepted != (size_t)count) {
            if (yt_now_ms() >= deadline) {
                free(body);
                fail_msg("expected the batch %s-%d.. to be accepted (202, %d ids) within %d ms, "
                         "last got HTTP %d with %zu ids", tag, first, count, SUBMIT_WAIT_MS, st,
                         accepted);
            }
            yt_nap_ms(500);
        }
        free(body);
    }
}

/* Waits until all n jobs succeeded, then checks each has exactly one
 * attempt row. */
static void expect_all_succeeded_once(char (*ids)[YT_JOB_ID_MAX], int n)
{
    char *arr = yt_sql_id_array(ids, (size_t)n);
    assert_non_null(arr);
    long long done = yt_wait_sql(g.env, n, RUN_WAIT_MS,
                                 "SELECT count(*) FROM jobs WHERE id = ANY(%s)"
                                 " AND status = 'succeeded'", arr);
    if (done != n) {
        char counts[256] = "";
        yt_sql_status_counts(g.env, ids, (size_t)n, counts, sizeof counts);
        free(arr);
        yt_worker_log_tail(g.env, &g.exec);
        fail_msg("expected all %d jobs succeeded within %d ms, got %s", n, RUN_WAIT_MS, counts);
    }
    long long attempts = yt_sql_int(g.env, "SELECT count(*) FROM job_attempts WHERE job_id = ANY(%s)",
                                    arr);
    long long once = yt_sql_int(g.env, "SELECT count(*) FROM jobs WHERE id = ANY(%s) AND attempts = 1",
                                arr);
    free(arr);
    if (attempts != n || once != n)
        fail_msg("expected each of the %d jobs to run once (%d attempt rows, attempts = 1), got "
                 "%lld attempt rows and %lld jobs at attempt 1", n, n, attempts, once);
}

static void test_jobs_run_once(void **state)
{
    static char ids[FIRST_JOBS][YT_JOB_ID_MAX];
    submit_jobs("first", ids, FIRST_JOBS);
    expect_all_succeeded_once(ids, FIRST_JOBS);
}

/* The index of the node whose server name is name, or -1. */
static int node_named(const char *name)
{
    for (int i = 0; i < YT_NATS_NODES; i++) {
        char want[32];
        snprintf(want, sizeof want, "yard-%s", g.nats.nodes[i].name);
        if (strcmp(want, name) == 0)
            return i;
    }
    return -1;
}

/* Copies the JOBS stream's leader into out; 0, or -1 when it has none. When
 * want_current, also requires every peer current and online. */
static int jobs_leader(char *out, size_t cap, int want_current, char *what, size_t wcap)
{
    jsStreamInfo *si = NULL;
    natsStatus s = js_GetStreamInfo(&si, yard_js_ctx(g.js), YARD_STREAM_JOBS, NULL, NULL);
    if (s != NATS_OK) {
        snprintf(what, wcap, "stream info: %s", natsStatus_GetText(s));
        return -1;
    }
    describe_cluster(si->Cluster, what, wcap);
    int ok = si->Cluster && si->Cluster->Leader && si->Cluster->Leader[0] &&
             (!want_current || replicated(si->Cluster, 1));
    if (ok)
        snprintf(out, cap, "%s", si->Cluster->Leader);
    jsStreamInfo_Destroy(si);
    return ok ? 0 : -1;
}

static void test_jobs_run_with_the_leader_stopped(void **state)
{
    static char ids[LATER_JOBS][YT_JOB_ID_MAX];
    char leader[64], now[64], what[512] = "";
    if (jobs_leader(leader, sizeof leader, 0, what, sizeof what) != 0)
        fail_msg("expected JOBS to have a leader, got %s", what);
    int victim = node_named(leader);
    if (victim < 0)
        fail_msg("expected the JOBS leader to be one of the three nodes, got `%s`", leader);
    if (yt_nats_node_stop(g.env, &g.nats, victim) != 0)
        fail_msg("expected node %s to stop", leader);

    /* Another node takes JOBS over. */
    long long deadline = yt_now_ms() + RUN_WAIT_MS;
    while (jobs_leader(now, sizeof now, 0, what, sizeof what) != 0 || strcmp(now, leader) == 0) {
        if (yt_now_ms() >= deadline)
            fail_msg("expected a new JOBS leader within %d ms of stopping %s, got %s",
                     RUN_WAIT_MS, leader, what);
        yt_nap_ms(200);
    }
    submit_jobs("later", ids, LATER_JOBS);
    expect_all_succeeded_once(ids, LATER_JOBS);

    /* Back again, the node catches up. */
    if (yt_nats_node_start(g.env, &g.nats, victim) != 0)
        fail_msg("expected node %s to start again", leader);
    deadline = yt_now_ms() + RUN_WAIT_MS;
    while (jobs_leader(now, sizeof now, 1, what, sizeof what) != 0) {
        if (yt_now_ms() >= deadline)
            fail_msg("expected JOBS to have 3 current replicas within %d ms of restarting %s, "
                     "got %s", RUN_WAIT_MS, leader, what);
        yt_nap_ms(200);
    }
}

static void test_no_quorum_refuses_then_recovers(void **state)
{
    static char ids[1][YT_JOB_ID_MAX];
    const char *body = "{\"jobs\":[{\"type\":\"noop\",\"idempotency_key\":\"quorum-0\"}]}";
    size_t accepted = 0;
    for (int i = 1; i < YT_NATS_NODES; i++)
        if (yt_nats_node_stop(g.env, &g.nats, i) != 0)
            fail_msg("expected node %s to stop", g.nats.nodes[i].name);
    int st = yt_job_submit_batch(g.port, body, ids, 1, &accepted);
    if (st != 503)
        fail_msg("expected 503 for a job submitted with two of three nodes down, got HTTP %d "
                 "(%zu accepted)", st, accepted);
    for (int i = 1; i < YT_NATS_NODES; i++)
        if (yt_nats_node_start(g.env, &g.nats, i) != 0)
            fail_msg("expected node %s to start again", g.nats.nodes[i].name);
    submit_jobs("quorum", ids, 1);
    expect_all_succeeded_once(ids, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_topology_is_replicated),
        cmocka_unit_test(test_jobs_run_once),
        cmocka_unit_test(test_jobs_run_with_the_leader_stopped),
        cmocka_unit_test(test_no_quorum_refuses_then_recovers),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
