/*
 * schedule.c - the schedule role: holds delayed jobs (jobs.schedule) until
 * their run_at, then publishes them to jobs.execute.<queue>; runs the
 * rescuer (rescue.c), which republishes accepted jobs whose message JOBS no
 * longer holds; the pruner (retention.c), which deletes finished jobs
 * past retention; and the workflow releaser (workflow_release.c).
 *
 * A job not yet due is nak'ed with a delay (at most an hour at a time), so
 * JetStream keeps it and no state lives in the worker; any number of
 * schedule workers can run. A due job is republished with Nats-Msg-Id
 * "<id>.run" and acked only after the PubAck: a crash in between
 * republishes, and the duplicate window drops the copy. Its row moves from
 * scheduled to queued with the new message's sequence (release).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consume_loop.h"
#include "envelope.h"
#include "err.h"
#include "jobs.h"
#include "log.h"

#define SCHED_MAX_DELAY_MS (3600 * 1000)
#define SCHED_EARLY_MS 20     /* due when run_at is at most this far ahead */
#define SCHED_RETRY_MS 1000

struct wk_runtime {
    wk_loop_t *loop;
    wk_rescue_t *rescue;
    wk_retention_t *retention;
    wk_release_t *release; /* workflow steps (workflow_release.c) */
};

static void schedule_one(wk_t *wk, PGconn *conn, yard_js_msg_t *m)
{
    yard_envelope_t env;
    char subject[YARD_JS_NAME_MAX], durable[YARD_JS_NAME_MAX], msg_id[YARD_MSGID_MAX];
    char id[YARD_ENV_ID_LEN + 1] = "", queue[YARD_ENV_NAME_MAX + 1] = "";
    size_t len = 0;
    const void *data = yard_js_msg_data(m, &len);
    if (yard_env_decode(&env, data, len) < 0) {
        YARD_LOG_ERROR(NULL, "schedule: unreadable envelope; terminating the message");
        yard_js_term(m);
        return;
    }
    int64_t wait = env.run_at_ms - wk_wall_ms();
    if (wait > SCHED_EARLY_MS) {
        yard_js_nak(m, wait < SCHED_MAX_DELAY_MS ? wait : SCHED_MAX_DELAY_MS);
        return;
    }
    memcpy(id, env.id.ptr, env.id.len);
    memcpy(queue, env.queue.ptr, env.queue.len);
    yard_js_execute_names(durable, subject, queue);
    yard_js_msg_id(msg_id, YARD_MSGID_RUN, id, 0);
    const char *tp = yard_js_msg_header(m, YARD_HDR_TRACEPARENT);
    char trace[YARD_TRACE_ID_LEN + 1];
    yard_log_ctx_t ctx = {NULL, id, yard_env_trace_id(trace, env.traceparent)};
    yard_js_header_t hdr = {YARD_HDR_TRACEPARENT, tp ? tp : ""};
    yard_js_pub_t pub = {subject, msg_id, &hdr, tp ? 1 : 0, data, len};
    yard_js_puback_t ack;
    int64_t t0 = wk_clock_us();
    int rc = yard_js_publish(&ack, wk->js, &pub, wk->cfg.js_publish_timeout_ms);
    wk_time_add(wk, "jetstream", wk_clock_us() - t0);
    if (rc < 0) {
        YARD_LOG_WARN(&ctx, "schedule: cannot release the due job to %s (%s); retrying in %d ms",
                      subject, yard_strerror(rc), SCHED_RETRY_MS);
        yard_js_nak(m, SCHED_RETRY_MS);
        return;
    }
    YARD_LOG_INFO(&ctx, "schedule: job due; released to %s as JOBS #%llu", subject,
                  (unsigned long long)ack.seq);
    /* Best effort: the claim moves a scheduled row too, and the rescuer
     * finds a due job whose message is gone. */
    if (conn)
        wk_store_health(wk, yard_jobs_release(conn, id, ack.seq));
    yard_js_ack(m);
}

static void schedule_batch(wk_t *wk, PGconn *conn, yard_js_msg_t **msgs, int n, void *ud)
{
    for (int i = 0; i < n; i++)
        schedule_one(wk, conn, msgs[i]);
}

int wk_schedule_start(wk_runtime_t **out, wk_t *wk)
{
    wk_runtime_t *rt = calloc(1, sizeof *rt);
    if (!rt)
        return YARD_ENOMEM;
    int rc = wk_loop_start(&rt->loop, wk, YARD_STREAM_JOBS, YARD_CONSUMER_SCHEDULE,
                           (int)wk->cfg.worker_batch * 4, 1, schedule_batch, NULL);
    if (rc == 0 && (rc = wk_rescue_start(&rt->rescue, wk)) < 0) {
        atomic_store(&wk->stopping, 1);
        wk_loop_join(rt->loop);
    }
    if (rc == 0 && (rc = wk_retention_start(&rt->retention, wk)) < 0) {
        atomic_store(&wk->stopping, 1);
        wk_loop_join(rt->loop);
        wk_rescue_join(rt->rescue);
    }
    if (rc == 0 && (rc = wk_release_start(&rt->release, wk)) < 0) {
        atomic_store(&wk->stopping, 1);
        wk_loop_join(rt->loop);
        wk_rescue_join(rt->rescue);
        wk_retention_join(rt->retention);
    }
    if (rc < 0) {
        free(rt);
        return rc;
    }
    atomic_store(&wk->ready, 1);
    *out = rt;
    return 0;
}

void wk_schedule_join(wk_runtime_t *rt)
{
    if (!rt)
        return;
    wk_loop_join(rt->loop);
    wk_rescue_join(rt->rescue);
    wk_retention_join(rt->retention);
    wk_release_join(rt->release);
    free(rt);
}
