/*
 * auth.c - the API key cache (an immutable keyset: an open-addressing hash
 * table from prefix to key row) and the Bearer check against it.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "auth.h"
#include "db.h"
#include "log.h"

#define AUTH_SCHEME "Bearer"
#define AUTH_SCHEME_LEN (sizeof AUTH_SCHEME - 1)

typedef struct {
    char id[GW_AUTH_ID_MAX + 1];
    char prefix[YARD_APIKEY_PREFIX_LEN + 1];
    uint8_t hash[YARD_APIKEY_HASH_LEN];
    const char *name; /* into gw_keyset_t.names */
    unsigned scopes;
    double rate_per_s;
    double burst;
} auth_entry_t;

struct gw_keyset {
    size_t n;
    auth_entry_t *entries;
    char *names;     /* every entry's name, NUL-terminated, end to end */
    uint32_t *slots; /* entry index + 1, or 0 for an empty slot */
    size_t mask;     /* number of slots - 1 (a power of two >= 2n) */
    uint8_t slot_key[crypto_shorthash_KEYBYTES]; /* random: SipHash of prefixes */
    uint8_t decoy_hash[YARD_APIKEY_HASH_LEN];    /* compared when no prefix matches */
};

/* The first slot to probe for prefix (YARD_APIKEY_PREFIX_LEN bytes). */
static size_t auth_slot(const gw_keyset_t *ks, const char *prefix)
{
    uint64_t h;
    crypto_shorthash((unsigned char *)&h, (const unsigned char *)prefix, YARD_APIKEY_PREFIX_LEN,
                     ks->slot_key);
    return (size_t)h & ks->mask;
}

/* The entry with this prefix, or NULL. */
static const auth_entry_t *auth_find(const gw_keyset_t *ks, const char *prefix)
{
    for (size_t i = auth_slot(ks, prefix);; i = (i + 1) & ks->mask) {
        uint32_t s = ks->slots[i];
        if (s == 0)
            return NULL; /* the table is never full, so probing ends */
        const auth_entry_t *e = &ks->entries[s - 1];
        if (memcmp(e->prefix, prefix, YARD_APIKEY_PREFIX_LEN) == 0)
            return e;
    }
}

/* Why row r cannot be in a keyset, or NULL when it can. */
static const char *auth_row_problem(const gw_key_row_t *r)
{
    if (!r->id || !r->id[0] || strlen(r->id) > GW_AUTH_ID_MAX)
        return "id missing or too long";
    if (!r->name || strlen(r->name) > GW_AUTH_NAME_MAX)
        return "name missing or too long";
    if (!r->prefix || !yard_apikey_is_prefix(r->prefix, strlen(r->prefix)))
        return "prefix is not 8 base32 characters";
    if (!r->hash)
        return "hash missing";
    if (r->scopes == 0 || (r->scopes & ~(unsigned)YARD_SCOPE_ALL))
        return "no scope, or an unknown one";
    if (!isfinite(r->rate_per_s) || r->rate_per_s < 0)
        return "rate_per_s is negative or not finite";
    if (!isfinite(r->burst) || (r->burst != 0 && r->burst < 1))
        return "burst is below 1 or not finite";
    return NULL;
}

void gw_auth_keyset_free(gw_keyset_t *ks)
{
    if (!ks)
        return;
    free(ks->entries);
    free(ks->names);
    free(ks->slots);
    free(ks);
}

size_t gw_auth_keyset_count(const gw_keyset_t *ks)
{
    return ks ? ks->n : 0;
}

/* Allocates an empty keyset sized for n keys, with fresh random keys. */
static int auth_keyset_alloc(gw_keyset_t **out, size_t n, size_t names_len)
{
    gw_keyset_t *ks;
    size_t nslots = 8;

    if (n > UINT32_MAX / 4) {
        YARD_LOG_ERROR(NULL, "API key cache: %zu keys are too many", n);
        return YARD_ERANGE;
    }
    while (nslots < 2 * n)
        nslots *= 2;
    ks = calloc(1, sizeof *ks);
    if (ks) {
        ks->entries = calloc(n ? n : 1, sizeof *ks->entries);
        ks->names = malloc(names_len ? names_len : 1);
        ks->slots = calloc(nslots, sizeof *ks->slots);
    }
    if (!ks || !ks->entries || !ks->names || !ks->slots) {
        YARD_LOG_ERROR(NULL, "API key cache: out of memory for %zu keys", n);
        gw_auth_keyset_free(ks);
        return YARD_ENOMEM;
    }
    ks->mask = nslots - 1;
    crypto_shorthash_keygen(ks->slot_key);
    randombytes_buf(ks->decoy_hash, sizeof ks->decoy_hash);
    *out = ks;
    return 0;
}

int gw_auth_keyset_from_rows(gw_keyset_t **out, const gw_key_row_t *rows, size_t n)
{
    gw_keyset_t *ks = NULL;
    size_t names_len = 0;
    int rc;

    if (sodium_init() < 0) {
        YARD_LOG_ERROR(NULL, "API key cache: libsodium failed to initialise");
        return YARD_ECRYPTO;
    }
    for (size_t i = 0; i < n; i++) {
        const char *problem = auth_row_problem(&rows[i]);
        if (problem) {
            YARD_LOG_ERROR(NULL, "API key cache: key %zu (id %s): %s", i,
                           rows[i].id ? rows[i].id : "none", problem);
            return YARD_EINVAL;
        }
        names_len += strlen(rows[i].name) + 1;
    }
    rc = auth_keyset_alloc(&ks, n, names_len);
    if (rc != 0)
        return rc;

    char *name_at = ks->names;
    for (size_t i = 0; i < n; i++) {
        const gw_key_row_t *r = &rows[i];
        auth_entry_t *e = &ks->entries[i];
        size_t slot = auth_slot(ks, r->prefix);

        while (ks->slots[slot] != 0) {
            if (memcmp(ks->entries[ks->slots[slot] - 1].prefix, r->prefix,
                       YARD_APIKEY_PREFIX_LEN) == 0) {
                YARD_LOG_ERROR(NULL, "API key cache: keys %s and %s share the prefix %s",
                               ks->entries[ks->slots[slot] - 1].id, r->id, r->prefix);
                gw_auth_keyset_free(ks);
                return YARD_EEXIST;
            }
            slot = (slot + 1) & ks->mask;
        }
        ks->slots[slot] = (uint32_t)(i + 1);
        strcpy(e->id, r->id);
        strcpy(e->prefix, r->prefix);
        memcpy(e->hash, r->hash, YARD_APIKEY_HASH_LEN);
        size_t name_len = strlen(r->name) + 1;
        memcpy(name_at, r->name, name_len);
        e->name = name_at;
        name_at += name_len;
        e->scopes = r->scopes;
        e->rate_per_s = r->rate_per_s;
        e->burst = r->burst;
        ks->n++;
    }
    *out = ks;
    return 0;
}

/* ---- loading from PostgreSQL ----------------------------------------------- */

enum { COL_ID, COL_NAME, COL_PREFIX, COL_HASH, COL_SCOPES, COL_RATE, COL_BURST };

static const char auth_load_sql[] =
    "SELECT id::text, name, prefix, encode(key_hash, 'hex'), array_to_string(scopes, ','),"
    " rate_per_s, burst FROM api_keys WHERE revoked_at IS NULL";

/* Converts row i of res into *row, with its hash decoded into hash. Returns
 * NULL, or why the row cannot be used. */
static const char *auth_convert(gw_key_row_t *row, uint8_t hash[YARD_APIKEY_HASH_LEN],
                                const PGresult *res, int i)
{
    const char *hex = PQgetvalue(res, i, COL_HASH);
    const char *scopes = PQgetvalue(res, i, COL_SCOPES);
    size_t bin_len = 0;

    if (strlen(hex) != 2 * YARD_APIKEY_HASH_LEN ||
        sodium_hex2bin(hash, YARD_APIKEY_HASH_LEN, hex, strlen(hex), NULL, &bin_len, NULL) != 0 ||
        bin_len != YARD_APIKEY_HASH_LEN)
        return "key_hash is not a 32-byte hash";
    if (yard_apikey_scopes_parse(&row->scopes, scopes, strlen(scopes)) != 0)
        return "scopes holds an unknown name";
    row->id = PQgetvalue(res, i, COL_ID);
    row->name = PQgetvalue(res, i, COL_NAME);
    row->prefix = PQgetvalue(res, i, COL_PREFIX);
    row->hash = hash;
    row->rate_per_s = PQgetisnull(res, i, COL_RATE) ? 0 : strtod(PQgetvalue(res, i, COL_RATE), NULL);
    row->burst = PQgetisnull(res, i, COL_BURST) ? 0 : strtod(PQgetvalue(res, i, COL_BURST), NULL);
    return auth_row_problem(row);
}

int gw_auth_keyset_load(gw_keyset_t **out, PGconn *conn)
{
    PGresult *res = NULL;
    gw_key_row_t *rows = NULL;
    uint8_t *hashes = NULL;
    size_t n = 0;
    int rc;

    rc = yard_db_query(&res, conn, "loading API keys", auth_load_sql, 0, NULL);
    if (rc != 0)
        return rc; /* logged */
    int nrows = PQntuples(res);
    rows = calloc(nrows ? (size_t)nrows : 1, sizeof *rows);
    hashes = malloc(nrows ? (size_t)nrows * YARD_APIKEY_HASH_LEN : 1);
    if (!rows || !hashes) {
        YARD_LOG_ERROR(NULL, "loading API keys: out of memory for %d keys", nrows);
        rc = YARD_ENOMEM;
        goto cleanup;
    }
    for (int i = 0; i < nrows; i++) {
        const char *problem = auth_convert(&rows[n], hashes + n * YARD_APIKEY_HASH_LEN, res, i);
        if (problem)
            YARD_LOG_WARN(NULL, "loading API keys: skipping key %s: %s",
                          PQgetvalue(res, i, COL_ID), problem);
        else
            n++;
    }
    rc = gw_auth_keyset_from_rows(out, rows, n);

cleanup:
    free(rows);
    free(hashes);
    PQclear(res);
    return rc;
}

/* ---- the check ------------------------------------------------------------- */

static int auth_is_space(char c)
{
    return c == ' ' || c == '\t';
}

/* Finds the key in an Authorization value "Bearer <key>" (scheme in any
 * case, spaces around). Returns 0 and sets *key and *key_len (a view into
 * header), or YARD_EAUTH. */
static int auth_bearer(const char **key, size_t *key_len, const char *header, size_t len)
{
    size_t a = 0, b = len;

    if (!header)
        return YARD_EAUTH;
    while (a < b && auth_is_space(header[a]))
        a++;
    while (b > a && auth_is_space(header[b - 1]))
        b--;
    if (b - a <= AUTH_SCHEME_LEN || strncasecmp(header + a, AUTH_SCHEME, AUTH_SCHEME_LEN) != 0 ||
        !auth_is_space(header[a + AUTH_SCHEME_LEN]))
        return YARD_EAUTH;
    a += AUTH_SCHEME_LEN;
    while (a < b && auth_is_space(header[a]))
        a++;
    *key = header + a;
    *key_len = b - a;
    return 0;
}

int gw_auth_check(gw_principal_t *out, const gw_keyset_t *ks, const char *header, size_t len,
                  unsigned required_scope)
{
    char prefix[YARD_APIKEY_PREFIX_LEN + 1];
    uint8_t hash[YARD_APIKEY_HASH_LEN];
    const char *key;
    size_t key_len;

    if (!ks || auth_bearer(&key, &key_len, header, len) != 0 ||
        yard_apikey_prefix(prefix, key, key_len) != 0)
        return YARD_EAUTH;

    /* The lookup's timing depends on the prefix alone, and the prefix is no
     * secret: `yardctl keys list` prints it and logs name it. Learning that a
     * prefix exists says nothing about its 215-bit secret. From here on the
     * work is the same whether or not the prefix matched: the presented key
     * is always hashed and compared, in constant time, with the entry's hash
     * or with a random decoy, and the two outcomes are combined at the end. */
    const auth_entry_t *e = auth_find(ks, prefix);
    yard_apikey_hash(hash, key, key_len);
    int same = sodium_memcmp(hash, e ? e->hash : ks->decoy_hash, YARD_APIKEY_HASH_LEN) == 0;
    if (!e || !same)
        return YARD_EAUTH;
    if (!yard_apikey_scopes_allow(e->scopes, required_scope))
        return GW_AUTH_EFORBIDDEN;

    memcpy(out->key_id, e->id, sizeof out->key_id);
    memcpy(out->prefix, e->prefix, sizeof out->prefix);
    strcpy(out->name, e->name);
    out->scopes = e->scopes;
    out->rate_per_s = e->rate_per_s;
    out->burst = e->burst;
    return 0;
}
