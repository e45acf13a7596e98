/*
 * execute_fetch.c - the fetcher thread of one queue: fetch a batch while
 * there is room in flight, decode and check each envelope (an unreadable
 * or invalid one goes to the DLQ), claim the batch in PostgreSQL, and hand
 * the jobs that may run to the handlers. A job already final (or
 * cancelled) is acked, never run; a message that may not touch its job
 * (another key's, another message's) and a row PostgreSQL refuses go to
 * the DLQ without hurting the rest of the batch.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "execute.h"
#include "log.h"
#include "notify.h"

/* What the claim says of a job PostgreSQL refused on its own (after the
 * batch was split down to it). */
#define EXEC_CLAIM_REFUSED INT_MIN

/* Moves a message that must not run to the DLQ with why and terminates it
 * (or naks it when the DLQ cannot take it now). job_id may be "", trace
 * (its trace id, for the log) NULL or "". */
static void exec_refuse(wk_execute_queue_t *q, yard_js_msg_t *m, const char *job_id,
                        const char *trace, unsigned attempts, const char *why)
{
    uint64_t seq = 0;
    size_t len = 0;
    const void *data = yard_js_msg_data(m, &len);
    yard_log_ctx_t ctx = {NULL, job_id, trace && trace[0] ? trace : NULL};
    YARD_LOG_ERROR(&ctx, "execute %s: %s; moving the message to the DLQ", q->name, why);
    yard_js_msg_meta(m, &seq, NULL);
    if (wk_dlq_publish(q->rt->wk, yard_js_msg_subject(m), job_id, seq, data, len, attempts,
                       why) == 0)
        yard_js_term(m);
    else
        yard_js_nak(m, EXEC_DLQ_RETRY_MS);
}

/* Turns a fetched message into an item (which owns it from then on); NULL
 * when its envelope cannot be read or holds a field the store cannot take
 * (then the message is handled: dead-lettered and terminated, or naked when
 * the DLQ is unavailable) or memory ran out (then the message is freed
 * unanswered and comes back after AckWait). */
static wk_execute_item_t *exec_item_make(wk_execute_queue_t *q, yard_js_msg_t *m)
{
    wk_execute_item_t *it = calloc(1, sizeof *it);
    uint64_t delivered = 1;
    size_t len = 0;
    const void *data = yard_js_msg_data(m, &len);
    char why[160];
    if (!it) {
        yard_js_msg_destroy(m);
        return NULL;
    }
    it->q = q;
    it->msg = m;
    yard_js_msg_meta(m, &it->seq, &delivered);
    it->delivered = (unsigned)delivered;
    it->attempt = it->delivered; /* until the claim says */
    int rc = yard_env_decode(&it->env, data, len);
    if (rc < 0) {
        snprintf(why, sizeof why, "the job envelope cannot be read: %s", yard_strerror(rc));
        exec_refuse(q, m, "", NULL, it->attempt, why);
        wk_execute_item_free(it);
        return NULL;
    }
    memcpy(it->id, it->env.id.ptr, it->env.id.len);
    yard_env_trace_id(it->trace, it->env.traceparent);
    /* Checked before the claim: one bad row would fail the whole batch. */
    if (yard_jobs_check(&it->env, why, sizeof why) < 0) {
        exec_refuse(q, m, it->id, it->trace, it->attempt, why);
        wk_execute_item_free(it);
        return NULL;
    }
    memcpy(it->type, it->env.type.ptr, it->env.type.len);
    size_t pl = it->env.payload.len;
    it->payload = malloc(pl ? pl + 1 : sizeof "null");
    if (!it->payload) {
        wk_execute_item_free(it);
        return NULL;
    }
    if (pl)
        memcpy(it->payload, it->env.payload.ptr, pl);
    else
        memcpy(it->payload, "null", pl = sizeof "null" - 1);
    it->payload[pl] = '\0';
    atomic_init(&it->cancelled, 0);
    atomic_init(&it->running, 0);
    atomic_init(&it->beat_ms, 0);
    return it;
}

/* Claims n jobs. When PostgreSQL refuses the batch's statement (one row it
 * cannot take fails them all), claims each half on its own, down to the
 * job it refuses, whose claim becomes EXEC_CLAIM_REFUSED: only that one is
 * dead-lettered, the others run. Returns 0, or an error that is not a
 * refusal (PostgreSQL unavailable: hand everything back). */
static int exec_claim(PGconn *c, const yard_envelope_t **envs, const uint64_t *seqs,
                      int *claimed, size_t n)
{
    int rc = yard_jobs_claim(c, envs, seqs, n, claimed);
    if (rc != YARD_EPG)
        return rc;
    if (n == 1) {
        claimed[0] = EXEC_CLAIM_REFUSED;
        return 0;
    }
    size_t half = n / 2;
    rc = exec_claim(c, envs, seqs, claimed, half);
    return rc < 0 ? rc : exec_claim(c, envs + half, seqs + half, claimed + half, n - half);
}

/* Why a claimed job may not run, for its DLQ copy; NULL if it may. */
static const char *exec_claim_refusal(int claimed, char *buf, size_t cap, const char *id)
{
    switch (claimed) {
    case YARD_JOBS_CLAIM_FOREIGN_KEY:
        snprintf(buf, cap, "job %s belongs to another API key; this message may not change it",
                 id);
        return buf;
    case YARD_JOBS_CLAIM_FOREIGN_JOB:
        snprintf(buf, cap, "job %s was created by another message (its type or payload "
                           "differ); this message may not change it", id);
        return buf;
    case EXEC_CLAIM_REFUSED:
        return "PostgreSQL refused this job's row (the worker log has its message)";
    default:
        return NULL;
    }
}

/* Claims the n items of one fetch (seqs: their JOBS sequences). While
 * PostgreSQL is unavailable it keeps them and tries again every
 * EXEC_PAUSE_S, extending their ack deadlines every AckWait / 3, until the
 * claim goes through or the worker stops: handing them back would spend
 * one of the consumer's MaxDeliver deliveries per try, and a message out of
 * deliveries is never delivered again (execute_commit.c holds outcomes for
 * the same reason). Returns 0 or the error of the last try. */
static int exec_claim_waiting(wk_execute_queue_t *q, wk_execute_item_t **items,
                              const yard_envelope_t **envs, const uint64_t *seqs, int *claimed,
                              size_t n)
{
    wk_t *wk = q->rt->wk;
    int64_t every_ms = wk->cfg.js_ack_wait_s * 1000 / EXEC_PROGRESS_DIVISOR;
    int64_t since = 0, extended = wk_clock_ms();
    for (;;) {
        int64_t t0 = wk_clock_us();
        int rc = wk_execute_conn(wk, &q->conn, YARD_JOBS_FAST);
        if (rc == 0)
            rc = exec_claim(q->conn, envs, seqs, claimed, n);
        wk_store_health(wk, rc);
        wk_time_add(wk, "postgres", wk_clock_us() - t0);
        if (rc != YARD_EUNAVAIL || atomic_load(&wk->stopping)) {
            if (since && rc == 0)
                YARD_LOG_WARN(NULL, "execute %s: claiming again after %lld ms; the %zu kept "
                                    "jobs run",
                              q->name, (long long)(wk_clock_ms() - since), n);
            return rc;
        }
        if (since == 0) {
            since = wk_clock_ms();
            YARD_LOG_WARN(NULL, "execute %s: cannot claim %zu jobs (%s); keeping them (ack "
                                "deadlines extended) and trying again every %d s",
                          q->name, n, yard_strerror(rc), EXEC_PAUSE_S);
        }
        sleep(EXEC_PAUSE_S);
        if (wk_clock_ms() - extended >= every_ms) {
            for (size_t i = 0; i < n; i++)
                yard_js_in_progress(items[i]->msg);
            extended = wk_clock_ms();
        }
    }
}

/* Claims the n items of one fetch and queues those that may run; naks them
 * all when the claim fails (exec_claim_waiting waits out PostgreSQL being
 * unavailable first). Frees what it does not queue. */
static void exec_claim_and_queue(wk_execute_queue_t *q, wk_execute_item_t **items,
                                 const yard_envelope_t **envs, int *claimed, size_t n)
{
    wk_runtime_t *rt = q->rt;
    wk_t *wk = rt->wk;
    uint64_t *seqs = calloc(n ? n : 1, sizeof *seqs);
    char why[256];
    int64_t t0 = wk_clock_us();
    int rc = !seqs ? YARD_ENOMEM : 0;
    for (size_t i = 0; seqs && i < n; i++)
        seqs[i] = items[i]->seq;
    if (rc == 0 && n)
        rc = exec_claim_waiting(q, items, envs, seqs, claimed, n);
    free(seqs);
    YARD_LOG_DEBUG(NULL, "execute %s: claimed a batch of %zu in %lld us", q->name, n,
                   (long long)(wk_clock_us() - t0));
    if (rc < 0) {
        /* Nothing was claimed: hand everything back for later. */
        YARD_LOG_WARN(NULL, "execute %s: cannot claim %zu jobs (%s); retrying in %d s", q->name,
                      n, yard_strerror(rc), EXEC_PAUSE_S);
        for (size_t i = 0; i < n; i++) {
            yard_js_nak(items[i]->msg, EXEC_RETRY_MS);
            wk_execute_item_free(items[i]);
        }
        sleep(EXEC_PAUSE_S);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const char *refusal = exec_claim_refusal(claimed[i], why, sizeof why, items[i]->id);
        if (refusal) {
            exec_refuse(q, items[i]->msg, items[i]->id, items[i]->trace, items[i]->delivered,
                        refusal);
            wk_execute_item_free(items[i]);
            items[i] = NULL;
        }
    }
    /* A final job's notification may not have gone out before the crash
     * or the failure that brought its message back: publish it again (the
     * duplicate window drops it if it had). */
    for (size_t i = 0; i < n; i++) {
        if (items[i] && claimed[i] <= 0 && items[i]->env.notify.len &&
            wk_notify_republish(wk, q->conn, &items[i]->env, items[i]->id) < 0) {
            yard_js_nak(items[i]->msg, EXEC_RETRY_MS);
            wk_execute_item_free(items[i]);
            items[i] = NULL;
        }
    }
    /* Published before the jobs run (the committer makes sure they are stored). */
    wk_execute_events_started(rt, items, claimed, n);
    size_t queued = 0;
    pthread_mutex_lock(&rt->mu);
    for (size_t i = 0; i < n; i++) {
        if (!items[i])
            continue;
        if (claimed[i] <= 0) {
            /* Finished or cancelled already: never run it again. */
            yard_js_ack(items[i]->msg);
            wk_execute_item_free(items[i]);
            continue;
        }
        items[i]->attempt = (unsigned)claimed[i];
        wk_execute_inflight_add(rt, items[i]);
        wk_execute_list_push(&rt->run_head, &rt->run_tail, items[i]);
        queued++;
    }
    /* One handler per job: a broadcast woke every idle handler (64 by
     * default) for each claim, and all but a few went back to sleep. */
    for (size_t i = 0; i < queued && i < (size_t)rt->concurrency; i++)
        pthread_cond_signal(&rt->run_cv);
    pthread_mutex_unlock(&rt->mu);
}

/* Appends the messages of from to *to (taking them over); from is left
 * empty. Returns 0 or YARD_ENOMEM (then from keeps what was not moved). */
static int exec_batch_append(yard_js_batch_t *to, yard_js_batch_t *from)
{
    if (from->count == 0)
        return 0;
    yard_js_msg_t **msgs = realloc(to->msgs, (size_t)(to->count + from->count) * sizeof *msgs);
    if (!msgs)
        return YARD_ENOMEM;
    for (int i = 0; i < from->count; i++) {
        msgs[to->count++] = from->msgs[i];
        from->msgs[i] = NULL;
    }
    to->msgs = msgs;
    from->count = 0;
    return 0;
}

/* Takes up to want messages of q's priority tiers into *out (yard_js_look:
 * what a tier has, one round trip, never a wait; an answer later than
 * EXEC_LOOK_MS is kept for the next look), in the round's order: high, normal, low, except that one round in
 * EXEC_TIER_TURN puts low first and another normal first, so a backlog of
 * high (or normal) work slows the lower tiers but never stops them. Returns
 * 0 (count may be 0) or an error with *out empty. */
static int exec_take_tiers(wk_execute_queue_t *q, yard_js_batch_t *out, int want)
{
    static const int orders[3][YARD_JS_TIERS] = {{YARD_PRIO_HIGH, YARD_PRIO_NORMAL, YARD_PRIO_LOW},
                                                 {YARD_PRIO_LOW, YARD_PRIO_HIGH, YARD_PRIO_NORMAL},
                                                 {YARD_PRIO_NORMAL, YARD_PRIO_HIGH, YARD_PRIO_LOW}};
    unsigned turn = q->rounds % EXEC_TIER_TURN;
    const int *order = orders[turn == EXEC_TIER_TURN - 1       ? 1
                              : turn == EXEC_TIER_TURN / 2 - 1 ? 2
                                                               : 0];
    int rc = 0;
    out->msgs = NULL;
    out->count = 0;
    for (int k = 0; rc == 0 && k < YARD_JS_TIERS && out->count < want; k++) {
        yard_js_batch_t part;
        rc = yard_js_look(q->consumers[order[k]], &part, want - out->count, EXEC_LOOK_MS);
        if (rc == 0)
            rc = exec_batch_append(out, &part);
        yard_js_batch_destroy(&part);
    }
    if (rc < 0)
        yard_js_batch_destroy(out);
    return rc;
}

/* Fetches up to want messages of q's tiers into *out (free with
 * yard_js_batch_destroy): what the tiers have (exec_take_tiers); when they
 * have nothing, waits on the normal tier up to EXEC_FETCH_WAIT_MS, or
 * EXEC_IDLE_WAIT_MS once the queue has been idle for EXEC_IDLE_ROUNDS
 * rounds: the wait returns with the first message that arrives (the next
 * round's looks take what follows it).
 * Returns 0 (count may be 0), or an error with *out empty. */
static int exec_fetch_tiers(wk_execute_queue_t *q, yard_js_batch_t *out, int want)
{
    int rc = exec_take_tiers(q, out, want);
    if (rc == 0 && out->count == 0) {
        yard_js_batch_destroy(out);
        rc = yard_js_fetch(q->consumers[YARD_PRIO_NORMAL], out, want,
                           q->idle < EXEC_IDLE_ROUNDS ? EXEC_FETCH_WAIT_MS : EXEC_IDLE_WAIT_MS);
    }
    if (rc < 0) {
        yard_js_batch_destroy(out);
        return rc;
    }
    if (out->count > 0) {
        q->rounds++;
        q->idle = 0;
    } else if (q->idle < EXEC_IDLE_ROUNDS) {
        q->idle++;
    }
    return 0;
}

/* Hands back (nak, redeliver at once) what q's tier consumers hold but the
 * fetcher never took: answers that arrived after their fetch ended (a late
 * look's). */
static void exec_hand_back_held(wk_execute_queue_t *q)
{
    usleep(EXEC_STOP_ANSWER_US);
    for (int tier = 0; tier < YARD_JS_TIERS; tier++) {
        int n = yard_js_hand_back_held(q->consumers[tier]);
        if (n > 0)
            YARD_LOG_DEBUG(NULL, "execute %s: handed back %d fetched jobs not started", q->name,
                           n);
    }
}

void *wk_execute_fetcher(void *arg)
{
    wk_execute_queue_t *q = arg;
    wk_runtime_t *rt = q->rt;
    wk_t *wk = rt->wk;
    int batch_max = (int)wk->cfg.worker_batch;
    while (!atomic_load(&wk->stopping)) {
        pthread_mutex_lock(&rt->mu);
        int free_slots = rt->max_in_flight - (int)rt->n_in_flight;
        if (free_slots <= 0) {
            wk_execute_wait(&rt->slot_cv, &rt->mu, EXEC_SLOT_WAIT_US);
            pthread_mutex_unlock(&rt->mu);
            continue;
        }
        pthread_mutex_unlock(&rt->mu);

        yard_js_batch_t batch;
        int64_t t0 = wk_clock_us();
        int rc = exec_fetch_tiers(q, &batch, free_slots < batch_max ? free_slots : batch_max);
        if (rc < 0) {
            sleep(EXEC_PAUSE_S);
            continue;
        }
        if (batch.count == 0) {
            yard_js_batch_destroy(&batch);
            continue;
        }
        wk_time_add(wk, "jetstream", wk_clock_us() - t0);

        /* Take the messages out of the batch: items own them from here. */
        wk_execute_item_t **items = calloc((size_t)batch.count, sizeof *items);
        const yard_envelope_t **envs = calloc((size_t)batch.count, sizeof *envs);
        int *claimed = calloc((size_t)batch.count, sizeof *claimed);
        size_t n = 0;
        for (int i = 0; i < batch.count; i++) {
            yard_js_msg_t *m = batch.msgs[i];
            batch.msgs[i] = NULL;
            if (!items || !envs || !claimed) {
                yard_js_nak(m, EXEC_RETRY_MS);
                yard_js_msg_destroy(m);
                continue;
            }
            wk_execute_item_t *it = exec_item_make(q, m);
            if (it) {
                items[n] = it;
                envs[n] = &it->env;
                n++;
            }
        }
        yard_js_batch_destroy(&batch);
        if (items && envs && claimed)
            exec_claim_and_queue(q, items, envs, claimed, n);
        free(items);
        free(envs);
        free(claimed);
    }
    exec_hand_back_held(q);
    return NULL;
}
