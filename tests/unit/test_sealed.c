/*
 * test_sealed.c - jobs' sealed secrets (bus/sealed.h): a blob opens with
 * the right private key only, names its key id, rotation keyrings pick the
 * key by id, altered or malformed blobs are refused, bad keys are config
 * errors, and the plaintext never shows in the blob.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "sealed.h"

static const char plain[] = "{\"db_password\":\"hunter2-very-secret\"}";

typedef struct {
    char pub[YARD_SEALED_KEY_B64_LEN + 1], priv[YARD_SEALED_KEY_B64_LEN + 1];
    char kid[YARD_SEALED_KEY_ID_LEN + 1];
} pair_t;

static void keygen(pair_t *p)
{
    assert_int_equal(yard_sealed_keygen(p->pub, p->priv, p->kid), 0);
    assert_int_equal(strlen(p->pub), YARD_SEALED_KEY_B64_LEN);
    assert_int_equal(strlen(p->priv), YARD_SEALED_KEY_B64_LEN);
    assert_int_equal(strlen(p->kid), YARD_SEALED_KEY_ID_LEN);
}

/* Seals plain with p's public key; the caller frees *blob. */
static void seal(const pair_t *p, char **blob, size_t *len)
{
    yard_sealer_t *s;
    assert_int_equal(yard_sealer_create(&s, p->pub), 0);
    assert_string_equal(yard_sealer_key_id(s), p->kid);
    assert_int_equal(yard_sealer_seal(s, plain, strlen(plain), blob, len), 0);
    yard_sealer_destroy(s);
    assert_int_equal(strlen(*blob), *len);
}

static void test_round_trip_and_key_id(void **state)
{
    pair_t p;
    keygen(&p);
    char *blob;
    size_t len;
    seal(&p, &blob, &len);
    assert_memory_equal(blob, p.kid, YARD_SEALED_KEY_ID_LEN);
    assert_int_equal(blob[YARD_SEALED_KEY_ID_LEN], '.');
    assert_null(strstr(blob, "hunter2"));
    assert_true(len <= YARD_SEALED_MAX);

    yard_keyring_t *k;
    assert_int_equal(yard_keyring_create(&k, p.priv), 0);
    assert_int_equal(yard_keyring_count(k), 1);
    char *out;
    size_t out_len;
    char kid[YARD_SEALED_KEY_ID_LEN + 1] = "";
    assert_int_equal(yard_keyring_open(k, blob, len, &out, &out_len, kid), 0);
    assert_int_equal(out_len, strlen(plain));
    assert_string_equal(out, plain);
    assert_string_equal(kid, p.kid);
    yard_sealed_free(out, out_len + 1);
    yard_keyring_destroy(k);
    free(blob);
}

static void test_two_seals_differ(void **state)
{
    pair_t p;
    keygen(&p);
    char *a, *b;
    size_t la, lb;
    seal(&p, &a, &la);
    seal(&p, &b, &lb);
    assert_int_equal(la, lb);
    assert_string_not_equal(a, b); /* an ephemeral key per seal */
    free(a);
    free(b);
}

static void test_rotation_keyring_picks_by_id(void **state)
{
    pair_t old, new;
    keygen(&old);
    keygen(&new);
    char *blob_old, *blob_new;
    size_t lo, ln;
    seal(&old, &blob_old, &lo);
    seal(&new, &blob_new, &ln);

    char ring[200];
    snprintf(ring, sizeof ring, " %s , %s,", new.priv, old.priv);
    yard_keyring_t *k;
    assert_int_equal(yard_keyring_create(&k, ring), 0);
    assert_int_equal(yard_keyring_count(k), 2);
    char *out;
    size_t out_len;
    assert_int_equal(yard_keyring_open(k, blob_old, lo, &out, &out_len, NULL), 0);
    assert_string_equal(out, plain);
    yard_sealed_free(out, out_len + 1);
    assert_int_equal(yard_keyring_open(k, blob_new, ln, &out, &out_len, NULL), 0);
    assert_string_equal(out, plain);
    yard_sealed_free(out, out_len + 1);
    yard_keyring_destroy(k);

    /* A worker with only the new key names the old key id. */
    assert_int_equal(yard_keyring_create(&k, new.priv), 0);
    char kid[YARD_SEALED_KEY_ID_LEN + 1] = "";
    out = NULL;
    assert_int_equal(yard_keyring_open(k, blob_old, lo, &out, &out_len, kid), YARD_ENOTFOUND);
    assert_string_equal(kid, old.kid);
    assert_null(out);
    yard_keyring_destroy(k);

    /* An empty keyring opens nothing. */
    assert_int_equal(yard_keyring_create(&k, ""), 0);
    assert_int_equal(yard_keyring_count(k), 0);
    assert_int_equal(yard_keyring_open(k, blob_new, ln, &out, &out_len, kid), YARD_ENOTFOUND);
    assert_string_equal(kid, new.kid);
    yard_keyring_destroy(k);
    free(blob_old);
    free(blob_new);
}

static void test_altered_and_malformed_refused(void **state)
{
    pair_t p;
    keygen(&p);
    char *blob;
    size_t len;
    seal(&p, &blob, &len);
    yard_keyring_t *k;
    assert_int_equal(yard_keyring_create(&k, p.priv), 0);
    char *out = NULL;
    size_t out_len;

    /* One base64 character changed: the box does not open. */
    size_t at = YARD_SEALED_KEY_ID_LEN + 10;
    char was = blob[at];
    blob[at] = was == 'A' ? 'B' : 'A';
    assert_int_equal(yard_keyring_open(k, blob, len, &out, &out_len, NULL), YARD_EAUTH);
    blob[at] = was;
    assert_int_equal(yard_keyring_open(k, blob, len, &out, &out_len, NULL), 0);
    yard_sealed_free(out, out_len + 1);
    out = NULL;

    /* Truncated, no separator, upper-case id, not base64, empty, too short. */
    assert_int_equal(yard_keyring_open(k, blob, len - 4, &out, &out_len, NULL), YARD_EAUTH);
    char bad[64];
    memcpy(bad, blob, sizeof bad - 1);
    bad[sizeof bad - 1] = '\0';
    bad[YARD_SEALED_KEY_ID_LEN] = ':';
    assert_int_equal(yard_keyring_open(k, bad, strlen(bad), &out, &out_len, NULL), YARD_EFORMAT);
    assert_int_equal(yard_keyring_open(k, "ABCDEF12.AAAA", 13, &out, &out_len, NULL),
                     YARD_EFORMAT);
    assert_int_equal(yard_keyring_open(k, "abcdef12.!!!!", 13, &out, &out_len, NULL),
                     YARD_EFORMAT);
    assert_int_equal(yard_keyring_open(k, "", 0, &out, &out_len, NULL), YARD_EFORMAT);
    assert_int_equal(yard_keyring_open(k, "abcdef12.AAAA", 13, &out, &out_len, NULL),
                     YARD_EFORMAT);
    assert_null(out);
    yard_keyring_destroy(k);
    free(blob);
}

static void test_bad_keys_and_sizes(void **state)
{
    yard_sealer_t *s = NULL;
    yard_keyring_t *k = NULL;
    assert_int_equal(yard_sealer_create(&s, "not base64!"), YARD_ECONFIG);
    assert_int_equal(yard_sealer_create(&s, "AAAA"), YARD_ECONFIG); /* 3 bytes */
    assert_int_equal(yard_sealer_create(&s, ""), YARD_ECONFIG);
    assert_null(s);
    assert_int_equal(yard_keyring_create(&k, "AAAA"), YARD_ECONFIG);
    assert_null(k);

    pair_t p;
    keygen(&p);
    char many[1024] = "";
    for (int i = 0; i <= YARD_SEALED_KEYS_MAX; i++) {
        strcat(many, p.priv);
        strcat(many, ",");
    }
    assert_int_equal(yard_keyring_create(&k, many), YARD_ECONFIG);

    assert_int_equal(yard_sealer_create(&s, p.pub), 0);
    char *blob = NULL;
    size_t len;
    assert_int_equal(yard_sealer_seal(s, "", 0, &blob, &len), YARD_ERANGE);
    char *big = malloc(YARD_SEALED_PLAIN_MAX + 1);
    assert_non_null(big);
    memset(big, 'x', YARD_SEALED_PLAIN_MAX + 1);
    assert_int_equal(yard_sealer_seal(s, big, YARD_SEALED_PLAIN_MAX + 1, &blob, &len),
                     YARD_ERANGE);
    assert_null(blob);
    /* The largest plaintext fits the envelope's bound. */
    assert_int_equal(yard_sealer_seal(s, big, YARD_SEALED_PLAIN_MAX, &blob, &len), 0);
    assert_true(len <= YARD_SEALED_MAX);
    assert_int_equal(yard_keyring_create(&k, p.priv), 0);
    char *out;
    size_t out_len;
    assert_int_equal(yard_keyring_open(k, blob, len, &out, &out_len, NULL), 0);
    assert_int_equal(out_len, YARD_SEALED_PLAIN_MAX);
    assert_memory_equal(out, big, YARD_SEALED_PLAIN_MAX);
    yard_sealed_free(out, out_len + 1);
    yard_keyring_destroy(k);
    free(blob);
    free(big);
    yard_sealer_destroy(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_and_key_id),
        cmocka_unit_test(test_two_seals_differ),
        cmocka_unit_test(test_rotation_keyring_picks_by_id),
        cmocka_unit_test(test_altered_and_malformed_refused),
        cmocka_unit_test(test_bad_keys_and_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
