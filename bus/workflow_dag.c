/*
 * workflow_dag.c - the shape rules of a workflow (workflow_dag.h): ids,
 * dependencies and cycles, checked with Kahn's algorithm; a cycle is found
 * by walking from a step left over to one of its unfinished parents until a
 * step repeats.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "workflow_dag.h"

int yard_wf_step_id_valid(const char *id, size_t len)
{
    if (!id || len == 0 || len > YARD_WF_STEP_ID_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)id[i];
        int alnum = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
        if (!alnum && (i == 0 || (ch != '.' && ch != '_' && ch != ':' && ch != '-')))
            return 0;
    }
    return 1;
}

/* What the check works with, freed in one place. */
typedef struct {
    const yard_wf_step_ref_t *steps;
    size_t n;
    size_t *by_id;    /* step indexes sorted by id */
    size_t *parent;   /* every edge's parent index, steps' edges in order */
    size_t *first;    /* first[i]: step i's first edge in parent[]; first[n]: total */
    size_t *children; /* child lists, CSR: child_at[p] .. child_at[p + 1] */
    size_t *child_at;
    size_t *waiting;  /* parents not yet ordered, per step */
    size_t *queue;    /* Kahn's queue: the order */
} dag_t;

static int cmp_by_id(const void *a, const void *b, void *arg)
{
    const yard_wf_step_ref_t *steps = arg;
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    int c = strcmp(steps[x].id, steps[y].id);
    return c ? c : (x > y) - (x < y);
}

/* The index of the step named id, or n when there is none. */
static size_t dag_find(const dag_t *d, const char *id)
{
    size_t lo = 0, hi = d->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(d->steps[d->by_id[mid]].id, id);
        if (c == 0)
            return d->by_id[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return d->n;
}

static void dag_free(dag_t *d)
{
    free(d->by_id);
    free(d->parent);
    free(d->first);
    free(d->children);
    free(d->child_at);
    free(d->waiting);
    free(d->queue);
}

/* Ids valid and unique. Returns 0 or YARD_EINVAL (why set). */
static int dag_ids(dag_t *d, char *why, size_t cap)
{
    for (size_t i = 0; i < d->n; i++) {
        const char *id = d->steps[i].id;
        if (!id || !yard_wf_step_id_valid(id, strlen(id))) {
            snprintf(why, cap,
                     "step %zu: `id` must be 1 to %d characters [A-Za-z0-9._:-] starting with a "
                     "letter or digit",
                     i, YARD_WF_STEP_ID_MAX);
            return YARD_EINVAL;
        }
        d->by_id[i] = i;
    }
    qsort_r(d->by_id, d->n, sizeof *d->by_id, cmp_by_id, (void *)d->steps);
    for (size_t k = 1; k < d->n; k++) {
        size_t a = d->by_id[k - 1], b = d->by_id[k];
        if (strcmp(d->steps[a].id, d->steps[b].id) == 0) {
            snprintf(why, cap, "duplicate step id `%s` (steps %zu and %zu)", d->steps[a].id, a,
                     b);
            return YARD_EINVAL;
        }
    }
    return 0;
}

/* Resolves every dependency to its step. Returns 0 or YARD_EINVAL. */
static int dag_edges(dag_t *d, char *why, size_t cap)
{
    size_t e = 0;
    for (size_t i = 0; i < d->n; i++) {
        const yard_wf_step_ref_t *s = &d->steps[i];
        d->first[i] = e;
        for (size_t k = 0; k < s->ndeps; k++) {
            const char *dep = s->depends_on[k];
            size_t p = dep ? dag_find(d, dep) : d->n;
            if (!dep || !yard_wf_step_id_valid(dep, strlen(dep))) {
                /* Not echoed: it could be anything (and cut mid-character). */
                snprintf(why, cap, "step `%s`: depends_on holds something that is not a step id",
                         s->id);
                return YARD_EINVAL;
            }
            if (p == d->n) {
                snprintf(why, cap, "step `%s` depends on unknown step `%s`", s->id, dep);
                return YARD_EINVAL;
            }
            if (p == i) {
                snprintf(why, cap, "step `%s` depends on itself", s->id);
                return YARD_EINVAL;
            }
            for (size_t j = d->first[i]; j < e; j++)
                if (d->parent[j] == p) {
                    snprintf(why, cap, "step `%s` lists `%s` twice in depends_on", s->id, dep);
                    return YARD_EINVAL;
                }
            d->parent[e++] = p;
        }
    }
    d->first[d->n] = e;
    return 0;
}

/* Writes the cycle that holds step `from` (or that it leads to, following
 * unfinished parents) into why: "a -> b -> a", each step waiting for the
 * one before it. */
static void dag_cycle(dag_t *d, size_t from, char *why, size_t cap)
{
    /* seen[i]: position + 1 of step i on the walk (reuses child_at's room:
     * no longer needed once Kahn's pass is over). */
    size_t *seen = d->child_at, *walk = d->queue, len = 0, at = from;
    memset(seen, 0, (d->n + 1) * sizeof *seen);
    while (!seen[at]) {
        seen[at] = ++len;
        walk[len - 1] = at;
        size_t next = d->n;
        for (size_t e = d->first[at]; e < d->first[at + 1]; e++)
            if (d->waiting[d->parent[e]] != 0) {
                next = d->parent[e];
                break;
            }
        if (next == d->n) /* cannot happen: a step left over has a parent left over */
            break;
        at = next;
    }
    /* walk[seen[at] - 1 ..] is the cycle, child to parent; print it parent
     * first. */
    size_t start = seen[at] ? seen[at] - 1 : 0, used = 0;
    int wrote = snprintf(why, cap, "depends_on forms a cycle:");
    used = wrote > 0 ? (size_t)wrote : 0;
    for (size_t k = len; k-- > start && used < cap;) {
        wrote = snprintf(why + used, cap - used, " %s ->", d->steps[walk[k]].id);
        used += wrote > 0 ? (size_t)wrote : 0;
    }
    if (used < cap)
        snprintf(why + used, cap - used, " %s", d->steps[walk[len - 1]].id);
}

/* Kahn's algorithm: orders the steps, or names a cycle. */
static int dag_order(dag_t *d, char *why, size_t cap)
{
    size_t n = d->n, edges = d->first[n];
    memset(d->child_at, 0, (n + 1) * sizeof *d->child_at);
    for (size_t e = 0; e < edges; e++)
        d->child_at[d->parent[e] + 1]++;
    for (size_t i = 0; i < n; i++)
        d->child_at[i + 1] += d->child_at[i];
    for (size_t i = 0; i < n; i++) {
        d->waiting[i] = d->first[i + 1] - d->first[i];
        for (size_t e = d->first[i]; e < d->first[i + 1]; e++)
            d->children[d->child_at[d->parent[e]]++] = i;
    }
    /* child_at[p] now ends p's list; shift back to starts. */
    for (size_t i = n; i > 0; i--)
        d->child_at[i] = d->child_at[i - 1];
    d->child_at[0] = 0;
    size_t head = 0, tail = 0;
    for (size_t i = 0; i < n; i++)
        if (d->waiting[i] == 0)
            d->queue[tail++] = i;
    while (head < tail) {
        size_t p = d->queue[head++];
        for (size_t k = d->child_at[p]; k < d->child_at[p + 1]; k++)
            if (--d->waiting[d->children[k]] == 0)
                d->queue[tail++] = d->children[k];
    }
    if (tail == n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (d->waiting[i] != 0) {
            dag_cycle(d, i, why, cap);
            break;
        }
    return YARD_EINVAL;
}

int yard_wf_dag_check(const yard_wf_step_ref_t *steps, size_t n, size_t *order, char *why,
                      size_t cap)
{
    dag_t d = {steps, n, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    size_t edges = 0;
    int rc;
    if (n == 0 || n > YARD_WF_MAX_STEPS) {
        snprintf(why, cap, "a workflow has 1 to %d steps, this one has %zu", YARD_WF_MAX_STEPS,
                 n);
        return YARD_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if (steps[i].ndeps > n) {
            snprintf(why, cap, "step %zu lists %zu dependencies, more than the workflow's %zu "
                               "steps",
                     i, steps[i].ndeps, n);
            return YARD_EINVAL;
        }
        edges += steps[i].ndeps;
    }
    d.by_id = malloc(n * sizeof *d.by_id);
    d.parent = malloc((edges ? edges : 1) * sizeof *d.parent);
    d.first = malloc((n + 1) * sizeof *d.first);
    d.children = malloc((edges ? edges : 1) * sizeof *d.children);
    d.child_at = malloc((n + 1) * sizeof *d.child_at);
    d.waiting = malloc(n * sizeof *d.waiting);
    d.queue = malloc(n * sizeof *d.queue);
    if (!d.by_id || !d.parent || !d.first || !d.children || !d.child_at || !d.waiting ||
        !d.queue) {
        snprintf(why, cap, "out of memory");
        rc = YARD_ENOMEM;
        goto out;
    }
    if ((rc = dag_ids(&d, why, cap)) < 0 || (rc = dag_edges(&d, why, cap)) < 0 ||
        (rc = dag_order(&d, why, cap)) < 0)
        goto out;
    if (order)
        memcpy(order, d.queue, n * sizeof *order);
out:
    dag_free(&d);
    return rc;
}
