/*
 * bench_report.c - what `make bench` prints: every figure as the median of
 * its runs with the min-max spread, the ratios to the raw limits, peak
 * memory per process, the side-by-side table with the peers, and the
 * issue's targets marked met or missed; or all of it as one JSON document
 * (--json) (bench.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

#define PROC_RSS_TARGET_MIB 32.0

void bench_note(bench_t *b, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (!b->notes)
        b->notes = json_array();
    json_array_append_new(b->notes, json_string(text));
}

void bench_progress(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bench: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

/* ---- targets ---- */

typedef struct {
    const char *name;
    double value, goal;
    int lower_is_better;
    int known; /* 0: not measured in this run (say why in `why`) */
    const char *why;
    const char *unit;
} target_t;

/* The best (largest) peer median of col/key over the peers, or -1. */
static double best_peer(const bench_t *b, const char *col, const char *key, int lowest)
{
    const char *peers[] = {"bullmq", "beanstalkd"};
    double best = -1;
    for (size_t i = 0; i < sizeof peers / sizeof peers[0]; i++) {
        double v = bench_peer_num(b, peers[i], col, key);
        if (v >= 0 && (best < 0 || (lowest ? v < best : v > best)))
            best = v;
    }
    return best;
}

/* A peer's memory: the largest median PSS over its runs. */
static double peer_mem(const bench_t *b, const char *peer)
{
    const char *cols[] = {"bulk", "single", "latency"};
    double m = -1;
    for (size_t i = 0; i < 3; i++) {
        double v = bench_peer_num(b, peer, cols[i], "pss_mb");
        m = v > m ? v : m;
    }
    return m;
}

static int proc_is_switchyard(const bench_proc_t *p)
{
    return strncmp(p->name, "gateway", 7) == 0 || strncmp(p->name, "worker-", 7) == 0;
}

static int targets_make(const bench_t *b, target_t *t)
{
    int n = 0;
    double batch = bench_med(b, "e2e_batch"), single = bench_med(b, "e2e_single");
    double pull = bench_med(b, "raw_js_pull_ack"), rows = bench_med(b, "raw_pg_inserts");
    double best_bulk = best_peer(b, "bulk", "tput", 0);
    double best_single = best_peer(b, "single", "tput", 0);
    double best_p99 = best_peer(b, "latency", "done_p99_ms", 1);
    const char *no_peers = b->peers_doc ? "a peer figure is missing" : "run with --peers";

    t[n++] = (target_t){"end to end, batch route >= 1.5x the best peer's bulk throughput",
                        best_bulk > 0 ? batch / best_bulk : 0, 1.5, 0, best_bulk > 0, no_peers,
                        "x"};
    double raw_min = pull < rows ? pull : rows;
    t[n++] = (target_t){"end to end, batch route >= 33% of min(raw pull+ack, raw inserts)",
                        raw_min > 0 ? batch / raw_min : 0, 0.33, 0, raw_min > 0 && batch > 0,
                        "not measured", "x"};
    t[n++] = (target_t){"end to end, single route >= 1x the best peer's single-submit throughput",
                        best_single > 0 ? single / best_single : 0, 1.0, 0, best_single > 0,
                        no_peers, "x"};
    t[n++] = (target_t){"accepted -> succeeded p50 < 5 ms at 2,000 jobs/s",
                        bench_med(b, "lat2000_done_p50_ms"), 5, 1,
                        bench_med(b, "lat2000_done_p50_ms") >= 0, "not measured", "ms"};
    t[n++] = (target_t){"accepted -> succeeded p99 < 25 ms at 2,000 jobs/s",
                        bench_med(b, "lat2000_done_p99_ms"), 25, 1,
                        bench_med(b, "lat2000_done_p99_ms") >= 0, "not measured", "ms"};
    t[n++] = (target_t){"accepted -> succeeded p99 at 1,000 jobs/s below every peer's",
                        bench_med(b, "lat1000_done_p99_ms"), best_p99, 1,
                        best_p99 > 0 && bench_med(b, "lat1000_done_p99_ms") >= 0, no_peers, "ms"};
    double worst = 0;
    for (int i = 0; i < b->nprocs; i++)
        if (proc_is_switchyard(&b->procs[i]) && !strstr(b->procs[i].name, "-r3") &&
            b->procs[i].peak_rss_mib > worst)
            worst = b->procs[i].peak_rss_mib;
    t[n++] = (target_t){"every Switchyard process < 32 MiB resident (largest peak RSS)", worst,
                        PROC_RSS_TARGET_MIB, 1, worst > 0, "not measured", "MiB"};
    return n;
}

static const char *target_state(const target_t *t)
{
    if (!t->known)
        return "n/a";
    int met = t->lower_is_better ? t->value < t->goal : t->value >= t->goal;
    return met ? "met" : "missed";
}

/* ---- human output ---- */

static const char *section_of(const char *key)
{
    if (strncmp(key, "raw_", 4) == 0)
        return "raw limits of this machine";
    if (strncmp(key, "gw_", 3) == 0)
        return "gateway alone (no worker runs; jobs accumulate in JOBS)";
    if (strncmp(key, "e2e_", 4) == 0)
        return "end to end: no-op jobs with ~210-byte payloads, first submit -> last result in "
               "PostgreSQL";
    if (strncmp(key, "lat", 3) == 0)
        return "latency at fixed offered rates (POST /v1/jobs, open loop)";
    if (strncmp(key, "r3_", 3) == 0)
        return "R3: against a 3-node JetStream cluster with R3 streams (one machine)";
    return "other";
}

static void print_fig(const bench_t *b, const bench_fig_t *f)
{
    int ms = strcmp(f->unit, "ms") == 0;
    char med[32], spread[64];
    snprintf(med, sizeof med, ms ? "%.2f" : "%.0f", bench_fig_median(f));
    if (f->n > 1)
        snprintf(spread, sizeof spread, ms ? "[%.2f-%.2f]" : "[%.0f-%.0f]", bench_fig_min(f),
                 bench_fig_max(f));
    else
        snprintf(spread, sizeof spread, "(1 run)");
    printf("  %-66s %9s %-7s %s", f->label, med, f->unit, spread);
    double m = bench_fig_median(f);
    double pub = bench_med(b, "raw_js_publish"), pull = bench_med(b, "raw_js_pull_ack");
    double rows = bench_med(b, "raw_pg_inserts");
    if ((!strcmp(f->key, "gw_single") || !strcmp(f->key, "gw_batch")) && pub > 0)
        printf("  %.0f%% of raw publish", 100 * m / pub);
    if ((!strcmp(f->key, "e2e_batch") || !strcmp(f->key, "e2e_single")) && pull > 0 && rows > 0)
        printf("  %.0f%% of raw pull+ack, %.0f%% of raw inserts", 100 * m / pull, 100 * m / rows);
    if (!strncmp(f->key, "r3_", 3) && !strstr(f->key, "_poll") && !strstr(f->key, "_http_")) {
        double single = bench_med(b, f->key + 3);
        if (single > 0)
            printf("  %.2fx the single node", m / single);
    }
    printf("\n");
}

static void print_memory(const bench_t *b)
{
    printf("\npeak memory (RSS: the kernel's peak for one process, the sampled sum for a tree; "
           "PSS sampled every 100 ms)\n");
    for (int i = 0; i < b->nprocs; i++) {
        const bench_proc_t *p = &b->procs[i];
        printf("  %-22s peak RSS %7.1f MiB", p->name, p->peak_rss_mib);
        if (p->peak_pss_mib > 0)
            printf("   peak PSS %7.1f MiB", p->peak_pss_mib);
        else
            printf("   (not sampled: the R3 section's)");
        if (p->tree)
            printf("   (%d processes)", p->nprocs);
        printf("\n");
    }
    printf("  %-22s                        peak PSS %7.1f MiB   (summed per sample, %d samples, "
           "%.2f s of CPU)\n", "all of the above", b->mem_total_pss_mib, b->mem_samples,
           b->mem_cpu_s);
}

/* One table cell: v with decimals and a suffix, "-" when v < 0. */
static void print_cell(double v, int decimals, const char *suffix)
{
    char s[32];
    if (v < 0)
        snprintf(s, sizeof s, "-");
    else
        snprintf(s, sizeof s, "%.*f%s", decimals, v, suffix);
    printf(" %13s", s);
}

static void print_side_by_side(const bench_t *b)
{
    const char *peers[] = {"bullmq", "beanstalkd"};
    json_t *doc = b->peers_doc;
    long long runs = json_integer_value(json_object_get(doc, "runs"));
    printf("\nside by side (peers: %s, N=%lld, median of %lld run%s, same machine, after "
           "Switchyard's runs)\n", json_string_value(json_object_get(doc, "source")),
           json_integer_value(json_object_get(doc, "N")), runs, runs == 1 ? "" : "s");
    printf("  %-34s %13s %13s %13s %13s %13s\n", "system", "bulk jobs/s", "single jobs/s",
           "done p50", "done p99", "peak PSS MiB");
    printf("  %-34s %13s %13s %13s %13s %13s\n", "", "", "", "at 1000/s", "at 1000/s", "");
    for (size_t i = 0; i < 2; i++) {
        json_t *p = json_object_get(json_object_get(doc, "peers"), peers[i]);
        printf("  %-34s", json_string_value(json_object_get(p, "label")));
        print_cell(bench_peer_num(b, peers[i], "bulk", "tput"), 0, "");
        print_cell(bench_peer_num(b, peers[i], "single", "tput"), 0, "");
        print_cell(bench_peer_num(b, peers[i], "latency", "done_p50_ms"), 1, " ms");
        print_cell(bench_peer_num(b, peers[i], "latency", "done_p99_ms"), 1, " ms");
        print_cell(peer_mem(b, peers[i]), 0, "");
        printf("\n");
    }
    double sy[5] = {bench_med(b, "e2e_batch"), bench_med(b, "e2e_single"),
                    bench_med(b, "lat1000_done_p50_ms"), bench_med(b, "lat1000_done_p99_ms"),
                    b->mem_total_pss_mib};
    double best[5] = {best_peer(b, "bulk", "tput", 0), best_peer(b, "single", "tput", 0),
                      best_peer(b, "latency", "done_p50_ms", 1),
                      best_peer(b, "latency", "done_p99_ms", 1), -1};
    double mb = -1;
    for (size_t i = 0; i < 2; i++) {
        double m = peer_mem(b, peers[i]);
        mb = m >= 0 && (mb < 0 || m < mb) ? m : mb;
    }
    best[4] = mb;
    printf("  %-34s", "Switchyard (batch x100 / single)");
    const int decimals[5] = {0, 0, 1, 1, 0};
    const char *suffix[5] = {"", "", " ms", " ms", ""};
    for (int i = 0; i < 5; i++)
        print_cell(sy[i], decimals[i], suffix[i]);
    printf("\n  %-34s", "Switchyard / best peer");
    for (int i = 0; i < 5; i++)
        print_cell(sy[i] >= 0 && best[i] > 0 ? sy[i] / best[i] : -1, 2, "x");
    printf("\n  (throughput: higher is better; latency and memory: lower is better. "
           "Switchyard's memory\n   counts gateway, workers, nats-server and PostgreSQL; the "
           "peers' their server and workers)\n");
}

static void print_human(bench_t *b, const target_t *t, int nt)
{
    const char *section = NULL;
    printf("Switchyard bench: each figure is the median of %d run%s [min-max]; 2 cores share "
           "everything\n", b->runs, b->runs > 1 ? "s" : "");
    for (int i = 0; i < b->nfigs; i++) {
        const char *s = section_of(b->figs[i].key);
        if (!section || strcmp(s, section) != 0) {
            printf("\n%s\n", s);
            section = s;
        }
        print_fig(b, &b->figs[i]);
    }
    print_memory(b);
    if (b->peers_doc)
        print_side_by_side(b);
    printf("\ntargets (issue 12)\n");
    for (int i = 0; i < nt; i++) {
        printf("  %-74s ", t[i].name);
        if (!t[i].known)
            printf("n/a (%s)\n", t[i].why);
        else if (!strcmp(t[i].unit, "x"))
            printf("%-6s %.2fx (goal %s %.2fx)\n", target_state(&t[i]), t[i].value,
                   t[i].lower_is_better ? "<" : ">=", t[i].goal);
        else
            printf("%-6s %.1f %s (goal %s %.1f %s)\n", target_state(&t[i]), t[i].value, t[i].unit,
                   t[i].lower_is_better ? "<" : ">=", t[i].goal, t[i].unit);
    }
    if (b->notes && json_array_size(b->notes)) {
        printf("\nnotes\n");
        size_t i;
        json_t *v;
        json_array_foreach(b->notes, i, v)
            printf("  - %s\n", json_string_value(v));
    }
}

/* ---- JSON ---- */

static void print_json(bench_t *b, const target_t *t, int nt)
{
    json_t *doc = json_object(), *figs = json_object(), *mem = json_array(),
           *targets = json_array();
    json_object_set_new(doc, "runs", json_integer(b->runs));
    json_object_set_new(doc, "quick", json_boolean(b->quick));
    json_object_set_new(doc, "nproc", json_integer(sysconf(_SC_NPROCESSORS_ONLN)));
    json_object_set_new(doc, "e2e_jobs", json_integer(b->e2e_jobs));
    for (int i = 0; i < b->nfigs; i++) {
        const bench_fig_t *f = &b->figs[i];
        json_t *runs = json_array();
        for (int k = 0; k < f->n; k++)
            json_array_append_new(runs, json_real(f->v[k]));
        json_object_set_new(figs, f->key,
                            json_pack("{s:s, s:s, s:o, s:f, s:f, s:f}", "label", f->label, "unit",
                                      f->unit, "runs", runs, "median", bench_fig_median(f), "min",
                                      bench_fig_min(f), "max", bench_fig_max(f)));
    }
    json_object_set_new(doc, "figures", figs);
    for (int i = 0; i < b->nprocs; i++) {
        const bench_proc_t *p = &b->procs[i];
        json_array_append_new(mem, json_pack("{s:s, s:f, s:f, s:i}", "process", p->name,
                                             "peak_rss_mib", p->peak_rss_mib, "peak_pss_mib",
                                             p->peak_pss_mib, "processes", p->tree ? p->nprocs : 1));
    }
    json_object_set_new(doc, "memory", mem);
    json_object_set_new(doc, "memory_total_peak_pss_mib", json_real(b->mem_total_pss_mib));
    json_object_set_new(doc, "memory_samples", json_integer(b->mem_samples));
    json_object_set_new(doc, "memory_sampler_cpu_s", json_real(b->mem_cpu_s));
    for (int i = 0; i < nt; i++)
        json_array_append_new(targets, json_pack("{s:s, s:s, s:f, s:f, s:s}", "target",
                                                 t[i].name, "state", target_state(&t[i]),
                                                 "value", t[i].value, "goal", t[i].goal, "unit",
                                                 t[i].unit));
    json_object_set_new(doc, "targets", targets);
    json_object_set_new(doc, "peers", b->peers_doc ? json_incref(b->peers_doc) : json_null());
    json_object_set_new(doc, "notes", b->notes ? json_incref(b->notes) : json_array());
    json_dumpf(doc, stdout, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    printf("\n");
    json_decref(doc);
}

void bench_report(bench_t *b)
{
    target_t t[16];
    int nt = targets_make(b, t);
    if (b->json)
        print_json(b, t, nt);
    else
        print_human(b, t, nt);
    fflush(stdout);
}
