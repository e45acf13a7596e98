/*
 * breaker.h - a per-host circuit breaker for outbound calls (the `http`
 * handler and the notify role's webhooks).
 *
 * Each host has a circuit. Closed: calls go; `failures` consecutive failed
 * calls open it. Open: calls fail fast (wk_breaker_allow says how long to
 * wait) until `cooldown_ms` has passed; then the next call is the one
 * probe (half-open) while every other call keeps waiting. The probe's
 * success closes the circuit, its failure opens it for another cool-down.
 * A probe that never reports (its caller died) counts as failed once a
 * cool-down has passed, so another probe may go.
 *
 * The table holds at most max_hosts hosts: a new host evicts a closed one
 * without failures, or goes untracked (always allowed) when every entry is
 * busy. Thread-safe: one mutex. The clock is injectable for tests.
 */
#ifndef WK_BREAKER_H
#define WK_BREAKER_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    WK_CIRCUIT_CLOSED = 0,
    WK_CIRCUIT_OPEN = 1,
    WK_CIRCUIT_HALF_OPEN = 2
} wk_circuit_state_t;

/* Milliseconds on a monotonic clock; ud is wk_breaker_opts_t.clock_ud. */
typedef int64_t (*wk_breaker_clock_fn)(void *ud);

typedef struct {
    unsigned failures;         /* consecutive failures that open a circuit (>= 1) */
    int64_t cooldown_ms;       /* how long an open circuit fails fast (>= 1) */
    size_t max_hosts;          /* hosts tracked at most (>= 1) */
    wk_breaker_clock_fn clock; /* NULL: wk_clock_ms */
    void *clock_ud;
} wk_breaker_opts_t;

#define WK_BREAKER_HOST_MAX 256 /* bytes of a host name kept (longer ones are cut) */

typedef struct wk_breaker wk_breaker_t;

/* Creates a breaker with a copy of *opts. Returns 0 and sets *out (free
 * with wk_breaker_destroy), YARD_EINVAL for an option out of range, or
 * YARD_ENOMEM. */
int wk_breaker_create(wk_breaker_t **out, const wk_breaker_opts_t *opts);

/* Frees b. NULL is a no-op. */
void wk_breaker_destroy(wk_breaker_t *b);

/* Asks whether a call to host may go now. Returns 0 (go, then report its
 * end with wk_breaker_report; *probe, when not NULL, is set to 1 if this
 * call is the half-open probe), or YARD_EBUSY when the circuit is open or
 * a probe is under way: *wait_ms (not NULL) is then how long until a call
 * may be tried again (at least 1). */
int wk_breaker_allow(wk_breaker_t *b, const char *host, int64_t *wait_ms, int *probe);

/* Reports the end of a call wk_breaker_allow let go: ok nonzero for a
 * success (closes the circuit), zero for a failure (counts towards opening
 * it; a failed probe reopens it). Calls refused for reasons that say
 * nothing of the host's health (the egress guard) should not be reported. */
void wk_breaker_report(wk_breaker_t *b, const char *host, int ok);

/* The state of host's circuit now (CLOSED for an unknown host). */
wk_circuit_state_t wk_breaker_state(wk_breaker_t *b, const char *host);

/* Calls fn(ud, host, state, opened_total) for each tracked host whose
 * circuit has opened at least once, at most limit of them (bounded metric
 * labels), under the breaker's mutex: fn must not call the breaker. */
typedef void (*wk_breaker_each_fn)(void *ud, const char *host, wk_circuit_state_t state,
                                   uint64_t opened_total);
void wk_breaker_each(wk_breaker_t *b, size_t limit, wk_breaker_each_fn fn, void *ud);

/* The state's lower-case name: "closed", "open", "half_open". */
const char *wk_circuit_state_name(wk_circuit_state_t s);

#endif
