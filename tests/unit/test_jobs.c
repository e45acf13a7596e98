/*
 * test_jobs.c - the lifecycle's rules without a database: state names, the
 * transition table of jobs.h, and the envelope checks that keep one bad
 * message from failing a whole batch's statement.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "envelope.h"
#include "err.h"
#include "jobs.h"

static void test_state_names_round_trip(void **state)
{
    for (int s = 0; s < YARD_JOB_NSTATES; s++) {
        yard_job_state_t back;
        assert_int_equal(yard_job_state_parse(&back, yard_job_state_name((yard_job_state_t)s)), 0);
        assert_int_equal(back, s);
    }
    yard_job_state_t x;
    assert_int_equal(yard_job_state_parse(&x, "done"), YARD_EINVAL);
    assert_string_equal(yard_job_state_name(YARD_JOB_NSTATES), "?");
    assert_string_equal(yard_job_state_name(YARD_JOB_FAILED), "failed");
}

static void test_transitions_follow_the_table(void **state)
{
    /* Every state that is not final can be claimed, cancelled, killed. */
    const yard_job_state_t open[] = {YARD_JOB_QUEUED, YARD_JOB_SCHEDULED, YARD_JOB_RUNNING,
                                     YARD_JOB_FAILED};
    for (size_t i = 0; i < sizeof open / sizeof open[0]; i++) {
        assert_true(yard_job_transition_allowed(open[i], YARD_JOB_RUNNING));
        assert_true(yard_job_transition_allowed(open[i], YARD_JOB_CANCELLED));
        assert_true(yard_job_transition_allowed(open[i], YARD_JOB_DEAD));
        assert_false(yard_job_state_final(open[i]));
    }
    /* Every open state records an outcome (a short run is never written
     * running); a final one never does. */
    for (size_t i = 0; i < sizeof open / sizeof open[0]; i++) {
        assert_true(yard_job_transition_allowed(open[i], YARD_JOB_SUCCEEDED));
        assert_true(yard_job_transition_allowed(open[i], YARD_JOB_FAILED));
    }
    assert_false(yard_job_transition_allowed(YARD_JOB_DEAD, YARD_JOB_SUCCEEDED));
    /* Final states stay, but for a replay of a dead job. */
    for (int to = 0; to < YARD_JOB_NSTATES; to++) {
        assert_false(yard_job_transition_allowed(YARD_JOB_SUCCEEDED, (yard_job_state_t)to));
        assert_false(yard_job_transition_allowed(YARD_JOB_CANCELLED, (yard_job_state_t)to));
        assert_int_equal(yard_job_transition_allowed(YARD_JOB_DEAD, (yard_job_state_t)to),
                         to == YARD_JOB_QUEUED);
    }
    assert_true(yard_job_state_final(YARD_JOB_SUCCEEDED));
    assert_true(yard_job_state_final(YARD_JOB_DEAD));
    assert_true(yard_job_state_final(YARD_JOB_CANCELLED));
    /* Release: scheduled -> queued, never queued -> scheduled. */
    assert_true(yard_job_transition_allowed(YARD_JOB_SCHEDULED, YARD_JOB_QUEUED));
    assert_false(yard_job_transition_allowed(YARD_JOB_QUEUED, YARD_JOB_SCHEDULED));
    assert_false(yard_job_transition_allowed(YARD_JOB_NSTATES, YARD_JOB_QUEUED));
}

static yard_envelope_t good_env(void)
{
    yard_envelope_t e;
    yard_env_init(&e);
    e.id = YARD_STR("01a20125-4f9f-7585-826f-1f6743d8fe2b");
    e.type = YARD_STR("echo");
    e.queue = YARD_STR("default");
    e.payload = YARD_STR("{\"a\":[1,2.5,\"x\"],\"big\":123456789012345678901234567890}");
    e.api_key_id = YARD_STR("01a20125-0000-7000-8000-000000000001");
    e.created_at_ms = 1;
    return e;
}

static void expect_refused(const yard_envelope_t *e, const char *field)
{
    char why[160] = "";
    assert_int_equal(yard_jobs_check(e, why, sizeof why), YARD_EINVAL);
    if (!strstr(why, field))
        fail_msg("expected the reason to name %s, got: %s", field, why);
}

static void test_check_accepts_a_good_job(void **state)
{
    yard_envelope_t e = good_env();
    char why[160] = "";
    assert_int_equal(yard_jobs_check(&e, why, sizeof why), 0);
    e.api_key_id = (yard_str_t){NULL, 0}; /* auth off: no key */
    e.payload = (yard_str_t){NULL, 0};
    e.idempotency_key = YARD_STR("order-42 \xc3\xa9t\xc3\xa9");
    assert_int_equal(yard_jobs_check(&e, why, sizeof why), 0);
}

static void test_check_refuses_what_the_store_cannot_cast(void **state)
{
    yard_envelope_t e = good_env();
    e.api_key_id = YARD_STR("not-a-uuid");
    expect_refused(&e, "api_key_id");
    e = good_env();
    e.api_key_id = YARD_STR("01a20125-0000-7000-8000-00000000000g");
    expect_refused(&e, "api_key_id");
    e = good_env();
    e.payload = YARD_STR("{not json");
    expect_refused(&e, "payload");
    e = good_env();
    e.payload = YARD_STR("\"nul \\u0000 inside\""); /* jsonb refuses \u0000 */
    expect_refused(&e, "payload");
    e = good_env();
    e.notify = YARD_STR("[");
    expect_refused(&e, "notify");
    e = good_env();
    e.workflow_id = YARD_STR("01a20125-0000-7000-8000-000000000002"); /* without step */
    expect_refused(&e, "workflow_id");
    e = good_env();
    e.idempotency_key = (yard_str_t){"a\0b", 3};
    expect_refused(&e, "idempotency_key");
    e = good_env();
    e.idempotency_key = YARD_STR("\xc3\x28"); /* bad continuation */
    expect_refused(&e, "idempotency_key");
    e = good_env();
    e.traceparent = YARD_STR("\xed\xa0\x80"); /* a UTF-16 surrogate */
    expect_refused(&e, "traceparent");
    e = good_env();
    e.step_id = YARD_STR("\xe2\x82"); /* truncated */
    e.workflow_id = YARD_STR("01a20125-0000-7000-8000-000000000002");
    expect_refused(&e, "step_id");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_names_round_trip),
        cmocka_unit_test(test_transitions_follow_the_table),
        cmocka_unit_test(test_check_accepts_a_good_job),
        cmocka_unit_test(test_check_refuses_what_the_store_cannot_cast),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
