/*
 * queue_stats.h - how deep each served queue is, for GET /v1/queues and for
 * the metrics dashboards, alerts and autoscalers read:
 *   yard_queue_pending{queue}    messages not yet delivered to a worker
 *   yard_queue_in_flight{queue}  delivered and not yet acked
 *   yard_dlq_size{queue}         dead jobs kept in DLQ
 * Reading them asks JetStream (blocking requests), so it runs on the pool;
 * the gauges are refreshed every GW_QUEUE_STATS_EVERY_MS and a scrape only
 * reads them.
 */
#ifndef GW_QUEUE_STATS_H
#define GW_QUEUE_STATS_H

#include <stdint.h>

#define GW_QUEUE_STATS_EVERY_MS 5000

struct gw;

typedef struct {
    uint64_t pending, in_flight, dead;
} gw_queue_stats_t;

/* Reads queue i's figures from JetStream (pool thread; blocks). Also sets the
 * queue's gauges. Returns 0 or an error. */
int gw_queue_stats_read(struct gw *gw, size_t i, gw_queue_stats_t *out);

/* Registers the gauge families and starts the refresh timer (loop thread).
 * Returns 0 or an error. */
int gw_queue_stats_start(struct gw *gw);

#endif
