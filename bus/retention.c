/*
 * retention.c - deleting finished jobs past their retention (retention.h).
 */
#include <stdio.h>
#include <stdlib.h>

#include "db.h"
#include "err.h"
#include "log.h"
#include "retention.h"

/* The finished rows before $1 (Unix ms); kept in step with
 * jobs_finished_at_idx's predicate so the planner uses it. */
#define RETENTION_FINISHED                                                                    \
    "status IN ('succeeded', 'dead', 'cancelled')"                                            \
    " AND finished_at < to_timestamp($1::bigint / 1000.0)"

int yard_retention_preview(yard_retention_preview_t *out, PGconn *c, int64_t cutoff_ms)
{
    static const char sql[] =
        "SELECT count(*), coalesce(sum((SELECT count(*) FROM job_attempts a"
        " WHERE a.job_id = j.id)), 0),"
        " coalesce((extract(epoch FROM min(finished_at)) * 1000)::bigint, 0)"
        " FROM jobs j WHERE " RETENTION_FINISHED;
    char cutoff[24];
    PGresult *res = NULL;
    snprintf(cutoff, sizeof cutoff, "%lld", (long long)cutoff_ms);
    const char *params[1] = {cutoff};
    int rc = yard_db_query(&res, c, "retention: preview", sql, 1, params);
    if (rc < 0)
        return rc;
    out->jobs = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    out->attempts = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    out->oldest_ms = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
    PQclear(res);
    return 0;
}

int yard_retention_prune(int64_t *deleted, PGconn *c, int64_t cutoff_ms, int batch,
                         int max_batches)
{
    static const char sql[] =
        "WITH doomed AS (SELECT id FROM jobs WHERE " RETENTION_FINISHED
        " ORDER BY finished_at LIMIT $2::int FOR UPDATE SKIP LOCKED),"
        " gone AS (DELETE FROM jobs j USING doomed d WHERE j.id = d.id RETURNING j.id),"
        /* No foreign key cascades (0015_hot_path): the attempts go here. */
        " tried AS (DELETE FROM job_attempts a USING gone g WHERE a.job_id = g.id)"
        " SELECT count(*) FROM gone";
    char cutoff[24], lim[16];
    int rc = 0;
    *deleted = 0;
    if (batch < 1)
        batch = YARD_RETENTION_BATCH_DEFAULT;
    snprintf(cutoff, sizeof cutoff, "%lld", (long long)cutoff_ms);
    snprintf(lim, sizeof lim, "%d", batch);
    const char *params[2] = {cutoff, lim};
    for (int b = 0; max_batches <= 0 || b < max_batches; b++) {
        PGresult *res = NULL;
        /* Autocommit: each batch is its own transaction. */
        rc = yard_db_query(&res, c, "retention: delete a batch", sql, 2, params);
        if (rc < 0)
            break;
        long long n = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        PQclear(res);
        *deleted += n;
        if (n < batch)
            break;
    }
    return rc;
}
