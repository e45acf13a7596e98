/*
 * test_js_tiers.c - the subjects and durable consumers of a queue's
 * priority tiers (bus/js.h yard_js_execute_tier_names): normal keeps the
 * names of DESIGN.md, high and low get upper-case suffixes no queue name
 * can produce, and no two (queue, tier) pairs share a subject or consumer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "envelope.h"
#include "js.h"

static void expect_names(const char *queue, int prio, const char *durable, const char *subject)
{
    char d[YARD_JS_NAME_MAX], s[YARD_JS_NAME_MAX];
    yard_js_execute_tier_names(d, s, queue, prio);
    assert_string_equal(d, durable);
    assert_string_equal(s, subject);
}

static void test_tier_names(void **state)
{
    expect_names("default", YARD_PRIO_NORMAL, "execute_default", "jobs.execute.default");
    expect_names("default", YARD_PRIO_HIGH, "execute_default_HIGH", "jobs.execute.default.HIGH");
    expect_names("default", YARD_PRIO_LOW, "execute_default_LOW", "jobs.execute.default.LOW");
    expect_names("mail.eu", YARD_PRIO_HIGH, "execute_mail_eu_HIGH", "jobs.execute.mail.eu.HIGH");
    /* Out of range: the normal tier. */
    expect_names("default", 7, "execute_default", "jobs.execute.default");
}

static void test_tiers_never_collide(void **state)
{
    /* Queue names that look like another queue's tier. */
    static const char *const queues[] = {"a", "a.high", "a_high", "a.low", "a_low", "high", "a.b"};
    char seen_d[7 * 3][YARD_JS_NAME_MAX], seen_s[7 * 3][YARD_JS_NAME_MAX];
    int n = 0;
    for (size_t q = 0; q < sizeof queues / sizeof queues[0]; q++)
        for (int prio = 0; prio < YARD_JS_TIERS; prio++) {
            yard_js_execute_tier_names(seen_d[n], seen_s[n], queues[q], prio);
            for (int k = 0; k < n; k++)
                if (strcmp(seen_s[k], seen_s[n]) == 0)
                    fail_msg("subject %s given twice", seen_s[n]);
            n++;
        }
    /* Durables: '.' and '_' already meet in the normal tier (a.high and
     * a_high share execute_a_high, so their tiers do too); a tier suffix
     * adds no meeting: two tiers share a durable only as the same tier of
     * two queues whose normal durables meet. */
    for (int k = 0; k < n; k++)
        for (int m = 0; m < n; m++)
            if (k != m && strcmp(seen_d[k], seen_d[m]) == 0 &&
                (k % 3 != m % 3 || strcmp(seen_d[k - k % 3 + 1], seen_d[m - m % 3 + 1]) != 0))
                fail_msg("durable %s given to two tiers", seen_d[k]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tier_names),
        cmocka_unit_test(test_tiers_never_collide),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
