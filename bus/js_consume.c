/*
 * js_consume.c - durable pull consumers: bind, fetch, ack/nak/term/progress,
 * message metadata, direct get/delete by sequence, consumer depth, and the
 * max-deliveries advisory that routes poison messages to the DLQ.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "err.h"
#include "js.h"
#include "log.h"

struct yard_js_consumer {
    natsSubscription *sub;
    char name[YARD_JS_NAME_MAX];
};

int yard_js_consumer_bind(yard_js_consumer_t **out, yard_js_t *js, const char *stream,
                          const char *durable)
{
    yard_js_consumer_t *c = calloc(1, sizeof *c);
    jsSubOptions so;
    jsErrCode jerr = 0;
    char what[160];
    if (!c)
        return YARD_ENOMEM;
    snprintf(c->name, sizeof c->name, "%s", durable);
    jsSubOptions_Init(&so);
    so.Stream = stream;
    so.Consumer = durable;
    so.ManualAck = true;
    natsStatus s = js_PullSubscribe(&c->sub, yard_js_ctx(js), NULL, durable, NULL, &so, &jerr);
    if (s != NATS_OK) {
        snprintf(what, sizeof what, "bind consumer %s.%s", stream, durable);
        free(c);
        return yard_js_status(s, jerr, what);
    }
    *out = c;
    return 0;
}

void yard_js_consumer_destroy(yard_js_consumer_t *c)
{
    if (!c)
        return;
    /* Destroy, not Unsubscribe: unsubscribing would delete the durable. */
    natsSubscription_Destroy(c->sub);
    free(c);
}

int yard_js_fetch(yard_js_consumer_t *c, natsMsgList *list, int batch, int64_t timeout_ms)
{
    jsErrCode jerr = 0;
    memset(list, 0, sizeof *list);
    natsStatus s = natsSubscription_Fetch(list, c->sub, batch, timeout_ms, &jerr);
    if (s == NATS_OK)
        return 0;
    if (s == NATS_TIMEOUT) {
        /* Nothing arrived in time; list may hold a partial batch. */
        return 0;
    }
    char what[160];
    snprintf(what, sizeof what, "fetch from %s", c->name);
    return yard_js_status(s, jerr, what);
}

int yard_js_ack(natsMsg *m)
{
    return yard_js_status(natsMsg_Ack(m, NULL), 0, NULL);
}

int yard_js_ack_sync(natsMsg *m, int64_t timeout_ms)
{
    jsOptions o;
    jsErrCode jerr = 0;
    jsOptions_Init(&o);
    o.Wait = timeout_ms;
    natsStatus s = natsMsg_AckSync(m, &o, &jerr);
    return s == NATS_OK ? 0 : yard_js_status(s, jerr, "ack (sync)");
}

int yard_js_nak(natsMsg *m, int64_t delay_ms)
{
    natsStatus s = delay_ms > 0 ? natsMsg_NakWithDelay(m, delay_ms, NULL) : natsMsg_Nak(m, NULL);
    return s == NATS_OK ? 0 : yard_js_status(s, 0, "nak");
}

int yard_js_term(natsMsg *m)
{
    natsStatus s = natsMsg_Term(m, NULL);
    return s == NATS_OK ? 0 : yard_js_status(s, 0, "term");
}

int yard_js_in_progress(natsMsg *m)
{
    natsStatus s = natsMsg_InProgress(m, NULL);
    return s == NATS_OK ? 0 : yard_js_status(s, 0, "in-progress");
}

int yard_js_msg_meta(natsMsg *m, uint64_t *stream_seq, uint64_t *delivered)
{
    jsMsgMetaData *md = NULL;
    if (natsMsg_GetMetaData(&md, m) != NATS_OK)
        return YARD_EINVAL;
    if (stream_seq)
        *stream_seq = md->Sequence.Stream;
    if (delivered)
        *delivered = md->NumDelivered;
    jsMsgMetaData_Destroy(md);
    return 0;
}

int yard_js_get_msg(natsMsg **out, yard_js_t *js, const char *stream, uint64_t seq)
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
    *out = m;
    return 0;
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

struct yard_js_watch {
    natsSubscription *sub;
    yard_js_max_deliveries_cb cb;
    void *ud;
};

static void js_on_advisory(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    yard_js_watch_t *w = closure;
    json_error_t jerr;
    json_t *doc = json_loadb(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg), 0, &jerr);
    json_t *seq = doc ? json_object_get(doc, "stream_seq") : NULL;
    json_t *stream = doc ? json_object_get(doc, "stream") : NULL;
    json_t *consumer = doc ? json_object_get(doc, "consumer") : NULL;
    if (json_is_integer(seq) && json_is_string(stream) && json_is_string(consumer))
        w->cb(w->ud, json_string_value(stream), json_string_value(consumer),
              (uint64_t)json_integer_value(seq));
    else
        YARD_LOG_ERROR(NULL, "max-deliveries advisory on %s is not understood",
                       natsMsg_GetSubject(msg));
    json_decref(doc);
    natsMsg_Destroy(msg);
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
    natsStatus s = natsConnection_Subscribe(&w->sub, yard_js_conn(js), subject, js_on_advisory, w);
    if (s != NATS_OK) {
        free(w);
        return yard_js_status(s, 0, "subscribe to max-deliveries advisories");
    }
    *out = w;
    return 0;
}

void yard_js_watch_destroy(yard_js_watch_t *w)
{
    if (!w)
        return;
    /* Drain so no callback is running or pending when w is freed. */
    if (natsSubscription_Drain(w->sub) == NATS_OK)
        natsSubscription_WaitForDrainCompletion(w->sub, 5000);
    natsSubscription_Destroy(w->sub);
    free(w);
}
