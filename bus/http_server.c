/*
 * http_server.c - the HTTP server's libuv side: listen, accept, read, write,
 * timers and graceful shutdown.
 *
 * Each accepted socket gets an sconn_t embedding its protocol state
 * (http_conn.c), its uv_tcp_t, one uv_timer_t and one uv_write_t. Reads go
 * into one buffer shared by the whole server (the protocol copies what it
 * keeps); writes try uv_try_write first and queue the rest with one
 * uv_write of iovecs. The timer runs in one mode at a time: waiting for the
 * rest of a request (read timeout -> 408), idle keep-alive (quiet close),
 * a write the client does not take, or a short lingering close after a
 * protocol error, so the error response is not lost to a reset.
 *
 * An sconn_t is freed only when both its handles are closed and no handler
 * still holds one of its requests; the server's shutdown completes when the
 * last one is gone.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "err.h"
#include "http_internal.h"
#include "log.h"

#define READ_BUF_SIZE (64 * 1024)
#define LINGER_MS 2000
#define LISTEN_BACKLOG 511

enum { TM_NONE, TM_READ, TM_IDLE, TM_FRESH, TM_WRITE, TM_LINGER };

typedef struct sconn {
    yard_http_conn_t conn;
    yard_http_server_t *server;
    struct sconn *prev, *next;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wreq;
    uv_shutdown_t sreq;
    uv_buf_t iov[HTTP_WRITE_BATCH];
    uint32_t timer_seq; /* conn.nstarted when the read timer was armed */
    uint8_t timer_mode;
    uint8_t open_handles;
    uint8_t peer_len;        /* bytes of peer used: 4 (IPv4), 16 (IPv6), 0 unknown */
    unsigned char peer[16];  /* the client's address, for the per-client limit */
    unsigned reading : 1, fresh : 1, eof : 1, closing : 1, lingering : 1, write_pending : 1;
} sconn_t;

/* A connection refused over the limit, closed as soon as it is answered. */
typedef struct {
    uv_tcp_t tcp;
    yard_http_server_t *server;
} reject_t;

struct yard_http_server {
    uv_loop_t *loop;
    http_ctx_t ctx;
    uv_tcp_t listener;
    sconn_t *conns;  /* every sconn_t not yet freed */
    size_t nconns;   /* ... their number */
    size_t nopen;    /* sockets open (the limit counts these) */
    size_t nrejects; /* reject_t handles still closing */
    int port;
    unsigned listener_open : 1, listener_closing : 1, shutting : 1, done_called : 1;
    yard_http_done_fn done;
    void *done_ud;
    char rbuf[READ_BUF_SIZE];
};

static sconn_t *sc_of(yard_http_conn_t *c)
{
    return (sconn_t *)c;
}

/* Runs done once nothing of the server is left. Must be the caller's last
 * use of s: done may destroy it. */
static void server_check_done(yard_http_server_t *s)
{
    if (!s->shutting || s->done_called || s->listener_open || s->nconns || s->nrejects)
        return;
    s->done_called = 1;
    if (s->done)
        s->done(s, s->done_ud);
}

/* ---- closing ---- */

static void sc_handle_closed(uv_handle_t *h)
{
    sconn_t *sc = h->data;

    if (--sc->open_handles == 0)
        http_conn_unref(&sc->conn); /* the transport's reference */
}

/* Closes the socket now; requests with the handler become orphans. */
static void sc_close(sconn_t *sc)
{
    if (sc->closing)
        return;
    sc->closing = 1;
    sc->server->nopen--;
    http_conn_abort(&sc->conn);
    uv_close((uv_handle_t *)&sc->tcp, sc_handle_closed);
    uv_close((uv_handle_t *)&sc->timer, sc_handle_closed);
}

/* The last reference is gone (ops->release). */
static void sc_release(yard_http_conn_t *c)
{
    sconn_t *sc = sc_of(c);
    yard_http_server_t *s = sc->server;

    if (sc->prev)
        sc->prev->next = sc->next;
    else
        s->conns = sc->next;
    if (sc->next)
        sc->next->prev = sc->prev;
    s->nconns--;
    free(sc);
    server_check_done(s);
}

static void sc_on_timer(uv_timer_t *t);
static void sc_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void sc_on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

static void sc_on_shutdown(uv_shutdown_t *req, int status)
{
    sconn_t *sc = req->data;

    if (status < 0)
        sc_close(sc);
}

/* After the last response of a connection closed by a protocol error:
 * send FIN, then read and discard until the client closes or LINGER_MS, so
 * unread request bytes do not turn the close into a reset that destroys
 * the error response in flight. */
static void sc_linger(sconn_t *sc)
{
    const yard_http_limits_t *lim = &sc->server->ctx.lim;
    uint64_t ms = lim->read_timeout_ms < LINGER_MS ? lim->read_timeout_ms : LINGER_MS;

    sc->sreq.data = sc;
    if (sc->eof || uv_shutdown(&sc->sreq, (uv_stream_t *)&sc->tcp, sc_on_shutdown)) {
        sc_close(sc);
        return;
    }
    sc->lingering = 1;
    sc->timer_mode = TM_LINGER;
    uv_timer_start(&sc->timer, sc_on_timer, ms, 0);
    if (!sc->reading)
        sc->reading = uv_read_start((uv_stream_t *)&sc->tcp, sc_alloc, sc_on_read) == 0;
}

/* ---- timers ---- */

static void sc_timer_update(sconn_t *sc)
{
    const yard_http_limits_t *lim = &sc->server->ctx.lim;
    uint8_t mode = TM_NONE;
    uint64_t ms = 0;

    if (sc->write_pending) {
        mode = TM_WRITE;
        ms = lim->idle_timeout_ms;
    } else {
        switch (http_conn_timer_mode(&sc->conn)) {
        case HTTP_TIMER_READ:
            mode = TM_READ;
            ms = lim->read_timeout_ms;
            break;
        case HTTP_TIMER_IDLE:
            mode = sc->fresh ? TM_FRESH : TM_IDLE;
            ms = sc->fresh ? lim->read_timeout_ms : lim->idle_timeout_ms;
            break;
        default:
            break;
        }
    }
    if (mode == sc->timer_mode && (mode != TM_READ || sc->timer_seq == sc->conn.nstarted))
        return; /* keep the running deadline */
    sc->timer_mode = mode;
    sc->timer_seq = sc->conn.nstarted;
    if (mode == TM_NONE)
        uv_timer_stop(&sc->timer);
    else
        uv_timer_start(&sc->timer, sc_on_timer, ms, 0);
}

static void sc_on_timer(uv_timer_t *t)
{
    sconn_t *sc = t->data;
    uint8_t mode = sc->timer_mode;

    sc->timer_mode = TM_NONE;
    if (mode == TM_READ && http_conn_timeout(&sc->conn))
        return; /* a 408 is on its way; the connection closes after it */
    sc_close(sc);
}

/* ---- reading ---- */

static void sc_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    sconn_t *sc = h->data;

    *buf = uv_buf_init(sc->server->rbuf, sizeof sc->server->rbuf);
}

static void sc_on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    sconn_t *sc = stream->data;

    if (nread > 0) {
        if (sc->lingering || sc->closing)
            return;
        sc->fresh = 0;
        http_conn_feed(&sc->conn, buf->base, (size_t)nread);
    } else if (nread == UV_EOF) {
        sc->eof = 1;
        sc->reading = 0;
        uv_read_stop(stream);
        if (sc->lingering)
            sc_close(sc);
        else
            http_conn_eof(&sc->conn);
    } else if (nread < 0) {
        sc_close(sc);
    }
}

/* ---- the protocol's hooks ---- */

static void sc_on_write(uv_write_t *req, int status)
{
    sconn_t *sc = req->data;

    sc->write_pending = 0;
    http_conn_write_done(&sc->conn, status);
}

static void sc_write(yard_http_conn_t *c, const uv_buf_t *bufs, unsigned n)
{
    sconn_t *sc = sc_of(c);
    size_t total = 0, skip;
    unsigned k = 0, m = 0;
    int r;

    if (sc->closing) {
        http_conn_write_done(c, UV_ECANCELED);
        return;
    }
    for (unsigned i = 0; i < n; i++)
        total += bufs[i].len;
    r = uv_try_write((uv_stream_t *)&sc->tcp, bufs, n);
    if (r >= 0 && (size_t)r == total) {
        http_conn_write_done(c, 0);
        return;
    }
    if (r < 0 && r != UV_EAGAIN) {
        http_conn_write_done(c, r);
        return;
    }
    /* Queue what the socket did not take. */
    skip = r > 0 ? (size_t)r : 0;
    for (; k < n && skip >= bufs[k].len; k++)
        skip -= bufs[k].len;
    for (; k < n; k++, m++) {
        sc->iov[m] = uv_buf_init(bufs[k].base + skip, (unsigned)(bufs[k].len - skip));
        skip = 0;
    }
    sc->wreq.data = sc;
    r = uv_write(&sc->wreq, (uv_stream_t *)&sc->tcp, sc->iov, m, sc_on_write);
    if (r) {
        http_conn_write_done(c, r);
        return;
    }
    sc->write_pending = 1;
    sc_timer_update(sc);
}

static void sc_changed(yard_http_conn_t *c)
{
    sconn_t *sc = sc_of(c);
    int want_read;

    if (sc->closing || sc->lingering)
        return;
    if (c->dead) {
        sc_close(sc);
        return;
    }
    if (c->want_close) {
        if (c->linger)
            sc_linger(sc);
        else
            sc_close(sc);
        return;
    }
    want_read = !c->backlog_len && !sc->eof;
    if (want_read != sc->reading) {
        if (want_read)
            want_read = uv_read_start((uv_stream_t *)&sc->tcp, sc_alloc, sc_on_read) == 0;
        else
            uv_read_stop((uv_stream_t *)&sc->tcp);
        sc->reading = want_read != 0;
    }
    sc_timer_update(sc);
}

static const http_conn_ops_t sc_ops = {sc_write, sc_changed, sc_release};

/* ---- accepting ---- */

static void reject_closed(uv_handle_t *h)
{
    reject_t *rj = h->data;
    yard_http_server_t *s = rj->server;

    free(rj);
    s->nrejects--;
    server_check_done(s);
}

/* Over the connection limit: accept, answer 503 if the socket takes it at
 * once, close. */
static void server_reject(yard_http_server_t *s)
{
    reject_t *rj = malloc(sizeof *rj);
    char buf[1024], id[HTTP_ID_MAX + 1];

    if (!rj) {
        YARD_LOG_ERROR(NULL, "http: out of memory refusing a connection");
        return;
    }
    rj->server = s;
    rj->tcp.data = rj;
    uv_tcp_init(s->loop, &rj->tcp);
    s->nrejects++;
    if (uv_accept((uv_stream_t *)&s->listener, (uv_stream_t *)&rj->tcp) == 0) {
        http_ctx_new_id(&s->ctx, id);
        size_t n = http_error_format(buf, sizeof buf, 503, "service_unavailable",
                                     "too many connections", id);
        uv_buf_t b = uv_buf_init(buf, (unsigned)n);
        (void)uv_try_write((uv_stream_t *)&rj->tcp, &b, 1);
        if (s->ctx.observe)
            s->ctx.observe(s->ctx.observe_ud, "unmatched", "UNKNOWN", 503, 0);
    }
    uv_close((uv_handle_t *)&rj->tcp, reject_closed);
}

/* Records the client's address of sc (IPv4-mapped IPv6 counts as IPv4). */
static void sc_note_peer(sconn_t *sc)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;

    sc->peer_len = 0;
    if (uv_tcp_getpeername(&sc->tcp, (struct sockaddr *)&ss, &len))
        return;
    if (ss.ss_family == AF_INET) {
        memcpy(sc->peer, &((struct sockaddr_in *)&ss)->sin_addr, 4);
        sc->peer_len = 4;
    } else if (ss.ss_family == AF_INET6) {
        const unsigned char *a = ((struct sockaddr_in6 *)&ss)->sin6_addr.s6_addr;
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (!memcmp(a, mapped, 12)) {
            memcpy(sc->peer, a + 12, 4);
            sc->peer_len = 4;
        } else {
            memcpy(sc->peer, a, 16);
            sc->peer_len = 16;
        }
    }
}

/* Open connections from the same address as sc, sc excluded. */
static size_t server_count_peer(const yard_http_server_t *s, const sconn_t *sc)
{
    size_t n = 0;

    if (!sc->peer_len)
        return 0;
    for (const sconn_t *o = s->conns; o; o = o->next)
        if (o != sc && !o->closing && o->peer_len == sc->peer_len &&
            !memcmp(o->peer, sc->peer, sc->peer_len))
            n++;
    return n;
}

/* At the connection limit, the longest-known idle keep-alive connection
 * makes room for a new one (as its idle timeout would have, later), so idle
 * connections cannot lock new clients out. Returns 1 if one was closed. */
static int server_evict_idle(yard_http_server_t *s)
{
    sconn_t *victim = NULL;

    for (sconn_t *sc = s->conns; sc; sc = sc->next) /* newest first */
        if (!sc->closing && !sc->lingering && (sc->timer_mode == TM_IDLE || sc->timer_mode == TM_FRESH))
            victim = sc;
    if (!victim)
        return 0;
    sc_close(victim);
    return 1;
}

/* Answers 503 on sc at once (if the socket takes it) and closes it. */
static void sc_refuse(sconn_t *sc, const char *message)
{
    yard_http_server_t *s = sc->server;
    char buf[1024], id[HTTP_ID_MAX + 1];

    http_ctx_new_id(&s->ctx, id);
    size_t n = http_error_format(buf, sizeof buf, 503, "service_unavailable", message, id);
    uv_buf_t b = uv_buf_init(buf, (unsigned)n);
    (void)uv_try_write((uv_stream_t *)&sc->tcp, &b, 1);
    if (s->ctx.observe)
        s->ctx.observe(s->ctx.observe_ud, "unmatched", "UNKNOWN", 503, 0);
    sc_close(sc);
}

static void server_on_connection(uv_stream_t *listener, int status)
{
    yard_http_server_t *s = listener->data;
    sconn_t *sc;

    if (status < 0) {
        YARD_LOG_WARN(NULL, "http: accept failed: %s", uv_strerror(status));
        return;
    }
    if (s->nopen >= s->ctx.lim.max_connections && !server_evict_idle(s)) {
        server_reject(s);
        return;
    }
    sc = calloc(1, sizeof *sc);
    if (!sc) {
        server_reject(s);
        return;
    }
    http_conn_init(&sc->conn, &s->ctx, &sc_ops);
    sc->server = s;
    sc->tcp.data = sc->timer.data = sc;
    uv_tcp_init(s->loop, &sc->tcp);
    uv_timer_init(s->loop, &sc->timer);
    sc->open_handles = 2;
    sc->fresh = 1;
    sc->next = s->conns;
    if (s->conns)
        s->conns->prev = sc;
    s->conns = sc;
    s->nconns++;
    s->nopen++;
    if (uv_accept(listener, (uv_stream_t *)&sc->tcp)) {
        sc_close(sc);
        return;
    }
    sc_note_peer(sc);
    if (server_count_peer(s, sc) >= s->ctx.lim.max_connections_per_client) {
        sc_refuse(sc, "too many connections from this address");
        return;
    }
    if (uv_read_start((uv_stream_t *)&sc->tcp, sc_alloc, sc_on_read)) {
        sc_close(sc);
        return;
    }
    sc->reading = 1;
    uv_tcp_nodelay(&sc->tcp, 1);
    sc_timer_update(sc);
}

/* ---- the server ---- */

int yard_http_server_create(yard_http_server_t **out, uv_loop_t *loop,
                            const yard_http_options_t *opts)
{
    yard_http_server_t *s;

    if (!out || !loop || !opts || !opts->handler)
        return YARD_EINVAL;
    if (sodium_init() < 0)
        return YARD_ECRYPTO;
    s = calloc(1, sizeof *s);
    if (!s)
        return YARD_ENOMEM;
    /* A peer that resets the connection must cost an EPIPE, not the process. */
    signal(SIGPIPE, SIG_IGN);
    s->loop = loop;
    s->port = -1;
    http_ctx_init(&s->ctx, opts);
    *out = s;
    return 0;
}

static void listener_closed(uv_handle_t *h)
{
    yard_http_server_t *s = h->data;

    s->listener_open = 0;
    server_check_done(s);
}

int yard_http_server_listen(yard_http_server_t *server, const char *host, int port)
{
    struct sockaddr_storage ss;
    struct sockaddr_storage bound;
    int len = sizeof bound;
    int r;

    if (!server || !host || port < 0 || port > 65535)
        return YARD_EINVAL;
    if (server->listener_open || server->shutting)
        return YARD_ESTATE;
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) &&
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss))
        return YARD_EINVAL;
    uv_tcp_init(server->loop, &server->listener);
    server->listener.data = server;
    server->listener_open = 1;
    r = uv_tcp_bind(&server->listener, (const struct sockaddr *)&ss, 0);
    if (!r)
        r = uv_listen((uv_stream_t *)&server->listener, LISTEN_BACKLOG, server_on_connection);
    if (!r)
        r = uv_tcp_getsockname(&server->listener, (struct sockaddr *)&bound, &len);
    if (r) {
        YARD_LOG_ERROR(NULL, "http: cannot listen on %s:%d: %s", host, port, uv_strerror(r));
        server->listener_closing = 1;
        uv_close((uv_handle_t *)&server->listener, listener_closed);
        return YARD_EIO;
    }
    server->port = bound.ss_family == AF_INET6
                       ? ntohs(((struct sockaddr_in6 *)&bound)->sin6_port)
                       : ntohs(((struct sockaddr_in *)&bound)->sin_port);
    return 0;
}

int yard_http_server_port(const yard_http_server_t *server)
{
    return server ? server->port : -1;
}

size_t yard_http_server_connections(const yard_http_server_t *server)
{
    return server ? server->nopen : 0;
}

void yard_http_server_shutdown(yard_http_server_t *server, yard_http_done_fn done, void *ud)
{
    if (!server || server->shutting)
        return;
    server->shutting = 1;
    server->done = done;
    server->done_ud = ud;
    if (server->listener_open && !server->listener_closing) {
        server->listener_closing = 1;
        uv_close((uv_handle_t *)&server->listener, listener_closed);
    }
    /* Draining never frees a connection synchronously (closes are async). */
    for (sconn_t *sc = server->conns; sc; sc = sc->next)
        if (!sc->closing && !sc->lingering)
            http_conn_drain(&sc->conn);
    server_check_done(server);
}

void yard_http_server_destroy(yard_http_server_t *server)
{
    if (!server)
        return;
    if (server->listener_open || server->nconns || server->nrejects) {
        YARD_LOG_ERROR(NULL, "http: server destroyed while still running; leaking it");
        return;
    }
    http_ctx_fini(&server->ctx);
    free(server);
}
