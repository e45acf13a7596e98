/*
 * js_core.c - core NATS beside JetStream: notify (publish, no ack) and
 * listen (subscribe with a callback), for at-most-once announcements such
 * as a job's cancel, and for JetStream's advisories (js_consume.c).
 */
#include <stdio.h>
#include <stdlib.h>

#include "err.h"
#include "js_internal.h"
#include "log.h"

/* How long yard_js_listen_destroy waits for messages already received. */
#define JS_LISTEN_DRAIN_MS 5000

struct yard_js_listen {
    natsSubscription *sub;
    yard_js_listen_cb cb;
    void *ud;
};

int yard_js_notify(yard_js_t *js, const char *subject, const void *data, size_t len)
{
    if (!subject || len > YARD_JS_MAX_MSG_SIZE)
        return YARD_EINVAL;
    natsStatus s = natsConnection_Publish(yard_js_conn(js), subject, data, (int)len);
    return s == NATS_OK ? 0 : yard_js_status(s, 0, "notify");
}

static void js_on_listen(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    yard_js_listen_t *l = closure;
    int n = natsMsg_GetDataLength(msg);
    l->cb(l->ud, natsMsg_GetSubject(msg), n > 0 ? natsMsg_GetData(msg) : NULL,
          n > 0 ? (size_t)n : 0);
    natsMsg_Destroy(msg);
}

int yard_js_listen(yard_js_listen_t **out, yard_js_t *js, const char *subject,
                   yard_js_listen_cb cb, void *ud)
{
    yard_js_listen_t *l = calloc(1, sizeof *l);
    if (!l)
        return YARD_ENOMEM;
    l->cb = cb;
    l->ud = ud;
    natsStatus s = natsConnection_Subscribe(&l->sub, yard_js_conn(js), subject, js_on_listen, l);
    if (s != NATS_OK) {
        free(l);
        char what[300];
        snprintf(what, sizeof what, "subscribe to %s", subject);
        return yard_js_status(s, 0, what);
    }
    *out = l;
    return 0;
}

void yard_js_listen_destroy(yard_js_listen_t *l)
{
    if (!l)
        return;
    /* Drain so no callback is running or pending when l is freed. */
    if (natsSubscription_Drain(l->sub) == NATS_OK)
        natsSubscription_WaitForDrainCompletion(l->sub, JS_LISTEN_DRAIN_MS);
    natsSubscription_Destroy(l->sub);
    free(l);
}
