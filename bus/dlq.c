/*
 * dlq.c - dead letters: list, show, replay, purge (dlq.h).
 *
 * Letters are read one by one by sequence (js_GetMsg): the DLQ is small in
 * a healthy cluster, and a scan bound (filter scan_max) with a cursor keeps
 * a large one from holding a caller for long.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dlq.h"
#include "err.h"
#include "events.h"
#include "jobs.h"
#include "log.h"

/* How long a purge waits for each letter's event to be stored. */
#define DLQ_EVENT_TIMEOUT_MS 5000

int yard_dlq_parse_time(int64_t *out_ms, const char *text)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *rest = text ? strptime(text, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
    if (!rest)
        return YARD_EINVAL;
    long ms = 0;
    if (*rest == '.') {
        int digits = 0;
        for (rest++; *rest >= '0' && *rest <= '9'; rest++, digits++)
            if (digits < 3)
                ms = ms * 10 + (*rest - '0');
        for (; digits < 3 && digits > 0; digits++)
            ms *= 10;
    }
    if (strcmp(rest, "Z") != 0 && strcmp(rest, "+00:00") != 0)
        return YARD_EINVAL;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return YARD_EINVAL;
    *out_ms = (int64_t)t * 1000 + ms;
    return 0;
}

static const char *header_or_empty(const yard_js_msg_t *m, const char *name)
{
    const char *v = yard_js_msg_header(m, name);
    return v ? v : "";
}

/* Copies view v (or the tail of subject after prefix) into out (cap bytes). */
static void copy_name(char *out, size_t cap, yard_str_t v)
{
    size_t n = v.len < cap - 1 ? v.len : cap - 1;
    if (n)
        memcpy(out, v.ptr, n);
    out[n] = '\0';
}

/* Fills e from message m (taken over) read as letter seq. */
static void entry_from_msg(yard_dlq_entry_t *e, yard_js_msg_t *m, uint64_t seq)
{
    memset(e, 0, sizeof *e);
    e->msg = m;
    e->seq = seq;
    e->job_id = header_or_empty(m, YARD_HDR_JOB_ID);
    e->subject = header_or_empty(m, YARD_HDR_ORIGINAL_SUBJECT);
    e->error = header_or_empty(m, YARD_HDR_LAST_ERROR);
    e->died_at = header_or_empty(m, YARD_HDR_DIED_AT);
    e->attempts = (unsigned)strtoul(header_or_empty(m, YARD_HDR_ATTEMPTS), NULL, 10);
    if (yard_dlq_parse_time(&e->died_at_ms, e->died_at) < 0)
        e->died_at_ms = 0;
    size_t len = 0;
    const void *data = yard_js_msg_data(m, &len);
    e->env_ok = data && yard_env_decode(&e->env, data, len) == 0;
    if (e->env_ok) {
        copy_name(e->queue, sizeof e->queue, e->env.queue);
        copy_name(e->type, sizeof e->type, e->env.type);
    } else if (strcmp(e->subject, YARD_SUBJ_NOTIFY) == 0) {
        /* A webhook notification that ran out of tries (its body is the
         * notification's JSON, schemas/envelope.md): no envelope. */
        copy_name(e->type, sizeof e->type, (yard_str_t){"notify", 6});
    } else if (strncmp(e->subject, YARD_SUBJ_EXECUTE, strlen(YARD_SUBJ_EXECUTE)) == 0) {
        const char *q = e->subject + strlen(YARD_SUBJ_EXECUTE);
        copy_name(e->queue, sizeof e->queue, (yard_str_t){q, strlen(q)});
    }
}

int yard_dlq_get(yard_dlq_entry_t *out, yard_js_t *js, uint64_t seq)
{
    yard_js_msg_t *m = NULL;
    int rc = seq ? yard_js_get_msg(&m, js, YARD_STREAM_DLQ, seq) : YARD_ENOTFOUND;
    if (rc < 0)
        return rc;
    entry_from_msg(out, m, seq);
    return 0;
}

void yard_dlq_entry_clear(yard_dlq_entry_t *e)
{
    if (!e)
        return;
    yard_js_msg_destroy(e->msg);
    memset(e, 0, sizeof *e);
}

int yard_dlq_matches(const yard_dlq_entry_t *e, const yard_dlq_filter_t *f)
{
    if (f->queue && *f->queue && strcmp(e->queue, f->queue) != 0)
        return 0;
    if (f->error_contains && *f->error_contains && !strstr(e->error, f->error_contains))
        return 0;
    if (f->since_ms && e->died_at_ms < f->since_ms)
        return 0;
    if (f->before_ms && (e->died_at_ms == 0 || e->died_at_ms >= f->before_ms))
        return 0;
    if (f->job_id && *f->job_id && strcmp(e->job_id, f->job_id) != 0)
        return 0;
    if (f->owner && *f->owner &&
        (!e->env_ok || !yard_str_eq_cstr(e->env.api_key_id, f->owner)))
        return 0;
    return 1;
}

/* Calls fn(ud, entry) for each letter f selects, oldest first, until fn
 * returns nonzero (< 0: an error to return) or f's limit or scan bound is
 * reached. The entry is cleared after fn unless fn took it (set msg NULL).
 * Sets *cursor (may be NULL) to where a next call should go on, 0 when done. */
typedef int (*dlq_visit_fn)(void *ud, yard_dlq_entry_t *e);
static int dlq_scan(yard_js_t *js, const yard_dlq_filter_t *f, dlq_visit_fn fn, void *ud,
                    uint64_t *cursor)
{
    uint64_t first = 0, last = 0, count = 0;
    size_t taken = 0, scanned = 0;
    int rc = yard_js_stream_state(&first, &last, &count, js, YARD_STREAM_DLQ);
    if (cursor)
        *cursor = 0;
    if (rc < 0 || count == 0)
        return rc;
    uint64_t seq = f->after_seq >= first ? f->after_seq + 1 : first;
    for (; seq <= last; seq++) {
        if ((f->limit && taken >= f->limit) || (f->scan_max && scanned >= f->scan_max)) {
            if (cursor)
                *cursor = seq - 1;
            return 0;
        }
        yard_js_msg_t *m = NULL;
        scanned++;
        rc = yard_js_get_msg(&m, js, YARD_STREAM_DLQ, seq);
        if (rc == YARD_ENOTFOUND)
            continue; /* deleted: a gap */
        if (rc < 0)
            return rc;
        yard_dlq_entry_t e;
        entry_from_msg(&e, m, seq);
        int stop = 0;
        if (yard_dlq_matches(&e, f)) {
            taken++;
            stop = fn(ud, &e);
        }
        yard_dlq_entry_clear(&e);
        if (stop < 0)
            return stop;
        if (stop) {
            if (cursor && seq < last)
                *cursor = seq;
            return 0;
        }
    }
    return 0;
}

typedef struct {
    yard_dlq_list_t *l;
    size_t cap;
} dlq_collect_t;

static int dlq_collect(void *ud, yard_dlq_entry_t *e)
{
    dlq_collect_t *c = ud;
    if (c->l->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        yard_dlq_entry_t *items = realloc(c->l->items, cap * sizeof *items);
        if (!items)
            return YARD_ENOMEM;
        c->l->items = items;
        c->cap = cap;
    }
    c->l->items[c->l->n++] = *e;
    e->msg = NULL; /* taken */
    return 0;
}

int yard_dlq_list(yard_dlq_list_t *out, yard_js_t *js, const yard_dlq_filter_t *f)
{
    yard_dlq_list_t l = {0};
    dlq_collect_t c = {&l, 0};
    int rc = dlq_scan(js, f, dlq_collect, &c, &l.next_cursor);
    /* A full page ends where the next one begins, unless nothing follows. */
    if (rc < 0) {
        yard_dlq_list_free(&l);
        YARD_LOG_ERROR(NULL, "dlq: cannot list the dead letters: %s", yard_strerror(rc));
        return rc;
    }
    *out = l;
    return 0;
}

void yard_dlq_list_free(yard_dlq_list_t *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        yard_dlq_entry_clear(&l->items[i]);
    free(l->items);
    memset(l, 0, sizeof *l);
}

const char *yard_dlq_outcome_name(yard_dlq_outcome_t o)
{
    static const char *const names[] = {"replayed", "would_replay", "missing",
                                        "already_replayed", "failed"};
    return (unsigned)o < sizeof names / sizeof names[0] ? names[o] : "?";
}

static int replay_refuse(yard_dlq_result_t *out, const char *why)
{
    out->outcome = YARD_DLQ_FAILED;
    snprintf(out->why, sizeof out->why, "%s", why);
    return 0;
}

/* Publishes e's job to its original subject with max_attempts, as the
 * replay of letter e->seq. Returns 0 with *seq set, or an error. */
static int replay_publish(uint64_t *seq, yard_js_t *js, const yard_dlq_entry_t *e,
                          unsigned max_attempts, int64_t timeout_ms)
{
    yard_envelope_t env = e->env;
    char msg_id[YARD_MSGID_MAX], tp[YARD_ENV_TP_MAX + 1] = "";
    env.max_attempts = max_attempts;
    size_t cap = yard_env_encoded_size_max(&env), len = 0;
    char *buf = malloc(cap);
    int rc = buf ? yard_env_encode(&env, buf, cap, &len) : YARD_ENOMEM;
    if (env.traceparent.len <= YARD_ENV_TP_MAX && env.traceparent.len)
        memcpy(tp, env.traceparent.ptr, env.traceparent.len);
    yard_js_msg_id(msg_id, YARD_MSGID_REPLAY, e->job_id, e->seq);
    yard_js_header_t hdr = {YARD_HDR_TRACEPARENT, tp};
    yard_js_pub_t pub = {e->subject, msg_id, &hdr, tp[0] ? 1 : 0, buf, len};
    yard_js_puback_t ack = {0};
    if (rc == 0)
        rc = yard_js_publish(&ack, js, &pub, timeout_ms);
    free(buf);
    if (rc == 0)
        *seq = ack.seq;
    return rc;
}

/* Publishes event name (job.replayed, job.purged) of letter e, keyed by its
 * DLQ sequence, so a rerun is a no-op. Returns 0 or an error (logged). */
static int dlq_event(yard_js_t *js, const yard_dlq_entry_t *e, const char *name, const char *who,
                     unsigned max_attempts, int64_t timeout_ms)
{
    char key[24], trace[YARD_TRACE_ID_LEN + 1];
    snprintf(key, sizeof key, "%llu", (unsigned long long)e->seq);
    json_t *d = json_pack("{s:I, s:s, s:s, s:i}", "dlq_seq", (json_int_t)e->seq, "subject",
                          e->subject, "queue", e->queue, "attempts", (int)e->attempts);
    if (d && max_attempts)
        json_object_set_new(d, "max_attempts", json_integer(max_attempts));
    char *data = d ? json_dumps(d, JSON_COMPACT) : NULL;
    json_decref(d);
    yard_event_t ev = {YARD_EVENT_JOB, name, e->job_id[0] ? e->job_id : "unknown", key,
                       who && *who ? who : "unknown", 0,
                       e->env_ok ? yard_env_trace_id(trace, e->env.traceparent) : NULL, data};
    int rc = data ? yard_event_publish(js, &ev, timeout_ms) : YARD_ENOMEM;
    free(data);
    return rc;
}

/* Replays a dead webhook notification: its bytes go back to jobs.notify
 * as they are (the job itself finished long ago and is not touched), as
 * Nats-Msg-Id <job id>.replay.<dlq seq>, so a rerun is deduplicated; the
 * copy is removed after the PubAck. Returns 0 or an error (out says). */
static int replay_notification(yard_dlq_result_t *out, yard_js_t *js, const yard_dlq_entry_t *e,
                               const yard_dlq_replay_opts_t *o)
{
    char msg_id[YARD_MSGID_MAX];
    size_t len = 0;
    const void *data = yard_js_msg_data(e->msg, &len);
    if (o->dry_run) {
        out->outcome = YARD_DLQ_WOULD_REPLAY;
        return 0;
    }
    int rc = dlq_event(js, e, YARD_EVENT_REPLAYED, o->who, 0, o->publish_timeout_ms);
    yard_js_msg_id(msg_id, YARD_MSGID_REPLAY, e->job_id[0] ? e->job_id : "notification", e->seq);
    yard_js_pub_t pub = {YARD_SUBJ_NOTIFY, msg_id, NULL, 0, data, len};
    yard_js_puback_t ack = {0};
    if (rc == 0)
        rc = yard_js_publish(&ack, js, &pub, o->publish_timeout_ms);
    if (rc == 0)
        rc = yard_js_delete_msg(js, YARD_STREAM_DLQ, e->seq);
    if (rc == YARD_ENOTFOUND)
        rc = 0;
    if (rc < 0) {
        snprintf(out->why, sizeof out->why, "notification replay: %s", yard_strerror(rc));
        return rc;
    }
    out->jobs_seq = ack.seq;
    out->outcome = ack.duplicate ? YARD_DLQ_ALREADY_REPLAYED : YARD_DLQ_REPLAYED;
    return 0;
}

int yard_dlq_replay(yard_dlq_result_t *out, yard_js_t *js, PGconn *db, uint64_t seq,
                    const yard_dlq_replay_opts_t *o)
{
    yard_dlq_entry_t e;
    yard_jobs_replay_t plan;
    memset(out, 0, sizeof *out);
    out->seq = seq;
    out->outcome = YARD_DLQ_FAILED;
    int rc = yard_dlq_get(&e, js, seq);
    if (rc == YARD_ENOTFOUND) {
        out->outcome = YARD_DLQ_MISSING;
        return 0;
    }
    if (rc < 0) {
        snprintf(out->why, sizeof out->why, "JetStream: %s", yard_strerror(rc));
        return rc;
    }
    snprintf(out->job_id, sizeof out->job_id, "%s", e.job_id);
    snprintf(out->subject, sizeof out->subject, "%s", e.subject);
    out->attempts = e.attempts;
    yard_log_ctx_t ctx = {NULL, out->job_id, NULL};
    if (strcmp(e.subject, YARD_SUBJ_NOTIFY) == 0) {
        rc = replay_notification(out, js, &e, o);
        goto done;
    }
    if (!e.env_ok || !e.subject[0] || !yard_str_eq_cstr(e.env.id, e.job_id)) {
        rc = replay_refuse(out, "the letter holds no readable job");
        goto done;
    }
    rc = yard_jobs_replay_plan(&plan, db, e.job_id, seq);
    if (rc == YARD_ENOTFOUND) {
        rc = replay_refuse(out, "the job has no row in PostgreSQL (pruned?)");
        goto done;
    }
    if (rc < 0) {
        snprintf(out->why, sizeof out->why, "PostgreSQL: %s", yard_strerror(rc));
        goto done;
    }
    out->max_attempts = plan.max_attempts;
    if (plan.plan == YARD_REPLAY_REFUSED) {
        snprintf(out->why, sizeof out->why, "the job is %s, not dead",
                 yard_job_state_name(plan.state));
        rc = 0;
        goto done;
    }
    if (o->dry_run) {
        out->outcome = plan.plan == YARD_REPLAY_DONE ? YARD_DLQ_ALREADY_REPLAYED
                                                     : YARD_DLQ_WOULD_REPLAY;
        rc = 0;
        goto done;
    }
    /* The event before the change: a replay that happens is always in
     * the audit log (a rerun republishes it under the same id). */
    if (plan.plan == YARD_REPLAY_FRESH || plan.plan == YARD_REPLAY_RESUME) {
        rc = dlq_event(js, &e, YARD_EVENT_REPLAYED, o->who, out->max_attempts,
                       o->publish_timeout_ms);
        if (rc < 0) {
            snprintf(out->why, sizeof out->why, "event: %s", yard_strerror(rc));
            goto done;
        }
    }
    if (plan.plan == YARD_REPLAY_FRESH) {
        rc = yard_jobs_replay_mark(&out->max_attempts, db, e.job_id, seq, o->who);
        if (rc == YARD_ESTATE) { /* another replay got there first */
            rc = 0;
            out->outcome = YARD_DLQ_ALREADY_REPLAYED;
            goto remove_copy;
        }
        if (rc < 0) {
            snprintf(out->why, sizeof out->why, "PostgreSQL: %s", yard_strerror(rc));
            goto done;
        }
    }
    if (plan.plan == YARD_REPLAY_FRESH || plan.plan == YARD_REPLAY_RESUME) {
        rc = replay_publish(&out->jobs_seq, js, &e, out->max_attempts, o->publish_timeout_ms);
        if (rc < 0) {
            /* The row stays queued without a message: run the replay again
             * (it resumes), or the rescuer republishes it. */
            snprintf(out->why, sizeof out->why, "publish to %s: %s", e.subject,
                     yard_strerror(rc));
            YARD_LOG_ERROR(&ctx, "dlq: replay of #%llu: %s", (unsigned long long)seq, out->why);
            goto done;
        }
        /* The rescuer and the worker's claim find the job's message by it.
         * Failing here leaves js_seq empty: a rerun deletes nothing twice,
         * it publishes under the same id (deduped) and records it. */
        rc = yard_jobs_track(db, e.job_id, 0, out->jobs_seq);
        if (rc < 0) {
            snprintf(out->why, sizeof out->why, "PostgreSQL: %s", yard_strerror(rc));
            goto done;
        }
        out->outcome = YARD_DLQ_REPLAYED;
        YARD_LOG_INFO(&ctx, "dlq: #%llu replayed to %s as JOBS #%llu (max_attempts %u) by %s",
                      (unsigned long long)seq, e.subject, (unsigned long long)out->jobs_seq,
                      out->max_attempts, o->who ? o->who : "unknown");
    } else {
        out->outcome = YARD_DLQ_ALREADY_REPLAYED;
    }
remove_copy:
    /* Only now, after the PubAck and its record, the copy may go. */
    rc = yard_js_delete_msg(js, YARD_STREAM_DLQ, seq);
    if (rc == YARD_ENOTFOUND)
        rc = 0;
    if (rc < 0) {
        snprintf(out->why, sizeof out->why, "delete DLQ #%llu: %s", (unsigned long long)seq,
                 yard_strerror(rc));
        YARD_LOG_ERROR(&ctx, "dlq: %s (run the replay again to remove it)", out->why);
        if (out->outcome == YARD_DLQ_ALREADY_REPLAYED)
            out->outcome = YARD_DLQ_FAILED;
        /* A replayed job stays replayed; its copy is removed by a rerun. */
        if (out->outcome == YARD_DLQ_REPLAYED)
            rc = 0;
    }
done:
    yard_dlq_entry_clear(&e);
    return rc;
}

typedef struct {
    yard_js_t *js;
    int dry_run;
    const char *who;
    size_t removed;
} dlq_purge_t;

static int dlq_purge_one(void *ud, yard_dlq_entry_t *e)
{
    dlq_purge_t *p = ud;
    if (!p->dry_run) {
        /* The event first: a letter never vanishes unrecorded. */
        int rc = dlq_event(p->js, e, YARD_EVENT_PURGED, p->who, 0, DLQ_EVENT_TIMEOUT_MS);
        if (rc == 0)
            rc = yard_js_delete_msg(p->js, YARD_STREAM_DLQ, e->seq);
        if (rc < 0 && rc != YARD_ENOTFOUND)
            return rc;
    }
    p->removed++;
    return 0;
}

int yard_dlq_purge(size_t *removed, yard_js_t *js, const yard_dlq_filter_t *f, int dry_run,
                   const char *who)
{
    dlq_purge_t p = {js, dry_run, who, 0};
    int rc = dlq_scan(js, f, dlq_purge_one, &p, NULL);
    *removed = p.removed;
    if (rc < 0)
        YARD_LOG_ERROR(NULL, "dlq: purge stopped after %zu letters: %s", p.removed,
                       yard_strerror(rc));
    else if (!dry_run)
        YARD_LOG_INFO(NULL, "dlq: purged %zu dead letters", p.removed);
    return rc;
}

/* ---- JSON ------------------------------------------------------------------------- */

/* A JSON string of s, with invalid UTF-8 replaced by '?' (jansson refuses
 * invalid UTF-8, and an error header may hold any bytes). */
static json_t *json_text(const char *s, size_t len)
{
    json_t *v = json_stringn(s, len);
    if (v || !s)
        return v;
    char *copy = malloc(len + 1);
    if (!copy)
        return NULL;
    for (size_t i = 0; i < len; i++)
        copy[i] = (unsigned char)s[i] < 0x80 && s[i] ? s[i] : '?';
    v = json_stringn(copy, len);
    free(copy);
    return v;
}

json_t *yard_dlq_entry_json(const yard_dlq_entry_t *e)
{
    json_t *payload = NULL;
    if (e->env_ok && e->env.payload.len)
        payload = json_loadb(e->env.payload.ptr, e->env.payload.len, JSON_DECODE_ANY, NULL);
    json_t *o = json_object();
    if (!o) {
        json_decref(payload);
        return NULL;
    }
    json_object_set_new(o, "seq", json_integer((json_int_t)e->seq));
    json_object_set_new(o, "job_id", json_text(e->job_id, strlen(e->job_id)));
    json_object_set_new(o, "type", json_text(e->type, strlen(e->type)));
    json_object_set_new(o, "queue", json_text(e->queue, strlen(e->queue)));
    json_object_set_new(o, "subject", json_text(e->subject, strlen(e->subject)));
    json_object_set_new(o, "attempts", json_integer(e->attempts));
    json_object_set_new(o, "error", json_text(e->error, strlen(e->error)));
    json_object_set_new(o, "died_at", e->died_at[0] ? json_text(e->died_at, strlen(e->died_at))
                                                    : json_null());
    json_object_set_new(o, "payload", payload ? payload : json_null());
    return o;
}

json_t *yard_dlq_result_json(const yard_dlq_result_t *r)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_object_set_new(o, "seq", json_integer((json_int_t)r->seq));
    json_object_set_new(o, "job_id", r->job_id[0] ? json_text(r->job_id, strlen(r->job_id))
                                                  : json_null());
    json_object_set_new(o, "outcome", json_string(yard_dlq_outcome_name(r->outcome)));
    if (r->outcome == YARD_DLQ_REPLAYED || r->outcome == YARD_DLQ_WOULD_REPLAY)
        json_object_set_new(o, "max_attempts", json_integer(r->max_attempts));
    if (r->outcome == YARD_DLQ_REPLAYED)
        json_object_set_new(o, "jobs_seq", json_integer((json_int_t)r->jobs_seq));
    if (r->outcome == YARD_DLQ_FAILED)
        json_object_set_new(o, "error", json_text(r->why, strlen(r->why)));
    return o;
}
