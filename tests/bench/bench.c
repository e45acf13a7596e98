/*
 * bench.c - `make bench`: Switchyard's throughput and latency next to the raw
 * limits of this machine, measured in the same run.
 *
 * It starts nats-server and a durable PostgreSQL (fsync on) with the test
 * harness, then measures:
 *   1. raw JetStream: async publish of 200-byte messages with Nats-Msg-Id,
 *      and pull-consume with ack in batches of 256;
 *   2. raw PostgreSQL: result-sized rows inserted in pipelined transactions
 *      of 256;
 *   3. the gateway under yard-load: single jobs (64 connections, closed
 *      loop), batches of 100, and an open loop at 2,000 requests/s;
 *   4. end to end: 50,000 noop jobs through the batch route with one execute
 *      worker, until all are `succeeded` in PostgreSQL;
 *   5. the batch route and the end-to-end run again against a 3-node
 *      JetStream cluster with R3 streams (the cost of replication);
 * and prints every figure with its ratio to the raw limit it depends on,
 * the workers' time split (PostgreSQL, JetStream, handlers) and peak RSS.
 * One benchmark at a time: do not run two on this machine at once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <signal.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/wait.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "config.h"
#include "err.h"
#include "harness.h"
#include "js_internal.h" /* raw JetStream setup */
#include "log.h"
#include "yt_nats_cluster.h"

#define RAW_MSGS 100000
#define RAW_ROWS 100000
#define E2E_JOBS 50000
#define LOAD_SECONDS "8"

/* Everything started, stopped at exit whatever path exits. */
static yt_env_t *bench_env;
static pid_t bench_pids[8];
static int bench_npids;

static void bench_cleanup(void)
{
    for (int i = bench_npids - 1; i >= 0; i--)
        if (yt_kill_wait(bench_pids[i], SIGTERM, 20000) < 0)
            yt_kill_wait(bench_pids[i], SIGKILL, 5000);
    bench_npids = 0;
    yt_env_destroy(bench_env);
    bench_env = NULL;
}

static double now_s(void)
{
    return (double)yt_now_ms() / 1000.0;
}

/* ---- raw JetStream ------------------------------------------------------- */

static atomic_long raw_acked;
static void raw_on_ack(void *ud, int rc, const yard_js_puback_t *a)
{
    if (rc == 0)
        atomic_fetch_add(&raw_acked, 1);
}

static void raw_jetstream(yt_env_t *env, double *pub_rate, double *sub_rate)
{
    yard_config_t cfg;
    yard_js_t *js = NULL;
    jsStreamConfig sc;
    jsConsumerConfig cc;
    const char *subj[] = {"bench.>"};
    char data[200], id[32];
    yard_config_defaults(&cfg);
    yard_config_set(&cfg, "nats_url", env->nats_url);
    if (yard_js_connect(&js, &cfg, "bench") < 0)
        exit(1);
    jsStreamConfig_Init(&sc);
    sc.Name = "BENCH";
    sc.Subjects = subj;
    sc.SubjectsLen = 1;
    sc.Storage = js_FileStorage;
    js_AddStream(NULL, yard_js_ctx(js), &sc, NULL, NULL);
    memset(data, 'x', sizeof data);
    double t0 = now_s();
    for (int i = 0; i < RAW_MSGS; i++) {
        snprintf(id, sizeof id, "raw-%d", i);
        yard_js_pub_t p = {"bench.raw", id, NULL, 0, data, sizeof data};
        while (yard_js_publish_async(js, &p, raw_on_ack, NULL) == YARD_EBUSY)
            usleep(100);
    }
    yard_js_publish_wait(js, 60000);
    *pub_rate = atomic_load(&raw_acked) / (now_s() - t0);

    jsConsumerConfig_Init(&cc);
    cc.Durable = "bench";
    cc.AckPolicy = js_AckExplicit;
    js_AddConsumer(NULL, yard_js_ctx(js), "BENCH", &cc, NULL, NULL);
    yard_js_consumer_t *c = NULL;
    yard_js_consumer_bind(&c, js, "BENCH", "bench");
    long got = 0;
    t0 = now_s();
    while (got < RAW_MSGS) {
        yard_js_batch_t l;
        if (yard_js_fetch(c, &l, 256, 2000) < 0)
            break;
        int n = l.count;
        for (int i = 0; i < n; i++)
            yard_js_ack(l.msgs[i]);
        got += n;
        yard_js_batch_destroy(&l);
        if (n == 0)
            break;
    }
    *sub_rate = got / (now_s() - t0);
    yard_js_consumer_destroy(c);
    js_DeleteStream(yard_js_ctx(js), "BENCH", NULL, NULL);
    yard_js_destroy(js, 1000);
}

/* ---- raw PostgreSQL ------------------------------------------------------ */

static double raw_postgres(yt_env_t *env)
{
    PGconn *c = PQconnectdb(env->pg_dsn);
    PQclear(PQexec(c, "CREATE TABLE bench_rows (job_id uuid, attempt int, started_at "
                      "timestamptz, outcome text, error text, result jsonb, worker text, "
                      "duration_ms bigint, PRIMARY KEY (job_id, attempt))"));
    PQclear(PQprepare(c, "ins",
                      "INSERT INTO bench_rows VALUES (gen_random_uuid(), $1::int, now(), "
                      "'succeeded', NULL, '{\"ok\":true}', 'bench:1', 3)",
                      0, NULL));
    double t0 = now_s();
    for (int done = 0; done < RAW_ROWS; done += 256) {
        PQenterPipelineMode(c);
        for (int i = 0; i < 256; i++) {
            const char *p[1] = {"1"};
            PQsendQueryPrepared(c, "ins", 1, p, NULL, NULL, 0);
        }
        PQpipelineSync(c);
        for (int i = 0; i <= 256;) {
            PGresult *r = PQgetResult(c);
            if (!r)
                continue;
            if (PQresultStatus(r) == PGRES_PIPELINE_SYNC) {
                PQclear(r);
                break;
            }
            PQclear(r);
            i++;
        }
        PQexitPipelineMode(c);
    }
    double rate = RAW_ROWS / (now_s() - t0);
    PQclear(PQexec(c, "DROP TABLE bench_rows"));
    PQfinish(c);
    return rate;
}

/* ---- programs ------------------------------------------------------------ */

static long peak_rss_kb(pid_t pid)
{
    char path[64], line[256];
    long kb = -1;
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0)
            kb = atol(line + 6);
    if (f)
        fclose(f);
    return kb;
}

static int http_ok(int port, const char *path)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "curl -fsS -o /dev/null http://127.0.0.1:%d%s 2>/dev/null", port,
             path);
    return system(cmd) == 0;
}

static pid_t start(yt_env_t *env, const char *name, char *const argv[], char *const extra[],
                   int port, const char *ready)
{
    pid_t pid = yt_spawn(env, name, argv, extra);
    if (pid > 0 && bench_npids < 8)
        bench_pids[bench_npids++] = pid;
    for (int i = 0; i < 300 && !http_ok(port, ready); i++)
        usleep(100000);
    if (!http_ok(port, ready)) {
        fprintf(stderr, "bench: %s did not get ready\n", name);
        exit(1);
    }
    return pid;
}

/* Runs yard-load with args and returns its JSON report. */
static json_t *load(const char *args)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s/../build/bench/yard-load --json %s", yt_bin_dir(), args);
    FILE *p = popen(cmd, "r");
    json_error_t err;
    json_t *doc = p ? json_loadf(p, 0, &err) : NULL;
    if (p)
        pclose(p);
    if (!doc) {
        fprintf(stderr, "bench: yard-load failed: %s\n", cmd);
        exit(1);
    }
    return doc;
}

static double jnum(json_t *doc, const char *path1, const char *path2)
{
    json_t *v = json_object_get(doc, path1);
    if (path2)
        v = json_object_get(v, path2);
    return json_number_value(v);
}

static long sql_long(yt_env_t *env, const char *sql)
{
    PGconn *c = PQconnectdb(env->pg_dsn);
    PGresult *r = PQexec(c, sql);
    long v = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) ? atol(PQgetvalue(r, 0, 0)) : -1;
    PQclear(r);
    PQfinish(c);
    return v;
}

/* The worker's busy time per part, from its /metrics. */
static void time_split(int port, double *pg, double *js, double *handler)
{
    char cmd[256], line[512];
    snprintf(cmd, sizeof cmd, "curl -fsS http://127.0.0.1:%d/metrics", port);
    FILE *p = popen(cmd, "r");
    *pg = *js = *handler = 0;
    while (p && fgets(line, sizeof line, p)) {
        if (strncmp(line, "yard_worker_busy_seconds_total{", 31) != 0)
            continue;
        double v = atof(strrchr(line, ' ') + 1);
        if (strstr(line, "\"postgres\""))
            *pg += v;
        else if (strstr(line, "\"jetstream\""))
            *js += v;
        else if (strstr(line, "\"handler\""))
            *handler += v;
    }
    if (p)
        pclose(p);
}

/* Posts n noop jobs (batches of 1,000 through burl) and waits until n more
 * jobs are `succeeded` in PostgreSQL (at most 300 s). Returns the seconds
 * from the first post to the last success; sets *posted (seconds to post)
 * and *done (jobs that succeeded). */
static double e2e_run(yt_env_t *env, const char *burl, int n, double *posted, long *done)
{
    long before = sql_long(env, "SELECT count(*) FROM jobs WHERE status = 'succeeded'");
    double t0 = now_s();
    char body_cmd[512], path[400];
    snprintf(path, sizeof path, "%s/batch.json", env->dir);
    FILE *bf = fopen(path, "w");
    if (!bf)
        exit(1);
    fputs("{\"jobs\":[", bf);
    for (int i = 0; i < 1000; i++)
        fputs(i ? ",{\"type\":\"noop\"}" : "{\"type\":\"noop\"}", bf);
    fputs("]}", bf);
    fclose(bf);
    for (int i = 0; i < n / 1000; i++) {
        snprintf(body_cmd, sizeof body_cmd,
                 "curl -fsS -o /dev/null -X POST -H 'Content-Type: application/json' "
                 "--data-binary @%s/batch.json %s",
                 env->dir, burl);
        if (system(body_cmd) != 0) {
            fprintf(stderr, "bench: batch post failed\n");
            exit(1);
        }
    }
    *posted = now_s() - t0;
    *done = 0;
    while (*done < n && now_s() - t0 < 300) {
        usleep(100000);
        *done = sql_long(env, "SELECT count(*) FROM jobs WHERE status = 'succeeded'") - before;
    }
    return now_s() - t0;
}

/* Stops the programs started so far (the single-node run's). */
static void stop_programs(void)
{
    for (int i = bench_npids - 1; i >= 0; i--)
        if (yt_kill_wait(bench_pids[i], SIGTERM, 20000) < 0)
            yt_kill_wait(bench_pids[i], SIGKILL, 5000);
    bench_npids = 0;
}

/* 5. The cost of replication: the batch route and the end-to-end run again,
 * against a 3-node JetStream cluster (ops/nats) with R3 streams, on this
 * same machine (all three nodes share its 2 cores with everything else, so
 * this shows the cost of quorum writes, not of a network). Prints each
 * figure with its ratio to the single-node one. Returns 0 or -1. */
static int r3_section(yt_env_t *env, double single_batch_jps, double single_e2e_jps)
{
    yt_nats_cluster_t nc;
    memset(&nc, 0, sizeof nc);
    stop_programs();
    printf("\nR3: the same against a 3-node JetStream cluster with R3 streams (one machine)\n");
    if (yt_nats_cluster_start(&nc, env) != 0)
        return -1;
    int gw_port = yt_free_port(), wk_port = yt_free_port(), au_port = yt_free_port();
    char gp[32], wp[16], ap[16], nats[320], pg[600];
    snprintf(gp, sizeof gp, "YARD_HTTP_PORT=%d", gw_port);
    snprintf(wp, sizeof wp, "%d", wk_port);
    snprintf(ap, sizeof ap, "%d", au_port);
    snprintf(nats, sizeof nats, "YARD_NATS_URL=%s", nc.urls);
    snprintf(pg, sizeof pg, "YARD_PG_DSN=%s", env->pg_dsn);
    char *gw_env[] = {gp, nats, pg, "YARD_AUTH_DISABLED=true", "YARD_LOG_LEVEL=warn",
                      "YARD_RATE_PER_S=10000000", "YARD_RATE_BURST=10000000",
                      "YARD_JS_REPLICAS=3", NULL};
    char *wk_env[] = {nats, pg, "YARD_LOG_LEVEL=warn", "YARD_WORKER_CONCURRENCY=64",
                      "YARD_WORKER_BATCH=256", "YARD_JS_REPLICAS=3", NULL};
    char gw_bin[600], wk_bin[600], burl[128], args[512];
    snprintf(gw_bin, sizeof gw_bin, "%s/yard-gateway", yt_bin_dir());
    snprintf(wk_bin, sizeof wk_bin, "%s/yard-worker", yt_bin_dir());
    char *gw_argv[] = {gw_bin, NULL};
    start(env, "gateway-r3", gw_argv, gw_env, gw_port, "/readyz");
    snprintf(burl, sizeof burl, "http://127.0.0.1:%d/v1/jobs/batch", gw_port);
    snprintf(args, sizeof args,
             "--url %s --connections 16 --duration %s --warmup 2 --batch 100", burl,
             LOAD_SECONDS);
    json_t *batch = load(args);
    double jps = jnum(batch, "jobs_per_s", NULL);
    printf("  POST /v1/jobs/batch x100, 16 connections      %9.0f jobs/s  p50 %.2f ms  p99 %.2f"
           " ms  (%.2fx the single node)\n",
           jps, jnum(batch, "latency_ms", "p50"), jnum(batch, "latency_ms", "p99"),
           jps / single_batch_jps);
    json_decref(batch);
    {
        yard_config_t cfg;
        yard_js_t *js = NULL;
        yard_config_defaults(&cfg);
        yard_config_set(&cfg, "nats_url", nc.urls);
        if (yard_js_connect(&js, &cfg, "bench-purge") == 0) {
            js_PurgeStream(yard_js_ctx(js), YARD_STREAM_JOBS, NULL, NULL);
            yard_js_destroy(js, 1000);
        }
    }
    char *wk_argv[] = {wk_bin, "--role", "execute", "--metrics-port", wp, NULL};
    char *au_argv[] = {wk_bin, "--role", "audit", "--metrics-port", ap, NULL};
    start(env, "worker-execute-r3", wk_argv, wk_env, wk_port, "/readyz");
    start(env, "worker-audit-r3", au_argv, wk_env, au_port, "/readyz");
    double posted = 0;
    long done = 0;
    double e2e = e2e_run(env, burl, E2E_JOBS, &posted, &done);
    printf("  end to end, %d noop jobs: all %ld succeeded after %.2f s  %9.0f jobs/s  (%.2fx the "
           "single node)\n",
           E2E_JOBS, done, e2e, done / e2e, (done / e2e) / single_e2e_jps);
    stop_programs();
    yt_nats_cluster_stop(env, &nc);
    return done == E2E_JOBS ? 0 : -1;
}

int main(void)
{
    yt_env_t *env = NULL;
    double pub, sub, rows;
    yard_log_init("bench", YARD_LOG_ERROR);
    printf("Switchyard bench (2 cores share everything below: one benchmark at a time)\n");
    if (yt_env_create(&env, YT_NATS | YT_PG | YT_MIGRATE | YT_PG_DURABLE) < 0)
        return 1;
    bench_env = env;
    atexit(bench_cleanup);

    raw_jetstream(env, &pub, &sub);
    rows = raw_postgres(env);
    printf("\nraw limits of this machine\n");
    printf("  JetStream async publish, 200 B, Nats-Msg-Id   %9.0f msgs/s\n", pub);
    printf("  JetStream pull + ack, batches of 256          %9.0f msgs/s\n", sub);
    printf("  PostgreSQL pipelined inserts, 256 per commit  %9.0f rows/s (fsync on)\n", rows);

    int gw_port = yt_free_port(), wk_port = yt_free_port(), au_port = yt_free_port();
    char gp[32], wp[16], ap[16], nats[300], pg[600];
    snprintf(gp, sizeof gp, "YARD_HTTP_PORT=%d", gw_port);
    snprintf(wp, sizeof wp, "%d", wk_port);
    snprintf(ap, sizeof ap, "%d", au_port);
    snprintf(nats, sizeof nats, "YARD_NATS_URL=%s", env->nats_url);
    snprintf(pg, sizeof pg, "YARD_PG_DSN=%s", env->pg_dsn);
    char *gw_env[] = {gp, nats, pg, "YARD_AUTH_DISABLED=true", "YARD_LOG_LEVEL=warn",
                      "YARD_RATE_PER_S=10000000", "YARD_RATE_BURST=10000000", NULL};
    /* YARD_BENCH_WORKER_LOG=debug shows the workers' batch sizes and times. */
    char wk_log[64];
    snprintf(wk_log, sizeof wk_log, "YARD_LOG_LEVEL=%s",
             getenv("YARD_BENCH_WORKER_LOG") ? getenv("YARD_BENCH_WORKER_LOG") : "warn");
    char *wk_env[] = {nats, pg, wk_log, "YARD_WORKER_CONCURRENCY=64", "YARD_WORKER_BATCH=256",
                      NULL};
    char gw_bin[600], wk_bin[600];
    snprintf(gw_bin, sizeof gw_bin, "%s/yard-gateway", yt_bin_dir());
    snprintf(wk_bin, sizeof wk_bin, "%s/yard-worker", yt_bin_dir());
    char *gw_argv[] = {gw_bin, NULL};
    pid_t gw = start(env, "gateway", gw_argv, gw_env, gw_port, "/readyz");

    char url[128], burl[128], args[512];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/jobs", gw_port);
    snprintf(burl, sizeof burl, "http://127.0.0.1:%d/v1/jobs/batch", gw_port);
    printf("\ngateway (no worker running; jobs accumulate in JOBS)\n");
    snprintf(args, sizeof args, "--url %s --connections 64 --duration %s --warmup 2", url,
             LOAD_SECONDS);
    json_t *single = load(args);
    double single_rps = jnum(single, "requests_per_s", NULL);
    printf("  POST /v1/jobs, 64 connections, closed loop    %9.0f req/s  p50 %.2f ms  p99 %.2f ms"
           "  (%.0f%% of raw publish)\n",
           single_rps, jnum(single, "latency_ms", "p50"), jnum(single, "latency_ms", "p99"),
           100 * single_rps / pub);
    snprintf(args, sizeof args,
             "--url %s --connections 16 --duration %s --warmup 2 --batch 100", burl,
             LOAD_SECONDS);
    json_t *batch = load(args);
    double batch_jps = jnum(batch, "jobs_per_s", NULL);
    printf("  POST /v1/jobs/batch x100, 16 connections      %9.0f jobs/s  p50 %.2f ms  p99 %.2f"
           " ms  (%.0f%% of raw publish)\n",
           batch_jps, jnum(batch, "latency_ms", "p50"), jnum(batch, "latency_ms", "p99"),
           100 * batch_jps / pub);
    snprintf(args, sizeof args, "--url %s --connections 64 --duration %s --warmup 1 --rate 2000",
             url, LOAD_SECONDS);
    json_t *open = load(args);
    printf("  POST /v1/jobs at a fixed 2,000 req/s          p50 %.2f ms  p90 %.2f ms  p99 %.2f ms"
           "  p99.9 %.2f ms\n",
           jnum(open, "latency_ms", "p50"), jnum(open, "latency_ms", "p90"),
           jnum(open, "latency_ms", "p99"), jnum(open, "latency_ms", "p99_9"));
    printf("  gateway peak RSS                              %9.1f MiB\n",
           peak_rss_kb(gw) / 1024.0);
    json_decref(single);
    json_decref(batch);
    json_decref(open);

    /* Drop the backlog the gateway runs made, so the end-to-end run starts clean. */
    {
        yard_config_t cfg;
        yard_js_t *js = NULL;
        yard_config_defaults(&cfg);
        yard_config_set(&cfg, "nats_url", env->nats_url);
        if (yard_js_connect(&js, &cfg, "bench-purge") == 0) {
            js_PurgeStream(yard_js_ctx(js), YARD_STREAM_JOBS, NULL, NULL);
            yard_js_destroy(js, 1000);
        }
    }

    printf("\nend to end: %d noop jobs through POST /v1/jobs/batch, one execute worker\n",
           E2E_JOBS);
    char *wk_argv[] = {wk_bin, "--role", "execute", "--metrics-port", wp, NULL};
    char *au_argv[] = {wk_bin, "--role", "audit", "--metrics-port", ap, NULL};
    pid_t wk = start(env, "worker-execute", wk_argv, wk_env, wk_port, "/readyz");
    pid_t au = start(env, "worker-audit", au_argv, wk_env, au_port, "/readyz");
    double posted = 0;
    long done = 0;
    double e2e = e2e_run(env, burl, E2E_JOBS, &posted, &done);
    double pgs, jss, hs;
    time_split(wk_port, &pgs, &jss, &hs);
    double total = pgs + jss + hs;
    printf("  posted in %.2f s; all %ld succeeded after %.2f s  %9.0f jobs/s  (%.0f%% of raw "
           "pull+ack, %.0f%% of raw inserts)\n",
           posted, done, e2e, done / e2e, 100 * (done / e2e) / sub, 100 * (done / e2e) / rows);
    if (total > 0)
        printf("  execute worker busy time: PostgreSQL %.0f%%, JetStream %.0f%%, handlers %.0f%%"
               " (%.2f s in all)\n",
               100 * pgs / total, 100 * jss / total, 100 * hs / total, total);
    printf("  execute worker peak RSS %.1f MiB, audit worker %.1f MiB, gateway %.1f MiB\n",
           peak_rss_kb(wk) / 1024.0, peak_rss_kb(au) / 1024.0, peak_rss_kb(gw) / 1024.0);

    (void)au;
    if (done != E2E_JOBS)
        return 1;
    return r3_section(env, batch_jps, done / e2e) == 0 ? 0 : 1; /* bench_cleanup stops the rest */
}
