/*
 * accepted.c - the gateway's accepted events (gw.h gw_accepted_add): every
 * job JOBS stored is announced on EVENTS, with its envelope and JOBS
 * sequence, before its 202, so the audit role records it and the rescuer
 * knows it even if JOBS loses it. Jobs whose PubAcks arrive together share
 * one event message (bus/accepted.h), so the accept path pays one more
 * publish per group of acks, not per job.
 */
#include <stdlib.h>
#include <string.h>

#include "accepted.h"
#include "err.h"
#include "gw.h"
#include "log.h"

#define GW_ACCEPTED_MAX_JOBS 1000

typedef struct {
    yard_accepted_t job;
    gw_accepted_cb cb;
    void *ud;
} accepted_entry_t;

struct gw_accepted_group {
    gw_ack_t ack; /* first: the ack hop hands it back */
    gw_t *gw;
    size_t n, bytes;
    accepted_entry_t entries[GW_ACCEPTED_MAX_JOBS];
};

/* Loop thread: the group's event is stored (or not); tell every job. */
static void group_done(gw_ack_t *ack)
{
    gw_accepted_group_t *g = (gw_accepted_group_t *)ack;
    if (ack->rc < 0)
        YARD_LOG_WARN(NULL, "accepted event of %zu jobs not stored: %s (the jobs are in JOBS "
                            "and run; their rows appear when claimed)",
                      g->n, yard_strerror(ack->rc));
    for (size_t i = 0; i < g->n; i++)
        g->entries[i].cb(g->entries[i].ud, ack->rc);
    free(g);
}

/* nats.c thread: hand the PubAck to the loop. */
static void group_on_puback(void *ud, int rc, const yard_js_puback_t *pa)
{
    gw_accepted_group_t *g = ud;
    g->ack.rc = rc;
    gw_ack_post(g->gw, &g->ack);
}

/* The largest event EVENTS and the server take. */
static size_t group_limit(gw_t *gw)
{
    int64_t server = yard_js_max_payload(gw->js);
    int64_t limit = YARD_JS_MAX_MSG_SIZE;
    if (server > 0 && server < limit)
        limit = server;
    return (size_t)(limit - GW_NATS_HEADERS_ROOM + YARD_ACCEPTED_HEAD + YARD_ACCEPTED_ITEM);
}

void gw_accepted_flush(gw_t *gw)
{
    gw_accepted_group_t *g = gw->accepted;
    if (!g)
        return;
    gw->accepted = NULL;
    yard_accepted_t jobs[GW_ACCEPTED_MAX_JOBS];
    for (size_t i = 0; i < g->n; i++)
        jobs[i] = g->entries[i].job;
    size_t len = 0;
    char *buf = malloc(g->bytes);
    int rc = buf ? yard_accepted_encode(buf, g->bytes, jobs, g->n, &len) : YARD_ENOMEM;
    if (rc == 0) {
        yard_js_pub_t pub = {YARD_SUBJ_EVENT_ACCEPTED, NULL, NULL, 0, buf, len};
        rc = yard_js_publish_async(gw->js, &pub, group_on_puback, g);
    }
    free(buf);
    if (rc < 0) {
        g->ack.rc = rc;
        group_done(&g->ack);
    }
}

void gw_accepted_add(gw_t *gw, uint64_t seq, const char *env, size_t len, gw_accepted_cb cb,
                     void *ud)
{
    size_t need = YARD_ACCEPTED_ITEM + len;
    gw_accepted_group_t *g = gw->accepted;
    if (g && (g->n == GW_ACCEPTED_MAX_JOBS || g->bytes + need > group_limit(gw))) {
        gw_accepted_flush(gw);
        g = NULL;
    }
    if (!g) {
        if (!(g = malloc(sizeof *g))) {
            cb(ud, YARD_ENOMEM);
            return;
        }
        g->gw = gw;
        g->n = 0;
        g->bytes = YARD_ACCEPTED_HEAD;
        g->ack.complete = group_done;
        gw->accepted = g;
    }
    g->entries[g->n++] = (accepted_entry_t){{seq, env, len}, cb, ud};
    g->bytes += need;
}
