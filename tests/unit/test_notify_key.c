/*
 * test_notify_key.c - per-key webhook secrets (bus/notify_key.h): a known
 * answer (computed with Python's hmac), distinct keys get distinct
 * secrets, and empty inputs are refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "err.h"
#include "notify_key.h"

static void test_known_answer(void **state)
{
    char out[YARD_NOTIFY_KEY_SECRET_LEN + 1];
    /* hmac.new(b"cluster-secret", b"switchyard-notify-key:" + id, sha256).hexdigest() */
    assert_int_equal(
        yard_notify_key_secret(out, "cluster-secret", "01a22013-ac55-758c-b9f8-4fab1f6ce9ba"), 0);
    assert_string_equal(out, "723b53fae159aa7ac6b43aed6c1065318e2255463500ff704ddd973f1b3bd176");
}

static void test_keys_and_secrets_differ(void **state)
{
    char a[YARD_NOTIFY_KEY_SECRET_LEN + 1], b[YARD_NOTIFY_KEY_SECRET_LEN + 1];
    assert_int_equal(yard_notify_key_secret(a, "s", "01a22013-ac55-758c-b9f8-4fab1f6ce9ba"), 0);
    assert_int_equal(yard_notify_key_secret(b, "s", "01a22013-ac55-758c-b9f8-4fab1f6ce9bb"), 0);
    assert_string_not_equal(a, b);
    assert_int_equal(yard_notify_key_secret(b, "t", "01a22013-ac55-758c-b9f8-4fab1f6ce9ba"), 0);
    assert_string_not_equal(a, b);
    assert_int_equal(strlen(a), YARD_NOTIFY_KEY_SECRET_LEN);
}

static void test_empty_inputs_refused(void **state)
{
    char out[YARD_NOTIFY_KEY_SECRET_LEN + 1];
    assert_int_equal(yard_notify_key_secret(out, "", "k"), YARD_EINVAL);
    assert_int_equal(yard_notify_key_secret(out, "s", ""), YARD_EINVAL);
    assert_int_equal(yard_notify_key_secret(out, NULL, "k"), YARD_EINVAL);
    assert_int_equal(yard_notify_key_secret(out, "s", NULL), YARD_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_answer),
        cmocka_unit_test(test_keys_and_secrets_differ),
        cmocka_unit_test(test_empty_inputs_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
