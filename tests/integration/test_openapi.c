/*
 * test_openapi.c - the gateway's real answers against schemas/openapi.yaml.
 *
 * Starts nats-server, PostgreSQL, the gateway (auth on), the audit and
 * execute workers, makes an admin, a submit+read and a read-only key with
 * yardctl, then runs openapi_check.py (python3-yaml), which makes jobs
 * through the API, sends one request per documented route and method (good
 * and bad ones), and checks each status and body against the document. Routes
 * other helpers add are skipped while they answer 404 (its NOT_IN_TREE list).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "yt_keys.h"
#include "yt_workers.h"

#define PYTHON "/usr/bin/python3" /* Debian's, which has python3-yaml */
#define CHECK_TIMEOUT_S 180

enum { K_ADMIN, K_USER, K_READER, K_COUNT };
static yt_key_t keys[K_COUNT] = {
    [K_ADMIN] = {.name = "ops", .scopes = "admin"},
    [K_USER] = {.name = "user", .scopes = "submit,read"},
    [K_READER] = {.name = "reader", .scopes = "read"},
};

static yt_cluster_t c;

static int setup(void **state)
{
    static char *const extra[] = {"YARD_RETRY_BASE_MS=200", NULL};
    yard_log_init("test_openapi", YARD_LOG_ERROR);
    if (system(PYTHON " -c 'import yaml' 2>/dev/null") != 0) {
        fprintf(stderr, "test_openapi: python3-yaml is needed (run ops/install-deps.sh)\n");
        return -1;
    }
    if (yt_auth_cluster_start(&c, keys, K_COUNT, extra) != 0)
        return -1;
    return yt_worker_start(&c.exec, c.env, "execute", NULL, extra, 0);
}

static int teardown(void **state)
{
    yt_cluster_stop(&c);
    return 0;
}

static void test_real_answers_match_the_document(void **state)
{
    char url[64], script[300], spec[300];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", c.port);
    snprintf(script, sizeof script, "%s/tests/integration/openapi_check.py", yt_src_dir());
    snprintf(spec, sizeof spec, "%s/schemas/openapi.yaml", yt_src_dir());
    char *const argv[] = {PYTHON,        script,          "--url",          url,
                          "--spec",      spec,            "--admin-key",    keys[K_ADMIN].key,
                          "--user-key",  keys[K_USER].key, "--reader-key", keys[K_READER].key,
                          NULL};
    int rc = yt_script_run(c.env, "openapi_check", argv, CHECK_TIMEOUT_S);
    if (rc != 0)
        fail_msg("expected every answer to match schemas/openapi.yaml; openapi_check.py "
                 "exited %d (its output above)", rc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_real_answers_match_the_document),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
