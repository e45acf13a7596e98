/*
 * rescue.c - the rescuer (wk.h): no job answered 202 is lost, even if JOBS
 * loses its message (a nats-server bug, a stream restored from an old
 * backup, an operator's purge).
 *
 * PostgreSQL knows every accepted job (the audit role records each accepted
 * event, with the JOBS sequence of its message; claims, releases, replays
 * and rescues update that sequence). A job that has not moved for
 * rescue_after_s while queued, due, running or failed is looked up in JOBS
 * by its sequence; only when JOBS no longer holds that message is the job
 * rebuilt from its row and republished (Nats-Msg-Id "<id>.rescue.<old seq>",
 * so two schedule replicas rescuing the same loss publish once). A message
 * still there (a long backlog, a retry waiting for its backoff, a long job)
 * is left alone, so the rescuer never doubles a job JOBS still holds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db.h"
#include "envelope.h"
#include "err.h"
#include "jobs.h"
#include "log.h"
#include "wk.h"

#define RESCUE_BATCH 500    /* stuck jobs looked at per pass */
#define RESCUE_TICK_MS 200  /* how often the thread checks for a stop */
#define RESCUE_PG_CONNECT_S 5 /* PostgreSQL connect timeout */

struct wk_rescue {
    wk_t *wk;
    pthread_t thread;
    PGconn *conn;
};

/* Nonzero when JOBS certainly no longer holds message seq of job id; zero
 * when it does, or when JetStream cannot tell now (try next pass). */
static int rescue_lost(wk_t *wk, const char *id, uint64_t seq)
{
    yard_js_msg_t *m = NULL;
    if (seq == 0)
        return 1;
    int rc = yard_js_get_msg(&m, wk->js, YARD_STREAM_JOBS, seq);
    if (rc == YARD_ENOTFOUND)
        return 1;
    if (rc < 0)
        return 0;
    /* The sequence may name another job's message if JOBS was recreated. */
    const char *msg_id = yard_js_msg_header(m, YARD_HDR_MSG_ID);
    int ours = msg_id && strncmp(msg_id, id, YARD_ENV_ID_LEN) == 0;
    yard_js_msg_destroy(m);
    return !ours;
}

/* Republishes one stuck job rebuilt from its row if its message is lost.
 * Returns 1 (republished), 0 (its message is still there) or an error. */
static int rescue_one(wk_rescue_t *r, const yard_job_stale_t *job)
{
    wk_t *wk = r->wk;
    const yard_envelope_t *env = &job->env;
    char id[YARD_ENV_ID_LEN + 1] = "", queue[YARD_ENV_NAME_MAX + 1] = "";
    char subject[YARD_JS_NAME_MAX], durable[YARD_JS_NAME_MAX], msg_id[YARD_MSGID_MAX];
    char tp[YARD_ENV_TP_MAX + 1] = "";
    /* Both come from a row whose CHECKs bound them; the bounds keep the
     * copies in their buffers whatever the row holds. */
    memcpy(id, env->id.ptr, env->id.len < YARD_ENV_ID_LEN ? env->id.len : YARD_ENV_ID_LEN);
    memcpy(queue, env->queue.ptr,
           env->queue.len <= YARD_ENV_NAME_MAX ? env->queue.len : YARD_ENV_NAME_MAX);
    if (env->traceparent.len <= YARD_ENV_TP_MAX)
        memcpy(tp, env->traceparent.ptr, env->traceparent.len);
    if (!rescue_lost(wk, id, job->seq))
        return 0;
    if (job->state == YARD_JOB_SCHEDULED)
        snprintf(subject, sizeof subject, "%s", YARD_SUBJ_SCHEDULE);
    else
        yard_js_execute_tier_names(durable, subject, queue, (int)env->priority);
    yard_js_msg_id(msg_id, YARD_MSGID_RESCUE, id, job->seq);
    size_t cap = yard_env_encoded_size_max(env), len = 0;
    char *buf = malloc(cap);
    int rc = buf ? yard_env_encode(env, buf, cap, &len) : YARD_ENOMEM;
    yard_js_puback_t ack = {0};
    yard_js_header_t hdr = {YARD_HDR_TRACEPARENT, tp};
    yard_js_pub_t pub = {subject, msg_id, &hdr, tp[0] ? 1 : 0, buf, len};
    if (rc == 0)
        rc = yard_js_publish(&ack, wk->js, &pub, wk->cfg.js_publish_timeout_ms);
    if (rc == 0) /* republished, even if recording it below fails */
        yard_metrics_counter_add(yard_metrics_counter_with(wk->m_rescued, queue, NULL), 1);
    free(buf);
    if (rc == 0)
        rc = yard_jobs_track(r->conn, id, job->seq, ack.seq);
    char trace[YARD_TRACE_ID_LEN + 1];
    yard_log_ctx_t ctx = {NULL, id, yard_env_trace_id(trace, env->traceparent)};
    if (rc < 0) {
        YARD_LOG_ERROR(&ctx, "rescue: cannot republish the %s job: %s",
                       yard_job_state_name(job->state), yard_strerror(rc));
        return rc;
    }
    YARD_LOG_WARN(&ctx,
                  "rescue: the %s job's message JOBS #%llu is gone; republished to %s as #%llu",
                  yard_job_state_name(job->state), (unsigned long long)job->seq, subject,
                  (unsigned long long)ack.seq);
    return 1;
}

static void rescue_pass(wk_rescue_t *r)
{
    wk_t *wk = r->wk;
    yard_jobs_stale_t stale = {0};
    if (yard_jobs_connect(&r->conn, wk->cfg.pg_dsn, RESCUE_PG_CONNECT_S, YARD_JOBS_DURABLE) < 0)
        return;
    if (yard_jobs_stale(&stale, r->conn, wk->cfg.rescue_after_s, RESCUE_BATCH) < 0)
        return;
    size_t rescued = 0;
    for (size_t i = 0; i < stale.n && !atomic_load(&wk->stopping); i++)
        rescued += rescue_one(r, &stale.rows[i]) == 1;
    if (stale.n)
        YARD_LOG_DEBUG(NULL, "rescue: %zu stuck jobs looked at, %zu republished", stale.n, rescued);
    yard_jobs_stale_free(&stale);
}

static void *rescue_main(void *arg)
{
    wk_rescue_t *r = arg;
    wk_t *wk = r->wk;
    int64_t next = wk_clock_ms() + wk->cfg.rescue_interval_s * 1000;
    while (!atomic_load(&wk->stopping)) {
        if (wk_clock_ms() < next) {
            usleep(RESCUE_TICK_MS * 1000);
            continue;
        }
        rescue_pass(r);
        next = wk_clock_ms() + wk->cfg.rescue_interval_s * 1000;
    }
    return NULL;
}

int wk_rescue_start(wk_rescue_t **out, wk_t *wk)
{
    wk_rescue_t *r = calloc(1, sizeof *r);
    if (!r)
        return YARD_ENOMEM;
    r->wk = wk;
    if (pthread_create(&r->thread, NULL, rescue_main, r) != 0) {
        free(r);
        YARD_LOG_ERROR(NULL, "rescue: cannot start its thread");
        return YARD_EIO;
    }
    *out = r;
    return 0;
}

void wk_rescue_join(wk_rescue_t *r)
{
    if (!r)
        return;
    pthread_join(r->thread, NULL);
    yard_db_close(r->conn);
    free(r);
}
