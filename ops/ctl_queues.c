/*
 * ctl_queues.c - `yardctl queues`: per execute queue (js_queues), what
 * waits (the consumer's pending), what runs (ack pending), what is dead (DLQ
 * letters of the queue) and how long the oldest queued job has waited
 * (PostgreSQL). The same figures as GET /v1/queues and the yard_queue_*
 * metrics.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "db.h"
#include "err.h"
#include "jobs.h"
#include "js.h"
#include "log.h"

#define QUEUES_MAX 64
#define QUEUES_PG_CONNECT_S 10

const char ctl_queues_help[] =
    "usage: yardctl queues [--json]\n"
    "\n"
    "Prints, per execute queue of js_queues (YARD_JS_QUEUES): pending (not yet\n"
    "delivered to a worker), in flight (delivered, not yet acked), dead (letters\n"
    "in the DLQ), and the oldest pending job's wait in seconds (from\n"
    "PostgreSQL; '-' when it cannot be read).\n"
    "\n"
    "Exit status: 0 done; 1 failed (NATS unreachable, a queue's consumer\n"
    "missing); 2 bad arguments.\n";

int ctl_cmd_queues(const yard_config_t *cfg, int argc, char **argv)
{
    char bufs[QUEUES_MAX][YARD_QUEUE_NAME_MAX + 1];
    const char *names[QUEUES_MAX];
    uint64_t pending[QUEUES_MAX], inflight[QUEUES_MAX], dead[QUEUES_MAX];
    double ages[QUEUES_MAX];
    yard_js_t *js = NULL;
    PGconn *db = NULL;
    if (argc > 1)
        return ctl_usage_error("queues", "unexpected argument '%s'", argv[1]);
    int n = yard_js_parse_queues(cfg->js_queues, bufs, names, QUEUES_MAX);
    if (n < 0) {
        YARD_LOG_ERROR(NULL, "queues: js_queues '%s' is not a list of queue names",
                       cfg->js_queues);
        return CTL_EXIT_FAIL;
    }
    if (yard_js_connect(&js, cfg, "yardctl") < 0)
        return CTL_EXIT_FAIL;
    int rc = 0;
    for (int i = 0; rc == 0 && i < n; i++) {
        char durable[YARD_JS_NAME_MAX], subject[YARD_JS_NAME_MAX], dlq[YARD_JS_NAME_MAX + 8];
        yard_js_execute_names(durable, subject, names[i]);
        snprintf(dlq, sizeof dlq, "%s%s", YARD_SUBJ_DLQ_PREFIX, subject);
        rc = yard_js_consumer_depth(&pending[i], &inflight[i], js, YARD_STREAM_JOBS, durable);
        if (rc == 0)
            rc = yard_js_subject_count(&dead[i], js, YARD_STREAM_DLQ, dlq);
        if (rc < 0)
            YARD_LOG_ERROR(NULL, "queues: cannot read queue %s (consumer %s): %s", names[i],
                           durable, yard_strerror(rc));
    }
    yard_js_destroy(js, 1000);
    if (rc < 0)
        return CTL_EXIT_FAIL;
    /* The waits are a bonus: without PostgreSQL the depths still print. */
    int have_ages = yard_jobs_connect(&db, cfg->pg_dsn, QUEUES_PG_CONNECT_S,
                                      YARD_JOBS_DURABLE) == 0 &&
                    yard_jobs_queued_age(db, names, (size_t)n, ages) == 0;
    yard_db_close(db);
    if (ctl_out_json()) {
        json_t *arr = json_array();
        for (int i = 0; arr && i < n; i++)
            json_array_append_new(
                arr, json_pack("{s:s, s:I, s:I, s:I, s:o}", "name", names[i], "pending",
                               (json_int_t)pending[i], "in_flight", (json_int_t)inflight[i],
                               "dead", (json_int_t)dead[i], "oldest_pending_age_s",
                               have_ages ? json_real(ages[i]) : json_null()));
        return ctl_out_json_print(json_pack("{s:o*}", "queues", arr)) < 0 ? CTL_EXIT_FAIL
                                                                          : CTL_EXIT_OK;
    }
    static const char *const heads[] = {"QUEUE", "PENDING", "IN FLIGHT", "DEAD",
                                        "OLDEST PENDING"};
    ctl_table_t *t = ctl_table_new(heads, 5, 0);
    for (int i = 0; t && i < n; i++) {
        char p[24], f[24], d[24], a[32];
        snprintf(p, sizeof p, "%llu", (unsigned long long)pending[i]);
        snprintf(f, sizeof f, "%llu", (unsigned long long)inflight[i]);
        snprintf(d, sizeof d, "%llu", (unsigned long long)dead[i]);
        if (have_ages)
            snprintf(a, sizeof a, "%.0fs", ages[i]);
        else
            snprintf(a, sizeof a, "-");
        const char *row[5] = {names[i], p, f, d, a};
        ctl_table_add(t, row);
    }
    if (!t)
        return CTL_EXIT_FAIL;
    ctl_table_print(t, stdout);
    ctl_table_free(t);
    return CTL_EXIT_OK;
}
