/*
 * test_tls_connect.c - TLS to NATS and PostgreSQL, with a CA the test makes
 * (openssl): a nats-server that requires TLS and a PostgreSQL with ssl=on,
 * both with a certificate for 127.0.0.1 signed by that CA. Then:
 *   1. the gateway, given a tls:// URL with YARD_NATS_TLS_CA_FILE and a DSN
 *      with sslmode=verify-full, becomes ready (it made the JetStream
 *      topology over TLS); yardctl reaches NATS the same way, and without
 *      the CA file, or with another CA, it cannot connect;
 *   2. yardctl reaches PostgreSQL with sslmode=verify-full and sslrootcert =
 *      the CA, over TLS (pg_stat_ssl); with another CA it does not.
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
#include <unistd.h>

#include "harness.h"
#include "yt_http.h"

static struct {
    yt_env_t *env;
    int nats_port, nats_mon;
    char ca[400], other_ca[400];
} g;

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

/* A CA (<name>-ca.crt) and, if server, a certificate for 127.0.0.1 and
 * localhost it signed (<name>-server.crt/.key). 0 or -1. */
static int make_ca(const char *name, int server)
{
    char cmd[3000], out[2048];
    const char *d = g.env->dir;
    int n = snprintf(cmd, sizeof cmd,
                     "cd %s && openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=%s-ca "
                     "-keyout %s-ca.key -out %s-ca.crt 2>&1",
                     d, name, name, name);
    if (server)
        snprintf(cmd + n, sizeof cmd - (size_t)n,
                 " && openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout %s-server.key "
                 "-out %s-server.csr 2>&1 && printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' "
                 ">%s-ext.cnf && openssl x509 -req -in %s-server.csr -CA %s-ca.crt -CAkey %s-ca.key "
                 "-CAcreateserial -days 2 -extfile %s-ext.cnf -out %s-server.crt 2>&1"
                 " && chmod 600 %s-server.key && chmod 644 %s-server.crt %s-ca.crt"
                 " && { [ $(id -u) -ne 0 ] || chown postgres %s-server.key %s-server.crt; }",
                 name, name, name, name, name, name, name, name, name, name, name, name, name);
    int rc = shell(cmd, out, sizeof out);
    if (rc != 0)
        fprintf(stderr, "openssl for %s failed (%d): %s\n", name, rc, out);
    return rc == 0 ? 0 : -1;
}

static int start_tls_nats(void)
{
    char conf[2000], path[400], url[128];
    const char *d = g.env->dir;
    g.nats_port = yt_free_port();
    g.nats_mon = yt_free_port();
    snprintf(conf, sizeof conf,
             "listen: 127.0.0.1:%d\nhttp: 127.0.0.1:%d\njetstream { store_dir: \"%s/nats-tls\" }\n"
             "tls { cert_file: \"%s/test-server.crt\", key_file: \"%s/test-server.key\", "
             "timeout: 5 }\n",
             g.nats_port, g.nats_mon, d, d, d);
    if (yt_write_file(g.env, "nats-tls.conf", conf, 0600) != 0)
        return -1;
    snprintf(path, sizeof path, "%s/nats-tls.conf", d);
    char *argv[] = {"nats-server", "-c", path, NULL};
    if (yt_spawn(g.env, "nats-tls", argv, NULL) < 0)
        return -1;
    snprintf(url, sizeof url, "/healthz?js-enabled-only=true");
    for (int i = 0; i < 300; i++) {
        if (yt_http_status(g.nats_mon, url) == 200)
            return 0;
        usleep(100 * 1000);
    }
    fprintf(stderr, "the TLS nats-server did not become ready\n");
    yt_log_tail(g.env, "nats-tls");
    return -1;
}

/* Turns ssl on in the test's PostgreSQL (a reload, no restart). */
static int pg_ssl_on(void)
{
    char cmd[2000], out[2048];
    const char *d = g.env->dir;
    snprintf(cmd, sizeof cmd,
             "psql -X -v ON_ERROR_STOP=1 '%s' -q -c \"ALTER SYSTEM SET ssl_cert_file = "
             "'%s/test-server.crt'\" -c \"ALTER SYSTEM SET ssl_key_file = '%s/test-server.key'\" "
             "-c 'ALTER SYSTEM SET ssl = on' -c 'SELECT pg_reload_conf()' 2>&1",
             g.env->pg_dsn, d, d);
    int rc = shell(cmd, out, sizeof out);
    if (rc != 0)
        fprintf(stderr, "turning ssl on failed (%d): %s\n", rc, out);
    return rc == 0 ? 0 : -1;
}

static int setup(void **state)
{
    if (yt_env_create(&g.env, YT_PG | YT_MIGRATE) != 0)
        return -1;
    if (make_ca("test", 1) != 0 || make_ca("other", 0) != 0)
        return -1;
    snprintf(g.ca, sizeof g.ca, "%s/test-ca.crt", g.env->dir);
    snprintf(g.other_ca, sizeof g.other_ca, "%s/other-ca.crt", g.env->dir);
    if (start_tls_nats() != 0 || pg_ssl_on() != 0)
        return -1;
    sleep(1); /* the reload is asynchronous */
    return 0;
}

static int teardown(void **state)
{
    yt_env_destroy(g.env);
    return 0;
}

/* Runs bin/yardctl with the environment assignments env (shell words). */
static int yardctl(const char *env, const char *args, char *out, size_t cap)
{
    char cmd[2000];
    snprintf(cmd, sizeof cmd, "env -u YARD_CONFIG %s %s/yardctl %s 2>&1", env, yt_bin_dir(), args);
    return shell(cmd, out, cap);
}

static void test_nats_over_tls(void **state)
{
    char env[1000], out[4096], url[200], ca[450], dsn[700], port[48];
    int http_port = yt_free_port();
    snprintf(url, sizeof url, "YARD_NATS_URL=tls://127.0.0.1:%d", g.nats_port);
    snprintf(ca, sizeof ca, "YARD_NATS_TLS_CA_FILE=%s", g.ca);
    snprintf(dsn, sizeof dsn,
             "YARD_PG_DSN=host=127.0.0.1 port=%d dbname=yard user=postgres sslmode=verify-full "
             "sslrootcert=%s",
             g.env->pg_port, g.ca);
    snprintf(port, sizeof port, "YARD_HTTP_PORT=%d", http_port);
    char gw[700];
    snprintf(gw, sizeof gw, "%s/yard-gateway", yt_bin_dir());
    char *argv[] = {gw, NULL};
    char *extra[] = {url, ca, dsn, port, "YARD_AUTH_DISABLED=true", "YARD_HTTP_ADDR=127.0.0.1",
                     NULL};
    assert_true(yt_spawn(g.env, "gateway-tls", argv, extra) > 0);
    int ready = 0;
    for (int i = 0; i < 300 && !ready; i++) {
        ready = yt_http_status(http_port, "/readyz") == 200;
        if (!ready)
            usleep(100 * 1000);
    }
    if (!ready) {
        yt_log_tail(g.env, "gateway-tls");
        fail_msg("expected the gateway ready over TLS to NATS and PostgreSQL within 30 s");
    }

    snprintf(env, sizeof env, "YARD_NATS_URL=tls://127.0.0.1:%d YARD_NATS_TLS_CA_FILE=%s",
             g.nats_port, g.ca);
    int rc = yardctl(env, "cluster status", out, sizeof out);
    if (rc != 0)
        fail_msg("expected yardctl to reach NATS over TLS with the CA, got %d: %s", rc, out);

    snprintf(env, sizeof env, "YARD_NATS_URL=tls://127.0.0.1:%d", g.nats_port);
    rc = yardctl(env, "cluster status", out, sizeof out);
    if (rc == 0 || !strstr(out, "cannot connect"))
        fail_msg("expected yardctl refused without the CA file (unknown issuer), got: %s", out);

    snprintf(env, sizeof env, "YARD_NATS_URL=tls://127.0.0.1:%d YARD_NATS_TLS_CA_FILE=%s",
             g.nats_port, g.other_ca);
    rc = yardctl(env, "cluster status", out, sizeof out);
    if (rc == 0 || !strstr(out, "cannot connect"))
        fail_msg("expected yardctl refused with another CA, got: %s", out);
}

static void test_postgres_verify_full(void **state)
{
    char env[1200], out[4096], cmd[1500];
    snprintf(env, sizeof env,
             "YARD_PG_DSN='host=127.0.0.1 port=%d dbname=yard user=postgres sslmode=verify-full "
             "sslrootcert=%s'",
             g.env->pg_port, g.ca);
    int rc = yardctl(env, "migrate --status", out, sizeof out);
    if (rc != 0)
        fail_msg("expected yardctl to reach PostgreSQL with verify-full, got %d: %s", rc, out);

    /* The same parameters really give a TLS connection. */
    snprintf(cmd, sizeof cmd,
             "psql -X -tA 'host=127.0.0.1 port=%d dbname=yard user=postgres sslmode=verify-full "
             "sslrootcert=%s' -c 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()' 2>&1",
             g.env->pg_port, g.ca);
    rc = shell(cmd, out, sizeof out);
    if (rc != 0 || strncmp(out, "t", 1) != 0)
        fail_msg("expected a TLS connection (pg_stat_ssl.ssl = t), got %d: %s", rc, out);

    snprintf(env, sizeof env,
             "YARD_PG_DSN='host=127.0.0.1 port=%d dbname=yard user=postgres sslmode=verify-full "
             "sslrootcert=%s'",
             g.env->pg_port, g.other_ca);
    rc = yardctl(env, "migrate --status", out, sizeof out);
    if (rc == 0)
        fail_msg("expected yardctl refused by verify-full with another CA, got: %s", out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nats_over_tls),
        cmocka_unit_test(test_postgres_verify_full),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
