/*
 * test_gw_auth.c - the gateway's API key check (gateway/auth.c) against
 * keysets built in memory with gw_auth_keyset_from_rows, the constructor the
 * PostgreSQL loader uses too. Checks: the right key passes and names its
 * row; a wrong secret under a known prefix, an unknown prefix, a malformed
 * key, another scheme or no header gives EAUTH (401); a right key without
 * the scope gives GW_AUTH_EFORBIDDEN (403), and admin implies every scope;
 * "Bearer" in any case; the output is untouched on errors and outlives the
 * keyset; bad rows and duplicate prefixes are refused; a large keyset finds
 * every key.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apikey.h"
#include "auth.h"
#include "err.h"
#include "log.h"

/* A key generated for a test, with the row that stores it. */
typedef struct {
    char key[YARD_APIKEY_LEN + 1];
    char prefix[YARD_APIKEY_PREFIX_LEN + 1];
    char id[40];
    char name[32];
    uint8_t hash[YARD_APIKEY_HASH_LEN];
    gw_key_row_t row;
} tkey_t;

enum { K_SUBMIT, K_READ, K_ADMIN, K_SUBMIT_READ, NKEYS };

typedef struct {
    tkey_t keys[NKEYS];
    tkey_t stranger; /* a well-formed key that is not in the keyset */
    gw_keyset_t *ks;
} fixture_t;

static void tkey_make(tkey_t *k, int n, unsigned scopes, double rate, double burst)
{
    assert_int_equal(yard_apikey_generate(k->key, sizeof k->key, k->prefix), 0);
    yard_apikey_hash(k->hash, k->key, strlen(k->key));
    snprintf(k->id, sizeof k->id, "00000000-0000-7000-8000-%012d", n);
    snprintf(k->name, sizeof k->name, "key %d", n);
    k->row = (gw_key_row_t){k->id, k->name, k->prefix, k->hash, scopes, rate, burst};
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    gw_key_row_t rows[NKEYS];

    yard_log_init("test_gw_auth", YARD_LOG_OFF);
    assert_non_null(f);
    tkey_make(&f->keys[K_SUBMIT], 1, YARD_SCOPE_SUBMIT, 0, 0);
    tkey_make(&f->keys[K_READ], 2, YARD_SCOPE_READ, 5, 10);
    tkey_make(&f->keys[K_ADMIN], 3, YARD_SCOPE_ADMIN, 0, 0);
    tkey_make(&f->keys[K_SUBMIT_READ], 4, YARD_SCOPE_SUBMIT | YARD_SCOPE_READ, 0.5, 1);
    tkey_make(&f->stranger, 99, YARD_SCOPE_ALL, 0, 0);
    for (int i = 0; i < NKEYS; i++)
        rows[i] = f->keys[i].row;
    assert_int_equal(gw_auth_keyset_from_rows(&f->ks, rows, NKEYS), 0);
    assert_int_equal(gw_auth_keyset_count(f->ks), NKEYS);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    gw_auth_keyset_free(f->ks);
    free(f);
    return 0;
}

/* Runs gw_auth_check on the header text and returns its result; *p is
 * pre-filled with a marker so a test can see whether it was touched. */
static int check(gw_principal_t *p, const gw_keyset_t *ks, const char *header, unsigned scope)
{
    memset(p, 0x5a, sizeof *p);
    return gw_auth_check(p, ks, header, header ? strlen(header) : 0, scope);
}

static int check_key(gw_principal_t *p, const gw_keyset_t *ks, const char *scheme,
                     const char *key, unsigned scope)
{
    char header[128];
    snprintf(header, sizeof header, "%s%s", scheme, key);
    return check(p, ks, header, scope);
}

static void expect_untouched(const gw_principal_t *p)
{
    const unsigned char *b = (const unsigned char *)p;
    for (size_t i = 0; i < sizeof *p; i++)
        if (b[i] != 0x5a)
            fail_msg("expected the principal untouched on error, byte %zu changed", i);
}

static void expect_rc(int got, int want, const char *what)
{
    if (got != want)
        fail_msg("%s: expected %s, got %s", what, yard_errname(want), yard_errname(got));
}

/* ---- the right key --------------------------------------------------------- */

static void test_right_key_passes_and_names_its_row(void **state)
{
    fixture_t *f = *state;
    gw_principal_t p;

    for (int i = 0; i < NKEYS; i++) {
        tkey_t *k = &f->keys[i];
        expect_rc(check_key(&p, f->ks, "Bearer ", k->key, 0), 0, k->name);
        assert_string_equal(p.key_id, k->id);
        assert_string_equal(p.name, k->name);
        assert_string_equal(p.prefix, k->prefix);
        assert_int_equal(p.scopes, k->row.scopes);
        assert_true(p.rate_per_s == k->row.rate_per_s);
        assert_true(p.burst == k->row.burst);
    }
    /* Limits the row leaves to the default come back as 0. */
    expect_rc(check_key(&p, f->ks, "Bearer ", f->keys[K_SUBMIT].key, YARD_SCOPE_SUBMIT), 0,
              "submit key");
    assert_true(p.rate_per_s == 0 && p.burst == 0);
}

/* The principal is a copy: it stays valid after its keyset is freed (ASan
 * would catch a pointer into it). */
static void test_principal_outlives_the_keyset(void **state)
{
    fixture_t *f = *state;
    gw_principal_t p;
    gw_keyset_t *ks = NULL;

    assert_int_equal(gw_auth_keyset_from_rows(&ks, &f->keys[K_READ].row, 1), 0);
    expect_rc(check_key(&p, ks, "Bearer ", f->keys[K_READ].key, YARD_SCOPE_READ), 0, "read key");
    gw_auth_keyset_free(ks);
    assert_string_equal(p.name, f->keys[K_READ].name);
    assert_string_equal(p.key_id, f->keys[K_READ].id);
    gw_auth_keyset_free(NULL);
}

/* ---- 401 ------------------------------------------------------------------- */

static void test_wrong_secret_under_a_known_prefix_is_refused(void **state)
{
    fixture_t *f = *state;
    gw_principal_t p;
    char key[YARD_APIKEY_LEN + 1];

    /* Change one secret character at a time: first, middle, last. */
    static const size_t at[] = {12, 30, YARD_APIKEY_LEN - 1};
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
        strcpy(key, f->keys[K_ADMIN].key);
        key[at[i]] = key[at[i]] == 'a' ? 'b' : 'a';
        expect_rc(check_key(&p, f->ks, "Bearer ", key, 0), YARD_EAUTH, "a wrong secret");
        expect_untouched(&p);
    }
    /* Another key's secret under this key's prefix. */
    strcpy(key, f->keys[K_ADMIN].key);
    memcpy(key + 12, f->keys[K_READ].key + 12, YARD_APIKEY_SECRET_LEN);
    expect_rc(check_key(&p, f->ks, "Bearer ", key, 0), YARD_EAUTH, "another key's secret");
    expect_untouched(&p);
}

static void test_unknown_prefix_is_refused(void **state)
{
    fixture_t *f = *state;
    gw_principal_t p;
    char key[YARD_APIKEY_LEN + 1];

    expect_rc(check_key(&p, f->ks, "Bearer ", f->stranger.key, 0), YARD_EAUTH,
              "a key not in the set");
    expect_untouched(&p);
    /* A known secret under a prefix that is not in the set. */
    strcpy(key, f->stranger.key);
    memcpy(key + 12, f->keys[K_SUBMIT].key + 12, YARD_APIKEY_SECRET_LEN);
    expect_rc(check_key(&p, f->ks, "Bearer ", key, 0), YARD_EAUTH, "a known secret, new prefix");
    expect_untouched(&p);
}

static void test_missing_or_malformed_header_is_refused(void **state)
{
    fixture_t *f = *state;
    const char *key = f->keys[K_ADMIN].key;
    gw_principal_t p;
    char header[160];

    expect_rc(check(&p, f->ks, NULL, 0), YARD_EAUTH, "no header");
    expect_rc(check(&p, f->ks, "", 0), YARD_EAUTH, "an empty header");
    expect_rc(check(&p, f->ks, "Bearer", 0), YARD_EAUTH, "a scheme without a key");
    expect_rc(check(&p, f->ks, "Bearer    ", 0), YARD_EAUTH, "a scheme and spaces");
    expect_rc(check_key(&p, f->ks, "Basic ", key, 0), YARD_EAUTH, "Basic");
    expect_rc(check_key(&p, f->ks, "Token ", key, 0), YARD_EAUTH, "Token");
    expect_rc(check_key(&p, f->ks, "Bearer", key, 0), YARD_EAUTH, "no space after Bearer");
    expect_rc(check_key(&p, f->ks, "Bearerx ", key, 0), YARD_EAUTH, "Bearerx");
    expect_rc(check_key(&p, f->ks, "", key, 0), YARD_EAUTH, "a bare key");
    expect_rc(check_key(&p, f->ks, "Bearer Bearer ", key, 0), YARD_EAUTH, "Bearer twice");
    snprintf(header, sizeof header, "Bearer %s x", key);
    expect_rc(check(&p, f->ks, header, 0), YARD_EAUTH, "trailing junk");
    snprintf(header, sizeof header, "Bearer %s,", key);
    expect_rc(check(&p, f->ks, header, 0), YARD_EAUTH, "a trailing comma");
    snprintf(header, sizeof header, "Bearer \"%s\"", key);
    expect_rc(check(&p, f->ks, header, 0), YARD_EAUTH, "a quoted key");
    /* Only len bytes count: one byte short of the key fails. */
    snprintf(header, sizeof header, "Bearer %s", key);
    expect_rc(gw_auth_check(&p, f->ks, header, strlen(header) - 1, 0), YARD_EAUTH,
              "a truncated key");
    expect_untouched(&p);
    /* A keyset of nothing, and no keyset, refuse every key. */
    gw_keyset_t *empty = NULL;
    assert_int_equal(gw_auth_keyset_from_rows(&empty, NULL, 0), 0);
    expect_rc(check_key(&p, empty, "Bearer ", key, 0), YARD_EAUTH, "an empty keyset");
    gw_auth_keyset_free(empty);
    expect_rc(check_key(&p, NULL, "Bearer ", key, 0), YARD_EAUTH, "no keyset");
}

static void test_scheme_is_case_insensitive_and_spaces_are_trimmed(void **state)
{
    fixture_t *f = *state;
    const char *key = f->keys[K_SUBMIT].key;
    gw_principal_t p;
    char header[160];

    static const char *const forms[][2] = {
        {"bearer ", ""},   {"BEARER ", ""},   {"bEaReR ", ""},     {"Bearer   ", ""},
        {"Bearer\t", ""}, {"  Bearer ", "  "}, {"Bearer ", "\t"},
    };
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        snprintf(header, sizeof header, "%s%s%s", forms[i][0], key, forms[i][1]);
        if (check(&p, f->ks, header, YARD_SCOPE_SUBMIT) != 0)
            fail_msg("expected \"%sKEY%s\" to pass", forms[i][0], forms[i][1]);
        assert_string_equal(p.key_id, f->keys[K_SUBMIT].id);
    }
    /* The header need not be NUL-terminated: it is a view into a buffer. */
    snprintf(header, sizeof header, "Bearer %sGARBAGE", key);
    assert_int_equal(gw_auth_check(&p, f->ks, header, 7 + YARD_APIKEY_LEN, YARD_SCOPE_SUBMIT), 0);
    /* The key itself is case-sensitive. */
    char upper[YARD_APIKEY_LEN + 1];
    strcpy(upper, key);
    for (char *c = upper; *c; c++)
        if (*c >= 'a' && *c <= 'z')
            *c = (char)(*c - 'a' + 'A');
    expect_rc(check_key(&p, f->ks, "Bearer ", upper, 0), YARD_EAUTH, "an upper-cased key");
}

/* ---- 403 ------------------------------------------------------------------- */

static void test_missing_scope_is_forbidden_not_unauthenticated(void **state)
{
    fixture_t *f = *state;
    gw_principal_t p;

    assert_int_not_equal(GW_AUTH_EFORBIDDEN, YARD_EAUTH);
    assert_true(GW_AUTH_EFORBIDDEN < 0);
    expect_rc(check_key(&p, f->ks, "Bearer ", f->keys[K_READ].key, YARD_SCOPE_SUBMIT),
              GW_AUTH_EFORBIDDEN, "a read key submitting");
    expect_untouched(&p);
    expect_rc(check_key(&p, f->ks, "Bearer ", f->keys[K_SUBMIT].key, YARD_SCOPE_READ),
              GW_AUTH_EFORBIDDEN, "a submit key reading");
    expect_rc(check_key(&p, f->ks, "Bearer ", f->keys[K_SUBMIT_READ].key, YARD_SCOPE_ADMIN),
              GW_AUTH_EFORBIDDEN, "a submit,read key doing admin");
    expect_rc(check_key(&p, f->ks, "Bearer ", f->keys[K_SUBMIT].key,
                        YARD_SCOPE_SUBMIT | YARD_SCOPE_READ),
              GW_AUTH_EFORBIDDEN, "a submit key needing submit and read");
    expect_untouched(&p);
    /* A wrong key needing a scope it would lack is still 401, not 403. */
    expect_rc(check_key(&p, f->ks, "Bearer ", f->stranger.key, YARD_SCOPE_ADMIN), YARD_EAUTH,
              "an unknown key needing admin");

    expect_rc(check_key(&p, f->ks, "Bearer ", f->keys[K_SUBMIT_READ].key, YARD_SCOPE_READ), 0,
              "a submit,read key reading");
    /* Admin implies the others; the principal keeps the scopes as granted. */
    static const unsigned needs[] = {YARD_SCOPE_SUBMIT, YARD_SCOPE_READ, YARD_SCOPE_ADMIN,
                                     YARD_SCOPE_ALL};
    for (size_t i = 0; i < sizeof needs / sizeof needs[0]; i++) {
        expect_rc(check_key(&p, f->ks, "Bearer ", f->keys[K_ADMIN].key, needs[i]), 0,
                  "the admin key");
        assert_int_equal(p.scopes, YARD_SCOPE_ADMIN);
    }
}

/* ---- building keysets ------------------------------------------------------ */

static void expect_rows_refused(const gw_key_row_t *rows, size_t n, int want, const char *what)
{
    gw_keyset_t *ks = (gw_keyset_t *)&ks; /* a marker: must stay as it is */
    int rc = gw_auth_keyset_from_rows(&ks, rows, n);
    if (rc != want)
        fail_msg("%s: expected %s, got %s", what, yard_errname(want), yard_errname(rc));
    assert_ptr_equal(ks, (gw_keyset_t *)&ks);
}

static void test_bad_rows_are_refused(void **state)
{
    fixture_t *f = *state;
    gw_key_row_t good = f->keys[K_READ].row, r;
    char long_name[GW_AUTH_NAME_MAX + 2];

    memset(long_name, 'n', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    const struct {
        const char *field;
        const char *text;
        unsigned scopes;
        double rate, burst;
    } bad[] = {
        {"id", "", 1, 0, 0},
        {"id", "00000000-0000-7000-8000-0000000000001", 1, 0, 0}, /* 37 bytes */
        {"prefix", "abcdefg", 1, 0, 0},
        {"prefix", "ABCDEFGH", 1, 0, 0},
        {"name", long_name, 1, 0, 0},
        {"scopes", NULL, 0, 0, 0},
        {"scopes", NULL, 8 | 1, 0, 0},
        {"rate", NULL, 1, -1, 0},
        {"burst", NULL, 1, 0, 0.5},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = good;
        if (strcmp(bad[i].field, "id") == 0)
            r.id = bad[i].text;
        else if (strcmp(bad[i].field, "prefix") == 0)
            r.prefix = bad[i].text;
        else if (strcmp(bad[i].field, "name") == 0)
            r.name = bad[i].text;
        r.scopes = bad[i].scopes;
        r.rate_per_s = bad[i].rate;
        r.burst = bad[i].burst;
        expect_rows_refused(&r, 1, YARD_EINVAL, bad[i].field);
    }
    r = good;
    r.hash = NULL;
    expect_rows_refused(&r, 1, YARD_EINVAL, "no hash");

    /* Two rows with one prefix. */
    gw_key_row_t two[2] = {f->keys[K_READ].row, f->keys[K_ADMIN].row};
    two[1].prefix = two[0].prefix;
    expect_rows_refused(two, 2, YARD_EEXIST, "a shared prefix");
}

/* Enough keys to fill many probe chains: each is found, none answers for
 * another. */
static void test_large_keyset_finds_every_key(void **state)
{
    enum { N = 3000 };
    tkey_t *keys = calloc(N, sizeof *keys);
    gw_key_row_t *rows = calloc(N, sizeof *rows);
    gw_keyset_t *ks = NULL;
    gw_principal_t p;
    char key[YARD_APIKEY_LEN + 1];

    assert_non_null(keys);
    assert_non_null(rows);
    for (int i = 0; i < N; i++) {
        tkey_make(&keys[i], i, YARD_SCOPE_READ, 0, 0);
        rows[i] = keys[i].row;
    }
    assert_int_equal(gw_auth_keyset_from_rows(&ks, rows, N), 0);
    assert_int_equal(gw_auth_keyset_count(ks), N);
    for (int i = 0; i < N; i++) {
        if (check_key(&p, ks, "Bearer ", keys[i].key, YARD_SCOPE_READ) != 0)
            fail_msg("expected key %d of %d to pass", i, N);
        assert_string_equal(p.key_id, keys[i].id);
        /* Key i's prefix with key i+1's secret. */
        strcpy(key, keys[i].key);
        memcpy(key + 12, keys[(i + 1) % N].key + 12, YARD_APIKEY_SECRET_LEN);
        if (check_key(&p, ks, "Bearer ", key, YARD_SCOPE_READ) != YARD_EAUTH)
            fail_msg("expected key %d's prefix with another secret to fail", i);
    }
    gw_auth_keyset_free(ks);
    free(rows);
    free(keys);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_right_key_passes_and_names_its_row),
        T(test_principal_outlives_the_keyset),
        T(test_wrong_secret_under_a_known_prefix_is_refused),
        T(test_unknown_prefix_is_refused),
        T(test_missing_or_malformed_header_is_refused),
        T(test_scheme_is_case_insensitive_and_spaces_are_trimmed),
        T(test_missing_scope_is_forbidden_not_unauthenticated),
        T(test_bad_rows_are_refused),
        T(test_large_keyset_finds_every_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
