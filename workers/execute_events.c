/*
 * execute_events.c - the execute role's lifecycle events (bus/events.h):
 * job.started when a claim lets a job run, and the outcome of each
 * recorded attempt (job.succeeded, job.attempt_failed, job.dead,
 * job.cancelled).
 *
 * Each batch of events travels as one message (a grouped batch, events.h):
 * the started events of a claim, the outcomes of a commit.
 *
 * Durability: the events of a committer batch are published (one wait)
 * before the batch's transaction, and the job messages
 * are acked after it; when a publish fails nothing is written and the
 * messages come back. So an outcome PostgreSQL holds always has its event,
 * and a crash anywhere republishes under the same event ids (no-ops). A
 * started event is published by the fetcher right after the claim, without
 * waiting; the committer looks whether it was stored and, if not (yet),
 * publishes it again before the outcome.
 */
#include <stdio.h>
#include <stdlib.h>

#include <jansson.h>

#include "err.h"
#include "events.h"
#include "execute.h"
#include "log.h"

/* Adds the started event of it (its attempt number as the event's key). */
static void exec_event_started_add(yard_event_batch_t *b, const wk_t *wk,
                                   const wk_execute_item_t *it)
{
    char actor[160], key[16];
    wk_event_actor(actor, sizeof actor, wk);
    snprintf(key, sizeof key, "%u", it->attempt);
    json_t *d = json_pack("{s:i, s:s, s:s, s:i}", "attempt", (int)it->attempt, "queue",
                          it->q->name, "type", it->type, "delivered", (int)it->delivered);
    char *data = d ? json_dumps(d, JSON_COMPACT) : NULL;
    json_decref(d);
    yard_event_t e = {YARD_EVENT_JOB, YARD_EVENT_STARTED, it->id, key, actor,
                      it->started_wall_ms, it->trace[0] ? it->trace : NULL, data};
    yard_event_batch_add(b, &e);
    free(data);
}

void wk_execute_events_started(wk_runtime_t *rt, wk_execute_item_t **items, const int *claimed,
                               size_t n)
{
    yard_event_batch_t *b = NULL;
    if (yard_event_batch_create_grouped(&b, rt->wk->js) < 0)
        return; /* no started batch: the committer publishes them */
    for (size_t i = 0; i < n; i++)
        if (items[i] && claimed[i] > 0) {
            items[i]->attempt = (unsigned)claimed[i];
            exec_event_started_add(b, rt->wk, items[i]);
            yard_event_batch_retain(b);
            items[i]->started = b;
        }
    yard_event_batch_flush(b); /* one message for the claim's started events */
    yard_event_batch_destroy(b);
}

/* Nonzero once the started event of it is stored (without waiting: the
 * fetcher's publish is usually answered by the time the job finished). */
static int exec_event_started_stored(const wk_execute_item_t *it)
{
    return it->started && yard_event_batch_wait(it->started, 0) == 0;
}

void wk_execute_events_outcome(yard_event_batch_t *b, const wk_t *wk, const wk_execute_item_t *it,
                               const yard_job_attempt_t *rec, int64_t retry_in_ms)
{
    char actor[160], key[16];
    const char *name = NULL;
    int keyed = 0;
    switch (rec->state) {
    case YARD_JOB_SUCCEEDED:
        name = YARD_EVENT_SUCCEEDED;
        break;
    case YARD_JOB_FAILED:
        name = YARD_EVENT_ATTEMPT_FAILED;
        keyed = 1;
        break;
    case YARD_JOB_DEAD:
        name = YARD_EVENT_DEAD; /* again after a replay: keyed by attempt */
        keyed = 1;
        break;
    case YARD_JOB_CANCELLED:
        name = YARD_EVENT_CANCELLED;
        break;
    default:
        return;
    }
    /* Not stored (yet, or failed): again, under the same id, before the
     * outcome on the same connection, so the stream keeps them in order. */
    if (!exec_event_started_stored(it))
        exec_event_started_add(b, wk, it);
    wk_event_actor(actor, sizeof actor, wk);
    snprintf(key, sizeof key, "%u", rec->attempt);
    json_t *d = json_pack("{s:i, s:s, s:I}", "attempt", (int)rec->attempt, "outcome",
                          rec->outcome, "duration_ms", (json_int_t)rec->duration_ms);
    if (d && rec->error)
        json_object_set_new(d, "error", json_string(rec->error));
    if (d && rec->state == YARD_JOB_FAILED)
        json_object_set_new(d, "retry_in_ms", json_integer((json_int_t)retry_in_ms));
    char *data = d ? json_dumps(d, JSON_COMPACT) : NULL;
    json_decref(d);
    yard_event_t e = {YARD_EVENT_JOB, name, it->id, keyed ? key : NULL, actor, 0,
                      it->trace[0] ? it->trace : NULL, data};
    yard_event_batch_add(b, &e);
    free(data);
}

int wk_execute_event_poison(wk_t *wk, const char *job_id, const char *trace, unsigned attempts,
                            const char *why)
{
    char actor[160], key[16];
    wk_event_actor(actor, sizeof actor, wk);
    snprintf(key, sizeof key, "%u", attempts);
    json_t *d = json_pack("{s:i, s:s, s:s}", "attempt", (int)attempts, "outcome", "dead",
                          "error", why ? why : "");
    char *data = d ? json_dumps(d, JSON_COMPACT) : NULL;
    json_decref(d);
    yard_event_t e = {YARD_EVENT_JOB, YARD_EVENT_DEAD, job_id, key, actor, 0,
                      trace && trace[0] ? trace : NULL, data};
    int rc = yard_event_publish(wk->js, &e, wk->cfg.js_publish_timeout_ms);
    free(data);
    return rc;
}
