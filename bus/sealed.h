/*
 * sealed.h - jobs' sealed secrets: libsodium sealed boxes with key ids.
 *
 * A job's `secrets` object is sealed at the gateway with the cluster's public
 * key (crypto_box_seal: X25519 + XSalsa20-Poly1305, anonymous sender) and
 * opened only by the execute worker that runs the job, with one of its
 * private keys. The sealed blob is text, so it travels as an envelope string
 * and sits in a TEXT column as it is:
 *
 *     <key id>.<base64 (standard, padded) of the sealed box>
 *
 * The key id is 8 lowercase hex characters: the first 4 bytes of the
 * BLAKE2b-256 hash of the public key. It names the key without revealing
 * anything, so a worker with several private keys (rotation) picks the right
 * one, and a worker without it can say which key it lacks.
 */
#ifndef YARD_SEALED_H
#define YARD_SEALED_H

#include <stddef.h>

#define YARD_SEALED_PLAIN_MAX (16u << 10)   /* secrets JSON text: 16 KiB */
#define YARD_SEALED_KEY_ID_LEN 8            /* hex characters */
#define YARD_SEALED_KEY_B64_LEN 44          /* a 32-byte key in padded base64 */
/* The longest blob a YARD_SEALED_PLAIN_MAX plaintext seals to, with room. */
#define YARD_SEALED_MAX (24u << 10)
#define YARD_SEALED_KEYS_MAX 8              /* private keys a worker holds */

/* The gateway's side: one public key. */
typedef struct yard_sealer yard_sealer_t;

/* Creates a sealer from a base64 public key (32 bytes once decoded; spaces
 * around it are ignored). Returns 0 and sets *out (free with
 * yard_sealer_destroy), YARD_ECONFIG if the text is not such a key,
 * YARD_ECRYPTO if libsodium cannot start, or YARD_ENOMEM. */
int yard_sealer_create(yard_sealer_t **out, const char *public_key_b64);

/* Frees s. NULL is a no-op. */
void yard_sealer_destroy(yard_sealer_t *s);

/* The sealer's key id, NUL-terminated; valid as long as s. */
const char *yard_sealer_key_id(const yard_sealer_t *s);

/* Seals plain[0..len) (1..YARD_SEALED_PLAIN_MAX bytes). Returns 0 and sets
 * *out to a malloc'd NUL-terminated blob (free it) and *out_len to its
 * length; YARD_ERANGE for an empty or too long plaintext; YARD_ENOMEM. Safe
 * from any number of threads. */
int yard_sealer_seal(const yard_sealer_t *s, const char *plain, size_t len, char **out,
                     size_t *out_len);

/* The worker's side: the private keys it holds (several during rotation). */
typedef struct yard_keyring yard_keyring_t;

/* Creates a keyring from comma-separated base64 private keys (32 bytes each;
 * spaces around each are ignored; "" gives an empty keyring, which opens
 * nothing). Returns 0 and sets *out (free with yard_keyring_destroy, which
 * wipes the keys), YARD_ECONFIG for a key that is not valid base64 of 32
 * bytes or more than YARD_SEALED_KEYS_MAX keys (the message never holds key
 * text), YARD_ECRYPTO, or YARD_ENOMEM. */
int yard_keyring_create(yard_keyring_t **out, const char *private_keys_b64);

/* Wipes and frees k. NULL is a no-op. */
void yard_keyring_destroy(yard_keyring_t *k);

/* Number of keys in k. */
size_t yard_keyring_count(const yard_keyring_t *k);

/* Opens blob[0..len). Returns 0 and sets *out to a malloc'd NUL-terminated
 * plaintext (release it with yard_sealed_free, which wipes it) and *out_len;
 * or YARD_EFORMAT when blob is not a sealed blob, YARD_ENOTFOUND when k holds
 * no key with the blob's key id, YARD_EAUTH when the key is there but the box
 * does not open (altered or truncated), YARD_ENOMEM. In every case but
 * YARD_EFORMAT, key_id (if not NULL) receives the blob's key id,
 * NUL-terminated. Safe from any number of threads. */
int yard_keyring_open(const yard_keyring_t *k, const char *blob, size_t len, char **out,
                      size_t *out_len, char key_id[YARD_SEALED_KEY_ID_LEN + 1]);

/* Wipes p[0..len) and frees it. NULL is a no-op. */
void yard_sealed_free(char *p, size_t len);

/* Makes a new key pair: writes the base64 public and private keys and the
 * key id, each NUL-terminated. Returns 0 or YARD_ECRYPTO. */
int yard_sealed_keygen(char public_b64[YARD_SEALED_KEY_B64_LEN + 1],
                       char private_b64[YARD_SEALED_KEY_B64_LEN + 1],
                       char key_id[YARD_SEALED_KEY_ID_LEN + 1]);

#endif
