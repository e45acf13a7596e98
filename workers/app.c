/*
 * app.c - yard-worker's life: the role table, start (handlers, metrics,
 * NATS and topology, the health and metrics port, the role's threads), the
 * readiness answer, the NATS round trip measured every WK_RTT_EVERY_MS off
 * the loop, and the graceful drain on SIGTERM / SIGINT, run off the loop so
 * /healthz keeps answering while jobs finish.
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
#include "notify.h"
#include "job_secrets.h"
#include "outbound.h"
#include "redact.h"
#include "wk.h"

/* How long the drain may overrun worker_drain_timeout_s before the process
 * gives up and exits (its unacked jobs are redelivered). */
#define WK_WATCHDOG_SLACK_S 20
/* NATS unreachable at start: a warning every this many tries (one a second). */
#define WK_CONNECT_WARN_EVERY 10
/* How long yard_js_destroy waits for outstanding publishes at exit. */
#define WK_JS_CLOSE_MS 5000
/* How often the NATS round trip is measured (yard_nats_rtt_seconds; the
 * contract asks for at least every 15 s). */
#define WK_RTT_EVERY_MS 5000

static const wk_role_t roles[] = {
    {"execute", wk_execute_start, wk_execute_join},
    {"schedule", wk_schedule_start, wk_schedule_join},
    {"audit", wk_audit_start, wk_audit_join},
    {"notify", wk_notify_start, wk_notify_join},
};

struct wk_app {
    wk_t wk;
    const wk_role_t *role;
    wk_runtime_t *rt;
    uv_loop_t *loop;
    yard_http_server_t *http;
    yard_http_router_t *router;
    yard_http_health_t health;
    uv_signal_t sig_term, sig_int;
    uv_async_t joined;
    uv_timer_t rtt_timer;
    uv_work_t rtt_work;
    int rtt_busy;
    pthread_t stopper;
    int stopper_started;
};

const wk_role_t *wk_role_find(const char *name)
{
    for (size_t i = 0; name && i < sizeof roles / sizeof roles[0]; i++)
        if (!strcmp(name, roles[i].name))
            return &roles[i];
    return NULL;
}

/* GET /readyz: the role's consumers are bound, NATS is up, its PostgreSQL
 * writes have not been failing for worker_unready_after_s, no drain. */
static int wk_ready(void *ud, char *body, size_t cap)
{
    wk_t *wk = ud;
    int nats = yard_js_connected(wk->js), store = wk_store_ready(wk);
    int ready = atomic_load(&wk->ready) && nats && store && !atomic_load(&wk->stopping);
    snprintf(body, cap, "{\"status\":\"%s\",\"role\":\"%s\",\"nats\":%s,\"store\":%s}",
             ready ? "ready" : "not_ready", wk->role, nats ? "true" : "false",
             store ? "true" : "false");
    return ready;
}

/* ---- the NATS round trip ------------------------------------------------------ */

/* On a libuv pool thread: the measurement blocks up to nats.c's flush
 * timeout. The result (or the failure) goes to the I/O statistics. */
static void wk_rtt_work(uv_work_t *w)
{
    wk_app_t *app = w->data;
    yard_js_rtt(NULL, app->wk.js);
}

static void wk_rtt_done(uv_work_t *w, int status)
{
    wk_app_t *app = w->data;
    app->rtt_busy = 0;
}

static void wk_rtt_tick(uv_timer_t *t)
{
    wk_app_t *app = t->data;
    if (app->rtt_busy || !app->wk.js)
        return;
    app->rtt_work.data = app;
    if (uv_queue_work(app->loop, &app->rtt_work, wk_rtt_work, wk_rtt_done) == 0)
        app->rtt_busy = 1;
}

/* ---- the drain --------------------------------------------------------------- */

static void wk_on_joined(uv_async_t *a)
{
    wk_app_t *app = a->data;
    yard_http_server_shutdown(app->http, NULL, NULL);
    uv_close((uv_handle_t *)&app->sig_term, NULL);
    uv_close((uv_handle_t *)&app->sig_int, NULL);
    uv_close((uv_handle_t *)&app->joined, NULL);
    uv_close((uv_handle_t *)&app->rtt_timer, NULL);
}

/* Runs the role's drain off the loop, so /healthz keeps answering. */
static void *wk_stopper(void *arg)
{
    wk_app_t *app = arg;
    app->role->join(app->rt);
    app->rt = NULL;
    uv_async_send(&app->joined);
    return NULL;
}

static void *wk_watchdog(void *arg)
{
    wk_app_t *app = arg;
    sleep((unsigned)(app->wk.cfg.worker_drain_timeout_s + WK_WATCHDOG_SLACK_S));
    YARD_LOG_ERROR(NULL, "worker: the drain did not finish in time; exiting (unacked jobs "
                         "will be redelivered)");
    _exit(1);
    return NULL;
}

static void wk_on_signal(uv_signal_t *s, int signum)
{
    wk_app_t *app = s->data;
    pthread_t wd;
    if (app->stopper_started)
        return;
    app->stopper_started = 1;
    YARD_LOG_INFO(NULL, "worker: %s: draining (up to %llds)",
                  signum == SIGTERM ? "SIGTERM" : "SIGINT",
                  (long long)app->wk.cfg.worker_drain_timeout_s);
    atomic_store(&app->wk.stop_ms, wk_clock_ms());
    atomic_store(&app->wk.stopping, 1);
    pthread_create(&app->stopper, NULL, wk_stopper, app);
    if (pthread_create(&wd, NULL, wk_watchdog, app) == 0)
        pthread_detach(wd);
}

/* ---- start and stop ------------------------------------------------------------ */

static int wk_connect_nats(wk_t *wk)
{
    int rc, tries = 0;
    while ((rc = yard_js_connect(&wk->js, &wk->cfg, wk->worker_name)) == YARD_EUNAVAIL) {
        if (tries++ % WK_CONNECT_WARN_EVERY == 0) {
            char url[1024];
            YARD_LOG_WARN(NULL, "worker: NATS at %s not reachable yet; retrying",
                          yard_redact_dsn(url, sizeof url, wk->cfg.nats_url));
        }
        sleep(1);
    }
    return rc;
}

/* The settings that make the worker: its name, queues and handlers.
 * Returns 0 or YARD_ECONFIG (logged). */
static int wk_configure(wk_t *wk)
{
    char host[64] = "localhost";
    gethostname(host, sizeof host - 1);
    snprintf(wk->worker_name, sizeof wk->worker_name, "%s:%d", host, (int)getpid());
    int rc = yard_js_parse_queues(wk->cfg.js_queues, wk->queue_bufs, wk->queues, WK_MAX_QUEUES);
    if (rc <= 0) {
        YARD_LOG_ERROR(NULL, "worker: queues `%s` must list 1 to %d valid names",
                       wk->cfg.js_queues, WK_MAX_QUEUES);
        return YARD_ECONFIG;
    }
    wk->nqueues = (size_t)rc;
    if ((!strcmp(wk->role, "execute") || !strcmp(wk->role, "notify")) &&
        (wk_http_global_init() < 0 || wk_outbound_create(&wk->outbound, &wk->cfg) < 0))
        return YARD_ECONFIG;
    if (!strcmp(wk->role, "execute")) {
        wk_builtins_opts_t bo = {wk->cfg.exec_config, (int)wk->cfg.handlers_allow_crash,
                                 wk->outbound};
        if (wk_registry_create(&wk->registry) < 0 || wk_builtins_register(wk->registry, &bo) < 0)
            return YARD_ECONFIG;
        wk_registry_retry_unknown(wk->registry, (int)wk->cfg.worker_retry_unknown_types);
        if ((rc = wk_secrets_keyring_create(wk)) < 0)
            return rc;
    }
    return 0;
}

int wk_app_create(wk_app_t **out, const yard_config_t *cfg, const wk_role_t *role, int port)
{
    wk_app_t *app = calloc(1, sizeof *app);
    if (!app)
        return YARD_ENOMEM;
    wk_t *wk = &app->wk;
    wk->cfg = *cfg;
    wk->role = role->name;
    snprintf(wk->program, sizeof wk->program, "worker-%s", role->name);
    app->role = role;
    app->loop = uv_default_loop();
    signal(SIGPIPE, SIG_IGN); /* exec handlers write to pipes */
    int rc = wk_configure(wk);
    if (rc < 0)
        goto fail;
    if ((rc = wk_metrics_init(wk)) < 0 ||
        (wk->outbound && (rc = wk_outbound_metrics(wk->outbound, wk->metrics)) < 0) ||
        (rc = wk_connect_nats(wk)) < 0 ||
        (rc = yard_js_ensure_topology(wk->js, &wk->cfg, wk->queues, wk->nqueues, NULL)) < 0)
        goto fail;
    yard_http_options_t ho = {0};
    if ((rc = yard_http_router_create(&app->router)) < 0 ||
        (rc = yard_http_health_routes(&app->health, app->router, wk->metrics, wk_ready, wk)) < 0 ||
        (rc = yard_http_health_metrics(&app->health, wk->program)) < 0)
        goto fail;
    ho.handler = yard_http_router_handle;
    ho.handler_ud = app->router;
    if ((rc = yard_http_server_create(&app->http, app->loop, &ho)) < 0 ||
        (rc = yard_http_server_listen(app->http, wk->cfg.http_addr, port)) < 0)
        goto fail;
    YARD_LOG_INFO(NULL, "worker: role %s; health and metrics on http://%s:%d", wk->role,
                  wk->cfg.http_addr, yard_http_server_port(app->http));
    if ((rc = role->start(&app->rt, wk)) < 0)
        goto fail;
    *out = app;
    return 0;
fail:
    wk_app_destroy(app);
    return rc;
}

int wk_app_run(wk_app_t *app)
{
    uv_signal_init(app->loop, &app->sig_term);
    uv_signal_init(app->loop, &app->sig_int);
    uv_async_init(app->loop, &app->joined, wk_on_joined);
    app->sig_term.data = app->sig_int.data = app->joined.data = app;
    uv_signal_start(&app->sig_term, wk_on_signal, SIGTERM);
    uv_signal_start(&app->sig_int, wk_on_signal, SIGINT);
    uv_timer_init(app->loop, &app->rtt_timer);
    app->rtt_timer.data = app;
    uv_timer_start(&app->rtt_timer, wk_rtt_tick, 0, WK_RTT_EVERY_MS);
    uv_run(app->loop, UV_RUN_DEFAULT);
    return 0;
}

static void wk_close_handle(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

void wk_app_destroy(wk_app_t *app)
{
    if (!app)
        return;
    wk_t *wk = &app->wk;
    if (app->stopper_started) {
        pthread_join(app->stopper, NULL);
    } else if (app->rt) {
        /* Started but never run: drain here. */
        atomic_store(&wk->stop_ms, wk_clock_ms());
        atomic_store(&wk->stopping, 1);
        app->role->join(app->rt);
        app->rt = NULL;
    }
    if (app->http) {
        /* Ignored after the drain's own shutdown; else closes the listener. */
        yard_http_server_shutdown(app->http, NULL, NULL);
        uv_walk(app->loop, wk_close_handle, NULL);
        uv_run(app->loop, UV_RUN_DEFAULT);
    }
    yard_http_server_destroy(app->http);
    yard_http_router_destroy(app->router);
    yard_js_destroy(wk->js, WK_JS_CLOSE_MS);
    wk_registry_destroy(wk->registry);
    yard_keyring_destroy(wk->keyring);
    wk_metrics_fini(wk);
    wk_outbound_destroy(wk->outbound);
    uv_loop_close(app->loop);
    free(app);
}
