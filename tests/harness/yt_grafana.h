/*
 * yt_grafana.h - Grafana's dashboards as tests read them: loading every
 * file of grafana/dashboards, walking their panels, substituting template
 * variables as Grafana would, and expanding Grafana's PostgreSQL macros.
 *
 * It knows Grafana's formats and nothing of Prometheus or PostgreSQL: a
 * query variable is resolved by a function the caller gives.
 */
#ifndef YARD_TEST_YT_GRAFANA_H
#define YARD_TEST_YT_GRAFANA_H

#include <stddef.h>

#include <jansson.h>

#include "yt_str.h"

/* The dashboards' folder, below the source folder (yt_src_dir()). */
#define YT_GRAFANA_DASHBOARDS "grafana/dashboards"

/* ---- dashboards ------------------------------------------------------------- */

/* One file of the dashboards' folder. */
typedef struct {
    char file[256];     /* its name, e.g. "overview.json" */
    json_t *doc;        /* the parsed file (owned), or NULL when it is not valid JSON */
    json_error_t error; /* then why (line, text) */
} yt_dashboard_t;

/* Reads every <src>/grafana/dashboards/<name>.json, in name order. Returns 0
 * and sets *out to a malloc'd array (free it with yt_grafana_free; NULL when
 * there are none) and *n to its length: a file that is not valid JSON is
 * there with doc NULL. Returns -1 after printing why when the folder cannot
 * be read (out and n untouched). */
int yt_grafana_load(yt_dashboard_t **out, size_t *n);

/* Frees the n dashboards d holds, and d. NULL is a no-op. */
void yt_grafana_free(yt_dashboard_t *d, size_t n);

/* The dashboard of a parsed file: doc itself, or its "dashboard" member
 * when doc is an export of Grafana's API, which wraps it. Borrowed. */
json_t *yt_grafana_dashboard(json_t *doc);

/* The template variables of dash (templating.list; borrowed; NULL when it
 * has none, which json_array_foreach takes as empty). */
json_t *yt_grafana_variables(json_t *dash);

/* Called for each panel; the panel is borrowed. */
typedef void (*yt_grafana_panel_fn)(json_t *panel, void *arg);

/* Calls fn for every panel of dash in order: each panel before the panels
 * it holds (a row's), then the panels of the old layout's rows. */
void yt_grafana_each_panel(json_t *dash, yt_grafana_panel_fn fn, void *arg);

/* ---- template variables ----------------------------------------------------- */

/* Resolves a query variable: query is its query, variables substituted.
 * Copies its first value into out (cap bytes) and returns 0, or returns -1
 * when it has none (the variable is then left as written). */
typedef int (*yt_grafana_query_fn)(void *ud, const char *query, char *out, size_t cap);

/* What substitution needs of one dashboard. Zero it, then set the fields
 * above `unresolved`; free unresolved with yt_str_free when done. */
typedef struct {
    json_t *dash;        /* the dashboard (borrowed) */
    const char *uid;     /* its uid, for $__dashboard */
    const char *const *values; /* "name=value" entries that override the dashboard's
                                * variables, NULL-terminated (may be NULL) */
    yt_grafana_query_fn query; /* resolves query variables (NULL: they stay as written) */
    void *ud;            /* query's first argument */
    yt_str_t unresolved; /* "$a, $b": the variables left as written, added up by every
                          * substitution until the caller clears it */
    int depth;           /* internal: query variables nested in query variables */
} yt_grafana_tpl_t;

/* in with Grafana's variables ($v, ${v}, ${v:format}, [[v]]) replaced by
 * their values: t->values, Grafana's own ($__rate_interval 15s,
 * $__interval 5s, $__range 1m, ...), then the dashboard's (current value,
 * first option, custom or constant text, or a query through t->query). A
 * variable without a value stays as written and is named in
 * t->unresolved. Returns a malloc'd string (free it). */
char *yt_grafana_substitute(yt_grafana_tpl_t *t, const char *in);

/* When query is label_values(label) or label_values(selector, label)
 * (leading white space allowed), copies label and the selector ("" when
 * none; each on one line) into label and match (lcap and mcap bytes, cut
 * to fit) and returns 1; otherwise returns 0. */
int yt_grafana_label_values(const char *query, char *label, size_t lcap, char *match,
                            size_t mcap);

/* ---- PostgreSQL macros ------------------------------------------------------ */

/* in with Grafana's PostgreSQL macros ($__timeFilter(col), $__timeGroupAlias(col, 1m),
 * $__unixEpochFrom(), ...) expanded for a time range of the last hour. An
 * unknown macro stays as written and is added to unknown ("$__x(), $__y()").
 * Variables such as $__interval are left for yt_grafana_substitute. Returns a
 * malloc'd string (free it). */
char *yt_grafana_sql_macros(const char *in, yt_str_t *unknown);

#endif
