/*
 * job_spec.h - one job as a producer describes it, validated.
 *
 * POST /v1/jobs takes one job object; POST /v1/jobs/batch takes
 * {"jobs":[...]} of them. Both go through gw_job_spec_parse, which knows
 * every field, its type and bounds, and answers with a message that names
 * the field. Unknown fields are refused, so a typo never silently drops a
 * setting.
 *
 *   type          string  required  [a-z0-9][a-z0-9._-]{0,63}
 *   queue         string  "default" same rule; must be a served queue
 *   payload       any     null      JSON value, at most 1 MiB encoded
 *   priority      string  "normal"  low | normal | high
 *   max_attempts  integer default   1..100
 *   timeout_s     integer default   1..86400
 *   run_at        string  now       RFC 3339 time; in the future: scheduled
 *   notify        string|object     webhook URL, or {"url": URL, "on"?: [...]} with
 *                                   on from succeeded, failed, dead (default
 *                                   succeeded, dead); stored as {"url","on"}
 *   idempotency_key string          1..255 bytes (batch items; single jobs
 *                                   use the Idempotency-Key header)
 *   secrets       object            string values, at most 16 KiB encoded;
 *                                   sealed at once with the rules' sealer
 *                                   (bus/sealed.h): only the blob is kept
 */
#ifndef GW_JOB_SPEC_H
#define GW_JOB_SPEC_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "envelope.h"
#include "sealed.h"

/* A parsed job. Strings are views into the json_t it came from (keep it
 * alive), except payload_json and notify_json which are owned. */
typedef struct {
    const char *type;
    const char *queue;
    char *payload_json; /* compact JSON text, or NULL for no payload */
    size_t payload_len;
    char *notify_json;  /* compact JSON text, or NULL */
    size_t notify_len;
    yard_priority_t priority;
    uint32_t max_attempts;
    uint32_t timeout_s;
    int64_t run_at_ms;  /* 0 = now */
    const char *idempotency_key; /* NULL if none */
    char *secrets_sealed; /* the sealed `secrets` blob (owned), or NULL */
    size_t secrets_sealed_len;
} gw_job_spec_t;

/* What the gateway allows and defaults to. */
typedef struct {
    const char *const *queues; /* served queues */
    size_t nqueues;
    uint32_t default_max_attempts;
    uint32_t default_timeout_s;
    const yard_sealer_t *sealer; /* seals `secrets`; NULL: a job with secrets is refused */
} gw_job_rules_t;

/* Validates obj (a JSON object) against rules into *out. Returns 0 (free
 * with gw_job_spec_clear), or YARD_EINVAL with a message for the client in
 * err (cap bytes) naming the field; *out is then cleared. */
int gw_job_spec_parse(gw_job_spec_t *out, json_t *obj, const gw_job_rules_t *rules, char *err,
                      size_t cap);

/* Frees what a parsed spec owns; safe on a zeroed or cleared spec. */
void gw_job_spec_clear(gw_job_spec_t *spec);

/* Parses an RFC 3339 date-time ("2026-11-22T10:00:00Z",
 * "2026-11-22T12:00:00.250+02:00") into Unix milliseconds. Returns 0, or
 * YARD_EINVAL leaving *out_ms untouched. */
int gw_parse_rfc3339(int64_t *out_ms, const char *s, size_t len);

#endif
