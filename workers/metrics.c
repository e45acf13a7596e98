/*
 * metrics.c - the worker's Prometheus families (names and labels are a
 * contract: DESIGN.md, the dashboards and alert rules use them), and the
 * bound on the job types they name.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "wk.h"

/* Registers a counter family labelled by queue in *out; the series of each
 * of wk's queues start at 0 when start is set (so rates work from the
 * first scrape). */
static int wk_queue_counter(yard_metrics_family_t **out, wk_t *wk, const char *name,
                            const char *help, int start)
{
    int rc = yard_metrics_counter_family(out, wk->metrics, name, help,
                                         (const char *const[]){"queue", NULL});
    for (size_t i = 0; rc == 0 && start && i < wk->nqueues; i++)
        yard_metrics_counter_with(*out, wk->queues[i], NULL);
    return rc;
}

int wk_metrics_init(wk_t *wk)
{
    static const double secs[] = {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300};
    int execute = !strcmp(wk->role, "execute"), schedule = !strcmp(wk->role, "schedule");
    pthread_mutex_init(&wk->types_mu, NULL);
    wk->types = calloc((size_t)wk->cfg.metrics_max_types + 1, sizeof *wk->types);
    int rc = wk->types ? yard_metrics_create(&wk->metrics) : YARD_ENOMEM;
    if (rc == 0)
        rc = yard_metrics_counter_family(&wk->m_completed, wk->metrics,
                                         "yard_jobs_completed_total",
                                         "Job attempts finished, by queue, type (the first "
                                         "metrics_max_types types seen, then \"other\") and "
                                         "outcome.",
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
        rc = yard_metrics_counter_family_scaled(
            &wk->m_time, wk->metrics, "yard_worker_busy_seconds_total",
            "Time spent by part: postgres, jetstream, handler (counted in microseconds).",
            (const char *const[]){"role", "part", NULL}, 1e-6);
    if (rc == 0)
        rc = wk_queue_counter(&wk->m_dlq, wk, "yard_dlq_published_total",
                              "Jobs moved to the dead-letter stream, by queue.", execute);
    if (rc == 0)
        rc = wk_queue_counter(&wk->m_retried, wk, "yard_jobs_retried_total",
                              "Attempts that failed and will run again (after a backoff), by "
                              "queue.",
                              execute);
    if (rc == 0)
        rc = wk_queue_counter(&wk->m_rescued, wk, "yard_jobs_rescued_total",
                              "Jobs the rescuer republished because JOBS had lost their "
                              "message, by queue.",
                              schedule);
    yard_metrics_family_t *fam = NULL;
    if (rc == 0)
        rc = yard_metrics_gauge_family(&fam, wk->metrics, "yard_worker_queue_served",
                                       "1 for each queue this execute worker runs jobs of.",
                                       (const char *const[]){"queue", NULL});
    for (size_t i = 0; rc == 0 && execute && i < wk->nqueues; i++)
        yard_metrics_gauge_set(yard_metrics_gauge_with(fam, wk->queues[i], NULL), 1);
    if (rc == 0)
        rc = yard_metrics_gauge_family(&fam, wk->metrics, "yard_worker_jobs_in_flight",
                                       "Jobs fetched and not yet acknowledged, by role.",
                                       (const char *const[]){"role", NULL});
    if (rc == 0)
        wk->m_in_flight = yard_metrics_gauge_with(fam, wk->role, NULL);
    if (rc == 0)
        rc = yard_metrics_register_process(wk->metrics);
    if (rc < 0)
        YARD_LOG_ERROR(NULL, "metrics: cannot register: %s", yard_strerror(rc));
    return rc;
}

void wk_metrics_fini(wk_t *wk)
{
    yard_metrics_destroy(wk->metrics);
    wk->metrics = NULL;
    if (!wk->types)
        return;
    for (size_t i = 0; i < atomic_load(&wk->types_n); i++)
        free(wk->types[i]);
    free(wk->types);
    wk->types = NULL;
    pthread_mutex_destroy(&wk->types_mu);
}

/* The name among the first n of wk->types equal to type, or NULL. */
static const char *wk_type_find(wk_t *wk, size_t n, const char *type)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(wk->types[i], type) == 0)
            return wk->types[i];
    return NULL;
}

const char *wk_metrics_type(wk_t *wk, const char *type)
{
    size_t max = (size_t)wk->cfg.metrics_max_types;
    /* Acquire: the names below types_n are written before it is raised. */
    size_t n = atomic_load_explicit(&wk->types_n, memory_order_acquire);
    const char *label = wk_type_find(wk, n, type);
    if (label || n >= max)
        return label ? label : WK_TYPE_OTHER;
    pthread_mutex_lock(&wk->types_mu);
    n = atomic_load_explicit(&wk->types_n, memory_order_relaxed);
    label = wk_type_find(wk, n, type);
    if (!label && n < max && (wk->types[n] = strdup(type)) != NULL) {
        label = wk->types[n];
        atomic_store_explicit(&wk->types_n, n + 1, memory_order_release);
    }
    pthread_mutex_unlock(&wk->types_mu);
    return label ? label : WK_TYPE_OTHER;
}
