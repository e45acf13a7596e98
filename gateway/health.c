/*
 * health.c - the gateway's readiness: NATS connected, the job tables answer
 * (what the routes need, probed every GW_PROBE_EVERY_MS on the pool: a
 * connection alone is not enough), API keys loaded, not stopping.
 * /healthz, /readyz and /metrics themselves are libyard's (http_health.h),
 * as are the families every program exports (yard_build_info, yard_ready,
 * the I/O statistics), labelled program="gateway".
 */
#include <stdio.h>
#include <stdlib.h>

#include "gw.h"
#include "jobs.h"

#define GW_PROBE_EVERY_MS 1000
#define GW_PROGRAM "gateway" /* the program label of the metrics contract */

static int gw_ready(void *ud, char *body, size_t cap)
{
    gw_t *gw = ud;
    int nats = gw->js && yard_js_connected(gw->js);
    int pg = gw_pool_pg_reachable(gw->pool) && gw->tables_ok;
    int keys = gw->cfg.auth_disabled || gw->keys_loaded_ms != 0;
    int ready = nats && pg && keys && !gw->stopping;
    snprintf(body, cap,
             "{\"status\":\"%s\",\"nats\":%s,\"postgres\":%s,\"api_keys\":%s,\"stopping\":%s}",
             ready ? "ready" : "not_ready", nats ? "true" : "false", pg ? "true" : "false",
             keys ? "true" : "false", gw->stopping ? "true" : "false");
    return ready;
}

typedef struct {
    gw_t *gw;
    int ok;
} probe_task_t;

static void probe_work(PGconn *conn, void *ud)
{
    probe_task_t *t = ud;
    t->ok = conn && yard_jobs_probe(conn) == 0;
    if (!t->ok)
        gw_pool_conn_check(conn);
}

static void probe_done(void *ud)
{
    probe_task_t *t = ud;
    t->gw->tables_ok = t->ok;
    t->gw->probe_busy = 0;
    free(t);
}

static void probe_tick(uv_timer_t *timer)
{
    gw_t *gw = timer->data;
    probe_task_t *t;
    if (gw->probe_busy || gw->stopping || !(t = calloc(1, sizeof *t)))
        return;
    t->gw = gw;
    if (gw_pool_submit(gw->pool, probe_work, probe_done, t) == 0)
        gw->probe_busy = 1;
    else
        free(t);
}

int gw_health_routes(gw_t *gw)
{
    uv_timer_init(gw->loop, &gw->probe_timer);
    gw->probe_timer.data = gw;
    uv_timer_start(&gw->probe_timer, probe_tick, 0, GW_PROBE_EVERY_MS);
    int rc = yard_http_health_routes(&gw->health, gw->router, gw->metrics, gw_ready, gw);
    return rc < 0 ? rc : yard_http_health_metrics(&gw->health, GW_PROGRAM);
}
