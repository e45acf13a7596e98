/*
 * app.c - the gateway's life: start (NATS, topology, pool, keys, HTTP),
 * the PubAck hop to the loop, API key refresh, access checks, graceful stop.
 */
#include <arpa/inet.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "db.h"
#include "db_array.h"
#include "err.h"
#include "gw.h"
#include "log.h"
#include "redact.h"
#include "queue_stats.h"

#define GW_POOL_THREADS 4
#define GW_POOL_QUEUE 4096

uint64_t gw_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- responses ----------------------------------------------------------- */

void gw_respond_json(yard_http_req_t *req, int status, json_t *v)
{
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(v);
    if (!text) {
        yard_http_respond_error(req, 500, "internal", "cannot encode the response");
        return;
    }
    yard_http_respond(req, status, "application/json", NULL, text, strlen(text));
    free(text);
}

void gw_respond_unavailable(yard_http_req_t *req, const char *message)
{
    yard_http_respond_error_headers(req, 503, "unavailable", message, "Retry-After: 1\r\n");
}

/* ---- PubAck hop ----------------------------------------------------------- */

void gw_ack_post(gw_t *gw, gw_ack_t *ack)
{
    pthread_mutex_lock(&gw->acks_mu);
    ack->next = gw->acks_head;
    gw->acks_head = ack;
    pthread_mutex_unlock(&gw->acks_mu);
    uv_async_send(&gw->acks_async);
}

static void gw_on_acks(uv_async_t *a)
{
    gw_t *gw = a->data;
    pthread_mutex_lock(&gw->acks_mu);
    gw_ack_t *list = gw->acks_head;
    gw->acks_head = NULL;
    pthread_mutex_unlock(&gw->acks_mu);
    /* Pushed in reverse; order does not matter for correctness. */
    while (list) {
        gw_ack_t *next = list->next;
        list->complete(list);
        list = next;
    }
    /* The jobs these acks stored share one accepted event. */
    gw_accepted_flush(gw);
}

/* ---- API keys ------------------------------------------------------------- */

typedef struct {
    gw_t *gw;
    gw_keyset_t *loaded;
    int rc;
    char *used; /* '{id,id,...}' of keys seen since the last refresh, or NULL */
} gw_keys_task_t;

static void gw_keys_work(PGconn *conn, void *ud)
{
    gw_keys_task_t *t = ud;
    if (conn && t->used) {
        PGresult *res = NULL;
        const char *params[1] = {t->used};
        if (yard_db_query(&res, conn, "auth: last_used_at",
                          "UPDATE api_keys SET last_used_at = now() WHERE id = ANY($1::uuid[])", 1,
                          params) == 0)
            PQclear(res);
    }
    t->rc = conn ? gw_auth_keyset_load(&t->loaded, conn) : YARD_EUNAVAIL;
    if (t->rc < 0)
        gw_pool_conn_check(conn);
}

static void gw_keys_done(void *ud)
{
    gw_keys_task_t *t = ud;
    gw_t *gw = t->gw;
    gw->keys_loading = 0;
    if (t->rc == 0) {
        if (!gw->keys_loaded_ms || gw_auth_keyset_count(gw->keys) != gw_auth_keyset_count(t->loaded))
            YARD_LOG_INFO(NULL, "auth: %zu API keys loaded", gw_auth_keyset_count(t->loaded));
        gw_auth_keyset_free(gw->keys);
        gw->keys = t->loaded;
        gw->keys_loaded_ms = gw_now_ms();
    }
    free(t->used);
    free(t);
}

/* The keys seen since the last refresh as an SQL array literal (malloc'd),
 * emptying the set; NULL when none. */
static char *gw_keys_used_take(gw_t *gw)
{
    const char *ids[GW_KEYS_USED_MAX];
    if (gw->nkeys_used == 0)
        return NULL;
    for (size_t i = 0; i < gw->nkeys_used; i++)
        ids[i] = gw->keys_used[i];
    char *s = yard_db_array_of(ids, gw->nkeys_used);
    if (s)
        gw->nkeys_used = 0;
    return s;
}

/* Remembers that key id was used (loop thread). */
static void gw_keys_used_add(gw_t *gw, const char *id)
{
    for (size_t i = 0; i < gw->nkeys_used; i++)
        if (strcmp(gw->keys_used[i], id) == 0)
            return;
    if (gw->nkeys_used < GW_KEYS_USED_MAX)
        snprintf(gw->keys_used[gw->nkeys_used++], GW_AUTH_ID_MAX + 1, "%s", id);
}

/* Every auth_refresh_s: reload the API keys (PostgreSQL's health for
 * /readyz is health.c's probe). */
static void gw_keys_refresh(uv_timer_t *timer)
{
    gw_t *gw = timer->data;
    gw_keys_task_t *t;
    if (gw->keys_loading || gw->stopping || gw->cfg.auth_disabled)
        return;
    if (!(t = calloc(1, sizeof *t)))
        return;
    t->gw = gw;
    t->used = gw_keys_used_take(gw);
    if (gw_pool_submit(gw->pool, gw_keys_work, gw_keys_done, t) == 0) {
        gw->keys_loading = 1;
    } else {
        free(t->used);
        free(t);
    }
}

int gw_authenticate(gw_t *gw, yard_http_req_t *req, unsigned scope, gw_principal_t *who)
{
    size_t hlen = 0;
    const char *hdr;
    int rc;
    memset(who, 0, sizeof *who);
    if (gw->cfg.auth_disabled) {
        who->scopes = YARD_SCOPE_ALL;
    } else {
        /* A keyset older than 3 refresh periods means PostgreSQL is gone:
         * keep serving with it (revokes wait), but never without one. */
        if (!gw->keys_loaded_ms) {
            gw_respond_unavailable(req, "API keys are not loaded yet (is PostgreSQL reachable?)");
            return YARD_EUNAVAIL;
        }
        hdr = yard_http_req_header(req, "Authorization", &hlen);
        rc = gw_auth_check(who, gw->keys, hdr, hdr ? hlen : 0, scope);
        if (rc == GW_AUTH_EFORBIDDEN) {
            yard_metrics_counter_add(yard_metrics_counter_with(gw->m_auth_fail, "403", NULL), 1);
            yard_http_respond_error(req, 403, "forbidden", "this API key lacks the scope this "
                                                           "route needs");
            return rc;
        }
        if (rc < 0) {
            yard_metrics_counter_add(yard_metrics_counter_with(gw->m_auth_fail, "401", NULL), 1);
            yard_http_respond_error_headers(req, 401, "unauthorized",
                                            hdr ? "the API key is not valid"
                                                : "missing `Authorization: Bearer <api key>`",
                                            "WWW-Authenticate: Bearer\r\n");
            return rc;
        }
        gw_keys_used_add(gw, who->key_id);
    }
    return 0;
}

int gw_rate_charge(gw_t *gw, yard_http_req_t *req, const gw_principal_t *who, double cost)
{
    double retry_after = 1;
    char extra[64];
    int rc;
    double rate = who->rate_per_s > 0 ? who->rate_per_s : (double)gw->cfg.rate_per_s;
    double burst = who->burst > 0 ? who->burst : (double)gw->cfg.rate_burst;
    /* With auth disabled every caller shares one bucket. */
    const char *bucket = who->key_id[0] ? who->key_id : "anonymous";
    rc = gw_rate_take(gw->rate, bucket, rate, burst, cost, gw_now_ms(), &retry_after);
    if (rc < 0 && rc != YARD_EBUSY) {
        yard_http_respond_error(req, 500, "internal", "rate limiter failed");
        return rc;
    }
    if (rc < 0) {
        snprintf(extra, sizeof extra, "Retry-After: %.0f\r\n", retry_after < 1 ? 1 : retry_after);
        yard_http_respond_error_headers(req, 429, "rate_limited",
                                        "rate limit exceeded for this API key", extra);
        return rc;
    }
    return 0;
}

int gw_access(gw_t *gw, yard_http_req_t *req, unsigned scope, double cost, gw_principal_t *who)
{
    int rc = gw_authenticate(gw, req, scope, who);
    return rc < 0 ? rc : gw_rate_charge(gw, req, who, cost);
}

/* ---- metrics of the HTTP server ------------------------------------------- */

static void gw_observe(void *ud, const char *route, const char *method, int status,
                       uint64_t duration_us)
{
    gw_t *gw = ud;
    char code[8], label[160];
    snprintf(code, sizeof code, "%d", status);
    snprintf(label, sizeof label, "%s %s", method, route);
    yard_metrics_counter_add(yard_metrics_counter_with(gw->m_requests, label, code, NULL), 1);
    yard_metrics_histogram_observe(yard_metrics_histogram_with(gw->m_latency, label, NULL),
                                   (double)duration_us / 1e6);
}

static void gw_js_pending(yard_metrics_sink_t *sink, void *arg)
{
    gw_t *gw = arg;
    yard_metrics_sink_put(sink, gw->js ? (double)yard_js_pending(gw->js) : 0, NULL);
}

static int gw_metrics_init(gw_t *gw)
{
    static const double latency[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                     0.05,   0.1,   0.25,   0.5,   1,    2.5, 5};
    int rc = yard_metrics_create(&gw->metrics);
    if (rc == 0)
        rc = yard_metrics_counter_family(&gw->m_requests, gw->metrics, "yard_http_requests_total",
                                         "HTTP requests by route and status code.",
                                         (const char *const[]){"route", "code", NULL});
    if (rc == 0)
        rc = yard_metrics_histogram_family(
            &gw->m_latency, gw->metrics, "yard_http_request_duration_seconds",
            "HTTP request latency by route, from first byte to response.",
            (const char *const[]){"route", NULL}, latency, sizeof latency / sizeof latency[0]);
    if (rc == 0)
        rc = yard_metrics_counter_family(&gw->m_published, gw->metrics,
                                         "yard_jobs_published_total",
                                         "Jobs submitted by queue and outcome "
                                         "(accepted, duplicate, rejected, unavailable).",
                                         (const char *const[]){"queue", "outcome", NULL});
    if (rc == 0)
        rc = yard_metrics_counter_family(&gw->m_auth_fail, gw->metrics,
                                         "yard_http_auth_failures_total",
                                         "Requests refused by authentication (401) or scope "
                                         "(403).",
                                         (const char *const[]){"code", NULL});
    /* Both series from the start, so rates and alerts see a 0, not nothing. */
    if (rc == 0) {
        yard_metrics_counter_with(gw->m_auth_fail, "401", NULL);
        yard_metrics_counter_with(gw->m_auth_fail, "403", NULL);
    }
    if (rc == 0)
        rc = yard_metrics_callback_family(NULL, gw->metrics, YARD_METRICS_GAUGE,
                                          "yard_gateway_publishes_in_flight",
                                          "Job publishes waiting for their JetStream PubAck.",
                                          NULL, gw_js_pending, gw);
    if (rc == 0)
        rc = yard_metrics_register_process(gw->metrics);
    if (rc < 0)
        YARD_LOG_ERROR(NULL, "metrics: cannot register: %s", yard_strerror(rc));
    return rc;
}

/* ---- start and stop ------------------------------------------------------ */

/* Whether addr (an http_addr: an IP literal) is a loopback address. */
static int gw_addr_is_loopback(const char *addr)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, addr, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, addr, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6) ||
               (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
    return 0;
}

static int gw_connect_nats(gw_t *gw)
{
    int rc, tries = 0;
    while ((rc = yard_js_connect(&gw->js, &gw->cfg, "yard-gateway")) == YARD_EUNAVAIL) {
        if (tries++ % 10 == 0) {
            char url[1024];
            YARD_LOG_WARN(NULL, "gateway: NATS at %s not reachable yet; retrying",
                          yard_redact_dsn(url, sizeof url, gw->cfg.nats_url));
        }
        sleep(1);
    }
    if (rc == 0)
        rc = yard_js_ensure_topology(gw->js, &gw->cfg, gw->queues, gw->nqueues, NULL);
    return rc;
}

int gw_create(gw_t **out, const yard_config_t *cfg)
{
    gw_t *gw = calloc(1, sizeof *gw);
    int rc;
    if (!gw)
        return YARD_ENOMEM;
    gw->cfg = *cfg;
    gw->loop = uv_default_loop();
    pthread_mutex_init(&gw->acks_mu, NULL);
    if ((rc = yard_id_gen_init(&gw->ids)) < 0)
        goto fail;
    if (!cfg->id_secret[0])
        YARD_LOG_WARN(NULL, "gateway: id_secret is empty; idempotency ids use a public key "
                            "(set YARD_ID_SECRET on every gateway of a cluster)");
    yard_id_secret_from_text(gw->id_secret, cfg->id_secret);
    rc = yard_js_parse_queues(cfg->js_queues, gw->queue_bufs, gw->queues, GW_MAX_QUEUES);
    if (rc <= 0) {
        YARD_LOG_ERROR(NULL, "gateway: js_queues `%s` must list 1 to %d valid queue names",
                       cfg->js_queues, GW_MAX_QUEUES);
        rc = YARD_ECONFIG;
        goto fail;
    }
    gw->nqueues = (size_t)rc;
    gw->rules = (gw_job_rules_t){gw->queues, gw->nqueues, (uint32_t)cfg->job_max_attempts,
                                 (uint32_t)cfg->job_timeout_s, NULL};
    if (cfg->secrets_public_key[0]) {
        if ((rc = yard_sealer_create(&gw->sealer, cfg->secrets_public_key)) < 0)
            goto fail;
        gw->rules.sealer = gw->sealer;
        YARD_LOG_INFO(NULL, "gateway: jobs' secrets are sealed with key id %s",
                      yard_sealer_key_id(gw->sealer));
    }
    if (cfg->auth_disabled && !gw_addr_is_loopback(cfg->http_addr)) {
        YARD_LOG_ERROR(NULL, "gateway: auth_disabled is refused on http_addr `%s`: without API "
                             "keys every caller is an admin, so it is allowed only on a loopback "
                             "address (127.0.0.1, ::1)",
                       cfg->http_addr);
        rc = YARD_ECONFIG;
        goto fail;
    }
    if (cfg->auth_disabled)
        YARD_LOG_WARN(NULL, "gateway: auth_disabled is set: every request is allowed without an "
                            "API key; never do this outside local development");
    if ((rc = gw_metrics_init(gw)) < 0 || (rc = gw_rate_create(&gw->rate)) < 0 ||
        (rc = gw_connect_nats(gw)) < 0)
        goto fail;
    if ((rc = gw_pool_create(&gw->pool, gw->loop, cfg->pg_dsn, GW_POOL_THREADS, GW_POOL_QUEUE)) <
        0)
        goto fail;
    uv_async_init(gw->loop, &gw->acks_async, gw_on_acks);
    gw->acks_async.data = gw;
    uv_timer_init(gw->loop, &gw->keys_timer);
    gw->keys_timer.data = gw;
    uv_timer_start(&gw->keys_timer, gw_keys_refresh, 0, (uint64_t)cfg->auth_refresh_s * 1000);
    if ((rc = gw_queue_stats_start(gw)) < 0)
        goto fail;

    if ((rc = yard_http_router_create(&gw->router)) < 0 || (rc = gw_jobs_submit_routes(gw)) < 0 ||
        (rc = gw_jobs_read_routes(gw)) < 0 || (rc = gw_health_routes(gw)) < 0 ||
        (rc = gw_dlq_routes(gw)) < 0 || (rc = gw_workflows_routes(gw)) < 0 ||
        (rc = gw_jobs_list_routes(gw)) < 0 || (rc = gw_ui_routes(gw)) < 0 ||
        (rc = gw_schedules_routes(gw)) < 0)
        goto fail;
    yard_http_options_t ho = {0};
    ho.limits.max_header_bytes = (size_t)cfg->http_max_header_bytes;
    ho.limits.max_headers = (size_t)cfg->http_max_headers;
    ho.limits.max_body = (size_t)cfg->http_max_body;
    ho.limits.max_connections = (size_t)cfg->http_max_connections;
    ho.limits.read_timeout_ms = (uint64_t)cfg->http_read_timeout_ms;
    ho.limits.idle_timeout_ms = (uint64_t)cfg->http_idle_timeout_ms;
    ho.limits.max_connections_per_client = (size_t)cfg->http_max_connections_per_client;
    ho.limits.max_conn_buffer = (size_t)cfg->http_max_conn_buffer;
    ho.limits.max_buffer = (size_t)cfg->http_max_buffer;
    ho.handler = yard_http_router_handle;
    ho.handler_ud = gw->router;
    ho.observe = gw_observe;
    ho.observe_ud = gw;
    if ((rc = yard_http_server_create(&gw->http, gw->loop, &ho)) < 0 ||
        (rc = yard_http_server_listen(gw->http, cfg->http_addr, (int)cfg->http_port)) < 0)
        goto fail;
    YARD_LOG_INFO(NULL, "gateway: listening on http://%s:%d (queues: %s)", cfg->http_addr,
                  yard_http_server_port(gw->http), cfg->js_queues);
    *out = gw;
    return 0;
fail:
    YARD_LOG_ERROR(NULL, "gateway: cannot start: %s", yard_strerror(rc));
    gw->exit_code = 1;
    gw_destroy(gw);
    return rc;
}

static void gw_close_handle(uv_handle_t *h)
{
    if (h->loop && !uv_is_closing(h))
        uv_close(h, NULL);
}

static void gw_on_http_done(yard_http_server_t *server, void *ud)
{
    gw_t *gw = ud;
    YARD_LOG_INFO(NULL, "gateway: all requests answered; stopping");
    gw_close_handle((uv_handle_t *)&gw->keys_timer);
    gw_close_handle((uv_handle_t *)&gw->stats_timer);
    gw_close_handle((uv_handle_t *)&gw->probe_timer);
    /* The signal handles stay (unreferenced, so the loop can end) until
     * gw_destroy: a second SIGTERM while the NATS connection drains must not
     * kill the process. */
    uv_unref((uv_handle_t *)&gw->sig_term);
    uv_unref((uv_handle_t *)&gw->sig_int);
    gw_close_handle((uv_handle_t *)&gw->acks_async);
    gw_pool_shutdown(gw->pool);
    gw->pool = NULL;
}

static void gw_on_signal(uv_signal_t *s, int signum)
{
    gw_t *gw = s->data;
    if (gw->stopping)
        return;
    gw->stopping = 1;
    YARD_LOG_INFO(NULL, "gateway: %s: no new connections; finishing in-flight requests",
                  signum == SIGTERM ? "SIGTERM" : "SIGINT");
    yard_http_server_shutdown(gw->http, gw_on_http_done, gw);
}

int gw_run(gw_t *gw)
{
    uv_signal_init(gw->loop, &gw->sig_term);
    uv_signal_init(gw->loop, &gw->sig_int);
    gw->sig_term.data = gw->sig_int.data = gw;
    uv_signal_start(&gw->sig_term, gw_on_signal, SIGTERM);
    uv_signal_start(&gw->sig_int, gw_on_signal, SIGINT);
    uv_run(gw->loop, UV_RUN_DEFAULT);
    return gw->exit_code;
}

static void gw_on_walk_close(uv_handle_t *h, void *arg)
{
    gw_close_handle(h);
}

void gw_destroy(gw_t *gw)
{
    if (!gw)
        return;
    if (gw->pool) {
        gw_pool_shutdown(gw->pool);
        gw->pool = NULL;
    }
    if (gw->http && !gw->stopping) {
        /* Start-up failed after listen: stop the server properly. */
        gw->stopping = 1;
        yard_http_server_shutdown(gw->http, NULL, NULL);
    }
    /* Requests are all answered; anything left in flight is not ours. The
     * signal handles are still installed, so SIGTERM cannot kill us here. */
    yard_js_destroy(gw->js, 5000);
    gw->js = NULL;
    uv_walk(gw->loop, gw_on_walk_close, NULL);
    uv_run(gw->loop, UV_RUN_DEFAULT);
    yard_http_server_destroy(gw->http);
    yard_http_router_destroy(gw->router);
    gw_auth_keyset_free(gw->keys);
    gw_rate_destroy(gw->rate);
    yard_sealer_destroy(gw->sealer);
    yard_metrics_destroy(gw->metrics);
    pthread_mutex_destroy(&gw->acks_mu);
    uv_loop_close(gw->loop);
    free(gw);
}
