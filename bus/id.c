/*
 * id.c - UUIDv7 generation, UUID text form, idempotency-derived UUIDv8.
 */
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "err.h"
#include "id.h"

#define ID_COUNTER_BITS 42
#define ID_COUNTER_MAX ((UINT64_C(1) << ID_COUNTER_BITS) - 1)

int yard_id_gen_init(yard_id_gen_t *gen)
{
    if (sodium_init() < 0)
        return YARD_ECRYPTO;
    gen->last_ms = 0;
    gen->counter = 0;
    gen->pool_used = sizeof gen->pool;
    return 0;
}

void yard_id_random(yard_id_gen_t *gen, void *buf, size_t n)
{
    if (n > 64) {
        randombytes_buf(buf, n);
        return;
    }
    if (gen->pool_used + n > sizeof gen->pool) {
        randombytes_buf(gen->pool, sizeof gen->pool);
        gen->pool_used = 0;
    }
    memcpy(buf, gen->pool + gen->pool_used, n);
    /* Used bytes are wiped so they cannot be handed out twice. */
    memset(gen->pool + gen->pool_used, 0, n);
    gen->pool_used += n;
}

/* A random counter start with its top bit clear, leaving 2^41 increments. */
static uint64_t id_counter_seed(yard_id_gen_t *gen)
{
    uint64_t r;
    yard_id_random(gen, &r, sizeof r);
    return r & (ID_COUNTER_MAX >> 1);
}

void yard_id_next_at(yard_id_gen_t *gen, int64_t now_ms, yard_id_t *out)
{
    if (now_ms > gen->last_ms) {
        gen->last_ms = now_ms;
        gen->counter = id_counter_seed(gen);
    } else if (gen->counter < ID_COUNTER_MAX) {
        gen->counter++;
    } else {
        gen->last_ms++; /* counter exhausted: borrow the next millisecond */
        gen->counter = id_counter_seed(gen);
    }
    uint64_t ms = (uint64_t)gen->last_ms, c = gen->counter;
    uint8_t *b = out->b;
    for (int i = 0; i < 6; i++)
        b[i] = (uint8_t)(ms >> (40 - 8 * i));
    b[6] = (uint8_t)(0x70 | ((c >> 38) & 0x0f));   /* version 7 + counter bits 41..38 */
    b[7] = (uint8_t)(c >> 30);                      /* counter bits 37..30 */
    b[8] = (uint8_t)(0x80 | ((c >> 24) & 0x3f));   /* variant 10 + counter bits 29..24 */
    b[9] = (uint8_t)(c >> 16);
    b[10] = (uint8_t)(c >> 8);
    b[11] = (uint8_t)c;
    yard_id_random(gen, b + 12, 4);
}

void yard_id_next(yard_id_gen_t *gen, yard_id_t *out)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    yard_id_next_at(gen, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, out);
}

void yard_id_format(const yard_id_t *id, char out[YARD_ID_TEXT_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    char *p = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *p++ = '-';
        *p++ = hex[id->b[i] >> 4];
        *p++ = hex[id->b[i] & 15];
    }
    *p = '\0';
}

static int id_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int yard_id_parse(yard_id_t *out, const char *text, size_t len)
{
    yard_id_t id;
    if (!text || len != YARD_ID_TEXT_LEN)
        return YARD_EINVAL;
    size_t j = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            if (text[j++] != '-')
                return YARD_EINVAL;
        }
        int hi = id_hexval(text[j]), lo = id_hexval(text[j + 1]);
        if (hi < 0 || lo < 0)
            return YARD_EINVAL;
        id.b[i] = (uint8_t)(hi << 4 | lo);
        j += 2;
    }
    *out = id;
    return 0;
}

int64_t yard_id_time_ms(const yard_id_t *id)
{
    if ((id->b[6] >> 4) != 7)
        return -1;
    int64_t ms = 0;
    for (int i = 0; i < 6; i++)
        ms = ms << 8 | id->b[i];
    return ms;
}

void yard_id_secret_from_text(uint8_t out[YARD_ID_SECRET_LEN], const char *text)
{
    static const char fixed[] = "switchyard idempotency v1";
    const char *src = (text && *text) ? text : fixed;
    crypto_generichash(out, YARD_ID_SECRET_LEN, (const unsigned char *)src, strlen(src), NULL,
                       0);
}

static void id_hash_part(crypto_generichash_state *st, const char *s, size_t n)
{
    uint8_t len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (uint8_t)((uint64_t)n >> (8 * i));
    crypto_generichash_update(st, len, sizeof len);
    crypto_generichash_update(st, (const unsigned char *)s, n);
}

void yard_id_from_idempotency(yard_id_t *out, const uint8_t secret[YARD_ID_SECRET_LEN],
                              const char *api_key_id, size_t api_key_id_len,
                              const char *idem_key, size_t idem_key_len)
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, secret, YARD_ID_SECRET_LEN, sizeof out->b);
    id_hash_part(&st, api_key_id, api_key_id_len);
    id_hash_part(&st, idem_key, idem_key_len);
    crypto_generichash_final(&st, out->b, sizeof out->b);
    out->b[6] = (uint8_t)(0x80 | (out->b[6] & 0x0f)); /* version 8 */
    out->b[8] = (uint8_t)(0x80 | (out->b[8] & 0x3f)); /* variant 10 */
}
