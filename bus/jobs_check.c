/*
 * jobs_check.c - yard_jobs_check (jobs.h): the fields of an envelope that
 * PostgreSQL would refuse, found before a batch statement, so one bad
 * message cannot fail its whole batch.
 */
#include <stdio.h>

#include <jansson.h>

#include "err.h"
#include "jobs.h"


static int is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Nonzero for 8-4-4-4-12 hex digits. */
static int uuid_text(yard_str_t s)
{
    if (s.len != YARD_ENV_ID_LEN)
        return 0;
    for (size_t i = 0; i < s.len; i++) {
        int dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s.ptr[i] != '-' : !is_hex(s.ptr[i]))
            return 0;
    }
    return 1;
}

/* Nonzero if the bytes are UTF-8 without NUL (what a PostgreSQL text takes). */
static int utf8_text(yard_str_t s)
{
    const unsigned char *p = (const unsigned char *)s.ptr;
    size_t i = 0;
    while (i < s.len) {
        unsigned c = p[i];
        size_t n = c < 0x80 ? 0 : (c & 0xe0) == 0xc0 ? 1 : (c & 0xf0) == 0xe0 ? 2
                                 : (c & 0xf8) == 0xf0 ? 3 : 9;
        if (c == 0 || n == 9 || (n == 1 && c < 0xc2) || (n == 3 && c > 0xf4) || i + n >= s.len + (n ? 0 : 1))
            return 0;
        unsigned cp = n ? c & (0x3f >> n) : c;
        for (size_t k = 1; k <= n; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (p[i + k] & 0x3f);
        }
        if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
            return 0;
        i += n + 1;
    }
    return 1;
}

/* Nonzero if the bytes are JSON that jsonb takes (jansson, like jsonb,
 * refuses \u0000 and invalid UTF-8; big integers are read as reals). */
static int json_text(yard_str_t s)
{
    json_error_t err;
    json_t *v = json_loadb(s.ptr, s.len, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, &err);
    json_decref(v);
    return v != NULL;
}

int yard_jobs_check(const yard_envelope_t *env, char *why, size_t cap)
{
    const char *bad = NULL;
    if (env->api_key_id.len && !uuid_text(env->api_key_id))
        bad = "`api_key_id` is not a UUID";
    else if (env->workflow_id.len && !uuid_text(env->workflow_id))
        bad = "`workflow_id` is not a UUID";
    else if (!env->workflow_id.len != !env->step_id.len)
        bad = "`workflow_id` and `step_id` must come together";
    else if (env->payload.len && !json_text(env->payload))
        bad = "`payload` is not valid JSON";
    else if (env->notify.len && !json_text(env->notify))
        bad = "`notify` is not valid JSON";
    else if (!utf8_text(env->idempotency_key))
        bad = "`idempotency_key` is not UTF-8 text";
    else if (!utf8_text(env->traceparent))
        bad = "`traceparent` is not UTF-8 text";
    else if (!utf8_text(env->step_id) || !utf8_text(env->schedule))
        bad = "`step_id` or `schedule` is not UTF-8 text";
    else if (!utf8_text(env->secrets))
        bad = "`secrets` is not UTF-8 text";
    if (!bad)
        return 0;
    snprintf(why, cap, "invalid job message: field %s", bad);
    return YARD_EINVAL;
}
