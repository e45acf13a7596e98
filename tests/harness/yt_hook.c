/*
 * yt_hook.c - the tests' webhook receiver (yt_hook.h).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "harness.h"
#include "yt_hook.h"

#define HOOK_HEAD_MAX 8192

struct yt_hook {
    int fd, port;
    pthread_t thread;
    atomic_int stop;
    yt_hook_fn fn;
    void *ud;
    pthread_mutex_t mu;
    yt_hook_req_t *reqs; /* YT_HOOK_MAX_REQUESTS */
    int n;
};

/* Copies the value of header name in head (the lines after the request
 * line) into out. */
static void hook_header(const char *head, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    out[0] = '\0';
    for (const char *p = strstr(head, "\r\n"); p; p = strstr(p + 2, "\r\n")) {
        const char *line = p + 2;
        if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (*v == ' ')
                v++;
            size_t len = strcspn(v, "\r\n");
            snprintf(out, cap, "%.*s", (int)len, v);
            return;
        }
    }
}

static void hook_answer(yt_hook_t *h, int fd)
{
    char head[HOOK_HEAD_MAX + 1];
    size_t len = 0;
    char *end = NULL;
    struct timeval tv = {5, 0};
    yt_hook_req_t *r = calloc(1, sizeof *r);
    if (!r)
        return;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    while (len < HOOK_HEAD_MAX && !end) {
        ssize_t n = read(fd, head + len, HOOK_HEAD_MAX - len);
        if (n <= 0)
            break;
        len += (size_t)n;
        head[len] = '\0';
        end = strstr(head, "\r\n\r\n");
    }
    if (!end) {
        free(r);
        return;
    }
    r->at_ms = yt_now_ms();
    *end = '\0';
    sscanf(head, "%15s %255s", r->method, r->path);
    r->path[strcspn(r->path, "?")] = '\0';
    char cl[32];
    hook_header(head, "Yard-Signature", r->signature, sizeof r->signature);
    hook_header(head, "Yard-Notification-Id", r->notif_id, sizeof r->notif_id);
    hook_header(head, "Yard-Event", r->event, sizeof r->event);
    hook_header(head, "Yard-Key-Id", r->key_id, sizeof r->key_id);
    hook_header(head, "Content-Type", r->content_type, sizeof r->content_type);
    hook_header(head, "Content-Length", cl, sizeof cl);
    long want = strtol(cl, NULL, 10);
    size_t have = len - (size_t)(end + 4 - head);
    memcpy(r->body, end + 4, have < YT_HOOK_BODY_MAX ? have : YT_HOOK_BODY_MAX);
    r->body_len = have < YT_HOOK_BODY_MAX ? have : YT_HOOK_BODY_MAX;
    while ((long)have < want) {
        char buf[4096];
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0)
            break;
        size_t room = YT_HOOK_BODY_MAX - r->body_len, take = (size_t)n < room ? (size_t)n : room;
        memcpy(r->body + r->body_len, buf, take);
        r->body_len += take;
        have += (size_t)n;
    }
    r->body[r->body_len] = '\0';
    pthread_mutex_lock(&h->mu);
    int hit = 1;
    for (int i = 0; i < h->n; i++)
        hit += strcmp(h->reqs[i].path, r->path) == 0;
    if (h->n < YT_HOOK_MAX_REQUESTS)
        h->reqs[h->n++] = *r;
    pthread_mutex_unlock(&h->mu);
    yt_hook_answer_t a = h->fn(h->ud, r->path, hit);
    char out[1024];
    int n = snprintf(out, sizeof out,
                     "HTTP/1.1 %d X\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n"
                     "%s%s%sConnection: close\r\n\r\nok",
                     a.status, a.location ? "Location: " : "", a.location ? a.location : "",
                     a.location ? "\r\n" : "");
    ssize_t w = write(fd, out, (size_t)n);
    (void)w;
    shutdown(fd, SHUT_WR);
    free(r);
}

static void *hook_main(void *arg)
{
    yt_hook_t *h = arg;
    while (!atomic_load(&h->stop)) {
        struct pollfd p = {h->fd, POLLIN, 0};
        if (poll(&p, 1, 100) <= 0)
            continue;
        int c = accept(h->fd, NULL, NULL);
        if (c < 0)
            continue;
        hook_answer(h, c);
        close(c);
    }
    return NULL;
}

int yt_hook_start(yt_hook_t **out, yt_hook_fn fn, void *ud)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    int one = 1;
    yt_hook_t *h = calloc(1, sizeof *h);
    if (!h || !(h->reqs = calloc(YT_HOOK_MAX_REQUESTS, sizeof *h->reqs))) {
        fprintf(stderr, "yt_hook: out of memory\n");
        if (h)
            free(h);
        return -1;
    }
    h->fn = fn;
    h->ud = ud;
    pthread_mutex_init(&h->mu, NULL);
    h->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (h->fd < 0 || setsockopt(h->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(h->fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(h->fd, 64) != 0 ||
        getsockname(h->fd, (struct sockaddr *)&a, &alen) != 0 ||
        pthread_create(&h->thread, NULL, hook_main, h) != 0) {
        perror("yt_hook: cannot listen on 127.0.0.1");
        if (h->fd >= 0)
            close(h->fd);
        free(h->reqs);
        free(h);
        return -1;
    }
    h->port = ntohs(a.sin_port);
    *out = h;
    return 0;
}

int yt_hook_port(const yt_hook_t *h)
{
    return h->port;
}

int yt_hook_count(yt_hook_t *h, const char *path)
{
    int n = 0;
    pthread_mutex_lock(&h->mu);
    for (int i = 0; i < h->n; i++)
        n += strcmp(h->reqs[i].path, path) == 0;
    pthread_mutex_unlock(&h->mu);
    return n;
}

int yt_hook_get(yt_hook_t *h, const char *path, int i, yt_hook_req_t *out)
{
    int rc = -1;
    pthread_mutex_lock(&h->mu);
    for (int k = 0; k < h->n && rc < 0; k++)
        if (strcmp(h->reqs[k].path, path) == 0 && i-- == 0) {
            *out = h->reqs[k];
            rc = 0;
        }
    pthread_mutex_unlock(&h->mu);
    return rc;
}

int yt_hook_wait(yt_hook_t *h, const char *path, int want, int timeout_ms)
{
    long long deadline = yt_now_ms() + timeout_ms;
    int n;
    while ((n = yt_hook_count(h, path)) < want && yt_now_ms() < deadline)
        usleep(20000);
    return n;
}

void yt_hook_stop(yt_hook_t *h)
{
    if (!h)
        return;
    atomic_store(&h->stop, 1);
    pthread_join(h->thread, NULL);
    close(h->fd);
    pthread_mutex_destroy(&h->mu);
    free(h->reqs);
    free(h);
}
