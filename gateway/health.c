/*
 * health.c - GET /healthz (the process answers), GET /readyz (NATS and
 * PostgreSQL reachable, API keys loaded) and GET /metrics (Prometheus).
 * None of them needs an API key: they are for probes and scrapers.
 */
#include <stdlib.h>
#include <string.h>

#include "gw.h"

static void healthz(yard_http_req_t *req, void *ud)
{
    static const char body[] = "{\"status\":\"ok\"}";
    yard_http_respond(req, 200, "application/json", NULL, body, sizeof body - 1);
}

static void readyz(yard_http_req_t *req, void *ud)
{
    gw_t *gw = ud;
    int nats = yard_js_connected(gw->js);
    int pg = gw_pool_pg_reachable(gw->pool);
    int keys = gw->cfg.auth_disabled || gw->keys_loaded_ms != 0;
    int ready = nats && pg && keys && !gw->stopping;
    json_t *doc = json_pack("{s:s, s:b, s:b, s:b, s:b}", "status", ready ? "ready" : "not_ready",
                            "nats", nats, "postgres", pg, "api_keys", keys, "stopping",
                            gw->stopping);
    gw_respond_json(req, ready ? 200 : 503, doc);
}

static void metrics(yard_http_req_t *req, void *ud)
{
    gw_t *gw = ud;
    char *text = NULL;
    size_t len = 0;
    if (yard_metrics_render(gw->metrics, &text, &len) < 0) {
        yard_http_respond_error(req, 500, "internal", "cannot render metrics");
        return;
    }
    yard_http_respond(req, 200, YARD_METRICS_CONTENT_TYPE, NULL, text, len);
    free(text);
}

int gw_health_routes(gw_t *gw)
{
    int rc = yard_http_router_add(gw->router, "GET", "/healthz", healthz, gw);
    if (rc == 0)
        rc = yard_http_router_add(gw->router, "GET", "/readyz", readyz, gw);
    if (rc == 0)
        rc = yard_http_router_add(gw->router, "GET", "/metrics", metrics, gw);
    return rc;
}
