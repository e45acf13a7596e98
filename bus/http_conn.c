/*
 * http_conn.c - the HTTP/1.1 protocol of one connection, without a socket.
 *
 * Bytes go through http-parser; each request's head (URL, header names and
 * values) is copied once into the request object's arena, NUL-terminated,
 * and read through offsets from then on. Limits and the framing rules that
 * http-parser leaves open (obs-fold, codings other than chunked, missing
 * length on POST/PUT/PATCH, HTTP versions other than 1.x) are enforced here.
 *
 * Requests join a queue in arrival order and leave it only when written,
 * so responses go out in request order whatever order handlers answer in.
 * Every entry point ends in conn_drive, which loops (parse, write) until
 * nothing moves; a handler answering synchronously re-enters it and only
 * marks that another turn is needed. After a protocol error the queued
 * answers are written, then the error, then the connection closes; the
 * bytes after the error are never parsed.
 */
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "err.h"
#include "http_internal.h"
#include "log.h"

enum { CB_NONE, CB_URL, CB_FIELD, CB_VALUE };

static const char continue_100[] = "HTTP/1.1 100 Continue\r\n\r\n";

/* ---- errors ---- */

/* Records an error for the feed loop; the callback then returns -1. */
static int conn_error(yard_http_conn_t *c, int status, const char *code, const char *msg)
{
    c->err_status = (uint16_t)status;
    c->err_code = code;
    c->err_msg = msg;
    return -1;
}

/* ---- memory budgets ---- */

#define MEM_TRIM_AFTER (32u << 20) /* a peak above this is given back once it has passed */

void http_mem_charge(yard_http_conn_t *c, long long delta)
{
    http_ctx_t *ctx = c->ctx;

    c->mem_used = (size_t)((long long)c->mem_used + delta);
    ctx->mem_used = (size_t)((long long)ctx->mem_used + delta);
    if (ctx->mem_used > ctx->mem_peak) {
        ctx->mem_peak = ctx->mem_used;
    } else if (ctx->mem_peak > MEM_TRIM_AFTER && ctx->mem_used < ctx->mem_peak / 8) {
        /* A flood has passed: glibc keeps freed heap for reuse; give it back. */
        malloc_trim(0);
        ctx->mem_peak = ctx->mem_used;
    }
}

void http_mem_recharge(yard_http_req_t *req)
{
    size_t now = req->heap_body_cap + req->heap_out_cap;

    if (now != req->charged)
        http_mem_charge(req->conn, (long long)now - (long long)req->charged);
    req->charged = now;
}

/* Whether c may parse more requests now: its pipeline has room, the
 * client takes its answers, and what it holds is within its budget (the
 * request being received may always complete, or nothing would). */
static int conn_can_parse(const yard_http_conn_t *c)
{
    if (c->nqueued >= HTTP_MAX_PIPELINE || c->write_busy)
        return 0;
    return c->mem_used <= c->ctx->lim.max_conn_buffer || c->nqueued == (c->cur ? 1u : 0u);
}

/* Appends req to the response queue. */
static void queue_append(yard_http_conn_t *c, yard_http_req_t *req)
{
    req->next = NULL;
    if (c->q_tail)
        c->q_tail->next = req;
    else
        c->q_head = req;
    c->q_tail = req;
    c->nqueued++;
}

/* Hands req to the handler; the handler's answer brings it back. */
static void conn_hand_over(yard_http_conn_t *c, yard_http_req_t *req)
{
    req->state = HTTP_REQ_HANDLING;
    c->refs++;
    c->nhandling++;
}

/* Answers the request being received (or a fresh one) with an error, stops
 * reading and closes once everything before it is written. */
static void conn_fail(yard_http_conn_t *c, int status, const char *code, const char *msg)
{
    yard_http_req_t *req = c->cur;

    c->cur = NULL;
    c->partial = 0;
    c->stop_parsing = 1;
    c->close_when_done = 1;
    c->linger = 1;
    c->backlog_len = 0;
    if (!req) {
        req = http_req_get(c);
        if (!req) {
            http_conn_abort(c);
            return;
        }
        req->t_start = uv_hrtime();
        queue_append(c, req);
    }
    conn_hand_over(c, req);
    yard_http_respond_error(req, status, code, msg);
}

/* ---- the head: copied into the arena ---- */

/* Starts a new NUL-terminated element of the head; returns its offset. */
static uint32_t head_start(yard_http_req_t *req)
{
    if (req->head_len)
        req->head_len++; /* keep the previous element's terminator */
    req->arena[req->head_len] = '\0';
    return req->head_len;
}

/* Appends n bytes to the current element, counting them against the limit
 * (over it: 414 while in the URL, else 431). */
static int head_append(yard_http_conn_t *c, yard_http_req_t *req, const char *at, size_t n)
{
    if (n > c->ctx->lim.max_header_bytes - req->raw_len)
        return c->last_cb == CB_URL
                   ? conn_error(c, 414, "uri_too_long", "request target too long")
                   : conn_error(c, 431, "headers_too_large", "request head too large");
    req->raw_len += (uint32_t)n;
    if (req->in_trailers)
        return 0; /* trailers are counted, not kept */
    memcpy(req->arena + req->head_len, at, n);
    req->head_len += (uint32_t)n;
    req->arena[req->head_len] = '\0';
    return 0;
}

static int on_message_begin(http_parser *p)
{
    yard_http_conn_t *c = p->data;
    yard_http_req_t *req = http_req_get(c);

    if (!req)
        return conn_error(c, 0, NULL, NULL);
    req->state = HTTP_REQ_RECEIVING;
    req->t_start = uv_hrtime();
    queue_append(c, req);
    c->cur = req;
    c->last_cb = CB_NONE;
    c->nstarted++;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    yard_http_conn_t *c = p->data;
    yard_http_req_t *req = c->cur;

    if (c->last_cb != CB_URL) {
        req->url_off = head_start(req);
        req->has_method = 1;
        req->method = (uint8_t)p->method;
        c->last_cb = CB_URL;
    }
    if (head_append(c, req, at, n))
        return -1;
    req->url_len += (uint32_t)n;
    return 0;
}

/* Nonzero when the bytes before at, back through earlier chunks, are a
 * line break followed only by blanks. */
static int after_line_break(const yard_http_conn_t *c, const char *at)
{
    const char *p = at;

    while (p > c->chunk && (p[-1] == ' ' || p[-1] == '\t'))
        p--;
    return p > c->chunk ? p[-1] == '\n' : c->lf_blank;
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    yard_http_conn_t *c = p->data;
    yard_http_req_t *req = c->cur;

    /* http-parser lets "Name : value" through; RFC 7230 3.2.4: reject. */
    if (memchr(at, ' ', n))
        return conn_error(c, 400, "bad_request", "whitespace in a header name");
    if (c->last_cb != CB_FIELD && !req->in_trailers) {
        if (req->nhdr >= c->ctx->lim.max_headers)
            return conn_error(c, 431, "headers_too_large", "too many header lines");
        http_hdr_t *h = &req->hdrs[req->nhdr++];
        h->name_off = head_start(req);
        h->name_len = h->val_len = 0;
        h->val_off = h->name_off;
    }
    c->last_cb = CB_FIELD;
    if (head_append(c, req, at, n))
        return -1;
    if (!req->in_trailers)
        req->hdrs[req->nhdr - 1].name_len += (uint32_t)n;
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    yard_http_conn_t *c = p->data;
    yard_http_req_t *req = c->cur;

    /* http-parser joins an obs-folded line to the value it continues: the
     * piece then starts after a line break and blanks. RFC 7230 3.2.4:
     * reject rather than guess what a proxy in front made of it. */
    if (after_line_break(c, at))
        return conn_error(c, 400, "bad_request", "folded header line");
    for (size_t i = 0; i < n; i++) { /* http-parser lets control bytes through */
        unsigned char ch = (unsigned char)at[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return conn_error(c, 400, "bad_request", "control character in a header value");
    }
    if (c->last_cb != CB_VALUE && !req->in_trailers)
        req->hdrs[req->nhdr - 1].val_off = head_start(req);
    c->last_cb = CB_VALUE;
    if (head_append(c, req, at, n))
        return -1;
    if (!req->in_trailers)
        req->hdrs[req->nhdr - 1].val_len += (uint32_t)n;
    return 0;
}

/* Removes trailing blanks from each value; splits the URL into path and
 * query (a fragment, which clients should not send, is dropped). */
static void head_finish(yard_http_req_t *req)
{
    for (unsigned i = 0; i < req->nhdr; i++) {
        http_hdr_t *h = &req->hdrs[i];
        if (h->val_off == h->name_off) /* no value arrived: use the name's terminator */
            h->val_off = h->name_off + h->name_len;
        while (h->val_len && (req->arena[h->val_off + h->val_len - 1] == ' ' ||
                              req->arena[h->val_off + h->val_len - 1] == '\t'))
            h->val_len--;
        req->arena[h->val_off + h->val_len] = '\0';
    }
    char *url = req->arena + req->url_off;
    char *hash = memchr(url, '#', req->url_len);
    uint32_t len = hash ? (uint32_t)(hash - url) : req->url_len;
    char *q = memchr(url, '?', len);

    url[len] = '\0';
    req->path_len = q ? (uint32_t)(q - url) : len;
    if (q) {
        *q = '\0';
        req->has_query = 1;
        req->query_off = req->url_off + req->path_len + 1;
        req->query_len = len - req->path_len - 1;
    }
}

/* Is header h named name (lower case, length n)? */
static int hdr_is(const yard_http_req_t *req, const http_hdr_t *h, const char *name, size_t n)
{
    return h->name_len == n && strncasecmp(req->arena + h->name_off, name, n) == 0;
}

/* Transfer-Encoding value -> 0: chunked alone, 1: chunked last after other
 * codings (we cannot undo them: 501), 2: chunked not last (length unknown:
 * 400, RFC 7230 3.3.3). */
static int te_kind(const char *v, size_t n)
{
    const char *comma = memrchr(v, ',', n);
    const char *last = comma ? comma + 1 : v;
    size_t len = n - (size_t)(last - v);

    while (len && (*last == ' ' || *last == '\t')) {
        last++;
        len--;
    }
    if (len != 7 || strncasecmp(last, "chunked", 7) != 0)
        return 2;
    return comma ? 1 : 0;
}

/* Applies the framing and version rules to a complete head. Returns 0 or
 * conn_error's -1. */
static int head_check(yard_http_conn_t *c, yard_http_req_t *req)
{
    const http_parser *p = &c->parser;
    unsigned n_cl = 0, n_te = 0;
    int te = 0;

    if (p->http_major != 1)
        return conn_error(c, 505, "http_version_not_supported", "only HTTP/1.x is served");
    for (unsigned i = 0; i < req->nhdr; i++) {
        const http_hdr_t *h = &req->hdrs[i];
        if (hdr_is(req, h, "content-length", 14)) {
            n_cl++;
        } else if (hdr_is(req, h, "transfer-encoding", 17)) {
            n_te++;
            te = te_kind(req->arena + h->val_off, h->val_len);
        } else if (hdr_is(req, h, "expect", 6)) {
            if (strcasecmp(req->arena + h->val_off, "100-continue") == 0 && p->http_minor >= 1)
                req->want_continue = 1;
        }
    }
    /* http-parser 2.9.4 rejects both of these already; kept as a guard. */
    if (n_cl > 1 || (n_cl && n_te))
        return conn_error(c, 400, "bad_request", "conflicting message length headers");
    if (n_te > 1)
        return conn_error(c, 400, "bad_request", "repeated Transfer-Encoding");
    if (n_te && te == 2)
        return conn_error(c, 400, "bad_request", "chunked must be the final transfer coding");
    if (n_te && te == 1)
        return conn_error(c, 501, "not_implemented", "only the chunked transfer coding is supported");
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > c->ctx->lim.max_body)
        return conn_error(c, 413, "payload_too_large", "request body too large");
    if (!n_cl && !n_te &&
        (p->method == HTTP_POST || p->method == HTTP_PUT || p->method == HTTP_PATCH))
        return conn_error(c, 411, "length_required", "Content-Length or chunked body required");
    return 0;
}

/* Makes room for need more body bytes (that have arrived): in the arena
 * after the head while they fit, then on the heap, growing at most to twice
 * what has arrived and never beyond the announced length (0: unknown).
 * Returns 0, or -1 with the connection's error set (ENOMEM, or 503 when the
 * server's buffer budget is spent). */
static int body_reserve(yard_http_conn_t *c, yard_http_req_t *req, size_t need, size_t announced)
{
    const http_ctx_t *ctx = c->ctx;
    size_t want = req->body_len + need;
    size_t arena_room = ctx->arena_cap - req->head_len - 1;
    int in_arena = req->body_cap && req->body != req->heap_body;

    if (want <= req->body_cap)
        return 0;
    if (!req->body_cap && want <= arena_room) {
        req->body = req->arena + req->head_len + 1;
        req->body_cap = arena_room;
        return 0;
    }
    if (want > req->heap_body_cap) {
        size_t cap = req->heap_body_cap * 2;
        if (cap < want)
            cap = want;
        if (cap < 16 * 1024)
            cap = 16 * 1024;
        if (announced && cap > announced)
            cap = announced > want ? announced : want;
        if (cap > ctx->lim.max_body)
            cap = want;
        if (ctx->mem_used + (cap - req->heap_body_cap) > ctx->lim.max_buffer)
            return conn_error(c, 503, "server_busy",
                              "the server holds too many request bodies; retry shortly");
        char *b = realloc(req->heap_body, cap);
        if (!b)
            return conn_error(c, 0, NULL, NULL);
        req->heap_body = b;
        req->heap_body_cap = cap;
        http_mem_recharge(req);
    }
    if (in_arena && req->body_len)
        memcpy(req->heap_body, req->body, req->body_len);
    req->body = req->heap_body;
    req->body_cap = req->heap_body_cap;
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    yard_http_conn_t *c = p->data;
    yard_http_req_t *req = c->cur;

    if (!req->has_method) /* http-parser always reports a URL; stay safe */
        return conn_error(c, 400, "bad_request", "missing request target");
    head_finish(req);
    req->head_done = 1;
    req->in_trailers = 1;
    req->keep_alive = http_should_keep_alive(p) != 0;
    req->http10 = p->http_major == 1 && p->http_minor == 0;
    if (head_check(c, req))
        return -1;
    /* Nothing is reserved for the body before its bytes arrive. */
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    yard_http_conn_t *c = p->data;
    yard_http_req_t *req = c->cur;

    if (n > c->ctx->lim.max_body - req->body_len)
        return conn_error(c, 413, "payload_too_large", "request body too large");
    if (body_reserve(c, req, n, (p->flags & F_CONTENTLENGTH) ? req->body_len + n + (size_t)p->content_length : 0))
        return -1;
    memcpy(req->body + req->body_len, at, n);
    req->body_len += n;
    return 0;
}

static int on_chunk_header(http_parser *p)
{
    yard_http_conn_t *c = p->data;

    /* The chunk's size is known before its data: refuse it unread. */
    if (p->content_length > c->ctx->lim.max_body - c->cur->body_len)
        return conn_error(c, 413, "payload_too_large", "request body too large");
    return 0;
}

static int on_message_complete(http_parser *p)
{
    /* Stop here so the request is handed over outside the parser. */
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
    .on_chunk_header = on_chunk_header,
};

/* ---- parsing and dispatch ---- */

/* A complete request goes to the handler. */
static void conn_dispatch(yard_http_conn_t *c)
{
    yard_http_req_t *req = c->cur;

    c->cur = NULL;
    /* After Connection: close, an Upgrade (whatever follows is another
     * protocol) or during a drain, this was the last request. */
    if (!req->keep_alive || c->parser.upgrade || c->draining) {
        c->stop_parsing = 1;
        c->close_when_done = 1;
    }
    conn_hand_over(c, req);
    c->ctx->handler(req, c->ctx->handler_ud);
}

/* Turns a parser error into the answer it deserves. */
static void conn_parse_error(yard_http_conn_t *c, enum http_errno e)
{
    if (e >= HPE_CB_message_begin && e <= HPE_CB_chunk_complete) {
        if (!c->err_status) { /* out of memory */
            http_conn_abort(c);
            return;
        }
        conn_fail(c, c->err_status, c->err_code, c->err_msg);
        return;
    }
    if (e == HPE_HEADER_OVERFLOW)
        conn_fail(c, 431, "headers_too_large", "request head too large");
    else
        conn_fail(c, 400, "bad_request", http_errno_description(e));
}

/* Parses from data until it is used up, the queue is full, or the
 * connection stops reading. Returns the bytes used. */
static size_t conn_parse(yard_http_conn_t *c, const char *data, size_t len)
{
    size_t done = 0;

    while (done < len && !c->stop_parsing && !c->dead && conn_can_parse(c)) {
        c->chunk = data + done;
        size_t n = http_parser_execute(&c->parser, &parser_settings, data + done, len - done);
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);

        done += n;
        c->lf_blank = (uint8_t)after_line_break(c, data + done);
        if (e == HPE_PAUSED) {
            http_parser_pause(&c->parser, 0);
            c->partial = 0;
            conn_dispatch(c);
        } else if (e != HPE_OK) {
            conn_parse_error(c, e);
            return len;
        } else if (n) {
            c->partial = 1;
        }
    }
    return done;
}

/* No more input will come: a request cut short gets no answer, the ones
 * before it do, then the connection closes. */
static void conn_input_ended(yard_http_conn_t *c)
{
    if (c->cur && !c->stop_parsing) {
        yard_http_req_t *r = c->q_head, *prev = NULL;
        while (r != c->cur) {
            prev = r;
            r = r->next;
        }
        if (prev)
            prev->next = NULL;
        else
            c->q_head = NULL;
        c->q_tail = prev;
        c->nqueued--;
        http_req_put(c, c->cur);
        c->cur = NULL;
    }
    c->partial = 0;
    c->stop_parsing = 1;
    c->close_when_done = 1;
    c->backlog_len = 0;
}

/* Parses the backlog, then the caller's bytes, as far as possible. */
static void conn_parse_input(yard_http_conn_t *c)
{
    if (c->backlog_len) {
        size_t n = conn_parse(c, c->backlog, c->backlog_len);
        if (n >= c->backlog_len || c->stop_parsing || c->dead) {
            c->backlog_len = 0;
            if (c->peer_eof && !c->dead)
                conn_input_ended(c);
        } else {
            memmove(c->backlog, c->backlog + n, c->backlog_len - n);
            c->backlog_len -= n;
            return;
        }
    }
    if (c->in_len) {
        size_t n = conn_parse(c, c->in, c->in_len);
        if (c->stop_parsing || c->dead) {
            c->in_len = 0;
        } else {
            c->in += n;
            c->in_len -= n;
        }
    }
}

/* ---- writing ---- */

/* Starts one write of the responses ready at the head of the queue, or of
 * an interim 100 Continue for a request whose body is awaited. */
static void conn_flush(yard_http_conn_t *c)
{
    uv_buf_t bufs[HTTP_WRITE_BATCH];
    unsigned n = 0, nreq = 0;
    yard_http_req_t *r = c->q_head;

    if (c->write_busy || c->dead || !r)
        return;
    if (r->state == HTTP_REQ_RECEIVING && r->want_continue && !r->continue_sent) {
        r->continue_sent = 1;
        bufs[n++] = uv_buf_init((char *)continue_100, sizeof continue_100 - 1);
    } else {
        for (; r && r->state == HTTP_REQ_READY && n < HTTP_WRITE_BATCH; r = r->next) {
            r->state = HTTP_REQ_WRITING;
            bufs[n++] = uv_buf_init(r->out, (unsigned)r->out_len);
        }
        nreq = n;
    }
    if (!n)
        return;
    c->write_busy = 1;
    c->nwriting = nreq;
    c->ops->write(c, bufs, n);
}

void http_conn_write_done(yard_http_conn_t *c, int status)
{
    c->write_busy = 0;
    for (; c->nwriting; c->nwriting--) {
        yard_http_req_t *r = c->q_head;
        c->q_head = r->next;
        if (!c->q_head)
            c->q_tail = NULL;
        c->nqueued--;
        http_req_put(c, r);
    }
    if (status < 0) {
        http_conn_abort(c);
        c->ops->changed(c);
        return;
    }
    http_conn_drive(c);
}

/* ---- the work loop ---- */

void http_conn_drive(yard_http_conn_t *c)
{
    if (c->driving) {
        c->again = 1;
        return;
    }
    c->driving = 1;
    do {
        c->again = 0;
        if (!c->stop_parsing && !c->dead && conn_can_parse(c))
            conn_parse_input(c);
        conn_flush(c);
    } while (c->again && !c->dead);
    c->driving = 0;
    if (c->close_when_done && !c->q_head && !c->write_busy && !c->dead)
        c->want_close = 1;
    c->ops->changed(c);
}

void http_conn_feed(yard_http_conn_t *c, const char *data, size_t len)
{
    if (c->stop_parsing || c->dead || !len)
        return;
    c->in = data;
    c->in_len = len;
    if (!c->backlog_len && conn_can_parse(c))
        http_conn_drive(c);
    if (!c->in_len || c->stop_parsing || c->dead) {
        c->in_len = 0;
        return;
    }
    /* Keep what could not be parsed; the transport pauses reading. */
    if (c->backlog_len + c->in_len > c->backlog_cap) {
        size_t cap = c->backlog_len + c->in_len;
        char *b = realloc(c->backlog, cap);
        if (!b) {
            http_conn_abort(c);
            c->ops->changed(c);
            return;
        }
        http_mem_charge(c, (long long)cap - (long long)c->backlog_cap);
        c->backlog = b;
        c->backlog_cap = cap;
    }
    memcpy(c->backlog + c->backlog_len, c->in, c->in_len);
    c->backlog_len += c->in_len;
    c->in_len = 0;
    c->ops->changed(c);
}

void http_conn_eof(yard_http_conn_t *c)
{
    if (c->dead)
        return;
    c->peer_eof = 1;
    if (!c->backlog_len) /* else the pipelined requests kept there come first */
        conn_input_ended(c);
    http_conn_drive(c);
}

int http_conn_timeout(yard_http_conn_t *c)
{
    if (c->dead || !c->partial || c->stop_parsing)
        return 0;
    conn_fail(c, 408, "request_timeout", "request not received in time");
    http_conn_drive(c);
    return !c->dead;
}

void http_conn_drain(yard_http_conn_t *c)
{
    c->draining = 1;
    if (!c->partial) {
        c->stop_parsing = 1;
        c->backlog_len = 0;
    }
    c->close_when_done = 1;
    if (!c->dead)
        http_conn_drive(c);
}

int http_conn_timer_mode(const yard_http_conn_t *c)
{
    if (c->dead || c->want_close)
        return HTTP_TIMER_NONE;
    if (c->partial && !c->stop_parsing && !c->backlog_len)
        return HTTP_TIMER_READ;
    if (!c->q_head && !c->backlog_len)
        return HTTP_TIMER_IDLE;
    return HTTP_TIMER_NONE;
}

/* ---- lifetime ---- */

void http_conn_init(yard_http_conn_t *c, http_ctx_t *ctx, const http_conn_ops_t *ops)
{
    memset(c, 0, sizeof *c);
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    c->ctx = ctx;
    c->ops = ops;
    c->refs = 1;
}

void http_conn_abort(yard_http_conn_t *c)
{
    yard_http_req_t *r, *next, *keep = NULL, *keep_tail = NULL;

    if (c->dead)
        return;
    c->dead = 1;
    c->stop_parsing = 1;
    c->partial = 0;
    c->cur = NULL;
    c->backlog_len = 0;
    /* Responses being written stay until their write completes; requests
     * with the handler become orphans; the rest go back to the pool. */
    for (r = c->q_head; r; r = next) {
        next = r->next;
        r->next = NULL;
        if (r->state == HTTP_REQ_WRITING) {
            if (keep_tail)
                keep_tail->next = r;
            else
                keep = r;
            keep_tail = r;
        } else {
            c->nqueued--;
            if (r->state != HTTP_REQ_HANDLING)
                http_req_put(c, r);
        }
    }
    c->q_head = keep;
    c->q_tail = keep_tail;
}

void http_conn_unref(yard_http_conn_t *c)
{
    if (--c->refs)
        return;
    if (c->backlog_cap)
        http_mem_charge(c, -(long long)c->backlog_cap);
    free(c->backlog);
    c->ops->release(c);
}
