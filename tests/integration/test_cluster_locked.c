/*
 * test_cluster_locked.c - `make up` (ops/cluster.sh up) starts a locked-down
 * cluster. The real script starts the real cluster on free loopback ports in
 * the test's folder, then:
 *   1. .yard is mode 700, .yard/env and .yard/secrets 600;
 *   2. PostgreSQL wants a password: psql from another OS user (nobody) as
 *      postgres or the owner, without one, is refused; so is a wrong one;
 *   3. the execute worker's role cannot UPDATE or DELETE audit_log, CREATE
 *      a table (nor a temporary one), or read api_keys; the audit role cannot
 *      UPDATE audit_log either; the owner is no superuser;
 *   4. NATS wants a user: a client without one cannot connect (so cannot
 *      publish to jobs.execute.default or yard.cancel.x); the execute
 *      worker's user cannot publish a job nor a cancel (the gateway's can);
 *      the gateway's user cannot subscribe to jobs.>;
 *   5. a job posted through the gateway with the admin key of .yard/env runs
 *      to `succeeded` (every program works with its own rights).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <libpq-fe.h>
#include <nats/nats.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "yt_http.h"

#define OUT_MAX 8192
#define NROLES 4 /* the workers ops/cluster.sh starts: metrics ports base + 0..3 */

static struct {
    yt_env_t *env; /* only the folder: the script starts the servers */
    char data[400];
    int up, pg_port, nats_port, http_port;
} g;

/* Runs `ops/cluster.sh cmd`; its output (cut to OUT_MAX) goes to out.
 * Returns its exit code, or -1. */
static int cluster_sh(const char *cmd, char out[OUT_MAX])
{
    char line[1024];
    snprintf(line, sizeof line, "bash %s/ops/cluster.sh %s 2>&1", yt_src_dir(), cmd);
    FILE *p = popen(line, "r");
    if (!p) {
        snprintf(out, OUT_MAX, "popen failed");
        return -1;
    }
    size_t n = fread(out, 1, OUT_MAX - 1, p);
    out[n] = '\0';
    while (fread(line, 1, sizeof line, p) > 0)
        ;
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Runs a shell command line; its output (cut) goes to out. Exit code or -1. */
static int shell(const char *cmd, char *out, size_t cap)
{
    char buf[512];
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    while (fread(buf, 1, sizeof buf, p) > 0)
        ;
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void register_pids(void)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd,
             "for f in %s/run/*.pid; do cp \"$f\" \"%s/cluster-$(basename \"$f\")\"; done",
             g.data, g.env->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not copy the cluster's pid files\n");
}

static int port_free(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), ok;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0)
        return 0;
    ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

static int free_port_run(void)
{
    for (int tries = 0; tries < 100; tries++) {
        int base = yt_free_port(), ok = base > 0 && base + NROLES < 65536;
        for (int i = 1; ok && i < NROLES; i++)
            ok = port_free(base + i);
        if (ok)
            return base;
    }
    return -1;
}

static int set_port(const char *var)
{
    char v[16];
    int port = yt_free_port();
    snprintf(v, sizeof v, "%d", port);
    setenv(var, v, 1);
    return port;
}

/* The value of `export NAME=value` / `NAME=value` in file (data-relative),
 * into out; 0 or -1. */
static int file_value(const char *file, const char *name, char *out, size_t cap)
{
    char path[500], line[1024];
    size_t nl = strlen(name);
    int rc = -1;
    snprintf(path, sizeof path, "%s/%s", g.data, file);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    while (rc != 0 && fgets(line, sizeof line, f)) {
        char *p = line;
        if (strncmp(p, "export ", 7) == 0)
            p += 7;
        if (strncmp(p, name, nl) == 0 && p[nl] == '=') {
            p[nl + 1 + strcspn(p + nl + 1, "\n")] = '\0';
            snprintf(out, cap, "%s", p + nl + 1);
            rc = 0;
        }
    }
    fclose(f);
    return rc;
}

/* The password .yard/secrets holds for program (owner, gateway, execute...). */
static void password(const char *program, char *out, size_t cap)
{
    char name[64];
    snprintf(name, sizeof name, "PW_%s", program);
    if (file_value("secrets", name, out, cap) != 0 || !out[0])
        fail_msg("expected a password for %s in %s/secrets", program, g.data);
}

static int setup(void **state)
{
    char out[OUT_MAX];
    if (yt_env_create(&g.env, 0) != 0)
        return -1;
    snprintf(g.data, sizeof g.data, "%s/yard", g.env->dir);
    setenv("YARD_DATA_DIR", g.data, 1);
    setenv("YARD_BIN", yt_bin_dir(), 1);
    g.http_port = set_port("YARD_UP_HTTP_PORT");
    g.nats_port = set_port("YARD_UP_NATS_PORT");
    set_port("YARD_UP_NATS_MON_PORT");
    g.pg_port = set_port("YARD_UP_PG_PORT");
    int base = free_port_run();
    if (base < 0)
        return -1;
    char v[16];
    snprintf(v, sizeof v, "%d", base);
    setenv("YARD_UP_METRICS_PORT_BASE", v, 1);
    unsetenv("YARD_API_KEY");
    unsetenv("YARD_ID_SECRET");
    unsetenv("YARD_NOTIFY_SECRET");
    int rc = cluster_sh("up", out);
    g.up = 1;
    register_pids();
    if (rc != 0) {
        fprintf(stderr, "expected `cluster.sh up` to exit 0, got %d:\n%s\n", rc, out);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    char out[OUT_MAX];
    if (g.up && cluster_sh("down", out) != 0)
        fprintf(stderr, "cluster.sh down:\n%s\n", out);
    yt_env_destroy(g.env);
    return 0;
}

static void expect_mode(const char *rel, unsigned mode)
{
    char path[500];
    struct stat st;
    snprintf(path, sizeof path, "%s%s%s", g.data, rel[0] ? "/" : "", rel);
    if (stat(path, &st) != 0)
        fail_msg("expected %s to exist", path);
    if ((st.st_mode & 07777) != mode)
        fail_msg("expected %s at mode %o, got %o", path, mode, (unsigned)(st.st_mode & 07777));
}

static PGconn *pg_as(const char *role, const char *program)
{
    char pw[128], dsn[512];
    password(program, pw, sizeof pw);
    snprintf(dsn, sizeof dsn, "postgresql://%s:%s@127.0.0.1:%d/yard?connect_timeout=10", role, pw,
             g.pg_port);
    PGconn *c = PQconnectdb(dsn);
    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("expected %s to connect with its password: %s", role, PQerrorMessage(c));
    return c;
}

/* Expects sql refused for want of a privilege. */
static void expect_refused(PGconn *c, const char *who, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    const char *msg = PQresultErrorMessage(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        fail_msg("expected %s to be refused `%s`, it succeeded", who, sql);
    if (!strstr(msg, "permission denied") && !strstr(msg, "pg_execute_server_program"))
        fail_msg("expected `permission denied` for %s running `%s`, got: %s", who, sql, msg);
    PQclear(r);
}

static void test_files_are_private(void **state)
{
    expect_mode("", 0700);
    expect_mode("env", 0600);
    expect_mode("secrets", 0600);
    expect_mode("nats/nats.conf", 0600);
}

static void test_postgres_wants_passwords(void **state)
{
    char out[2048], cmd[800], pw[128];
    if (geteuid() == 0) {
        /* Another OS user, no password, as the superuser and as the owner. */
        const char *users[] = {"postgres", "yard_owner"};
        for (size_t i = 0; i < 2; i++) {
            snprintf(cmd, sizeof cmd,
                     "cd / && runuser -u nobody -- psql -X -w -h 127.0.0.1 -p %d -U %s -d yard "
                     "-tAc 'SELECT 1' 2>&1",
                     g.pg_port, users[i]);
            int rc = shell(cmd, out, sizeof out);
            if (rc == 0 || !strstr(out, "password"))
                fail_msg("expected psql as nobody (user %s, no password) to be refused for want of "
                         "a password, got exit %d: %s",
                         users[i], rc, out);
        }
    } else {
        print_message("not root: the check as another OS user is skipped\n");
    }
    /* The right user with a wrong password. */
    password("execute", pw, sizeof pw);
    snprintf(cmd, sizeof cmd,
             "PGPASSWORD=wrong%s psql -X -w -h 127.0.0.1 -p %d -U yard_execute -d yard -tAc "
             "'SELECT 1' 2>&1",
             pw, g.pg_port);
    int rc = shell(cmd, out, sizeof out);
    if (rc == 0 || !strstr(out, "password authentication failed"))
        fail_msg("expected a wrong password refused, got exit %d: %s", rc, out);
}

static void test_roles_have_only_their_rights(void **state)
{
    PGconn *exec = pg_as("yard_execute", "execute");
    expect_refused(exec, "yard_execute", "UPDATE audit_log SET actor = 'x'");
    expect_refused(exec, "yard_execute", "DELETE FROM audit_log");
    expect_refused(exec, "yard_execute", "CREATE TABLE evil (x int)");
    expect_refused(exec, "yard_execute", "CREATE TEMP TABLE evil (x int)");
    expect_refused(exec, "yard_execute", "SELECT count(*) FROM api_keys");
    expect_refused(exec, "yard_execute", "COPY (SELECT 1) TO PROGRAM 'true'");
    /* What it needs still works. */
    PGresult *r = PQexec(exec, "SELECT count(*) FROM jobs");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    PQclear(r);
    PQfinish(exec);

    PGconn *audit = pg_as("yard_audit", "audit");
    expect_refused(audit, "yard_audit", "UPDATE audit_log SET actor = 'x'");
    r = PQexec(audit, "SET ROLE yard_audit_writer");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    expect_refused(audit, "yard_audit_writer", "DELETE FROM audit_log");
    PQfinish(audit);

    PGconn *owner = pg_as("yard_owner", "owner");
    r = PQexec(owner, "SELECT rolsuper::text || rolcreaterole::text FROM pg_roles "
                      "WHERE rolname = current_user");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    if (strcmp(PQgetvalue(r, 0, 0), "falsefalse") != 0)
        fail_msg("expected yard_owner without superuser and createrole, got %s",
                 PQgetvalue(r, 0, 0));
    PQclear(r);
    PQfinish(owner);
}

static char nats_error[512];

static void on_nats_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *ud)
{
    snprintf(nats_error, sizeof nats_error, "%s", nats_GetLastError(NULL) ? nats_GetLastError(NULL)
                                                                          : natsStatus_GetText(err));
    if (!strstr(nats_error, "ermission"))
        snprintf(nats_error, sizeof nats_error, "%s", natsStatus_GetText(err));
}

/* Connects as program (NULL: no user); NATS_OK and *out, or the failure. */
static natsStatus nats_as(natsConnection **out, const char *program)
{
    char url[512], pw[128];
    natsOptions *o = NULL;
    if (program) {
        password(program, pw, sizeof pw);
        snprintf(url, sizeof url, "nats://%s:%s@127.0.0.1:%d", program, pw, g.nats_port);
    } else {
        snprintf(url, sizeof url, "nats://127.0.0.1:%d", g.nats_port);
    }
    natsOptions_Create(&o);
    natsOptions_SetURL(o, url);
    natsOptions_SetMaxReconnect(o, 0);
    natsOptions_SetTimeout(o, 5000);
    natsOptions_SetErrorHandler(o, on_nats_error, NULL);
    natsStatus s = natsConnection_Connect(out, o);
    natsOptions_Destroy(o);
    return s;
}

/* Whether a message on subject published by `from` reaches a subscriber of
 * the execute user (which may subscribe to yard.cancel.>) within 2 s. */
static int cancel_arrives(natsConnection *listener, natsSubscription *sub, const char *from)
{
    natsConnection *nc = NULL;
    natsMsg *m = NULL;
    assert_int_equal(nats_as(&nc, from), NATS_OK);
    natsConnection_PublishString(nc, "yard.cancel.x", "x");
    natsConnection_FlushTimeout(nc, 2000);
    natsStatus s = natsSubscription_NextMsg(&m, sub, 2000);
    natsMsg_Destroy(m);
    natsConnection_Destroy(nc);
    return s == NATS_OK;
}

static void test_nats_wants_users_with_rights(void **state)
{
    natsConnection *nc = NULL, *listener = NULL;
    natsSubscription *sub = NULL;

    /* No user: no connection at all, so nothing published anywhere. */
    natsStatus s = nats_as(&nc, NULL);
    if (s == NATS_OK) {
        natsConnection_Destroy(nc);
        fail_msg("expected a NATS client without a user to be refused");
    }

    /* Cancels: the gateway's user may, the execute worker's may not. */
    assert_int_equal(nats_as(&listener, "execute"), NATS_OK);
    assert_int_equal(natsConnection_SubscribeSync(&sub, listener, "yard.cancel.>"), NATS_OK);
    assert_int_equal(natsConnection_FlushTimeout(listener, 2000), NATS_OK);
    if (cancel_arrives(listener, sub, "execute"))
        fail_msg("expected the execute user's publish to yard.cancel.x to be refused");
    if (cancel_arrives(listener, sub, "schedule"))
        fail_msg("expected the schedule user's publish to yard.cancel.x to be refused");
    if (!cancel_arrives(listener, sub, "gateway"))
        fail_msg("expected the gateway user's publish to yard.cancel.x to arrive");
    natsSubscription_Destroy(sub);
    natsConnection_Destroy(listener);

    /* Jobs: the execute worker's user cannot publish one into JOBS. */
    jsCtx *js = NULL;
    jsPubAck *pa = NULL;
    jsOptions jo;
    jsErrCode jerr = 0;
    jsOptions_Init(&jo);
    jo.Wait = 2000;
    assert_int_equal(nats_as(&nc, "execute"), NATS_OK);
    assert_int_equal(natsConnection_JetStream(&js, nc, &jo), NATS_OK);
    s = js_Publish(&pa, js, "jobs.execute.default", "x", 1, NULL, &jerr);
    if (s == NATS_OK) {
        jsPubAck_Destroy(pa);
        fail_msg("expected the execute user's publish to jobs.execute.default refused");
    }
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);

    /* The gateway's user cannot subscribe to jobs.> (it never consumes). */
    nats_error[0] = '\0';
    assert_int_equal(nats_as(&nc, "gateway"), NATS_OK);
    s = natsConnection_SubscribeSync(&sub, nc, "jobs.>");
    if (s == NATS_OK) {
        natsConnection_FlushTimeout(nc, 2000);
        for (int i = 0; i < 50 && !nats_error[0]; i++)
            usleep(100 * 1000);
        natsSubscription_Destroy(sub);
    }
    natsConnection_Destroy(nc);
    if (s == NATS_OK && !strstr(nats_error, "ermission"))
        fail_msg("expected a permissions violation for the gateway subscribing to jobs.>, got `%s`",
                 nats_error);
}

static void test_a_job_runs_end_to_end(void **state)
{
    char key[256], auth[300], path[128], id[64] = "";
    yt_http_resp_t r = {0};
    if (file_value("env", "YARD_API_KEY", key, sizeof key) != 0)
        fail_msg("expected YARD_API_KEY in %s/env", g.data);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
    const char *hdrs[] = {auth, "Content-Type: application/json", NULL};
    const char *body = "{\"type\":\"echo\",\"payload\":{\"locked\":true}}";
    int st = yt_http_request(&r, g.http_port, "POST", "/v1/jobs", hdrs, body, strlen(body));
    if (st != 202)
        fail_msg("expected 202 for a job, got %d: %s", st, yt_http_body_excerpt(&r));
    const char *p = strstr(r.body, "\"id\":\"");
    assert_non_null(p);
    snprintf(id, sizeof id, "%.36s", p + 6);
    yt_http_resp_free(&r);
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    long long deadline = yt_now_ms() + 60000;
    int done = 0;
    while (!done && yt_now_ms() < deadline) {
        st = yt_http_request(&r, g.http_port, "GET", path, hdrs, NULL, 0);
        done = st == 200 && strstr(r.body, "\"succeeded\"") != NULL;
        yt_http_resp_free(&r);
        if (!done)
            usleep(200 * 1000);
    }
    if (!done)
        fail_msg("expected job %s to succeed within 60 s", id);
    /* No program hit a permission error on the way (each logs its own
     * failures; PostgreSQL's log also holds this test's refused probes). */
    char cmd[1400], out[2048];
    snprintf(cmd, sizeof cmd,
             "grep -hi 'permission denied\\|permissions violation\\|authorization violation' "
             "%s/log/*.log 2>/dev/null | head -c 1500",
             g.data);
    shell(cmd, out, sizeof out);
    if (out[0])
        fail_msg("expected no permission errors in the logs, got:\n%s", out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_files_are_private),
        cmocka_unit_test(test_postgres_wants_passwords),
        cmocka_unit_test(test_roles_have_only_their_rights),
        cmocka_unit_test(test_nats_wants_users_with_rights),
        cmocka_unit_test(test_a_job_runs_end_to_end),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
