/*
 * test_workflow_dag.c - the shape rules of a workflow (bus/workflow_dag.h):
 * a diamond orders parents first; a cycle is refused with its step ids in
 * dependency order; unknown, self and repeated dependencies, duplicate and
 * invalid ids, 0 and 1,001 steps are refused with a message naming them;
 * 1,000 steps in a chain and a 999-way fan-in pass; a random DAG's order
 * always puts parents first.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "workflow_dag.h"

#define MAX_DEPS 8

/* A test workflow: steps with ids and deps in fixed buffers. */
typedef struct {
    char ids[YARD_WF_MAX_STEPS + 1][16];
    const char *deps[YARD_WF_MAX_STEPS + 1][MAX_DEPS];
    const char **big_deps; /* for a fan-in wider than MAX_DEPS */
    yard_wf_step_ref_t steps[YARD_WF_MAX_STEPS + 1];
    size_t order[YARD_WF_MAX_STEPS + 1];
    char why[512];
} wf_t;

static wf_t *wf_new(size_t n)
{
    wf_t *w = calloc(1, sizeof *w);
    assert_non_null(w);
    for (size_t i = 0; i < n; i++) {
        snprintf(w->ids[i], sizeof w->ids[i], "s%u", (unsigned)(i % 100000));
        w->steps[i] = (yard_wf_step_ref_t){w->ids[i], w->deps[i], 0};
    }
    return w;
}

static void dep(wf_t *w, size_t child, const char *parent)
{
    assert_true(w->steps[child].ndeps < MAX_DEPS);
    w->deps[child][w->steps[child].ndeps++] = parent;
}

/* Nonzero if order[0..n) puts every step after its parents. */
static int parents_first(const wf_t *w, size_t n)
{
    size_t *pos = calloc(n, sizeof *pos);
    int ok = 1;
    for (size_t k = 0; k < n; k++)
        pos[w->order[k]] = k;
    for (size_t i = 0; i < n && ok; i++)
        for (size_t d = 0; d < w->steps[i].ndeps; d++) {
            size_t p = (size_t)atoi(w->steps[i].depends_on[d] + 1); /* "s<n>" */
            if (pos[p] >= pos[i])
                ok = 0;
        }
    free(pos);
    return ok;
}

static void expect_refused(wf_t *w, size_t n, const char *const *words)
{
    int rc = yard_wf_dag_check(w->steps, n, w->order, w->why, sizeof w->why);
    if (rc != YARD_EINVAL)
        fail_msg("expected YARD_EINVAL, got %d", rc);
    for (size_t i = 0; words[i]; i++)
        if (!strstr(w->why, words[i]))
            fail_msg("expected the reason to name `%s`, got `%s`", words[i], w->why);
}

static void test_diamond_orders_parents_first(void **state)
{
    wf_t *w = wf_new(4);
    dep(w, 1, "s0");
    dep(w, 2, "s0");
    dep(w, 3, "s1");
    dep(w, 3, "s2");
    assert_int_equal(yard_wf_dag_check(w->steps, 4, w->order, w->why, sizeof w->why), 0);
    assert_int_equal(w->order[0], 0);
    assert_int_equal(w->order[3], 3);
    assert_true(parents_first(w, 4));
    free(w);
}

static void test_cycle_is_named_in_order(void **state)
{
    /* s0 root; s1 <- s3, s2 <- s1, s3 <- s2: the cycle s1 -> s2 -> s3 -> s1. */
    wf_t *w = wf_new(5);
    dep(w, 1, "s0");
    dep(w, 1, "s3");
    dep(w, 2, "s1");
    dep(w, 3, "s2");
    dep(w, 4, "s0");
    expect_refused(w, 5, (const char *const[]){"cycle", NULL});
    /* Each step waits for the one before it: some rotation of s1 s2 s3. */
    if (!strstr(w->why, "s1 -> s2 -> s3 -> s1") && !strstr(w->why, "s2 -> s3 -> s1 -> s2") &&
        !strstr(w->why, "s3 -> s1 -> s2 -> s3"))
        fail_msg("expected the cycle s1 -> s2 -> s3 (each waiting for the previous), got `%s`",
                 w->why);
    if (strstr(w->why, "s0") || strstr(w->why, "s4"))
        fail_msg("expected only the cycle's steps named, got `%s`", w->why);
    free(w);
}

static void test_two_step_cycle_behind_a_chain(void **state)
{
    /* s0 <- s1 <- s2, s2 <- s3, s3 <- s2: the walk from s0's side must
     * still end on s2 <-> s3. */
    wf_t *w = wf_new(4);
    dep(w, 0, "s1");
    dep(w, 1, "s2");
    dep(w, 2, "s3");
    dep(w, 3, "s2");
    expect_refused(w, 4, (const char *const[]){"cycle", "s2", "s3", NULL});
    if (strstr(w->why, "s0") || strstr(w->why, "s1 "))
        fail_msg("expected only s2 and s3 named, got `%s`", w->why);
    free(w);
}

static void test_unknown_self_and_repeated_dependencies(void **state)
{
    wf_t *w = wf_new(2);
    dep(w, 1, "ghost");
    expect_refused(w, 2, (const char *const[]){"`s1`", "unknown step", "`ghost`", NULL});
    free(w);
    w = wf_new(2);
    dep(w, 1, "s1");
    expect_refused(w, 2, (const char *const[]){"`s1`", "itself", NULL});
    free(w);
    w = wf_new(2);
    dep(w, 1, "s0");
    dep(w, 1, "s0");
    expect_refused(w, 2, (const char *const[]){"`s1`", "twice", "`s0`", NULL});
    free(w);
}

static void test_ids_valid_and_unique(void **state)
{
    wf_t *w = wf_new(3);
    snprintf(w->ids[2], sizeof w->ids[2], "s0");
    expect_refused(w, 3, (const char *const[]){"duplicate step id", "`s0`", "0", "2", NULL});
    free(w);
    w = wf_new(2);
    snprintf(w->ids[1], sizeof w->ids[1], "has space");
    expect_refused(w, 2, (const char *const[]){"step 1", "`id`", NULL});
    snprintf(w->ids[1], sizeof w->ids[1], "-lead");
    expect_refused(w, 2, (const char *const[]){"step 1", NULL});
    w->steps[1].id = NULL;
    expect_refused(w, 2, (const char *const[]){"step 1", NULL});
    free(w);
    assert_true(yard_wf_step_id_valid("Extract.v2:part-1_a", 19));
    char longest[YARD_WF_STEP_ID_MAX + 2];
    memset(longest, 'a', sizeof longest);
    assert_true(yard_wf_step_id_valid(longest, YARD_WF_STEP_ID_MAX));
    assert_false(yard_wf_step_id_valid(longest, YARD_WF_STEP_ID_MAX + 1));
    assert_false(yard_wf_step_id_valid("", 0));
    assert_false(yard_wf_step_id_valid("a\0b", 3));
}

static void test_step_count_bounds(void **state)
{
    wf_t *w = wf_new(YARD_WF_MAX_STEPS + 1);
    expect_refused(w, 0, (const char *const[]){"1 to 1000", NULL});
    expect_refused(w, YARD_WF_MAX_STEPS + 1, (const char *const[]){"1 to 1000", "1001", NULL});
    /* 1000 in a chain: fine, and ordered. */
    for (size_t i = 1; i < YARD_WF_MAX_STEPS; i++)
        dep(w, i, w->ids[i - 1]);
    assert_int_equal(
        yard_wf_dag_check(w->steps, YARD_WF_MAX_STEPS, w->order, w->why, sizeof w->why), 0);
    for (size_t i = 0; i < YARD_WF_MAX_STEPS; i++)
        assert_int_equal(w->order[i], i);
    /* Closing the chain into a 1000-step cycle: named, cut to the buffer. */
    dep(w, 0, w->ids[YARD_WF_MAX_STEPS - 1]);
    expect_refused(w, YARD_WF_MAX_STEPS, (const char *const[]){"cycle", NULL});
    assert_true(strlen(w->why) < sizeof w->why);
    free(w);
}

static void test_wide_fan_in(void **state)
{
    wf_t *w = wf_new(YARD_WF_MAX_STEPS);
    const char **deps = calloc(YARD_WF_MAX_STEPS, sizeof *deps);
    assert_non_null(deps);
    for (size_t i = 0; i + 1 < YARD_WF_MAX_STEPS; i++)
        deps[i] = w->ids[i];
    w->steps[YARD_WF_MAX_STEPS - 1].depends_on = deps;
    w->steps[YARD_WF_MAX_STEPS - 1].ndeps = YARD_WF_MAX_STEPS - 1;
    assert_int_equal(
        yard_wf_dag_check(w->steps, YARD_WF_MAX_STEPS, w->order, w->why, sizeof w->why), 0);
    assert_int_equal(w->order[YARD_WF_MAX_STEPS - 1], YARD_WF_MAX_STEPS - 1);
    /* More dependencies than steps is refused before any lookup. */
    w->steps[0].depends_on = deps;
    w->steps[0].ndeps = YARD_WF_MAX_STEPS + 1;
    expect_refused(w, YARD_WF_MAX_STEPS, (const char *const[]){"step 0", NULL});
    free(deps);
    free(w);
}

static void test_random_dags_order_parents_first(void **state)
{
    srand(42);
    for (int round = 0; round < 200; round++) {
        size_t n = 1 + (size_t)(rand() % 60);
        wf_t *w = wf_new(n);
        /* Edges only from lower to higher numbers: acyclic; shuffled
         * submission order comes from the ids being checked as given. */
        for (size_t i = 1; i < n; i++) {
            size_t k = (size_t)(rand() % MAX_DEPS);
            for (size_t e = 0; e < k; e++) {
                const char *p = w->ids[(size_t)rand() % i];
                int seen = 0;
                for (size_t d = 0; d < w->steps[i].ndeps; d++)
                    seen |= w->steps[i].depends_on[d] == p;
                if (!seen)
                    dep(w, i, p);
            }
        }
        int rc = yard_wf_dag_check(w->steps, n, w->order, w->why, sizeof w->why);
        if (rc != 0)
            fail_msg("round %d: expected an acyclic graph of %zu steps accepted, got `%s`", round,
                     n, w->why);
        assert_true(parents_first(w, n));
        free(w);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_diamond_orders_parents_first),
        cmocka_unit_test(test_cycle_is_named_in_order),
        cmocka_unit_test(test_two_step_cycle_behind_a_chain),
        cmocka_unit_test(test_unknown_self_and_repeated_dependencies),
        cmocka_unit_test(test_ids_valid_and_unique),
        cmocka_unit_test(test_step_count_bounds),
        cmocka_unit_test(test_wide_fan_in),
        cmocka_unit_test(test_random_dags_order_parents_first),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
