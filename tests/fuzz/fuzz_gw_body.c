/*
 * fuzz_gw_body.c - libFuzzer target for the gateway's request bodies.
 *
 * Input: one mode byte (bit 0: 0 = JSON, 1 = msgpack), then the body. The
 * body goes through gw_body_decode and, when it decodes, gw_job_spec_parse
 * with rules serving the queues "default" and "mail.eu". A spec that parses
 * must hold what the envelope encoder relies on, or the target aborts:
 * type and queue valid names (yard_name_valid) and the queue served;
 * max_attempts 1..100; timeout_s 1..86400; a known priority; payload_json
 * and notify_json NUL-free JSON text of their stated length that jansson
 * parses back to the value that was sent; an idempotency key of 1..255
 * bytes; and the spec must make an envelope that encodes and decodes back
 * (built as jobs_submit.c builds it), since the gateway answers 500 when it
 * does not. A decode or parse failure must leave a message for the client
 * that is not empty and is valid UTF-8 (it is sent inside the JSON error
 * body). FUZZ_GW_BODY_KNOWN=1 skips the checks that fail on the findings
 * listed in tests/fuzz/README.md, to look past them until they are fixed.
 * Crashes, leaks and undefined behaviour are the sanitizers' part.
 * Build and run: see tests/fuzz/README.md.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "body.h"
#include "envelope.h"
#include "job_spec.h"
#include "log.h"
#include "names.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const served[] = {"default", "mail.eu"};
static const gw_job_rules_t rules = {served, 2, 5, 300, NULL};

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_gw_body: invariant broken: %s\n", what);
    abort();
}

/* Nonzero when the NUL-terminated s is valid UTF-8 (no overlongs, no
 * surrogates, nothing above U+10FFFF). */
static int utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p, n, min, cp;
        if (c < 0x80) {
            p++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf)
            n = 1, min = 0x80, cp = c & 0x1f;
        else if (c >= 0xe0 && c <= 0xef)
            n = 2, min = 0x800, cp = c & 0x0f;
        else if (c >= 0xf0 && c <= 0xf4)
            n = 3, min = 0x10000, cp = c & 0x07;
        else
            return 0;
        for (unsigned k = 1; k <= n; k++) {
            if ((p[k] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (p[k] & 0x3fu);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        p += n + 1;
    }
    return 1;
}

/* The error text goes to the client inside the JSON error body: it must
 * say something, and be valid UTF-8 (the body is escaped byte by byte, so
 * invalid UTF-8 here makes the whole response invalid JSON). */
static int known_ok; /* FUZZ_GW_BODY_KNOWN=1: see the README */

static void check_err(const char *err)
{
    if (known_ok)
        return;
    const char *problem = !err[0]            ? "an error without a message"
                          : !utf8_valid(err) ? "an error message that is not valid UTF-8"
                                             : NULL;
    if (!problem)
        return;
    fprintf(stderr, "fuzz_gw_body: the error message: \"");
    for (const unsigned char *p = (const unsigned char *)err; *p; p++)
        fprintf(stderr, *p >= 0x20 && *p < 0x7f ? "%c" : "\\x%02x", *p);
    fprintf(stderr, "\"\n");
    fail(problem);
}

/* text (len bytes) must be JSON without NUL that parses back to want. */
static void check_json_text(const char *what, const char *text, size_t len, json_t *want)
{
    json_error_t jerr;
    if (!text)
        fail(what);
    if (strlen(text) != len)
        fail("JSON text length differs from its stated length");
    json_t *back = json_loadb(text, len, JSON_DECODE_ANY, &jerr);
    if (!back)
        fail("JSON text of a parsed spec does not parse back");
    if (want && !json_equal(back, want))
        fail("JSON text of a parsed spec parses back to another value");
    json_decref(back);
}

/* The spec as jobs_submit.c turns it into an envelope must encode, and
 * decode back to the same envelope. */
static void check_encodes(const gw_job_spec_t *s)
{
    static const char tp[] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    yard_envelope_t env, back;
    size_t len = 0;
    yard_env_init(&env);
    env.id = YARD_STR("0190f1e2-7a3b-7c4d-8e5f-0123456789ab");
    env.type = (yard_str_t){s->type, strlen(s->type)};
    env.queue = (yard_str_t){s->queue, strlen(s->queue)};
    env.payload = (yard_str_t){s->payload_json, s->payload_len};
    env.notify = (yard_str_t){s->notify_json, s->notify_len};
    env.priority = s->priority;
    env.max_attempts = s->max_attempts;
    env.timeout_s = s->timeout_s;
    /* The gateway keeps run_at only when it is in the future: any time
     * after this one may be. */
    env.run_at_ms = s->run_at_ms > 1700000000000LL ? s->run_at_ms : 0;
    env.created_at_ms = 1700000000000LL;
    if (s->idempotency_key)
        env.idempotency_key = (yard_str_t){s->idempotency_key, strlen(s->idempotency_key)};
    env.traceparent = YARD_STR(tp);
    size_t cap = yard_env_encoded_size_max(&env);
    char *buf = malloc(cap);
    if (!buf)
        abort();
    if (yard_env_encode(&env, buf, cap, &len) != 0) {
        if (known_ok && env.run_at_ms > YARD_ENV_TIME_MAX_MS) {
            free(buf);
            return;
        }
        fprintf(stderr, "fuzz_gw_body: run_at_ms %lld\n", (long long)env.run_at_ms);
        fail("a parsed spec does not encode as an envelope");
    }
    if (yard_env_decode(&back, buf, len) != 0 || !yard_env_equal(&env, &back))
        fail("a parsed spec's envelope does not decode back to itself");
    free(buf);
}

static void check_spec(const gw_job_spec_t *s, json_t *doc)
{
    int found = 0;
    if (!s->type || !yard_name_valid(s->type, strlen(s->type)))
        fail("type is not a valid name");
    if (!s->queue || !yard_name_valid(s->queue, strlen(s->queue)))
        fail("queue is not a valid name");
    for (size_t i = 0; i < rules.nqueues; i++)
        found |= strcmp(s->queue, served[i]) == 0;
    if (!found)
        fail("queue is not served");
    if (s->max_attempts < 1 || s->max_attempts > YARD_ENV_ATTEMPTS_MAX)
        fail("max_attempts out of 1..100");
    if (s->timeout_s < 1 || s->timeout_s > YARD_ENV_TIMEOUT_MAX)
        fail("timeout_s out of 1..86400");
    if (s->priority != YARD_PRIO_LOW && s->priority != YARD_PRIO_NORMAL &&
        s->priority != YARD_PRIO_HIGH)
        fail("unknown priority");
    if (s->payload_json) {
        if (s->payload_len > YARD_ENV_PAYLOAD_MAX)
            fail("payload over 1 MiB");
        check_json_text("payload", s->payload_json, s->payload_len,
                        json_object_get(doc, "payload"));
    } else if (s->payload_len) {
        fail("payload length without payload");
    } else if (json_object_get(doc, "payload") && !json_is_null(json_object_get(doc, "payload"))) {
        fail("a non-null payload was dropped");
    }
    if (s->notify_json) {
        if (s->notify_len > YARD_ENV_NOTIFY_MAX)
            fail("notify over 64 KiB");
        /* Stored normalised: {"url": the URL given, "on": [...]} (a bare URL
         * means succeeded and dead). */
        json_t *given = json_object_get(doc, "notify");
        json_t *url = json_is_object(given) ? json_object_get(given, "url") : given;
        check_json_text("notify", s->notify_json, s->notify_len, NULL);
        json_t *back = json_loadb(s->notify_json, s->notify_len, JSON_DECODE_ANY, NULL);
        json_t *on = json_object_get(back, "on");
        if (!json_is_object(back) || !json_equal(json_object_get(back, "url"), url) ||
            !json_is_array(on) || json_array_size(on) == 0)
            fail("notify is not stored as {url, on} with the URL given");
        json_decref(back);
    }
    if (s->idempotency_key) {
        size_t n = strlen(s->idempotency_key);
        if (n < 1 || n > YARD_ENV_IDEM_MAX)
            fail("idempotency_key out of 1..255 bytes");
    }
    check_encodes(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int init;
    json_t *doc = NULL;
    gw_job_spec_t spec;
    char err[256];
    if (!init) {
        const char *known = getenv("FUZZ_GW_BODY_KNOWN");
        yard_log_init("fuzz_gw_body", YARD_LOG_ERROR);
        known_ok = known && strcmp(known, "1") == 0;
        init = 1;
    }
    if (size < 1)
        return 0;
    gw_body_kind_t kind = (data[0] & 1) ? GW_BODY_MSGPACK : GW_BODY_JSON;
    const char *body = (const char *)data + 1;
    size_t len = size - 1;

    err[0] = '\0';
    if (gw_body_decode(&doc, kind, body, len, err, sizeof err) != 0) {
        check_err(err);
        return 0;
    }
    if (!doc)
        fail("decode succeeded without a value");
    err[0] = '\0';
    memset(&spec, 0xa5, sizeof spec); /* parse must not depend on what was there */
    if (gw_job_spec_parse(&spec, doc, &rules, err, sizeof err) == 0) {
        check_spec(&spec, doc);
        gw_job_spec_clear(&spec);
    } else {
        check_err(err);
    }
    /* A batch body: every item goes through the same parse. */
    json_t *jobs = json_object_get(doc, "jobs");
    for (size_t i = 0; json_is_array(jobs) && i < json_array_size(jobs) && i < 16; i++) {
        json_t *item = json_array_get(jobs, i);
        err[0] = '\0';
        if (gw_job_spec_parse(&spec, item, &rules, err, sizeof err) == 0) {
            check_spec(&spec, item);
            gw_job_spec_clear(&spec);
        } else {
            check_err(err);
        }
    }
    json_decref(doc);
    return 0;
}
