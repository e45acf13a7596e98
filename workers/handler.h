/*
 * handler.h - the C handler API of the execute worker.
 *
 * A handler runs one job. The worker runtime looks the job's `type` up in a
 * registry, calls the handler on a handler thread with a deadline and a
 * cancellation flag, records the outcome in PostgreSQL and then acks, naks
 * or dead-letters the message. Handlers know nothing of NATS or PostgreSQL,
 * so they can be written and tested on their own.
 *
 * Teams that compile their own handlers into yard-worker write a function of
 * type wk_handler_fn and add it with wk_registry_add before the worker starts
 * (see workers/main.c). A handler must:
 *   - fill *res: an outcome, optionally result_json (malloc'd, valid JSON,
 *     the runtime frees it) and, unless OK, a reason in res->error;
 *   - return by job->deadline_ms and soon after *job->cancelled becomes
 *     nonzero (check wk_job_check in loops; wk_job_sleep for waits);
 *   - call job->heartbeat (or wk_job_heartbeat) at least every
 *     WK_HEARTBEAT_MS while it works (wk_job_sleep and the built-in sleep,
 *     http and exec handlers do). The runtime extends the job's JetStream
 *     ack deadline (an in-progress ack every AckWait / 3) only while the
 *     handler shows life: its start, then each heartbeat, the last one at
 *     most 2 * WK_HEARTBEAT_MS ago. So a handler keeping this rhythm is
 *     never redelivered while it runs, up to its deadline (plus 5 s of
 *     grace); one that blocks without heartbeats is extended no more, and
 *     JetStream redelivers its job about AckWait later, to another handler
 *     even while this one still runs;
 *   - be safe to run again for the same job: handlers run at least once.
 * Handlers run concurrently on several threads: the `ud` given at
 * registration is shared by all of them.
 *
 * registry.c holds the registry and the helpers below; builtins.c,
 * handler_http.c and handler_exec.c the built-in handlers.
 */
#ifndef WK_HANDLER_H
#define WK_HANDLER_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"

struct json_t; /* jansson's json_t, for the optional JSON helpers below */

/* How a run ended. The runtime maps these to job states and retries. */
typedef enum {
    WK_OUTCOME_OK = 0,    /* succeeded; result_json is the result (NULL = JSON null) */
    WK_OUTCOME_RETRY,     /* failed, try again later (until max_attempts) */
    WK_OUTCOME_FAIL,      /* failed for good: dead-letter now */
    WK_OUTCOME_TIMEOUT,   /* the job's deadline passed */
    WK_OUTCOME_CANCELLED, /* *job->cancelled became nonzero */
    WK_OUTCOME_COUNT      /* not an outcome: the number of outcomes */
} wk_outcome_t;

/* Room for an error message: a reason plus a program's 2 KiB stderr tail. */
#define WK_ERROR_MAX 3072
/* Handlers call the heartbeat at least this often while they work. */
#define WK_HEARTBEAT_MS 1000
/* The helpers look at the cancellation flag at least this often. */
#define WK_POLL_MS 10

/* One job as a handler sees it. Every pointer is owned by the runtime and
 * valid until the handler returns; the handler must not keep any of them. */
typedef struct wk_job {
    const char *id;            /* job id text (UUIDv7) */
    const char *type;          /* the handler's registered type */
    const char *queue;
    const char *trace_id;      /* W3C trace id for logs, or NULL */
    const char *payload;       /* the job's JSON payload text, NUL-terminated ("null" if none) */
    size_t payload_len;        /* strlen(payload) */
    const char *secrets;       /* the job's opened `secrets`: a JSON object of strings,
                                * NUL-terminated; NULL if the job has none. Wiped by the
                                * runtime when the handler returns: never copy it anywhere
                                * that outlives the run (logs, results, errors). exec hands
                                * it to its program on fd 3; the other built-ins ignore it */
    size_t secrets_len;        /* strlen(secrets), 0 if none */
    unsigned attempt;          /* 1 on the first run */
    unsigned max_attempts;
    int64_t deadline_ms;       /* wk_clock_ms() value when the job's timeout expires; 0 = none */
    const atomic_int *cancelled; /* nonzero once the job is cancelled or the worker drains
                                  * hard; NULL = never (tests) */
    void (*heartbeat)(void *ud); /* says the handler is alive, which keeps the JetStream ack
                                  * deadline extended; NULL = none. Cheap (an atomic
                                  * store); call it from the handler thread only */
    void *heartbeat_ud;
} wk_job_t;

/* What a handler reports. The runtime hands it over zeroed (outcome OK,
 * result_json NULL, error ""). */
typedef struct wk_result {
    wk_outcome_t outcome;
    char *result_json;         /* malloc'd JSON text, freed by the runtime; or NULL */
    char error[WK_ERROR_MAX];  /* human-readable reason for anything but OK */
    int64_t defer_ms;          /* with RETRY only: the handler did not try at all (the
                                * host's circuit is open): the runtime redelivers the job
                                * after this many ms without counting an attempt; 0 = an
                                * ordinary retry */
} wk_result_t;

/* A handler: runs job, fills res. ud is the pointer given to wk_registry_add. */
typedef void (*wk_handler_fn)(const wk_job_t *job, wk_result_t *res, void *ud);

/* ---- registry ------------------------------------------------------------
 * Maps a type to a handler. Filled once at start (add, own), then read-only:
 * find and run are safe from any number of threads, add and own are not. */
typedef struct wk_registry wk_registry_t;

/* Creates an empty registry. Returns 0 and sets *out (free with
 * wk_registry_destroy), or YARD_ENOMEM. */
int wk_registry_create(wk_registry_t **out);

/* Calls the destroy functions given to wk_registry_own (last first), then
 * frees r. NULL is a no-op. */
void wk_registry_destroy(wk_registry_t *r);

/* Registers fn for type (copied; must pass wk_type_valid). ud is passed
 * to every call and stays the caller's (see wk_registry_own). Returns 0,
 * YARD_EINVAL for a bad type or NULL fn, YARD_EEXIST if type is taken, or
 * YARD_ENOMEM; r is unchanged on error. */
int wk_registry_add(wk_registry_t *r, const char *type, wk_handler_fn fn, void *ud);

/* Looks up type (type_len bytes, need not be NUL-terminated). Returns 0 and
 * sets *fn and *ud, or YARD_ENOTFOUND leaving them untouched. */
int wk_registry_find(const wk_registry_t *r, const char *type, size_t type_len,
                     wk_handler_fn *fn, void **ud);

/* Gives r ownership of p: destroy(p) is called by wk_registry_destroy. Used
 * for handler state shared by several types. Returns 0, or YARD_ENOMEM in
 * which case p stays the caller's. */
int wk_registry_own(wk_registry_t *r, void *p, void (*destroy)(void *));

/* Runs job->type's handler: zeroes *res, calls the handler, then checks what
 * it reported so the runtime can store it as is: an unknown type gives FAIL
 * (or RETRY, see wk_registry_retry_unknown); an invalid
 * outcome, or a result_json that is not valid JSON, gives FAIL (result_json
 * freed); a missing error message is filled in; the error is made valid
 * UTF-8. The runtime owns res->result_json afterwards. Never fails. */
void wk_registry_run(const wk_registry_t *r, const wk_job_t *job, wk_result_t *res);

/* What wk_registry_run does with a type that has no handler: by default the
 * job fails at once, not retryable, with an error starting "no_handler:"
 * that names the type (it goes to the DLQ and can be replayed after a
 * deploy); with on nonzero it is retried like any retryable failure. */
void wk_registry_retry_unknown(wk_registry_t *r, int on);

/* ---- built-in handlers -------------------------------------------------- */

/* Options of wk_builtins_register, filled from the worker's config. */
typedef struct wk_builtins_opts {
    const char *exec_config; /* config `exec_config`: path of the exec mappings file
                              * (format: ops/exec.conf.example); NULL or "" = none */
    int allow_crash;         /* config `handlers_allow_crash`: register `crash`, which
                              * abort()s the worker (poison-message tests only) */
    struct wk_outbound *outbound; /* the egress guard and breakers of `http` (its ud);
                                   * stays the caller's and must outlive r; NULL: every
                                   * http job fails */
} wk_builtins_opts_t;

/* Registers noop, echo, sleep, fail, http, crash if opts->allow_crash, and
 * one handler per type mapped in opts->exec_config (opts may be NULL). Calls
 * wk_http_global_init. Returns 0, or the first error (the exec file cannot be
 * read or is invalid: YARD_EIO / YARD_ECONFIG, logged with file and line; a
 * mapped type that is already registered: YARD_EEXIST; YARD_ENOMEM). On error
 * r may hold some of the handlers; destroy it. Call before starting threads. */
int wk_builtins_register(wk_registry_t *r, const wk_builtins_opts_t *opts);

/* Initialises libcurl (curl_global_init) once per process; later calls return
 * the first call's result. Thread-safe (pthread_once), but curl_global_init
 * itself is not safe while other threads use libraries it initialises
 * (OpenSSL): call it from main before starting threads, as
 * wk_builtins_register does. Returns 0 or YARD_EIO. */
int wk_http_global_init(void);

/* The `http` handler, public so a team can register it under another type or
 * wrap it. Payload: {"method":"POST","url":"https://...","headers":{"k":"v"},
 * "body":"text" or any JSON value,"timeout_ms":N}; only url is required.
 * 2xx -> OK {"status":N,"body":"<text, at most 64 KiB>"[,"truncated":true]};
 * 429, 5xx and network errors -> RETRY; other statuses -> FAIL; deadline ->
 * TIMEOUT; cancellation -> CANCELLED (noticed within about a second). Only
 * http and https, also on redirects. ud is the worker's wk_outbound_t
 * (outbound.h): every connection passes its egress guard (a refusal is FAIL
 * with the reason; redirects only when egress_follow_redirects is on) and
 * the host's circuit breaker (open: RETRY with defer_ms, no attempt
 * counted). With ud NULL every job fails: there is no unguarded mode. */
void wk_handler_http(const wk_job_t *job, wk_result_t *res, void *ud);

/* ---- helpers for handlers ----------------------------------------------- */

/* Returns CLOCK_MONOTONIC in milliseconds: the clock of deadline_ms. */
int64_t wk_clock_ms(void);

/* Returns CANCELLED if the job is cancelled, else TIMEOUT if its deadline has
 * passed, else OK (keep going). */
wk_outcome_t wk_job_check(const wk_job_t *job);

/* Returns the milliseconds left until the deadline (0 if passed), or
 * INT64_MAX when the job has none. */
int64_t wk_job_remaining_ms(const wk_job_t *job);

/* Calls job->heartbeat if there is one. */
void wk_job_heartbeat(const wk_job_t *job);

/* Sleeps ms milliseconds, heartbeating, and wakes early (within WK_POLL_MS)
 * when the job is cancelled or reaches its deadline. Returns OK after the
 * full sleep, else CANCELLED or TIMEOUT as wk_job_check says. */
wk_outcome_t wk_job_sleep(const wk_job_t *job, int64_t ms);

/* The job's ids as a log context, for YARD_LOG_*(&ctx, ...). */
yard_log_ctx_t wk_job_log_ctx(const wk_job_t *job);

/* Sets res->outcome to o and res->error to the formatted text (truncated to
 * fit). Keeps result_json. fmt may be NULL for an empty error. */
void wk_result_set(wk_result_t *res, wk_outcome_t o, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void wk_result_vset(wk_result_t *res, wk_outcome_t o, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/* Sets result_json to value as compact JSON (any value; value stays the
 * caller's), freeing an earlier result_json; the outcome is unchanged.
 * Returns 0, or YARD_ENOMEM after setting RETRY with a message. */
int wk_result_set_json(wk_result_t *res, const struct json_t *value);

/* Parses the payload with jansson (any JSON value). Returns 0 and sets *out
 * to a new reference (json_decref it), or YARD_EFORMAT after setting res to
 * FAIL with a message naming the job type and the parse error. */
int wk_job_payload_json(struct json_t **out, const wk_job_t *job, wk_result_t *res);

/* Parses the payload as an object (null counts as {}) and unpacks it with
 * jansson's json_unpack format fmt, e.g. "{s:I, s?s!}" ("!": unknown keys
 * are an error). Returns 0 and sets *root (json_decref it; unpacked strings
 * and objects live as long as it), or YARD_EFORMAT after setting res to FAIL
 * with jansson's message ("tcp: payload: Expected integer, got string"). */
int wk_job_payload_unpack(struct json_t **root, const wk_job_t *job, wk_result_t *res,
                          const char *fmt, ...);

/* Returns nonzero if type is a valid job type name: the rule of names.h
 * (what wk_registry_add accepts, and what the gateway lets producers send). */
int wk_type_valid(const char *type);

/* Returns the outcome's stable lower-case name ("ok", "retry", "fail",
 * "timeout", "cancelled"), for logs and metric labels; "unknown" otherwise. */
const char *wk_outcome_name(wk_outcome_t o);

/* Replaces every byte of s[0..len) that is NUL or not part of valid UTF-8
 * with '?', so the text can go into JSON and PostgreSQL as is. */
void wk_utf8_scrub(char *s, size_t len);

#endif
