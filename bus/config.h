/*
 * config.h - Switchyard's one configuration struct.
 *
 * Built in three layers: compiled-in defaults, then a file of `key = value`
 * lines, then YARD_<KEY> environment variables (key upper-cased). Every key
 * is described once in a table (name, type, default, bounds, secret) in
 * config.c; validated at start and read-only afterwards. Strings live in
 * fixed arrays inside the struct, so a config has no heap memory to free.
 */
#ifndef YARD_CONFIG_H
#define YARD_CONFIG_H

#include <stdint.h>
#include <stdio.h>

#define YARD_CONFIG_STR_MAX 512

typedef struct {
    /* connections */
    char nats_url[YARD_CONFIG_STR_MAX];  /* nats://host:port[,nats://...] */
    char nats_token[YARD_CONFIG_STR_MAX]; /* secret; empty = none */
    /* A NATS user and its password (secret); empty = none (or in the URL). */
    char nats_user[YARD_CONFIG_STR_MAX];
    char nats_password[YARD_CONFIG_STR_MAX];
    /* TLS to NATS (tls:// URLs): the CA file that signed the servers'
     * certificates (PEM; empty = the system's), and an optional client
     * certificate and key for servers that verify clients. */
    char nats_tls_ca_file[YARD_CONFIG_STR_MAX];
    char nats_tls_cert_file[YARD_CONFIG_STR_MAX];
    char nats_tls_key_file[YARD_CONFIG_STR_MAX];
    char pg_dsn[YARD_CONFIG_STR_MAX];    /* libpq conninfo or URI; password masked */
    /* logging */
    char log_level[16];
    /* JetStream topology */
    int64_t js_replicas;           /* stream and consumer replicas */
    int64_t js_duplicate_window_s; /* Nats-Msg-Id dedupe window */
    int64_t js_max_deliver;        /* consumer MaxDeliver: ceiling on attempts */
    int64_t js_ack_wait_s;         /* consumer AckWait */
    int64_t js_publish_max_pending; /* async publishes in flight */
    int64_t js_publish_max_pending_bytes; /* ... and the bytes they hold */
    int64_t js_publish_timeout_ms; /* wait for a PubAck */
    int64_t js_events_max_age_s;   /* EVENTS retention */
    int64_t js_dlq_max_age_s;      /* DLQ retention (0 = forever) */
    char js_queues[YARD_CONFIG_STR_MAX]; /* execute queues, comma separated */
    /* HTTP (gateway and the workers' metrics port) */
    char http_addr[64];
    int64_t http_port;
    int64_t http_max_body;
    int64_t http_max_header_bytes;
    int64_t http_max_headers;
    int64_t http_max_connections;
    int64_t http_read_timeout_ms;
    int64_t http_idle_timeout_ms;
    int64_t http_max_connections_per_client; /* open connections from one address */
    int64_t http_max_conn_buffer; /* bodies and answers one connection holds before it is not read */
    int64_t http_max_buffer;      /* ... all connections hold; a body beyond it gets 503 */
    /* auth */
    int64_t auth_disabled;         /* 1 = no API keys (local development only) */
    int64_t auth_refresh_s;        /* API key cache refresh */
    char id_secret[YARD_CONFIG_STR_MAX]; /* secret for idempotency-key ids */
    int64_t rate_per_s;            /* default per-key rate limit (jobs or requests / s) */
    int64_t rate_burst;            /* default per-key burst */
    /* jobs */
    int64_t job_max_attempts;      /* default per job */
    int64_t job_timeout_s;         /* default per job */
    int64_t retry_base_ms;
    int64_t retry_cap_ms;
    /* workers */
    int64_t worker_batch;          /* messages per fetch */
    int64_t worker_concurrency;    /* handler threads (jobs in flight) */
    int64_t worker_drain_timeout_s; /* SIGTERM: let in-flight jobs finish this long */
    int64_t worker_unready_after_s; /* /readyz fails once store writes failed this long */
    int64_t worker_retry_unknown_types; /* 1 = retry jobs of a type without handler */
    int64_t rescue_after_s;        /* republish a job stuck this long whose message is gone */
    int64_t rescue_interval_s;     /* how often the schedule role looks for such jobs */
    int64_t retention_s;           /* keep finished jobs (and attempts) this long */
    int64_t retention_interval_s;  /* how often the schedule role prunes */
    int64_t retention_batch;       /* rows deleted per transaction */
    int64_t schedule_poll_ms;      /* how often the schedule role looks for due jobs and
                                    * schedules */
    int64_t schedule_clock_offset_s; /* added to "now" by the schedule role and the
                                      * schedule routes: tests only (0) */
    int64_t metrics_max_types;     /* job types named in yard_jobs_completed_total; later
                                    * distinct types are counted as "other" */
    char exec_config[YARD_CONFIG_STR_MAX]; /* file mapping job types to programs ("" = none) */
    int64_t handlers_allow_crash;  /* register the `crash` handler (tests only) */
    /* outbound calls (the http handler, notify's webhooks): workers/outbound.h */
    char egress_allow[YARD_CONFIG_STR_MAX]; /* CIDRs the egress guard permits ("" = none) */
    int64_t egress_follow_redirects; /* 1 = follow redirects (each target is checked) */
    int64_t circuit_failures;      /* consecutive failures that open a host's circuit */
    int64_t circuit_cooldown_s;    /* how long an open circuit fails fast */
    /* notify role */
    char notify_secret[YARD_CONFIG_STR_MAX]; /* HMAC-SHA256 key of Yard-Signature */
    int64_t notify_timeout_ms;     /* one webhook POST */
    int64_t notify_max_attempts;   /* tries before the notification goes to the DLQ */
    /* sealed job secrets (bus/sealed.h) */
    char secrets_public_key[YARD_CONFIG_STR_MAX]; /* gateway: base64 X25519 key that seals
                                                   * jobs' `secrets` ("" = refuse them) */
    char secrets_private_keys[YARD_CONFIG_STR_MAX]; /* execute worker: base64 private keys,
                                                     * comma separated, that open them */
} yard_config_t;

/* Fills cfg with the compiled-in defaults. Never fails. */
void yard_config_defaults(yard_config_t *cfg);

/* Sets one key (file spelling: "nats_url") from text. Returns 0, or
 * YARD_ENOTFOUND for an unknown key, YARD_ERANGE / YARD_EINVAL for a bad
 * value; cfg is untouched on error. */
int yard_config_set(yard_config_t *cfg, const char *key, const char *value);

/* Applies a file of `key = value` lines (# comments, blank lines). Returns 0,
 * YARD_EIO if it cannot be read, or the first yard_config_set error; an error
 * is logged with the file name and line. */
int yard_config_load_file(yard_config_t *cfg, const char *path);

/* The same for lines read from f (name is used in messages); f stays open. */
int yard_config_load_stream(yard_config_t *cfg, FILE *f, const char *name);

/* Applies every YARD_<KEY> variable in envp (NULL-terminated, like environ).
 * Unknown YARD_ variables are ignored (YARD_CONFIG and the like). Returns 0 or
 * the first yard_config_set error, logged with the variable's name. */
int yard_config_load_env(yard_config_t *cfg, char *const *envp);

/* Cross-field checks (after all layers). Returns 0 or YARD_ECONFIG, logged. */
int yard_config_validate(const yard_config_t *cfg);

/* Defaults, then path (if not NULL, else $YARD_CONFIG if set), then the
 * environment, then validate. Returns 0 or the first error. */
int yard_config_load(yard_config_t *cfg, const char *path);

/* Strips blanks (isspace) from both ends of s in place and returns the
 * first non-blank character: for parsers of `key = value` files. */
char *yard_config_trim(char *s);

/* Prints every key as `key = value`, secrets masked, to out. */
void yard_config_print(const yard_config_t *cfg, FILE *out);

#endif
