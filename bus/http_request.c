/*
 * http_request.c - what a handler sees of a request, and how it answers.
 *
 * A request object is one allocation: the struct, the header table and an
 * arena holding the head (copied once from the read buffer), then small
 * bodies and the response when they fit. The server keeps freed ones in a
 * pool shared by its connections (all on the loop thread), with modest heap
 * buffers, so once warm a request allocates nothing.
 *
 * Answering builds the whole response (head and body) into one buffer, logs
 * the access line, calls the observe hook and gives the request back to its
 * connection, which writes it in turn.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "err.h"
#include "http_internal.h"
#include "log.h"

#define DEF_MAX_HEADER_BYTES (8 * 1024)
#define DEF_MAX_HEADERS 64
#define DEF_MAX_BODY (1024 * 1024)
#define DEF_MAX_CONNECTIONS 1024
#define DEF_READ_TIMEOUT_MS 10000
#define DEF_IDLE_TIMEOUT_MS 60000
#define DEF_MAX_CONNECTIONS_PER_CLIENT 256
#define DEF_MAX_CONN_BUFFER (2u << 20)
#define DEF_MAX_BUFFER (256u << 20)
#define CAP_MAX_HEADER_BYTES (1024 * 1024) /* offsets are 32-bit; keep it sane */
#define CAP_MAX_HEADERS 4096
#define ERROR_BODY_MAX 1024

/* ---- context and ids ---- */

static void default_random(void *buf, size_t n)
{
    randombytes_buf(buf, n);
}

void http_ctx_init(http_ctx_t *ctx, const yard_http_options_t *opts)
{
    yard_http_limits_t *l = &ctx->lim;

    memset(ctx, 0, sizeof *ctx);
    *l = opts->limits;
    if (!l->max_header_bytes)
        l->max_header_bytes = DEF_MAX_HEADER_BYTES;
    if (l->max_header_bytes > CAP_MAX_HEADER_BYTES)
        l->max_header_bytes = CAP_MAX_HEADER_BYTES;
    if (!l->max_headers)
        l->max_headers = DEF_MAX_HEADERS;
    if (l->max_headers > CAP_MAX_HEADERS)
        l->max_headers = CAP_MAX_HEADERS;
    if (!l->max_body)
        l->max_body = DEF_MAX_BODY;
    if (!l->max_connections)
        l->max_connections = DEF_MAX_CONNECTIONS;
    if (!l->read_timeout_ms)
        l->read_timeout_ms = DEF_READ_TIMEOUT_MS;
    if (!l->idle_timeout_ms)
        l->idle_timeout_ms = DEF_IDLE_TIMEOUT_MS;
    if (!l->max_connections_per_client)
        l->max_connections_per_client = DEF_MAX_CONNECTIONS_PER_CLIENT;
    if (!l->max_conn_buffer)
        l->max_conn_buffer = DEF_MAX_CONN_BUFFER;
    if (!l->max_buffer)
        l->max_buffer = DEF_MAX_BUFFER;
    ctx->handler = opts->handler;
    ctx->handler_ud = opts->handler_ud;
    ctx->observe = opts->observe;
    ctx->observe_ud = opts->observe_ud;
    ctx->random = opts->random ? opts->random : default_random;
    ctx->head_cap = l->max_header_bytes + 2 * l->max_headers + 2;
    ctx->arena_cap = ctx->head_cap + HTTP_ARENA_SPARE;
    ctx->rnd_used = sizeof ctx->rnd;
}

void http_ctx_new_id(http_ctx_t *ctx, char id[HTTP_ID_MAX + 1])
{
    static const char hex[] = "0123456789abcdef";

    if (ctx->rnd_used + 16 > sizeof ctx->rnd) {
        ctx->random(ctx->rnd, sizeof ctx->rnd);
        ctx->rnd_used = 0;
    }
    for (int i = 0; i < 16; i++) {
        unsigned char b = ctx->rnd[ctx->rnd_used++];
        id[2 * i] = hex[b >> 4];
        id[2 * i + 1] = hex[b & 15];
    }
    id[32] = '\0';
}

/* 1..64 printable ASCII characters, no blanks, quotes or backslashes. */
static int id_acceptable(const char *s, size_t n)
{
    if (n < 1 || n > HTTP_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch <= 0x20 || ch >= 0x7f || ch == '"' || ch == '\'' || ch == '\\')
            return 0;
    }
    return 1;
}

/* ---- request objects ---- */

yard_http_req_t *http_req_get(yard_http_conn_t *c)
{
    http_ctx_t *ctx = c->ctx;
    yard_http_req_t *r = ctx->pool;

    if (r) {
        ctx->pool = r->next;
        ctx->npool--;
    } else {
        size_t hdr_bytes = ctx->lim.max_headers * sizeof(http_hdr_t);
        r = malloc(sizeof *r + hdr_bytes + ctx->arena_cap);
        if (!r)
            return NULL;
        memset(r, 0, sizeof *r);
        r->hdrs = (http_hdr_t *)(r + 1);
        r->arena = (char *)(r->hdrs + ctx->lim.max_headers);
    }
    r->conn = c;
    return r;
}

void http_req_free(yard_http_req_t *req)
{
    if (!req)
        return;
    free(req->heap_body);
    free(req->heap_out);
    free(req);
}

void http_req_put(yard_http_conn_t *c, yard_http_req_t *req)
{
    http_ctx_t *ctx = c->ctx;

    if (req->charged)
        http_mem_charge(c, -(long long)req->charged);
    req->charged = 0;

    if (ctx->npool >= HTTP_POOL_KEEP) {
        http_req_free(req);
        return;
    }
    /* Keep the allocation and modest buffers; clear everything else. */
    http_hdr_t *hdrs = req->hdrs;
    char *arena = req->arena;
    char *hb = req->heap_body, *ho = req->heap_out;
    size_t hbc = req->heap_body_cap, hoc = req->heap_out_cap;
    if (hbc > HTTP_BUF_KEEP) {
        free(hb);
        hb = NULL;
        hbc = 0;
    }
    if (hoc > HTTP_BUF_KEEP) {
        free(ho);
        ho = NULL;
        hoc = 0;
    }
    memset(req, 0, offsetof(yard_http_req_t, params));
    req->hdrs = hdrs;
    req->arena = arena;
    req->heap_body = hb;
    req->heap_body_cap = hbc;
    req->heap_out = ho;
    req->heap_out_cap = hoc;
    req->next = ctx->pool;
    ctx->pool = req;
    ctx->npool++;
}

void http_ctx_fini(http_ctx_t *ctx)
{
    while (ctx->pool) {
        yard_http_req_t *r = ctx->pool;
        ctx->pool = r->next;
        http_req_free(r);
    }
    ctx->npool = 0;
}

/* ---- accessors ---- */

const char *yard_http_req_method(const yard_http_req_t *req)
{
    return req->has_method ? http_method_str((enum http_method)req->method) : "UNKNOWN";
}

const char *yard_http_req_path(const yard_http_req_t *req, size_t *len)
{
    if (len)
        *len = req->head_done ? req->path_len : 0;
    return req->head_done ? req->arena + req->url_off : "";
}

const char *yard_http_req_query(const yard_http_req_t *req, size_t *len)
{
    if (!req->has_query)
        return NULL;
    if (len)
        *len = req->query_len;
    return req->arena + req->query_off;
}

const char *yard_http_req_header(const yard_http_req_t *req, const char *name, size_t *len)
{
    size_t n = strlen(name);

    for (unsigned i = 0; i < req->nhdr; i++) {
        const http_hdr_t *h = &req->hdrs[i];
        if (h->name_len == n && strncasecmp(req->arena + h->name_off, name, n) == 0) {
            if (len)
                *len = h->val_len;
            return req->arena + h->val_off;
        }
    }
    return NULL;
}

size_t yard_http_req_header_count(const yard_http_req_t *req)
{
    return req->nhdr;
}

int yard_http_req_header_at(const yard_http_req_t *req, size_t i, const char **name,
                            size_t *name_len, const char **value, size_t *value_len)
{
    if (i >= req->nhdr)
        return YARD_ERANGE;
    const http_hdr_t *h = &req->hdrs[i];
    *name = req->arena + h->name_off;
    *name_len = h->name_len;
    *value = req->arena + h->val_off;
    *value_len = h->val_len;
    return 0;
}

const char *yard_http_req_body(const yard_http_req_t *req, size_t *len)
{
    if (len)
        *len = req->body_len;
    return req->body ? req->body : "";
}

const char *yard_http_req_id(yard_http_req_t *req)
{
    if (!req->id[0]) {
        size_t n = 0;
        const char *v = req->head_done ? yard_http_req_header(req, "x-request-id", &n) : NULL;
        if (v && id_acceptable(v, n))
            memcpy(req->id, v, n + 1);
        else
            http_ctx_new_id(req->conn->ctx, req->id);
    }
    return req->id;
}

void yard_http_req_set_trace(yard_http_req_t *req, const char *trace_id)
{
    size_t n = trace_id ? strnlen(trace_id, HTTP_TRACE_ID_MAX) : 0;
    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)trace_id[i]))
            n = 0;
    memcpy(req->trace_id, trace_id ? trace_id : "", n);
    req->trace_id[n] = '\0';
}

const char *yard_http_req_param(const yard_http_req_t *req, const char *name, size_t *len)
{
    size_t n = strlen(name);

    for (unsigned i = 0; i < req->nparams; i++) {
        const http_param_t *p = &req->params[i];
        if (p->name_len == n && memcmp(p->name, name, n) == 0) {
            if (len)
                *len = p->len;
            return req->arena + p->off;
        }
    }
    return NULL;
}

const char *yard_http_req_route(const yard_http_req_t *req)
{
    return req->route;
}

int yard_http_req_client_gone(const yard_http_req_t *req)
{
    return req->conn->dead;
}

/* ---- formatting ---- */

typedef struct {
    char *buf;
    size_t len;
} out_t;

static void put_mem(out_t *o, const char *s, size_t n)
{
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

static void put_str(out_t *o, const char *s)
{
    put_mem(o, s, strlen(s));
}

static void put_num(out_t *o, size_t v)
{
    char tmp[24];
    int i = (int)sizeof tmp;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    put_mem(o, tmp + i, sizeof tmp - (size_t)i);
}

/* Bytes head_format may write beyond its variable parts. */
#define HEAD_FIXED 160

/* Writes the status line and headers (and the blank line) to o.
 * content_length < 0 leaves Content-Length out; connection (NULL for none)
 * is the Connection header's value. */
static void head_format(out_t *o, int status, const char *content_type, long long content_length,
                        const char *id, const char *connection, const char *extra)
{
    put_str(o, "HTTP/1.1 ");
    put_num(o, (size_t)status);
    put_str(o, " ");
    put_str(o, http_status_str((enum http_status)status));
    put_str(o, "\r\n");
    if (content_type) {
        put_str(o, "Content-Type: ");
        put_str(o, content_type);
        put_str(o, "\r\n");
    }
    if (content_length >= 0) {
        put_str(o, "Content-Length: ");
        put_num(o, (size_t)content_length);
        put_str(o, "\r\n");
    }
    put_str(o, "X-Request-Id: ");
    put_str(o, id);
    put_str(o, "\r\n");
    if (connection) {
        put_str(o, "Connection: ");
        put_str(o, connection);
        put_str(o, "\r\n");
    }
    if (extra)
        put_str(o, extra);
    put_str(o, "\r\n");
}

/* Writes the API's error JSON for code, message and id into buf (cap >=
 * 256); long messages are cut. Returns its length. */
static size_t error_body(char *buf, size_t cap, const char *code, const char *message,
                         const char *id)
{
    size_t n = 0;
    out_t o = {buf, 0};

    code = code ? code : "error";
    message = message ? message : "";
    put_str(&o, "{\"error\":{\"code\":\"");
    n = o.len;
    yard_log_json_escape(buf, cap - 200, &n, code, strlen(code));
    o.len = n;
    put_str(&o, "\",\"message\":\"");
    n = o.len;
    yard_log_json_escape(buf, cap - 100, &n, message, strlen(message));
    o.len = n;
    put_str(&o, "\",\"request_id\":\"");
    n = o.len;
    yard_log_json_escape(buf, cap - 4, &n, id, strlen(id));
    o.len = n;
    put_str(&o, "\"}}");
    return o.len;
}

size_t http_error_format(char *buf, size_t cap, int status, const char *code, const char *message,
                         const char *request_id)
{
    char body[ERROR_BODY_MAX];
    size_t blen = error_body(body, sizeof body, code, message, request_id);
    out_t o = {buf, 0};

    if (cap < HEAD_FIXED + 64 + strlen(request_id) + blen)
        return 0;
    head_format(&o, status, "application/json", (long long)blen, request_id, "close", NULL);
    put_mem(&o, body, blen);
    return o.len;
}

/* ---- answering ---- */

/* Nonzero when extra is NULL or complete "Name: value\r\n" lines that do
 * not touch the message framing. */
static int extra_headers_ok(const char *extra)
{
    const char *p = extra;

    if (!p)
        return 1;
    while (*p) {
        const char *eol = strstr(p, "\r\n");
        const char *colon = eol ? memchr(p, ':', (size_t)(eol - p)) : NULL;
        if (!colon || colon == p)
            return 0;
        for (const char *q = p; q < eol; q++)
            if (*q == '\r' || *q == '\n')
                return 0;
        size_t nl = (size_t)(colon - p);
        if ((nl == 14 && strncasecmp(p, "content-length", nl) == 0) ||
            (nl == 17 && strncasecmp(p, "transfer-encoding", nl) == 0) ||
            (nl == 10 && strncasecmp(p, "connection", nl) == 0))
            return 0;
        p = eol + 2;
    }
    return 1;
}

/* Room for n response bytes that overlaps neither the head nor the body:
 * the arena after them, else the heap buffer. NULL on ENOMEM. */
static char *out_space(yard_http_req_t *req, size_t n)
{
    const http_ctx_t *ctx = req->conn->ctx;
    size_t off = req->head_len + 1;

    if (req->body && req->body != req->heap_body)
        off = (size_t)(req->body - req->arena) + req->body_len;
    if (n <= ctx->arena_cap - off)
        return req->arena + off;
    if (n > req->heap_out_cap) {
        free(req->heap_out);
        req->heap_out = malloc(n);
        req->heap_out_cap = req->heap_out ? n : 0;
        http_mem_recharge(req);
    }
    return req->heap_out;
}

/* Access log line and observe hook, once per request. */
static void req_account(yard_http_req_t *req, int status, size_t bytes, int dropped)
{
    const http_ctx_t *ctx = req->conn->ctx;
    uint64_t us = (uv_hrtime() - req->t_start) / 1000;
    const char *method = yard_http_req_method(req);

    req->status = (uint16_t)status;
    if (ctx->observe)
        ctx->observe(ctx->observe_ud, req->route ? req->route : "unmatched", method, status, us);
    if (yard_log_enabled(YARD_LOG_INFO)) {
        yard_log_ctx_t lc = {.request_id = yard_http_req_id(req),
                             .trace_id = req->trace_id[0] ? req->trace_id : NULL};
        size_t plen;
        const char *path = yard_http_req_path(req, &plen);
        if (!req->head_done) {
            path = "-";
            plen = 1;
        }
        YARD_LOG_INFO(&lc, "http method=%s path=%.*s status=%d duration_us=%llu bytes=%zu%s",
                      method, (int)plen, path, status, (unsigned long long)us, bytes,
                      dropped ? " client_gone=1" : "");
    }
}

/* Builds the response into req->out. Returns 0 or YARD_ENOMEM. */
static int req_build(yard_http_req_t *req, int status, const char *content_type,
                     const char *extra, const void *body, size_t body_len)
{
    const yard_http_conn_t *c = req->conn;
    int closing = !req->keep_alive || (c->close_when_done && req == c->q_tail);
    /* HTTP/1.0 clients keep the connection only when told so. */
    const char *connection = closing ? "close" : req->http10 ? "keep-alive" : NULL;
    int bodiless = status == 204 || status == 304;
    /* HEAD only counts once the head is complete: how much of a broken
     * request line was seen must not change the answer. */
    int send_body = !bodiless && !(req->head_done && req->method == HTTP_HEAD);
    const char *id = yard_http_req_id(req);
    size_t need = HEAD_FIXED + strlen(http_status_str((enum http_status)status)) + strlen(id) +
                  (content_type ? strlen(content_type) : 0) + (extra ? strlen(extra) : 0) +
                  (send_body ? body_len : 0);
    out_t o = {out_space(req, need), 0};

    if (!o.buf)
        return YARD_ENOMEM;
    head_format(&o, status, content_type, bodiless ? -1 : (long long)body_len, id, connection,
                extra);
    if (send_body && body_len)
        put_mem(&o, body, body_len);
    req->out = o.buf;
    req->out_len = o.len;
    return 0;
}

/* Answers a request known to be valid to answer with valid arguments. */
static int req_answer(yard_http_req_t *req, int status, const char *content_type,
                      const char *extra, const void *body, size_t body_len)
{
    yard_http_conn_t *c = req->conn;
    int rc = 0;

    c->nhandling--;
    if (c->dead) {
        req_account(req, status, 0, 1);
        http_req_put(c, req);
        http_conn_unref(c);
        return 0;
    }
    rc = req_build(req, status, content_type, extra, body, body_len);
    if (rc) {
        YARD_LOG_ERROR(NULL, "http: no memory for a %zu-byte response; closing the connection",
                       body_len);
        req_account(req, status, 0, 1);
        http_conn_abort(c);
        c->ops->changed(c);
        http_req_put(c, req);
        http_conn_unref(c);
        return rc;
    }
    req->state = HTTP_REQ_READY;
    /* The handler is done with the body: a large one is not kept while the
     * answer waits for its turn behind a slow reader. */
    if (req->heap_body_cap > HTTP_BUF_KEEP) {
        free(req->heap_body);
        req->heap_body = NULL;
        req->heap_body_cap = 0;
        req->body = NULL;
        req->body_len = req->body_cap = 0;
        http_mem_recharge(req);
    }
    req_account(req, status, req->out_len, 0);
    http_conn_drive(c);
    http_conn_unref(c);
    return 0;
}

int yard_http_respond(yard_http_req_t *req, int status, const char *content_type,
                      const char *extra_headers, const void *body, size_t body_len)
{
    if (!req || req->state != HTTP_REQ_HANDLING) {
        YARD_LOG_ERROR(NULL, "http: respond called on a request that is not being handled");
        return YARD_ESTATE;
    }
    if (status < 200 || status > 599 || (body_len && !body) ||
        (content_type && strpbrk(content_type, "\r\n")) || !extra_headers_ok(extra_headers)) {
        yard_log_ctx_t lc = {.request_id = yard_http_req_id(req),
                             .trace_id = req->trace_id[0] ? req->trace_id : NULL};
        YARD_LOG_ERROR(&lc, "http: invalid response (status %d) for %s; sending 500", status,
                       yard_http_req_method(req));
        yard_http_respond_error(req, 500, "internal_error", "the server built an invalid response");
        return YARD_EINVAL;
    }
    return req_answer(req, status, content_type, extra_headers, body, body_len);
}

int yard_http_respond_error_headers(yard_http_req_t *req, int status, const char *code,
                                    const char *message, const char *extra_headers)
{
    char body[ERROR_BODY_MAX];
    size_t n;

    if (!req || req->state != HTTP_REQ_HANDLING)
        return yard_http_respond(req, status, NULL, NULL, NULL, 0);
    n = error_body(body, sizeof body, code, message, yard_http_req_id(req));
    return yard_http_respond(req, status, "application/json", extra_headers, body, n);
}

int yard_http_respond_error(yard_http_req_t *req, int status, const char *code,
                            const char *message)
{
    return yard_http_respond_error_headers(req, status, code, message, NULL);
}
