/*
 * yt_nats_cluster.c - three nats-server nodes from ops/nats/ on loopback
 * (yt_nats_cluster.h).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "yt_http.h"
#include "yt_nats_cluster.h"

#define YT_CLUSTER_WAIT_MS 60000
#define YT_CONF_LINE_MAX 1024

static void yt_nap(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Copies src to dst, replacing every line that sets store_dir with one
 * that sets store (when store is not NULL). Returns 0 or -1 (printed). */
static int yt_copy_conf(const char *src, const char *dst, const char *store)
{
    char line[YT_CONF_LINE_MAX];
    FILE *in = fopen(src, "r"), *out = in ? fopen(dst, "w") : NULL;
    int rc = 0;
    if (!in || !out) {
        fprintf(stderr, "yt_nats_cluster: cannot copy %s to %s: %s\n", src, dst,
                strerror(errno));
        if (in)
            fclose(in);
        return -1;
    }
    while (fgets(line, sizeof line, in)) {
        const char *key = line + strspn(line, " \t");
        if (store && strncmp(key, "store_dir:", 10) == 0)
            fprintf(out, "  store_dir: \"%s\"\n", store);
        else
            fputs(line, out);
    }
    if (ferror(in))
        rc = -1;
    fclose(in);
    if (fclose(out) != 0)
        rc = -1;
    if (rc < 0)
        fprintf(stderr, "yt_nats_cluster: copying %s failed\n", src);
    return rc;
}

/* The meta leader node i reports in /jsz, copied into out ("" if none).
 * Returns 0 when /jsz answered, -1 otherwise. */
static int yt_node_meta_leader(const yt_nats_node_t *n, char *out, size_t cap)
{
    yt_http_resp_t r;
    out[0] = '\0';
    int st = yt_http_request(&r, n->mon_port, "GET", "/jsz", NULL, NULL, 0);
    if (st != 200) {
        yt_http_resp_free(&r);
        return -1;
    }
    json_t *doc = json_loadb(r.body, r.body_len, 0, NULL);
    const char *leader =
        json_string_value(json_object_get(json_object_get(doc, "meta_cluster"), "leader"));
    snprintf(out, cap, "%s", leader ? leader : "");
    json_decref(doc);
    yt_http_resp_free(&r);
    return 0;
}

/* Nonzero if node n has exited (it is then reaped and its pid file gone). */
static int yt_node_exited(yt_env_t *env, yt_nats_node_t *n)
{
    int status;
    if (n->pid <= 0)
        return 1;
    if (waitpid(n->pid, &status, WNOHANG) != n->pid)
        return 0;
    char path[400];
    snprintf(path, sizeof path, "%s/%s.pid", env->dir, n->name);
    unlink(path);
    n->pid = 0;
    return 1;
}

static int yt_node_spawn(yt_env_t *env, yt_nats_cluster_t *c, int i)
{
    yt_nats_node_t *n = &c->nodes[i];
    char port[16], mon[16], listen[64], routes[256] = "";
    snprintf(port, sizeof port, "%d", n->port);
    snprintf(mon, sizeof mon, "%d", n->mon_port);
    snprintf(listen, sizeof listen, "nats://127.0.0.1:%d", n->route_port);
    for (int j = 0; j < YT_NATS_NODES; j++) {
        size_t len = strlen(routes);
        if (j != i)
            snprintf(routes + len, sizeof routes - len, "%snats://127.0.0.1:%d",
                     len ? "," : "", c->nodes[j].route_port);
    }
    char *bin = access("/usr/sbin/nats-server", X_OK) == 0 ? "/usr/sbin/nats-server" : "nats-server";
    char *argv[] = {bin, "-c", n->conf, "-p", port, "-m", mon, "--cluster", listen,
                    "--routes", routes, NULL};
    n->pid = yt_spawn(env, n->name, argv, NULL);
    return n->pid > 0 ? 0 : -1;
}

/* Waits until node i's /healthz (with the given query) answers 200; -1 if
 * it exits or at the deadline. */
static int yt_node_wait_healthy(yt_env_t *env, yt_nats_cluster_t *c, int i, const char *path)
{
    yt_nats_node_t *n = &c->nodes[i];
    long long deadline = yt_now_ms() + YT_CLUSTER_WAIT_MS;
    while (yt_now_ms() < deadline) {
        if (yt_node_exited(env, n)) {
            fprintf(stderr, "yt_nats_cluster: %s exited during start\n", n->name);
            yt_log_tail(env, n->name);
            return -1;
        }
        if (yt_http_status(n->mon_port, path) == 200)
            return 0;
        yt_nap(50);
    }
    fprintf(stderr, "yt_nats_cluster: %s did not answer %s 200 within %d ms\n", n->name, path,
            YT_CLUSTER_WAIT_MS);
    yt_log_tail(env, n->name);
    return -1;
}

int yt_nats_cluster_start(yt_nats_cluster_t *c, yt_env_t *env)
{
    char src[700], dir[300];
    memset(c, 0, sizeof *c);
    snprintf(dir, sizeof dir, "%s/nats-cluster", env->dir);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "yt_nats_cluster: mkdir %s: %s\n", dir, strerror(errno));
        return -1;
    }
    /* The node files include common.conf from their own folder. */
    char common[500];
    snprintf(src, sizeof src, "%s/ops/nats/common.conf", yt_src_dir());
    snprintf(common, sizeof common, "%s/common.conf", dir);
    if (yt_copy_conf(src, common, NULL) < 0)
        return -1;
    for (int i = 0; i < YT_NATS_NODES; i++) {
        yt_nats_node_t *n = &c->nodes[i];
        snprintf(n->name, sizeof n->name, "nats-%d", i + 1);
        snprintf(n->conf, sizeof n->conf, "%s/node-%d.conf", dir, i + 1);
        snprintf(n->store, sizeof n->store, "%s/store-%d", dir, i + 1);
        snprintf(src, sizeof src, "%s/ops/nats/node-%d.conf", yt_src_dir(), i + 1);
        if (yt_copy_conf(src, n->conf, n->store) < 0)
            return -1;
        n->port = yt_free_port();
        n->mon_port = yt_free_port();
        n->route_port = yt_free_port();
        size_t len = strlen(c->urls);
        snprintf(c->urls + len, sizeof c->urls - len, "%snats://127.0.0.1:%d", i ? "," : "",
                 n->port);
    }
    for (int i = 0; i < YT_NATS_NODES; i++)
        if (yt_node_spawn(env, c, i) < 0)
            return -1;
    for (int i = 0; i < YT_NATS_NODES; i++)
        if (yt_node_wait_healthy(env, c, i, "/healthz") < 0)
            return -1;
    if (yt_nats_cluster_wait_leader(c, YT_CLUSTER_WAIT_MS, NULL, 0) < 0) {
        fprintf(stderr, "yt_nats_cluster: no JetStream meta leader within %d ms\n",
                YT_CLUSTER_WAIT_MS);
        yt_log_tail(env, c->nodes[0].name);
        return -1;
    }
    snprintf(env->nats_url, sizeof env->nats_url, "%s", c->urls);
    return 0;
}

int yt_nats_cluster_wait_leader(yt_nats_cluster_t *c, int timeout_ms, char *leader, size_t cap)
{
    long long deadline = yt_now_ms() + timeout_ms;
    do {
        char first[64] = "", got[64];
        int agreed = 1;
        for (int i = 0; i < YT_NATS_NODES && agreed; i++) {
            if (c->nodes[i].pid <= 0)
                continue;
            if (yt_node_meta_leader(&c->nodes[i], got, sizeof got) < 0 || !got[0])
                agreed = 0;
            else if (!first[0])
                snprintf(first, sizeof first, "%s", got);
            else if (strcmp(first, got) != 0)
                agreed = 0;
        }
        if (agreed && first[0]) {
            if (leader && cap)
                snprintf(leader, cap, "%s", first);
            return 0;
        }
        yt_nap(100);
    } while (yt_now_ms() < deadline);
    return -1;
}

int yt_nats_node_stop(yt_env_t *env, yt_nats_cluster_t *c, int i)
{
    yt_nats_node_t *n = &c->nodes[i];
    if (n->pid <= 0)
        return 0;
    if (yt_kill_wait(n->pid, SIGTERM, 10000) < 0 && yt_kill_wait(n->pid, SIGKILL, 5000) < 0) {
        fprintf(stderr, "yt_nats_cluster: %s (pid %d) did not stop\n", n->name, (int)n->pid);
        return -1;
    }
    char path[400];
    snprintf(path, sizeof path, "%s/%s.pid", env->dir, n->name);
    unlink(path);
    n->pid = 0;
    return 0;
}

int yt_nats_node_start(yt_env_t *env, yt_nats_cluster_t *c, int i)
{
    if (c->nodes[i].pid > 0)
        return 0;
    if (yt_node_spawn(env, c, i) < 0)
        return -1;
    return yt_node_wait_healthy(env, c, i, "/healthz?js-enabled-only=true");
}

void yt_nats_cluster_stop(yt_env_t *env, yt_nats_cluster_t *c)
{
    for (int i = 0; env && i < YT_NATS_NODES; i++)
        yt_nats_node_stop(env, c, i);
}
