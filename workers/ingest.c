/*
 * ingest.c - the audit role's view of submissions: every accepted event
 * (EVENTS, consumer `submissions`, events.job.accepted) carries a job's
 * envelope and its JOBS sequence, and becomes a `queued` (or `scheduled`)
 * row in PostgreSQL, batch by batch. So GET /v1/jobs/{id} shows a job
 * moments after its 202 even when no execute worker runs, the rescuer
 * knows every accepted job, and the gateway's accept path never writes to
 * PostgreSQL itself. Acks come after the commit.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "consume_loop.h"
#include "envelope.h"
#include "err.h"
#include "jobs.h"
#include "log.h"

#define INGEST_RETRY_MS 1000

struct wk_runtime {
    wk_loop_t *loop;
};

/* Reads message m into env and *seq; 0, or < 0 for a message that is not a
 * recordable job (logged; it is acked and dropped: the job, if any, is in
 * JOBS, and the execute role dead-letters what it cannot run). */
static int ingest_read(yard_envelope_t *env, uint64_t *seq, yard_js_msg_t *m)
{
    size_t len = 0;
    const void *data = yard_js_msg_data(m, &len);
    const char *s = yard_js_msg_header(m, YARD_HDR_JOBS_SEQ);
    char why[160];
    int rc = yard_env_decode(env, data, len);
    if (rc < 0) {
        YARD_LOG_WARN(NULL, "ingest: unreadable accepted event: %s; skipped", yard_strerror(rc));
        return rc;
    }
    if ((rc = yard_jobs_check(env, why, sizeof why)) < 0) {
        char id[YARD_ENV_ID_LEN + 1] = "";
        memcpy(id, env->id.ptr, env->id.len);
        yard_log_ctx_t ctx = {NULL, id, NULL};
        YARD_LOG_WARN(&ctx, "ingest: %s; skipped", why);
        return rc;
    }
    *seq = s ? strtoull(s, NULL, 10) : 0;
    return 0;
}

static void ingest_batch(wk_t *wk, PGconn *conn, yard_js_msg_t **msgs, int n, void *ud)
{
    yard_envelope_t *envs = calloc((size_t)n, sizeof *envs);
    const yard_envelope_t **ptrs = calloc((size_t)n, sizeof *ptrs);
    uint64_t *seqs = calloc((size_t)n, sizeof *seqs);
    size_t k = 0;
    int rc = YARD_ENOMEM;
    if (envs && ptrs && seqs) {
        for (int i = 0; i < n; i++)
            if (ingest_read(&envs[k], &seqs[k], msgs[i]) == 0) {
                ptrs[k] = &envs[k];
                k++;
            }
        int64_t t0 = wk_clock_us();
        rc = k ? yard_jobs_ingest(conn, ptrs, seqs, k) : 0;
        /* A row PostgreSQL refuses must not hold back the others: one by
         * one, dropping (logged) what still fails. */
        if (rc == YARD_EPG) {
            rc = 0;
            for (size_t i = 0; i < k && rc != YARD_EUNAVAIL; i++) {
                int one = yard_jobs_ingest(conn, &ptrs[i], &seqs[i], 1);
                rc = one == YARD_EUNAVAIL ? one : 0;
            }
        }
        wk_store_health(wk, rc);
        wk_time_add(wk, "postgres", wk_clock_us() - t0);
    }
    for (int i = 0; i < n; i++) {
        if (rc == 0)
            yard_js_ack(msgs[i]);
        else
            yard_js_nak(msgs[i], INGEST_RETRY_MS);
    }
    if (rc < 0) {
        YARD_LOG_WARN(NULL, "ingest: cannot record %zu jobs (%s); retrying", k,
                      yard_strerror(rc));
        usleep(INGEST_RETRY_MS * 1000);
    }
    free(envs);
    free(ptrs);
    free(seqs);
}

int wk_ingest_start(wk_runtime_t **out, wk_t *wk)
{
    wk_runtime_t *rt = calloc(1, sizeof *rt);
    if (!rt)
        return YARD_ENOMEM;
    int rc = wk_loop_start(&rt->loop, wk, YARD_STREAM_EVENTS, YARD_CONSUMER_SUBMISSIONS, 1,
                           ingest_batch, NULL);
    if (rc < 0) {
        free(rt);
        return rc;
    }
    atomic_store(&wk->ready, 1);
    *out = rt;
    return 0;
}

void wk_ingest_join(wk_runtime_t *rt)
{
    if (!rt)
        return;
    wk_loop_join(rt->loop);
    free(rt);
}
