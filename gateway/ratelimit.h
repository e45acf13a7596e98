/*
 * ratelimit.h - per-API-key token buckets.
 *
 * Each key id gets a bucket on first use, starting full. A bucket holds at
 * most `burst` tokens and refills at `rate_per_s` tokens a second, measured
 * on the caller's monotonic clock (milliseconds, e.g. uv_now); a request
 * takes `tokens` from it (1 for a job, n for a batch of n) or is refused with
 * the number of seconds after which it would pass.
 *
 * Rate and burst come with every call, so a key's new limits (after the key
 * cache is refreshed) apply at once; the caller passes its configured
 * defaults for keys that have none.
 *
 * Memory stays bounded: a bucket idle for GW_RATE_IDLE_MS that has refilled
 * completely is dropped (forgetting a full bucket changes nothing, since a
 * new one starts full). Buckets are swept at most once every
 * GW_RATE_SWEEP_EVERY_MS from gw_rate_take, or when the caller calls
 * gw_rate_sweep. Only keys that passed authentication get buckets, so there
 * are never more than the number of keys.
 *
 * Not thread-safe: one gw_rate_t belongs to the loop thread.
 */
#ifndef GW_RATELIMIT_H
#define GW_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#define GW_RATE_IDLE_MS (10 * 60 * 1000)
#define GW_RATE_SWEEP_EVERY_MS (60 * 1000)

typedef struct gw_rate gw_rate_t;

/* Makes an empty set of buckets. Returns 0 and sets *out (destroy it with
 * gw_rate_destroy), or YARD_ENOMEM / YARD_ECRYPTO, logged. */
int gw_rate_create(gw_rate_t **out);

/* Frees r and its buckets; NULL is a no-op. */
void gw_rate_destroy(gw_rate_t *r);

/* Takes `tokens` tokens from key_id's bucket (created full on first use) at
 * now_ms, after refilling it for the time since its last use. Returns 0 when
 * they were there (and took them); YARD_EBUSY when not, taking nothing and
 * setting *retry_after_s to the whole number of seconds (>= 1) after which
 * the same request would pass, for a Retry-After header. A request larger
 * than burst passes when the bucket is full and leaves it in debt, so it
 * holds later requests back for as long as its extra cost takes to refill.
 * Returns YARD_EINVAL (logged) for an empty key_id, rate_per_s <= 0,
 * burst < 1, tokens <= 0 or a non-finite number; YARD_ENOMEM (logged) when
 * a new bucket cannot be allocated. *retry_after_s is set only on YARD_EBUSY. */
int gw_rate_take(gw_rate_t *r, const char *key_id, double rate_per_s, double burst, double tokens,
                 uint64_t now_ms, double *retry_after_s);

/* Drops the buckets idle for GW_RATE_IDLE_MS or more that are full at now_ms.
 * Returns how many it dropped. */
size_t gw_rate_sweep(gw_rate_t *r, uint64_t now_ms);

/* The number of buckets held (tests, metrics). */
size_t gw_rate_count(const gw_rate_t *r);

#endif
