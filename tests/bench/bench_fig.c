/*
 * bench_fig.c - the bench's figures: one value per run, reported as the
 * median with its min-max spread (bench.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

void bench_fig_add(bench_t *b, const char *key, const char *label, const char *unit, double v)
{
    bench_fig_t *f = (bench_fig_t *)bench_fig_get(b, key);
    if (!f) {
        if (b->nfigs == BENCH_MAX_FIGS) {
            fprintf(stderr, "bench: more than %d figures; %s dropped\n", BENCH_MAX_FIGS, key);
            return;
        }
        f = &b->figs[b->nfigs++];
        memset(f, 0, sizeof *f);
        snprintf(f->key, sizeof f->key, "%s", key);
        snprintf(f->label, sizeof f->label, "%s", label);
        snprintf(f->unit, sizeof f->unit, "%s", unit);
    }
    if (f->n < BENCH_MAX_RUNS)
        f->v[f->n++] = v;
}

const bench_fig_t *bench_fig_get(const bench_t *b, const char *key)
{
    for (int i = 0; i < b->nfigs; i++)
        if (strcmp(b->figs[i].key, key) == 0)
            return &b->figs[i];
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double bench_fig_median(const bench_fig_t *f)
{
    double s[BENCH_MAX_RUNS];
    if (!f || f->n == 0)
        return 0;
    memcpy(s, f->v, sizeof(double) * (size_t)f->n);
    qsort(s, (size_t)f->n, sizeof s[0], cmp_double);
    return f->n % 2 ? s[f->n / 2] : (s[f->n / 2 - 1] + s[f->n / 2]) / 2;
}

double bench_fig_min(const bench_fig_t *f)
{
    double m = f && f->n ? f->v[0] : 0;
    for (int i = 1; f && i < f->n; i++)
        m = f->v[i] < m ? f->v[i] : m;
    return m;
}

double bench_fig_max(const bench_fig_t *f)
{
    double m = f && f->n ? f->v[0] : 0;
    for (int i = 1; f && i < f->n; i++)
        m = f->v[i] > m ? f->v[i] : m;
    return m;
}

double bench_med(const bench_t *b, const char *key)
{
    const bench_fig_t *f = bench_fig_get(b, key);
    return f && f->n ? bench_fig_median(f) : -1;
}
