/*
 * schedule_cron.c - one pass of cron firings (schedule.h).
 *
 * Each due schedule is fired in its own transaction (schedules.h): lock it,
 * decide which fire time to fire (catch-up policy), record the firing,
 * write the job's row (queued, carrying schedule_name), publish the job to
 * its execute subject with its derived id as Nats-Msg-Id, advance
 * next_run_at, commit. A firing already recorded is never published again.
 *
 * Catch-up: a firing late by at most WK_CRON_GRACE_S fires (a busy or
 * briefly restarted role), and next_run_at moves to the firing after it
 * (which may be due too: it fires on the next pass). A firing missed by
 * more (the role was down): `skip` fires nothing and moves to the first
 * firing after now; `once` fires one job for the latest missed time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cron.h"
#include "envelope.h"
#include "err.h"
#include "id.h"
#include "jobs.h"
#include "log.h"
#include "schedule.h"
#include "schedules.h"

#define CRON_CATCH_UP_STEPS 100000 /* firings walked to find the latest missed one */

/* The latest firing of c at or before now_s, walking from fire_s (itself a
 * firing at or before now_s). */
static int64_t cron_latest(const yard_cron_t *c, const char *tz, int64_t fire_s, int64_t now_s)
{
    int64_t t = fire_s, next;
    for (int i = 0; i < CRON_CATCH_UP_STEPS; i++) {
        if (yard_cron_next(&next, c, tz, t) < 0 || next > now_s)
            break;
        t = next;
    }
    return t;
}

/* Writes the job of firing fire_s of d (id job_id) and publishes it.
 * Returns 0 or an error. */
static int cron_submit(wk_t *wk, PGconn *conn, const yard_schedule_due_t *d, const char *job_id)
{
    yard_envelope_t env;
    char subject[YARD_JS_NAME_MAX], durable[YARD_JS_NAME_MAX], queue[YARD_ENV_NAME_MAX + 1] = "";
    yard_env_init(&env);
    env.id = (yard_str_t){job_id, YARD_ID_TEXT_LEN};
    env.type = d->type;
    env.queue = d->queue;
    env.payload = d->payload;
    env.notify = d->notify;
    env.priority = d->priority;
    env.max_attempts = d->max_attempts ? d->max_attempts : (uint32_t)wk->cfg.job_max_attempts;
    env.timeout_s = d->timeout_s ? d->timeout_s : (uint32_t)wk->cfg.job_timeout_s;
    env.created_at_ms = wk_wall_ms();
    env.api_key_id = d->api_key_id;
    env.schedule = (yard_str_t){d->name, strlen(d->name)};
    char why[160];
    int rc = yard_jobs_check(&env, why, sizeof why);
    if (rc < 0 || !yard_name_valid(env.queue.ptr, env.queue.len) ||
        !yard_name_valid(env.type.ptr, env.type.len)) {
        YARD_LOG_ERROR(NULL, "schedule %s: its job template is invalid (%s); not fired", d->name,
                       rc < 0 ? why : "type or queue");
        return YARD_EINVAL;
    }
    const yard_envelope_t *envs[1] = {&env};
    if ((rc = yard_jobs_ingest(conn, envs, NULL, 1)) < 0)
        return rc;
    memcpy(queue, env.queue.ptr, env.queue.len);
    yard_js_execute_tier_names(durable, subject, queue, (int)env.priority);
    size_t cap = yard_env_encoded_size_max(&env), len = 0;
    char *buf = malloc(cap);
    rc = buf ? yard_env_encode(&env, buf, cap, &len) : YARD_ENOMEM;
    char msg_id[YARD_MSGID_MAX];
    yard_js_msg_id(msg_id, YARD_MSGID_JOB, job_id, 0);
    yard_js_pub_t pub = {subject, msg_id, NULL, 0, buf, len};
    yard_js_puback_t ack = {0};
    if (rc == 0)
        rc = yard_js_publish(&ack, wk->js, &pub, wk->cfg.js_publish_timeout_ms);
    free(buf);
    if (rc == 0)
        rc = yard_jobs_track(conn, job_id, 0, ack.seq);
    return rc;
}

/* Fires (or skips) one locked due schedule and commits. Returns 0 or an
 * error (rolled back: the schedule stays due). */
static int cron_fire(wk_t *wk, PGconn *conn, const yard_schedule_due_t *d)
{
    yard_cron_t c;
    char why[160];
    int64_t fire = d->fire_s, next = 0;
    yard_log_ctx_t ctx = {NULL, NULL, NULL};
    if (yard_cron_parse(&c, d->cron, why, sizeof why) < 0 || !yard_tz_valid(d->tz)) {
        /* Written by hand past the API's checks: park it, say so once. */
        YARD_LOG_ERROR(NULL, "schedule %s: cron `%s` or zone `%s` is invalid; it will not fire",
                       d->name, d->cron, d->tz);
        return yard_schedules_fire_commit(conn, d->name, 0, 0, NULL);
    }
    if (d->now_s - fire > WK_CRON_GRACE_S) {
        if (strcmp(d->catch_up, "once") == 0) {
            fire = cron_latest(&c, d->tz, fire, d->now_s);
        } else {
            YARD_LOG_INFO(NULL, "schedule %s: skipping the firings missed since %lld "
                                "(catch_up skip)", d->name, (long long)d->fire_s);
            fire = 0;
        }
    }
    int rc = yard_cron_next(&next, &c, d->tz, fire ? fire : d->now_s);
    if (rc == YARD_ENOTFOUND)
        next = 0;
    else if (rc < 0)
        return rc;
    if (!fire)
        return yard_schedules_fire_commit(conn, d->name, next, 0, NULL);
    yard_id_t id;
    char job_id[YARD_ID_TEXT_LEN + 1];
    yard_schedule_job_id(&id, d->name, fire);
    yard_id_format(&id, job_id);
    ctx.job_id = job_id;
    rc = yard_schedules_fire_record(conn, d->name, fire, job_id);
    if (rc == 1)
        rc = cron_submit(wk, conn, d, job_id);
    else if (rc == 0)
        YARD_LOG_INFO(&ctx, "schedule %s: firing %lld was recorded before; not again", d->name,
                      (long long)fire);
    if (rc < 0) {
        yard_schedules_abort(conn);
        return rc;
    }
    rc = yard_schedules_fire_commit(conn, d->name, next, fire, job_id);
    if (rc == 0)
        YARD_LOG_INFO(&ctx, "schedule %s: fired for %lld; next at %lld", d->name,
                      (long long)fire, (long long)next);
    return rc;
}

int wk_cron_pass(wk_t *wk, PGconn *conn)
{
    int n = 0;
    for (; n < WK_CRON_PASS_MAX && !atomic_load(&wk->stopping); n++) {
        yard_schedule_due_t d = {0};
        int rc = yard_schedules_due_begin(&d, conn, wk->cfg.schedule_clock_offset_s);
        if (rc <= 0)
            return rc < 0 ? rc : n;
        rc = cron_fire(wk, conn, &d);
        yard_schedules_due_clear(&d);
        if (rc < 0)
            return rc;
    }
    return n;
}
