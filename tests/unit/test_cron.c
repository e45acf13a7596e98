/*
 * test_cron.c - cron parsing and next firing (bus/cron.h): fields, names,
 * steps, errors; UTC; Europe/Berlin across both DST changes of 2026 (the
 * gap of March 29 is skipped, the repeat of October 25 fires once);
 * New York; zone validation.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cron.h"
#include "err.h"

/* Unix seconds of a UTC time written "YYYY-MM-DDTHH:MM". */
static int64_t utc(const char *s)
{
    struct tm tm = {0};
    int n = sscanf(s, "%d-%d-%dT%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                   &tm.tm_min);
    assert_int_equal(n, 5);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm);
}

static void fmt(char out[32], int64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M", &tm);
}

/* Checks that the firing of cron in tz after `after` (UTC) is `want` (UTC). */
static void expect_next(const char *cron, const char *tz, const char *after, const char *want)
{
    yard_cron_t c;
    char why[160] = "", got[32];
    int64_t t = 0;
    int rc = yard_cron_parse(&c, cron, why, sizeof why);
    if (rc != 0)
        fail_msg("`%s` did not parse: %s", cron, why);
    assert_int_equal(yard_cron_next(&t, &c, tz, utc(after)), 0);
    fmt(got, t);
    if (strcmp(got, want) != 0)
        fail_msg("`%s` in %s after %s: expected %s, got %s", cron, tz, after, want, got);
}

/* The n successive firings after `after`, formatted into out. */
static void firings(const char *cron, const char *tz, const char *after, int n, char out[][32])
{
    yard_cron_t c;
    assert_int_equal(yard_cron_parse(&c, cron, NULL, 0), 0);
    int64_t t = utc(after);
    for (int i = 0; i < n; i++) {
        assert_int_equal(yard_cron_next(&t, &c, tz, t), 0);
        fmt(out[i], t);
    }
}

static void test_parse_valid(void **state)
{
    static const char *const ok[] = {"* * * * *", "0 0 1 1 *", "*/15 9-17 * * mon-fri",
                                     "0,30 * * * *", "5/10 * * * *", "0 0 * jan,JUL sun",
                                     "59 23 31 12 7", "  1  2  3  4  5  ", "@hourly", "@daily",
                                     "@midnight", "@weekly", "@monthly", "@yearly", "@annually",
                                     "1-5/2 * * * *"};
    yard_cron_t c;
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char why[160] = "";
        if (yard_cron_parse(&c, ok[i], why, sizeof why) != 0)
            fail_msg("`%s` should parse: %s", ok[i], why);
    }
    assert_int_equal(yard_cron_parse(&c, "*/15 9-17 * * 1-5", NULL, 0), 0);
    assert_true(c.minutes == ((1ull << 0) | (1ull << 15) | (1ull << 30) | (1ull << 45)));
    assert_int_equal(c.hours, 0x3fe00);
    assert_int_equal(c.wdays, 0x3e);
    assert_int_equal(yard_cron_parse(&c, "0 0 * * 7", NULL, 0), 0);
    assert_int_equal(c.wdays, 1); /* 7 is Sunday */
}

static void test_parse_invalid(void **state)
{
    static const char *const bad[] = {"",          "* * * *",       "* * * * * *",  "60 * * * *",
                                      "* 24 * * *", "* * 0 * *",    "* * 32 * *",   "* * * 13 *",
                                      "* * * * 8",  "5-1 * * * *",  "*/0 * * * *",  "*/61 * * * *",
                                      "a * * * *",  "1,,2 * * * *", "@every 5m",    "* * * foo *",
                                      "1- * * * *", "*/ * * * *",   "-1 * * * *",   "1.5 * * * *"};
    yard_cron_t c;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char why[160] = "";
        if (yard_cron_parse(&c, bad[i], why, sizeof why) == 0)
            fail_msg("`%s` should not parse", bad[i]);
        assert_true(why[0] != '\0');
    }
    char why[160];
    assert_int_equal(yard_cron_parse(&c, "* 24 * * *", why, sizeof why), YARD_EINVAL);
    assert_non_null(strstr(why, "hour"));
}

static void test_next_utc(void **state)
{
    expect_next("* * * * *", "UTC", "2026-01-01T00:00", "2026-01-01T00:01");
    expect_next("0 * * * *", "UTC", "2026-01-01T00:00", "2026-01-01T01:00");
    expect_next("@daily", "UTC", "2026-12-31T23:59", "2027-01-01T00:00");
    expect_next("0 0 29 2 *", "UTC", "2026-03-01T00:00", "2028-02-29T00:00");
    /* 2026-11-28 is a Saturday: the next Monday. */
    expect_next("30 8 * * mon", "UTC", "2026-11-28T10:00", "2026-11-30T08:30");
    /* Both day fields restricted: either matches (the 1st, or a Friday). */
    expect_next("0 0 1 * fri", "UTC", "2026-11-28T00:00", "2026-12-01T00:00");
    expect_next("0 0 1 * fri", "UTC", "2026-12-01T00:00", "2026-12-04T00:00");
    /* A time between minutes: the next whole minute. */
    yard_cron_t c;
    int64_t t;
    assert_int_equal(yard_cron_parse(&c, "* * * * *", NULL, 0), 0);
    assert_int_equal(yard_cron_next(&t, &c, "UTC", utc("2026-01-01T00:00") + 30), 0);
    assert_int_equal(t, utc("2026-01-01T00:01"));
    /* Never. */
    assert_int_equal(yard_cron_parse(&c, "0 0 30 2 *", NULL, 0), 0);
    assert_int_equal(yard_cron_next(&t, &c, "UTC", utc("2026-01-01T00:00")), YARD_ENOTFOUND);
}

/* Europe/Berlin, 2026-03-29: 02:00 CET becomes 03:00 CEST (01:00 UTC). */
static void test_berlin_spring_gap_skipped(void **state)
{
    /* 02:30 does not exist on the 29th: from the 28th straight to the 30th. */
    expect_next("30 2 * * *", "Europe/Berlin", "2026-03-27T01:30", "2026-03-28T01:30");
    expect_next("30 2 * * *", "Europe/Berlin", "2026-03-28T01:30", "2026-03-30T00:30");
    /* 01:30 CET and 03:30 CEST exist. */
    expect_next("30 1 * * *", "Europe/Berlin", "2026-03-28T12:00", "2026-03-29T00:30");
    expect_next("30 3 * * *", "Europe/Berlin", "2026-03-28T12:00", "2026-03-29T01:30");
    /* Every 30 minutes across the change: 01:30 CET, then 03:00 CEST. */
    char f[4][32];
    firings("*/30 * * * *", "Europe/Berlin", "2026-03-29T00:00", 4, f);
    assert_string_equal(f[0], "2026-03-29T00:30");
    assert_string_equal(f[1], "2026-03-29T01:00");
    assert_string_equal(f[2], "2026-03-29T01:30");
    assert_string_equal(f[3], "2026-03-29T02:00");
    /* Hourly: 23 firings that local day. */
    yard_cron_t c;
    int64_t t = utc("2026-03-28T23:00") - 60, end = utc("2026-03-29T22:00");
    int n = 0;
    assert_int_equal(yard_cron_parse(&c, "@hourly", NULL, 0), 0);
    while (yard_cron_next(&t, &c, "Europe/Berlin", t) == 0 && t < end)
        n++;
    assert_int_equal(n, 23);
}

/* Europe/Berlin, 2026-10-25: 03:00 CEST becomes 02:00 CET (01:00 UTC). */
static void test_berlin_autumn_repeat_fires_once(void **state)
{
    /* 02:30 happens at 00:30 UTC (CEST) and 01:30 UTC (CET): fires once. */
    char f[3][32];
    firings("30 2 * * *", "Europe/Berlin", "2026-10-24T12:00", 3, f);
    assert_string_equal(f[0], "2026-10-25T00:30");
    assert_string_equal(f[1], "2026-10-26T01:30");
    assert_string_equal(f[2], "2026-10-27T01:30");
    /* Asked from inside the repeated hour (a restart then): not again. */
    expect_next("30 2 * * *", "Europe/Berlin", "2026-10-25T01:10", "2026-10-26T01:30");
    /* Every 20 minutes: 02:00, 02:20, 02:40 once each, then 03:00 CET. */
    char g[5][32];
    firings("*/20 * * * *", "Europe/Berlin", "2026-10-24T23:50", 5, g);
    assert_string_equal(g[0], "2026-10-25T00:00");
    assert_string_equal(g[1], "2026-10-25T00:20");
    assert_string_equal(g[2], "2026-10-25T00:40");
    assert_string_equal(g[3], "2026-10-25T02:00");
    assert_string_equal(g[4], "2026-10-25T02:20");
}

static void test_new_york(void **state)
{
    /* 09:00 EST (UTC-5) in November, 09:00 EDT (UTC-4) in July. */
    expect_next("0 9 * * *", "America/New_York", "2026-11-28T00:00", "2026-11-28T14:00");
    expect_next("0 9 * * *", "America/New_York", "2026-07-01T00:00", "2026-07-01T13:00");
    /* Switching zones back and forth gives the same answers. */
    expect_next("30 2 * * *", "Europe/Berlin", "2026-03-28T01:30", "2026-03-30T00:30");
    expect_next("0 9 * * *", "America/New_York", "2026-11-28T00:00", "2026-11-28T14:00");
}

static void test_zones(void **state)
{
    assert_true(yard_tz_valid("UTC"));
    assert_true(yard_tz_valid("Europe/Berlin"));
    assert_true(yard_tz_valid("America/Argentina/Buenos_Aires"));
    assert_false(yard_tz_valid(""));
    assert_false(yard_tz_valid("Mars/Olympus"));
    assert_false(yard_tz_valid("../../etc/passwd"));
    assert_false(yard_tz_valid("/etc/localtime"));
    assert_false(yard_tz_valid("Europe"));      /* a folder */
    assert_false(yard_tz_valid("zone.tab"));    /* not TZif */
    assert_false(yard_tz_valid("Europe/Berlin "));
    yard_cron_t c;
    int64_t t;
    assert_int_equal(yard_cron_parse(&c, "* * * * *", NULL, 0), 0);
    assert_int_equal(yard_cron_next(&t, &c, "Mars/Olympus", 0), YARD_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_valid),
        cmocka_unit_test(test_parse_invalid),
        cmocka_unit_test(test_next_utc),
        cmocka_unit_test(test_berlin_spring_gap_skipped),
        cmocka_unit_test(test_berlin_autumn_repeat_fires_once),
        cmocka_unit_test(test_new_york),
        cmocka_unit_test(test_zones),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
