/*
 * bench.h - the parts of `make bench` (tests/bench/bench*.c) and what they
 * share: the options, the programs started, and the figures measured.
 *
 * Every figure is kept per run (bench_fig_add) and reported as the median
 * with its min-max spread; --json prints them all as one document.
 * Functions return 0 or -1 after printing why to stderr: a bench that
 * cannot measure stops, a missed target does not (a benchmark is not a test).
 */
#ifndef YARD_BENCH_H
#define YARD_BENCH_H

#include <sys/types.h>

#include <jansson.h>

#include "harness.h"

#define BENCH_MAX_RUNS 9
#define BENCH_SETTLE_S 120 /* longest wait for the workers to finish a run's backlog */
#define BENCH_MAX_FIGS 96
#define BENCH_MAX_PROCS 8
#define BENCH_KEY_MAX 160

/* One measured quantity, one value per run. */
typedef struct {
    char key[64];    /* JSON name, e.g. "e2e_batch_jobs_per_s" */
    char label[112]; /* what the table prints */
    char unit[16];   /* "jobs/s", "ms", ... */
    double v[BENCH_MAX_RUNS];
    int n;
} bench_fig_t;

/* A program the bench started and its memory, sampled while it ran. */
typedef struct {
    char name[32];   /* "gateway", "worker-execute", "nats-server", "postgresql" */
    pid_t pid;
    int owned;       /* started by the bench (stopped by it); else the harness's */
    int tree;        /* count the process and all its descendants (PostgreSQL) */
    int nprocs;      /* processes in the tree at the last sample */
    double peak_rss_mib;  /* VmHWM for one process; the sampled summed RSS for a tree */
    double peak_pss_mib;  /* sampled */
} bench_proc_t;

typedef struct {
    /* options */
    int quick, json, peers, r3;
    int runs;            /* runs per figure (3, quick 1) */
    long raw_msgs;       /* raw JetStream messages per run */
    long raw_rows;       /* raw PostgreSQL rows per run */
    long e2e_jobs;       /* end-to-end jobs per run */
    int batch_size;      /* jobs per batch request (100) */
    int batch_conns;     /* batch requests in flight (4) */
    int single_conns;    /* single requests in flight (64) */
    double load_s;       /* gateway-alone yard-load windows */
    double lat_s;        /* fixed-rate latency windows */
    double lat_rates[2]; /* 2,000 and 1,000 jobs/s */
    const char *payload; /* the job body: a noop job with a ~210-byte payload */
    /* what runs */
    yt_env_t *env;
    char nats_url[320];
    int gw_port, exec_port, audit_port;
    const char *name_suffix; /* added to the programs' names ("-r3" in that section) */
    char api_key[BENCH_KEY_MAX];
    bench_proc_t procs[BENCH_MAX_PROCS];
    int nprocs;
    double mem_total_pss_mib; /* the peak of the summed PSS of every process */
    int mem_samples;
    double mem_cpu_s;    /* CPU time the sampler used (its cost to the figures) */
    /* results */
    bench_fig_t figs[BENCH_MAX_FIGS];
    int nfigs;
    json_t *notes;       /* strings: how each figure was taken (also printed) */
    json_t *peers_doc;   /* peers.py's document, or NULL */
} bench_t;

/* ---- bench_fig.c ---- */
/* Appends value v (a run) to the figure key, made with label and unit on
 * first use. */
void bench_fig_add(bench_t *b, const char *key, const char *label, const char *unit, double v);
/* The figure key, or NULL when it was never measured. */
const bench_fig_t *bench_fig_get(const bench_t *b, const char *key);
/* Median, min and max of f's runs (0 for NULL or no runs). */
double bench_fig_median(const bench_fig_t *f);
double bench_fig_min(const bench_fig_t *f);
double bench_fig_max(const bench_fig_t *f);
/* The median of figure key, or -1 when it was never measured. */
double bench_med(const bench_t *b, const char *key);

/* ---- bench_procs.c ---- */
/* Reads the JSON document a command prints on stdout (anything after it is
 * read and dropped, so the command never writes into a closed pipe), waits
 * for the command and sets *exit_status (its exit code, -1 if it did not
 * exit). Returns the document (json_decref it) or NULL. */
json_t *bench_popen_json(const char *cmd, int *exit_status);
/* Seconds on a monotonic clock, and wall-clock milliseconds (the gateway's
 * created_at clock). */
double bench_now_s(void);
long long bench_wall_ms(void);
/* Reads /proc/<pid>/stat into buf (cap bytes) and returns where its fields
 * after the command name start (the state, field 3), or NULL. */
const char *bench_proc_stat(pid_t pid, char *buf, size_t cap);
/* Starts the gateway (auth on, defaults) on b->gw_port against nats_url;
 * extra (NULL-terminated K=V list, may be NULL) is added to its
 * environment. Waits for /readyz. Returns 0 or -1. */
int bench_gateway_start(bench_t *b, char *const extra[]);
/* Starts the execute and audit workers with their defaults. Returns 0 or -1. */
int bench_workers_start(bench_t *b, char *const extra[]);
/* Stops every program the bench started (not the harness's servers); reads
 * their peak RSS first. */
void bench_programs_stop(bench_t *b);
/* Makes the bench's API key with yardctl (the gateway must run: the key's
 * event needs the EVENTS stream) and waits until the gateway accepts it.
 * Returns 0 or -1. */
int bench_key_create(bench_t *b);
/* Waits until the gateway on b->gw_port accepts b->api_key. Returns 0 or -1. */
int bench_key_wait(bench_t *b);
/* Runs yard-load with args (plus --json, --api-key and --body) and sets *out
 * to its report (json_decref it). Returns 0 or -1. */
int bench_load(bench_t *b, const char *args, json_t **out);
/* A number inside a yard-load report ("latency_ms", "p50"); 0 if absent. */
double bench_jnum(json_t *doc, const char *k1, const char *k2);
/* Removes every message from the JOBS and EVENTS streams at nats_url: the
 * gateway-alone runs' jobs and their accepted events, which the audit role
 * would otherwise record as queued rows during the end-to-end runs. */
void bench_streams_purge(const char *nats_url);
/* Waits (up to timeout_s) until no consumer of the cluster at nats_url has
 * messages pending or unacknowledged: the workers have finished what the
 * last run left them (the audit role's events, above all), so the next run
 * does not share the machine with it. Prints how long it waited when that
 * was noticeable; returns the backlog left (0: settled), or -1. */
long bench_wait_settled(const char *nats_url, int timeout_s);
/* The execute worker's busy seconds per part, from its /metrics. */
void bench_time_split(int port, double *pg, double *js, double *handler);

/* ---- bench_mem.c ---- */
/* Tracks pid as name (tree: with its descendants) from now on. */
void bench_mem_track(bench_t *b, const char *name, pid_t pid, int owned, int tree);
/* Starts / stops sampling every tracked process every 100 ms. */
int bench_mem_start(bench_t *b);
void bench_mem_stop(bench_t *b);
/* Reads the kernel's peak RSS (VmHWM) of b->procs[i] if it is one process. */
void bench_mem_final(bench_t *b, int i);

/* ---- bench_raw.c ---- */
/* One run of raw JetStream publish and pull+ack, and of raw inserts. */
int bench_raw_jetstream(bench_t *b);
int bench_raw_postgres(bench_t *b);

/* ---- bench_gateway.c ---- */
/* One run of each gateway-alone load (no workers): single, batch, open loop. */
int bench_gateway_runs(bench_t *b, const char *prefix);

/* ---- bench_e2e.c ---- */
/* One end-to-end run through the batch route (batch != 0) or the single
 * route, adding its figures under prefix. Returns 0 or -1. */
int bench_e2e_run(bench_t *b, const char *prefix, int batch);
/* One fixed-rate latency run (single route, open loop). Returns 0 or -1. */
int bench_latency_run(bench_t *b, double rate);

/* ---- bench_r3.c ---- */
int bench_r3_section(bench_t *b);

/* ---- bench_peers.c ---- */
/* Runs tests/bench/peers.py and keeps its document in b->peers_doc.
 * Returns 0 or -1. */
int bench_peers_run(bench_t *b);
/* A peer's median (peer "bullmq", column "bulk", key "tput"), or -1. */
double bench_peer_num(const bench_t *b, const char *peer, const char *col, const char *key);

/* ---- bench_report.c ---- */
/* Prints the human tables (or, with --json, one JSON document) on stdout. */
void bench_report(bench_t *b);
/* Adds a note that the report prints under the figures. */
void bench_note(bench_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A progress line on stderr (the report itself goes to stdout). */
void bench_progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
