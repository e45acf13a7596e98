/*
 * http_health.c - /healthz, /readyz and /metrics (http_health.h).
 */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "http_health.h"
#include "http_server.h"
#include "iostats.h"
#include "version.h"

/* The label of the program-wide samples. */
static const char *const program_label[] = {"program", NULL};

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
    *h = (yard_http_health_t){reg, ready, ud, NULL};
    int rc = yard_http_router_add(router, "GET", "/healthz", health_healthz, h);
    if (rc == 0)
        rc = yard_http_router_add(router, "GET", "/readyz", health_readyz, h);
    if (rc == 0)
        rc = yard_http_router_add(router, "GET", "/metrics", health_metrics, h);
    return rc;
}

/* yard_ready: what /readyz would answer now. */
static void health_collect_ready(yard_metrics_sink_t *sink, void *arg)
{
    yard_http_health_t *h = arg;
    char body[512];
    int ready = h->ready(h->ud, body, sizeof body);
    yard_metrics_sink_put(sink, ready ? 1 : 0, h->program, NULL);
}

int yard_http_health_metrics(yard_http_health_t *h, const char *program)
{
    yard_metrics_family_t *info = NULL;
    if (!h || !h->reg || !h->ready || !program || !*program)
        return YARD_EINVAL;
    h->program = program;
    int rc = yard_metrics_gauge_family(&info, h->reg, "yard_build_info",
                                       "Always 1; the labels say which build runs: program, "
                                       "version, git commit.",
                                       (const char *const[]){"program", "version", "commit", NULL});
    if (rc == 0)
        yard_metrics_gauge_set(
            yard_metrics_gauge_with(info, program, YARD_VERSION, yard_build_commit(), NULL), 1);
    if (rc == 0)
        rc = yard_metrics_callback_family(NULL, h->reg, YARD_METRICS_GAUGE, "yard_ready",
                                          "1 when the program is ready (GET /readyz answers "
                                          "200), else 0.",
                                          program_label, health_collect_ready, h);
    if (rc == 0)
        rc = yard_iostats_register(h->reg, program);
    return rc;
}
