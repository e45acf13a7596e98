/*
 * test_prometheus.c - issue 11: the metrics, the Grafana dashboards and the
 * alert rules against a real Prometheus scraping a real cluster.
 *
 * Setup starts nats-server, PostgreSQL, the gateway (with API keys on, so
 * authentication failures can be counted), the execute, schedule and audit
 * workers, and a real Prometheus on a free loopback port (its config written
 * here: scrape and evaluation interval 1 s, jobs `yard-gateway` and
 * `yard-worker`, rule file alerts/switchyard.rules.yml when promtool accepts
 * it; pid in <dir>/prometheus.pid, log in <dir>/prometheus.log). Then, in
 * order:
 *   1. Prometheus scrapes the gateway and the three workers (up == 1).
 *   2. A mix of jobs flows for MIX_SECONDS and keeps flowing (slower parts
 *      included) until the end: noop, echo, batches, `fail` retryable (small
 *      YARD_RETRY_BASE_MS: retries, then dead), `fail` for good, an unknown
 *      type (dead at once), run_at jobs, idempotent duplicates, timeouts,
 *      cancels of running jobs, bad bodies (400), bad keys (401) and reads.
 *      The jobs reach the states the mix asks for in PostgreSQL.
 *   3. Every Prometheus target (`expr`) of every panel of every dashboard in
 *      grafana/dashboards/<name>.json, template variables substituted, answers
 *      a non-empty instant query.
 *   4. Every PostgreSQL target (`rawSql`), Grafana macros and variables
 *      substituted, runs against the real schema and returns rows.
 *   5. Every rule of alerts/switchyard.rules.yml loads and evaluates with
 *      health "ok" and no error, and every metric its expression names is
 *      known to Prometheus (label names of its matchers too; a job matcher
 *      names one of the two scrape jobs).
 *   6. Every metric of the metrics contract (issue 11) is known to
 *      Prometheus, on every process that must export it, with its labels.
 * Each check lists every failure (two lines each), not just the first.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ctype.h>
#include <errno.h>
#include <glob.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "log.h"
#include "yt_http.h"
#include "yt_workers.h"

#define MIX_SECONDS 15
#define MIX_TICK_MS 100
#define RULES_FILE "alerts/switchyard.rules.yml"
#define DASHBOARDS_GLOB "grafana/dashboards/*.json"
#define MAX_LISTED 60      /* failures printed per check; the rest are counted */
#define EXCERPT 220        /* characters of an expression or answer in a message */
#define RULE_EVAL_WAIT_MS 75000

/* ---- small strings ------------------------------------------------------------ */

typedef struct {
    char *s;
    size_t len, cap;
} sbuf_t;

static void sb_addn(sbuf_t *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p)
            abort();
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void sb_add(sbuf_t *b, const char *s)
{
    sb_addn(b, s, strlen(s));
}

static void sb_addf(sbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_addf(sbuf_t *b, const char *fmt, ...)
{
    char tmp[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        sb_addn(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* s (NULL: "") on one line, cut to max characters, in a static ring of
 * buffers (a few per message). */
static const char *one_line(const char *s, size_t max)
{
    static char ring[6][EXCERPT * 2 + 8];
    static int next;
    char *out = ring[next++ % 6];
    size_t o = 0, cap = sizeof ring[0] - 4;
    if (max > cap)
        max = cap;
    int space = 0;
    for (const char *p = s ? s : ""; *p && o < max; p++) {
        unsigned char c = (unsigned char)*p;
        if (isspace(c)) {
            space = o > 0;
            continue;
        }
        if (space && o < max)
            out[o++] = ' ';
        space = 0;
        if (o < max)
            out[o++] = c < 0x20 ? '.' : (char)c;
    }
    out[o] = '\0';
    if (s && strlen(s) > max)
        strcpy(out + o, "...");
    return out;
}

/* The failures of one check: each entry a line or two. */
typedef struct {
    sbuf_t text;
    int n, listed;
} report_t;

static void report_add(report_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report_add(report_t *r, const char *fmt, ...)
{
    r->n++;
    if (r->listed >= MAX_LISTED)
        return;
    r->listed++;
    char tmp[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    sb_add(&r->text, "  ");
    sb_add(&r->text, tmp);
    sb_add(&r->text, "\n");
}

/* Prints the failures; returns how many there were (and frees them). */
static int report_print(report_t *r, const char *what)
{
    int n = r->n;
    if (n) {
        fprintf(stderr, "%s: %d failure%s:\n%s", what, n, n == 1 ? "" : "s",
                r->text.s ? r->text.s : "");
        if (n > r->listed)
            fprintf(stderr, "  ... and %d more\n", n - r->listed);
    }
    free(r->text.s);
    memset(r, 0, sizeof *r);
    return n;
}

/* ---- the cluster and Prometheus --------------------------------------------- */

enum {
    K_NOOP, K_ECHO, K_BATCH, K_RETRY, K_FAIL, K_UNKNOWN, K_SCHED, K_DUP, K_TIMEOUT, K_CANCEL,
    K_BADAUTH, K_BADBODY, K_READ, K_COUNT
};
static const char *const kind_name[K_COUNT] = {
    "noop", "echo", "batch", "fail retryable", "fail", "unknown type", "run_at", "duplicate",
    "timeout", "cancel", "bad key", "bad body", "read"};

static struct {
    yt_cluster_t c;
    char key[512];     /* an API key with every scope */
    char auth[560];    /* "Authorization: Bearer <key>" */
    pid_t prom;
    int prom_port;
    char rules_path[600];
    int rules_loaded;  /* the rule file is in Prometheus's config */
    char rules_why[1500]; /* why it is not */
    /* the job mix */
    pthread_t mix;
    int mix_running;
    atomic_int mix_stop;
    long long mix_t0;
    atomic_long ok[K_COUNT], bad[K_COUNT];
    pthread_mutex_t lock;
    char last_bad[K_COUNT][200];
    json_t *names; /* the __name__ values Prometheus knows (after the mix) */
} g = {.lock = PTHREAD_MUTEX_INITIALIZER};

static const char *const gw_extra_env[] = {
    "YARD_AUTH_DISABLED=false", "YARD_AUTH_REFRESH_S=1", "YARD_RETRY_BASE_MS=100",
    "YARD_RETRY_CAP_MS=400", NULL};
static const char *const worker_env[] = {"YARD_RETRY_BASE_MS=100", "YARD_RETRY_CAP_MS=400",
                                         NULL};

static void url_encode(sbuf_t *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (isalnum(*p) || *p == '-' || *p == '_' || *p == '.' || *p == '~') {
            sb_addn(b, (const char *)p, 1);
        } else {
            char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            sb_addn(b, e, 3);
        }
    }
}

/* One call of Prometheus's HTTP API: GET path (with its query string) when
 * form is NULL, else POST form (urlencoded). On an answer with status
 * "success" returns 0 and sets *data (the "data" member, a new reference).
 * Otherwise returns -1 with the answer (HTTP status, errorType, error) in
 * why. */
static int prom_api(json_t **data, const char *path, const char *form, char *why, size_t cap)
{
    static const char *const form_hdr[] = {"Content-Type: application/x-www-form-urlencoded",
                                           NULL};
    yt_http_resp_t r = {0};
    *data = NULL;
    int st = yt_http_request(&r, g.prom_port, form ? "POST" : "GET", path, form ? form_hdr : NULL,
                             form, form ? strlen(form) : 0);
    if (st < 0) {
        snprintf(why, cap, "no answer from Prometheus (%d)", st);
        return -1;
    }
    json_t *doc = json_loadb(r.body, r.body_len, 0, NULL);
    const char *status = json_string_value(json_object_get(doc, "status"));
    if (st == 200 && status && strcmp(status, "success") == 0) {
        *data = json_incref(json_object_get(doc, "data"));
        json_decref(doc);
        yt_http_resp_free(&r);
        return 0;
    }
    if (doc)
        snprintf(why, cap, "HTTP %d %s: %s", st,
                 json_string_value(json_object_get(doc, "errorType")) ?: "",
                 one_line(json_string_value(json_object_get(doc, "error")), EXCERPT));
    else
        snprintf(why, cap, "HTTP %d: %s", st, yt_http_body_excerpt(&r));
    json_decref(doc);
    yt_http_resp_free(&r);
    return -1;
}

/* An instant query at the current time. Returns the number of results (a
 * scalar or string counts as one; 0 with the answer in why) and sets *data
 * (may be NULL; the caller frees it, even for 0) to the data member, or
 * returns -1 with the answer in why (*data NULL). */
static int prom_query(json_t **data, const char *expr, char *why, size_t cap)
{
    sbuf_t form = {0};
    json_t *d = NULL;
    sb_add(&form, "query=");
    url_encode(&form, expr);
    int rc = prom_api(&d, "/api/v1/query", form.s, why, cap);
    free(form.s);
    if (rc < 0)
        return -1;
    json_t *res = json_object_get(d, "result");
    const char *type = json_string_value(json_object_get(d, "resultType")) ?: "";
    int n = strcmp(type, "matrix") && strcmp(type, "vector") ? res != NULL
                                                              : (int)json_array_size(res);
    if (n == 0)
        snprintf(why, cap, "success with an empty result (resultType %s)",
                 json_string_value(json_object_get(d, "resultType")) ?: "?");
    if (data)
        *data = d;
    else
        json_decref(d);
    return n;
}

/* The value of the first sample of an instant query as a double, or -1. */
static double prom_value(const char *expr)
{
    json_t *d = NULL;
    char why[400];
    if (prom_query(&d, expr, why, sizeof why) <= 0) {
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

/* The values of label (names when label is "__name__") Prometheus knows,
 * among the series matching match (may be NULL). A new array, or NULL. */
static json_t *prom_label_values(const char *label, const char *match)
{
    sbuf_t path = {0};
    json_t *d = NULL;
    char why[400];
    sb_addf(&path, "/api/v1/label/%s/values", label);
    if (match) {
        sb_add(&path, "?match[]=");
        url_encode(&path, match);
    }
    int rc = prom_api(&d, path.s, NULL, why, sizeof why);
    free(path.s);
    if (rc < 0) {
        fprintf(stderr, "test_prometheus: label values of %s: %s\n", label, why);
        return NULL;
    }
    if (!json_is_array(d)) {
        json_decref(d);
        return NULL;
    }
    return d;
}

static int known_name(const char *name)
{
    size_t i;
    json_t *v;
    json_array_foreach(g.names, i, v)
        if (strcmp(json_string_value(v) ?: "", name) == 0)
            return 1;
    return 0;
}

/* Fetches what Prometheus knows now into g.names. */
static int refresh_names(void)
{
    json_t *names = prom_label_values("__name__", NULL);
    if (!names)
        return -1;
    json_decref(g.names);
    g.names = names;
    return 0;
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Runs promtool check rules on path: 0 when it accepts it, else -1 with the
 * first lines of what it said in why. */
static int promtool_check(const char *path, char *why, size_t cap)
{
    char cmd[800];
    snprintf(cmd, sizeof cmd, "promtool check rules '%s' 2>&1", path);
    FILE *p = popen(cmd, "r");
    if (!p) {
        snprintf(why, cap, "cannot run promtool: %s", strerror(errno));
        return -1;
    }
    size_t n = fread(why, 1, cap - 1, p);
    why[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static int write_prom_config(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f,
            "global:\n"
            "  scrape_interval: 1s\n"
            "  scrape_timeout: 1s\n"
            "  evaluation_interval: 1s\n");
    if (g.rules_loaded)
        fprintf(f, "rule_files:\n  - '%s'\n", g.rules_path);
    fprintf(f,
            "scrape_configs:\n"
            "  - job_name: yard-gateway\n"
            "    static_configs:\n"
            "      - targets: ['127.0.0.1:%d']\n"
            "  - job_name: yard-worker\n"
            "    static_configs:\n"
            "      - targets: ['127.0.0.1:%d', '127.0.0.1:%d', '127.0.0.1:%d']\n",
            g.c.port, g.c.exec.metrics_port, g.c.sched.metrics_port, g.c.audit.metrics_port);
    return fclose(f) == 0 ? 0 : -1;
}

static void prom_stop(void)
{
    if (g.prom <= 0)
        return;
    if (yt_kill_wait(g.prom, SIGTERM, 10000) < 0)
        yt_kill_wait(g.prom, SIGKILL, 5000);
    g.prom = 0;
    char pidfile[400];
    snprintf(pidfile, sizeof pidfile, "%s/prometheus.pid", g.c.env->dir);
    unlink(pidfile);
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

/* Starts Prometheus (retrying on another port if it exits during start
 * because its port was taken) and waits until /-/ready answers 200. */
static int prom_start(void)
{
    yt_env_t *env = g.c.env;
    char cfg[400], data[400], a_cfg[450], a_data[450], a_listen[80];
    snprintf(cfg, sizeof cfg, "%s/prometheus.yml", env->dir);
    snprintf(data, sizeof data, "%s/prometheus-data", env->dir);
    snprintf(g.rules_path, sizeof g.rules_path, "%s/%s", yt_src_dir(), RULES_FILE);
    if (!file_exists(g.rules_path))
        snprintf(g.rules_why, sizeof g.rules_why, "%s does not exist", RULES_FILE);
    else if (promtool_check(g.rules_path, g.rules_why, sizeof g.rules_why) == 0)
        g.rules_loaded = 1;
    if (write_prom_config(cfg) != 0) {
        fprintf(stderr, "test_prometheus: cannot write %s: %s\n", cfg, strerror(errno));
        return -1;
    }
    snprintf(a_cfg, sizeof a_cfg, "--config.file=%s", cfg);
    snprintf(a_data, sizeof a_data, "--storage.tsdb.path=%s", data);
    for (int attempt = 0; attempt < 4; attempt++) {
        g.prom_port = yt_free_port();
        snprintf(a_listen, sizeof a_listen, "--web.listen-address=127.0.0.1:%d", g.prom_port);
        char *argv[] = {"prometheus", a_cfg, a_data, a_listen, "--log.level=warn",
                        "--storage.tsdb.retention.time=1d", NULL};
        g.prom = yt_spawn(env, "prometheus", argv, NULL);
        if (g.prom < 0)
            return -1;
        long long deadline = yt_now_ms() + 30000;
        int status = 0, exited = 0;
        while (yt_now_ms() < deadline) {
            if (waitpid(g.prom, &status, WNOHANG) == g.prom) {
                exited = 1;
                break;
            }
            if (yt_http_status(g.prom_port, "/-/ready") == 200)
                return 0;
            yt_nap_ms(100);
        }
        if (!exited) {
            fprintf(stderr, "test_prometheus: Prometheus not ready on port %d within 30 s\n",
                    g.prom_port);
            yt_log_tail(env, "prometheus");
            prom_stop();
            return -1;
        }
        g.prom = 0;
        fprintf(stderr, "test_prometheus: Prometheus exited during start (%s), port %d\n",
                yt_wait_status_text(status), g.prom_port);
        yt_log_tail(env, "prometheus");
        if (!log_says(env, "prometheus", "address already in use"))
            return -1; /* only a port clash is worth another try */
    }
    return -1;
}

/* ---- the gateway ------------------------------------------------------------ */

/* One request to the gateway with the test's key (or auth, when not NULL),
 * a JSON body (may be NULL) and an optional Idempotency-Key. Copies the
 * answer's "id" into id (may be NULL). Returns the HTTP status or < 0. */
static int gw_call(const char *method, const char *path, const char *body, const char *idem,
                   const char *auth, char id[YT_JOB_ID_MAX])
{
    char idem_hdr[160];
    const char *hdrs[4] = {"Content-Type: application/json", auth ? auth : g.auth, NULL, NULL};
    if (idem) {
        snprintf(idem_hdr, sizeof idem_hdr, "Idempotency-Key: %s", idem);
        hdrs[2] = idem_hdr;
    }
    yt_http_resp_t r = {0};
    int st = yt_http_request(&r, g.c.port, method, path, hdrs, body, body ? strlen(body) : 0);
    if (id) {
        id[0] = '\0';
        json_t *doc = st > 0 ? json_loadb(r.body, r.body_len, 0, NULL) : NULL;
        snprintf(id, YT_JOB_ID_MAX, "%s", json_string_value(json_object_get(doc, "id")) ?: "");
        json_decref(doc);
    }
    yt_http_resp_free(&r);
    return st;
}

/* Creates an API key with every scope and waits until the gateway takes it. */
static int make_key(void)
{
    static const char *const args[] = {"keys", "create", "--name", "prometheus-test",
                                       "--scopes", "submit,read,admin", "--rate", "1000000",
                                       "--burst", "1000000", "--quiet", NULL};
    char out[512], err[2048];
    int st = yt_run_program(g.c.env, "yardctl", args, out, sizeof out, err, sizeof err);
    out[strcspn(out, "\r\n")] = '\0';
    if (st != 0 || !out[0]) {
        fprintf(stderr, "test_prometheus: yardctl keys create: exit %d: %s\n", st,
                one_line(err, 400));
        return -1;
    }
    snprintf(g.key, sizeof g.key, "%s", out);
    snprintf(g.auth, sizeof g.auth, "Authorization: Bearer %s", g.key);
    long long deadline = yt_now_ms() + 15000;
    int last = 0;
    while (yt_now_ms() < deadline) {
        if ((last = gw_call("GET", "/v1/queues", NULL, NULL, NULL, NULL)) == 200)
            return 0;
        yt_nap_ms(100);
    }
    fprintf(stderr, "test_prometheus: the gateway did not take the new key within 15 s "
                    "(GET /v1/queues answers %d)\n", last);
    return -1;
}

/* ---- the job mix ------------------------------------------------------------- */


/* Counts a request of the mix as expected when it got status want (or 202
 * for a cancel, which answers 202 while the job still runs). */
static void mix_count(int kind, int st, int want, const char *what)
{
    if (st == want || (kind == K_CANCEL && st == 202)) {
        atomic_fetch_add(&g.ok[kind], 1);
        return;
    }
    atomic_fetch_add(&g.bad[kind], 1);
    pthread_mutex_lock(&g.lock);
    snprintf(g.last_bad[kind], sizeof g.last_bad[kind], "%s: expected %d, got %d", what, want,
             st);
    pthread_mutex_unlock(&g.lock);
}

static void *mix_main(void *arg)
{
    char id[YT_JOB_ID_MAX], last_id[YT_JOB_ID_MAX] = "", sleeper[YT_JOB_ID_MAX] = "";
    char body[512], at[40], path[128];
    long long sleeper_at = 0;
    char *batch = yt_batch_body("{\"type\":\"noop\",\"payload\":{\"batch\":true}}", 20);
    for (long i = 0; !atomic_load(&g.mix_stop); i++) {
        long long t0 = yt_now_ms();
        int st = gw_call("POST", "/v1/jobs", "{\"type\":\"noop\"}", NULL, NULL, id);
        mix_count(K_NOOP, st, 202, "noop");
        if (st == 202)
            memcpy(last_id, id, sizeof id);
        snprintf(body, sizeof body, "{\"type\":\"echo\",\"payload\":{\"i\":%ld}}", i);
        mix_count(K_ECHO, gw_call("POST", "/v1/jobs", body, NULL, NULL, NULL), 202, "echo");
        if (i % 5 == 0)
            mix_count(K_RETRY,
                      gw_call("POST", "/v1/jobs",
                              "{\"type\":\"fail\",\"max_attempts\":3,\"payload\":"
                              "{\"retryable\":true,\"message\":\"flaky on purpose\"}}",
                              NULL, NULL, NULL),
                      202, "fail retryable");
        switch (i % 10) {
        case 1:
            mix_count(K_FAIL,
                      gw_call("POST", "/v1/jobs",
                              "{\"type\":\"fail\",\"payload\":{\"message\":\"broken on purpose\"}}",
                              NULL, NULL, NULL),
                      202, "fail");
            break;
        case 2:
            mix_count(K_UNKNOWN,
                      gw_call("POST", "/v1/jobs", "{\"type\":\"no-such-type\"}", NULL, NULL, NULL),
                      202, "unknown type");
            break;
        case 3:
            yt_rfc3339_in(at, 2000);
            snprintf(body, sizeof body, "{\"type\":\"noop\",\"run_at\":\"%s\"}", at);
            mix_count(K_SCHED, gw_call("POST", "/v1/jobs", body, NULL, NULL, NULL), 202,
                      "run_at");
            break;
        case 4:
            mix_count(K_BATCH, batch ? gw_call("POST", "/v1/jobs/batch", batch, NULL, NULL, NULL)
                                     : -100, 202, "batch");
            break;
        case 5: {
            char key[64];
            snprintf(key, sizeof key, "prom-mix-%ld", i);
            mix_count(K_DUP, gw_call("POST", "/v1/jobs", "{\"type\":\"noop\"}", key, NULL, NULL),
                      202, "idempotent first");
            mix_count(K_DUP, gw_call("POST", "/v1/jobs", "{\"type\":\"noop\"}", key, NULL, NULL),
                      202, "idempotent repeat");
            break;
        }
        case 6:
            mix_count(K_BADAUTH,
                      gw_call("POST", "/v1/jobs", "{\"type\":\"noop\"}", NULL,
                              "Authorization: Bearer not-a-key", NULL),
                      401, "bad key");
            mix_count(K_BADBODY, gw_call("POST", "/v1/jobs", "{\"type\":", NULL, NULL, NULL), 400,
                      "bad body");
            break;
        case 7:
            if (i % 20 == 7)
                mix_count(K_TIMEOUT,
                          gw_call("POST", "/v1/jobs",
                                  "{\"type\":\"sleep\",\"payload\":{\"ms\":2500},"
                                  "\"timeout_s\":1,\"max_attempts\":2}",
                                  NULL, NULL, NULL),
                          202, "timeout");
            else if (!sleeper[0]) {
                st = gw_call("POST", "/v1/jobs",
                             "{\"type\":\"sleep\",\"payload\":{\"ms\":3000},\"max_attempts\":1}",
                             NULL, NULL, sleeper);
                mix_count(K_CANCEL, st, 202, "sleep to cancel");
                if (st != 202)
                    sleeper[0] = '\0';
                sleeper_at = yt_now_ms();
            }
            break;
        case 9:
            if (last_id[0]) {
                snprintf(path, sizeof path, "/v1/jobs/%s", last_id);
                mix_count(K_READ, gw_call("GET", path, NULL, NULL, NULL, NULL), 200, "GET job");
            }
            mix_count(K_READ, gw_call("GET", "/v1/queues", NULL, NULL, NULL, NULL), 200,
                      "GET queues");
            break;
        }
        /* A second after its submission the 3 s sleeper runs: cancel it. */
        if (sleeper[0] && yt_now_ms() - sleeper_at >= 1000) {
            snprintf(path, sizeof path, "/v1/jobs/%s", sleeper);
            mix_count(K_CANCEL, gw_call("DELETE", path, NULL, NULL, NULL, NULL), 200,
                      "DELETE running job");
            sleeper[0] = '\0';
        }
        long long left = MIX_TICK_MS - (yt_now_ms() - t0);
        if (left > 0)
            yt_nap_ms((int)left);
    }
    free(batch);
    return arg;
}

static void mix_stop(void)
{
    if (!g.mix_running)
        return;
    atomic_store(&g.mix_stop, 1);
    pthread_join(g.mix, NULL);
    g.mix_running = 0;
}

/* ---- setup ------------------------------------------------------------------- */

static int teardown(void **state);

/* cmocka skips the group teardown when setup fails: clean up here then. */
static int setup(void **state)
{
    yard_log_init("test_prometheus", YARD_LOG_ERROR);
    if (yt_cluster_start(&g.c, (char *const *)gw_extra_env) != 0 || make_key() != 0 ||
        yt_worker_start(&g.c.exec, g.c.env, "execute", NULL, (char *const *)worker_env, 0) != 0 ||
        yt_worker_start(&g.c.sched, g.c.env, "schedule", NULL, (char *const *)worker_env, 0) != 0 ||
        prom_start() != 0) {
        teardown(state);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    static int done;
    if (done++)
        return 0;
    mix_stop();
    prom_stop();
    json_decref(g.names);
    g.names = NULL;
    yt_cluster_stop(&g.c);
    return 0;
}

/* ---- 1. scraping ------------------------------------------------------------- */

static void test_prometheus_scrapes_the_gateway_and_three_workers(void **state)
{
    double gw = -1, wk = -1;
    long long deadline = yt_now_ms() + 30000;
    while (yt_now_ms() < deadline) {
        gw = prom_value("sum(up{job=\"yard-gateway\"})");
        wk = prom_value("sum(up{job=\"yard-worker\"})");
        if (gw == 1 && wk == 3)
            return;
        yt_nap_ms(250);
    }
    json_t *d = NULL;
    char why[400];
    json_t *targets = prom_api(&d, "/api/v1/targets", NULL, why, sizeof why) == 0
                          ? json_object_get(d, "activeTargets") : NULL;
    size_t i;
    json_t *t;
    json_array_foreach(targets, i, t)
        fprintf(stderr, "  target %s (%s): health %s, last error: %s\n",
                json_string_value(json_object_get(t, "scrapeUrl")) ?: "?",
                json_string_value(json_object_get(json_object_get(t, "labels"), "job")) ?: "?",
                json_string_value(json_object_get(t, "health")) ?: "?",
                one_line(json_string_value(json_object_get(t, "lastError")), 160));
    json_decref(d);
    fail_msg("expected Prometheus to scrape the gateway (up == 1) and 3 workers (sum(up) == 3) "
             "within 30 s; got %g and %g", gw, wk);
}

/* ---- 2. the mix --------------------------------------------------------------- */

static void test_a_mix_of_jobs_flows(void **state)
{
    g.mix_t0 = yt_now_ms();
    if (pthread_create(&g.mix, NULL, mix_main, NULL) != 0)
        fail_msg("cannot start the job mix thread");
    g.mix_running = 1;
    yt_nap_ms(MIX_SECONDS * 1000);

    report_t r = {0};
    for (int k = 0; k < K_COUNT; k++) {
        long ok = atomic_load(&g.ok[k]), bad = atomic_load(&g.bad[k]);
        if (bad || !ok) {
            pthread_mutex_lock(&g.lock);
            report_add(&r, "%s: %ld as expected, %ld not (last: %s)", kind_name[k], ok, bad,
                       g.last_bad[k][0] ? g.last_bad[k] : "-");
            pthread_mutex_unlock(&g.lock);
        }
    }
    /* What the mix asks for, in PostgreSQL. */
    static const struct {
        const char *what, *sql;
    } want[] = {
        {"succeeded noop/echo jobs", "SELECT count(*) FROM jobs WHERE status = 'succeeded'"},
        {"retried attempts", "SELECT count(*) FROM job_attempts WHERE outcome = 'retry'"},
        {"retryable jobs dead after 3 attempts",
         "SELECT count(*) FROM jobs WHERE type = 'fail' AND status = 'dead' AND attempts = 3"},
        {"unknown-type jobs dead after 1 attempt",
         "SELECT count(*) FROM jobs WHERE type = 'no-such-type' AND status = 'dead'"},
        {"run_at jobs succeeded",
         "SELECT count(*) FROM jobs WHERE run_at IS NOT NULL AND status = 'succeeded'"},
        {"timed-out attempts", "SELECT count(*) FROM job_attempts WHERE outcome = 'timeout'"},
        {"cancelled jobs", "SELECT count(*) FROM jobs WHERE status = 'cancelled'"},
    };
    char counts[400];
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        long long n = yt_wait_sql(g.c.env, 1, 5000, "SELECT least(1, (%s))", want[i].sql);
        if (n != 1)
            report_add(&r, "expected some %s in PostgreSQL after %d s of the mix, got none",
                       want[i].what, MIX_SECONDS);
    }
    yt_sql_text(g.c.env, counts, sizeof counts,
                "SELECT string_agg(status || ' ' || n, ', ' ORDER BY status) FROM"
                " (SELECT status, count(*) n FROM jobs GROUP BY status) s");
    printf("test_prometheus: after %d s of the mix, jobs by status: %s\n", MIX_SECONDS, counts);

    /* rate() windows need a few scrapes. */
    double scrapes = -1;
    long long deadline = yt_now_ms() + 15000;
    while (yt_now_ms() < deadline &&
           (scrapes = prom_value("min(count_over_time(up[15s]))")) < 8)
        yt_nap_ms(250);
    if (scrapes < 8)
        report_add(&r, "expected at least 8 scrapes of every target in the last 15 s, got %g",
                   scrapes);
    if (refresh_names() != 0)
        report_add(&r, "cannot read the metric names from /api/v1/label/__name__/values");
    if (report_print(&r, "the job mix"))
        fail_msg("the job mix did not produce what the checks need (listed above)");
}

/* ---- PromQL selectors ------------------------------------------------------ */

typedef struct {
    char name[200];      /* "" for a selector without a metric name */
    char labels[8][64];  /* label names of its matchers */
    int nlabels;
    char job[200];       /* the value of job="..." when it has one */
    char text[600];      /* the selector as written */
} psel_t;

static int ident_start(int c)
{
    return isalpha(c) || c == '_' || c == ':';
}

static int ident_char(int c)
{
    return isalnum(c) || c == '_' || c == ':';
}

static const char *skip_space(const char *p)
{
    while (*p && isspace((unsigned char)*p))
        p++;
    return p;
}

/* p at a quote: returns the character after the closing quote; copies the
 * content (escapes kept as is) into out (cap bytes, may be 0). */
static const char *skip_string(const char *p, char *out, size_t cap)
{
    char q = *p++;
    size_t o = 0;
    while (*p && *p != q) {
        if (*p == '\\' && q != '`' && p[1])
            p++;
        if (cap && o + 1 < cap)
            out[o++] = *p;
        p++;
    }
    if (cap)
        out[o] = '\0';
    return *p ? p + 1 : p;
}

/* p at open: returns the character after the matching close. */
static const char *skip_group(const char *p, char open, char close)
{
    int depth = 0;
    while (*p) {
        if (*p == '"' || *p == '\'' || *p == '`') {
            p = skip_string(p, NULL, 0);
            continue;
        }
        if (*p == open)
            depth++;
        else if (*p == close && --depth == 0)
            return p + 1;
        p++;
    }
    return p;
}

/* Parses the matchers of a {...} block at p into s; returns the character
 * after the block. */
static const char *parse_matchers(const char *p, psel_t *s)
{
    p++; /* '{' */
    for (;;) {
        p = skip_space(p);
        while (*p == ',')
            p = skip_space(p + 1);
        if (!*p || *p == '}')
            return *p ? p + 1 : p;
        if (*p == '"' || *p == '\'' || *p == '`') { /* a quoted metric name (newer PromQL) */
            char v[200];
            p = skip_string(p, v, sizeof v);
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
        p = skip_space(p);
        char op[3] = "";
        if ((p[0] == '!' || p[0] == '=') && (p[1] == '=' || p[1] == '~')) {
            snprintf(op, sizeof op, "%.2s", p);
            p += 2;
        } else if (p[0] == '=') {
            snprintf(op, sizeof op, "=");
            p++;
        }
        p = skip_space(p);
        char value[200] = "";
        if (*p == '"' || *p == '\'' || *p == '`')
            p = skip_string(p, value, sizeof value);
        if (strcmp(label, "__name__") == 0) {
            if (strcmp(op, "=") == 0)
                snprintf(s->name, sizeof s->name, "%s", value);
        } else {
            if (s->nlabels < 8)
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

/* The vector selectors of a PromQL expression (at most max): metric names,
 * and the label names of their matchers. A small scanner, not a parser:
 * strings, ranges, label lists of by/without/on/ignoring/group_* and
 * function names are skipped; every other identifier is a metric name. */
static int promql_selectors(const char *q, psel_t *out, int max)
{
    int n = 0;
    const char *p = q;
    while (*p) {
        unsigned char c = (unsigned char)*p;
        if (isspace(c)) {
            p++;
        } else if (c == '#') {
            while (*p && *p != '\n')
                p++;
        } else if (c == '"' || c == '\'' || c == '`') {
            p = skip_string(p, NULL, 0);
        } else if (c == '[') {
            p = skip_group(p, '[', ']');
        } else if (isdigit(c) || (c == '.' && isdigit((unsigned char)p[1]))) {
            const char *t0 = p; /* a number (1e-3, 0x1f) or a duration (5m, 1h30m) */
            while (isalnum((unsigned char)*p) || *p == '.' || *p == '_' ||
                   ((*p == '+' || *p == '-') && p - t0 >= 2 && (p[-1] == 'e' || p[-1] == 'E') &&
                    (isdigit((unsigned char)p[-2]) || p[-2] == '.')))
                p++;
        } else if (c == '{') {
            psel_t s = {0};
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
            const char *nx = skip_space(p);
            if (is_label_list_keyword(word)) {
                if (*nx == '(')
                    p = skip_group(nx, '(', ')');
                continue;
            }
            if (*nx == '(' || is_keyword(word))
                continue; /* a function, an aggregation, an operator */
            psel_t s = {0};
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
    /* A label list right after an aggregation name: sum by (x) (...) is
     * handled above; sum(...) by (x) too (by followed by a parenthesis). */
    return n;
}

/* The metric names of expr Prometheus does not know, as ", "-separated
 * text in out ("" when all are known). */
static void unknown_names(const char *expr, char *out, size_t cap)
{
    psel_t sel[32];
    int n = promql_selectors(expr, sel, 32);
    size_t o = 0;
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (!sel[i].name[0] || known_name(sel[i].name) || strstr(out, sel[i].name))
            continue;
        int w = snprintf(out + o, cap - o, "%s%s", o ? ", " : "", sel[i].name);
        if (w < 0 || (size_t)w >= cap - o)
            break;
        o += (size_t)w;
    }
}

static void label_names_of(const char *name, char *out, size_t cap);

/* The selectors of expr (all of whose names Prometheus knows) that match no
 * series now, each with the label names of its matchers that no series of
 * its metric has, as ", "-separated text in out. */
static void empty_selectors(const char *expr, char *out, size_t cap)
{
    psel_t sel[32];
    int n = promql_selectors(expr, sel, 32);
    size_t o = 0;
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        char why[400], have[1024], bad[300] = "";
        if (!sel[i].text[0] || strstr(out, sel[i].text) ||
            prom_query(NULL, sel[i].text, why, sizeof why) != 0)
            continue;
        if (sel[i].name[0]) {
            label_names_of(sel[i].name, have, sizeof have);
            for (int k = 0; k < sel[i].nlabels; k++) {
                char key[80];
                snprintf(key, sizeof key, ",%s,", sel[i].labels[k]);
                if (!strstr(have, key) && strlen(bad) + strlen(key) + 24 < sizeof bad)
                    snprintf(bad + strlen(bad), sizeof bad - strlen(bad), "%s%s",
                             bad[0] ? ", " : " (no such label: ", sel[i].labels[k]);
            }
            if (bad[0])
                strcat(bad, ")");
        }
        int w = snprintf(out + o, cap - o, "%s%s%s", o ? "; " : "", one_line(sel[i].text, 160),
                         bad);
        if (w < 0 || (size_t)w >= cap - o)
            break;
        o += (size_t)w;
    }
}

/* ---- Grafana templating ---------------------------------------------------- */

typedef struct {
    json_t *dash;        /* the dashboard */
    const char *uid;
    sbuf_t unresolved;   /* variables left as written */
    int depth;
} tpl_t;

static char *substitute(tpl_t *t, const char *in);

/* The first value of a query variable: label_values(...) through
 * Prometheus, a SELECT through PostgreSQL. Copies it into out; 0 or -1. */
static int query_variable(tpl_t *t, const char *query, char *out, size_t cap)
{
    char *q = substitute(t, query);
    int rc = -1;
    const char *p = skip_space(q);
    if (strncmp(p, "label_values(", 13) == 0) {
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
        char label[128], match[900] = "";
        if (comma) {
            *comma = '\0';
            snprintf(match, sizeof match, "%s", one_line(inner, sizeof match - 1));
            snprintf(label, sizeof label, "%s", one_line(comma + 1, sizeof label - 1));
        } else {
            snprintf(label, sizeof label, "%s", one_line(inner, sizeof label - 1));
        }
        json_t *vals = prom_label_values(label, match[0] ? match : NULL);
        const char *v = json_string_value(json_array_get(vals, 0));
        if (v) {
            snprintf(out, cap, "%s", v);
            rc = 0;
        }
        json_decref(vals);
    } else if (strncasecmp(p, "select", 6) == 0 || strncasecmp(p, "with", 4) == 0) {
        PGresult *r = yt_sql_query(g.c.env, "%s", p);
        if (r && PQntuples(r) > 0 && PQnfields(r) > 0) {
            snprintf(out, cap, "%s", PQgetvalue(r, 0, 0));
            rc = 0;
        }
        PQclear(r);
    }
    free(q);
    return rc;
}

/* The value of a Grafana variable, or NULL (then the text stays as is). */
static const char *variable(tpl_t *t, const char *name, char *buf, size_t cap)
{
    static const struct {
        const char *name, *value;
    } builtin[] = {
        {"queue", "default"}, {"__rate_interval", "15s"}, {"__interval", "5s"},
        {"__interval_ms", "5000"}, {"__range", "1m"}, {"__range_s", "60"},
        {"__range_ms", "60000"}, {"__auto_interval", "5s"}, {"__all", ".*"},
    };
    for (size_t i = 0; i < sizeof builtin / sizeof builtin[0]; i++)
        if (strcmp(name, builtin[i].name) == 0)
            return builtin[i].value;
    if (strcmp(name, "__dashboard") == 0)
        return t->uid;
    json_t *list = json_object_get(json_object_get(t->dash, "templating"), "list");
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v) {
        if (strcmp(json_string_value(json_object_get(v, "name")) ?: "", name) != 0)
            continue;
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
            snprintf(buf, cap, "%s", one_line(buf, cap - 1));
            return buf;
        }
        if (!strcmp(type, "constant") || !strcmp(type, "textbox"))
            return query;
        if (!strcmp(type, "query") && t->depth < 3) {
            t->depth++;
            int rc = query_variable(t, query, buf, cap);
            t->depth--;
            return rc == 0 ? buf : NULL;
        }
        return NULL;
    }
    return NULL;
}

static void add_unresolved(tpl_t *t, const char *name)
{
    if (t->unresolved.s && strstr(t->unresolved.s, name))
        return;
    sb_addf(&t->unresolved, "%s$%s", t->unresolved.len ? ", " : "", name);
}

/* in with Grafana's variables ($v, ${v}, ${v:fmt}, [[v]]) substituted; a
 * malloc'd string. */
static char *substitute(tpl_t *t, const char *in)
{
    sbuf_t out = {0};
    sb_add(&out, "");
    const char *p = in;
    while (*p) {
        const char *start = p, *name0 = NULL, *end = NULL;
        size_t nlen = 0;
        if (p[0] == '$' && p[1] == '{') {
            const char *close = strchr(p + 2, '}');
            if (close) {
                name0 = p + 2;
                nlen = strcspn(name0, ":}");
                end = close + 1;
            }
        } else if (p[0] == '$' && ident_char((unsigned char)p[1]) && p[1] != ':') {
            name0 = p + 1;
            while (isalnum((unsigned char)name0[nlen]) || name0[nlen] == '_')
                nlen++;
            end = name0 + nlen;
        } else if (p[0] == '[' && p[1] == '[') {
            const char *close = strstr(p + 2, "]]");
            if (close) {
                size_t n = strcspn(p + 2, ":]");
                int ok = n > 0;
                for (size_t k = 0; k < n; k++)
                    ok = ok && (isalnum((unsigned char)p[2 + k]) || p[2 + k] == '_');
                if (ok) {
                    name0 = p + 2;
                    nlen = n;
                    end = close + 2;
                }
            }
        }
        if (!name0 || nlen == 0) {
            sb_addn(&out, p, 1);
            p++;
            continue;
        }
        char name[128], buf[512];
        snprintf(name, sizeof name, "%.*s", (int)nlen, name0);
        const char *v = variable(t, name, buf, sizeof buf);
        if (v) {
            sb_add(&out, v);
        } else {
            sb_addn(&out, start, (size_t)(end - start));
            add_unresolved(t, name);
        }
        p = end;
    }
    return out.s;
}

/* ---- Grafana's SQL macros ------------------------------------------------ */

/* Splits the text between the parentheses of a macro (len bytes at a) at
 * top-level commas into at most 4 arguments, each on one line. */
static void macro_args(const char *a, size_t len, char args[4][300])
{
    int n = 0, depth = 0;
    size_t o = 0;
    for (size_t i = 0; i <= len && n < 4; i++) {
        char c = i < len ? a[i] : ',';
        depth += (c == '(') - (c == ')');
        if (c == ',' && depth == 0) {
            args[n][o] = '\0';
            snprintf(args[n], 300, "%s", one_line(args[n], 299));
            n++;
            o = 0;
        } else if (o + 1 < 300) {
            args[n][o++] = c;
        }
    }
}

/* in with Grafana's PostgreSQL macros expanded for the last hour; a
 * malloc'd string. Unknown macros stay (and are named in unknown). */
static char *sql_macros(const char *in, sbuf_t *unknown)
{
    sbuf_t out = {0};
    sb_add(&out, "");
    const char *p = in;
    while (*p) {
        if (strncmp(p, "$__", 3) != 0) {
            sb_addn(&out, p, 1);
            p++;
            continue;
        }
        const char *n0 = p + 1, *q = n0;
        while (isalnum((unsigned char)*q) || *q == '_')
            q++;
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)(q - n0), n0);
        const char *after = skip_space(q);
        if (*after != '(') { /* a variable such as $__interval: later */
            sb_addn(&out, p, (size_t)(q - p));
            p = q;
            continue;
        }
        const char *close = skip_group(after, '(', ')');
        char args[4][300] = {{0}};
        size_t alen = close > after + 1 && close[-1] == ')' ? (size_t)(close - after - 2)
                                                             : strlen(after + 1);
        macro_args(after + 1, alen, args);
        const char *c = args[0];
        if (!strcmp(name, "__timeFilter"))
            sb_addf(&out, "%s BETWEEN now() - interval '1 hour' AND now()", c);
        else if (!strcmp(name, "__timeFrom"))
            sb_add(&out, "(now() - interval '1 hour')");
        else if (!strcmp(name, "__timeTo"))
            sb_add(&out, "now()");
        else if (!strcmp(name, "__timeGroup"))
            sb_addf(&out, "date_trunc('minute', %s)", c);
        else if (!strcmp(name, "__timeGroupAlias"))
            sb_addf(&out, "date_trunc('minute', %s) AS \"time\"", c);
        else if (!strcmp(name, "__time"))
            sb_addf(&out, "%s AS \"time\"", c);
        else if (!strcmp(name, "__timeEpoch"))
            sb_addf(&out, "extract(epoch from %s) AS \"time\"", c);
        else if (!strcmp(name, "__unixEpochFilter"))
            sb_addf(&out, "%s BETWEEN extract(epoch from now() - interval '1 hour') AND "
                          "extract(epoch from now())", c);
        else if (!strcmp(name, "__unixEpochFrom"))
            sb_add(&out, "extract(epoch from now() - interval '1 hour')");
        else if (!strcmp(name, "__unixEpochTo"))
            sb_add(&out, "extract(epoch from now())");
        else if (!strcmp(name, "__unixEpochGroup"))
            sb_addf(&out, "floor(%s / 60) * 60", c);
        else if (!strcmp(name, "__unixEpochGroupAlias"))
            sb_addf(&out, "floor(%s / 60) * 60 AS \"time\"", c);
        else if (!strcmp(name, "__schema"))
            sb_add(&out, "public");
        else {
            sb_addn(&out, p, (size_t)(close - p));
            sb_addf(unknown, "%s$%s()", unknown->len ? ", " : "", name);
        }
        p = close;
    }
    return out.s;
}

/* Runs sql read-only; returns its number of rows, or -1 with the error in
 * why. */
static int sql_rows(PGconn *pg, const char *sql, char *why, size_t cap)
{
    PGresult *r = PQexec(pg, "BEGIN READ ONLY");
    PQclear(r);
    r = PQexec(pg, sql);
    int rows = -1;
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_TUPLES_OK)
        rows = PQntuples(r);
    else if (st == PGRES_COMMAND_OK)
        snprintf(why, cap, "not a query (returns no rows)");
    else
        snprintf(why, cap, "%s", one_line(PQresultErrorMessage(r), EXCERPT));
    PQclear(r);
    r = PQexec(pg, "ROLLBACK");
    PQclear(r);
    return rows;
}

/* ---- dashboards ---------------------------------------------------------- */

typedef enum { T_PROM, T_SQL } target_kind_t;

typedef struct {
    target_kind_t kind;
    report_t *r;
    int checked;
    PGconn *pg;
} walk_t;

static void check_target(walk_t *w, tpl_t *t, const char *title, json_t *target)
{
    const char *ref = json_string_value(json_object_get(target, "refId")) ?: "?";
    char why[800];
    if (w->kind == T_PROM) {
        const char *expr = json_string_value(json_object_get(target, "expr"));
        if (!expr || !skip_space(expr)[0])
            return;
        w->checked++;
        t->unresolved.len = 0;
        if (t->unresolved.s)
            t->unresolved.s[0] = '\0';
        char *q = substitute(t, expr);
        int n = prom_query(NULL, q, why, sizeof why);
        if (n <= 0) {
            char unknown[400] = "";
            unknown_names(q, unknown, sizeof unknown);
            char blame[1200];
            if (n < 0)
                snprintf(blame, sizeof blame, "query error: %s", why);
            else if (unknown[0])
                snprintf(blame, sizeof blame,
                         "empty result: metrics Prometheus does not know: %s (defect of the "
                         "metrics, or a wrong name in the dashboard)", unknown);
            else {
                char none[600];
                empty_selectors(q, none, sizeof none);
                if (none[0])
                    snprintf(blame, sizeof blame,
                             "empty result: every metric exists, but these selectors match no "
                             "series: %s (dashboard defect: wrong labels, or a panel that needs "
                             "an event the mix did not cause and shows no data instead of 0 - "
                             "add `or vector(0)`)", none);
                else
                    snprintf(blame, sizeof blame,
                             "empty result though every selector has series (dashboard "
                             "defect: a filter, comparison or join (on/ignoring) removes "
                             "them all)");
            }
            report_add(w->r, "[%s] panel \"%s\" (%s): %s%s%s\n    expr: %s", t->uid,
                       one_line(title, 80), ref, blame,
                       t->unresolved.len ? "; unresolved variables: " : "",
                       t->unresolved.len ? t->unresolved.s : "", one_line(q, EXCERPT));
        }
        free(q);
    } else {
        const char *raw = json_string_value(json_object_get(target, "rawSql"));
        if (!raw || !skip_space(raw)[0])
            return;
        w->checked++;
        sbuf_t unknown = {0};
        sb_add(&unknown, "");
        t->unresolved.len = 0;
        if (t->unresolved.s)
            t->unresolved.s[0] = '\0';
        char *m = sql_macros(raw, &unknown);
        char *q = substitute(t, m);
        int rows = sql_rows(w->pg, q, why, sizeof why);
        if (rows <= 0)
            report_add(w->r, "[%s] panel \"%s\" (%s): %s%s%s%s%s%s\n    sql: %s", t->uid,
                       one_line(title, 80), ref,
                       rows < 0 ? "SQL error: " : "no rows (the job mix has jobs of every "
                                                  "outcome, so a panel must show some)",
                       rows < 0 ? why : "", unknown.len ? "; unknown macros: " : "",
                       unknown.s, t->unresolved.len ? "; unresolved variables: " : "",
                       t->unresolved.len ? t->unresolved.s : "", one_line(q, EXCERPT));
        free(unknown.s);
        free(m);
        free(q);
    }
}

static void walk_panels(walk_t *w, tpl_t *t, json_t *panels)
{
    size_t i;
    json_t *p;
    json_array_foreach(panels, i, p) {
        const char *title = json_string_value(json_object_get(p, "title")) ?: "(untitled)";
        size_t j;
        json_t *target;
        json_array_foreach(json_object_get(p, "targets"), j, target)
            check_target(w, t, title, target);
        walk_panels(w, t, json_object_get(p, "panels")); /* rows hold panels */
    }
}

/* Checks every target of kind in every dashboard; fails the test, after
 * listing every failing target, when one fails or there are no dashboards. */
static void check_dashboards(target_kind_t kind)
{
    char pattern[600];
    glob_t gl = {0};
    snprintf(pattern, sizeof pattern, "%s/%s", yt_src_dir(), DASHBOARDS_GLOB);
    if (glob(pattern, 0, NULL, &gl) != 0 || gl.gl_pathc == 0) {
        globfree(&gl);
        fail_msg("expected dashboards at %s, found none", DASHBOARDS_GLOB);
    }
    report_t r = {0};
    walk_t w = {.kind = kind, .r = &r};
    if (kind == T_SQL) {
        w.pg = PQconnectdb(g.c.env->pg_dsn);
        if (PQstatus(w.pg) != CONNECTION_OK)
            fail_msg("cannot connect to PostgreSQL: %s", PQerrorMessage(w.pg));
        PGresult *res = PQexec(w.pg, "SET statement_timeout = '10s'");
        PQclear(res);
    }
    int dashboards = 0;
    for (size_t i = 0; i < gl.gl_pathc; i++) {
        json_error_t err;
        const char *file = strrchr(gl.gl_pathv[i], '/') + 1;
        json_t *doc = json_load_file(gl.gl_pathv[i], 0, &err);
        if (!doc) {
            report_add(&r, "%s: not valid JSON: line %d: %s", file, err.line, err.text);
            continue;
        }
        json_t *dash = json_object_get(doc, "dashboard") ?: doc; /* an API export wraps it */
        tpl_t t = {.dash = dash, .uid = json_string_value(json_object_get(dash, "uid")) ?: file};
        int before = w.checked;
        walk_panels(&w, &t, json_object_get(dash, "panels"));
        size_t j;
        json_t *row;
        json_array_foreach(json_object_get(dash, "rows"), j, row) /* the old layout */
            walk_panels(&w, &t, json_object_get(row, "panels"));
        printf("test_prometheus: dashboard %s (%s): %d %s targets\n", t.uid, file,
               w.checked - before, kind == T_PROM ? "Prometheus" : "PostgreSQL");
        dashboards++;
        free(t.unresolved.s);
        json_decref(doc);
    }
    globfree(&gl);
    if (w.pg)
        PQfinish(w.pg);
    int checked = w.checked;
    const char *what = kind == T_PROM ? "dashboard Prometheus targets" : "dashboard SQL targets";
    int failed = report_print(&r, what);
    if (failed)
        fail_msg("%d of %d %s failed (listed above)", failed, checked, what);
    if (kind == T_PROM && checked == 0)
        fail_msg("expected Prometheus targets (expr) in the %d dashboards, found none", dashboards);
    if (kind == T_SQL && checked == 0)
        printf("test_prometheus: no PostgreSQL targets (rawSql) in the %d dashboards\n",
               dashboards);
}

static void test_every_dashboard_prometheus_query_has_data(void **state)
{
    if (!g.names)
        refresh_names();
    check_dashboards(T_PROM);
}

static void test_every_dashboard_sql_query_has_rows(void **state)
{
    check_dashboards(T_SQL);
}

/* ---- alert rules --------------------------------------------------------- */

/* The label names of the series of metric name (a ", "-separated list with
 * commas around each, e.g. ",job,queue,"), in out. */
static void label_names_of(const char *name, char *out, size_t cap)
{
    sbuf_t path = {0};
    json_t *d = NULL;
    char why[400];
    sb_add(&path, "/api/v1/series?match[]=");
    url_encode(&path, name);
    snprintf(out, cap, ",");
    if (prom_api(&d, path.s, NULL, why, sizeof why) == 0) {
        size_t i;
        json_t *s;
        json_array_foreach(d, i, s) {
            const char *k;
            json_t *v;
            json_object_foreach(s, k, v) {
                char key[80];
                snprintf(key, sizeof key, ",%s,", k);
                if (!strstr(out, key) && strlen(out) + strlen(k) + 2 < cap) {
                    strcat(out, k);
                    strcat(out, ",");
                }
            }
        }
    }
    json_decref(d);
    free(path.s);
}

/* Checks the selectors of a rule's expression: names known, label names
 * present on the metric, job values one of the scrape jobs. */
static void check_rule_selectors(report_t *r, const char *rule, const char *expr)
{
    psel_t sel[32];
    int n = promql_selectors(expr, sel, 32);
    if (n == 0)
        report_add(r, "rule %s: no metric selector found in: %s", rule, one_line(expr, EXCERPT));
    for (int i = 0; i < n; i++) {
        psel_t *s = &sel[i];
        int seen = 0;
        for (int k = 0; k < i; k++)
            seen = seen || strcmp(sel[k].text, s->text) == 0 ||
                   (s->name[0] && !known_name(s->name) && strcmp(sel[k].name, s->name) == 0);
        if (seen)
            continue;
        if (s->job[0] && strcmp(s->job, "yard-gateway") && strcmp(s->job, "yard-worker"))
            report_add(r, "rule %s: selector %s names job \"%s\"; the scrape jobs are "
                          "yard-gateway and yard-worker", rule, one_line(s->text, 120), s->job);
        if (!s->name[0])
            continue;
        if (!known_name(s->name)) {
            report_add(r, "rule %s: metric %s is unknown to Prometheus (nobody exports it)%s",
                       rule, s->name,
                       strchr(s->name, ':') ? " - a recording rule's output that is empty" : "");
            continue;
        }
        char have[1024];
        label_names_of(s->name, have, sizeof have);
        for (int k = 0; k < s->nlabels; k++) {
            char key[80];
            snprintf(key, sizeof key, ",%s,", s->labels[k]);
            if (!strstr(have, key))
                report_add(r, "rule %s: selector %s matches on label %s, which no series of %s "
                              "has (labels:%s)", rule, one_line(s->text, 120), s->labels[k],
                           s->name, have);
        }
    }
}

static void test_every_alert_rule_loads_evaluates_and_uses_exported_metrics(void **state)
{
    if (!g.rules_loaded)
        fail_msg("the rule file is not loaded: %s", one_line(g.rules_why, 600));
    if (!g.names)
        refresh_names();
    /* Wait until every rule has been evaluated (health leaves "unknown"). */
    json_t *d = NULL;
    char why[400];
    long long deadline = yt_now_ms() + RULE_EVAL_WAIT_MS;
    int unknown = 0, total = 0;
    for (;;) {
        json_decref(d);
        d = NULL;
        if (prom_api(&d, "/api/v1/rules", NULL, why, sizeof why) != 0)
            fail_msg("GET /api/v1/rules: %s", why);
        unknown = total = 0;
        size_t i, j;
        json_t *grp, *rule;
        json_array_foreach(json_object_get(d, "groups"), i, grp)
            json_array_foreach(json_object_get(grp, "rules"), j, rule) {
                total++;
                unknown += strcmp(json_string_value(json_object_get(rule, "health")) ?: "",
                                  "unknown") == 0;
            }
        if (unknown == 0 || yt_now_ms() >= deadline)
            break;
        yt_nap_ms(500);
    }
    if (total == 0) {
        json_decref(d);
        fail_msg("expected rules in %s, Prometheus loaded none", RULES_FILE);
    }
    report_t r = {0};
    size_t i, j;
    json_t *grp, *rule;
    json_array_foreach(json_object_get(d, "groups"), i, grp)
        json_array_foreach(json_object_get(grp, "rules"), j, rule) {
            const char *name = json_string_value(json_object_get(rule, "name")) ?: "?";
            const char *query = json_string_value(json_object_get(rule, "query")) ?: "";
            const char *health = json_string_value(json_object_get(rule, "health")) ?: "?";
            const char *err = json_string_value(json_object_get(rule, "lastError")) ?: "";
            if (strcmp(health, "ok") != 0 || err[0])
                report_add(&r, "rule %s (group %s): health %s, last error: %s\n    expr: %s",
                           name, json_string_value(json_object_get(grp, "name")) ?: "?", health,
                           err[0] ? one_line(err, EXCERPT) : "-", one_line(query, EXCERPT));
            check_rule_selectors(&r, name, query);
        }
    json_decref(d);
    printf("test_prometheus: %d rules in %s\n", total, RULES_FILE);
    int failed = report_print(&r, "alert rules");
    if (failed)
        fail_msg("%d problems in the %d rules of %s (listed above)", failed, total, RULES_FILE);
}

/* ---- the metrics contract ------------------------------------------------ */

enum { EVERY = 1, GATEWAY = 2, EXECUTE = 4, SCHEDULE = 8 };

static const struct {
    const char *name;   /* the series name Prometheus stores (_bucket for histograms) */
    const char *labels; /* the contract's labels, each followed by a comma */
    int where;
} contract[] = {
    {"yard_build_info", "program,version,commit,", EVERY},
    {"yard_ready", "program,", EVERY},
    {"yard_pg_query_duration_seconds_bucket", "program,le,", EVERY},
    {"yard_pg_errors_total", "program,", EVERY},
    {"yard_nats_rtt_seconds", "program,", EVERY},
    {"yard_nats_errors_total", "program,", EVERY},
    {"process_cpu_seconds_total", "", EVERY},
    {"process_resident_memory_bytes", "", EVERY},
    {"process_start_time_seconds", "", EVERY},
    {"yard_http_requests_total", "route,code,", GATEWAY},
    {"yard_http_request_duration_seconds_bucket", "route,le,", GATEWAY},
    {"yard_jobs_published_total", "queue,outcome,", GATEWAY},
    {"yard_http_auth_failures_total", "", GATEWAY},
    {"yard_gateway_publishes_in_flight", "", GATEWAY},
    {"yard_queue_pending", "queue,", GATEWAY},
    {"yard_queue_in_flight", "queue,", GATEWAY},
    {"yard_dlq_size", "queue,", GATEWAY},
    {"yard_queue_oldest_pending_age_seconds", "queue,", GATEWAY},
    {"yard_consumer_pending", "consumer,", GATEWAY},
    {"yard_consumer_ack_pending", "consumer,", GATEWAY},
    {"yard_jobs_completed_total", "queue,type,outcome,", EXECUTE},
    {"yard_jobs_retried_total", "queue,", EXECUTE},
    {"yard_dlq_published_total", "queue,", EXECUTE},
    {"yard_job_duration_seconds_bucket", "queue,le,", EXECUTE},
    {"yard_job_end_to_end_seconds_bucket", "queue,le,", EXECUTE},
    {"yard_worker_jobs_in_flight", "role,", EXECUTE},
    {"yard_worker_busy_seconds_total", "role,part,", EXECUTE},
    {"yard_worker_queue_served", "queue,", EXECUTE},
    {"yard_jobs_rescued_total", "queue,", SCHEDULE},
};

/* Which processes (EVERY bits) have series of name, from the instance label. */
static int present_on(const char *name)
{
    char q[300], why[400], inst[4][40];
    json_t *d = NULL;
    snprintf(inst[0], sizeof inst[0], "127.0.0.1:%d", g.c.port);
    snprintf(inst[1], sizeof inst[1], "127.0.0.1:%d", g.c.exec.metrics_port);
    snprintf(inst[2], sizeof inst[2], "127.0.0.1:%d", g.c.sched.metrics_port);
    snprintf(inst[3], sizeof inst[3], "127.0.0.1:%d", g.c.audit.metrics_port);
    snprintf(q, sizeof q, "group by (instance) ({__name__=\"%s\"})", name);
    int bits = 0;
    if (prom_query(&d, q, why, sizeof why) > 0) {
        size_t i;
        json_t *s;
        json_array_foreach(json_object_get(d, "result"), i, s) {
            const char *in = json_string_value(
                json_object_get(json_object_get(s, "metric"), "instance")) ?: "";
            for (int k = 0; k < 4; k++)
                if (strcmp(in, inst[k]) == 0)
                    bits |= 1 << k;
        }
    }
    json_decref(d);
    return bits; /* 1 gateway, 2 execute, 4 schedule, 8 audit */
}

/* Expects an instant query to return the label values want (comma list,
 * each followed by a comma) for label; reports what is missing. */
static void expect_values(report_t *r, const char *expr, const char *label, const char *want)
{
    json_t *d = NULL;
    char why[400], have[600] = ",";
    if (prom_query(&d, expr, why, sizeof why) > 0) {
        size_t i;
        json_t *s;
        json_array_foreach(json_object_get(d, "result"), i, s) {
            const char *v = json_string_value(
                json_object_get(json_object_get(s, "metric"), label)) ?: "";
            char key[120];
            snprintf(key, sizeof key, ",%s,", v);
            if (!strstr(have, key) && strlen(have) + strlen(v) + 2 < sizeof have) {
                strcat(have, v);
                strcat(have, ",");
            }
        }
    }
    json_decref(d);
    for (const char *p = want; *p;) {
        size_t n = strcspn(p, ",");
        char key[80];
        snprintf(key, sizeof key, ",%.*s,", (int)n, p);
        if (!strstr(have, key))
            report_add(r, "%s: no series with %s=\"%.*s\" (have:%s)", expr, label, (int)n, p,
                       have);
        p += n + (p[n] == ',');
    }
}

static void test_every_contract_metric_is_known_to_prometheus(void **state)
{
    if (refresh_names() != 0)
        fail_msg("cannot read /api/v1/label/__name__/values");
    static const char *const proc[] = {"gateway", "worker-execute", "worker-schedule",
                                       "worker-audit"};
    report_t r = {0};
    sbuf_t missing = {0};
    sb_add(&missing, "");
    size_t ncontract = sizeof contract / sizeof contract[0];
    for (size_t i = 0; i < ncontract; i++) {
        const char *name = contract[i].name;
        if (!known_name(name)) {
            sb_addf(&missing, "%s%s", missing.len ? " " : "", name);
            continue;
        }
        int want = contract[i].where == EVERY ? 15
                   : contract[i].where == GATEWAY ? 1
                   : contract[i].where == EXECUTE ? 2 : 4;
        int have = present_on(name);
        for (int k = 0; k < 4; k++)
            if ((want & (1 << k)) && !(have & (1 << k)))
                report_add(&r, "%s: exported, but not by %s", name, proc[k]);
        char labels[1024];
        label_names_of(name, labels, sizeof labels);
        for (const char *p = contract[i].labels; *p;) {
            size_t n = strcspn(p, ",");
            char key[80];
            snprintf(key, sizeof key, ",%.*s,", (int)n, p);
            if (!strstr(labels, key))
                report_add(&r, "%s: no label %.*s (labels:%s)", name, (int)n, p, labels);
            p += n + (p[n] == ',');
        }
    }
    if (missing.len)
        report_add(&r, "metrics of the contract Prometheus does not know: %s", missing.s);
    free(missing.s);
    if (known_name("yard_build_info"))
        expect_values(&r, "yard_build_info == 1", "program",
                      "gateway,worker-execute,worker-schedule,worker-audit,");
    if (known_name("yard_ready")) {
        json_t *d = NULL;
        char why[400];
        if (prom_query(&d, "yard_ready != 1", why, sizeof why) > 0) {
            char *txt = json_dumps(json_object_get(d, "result"), JSON_COMPACT);
            report_add(&r, "yard_ready != 1 on: %s", one_line(txt, EXCERPT));
            free(txt);
        }
        json_decref(d);
    }
    if (known_name("yard_consumer_pending"))
        expect_values(&r, "yard_consumer_pending", "consumer", "submissions,schedule,");
    if (known_name("yard_consumer_ack_pending"))
        expect_values(&r, "yard_consumer_ack_pending", "consumer", "submissions,schedule,");
    if (known_name("yard_jobs_published_total"))
        expect_values(&r, "yard_jobs_published_total", "outcome", "accepted,duplicate,");
    if (known_name("yard_jobs_completed_total"))
        expect_values(&r, "yard_jobs_completed_total", "outcome",
                      "succeeded,retry,dead,timeout,cancelled,");
    if (known_name("yard_worker_queue_served"))
        expect_values(&r, "yard_worker_queue_served == 1", "queue", "default,");
    int failed = report_print(&r, "the metrics contract");
    if (failed)
        fail_msg("%d gaps between the metrics contract and what Prometheus scraped (listed "
                 "above)", failed);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prometheus_scrapes_the_gateway_and_three_workers),
        cmocka_unit_test(test_a_mix_of_jobs_flows),
        cmocka_unit_test(test_every_dashboard_prometheus_query_has_data),
        cmocka_unit_test(test_every_dashboard_sql_query_has_rows),
        cmocka_unit_test(test_every_alert_rule_loads_evaluates_and_uses_exported_metrics),
        cmocka_unit_test(test_every_contract_metric_is_known_to_prometheus),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
