/*
 * test_config.c - config layers: defaults < file < environment; bounds;
 * unknown keys; secrets masked when printed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "err.h"
#include "log.h"

static char *write_temp(const char *text)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/yard-config-test.XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static void test_defaults_are_valid(void **state)
{
    yard_config_t c;
    yard_config_defaults(&c);
    assert_string_equal(c.nats_url, "nats://127.0.0.1:4222");
    assert_int_equal(c.http_port, 8080);
    assert_int_equal(c.http_max_body, 1048576);
    assert_int_equal(c.job_max_attempts, 5);
    assert_int_equal(c.auth_disabled, 0);
    assert_int_equal(yard_config_validate(&c), 0);
}

static void test_file_then_env_precedence(void **state)
{
    yard_config_t c;
    char *path = write_temp("# comment\n\n http_port = 9000\n"
                            "nats_url = \"nats://10.0.0.1:4222\"\n"
                            "log_level=debug\n");
    char *envp[] = {"YARD_HTTP_PORT=9100", "PATH=/bin", "YARD_UNRELATED_THING=1", NULL};
    yard_config_defaults(&c);
    assert_int_equal(yard_config_load_file(&c, path), 0);
    assert_int_equal(c.http_port, 9000);                     /* file beats default */
    assert_string_equal(c.nats_url, "nats://10.0.0.1:4222"); /* quotes stripped */
    assert_string_equal(c.log_level, "debug");
    assert_int_equal(yard_config_load_env(&c, envp), 0);
    assert_int_equal(c.http_port, 9100);                     /* env beats file */
    assert_string_equal(c.nats_url, "nats://10.0.0.1:4222"); /* untouched by env */
    unlink(path);
}

static void test_load_uses_yard_config_variable(void **state)
{
    yard_config_t c;
    char *path = write_temp("http_port = 9200\n");
    setenv("YARD_CONFIG", path, 1);
    setenv("YARD_JOB_TIMEOUT_S", "77", 1);
    assert_int_equal(yard_config_load(&c, NULL), 0);
    assert_int_equal(c.http_port, 9200);
    assert_int_equal(c.job_timeout_s, 77);
    unsetenv("YARD_CONFIG");
    unsetenv("YARD_JOB_TIMEOUT_S");
    unlink(path);
}

static void test_bad_values_rejected(void **state)
{
    yard_config_t c;
    yard_config_defaults(&c);
    assert_int_equal(yard_config_set(&c, "http_port", "70000"), YARD_ERANGE);
    assert_int_equal(yard_config_set(&c, "http_port", "80x"), YARD_EINVAL);
    assert_int_equal(yard_config_set(&c, "http_port", ""), YARD_EINVAL);
    assert_int_equal(yard_config_set(&c, "http_port", "99999999999999999999999"), YARD_ERANGE);
    assert_int_equal(yard_config_set(&c, "auth_disabled", "maybe"), YARD_EINVAL);
    assert_int_equal(yard_config_set(&c, "no_such_key", "1"), YARD_ENOTFOUND);
    assert_int_equal(c.http_port, 8080); /* untouched on error */
    assert_int_equal(yard_config_set(&c, "auth_disabled", "yes"), 0);
    assert_int_equal(c.auth_disabled, 1);
    char big[YARD_CONFIG_STR_MAX + 10];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(yard_config_set(&c, "nats_url", big), YARD_ERANGE);
}

static void test_file_errors(void **state)
{
    yard_config_t c;
    yard_config_defaults(&c);
    char *path = write_temp("http_port = 1\nbogus_key = 2\n");
    assert_int_equal(yard_config_load_file(&c, path), YARD_ENOTFOUND);
    unlink(path);
    path = write_temp("just words\n");
    assert_int_equal(yard_config_load_file(&c, path), YARD_EINVAL);
    unlink(path);
    assert_int_equal(yard_config_load_file(&c, "/nonexistent/yard.conf"), YARD_EIO);
    char *envp[] = {"YARD_JS_REPLICAS=9", NULL};
    assert_int_equal(yard_config_load_env(&c, envp), YARD_ERANGE);
}

static void test_cross_field_validation(void **state)
{
    yard_config_t c;
    yard_config_defaults(&c);
    assert_int_equal(yard_config_set(&c, "retry_base_ms", "5000"), 0);
    assert_int_equal(yard_config_set(&c, "retry_cap_ms", "1000"), 0);
    assert_int_equal(yard_config_validate(&c), YARD_ECONFIG);
    yard_config_defaults(&c);
    assert_int_equal(yard_config_set(&c, "job_max_attempts", "30"), 0);
    assert_int_equal(yard_config_validate(&c), YARD_ECONFIG); /* >= js_max_deliver 25 */
    yard_config_defaults(&c);
    assert_int_equal(yard_config_set(&c, "log_level", "loud"), 0);
    assert_int_equal(yard_config_validate(&c), YARD_ECONFIG);
}

static void test_print_masks_secrets(void **state)
{
    yard_config_t c;
    char buf[8192] = "";
    yard_config_defaults(&c);
    assert_int_equal(yard_config_set(&c, "pg_dsn", "postgresql://yard:hunter2@db:5432/yard"), 0);
    assert_int_equal(yard_config_set(&c, "nats_token", "s3cret-token"), 0);
    FILE *f = fmemopen(buf, sizeof buf - 1, "w");
    yard_config_print(&c, f);
    fclose(f);
    assert_null(strstr(buf, "hunter2"));
    assert_null(strstr(buf, "s3cret-token"));
    assert_non_null(strstr(buf, "pg_dsn = postgresql://yard:***@db:5432/yard\n"));
    assert_non_null(strstr(buf, "nats_token = ***\n"));
    assert_non_null(strstr(buf, "http_port = 8080\n"));

    assert_int_equal(yard_config_set(&c, "pg_dsn", "host=db password=hunter2 dbname=yard"), 0);
    f = fmemopen(buf, sizeof buf - 1, "w");
    yard_config_print(&c, f);
    fclose(f);
    assert_null(strstr(buf, "hunter2"));
    assert_non_null(strstr(buf, "pg_dsn = host=db password=*** dbname=yard\n"));
}

int main(void)
{
    yard_log_init("test", YARD_LOG_OFF);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_are_valid),
        cmocka_unit_test(test_file_then_env_precedence),
        cmocka_unit_test(test_load_uses_yard_config_variable),
        cmocka_unit_test(test_bad_values_rejected),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_cross_field_validation),
        cmocka_unit_test(test_print_masks_secrets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
