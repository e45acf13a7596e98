/*
 * dlq.h - the dead-letter stream for operators: list with filters, show one
 * letter, replay, purge. yardctl (ops/ctl_dlq.c) and the gateway
 * (gateway/dlq.c) both use this module, so a replay means the same thing
 * wherever it is asked for.
 *
 * A dead letter is the DLQ message the workers published when a job died
 * (dlq.<original subject>, with the Yard-* headers of js.h and the job's
 * envelope as data), named by its DLQ stream sequence.
 *
 * A replay of letter seq: reads the job row (jobs.h replay plan); marks a
 * dead job queued with a fresh budget of attempts; republishes the envelope,
 * carrying the granted max_attempts, to the original subject with
 * Nats-Msg-Id <id>.replay.<seq>; records the new JOBS sequence on the row;
 * and only after that PubAck deletes the DLQ copy. Interrupted anywhere and
 * run again, it publishes each letter at most once: the row remembers the
 * last letter replayed (so a copy left behind is only deleted), a mark
 * without a recorded publish is published again under the same id (the
 * duplicate window drops it if the first one landed), and beyond the
 * window a job that a worker already claimed is no longer "queued without
 * a message", so it is not republished.
 *
 * Every function blocks on JetStream (and PostgreSQL for replay): never call
 * them on an event loop thread. Errors are YARD_E* codes, logged once.
 */
#ifndef YARD_DLQ_H
#define YARD_DLQ_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "envelope.h"
#include "js.h"
#include "names.h"

/* One dead letter. The string pointers are owned by the entry (views into
 * its message) and never NULL ("" when the header is absent). */
typedef struct {
    uint64_t seq;              /* DLQ stream sequence */
    const char *job_id;        /* Yard-Job-Id */
    const char *subject;       /* Yard-Original-Subject: where a replay goes */
    const char *error;         /* Yard-Last-Error, raw: may hold any bytes */
    const char *died_at;       /* Yard-Died-At, RFC 3339 UTC */
    int64_t died_at_ms;        /* the same, Unix ms; 0 when unreadable */
    unsigned attempts;         /* Yard-Attempts */
    char queue[YARD_NAME_MAX + 1]; /* the job's queue ("" when unknown) */
    char type[YARD_NAME_MAX + 1];  /* the job's type ("" when unknown) */
    int env_ok;                /* env decoded */
    yard_envelope_t env;       /* the job as it died (views into msg) */
    yard_js_msg_t *msg;        /* owns the bytes above */
} yard_dlq_entry_t;

/* Which letters. Zero / NULL fields do not filter. */
typedef struct {
    const char *queue;          /* the job's queue */
    const char *error_contains; /* substring of the last error */
    int64_t since_ms;           /* died at or after */
    int64_t before_ms;          /* died before (purge --older-than) */
    const char *owner;          /* api_key_id of the job (a non-admin key) */
    const char *job_id;         /* only this job's letters */
    uint64_t after_seq;         /* cursor: sequences above this */
    size_t limit;               /* at most this many (0: no limit) */
    size_t scan_max;            /* look at most at this many messages (0: all);
                                 * a cursor then says where to go on */
} yard_dlq_filter_t;

typedef struct {
    yard_dlq_entry_t *items;
    size_t n;
    uint64_t next_cursor; /* pass as after_seq for more; 0: nothing more */
} yard_dlq_list_t;

/* Fills *out with the letters f selects, oldest first. Returns 0 (free with
 * yard_dlq_list_free), or YARD_EUNAVAIL / YARD_ENATS / YARD_ENOMEM with *out
 * empty. */
int yard_dlq_list(yard_dlq_list_t *out, yard_js_t *js, const yard_dlq_filter_t *f);
void yard_dlq_list_free(yard_dlq_list_t *l);

/* Reads letter seq into *out (clear with yard_dlq_entry_clear). Returns 0,
 * YARD_ENOTFOUND, or an error. */
int yard_dlq_get(yard_dlq_entry_t *out, yard_js_t *js, uint64_t seq);
void yard_dlq_entry_clear(yard_dlq_entry_t *e);

/* Nonzero when e passes f's queue, error, time and owner filters. */
int yard_dlq_matches(const yard_dlq_entry_t *e, const yard_dlq_filter_t *f);

typedef enum {
    YARD_DLQ_REPLAYED = 0,     /* republished and acked; DLQ copy removed */
    YARD_DLQ_WOULD_REPLAY,     /* dry run: would be republished */
    YARD_DLQ_MISSING,          /* no such letter */
    YARD_DLQ_ALREADY_REPLAYED, /* replayed before; only the copy was left
                                * (removed, unless a dry run) */
    YARD_DLQ_FAILED            /* left in the DLQ: see why */
} yard_dlq_outcome_t;

/* "replayed", "would_replay", "missing", "already_replayed", "failed". */
const char *yard_dlq_outcome_name(yard_dlq_outcome_t o);

typedef struct {
    uint64_t seq;
    char job_id[YARD_ENV_ID_LEN + 1];
    char subject[YARD_JS_NAME_MAX];
    yard_dlq_outcome_t outcome;
    unsigned max_attempts; /* replayed / would_replay: what the job runs with */
    unsigned attempts;     /* attempts it had used */
    uint64_t jobs_seq;     /* replayed: its new JOBS message */
    char why[200];         /* failed: the reason */
} yard_dlq_result_t;

typedef struct {
    int dry_run;                /* decide and report, change nothing */
    const char *who;            /* recorded on the row and logged */
    int64_t publish_timeout_ms; /* wait this long for the PubAck */
} yard_dlq_replay_opts_t;

/* Replays letter seq (see the top of this file) and fills *out. Returns 0
 * for every outcome decided about the letter itself (FAILED with why for a
 * letter that cannot be replayed: unreadable, no job row, job not dead), or
 * an error when JetStream or PostgreSQL failed (out->outcome FAILED; run it
 * again later: it resumes). A dry run reads the row too: db is required. */
int yard_dlq_replay(yard_dlq_result_t *out, yard_js_t *js, PGconn *db, uint64_t seq,
                    const yard_dlq_replay_opts_t *o);

/* Deletes the letters f selects (usually before_ms: purge --older-than),
 * or only counts them when dry_run. Each deletion is preceded by its
 * job.purged event (events.h) with actor who. Sets *removed. Returns 0 or
 * an error (*removed then counts what was deleted before it). */
int yard_dlq_purge(size_t *removed, yard_js_t *js, const yard_dlq_filter_t *f, int dry_run,
                   const char *who);

/* The JSON of a letter (the one shape of GET /v1/dlq and `yardctl dlq
 * --json`): {"seq","job_id","type","queue","subject","attempts","error",
 * "died_at","payload"} (payload parsed, null when absent or unreadable).
 * Returns a new reference, or NULL when out of memory. */
json_t *yard_dlq_entry_json(const yard_dlq_entry_t *e);

/* The JSON of a replay result: {"seq","job_id","outcome"} plus
 * "max_attempts" (replayed, would_replay), "jobs_seq" (replayed) and "error"
 * (failed). Returns a new reference, or NULL. */
json_t *yard_dlq_result_json(const yard_dlq_result_t *r);

/* Parses an RFC 3339 UTC time ("2026-01-02T03:04:05Z", fractions allowed)
 * into Unix ms. Returns 0 or YARD_EINVAL. */
int yard_dlq_parse_time(int64_t *out_ms, const char *text);

#endif
