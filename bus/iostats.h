/*
 * iostats.h - libyard's process-wide I/O statistics: the round trip of
 * every PostgreSQL statement and the failed ones (db.c), the failed NATS /
 * JetStream calls and the NATS round trip (js*.c), exported as
 *   yard_pg_query_duration_seconds{program}   histogram
 *   yard_pg_errors_total{program}             counter
 *   yard_nats_rtt_seconds{program}            gauge (once measured)
 *   yard_nats_errors_total{program}           counter
 *
 * This is the one process-wide state of libyard, and on purpose: db.c and
 * js*.c are handed a connection, never the program's state, and the
 * registry belongs to the program. Passing a registry (or a stats struct)
 * to every yard_db_* and yard_js_* call would change every call site for
 * figures that describe the process anyway (a process has one program and
 * one registry). So the figures live here, in atomics: any thread may add
 * to them at any time, without a lock, even before a program registers
 * them, and the program exports them with yard_iostats_register. Nothing
 * else in libyard keeps state between calls; do not add to this without
 * the same reasons.
 */
#ifndef YARD_IOSTATS_H
#define YARD_IOSTATS_H

#include <stdint.h>

#include "metrics.h"

/* Upper bounds (seconds) of the statement histogram's buckets; +Inf besides. */
#define YARD_IOSTATS_PG_BOUNDS                                                                   \
    {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
#define YARD_IOSTATS_PG_NBOUNDS 14

/* Records one PostgreSQL statement's round trip (seconds, failed or not). */
void yard_iostats_pg_observe(double seconds);

/* Counts a PostgreSQL statement or connection attempt that failed. */
void yard_iostats_pg_error(void);

/* Counts a NATS / JetStream call that failed (publish, fetch, ack, info,
 * connect...). An answer such as "no such message" is not a failure. */
void yard_iostats_nats_error(void);

/* Records the latest NATS round trip (seconds). */
void yard_iostats_nats_rtt(double seconds);

/* A snapshot of the figures (for tests and logs). */
typedef struct {
    uint64_t pg_counts[YARD_IOSTATS_PG_NBOUNDS + 1]; /* per bucket, the last +Inf */
    uint64_t pg_statements;
    double pg_seconds;
    uint64_t pg_errors;
    uint64_t nats_errors;
    double nats_rtt; /* seconds; negative until measured */
} yard_iostats_t;

/* Fills *out with the current figures. */
void yard_iostats_read(yard_iostats_t *out);

/* Registers the four families above in reg, each sample labelled
 * program=<program> ("gateway", "worker-execute"...). program must stay
 * valid until reg is destroyed (the families read it at each render).
 * Returns 0, or YARD_EINVAL / YARD_EEXIST (already registered) /
 * YARD_ENOMEM; on error some families may be registered. */
int yard_iostats_register(yard_metrics_t *reg, const char *program);

#endif
