/*
 * auth.h - the gateway's API key cache and the Authorization check.
 *
 * A keyset is an immutable snapshot of the usable (not revoked) rows of
 * api_keys, indexed by key prefix. gw_auth_keyset_load builds one from
 * PostgreSQL and touches no shared state, so it can run on a worker thread
 * with that thread's own connection; the loop thread then swaps the new
 * keyset in for the old one and frees the old one. Lookups only read, so no
 * lock is needed as long as one thread owns the "current keyset" pointer.
 *
 * Results of gw_auth_check, and the HTTP status each one maps to:
 *   0                   authenticated and allowed              -> go on
 *   YARD_EAUTH          no, malformed, unknown, revoked or wrong key,
 *                       or a scheme other than Bearer            -> 401
 *   GW_AUTH_EFORBIDDEN  a valid key that lacks the needed scope  -> 403
 */
#ifndef GW_AUTH_H
#define GW_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "apikey.h"
#include "err.h"
#include "id.h"

/* gw_auth_check's "valid key, missing scope" result (HTTP 403). It is
 * YARD_ESTATE by value, so yard_errname() prints "ESTATE"; compare against
 * this name, not YARD_ESTATE, so the intent reads in the caller. */
#define GW_AUTH_EFORBIDDEN YARD_ESTATE

#define GW_AUTH_ID_MAX YARD_ID_TEXT_LEN /* a key id: uuid text */
#define GW_AUTH_NAME_MAX 800            /* bytes: 200 characters of UTF-8 */

typedef struct gw_keyset gw_keyset_t;

/* Who made a request: a copy of the key's row, so it stays valid after the
 * keyset it came from is freed. Never holds the key or its hash. */
typedef struct {
    char key_id[GW_AUTH_ID_MAX + 1];
    char prefix[YARD_APIKEY_PREFIX_LEN + 1];
    char name[GW_AUTH_NAME_MAX + 1];
    unsigned scopes;   /* as granted (YARD_SCOPE_*); admin implies the others */
    double rate_per_s; /* the key's own rate limit, or 0: use the default */
    double burst;      /* the key's own burst, or 0: use the default */
} gw_principal_t;

/* One key as the loader reads it or a test writes it. Pointers are borrowed
 * for the duration of gw_auth_keyset_from_rows, which copies what it keeps. */
typedef struct {
    const char *id;      /* 1..GW_AUTH_ID_MAX bytes */
    const char *name;    /* at most GW_AUTH_NAME_MAX bytes */
    const char *prefix;  /* YARD_APIKEY_PREFIX_LEN base32 characters */
    const uint8_t *hash; /* YARD_APIKEY_HASH_LEN bytes: yard_apikey_hash(key) */
    unsigned scopes;     /* nonzero, within YARD_SCOPE_ALL */
    double rate_per_s;   /* > 0, or 0 for "the default" */
    double burst;        /* >= 1, or 0 for "the default" */
} gw_key_row_t;

/* Builds a keyset of the n rows (n may be 0: a keyset that refuses every
 * key). Returns 0 and sets *out (free it with gw_auth_keyset_free), or
 * YARD_EINVAL for a row that breaks the rules above, YARD_EEXIST for two rows
 * with one prefix, YARD_ERANGE for more than a billion rows, YARD_ENOMEM or
 * YARD_ECRYPTO; logged, *out untouched.
 * Thread-safe. */
int gw_auth_keyset_from_rows(gw_keyset_t **out, const gw_key_row_t *rows, size_t n);

/* Reads every key of api_keys that is not revoked, in one query on conn
 * (which the calling thread must own), and builds a keyset of them. A row
 * that cannot be used (a hash of the wrong length, say) is skipped with a
 * warning naming its id, so one bad row does not lock every key out. Returns
 * 0 and sets *out (free it with gw_auth_keyset_free), or a yard_db_query
 * error (YARD_EUNAVAIL, YARD_EPG...) or a gw_auth_keyset_from_rows error;
 * logged, *out untouched. */
int gw_auth_keyset_load(gw_keyset_t **out, PGconn *conn);

/* The number of keys in ks (0 for NULL). */
size_t gw_auth_keyset_count(const gw_keyset_t *ks);

/* Frees ks; NULL is a no-op. No gw_auth_check on ks may be running. */
void gw_auth_keyset_free(gw_keyset_t *ks);

/* Authenticates the value of an Authorization header (header, len bytes,
 * need not be NUL-terminated; NULL or empty when the request has none)
 * against ks, and checks that the key grants required_scope (YARD_SCOPE_*
 * bits, all needed; 0 needs none). The scheme is "Bearer" in any case,
 * followed by spaces and the key; surrounding spaces are ignored.
 * Returns 0 and fills *out; YARD_EAUTH when the header is missing or
 * malformed, names another scheme, or the key is unknown or wrong (all
 * -> 401); GW_AUTH_EFORBIDDEN when the key is right but lacks the scope
 * (-> 403). On error *out is untouched. Logs nothing (the caller logs the
 * request with its id). A NULL ks refuses everything with YARD_EAUTH.
 * Timing depends on the key's prefix (public) but not on its secret. */
int gw_auth_check(gw_principal_t *out, const gw_keyset_t *ks, const char *header, size_t len,
                  unsigned required_scope);

#endif
