/*
 * bench.c - `make bench`: Switchyard's throughput, latency and memory next
 * to the raw limits of this machine, measured in the same sitting, and with
 * --peers next to the peers' (../shared/peers) on the same machine.
 *
 * It starts nats-server and a durable PostgreSQL (fsync on, the settings
 * `make up` ships) with the test harness, then Switchyard as a user gets it
 * (the gateway with auth on and a yardctl key, the workers with their
 * defaults, info logs), and measures, each figure over --runs runs (3):
 *   1. raw JetStream publish and pull+ack, raw PostgreSQL inserts
 *      (bench_raw.c);
 *   2. the gateway alone under yard-load: single jobs, batches of 100, an
 *      open loop at 2,000 requests/s (bench_gateway.c);
 *   3. end to end, as the peers measure it: N no-op jobs with ~210-byte
 *      payloads through the batch route (100 a request) and the single route
 *      (64 in flight), first submit to last result in PostgreSQL; fixed-rate
 *      latency runs at 2,000 and 1,000 jobs/s, accepted -> succeeded per job
 *      from PostgreSQL (bench_e2e.c);
 *   4. the batch route and end to end against a 3-node R3 JetStream cluster
 *      (bench_r3.c);
 * with every process's peak memory sampled throughout (bench_mem.c); then,
 * with --peers, BullMQ and beanstalkd (bench_peers.c, peers.py). It prints
 * medians with their spread, ratios and the targets (bench_report.c)
 * and exits 0 whether the targets are met or not: 1 only when it could not
 * measure. One benchmark at a time: do not run two on this machine at once.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "log.h"

#define PAD_BYTES 150

static bench_t *bench_running; /* for bench_cleanup at exit */

static void bench_cleanup(void)
{
    bench_t *b = bench_running;
    if (!b)
        return;
    bench_running = NULL;
    bench_mem_stop(b);
    bench_programs_stop(b);
    yt_env_destroy(b->env);
    b->env = NULL;
}

static void usage(FILE *f)
{
    fprintf(f,
"usage: make bench [BENCH_ARGS=\"options\"]   (or build/bench/yard-bench [options])\n"
"\n"
"Measures raw JetStream and PostgreSQL, the gateway alone, Switchyard end to end\n"
"(batch and single routes), latency at 2,000 and 1,000 jobs/s, peak memory of\n"
"every process, and R3; prints medians of --runs runs with their min-max spread\n"
"and the targets of issue 12 (met / missed). Exit 0 unless the bench itself failed.\n"
"\n"
"  --json            one JSON document on stdout (progress stays on stderr)\n"
"  --peers           then run ../shared/peers (BullMQ AOF, beanstalkd binlog) and\n"
"                    print a side-by-side table; PEERS_N (20000), PEERS_RUNS (3)\n"
"                    and the other PEERS_* variables pass through\n"
"  --quick           small counts and 1 run, to check that the bench works\n"
"                    (also YARD_BENCH_QUICK=1); with --peers PEERS_N=2000 and\n"
"                    PEERS_RUNS=1 unless they are set\n"
"  --runs N          runs per figure (default 3; quick 1)\n"
"  --jobs N          end-to-end jobs per run, a multiple of 100 (default 20000)\n"
"  --raw N           raw JetStream messages and PostgreSQL rows per run (100000)\n"
"  --load-seconds S  gateway-alone windows (default 8)\n"
"  --lat-seconds S   fixed-rate latency windows (default 10)\n"
"  --no-r3           skip the 3-node R3 section\n"
"  --help            this text\n");
}

/* Fills b's options from argv. Returns 0 to run, 1 after --help, -1 on bad
 * options. */
static int parse_args(bench_t *b, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"json", no_argument, NULL, 'j'},          {"peers", no_argument, NULL, 'p'},
        {"quick", no_argument, NULL, 'q'},         {"runs", required_argument, NULL, 'r'},
        {"jobs", required_argument, NULL, 'n'},    {"raw", required_argument, NULL, 'R'},
        {"load-seconds", required_argument, NULL, 'l'},
        {"lat-seconds", required_argument, NULL, 'L'},
        {"no-r3", no_argument, NULL, '3'},         {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *quick = getenv("YARD_BENCH_QUICK");
    long runs = -1, jobs = -1, raw = -1;
    double load_s = -1, lat_s = -1;
    int ch;

    b->quick = quick && *quick && strcmp(quick, "0") != 0;
    b->r3 = 1;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'j': b->json = 1; break;
        case 'p': b->peers = 1; break;
        case 'q': b->quick = 1; break;
        case '3': b->r3 = 0; break;
        case 'r': runs = atol(optarg); break;
        case 'n': jobs = atol(optarg); break;
        case 'R': raw = atol(optarg); break;
        case 'l': load_s = atof(optarg); break;
        case 'L': lat_s = atof(optarg); break;
        case 'h': usage(stdout); return 1;
        default: usage(stderr); return -1;
        }
    }
    b->runs = runs >= 0 ? (int)runs : b->quick ? 1 : 3;
    b->e2e_jobs = jobs >= 0 ? jobs : b->quick ? 2000 : 20000;
    b->raw_msgs = b->raw_rows = raw >= 0 ? raw : b->quick ? 20000 : 100000;
    b->load_s = load_s >= 0 ? load_s : b->quick ? 2 : 8;
    b->lat_s = lat_s >= 0 ? lat_s : b->quick ? 3 : 10;
    b->batch_size = 100;
    b->batch_conns = 4;
    b->single_conns = 64;
    b->lat_rates[0] = 2000;
    b->lat_rates[1] = 1000;
    if (optind < argc || b->runs < 1 || b->runs > BENCH_MAX_RUNS || b->e2e_jobs < 100 ||
        b->e2e_jobs % b->batch_size != 0 || b->raw_msgs < 256 || b->load_s <= 0 ||
        b->lat_s <= 0) {
        fprintf(stderr, "bench: bad options: --runs 1..%d, --jobs a multiple of %d, --raw >= "
                        "256, positive seconds\n", BENCH_MAX_RUNS, b->batch_size);
        return -1;
    }
    return 0;
}

/* The job every end-to-end and latency run submits: a no-op with a payload
 * shaped like the peers' ({"ts":…,"i":…,"kind":"noop","pad":"x"*150}). */
static char *job_body(void)
{
    char pad[PAD_BYTES + 1], *body = NULL;
    memset(pad, 'x', PAD_BYTES);
    pad[PAD_BYTES] = '\0';
    if (asprintf(&body, "{\"type\":\"noop\",\"payload\":{\"ts\":%lld,\"i\":12345,"
                        "\"kind\":\"noop\",\"pad\":\"%s\"}}", bench_wall_ms(), pad) < 0)
        return NULL;
    return body;
}

/* The execute worker's busy-time split over one end-to-end run. */
static void split_add(bench_t *b, const double before[3], const double after[3])
{
    const char *keys[] = {"e2e_batch_busy_pg_pct", "e2e_batch_busy_js_pct",
                          "e2e_batch_busy_handler_pct"};
    const char *labels[] = {"  execute worker busy time: PostgreSQL",
                            "  execute worker busy time: JetStream",
                            "  execute worker busy time: handlers"};
    double d[3], total = 0;
    for (int i = 0; i < 3; i++)
        total += d[i] = after[i] - before[i];
    for (int i = 0; total > 0 && i < 3; i++)
        bench_fig_add(b, keys[i], labels[i], "%", 100 * d[i] / total);
}

/* Switchyard on the single node: the gateway alone, then end to end and the
 * latency runs. Returns 0 or -1. */
static int single_node(bench_t *b)
{
    b->gw_port = yt_free_port();
    b->exec_port = yt_free_port();
    b->audit_port = yt_free_port();
    if (bench_gateway_start(b, NULL) != 0 || bench_key_create(b) != 0)
        return -1;
    for (int run = 0; run < b->runs; run++) {
        bench_progress("gateway alone, run %d of %d", run + 1, b->runs);
        if (bench_gateway_runs(b, "") != 0)
            return -1;
    }
    bench_streams_purge(b->nats_url); /* the end-to-end runs start without a backlog */
    if (bench_workers_start(b, NULL) != 0)
        return -1;
    for (int run = 0; run < b->runs; run++) {
        double before[3], after[3];
        bench_time_split(b->exec_port, &before[0], &before[1], &before[2]);
        if (bench_e2e_run(b, "", 1) != 0)
            return -1;
        bench_time_split(b->exec_port, &after[0], &after[1], &after[2]);
        split_add(b, before, after);
    }
    for (int run = 0; run < b->runs; run++)
        if (bench_e2e_run(b, "", 0) != 0)
            return -1;
    for (int r = 0; r < 2; r++)
        for (int run = 0; run < b->runs; run++)
            if (bench_latency_run(b, b->lat_rates[r]) != 0)
                return -1;
    return 0;
}

extern char **environ;

/* Notes every YARD_* variable of the bench's own environment that its
 * programs would inherit: each one moves them away from the defaults. */
static void note_inherited_settings(bench_t *b)
{
    static const char *own[] = {"YARD_BIN=", "YARD_SRC_DIR=", "YARD_TEST_DIR=", "YARD_TEST_ROOT=",
                                "YARD_BENCH_QUICK=", "YARD_PEERS_DIR=", "YARD_TEST_KEEP="};
    for (char **e = environ; *e; e++) {
        int mine = strncmp(*e, "YARD_", 5) != 0;
        for (size_t i = 0; !mine && i < sizeof own / sizeof own[0]; i++)
            mine = strncmp(*e, own[i], strlen(own[i])) == 0;
        if (!mine)
            bench_note(b, "%.*s is set in the environment: the programs inherit it, so they do "
                          "not run with their defaults", (int)strcspn(*e, "="), *e);
    }
}

static void add_notes(bench_t *b)
{
    note_inherited_settings(b);
    bench_note(b, "Switchyard as a user gets it: the gateway with auth on and a key from "
                  "`yardctl keys create --scopes submit,read --rate 10000000 --burst 10000000`, "
                  "the workers with their default concurrency and batch, info logs; PostgreSQL "
                  "with ops/postgres/yard.conf, fsync and synchronous_commit on");
    bench_note(b, "end to end: %ld jobs a run; the batch route with %d requests in flight; "
                  "completion is a count of the run's jobs left in PostgreSQL (then one of those "
                  "succeeded), polled at most every 20 ms; the poll figures are the queries' "
                  "total time and their backend's CPU (in 10 ms ticks)",
               b->e2e_jobs, b->batch_conns);
    bench_note(b, "accepted -> succeeded = jobs.finished_at - jobs.created_at per job, over the "
                  "jobs created after the run's first second: created_at is the gateway's accept "
                  "time in whole ms (rounded down: up to 1 ms more), finished_at is the clock "
                  "time its outcome's row was written (just before the commit)");
    bench_note(b, "the programs run through every run (the peers start fresh ones per run) and "
                  "the jobs table keeps every run's rows");
}

int main(int argc, char **argv)
{
    static bench_t bench;
    bench_t *b = &bench;
    int rc = 0;

    switch (parse_args(b, argc, argv)) {
    case 1:
        return 0;
    case -1:
        return 1;
    }
    yard_log_init("bench", YARD_LOG_ERROR);
    b->payload = job_body();
    if (!b->payload)
        return 1;
    bench_progress("starting nats-server and PostgreSQL (%d run%s per figure%s)", b->runs,
                   b->runs > 1 ? "s" : "", b->quick ? ", quick" : "");
    if (b->quick && b->peers) { /* the peers' quick counts, unless set */
        setenv("PEERS_N", "2000", 0);
        setenv("PEERS_RUNS", "1", 0);
    }
    if (yt_env_create(&b->env, YT_NATS | YT_PG | YT_MIGRATE | YT_PG_DURABLE) < 0)
        return 1;
    bench_running = b;
    atexit(bench_cleanup);
    snprintf(b->nats_url, sizeof b->nats_url, "%s", b->env->nats_url);
    bench_mem_track(b, "nats-server", b->env->nats_pid, 0, 0);
    bench_mem_track(b, "postgresql", b->env->pg_pid, 0, 1);
    if (bench_mem_start(b) != 0)
        return 1;

    for (int run = 0; rc == 0 && run < b->runs; run++) {
        bench_progress("raw limits, run %d of %d", run + 1, b->runs);
        if (bench_raw_jetstream(b) != 0 || bench_raw_postgres(b) != 0)
            rc = 1;
    }
    if (rc == 0 && single_node(b) != 0)
        rc = 1;
    bench_mem_stop(b);
    for (int i = 0; i < b->nprocs; i++)
        bench_mem_final(b, i);
    if (rc == 0 && b->r3 && bench_r3_section(b) != 0)
        rc = 1;
    bench_cleanup(); /* nothing of Switchyard's runs while the peers do */
    if (rc == 0 && b->peers && bench_peers_run(b) != 0)
        rc = 1;
    add_notes(b);
    bench_report(b);
    if (rc != 0)
        fprintf(stderr, "bench: stopped early: the figures above are incomplete\n");
    json_decref(b->notes);
    json_decref(b->peers_doc);
    free((char *)b->payload);
    return rc;
}
