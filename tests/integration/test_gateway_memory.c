/*
 * test_gateway_memory.c - hostile clients against the real yard-gateway's
 * memory and connection limits (auth on, so nothing here holds a key).
 *
 * 1. The flood of issue 13: 16 connections first fill the gateway's send
 *    buffer with pipelined `GET /metrics` answers they never read, then
 *    pipeline 1 MiB `POST /healthz` bodies (405, no key needed) and never
 *    read. The gateway's resident memory must stay bounded (its limits are
 *    2 MiB held per connection and 256 MiB for the server; this flood fits
 *    the per-connection bound: 16 x (2 MiB + one body + one read) ~ 52 MiB)
 *    and must come back down once the clients are gone. Before the limits,
 *    the same flood took the gateway from 12 MiB to about 500 MiB, and the
 *    memory stayed.
 * 2. A POST with a body from a caller without a valid key gets 401 before
 *    its body is decoded, even when the body is not valid JSON.
 * 3. One address may hold at most http_max_connections_per_client
 *    connections: beyond it 503; another address is still served.
 * 4. At http_max_connections, an idle keep-alive connection makes room
 *    for a new client instead of the new client being refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "log.h"
#include "yt_http.h"

#define FLOOD_CONNS 16
#define FLOOD_BODY (1u << 20)
#define FLOOD_BODIES_PER_CONN 32 /* what each client tries to push: 32 MiB */
#define PER_CLIENT 20
#define MAX_CONNS 60

static struct {
    yt_env_t *env;
    pid_t gw;
    int port;
} g;

/* The gateway's resident memory in KiB, or -1. */
static long rss_kib(pid_t pid)
{
    char path[64], line[256];
    long kib = -1;
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kib = strtol(line + 6, NULL, 10);
    fclose(f);
    return kib;
}

/* A TCP connection to the gateway from the loopback address src (NULL:
 * any), with a small receive buffer so the gateway's answers back up fast.
 * Returns the socket or -1. */
static int connect_from(const char *src, int small_rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g.port)};
    if (fd < 0)
        return -1;
    if (small_rcvbuf) {
        int sz = 4096;
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
    }
    if (src) {
        struct sockaddr_in b = {.sin_family = AF_INET};
        inet_pton(AF_INET, src, &b.sin_addr);
        if (bind(fd, (struct sockaddr *)&b, sizeof b) < 0) {
            close(fd);
            return -1;
        }
    }
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Writes what the socket takes of buf[*off..len) without blocking. Returns
 * 1 when all is written, 0 when the socket is full, -1 when it is closed. */
static int write_some(int fd, const char *buf, size_t len, size_t *off)
{
    while (*off < len) {
        ssize_t n = send(fd, buf + *off, len - *off, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
            *off += (size_t)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        return -1;
    }
    return 1;
}

/* Reads one answer's status line on fd within timeout_ms: the status, 0 if
 * the connection closed, -1 on timeout. Reads at most what one small answer
 * holds. */
static int read_status(int fd, int timeout_ms)
{
    char buf[2048];
    size_t got = 0;
    long long end = yt_now_ms() + timeout_ms;
    while (yt_now_ms() < end && got < sizeof buf - 1) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t n = recv(fd, buf + got, sizeof buf - 1 - got, 0);
        if (n <= 0)
            return 0;
        got += (size_t)n;
        buf[got] = '\0';
        if (strstr(buf, "\r\n\r\n")) {
            int status = 0;
            if (sscanf(buf, "HTTP/1.%*d %d", &status) == 1)
                return status;
            return -1;
        }
    }
    return -1;
}

/* Bytes the gateway's socket for the client fd has queued to send (from
 * /proc/net/tcp, the server's side of the connection), or -1. */
static long server_tx_queue(int fd)
{
    struct sockaddr_in me;
    socklen_t len = sizeof me;
    char line[512];
    long q = -1;
    if (getsockname(fd, (struct sockaddr *)&me, &len) < 0)
        return -1;
    FILE *f = fopen("/proc/net/tcp", "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f)) {
        unsigned la, lp, ra, rp, st;
        unsigned long tx, rx;
        if (sscanf(line, " %*d: %x:%x %x:%x %x %lx:%lx", &la, &lp, &ra, &rp, &st, &tx, &rx) != 7)
            continue;
        if (lp == (unsigned)g.port && rp == ntohs(me.sin_port))
            q = (long)tx;
    }
    fclose(f);
    return q;
}

/* Sends GET /metrics to every client, 4 at a time, until the gateway's
 * answers to each back up: its send queue for that client stops growing.
 * Never more than 32 requests are left unanswered on one connection, so
 * the gateway keeps reading what follows. */
static void fill_with_unread_answers(const int *fds, int n)
{
    static const char get4[] = "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n"
                                "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n"
                                "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n"
                                "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n";
    long last[FLOOD_CONNS];
    int full[FLOOD_CONNS] = {0}, left = n;
    for (int i = 0; i < n; i++)
        last[i] = -1;
    for (int k = 0; k < 400 && left; k++) {
        for (int i = 0; i < n; i++) {
            size_t off = 0;
            if (!full[i] && write_some(fds[i], get4, sizeof get4 - 1, &off) != 1) {
                full[i] = 1;
                left--;
            }
        }
        usleep(20 * 1000);
        for (int i = 0; i < n; i++) {
            long q = full[i] ? 0 : server_tx_queue(fds[i]);
            if (!full[i] && q > 0 && q == last[i]) {
                full[i] = 1; /* the socket takes no more: answers now wait in the gateway */
                left--;
            }
            last[i] = q;
        }
    }
}

static int healthz_from(const char *src)
{
    int fd = connect_from(src, 0);
    if (fd < 0)
        return -1;
    static const char req[] = "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";
    size_t off = 0;
    int status = write_some(fd, req, sizeof req - 1, &off) == 1 ? read_status(fd, 5000) : -1;
    close(fd);
    return status;
}

static void test_flood_of_unread_answers_and_bodies_is_bounded(void **state)
{
    int fds[FLOOD_CONNS];
    char head[160];
    int head_len = snprintf(head, sizeof head,
                            "POST /healthz HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                            "Content-Length: %u\r\n\r\n",
                            FLOOD_BODY);
    size_t one = (size_t)head_len + FLOOD_BODY;
    size_t total = one * FLOOD_BODIES_PER_CONN;
    char *stream = malloc(total);
    size_t off[FLOOD_CONNS];
    long base = rss_kib(g.gw), peak = base;

    assert_non_null(stream);
    assert_true(base > 0);
    for (size_t i = 0; i < FLOOD_BODIES_PER_CONN; i++) {
        memcpy(stream + i * one, head, (size_t)head_len);
        memset(stream + i * one + head_len, ' ', FLOOD_BODY);
    }
    /* Fill the gateway's send buffer with answers nobody reads. */
    for (int i = 0; i < FLOOD_CONNS; i++) {
        fds[i] = connect_from(NULL, 1);
        assert_true(fds[i] >= 0);
        off[i] = 0;
    }
    fill_with_unread_answers(fds, FLOOD_CONNS);
    usleep(500 * 1000);
    /* Then pipeline 1 MiB bodies for 6 s, never reading. */
    long long end = yt_now_ms() + 6000;
    size_t sent = 0;
    while (yt_now_ms() < end) {
        for (int i = 0; i < FLOOD_CONNS; i++) {
            if (fds[i] < 0 || off[i] >= total)
                continue;
            size_t before = off[i];
            if (write_some(fds[i], stream, total, &off[i]) < 0) {
                close(fds[i]);
                fds[i] = -1;
            }
            sent += off[i] - before;
        }
        long r = rss_kib(g.gw);
        peak = r > peak ? r : peak;
        usleep(20 * 1000);
    }
    for (int k = 0; k < 20; k++) {
        long r = rss_kib(g.gw);
        peak = r > peak ? r : peak;
        usleep(50 * 1000);
    }
    print_message("flood: %zu MiB sent by %d clients that never read; gateway RSS %ld MiB before, "
                  "peak %ld MiB\n",
                  sent >> 20, FLOOD_CONNS, base / 1024, peak / 1024);
    /* Another client is still served during the flood. */
    assert_int_equal(healthz_from(NULL), 200);
    if (peak - base > 96 * 1024)
        fail_msg("the gateway grew from %ld MiB to %ld MiB under %d clients that never read: "
                 "expected at most 96 MiB more (2 MiB held per connection)",
                 base / 1024, peak / 1024, FLOOD_CONNS);
    for (int i = 0; i < FLOOD_CONNS; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    free(stream);
    /* The memory goes back once they have left. */
    long after = 0;
    for (int k = 0; k < 100; k++) {
        usleep(100 * 1000);
        after = rss_kib(g.gw);
        if (after - base < 24 * 1024)
            break;
    }
    print_message("flood: gateway RSS %ld MiB 10 s after the clients left\n", after / 1024);
    if (after - base >= 24 * 1024)
        fail_msg("after the flood the gateway kept %ld MiB (was %ld MiB before): expected "
                 "the memory given back",
                 after / 1024, base / 1024);
    assert_int_equal(healthz_from(NULL), 200);
}

static void test_unauthenticated_body_is_refused_before_decoding(void **state)
{
    yt_http_resp_t r;
    const char *bad = "{ this is not json";
    const char *const no_key[] = {"Content-Type: application/json", NULL};
    const char *const wrong_key[] = {"Content-Type: application/json",
                                     "Authorization: Bearer yk_not_a_real_key", NULL};
    assert_int_equal(yt_http_request(&r, g.port, "POST", "/v1/jobs", no_key, bad, strlen(bad)),
                     401);
    yt_http_resp_free(&r);
    assert_int_equal(
        yt_http_request(&r, g.port, "POST", "/v1/jobs/batch", wrong_key, bad, strlen(bad)), 401);
    yt_http_resp_free(&r);
}

static void test_one_address_cannot_take_every_connection(void **state)
{
    int fds[PER_CLIENT + 1];
    for (int i = 0; i < PER_CLIENT; i++) {
        fds[i] = connect_from("127.0.0.3", 0);
        assert_true(fds[i] >= 0);
    }
    usleep(300 * 1000);
    fds[PER_CLIENT] = connect_from("127.0.0.3", 0);
    assert_true(fds[PER_CLIENT] >= 0);
    int st = read_status(fds[PER_CLIENT], 5000);
    if (st != 503)
        fail_msg("connection %d from one address (limit %d): expected 503, got %d", PER_CLIENT + 1,
                 PER_CLIENT, st);
    assert_int_equal(healthz_from("127.0.0.4"), 200);
    for (int i = 0; i <= PER_CLIENT; i++)
        close(fds[i]);
}

static void test_idle_connections_make_room_at_the_limit(void **state)
{
    enum { N = MAX_CONNS };
    int fds[N], n = 0;
    char addr[32];
    static const char req[] = "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";
    usleep(500 * 1000); /* the previous test's connections are closed */
    /* Fill the server with idle keep-alive connections from several
     * addresses, each after one answered request. */
    for (int i = 0; i < N; i++) {
        snprintf(addr, sizeof addr, "127.0.1.%d", 1 + i / (PER_CLIENT - 1));
        fds[i] = connect_from(addr, 0);
        assert_true(fds[i] >= 0);
        size_t off = 0;
        assert_int_equal(write_some(fds[i], req, sizeof req - 1, &off), 1);
        int st = read_status(fds[i], 5000);
        if (st != 200)
            break;
        n++;
    }
    if (n < N - 2)
        fail_msg("only %d of %d idle connections could be opened before the limit", n, N);
    /* The server is full of idle connections: a new client still gets in. */
    for (int k = 0; k < 3; k++) {
        snprintf(addr, sizeof addr, "127.0.2.%d", k + 1);
        int st = healthz_from(addr);
        if (st != 200)
            fail_msg("a new client with %d idle connections open (limit %d): expected 200, got %d",
                     n, MAX_CONNS, st);
    }
    for (int i = 0; i < N; i++)
        if (fds[i] >= 0)
            close(fds[i]);
}

static int setup(void **state)
{
    static char per_client[64], max_conns[64];
    snprintf(per_client, sizeof per_client, "YARD_HTTP_MAX_CONNECTIONS_PER_CLIENT=%d", PER_CLIENT);
    snprintf(max_conns, sizeof max_conns, "YARD_HTTP_MAX_CONNECTIONS=%d", MAX_CONNS);
    char *const extra[] = {per_client, max_conns, "YARD_LOG_LEVEL=warn", NULL};
    yard_log_init("test_gateway_memory", YARD_LOG_ERROR);
    if (yt_env_create(&g.env, YT_NATS | YT_PG | YT_MIGRATE) != 0)
        return -1;
    g.gw = yt_gateway_start(g.env, &g.port, extra);
    return g.gw < 0 ? -1 : 0;
}

static int teardown(void **state)
{
    if (g.gw > 0 && yt_kill_wait(g.gw, SIGTERM, 10000) < 0)
        yt_kill_wait(g.gw, SIGKILL, 5000);
    yt_env_destroy(g.env);
    return 0;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flood_of_unread_answers_and_bodies_is_bounded),
        cmocka_unit_test(test_unauthenticated_body_is_refused_before_decoding),
        cmocka_unit_test(test_one_address_cannot_take_every_connection),
        cmocka_unit_test(test_idle_connections_make_room_at_the_limit),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
