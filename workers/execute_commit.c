/*
 * execute_commit.c - the committer thread: takes finished jobs in batches
 * (a group commit: it waits a moment for more when others are about to
 * finish), decides each one's fate (exec_plan: succeeded, retry with
 * backoff, dead, cancelled, or handed back), publishes the dead ones to the
 * DLQ, records every attempt in one transaction, then acks, naks or terms.
 * Between batches it runs the supervision of execute_supervise.c.
 *
 * When the outcomes cannot be recorded because EVENTS or PostgreSQL is
 * unavailable (a JetStream leader election, a restart), the finished jobs
 * are held, not handed back: they go back to the head of the done list and
 * the commit is tried again after a pause that doubles up to
 * EXEC_HOLD_MAX_MS, while the supervision keeps their ack deadlines
 * extended and the full in-flight window stops the fetcher. Handing them
 * back would spend one of the consumer's MaxDeliver deliveries per try (a
 * try a second): an outage longer than MaxDeliver tries would leave their
 * messages never delivered again and their jobs `running` for good. The
 * drain does not hold: it hands back what it cannot record.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "err.h"
#include "execute.h"
#include "log.h"
#include "notify.h"
#include "retry.h"

typedef enum { ACT_ACK, ACT_NAK, ACT_TERM } exec_act_t;

/* What becomes of a finished item: its recorded attempt and the ack. */
typedef struct {
    wk_execute_item_t *it;
    yard_job_attempt_t rec;
    exec_act_t act;
    int64_t delay_ms;
    int write; /* 0: hand back without writing (drain, DLQ failure) */
    int hold;  /* not recorded for an outage: kept for a later try (exec_hold) */
} exec_plan_t;

/* Fills *p with the fate of finished item it, from its result, attempts
 * and whether it was cancelled or handed back by the drain. */
static void exec_plan(wk_runtime_t *rt, exec_plan_t *p, wk_execute_item_t *it)
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
    p->rec.env = &it->env;
    p->rec.seq = it->seq;
    p->rec.job_id = it->id;
    p->rec.attempt = it->attempt;
    p->rec.started_ms = it->started_wall_ms;
    p->rec.duration_ms = ((it->finished_us ? it->finished_us : wk_clock_us()) - it->started_us) /
                         1000;
    p->rec.error = r->error[0] ? r->error : NULL;
    if (it->handed_back) {
        p->write = 0;
        p->act = ACT_NAK;
        return;
    }
    /* The handler did not try (the host's circuit is open): back to
     * JetStream until it may, without counting an attempt. */
    if (outcome == WK_OUTCOME_RETRY && r->defer_ms > 0 && !atomic_load(&it->cancelled)) {
        yard_log_ctx_t ctx = {NULL, it->id, it->trace[0] ? it->trace : NULL};
        YARD_LOG_INFO(&ctx, "job %s attempt %u deferred for %lld ms: %s", it->type, it->attempt,
                      (long long)r->defer_ms, r->error);
        p->write = 0;
        p->act = ACT_NAK;
        p->delay_ms = r->defer_ms;
        return;
    }
    /* A job cancelled while it ran stays cancelled, however its handler
     * ended (unless it finished its work). */
    if (outcome != WK_OUTCOME_OK && atomic_load(&it->cancelled))
        outcome = WK_OUTCOME_CANCELLED;
    switch (outcome) {
    case WK_OUTCOME_OK:
        p->rec.outcome = "succeeded";
        p->rec.state = YARD_JOB_SUCCEEDED;
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
        p->rec.state = YARD_JOB_CANCELLED;
        p->act = ACT_TERM;
        break;
    case WK_OUTCOME_RETRY:
    case WK_OUTCOME_TIMEOUT:
        p->rec.outcome = outcome == WK_OUTCOME_TIMEOUT ? "timeout" : "retry";
        if (!last) {
            p->rec.state = YARD_JOB_FAILED;
            p->act = ACT_NAK;
            double jitter = randombytes_uniform(EXEC_JITTER_STEPS) / (double)EXEC_JITTER_STEPS;
            p->delay_ms = wk_retry_delay_ms(wk->cfg.retry_base_ms, wk->cfg.retry_cap_ms,
                                            it->attempt, jitter);
            break;
        }
        /* Out of attempts: dead. */
        /* fall through */
    default:
        p->rec.outcome = outcome == WK_OUTCOME_FAIL ? "failed" : "dead";
        p->rec.state = YARD_JOB_DEAD;
        p->act = ACT_TERM;
        break;
    }
}

/* Counts a recorded outcome in the metrics (nothing for a hand-back): a
 * failed attempt planned as a retry (state failed) in yard_jobs_retried_total
 * too. */
static void exec_count(wk_runtime_t *rt, const exec_plan_t *p)
{
    wk_t *wk = rt->wk;
    const wk_execute_item_t *it = p->it;
    if (!p->write)
        return;
    yard_metrics_counter_add(yard_metrics_counter_with(wk->m_completed, it->q->name,
                                                       wk_metrics_type(wk, it->type),
                                                       p->rec.outcome, NULL),
                             1);
    if (p->rec.state == YARD_JOB_FAILED)
        yard_metrics_counter_add(yard_metrics_counter_with(wk->m_retried, it->q->name, NULL), 1);
    yard_metrics_histogram_observe(yard_metrics_histogram_with(wk->m_duration, it->q->name, NULL),
                                   (double)p->rec.duration_ms / 1000.0);
    if (p->rec.state != YARD_JOB_FAILED)
        yard_metrics_histogram_observe(
            yard_metrics_histogram_with(wk->m_latency, it->q->name, NULL),
            (double)(wk_wall_ms() - it->env.created_at_ms) / 1000.0);
}

/* Publishes the events of the n plans that write (and are not held), as
 * one message, and waits for it. Returns 0 or an error (logged). */
static int exec_publish_events(wk_runtime_t *rt, const exec_plan_t *plans, size_t n)
{
    wk_t *wk = rt->wk;
    yard_event_batch_t *b = NULL;
    int64_t t0 = wk_clock_us();
    int rc = yard_event_batch_create_grouped(&b, wk->js);
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (plans[i].write && !plans[i].hold)
            wk_execute_events_outcome(b, wk, plans[i].it, &plans[i].rec, plans[i].delay_ms);
    if (rc == 0)
        yard_event_batch_flush(b); /* a failure counts in the wait */
    if (rc == 0)
        rc = yard_event_batch_wait(b, wk->cfg.js_publish_timeout_ms);
    yard_event_batch_destroy(b);
    wk_time_add(wk, "jetstream", wk_clock_us() - t0);
    if (rc == YARD_ENOSPACE) {
        /* Holding the outcomes back would hold their JOBS messages, which
         * is the room the store needs: the jobs complete, their events are
         * lost (yard_nats_errors_total counts each refusal). */
        static atomic_llong last_warn_ms;
        int64_t now = wk_clock_us() / 1000;
        if (now - atomic_load(&last_warn_ms) >= 10000) {
            atomic_store(&last_warn_ms, now);
            YARD_LOG_WARN(NULL, "execute: the JetStream store is full: recording outcomes "
                                "without their lifecycle events (the audit log misses them)");
        }
        return 0;
    }
    return rc;
}

/* Nonzero when outcomes that could not be recorded because of rc are held
 * and tried again (an outage: JetStream or PostgreSQL unavailable, slow or
 * out of memory), zero when they are handed back (a refusal, or the drain). */
static int exec_may_hold(const wk_t *wk, int rc)
{
    if (atomic_load(&wk->stopping))
        return 0;
    return rc == YARD_EUNAVAIL || rc == YARD_ETIMEOUT || rc == YARD_ENATS || rc == YARD_EBUSY ||
           rc == YARD_ENOMEM;
}

/* Puts the n held items back at the head of the done list, in order, and
 * sets when the commit is tried again; the first hold of an outage is
 * logged (why: what failed). */
static void exec_hold(wk_runtime_t *rt, wk_execute_item_t **held, size_t n, const char *why,
                      int rc)
{
    int64_t now = wk_clock_ms();
    pthread_mutex_lock(&rt->mu);
    for (size_t i = n; i-- > 0;) {
        held[i]->next = rt->done_head;
        rt->done_head = held[i];
        if (!rt->done_tail)
            rt->done_tail = held[i];
    }
    pthread_mutex_unlock(&rt->mu);
    if (rt->hold_since_ms == 0) {
        rt->hold_since_ms = now;
        rt->hold_pause_ms = EXEC_HOLD_FIRST_MS;
        YARD_LOG_WARN(NULL, "execute: cannot record %zu outcomes: %s (%s); holding the finished "
                            "jobs (their ack deadlines extended) and trying again, pausing up to "
                            "%d ms",
                      n, why, yard_strerror(rc), EXEC_HOLD_MAX_MS);
    } else {
        rt->hold_pause_ms = rt->hold_pause_ms * 2 > EXEC_HOLD_MAX_MS ? EXEC_HOLD_MAX_MS
                                                                     : rt->hold_pause_ms * 2;
        YARD_LOG_DEBUG(NULL, "execute: still cannot record %zu outcomes: %s (%s)", n, why,
                       yard_strerror(rc));
    }
    rt->hold_until_ms = now + rt->hold_pause_ms;
}

/* The outcomes are recorded again: ends the hold, if any, with a line. */
static void exec_hold_over(wk_runtime_t *rt)
{
    if (rt->hold_since_ms == 0)
        return;
    YARD_LOG_WARN(NULL, "execute: recording outcomes again after %lld ms; the held jobs are "
                        "recorded",
                  (long long)(wk_clock_ms() - rt->hold_since_ms));
    rt->hold_since_ms = rt->hold_until_ms = rt->hold_pause_ms = 0;
}

/* Publishes the DLQ copy of the dead job of p (it must be stored before the
 * job is marked dead). On failure p is held (an outage, exec_may_hold:
 * *dlq_down is set and the batch's other dead jobs are held without trying)
 * or handed back for a later try. */
static void exec_dead_letter(wk_runtime_t *rt, exec_plan_t *p, int *dlq_down)
{
    wk_t *wk = rt->wk;
    wk_execute_item_t *it = p->it;
    if (*dlq_down) {
        p->hold = 1;
        return;
    }
    int64_t t0 = wk_clock_us();
    uint64_t seq = 0;
    size_t len = 0;
    yard_js_msg_meta(it->msg, &seq, NULL);
    const void *data = yard_js_msg_data(it->msg, &len);
    int rc = wk_dlq_publish(wk, yard_js_msg_subject(it->msg), it->id, seq, data, len, it->attempt,
                            it->res.error);
    wk_time_add(wk, "jetstream", wk_clock_us() - t0);
    if (rc == 0) {
        yard_metrics_counter_add(yard_metrics_counter_with(wk->m_dlq, it->q->name, NULL), 1);
    } else if (exec_may_hold(wk, rc)) {
        p->hold = 1;
        *dlq_down = 1;
    } else {
        p->write = 0;
        p->act = ACT_NAK;
        p->delay_ms = EXEC_DLQ_RETRY_MS;
    }
}

/* A batch's n outcomes could not be recorded (rc): an outage holds them
 * (*why and *why_rc say so, as hold_why for exec_hold), anything else is
 * logged ("execute: <what> n outcomes") and their jobs run again. */
static void exec_failed(const wk_t *wk, int rc, const char *hold_why, const char *what, size_t n,
                        const char **why, int *why_rc)
{
    if (exec_may_hold(wk, rc)) {
        *why = hold_why;
        *why_rc = rc;
        return;
    }
    YARD_LOG_WARN(NULL, "execute: %s %zu outcomes (%s); their jobs will run again", what, n,
                  yard_strerror(rc));
}

/* Records the n outcomes. When PostgreSQL refuses the batch's statement
 * (one row it cannot take fails them all; the claim, a read, wrote none of
 * them), records each half on its own, down to the outcome it refuses,
 * whose refused[i] is set (the caller dead-letters it). Returns 0, or an
 * error that is not a refusal. */
static int exec_finish(wk_runtime_t *rt, const yard_job_attempt_t *recs, size_t n, int *refused)
{
    int rc = yard_jobs_finish(rt->conn, recs, n, rt->wk->worker_name);
    if (rc != YARD_EPG)
        return rc;
    if (n == 1) {
        refused[0] = 1;
        return 0;
    }
    size_t half = n / 2;
    rc = exec_finish(rt, recs, half, refused);
    return rc < 0 ? rc : exec_finish(rt, recs + half, n - half, refused + half);
}

/* Dead-letters the item of plan p, whose outcome PostgreSQL refused: its
 * message is terminated once the DLQ holds it, else naked for later. */
static void exec_refused(wk_runtime_t *rt, exec_plan_t *p)
{
    wk_execute_item_t *it = p->it;
    uint64_t seq = 0;
    size_t len = 0;
    const void *data = yard_js_msg_data(it->msg, &len);
    yard_log_ctx_t ctx = {NULL, it->id, it->trace[0] ? it->trace : NULL};
    YARD_LOG_ERROR(&ctx, "execute: PostgreSQL refused the outcome of job %s attempt %u (the "
                         "log above has its message); moving the message to the DLQ",
                   it->type, it->attempt);
    yard_js_msg_meta(it->msg, &seq, NULL);
    p->write = 0;
    p->act = ACT_TERM;
    if (wk_dlq_publish(rt->wk, yard_js_msg_subject(it->msg), it->id, seq, data, len,
                       it->attempt, "PostgreSQL refused this job's row") < 0) {
        p->act = ACT_NAK;
        p->delay_ms = EXEC_DLQ_RETRY_MS;
    }
}

/* Writes, then acks, a batch of finished items; frees them, except the
 * items held for a later try (exec_hold), which stay in flight. */
static void exec_commit(wk_runtime_t *rt, wk_execute_item_t **items, size_t n)
{
    wk_t *wk = rt->wk;
    exec_plan_t *plans = calloc(n, sizeof *plans);
    yard_job_attempt_t *recs = calloc(n, sizeof *recs);
    size_t *rec_plan = calloc(n, sizeof *rec_plan); /* recs[k] is plans[rec_plan[k]]'s */
    int *refused = calloc(n, sizeof *refused);
    size_t nrec = 0;
    int rc = 0, dlq_down = 0;
    if (!plans || !recs || !rec_plan || !refused) {
        pthread_mutex_lock(&rt->mu);
        for (size_t i = 0; i < n; i++)
            wk_execute_inflight_remove(rt, items[i]);
        pthread_mutex_unlock(&rt->mu);
        for (size_t i = 0; i < n; i++) {
            yard_js_nak(items[i]->msg, EXEC_RETRY_MS);
            wk_execute_item_free(items[i]);
        }
        free(plans);
        free(recs);
        free(rec_plan);
        free(refused);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        exec_plan(rt, &plans[i], items[i]);
        if (plans[i].write && plans[i].rec.state == YARD_JOB_DEAD)
            exec_dead_letter(rt, &plans[i], &dlq_down);
        if (plans[i].write && !plans[i].hold) {
            rec_plan[nrec] = i;
            recs[nrec++] = plans[i].rec;
        }
    }
    /* The outcomes' events are stored before the outcomes: a failure
     * writes nothing (execute_events.c); the jobs are held, or come back. */
    const char *hold_why = dlq_down ? "the DLQ cannot store their dead jobs" : NULL;
    int hold_rc = dlq_down ? YARD_EUNAVAIL : 0;
    int ev = nrec ? exec_publish_events(rt, plans, n) : 0;
    if (ev < 0)
        exec_failed(wk, ev, "their lifecycle events cannot be stored",
                    "cannot store the lifecycle events of", nrec, &hold_why, &hold_rc);
    if (nrec && ev == 0) {
        int64_t t0 = wk_clock_us();
        rc = wk_execute_conn(wk, &rt->conn, YARD_JOBS_DURABLE);
        if (rc == 0)
            rc = exec_finish(rt, recs, nrec, refused);
        wk_store_health(wk, rc);
        wk_time_add(wk, "postgres", wk_clock_us() - t0);
        YARD_LOG_DEBUG(NULL, "execute: recorded %zu outcomes in %lld us", nrec,
                       (long long)(wk_clock_us() - t0));
        if (rc < 0)
            exec_failed(wk, rc, "PostgreSQL is unavailable", "cannot record", nrec, &hold_why,
                        &hold_rc);
        for (size_t k = 0; rc == 0 && k < nrec; k++)
            if (refused[k])
                exec_refused(rt, &plans[rec_plan[k]]);
    }
    /* Not recorded: held when the cause is an outage, else handed back. */
    int recorded = nrec && ev == 0 && rc == 0;
    int outage = ev < 0 ? exec_may_hold(wk, ev) : rc < 0 && exec_may_hold(wk, rc);
    for (size_t i = 0; nrec && !recorded && i < n; i++) {
        exec_plan_t *p = &plans[i];
        if (!p->write || p->hold)
            continue;
        if (outage) {
            p->hold = 1;
        } else {
            p->write = 0;
            p->act = ACT_NAK;
            p->delay_ms = EXEC_RETRY_MS;
        }
    }
    size_t nheld = 0;
    for (size_t i = 0; i < n; i++)
        if (plans[i].hold)
            items[nheld++] = plans[i].it;
    if (nheld)
        exec_hold(rt, items, nheld, hold_why, hold_rc);
    else if (recorded)
        exec_hold_over(rt);
    int64_t t0 = wk_clock_us();
    for (size_t i = 0; i < n; i++) {
        exec_plan_t *p = &plans[i];
        if (p->hold)
            continue;
        /* Committed: the notification goes out before the ack, so a crash
         * in between redelivers the job, whose claim finds it final and
         * publishes the notification again (execute_fetch.c). When the
         * publish fails, the nak does the same. */
        if (p->write && p->it->env.notify.len && p->rec.state != YARD_JOB_CANCELLED) {
            wk_notify_outcome_t o = {&p->it->env, p->it->id, p->it->attempt, p->rec.state,
                                     p->rec.result_json, p->rec.error};
            if (wk_notify_publish(wk, &o) < 0 && p->rec.state != YARD_JOB_FAILED) {
                p->act = ACT_NAK;
                p->delay_ms = EXEC_RETRY_MS;
            }
        }
        if (p->act == ACT_ACK) {
            yard_js_ack(p->it->msg);
        } else if (p->act == ACT_TERM) {
            yard_js_term(p->it->msg);
        } else {
            yard_js_nak(p->it->msg, p->delay_ms);
        }
        exec_count(rt, p);
        /* One line per finished attempt, with the job's trace id: the
         * worker's part of the job's trace in the logs. */
        if (p->write) {
            yard_log_ctx_t ctx = {NULL, p->it->id, p->it->trace[0] ? p->it->trace : NULL};
            YARD_LOG_INFO(&ctx, "job %s attempt %u: %s in %lld ms%s%s", p->it->type,
                          p->it->attempt, p->rec.outcome, (long long)p->rec.duration_ms,
                          p->rec.error ? ": " : "", p->rec.error ? p->rec.error : "");
        }
    }
    wk_time_add(wk, "jetstream", wk_clock_us() - t0);
    /* What was answered leaves; the held items stay in flight. */
    pthread_mutex_lock(&rt->mu);
    for (size_t i = 0; i < n; i++)
        if (!plans[i].hold)
            wk_execute_inflight_remove(rt, plans[i].it);
    pthread_mutex_unlock(&rt->mu);
    for (size_t i = 0; i < n; i++)
        if (!plans[i].hold)
            wk_execute_item_free(plans[i].it);
    free(plans);
    free(recs);
    free(rec_plan);
    free(refused);
}

/* Commits finished batches and supervises until the drain says to exit and
 * nothing is left in flight. */
void *wk_execute_committer(void *arg)
{
    wk_runtime_t *rt = arg;
    wk_execute_item_t *batch[EXEC_COMMIT_BATCH];
    int64_t last_cancel_poll = 0;
    for (;;) {
        size_t n = 0;
        pthread_mutex_lock(&rt->mu);
        /* Held outcomes: nothing is committed before the next try (the
         * drain tries at once). */
        int64_t hold_left_ms = rt->hold_until_ms - wk_clock_ms();
        int holding = hold_left_ms > 0 && !rt->committer_exit;
        /* While jobs run, supervision comes round often enough to mark
         * them running soon after EXEC_START_WRITE_MS. */
        int64_t tick_ms = rt->n_in_flight ? EXEC_BUSY_TICK_MS : EXEC_TICK_MS;
        if (holding && !rt->advisories) {
            wk_execute_wait(&rt->done_cv, &rt->mu,
                            (hold_left_ms < tick_ms ? hold_left_ms : tick_ms) * 1000L);
        } else if (!holding && !rt->done_head && !rt->advisories && !rt->committer_exit) {
            wk_execute_wait(&rt->done_cv, &rt->mu, tick_ms * 1000L);
        }
        /* Group commit: when many more jobs are about to finish, give them
         * a moment to join this transaction instead of paying a commit each
         * (a light load commits at once). */
        size_t ready = 0;
        for (wk_execute_item_t *it = rt->done_head; it && ready < EXEC_COMMIT_BATCH; it = it->next)
            ready++;
        if (!holding && ready > 0 && ready < EXEC_COMMIT_BATCH &&
            rt->n_in_flight >= ready + EXEC_GROUP_BUSY && !rt->committer_exit) {
            wk_execute_wait(&rt->done_cv, &rt->mu, EXEC_GROUP_WAIT_US);
        }
        while (!holding && n < EXEC_COMMIT_BATCH && rt->done_head)
            batch[n++] = wk_execute_list_pop(&rt->done_head, &rt->done_tail);
        wk_execute_advisory_t *adv = rt->advisories;
        rt->advisories = NULL;
        int exit_now = rt->committer_exit && !rt->done_head && rt->n_in_flight == n;
        pthread_mutex_unlock(&rt->mu);

        if (n)
            exec_commit(rt, batch, n);
        if (adv)
            wk_execute_poison(rt, adv);
        int64_t now = wk_clock_ms();
        int poll = now - last_cancel_poll >= EXEC_CANCEL_POLL_MS;
        if (poll)
            last_cancel_poll = now;
        wk_execute_supervise(rt, now, poll);
        yard_metrics_gauge_set(rt->wk->m_in_flight, (double)rt->n_in_flight);
        if (exit_now)
            break;
    }
    return NULL;
}

