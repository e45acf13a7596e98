/*
 * http_internal.h - structures shared by the HTTP server's files; not an API.
 *
 * http_conn.c     the protocol of one connection: parsing, limits, the
 *                 ordered response queue, backpressure; knows no socket.
 * http_request.c  request accessors, response building, request ids,
 *                 access log and the observe hook.
 * http_server.c   the libuv transport: listen, accept, read, write, timers,
 *                 graceful shutdown.
 * http_memconn.c  an in-memory transport for tests and fuzzing.
 * http_router.c   method + path routing with {param} segments.
 *
 * A transport embeds a yard_http_conn_t, gives it a http_conn_ops_t, feeds
 * it bytes, and does what its hooks ask. The connection is reference
 * counted: one reference for the transport (dropped when its handles are
 * closed) and one per request the handler holds, so a request outlives a
 * client that disconnects.
 */
#ifndef YARD_HTTP_INTERNAL_H
#define YARD_HTTP_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <http_parser.h>
#include <uv.h>

#include "http_server.h"

#define HTTP_MAX_PARAMS 8          /* {param} segments bound per route */
#define HTTP_MAX_PIPELINE 32       /* requests queued per connection before reading pauses */
#define HTTP_POOL_KEEP 256         /* free request objects kept per server */
#define HTTP_BUF_KEEP (16 * 1024)  /* heap body/response buffers kept with a pooled request */
#define HTTP_ARENA_SPARE 4096      /* arena room beyond the head for small bodies and responses */
#define HTTP_WRITE_BATCH 16        /* responses gathered into one write */
#define HTTP_RND_POOL 1024         /* random bytes fetched at once for request ids */
#define HTTP_ID_MAX 64             /* longest accepted X-Request-Id */
#define HTTP_TRACE_ID_MAX 32       /* a W3C trace id: 32 hex digits */

/* Settings and state shared by every connection of one server (or one test
 * connection). Only touched on the loop thread. */
typedef struct {
    yard_http_limits_t lim; /* defaults applied */
    yard_http_handler_fn handler;
    void *handler_ud;
    yard_http_observe_fn observe;
    void *observe_ud;
    yard_http_random_fn random;
    yard_http_req_t *pool; /* free request objects, shared by the connections */
    size_t npool;
    size_t head_cap;  /* arena bytes the head may use: limit plus terminators */
    size_t arena_cap; /* head_cap + HTTP_ARENA_SPARE */
    size_t mem_used; /* heap bytes held by the connections' requests and backlogs */
    size_t mem_peak; /* highest mem_used since memory was last given back to the OS */
    size_t rnd_used;
    unsigned char rnd[HTTP_RND_POOL];
} http_ctx_t;

/* Fills ctx from opts, applying the default limits. */
void http_ctx_init(http_ctx_t *ctx, const yard_http_options_t *opts);

/* Frees the request pool; once no connection of ctx is left. */
void http_ctx_fini(http_ctx_t *ctx);

/* Writes a fresh random request id (32 hex digits and a NUL) to id. */
void http_ctx_new_id(http_ctx_t *ctx, char id[HTTP_ID_MAX + 1]);

typedef struct {
    uint32_t name_off, name_len, val_off, val_len; /* offsets into the arena */
} http_hdr_t;

typedef struct {
    const char *name; /* in the router's pattern; not NUL-terminated */
    uint32_t name_len;
    uint32_t off, len; /* value: offsets into the arena (inside the path) */
} http_param_t;

enum {
    HTTP_REQ_FREE = 0,  /* in the pool */
    HTTP_REQ_RECEIVING, /* being parsed; the queue's tail */
    HTTP_REQ_HANDLING,  /* with the handler; holds a connection reference */
    HTTP_REQ_READY,     /* response built, waits for its turn */
    HTTP_REQ_WRITING    /* response handed to the transport */
};

struct yard_http_req {
    yard_http_conn_t *conn;
    yard_http_req_t *next; /* queue or pool link */
    uint64_t t_start;      /* uv_hrtime() at the first byte */
    const char *route;     /* matched pattern (router's memory) */
    http_hdr_t *hdrs;      /* ctx->lim.max_headers entries, after the struct */
    char *arena;           /* ctx->arena_cap bytes: head, then body and response if they fit */
    char *body;            /* in the arena or heap_body */
    size_t body_len, body_cap;
    char *heap_body;
    size_t heap_body_cap;
    char *out; /* the response: in the arena or heap_out */
    size_t out_len;
    char *heap_out;
    size_t heap_out_cap;
    size_t charged;    /* heap_body_cap + heap_out_cap as counted in the memory budgets */
    uint32_t head_len; /* arena bytes used by the head (terminators included) */
    uint32_t raw_len;  /* head bytes counted against max_header_bytes */
    uint32_t url_off, url_len, path_len, query_off, query_len;
    uint16_t nhdr;
    uint16_t status;
    uint8_t state;
    uint8_t method; /* enum http_method, valid when has_method */
    uint8_t nparams;
    unsigned has_method : 1, has_query : 1, head_done : 1, keep_alive : 1, want_continue : 1,
        continue_sent : 1, in_trailers : 1, http10 : 1;
    char id[HTTP_ID_MAX + 1]; /* "" until first asked for */
    char trace_id[HTTP_TRACE_ID_MAX + 1]; /* "" unless the handler set one */
    http_param_t params[HTTP_MAX_PARAMS];
};

/* What a transport does for its connection. */
typedef struct {
    /* Send bufs[0..n) in order; call http_conn_write_done when they are
     * written (may be before returning) or failed. One write at a time. */
    void (*write)(yard_http_conn_t *c, const uv_buf_t *bufs, unsigned n);
    /* Something changed: look at want_close, backlog_len and the timer mode. */
    void (*changed)(yard_http_conn_t *c);
    /* The last reference is gone: free the memory embedding c. */
    void (*release)(yard_http_conn_t *c);
} http_conn_ops_t;

enum { HTTP_TIMER_NONE, HTTP_TIMER_READ, HTTP_TIMER_IDLE };

struct yard_http_conn {
    http_parser parser;
    http_ctx_t *ctx;
    const http_conn_ops_t *ops;
    yard_http_req_t *q_head, *q_tail; /* every request not yet written, in arrival order */
    yard_http_req_t *cur;             /* the request being received (== q_tail), or NULL */
    unsigned nqueued, nwriting, nhandling, refs;
    const char *in; /* bytes of the current feed not parsed yet */
    size_t in_len;
    char *backlog; /* bytes received while paused (pipeline full) */
    size_t backlog_len, backlog_cap;
    size_t mem_used; /* heap bytes its requests and backlog hold (in ctx->mem_used too) */
    const char *chunk; /* start of the bytes the parser is working on */
    uint8_t lf_blank;  /* the bytes before chunk end in a line break and blanks */
    uint8_t last_cb;   /* which element the parser's last data callback fed */
    uint32_t nstarted; /* requests begun: a new one gets a fresh read deadline */
    uint16_t err_status;
    const char *err_code, *err_msg;
    unsigned partial : 1,     /* bytes of a request received, request not complete */
        stop_parsing : 1,     /* no more requests will be read */
        close_when_done : 1,  /* close once every queued response is written */
        want_close : 1,       /* ... and that is now: the transport should close */
        dead : 1,             /* the transport is gone; responses are dropped */
        linger : 1,           /* closing after a protocol error: unread bytes may follow */
        peer_eof : 1,         /* the client sends nothing more; the backlog is still parsed */
        write_busy : 1, draining : 1, driving : 1, again : 1;
};

/* Sets up c (one reference, owned by the transport). */
void http_conn_init(yard_http_conn_t *c, http_ctx_t *ctx, const http_conn_ops_t *ops);

/* Parses bytes from one read; keeps what it cannot parse yet. */
void http_conn_feed(yard_http_conn_t *c, const char *data, size_t len);

/* The peer will send nothing more (EOF). */
void http_conn_eof(yard_http_conn_t *c);

/* The read timer fired: 408 for a partial request. Returns 1 when the
 * connection is answering a 408, 0 when the transport should just close. */
int http_conn_timeout(yard_http_conn_t *c);

/* Graceful stop: finish what was received, then close. */
void http_conn_drain(yard_http_conn_t *c);

/* The write started by ops->write finished (status 0) or failed (< 0). */
void http_conn_write_done(yard_http_conn_t *c, int status);

/* The transport is going away: drop queued responses; requests with the
 * handler become orphans. Idempotent. */
void http_conn_abort(yard_http_conn_t *c);

/* Drops one reference; the last one calls ops->release. */
void http_conn_unref(yard_http_conn_t *c);

/* Which timer the transport should run now. */
int http_conn_timer_mode(const yard_http_conn_t *c);

/* Re-runs the connection's work loop (after a response or a write). */
void http_conn_drive(yard_http_conn_t *c);

/* ---- memory budgets (http_conn.c) ---- */

/* Counts req's heap buffers again in its connection's and the server's
 * memory use, after they grew or were freed. */
void http_mem_recharge(yard_http_req_t *req);

/* Adds delta (may be negative) to c's and the server's memory use; gives
 * memory back to the OS after a flood has passed. */
void http_mem_charge(yard_http_conn_t *c, long long delta);

/* ---- http_request.c ---- */

/* A request object for c, from the pool or the heap; NULL on ENOMEM. */
yard_http_req_t *http_req_get(yard_http_conn_t *c);

/* Returns req to the pool (or frees it). */
void http_req_put(yard_http_conn_t *c, yard_http_req_t *req);

/* Frees req and its buffers. */
void http_req_free(yard_http_req_t *req);

/* Formats a complete error response (JSON body, Connection: close) into buf
 * for the transport's own use (503 over the connection limit). Returns its
 * length, or 0 if cap is too small. */
size_t http_error_format(char *buf, size_t cap, int status, const char *code, const char *message,
                         const char *request_id);

#endif
