/*
 * notify.h - webhook notifications: what the execute role publishes to
 * jobs.notify after it commits an outcome a job asked to hear about
 * (notify_event.c), and what the notify role delivers (notify.c).
 *
 * A job's notify spec (envelope field "notify", validated by the gateway)
 * is {"url":"https://...","on":["succeeded","failed","dead"]} or a bare URL
 * string (older producers), which means on ["succeeded","dead"]. "failed"
 * is an attempt that failed and will run again; "dead" the end of retries.
 *
 * The message on jobs.notify is JSON, self-contained so a DLQ copy can be
 * replayed as is: {"url":...,"key":...,"event":{...}} where key is the id of
 * the API key that submitted the job (absent with auth disabled; it picks
 * the signing secret, notify_key.h) and event is the body POSTed:
 *   {"event":"job.succeeded","job_id","type","queue","status","attempts",
 *    "result" (succeeded) | "error" (failed, dead),"time" (RFC 3339 UTC),
 *    "workflow_id","step_id" (workflow steps only)}
 * Its Nats-Msg-Id is YARD_MSGID_NOTIFY (<job id>.notify.<attempt>: one
 * attempt has one outcome), so a republish after a crash is dropped by the
 * duplicate window.
 */
#ifndef WK_NOTIFY_H
#define WK_NOTIFY_H

#include <libpq-fe.h>

#include "envelope.h"
#include "jobs.h"
#include "wk.h"

/* The header carrying the signature: t=<unix seconds>,v1=<hex HMAC-SHA256
 * of "<t>.<body>">, keyed with the submitting API key's webhook secret
 * (yard_notify_key_secret), or with config notify_secret for a job without
 * a key. */
#define WK_NOTIFY_SIG_HEADER "Yard-Signature"
/* The id of the API key whose secret signed it (absent: notify_secret). */
#define WK_NOTIFY_KEY_HEADER "Yard-Key-Id"
/* The delivery's id (the message's Nats-Msg-Id): the same for every try of
 * one notification, so a receiver can drop repeats. */
#define WK_NOTIFY_ID_HEADER "Yard-Notification-Id"
/* Room for "t=<20 digits>,v1=<64 hex>". */
#define WK_NOTIFY_SIG_MAX 96

/* Nonzero if notify (a job's spec, JSON text; may be absent) asks for
 * state's notification; then its url is copied into url (cap bytes). */
int wk_notify_wants(yard_str_t notify, yard_job_state_t state, char *url, size_t cap);

/* What a finished attempt tells its notification. */
typedef struct {
    const yard_envelope_t *env;
    const char *job_id;
    unsigned attempt;        /* the attempt that ended (attempts so far) */
    yard_job_state_t state;  /* succeeded, failed or dead */
    const char *result_json; /* succeeded: the result (NULL = null) */
    const char *error;       /* failed, dead: the reason (NULL = none) */
} wk_notify_outcome_t;

/* Publishes the notification of o to jobs.notify if its job asked for it,
 * waiting for the PubAck. Returns 0 (published, or nothing asked), or an
 * error (logged with the job id). */
int wk_notify_publish(wk_t *wk, const wk_notify_outcome_t *o);

/* For a redelivered message of a job that is already final (its commit
 * was made but the message was not acked, e.g. a crash in between):
 * publishes the notification of the job's recorded outcome again (the
 * duplicate window drops it if the first publish got through). conn is a
 * lifecycle connection. Returns 0 or an error (logged). */
int wk_notify_republish(wk_t *wk, PGconn *conn, const yard_envelope_t *env, const char *job_id);

/* Writes the Yard-Signature value for body (len bytes) at unix time t with
 * secret into out. */
void wk_notify_sign(char out[WK_NOTIFY_SIG_MAX], const char *secret, long long t,
                    const char *body, size_t len);

/* Role entry points (wk.h's table). */
int wk_notify_start(wk_runtime_t **out, wk_t *wk);
void wk_notify_join(wk_runtime_t *rt);

#endif
