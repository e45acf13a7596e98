/*
 * yt_hook.h - a webhook receiver for tests: a thread serving HTTP/1.1 on
 * 127.0.0.1 (one request per connection), answering each request as the
 * test's function says and keeping every request it got (method, path,
 * the Yard-* headers, the body, the time) for the test to inspect.
 */
#ifndef YARD_TEST_YT_HOOK_H
#define YARD_TEST_YT_HOOK_H

#include <stddef.h>

#define YT_HOOK_MAX_REQUESTS 256
#define YT_HOOK_BODY_MAX 8192

/* One request as received. */
typedef struct {
    char method[16];
    char path[256];
    char signature[160];   /* Yard-Signature, or "" */
    char notif_id[160];    /* Yard-Notification-Id, or "" */
    char event[64];        /* Yard-Event, or "" */
    char key_id[64];       /* Yard-Key-Id, or "" */
    char content_type[64];
    char body[YT_HOOK_BODY_MAX + 1]; /* NUL-terminated (cut at YT_HOOK_BODY_MAX) */
    size_t body_len;
    long long at_ms;       /* yt_now_ms() when it arrived */
} yt_hook_req_t;

/* How to answer: status, and a Location header when not NULL. */
typedef struct {
    int status;
    const char *location;
} yt_hook_answer_t;

/* Decides the answer to the hit-th request (1 = first) on path. Runs on the
 * receiver's thread. */
typedef yt_hook_answer_t (*yt_hook_fn)(void *ud, const char *path, int hit);

typedef struct yt_hook yt_hook_t;

/* Starts a receiver on a free port of 127.0.0.1. Returns 0 and sets *out
 * (stop with yt_hook_stop), or -1 after printing why. */
int yt_hook_start(yt_hook_t **out, yt_hook_fn fn, void *ud);

/* Its port. */
int yt_hook_port(const yt_hook_t *h);

/* Requests received so far on path (exact match, without the query). */
int yt_hook_count(yt_hook_t *h, const char *path);

/* Copies the i-th (0-based) request received on path into *out. Returns 0,
 * or -1 when there is no such request. */
int yt_hook_get(yt_hook_t *h, const char *path, int i, yt_hook_req_t *out);

/* Polls until path has received want requests or timeout_ms passed.
 * Returns the count then. */
int yt_hook_wait(yt_hook_t *h, const char *path, int want, int timeout_ms);

/* Stops the thread, closes the socket and frees h. NULL is a no-op. */
void yt_hook_stop(yt_hook_t *h);

#endif
