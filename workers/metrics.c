/*
 * metrics.c - the worker's Prometheus families (names and labels are a
 * contract: DESIGN.md, the dashboards and alert rules use them).
 */
#include <stddef.h>

#include "err.h"
#include "log.h"
#include "wk.h"

int wk_metrics_init(wk_t *wk)
{
    static const double secs[] = {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300};
    int rc = yard_metrics_create(&wk->metrics);
    if (rc == 0)
        rc = yard_metrics_counter_family(&wk->m_completed, wk->metrics,
                                         "yard_jobs_completed_total",
                                         "Job attempts finished, by queue, type and outcome.",
                                         (const char *const[]){"queue", "type", "outcome", NULL});
    if (rc == 0)
        rc = yard_metrics_histogram_family(&wk->m_duration, wk->metrics,
                                           "yard_job_duration_seconds",
                                           "Handler run time of one attempt, by queue.",
                                           (const char *const[]){"queue", NULL}, secs,
                                           sizeof secs / sizeof secs[0]);
    if (rc == 0)
        rc = yard_metrics_histogram_family(
            &wk->m_latency, wk->metrics, "yard_job_end_to_end_seconds",
            "From submission to the final outcome, by queue.", (const char *const[]){"queue", NULL},
            secs, sizeof secs / sizeof secs[0]);
    if (rc == 0)
        rc = yard_metrics_counter_family(&wk->m_time, wk->metrics,
                                         "yard_worker_busy_microseconds_total",
                                         "Time spent by part: postgres, jetstream, handler.",
                                         (const char *const[]){"role", "part", NULL});
    if (rc == 0)
        rc = yard_metrics_counter_family(&wk->m_dlq, wk->metrics, "yard_dlq_published_total",
                                         "Jobs moved to the dead-letter stream, by queue.",
                                         (const char *const[]){"queue", NULL});
    yard_metrics_family_t *inflight = NULL;
    if (rc == 0)
        rc = yard_metrics_gauge_family(&inflight, wk->metrics, "yard_worker_jobs_in_flight",
                                       "Jobs fetched and not yet acknowledged, by role.",
                                       (const char *const[]){"role", NULL});
    if (rc == 0)
        wk->m_in_flight = yard_metrics_gauge_with(inflight, wk->role, NULL);
    if (rc == 0)
        rc = yard_metrics_register_process(wk->metrics);
    if (rc < 0)
        YARD_LOG_ERROR(NULL, "metrics: cannot register: %s", yard_strerror(rc));
    return rc;
}
