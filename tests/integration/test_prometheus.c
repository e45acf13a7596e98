/*
 * test_prometheus.c - issue 11: the metrics, the Grafana dashboards and the
 * alert rules against a real Prometheus scraping a real cluster.
 *
 * Setup starts nats-server, PostgreSQL, the gateway (with API keys on, so
 * authentication failures can be counted), the execute, schedule and audit
 * workers, and a real Prometheus (yt_prom.h: scrape and evaluation interval
 * 1 s, jobs `yard-gateway` and `yard-worker`, rule file
 * alerts/switchyard.rules.yml when promtool accepts it; pid in
 * <dir>/prometheus.pid, log in <dir>/prometheus.log). Then, in order:
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
 *   6. Every metric of the metrics contract (yt_contract.h) is known to
 *      Prometheus, on every process that must export it, with its labels.
 * Each check lists every failure (two lines each), not just the first.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "log.h"
#include "yt_contract.h"
#include "yt_grafana.h"
#include "yt_http.h"
#include "yt_prom.h"
#include "yt_promql.h"
#include "yt_report.h"
#include "yt_str.h"
#include "yt_workers.h"

#define MIX_SECONDS 15
#define MIX_TICK_MS 100
#define RULES_FILE "alerts/switchyard.rules.yml"
#define MAX_LISTED 60      /* failures printed per check; the rest are counted */
#define MAX_SELECTORS 32   /* of one rule's expression */
#define RULE_EVAL_WAIT_MS 75000
#define NPROCS 4           /* the gateway and three workers, in YT_PROC_* bit order */

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
    yt_prom_t prom;    /* its names: the __name__ values it knows (after the mix) */
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
} g = {.lock = PTHREAD_MUTEX_INITIALIZER};

static const char *const gw_extra_env[] = {
    "YARD_AUTH_DISABLED=false", "YARD_AUTH_REFRESH_S=1", "YARD_RETRY_BASE_MS=100",
    "YARD_RETRY_CAP_MS=400", NULL};
static const char *const worker_env[] = {"YARD_RETRY_BASE_MS=100", "YARD_RETRY_CAP_MS=400",
                                         NULL};

/* The metrics ports of the gateway and the execute, schedule and audit
 * workers, in the order of the YT_PROC_* bits. */
static void process_ports(int port[NPROCS])
{
    port[0] = g.c.port;
    port[1] = g.c.exec.metrics_port;
    port[2] = g.c.sched.metrics_port;
    port[3] = g.c.audit.metrics_port;
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
                yt_one_line(err, 400));
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
                /* The row is written by the audit role a moment after the
                 * 202 (DESIGN: queued becomes visible through it): a 404
                 * right after the submit is retried for up to 2 s. */
                snprintf(path, sizeof path, "/v1/jobs/%s", last_id);
                long long until = yt_now_ms() + 2000;
                while ((st = gw_call("GET", path, NULL, NULL, NULL, NULL)) == 404 &&
                       yt_now_ms() < until)
                    yt_nap_ms(20);
                mix_count(K_READ, st, 200, "GET job");
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

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Starts Prometheus with a scrape job for the gateway and one for the three
 * workers, and the rule file when promtool accepts it (else g.rules_why
 * says why, for the rules test). */
static int prom_start(void)
{
    snprintf(g.rules_path, sizeof g.rules_path, "%s/%s", yt_src_dir(), RULES_FILE);
    const char *const check[] = {"check", "rules", g.rules_path, NULL};
    if (!file_exists(g.rules_path))
        snprintf(g.rules_why, sizeof g.rules_why, "%s does not exist", RULES_FILE);
    else if (yt_promtool(g.rules_why, sizeof g.rules_why, check) == 0)
        g.rules_loaded = 1;
    int port[NPROCS];
    process_ports(port);
    const yt_prom_job_t jobs[] = {{"yard-gateway", &port[0], 1},
                                  {"yard-worker", &port[1], NPROCS - 1}};
    return yt_prom_start(&g.prom, g.c.env, g.rules_loaded ? g.rules_path : NULL, jobs,
                         sizeof jobs / sizeof jobs[0]);
}

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
    yt_prom_stop(&g.prom);
    yt_cluster_stop(&g.c);
    return 0;
}

/* ---- 1. scraping ------------------------------------------------------------- */

static void test_prometheus_scrapes_the_gateway_and_three_workers(void **state)
{
    double gw = -1, wk = -1;
    long long deadline = yt_now_ms() + 30000;
    while (yt_now_ms() < deadline) {
        gw = yt_prom_value(&g.prom, "sum(up{job=\"yard-gateway\"})");
        wk = yt_prom_value(&g.prom, "sum(up{job=\"yard-worker\"})");
        if (gw == 1 && wk == 3)
            return;
        yt_nap_ms(250);
    }
    json_t *d = NULL;
    char why[400];
    json_t *targets = yt_prom_api(&d, &g.prom, "/api/v1/targets", NULL, why, sizeof why) == 0
                          ? json_object_get(d, "activeTargets") : NULL;
    size_t i;
    json_t *t;
    json_array_foreach(targets, i, t)
        fprintf(stderr, "  target %s (%s): health %s, last error: %s\n",
                json_string_value(json_object_get(t, "scrapeUrl")) ?: "?",
                json_string_value(json_object_get(json_object_get(t, "labels"), "job")) ?: "?",
                json_string_value(json_object_get(t, "health")) ?: "?",
                yt_one_line(json_string_value(json_object_get(t, "lastError")), 160));
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

    yt_report_t r = {.max_listed = MAX_LISTED};
    for (int k = 0; k < K_COUNT; k++) {
        long ok = atomic_load(&g.ok[k]), bad = atomic_load(&g.bad[k]);
        if (bad || !ok) {
            pthread_mutex_lock(&g.lock);
            yt_report_add(&r, "%s: %ld as expected, %ld not (last: %s)", kind_name[k], ok, bad,
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
            yt_report_add(&r, "expected some %s in PostgreSQL after %d s of the mix, got none",
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
           (scrapes = yt_prom_value(&g.prom, "min(count_over_time(up[15s]))")) < 8)
        yt_nap_ms(250);
    if (scrapes < 8)
        yt_report_add(&r, "expected at least 8 scrapes of every target in the last 15 s, got %g",
                      scrapes);
    if (yt_prom_refresh_names(&g.prom) != 0)
        yt_report_add(&r, "cannot read the metric names from /api/v1/label/__name__/values");
    if (yt_report_print(&r, "the job mix"))
        fail_msg("the job mix did not produce what the checks need (listed above)");
}

/* ---- 3, 4. dashboards ------------------------------------------------------ */

/* The queue the mix runs in, for the dashboards' $queue. */
static const char *const fixed_values[] = {"queue=default", NULL};

/* Resolves a Grafana query variable (yt_grafana_query_fn) to its first
 * value: label_values(...) through Prometheus, a SELECT through PostgreSQL. */
static int query_variable(void *ud, const char *query, char *out, size_t cap)
{
    char label[128], match[900];
    const char *p = yt_skip_space(query);
    int rc = -1;
    if (yt_grafana_label_values(p, label, sizeof label, match, sizeof match)) {
        json_t *vals = yt_prom_label_values(&g.prom, label, match[0] ? match : NULL);
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
    return rc;
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
        snprintf(why, cap, "%s", yt_one_line(PQresultErrorMessage(r), YT_EXCERPT));
    PQclear(r);
    r = PQexec(pg, "ROLLBACK");
    PQclear(r);
    return rows;
}

typedef enum { T_PROM, T_SQL } target_kind_t;

/* The walk of one kind of target through every dashboard. */
typedef struct {
    target_kind_t kind;
    yt_report_t *r;
    int checked;
    PGconn *pg;          /* for T_SQL */
    yt_grafana_tpl_t t;  /* the dashboard being walked */
} walk_t;

/* Why a Prometheus target's query q is empty (n == 0) or failed (n < 0,
 * Prometheus's answer in why): who is to blame, in blame. */
static void blame_prom_target(int n, const char *q, const char *why, char *blame, size_t cap)
{
    char unknown[400] = "";
    if (n < 0) {
        snprintf(blame, cap, "query error: %s", why);
        return;
    }
    yt_prom_unknown_names(&g.prom, q, unknown, sizeof unknown);
    if (unknown[0]) {
        snprintf(blame, cap,
                 "empty result: metrics Prometheus does not know: %s (defect of the "
                 "metrics, or a wrong name in the dashboard)", unknown);
        return;
    }
    char none[600];
    yt_prom_empty_selectors(&g.prom, q, none, sizeof none);
    if (none[0])
        snprintf(blame, cap,
                 "empty result: every metric exists, but these selectors match no "
                 "series: %s (dashboard defect: wrong labels, or a panel that needs "
                 "an event the mix did not cause and shows no data instead of 0 - "
                 "add `or vector(0)`)", none);
    else
        snprintf(blame, cap,
                 "empty result though every selector has series (dashboard "
                 "defect: a filter, comparison or join (on/ignoring) removes "
                 "them all)");
}

static void check_prom_target(walk_t *w, const char *title, const char *ref, const char *expr)
{
    char why[800], blame[1200];
    yt_grafana_tpl_t *t = &w->t;
    w->checked++;
    yt_str_clear(&t->unresolved);
    char *q = yt_grafana_substitute(t, expr);
    int n = yt_prom_query(NULL, &g.prom, q, why, sizeof why);
    if (n <= 0) {
        blame_prom_target(n, q, why, blame, sizeof blame);
        yt_report_add(w->r, "[%s] panel \"%s\" (%s): %s%s%s\n    expr: %s", t->uid,
                      yt_one_line(title, 80), ref, blame,
                      t->unresolved.len ? "; unresolved variables: " : "",
                      yt_str_text(&t->unresolved), yt_one_line(q, YT_EXCERPT));
    }
    free(q);
}

static void check_sql_target(walk_t *w, const char *title, const char *ref, const char *raw)
{
    char why[800];
    yt_grafana_tpl_t *t = &w->t;
    w->checked++;
    yt_str_t unknown = {0};
    yt_str_clear(&t->unresolved);
    char *m = yt_grafana_sql_macros(raw, &unknown);
    char *q = yt_grafana_substitute(t, m);
    int rows = sql_rows(w->pg, q, why, sizeof why);
    if (rows <= 0)
        yt_report_add(w->r, "[%s] panel \"%s\" (%s): %s%s%s%s%s%s\n    sql: %s", t->uid,
                      yt_one_line(title, 80), ref,
                      rows < 0 ? "SQL error: " : "no rows (the job mix has jobs of every "
                                                 "outcome, so a panel must show some)",
                      rows < 0 ? why : "", unknown.len ? "; unknown macros: " : "",
                      yt_str_text(&unknown), t->unresolved.len ? "; unresolved variables: " : "",
                      yt_str_text(&t->unresolved), yt_one_line(q, YT_EXCERPT));
    yt_str_free(&unknown);
    free(m);
    free(q);
}

/* Checks the targets of w's kind of a panel (yt_grafana_panel_fn). */
static void check_panel(json_t *panel, void *arg)
{
    walk_t *w = arg;
    const char *title = json_string_value(json_object_get(panel, "title")) ?: "(untitled)";
    size_t i;
    json_t *target;
    json_array_foreach(json_object_get(panel, "targets"), i, target) {
        const char *ref = json_string_value(json_object_get(target, "refId")) ?: "?";
        const char *text = json_string_value(
            json_object_get(target, w->kind == T_PROM ? "expr" : "rawSql"));
        if (!text || !yt_skip_space(text)[0])
            continue;
        if (w->kind == T_PROM)
            check_prom_target(w, title, ref, text);
        else
            check_sql_target(w, title, ref, text);
    }
}

/* Checks every target of kind in every dashboard; fails the test, after
 * listing every failing target, when one fails or there are no dashboards. */
static void check_dashboards(target_kind_t kind)
{
    yt_dashboard_t *dash = NULL;
    size_t ndash = 0;
    if (yt_grafana_load(&dash, &ndash) != 0 || ndash == 0)
        fail_msg("expected dashboards at %s/*.json, found none", YT_GRAFANA_DASHBOARDS);
    yt_report_t r = {.max_listed = MAX_LISTED};
    walk_t w = {.kind = kind, .r = &r};
    if (kind == T_SQL) {
        w.pg = PQconnectdb(g.c.env->pg_dsn);
        if (PQstatus(w.pg) != CONNECTION_OK)
            fail_msg("cannot connect to PostgreSQL: %s", PQerrorMessage(w.pg));
        PGresult *res = PQexec(w.pg, "SET statement_timeout = '10s'");
        PQclear(res);
    }
    int dashboards = 0;
    for (size_t i = 0; i < ndash; i++) {
        const char *file = dash[i].file;
        if (!dash[i].doc) {
            yt_report_add(&r, "%s: not valid JSON: line %d: %s", file, dash[i].error.line,
                          dash[i].error.text);
            continue;
        }
        json_t *d = yt_grafana_dashboard(dash[i].doc);
        w.t = (yt_grafana_tpl_t){.dash = d,
                                 .uid = json_string_value(json_object_get(d, "uid")) ?: file,
                                 .values = fixed_values,
                                 .query = query_variable};
        int before = w.checked;
        yt_grafana_each_panel(d, check_panel, &w);
        printf("test_prometheus: dashboard %s (%s): %d %s targets\n", w.t.uid, file,
               w.checked - before, kind == T_PROM ? "Prometheus" : "PostgreSQL");
        dashboards++;
        yt_str_free(&w.t.unresolved);
    }
    yt_grafana_free(dash, ndash);
    if (w.pg)
        PQfinish(w.pg);
    int checked = w.checked;
    const char *what = kind == T_PROM ? "dashboard Prometheus targets" : "dashboard SQL targets";
    int failed = yt_report_print(&r, what);
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
    if (!g.prom.names)
        yt_prom_refresh_names(&g.prom);
    check_dashboards(T_PROM);
}

static void test_every_dashboard_sql_query_has_rows(void **state)
{
    check_dashboards(T_SQL);
}

/* ---- 5. alert rules --------------------------------------------------------- */

/* Checks the selectors of a rule's expression: names known, label names
 * present on the metric, job values one of the scrape jobs. */
static void check_rule_selectors(yt_report_t *r, const char *rule, const char *expr)
{
    yt_promql_sel_t sel[MAX_SELECTORS];
    int n = yt_promql_selectors(expr, sel, MAX_SELECTORS);
    if (n == 0)
        yt_report_add(r, "rule %s: no metric selector found in: %s", rule,
                      yt_one_line(expr, YT_EXCERPT));
    for (int i = 0; i < n; i++) {
        yt_promql_sel_t *s = &sel[i];
        int seen = 0;
        for (int k = 0; k < i; k++)
            seen = seen || strcmp(sel[k].text, s->text) == 0 ||
                   (s->name[0] && !yt_prom_knows(&g.prom, s->name) &&
                    strcmp(sel[k].name, s->name) == 0);
        if (seen)
            continue;
        if (s->job[0] && strcmp(s->job, "yard-gateway") && strcmp(s->job, "yard-worker"))
            yt_report_add(r, "rule %s: selector %s names job \"%s\"; the scrape jobs are "
                             "yard-gateway and yard-worker", rule, yt_one_line(s->text, 120),
                          s->job);
        if (!s->name[0])
            continue;
        if (!yt_prom_knows(&g.prom, s->name)) {
            yt_report_add(r, "rule %s: metric %s is unknown to Prometheus (nobody exports it)%s",
                          rule, s->name,
                          strchr(s->name, ':') ? " - a recording rule's output that is empty"
                                               : "");
            continue;
        }
        char have[1024];
        yt_prom_label_names(&g.prom, s->name, have, sizeof have);
        for (int k = 0; k < s->nlabels; k++)
            if (!yt_cset_has(have, s->labels[k], strlen(s->labels[k])))
                yt_report_add(r, "rule %s: selector %s matches on label %s, which no series of "
                                 "%s has (labels:%s)", rule, yt_one_line(s->text, 120),
                              s->labels[k], s->name, have);
    }
}

static void test_every_alert_rule_loads_evaluates_and_uses_exported_metrics(void **state)
{
    if (!g.rules_loaded)
        fail_msg("the rule file is not loaded: %s", yt_one_line(g.rules_why, 600));
    if (!g.prom.names)
        yt_prom_refresh_names(&g.prom);
    /* Wait until every rule has been evaluated (health leaves "unknown"). */
    json_t *d = NULL;
    char why[400];
    int total = 0;
    if (yt_prom_rules(&d, &total, &g.prom, RULE_EVAL_WAIT_MS, why, sizeof why) != 0)
        fail_msg("GET /api/v1/rules: %s", why);
    if (total == 0) {
        json_decref(d);
        fail_msg("expected rules in %s, Prometheus loaded none", RULES_FILE);
    }
    yt_report_t r = {.max_listed = MAX_LISTED};
    size_t i, j;
    json_t *grp, *rule;
    json_array_foreach(json_object_get(d, "groups"), i, grp)
        json_array_foreach(json_object_get(grp, "rules"), j, rule) {
            const char *name = json_string_value(json_object_get(rule, "name")) ?: "?";
            const char *query = json_string_value(json_object_get(rule, "query")) ?: "";
            const char *health = json_string_value(json_object_get(rule, "health")) ?: "?";
            const char *err = json_string_value(json_object_get(rule, "lastError")) ?: "";
            if (strcmp(health, "ok") != 0 || err[0])
                yt_report_add(&r, "rule %s (group %s): health %s, last error: %s\n    expr: %s",
                              name, json_string_value(json_object_get(grp, "name")) ?: "?",
                              health, err[0] ? yt_one_line(err, YT_EXCERPT) : "-",
                              yt_one_line(query, YT_EXCERPT));
            check_rule_selectors(&r, name, query);
        }
    json_decref(d);
    printf("test_prometheus: %d rules in %s\n", total, RULES_FILE);
    int failed = yt_report_print(&r, "alert rules");
    if (failed)
        fail_msg("%d problems in the %d rules of %s (listed above)", failed, total, RULES_FILE);
}

/* ---- 6. the metrics contract ------------------------------------------------ */

/* Which processes (YT_PROC_* bits) have series of name, from the instance
 * label. */
static unsigned present_on(const char *name)
{
    int port[NPROCS];
    char q[300], have[600], inst[40];
    process_ports(port);
    snprintf(q, sizeof q, "group by (instance) ({__name__=\"%s\"})", name);
    yt_prom_result_labels(&g.prom, q, "instance", have, sizeof have);
    unsigned bits = 0;
    for (int k = 0; k < NPROCS; k++) {
        snprintf(inst, sizeof inst, "127.0.0.1:%d", port[k]);
        if (yt_cset_has(have, inst, strlen(inst)))
            bits |= 1u << k;
    }
    return bits;
}

/* Reports each item of the comma list want that the comma set have lacks,
 * as "<subject>: no <what><item><end> (<have_what>:<have>)". */
static void expect_items(yt_report_t *r, const char *have, const char *want, const char *subject,
                         const char *what, const char *end, const char *have_what)
{
    for (const char *p = want; *p;) {
        size_t n = strcspn(p, ",");
        if (!yt_cset_has(have, p, n))
            yt_report_add(r, "%s: no %s%.*s%s (%s:%s)", subject, what, (int)n, p, end, have_what,
                          have);
        p += n + (p[n] == ',');
    }
}

/* Expects an instant query to return the label values want (comma list,
 * each followed by a comma) for label; reports what is missing. */
static void expect_values(yt_report_t *r, const char *expr, const char *label, const char *want)
{
    char have[600], what[100];
    yt_prom_result_labels(&g.prom, expr, label, have, sizeof have);
    snprintf(what, sizeof what, "series with %s=\"", label);
    expect_items(r, have, want, expr, what, "\"", "have");
}

static void test_every_contract_metric_is_known_to_prometheus(void **state)
{
    if (yt_prom_refresh_names(&g.prom) != 0)
        fail_msg("cannot read /api/v1/label/__name__/values");
    static const char *const proc[NPROCS] = {"gateway", "worker-execute", "worker-schedule",
                                             "worker-audit"};
    yt_report_t r = {.max_listed = MAX_LISTED};
    yt_str_t missing = {0};
    for (size_t i = 0; i < yt_contract_len; i++) {
        const yt_metric_t *m = &yt_contract[i];
        int histogram = strcmp(m->kind, "histogram") == 0;
        char name[200], labels[1024], want[200];
        /* A histogram is stored as series: its _bucket ones carry le. */
        snprintf(name, sizeof name, "%s%s", m->name, histogram ? "_bucket" : "");
        snprintf(want, sizeof want, "%s%s", m->labels, histogram ? "le," : "");
        if (!yt_prom_knows(&g.prom, name)) {
            yt_str_addf(&missing, "%s%s", missing.len ? " " : "", name);
            continue;
        }
        unsigned have = present_on(name);
        for (int k = 0; k < NPROCS; k++)
            if ((m->procs & (1u << k)) && !(have & (1u << k)))
                yt_report_add(&r, "%s: exported, but not by %s", name, proc[k]);
        yt_prom_label_names(&g.prom, name, labels, sizeof labels);
        expect_items(&r, labels, want, name, "label ", "", "labels");
    }
    if (missing.len)
        yt_report_add(&r, "metrics of the contract Prometheus does not know: %s", missing.s);
    yt_str_free(&missing);
    if (yt_prom_knows(&g.prom, "yard_build_info"))
        expect_values(&r, "yard_build_info == 1", "program",
                      "gateway,worker-execute,worker-schedule,worker-audit,");
    if (yt_prom_knows(&g.prom, "yard_ready")) {
        json_t *d = NULL;
        char why[400];
        if (yt_prom_query(&d, &g.prom, "yard_ready != 1", why, sizeof why) > 0) {
            char *txt = json_dumps(json_object_get(d, "result"), JSON_COMPACT);
            yt_report_add(&r, "yard_ready != 1 on: %s", yt_one_line(txt, YT_EXCERPT));
            free(txt);
        }
        json_decref(d);
    }
    if (yt_prom_knows(&g.prom, "yard_consumer_pending"))
        expect_values(&r, "yard_consumer_pending", "consumer", "submissions,schedule,");
    if (yt_prom_knows(&g.prom, "yard_consumer_ack_pending"))
        expect_values(&r, "yard_consumer_ack_pending", "consumer", "submissions,schedule,");
    if (yt_prom_knows(&g.prom, "yard_jobs_published_total"))
        expect_values(&r, "yard_jobs_published_total", "outcome", "accepted,duplicate,");
    if (yt_prom_knows(&g.prom, "yard_jobs_completed_total"))
        expect_values(&r, "yard_jobs_completed_total", "outcome",
                      "succeeded,retry,dead,timeout,cancelled,");
    if (yt_prom_knows(&g.prom, "yard_worker_queue_served"))
        expect_values(&r, "yard_worker_queue_served == 1", "queue", "default,");
    int failed = yt_report_print(&r, "the metrics contract");
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
