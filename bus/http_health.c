/*
 * http_health.c - /healthz, /readyz and /metrics (http_health.h).
 */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "http_health.h"
#include "http_server.h"

static void health_healthz(yard_http_req_t *req, void *ud)
{
    static const char body[] = "{\"status\":\"ok\"}";
    yard_http_respond(req, 200, "application/json", NULL, body, sizeof body - 1);
}

static void health_readyz(yard_http_req_t *req, void *ud)
{
    yard_http_health_t *h = ud;
    char body[512] = "{}";
    int ready = h->ready(h->ud, body, sizeof body);
    yard_http_respond(req, ready ? 200 : 503, "application/json", NULL, body, strlen(body));
}

static void health_metrics(yard_http_req_t *req, void *ud)
{
    yard_http_health_t *h = ud;
    char *text = NULL;
    size_t len = 0;
    if (yard_metrics_render(h->reg, &text, &len) < 0) {
        yard_http_respond_error(req, 500, "internal", "cannot render metrics");
        return;
    }
    yard_http_respond(req, 200, YARD_METRICS_CONTENT_TYPE, NULL, text, len);
    free(text);
}

int yard_http_health_routes(yard_http_health_t *h, yard_http_router_t *router,
                            yard_metrics_t *reg, yard_http_ready_fn ready, void *ud)
{
    *h = (yard_http_health_t){reg, ready, ud};
    int rc = yard_http_router_add(router, "GET", "/healthz", health_healthz, h);
    if (rc == 0)
        rc = yard_http_router_add(router, "GET", "/readyz", health_readyz, h);
    if (rc == 0)
        rc = yard_http_router_add(router, "GET", "/metrics", health_metrics, h);
    return rc;
}
