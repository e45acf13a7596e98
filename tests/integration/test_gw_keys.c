/*
 * test_gw_keys.c - API keys end to end against a real PostgreSQL: the real
 * `yardctl keys` binary creates, lists and revokes keys, and the gateway's
 * loader (gw_auth_keyset_load) and check (gw_auth_check) see the result.
 *
 * Checks: `create --quiet` prints only the key, and the row holds its
 * BLAKE2b hash, never the key; the gateway accepts the printed key with its
 * scopes and limits; the verbose form shows id, prefix and the one-time
 * warning; `list` shows every key but no key or hash; `revoke` by prefix, id
 * or key makes the next load refuse it, and an unknown one exits 1; bad
 * arguments exit 2 and write nothing; the loader skips a row it cannot use.
 * Every test starts with an empty api_keys table.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "apikey.h"
#include "auth.h"
#include "db.h"
#include "err.h"
#include "harness.h"
#include "log.h"

#define OUT_MAX 16384

static yt_env_t *g_env;
static PGconn *g_conn;

/* What one yardctl run printed, and how it ended. */
typedef struct {
    int status; /* exit status, or -1 when a signal ended it */
    char out[OUT_MAX];
    char err[OUT_MAX];
} run_t;

/* ---- helpers --------------------------------------------------------------- */

/* Runs the real yardctl with args (NULL-terminated) and YARD_PG_DSN set to
 * the test database, the way test_migrate.c does: fork, exec, output to
 * files, wait. */
static void yardctl_argv(run_t *run, const char *const *args)
{
    run->status = yt_run_program(g_env, "yardctl", args, run->out, sizeof run->out, run->err,
                                 sizeof run->err);
}
#define YARDCTL(run, ...) yardctl_argv((run), (const char *const[]){__VA_ARGS__, NULL})

static void expect_status(const run_t *run, int want, const char *what)
{
    if (run->status != want)
        fail_msg("%s: expected exit %d, got %d; stdout:\n%s\nstderr:\n%s", what, want,
                 run->status, run->out, run->err);
}

static void expect_in(const char *what, const char *text, const char *want)
{
    if (!strstr(text, want))
        fail_msg("expected %s to contain \"%s\", got:\n%s", what, want, text);
}

static void expect_not_in(const char *what, const char *text, const char *secret)
{
    if (strstr(text, secret))
        fail_msg("expected %s not to contain \"%s\", got:\n%s", what, secret, text);
}

/* Runs sql with text parameters and returns the result; fails unless OK. */
static PGresult *q(const char *sql, int n, const char *const *params)
{
    PGresult *r = PQexecParams(g_conn, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        fail_msg("expected \"%s\" to succeed, got: %s", sql, PQerrorMessage(g_conn));
    return r;
}

static long q_long(const char *sql, int n, const char *const *params)
{
    PGresult *r = q(sql, n, params);
    assert_int_equal(PQntuples(r), 1);
    long v = atol(PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

/* `yardctl keys create ... --quiet`: checks the output is one key and a
 * newline, and copies the key to key. */
static void create_quiet(char key[YARD_APIKEY_LEN + 1], const char *name, const char *scopes)
{
    run_t run;
    char prefix[YARD_APIKEY_PREFIX_LEN + 1];

    YARDCTL(&run, "keys", "create", "--name", name, "--scopes", scopes, "--quiet");
    expect_status(&run, 0, "keys create --quiet");
    if (strlen(run.out) != YARD_APIKEY_LEN + 1 || run.out[YARD_APIKEY_LEN] != '\n' ||
        yard_apikey_prefix(prefix, run.out, YARD_APIKEY_LEN) != 0)
        fail_msg("expected `keys create --quiet` to print one key and a newline, got \"%s\"",
                 run.out);
    expect_not_in("the log of keys create", run.err, run.out + 12);
    memcpy(key, run.out, YARD_APIKEY_LEN);
    key[YARD_APIKEY_LEN] = '\0';
}

/* Loads a keyset the way the gateway does. */
static gw_keyset_t *load(void)
{
    gw_keyset_t *ks = NULL;
    int rc = gw_auth_keyset_load(&ks, g_conn);
    if (rc != 0)
        fail_msg("expected gw_auth_keyset_load to succeed, got %s", yard_errname(rc));
    return ks;
}

/* gw_auth_check of "Bearer <key>" needing scope. */
static int auth(gw_principal_t *p, const gw_keyset_t *ks, const char *key, unsigned scope)
{
    char header[128];
    snprintf(header, sizeof header, "Bearer %s", key);
    return gw_auth_check(p, ks, header, strlen(header), scope);
}

static void expect_auth(const gw_keyset_t *ks, const char *key, unsigned scope, int want,
                        const char *what)
{
    gw_principal_t p;
    int rc = auth(&p, ks, key, scope);
    if (rc != want)
        fail_msg("%s: expected gw_auth_check to give %s, got %s", what, yard_errname(want),
                 yard_errname(rc));
}

/* ---- setup ----------------------------------------------------------------- */

static int setup_env(void **state)
{
    yard_log_init("test_gw_keys", YARD_LOG_WARN);
    if (yt_env_create(&g_env, YT_PG | YT_MIGRATE) != 0) {
        fprintf(stderr, "test_gw_keys: cannot start PostgreSQL\n");
        return -1;
    }
    if (yard_db_connect(&g_conn, g_env->pg_dsn, 10) != 0) {
        yt_env_destroy(g_env);
        return -1;
    }
    return 0;
}

static int teardown_env(void **state)
{
    yard_db_close(g_conn);
    yt_env_destroy(g_env);
    return 0;
}

static int empty_table(void **state)
{
    PQclear(q("DELETE FROM api_keys", 0, NULL));
    return 0;
}

/* ---- tests ----------------------------------------------------------------- */

static void test_create_stores_the_hash_and_the_gateway_accepts_the_key(void **state)
{
    char key[YARD_APIKEY_LEN + 1], hash_hex[2 * YARD_APIKEY_HASH_LEN + 1];
    uint8_t hash[YARD_APIKEY_HASH_LEN];
    gw_principal_t p;

    create_quiet(key, "ci", "submit,read");

    /* One row, holding the hash of the key and nothing of the key itself. */
    PGresult *r = q("SELECT id::text, name, prefix, encode(key_hash, 'hex'),"
                    " array_to_string(scopes, ','), rate_per_s IS NULL, burst IS NULL,"
                    " revoked_at IS NULL, api_keys::text FROM api_keys", 0, NULL);
    assert_int_equal(PQntuples(r), 1);
    yard_apikey_hash(hash, key, strlen(key));
    for (int i = 0; i < YARD_APIKEY_HASH_LEN; i++)
        sprintf(hash_hex + 2 * i, "%02x", hash[i]);
    assert_string_equal(PQgetvalue(r, 0, 1), "ci");
    assert_memory_equal(PQgetvalue(r, 0, 2), key + 3, YARD_APIKEY_PREFIX_LEN);
    assert_string_equal(PQgetvalue(r, 0, 3), hash_hex);
    assert_string_equal(PQgetvalue(r, 0, 4), "submit,read");
    assert_string_equal(PQgetvalue(r, 0, 5), "t");
    assert_string_equal(PQgetvalue(r, 0, 6), "t");
    assert_string_equal(PQgetvalue(r, 0, 7), "t");
    expect_not_in("the stored row", PQgetvalue(r, 0, 8), key + 12);
    const char *secret[] = {key + 12};
    assert_int_equal(q_long("SELECT count(*) FROM api_keys"
                            " WHERE position(convert_to($1, 'UTF8') IN key_hash) > 0",
                            1, secret), 0);
    char id[GW_AUTH_ID_MAX + 1];
    snprintf(id, sizeof id, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);

    /* The gateway's loader finds it and accepts the printed key. */
    gw_keyset_t *ks = load();
    assert_int_equal(gw_auth_keyset_count(ks), 1);
    assert_int_equal(auth(&p, ks, key, YARD_SCOPE_SUBMIT), 0);
    assert_string_equal(p.key_id, id);
    assert_string_equal(p.name, "ci");
    assert_int_equal(p.scopes, YARD_SCOPE_SUBMIT | YARD_SCOPE_READ);
    assert_true(p.rate_per_s == 0 && p.burst == 0); /* the gateway's defaults */
    expect_auth(ks, key, YARD_SCOPE_READ, 0, "the ci key reading");
    expect_auth(ks, key, YARD_SCOPE_ADMIN, GW_AUTH_EFORBIDDEN, "the ci key doing admin");
    key[YARD_APIKEY_LEN - 1] = key[YARD_APIKEY_LEN - 1] == 'a' ? 'b' : 'a';
    expect_auth(ks, key, YARD_SCOPE_SUBMIT, YARD_EAUTH, "the ci key with a wrong last character");
    gw_auth_keyset_free(ks);
}

static void test_create_verbose_shows_id_prefix_and_warning(void **state)
{
    run_t run;
    gw_principal_t p;
    char key[YARD_APIKEY_LEN + 1], prefix[YARD_APIKEY_PREFIX_LEN + 1];

    YARDCTL(&run, "keys", "create", "--name", "batch loader", "--scopes", "admin", "--rate",
            "5.5", "--burst=10");
    expect_status(&run, 0, "keys create with limits");
    const char *at = strstr(run.out, "yk_");
    if (!at || yard_apikey_prefix(prefix, at, YARD_APIKEY_LEN) != 0)
        fail_msg("expected a key in the output of keys create, got:\n%s", run.out);
    memcpy(key, at, YARD_APIKEY_LEN);
    key[YARD_APIKEY_LEN] = '\0';
    if (strstr(at + 1, "yk_"))
        fail_msg("expected the key printed once, got:\n%s", run.out);
    expect_in("keys create", run.out, "cannot be shown again");
    expect_in("keys create", run.out, prefix);
    expect_in("keys create", run.out, "batch loader");
    expect_not_in("the log of keys create", run.err, key + 12);

    PGresult *r = q("SELECT id::text, rate_per_s, burst, scopes::text FROM api_keys", 0, NULL);
    assert_int_equal(PQntuples(r), 1);
    expect_in("keys create", run.out, PQgetvalue(r, 0, 0));
    assert_string_equal(PQgetvalue(r, 0, 1), "5.5");
    assert_string_equal(PQgetvalue(r, 0, 2), "10");
    assert_string_equal(PQgetvalue(r, 0, 3), "{admin}");
    PQclear(r);

    gw_keyset_t *ks = load();
    assert_int_equal(auth(&p, ks, key, YARD_SCOPE_SUBMIT), 0); /* admin implies submit */
    assert_true(p.rate_per_s == 5.5);
    assert_true(p.burst == 10);
    assert_int_equal(p.scopes, YARD_SCOPE_ADMIN);
    gw_auth_keyset_free(ks);
}

static void test_list_shows_every_key_but_no_secret(void **state)
{
    char k1[YARD_APIKEY_LEN + 1], k2[YARD_APIKEY_LEN + 1];
    run_t run;

    create_quiet(k1, "first", "read");
    create_quiet(k2, "second", "submit,admin");
    YARDCTL(&run, "keys", "list");
    expect_status(&run, 0, "keys list");
    expect_in("keys list", run.out, "PREFIX");
    expect_in("keys list", run.out, "LAST USED");
    PGresult *r = q("SELECT id::text, name, prefix, encode(key_hash, 'hex') FROM api_keys",
                    0, NULL);
    assert_int_equal(PQntuples(r), 2);
    for (int i = 0; i < 2; i++) {
        expect_in("keys list", run.out, PQgetvalue(r, i, 0));
        expect_in("keys list", run.out, PQgetvalue(r, i, 1));
        expect_in("keys list", run.out, PQgetvalue(r, i, 2));
        expect_not_in("keys list", run.out, PQgetvalue(r, i, 3));
        expect_not_in("keys list", run.out, PQgetvalue(r, i, 3) + 48); /* a slice of it */
    }
    PQclear(r);
    expect_in("keys list", run.out, "submit,admin");
    expect_in("keys list", run.out, "default");
    expect_not_in("keys list", run.out, k1 + 12);
    expect_not_in("keys list", run.out, k2 + 12);
    expect_not_in("keys list", run.out, "yk_");
    /* A header and one line per key. */
    int lines = 0;
    for (const char *c = run.out; *c; c++)
        lines += *c == '\n';
    assert_int_equal(lines, 3);
}

static void test_revoked_keys_are_refused_after_reload(void **state)
{
    char a[YARD_APIKEY_LEN + 1], b[YARD_APIKEY_LEN + 1], c[YARD_APIKEY_LEN + 1];
    char prefix_a[YARD_APIKEY_PREFIX_LEN + 1], id_b[GW_AUTH_ID_MAX + 1];
    gw_principal_t p;
    run_t run;

    create_quiet(a, "a", "submit");
    create_quiet(b, "b", "submit");
    create_quiet(c, "c", "read");
    gw_keyset_t *ks = load();
    expect_auth(ks, a, YARD_SCOPE_SUBMIT, 0, "key a before revoking");
    assert_int_equal(auth(&p, ks, b, YARD_SCOPE_SUBMIT), 0);
    snprintf(id_b, sizeof id_b, "%s", p.key_id);
    expect_auth(ks, c, YARD_SCOPE_READ, 0, "key c before revoking");
    gw_auth_keyset_free(ks);

    /* By prefix. */
    assert_int_equal(yard_apikey_prefix(prefix_a, a, strlen(a)), 0);
    YARDCTL(&run, "keys", "revoke", prefix_a);
    expect_status(&run, 0, "keys revoke PREFIX");
    expect_in("keys revoke", run.out, "revoked key");
    ks = load();
    assert_int_equal(gw_auth_keyset_count(ks), 2);
    expect_auth(ks, a, YARD_SCOPE_SUBMIT, YARD_EAUTH, "key a after revoking it");
    expect_auth(ks, b, YARD_SCOPE_SUBMIT, 0, "key b after revoking a");
    gw_auth_keyset_free(ks);

    /* By id (upper case works too), and by the key itself, which stays out
     * of the output. */
    for (char *ch = id_b; *ch; ch++)
        if (*ch >= 'a' && *ch <= 'f')
            *ch = (char)(*ch - 'a' + 'A');
    YARDCTL(&run, "keys", "revoke", id_b);
    expect_status(&run, 0, "keys revoke ID");
    YARDCTL(&run, "keys", "revoke", c);
    expect_status(&run, 0, "keys revoke KEY");
    expect_not_in("keys revoke KEY", run.out, c + 12);
    expect_not_in("the log of keys revoke KEY", run.err, c + 12);
    ks = load();
    assert_int_equal(gw_auth_keyset_count(ks), 0);
    expect_auth(ks, b, YARD_SCOPE_SUBMIT, YARD_EAUTH, "key b after revoking it");
    expect_auth(ks, c, YARD_SCOPE_READ, YARD_EAUTH, "key c after revoking it");
    gw_auth_keyset_free(ks);

    /* Revoking again is fine and says so; the time stays the first one. */
    long before = q_long("SELECT extract(epoch FROM revoked_at) * 1000000 FROM api_keys"
                         " WHERE name = 'a'", 0, NULL);
    YARDCTL(&run, "keys", "revoke", prefix_a);
    expect_status(&run, 0, "keys revoke of a revoked key");
    expect_in("keys revoke of a revoked key", run.out, "already revoked");
    assert_int_equal(q_long("SELECT extract(epoch FROM revoked_at) * 1000000 FROM api_keys"
                            " WHERE name = 'a'", 0, NULL), before);
    /* The list shows when. */
    YARDCTL(&run, "keys", "list");
    expect_status(&run, 0, "keys list");
    assert_int_equal(q_long("SELECT count(*) FROM api_keys WHERE revoked_at IS NULL", 0, NULL),
                     0);
}

/* No such key: 3 (not found); something that is not a key at all: 1. */
static void test_revoking_an_unknown_key_exits_3(void **state)
{
    char key[YARD_APIKEY_LEN + 1];
    run_t run;

    create_quiet(key, "kept", "read");
    static const char *const unknown[] = {
        "zzzzzzzz",                               /* a prefix no key has */
        "0190a000-0000-7000-8000-000000000000",   /* an id no key has */
        "not a key",                              /* neither */
        "yk_zzzzzzzz_zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz", /* a key no one has */
    };
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        YARDCTL(&run, "keys", "revoke", unknown[i]);
        expect_status(&run, i == 2 ? 1 : 3, unknown[i]);
        expect_in("the log of revoking an unknown key", run.err, "revoking an API key");
    }
    assert_int_equal(q_long("SELECT count(*) FROM api_keys WHERE revoked_at IS NULL", 0, NULL),
                     1);
}

static void test_bad_arguments_exit_2_and_write_nothing(void **state)
{
    static const char *const cases[][8] = {
        {"keys", NULL},
        {"keys", "frob", NULL},
        {"keys", "create", "--scopes", "read", NULL},
        {"keys", "create", "--name", "x", NULL},
        {"keys", "create", "--name", "x", "--scopes", "write", NULL},
        {"keys", "create", "--name", "x", "--scopes", "read,", NULL},
        {"keys", "create", "--name", "", "--scopes", "read", NULL},
        {"keys", "create", "--name", "x", "--scopes", "read", "--rate", NULL},
        {"keys", "create", "--name", "x", "--scopes", "read", "--rate=0", NULL},
        {"keys", "create", "--name", "x", "--scopes", "read", "--burst=1.5", NULL},
        {"keys", "create", "--name", "x", "--scopes", "read", "--bogus", NULL},
        {"keys", "list", "extra", NULL},
        {"keys", "revoke", NULL},
    };
    run_t run;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        yardctl_argv(&run, cases[i]);
        char what[128];
        snprintf(what, sizeof what, "case %zu (yardctl %s %s ...)", i, cases[i][0],
                 cases[i][1] ? cases[i][1] : "");
        expect_status(&run, 2, what);
        expect_in(what, run.err, "yardctl help keys");
    }
    assert_int_equal(q_long("SELECT count(*) FROM api_keys", 0, NULL), 0);
    YARDCTL(&run, "help", "keys");
    expect_status(&run, 0, "yardctl help keys");
    expect_in("yardctl help keys", run.out, "usage: yardctl keys create");
}

/* A row the gateway cannot use (here a 16-byte hash, which the table allows)
 * is skipped, and the other keys still work. */
static void test_loader_skips_an_unusable_row(void **state)
{
    char key[YARD_APIKEY_LEN + 1];

    create_quiet(key, "good", "read");
    PQclear(q("INSERT INTO api_keys (id, name, prefix, key_hash, scopes) VALUES"
              " ('0190a000-0000-7000-8000-00000000bad1', 'short hash', 'aaaaaaaa',"
              "  decode('00112233445566778899aabbccddeeff', 'hex'), '{read}')", 0, NULL));
    gw_keyset_t *ks = load();
    assert_int_equal(gw_auth_keyset_count(ks), 1);
    expect_auth(ks, key, YARD_SCOPE_READ, 0, "the good key beside a bad row");
    gw_auth_keyset_free(ks);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup(name, empty_table)
    const struct CMUnitTest tests[] = {
        T(test_create_stores_the_hash_and_the_gateway_accepts_the_key),
        T(test_create_verbose_shows_id_prefix_and_warning),
        T(test_list_shows_every_key_but_no_secret),
        T(test_revoked_keys_are_refused_after_reload),
        T(test_revoking_an_unknown_key_exits_3),
        T(test_bad_arguments_exit_2_and_write_nothing),
        T(test_loader_skips_an_unusable_row),
    };
    return cmocka_run_group_tests(tests, setup_env, teardown_env);
}
