/*
 * queue_stats.h - how deep each served queue is, for GET /v1/queues and for
 * the metrics dashboards, alerts and autoscalers read:
 *   yard_queue_pending{queue}    messages not yet delivered to a worker
 *   yard_queue_in_flight{queue}  delivered and not yet acked
 *   yard_dlq_size{queue}         dead jobs kept in DLQ
 *   yard_queue_oldest_pending_age_seconds{queue}
 *                                how long the oldest queued job has waited
 *                                (PostgreSQL; 0 when none)
 *   yard_consumer_pending{consumer}, yard_consumer_ack_pending{consumer}
 *                                the same figures for the consumers
 *                                `submissions` (EVENTS) and `schedule` (JOBS)
 * and, since this is the gateway's only periodic work off the loop, the
 * NATS round trip (yard_nats_rtt_seconds, iostats.h).
 * Reading them asks JetStream and PostgreSQL (blocking requests), so it runs
 * on the pool; the gauges are refreshed every GW_QUEUE_STATS_EVERY_MS and a
 * scrape only reads them.
 */
#ifndef GW_QUEUE_STATS_H
#define GW_QUEUE_STATS_H

#include <stddef.h>
#include <stdint.h>

#define GW_QUEUE_STATS_EVERY_MS 5000
#define GW_STATS_CONSUMERS 3 /* submissions, schedule, notify */

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
