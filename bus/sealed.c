/*
 * sealed.c - seals and opens jobs' secrets (format and contracts in sealed.h).
 */
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "sealed.h"

#define KEY_LEN crypto_box_PUBLICKEYBYTES
#define KEY_ID_BYTES (YARD_SEALED_KEY_ID_LEN / 2)
#define B64_VARIANT sodium_base64_VARIANT_ORIGINAL

struct yard_sealer {
    unsigned char pk[KEY_LEN];
    char key_id[YARD_SEALED_KEY_ID_LEN + 1];
};

typedef struct {
    unsigned char pk[KEY_LEN];
    unsigned char sk[crypto_box_SECRETKEYBYTES];
    char key_id[YARD_SEALED_KEY_ID_LEN + 1];
} keyring_key_t;

struct yard_keyring {
    size_t count;
    keyring_key_t keys[YARD_SEALED_KEYS_MAX];
};

_Static_assert(crypto_box_SECRETKEYBYTES == KEY_LEN, "X25519 keys are 32 bytes");

/* Writes the key id of public key pk into out. */
static void key_id_of(char out[YARD_SEALED_KEY_ID_LEN + 1], const unsigned char pk[KEY_LEN])
{
    unsigned char h[crypto_generichash_BYTES];
    crypto_generichash(h, sizeof h, pk, KEY_LEN, NULL, 0);
    sodium_bin2hex(out, YARD_SEALED_KEY_ID_LEN + 1, h, KEY_ID_BYTES);
}

/* Decodes len bytes of base64 text b64 (spaces ignored) into exactly
 * KEY_LEN bytes. Returns 0 or YARD_ECONFIG. */
static int key_decode(unsigned char out[KEY_LEN], const char *b64, size_t len)
{
    size_t n = 0;
    const char *end = NULL;
    if (sodium_base642bin(out, KEY_LEN, b64, len, " \t\r\n", &n, &end, B64_VARIANT) != 0 ||
        n != KEY_LEN || end != b64 + len) {
        sodium_memzero(out, KEY_LEN);
        return YARD_ECONFIG;
    }
    return 0;
}

int yard_sealer_create(yard_sealer_t **out, const char *public_key_b64)
{
    if (sodium_init() < 0)
        return YARD_ECRYPTO;
    yard_sealer_t *s = calloc(1, sizeof *s);
    if (!s)
        return YARD_ENOMEM;
    if (!public_key_b64 || key_decode(s->pk, public_key_b64, strlen(public_key_b64)) < 0) {
        YARD_LOG_ERROR(NULL, "sealed: secrets_public_key is not the base64 text of a 32-byte "
                             "public key (make one with `yardctl secrets keygen`)");
        free(s);
        return YARD_ECONFIG;
    }
    key_id_of(s->key_id, s->pk);
    *out = s;
    return 0;
}

void yard_sealer_destroy(yard_sealer_t *s)
{
    free(s);
}

const char *yard_sealer_key_id(const yard_sealer_t *s)
{
    return s->key_id;
}

int yard_sealer_seal(const yard_sealer_t *s, const char *plain, size_t len, char **out,
                     size_t *out_len)
{
    if (len == 0 || len > YARD_SEALED_PLAIN_MAX)
        return YARD_ERANGE;
    size_t box_len = len + crypto_box_SEALBYTES;
    size_t b64_cap = sodium_base64_ENCODED_LEN(box_len, B64_VARIANT); /* with its NUL */
    unsigned char *box = malloc(box_len);
    char *blob = malloc(YARD_SEALED_KEY_ID_LEN + 1 + b64_cap);
    if (!box || !blob) {
        free(box);
        free(blob);
        return YARD_ENOMEM;
    }
    crypto_box_seal(box, (const unsigned char *)plain, len, s->pk);
    memcpy(blob, s->key_id, YARD_SEALED_KEY_ID_LEN);
    blob[YARD_SEALED_KEY_ID_LEN] = '.';
    sodium_bin2base64(blob + YARD_SEALED_KEY_ID_LEN + 1, b64_cap, box, box_len, B64_VARIANT);
    free(box);
    *out = blob;
    *out_len = YARD_SEALED_KEY_ID_LEN + 1 + strlen(blob + YARD_SEALED_KEY_ID_LEN + 1);
    return 0;
}

int yard_keyring_create(yard_keyring_t **out, const char *private_keys_b64)
{
    if (sodium_init() < 0)
        return YARD_ECRYPTO;
    yard_keyring_t *k = sodium_malloc(sizeof *k);
    if (!k)
        return YARD_ENOMEM;
    memset(k, 0, sizeof *k);
    const char *p = private_keys_b64 ? private_keys_b64 : "";
    while (*p) {
        size_t n = strcspn(p, ",");
        size_t lead = 0;
        while (lead < n && (p[lead] == ' ' || p[lead] == '\t'))
            lead++;
        if (lead < n) { /* an empty item (",,", a trailing comma) is skipped */
            if (k->count == YARD_SEALED_KEYS_MAX) {
                YARD_LOG_ERROR(NULL, "sealed: secrets_private_keys holds more than %d keys",
                               YARD_SEALED_KEYS_MAX);
                goto fail;
            }
            keyring_key_t *key = &k->keys[k->count];
            if (key_decode(key->sk, p + lead, n - lead) < 0) {
                YARD_LOG_ERROR(NULL, "sealed: key %zu of secrets_private_keys is not the base64 "
                                     "text of a 32-byte private key", k->count + 1);
                goto fail;
            }
            crypto_scalarmult_base(key->pk, key->sk);
            key_id_of(key->key_id, key->pk);
            k->count++;
        }
        p += n;
        if (*p == ',')
            p++;
    }
    *out = k;
    return 0;
fail:
    sodium_free(k); /* sodium_free wipes the memory */
    return YARD_ECONFIG;
}

void yard_keyring_destroy(yard_keyring_t *k)
{
    if (k)
        sodium_free(k);
}

size_t yard_keyring_count(const yard_keyring_t *k)
{
    return k ? k->count : 0;
}

/* Nonzero if s[0..n) is lowercase hex. */
static int is_lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

int yard_keyring_open(const yard_keyring_t *k, const char *blob, size_t len, char **out,
                      size_t *out_len, char key_id[YARD_SEALED_KEY_ID_LEN + 1])
{
    const size_t head = YARD_SEALED_KEY_ID_LEN + 1;
    if (!blob || len <= head || len > YARD_SEALED_MAX || blob[YARD_SEALED_KEY_ID_LEN] != '.' ||
        !is_lower_hex(blob, YARD_SEALED_KEY_ID_LEN))
        return YARD_EFORMAT;
    char kid[YARD_SEALED_KEY_ID_LEN + 1];
    memcpy(kid, blob, YARD_SEALED_KEY_ID_LEN);
    kid[YARD_SEALED_KEY_ID_LEN] = '\0';

    size_t box_cap = (len - head) / 4 * 3 + 3;
    unsigned char *box = malloc(box_cap);
    if (!box)
        return YARD_ENOMEM;
    size_t box_len = 0;
    const char *end = NULL;
    if (sodium_base642bin(box, box_cap, blob + head, len - head, NULL, &box_len, &end,
                          B64_VARIANT) != 0 ||
        end != blob + len || box_len <= crypto_box_SEALBYTES) {
        free(box);
        return YARD_EFORMAT;
    }
    if (key_id)
        memcpy(key_id, kid, sizeof kid);

    const keyring_key_t *key = NULL;
    for (size_t i = 0; k && i < k->count && !key; i++)
        if (memcmp(k->keys[i].key_id, kid, sizeof kid) == 0)
            key = &k->keys[i];
    if (!key) {
        free(box);
        return YARD_ENOTFOUND;
    }
    size_t plain_len = box_len - crypto_box_SEALBYTES;
    char *plain = malloc(plain_len + 1);
    if (!plain) {
        free(box);
        return YARD_ENOMEM;
    }
    if (crypto_box_seal_open((unsigned char *)plain, box, box_len, key->pk, key->sk) != 0) {
        free(box);
        yard_sealed_free(plain, plain_len + 1);
        return YARD_EAUTH;
    }
    free(box);
    plain[plain_len] = '\0';
    *out = plain;
    *out_len = plain_len;
    return 0;
}

void yard_sealed_free(char *p, size_t len)
{
    if (!p)
        return;
    sodium_memzero(p, len);
    free(p);
}

int yard_sealed_keygen(char public_b64[YARD_SEALED_KEY_B64_LEN + 1],
                       char private_b64[YARD_SEALED_KEY_B64_LEN + 1],
                       char key_id[YARD_SEALED_KEY_ID_LEN + 1])
{
    if (sodium_init() < 0)
        return YARD_ECRYPTO;
    unsigned char pk[KEY_LEN], sk[KEY_LEN];
    crypto_box_keypair(pk, sk);
    sodium_bin2base64(public_b64, YARD_SEALED_KEY_B64_LEN + 1, pk, KEY_LEN, B64_VARIANT);
    sodium_bin2base64(private_b64, YARD_SEALED_KEY_B64_LEN + 1, sk, KEY_LEN, B64_VARIANT);
    key_id_of(key_id, pk);
    sodium_memzero(sk, sizeof sk);
    return 0;
}
