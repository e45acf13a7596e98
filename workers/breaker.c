/*
 * breaker.c - the per-host circuit breaker (breaker.h): a small table of
 * hosts under one mutex, searched linearly (it holds at most max_hosts).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "breaker.h"
#include "err.h"
#include "handler.h"

typedef struct {
    char host[WK_BREAKER_HOST_MAX];
    int used;
    wk_circuit_state_t state;
    unsigned failures;      /* consecutive, while closed */
    int64_t open_until_ms;  /* open: when a probe may go */
    int64_t probe_until_ms; /* half-open: when the probe counts as lost */
    uint64_t opened_total;
} breaker_host_t;

struct wk_breaker {
    wk_breaker_opts_t o;
    pthread_mutex_t mu;
    breaker_host_t *hosts;
};

static int64_t breaker_default_clock(void *ud)
{
    return wk_clock_ms();
}

int wk_breaker_create(wk_breaker_t **out, const wk_breaker_opts_t *opts)
{
    if (!out || !opts || opts->failures < 1 || opts->cooldown_ms < 1 || opts->max_hosts < 1)
        return YARD_EINVAL;
    wk_breaker_t *b = calloc(1, sizeof *b);
    if (!b)
        return YARD_ENOMEM;
    b->o = *opts;
    if (!b->o.clock)
        b->o.clock = breaker_default_clock;
    b->hosts = calloc(opts->max_hosts, sizeof *b->hosts);
    if (!b->hosts) {
        free(b);
        return YARD_ENOMEM;
    }
    pthread_mutex_init(&b->mu, NULL);
    *out = b;
    return 0;
}

void wk_breaker_destroy(wk_breaker_t *b)
{
    if (!b)
        return;
    pthread_mutex_destroy(&b->mu);
    free(b->hosts);
    free(b);
}

/* host's entry, or NULL; mu held. With create, a new entry is made in a
 * free slot or one of a healthy host (closed, no failures, never opened
 * first); NULL when every slot is busy. */
static breaker_host_t *breaker_find(wk_breaker_t *b, const char *host, int create)
{
    breaker_host_t *spare = NULL, *healthy = NULL;
    for (size_t i = 0; i < b->o.max_hosts; i++) {
        breaker_host_t *h = &b->hosts[i];
        if (!h->used) {
            if (!spare)
                spare = h;
            continue;
        }
        if (strncmp(h->host, host, sizeof h->host - 1) == 0)
            return h;
        if (h->state == WK_CIRCUIT_CLOSED && h->failures == 0 &&
            (!healthy || (healthy->opened_total && !h->opened_total)))
            healthy = h;
    }
    if (!create)
        return NULL;
    breaker_host_t *h = spare ? spare : healthy;
    if (!h)
        return NULL;
    memset(h, 0, sizeof *h);
    h->used = 1;
    snprintf(h->host, sizeof h->host, "%s", host);
    return h;
}

static void breaker_open(wk_breaker_t *b, breaker_host_t *h, int64_t now)
{
    h->state = WK_CIRCUIT_OPEN;
    h->open_until_ms = now + b->o.cooldown_ms;
    h->failures = 0;
    h->opened_total++;
}

int wk_breaker_allow(wk_breaker_t *b, const char *host, int64_t *wait_ms, int *probe)
{
    int rc = 0;
    int64_t now = b->o.clock(b->o.clock_ud), wait = 0;
    if (probe)
        *probe = 0;
    pthread_mutex_lock(&b->mu);
    breaker_host_t *h = breaker_find(b, host, 0);
    /* A lost probe counts as a failed one. */
    if (h && h->state == WK_CIRCUIT_HALF_OPEN && now >= h->probe_until_ms)
        breaker_open(b, h, h->probe_until_ms - b->o.cooldown_ms);
    if (h && h->state == WK_CIRCUIT_OPEN && now >= h->open_until_ms) {
        h->state = WK_CIRCUIT_HALF_OPEN;
        h->probe_until_ms = now + b->o.cooldown_ms;
        if (probe)
            *probe = 1;
    } else if (h && h->state == WK_CIRCUIT_OPEN) {
        wait = h->open_until_ms - now;
        rc = YARD_EBUSY;
    } else if (h && h->state == WK_CIRCUIT_HALF_OPEN) {
        wait = h->probe_until_ms - now;
        rc = YARD_EBUSY;
    }
    pthread_mutex_unlock(&b->mu);
    if (rc < 0 && wait_ms)
        *wait_ms = wait > 0 ? wait : 1;
    return rc;
}

void wk_breaker_report(wk_breaker_t *b, const char *host, int ok)
{
    int64_t now = b->o.clock(b->o.clock_ud);
    pthread_mutex_lock(&b->mu);
    /* Only failures need an entry: a success of an unknown host changes
     * nothing. */
    breaker_host_t *h = breaker_find(b, host, !ok);
    if (h && ok) {
        h->state = WK_CIRCUIT_CLOSED;
        h->failures = 0;
    } else if (h && h->state == WK_CIRCUIT_HALF_OPEN) {
        breaker_open(b, h, now);
    } else if (h && h->state == WK_CIRCUIT_CLOSED && ++h->failures >= b->o.failures) {
        breaker_open(b, h, now);
    }
    /* A failure reported while open (a call let go before it opened)
     * changes nothing. */
    pthread_mutex_unlock(&b->mu);
}

wk_circuit_state_t wk_breaker_state(wk_breaker_t *b, const char *host)
{
    pthread_mutex_lock(&b->mu);
    breaker_host_t *h = breaker_find(b, host, 0);
    wk_circuit_state_t s = h ? h->state : WK_CIRCUIT_CLOSED;
    pthread_mutex_unlock(&b->mu);
    return s;
}

void wk_breaker_each(wk_breaker_t *b, size_t limit, wk_breaker_each_fn fn, void *ud)
{
    size_t n = 0;
    pthread_mutex_lock(&b->mu);
    for (size_t i = 0; i < b->o.max_hosts && n < limit; i++) {
        breaker_host_t *h = &b->hosts[i];
        if (h->used && h->opened_total) {
            fn(ud, h->host, h->state, h->opened_total);
            n++;
        }
    }
    pthread_mutex_unlock(&b->mu);
}

const char *wk_circuit_state_name(wk_circuit_state_t s)
{
    switch (s) {
    case WK_CIRCUIT_CLOSED:
        return "closed";
    case WK_CIRCUIT_OPEN:
        return "open";
    case WK_CIRCUIT_HALF_OPEN:
        return "half_open";
    }
    return "unknown";
}
