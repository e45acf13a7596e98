/*
 * execute_supervise.c - what watches running jobs, on the committer thread
 * between batches: in-progress acks that keep a live handler's job from
 * being redelivered (and stop when the handler goes silent, so a hung one
 * is) and a finished job's while it waits for its commit (held while
 * EVENTS or PostgreSQL is unavailable), cancel requests read from
 * PostgreSQL, and poison messages (the
 * max-deliveries advisory) moved to the DLQ. Also the two asynchronous
 * inputs, cancel announcements and advisories, which arrive on nats.c
 * threads.
 */
#include <stdlib.h>
#include <string.h>

#include "execute.h"
#include "log.h"
#include "notify.h"

/* Extends the ack deadline of it when an extension is due (AckWait / 3 since the
 * last one, or since the start) and its handler is alive: it showed a sign
 * of life (start or heartbeat) within EXEC_ALIVE_MS. A handler that
 * heartbeats every WK_HEARTBEAT_MS is always alive, so its job is extended
 * every AckWait / 3 and never redelivered while it runs; one that stops
 * heartbeating gets no extension after EXEC_ALIVE_MS, and JetStream
 * redelivers its job AckWait after the last one. Past the job's deadline
 * (with grace) no handler gets more time. mu held. */
static void exec_extend(wk_execute_item_t *it, int64_t now_ms, int64_t every_ms)
{
    if (now_ms - it->last_progress_ms < every_ms ||
        now_ms >= it->deadline_ms + EXEC_DEADLINE_GRACE_MS)
        return;
    int64_t silent_ms = now_ms - atomic_load(&it->beat_ms);
    if (silent_ms <= EXEC_ALIVE_MS) {
        yard_js_in_progress(it->msg);
        it->last_progress_ms = now_ms;
    } else if (!it->silence_logged) {
        it->silence_logged = 1;
        yard_log_ctx_t ctx = {NULL, it->id, it->trace[0] ? it->trace : NULL};
        YARD_LOG_WARN(&ctx, "job %s: no heartbeat from its handler for %lld ms; its ack "
                            "deadline is no longer extended (JetStream redelivers it unless it "
                            "finishes first)",
                      it->type, (long long)silent_ms);
    }
}

/* Nonzero when one of the n items holds the job of it (a second message of
 * the same job: the start statement would answer 0 for it, as if the job
 * could no longer run). */
static int exec_listed(wk_execute_item_t *const *items, size_t n, const wk_execute_item_t *it)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(items[i]->id, it->id) == 0)
            return 1;
    return 0;
}

/* Marks the n items running in PostgreSQL (yard_jobs_start); an item
 * whose job may no longer run (final, or cancelled meanwhile) is cancelled,
 * so its handler stops. Items cannot leave the in-flight list while the
 * committer (us) runs. */
static void exec_start_write(wk_runtime_t *rt, wk_execute_item_t **its, size_t n)
{
    const yard_envelope_t *envs[EXEC_CANCEL_POLL_MAX];
    uint64_t seqs[EXEC_CANCEL_POLL_MAX];
    int attempt[EXEC_CANCEL_POLL_MAX];
    for (size_t i = 0; i < n; i++) {
        envs[i] = &its[i]->env;
        seqs[i] = its[i]->seq;
    }
    int64_t t0 = wk_clock_us();
    int rc = yard_jobs_start(rt->conn, envs, seqs, n, attempt);
    wk_time_add(rt->wk, "postgres", wk_clock_us() - t0);
    if (rc < 0)
        return; /* logged; tried again next time */
    for (size_t i = 0; i < n; i++) {
        its[i]->start_written = 1;
        if (attempt[i] <= 0) {
            yard_log_ctx_t ctx = {NULL, its[i]->id, its[i]->trace[0] ? its[i]->trace : NULL};
            YARD_LOG_INFO(&ctx, "job %s: final or cancelled while it ran; stopping it",
                          its[i]->type);
            atomic_store(&its[i]->cancelled, 1);
        }
    }
}

/* Extends the ack deadline of it when it finished (its handler returned)
 * and waits for its commit, every AckWait / 3 since the last extension:
 * outcomes held while EVENTS or PostgreSQL is unavailable
 * (execute_commit.c) keep their messages this way. mu held. */
static void exec_extend_finished(wk_execute_item_t *it, int64_t now_ms, int64_t every_ms)
{
    if (it->finished_us == 0 || now_ms - it->last_progress_ms < every_ms)
        return;
    yard_js_in_progress(it->msg);
    it->last_progress_ms = now_ms;
}

void wk_execute_supervise(wk_runtime_t *rt, int64_t now_ms, int poll_cancels)
{
    wk_t *wk = rt->wk;
    int64_t every_ms = wk->cfg.js_ack_wait_s * 1000 / EXEC_PROGRESS_DIVISOR;
    int64_t now_us = wk_clock_us();
    const char *ids[EXEC_CANCEL_POLL_MAX];
    wk_execute_item_t *its[EXEC_CANCEL_POLL_MAX], *starts[EXEC_CANCEL_POLL_MAX];
    size_t n = 0, nstart = 0;
    pthread_mutex_lock(&rt->mu);
    for (wk_execute_item_t *it = rt->in_flight; it; it = it->in_next) {
        if (!atomic_load(&it->running)) {
            exec_extend_finished(it, now_ms, every_ms);
            continue;
        }
        exec_extend(it, now_ms, every_ms);
        if (!it->start_written && nstart < EXEC_CANCEL_POLL_MAX &&
            now_us - it->started_us >= EXEC_START_WRITE_MS * 1000L &&
            !exec_listed(starts, nstart, it))
            starts[nstart++] = it;
        if (poll_cancels && n < EXEC_CANCEL_POLL_MAX && !atomic_load(&it->cancelled)) {
            ids[n] = it->id;
            its[n++] = it;
        }
    }
    pthread_mutex_unlock(&rt->mu);
    if ((n == 0 && nstart == 0) || wk_execute_conn(wk, &rt->conn, YARD_JOBS_DURABLE) < 0)
        return;
    if (nstart)
        exec_start_write(rt, starts, nstart);
    if (n == 0)
        return;
    int flags[EXEC_CANCEL_POLL_MAX];
    /* Items cannot leave the in-flight list while the committer (us) runs. */
    if (yard_jobs_cancel_requested(rt->conn, ids, n, flags) == 0) {
        for (size_t i = 0; i < n; i++)
            if (flags[i])
                atomic_store(&its[i]->cancelled, 1);
    }
}

void wk_execute_poison(wk_runtime_t *rt, wk_execute_advisory_t *list)
{
    wk_t *wk = rt->wk;
    while (list) {
        wk_execute_advisory_t *next = list->next;
        yard_js_msg_t *m = NULL;
        yard_envelope_t env;
        if (yard_js_get_msg(&m, wk->js, YARD_STREAM_JOBS, list->seq) == 0) {
            const char *why = "the worker crashed or timed out on every delivery "
                              "(max deliveries reached)";
            size_t len = 0;
            const void *data = yard_js_msg_data(m, &len);
            char id[YARD_ENV_ID_LEN + 1] = "", bad[160], trace[YARD_TRACE_ID_LEN + 1];
            int ok = yard_env_decode(&env, data, len) == 0;
            if (ok)
                memcpy(id, env.id.ptr, env.id.len);
            /* A row is written only for a job the store can take. */
            ok = ok && yard_jobs_check(&env, bad, sizeof bad) == 0;
            yard_log_ctx_t ctx = {NULL, id, NULL};
            YARD_LOG_WARN(&ctx, "poison message JOBS #%llu: moving it to the DLQ",
                          (unsigned long long)list->seq);
            if (wk_dlq_publish(wk, yard_js_msg_subject(m), id, list->seq, data, len,
                               (unsigned)wk->cfg.js_max_deliver, why) == 0 &&
                (!ok || (wk_execute_event_poison(wk, id, yard_env_trace_id(trace,
                                                                             env.traceparent),
                                                 (unsigned)wk->cfg.js_max_deliver, why) == 0 &&
                         wk_execute_conn(wk, &rt->conn, YARD_JOBS_DURABLE) == 0 &&
                         yard_jobs_mark_dead(rt->conn, &env, list->seq,
                                             (unsigned)wk->cfg.js_max_deliver, why) == 0))) {
                /* Its dead notification, if it asked for one (best effort:
                 * the message is deleted next, logged if this fails). */
                wk_notify_outcome_t o = {&env, id, (unsigned)wk->cfg.js_max_deliver,
                                         YARD_JOB_DEAD, NULL, why};
                if (ok && env.notify.len)
                    wk_notify_publish(wk, &o);
                yard_js_delete_msg(wk->js, YARD_STREAM_JOBS, list->seq);
            }
            yard_js_msg_destroy(m);
        }
        free(list);
        list = next;
    }
}

/* ---- asynchronous inputs: cancel announcements and advisories --------------- */

void wk_execute_on_cancel(void *ud, const char *subject, const void *data, size_t len)
{
    wk_runtime_t *rt = ud;
    const char *id = strrchr(subject, '.');
    pthread_mutex_lock(&rt->mu);
    for (wk_execute_item_t *it = rt->in_flight; id && it; it = it->in_next)
        if (strcmp(it->id, id + 1) == 0)
            atomic_store(&it->cancelled, 1);
    pthread_mutex_unlock(&rt->mu);
}

void wk_execute_on_max_deliveries(void *ud, const char *stream, const char *consumer,
                                  uint64_t seq)
{
    wk_runtime_t *rt = ud;
    wk_execute_advisory_t *a = malloc(sizeof *a);
    if (!a)
        return;
    a->seq = seq;
    pthread_mutex_lock(&rt->mu);
    a->next = rt->advisories;
    rt->advisories = a;
    pthread_cond_signal(&rt->done_cv);
    pthread_mutex_unlock(&rt->mu);
}
