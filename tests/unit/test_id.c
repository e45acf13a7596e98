/*
 * test_id.c - UUIDv7 ids: unique and ordered over a million, monotonic when
 * the clock steps back or a millisecond overflows; text round trip;
 * idempotency ids deterministic and separated by API key.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "id.h"

static int id_cmp(const yard_id_t *a, const yard_id_t *b)
{
    return memcmp(a->b, b->b, sizeof a->b);
}

static void test_million_unique_and_ordered(void **state)
{
    enum { N = 1000000 };
    yard_id_gen_t gen;
    yard_id_t *ids = malloc(N * sizeof *ids);
    assert_non_null(ids);
    assert_int_equal(yard_id_gen_init(&gen), 0);
    for (int i = 0; i < N; i++)
        yard_id_next(&gen, &ids[i]);
    for (int i = 1; i < N; i++) {
        if (id_cmp(&ids[i - 1], &ids[i]) >= 0)
            fail_msg("id %d is not greater than id %d", i, i - 1);
    }
    /* Strictly increasing implies unique; check version and variant too. */
    for (int i = 0; i < N; i += 9973) {
        assert_int_equal(ids[i].b[6] >> 4, 7);
        assert_int_equal(ids[i].b[8] >> 6, 2);
    }
    free(ids);
}

static void test_text_sort_matches_byte_sort(void **state)
{
    yard_id_gen_t gen;
    yard_id_t a, b, back;
    char ta[37], tb[37];
    yard_id_gen_init(&gen);
    yard_id_next(&gen, &a);
    yard_id_next(&gen, &b);
    yard_id_format(&a, ta);
    yard_id_format(&b, tb);
    assert_int_equal(strlen(ta), 36);
    assert_true(strcmp(ta, tb) < 0);
    assert_int_equal(yard_id_parse(&back, ta, 36), 0);
    assert_int_equal(id_cmp(&a, &back), 0);
}

static void test_clock_step_back_and_overflow(void **state)
{
    yard_id_gen_t gen;
    yard_id_t prev, cur;
    yard_id_gen_init(&gen);
    yard_id_next_at(&gen, 1000000, &prev);
    assert_int_equal(yard_id_time_ms(&prev), 1000000);
    yard_id_next_at(&gen, 999000, &cur); /* clock went back one second */
    assert_true(id_cmp(&prev, &cur) < 0);
    assert_int_equal(yard_id_time_ms(&cur), 1000000);
    gen.counter = (UINT64_C(1) << 42) - 1; /* counter exhausted */
    prev = cur;
    yard_id_next_at(&gen, 1000000, &cur);
    assert_true(id_cmp(&prev, &cur) < 0);
    assert_int_equal(yard_id_time_ms(&cur), 1000001);
}

static void test_parse_rejects_bad_text(void **state)
{
    yard_id_t id;
    memset(&id, 0xab, sizeof id);
    const char *bad[] = {
        "0190b5a2-7c3e-7a1b-8c2d-3e4f5a6b7c8",   /* short */
        "0190b5a2-7c3e-7a1b-8c2d-3e4f5a6b7c8d0", /* long */
        "0190b5a2x7c3e-7a1b-8c2d-3e4f5a6b7c8d",  /* bad dash */
        "0190b5a2-7c3e-7a1b-8c2d-3e4f5a6b7c8g",  /* not hex */
        "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(yard_id_parse(&id, bad[i], strlen(bad[i])), YARD_EINVAL);
    assert_int_equal(id.b[0], 0xab); /* untouched */
    assert_int_equal(yard_id_parse(&id, "0190B5A2-7C3E-7A1B-8C2D-3E4F5A6B7C8D", 36), 0);
    assert_int_equal(id.b[0], 0x01);
    assert_int_equal(yard_id_time_ms(&id), 0x0190b5a27c3e);
}

static void test_idempotency_ids(void **state)
{
    uint8_t secret[YARD_ID_SECRET_LEN], other[YARD_ID_SECRET_LEN];
    yard_id_t a, b, c, d, e;
    yard_id_secret_from_text(secret, "cluster secret");
    yard_id_secret_from_text(other, "another secret");
    yard_id_from_idempotency(&a, secret, "key-1", 5, "order-42", 8);
    yard_id_from_idempotency(&b, secret, "key-1", 5, "order-42", 8);
    yard_id_from_idempotency(&c, secret, "key-2", 5, "order-42", 8);
    yard_id_from_idempotency(&d, secret, "key-1o", 6, "rder-42", 7); /* same concatenation */
    yard_id_from_idempotency(&e, other, "key-1", 5, "order-42", 8);
    assert_int_equal(id_cmp(&a, &b), 0);
    assert_int_not_equal(id_cmp(&a, &c), 0);
    assert_int_not_equal(id_cmp(&a, &d), 0);
    assert_int_not_equal(id_cmp(&a, &e), 0);
    assert_int_equal(a.b[6] >> 4, 8);
    assert_int_equal(a.b[8] >> 6, 2);
    assert_int_equal(yard_id_time_ms(&a), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_million_unique_and_ordered),
        cmocka_unit_test(test_text_sort_matches_byte_sort),
        cmocka_unit_test(test_clock_step_back_and_overflow),
        cmocka_unit_test(test_parse_rejects_bad_text),
        cmocka_unit_test(test_idempotency_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
