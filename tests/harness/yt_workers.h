/*
 * yt_workers.h - helpers for end-to-end tests of the workers.
 *
 * They drive the real programs: bin/yard-worker processes started in the
 * test's folder (one log and one pid file each, so tests/run.sh stops a
 * leftover), the gateway through its HTTP API (yt_http.h), PostgreSQL
 * through libpq (a new connection per call: simple, and fast enough for
 * polling every few tens of milliseconds), and JetStream through libyard's
 * js.h. Every helper prints why it failed to stderr, so a test's failure
 * message can stay short and say what it expected and what came.
 */
#ifndef YARD_TEST_YT_WORKERS_H
#define YARD_TEST_YT_WORKERS_H

#include <stddef.h>
#include <sys/types.h>

#include <libpq-fe.h>

#include "harness.h"
#include "js.h"

/* Room for a job id (UUID text) and its NUL. */
#define YT_JOB_ID_MAX 40

/* ---- workers ------------------------------------------------------------- */

enum {
    YT_WORKER_NO_WAIT = 1, /* yt_worker_start returns once spawned (no /readyz wait) */
};

/* One worker process. */
typedef struct {
    pid_t pid;        /* 0 once it has been reaped */
    int status;       /* its wait status once reaped */
    int metrics_port; /* its --metrics-port (/healthz, /readyz, /metrics) */
    char name[48];    /* worker-<role>-<n>: <dir>/<name>.log and <name>.pid */
} yt_worker_t;

/* Starts <yt_bin_dir()>/yard-worker --role role [--queues queues]
 * --metrics-port <free port> with YARD_NATS_URL and YARD_PG_DSN of env, then
 * extra_env ("K=V", NULL-terminated, may be NULL; later entries win). Unless
 * flags holds YT_WORKER_NO_WAIT, waits up to 20 s for GET /readyz to answer
 * 200 (retrying on another port if the worker exits during start). Returns 0
 * and fills *w, or -1 after printing why and the tail of the worker's log. */
int yt_worker_start(yt_worker_t *w, yt_env_t *env, const char *role, const char *queues,
                    char *const extra_env[], unsigned flags);

/* Sends sig to the worker and waits up to timeout_ms for it to exit. Returns
 * its wait status (also kept in w->status; the pid file is removed), or -1
 * if it is still running. A worker already reaped returns w->status. */
int yt_worker_stop(yt_env_t *env, yt_worker_t *w, int sig, int timeout_ms);

/* Nonzero once the worker has exited (it is then reaped: w->pid is 0 and
 * w->status holds its wait status); 0 while it runs. Never blocks. */
int yt_worker_exited(yt_env_t *env, yt_worker_t *w);

/* Prints the last bytes of the worker's log to stderr. */
void yt_worker_log_tail(const yt_env_t *env, const yt_worker_t *w);

/* Describes a wait status ("exit 0", "signal 6 (ABRT)") in a static buffer. */
const char *yt_wait_status_text(int status);

/* ---- the gateway --------------------------------------------------------- */

/* yt_gateway_start (yt_http.h) with auth disabled and rate limits out of the
 * way, then extra_env. Returns the pid and sets *port, or -1. */
pid_t yt_e2e_gateway_start(yt_env_t *env, int *port, char *const extra_env[]);

/* What an end-to-end test runs: the servers, a gateway with auth off, the
 * audit role (so jobs show as queued), a JetStream connection for checks,
 * and room for the workers a test starts itself. */
typedef struct {
    yt_env_t *env;
    pid_t gw;
    int port;
    yt_worker_t audit, exec, sched;
    yard_js_t *js;
} yt_cluster_t;

/* Starts nats-server, PostgreSQL (migrated), the gateway and the audit
 * worker; extra_env (may be NULL) goes to both programs. Returns 0, or -1
 * after printing why (yt_cluster_stop cleans up either way). */
int yt_cluster_start(yt_cluster_t *c, char *const extra_env[]);

/* Stops whatever of c runs (workers with SIGTERM, then SIGKILL), closes the
 * JetStream connection and removes the servers. */
void yt_cluster_stop(yt_cluster_t *c);

/* Stops w if it runs: SIGTERM, then SIGKILL after 40 s. */
void yt_cluster_stop_worker(yt_cluster_t *c, yt_worker_t *w);

/* A batch body {"jobs":[job,job,...]} with n copies of job; malloc'd (free
 * it), or NULL when out of memory. */
char *yt_batch_body(const char *job, int n);

/* Sleeps ms milliseconds. */
void yt_nap_ms(int ms);

/* POSTs body (a job object) to /v1/jobs. On 202 copies the job's id into id.
 * Returns the HTTP status, or a negative YT_HTTP_* code. */
int yt_job_submit(int port, const char *body, char id[YT_JOB_ID_MAX]);

/* POSTs body ({"jobs":[...]}) to /v1/jobs/batch. On 202 copies the id of
 * each accepted job, in order, into ids (at most max) and sets *accepted.
 * Returns the HTTP status, or a negative YT_HTTP_* code. */
int yt_job_submit_batch(int port, const char *body, char (*ids)[YT_JOB_ID_MAX], size_t max,
                        size_t *accepted);

/* GETs /v1/jobs/{id}. On 200 copies the job's status into status (cap
 * bytes); otherwise status is "". Returns the HTTP status or < 0. */
int yt_job_status(int port, const char *id, char *status, size_t cap);

/* Polls GET /v1/jobs/{id} every 5 ms until it answers 200 with status want.
 * Returns 0, or -1 at timeout_ms with the last answer in got ("HTTP 404",
 * "running", ...; cap bytes). */
int yt_job_wait_status(int port, const char *id, const char *want, int timeout_ms, char *got,
                       size_t cap);

/* DELETEs /v1/jobs/{id}. Copies the status field of the answer (or "") into
 * status. Returns the HTTP status or < 0. */
int yt_job_cancel(int port, const char *id, char *status, size_t cap);

/* ---- PostgreSQL ---------------------------------------------------------- */

/* Runs the query (printf format) on env's database and returns the first
 * column of its first row as an integer (a missing row or NULL is 0), or -1
 * after printing the error. */
long long yt_sql_int(yt_env_t *env, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Like yt_sql_int, but copies the first column as text into out (cap
 * bytes). Returns 1 for a row, 0 for none (out ""), -1 on error. */
int yt_sql_text(yt_env_t *env, char *out, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Runs the query and returns its rows (free with PQclear), or NULL after
 * printing the error. */
PGresult *yt_sql_query(yt_env_t *env, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Polls yt_sql_int(query) every 50 ms until it returns expected. Returns
 * expected, or at timeout_ms the last value seen. */
long long yt_wait_sql(yt_env_t *env, long long expected, int timeout_ms, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Formats n job ids as an SQL array literal: '{id,id,...}'::uuid[]. Returns
 * a malloc'd string (free it), or NULL. */
char *yt_sql_id_array(char (*ids)[YT_JOB_ID_MAX], size_t n);

/* ---- JetStream ----------------------------------------------------------- */

/* Connects to env's nats-server. Returns 0 and sets *out (yard_js_destroy),
 * or < 0 after printing why. */
int yt_js_open(yard_js_t **out, const yt_env_t *env);

/* Looks through every message of stream (on subject when not NULL) for one
 * whose header name has value. Returns 1 and sets *out (yard_js_msg_destroy)
 * for the first found, 0 when there is none, < 0 on error. Reads the
 * messages one by one: meant for streams of a few hundred messages. */
int yt_js_find(yard_js_msg_t **out, yard_js_t *js, const char *stream, const char *subject,
               const char *header, const char *value);

/* The value of header name of m (may be NULL), or "" (never NULL; owned by m). */
const char *yt_js_header(const yard_js_msg_t *m, const char *name);

/* ---- added for the lifecycle and restart tests -------------------------- */

/* Looks through every message of stream (on subject when not NULL) for one
 * whose header name has value, like yt_js_find, and copies the value of its
 * header want (may be NULL) into out (cap bytes, may be 0; "" when it has
 * none). Returns 1 when a message was found, 0 when none, < 0 on error
 * (printed). Reads the messages one by one: for streams of a few thousand. */
int yt_js_find_header(yard_js_t *js, const char *stream, const char *subject,
                      const char *header, const char *value, const char *want, char *out,
                      size_t cap);

/* Runs a statement that returns no rows (ALTER, UPDATE, ...; printf format)
 * on env's database. Returns 0, or -1 after printing the error. */
int yt_sql_exec(yt_env_t *env, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Writes how many of the n jobs ids are in each status, e.g.
 * "running:2,succeeded:18", with "missing:N" for ids that have no row, into
 * out (cap bytes). Returns 0, or -1 after printing the error. */
int yt_sql_status_counts(yt_env_t *env, char (*ids)[YT_JOB_ID_MAX], size_t n, char *out,
                         size_t cap);

/* Writes the wall-clock time ms_ahead milliseconds from now as RFC 3339
 * UTC with milliseconds ("2026-01-02T03:04:05.678Z"), for run_at fields. */
void yt_rfc3339_in(char out[40], int ms_ahead);

#endif
