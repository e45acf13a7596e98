/*
 * execute.c - the execute role's life: start its threads (execute.h says
 * which and why), drain them on SIGTERM, and the helpers they all use: the
 * item lists, timed waits and PostgreSQL connections.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "db.h"
#include "err.h"
#include "execute.h"
#include "log.h"

/* ---- lists (mu held) ------------------------------------------------------ */

void wk_execute_list_push(wk_execute_item_t **head, wk_execute_item_t **tail,
                          wk_execute_item_t *it)
{
    it->next = NULL;
    if (*tail)
        (*tail)->next = it;
    else
        *head = it;
    *tail = it;
}

wk_execute_item_t *wk_execute_list_pop(wk_execute_item_t **head, wk_execute_item_t **tail)
{
    wk_execute_item_t *it = *head;
    if (it) {
        *head = it->next;
        if (!*head)
            *tail = NULL;
    }
    return it;
}

void wk_execute_inflight_add(wk_runtime_t *rt, wk_execute_item_t *it)
{
    it->in_prev = NULL;
    it->in_next = rt->in_flight;
    if (rt->in_flight)
        rt->in_flight->in_prev = it;
    rt->in_flight = it;
    rt->n_in_flight++;
}

void wk_execute_inflight_remove(wk_runtime_t *rt, wk_execute_item_t *it)
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

void wk_execute_item_free(wk_execute_item_t *it)
{
    if (!it)
        return;
    yard_js_msg_destroy(it->msg);
    yard_event_batch_destroy(it->started);
    free(it->payload);
    free(it->res.result_json);
    free(it);
}

void wk_execute_wait(pthread_cond_t *cv, pthread_mutex_t *mu, long us)
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

int wk_execute_conn(wk_t *wk, PGconn **conn, yard_jobs_commit_t mode)
{
    /* The claim and outcome statements run many times a second: planned once. */
    return yard_jobs_connect(conn, wk->cfg.pg_dsn, EXEC_PG_CONNECT_S, mode | YARD_JOBS_PLAN_ONCE);
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
        wk_execute_queue_t *q = &rt->queues[i];
        q->rt = rt;
        q->name = wk->queues[i];
        yard_js_execute_names(q->durable, q->subject, q->name);
        for (int tier = 0; rc == 0 && tier < YARD_JS_TIERS; tier++) {
            char durable[YARD_JS_NAME_MAX], subject[YARD_JS_NAME_MAX];
            yard_js_execute_tier_names(durable, subject, q->name, tier);
            rc = yard_js_consumer_bind(&q->consumers[tier], wk->js, YARD_STREAM_JOBS, durable);
            if (rc == 0)
                rc = yard_js_watch_max_deliveries(&q->watches[tier], wk->js, YARD_STREAM_JOBS,
                                                  durable, wk_execute_on_max_deliveries, rt);
        }
    }
    if (rc == 0)
        rc = yard_js_listen(&rt->cancel_listen, wk->js, YARD_SUBJ_CANCEL_ANY, wk_execute_on_cancel,
                            rt);
    if (rc < 0) {
        YARD_LOG_ERROR(NULL, "execute: cannot bind consumers: %s", yard_strerror(rc));
        for (size_t i = 0; i < rt->nqueues; i++) {
            for (int tier = 0; tier < YARD_JS_TIERS; tier++) {
                yard_js_watch_destroy(rt->queues[i].watches[tier]);
                yard_js_consumer_destroy(rt->queues[i].consumers[tier]);
            }
        }
        free(rt);
        return rc;
    }
    rt->handlers = calloc((size_t)rt->concurrency, sizeof *rt->handlers);
    for (int i = 0; i < rt->concurrency; i++)
        pthread_create(&rt->handlers[i], NULL, wk_execute_handler, rt);
    pthread_create(&rt->committer, NULL, wk_execute_committer, rt);
    for (size_t i = 0; i < rt->nqueues; i++)
        pthread_create(&rt->queues[i].fetcher, NULL, wk_execute_fetcher, &rt->queues[i]);
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
    /* 1. No more fetching, and no more cancel announcements. */
    for (size_t i = 0; i < rt->nqueues; i++)
        pthread_join(rt->queues[i].fetcher, NULL);
    yard_js_listen_destroy(rt->cancel_listen);
    rt->cancel_listen = NULL;
    /* 2. Queued jobs go back at once; running ones get the drain timeout. */
    pthread_mutex_lock(&rt->mu);
    pthread_cond_broadcast(&rt->run_cv);
    pthread_mutex_unlock(&rt->mu);
    int64_t deadline = atomic_load(&wk->stop_ms) + wk->cfg.worker_drain_timeout_s * 1000;
    for (;;) {
        pthread_mutex_lock(&rt->mu);
        size_t running = 0;
        for (wk_execute_item_t *it = rt->in_flight; it; it = it->in_next)
            running += atomic_load(&it->running);
        if (running == 0 || wk_clock_ms() >= deadline) {
            if (running)
                YARD_LOG_WARN(NULL, "execute: drain timeout: %zu jobs still running are "
                                    "handed back",
                              running);
            /* Still running after the timeout: stop them; they are naked
             * without a record (handed_back), since the drain stopped them. */
            for (wk_execute_item_t *it = rt->in_flight; it; it = it->in_next)
                if (atomic_load(&it->running))
                    it->handed_back = 1;
            rt->handlers_exit = 1;
            pthread_cond_broadcast(&rt->run_cv);
            pthread_mutex_unlock(&rt->mu);
            break;
        }
        pthread_mutex_unlock(&rt->mu);
        usleep(EXEC_DRAIN_POLL_US);
    }
    /* Handlers that honour cancellation return soon; wait a little for them. */
    for (int i = 0; i < rt->concurrency; i++) {
        pthread_mutex_lock(&rt->mu);
        for (wk_execute_item_t *it = rt->in_flight; it; it = it->in_next)
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
    for (size_t i = 0; i < rt->nqueues; i++) {
        for (int tier = 0; tier < YARD_JS_TIERS; tier++) {
            yard_js_watch_destroy(rt->queues[i].watches[tier]);
            yard_js_consumer_destroy(rt->queues[i].consumers[tier]);
        }
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
