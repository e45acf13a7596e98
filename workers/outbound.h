/*
 * outbound.h - what every outbound HTTP call of a worker goes through: the
 * egress guard (egress.h) and the per-host circuit breaker (breaker.h),
 * built once from config and shared by the `http` handler and the notify
 * role, with their metrics:
 *   yard_circuit_state{host}        0 closed, 1 open, 2 half-open
 *   yard_circuit_opened_total{host} times the circuit opened
 * Only hosts whose circuit has opened are named, at most
 * WK_CIRCUIT_METRIC_HOSTS of them (bounded label cardinality).
 *
 * A call: wk_outbound_host (the breaker's key), wk_breaker_allow (or wait),
 * wk_egress_attach on the curl handle, perform, then wk_outbound_report,
 * which tells the breaker whether the host failed (not for an egress
 * refusal, which says nothing of the host's health).
 */
#ifndef WK_OUTBOUND_H
#define WK_OUTBOUND_H

#include "breaker.h"
#include "config.h"
#include "egress.h"
#include "metrics.h"

#define WK_CIRCUIT_METRIC_HOSTS 50
#define WK_CIRCUIT_MAX_HOSTS 1024 /* hosts the breaker tracks at most */

typedef struct wk_outbound {
    wk_egress_t *egress;
    wk_breaker_t *breaker;
} wk_outbound_t;

/* Builds the guard and the breaker from cfg (egress_allow,
 * egress_follow_redirects, circuit_failures, circuit_cooldown_s). Returns 0
 * and sets *out (free with wk_outbound_destroy), YARD_ECONFIG (logged) or
 * YARD_ENOMEM. */
int wk_outbound_create(wk_outbound_t **out, const yard_config_t *cfg);

/* Frees o. NULL is a no-op. */
void wk_outbound_destroy(wk_outbound_t *o);

/* Registers the circuit families in reg (o must outlive reg's renders).
 * Returns 0 or an error. */
int wk_outbound_metrics(wk_outbound_t *o, yard_metrics_t *reg);

/* Writes the breaker's key of url, its lower-cased "host:port" (default
 * port by scheme), into out. Returns 0, or YARD_EINVAL when url has no
 * host (out is then ""). */
int wk_outbound_host(char out[WK_BREAKER_HOST_MAX], const char *url);

/* What a finished call tells the breaker. */
typedef enum {
    WK_CALL_OK = 0,      /* the host answered well (2xx, or a 4xx that is the caller's fault) */
    WK_CALL_FAILED,      /* the host failed: connection error, timeout, 5xx, 429 */
    WK_CALL_NEUTRAL      /* says nothing of the host: egress refusal, cancellation */
} wk_call_health_t;

/* Reports a call wk_breaker_allow let go. */
void wk_outbound_report(wk_outbound_t *o, const char *host, wk_call_health_t h);

#endif
