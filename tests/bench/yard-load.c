/*
 * yard-load.c - an HTTP/1.1 load generator for measuring the gateway.
 *
 * One libuv loop drives N keep-alive connections that POST the same request
 * (one job, or a batch of N copies) to one URL. Closed loop (the default):
 * each connection sends its next request as soon as the previous response
 * arrives. Open loop (--rate R): requests are due at fixed intervals of 1/R s
 * across all connections, a due request waits for a free connection, and its
 * latency runs from the time it was due, so a stalled server cannot hide its
 * stall (no coordinated omission). A timerfd paces the schedule to the
 * microsecond, since libuv's own timers tick in milliseconds.
 *
 * Figures cover the requests started in [warmup, warmup + duration); the
 * ones in flight at the end are waited for (up to --timeout). With
 * --requests N (closed loop) it sends exactly N requests instead, all of them
 * measured, and the window runs from the start to the last response. Latencies go
 * into a fixed-size log-linear histogram (HdrHistogram's layout, 3
 * significant digits), so the hot path allocates nothing. The program prints
 * one report at the end and exits 1 when no request got a 2xx answer.
 *
 * Standalone on purpose: it links libuv only, so it measures the gateway and
 * never shares its bugs.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#define RBUF_SIZE 16384           /* per connection: the largest response head */
#define HIST_SUB_BITS 10          /* 1024 sub-buckets per power of two: ~0.1% */
#define HIST_MAX_NS ((1ULL << 37) - 1) /* ~137 s, the largest latency kept exactly */
#define HIST_BUCKETS (37 - HIST_SUB_BITS + 1)
#define HIST_SIZE ((HIST_BUCKETS + 1) << HIST_SUB_BITS)
#define RETRY_MS 100              /* wait before reconnecting after an error */
#define HOUSEKEEP_MS 50           /* timeout checks and the end of the drain */
#define MIN_TICK_NS 20000ULL      /* open loop: at most 50,000 wake-ups a second */

/* ---- options ---- */

typedef struct {
    const char *url;
    long connections;
    double duration_s;
    double rate;       /* requests/s in total; 0 = closed loop */
    long batch;        /* 0 = single job; N = {"jobs":[N copies]} */
    long requests;     /* 0 = run for the duration; N = send N requests, then stop */
    const char *api_key;
    const char *body;
    double warmup_s;
    long timeout_ms;
    int json;
} opts_t;

static const opts_t opts_default = {
    "http://127.0.0.1:8080/v1/jobs", 64, 10, 0, 0, 0, NULL, "{\"type\":\"noop\"}", 2, 5000, 0,
};

/* ---- latency histogram ---- */

typedef struct {
    uint64_t counts[HIST_SIZE];
    uint64_t total, max;
    double sum;
} hist_t;

/* Index of v's bucket: exact below 2048 ns, then 1024 steps per power of two. */
static size_t hist_index(uint64_t v)
{
    unsigned b = 63 - (unsigned)__builtin_clzll(v | ((2ULL << HIST_SUB_BITS) - 1)) - HIST_SUB_BITS;
    return ((size_t)b << HIST_SUB_BITS) + (size_t)(v >> b);
}

/* The highest value that falls into bucket idx. */
static uint64_t hist_upper(size_t idx)
{
    size_t half = 1u << HIST_SUB_BITS;
    unsigned b = idx < 2 * half ? 0 : (unsigned)(idx >> HIST_SUB_BITS) - 1;
    uint64_t sub = idx - ((size_t)b << HIST_SUB_BITS);
    return ((sub + 1) << b) - 1;
}

static void hist_record(hist_t *h, uint64_t ns)
{
    if (ns > HIST_MAX_NS)
        ns = HIST_MAX_NS;
    h->counts[hist_index(ns)]++;
    h->total++;
    h->sum += (double)ns;
    if (ns > h->max)
        h->max = ns;
}

/* The value at percentile p (0..100], in ns; 0 for an empty histogram. */
static uint64_t hist_percentile(const hist_t *h, double p)
{
    uint64_t want = (uint64_t)ceil(p / 100.0 * (double)h->total), seen = 0;
    if (h->total == 0)
        return 0;
    if (want == 0)
        want = 1;
    for (size_t i = 0; i < HIST_SIZE; i++) {
        seen += h->counts[i];
        if (seen >= want) {
            uint64_t v = hist_upper(i);
            return v < h->max ? v : h->max;
        }
    }
    return h->max;
}

/* ---- state ---- */

typedef struct load load_t;

typedef enum { C_CLOSED, C_CONNECTING, C_IDLE, C_BUSY, C_CLOSING } conn_state_t;
typedef enum { P_HEAD, P_BODY } parse_phase_t;

typedef struct {
    uv_tcp_t tcp;        /* handles embedded, freed with the connection array */
    uv_timer_t retry;
    uv_connect_t connect_req;
    uv_write_t write_req;
    load_t *load;
    conn_state_t state;
    int retry_after_close; /* reconnect after the close: 0 now, else RETRY_MS */
    int writing;         /* write_req is in flight */
    int idle_after_write; /* the response came before the write finished */
    uint64_t start_ns;   /* the request's intended (open loop) or actual send time */
    int measured;        /* started inside the measured window */
    parse_phase_t phase;
    uint64_t body_left;
    int status;
    int close_after;     /* the server said Connection: close */
    size_t rlen;
    char rbuf[RBUF_SIZE];
} conn_t;

typedef struct {
    hist_t hist;
    uint64_t s2xx, s4xx, s5xx, sother, errors, timeouts;
} stats_t;

struct load {
    opts_t opt;
    uv_loop_t *loop;
    struct sockaddr_storage addr;
    char host[256];      /* for the Host header */
    char port[8];
    char path[2048];
    char *request;       /* the one request every connection sends */
    size_t request_len;
    size_t jobs_per_request;
    conn_t *conns;
    conn_t **idle;       /* open loop: connections free to send */
    size_t nidle;
    uint64_t t_start, t_warm, t_end;
    uint64_t t_last_response; /* --requests: the window ends here */
    long long t_start_unix_ms; /* t_start on the wall clock, for matching server timestamps */
    uint64_t sent;       /* requests sent, warmup included */
    uint64_t all_2xx;    /* 2xx responses, warmup included (jobs accepted in all) */
    int sending;         /* 0 once the measured window is over */
    int finishing;       /* handles are being closed */
    uint64_t interval_ns; /* open loop */
    uint64_t next_k;     /* open loop: index of the next request to send */
    int tfd;
    uv_poll_t tick;
    uv_timer_t end_timer, housekeep;
    uv_signal_t sigint;
    size_t inflight_measured;
    uint64_t unsent;     /* open loop: requests due in the window but never sent */
    stats_t st;
};

static void conn_connect(conn_t *c);
static void conn_idle(conn_t *c);
static void conn_fail(conn_t *c, int timed_out);
static void pump(load_t *l, uint64_t now);
static void finish(load_t *l);
static void stop_sending(load_t *l, uint64_t now);

/* ---- request ---- */

/* Appends formatted text to a growing buffer; exits on allocation failure
 * (the tool cannot do anything useful without its request). */
static void sb_printf(char **buf, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void sb_printf(char **buf, size_t *len, const char *fmt, ...)
{
    va_list ap;
    int n;
    char *grown;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    grown = n < 0 ? NULL : realloc(*buf, *len + (size_t)n + 1);
    if (!grown) {
        fprintf(stderr, "yard-load: out of memory\n");
        exit(2);
    }
    *buf = grown;
    va_start(ap, fmt);
    vsnprintf(*buf + *len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    *len += (size_t)n;
}

static void build_request(load_t *l)
{
    char *body = NULL, *req = NULL;
    size_t blen = 0, rlen = 0;

    if (l->opt.batch > 0) {
        sb_printf(&body, &blen, "{\"jobs\":[");
        for (long i = 0; i < l->opt.batch; i++)
            sb_printf(&body, &blen, "%s%s", i ? "," : "", l->opt.body);
        sb_printf(&body, &blen, "]}");
    } else {
        sb_printf(&body, &blen, "%s", l->opt.body);
    }
    /* An IPv6 literal goes back into brackets; port 80 stays implicit. */
    sb_printf(&req, &rlen, "POST %s HTTP/1.1\r\nHost: ", l->path);
    sb_printf(&req, &rlen, strchr(l->host, ':') ? "[%s]" : "%s", l->host);
    if (strcmp(l->port, "80") != 0)
        sb_printf(&req, &rlen, ":%s", l->port);
    sb_printf(&req, &rlen,
              "\r\nUser-Agent: yard-load\r\nContent-Type: application/json\r\n"
              "Content-Length: %zu\r\n",
              blen);
    if (l->opt.api_key)
        sb_printf(&req, &rlen, "Authorization: Bearer %s\r\n", l->opt.api_key);
    sb_printf(&req, &rlen, "\r\n%s", body);
    free(body);
    l->request = req;
    l->request_len = rlen;
    l->jobs_per_request = l->opt.batch > 0 ? (size_t)l->opt.batch : 1;
}

/* Splits http://host[:port][/path] (host may be [v6]) and resolves host.
 * Returns 0, or prints why and returns -1. */
static int parse_url(load_t *l, const char *url)
{
    const char *p, *host_end, *path;
    struct addrinfo hints, *res = NULL;
    size_t hlen;
    int rc;

    if (strncmp(url, "http://", 7) != 0) {
        fprintf(stderr, "yard-load: only http:// URLs are supported: %s\n", url);
        return -1;
    }
    p = url + 7;
    path = p + strcspn(p, "/");
    if (*p == '[') {
        host_end = memchr(p, ']', (size_t)(path - p));
        if (!host_end) {
            fprintf(stderr, "yard-load: bad IPv6 address in %s\n", url);
            return -1;
        }
        hlen = (size_t)(host_end - p - 1);
        if (hlen >= sizeof l->host)
            return -1;
        memcpy(l->host, p + 1, hlen);
        l->host[hlen] = '\0';
        host_end++;
    } else {
        host_end = p + strcspn(p, ":/");
        hlen = (size_t)(host_end - p);
        if (hlen == 0 || hlen >= sizeof l->host) {
            fprintf(stderr, "yard-load: bad host in %s\n", url);
            return -1;
        }
        memcpy(l->host, p, hlen);
        l->host[hlen] = '\0';
    }
    if (*host_end == ':') {
        size_t plen = (size_t)(path - host_end - 1);
        if (plen == 0 || plen >= sizeof l->port) {
            fprintf(stderr, "yard-load: bad port in %s\n", url);
            return -1;
        }
        memcpy(l->port, host_end + 1, plen);
        l->port[plen] = '\0';
    } else {
        snprintf(l->port, sizeof l->port, "80");
    }
    snprintf(l->path, sizeof l->path, "%s", *path ? path : "/");

    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    rc = getaddrinfo(l->host, l->port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "yard-load: cannot resolve %s:%s: %s\n", l->host, l->port,
                gai_strerror(rc));
        return -1;
    }
    memcpy(&l->addr, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

/* ---- response parsing ---- */

/* Compares a header name case-insensitively; sets *value past ':' and blanks. */
static int header_is(const char *line, size_t n, const char *name, const char **value)
{
    size_t nl = strlen(name);
    if (n <= nl || line[nl] != ':' || strncasecmp(line, name, nl) != 0)
        return 0;
    *value = line + nl + 1;
    while (*value < line + n && (**value == ' ' || **value == '\t'))
        (*value)++;
    return 1;
}

/* Parses a response head of hlen bytes (ending in CRLFCRLF). Sets the status,
 * body length and close flag. Returns 0, or -1 for anything this tool cannot
 * follow on a keep-alive connection (chunked or unframed bodies, bad syntax). */
static int parse_head(conn_t *c, const char *head, size_t hlen)
{
    const char *line = head, *end = head + hlen, *value;
    int have_length = 0, http10 = 0;

    if (hlen < 12 || strncmp(head, "HTTP/1.", 7) != 0 || !isdigit((unsigned char)head[9]) ||
        !isdigit((unsigned char)head[10]) || !isdigit((unsigned char)head[11]))
        return -1;
    http10 = head[7] == '0';
    c->status = (head[9] - '0') * 100 + (head[10] - '0') * 10 + (head[11] - '0');
    c->body_left = 0;
    c->close_after = http10;
    while (line < end) {
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        size_t n = (size_t)((eol ? eol : end) - line);
        if (n > 0 && line[n - 1] == '\r')
            n--;
        if (header_is(line, n, "Content-Length", &value)) {
            char *stop;
            errno = 0;
            unsigned long long v = strtoull(value, &stop, 10);
            if (errno || stop == value)
                return -1;
            c->body_left = v;
            have_length = 1;
        } else if (header_is(line, n, "Transfer-Encoding", &value)) {
            return -1; /* chunked: not followed, see --help */
        } else if (header_is(line, n, "Connection", &value)) {
            if (strncasecmp(value, "close", 5) == 0)
                c->close_after = 1;
            else if (strncasecmp(value, "keep-alive", 10) == 0)
                c->close_after = 0;
        }
        line = eol ? eol + 1 : end;
    }
    if (!have_length && !(c->status < 200 || c->status == 204 || c->status == 304))
        return -1;
    return 0;
}

/* ---- connections ---- */

static int in_window(const load_t *l, uint64_t t)
{
    return t >= l->t_warm && t < l->t_end;
}

static void count_status(stats_t *st, int status)
{
    if (status >= 200 && status < 300)
        st->s2xx++;
    else if (status >= 400 && status < 500)
        st->s4xx++;
    else if (status >= 500 && status < 600)
        st->s5xx++;
    else
        st->sother++;
}

static void on_write(uv_write_t *req, int status)
{
    conn_t *c = req->data;
    c->writing = 0;
    if (status < 0) {
        if (status != UV_ECANCELED && c->state == C_BUSY)
            conn_fail(c, 0);
    } else if (c->idle_after_write) {
        c->idle_after_write = 0;
        conn_idle(c);
    }
}

/* Sends the request on an idle connection; start is when it was due. */
static void conn_send(conn_t *c, uint64_t start)
{
    load_t *l = c->load;
    uv_buf_t buf = uv_buf_init(l->request, (unsigned)l->request_len);

    c->state = C_BUSY;
    l->sent++;
    c->start_ns = start;
    c->measured = in_window(l, start);
    c->phase = P_HEAD;
    c->rlen = 0;
    if (c->measured)
        l->inflight_measured++;
    c->write_req.data = c;
    c->writing = 1;
    if (uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &buf, 1, on_write) != 0)
        conn_fail(c, 0);
}

/* The connection is free: closed loop sends at once, open loop offers it to
 * the schedule. */
static void conn_idle(conn_t *c)
{
    load_t *l = c->load;
    uint64_t now = uv_hrtime();

    c->state = C_IDLE;
    if (!l->sending || l->finishing)
        return;
    if (l->opt.rate > 0) {
        l->idle[l->nidle++] = c;
        pump(l, now);
    } else if (l->opt.requests > 0 && l->sent >= (uint64_t)l->opt.requests) {
        stop_sending(l, now); /* all sent: the drain waits for the rest */
    } else if (now < l->t_end) {
        conn_send(c, now);
    }
}

/* Forgets c's in-flight request, counting it when it was measured. */
static void conn_drop_request(conn_t *c, int timed_out)
{
    load_t *l = c->load;
    if (c->state != C_BUSY || !c->measured)
        return;
    l->inflight_measured--;
    if (timed_out)
        l->st.timeouts++;
    else
        l->st.errors++;
    c->measured = 0;
}

static void on_retry(uv_timer_t *t)
{
    conn_connect(t->data);
}

static void on_close(uv_handle_t *h)
{
    conn_t *c = h->data;
    load_t *l = c->load;
    c->state = C_CLOSED;
    if (!l->finishing && l->sending)
        uv_timer_start(&c->retry, on_retry, (uint64_t)c->retry_after_close, 0);
}

/* Closes c; a reconnect follows (after RETRY_MS when it was an error). */
static void conn_close(conn_t *c, int error)
{
    load_t *l = c->load;
    if (c->state == C_CLOSING || c->state == C_CLOSED)
        return;
    if (c->state == C_IDLE && l->opt.rate > 0) {
        for (size_t i = 0; i < l->nidle; i++) {
            if (l->idle[i] == c) { /* kept in order: oldest first */
                memmove(l->idle + i, l->idle + i + 1, (--l->nidle - i) * sizeof *l->idle);
                break;
            }
        }
    }
    c->state = C_CLOSING;
    c->retry_after_close = error ? RETRY_MS : 0;
    uv_close((uv_handle_t *)&c->tcp, on_close);
}

static void conn_fail(conn_t *c, int timed_out)
{
    load_t *l = c->load;
    if (c->state == C_BUSY)
        conn_drop_request(c, timed_out);
    else if ((c->state == C_CONNECTING || c->state == C_IDLE) && in_window(l, uv_hrtime()))
        l->st.errors++; /* a failed connect, or stray bytes on an idle connection */
    conn_close(c, 1);
}

/* One whole response has arrived. */
static void conn_response(conn_t *c)
{
    load_t *l = c->load;
    l->t_last_response = uv_hrtime();
    if (c->status >= 200 && c->status < 300)
        l->all_2xx++;
    if (c->measured) {
        hist_record(&l->st.hist, uv_hrtime() - c->start_ns);
        count_status(&l->st, c->status);
        l->inflight_measured--;
        c->measured = 0;
    }
    if (!l->sending && l->inflight_measured == 0)
        finish(l); /* the drain is over */
    else if (c->close_after)
        conn_close(c, 0);
    else if (c->writing)
        c->idle_after_write = 1; /* answered early (say a 413): wait for the write */
    else
        conn_idle(c);
}

/* Consumes what is in c->rbuf: the head, then the body (discarded). */
static void conn_parse(conn_t *c)
{
    if (c->phase == P_HEAD) {
        char *end = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4);
        size_t hlen;
        if (!end) {
            if (c->rlen == sizeof c->rbuf)
                conn_fail(c, 0);
            return;
        }
        hlen = (size_t)(end - c->rbuf) + 4;
        if (parse_head(c, c->rbuf, hlen) != 0) {
            conn_fail(c, 0);
            return;
        }
        memmove(c->rbuf, c->rbuf + hlen, c->rlen - hlen);
        c->rlen -= hlen;
        c->phase = P_BODY;
    }
    uint64_t take = c->body_left < c->rlen ? c->body_left : c->rlen;
    memmove(c->rbuf, c->rbuf + take, c->rlen - take);
    c->rlen -= (size_t)take;
    c->body_left -= take;
    if (c->body_left > 0)
        return;
    if (c->rlen > 0) { /* bytes beyond the response: nothing was asked for them */
        conn_fail(c, 0);
        return;
    }
    conn_response(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    conn_t *c = h->data;
    *buf = uv_buf_init(c->rbuf + c->rlen, (unsigned)(sizeof c->rbuf - c->rlen));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    conn_t *c = s->data;
    if (n < 0) {
        if (c->state == C_BUSY || n != UV_EOF)
            conn_fail(c, 0);
        else
            conn_close(c, 0); /* the server closed an idle keep-alive connection */
        return;
    }
    if (n == 0)
        return;
    if (c->state != C_BUSY) {
        conn_fail(c, 0);
        return;
    }
    c->rlen += (size_t)n;
    conn_parse(c);
}

static void on_connect(uv_connect_t *req, int status)
{
    conn_t *c = req->data;
    if (status == UV_ECANCELED)
        return;
    if (status < 0 || uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
        conn_fail(c, 0);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    conn_idle(c);
}

static void conn_connect(conn_t *c)
{
    load_t *l = c->load;
    if (l->finishing || !l->sending)
        return;
    uv_tcp_init(l->loop, &c->tcp);
    c->tcp.data = c;
    c->connect_req.data = c;
    c->state = C_CONNECTING;
    c->writing = c->idle_after_write = 0;
    if (uv_tcp_connect(&c->connect_req, &c->tcp, (const struct sockaddr *)&l->addr,
                       on_connect) != 0)
        conn_fail(c, 0);
}

/* ---- schedule and phases ---- */

/* Open loop: sends every request due by now on free connections, oldest
 * first, each stamped with the time it was due. */
static void pump(load_t *l, uint64_t now)
{
    if (!l->sending || l->finishing || l->opt.rate <= 0 || now < l->t_start)
        return;
    uint64_t due = (uint64_t)((double)(now - l->t_start) * l->opt.rate / 1e9) + 1;
    while (l->next_k < due && l->nidle > 0) {
        uint64_t at = l->t_start + (uint64_t)((double)l->next_k * 1e9 / l->opt.rate);
        if (at >= l->t_end)
            return;
        /* The connection free the longest: every one stays in use, so none
         * sits unused past the server's read timeout (the gateway's is
         * 10 s), when it may close it just as a request is sent on it. */
        conn_t *c = l->idle[0];
        memmove(l->idle, l->idle + 1, --l->nidle * sizeof *l->idle);
        conn_send(c, at);
        l->next_k++;
    }
}

static void on_tick(uv_poll_t *p, int status, int events)
{
    load_t *l = p->data;
    uint64_t expirations;
    if (read(l->tfd, &expirations, sizeof expirations) < 0 && errno != EAGAIN)
        return;
    pump(l, uv_hrtime());
}

static void on_handle_closed(uv_handle_t *h)
{
}

/* Stops everything: counts what is still in flight, closes every handle. */
static void finish(load_t *l)
{
    if (l->finishing)
        return;
    l->finishing = 1;
    for (long i = 0; i < l->opt.connections; i++) {
        conn_t *c = &l->conns[i];
        conn_drop_request(c, 1);
        uv_close((uv_handle_t *)&c->retry, on_handle_closed);
        if (c->state != C_CLOSED && c->state != C_CLOSING) {
            c->state = C_CLOSING;
            uv_close((uv_handle_t *)&c->tcp, on_close);
        }
    }
    if (l->opt.rate > 0)
        uv_close((uv_handle_t *)&l->tick, on_handle_closed);
    uv_close((uv_handle_t *)&l->end_timer, on_handle_closed);
    uv_close((uv_handle_t *)&l->housekeep, on_handle_closed);
    uv_close((uv_handle_t *)&l->sigint, on_handle_closed);
}

/* The measured window is over: no new requests; wait for those in flight. */
static void stop_sending(load_t *l, uint64_t now)
{
    if (!l->sending)
        return;
    if (now < l->t_end)
        l->t_end = now; /* stopped early (SIGINT) */
    pump(l, l->t_end);  /* whatever fell due since the last tick */
    l->sending = 0;
    if (l->opt.rate > 0) {
        uint64_t due = (uint64_t)ceil((double)(l->t_end - l->t_start) * l->opt.rate / 1e9);
        uint64_t first = (uint64_t)ceil((double)(l->t_warm - l->t_start) * l->opt.rate / 1e9);
        uint64_t from = l->next_k > first ? l->next_k : first;
        l->unsent = due > from ? due - from : 0;
    }
    if (l->inflight_measured == 0)
        finish(l);
}

static void on_end(uv_timer_t *t)
{
    load_t *l = t->data;
    uint64_t now = uv_hrtime();
    if (now < l->t_end) /* libuv's clock is in whole ms and may run early */
        uv_timer_start(t, on_end, (l->t_end - now) / 1000000 + 1, 0);
    else
        stop_sending(l, now);
}

static void on_sigint(uv_signal_t *s, int signum)
{
    load_t *l = s->data;
    uint64_t now = uv_hrtime();
    if (l->sending)
        stop_sending(l, now);
    else
        finish(l);
}

/* Every HOUSEKEEP_MS: times out slow requests; ends the drain. */
static void on_housekeep(uv_timer_t *t)
{
    load_t *l = t->data;
    uint64_t now = uv_hrtime(), limit = (uint64_t)l->opt.timeout_ms * 1000000ULL;

    for (long i = 0; i < l->opt.connections; i++) {
        conn_t *c = &l->conns[i];
        if (c->state == C_BUSY && now - c->start_ns > limit)
            conn_fail(c, 1);
    }
    if (!l->sending && (l->inflight_measured == 0 || now > l->t_end + limit))
        finish(l);
}

/* ---- report ---- */

static double ms(uint64_t ns)
{
    return (double)ns / 1e6;
}

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

static void report(const load_t *l)
{
    const stats_t *st = &l->st;
    const hist_t *h = &st->hist;
    uint64_t end = l->opt.requests > 0 ? l->t_last_response : l->t_end;
    double window = (double)(end > l->t_warm ? end - l->t_warm : 0) / 1e9;
    double rps = window > 0 ? (double)h->total / window : 0;
    double jps = window > 0 ? (double)st->s2xx * (double)l->jobs_per_request / window : 0;
    double mean = h->total ? h->sum / (double)h->total : 0;
    const double pct[] = {50, 90, 99, 99.9};
    const char *pname[] = {"p50", "p90", "p99", "p99_9"};

    if (l->opt.json) {
        printf("{\"url\":");
        json_string(stdout, l->opt.url);
        printf(",\"mode\":\"%s\",\"connections\":%ld,\"duration_s\":%.3f,\"warmup_s\":%.3f,"
               "\"rate\":%.3f,\"batch\":%zu,\"responses\":%" PRIu64 ",\"requests_per_s\":%.1f,"
               "\"jobs_per_s\":%.1f,\"latency_ms\":{",
               l->opt.rate > 0 ? "open" : "closed", l->opt.connections, window,
               l->opt.warmup_s, l->opt.rate, l->jobs_per_request, h->total, rps, jps);
        for (size_t i = 0; i < 4; i++)
            printf("\"%s\":%.3f,", pname[i], ms(hist_percentile(h, pct[i])));
        printf("\"max\":%.3f,\"mean\":%.3f},\"status\":{\"2xx\":%" PRIu64 ",\"4xx\":%" PRIu64
               ",\"5xx\":%" PRIu64 ",\"other\":%" PRIu64 ",\"errors\":%" PRIu64
               ",\"timeouts\":%" PRIu64 "},\"unsent\":%" PRIu64 ",\"sent\":%" PRIu64
               ",\"all_2xx\":%" PRIu64 ",\"start_unix_ms\":%lld}\n",
               ms(h->max), ms(mean), st->s2xx, st->s4xx, st->s5xx, st->sother, st->errors,
               st->timeouts, l->unsent, l->sent, l->all_2xx, l->t_start_unix_ms);
        return;
    }
    printf("yard-load: POST %s, %ld connections, %.1f s measured after %.1f s warmup, ",
           l->opt.url, l->opt.connections, window, l->opt.warmup_s);
    if (l->opt.rate > 0)
        printf("open loop at %.0f req/s, ", l->opt.rate);
    else
        printf("closed loop, ");
    printf("%zu job%s per request\n", l->jobs_per_request, l->jobs_per_request > 1 ? "s" : "");
    printf("  requests/s  %.1f  (%" PRIu64 " responses)\n", rps, h->total);
    printf("  jobs/s      %.1f  (2xx responses x %zu)\n", jps, l->jobs_per_request);
    printf("  latency ms ");
    for (size_t i = 0; i < 4; i++)
        printf(" %s %.3f ", i == 3 ? "p99.9" : pname[i], ms(hist_percentile(h, pct[i])));
    printf(" max %.3f  mean %.3f\n", ms(h->max), ms(mean));
    printf("  status      2xx %" PRIu64 "  4xx %" PRIu64 "  5xx %" PRIu64 "  other %" PRIu64
           "  errors %" PRIu64 "  timeouts %" PRIu64 "\n",
           st->s2xx, st->s4xx, st->s5xx, st->sother, st->errors, st->timeouts);
    if (l->unsent > 0)
        printf("  warning     %" PRIu64 " requests due in the window were never sent: "
               "the target rate was not sustained\n", l->unsent);
}

/* ---- command line ---- */

static void usage(FILE *f)
{
    fprintf(f,
"usage: yard-load [options]\n"
"\n"
"Sends HTTP/1.1 POST requests over keep-alive connections and reports\n"
"throughput, latency percentiles and status counts for the measured window.\n"
"\n"
"  --url URL           target, http:// only (default %s)\n"
"  --connections N     keep-alive connections (default %ld)\n"
"  --duration S        measured seconds, after the warmup (default %g)\n"
"  --warmup S          seconds run first and left out of the figures (default %g)\n"
"  --rate R            open loop: R requests/s in total, latency measured from\n"
"                      each request's due time, queueing included (default 0 =\n"
"                      closed loop: each connection sends again on each response)\n"
"  --requests N        closed loop: send N requests in all, then stop; no warmup,\n"
"                      every request measured, the window ends at the last\n"
"                      response (default 0 = run for --duration)\n"
"  --batch N           send {\"jobs\":[BODY x N]} (point --url at the batch route);\n"
"                      jobs/s counts N per 2xx response (default 0 = one job)\n"
"  --body JSON         the job (default %s)\n"
"  --api-key KEY       send Authorization: Bearer KEY (default none)\n"
"  --timeout MS        a request without a full response after MS ms counts as\n"
"                      a timeout and its connection is reopened (default %ld)\n"
"  --json              print one JSON object instead of the text report\n"
"  --help              this text\n"
"\n"
"Responses must carry Content-Length (chunked bodies count as errors).\n"
"Figures cover requests started in the measured window; requests/s counts\n"
"every response, jobs/s only 2xx ones. Ctrl-C ends the window early.\n"
"Exit status: 0 when at least one request got a 2xx, 1 when none did,\n"
"2 for bad options or setup failures.\n",
            opts_default.url, opts_default.connections, opts_default.duration_s,
            opts_default.warmup_s, opts_default.body, opts_default.timeout_ms);
}

/* Parses a number within [lo, hi]; prints why and returns -1 otherwise. */
static int parse_num(double *out, const char *opt, const char *s, double lo, double hi)
{
    char *end;
    double v;
    errno = 0;
    v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi)) {
        fprintf(stderr, "yard-load: --%s wants a number from %g to %g, not \"%s\"\n", opt, lo,
                hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

/* Fills *o from argv. Returns 0 to run, 1 after --help, -1 on bad options. */
static int parse_args(opts_t *o, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"url", required_argument, NULL, 'u'},         {"connections", required_argument, NULL, 'c'},
        {"duration", required_argument, NULL, 'd'},    {"rate", required_argument, NULL, 'r'},
        {"batch", required_argument, NULL, 'b'},       {"api-key", required_argument, NULL, 'k'},
        {"body", required_argument, NULL, 'B'},        {"warmup", required_argument, NULL, 'w'},
        {"timeout", required_argument, NULL, 't'},     {"json", no_argument, NULL, 'j'},
        {"requests", required_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},              {NULL, 0, NULL, 0},
    };
    double v;
    int ch, idx;

    *o = opts_default;
    while ((ch = getopt_long(argc, argv, "", longopts, &idx)) != -1) {
        const char *name = ch == '?' ? "" : longopts[idx].name;
        switch (ch) {
        case 'u': o->url = optarg; break;
        case 'k': o->api_key = optarg; break;
        case 'B': o->body = optarg; break;
        case 'j': o->json = 1; break;
        case 'h': usage(stdout); return 1;
        case 'c':
            if (parse_num(&v, name, optarg, 1, 10000) != 0 || v != floor(v))
                return -1;
            o->connections = (long)v;
            break;
        case 'd':
            if (parse_num(&o->duration_s, name, optarg, 0.001, 86400) != 0)
                return -1;
            break;
        case 'w':
            if (parse_num(&o->warmup_s, name, optarg, 0, 3600) != 0)
                return -1;
            break;
        case 'r':
            if (parse_num(&o->rate, name, optarg, 0, 1e7) != 0)
                return -1;
            break;
        case 'b':
            if (parse_num(&v, name, optarg, 0, 100000) != 0 || v != floor(v))
                return -1;
            o->batch = (long)v;
            break;
        case 'n':
            if (parse_num(&v, name, optarg, 1, 1e9) != 0 || v != floor(v))
                return -1;
            o->requests = (long)v;
            break;
        case 't':
            if (parse_num(&v, name, optarg, 1, 3600000) != 0 || v != floor(v))
                return -1;
            o->timeout_ms = (long)v;
            break;
        default:
            usage(stderr);
            return -1;
        }
    }
    if (o->requests > 0 && o->rate > 0) {
        fprintf(stderr, "yard-load: --requests is for the closed loop, not with --rate\n");
        return -1;
    }
    if (o->requests > 0) { /* every request counts; the count, not the clock, ends the run */
        o->warmup_s = 0;
        o->duration_s = 86400;
    }
    if (optind < argc) {
        fprintf(stderr, "yard-load: unexpected argument \"%s\" (see --help)\n", argv[optind]);
        return -1;
    }
    return 0;
}

/* Arms the open-loop pacing timerfd: one wake-up per request, or per
 * MIN_TICK_NS at high rates (each wake-up sends everything due). */
static int start_ticks(load_t *l)
{
    uint64_t step = (uint64_t)(1e9 / l->opt.rate);
    struct itimerspec its;

    if (step < MIN_TICK_NS)
        step = MIN_TICK_NS;
    l->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (l->tfd < 0)
        return -1;
    its.it_interval.tv_sec = (time_t)(step / 1000000000ULL);
    its.it_interval.tv_nsec = (long)(step % 1000000000ULL);
    its.it_value = its.it_interval;
    if (timerfd_settime(l->tfd, 0, &its, NULL) != 0 || uv_poll_init(l->loop, &l->tick, l->tfd) != 0)
        return -1;
    l->tick.data = l;
    return uv_poll_start(&l->tick, UV_READABLE, on_tick) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    load_t *l = calloc(1, sizeof *l);
    int rc = 2;

    if (!l) {
        fprintf(stderr, "yard-load: out of memory\n");
        return 2;
    }
    l->tfd = -1;
    switch (parse_args(&l->opt, argc, argv)) {
    case 1:
        rc = 0;
        goto out;
    case -1:
        goto out;
    }
    if (parse_url(l, l->opt.url) != 0)
        goto out;
    build_request(l);
    l->loop = uv_default_loop();
    l->conns = calloc((size_t)l->opt.connections, sizeof *l->conns);
    l->idle = calloc((size_t)l->opt.connections, sizeof *l->idle);
    if (!l->conns || !l->idle) {
        fprintf(stderr, "yard-load: out of memory for %ld connections\n", l->opt.connections);
        goto out;
    }
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    l->t_start = uv_hrtime();
    l->t_start_unix_ms = (long long)wall.tv_sec * 1000 + wall.tv_nsec / 1000000;
    l->t_warm = l->t_start + (uint64_t)(l->opt.warmup_s * 1e9);
    l->t_end = l->t_warm + (uint64_t)(l->opt.duration_s * 1e9);
    l->sending = 1;
    if (l->opt.rate > 0 && start_ticks(l) != 0) {
        fprintf(stderr, "yard-load: cannot set up the pacing timer: %s\n", strerror(errno));
        goto out;
    }
    uv_timer_init(l->loop, &l->end_timer);
    uv_timer_init(l->loop, &l->housekeep);
    uv_signal_init(l->loop, &l->sigint);
    l->end_timer.data = l->housekeep.data = l->sigint.data = l;
    uv_timer_start(&l->end_timer, on_end, (l->t_end - l->t_start + 999999) / 1000000, 0);
    uv_timer_start(&l->housekeep, on_housekeep, HOUSEKEEP_MS, HOUSEKEEP_MS);
    uv_signal_start(&l->sigint, on_sigint, SIGINT);
    for (long i = 0; i < l->opt.connections; i++) {
        conn_t *c = &l->conns[i];
        c->load = l;
        c->tcp.data = c;
        uv_timer_init(l->loop, &c->retry);
        c->retry.data = c;
        conn_connect(c);
    }
    uv_run(l->loop, UV_RUN_DEFAULT);
    uv_loop_close(l->loop);
    report(l);
    rc = l->st.s2xx > 0 ? 0 : 1;
out:
    if (l->tfd >= 0)
        close(l->tfd);
    free(l->request);
    free(l->conns);
    free(l->idle);
    free(l);
    return rc;
}
