/*
 * consume_loop.h - a fetch loop on one durable consumer, for the simple
 * roles (schedule, audit's ingest): fetch a batch, hand it to a function
 * that answers every message (ack / nak / publish), repeat until stopping.
 */
#ifndef WK_CONSUME_LOOP_H
#define WK_CONSUME_LOOP_H

#include <libpq-fe.h>

#include "wk.h"

/* Handles one fetched batch; must ack, nak or term each message (they are
 * destroyed after it returns). conn is the loop's PostgreSQL connection
 * (statements prepared), or NULL if the role needs none. */
typedef void (*wk_batch_fn)(wk_t *wk, PGconn *conn, yard_js_msg_t **msgs, int n, void *ud);

typedef struct wk_loop wk_loop_t;

/* needs_pg values: fn gets a connection that commits without waiting for
 * the WAL flush (FAST), or one that waits (DURABLE: what fn writes must
 * survive a PostgreSQL crash because the messages are acked after it). */
#define WK_LOOP_PG_FAST 1
#define WK_LOOP_PG_DURABLE 2

/* Binds stream/durable and starts a thread running the loop, fetching at
 * most batch messages at a time; needs_pg (0 or a WK_LOOP_PG_* value) says
 * whether fn gets a connection (then a batch waits until PostgreSQL
 * answers). Returns 0 and sets *out,
 * or an error (logged). */
int wk_loop_start(wk_loop_t **out, wk_t *wk, const char *stream, const char *durable, int batch,
                  int needs_pg, wk_batch_fn fn, void *ud);

/* Waits for the loop to see wk->stopping and finish its batch; frees it. */
void wk_loop_join(wk_loop_t *loop);

#endif
