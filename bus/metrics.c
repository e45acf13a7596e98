/*
 * metrics.c - the metrics registry and its Prometheus text renderer.
 *
 * Layout: a registry owns an array of families; a family owns an array of
 * children, one per tuple of label values. Each child's values live in their
 * own cache-line-aligned allocation, so the pointer handed to callers stays
 * put when the array grows and two hot counters never share a cache line.
 * Counters are _Atomic uint64_t; gauges and histogram sums are doubles kept
 * as their bit patterns in _Atomic uint64_t and updated with a CAS loop.
 * A histogram stores per-bucket (not cumulative) counts; the renderer sums
 * them, so `_count` always equals the `+Inf` bucket of the same scrape.
 */
#include <dirent.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "err.h"
#include "metrics.h"

#define CACHE_LINE 64

struct yard_metrics_counter {
    _Atomic uint64_t value;
};

struct yard_metrics_gauge {
    _Atomic uint64_t bits; /* a double */
};

struct yard_metrics_histogram {
    const double *bounds;  /* the family's */
    size_t nbounds;
    _Atomic uint64_t sum_bits;  /* a double */
    _Atomic uint64_t counts[];  /* nbounds + 1, the last one +Inf */
};

typedef struct {
    const char *values[YARD_METRICS_MAX_LABELS]; /* point into block */
    char *block;                                 /* the values, NUL-separated */
    void *metric;                                /* counter, gauge or histogram */
} child_t;

struct yard_metrics_family {
    yard_metrics_t *reg; /* the owner, whose mutex guards children */
    yard_metrics_kind_t kind;
    char name[YARD_METRICS_MAX_NAME + 1];
    char *help;
    size_t nlabels;
    char labels[YARD_METRICS_MAX_LABELS][YARD_METRICS_MAX_NAME + 1];
    double bounds[YARD_METRICS_MAX_BUCKETS];
    size_t nbounds;
    double scale;                    /* counters: rendered count * scale (0: as is) */
    yard_metrics_collect_fn collect; /* non-NULL for a callback family */
    void *collect_arg;
    child_t *children;
    size_t nchildren, cap;
};

struct yard_metrics {
    pthread_mutex_t mu;
    yard_metrics_family_t **fams;
    size_t nfams, cap;
};

/* What a registration asks for; prefix is "yard_" except for process metrics. */
typedef struct {
    yard_metrics_kind_t kind;
    const char *prefix;
    const char *name;
    const char *help;
    const char *const *labels;
    const double *bounds;
    size_t nbounds;
    yard_metrics_collect_fn collect;
    void *collect_arg;
    double scale; /* counters: rendered value = count * scale (0: as counted) */
} family_spec_t;

/* A growing output buffer; err sticks at the first failed allocation. */
typedef struct {
    char *p;
    size_t len, cap;
    int err;
} buf_t;

struct yard_metrics_sink {
    buf_t *buf;
    const yard_metrics_family_t *fam;
    int header_done;
};

static const char *const kind_names[] = {"counter", "gauge", "histogram"};

/* ---- doubles in atomics ---- */

static uint64_t double_bits(double v)
{
    uint64_t b;
    memcpy(&b, &v, sizeof b);
    return b;
}

static double bits_double(uint64_t b)
{
    double v;
    memcpy(&v, &b, sizeof v);
    return v;
}

static void atomic_double_add(_Atomic uint64_t *p, double d)
{
    uint64_t old = atomic_load_explicit(p, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(p, &old, double_bits(bits_double(old) + d),
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

/* ---- validation ---- */

/* Nonzero when s[0..n) is well-formed UTF-8 (no overlongs, surrogates or
 * code points past U+10FFFF). */
static int utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        unsigned c = *p++;
        size_t more;
        unsigned cp, min;
        if (c < 0x80)
            continue;
        if (c >= 0xc2 && c <= 0xdf) {
            more = 1, cp = c & 0x1f, min = 0x80;
        } else if (c >= 0xe0 && c <= 0xef) {
            more = 2, cp = c & 0x0f, min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            more = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return 0;
        }
        if ((size_t)(end - p) < more)
            return 0;
        for (size_t i = 0; i < more; i++, p++) {
            if ((*p & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (*p & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
    }
    return 1;
}

/* A metric name: prefix, then at least one of [a-z0-9_]; counters end in _total. */
static int metric_name_valid(const char *name, const char *prefix, yard_metrics_kind_t kind)
{
    size_t n, plen = strlen(prefix);
    if (!name)
        return 0;
    n = strlen(name);
    if (n <= plen || n > YARD_METRICS_MAX_NAME || strncmp(name, prefix, plen) != 0)
        return 0;
    for (size_t i = plen; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return 0;
    }
    if (kind == YARD_METRICS_COUNTER)
        return n > plen + 6 && strcmp(name + n - 6, "_total") == 0;
    return 1;
}

/* A label name: [a-zA-Z_][a-zA-Z0-9_]*, not reserved ("__" prefix), not "le"
 * on a histogram. */
static int label_name_valid(const char *name, yard_metrics_kind_t kind)
{
    size_t n = strlen(name);
    if (n == 0 || n > YARD_METRICS_MAX_NAME || strncmp(name, "__", 2) == 0)
        return 0;
    if (kind == YARD_METRICS_HISTOGRAM && strcmp(name, "le") == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        int alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
            return 0;
    }
    return 1;
}

/* Counts a NULL-terminated array (NULL counts as empty); stops past max. */
static size_t strv_count(const char *const *v, size_t max)
{
    size_t n = 0;
    while (v && v[n] && n <= max)
        n++;
    return n;
}

static int spec_valid(const family_spec_t *s)
{
    size_t nl = strv_count(s->labels, YARD_METRICS_MAX_LABELS);
    if (s->kind != YARD_METRICS_COUNTER && s->kind != YARD_METRICS_GAUGE &&
        s->kind != YARD_METRICS_HISTOGRAM)
        return 0;
    if (!metric_name_valid(s->name, s->prefix, s->kind))
        return 0;
    if (!s->help || !*s->help || !utf8_valid(s->help, strlen(s->help)))
        return 0;
    if (nl > YARD_METRICS_MAX_LABELS)
        return 0;
    for (size_t i = 0; i < nl; i++) {
        if (!label_name_valid(s->labels[i], s->kind))
            return 0;
        for (size_t j = 0; j < i; j++)
            if (strcmp(s->labels[i], s->labels[j]) == 0)
                return 0;
    }
    if (s->kind == YARD_METRICS_HISTOGRAM) {
        if (!s->bounds || s->nbounds == 0 || s->nbounds > YARD_METRICS_MAX_BUCKETS)
            return 0;
        for (size_t i = 0; i < s->nbounds; i++) {
            if (!isfinite(s->bounds[i]) || (i > 0 && !(s->bounds[i] > s->bounds[i - 1])))
                return 0;
        }
    }
    return 1;
}

/* Writes the series names a family puts in the output (itself and, for a
 * histogram, name_bucket/_sum/_count) into out; returns how many. */
static size_t series_names(char out[4][YARD_METRICS_MAX_NAME + 8], const char *name,
                           yard_metrics_kind_t kind)
{
    static const char *const suffixes[] = {"", "_bucket", "_sum", "_count"};
    size_t n = kind == YARD_METRICS_HISTOGRAM ? 4 : 1;
    for (size_t i = 0; i < n; i++)
        snprintf(out[i], YARD_METRICS_MAX_NAME + 8, "%s%s", name, suffixes[i]);
    return n;
}

/* Nonzero when a new family would produce a series name some registered
 * family already produces. Call with the mutex held. */
static int name_clashes(const yard_metrics_t *reg, const char *name, yard_metrics_kind_t kind)
{
    char mine[4][YARD_METRICS_MAX_NAME + 8], theirs[4][YARD_METRICS_MAX_NAME + 8];
    size_t nm = series_names(mine, name, kind);
    for (size_t f = 0; f < reg->nfams; f++) {
        size_t nt = series_names(theirs, reg->fams[f]->name, reg->fams[f]->kind);
        for (size_t i = 0; i < nm; i++)
            for (size_t j = 0; j < nt; j++)
                if (strcmp(mine[i], theirs[j]) == 0)
                    return 1;
    }
    return 0;
}

/* ---- children ---- */

static size_t metric_size(const yard_metrics_family_t *fam)
{
    if (fam->kind == YARD_METRICS_HISTOGRAM)
        return sizeof(struct yard_metrics_histogram) + (fam->nbounds + 1) * sizeof(_Atomic uint64_t);
    if (fam->kind == YARD_METRICS_GAUGE)
        return sizeof(struct yard_metrics_gauge);
    return sizeof(struct yard_metrics_counter);
}

/* Allocates a zeroed metric for fam, on its own cache lines; NULL on ENOMEM. */
static void *metric_new(const yard_metrics_family_t *fam)
{
    size_t size = (metric_size(fam) + CACHE_LINE - 1) / CACHE_LINE * CACHE_LINE;
    void *m = aligned_alloc(CACHE_LINE, size);
    if (!m)
        return NULL;
    memset(m, 0, size);
    if (fam->kind == YARD_METRICS_HISTOGRAM) {
        struct yard_metrics_histogram *h = m;
        h->bounds = fam->bounds;
        h->nbounds = fam->nbounds;
        atomic_init(&h->sum_bits, double_bits(0.0));
        for (size_t i = 0; i <= fam->nbounds; i++)
            atomic_init(&h->counts[i], 0);
    } else if (fam->kind == YARD_METRICS_GAUGE) {
        atomic_init(&((struct yard_metrics_gauge *)m)->bits, double_bits(0.0));
    } else {
        atomic_init(&((struct yard_metrics_counter *)m)->value, 0);
    }
    return m;
}

static int child_matches(const child_t *c, size_t n, const char *const *values)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(c->values[i], values[i]) != 0)
            return 0;
    return 1;
}

/* Finds or adds fam's child for values (already checked: nlabels of them).
 * Call with the registry's mutex held. */
static int child_find_or_add(void **out, yard_metrics_family_t *fam, const char *const *values)
{
    child_t c = {{0}, NULL, NULL};
    size_t total = 0;
    char *p;
    int rc = YARD_ENOMEM;

    for (size_t i = 0; i < fam->nchildren; i++) {
        if (child_matches(&fam->children[i], fam->nlabels, values)) {
            *out = fam->children[i].metric;
            return 0;
        }
    }
    if (fam->nchildren >= YARD_METRICS_MAX_CHILDREN)
        return YARD_ERANGE;
    if (fam->nchildren == fam->cap) {
        size_t cap = fam->cap ? fam->cap * 2 : 4;
        child_t *grown = realloc(fam->children, cap * sizeof *grown);
        if (!grown)
            goto fail;
        fam->children = grown;
        fam->cap = cap;
    }
    for (size_t i = 0; i < fam->nlabels; i++)
        total += strlen(values[i]) + 1;
    c.block = malloc(total ? total : 1);
    c.metric = metric_new(fam);
    if (!c.block || !c.metric)
        goto fail;
    p = c.block;
    for (size_t i = 0; i < fam->nlabels; i++) {
        size_t n = strlen(values[i]) + 1;
        memcpy(p, values[i], n);
        c.values[i] = p;
        p += n;
    }
    fam->children[fam->nchildren++] = c;
    *out = c.metric;
    return 0;
fail:
    free(c.block);
    free(c.metric);
    return rc;
}

/* Looks up (creating) fam's child of the given kind for values; sets *out
 * only on success. */
static int child_get(void **out, yard_metrics_family_t *fam, yard_metrics_kind_t kind,
                     const char *const *values)
{
    size_t n;
    int rc;

    if (!fam || fam->kind != kind || fam->collect)
        return YARD_EINVAL;
    n = strv_count(values, YARD_METRICS_MAX_LABELS);
    if (n != fam->nlabels)
        return YARD_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!utf8_valid(values[i], strlen(values[i])))
            return YARD_EINVAL;
    pthread_mutex_lock(&fam->reg->mu);
    rc = child_find_or_add(out, fam, values);
    pthread_mutex_unlock(&fam->reg->mu);
    return rc;
}

/* Collects the NULL-terminated const char * arguments in ap into v, which
 * has room for YARD_METRICS_MAX_LABELS + 2 entries; reads at most one more
 * than a family can have, so a missing NULL is caught as a wrong count. */
static void va_values(const char **v, va_list ap)
{
    size_t n = 0;
    const char *s;
    while (n <= YARD_METRICS_MAX_LABELS && (s = va_arg(ap, const char *)) != NULL)
        v[n++] = s;
    v[n] = NULL;
}

static void *child_with(yard_metrics_family_t *fam, yard_metrics_kind_t kind, va_list ap)
{
    const char *v[YARD_METRICS_MAX_LABELS + 2];
    void *m = NULL;
    va_values(v, ap);
    return child_get(&m, fam, kind, v) == 0 ? m : NULL;
}

int yard_metrics_counter_get(yard_metrics_counter_t **out, yard_metrics_family_t *fam,
                             const char *const *values)
{
    void *m = NULL;
    int rc = out ? child_get(&m, fam, YARD_METRICS_COUNTER, values) : YARD_EINVAL;
    if (rc == 0)
        *out = m;
    return rc;
}

int yard_metrics_gauge_get(yard_metrics_gauge_t **out, yard_metrics_family_t *fam,
                           const char *const *values)
{
    void *m = NULL;
    int rc = out ? child_get(&m, fam, YARD_METRICS_GAUGE, values) : YARD_EINVAL;
    if (rc == 0)
        *out = m;
    return rc;
}

int yard_metrics_histogram_get(yard_metrics_histogram_t **out, yard_metrics_family_t *fam,
                               const char *const *values)
{
    void *m = NULL;
    int rc = out ? child_get(&m, fam, YARD_METRICS_HISTOGRAM, values) : YARD_EINVAL;
    if (rc == 0)
        *out = m;
    return rc;
}

yard_metrics_counter_t *yard_metrics_counter_with(yard_metrics_family_t *fam, ...)
{
    va_list ap;
    void *m;
    va_start(ap, fam);
    m = child_with(fam, YARD_METRICS_COUNTER, ap);
    va_end(ap);
    return m;
}

yard_metrics_gauge_t *yard_metrics_gauge_with(yard_metrics_family_t *fam, ...)
{
    va_list ap;
    void *m;
    va_start(ap, fam);
    m = child_with(fam, YARD_METRICS_GAUGE, ap);
    va_end(ap);
    return m;
}

yard_metrics_histogram_t *yard_metrics_histogram_with(yard_metrics_family_t *fam, ...)
{
    va_list ap;
    void *m;
    va_start(ap, fam);
    m = child_with(fam, YARD_METRICS_HISTOGRAM, ap);
    va_end(ap);
    return m;
}

/* ---- values ---- */

void yard_metrics_counter_add(yard_metrics_counter_t *c, uint64_t n)
{
    if (c)
        atomic_fetch_add_explicit(&c->value, n, memory_order_relaxed);
}

uint64_t yard_metrics_counter_value(const yard_metrics_counter_t *c)
{
    return c ? atomic_load_explicit(&c->value, memory_order_relaxed) : 0;
}

void yard_metrics_gauge_set(yard_metrics_gauge_t *g, double v)
{
    if (g)
        atomic_store_explicit(&g->bits, double_bits(v), memory_order_relaxed);
}

void yard_metrics_gauge_add(yard_metrics_gauge_t *g, double d)
{
    if (g)
        atomic_double_add(&g->bits, d);
}

double yard_metrics_gauge_value(const yard_metrics_gauge_t *g)
{
    return g ? bits_double(atomic_load_explicit(&g->bits, memory_order_relaxed)) : 0.0;
}

void yard_metrics_histogram_observe(yard_metrics_histogram_t *h, double v)
{
    size_t lo = 0, hi;
    if (!h)
        return;
    /* The first bound >= v; NaN compares false everywhere and lands in +Inf. */
    hi = h->nbounds;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v <= h->bounds[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    atomic_fetch_add_explicit(&h->counts[lo], 1, memory_order_relaxed);
    atomic_double_add(&h->sum_bits, v);
}

/* ---- registry and families ---- */

static void family_free(yard_metrics_family_t *fam)
{
    if (!fam)
        return;
    for (size_t i = 0; i < fam->nchildren; i++) {
        free(fam->children[i].block);
        free(fam->children[i].metric);
    }
    free(fam->children);
    free(fam->help);
    free(fam);
}

int yard_metrics_create(yard_metrics_t **out)
{
    yard_metrics_t *reg;
    if (!out)
        return YARD_EINVAL;
    reg = calloc(1, sizeof *reg);
    if (!reg)
        return YARD_ENOMEM;
    if (pthread_mutex_init(&reg->mu, NULL) != 0) {
        free(reg);
        return YARD_ENOMEM;
    }
    *out = reg;
    return 0;
}

void yard_metrics_destroy(yard_metrics_t *reg)
{
    if (!reg)
        return;
    for (size_t i = 0; i < reg->nfams; i++)
        family_free(reg->fams[i]);
    free(reg->fams);
    pthread_mutex_destroy(&reg->mu);
    free(reg);
}

/* Adds a built family to reg, with its one child when it has no labels and
 * no callback. Call with the mutex held; on error reg is unchanged. */
static int family_insert(yard_metrics_t *reg, yard_metrics_family_t *fam)
{
    void *only;

    if (name_clashes(reg, fam->name, fam->kind))
        return YARD_EEXIST;
    if (reg->nfams == reg->cap) {
        size_t cap = reg->cap ? reg->cap * 2 : 16;
        yard_metrics_family_t **grown = realloc(reg->fams, cap * sizeof *grown);
        if (!grown)
            return YARD_ENOMEM;
        reg->fams = grown;
        reg->cap = cap;
    }
    if (!fam->collect && fam->nlabels == 0 && child_find_or_add(&only, fam, NULL) != 0)
        return YARD_ENOMEM;
    reg->fams[reg->nfams++] = fam;
    return 0;
}

/* Validates s, builds the family and adds it to reg. Sets *out when out is
 * not NULL. */
static int family_add(yard_metrics_family_t **out, yard_metrics_t *reg, const family_spec_t *s)
{
    yard_metrics_family_t *fam;
    int rc = YARD_ENOMEM;

    if (!reg || !spec_valid(s))
        return YARD_EINVAL;
    fam = calloc(1, sizeof *fam);
    if (!fam || !(fam->help = strdup(s->help)))
        goto done;
    fam->reg = reg;
    fam->kind = s->kind;
    snprintf(fam->name, sizeof fam->name, "%s", s->name);
    fam->nlabels = strv_count(s->labels, YARD_METRICS_MAX_LABELS);
    for (size_t i = 0; i < fam->nlabels; i++)
        snprintf(fam->labels[i], sizeof fam->labels[i], "%s", s->labels[i]);
    fam->nbounds = s->kind == YARD_METRICS_HISTOGRAM ? s->nbounds : 0;
    if (fam->nbounds)
        memcpy(fam->bounds, s->bounds, fam->nbounds * sizeof *fam->bounds);
    fam->collect = s->collect;
    fam->collect_arg = s->collect_arg;
    fam->scale = s->scale;

    pthread_mutex_lock(&reg->mu);
    rc = family_insert(reg, fam);
    pthread_mutex_unlock(&reg->mu);
done:
    if (rc != 0) {
        family_free(fam);
        return rc;
    }
    if (out)
        *out = fam;
    return 0;
}

int yard_metrics_counter_family(yard_metrics_family_t **out, yard_metrics_t *reg,
                                const char *name, const char *help, const char *const *labels)
{
    family_spec_t s = {YARD_METRICS_COUNTER, "yard_", name, help, labels, NULL, 0, NULL, NULL, 0};
    return out ? family_add(out, reg, &s) : YARD_EINVAL;
}

int yard_metrics_counter_family_scaled(yard_metrics_family_t **out, yard_metrics_t *reg,
                                       const char *name, const char *help,
                                       const char *const *labels, double scale)
{
    family_spec_t s = {YARD_METRICS_COUNTER, "yard_", name, help, labels, NULL, 0, NULL, NULL,
                       scale};
    return out && scale > 0 ? family_add(out, reg, &s) : YARD_EINVAL;
}

int yard_metrics_gauge_family(yard_metrics_family_t **out, yard_metrics_t *reg,
                              const char *name, const char *help, const char *const *labels)
{
    family_spec_t s = {YARD_METRICS_GAUGE, "yard_", name, help, labels, NULL, 0, NULL, NULL, 0};
    return out ? family_add(out, reg, &s) : YARD_EINVAL;
}

int yard_metrics_histogram_family(yard_metrics_family_t **out, yard_metrics_t *reg,
                                  const char *name, const char *help,
                                  const char *const *labels, const double *bounds,
                                  size_t nbounds)
{
    family_spec_t s = {YARD_METRICS_HISTOGRAM, "yard_", name, help, labels, bounds, nbounds,
                       NULL, NULL, 0};
    return out ? family_add(out, reg, &s) : YARD_EINVAL;
}

int yard_metrics_callback_family(yard_metrics_family_t **out, yard_metrics_t *reg,
                                 yard_metrics_kind_t kind, const char *name, const char *help,
                                 const char *const *labels, yard_metrics_collect_fn fn,
                                 void *arg)
{
    family_spec_t s = {kind, "yard_", name, help, labels, NULL, 0, fn, arg, 0};
    if (!fn || (kind != YARD_METRICS_COUNTER && kind != YARD_METRICS_GAUGE))
        return YARD_EINVAL;
    return family_add(out, reg, &s);
}

int yard_metrics_callback_histogram(yard_metrics_family_t **out, yard_metrics_t *reg,
                                    const char *name, const char *help,
                                    const char *const *labels, const double *bounds,
                                    size_t nbounds, yard_metrics_collect_fn fn, void *arg)
{
    family_spec_t s = {YARD_METRICS_HISTOGRAM, "yard_", name, help, labels, bounds, nbounds,
                       fn, arg, 0};
    if (!fn)
        return YARD_EINVAL;
    return family_add(out, reg, &s);
}

/* ---- rendering ---- */

static void buf_put(buf_t *b, const char *s, size_t n)
{
    if (b->err)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        char *grown;
        while (b->len + n + 1 > cap)
            cap *= 2;
        grown = realloc(b->p, cap);
        if (!grown) {
            b->err = YARD_ENOMEM;
            return;
        }
        b->p = grown;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void buf_puts(buf_t *b, const char *s)
{
    buf_put(b, s, strlen(s));
}

/* Appends s escaped for the text format: backslash and newline always,
 * double quotes too inside a label value. */
static void buf_escaped(buf_t *b, const char *s, int label_value)
{
    const char *specials = label_value ? "\\\n\"" : "\\\n";
    while (*s) {
        size_t n = strcspn(s, specials);
        buf_put(b, s, n);
        s += n;
        if (*s) {
            buf_puts(b, *s == '\n' ? "\\n" : *s == '\\' ? "\\\\" : "\\\"");
            s++;
        }
    }
}

/* Formats v as the shortest text that reads back as v; Go's ParseFloat (and
 * so Prometheus) accepts it, and NaN / +Inf / -Inf as spelled here. */
static void fmt_double(char out[32], double v)
{
    if (isnan(v)) {
        snprintf(out, 32, "NaN");
    } else if (isinf(v)) {
        snprintf(out, 32, "%sInf", v > 0 ? "+" : "-");
    } else {
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(out, 32, "%.*g", prec, v);
            if (strtod(out, NULL) == v)
                break;
        }
    }
}

static void put_header(buf_t *b, const yard_metrics_family_t *fam)
{
    buf_puts(b, "# HELP ");
    buf_puts(b, fam->name);
    buf_puts(b, " ");
    buf_escaped(b, fam->help, 0);
    buf_puts(b, "\n# TYPE ");
    buf_puts(b, fam->name);
    buf_puts(b, " ");
    buf_puts(b, kind_names[fam->kind]);
    buf_puts(b, "\n");
}

/* Appends one sample line: name+suffix, the labels (plus le when not NULL),
 * then the value text. */
static void put_sample(buf_t *b, const yard_metrics_family_t *fam, const char *suffix,
                       const char *const *values, const char *le, const char *value)
{
    const char *sep = "{";
    buf_puts(b, fam->name);
    buf_puts(b, suffix);
    for (size_t i = 0; i < fam->nlabels; i++) {
        buf_puts(b, sep);
        buf_puts(b, fam->labels[i]);
        buf_puts(b, "=\"");
        buf_escaped(b, values[i], 1);
        buf_puts(b, "\"");
        sep = ",";
    }
    if (le) {
        buf_puts(b, sep);
        buf_puts(b, "le=\"");
        buf_puts(b, le);
        buf_puts(b, "\"");
        sep = ",";
    }
    if (*sep == ',')
        buf_puts(b, "}");
    buf_puts(b, " ");
    buf_puts(b, value);
    buf_puts(b, "\n");
}

/* Appends one histogram's series from its per-bucket counts (the family's
 * nbounds, then +Inf; count(i) reads the i-th), its sum and label values. */
static void put_histogram(buf_t *b, const yard_metrics_family_t *fam, const char *const *values,
                          uint64_t (*count)(const void *src, size_t i), const void *src,
                          double sum)
{
    uint64_t cum = 0;
    char le[32], num[32];

    for (size_t i = 0; i <= fam->nbounds; i++) {
        cum += count(src, i);
        if (i < fam->nbounds)
            fmt_double(le, fam->bounds[i]);
        else
            snprintf(le, sizeof le, "+Inf");
        snprintf(num, sizeof num, "%" PRIu64, cum);
        put_sample(b, fam, "_bucket", values, le, num);
    }
    fmt_double(num, sum);
    put_sample(b, fam, "_sum", values, NULL, num);
    snprintf(num, sizeof num, "%" PRIu64, cum);
    put_sample(b, fam, "_count", values, NULL, num);
}

static uint64_t histogram_count(const void *src, size_t i)
{
    const struct yard_metrics_histogram *h = src;
    return atomic_load_explicit(&h->counts[i], memory_order_relaxed);
}

static uint64_t array_count(const void *src, size_t i)
{
    return ((const uint64_t *)src)[i];
}

static void render_histogram(buf_t *b, const yard_metrics_family_t *fam, const child_t *c)
{
    struct yard_metrics_histogram *h = c->metric;
    put_histogram(b, fam, c->values, histogram_count, h,
                  bits_double(atomic_load_explicit(&h->sum_bits, memory_order_relaxed)));
}

static void render_family(buf_t *b, const yard_metrics_family_t *fam)
{
    char num[32];

    if (fam->collect) {
        yard_metrics_sink_t sink = {b, fam, 0};
        fam->collect(&sink, fam->collect_arg);
        return;
    }
    if (fam->nchildren == 0)
        return;
    put_header(b, fam);
    for (size_t i = 0; i < fam->nchildren; i++) {
        const child_t *c = &fam->children[i];
        if (fam->kind == YARD_METRICS_HISTOGRAM) {
            render_histogram(b, fam, c);
            continue;
        }
        if (fam->kind == YARD_METRICS_COUNTER && fam->scale > 0)
            fmt_double(num, (double)yard_metrics_counter_value(c->metric) * fam->scale);
        else if (fam->kind == YARD_METRICS_COUNTER)
            snprintf(num, sizeof num, "%" PRIu64, yard_metrics_counter_value(c->metric));
        else
            fmt_double(num, yard_metrics_gauge_value(c->metric));
        put_sample(b, fam, "", c->values, NULL, num);
    }
}

/* Nonzero when v holds one UTF-8 value per label of the sink's family;
 * writes the family's header before its first sample. */
static int sink_accept(yard_metrics_sink_t *sink, const char *const *v)
{
    if (strv_count(v, YARD_METRICS_MAX_LABELS) != sink->fam->nlabels)
        return 0;
    for (size_t i = 0; i < sink->fam->nlabels; i++)
        if (!utf8_valid(v[i], strlen(v[i])))
            return 0;
    if (!sink->header_done) {
        put_header(sink->buf, sink->fam);
        sink->header_done = 1;
    }
    return 1;
}

void yard_metrics_sink_put(yard_metrics_sink_t *sink, double value, ...)
{
    const char *v[YARD_METRICS_MAX_LABELS + 2];
    char num[32];
    va_list ap;

    va_start(ap, value);
    va_values(v, ap);
    va_end(ap);
    if (!sink || sink->fam->kind == YARD_METRICS_HISTOGRAM || !sink_accept(sink, v))
        return;
    fmt_double(num, value);
    put_sample(sink->buf, sink->fam, "", v, NULL, num);
}

void yard_metrics_sink_put_histogram(yard_metrics_sink_t *sink, const uint64_t *counts,
                                     size_t ncounts, double sum, ...)
{
    const char *v[YARD_METRICS_MAX_LABELS + 2];
    va_list ap;

    va_start(ap, sum);
    va_values(v, ap);
    va_end(ap);
    if (!sink || sink->fam->kind != YARD_METRICS_HISTOGRAM || !counts ||
        ncounts != sink->fam->nbounds + 1 || !sink_accept(sink, v))
        return;
    put_histogram(sink->buf, sink->fam, v, array_count, counts, sum);
}

int yard_metrics_render(yard_metrics_t *reg, char **out, size_t *len)
{
    buf_t b = {NULL, 0, 0, 0};

    if (!reg || !out || !len)
        return YARD_EINVAL;
    buf_put(&b, "", 0); /* an empty registry still gives a string */
    pthread_mutex_lock(&reg->mu);
    for (size_t i = 0; i < reg->nfams; i++)
        render_family(&b, reg->fams[i]);
    pthread_mutex_unlock(&reg->mu);
    if (b.err) {
        free(b.p);
        return b.err;
    }
    *out = b.p;
    *len = b.len;
    return 0;
}

/* ---- process metrics ---- */

/* Seconds since the epoch at which the machine booted, from /proc/stat. */
static int boot_time(double *out)
{
    FILE *f = fopen("/proc/stat", "r");
    char *line = NULL;
    size_t cap = 0;
    unsigned long long btime;
    int rc = YARD_EIO;

    if (!f)
        return YARD_EIO;
    while (getline(&line, &cap, f) > 0) {
        if (sscanf(line, "btime %llu", &btime) == 1) {
            *out = (double)btime;
            rc = 0;
            break;
        }
    }
    free(line);
    fclose(f);
    return rc;
}

/* Open descriptors: entries of /proc/self/fd, less the one reading it. */
static int open_fds(double *out)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    long n = 0;

    if (!d)
        return YARD_EIO;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    *out = (double)(n - 1);
    return 0;
}

int yard_metrics_process_sample(yard_metrics_process_t *out)
{
    yard_metrics_process_t s;
    char line[1024];
    const char *p;
    unsigned long utime, stime, vsize;
    unsigned long long start;
    long rss;
    struct rlimit rl;
    double boot, tck = (double)sysconf(_SC_CLK_TCK);
    FILE *f;
    int ok;

    if (!out)
        return YARD_EINVAL;
    f = fopen("/proc/self/stat", "r");
    if (!f)
        return YARD_EIO;
    ok = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    /* The command name may hold spaces and parentheses: skip past the last ')'. */
    p = ok ? strrchr(line, ')') : NULL;
    if (!p || sscanf(p + 1,
                     " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d"
                     " %*d %*d %llu %lu %ld",
                     &utime, &stime, &start, &vsize, &rss) != 5)
        return YARD_EIO;
    if (boot_time(&boot) != 0 || open_fds(&s.open_fds) != 0 || tck <= 0 ||
        getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return YARD_EIO;
    s.cpu_seconds = (double)(utime + stime) / tck;
    s.resident_memory_bytes = (double)rss * (double)sysconf(_SC_PAGESIZE);
    s.virtual_memory_bytes = (double)vsize;
    s.max_fds = rl.rlim_cur == RLIM_INFINITY ? INFINITY : (double)rl.rlim_cur;
    s.start_time_seconds = boot + (double)start / tck;
    *out = s;
    return 0;
}

/* The process families read at scrape time: which field of a sample each shows. */
typedef struct {
    const char *name;
    const char *help;
    yard_metrics_kind_t kind;
    size_t offset; /* of a double in yard_metrics_process_t */
} proc_metric_t;

static const proc_metric_t proc_metrics[] = {
    {"process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
     YARD_METRICS_COUNTER, offsetof(yard_metrics_process_t, cpu_seconds)},
    {"process_resident_memory_bytes", "Resident memory size in bytes.", YARD_METRICS_GAUGE,
     offsetof(yard_metrics_process_t, resident_memory_bytes)},
    {"process_virtual_memory_bytes", "Virtual memory size in bytes.", YARD_METRICS_GAUGE,
     offsetof(yard_metrics_process_t, virtual_memory_bytes)},
    {"process_open_fds", "Number of open file descriptors.", YARD_METRICS_GAUGE,
     offsetof(yard_metrics_process_t, open_fds)},
    {"process_max_fds", "Maximum number of open file descriptors.", YARD_METRICS_GAUGE,
     offsetof(yard_metrics_process_t, max_fds)},
};
#define PROC_START_NAME "process_start_time_seconds"

/* arg is the index of the proc_metrics entry to report. */
static void proc_collect(yard_metrics_sink_t *sink, void *arg)
{
    const proc_metric_t *m = &proc_metrics[(uintptr_t)arg];
    yard_metrics_process_t s;
    double v;

    if (yard_metrics_process_sample(&s) != 0)
        return;
    memcpy(&v, (const char *)&s + m->offset, sizeof v);
    yard_metrics_sink_put(sink, v, NULL);
}

int yard_metrics_register_process(yard_metrics_t *reg)
{
    const size_t n = sizeof proc_metrics / sizeof proc_metrics[0];
    family_spec_t start = {YARD_METRICS_GAUGE, "process_", PROC_START_NAME,
                           "Start time of the process since unix epoch in seconds.",
                           NULL, NULL, 0, NULL, NULL, 0};
    yard_metrics_family_t *fam;
    yard_metrics_process_t s;
    int rc, clash = 0;

    if (!reg)
        return YARD_EINVAL;
    rc = yard_metrics_process_sample(&s);
    if (rc != 0)
        return rc;
    pthread_mutex_lock(&reg->mu);
    for (size_t i = 0; i < n; i++)
        clash |= name_clashes(reg, proc_metrics[i].name, proc_metrics[i].kind);
    clash |= name_clashes(reg, PROC_START_NAME, YARD_METRICS_GAUGE);
    pthread_mutex_unlock(&reg->mu);
    if (clash)
        return YARD_EEXIST;
    for (size_t i = 0; i < n && rc == 0; i++) {
        family_spec_t spec = {proc_metrics[i].kind, "process_", proc_metrics[i].name,
                              proc_metrics[i].help, NULL, NULL, 0, proc_collect,
                              (void *)(uintptr_t)i, 0};
        rc = family_add(NULL, reg, &spec);
    }
    if (rc == 0)
        rc = family_add(&fam, reg, &start);
    if (rc == 0)
        yard_metrics_gauge_set(yard_metrics_gauge_with(fam, NULL), s.start_time_seconds);
    return rc;
}
