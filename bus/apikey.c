/*
 * apikey.c - API key generation, shape checks, hashing, and scope names.
 * The key format is described in apikey.h.
 */
#include <string.h>

#include <sodium.h>

#include "apikey.h"
#include "err.h"

/* Lower-case RFC 4648 base32: 32 symbols, so a random byte masked to 5 bits
 * picks each one with equal probability. */
static const char apikey_alphabet[32] = "abcdefghijklmnopqrstuvwxyz234567";

#define APIKEY_PREFIX_AT YARD_APIKEY_TAG_LEN
#define APIKEY_SEP_AT (APIKEY_PREFIX_AT + YARD_APIKEY_PREFIX_LEN)
#define APIKEY_SECRET_AT (APIKEY_SEP_AT + 1)

static const struct {
    const char *name;
    unsigned bit;
} apikey_scopes[] = {
    {"submit", YARD_SCOPE_SUBMIT},
    {"read", YARD_SCOPE_READ},
    {"admin", YARD_SCOPE_ADMIN},
};
#define APIKEY_NSCOPES (sizeof apikey_scopes / sizeof apikey_scopes[0])

static int apikey_is_b32(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '2' && c <= '7');
}

/* Nonzero when all n bytes of s are base32 characters. */
static int apikey_all_b32(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!apikey_is_b32(s[i]))
            return 0;
    return 1;
}

/* Fills out[0..n-1] with random base32 characters. */
static void apikey_random_b32(char *out, size_t n)
{
    uint8_t rnd[YARD_APIKEY_SECRET_LEN];

    for (size_t done = 0; done < n;) {
        size_t k = n - done < sizeof rnd ? n - done : sizeof rnd;
        randombytes_buf(rnd, k);
        for (size_t i = 0; i < k; i++)
            out[done + i] = apikey_alphabet[rnd[i] & 31];
        done += k;
    }
    sodium_memzero(rnd, sizeof rnd);
}

int yard_apikey_generate(char *out, size_t cap, char prefix_out[YARD_APIKEY_PREFIX_LEN + 1])
{
    if (cap < YARD_APIKEY_LEN + 1)
        return YARD_ERANGE;
    if (sodium_init() < 0)
        return YARD_ECRYPTO;
    memcpy(out, YARD_APIKEY_TAG, YARD_APIKEY_TAG_LEN);
    apikey_random_b32(out + APIKEY_PREFIX_AT, YARD_APIKEY_PREFIX_LEN);
    out[APIKEY_SEP_AT] = '_';
    apikey_random_b32(out + APIKEY_SECRET_AT, YARD_APIKEY_SECRET_LEN);
    out[YARD_APIKEY_LEN] = '\0';
    memcpy(prefix_out, out + APIKEY_PREFIX_AT, YARD_APIKEY_PREFIX_LEN);
    prefix_out[YARD_APIKEY_PREFIX_LEN] = '\0';
    return 0;
}

int yard_apikey_is_prefix(const char *s, size_t len)
{
    return len == YARD_APIKEY_PREFIX_LEN && apikey_all_b32(s, len);
}

int yard_apikey_prefix(char prefix_out[YARD_APIKEY_PREFIX_LEN + 1], const char *key, size_t len)
{
    if (!key || len != YARD_APIKEY_LEN || memcmp(key, YARD_APIKEY_TAG, YARD_APIKEY_TAG_LEN) != 0 ||
        key[APIKEY_SEP_AT] != '_' ||
        !apikey_all_b32(key + APIKEY_PREFIX_AT, YARD_APIKEY_PREFIX_LEN) ||
        !apikey_all_b32(key + APIKEY_SECRET_AT, YARD_APIKEY_SECRET_LEN))
        return YARD_EAUTH;
    memcpy(prefix_out, key + APIKEY_PREFIX_AT, YARD_APIKEY_PREFIX_LEN);
    prefix_out[YARD_APIKEY_PREFIX_LEN] = '\0';
    return 0;
}

void yard_apikey_hash(uint8_t out[YARD_APIKEY_HASH_LEN], const char *key, size_t len)
{
    crypto_generichash(out, YARD_APIKEY_HASH_LEN, (const unsigned char *)key, len, NULL, 0);
}

/* The bit of the scope named by s (n bytes), or 0 for an unknown name. */
static unsigned apikey_scope_bit(const char *s, size_t n)
{
    for (size_t i = 0; i < APIKEY_NSCOPES; i++)
        if (strlen(apikey_scopes[i].name) == n && memcmp(apikey_scopes[i].name, s, n) == 0)
            return apikey_scopes[i].bit;
    return 0;
}

int yard_apikey_scopes_parse(unsigned *out, const char *text, size_t len)
{
    unsigned mask = 0;
    size_t start = 0;

    if (!text)
        return YARD_EINVAL;
    while (start <= len) {
        size_t end = start;
        while (end < len && text[end] != ',')
            end++;
        size_t a = start, b = end;
        while (a < b && (text[a] == ' ' || text[a] == '\t'))
            a++;
        while (b > a && (text[b - 1] == ' ' || text[b - 1] == '\t'))
            b--;
        unsigned bit = apikey_scope_bit(text + a, b - a);
        if (!bit)
            return YARD_EINVAL; /* empty item or unknown name */
        mask |= bit;
        start = end + 1;
    }
    *out = mask;
    return 0;
}

int yard_apikey_scopes_format(char *out, size_t cap, unsigned scopes)
{
    size_t len = 0;

    for (size_t i = 0; i < APIKEY_NSCOPES; i++) {
        if (!(scopes & apikey_scopes[i].bit))
            continue;
        size_t n = strlen(apikey_scopes[i].name);
        if (len + (len > 0) + n + 1 > cap) {
            if (cap > 0)
                out[0] = '\0';
            return YARD_ERANGE;
        }
        if (len > 0)
            out[len++] = ',';
        memcpy(out + len, apikey_scopes[i].name, n);
        len += n;
    }
    if (cap == 0)
        return YARD_ERANGE;
    out[len] = '\0';
    return 0;
}

int yard_apikey_scopes_allow(unsigned scopes, unsigned need)
{
    if (scopes & YARD_SCOPE_ADMIN)
        return 1;
    return (scopes & need) == need;
}
