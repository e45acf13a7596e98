/*
 * http_memconn.c - a connection without a socket, for tests and fuzzing.
 *
 * It runs the same protocol code (http_conn.c) as a socket connection:
 * bytes fed in are parsed and handed to the handler, and what the server
 * would write is appended to an output buffer. Writes can be held back to
 * act like a client that does not read.
 */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "http_internal.h"

typedef struct {
    yard_http_conn_t conn; /* first: the public pointer is to this */
    http_ctx_t ctx;
    char *out;
    size_t out_len, out_cap;
    uv_buf_t held[HTTP_WRITE_BATCH];
    unsigned nheld;
    unsigned hold : 1, write_held : 1, closed : 1;
} memconn_t;

static memconn_t *mc_of(const yard_http_conn_t *c)
{
    return (memconn_t *)c;
}

/* Appends n bytes to the output; returns 0 or YARD_ENOMEM. */
static int mc_append(memconn_t *mc, const char *data, size_t n)
{
    if (mc->out_len + n + 1 > mc->out_cap) {
        size_t cap = mc->out_cap ? mc->out_cap : 1024;
        while (cap < mc->out_len + n + 1)
            cap *= 2;
        char *b = realloc(mc->out, cap);
        if (!b)
            return YARD_ENOMEM;
        mc->out = b;
        mc->out_cap = cap;
    }
    memcpy(mc->out + mc->out_len, data, n);
    mc->out_len += n;
    mc->out[mc->out_len] = '\0';
    return 0;
}

/* Completes a write: copies the bytes out and tells the connection. */
static void mc_complete(memconn_t *mc, const uv_buf_t *bufs, unsigned n)
{
    int rc = 0;

    for (unsigned i = 0; i < n && !rc; i++)
        rc = mc_append(mc, bufs[i].base, bufs[i].len);
    http_conn_write_done(&mc->conn, rc);
}

static void mc_write(yard_http_conn_t *c, const uv_buf_t *bufs, unsigned n)
{
    memconn_t *mc = mc_of(c);

    if (mc->hold) {
        memcpy(mc->held, bufs, n * sizeof *bufs);
        mc->nheld = n;
        mc->write_held = 1;
        return;
    }
    mc_complete(mc, bufs, n);
}

static void mc_changed(yard_http_conn_t *c)
{
    memconn_t *mc = mc_of(c);

    if (!mc->closed && (c->want_close || c->dead)) {
        mc->closed = 1;
        http_conn_abort(c);
    }
}

static void mc_release(yard_http_conn_t *c)
{
    memconn_t *mc = mc_of(c);

    http_ctx_fini(&mc->ctx);
    free(mc->out);
    free(mc);
}

static const http_conn_ops_t mc_ops = {mc_write, mc_changed, mc_release};

int yard_http_conn_create(yard_http_conn_t **out, const yard_http_options_t *opts)
{
    memconn_t *mc;

    if (!out || !opts || !opts->handler)
        return YARD_EINVAL;
    mc = calloc(1, sizeof *mc);
    if (!mc)
        return YARD_ENOMEM;
    http_ctx_init(&mc->ctx, opts);
    http_conn_init(&mc->conn, &mc->ctx, &mc_ops);
    *out = &mc->conn;
    return 0;
}

int yard_http_conn_feed(yard_http_conn_t *conn, const void *data, size_t len)
{
    if (mc_of(conn)->closed || conn->stop_parsing || conn->dead)
        return YARD_ESTATE;
    http_conn_feed(conn, data, len);
    return 0;
}

void yard_http_conn_eof(yard_http_conn_t *conn)
{
    if (!mc_of(conn)->closed)
        http_conn_eof(conn);
}

void yard_http_conn_timeout(yard_http_conn_t *conn)
{
    memconn_t *mc = mc_of(conn);

    if (mc->closed)
        return;
    int mode = http_conn_timer_mode(conn);
    /* As the server's timer: 408 for a partial request, else a quiet close. */
    if (mode == HTTP_TIMER_NONE || (mode == HTTP_TIMER_READ && http_conn_timeout(conn)))
        return;
    http_conn_abort(conn);
    mc_changed(conn);
}

void yard_http_conn_drain(yard_http_conn_t *conn)
{
    if (!mc_of(conn)->closed)
        http_conn_drain(conn);
}

void yard_http_conn_hold_writes(yard_http_conn_t *conn, int hold)
{
    mc_of(conn)->hold = hold != 0;
}

void yard_http_conn_release_writes(yard_http_conn_t *conn)
{
    memconn_t *mc = mc_of(conn);

    mc->hold = 0;
    if (mc->write_held) {
        mc->write_held = 0;
        mc_complete(mc, mc->held, mc->nheld);
    }
}

const char *yard_http_conn_output(const yard_http_conn_t *conn, size_t *len)
{
    const memconn_t *mc = mc_of(conn);

    if (len)
        *len = mc->out_len;
    return mc->out ? mc->out : "";
}

void yard_http_conn_clear_output(yard_http_conn_t *conn)
{
    memconn_t *mc = mc_of(conn);

    mc->out_len = 0;
    if (mc->out)
        mc->out[0] = '\0';
}

int yard_http_conn_closed(const yard_http_conn_t *conn)
{
    return mc_of(conn)->closed;
}

size_t yard_http_conn_pending(const yard_http_conn_t *conn)
{
    return conn->nhandling;
}

void yard_http_conn_destroy(yard_http_conn_t *conn)
{
    memconn_t *mc;

    if (!conn)
        return;
    mc = mc_of(conn);
    if (mc->write_held) { /* like libuv cancelling writes on close */
        mc->write_held = 0;
        http_conn_write_done(conn, UV_ECANCELED);
    }
    mc->closed = 1;
    http_conn_abort(conn);
    http_conn_unref(conn);
}
