/*
 * test_jobs_list.c - yard_jobs_filter_check: what GET /v1/jobs accepts as
 * filters before any SQL runs (the list itself is tested against PostgreSQL
 * in tests/integration/test_jobs_list.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "err.h"
#include "jobs_list.h"

static void expect_ok(yard_jobs_filter_t f, const char *what)
{
    char why[200] = "";
    if (yard_jobs_filter_check(&f, why, sizeof why) != 0)
        fail_msg("%s: expected it to pass, got \"%s\"", what, why);
}

static void expect_refused(yard_jobs_filter_t f, const char *field)
{
    char why[200] = "";
    if (yard_jobs_filter_check(&f, why, sizeof why) != YARD_EINVAL)
        fail_msg("expected a filter with a bad %s to be refused", field);
    if (strncmp(why, field, strlen(field)) != 0)
        fail_msg("expected the message to start with \"%s\", got \"%s\"", field, why);
}

static void test_times(void **state)
{
    static const char *const good[] = {
        "2026-01-02T03:04:05Z", "2026-01-02t03:04:05z", "2026-01-02T03:04:05.123456Z",
        "2026-01-02T03:04:05+01:00", "2026-01-02T03:04:05.5-11:30", "2024-02-29T00:00:00Z",
        "2026-12-31T23:59:60Z"};
    static const char *const bad[] = {
        "2026-01-02", "2026-01-02 03:04:05Z", "2026-01-02T03:04:05", "2026-13-01T00:00:00Z",
        "2026-02-29T00:00:00Z", "2026-04-31T00:00:00Z", "2026-01-02T24:00:00Z",
        "2026-01-02T03:04:05.Z", "2026-01-02T03:04:05+1:00", "2026-01-02T03:04:05+01:00x",
        "yesterday", "", "0000-01-01T00:00:00Z", "2026-01-02T03:04:05+24:00"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        expect_ok((yard_jobs_filter_t){.since = good[i]}, good[i]);
        expect_ok((yard_jobs_filter_t){.until = good[i]}, good[i]);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        expect_refused((yard_jobs_filter_t){.since = bad[i]}, "since");
        expect_refused((yard_jobs_filter_t){.until = bad[i]}, "until");
    }
}

static void test_names_states_limits_and_text(void **state)
{
    expect_ok((yard_jobs_filter_t){0}, "no filter");
    expect_ok((yard_jobs_filter_t){.status = "dead", .queue = "mail", .type = "email.send",
                                   .error = "50%_off", .limit = 500,
                                   .owner = "01a2200e-2786-7254-9022-7092ad557842"},
              "every filter");
    expect_refused((yard_jobs_filter_t){.status = "Dead"}, "status");
    expect_refused((yard_jobs_filter_t){.status = ""}, "status");
    expect_refused((yard_jobs_filter_t){.queue = "Mail"}, "queue");
    expect_refused((yard_jobs_filter_t){.queue = "a/b"}, "queue");
    expect_refused((yard_jobs_filter_t){.type = ".hidden"}, "type");
    expect_refused((yard_jobs_filter_t){.limit = 501}, "limit");
    expect_refused((yard_jobs_filter_t){.error = ""}, "error");
    char long_text[YARD_JOBS_ERROR_TEXT_MAX + 2];
    memset(long_text, 'x', sizeof long_text - 1);
    long_text[sizeof long_text - 1] = '\0';
    expect_refused((yard_jobs_filter_t){.error = long_text}, "error");
    long_text[YARD_JOBS_ERROR_TEXT_MAX] = '\0';
    expect_ok((yard_jobs_filter_t){.error = long_text}, "200 bytes of error text");
    expect_refused((yard_jobs_filter_t){.owner = "not-a-key"}, "owner");
}

static void test_cursors(void **state)
{
    /* base64url("1767225600000000.01a2200e-2786-7254-9022-7092ad557842") */
    expect_ok((yard_jobs_filter_t){.cursor = "MTc2NzIyNTYwMDAwMDAwMC4wMWEyMjAwZS0yNzg2LTcyNTQtOTAy"
                                             "Mi03MDkyYWQ1NTc4NDI"},
              "a cursor of the list");
    static const char *const bad[] = {
        "", "not a cursor", "MTIz" /* "123" */,
        "MTc2NzIyNTYwMDAwMDAwMC5ub3QtYS11dWlk" /* "1767225600000000.not-a-uuid" */,
        "LTEuMDFhMjIwMGUtMjc4Ni03MjU0LTkwMjItNzA5MmFkNTU3ODQy" /* "-1.<uuid>" */,
        "MTc2NzIyNTYwMDAwMDAwMC4wMWEyMjAwZS0yNzg2LTcyNTQtOTAyMi03MDkyYWQ1NTc4NDI=" /* padded */};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_refused((yard_jobs_filter_t){.cursor = bad[i]}, "cursor");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_times),
        cmocka_unit_test(test_names_states_limits_and_text),
        cmocka_unit_test(test_cursors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
