/*
 * health.c - the gateway's readiness: NATS connected, PostgreSQL reachable,
 * API keys loaded, not stopping. /healthz, /readyz and /metrics themselves
 * are libyard's (http_health.h).
 */
#include <stdio.h>

#include "gw.h"

static int gw_ready(void *ud, char *body, size_t cap)
{
    gw_t *gw = ud;
    int nats = gw->js && yard_js_connected(gw->js);
    int pg = gw_pool_pg_reachable(gw->pool);
    int keys = gw->cfg.auth_disabled || gw->keys_loaded_ms != 0;
    int ready = nats && pg && keys && !gw->stopping;
    snprintf(body, cap,
             "{\"status\":\"%s\",\"nats\":%s,\"postgres\":%s,\"api_keys\":%s,\"stopping\":%s}",
             ready ? "ready" : "not_ready", nats ? "true" : "false", pg ? "true" : "false",
             keys ? "true" : "false", gw->stopping ? "true" : "false");
    return ready;
}

int gw_health_routes(gw_t *gw)
{
    return yard_http_health_routes(&gw->health, gw->router, gw->metrics, gw_ready, gw);
}
