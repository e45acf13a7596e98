/*
 * jobs.h - the job lifecycle: its states, the transitions allowed between
 * them, and every statement that changes a job row in PostgreSQL.
 *
 * The gateway (cancel, idempotent repeats), the workers (ingest, claim, start,
 * finish, dead, release, rescue) and yardctl (replay) all change jobs
 * through this module, so the rules live in one place:
 *
 *   from \ to   queued scheduled running succeeded failed dead cancelled
 *   queued        .       .        x       x         x      x      x
 *   scheduled     x       .        x       x         x      x      x
 *   running       .       .        x       x         x      x      x
 *   failed        .       .        x       x         x      x      x
 *   dead          x       .        .                        .      .
 *   succeeded and cancelled are final; dead is final but for a replay.
 *
 * (running -> running is a redelivery after a crash: the attempt is run
 * again under the same number, since attempts count finished runs. An
 * outcome may follow queued, scheduled or failed directly: a job's row is
 * marked running only once it has run for a few tens of milliseconds, so
 * a short job costs one row write; see yard_jobs_claim.) The SQL below is
 * written from this table: yard_job_transition_allowed is what the
 * statements' WHERE clauses say.
 *
 * A job row belongs to the message that created it: a later message with
 * the same id but another API key, type or payload may not run it or change
 * it (claim reports it, the caller dead-letters it).
 *
 * Every batch statement is set-based (one statement, PostgreSQL arrays,
 * rows in id order so concurrent batches never deadlock) and idempotent, so
 * a redelivered message never leaves a second result. The caller owns the
 * connection (one per thread) and calls yard_jobs_prepare once on it.
 * Errors are YARD_E* codes from db.h (YARD_EUNAVAIL: reconnect; YARD_EPG:
 * the server refused the statement), logged once.
 */
#ifndef YARD_JOBS_H
#define YARD_JOBS_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "envelope.h"

typedef enum {
    YARD_JOB_QUEUED = 0,
    YARD_JOB_SCHEDULED,
    YARD_JOB_RUNNING,
    YARD_JOB_SUCCEEDED,
    YARD_JOB_FAILED, /* the last attempt failed; it will run again */
    YARD_JOB_DEAD,
    YARD_JOB_CANCELLED,
    YARD_JOB_NSTATES
} yard_job_state_t;

/* The state's name as stored and shown ("queued"...); "?" if out of range. */
const char *yard_job_state_name(yard_job_state_t s);

/* Sets *out to the state named name. Returns 0 or YARD_EINVAL. */
int yard_job_state_parse(yard_job_state_t *out, const char *name);

/* Nonzero for succeeded, dead and cancelled: no handler runs again (a dead
 * job only through a replay). */
int yard_job_state_final(yard_job_state_t s);

/* Nonzero if the table above allows from -> to. */
int yard_job_transition_allowed(yard_job_state_t from, yard_job_state_t to);

/* Checks every envelope field the store casts or stores beyond what
 * yard_env_decode checks: api_key_id and workflow_id are UUID text,
 * workflow_id and step_id come together, payload and notify are JSON that
 * jsonb accepts, text fields are UTF-8 without NUL, traceparent is short.
 * Returns 0, or YARD_EINVAL with why (cap bytes) naming the field. */
int yard_jobs_check(const yard_envelope_t *env, char *why, size_t cap);

/* How a connection commits. DURABLE waits for the WAL flush: for outcomes,
 * acked right after. FAST does not (synchronous_commit off): for claims and
 * ingest, whose loss in a PostgreSQL crash costs nothing, since their
 * messages are redelivered or the claim recreates the row. */
typedef enum { YARD_JOBS_DURABLE = 0, YARD_JOBS_FAST = 1 } yard_jobs_commit_t;

/* Added to a commit mode (YARD_JOBS_FAST | YARD_JOBS_PLAN_ONCE): the
 * connection plans each prepared statement once (a generic plan) instead of
 * for every batch, and discourages sequential scans, hash and merge joins
 * (enable_* off makes them costly, never refused), so the plan made on a
 * small table stays index probes as the table grows. For the workers' hot
 * path, which runs these statements many times a second with small
 * batches: planning one cost 0.3-0.7 ms, more than running it. Not for
 * connections that run ad-hoc queries (the gateway's lists). */
#define YARD_JOBS_PLAN_ONCE 2

/* Prepares this module's statements on c and sets its commit mode (once
 * per connection; mode may carry YARD_JOBS_PLAN_ONCE). Returns 0 or an
 * error. */
int yard_jobs_prepare(PGconn *c, int mode);

/* Makes *conn usable for this module: keeps it while it is connected
 * (yard_db_alive: one the server closed, as a restart does, is not), else
 * closes it, connects to dsn (waiting at most timeout_s) and prepares with
 * mode. Returns 0, or an error (logged) with *conn NULL. */
int yard_jobs_connect(PGconn **conn, const char *dsn, int timeout_s, int mode);

/* Checks that the lifecycle's tables answer (what readiness needs: a
 * connection alone is not enough). Returns 0 or an error. */
int yard_jobs_probe(PGconn *c);

/* Records n accepted jobs as queued, or scheduled when run_at is set;
 * seqs[i] is the JOBS sequence of envs[i]'s message (0: unknown). A row
 * that exists is left alone. Returns 0, or an error with nothing written. */
int yard_jobs_ingest(PGconn *c, const yard_envelope_t *const *envs, const uint64_t *seqs,
                     size_t n);

/* What a claim says of one message (attempt[i]). */
#define YARD_JOBS_CLAIM_SKIP 0            /* final or cancelled: ack, do not run */
#define YARD_JOBS_CLAIM_FOREIGN_KEY (-1)  /* the row belongs to another API key */
#define YARD_JOBS_CLAIM_FOREIGN_JOB (-2)  /* the row was made by another message */

/* The schedule role takes delayed jobs off jobs.schedule into PostgreSQL:
 * records the n jobs as scheduled (run_at set) when they have no row yet
 * (a row that exists, from ingest or further along, is left alone). Once
 * this returns 0 the row alone holds the job and its message may be acked.
 * Returns 0, or an error with nothing written. */
int yard_jobs_hold(PGconn *c, const yard_envelope_t *const *envs, const uint64_t *seqs,
                   size_t n);

/* Claims n messages, reading only: sets attempt[i] to the attempt number
 * to run (finished attempts + 1; 1 when the job has no row yet), or to a
 * YARD_JOBS_CLAIM_* value; seqs[i] is the JOBS sequence of the message. A
 * job whose cancel was requested becomes final here (the one write). A job
 * id given twice gets SKIP for its second message. The job's row is not
 * marked running: yard_jobs_start does that for a job still running after
 * a few tens of milliseconds, and yard_jobs_finish writes (or creates) the
 * row with its outcome, so a short job costs one row write. Returns 0, or
 * an error: run nothing, let the messages come back (YARD_EPG: one of them
 * may be bad; claim smaller batches to find it). */
int yard_jobs_claim(PGconn *c, const yard_envelope_t *const *envs, const uint64_t *seqs,
                    size_t n, int *attempt);

/* Marks n claimed jobs running (creating rows ingest has not written yet)
 * and sets attempt[i] as yard_jobs_claim does; 0 means the job may no
 * longer run (it became final, or its cancel was requested: then it is
 * cancelled now). Returns 0, or an error with nothing written. */
int yard_jobs_start(PGconn *c, const yard_envelope_t *const *envs, const uint64_t *seqs,
                    size_t n, int *attempt);

/* One finished attempt. */
typedef struct {
    const yard_envelope_t *env; /* the job, to create its row if it has none */
    uint64_t seq;            /* the JOBS sequence of its message (0: unknown) */
    const char *job_id;      /* uuid text */
    unsigned attempt;        /* 1-based */
    int64_t started_ms;      /* wall clock, Unix ms */
    int64_t duration_ms;
    const char *outcome;     /* succeeded|failed|retry|dead|cancelled|timeout */
    yard_job_state_t state;  /* succeeded, failed, dead or cancelled */
    const char *result_json; /* or NULL */
    const char *error;       /* or NULL */
} yard_job_attempt_t;

/* Records n attempts and the jobs' new states in one transaction, creating
 * the rows of jobs that have none; a final state is never overwritten, a
 * row another key's or another message's is left alone, and an attempt row
 * is written once. worker names the process (host:pid). Returns 0, or an
 * error with nothing written (do not ack; the messages come back;
 * YARD_EPG: one of them may be bad: finish smaller batches to find it). */
int yard_jobs_finish(PGconn *c, const yard_job_attempt_t *a, size_t n, const char *worker);

/* Marks one job dead with reason where no attempt finished (max
 * deliveries), creating its row from env if needed. Returns 0 or an error. */
int yard_jobs_mark_dead(PGconn *c, const yard_envelope_t *env, uint64_t seq, unsigned attempts,
                        const char *reason);

/* Sets flags[i] for the ids among the n whose cancel was requested.
 * Returns 0 or an error. */
int yard_jobs_cancel_requested(PGconn *c, const char *const *ids, size_t n, int *flags);

/* Cancels job id (of owner's API key, or any when owner is NULL): one not
 * running becomes cancelled; a running one gets cancel_requested_at (its
 * worker stops it). Sets *out to the state after: CANCELLED, RUNNING (cancel
 * requested), or the final state it had. Returns 0, YARD_ENOTFOUND (no such
 * job for this owner), or an error. */
int yard_jobs_cancel(yard_job_state_t *out, PGconn *c, const char *id, const char *owner);

/* Replay: dead -> queued, so the worker's claim accepts the republished
 * message. Returns 0, YARD_ESTATE if the job is not dead (or missing), or
 * an error. yard_jobs_replay_undo puts a replayed job back to dead when its
 * publish failed. */
int yard_jobs_replay(PGconn *c, const char *id);
int yard_jobs_replay_undo(PGconn *c, const char *id);

/* What a replay of DLQ message dlq_seq of a job would do
 * (yard_jobs_replay_plan). The row records the last DLQ sequence replayed,
 * so a letter at or below it was replayed already, however long ago:
 *   FRESH    the job is dead: mark it (yard_jobs_replay_mark), publish
 *   RESUME   a replay of this very letter marked the job queued and did not
 *            record its publish (interrupted): publish again, same msg id
 *   DONE     replayed already: only the DLQ copy is left to remove
 *   REFUSED  the job is alive or finished otherwise (state says which) */
typedef enum {
    YARD_REPLAY_FRESH = 0,
    YARD_REPLAY_RESUME,
    YARD_REPLAY_DONE,
    YARD_REPLAY_REFUSED
} yard_replay_plan_t;

typedef struct {
    yard_replay_plan_t plan;
    yard_job_state_t state; /* the row's state now */
    unsigned max_attempts;  /* what the replayed job runs with: attempts
                             * used + its budget (max_attempts as submitted),
                             * at most YARD_ENV_ATTEMPTS_MAX */
} yard_jobs_replay_t;

/* Fills *out for job id and DLQ message dlq_seq, reading only. Returns 0,
 * YARD_ENOTFOUND (no row) or an error. */
int yard_jobs_replay_plan(yard_jobs_replay_t *out, PGconn *c, const char *id, uint64_t dlq_seq);

/* Replay, step one: dead -> queued in one statement, if the job is dead and
 * dlq_seq is above the last letter replayed; grants a fresh budget
 * (max_attempts = attempts + budget), clears js_seq (the republish sets it;
 * until then the rescuer sees a queued job without a message), and records
 * dlq_seq, who and when. Sets *max_attempts to the new value. Returns 0,
 * YARD_ESTATE (not dead, or that letter was replayed: another replay won),
 * or an error. */
int yard_jobs_replay_mark(unsigned *max_attempts, PGconn *c, const char *id, uint64_t dlq_seq,
                          const char *who);

/* Release of one due scheduled job, republished as JOBS message seq:
 * scheduled -> queued. Returns 0 (also when the row is not scheduled, or
 * not written yet: the claim takes it from there) or an error. */
int yard_jobs_release(PGconn *c, const char *id, uint64_t seq);

/* Records that job id is now carried by JOBS message seq (after a replay or
 * a rescue), if it was carried by old_seq (0: whatever it was). Returns 0 or
 * an error. */
int yard_jobs_track(PGconn *c, const char *id, uint64_t old_seq, uint64_t seq);

/* Sets known[i] for the ids among the n that have a row. Returns 0 or an
 * error. */
int yard_jobs_known(PGconn *c, const char *const *ids, size_t n, int *known);

/* Sets ages[i] to how long (seconds) the oldest job of queue queues[i] in
 * status queued has waited since it became due (run_at when it was
 * scheduled, else its submission), or 0 when the queue has none. One
 * statement for the n queues. Returns 0, or an error with ages untouched. */
int yard_jobs_queued_age(PGconn *c, const char *const *queues, size_t n, double *ages);

/* Jobs stuck without progress: queued, running or failed, whose row has not
 * changed for older_than_s seconds. (A scheduled job is held by its row
 * alone: the due release below publishes it, whatever JOBS holds.) */
typedef struct {
    yard_envelope_t env;    /* views into the result: rebuilt from the row */
    yard_job_state_t state;
    uint64_t seq;           /* js_seq: its JOBS message (0: unknown) */
} yard_job_stale_t;

typedef struct {
    yard_job_stale_t *rows;
    size_t n;
    PGresult *res; /* owns the text the rows point to */
} yard_jobs_stale_t;

/* Fills *out with at most limit stuck jobs, oldest change first (free with
 * yard_jobs_stale_free). Returns 0 or an error. */
int yard_jobs_stale(yard_jobs_stale_t *out, PGconn *c, int64_t older_than_s, size_t limit);
void yard_jobs_stale_free(yard_jobs_stale_t *s);

/* Like yard_jobs_stale, for released workflow steps (workflows.h) still
 * queued without a JOBS sequence for older_than_s: their publish was lost
 * or never recorded. Republish them with Nats-Msg-Id = id. */
int yard_jobs_unpublished(yard_jobs_stale_t *out, PGconn *c, int64_t older_than_s, size_t limit);

/* Release of due delayed jobs, exactly once across schedule replicas:
 * yard_jobs_due_begin opens a transaction on c and fills *out (free with
 * yard_jobs_stale_free) with at most limit scheduled jobs whose run_at is
 * at most now + clock_offset_s (0 but in tests) + lookahead_ms, earliest
 * first, locked (FOR UPDATE SKIP LOCKED: another replica's pass takes
 * other rows); *db_now_ms gets the database's clock (plus the offset) as
 * it selected them, so the caller waits for each run_at on the database's
 * clock, not its own (rows' run_at_ms are rounded up). The caller publishes
 * each job to its execute subject when due and calls yard_jobs_due_commit
 * with the ids, JOBS sequences and PubAck times (Unix ms: released_at) of
 * those published (scheduled -> queued), which commits; rows not named stay
 * scheduled for the next pass. yard_jobs_due_abort rolls back (a crash
 * does too): the rows are published again by the next pass, with the same
 * Nats-Msg-Id, inside the duplicate window. Both return 0 or an error (the
 * transaction is then rolled back, *out untouched). */
int yard_jobs_due_begin(yard_jobs_stale_t *out, int64_t *db_now_ms, PGconn *c,
                        int64_t clock_offset_s, int64_t lookahead_ms, size_t limit);
int yard_jobs_due_commit(PGconn *c, const char *const *ids, const uint64_t *seqs,
                         const int64_t *acked_ms, size_t n);
void yard_jobs_due_abort(PGconn *c);

#endif
