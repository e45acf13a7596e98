/*
 * http_health.h - the routes every Switchyard program serves for probes
 * and scrapers: GET /healthz (the process answers), GET /readyz (the
 * program says whether it can work) and GET /metrics (Prometheus text of a
 * registry). None needs an API key.
 */
#ifndef YARD_HTTP_HEALTH_H
#define YARD_HTTP_HEALTH_H

#include <stddef.h>

#include "http_router.h"
#include "metrics.h"

/* Writes a JSON object describing readiness into body (cap bytes, NUL
 * terminated) and returns nonzero when ready (200), zero when not (503).
 * Runs on the loop thread; must not block. */
typedef int (*yard_http_ready_fn)(void *ud, char *body, size_t cap);

/* What the routes need; owned by the caller (embed it in the program's
 * state) and kept alive as long as the router. */
typedef struct {
    yard_metrics_t *reg;
    yard_http_ready_fn ready;
    void *ud;
    const char *program; /* set by yard_http_health_metrics */
} yard_http_health_t;

/* Fills h and adds the three routes to router: /readyz asks ready(ud, ...),
 * /metrics renders reg. Returns 0 or the router's error. */
int yard_http_health_routes(yard_http_health_t *h, yard_http_router_t *router,
                            yard_metrics_t *reg, yard_http_ready_fn ready, void *ud);

/* Registers in h's registry (after yard_http_health_routes) what the
 * metrics contract asks of every program, each labelled program=<program>
 * ("gateway", "worker-<role>"):
 *   yard_build_info{program,version,commit}  1 (version.h)
 *   yard_ready{program}                      1 when /readyz would answer 200,
 *                                            else 0, asked at each scrape
 *   the I/O statistics of iostats.h          (yard_iostats_register)
 * yard_ready calls the ready function during the render, so render h's
 * registry only on the thread /readyz runs on (the loop thread: /metrics
 * does). program must stay valid until the registry is destroyed. Returns
 * 0, or YARD_EINVAL / YARD_EEXIST / YARD_ENOMEM. */
int yard_http_health_metrics(yard_http_health_t *h, const char *program);

#endif
