/*
 * js_consume.c - durable pull consumers: bind, fetch, ack/nak/term/progress,
 * direct get/delete by sequence, stream and consumer state, and the
 * max-deliveries advisory that routes poison messages to the DLQ.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "err.h"
#include "js_internal.h"
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

int yard_js_fetch(yard_js_consumer_t *c, yard_js_batch_t *out, int batch, int64_t timeout_ms)
{
    jsErrCode jerr = 0;
    natsMsgList list = {0};
    out->msgs = NULL;
    out->count = 0;
    int64_t deadline = nats_Now() + timeout_ms;
    natsStatus s = natsSubscription_Fetch(&list, c->sub, batch, timeout_ms, &jerr);
    /* NATS_TIMEOUT: nothing arrived in time; list may hold a partial batch.
     * NATS_NOT_FOUND, or a timeout before ours: a late answer to an earlier
     * request on this subscription (the "no messages" or the expiry of a
     * fetch that had ended), which ends nats.c's fetch at once. With nothing
     * fetched, wait out the rest of the time: returning at once made idle
     * fetch loops spin, a few hundred requests a second each, which kept
     * nats-server busy on an idle cluster. */
    int64_t left;
    while ((s == NATS_TIMEOUT || s == NATS_NOT_FOUND) && list.Count == 0 &&
           (left = deadline - nats_Now()) > 0) {
        natsMsgList_Destroy(&list);
        memset(&list, 0, sizeof list);
        s = natsSubscription_Fetch(&list, c->sub, batch, left, &jerr);
    }
    if (s == NATS_OK || s == NATS_TIMEOUT || s == NATS_NOT_FOUND) {
        /* A yard_js_msg_t is a natsMsg: the array is handed over as is. */
        out->msgs = (yard_js_msg_t **)list.Msgs;
        out->count = list.Msgs ? list.Count : 0;
        return 0;
    }
    natsMsgList_Destroy(&list);
    char what[160];
    snprintf(what, sizeof what, "fetch from %s", c->name);
    return yard_js_status(s, jerr, what);
}

int yard_js_fetch_held(yard_js_consumer_t *c, yard_js_batch_t *out)
{
    yard_js_batch_t all = {NULL, 0};
    out->msgs = NULL;
    out->count = 0;
    for (;;) {
        natsMsgList list = {0};
        jsFetchRequest req;
        jsFetchRequest_Init(&req);
        /* One held message fills a 1-byte MaxBytes, so no request is sent;
         * with none held, the request sent asks for 1 byte, which no
         * message fits: the server delivers nothing more. */
        req.Batch = 1;
        req.MaxBytes = 1;
        req.NoWait = true;
        natsStatus s = natsSubscription_FetchRequest(&list, c->sub, &req);
        if ((s != NATS_OK && s != NATS_TIMEOUT && s != NATS_NOT_FOUND) || !list.Msgs ||
            list.Count == 0) {
            natsMsgList_Destroy(&list);
            break;
        }
        yard_js_msg_t **msgs = realloc(all.msgs, (size_t)(all.count + list.Count) * sizeof *msgs);
        if (!msgs) {
            natsMsgList_Destroy(&list);
            break;
        }
        for (int i = 0; i < list.Count; i++)
            msgs[all.count++] = (yard_js_msg_t *)list.Msgs[i];
        all.msgs = msgs;
        free(list.Msgs); /* the messages moved to all */
    }
    *out = all;
    return 0;
}

int yard_js_ack(yard_js_msg_t *m)
{
    return yard_js_status(natsMsg_Ack(yard_js_nats_msg(m), NULL), 0, NULL);
}

int yard_js_ack_sync(yard_js_msg_t *m, int64_t timeout_ms)
{
    jsOptions o;
    jsErrCode jerr = 0;
    jsOptions_Init(&o);
    o.Wait = timeout_ms;
    natsStatus s = natsMsg_AckSync(yard_js_nats_msg(m), &o, &jerr);
    return s == NATS_OK ? 0 : yard_js_status(s, jerr, "ack (sync)");
}

int yard_js_nak(yard_js_msg_t *m, int64_t delay_ms)
{
    natsMsg *nm = yard_js_nats_msg(m);
    natsStatus s = delay_ms > 0 ? natsMsg_NakWithDelay(nm, delay_ms, NULL) : natsMsg_Nak(nm, NULL);
    return s == NATS_OK ? 0 : yard_js_status(s, 0, "nak");
}

int yard_js_term(yard_js_msg_t *m)
{
    natsStatus s = natsMsg_Term(yard_js_nats_msg(m), NULL);
    return s == NATS_OK ? 0 : yard_js_status(s, 0, "term");
}

int yard_js_in_progress(yard_js_msg_t *m)
{
    natsStatus s = natsMsg_InProgress(yard_js_nats_msg(m), NULL);
    return s == NATS_OK ? 0 : yard_js_status(s, 0, "in-progress");
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
    *out = yard_js_msg_wrap(m);
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
