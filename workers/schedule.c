/*
 * schedule.c - the schedule role (schedule.h): delayed jobs, cron
 * schedules, the rescuer, the pruner (retention.c) and the workflow
 * releaser (workflow_release.c).
 *
 * A delayed job reaches jobs.schedule when the gateway accepts it. This
 * loop takes it off: it makes sure the job's row is `scheduled` in
 * PostgreSQL (yard_jobs_hold; the audit role may have written it first)
 * and acks the message. From then on PostgreSQL alone holds the job until
 * the due thread (schedule_due.c) publishes it to its execute subject at
 * its run_at. So a job may wait a year: nothing is redelivered meanwhile,
 * and no delivery counts toward the consumer's MaxDeliver (the earlier
 * design nak'ed the message with a delay of at most an hour, and a job
 * more than MaxDeliver hours ahead was dropped). Any number of schedule
 * workers can run: holding is idempotent, and the release locks rows.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consume_loop.h"
#include "envelope.h"
#include "err.h"
#include "jobs.h"
#include "log.h"
#include "schedule.h"

#define SCHED_RETRY_MS 1000 /* redelivery delay when PostgreSQL did not take a batch */

struct wk_runtime {
    wk_loop_t *loop;
    wk_due_t *due;
    wk_rescue_t *rescue;
    wk_retention_t *retention;
    wk_release_t *release; /* workflow steps (workflow_release.c) */
};

/* Holds one fetched batch in PostgreSQL, then acks it; an unreadable
 * envelope is terminated. When PostgreSQL fails, naks the batch. */
static void schedule_batch(wk_t *wk, PGconn *conn, yard_js_msg_t **msgs, int n, void *ud)
{
    yard_envelope_t *envs = calloc((size_t)(n ? n : 1), sizeof *envs);
    const yard_envelope_t **ptrs = calloc((size_t)(n ? n : 1), sizeof *ptrs);
    uint64_t *seqs = calloc((size_t)(n ? n : 1), sizeof *seqs);
    yard_js_msg_t **held = calloc((size_t)(n ? n : 1), sizeof *held);
    size_t k = 0;
    int rc = envs && ptrs && seqs && held ? 0 : YARD_ENOMEM;
    for (int i = 0; rc == 0 && i < n; i++) {
        size_t len = 0;
        const void *data = yard_js_msg_data(msgs[i], &len);
        char why[160];
        if (yard_env_decode(&envs[k], data, len) < 0 ||
            yard_jobs_check(&envs[k], why, sizeof why) < 0) {
            YARD_LOG_ERROR(NULL, "schedule: unreadable or invalid envelope; terminating it");
            yard_js_term(msgs[i]);
            continue;
        }
        if (envs[k].run_at_ms <= 0) /* due now: held all the same, released at once */
            envs[k].run_at_ms = wk_wall_ms();
        yard_js_msg_meta(msgs[i], &seqs[k], NULL);
        ptrs[k] = &envs[k];
        held[k++] = msgs[i];
    }
    if (rc == 0 && k > 0) {
        int64_t t0 = wk_clock_us();
        rc = conn ? yard_jobs_hold(conn, ptrs, seqs, k) : YARD_EUNAVAIL;
        wk_time_add(wk, "postgres", wk_clock_us() - t0);
        wk_store_health(wk, rc);
    }
    for (size_t i = 0; i < k; i++) {
        if (rc == 0)
            yard_js_ack(held[i]);
        else
            yard_js_nak(held[i], SCHED_RETRY_MS);
    }
    if (rc < 0)
        YARD_LOG_WARN(NULL, "schedule: cannot hold %zu delayed jobs (%s); retrying in %d ms", k,
                      yard_strerror(rc), SCHED_RETRY_MS);
    else if (k > 0)
        YARD_LOG_DEBUG(NULL, "schedule: holding %zu delayed jobs in PostgreSQL", k);
    free(envs);
    free(ptrs);
    free(seqs);
    free(held);
}

/* Joins the threads of rt that were started, then frees rt. */
static void schedule_join_all(wk_runtime_t *rt)
{
    if (rt->loop)
        wk_loop_join(rt->loop);
    if (rt->due)
        wk_due_join(rt->due);
    if (rt->rescue)
        wk_rescue_join(rt->rescue);
    if (rt->retention)
        wk_retention_join(rt->retention);
    if (rt->release)
        wk_release_join(rt->release);
    free(rt);
}

int wk_schedule_start(wk_runtime_t **out, wk_t *wk)
{
    wk_runtime_t *rt = calloc(1, sizeof *rt);
    if (!rt)
        return YARD_ENOMEM;
    int rc = wk_loop_start(&rt->loop, wk, YARD_STREAM_JOBS, YARD_CONSUMER_SCHEDULE,
                           (int)wk->cfg.worker_batch * 4, WK_LOOP_PG_DURABLE, schedule_batch,
                           NULL);
    if (rc == 0)
        rc = wk_due_start(&rt->due, wk);
    if (rc == 0)
        rc = wk_rescue_start(&rt->rescue, wk);
    if (rc == 0)
        rc = wk_retention_start(&rt->retention, wk);
    if (rc == 0)
        rc = wk_release_start(&rt->release, wk);
    if (rc < 0) {
        atomic_store(&wk->stopping, 1);
        schedule_join_all(rt);
        return rc;
    }
    atomic_store(&wk->ready, 1);
    *out = rt;
    return 0;
}

void wk_schedule_join(wk_runtime_t *rt)
{
    if (rt)
        schedule_join_all(rt);
}
