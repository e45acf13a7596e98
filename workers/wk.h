/*
 * wk.h - the worker's program state and what its role modules share.
 *
 * yard-worker runs one role: execute (run jobs of some queues), schedule
 * (hold delayed jobs until run_at), or audit (record every submitted job as
 * queued in PostgreSQL). main.c parses the command line, serves /healthz,
 * /readyz and /metrics on its own port (libyard's HTTP server on the main
 * thread's loop) and starts the role, whose threads do the work.
 */
#ifndef WK_WK_H
#define WK_WK_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "config.h"
#include "handler.h"
#include "js.h"
#include "metrics.h"

#define WK_MAX_QUEUES 32

typedef struct wk_runtime wk_runtime_t;

typedef struct wk {
    yard_config_t cfg;
    const char *role;
    char worker_name[96]; /* host:pid, recorded with each attempt */
    yard_js_t *js;
    wk_registry_t *registry;
    char queue_bufs[WK_MAX_QUEUES][YARD_QUEUE_NAME_MAX + 1];
    const char *queues[WK_MAX_QUEUES];
    size_t nqueues;
    atomic_int stopping; /* SIGTERM seen: stop fetching, drain */
    _Atomic int64_t stop_ms; /* wk_clock_ms() when it was seen: the drain counts from here */
    atomic_int ready;    /* the role's consumers are bound */

    yard_metrics_t *metrics;
    yard_metrics_family_t *m_completed, *m_duration, *m_latency, *m_time, *m_dlq;
    yard_metrics_gauge_t *m_in_flight;
} wk_t;

/* Role entry points: start threads (returns 0 or an error, logged), then
 * wait for them after wk->stopping is set (the join functions return once
 * every job is finished or handed back). */
int wk_execute_start(wk_runtime_t **out, wk_t *wk);
void wk_execute_join(wk_runtime_t *rt);
int wk_schedule_start(wk_runtime_t **out, wk_t *wk);
void wk_schedule_join(wk_runtime_t *rt);
int wk_ingest_start(wk_runtime_t **out, wk_t *wk);
void wk_ingest_join(wk_runtime_t *rt);

/* Wall-clock Unix milliseconds. */
int64_t wk_wall_ms(void);

/* Adds seconds spent in part ("postgres", "jetstream", "handler") to the
 * time-share counter. */
void wk_time_add(wk_t *wk, const char *part, int64_t us);

/* Monotonic microseconds. */
int64_t wk_clock_us(void);

/* Publishes a dead job to DLQ (dlq.<subject>) with the headers of
 * DESIGN.md (Yard-Original-Subject, Yard-Attempts, Yard-Last-Error,
 * Yard-Died-At, Yard-Job-Id), waiting for the PubAck. data/len is the
 * original envelope; stream_seq its JOBS sequence, which makes the
 * Nats-Msg-Id, so two workers moving the same message store it once.
 * Returns 0 or an error (logged). */
int wk_dlq_publish(wk_t *wk, const char *subject, const char *job_id, uint64_t stream_seq,
                   const void *data, size_t len, unsigned attempts, const char *last_error);

#endif
