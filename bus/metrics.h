/*
 * metrics.h - libyard's metrics registry, rendered as Prometheus text.
 *
 * A registry holds families: counters, gauges and histograms, each with a
 * name (`yard_` prefix, lower-case snake_case; counters end in `_total`), a
 * help text and up to YARD_METRICS_MAX_LABELS label names. A family has one
 * child per tuple of label values, created on first use under the registry's
 * mutex. Callers look a child up once and keep the pointer: after that an
 * increment is one lock-free atomic operation with no lookup and no lock.
 *
 *   yard_metrics_family_t *reqs;
 *   yard_metrics_counter_family(&reqs, reg, "yard_http_requests_total",
 *                               "HTTP requests by route and code.",
 *                               (const char *const[]){"route", "code", NULL});
 *   yard_metrics_counter_t *ok = yard_metrics_counter_with(reqs, "POST /v1/jobs", "202", NULL);
 *   yard_metrics_counter_add(ok, 1);          (from any thread)
 *
 * A callback family has no stored values: at each render its function
 * reports the current samples (queue depth, process memory, a histogram
 * kept elsewhere).
 *
 * yard_metrics_render writes the Prometheus text exposition format 0.0.4
 * (serve it with YARD_METRICS_CONTENT_TYPE). Children are rendered in the
 * order they were created; a family with no sample is left out.
 *
 * Thread safety: every function may be called from any thread. Child
 * lookups, registrations and rendering take the registry's mutex; the value
 * functions (add, set, observe) never lock. Families and children live until
 * yard_metrics_destroy, which must not race with any other call.
 */
#ifndef YARD_METRICS_H
#define YARD_METRICS_H

#include <stddef.h>
#include <stdint.h>

#define YARD_METRICS_MAX_LABELS 4      /* label names per family */
#define YARD_METRICS_MAX_BUCKETS 64    /* histogram bounds, +Inf not counted */
#define YARD_METRICS_MAX_CHILDREN 4096 /* label tuples per family (cardinality guard) */
#define YARD_METRICS_MAX_NAME 128      /* bytes in a metric or label name */
#define YARD_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

typedef struct yard_metrics yard_metrics_t;
typedef struct yard_metrics_family yard_metrics_family_t;
typedef struct yard_metrics_counter yard_metrics_counter_t;
typedef struct yard_metrics_gauge yard_metrics_gauge_t;
typedef struct yard_metrics_histogram yard_metrics_histogram_t;
typedef struct yard_metrics_sink yard_metrics_sink_t;

typedef enum {
    YARD_METRICS_COUNTER = 0,
    YARD_METRICS_GAUGE = 1,
    YARD_METRICS_HISTOGRAM = 2
} yard_metrics_kind_t;

/* A callback family's function: called during yard_metrics_render with the
 * registry's mutex held, it reports each current sample with
 * yard_metrics_sink_put. It must not call any other yard_metrics_ function
 * (that would deadlock) and should be quick: a scrape waits for it. */
typedef void (*yard_metrics_collect_fn)(yard_metrics_sink_t *sink, void *arg);

/* ---- registry ---- */

/* Creates an empty registry in *out. Returns 0, or YARD_EINVAL (out NULL) or
 * YARD_ENOMEM leaving *out untouched. Free it with yard_metrics_destroy. */
int yard_metrics_create(yard_metrics_t **out);

/* Frees the registry with all its families and children; every pointer
 * obtained from it becomes invalid. Callback arguments are not freed.
 * destroy(NULL) does nothing. */
void yard_metrics_destroy(yard_metrics_t *reg);

/* ---- families ----
 *
 * Each registers a family in reg and sets *out to it (owned by reg). name
 * must be `yard_` followed by [a-z0-9_] (counters: ending in `_total`); help
 * must be non-empty UTF-8; labels is a NULL-terminated array of at most
 * YARD_METRICS_MAX_LABELS distinct names matching [a-zA-Z_][a-zA-Z0-9_]*, not
 * starting with "__" (NULL or {NULL} for none). Strings are copied. A family
 * without labels gets its single child at once, so it renders 0 from the
 * start. Returns 0, or on error leaves *out untouched and registers nothing:
 * YARD_EINVAL for a bad argument or name, YARD_EEXIST when the name (or, for
 * a histogram, name_bucket/_sum/_count) clashes with a registered family,
 * YARD_ENOMEM. */
int yard_metrics_counter_family(yard_metrics_family_t **out, yard_metrics_t *reg,
                                const char *name, const char *help,
                                const char *const *labels);
int yard_metrics_gauge_family(yard_metrics_family_t **out, yard_metrics_t *reg,
                              const char *name, const char *help, const char *const *labels);

/* As yard_metrics_counter_family, for a counter counted in a unit smaller
 * than the name's (microseconds in a _seconds_total): it renders count *
 * scale (e.g. 1e-6), so the exported value is in base units. */
int yard_metrics_counter_family_scaled(yard_metrics_family_t **out, yard_metrics_t *reg,
                                       const char *name, const char *help,
                                       const char *const *labels, double scale);

/* As above for a histogram with nbounds (1..YARD_METRICS_MAX_BUCKETS) finite,
 * strictly increasing upper bounds (copied); the +Inf bucket is implicit.
 * A bucket counts observations <= its bound. The label name "le" is refused. */
int yard_metrics_histogram_family(yard_metrics_family_t **out, yard_metrics_t *reg,
                                  const char *name, const char *help,
                                  const char *const *labels, const double *bounds,
                                  size_t nbounds);

/* As above for a family whose samples fn reports at each render (kind is
 * YARD_METRICS_COUNTER or YARD_METRICS_GAUGE). arg is passed to fn and must
 * stay valid until the registry is destroyed. *out may be NULL when the
 * caller has no use for the family. Such a family has no children: the
 * _get/_with functions refuse it. */
int yard_metrics_callback_family(yard_metrics_family_t **out, yard_metrics_t *reg,
                                 yard_metrics_kind_t kind, const char *name, const char *help,
                                 const char *const *labels, yard_metrics_collect_fn fn,
                                 void *arg);

/* As yard_metrics_callback_family for a histogram with nbounds finite,
 * strictly increasing upper bounds (copied; rules of
 * yard_metrics_histogram_family): at each render fn reports every label
 * tuple's current counts with yard_metrics_sink_put_histogram. For figures
 * a module keeps itself (libyard's I/O statistics, iostats.h). */
int yard_metrics_callback_histogram(yard_metrics_family_t **out, yard_metrics_t *reg,
                                    const char *name, const char *help,
                                    const char *const *labels, const double *bounds,
                                    size_t nbounds, yard_metrics_collect_fn fn, void *arg);

/* Reports one sample from inside a collect function of a counter or gauge
 * family. The label values follow value as const char * arguments, exactly
 * one per label name of the family, then NULL:
 * yard_metrics_sink_put(sink, 12, "default", NULL). A sample with the wrong
 * number of values, a value that is not UTF-8, or for a histogram family is
 * dropped. Label values are escaped; the caller must not report one tuple
 * twice. */
void yard_metrics_sink_put(yard_metrics_sink_t *sink, double value, ...)
    __attribute__((sentinel));

/* The same for a callback histogram: counts holds ncounts per-bucket (not
 * cumulative) counts, one per bound of the family and then the +Inf bucket
 * (ncounts must be nbounds + 1, else the sample is dropped); sum is the sum
 * of the observations. Rendered as _bucket (cumulative), _sum and _count. */
void yard_metrics_sink_put_histogram(yard_metrics_sink_t *sink, const uint64_t *counts,
                                     size_t ncounts, double sum, ...)
    __attribute__((sentinel));

/* ---- children ----
 *
 * Sets *out to fam's child for the label values in values (a NULL-terminated
 * array with one UTF-8 string per label name, in order; NULL for a family
 * without labels), creating it with value 0 on first use. The same tuple
 * always gives the same pointer, valid until the registry is destroyed: keep
 * it. Returns 0, or leaves *out untouched and returns YARD_EINVAL (wrong
 * family kind, a callback family, wrong number of values, a value not UTF-8),
 * YARD_ERANGE (the family already has YARD_METRICS_MAX_CHILDREN children) or
 * YARD_ENOMEM. */
int yard_metrics_counter_get(yard_metrics_counter_t **out, yard_metrics_family_t *fam,
                             const char *const *values);
int yard_metrics_gauge_get(yard_metrics_gauge_t **out, yard_metrics_family_t *fam,
                           const char *const *values);
int yard_metrics_histogram_get(yard_metrics_histogram_t **out, yard_metrics_family_t *fam,
                               const char *const *values);

/* The same with the label values as arguments, ended by NULL:
 * yard_metrics_counter_with(fam, "POST /v1/jobs", "202", NULL), or
 * yard_metrics_counter_with(fam, NULL) without labels. Return the child, or
 * NULL on any error above. The value functions accept NULL and do nothing,
 * so a failed lookup costs a metric, never a crash. */
yard_metrics_counter_t *yard_metrics_counter_with(yard_metrics_family_t *fam, ...)
    __attribute__((sentinel));
yard_metrics_gauge_t *yard_metrics_gauge_with(yard_metrics_family_t *fam, ...)
    __attribute__((sentinel));
yard_metrics_histogram_t *yard_metrics_histogram_with(yard_metrics_family_t *fam, ...)
    __attribute__((sentinel));

/* ---- values: lock-free, any thread, NULL child = no-op ---- */

/* Adds n to a counter (counters only go up). */
void yard_metrics_counter_add(yard_metrics_counter_t *c, uint64_t n);
/* Returns the counter's current value (0 for NULL). */
uint64_t yard_metrics_counter_value(const yard_metrics_counter_t *c);

/* Sets a gauge to v. */
void yard_metrics_gauge_set(yard_metrics_gauge_t *g, double v);
/* Adds d (which may be negative) to a gauge. */
void yard_metrics_gauge_add(yard_metrics_gauge_t *g, double d);
/* Returns the gauge's current value (0 for NULL). */
double yard_metrics_gauge_value(const yard_metrics_gauge_t *g);

/* Records one observation v: it goes to the first bucket whose bound is >= v
 * (or +Inf) and is added to the sum. */
void yard_metrics_histogram_observe(yard_metrics_histogram_t *h, double v);

/* ---- rendering ---- */

/* Renders every family with at least one sample as Prometheus text format
 * 0.0.4 into a new NUL-terminated buffer: *out gets the buffer (the caller
 * frees it with free()) and *len its length without the NUL. Calls the
 * collect functions. Returns 0, or YARD_EINVAL / YARD_ENOMEM leaving *out and
 * *len untouched. */
int yard_metrics_render(yard_metrics_t *reg, char **out, size_t *len);

/* ---- process metrics ---- */

/* One reading of this process's resources, from /proc (Linux). */
typedef struct {
    double cpu_seconds;           /* user + system CPU time */
    double resident_memory_bytes; /* resident set size */
    double virtual_memory_bytes;  /* virtual memory size */
    double open_fds;              /* open file descriptors */
    double max_fds;               /* soft limit on file descriptors */
    double start_time_seconds;    /* process start, seconds since the Unix epoch */
} yard_metrics_process_t;

/* Reads the process's resources into *out. Returns 0, or YARD_EIO (with *out
 * untouched) when /proc cannot be read. */
int yard_metrics_process_sample(yard_metrics_process_t *out);

/* Registers the standard process families in reg, outside the yard_ prefix
 * as every Prometheus client names them: process_cpu_seconds_total,
 * process_resident_memory_bytes, process_virtual_memory_bytes,
 * process_open_fds, process_max_fds and process_start_time_seconds. Values
 * are read at each render. Returns 0, or YARD_EIO, YARD_EEXIST (already
 * registered) or YARD_ENOMEM; on error some families may be registered. */
int yard_metrics_register_process(yard_metrics_t *reg);

#endif
