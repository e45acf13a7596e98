/*
 * js_topology.c - ensures the streams and durable consumers of DESIGN.md.
 *
 *   JOBS    jobs.>    work queue: a job message leaves the stream once the
 *                     one consumer of its subject acked (or terminated) it;
 *                     discard new when full, so a full stream refuses (503)
 *                     instead of dropping accepted jobs.
 *   EVENTS  events.>  limits (age): lifecycle events, read by `audit` and,
 *                     for accepted jobs, by `submissions`.
 *   DLQ     dlq.>     limits (age, 0 = forever): dead jobs for operators.
 *
 * Consumers (durable, pull, explicit ack): execute_<queue> on
 * jobs.execute.<queue> (and its priority tiers, js.h), schedule on jobs.schedule, notify on jobs.notify (on
 * JOBS, whose filters never overlap), submissions on events.jobs.accepted
 * and audit on events.> (EVENTS).
 *
 * Why a work queue: under interest retention (the first design) nats-server
 * 2.9.10 lost accepted jobs across a restart (it restored the messages, then
 * removed them as if every consumer had acked), and its duplicate table,
 * rebuilt from the messages left, forgot the ids of removed ones. A work
 * queue keeps a message until its own consumer acks it, which the workers
 * do only after PostgreSQL recorded the outcome. A work queue refuses two
 * consumers with overlapping filters, and a mirror of it blocks new
 * consumers (error 10100) and takes messages away when no other consumer
 * has interest (both measured on 2.9.10): so the audit role learns of
 * submissions from the gateway's accepted event, not from JOBS.
 *
 * Ensuring compares what exists with what is wanted and only creates or
 * updates the difference, so running it on every start is cheap and safe.
 * A JOBS stream made by an older version (interest retention) cannot be
 * updated in place: an empty one is recreated; one still holding messages
 * is refused with a message saying what to do.
 */
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "js_internal.h"
#include "log.h"
#include "names.h"

#define NS_PER_S INT64_C(1000000000)

void yard_js_execute_names(char durable[YARD_JS_NAME_MAX], char subject[YARD_JS_NAME_MAX],
                           const char *queue)
{
    snprintf(durable, YARD_JS_NAME_MAX, "%s%s", YARD_CONSUMER_EXECUTE, queue);
    snprintf(subject, YARD_JS_NAME_MAX, "%s%s", YARD_SUBJ_EXECUTE, queue);
    for (char *p = durable; *p; p++)
        if (*p == '.')
            *p = '_';
}

void yard_js_execute_tier_names(char durable[YARD_JS_NAME_MAX], char subject[YARD_JS_NAME_MAX],
                                const char *queue, int priority)
{
    yard_js_execute_names(durable, subject, queue);
    const char *subj = priority == 2 ? YARD_SUBJ_TIER_HIGH : priority == 0 ? YARD_SUBJ_TIER_LOW : "";
    const char *cons =
        priority == 2 ? YARD_CONSUMER_TIER_HIGH : priority == 0 ? YARD_CONSUMER_TIER_LOW : "";
    size_t d = strlen(durable), s = strlen(subject);
    snprintf(durable + d, YARD_JS_NAME_MAX - d, "%s", cons);
    snprintf(subject + s, YARD_JS_NAME_MAX - s, "%s", subj);
}

int yard_js_parse_queues(const char *list, char bufs[][YARD_QUEUE_NAME_MAX + 1],
                         const char **names, size_t max)
{
    size_t n = 0;
    const char *p = list;
    while (p && *p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len > 0 && *p == ' ') {
            p++;
            len--;
        }
        while (len > 0 && p[len - 1] == ' ')
            len--;
        if (len > 0) {
            if (!yard_name_valid(p, len) || n == max)
                return YARD_EINVAL;
            memcpy(bufs[n], p, len);
            bufs[n][len] = '\0';
            names[n] = bufs[n];
            n++;
        }
        p = end ? end + 1 : NULL;
    }
    return (int)n;
}

/* The stream configuration we want for name. */
static void topo_stream_want(jsStreamConfig *sc, const yard_config_t *cfg, const char *name,
                             const char **subject)
{
    jsStreamConfig_Init(sc);
    sc->Name = name;
    sc->Subjects = subject;
    sc->SubjectsLen = 1;
    sc->Storage = js_FileStorage;
    sc->Replicas = cfg->js_replicas;
    sc->Duplicates = cfg->js_duplicate_window_s * NS_PER_S;
    sc->MaxMsgSize = YARD_JS_MAX_MSG_SIZE;
    if (strcmp(name, YARD_STREAM_JOBS) == 0) {
        sc->Retention = js_WorkQueuePolicy;
        sc->Discard = js_DiscardNew;
    } else {
        sc->Retention = js_LimitsPolicy;
        sc->Discard = js_DiscardOld;
        sc->MaxAge = (strcmp(name, YARD_STREAM_EVENTS) == 0 ? cfg->js_events_max_age_s
                                                             : cfg->js_dlq_max_age_s) *
                     NS_PER_S;
    }
}

static int topo_stream_matches(const jsStreamConfig *have, const jsStreamConfig *want)
{
    return have->SubjectsLen == 1 && strcmp(have->Subjects[0], want->Subjects[0]) == 0 &&
           have->Retention == want->Retention && have->Discard == want->Discard &&
           have->Storage == want->Storage && have->Replicas == want->Replicas &&
           have->Duplicates == want->Duplicates && have->MaxAge == want->MaxAge &&
           have->MaxMsgSize == want->MaxMsgSize;
}

static int topo_ensure_stream(yard_js_t *js, const yard_config_t *cfg, const char *name,
                              const char *subject, int *changes)
{
    jsStreamInfo *si = NULL;
    jsStreamConfig want;
    jsErrCode jerr = 0;
    const char *subjects[1] = {subject};
    char what[128];
    topo_stream_want(&want, cfg, name, subjects);
    natsStatus s = js_GetStreamInfo(&si, yard_js_ctx(js), name, NULL, &jerr);
    if (s == NATS_OK && topo_stream_matches(si->Config, &want)) {
        jsStreamInfo_Destroy(si);
        return 0;
    }
    int exists = s == NATS_OK;
    if (exists && si->Config->Retention != want.Retention) {
        /* Retention cannot change in place: recreate an empty stream. */
        uint64_t held = si->State.Msgs;
        jsStreamInfo_Destroy(si);
        if (held > 0) {
            YARD_LOG_ERROR(NULL,
                           "jetstream: stream %s has another retention policy (made by an "
                           "earlier version) and still holds %llu messages; stop the gateway, let "
                           "the earlier version's workers drain it, delete it (`nats stream rm "
                           "%s`) and start again",
                           name, (unsigned long long)held, name);
            return YARD_ESTATE;
        }
        s = js_DeleteStream(yard_js_ctx(js), name, NULL, &jerr);
        if (s != NATS_OK) {
            snprintf(what, sizeof what, "stream %s: delete to change retention", name);
            return yard_js_status(s, jerr, what);
        }
        YARD_LOG_WARN(NULL, "jetstream: recreating empty stream %s with a new retention", name);
        exists = 0;
        s = NATS_NOT_FOUND;
    } else {
        jsStreamInfo_Destroy(si);
    }
    si = NULL;
    if (!exists && s != NATS_NOT_FOUND && jerr != JSStreamNotFoundErr) {
        snprintf(what, sizeof what, "stream %s: info", name);
        return yard_js_status(s, jerr, what);
    }
    jerr = 0;
    s = exists ? js_UpdateStream(&si, yard_js_ctx(js), &want, NULL, &jerr)
               : js_AddStream(&si, yard_js_ctx(js), &want, NULL, &jerr);
    jsStreamInfo_Destroy(si);
    if (s != NATS_OK) {
        snprintf(what, sizeof what, "stream %s: %s", name, exists ? "update" : "create");
        return yard_js_status(s, jerr, what);
    }
    YARD_LOG_INFO(NULL, "jetstream: %s stream %s (%s)", exists ? "updated" : "created", name,
                  subject);
    (*changes)++;
    return 0;
}

static void topo_consumer_want(jsConsumerConfig *cc, const yard_config_t *cfg,
                               const char *durable, const char *filter)
{
    jsConsumerConfig_Init(cc);
    cc->Durable = durable;
    cc->FilterSubject = filter;
    cc->DeliverPolicy = js_DeliverAll;
    cc->AckPolicy = js_AckExplicit;
    cc->AckWait = cfg->js_ack_wait_s * NS_PER_S;
    cc->MaxDeliver = cfg->js_max_deliver;
    cc->MaxAckPending = 20000;
    cc->MaxWaiting = 512;
}

static int topo_consumer_matches(const jsConsumerConfig *have, const jsConsumerConfig *want)
{
    return have->FilterSubject && strcmp(have->FilterSubject, want->FilterSubject) == 0 &&
           have->AckPolicy == want->AckPolicy && have->AckWait == want->AckWait &&
           have->MaxDeliver == want->MaxDeliver && have->MaxAckPending == want->MaxAckPending &&
           have->DeliverPolicy == want->DeliverPolicy;
}

static int topo_ensure_consumer(yard_js_t *js, const yard_config_t *cfg, const char *stream,
                                const char *durable, const char *filter, int *changes)
{
    jsConsumerInfo *ci = NULL;
    jsConsumerConfig want;
    jsErrCode jerr = 0;
    char what[160];
    topo_consumer_want(&want, cfg, durable, filter);
    natsStatus s = js_GetConsumerInfo(&ci, yard_js_ctx(js), stream, durable, NULL, &jerr);
    if (s == NATS_OK && topo_consumer_matches(ci->Config, &want)) {
        jsConsumerInfo_Destroy(ci);
        return 0;
    }
    int exists = s == NATS_OK;
    jsConsumerInfo_Destroy(ci);
    ci = NULL;
    if (!exists && s != NATS_NOT_FOUND && jerr != JSConsumerNotFoundErr) {
        snprintf(what, sizeof what, "consumer %s.%s: info", stream, durable);
        return yard_js_status(s, jerr, what);
    }
    jerr = 0;
    s = exists ? js_UpdateConsumer(&ci, yard_js_ctx(js), stream, &want, NULL, &jerr)
               : js_AddConsumer(&ci, yard_js_ctx(js), stream, &want, NULL, &jerr);
    jsConsumerInfo_Destroy(ci);
    if (s != NATS_OK) {
        snprintf(what, sizeof what, "consumer %s.%s: %s", stream, durable,
                 exists ? "update" : "create");
        return yard_js_status(s, jerr, what);
    }
    YARD_LOG_INFO(NULL, "jetstream: %s consumer %s on %s (%s)", exists ? "updated" : "created",
                  durable, stream, filter);
    (*changes)++;
    return 0;
}

int yard_js_ensure_topology(yard_js_t *js, const yard_config_t *cfg, const char *const *queues,
                            size_t nqueues, int *changes)
{
    static const struct {
        const char *stream, *subject;
    } streams[] = {{YARD_STREAM_JOBS, "jobs.>"},
                   {YARD_STREAM_EVENTS, "events.>"},
                   {YARD_STREAM_DLQ, "dlq.>"}};
    static const struct {
        const char *stream, *durable, *filter;
    } fixed[] = {{YARD_STREAM_JOBS, YARD_CONSUMER_SCHEDULE, YARD_SUBJ_SCHEDULE},
                 {YARD_STREAM_JOBS, YARD_CONSUMER_NOTIFY, YARD_SUBJ_NOTIFY},
                 {YARD_STREAM_EVENTS, YARD_CONSUMER_SUBMISSIONS, YARD_SUBJ_EVENT_ACCEPTED},
                 {YARD_STREAM_EVENTS, YARD_CONSUMER_AUDIT, YARD_SUBJ_EVENTS_ALL}};
    int n = 0, rc = 0;
    for (size_t i = 0; i < nqueues; i++) {
        if (!yard_name_valid(queues[i], strlen(queues[i]))) {
            YARD_LOG_ERROR(NULL, "jetstream: invalid queue name `%s`", queues[i]);
            return YARD_EINVAL;
        }
    }
    for (size_t i = 0; rc == 0 && i < sizeof streams / sizeof streams[0]; i++)
        rc = topo_ensure_stream(js, cfg, streams[i].stream, streams[i].subject, &n);
    for (size_t i = 0; rc == 0 && i < sizeof fixed / sizeof fixed[0]; i++)
        rc = topo_ensure_consumer(js, cfg, fixed[i].stream, fixed[i].durable, fixed[i].filter,
                                  &n);
    for (size_t i = 0; rc == 0 && i < nqueues; i++) {
        for (int tier = 0; rc == 0 && tier < YARD_JS_TIERS; tier++) {
            char durable[YARD_JS_NAME_MAX], filter[YARD_JS_NAME_MAX];
            yard_js_execute_tier_names(durable, filter, queues[i], tier);
            rc = topo_ensure_consumer(js, cfg, YARD_STREAM_JOBS, durable, filter, &n);
        }
    }
    if (changes)
        *changes = n;
    return rc;
}
