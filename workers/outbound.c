/*
 * outbound.c - the shared guard and breaker of outbound calls
 * (outbound.h), their metrics, and the breaker's key of a URL.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "err.h"
#include "log.h"
#include "outbound.h"

int wk_outbound_create(wk_outbound_t **out, const yard_config_t *cfg)
{
    wk_outbound_t *o = calloc(1, sizeof *o);
    if (!o)
        return YARD_ENOMEM;
    wk_breaker_opts_t bo = {.failures = (unsigned)cfg->circuit_failures,
                            .cooldown_ms = cfg->circuit_cooldown_s * 1000,
                            .max_hosts = WK_CIRCUIT_MAX_HOSTS};
    int rc = wk_egress_create(&o->egress, cfg->egress_allow, (int)cfg->egress_follow_redirects);
    if (rc == 0)
        rc = wk_breaker_create(&o->breaker, &bo);
    if (rc < 0) {
        wk_outbound_destroy(o);
        return rc == YARD_EINVAL ? YARD_ECONFIG : rc;
    }
    *out = o;
    return 0;
}

void wk_outbound_destroy(wk_outbound_t *o)
{
    if (!o)
        return;
    wk_egress_destroy(o->egress);
    wk_breaker_destroy(o->breaker);
    free(o);
}

static void outbound_put_state(void *ud, const char *host, wk_circuit_state_t s, uint64_t n)
{
    yard_metrics_sink_put(ud, (double)s, host, NULL);
}

static void outbound_put_opened(void *ud, const char *host, wk_circuit_state_t s, uint64_t n)
{
    yard_metrics_sink_put(ud, (double)n, host, NULL);
}

static void outbound_collect_state(yard_metrics_sink_t *sink, void *arg)
{
    wk_outbound_t *o = arg;
    wk_breaker_each(o->breaker, WK_CIRCUIT_METRIC_HOSTS, outbound_put_state, sink);
}

static void outbound_collect_opened(yard_metrics_sink_t *sink, void *arg)
{
    wk_outbound_t *o = arg;
    wk_breaker_each(o->breaker, WK_CIRCUIT_METRIC_HOSTS, outbound_put_opened, sink);
}

int wk_outbound_metrics(wk_outbound_t *o, yard_metrics_t *reg)
{
    static const char *const labels[] = {"host", NULL};
    int rc = yard_metrics_callback_family(
        NULL, reg, YARD_METRICS_GAUGE, "yard_circuit_state",
        "Circuit breaker state of an outbound host: 0 closed, 1 open, 2 half-open (hosts whose "
        "circuit has opened, at most 50).",
        labels, outbound_collect_state, o);
    if (rc == 0)
        rc = yard_metrics_callback_family(
            NULL, reg, YARD_METRICS_COUNTER, "yard_circuit_opened_total",
            "Times the circuit breaker of an outbound host opened (hosts whose circuit has "
            "opened, at most 50).",
            labels, outbound_collect_opened, o);
    return rc;
}

int wk_outbound_host(char out[WK_BREAKER_HOST_MAX], const char *url)
{
    char *host = NULL, *port = NULL;
    int rc = YARD_EINVAL;
    CURLU *u = curl_url();
    out[0] = '\0';
    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK && host[0]) {
        snprintf(out, WK_BREAKER_HOST_MAX, "%s:%s", host, port);
        for (char *p = out; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        rc = 0;
    }
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return rc;
}

void wk_outbound_report(wk_outbound_t *o, const char *host, wk_call_health_t h)
{
    if (h != WK_CALL_NEUTRAL)
        wk_breaker_report(o->breaker, host, h == WK_CALL_OK);
}
