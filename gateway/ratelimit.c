/*
 * ratelimit.c - token buckets in a chained hash table keyed by key id.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "err.h"
#include "log.h"
#include "ratelimit.h"

#define RATE_MIN_SLOTS 64
/* Slack for rounding when comparing token counts built from many additions. */
#define RATE_EPSILON 1e-9

typedef struct rate_bucket {
    struct rate_bucket *next;
    uint64_t last_ms;  /* when tokens was last brought up to date */
    double tokens;     /* may be negative after a request larger than burst */
    double rate_per_s; /* as of the last take: used by the sweep */
    double burst;
    char key_id[];
} rate_bucket_t;

struct gw_rate {
    rate_bucket_t **slots;
    size_t mask;  /* number of slots - 1 (a power of two) */
    size_t count; /* buckets held */
    uint64_t last_sweep_ms;
    uint8_t slot_key[crypto_shorthash_KEYBYTES];
};

static size_t rate_slot(const gw_rate_t *r, const char *key_id, size_t len)
{
    uint64_t h;
    crypto_shorthash((unsigned char *)&h, (const unsigned char *)key_id, len, r->slot_key);
    return (size_t)h & r->mask;
}

int gw_rate_create(gw_rate_t **out)
{
    gw_rate_t *r;

    if (sodium_init() < 0) {
        YARD_LOG_ERROR(NULL, "rate limiter: libsodium failed to initialise");
        return YARD_ECRYPTO;
    }
    r = calloc(1, sizeof *r);
    if (r)
        r->slots = calloc(RATE_MIN_SLOTS, sizeof *r->slots);
    if (!r || !r->slots) {
        YARD_LOG_ERROR(NULL, "rate limiter: out of memory");
        free(r);
        return YARD_ENOMEM;
    }
    r->mask = RATE_MIN_SLOTS - 1;
    crypto_shorthash_keygen(r->slot_key);
    *out = r;
    return 0;
}

void gw_rate_destroy(gw_rate_t *r)
{
    if (!r)
        return;
    for (size_t i = 0; i <= r->mask; i++) {
        for (rate_bucket_t *b = r->slots[i], *next; b; b = next) {
            next = b->next;
            free(b);
        }
    }
    free(r->slots);
    free(r);
}

size_t gw_rate_count(const gw_rate_t *r)
{
    return r ? r->count : 0;
}

/* Adds the tokens earned since b->last_ms (up to burst) and moves last_ms to
 * now_ms; a clock that went back earns nothing. */
static void rate_refill(rate_bucket_t *b, double rate_per_s, double burst, uint64_t now_ms)
{
    if (now_ms > b->last_ms) {
        b->tokens += (double)(now_ms - b->last_ms) / 1000.0 * rate_per_s;
        b->last_ms = now_ms;
    }
    if (b->tokens > burst)
        b->tokens = burst;
}

size_t gw_rate_sweep(gw_rate_t *r, uint64_t now_ms)
{
    size_t dropped = 0;

    r->last_sweep_ms = now_ms;
    for (size_t i = 0; i <= r->mask; i++) {
        rate_bucket_t **link = &r->slots[i];
        while (*link) {
            rate_bucket_t *b = *link;
            uint64_t idle = now_ms > b->last_ms ? now_ms - b->last_ms : 0;
            double earned = (double)idle / 1000.0 * b->rate_per_s;
            if (idle >= GW_RATE_IDLE_MS && b->tokens + earned + RATE_EPSILON >= b->burst) {
                *link = b->next;
                free(b);
                dropped++;
            } else {
                link = &b->next;
            }
        }
    }
    r->count -= dropped;
    return dropped;
}

/* Doubles the slots when there are more buckets than slots; on allocation
 * failure keeps the old table (longer chains, still correct). */
static void rate_maybe_grow(gw_rate_t *r)
{
    size_t nslots = (r->mask + 1) * 2;
    rate_bucket_t **slots;

    if (r->count <= r->mask + 1)
        return;
    slots = calloc(nslots, sizeof *slots);
    if (!slots)
        return;
    rate_bucket_t **old = r->slots;
    size_t old_n = r->mask + 1;
    r->slots = slots;
    r->mask = nslots - 1;
    for (size_t i = 0; i < old_n; i++) {
        for (rate_bucket_t *b = old[i], *next; b; b = next) {
            next = b->next;
            size_t s = rate_slot(r, b->key_id, strlen(b->key_id));
            b->next = slots[s];
            slots[s] = b;
        }
    }
    free(old);
}

/* key_id's bucket, created full at now_ms if it has none; NULL when out of
 * memory (logged). */
static rate_bucket_t *rate_bucket(gw_rate_t *r, const char *key_id, double burst,
                                  uint64_t now_ms)
{
    size_t len = strlen(key_id);
    size_t s = rate_slot(r, key_id, len);

    for (rate_bucket_t *b = r->slots[s]; b; b = b->next)
        if (strcmp(b->key_id, key_id) == 0)
            return b;
    rate_bucket_t *b = malloc(sizeof *b + len + 1);
    if (!b) {
        YARD_LOG_ERROR(NULL, "rate limiter: out of memory for key %s", key_id);
        return NULL;
    }
    memcpy(b->key_id, key_id, len + 1);
    b->last_ms = now_ms;
    b->tokens = burst;
    b->next = r->slots[s];
    r->slots[s] = b;
    r->count++;
    rate_maybe_grow(r);
    return b;
}

int gw_rate_take(gw_rate_t *r, const char *key_id, double rate_per_s, double burst, double tokens,
                 uint64_t now_ms, double *retry_after_s)
{
    if (!key_id || !key_id[0] || !isfinite(rate_per_s) || rate_per_s <= 0 || !isfinite(burst) ||
        burst < 1 || !isfinite(tokens) || tokens <= 0) {
        YARD_LOG_ERROR(NULL, "rate limiter: invalid request (key %s, rate %g/s, burst %g, "
                       "cost %g)", key_id ? key_id : "none", rate_per_s, burst, tokens);
        return YARD_EINVAL;
    }
    if (now_ms - r->last_sweep_ms >= GW_RATE_SWEEP_EVERY_MS) /* wraps if the clock went back */
        gw_rate_sweep(r, now_ms);

    rate_bucket_t *b = rate_bucket(r, key_id, burst, now_ms);
    if (!b)
        return YARD_ENOMEM;
    rate_refill(b, rate_per_s, burst, now_ms);
    b->rate_per_s = rate_per_s;
    b->burst = burst;

    /* A request larger than the bucket needs it full, then runs it into debt. */
    double needed = tokens < burst ? tokens : burst;
    if (b->tokens + RATE_EPSILON >= needed) {
        b->tokens -= tokens;
        return 0;
    }
    double wait = ceil((needed - b->tokens) / rate_per_s - RATE_EPSILON);
    *retry_after_s = wait < 1 ? 1 : wait;
    return YARD_EBUSY;
}
