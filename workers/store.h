/*
 * store.h - the PostgreSQL result store of the workers.
 *
 * Every write is batched (one pipeline, one implicit transaction per batch)
 * and idempotent, so a redelivered message never leaves a second result:
 *   - ingest: the audit role records each submitted job as `queued` (or
 *     `scheduled`) as it appears in JOBS; a row that exists is left alone
 *     (only scheduled -> queued moves it).
 *   - claim: before running a batch the execute role marks its jobs
 *     `running`; a job already succeeded, dead or cancelled (or whose
 *     cancel was requested) is not claimed and must not run (its message is
 *     just acked).
 *   - finish: one job_attempts row per (job, attempt) (ON CONFLICT DO
 *     NOTHING) and the job's new state, only moving forward: a final state
 *     (succeeded, dead, cancelled) is never overwritten.
 * The caller owns the connection; one per thread.
 */
#ifndef WK_STORE_H
#define WK_STORE_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "envelope.h"

/* A job's state after an attempt (jobs.status). */
typedef enum {
    WK_STATE_SUCCEEDED = 0,
    WK_STATE_FAILED, /* will retry */
    WK_STATE_DEAD,
    WK_STATE_CANCELLED
} wk_state_t;

/* One attempt's outcome, as recorded. */
typedef struct {
    const char *job_id;       /* uuid text */
    unsigned attempt;         /* 1-based */
    int64_t started_ms;       /* wall clock, Unix ms */
    int64_t duration_ms;
    const char *outcome;      /* succeeded|failed|retry|dead|cancelled|timeout */
    wk_state_t state;
    const char *result_json;  /* or NULL */
    const char *error;        /* or NULL */
} wk_attempt_t;

/* How a connection commits. WK_STORE_DURABLE waits for the WAL flush: for
 * outcomes, which are acked right after. WK_STORE_FAST does not
 * (synchronous_commit off): for claims and ingest, whose loss in a
 * PostgreSQL crash costs nothing, since their messages are redelivered or
 * the claim recreates the row; it saves one fsync per batch. */
typedef enum { WK_STORE_DURABLE = 0, WK_STORE_FAST = 1 } wk_store_mode_t;

/* Prepares the store's statements on conn and sets its commit mode (once
 * per connection). Returns 0 or YARD_EPG / YARD_EUNAVAIL (logged). */
int wk_store_prepare(PGconn *conn, wk_store_mode_t mode);

/* Records n submitted jobs as queued (subject jobs.execute.*) or scheduled
 * (scheduled[i] nonzero). Returns 0, or an error with nothing written. */
int wk_store_ingest(PGconn *conn, const yard_envelope_t *const *envs, const int *scheduled,
                    size_t n);

/* Marks n jobs running, creating rows the audit role has not written yet,
 * and sets attempt[i] to the attempt number to run (finished attempts + 1),
 * or to 0 for a job that must not run: already final, or cancelled (a
 * requested cancel becomes final here). Attempts count finished runs only,
 * so a crash or a drain hand-back does not use one up. Returns 0, or an
 * error with nothing written (run nothing; let the messages come back). */
int wk_store_claim(PGconn *conn, const yard_envelope_t *const *envs, size_t n, int *attempt);

/* Records n attempts and the jobs' new states in one transaction. worker
 * names this process (host:pid). Returns 0, or an error with nothing
 * written (do not ack; the messages come back). */
int wk_store_finish(PGconn *conn, const wk_attempt_t *attempts, size_t n, const char *worker);

/* Marks one job dead with reason (the max-deliveries path, where no
 * attempt finished), creating its row from env if needed. Returns 0 or an
 * error. */
int wk_store_mark_dead(PGconn *conn, const yard_envelope_t *env, unsigned attempts,
                       const char *reason);

/* The ids among the n given whose cancel was requested. Sets flags[i].
 * Returns 0 or an error. */
int wk_store_cancel_requested(PGconn *conn, const char *const *ids, size_t n, int *flags);

#endif
