/*
 * test_accepted.c - the accepted-jobs event codec: round trip, and every
 * malformed input refused without reading past its end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "accepted.h"
#include "err.h"

static void test_round_trip(void **state)
{
    yard_accepted_t in[3] = {{1, "abc", 3}, {UINT64_C(1) << 40, "", 0}, {7, "xyz\0w", 5}};
    char buf[128];
    size_t len = 0;
    assert_int_equal(yard_accepted_size(in, 3), YARD_ACCEPTED_HEAD + 3 * YARD_ACCEPTED_ITEM + 8);
    assert_int_equal(yard_accepted_encode(buf, sizeof buf, in, 3, &len), 0);
    assert_int_equal(len, yard_accepted_size(in, 3));
    yard_accepted_reader_t r;
    uint32_t count = 0;
    assert_int_equal(yard_accepted_open(&r, buf, len, &count), 0);
    assert_int_equal(count, 3);
    for (int i = 0; i < 3; i++) {
        yard_accepted_t out;
        assert_int_equal(yard_accepted_next(&r, &out), 1);
        assert_true(out.seq == in[i].seq);
        assert_int_equal(out.len, in[i].len);
        assert_memory_equal(out.env, in[i].env, in[i].len);
    }
    yard_accepted_t out;
    assert_int_equal(yard_accepted_next(&r, &out), 0);
    /* Too small a buffer is refused, not overrun. */
    assert_int_equal(yard_accepted_encode(buf, len - 1, in, 3, &len), YARD_ERANGE);
}

static void test_malformed_is_refused(void **state)
{
    yard_accepted_t in[2] = {{1, "abcd", 4}, {2, "ef", 2}};
    char buf[64];
    size_t len = 0;
    yard_accepted_reader_t r;
    yard_accepted_t out;
    uint32_t count;
    assert_int_equal(yard_accepted_encode(buf, sizeof buf, in, 2, &len), 0);
    assert_int_equal(yard_accepted_open(&r, "YAJ", 3, &count), YARD_EFORMAT);
    assert_int_equal(yard_accepted_open(&r, "XAJ1\0\0\0\0", 8, &count), YARD_EFORMAT);
    /* Every truncation ends in an error, never a read past the end. */
    for (size_t cut = YARD_ACCEPTED_HEAD; cut < len; cut++) {
        int rc;
        assert_int_equal(yard_accepted_open(&r, buf, cut, &count), 0);
        while ((rc = yard_accepted_next(&r, &out)) == 1)
            assert_true(out.env + out.len <= buf + cut);
        assert_int_equal(rc, YARD_EFORMAT);
    }
    /* A length beyond the end, and bytes after the last job. */
    char bad[64];
    memcpy(bad, buf, len);
    bad[YARD_ACCEPTED_HEAD + 11] = 100;
    assert_int_equal(yard_accepted_open(&r, bad, len, &count), 0);
    assert_int_equal(yard_accepted_next(&r, &out), YARD_EFORMAT);
    memcpy(bad, buf, len);
    bad[len] = 'x';
    assert_int_equal(yard_accepted_open(&r, bad, len + 1, &count), 0);
    assert_int_equal(yard_accepted_next(&r, &out), 1);
    assert_int_equal(yard_accepted_next(&r, &out), 1);
    assert_int_equal(yard_accepted_next(&r, &out), YARD_EFORMAT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_malformed_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
