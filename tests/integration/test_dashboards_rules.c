/*
 * test_dashboards_rules.c - the Grafana dashboards (grafana/) and the
 * Prometheus alerting rules (alerts/) are sound.
 *
 * Rules: the real `promtool check rules` and `promtool test rules` pass (their
 * output is shown on failure); every alert has a runbook_url whose anchor is
 * a heading of ops/RUNBOOK.md, and at least one firing and one quiet case in
 * alerts/tests/switchyard.test.yml.
 *
 * Dashboards: every grafana/dashboards/<name>.json is valid JSON with a uid of its
 * own; panel ids are unique within a dashboard; every data source uid is one
 * that grafana/provisioning/datasources/switchyard.yaml provisions, of the
 * type it provisions; a PostgreSQL target has rawSql (with $__timeFilter), a
 * Prometheus target has expr, whose range selectors are all
 * [$__rate_interval], whose variables are the dashboard's own, and which
 * promtool parses (through a generated rule file).
 *
 * Contract: every metric name in the dashboards' queries, the rules and the
 * rule tests is one of the metrics contract (README, "Metrics"; the table in
 * yt_contract.h) or `up`.
 *
 * promtool comes from Debian's `prometheus` package (ops/install-deps.sh);
 * $YARD_PROMTOOL names another one (yt_prom.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "harness.h"
#include "yt_contract.h"
#include "yt_grafana.h"
#include "yt_prom.h"
#include "yt_report.h"
#include "yt_str.h"

#define OUT_MAX 32768
#define MAX_DS 8

/* The dashboards the issue asks for (grafana/dashboards/<name>.json). */
static const char *const k_dashboards[] = {"overview", "queue", "gateway", "workers", "jobs"};

/* ---- helpers --------------------------------------------------------------- */

/* Lists the problems a check found (yt_report.h: one per line) and fails
 * the test once with their count. */
static void problems_assert_none(yt_report_t *p, const char *what)
{
    int n = yt_report_print(p, what);
    if (n)
        fail_msg("%s: %d problem(s) (listed above)", what, n);
}

static void src_path(char *buf, size_t cap, const char *rel)
{
    int n = snprintf(buf, cap, "%s/%s", yt_src_dir(), rel);
    assert_true(n > 0 && (size_t)n < cap);
}

/* The whole file, NUL-terminated (free it); fails the test if unreadable. */
static char *slurp(const char *path)
{
    char *text = yt_file_text(path);
    if (!text)
        fail_msg("cannot open %s: %s", path, strerror(errno));
    return text;
}

/* Runs promtool with args and fails the test, with its output, unless it
 * exits 0. */
static void promtool_ok(const char *a1, const char *a2, const char *file)
{
    char *out = malloc(OUT_MAX);
    assert_non_null(out);
    const char *const args[] = {a1, a2, file, NULL};
    int rc = yt_promtool(out, OUT_MAX, args);
    if (rc == 127)
        fail_msg("%s\npromtool is in Debian's `prometheus` package: apt-get install -y "
                 "prometheus (ops/install-deps.sh), or set YARD_PROMTOOL",
                 out);
    if (rc != 0)
        fail_msg("`promtool %s %s %s` exited %d:\n%s", a1, a2, file, rc, out);
    free(out);
}

static int is_ident(int c, int first)
{
    return isalpha(c) || c == '_' || c == ':' || (!first && isdigit(c));
}

/* Whether the len bytes at name are a series of the contract or `up`;
 * prose may also name a histogram by its own name (not a series). */
static int known_metric(const char *name, size_t len, int prose)
{
    return (len == 2 && memcmp(name, "up", 2) == 0) || yt_contract_find(name, len, prose);
}

/* Reports every yard_* / process_* identifier in text that the contract does
 * not name. where says where text comes from; prose (a whole file rather than
 * one query) may also name a histogram by its own name. */
static void check_metric_names(yt_report_t *p, const char *where, const char *text, int prose)
{
    for (const char *s = text; *s;) {
        if (!is_ident((unsigned char)*s, 1)) {
            s++;
            continue;
        }
        const char *b = s;
        while (*s && is_ident((unsigned char)*s, 0))
            s++;
        size_t len = (size_t)(s - b);
        int ours = (len > 5 && strncmp(b, "yard_", 5) == 0) ||
                   (len > 8 && strncmp(b, "process_", 8) == 0);
        if (ours && !known_metric(b, len, prose))
            yt_report_add(p, "%s: `%.*s` is not a metric of the contract", where, (int)len, b);
    }
}

/* ---- the provisioned data sources ------------------------------------------ */

typedef struct {
    char uid[64];
    char type[64];
} ds_t;

/* Copies the value of a `key: value` line (quotes removed) if the trimmed
 * line, after an optional "- ", starts with key. */
static int yaml_value(const char *line, const char *key, char *out, size_t cap)
{
    while (*line == ' ')
        line++;
    if (line[0] == '-' && line[1] == ' ')
        line += 2;
    size_t kl = strlen(key);
    if (strncmp(line, key, kl) != 0 || line[kl] != ':')
        return 0;
    line += kl + 1;
    while (*line == ' ')
        line++;
    size_t n;
    if (line[0] == '"' || line[0] == '\'') { /* quoted: up to the closing quote */
        const char *end = strchr(line + 1, line[0]);
        line++;
        n = end ? (size_t)(end - line) : strcspn(line, "\r\n");
    } else { /* plain: up to the end or a comment (" #") */
        n = strcspn(line, "\r\n");
        for (size_t i = 1; i < n; i++)
            if (line[i] == '#' && line[i - 1] == ' ') {
                n = i;
                break;
            }
        while (n && line[n - 1] == ' ')
            n--;
    }
    snprintf(out, cap, "%.*s", (int)n, line);
    return 1;
}

/* The (uid, type) of every data source of the provisioning file. */
static int load_datasources(ds_t *ds, int max)
{
    char path[1024];
    src_path(path, sizeof path, "grafana/provisioning/datasources/switchyard.yaml");
    char *text = slurp(path);
    int n = -1;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        const char *t = line;
        while (*t == ' ')
            t++;
        if (t[0] == '-' && t[1] == ' ') { /* a new list item */
            if (n + 1 >= max)
                break;
            n++;
            ds[n].uid[0] = ds[n].type[0] = '\0';
        }
        if (n < 0)
            continue;
        yaml_value(line, "uid", ds[n].uid, sizeof ds[n].uid);
        yaml_value(line, "type", ds[n].type, sizeof ds[n].type);
    }
    free(text);
    return n + 1;
}

static const ds_t *find_ds(const ds_t *ds, int nds, const char *uid)
{
    for (int i = 0; i < nds; i++)
        if (strcmp(ds[i].uid, uid) == 0)
            return &ds[i];
    return NULL;
}

static int is_postgres_type(const char *type)
{
    return strcmp(type, "postgres") == 0 || strcmp(type, "grafana-postgresql-datasource") == 0;
}

/* ---- dashboards -------------------------------------------------------------- */

/* Every file of grafana/dashboards, read once by the group setup. */
static yt_dashboard_t *g_dash;
static size_t g_ndash;

static int load_dashboards(void **state)
{
    return yt_grafana_load(&g_dash, &g_ndash);
}

static int free_dashboards(void **state)
{
    yt_grafana_free(g_dash, g_ndash);
    g_dash = NULL;
    g_ndash = 0;
    return 0;
}

/* Reports every dashboard that is not a valid JSON object. */
static void report_unparsed(yt_report_t *p)
{
    for (size_t i = 0; i < g_ndash; i++) {
        if (!g_dash[i].doc)
            yt_report_add(p, "%s: not valid JSON: line %d: %s", g_dash[i].file,
                          g_dash[i].error.line, g_dash[i].error.text);
        else if (!json_is_object(g_dash[i].doc))
            yt_report_add(p, "%s: not a JSON object", g_dash[i].file);
    }
}

/* What the checks of one dashboard need. */
typedef struct {
    yt_report_t *p;
    const yt_dashboard_t *dash;
    const ds_t *ds;
    int nds;
    json_int_t ids[512];
    int nids;
    char vars[16][64]; /* the template variables */
    int nvars;
    FILE *rules;   /* the generated rule file of every expr, or NULL */
    int *nexpr;
} dctx_t;

static const char *str_of(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Checks a datasource reference {type, uid}; returns the provisioned data
 * source it names, or NULL after reporting why. */
static const ds_t *check_ds_ref(dctx_t *c, json_t *ref, const char *where)
{
    const char *uid = json_is_object(ref) ? str_of(ref, "uid") : NULL;
    if (!uid) {
        yt_report_add(c->p, "%s: %s: datasource is not {\"type\", \"uid\"}", c->dash->file, where);
        return NULL;
    }
    const ds_t *ds = find_ds(c->ds, c->nds, uid);
    if (!ds) {
        yt_report_add(c->p, "%s: %s: datasource uid `%s` is not provisioned", c->dash->file, where,
                      uid);
        return NULL;
    }
    const char *type = str_of(ref, "type");
    if (type && strcmp(type, ds->type) != 0 &&
        !(is_postgres_type(type) && is_postgres_type(ds->type)))
        yt_report_add(c->p, "%s: %s: datasource `%s` has type `%s`, provisioned as `%s`",
                      c->dash->file, where, uid, type, ds->type);
    return ds;
}

/* A Prometheus expression: range selectors are [$__rate_interval], variables
 * are the dashboard's (or Grafana's $__rate_interval), metric names are the
 * contract's. Appends it to the generated rule file with the variables
 * replaced. */
static void check_expr(dctx_t *c, const char *expr, const char *where)
{
    char sub[8192];
    size_t o = 0;
    int uses_queue = 0;
    for (const char *s = expr; *s && o + 64 < sizeof sub;) {
        if (*s == '[') {
            if (strncmp(s, "[$__rate_interval]", 18) != 0)
                yt_report_add(c->p, "%s: %s: range `%.12s…` is not [$__rate_interval]",
                              c->dash->file, where, s);
        }
        if (*s != '$') {
            sub[o++] = *s++;
            continue;
        }
        const char *b = ++s;
        while (*s && is_ident((unsigned char)*s, 0))
            s++;
        size_t len = (size_t)(s - b);
        if (len == 15 && strncmp(b, "__rate_interval", 15) == 0) {
            o += (size_t)snprintf(sub + o, sizeof sub - o, "5m");
            continue;
        }
        int known = 0;
        for (int i = 0; i < c->nvars; i++)
            if (strlen(c->vars[i]) == len && strncmp(c->vars[i], b, len) == 0)
                known = 1;
        if (!known)
            yt_report_add(c->p, "%s: %s: unknown variable `$%.*s`", c->dash->file, where,
                          (int)len, b);
        if (len == 5 && strncmp(b, "queue", 5) == 0)
            uses_queue = 1;
        o += (size_t)snprintf(sub + o, sizeof sub - o, "value");
    }
    sub[o] = '\0';
    /* On a dashboard with a queue variable, every query is of that queue. */
    for (int i = 0; i < c->nvars; i++)
        if (strcmp(c->vars[i], "queue") == 0 && (!uses_queue || !strstr(expr, "queue=\"$queue\"")))
            yt_report_add(c->p, "%s: %s: expr does not filter queue=\"$queue\"", c->dash->file,
                          where);
    char what[600];
    snprintf(what, sizeof what, "%.200s: %.380s", c->dash->file, where);
    check_metric_names(c->p, what, expr, 0);
    if (c->rules) {
        json_t *js = json_string(sub);
        char *quoted = json_dumps(js, JSON_ENCODE_ANY);
        fprintf(c->rules, "      # %s\n      - record: dashboard_expr_%d\n        expr: %s\n",
                what, ++*c->nexpr, quoted);
        free(quoted);
        json_decref(js);
    }
}

static void check_panel(json_t *pn, void *arg)
{
    dctx_t *c = arg;
    char where[400];
    const char *title = str_of(pn, "title");
    json_t *id = json_object_get(pn, "id");
    snprintf(where, sizeof where, "panel %lld \"%s\"",
             json_is_integer(id) ? (long long)json_integer_value(id) : -1LL, title ? title : "");

    if (!json_is_integer(id)) {
        yt_report_add(c->p, "%s: %s: no integer id", c->dash->file, where);
    } else {
        for (int i = 0; i < c->nids; i++)
            if (c->ids[i] == json_integer_value(id))
                yt_report_add(c->p, "%s: %s: id used twice", c->dash->file, where);
        if (c->nids < (int)(sizeof c->ids / sizeof c->ids[0]))
            c->ids[c->nids++] = json_integer_value(id);
    }
    const char *type = str_of(pn, "type");
    if (!type) {
        yt_report_add(c->p, "%s: %s: no type", c->dash->file, where);
        return;
    }
    if (strcmp(type, "row") == 0)
        return;
    if (!title || !*title)
        yt_report_add(c->p, "%s: %s: no title", c->dash->file, where);
    if (!json_is_object(json_object_get(pn, "gridPos")))
        yt_report_add(c->p, "%s: %s: no gridPos", c->dash->file, where);
    const ds_t *pds = check_ds_ref(c, json_object_get(pn, "datasource"), where);
    json_t *targets = json_object_get(pn, "targets");
    if (!json_is_array(targets) || json_array_size(targets) == 0) {
        yt_report_add(c->p, "%s: %s: no targets", c->dash->file, where);
        return;
    }
    size_t i;
    json_t *t;
    json_array_foreach(targets, i, t)
    {
        char twhere[480];
        const char *ref = str_of(t, "refId");
        snprintf(twhere, sizeof twhere, "%s target %s", where, ref ? ref : "?");
        if (!ref)
            yt_report_add(c->p, "%s: %s: no refId", c->dash->file, twhere);
        json_t *tref = json_object_get(t, "datasource");
        const ds_t *ds = tref ? check_ds_ref(c, tref, twhere) : pds;
        if (!ds)
            continue;
        if (pds && ds != pds)
            yt_report_add(c->p, "%s: %s: target and panel name different data sources",
                          c->dash->file, twhere);
        if (strcmp(ds->type, "prometheus") == 0) {
            const char *expr = str_of(t, "expr");
            if (!expr || !*expr)
                yt_report_add(c->p, "%s: %s: Prometheus target without expr", c->dash->file,
                              twhere);
            else
                check_expr(c, expr, twhere);
        } else if (is_postgres_type(ds->type)) {
            const char *sql = str_of(t, "rawSql");
            const char *fmt = str_of(t, "format");
            if (!sql || !*sql) {
                yt_report_add(c->p, "%s: %s: PostgreSQL target without rawSql", c->dash->file,
                              twhere);
                continue;
            }
            if (!json_is_true(json_object_get(t, "rawQuery")))
                yt_report_add(c->p, "%s: %s: rawQuery is not true", c->dash->file, twhere);
            if (!strstr(sql, "$__timeFilter("))
                yt_report_add(c->p, "%s: %s: rawSql has no $__timeFilter", c->dash->file, twhere);
            if (!fmt || (strcmp(fmt, "table") != 0 && strcmp(fmt, "time_series") != 0))
                yt_report_add(c->p, "%s: %s: format is not table or time_series", c->dash->file,
                              twhere);
            else if (strcmp(fmt, "time_series") == 0 && !strstr(sql, "$__timeGroupAlias("))
                yt_report_add(c->p, "%s: %s: time_series without $__timeGroupAlias", c->dash->file,
                              twhere);
        } else {
            yt_report_add(c->p,
                          "%s: %s: data source type `%s` is neither Prometheus nor PostgreSQL",
                          c->dash->file, twhere, ds->type);
        }
    }
}

/* Checks every dashboard; with rules, writes their Prometheus expressions to
 * it as recording rules. */
static void check_dashboards(yt_report_t *p, FILE *rules, int *nexpr)
{
    ds_t ds[MAX_DS];
    int nds = load_datasources(ds, MAX_DS);
    if (!find_ds(ds, nds, "yard-prometheus") || !find_ds(ds, nds, "yard-postgres"))
        yt_report_add(p, "grafana/provisioning/datasources/switchyard.yaml: expected uids "
                         "yard-prometheus and yard-postgres");
    for (int i = 0; i < nds; i++)
        if (!ds[i].type[0] || !ds[i].uid[0])
            yt_report_add(p, "grafana/provisioning/datasources/switchyard.yaml: data source %d "
                             "has no uid or type", i + 1);

    report_unparsed(p);
    for (size_t k = 0; k < sizeof k_dashboards / sizeof k_dashboards[0]; k++) {
        int found = 0;
        for (size_t i = 0; i < g_ndash; i++)
            if (strncmp(g_dash[i].file, k_dashboards[k], strlen(k_dashboards[k])) == 0 &&
                strcmp(g_dash[i].file + strlen(k_dashboards[k]), ".json") == 0)
                found = 1;
        if (!found)
            yt_report_add(p, "grafana/dashboards/%s.json is missing", k_dashboards[k]);
    }
    for (size_t i = 0; i < g_ndash; i++) {
        json_t *root = g_dash[i].doc;
        if (!json_is_object(root))
            continue;
        dctx_t c = {.p = p, .dash = &g_dash[i], .ds = ds, .nds = nds, .rules = rules,
                    .nexpr = nexpr};
        const char *uid = str_of(root, "uid");
        if (!uid || !*uid)
            yt_report_add(p, "%s: no uid", g_dash[i].file);
        for (size_t j = 0; uid && j < i; j++) {
            const char *other = json_is_object(g_dash[j].doc) ? str_of(g_dash[j].doc, "uid")
                                                               : NULL;
            if (other && strcmp(other, uid) == 0)
                yt_report_add(p, "%s: uid `%s` is also %s's", g_dash[i].file, uid, g_dash[j].file);
        }
        if (!str_of(root, "title"))
            yt_report_add(p, "%s: no title", g_dash[i].file);
        if (!json_is_integer(json_object_get(root, "schemaVersion")))
            yt_report_add(p, "%s: no schemaVersion", g_dash[i].file);
        /* Template variables: names, and their data sources. */
        json_t *vars = yt_grafana_variables(root);
        size_t k;
        json_t *v;
        json_array_foreach(vars, k, v)
        {
            const char *name = str_of(v, "name");
            if (!name) {
                yt_report_add(p, "%s: a template variable has no name", g_dash[i].file);
                continue;
            }
            if (c.nvars < 16)
                snprintf(c.vars[c.nvars++], sizeof c.vars[0], "%s", name);
            json_t *ref = json_object_get(v, "datasource");
            if (ref) {
                char where[128];
                snprintf(where, sizeof where, "variable %s", name);
                check_ds_ref(&c, ref, where);
            }
        }
        json_t *panels = json_object_get(root, "panels");
        if (!json_is_array(panels) || json_array_size(panels) == 0) {
            yt_report_add(p, "%s: no panels", g_dash[i].file);
            continue;
        }
        yt_grafana_each_panel(root, check_panel, &c);
    }
}

/* ---- the tests ------------------------------------------------------------------ */

static void test_promtool_check_rules(void **state)
{
    char path[1024];
    src_path(path, sizeof path, "alerts/switchyard.rules.yml");
    promtool_ok("check", "rules", path);
}

static void test_promtool_test_rules(void **state)
{
    char path[1024];
    src_path(path, sizeof path, "alerts/tests/switchyard.test.yml");
    promtool_ok("test", "rules", path);
}

static void test_dashboards_are_well_formed(void **state)
{
    yt_report_t p = {0};
    int nexpr = 0;
    check_dashboards(&p, NULL, &nexpr);
    problems_assert_none(&p, "grafana/dashboards");
}

/* promtool parses every Prometheus query of the dashboards (as recording
 * rules of a generated file, with the variables replaced). */
static void test_dashboard_queries_parse(void **state)
{
    yt_report_t p = {0};
    int nexpr = 0;
    const char *dir = getenv("YARD_TEST_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/dashboard_queries.rules.yml", dir && *dir ? dir : "/tmp");
    FILE *f = fopen(path, "w");
    if (!f)
        fail_msg("cannot write %s: %s", path, strerror(errno));
    fprintf(f, "# Generated by test_dashboards_rules: every Prometheus query of "
               "grafana/dashboards.\ngroups:\n  - name: dashboards\n    rules:\n");
    check_dashboards(&p, f, &nexpr);
    assert_int_equal(fclose(f), 0);
    problems_assert_none(&p, "grafana/dashboards");
    assert_true(nexpr > 0);
    promtool_ok("check", "rules", path);
    unlink(path);
}

static void test_rules_use_only_contract_metrics(void **state)
{
    const char *files[] = {"alerts/switchyard.rules.yml", "alerts/tests/switchyard.test.yml"};
    yt_report_t p = {0};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[1024];
        src_path(path, sizeof path, files[i]);
        char *text = slurp(path);
        check_metric_names(&p, files[i], text, 1);
        free(text);
    }
    problems_assert_none(&p, "alerts");
}

/* The alert names of the rule file, in order. */
static int alert_names(char names[][64], int max)
{
    char path[1024];
    src_path(path, sizeof path, "alerts/switchyard.rules.yml");
    char *text = slurp(path);
    int n = 0;
    for (char *line = strtok(text, "\n"); line && n < max; line = strtok(NULL, "\n"))
        if (yaml_value(line, "alert", names[n], sizeof names[n]))
            n++;
    free(text);
    return n;
}

/* GitHub's anchor of a Markdown heading: lower case, punctuation dropped,
 * spaces as hyphens. */
static void slug(const char *heading, char *out, size_t cap)
{
    size_t o = 0;
    for (const char *s = heading; *s && *s != '\n' && o + 1 < cap; s++) {
        unsigned char ch = (unsigned char)*s;
        if (isalnum(ch) || ch == '-' || ch == '_')
            out[o++] = (char)tolower(ch);
        else if (ch == ' ')
            out[o++] = '-';
    }
    out[o] = '\0';
}

static void test_every_alert_has_a_runbook_section(void **state)
{
    char names[64][64];
    int n = alert_names(names, 64);
    assert_true(n > 0);

    char path[1024];
    src_path(path, sizeof path, "ops/RUNBOOK.md");
    char *book = slurp(path);
    char anchors[256][96];
    int na = 0;
    for (char *line = strtok(book, "\n"); line && na < 256; line = strtok(NULL, "\n")) {
        if (line[0] != '#')
            continue;
        while (*line == '#')
            line++;
        while (*line == ' ')
            line++;
        slug(line, anchors[na++], sizeof anchors[0]);
    }
    free(book);

    src_path(path, sizeof path, "alerts/switchyard.rules.yml");
    char *rules = slurp(path);
    yt_report_t p = {0};
    int alert = -1;
    int has_url[64] = {0};
    for (char *line = strtok(rules, "\n"); line; line = strtok(NULL, "\n")) {
        char v[256];
        if (yaml_value(line, "alert", v, sizeof v))
            alert++;
        if (alert < 0 || alert >= n)
            continue;
        if (yaml_value(line, "runbook_url", v, sizeof v)) {
            has_url[alert] = 1;
            const char *hash = strchr(v, '#');
            if (strncmp(v, "ops/RUNBOOK.md#", 15) != 0 || !hash)
                yt_report_add(&p, "%s: runbook_url `%s` does not point into ops/RUNBOOK.md#…",
                              names[alert], v);
            else {
                char want[96];
                slug(names[alert], want, sizeof want);
                if (strcmp(hash + 1, want) != 0)
                    yt_report_add(&p, "%s: runbook_url anchor `%s`, expected `%s`", names[alert],
                                  hash + 1, want);
                int found = 0;
                for (int i = 0; i < na; i++)
                    if (strcmp(anchors[i], hash + 1) == 0)
                        found = 1;
                if (!found)
                    yt_report_add(&p, "%s: ops/RUNBOOK.md has no heading with anchor `%s`",
                                  names[alert], hash + 1);
            }
        }
        if (yaml_value(line, "severity", v, sizeof v) && strcmp(v, "page") != 0 &&
            strcmp(v, "ticket") != 0)
            yt_report_add(&p, "%s: severity `%s` is neither page nor ticket", names[alert], v);
    }
    free(rules);
    for (int i = 0; i < n; i++)
        if (!has_url[i])
            yt_report_add(&p, "%s: no runbook_url", names[i]);
    problems_assert_none(&p, "runbook links");
}

/* Each alert has at least one case where it fires (exp_alerts with items) and
 * one where it stays quiet (exp_alerts: []) in the rule tests. */
static void test_every_alert_is_tested_both_ways(void **state)
{
    char names[64][64];
    int n = alert_names(names, 64);
    int fires[64] = {0}, quiet[64] = {0};
    char path[1024];
    src_path(path, sizeof path, "alerts/tests/switchyard.test.yml");
    char *text = slurp(path);
    int current = -1;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        char v[128];
        const char *t = line;
        while (*t == ' ')
            t++;
        if (*t == '#')
            continue;
        if (yaml_value(line, "alertname", v, sizeof v)) {
            current = -1;
            for (int i = 0; i < n; i++)
                if (strcmp(names[i], v) == 0)
                    current = i;
            continue;
        }
        if (current >= 0 && strncmp(t, "exp_alerts:", 11) == 0) {
            const char *rest = t + 11;
            while (*rest == ' ')
                rest++;
            if (strncmp(rest, "[]", 2) == 0)
                quiet[current]++;
            else
                fires[current]++;
            current = -1;
        }
    }
    free(text);
    yt_report_t p = {0};
    for (int i = 0; i < n; i++) {
        if (!fires[i])
            yt_report_add(&p, "%s: no test case where it fires", names[i]);
        if (!quiet[i])
            yt_report_add(&p, "%s: no test case where it stays quiet", names[i]);
    }
    problems_assert_none(&p, "alerts/tests/switchyard.test.yml");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_promtool_check_rules),
        cmocka_unit_test(test_promtool_test_rules),
        cmocka_unit_test(test_rules_use_only_contract_metrics),
        cmocka_unit_test(test_every_alert_has_a_runbook_section),
        cmocka_unit_test(test_every_alert_is_tested_both_ways),
        cmocka_unit_test(test_dashboards_are_well_formed),
        cmocka_unit_test(test_dashboard_queries_parse),
    };
    return cmocka_run_group_tests(tests, load_dashboards, free_dashboards);
}
