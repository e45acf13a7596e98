/*
 * js_info.c - JetStream's account, stream, consumer and server information
 * as one JSON document (js_info.h).
 */
#include <stdio.h>
#include <stdlib.h>

#include "err.h"
#include "js_info.h"
#include "js_internal.h"
#include "redact.h"

static const char *retention_name(jsRetentionPolicy r)
{
    return r == js_InterestPolicy ? "interest" : r == js_WorkQueuePolicy ? "workqueue" : "limits";
}

static json_t *cluster_json(const jsClusterInfo *c)
{
    if (!c)
        return json_null();
    json_t *reps = json_array();
    for (int i = 0; reps && i < c->ReplicasLen; i++) {
        const jsPeerInfo *p = c->Replicas[i];
        json_array_append_new(reps, json_pack("{s:s?, s:b, s:b, s:I, s:I}", "name", p->Name,
                                              "current", p->Current, "offline", p->Offline,
                                              "lag", (json_int_t)p->Lag, "active_ms",
                                              (json_int_t)(p->Active / 1000000)));
    }
    return json_pack("{s:s?, s:s?, s:o*}", "name", c->Name, "leader", c->Leader, "replicas",
                     reps);
}

static json_t *consumer_json(const jsConsumerInfo *ci)
{
    return json_pack("{s:s?, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "name", ci->Name, "pending",
                     (json_int_t)ci->NumPending, "ack_pending", (json_int_t)ci->NumAckPending,
                     "redelivered", (json_int_t)ci->NumRedelivered, "waiting",
                     (json_int_t)ci->NumWaiting, "lag",
                     (json_int_t)(ci->NumPending + (uint64_t)ci->NumAckPending),
                     "delivered_seq", (json_int_t)ci->Delivered.Stream, "ack_floor_seq",
                     (json_int_t)ci->AckFloor.Stream);
}

/* The JSON of stream si with its consumers (listed here). */
static int stream_json(json_t **out, jsCtx *ctx, const jsStreamInfo *si)
{
    jsConsumerInfoList *cl = NULL;
    jsErrCode jerr = 0;
    const jsStreamConfig *sc = si->Config;
    natsStatus s = js_Consumers(&cl, ctx, sc->Name, NULL, &jerr);
    if (s == NATS_NOT_FOUND)
        s = NATS_OK; /* no consumers */
    int rc = yard_js_status(s, jerr, "cluster info: list consumers");
    if (rc < 0)
        return rc;
    json_t *subjects = json_array(), *consumers = json_array();
    for (int i = 0; subjects && i < sc->SubjectsLen; i++)
        json_array_append_new(subjects, json_string(sc->Subjects[i]));
    for (int i = 0; cl && consumers && i < cl->Count; i++)
        json_array_append_new(consumers, consumer_json(cl->List[i]));
    jsConsumerInfoList_Destroy(cl);
    *out = json_pack("{s:s?, s:o*, s:I, s:s, s:I, s:I, s:I, s:I, s:I, s:o*, s:o*}", "name",
                     sc->Name, "subjects", subjects, "replicas", (json_int_t)sc->Replicas,
                     "retention", retention_name(sc->Retention), "messages",
                     (json_int_t)si->State.Msgs, "bytes", (json_int_t)si->State.Bytes,
                     "first_seq", (json_int_t)si->State.FirstSeq, "last_seq",
                     (json_int_t)si->State.LastSeq, "consumer_count",
                     (json_int_t)si->State.Consumers, "cluster", cluster_json(si->Cluster),
                     "consumers", consumers);
    return *out ? 0 : YARD_ENOMEM;
}

int yard_js_cluster_info(json_t **out, yard_js_t *js)
{
    natsConnection *nc = yard_js_conn(js);
    jsCtx *ctx = yard_js_ctx(js);
    jsAccountInfo *ai = NULL;
    jsStreamInfoList *sl = NULL;
    jsErrCode jerr = 0;
    char id[128] = "", url[256] = "", shown[256];
    char **servers = NULL;
    int nservers = 0, rc;
    json_t *doc = NULL, *streams = json_array(), *srv = json_array();

    rc = yard_js_status(js_GetAccountInfo(&ai, ctx, NULL, &jerr), jerr, "cluster info: account");
    if (rc == 0)
        rc = yard_js_status(js_Streams(&sl, ctx, NULL, &jerr), jerr, "cluster info: streams");
    for (int i = 0; rc == 0 && sl && i < sl->Count; i++) {
        json_t *sj = NULL;
        rc = stream_json(&sj, ctx, sl->List[i]);
        if (rc == 0)
            json_array_append_new(streams, sj);
    }
    if (rc == 0) {
        natsConnection_GetConnectedServerId(nc, id, sizeof id);
        /* The URL carries the user's password (nats://user:pass@host): masked. */
        natsConnection_GetConnectedUrl(nc, url, sizeof url);
        yard_redact_dsn(shown, sizeof shown, url);
        if (natsConnection_GetServers(nc, &servers, &nservers) != NATS_OK)
            nservers = 0;
        for (int i = 0; i < nservers; i++) {
            json_array_append_new(srv, json_string(servers[i]));
            free(servers[i]);
        }
        free(servers);
        doc = json_pack("{s:{s:s, s:s}, s:O, s:{s:I, s:I, s:I, s:I, s:I, s:I}, s:O}", "server",
                        "id", id, "url", shown, "servers", srv, "account", "memory",
                        (json_int_t)ai->Memory, "storage", (json_int_t)ai->Store, "streams",
                        (json_int_t)ai->Streams, "consumers", (json_int_t)ai->Consumers,
                        "api_total", (json_int_t)ai->API.Total, "api_errors",
                        (json_int_t)ai->API.Errors, "streams", streams);
        if (!doc)
            rc = YARD_ENOMEM;
    }
    json_decref(streams);
    json_decref(srv);
    jsStreamInfoList_Destroy(sl);
    jsAccountInfo_Destroy(ai);
    if (rc == 0)
        *out = doc;
    return rc;
}
