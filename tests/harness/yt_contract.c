/*
 * yt_contract.c - the metrics contract's table (see yt_contract.h).
 */
#include <string.h>

#include "yt_contract.h"

enum {
    EVERY = YT_PROC_EVERY,
    GATEWAY = YT_PROC_GATEWAY,
    EXECUTE = YT_PROC_EXECUTE,
    SCHEDULE = YT_PROC_SCHEDULE,
};

const yt_metric_t yt_contract[] = {
    {"yard_build_info", "gauge", "program,version,commit,", EVERY},
    {"yard_ready", "gauge", "program,", EVERY},
    {"yard_pg_query_duration_seconds", "histogram", "program,", EVERY},
    {"yard_pg_errors_total", "counter", "program,", EVERY},
    {"yard_nats_rtt_seconds", "gauge", "program,", EVERY},
    {"yard_nats_errors_total", "counter", "program,", EVERY},
    {"process_cpu_seconds_total", "counter", "", EVERY},
    {"process_resident_memory_bytes", "gauge", "", EVERY},
    {"process_virtual_memory_bytes", "gauge", "", EVERY},
    {"process_open_fds", "gauge", "", EVERY},
    {"process_max_fds", "gauge", "", EVERY},
    {"process_start_time_seconds", "gauge", "", EVERY},
    {"yard_http_requests_total", "counter", "route,code,", GATEWAY},
    {"yard_http_request_duration_seconds", "histogram", "route,", GATEWAY},
    {"yard_jobs_published_total", "counter", "queue,outcome,", GATEWAY},
    {"yard_http_auth_failures_total", "counter", "", GATEWAY},
    {"yard_gateway_publishes_in_flight", "gauge", "", GATEWAY},
    {"yard_queue_pending", "gauge", "queue,", GATEWAY},
    {"yard_queue_in_flight", "gauge", "queue,", GATEWAY},
    {"yard_dlq_size", "gauge", "queue,", GATEWAY},
    {"yard_queue_oldest_pending_age_seconds", "gauge", "queue,", GATEWAY},
    {"yard_consumer_pending", "gauge", "consumer,", GATEWAY},
    {"yard_consumer_ack_pending", "gauge", "consumer,", GATEWAY},
    {"yard_jobs_completed_total", "counter", "queue,type,outcome,", EXECUTE},
    {"yard_jobs_retried_total", "counter", "queue,", EXECUTE},
    {"yard_dlq_published_total", "counter", "queue,", EXECUTE},
    {"yard_job_duration_seconds", "histogram", "queue,", EXECUTE},
    {"yard_job_end_to_end_seconds", "histogram", "queue,", EXECUTE},
    {"yard_worker_jobs_in_flight", "gauge", "role,", EXECUTE},
    {"yard_worker_busy_seconds_total", "counter", "role,part,", EXECUTE},
    {"yard_worker_queue_served", "gauge", "queue,", EXECUTE},
    {"yard_jobs_rescued_total", "counter", "queue,", SCHEDULE},
};

const size_t yt_contract_len = sizeof yt_contract / sizeof yt_contract[0];

/* Whether the len bytes at name are base followed by suffix. */
static int is_named(const char *name, size_t len, const char *base, const char *suffix)
{
    size_t b = strlen(base), s = strlen(suffix);
    return len == b + s && memcmp(name, base, b) == 0 && memcmp(name + b, suffix, s) == 0;
}

const yt_metric_t *yt_contract_find(const char *name, size_t len, int family)
{
    static const char *const histogram_series[] = {"_bucket", "_sum", "_count"};
    for (size_t i = 0; i < yt_contract_len; i++) {
        const yt_metric_t *m = &yt_contract[i];
        int histogram = strcmp(m->kind, "histogram") == 0;
        if ((!histogram || family) && is_named(name, len, m->name, ""))
            return m;
        for (size_t k = 0; histogram && k < sizeof histogram_series / sizeof *histogram_series;
             k++)
            if (is_named(name, len, m->name, histogram_series[k]))
                return m;
    }
    return NULL;
}
