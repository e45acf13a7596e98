/*
 * exec_config.c - reads the exec mappings file (format in exec_config.h).
 *
 * Every key is described once in key_table; a problem is logged once, as
 * "exec config <file>:<line>: <what>", and loading stops there, so a worker
 * with a broken mapping refuses to start instead of failing jobs later.
 */
#include <ctype.h>
#include <errno.h>
#include <pwd.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "err.h"
#include "exec_config.h"
#include "log.h"

#define FILE_MAX (1024 * 1024)

typedef enum { KEY_INT, KEY_PATH, KEY_ARGS, KEY_ENV, KEY_DIR, KEY_USER } key_kind_t;

typedef struct {
    const char *name;
    key_kind_t kind;
    size_t off;          /* KEY_INT: offset of the int64_t in wk_exec_entry_t */
    int64_t def, min, max;
} key_def_t;

#define INT_KEY(n, d, lo, hi) {#n, KEY_INT, offsetof(wk_exec_entry_t, n), d, lo, hi}
static const key_def_t key_table[] = {
    {"path", KEY_PATH, 0, 0, 0, 0},
    {"args", KEY_ARGS, 0, 0, 0, 0},
    {"env", KEY_ENV, 0, 0, 0, 0},
    {"dir", KEY_DIR, 0, 0, 0, 0},
    INT_KEY(timeout_s, 0, 0, 86400),
    INT_KEY(cpu_s, 300, 0, 86400),
    INT_KEY(memory_mb, 1024, 0, 1048576),
    INT_KEY(max_file_mb, 64, 0, 1048576),
    INT_KEY(max_open_files, 64, 8, 65536),
    INT_KEY(max_output_kb, 1024, 1, 65536),
    INT_KEY(term_grace_ms, 2000, 0, 60000),
    INT_KEY(max_processes, 64, 0, 65536),
    {"user", KEY_USER, 0, 0, 0, 0},
};
#define N_KEYS (sizeof key_table / sizeof key_table[0])

/* Parser state: where we are, for messages, and the section being read. */
typedef struct {
    const char *name;
    int line;
    wk_exec_config_t *cfg;
    wk_exec_entry_t *cur;   /* the open section, or NULL */
    unsigned seen;          /* bit i: key_table[i] given in the open section */
    char *args;             /* the open section's args text, until it closes */
} parse_t;

/* Logs one problem at the current line and returns YARD_ECONFIG. */
__attribute__((format(printf, 2, 3))) static int parse_error(const parse_t *p, const char *fmt,
                                                             ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    YARD_LOG_ERROR(NULL, "exec config %s:%d: %s", p->name, p->line, msg);
    return YARD_ECONFIG;
}

/* Frees a NULL-terminated array of strings. */
static void free_strv(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

/* Appends a copy of s[0..n) to the NULL-terminated *v holding *len strings. */
static int strv_push(char ***v, size_t *len, const char *s, size_t n)
{
    char **nv = realloc(*v, (*len + 2) * sizeof *nv);
    if (!nv)
        return YARD_ENOMEM;
    *v = nv;
    nv[*len] = strndup(s, n);
    if (!nv[*len]) {
        nv[*len] = NULL;
        return YARD_ENOMEM;
    }
    nv[++*len] = NULL;
    return 0;
}

static void entry_free(wk_exec_entry_t *e)
{
    free(e->type);
    free(e->path);
    free_strv(e->argv);
    free_strv(e->envp);
    free(e->dir);
}

void wk_exec_config_destroy(wk_exec_config_t *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++)
        entry_free(&c->entries[i]);
    free(c->entries);
    free(c);
}

static int env_name_valid(const char *s, size_t n)
{
    if (n == 0 || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_'))
            return 0;
    return 1;
}

/* Parses `env = A, B=value`: names read from the environment now, or fixed. */
static int parse_env(parse_t *p, wk_exec_entry_t *e, char *value)
{
    for (char *save = NULL, *item = strtok_r(value, ",", &save); item;
         item = strtok_r(NULL, ",", &save)) {
        item = yard_config_trim(item);
        if (*item == '\0')
            continue;
        char *eq = strchr(item, '=');
        size_t name_len = eq ? (size_t)(eq - item) : strlen(item);
        while (name_len > 0 && (item[name_len - 1] == ' ' || item[name_len - 1] == '\t'))
            name_len--;
        if (!env_name_valid(item, name_len))
            return parse_error(p, "env: '%s' is not a variable name or NAME=value", item);
        if (strncmp(item, "YARD_JOB_", 9) == 0)
            return parse_error(p, "env: YARD_JOB_* variables are set by the worker");
        for (size_t i = 0; i < e->envc; i++)
            if (strncmp(e->envp[i], item, name_len) == 0 && e->envp[i][name_len] == '=')
                return parse_error(p, "env: %.*s is given twice", (int)name_len, item);
        char buf[4096];
        if (eq) {
            snprintf(buf, sizeof buf, "%.*s=%s", (int)name_len, item, yard_config_trim(eq + 1));
        } else {
            const char *v = getenv(item);
            if (!v)
                continue; /* unset in the worker: unset in the program too */
            if (snprintf(buf, sizeof buf, "%s=%s", item, v) >= (int)sizeof buf)
                return parse_error(p, "env: the value of %s is too long", item);
        }
        if (strv_push(&e->envp, &e->envc, buf, strlen(buf)) < 0)
            return YARD_ENOMEM;
    }
    return 0;
}

static int parse_int(parse_t *p, const key_def_t *k, wk_exec_entry_t *e, const char *value)
{
    char *end;
    errno = 0;
    long long v = strtoll(value, &end, 10);
    if (errno || end == value || *end != '\0')
        return parse_error(p, "%s: '%s' is not a whole number", k->name, value);
    if (v < k->min || v > k->max)
        return parse_error(p, "%s: %lld is out of range [%lld, %lld]", k->name, v,
                           (long long)k->min, (long long)k->max);
    *(int64_t *)((char *)e + k->off) = v;
    return 0;
}

/* Checks that value is an absolute path to a file (want_dir 0) that we may
 * execute, or to a directory (want_dir 1). */
static int check_path(parse_t *p, const char *key, const char *value, int want_dir)
{
    struct stat st;
    if (value[0] != '/')
        return parse_error(p, "%s: '%s' is not an absolute path", key, value);
    if (stat(value, &st) < 0)
        return parse_error(p, "%s: %s: %s", key, value, strerror(errno));
    if (want_dir && !S_ISDIR(st.st_mode))
        return parse_error(p, "%s: %s is not a directory", key, value);
    if (!want_dir && (!S_ISREG(st.st_mode) || access(value, X_OK) < 0))
        return parse_error(p, "%s: %s is not an executable file", key, value);
    return 0;
}

/* Resolves the user the program runs as (a name or a number) now, so a
 * typo stops the worker at start. Only root may switch users. */
static int parse_user(parse_t *p, wk_exec_entry_t *e, const char *value)
{
    struct passwd pw, *found = NULL;
    char buf[4096];
    char *end;
    errno = 0;
    long long id = strtoll(value, &end, 10);
    if (!errno && end != value && *end == '\0' && id >= 0)
        getpwuid_r((uid_t)id, &pw, buf, sizeof buf, &found);
    else
        getpwnam_r(value, &pw, buf, sizeof buf, &found);
    if (!found)
        return parse_error(p, "user: no such user '%s'", value);
    if (geteuid() != 0 && found->pw_uid != geteuid())
        return parse_error(p, "user: only a worker running as root can run programs as '%s'",
                           value);
    e->uid = (int64_t)found->pw_uid;
    e->gid = (int64_t)found->pw_gid;
    return 0;
}

static int parse_key(parse_t *p, char *key, char *value)
{
    size_t i;
    for (i = 0; i < N_KEYS && strcmp(key_table[i].name, key) != 0; i++)
        ;
    if (i == N_KEYS) {
        char known[256];
        size_t len = 0;
        for (size_t k = 0; k < N_KEYS; k++)
            len += (size_t)snprintf(known + len, sizeof known - len, "%s%s", k ? ", " : "",
                                    key_table[k].name);
        return parse_error(p, "unknown key '%s' (known: %s)", key, known);
    }
    if (!p->cur)
        return parse_error(p, "'%s' outside a [type] section", key);
    if (p->seen & (1u << i))
        return parse_error(p, "%s is given twice in [%s]", key, p->cur->type);
    p->seen |= 1u << i;

    const key_def_t *k = &key_table[i];
    wk_exec_entry_t *e = p->cur;
    int rc;
    switch (k->kind) {
    case KEY_INT:
        return parse_int(p, k, e, value);
    case KEY_ENV:
        return parse_env(p, e, value);
    case KEY_ARGS:
        p->args = strdup(value);
        return p->args ? 0 : YARD_ENOMEM;
    case KEY_USER:
        return parse_user(p, e, value);
    case KEY_PATH:
    case KEY_DIR:
        rc = check_path(p, k->name, value, k->kind == KEY_DIR);
        if (rc < 0)
            return rc;
        char **dst = k->kind == KEY_DIR ? &e->dir : &e->path;
        *dst = strdup(value);
        return *dst ? 0 : YARD_ENOMEM;
    }
    return YARD_EINVAL;
}

/* Completes the open section: path given, argv built, defaults filled. */
static int close_section(parse_t *p)
{
    wk_exec_entry_t *e = p->cur;
    size_t argc = 0;
    char *save = NULL;
    int rc = 0;
    if (!e)
        return 0;
    if (!e->path) {
        int line = p->line;
        p->line = e->line;
        rc = parse_error(p, "[%s] has no path", e->type);
        p->line = line;
        goto done;
    }
    if ((rc = strv_push(&e->argv, &argc, e->path, strlen(e->path))) < 0)
        goto done;
    for (char *a = p->args ? strtok_r(p->args, " \t", &save) : NULL; a;
         a = strtok_r(NULL, " \t", &save))
        if ((rc = strv_push(&e->argv, &argc, a, strlen(a))) < 0)
            goto done;
    if (!e->envp && (e->envp = calloc(1, sizeof *e->envp)) == NULL) {
        rc = YARD_ENOMEM;
        goto done;
    }
    if (!e->dir && (e->dir = strdup("/")) == NULL)
        rc = YARD_ENOMEM;
done:
    free(p->args);
    p->args = NULL;
    p->cur = NULL;
    return rc;
}

static int open_section(parse_t *p, char *line)
{
    size_t n = strlen(line);
    if (line[n - 1] != ']')
        return parse_error(p, "a section header must be [type]");
    line[n - 1] = '\0';
    char *type = yard_config_trim(line + 1);
    if (!wk_type_valid(type))
        return parse_error(p, "'%s' is not a valid job type (1-64 of A-Z a-z 0-9 . _ : -)",
                           type);
    for (size_t i = 0; i < p->cfg->n; i++)
        if (strcmp(p->cfg->entries[i].type, type) == 0)
            return parse_error(p, "[%s] is already defined at line %d", type,
                               p->cfg->entries[i].line);
    wk_exec_entry_t *arr = realloc(p->cfg->entries, (p->cfg->n + 1) * sizeof *arr);
    if (!arr)
        return YARD_ENOMEM;
    p->cfg->entries = arr;
    wk_exec_entry_t *e = &arr[p->cfg->n++];
    memset(e, 0, sizeof *e);
    e->line = p->line;
    e->uid = e->gid = -1;
    for (size_t i = 0; i < N_KEYS; i++)
        if (key_table[i].kind == KEY_INT)
            *(int64_t *)((char *)e + key_table[i].off) = key_table[i].def;
    p->cur = e;
    p->seen = 0;
    e->type = strdup(type);
    return e->type ? 0 : YARD_ENOMEM;
}

static int parse_line(parse_t *p, char *line)
{
    line = yard_config_trim(line);
    if (*line == '\0' || *line == '#' || *line == ';')
        return 0;
    if (*line == '[') {
        int rc = close_section(p);
        return rc < 0 ? rc : open_section(p, line);
    }
    char *eq = strchr(line, '=');
    if (!eq)
        return parse_error(p, "expected `key = value` or [type], got '%s'", line);
    *eq = '\0';
    return parse_key(p, yard_config_trim(line), yard_config_trim(eq + 1));
}

int wk_exec_config_parse(wk_exec_config_t **out, const char *text, const char *name)
{
    parse_t p = {.name = name, .line = 0};
    char *copy = strdup(text);
    int rc = YARD_ENOMEM;
    p.cfg = calloc(1, sizeof *p.cfg);
    if (!copy || !p.cfg)
        goto done;
    rc = 0;
    for (char *line = copy, *next; line && rc == 0; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        p.line++;
        rc = parse_line(&p, line);
    }
    if (rc == 0)
        rc = close_section(&p);
done:
    free(p.args);
    free(copy);
    if (rc < 0) {
        wk_exec_config_destroy(p.cfg);
        return rc;
    }
    *out = p.cfg;
    return 0;
}

int wk_exec_config_load(wk_exec_config_t **out, const char *path)
{
    char *text = NULL;
    int rc = YARD_EIO;
    FILE *f = fopen(path, "r");
    if (!f) {
        YARD_LOG_ERROR(NULL, "exec config %s: %s", path, strerror(errno));
        goto done;
    }
    text = malloc(FILE_MAX + 1);
    if (!text) {
        rc = YARD_ENOMEM;
        goto done;
    }
    size_t n = fread(text, 1, FILE_MAX + 1, f);
    if (ferror(f) || n > FILE_MAX) {
        YARD_LOG_ERROR(NULL, "exec config %s: %s", path,
                       ferror(f) ? "read error" : "larger than 1 MiB");
        goto done;
    }
    text[n] = '\0';
    rc = wk_exec_config_parse(out, text, path);
done:
    free(text);
    if (f)
        fclose(f);
    return rc;
}
