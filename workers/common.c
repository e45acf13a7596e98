/*
 * common.c - what every role uses: clocks, the time-share counter, and
 * publishing a dead job to the DLQ.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "log.h"
#include "wk.h"

int64_t wk_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t wk_clock_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void wk_time_add(wk_t *wk, const char *part, int64_t us)
{
    /* Counted in microseconds; the family renders seconds (scaled). */
    yard_metrics_counter_add(yard_metrics_counter_with(wk->m_time, wk->role, part, NULL),
                             (uint64_t)(us > 0 ? us : 0));
}

int wk_dlq_publish(wk_t *wk, const char *subject, const char *job_id, uint64_t stream_seq,
                   const void *data, size_t len, unsigned attempts, const char *last_error)
{
    char dlq_subject[YARD_JS_NAME_MAX + 8], msg_id[96], n[16], died[40], err[1024];
    time_t now = time(NULL);
    struct tm tm;
    size_t el = 0;
    snprintf(dlq_subject, sizeof dlq_subject, "%s%s", YARD_SUBJ_DLQ_PREFIX, subject);
    snprintf(msg_id, sizeof msg_id, "%s.dead.%llu", job_id && *job_id ? job_id : "unreadable",
             (unsigned long long)stream_seq);
    snprintf(n, sizeof n, "%u", attempts);
    gmtime_r(&now, &tm);
    strftime(died, sizeof died, "%Y-%m-%dT%H:%M:%SZ", &tm);
    /* Header values may not hold line breaks. */
    for (const char *p = last_error ? last_error : ""; *p && el + 1 < sizeof err; p++)
        err[el++] = (*p == '\r' || *p == '\n') ? ' ' : *p;
    err[el] = '\0';
    yard_js_header_t hdrs[] = {{"Yard-Original-Subject", subject},
                               {"Yard-Attempts", n},
                               {"Yard-Last-Error", el ? err : "unknown"},
                               {"Yard-Died-At", died},
                               {"Yard-Job-Id", job_id && *job_id ? job_id : "unknown"}};
    yard_js_pub_t pub = {dlq_subject, msg_id, hdrs, sizeof hdrs / sizeof hdrs[0], data, len};
    int rc = yard_js_publish(NULL, wk->js, &pub, wk->cfg.js_publish_timeout_ms);
    if (rc < 0) {
        yard_log_ctx_t ctx = {NULL, job_id, NULL};
        YARD_LOG_ERROR(&ctx, "cannot publish the dead job to %s: %s", dlq_subject,
                       yard_strerror(rc));
    }
    return rc;
}

void wk_store_health(wk_t *wk, int rc)
{
    if (rc == 0) {
        atomic_store(&wk->store_failing_ms, 0);
        return;
    }
    int64_t none = 0;
    atomic_compare_exchange_strong(&wk->store_failing_ms, &none, wk_clock_ms());
}

int wk_store_ready(wk_t *wk)
{
    int64_t since = atomic_load(&wk->store_failing_ms);
    return since == 0 || wk_clock_ms() - since < wk->cfg.worker_unready_after_s * 1000;
}

void wk_event_actor(char *out, size_t cap, const wk_t *wk)
{
    snprintf(out, cap, "worker:%s@%s", wk->role, wk->worker_name);
}
