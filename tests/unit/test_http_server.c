/*
 * test_http_server.c - the HTTP server against plain sockets.
 *
 * Each test starts a real server on 127.0.0.1 (free port) in a libuv loop
 * on its own thread, talks to it with blocking sockets, then shuts it down
 * through uv_async_send and joins the thread. The last tests feed the
 * in-memory connection to check exact bytes. The access log goes to a
 * temporary file so the run prints little; one test reads it back.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http_router.h"
#include "http_server.h"
#include "log.h"

#define IO_TIMEOUT_MS 3000
#define MAX_OBS 256

static int g_log_fd = 2; /* where the access log goes between tests */

/* ---- the server under test ---- */

typedef struct {
    char route[48];
    int status;
} obs_t;

typedef struct {
    uv_loop_t loop;
    uv_async_t stop;
    pthread_t thread;
    yard_http_server_t *server;
    yard_http_router_t *router;
    int port;
    int done;         /* shutdown's done ran */
    int gone_seen;    /* an async answer found its client gone */
    int answered_late; /* async answers given */
    obs_t obs[MAX_OBS];
    int nobs;
} fx_t;

typedef struct {
    uv_timer_t timer;
    yard_http_req_t *req;
    fx_t *fx;
} late_t;

static void fx_observe(void *ud, const char *route, const char *method, int status, uint64_t us)
{
    fx_t *fx = ud;
    if (fx->nobs < MAX_OBS) {
        snprintf(fx->obs[fx->nobs].route, sizeof fx->obs[0].route, "%s", route);
        fx->obs[fx->nobs++].status = status;
    }
}

static void h_hello(yard_http_req_t *req, void *ud)
{
    yard_http_respond(req, 200, "text/plain", NULL, "hello", 5);
}

static void h_echo(yard_http_req_t *req, void *ud)
{
    size_t n;
    const char *body = yard_http_req_body(req, &n);
    const char *ct = yard_http_req_header(req, "content-type", NULL);
    yard_http_respond(req, 200, ct ? ct : "application/octet-stream", NULL, body, n);
}

/* GET /seq/{n}: answers n at once. */
static void h_seq(yard_http_req_t *req, void *ud)
{
    size_t n;
    const char *v = yard_http_req_param(req, "n", &n);
    yard_http_respond(req, 200, "text/plain", NULL, v, n);
}

static void late_closed(uv_handle_t *h)
{
    free(h->data);
}

static void late_fire(uv_timer_t *t)
{
    late_t *l = t->data;
    if (yard_http_req_client_gone(l->req))
        l->fx->gone_seen++;
    l->fx->answered_late++;
    yard_http_respond(l->req, 200, "text/plain", NULL, "late", 4);
    uv_close((uv_handle_t *)&l->timer, late_closed);
}

/* GET /late/{ms}: answers "late" after ms milliseconds, from a uv_timer. */
static void h_late(yard_http_req_t *req, void *ud)
{
    fx_t *fx = ud;
    late_t *l = calloc(1, sizeof *l);
    l->req = req;
    l->fx = fx;
    l->timer.data = l;
    uv_timer_init(&fx->loop, &l->timer);
    uv_timer_start(&l->timer, late_fire, strtoul(yard_http_req_param(req, "ms", NULL), NULL, 10),
                   0);
}

static void fx_done(yard_http_server_t *s, void *ud)
{
    fx_t *fx = ud;
    fx->done = 1;
    uv_close((uv_handle_t *)&fx->stop, NULL);
}

static void fx_stop_cb(uv_async_t *a)
{
    fx_t *fx = a->data;
    yard_http_server_shutdown(fx->server, fx_done, fx);
}

static void *fx_run(void *arg)
{
    fx_t *fx = arg;
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    return NULL;
}

static fx_t *fx_start(const yard_http_limits_t *lim)
{
    fx_t *fx = calloc(1, sizeof *fx);
    yard_http_options_t o = {0};

    assert_non_null(fx);
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    assert_int_equal(yard_http_router_create(&fx->router), 0);
    assert_int_equal(yard_http_router_add(fx->router, "GET", "/hello", h_hello, fx), 0);
    assert_int_equal(yard_http_router_add(fx->router, "POST", "/echo", h_echo, fx), 0);
    assert_int_equal(yard_http_router_add(fx->router, "GET", "/seq/{n}", h_seq, fx), 0);
    assert_int_equal(yard_http_router_add(fx->router, "GET", "/late/{ms}", h_late, fx), 0);
    if (lim)
        o.limits = *lim;
    o.handler = yard_http_router_handle;
    o.handler_ud = fx->router;
    o.observe = fx_observe;
    o.observe_ud = fx;
    assert_int_equal(yard_http_server_create(&fx->server, &fx->loop, &o), 0);
    assert_int_equal(yard_http_server_listen(fx->server, "127.0.0.1", 0), 0);
    fx->port = yard_http_server_port(fx->server);
    assert_true(fx->port > 0);
    fx->stop.data = fx;
    uv_async_init(&fx->loop, &fx->stop, fx_stop_cb);
    assert_int_equal(pthread_create(&fx->thread, NULL, fx_run, fx), 0);
    return fx;
}

/* Asks for a graceful shutdown; returns once the loop has ended. */
static void fx_stop(fx_t *fx)
{
    uv_async_send(&fx->stop);
    pthread_join(fx->thread, NULL);
}

static void fx_free(fx_t *fx)
{
    assert_int_equal(fx->done, 1);
    yard_http_server_destroy(fx->server);
    yard_http_router_destroy(fx->router);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    free(fx);
}

/* ---- a blocking client ---- */

typedef struct {
    int fd;
    size_t len;
    char buf[1 << 16];
} cl_t;

typedef struct {
    int status;
    char head[4096];
    const char *body; /* in the client's buffer until the next read */
    size_t body_len;
} resp_t;

static cl_t *cl_open(int port)
{
    cl_t *c = calloc(1, sizeof *c);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};

    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(c->fd >= 0);
    assert_int_equal(connect(c->fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return c;
}

static void cl_close(cl_t *c)
{
    if (c->fd >= 0)
        close(c->fd);
    free(c);
}

/* Closes with a reset instead of a FIN. */
static void cl_reset(cl_t *c)
{
    struct linger lg = {1, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    cl_close(c);
}

static void cl_send(cl_t *c, const void *data, size_t n)
{
    const char *p = data;
    while (n) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return; /* the server may close first; the reads tell */
        p += w;
        n -= (size_t)w;
    }
}

static void cl_sends(cl_t *c, const char *s)
{
    cl_send(c, s, strlen(s));
}

/* Reads more into the buffer. Returns bytes read, 0 on EOF, -1 on error or
 * after ms without data. */
static ssize_t cl_fill(cl_t *c, int ms)
{
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    if (c->len == sizeof c->buf || poll(&p, 1, ms) != 1)
        return -1;
    ssize_t n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
    if (n > 0)
        c->len += (size_t)n;
    return n < 0 ? -1 : n;
}

/* Drops the first n buffered bytes. */
static void cl_consume(cl_t *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

/* Reads one response (head_only: no body expected, for HEAD). Returns its
 * status, or -1 when the connection ended or stalled first. */
static int cl_response_ex(cl_t *c, resp_t *r, int head_only)
{
    static char body[1 << 16];
    for (;;) {
        char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
        if (end) {
            size_t head = (size_t)(end - c->buf) + 4;
            const char *cl = memmem(c->buf, head, "Content-Length: ", 16);
            size_t blen = cl && !head_only ? strtoul(cl + 16, NULL, 10) : 0;
            if (c->len >= head + blen) {
                snprintf(r->head, sizeof r->head, "%.*s", (int)head, c->buf);
                r->status = atoi(c->buf + 9);
                memcpy(body, c->buf + head, blen);
                r->body = body;
                r->body_len = blen;
                cl_consume(c, head + blen);
                return r->status;
            }
        }
        if (cl_fill(c, IO_TIMEOUT_MS) <= 0)
            return -1;
    }
}

static int cl_response(cl_t *c, resp_t *r)
{
    return cl_response_ex(c, r, 0);
}

/* Nonzero when the server closes the connection within ms with nothing
 * more to read. */
static int cl_closed_within(cl_t *c, int ms)
{
    return c->len == 0 && cl_fill(c, ms) == 0;
}

static int cl_closed(cl_t *c)
{
    return cl_closed_within(c, IO_TIMEOUT_MS);
}

static int has_header(const resp_t *r, const char *line)
{
    return strstr(r->head, line) != NULL;
}

static long ms_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

/* A fresh connection still gets a normal answer. */
static void assert_server_fine(fx_t *fx)
{
    cl_t *c = cl_open(fx->port);
    resp_t r;
    cl_sends(c, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(cl_response(c, &r), 200);
    assert_memory_equal(r.body, "hello", 5);
    cl_close(c);
}

/* ---- tests ---- */

static void test_get_and_post(void **state)
{
    fx_t *fx = fx_start(NULL);
    cl_t *c = cl_open(fx->port);
    resp_t r;
    const char *json = "{\"type\":\"noop\",\"payload\":{\"n\":1}}";
    char req[512];

    cl_sends(c, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(cl_response(c, &r), 200);
    assert_int_equal(r.body_len, 5);
    assert_memory_equal(r.body, "hello", 5);
    assert_true(has_header(&r, "Content-Type: text/plain\r\n"));
    const char *id = strstr(r.head, "X-Request-Id: ");
    assert_non_null(id);
    assert_int_equal(strspn(id + 14, "0123456789abcdef"), 32); /* generated */

    snprintf(req, sizeof req,
             "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
             "X-Request-Id: client-id-42\r\nContent-Length: %zu\r\n\r\n%s",
             strlen(json), json);
    cl_sends(c, req);
    assert_int_equal(cl_response(c, &r), 200);
    assert_int_equal(r.body_len, strlen(json));
    assert_memory_equal(r.body, json, strlen(json));
    assert_true(has_header(&r, "Content-Type: application/json\r\n"));
    assert_true(has_header(&r, "X-Request-Id: client-id-42\r\n"));

    /* Ids with blanks or quotes, or too long, are replaced. */
    static const char *const bad_ids[] = {
        "a b", "a\"b", "a'b", "a\\b",
        "x2345678901234567890123456789012345678901234567890123456789012345"}; /* 65 */
    for (size_t i = 0; i < sizeof bad_ids / sizeof *bad_ids; i++) {
        snprintf(req, sizeof req, "GET /hello HTTP/1.1\r\nX-Request-Id: %s\r\n\r\n", bad_ids[i]);
        cl_sends(c, req);
        assert_int_equal(cl_response(c, &r), 200);
        id = strstr(r.head, "X-Request-Id: ");
        assert_int_equal(strspn(id + 14, "0123456789abcdef"), 32);
    }
    cl_sends(c, "GET /hello HTTP/1.1\r\nX-Request-Id: "
                "x234567890123456789012345678901234567890123456789012345678901234\r\n\r\n");
    assert_int_equal(cl_response(c, &r), 200); /* 64 characters: kept */
    assert_true(has_header(&r, "X-Request-Id: x2345678901234567890123456789012345678901234567890"
                               "12345678901234\r\n"));

    /* HEAD: the GET route, headers only. */
    cl_sends(c, "HEAD /hello HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(cl_response_ex(c, &r, 1), 200);
    assert_true(has_header(&r, "Content-Length: 5\r\n"));
    cl_sends(c, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(cl_response(c, &r), 200); /* nothing stray before it */
    cl_close(c);
    fx_stop(fx);
    fx_free(fx);
}

static void test_keep_alive(void **state)
{
    fx_t *fx = fx_start(NULL);
    cl_t *c = cl_open(fx->port);
    resp_t r;

    for (int i = 1; i <= 3; i++) {
        char req[128], want[16];
        snprintf(req, sizeof req, "GET /seq/%d HTTP/1.1\r\nHost: t\r\n\r\n", i);
        snprintf(want, sizeof want, "%d", i);
        cl_sends(c, req);
        assert_int_equal(cl_response(c, &r), 200);
        assert_memory_equal(r.body, want, 1);
        assert_false(has_header(&r, "Connection: close"));
    }
    /* HTTP/1.0 asking to keep the connection is told it is kept. */
    cl_sends(c, "GET /seq/5 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_int_equal(cl_response(c, &r), 200);
    assert_true(has_header(&r, "Connection: keep-alive\r\n"));
    /* Connection: close is honoured: answered with it, then closed. */
    cl_sends(c, "GET /seq/4 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert_int_equal(cl_response(c, &r), 200);
    assert_true(has_header(&r, "Connection: close\r\n"));
    assert_true(cl_closed(c));
    cl_close(c);
    /* HTTP/1.0 without keep-alive: closed after one answer. */
    c = cl_open(fx->port);
    cl_sends(c, "GET /seq/6 HTTP/1.0\r\n\r\n");
    assert_int_equal(cl_response(c, &r), 200);
    assert_true(has_header(&r, "Connection: close\r\n"));
    assert_true(cl_closed(c));
    cl_close(c);
    fx_stop(fx);
    fx_free(fx);
}

static void test_pipelining_in_order(void **state)
{
    fx_t *fx = fx_start(NULL);
    cl_t *c = cl_open(fx->port);
    resp_t r;

    /* The first one is answered 100 ms after the other two. */
    cl_sends(c, "GET /late/100 HTTP/1.1\r\nHost: t\r\n\r\n"
                "GET /seq/2 HTTP/1.1\r\nHost: t\r\n\r\n"
                "GET /seq/3 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(cl_response(c, &r), 200);
    assert_memory_equal(r.body, "late", 4);
    assert_int_equal(cl_response(c, &r), 200);
    assert_memory_equal(r.body, "2", 1);
    assert_int_equal(cl_response(c, &r), 200);
    assert_memory_equal(r.body, "3", 1);

    /* All synchronous, in one write: in order as well. */
    cl_sends(c, "GET /seq/4 HTTP/1.1\r\n\r\nGET /seq/5 HTTP/1.1\r\n\r\nGET /seq/6 HTTP/1.1\r\n\r\n");
    for (int i = 4; i <= 6; i++) {
        char want = (char)('0' + i);
        assert_int_equal(cl_response(c, &r), 200);
        assert_memory_equal(r.body, &want, 1);
    }
    cl_close(c);
    fx_stop(fx);
    fx_free(fx);
}

static void test_chunked_body(void **state)
{
    fx_t *fx = fx_start(NULL);
    cl_t *c = cl_open(fx->port);
    resp_t r;
    const char *parts[] = {"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n",
                           "5\r\nhello\r\n", "1;ext=1\r\n,\r\n", "6\r\n world\r\n",
                           "0\r\nTrailer-X: 1\r\n\r\n"};

    for (size_t i = 0; i < sizeof parts / sizeof *parts; i++) {
        cl_sends(c, parts[i]);
        usleep(20 * 1000);
    }
    assert_int_equal(cl_response(c, &r), 200);
    assert_int_equal(r.body_len, 12);
    assert_memory_equal(r.body, "hello, world", 12);

    /* A larger body than the request object keeps inline, in one go. */
    static char big[20000 + 256];
    char *p = big + sprintf(big, "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 5; i++) {
        p += sprintf(p, "fa0\r\n");
        memset(p, 'a' + i, 4000);
        p += 4000;
        p += sprintf(p, "\r\n");
    }
    p += sprintf(p, "0\r\n\r\n");
    cl_send(c, big, (size_t)(p - big));
    assert_int_equal(cl_response(c, &r), 200);
    assert_int_equal(r.body_len, 20000);
    assert_int_equal(r.body[0], 'a');
    assert_int_equal(r.body[19999], 'e');
    cl_close(c);
    fx_stop(fx);
    fx_free(fx);
}

typedef struct {
    const char *name;
    const char *data; /* NULL: built by build_case */
    size_t len;       /* 0: strlen(data) */
    int status[2];    /* expected answers in order; then the server closes */
} bad_case_t;

/* Requests too big to write out in the table. */
static size_t build_case(const char *name, char *buf, size_t cap)
{
    size_t n = 0;
    if (strcmp(name, "huge header") == 0) {
        n = (size_t)snprintf(buf, cap, "GET /hello HTTP/1.1\r\nX-Big: ");
        memset(buf + n, 'x', 10000);
        n += 10000;
        n += (size_t)snprintf(buf + n, cap - n, "\r\n\r\n");
    } else if (strcmp(name, "100 headers") == 0) {
        n = (size_t)snprintf(buf, cap, "GET /hello HTTP/1.1\r\n");
        for (int i = 0; i < 100; i++)
            n += (size_t)snprintf(buf + n, cap - n, "X-H%d: v\r\n", i);
        n += (size_t)snprintf(buf + n, cap - n, "\r\n");
    } else if (strcmp(name, "long url") == 0) {
        n = (size_t)snprintf(buf, cap, "GET /");
        memset(buf + n, 'u', 9000);
        n += 9000;
        n += (size_t)snprintf(buf + n, cap - n, " HTTP/1.1\r\n\r\n");
    }
    return n;
}

static void test_malformed_requests(void **state)
{
    static const bad_case_t cases[] = {
        {"CL and TE", "POST /echo HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 0, {400}},
        {"TE and CL", "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 0, {400}},
        {"two different CLs", "POST /echo HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 0, {400}},
        {"two equal CLs", "POST /echo HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 0, {400}},
        {"CL not a number", "POST /echo HTTP/1.1\r\nContent-Length: 5x\r\n\r\nhello", 0, {400}},
        {"CL negative", "POST /echo HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 0, {400}},
        {"CL two numbers", "POST /echo HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n", 0, {400}},
        {"bad chunk size", "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 0, {400}},
        {"chunk size overflow", "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\n", 0, {400}},
        {"chunk over body limit", "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n200000\r\nabc", 0, {413}},
        {"TE gzip", "POST /echo HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 0, {400}},
        {"TE gzip, chunked", "POST /echo HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 0, {501}},
        {"huge header", NULL, 0, {431}},
        {"100 headers", NULL, 0, {431}},
        {"long url", NULL, 0, {414}},
        {"body too large by CL", "POST /echo HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n", 0, {413}},
        {"POST without length", "POST /echo HTTP/1.1\r\nHost: t\r\n\r\n", 0, {411}},
        {"PUT without length", "PUT /echo HTTP/1.1\r\nHost: t\r\n\r\n", 0, {411}},
        {"garbage request line", "GARBAGE\r\n\r\n", 0, {400}},
        {"binary noise", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11, {400}},
        {"unknown method", "FROB /hello HTTP/1.1\r\n\r\n", 0, {400}},
        {"no version (HTTP/0.9)", "GET /hello\r\n\r\n", 0, {505}},
        {"HTTP/2.0", "GET /hello HTTP/2.0\r\n\r\n", 0, {505}},
        {"HTTP/0.9 style version", "GET /hello HTTP/0.9\r\n\r\n", 0, {505}},
        {"bad version", "GET /hello HTTP/1.x\r\n\r\n", 0, {400}},
        {"NUL in header value", "GET /hello HTTP/1.1\r\nX-A: a\0b\r\n\r\n", 31, {400}},
        {"NUL in header name", "GET /hello HTTP/1.1\r\nX-\0A: ab\r\n\r\n", 32, {400}},
        {"NUL in URL", "GET /he\0llo HTTP/1.1\r\n\r\n", 24, {400}},
        {"bare CR in header", "GET /hello HTTP/1.1\r\nX-A: a\rb\r\n\r\n", 0, {400}},
        {"folded header", "GET /hello HTTP/1.1\r\nX-A: a\r\n b\r\n\r\n", 0, {400}},
        {"space before colon", "GET /hello HTTP/1.1\r\nHost : t\r\n\r\n", 0, {400}},
        {"header without colon", "GET /hello HTTP/1.1\r\nHost\r\n\r\n", 0, {400}},
        {"garbage after pipelined", "GET /hello HTTP/1.1\r\n\r\nGARBAGE\r\n\r\nGET /hello HTTP/1.1\r\n\r\n", 0, {200, 400}},
        {"error stops pipeline", "GET /hello HTTP/1.1\r\nX-A: \x01\r\n\r\nGET /hello HTTP/1.1\r\n\r\n", 0, {400}},
    };
    static char big[16384];
    fx_t *fx = fx_start(NULL);

    assert_true(sizeof cases / sizeof *cases >= 25);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const bad_case_t *k = &cases[i];
        cl_t *c = cl_open(fx->port);
        resp_t r;
        if (k->data)
            cl_send(c, k->data, k->len ? k->len : strlen(k->data));
        else
            cl_send(c, big, build_case(k->name, big, sizeof big));
        for (int j = 0; j < 2 && k->status[j]; j++) {
            int got = cl_response(c, &r);
            if (got != k->status[j])
                fail_msg("case '%s': answer %d: expected %d, got %d", k->name, j + 1, k->status[j],
                         got);
            if (got >= 400 && (!strstr(r.head, "Content-Type: application/json\r\n") ||
                               r.body_len < 20 || memcmp(r.body, "{\"error\":{\"code\":\"", 18)))
                fail_msg("case '%s': error body is not the API's JSON: %.*s", k->name,
                         (int)r.body_len, r.body);
        }
        if (!cl_closed(c))
            fail_msg("case '%s': expected the server to close the connection", k->name);
        cl_close(c);
        assert_server_fine(fx);
    }
    fx_stop(fx);
    fx_free(fx);
}

static void test_not_found_and_method(void **state)
{
    fx_t *fx = fx_start(NULL);
    cl_t *c = cl_open(fx->port);
    resp_t r;

    cl_sends(c, "GET /nope HTTP/1.1\r\nX-Request-Id: rid-1\r\n\r\n");
    assert_int_equal(cl_response(c, &r), 404);
    assert_int_equal(r.body_len, strlen("{\"error\":{\"code\":\"not_found\",\"message\":\"no route "
                                        "for this path\",\"request_id\":\"rid-1\"}}"));
    assert_memory_equal(r.body,
                        "{\"error\":{\"code\":\"not_found\",\"message\":\"no route for this "
                        "path\",\"request_id\":\"rid-1\"}}",
                        r.body_len);
    cl_sends(c, "DELETE /hello HTTP/1.1\r\n\r\n");
    assert_int_equal(cl_response(c, &r), 405);
    assert_true(has_header(&r, "Allow: GET, HEAD\r\n"));
    /* Neither closes the connection. */
    cl_sends(c, "GET /hello HTTP/1.1\r\n\r\n");
    assert_int_equal(cl_response(c, &r), 200);
    cl_close(c);
    fx_stop(fx);
    fx_free(fx);
}

static void test_expect_continue(void **state)
{
    fx_t *fx = fx_start(NULL);
    cl_t *c = cl_open(fx->port);
    resp_t r;

    cl_sends(c, "POST /echo HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
    assert_true(cl_fill(c, IO_TIMEOUT_MS) > 0);
    assert_true(c->len >= 25 && memcmp(c->buf, "HTTP/1.1 100 Continue\r\n\r\n", 25) == 0);
    cl_consume(c, 25);
    cl_sends(c, "ping");
    assert_int_equal(cl_response(c, &r), 200);
    assert_memory_equal(r.body, "ping", 4);

    /* Refused before the body: no 100, straight to 413. */
    cl_sends(c, "POST /echo HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 9999999\r\n\r\n");
    assert_int_equal(cl_response(c, &r), 413);
    assert_true(cl_closed(c));
    cl_close(c);
    fx_stop(fx);
    fx_free(fx);
}

static void test_slow_client_gets_408(void **state)
{
    yard_http_limits_t lim = {.read_timeout_ms = 500};
    fx_t *fx = fx_start(&lim);
    cl_t *c = cl_open(fx->port);
    const char *req = "GET /hello HTTP/1.1\r\nHost: t\r\nX-Padding: aaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    struct timespec t0;
    resp_t r;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (size_t i = 0; i < strlen(req); i++) {
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        if (poll(&p, 1, 100) == 1)
            break; /* the server answered */
        cl_send(c, req + i, 1);
    }
    assert_int_equal(cl_response(c, &r), 408);
    long ms = ms_since(&t0);
    if (ms < 450 || ms > 1500)
        fail_msg("408 after %ld ms, expected about 500", ms);
    assert_true(has_header(&r, "Connection: close\r\n"));
    assert_true(cl_closed(c));
    cl_close(c);
    assert_server_fine(fx);
    fx_stop(fx);
    fx_free(fx);
}

static void test_idle_timeout(void **state)
{
    yard_http_limits_t lim = {.idle_timeout_ms = 300, .read_timeout_ms = 2000};
    fx_t *fx = fx_start(&lim);
    cl_t *c = cl_open(fx->port);
    struct timespec t0;
    resp_t r;

    cl_sends(c, "GET /hello HTTP/1.1\r\n\r\n");
    assert_int_equal(cl_response(c, &r), 200);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_true(cl_closed(c)); /* quietly: no bytes, just EOF */
    long ms = ms_since(&t0);
    if (ms < 250 || ms > 1500)
        fail_msg("idle close after %ld ms, expected about 300", ms);
    cl_close(c);
    fx_stop(fx);
    fx_free(fx);
}

/* At the limit, a new connection is refused while every open one is busy;
 * once one is idle, the idle one makes room for the newcomer. */
static void test_connection_limit(void **state)
{
    yard_http_limits_t lim = {.max_connections = 2};
    fx_t *fx = fx_start(&lim);
    cl_t *a = cl_open(fx->port), *b = cl_open(fx->port), *c;
    resp_t r;

    cl_sends(a, "GET /late/400 HTTP/1.1\r\n\r\n");
    cl_sends(b, "GET /late/400 HTTP/1.1\r\n\r\n");
    usleep(100 * 1000);
    c = cl_open(fx->port);
    assert_int_equal(cl_response(c, &r), 503);
    assert_true(has_header(&r, "Connection: close\r\n"));
    assert_true(cl_closed(c));
    cl_close(c);
    assert_int_equal(cl_response(a, &r), 200);
    assert_int_equal(cl_response(b, &r), 200);
    /* a and b are idle keep-alive connections now: a newcomer gets in. */
    c = cl_open(fx->port);
    cl_sends(c, "GET /hello HTTP/1.1\r\n\r\n");
    assert_int_equal(cl_response(c, &r), 200);
    assert_true(cl_closed(a) || cl_closed(b));
    cl_close(c);
    cl_close(a);
    cl_close(b);
    fx_stop(fx);
    fx_free(fx);
}

static void test_graceful_shutdown(void **state)
{
    fx_t *fx = fx_start(NULL);
    cl_t *busy = cl_open(fx->port), *idle = cl_open(fx->port);
    resp_t r;

    cl_sends(idle, "GET /hello HTTP/1.1\r\n\r\n");
    assert_int_equal(cl_response(idle, &r), 200);
    cl_sends(busy, "GET /late/300 HTTP/1.1\r\n\r\n");
    usleep(50 * 1000);
    uv_async_send(&fx->stop);
    assert_true(cl_closed_within(idle, 250)); /* idle: closed at once */
    assert_int_equal(cl_response(busy, &r), 200);
    assert_memory_equal(r.body, "late", 4);
    assert_true(has_header(&r, "Connection: close\r\n"));
    assert_true(cl_closed(busy));
    pthread_join(fx->thread, NULL);
    assert_int_equal(fx->done, 1);
    assert_int_equal(fx->answered_late, 1);
    cl_close(busy);
    cl_close(idle);
    fx_free(fx);
}

static void test_client_gone_while_pending(void **state)
{
    fx_t *fx = fx_start(NULL);
    cl_t *a = cl_open(fx->port), *b = cl_open(fx->port);

    cl_sends(a, "GET /late/150 HTTP/1.1\r\n\r\n");
    cl_sends(b, "GET /late/150 HTTP/1.1\r\n\r\nGET /seq/2 HTTP/1.1\r\n\r\n");
    usleep(50 * 1000);
    cl_close(a); /* FIN */
    cl_reset(b); /* RST: the server drops its side at once */
    usleep(300 * 1000);
    assert_server_fine(fx);
    fx_stop(fx); /* waits for nothing: both answers were given */
    assert_int_equal(fx->answered_late, 2);
    assert_true(fx->gone_seen >= 1);
    fx_free(fx);
}

static void test_observe_and_access_log(void **state)
{
    FILE *log = tmpfile();
    fx_t *fx = fx_start(NULL);
    cl_t *c = cl_open(fx->port);
    resp_t r;
    char line[4096];
    int found = 0;

    yard_log_set_fd(fileno(log));
    cl_sends(c, "GET /seq/7?x=1 HTTP/1.1\r\nX-Request-Id: obs-1\r\n\r\nGET /none HTTP/1.1\r\n\r\n");
    assert_int_equal(cl_response(c, &r), 200);
    assert_int_equal(cl_response(c, &r), 404);
    cl_close(c);
    fx_stop(fx);
    yard_log_set_fd(g_log_fd);
    assert_int_equal(fx->nobs, 2);
    assert_string_equal(fx->obs[0].route, "/seq/{n}");
    assert_int_equal(fx->obs[0].status, 200);
    assert_string_equal(fx->obs[1].route, "unmatched");
    assert_int_equal(fx->obs[1].status, 404);
    rewind(log);
    while (fgets(line, sizeof line, log))
        if (strstr(line, "\"msg\":\"http method=GET path=/seq/7 status=200 duration_us=") &&
            strstr(line, "bytes=") && strstr(line, "\"request_id\":\"obs-1\""))
            found = 1;
    fclose(log);
    assert_true(found);
    fx_free(fx);
}

/* ---- exact bytes, through the in-memory connection ---- */

static void zero_random(void *buf, size_t n)
{
    memset(buf, 0, n);
}

typedef struct {
    yard_http_req_t *kept[4];
    int nkept;
} keep_t;

static void h_keep(yard_http_req_t *req, void *ud)
{
    keep_t *k = ud;
    k->kept[k->nkept++] = req;
}

static int g_nkept;

static void h_keep_many(yard_http_req_t *req, void *ud)
{
    yard_http_req_t **kept = ud;
    kept[g_nkept++] = req;
}

static yard_http_conn_t *mem_conn(yard_http_handler_fn h, void *ud)
{
    yard_http_conn_t *c;
    yard_http_options_t o = {.handler = h, .handler_ud = ud, .random = zero_random};
    assert_int_equal(yard_http_conn_create(&c, &o), 0);
    return c;
}

static void test_exact_error_bytes(void **state)
{
    keep_t k = {0};
    yard_http_conn_t *c = mem_conn(h_keep, &k);
    const char *want =
        "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: 112\r\n"
        "X-Request-Id: 00000000000000000000000000000000\r\nConnection: close\r\n\r\n"
        "{\"error\":{\"code\":\"bad_request\",\"message\":\"invalid HTTP method\","
        "\"request_id\":\"00000000000000000000000000000000\"}}";

    assert_int_equal(yard_http_conn_feed(c, "\x01junk", 5), 0);
    assert_string_equal(yard_http_conn_output(c, NULL), want);
    assert_true(yard_http_conn_closed(c));
    assert_int_equal(yard_http_conn_feed(c, "GET / HTTP/1.1\r\n\r\n", 18), -18 /* ESTATE */);
    yard_http_conn_destroy(c);
}

static void test_ordering_and_orphans(void **state)
{
    keep_t k = {0};
    yard_http_conn_t *c = mem_conn(h_keep, &k);
    const char *in = "GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\nGET /3 HTTP/1.1\r\n\r\n";
    size_t len;

    for (size_t i = 0; i < strlen(in); i++) /* one byte at a time */
        yard_http_conn_feed(c, in + i, 1);
    assert_int_equal(k.nkept, 3);
    yard_http_respond(k.kept[2], 200, NULL, NULL, "3", 1);
    yard_http_respond(k.kept[1], 200, NULL, NULL, "2", 1);
    yard_http_conn_output(c, &len);
    assert_int_equal(len, 0); /* nothing may pass the first */
    assert_int_equal(yard_http_respond(k.kept[0], 201, NULL, "X-A: b\r\n", "1", 1), 0);
    const char *out = yard_http_conn_output(c, NULL);
    const char *p1 = strstr(out, "\r\n\r\n1"), *p2 = strstr(out, "\r\n\r\n2"),
               *p3 = strstr(out, "\r\n\r\n3");
    assert_true(p1 && p2 && p3 && p1 < p2 && p2 < p3);
    assert_true(strncmp(out, "HTTP/1.1 201 Created\r\n", 22) == 0);
    assert_non_null(strstr(out, "\r\nX-A: b\r\n\r\n1"));

    /* A bad response from a handler becomes a 500. */
    k.nkept = 0;
    yard_http_conn_clear_output(c);
    yard_http_conn_feed(c, "GET /4 HTTP/1.1\r\n\r\n", 19);
    assert_int_equal(yard_http_respond(k.kept[0], 200, NULL, "Content-Length: 1\r\n", "x", 1),
                     -1 /* EINVAL */);
    assert_true(strncmp(yard_http_conn_output(c, NULL), "HTTP/1.1 500 ", 13) == 0);

    /* The client leaves with two requests pending: answers are dropped. */
    k.nkept = 0;
    yard_http_conn_feed(c, "GET /5 HTTP/1.1\r\n\r\nGET /6 HTTP/1.1\r\n\r\n", 38);
    assert_int_equal(yard_http_conn_pending(c), 2);
    yard_http_conn_destroy(c);
    assert_true(yard_http_req_client_gone(k.kept[0]));
    assert_int_equal(yard_http_respond(k.kept[1], 200, NULL, NULL, NULL, 0), 0);
    assert_int_equal(yard_http_respond(k.kept[0], 200, NULL, NULL, NULL, 0), 0); /* frees all */
}

static void test_timeouts_and_drain_in_memory(void **state)
{
    keep_t k = {0};
    yard_http_conn_t *c = mem_conn(h_keep, &k);

    /* A kept request, then half of another: the 408 waits behind the first. */
    yard_http_conn_feed(c, "GET /1 HTTP/1.1\r\n\r\nGET /2 HT", 28);
    yard_http_conn_timeout(c);
    assert_int_equal(strlen(yard_http_conn_output(c, NULL)), 0);
    yard_http_respond(k.kept[0], 200, NULL, NULL, "1", 1);
    const char *out = yard_http_conn_output(c, NULL);
    assert_true(strncmp(out, "HTTP/1.1 200 OK\r\n", 17) == 0);
    const char *second = strstr(out, "HTTP/1.1 408 Request Timeout\r\n");
    assert_non_null(second);
    /* Only the last answer says the connection closes. */
    assert_true(strstr(out, "Connection: close") > second);
    assert_true(yard_http_conn_closed(c));
    yard_http_conn_destroy(c);

    /* Drain: the request being handled is answered with Connection: close. */
    k.nkept = 0;
    c = mem_conn(h_keep, &k);
    yard_http_conn_feed(c, "GET /1 HTTP/1.1\r\n\r\n", 19);
    yard_http_conn_drain(c);
    assert_false(yard_http_conn_closed(c));
    yard_http_respond(k.kept[0], 200, NULL, NULL, "1", 1);
    assert_non_null(strstr(yard_http_conn_output(c, NULL), "Connection: close\r\n"));
    assert_true(yard_http_conn_closed(c));
    yard_http_conn_destroy(c);
}

static void test_nothing_parsed_after_error(void **state)
{
    keep_t k = {0};
    yard_http_conn_t *c = mem_conn(h_keep, &k);
    const char *get = "GET /2 HTTP/1.1\r\n\r\n";
    const char *out;

    /* A request kept by the handler, then garbage: the 400 waits. */
    yard_http_conn_feed(c, "GET /1 HTTP/1.1\r\n\r\nGARBAGE\r\n", 30);
    /* Later reads are not parsed at all: no request, no second error. */
    assert_int_equal(yard_http_conn_feed(c, get, strlen(get)), -18 /* ESTATE */);
    assert_int_equal(k.nkept, 1);
    yard_http_respond(k.kept[0], 200, NULL, NULL, "1", 1);
    out = yard_http_conn_output(c, NULL);
    assert_true(strncmp(out, "HTTP/1.1 200 OK\r\n", 17) == 0);
    const char *err = strstr(out, "HTTP/1.1 400 ");
    assert_non_null(err);
    assert_null(strstr(err + 1, "HTTP/1.1 "));
    assert_true(yard_http_conn_closed(c));
    yard_http_conn_destroy(c);
}

static void test_pipeline_backlog_then_eof(void **state)
{
    static yard_http_req_t *kept[48];
    yard_http_conn_t *c = mem_conn(h_keep_many, kept);
    char in[48 * 24];
    size_t n = 0, len;

    /* 40 requests in one read, more than a connection queues at once, and
     * the client's EOF right behind them (printf ... | nc): all 40 answered. */
    for (int i = 0; i < 40; i++)
        n += (size_t)sprintf(in + n, "GET /%02d HTTP/1.1\r\n\r\n", i);
    n += (size_t)sprintf(in + n, "GET /partial HT");
    yard_http_conn_feed(c, in, n);
    yard_http_conn_eof(c);
    assert_int_equal(g_nkept, 32);
    for (int i = 0; i < 40; i++) {
        assert_true(i < g_nkept);
        char body[16];
        snprintf(body, sizeof body, "%02d", i);
        yard_http_respond(kept[i], 200, NULL, NULL, body, 2);
    }
    assert_int_equal(g_nkept, 40);
    const char *out = yard_http_conn_output(c, &len);
    int count = 0;
    for (const char *p = out; (p = strstr(p, "HTTP/1.1 200 OK")); p++)
        count++;
    assert_int_equal(count, 40);
    assert_non_null(strstr(out, "\r\n\r\n39"));
    assert_true(yard_http_conn_closed(c));
    yard_http_conn_destroy(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_and_post),
        cmocka_unit_test(test_keep_alive),
        cmocka_unit_test(test_pipelining_in_order),
        cmocka_unit_test(test_chunked_body),
        cmocka_unit_test(test_malformed_requests),
        cmocka_unit_test(test_not_found_and_method),
        cmocka_unit_test(test_expect_continue),
        cmocka_unit_test(test_slow_client_gets_408),
        cmocka_unit_test(test_idle_timeout),
        cmocka_unit_test(test_connection_limit),
        cmocka_unit_test(test_graceful_shutdown),
        cmocka_unit_test(test_client_gone_while_pending),
        cmocka_unit_test(test_observe_and_access_log),
        cmocka_unit_test(test_exact_error_bytes),
        cmocka_unit_test(test_ordering_and_orphans),
        cmocka_unit_test(test_timeouts_and_drain_in_memory),
        cmocka_unit_test(test_nothing_parsed_after_error),
        cmocka_unit_test(test_pipeline_backlog_then_eof),
    };
    /* The access log is exercised, not shown. */
    FILE *sink = tmpfile();
    yard_log_init("test", YARD_LOG_INFO);
    if (sink)
        g_log_fd = fileno(sink);
    yard_log_set_fd(g_log_fd);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
