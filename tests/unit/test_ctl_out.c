/*
 * test_ctl_out.c - yardctl's output layer (ops/ctl_out.h): terminal escapes
 * and control characters never survive cleaning, UTF-8 does; tables pad
 * and cut by characters; durations and --since parse.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_out.h"

static void expect_clean(const char *in, const char *want)
{
    char out[256];
    ctl_out_clean(out, sizeof out, in);
    if (strcmp(out, want) != 0)
        fail_msg("cleaning \"%s\": expected \"%s\", got \"%s\"", in, want, out);
}

static void test_clean_removes_escapes_and_controls(void **state)
{
    expect_clean("plain text", "plain text");
    expect_clean("\x1b[31mred\x1b[0m", "red");                 /* CSI colours */
    expect_clean("\x1b]0;title\x07" "after", "after");            /* OSC with BEL */
    expect_clean("\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\", "link"); /* OSC 8 with ST */
    expect_clean("a\x1b[2J" "b\x1b[1;1H" "c", "abc");                /* clear, move */
    expect_clean("bell\x07 tab\there\r\nnext", "bell  tab here  next");
    expect_clean("del\x7f" "!", "del !");
    expect_clean("c1 \xc2\x9b" "31m csi", "c1  csi");          /* 8-bit CSI */
    expect_clean("caf\xc3\xa9 \xe2\x9c\x93", "caf\xc3\xa9 \xe2\x9c\x93"); /* UTF-8 kept */
    expect_clean("bad \xff\xfe" " bytes", "bad ?? bytes");
    expect_clean("\x1b", "");
    expect_clean(NULL, "");
    /* Cut to the buffer, never in the middle of a character. */
    char small[5];
    ctl_out_clean(small, sizeof small, "ab\xc3\xa9\xc3\xa9");
    assert_string_equal(small, "ab\xc3\xa9");
}

static void test_table_pads_and_cuts_by_characters(void **state)
{
    const char *heads[] = {"A", "LONG HEAD"};
    ctl_table_t *t = ctl_table_new(heads, 2, 5);
    assert_non_null(t);
    const char *r1[] = {"\xc3\xa9t\xc3\xa9", "x"};
    const char *r2[] = {"abcdefgh", NULL};
    const char *r3[] = {"\x1b[31mred", "\x1b]0;t\x07y"};
    assert_int_equal(ctl_table_add(t, r1), 0);
    assert_int_equal(ctl_table_add(t, r2), 0);
    assert_int_equal(ctl_table_add(t, r3), 0);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ctl_table_print(t, f);
    fclose(f);
    const char *want = "A      LONG HEAD\n"
                       "\xc3\xa9t\xc3\xa9    x\n"
                       "abcd\xe2\x80\xa6  -\n"
                       "red    y\n";
    if (strcmp(buf, want) != 0)
        fail_msg("expected the table\n%s\ngot\n%s", want, buf);
    free(buf);
    ctl_table_free(t);
    ctl_table_free(NULL);
}

static void test_durations_and_since(void **state)
{
    int64_t s = 0, ms = 0;
    assert_int_equal(ctl_parse_duration(&s, "90s"), 0);
    assert_int_equal(s, 90);
    assert_int_equal(ctl_parse_duration(&s, "15m"), 0);
    assert_int_equal(s, 900);
    assert_int_equal(ctl_parse_duration(&s, "2h"), 0);
    assert_int_equal(s, 7200);
    assert_int_equal(ctl_parse_duration(&s, "7d"), 0);
    assert_int_equal(s, 7 * 86400);
    assert_int_equal(ctl_parse_duration(&s, "42"), 0);
    assert_int_equal(s, 42);
    assert_int_not_equal(ctl_parse_duration(&s, "-1h"), 0);
    assert_int_not_equal(ctl_parse_duration(&s, "1x"), 0);
    assert_int_not_equal(ctl_parse_duration(&s, "1hh"), 0);
    assert_int_not_equal(ctl_parse_duration(&s, ""), 0);
    assert_int_equal(ctl_parse_since(&ms, "2026-01-02T03:04:05Z"), 0);
    assert_int_equal(ms, 1767323045000LL);
    assert_int_equal(ctl_parse_since(&ms, "2026-01-02T03:04:05.250Z"), 0);
    assert_int_equal(ms, 1767323045250LL);
    int64_t now = ctl_now_ms();
    assert_int_equal(ctl_parse_since(&ms, "1h"), 0);
    assert_true(ms <= now - 3600 * 1000 + 1000 && ms >= now - 3600 * 1000 - 1000);
    assert_int_not_equal(ctl_parse_since(&ms, "yesterday"), 0);
    assert_int_not_equal(ctl_parse_since(&ms, "2026-01-02T03:04:05+02:00"), 0);
    char t[40];
    assert_string_equal(ctl_out_time(t, 1767323045000LL), "2026-01-02T03:04:05Z");
    assert_string_equal(ctl_out_time(t, 0), "-");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clean_removes_escapes_and_controls),
        cmocka_unit_test(test_table_pads_and_cuts_by_characters),
        cmocka_unit_test(test_durations_and_since),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
