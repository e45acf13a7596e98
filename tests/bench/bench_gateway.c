/*
 * bench_gateway.c - the gateway alone (no worker runs; jobs accumulate in
 * JOBS), under yard-load with the bench's API key: single jobs with 64
 * connections in a closed loop, batches of 100 with 16 connections, and an
 * open loop at 2,000 requests/s (bench.h).
 */
#include <stdio.h>

#include "bench.h"

#define SINGLE_CONNS 64
#define BATCH_CONNS 16
#define OPEN_RATE 2000
#define WARMUP_S 2

/* Runs yard-load with args and adds its rate (jobs_per_s or requests_per_s
 * as rate_field) and latency figures under key. Returns 0 or -1. */
static int gateway_load(bench_t *b, const char *args, const char *key, const char *label,
                        const char *rate_field, int percentiles)
{
    char k[64], l[112];
    json_t *doc = NULL;
    if (bench_load(b, args, &doc) != 0)
        return -1;
    if (rate_field) {
        snprintf(k, sizeof k, "%s", key);
        bench_fig_add(b, k, label, rate_field[0] == 'j' ? "jobs/s" : "req/s",
                      bench_jnum(doc, rate_field, NULL));
    }
    const char *pct[] = {"p50", "p90", "p99", "p99_9"}, *shown[] = {"p50", "p90", "p99", "p99.9"};
    for (int i = 0; i < 4; i++) {
        if (!(percentiles & (1 << i)))
            continue;
        snprintf(k, sizeof k, "%s_http_%s_ms", key, pct[i]);
        snprintf(l, sizeof l, "%s: HTTP %s", label, shown[i]);
        bench_fig_add(b, k, l, "ms", bench_jnum(doc, "latency_ms", pct[i]));
    }
    json_decref(doc);
    return 0;
}

int bench_gateway_runs(bench_t *b, const char *prefix)
{
    char args[512], url[128], burl[128], key[64], label[112];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/jobs", b->gw_port);
    snprintf(burl, sizeof burl, "http://127.0.0.1:%d/v1/jobs/batch", b->gw_port);

    if (!prefix[0]) { /* the R3 section measures the batch route only */
        snprintf(args, sizeof args, "--url %s --connections %d --duration %g --warmup %d", url,
                 SINGLE_CONNS, b->load_s, WARMUP_S);
        snprintf(key, sizeof key, "%sgw_single", prefix);
        snprintf(label, sizeof label, "POST /v1/jobs, %d connections, closed loop", SINGLE_CONNS);
        if (gateway_load(b, args, key, label, "requests_per_s", 1 | 4) != 0)
            return -1;
    }

    snprintf(args, sizeof args, "--url %s --connections %d --duration %g --warmup %d --batch %d",
             burl, BATCH_CONNS, b->load_s, WARMUP_S, b->batch_size);
    snprintf(key, sizeof key, "%sgw_batch", prefix);
    snprintf(label, sizeof label, "POST /v1/jobs/batch x%d, %d connections", b->batch_size,
             BATCH_CONNS);
    if (gateway_load(b, args, key, label, "jobs_per_s", 1 | 4) != 0)
        return -1;
    if (prefix[0])
        return 0;

    snprintf(args, sizeof args, "--url %s --connections %d --duration %g --warmup 1 --rate %d",
             url, SINGLE_CONNS, b->load_s, OPEN_RATE);
    snprintf(key, sizeof key, "gw_open%d", OPEN_RATE);
    snprintf(label, sizeof label, "POST /v1/jobs at a fixed %d req/s", OPEN_RATE);
    return gateway_load(b, args, key, label, NULL, 1 | 2 | 4 | 8);
}
