/*
 * apikey.h - API keys: their text form, their hash, their scopes.
 *
 * A key is 55 characters:
 *
 *     yk_<prefix>_<secret>      e.g. yk_k3q7zd2a_5mz...  (8 + 43 characters)
 *
 * "yk_" marks it as a Switchyard key (easy to grep for in leaked logs); the
 * prefix (8 characters, 40 bits) names the key and is stored in clear, unique,
 * so the gateway finds the one candidate row without hashing; the secret (43
 * characters, 215 bits) is what makes it a credential. Both are drawn from
 * libsodium's randombytes in lower-case RFC 4648 base32 (a-z, 2-7): URL- and
 * shell-safe, one case, no 0/O or 1/l to misread. A key is case-sensitive.
 *
 * Only yard_apikey_hash(key) is stored (api_keys.key_hash); the key itself is
 * shown once, by `yardctl keys create`, and never logged. The prefix is not a
 * secret: `yardctl keys list` prints it and logs may name it.
 *
 * Scopes are a bit mask: submit (post jobs, workflows, schedules), read (get
 * their status, list queues) and admin. Admin implies the other two: a key
 * holding admin passes every scope check (yard_apikey_scopes_allow), though
 * its stored mask keeps only what was granted.
 */
#ifndef YARD_APIKEY_H
#define YARD_APIKEY_H

#include <stddef.h>
#include <stdint.h>

#define YARD_APIKEY_TAG "yk_"
#define YARD_APIKEY_TAG_LEN 3
#define YARD_APIKEY_PREFIX_LEN 8
#define YARD_APIKEY_SECRET_LEN 43
/* Length of a whole key, without the NUL: "yk_" prefix "_" secret. */
#define YARD_APIKEY_LEN (YARD_APIKEY_TAG_LEN + YARD_APIKEY_PREFIX_LEN + 1 + YARD_APIKEY_SECRET_LEN)
#define YARD_APIKEY_HASH_LEN 32

enum {
    YARD_SCOPE_SUBMIT = 1,
    YARD_SCOPE_READ = 2,
    YARD_SCOPE_ADMIN = 4,
    YARD_SCOPE_ALL = 7
};

/* Longest text yard_apikey_scopes_format writes, without the NUL. */
#define YARD_SCOPES_TEXT_MAX (sizeof "submit,read,admin" - 1)

/* Makes a new random key: writes its YARD_APIKEY_LEN characters and a NUL to
 * out (cap bytes) and its prefix and a NUL to prefix_out. Returns 0,
 * YARD_ERANGE when cap < YARD_APIKEY_LEN + 1, or YARD_ECRYPTO when libsodium
 * cannot initialise; on error neither buffer is written. Thread-safe. */
int yard_apikey_generate(char *out, size_t cap, char prefix_out[YARD_APIKEY_PREFIX_LEN + 1]);

/* Checks that key (len bytes, need not be NUL-terminated) has the shape of a
 * key: exactly YARD_APIKEY_LEN bytes, the tag, 8 + 43 base32 characters in
 * lower case, the separator. Returns 0 and writes the prefix and a NUL to
 * prefix_out, or YARD_EAUTH when it does not (prefix_out untouched). Says
 * nothing about whether the key exists. */
int yard_apikey_prefix(char prefix_out[YARD_APIKEY_PREFIX_LEN + 1], const char *key, size_t len);

/* Nonzero when s (len bytes) is a well-formed prefix: 8 lower-case base32
 * characters. */
int yard_apikey_is_prefix(const char *s, size_t len);

/* The hash stored for a key: BLAKE2b-256 (crypto_generichash) of its len
 * bytes, all of them, tag and prefix included. A fast unsalted hash is right
 * here, unlike for passwords: a key carries 215 random bits, so no amount of
 * hashing speed makes guessing it feasible, and a slow hash (argon2) would
 * only burn CPU on every request. Never fails. */
void yard_apikey_hash(uint8_t out[YARD_APIKEY_HASH_LEN], const char *key, size_t len);

/* Parses a comma-separated list of scope names ("submit,read"; spaces around
 * names are ignored, repeats allowed) of len bytes. Returns 0 and sets *out
 * to the mask, or YARD_EINVAL for an empty list, an empty item or an unknown
 * name (*out untouched). */
int yard_apikey_scopes_parse(unsigned *out, const char *text, size_t len);

/* Writes the names of the bits of scopes, comma-separated in the order
 * submit, read, admin, and a NUL to out (cap bytes; YARD_SCOPES_TEXT_MAX + 1
 * always suffices). Bits outside YARD_SCOPE_ALL are ignored; no scope writes
 * "". Returns 0, or YARD_ERANGE when out is too small (out then holds "" if
 * cap > 0). */
int yard_apikey_scopes_format(char *out, size_t cap, unsigned scopes);

/* Nonzero when a key holding scopes may do what needs every bit of need:
 * admin grants everything, otherwise every needed bit must be held. */
int yard_apikey_scopes_allow(unsigned scopes, unsigned need);

#endif
