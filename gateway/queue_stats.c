/*
 * queue_stats.c - queue depth, dead-letter counts, waiting times and the
 * NATS round trip (queue_stats.h), refreshed on the pool every
 * GW_QUEUE_STATS_EVERY_MS.
 */
#include <stdio.h>
#include <stdlib.h>

#include "err.h"
#include "gw.h"
#include "jobs.h"
#include "queue_stats.h"

/* The consumers whose depth the gateway exports besides the queues'. */
static const struct {
    const char *stream, *durable;
} stats_consumers[GW_STATS_CONSUMERS] = {
    {YARD_STREAM_EVENTS, YARD_CONSUMER_SUBMISSIONS},
    {YARD_STREAM_JOBS, YARD_CONSUMER_SCHEDULE},
    {YARD_STREAM_JOBS, YARD_CONSUMER_NOTIFY},
};

int gw_queue_stats_read(gw_t *gw, size_t i, gw_queue_stats_t *out)
{
    gw_queue_stats_t st = {0};
    int rc = 0;
    /* A queue is its three priority tiers (js.h): their figures add up. */
    for (int tier = 0; rc == 0 && tier < YARD_JS_TIERS; tier++) {
        char durable[YARD_JS_NAME_MAX], subject[YARD_JS_NAME_MAX], dlq[YARD_JS_NAME_MAX + 8];
        uint64_t pending = 0, in_flight = 0, dead = 0;
        yard_js_execute_tier_names(durable, subject, gw->queues[i], tier);
        snprintf(dlq, sizeof dlq, "%s%s", YARD_SUBJ_DLQ_PREFIX, subject);
        rc = yard_js_consumer_depth(&pending, &in_flight, gw->js, YARD_STREAM_JOBS, durable);
        if (rc == 0)
            rc = yard_js_subject_count(&dead, gw->js, YARD_STREAM_DLQ, dlq);
        st.pending += pending;
        st.in_flight += in_flight;
        st.dead += dead;
    }
    if (rc < 0)
        return rc;
    /* Gauges take atomic stores: any thread may set them. */
    yard_metrics_gauge_set(gw->m_queue[0][i], (double)st.pending);
    yard_metrics_gauge_set(gw->m_queue[1][i], (double)st.in_flight);
    yard_metrics_gauge_set(gw->m_queue[2][i], (double)st.dead);
    *out = st;
    return 0;
}

/* One refresh (pool thread): JetStream's figures of each queue and
 * consumer, PostgreSQL's waiting times, the NATS round trip. A figure that
 * cannot be read now keeps its last value. */
static void stats_work(PGconn *conn, void *ud)
{
    gw_t *gw = ud;
    gw_queue_stats_t st;
    int js_ok = 1;
    for (size_t i = 0; i < gw->nqueues && js_ok; i++)
        js_ok = gw_queue_stats_read(gw, i, &st) == 0;
    for (size_t c = 0; c < GW_STATS_CONSUMERS && js_ok; c++) {
        uint64_t pending = 0, ack_pending = 0;
        js_ok = yard_js_consumer_depth(&pending, &ack_pending, gw->js, stats_consumers[c].stream,
                                       stats_consumers[c].durable) == 0;
        if (js_ok) {
            yard_metrics_gauge_set(gw->m_consumer[0][c], (double)pending);
            yard_metrics_gauge_set(gw->m_consumer[1][c], (double)ack_pending);
        }
    }
    /* Recorded in yard_nats_rtt_seconds; a failure is counted there too. */
    yard_js_rtt(NULL, gw->js);
    double ages[GW_MAX_QUEUES];
    if (conn && yard_jobs_queued_age(conn, gw->queues, gw->nqueues, ages) == 0) {
        for (size_t i = 0; i < gw->nqueues; i++)
            yard_metrics_gauge_set(gw->m_queue_age[i], ages[i]);
    } else if (conn) {
        gw_pool_conn_check(conn);
    }
}

static void stats_done(void *ud)
{
    gw_t *gw = ud;
    gw->stats_busy = 0;
}

static void stats_tick(uv_timer_t *t)
{
    gw_t *gw = t->data;
    if (gw->stats_busy || gw->stopping)
        return;
    if (gw_pool_submit(gw->pool, stats_work, stats_done, gw) == 0)
        gw->stats_busy = 1;
}

/* Registers a gauge family labelled label and sets out[i] to its child
 * for values[i] (n of them). Returns 0 or an error. */
static int stats_gauges(yard_metrics_gauge_t **out, gw_t *gw, const char *name,
                        const char *help, const char *label, const char *const *values, size_t n)
{
    yard_metrics_family_t *fam = NULL;
    int rc = yard_metrics_gauge_family(&fam, gw->metrics, name, help,
                                       (const char *const[]){label, NULL});
    for (size_t i = 0; rc == 0 && i < n; i++)
        out[i] = yard_metrics_gauge_with(fam, values[i], NULL);
    return rc;
}

int gw_queue_stats_start(gw_t *gw)
{
    static const struct {
        const char *name, *help;
    } fams[3] = {
        {"yard_queue_pending", "Jobs of a queue not yet delivered to a worker."},
        {"yard_queue_in_flight", "Jobs of a queue delivered to a worker and not yet acked."},
        {"yard_dlq_size", "Dead jobs of a queue kept in the DLQ stream."},
    };
    const char *consumers[GW_STATS_CONSUMERS];
    for (size_t c = 0; c < GW_STATS_CONSUMERS; c++)
        consumers[c] = stats_consumers[c].durable;
    int rc = 0;
    for (int f = 0; f < 3 && rc == 0; f++)
        rc = stats_gauges(gw->m_queue[f], gw, fams[f].name, fams[f].help, "queue", gw->queues,
                          gw->nqueues);
    if (rc == 0)
        rc = stats_gauges(gw->m_queue_age, gw, "yard_queue_oldest_pending_age_seconds",
                          "Seconds the oldest queued job of a queue has waited since it was "
                          "due (PostgreSQL), 0 when none waits.",
                          "queue", gw->queues, gw->nqueues);
    if (rc == 0)
        rc = stats_gauges(gw->m_consumer[0], gw, "yard_consumer_pending",
                          "Messages a JetStream consumer has not yet delivered (submissions: "
                          "EVENTS, read by the audit role; schedule: JOBS).",
                          "consumer", consumers, GW_STATS_CONSUMERS);
    if (rc == 0)
        rc = stats_gauges(gw->m_consumer[1], gw, "yard_consumer_ack_pending",
                          "Messages a JetStream consumer delivered and not yet acked "
                          "(submissions, schedule).",
                          "consumer", consumers, GW_STATS_CONSUMERS);
    if (rc < 0)
        return rc;
    uv_timer_init(gw->loop, &gw->stats_timer);
    gw->stats_timer.data = gw;
    uv_timer_start(&gw->stats_timer, stats_tick, 0, GW_QUEUE_STATS_EVERY_MS);
    return 0;
}
