/*
 * events.h - lifecycle events on the EVENTS stream: one message per state
 * change of a job or workflow and per operator action, with who did it
 * (the actor), when, the trace id, the job or workflow id and a small data
 * object. The audit role records each as one audit_log row (audit.h).
 *
 * Subjects (YARD_SUBJ_EVENT_* in js.h):
 *   events.jobs.<name>       job.<name>: accepted (the gateway's grouped
 *                            event, accepted.h), started, attempt_failed,
 *                            succeeded, dead, cancelled, replayed, purged
 *   events.workflows.<name>  workflow.<name>
 *   events.ops.<name>        ops.<name>: key_created, key_revoked, ...
 *
 * Wire format: one JSON object (jansson), version 1:
 *   {"v":1,"id":"<event id>","event":"job.succeeded","at":<Unix ms>,
 *    "actor":"…","trace_id":"…"|null,"job_id":"…"|null,
 *    "workflow_id":"…"|null,"target":"…"|null,"data":{…}}
 * Unknown fields are ignored by readers.
 *
 * The event id (also the Nats-Msg-Id) is derived from the event alone:
 *   ev.<domain>.<name>.<subject id>[.<key>]
 * where the subject id is the job's or workflow's id (ops: the target, a
 * key id or a schedule name) and key tells repeats of the same event apart
 * (an attempt number, a DLQ sequence). So publishing the same event again
 * (a retry, a redelivered job message) is a no-op within JetStream's
 * duplicate window, and audit_log's unique event_id catches it after.
 */
#ifndef YARD_EVENTS_H
#define YARD_EVENTS_H

#include <stddef.h>
#include <stdint.h>

#include "js.h"

typedef enum { YARD_EVENT_JOB = 0, YARD_EVENT_WORKFLOW, YARD_EVENT_OPS } yard_event_domain_t;

/* Room for an event id and its NUL (ids longer than this are refused). */
#define YARD_EVENT_ID_MAX 192
/* Room for an event's subject and its NUL. */
#define YARD_EVENT_SUBJECT_MAX 96
/* Longest event name ("attempt_failed"): [a-z0-9_], 1 to this many bytes. */
#define YARD_EVENT_NAME_MAX 32

/* Job event names (events.jobs.<name>). */
#define YARD_EVENT_ACCEPTED "accepted"
#define YARD_EVENT_STARTED "started"
#define YARD_EVENT_ATTEMPT_FAILED "attempt_failed"
#define YARD_EVENT_SUCCEEDED "succeeded"
#define YARD_EVENT_DEAD "dead"
#define YARD_EVENT_CANCELLED "cancelled"
#define YARD_EVENT_REPLAYED "replayed"
#define YARD_EVENT_PURGED "purged" /* its dead letter deleted (yardctl dlq purge) */
/* Operator actions (events.ops.<name>). */
#define YARD_EVENT_KEY_CREATED "key_created"
#define YARD_EVENT_KEY_REVOKED "key_revoked"

/* One event. Strings are borrowed for the call. */
typedef struct {
    yard_event_domain_t domain;
    const char *name;       /* required: a YARD_EVENT_* name, [a-z0-9_] */
    const char *subject_id; /* required: job id, workflow id, or the ops target */
    const char *key;        /* repeats of the event (attempt, seq); NULL: it happens once */
    const char *actor;      /* required: "key:<api key id>" (or "api:<id>" for a DLQ
                             * replay), "gateway" (auth off), "worker:<role>@<host:pid>",
                             * "yardctl:<login>" */
    int64_t at_ms;          /* Unix ms; 0: now */
    const char *trace_id;   /* 32 hex, or NULL */
    const char *data_json;  /* a JSON object's text, or NULL for {} */
} yard_event_t;

/* An encoded event, ready to publish: subject, id and JSON body. */
typedef struct {
    char subject[YARD_EVENT_SUBJECT_MAX];
    char id[YARD_EVENT_ID_MAX];
    char *body; /* malloc'd JSON, NUL-terminated */
    size_t len;
} yard_event_msg_t;

/* The stored event name: "job.<name>", "workflow.<name>" or "ops.<name>". */
const char *yard_event_domain_prefix(yard_event_domain_t d);

/* Writes e's event id into out. Returns 0, or YARD_EINVAL when e misses a
 * required field, its name is not [a-z0-9_]{1,32}, the id does not fit, or
 * it is job.accepted (only the gateway's grouped event, accepted.h, goes on
 * events.jobs.accepted; the audit role derives each job's id itself). */
int yard_event_id(char out[YARD_EVENT_ID_MAX], const yard_event_t *e);

/* Encodes e into *out (free its body with yard_event_msg_free). data_json
 * is copied as it is (only its braces are checked: pass JSON you built).
 * Returns 0, YARD_EINVAL (a bad field, or data_json not braced; logged),
 * or YARD_ENOMEM. */
int yard_event_encode(yard_event_msg_t *out, const yard_event_t *e);

/* Frees m's body; m may then be encoded into again. NULL is a no-op. */
void yard_event_msg_free(yard_event_msg_t *m);

/* Publishes e to EVENTS once and waits up to timeout_ms for the PubAck (a
 * duplicate counts as success). Returns 0 or an error (logged with the
 * event id). The one function every program calls for a single event. */
int yard_event_publish(yard_js_t *js, const yard_event_t *e, int64_t timeout_ms);

/* ---- batches: many events in flight, one wait ------------------------------
 * For hot paths (the execute worker): add publishes each event without
 * waiting; wait blocks until every one added was acknowledged. A batch may
 * be destroyed while publishes are outstanding: their callbacks still run
 * safely (the batch is freed by the last of them). One thread adds; any
 * holder of a reference may wait. */
typedef struct yard_event_batch yard_event_batch_t;

/* Returns 0 and sets *out, or YARD_ENOMEM. */
int yard_event_batch_create(yard_event_batch_t **out, yard_js_t *js);

/* A grouped batch: add only encodes; yard_event_batch_flush publishes what
 * was added since the last flush as one message on YARD_SUBJ_EVENT_GROUP
 * (or a few, past YARD_EVENT_GROUP_MAX_BYTES), so a batch of n events costs
 * JetStream one message, not n. The group's body is the events' JSON
 * texts, each followed by '\n' (yard_event_group_next reads them); its
 * Nats-Msg-Id is "evg.<16 hex: a hash of the event ids>.<count>", so the
 * same group published again is a duplicate, and audit_log's unique event
 * ids catch events regrouped otherwise. The adding thread flushes before
 * anyone waits. Returns 0 and sets *out, or YARD_ENOMEM. */
int yard_event_batch_create_grouped(yard_event_batch_t **out, yard_js_t *js);
#define YARD_EVENT_GROUP_MAX_BYTES (256 * 1024)

/* Publishes a grouped batch's events added since the last flush (a no-op
 * for an ungrouped batch, or when nothing waits). Returns 0 (the outcome
 * counts in wait) or an error (logged; the batch counts it as failed). */
int yard_event_batch_flush(yard_event_batch_t *b);

/* Publishes e asynchronously (waiting a little while the publish window is
 * full). Returns 0 (its outcome will count in wait), or an error (logged):
 * the event was not published, and the batch counts it as failed. */
int yard_event_batch_add(yard_event_batch_t *b, const yard_event_t *e);

/* Waits up to timeout_ms (0: only looks) for every event added since the
 * batch was made. Returns 0 when all were stored, YARD_ETIMEOUT when some
 * are still unanswered, or the first failure's code. */
int yard_event_batch_wait(yard_event_batch_t *b, int64_t timeout_ms);

/* Number of events added since creation. */
size_t yard_event_batch_count(const yard_event_batch_t *b);

/* Takes another reference to b (for another owner, e.g. each item whose
 * event it carries); each is released with yard_event_batch_destroy. The
 * references share the batch: wait and count see every event added. */
void yard_event_batch_retain(yard_event_batch_t *b);

/* Releases a reference to b. NULL is a no-op. */
void yard_event_batch_destroy(yard_event_batch_t *b);

/* ---- reading (the audit role) -------------------------------------------- */

/* A decoded event: views into a jansson tree owned by it. */
typedef struct {
    const char *id, *event, *actor, *trace_id, *job_id, *workflow_id, *target;
    int64_t at_ms;
    void *data;      /* json_t * of "data" (an object, possibly empty), owned by root */
    void *root;      /* json_t *, owned */
} yard_event_read_t;

/* Decodes len bytes of an event message. Returns 0 and fills *out (free it
 * with yard_event_read_free), YARD_EFORMAT (not a version-1 event: no id,
 * event or actor, or not JSON), or YARD_ENOMEM. */
int yard_event_read(yard_event_read_t *out, const void *data, size_t len);

/* Frees what out holds. NULL is a no-op. */
void yard_event_read_free(yard_event_read_t *out);

/* Steps through a group message (*p at its first byte, end past its last):
 * sets *event and *len to the next event's JSON text and advances *p.
 * Returns 1 (an event), or 0 at the end. */
int yard_event_group_next(const char **p, const char *end, const char **event, size_t *len);

#endif
