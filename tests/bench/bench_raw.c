/*
 * bench_raw.c - the raw limits of this machine, measured in the same sitting
 * as Switchyard: JetStream async publish of 200-byte messages with a
 * Nats-Msg-Id and pull-consume with ack in batches of 256; PostgreSQL
 * result-sized rows inserted in pipelined transactions of 256 (bench.h).
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "bench.h"
#include "config.h"
#include "err.h"
#include "js_internal.h"

#define RAW_MSG_BYTES 200
#define RAW_FETCH 256
#define RAW_PIPELINE 256

static atomic_long raw_acked;

static void raw_on_ack(void *ud, int rc, const yard_js_puback_t *a)
{
    if (rc == 0)
        atomic_fetch_add(&raw_acked, 1);
}

int bench_raw_jetstream(bench_t *b)
{
    yard_config_t cfg;
    yard_js_t *js = NULL;
    yard_js_consumer_t *c = NULL;
    jsStreamConfig sc;
    jsConsumerConfig cc;
    const char *subj[] = {"bench.>"};
    char data[RAW_MSG_BYTES], id[32];
    int rc = -1;

    yard_config_defaults(&cfg);
    yard_config_set(&cfg, "nats_url", b->nats_url);
    if (yard_js_connect(&js, &cfg, "bench") < 0) {
        fprintf(stderr, "bench: raw JetStream: cannot connect to %s\n", b->nats_url);
        return -1;
    }
    jsStreamConfig_Init(&sc);
    sc.Name = "BENCH";
    sc.Subjects = subj;
    sc.SubjectsLen = 1;
    sc.Storage = js_FileStorage;
    if (js_AddStream(NULL, yard_js_ctx(js), &sc, NULL, NULL) != NATS_OK) {
        fprintf(stderr, "bench: raw JetStream: cannot add stream BENCH\n");
        goto out;
    }
    memset(data, 'x', sizeof data);
    atomic_store(&raw_acked, 0);
    double t0 = bench_now_s();
    for (long i = 0; i < b->raw_msgs; i++) {
        snprintf(id, sizeof id, "raw-%ld", i);
        yard_js_pub_t p = {"bench.raw", id, NULL, 0, data, sizeof data};
        while (yard_js_publish_async(js, &p, raw_on_ack, NULL) == YARD_EBUSY)
            usleep(100);
    }
    yard_js_publish_wait(js, 60000);
    bench_fig_add(b, "raw_js_publish", "JetStream async publish, 200 B, Nats-Msg-Id", "msgs/s",
                  atomic_load(&raw_acked) / (bench_now_s() - t0));

    jsConsumerConfig_Init(&cc);
    cc.Durable = "bench";
    cc.AckPolicy = js_AckExplicit;
    if (js_AddConsumer(NULL, yard_js_ctx(js), "BENCH", &cc, NULL, NULL) != NATS_OK ||
        yard_js_consumer_bind(&c, js, "BENCH", "bench") != 0) {
        fprintf(stderr, "bench: raw JetStream: cannot add the pull consumer\n");
        goto out;
    }
    long got = 0;
    t0 = bench_now_s();
    while (got < b->raw_msgs) {
        yard_js_batch_t l;
        if (yard_js_fetch(c, &l, RAW_FETCH, 2000) < 0)
            break;
        int n = l.count;
        for (int i = 0; i < n; i++)
            yard_js_ack(l.msgs[i]);
        got += n;
        yard_js_batch_destroy(&l);
        if (n == 0)
            break;
    }
    bench_fig_add(b, "raw_js_pull_ack", "JetStream pull + ack, batches of 256", "msgs/s",
                  got / (bench_now_s() - t0));
    rc = got == b->raw_msgs ? 0 : -1;
    if (rc != 0)
        fprintf(stderr, "bench: raw JetStream: consumed %ld of %ld\n", got, b->raw_msgs);
out:
    yard_js_consumer_destroy(c);
    js_DeleteStream(yard_js_ctx(js), "BENCH", NULL, NULL);
    yard_js_destroy(js, 1000);
    return rc;
}

/* Sends one pipeline of n inserts and reads every result. Returns 0 or -1. */
static int raw_pipeline(PGconn *c, int n)
{
    int rc = 0;
    if (PQenterPipelineMode(c) != 1)
        return -1;
    for (int i = 0; i < n; i++) {
        const char *p[1] = {"1"};
        if (PQsendQueryPrepared(c, "ins", 1, p, NULL, NULL, 0) != 1)
            rc = -1;
    }
    if (PQpipelineSync(c) != 1)
        return -1;
    for (;;) {
        PGresult *r = PQgetResult(c);
        if (!r) { /* the end of one query's results */
            if (PQstatus(c) != CONNECTION_OK)
                return -1;
            continue;
        }
        ExecStatusType st = PQresultStatus(r);
        PQclear(r);
        if (st == PGRES_PIPELINE_SYNC)
            break;
        if (st != PGRES_COMMAND_OK)
            rc = -1;
    }
    PQexitPipelineMode(c);
    return rc;
}

int bench_raw_postgres(bench_t *b)
{
    PGconn *c = PQconnectdb(b->env->pg_dsn);
    int rc = -1;
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "bench: raw PostgreSQL: %s", PQerrorMessage(c));
        goto out;
    }
    PGresult *r = PQexec(c, "CREATE TABLE bench_rows (job_id uuid, attempt int, started_at "
                            "timestamptz, outcome text, error text, result jsonb, worker text, "
                            "duration_ms bigint, PRIMARY KEY (job_id, attempt))");
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    r = PQprepare(c, "ins",
                  "INSERT INTO bench_rows VALUES (gen_random_uuid(), $1::int, now(), "
                  "'succeeded', NULL, '{\"ok\":true}', 'bench:1', 3)",
                  0, NULL);
    ok = ok && PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    if (!ok) {
        fprintf(stderr, "bench: raw PostgreSQL: cannot set up: %s", PQerrorMessage(c));
        goto out;
    }
    double t0 = bench_now_s();
    for (long done = 0; done < b->raw_rows; done += RAW_PIPELINE)
        if (raw_pipeline(c, RAW_PIPELINE) != 0) {
            fprintf(stderr, "bench: raw PostgreSQL: insert failed: %s", PQerrorMessage(c));
            goto out;
        }
    long rows = (b->raw_rows + RAW_PIPELINE - 1) / RAW_PIPELINE * RAW_PIPELINE;
    bench_fig_add(b, "raw_pg_inserts", "PostgreSQL pipelined inserts, 256 per commit (fsync on)",
                  "rows/s", rows / (bench_now_s() - t0));
    rc = 0;
out:
    PQclear(PQexec(c, "DROP TABLE bench_rows"));
    PQfinish(c);
    return rc;
}
