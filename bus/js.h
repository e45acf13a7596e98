/*
 * js.h - libyard's JetStream layer over nats.c.
 *
 * One yard_js_t is one NATS connection (reconnecting forever) and its
 * JetStream context. It publishes synchronously or asynchronously (many in
 * flight, bounded, each with its own completion callback and timeout),
 * ensures the stream and consumer topology of DESIGN.md, binds durable pull
 * consumers, fetches in batches, and acks / naks with delay / terms / marks
 * in progress. nats.c statuses are converted to YARD_E* codes here, once,
 * and logged with context. Programs see no nats.c type: a message is a
 * yard_js_msg_t, read through the accessors below; bus/js_internal.h gives
 * libyard's own files (and raw tests) the nats.c handles.
 */
#ifndef YARD_JS_H
#define YARD_JS_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "names.h"

/* Stream names and subject roots (contract: DESIGN.md). */
#define YARD_STREAM_JOBS "JOBS"
#define YARD_STREAM_EVENTS "EVENTS"
#define YARD_STREAM_DLQ "DLQ"
#define YARD_SUBJ_EXECUTE "jobs.execute." /* + queue */
#define YARD_SUBJ_SCHEDULE "jobs.schedule"
#define YARD_SUBJ_NOTIFY "jobs.notify"
#define YARD_SUBJ_DLQ_PREFIX "dlq."        /* + original subject */
#define YARD_CONSUMER_EXECUTE "execute_"  /* + queue */
#define YARD_CONSUMER_SCHEDULE "schedule"
#define YARD_CONSUMER_NOTIFY "notify"
#define YARD_CONSUMER_AUDIT "audit"
#define YARD_CONSUMER_SUBMISSIONS "submissions" /* accepted events, for the audit role */

/* ---- wire conventions (js_wire.c): the one home of subjects, headers and
 * message ids that several programs write or read ------------------------ */

/* EVENTS subject of jobs the gateway accepted: one message carries the
 * envelopes and JOBS sequences of jobs acked together (accepted.h). The
 * audit role's `submissions` consumer reads it to record the jobs (JOBS is
 * a work queue, so no second consumer may read jobs.> there). */
#define YARD_SUBJ_EVENT_ACCEPTED "events.jobs.accepted"
/* Lifecycle events (events.h): subject roots, + event name, and the filter
 * of the audit role's consumer, which reads them all. */
#define YARD_SUBJ_EVENT_JOBS "events.jobs."
#define YARD_SUBJ_EVENT_WORKFLOWS "events.workflows."
#define YARD_SUBJ_EVENT_OPS "events.ops."
#define YARD_SUBJ_EVENTS_ALL "events.>"
/* Many job events in one message (a grouped batch, events.h): the execute
 * worker's started events of a claim and outcome events of a commit. */
#define YARD_SUBJ_EVENT_GROUP "events.jobs.group"
/* Core NATS (not JetStream) subject announcing a cancel to execute workers:
 * YARD_SUBJ_CANCEL + job id; YARD_SUBJ_CANCEL_ANY subscribes to all. At most
 * once: PostgreSQL's cancel_requested_at backs it. */
#define YARD_SUBJ_CANCEL "yard.cancel."
#define YARD_SUBJ_CANCEL_ANY "yard.cancel.*"
/* Headers. A DLQ message carries the five Yard-* ones of DESIGN.md. */
#define YARD_HDR_ORIGINAL_SUBJECT "Yard-Original-Subject"
#define YARD_HDR_ATTEMPTS "Yard-Attempts"
#define YARD_HDR_LAST_ERROR "Yard-Last-Error"
#define YARD_HDR_DIED_AT "Yard-Died-At"
#define YARD_HDR_JOB_ID "Yard-Job-Id"
#define YARD_HDR_TRACEPARENT "traceparent"
#define YARD_HDR_MSG_ID "Nats-Msg-Id"

/* Nats-Msg-Id kinds. Each publish of a job has its own, so JetStream's
 * duplicate window drops exactly the repeats of that publish:
 *   JOB       <id>               the gateway's submit (an idempotent retry
 *                                of the same submit is a no-op)
 *   RUN       <id>.run           the schedule role's release of a due job
 *   DEAD      <id>.dead.<seq>    the DLQ copy of JOBS message seq
 *   REPLAY    <id>.replay.<seq>  the replay of DLQ message seq
 *   RESCUE    <id>.rescue.<seq>  the republish of a job whose JOBS message
 *                                seq vanished (schedule role's rescuer)
 *   NOTIFY    <id>.notify.<n>    the webhook notification of the outcome of
 *                                attempt n (seq), on jobs.notify */
typedef enum {
    YARD_MSGID_JOB = 0,
    YARD_MSGID_RUN,
    YARD_MSGID_DEAD,
    YARD_MSGID_REPLAY,
    YARD_MSGID_RESCUE,
    YARD_MSGID_NOTIFY
} yard_msgid_kind_t;
#define YARD_MSGID_MAX 96

/* Writes the Nats-Msg-Id of kind for job_id (seq is used by DEAD, REPLAY and
 * RESCUE) into out; a NULL or empty job_id is written as "unknown". */
void yard_js_msg_id(char out[YARD_MSGID_MAX], yard_msgid_kind_t kind, const char *job_id,
                    uint64_t seq);
/* Largest message the JOBS stream takes (1 MiB payload plus envelope). */
#define YARD_JS_MAX_MSG_SIZE (2 * 1024 * 1024)
/* Longest queue name; the rule is yard_name_valid (names.h). */
#define YARD_QUEUE_NAME_MAX YARD_NAME_MAX

typedef struct yard_js yard_js_t;

typedef struct {
    const char *name;
    const char *value;
} yard_js_header_t;

/* What to publish. msg_id, when set, becomes Nats-Msg-Id (dedupe). */
typedef struct {
    const char *subject;
    const char *msg_id;
    const yard_js_header_t *headers;
    size_t nheaders;
    const void *data;
    size_t len;
} yard_js_pub_t;

typedef struct {
    uint64_t seq;   /* stream sequence (of the first copy, if duplicate) */
    int duplicate;  /* the stream had this Nats-Msg-Id already */
} yard_js_puback_t;

/* Connects to cfg->nats_url (comma-separated list allowed) with the name
 * given (shows in the server's connz), reconnecting forever after a
 * disconnect. Fails if no server answers within cfg->js_publish_timeout_ms.
 * Returns 0 and sets *out (free with yard_js_destroy), or YARD_EUNAVAIL,
 * YARD_ENOMEM, YARD_ENATS. */
int yard_js_connect(yard_js_t **out, const yard_config_t *cfg, const char *name);

/* Waits up to timeout_ms for outstanding async publishes, then closes the
 * connection and frees js. Callbacks of publishes still outstanding are
 * called with YARD_EUNAVAIL before this returns. NULL is a no-op. */
void yard_js_destroy(yard_js_t *js, int64_t timeout_ms);

/* Nonzero while the connection is up. */
int yard_js_connected(yard_js_t *js);

/* The largest message (payload plus headers, bytes) the server accepts: its
 * max_payload, as learned when the connection was last (re)established, or
 * 0 when unknown. Does not block on the network; callable from any thread. */
int64_t yard_js_max_payload(yard_js_t *js);

/* Measures the round trip to the server (a PING and its PONG), records it
 * in the process's I/O statistics (iostats.h, yard_nats_rtt_seconds) and,
 * when out is not NULL, sets *out to it in seconds. Blocks up to nats.c's
 * flush timeout: never call it on a loop thread. Returns 0, or
 * YARD_EUNAVAIL (disconnected, reconnecting), YARD_ETIMEOUT, YARD_ENATS. */
int yard_js_rtt(double *out, yard_js_t *js);

/* ---- topology ------------------------------------------------------------ */

/* Creates or updates the streams JOBS, EVENTS, DLQ and the durable pull
 * consumers schedule, notify, audit and execute_<q> for each of the nqueues
 * queue names (and submissions, on EVENTS), as cfg says (replicas, duplicate window, MaxDeliver, AckWait,
 * retention). What already matches is left alone; *changes (may be NULL)
 * counts what was created or updated, so a second call reports 0. Returns 0,
 * YARD_EINVAL for a bad queue name, or the JetStream error. */
int yard_js_ensure_topology(yard_js_t *js, const yard_config_t *cfg, const char *const *queues,
                            size_t nqueues, int *changes);

/* Writes the durable consumer name of queue ("execute_" + queue, with '.'
 * mapped to '_', which consumer names may not hold) and the subject it
 * filters ("jobs.execute." + queue). Buffers of YARD_JS_NAME_MAX bytes. */
#define YARD_JS_NAME_MAX 96
void yard_js_execute_names(char durable[YARD_JS_NAME_MAX], char subject[YARD_JS_NAME_MAX],
                           const char *queue);

/* Priority tiers of an execute queue. A JetStream 2.9 consumer has one
 * filter subject, so each tier of a queue is its own subject and durable
 * consumer; the execute worker fetches from all three, high first, with a
 * share of every fetch kept for the lower tiers (no starvation):
 *   tier     subject                     durable
 *   normal   jobs.execute.<queue>        execute_<queue>        (DESIGN.md)
 *   high     jobs.execute.<queue>.HIGH   execute_<queue>_HIGH
 *   low      jobs.execute.<queue>.LOW    execute_<queue>_LOW
 * The suffixes are upper case, which queue names never are, so no tier of
 * one queue can be another queue's subject or consumer. */
#define YARD_JS_TIERS 3
#define YARD_SUBJ_TIER_HIGH ".HIGH"
#define YARD_SUBJ_TIER_LOW ".LOW"
#define YARD_CONSUMER_TIER_HIGH "_HIGH"
#define YARD_CONSUMER_TIER_LOW "_LOW"

/* yard_js_execute_names for the tier of priority (YARD_PRIO_LOW 0, NORMAL 1,
 * HIGH 2 of envelope.h; anything else is normal). */
void yard_js_execute_tier_names(char durable[YARD_JS_NAME_MAX], char subject[YARD_JS_NAME_MAX],
                                const char *queue, int priority);

/* Splits a comma-separated queue list (cfg->js_queues) into at most max
 * names written into bufs (each YARD_QUEUE_NAME_MAX + 1 bytes) and pointed to
 * by names. Returns the count, or YARD_EINVAL for an invalid name or too many. */
int yard_js_parse_queues(const char *list, char bufs[][YARD_QUEUE_NAME_MAX + 1],
                         const char **names, size_t max);

/* ---- publish ------------------------------------------------------------- */

/* Publishes and waits up to timeout_ms for the PubAck. Returns 0 and fills
 * *out (may be NULL), or YARD_EUNAVAIL (not connected / no stream answered),
 * YARD_ETIMEOUT, YARD_ENATS. */
int yard_js_publish(yard_js_puback_t *out, yard_js_t *js, const yard_js_pub_t *pub,
                    int64_t timeout_ms);

/* Called exactly once per accepted async publish, on a nats.c thread: rc is
 * 0 with ack set, or YARD_ETIMEOUT / YARD_EUNAVAIL / YARD_ENATS with ack NULL. */
typedef void (*yard_js_ack_cb)(void *ud, int rc, const yard_js_puback_t *ack);

/* Publishes without waiting; cb(ud, ...) reports the PubAck, or a failure
 * after cfg->js_publish_timeout_ms. At most cfg->js_publish_max_pending
 * publishes, holding at most cfg->js_publish_max_pending_bytes (one always
 * fits), are in flight: beyond that this returns YARD_EBUSY at once. Returns 0 (cb will
 * be called), or a negative code (cb will not be called): YARD_EUNAVAIL when
 * disconnected, YARD_EBUSY, YARD_ENOMEM, YARD_ENATS. */
int yard_js_publish_async(yard_js_t *js, const yard_js_pub_t *pub, yard_js_ack_cb cb, void *ud);

/* Async publishes whose callback has not run yet. */
size_t yard_js_pending(yard_js_t *js);

/* Waits until no async publish is outstanding, up to timeout_ms. Returns 0
 * or YARD_ETIMEOUT. */
int yard_js_publish_wait(yard_js_t *js, int64_t timeout_ms);

/* ---- consume ------------------------------------------------------------- */

typedef struct yard_js_consumer yard_js_consumer_t;

/* Binds to the existing durable pull consumer durable of stream: checks it
 * exists and subscribes to the private inbox its messages will come to.
 * Returns 0 and sets *out (free with yard_js_consumer_destroy), or
 * YARD_ENOTFOUND / YARD_EUNAVAIL / YARD_ENOMEM / YARD_EINVAL / YARD_ENATS. */
int yard_js_consumer_bind(yard_js_consumer_t **out, yard_js_t *js, const char *stream,
                          const char *durable);

/* Unsubscribes (the durable consumer stays on the server); messages c held
 * unanswered come back after AckWait. NULL is a no-op. */
void yard_js_consumer_destroy(yard_js_consumer_t *c);

/* ---- messages (js_msg.c) ---------------------------------------------------
 * A message fetched from a consumer or read by sequence. Whoever holds it
 * frees it with yard_js_msg_destroy (a batch frees those still in it). The
 * pointers the accessors return are owned by the message and valid until it
 * is destroyed. Reading a message is safe from any thread; acking it is
 * done once, by its holder. */
typedef struct yard_js_msg yard_js_msg_t;

/* The subject m was published on. */
const char *yard_js_msg_subject(const yard_js_msg_t *m);

/* The payload of m (NULL when empty); its length in *len (must not be NULL). */
const void *yard_js_msg_data(const yard_js_msg_t *m, size_t *len);

/* The first value of header name of m, or NULL when m (may be NULL) has no
 * such header. */
const char *yard_js_msg_header(const yard_js_msg_t *m, const char *name);

/* The stream sequence and delivery count (1 on the first delivery) of a
 * message fetched from a consumer; either pointer may be NULL. Returns 0, or
 * YARD_EINVAL (nothing set) when m did not come from a consumer. */
int yard_js_msg_meta(const yard_js_msg_t *m, uint64_t *stream_seq, uint64_t *delivered);

/* Frees m. NULL is a no-op. */
void yard_js_msg_destroy(yard_js_msg_t *m);

/* What one fetch returned: count messages, owned by the batch. A caller may
 * take one over by setting its slot to NULL (it then destroys the message
 * itself). */
typedef struct {
    yard_js_msg_t **msgs;
    int count;
} yard_js_batch_t;

/* Destroys the messages still in b and frees its array; b is left empty and
 * may be fetched into again. NULL is a no-op. */
void yard_js_batch_destroy(yard_js_batch_t *b);

/* Fetches up to batch messages into *out, never more. First it takes what
 * earlier calls' requests brought that no call took yet, then asks the
 * consumer without waiting: what the consumer has comes back at once (a
 * look: timeout_ms bounds the wait for that answer). When that brings
 * nothing, it asks for one message and waits for it up to timeout_ms,
 * returning as soon as it arrives (with whatever else is queued by then):
 * a wait for a whole batch would hold the first message back, and its rest
 * would keep arriving after the call. Answers that arrive after the call
 * returned (a look whose answer was late) are kept and taken first by the
 * next call: nothing is
 * lost, and the late answers of earlier calls never end a wait early.
 * Returns 0 with *out filled (count may be 0 when nothing came in time; free
 * it with yard_js_batch_destroy), or YARD_EINVAL (batch < 1) / YARD_ENOMEM /
 * YARD_EUNAVAIL / YARD_ENATS with *out empty (destroying it is harmless);
 * an error after some messages came is logged and those are returned. One
 * thread at a time fetches from c. */
int yard_js_fetch(yard_js_consumer_t *c, yard_js_batch_t *out, int batch, int64_t timeout_ms);

/* Like yard_js_fetch, but never waits for a message: takes what is queued
 * and what the consumer has now (its answer to a request that does not
 * wait, awaited up to answer_ms; an answer later than that is kept for the
 * next call). For looking at several consumers in turn: an empty one costs
 * one round trip, not a wait. */
int yard_js_look(yard_js_consumer_t *c, yard_js_batch_t *out, int batch, int64_t answer_ms);

/* The messages c holds already (answers that arrived after the fetch that
 * asked for them had ended), without asking the server for more: for
 * handing them back (nak) when a fetcher stops. Returns 0 with *out filled
 * (count may be 0; free with yard_js_batch_destroy). */
int yard_js_fetch_held(yard_js_consumer_t *c, yard_js_batch_t *out);

/* Naks (redelivery at once) what c holds already (yard_js_fetch_held): for
 * a fetcher that stops. Returns how many it handed back. */
int yard_js_hand_back_held(yard_js_consumer_t *c);

/* The acks of a fetched message. Each returns 0 or an error (the message
 * stays the caller's either way); YARD_EINVAL for a message not fetched from
 * a consumer. After an ack, nak or term, further acks of m send nothing and
 * return 0. */
/* Acknowledges m (the job is done). */
int yard_js_ack(yard_js_msg_t *m);
/* Acknowledges m and waits up to timeout_ms for the server to confirm it. */
int yard_js_ack_sync(yard_js_msg_t *m, int64_t timeout_ms);
/* Negative ack: redeliver after delay_ms (0: at once). */
int yard_js_nak(yard_js_msg_t *m, int64_t delay_ms);
/* Never redeliver m (fires a MSG_TERMINATED advisory). */
int yard_js_term(yard_js_msg_t *m);
/* Resets m's ack timer: JetStream redelivers it AckWait after the last
 * in-progress ack (or the delivery) unless it is acked first. */
int yard_js_in_progress(yard_js_msg_t *m);

/* Gets message seq of stream (its headers, subject and data; no metadata).
 * Returns 0 and sets *out (free with yard_js_msg_destroy), or
 * YARD_ENOTFOUND / YARD_EUNAVAIL / YARD_ENATS. */
int yard_js_get_msg(yard_js_msg_t **out, yard_js_t *js, const char *stream, uint64_t seq);

/* Deletes message seq from stream. Returns 0, YARD_ENOTFOUND, or an error. */
int yard_js_delete_msg(yard_js_t *js, const char *stream, uint64_t seq);

/* Consumer depth for autoscaling: pending (not yet delivered) and
 * ack-pending (delivered, not acked). Returns 0 or an error. */
int yard_js_consumer_depth(uint64_t *pending, uint64_t *ack_pending, yard_js_t *js,
                           const char *stream, const char *consumer);

/* Number of messages of stream whose subject matches filter (wildcards
 * allowed). Returns 0 and sets *out, or an error. */
int yard_js_subject_count(uint64_t *out, yard_js_t *js, const char *stream, const char *filter);

/* The sequences of the first and last messages of stream and how many it
 * holds (an empty stream: count 0; sequences may then be past the last
 * message ever stored). Between first and last, deleted messages leave gaps
 * (yard_js_get_msg says YARD_ENOTFOUND). Returns 0 and sets all three, or
 * YARD_ENOTFOUND / YARD_EUNAVAIL / YARD_ENATS. */
int yard_js_stream_state(uint64_t *first, uint64_t *last, uint64_t *count, yard_js_t *js,
                         const char *stream);

/* Called on a nats.c thread for each max-deliveries advisory. */
typedef void (*yard_js_max_deliveries_cb)(void *ud, const char *stream, const char *consumer,
                                          uint64_t stream_seq);

typedef struct yard_js_watch yard_js_watch_t;

/* Subscribes to the MAX_DELIVERIES advisories of consumer (or "*") of
 * stream. Returns 0 and sets *out (free with yard_js_watch_destroy), or an
 * error. The advisory only fires while some fetch on that consumer is
 * outstanding after the last delivery's AckWait expires (nats-server 2.9). */
int yard_js_watch_max_deliveries(yard_js_watch_t **out, yard_js_t *js, const char *stream,
                                 const char *consumer, yard_js_max_deliveries_cb cb, void *ud);

/* Stops the watch; when it returns no callback is running. NULL is a no-op. */
void yard_js_watch_destroy(yard_js_watch_t *w);

/* ---- core NATS (js_core.c) -------------------------------------------------
 * Plain NATS subjects beside JetStream, for announcements whose loss costs
 * nothing because PostgreSQL backs them (a cancel): at most once, only to
 * whoever listens at that moment. */

/* Publishes len bytes of data (may be NULL when len is 0) on subject. Does
 * not wait for the server: the message is buffered (also while
 * reconnecting) and lost if the connection closes first. Returns 0, or
 * YARD_EINVAL / YARD_EUNAVAIL (connection closed) / YARD_ENATS. */
int yard_js_notify(yard_js_t *js, const char *subject, const void *data, size_t len);

/* Called on a nats.c thread for each message of a listen, one at a time:
 * subject, data and len are valid only during the call. */
typedef void (*yard_js_listen_cb)(void *ud, const char *subject, const void *data, size_t len);

typedef struct yard_js_listen yard_js_listen_t;

/* Subscribes to subject (wildcards allowed) and calls cb(ud, ...) for each
 * message. Returns 0 and sets *out (free with yard_js_listen_destroy), or
 * YARD_ENOMEM / YARD_EUNAVAIL / YARD_ENATS. */
int yard_js_listen(yard_js_listen_t **out, yard_js_t *js, const char *subject,
                   yard_js_listen_cb cb, void *ud);

/* Stops listening: drains what already arrived (up to 5 s) and frees l;
 * when it returns no callback is running or will run, so ud may be freed.
 * NULL is a no-op. */
void yard_js_listen_destroy(yard_js_listen_t *l);

#endif
