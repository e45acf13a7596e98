/*
 * fuzz_workflow.c - libFuzzer target for workflow validation.
 *
 * Input: one mode byte, then the rest.
 *   mode even: the rest is a POST /v1/workflows JSON body; it goes through
 *     gw_body_decode and gw_wf_spec_parse (rules serving "default"). A spec
 *     that parses must hold what the store and the releaser rely on: 1 to
 *     1000 steps, valid unique ids, every dependency a step of the workflow
 *     (not itself, once per list), an order with parents first
 *     (yard_wf_dag_check again), a job_json that jansson parses to an
 *     object with a valid type and queue, and under depends_on a payload
 *     that is an object without `inputs` or absent. A refusal must leave a
 *     non-empty, valid UTF-8 message (it goes into the JSON error body).
 *   mode odd: the rest is a graph: byte 0 gives n = 1 + b % 64 steps
 *     ("s0".."s<n-1>"), then pairs (child, parent) mod n add dependencies.
 *     yard_wf_dag_check must accept exactly the acyclic graphs without
 *     self or repeated dependencies (checked here by an independent DFS),
 *     return an order with parents first, and when it names a cycle, every
 *     step of it must wait for the one before it and the last be the first.
 * Crashes, leaks and undefined behaviour are the sanitizers' part.
 * Build and run: see tests/fuzz/README.md.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "body.h"
#include "err.h"
#include "names.h"
#include "workflow_dag.h"
#include "workflow_spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const served[] = {"default"};
static const gw_job_rules_t rules = {served, 1, 5, 300, NULL};

static void fail(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_workflow: invariant broken: %s (%s)\n", what, detail ? detail : "");
    abort();
}

/* Nonzero when the NUL-terminated s is valid UTF-8 (no overlongs, no
 * surrogates, nothing above U+10FFFF). */
static int utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p, n, min, cp;
        if (c < 0x80) {
            p++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf)
            n = 1, min = 0x80, cp = c & 0x1f;
        else if (c >= 0xe0 && c <= 0xef)
            n = 2, min = 0x800, cp = c & 0x0f;
        else if (c >= 0xf0 && c <= 0xf4)
            n = 3, min = 0x10000, cp = c & 0x07;
        else
            return 0;
        for (unsigned k = 1; k <= n; k++) {
            if ((p[k] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (p[k] & 0x3fu);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        p += n + 1;
    }
    return 1;
}

static void check_message(const char *err)
{
    if (!err[0])
        fail("a refusal without a message", NULL);
    if (!utf8_valid(err))
        fail("a refusal message that is not valid UTF-8", err);
}

/* ---- mode even: the body ----------------------------------------------------- */

static void check_step_job(const gw_wf_step_spec_t *s)
{
    json_error_t jerr;
    json_t *job = json_loads(s->job_json, 0, &jerr);
    if (!json_is_object(job))
        fail("job_json does not parse to an object", s->job_json);
    const char *type = json_string_value(json_object_get(job, "type"));
    const char *queue = json_string_value(json_object_get(job, "queue"));
    if (!type || !yard_name_valid(type, strlen(type)) || !queue || strcmp(queue, "default") != 0)
        fail("job_json without a valid type or a served queue", s->job_json);
    json_t *payload = json_object_get(job, "payload");
    if (s->ndeps > 0 && payload && (!json_is_object(payload) || json_object_get(payload, "inputs")))
        fail("a step with parents whose payload is not an object without `inputs`", s->job_json);
    json_decref(job);
}

static void fuzz_body(const uint8_t *data, size_t size)
{
    char err[512] = "";
    json_t *doc = NULL;
    if (gw_body_decode(&doc, GW_BODY_JSON, (const char *)data, size, err, sizeof err) < 0) {
        check_message(err);
        return;
    }
    gw_wf_spec_t spec;
    err[0] = '\0';
    int rc = gw_wf_spec_parse(&spec, doc, &rules, err, sizeof err);
    if (rc < 0) {
        if (spec.steps || spec.n)
            fail("a refused spec that is not cleared", NULL);
        check_message(err);
        json_decref(doc);
        return;
    }
    if (spec.n < 1 || spec.n > YARD_WF_MAX_STEPS)
        fail("a step count out of 1..1000 accepted", NULL);
    yard_wf_step_ref_t *refs = calloc(spec.n, sizeof *refs);
    size_t *order = calloc(spec.n, sizeof *order);
    if (!refs || !order)
        abort();
    for (size_t i = 0; i < spec.n; i++) {
        const gw_wf_step_spec_t *s = &spec.steps[i];
        if (!yard_wf_step_id_valid(s->id, strlen(s->id)))
            fail("an invalid step id accepted", s->id);
        for (size_t k = 0; k < i; k++)
            if (strcmp(spec.steps[k].id, s->id) == 0)
                fail("a duplicate step id accepted", s->id);
        check_step_job(s);
        refs[i] = (yard_wf_step_ref_t){s->id, s->depends_on, s->ndeps};
    }
    if (yard_wf_dag_check(refs, spec.n, order, err, sizeof err) != 0)
        fail("an accepted spec that the DAG check refuses", err);
    free(refs);
    free(order);
    gw_wf_spec_clear(&spec);
    json_decref(doc);
}

/* ---- mode odd: a graph ------------------------------------------------------- */

#define GRAPH_MAX 64

typedef struct {
    size_t n;
    int dep[GRAPH_MAX][GRAPH_MAX]; /* dep[c][p]: c depends on p */
    char ids[GRAPH_MAX][8];
} graph_t;

/* 0 unvisited, 1 on the stack, 2 done: nonzero when a cycle is reachable. */
static int dfs_cycle(const graph_t *g, size_t v, int *mark)
{
    mark[v] = 1;
    for (size_t p = 0; p < g->n; p++)
        if (g->dep[v][p] && (mark[p] == 1 || (mark[p] == 0 && dfs_cycle(g, p, mark))))
            return 1;
    mark[v] = 2;
    return 0;
}

static size_t id_index(const graph_t *g, const char *id, size_t len)
{
    for (size_t i = 0; i < g->n; i++)
        if (strlen(g->ids[i]) == len && memcmp(g->ids[i], id, len) == 0)
            return i;
    fail("a cycle message naming a step that does not exist", id);
    return 0;
}

/* "depends_on forms a cycle: a -> b -> a": each waits for the previous. */
static void check_cycle_message(const graph_t *g, const char *why)
{
    const char *p = strstr(why, "cycle: ");
    if (!p)
        fail("a cycle refused without naming it", why);
    p += 7;
    size_t prev = GRAPH_MAX, first = GRAPH_MAX, count = 0;
    for (;;) {
        size_t len = strcspn(p, " ");
        size_t at = id_index(g, p, len);
        if (prev != GRAPH_MAX && !g->dep[at][prev])
            fail("a named cycle step that does not wait for the one before it", why);
        if (first == GRAPH_MAX)
            first = at;
        prev = at;
        count++;
        p += len;
        if (strncmp(p, " -> ", 4) != 0)
            break;
        p += 4;
    }
    if (*p != '\0' || prev != first || count < 3)
        fail("a named cycle that does not close on its first step", why);
}

static void fuzz_graph(const uint8_t *data, size_t size)
{
    static graph_t g;
    memset(&g, 0, sizeof g);
    if (size == 0)
        return;
    g.n = 1 + data[0] % GRAPH_MAX;
    const char *deps[GRAPH_MAX][GRAPH_MAX];
    yard_wf_step_ref_t steps[GRAPH_MAX];
    size_t order[GRAPH_MAX];
    int repeated = 0, self = 0;
    for (size_t i = 0; i < g.n; i++) {
        snprintf(g.ids[i], sizeof g.ids[i], "s%zu", i);
        steps[i] = (yard_wf_step_ref_t){g.ids[i], deps[i], 0};
    }
    for (size_t k = 1; k + 1 < size; k += 2) {
        size_t c = data[k] % g.n, p = data[k + 1] % g.n;
        if (steps[c].ndeps == GRAPH_MAX)
            continue;
        repeated |= g.dep[c][p];
        self |= c == p;
        g.dep[c][p] = 1;
        deps[c][steps[c].ndeps++] = g.ids[p];
    }
    int mark[GRAPH_MAX] = {0}, cycle = 0;
    for (size_t v = 0; v < g.n && !cycle; v++)
        if (mark[v] == 0)
            cycle = dfs_cycle(&g, v, mark);
    char why[4096] = "";
    int rc = yard_wf_dag_check(steps, g.n, order, why, sizeof why);
    if (rc == 0) {
        if (cycle || repeated || self)
            fail("a graph with a cycle, a self or a repeated dependency accepted", NULL);
        size_t pos[GRAPH_MAX];
        for (size_t k = 0; k < g.n; k++)
            pos[order[k]] = k;
        for (size_t c = 0; c < g.n; c++)
            for (size_t p = 0; p < g.n; p++)
                if (g.dep[c][p] && pos[p] >= pos[c])
                    fail("an order that does not put a parent first", NULL);
        return;
    }
    check_message(why);
    if (!cycle && !repeated && !self)
        fail("a clean acyclic graph refused", why);
    if (strstr(why, "cycle"))
        check_cycle_message(&g, why);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    if (data[0] & 1)
        fuzz_graph(data + 1, size - 1);
    else
        fuzz_body(data + 1, size - 1);
    return 0;
}
