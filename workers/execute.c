/*
 * execute.c - the execute role: run jobs and record every outcome.
 *
 * Threads:
 *   fetcher (one per queue)  fetches batches from execute_<queue> while
 *                            fewer than worker_concurrency jobs are in
 *                            flight, decodes them, claims them in
 *                            PostgreSQL (a job already final is acked and
 *                            not run) and queues them for the handlers;
 *   handler (concurrency)    runs one job at a time under its deadline;
 *   committer (one)          takes finished jobs in batches: publishes the
 *                            dead ones to DLQ (waiting for the PubAck),
 *                            writes attempts and states in one transaction,
 *                            then acks / naks with backoff / terms. It also
 *                            heartbeats running jobs (in-progress acks),
 *                            looks for cancel requests, and moves poison
 *                            messages reported by the max-deliveries
 *                            advisory to the DLQ.
 * Acks always come after the commit, so a crash anywhere means a
 * redelivery, and the claim step turns a redelivery of a finished job into
 * a plain ack: results are written once though handlers may run twice.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "db.h"
#include "envelope.h"
#include "err.h"
#include "log.h"
#include "retry.h"
#include "store.h"
#include "wk.h"

#define EXEC_COMMIT_BATCH 256
#define EXEC_FETCH_WAIT_MS 1000
#define EXEC_TICK_MS 250
#define EXEC_GROUP_WAIT_US 3000 /* how long a commit waits for more finished jobs */
#define EXEC_CANCEL_POLL_MS 1000
#define EXEC_CANCEL_SUBJECT "yard.cancel.*"

typedef struct exec_item exec_item_t;
typedef struct exec_queue exec_queue_t;

struct exec_item {
    exec_item_t *next;          /* in the run or done list */
    exec_item_t *in_prev, *in_next; /* in the in-flight list */
    exec_queue_t *q;
    natsMsg *msg;               /* owned */
    yard_envelope_t env;        /* views into msg */
    char id[YARD_ENV_ID_LEN + 1];
    char type[YARD_ENV_NAME_MAX + 1];
    char trace[33];
    char *payload;              /* NUL-terminated copy, "null" if none */
    unsigned attempt;           /* finished attempts + 1, from the claim */
    unsigned delivered;         /* JetStream's delivery count (MaxDeliver ceiling) */
    int64_t started_wall_ms, started_us, deadline_ms, last_progress_ms;
    atomic_int cancelled;
    atomic_int running;
    int handed_back;            /* drain: nak at once, write nothing */
    wk_result_t res;
};

struct exec_queue {
    wk_runtime_t *rt;
    const char *name;
    char durable[YARD_JS_NAME_MAX], subject[YARD_JS_NAME_MAX];
    yard_js_consumer_t *consumer;
    yard_js_watch_t *watch;
    pthread_t fetcher;
    PGconn *conn; /* the fetcher's */
};

typedef struct advisory {
    struct advisory *next;
    uint64_t seq;
} advisory_t;

struct wk_runtime {
    wk_t *wk;
    size_t nqueues;
    exec_queue_t queues[WK_MAX_QUEUES];
    int concurrency;  /* handler threads */
    int max_in_flight; /* fetched and not yet acked: handlers plus two batches */
    pthread_t *handlers;
    pthread_t committer;
    natsSubscription *cancel_sub;

    pthread_mutex_t mu;
    pthread_cond_t run_cv, done_cv, slot_cv;
    exec_item_t *run_head, *run_tail;
    exec_item_t *done_head, *done_tail;
    exec_item_t *in_flight; /* every item from claim to ack */
    size_t n_in_flight;
    advisory_t *advisories;
    int handlers_exit;
    int committer_exit;
    PGconn *conn; /* the committer's */
};

/* ---- lists (mu held) ------------------------------------------------------ */

static void list_push(exec_item_t **head, exec_item_t **tail, exec_item_t *it)
{
    it->next = NULL;
    if (*tail)
        (*tail)->next = it;
    else
        *head = it;
    *tail = it;
}

static exec_item_t *list_pop(exec_item_t **head, exec_item_t **tail)
{
    exec_item_t *it = *head;
    if (it) {
        *head = it->next;
        if (!*head)
            *tail = NULL;
    }
    return it;
}

static void inflight_add(wk_runtime_t *rt, exec_item_t *it)
{
    it->in_prev = NULL;
    it->in_next = rt->in_flight;
    if (rt->in_flight)
        rt->in_flight->in_prev = it;
    rt->in_flight = it;
    rt->n_in_flight++;
}

static void inflight_remove(wk_runtime_t *rt, exec_item_t *it)
{
    if (it->in_prev)
        it->in_prev->in_next = it->in_next;
    else
        rt->in_flight = it->in_next;
    if (it->in_next)
        it->in_next->in_prev = it->in_prev;
    rt->n_in_flight--;
    pthread_cond_broadcast(&rt->slot_cv);
}

static void item_free(exec_item_t *it)
{
    if (!it)
        return;
    natsMsg_Destroy(it->msg);
    free(it->payload);
    free(it->res.result_json);
    free(it);
}

/* Waits on cv (mu held) for at most us microseconds. */
static void exec_wait(pthread_cond_t *cv, pthread_mutex_t *mu, long us)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += us / 1000000;
    ts.tv_nsec += (us % 1000000) * 1000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(cv, mu, &ts);
}

/* ---- PostgreSQL connections ------------------------------------------------ */

/* Makes *conn usable: reconnects and prepares when needed. The fetcher's
 * connection (claims) commits fast, the committer's (outcomes, acked next)
 * durably. Returns 0 or YARD_EUNAVAIL (logged by yard_db_connect). */
static int exec_conn(wk_t *wk, PGconn **conn, wk_store_mode_t mode)
{
    if (*conn && PQstatus(*conn) == CONNECTION_OK)
        return 0;
    yard_db_close(*conn);
    *conn = NULL;
    int rc = yard_db_connect(conn, wk->cfg.pg_dsn, 5);
    if (rc == 0 && (rc = wk_store_prepare(*conn, mode)) < 0) {
        yard_db_close(*conn);
        *conn = NULL;
    }
    return rc;
}

/* ---- fetcher --------------------------------------------------------------- */

/* Turns a fetched message into an item; NULL (message handled: dead-lettered
 * and terminated) when its envelope cannot be read. */
static exec_item_t *exec_item_make(exec_queue_t *q, natsMsg *m)
{
    wk_t *wk = q->rt->wk;
    exec_item_t *it = calloc(1, sizeof *it);
    uint64_t delivered = 1;
    if (!it)
        return NULL;
    it->q = q;
    it->msg = m;
    yard_js_msg_meta(m, NULL, &delivered);
    it->delivered = (unsigned)delivered;
    it->attempt = it->delivered; /* until the claim says */
    int rc = yard_env_decode(&it->env, natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m));
    if (rc < 0) {
        char why[128];
        snprintf(why, sizeof why, "the job envelope cannot be read: %s", yard_strerror(rc));
        YARD_LOG_ERROR(NULL, "execute %s: %s; moving the message to the DLQ", q->name, why);
        uint64_t seq = 0;
        yard_js_msg_meta(m, &seq, NULL);
        if (wk_dlq_publish(wk, natsMsg_GetSubject(m), "", seq, natsMsg_GetData(m),
                           (size_t)natsMsg_GetDataLength(m), it->attempt, why) == 0)
            yard_js_term(m);
        else
            yard_js_nak(m, 5000);
        item_free(it);
        return NULL;
    }
    memcpy(it->id, it->env.id.ptr, it->env.id.len);
    memcpy(it->type, it->env.type.ptr, it->env.type.len);
    if (it->env.traceparent.len >= 35)
        memcpy(it->trace, it->env.traceparent.ptr + 3, 32);
    size_t pl = it->env.payload.len;
    it->payload = malloc(pl ? pl + 1 : 5);
    if (!it->payload) {
        item_free(it);
        return NULL;
    }
    if (pl)
        memcpy(it->payload, it->env.payload.ptr, pl);
    else
        memcpy(it->payload, "null", pl = 4);
    it->payload[pl] = '\0';
    atomic_init(&it->cancelled, 0);
    atomic_init(&it->running, 0);
    return it;
}

static void *exec_fetcher(void *arg)
{
    exec_queue_t *q = arg;
    wk_runtime_t *rt = q->rt;
    wk_t *wk = rt->wk;
    int batch_max = (int)wk->cfg.worker_batch;
    while (!atomic_load(&wk->stopping)) {
        pthread_mutex_lock(&rt->mu);
        int free_slots = rt->max_in_flight - (int)rt->n_in_flight;
        if (free_slots <= 0) {
            exec_wait(&rt->slot_cv, &rt->mu, 200000);
            pthread_mutex_unlock(&rt->mu);
            continue;
        }
        pthread_mutex_unlock(&rt->mu);

        natsMsgList list;
        int64_t t0 = wk_clock_us();
        int rc = yard_js_fetch(q->consumer, &list, free_slots < batch_max ? free_slots : batch_max,
                               EXEC_FETCH_WAIT_MS);
        if (rc < 0) {
            sleep(1);
            continue;
        }
        if (list.Count == 0) {
            natsMsgList_Destroy(&list);
            continue;
        }
        wk_time_add(wk, "jetstream", wk_clock_us() - t0);

        /* Take the messages out of the list: items own them from here. */
        exec_item_t **items = calloc((size_t)list.Count, sizeof *items);
        const yard_envelope_t **envs = calloc((size_t)list.Count, sizeof *envs);
        int *claimed = calloc((size_t)list.Count, sizeof *claimed);
        size_t n = 0;
        for (int i = 0; i < list.Count; i++) {
            natsMsg *m = list.Msgs[i];
            list.Msgs[i] = NULL;
            if (!items || !envs || !claimed) {
                yard_js_nak(m, 1000);
                natsMsg_Destroy(m);
                continue;
            }
            exec_item_t *it = exec_item_make(q, m);
            if (it) {
                items[n] = it;
                envs[n] = &it->env;
                n++;
            }
        }
        natsMsgList_Destroy(&list);

        t0 = wk_clock_us();
        rc = n ? exec_conn(wk, &q->conn, WK_STORE_FAST) : 0;
        if (rc == 0 && n)
            rc = wk_store_claim(q->conn, envs, n, claimed);
        wk_time_add(wk, "postgres", wk_clock_us() - t0);
        YARD_LOG_DEBUG(NULL, "execute %s: claimed a batch of %zu in %lld us", q->name, n,
                       (long long)(wk_clock_us() - t0));
        if (rc < 0) {
            /* Nothing was claimed: hand everything back for later. */
            YARD_LOG_WARN(NULL, "execute %s: cannot claim %zu jobs (%s); retrying in 1 s",
                          q->name, n, yard_strerror(rc));
            for (size_t i = 0; i < n; i++) {
                yard_js_nak(items[i]->msg, 1000);
                item_free(items[i]);
            }
            sleep(1);
        } else {
            pthread_mutex_lock(&rt->mu);
            for (size_t i = 0; i < n; i++) {
                if (claimed[i] <= 0) {
                    /* Finished or cancelled already: never run it again. */
                    yard_js_ack(items[i]->msg);
                    item_free(items[i]);
                    continue;
                }
                items[i]->attempt = (unsigned)claimed[i];
                inflight_add(rt, items[i]);
                list_push(&rt->run_head, &rt->run_tail, items[i]);
            }
            pthread_cond_broadcast(&rt->run_cv);
            pthread_mutex_unlock(&rt->mu);
        }
        free(items);
        free(envs);
        free(claimed);
    }
    return NULL;
}

/* ---- handlers -------------------------------------------------------------- */

static void exec_heartbeat(void *ud)
{
    /* The committer sends the in-progress acks; a handler calling this just
     * shows it is alive (nothing to do). */
    (void)ud;
}

static void *exec_handler(void *arg)
{
    wk_runtime_t *rt = arg;
    wk_t *wk = rt->wk;
    for (;;) {
        pthread_mutex_lock(&rt->mu);
        while (!rt->run_head && !rt->handlers_exit)
            pthread_cond_wait(&rt->run_cv, &rt->mu);
        exec_item_t *it = list_pop(&rt->run_head, &rt->run_tail);
        if (!it) {
            pthread_mutex_unlock(&rt->mu);
            break;
        }
        if (atomic_load(&wk->stopping)) {
            /* Draining: a job not started goes back at once. */
            it->handed_back = 1;
            list_push(&rt->done_head, &rt->done_tail, it);
            pthread_cond_signal(&rt->done_cv);
            pthread_mutex_unlock(&rt->mu);
            continue;
        }
        /* Set under the lock: the committer reads them to heartbeat. The
         * first in-progress ack goes out a third of AckWait from now, so a
         * short job sends none. */
        it->started_wall_ms = wk_wall_ms();
        it->started_us = wk_clock_us();
        it->last_progress_ms = wk_clock_ms();
        it->deadline_ms = it->last_progress_ms + (int64_t)it->env.timeout_s * 1000;
        atomic_store(&it->running, 1);
        pthread_mutex_unlock(&rt->mu);

        char queue[YARD_ENV_NAME_MAX + 1] = "";
        memcpy(queue, it->env.queue.ptr, it->env.queue.len);
        wk_job_t job = {.id = it->id,
                        .type = it->type,
                        .queue = queue,
                        .trace_id = it->trace[0] ? it->trace : NULL,
                        .payload = it->payload,
                        .payload_len = strlen(it->payload),
                        .attempt = it->attempt,
                        .max_attempts = it->env.max_attempts,
                        .deadline_ms = it->deadline_ms,
                        .cancelled = &it->cancelled,
                        .heartbeat = exec_heartbeat,
                        .heartbeat_ud = it};
        wk_registry_run(wk->registry, &job, &it->res);
        wk_time_add(wk, "handler", wk_clock_us() - it->started_us);

        pthread_mutex_lock(&rt->mu);
        atomic_store(&it->running, 0);
        list_push(&rt->done_head, &rt->done_tail, it);
        pthread_cond_signal(&rt->done_cv);
        pthread_mutex_unlock(&rt->mu);
    }
    return NULL;
}

/* ---- committer ------------------------------------------------------------- */

typedef enum { ACT_ACK, ACT_NAK, ACT_TERM } exec_act_t;

/* What becomes of a finished item: its recorded attempt and the ack. */
typedef struct {
    exec_item_t *it;
    wk_attempt_t rec;
    exec_act_t act;
    int64_t delay_ms;
    int write; /* 0: hand back without writing (drain, DLQ failure) */
} exec_plan_t;

static void exec_plan(wk_runtime_t *rt, exec_plan_t *p, exec_item_t *it)
{
    wk_t *wk = rt->wk;
    const wk_result_t *r = &it->res;
    unsigned max = it->env.max_attempts;
    /* The consumer's MaxDeliver is a ceiling whatever the job allows. */
    int last = it->attempt >= max || it->delivered >= (unsigned)wk->cfg.js_max_deliver;
    wk_outcome_t outcome = r->outcome;
    memset(p, 0, sizeof *p);
    p->it = it;
    p->write = 1;
    p->rec.job_id = it->id;
    p->rec.attempt = it->attempt;
    p->rec.started_ms = it->started_wall_ms;
    p->rec.duration_ms = (wk_clock_us() - it->started_us) / 1000;
    p->rec.error = r->error[0] ? r->error : NULL;
    if (it->handed_back) {
        p->write = 0;
        p->act = ACT_NAK;
        return;
    }
    /* A job cancelled while it ran stays cancelled, however its handler
     * ended (unless it finished its work). */
    if (outcome != WK_OUTCOME_OK && atomic_load(&it->cancelled))
        outcome = WK_OUTCOME_CANCELLED;
    switch (outcome) {
    case WK_OUTCOME_OK:
        p->rec.outcome = "succeeded";
        p->rec.state = WK_STATE_SUCCEEDED;
        p->rec.result_json = r->result_json;
        p->act = ACT_ACK;
        break;
    case WK_OUTCOME_CANCELLED:
        if (atomic_load(&wk->stopping) && !atomic_load(&it->cancelled)) {
            p->write = 0; /* stopped by the drain, not by a user */
            p->act = ACT_NAK;
            return;
        }
        p->rec.outcome = "cancelled";
        p->rec.state = WK_STATE_CANCELLED;
        p->act = ACT_TERM;
        break;
    case WK_OUTCOME_RETRY:
    case WK_OUTCOME_TIMEOUT:
        p->rec.outcome = outcome == WK_OUTCOME_TIMEOUT ? "timeout" : "retry";
        if (!last) {
            p->rec.state = WK_STATE_FAILED;
            p->act = ACT_NAK;
            p->delay_ms = wk_retry_delay_ms(wk->cfg.retry_base_ms, wk->cfg.retry_cap_ms,
                                            it->attempt, randombytes_uniform(1000000) / 1e6);
            break;
        }
        /* Out of attempts: dead. */
        /* fall through */
    default:
        p->rec.outcome = outcome == WK_OUTCOME_FAIL ? "failed" : "dead";
        p->rec.state = WK_STATE_DEAD;
        p->act = ACT_TERM;
        break;
    }
}

static void exec_count(wk_runtime_t *rt, const exec_plan_t *p)
{
    wk_t *wk = rt->wk;
    const exec_item_t *it = p->it;
    if (!p->write)
        return;
    yard_metrics_counter_add(yard_metrics_counter_with(wk->m_completed, it->q->name, it->type,
                                                       p->rec.outcome, NULL),
                             1);
    yard_metrics_histogram_observe(yard_metrics_histogram_with(wk->m_duration, it->q->name, NULL),
                                   (double)p->rec.duration_ms / 1000.0);
    if (p->rec.state != WK_STATE_FAILED)
        yard_metrics_histogram_observe(
            yard_metrics_histogram_with(wk->m_latency, it->q->name, NULL),
            (double)(wk_wall_ms() - it->env.created_at_ms) / 1000.0);
}

/* Writes, then acks, a batch of finished items; frees them. */
static void exec_commit(wk_runtime_t *rt, exec_item_t **items, size_t n)
{
    wk_t *wk = rt->wk;
    exec_plan_t *plans = calloc(n, sizeof *plans);
    wk_attempt_t *recs = calloc(n, sizeof *recs);
    size_t nrec = 0;
    int rc = 0;
    if (!plans || !recs) {
        for (size_t i = 0; i < n; i++) {
            yard_js_nak(items[i]->msg, 1000);
            item_free(items[i]);
        }
        free(plans);
        free(recs);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        exec_plan(rt, &plans[i], items[i]);
        /* Dead: the DLQ copy must be stored before the job is marked dead. */
        if (plans[i].write && plans[i].rec.state == WK_STATE_DEAD) {
            int64_t t0 = wk_clock_us();
            exec_item_t *it = items[i];
            uint64_t seq = 0;
            yard_js_msg_meta(it->msg, &seq, NULL);
            if (wk_dlq_publish(wk, it->q->subject, it->id, seq, natsMsg_GetData(it->msg),
                               (size_t)natsMsg_GetDataLength(it->msg), it->attempt,
                               it->res.error) < 0) {
                plans[i].write = 0;
                plans[i].act = ACT_NAK;
                plans[i].delay_ms = 5000;
            } else {
                yard_metrics_counter_add(yard_metrics_counter_with(wk->m_dlq, it->q->name, NULL),
                                         1);
            }
            wk_time_add(wk, "jetstream", wk_clock_us() - t0);
        }
        if (plans[i].write)
            recs[nrec++] = plans[i].rec;
    }
    if (nrec) {
        int64_t t0 = wk_clock_us();
        rc = exec_conn(wk, &rt->conn, WK_STORE_DURABLE);
        if (rc == 0)
            rc = wk_store_finish(rt->conn, recs, nrec, wk->worker_name);
        wk_time_add(wk, "postgres", wk_clock_us() - t0);
        YARD_LOG_DEBUG(NULL, "execute: recorded %zu outcomes in %lld us", nrec,
                       (long long)(wk_clock_us() - t0));
        if (rc < 0)
            YARD_LOG_WARN(NULL, "execute: cannot record %zu outcomes (%s); their jobs will "
                                "run again",
                          nrec, yard_strerror(rc));
    }
    int64_t t0 = wk_clock_us();
    for (size_t i = 0; i < n; i++) {
        exec_plan_t *p = &plans[i];
        if (p->write && rc < 0) {
            yard_js_nak(p->it->msg, 1000);
        } else if (p->act == ACT_ACK) {
            yard_js_ack(p->it->msg);
        } else if (p->act == ACT_TERM) {
            yard_js_term(p->it->msg);
        } else {
            yard_js_nak(p->it->msg, p->delay_ms);
        }
        if (rc == 0)
            exec_count(rt, p);
        if (p->write && rc == 0 && p->rec.state != WK_STATE_SUCCEEDED) {
            yard_log_ctx_t ctx = {NULL, p->it->id, p->it->trace};
            YARD_LOG_INFO(&ctx, "job %s attempt %u: %s%s%s", p->it->type, p->it->attempt,
                          p->rec.outcome, p->rec.error ? ": " : "",
                          p->rec.error ? p->rec.error : "");
        }
    }
    wk_time_add(wk, "jetstream", wk_clock_us() - t0);
    pthread_mutex_lock(&rt->mu);
    for (size_t i = 0; i < n; i++)
        inflight_remove(rt, items[i]);
    pthread_mutex_unlock(&rt->mu);
    for (size_t i = 0; i < n; i++)
        item_free(items[i]);
    free(plans);
    free(recs);
}

/* Heartbeats running jobs and applies cancel requests (mu not held). */
static void exec_supervise(wk_runtime_t *rt, int64_t now_ms, int poll_cancels)
{
    wk_t *wk = rt->wk;
    int64_t every = wk->cfg.js_ack_wait_s * 1000 / 3;
    const char *ids[256];
    exec_item_t *its[256];
    size_t n = 0;
    pthread_mutex_lock(&rt->mu);
    for (exec_item_t *it = rt->in_flight; it; it = it->in_next) {
        if (!atomic_load(&it->running))
            continue;
        /* Past its deadline (with grace) a hung handler gets no more time. */
        if (now_ms - it->last_progress_ms >= every && now_ms < it->deadline_ms + 5000) {
            yard_js_in_progress(it->msg);
            it->last_progress_ms = now_ms;
        }
        if (poll_cancels && n < 256 && !atomic_load(&it->cancelled)) {
            ids[n] = it->id;
            its[n++] = it;
        }
    }
    pthread_mutex_unlock(&rt->mu);
    if (n == 0 || exec_conn(wk, &rt->conn, WK_STORE_DURABLE) < 0)
        return;
    int flags[256];
    /* Items cannot leave the in-flight list while the committer (us) runs. */
    if (wk_store_cancel_requested(rt->conn, ids, n, flags) == 0) {
        for (size_t i = 0; i < n; i++)
            if (flags[i])
                atomic_store(&its[i]->cancelled, 1);
    }
}

/* Moves the poison messages the advisory reported to the DLQ. */
static void exec_poison(wk_runtime_t *rt, advisory_t *list)
{
    wk_t *wk = rt->wk;
    while (list) {
        advisory_t *next = list->next;
        natsMsg *m = NULL;
        yard_envelope_t env;
        if (yard_js_get_msg(&m, wk->js, YARD_STREAM_JOBS, list->seq) == 0) {
            const char *why = "the worker crashed or timed out on every delivery "
                              "(max deliveries reached)";
            int ok = yard_env_decode(&env, natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m)) ==
                     0;
            char id[YARD_ENV_ID_LEN + 1] = "";
            if (ok)
                memcpy(id, env.id.ptr, env.id.len);
            yard_log_ctx_t ctx = {NULL, id, NULL};
            YARD_LOG_WARN(&ctx, "poison message JOBS #%llu: moving it to the DLQ",
                          (unsigned long long)list->seq);
            if (wk_dlq_publish(wk, natsMsg_GetSubject(m), id, list->seq, natsMsg_GetData(m),
                               (size_t)natsMsg_GetDataLength(m),
                               (unsigned)wk->cfg.js_max_deliver, why) == 0 &&
                (!ok || (exec_conn(wk, &rt->conn, WK_STORE_DURABLE) == 0 &&
                         wk_store_mark_dead(rt->conn, &env, (unsigned)wk->cfg.js_max_deliver,
                                            why) == 0)))
                yard_js_delete_msg(wk->js, YARD_STREAM_JOBS, list->seq);
            natsMsg_Destroy(m);
        }
        free(list);
        list = next;
    }
}

static void *exec_committer(void *arg)
{
    wk_runtime_t *rt = arg;
    exec_item_t *batch[EXEC_COMMIT_BATCH];
    int64_t last_cancel_poll = 0;
    for (;;) {
        size_t n = 0;
        pthread_mutex_lock(&rt->mu);
        if (!rt->done_head && !rt->advisories && !rt->committer_exit) {
            exec_wait(&rt->done_cv, &rt->mu, EXEC_TICK_MS * 1000L);
        }
        /* Group commit: when more jobs are about to finish, give them a
         * moment to join this transaction instead of paying a commit each. */
        size_t ready = 0;
        for (exec_item_t *it = rt->done_head; it && ready < EXEC_COMMIT_BATCH; it = it->next)
            ready++;
        if (ready > 0 && ready < EXEC_COMMIT_BATCH && rt->n_in_flight > ready &&
            !rt->committer_exit) {
            exec_wait(&rt->done_cv, &rt->mu, EXEC_GROUP_WAIT_US);
        }
        while (n < EXEC_COMMIT_BATCH && rt->done_head)
            batch[n++] = list_pop(&rt->done_head, &rt->done_tail);
        advisory_t *adv = rt->advisories;
        rt->advisories = NULL;
        int exit_now = rt->committer_exit && !rt->done_head && rt->n_in_flight == n;
        pthread_mutex_unlock(&rt->mu);

        if (n)
            exec_commit(rt, batch, n);
        if (adv)
            exec_poison(rt, adv);
        int64_t now = wk_clock_ms();
        int poll = now - last_cancel_poll >= EXEC_CANCEL_POLL_MS;
        if (poll)
            last_cancel_poll = now;
        exec_supervise(rt, now, poll);
        yard_metrics_gauge_set(rt->wk->m_in_flight, (double)rt->n_in_flight);
        if (exit_now)
            break;
    }
    return NULL;
}

/* ---- asynchronous inputs: cancel announcements and advisories --------------- */

static void exec_on_cancel(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    wk_runtime_t *rt = closure;
    const char *subject = natsMsg_GetSubject(msg);
    const char *id = strrchr(subject, '.');
    pthread_mutex_lock(&rt->mu);
    for (exec_item_t *it = rt->in_flight; id && it; it = it->in_next)
        if (strcmp(it->id, id + 1) == 0)
            atomic_store(&it->cancelled, 1);
    pthread_mutex_unlock(&rt->mu);
    natsMsg_Destroy(msg);
}

static void exec_on_max_deliveries(void *ud, const char *stream, const char *consumer,
                                   uint64_t seq)
{
    wk_runtime_t *rt = ud;
    advisory_t *a = malloc(sizeof *a);
    if (!a)
        return;
    a->seq = seq;
    pthread_mutex_lock(&rt->mu);
    a->next = rt->advisories;
    rt->advisories = a;
    pthread_cond_signal(&rt->done_cv);
    pthread_mutex_unlock(&rt->mu);
}

/* ---- start and stop -------------------------------------------------------- */

int wk_execute_start(wk_runtime_t **out, wk_t *wk)
{
    wk_runtime_t *rt = calloc(1, sizeof *rt);
    int rc = 0;
    if (!rt)
        return YARD_ENOMEM;
    rt->wk = wk;
    rt->concurrency = (int)wk->cfg.worker_concurrency;
    rt->max_in_flight = rt->concurrency + 2 * (int)wk->cfg.worker_batch;
    pthread_mutex_init(&rt->mu, NULL);
    pthread_cond_init(&rt->run_cv, NULL);
    pthread_cond_init(&rt->done_cv, NULL);
    pthread_cond_init(&rt->slot_cv, NULL);
    rt->nqueues = wk->nqueues;
    for (size_t i = 0; rc == 0 && i < wk->nqueues; i++) {
        exec_queue_t *q = &rt->queues[i];
        q->rt = rt;
        q->name = wk->queues[i];
        yard_js_execute_names(q->durable, q->subject, q->name);
        rc = yard_js_consumer_bind(&q->consumer, wk->js, YARD_STREAM_JOBS, q->durable);
        if (rc == 0)
            rc = yard_js_watch_max_deliveries(&q->watch, wk->js, YARD_STREAM_JOBS, q->durable,
                                              exec_on_max_deliveries, rt);
    }
    if (rc == 0 &&
        natsConnection_Subscribe(&rt->cancel_sub, yard_js_conn(wk->js), EXEC_CANCEL_SUBJECT,
                                 exec_on_cancel, rt) != NATS_OK)
        rc = YARD_ENATS;
    if (rc < 0) {
        YARD_LOG_ERROR(NULL, "execute: cannot bind consumers: %s", yard_strerror(rc));
        for (size_t i = 0; i < rt->nqueues; i++) {
            yard_js_watch_destroy(rt->queues[i].watch);
            yard_js_consumer_destroy(rt->queues[i].consumer);
        }
        free(rt);
        return rc;
    }
    rt->handlers = calloc((size_t)rt->concurrency, sizeof *rt->handlers);
    for (int i = 0; i < rt->concurrency; i++)
        pthread_create(&rt->handlers[i], NULL, exec_handler, rt);
    pthread_create(&rt->committer, NULL, exec_committer, rt);
    for (size_t i = 0; i < rt->nqueues; i++)
        pthread_create(&rt->queues[i].fetcher, NULL, exec_fetcher, &rt->queues[i]);
    YARD_LOG_INFO(NULL, "execute: running %d handlers on %zu queues", rt->concurrency,
                  rt->nqueues);
    atomic_store(&wk->ready, 1);
    *out = rt;
    return 0;
}

void wk_execute_join(wk_runtime_t *rt)
{
    if (!rt)
        return;
    wk_t *wk = rt->wk;
    /* 1. No more fetching. */
    for (size_t i = 0; i < rt->nqueues; i++)
        pthread_join(rt->queues[i].fetcher, NULL);
    natsSubscription_Unsubscribe(rt->cancel_sub);
    /* 2. Queued jobs go back at once; running ones get the drain timeout. */
    pthread_mutex_lock(&rt->mu);
    pthread_cond_broadcast(&rt->run_cv);
    pthread_mutex_unlock(&rt->mu);
    int64_t deadline = atomic_load(&wk->stop_ms) + wk->cfg.worker_drain_timeout_s * 1000;
    for (;;) {
        pthread_mutex_lock(&rt->mu);
        size_t running = 0;
        for (exec_item_t *it = rt->in_flight; it; it = it->in_next)
            running += atomic_load(&it->running);
        if (running == 0 || wk_clock_ms() >= deadline) {
            if (running)
                YARD_LOG_WARN(NULL, "execute: drain timeout: %zu jobs still running are "
                                    "handed back",
                              running);
            /* Still running after the timeout: stop them; they are naked
             * without a record (handed_back), since the drain stopped them. */
            for (exec_item_t *it = rt->in_flight; it; it = it->in_next)
                if (atomic_load(&it->running))
                    it->handed_back = 1;
            rt->handlers_exit = 1;
            pthread_cond_broadcast(&rt->run_cv);
            pthread_mutex_unlock(&rt->mu);
            break;
        }
        pthread_mutex_unlock(&rt->mu);
        usleep(50000);
    }
    /* Handlers that honour cancellation return soon; wait a little for them. */
    for (int i = 0; i < rt->concurrency; i++) {
        pthread_mutex_lock(&rt->mu);
        for (exec_item_t *it = rt->in_flight; it; it = it->in_next)
            if (it->handed_back)
                atomic_store(&it->cancelled, 1);
        pthread_mutex_unlock(&rt->mu);
        pthread_join(rt->handlers[i], NULL);
    }
    pthread_mutex_lock(&rt->mu);
    rt->committer_exit = 1;
    pthread_cond_signal(&rt->done_cv);
    pthread_mutex_unlock(&rt->mu);
    pthread_join(rt->committer, NULL);
    natsSubscription_Destroy(rt->cancel_sub);
    for (size_t i = 0; i < rt->nqueues; i++) {
        yard_js_watch_destroy(rt->queues[i].watch);
        yard_js_consumer_destroy(rt->queues[i].consumer);
        yard_db_close(rt->queues[i].conn);
    }
    yard_db_close(rt->conn);
    free(rt->handlers);
    pthread_mutex_destroy(&rt->mu);
    pthread_cond_destroy(&rt->run_cv);
    pthread_cond_destroy(&rt->done_cv);
    pthread_cond_destroy(&rt->slot_cv);
    free(rt);
}
