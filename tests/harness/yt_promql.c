/*
 * yt_promql.c - the PromQL selector scanner (see yt_promql.h).
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "yt_promql.h"
#include "yt_str.h"

static int ident_start(int c)
{
    return isalpha(c) || c == '_' || c == ':';
}

static int ident_char(int c)
{
    return isalnum(c) || c == '_' || c == ':';
}

static int is_quote(char c)
{
    return c == '"' || c == '\'' || c == '`';
}

/* Parses the matchers of a {...} block at p into s; returns the character
 * after the block. */
static const char *parse_matchers(const char *p, yt_promql_sel_t *s)
{
    p++; /* '{' */
    for (;;) {
        p = yt_skip_space(p);
        while (*p == ',')
            p = yt_skip_space(p + 1);
        if (!*p || *p == '}')
            return *p ? p + 1 : p;
        if (is_quote(*p)) { /* a quoted metric name (newer PromQL) */
            char v[200];
            p = yt_skip_quoted(p, v, sizeof v);
            snprintf(s->name, sizeof s->name, "%s", v);
            continue;
        }
        const char *l0 = p;
        while (ident_char((unsigned char)*p))
            p++;
        size_t ll = (size_t)(p - l0);
        if (ll == 0) { /* something unexpected: give up on this block */
            const char *e = strchr(p, '}');
            return e ? e + 1 : p + strlen(p);
        }
        char label[64];
        snprintf(label, sizeof label, "%.*s", (int)ll, l0);
        p = yt_skip_space(p);
        char op[3] = "";
        if ((p[0] == '!' || p[0] == '=') && (p[1] == '=' || p[1] == '~')) {
            snprintf(op, sizeof op, "%.2s", p);
            p += 2;
        } else if (p[0] == '=') {
            snprintf(op, sizeof op, "=");
            p++;
        }
        p = yt_skip_space(p);
        char value[200] = "";
        if (is_quote(*p))
            p = yt_skip_quoted(p, value, sizeof value);
        if (strcmp(label, "__name__") == 0) {
            if (strcmp(op, "=") == 0)
                snprintf(s->name, sizeof s->name, "%s", value);
        } else {
            if (s->nlabels < YT_PROMQL_MAX_LABELS)
                snprintf(s->labels[s->nlabels++], sizeof s->labels[0], "%s", label);
            if (strcmp(label, "job") == 0 && strcmp(op, "=") == 0)
                snprintf(s->job, sizeof s->job, "%s", value);
        }
    }
}

static int is_keyword(const char *w)
{
    static const char *const kw[] = {
        "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
        "unless", "offset", "atan2", "sum", "min", "max", "avg", "group", "stddev", "stdvar",
        "count", "count_values", "bottomk", "topk", "quantile", "limitk", "limit_ratio", NULL};
    for (size_t i = 0; kw[i]; i++)
        if (strcmp(w, kw[i]) == 0)
            return 1;
    return strcasecmp(w, "inf") == 0 || strcasecmp(w, "nan") == 0;
}

static int is_label_list_keyword(const char *w)
{
    return !strcmp(w, "by") || !strcmp(w, "without") || !strcmp(w, "on") ||
           !strcmp(w, "ignoring") || !strcmp(w, "group_left") || !strcmp(w, "group_right");
}

/* p at a digit or a dot: the character after the number (1e-3, 0x1f) or
 * duration (5m, 1h30m). */
static const char *skip_number(const char *p)
{
    const char *t0 = p;
    while (isalnum((unsigned char)*p) || *p == '.' || *p == '_' ||
           ((*p == '+' || *p == '-') && p - t0 >= 2 && (p[-1] == 'e' || p[-1] == 'E') &&
            (isdigit((unsigned char)p[-2]) || p[-2] == '.')))
        p++;
    return p;
}

int yt_promql_selectors(const char *expr, yt_promql_sel_t *out, int max)
{
    int n = 0;
    const char *p = expr;
    while (*p) {
        unsigned char c = (unsigned char)*p;
        if (isspace(c)) {
            p++;
        } else if (c == '#') {
            while (*p && *p != '\n')
                p++;
        } else if (is_quote((char)c)) {
            p = yt_skip_quoted(p, NULL, 0);
        } else if (c == '[') {
            p = yt_skip_group(p, '[', ']');
        } else if (isdigit(c) || (c == '.' && isdigit((unsigned char)p[1]))) {
            p = skip_number(p);
        } else if (c == '{') {
            yt_promql_sel_t s = {0};
            const char *b = p;
            p = parse_matchers(p, &s);
            snprintf(s.text, sizeof s.text, "%.*s", (int)(p - b), b);
            if (n < max)
                out[n++] = s;
        } else if (ident_start(c)) {
            const char *w0 = p;
            while (ident_char((unsigned char)*p))
                p++;
            char word[200];
            snprintf(word, sizeof word, "%.*s", (int)(p - w0), w0);
            const char *nx = yt_skip_space(p);
            if (is_label_list_keyword(word)) { /* sum by (x) (...), sum(...) by (x) */
                if (*nx == '(')
                    p = yt_skip_group(nx, '(', ')');
                continue;
            }
            if (*nx == '(' || is_keyword(word))
                continue; /* a function, an aggregation, an operator */
            yt_promql_sel_t s = {0};
            snprintf(s.name, sizeof s.name, "%s", word);
            if (*nx == '{')
                p = parse_matchers(nx, &s);
            snprintf(s.text, sizeof s.text, "%.*s", (int)(p - w0), w0);
            if (n < max)
                out[n++] = s;
        } else {
            p++;
        }
    }
    return n;
}
