/*
 * js_internal.h - what libyard's js_*.c files share and programs must not
 * see: nats.c's handles behind a yard_js_t, the one status conversion, and
 * the cast between yard_js_msg_t and natsMsg (a yard_js_msg_t is a natsMsg;
 * wrapping it allocates nothing). Tests that check raw JetStream behaviour
 * include it too; gateway/, workers/ and ops/ never do.
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

/* The natsMsg a yard_js_msg_t is, and back. */
static inline natsMsg *yard_js_nats_msg(const yard_js_msg_t *m)
{
    return (natsMsg *)m;
}

static inline yard_js_msg_t *yard_js_msg_wrap(natsMsg *m)
{
    return (yard_js_msg_t *)m;
}

#endif
