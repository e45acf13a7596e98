/*
 * yt_chaos.h - the chaos suite's producer and its one verdict.
 *
 * A scenario posts a known set of jobs through the gateway while it breaks
 * something, then asks PostgreSQL whether every job answered 202 finished
 * exactly once and nothing else appeared.
 *
 * The producer behaves as a careful client: every job has its own
 * idempotency key (`<run>-<n>`), jobs go in batches to /v1/jobs/batch, and a
 * batch that is refused (503), cut off (connection error) or partly failed
 * is sent again with the same keys until every job in it is answered 202
 * (the gateway maps a key to the same id, so a retry never makes a second
 * job). Threads share the work; the gateway's port may change between
 * attempts (yt_chaos_set_port), for a scenario that restarts it.
 */
#ifndef YARD_TEST_YT_CHAOS_H
#define YARD_TEST_YT_CHAOS_H

#include "harness.h"
#include "yt_workers.h"

typedef struct {
    int port;             /* the gateway */
    int njobs;            /* jobs to post */
    int batch;            /* jobs per request (1..1000) */
    int threads;          /* producer threads */
    int batches_per_s;    /* per thread; 0 = as fast as answers come */
    const char *job_json; /* one job object, e.g. {"type":"noop"} without idempotency_key */
    const char *run;      /* prefix of the idempotency keys */
} yt_chaos_load_t;

typedef struct yt_chaos yt_chaos_t;

/* Starts the producer threads. Returns 0 and sets *out, or -1. */
int yt_chaos_start(yt_chaos_t **out, const yt_chaos_load_t *cfg);

/* Points later requests at another gateway port. */
void yt_chaos_set_port(yt_chaos_t *c, int port);

/* Waits until every job is answered 202 or timeout_ms passes, then stops the
 * threads. Returns 0 when all were accepted, -1 otherwise. */
int yt_chaos_finish(yt_chaos_t *c, int timeout_ms);

/* Answers counted so far: jobs accepted, requests refused with 503, requests
 * that got no answer (connection refused or cut), other statuses. */
void yt_chaos_counts(yt_chaos_t *c, long *accepted, long *refused, long *no_answer, long *other);

/* Milliseconds (yt_now_ms clock) of the first 202 answered after t_ms, or
 * -1 if none yet. */
long long yt_chaos_first_ok_after(yt_chaos_t *c, long long t_ms);

/* The verdict. Waits up to timeout_ms for every accepted job to be
 * succeeded in PostgreSQL, then counts: lost (accepted, not succeeded),
 * duplicated (more than one succeeded attempt), extra (job rows nobody
 * was answered 202 for). Prints one line:
 *   chaos <scenario>: accepted N, completed N, lost N, duplicated N, extra N, recovery N ms
 * (recovery_ms < 0 prints "-"). Returns 0 if lost, duplicated and extra are
 * all 0 and every job was accepted, else -1 (after printing a few ids). */
int yt_chaos_verdict(yt_chaos_t *c, yt_env_t *env, const char *scenario, long long recovery_ms,
                     int timeout_ms);

/* Prints, for a failed verdict, how many messages JOBS still holds and the
 * pending and ack-pending counts of its consumer execute_default: messages
 * held but neither pending nor awaiting an ack are out of deliveries
 * (MaxDeliver), stranded. Prints nothing when JetStream does not answer. */
void yt_chaos_show_stranded(yard_js_t *js, const char *scenario);

/* The environment every scenario gives its programs: an ack wait of 5 s,
 * so the jobs of a killed worker come back fast. NULL-terminated. */
extern char *const yt_chaos_env[];

/* Starts what every scenario runs: servers, gateway and audit role
 * (yt_cluster_start) and, unless without_worker, an execute worker; all with
 * yt_chaos_env. Returns 0 or -1. */
int yt_chaos_cluster_start(yt_cluster_t *c, int without_worker);

/* Frees c (yt_chaos_finish first). */
void yt_chaos_free(yt_chaos_t *c);

#endif
