/*
 * js.h - libyard's JetStream layer over nats.c.
 *
 * One yard_js_t is one NATS connection (reconnecting forever) and its
 * JetStream context. It publishes synchronously or asynchronously (many in
 * flight, bounded, each with its own completion callback and timeout),
 * ensures the stream and consumer topology of DESIGN.md, binds durable pull
 * consumers, fetches in batches, and acks / naks with delay / terms / marks
 * in progress. nats.c statuses are converted to YARD_E* codes here, once,
 * and logged with context.
 */
#ifndef YARD_JS_H
#define YARD_JS_H

#include <stddef.h>
#include <stdint.h>

#include <nats/nats.h>

#include "config.h"

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
#define YARD_CONSUMER_SUBMISSIONS "submissions" /* every job, for the audit role */
/* Largest message the JOBS stream takes (1 MiB payload plus envelope). */
#define YARD_JS_MAX_MSG_SIZE (2 * 1024 * 1024)
/* Longest queue name; the rule is yard_name_valid (names.h). */
#define YARD_QUEUE_NAME_MAX 64

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

/* The underlying handles, for calls this layer does not wrap. Owned by js. */
natsConnection *yard_js_conn(yard_js_t *js);
jsCtx *yard_js_ctx(yard_js_t *js);

/* Nonzero while the connection is up. */
int yard_js_connected(yard_js_t *js);

/* ---- topology ------------------------------------------------------------ */

/* Creates or updates the streams JOBS, EVENTS, DLQ and the durable pull
 * consumers schedule, notify, audit and execute_<q> for each of the nqueues
 * queue names (and submissions, on jobs.>), as cfg says (replicas, duplicate window, MaxDeliver, AckWait,
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
 * after cfg->js_publish_timeout_ms. At most cfg->js_publish_max_pending are
 * in flight: beyond that this returns YARD_EBUSY at once. Returns 0 (cb will
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

/* Binds to the existing durable pull consumer durable of stream. Returns 0
 * and sets *out (free with yard_js_consumer_destroy), or YARD_ENOTFOUND /
 * YARD_EUNAVAIL / YARD_ENATS. */
int yard_js_consumer_bind(yard_js_consumer_t **out, yard_js_t *js, const char *stream,
                          const char *durable);

/* Unsubscribes (the durable consumer stays on the server). NULL is a no-op. */
void yard_js_consumer_destroy(yard_js_consumer_t *c);

/* Fetches up to batch messages, waiting at most timeout_ms for the first.
 * Returns 0 with list filled (list->Count may be 0 when nothing came in
 * time; free with natsMsgList_Destroy), or YARD_EUNAVAIL / YARD_ENATS. */
int yard_js_fetch(yard_js_consumer_t *c, natsMsgList *list, int batch, int64_t timeout_ms);

/* Acknowledges m (the job is done). */
int yard_js_ack(natsMsg *m);
/* Acknowledges m and waits for the server to confirm it. */
int yard_js_ack_sync(natsMsg *m, int64_t timeout_ms);
/* Negative ack: redeliver after delay_ms (0: at once). */
int yard_js_nak(natsMsg *m, int64_t delay_ms);
/* Never redeliver m (fires a MSG_TERMINATED advisory). */
int yard_js_term(natsMsg *m);
/* Resets m's ack timer (heartbeat for long jobs). */
int yard_js_in_progress(natsMsg *m);

/* The stream sequence and delivery count of a JetStream message. Returns 0
 * or YARD_EINVAL if m is not one. */
int yard_js_msg_meta(natsMsg *m, uint64_t *stream_seq, uint64_t *delivered);

/* Gets message seq of stream. Returns 0 and sets *out (natsMsg_Destroy), or
 * YARD_ENOTFOUND / YARD_EUNAVAIL / YARD_ENATS. */
int yard_js_get_msg(natsMsg **out, yard_js_t *js, const char *stream, uint64_t seq);

/* Deletes message seq from stream. Returns 0, YARD_ENOTFOUND, or an error. */
int yard_js_delete_msg(yard_js_t *js, const char *stream, uint64_t seq);

/* Consumer depth for autoscaling: pending (not yet delivered) and
 * ack-pending (delivered, not acked). Returns 0 or an error. */
int yard_js_consumer_depth(uint64_t *pending, uint64_t *ack_pending, yard_js_t *js,
                           const char *stream, const char *consumer);

/* Number of messages of stream whose subject matches filter (wildcards
 * allowed). Returns 0 and sets *out, or an error. */
int yard_js_subject_count(uint64_t *out, yard_js_t *js, const char *stream, const char *filter);

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

/* ---- shared with the other js_*.c files ----------------------------------- */

/* Converts a nats.c status (and JetStream error code, 0 if none) into a
 * YARD_E* code, logging what failed with `what` when it is an error. */
int yard_js_status(natsStatus s, jsErrCode jerr, const char *what);

#endif
