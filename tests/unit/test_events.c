/*
 * test_events.c - lifecycle events (bus/events.h) and the audit chain's
 * hash (bus/audit.h), without servers: event ids and subjects, the JSON
 * body read back, refusals, and the hash against its definition (BLAKE2b
 * over the previous hash and the canonical bytes written out by hand).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "audit.h"
#include "err.h"
#include "events.h"
#include "log.h"

#define JOB "01a2201a-0000-7000-8000-000000000001"

static void test_event_id_and_subject(void **state)
{
    yard_event_msg_t m;
    yard_event_t e = {YARD_EVENT_JOB, YARD_EVENT_ATTEMPT_FAILED, JOB, "3", "worker:execute@h:1",
                      1700000000123, "4bf92f3577b34da6a3ce929d0e0e4736", "{\"attempt\":3}"};
    assert_int_equal(yard_event_encode(&m, &e), 0);
    assert_string_equal(m.id, "ev.job.attempt_failed." JOB ".3");
    assert_string_equal(m.subject, "events.jobs.attempt_failed");
    yard_event_msg_free(&m);

    yard_event_t ops = {YARD_EVENT_OPS, YARD_EVENT_KEY_CREATED, JOB, NULL, "operator:ann", 0,
                        NULL, NULL};
    assert_int_equal(yard_event_encode(&m, &ops), 0);
    assert_string_equal(m.id, "ev.ops.key_created." JOB);
    assert_string_equal(m.subject, "events.ops.key_created");
    yard_event_msg_free(&m);
}

static void test_body_reads_back(void **state)
{
    yard_event_msg_t m;
    yard_event_read_t r;
    yard_event_t e = {YARD_EVENT_JOB, YARD_EVENT_DEAD, JOB, "2", "worker:\"q\"\n@h",
                      1700000000123, "4bf92f3577b34da6a3ce929d0e0e4736",
                      " {\"error\":\"boom\",\"attempt\":2} "};
    assert_int_equal(yard_event_encode(&m, &e), 0);
    assert_int_equal(yard_event_read(&r, m.body, m.len), 0);
    assert_string_equal(r.id, m.id);
    assert_string_equal(r.event, "job.dead");
    assert_string_equal(r.actor, "worker:\"q\"\n@h");
    assert_string_equal(r.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_string_equal(r.job_id, JOB);
    assert_null(r.workflow_id);
    assert_null(r.target);
    assert_true(r.at_ms == 1700000000123);
    assert_string_equal(json_string_value(json_object_get(r.data, "error")), "boom");
    yard_event_read_free(&r);
    yard_event_msg_free(&m);

    /* No data: an empty object; at 0: now. */
    yard_event_t w = {YARD_EVENT_WORKFLOW, "succeeded", JOB, NULL, "worker:schedule@h", 0, NULL,
                      NULL};
    assert_int_equal(yard_event_encode(&m, &w), 0);
    assert_int_equal(yard_event_read(&r, m.body, m.len), 0);
    assert_string_equal(r.workflow_id, JOB);
    assert_null(r.job_id);
    assert_true(r.at_ms > 1700000000000);
    assert_int_equal(json_object_size(r.data), 0);
    yard_event_read_free(&r);
    yard_event_msg_free(&m);
}

static void test_bad_events_are_refused(void **state)
{
    yard_event_msg_t m;
    yard_event_read_t r;
    const yard_event_t bad[] = {
        {YARD_EVENT_JOB, "Started", JOB, NULL, "a", 0, NULL, NULL},     /* upper case */
        {YARD_EVENT_JOB, "", JOB, NULL, "a", 0, NULL, NULL},            /* no name */
        {YARD_EVENT_JOB, "started", NULL, NULL, "a", 0, NULL, NULL},    /* no id */
        {YARD_EVENT_JOB, "started", "a b", NULL, "a", 0, NULL, NULL},   /* space in id */
        {YARD_EVENT_JOB, "started", JOB, "1 2", "a", 0, NULL, NULL},    /* space in key */
        {YARD_EVENT_JOB, "started", JOB, NULL, NULL, 0, NULL, NULL},    /* no actor */
        {YARD_EVENT_JOB, "started", JOB, NULL, "a", 0, NULL, "[1,2]"}, /* data not an object */
        {YARD_EVENT_JOB, "accepted", JOB, NULL, "a", 0, NULL, NULL},    /* the grouped subject */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (yard_event_encode(&m, &bad[i]) != YARD_EINVAL)
            fail_msg("expected event %zu to be refused", i);
    assert_int_equal(yard_event_read(&r, "not json", 8), YARD_EFORMAT);
    assert_int_equal(yard_event_read(&r, "{\"v\":2,\"id\":\"x\"}", 16), YARD_EFORMAT);
    const char *no_actor = "{\"v\":1,\"id\":\"x\",\"event\":\"job.dead\",\"at\":1}";
    assert_int_equal(yard_event_read(&r, no_actor, strlen(no_actor)), YARD_EFORMAT);
}

/* The canonical bytes of audit.h, written out for one row. */
static void put_field(crypto_generichash_state *st, const char *s)
{
    unsigned char len[4] = {0xff, 0xff, 0xff, 0xff};
    if (s) {
        uint32_t n = (uint32_t)strlen(s);
        len[0] = n >> 24, len[1] = n >> 16, len[2] = n >> 8, len[3] = n;
    }
    crypto_generichash_update(st, len, 4);
    if (s)
        crypto_generichash_update(st, (const unsigned char *)s, strlen(s));
}

static void test_hash_follows_its_definition(void **state)
{
    unsigned char prev[YARD_AUDIT_HASH_LEN], got[YARD_AUDIT_HASH_LEN], want[YARD_AUDIT_HASH_LEN];
    memset(prev, 0xab, sizeof prev);
    yard_audit_row_t r = {42, "ev.job.succeeded." JOB, 1700000000123000, "job.succeeded", JOB,
                          NULL, "worker:execute@h:1", "{\"attempt\": 1}"};
    yard_audit_hash(got, prev, &r);

    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, YARD_AUDIT_HASH_LEN);
    crypto_generichash_update(&st, prev, sizeof prev);
    crypto_generichash_update(&st, (const unsigned char *)"yard-audit-v1\n", 14);
    const char *fields[] = {"42", r.event_id, "1700000000123000", r.event, JOB, NULL, r.actor,
                            r.detail};
    for (size_t i = 0; i < 8; i++)
        put_field(&st, fields[i]);
    crypto_generichash_final(&st, want, sizeof want);
    assert_memory_equal(got, want, sizeof want);

    /* Every field, and the link, changes the hash; NULL differs from "". */
    yard_audit_row_t s = r;
    s.actor = "mallory";
    yard_audit_hash(want, prev, &s);
    assert_memory_not_equal(got, want, sizeof want);
    s = r;
    s.workflow_id = "";
    yard_audit_hash(want, prev, &s);
    assert_memory_not_equal(got, want, sizeof want);
    yard_audit_hash(want, NULL, &r);
    assert_memory_not_equal(got, want, sizeof want);
}

int main(void)
{
    yard_log_init("test_events", YARD_LOG_OFF);
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_event_id_and_subject),
        cmocka_unit_test(test_body_reads_back),
        cmocka_unit_test(test_bad_events_are_refused),
        cmocka_unit_test(test_hash_follows_its_definition),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
