/*
 * wk.h - the worker's program state and what its role modules share.
 *
 * yard-worker runs one role: execute (run jobs of some queues), schedule
 * (hold delayed jobs until run_at), notify (deliver signed webhooks,
 * notify.h), or audit (record every submitted job as queued in PostgreSQL,
 * and every lifecycle event as a row of the hash-chained audit_log).
 * main.c parses the command line; app.c serves
 * /healthz, /readyz and /metrics on its own port (libyard's HTTP server on
 * the main thread's loop) and starts the role, whose threads do the work.
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
    struct wk_outbound *outbound; /* execute and notify: egress guard and circuit breakers
                                   * of outbound HTTP (outbound.h) */
    struct yard_keyring *keyring; /* execute: private keys that open jobs' sealed secrets
                                   * (sealed.h; cfg.secrets_private_keys, then wiped there) */
    char queue_bufs[WK_MAX_QUEUES][YARD_QUEUE_NAME_MAX + 1];
    const char *queues[WK_MAX_QUEUES];
    size_t nqueues;
    atomic_int stopping; /* SIGTERM seen: stop fetching, drain */
    _Atomic int64_t stop_ms; /* wk_clock_ms() when it was seen: the drain counts from here */
    atomic_int ready;    /* the role's consumers are bound */
    _Atomic int64_t store_failing_ms; /* wk_clock_ms() of the first failed store write in a
                                       * row, 0 while they succeed (readiness) */

    char program[32]; /* "worker-<role>": the program label of the metrics contract */
    yard_metrics_t *metrics;
    yard_metrics_family_t *m_completed, *m_duration, *m_latency, *m_time, *m_dlq;
    yard_metrics_family_t *m_retried, *m_rescued;
    yard_metrics_gauge_t *m_in_flight;
    /* The job types yard_jobs_completed_total names (the first
     * cfg.metrics_max_types seen): appended under types_mu, read without
     * it up to types_n (wk_metrics_type). */
    pthread_mutex_t types_mu;
    char **types;
    _Atomic size_t types_n;
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
/* The audit role (audit.c): ingest plus the audit_log writer. */
int wk_audit_start(wk_runtime_t **out, wk_t *wk);
void wk_audit_join(wk_runtime_t *rt);

/* Records the outcome rc of a PostgreSQL store write for readiness: a
 * worker whose writes have failed for cfg.worker_unready_after_s is not
 * ready (wk_store_ready). */
void wk_store_health(wk_t *wk, int rc);

/* Zero once the store writes have failed for cfg.worker_unready_after_s. */
int wk_store_ready(wk_t *wk);

/* The rescuer (rescue.c), run by the schedule role: a thread that looks
 * every cfg.rescue_interval_s for jobs PostgreSQL holds as queued,
 * scheduled (due), running or failed, unchanged for cfg.rescue_after_s,
 * whose JOBS message is gone, and republishes them (same job id). Start
 * returns 0 or an error; join waits for the thread after wk->stopping. */
typedef struct wk_rescue wk_rescue_t;
int wk_rescue_start(wk_rescue_t **out, wk_t *wk);
void wk_rescue_join(wk_rescue_t *r);

/* The pruner (retention.c), run by the schedule role: a thread that every
 * cfg.retention_interval_s deletes finished jobs older than
 * cfg.retention_s in batches (bus/retention.h). Start returns 0 or an
 * error; join waits for the thread after wk->stopping. */
typedef struct wk_retention wk_retention_t;
int wk_retention_start(wk_retention_t **out, wk_t *wk);
void wk_retention_join(wk_retention_t *r);

/* The workflow releaser (workflow_release.c), run by the schedule role: a
 * thread that LISTENs for finished workflow steps and new workflows,
 * releases the steps whose parents all succeeded (publishing their jobs),
 * skips the dependents of a dead step, finishes workflows, and sweeps every
 * running workflow as a safety net. Start returns 0 or an error; join waits
 * for the thread after wk->stopping. */
typedef struct wk_release wk_release_t;
int wk_release_start(wk_release_t **out, wk_t *wk);
void wk_release_join(wk_release_t *r);

/* ---- the program (app.c, metrics.c) ---------------------------------------- */

/* A role: its --role name and entry points. */
typedef struct {
    const char *name;
    int (*start)(wk_runtime_t **out, wk_t *wk);
    void (*join)(wk_runtime_t *rt);
} wk_role_t;

/* The role called name (may be NULL), or NULL if there is none. */
const wk_role_t *wk_role_find(const char *name);

typedef struct wk_app wk_app_t;

/* Starts a worker of role with a copy of cfg: its handlers (execute), its
 * metrics, NATS (waiting until it answers) and the topology, /healthz,
 * /readyz and /metrics on cfg->http_addr:port (0: any free port, logged),
 * then the role's threads. Returns 0 and sets *out (run it with wk_app_run,
 * free it with wk_app_destroy), YARD_ECONFIG when the queues or the exec
 * mappings are invalid, or another error; every error is logged. */
int wk_app_create(wk_app_t **out, const yard_config_t *cfg, const wk_role_t *role, int port);

/* Serves until SIGTERM or SIGINT, then drains the role (off the loop, so
 * the health port keeps answering; running jobs get worker_drain_timeout_s,
 * and a watchdog exits the process if the drain overruns it). Returns the
 * exit status, 0. */
int wk_app_run(wk_app_t *app);

/* Drains the role if it still runs, stops the port and frees app. NULL is a
 * no-op. */
void wk_app_destroy(wk_app_t *app);

/* Creates wk->metrics with the worker's families (wk->role labels the
 * in-flight gauge; the series of wk->queues that the role exports start at
 * 0, and an execute worker's yard_worker_queue_served is 1 for each).
 * Returns 0 or an error (logged). */
int wk_metrics_init(wk_t *wk);

/* Frees what wk_metrics_init made (the registry, the type names). */
void wk_metrics_fini(wk_t *wk);

/* The `type` label value for job type type in yard_jobs_completed_total:
 * type itself for the first cfg.metrics_max_types distinct types seen,
 * WK_TYPE_OTHER for any later one (bounded cardinality: producers choose
 * types). Thread-safe; the string stays valid until wk_metrics_fini. */
#define WK_TYPE_OTHER "other"
const char *wk_metrics_type(wk_t *wk, const char *type);

/* Wall-clock Unix milliseconds. */
int64_t wk_wall_ms(void);

/* This worker as the actor of the lifecycle events it publishes (events.h):
 * "worker:<role>@<name>". */
void wk_event_actor(char *out, size_t cap, const wk_t *wk);

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
