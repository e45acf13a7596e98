/*
 * yt_prom.c - a real Prometheus for tests, its HTTP API, and promtool (see
 * yt_prom.h).
 */
#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "yt_http.h"
#include "yt_prom.h"
#include "yt_promql.h"
#include "yt_str.h"
#include "yt_workers.h"

extern char **environ;

#define YT_PROM_READY_MS 30000
#define YT_PROM_TRIES 4
#define YT_PROM_STOP_MS 10000
#define YT_PROM_RULES_POLL_MS 500
#define YT_PROM_MAX_SELECTORS 32
#define YT_PROMTOOL_MAX_ARGS 8

/* ---- the server ------------------------------------------------------------- */

static int write_config(const char *path, const char *rules, const yt_prom_job_t *jobs,
                        size_t njobs)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f,
            "global:\n"
            "  scrape_interval: 1s\n"
            "  scrape_timeout: 1s\n"
            "  evaluation_interval: 1s\n");
    if (rules)
        fprintf(f, "rule_files:\n  - '%s'\n", rules);
    fprintf(f, "scrape_configs:\n");
    for (size_t i = 0; i < njobs; i++) {
        fprintf(f,
                "  - job_name: %s\n"
                "    static_configs:\n"
                "      - targets: [",
                jobs[i].job);
        for (size_t k = 0; k < jobs[i].nports; k++)
            fprintf(f, "%s'127.0.0.1:%d'", k ? ", " : "", jobs[i].ports[k]);
        fprintf(f, "]\n");
    }
    return fclose(f) == 0 ? 0 : -1;
}

/* Whether <dir>/<name>.log contains text. */
static int log_says(const yt_env_t *env, const char *name, const char *text)
{
    char path[400], line[4096];
    int found = 0;
    snprintf(path, sizeof path, "%s/%s.log", env->dir, name);
    FILE *f = fopen(path, "r");
    while (f && !found && fgets(line, sizeof line, f))
        found = strstr(line, text) != NULL;
    if (f)
        fclose(f);
    return found;
}

int yt_prom_start(yt_prom_t *p, yt_env_t *env, const char *rules, const yt_prom_job_t *jobs,
                  size_t njobs)
{
    char cfg[400], data[400], a_cfg[450], a_data[450], a_listen[80];
    p->env = env;
    p->pid = 0;
    snprintf(cfg, sizeof cfg, "%s/prometheus.yml", env->dir);
    snprintf(data, sizeof data, "%s/prometheus-data", env->dir);
    if (write_config(cfg, rules, jobs, njobs) != 0) {
        fprintf(stderr, "yt_prom: cannot write %s: %s\n", cfg, strerror(errno));
        return -1;
    }
    snprintf(a_cfg, sizeof a_cfg, "--config.file=%s", cfg);
    snprintf(a_data, sizeof a_data, "--storage.tsdb.path=%s", data);
    for (int attempt = 0; attempt < YT_PROM_TRIES; attempt++) {
        p->port = yt_free_port();
        snprintf(a_listen, sizeof a_listen, "--web.listen-address=127.0.0.1:%d", p->port);
        char *argv[] = {"prometheus", a_cfg, a_data, a_listen, "--log.level=warn",
                        "--storage.tsdb.retention.time=1d", NULL};
        p->pid = yt_spawn(env, "prometheus", argv, NULL);
        if (p->pid < 0) {
            p->pid = 0;
            return -1;
        }
        long long deadline = yt_now_ms() + YT_PROM_READY_MS;
        int status = 0, exited = 0;
        while (yt_now_ms() < deadline) {
            if (waitpid(p->pid, &status, WNOHANG) == p->pid) {
                exited = 1;
                break;
            }
            if (yt_http_status(p->port, "/-/ready") == 200)
                return 0;
            yt_nap_ms(100);
        }
        if (!exited) {
            fprintf(stderr, "yt_prom: Prometheus not ready on port %d within %d s\n", p->port,
                    YT_PROM_READY_MS / 1000);
            yt_log_tail(env, "prometheus");
            yt_prom_stop(p);
            return -1;
        }
        p->pid = 0;
        fprintf(stderr, "yt_prom: Prometheus exited during start (%s), port %d\n",
                yt_wait_status_text(status), p->port);
        yt_log_tail(env, "prometheus");
        if (!log_says(env, "prometheus", "address already in use"))
            return -1; /* only a port clash is worth another try */
    }
    return -1;
}

void yt_prom_stop(yt_prom_t *p)
{
    json_decref(p->names);
    p->names = NULL;
    if (p->pid <= 0)
        return;
    if (yt_kill_wait(p->pid, SIGTERM, YT_PROM_STOP_MS) < 0)
        yt_kill_wait(p->pid, SIGKILL, 5000);
    p->pid = 0;
    char pidfile[400];
    snprintf(pidfile, sizeof pidfile, "%s/prometheus.pid", p->env->dir);
    unlink(pidfile);
}

/* ---- the HTTP API ----------------------------------------------------------- */

static void url_encode(yt_str_t *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (isalnum(*c) || *c == '-' || *c == '_' || *c == '.' || *c == '~') {
            yt_str_addn(b, (const char *)c, 1);
        } else {
            char e[3] = {'%', hex[*c >> 4], hex[*c & 15]};
            yt_str_addn(b, e, 3);
        }
    }
}

int yt_prom_api(json_t **out, const yt_prom_t *p, const char *path, const char *form,
                char *why, size_t cap)
{
    static const char *const form_hdr[] = {"Content-Type: application/x-www-form-urlencoded",
                                           NULL};
    yt_http_resp_t r = {0};
    int st = yt_http_request(&r, p->port, form ? "POST" : "GET", path, form ? form_hdr : NULL,
                             form, form ? strlen(form) : 0);
    if (st < 0) {
        snprintf(why, cap, "no answer from Prometheus (%d)", st);
        return -1;
    }
    json_t *doc = json_loadb(r.body, r.body_len, 0, NULL);
    const char *status = json_string_value(json_object_get(doc, "status"));
    int rc = -1;
    if (st == 200 && status && strcmp(status, "success") == 0) {
        *out = json_incref(json_object_get(doc, "data"));
        rc = 0;
    } else if (doc) {
        snprintf(why, cap, "HTTP %d %s: %s", st,
                 json_string_value(json_object_get(doc, "errorType")) ?: "",
                 yt_one_line(json_string_value(json_object_get(doc, "error")), YT_EXCERPT));
    } else {
        snprintf(why, cap, "HTTP %d: %s", st, yt_http_body_excerpt(&r));
    }
    json_decref(doc);
    yt_http_resp_free(&r);
    return rc;
}

int yt_prom_query(json_t **out, const yt_prom_t *p, const char *expr, char *why, size_t cap)
{
    yt_str_t form = {0};
    json_t *d = NULL;
    yt_str_add(&form, "query=");
    url_encode(&form, expr);
    int rc = yt_prom_api(&d, p, "/api/v1/query", form.s, why, cap);
    yt_str_free(&form);
    if (rc < 0)
        return -1;
    json_t *res = json_object_get(d, "result");
    const char *type = json_string_value(json_object_get(d, "resultType")) ?: "";
    int n = strcmp(type, "matrix") && strcmp(type, "vector") ? res != NULL
                                                              : (int)json_array_size(res);
    if (n == 0)
        snprintf(why, cap, "success with an empty result (resultType %s)",
                 json_string_value(json_object_get(d, "resultType")) ?: "?");
    if (out)
        *out = d;
    else
        json_decref(d);
    return n;
}

double yt_prom_value(const yt_prom_t *p, const char *expr)
{
    json_t *d = NULL;
    char why[400];
    if (yt_prom_query(&d, p, expr, why, sizeof why) <= 0) {
        json_decref(d);
        return -1;
    }
    json_t *res = json_object_get(d, "result");
    const char *type = json_string_value(json_object_get(d, "resultType")) ?: "";
    json_t *sample = strcmp(type, "scalar") == 0
                         ? res
                         : json_object_get(json_array_get(res, 0), "value"); /* [t, "v"] */
    const char *s = json_string_value(json_array_get(sample, 1));
    double x = s ? strtod(s, NULL) : -1;
    json_decref(d);
    return x;
}

json_t *yt_prom_label_values(const yt_prom_t *p, const char *label, const char *match)
{
    yt_str_t path = {0};
    json_t *d = NULL;
    char why[400];
    yt_str_addf(&path, "/api/v1/label/%s/values", label);
    if (match) {
        yt_str_add(&path, "?match[]=");
        url_encode(&path, match);
    }
    int rc = yt_prom_api(&d, p, path.s, NULL, why, sizeof why);
    yt_str_free(&path);
    if (rc < 0) {
        fprintf(stderr, "yt_prom: label values of %s: %s\n", label, why);
        return NULL;
    }
    if (!json_is_array(d)) {
        json_decref(d);
        return NULL;
    }
    return d;
}

void yt_prom_label_names(const yt_prom_t *p, const char *metric, char *out, size_t cap)
{
    yt_str_t path = {0};
    json_t *d = NULL;
    char why[400];
    yt_str_add(&path, "/api/v1/series?match[]=");
    url_encode(&path, metric);
    snprintf(out, cap, ",");
    if (yt_prom_api(&d, p, path.s, NULL, why, sizeof why) == 0) {
        size_t i;
        json_t *series, *v;
        const char *k;
        json_array_foreach(d, i, series)
            json_object_foreach(series, k, v)
                yt_cset_add(out, cap, k);
    }
    json_decref(d);
    yt_str_free(&path);
}

void yt_prom_result_labels(const yt_prom_t *p, const char *expr, const char *label, char *out,
                           size_t cap)
{
    json_t *d = NULL;
    char why[400];
    snprintf(out, cap, ",");
    if (yt_prom_query(&d, p, expr, why, sizeof why) > 0) {
        size_t i;
        json_t *s;
        json_array_foreach(json_object_get(d, "result"), i, s)
            yt_cset_add(out, cap,
                        json_string_value(json_object_get(json_object_get(s, "metric"), label))
                            ?: "");
    }
    json_decref(d);
}

int yt_prom_refresh_names(yt_prom_t *p)
{
    json_t *names = yt_prom_label_values(p, "__name__", NULL);
    if (!names)
        return -1;
    json_decref(p->names);
    p->names = names;
    return 0;
}

int yt_prom_knows(const yt_prom_t *p, const char *name)
{
    size_t i;
    json_t *v;
    json_array_foreach(p->names, i, v)
        if (strcmp(json_string_value(v) ?: "", name) == 0)
            return 1;
    return 0;
}

/* Appends sep (unless out is empty), item and tail to out (cap bytes).
 * Returns 0, or -1 when they did not fit (out then holds what did). */
static int list_add(char *out, size_t cap, const char *sep, const char *item, const char *tail)
{
    size_t o = strlen(out);
    int w = snprintf(out + o, cap - o, "%s%s%s", o ? sep : "", item, tail);
    return w < 0 || (size_t)w >= cap - o ? -1 : 0;
}

void yt_prom_unknown_names(const yt_prom_t *p, const char *expr, char *out, size_t cap)
{
    yt_promql_sel_t sel[YT_PROM_MAX_SELECTORS];
    int n = yt_promql_selectors(expr, sel, YT_PROM_MAX_SELECTORS);
    out[0] = '\0';
    for (int i = 0; i < n; i++)
        if (sel[i].name[0] && !yt_prom_knows(p, sel[i].name) && !strstr(out, sel[i].name) &&
            list_add(out, cap, ", ", sel[i].name, "") != 0)
            break;
}

void yt_prom_empty_selectors(const yt_prom_t *p, const char *expr, char *out, size_t cap)
{
    yt_promql_sel_t sel[YT_PROM_MAX_SELECTORS];
    int n = yt_promql_selectors(expr, sel, YT_PROM_MAX_SELECTORS);
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        char why[400], have[1024], bad[300] = "";
        if (!sel[i].text[0] || strstr(out, sel[i].text) ||
            yt_prom_query(NULL, p, sel[i].text, why, sizeof why) != 0)
            continue;
        if (sel[i].name[0]) {
            yt_prom_label_names(p, sel[i].name, have, sizeof have);
            for (int k = 0; k < sel[i].nlabels; k++) {
                const char *label = sel[i].labels[k];
                if (!yt_cset_has(have, label, strlen(label)) &&
                    strlen(bad) + strlen(label) + 26 < sizeof bad)
                    snprintf(bad + strlen(bad), sizeof bad - strlen(bad), "%s%s",
                             bad[0] ? ", " : " (no such label: ", label);
            }
            if (bad[0])
                strcat(bad, ")");
        }
        if (list_add(out, cap, "; ", yt_one_line(sel[i].text, 160), bad) != 0)
            break;
    }
}

int yt_prom_rules(json_t **out, int *total, const yt_prom_t *p, int wait_ms, char *why,
                  size_t cap)
{
    long long deadline = yt_now_ms() + wait_ms;
    for (;;) {
        json_t *d = NULL;
        if (yt_prom_api(&d, p, "/api/v1/rules", NULL, why, cap) != 0)
            return -1;
        int unknown = 0, n = 0;
        size_t i, j;
        json_t *group, *rule;
        json_array_foreach(json_object_get(d, "groups"), i, group)
            json_array_foreach(json_object_get(group, "rules"), j, rule) {
                n++;
                unknown += strcmp(json_string_value(json_object_get(rule, "health")) ?: "",
                                  "unknown") == 0;
            }
        if (unknown == 0 || yt_now_ms() >= deadline) {
            *out = d;
            *total = n;
            return 0;
        }
        json_decref(d);
        yt_nap_ms(YT_PROM_RULES_POLL_MS);
    }
}

/* ---- promtool --------------------------------------------------------------- */

/* Runs argv (argv[0] looked up on PATH) to completion with stdout and stderr
 * into out (NUL-terminated, cut at cap). Returns as yt_promtool does. */
static int run_capture(char *const argv[], char *out, size_t cap)
{
    int fds[2];
    pid_t pid;
    posix_spawn_file_actions_t fa;
    size_t len = 0;

    out[0] = '\0';
    if (pipe(fds) != 0) {
        snprintf(out, cap, "cannot run %s: pipe: %s", argv[0], strerror(errno));
        return -1;
    }
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&fa, fds[1], STDERR_FILENO);
    posix_spawn_file_actions_addclose(&fa, fds[1]);
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (rc != 0) {
        close(fds[0]);
        snprintf(out, cap, "cannot run %s: %s", argv[0], strerror(rc));
        return 127;
    }
    for (;;) {
        char chunk[4096];
        ssize_t n = read(fds[0], chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        size_t take = (size_t)n < cap - 1 - len ? (size_t)n : cap - 1 - len;
        memcpy(out + len, chunk, take);
        len += take;
    }
    out[len] = '\0';
    close(fds[0]);
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int yt_promtool(char *out, size_t cap, const char *const args[])
{
    const char *tool = getenv("YARD_PROMTOOL");
    char *argv[YT_PROMTOOL_MAX_ARGS + 2];
    int n = 0;
    argv[n++] = (char *)(tool && *tool ? tool : "promtool");
    for (int i = 0; args[i] && i < YT_PROMTOOL_MAX_ARGS; i++)
        argv[n++] = (char *)args[i];
    argv[n] = NULL;
    return run_capture(argv, out, cap);
}
