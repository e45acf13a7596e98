/*
 * ingest.c - the audit role's view of submissions: every job message in
 * JOBS (consumer `submissions`, jobs.>) becomes a `queued` (or `scheduled`)
 * row in PostgreSQL, batch by batch, so GET /v1/jobs/{id} shows a job
 * moments after its 202 even when no execute worker runs, and the gateway's
 * accept path never writes to PostgreSQL itself. Acks come after the commit.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "consume_loop.h"
#include "envelope.h"
#include "err.h"
#include "log.h"
#include "store.h"

struct wk_runtime {
    wk_loop_t *loop;
};

static void ingest_batch(wk_t *wk, PGconn *conn, natsMsg **msgs, int n, void *ud)
{
    yard_envelope_t *envs = calloc((size_t)n, sizeof *envs);
    const yard_envelope_t **ptrs = calloc((size_t)n, sizeof *ptrs);
    int *scheduled = calloc((size_t)n, sizeof *scheduled);
    size_t k = 0;
    if (!envs || !ptrs || !scheduled) {
        for (int i = 0; i < n; i++)
            yard_js_nak(msgs[i], 1000);
        goto out;
    }
    for (int i = 0; i < n; i++) {
        const char *subject = natsMsg_GetSubject(msgs[i]);
        int is_job = strncmp(subject, YARD_SUBJ_EXECUTE, sizeof YARD_SUBJ_EXECUTE - 1) == 0 ||
                     strcmp(subject, YARD_SUBJ_SCHEDULE) == 0;
        /* Webhook deliveries (jobs.notify) and unreadable envelopes are not
         * jobs to show; the execute role dead-letters unreadable ones. */
        if (!is_job || yard_env_decode(&envs[k], natsMsg_GetData(msgs[i]),
                                       (size_t)natsMsg_GetDataLength(msgs[i])) < 0)
            continue;
        scheduled[k] = strcmp(subject, YARD_SUBJ_SCHEDULE) == 0;
        ptrs[k] = &envs[k];
        k++;
    }
    int64_t t0 = wk_clock_us();
    int rc = k ? wk_store_ingest(conn, ptrs, scheduled, k) : 0;
    wk_time_add(wk, "postgres", wk_clock_us() - t0);
    for (int i = 0; i < n; i++) {
        if (rc == 0)
            yard_js_ack(msgs[i]);
        else
            yard_js_nak(msgs[i], 1000);
    }
    if (rc < 0) {
        YARD_LOG_WARN(NULL, "ingest: cannot record %zu jobs (%s); retrying", k,
                      yard_strerror(rc));
        sleep(1);
    }
out:
    free(envs);
    free(ptrs);
    free(scheduled);
}

int wk_ingest_start(wk_runtime_t **out, wk_t *wk)
{
    wk_runtime_t *rt = calloc(1, sizeof *rt);
    if (!rt)
        return YARD_ENOMEM;
    int rc = wk_loop_start(&rt->loop, wk, YARD_STREAM_JOBS, YARD_CONSUMER_SUBMISSIONS, 1,
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
