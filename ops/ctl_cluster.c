/*
 * ctl_cluster.c - `yardctl cluster status`: what JetStream says about the
 * cluster (bus/js_info.h): the server yardctl reached and the others it
 * knows, each stream with its replicas (leader, lag), each consumer with its
 * backlog.
 */
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "err.h"
#include "js.h"
#include "js_info.h"
#include "log.h"

const char ctl_cluster_help[] =
    "usage: yardctl cluster status [--json]\n"
    "\n"
    "Prints from JetStream (nats_url, YARD_NATS_URL): the server reached and\n"
    "the cluster's servers; per stream its messages, bytes, replicas, leader and\n"
    "each replica's state and lag; per consumer its pending (not delivered),\n"
    "ack pending (delivered, not acked), redelivered and lag (pending + ack\n"
    "pending: what autoscaling reads). --json prints the whole document.\n"
    "\n"
    "Exit status: 0 done; 1 failed (NATS unreachable); 2 bad arguments; 4 a\n"
    "stream replica is offline or not current.\n";

static long long jint(const json_t *o, const char *k)
{
    return (long long)json_integer_value(json_object_get(o, k));
}

static const char *jstr(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "-";
}

/* Prints the human form of doc; returns nonzero when a replica is unwell. */
static int cluster_print(const json_t *doc)
{
    const json_t *server = json_object_get(doc, "server"), *v;
    size_t i, j;
    int unwell = 0;
    ctl_out_line("server   %s (%s)\n", jstr(server, "url"), jstr(server, "id"));
    json_array_foreach(json_object_get(doc, "servers"), i, v)
        ctl_out_line("known    %s\n", json_string_value(v));
    printf("\n");
    static const char *const sh[] = {"STREAM", "MESSAGES", "BYTES", "REPLICAS", "LEADER",
                                     "REPLICA STATE"};
    static const char *const ch[] = {"STREAM", "CONSUMER", "PENDING", "ACK PENDING",
                                     "REDELIVERED", "LAG"};
    ctl_table_t *st = ctl_table_new(sh, 6, 0), *ct = ctl_table_new(ch, 6, 0);
    json_t *s;
    json_array_foreach(json_object_get(doc, "streams"), i, s)
    {
        char msgs[24], bytes[24], reps[16], state[512] = "";
        const json_t *cl = json_object_get(s, "cluster");
        snprintf(msgs, sizeof msgs, "%lld", jint(s, "messages"));
        snprintf(bytes, sizeof bytes, "%lld", jint(s, "bytes"));
        snprintf(reps, sizeof reps, "%lld", jint(s, "replicas"));
        size_t len = 0;
        json_array_foreach(json_object_get(cl, "replicas"), j, v)
        {
            int ok = json_is_true(json_object_get(v, "current")) &&
                     !json_is_true(json_object_get(v, "offline"));
            unwell |= !ok;
            len += (size_t)snprintf(state + len, len < sizeof state ? sizeof state - len : 0,
                                    "%s%s %s lag %lld", len ? ", " : "", jstr(v, "name"),
                                    ok ? "current" : "BEHIND", jint(v, "lag"));
            if (len >= sizeof state)
                len = sizeof state - 1;
        }
        const char *row[6] = {jstr(s, "name"), msgs, bytes, reps,
                              cl && !json_is_null(cl) ? jstr(cl, "leader") : "-",
                              state[0] ? state : "-"};
        if (st)
            ctl_table_add(st, row);
        json_t *c;
        json_array_foreach(json_object_get(s, "consumers"), j, c)
        {
            char p[24], a[24], r[24], l[24];
            snprintf(p, sizeof p, "%lld", jint(c, "pending"));
            snprintf(a, sizeof a, "%lld", jint(c, "ack_pending"));
            snprintf(r, sizeof r, "%lld", jint(c, "redelivered"));
            snprintf(l, sizeof l, "%lld", jint(c, "lag"));
            const char *crow[6] = {jstr(s, "name"), jstr(c, "name"), p, a, r, l};
            if (ct)
                ctl_table_add(ct, crow);
        }
    }
    if (st)
        ctl_table_print(st, stdout);
    printf("\n");
    if (ct)
        ctl_table_print(ct, stdout);
    ctl_table_free(st);
    ctl_table_free(ct);
    return unwell;
}

int ctl_cmd_cluster(const yard_config_t *cfg, int argc, char **argv)
{
    yard_js_t *js = NULL;
    json_t *doc = NULL;
    if (argc != 2 || strcmp(argv[1], "status") != 0)
        return ctl_usage_error("cluster", "expected `status`");
    if (yard_js_connect(&js, cfg, "yardctl") < 0)
        return CTL_EXIT_FAIL;
    int rc = yard_js_cluster_info(&doc, js);
    yard_js_destroy(js, 1000);
    if (rc < 0)
        return CTL_EXIT_FAIL; /* logged */
    if (ctl_out_json())
        return ctl_out_json_print(doc) < 0 ? CTL_EXIT_FAIL : CTL_EXIT_OK;
    int unwell = cluster_print(doc);
    json_decref(doc);
    return unwell ? CTL_EXIT_PARTIAL : CTL_EXIT_OK;
}
