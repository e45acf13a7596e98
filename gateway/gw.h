/*
 * gw.h - the gateway's program state and the functions its modules share.
 *
 * One gw_t holds everything the running gateway has: the loop, the HTTP
 * server and router, the JetStream connection, the blocking-work pool, the
 * API key cache and rate limiter, the metrics registry. Modules register
 * their routes on gw->router (jobs_submit.c, jobs_read.c, health.c) and use
 * gw_access to authenticate and rate-limit a request.
 */
#ifndef GW_GW_H
#define GW_GW_H

#include <pthread.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "auth.h"
#include "config.h"
#include "http_health.h"
#include "http_router.h"
#include "http_server.h"
#include "id.h"
#include "job_spec.h"
#include "js.h"
#include "metrics.h"
#include "pool.h"
#include "queue_stats.h"
#include "ratelimit.h"

#define GW_MAX_QUEUES 64
#define GW_KEYS_USED_MAX 256

typedef struct gw_ack gw_ack_t;
typedef struct gw_accepted_group gw_accepted_group_t;

/* Room left beside an envelope for a message's NATS headers and the
 * accepted-event framing: a job whose envelope fits a JOBS message with this
 * room also fits an accepted event on its own. */
#define GW_NATS_HEADERS_ROOM 1024

typedef struct gw {
    uv_loop_t *loop;
    yard_config_t cfg;
    yard_http_server_t *http;
    yard_http_router_t *router;
    yard_http_health_t health;
    yard_js_t *js;
    gw_pool_t *pool;
    yard_id_gen_t ids;
    uint8_t id_secret[YARD_ID_SECRET_LEN];

    /* served queues and the rules for job specs */
    char queue_bufs[GW_MAX_QUEUES][YARD_QUEUE_NAME_MAX + 1];
    const char *queues[GW_MAX_QUEUES];
    size_t nqueues;
    gw_job_rules_t rules;
    yard_sealer_t *sealer; /* seals jobs' secrets; NULL without secrets_public_key */

    /* auth: the current keyset is owned by the loop thread */
    gw_keyset_t *keys;
    uint64_t keys_loaded_ms; /* 0: never loaded */
    int keys_loading;
    gw_rate_t *rate;
    uv_timer_t keys_timer;
    /* Keys seen since the last refresh; their api_keys.last_used_at is
     * written with the next one (bounded: more keys wait a period). */
    char keys_used[GW_KEYS_USED_MAX][GW_AUTH_ID_MAX + 1];
    size_t nkeys_used;

    /* PubAcks come back on nats.c threads and are handed to the loop here */
    uv_async_t acks_async;
    pthread_mutex_t acks_mu;
    gw_ack_t *acks_head;
    gw_accepted_group_t *accepted; /* accepted events not yet published (accepted.c) */

    uv_signal_t sig_term, sig_int;
    uv_timer_t stats_timer; /* queue depth gauges (queue_stats.c) */
    int stats_busy;
    uv_timer_t probe_timer; /* readiness: the job tables answer (health.c) */
    int probe_busy;
    int tables_ok;          /* the last probe succeeded */
    int stopping;
    int exit_code;

    /* metrics */
    yard_metrics_t *metrics;
    yard_metrics_family_t *m_requests, *m_latency, *m_published, *m_auth_fail;
    yard_metrics_gauge_t *m_queue[3][GW_MAX_QUEUES]; /* pending, in flight, dead */
    yard_metrics_gauge_t *m_queue_age[GW_MAX_QUEUES];  /* oldest queued job's wait */
    yard_metrics_gauge_t *m_consumer[2][GW_STATS_CONSUMERS]; /* pending, ack pending */
} gw_t;

/* Starts everything cfg describes: connects to NATS (retrying until it
 * answers or the loop is asked to stop), ensures the topology, loads API
 * keys, listens. Returns 0 and sets *out, or a negative code (logged). */
int gw_create(gw_t **out, const yard_config_t *cfg);

/* Runs the loop until SIGTERM/SIGINT and a graceful stop. Returns the exit
 * status for main. */
int gw_run(gw_t *gw);

/* Frees what gw_create made. NULL is a no-op. */
void gw_destroy(gw_t *gw);

/* Authenticates req for scope (YARD_SCOPE_*), then takes cost tokens from
 * the key's rate limit. Returns 0 with *who filled (an anonymous principal
 * with every scope when auth is disabled); otherwise it has already answered
 * req (401, 403, 429 with Retry-After, 503 while keys are not loaded) and
 * returns a negative code: the caller must not touch req again. */
int gw_access(gw_t *gw, yard_http_req_t *req, unsigned scope, double cost, gw_principal_t *who);

/* The two halves of gw_access, for a route that learns its cost only from
 * the body: authenticate first (so no body of an unknown caller is ever
 * decoded), then charge. Same answers and returns as gw_access. */
int gw_authenticate(gw_t *gw, yard_http_req_t *req, unsigned scope, gw_principal_t *who);
int gw_rate_charge(gw_t *gw, yard_http_req_t *req, const gw_principal_t *who, double cost);

/* Answers req with status and v as compact JSON (v is consumed). */
void gw_respond_json(yard_http_req_t *req, int status, json_t *v);

/* Answers 503 with Retry-After: 1 and the API error shape. */
void gw_respond_unavailable(yard_http_req_t *req, const char *message);

/* Decodes req's body per its Content-Type (JSON or msgpack) into a new
 * json_t (json_decref it); answers 415/400 itself and returns NULL on
 * failure. */
json_t *gw_request_body(yard_http_req_t *req);

/* Routes of each module. Return 0 or a router error. */
int gw_jobs_submit_routes(gw_t *gw);
int gw_schedules_routes(gw_t *gw);
int gw_jobs_read_routes(gw_t *gw);
int gw_jobs_list_routes(gw_t *gw); /* jobs_list.c */
int gw_ui_routes(gw_t *gw);        /* ui.c: the web console */
int gw_health_routes(gw_t *gw);
int gw_dlq_routes(gw_t *gw); /* GET /v1/dlq, POST /v1/dlq/replay (dlq.c) */
int gw_workflows_routes(gw_t *gw);

/* A W3C traceparent: "00-<32 hex trace id>-<16 hex parent id>-<flags>". */
#define GW_TRACEPARENT_LEN 55

/* Writes req's traceparent header into tp when well formed, else a fresh
 * one, and names its trace id in req's access log (jobs_submit.c). */
void gw_request_traceparent(gw_t *gw, yard_http_req_t *req, char tp[GW_TRACEPARENT_LEN + 1]);

/* Called by the PubAck hop (app.c) on the loop thread for each ack of
 * jobs_submit.c's publishes. */
struct gw_ack {
    gw_ack_t *next;
    void (*complete)(gw_ack_t *ack); /* runs on the loop thread */
    int rc;
    int duplicate;
};

/* Hands ack to the loop thread (call from any thread); ack->complete runs
 * there later. */
void gw_ack_post(gw_t *gw, gw_ack_t *ack);

/* Called on the loop thread with the outcome (0 or an error) of the
 * accepted event that carried a job. */
typedef void (*gw_accepted_cb)(void *ud, int rc);

/* Adds a job JOBS stored as message seq (env/len: its envelope, which must
 * stay valid until cb runs) to the open accepted-event group; cb(ud, rc)
 * runs once the group's event is stored or failed. Loop thread. */
void gw_accepted_add(gw_t *gw, uint64_t seq, const char *env, size_t len, gw_accepted_cb cb,
                     void *ud);

/* Publishes the open group, if any (called once the acks of a loop
 * iteration are handled, so acks that came together share one event). */
void gw_accepted_flush(gw_t *gw);

/* Monotonic milliseconds. */
uint64_t gw_now_ms(void);

#endif
