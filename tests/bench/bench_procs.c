/*
 * bench_procs.c - the programs `make bench` measures, started as a user gets
 * them: the gateway with auth on and its defaults, the workers with their
 * default concurrency, batch and log level; an API key made with yardctl;
 * and yard-load, the HTTP load generator (bench.h).
 */
#include <signal.h>
#include <sys/wait.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "config.h"
#include "js_info.h"
#include "js_internal.h"
#include "yt_http.h"

#define READY_WAIT_MS 30000
#define KEY_WAIT_MS 20000
#define STOP_WAIT_MS 20000

double bench_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

long long bench_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *bench_proc_stat(pid_t pid, char *buf, size_t cap)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, cap - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = '\0';
    /* The name is in parentheses and may hold spaces: fields follow the last ')'. */
    const char *p = strrchr(buf, ')');
    return p && p[1] == ' ' ? p + 2 : NULL;
}

/* Spawns name with argv and env, waits until port answers 200 on /readyz and
 * tracks it. Returns 0 or -1 (then it is stopped). */
static int program_start(bench_t *b, const char *base, char *const argv[], char *const env[],
                         int port)
{
    char name[32];
    snprintf(name, sizeof name, "%s%s", base, b->name_suffix ? b->name_suffix : "");
    pid_t pid = yt_spawn(b->env, name, argv, env);
    if (pid < 0)
        return -1;
    bench_mem_track(b, name, pid, 1, 0);
    long long deadline = yt_now_ms() + READY_WAIT_MS;
    while (yt_http_status(port, "/readyz") != 200) {
        if (yt_now_ms() > deadline) {
            fprintf(stderr, "bench: %s is not ready on port %d after %d s\n", name, port,
                    READY_WAIT_MS / 1000);
            yt_log_tail(b->env, name);
            return -1;
        }
        usleep(100 * 1000);
    }
    return 0;
}

/* Fills envs (cap entries) with the common settings, then extra. */
static void program_env(bench_t *b, char **envs, size_t cap, char *bufs[3], char *const extra[])
{
    size_t n = 0;
    envs[n++] = bufs[0];
    envs[n++] = bufs[1];
    if (bufs[2])
        envs[n++] = bufs[2];
    for (size_t i = 0; extra && extra[i] && n + 1 < cap; i++)
        envs[n++] = extra[i];
    envs[n] = NULL;
}

int bench_gateway_start(bench_t *b, char *const extra[])
{
    char nats[400], pg[600], port[40], bin[600], *envs[16], *bufs[3] = {nats, pg, port};
    snprintf(nats, sizeof nats, "YARD_NATS_URL=%s", b->nats_url);
    snprintf(pg, sizeof pg, "YARD_PG_DSN=%s", b->env->pg_dsn);
    snprintf(port, sizeof port, "YARD_HTTP_PORT=%d", b->gw_port);
    snprintf(bin, sizeof bin, "%s/yard-gateway", yt_bin_dir());
    program_env(b, envs, 16, bufs, extra);
    char *argv[] = {bin, NULL};
    return program_start(b, "gateway", argv, envs, b->gw_port);
}

int bench_workers_start(bench_t *b, char *const extra[])
{
    char nats[400], pg[600], bin[600], ep[16], ap[16], *envs[16], *bufs[3] = {nats, pg, NULL};
    snprintf(nats, sizeof nats, "YARD_NATS_URL=%s", b->nats_url);
    snprintf(pg, sizeof pg, "YARD_PG_DSN=%s", b->env->pg_dsn);
    snprintf(bin, sizeof bin, "%s/yard-worker", yt_bin_dir());
    snprintf(ep, sizeof ep, "%d", b->exec_port);
    snprintf(ap, sizeof ap, "%d", b->audit_port);
    program_env(b, envs, 16, bufs, extra);
    char *exec_argv[] = {bin, "--role", "execute", "--metrics-port", ep, NULL};
    char *audit_argv[] = {bin, "--role", "audit", "--metrics-port", ap, NULL};
    if (program_start(b, "worker-execute", exec_argv, envs, b->exec_port) != 0)
        return -1;
    return program_start(b, "worker-audit", audit_argv, envs, b->audit_port);
}

void bench_programs_stop(bench_t *b)
{
    for (int i = b->nprocs - 1; i >= 0; i--) {
        bench_proc_t *p = &b->procs[i];
        if (!p->owned || p->pid <= 0)
            continue;
        bench_mem_final(b, i);
        if (yt_kill_wait(p->pid, SIGTERM, STOP_WAIT_MS) < 0)
            yt_kill_wait(p->pid, SIGKILL, 5000);
        p->pid = 0;
    }
}

int bench_key_create(bench_t *b)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "YARD_PG_DSN='%s' YARD_NATS_URL='%s' YARD_CONFIG= '%s/yardctl' keys create "
             "--name bench --scopes submit,read --rate 10000000 --burst 10000000 --quiet "
             "2>>'%s/yardctl.log'",
             b->env->pg_dsn, b->nats_url, yt_bin_dir(), b->env->dir);
    FILE *p = popen(cmd, "r");
    char out[BENCH_KEY_MAX] = "";
    if (!p || !fgets(out, sizeof out, p)) {
        fprintf(stderr, "bench: yardctl keys create printed no key (see %s/yardctl.log)\n",
                b->env->dir);
        if (p)
            pclose(p);
        return -1;
    }
    int rc = pclose(p);
    out[strcspn(out, "\r\n")] = '\0';
    if (rc != 0 || strncmp(out, "yk_", 3) != 0) {
        fprintf(stderr, "bench: yardctl keys create: exit %d, printed \"%.40s\"\n", rc, out);
        return -1;
    }
    snprintf(b->api_key, sizeof b->api_key, "%s", out);
    return bench_key_wait(b);
}

int bench_key_wait(bench_t *b)
{
    char auth[BENCH_KEY_MAX + 32];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", b->api_key);
    const char *headers[] = {auth, NULL};
    long long deadline = yt_now_ms() + KEY_WAIT_MS;
    for (;;) {
        yt_http_resp_t r;
        int st = yt_http_request(&r, b->gw_port, "GET", "/v1/whoami", headers, NULL, 0);
        yt_http_resp_free(&r);
        if (st == 200)
            return 0;
        if (yt_now_ms() > deadline) {
            fprintf(stderr, "bench: the gateway did not accept the bench's key in %d s (last "
                            "answer %d)\n", KEY_WAIT_MS / 1000, st);
            yt_log_tail(b->env, "gateway");
            return -1;
        }
        usleep(100 * 1000);
    }
}

json_t *bench_popen_json(const char *cmd, int *exit_status)
{
    json_error_t err;
    char rest[4096];
    fflush(NULL);
    FILE *p = popen(cmd, "r");
    if (!p) {
        *exit_status = -1;
        return NULL;
    }
    json_t *doc = json_loadf(p, JSON_DISABLE_EOF_CHECK, &err);
    while (fread(rest, 1, sizeof rest, p) > 0)
        ;
    int st = pclose(p);
    *exit_status = st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return doc;
}

int bench_load(bench_t *b, const char *args, json_t **out)
{
    char cmd[4096], body_path[400];
    snprintf(body_path, sizeof body_path, "%s/bench-body.json", b->env->dir);
    if (yt_write_file(b->env, body_path, b->payload, 0644) != 0)
        return -1;
    snprintf(cmd, sizeof cmd,
             "%s/../build/bench/yard-load --json --api-key '%s' --body \"$(cat '%s')\" %s "
             "2>>'%s/yard-load.log'",
             yt_bin_dir(), b->api_key, body_path, args, b->env->dir);
    int rc;
    json_t *doc = bench_popen_json(cmd, &rc);
    if (!doc || rc != 0) {
        fprintf(stderr, "bench: yard-load %s: exit %d%s (see %s/yard-load.log)\n", args, rc,
                doc ? "" : ", no report", b->env->dir);
        json_decref(doc);
        return -1;
    }
    json_t *st = json_object_get(doc, "status");
    double bad = bench_jnum(doc, "status", "4xx") + bench_jnum(doc, "status", "5xx") +
                 bench_jnum(doc, "status", "errors") + bench_jnum(doc, "status", "timeouts");
    if (st && bad > 0)
        fprintf(stderr, "bench: yard-load %s: %.0f requests failed (4xx %.0f, 5xx %.0f, errors "
                        "%.0f, timeouts %.0f)\n", args, bad, bench_jnum(doc, "status", "4xx"),
                bench_jnum(doc, "status", "5xx"), bench_jnum(doc, "status", "errors"),
                bench_jnum(doc, "status", "timeouts"));
    *out = doc;
    return 0;
}

double bench_jnum(json_t *doc, const char *k1, const char *k2)
{
    json_t *v = json_object_get(doc, k1);
    if (k2)
        v = json_object_get(v, k2);
    return json_number_value(v);
}

/* A JetStream connection to nats_url named name, or NULL (said why, for
 * what the bench wanted it). */
static yard_js_t *bench_js_connect(const char *nats_url, const char *name, const char *what)
{
    yard_config_t cfg;
    yard_js_t *js = NULL;
    yard_config_defaults(&cfg);
    yard_config_set(&cfg, "nats_url", nats_url);
    if (yard_js_connect(&js, &cfg, name) != 0) {
        fprintf(stderr, "bench: cannot connect to %s %s\n", nats_url, what);
        return NULL;
    }
    return js;
}

void bench_streams_purge(const char *nats_url)
{
    yard_js_t *js = bench_js_connect(nats_url, "bench-purge", "to purge JOBS and EVENTS");
    if (!js)
        return;
    js_PurgeStream(yard_js_ctx(js), YARD_STREAM_JOBS, NULL, NULL);
    js_PurgeStream(yard_js_ctx(js), YARD_STREAM_EVENTS, NULL, NULL);
    yard_js_destroy(js, 1000);
}

/* Pending plus unacknowledged messages of every consumer, or -1. */
static long consumers_backlog(yard_js_t *js)
{
    json_t *info = NULL;
    if (yard_js_cluster_info(&info, js) != 0)
        return -1;
    long lag = 0;
    size_t i, j;
    json_t *st, *co;
    json_array_foreach(json_object_get(info, "streams"), i, st)
        json_array_foreach(json_object_get(st, "consumers"), j, co)
            lag += (long)json_integer_value(json_object_get(co, "lag"));
    json_decref(info);
    return lag;
}

long bench_wait_settled(const char *nats_url, int timeout_s)
{
    yard_js_t *js = bench_js_connect(nats_url, "bench-settle", "to see the consumers' backlog");
    if (!js)
        return -1;
    double t0 = bench_now_s();
    long lag = consumers_backlog(js), first = lag;
    while (lag > 0 && bench_now_s() - t0 < timeout_s) {
        struct timespec nap = {0, 200 * 1000 * 1000};
        nanosleep(&nap, NULL);
        lag = consumers_backlog(js);
    }
    yard_js_destroy(js, 1000);
    if (bench_now_s() - t0 >= 0.5)
        bench_progress("waited %.1f s for the workers to finish the last run's %ld messages%s",
                       bench_now_s() - t0, first, lag > 0 ? " (not all finished)" : "");
    return lag;
}

void bench_time_split(int port, double *pg, double *js, double *handler)
{
    char cmd[256], line[512];
    snprintf(cmd, sizeof cmd, "curl -fsS http://127.0.0.1:%d/metrics 2>/dev/null", port);
    FILE *p = popen(cmd, "r");
    *pg = *js = *handler = 0;
    while (p && fgets(line, sizeof line, p)) {
        if (strncmp(line, "yard_worker_busy_seconds_total{", 31) != 0 || !strrchr(line, ' '))
            continue;
        double v = atof(strrchr(line, ' ') + 1);
        if (strstr(line, "\"postgres\""))
            *pg += v;
        else if (strstr(line, "\"jetstream\""))
            *js += v;
        else if (strstr(line, "\"handler\""))
            *handler += v;
    }
    if (p)
        pclose(p);
}
