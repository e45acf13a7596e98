/*
 * id.h - job ids.
 *
 * Fresh jobs get UUIDv7 ids (RFC 9562): 48 bits of Unix milliseconds, then a
 * 42-bit counter that restarts at a random value each millisecond and a 32-bit
 * random tail (libsodium), so ids from one generator sort in creation order.
 * A job submitted with an Idempotency-Key gets a UUIDv8 derived with keyed
 * BLAKE2b from (API key id, idempotency key): the same pair always maps to the
 * same id, on every gateway replica sharing the secret.
 */
#ifndef YARD_ID_H
#define YARD_ID_H

#include <stddef.h>
#include <stdint.h>

#define YARD_ID_TEXT_LEN 36 /* canonical text, without the NUL */
#define YARD_ID_SECRET_LEN 32

typedef struct {
    uint8_t b[16];
} yard_id_t;

/* One generator per thread: it is not locked. It draws randomness from
 * libsodium 256 bytes at a time (one getrandom call per ~40 ids, not one
 * per id). */
typedef struct {
    int64_t last_ms;
    uint64_t counter; /* 42 bits used */
    uint8_t pool[256];
    size_t pool_used;
} yard_id_gen_t;

/* Initialises libsodium (idempotent) and the generator. Returns 0 or
 * YARD_ECRYPTO. */
int yard_id_gen_init(yard_id_gen_t *gen);

/* Makes the next UUIDv7; strictly greater than every earlier id of gen, even
 * if the clock steps back or more than 2^41 ids are made in one millisecond
 * (then the timestamp runs ahead of the clock). */
void yard_id_next(yard_id_gen_t *gen, yard_id_t *out);

/* Same as yard_id_next with a caller-supplied clock (tests). */
void yard_id_next_at(yard_id_gen_t *gen, int64_t now_ms, yard_id_t *out);

/* Fills buf with n (<= 64) random bytes from gen's pool, refilling it from
 * libsodium when it runs low. For ids and trace ids, not for keys. */
void yard_id_random(yard_id_gen_t *gen, void *buf, size_t n);

/* Writes the canonical lowercase text (36 chars) and a NUL to out. */
void yard_id_format(const yard_id_t *id, char out[YARD_ID_TEXT_LEN + 1]);

/* Parses canonical text (either case) of exactly len == 36 bytes. Returns 0,
 * or YARD_EINVAL leaving *out untouched. */
int yard_id_parse(yard_id_t *out, const char *text, size_t len);

/* The Unix millisecond timestamp of a UUIDv7, or -1 for another version. */
int64_t yard_id_time_ms(const yard_id_t *id);

/* Derives the secret used for idempotency ids from configured text: BLAKE2b
 * of text (any length); an empty text gives a fixed, public key (fine for
 * one tenant, logged as a warning by the caller). */
void yard_id_secret_from_text(uint8_t out[YARD_ID_SECRET_LEN], const char *text);

/* The UUIDv8 for (api_key_id, idem_key): keyed BLAKE2b over both, each
 * length-prefixed so no two pairs collide by concatenation. */
void yard_id_from_idempotency(yard_id_t *out, const uint8_t secret[YARD_ID_SECRET_LEN],
                              const char *api_key_id, size_t api_key_id_len,
                              const char *idem_key, size_t idem_key_len);

#endif
