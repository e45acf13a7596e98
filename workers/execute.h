/*
 * execute.h - the execute role's runtime, shared by its files (not a public
 * API: wk.h has wk_execute_start / wk_execute_join).
 *
 * Threads, one file each:
 *   fetcher (one per queue)  execute_fetch.c: fetches batches from
 *                            execute_<queue> while fewer than max_in_flight
 *                            jobs are in flight, decodes them, claims them
 *                            in PostgreSQL (a job already final is acked
 *                            and not run) and queues them for the handlers;
 *   handler (concurrency)    execute_run.c: runs one job at a time under its
 *                            deadline; its heartbeats mark it alive;
 *   committer (one)          execute_commit.c: takes finished jobs in
 *                            batches: publishes the dead ones to DLQ
 *                            (waiting for the PubAck), writes attempts and
 *                            states in one transaction, then acks / naks
 *                            with backoff / terms; while EVENTS or
 *                            PostgreSQL is unavailable it holds the
 *                            finished jobs and tries again (their messages
 *                            kept, not handed back). Between batches it runs
 *                            the supervisor's work (execute_supervise.c):
 *                            in-progress acks for running jobs whose
 *                            handler is alive and for finished jobs that
 *                            wait for their commit, cancel requests, and poison
 *                            messages reported by the max-deliveries
 *                            advisory.
 * execute.c starts and drains them and holds what they share. Acks always
 * come after the commit, so a crash anywhere means a redelivery, and the
 * claim step turns a redelivery of a finished job into a plain ack: results
 * are written once though handlers may run twice.
 *
 * Locking: rt->mu guards the run, done and in-flight lists, the advisory
 * list and the fields of an item marked "mu" below. An item is owned by
 * whoever took it off a list; it stays in the in-flight list from claim to
 * ack, and only the committer removes it from there.
 */
#ifndef WK_EXECUTE_H
#define WK_EXECUTE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "envelope.h"
#include "events.h"
#include "jobs.h"
#include "wk.h"

/* ---- tuning ---------------------------------------------------------------- */

#define EXEC_COMMIT_BATCH 256     /* finished jobs written in one transaction, at most */
#define EXEC_FETCH_WAIT_MS 50     /* an idle fetcher waits this long on the normal tier,
                                   * then looks at every tier again */
#define EXEC_IDLE_ROUNDS 20        /* after this many empty rounds in a row (a second)... */
#define EXEC_IDLE_WAIT_MS 250      /* ...the idle wait grows to this (fewer requests) */
#define EXEC_LOOK_MS 5            /* a look at a tier awaits its answer this long, at most */
#define EXEC_STOP_ANSWER_US 2000  /* at the stop, the pause for answers still on the way */
#define EXEC_TIER_TURN 8          /* of every 8 fetch rounds, one puts low first and one
                                   * normal first (no tier starves) */
#define EXEC_SLOT_WAIT_US 200000  /* a fetcher with no free slot looks again after this */
#define EXEC_TICK_MS 250          /* the committer's idle wake-up: supervision's period */
#define EXEC_START_WRITE_MS 40    /* a job still running after this is marked running in
                                   * PostgreSQL (a shorter one never is: one row write) */
#define EXEC_BUSY_TICK_MS 20      /* the committer's wake-up while jobs are in flight */
#define EXEC_GROUP_WAIT_US 3000   /* how long a commit waits for more finished jobs... */
#define EXEC_GROUP_BUSY 32        /* ...when at least this many more are in flight (under a
                                   * light load a commit goes at once: latency first) */
#define EXEC_CANCEL_POLL_MS 1000  /* how often running jobs' cancel requests are read */
#define EXEC_CANCEL_POLL_MAX 256  /* running jobs looked up per cancel poll, at most */
#define EXEC_PROGRESS_DIVISOR 3   /* an in-progress ack every AckWait / this */
/* A running job's handler counts as alive while its last sign of life (its
 * start, then each heartbeat) is at most this old; past it, the job's ack
 * deadline is no longer extended. Twice the period handler.h promises, so
 * a handler keeping the contract is never late. */
#define EXEC_ALIVE_MS (2 * WK_HEARTBEAT_MS)
#define EXEC_DEADLINE_GRACE_MS 5000 /* past deadline + this, a job's ack is not extended */
#define EXEC_RETRY_MS 1000        /* redelivery delay after a PostgreSQL or memory failure */
/* Finished jobs whose outcomes cannot be recorded because EVENTS or
 * PostgreSQL is unavailable are held (execute_commit.c): the commit is
 * tried again after EXEC_HOLD_FIRST_MS, then after twice as long each time,
 * up to EXEC_HOLD_MAX_MS; meanwhile their ack deadlines are extended. */
#define EXEC_HOLD_FIRST_MS 250
#define EXEC_HOLD_MAX_MS 5000
#define EXEC_DLQ_RETRY_MS 5000    /* redelivery delay when the DLQ publish failed */
#define EXEC_PAUSE_S 1            /* a fetcher's pause after a fetch or claim failure */
#define EXEC_PG_CONNECT_S 5       /* PostgreSQL connect timeout */
#define EXEC_DRAIN_POLL_US 50000  /* the drain looks for running jobs this often */
#define EXEC_JITTER_STEPS 1000000 /* resolution of the retry delay's random jitter */

typedef struct wk_execute_item wk_execute_item_t;
typedef struct wk_execute_queue wk_execute_queue_t;

/* One fetched job, from its fetch to its ack. */
struct wk_execute_item {
    wk_execute_item_t *next;              /* in the run or done list (mu) */
    wk_execute_item_t *in_prev, *in_next; /* in the in-flight list (mu) */
    wk_execute_queue_t *q;
    yard_js_msg_t *msg;                   /* owned */
    yard_envelope_t env;                  /* views into msg */
    char id[YARD_ENV_ID_LEN + 1];
    char type[YARD_ENV_NAME_MAX + 1];
    char trace[YARD_TRACE_ID_LEN + 1]; /* the traceparent's trace id, or "" */
    char *payload;                        /* NUL-terminated copy, "null" if none */
    unsigned attempt;                     /* finished attempts + 1, from the claim */
    unsigned delivered;                   /* JetStream's delivery count (MaxDeliver ceiling) */
    uint64_t seq;                         /* its JOBS sequence */
    /* Set by the handler thread under mu when it starts the job; the
     * committer reads them under mu. */
    int64_t started_wall_ms, started_us, deadline_ms;
    int64_t last_progress_ms;             /* the last in-progress ack, or the start (mu) */
    int64_t finished_us;                  /* wk_clock_us() when its handler returned, or 0 (mu) */
    int silence_logged;                   /* the handler's silence was logged (mu) */
    _Atomic int64_t beat_ms;              /* wk_clock_ms() of the handler's last sign of life */
    atomic_int cancelled;
    atomic_int running;
    int handed_back;                      /* drain: nak at once, write nothing (mu) */
    int start_written;                    /* marked running in PostgreSQL, or no longer
                                           * to be (committer only) */
    yard_event_batch_t *started;          /* holds its started event (a reference), or NULL */
    wk_result_t res;
};

/* One served queue: its priority tiers' consumers and advisory watches
 * (indexed by YARD_PRIO_*: low, normal, high; js.h) and its fetcher. */
struct wk_execute_queue {
    wk_runtime_t *rt;
    const char *name;
    char durable[YARD_JS_NAME_MAX], subject[YARD_JS_NAME_MAX]; /* the normal tier's */
    yard_js_consumer_t *consumers[YARD_JS_TIERS]; /* one per priority tier */
    yard_js_watch_t *watches[YARD_JS_TIERS];
    unsigned rounds; /* fetch rounds that brought work: turns the tier order */
    unsigned idle;   /* fetch rounds in a row that brought nothing */
    pthread_t fetcher;
    PGconn *conn; /* the fetcher's */
};

/* A poison message's JOBS sequence, from the max-deliveries advisory. */
typedef struct wk_execute_advisory {
    struct wk_execute_advisory *next;
    uint64_t seq;
} wk_execute_advisory_t;

struct wk_runtime {
    wk_t *wk;
    size_t nqueues;
    wk_execute_queue_t queues[WK_MAX_QUEUES];
    int concurrency;   /* handler threads */
    int max_in_flight; /* fetched and not yet acked: handlers plus two batches */
    pthread_t *handlers;
    pthread_t committer;
    yard_js_listen_t *cancel_listen;

    pthread_mutex_t mu;
    pthread_cond_t run_cv, done_cv, slot_cv;
    wk_execute_item_t *run_head, *run_tail;
    wk_execute_item_t *done_head, *done_tail;
    wk_execute_item_t *in_flight; /* every item from claim to ack */
    size_t n_in_flight;
    wk_execute_advisory_t *advisories;
    int handlers_exit;
    int committer_exit;
    /* Held outcomes (the committer's alone): since when outcomes wait for
     * EVENTS or PostgreSQL (0: none wait), the next try, the current pause. */
    int64_t hold_since_ms, hold_until_ms, hold_pause_ms;
    PGconn *conn; /* the committer's */
};

/* ---- shared helpers (execute.c) ------------------------------------------- */

/* The run and done lists (FIFO) and the in-flight list; mu held. */
void wk_execute_list_push(wk_execute_item_t **head, wk_execute_item_t **tail,
                          wk_execute_item_t *it);
wk_execute_item_t *wk_execute_list_pop(wk_execute_item_t **head, wk_execute_item_t **tail);
void wk_execute_inflight_add(wk_runtime_t *rt, wk_execute_item_t *it);
/* Also wakes a fetcher waiting for a free slot. */
void wk_execute_inflight_remove(wk_runtime_t *rt, wk_execute_item_t *it);

/* Frees it and its message (not acked here). NULL is a no-op. */
void wk_execute_item_free(wk_execute_item_t *it);

/* Waits on cv (mu held) for at most us microseconds. */
void wk_execute_wait(pthread_cond_t *cv, pthread_mutex_t *mu, long us);

/* Makes *conn usable: reconnects and prepares when needed. The fetcher's
 * connection (claims) commits fast, the committer's (outcomes, acked next)
 * durably. Returns 0 or YARD_EUNAVAIL (logged by yard_db_connect). */
int wk_execute_conn(wk_t *wk, PGconn **conn, yard_jobs_commit_t mode);

/* ---- lifecycle events (execute_events.c) ---------------------------------- */

/* Publishes the started events of the claimed items (claimed[i] > 0; items
 * may hold NULLs) without waiting; each such item keeps a reference to the
 * batch in its started field and gets its attempt set to claimed[i]. */
void wk_execute_events_started(wk_runtime_t *rt, wk_execute_item_t **items, const int *claimed,
                               size_t n);

/* Adds to b the event of rec, the recorded attempt of it (and its started
 * event when that is not stored yet); retry_in_ms is the delay of a retry. */
void wk_execute_events_outcome(yard_event_batch_t *b, const wk_t *wk, const wk_execute_item_t *it,
                               const yard_job_attempt_t *rec, int64_t retry_in_ms);

/* Publishes the dead event of a poison message and waits for it. Returns 0
 * or an error (logged). */
int wk_execute_event_poison(wk_t *wk, const char *job_id, const char *trace, unsigned attempts,
                            const char *why);

/* ---- thread bodies --------------------------------------------------------- */

void *wk_execute_fetcher(void *q);    /* execute_fetch.c; q: its wk_execute_queue_t */
void *wk_execute_handler(void *rt);   /* execute_run.c */
void *wk_execute_committer(void *rt); /* execute_commit.c */

/* ---- supervision (execute_supervise.c), on the committer thread ----------- */

/* Extends the ack deadline of running jobs whose handler is alive, and of
 * finished jobs waiting for their commit (held ones above all), marks
 * running in PostgreSQL the jobs that have run for EXEC_START_WRITE_MS
 * (stopping those that became final meanwhile) and, when poll_cancels,
 * applies cancel requests recorded in PostgreSQL. mu not held. */
void wk_execute_supervise(wk_runtime_t *rt, int64_t now_ms, int poll_cancels);

/* Moves the poison messages the advisory reported to the DLQ; frees list. */
void wk_execute_poison(wk_runtime_t *rt, wk_execute_advisory_t *list);

/* Listen and watch callbacks (nats.c threads; ud is the runtime): a cancel
 * announcement flags the job's running item; an advisory is queued for the
 * committer. */
void wk_execute_on_cancel(void *ud, const char *subject, const void *data, size_t len);
void wk_execute_on_max_deliveries(void *ud, const char *stream, const char *consumer,
                                  uint64_t seq);

#endif
