/*
 * test_redact.c - connection strings printed and logged with every secret
 * hidden: NATS URL lists with passwords and tokens, PostgreSQL URLs with a
 * password in the user part or the query (password=, sslpassword=), and
 * conninfo strings with bare and quoted values (spaces, escaped quotes).
 * Each case also checks the secret's text appears nowhere in the output.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "redact.h"

typedef struct {
    const char *in, *want, *secret;
} case_t;

static void test_cases(void **state)
{
    static const case_t cases[] = {
        {"nats://127.0.0.1:4222", "nats://127.0.0.1:4222", NULL},
        {"nats://yard:s3cr3t@127.0.0.1:4222", "nats://yard:***@127.0.0.1:4222", "s3cr3t"},
        {"nats://tok3n@10.0.0.1:4222", "nats://***@10.0.0.1:4222", "tok3n"},
        {"tls://u:p%40ss@a:4222,nats://v:w0rd@b:4222", "tls://u:***@a:4222,nats://v:***@b:4222",
         "w0rd"},
        {"nats://u:we@ird@h:1", "nats://u:***@h:1", "we@ird"},
        {"postgresql://yard:hunter2@db:5432/yard?sslmode=require",
         "postgresql://yard:***@db:5432/yard?sslmode=require", "hunter2"},
        {"postgresql://yard@db/yard", "postgresql://yard@db/yard", NULL},
        {"postgresql://db/yard?user=yard&password=hunter3&sslmode=verify-full",
         "postgresql://db/yard?user=yard&password=***&sslmode=verify-full", "hunter3"},
        {"postgres://db/yard?sslpassword=keypass9", "postgres://db/yard?sslpassword=***",
         "keypass9"},
        {"host=db user=yard password=plain1 dbname=yard",
         "host=db user=yard password=*** dbname=yard", "plain1"},
        {"host=db password = 'with spaces and \\' quote' dbname=yard",
         "host=db password = *** dbname=yard", "spaces"},
        {"host=db sslpassword='k e y' sslmode=require", "host=db sslpassword=*** sslmode=require",
         "k e y"},
        {"host=/tmp port=5432", "host=/tmp port=5432", NULL},
        {"", "", NULL},
    };
    char out[512];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        yard_redact_dsn(out, sizeof out, cases[i].in);
        if (strcmp(out, cases[i].want) != 0)
            fail_msg("redact `%s`: expected `%s`, got `%s`", cases[i].in, cases[i].want, out);
        if (cases[i].secret && strstr(out, cases[i].secret))
            fail_msg("redact `%s`: the secret `%s` is still in `%s`", cases[i].in,
                     cases[i].secret, out);
    }
}

static void test_truncates_safely(void **state)
{
    char out[16];
    yard_redact_dsn(out, sizeof out, "nats://user:verylongsecret@host:4222");
    assert_true(strlen(out) < sizeof out);
    assert_null(strstr(out, "verylong"));
    yard_redact_dsn(out, 1, "x");
    assert_string_equal(out, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cases),
        cmocka_unit_test(test_truncates_safely),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
