/*
 * test_iostats.c - unit tests for libyard's process-wide I/O statistics
 * (bus/iostats.c): what the recording functions add, and the four families
 * yard_iostats_register exports with the program label.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "iostats.h"

static char *render(yard_metrics_t *reg)
{
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(yard_metrics_render(reg, &text, &len), 0);
    return text;
}

static void assert_has(const char *text, const char *line)
{
    if (!strstr(text, line))
        fail_msg("expected the line `%s` in:\n%s", line, text);
}

/* One test: the figures are process-wide, so the order of the checks is
 * the order of the recordings. */
static void test_record_and_export(void **state)
{
    yard_metrics_t *reg = NULL;
    yard_iostats_t s;
    assert_int_equal(yard_metrics_create(&reg), 0);
    assert_int_equal(yard_iostats_register(reg, ""), YARD_EINVAL);
    assert_int_equal(yard_iostats_register(reg, "test"), 0);
    assert_int_equal(yard_iostats_register(reg, "test"), YARD_EEXIST);

    /* Nothing measured yet: no RTT sample, zero counts. */
    char *text = render(reg);
    assert_null(strstr(text, "yard_nats_rtt_seconds{"));
    assert_has(text, "# TYPE yard_pg_query_duration_seconds histogram\n");
    assert_has(text, "yard_pg_query_duration_seconds_count{program=\"test\"} 0\n");
    assert_has(text, "yard_pg_errors_total{program=\"test\"} 0\n");
    assert_has(text, "yard_nats_errors_total{program=\"test\"} 0\n");
    free(text);

    yard_iostats_pg_observe(0.0005); /* on the first bound: first bucket */
    yard_iostats_pg_observe(0.002);
    yard_iostats_pg_observe(60);     /* past the last bound: +Inf */
    yard_iostats_pg_observe(-1);     /* a clock step: counted as 0 */
    yard_iostats_pg_error();
    yard_iostats_nats_error();
    yard_iostats_nats_error();
    yard_iostats_nats_rtt(0.00025);
    yard_iostats_read(&s);
    assert_int_equal(s.pg_statements, 4);
    assert_int_equal(s.pg_counts[0], 2);
    assert_int_equal(s.pg_counts[2], 1);
    assert_int_equal(s.pg_counts[YARD_IOSTATS_PG_NBOUNDS], 1);
    assert_true(s.pg_seconds > 60.0024 && s.pg_seconds < 60.0026);
    assert_int_equal(s.pg_errors, 1);
    assert_int_equal(s.nats_errors, 2);
    assert_true(s.nats_rtt > 0.000249 && s.nats_rtt < 0.000251);

    text = render(reg);
    assert_has(text, "yard_pg_query_duration_seconds_bucket{program=\"test\",le=\"0.0005\"} 2\n");
    assert_has(text, "yard_pg_query_duration_seconds_bucket{program=\"test\",le=\"0.001\"} 2\n");
    assert_has(text, "yard_pg_query_duration_seconds_bucket{program=\"test\",le=\"0.0025\"} 3\n");
    assert_has(text, "yard_pg_query_duration_seconds_bucket{program=\"test\",le=\"10\"} 3\n");
    assert_has(text, "yard_pg_query_duration_seconds_bucket{program=\"test\",le=\"+Inf\"} 4\n");
    assert_has(text, "yard_pg_query_duration_seconds_count{program=\"test\"} 4\n");
    assert_has(text, "yard_pg_errors_total{program=\"test\"} 1\n");
    assert_has(text, "yard_nats_errors_total{program=\"test\"} 2\n");
    assert_has(text, "# TYPE yard_nats_rtt_seconds gauge\n");
    assert_has(text, "yard_nats_rtt_seconds{program=\"test\"} 0.00025\n");
    free(text);
    yard_metrics_destroy(reg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_and_export),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
