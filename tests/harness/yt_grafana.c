/*
 * yt_grafana.c - Grafana's dashboards, template variables and PostgreSQL
 * macros for tests (see yt_grafana.h).
 */
#include <ctype.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "yt_grafana.h"

#define YT_GRAFANA_MAX_DEPTH 3 /* query variables resolved within query variables */
#define YT_GRAFANA_MACRO_ARGS 4
#define YT_GRAFANA_ARG_MAX 300

/* ---- dashboards ------------------------------------------------------------- */

int yt_grafana_load(yt_dashboard_t **out, size_t *n)
{
    char pattern[600];
    glob_t gl = {0};
    snprintf(pattern, sizeof pattern, "%s/%s/*.json", yt_src_dir(), YT_GRAFANA_DASHBOARDS);
    int rc = glob(pattern, 0, NULL, &gl);
    if (rc == GLOB_NOMATCH) {
        globfree(&gl);
        *out = NULL;
        *n = 0;
        return 0;
    }
    yt_dashboard_t *d = rc == 0 ? calloc(gl.gl_pathc, sizeof *d) : NULL;
    if (!d) {
        fprintf(stderr, "yt_grafana: cannot read %s (glob %d)\n", pattern, rc);
        globfree(&gl);
        return -1;
    }
    for (size_t i = 0; i < gl.gl_pathc; i++) {
        const char *slash = strrchr(gl.gl_pathv[i], '/');
        snprintf(d[i].file, sizeof d[i].file, "%s", slash ? slash + 1 : gl.gl_pathv[i]);
        d[i].doc = json_load_file(gl.gl_pathv[i], 0, &d[i].error);
    }
    *out = d;
    *n = gl.gl_pathc;
    globfree(&gl);
    return 0;
}

void yt_grafana_free(yt_dashboard_t *d, size_t n)
{
    for (size_t i = 0; d && i < n; i++)
        json_decref(d[i].doc);
    free(d);
}

json_t *yt_grafana_dashboard(json_t *doc)
{
    return json_object_get(doc, "dashboard") ?: doc;
}

json_t *yt_grafana_variables(json_t *dash)
{
    return json_object_get(json_object_get(dash, "templating"), "list");
}

static void each_panel(json_t *panels, yt_grafana_panel_fn fn, void *arg)
{
    size_t i;
    json_t *panel;
    json_array_foreach(panels, i, panel) {
        fn(panel, arg);
        each_panel(json_object_get(panel, "panels"), fn, arg); /* a row's */
    }
}

void yt_grafana_each_panel(json_t *dash, yt_grafana_panel_fn fn, void *arg)
{
    size_t i;
    json_t *row;
    each_panel(json_object_get(dash, "panels"), fn, arg);
    json_array_foreach(json_object_get(dash, "rows"), i, row) /* the old layout */
        each_panel(json_object_get(row, "panels"), fn, arg);
}

/* ---- template variables ----------------------------------------------------- */

int yt_grafana_label_values(const char *query, char *label, size_t lcap, char *match,
                            size_t mcap)
{
    const char *p = yt_skip_space(query);
    if (strncmp(p, "label_values(", 13) != 0)
        return 0;
    char inner[1000];
    snprintf(inner, sizeof inner, "%s", p + 13);
    char *close = strrchr(inner, ')');
    if (close)
        *close = '\0';
    /* label_values(label) or label_values(selector, label) */
    char *comma = NULL;
    int depth = 0;
    for (char *c = inner; *c; c++) {
        if (*c == '{' || *c == '(')
            depth++;
        else if (*c == '}' || *c == ')')
            depth--;
        else if (*c == ',' && depth == 0)
            comma = c;
    }
    if (comma) {
        *comma = '\0';
        snprintf(match, mcap, "%s", yt_one_line(inner, mcap - 1));
        snprintf(label, lcap, "%s", yt_one_line(comma + 1, lcap - 1));
    } else {
        snprintf(match, mcap, "%s", "");
        snprintf(label, lcap, "%s", yt_one_line(inner, lcap - 1));
    }
    return 1;
}

/* The value of the dashboard variable v (an entry of templating.list), or
 * NULL (then the text stays as is); buf (cap bytes) may hold it. */
static const char *dashboard_variable(yt_grafana_tpl_t *t, json_t *v, char *buf, size_t cap)
{
    json_t *cur = json_object_get(json_object_get(v, "current"), "value");
    if (json_is_array(cur))
        cur = json_array_get(cur, 0);
    const char *s = json_string_value(cur);
    if (s && strcmp(s, "$__all") == 0) {
        s = json_string_value(json_object_get(v, "allValue"));
        return s && s[0] ? s : ".*";
    }
    if (s && s[0])
        return s;
    json_t *opt = json_object_get(json_array_get(json_object_get(v, "options"), 0), "value");
    if (json_is_array(opt))
        opt = json_array_get(opt, 0);
    if (json_string_value(opt) && strcmp(json_string_value(opt), "$__all") != 0)
        return json_string_value(opt);
    const char *type = json_string_value(json_object_get(v, "type")) ?: "";
    json_t *qj = json_object_get(v, "query");
    const char *query = json_is_object(qj) ? json_string_value(json_object_get(qj, "query"))
                                           : json_string_value(qj);
    if (!query || !query[0])
        return NULL;
    if (!strcmp(type, "custom") || !strcmp(type, "interval")) {
        size_t n = strcspn(query, ",");
        snprintf(buf, cap, "%.*s", (int)n, query);
        snprintf(buf, cap, "%s", yt_one_line(buf, cap - 1));
        return buf;
    }
    if (!strcmp(type, "constant") || !strcmp(type, "textbox"))
        return query;
    if (!strcmp(type, "query") && t->query && t->depth < YT_GRAFANA_MAX_DEPTH) {
        t->depth++;
        char *q = yt_grafana_substitute(t, query);
        int rc = t->query(t->ud, q, buf, cap);
        free(q);
        t->depth--;
        return rc == 0 ? buf : NULL;
    }
    return NULL;
}

/* The value of a Grafana variable, or NULL (then the text stays as is). */
static const char *variable(yt_grafana_tpl_t *t, const char *name, char *buf, size_t cap)
{
    static const struct {
        const char *name, *value;
    } builtin[] = {
        {"__rate_interval", "15s"}, {"__interval", "5s"}, {"__interval_ms", "5000"},
        {"__range", "1m"}, {"__range_s", "60"}, {"__range_ms", "60000"},
        {"__auto_interval", "5s"}, {"__all", ".*"},
    };
    size_t len = strlen(name);
    for (const char *const *v = t->values; v && *v; v++)
        if (strncmp(*v, name, len) == 0 && (*v)[len] == '=')
            return *v + len + 1;
    for (size_t i = 0; i < sizeof builtin / sizeof builtin[0]; i++)
        if (strcmp(name, builtin[i].name) == 0)
            return builtin[i].value;
    if (strcmp(name, "__dashboard") == 0)
        return t->uid;
    size_t i;
    json_t *v;
    json_array_foreach(yt_grafana_variables(t->dash), i, v)
        if (strcmp(json_string_value(json_object_get(v, "name")) ?: "", name) == 0)
            return dashboard_variable(t, v, buf, cap);
    return NULL;
}

static void add_unresolved(yt_grafana_tpl_t *t, const char *name)
{
    if (strstr(yt_str_text(&t->unresolved), name))
        return;
    yt_str_addf(&t->unresolved, "%s$%s", t->unresolved.len ? ", " : "", name);
}

/* When p starts a variable reference, sets *name and *nlen to its name and
 * returns the character after the reference; otherwise returns NULL. */
static const char *variable_at(const char *p, const char **name, size_t *nlen)
{
    if (p[0] == '$' && p[1] == '{') { /* ${v} or ${v:format} */
        const char *close = strchr(p + 2, '}');
        if (!close)
            return NULL;
        *name = p + 2;
        *nlen = strcspn(*name, ":}");
        return *nlen ? close + 1 : NULL;
    }
    if (p[0] == '$' && (isalnum((unsigned char)p[1]) || p[1] == '_')) { /* $v */
        *name = p + 1;
        *nlen = 0;
        while (isalnum((unsigned char)(*name)[*nlen]) || (*name)[*nlen] == '_')
            (*nlen)++;
        return *name + *nlen;
    }
    if (p[0] == '[' && p[1] == '[') { /* [[v]] or [[v:format]] */
        const char *close = strstr(p + 2, "]]");
        size_t n = strcspn(p + 2, ":]");
        if (!close || n == 0)
            return NULL;
        for (size_t k = 0; k < n; k++)
            if (!isalnum((unsigned char)p[2 + k]) && p[2 + k] != '_')
                return NULL;
        *name = p + 2;
        *nlen = n;
        return close + 2;
    }
    return NULL;
}

char *yt_grafana_substitute(yt_grafana_tpl_t *t, const char *in)
{
    yt_str_t out = {0};
    yt_str_add(&out, "");
    const char *p = in;
    while (*p) {
        const char *name0 = NULL;
        size_t nlen = 0;
        const char *end = variable_at(p, &name0, &nlen);
        if (!end) {
            yt_str_addn(&out, p, 1);
            p++;
            continue;
        }
        char name[128], buf[512];
        snprintf(name, sizeof name, "%.*s", (int)nlen, name0);
        const char *v = variable(t, name, buf, sizeof buf);
        if (v) {
            yt_str_add(&out, v);
        } else {
            yt_str_addn(&out, p, (size_t)(end - p));
            add_unresolved(t, name);
        }
        p = end;
    }
    return out.s;
}

/* ---- PostgreSQL macros ------------------------------------------------------ */

/* Each macro's text for the last hour; $1 stands for its first argument. */
static const struct {
    const char *name, *text;
} sql_macro[] = {
    {"__timeFilter", "$1 BETWEEN now() - interval '1 hour' AND now()"},
    {"__timeFrom", "(now() - interval '1 hour')"},
    {"__timeTo", "now()"},
    {"__timeGroup", "date_trunc('minute', $1)"},
    {"__timeGroupAlias", "date_trunc('minute', $1) AS \"time\""},
    {"__time", "$1 AS \"time\""},
    {"__timeEpoch", "extract(epoch from $1) AS \"time\""},
    {"__unixEpochFilter",
     "$1 BETWEEN extract(epoch from now() - interval '1 hour') AND extract(epoch from now())"},
    {"__unixEpochFrom", "extract(epoch from now() - interval '1 hour')"},
    {"__unixEpochTo", "extract(epoch from now())"},
    {"__unixEpochGroup", "floor($1 / 60) * 60"},
    {"__unixEpochGroupAlias", "floor($1 / 60) * 60 AS \"time\""},
    {"__schema", "public"},
};

/* Splits the text between the parentheses of a macro (len bytes at a) at
 * top-level commas into at most YT_GRAFANA_MACRO_ARGS arguments, each on
 * one line. */
static void macro_args(const char *a, size_t len, char args[][YT_GRAFANA_ARG_MAX])
{
    int n = 0, depth = 0;
    size_t o = 0;
    for (size_t i = 0; i <= len && n < YT_GRAFANA_MACRO_ARGS; i++) {
        char c = i < len ? a[i] : ',';
        depth += (c == '(') - (c == ')');
        if (c == ',' && depth == 0) {
            args[n][o] = '\0';
            snprintf(args[n], YT_GRAFANA_ARG_MAX, "%s",
                     yt_one_line(args[n], YT_GRAFANA_ARG_MAX - 1));
            n++;
            o = 0;
        } else if (o + 1 < YT_GRAFANA_ARG_MAX) {
            args[n][o++] = c;
        }
    }
}

/* Appends text with $1 replaced by arg. */
static void add_expanded(yt_str_t *out, const char *text, const char *arg)
{
    for (const char *s = text; *s; s++) {
        if (s[0] == '$' && s[1] == '1') {
            yt_str_add(out, arg);
            s++;
        } else {
            yt_str_addn(out, s, 1);
        }
    }
}

char *yt_grafana_sql_macros(const char *in, yt_str_t *unknown)
{
    yt_str_t out = {0};
    yt_str_add(&out, "");
    const char *p = in;
    while (*p) {
        if (strncmp(p, "$__", 3) != 0) {
            yt_str_addn(&out, p, 1);
            p++;
            continue;
        }
        const char *n0 = p + 1, *q = n0;
        while (isalnum((unsigned char)*q) || *q == '_')
            q++;
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)(q - n0), n0);
        const char *after = yt_skip_space(q);
        if (*after != '(') { /* a variable such as $__interval: later */
            yt_str_addn(&out, p, (size_t)(q - p));
            p = q;
            continue;
        }
        const char *close = yt_skip_group(after, '(', ')');
        char args[YT_GRAFANA_MACRO_ARGS][YT_GRAFANA_ARG_MAX] = {{0}};
        size_t alen = close > after + 1 && close[-1] == ')' ? (size_t)(close - after - 2)
                                                             : strlen(after + 1);
        macro_args(after + 1, alen, args);
        size_t m = 0, nmacros = sizeof sql_macro / sizeof sql_macro[0];
        while (m < nmacros && strcmp(name, sql_macro[m].name) != 0)
            m++;
        if (m < nmacros) {
            add_expanded(&out, sql_macro[m].text, args[0]);
        } else {
            yt_str_addn(&out, p, (size_t)(close - p));
            yt_str_addf(unknown, "%s$%s()", unknown->len ? ", " : "", name);
        }
        p = close;
    }
    return out.s;
}
