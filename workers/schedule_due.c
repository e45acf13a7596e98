/*
 * schedule_due.c - the schedule role's due thread (schedule.h): every
 * schedule_poll_ms it releases the delayed jobs that are due and fires the
 * cron schedules that are due.
 *
 * Release, exactly once across replicas (jobs.h yard_jobs_due_begin): one
 * transaction locks up to WK_DUE_BATCH rows due within WK_DUE_LOOKAHEAD_MS
 * (SKIP LOCKED: replicas share the work), so the select and the encoding
 * are done before the jobs fall due; publishes each to its execute subject
 * (its priority tier) asynchronously with Nats-Msg-Id "<id>.run" once its
 * run_at has come on the database's clock, waits for the PubAcks, marks the
 * acked ones queued with their JOBS sequence and PubAck time (released_at)
 * and commits. A
 * crash (kill -9) between publish and commit rolls the transaction back;
 * the next pass, on any replica, publishes the same rows again within
 * seconds, inside the duplicate window, so JetStream drops the copies; and
 * the execute claim never runs a finished job twice. A row is published
 * only once its run_at is at or before the database's now(): never early.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db.h"
#include "envelope.h"
#include "err.h"
#include "jobs.h"
#include "log.h"
#include "schedule.h"

#define DUE_PG_CONNECT_S 5 /* PostgreSQL connect timeout */
#define DUE_PAUSE_MS 1000  /* after a failed pass */
#define DUE_WAIT_STEP_MS 50 /* a wait for a run_at looks at the stop flag this often */

struct wk_due {
    wk_t *wk;
    pthread_t thread;
    PGconn *conn;
};

/* The PubAcks of one pass: the async callbacks fill it on nats.c threads. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t outstanding;
    uint64_t *seqs;    /* 0: not acked */
    int64_t *acked_ms; /* when, on the database's clock */
    int64_t skew_ms;   /* database clock - our wall clock */
} due_acks_t;

typedef struct {
    due_acks_t *acks;
    size_t i;
} due_slot_t;

static void due_on_ack(void *ud, int rc, const yard_js_puback_t *ack)
{
    due_slot_t *slot = ud;
    due_acks_t *a = slot->acks;
    pthread_mutex_lock(&a->mu);
    if (rc == 0 && ack) {
        a->seqs[slot->i] = ack->seq;
        a->acked_ms[slot->i] = wk_wall_ms() + a->skew_ms;
    }
    a->outstanding--;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
}

/* Publishes rows[i] asynchronously; counts it in a when the publish left. */
static int due_publish(wk_t *wk, const yard_job_stale_t *row, due_acks_t *a, due_slot_t *slot,
                       char **buf)
{
    const yard_envelope_t *env = &row->env;
    char id[YARD_ENV_ID_LEN + 1] = "", queue[YARD_ENV_NAME_MAX + 1] = "";
    char subject[YARD_JS_NAME_MAX], durable[YARD_JS_NAME_MAX], msg_id[YARD_MSGID_MAX];
    char tp[YARD_ENV_TP_MAX + 1] = "";
    memcpy(id, env->id.ptr, env->id.len < YARD_ENV_ID_LEN ? env->id.len : YARD_ENV_ID_LEN);
    memcpy(queue, env->queue.ptr,
           env->queue.len <= YARD_ENV_NAME_MAX ? env->queue.len : YARD_ENV_NAME_MAX);
    if (env->traceparent.len <= YARD_ENV_TP_MAX)
        memcpy(tp, env->traceparent.ptr, env->traceparent.len);
    yard_js_execute_tier_names(durable, subject, queue, (int)env->priority);
    yard_js_msg_id(msg_id, YARD_MSGID_RUN, id, 0);
    size_t cap = yard_env_encoded_size_max(env), len = 0;
    *buf = malloc(cap);
    int rc = *buf ? yard_env_encode(env, *buf, cap, &len) : YARD_ENOMEM;
    yard_js_header_t hdr = {YARD_HDR_TRACEPARENT, tp};
    yard_js_pub_t pub = {subject, msg_id, &hdr, tp[0] ? 1 : 0, *buf, len};
    if (rc == 0) {
        pthread_mutex_lock(&a->mu);
        a->outstanding++;
        pthread_mutex_unlock(&a->mu);
        rc = yard_js_publish_async(wk->js, &pub, due_on_ack, slot);
        if (rc < 0) {
            pthread_mutex_lock(&a->mu);
            a->outstanding--;
            pthread_mutex_unlock(&a->mu);
        }
    }
    if (rc < 0) {
        yard_log_ctx_t ctx = {NULL, id, NULL};
        YARD_LOG_WARN(&ctx, "schedule: cannot release the due job to %s (%s); next pass",
                      subject, yard_strerror(rc));
    }
    return rc;
}

/* Waits until run_at_ms on the database's clock (our wall clock + skew_ms),
 * or until the worker stops. Returns nonzero when it is due. */
static int due_wait(wk_t *wk, int64_t run_at_ms, int64_t skew_ms)
{
    for (;;) {
        int64_t left = run_at_ms - (wk_wall_ms() + skew_ms);
        if (left <= 0)
            return 1;
        if (atomic_load(&wk->stopping))
            return 0;
        usleep((useconds_t)(left < DUE_WAIT_STEP_MS ? left : DUE_WAIT_STEP_MS) * 1000);
    }
}

/* One release transaction: locks the jobs due within WK_DUE_LOOKAHEAD_MS,
 * publishes each when it falls due, commits those acked. Returns how many
 * rows it found (WK_DUE_BATCH: look again at once), or an error. */
static int due_release_pass(wk_due_t *d)
{
    wk_t *wk = d->wk;
    yard_jobs_stale_t rows = {0};
    int64_t t0 = wk_clock_us(), db_now_ms = 0;
    int rc = yard_jobs_due_begin(&rows, &db_now_ms, d->conn, wk->cfg.schedule_clock_offset_s,
                                 WK_DUE_LOOKAHEAD_MS, WK_DUE_BATCH);
    if (rc < 0)
        return rc;
    size_t n = rows.n;
    if (n == 0) {
        yard_jobs_stale_free(&rows);
        yard_jobs_due_abort(d->conn);
        return 0;
    }
    due_acks_t acks = {.outstanding = 0};
    /* Measured after the answer came: if anything, the database's clock is
     * taken as later than it is, so waits end late, never early. */
    acks.skew_ms = db_now_ms - wk_wall_ms();
    pthread_mutex_init(&acks.mu, NULL);
    pthread_cond_init(&acks.cv, NULL);
    acks.seqs = calloc(n, sizeof *acks.seqs);
    acks.acked_ms = calloc(n, sizeof *acks.acked_ms);
    due_slot_t *slots = calloc(n, sizeof *slots);
    char **bufs = calloc(n, sizeof *bufs);
    const char **ids = calloc(n, sizeof *ids);
    char(*idtext)[YARD_ENV_ID_LEN + 1] = calloc(n, sizeof *idtext);
    uint64_t *seqs = calloc(n, sizeof *seqs);
    int64_t *acked = calloc(n, sizeof *acked);
    rc = acks.seqs && acks.acked_ms && slots && bufs && ids && idtext && seqs && acked
             ? 0
             : YARD_ENOMEM;
    int64_t t_select = wk_clock_us();
    /* Rows come earliest first: each is published once it is due. */
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (!due_wait(wk, rows.rows[i].env.run_at_ms, acks.skew_ms))
            break;
        slots[i] = (due_slot_t){&acks, i};
        due_publish(wk, &rows.rows[i], &acks, &slots[i], &bufs[i]);
    }
    /* Every callback runs exactly once (js.h), at the latest after the
     * publish timeout. */
    pthread_mutex_lock(&acks.mu);
    while (acks.outstanding > 0)
        pthread_cond_wait(&acks.cv, &acks.mu);
    pthread_mutex_unlock(&acks.mu);
    int64_t t_acked = wk_clock_us();
    size_t k = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (acks.seqs[i] == 0)
            continue;
        const yard_str_t *id = &rows.rows[i].env.id;
        memcpy(idtext[k], id->ptr, id->len < YARD_ENV_ID_LEN ? id->len : YARD_ENV_ID_LEN);
        ids[k] = idtext[k];
        acked[k] = acks.acked_ms[i];
        seqs[k++] = acks.seqs[i];
    }
    if (rc == 0)
        rc = yard_jobs_due_commit(d->conn, ids, seqs, acked, k);
    else
        yard_jobs_due_abort(d->conn);
    wk_store_health(wk, rc);
    wk_time_add(wk, "postgres", wk_clock_us() - t0);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (acks.seqs[i] == 0)
            continue;
        const yard_envelope_t *env = &rows.rows[i].env;
        char id[YARD_ENV_ID_LEN + 1] = "", trace[YARD_TRACE_ID_LEN + 1];
        memcpy(id, env->id.ptr, env->id.len < YARD_ENV_ID_LEN ? env->id.len : YARD_ENV_ID_LEN);
        yard_log_ctx_t ctx = {NULL, id, yard_env_trace_id(trace, env->traceparent)};
        YARD_LOG_INFO(&ctx, "schedule: job due; released as JOBS #%llu, %lld ms after its run_at",
                      (unsigned long long)acks.seqs[i],
                      (long long)(acks.acked_ms[i] - env->run_at_ms));
    }
    if (rc == 0)
        YARD_LOG_DEBUG(NULL, "schedule: released %zu of %zu due jobs (select %lld us, publish "
                       "%lld us, commit %lld us)", k, n, (long long)(t_select - t0),
                       (long long)(t_acked - t_select), (long long)(wk_clock_us() - t_acked));
    for (size_t i = 0; bufs && i < n; i++)
        free(bufs[i]);
    free(bufs);
    free(slots);
    free(ids);
    free(idtext);
    free(seqs);
    free(acked);
    free(acks.seqs);
    free(acks.acked_ms);
    pthread_mutex_destroy(&acks.mu);
    pthread_cond_destroy(&acks.cv);
    yard_jobs_stale_free(&rows);
    return rc < 0 ? rc : (int)n;
}

static void *due_main(void *arg)
{
    wk_due_t *d = arg;
    wk_t *wk = d->wk;
    while (!atomic_load(&wk->stopping)) {
        int rc = yard_jobs_connect(&d->conn, wk->cfg.pg_dsn, DUE_PG_CONNECT_S,
                                   YARD_JOBS_DURABLE);
        while (rc >= 0 && !atomic_load(&wk->stopping)) {
            rc = due_release_pass(d);
            if (rc < WK_DUE_BATCH)
                break;
        }
        if (rc >= 0 && !atomic_load(&wk->stopping))
            rc = wk_cron_pass(wk, d->conn);
        usleep((useconds_t)(rc < 0 ? DUE_PAUSE_MS : wk->cfg.schedule_poll_ms) * 1000);
    }
    return NULL;
}

int wk_due_start(wk_due_t **out, wk_t *wk)
{
    wk_due_t *d = calloc(1, sizeof *d);
    if (!d)
        return YARD_ENOMEM;
    d->wk = wk;
    if (pthread_create(&d->thread, NULL, due_main, d) != 0) {
        free(d);
        YARD_LOG_ERROR(NULL, "schedule: cannot start the due thread");
        return YARD_EIO;
    }
    *out = d;
    return 0;
}

void wk_due_join(wk_due_t *d)
{
    if (!d)
        return;
    pthread_join(d->thread, NULL);
    yard_db_close(d->conn);
    free(d);
}
