/*
 * config.c - the configuration table and its three layers.
 *
 * Each key is one row: name, type, offset into yard_config_t, default,
 * bounds, and whether it is a secret (masked when printed). Adding a key is
 * adding a field in config.h and a row here.
 */
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "redact.h"
#include "err.h"
#include "log.h"

typedef enum { CFG_STR, CFG_INT, CFG_BOOL } cfg_type_t;

typedef struct {
    const char *name;
    cfg_type_t type;
    size_t offset;
    size_t size; /* strings: capacity of the array */
    const char *def;
    int64_t min, max;
    int secret;
} cfg_key_t;

#define STR(f, d, secret) {#f, CFG_STR, offsetof(yard_config_t, f), sizeof(((yard_config_t *)0)->f), d, 0, 0, secret}
#define INT(f, d, lo, hi) {#f, CFG_INT, offsetof(yard_config_t, f), sizeof(int64_t), #d, lo, hi, 0}
#define BOOL(f, d) {#f, CFG_BOOL, offsetof(yard_config_t, f), sizeof(int64_t), #d, 0, 1, 0}

static const cfg_key_t cfg_keys[] = {
    STR(nats_url, "nats://127.0.0.1:4222", 0),
    STR(nats_token, "", 1),
    STR(nats_user, "", 0),
    STR(nats_password, "", 1),
    STR(nats_tls_ca_file, "", 0),
    STR(nats_tls_cert_file, "", 0),
    STR(nats_tls_key_file, "", 0),
    STR(pg_dsn, "postgresql://yard@127.0.0.1:5432/yard", 1),
    STR(log_level, "info", 0),
    INT(js_replicas, 1, 1, 5),
    INT(js_duplicate_window_s, 7200, 1, 7 * 86400),
    INT(js_max_deliver, 25, 2, 1000),
    INT(js_ack_wait_s, 60, 1, 86400 + 600),
    INT(js_publish_max_pending, 32768, 1, 1 << 20),
    INT(js_publish_max_pending_bytes, 67108864, 1 << 20, INT64_C(1) << 34),
    INT(js_publish_timeout_ms, 5000, 10, 600000),
    INT(js_events_max_age_s, 604800, 60, 365LL * 86400),
    INT(js_dlq_max_age_s, 0, 0, 3650LL * 86400),
    STR(js_queues, "default", 0),
    STR(http_addr, "127.0.0.1", 0),
    INT(http_port, 8080, 0, 65535),
    INT(http_max_body, 1048576, 1024, 64LL << 20),
    INT(http_max_header_bytes, 8192, 1024, 1 << 20),
    INT(http_max_headers, 64, 4, 1024),
    INT(http_max_connections, 1024, 1, 1 << 20),
    INT(http_read_timeout_ms, 10000, 50, 600000),
    INT(http_idle_timeout_ms, 60000, 50, 3600000),
    INT(http_max_connections_per_client, 256, 1, 1 << 20),
    INT(http_max_conn_buffer, 2097152, 65536, INT64_C(1) << 32),
    INT(http_max_buffer, 268435456, 1048576, INT64_C(1) << 40),
    BOOL(auth_disabled, 0),
    INT(auth_refresh_s, 5, 1, 3600),
    STR(id_secret, "", 1),
    INT(rate_per_s, 1000, 1, 10000000),
    INT(rate_burst, 2000, 1, 10000000),
    INT(job_max_attempts, 5, 1, 100),
    INT(job_timeout_s, 300, 1, 86400),
    INT(retry_base_ms, 1000, 1, 3600000),
    INT(retry_cap_ms, 300000, 1, 86400000),
    INT(worker_batch, 256, 1, 1024),
    INT(worker_concurrency, 64, 1, 4096),
    INT(worker_drain_timeout_s, 30, 0, 86400),
    INT(worker_unready_after_s, 5, 1, 3600),
    BOOL(worker_retry_unknown_types, 0),
    INT(rescue_after_s, 120, 1, 86400),
    INT(rescue_interval_s, 10, 1, 3600),
    INT(retention_s, 1209600, 60, 3650LL * 86400),
    INT(retention_interval_s, 300, 1, 86400),
    INT(retention_batch, 1000, 1, 100000),
    INT(schedule_poll_ms, 100, 10, 60000),
    INT(schedule_clock_offset_s, 0, -3650LL * 86400, 3650LL * 86400),
    INT(metrics_max_types, 50, 0, 1000),
    STR(exec_config, "", 0),
    BOOL(handlers_allow_crash, 0),
    STR(egress_allow, "", 0),
    BOOL(egress_follow_redirects, 0),
    INT(circuit_failures, 5, 1, 1000),
    INT(circuit_cooldown_s, 30, 1, 86400),
    STR(notify_secret, "", 1),
    INT(notify_timeout_ms, 10000, 100, 300000),
    INT(notify_max_attempts, 8, 1, 100),
    STR(secrets_public_key, "", 0),
    STR(secrets_private_keys, "", 1),
};
#define CFG_NKEYS (sizeof cfg_keys / sizeof cfg_keys[0])

static const cfg_key_t *cfg_find(const char *name, size_t len)
{
    for (size_t i = 0; i < CFG_NKEYS; i++) {
        if (strlen(cfg_keys[i].name) == len && strncasecmp(cfg_keys[i].name, name, len) == 0)
            return &cfg_keys[i];
    }
    return NULL;
}

/* Parses value for key k into *out (an int64 or a string copied into dst). */
static int cfg_parse(const cfg_key_t *k, const char *value, int64_t *num)
{
    if (k->type == CFG_STR)
        return strlen(value) < k->size ? 0 : YARD_ERANGE;
    if (k->type == CFG_BOOL) {
        static const char *const yes[] = {"1", "true", "yes", "on"};
        static const char *const no[] = {"0", "false", "no", "off"};
        for (size_t i = 0; i < 4; i++) {
            if (strcasecmp(value, yes[i]) == 0) {
                *num = 1;
                return 0;
            }
            if (strcasecmp(value, no[i]) == 0) {
                *num = 0;
                return 0;
            }
        }
        return YARD_EINVAL;
    }
    char *end;
    errno = 0;
    long long v = strtoll(value, &end, 10);
    if (errno == ERANGE)
        return YARD_ERANGE;
    if (end == value || *end != '\0')
        return YARD_EINVAL;
    if (v < k->min || v > k->max)
        return YARD_ERANGE;
    *num = v;
    return 0;
}

static int cfg_set_key(yard_config_t *cfg, const cfg_key_t *k, const char *value)
{
    int64_t num = 0;
    int rc = cfg_parse(k, value, &num);
    if (rc < 0)
        return rc;
    char *field = (char *)cfg + k->offset;
    if (k->type == CFG_STR)
        memcpy(field, value, strlen(value) + 1);
    else
        memcpy(field, &num, sizeof num);
    return 0;
}

static void cfg_log_bad(const cfg_key_t *k, const char *where, const char *value, int rc)
{
    if (rc == YARD_ERANGE && k->type == CFG_INT)
        YARD_LOG_ERROR(NULL, "config %s: %s=%s out of range [%lld, %lld]", where, k->name,
                       k->secret ? "***" : value, (long long)k->min, (long long)k->max);
    else if (rc == YARD_ERANGE)
        YARD_LOG_ERROR(NULL, "config %s: %s is longer than %zu bytes", where, k->name,
                       k->size - 1);
    else
        YARD_LOG_ERROR(NULL, "config %s: %s=%s is not a valid %s", where, k->name,
                       k->secret ? "***" : value,
                       k->type == CFG_BOOL ? "boolean (true/false)" : "integer");
}

void yard_config_defaults(yard_config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < CFG_NKEYS; i++) {
        int rc = cfg_set_key(cfg, &cfg_keys[i], cfg_keys[i].def);
        (void)rc; /* defaults are valid by construction; tested */
    }
}

int yard_config_set(yard_config_t *cfg, const char *key, const char *value)
{
    const cfg_key_t *k = cfg_find(key, strlen(key));
    if (!k)
        return YARD_ENOTFOUND;
    return cfg_set_key(cfg, k, value);
}

char *yard_config_trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

int yard_config_load_file(yard_config_t *cfg, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        YARD_LOG_ERROR(NULL, "config: cannot read %s: %s", path, strerror(errno));
        return YARD_EIO;
    }
    int rc = yard_config_load_stream(cfg, f, path);
    fclose(f);
    return rc;
}

int yard_config_load_stream(yard_config_t *cfg, FILE *f, const char *path)
{
    char line[2048], where[600];
    int lineno = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        lineno++;
        snprintf(where, sizeof where, "%s:%d", path, lineno);
        if (!strchr(line, '\n') && !feof(f)) {
            YARD_LOG_ERROR(NULL, "config %s: line longer than %zu bytes", where, sizeof line - 2);
            rc = YARD_ERANGE;
            break;
        }
        char *s = yard_config_trim(line);
        if (*s == '\0' || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            YARD_LOG_ERROR(NULL, "config %s: expected `key = value`", where);
            rc = YARD_EINVAL;
            break;
        }
        *eq = '\0';
        char *key = yard_config_trim(s), *value = yard_config_trim(eq + 1);
        size_t vl = strlen(value);
        if (vl >= 2 && value[0] == '"' && value[vl - 1] == '"') {
            value[vl - 1] = '\0';
            value++;
        }
        const cfg_key_t *k = cfg_find(key, strlen(key));
        if (!k) {
            YARD_LOG_ERROR(NULL, "config %s: unknown key `%s`", where, key);
            rc = YARD_ENOTFOUND;
            break;
        }
        rc = cfg_set_key(cfg, k, value);
        if (rc < 0)
            cfg_log_bad(k, where, value, rc);
    }
    return rc;
}

int yard_config_load_env(yard_config_t *cfg, char *const *envp)
{
    for (; envp && *envp; envp++) {
        const char *var = *envp;
        if (strncmp(var, "YARD_", 5) != 0)
            continue;
        const char *eq = strchr(var, '=');
        if (!eq)
            continue;
        const cfg_key_t *k = cfg_find(var + 5, (size_t)(eq - var - 5));
        if (!k)
            continue;
        int rc = cfg_set_key(cfg, k, eq + 1);
        if (rc < 0) {
            char where[80];
            snprintf(where, sizeof where, "environment (%.*s)", (int)(eq - var), var);
            cfg_log_bad(k, where, eq + 1, rc);
            return rc;
        }
    }
    return 0;
}

int yard_config_validate(const yard_config_t *cfg)
{
    yard_log_level_t lvl;
    if (yard_log_parse_level(&lvl, cfg->log_level) < 0) {
        YARD_LOG_ERROR(NULL, "config: log_level `%s` is not debug|info|warn|error|off",
                       cfg->log_level);
        return YARD_ECONFIG;
    }
    if (cfg->nats_url[0] == '\0' || cfg->pg_dsn[0] == '\0') {
        YARD_LOG_ERROR(NULL, "config: nats_url and pg_dsn must not be empty");
        return YARD_ECONFIG;
    }
    if (cfg->retry_base_ms > cfg->retry_cap_ms) {
        YARD_LOG_ERROR(NULL, "config: retry_base_ms (%lld) exceeds retry_cap_ms (%lld)",
                       (long long)cfg->retry_base_ms, (long long)cfg->retry_cap_ms);
        return YARD_ECONFIG;
    }
    if (cfg->job_max_attempts >= cfg->js_max_deliver) {
        YARD_LOG_ERROR(NULL,
                       "config: job_max_attempts (%lld) must be below js_max_deliver (%lld), "
                       "the consumer's ceiling",
                       (long long)cfg->job_max_attempts, (long long)cfg->js_max_deliver);
        return YARD_ECONFIG;
    }
    return 0;
}

int yard_config_load(yard_config_t *cfg, const char *path)
{
    extern char **environ;
    int rc;
    yard_config_defaults(cfg);
    if (!path)
        path = getenv("YARD_CONFIG");
    if (path && *path && (rc = yard_config_load_file(cfg, path)) < 0)
        return rc;
    if ((rc = yard_config_load_env(cfg, environ)) < 0)
        return rc;
    return yard_config_validate(cfg);
}

void yard_config_print(const yard_config_t *cfg, FILE *out)
{
    for (size_t i = 0; i < CFG_NKEYS; i++) {
        const cfg_key_t *k = &cfg_keys[i];
        const char *field = (const char *)cfg + k->offset;
        fprintf(out, "%s = ", k->name);
        if (k->type != CFG_STR) {
            int64_t v;
            memcpy(&v, field, sizeof v);
            fprintf(out, "%lld\n", (long long)v);
        } else if (strcmp(k->name, "pg_dsn") == 0 || strcmp(k->name, "nats_url") == 0) {
            char masked[4096];
            fprintf(out, "%s\n", yard_redact_dsn(masked, sizeof masked, field));
        } else if (k->secret && field[0]) {
            fprintf(out, "***\n");
        } else {
            fprintf(out, "%s\n", field);
        }
    }
}
