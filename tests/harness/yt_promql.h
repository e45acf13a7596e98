/*
 * yt_promql.h - the vector selectors of a PromQL expression, for tests that
 * check which metrics and labels a dashboard query or an alert rule uses.
 *
 * A small scanner, not a parser: it never allocates, never fails, and
 * reads what it cannot make sense of as "no selector here".
 */
#ifndef YARD_TEST_YT_PROMQL_H
#define YARD_TEST_YT_PROMQL_H

#define YT_PROMQL_MAX_LABELS 8

/* One selector: name{matchers} or {matchers}. Longer texts are cut. */
typedef struct {
    char name[200];     /* the metric name ("" for a selector without one) */
    char labels[YT_PROMQL_MAX_LABELS][64]; /* label names of its matchers, __name__ not */
    int nlabels;
    char job[200];      /* the value of job="..." when it has that matcher */
    char text[600];     /* the selector as written */
} yt_promql_sel_t;

/* Fills out with the vector selectors of expr, in order, and returns how
 * many it wrote (at most max; the rest are dropped). Strings, comments,
 * numbers, durations, range and subquery brackets, the label lists of
 * by/without/on/ignoring/group_left/group_right, and function, aggregation
 * and operator names are skipped; every other identifier is a metric
 * name. */
int yt_promql_selectors(const char *expr, yt_promql_sel_t *out, int max);

#endif
