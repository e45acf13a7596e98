/*
 * js_consume.c - durable pull consumers: bind and fetch (libyard's own pull
 * requests; the acks are in js_ack.c), direct get/delete by sequence,
 * stream and consumer state, and the max-deliveries advisory that routes
 * poison messages to the DLQ.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "err.h"
#include "js_internal.h"
#include "log.h"

/* ---- pull requests --------------------------------------------------------
 * nats.c's fetch (natsSubscription_Fetch, 3.4.1) counts every message its
 * subscription receives into the batch it returns, also the late answers to
 * an earlier fetch, and then writes past the array it allocated for the
 * batch (heap corruption). libyard speaks the pull protocol itself instead:
 * one plain subscription per consumer on <inbox>.*, and every request made
 * on $JS.API.CONSUMER.MSG.NEXT.<stream>.<durable> with its own reply
 * subject <inbox>.<request number>. Messages JetStream delivers carry no
 * trace of the request they answer and all are valid jobs of this consumer:
 * whichever call finds them takes them, up to its batch, and the rest stay
 * queued on the subscription for the next call. Status messages (no $JS.ACK
 * reply, a Status header: 404 no messages, 408 request expired, 409 e.g.
 * consumer deleted, 100 heartbeat) arrive on the reply subject of their
 * request, so a status of an earlier request is told apart and dropped. */

/* The JetStream API subject of a consumer's next messages. The jsCtx
 * (js.c) is made without an API prefix: the default "$JS.API". */
#define JS_PULL_SUBJECT_FMT "$JS.API.CONSUMER.MSG.NEXT.%s.%s"
#define JS_PULL_SUBJECT_MAX 256
#define JS_PULL_INBOX_MAX 128
#define JS_STATUS_HEARTBEAT 100
#define JS_STATUS_NO_MESSAGES 404
#define JS_STATUS_EXPIRED 408
#define JS_STATUS_NO_RESPONDERS 503 /* nats.c reports it as NATS_NO_RESPONDERS */

struct yard_js_consumer {
    natsConnection *nc;
    natsSubscription *sub; /* <inbox>.*: the answers to all of this consumer's requests */
    char inbox[JS_PULL_INBOX_MAX]; /* "<inbox>.", the reply subject's prefix */
    size_t inbox_len;
    char pull_subject[JS_PULL_SUBJECT_MAX];
    uint64_t requests; /* number of the last request sent */
    char name[YARD_JS_NAME_MAX];
};

int yard_js_consumer_bind(yard_js_consumer_t **out, yard_js_t *js, const char *stream,
                          const char *durable)
{
    yard_js_consumer_t *c = calloc(1, sizeof *c);
    jsConsumerInfo *ci = NULL;
    natsInbox *inbox = NULL;
    jsErrCode jerr = 0;
    char what[160], wildcard[JS_PULL_INBOX_MAX + 2];
    int rc = 0;
    if (!c)
        return YARD_ENOMEM;
    snprintf(what, sizeof what, "bind consumer %s.%s", stream, durable);
    snprintf(c->name, sizeof c->name, "%s", durable);
    c->nc = yard_js_conn(js);
    int n = snprintf(c->pull_subject, sizeof c->pull_subject, JS_PULL_SUBJECT_FMT, stream,
                     durable);
    if (n < 0 || (size_t)n >= sizeof c->pull_subject) {
        YARD_LOG_ERROR(NULL, "%s: the names are too long", what);
        rc = YARD_EINVAL;
        goto fail;
    }
    /* The durable must exist: requests to a missing one would only time out. */
    natsStatus s = js_GetConsumerInfo(&ci, yard_js_ctx(js), stream, durable, NULL, &jerr);
    if (s == NATS_OK)
        s = natsInbox_Create(&inbox);
    if (s == NATS_OK) {
        c->inbox_len = (size_t)snprintf(c->inbox, sizeof c->inbox, "%s.", inbox);
        snprintf(wildcard, sizeof wildcard, "%s*", c->inbox);
        s = natsConnection_SubscribeSync(&c->sub, c->nc, wildcard);
    }
    if (s != NATS_OK) {
        rc = yard_js_status(s, jerr, what);
        goto fail;
    }
    jsConsumerInfo_Destroy(ci);
    natsInbox_Destroy(inbox);
    *out = c;
    return 0;
fail:
    jsConsumerInfo_Destroy(ci);
    natsInbox_Destroy(inbox);
    free(c);
    return rc;
}

void yard_js_consumer_destroy(yard_js_consumer_t *c)
{
    if (!c)
        return;
    /* Messages still queued on the subscription go unanswered: JetStream
     * redelivers them after AckWait (callers hand them back first with
     * yard_js_fetch_held). The durable consumer stays. */
    natsSubscription_Destroy(c->sub);
    free(c);
}

/* One fetch call in progress. */
typedef struct {
    yard_js_batch_t got; /* the messages taken, in an array of cap */
    int cap;
    uint64_t request; /* the request whose end the call waits for; 0: none */
    int ended;        /* its status came (or no responders) */
    int status;       /* ... that status */
    char why[96];     /* ... and its description */
} js_pull_t;

/* Appends m to p->got, growing the array when full. Returns 0 or
 * YARD_ENOMEM (m is destroyed). */
static int js_pull_keep(js_pull_t *p, yard_js_msg_t *m)
{
    if (p->got.count == p->cap) {
        int cap = p->cap ? 2 * p->cap : 16;
        yard_js_msg_t **msgs = realloc(p->got.msgs, (size_t)cap * sizeof *msgs);
        if (!msgs) {
            yard_js_msg_destroy(m);
            return YARD_ENOMEM;
        }
        p->got.msgs = msgs;
        p->cap = cap;
    }
    p->got.msgs[p->got.count++] = m;
    return 0;
}

/* Notes the status message nm (of request number in its subject) when it
 * ends the request p waits for; drops it otherwise (an earlier request's
 * late answer, or a heartbeat). */
static void js_pull_status(yard_js_consumer_t *c, js_pull_t *p, natsMsg *nm)
{
    const char *subject = natsMsg_GetSubject(nm);
    const char *code = NULL, *why = NULL;
    if (natsMsgHeader_Get(nm, "Status", &code) != NATS_OK || !code) {
        YARD_LOG_DEBUG(NULL, "fetch from %s: dropped a message on %s that is neither a job nor "
                             "a status", c->name, subject);
        return;
    }
    if (strncmp(subject, c->inbox, c->inbox_len) != 0 ||
        strtoull(subject + c->inbox_len, NULL, 10) != p->request || p->request == 0)
        return;
    int status = atoi(code);
    if (status == JS_STATUS_HEARTBEAT)
        return;
    p->ended = 1;
    p->status = status;
    natsMsgHeader_Get(nm, "Description", &why);
    snprintf(p->why, sizeof p->why, "%s", why ? why : "");
}

/* The error value of nats.c status s in a fetch from c (logged). */
static int js_pull_fail(const yard_js_consumer_t *c, natsStatus s)
{
    char what[160];
    snprintf(what, sizeof what, "fetch from %s", c->name);
    return yard_js_status(s, 0, what);
}

/* Takes the next message of c's subscription, waiting up to wait_ms (0:
 * only what is queued). Returns 1 when one was taken (a job kept in p, or
 * a status looked at), 0 when nothing came in time, or an error (logged). */
static int js_pull_read(yard_js_consumer_t *c, js_pull_t *p, int64_t wait_ms)
{
    natsMsg *nm = NULL;
    natsStatus s = natsSubscription_NextMsg(&nm, c->sub, wait_ms > 0 ? wait_ms : 0);
    if (s == NATS_TIMEOUT)
        return 0;
    if (s == NATS_NO_RESPONDERS) {
        /* JetStream did not answer a request (a server restarting, no
         * leader): the request is unknown, so only one made by this call
         * ends it; a call that sent none yet drops it as an earlier one's. */
        if (p->request) {
            p->ended = 1;
            p->status = JS_STATUS_NO_RESPONDERS;
            snprintf(p->why, sizeof p->why, "no responders");
        }
        return 1;
    }
    if (s == NATS_SLOW_CONSUMER) {
        YARD_LOG_WARN(NULL, "fetch from %s: messages were dropped (slow consumer); JetStream "
                            "redelivers them after AckWait", c->name);
        return 1;
    }
    if (s != NATS_OK)
        return js_pull_fail(c, s);
    const char *reply = natsMsg_GetReply(nm);
    if (reply && strncmp(reply, YARD_JS_ACK_PREFIX, strlen(YARD_JS_ACK_PREFIX)) == 0) {
        yard_js_msg_t *m = NULL;
        int rc = yard_js_msg_wrap(&m, nm, c->nc);
        return rc < 0 ? rc : js_pull_keep(p, m) < 0 ? YARD_ENOMEM : 1;
    }
    js_pull_status(c, p, nm);
    natsMsg_Destroy(nm);
    return 1;
}

/* Sends request for n messages: without waiting (expires_ms 0; JetStream
 * answers at once with what it has, then 404 or 408), or held up to
 * expires_ms (then 408). Never both: nats-server 2.9 holds a request with
 * an expiry and no_wait until it expires when the consumer is empty.
 * Returns 0 (p now waits for this request's end) or an error (logged). */
static int js_pull_ask(yard_js_consumer_t *c, js_pull_t *p, int n, int64_t expires_ms)
{
    char reply[JS_PULL_INBOX_MAX + 24], body[96];
    uint64_t request = ++c->requests;
    snprintf(reply, sizeof reply, "%s%" PRIu64, c->inbox, request);
    int len = expires_ms > 0 ? snprintf(body, sizeof body, "{\"batch\":%d,\"expires\":%" PRId64 "}",
                                        n, expires_ms * YARD_JS_NS_PER_MS)
                             : snprintf(body, sizeof body, "{\"batch\":%d,\"no_wait\":true}", n);
    natsStatus s = natsConnection_PublishRequest(c->nc, c->pull_subject, reply, body, len);
    if (s != NATS_OK)
        return js_pull_fail(c, s);
    p->request = request;
    p->ended = 0;
    p->status = 0;
    p->why[0] = '\0';
    return 0;
}

/* Reads c's subscription until p holds want messages, the request p waits
 * for ended, or deadline (nats_Now() milliseconds) passed. Returns 0 or an
 * error. */
static int js_pull_until(yard_js_consumer_t *c, js_pull_t *p, int want, int64_t deadline)
{
    int rc = 0;
    while (rc >= 0 && p->got.count < want && !p->ended) {
        int64_t left = deadline - nats_Now();
        rc = js_pull_read(c, p, left);
        if (rc == 0)
            break; /* the deadline passed */
    }
    return rc < 0 ? rc : 0;
}

/* The error a request's end status means when it brought nothing: 0 for
 * "no messages" and "expired", else a YARD_E* code (logged). */
static int js_pull_status_error(yard_js_consumer_t *c, const js_pull_t *p)
{
    if (!p->ended || p->status == JS_STATUS_NO_MESSAGES || p->status == JS_STATUS_EXPIRED)
        return 0;
    char what[YARD_JS_NAME_MAX + 160];
    snprintf(what, sizeof what, "fetch from %s: status %d %s", c->name, p->status, p->why);
    return yard_js_status(p->status == JS_STATUS_NO_RESPONDERS ? NATS_NO_RESPONDERS : NATS_ERR, 0,
                          what);
}

/* yard_js_fetch (may_wait) and yard_js_look (not): js.h. */
static int js_pull(yard_js_consumer_t *c, yard_js_batch_t *out, int batch, int64_t timeout_ms,
                   int may_wait)
{
    js_pull_t p = {{NULL, 0}, 0, 0, 0, 0, ""};
    int64_t deadline = nats_Now() + (timeout_ms > 0 ? timeout_ms : 0);
    int rc = 0;
    out->msgs = NULL;
    out->count = 0;
    if (batch <= 0)
        return YARD_EINVAL;
    p.got.msgs = malloc((size_t)batch * sizeof *p.got.msgs);
    if (!p.got.msgs)
        return YARD_ENOMEM;
    p.cap = batch;
    /* What answers to earlier requests left on the subscription. */
    while (p.got.count < batch && (rc = js_pull_read(c, &p, 0)) > 0)
        ;
    /* Then what the consumer has, at once. */
    if (rc >= 0 && p.got.count < batch)
        rc = js_pull_ask(c, &p, batch - p.got.count, 0);
    if (rc >= 0 && p.got.count < batch)
        rc = js_pull_until(c, &p, batch, deadline);
    if (rc >= 0 && p.got.count == 0 && (rc = js_pull_status_error(c, &p)) == 0 && may_wait) {
        /* Nothing there: ask for one message and wait for it (the next
         * call's look takes whatever followed it). One, not the batch: the
         * rest of a waited-for batch would keep arriving after the call,
         * and a consumer destroyed then (a worker draining) would leave
         * those messages unanswered until AckWait. */
        int64_t left = deadline - nats_Now();
        if (left > 0 && (rc = js_pull_ask(c, &p, 1, left)) == 0)
            rc = js_pull_until(c, &p, 1, deadline);
        while (rc >= 0 && p.got.count > 0 && p.got.count < batch &&
               (rc = js_pull_read(c, &p, 0)) > 0)
            ;
        if (rc >= 0 && p.got.count == 0)
            rc = js_pull_status_error(c, &p);
    }
    if (p.got.count == 0) {
        free(p.got.msgs);
        return rc < 0 ? rc : 0;
    }
    /* An error after messages came was logged; the messages are the
     * caller's (dropping them would delay them by AckWait). */
    *out = p.got;
    return 0;
}

int yard_js_fetch(yard_js_consumer_t *c, yard_js_batch_t *out, int batch, int64_t timeout_ms)
{
    return js_pull(c, out, batch, timeout_ms, 1);
}

int yard_js_look(yard_js_consumer_t *c, yard_js_batch_t *out, int batch, int64_t answer_ms)
{
    return js_pull(c, out, batch, answer_ms, 0);
}

int yard_js_fetch_held(yard_js_consumer_t *c, yard_js_batch_t *out)
{
    js_pull_t p = {{NULL, 0}, 0, 0, 0, 0, ""};
    while (js_pull_read(c, &p, 0) > 0)
        ;
    *out = p.got;
    return 0;
}

int yard_js_hand_back_held(yard_js_consumer_t *c)
{
    yard_js_batch_t held;
    yard_js_fetch_held(c, &held);
    for (int i = 0; i < held.count; i++)
        yard_js_nak(held.msgs[i], 0);
    int n = held.count;
    yard_js_batch_destroy(&held);
    return n;
}

int yard_js_get_msg(yard_js_msg_t **out, yard_js_t *js, const char *stream, uint64_t seq)
{
    jsErrCode jerr = 0;
    natsMsg *m = NULL;
    natsStatus s = js_GetMsg(&m, yard_js_ctx(js), stream, seq, NULL, &jerr);
    if (s != NATS_OK) {
        int rc = yard_js_status(s, jerr, NULL);
        if (rc != YARD_ENOTFOUND)
            YARD_LOG_ERROR(NULL, "get %s #%llu: %s", stream, (unsigned long long)seq,
                           natsStatus_GetText(s));
        return rc;
    }
    /* Read by sequence: no consumer, so no acks (nc NULL). */
    return yard_js_msg_wrap(out, m, NULL);
}

int yard_js_delete_msg(yard_js_t *js, const char *stream, uint64_t seq)
{
    jsErrCode jerr = 0;
    natsStatus s = js_DeleteMsg(yard_js_ctx(js), stream, seq, NULL, &jerr);
    if (s == NATS_OK)
        return 0;
    int rc = yard_js_status(s, jerr, NULL);
    if (rc != YARD_ENOTFOUND)
        YARD_LOG_ERROR(NULL, "delete %s #%llu: %s (jetstream error %d)", stream,
                       (unsigned long long)seq, natsStatus_GetText(s), (int)jerr);
    return rc;
}

int yard_js_consumer_depth(uint64_t *pending, uint64_t *ack_pending, yard_js_t *js,
                           const char *stream, const char *consumer)
{
    jsConsumerInfo *ci = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetConsumerInfo(&ci, yard_js_ctx(js), stream, consumer, NULL, &jerr);
    if (s != NATS_OK)
        return yard_js_status(s, jerr, NULL);
    *pending = ci->NumPending;
    *ack_pending = (uint64_t)ci->NumAckPending;
    jsConsumerInfo_Destroy(ci);
    return 0;
}

int yard_js_subject_count(uint64_t *out, yard_js_t *js, const char *stream, const char *filter)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    jsOptions o;
    jsOptions_Init(&o);
    o.Stream.Info.SubjectsFilter = filter;
    natsStatus s = js_GetStreamInfo(&si, yard_js_ctx(js), stream, &o, &jerr);
    if (s != NATS_OK)
        return yard_js_status(s, jerr, NULL);
    uint64_t n = 0;
    jsStreamStateSubjects *subs = si->State.Subjects;
    for (int i = 0; subs && i < subs->Count; i++)
        n += subs->List[i].Msgs;
    jsStreamInfo_Destroy(si);
    *out = n;
    return 0;
}

int yard_js_stream_state(uint64_t *first, uint64_t *last, uint64_t *count, yard_js_t *js,
                         const char *stream)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    char what[160];
    snprintf(what, sizeof what, "stream %s info", stream);
    natsStatus s = js_GetStreamInfo(&si, yard_js_ctx(js), stream, NULL, &jerr);
    if (s != NATS_OK)
        return yard_js_status(s, jerr, what);
    *first = si->State.FirstSeq;
    *last = si->State.LastSeq;
    *count = si->State.Msgs;
    jsStreamInfo_Destroy(si);
    return 0;
}

struct yard_js_watch {
    yard_js_listen_t *listen;
    yard_js_max_deliveries_cb cb;
    void *ud;
};

static void js_on_advisory(void *ud, const char *subject, const void *data, size_t len)
{
    yard_js_watch_t *w = ud;
    json_error_t jerr;
    json_t *doc = json_loadb(data, len, 0, &jerr);
    json_t *seq = doc ? json_object_get(doc, "stream_seq") : NULL;
    json_t *stream = doc ? json_object_get(doc, "stream") : NULL;
    json_t *consumer = doc ? json_object_get(doc, "consumer") : NULL;
    if (json_is_integer(seq) && json_is_string(stream) && json_is_string(consumer))
        w->cb(w->ud, json_string_value(stream), json_string_value(consumer),
              (uint64_t)json_integer_value(seq));
    else
        YARD_LOG_ERROR(NULL, "max-deliveries advisory on %s is not understood", subject);
    json_decref(doc);
}

int yard_js_watch_max_deliveries(yard_js_watch_t **out, yard_js_t *js, const char *stream,
                                 const char *consumer, yard_js_max_deliveries_cb cb, void *ud)
{
    char subject[256];
    yard_js_watch_t *w = calloc(1, sizeof *w);
    if (!w)
        return YARD_ENOMEM;
    w->cb = cb;
    w->ud = ud;
    snprintf(subject, sizeof subject, "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.%s.%s", stream,
             consumer);
    int rc = yard_js_listen(&w->listen, js, subject, js_on_advisory, w);
    if (rc < 0) {
        free(w);
        return rc;
    }
    *out = w;
    return 0;
}

void yard_js_watch_destroy(yard_js_watch_t *w)
{
    if (!w)
        return;
    /* When it returns no callback runs: w may go. */
    yard_js_listen_destroy(w->listen);
    free(w);
}
