/*
 * yt_http.h - a tiny blocking HTTP/1.1 client for tests, on raw sockets.
 *
 * It talks to 127.0.0.1:port only. A connection sends either arbitrary raw
 * bytes (hostile requests) or a well-formed request, and reads ONE response
 * at a time with a timeout, so several requests can share a keep-alive
 * connection and pipelined answers are read one by one. It also tells a
 * connection the server closed without answering from one that is merely
 * slow. Interim 1xx responses are skipped. Bodies are framed by
 * Content-Length or chunked coding, else by the close of the connection.
 *
 * yt_gateway_start runs the real bin/yard-gateway against a test
 * environment's servers and waits until it answers.
 */
#ifndef YARD_TEST_YT_HTTP_H
#define YARD_TEST_YT_HTTP_H

#include <stddef.h>
#include <sys/types.h>

#include "harness.h"

/* Results of the read functions besides an HTTP status (100..599). */
enum {
    YT_HTTP_CLOSED = -1,  /* the server closed (or reset) before a complete response */
    YT_HTTP_TIMEOUT = -2, /* no complete response in time */
    YT_HTTP_EPROTO = -3,  /* what came is not an HTTP/1.x response */
    YT_HTTP_ECONN = -4,   /* could not connect or send */
};

#define YT_HTTP_MAX_HEADERS 64
#define YT_HTTP_MAX_RESPONSE (16u << 20) /* a larger response is EPROTO */

typedef struct {
    const char *name;
    const char *value;
} yt_http_header_t;

/* One response. Everything points into memory the response owns; free it
 * with yt_http_resp_free (also after an error: it is then empty). */
typedef struct {
    int status;
    char *head; /* status line and headers, split in place */
    const char *reason;
    yt_http_header_t headers[YT_HTTP_MAX_HEADERS];
    size_t nheaders;
    char *body; /* malloc'd, NUL-terminated, never NULL after a success */
    size_t body_len;
    int will_close; /* the server said `Connection: close` or closed after it */
} yt_http_resp_t;

typedef struct yt_http_conn yt_http_conn_t;

/* Connects to 127.0.0.1:port. Returns 0 and sets *out (close with
 * yt_http_close), or YT_HTTP_ECONN. */
int yt_http_connect(yt_http_conn_t **out, int port);

/* Closes the socket and frees c. NULL is a no-op. */
void yt_http_close(yt_http_conn_t *c);

/* Sends len raw bytes. Returns 0, or YT_HTTP_ECONN when the server has
 * closed or reset the connection. */
int yt_http_send_raw(yt_http_conn_t *c, const void *data, size_t len);

/* Closes the sending side (the server reads EOF); reading goes on. */
void yt_http_shutdown_write(yt_http_conn_t *c);

/* Sends a request: method, path, the NULL-terminated list headers of
 * complete "Name: value" lines (may be NULL), and body (len bytes; when
 * body is not NULL a Content-Length header is added). Host is added.
 * Returns 0 or YT_HTTP_ECONN. */
int yt_http_send_request(yt_http_conn_t *c, const char *method, const char *path,
                         const char *const headers[], const void *body, size_t len);

/* Reads the next response within timeout_ms. Returns its status and fills
 * *resp, or YT_HTTP_CLOSED / YT_HTTP_TIMEOUT / YT_HTTP_EPROTO (resp empty). */
int yt_http_read(yt_http_conn_t *c, yt_http_resp_t *resp, int timeout_ms);

/* Waits up to timeout_ms for the server to close the connection, reading
 * and counting whatever else arrives. Returns 1 when it closed (EOF or
 * reset) and *extra (may be NULL) gets the number of bytes received first,
 * 0 when still open at the deadline. */
int yt_http_wait_closed(yt_http_conn_t *c, int timeout_ms, size_t *extra);

/* One request on a new connection, one response (timeout 10 s): returns
 * the status (resp filled) or a negative YT_HTTP_* code (resp empty). */
int yt_http_request(yt_http_resp_t *resp, int port, const char *method, const char *path,
                    const char *const headers[], const void *body, size_t len);

/* GET path on a new connection: the status, or a negative YT_HTTP_* code
 * (for /readyz and the like, where only the status matters). */
int yt_http_status(int port, const char *path);

/* The value of the first header named name (case-insensitive), or NULL. */
const char *yt_http_header(const yt_http_resp_t *resp, const char *name);

/* Frees what resp holds and empties it. Safe on an empty response. */
void yt_http_resp_free(yt_http_resp_t *resp);

/* The body, cut to 300 bytes, control bytes shown as '.' and bytes above
 * 0x7f as \xNN, for failure messages (a static buffer: one call per
 * message). */
const char *yt_http_body_excerpt(const yt_http_resp_t *resp);

/* Checks that resp carries the API's error shape: a JSON object
 * {"error":{"code":"...","message":"...","request_id":"..."}} with three
 * non-empty strings, request_id equal to the X-Request-Id header, and
 * Content-Type application/json. Returns 0, or -1 with the reason in why
 * (cap bytes). */
int yt_http_check_error(const yt_http_resp_t *resp, char *why, size_t cap);

/* The error code of an error response ("" when it has none; static buffer). */
const char *yt_http_error_code(const yt_http_resp_t *resp);

/* Starts <yt_bin_dir()>/yard-gateway (log: <dir>/gateway.log, pid file
 * gateway.pid) with YARD_NATS_URL and YARD_PG_DSN from env, YARD_HTTP_PORT
 * a free port, then extra_env ("K=V" list, NULL-terminated, may be NULL;
 * later entries win; a YARD_HTTP_PORT there is used, and not retried).
 * Retries on another port if the gateway exits during start. Waits up to 20 s for GET /healthz to answer 200; returns the pid
 * and sets *port_out, or -1 after printing the tail of the gateway's log.
 * Stop it with yt_kill_wait(pid, SIGTERM, ...). */
pid_t yt_gateway_start(yt_env_t *env, int *port_out, char *const extra_env[]);

#endif
