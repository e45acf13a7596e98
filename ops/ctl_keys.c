/*
 * ctl_keys.c - `yardctl keys create|list|revoke|notify-secret`: the gateway's API keys in
 * PostgreSQL (table api_keys). A new key is printed once and stored only as
 * its hash (bus/apikey.h); list never shows a key or a hash; revoke marks the
 * row, and gateways drop the key at their next cache refresh; notify-secret
 * prints the secret that signs the key's webhooks (bus/notify_key.h).
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "apikey.h"
#include "ctl.h"
#include "db.h"
#include "err.h"
#include "id.h"
#include "log.h"
#include "notify_key.h"

#define KEYS_CONNECT_TIMEOUT_S 10
#define KEYS_NAME_MAX_CHARS 200 /* api_keys.name CHECK */
#define KEYS_CREATE_TRIES 5     /* new prefixes to draw if one is taken */

const char ctl_keys_help[] =
    "usage: yardctl keys create --name NAME --scopes LIST [--rate N] [--burst N] [--quiet]\n"
    "       yardctl keys list\n"
    "       yardctl keys revoke ID|PREFIX\n"
    "       yardctl keys notify-secret ID|PREFIX\n"
    "\n"
    "Manages the API keys the gateway accepts (Authorization: Bearer KEY), in\n"
    "PostgreSQL (pg_dsn, YARD_PG_DSN). Only a hash of each key is stored.\n"
    "\n"
    "create   makes a key and prints it, its id and prefix. The key is shown this\n"
    "         once and cannot be recovered: store it now.\n"
    "           --name NAME     who or what uses it (1 to 200 characters)\n"
    "           --scopes LIST   comma-separated: submit, read, admin (admin\n"
    "                           implies the others)\n"
    "           --rate N        requests a second this key may make (default:\n"
    "                           the gateway's rate_per_s)\n"
    "           --burst N       requests it may make at once (default: the\n"
    "                           gateway's rate_burst)\n"
    "           --quiet         print only the key, e.g.\n"
    "                           KEY=$(yardctl keys create --name ci --scopes submit --quiet)\n"
    "list     prints every key: id, name, prefix, scopes, limits, and when it was\n"
    "         created, revoked and last used (times in UTC).\n"
    "revoke   revokes the key with this id or prefix (or the key itself); the\n"
    "         gateways refuse it within auth_refresh_s seconds.\n"
    "notify-secret\n"
    "         prints the secret that signs the webhooks of the key's jobs\n"
    "         (Yard-Signature; derived from notify_secret, YARD_NOTIFY_SECRET, which\n"
    "         must be the notify workers' value): give it to the key's owner.\n"
    "\n"
    "Every form takes --json (create then prints the key in the document).\n"
    "\n"
    "Exit status: 0 done, 1 failed (see the log on stderr), 2 bad arguments,\n"
    "3 no such key (revoke).\n";

/* ---- create ---------------------------------------------------------------- */

typedef struct {
    const char *name;
    unsigned scopes;
    const char *rate;  /* validated text, or NULL */
    const char *burst; /* validated text, or NULL */
    int quiet;
} keys_create_opts_t;

/* Matches argv[*i] against option opt ("--name"), as "--name VALUE" or
 * "--name=VALUE". Returns 1 and sets *value (advancing *i past a separate
 * value), 0 when argv[*i] is another option, -1 when the value is missing. */
static int keys_opt(const char **value, int argc, char **argv, int *i, const char *opt)
{
    size_t n = strlen(opt);

    if (strncmp(argv[*i], opt, n) != 0)
        return 0;
    if (argv[*i][n] == '=') {
        *value = argv[*i] + n + 1;
        return 1;
    }
    if (argv[*i][n] != '\0')
        return 0;
    if (*i + 1 >= argc)
        return -1;
    *value = argv[++*i];
    return 1;
}

/* Nonzero when name is 1..KEYS_NAME_MAX_CHARS UTF-8 characters without
 * control characters (it is printed in tables and logs). */
static int keys_name_ok(const char *name)
{
    size_t chars = 0;

    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        if (*p < 0x20 || *p == 0x7f)
            return 0;
        chars += (*p & 0xc0) != 0x80;
    }
    return chars >= 1 && chars <= KEYS_NAME_MAX_CHARS;
}

static int keys_rate_ok(const char *text)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    return *text && *end == '\0' && errno == 0 && isfinite(v) && v > 0;
}

static int keys_burst_ok(const char *text)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    return *text && *end == '\0' && errno == 0 && v >= 1 && v <= INT_MAX;
}

/* Parses create's arguments; returns CTL_EXIT_OK or CTL_EXIT_USAGE (told). */
static int keys_create_args(keys_create_opts_t *o, int argc, char **argv)
{
    const char *scopes = NULL;

    memset(o, 0, sizeof *o);
    for (int i = 2; i < argc; i++) {
        const char *v = NULL;
        int m;
        if ((m = keys_opt(&v, argc, argv, &i, "--name")) != 0)
            o->name = v;
        else if ((m = keys_opt(&v, argc, argv, &i, "--scopes")) != 0)
            scopes = v;
        else if ((m = keys_opt(&v, argc, argv, &i, "--rate")) != 0)
            o->rate = v;
        else if ((m = keys_opt(&v, argc, argv, &i, "--burst")) != 0)
            o->burst = v;
        else if (strcmp(argv[i], "--quiet") == 0 || strcmp(argv[i], "-q") == 0)
            m = o->quiet = 1;
        else
            return ctl_usage_error("keys", "create: unknown argument '%s'", argv[i]);
        if (m < 0)
            return ctl_usage_error("keys", "create: %s needs a value", argv[i]);
    }
    if (!o->name || !keys_name_ok(o->name))
        return ctl_usage_error("keys", "create: --name must be 1 to %d characters, without "
                               "control characters", KEYS_NAME_MAX_CHARS);
    if (!scopes || yard_apikey_scopes_parse(&o->scopes, scopes, strlen(scopes)) != 0)
        return ctl_usage_error("keys", "create: --scopes must list one or more of submit, "
                               "read, admin, separated by commas");
    if (o->rate && !keys_rate_ok(o->rate))
        return ctl_usage_error("keys", "create: --rate must be a number above 0");
    if (o->burst && !keys_burst_ok(o->burst))
        return ctl_usage_error("keys", "create: --burst must be a whole number from 1 to %d",
                               INT_MAX);
    return CTL_EXIT_OK;
}

/* Inserts a new key with options o. Returns 0 and fills key, prefix and id,
 * or a YARD_E* code, logged. A taken prefix (40 random bits, so rare) is
 * redrawn rather than reported. */
static int keys_insert(char key[YARD_APIKEY_LEN + 1], char prefix[YARD_APIKEY_PREFIX_LEN + 1],
                       char id[YARD_ID_TEXT_LEN + 1], PGconn *conn, const keys_create_opts_t *o)
{
    static const char sql[] =
        "INSERT INTO api_keys (id, name, prefix, key_hash, scopes, rate_per_s, burst)"
        " VALUES ($1::uuid, $2, $3, decode($4, 'hex'), string_to_array($5, ','),"
        "         $6::float8, $7::integer)"
        " ON CONFLICT (prefix) DO NOTHING RETURNING id";
    char scopes[YARD_SCOPES_TEXT_MAX + 1];
    char hex[2 * YARD_APIKEY_HASH_LEN + 1];
    uint8_t hash[YARD_APIKEY_HASH_LEN];
    yard_id_gen_t gen;
    yard_id_t uuid;
    int rc;

    if (yard_id_gen_init(&gen) != 0) {
        YARD_LOG_ERROR(NULL, "creating an API key: libsodium failed to initialise");
        return YARD_ECRYPTO;
    }
    yard_apikey_scopes_format(scopes, sizeof scopes, o->scopes);
    for (int attempt = 0; attempt < KEYS_CREATE_TRIES; attempt++) {
        PGresult *res = NULL;
        rc = yard_apikey_generate(key, YARD_APIKEY_LEN + 1, prefix);
        if (rc != 0) {
            YARD_LOG_ERROR(NULL, "creating an API key: %s", yard_strerror(rc));
            return rc;
        }
        yard_apikey_hash(hash, key, YARD_APIKEY_LEN);
        sodium_bin2hex(hex, sizeof hex, hash, sizeof hash);
        yard_id_next(&gen, &uuid);
        yard_id_format(&uuid, id);
        const char *params[] = {id, o->name, prefix, hex, scopes, o->rate, o->burst};
        rc = yard_db_query(&res, conn, "creating an API key", sql, 7, params);
        if (rc != 0)
            return rc; /* logged; the arguments passed the table's CHECKs, so no error
                        * detail ("Failing row contains ...") can show the hash */
        int inserted = PQntuples(res) == 1;
        PQclear(res);
        if (inserted)
            return 0;
        YARD_LOG_INFO(NULL, "API key prefix %s is taken; drawing another", prefix);
    }
    YARD_LOG_ERROR(NULL, "creating an API key: %d prefixes in a row were taken",
                   KEYS_CREATE_TRIES);
    return YARD_EEXIST;
}

/* Records an operator action on key id as an event (ops.key_created,
 * ops.key_revoked); data names the key, never shows it. */
static void keys_event(const yard_config_t *cfg, const char *name, const char *id,
                       const char *key_name, const char *prefix)
{
    char actor[160];
    ctl_operator(actor, sizeof actor);
    json_t *d = json_pack("{s:s, s:s, s:s}", "key_id", id, "name", key_name, "prefix", prefix);
    char *data = d ? json_dumps(d, JSON_COMPACT) : NULL;
    json_decref(d);
    yard_event_t e = {YARD_EVENT_OPS, name, id, NULL, actor, 0, NULL, data};
    ctl_event_publish(cfg, NULL, &e);
    free(data);
}

static int keys_create(PGconn *conn, const yard_config_t *cfg, const keys_create_opts_t *o)
{
    char key[YARD_APIKEY_LEN + 1], prefix[YARD_APIKEY_PREFIX_LEN + 1], id[YARD_ID_TEXT_LEN + 1];
    char scopes[YARD_SCOPES_TEXT_MAX + 1];

    if (keys_insert(key, prefix, id, conn, o) != 0) {
        sodium_memzero(key, sizeof key);
        return CTL_EXIT_FAIL;
    }
    if (o->quiet) {
        printf("%s\n", key);
    } else if (ctl_out_json()) {
        yard_apikey_scopes_format(scopes, sizeof scopes, o->scopes);
        ctl_out_json_print(json_pack("{s:s, s:s, s:s, s:s, s:s}", "id", id, "name", o->name,
                                     "prefix", prefix, "scopes", scopes, "key", key));
    } else {
        yard_apikey_scopes_format(scopes, sizeof scopes, o->scopes);
        printf("created API key \"%s\"\n"
               "  id      %s\n"
               "  prefix  %s\n"
               "  scopes  %s\n"
               "  rate    %s%s\n"
               "  burst   %s\n"
               "\n"
               "%s\n"
               "\n"
               "This is the only time the key is shown: it cannot be shown again or\n"
               "recovered. Store it now; if it is lost, create another and revoke this one.\n",
               o->name, id, prefix, scopes, o->rate ? o->rate : "default",
               o->rate ? "/s" : "", o->burst ? o->burst : "default", key);
    }
    fflush(stdout);
    sodium_memzero(key, sizeof key);
    keys_event(cfg, YARD_EVENT_KEY_CREATED, id, o->name, prefix);
    return CTL_EXIT_OK;
}

/* ---- list ------------------------------------------------------------------ */

#define KEYS_TIME(col) "coalesce(to_char(" col " AT TIME ZONE 'UTC', " \
                       "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '-')"

static const char *const keys_list_heads[] = {"ID",    "NAME",    "PREFIX",  "SCOPES",   "RATE",
                                              "BURST", "CREATED", "REVOKED", "LAST USED"};
#define KEYS_LIST_COLS (int)(sizeof keys_list_heads / sizeof keys_list_heads[0])

static int keys_list(PGconn *conn)
{
    static const char sql[] =
        "SELECT id::text, name, prefix, array_to_string(scopes, ','),"
        " coalesce(rate_per_s::text, 'default'), coalesce(burst::text, 'default'), "
        KEYS_TIME("created_at") ", " KEYS_TIME("revoked_at") ", " KEYS_TIME("last_used_at")
        " FROM api_keys ORDER BY created_at, id";
    static const char *const keys_json_names[KEYS_LIST_COLS] = {
        "id", "name", "prefix", "scopes", "rate_per_s", "burst", "created_at", "revoked_at",
        "last_used_at"};
    PGresult *res = NULL;
    int rc = CTL_EXIT_OK;

    if (yard_db_query(&res, conn, "listing API keys", sql, 0, NULL) != 0)
        return CTL_EXIT_FAIL; /* logged */
    if (ctl_out_json()) {
        json_t *arr = json_array();
        for (int r = 0; arr && r < PQntuples(res); r++) {
            json_t *o = json_object();
            for (int c = 0; o && c < KEYS_LIST_COLS; c++) {
                const char *v = PQgetvalue(res, r, c);
                json_object_set_new(o, keys_json_names[c],
                                    strcmp(v, "-") == 0 || strcmp(v, "default") == 0
                                        ? json_null()
                                        : json_string(v));
            }
            json_array_append_new(arr, o);
        }
        rc = ctl_out_json_print(json_pack("{s:o*}", "keys", arr)) < 0 ? CTL_EXIT_FAIL
                                                                      : CTL_EXIT_OK;
    } else {
        ctl_table_t *t = ctl_table_new(keys_list_heads, KEYS_LIST_COLS, 0);
        for (int r = 0; t && r < PQntuples(res); r++) {
            const char *row[KEYS_LIST_COLS];
            for (int c = 0; c < KEYS_LIST_COLS; c++)
                row[c] = PQgetvalue(res, r, c);
            ctl_table_add(t, row);
        }
        if (t)
            ctl_table_print(t, stdout);
        else
            rc = CTL_EXIT_FAIL;
        ctl_table_free(t);
    }
    PQclear(res);
    return rc;
}

/* ---- revoke ---------------------------------------------------------------- */

static int keys_revoke(PGconn *conn, const yard_config_t *cfg, const char *arg)
{
    static const char sql[] =
        "WITH k AS (SELECT id, name, prefix, revoked_at FROM api_keys"
        "           WHERE id = $1::uuid OR prefix = $2),"
        " u AS (UPDATE api_keys a SET revoked_at = now() FROM k"
        "       WHERE a.id = k.id AND k.revoked_at IS NULL RETURNING a.id)"
        " SELECT k.id::text, k.name, k.prefix, " KEYS_TIME("k.revoked_at") " FROM k";
    char id_text[YARD_ID_TEXT_LEN + 1], prefix[YARD_APIKEY_PREFIX_LEN + 1];
    const char *params[2] = {NULL, NULL};
    int is_key = strncmp(arg, YARD_APIKEY_TAG, YARD_APIKEY_TAG_LEN) == 0;
    PGresult *res = NULL;
    yard_id_t id;
    int rc = CTL_EXIT_FAIL;

    if (yard_id_parse(&id, arg, strlen(arg)) == 0) {
        yard_id_format(&id, id_text);
        params[0] = id_text;
    } else if (is_key ? yard_apikey_prefix(prefix, arg, strlen(arg)) == 0
                      : yard_apikey_is_prefix(arg, strlen(arg))) {
        params[1] = is_key ? prefix : arg;
    } else {
        /* Something that starts like a key may be one: never echo it. */
        YARD_LOG_ERROR(NULL, "revoking an API key: '%s' is not a key id (uuid), a prefix "
                       "(8 characters a-z, 2-7) or a key", is_key ? "yk_..." : arg);
        return CTL_EXIT_FAIL;
    }
    if (yard_db_query(&res, conn, "revoking an API key", sql, 2, params) != 0)
        return CTL_EXIT_FAIL; /* logged */
    if (PQntuples(res) == 0) {
        YARD_LOG_ERROR(NULL, "revoking an API key: no key has the %s %s",
                       params[0] ? "id" : "prefix", params[0] ? params[0] : params[1]);
        rc = CTL_EXIT_NOTFOUND;
        goto cleanup;
    }
    const char *revoked_at = PQgetvalue(res, 0, 3);
    if (ctl_out_json()) {
        ctl_out_json_print(json_pack("{s:s, s:s, s:s, s:b}", "id", PQgetvalue(res, 0, 0), "name",
                                     PQgetvalue(res, 0, 1), "prefix", PQgetvalue(res, 0, 2),
                                     "already_revoked", strcmp(revoked_at, "-") != 0));
    } else if (strcmp(revoked_at, "-") != 0) {
        printf("key %s (\"%s\", prefix %s) was already revoked at %s\n", PQgetvalue(res, 0, 0),
               PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2), revoked_at);
    } else {
        printf("revoked key %s (\"%s\", prefix %s); gateways refuse it within %lld s\n",
               PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2),
               (long long)cfg->auth_refresh_s);
        fflush(stdout);
        keys_event(cfg, YARD_EVENT_KEY_REVOKED, PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1),
                   PQgetvalue(res, 0, 2));
    }
    rc = CTL_EXIT_OK;

cleanup:
    PQclear(res);
    return rc;
}

/* ---- notify-secret --------------------------------------------------------- */

/* Prints the webhook secret of the key with id or prefix arg. */
static int keys_notify_secret(PGconn *conn, const yard_config_t *cfg, const char *arg)
{
    static const char sql[] =
        "SELECT id::text FROM api_keys WHERE id = $1::uuid OR prefix = $2";
    char id_text[YARD_ID_TEXT_LEN + 1], secret[YARD_NOTIFY_KEY_SECRET_LEN + 1];
    const char *params[2] = {NULL, NULL};
    PGresult *res = NULL;
    yard_id_t id;
    int rc = CTL_EXIT_FAIL;
    if (!cfg->notify_secret[0]) {
        YARD_LOG_ERROR(NULL, "notify-secret: notify_secret (YARD_NOTIFY_SECRET) is not set: "
                             "use the notify workers' value");
        return CTL_EXIT_FAIL;
    }
    if (yard_id_parse(&id, arg, strlen(arg)) == 0) {
        yard_id_format(&id, id_text);
        params[0] = id_text;
    } else if (yard_apikey_is_prefix(arg, strlen(arg))) {
        params[1] = arg;
    } else {
        YARD_LOG_ERROR(NULL, "notify-secret: '%s' is not a key id (uuid) or a prefix "
                             "(8 characters a-z, 2-7)",
                       strncmp(arg, YARD_APIKEY_TAG, YARD_APIKEY_TAG_LEN) == 0 ? "yk_..." : arg);
        return CTL_EXIT_FAIL;
    }
    if (yard_db_query(&res, conn, "looking up an API key", sql, 2, params) != 0)
        return CTL_EXIT_FAIL; /* logged */
    if (PQntuples(res) != 1) {
        YARD_LOG_ERROR(NULL, "notify-secret: no key has the %s %s", params[0] ? "id" : "prefix",
                       params[0] ? params[0] : params[1]);
    } else if (yard_notify_key_secret(secret, cfg->notify_secret, PQgetvalue(res, 0, 0)) == 0) {
        printf("%s\n", secret);
        sodium_memzero(secret, sizeof secret);
        rc = CTL_EXIT_OK;
    }
    PQclear(res);
    return rc;
}

/* ---- dispatch -------------------------------------------------------------- */

int ctl_cmd_keys(const yard_config_t *cfg, int argc, char **argv)
{
    keys_create_opts_t create;
    PGconn *conn = NULL;
    const char *sub = argc > 1 ? argv[1] : "";
    int rc;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(ctl_keys_help, stdout);
            return CTL_EXIT_OK;
        }
    }
    if (strcmp(sub, "create") == 0) {
        rc = keys_create_args(&create, argc, argv);
        if (rc != CTL_EXIT_OK)
            return rc;
    } else if (strcmp(sub, "list") == 0) {
        if (argc > 2)
            return ctl_usage_error(argv[0], "list: unknown argument '%s'", argv[2]);
    } else if (strcmp(sub, "revoke") == 0 || strcmp(sub, "notify-secret") == 0) {
        if (argc != 3)
            return ctl_usage_error(argv[0], "%s needs one key id or prefix", sub);
    } else {
        if (!sub[0])
            return ctl_usage_error(argv[0], "needs a subcommand: create, list, revoke or "
                                            "notify-secret");
        return ctl_usage_error(argv[0], "unknown subcommand '%s': expected create, list, "
                               "revoke or notify-secret", sub);
    }
    if (yard_db_connect(&conn, cfg->pg_dsn, KEYS_CONNECT_TIMEOUT_S) != 0)
        return CTL_EXIT_FAIL; /* logged, password hidden */
    if (strcmp(sub, "create") == 0)
        rc = keys_create(conn, cfg, &create);
    else if (strcmp(sub, "list") == 0)
        rc = keys_list(conn);
    else if (strcmp(sub, "notify-secret") == 0)
        rc = keys_notify_secret(conn, cfg, argv[2]);
    else
        rc = keys_revoke(conn, cfg, argv[2]);
    yard_db_close(conn);
    return rc;
}
