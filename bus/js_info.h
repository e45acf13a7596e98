/*
 * js_info.h - what JetStream says about the cluster, for operators
 * (`yardctl cluster status`): the account, every stream with its replicas
 * and their lag, every consumer with its backlog, and the servers.
 */
#ifndef YARD_JS_INFO_H
#define YARD_JS_INFO_H

#include <jansson.h>

#include "js.h"

/* Sets *out to a new JSON document:
 *   {"server":{"id","url"}, "servers":[url...],
 *    "account":{"memory","storage","streams","consumers","api_total","api_errors"},
 *    "streams":[{"name","subjects":[...],"replicas","retention","messages","bytes",
 *                "first_seq","last_seq","consumer_count",
 *                "cluster":{"name","leader","replicas":[{"name","current","offline",
 *                           "lag","active_ms"}]} | null,
 *                "consumers":[{"name","pending","ack_pending","redelivered",
 *                              "waiting","lag","delivered_seq","ack_floor_seq"}]}]}
 * where a consumer's lag is pending + ack_pending (what KEDA scales on).
 * Blocks on JetStream API requests. Returns 0 (free with json_decref), or
 * YARD_EUNAVAIL / YARD_ENATS / YARD_ENOMEM (logged). */
int yard_js_cluster_info(json_t **out, yard_js_t *js);

#endif
