/*
 * yt_prom.h - a real Prometheus for tests, its HTTP API, and promtool.
 *
 * yt_prom_start writes a config into the test's folder (scrape and
 * evaluation every second, the scrape jobs and rule file the test names),
 * runs `prometheus` from PATH on a free loopback port with its PID in
 * <dir>/prometheus.pid (so tests/run.sh stops a leftover) and its log in
 * <dir>/prometheus.log, and waits until it is ready. The API calls block
 * (yt_http.h, 10 s per request) and explain a failure in a caller's
 * buffer; helpers that cannot fail return what they could learn.
 *
 * promtool is Debian's (the `prometheus` package, ops/install-deps.sh) or
 * the one $YARD_PROMTOOL names.
 */
#ifndef YARD_TEST_YT_PROM_H
#define YARD_TEST_YT_PROM_H

#include <stddef.h>
#include <sys/types.h>

#include <jansson.h>

#include "harness.h"

/* One Prometheus. Zero it before yt_prom_start. */
typedef struct {
    yt_env_t *env;  /* the test's environment (borrowed): its folder holds the files */
    pid_t pid;      /* 0 when not running */
    int port;       /* its HTTP port on 127.0.0.1 */
    json_t *names;  /* the metric names it knew at the last yt_prom_refresh_names, or NULL */
} yt_prom_t;

/* A scrape job: job_name and its targets, 127.0.0.1:<port> each. */
typedef struct {
    const char *job;
    const int *ports;
    size_t nports;
} yt_prom_job_t;

/* Writes <dir>/prometheus.yml with the njobs scrape jobs and the rule file
 * rules (an absolute path; NULL: none), then starts Prometheus (data in
 * <dir>/prometheus-data) and waits up to 30 s until /-/ready answers 200;
 * when it exits during start because its port was taken, tries again on
 * another (4 tries). Returns 0 with p filled (stop it with yt_prom_stop),
 * or -1 after printing why and the tail of its log (nothing left running). */
int yt_prom_start(yt_prom_t *p, yt_env_t *env, const char *rules, const yt_prom_job_t *jobs,
                  size_t njobs);

/* Stops Prometheus by PID (SIGTERM, then SIGKILL after 10 s), removes its
 * pid file and forgets the names. Safe on a yt_prom_t that never started
 * or was stopped already. */
void yt_prom_stop(yt_prom_t *p);

/* One call of the HTTP API: GET path (with its query string) when form is
 * NULL, else POST form (urlencoded). On an answer with status "success"
 * returns 0 and sets *out to its data member (a new reference: json_decref
 * it). Otherwise returns -1 with what came (HTTP status, errorType, error)
 * in why (cap bytes); *out is untouched. */
int yt_prom_api(json_t **out, const yt_prom_t *p, const char *path, const char *form,
                char *why, size_t cap);

/* An instant query of expr at the current time. Returns the number of
 * results (a scalar or a string counts as one; for 0 why says the result
 * was empty) and, when out is not NULL, sets *out to the data member (the
 * caller decrefs it, also for 0). Returns -1 with the answer in why (*out
 * untouched) when the query failed. */
int yt_prom_query(json_t **out, const yt_prom_t *p, const char *expr, char *why, size_t cap);

/* The value of the first sample of expr (an instant query), or -1 when it
 * fails or has no result. */
double yt_prom_value(const yt_prom_t *p, const char *expr);

/* The values of label (metric names for "__name__") among the series that
 * match match (NULL: all). A new array (json_decref it), or NULL after
 * printing why to stderr. */
json_t *yt_prom_label_values(const yt_prom_t *p, const char *label, const char *match);

/* The label names of the series of metric, from /api/v1/series, as a comma
 * set (yt_str.h: ",job,queue,") in out (cap bytes; names that do not fit
 * are left out). "," when it has no series or the call fails. */
void yt_prom_label_names(const yt_prom_t *p, const char *metric, char *out, size_t cap);

/* The values of label among the series an instant query of expr returns
 * (a series without it counts as ""), as a comma set in out (cap bytes).
 * "," when the query fails or is empty. */
void yt_prom_result_labels(const yt_prom_t *p, const char *expr, const char *label, char *out,
                           size_t cap);

/* Fetches the metric names Prometheus knows now into p->names. Returns 0,
 * or -1 (p->names kept) after printing why. */
int yt_prom_refresh_names(yt_prom_t *p);

/* Nonzero when name was among p->names (0 before the first refresh). */
int yt_prom_knows(const yt_prom_t *p, const char *name);

/* The metric names of expr's selectors (yt_promql.h) that p->names lacks,
 * ", "-separated, each once, in out (cap bytes; "" when all are known). */
void yt_prom_unknown_names(const yt_prom_t *p, const char *expr, char *out, size_t cap);

/* The selectors of expr that match no series now, "; "-separated, each
 * with the label names of its matchers that no series of its metric has
 * (" (no such label: a, b)"), in out (cap bytes; "" when every selector
 * has series). For a query whose metrics are all known but whose result is
 * empty: it tells which selector empties it. */
void yt_prom_empty_selectors(const yt_prom_t *p, const char *expr, char *out, size_t cap);

/* GETs /api/v1/rules until no rule's health is "unknown" any more (every
 * one has been evaluated) or wait_ms has passed, every 500 ms. Returns 0,
 * sets *out to the last data member ({"groups": [...]}; json_decref it)
 * and *total to its number of rules; or -1 with why (cap bytes) when a call
 * failed (*out and *total untouched). */
int yt_prom_rules(json_t **out, int *total, const yt_prom_t *p, int wait_ms, char *why,
                  size_t cap);

/* Runs promtool with args (NULL-terminated, at most 8) to completion, with
 * what it prints on stdout and stderr in out (NUL-terminated, cut to cap
 * bytes). Returns its exit status, 127 when it could not be started (out
 * says why), or -1 when a signal ended it or no pipe could be made. */
int yt_promtool(char *out, size_t cap, const char *const args[]);

#endif
