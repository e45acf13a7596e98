/*
 * schedule.c - the schedule role: holds delayed jobs (jobs.schedule) until
 * their run_at, then publishes them to jobs.execute.<queue>.
 *
 * A job not yet due is nak'ed with a delay (at most an hour at a time), so
 * JetStream keeps it and no state lives in the worker; any number of
 * schedule workers can run. A due job is republished with Nats-Msg-Id
 * "<id>.run" (the plain id was used by its first publish, within the same
 * dedupe window) and acked only after the PubAck: a crash in between
 * republishes, and the dedupe window drops the copy.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consume_loop.h"
#include "envelope.h"
#include "err.h"
#include "log.h"

#define SCHED_MAX_DELAY_MS (3600 * 1000)

struct wk_runtime {
    wk_loop_t *loop;
};

static void schedule_one(wk_t *wk, natsMsg *m)
{
    yard_envelope_t env;
    char subject[YARD_JS_NAME_MAX], msg_id[YARD_ENV_ID_LEN + 8];
    if (yard_env_decode(&env, natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m)) < 0) {
        YARD_LOG_ERROR(NULL, "schedule: unreadable envelope; terminating the message");
        yard_js_term(m);
        return;
    }
    int64_t wait = env.run_at_ms - wk_wall_ms();
    if (wait > 20) {
        yard_js_nak(m, wait < SCHED_MAX_DELAY_MS ? wait : SCHED_MAX_DELAY_MS);
        return;
    }
    snprintf(subject, sizeof subject, "%s%.*s", YARD_SUBJ_EXECUTE, (int)env.queue.len,
             env.queue.ptr);
    snprintf(msg_id, sizeof msg_id, "%.*s.run", (int)env.id.len, env.id.ptr);
    const char *tp = NULL;
    natsMsgHeader_Get(m, "traceparent", &tp);
    yard_js_header_t hdr = {"traceparent", tp ? tp : ""};
    yard_js_pub_t pub = {subject, msg_id, &hdr, tp ? 1 : 0, natsMsg_GetData(m),
                         (size_t)natsMsg_GetDataLength(m)};
    int64_t t0 = wk_clock_us();
    int rc = yard_js_publish(NULL, wk->js, &pub, wk->cfg.js_publish_timeout_ms);
    wk_time_add(wk, "jetstream", wk_clock_us() - t0);
    if (rc == 0)
        yard_js_ack(m);
    else
        yard_js_nak(m, 1000);
}

static void schedule_batch(wk_t *wk, PGconn *conn, natsMsg **msgs, int n, void *ud)
{
    for (int i = 0; i < n; i++)
        schedule_one(wk, msgs[i]);
}

int wk_schedule_start(wk_runtime_t **out, wk_t *wk)
{
    wk_runtime_t *rt = calloc(1, sizeof *rt);
    if (!rt)
        return YARD_ENOMEM;
    int rc = wk_loop_start(&rt->loop, wk, YARD_STREAM_JOBS, YARD_CONSUMER_SCHEDULE, 0,
                           schedule_batch, NULL);
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
    free(rt);
}
