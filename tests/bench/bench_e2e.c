/*
 * bench_e2e.c - Switchyard end to end, the way the peers are measured: N
 * no-op jobs with ~210-byte payloads submitted through the batch route (100
 * a request) or the single route (64 in flight), timed from the first submit
 * until PostgreSQL holds the last result; and fixed-rate latency runs (open
 * loop on the single route) with accepted -> succeeded per job read from
 * PostgreSQL (finished_at - created_at) (bench.h).
 *
 * A run's jobs are the rows created since it started (every earlier run has
 * finished before the next starts). Completion is polled with a count of the
 * run's rows not yet final, which the (status, created_at) index answers in
 * time proportional to the jobs left, at most every 20 ms and only that often
 * when the jobs left could be done within ~40 ms at the rate seen so far;
 * when none is left, one count of the succeeded rows confirms that all are
 * there. So polling adds little load; the polls' count and time are
 * reported.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "bench.h"

#define POLL_MIN_S 0.02
#define POLL_MAX_S 0.5
#define POLL_IDLE_S 0.05
#define DONE_TIMEOUT_MIN_S 60
#define LAT_WARMUP_S 1
#define LAT_CONNS 64

#define SQL_LEFT                                                                             \
    "SELECT count(*) FROM jobs WHERE status IN ('queued', 'scheduled', 'running', 'failed')"  \
    " AND created_at >= to_timestamp($1::bigint / 1000.0)"
#define SQL_DONE                                                                             \
    "SELECT count(*) FROM jobs WHERE status = 'succeeded'"                                   \
    " AND created_at >= to_timestamp($1::bigint / 1000.0)"
#define SQL_LATENCY                                                                          \
    "SELECT count(*), percentile_disc(0.5) WITHIN GROUP (ORDER BY ms),"                      \
    " percentile_disc(0.99) WITHIN GROUP (ORDER BY ms),"                                     \
    " percentile_disc(0.999) WITHIN GROUP (ORDER BY ms), max(ms)"                            \
    " FROM (SELECT extract(epoch FROM finished_at - created_at) * 1000 AS ms FROM jobs"     \
    " WHERE status = 'succeeded' AND created_at >= to_timestamp($1::bigint / 1000.0)) s"
#define SQL_STATUSES                                                                         \
    "SELECT coalesce(string_agg(status || ' ' || n, ', '), 'no rows') FROM (SELECT status,"  \
    " count(*) n FROM jobs WHERE created_at >= to_timestamp($1::bigint / 1000.0)"            \
    " GROUP BY status) s"

typedef struct {
    int polls;
    double poll_s;  /* time spent in the count queries */
    double cpu_s;   /* CPU time the polling connection's backend used */
    long done;
    double t_done;  /* monotonic seconds when a poll first saw none left */
} wait_t;

/* Runs sql with since_ms as $1; returns the result (PQclear it) or NULL. */
static PGresult *query_since(PGconn *c, const char *sql, long long since_ms)
{
    char since[32];
    snprintf(since, sizeof since, "%lld", since_ms);
    const char *params[1] = {since};
    PGresult *r = PQexecParams(c, sql, 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        fprintf(stderr, "bench: query failed: %s", PQerrorMessage(c));
        PQclear(r);
        return NULL;
    }
    return r;
}

/* CPU seconds (user + system) process pid has used; 0 if unknown. */
static double proc_cpu_s(pid_t pid)
{
    char buf[1024];
    unsigned long utime = 0, stime = 0;
    const char *p = bench_proc_stat(pid, buf, sizeof buf);
    /* From the state: fields 4..13, then utime (14) and stime (15). */
    if (!p || sscanf(p, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime,
                     &stime) != 2)
        return 0;
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

/* Waits until expect jobs created since since_ms have succeeded (t0: the
 * first submit, monotonic seconds). Returns 0, or -1 after saying where the
 * run's jobs stand. */
static int wait_done(PGconn *c, long long since_ms, long expect, double t0, wait_t *w)
{
    double timeout = DONE_TIMEOUT_MIN_S + expect / 200.0;
    pid_t backend = PQbackendPID(c);
    memset(w, 0, sizeof *w);
    double cpu0 = proc_cpu_s(backend);
    for (;;) {
        double q0 = bench_now_s();
        PGresult *r = query_since(c, SQL_LEFT, since_ms);
        double q1 = bench_now_s();
        if (!r)
            return -1;
        long left = atol(PQgetvalue(r, 0, 0));
        PQclear(r);
        w->polls++;
        w->poll_s += q1 - q0;
        w->done = expect - left; /* an estimate until the rows are all there */
        if (left == 0) {
            /* None left: are they all there (the audit role may lag)? */
            r = query_since(c, SQL_DONE, since_ms);
            w->poll_s += bench_now_s() - q1;
            if (!r)
                return -1;
            w->done = atol(PQgetvalue(r, 0, 0));
            PQclear(r);
            if (w->done >= expect) {
                w->t_done = q1;
                w->cpu_s = proc_cpu_s(backend) - cpu0;
                return 0;
            }
        }
        if (q1 - t0 > timeout) {
            r = query_since(c, SQL_STATUSES, since_ms);
            fprintf(stderr, "bench: %ld of %ld jobs succeeded after %.0f s; the run's rows: %s\n",
                    w->done, expect, q1 - t0, r ? PQgetvalue(r, 0, 0) : "?");
            PQclear(r);
            return -1;
        }
        double rate = w->done / (q1 - t0), nap = POLL_IDLE_S;
        if (rate > 0)
            nap = (expect - w->done) / rate / 2;
        nap = nap < POLL_MIN_S ? POLL_MIN_S : nap > POLL_MAX_S ? POLL_MAX_S : nap;
        usleep((useconds_t)(nap * 1e6));
    }
}

static PGconn *connect_pg(bench_t *b)
{
    PGconn *c = PQconnectdb(b->env->pg_dsn);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "bench: cannot connect to PostgreSQL: %s", PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    return c;
}

int bench_e2e_run(bench_t *b, const char *prefix, int batch)
{
    char args[512], key[64], label[128];
    long n = b->e2e_jobs;
    json_t *doc = NULL;
    wait_t w;
    bench_wait_settled(b->nats_url, BENCH_SETTLE_S);
    PGconn *c = connect_pg(b);
    if (!c)
        return -1;
    if (batch)
        snprintf(args, sizeof args,
                 "--url http://127.0.0.1:%d/v1/jobs/batch --batch %d --requests %ld "
                 "--connections %d",
                 b->gw_port, b->batch_size, n / b->batch_size, b->batch_conns);
    else
        snprintf(args, sizeof args, "--url http://127.0.0.1:%d/v1/jobs --requests %ld "
                 "--connections %d", b->gw_port, n, b->single_conns);
    long long since = bench_wall_ms();
    double t0 = bench_now_s();
    int rc = bench_load(b, args, &doc);
    double t_posted = bench_now_s();
    long accepted = rc == 0 ? (long)bench_jnum(doc, "all_2xx", NULL) * (batch ? b->batch_size : 1)
                            : 0;
    json_decref(doc);
    if (rc == 0 && accepted != n) {
        fprintf(stderr, "bench: end to end: %ld of %ld jobs accepted\n", accepted, n);
        rc = -1;
    }
    if (rc == 0)
        rc = wait_done(c, since, n, t0, &w);
    PQfinish(c);
    if (rc != 0)
        return -1;
    const char *route = batch ? "batch" : "single";
    snprintf(key, sizeof key, "%se2e_%s", prefix, route);
    if (batch)
        snprintf(label, sizeof label, "end to end, POST /v1/jobs/batch x%d, %d in flight",
                 b->batch_size, b->batch_conns);
    else
        snprintf(label, sizeof label, "end to end, POST /v1/jobs, %d in flight",
                 b->single_conns);
    bench_fig_add(b, key, label, "jobs/s", n / (w.t_done - t0));
    snprintf(key, sizeof key, "%se2e_%s_submit", prefix, route);
    snprintf(label, sizeof label, "  of which submitting (%s route)", route);
    bench_fig_add(b, key, label, "jobs/s", n / (t_posted - t0));
    snprintf(key, sizeof key, "%se2e_%s_poll_ms", prefix, route);
    snprintf(label, sizeof label, "  completion polls: their queries' time (%s route)", route);
    bench_fig_add(b, key, label, "ms", w.poll_s * 1000);
    snprintf(key, sizeof key, "%se2e_%s_poll_cpu_ms", prefix, route);
    snprintf(label, sizeof label, "  completion polls: PostgreSQL CPU for them (%s route)", route);
    bench_fig_add(b, key, label, "ms", w.cpu_s * 1000);
    bench_progress("%se2e %s: %ld jobs in %.2f s (%.0f jobs/s; %d polls, %.1f ms of queries, "
                   "%.0f ms of PostgreSQL CPU)", prefix, route, n, w.t_done - t0,
                   n / (w.t_done - t0), w.polls, w.poll_s * 1000, w.cpu_s * 1000);
    return 0;
}

int bench_latency_run(bench_t *b, double rate)
{
    char args[512], key[64], label[128];
    json_t *doc = NULL;
    wait_t w;
    bench_wait_settled(b->nats_url, BENCH_SETTLE_S);
    PGconn *c = connect_pg(b);
    if (!c)
        return -1;
    snprintf(args, sizeof args, "--url http://127.0.0.1:%d/v1/jobs --connections %d "
             "--duration %g --warmup %d --rate %g", b->gw_port, LAT_CONNS, b->lat_s,
             LAT_WARMUP_S, rate);
    long long since = bench_wall_ms();
    double t0 = bench_now_s();
    if (bench_load(b, args, &doc) != 0) {
        PQfinish(c);
        return -1;
    }
    long accepted = (long)bench_jnum(doc, "all_2xx", NULL);
    /* The measured window starts after yard-load's warmup, on its clock. */
    long long from_ms = (long long)bench_jnum(doc, "start_unix_ms", NULL);
    from_ms = (from_ms > since ? from_ms : since) + LAT_WARMUP_S * 1000;
    const char *pct[] = {"p50", "p99", "p99_9"}, *shown[] = {"p50", "p99", "p99.9"};
    for (int i = 0; i < 3; i++) {
        snprintf(key, sizeof key, "lat%.0f_http_%s_ms", rate, pct[i]);
        snprintf(label, sizeof label, "at %.0f jobs/s: HTTP submit %s", rate, shown[i]);
        bench_fig_add(b, key, label, "ms", bench_jnum(doc, "latency_ms", pct[i]));
    }
    snprintf(key, sizeof key, "lat%.0f_offered", rate);
    snprintf(label, sizeof label, "at %.0f jobs/s: requests answered per second", rate);
    bench_fig_add(b, key, label, "req/s", bench_jnum(doc, "requests_per_s", NULL));
    if (bench_jnum(doc, "unsent", NULL) > 0)
        bench_note(b, "the %.0f jobs/s run left %.0f requests unsent: yard-load could not keep "
                   "the rate", rate, bench_jnum(doc, "unsent", NULL));
    json_decref(doc);
    int rc = wait_done(c, since, accepted, t0, &w);
    PGresult *r = rc == 0 ? query_since(c, SQL_LATENCY, from_ms) : NULL;
    PQfinish(c);
    if (!r)
        return -1;
    const char *names[] = {"p50", "p99", "p99_9"};
    for (int i = 0; i < 3; i++) {
        snprintf(key, sizeof key, "lat%.0f_done_%s_ms", rate, names[i]);
        snprintf(label, sizeof label, "at %.0f jobs/s: accepted -> succeeded %s", rate,
                 shown[i]);
        bench_fig_add(b, key, label, "ms", atof(PQgetvalue(r, 0, 1 + i)));
    }
    bench_progress("latency at %.0f jobs/s: %s jobs after the warmup, accepted -> succeeded "
                   "p50 %.1f ms, p99 %.1f ms, p99.9 %.1f ms, max %.1f ms", rate,
                   PQgetvalue(r, 0, 0), atof(PQgetvalue(r, 0, 1)), atof(PQgetvalue(r, 0, 2)),
                   atof(PQgetvalue(r, 0, 3)), atof(PQgetvalue(r, 0, 4)));
    PQclear(r);
    return 0;
}
