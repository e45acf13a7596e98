/*
 * queue_stats.c - queue depth and dead-letter counts (queue_stats.h).
 */
#include <stdio.h>
#include <stdlib.h>

#include "err.h"
#include "gw.h"
#include "queue_stats.h"

int gw_queue_stats_read(gw_t *gw, size_t i, gw_queue_stats_t *out)
{
    char durable[YARD_JS_NAME_MAX], subject[YARD_JS_NAME_MAX], dlq[YARD_JS_NAME_MAX + 8];
    gw_queue_stats_t st = {0};
    yard_js_execute_names(durable, subject, gw->queues[i]);
    snprintf(dlq, sizeof dlq, "%s%s", YARD_SUBJ_DLQ_PREFIX, subject);
    int rc = yard_js_consumer_depth(&st.pending, &st.in_flight, gw->js, YARD_STREAM_JOBS, durable);
    if (rc == 0)
        rc = yard_js_subject_count(&st.dead, gw->js, YARD_STREAM_DLQ, dlq);
    if (rc < 0)
        return rc;
    /* Gauges take atomic stores: any thread may set them. */
    yard_metrics_gauge_set(gw->m_queue[0][i], (double)st.pending);
    yard_metrics_gauge_set(gw->m_queue[1][i], (double)st.in_flight);
    yard_metrics_gauge_set(gw->m_queue[2][i], (double)st.dead);
    *out = st;
    return 0;
}

static void stats_work(PGconn *conn, void *ud)
{
    gw_t *gw = ud;
    gw_queue_stats_t st;
    for (size_t i = 0; i < gw->nqueues; i++)
        if (gw_queue_stats_read(gw, i, &st) < 0)
            break;
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

int gw_queue_stats_start(gw_t *gw)
{
    static const struct {
        const char *name, *help;
    } fams[3] = {
        {"yard_queue_pending", "Jobs of a queue not yet delivered to a worker."},
        {"yard_queue_in_flight", "Jobs of a queue delivered to a worker and not yet acked."},
        {"yard_dlq_size", "Dead jobs of a queue kept in the DLQ stream."},
    };
    for (int f = 0; f < 3; f++) {
        yard_metrics_family_t *fam = NULL;
        int rc = yard_metrics_gauge_family(&fam, gw->metrics, fams[f].name, fams[f].help,
                                           (const char *const[]){"queue", NULL});
        if (rc < 0)
            return rc;
        for (size_t i = 0; i < gw->nqueues; i++)
            gw->m_queue[f][i] = yard_metrics_gauge_with(fam, gw->queues[i], NULL);
    }
    uv_timer_init(gw->loop, &gw->stats_timer);
    gw->stats_timer.data = gw;
    uv_timer_start(&gw->stats_timer, stats_tick, 0, GW_QUEUE_STATS_EVERY_MS);
    return 0;
}
