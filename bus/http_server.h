/*
 * http_server.h - libyard's HTTP/1.1 server on a libuv loop.
 *
 * The gateway serves the public API with it and every worker serves
 * /metrics and /healthz. It speaks HTTP/1.1 with keep-alive and pipelining
 * (responses always leave in request order, even when an earlier request is
 * answered later), enforces the limits in yard_http_limits_t, and answers
 * every protocol error itself with the API's JSON error shape.
 *
 * One handler receives every complete request (pass yard_http_router_handle
 * from http_router.h to route by method and path). The handler, or anything
 * it hands the request to, must call yard_http_respond* exactly once, on the
 * loop thread, now or later; until then the request stays valid even if the
 * client disconnects (the response is then dropped).
 *
 * Everything here runs on the loop's thread; nothing is thread-safe. A
 * handler answering from another thread hops back with uv_async_send first.
 */
#ifndef YARD_HTTP_SERVER_H
#define YARD_HTTP_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

/* Limits; a field left 0 takes the default in brackets. */
typedef struct {
    size_t max_header_bytes;  /* request line + header names and values [8 KiB] -> 431 (414 for the URL alone) */
    size_t max_headers;       /* header lines per request [64] -> 431 */
    size_t max_body;          /* decoded body bytes [1 MiB] -> 413 */
    size_t max_connections;   /* open connections [1024]; beyond it: 503 and close */
    uint64_t read_timeout_ms; /* first byte to last byte of a request [10 s] -> 408 and close */
    uint64_t idle_timeout_ms; /* keep-alive connection with nothing to do [60 s] -> quiet close */
    size_t max_connections_per_client; /* open connections from one address [256]; beyond: 503 */
    size_t max_conn_buffer;   /* bodies and responses one connection holds [2 MiB]; beyond it the
                                 connection is not read until its answers are written (its current
                                 request may always complete) */
    size_t max_buffer;        /* bodies and responses all connections hold [256 MiB]; a body that
                                 would go beyond it -> 503 and close */
} yard_http_limits_t;

typedef struct yard_http_req yard_http_req_t;
typedef struct yard_http_server yard_http_server_t;

/* Receives each complete request; must arrange exactly one yard_http_respond*. */
typedef void (*yard_http_handler_fn)(yard_http_req_t *req, void *ud);

/* Called once per request when it is answered (also when the answer is
 * dropped because the client left): route is the matched pattern or
 * "unmatched", method e.g. "GET" ("UNKNOWN" when the request line was
 * unreadable), status the response code, duration_us from the request's
 * first byte to the answer. The strings live as long as the server. */
typedef void (*yard_http_observe_fn)(void *ud, const char *route, const char *method, int status,
                                     uint64_t duration_us);

/* Fills buf with n random bytes (request ids); NULL means randombytes_buf.
 * Tests replace it to get predictable ids. */
typedef void (*yard_http_random_fn)(void *buf, size_t n);

typedef struct {
    yard_http_limits_t limits;
    yard_http_handler_fn handler; /* required */
    void *handler_ud;
    yard_http_observe_fn observe; /* optional: metrics */
    void *observe_ud;
    yard_http_random_fn random; /* optional */
} yard_http_options_t;

/* Called when a shutdown has finished: no connection and no request left. */
typedef void (*yard_http_done_fn)(yard_http_server_t *server, void *ud);

/* ---- server ---- */

/* Creates a server for loop with opts (copied). Returns 0 and sets *out
 * (free with yard_http_server_destroy), YARD_EINVAL when opts has no
 * handler, YARD_ECRYPTO when libsodium cannot start, YARD_ENOMEM.
 * Sets SIGPIPE to ignored for the process: a client that resets its
 * connection must cost an EPIPE, not the process. */
int yard_http_server_create(yard_http_server_t **out, uv_loop_t *loop,
                            const yard_http_options_t *opts);

/* Binds host:port (IPv4 or IPv6 literal; port 0 picks a free one) and starts
 * accepting. Returns 0, YARD_EINVAL for a bad address, YARD_ESTATE if already
 * listening or shut down, YARD_EIO when bind/listen fail (logged). After a
 * successful listen the server must be stopped with yard_http_server_shutdown
 * before it can be destroyed. */
int yard_http_server_listen(yard_http_server_t *server, const char *host, int port);

/* Returns the bound port (useful after listening on port 0), or -1. */
int yard_http_server_port(const yard_http_server_t *server);

/* Number of open connections (for tests and /metrics). */
size_t yard_http_server_connections(const yard_http_server_t *server);

/* Starts a graceful stop: no new connections, idle connections closed at
 * once, requests already received (or being received) are answered with
 * `Connection: close`, then their connections close. done(server, ud) runs on
 * the loop once no connection and no request is left and every libuv handle
 * of the server is closed; then yard_http_server_destroy may be called (even
 * from done). If the server never listened, done runs before this returns.
 * A second call is ignored. done may be NULL. */
void yard_http_server_shutdown(yard_http_server_t *server, yard_http_done_fn done, void *ud);

/* Frees the server. Only valid before listen or once shutdown's done has
 * run; otherwise it logs an error and leaks rather than free live handles.
 * NULL is a no-op. */
void yard_http_server_destroy(yard_http_server_t *server);

/* ---- requests (valid from the handler call until the respond call) ---- */

/* The method, e.g. "GET". Never NULL. */
const char *yard_http_req_method(const yard_http_req_t *req);

/* The path as sent, without query string, not percent-decoded; *len (may be
 * NULL) gets its length. NUL-terminated. Never NULL. */
const char *yard_http_req_path(const yard_http_req_t *req, size_t *len);

/* The query string after '?' (without '?'), or NULL when there is none;
 * NUL-terminated; not decoded. */
const char *yard_http_req_query(const yard_http_req_t *req, size_t *len);

/* The value of the first header named name (case-insensitive), leading and
 * trailing blanks removed, NUL-terminated; NULL when absent. */
const char *yard_http_req_header(const yard_http_req_t *req, const char *name, size_t *len);

/* Number of header lines, and the i-th one (0-based) in arrival order.
 * header_at returns 0, or YARD_ERANGE for a bad index. */
size_t yard_http_req_header_count(const yard_http_req_t *req);
int yard_http_req_header_at(const yard_http_req_t *req, size_t i, const char **name,
                            size_t *name_len, const char **value, size_t *value_len);

/* The decoded body (chunked bodies are joined); *len gets its length (0 and
 * a non-NULL pointer when there is none). Not NUL-terminated. */
const char *yard_http_req_body(const yard_http_req_t *req, size_t *len);

/* The request id: the client's X-Request-Id when it is 1..64 printable
 * ASCII characters without blanks or quotes, otherwise 32 random hex digits.
 * Echoed in the X-Request-Id response header and in error bodies. */
const char *yard_http_req_id(yard_http_req_t *req);

/* Ties req to a trace: trace_id (up to 32 hex digits, copied; NULL or ""
 * clears it) goes into the request's access-log line as trace_id, like
 * every other line about the request. Handlers call it once they know the
 * request's W3C trace (the client's traceparent, or one they made up). */
void yard_http_req_set_trace(yard_http_req_t *req, const char *trace_id);

/* The route parameter {name} bound by the router (raw, not decoded), or NULL.
 * Points into the path; not NUL-terminated. */
const char *yard_http_req_param(const yard_http_req_t *req, const char *name, size_t *len);

/* The matched route pattern, or NULL before routing / when nothing matched. */
const char *yard_http_req_route(const yard_http_req_t *req);

/* Nonzero when the client has gone and any response will be dropped. */
int yard_http_req_client_gone(const yard_http_req_t *req);

/* ---- responses ---- */

/* Answers req with status (200..599), content_type (NULL: no Content-Type),
 * extra_headers (NULL, or complete "Name: value\r\n" lines) and body
 * (body_len bytes, may be NULL when 0). Everything is copied. Adds
 * Content-Length, X-Request-Id and, when the connection will close,
 * `Connection: close`; HEAD, 204 and 304 get no body. req is consumed in
 * every case and must not be used again. Returns 0; YARD_EINVAL when the
 * arguments are invalid (a 500 is sent instead, logged); YARD_ESTATE when req
 * was already answered (nothing is done, logged); YARD_ENOMEM (the
 * connection is closed). */
int yard_http_respond(yard_http_req_t *req, int status, const char *content_type,
                      const char *extra_headers, const void *body, size_t body_len);

/* Answers with the API's error body
 * {"error":{"code":code,"message":message,"request_id":id}} as
 * application/json. code is a short snake_case token ("not_found").
 * Same contract as yard_http_respond. */
int yard_http_respond_error(yard_http_req_t *req, int status, const char *code,
                            const char *message);

/* yard_http_respond_error with extra header lines (e.g. "Retry-After: 1\r\n"). */
int yard_http_respond_error_headers(yard_http_req_t *req, int status, const char *code,
                                    const char *message, const char *extra_headers);

/* ---- for tests and fuzzing ----
 * A connection without a socket: feed it request bytes in any splits, and
 * read back exactly what the server would have written. It runs the same
 * protocol code as a real connection and calls opts->handler. */

typedef struct yard_http_conn yard_http_conn_t;

/* Creates a connection. Returns 0 and sets *out, YARD_EINVAL, YARD_ENOMEM. */
int yard_http_conn_create(yard_http_conn_t **out, const yard_http_options_t *opts);

/* Feeds bytes as one read would. Returns 0, or YARD_ESTATE when the server
 * side has stopped reading (the bytes are ignored). */
int yard_http_conn_feed(yard_http_conn_t *conn, const void *data, size_t len);

/* The client closed its sending side (EOF). */
void yard_http_conn_eof(yard_http_conn_t *conn);

/* The connection's timer fired: 408 for a partial request, otherwise close. */
void yard_http_conn_timeout(yard_http_conn_t *conn);

/* What a server shutdown does to each connection. */
void yard_http_conn_drain(yard_http_conn_t *conn);

/* hold != 0: writes stay pending (like a slow client) until
 * yard_http_conn_release_writes; then everything pending completes. */
void yard_http_conn_hold_writes(yard_http_conn_t *conn, int hold);
void yard_http_conn_release_writes(yard_http_conn_t *conn);

/* Everything written so far (*len bytes), NUL-terminated for convenience. */
const char *yard_http_conn_output(const yard_http_conn_t *conn, size_t *len);

/* Forgets the output read so far. */
void yard_http_conn_clear_output(yard_http_conn_t *conn);

/* Nonzero once the server side has closed the connection. */
int yard_http_conn_closed(const yard_http_conn_t *conn);

/* Number of requests received and not yet answered (handler still has them). */
size_t yard_http_conn_pending(const yard_http_conn_t *conn);

/* The client disconnects and the test lets go: requests still with the
 * handler stay valid; their answers are dropped and the memory is freed with
 * the last one. NULL is a no-op. */
void yard_http_conn_destroy(yard_http_conn_t *conn);

#endif
