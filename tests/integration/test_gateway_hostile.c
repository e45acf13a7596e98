/*
 * test_gateway_hostile.c - malformed and hostile requests against the real
 * yard-gateway (auth disabled) over real sockets.
 *
 * One table lists each request as raw bytes (or a body the test frames) with
 * the answer DESIGN.md and http_server.h promise: a status and error code,
 * what the message must name, a header it must carry, and whether the
 * connection must close or stay usable. Every error answer must have the
 * shape {"error":{"code","message","request_id"}} and be valid JSON. After
 * EACH case a normal job is submitted on a fresh connection and must get its
 * 202: the server keeps serving. A separate test sends one byte every
 * 200 ms (read timeout 1 s): it must get 408 and a close, while another
 * client is served normally at the same time.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "harness.h"
#include "log.h"
#include "yt_http.h"

#define READ_TIMEOUT_MS 1000

static struct {
    yt_env_t *env;
    pid_t gw;
    int port;
    int dead; /* the gateway exited: the remaining cases cannot run */
} g;

enum { AFTER_ANY = 0, AFTER_CLOSE, AFTER_OPEN };
#define WANT_CLOSED YT_HTTP_CLOSED /* the server closes without answering */

typedef struct {
    const char *name;
    /* A body case: POST path (default /v1/jobs), framed by the test with
     * Content-Type ctype (default application/json), extra header lines,
     * and Content-Length. */
    const char *path, *ctype, *headers, *body;
    size_t body_len; /* 0: strlen(body) */
    /* A raw case: these bytes exactly, or what build makes (malloc'd). */
    const char *raw;
    size_t raw_len; /* 0: strlen(raw) */
    char *(*build)(size_t *len);
    /* The answer. */
    int want;               /* HTTP status, or WANT_CLOSED */
    const char *code;       /* error code, or NULL for any */
    const char *in_message; /* text error.message must hold, or NULL */
    const char *header;     /* "Name: value-prefix" the answer must carry, or NULL */
    int after;              /* AFTER_CLOSE, AFTER_OPEN (keep-alive works), AFTER_ANY */
    int want2;              /* the status of a second (pipelined) answer, 0 for none */
    int shut_wr;            /* close the sending side after sending */
} hostile_t;

/* ---- generated requests ------------------------------------------------------ */

static char *cat(size_t *len, const char *a, const char *fill, size_t times, const char *b)
{
    size_t la = strlen(a), lf = strlen(fill), lb = strlen(b);
    char *s = malloc(la + lf * times + lb + 1), *p = s;
    memcpy(p, a, la);
    p += la;
    for (size_t i = 0; i < times; i++, p += lf)
        memcpy(p, fill, lf);
    memcpy(p, b, lb + 1);
    *len = la + lf * times + lb;
    return s;
}

static char *huge_header(size_t *len)
{
    return cat(len, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ", "a", 16 * 1024, "\r\n\r\n");
}

static char *many_headers(size_t *len)
{
    return cat(len, "GET /healthz HTTP/1.1\r\nHost: x\r\n", "X-H: 1\r\n", 100, "\r\n");
}

static char *long_url(size_t *len)
{
    return cat(len, "GET /", "a", 9000, " HTTP/1.1\r\nHost: x\r\n\r\n");
}

static char *body_over_1mib(size_t *len)
{
    char head[160];
    size_t n = (1u << 20) + 1;
    snprintf(head, sizeof head,
             "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             "Content-Length: %zu\r\n\r\n",
             n);
    return cat(len, head, " ", n, "");
}

static char *chunk_over_1mib(size_t *len)
{
    /* 0x100001 bytes announced in one chunk: refused before its data. */
    return cat(len,
               "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               "Transfer-Encoding: chunked\r\n\r\n100001\r\n",
               "{", 1000, "");
}

/* A framed POST /v1/jobs of body (len bytes) with extra header lines. */
static char *post_of(size_t *len, const char *extra, const char *body, size_t blen)
{
    char head[1024];
    int n = snprintf(head, sizeof head,
                     "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     "%sContent-Length: %zu\r\n\r\n",
                     extra, blen);
    char *s = malloc((size_t)n + blen + 1);
    memcpy(s, head, (size_t)n);
    memcpy(s + n, body, blen);
    s[(size_t)n + blen] = '\0';
    *len = (size_t)n + blen;
    return s;
}

static char *deep_payload(size_t *len)
{
    size_t n = 0;
    char *open = cat(&n, "{\"type\":\"noop\",\"payload\":", "[", 100, "");
    char *body = cat(&n, open, "]", 100, "}");
    char *s = post_of(len, "", body, n);
    free(open);
    free(body);
    return s;
}

static char *deep_body(size_t *len)
{
    size_t n = 0;
    char *open = cat(&n, "", "{\"a\":", 100, "1");
    char *body = cat(&n, open, "}", 100, "");
    char *s = post_of(len, "", body, n);
    free(open);
    free(body);
    return s;
}

static char *long_idem_key(size_t *len)
{
    size_t n = 0;
    char *hdr = cat(&n, "Idempotency-Key: ", "k", 256, "\r\n");
    char *s = post_of(len, hdr, "{\"type\":\"noop\"}", 15);
    free(hdr);
    return s;
}

static char *long_type(size_t *len)
{
    size_t n = 0;
    char *body = cat(&n, "{\"type\":\"", "t", 65, "\"}");
    char *s = post_of(len, "", body, n);
    free(body);
    return s;
}

/* ---- the table ----------------------------------------------------------------- */

/* Literals that hold NUL bytes, with their true length. */
#define RAW(s) .raw = s, .raw_len = sizeof(s) - 1
#define BODYN(s) .body = s, .body_len = sizeof(s) - 1

#define J "application/json"
#define MP "application/msgpack"

static const hostile_t cases[] = {
    /* Bodies that are not JSON. */
    {.name = "truncated JSON", .body = "{\"type\":\"noop\"", .want = 400, .code = "bad_request",
     .in_message = "invalid JSON", .after = AFTER_OPEN},
    {.name = "JSON with a trailing comma", .body = "{\"type\":\"noop\",}", .want = 400,
     .code = "bad_request", .after = AFTER_OPEN},
    {.name = "JSON with single quotes", .body = "{'type':'noop'}", .want = 400,
     .code = "bad_request", .after = AFTER_OPEN},
    {.name = "bytes after the JSON value", .body = "{\"type\":\"noop\"} x", .want = 400,
     .code = "bad_request", .after = AFTER_OPEN},
    {.name = "empty body", .body = "", .want = 400, .code = "bad_request",
     .in_message = "empty", .after = AFTER_OPEN},
    {.name = "a repeated key", .body = "{\"type\":\"noop\",\"type\":\"echo\"}", .want = 400,
     .code = "bad_request", .after = AFTER_OPEN},
    {.name = "NUL inside the body", BODYN("{\"type\":\"no\0op\"}"), .want = 400,
     .code = "bad_request", .after = AFTER_OPEN},
    /* JSON that is not a job object. */
    {.name = "a JSON array", .body = "[{\"type\":\"noop\"}]", .want = 400, .code = "invalid_job",
     .in_message = "object", .after = AFTER_OPEN},
    {.name = "a JSON string", .body = "\"noop\"", .want = 400, .code = "invalid_job",
     .in_message = "object", .after = AFTER_OPEN},
    {.name = "JSON null", .body = "null", .want = 400, .code = "invalid_job", .after = AFTER_OPEN},
    {.name = "an unknown field", .body = "{\"type\":\"noop\",\"tpye\":\"x\"}", .want = 400,
     .code = "invalid_job", .in_message = "tpye", .after = AFTER_OPEN},
    {.name = "no type", .body = "{\"payload\":1}", .want = 400, .code = "invalid_job",
     .in_message = "type", .after = AFTER_OPEN},
    /* Each field's bounds. */
    {.name = "max_attempts 0", .body = "{\"type\":\"noop\",\"max_attempts\":0}", .want = 400,
     .code = "invalid_job", .in_message = "max_attempts", .after = AFTER_OPEN},
    {.name = "max_attempts 101", .body = "{\"type\":\"noop\",\"max_attempts\":101}", .want = 400,
     .code = "invalid_job", .in_message = "max_attempts", .after = AFTER_OPEN},
    {.name = "max_attempts as a string", .body = "{\"type\":\"noop\",\"max_attempts\":\"5\"}",
     .want = 400, .code = "invalid_job", .in_message = "max_attempts", .after = AFTER_OPEN},
    {.name = "max_attempts 2.5", .body = "{\"type\":\"noop\",\"max_attempts\":2.5}", .want = 400,
     .code = "invalid_job", .in_message = "max_attempts", .after = AFTER_OPEN},
    {.name = "timeout_s 0", .body = "{\"type\":\"noop\",\"timeout_s\":0}", .want = 400,
     .code = "invalid_job", .in_message = "timeout_s", .after = AFTER_OPEN},
    {.name = "timeout_s 86401", .body = "{\"type\":\"noop\",\"timeout_s\":86401}", .want = 400,
     .code = "invalid_job", .in_message = "timeout_s", .after = AFTER_OPEN},
    {.name = "priority urgent", .body = "{\"type\":\"noop\",\"priority\":\"urgent\"}", .want = 400,
     .code = "invalid_job", .in_message = "priority", .after = AFTER_OPEN},
    {.name = "run_at not a time", .body = "{\"type\":\"noop\",\"run_at\":\"tomorrow\"}",
     .want = 400, .code = "invalid_job", .in_message = "run_at", .after = AFTER_OPEN},
    {.name = "run_at on February 30", .body = "{\"type\":\"noop\",\"run_at\":\"2030-02-30T10:00:00Z\"}",
     .want = 400, .code = "invalid_job", .in_message = "run_at", .after = AFTER_OPEN},
    {.name = "run_at without a zone", .body = "{\"type\":\"noop\",\"run_at\":\"2030-01-01T10:00:00\"}",
     .want = 400, .code = "invalid_job", .in_message = "run_at", .after = AFTER_OPEN},
    {.name = "run_at beyond 9999-12-31T23:59:59.999Z",
     .body = "{\"type\":\"noop\",\"run_at\":\"9999-12-31T23:59:59-01:00\"}", .want = 400,
     .code = "invalid_job", .in_message = "run_at", .after = AFTER_OPEN},
    {.name = "type with upper case", .body = "{\"type\":\"Email\"}", .want = 400,
     .code = "invalid_job", .in_message = "type", .after = AFTER_OPEN},
    {.name = "type of 65 characters", .build = long_type, .want = 400, .code = "invalid_job",
     .in_message = "type", .after = AFTER_OPEN},
    {.name = "type as a NATS wildcard", .body = "{\"type\":\"jobs.>\"}", .want = 400,
     .code = "invalid_job", .in_message = "type", .after = AFTER_OPEN},
    {.name = "a queue not served", .body = "{\"type\":\"noop\",\"queue\":\"nope\"}", .want = 400,
     .code = "invalid_job", .in_message = "nope", .after = AFTER_OPEN},
    {.name = "a queue name with a blank", .body = "{\"type\":\"noop\",\"queue\":\"a b\"}",
     .want = 400, .code = "invalid_job", .in_message = "queue", .after = AFTER_OPEN},
    {.name = "notify not http(s)", .body = "{\"type\":\"noop\",\"notify\":\"ftp://h/x\"}",
     .want = 400, .code = "invalid_job", .in_message = "notify", .after = AFTER_OPEN},
    /* Strings and numbers. */
    {.name = "invalid UTF-8 in a string", .body = "{\"type\":\"noop\",\"payload\":\"\xff\xfe\"}",
     .want = 400, .code = "bad_request", .after = AFTER_OPEN},
    {.name = "an overlong UTF-8 slash", .body = "{\"type\":\"noop\",\"payload\":\"\xc0\xaf\"}",
     .want = 400, .code = "bad_request", .after = AFTER_OPEN},
    {.name = "a lone surrogate escape", .body = "{\"type\":\"noop\",\"payload\":\"\\ud800\"}",
     .want = 400, .code = "bad_request", .after = AFTER_OPEN},
    {.name = "an unknown field cut inside a UTF-8 character",
     .body = "{\"type\":\"noop\",\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
             "\xc3\xa9\":1}",
     .want = 400, .code = "invalid_job", .in_message = "unknown field", .after = AFTER_OPEN},
    {.name = "nesting depth 100 in the payload", .build = deep_payload, .want = 400,
     .code = "bad_request", .in_message = "deeper", .after = AFTER_OPEN},
    {.name = "nesting depth 100 of objects", .build = deep_body, .want = 400,
     .code = "bad_request", .in_message = "deeper", .after = AFTER_OPEN},
    {.name = "a number out of range (1e400)", .body = "{\"type\":\"noop\",\"payload\":1e400}",
     .want = 400, .code = "bad_request", .after = AFTER_OPEN},
    {.name = "max_attempts 2^64", .body = "{\"type\":\"noop\",\"max_attempts\":18446744073709551616}",
     .want = 400, .code = "bad_request", .after = AFTER_OPEN},
    {.name = "max_attempts -2^63", .body = "{\"type\":\"noop\",\"max_attempts\":-9223372036854775808}",
     .want = 400, .code = "invalid_job", .in_message = "max_attempts", .after = AFTER_OPEN},
    /* Batches and headers of the API. */
    {.name = "a batch that is an array", .path = "/v1/jobs/batch", .body = "[{\"type\":\"noop\"}]",
     .want = 400, .code = "bad_request", .in_message = "jobs", .after = AFTER_OPEN},
    {.name = "a batch whose jobs is an object", .path = "/v1/jobs/batch",
     .body = "{\"jobs\":{\"type\":\"noop\"}}", .want = 400, .code = "bad_request",
     .after = AFTER_OPEN},
    {.name = "a batch with another key", .path = "/v1/jobs/batch",
     .body = "{\"jobs\":[{\"type\":\"noop\"}],\"more\":1}", .want = 400, .code = "bad_request",
     .after = AFTER_OPEN},
    {.name = "a batch with an Idempotency-Key header", .path = "/v1/jobs/batch",
     .headers = "Idempotency-Key: k1\r\n", .body = "{\"jobs\":[{\"type\":\"noop\"}]}", .want = 400,
     .code = "bad_request", .in_message = "Idempotency-Key", .after = AFTER_OPEN},
    {.name = "Idempotency-Key that is not UTF-8", .headers = "Idempotency-Key: k\xff\xfe\r\n",
     .body = "{\"type\":\"noop\"}", .want = 400, .code = "bad_request",
     .in_message = "Idempotency-Key", .after = AFTER_OPEN},
    {.name = "Idempotency-Key of 256 bytes", .build = long_idem_key, .want = 400,
     .code = "bad_request", .in_message = "Idempotency-Key", .after = AFTER_OPEN},
    {.name = "Content-Type text/plain", .ctype = "text/plain", .body = "{\"type\":\"noop\"}",
     .want = 415, .code = "unsupported_media_type", .after = AFTER_OPEN},
    {.name = "Content-Type application/jsonx", .ctype = "application/jsonx",
     .body = "{\"type\":\"noop\"}", .want = 415, .code = "unsupported_media_type",
     .after = AFTER_OPEN},
    {.name = "a job without Content-Type",
     .raw = "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 15\r\n\r\n{\"type\":\"noop\"}",
     .want = 415, .code = "unsupported_media_type", .in_message = "Content-Type",
     .after = AFTER_OPEN},
    {.name = "a batch without Content-Type",
     .raw = "POST /v1/jobs/batch HTTP/1.1\r\nHost: x\r\nContent-Length: 26\r\n\r\n"
            "{\"jobs\":[{\"type\":\"noop\"}]}",
     .want = 415, .code = "unsupported_media_type", .after = AFTER_OPEN},
    /* msgpack. */
    {.name = "msgpack: the never-used byte", .ctype = MP, .body = "\xc1", .want = 400,
     .code = "bad_request", .after = AFTER_OPEN},
    {.name = "msgpack: truncated map", .ctype = MP, .body = "\x82\xa4type", .want = 400,
     .code = "bad_request", .after = AFTER_OPEN},
    {.name = "msgpack: an array claiming 2^31 elements", .ctype = MP, .body = "\xdd\x7f\xff\xff\xff",
     .want = 400, .code = "bad_request", .after = AFTER_OPEN},
    {.name = "msgpack: a map key that is not UTF-8", .ctype = MP,
     .body = "\x82\xa4type\xa4noop\xa2\xff\xfe\x01", .want = 400, .code = "bad_request",
     .after = AFTER_OPEN},
    {.name = "msgpack: binary payload", .ctype = MP,
     .body = "\x82\xa4type\xa4noop\xa7payload\xc4\x01x", .want = 400, .code = "bad_request",
     .in_message = "binary", .after = AFTER_OPEN},
    /* The HTTP layer. */
    {.name = "a 16 KiB header", .build = huge_header, .want = 431, .code = "headers_too_large",
     .after = AFTER_CLOSE},
    {.name = "100 header lines", .build = many_headers, .want = 431, .code = "headers_too_large",
     .after = AFTER_CLOSE},
    {.name = "a 9000-byte URL", .build = long_url, .want = 414, .code = "uri_too_long",
     .after = AFTER_CLOSE},
    {.name = "Content-Length and Transfer-Encoding",
     .raw = "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
            "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
     .want = 400, .code = "bad_request", .after = AFTER_CLOSE},
    {.name = "two different Content-Lengths",
     .raw = "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 15\r\nContent-Length: 16\r\n\r\n"
            "{\"type\":\"noop\"}",
     .want = 400, .code = "bad_request", .after = AFTER_CLOSE},
    {.name = "a negative Content-Length",
     .raw = "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", .want = 400,
     .code = "bad_request", .after = AFTER_CLOSE},
    {.name = "a Content-Length of 20 digits",
     .raw = "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n",
     .want = 400, .code = "bad_request", .after = AFTER_CLOSE},
    {.name = "a bad chunk size",
     .raw = "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
     .want = 400, .code = "bad_request", .after = AFTER_CLOSE},
    {.name = "chunked not last",
     .raw = "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
     .want = 400, .code = "bad_request", .after = AFTER_CLOSE},
    {.name = "gzip then chunked",
     .raw = "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
     .want = 501, .code = "not_implemented", .after = AFTER_CLOSE},
    {.name = "a body of 1 MiB + 1", .build = body_over_1mib, .want = 413,
     .code = "payload_too_large", .after = AFTER_CLOSE},
    {.name = "a chunk of 1 MiB + 1", .build = chunk_over_1mib, .want = 413,
     .code = "payload_too_large", .after = AFTER_CLOSE},
    {.name = "POST without a length",
     .raw = "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\r\n"
            "{\"type\":\"noop\"}",
     .want = 411, .code = "length_required", .after = AFTER_CLOSE},
    {.name = "a garbage request line", .raw = "HELLO THERE\r\n\r\n", .want = 400,
     .code = "bad_request", .after = AFTER_CLOSE},
    {.name = "binary garbage", RAW("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"), .want = 400, .code = "bad_request", .after = AFTER_CLOSE},
    {.name = "a NUL in the URL", RAW("GET /heal\0thz HTTP/1.1\r\nHost: x\r\n\r\n"),
     .want = 400, .code = "bad_request", .after = AFTER_CLOSE},
    {.name = "HTTP/2.0 in the request line", .raw = "GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n",
     .want = 505, .code = "http_version_not_supported", .after = AFTER_CLOSE},
    {.name = "the HTTP/2 preface", .raw = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", .want = 400,
     .code = "bad_request", .after = AFTER_CLOSE},
    {.name = "a folded header line",
     .raw = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n  2\r\n\r\n", .want = 400,
     .code = "bad_request", .after = AFTER_CLOSE},
    {.name = "a blank before the colon", .raw = "GET /healthz HTTP/1.1\r\nHost : x\r\n\r\n",
     .want = 400, .code = "bad_request", .after = AFTER_CLOSE},
    {.name = "a control byte in a header value",
     .raw = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n", .want = 400,
     .code = "bad_request", .after = AFTER_CLOSE},
    {.name = "an unknown route", .raw = "GET /v2/nothing HTTP/1.1\r\nHost: x\r\n\r\n", .want = 404,
     .code = "not_found", .after = AFTER_OPEN},
    {.name = "a dot-dot path", .raw = "GET /v1/jobs/../healthz HTTP/1.1\r\nHost: x\r\n\r\n",
     .want = 404, .code = "not_found", .after = AFTER_OPEN},
    {.name = "a job id that is not a UUID", .raw = "GET /v1/jobs/%00 HTTP/1.1\r\nHost: x\r\n\r\n",
     .want = 400, .code = "bad_request", .after = AFTER_OPEN},
    {.name = "PUT /v1/jobs", .raw = "PUT /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
     .want = 405, .code = "method_not_allowed", .header = "Allow: POST", .after = AFTER_OPEN},
    {.name = "DELETE /healthz", .raw = "DELETE /healthz HTTP/1.1\r\nHost: x\r\n\r\n", .want = 405,
     .code = "method_not_allowed", .header = "Allow: GET", .after = AFTER_OPEN},
    {.name = "garbage after a pipelined request",
     .raw = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n\x01\x02garbage\r\n\r\n", .want = 200,
     .want2 = 400, .after = AFTER_CLOSE},
    {.name = "a request cut short, then EOF",
     .raw = "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"ty", .shut_wr = 1,
     .want = WANT_CLOSED},
    {.name = "half a request line, then silence", .raw = "GET /heal", .want = 408,
     .code = "request_timeout", .after = AFTER_CLOSE},
};

#define NCASES (sizeof cases / sizeof cases[0])

/* ---- running a case ----------------------------------------------------------- */

static char *case_bytes(const hostile_t *t, size_t *len)
{
    if (t->build)
        return t->build(len);
    if (t->raw) {
        *len = t->raw_len ? t->raw_len : strlen(t->raw);
        char *s = malloc(*len + 1);
        memcpy(s, t->raw, *len);
        return s;
    }
    size_t blen = t->body_len ? t->body_len : strlen(t->body);
    char head[1024];
    int n = snprintf(head, sizeof head,
                     "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\n%sContent-Length: %zu\r\n\r\n",
                     t->path ? t->path : "/v1/jobs", t->ctype ? t->ctype : J,
                     t->headers ? t->headers : "", blen);
    char *s = malloc((size_t)n + blen + 1);
    memcpy(s, head, (size_t)n);
    memcpy(s + n, t->body, blen);
    *len = (size_t)n + blen;
    return s;
}

/* Appends a failure line for case t to errs. */
static void complain(char *errs, size_t cap, int *nfail, const hostile_t *t, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void complain(char *errs, size_t cap, int *nfail, const hostile_t *t, const char *fmt, ...)
{
    size_t len = strlen(errs);
    va_list ap;
    (*nfail)++;
    if (len + 200 >= cap)
        return;
    len += (size_t)snprintf(errs + len, cap - len, "  case \"%s\": ", t->name);
    va_start(ap, fmt);
    len += (size_t)vsnprintf(errs + len, cap - len, fmt, ap);
    va_end(ap);
    snprintf(errs + len, cap - len, "\n");
}

/* What st means, written to buf (32 bytes) for the named statuses. */
static const char *status_text(char buf[32], int st)
{
    switch (st) {
    case YT_HTTP_CLOSED: return "the connection closed without a response";
    case YT_HTTP_TIMEOUT: return "no response in 5 s";
    case YT_HTTP_EPROTO: return "a malformed response";
    case YT_HTTP_ECONN: return "a connection failure";
    default: snprintf(buf, 32, "HTTP %d", st); return buf;
    }
}

/* Checks one answer against the case; complains on mismatch. */
static void check_answer(char *errs, size_t cap, int *nfail, const hostile_t *t, int st, int want,
                         yt_http_resp_t *r, int is_first)
{
    char why[512], b1[32], b2[32];
    if (st != want) {
        complain(errs, cap, nfail, t, "expected %s, got %s%s%s", status_text(b1, want),
                 status_text(b2, st), st > 0 ? ": " : "", st > 0 ? yt_http_body_excerpt(r) : "");
        return;
    }
    if (st < 400)
        return;
    if (yt_http_check_error(r, why, sizeof why) != 0) {
        complain(errs, cap, nfail, t, "HTTP %d as expected, but %s", st, why);
        return;
    }
    if (!is_first)
        return;
    if (t->code && strcmp(yt_http_error_code(r), t->code) != 0)
        complain(errs, cap, nfail, t, "expected error code %s, got %s", t->code,
                 yt_http_body_excerpt(r));
    if (t->in_message && !strstr(r->body, t->in_message))
        complain(errs, cap, nfail, t, "expected the message to name \"%s\", got %s",
                 t->in_message, yt_http_body_excerpt(r));
    if (t->header) {
        const char *colon = strchr(t->header, ':');
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)(colon - t->header), t->header);
        const char *v = yt_http_header(r, name);
        if (!v || !strstr(v, colon + 2))
            complain(errs, cap, nfail, t, "expected header %s, got %s: %s", t->header, name,
                     v ? v : "(absent)");
    }
}

/* A normal job on a fresh connection: the server still serves. */
static int still_serving(char *detail, size_t cap)
{
    static const char *const h[] = {"Content-Type: application/json", NULL};
    yt_http_resp_t r;
    char b[32];
    int st = yt_http_request(&r, g.port, "POST", "/v1/jobs", h, "{\"type\":\"noop\"}", 15);
    snprintf(detail, cap, "%s%s%s", status_text(b, st), st > 0 ? ": " : "",
             st > 0 ? yt_http_body_excerpt(&r) : "");
    yt_http_resp_free(&r);
    return st == 202;
}

static void run_case(char *errs, size_t cap, int *nfail, const hostile_t *t)
{
    size_t len = 0;
    char *bytes = case_bytes(t, &len);
    yt_http_conn_t *c = NULL;
    yt_http_resp_t r;
    char detail[400], b[32];
    if (yt_http_connect(&c, g.port) != 0) {
        complain(errs, cap, nfail, t, "could not connect");
        free(bytes);
        return;
    }
    /* The server may answer and close before it has read everything. */
    (void)yt_http_send_raw(c, bytes, len);
    free(bytes);
    if (t->shut_wr)
        yt_http_shutdown_write(c);
    int st = yt_http_read(c, &r, 5000);
    check_answer(errs, cap, nfail, t, st, t->want, &r, 1);
    int will_close = r.will_close;
    yt_http_resp_free(&r);
    if (t->want2) {
        st = yt_http_read(c, &r, 5000);
        check_answer(errs, cap, nfail, t, st, t->want2, &r, 0);
        will_close = r.will_close;
        yt_http_resp_free(&r);
    }
    if (t->after == AFTER_CLOSE && st == (t->want2 ? t->want2 : t->want)) {
        if (!will_close)
            complain(errs, cap, nfail, t, "expected `Connection: close` on the answer");
        if (!yt_http_wait_closed(c, 3000, NULL))
            complain(errs, cap, nfail, t, "expected the server to close the connection; it "
                                          "stayed open 3 s");
    } else if (t->after == AFTER_OPEN && st == t->want) {
        /* Keep-alive: the same connection serves the next request. */
        int st2 = yt_http_send_request(c, "GET", "/healthz", NULL, NULL, 0);
        if (st2 == 0)
            st2 = yt_http_read(c, &r, 5000);
        if (st2 != 200)
            complain(errs, cap, nfail, t, "expected the connection to stay usable (GET /healthz "
                                          "-> 200), got %s", status_text(b, st2));
        yt_http_resp_free(&r);
    }
    yt_http_close(c);
    if (still_serving(detail, sizeof detail))
        return;
    int status = 0;
    if (waitpid(g.gw, &status, WNOHANG) == g.gw) {
        g.dead = 1;
        g.gw = -1;
        complain(errs, cap, nfail, t, "the gateway DIED on this request (%s %d); the log's tail "
                 "is on stderr", WIFEXITED(status) ? "exit" : "signal",
                 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
        yt_log_tail(g.env, "gateway");
        return;
    }
    complain(errs, cap, nfail, t, "afterwards a normal job on a fresh connection: expected 202, "
                                  "got %s", detail);
}

/* ---- tests ------------------------------------------------------------------------ */

static void test_hostile_requests_table(void **state)
{
    static char errs[16384];
    int nfail = 0;
    errs[0] = '\0';
    assert_true(NCASES >= 40);
    for (size_t i = 0; i < NCASES && !g.dead; i++)
        run_case(errs, sizeof errs, &nfail, &cases[i]);
    if (nfail)
        fail_msg("%d of the checks of %zu hostile requests failed:\n%s", nfail, NCASES, errs);
}

/* The slow client: one byte every 200 ms of a request that never ends. */
typedef struct {
    int status;
    long long first_byte_ms, answer_ms;
    int closed;
    char why[512];
    int shape_ok;
} slow_result_t;

static void *slow_client(void *arg)
{
    slow_result_t *res = arg;
    static const char req[] = "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                              "Content-Length: 15\r\n\r\n{\"type\":\"noop\"}";
    yt_http_conn_t *c = NULL;
    yt_http_resp_t r;
    res->status = YT_HTTP_ECONN;
    if (yt_http_connect(&c, g.port) != 0)
        return NULL;
    res->first_byte_ms = yt_now_ms();
    for (size_t i = 0; i < sizeof req - 1; i++) {
        if (yt_http_send_raw(c, req + i, 1) != 0)
            break;
        /* Waiting for an answer is the 200 ms pause. */
        int st = yt_http_read(c, &r, 200);
        if (st != YT_HTTP_TIMEOUT) {
            res->status = st;
            res->answer_ms = yt_now_ms();
            res->shape_ok = st < 400 || yt_http_check_error(&r, res->why, sizeof res->why) == 0;
            yt_http_resp_free(&r);
            break;
        }
    }
    if (res->status == YT_HTTP_ECONN) { /* sent it all: the answer is still due */
        res->status = yt_http_read(c, &r, 3000);
        res->answer_ms = yt_now_ms();
        yt_http_resp_free(&r);
    }
    res->closed = yt_http_wait_closed(c, 3000, NULL);
    yt_http_close(c);
    return NULL;
}

static void test_slow_client_gets_408_while_others_are_served(void **state)
{
    slow_result_t res;
    pthread_t th;
    char b[32];
    memset(&res, 0, sizeof res);
    if (g.dead)
        fail_msg("the gateway died in the previous test; nothing to test");
    assert_int_equal(pthread_create(&th, NULL, slow_client, &res), 0);
    long long start = yt_now_ms();
    int served = 0;
    long long worst = 0;
    /* Meanwhile: normal requests, each answered quickly. */
    while (yt_now_ms() - start < 1800) {
        char detail[400];
        long long t0 = yt_now_ms();
        if (!still_serving(detail, sizeof detail))
            fail_msg("a normal client while another trickles bytes: expected 202, got %s", detail);
        long long dt = yt_now_ms() - t0;
        worst = dt > worst ? dt : worst;
        served++;
        usleep(100 * 1000);
    }
    pthread_join(th, NULL);
    if (worst > 500)
        fail_msg("a normal client while another trickles bytes: expected answers within 500 ms, "
                 "the slowest took %lld ms", worst);
    assert_true(served >= 5);
    if (res.status != 408)
        fail_msg("a client sending one byte every 200 ms (read timeout %d ms): expected 408, got %s",
                 READ_TIMEOUT_MS, status_text(b, res.status));
    long long took = res.answer_ms - res.first_byte_ms;
    if (took < READ_TIMEOUT_MS - 100 || took > READ_TIMEOUT_MS + 1000)
        fail_msg("the slow client: expected its 408 about %d ms after its first byte, got %lld ms",
                 READ_TIMEOUT_MS, took);
    if (!res.shape_ok)
        fail_msg("the slow client's 408: %s", res.why);
    if (!res.closed)
        fail_msg("the slow client: expected the connection closed after the 408; it stayed open");
}

/* ---- setup ------------------------------------------------------------------------ */

static int setup(void **state)
{
    static char *const extra[] = {"YARD_AUTH_DISABLED=true", "YARD_RATE_PER_S=1000000",
                                  "YARD_RATE_BURST=1000000", "YARD_HTTP_READ_TIMEOUT_MS=1000",
                                  "YARD_LOG_LEVEL=warn", NULL};
    yard_log_init("test_gateway_hostile", YARD_LOG_ERROR);
    if (yt_env_create(&g.env, YT_NATS | YT_PG | YT_MIGRATE) != 0)
        return -1;
    g.gw = yt_gateway_start(g.env, &g.port, extra);
    return g.gw < 0 ? -1 : 0;
}

static int teardown(void **state)
{
    if (g.gw > 0) {
        if (yt_kill_wait(g.gw, SIGTERM, 10000) < 0)
            yt_kill_wait(g.gw, SIGKILL, 5000);
    }
    yt_env_destroy(g.env);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hostile_requests_table),
        cmocka_unit_test(test_slow_client_gets_408_while_others_are_served),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
