/*
 * main.c - yard-worker: one role (execute, schedule or audit), its health and
 * metrics port, and a graceful drain on SIGTERM.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "err.h"
#include "http_health.h"
#include "http_router.h"
#include "http_server.h"
#include "log.h"
#include "wk.h"

typedef struct {
    int (*start)(wk_runtime_t **out, wk_t *wk);
    void (*join)(wk_runtime_t *rt);
} role_ops_t;

typedef struct {
    wk_t wk;
    role_ops_t ops;
    wk_runtime_t *rt;
    uv_loop_t *loop;
    yard_http_server_t *http;
    yard_http_router_t *router;
    yard_http_health_t health;
    uv_signal_t sig_term, sig_int;
    uv_async_t joined;
    pthread_t stopper;
    int stopper_started;
} app_t;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: yard-worker --role ROLE [--queues a,b] [--metrics-port N] [--config FILE]\n"
            "\n"
            "Roles:\n"
            "  execute   run the jobs of the queues (default: setting js_queues): fetch in\n"
            "            batches, run handlers (noop, echo, sleep, fail, http, exec mappings),\n"
            "            record every attempt in PostgreSQL, retry with backoff, dead-letter\n"
            "  schedule  hold jobs with a future run_at and release them when due\n"
            "  audit     record every submitted job as queued in PostgreSQL\n"
            "\n"
            "Options:\n"
            "  --queues a,b        execute: the queues to serve\n"
            "  --metrics-port N    port of /healthz, /readyz, /metrics (0: any free port,\n"
            "                      printed in the log; default 0)\n"
            "  --config FILE       settings file (`key = value`); YARD_* variables win\n"
            "  --print-config      print every setting (secrets masked) and exit\n"
            "\n"
            "Settings that matter here: YARD_NATS_URL, YARD_PG_DSN, YARD_WORKER_CONCURRENCY\n"
            "(16), YARD_WORKER_BATCH (64), YARD_WORKER_DRAIN_TIMEOUT_S (30),\n"
            "YARD_RETRY_BASE_MS (1000), YARD_RETRY_CAP_MS (300000), YARD_EXEC_CONFIG.\n"
            "\n"
            "SIGTERM: stop fetching, let running jobs finish (drain timeout), hand the\n"
            "rest back to JetStream at once, exit 0.\n");
}

static int worker_ready(void *ud, char *body, size_t cap)
{
    wk_t *wk = ud;
    int ready = atomic_load(&wk->ready) && yard_js_connected(wk->js) &&
                !atomic_load(&wk->stopping);
    snprintf(body, cap, "{\"status\":\"%s\",\"role\":\"%s\"}", ready ? "ready" : "not_ready",
             wk->role);
    return ready;
}

static int metrics_init(wk_t *wk)
{
    static const double secs[] = {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300};
    int rc = yard_metrics_create(&wk->metrics);
    if (rc == 0)
        rc = yard_metrics_counter_family(&wk->m_completed, wk->metrics,
                                         "yard_jobs_completed_total",
                                         "Job attempts finished, by queue, type and outcome.",
                                         (const char *const[]){"queue", "type", "outcome", NULL});
    if (rc == 0)
        rc = yard_metrics_histogram_family(&wk->m_duration, wk->metrics,
                                           "yard_job_duration_seconds",
                                           "Handler run time of one attempt, by queue.",
                                           (const char *const[]){"queue", NULL}, secs,
                                           sizeof secs / sizeof secs[0]);
    if (rc == 0)
        rc = yard_metrics_histogram_family(
            &wk->m_latency, wk->metrics, "yard_job_end_to_end_seconds",
            "From submission to the final outcome, by queue.", (const char *const[]){"queue", NULL},
            secs, sizeof secs / sizeof secs[0]);
    if (rc == 0)
        rc = yard_metrics_counter_family(&wk->m_time, wk->metrics,
                                         "yard_worker_busy_microseconds_total",
                                         "Time spent by part: postgres, jetstream, handler.",
                                         (const char *const[]){"role", "part", NULL});
    if (rc == 0)
        rc = yard_metrics_counter_family(&wk->m_dlq, wk->metrics, "yard_dlq_published_total",
                                         "Jobs moved to the dead-letter stream, by queue.",
                                         (const char *const[]){"queue", NULL});
    yard_metrics_family_t *inflight = NULL;
    if (rc == 0)
        rc = yard_metrics_gauge_family(&inflight, wk->metrics, "yard_worker_jobs_in_flight",
                                       "Jobs fetched and not yet acknowledged, by role.",
                                       (const char *const[]){"role", NULL});
    if (rc == 0)
        wk->m_in_flight = yard_metrics_gauge_with(inflight, wk->role, NULL);
    if (rc == 0)
        rc = yard_metrics_register_process(wk->metrics);
    return rc;
}

static void on_joined(uv_async_t *a)
{
    app_t *app = a->data;
    yard_http_server_shutdown(app->http, NULL, NULL);
    uv_close((uv_handle_t *)&app->sig_term, NULL);
    uv_close((uv_handle_t *)&app->sig_int, NULL);
    uv_close((uv_handle_t *)&app->joined, NULL);
}

/* Runs the role's drain off the loop, so /healthz keeps answering. */
static void *stopper(void *arg)
{
    app_t *app = arg;
    app->ops.join(app->rt);
    app->rt = NULL;
    uv_async_send(&app->joined);
    return NULL;
}

static void *watchdog(void *arg)
{
    app_t *app = arg;
    sleep((unsigned)(app->wk.cfg.worker_drain_timeout_s + 20));
    YARD_LOG_ERROR(NULL, "worker: the drain did not finish in time; exiting (unacked jobs "
                         "will be redelivered)");
    _exit(1);
    return NULL;
}

static void on_signal(uv_signal_t *s, int signum)
{
    app_t *app = s->data;
    pthread_t wd;
    if (app->stopper_started)
        return;
    app->stopper_started = 1;
    YARD_LOG_INFO(NULL, "worker: %s: draining (up to %llds)",
                  signum == SIGTERM ? "SIGTERM" : "SIGINT",
                  (long long)app->wk.cfg.worker_drain_timeout_s);
    atomic_store(&app->wk.stop_ms, wk_clock_ms());
    atomic_store(&app->wk.stopping, 1);
    pthread_create(&app->stopper, NULL, stopper, app);
    if (pthread_create(&wd, NULL, watchdog, app) == 0)
        pthread_detach(wd);
}

static int connect_nats(wk_t *wk)
{
    int rc, tries = 0;
    while ((rc = yard_js_connect(&wk->js, &wk->cfg, wk->worker_name)) == YARD_EUNAVAIL) {
        if (tries++ % 10 == 0)
            YARD_LOG_WARN(NULL, "worker: NATS at %s not reachable yet; retrying",
                          wk->cfg.nats_url);
        sleep(1);
    }
    return rc;
}

static int parse_args(app_t *app, int argc, char **argv, const char **config, int *port,
                      const char **queues, int *print)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(a, "--print-config")) {
            *print = 1;
        } else if (v && !strcmp(a, "--role")) {
            app->wk.role = argv[++i];
        } else if (v && !strcmp(a, "--queues")) {
            *queues = argv[++i];
        } else if (v && !strcmp(a, "--config")) {
            *config = argv[++i];
        } else if (v && !strcmp(a, "--metrics-port")) {
            *port = atoi(argv[++i]);
        } else {
            fprintf(stderr, "yard-worker: unknown or incomplete argument `%s`\n", a);
            return -1;
        }
    }
    static const struct {
        const char *name;
        role_ops_t ops;
    } roles[] = {{"execute", {wk_execute_start, wk_execute_join}},
                 {"schedule", {wk_schedule_start, wk_schedule_join}},
                 {"audit", {wk_ingest_start, wk_ingest_join}}};
    for (size_t i = 0; app->wk.role && i < sizeof roles / sizeof roles[0]; i++) {
        if (!strcmp(app->wk.role, roles[i].name)) {
            app->ops = roles[i].ops;
            return 0;
        }
    }
    if (*print)
        return 0;
    fprintf(stderr, "yard-worker: --role must be execute, schedule or audit%s\n",
            app->wk.role && !strcmp(app->wk.role, "notify")
                ? " (notify: webhook delivery is not built yet)"
                : "");
    return -1;
}

int main(int argc, char **argv)
{
    static app_t app;
    wk_t *wk = &app.wk;
    const char *config = NULL, *queues = NULL;
    int port = 0, print = 0, rc;
    yard_log_level_t level = YARD_LOG_INFO;
    if (parse_args(&app, argc, argv, &config, &port, &queues, &print) < 0) {
        usage(stderr);
        return 2;
    }
    yard_log_init("worker", YARD_LOG_INFO);
    if (yard_config_load(&wk->cfg, config) < 0)
        return 2;
    if (queues && yard_config_set(&wk->cfg, "js_queues", queues) < 0) {
        fprintf(stderr, "yard-worker: --queues is too long\n");
        return 2;
    }
    if (print) {
        yard_config_print(&wk->cfg, stdout);
        return 0;
    }
    yard_log_parse_level(&level, wk->cfg.log_level);
    char component[32];
    snprintf(component, sizeof component, "worker-%s", wk->role);
    yard_log_init(component, level);
    signal(SIGPIPE, SIG_IGN); /* exec handlers write to pipes */
    char host[64] = "localhost";
    gethostname(host, sizeof host - 1);
    snprintf(wk->worker_name, sizeof wk->worker_name, "%s:%d", host, (int)getpid());
    rc = yard_js_parse_queues(wk->cfg.js_queues, wk->queue_bufs, wk->queues, WK_MAX_QUEUES);
    if (rc <= 0) {
        YARD_LOG_ERROR(NULL, "worker: queues `%s` must list 1 to %d valid names",
                       wk->cfg.js_queues, WK_MAX_QUEUES);
        return 2;
    }
    wk->nqueues = (size_t)rc;
    if (!strcmp(wk->role, "execute")) {
        wk_builtins_opts_t bo = {wk->cfg.exec_config, (int)wk->cfg.handlers_allow_crash};
        if (wk_registry_create(&wk->registry) < 0 || wk_builtins_register(wk->registry, &bo) < 0)
            return 2;
    }
    if (metrics_init(wk) < 0 || connect_nats(wk) < 0 ||
        yard_js_ensure_topology(wk->js, &wk->cfg, wk->queues, wk->nqueues, NULL) < 0)
        return 1;

    app.loop = uv_default_loop();
    yard_http_options_t ho = {0};
    if (yard_http_router_create(&app.router) < 0 ||
        yard_http_health_routes(&app.health, app.router, wk->metrics, worker_ready, wk) < 0)
        return 1;
    ho.handler = yard_http_router_handle;
    ho.handler_ud = app.router;
    if (yard_http_server_create(&app.http, app.loop, &ho) < 0 ||
        yard_http_server_listen(app.http, wk->cfg.http_addr, port) < 0)
        return 1;
    YARD_LOG_INFO(NULL, "worker: role %s; health and metrics on http://%s:%d", wk->role,
                  wk->cfg.http_addr, yard_http_server_port(app.http));
    if ((rc = app.ops.start(&app.rt, wk)) < 0)
        return 1;
    uv_signal_init(app.loop, &app.sig_term);
    uv_signal_init(app.loop, &app.sig_int);
    uv_async_init(app.loop, &app.joined, on_joined);
    app.sig_term.data = app.sig_int.data = app.joined.data = &app;
    uv_signal_start(&app.sig_term, on_signal, SIGTERM);
    uv_signal_start(&app.sig_int, on_signal, SIGINT);
    uv_run(app.loop, UV_RUN_DEFAULT);

    pthread_join(app.stopper, NULL);
    yard_http_server_destroy(app.http);
    yard_http_router_destroy(app.router);
    yard_js_destroy(wk->js, 5000);
    wk_registry_destroy(wk->registry);
    yard_metrics_destroy(wk->metrics);
    uv_loop_close(app.loop);
    YARD_LOG_INFO(NULL, "worker: stopped");
    return 0;
}
