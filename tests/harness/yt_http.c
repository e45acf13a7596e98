/*
 * yt_http.c - the tests' blocking HTTP/1.1 client and gateway launcher
 * (see yt_http.h).
 *
 * A connection keeps the bytes it has read and not yet handed out, so a
 * response is cut out of the stream exactly (keep-alive, pipelining) and a
 * close by the server is told apart from a timeout. Everything waits with
 * poll() against a deadline; nothing blocks without one.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "yt_http.h"

#define YT_HTTP_HEAD_MAX (64 * 1024)
#define YT_GATEWAY_WAIT_MS 20000
#define YT_GATEWAY_TRIES 3

struct yt_http_conn {
    int fd;
    int eof; /* the server closed or reset: nothing more will come */
    char *buf;
    size_t len, cap;
};

static void yt_sleep(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- connection ------------------------------------------------------------ */

int yt_http_connect(yt_http_conn_t **out, int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return YT_HTTP_ECONN;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return YT_HTTP_ECONN;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    yt_http_conn_t *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return YT_HTTP_ECONN;
    }
    c->fd = fd;
    *out = c;
    return 0;
}

void yt_http_close(yt_http_conn_t *c)
{
    if (!c)
        return;
    close(c->fd);
    free(c->buf);
    free(c);
}

int yt_http_send_raw(yt_http_conn_t *c, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return YT_HTTP_ECONN;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

void yt_http_shutdown_write(yt_http_conn_t *c)
{
    shutdown(c->fd, SHUT_WR);
}

int yt_http_send_request(yt_http_conn_t *c, const char *method, const char *path,
                         const char *const headers[], const void *body, size_t len)
{
    size_t cap = strlen(method) + strlen(path) + 128 + (body ? len : 0);
    for (size_t i = 0; headers && headers[i]; i++)
        cap += strlen(headers[i]) + 2;
    char *req = malloc(cap);
    if (!req)
        return YT_HTTP_ECONN;
    size_t n = (size_t)snprintf(req, cap, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n", method, path);
    for (size_t i = 0; headers && headers[i]; i++)
        n += (size_t)snprintf(req + n, cap - n, "%s\r\n", headers[i]);
    if (body)
        n += (size_t)snprintf(req + n, cap - n, "Content-Length: %zu\r\n", len);
    n += (size_t)snprintf(req + n, cap - n, "\r\n");
    if (body && len) {
        memcpy(req + n, body, len);
        n += len;
    }
    int rc = yt_http_send_raw(c, req, n);
    free(req);
    return rc;
}

/* Reads what is there (waiting until deadline for the first byte).
 * Returns 1 when bytes came, 0 on EOF/reset (c->eof set), -1 on timeout. */
static int yt_fill(yt_http_conn_t *c, long long deadline)
{
    if (c->eof)
        return 0;
    for (;;) {
        long long left = deadline - yt_now_ms();
        if (left <= 0)
            return -1;
        struct pollfd p = {c->fd, POLLIN, 0};
        int r = poll(&p, 1, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        if (c->cap - c->len < 16384) {
            size_t cap = c->cap ? c->cap * 2 : 65536;
            char *b = realloc(c->buf, cap + 1);
            if (!b)
                return -1;
            c->buf = b;
            c->cap = cap;
        }
        ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0) {
            c->eof = 1;
            return 0;
        }
        c->len += (size_t)n;
        c->buf[c->len] = '\0';
        return 1;
    }
}

static void yt_consume(yt_http_conn_t *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

/* ---- responses --------------------------------------------------------------- */

void yt_http_resp_free(yt_http_resp_t *resp)
{
    free(resp->head);
    free(resp->body);
    memset(resp, 0, sizeof *resp);
}

const char *yt_http_header(const yt_http_resp_t *resp, const char *name)
{
    for (size_t i = 0; i < resp->nheaders; i++) {
        if (strcasecmp(resp->headers[i].name, name) == 0)
            return resp->headers[i].value;
    }
    return NULL;
}

const char *yt_http_body_excerpt(const yt_http_resp_t *resp)
{
    static const char hex[] = "0123456789abcdef";
    static char out[1300];
    size_t n = 0;
    if (!resp->body)
        return "(no body)";
    for (size_t i = 0; i < resp->body_len && i < 300; i++) {
        unsigned char ch = (unsigned char)resp->body[i];
        if (ch >= 0x80) { /* shown, not sent to the terminal raw */
            out[n++] = '\\';
            out[n++] = 'x';
            out[n++] = hex[ch >> 4];
            out[n++] = hex[ch & 15];
        } else {
            out[n++] = ch < 0x20 || ch == 0x7f ? '.' : (char)ch;
        }
    }
    if (resp->body_len > 300) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = '\0';
    return out;
}

/* Splits the head (NUL-terminated copy, "\r\n\r\n" removed) into status and
 * headers. Returns 0 or YT_HTTP_EPROTO. */
static int yt_parse_head(yt_http_resp_t *r)
{
    char *line = r->head, *eol = strstr(line, "\r\n");
    if (eol)
        *eol = '\0';
    if (strncmp(line, "HTTP/1.", 7) != 0 || !isdigit((unsigned char)line[7]) || line[8] != ' ' ||
        !isdigit((unsigned char)line[9]) || !isdigit((unsigned char)line[10]) ||
        !isdigit((unsigned char)line[11]) || (line[12] != ' ' && line[12] != '\0'))
        return YT_HTTP_EPROTO;
    r->status = atoi(line + 9);
    r->reason = line[12] ? line + 13 : "";
    while (eol) {
        line = eol + 2;
        eol = strstr(line, "\r\n");
        if (eol)
            *eol = '\0';
        if (!*line)
            continue;
        char *colon = strchr(line, ':');
        if (!colon || r->nheaders >= YT_HTTP_MAX_HEADERS)
            return YT_HTTP_EPROTO;
        *colon = '\0';
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        size_t vl = strlen(v);
        while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
            v[--vl] = '\0';
        r->headers[r->nheaders].name = line;
        r->headers[r->nheaders].value = v;
        r->nheaders++;
    }
    return 0;
}

/* Decodes a chunked body at p (n bytes). Returns the bytes it spans and
 * fills *out and *out_len (malloc'd), 0 when incomplete, -1 when malformed. */
static long yt_dechunk(const char *p, size_t n, char **out, size_t *out_len)
{
    size_t i = 0, blen = 0;
    char *body = malloc(1);
    while (body) {
        const char *eol = memmem(p + i, n - i, "\r\n", 2);
        if (!eol)
            break;
        char *end;
        unsigned long sz = strtoul(p + i, &end, 16);
        if (end == p + i || sz > YT_HTTP_MAX_RESPONSE) {
            free(body);
            return -1;
        }
        i = (size_t)(eol - p) + 2;
        if (sz == 0) { /* trailers end with an empty line */
            const char *fin = memmem(p + i - 2, n - i + 2, "\r\n\r\n", 4);
            if (!fin)
                break;
            *out = body;
            *out_len = blen;
            body[blen] = '\0';
            return (long)((size_t)(fin - p) + 4);
        }
        if (n - i < sz + 2)
            break;
        char *b = realloc(body, blen + sz + 1);
        if (!b)
            break;
        body = b;
        memcpy(body + blen, p + i, sz);
        blen += sz;
        i += sz + 2;
    }
    free(body);
    return 0;
}

/* Tries to cut one complete response out of c's buffer. Returns its status,
 * 0 when more bytes are needed, or YT_HTTP_EPROTO. */
static int yt_try_parse(yt_http_conn_t *c, yt_http_resp_t *r)
{
    const char *end = c->len ? memmem(c->buf, c->len, "\r\n\r\n", 4) : NULL;
    if (!end)
        return c->len > YT_HTTP_HEAD_MAX ? YT_HTTP_EPROTO : 0;
    size_t head_len = (size_t)(end - c->buf), body_off = head_len + 4;
    memset(r, 0, sizeof *r);
    if (!(r->head = strndup(c->buf, head_len)))
        return YT_HTTP_EPROTO;
    int rc = yt_parse_head(r);
    if (rc < 0)
        goto fail;
    if (r->status < 200) { /* interim: drop it and go on */
        yt_consume(c, body_off);
        yt_http_resp_free(r);
        return yt_try_parse(c, r);
    }
    const char *cl = yt_http_header(r, "Content-Length");
    const char *te = yt_http_header(r, "Transfer-Encoding");
    const char *conn = yt_http_header(r, "Connection");
    r->will_close = conn && strcasecmp(conn, "close") == 0;
    if (r->status == 204 || r->status == 304) {
        r->body = calloc(1, 1);
        yt_consume(c, body_off);
        return r->status;
    }
    if (te && strcasecmp(te, "chunked") == 0) {
        long used = yt_dechunk(c->buf + body_off, c->len - body_off, &r->body, &r->body_len);
        if (used < 0) {
            rc = YT_HTTP_EPROTO;
            goto fail;
        }
        if (used == 0)
            goto more;
        yt_consume(c, body_off + (size_t)used);
        return r->status;
    }
    if (cl) {
        char *e;
        unsigned long long n = strtoull(cl, &e, 10);
        if (e == cl || *e || n > YT_HTTP_MAX_RESPONSE) {
            rc = YT_HTTP_EPROTO;
            goto fail;
        }
        if (c->len - body_off < n)
            goto more;
        r->body = malloc((size_t)n + 1);
        memcpy(r->body, c->buf + body_off, (size_t)n);
        r->body[n] = '\0';
        r->body_len = (size_t)n;
        yt_consume(c, body_off + (size_t)n);
        return r->status;
    }
    /* No framing: the body runs to the close. */
    if (!c->eof)
        goto more;
    r->body_len = c->len - body_off;
    r->body = malloc(r->body_len + 1);
    memcpy(r->body, c->buf + body_off, r->body_len);
    r->body[r->body_len] = '\0';
    r->will_close = 1;
    c->len = 0;
    return r->status;
more:
    if (c->len > YT_HTTP_MAX_RESPONSE + YT_HTTP_HEAD_MAX) {
        rc = YT_HTTP_EPROTO;
        goto fail;
    }
    yt_http_resp_free(r);
    return 0;
fail:
    yt_http_resp_free(r);
    return rc;
}

int yt_http_read(yt_http_conn_t *c, yt_http_resp_t *resp, int timeout_ms)
{
    long long deadline = yt_now_ms() + timeout_ms;
    memset(resp, 0, sizeof *resp);
    for (;;) {
        int rc = yt_try_parse(c, resp);
        if (rc != 0) {
            if (rc > 0 && c->eof && c->len == 0)
                resp->will_close = 1;
            return rc;
        }
        int got = yt_fill(c, deadline);
        if (got < 0)
            return YT_HTTP_TIMEOUT;
        if (got == 0) {
            rc = yt_try_parse(c, resp); /* a body framed by the close */
            if (rc > 0)
                resp->will_close = 1;
            return rc != 0 ? rc : YT_HTTP_CLOSED;
        }
    }
}

int yt_http_wait_closed(yt_http_conn_t *c, int timeout_ms, size_t *extra)
{
    long long deadline = yt_now_ms() + timeout_ms;
    size_t seen = c->len;
    c->len = 0;
    for (;;) {
        int got = yt_fill(c, deadline);
        seen += c->len;
        c->len = 0;
        if (got == 0) {
            if (extra)
                *extra = seen;
            return 1;
        }
        if (got < 0)
            return 0;
    }
}

int yt_http_check_error(const yt_http_resp_t *resp, char *why, size_t cap)
{
    json_error_t jerr;
    const char *ct = yt_http_header(resp, "Content-Type");
    const char *rid = yt_http_header(resp, "X-Request-Id");
    json_t *doc = resp->body ? json_loadb(resp->body, resp->body_len, 0, &jerr) : NULL;
    json_t *e = json_object_get(doc, "error");
    const char *fields[] = {"code", "message", "request_id"};
    int rc = -1;
    if (!doc) {
        snprintf(why, cap, "the body is not JSON (%s): %s", resp->body ? jerr.text : "none",
                 yt_http_body_excerpt(resp));
        return -1;
    }
    if (!json_is_object(e) || json_object_size(doc) != 1) {
        snprintf(why, cap, "expected {\"error\":{...}} alone, got %s", yt_http_body_excerpt(resp));
        goto out;
    }
    for (int i = 0; i < 3; i++) {
        json_t *v = json_object_get(e, fields[i]);
        if (!json_is_string(v) || json_string_length(v) == 0) {
            snprintf(why, cap, "expected a non-empty string error.%s, got %s", fields[i],
                     yt_http_body_excerpt(resp));
            goto out;
        }
    }
    if (!rid || strcmp(rid, json_string_value(json_object_get(e, "request_id"))) != 0) {
        snprintf(why, cap, "expected error.request_id to equal X-Request-Id (%s), got %s",
                 rid ? rid : "absent", yt_http_body_excerpt(resp));
        goto out;
    }
    if (!ct || strncasecmp(ct, "application/json", 16) != 0) {
        snprintf(why, cap, "expected Content-Type application/json, got %s", ct ? ct : "none");
        goto out;
    }
    rc = 0;
out:
    json_decref(doc);
    return rc;
}

const char *yt_http_error_code(const yt_http_resp_t *resp)
{
    static char code[64];
    json_t *doc = resp->body ? json_loadb(resp->body, resp->body_len, 0, NULL) : NULL;
    const char *c = json_string_value(json_object_get(json_object_get(doc, "error"), "code"));
    snprintf(code, sizeof code, "%s", c ? c : "");
    json_decref(doc);
    return code;
}

int yt_http_request(yt_http_resp_t *resp, int port, const char *method, const char *path,
                    const char *const headers[], const void *body, size_t len)
{
    yt_http_conn_t *c = NULL;
    int rc;
    memset(resp, 0, sizeof *resp);
    if ((rc = yt_http_connect(&c, port)) < 0)
        return rc;
    rc = yt_http_send_request(c, method, path, headers, body, len);
    if (rc == 0)
        rc = yt_http_read(c, resp, 10000);
    yt_http_close(c);
    return rc;
}

/* ---- the gateway ------------------------------------------------------------ */

pid_t yt_gateway_start(yt_env_t *env, int *port_out, char *const extra_env[])
{
    char bin[700], port_var[32], nats_var[300], pg_var[600];
    char *envs[64];
    size_t n = 0;
    snprintf(bin, sizeof bin, "%s/yard-gateway", yt_bin_dir());
    if (access(bin, X_OK) != 0) {
        fprintf(stderr, "yt_http: expected the gateway binary at %s (make all, or set YARD_BIN)\n",
                bin);
        return -1;
    }
    snprintf(nats_var, sizeof nats_var, "YARD_NATS_URL=%s", env->nats_url);
    snprintf(pg_var, sizeof pg_var, "YARD_PG_DSN=%s", env->pg_dsn);
    envs[n++] = "YARD_HTTP_ADDR=127.0.0.1";
    envs[n++] = port_var;
    if (env->nats_url[0])
        envs[n++] = nats_var;
    if (env->pg_dsn[0])
        envs[n++] = pg_var;
    for (size_t i = 0; extra_env && extra_env[i] && n < 63; i++)
        envs[n++] = extra_env[i];
    envs[n] = NULL;
    char *argv[] = {bin, NULL};

    /* A port the caller gives in extra_env wins (a gateway restarted on its port). */
    int fixed_port = 0;
    for (size_t i = 0; extra_env && extra_env[i]; i++)
        if (strncmp(extra_env[i], "YARD_HTTP_PORT=", 15) == 0)
            fixed_port = atoi(extra_env[i] + 15);
    for (int attempt = 0; attempt < YT_GATEWAY_TRIES; attempt++) {
        int port = fixed_port ? fixed_port : yt_free_port();
        snprintf(port_var, sizeof port_var, "YARD_HTTP_PORT=%d", port);
        pid_t pid = yt_spawn(env, "gateway", argv, envs);
        if (pid < 0)
            return -1;
        long long deadline = yt_now_ms() + YT_GATEWAY_WAIT_MS;
        int exited = 0, status = 0;
        while (yt_now_ms() < deadline) {
            if (waitpid(pid, &status, WNOHANG) == pid) {
                exited = 1;
                break;
            }
            yt_http_resp_t r;
            int st = yt_http_request(&r, port, "GET", "/healthz", NULL, NULL, 0);
            yt_http_resp_free(&r);
            if (st == 200) {
                *port_out = port;
                return pid;
            }
            yt_sleep(50);
        }
        if (!exited) {
            fprintf(stderr, "yt_http: the gateway did not answer /healthz on port %d within %d "
                            "ms\n", port, YT_GATEWAY_WAIT_MS);
            yt_kill_wait(pid, SIGKILL, 5000);
            break;
        }
        fprintf(stderr, "yt_http: the gateway exited during start (status %d) on port %d%s\n",
                WIFEXITED(status) ? WEXITSTATUS(status) : -1, port,
                attempt + 1 < YT_GATEWAY_TRIES ? "; retrying on another port" : "");
    }
    yt_log_tail(env, "gateway");
    return -1;
}

int yt_http_status(int port, const char *path)
{
    yt_http_resp_t r;
    int st = yt_http_request(&r, port, "GET", path, NULL, NULL, 0);
    yt_http_resp_free(&r);
    return st;
}
