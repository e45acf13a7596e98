/*
 * test_gw_job_spec.c - the gateway's input decoding: JSON and msgpack bodies
 * (depth, UTF-8, duplicates, trailing bytes), job validation (every field's
 * type and bounds, unknown fields named, served queues), RFC 3339 times.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "body.h"
#include "err.h"
#include "job_spec.h"
#include "sealed.h"

static const char *const served[] = {"default", "mail.eu"};
static const gw_job_rules_t rules = {served, 2, 5, 300, NULL};

/* Parses text as a JSON body and then as a job; returns the spec's rc and
 * leaves the message in err. */
static int parse_job(gw_job_spec_t *spec, const char *text, char *err, size_t cap)
{
    json_t *doc = NULL;
    int rc = gw_body_decode(&doc, GW_BODY_JSON, text, strlen(text), err, cap);
    if (rc < 0)
        return rc;
    rc = gw_job_spec_parse(spec, doc, &rules, err, cap);
    json_decref(doc);
    return rc;
}

static void test_valid_job_defaults_and_fields(void **state)
{
    gw_job_spec_t s;
    char err[256];
    json_t *doc = NULL;
    const char *body = "{\"type\":\"send.email-v2\",\"payload\":{\"to\":\"a@b\",\"n\":9007199254740993},"
                       "\"queue\":\"mail.eu\",\"priority\":\"high\",\"max_attempts\":100,"
                       "\"timeout_s\":86400,\"run_at\":\"2030-01-01T00:00:00Z\","
                       "\"notify\":\"https://hooks.example/x\",\"idempotency_key\":\"k-1\"}";
    assert_int_equal(gw_body_decode(&doc, GW_BODY_JSON, body, strlen(body), err, sizeof err), 0);
    assert_int_equal(gw_job_spec_parse(&s, doc, &rules, err, sizeof err), 0);
    assert_string_equal(s.type, "send.email-v2");
    assert_string_equal(s.queue, "mail.eu");
    assert_int_equal(s.priority, YARD_PRIO_HIGH);
    assert_int_equal(s.max_attempts, 100);
    assert_int_equal(s.timeout_s, 86400);
    assert_true(s.run_at_ms == 1893456000000LL);
    assert_string_equal(s.idempotency_key, "k-1");
    /* 2^53 + 1 survives: jansson keeps 64-bit integers. */
    assert_non_null(strstr(s.payload_json, "9007199254740993"));
    /* A bare URL is stored as the object the notify role reads. */
    assert_string_equal(s.notify_json,
                        "{\"url\":\"https://hooks.example/x\",\"on\":[\"succeeded\",\"dead\"]}");
    gw_job_spec_clear(&s);
    json_decref(doc);

    assert_int_equal(parse_job(&s, "{\"type\":\"noop\"}", err, sizeof err), 0);
    assert_string_equal(s.queue, "default");
    assert_int_equal(s.priority, YARD_PRIO_NORMAL);
    assert_int_equal(s.max_attempts, 5);
    assert_int_equal(s.timeout_s, 300);
    assert_null(s.payload_json);
    assert_true(s.run_at_ms == 0);
    gw_job_spec_clear(&s);
}

static void test_invalid_jobs_name_the_field(void **state)
{
    static const struct {
        const char *body, *mention;
    } cases[] = {
        {"{}", "`type` is required"},
        {"[1,2]", "JSON object"},
        {"{\"type\":\"noop\",\"bogus\":1}", "unknown field `bogus`"},
        {"{\"type\":\"Noop\"}", "`type`"},
        {"{\"type\":\"\"}", "`type`"},
        {"{\"type\":\"-x\"}", "`type`"},
        {"{\"type\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}", "`type`"},
        {"{\"type\":7}", "`type`"},
        {"{\"type\":\"noop\",\"queue\":\"other\"}", "not served"},
        {"{\"type\":\"noop\",\"queue\":\"Bad Queue\"}", "`queue`"},
        {"{\"type\":\"noop\",\"max_attempts\":0}", "`max_attempts`"},
        {"{\"type\":\"noop\",\"max_attempts\":101}", "`max_attempts`"},
        {"{\"type\":\"noop\",\"max_attempts\":1.5}", "`max_attempts`"},
        {"{\"type\":\"noop\",\"max_attempts\":\"3\"}", "`max_attempts`"},
        {"{\"type\":\"noop\",\"timeout_s\":0}", "`timeout_s`"},
        {"{\"type\":\"noop\",\"timeout_s\":86401}", "`timeout_s`"},
        {"{\"type\":\"noop\",\"timeout_s\":18446744073709551616}", "invalid JSON"},
        {"{\"type\":\"noop\",\"priority\":\"urgent\"}", "`priority`"},
        {"{\"type\":\"noop\",\"run_at\":\"tomorrow\"}", "`run_at`"},
        {"{\"type\":\"noop\",\"run_at\":\"2026-02-30T00:00:00Z\"}", "`run_at`"},
        {"{\"type\":\"noop\",\"run_at\":\"2026-01-01T00:00:00\"}", "`run_at`"},
        {"{\"type\":\"noop\",\"notify\":\"ftp://x\"}", "`notify`"},
        {"{\"type\":\"noop\",\"notify\":{\"secret\":\"s\"}}", "`notify`"},
        {"{\"type\":\"noop\",\"notify\":\"http://\"}", "`notify`"},
        {"{\"type\":\"noop\",\"notify\":\"https://h x/\"}", "`notify`"},
        {"{\"type\":\"noop\",\"notify\":{\"url\":\"https://h/\",\"secret\":\"s\"}}",
         "unknown field `secret`"},
        {"{\"type\":\"noop\",\"notify\":{\"url\":\"https://h/\",\"on\":[]}}", "`notify.on`"},
        {"{\"type\":\"noop\",\"notify\":{\"url\":\"https://h/\",\"on\":\"dead\"}}",
         "`notify.on`"},
        {"{\"type\":\"noop\",\"notify\":{\"url\":\"https://h/\",\"on\":[\"done\"]}}",
         "`notify.on` item 0"},
        {"{\"type\":\"noop\",\"notify\":{\"url\":\"https://h/\",\"on\":[\"dead\",\"dead\"]}}",
         "`notify.on` item 1"},
        {"{\"type\":\"noop\",\"idempotency_key\":\"\"}", "`idempotency_key`"},
        {"{\"type\":\"noop\",\"type\":\"echo\"}", "duplicate"},
        {"{\"type\":\"noop\"} x", "invalid JSON"},
        {"{\"type\":\"noop\",\"payload\":\"\xff\xfe\"}", "invalid JSON"},
        {"{\"type\":\"noop\",\"payload\":1e400}", "invalid JSON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gw_job_spec_t s;
        char err[256] = "";
        int rc = parse_job(&s, cases[i].body, err, sizeof err);
        if (rc == 0) {
            gw_job_spec_clear(&s);
            fail_msg("case %zu (%s): accepted, expected an error mentioning %s", i, cases[i].body,
                     cases[i].mention);
        }
        if (!strstr(err, cases[i].mention))
            fail_msg("case %zu (%s): error \"%s\" does not mention \"%s\"", i, cases[i].body, err,
                     cases[i].mention);
    }
}

static void test_notify_object_form(void **state)
{
    gw_job_spec_t s;
    char err[256] = "";
    assert_int_equal(parse_job(&s,
                               "{\"type\":\"noop\",\"notify\":{\"on\":[\"failed\"],"
                               "\"url\":\"http://hooks.example:8080/x?y=1\"}}",
                               err, sizeof err),
                     0);
    assert_string_equal(s.notify_json,
                        "{\"url\":\"http://hooks.example:8080/x?y=1\",\"on\":[\"failed\"]}");
    gw_job_spec_clear(&s);
}

static void test_depth_limit(void **state)
{
    char body[512], err[256];
    json_t *doc = NULL;
    size_t n = 0;
    /* 32 levels pass, 33 do not. */
    for (int depth = 32; depth <= 33; depth++) {
        n = 0;
        for (int i = 0; i < depth; i++)
            body[n++] = '[';
        for (int i = 0; i < depth; i++)
            body[n++] = ']';
        int rc = gw_body_decode(&doc, GW_BODY_JSON, body, n, err, sizeof err);
        assert_int_equal(rc, depth == 32 ? 0 : YARD_EFORMAT);
        if (rc == 0)
            json_decref(doc);
    }
    /* Brackets inside strings do not count. */
    const char *s = "{\"a\":\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"}";
    assert_int_equal(gw_body_decode(&doc, GW_BODY_JSON, s, strlen(s), err, sizeof err), 0);
    json_decref(doc);
    assert_int_equal(gw_body_decode(&doc, GW_BODY_JSON, "", 0, err, sizeof err), YARD_EFORMAT);
}

static void test_msgpack_bodies(void **state)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    json_t *doc = NULL;
    char err[256];
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str_with_body(&pk, "type", 4);
    msgpack_pack_str_with_body(&pk, "echo", 4);
    msgpack_pack_str_with_body(&pk, "payload", 7);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_int64(&pk, -5);
    msgpack_pack_double(&pk, 1.5);
    msgpack_pack_nil(&pk);
    assert_int_equal(gw_body_decode(&doc, GW_BODY_MSGPACK, sb.data, sb.size, err, sizeof err), 0);
    gw_job_spec_t s;
    assert_int_equal(gw_job_spec_parse(&s, doc, &rules, err, sizeof err), 0);
    assert_string_equal(s.type, "echo");
    assert_string_equal(s.payload_json, "[-5,1.5,null]");
    gw_job_spec_clear(&s);
    json_decref(doc);
    /* Truncated, trailing bytes, binary values, deep nesting: refused. */
    assert_int_equal(gw_body_decode(&doc, GW_BODY_MSGPACK, sb.data, sb.size - 1, err, sizeof err),
                     YARD_EFORMAT);
    msgpack_pack_nil(&pk);
    assert_int_equal(gw_body_decode(&doc, GW_BODY_MSGPACK, sb.data, sb.size, err, sizeof err),
                     YARD_EFORMAT);
    msgpack_sbuffer_clear(&sb);
    msgpack_pack_bin_with_body(&pk, "ab", 2);
    assert_int_equal(gw_body_decode(&doc, GW_BODY_MSGPACK, sb.data, sb.size, err, sizeof err),
                     YARD_EFORMAT);
    msgpack_sbuffer_clear(&sb);
    for (int i = 0; i < 10000; i++)
        msgpack_pack_array(&pk, 1);
    msgpack_pack_nil(&pk);
    assert_int_equal(gw_body_decode(&doc, GW_BODY_MSGPACK, sb.data, sb.size, err, sizeof err),
                     YARD_EFORMAT);
    assert_non_null(strstr(err, "deeper"));
    msgpack_sbuffer_destroy(&sb);
}

static void test_content_types(void **state)
{
    gw_body_kind_t k;
    /* No Content-Type is refused (415), not taken for JSON. */
    assert_int_equal(gw_body_kind(&k, NULL, 0), YARD_EINVAL);
    assert_int_equal(gw_body_kind(&k, "", 0), YARD_EINVAL);
    assert_int_equal(gw_body_kind(&k, "application/json; charset=utf-8", 31), 0);
    assert_int_equal(k, GW_BODY_JSON);
    assert_int_equal(gw_body_kind(&k, "Application/MsgPack", 19), 0);
    assert_int_equal(k, GW_BODY_MSGPACK);
    assert_int_equal(gw_body_kind(&k, "text/plain", 10), YARD_EINVAL);
    assert_int_equal(gw_body_kind(&k, "application/jsonx", 17), YARD_EINVAL);
}

static void test_rfc3339(void **state)
{
    int64_t ms = -1;
    assert_int_equal(gw_parse_rfc3339(&ms, "1970-01-01T00:00:00Z", 20), 0);
    assert_true(ms == 0);
    assert_int_equal(gw_parse_rfc3339(&ms, "2026-11-22T12:00:00.250+02:00", 29), 0);
    assert_true(ms == 1795341600250LL);
    assert_int_equal(gw_parse_rfc3339(&ms, "2024-02-29T23:59:60Z", 20), 0); /* leap day, leap second */
    const char *bad[] = {"2025-02-29T00:00:00Z", "2026-13-01T00:00:00Z", "2026-01-01T24:00:00Z",
                         "2026-01-01T00:00:00+2:00", "2026-01-01T00:00:00.Z", "1969-12-31T23:59:59Z",
                         "2026-01-01T00:00:00Zjunk"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ms = 42;
        if (gw_parse_rfc3339(&ms, bad[i], strlen(bad[i])) == 0)
            fail_msg("accepted `%s`", bad[i]);
        assert_true(ms == 42);
    }
}

/* secrets: refused without a sealer, must be an object of strings, at most
 * YARD_SEALED_PLAIN_MAX bytes, and are kept only sealed (opening the blob
 * gives the compact JSON). */
static void test_secrets_sealed_at_once(void **state)
{
    gw_job_spec_t s;
    char err[256];
    const char *body = "{\"type\":\"t\",\"secrets\":{\"pw\":\"hunter2\",\"tok\":\"x y\"}}";
    assert_int_equal(parse_job(&s, body, err, sizeof err), YARD_EINVAL);
    assert_non_null(strstr(err, "secrets_public_key"));

    char pub[YARD_SEALED_KEY_B64_LEN + 1], priv[YARD_SEALED_KEY_B64_LEN + 1];
    char kid[YARD_SEALED_KEY_ID_LEN + 1];
    assert_int_equal(yard_sealed_keygen(pub, priv, kid), 0);
    yard_sealer_t *sealer;
    assert_int_equal(yard_sealer_create(&sealer, pub), 0);
    gw_job_rules_t r = rules;
    r.sealer = sealer;
    json_t *doc = json_loads(body, 0, NULL);
    assert_int_equal(gw_job_spec_parse(&s, doc, &r, err, sizeof err), 0);
    json_decref(doc);
    assert_non_null(s.secrets_sealed);
    assert_null(strstr(s.secrets_sealed, "hunter2"));
    assert_memory_equal(s.secrets_sealed, kid, YARD_SEALED_KEY_ID_LEN);
    yard_keyring_t *k;
    assert_int_equal(yard_keyring_create(&k, priv), 0);
    char *plain;
    size_t len;
    assert_int_equal(yard_keyring_open(k, s.secrets_sealed, s.secrets_sealed_len, &plain, &len,
                                       NULL), 0);
    assert_string_equal(plain, "{\"pw\":\"hunter2\",\"tok\":\"x y\"}");
    yard_sealed_free(plain, len + 1);
    yard_keyring_destroy(k);
    gw_job_spec_clear(&s);

    static const char *const bad[] = {
        "{\"type\":\"t\",\"secrets\":[\"a\"]}",
        "{\"type\":\"t\",\"secrets\":\"pw\"}",
        "{\"type\":\"t\",\"secrets\":{\"n\":1}}",
        "{\"type\":\"t\",\"secrets\":{\"o\":{\"a\":\"b\"}}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        doc = json_loads(bad[i], 0, NULL);
        assert_non_null(doc);
        assert_int_equal(gw_job_spec_parse(&s, doc, &r, err, sizeof err), YARD_EINVAL);
        assert_non_null(strstr(err, "`secrets`"));
        json_decref(doc);
    }
    /* Over 16 KiB encoded. */
    char *big = malloc(YARD_SEALED_PLAIN_MAX + 64);
    assert_non_null(big);
    int n = snprintf(big, 64, "{\"type\":\"t\",\"secrets\":{\"k\":\"");
    memset(big + n, 'x', YARD_SEALED_PLAIN_MAX);
    strcpy(big + n + YARD_SEALED_PLAIN_MAX, "\"}}");
    doc = json_loads(big, 0, NULL);
    assert_non_null(doc);
    assert_int_equal(gw_job_spec_parse(&s, doc, &r, err, sizeof err), YARD_EINVAL);
    assert_non_null(strstr(err, "the limit is 16384"));
    json_decref(doc);
    free(big);
    yard_sealer_destroy(sealer);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_job_defaults_and_fields),
        cmocka_unit_test(test_invalid_jobs_name_the_field),
        cmocka_unit_test(test_notify_object_form),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_msgpack_bodies),
        cmocka_unit_test(test_content_types),
        cmocka_unit_test(test_rfc3339),
        cmocka_unit_test(test_secrets_sealed_at_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
