/*
 * test_metrics.c - unit tests for the metrics registry (bus/metrics.c).
 *
 * Checks the exact Prometheus text for each kind of family, escaping,
 * histogram bucket placement at the bounds, name validation, callback
 * families (histograms too), process metrics, exact totals under concurrent increments, and,
 * when promtool is installed, that `promtool check metrics` accepts a full
 * render.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "metrics.h"

#define LABELS(...) ((const char *const[]){__VA_ARGS__, NULL})

static int setup(void **state)
{
    yard_metrics_t *reg = NULL;
    if (yard_metrics_create(&reg) != 0)
        return -1;
    *state = reg;
    return 0;
}

static int teardown(void **state)
{
    yard_metrics_destroy(*state);
    return 0;
}

/* Renders reg; the caller frees the result. */
static char *render(yard_metrics_t *reg)
{
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(yard_metrics_render(reg, &text, &len), 0);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    return text;
}

static void assert_render(yard_metrics_t *reg, const char *expected)
{
    char *text = render(reg);
    if (strcmp(text, expected) != 0) {
        print_error("expected:\n%s\ngot:\n%s\n", expected, text);
        free(text);
        fail();
    }
    free(text);
}

static void test_create_destroy(void **state)
{
    yard_metrics_t *reg = NULL;
    char *text = (char *)"untouched";
    size_t len = 99;

    yard_metrics_destroy(NULL);
    assert_int_equal(yard_metrics_create(NULL), YARD_EINVAL);
    assert_int_equal(yard_metrics_create(&reg), 0);
    assert_int_equal(yard_metrics_render(reg, NULL, &len), YARD_EINVAL);
    assert_int_equal(yard_metrics_render(NULL, &text, &len), YARD_EINVAL);
    assert_string_equal(text, "untouched");
    assert_int_equal(len, 99);
    assert_render(reg, "");
    yard_metrics_destroy(reg);
}

static void test_render_all_kinds(void **state)
{
    yard_metrics_t *reg = *state;
    yard_metrics_family_t *reqs, *inflight, *dur, *published;
    const double bounds[] = {0.125, 0.25, 1};

    assert_int_equal(yard_metrics_counter_family(&reqs, reg, "yard_http_requests_total",
                                                 "HTTP requests by route and code.",
                                                 LABELS("route", "code")),
                     0);
    assert_int_equal(yard_metrics_gauge_family(&inflight, reg, "yard_jobs_in_flight",
                                               "Jobs being run, by role.", LABELS("role")),
                     0);
    assert_int_equal(yard_metrics_histogram_family(&dur, reg,
                                                   "yard_http_request_duration_seconds",
                                                   "Request latency.", LABELS("route"), bounds,
                                                   3),
                     0);
    assert_int_equal(yard_metrics_counter_family(&published, reg, "yard_jobs_published_total",
                                                 "Jobs published.", NULL),
                     0);

    yard_metrics_counter_add(yard_metrics_counter_with(reqs, "POST /v1/jobs", "202", NULL), 3);
    yard_metrics_counter_add(yard_metrics_counter_with(reqs, "GET /v1/jobs/{id}", "404", NULL),
                             1);
    yard_metrics_gauge_t *g = yard_metrics_gauge_with(inflight, "execute", NULL);
    yard_metrics_gauge_set(g, 7);
    yard_metrics_gauge_add(g, -2.5);
    assert_true(yard_metrics_gauge_value(g) == 4.5);
    yard_metrics_histogram_t *h = yard_metrics_histogram_with(dur, "POST /v1/jobs", NULL);
    yard_metrics_histogram_observe(h, 0.0625);
    yard_metrics_histogram_observe(h, 0.25);
    yard_metrics_histogram_observe(h, 0.5);
    yard_metrics_histogram_observe(h, 2);

    assert_render(reg,
                  "# HELP yard_http_requests_total HTTP requests by route and code.\n"
                  "# TYPE yard_http_requests_total counter\n"
                  "yard_http_requests_total{route=\"POST /v1/jobs\",code=\"202\"} 3\n"
                  "yard_http_requests_total{route=\"GET /v1/jobs/{id}\",code=\"404\"} 1\n"
                  "# HELP yard_jobs_in_flight Jobs being run, by role.\n"
                  "# TYPE yard_jobs_in_flight gauge\n"
                  "yard_jobs_in_flight{role=\"execute\"} 4.5\n"
                  "# HELP yard_http_request_duration_seconds Request latency.\n"
                  "# TYPE yard_http_request_duration_seconds histogram\n"
                  "yard_http_request_duration_seconds_bucket{route=\"POST /v1/jobs\",le=\"0.125\"} 1\n"
                  "yard_http_request_duration_seconds_bucket{route=\"POST /v1/jobs\",le=\"0.25\"} 2\n"
                  "yard_http_request_duration_seconds_bucket{route=\"POST /v1/jobs\",le=\"1\"} 3\n"
                  "yard_http_request_duration_seconds_bucket{route=\"POST /v1/jobs\",le=\"+Inf\"} 4\n"
                  "yard_http_request_duration_seconds_sum{route=\"POST /v1/jobs\"} 2.8125\n"
                  "yard_http_request_duration_seconds_count{route=\"POST /v1/jobs\"} 4\n"
                  "# HELP yard_jobs_published_total Jobs published.\n"
                  "# TYPE yard_jobs_published_total counter\n"
                  "yard_jobs_published_total 0\n");
}

static void test_unlabelled_histogram(void **state)
{
    yard_metrics_t *reg = *state;
    yard_metrics_family_t *fam;
    const double bounds[] = {0.005, 0.1, 2.5, 10};

    assert_int_equal(yard_metrics_histogram_family(&fam, reg, "yard_handler_duration_seconds",
                                                   "Handler time.", NULL, bounds, 4),
                     0);
    yard_metrics_histogram_observe(yard_metrics_histogram_with(fam, NULL), 3);
    assert_render(reg, "# HELP yard_handler_duration_seconds Handler time.\n"
                       "# TYPE yard_handler_duration_seconds histogram\n"
                       "yard_handler_duration_seconds_bucket{le=\"0.005\"} 0\n"
                       "yard_handler_duration_seconds_bucket{le=\"0.1\"} 0\n"
                       "yard_handler_duration_seconds_bucket{le=\"2.5\"} 0\n"
                       "yard_handler_duration_seconds_bucket{le=\"10\"} 1\n"
                       "yard_handler_duration_seconds_bucket{le=\"+Inf\"} 1\n"
                       "yard_handler_duration_seconds_sum 3\n"
                       "yard_handler_duration_seconds_count 1\n");
}

static void test_escaping(void **state)
{
    yard_metrics_t *reg = *state;
    yard_metrics_family_t *fam;

    assert_int_equal(yard_metrics_gauge_family(&fam, reg, "yard_escape_test",
                                               "Help with a \\ backslash,\na newline and \"quotes\".",
                                               LABELS("v")),
                     0);
    yard_metrics_gauge_set(yard_metrics_gauge_with(fam, "a\\b \"q\"\nnext \xc3\xa9", NULL), 1);
    assert_render(reg, "# HELP yard_escape_test Help with a \\\\ backslash,\\na newline and \"quotes\".\n"
                       "# TYPE yard_escape_test gauge\n"
                       "yard_escape_test{v=\"a\\\\b \\\"q\\\"\\nnext \xc3\xa9\"} 1\n");
}

static void test_number_format(void **state)
{
    yard_metrics_t *reg = *state;
    yard_metrics_family_t *g, *c;

    assert_int_equal(yard_metrics_gauge_family(&g, reg, "yard_numbers", "Numbers.", LABELS("n")),
                     0);
    assert_int_equal(yard_metrics_counter_family(&c, reg, "yard_big_total", "Big.", NULL), 0);
    yard_metrics_gauge_set(yard_metrics_gauge_with(g, "tenth", NULL), 0.1);
    yard_metrics_gauge_set(yard_metrics_gauge_with(g, "third", NULL), 1.0 / 3);
    yard_metrics_gauge_set(yard_metrics_gauge_with(g, "tiny", NULL), 1e-9);
    yard_metrics_gauge_set(yard_metrics_gauge_with(g, "neg", NULL), -42);
    yard_metrics_gauge_set(yard_metrics_gauge_with(g, "nan", NULL), NAN);
    yard_metrics_gauge_set(yard_metrics_gauge_with(g, "inf", NULL), INFINITY);
    yard_metrics_gauge_set(yard_metrics_gauge_with(g, "ninf", NULL), -INFINITY);
    yard_metrics_counter_add(yard_metrics_counter_with(c, NULL), UINT64_MAX);
    assert_render(reg, "# HELP yard_numbers Numbers.\n"
                       "# TYPE yard_numbers gauge\n"
                       "yard_numbers{n=\"tenth\"} 0.1\n"
                       "yard_numbers{n=\"third\"} 0.3333333333333333\n"
                       "yard_numbers{n=\"tiny\"} 1e-09\n"
                       "yard_numbers{n=\"neg\"} -42\n"
                       "yard_numbers{n=\"nan\"} NaN\n"
                       "yard_numbers{n=\"inf\"} +Inf\n"
                       "yard_numbers{n=\"ninf\"} -Inf\n"
                       "# HELP yard_big_total Big.\n"
                       "# TYPE yard_big_total counter\n"
                       "yard_big_total 18446744073709551615\n");
}

/* A scaled counter counts in a small unit and exports the base unit. */
static void test_scaled_counter(void **state)
{
    yard_metrics_t *reg = *state;
    yard_metrics_family_t *c;
    assert_int_equal(yard_metrics_counter_family_scaled(&c, reg, "yard_busy_seconds_total",
                                                        "Busy.", LABELS("part"), 0),
                     YARD_EINVAL);
    assert_int_equal(yard_metrics_counter_family_scaled(&c, reg, "yard_busy_seconds_total",
                                                        "Busy.", LABELS("part"), 1e-6),
                     0);
    yard_metrics_counter_add(yard_metrics_counter_with(c, "pg", NULL), 1500000); /* us */
    yard_metrics_counter_add(yard_metrics_counter_with(c, "js", NULL), 250);
    assert_render(reg, "# HELP yard_busy_seconds_total Busy.\n"
                       "# TYPE yard_busy_seconds_total counter\n"
                       "yard_busy_seconds_total{part=\"pg\"} 1.5\n"
                       "yard_busy_seconds_total{part=\"js\"} 0.00025\n");
}

/* le is inclusive: a value equal to a bound goes into that bound's bucket. */
static void test_histogram_boundaries(void **state)
{
    yard_metrics_t *reg = *state;
    yard_metrics_family_t *fam;
    const double bounds[] = {1, 2, 5};
    const double values[] = {-1, 0, 1, 1.0000001, 2, 4.999, 5, 5.0000001, 1e12};
    yard_metrics_histogram_t *h;

    assert_int_equal(yard_metrics_histogram_family(&fam, reg, "yard_b", "Bounds.", NULL, bounds,
                                                   3),
                     0);
    h = yard_metrics_histogram_with(fam, NULL);
    assert_non_null(h);
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++)
        yard_metrics_histogram_observe(h, values[i]);
    /* <=1: -1, 0, 1; <=2: +1.0000001, 2; <=5: +4.999, 5; +Inf: +5.0000001, 1e12 */
    char *text = render(reg);
    assert_non_null(strstr(text, "yard_b_bucket{le=\"1\"} 3\n"
                                 "yard_b_bucket{le=\"2\"} 5\n"
                                 "yard_b_bucket{le=\"5\"} 7\n"
                                 "yard_b_bucket{le=\"+Inf\"} 9\n"));
    assert_non_null(strstr(text, "yard_b_count 9\n"));
    free(text);
}

static void test_invalid_names(void **state)
{
    yard_metrics_t *reg = *state;
    yard_metrics_family_t *sentinel = (yard_metrics_family_t *)&sentinel, *fam = sentinel;
    const double ok_bounds[] = {1, 2};
    const double dup_bounds[] = {1, 1};
    const double down_bounds[] = {2, 1};
    const double nan_bounds[] = {NAN};
    const double inf_bounds[] = {1, INFINITY};
    double many_bounds[YARD_METRICS_MAX_BUCKETS + 1];
    char longname[YARD_METRICS_MAX_NAME + 8];
    const char *bad_counters[] = {"http_requests_total", "yard_", "yard__total",
                                  "yard_Requests_total", "yard_req-s_total", "yard_a:b_total",
                                  "yard_requests", "yard_x y_total", "", longname};

    memset(longname, 'a', sizeof longname - 1);
    memcpy(longname, "yard_", 5);
    memcpy(longname + sizeof longname - 7, "_total", 7);
    for (size_t i = 0; i < YARD_METRICS_MAX_BUCKETS + 1; i++)
        many_bounds[i] = (double)i;

    for (size_t i = 0; i < sizeof bad_counters / sizeof bad_counters[0]; i++) {
        if (yard_metrics_counter_family(&fam, reg, bad_counters[i], "Help.", NULL) != YARD_EINVAL)
            fail_msg("expected EINVAL for counter name \"%s\"", bad_counters[i]);
    }
    assert_int_equal(yard_metrics_counter_family(&fam, reg, NULL, "Help.", NULL), YARD_EINVAL);
    assert_int_equal(yard_metrics_gauge_family(&fam, reg, "process_open_fds", "Help.", NULL),
                     YARD_EINVAL);
    assert_int_equal(yard_metrics_counter_family(NULL, reg, "yard_ok_total", "Help.", NULL),
                     YARD_EINVAL);
    assert_int_equal(yard_metrics_counter_family(&fam, NULL, "yard_ok_total", "Help.", NULL),
                     YARD_EINVAL);
    /* help */
    assert_int_equal(yard_metrics_gauge_family(&fam, reg, "yard_g", "", NULL), YARD_EINVAL);
    assert_int_equal(yard_metrics_gauge_family(&fam, reg, "yard_g", NULL, NULL), YARD_EINVAL);
    assert_int_equal(yard_metrics_gauge_family(&fam, reg, "yard_g", "bad \xff", NULL),
                     YARD_EINVAL);
    /* labels */
    assert_int_equal(yard_metrics_gauge_family(&fam, reg, "yard_g", "H.", LABELS("2xx")),
                     YARD_EINVAL);
    assert_int_equal(yard_metrics_gauge_family(&fam, reg, "yard_g", "H.", LABELS("__name")),
                     YARD_EINVAL);
    assert_int_equal(yard_metrics_gauge_family(&fam, reg, "yard_g", "H.", LABELS("a-b")),
                     YARD_EINVAL);
    assert_int_equal(yard_metrics_gauge_family(&fam, reg, "yard_g", "H.", LABELS("")),
                     YARD_EINVAL);
    assert_int_equal(yard_metrics_gauge_family(&fam, reg, "yard_g", "H.", LABELS("a", "a")),
                     YARD_EINVAL);
    assert_int_equal(yard_metrics_gauge_family(&fam, reg, "yard_g", "H.",
                                               LABELS("a", "b", "c", "d", "e")),
                     YARD_EINVAL);
    assert_int_equal(yard_metrics_histogram_family(&fam, reg, "yard_h", "H.", LABELS("le"),
                                                   ok_bounds, 2),
                     YARD_EINVAL);
    /* bounds */
    assert_int_equal(yard_metrics_histogram_family(&fam, reg, "yard_h", "H.", NULL, ok_bounds, 0),
                     YARD_EINVAL);
    assert_int_equal(yard_metrics_histogram_family(&fam, reg, "yard_h", "H.", NULL, NULL, 2),
                     YARD_EINVAL);
    assert_int_equal(yard_metrics_histogram_family(&fam, reg, "yard_h", "H.", NULL, dup_bounds,
                                                   2),
                     YARD_EINVAL);
    assert_int_equal(yard_metrics_histogram_family(&fam, reg, "yard_h", "H.", NULL, down_bounds,
                                                   2),
                     YARD_EINVAL);
    assert_int_equal(yard_metrics_histogram_family(&fam, reg, "yard_h", "H.", NULL, nan_bounds,
                                                   1),
                     YARD_EINVAL);
    assert_int_equal(yard_metrics_histogram_family(&fam, reg, "yard_h", "H.", NULL, inf_bounds,
                                                   2),
                     YARD_EINVAL);
    assert_int_equal(yard_metrics_histogram_family(&fam, reg, "yard_h", "H.", NULL, many_bounds,
                                                   YARD_METRICS_MAX_BUCKETS + 1),
                     YARD_EINVAL);
    /* callback families: counter or gauge, with a function */
    assert_int_equal(yard_metrics_callback_family(&fam, reg, YARD_METRICS_HISTOGRAM, "yard_c",
                                                  "H.", NULL, NULL, NULL),
                     YARD_EINVAL);
    assert_int_equal(yard_metrics_callback_family(&fam, reg, YARD_METRICS_GAUGE, "yard_c", "H.",
                                                  NULL, NULL, NULL),
                     YARD_EINVAL);
    assert_ptr_equal(fam, sentinel);

    /* clashes, including a histogram's derived series */
    assert_int_equal(yard_metrics_histogram_family(&fam, reg, "yard_lat", "H.", NULL, ok_bounds,
                                                   2),
                     0);
    fam = sentinel;
    assert_int_equal(yard_metrics_gauge_family(&fam, reg, "yard_lat", "H.", NULL), YARD_EEXIST);
    assert_int_equal(yard_metrics_gauge_family(&fam, reg, "yard_lat_count", "H.", NULL),
                     YARD_EEXIST);
    assert_int_equal(yard_metrics_gauge_family(&fam, reg, "yard_lat_bucket", "H.", NULL),
                     YARD_EEXIST);
    assert_int_equal(yard_metrics_gauge_family(&fam, reg, "yard_size_sum", "H.", NULL), 0);
    fam = sentinel;
    assert_int_equal(yard_metrics_histogram_family(&fam, reg, "yard_size", "H.", NULL, ok_bounds,
                                                   2),
                     YARD_EEXIST);
    assert_ptr_equal(fam, sentinel);
    /* valid edge cases */
    assert_int_equal(yard_metrics_gauge_family(&fam, reg, "yard_g", "H.",
                                               LABELS("a", "B_2", "_c", "d")),
                     0);
}

static void test_children(void **state)
{
    yard_metrics_t *reg = *state;
    yard_metrics_family_t *fam, *gfam;
    yard_metrics_counter_t *a, *b, *c;
    yard_metrics_gauge_t *g;
    char value[16];

    assert_int_equal(yard_metrics_counter_family(&fam, reg, "yard_c_total", "H.",
                                                 LABELS("x", "y")),
                     0);
    assert_int_equal(yard_metrics_gauge_family(&gfam, reg, "yard_g", "H.", NULL), 0);
    a = yard_metrics_counter_with(fam, "1", "2", NULL);
    b = yard_metrics_counter_with(fam, "1", "2", NULL);
    c = yard_metrics_counter_with(fam, "1", "3", NULL);
    assert_non_null(a);
    assert_ptr_equal(a, b);
    assert_ptr_not_equal(a, c);
    assert_int_equal(yard_metrics_counter_get(&b, fam, LABELS("1", "2")), 0);
    assert_ptr_equal(a, b);
    /* wrong number of values, wrong kind, bad UTF-8: refused, *out untouched */
    assert_null(yard_metrics_counter_with(fam, "1", NULL));
    assert_null(yard_metrics_counter_with(fam, "1", "2", "3", NULL));
    assert_null(yard_metrics_counter_with(fam, NULL));
    assert_int_equal(yard_metrics_counter_get(&b, fam, NULL), YARD_EINVAL);
    assert_int_equal(yard_metrics_counter_get(&b, fam, LABELS("1", "\xc0\x80")), YARD_EINVAL);
    assert_int_equal(yard_metrics_gauge_get(&g, fam, LABELS("1", "2")), YARD_EINVAL);
    assert_null(yard_metrics_histogram_with(gfam, NULL));
    assert_null(yard_metrics_counter_with(NULL, NULL));
    assert_ptr_equal(b, a);
    /* NULL children are no-ops */
    yard_metrics_counter_add(NULL, 1);
    yard_metrics_gauge_set(NULL, 1);
    yard_metrics_gauge_add(NULL, 1);
    yard_metrics_histogram_observe(NULL, 1);
    assert_int_equal(yard_metrics_counter_value(NULL), 0);
    assert_true(yard_metrics_gauge_value(NULL) == 0);
    /* the cardinality guard */
    for (int i = 2; i < YARD_METRICS_MAX_CHILDREN; i++) {
        snprintf(value, sizeof value, "v%d", i);
        assert_non_null(yard_metrics_counter_with(fam, "1", value, NULL));
    }
    assert_int_equal(yard_metrics_counter_get(&b, fam, LABELS("one", "more")), YARD_ERANGE);
    assert_non_null(yard_metrics_counter_with(fam, "1", "v7", NULL));
}

typedef struct {
    yard_metrics_family_t *fam;
    yard_metrics_counter_t *seen;
} thread_arg_t;

#define THREADS 4
#define PER_THREAD 1000000

static void *hammer(void *p)
{
    thread_arg_t *arg = p;
    yard_metrics_counter_t *c = yard_metrics_counter_with(arg->fam, "shared", NULL);
    arg->seen = c;
    for (int i = 0; i < PER_THREAD; i++)
        yard_metrics_counter_add(c, 1);
    return NULL;
}

static void *hammer_gauge(void *p)
{
    thread_arg_t *arg = p;
    yard_metrics_gauge_t *g = yard_metrics_gauge_with(arg->fam, NULL);
    for (int i = 0; i < PER_THREAD / 4; i++) {
        yard_metrics_gauge_add(g, 2);
        yard_metrics_gauge_add(g, -1);
    }
    return NULL;
}

/* Runs fn on THREADS threads sharing fam; returns the children they saw. */
static void run_threads(void *(*fn)(void *), yard_metrics_family_t *fam,
                        yard_metrics_counter_t **seen)
{
    pthread_t tid[THREADS];
    thread_arg_t args[THREADS];
    for (int i = 0; i < THREADS; i++) {
        args[i].fam = fam;
        args[i].seen = NULL;
        assert_int_equal(pthread_create(&tid[i], NULL, fn, &args[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_join(tid[i], NULL), 0);
        seen[i] = args[i].seen;
    }
}

static void test_threads_exact_total(void **state)
{
    yard_metrics_t *reg = *state;
    yard_metrics_family_t *fam, *gfam;
    yard_metrics_counter_t *seen[THREADS];

    assert_int_equal(yard_metrics_counter_family(&fam, reg, "yard_hits_total", "Hits.",
                                                 LABELS("k")),
                     0);
    assert_int_equal(yard_metrics_gauge_family(&gfam, reg, "yard_level", "Level.", NULL), 0);
    run_threads(hammer, fam, seen);
    for (int i = 1; i < THREADS; i++)
        assert_ptr_equal(seen[i], seen[0]);
    assert_int_equal(yard_metrics_counter_value(seen[0]), (uint64_t)THREADS * PER_THREAD);
    run_threads(hammer_gauge, gfam, seen);
    assert_true(yard_metrics_gauge_value(yard_metrics_gauge_with(gfam, NULL)) ==
                (double)THREADS * PER_THREAD / 4);

    char *text = render(reg);
    assert_non_null(strstr(text, "yard_hits_total{k=\"shared\"} 4000000\n"));
    assert_non_null(strstr(text, "yard_level 1000000\n"));
    free(text);
}

typedef struct {
    double depth;
    int calls;
} queue_state_t;

static void collect_depth(yard_metrics_sink_t *sink, void *arg)
{
    queue_state_t *q = arg;
    q->calls++;
    yard_metrics_sink_put(sink, q->depth, "default", NULL);
    yard_metrics_sink_put(sink, q->depth * 2, "bulk", NULL);
    yard_metrics_sink_put(sink, 99, NULL);            /* wrong count: dropped */
    yard_metrics_sink_put(sink, 99, "a", "b", NULL);  /* wrong count: dropped */
    yard_metrics_sink_put(sink, 99, "\xff", NULL);    /* not UTF-8: dropped */
}

static void collect_nothing(yard_metrics_sink_t *sink, void *arg)
{
    (void)sink;
    (void)arg;
}

static void test_callback_gauge(void **state)
{
    yard_metrics_t *reg = *state;
    yard_metrics_family_t *fam;
    queue_state_t q = {5, 0};

    assert_int_equal(yard_metrics_callback_family(&fam, reg, YARD_METRICS_GAUGE,
                                                  "yard_queue_depth",
                                                  "Pending plus ack-pending messages.",
                                                  LABELS("queue"), collect_depth, &q),
                     0);
    assert_int_equal(yard_metrics_callback_family(NULL, reg, YARD_METRICS_COUNTER,
                                                  "yard_silent_total", "Never reports.", NULL,
                                                  collect_nothing, NULL),
                     0);
    assert_null(yard_metrics_gauge_with(fam, "default", NULL));
    assert_int_equal(q.calls, 0);
    assert_render(reg, "# HELP yard_queue_depth Pending plus ack-pending messages.\n"
                       "# TYPE yard_queue_depth gauge\n"
                       "yard_queue_depth{queue=\"default\"} 5\n"
                       "yard_queue_depth{queue=\"bulk\"} 10\n");
    q.depth = 1.5;
    assert_render(reg, "# HELP yard_queue_depth Pending plus ack-pending messages.\n"
                       "# TYPE yard_queue_depth gauge\n"
                       "yard_queue_depth{queue=\"default\"} 1.5\n"
                       "yard_queue_depth{queue=\"bulk\"} 3\n");
    assert_int_equal(q.calls, 2);
}

/* A histogram kept outside the registry: 3 bounds, per-bucket counts. */
typedef struct {
    uint64_t counts[4];
    double sum;
} outside_t;

static void collect_outside(yard_metrics_sink_t *sink, void *arg)
{
    outside_t *o = arg;
    yard_metrics_sink_put_histogram(sink, o->counts, 4, o->sum, "gateway", NULL);
    /* Refused: the wrong number of counts, or a plain sample. */
    yard_metrics_sink_put_histogram(sink, o->counts, 3, o->sum, "short", NULL);
    yard_metrics_sink_put(sink, 1, "plain", NULL);
}

static void test_callback_histogram(void **state)
{
    yard_metrics_t *reg = *state;
    const double bounds[] = {0.01, 0.1, 1};
    outside_t o = {{2, 0, 1, 1}, 3.52};

    assert_int_equal(yard_metrics_callback_histogram(NULL, reg, "yard_pg_seconds", "Statements.",
                                                     LABELS("program"), bounds, 3, NULL, &o),
                     YARD_EINVAL);
    assert_int_equal(yard_metrics_callback_histogram(NULL, reg, "yard_pg_seconds", "Statements.",
                                                     LABELS("le"), bounds, 3, collect_outside,
                                                     &o),
                     YARD_EINVAL);
    assert_int_equal(yard_metrics_callback_histogram(NULL, reg, "yard_pg_seconds", "Statements.",
                                                     LABELS("program"), bounds, 3,
                                                     collect_outside, &o),
                     0);
    assert_render(reg, "# HELP yard_pg_seconds Statements.\n"
                       "# TYPE yard_pg_seconds histogram\n"
                       "yard_pg_seconds_bucket{program=\"gateway\",le=\"0.01\"} 2\n"
                       "yard_pg_seconds_bucket{program=\"gateway\",le=\"0.1\"} 2\n"
                       "yard_pg_seconds_bucket{program=\"gateway\",le=\"1\"} 3\n"
                       "yard_pg_seconds_bucket{program=\"gateway\",le=\"+Inf\"} 4\n"
                       "yard_pg_seconds_sum{program=\"gateway\"} 3.52\n"
                       "yard_pg_seconds_count{program=\"gateway\"} 4\n");
    /* Its series names are taken like a stored histogram's. */
    yard_metrics_family_t *fam;
    assert_int_equal(yard_metrics_counter_family(&fam, reg, "yard_pg_seconds_count", "Clash.",
                                                 NULL),
                     YARD_EINVAL); /* not _total */
    assert_int_equal(yard_metrics_gauge_family(&fam, reg, "yard_pg_seconds_sum", "Clash.", NULL),
                     YARD_EEXIST);
}

static void test_process_metrics(void **state)
{
    yard_metrics_t *reg = *state;
    yard_metrics_process_t p;
    double now = (double)time(NULL);
    char *text;

    assert_int_equal(yard_metrics_process_sample(NULL), YARD_EINVAL);
    assert_int_equal(yard_metrics_process_sample(&p), 0);
    assert_true(p.resident_memory_bytes > 0);
    assert_true(p.virtual_memory_bytes >= p.resident_memory_bytes);
    assert_true(p.open_fds >= 3);
    assert_true(p.max_fds >= p.open_fds);
    assert_true(p.cpu_seconds >= 0);
    if (!(p.start_time_seconds <= now + 2 && p.start_time_seconds > now - 3600))
        fail_msg("start time %.3f is not within the last hour of %.0f", p.start_time_seconds, now);

    assert_int_equal(yard_metrics_register_process(reg), 0);
    assert_int_equal(yard_metrics_register_process(reg), YARD_EEXIST);
    text = render(reg);
    const char *names[] = {"process_cpu_seconds_total", "process_resident_memory_bytes",
                           "process_virtual_memory_bytes", "process_open_fds",
                           "process_max_fds", "process_start_time_seconds"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char line[96];
        snprintf(line, sizeof line, "\n%s ", names[i]);
        if (!strstr(text, line))
            fail_msg("no sample line for %s in:\n%s", names[i], text);
    }
    assert_non_null(strstr(text, "# TYPE process_cpu_seconds_total counter\n"));
    free(text);
}

/* Fills reg with one of everything, escaping included. */
static void fill_everything(yard_metrics_t *reg, queue_state_t *q)
{
    yard_metrics_family_t *c, *g, *h;
    const double bounds[] = {0.001, 0.01, 0.1, 1, 10};

    assert_int_equal(yard_metrics_counter_family(&c, reg, "yard_http_requests_total",
                                                 "Requests; a \\ and a\nnewline.",
                                                 LABELS("route", "code")),
                     0);
    assert_int_equal(yard_metrics_gauge_family(&g, reg, "yard_jobs_in_flight", "In flight.",
                                               LABELS("role")),
                     0);
    assert_int_equal(yard_metrics_histogram_family(&h, reg, "yard_http_request_duration_seconds",
                                                   "Latency.", LABELS("route"), bounds, 5),
                     0);
    assert_int_equal(yard_metrics_callback_family(NULL, reg, YARD_METRICS_GAUGE,
                                                  "yard_queue_depth", "Depth.", LABELS("queue"),
                                                  collect_depth, q),
                     0);
    assert_int_equal(yard_metrics_register_process(reg), 0);
    yard_metrics_counter_add(yard_metrics_counter_with(c, "POST /v1/jobs", "202", NULL), 10);
    yard_metrics_counter_add(yard_metrics_counter_with(c, "we\"ird\\\nroute", "500", NULL), 1);
    yard_metrics_gauge_set(yard_metrics_gauge_with(g, "execute", NULL), 3);
    yard_metrics_gauge_set(yard_metrics_gauge_with(g, "notify", NULL), NAN);
    for (int i = 0; i < 100; i++)
        yard_metrics_histogram_observe(yard_metrics_histogram_with(h, "POST /v1/jobs", NULL),
                                       i * 0.0137);
    yard_metrics_histogram_with(h, "GET /v1/queues", NULL);
}

static void test_promtool_check(void **state)
{
    yard_metrics_t *reg = *state;
    queue_state_t q = {4, 0};
    char path[] = "/tmp/yard-metrics-XXXXXX";
    char cmd[128], out[4096];
    size_t got;
    char *text;
    FILE *p;
    int fd, status;

    if (system("command -v promtool >/dev/null 2>&1") != 0) {
        print_message("promtool not installed (apt-get install -y prometheus): skipping\n");
        skip();
    }
    fill_everything(reg, &q);
    text = render(reg);
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    snprintf(cmd, sizeof cmd, "promtool check metrics < %s 2>&1", path);
    p = popen(cmd, "r");
    assert_non_null(p);
    got = fread(out, 1, sizeof out - 1, p);
    out[got] = '\0';
    status = pclose(p);
    unlink(path);
    if (status != 0 || got != 0)
        fail_msg("promtool check metrics (status %d) said:\n%s\non:\n%s", status, out, text);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_destroy),
        cmocka_unit_test_setup_teardown(test_scaled_counter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_render_all_kinds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unlabelled_histogram, setup, teardown),
        cmocka_unit_test_setup_teardown(test_escaping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_number_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_histogram_boundaries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_children, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads_exact_total, setup, teardown),
        cmocka_unit_test_setup_teardown(test_callback_gauge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_callback_histogram, setup, teardown),
        cmocka_unit_test_setup_teardown(test_process_metrics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_promtool_check, setup, teardown),
    };
    return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
