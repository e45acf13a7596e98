/*
 * test_wk_metrics.c - unit tests for the worker's metrics (workers/metrics.c):
 * the families each role starts with, and the bound on the job types
 * yard_jobs_completed_total names (metrics_max_types), under threads.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "wk.h"

#define TYPES 200
#define THREADS 8
#define MAX_TYPES 50

static void wk_setup(wk_t *wk, const char *role, int64_t max_types)
{
    memset(wk, 0, sizeof *wk);
    yard_config_defaults(&wk->cfg);
    wk->cfg.metrics_max_types = max_types;
    wk->role = role;
    assert_int_equal(yard_js_parse_queues("default,bulk", wk->queue_bufs, wk->queues,
                                          WK_MAX_QUEUES),
                     2);
    wk->nqueues = 2;
    assert_int_equal(wk_metrics_init(wk), 0);
}

static char *render(wk_t *wk)
{
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(yard_metrics_render(wk->metrics, &text, &len), 0);
    return text;
}

static void test_execute_starts_its_series(void **state)
{
    wk_t wk;
    wk_setup(&wk, "execute", MAX_TYPES);
    char *text = render(&wk);
    static const char *const lines[] = {
        "yard_worker_queue_served{queue=\"default\"} 1\n",
        "yard_worker_queue_served{queue=\"bulk\"} 1\n",
        "yard_jobs_retried_total{queue=\"default\"} 0\n",
        "yard_dlq_published_total{queue=\"bulk\"} 0\n",
    };
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        if (!strstr(text, lines[i]))
            fail_msg("execute worker: expected `%s` in:\n%s", lines[i], text);
    if (strstr(text, "yard_jobs_rescued_total{"))
        fail_msg("execute worker: expected no yard_jobs_rescued_total series, got:\n%s", text);
    free(text);
    wk_metrics_fini(&wk);

    wk_setup(&wk, "schedule", MAX_TYPES);
    text = render(&wk);
    if (!strstr(text, "yard_jobs_rescued_total{queue=\"default\"} 0\n") ||
        strstr(text, "yard_worker_queue_served{"))
        fail_msg("schedule worker: expected yard_jobs_rescued_total{queue=\"default\"} 0 and no "
                 "yard_worker_queue_served, got:\n%s", text);
    free(text);
    wk_metrics_fini(&wk);
}

typedef struct {
    wk_t *wk;
    int offset;
    const char *labels[TYPES]; /* what each type got */
} types_thread_t;

static char type_names[TYPES][24]; /* type-0 ... */

static void *types_run(void *arg)
{
    types_thread_t *t = arg;
    for (int k = 0; k < TYPES; k++) {
        int i = (k + t->offset) % TYPES;
        t->labels[i] = wk_metrics_type(t->wk, type_names[i]);
    }
    return NULL;
}

static void test_types_bounded_under_threads(void **state)
{
    wk_t wk;
    types_thread_t th[THREADS];
    pthread_t ids[THREADS];
    for (int i = 0; i < TYPES; i++)
        snprintf(type_names[i], sizeof type_names[i], "type-%d", i);
    wk_setup(&wk, "execute", MAX_TYPES);
    for (int t = 0; t < THREADS; t++) {
        th[t] = (types_thread_t){&wk, t * (TYPES / THREADS), {0}};
        assert_int_equal(pthread_create(&ids[t], NULL, types_run, &th[t]), 0);
    }
    for (int t = 0; t < THREADS; t++)
        pthread_join(ids[t], NULL);
    int named = 0;
    for (int i = 0; i < TYPES; i++) {
        const char *first = th[0].labels[i];
        int is_named = strcmp(first, type_names[i]) == 0;
        if (!is_named && strcmp(first, WK_TYPE_OTHER) != 0)
            fail_msg("type %s: expected its own name or \"other\", got `%s`", type_names[i],
                     first);
        for (int t = 1; t < THREADS; t++)
            if (strcmp(th[t].labels[i], first) != 0)
                fail_msg("type %s: thread 0 got `%s`, thread %d got `%s`", type_names[i], first,
                         t, th[t].labels[i]);
        named += is_named;
    }
    if (named != MAX_TYPES)
        fail_msg("expected exactly %d of %d types named, got %d", MAX_TYPES, TYPES, named);
    /* A named type keeps its name later; a new one is "other" now. */
    for (int i = 0; i < TYPES; i++)
        assert_string_equal(wk_metrics_type(&wk, type_names[i]), th[0].labels[i]);
    assert_string_equal(wk_metrics_type(&wk, "brand-new"), WK_TYPE_OTHER);
    wk_metrics_fini(&wk);

    wk_setup(&wk, "execute", 0);
    assert_string_equal(wk_metrics_type(&wk, "echo"), WK_TYPE_OTHER);
    wk_metrics_fini(&wk);
}

int main(void)
{
    yard_log_init("test_wk_metrics", YARD_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_execute_starts_its_series),
        cmocka_unit_test(test_types_bounded_under_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
