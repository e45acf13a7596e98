/*
 * test_apikey.c - API keys (bus/apikey.c): generated keys have the
 * documented shape and round-trip through the parser; malformed keys are
 * refused; the hash is BLAKE2b-256 of the whole key (checked against a vector
 * computed elsewhere); scope names parse, format and imply as documented.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "apikey.h"
#include "err.h"

#define B32 "abcdefghijklmnopqrstuvwxyz234567"
/* A well-formed key, and its BLAKE2b-256 from Python's hashlib. */
#define SAMPLE_KEY "yk_abcdefgh_234567abcdefghijklmnopqrstuvwxyz234567abcde"
#define SAMPLE_HASH "dc171e1f53654f70633e62e6347405105481f91b804e691d33daa4071d5e211c"

static void hex(char *out, const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", b[i]);
}

/* ---- generate and parse ---------------------------------------------------- */

static void test_generated_key_has_the_documented_shape(void **state)
{
    char key[YARD_APIKEY_LEN + 1], prefix[YARD_APIKEY_PREFIX_LEN + 1], parsed[9];

    assert_int_equal(YARD_APIKEY_LEN, 55);
    assert_int_equal(yard_apikey_generate(key, sizeof key, prefix), 0);
    assert_int_equal(strlen(key), 55);
    assert_memory_equal(key, "yk_", 3);
    assert_int_equal(key[11], '_');
    assert_int_equal(strlen(prefix), 8);
    assert_memory_equal(key + 3, prefix, 8);
    for (size_t i = 3; i < 55; i++)
        if (i != 11 && !strchr(B32, key[i]))
            fail_msg("expected base32 at offset %zu of %s, got '%c'", i, key, key[i]);
    assert_int_equal(yard_apikey_prefix(parsed, key, strlen(key)), 0);
    assert_string_equal(parsed, prefix);
    assert_true(yard_apikey_is_prefix(prefix, strlen(prefix)));
}

/* Every symbol of the alphabet turns up, and two keys never share a secret. */
static void test_generated_keys_use_the_whole_alphabet(void **state)
{
    char key[YARD_APIKEY_LEN + 1], prev[YARD_APIKEY_LEN + 1] = "", prefix[9];
    int seen[256] = {0};

    for (int n = 0; n < 200; n++) {
        assert_int_equal(yard_apikey_generate(key, sizeof key, prefix), 0);
        if (n > 0 && strcmp(key + 12, prev + 12) == 0)
            fail_msg("expected two different secrets, got %s twice", key + 12);
        strcpy(prev, key);
        for (size_t i = 3; i < 55; i++)
            seen[(unsigned char)key[i]]++;
    }
    for (const char *c = B32; *c; c++)
        if (!seen[(unsigned char)*c])
            fail_msg("expected '%c' in 200 random keys, never seen", *c);
    for (int c = 0; c < 256; c++)
        if (seen[c] && c != '_' && !strchr(B32, c))
            fail_msg("unexpected character '%c' in a generated key", c);
}

static void test_generate_refuses_a_small_buffer(void **state)
{
    char key[YARD_APIKEY_LEN] = "untouched", prefix[9] = "same";

    assert_int_equal(yard_apikey_generate(key, sizeof key, prefix), YARD_ERANGE);
    assert_string_equal(key, "untouched");
    assert_string_equal(prefix, "same");
}

static void expect_malformed(const char *key, size_t len)
{
    char prefix[9] = "same";
    int rc = yard_apikey_prefix(prefix, key, len);
    if (rc != YARD_EAUTH)
        fail_msg("expected EAUTH for \"%.*s\" (%zu bytes), got %s", (int)len, key ? key : "",
                 len, yard_errname(rc));
    assert_string_equal(prefix, "same");
}

static void test_malformed_keys_are_refused(void **state)
{
    char buf[64];

    assert_int_equal(yard_apikey_prefix((char[9]){0}, SAMPLE_KEY, strlen(SAMPLE_KEY)), 0);
    expect_malformed(NULL, 55);
    expect_malformed("", 0);
    expect_malformed(SAMPLE_KEY, 54);                /* one short */
    expect_malformed(SAMPLE_KEY "a", 56);            /* one long */
    expect_malformed("yk_abcdefgh", 11);             /* no secret */
    const struct {
        size_t at;
        char c;
    } bad[] = {
        {0, 'Y'}, {1, 'x'}, {2, '-'},   /* tag */
        {3, 'A'}, {7, '0'}, {10, '1'},  /* prefix: upper case, 0 and 1 are not base32 */
        {11, '-'}, {11, 'a'},           /* separator */
        {12, '8'}, {30, 'Z'}, {54, '='}, /* secret */
        {40, '\0'}, {20, ' '},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memcpy(buf, SAMPLE_KEY, 56);
        buf[bad[i].at] = bad[i].c;
        expect_malformed(buf, 55);
    }
    assert_false(yard_apikey_is_prefix("abcdefg", 7));
    assert_false(yard_apikey_is_prefix("abcdefgh2", 9));
    assert_false(yard_apikey_is_prefix("abcdEfgh", 8));
    assert_true(yard_apikey_is_prefix("abcd2345", 8));
}

/* ---- hash ------------------------------------------------------------------ */

static void test_hash_is_blake2b_256_of_the_whole_key(void **state)
{
    uint8_t h[YARD_APIKEY_HASH_LEN], h2[YARD_APIKEY_HASH_LEN];
    char text[2 * YARD_APIKEY_HASH_LEN + 1];
    char other[YARD_APIKEY_LEN + 1];

    yard_apikey_hash(h, SAMPLE_KEY, strlen(SAMPLE_KEY));
    hex(text, h, sizeof h);
    assert_string_equal(text, SAMPLE_HASH);
    yard_apikey_hash(h2, SAMPLE_KEY, strlen(SAMPLE_KEY));
    assert_memory_equal(h, h2, sizeof h);

    /* A change anywhere, prefix included, changes the hash. */
    for (size_t at = 3; at < YARD_APIKEY_LEN; at += 8) {
        strcpy(other, SAMPLE_KEY);
        other[at] = other[at] == 'a' ? 'b' : 'a';
        yard_apikey_hash(h2, other, strlen(other));
        if (memcmp(h, h2, sizeof h) == 0)
            fail_msg("expected a different hash after changing offset %zu", at);
    }
}

/* ---- scopes ---------------------------------------------------------------- */

static void expect_scopes(const char *text, unsigned want)
{
    unsigned got = 99;
    int rc = yard_apikey_scopes_parse(&got, text, strlen(text));
    if (rc != 0 || got != want)
        fail_msg("expected \"%s\" to parse as %u, got %s and %u", text, want, yard_errname(rc),
                 got);
}

static void test_scopes_parse(void **state)
{
    unsigned got = 99;

    expect_scopes("submit", YARD_SCOPE_SUBMIT);
    expect_scopes("read", YARD_SCOPE_READ);
    expect_scopes("admin", YARD_SCOPE_ADMIN);
    expect_scopes("submit,read", YARD_SCOPE_SUBMIT | YARD_SCOPE_READ);
    expect_scopes(" read , admin ", YARD_SCOPE_READ | YARD_SCOPE_ADMIN);
    expect_scopes("read,read", YARD_SCOPE_READ);
    expect_scopes("admin,submit,read", YARD_SCOPE_ALL);

    static const char *const bad[] = {"",       ",",     "submit,",      ",read", "Submit",
                                      "write",  "sub mit", "submit,,read", " ",     "readx"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = yard_apikey_scopes_parse(&got, bad[i], strlen(bad[i]));
        if (rc != YARD_EINVAL)
            fail_msg("expected EINVAL for \"%s\", got %s", bad[i], yard_errname(rc));
    }
    assert_int_equal(got, 99);
    /* Only len bytes are read. */
    assert_int_equal(yard_apikey_scopes_parse(&got, "submit,read", 6), 0);
    assert_int_equal(got, YARD_SCOPE_SUBMIT);
}

static void test_scopes_format_and_round_trip(void **state)
{
    char buf[YARD_SCOPES_TEXT_MAX + 1];
    unsigned back;

    assert_int_equal(yard_apikey_scopes_format(buf, sizeof buf, YARD_SCOPE_ALL), 0);
    assert_string_equal(buf, "submit,read,admin");
    assert_int_equal(yard_apikey_scopes_format(buf, sizeof buf, 0), 0);
    assert_string_equal(buf, "");
    assert_int_equal(yard_apikey_scopes_format(buf, sizeof buf, 8 | YARD_SCOPE_READ), 0);
    assert_string_equal(buf, "read");
    for (unsigned m = 1; m <= YARD_SCOPE_ALL; m++) {
        assert_int_equal(yard_apikey_scopes_format(buf, sizeof buf, m), 0);
        assert_int_equal(yard_apikey_scopes_parse(&back, buf, strlen(buf)), 0);
        if (back != m)
            fail_msg("expected %u to round-trip through \"%s\", got %u", m, buf, back);
    }
    /* Too small: ERANGE and an empty string; exactly big enough: fine. */
    assert_int_equal(yard_apikey_scopes_format(buf, 6, YARD_SCOPE_SUBMIT), YARD_ERANGE);
    assert_string_equal(buf, "");
    assert_int_equal(yard_apikey_scopes_format(buf, 7, YARD_SCOPE_SUBMIT), 0);
    assert_string_equal(buf, "submit");
    assert_int_equal(yard_apikey_scopes_format(buf, 11, YARD_SCOPE_SUBMIT | YARD_SCOPE_READ),
                     YARD_ERANGE);
}

static void test_admin_implies_every_scope(void **state)
{
    assert_true(yard_apikey_scopes_allow(YARD_SCOPE_ADMIN, YARD_SCOPE_SUBMIT));
    assert_true(yard_apikey_scopes_allow(YARD_SCOPE_ADMIN, YARD_SCOPE_READ));
    assert_true(yard_apikey_scopes_allow(YARD_SCOPE_ADMIN, YARD_SCOPE_ALL));
    assert_true(yard_apikey_scopes_allow(YARD_SCOPE_READ, YARD_SCOPE_READ));
    assert_true(yard_apikey_scopes_allow(YARD_SCOPE_READ, 0));
    assert_false(yard_apikey_scopes_allow(YARD_SCOPE_READ, YARD_SCOPE_SUBMIT));
    assert_false(yard_apikey_scopes_allow(YARD_SCOPE_SUBMIT | YARD_SCOPE_READ, YARD_SCOPE_ADMIN));
    assert_false(yard_apikey_scopes_allow(YARD_SCOPE_SUBMIT,
                                          YARD_SCOPE_SUBMIT | YARD_SCOPE_READ));
    assert_true(yard_apikey_scopes_allow(YARD_SCOPE_SUBMIT | YARD_SCOPE_READ,
                                         YARD_SCOPE_SUBMIT | YARD_SCOPE_READ));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generated_key_has_the_documented_shape),
        cmocka_unit_test(test_generated_keys_use_the_whole_alphabet),
        cmocka_unit_test(test_generate_refuses_a_small_buffer),
        cmocka_unit_test(test_malformed_keys_are_refused),
        cmocka_unit_test(test_hash_is_blake2b_256_of_the_whole_key),
        cmocka_unit_test(test_scopes_parse),
        cmocka_unit_test(test_scopes_format_and_round_trip),
        cmocka_unit_test(test_admin_implies_every_scope),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
