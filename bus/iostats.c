/*
 * iostats.c - libyard's process-wide I/O statistics (iostats.h): relaxed
 * atomics, so recording costs a few uncontended atomic adds. A scrape reads
 * each figure once; a statement recorded during the scrape may show in the
 * bucket counts and not yet in the sum, which Prometheus tolerates.
 */
#include <stdatomic.h>
#include <string.h>

#include "err.h"
#include "iostats.h"

static const double pg_bounds[YARD_IOSTATS_PG_NBOUNDS] = YARD_IOSTATS_PG_BOUNDS;

static struct {
    _Atomic uint64_t pg_counts[YARD_IOSTATS_PG_NBOUNDS + 1];
    _Atomic uint64_t pg_micros; /* the sum, in microseconds (an integer add) */
    _Atomic uint64_t pg_errors;
    _Atomic uint64_t nats_errors;
    _Atomic int64_t nats_rtt_ns; /* -1 until measured */
} stats = {.nats_rtt_ns = -1};

void yard_iostats_pg_observe(double seconds)
{
    size_t i = 0;
    if (!(seconds >= 0))
        seconds = 0;
    while (i < YARD_IOSTATS_PG_NBOUNDS && seconds > pg_bounds[i])
        i++;
    atomic_fetch_add_explicit(&stats.pg_counts[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&stats.pg_micros, (uint64_t)(seconds * 1e6 + 0.5),
                              memory_order_relaxed);
}

void yard_iostats_pg_error(void)
{
    atomic_fetch_add_explicit(&stats.pg_errors, 1, memory_order_relaxed);
}

void yard_iostats_nats_error(void)
{
    atomic_fetch_add_explicit(&stats.nats_errors, 1, memory_order_relaxed);
}

void yard_iostats_nats_rtt(double seconds)
{
    if (seconds >= 0)
        atomic_store_explicit(&stats.nats_rtt_ns, (int64_t)(seconds * 1e9 + 0.5),
                              memory_order_relaxed);
}

void yard_iostats_read(yard_iostats_t *out)
{
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i <= YARD_IOSTATS_PG_NBOUNDS; i++) {
        out->pg_counts[i] = atomic_load_explicit(&stats.pg_counts[i], memory_order_relaxed);
        out->pg_statements += out->pg_counts[i];
    }
    out->pg_seconds =
        (double)atomic_load_explicit(&stats.pg_micros, memory_order_relaxed) / 1e6;
    out->pg_errors = atomic_load_explicit(&stats.pg_errors, memory_order_relaxed);
    out->nats_errors = atomic_load_explicit(&stats.nats_errors, memory_order_relaxed);
    int64_t rtt = atomic_load_explicit(&stats.nats_rtt_ns, memory_order_relaxed);
    out->nats_rtt = rtt < 0 ? -1.0 : (double)rtt / 1e9;
}

/* ---- export ---------------------------------------------------------------------- */

/* The collect functions; arg is the program label. */
static void collect_pg_duration(yard_metrics_sink_t *sink, void *arg)
{
    yard_iostats_t s;
    yard_iostats_read(&s);
    yard_metrics_sink_put_histogram(sink, s.pg_counts, YARD_IOSTATS_PG_NBOUNDS + 1, s.pg_seconds,
                                    (const char *)arg, NULL);
}

static void collect_pg_errors(yard_metrics_sink_t *sink, void *arg)
{
    yard_metrics_sink_put(
        sink, (double)atomic_load_explicit(&stats.pg_errors, memory_order_relaxed),
        (const char *)arg, NULL);
}

static void collect_nats_errors(yard_metrics_sink_t *sink, void *arg)
{
    yard_metrics_sink_put(
        sink, (double)atomic_load_explicit(&stats.nats_errors, memory_order_relaxed),
        (const char *)arg, NULL);
}

static void collect_nats_rtt(yard_metrics_sink_t *sink, void *arg)
{
    int64_t rtt = atomic_load_explicit(&stats.nats_rtt_ns, memory_order_relaxed);
    if (rtt >= 0)
        yard_metrics_sink_put(sink, (double)rtt / 1e9, (const char *)arg, NULL);
}

int yard_iostats_register(yard_metrics_t *reg, const char *program)
{
    static const char *const labels[] = {"program", NULL};
    void *arg = (void *)program;
    if (!reg || !program || !*program)
        return YARD_EINVAL;
    int rc = yard_metrics_callback_histogram(
        NULL, reg, "yard_pg_query_duration_seconds",
        "Round trip of PostgreSQL statements (failed ones too), in seconds.", labels, pg_bounds,
        YARD_IOSTATS_PG_NBOUNDS, collect_pg_duration, arg);
    if (rc == 0)
        rc = yard_metrics_callback_family(NULL, reg, YARD_METRICS_COUNTER, "yard_pg_errors_total",
                                          "PostgreSQL statements and connection attempts that "
                                          "failed.",
                                          labels, collect_pg_errors, arg);
    if (rc == 0)
        rc = yard_metrics_callback_family(NULL, reg, YARD_METRICS_GAUGE, "yard_nats_rtt_seconds",
                                          "Round trip to the NATS server, measured at least "
                                          "every 15 s, in seconds.",
                                          labels, collect_nats_rtt, arg);
    if (rc == 0)
        rc = yard_metrics_callback_family(NULL, reg, YARD_METRICS_COUNTER,
                                          "yard_nats_errors_total",
                                          "NATS and JetStream calls that failed (publish, fetch, "
                                          "ack, info, connect).",
                                          labels, collect_nats_errors, arg);
    return rc;
}
