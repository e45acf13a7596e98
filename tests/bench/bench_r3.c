/*
 * bench_r3.c - the cost of replication: the batch route and the end-to-end
 * batch run again against a 3-node JetStream cluster (ops/nats) with R3
 * streams, on this same machine (all three nodes share its 2 cores with
 * everything else, so this shows the cost of quorum writes, not of a
 * network) (bench.h).
 */
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "yt_nats_cluster.h"

int bench_r3_section(bench_t *b)
{
    yt_nats_cluster_t nc;
    char single_url[sizeof b->nats_url];
    char *extra[] = {"YARD_JS_REPLICAS=3", NULL};
    int rc = -1;

    memset(&nc, 0, sizeof nc);
    bench_programs_stop(b);
    if (yt_nats_cluster_start(&nc, b->env) != 0) {
        fprintf(stderr, "bench: R3: the 3-node cluster did not start\n");
        return -1;
    }
    snprintf(single_url, sizeof single_url, "%s", b->nats_url);
    snprintf(b->nats_url, sizeof b->nats_url, "%s", nc.urls);
    b->name_suffix = "-r3";
    b->gw_port = yt_free_port();
    b->exec_port = yt_free_port();
    b->audit_port = yt_free_port();
    if (bench_gateway_start(b, extra) != 0 || bench_key_wait(b) != 0)
        goto out;
    for (int run = 0; run < b->runs; run++) {
        bench_progress("R3 gateway, run %d of %d", run + 1, b->runs);
        if (bench_gateway_runs(b, "r3_") != 0)
            goto out;
    }
    bench_streams_purge(b->nats_url);
    if (bench_workers_start(b, extra) != 0)
        goto out;
    for (int run = 0; run < b->runs; run++)
        if (bench_e2e_run(b, "r3_", 1) != 0)
            goto out;
    rc = 0;
out:
    bench_programs_stop(b);
    yt_nats_cluster_stop(b->env, &nc);
    snprintf(b->nats_url, sizeof b->nats_url, "%s", single_url);
    b->name_suffix = NULL;
    return rc;
}
