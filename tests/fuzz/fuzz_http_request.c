/*
 * fuzz_http_request.c - libFuzzer target for the HTTP server's request side.
 *
 * Input: byte 0 picks limits and behaviour, byte 1 the number of split
 * points, then one byte per split point (chunk lengths), then the bytes a
 * client sends. The same bytes go through two connections without sockets:
 *   A: fed in the chosen chunks; the handler answers some requests at once
 *      and keeps others to answer later in reverse order; writes are held
 *      back at times (a client that does not read);
 *   B: fed in one piece, every request answered at once.
 * Invariants (abort on violation):
 *   - what the handler sees is well-formed (terminators, no CR/LF in
 *     values, body within the limit, header lookup consistent);
 *   - A and B write the same handler answers, byte for byte (interim
 *     100 Continue aside), and both end in a server-made error or neither;
 *   - each output is a sequence of well-framed responses, handler answers
 *     in request order, a server-made error only as the last one;
 *   - every request handed to the handler is answered exactly once;
 *   - no leak or memory error (run with ASan; LeakSanitizer checks leaks).
 * Mode bits: 0x01 small limits, 0x20 small heads with bodies up to 8000
 * bytes (heap-grown; run with -max_len=12000), 0x02 answer late, 0x04 hold
 * writes, 0x08 answer kept requests after every chunk, 0x10 end with a
 * drain, 0x80 end with the read timer firing (else EOF). 0x40 instead drops
 * the client in the middle and answers the kept requests afterwards
 * (orphans), skipping the comparison.
 *
 * Build: see tests/fuzz/README.md.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_server.h"
#include "log.h"

#define FZ_MAX_PENDING 64
#define FZ_MAX_SEQ 4096

typedef struct {
    yard_http_req_t *req;
    unsigned seq;
} fz_pending_t;

typedef struct {
    fz_pending_t pending[FZ_MAX_PENDING];
    unsigned npending;
    unsigned seq; /* requests handed to the handler */
    unsigned answered;
    int async;
    size_t max_body;
    unsigned char head_only[FZ_MAX_SEQ];
} fz_t;

#define FZ_CHECK(cond)                                                                            \
    do {                                                                                          \
        if (!(cond)) {                                                                            \
            fprintf(stderr, "fuzz_http_request: invariant failed: %s (line %d)\n", #cond,         \
                    __LINE__);                                                                    \
            abort();                                                                              \
        }                                                                                         \
    } while (0)

static void fz_random(void *buf, size_t n)
{
    memset(buf, 0xa5, n);
}

/* What the handler may rely on. */
static void fz_check_request(const fz_t *f, yard_http_req_t *req)
{
    size_t plen, blen, qlen = 0, n = yard_http_req_header_count(req);
    const char *path = yard_http_req_path(req, &plen);
    const char *q = yard_http_req_query(req, &qlen);

    FZ_CHECK(path[plen] == '\0' && strlen(path) == plen);
    FZ_CHECK(!q || (q[qlen] == '\0' && strlen(q) == qlen));
    FZ_CHECK(!memchr(path, '?', plen));
    yard_http_req_body(req, &blen);
    FZ_CHECK(blen <= f->max_body);
    for (size_t i = 0; i < n; i++) {
        const char *name, *val, *first;
        size_t nl, vl, fl;
        FZ_CHECK(yard_http_req_header_at(req, i, &name, &nl, &val, &vl) == 0);
        FZ_CHECK(name[nl] == '\0' && val[vl] == '\0' && strlen(name) == nl);
        FZ_CHECK(!memchr(val, '\r', vl) && !memchr(val, '\n', vl));
        first = yard_http_req_header(req, name, &fl);
        FZ_CHECK(first && first[fl] == '\0');
    }
    FZ_CHECK(yard_http_req_header_at(req, n, &path, &plen, &path, &plen) < 0);
    const char *id = yard_http_req_id(req);
    FZ_CHECK(strlen(id) >= 1 && strlen(id) <= 64 && !strpbrk(id, " \"'\\\r\n"));
}

/* Answers with a digest of what was parsed, tagged with its sequence. */
static void fz_answer(fz_t *f, yard_http_req_t *req, unsigned seq)
{
    char hdr[48], body[256];
    size_t plen, blen, qlen = 0;
    const char *path = yard_http_req_path(req, &plen);
    const char *b = yard_http_req_body(req, &blen);
    uint32_t sum = 0;

    for (size_t i = 0; i < blen; i++)
        sum = sum * 31 + (unsigned char)b[i];
    if (!yard_http_req_query(req, &qlen))
        qlen = 0;
    snprintf(hdr, sizeof hdr, "X-Seq: %u\r\n", seq);
    int n = snprintf(body, sizeof body, "%s %.*s q=%zu h=%zu b=%zu/%08x", yard_http_req_method(req),
                     (int)(plen > 64 ? 64 : plen), path, qlen, yard_http_req_header_count(req),
                     blen, (unsigned)sum);
    f->answered++;
    if (seq % 5 == 3)
        FZ_CHECK(yard_http_respond_error_headers(req, 404, "not_found", "nope", hdr) == 0);
    else
        FZ_CHECK(yard_http_respond(req, 200, "text/plain", hdr, body, (size_t)n) == 0);
}

static void fz_handler(yard_http_req_t *req, void *ud)
{
    fz_t *f = ud;
    unsigned seq = f->seq++;

    fz_check_request(f, req);
    if (seq < FZ_MAX_SEQ)
        f->head_only[seq] = strcmp(yard_http_req_method(req), "HEAD") == 0;
    if (f->async && seq % 3 != 1 && f->npending < FZ_MAX_PENDING) {
        f->pending[f->npending++] = (fz_pending_t){req, seq};
        return;
    }
    fz_answer(f, req, seq);
}

/* Answers every kept request, newest first (answers arriving out of order). */
static void fz_answer_pending(fz_t *f)
{
    while (f->npending) {
        fz_pending_t p = f->pending[--f->npending];
        fz_answer(f, p.req, p.seq);
    }
}

/* Removes interim "100 Continue" responses from out (in place). */
static size_t fz_strip_continue(char *out, size_t len)
{
    static const char c100[] = "HTTP/1.1 100 Continue\r\n\r\n";
    const size_t cl = sizeof c100 - 1;
    size_t r = 0, w = 0;

    while (r < len) {
        if (len - r >= cl && memcmp(out + r, c100, cl) == 0) {
            r += cl;
            continue;
        }
        out[w++] = out[r++];
    }
    return w;
}

static const char *fz_find(const char *hay, size_t n, const char *needle)
{
    return memmem(hay, n, needle, strlen(needle));
}

/* Walks out as well-framed responses: handler answers (X-Seq) in request
 * order, then at most one answer made by the server itself, which ends the
 * connection. Returns the number of handler answers; *err_at gets the
 * offset of the server's answer, or len when there is none. */
static unsigned fz_check_output(const fz_t *f, const char *out, size_t len, size_t *err_at)
{
    size_t pos = 0;
    unsigned expect = 0;

    *err_at = len;
    while (pos < len) {
        const char *r = out + pos;
        size_t rest = len - pos;
        FZ_CHECK(rest > 13 && memcmp(r, "HTTP/1.1 ", 9) == 0);
        int status = atoi(r + 9);
        FZ_CHECK(status >= 200 && status <= 599);
        const char *end = fz_find(r, rest, "\r\n\r\n");
        FZ_CHECK(end);
        size_t head = (size_t)(end - r) + 4;
        const char *cl = fz_find(r, head, "\r\nContent-Length: ");
        FZ_CHECK(cl);
        size_t clen = strtoul(cl + 18, NULL, 10);
        FZ_CHECK(fz_find(r, head, "\r\nX-Request-Id: "));
        const char *seq = fz_find(r, head, "\r\nX-Seq: ");
        if (!seq) {
            FZ_CHECK(status >= 400);
            FZ_CHECK(fz_find(r, head, "\r\nConnection: close\r\n"));
            FZ_CHECK(rest - head == clen || rest == head);
            *err_at = pos;
            break;
        }
        unsigned s = (unsigned)strtoul(seq + 9, NULL, 10);
        FZ_CHECK(s == expect);
        expect++;
        int head_only = s < FZ_MAX_SEQ && f->head_only[s];
        pos += head + (head_only ? 0 : clen);
        FZ_CHECK(pos <= len);
    }
    FZ_CHECK(expect == f->seq);
    return expect;
}

static yard_http_conn_t *fz_conn(fz_t *f, uint8_t mode)
{
    yard_http_conn_t *c = NULL;
    yard_http_options_t o = {0};

    if (mode & 0x21) { /* small heads: small request arenas */
        o.limits.max_header_bytes = 256;
        o.limits.max_headers = 6;
        /* 0x20: bodies beyond the arena, grown on the heap (use -max_len) */
        o.limits.max_body = (mode & 0x20) ? 8000 : 100;
    }
    o.handler = fz_handler;
    o.handler_ud = f;
    o.random = fz_random;
    f->max_body = o.limits.max_body ? o.limits.max_body : 1024 * 1024;
    FZ_CHECK(yard_http_conn_create(&c, &o) == 0);
    return c;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    yard_log_init("fuzz", YARD_LOG_OFF); /* the access log would dominate */
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static fz_t fa, fb;
    if (size < 2)
        return 0;
    uint8_t mode = data[0];
    size_t nsplit = data[1] & 31;
    if (size < 2 + nsplit)
        return 0;
    const uint8_t *splits = data + 2;
    const char *in = (const char *)data + 2 + nsplit;
    size_t len = size - 2 - nsplit;

    memset(&fa, 0, sizeof fa);
    memset(&fb, 0, sizeof fb);
    fa.async = (mode & 2) != 0;
    yard_http_conn_t *a = fz_conn(&fa, mode);
    yard_http_conn_t *b = fz_conn(&fb, mode);

    /* A: chunks, kept answers, held writes. */
    size_t pos = 0;
    for (size_t i = 0; pos < len; i++) {
        size_t chunk = i < nsplit ? (size_t)splits[i] + 1 : len - pos;
        if (chunk > len - pos)
            chunk = len - pos;
        if (mode & 4)
            yard_http_conn_hold_writes(a, (int)(i & 1));
        if (yard_http_conn_feed(a, in + pos, chunk) != 0)
            break;
        pos += chunk;
        if (mode & 0x40 && i == nsplit / 2)
            break; /* the client vanishes */
        if (i & 1 || mode & 8)
            fz_answer_pending(&fa);
        if (!(i & 1))
            yard_http_conn_release_writes(a);
    }
    if (mode & 0x40) {
        yard_http_conn_destroy(a);
        fz_answer_pending(&fa); /* orphans: dropped and freed */
        FZ_CHECK(fa.answered == fa.seq);
        yard_http_conn_destroy(b);
        return 0;
    }
    yard_http_conn_release_writes(a);
    while (fa.npending) {
        fz_answer_pending(&fa); /* may let paused requests through */
        yard_http_conn_release_writes(a);
    }

    /* B: one piece, answers at once. */
    if (len)
        yard_http_conn_feed(b, in, len);

    if (mode & 0x80) { /* the read timer fires: 408 for a partial request */
        yard_http_conn_timeout(a);
        yard_http_conn_timeout(b);
    } else if (mode & 0x10) {
        yard_http_conn_drain(a);
        yard_http_conn_drain(b);
    } else {
        yard_http_conn_eof(a);
        yard_http_conn_eof(b);
    }
    fz_answer_pending(&fa);
    yard_http_conn_release_writes(a);
    FZ_CHECK(fa.answered == fa.seq && fb.answered == fb.seq);
    FZ_CHECK(yard_http_conn_pending(a) == 0 && yard_http_conn_pending(b) == 0);

    size_t la, lb;
    const char *oa = yard_http_conn_output(a, &la);
    const char *ob = yard_http_conn_output(b, &lb);
    char *ca = malloc(la + 1), *cb = malloc(lb + 1);
    FZ_CHECK(ca && cb);
    memcpy(ca, oa, la + 1);
    memcpy(cb, ob, lb + 1);
    la = fz_strip_continue(ca, la);
    lb = fz_strip_continue(cb, lb);
    /* Handler answers match byte for byte. A final error made by the server
     * may differ in status and message: which check trips first can depend
     * on where http-parser's callbacks fall. Both runs must end in one. */
    size_t ea, eb;
    unsigned na = fz_check_output(&fa, ca, la, &ea);
    unsigned nb = fz_check_output(&fb, cb, lb, &eb);
    if (na != nb || ea != eb || memcmp(ca, cb, ea) != 0 || (ea == la) != (eb == lb)) {
        fprintf(stderr, "split output (%zu bytes):\n%.*s\n--- whole output (%zu bytes):\n%.*s\n",
                la, (int)la, ca, lb, (int)lb, cb);
        FZ_CHECK(!"outputs differ");
    }
    free(ca);
    free(cb);
    yard_http_conn_destroy(a);
    yard_http_conn_destroy(b);
    return 0;
}
