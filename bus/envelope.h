/*
 * envelope.h - the job envelope and its msgpack codec.
 *
 * Every job travels on the bus as one msgpack map, specified field by field
 * in schemas/envelope.md. Decoding never allocates: string fields are
 * (pointer, length) views into the caller's buffer. Unknown keys are skipped,
 * so old workers keep reading what new producers write; a version above
 * YARD_ENV_VERSION is refused.
 */
#ifndef YARD_ENVELOPE_H
#define YARD_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

#include "names.h"

#define YARD_ENV_VERSION 1

/* Bounds shared with whoever validates input before building an envelope. */
#define YARD_ENV_ID_LEN 36                /* canonical lowercase UUID text */
#define YARD_ENV_NAME_MAX YARD_NAME_MAX   /* type, queue, key, wf, step, sched */
#define YARD_ENV_PAYLOAD_MAX (1u << 20)   /* payload: 1 MiB */
#define YARD_ENV_NOTIFY_MAX (64u << 10)   /* notify: 64 KiB */
#define YARD_ENV_SECRETS_MAX (24u << 10) /* secrets: a sealed blob (bus/sealed.h) */
#define YARD_ENV_IDEM_MAX 255             /* idempotency key */
#define YARD_ENV_TP_MAX 128               /* traceparent */
#define YARD_ENV_ATTEMPTS_MAX 100
#define YARD_ENV_TIMEOUT_MAX 86400        /* seconds */
#define YARD_ENV_TIME_MAX_MS 253402300799999LL /* 9999-12-31T23:59:59.999Z */
#define YARD_ENV_MAX_DEPTH 32             /* container nesting inside an unknown field */

/* A string view, not NUL-terminated. len == 0 means absent (ptr is then NULL
 * in everything the codec produces). */
typedef struct {
    const char *ptr;
    size_t len;
} yard_str_t;

/* A view of a string literal. */
#define YARD_STR(lit) ((yard_str_t){(lit), sizeof(lit) - 1})

typedef enum { YARD_PRIO_LOW = 0, YARD_PRIO_NORMAL = 1, YARD_PRIO_HIGH = 2 } yard_priority_t;

/* Wire keys in quotes; see schemas/envelope.md for the full rules. */
typedef struct {
    uint32_t version;             /* "v"  uint, required, 1..YARD_ENV_VERSION */
    yard_str_t id;                /* "id" str, required: canonical lowercase UUID text */
    yard_str_t type;              /* "type" str, required, names.h rule */
    yard_str_t queue;             /* "queue" str, default "default", names.h rule */
    yard_str_t payload;           /* "payload" str: JSON text; absent = null; <= 1 MiB */
    yard_priority_t priority;     /* "priority" uint 0..2, default normal */
    uint32_t max_attempts;        /* "max_attempts" uint 1..100, default 5 */
    uint32_t timeout_s;           /* "timeout_s" uint 1..86400, default 300 */
    int64_t run_at_ms;            /* "run_at" int, unix ms, 0/absent = now */
    int64_t created_at_ms;        /* "created_at" int, unix ms, required, >= 1 */
    yard_str_t notify;            /* "notify" str: webhook spec as JSON text, optional */
    yard_str_t idempotency_key;   /* "idem" str, optional, <= 255 */
    yard_str_t api_key_id;        /* "key" str, optional: who submitted */
    yard_str_t traceparent;       /* "tp" str, optional: W3C traceparent */
    yard_str_t workflow_id;       /* "wf" str, optional */
    yard_str_t step_id;           /* "step" str, optional */
    yard_str_t schedule;          /* "sched" str, optional: cron schedule that fired it */
    yard_str_t secrets;           /* "secrets" str, optional: sealed blob, never opened here */
} yard_envelope_t;

/* Sets every field to its default: version YARD_ENV_VERSION, queue "default"
 * (a view of a static string), priority normal, max_attempts 5, timeout_s 300,
 * everything else zero or absent. id, type and created_at_ms must still be set
 * before encoding. */
void yard_env_init(yard_envelope_t *env);

/* Returns an upper bound of the encoded size of env (exact for a valid env),
 * SIZE_MAX if the sum overflows; env must not be NULL. */
size_t yard_env_encoded_size_max(const yard_envelope_t *env);

/* Encodes env into buf (capacity cap) without allocating and sets *out_len.
 * Absent optional fields (empty strings, run_at_ms 0) are not written.
 * Returns 0; YARD_EINVAL if an argument is NULL, a required field is missing or
 * a field is out of bounds; YARD_ERANGE if cap is too small. Never writes past
 * buf + cap; on error *out_len is untouched and buf holds unspecified bytes. */
int yard_env_encode(const yard_envelope_t *env, char *buf, size_t cap, size_t *out_len);

/* Decodes len bytes of buf into *out. String fields point INTO buf, so buf
 * must outlive *out (queue may instead point to the static "default").
 * Returns 0 or, in this order of precedence:
 *   YARD_ETRUNC   the input ends before one complete map;
 *   YARD_EFORMAT  not one msgpack map, the never-used byte 0xc1, a non-string
 *                 key, a duplicate known key, trailing bytes after the map, or
 *                 nesting deeper than YARD_ENV_MAX_DEPTH inside an unknown field
 *                 (these stop decoding at once);
 *   YARD_EVERSION v == 0 or v > YARD_ENV_VERSION (reported even when other
 *                 fields have types or bounds this version does not accept);
 *   YARD_EFORMAT  a known field has the wrong msgpack type;
 *   YARD_EINVAL   a required field is missing or a value is out of bounds, or
 *                 out or buf (with len > 0) is NULL.
 * Unknown keys are skipped whatever their type. On error *out is untouched.
 * Never allocates; every length on the wire is checked against len. */
int yard_env_decode(yard_envelope_t *out, const char *buf, size_t len);

/* Nonzero if a and b are equal field by field (strings by content). */
int yard_env_equal(const yard_envelope_t *a, const yard_envelope_t *b);

/* A W3C traceparent is "vv-<32 hex trace id>-<16 hex parent id>-ff". */
#define YARD_TRACE_ID_OFFSET 3
#define YARD_TRACE_ID_LEN 32

/* Copies the trace id of traceparent tp (the bytes where a well-formed one
 * has it) into out, NUL-terminated, for log lines. Returns out, or NULL
 * (out "") when tp is too short to hold one. */
const char *yard_env_trace_id(char out[YARD_TRACE_ID_LEN + 1], yard_str_t tp);

/* Nonzero if s has the bytes of the NUL-terminated lit. */
int yard_str_eq_cstr(yard_str_t s, const char *lit);

/* Nonzero if a and b have the same bytes (two absent strings are equal). */
int yard_str_eq(yard_str_t a, yard_str_t b);

#endif
