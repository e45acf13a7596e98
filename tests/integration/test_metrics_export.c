/*
 * test_metrics_export.c - the metrics contract of issue 11 and W3C traces,
 * end to end: the real yard-gateway and a yard-worker of every role
 * (execute, schedule, audit) against real nats-server and PostgreSQL.
 *
 * One environment serves the file. The gateway serves the queues `default`
 * and `idle`; the execute worker runs only `default` (so a job of `idle`
 * waits), retries after 50 to 100 ms and names at most 2 job types
 * (YARD_METRICS_MAX_TYPES=2).
 *   1. One job succeeds (echo), one is retried then dead (fail, retryable,
 *      max_attempts 2), one has a type no handler knows (dead at once: its
 *      type is the third seen, counted as "other"), one waits in `idle`.
 *      Then /metrics of the gateway and of each worker passes
 *      `promtool check metrics`, holds every family the contract names for
 *      that process (with its type), and the samples that must have data
 *      have it (build info 1, ready 1, statements timed, a retry, two dead
 *      letters, the waiting job's age...).
 *   2. Traces: a job submitted with `traceparent: 00-<trace>-<parent>-01`
 *      that fails once then dies has its trace id in the gateway's access
 *      log, in the execute worker's log lines about it, and in
 *      jobs.trace_id / jobs.traceparent; a scheduled job's trace id is in
 *      the schedule role's log; a job sent without traceparent gets the
 *      gateway's new one, logged and stored alike.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include <jansson.h>

#include "log.h"
#include "version.h"
#include "yt_contract.h"
#include "yt_http.h"
#include "yt_workers.h"

#define WAIT_JOB_MS 20000
#define WAIT_METRICS_MS 30000 /* the gateway's gauges refresh every 5 s */
#define WAIT_LOG_MS 5000
#define PROMTOOL_OUT_MAX 8192

#define TRACE_A "4bf92f3577b34da6a3ce929d0e0e4736"
#define TRACE_B "0af7651916cd43dd8448eb211c80319c"
#define PARENT "00f067aa0ba902b7"

static char *const cluster_env[] = {"YARD_JS_QUEUES=default,idle", "YARD_LOG_LEVEL=info", NULL};
static char *const exec_env[] = {"YARD_JS_QUEUES=default,idle", "YARD_LOG_LEVEL=info",
                                 "YARD_RETRY_BASE_MS=50",       "YARD_RETRY_CAP_MS=100",
                                 "YARD_METRICS_MAX_TYPES=2",    NULL};

static struct {
    yt_cluster_t c;
} g;

/* ---- setup ------------------------------------------------------------------ */

static int setup(void **state)
{
    yard_log_init("test_metrics_export", YARD_LOG_ERROR);
    if (yt_cluster_start(&g.c, cluster_env) != 0)
        return -1;
    if (yt_worker_start(&g.c.exec, g.c.env, "execute", "default", exec_env, 0) != 0 ||
        yt_worker_start(&g.c.sched, g.c.env, "schedule", NULL, cluster_env, 0) != 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    yt_cluster_stop(&g.c);
    return 0;
}

/* ---- jobs ------------------------------------------------------------------- */

/* POSTs body to /v1/jobs with traceparent tp (NULL: none); expects 202 and
 * copies the job's id into id. */
static void submit(const char *body, const char *tp, char id[YT_JOB_ID_MAX])
{
    char tp_header[128];
    const char *headers[3] = {"Content-Type: application/json", NULL, NULL};
    if (tp) {
        snprintf(tp_header, sizeof tp_header, "traceparent: %s", tp);
        headers[1] = tp_header;
    }
    yt_http_resp_t r;
    int st = yt_http_request(&r, g.c.port, "POST", "/v1/jobs", headers, body, strlen(body));
    json_t *doc = st == 202 ? json_loadb(r.body, r.body_len, 0, NULL) : NULL;
    const char *s = json_string_value(json_object_get(doc, "id"));
    if (!s || strlen(s) >= YT_JOB_ID_MAX)
        fail_msg("POST /v1/jobs %s: expected 202 with an id, got %d: %s", body, st,
                 yt_http_body_excerpt(&r));
    snprintf(id, YT_JOB_ID_MAX, "%s", s);
    json_decref(doc);
    yt_http_resp_free(&r);
}

static void wait_status(const char *id, const char *want)
{
    char got[64];
    if (yt_job_wait_status(g.c.port, id, want, WAIT_JOB_MS, got, sizeof got) != 0) {
        yt_worker_log_tail(g.c.env, &g.c.exec);
        fail_msg("job %s: expected status %s within %d ms, got %s", id, want, WAIT_JOB_MS, got);
    }
}

/* ---- reading /metrics -------------------------------------------------------------- */

/* One process to scrape: its program label and metrics port. */
typedef struct {
    const char *program;
    int port;
    char *text; /* the last /metrics body (malloc'd) */
} scrape_t;

static void scrape(scrape_t *s)
{
    yt_http_resp_t r;
    int st = yt_http_request(&r, s->port, "GET", "/metrics", NULL, NULL, 0);
    if (st != 200)
        fail_msg("%s: expected GET /metrics to answer 200, got %d", s->program, st);
    free(s->text);
    s->text = strdup(r.body);
    yt_http_resp_free(&r);
    assert_non_null(s->text);
}

/* The value of the sample line that starts with series followed by a
 * blank (series is `name` or `name{labels}` exactly as rendered). Returns 1
 * and sets *out, or 0 when there is no such line. */
static int series_value(const char *text, const char *series, double *out)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ') {
            *out = strtod(p + n + 1, NULL);
            return 1;
        }
    }
    return 0;
}

/* Nonzero when text declares family name with type kind. */
static int family_present(const char *text, const char *name, const char *kind)
{
    char line[256];
    snprintf(line, sizeof line, "# TYPE %s %s\n", name, kind);
    if (strncmp(text, line, strlen(line)) == 0)
        return 1;
    snprintf(line, sizeof line, "\n# TYPE %s %s\n", name, kind);
    return strstr(text, line) != NULL;
}

/* The first unmet expectation of a round of checks. */
typedef struct {
    char why[1024];
} verdict_t;

enum { OP_EQ, OP_GT, OP_GE, OP_ABSENT };

/* Expects the sample series of s to compare with v by op (OP_ABSENT: no
 * such line at all); records the first failure in vd. */
static void expect(verdict_t *vd, const scrape_t *s, const char *series, int op, double v)
{
    double got = 0;
    int found = series_value(s->text, series, &got);
    int ok = op == OP_ABSENT ? !found
             : !found        ? 0
             : op == OP_EQ   ? got == v
             : op == OP_GT   ? got > v
                             : got >= v;
    if (ok || vd->why[0])
        return;
    static const char *const ops[] = {"==", ">", ">=", "absent"};
    if (found)
        snprintf(vd->why, sizeof vd->why, "%s /metrics: expected %s %s %g, got %g", s->program,
                 series, ops[op], v, got);
    else if (op != OP_ABSENT)
        snprintf(vd->why, sizeof vd->why, "%s /metrics: expected a sample %s %s %g, there is "
                 "none", s->program, series, ops[op], v);
    else
        snprintf(vd->why, sizeof vd->why, "%s /metrics: expected no sample %s, got %g",
                 s->program, series, got);
}

/* Expects every family the contract (yt_contract.h) asks of proc (a
 * YT_PROC_* bit) on s, with its type. */
static void expect_families(verdict_t *vd, const scrape_t *s, unsigned proc)
{
    for (size_t i = 0; i < yt_contract_len && !vd->why[0]; i++) {
        const yt_metric_t *m = &yt_contract[i];
        if ((m->procs & proc) && !family_present(s->text, m->name, m->kind))
            snprintf(vd->why, sizeof vd->why, "%s /metrics: expected the %s family %s, it is "
                     "missing", s->program, m->kind, m->name);
    }
}

/* What every process must show: the common families and their samples. */
static void expect_common(verdict_t *vd, const scrape_t *s)
{
    char series[256];
    snprintf(series, sizeof series, "yard_build_info{program=\"%s\",version=\"%s\",commit=\"%s\"}",
             s->program, YARD_VERSION, yard_build_commit());
    expect(vd, s, series, OP_EQ, 1);
    snprintf(series, sizeof series, "yard_ready{program=\"%s\"}", s->program);
    expect(vd, s, series, OP_EQ, 1);
    snprintf(series, sizeof series, "yard_pg_query_duration_seconds_count{program=\"%s\"}",
             s->program);
    expect(vd, s, series, OP_GT, 0);
    snprintf(series, sizeof series, "yard_pg_query_duration_seconds_bucket{program=\"%s\","
             "le=\"+Inf\"}", s->program);
    expect(vd, s, series, OP_GT, 0);
    snprintf(series, sizeof series, "yard_pg_errors_total{program=\"%s\"}", s->program);
    expect(vd, s, series, OP_GE, 0);
    snprintf(series, sizeof series, "yard_nats_rtt_seconds{program=\"%s\"}", s->program);
    expect(vd, s, series, OP_GT, 0);
    snprintf(series, sizeof series, "yard_nats_errors_total{program=\"%s\"}", s->program);
    expect(vd, s, series, OP_GE, 0);
}

/* Runs `promtool check metrics` on s's text; fails the test with what it
 * said when it complains about anything at all. */
static void promtool_check(const scrape_t *s)
{
    char in[400], out[420], cmd[1000], said[PROMTOOL_OUT_MAX] = "";
    snprintf(in, sizeof in, "%s/metrics-%s.txt", g.c.env->dir, s->program);
    snprintf(out, sizeof out, "%s.promtool", in);
    FILE *f = fopen(in, "w");
    assert_non_null(f);
    fputs(s->text, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "promtool check metrics < '%s' > '%s' 2>&1", in, out);
    int status = system(cmd);
    f = fopen(out, "r");
    size_t n = f ? fread(said, 1, sizeof said - 1, f) : 0;
    said[n] = '\0';
    if (f)
        fclose(f);
    if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) == 127)
        fail_msg("expected promtool to run (Debian's prometheus package; `make deps`), got %s: "
                 "%s", status == -1 ? "no shell" : yt_wait_status_text(status), said);
    int code = WEXITSTATUS(status);
    if (code != 0 || said[0])
        fail_msg("%s /metrics: expected `promtool check metrics` to accept it, got exit %d "
                 "and:\n%s\n(the text is in %s)", s->program, code, said, in);
}

static void test_every_metric_of_the_contract(void **state)
{
    char ok[YT_JOB_ID_MAX], retried[YT_JOB_ID_MAX], unknown[YT_JOB_ID_MAX], idle[YT_JOB_ID_MAX];
    /* One at a time, so the types are seen in this order: echo, fail, then
     * the unknown one (the third: "other"). */
    submit("{\"type\":\"echo\",\"payload\":{\"n\":1}}", NULL, ok);
    wait_status(ok, "succeeded");
    submit("{\"type\":\"fail\",\"payload\":{\"retryable\":true},\"max_attempts\":2}", NULL,
           retried);
    wait_status(retried, "dead");
    submit("{\"type\":\"no-such-type\"}", NULL, unknown);
    wait_status(unknown, "dead");
    submit("{\"type\":\"noop\",\"queue\":\"idle\"}", NULL, idle);
    wait_status(idle, "queued");

    scrape_t procs[4] = {{"gateway", g.c.port, NULL},
                         {"worker-execute", g.c.exec.metrics_port, NULL},
                         {"worker-schedule", g.c.sched.metrics_port, NULL},
                         {"worker-audit", g.c.audit.metrics_port, NULL}};
    const unsigned bits[4] = {YT_PROC_GATEWAY, YT_PROC_EXECUTE, YT_PROC_SCHEDULE, YT_PROC_AUDIT};
    scrape_t *gw = &procs[0], *ex = &procs[1], *sc = &procs[2], *au = &procs[3];
    verdict_t vd;
    long long deadline = yt_now_ms() + WAIT_METRICS_MS;
    do {
        memset(&vd, 0, sizeof vd);
        for (int i = 0; i < 4; i++) {
            scrape(&procs[i]);
            expect_families(&vd, &procs[i], bits[i]);
            expect_common(&vd, &procs[i]);
        }

        expect(&vd, gw, "yard_jobs_published_total{queue=\"default\",outcome=\"accepted\"}",
               OP_GE, 3);
        expect(&vd, gw, "yard_http_requests_total{route=\"POST /v1/jobs\",code=\"202\"}", OP_GE,
               4);
        expect(&vd, gw, "yard_http_auth_failures_total{code=\"401\"}", OP_EQ, 0);
        expect(&vd, gw, "yard_dlq_size{queue=\"default\"}", OP_GE, 2);
        expect(&vd, gw, "yard_queue_pending{queue=\"idle\"}", OP_EQ, 1);
        expect(&vd, gw, "yard_queue_oldest_pending_age_seconds{queue=\"idle\"}", OP_GT, 0);
        expect(&vd, gw, "yard_queue_oldest_pending_age_seconds{queue=\"default\"}", OP_EQ, 0);
        expect(&vd, gw, "yard_consumer_pending{consumer=\"submissions\"}", OP_GE, 0);
        expect(&vd, gw, "yard_consumer_ack_pending{consumer=\"submissions\"}", OP_GE, 0);
        expect(&vd, gw, "yard_consumer_pending{consumer=\"schedule\"}", OP_GE, 0);
        expect(&vd, gw, "yard_consumer_ack_pending{consumer=\"schedule\"}", OP_GE, 0);

        expect(&vd, ex, "yard_jobs_retried_total{queue=\"default\"}", OP_GE, 1);
        expect(&vd, ex, "yard_dlq_published_total{queue=\"default\"}", OP_GE, 2);
        expect(&vd, ex,
               "yard_jobs_completed_total{queue=\"default\",type=\"echo\",outcome=\"succeeded\"}",
               OP_GE, 1);
        expect(&vd, ex,
               "yard_jobs_completed_total{queue=\"default\",type=\"fail\",outcome=\"retry\"}",
               OP_GE, 1);
        expect(&vd, ex,
               "yard_jobs_completed_total{queue=\"default\",type=\"fail\",outcome=\"dead\"}",
               OP_GE, 1);
        expect(&vd, ex,
               "yard_jobs_completed_total{queue=\"default\",type=\"other\",outcome=\"failed\"}",
               OP_GE, 1);
        expect(&vd, ex,
               "yard_jobs_completed_total{queue=\"default\",type=\"no-such-type\","
               "outcome=\"failed\"}",
               OP_ABSENT, 0);
        expect(&vd, ex, "yard_job_duration_seconds_count{queue=\"default\"}", OP_GE, 4);
        expect(&vd, ex, "yard_job_end_to_end_seconds_count{queue=\"default\"}", OP_GE, 3);
        expect(&vd, ex, "yard_worker_jobs_in_flight{role=\"execute\"}", OP_EQ, 0);
        expect(&vd, ex, "yard_worker_busy_seconds_total{role=\"execute\",part=\"handler\"}",
               OP_GT, 0);
        expect(&vd, ex, "yard_worker_queue_served{queue=\"default\"}", OP_EQ, 1);
        expect(&vd, ex, "yard_worker_queue_served{queue=\"idle\"}", OP_ABSENT, 0);

        expect(&vd, sc, "yard_jobs_rescued_total{queue=\"default\"}", OP_EQ, 0);
        expect(&vd, au, "yard_worker_jobs_in_flight{role=\"audit\"}", OP_GE, 0);
        if (!vd.why[0])
            break;
        yt_nap_ms(250);
    } while (yt_now_ms() < deadline);
    if (vd.why[0])
        fail_msg("%s (after %d ms)", vd.why, WAIT_METRICS_MS);
    for (int i = 0; i < 4; i++)
        promtool_check(&procs[i]);
    for (int i = 0; i < 4; i++)
        free(procs[i].text);
}

/* ---- traces ------------------------------------------------------------------- */

/* The whole log of process name (<dir>/<name>.log), malloc'd, or NULL. */
static char *log_read(const char *name)
{
    char path[400];
    snprintf(path, sizeof path, "%s/%s.log", g.c.env->dir, name);
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, len = 0, n;
    char *buf = malloc(cap);
    while (buf && (n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (len + 1 == cap) {
            char *grown = realloc(buf, cap * 2);
            if (!grown) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = grown;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf)
        buf[len] = '\0';
    return buf;
}

/* Nonzero when one line of text holds both a and b (b may be NULL). */
static int log_has(const char *text, const char *a, const char *b)
{
    for (const char *p = text; p && (p = strstr(p, a)) != NULL; p++) {
        const char *start = p, *end = strchr(p, '\n');
        while (start > text && start[-1] != '\n')
            start--;
        if (!end)
            end = p + strlen(p);
        if (!b)
            return 1;
        const char *q = strstr(start, b);
        if (q && q < end)
            return 1;
    }
    return 0;
}

/* Waits up to WAIT_LOG_MS for a line of process name's log holding
 * `"trace_id":"<trace>"` (and `"job_id":"<id>"` when id is not NULL). */
static void expect_logged(const char *name, const char *what, const char *trace, const char *id)
{
    char t[64], j[80];
    snprintf(t, sizeof t, "\"trace_id\":\"%s\"", trace);
    snprintf(j, sizeof j, "\"job_id\":\"%s\"", id ? id : "");
    long long deadline = yt_now_ms() + WAIT_LOG_MS;
    for (;;) {
        char *text = log_read(name);
        int found = text && log_has(text, t, id ? j : NULL);
        free(text);
        if (found)
            return;
        if (yt_now_ms() >= deadline)
            break;
        yt_nap_ms(50);
    }
    yt_log_tail(g.c.env, name);
    fail_msg("expected %s's log (%s/%s.log) to hold a line with %s%s%s, none does (tail "
             "above)", what, g.c.env->dir, name, t, id ? " and " : "", id ? j : "");
}

/* Expects jobs.trace_id and jobs.traceparent of job id. */
static void expect_stored(const char *id, const char *trace, const char *tp)
{
    char got[80] = "", got_tp[80] = "";
    yt_sql_text(g.c.env, got, sizeof got, "SELECT trace_id FROM jobs WHERE id = '%s'", id);
    yt_sql_text(g.c.env, got_tp, sizeof got_tp, "SELECT traceparent FROM jobs WHERE id = '%s'",
                id);
    if (strcmp(got, trace) != 0 || (tp && strcmp(got_tp, tp) != 0))
        fail_msg("job %s: expected jobs.trace_id %s and traceparent %s, got `%s` and `%s`", id,
                 trace, tp ? tp : "(any)", got, got_tp);
}


static void test_trace_id_travels_end_to_end(void **state)
{
    static const char tp_a[] = "00-" TRACE_A "-" PARENT "-01";
    static const char tp_b[] = "00-" TRACE_B "-" PARENT "-01";
    char failing[YT_JOB_ID_MAX], scheduled[YT_JOB_ID_MAX], plain[YT_JOB_ID_MAX];
    char at[40], body[200], trace[80] = "";

    /* Fails once (a retry the worker logs), then dies (logged again). */
    submit("{\"type\":\"fail\",\"payload\":{\"retryable\":true},\"max_attempts\":2}", tp_a,
           failing);
    wait_status(failing, "dead");
    expect_logged("gateway", "the gateway (access log)", TRACE_A, NULL);
    expect_logged(g.c.exec.name, "the execute worker", TRACE_A, failing);
    expect_stored(failing, TRACE_A, tp_a);

    /* A job held by the schedule role until its run_at. */
    yt_rfc3339_in(at, 1000);
    snprintf(body, sizeof body, "{\"type\":\"echo\",\"run_at\":\"%s\"}", at);
    submit(body, tp_b, scheduled);
    wait_status(scheduled, "succeeded");
    expect_logged("gateway", "the gateway (access log)", TRACE_B, NULL);
    expect_logged(g.c.sched.name, "the schedule worker", TRACE_B, scheduled);
    /* A job that succeeds at once is in the execute worker's log too. */
    expect_logged(g.c.exec.name, "the execute worker", TRACE_B, scheduled);
    expect_stored(scheduled, TRACE_B, tp_b);

    /* No traceparent: the gateway makes one, logs it and passes it on. */
    submit("{\"type\":\"echo\"}", NULL, plain);
    wait_status(plain, "succeeded");
    yt_sql_text(g.c.env, trace, sizeof trace, "SELECT trace_id FROM jobs WHERE id = '%s'", plain);
    if (strlen(trace) != 32 || strspn(trace, "0123456789abcdef") != 32)
        fail_msg("job %s sent without traceparent: expected the gateway's trace id (32 hex "
                 "digits) in jobs.trace_id, got `%s`", plain, trace);
    expect_logged("gateway", "the gateway (access log)", trace, NULL);
    expect_logged(g.c.exec.name, "the execute worker", trace, plain);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_metric_of_the_contract),
        cmocka_unit_test(test_trace_id_travels_end_to_end),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
