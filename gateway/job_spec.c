/*
 * job_spec.c - validation of a producer's job object (see job_spec.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "job_spec.h"
#include "names.h"

typedef int (*spec_field_fn)(gw_job_spec_t *spec, json_t *v, const gw_job_rules_t *rules,
                             char *err, size_t cap);

static int spec_name(const char **out, const char *field, json_t *v, char *err, size_t cap)
{
    const char *s = json_string_value(v);
    if (!s || !yard_name_valid(s, json_string_length(v))) {
        snprintf(err, cap,
                 "field `%s` must be a string of 1 to 64 characters [a-z0-9._-] starting with "
                 "a letter or digit",
                 field);
        return YARD_EINVAL;
    }
    *out = s;
    return 0;
}

static int spec_type(gw_job_spec_t *spec, json_t *v, const gw_job_rules_t *r, char *err,
                     size_t cap)
{
    return spec_name(&spec->type, "type", v, err, cap);
}

/* Jobs may only go to served queues: each has its execute consumer, without
 * which JOBS (interest retention) would not keep the message. */
static int spec_queue_served(const char *queue, const gw_job_rules_t *r, char *err, size_t cap)
{
    for (size_t i = 0; i < r->nqueues; i++) {
        if (strcmp(r->queues[i], queue) == 0)
            return 0;
    }
    char served[256] = "";
    size_t len = 0;
    for (size_t i = 0; i < r->nqueues && len + 2 < sizeof served; i++)
        len += (size_t)snprintf(served + len, sizeof served - len, "%s%s", i ? ", " : "",
                                r->queues[i]);
    snprintf(err, cap, "queue `%s` is not served here; served queues: %s", queue, served);
    return YARD_EINVAL;
}

static int spec_queue(gw_job_spec_t *spec, json_t *v, const gw_job_rules_t *r, char *err,
                      size_t cap)
{
    int rc = spec_name(&spec->queue, "queue", v, err, cap);
    return rc < 0 ? rc : spec_queue_served(spec->queue, r, err, cap);
}

/* Encodes v compactly into *out (malloc'd) checking the size bound. */
static int spec_dump(char **out, size_t *out_len, const char *field, json_t *v, size_t max,
                     char *err, size_t cap)
{
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!text) {
        snprintf(err, cap, "field `%s` cannot be encoded", field);
        return YARD_EINVAL;
    }
    size_t n = strlen(text);
    if (n > max) {
        free(text);
        snprintf(err, cap, "field `%s` is %zu bytes encoded; the limit is %zu", field, n, max);
        return YARD_EINVAL;
    }
    *out = text;
    *out_len = n;
    return 0;
}

static int spec_payload(gw_job_spec_t *spec, json_t *v, const gw_job_rules_t *r, char *err,
                        size_t cap)
{
    if (json_is_null(v))
        return 0;
    return spec_dump(&spec->payload_json, &spec->payload_len, "payload", v, YARD_ENV_PAYLOAD_MAX,
                     err, cap);
}

static int spec_priority(gw_job_spec_t *spec, json_t *v, const gw_job_rules_t *r, char *err,
                         size_t cap)
{
    static const char *const names[] = {"low", "normal", "high"};
    const char *s = json_string_value(v);
    for (int i = 0; s && i < 3; i++) {
        if (strcmp(s, names[i]) == 0) {
            spec->priority = (yard_priority_t)i;
            return 0;
        }
    }
    snprintf(err, cap, "field `priority` must be \"low\", \"normal\" or \"high\"");
    return YARD_EINVAL;
}

static int spec_uint(uint32_t *out, const char *field, json_t *v, long long lo, long long hi,
                     char *err, size_t cap)
{
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        snprintf(err, cap, "field `%s` must be an integer from %lld to %lld", field, lo, hi);
        return YARD_EINVAL;
    }
    *out = (uint32_t)json_integer_value(v);
    return 0;
}

static int spec_max_attempts(gw_job_spec_t *spec, json_t *v, const gw_job_rules_t *r, char *err,
                             size_t cap)
{
    return spec_uint(&spec->max_attempts, "max_attempts", v, 1, YARD_ENV_ATTEMPTS_MAX, err, cap);
}

static int spec_timeout(gw_job_spec_t *spec, json_t *v, const gw_job_rules_t *r, char *err,
                        size_t cap)
{
    return spec_uint(&spec->timeout_s, "timeout_s", v, 1, YARD_ENV_TIMEOUT_MAX, err, cap);
}

static int spec_run_at(gw_job_spec_t *spec, json_t *v, const gw_job_rules_t *r, char *err,
                       size_t cap)
{
    const char *s = json_string_value(v);
    if (!s || gw_parse_rfc3339(&spec->run_at_ms, s, json_string_length(v)) < 0 ||
        spec->run_at_ms > YARD_ENV_TIME_MAX_MS) {
        snprintf(err, cap,
                 "field `run_at` must be an RFC 3339 time such as \"2026-11-22T10:00:00Z\"");
        return YARD_EINVAL;
    }
    return 0;
}

/* Nonzero if u is an http(s) URL with a host, at most 2048 bytes, without
 * blanks or control characters. */
static int spec_url_ok(const char *u)
{
    size_t scheme = u && strncmp(u, "https://", 8) == 0 ? 8
                    : u && strncmp(u, "http://", 7) == 0 ? 7
                                                         : 0;
    if (!scheme || strlen(u) > 2048 || strchr("/?#:", u[scheme]) || u[scheme] == '\0')
        return 0;
    for (const unsigned char *p = (const unsigned char *)u; *p; p++)
        if (*p <= ' ' || *p == 0x7f)
            return 0;
    return 1;
}

/* The outcomes a notify spec may name (job states with a notification). */
static const char *const spec_notify_events[] = {"succeeded", "failed", "dead"};
#define SPEC_NOTIFY_NEVENTS (sizeof spec_notify_events / sizeof spec_notify_events[0])

/* notify: a URL, or {"url": URL, "on"?: [outcomes]}; stored as the object
 * {"url","on"} (a bare URL, or no "on", means ["succeeded","dead"]). */
static int spec_notify(gw_job_spec_t *spec, json_t *v, const gw_job_rules_t *r, char *err,
                       size_t cap)
{
    json_t *url = json_is_object(v) ? json_object_get(v, "url") : v;
    json_t *on = json_is_object(v) ? json_object_get(v, "on") : NULL;
    const char *key;
    json_t *item;
    size_t i;
    int seen[SPEC_NOTIFY_NEVENTS] = {0};
    if (!spec_url_ok(json_string_value(url))) {
        snprintf(err, cap,
                 "field `notify` must be an http(s) URL or an object with an http(s) `url` "
                 "(with a host, at most 2048 bytes, no blanks)");
        return YARD_EINVAL;
    }
    if (json_is_object(v)) {
        json_object_foreach(v, key, item) {
            if (strcmp(key, "url") != 0 && strcmp(key, "on") != 0) {
                snprintf(err, cap, "field `notify` has unknown field `%.64s` (known: url, on)",
                         key);
                return YARD_EINVAL;
            }
        }
    }
    if (on && (!json_is_array(on) || json_array_size(on) == 0)) {
        snprintf(err, cap, "field `notify.on` must be a non-empty array of \"succeeded\", "
                           "\"failed\", \"dead\"");
        return YARD_EINVAL;
    }
    json_array_foreach(on, i, item) {
        const char *name = json_string_value(item);
        size_t k = 0;
        while (name && k < SPEC_NOTIFY_NEVENTS && strcmp(name, spec_notify_events[k]) != 0)
            k++;
        if (!name || k == SPEC_NOTIFY_NEVENTS || seen[k]++) {
            snprintf(err, cap, "field `notify.on` item %zu must be one of \"succeeded\", "
                               "\"failed\", \"dead\", each at most once", i);
            return YARD_EINVAL;
        }
    }
    /* "o" hands the array's reference to the object (also on failure). */
    json_t *norm = json_pack("{s:O,s:o}", "url", url, "on",
                             on ? json_incref(on) : json_pack("[s,s]", "succeeded", "dead"));
    if (!norm) {
        snprintf(err, cap, "field `notify` cannot be encoded");
        return YARD_EINVAL;
    }
    int rc = spec_dump(&spec->notify_json, &spec->notify_len, "notify", norm,
                       YARD_ENV_NOTIFY_MAX, err, cap);
    json_decref(norm);
    return rc;
}

static int spec_idem(gw_job_spec_t *spec, json_t *v, const gw_job_rules_t *r, char *err,
                     size_t cap)
{
    const char *s = json_string_value(v);
    size_t n = s ? json_string_length(v) : 0;
    if (!s || n == 0 || n > YARD_ENV_IDEM_MAX || strlen(s) != n) {
        snprintf(err, cap, "field `idempotency_key` must be a string of 1 to %d bytes",
                 YARD_ENV_IDEM_MAX);
        return YARD_EINVAL;
    }
    spec->idempotency_key = s;
    return 0;
}

/* secrets: an object of strings, sealed here so that its plaintext goes no
 * further than this function (and the request's own buffers). */
static int spec_secrets(gw_job_spec_t *spec, json_t *v, const gw_job_rules_t *r, char *err,
                        size_t cap)
{
    const char *name;
    json_t *item;
    if (!json_is_object(v)) {
        snprintf(err, cap, "field `secrets` must be an object of strings");
        return YARD_EINVAL;
    }
    json_object_foreach(v, name, item)
    {
        if (!json_is_string(item)) {
            snprintf(err, cap, "field `secrets` must be an object of strings (`%.64s` is not a "
                               "string)", name);
            return YARD_EINVAL;
        }
    }
    if (!r->sealer) {
        snprintf(err, cap, "field `secrets` cannot be accepted: this gateway has no "
                           "secrets_public_key to seal it with");
        return YARD_EINVAL;
    }
    char *plain;
    size_t plain_len;
    int rc = spec_dump(&plain, &plain_len, "secrets", v, YARD_SEALED_PLAIN_MAX, err, cap);
    if (rc < 0)
        return rc;
    rc = yard_sealer_seal(r->sealer, plain, plain_len, &spec->secrets_sealed,
                          &spec->secrets_sealed_len);
    yard_sealed_free(plain, plain_len);
    if (rc < 0) {
        snprintf(err, cap, "field `secrets` cannot be sealed: %s", yard_strerror(rc));
        return YARD_EINVAL;
    }
    return 0;
}

static const struct {
    const char *name;
    spec_field_fn fn;
} spec_fields[] = {
    {"type", spec_type},         {"queue", spec_queue},
    {"payload", spec_payload},   {"priority", spec_priority},
    {"max_attempts", spec_max_attempts}, {"timeout_s", spec_timeout},
    {"run_at", spec_run_at},     {"notify", spec_notify},
    {"idempotency_key", spec_idem}, {"secrets", spec_secrets},
};

void gw_job_spec_clear(gw_job_spec_t *spec)
{
    free(spec->payload_json);
    free(spec->notify_json);
    free(spec->secrets_sealed);
    memset(spec, 0, sizeof *spec);
}

int gw_job_spec_parse(gw_job_spec_t *out, json_t *obj, const gw_job_rules_t *rules, char *err,
                      size_t cap)
{
    gw_job_spec_t spec = {0};
    const char *key;
    json_t *v;
    int rc = 0;
    spec.queue = "default";
    spec.priority = YARD_PRIO_NORMAL;
    spec.max_attempts = rules->default_max_attempts;
    spec.timeout_s = rules->default_timeout_s;
    if (!json_is_object(obj)) {
        snprintf(err, cap, "a job must be a JSON object");
        return YARD_EINVAL;
    }
    json_object_foreach(obj, key, v)
    {
        size_t i, n = sizeof spec_fields / sizeof spec_fields[0];
        for (i = 0; i < n && strcmp(spec_fields[i].name, key) != 0; i++)
            ;
        if (i == n) {
            /* At most 64 bytes of the name, never half a UTF-8 character. */
            int shown = (int)strlen(key);
            if (shown > 64) {
                shown = 64;
                while (shown > 0 && ((unsigned char)key[shown] & 0xc0) == 0x80)
                    shown--;
            }
            snprintf(err, cap, "unknown field `%.*s`", shown, key);
            rc = YARD_EINVAL;
            break;
        }
        if ((rc = spec_fields[i].fn(&spec, v, rules, err, cap)) < 0)
            break;
    }
    if (rc == 0 && !spec.type) {
        snprintf(err, cap, "field `type` is required");
        rc = YARD_EINVAL;
    }
    if (rc == 0 && !json_object_get(obj, "queue"))
        rc = spec_queue_served(spec.queue, rules, err, cap);
    if (rc < 0) {
        gw_job_spec_clear(&spec);
        return rc;
    }
    *out = spec;
    return 0;
}

/* Reads exactly n digits at s[*i] into *out. */
static int rfc_digits(const char *s, size_t len, size_t *i, int n, int *out)
{
    int v = 0;
    if (*i + (size_t)n > len)
        return -1;
    for (int k = 0; k < n; k++) {
        char c = s[*i + (size_t)k];
        if (c < '0' || c > '9')
            return -1;
        v = v * 10 + (c - '0');
    }
    *i += (size_t)n;
    *out = v;
    return 0;
}

static int rfc_expect(const char *s, size_t len, size_t *i, const char *set)
{
    if (*i >= len || !strchr(set, s[*i]))
        return -1;
    (*i)++;
    return 0;
}

/* Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm). */
static int64_t rfc_days(int y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int gw_parse_rfc3339(int64_t *out_ms, const char *s, size_t len)
{
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y, mo, d, h, mi, sec, ms = 0, oh = 0, om = 0, sign = 0;
    size_t i = 0;
    if (rfc_digits(s, len, &i, 4, &y) || rfc_expect(s, len, &i, "-") ||
        rfc_digits(s, len, &i, 2, &mo) || rfc_expect(s, len, &i, "-") ||
        rfc_digits(s, len, &i, 2, &d) || rfc_expect(s, len, &i, "Tt ") ||
        rfc_digits(s, len, &i, 2, &h) || rfc_expect(s, len, &i, ":") ||
        rfc_digits(s, len, &i, 2, &mi) || rfc_expect(s, len, &i, ":") ||
        rfc_digits(s, len, &i, 2, &sec))
        return YARD_EINVAL;
    if (i < len && s[i] == '.') {
        int scale = 100, digits = 0;
        for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++, digits++) {
            ms += (s[i] - '0') * scale;
            scale /= 10;
        }
        if (digits == 0 || digits > 9)
            return YARD_EINVAL;
    }
    if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i < len && (s[i] == '+' || s[i] == '-')) {
        sign = s[i++] == '-' ? -1 : 1;
        if (rfc_digits(s, len, &i, 2, &oh) || rfc_expect(s, len, &i, ":") ||
            rfc_digits(s, len, &i, 2, &om) || oh > 23 || om > 59)
            return YARD_EINVAL;
    } else {
        return YARD_EINVAL;
    }
    if (i != len || y < 1970 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 ||
        mi > 59 || sec > 60)
        return YARD_EINVAL;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo == 2 && d == 29 && !leap)
        return YARD_EINVAL;
    if (sec == 60)
        sec = 59; /* a leap second: as good as its predecessor */
    int64_t t = rfc_days(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
    t -= sign * (oh * 3600 + om * 60);
    *out_ms = t * 1000 + ms;
    return 0;
}
