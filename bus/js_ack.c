/*
 * js_ack.c - the acks of a fetched message, written on the wire here: a
 * publish of "+ACK", "-NAK" (with a delay), "+TERM" or "+WPI" to the
 * message's $JS.ACK reply subject, the JetStream protocol nats.c's
 * natsMsg_Ack and kin speak. Those need a message of nats.c's own
 * JetStream subscription (on any other they crash), and libyard pulls on a
 * plain one (js_consume.c). As with nats.c, once a message was acked, naked
 * or terminated, later acks of it send nothing and return 0.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "js_internal.h"
#include "log.h"

/* The reply subject acks of m go to, or NULL (logged, with what) when m did
 * not come from a consumer. */
static const char *js_ack_subject(const yard_js_msg_t *m, const char *what)
{
    const char *reply = natsMsg_GetReply(m->nm);
    if (m->nc && reply && strncmp(reply, YARD_JS_ACK_PREFIX, strlen(YARD_JS_ACK_PREFIX)) == 0)
        return reply;
    YARD_LOG_ERROR(NULL, "%s: the message on %s was not fetched from a consumer", what,
                   natsMsg_GetSubject(m->nm));
    return NULL;
}

/* Publishes body as m's ack; final marks m answered. what names the ack for
 * the log (NULL: failures are not logged, only counted). */
static int js_ack_send(yard_js_msg_t *m, const char *body, int final, const char *what)
{
    if (m->answered)
        return 0;
    const char *reply = js_ack_subject(m, what ? what : "ack");
    if (!reply)
        return YARD_EINVAL;
    natsStatus s = natsConnection_PublishString(m->nc, reply, body);
    if (s != NATS_OK)
        return yard_js_status(s, 0, what);
    if (final)
        m->answered = 1;
    return 0;
}

int yard_js_ack(yard_js_msg_t *m)
{
    /* Not logged: during an outage every ack of a batch fails alike. */
    return js_ack_send(m, "+ACK", 1, NULL);
}

int yard_js_ack_sync(yard_js_msg_t *m, int64_t timeout_ms)
{
    if (m->answered)
        return 0;
    const char *reply = js_ack_subject(m, "ack (sync)");
    if (!reply)
        return YARD_EINVAL;
    natsMsg *confirm = NULL;
    natsStatus s = natsConnection_RequestString(&confirm, m->nc, reply, "+ACK", timeout_ms);
    natsMsg_Destroy(confirm);
    if (s != NATS_OK)
        return yard_js_status(s, 0, "ack (sync)");
    m->answered = 1;
    return 0;
}

int yard_js_nak(yard_js_msg_t *m, int64_t delay_ms)
{
    char body[64];
    if (delay_ms > 0)
        snprintf(body, sizeof body, "-NAK {\"delay\":%" PRId64 "}", delay_ms * YARD_JS_NS_PER_MS);
    else
        snprintf(body, sizeof body, "-NAK");
    return js_ack_send(m, body, 1, "nak");
}

int yard_js_term(yard_js_msg_t *m)
{
    return js_ack_send(m, "+TERM", 1, "term");
}

int yard_js_in_progress(yard_js_msg_t *m)
{
    return js_ack_send(m, "+WPI", 0, "in-progress");
}
