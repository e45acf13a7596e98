/*
 * yt_workers.c - workers, jobs over HTTP, PostgreSQL and JetStream for the
 * end-to-end tests (yt_workers.h).
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "config.h"
#include "err.h"
#include "yt_http.h"
#include "yt_workers.h"

#define YT_WORKER_WAIT_MS 20000
#define YT_WORKER_TRIES 3

static void yt_nap(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- workers ----------------------------------------------------------------- */

const char *yt_wait_status_text(int status)
{
    static char buf[64];
    if (WIFEXITED(status))
        snprintf(buf, sizeof buf, "exit %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, sizeof buf, "signal %d (%s)", WTERMSIG(status),
                 sigabbrev_np(WTERMSIG(status)) ? sigabbrev_np(WTERMSIG(status)) : "?");
    else
        snprintf(buf, sizeof buf, "wait status 0x%x", (unsigned)status);
    return buf;
}

void yt_worker_log_tail(const yt_env_t *env, const yt_worker_t *w)
{
    yt_log_tail(env, w->name);
}

static void yt_worker_forget(yt_env_t *env, yt_worker_t *w, int status)
{
    char path[400];
    w->status = status;
    w->pid = 0;
    snprintf(path, sizeof path, "%s/%s.pid", env->dir, w->name);
    unlink(path);
}

int yt_worker_exited(yt_env_t *env, yt_worker_t *w)
{
    int status;
    if (w->pid <= 0)
        return 1;
    pid_t r = waitpid(w->pid, &status, WNOHANG);
    if (r == w->pid) {
        yt_worker_forget(env, w, status);
        return 1;
    }
    if (r < 0 && errno == ECHILD) {
        yt_worker_forget(env, w, 0);
        return 1;
    }
    return 0;
}

int yt_worker_stop(yt_env_t *env, yt_worker_t *w, int sig, int timeout_ms)
{
    if (w->pid <= 0)
        return w->status;
    kill(w->pid, sig);
    long long deadline = yt_now_ms() + timeout_ms;
    do {
        if (yt_worker_exited(env, w))
            return w->status;
        yt_nap(5);
    } while (yt_now_ms() < deadline);
    return -1;
}

/* Picks the first unused worker-<role>-<n> name in env's folder. */
static void yt_worker_name(const yt_env_t *env, const char *role, char *name, size_t cap)
{
    char path[400];
    for (int n = 1; n < 1000; n++) {
        snprintf(name, cap, "worker-%s-%d", role, n);
        snprintf(path, sizeof path, "%s/%s.log", env->dir, name);
        if (access(path, F_OK) != 0)
            return;
    }
}

/* Waits for /readyz; returns 1 when ready, 0 if the worker exited, -1 at the
 * deadline. */
static int yt_worker_wait_ready(yt_env_t *env, yt_worker_t *w)
{
    long long deadline = yt_now_ms() + YT_WORKER_WAIT_MS;
    while (yt_now_ms() < deadline) {
        if (yt_worker_exited(env, w))
            return 0;
        yt_http_resp_t r;
        int st = yt_http_request(&r, w->metrics_port, "GET", "/readyz", NULL, NULL, 0);
        yt_http_resp_free(&r);
        if (st == 200)
            return 1;
        yt_nap(20);
    }
    return -1;
}

int yt_worker_start(yt_worker_t *w, yt_env_t *env, const char *role, const char *queues,
                    char *const extra_env[], unsigned flags)
{
    char bin[700], port[16], nats_var[300], pg_var[600];
    char *envs[64];
    size_t n = 0;
    memset(w, 0, sizeof *w);
    snprintf(bin, sizeof bin, "%s/yard-worker", yt_bin_dir());
    if (access(bin, X_OK) != 0) {
        fprintf(stderr, "yt_workers: expected the worker binary at %s (make all, or set "
                        "YARD_BIN)\n", bin);
        return -1;
    }
    snprintf(nats_var, sizeof nats_var, "YARD_NATS_URL=%s", env->nats_url);
    snprintf(pg_var, sizeof pg_var, "YARD_PG_DSN=%s", env->pg_dsn);
    envs[n++] = nats_var;
    envs[n++] = pg_var;
    for (size_t i = 0; extra_env && extra_env[i] && n < 63; i++)
        envs[n++] = extra_env[i];
    envs[n] = NULL;
    char *argv[] = {bin, "--role", (char *)role, "--metrics-port", port,
                    queues ? "--queues" : NULL, (char *)queues, NULL};

    for (int attempt = 0; attempt < YT_WORKER_TRIES; attempt++) {
        yt_worker_name(env, role, w->name, sizeof w->name);
        w->metrics_port = yt_free_port();
        snprintf(port, sizeof port, "%d", w->metrics_port);
        w->pid = yt_spawn(env, w->name, argv, envs);
        if (w->pid < 0) {
            w->pid = 0;
            return -1;
        }
        if (flags & YT_WORKER_NO_WAIT)
            return 0;
        int ready = yt_worker_wait_ready(env, w);
        if (ready == 1)
            return 0;
        if (ready < 0) {
            fprintf(stderr, "yt_workers: %s did not answer /readyz 200 on port %d within %d ms\n",
                    w->name, w->metrics_port, YT_WORKER_WAIT_MS);
            yt_worker_log_tail(env, w);
            yt_worker_stop(env, w, SIGKILL, 5000);
            return -1;
        }
        fprintf(stderr, "yt_workers: %s exited during start (%s)%s\n", w->name,
                yt_wait_status_text(w->status),
                attempt + 1 < YT_WORKER_TRIES ? "; retrying on another port" : "");
        yt_worker_log_tail(env, w);
    }
    return -1;
}

/* ---- the gateway and jobs over HTTP ----------------------------------------- */

pid_t yt_e2e_gateway_start(yt_env_t *env, int *port, char *const extra_env[])
{
    char *envs[64] = {"YARD_AUTH_DISABLED=true", "YARD_RATE_PER_S=10000000",
                      "YARD_RATE_BURST=10000000", "YARD_ID_SECRET=e2e-test-secret"};
    size_t n = 4;
    for (size_t i = 0; extra_env && extra_env[i] && n < 63; i++)
        envs[n++] = extra_env[i];
    envs[n] = NULL;
    return yt_gateway_start(env, port, envs);
}

static const char *const yt_json_ct[] = {"Content-Type: application/json", NULL};

/* Parses r's body as JSON; NULL when it is not. */
static json_t *yt_body(const yt_http_resp_t *r)
{
    return r->body ? json_loadb(r->body, r->body_len, 0, NULL) : NULL;
}

static void yt_copy_field(json_t *doc, const char *field, char *out, size_t cap)
{
    const char *s = json_string_value(json_object_get(doc, field));
    snprintf(out, cap, "%s", s ? s : "");
}

int yt_job_submit(int port, const char *body, char id[YT_JOB_ID_MAX])
{
    yt_http_resp_t r;
    int st = yt_http_request(&r, port, "POST", "/v1/jobs", yt_json_ct, body, strlen(body));
    id[0] = '\0';
    if (st == 202) {
        json_t *doc = yt_body(&r);
        yt_copy_field(doc, "id", id, YT_JOB_ID_MAX);
        json_decref(doc);
    } else {
        fprintf(stderr, "yt_workers: POST /v1/jobs %s: HTTP %d: %s\n", body, st,
                st > 0 ? yt_http_body_excerpt(&r) : "(no response)");
    }
    yt_http_resp_free(&r);
    return st;
}

int yt_job_submit_batch(int port, const char *body, char (*ids)[YT_JOB_ID_MAX], size_t max,
                        size_t *accepted)
{
    yt_http_resp_t r;
    int st = yt_http_request(&r, port, "POST", "/v1/jobs/batch", yt_json_ct, body, strlen(body));
    *accepted = 0;
    if (st == 202) {
        json_t *doc = yt_body(&r);
        json_t *results = json_object_get(doc, "results"), *item;
        size_t i;
        json_array_foreach(results, i, item) {
            const char *id = json_string_value(json_object_get(item, "id"));
            if (id && *accepted < max)
                snprintf(ids[(*accepted)++], YT_JOB_ID_MAX, "%s", id);
        }
        json_decref(doc);
    } else {
        fprintf(stderr, "yt_workers: POST /v1/jobs/batch: HTTP %d: %s\n", st,
                st > 0 ? yt_http_body_excerpt(&r) : "(no response)");
    }
    yt_http_resp_free(&r);
    return st;
}

int yt_job_status(int port, const char *id, char *status, size_t cap)
{
    char path[96];
    yt_http_resp_t r;
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    int st = yt_http_request(&r, port, "GET", path, NULL, NULL, 0);
    status[0] = '\0';
    if (st == 200) {
        json_t *doc = yt_body(&r);
        yt_copy_field(doc, "status", status, cap);
        json_decref(doc);
    }
    yt_http_resp_free(&r);
    return st;
}

int yt_job_wait_status(int port, const char *id, const char *want, int timeout_ms, char *got,
                       size_t cap)
{
    char status[32];
    long long deadline = yt_now_ms() + timeout_ms;
    for (;;) {
        int st = yt_job_status(port, id, status, sizeof status);
        if (st == 200 && strcmp(status, want) == 0) {
            snprintf(got, cap, "%s", status);
            return 0;
        }
        if (st == 200)
            snprintf(got, cap, "%s", status);
        else
            snprintf(got, cap, "HTTP %d", st);
        if (yt_now_ms() >= deadline)
            return -1;
        yt_nap(5);
    }
}

int yt_job_cancel(int port, const char *id, char *status, size_t cap)
{
    char path[96];
    yt_http_resp_t r;
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    int st = yt_http_request(&r, port, "DELETE", path, NULL, NULL, 0);
    status[0] = '\0';
    if (st > 0) {
        json_t *doc = yt_body(&r);
        yt_copy_field(doc, "status", status, cap);
        json_decref(doc);
    }
    yt_http_resp_free(&r);
    return st;
}

/* ---- PostgreSQL ---------------------------------------------------------------- */

/* Runs the formatted query; returns its result (tuples) or NULL, printed. */
static PGresult *yt_sql_vquery(yt_env_t *env, const char *fmt, va_list ap)
{
    char *sql = NULL;
    PGresult *res = NULL;
    if (vasprintf(&sql, fmt, ap) < 0)
        return NULL;
    PGconn *c = PQconnectdb(env->pg_dsn);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "yt_workers: connect to PostgreSQL: %s", PQerrorMessage(c));
    } else {
        res = PQexec(c, sql);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            fprintf(stderr, "yt_workers: query `%.200s`: %s", sql, PQerrorMessage(c));
            PQclear(res);
            res = NULL;
        }
    }
    PQfinish(c);
    free(sql);
    return res;
}

PGresult *yt_sql_query(yt_env_t *env, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    PGresult *res = yt_sql_vquery(env, fmt, ap);
    va_end(ap);
    return res;
}

static long long yt_sql_vint(yt_env_t *env, const char *fmt, va_list ap)
{
    PGresult *res = yt_sql_vquery(env, fmt, ap);
    long long v = -1;
    if (res) {
        v = PQntuples(res) > 0 && !PQgetisnull(res, 0, 0) ? strtoll(PQgetvalue(res, 0, 0), NULL, 10)
                                                         : 0;
        PQclear(res);
    }
    return v;
}

long long yt_sql_int(yt_env_t *env, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    long long v = yt_sql_vint(env, fmt, ap);
    va_end(ap);
    return v;
}

int yt_sql_text(yt_env_t *env, char *out, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    PGresult *res = yt_sql_vquery(env, fmt, ap);
    va_end(ap);
    out[0] = '\0';
    if (!res)
        return -1;
    int found = PQntuples(res) > 0;
    if (found)
        snprintf(out, cap, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return found;
}

long long yt_wait_sql(yt_env_t *env, long long expected, int timeout_ms, const char *fmt, ...)
{
    long long deadline = yt_now_ms() + timeout_ms, v;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        v = yt_sql_vint(env, fmt, ap);
        va_end(ap);
        if (v == expected || yt_now_ms() >= deadline)
            return v;
        yt_nap(50);
    }
}

char *yt_sql_id_array(char (*ids)[YT_JOB_ID_MAX], size_t n)
{
    size_t cap = n * YT_JOB_ID_MAX + 32, len = 0;
    char *s = malloc(cap);
    if (!s)
        return NULL;
    len += (size_t)snprintf(s, cap, "'{");
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(s + len, cap - len, "%s%s", i ? "," : "", ids[i]);
    snprintf(s + len, cap - len, "}'::uuid[]");
    return s;
}

/* ---- JetStream ------------------------------------------------------------------- */

int yt_js_open(yard_js_t **out, const yt_env_t *env)
{
    yard_config_t cfg;
    yard_config_defaults(&cfg);
    yard_config_set(&cfg, "nats_url", env->nats_url);
    yard_config_set(&cfg, "js_publish_timeout_ms", "5000");
    int rc = yard_js_connect(out, &cfg, "yt_workers");
    if (rc < 0)
        fprintf(stderr, "yt_workers: cannot connect to nats-server at %s: %s\n", env->nats_url,
                yard_strerror(rc));
    return rc;
}

const char *yt_js_header(const yard_js_msg_t *m, const char *name)
{
    const char *v = yard_js_msg_header(m, name);
    return v ? v : "";
}

int yt_js_find(yard_js_msg_t **out, yard_js_t *js, const char *stream, const char *subject,
               const char *header, const char *value)
{
    uint64_t first = 0, last = 0, msgs = 0;
    int src = yard_js_stream_state(&first, &last, &msgs, js, stream);
    if (src < 0) {
        fprintf(stderr, "yt_workers: stream %s info: %s\n", stream, yard_strerror(src));
        return src;
    }
    if (msgs == 0)
        return 0;
    for (uint64_t seq = first; seq <= last; seq++) {
        yard_js_msg_t *m = NULL;
        int rc = yard_js_get_msg(&m, js, stream, seq);
        if (rc == YARD_ENOTFOUND)
            continue; /* deleted, or acked away under interest retention */
        if (rc < 0)
            return rc;
        if ((!subject || strcmp(yard_js_msg_subject(m), subject) == 0) &&
            strcmp(yt_js_header(m, header), value) == 0) {
            *out = m;
            return 1;
        }
        yard_js_msg_destroy(m);
    }
    return 0;
}

/* ---- a whole cluster --------------------------------------------------- */

void yt_nap_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int yt_cluster_start(yt_cluster_t *c, char *const extra_env[])
{
    if (yt_env_create(&c->env, YT_NATS | YT_PG | YT_MIGRATE) != 0)
        return -1;
    c->gw = yt_e2e_gateway_start(c->env, &c->port, extra_env);
    if (c->gw < 0 || yt_js_open(&c->js, c->env) != 0)
        return -1;
    return yt_worker_start(&c->audit, c->env, "audit", NULL, extra_env, 0);
}

void yt_cluster_stop_worker(yt_cluster_t *c, yt_worker_t *w)
{
    if (w->pid > 0 && yt_worker_stop(c->env, w, SIGTERM, 40000) < 0)
        yt_worker_stop(c->env, w, SIGKILL, 5000);
}

void yt_cluster_stop(yt_cluster_t *c)
{
    yt_cluster_stop_worker(c, &c->sched);
    yt_cluster_stop_worker(c, &c->exec);
    yt_cluster_stop_worker(c, &c->audit);
    if (c->gw > 0 && yt_kill_wait(c->gw, SIGTERM, 10000) < 0)
        yt_kill_wait(c->gw, SIGKILL, 5000);
    yard_js_destroy(c->js, 1000);
    c->js = NULL;
    yt_env_destroy(c->env);
    c->env = NULL;
}

char *yt_batch_body(const char *job, int n)
{
    size_t jl = strlen(job), cap = sizeof "{\"jobs\":[]}" + (size_t)n * (jl + 1);
    char *body = malloc(cap);
    if (!body)
        return NULL;
    size_t len = (size_t)snprintf(body, cap, "{\"jobs\":[");
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(body + len, cap - len, "%s%s", i ? "," : "", job);
    snprintf(body + len, cap - len, "]}");
    return body;
}

/* ---- added for the lifecycle and restart tests ------------------------------ */

int yt_js_find_header(yard_js_t *js, const char *stream, const char *subject,
                      const char *header, const char *value, const char *want, char *out,
                      size_t cap)
{
    uint64_t first = 0, last = 0, count = 0;
    if (cap)
        out[0] = '\0';
    int rc = yard_js_stream_state(&first, &last, &count, js, stream);
    if (rc < 0) {
        fprintf(stderr, "yt_workers: stream %s state: %s\n", stream, yard_strerror(rc));
        return rc;
    }
    for (uint64_t seq = first; count > 0 && seq <= last; seq++) {
        yard_js_msg_t *m = NULL;
        rc = yard_js_get_msg(&m, js, stream, seq);
        if (rc == YARD_ENOTFOUND)
            continue; /* deleted, or acked away */
        if (rc < 0)
            return rc;
        const char *v = yard_js_msg_header(m, header);
        int match = (!subject || strcmp(yard_js_msg_subject(m), subject) == 0) && v &&
                    strcmp(v, value) == 0;
        if (match && cap && want) {
            const char *w = yard_js_msg_header(m, want);
            snprintf(out, cap, "%s", w ? w : "");
        }
        yard_js_msg_destroy(m);
        if (match)
            return 1;
    }
    return 0;
}

int yt_sql_exec(yt_env_t *env, const char *fmt, ...)
{
    char *sql = NULL;
    va_list ap;
    va_start(ap, fmt);
    int len = vasprintf(&sql, fmt, ap);
    va_end(ap);
    if (len < 0)
        return -1;
    int rc = -1;
    PGconn *c = PQconnectdb(env->pg_dsn);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "yt_workers: connect to PostgreSQL: %s", PQerrorMessage(c));
    } else {
        PGresult *res = PQexec(c, sql);
        ExecStatusType st = PQresultStatus(res);
        if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
            rc = 0;
        else
            fprintf(stderr, "yt_workers: statement `%.200s`: %s", sql, PQerrorMessage(c));
        PQclear(res);
    }
    PQfinish(c);
    free(sql);
    return rc;
}

int yt_sql_status_counts(yt_env_t *env, char (*ids)[YT_JOB_ID_MAX], size_t n, char *out,
                         size_t cap)
{
    char *arr = yt_sql_id_array(ids, n);
    if (!arr)
        return -1;
    int rc = yt_sql_text(env, out, cap,
                         "SELECT coalesce(string_agg(s || ':' || c, ',' ORDER BY s), '')"
                         " FROM (SELECT coalesce(j.status, 'missing') AS s, count(*) AS c"
                         " FROM unnest(%s) AS u(id) LEFT JOIN jobs j ON j.id = u.id"
                         " GROUP BY 1) t",
                         arr);
    free(arr);
    return rc < 0 ? -1 : 0;
}

void yt_rfc3339_in(char out[40], int ms_ahead)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long long ms = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + ms_ahead;
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(out, 40, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 40 - n, ".%03dZ", (int)(ms % 1000));
}
