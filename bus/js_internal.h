/*
 * js_internal.h - what libyard's js_*.c files share and programs must not
 * see: nats.c's handles behind a yard_js_t, the one status conversion, and
 * yard_js_msg_t's layout (a natsMsg and the connection its acks go on).
 * Tests that check raw JetStream behaviour include it too; gateway/,
 * workers/ and ops/ never do.
 */
#ifndef YARD_JS_INTERNAL_H
#define YARD_JS_INTERNAL_H

#include <nats/nats.h>

#include "js.h"

/* The underlying handles, for calls js.h does not wrap. Owned by js. */
natsConnection *yard_js_conn(yard_js_t *js);
jsCtx *yard_js_ctx(yard_js_t *js);

/* Converts a nats.c status (and JetStream error code, 0 if none) into a
 * YARD_E* code, logging what failed with `what` when it is an error. Every
 * error but YARD_ENOTFOUND (an answer: no such message, consumer, stream)
 * counts as a failed call in the I/O statistics (iostats.h): every call of
 * nats.c that can fail reports its failure through here. */
int yard_js_status(natsStatus s, jsErrCode jerr, const char *what);

/* The reply subject prefix of a message JetStream delivered from a
 * consumer: its acks go there, and its metadata is read from it. */
#define YARD_JS_ACK_PREFIX "$JS.ACK."
/* JetStream's durations (expires, nak delays) are nanoseconds. */
#define YARD_JS_NS_PER_MS INT64_C(1000000)

/* A yard_js_msg_t: a natsMsg and the connection its acks go out on. The
 * acks are written on the wire by libyard (js_ack.c): nats.c's natsMsg_Ack
 * and kin need a message of nats.c's own JetStream subscription, and
 * libyard pulls on a plain one (js_consume.c). */
struct yard_js_msg {
    natsMsg *nm;        /* owned */
    natsConnection *nc; /* where acks go; NULL: not fetched from a consumer */
    int answered;       /* acked, naked or terminated: later acks send nothing */
};

/* The natsMsg m holds (still m's). */
static inline natsMsg *yard_js_nats_msg(const yard_js_msg_t *m)
{
    return m->nm;
}

/* Wraps nm (taking it over) into a message whose acks go out on nc (NULL
 * for a message not fetched from a consumer). Returns 0 and sets *out (free
 * with yard_js_msg_destroy), or YARD_ENOMEM (nm is destroyed). */
int yard_js_msg_wrap(yard_js_msg_t **out, natsMsg *nm, natsConnection *nc);

#endif
