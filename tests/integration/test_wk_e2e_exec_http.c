/*
 * test_wk_e2e_exec_http.c - the `exec` and `http` handlers end to end:
 * real yard-gateway and yard-worker processes, real nats-server and
 * PostgreSQL, programs and an HTTP server written by the test.
 *
 * The test writes an exec config and /bin/sh scripts into its folder and
 * starts one execute worker on it (YARD_EXEC_CONFIG, YARD_RETRY_BASE_MS=100,
 * YARD_EGRESS_ALLOW=127.0.0.1/32 for the test's HTTP server):
 *   exec-ok        prints JSON built from its stdin: the job's result;
 *   exec-tempfail  exits 75 (EX_TEMPFAIL) on attempts 1 and 2, succeeds on
 *                  3: two `retry` attempts, then succeeded;
 *   exec-slow      (timeout_s 1) starts a background child, writes both pids
 *                  and sleeps: attempt 1 is recorded `timeout` after about a
 *                  second, and the program and its child are gone.
 * The test becomes a child subreaper, so the orphaned child is reparented to
 * it and reaped here once killed: kill(pid, 0) then fails for both.
 * An HTTP server thread on 127.0.0.1 answers /ok with 200, /flaky with 503
 * once then 200, /missing with 404: the http jobs end succeeded, succeeded
 * after one `retry` attempt, and dead after one `failed` attempt. /slow503
 * answers 503 after 700 ms: a job cancelled (202) while it waits for that
 * answer must end `cancelled` within 2 s and never be retried.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "yt_http.h"
#include "yt_workers.h"

/* /slow503 answers 503 after this long. */
#define SLOW_MS 700

/* The test's HTTP server. */
typedef struct {
    int fd, port;
    pthread_t thread;
    atomic_int stop;
    atomic_int hits_ok, hits_flaky, hits_missing, hits_slow, hits_other;
} srv_t;

static struct {
    yt_cluster_t c;
    srv_t srv;
    char exec_var[400];
} g;

/* ---- files the test writes ---------------------------------------------------- */

static int write_exec_files(void)
{
    static const char ok_sh[] =
        "#!/bin/sh\n"
        "# exec-ok: the result holds the payload read from stdin\n"
        "p=$(cat)\n"
        "printf '{\"got\":%s,\"attempt\":%s,\"job\":\"%s\"}\\n' \"$p\" \"$YARD_JOB_ATTEMPT\" "
        "\"$YARD_JOB_ID\"\n";
    static const char tempfail_sh[] =
        "#!/bin/sh\n"
        "# exec-tempfail: EX_TEMPFAIL until the third attempt\n"
        "cat >/dev/null\n"
        "if [ \"$YARD_JOB_ATTEMPT\" -ge 3 ]; then echo '{\"ok\":true}'; exit 0; fi\n"
        "echo \"not yet (attempt $YARD_JOB_ATTEMPT)\" >&2\n"
        "exit 75\n";
    static const char slow_sh[] =
        "#!/bin/sh\n"
        "# exec-slow: a background child and a long sleep; pids in the working folder\n"
        "a=$YARD_JOB_ATTEMPT\n"
        "sh -c 'echo $$ > child.'\"$a\"'.tmp && mv child.'\"$a\"'.tmp child.'\"$a\"'.pid;"
        " exec sleep 30' &\n"
        "echo $$ > parent.$a.tmp && mv parent.$a.tmp parent.$a.pid\n"
        "sleep 30\n";
    char conf[2048];
    const char *d = g.c.env->dir;
    snprintf(conf, sizeof conf,
             "# exec mappings of test_wk_e2e_exec_http\n"
             "[exec-ok]\npath = %s/ok.sh\nenv = PATH=/usr/bin:/bin\n\n"
             "[exec-tempfail]\npath = %s/tempfail.sh\nenv = PATH=/usr/bin:/bin\n\n"
             "[exec-slow]\npath = %s/slow.sh\nenv = PATH=/usr/bin:/bin\ndir = %s\n"
             "timeout_s = 1\nterm_grace_ms = 1000\n",
             d, d, d, d);
    if (yt_write_file(g.c.env, "ok.sh", ok_sh, 0755) ||
        yt_write_file(g.c.env, "tempfail.sh", tempfail_sh, 0755) ||
        yt_write_file(g.c.env, "slow.sh", slow_sh, 0755) ||
        yt_write_file(g.c.env, "exec.conf", conf, 0644))
        return -1;
    snprintf(g.exec_var, sizeof g.exec_var, "YARD_EXEC_CONFIG=%s/exec.conf", d);
    return 0;
}

/* ---- the HTTP server ---------------------------------------------------------- */

/* Answers one request on fd: reads the head and any body, replies, closes. */
static void srv_answer(srv_t *s, int fd)
{
    char buf[8192];
    size_t len = 0;
    char *end = NULL;
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    while (len < sizeof buf - 1 && !end) {
        ssize_t n = read(fd, buf + len, sizeof buf - 1 - len);
        if (n <= 0)
            return;
        len += (size_t)n;
        buf[len] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    if (!end)
        return;
    /* Read the body, if any, so closing does not reset the connection. */
    long body = 0;
    for (char *p = buf; p && p < end; p = strstr(p, "\r\n") ? strstr(p, "\r\n") + 2 : NULL)
        if (strncasecmp(p, "Content-Length:", 15) == 0)
            body = strtol(p + 15, NULL, 10);
    long have = (long)(len - (size_t)(end + 4 - buf));
    while (have < body) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0)
            break;
        have += n;
    }
    int status;
    const char *reason, *text;
    if (strncmp(buf, "GET /ok ", 8) == 0) {
        atomic_fetch_add(&s->hits_ok, 1);
        status = 200, reason = "OK", text = "{\"hello\":\"world\"}";
    } else if (strncmp(buf, "GET /flaky ", 11) == 0) {
        int first = atomic_fetch_add(&s->hits_flaky, 1) == 0;
        status = first ? 503 : 200, reason = first ? "Service Unavailable" : "OK";
        text = first ? "{\"busy\":true}" : "{\"second\":true}";
    } else if (strncmp(buf, "GET /slow503 ", 13) == 0) {
        atomic_fetch_add(&s->hits_slow, 1);
        yt_nap_ms(SLOW_MS);
        status = 503, reason = "Service Unavailable", text = "{\"slow\":true}";
    } else if (strncmp(buf, "GET /missing ", 13) == 0) {
        atomic_fetch_add(&s->hits_missing, 1);
        status = 404, reason = "Not Found", text = "{\"missing\":true}";
    } else {
        atomic_fetch_add(&s->hits_other, 1);
        status = 400, reason = "Bad Request", text = "{}";
    }
    int n = snprintf(buf, sizeof buf,
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n%s",
                     status, reason, strlen(text), text);
    ssize_t w = write(fd, buf, (size_t)n);
    (void)w;
    shutdown(fd, SHUT_WR);
}

static void *srv_main(void *arg)
{
    srv_t *s = arg;
    while (!atomic_load(&s->stop)) {
        struct pollfd p = {s->fd, POLLIN, 0};
        if (poll(&p, 1, 100) <= 0)
            continue;
        int c = accept(s->fd, NULL, NULL);
        if (c < 0)
            continue;
        srv_answer(s, c);
        close(c);
    }
    return NULL;
}

static int srv_start(srv_t *s)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    int one = 1;
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s->fd < 0)
        return -1;
    setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(s->fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(s->fd, 64) != 0 ||
        getsockname(s->fd, (struct sockaddr *)&a, &alen) != 0) {
        close(s->fd);
        s->fd = -1;
        return -1;
    }
    s->port = ntohs(a.sin_port);
    if (pthread_create(&s->thread, NULL, srv_main, s) != 0) {
        close(s->fd);
        s->fd = -1;
        return -1;
    }
    return 0;
}

static void srv_stop(srv_t *s)
{
    if (s->fd < 0)
        return;
    atomic_store(&s->stop, 1);
    pthread_join(s->thread, NULL);
    close(s->fd);
    s->fd = -1;
}

/* ---- helpers ------------------------------------------------------------------ */

static void submit(const char *body, char id[YT_JOB_ID_MAX])
{
    int st = yt_job_submit(g.c.port, body, id);
    if (st != 202)
        fail_msg("%s: expected 202, got %d", body, st);
}

static void wait_status(const char *id, const char *what, const char *want, int timeout_ms)
{
    char got[64];
    if (yt_job_wait_status(g.c.port, id, want, timeout_ms, got, sizeof got) != 0) {
        yt_worker_log_tail(g.c.env, &g.c.exec);
        fail_msg("%s job %s: expected status %s within %d ms, got %s", what, id, want,
                 timeout_ms, got);
    }
}

/* The job's attempts as "1:retry,2:succeeded" into out. */
static void attempts_text(const char *id, char *out, size_t cap)
{
    yt_sql_text(g.c.env, out, cap,
                "SELECT coalesce(string_agg(attempt || ':' || outcome, ',' ORDER BY attempt), '')"
                " FROM job_attempts WHERE job_id = '%s'", id);
}

static void expect_attempts(const char *what, const char *id, const char *want)
{
    char got[256];
    attempts_text(id, got, sizeof got);
    if (strcmp(got, want) != 0)
        fail_msg("%s job %s: expected attempts `%s`, got `%s`", what, id, want, got);
}

/* Reads a pid the exec-slow script wrote; 0 if the file is missing. */
static pid_t read_pid(const char *name)
{
    char path[400];
    int pid = 0;
    snprintf(path, sizeof path, "%s/%s", g.c.env->dir, name);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    if (fscanf(f, "%d", &pid) != 1)
        pid = 0;
    fclose(f);
    return (pid_t)pid;
}

/* Nonzero once pid is gone (reaping it if it is our zombie), within ms. */
static int gone_within(pid_t pid, int ms)
{
    long long deadline = yt_now_ms() + ms;
    for (;;) {
        waitpid(pid, NULL, WNOHANG);
        if (kill(pid, 0) != 0 && errno == ESRCH)
            return 1;
        if (yt_now_ms() >= deadline)
            return 0;
        yt_nap_ms(10);
    }
}

/* The /proc state letter of pid, for messages. */
static char proc_state(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return '?';
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *paren = strrchr(buf, ')');
    return paren && paren[1] ? paren[2] : '?';
}

/* ---- setup -------------------------------------------------------------------- */

static int setup(void **state)
{
    yard_log_init("test_wk_e2e_exec_http", YARD_LOG_ERROR);
    g.srv.fd = -1;
    /* Orphans of the worker's programs come to us, so we can reap them. */
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
        return -1;
    if (yt_cluster_start(&g.c, NULL) != 0 || write_exec_files() != 0 || srv_start(&g.srv) != 0)
        return -1;
    /* The test's HTTP server is on loopback, which the egress guard refuses
     * unless allowed. */
    char *exec_env[] = {g.exec_var, "YARD_RETRY_BASE_MS=100", "YARD_EGRESS_ALLOW=127.0.0.1/32",
                        NULL};
    return yt_worker_start(&g.c.exec, g.c.env, "execute", NULL, exec_env, 0);
}

static int teardown(void **state)
{
    yt_cluster_stop(&g.c);
    srv_stop(&g.srv);
    while (waitpid(-1, NULL, WNOHANG) > 0) /* orphans reparented to us */
        ;
    return 0;
}

/* ---- exec --------------------------------------------------------------------- */

static void test_exec_stdout_is_the_result(void **state)
{
    char id[YT_JOB_ID_MAX], result[512];
    submit("{\"type\":\"exec-ok\",\"payload\":{\"n\":42,\"s\":\"hi\"}}", id);
    wait_status(id, "exec-ok", "succeeded", 10000);
    expect_attempts("exec-ok", id, "1:succeeded");
    long long ok = yt_sql_int(g.c.env,
                              "SELECT (result->'got' = '{\"n\":42,\"s\":\"hi\"}'::jsonb"
                              " AND result->>'job' = '%s' AND result->>'attempt' = '1')::int"
                              " FROM jobs WHERE id = '%s'", id, id);
    if (ok != 1) {
        yt_sql_text(g.c.env, result, sizeof result, "SELECT result::text FROM jobs WHERE id = '%s'",
                    id);
        fail_msg("exec-ok job %s: expected result {\"got\":{\"n\":42,\"s\":\"hi\"},\"attempt\":1,"
                 "\"job\":\"<id>\"}, got %s", id, result);
    }
}

static void test_exec_exit_75_is_retried(void **state)
{
    char id[YT_JOB_ID_MAX], err[512];
    submit("{\"type\":\"exec-tempfail\",\"max_attempts\":5}", id);
    wait_status(id, "exec-tempfail", "succeeded", 15000);
    expect_attempts("exec-tempfail", id, "1:retry,2:retry,3:succeeded");
    yt_sql_text(g.c.env, err, sizeof err,
                "SELECT coalesce(error, '') FROM job_attempts WHERE job_id = '%s' AND attempt = 1",
                id);
    if (!strstr(err, "75") || !strstr(err, "not yet (attempt 1)"))
        fail_msg("exec-tempfail job %s: expected attempt 1's error to name exit 75 and hold "
                 "the stderr `not yet (attempt 1)`, got `%s`", id, err);
}

static void test_exec_timeout_kills_the_program_and_its_child(void **state)
{
    char id[YT_JOB_ID_MAX], outcome[64];
    submit("{\"type\":\"exec-slow\",\"max_attempts\":2}", id);
    long long n = yt_wait_sql(g.c.env, 1, 15000,
                              "SELECT count(*) FROM job_attempts WHERE job_id = '%s'"
                              " AND attempt = 1", id);
    if (n != 1) {
        yt_worker_log_tail(g.c.env, &g.c.exec);
        fail_msg("exec-slow job %s: expected attempt 1 recorded within 15 s, got %lld rows", id,
                 n);
    }
    yt_sql_text(g.c.env, outcome, sizeof outcome,
                "SELECT outcome || ' ' || duration_ms FROM job_attempts WHERE job_id = '%s'"
                " AND attempt = 1", id);
    long long ms = strchr(outcome, ' ') ? strtoll(strchr(outcome, ' ') + 1, NULL, 10) : -1;
    if (strncmp(outcome, "timeout ", 8) != 0 || ms < 900 || ms > 3500)
        fail_msg("exec-slow job %s (timeout_s 1): expected attempt 1 `timeout` after 1 to 3.5 s, "
                 "got `%s` ms", id, outcome);
    pid_t parent = read_pid("parent.1.pid"), child = read_pid("child.1.pid");
    if (parent <= 0 || child <= 0)
        fail_msg("exec-slow job %s: expected the script to write parent.1.pid and child.1.pid, "
                 "got pids %d and %d", id, (int)parent, (int)child);
    if (!gone_within(parent, 2000))
        fail_msg("exec-slow job %s: expected the program (pid %d) killed at the timeout, it is "
                 "still there (state %c)", id, (int)parent, proc_state(parent));
    if (!gone_within(child, 2000))
        fail_msg("exec-slow job %s: expected the program's background child (pid %d) killed "
                 "with it, it is still there (state %c)", id, (int)child, proc_state(child));
    /* The second (last) attempt times out too: the job ends dead. */
    wait_status(id, "exec-slow", "dead", 15000);
    pid_t child2 = read_pid("child.2.pid");
    if (child2 > 0 && !gone_within(child2, 2000))
        fail_msg("exec-slow job %s: expected attempt 2's background child (pid %d) killed, it "
                 "is still there (state %c)", id, (int)child2, proc_state(child2));
}

/* ---- http --------------------------------------------------------------------- */

static void http_job(const char *path, int max_attempts, char id[YT_JOB_ID_MAX])
{
    char body[256];
    snprintf(body, sizeof body,
             "{\"type\":\"http\",\"payload\":{\"url\":\"http://127.0.0.1:%d%s\"},"
             "\"max_attempts\":%d}", g.srv.port, path, max_attempts);
    submit(body, id);
}

static void test_http_200_succeeds(void **state)
{
    char id[YT_JOB_ID_MAX], result[512];
    http_job("/ok", 3, id);
    wait_status(id, "http /ok", "succeeded", 10000);
    expect_attempts("http /ok", id, "1:succeeded");
    long long ok = yt_sql_int(g.c.env,
                              "SELECT ((result->>'status')::int = 200 AND"
                              " result->>'body' = '{\"hello\":\"world\"}')::int"
                              " FROM jobs WHERE id = '%s'", id);
    if (ok != 1) {
        yt_sql_text(g.c.env, result, sizeof result, "SELECT result::text FROM jobs WHERE id = '%s'",
                    id);
        fail_msg("http /ok job %s: expected result {\"status\":200,\"body\":"
                 "\"{\\\"hello\\\":\\\"world\\\"}\"}, got %s", id, result);
    }
    if (atomic_load(&g.srv.hits_ok) != 1)
        fail_msg("http /ok: expected 1 request to the server, got %d",
                 atomic_load(&g.srv.hits_ok));
}

static void test_http_503_is_retried(void **state)
{
    char id[YT_JOB_ID_MAX];
    http_job("/flaky", 3, id);
    wait_status(id, "http /flaky", "succeeded", 10000);
    expect_attempts("http /flaky (503, then 200)", id, "1:retry,2:succeeded");
    if (atomic_load(&g.srv.hits_flaky) != 2)
        fail_msg("http /flaky: expected 2 requests to the server, got %d",
                 atomic_load(&g.srv.hits_flaky));
}

static void test_http_404_is_dead(void **state)
{
    char id[YT_JOB_ID_MAX], err[512];
    http_job("/missing", 3, id);
    wait_status(id, "http /missing", "dead", 10000);
    yt_nap_ms(300); /* a wrong retry would show up as a second request */
    expect_attempts("http /missing (404)", id, "1:failed");
    if (atomic_load(&g.srv.hits_missing) != 1)
        fail_msg("http /missing: expected 1 request to the server (no retry), got %d",
                 atomic_load(&g.srv.hits_missing));
    yt_sql_text(g.c.env, err, sizeof err, "SELECT coalesce(last_error, '') FROM jobs WHERE id = '%s'",
                id);
    if (!strstr(err, "404"))
        fail_msg("http /missing job %s: expected last_error to name the 404, got `%s`", id, err);
    if (atomic_load(&g.srv.hits_other) != 0)
        fail_msg("expected no request to other paths, got %d", atomic_load(&g.srv.hits_other));
}

static void test_http_cancel_while_waiting_is_not_retried(void **state)
{
    char id[YT_JOB_ID_MAX], status[32], attempts[256];
    http_job("/slow503", 3, id);
    long long deadline = yt_now_ms() + 10000;
    while (atomic_load(&g.srv.hits_slow) == 0 && yt_now_ms() < deadline)
        yt_nap_ms(5);
    if (atomic_load(&g.srv.hits_slow) != 1)
        fail_msg("http /slow503 job %s: expected its request to reach the server within 10 s, "
                 "got %d requests", id, atomic_load(&g.srv.hits_slow));
    /* Marked running a few tens of ms after it started (jobs.h). */
    if (yt_job_wait_status(g.c.port, id, "running", 5000, status, sizeof status) != 0)
        fail_msg("http /slow503 job %s: expected `running` within 5 s, got `%s`", id, status);
    int st = yt_job_cancel(g.c.port, id, status, sizeof status);
    long long t0 = yt_now_ms();
    if (st != 202)
        fail_msg("DELETE of running http job %s: expected 202, got %d (status `%s`)", id, st,
                 status);
    /* The answer (503, a retryable failure) comes after the cancel: the job
     * must end cancelled, not be retried. */
    const char *final[] = {"cancelled", "dead", "succeeded"};
    status[0] = '\0';
    deadline = t0 + 8000;
    for (int done = 0; !done && yt_now_ms() < deadline;) {
        yt_job_status(g.c.port, id, status, sizeof status);
        for (size_t i = 0; i < 3; i++)
            done |= strcmp(status, final[i]) == 0;
        if (!done)
            yt_nap_ms(20);
    }
    long long took = yt_now_ms() - t0;
    yt_nap_ms(1000); /* a retry would reach the server by now */
    int hits = atomic_load(&g.srv.hits_slow);
    attempts_text(id, attempts, sizeof attempts);
    if (strcmp(status, "cancelled") != 0 || took > 2000 || hits != 1)
        fail_msg("http job %s cancelled (202) while waiting for a slow 503: expected status "
                 "cancelled within 2 s and no further request, got status `%s` after %lld ms, "
                 "%d requests to the server, attempts `%s`",
                 id, status, took, hits, attempts);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exec_stdout_is_the_result),
        cmocka_unit_test(test_exec_exit_75_is_retried),
        cmocka_unit_test(test_exec_timeout_kills_the_program_and_its_child),
        cmocka_unit_test(test_http_200_succeeds),
        cmocka_unit_test(test_http_503_is_retried),
        cmocka_unit_test(test_http_404_is_dead),
        cmocka_unit_test(test_http_cancel_while_waiting_is_not_retried),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
