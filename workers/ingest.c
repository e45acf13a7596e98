/*
 * ingest.c - the audit role's view of submissions: every accepted event
 * (EVENTS, consumer `submissions`, events.jobs.accepted) carries the
 * envelopes and JOBS sequences of jobs the gateway got acked together
 * (bus/accepted.h), and each becomes a `queued` (or `scheduled`) row in
 * PostgreSQL, batch by batch. So GET /v1/jobs/{id} shows a job
 * moments after its 202 even when no execute worker runs, the rescuer
 * knows every accepted job, and the gateway's accept path never writes to
 * PostgreSQL itself. Acks come after the commit.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "accepted.h"
#include "consume_loop.h"
#include "envelope.h"
#include "err.h"
#include "jobs.h"
#include "log.h"

#define INGEST_RETRY_MS 1000
#define INGEST_EVENTS_PER_FETCH 16

struct wk_runtime {
    wk_loop_t *loop;
};

/* Decodes and checks one accepted job into env; 0, or < 0 for one that is
 * not a recordable job (logged; skipped: the job, if any, is in JOBS, and
 * the execute role dead-letters what it cannot run). */
static int ingest_read(yard_envelope_t *env, const yard_accepted_t *job)
{
    char why[160];
    int rc = yard_env_decode(env, job->env, job->len);
    if (rc < 0) {
        YARD_LOG_WARN(NULL, "ingest: unreadable accepted job: %s; skipped", yard_strerror(rc));
        return rc;
    }
    char id[YARD_ENV_ID_LEN + 1] = "", trace[YARD_TRACE_ID_LEN + 1];
    memcpy(id, env->id.ptr, env->id.len);
    yard_log_ctx_t ctx = {NULL, id, yard_env_trace_id(trace, env->traceparent)};
    if ((rc = yard_jobs_check(env, why, sizeof why)) < 0)
        YARD_LOG_WARN(&ctx, "ingest: %s; skipped", why);
    else /* one line per job at debug: the audit role's part of its trace */
        YARD_LOG_DEBUG(&ctx, "ingest: job %.*s accepted as JOBS #%llu", (int)env->type.len,
                       env->type.ptr, (unsigned long long)job->seq);
    return rc;
}

/* The jobs of a fetched batch of accepted events, flattened. */
typedef struct {
    yard_envelope_t *envs;
    const yard_envelope_t **ptrs;
    uint64_t *seqs;
    size_t n, cap;
} ingest_jobs_t;

static int ingest_push(ingest_jobs_t *j, const yard_accepted_t *job)
{
    if (j->n == j->cap) {
        size_t cap = j->cap ? 2 * j->cap : 256;
        yard_envelope_t *e = realloc(j->envs, cap * sizeof *e);
        if (e)
            j->envs = e;
        uint64_t *q = e ? realloc(j->seqs, cap * sizeof *q) : NULL;
        if (q)
            j->seqs = q;
        if (!e || !q)
            return YARD_ENOMEM;
        j->cap = cap;
    }
    if (ingest_read(&j->envs[j->n], job) == 0)
        j->seqs[j->n++] = job->seq;
    return 0;
}

/* Reads every job of the n events into j. Returns 0 or YARD_ENOMEM. */
static int ingest_collect(ingest_jobs_t *j, yard_js_msg_t **msgs, int n)
{
    for (int i = 0; i < n; i++) {
        size_t len = 0;
        const void *data = yard_js_msg_data(msgs[i], &len);
        yard_accepted_reader_t r;
        yard_accepted_t job;
        uint32_t count = 0;
        int rc = yard_accepted_open(&r, data, len, &count);
        while (rc == 0 && (rc = yard_accepted_next(&r, &job)) == 1)
            rc = ingest_push(j, &job);
        if (rc == YARD_ENOMEM)
            return rc;
        if (rc < 0)
            YARD_LOG_WARN(NULL, "ingest: malformed accepted event (%s); the rest of it skipped",
                          yard_strerror(rc));
    }
    j->ptrs = calloc(j->n ? j->n : 1, sizeof *j->ptrs);
    for (size_t k = 0; j->ptrs && k < j->n; k++)
        j->ptrs[k] = &j->envs[k];
    return j->ptrs ? 0 : YARD_ENOMEM;
}

static void ingest_batch(wk_t *wk, PGconn *conn, yard_js_msg_t **msgs, int n, void *ud)
{
    ingest_jobs_t j = {0};
    int rc = ingest_collect(&j, msgs, n);
    if (rc == 0) {
        int64_t t0 = wk_clock_us();
        rc = j.n ? yard_jobs_ingest(conn, j.ptrs, j.seqs, j.n) : 0;
        /* A row PostgreSQL refuses must not hold back the others: one by
         * one, dropping (logged) what still fails. */
        if (rc == YARD_EPG) {
            rc = 0;
            for (size_t i = 0; i < j.n && rc != YARD_EUNAVAIL; i++) {
                int one = yard_jobs_ingest(conn, &j.ptrs[i], &j.seqs[i], 1);
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
        YARD_LOG_WARN(NULL, "ingest: cannot record %zu jobs (%s); retrying", j.n,
                      yard_strerror(rc));
        usleep(INGEST_RETRY_MS * 1000);
    }
    free(j.envs);
    free(j.ptrs);
    free(j.seqs);
}

int wk_ingest_start(wk_runtime_t **out, wk_t *wk)
{
    wk_runtime_t *rt = calloc(1, sizeof *rt);
    if (!rt)
        return YARD_ENOMEM;
    /* An event carries up to a thousand jobs (2 MiB): a few per fetch. */
    int rc = wk_loop_start(&rt->loop, wk, YARD_STREAM_EVENTS, YARD_CONSUMER_SUBMISSIONS,
                           INGEST_EVENTS_PER_FETCH, 1, ingest_batch, NULL);
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
