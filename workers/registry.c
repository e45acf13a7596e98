/*
 * registry.c - the handler registry (type -> handler) and the helpers that
 * handlers share: clock, cancellation and deadline checks, sleeping,
 * filling a result, reading the payload.
 *
 * A worker registers a few dozen types at most, so the registry is a plain
 * array searched linearly; it is written only before threads start.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "err.h"
#include "handler.h"
#include "log.h"
#include "names.h"

typedef struct {
    char type[YARD_NAME_MAX + 1];
    size_t type_len;
    wk_handler_fn fn;
    void *ud;
} reg_entry_t;

typedef struct {
    void *p;
    void (*destroy)(void *);
} reg_owned_t;

struct wk_registry {
    int retry_unknown; /* a type without handler is retried, not dead */
    reg_entry_t *entries;
    size_t n, cap;
    reg_owned_t *owned;
    size_t n_owned, cap_owned;
};

/* Grows *arr (of elements of size) so it holds one more than *n. */
static int reg_grow(void **arr, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : 16;
    void *p = realloc(*arr, ncap * size);
    if (!p)
        return YARD_ENOMEM;
    *arr = p;
    *cap = ncap;
    return 0;
}

int wk_type_valid(const char *type)
{
    return type && yard_name_valid(type, strlen(type));
}

int wk_registry_create(wk_registry_t **out)
{
    wk_registry_t *r = calloc(1, sizeof *r);
    if (!r)
        return YARD_ENOMEM;
    *out = r;
    return 0;
}

void wk_registry_destroy(wk_registry_t *r)
{
    if (!r)
        return;
    for (size_t i = r->n_owned; i > 0; i--)
        r->owned[i - 1].destroy(r->owned[i - 1].p);
    free(r->owned);
    free(r->entries);
    free(r);
}

int wk_registry_add(wk_registry_t *r, const char *type, wk_handler_fn fn, void *ud)
{
    wk_handler_fn found_fn;
    void *found_ud;
    if (!fn || !wk_type_valid(type))
        return YARD_EINVAL;
    if (wk_registry_find(r, type, strlen(type), &found_fn, &found_ud) == 0)
        return YARD_EEXIST;
    void *arr = r->entries;
    if (reg_grow(&arr, &r->cap, r->n, sizeof *r->entries) < 0)
        return YARD_ENOMEM;
    r->entries = arr;
    reg_entry_t *e = &r->entries[r->n++];
    e->type_len = strlen(type);
    memcpy(e->type, type, e->type_len + 1);
    e->fn = fn;
    e->ud = ud;
    return 0;
}

int wk_registry_find(const wk_registry_t *r, const char *type, size_t type_len,
                     wk_handler_fn *fn, void **ud)
{
    for (size_t i = 0; i < r->n; i++) {
        const reg_entry_t *e = &r->entries[i];
        if (e->type_len == type_len && memcmp(e->type, type, type_len) == 0) {
            *fn = e->fn;
            *ud = e->ud;
            return 0;
        }
    }
    return YARD_ENOTFOUND;
}

int wk_registry_own(wk_registry_t *r, void *p, void (*destroy)(void *))
{
    void *arr = r->owned;
    if (reg_grow(&arr, &r->cap_owned, r->n_owned, sizeof *r->owned) < 0)
        return YARD_ENOMEM;
    r->owned = arr;
    r->owned[r->n_owned].p = p;
    r->owned[r->n_owned].destroy = destroy;
    r->n_owned++;
    return 0;
}

/* Checks and completes what a handler reported (see wk_registry_run). */
static void reg_normalise(const wk_job_t *job, wk_result_t *res)
{
    yard_log_ctx_t ctx = wk_job_log_ctx(job);
    res->error[sizeof res->error - 1] = '\0';
    if ((int)res->outcome < 0 || res->outcome >= WK_OUTCOME_COUNT) {
        YARD_LOG_WARN(&ctx, "handler %s returned invalid outcome %d", job->type,
                      (int)res->outcome);
        free(res->result_json);
        res->result_json = NULL;
        wk_result_set(res, WK_OUTCOME_FAIL, "handler %s returned invalid outcome %d", job->type,
                      (int)res->outcome);
    }
    if (res->result_json) {
        json_error_t jerr;
        json_t *v = json_loads(res->result_json, JSON_DECODE_ANY, &jerr);
        if (!v) {
            YARD_LOG_WARN(&ctx, "handler %s returned a result that is not valid JSON: %s",
                          job->type, jerr.text);
            free(res->result_json);
            res->result_json = NULL;
            wk_result_set(res, WK_OUTCOME_FAIL, "handler %s returned invalid JSON: %s",
                          job->type, jerr.text);
        }
        json_decref(v);
    }
    if (res->outcome != WK_OUTCOME_OK && res->error[0] == '\0')
        wk_result_set(res, res->outcome, "handler %s returned %s without a message", job->type,
                      wk_outcome_name(res->outcome));
    wk_utf8_scrub(res->error, strlen(res->error));
}

void wk_registry_run(const wk_registry_t *r, const wk_job_t *job, wk_result_t *res)
{
    wk_handler_fn fn;
    void *ud;
    memset(res, 0, sizeof *res);
    const char *type = job->type ? job->type : "";
    if (wk_registry_find(r, type, strlen(type), &fn, &ud) < 0) {
        yard_log_ctx_t ctx = wk_job_log_ctx(job);
        /* Dead at once (replayable after a deploy), unless asked to wait. */
        YARD_LOG_WARN(&ctx, "no handler for job type '%s'", type);
        wk_result_set(res, r->retry_unknown ? WK_OUTCOME_RETRY : WK_OUTCOME_FAIL,
                      "no_handler: no handler for job type \"%s\" on this worker", type);
        wk_utf8_scrub(res->error, strlen(res->error));
        return;
    }
    fn(job, res, ud);
    reg_normalise(job, res);
}

/* ---- helpers ------------------------------------------------------------ */

int64_t wk_clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

wk_outcome_t wk_job_check(const wk_job_t *job)
{
    if (job->cancelled && atomic_load(job->cancelled))
        return WK_OUTCOME_CANCELLED;
    if (job->deadline_ms > 0 && wk_clock_ms() >= job->deadline_ms)
        return WK_OUTCOME_TIMEOUT;
    return WK_OUTCOME_OK;
}

int64_t wk_job_remaining_ms(const wk_job_t *job)
{
    if (job->deadline_ms <= 0)
        return INT64_MAX;
    int64_t left = job->deadline_ms - wk_clock_ms();
    return left > 0 ? left : 0;
}

void wk_job_heartbeat(const wk_job_t *job)
{
    if (job->heartbeat)
        job->heartbeat(job->heartbeat_ud);
}

wk_outcome_t wk_job_sleep(const wk_job_t *job, int64_t ms)
{
    int64_t now = wk_clock_ms();
    int64_t end = now + (ms > 0 ? ms : 0);
    int64_t next_beat = now + WK_HEARTBEAT_MS;
    for (;;) {
        wk_outcome_t o = wk_job_check(job);
        if (o != WK_OUTCOME_OK)
            return o;
        now = wk_clock_ms();
        if (now >= end)
            return WK_OUTCOME_OK;
        if (now >= next_beat) {
            wk_job_heartbeat(job);
            next_beat = now + WK_HEARTBEAT_MS;
        }
        int64_t step = end - now;
        if (step > WK_POLL_MS)
            step = WK_POLL_MS;
        int64_t left = wk_job_remaining_ms(job);
        if (left < step)
            step = left;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)step * 1000000L};
        nanosleep(&ts, NULL); /* EINTR: the loop looks again */
    }
}

yard_log_ctx_t wk_job_log_ctx(const wk_job_t *job)
{
    yard_log_ctx_t ctx = {.request_id = NULL, .job_id = job->id, .trace_id = job->trace_id};
    return ctx;
}

void wk_result_vset(wk_result_t *res, wk_outcome_t o, const char *fmt, va_list ap)
{
    res->outcome = o;
    res->error[0] = '\0';
    if (fmt)
        vsnprintf(res->error, sizeof res->error, fmt, ap);
}

void wk_result_set(wk_result_t *res, wk_outcome_t o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    wk_result_vset(res, o, fmt, ap);
    va_end(ap);
}

int wk_result_set_json(wk_result_t *res, const struct json_t *value)
{
    char *text = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!text) {
        wk_result_set(res, WK_OUTCOME_RETRY, "out of memory encoding the result");
        return YARD_ENOMEM;
    }
    free(res->result_json);
    res->result_json = text;
    return 0;
}

int wk_job_payload_json(struct json_t **out, const wk_job_t *job, wk_result_t *res)
{
    json_error_t jerr;
    int given = job->payload && job->payload_len;
    json_t *v = json_loadb(given ? job->payload : "null", given ? job->payload_len : 4,
                           JSON_DECODE_ANY, &jerr);
    if (!v) {
        wk_result_set(res, WK_OUTCOME_FAIL, "%s: payload is not valid JSON: %s (line %d)",
                      job->type, jerr.text, jerr.line);
        return YARD_EFORMAT;
    }
    *out = v;
    return 0;
}

int wk_job_payload_unpack(struct json_t **root, const wk_job_t *job, wk_result_t *res,
                          const char *fmt, ...)
{
    json_t *v;
    json_error_t jerr;
    va_list ap;
    int rc = wk_job_payload_json(&v, job, res);
    if (rc < 0)
        return rc;
    if (json_is_null(v)) {
        json_decref(v);
        if ((v = json_object()) == NULL) {
            wk_result_set(res, WK_OUTCOME_RETRY, "out of memory");
            return YARD_ENOMEM;
        }
    }
    if (!json_is_object(v)) {
        wk_result_set(res, WK_OUTCOME_FAIL, "%s: payload must be a JSON object", job->type);
        rc = YARD_EFORMAT;
    } else {
        va_start(ap, fmt);
        if (json_vunpack_ex(v, &jerr, 0, fmt, ap) < 0) {
            wk_result_set(res, WK_OUTCOME_FAIL, "%s: payload: %s", job->type, jerr.text);
            rc = YARD_EFORMAT;
        }
        va_end(ap);
    }
    if (rc < 0) {
        json_decref(v);
        return rc;
    }
    *root = v;
    return 0;
}

const char *wk_outcome_name(wk_outcome_t o)
{
    static const char *const names[WK_OUTCOME_COUNT] = {"ok", "retry", "fail", "timeout",
                                                        "cancelled"};
    if ((int)o < 0 || o >= WK_OUTCOME_COUNT)
        return "unknown";
    return names[o];
}

/* Returns the length of the valid UTF-8 sequence at s[0..n) (n >= 1), or 0. */
static size_t utf8_seq_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf; /* bounds of the second byte */
    if (c >= 0x01 && c <= 0x7f)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else
        return 0;
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return len;
}

void wk_utf8_scrub(char *s, size_t len)
{
    unsigned char *u = (unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        size_t n = utf8_seq_len(u + i, len - i);
        if (n == 0) {
            u[i] = '?';
            n = 1;
        }
        i += n;
    }
}

void wk_registry_retry_unknown(wk_registry_t *r, int on)
{
    r->retry_unknown = on;
}
