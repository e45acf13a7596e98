/*
 * events.c - lifecycle events (events.h): their ids, subjects and JSON, a
 * synchronous publish for single events, batches of asynchronous publishes
 * for hot paths, and the reader the audit role decodes them with.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "err.h"
#include "events.h"
#include "log.h"

/* A full publish window: how often and how long batch_add waits for room. */
#define EVENTS_BUSY_TRIES 50
#define EVENTS_BUSY_WAIT_MS 100

static int64_t events_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *yard_event_domain_prefix(yard_event_domain_t d)
{
    switch (d) {
    case YARD_EVENT_JOB:
        return "job";
    case YARD_EVENT_WORKFLOW:
        return "workflow";
    case YARD_EVENT_OPS:
        return "ops";
    }
    return "?";
}

static const char *events_subject_root(yard_event_domain_t d)
{
    switch (d) {
    case YARD_EVENT_JOB:
        return YARD_SUBJ_EVENT_JOBS;
    case YARD_EVENT_WORKFLOW:
        return YARD_SUBJ_EVENT_WORKFLOWS;
    case YARD_EVENT_OPS:
        return YARD_SUBJ_EVENT_OPS;
    }
    return NULL;
}

static int events_name_valid(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > YARD_EVENT_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') ||
              name[i] == '_'))
            return 0;
    return 1;
}

/* A subject id or key may not hold what a NATS message id or subject
 * cannot: spaces, control characters. */
static int events_token_valid(const char *s)
{
    if (!s || !*s)
        return 0;
    for (; *s; s++)
        if ((unsigned char)*s <= ' ' || *s == 0x7f)
            return 0;
    return 1;
}

int yard_event_id(char out[YARD_EVENT_ID_MAX], const yard_event_t *e)
{
    /* events.jobs.accepted carries the gateway's grouped binary event
     * (accepted.h), which the submissions consumer reads: never JSON. */
    int grouped = e->domain == YARD_EVENT_JOB && e->name && !strcmp(e->name, YARD_EVENT_ACCEPTED);
    if (grouped || !events_name_valid(e->name) || !events_token_valid(e->subject_id) ||
        (e->key && !events_token_valid(e->key)) || !e->actor || !*e->actor ||
        !events_subject_root(e->domain))
        return YARD_EINVAL;
    int n = snprintf(out, YARD_EVENT_ID_MAX, "ev.%s.%s.%s%s%s", yard_event_domain_prefix(e->domain),
                     e->name, e->subject_id, e->key ? "." : "", e->key ? e->key : "");
    return n > 0 && n < YARD_EVENT_ID_MAX ? 0 : YARD_EINVAL;
}

/* A growing JSON text; oom remembers a failed allocation. */
typedef struct {
    char *buf;
    size_t len, cap;
    int oom;
} events_text_t;

static int events_room(events_text_t *t, size_t more)
{
    if (t->oom)
        return 0;
    if (t->len + more + 1 <= t->cap)
        return 1;
    size_t cap = t->cap ? t->cap : 256;
    while (cap < t->len + more + 1)
        cap *= 2;
    char *b = realloc(t->buf, cap);
    if (!b) {
        t->oom = 1;
        return 0;
    }
    t->buf = b;
    t->cap = cap;
    return 1;
}

static void events_raw(events_text_t *t, const char *s, size_t n)
{
    if (!events_room(t, n))
        return;
    memcpy(t->buf + t->len, s, n);
    t->len += n;
    t->buf[t->len] = '\0';
}

/* Appends "key": then s as a JSON string, or null when s is NULL or "". */
static void events_field(events_text_t *t, const char *key, const char *s)
{
    events_raw(t, ",\"", 2);
    events_raw(t, key, strlen(key));
    events_raw(t, "\":", 2);
    if (!s || !*s) {
        events_raw(t, "null", 4);
        return;
    }
    size_t n = strlen(s);
    if (!events_room(t, 6 * n + 2)) /* worst case: every byte as \u00XX */
        return;
    t->buf[t->len++] = '"';
    yard_log_json_escape(t->buf, t->cap, &t->len, s, n);
    t->buf[t->len++] = '"';
    t->buf[t->len] = '\0';
}

/* Nonzero when data looks like one JSON object: '{' ... '}' (callers pass
 * JSON they built; the audit role's reader checks it in full). */
static int events_data_ok(const char *data, size_t *n)
{
    const char *p = data, *end = data + strlen(data);
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r'))
        p++;
    while (end > p && (end[-1] == ' ' || end[-1] == '\n' || end[-1] == '\t' || end[-1] == '\r'))
        end--;
    *n = (size_t)(end - data);
    return end - p >= 2 && *p == '{' && end[-1] == '}';
}

int yard_event_encode(yard_event_msg_t *out, const yard_event_t *e)
{
    char name[YARD_EVENT_NAME_MAX + 16], num[32];
    events_text_t t = {0};
    size_t data_len = 2;
    const char *data = e->data_json && *e->data_json ? e->data_json : "{}";
    int rc = yard_event_id(out->id, e);
    out->body = NULL;
    if (rc == 0 && !events_data_ok(data, &data_len))
        rc = YARD_EINVAL;
    if (rc < 0) {
        YARD_LOG_ERROR(NULL, "events: refused an event (%s %s of %s by %s): bad name, id, actor "
                             "or data",
                       yard_event_domain_prefix(e->domain), e->name ? e->name : "(none)",
                       e->subject_id ? e->subject_id : "(none)", e->actor ? e->actor : "(none)");
        return rc;
    }
    snprintf(out->subject, sizeof out->subject, "%s%s", events_subject_root(e->domain), e->name);
    snprintf(name, sizeof name, "%s.%s", yard_event_domain_prefix(e->domain), e->name);
    snprintf(num, sizeof num, "%lld", (long long)(e->at_ms ? e->at_ms : events_now_ms()));
    events_raw(&t, "{\"v\":1", 6);
    events_field(&t, "id", out->id);
    events_field(&t, "event", name);
    events_raw(&t, ",\"at\":", 6);
    events_raw(&t, num, strlen(num));
    events_field(&t, "actor", e->actor);
    events_field(&t, "trace_id", e->trace_id);
    events_field(&t, "job_id", e->domain == YARD_EVENT_JOB ? e->subject_id : NULL);
    events_field(&t, "workflow_id", e->domain == YARD_EVENT_WORKFLOW ? e->subject_id : NULL);
    events_field(&t, "target", e->domain == YARD_EVENT_OPS ? e->subject_id : NULL);
    events_raw(&t, ",\"data\":", 8);
    events_raw(&t, data, data_len);
    events_raw(&t, "}", 1);
    if (t.oom) {
        free(t.buf);
        return YARD_ENOMEM;
    }
    out->body = t.buf;
    out->len = t.len;
    return 0;
}

void yard_event_msg_free(yard_event_msg_t *m)
{
    if (!m)
        return;
    free(m->body);
    m->body = NULL;
    m->len = 0;
}

int yard_event_publish(yard_js_t *js, const yard_event_t *e, int64_t timeout_ms)
{
    yard_event_msg_t m;
    int rc = yard_event_encode(&m, e);
    if (rc < 0)
        return rc;
    yard_js_pub_t pub = {m.subject, m.id, NULL, 0, m.body, m.len};
    rc = yard_js_publish(NULL, js, &pub, timeout_ms);
    if (rc < 0) {
        yard_log_ctx_t ctx = {NULL, e->domain == YARD_EVENT_JOB ? e->subject_id : NULL,
                              e->trace_id};
        YARD_LOG_ERROR(&ctx, "events: cannot publish %s: %s", m.id, yard_strerror(rc));
    }
    yard_event_msg_free(&m);
    return rc;
}

/* ---- batches ----------------------------------------------------------------- */

struct yard_event_batch {
    yard_js_t *js;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs;       /* the owner (until destroy) + one per outstanding publish */
    size_t added;
    size_t pending; /* published, not answered yet */
    int first_error;
    /* A grouped batch's events not flushed yet (the adding thread's). */
    int grouped;
    char *group;
    size_t group_len, group_cap, group_n;
    uint64_t group_hash; /* FNV-1a over the event ids */
};

int yard_event_batch_create(yard_event_batch_t **out, yard_js_t *js)
{
    yard_event_batch_t *b = calloc(1, sizeof *b);
    if (!b)
        return YARD_ENOMEM;
    b->js = js;
    b->refs = 1;
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, NULL);
    *out = b;
    return 0;
}

#define EVENTS_FNV_OFFSET 14695981039346656037ULL
#define EVENTS_FNV_PRIME 1099511628211ULL

int yard_event_batch_create_grouped(yard_event_batch_t **out, yard_js_t *js)
{
    int rc = yard_event_batch_create(out, js);
    if (rc == 0) {
        (*out)->grouped = 1;
        (*out)->group_hash = EVENTS_FNV_OFFSET;
    }
    return rc;
}

/* Drops one reference (mu held); frees b at the last and returns 1. */
static int events_batch_unref_locked(yard_event_batch_t *b)
{
    if (--b->refs > 0)
        return 0;
    pthread_mutex_unlock(&b->mu);
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv);
    free(b->group);
    free(b);
    return 1;
}

static void events_batch_fail_locked(yard_event_batch_t *b, int rc)
{
    if (!b->first_error)
        b->first_error = rc;
}

static void events_batch_acked(void *ud, int rc, const yard_js_puback_t *ack)
{
    yard_event_batch_t *b = ud;
    pthread_mutex_lock(&b->mu);
    if (rc < 0)
        events_batch_fail_locked(b, rc);
    b->pending--;
    pthread_cond_broadcast(&b->cv);
    if (!events_batch_unref_locked(b))
        pthread_mutex_unlock(&b->mu);
}

/* Publishes body (len bytes) on subject with message id msg_id, counting it
 * in b; waits a little while the publish window is full. Returns 0 or an
 * error (not logged; counted as b's failure by the caller). */
static int events_batch_publish(yard_event_batch_t *b, const char *subject, const char *msg_id,
                                const void *body, size_t len)
{
    pthread_mutex_lock(&b->mu);
    b->refs++;
    b->pending++;
    pthread_mutex_unlock(&b->mu);
    yard_js_pub_t pub = {subject, msg_id, NULL, 0, body, len};
    int rc;
    for (int tries = 0;; tries++) {
        rc = yard_js_publish_async(b->js, &pub, events_batch_acked, b);
        if (rc != YARD_EBUSY || tries >= EVENTS_BUSY_TRIES)
            break;
        yard_js_publish_wait(b->js, EVENTS_BUSY_WAIT_MS);
    }
    if (rc < 0) {
        pthread_mutex_lock(&b->mu);
        b->refs--; /* the owner still holds one: never the last */
        b->pending--;
        events_batch_fail_locked(b, rc);
        pthread_mutex_unlock(&b->mu);
    }
    return rc;
}

int yard_event_batch_flush(yard_event_batch_t *b)
{
    if (!b->grouped || b->group_n == 0)
        return 0;
    char id[YARD_EVENT_ID_MAX];
    snprintf(id, sizeof id, "evg.%016llx.%zu", (unsigned long long)b->group_hash, b->group_n);
    int rc = events_batch_publish(b, YARD_SUBJ_EVENT_GROUP, id, b->group, b->group_len);
    if (rc < 0)
        YARD_LOG_WARN(NULL, "events: cannot publish a group of %zu events (%s): %s", b->group_n,
                      id, yard_strerror(rc));
    b->group_len = b->group_n = 0;
    b->group_hash = EVENTS_FNV_OFFSET;
    return rc;
}

/* Appends the encoded event m to b's group (flushing first when it would
 * grow past YARD_EVENT_GROUP_MAX_BYTES). Returns 0 or an error. */
static int events_group_add(yard_event_batch_t *b, const yard_event_msg_t *m)
{
    if (b->group_len && b->group_len + m->len + 1 > YARD_EVENT_GROUP_MAX_BYTES)
        yard_event_batch_flush(b); /* its failure counts in the batch */
    if (b->group_len + m->len + 1 > b->group_cap) {
        size_t cap = b->group_cap ? b->group_cap : 4096;
        while (cap < b->group_len + m->len + 1)
            cap *= 2;
        char *g = realloc(b->group, cap);
        if (!g)
            return YARD_ENOMEM;
        b->group = g;
        b->group_cap = cap;
    }
    /* A raw newline can only be whitespace between the data's tokens (JSON
     * strings escape theirs): a space keeps the meaning and the framing. */
    for (size_t i = 0; i < m->len; i++)
        b->group[b->group_len + i] = m->body[i] == '\n' ? ' ' : m->body[i];
    b->group_len += m->len;
    b->group[b->group_len++] = '\n';
    b->group_n++;
    for (const unsigned char *c = (const unsigned char *)m->id; *c; c++)
        b->group_hash = (b->group_hash ^ *c) * EVENTS_FNV_PRIME;
    b->group_hash = (b->group_hash ^ '\n') * EVENTS_FNV_PRIME;
    return 0;
}

int yard_event_batch_add(yard_event_batch_t *b, const yard_event_t *e)
{
    yard_event_msg_t m;
    int rc = yard_event_encode(&m, e);
    if (b->grouped) {
        b->added++;
        if (rc == 0)
            rc = events_group_add(b, &m);
        yard_event_msg_free(&m);
        if (rc < 0) {
            pthread_mutex_lock(&b->mu);
            events_batch_fail_locked(b, rc);
            pthread_mutex_unlock(&b->mu);
        }
        return rc;
    }
    b->added++;
    if (rc == 0) {
        rc = events_batch_publish(b, m.subject, m.id, m.body, m.len);
        if (rc < 0) {
            yard_log_ctx_t ctx = {NULL, e->domain == YARD_EVENT_JOB ? e->subject_id : NULL,
                                  e->trace_id};
            YARD_LOG_WARN(&ctx, "events: cannot publish %s: %s", m.id, yard_strerror(rc));
        }
    } else {
        pthread_mutex_lock(&b->mu);
        events_batch_fail_locked(b, rc);
        pthread_mutex_unlock(&b->mu);
    }
    yard_event_msg_free(&m);
    return rc;
}

int yard_event_batch_wait(yard_event_batch_t *b, int64_t timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&b->mu);
    int timed_out = 0;
    while (b->pending > 0 && !timed_out)
        timed_out = pthread_cond_timedwait(&b->cv, &b->mu, &ts) != 0;
    int rc = b->first_error ? b->first_error : b->pending > 0 ? YARD_ETIMEOUT : 0;
    pthread_mutex_unlock(&b->mu);
    return rc;
}

size_t yard_event_batch_count(const yard_event_batch_t *b)
{
    return b->added; /* written only by the adding thread */
}

void yard_event_batch_retain(yard_event_batch_t *b)
{
    pthread_mutex_lock(&b->mu);
    b->refs++;
    pthread_mutex_unlock(&b->mu);
}

void yard_event_batch_destroy(yard_event_batch_t *b)
{
    if (!b)
        return;
    pthread_mutex_lock(&b->mu);
    if (!events_batch_unref_locked(b))
        pthread_mutex_unlock(&b->mu);
}

int yard_event_group_next(const char **p, const char *end, const char **event, size_t *len)
{
    while (*p < end && **p == '\n')
        (*p)++;
    if (*p >= end)
        return 0;
    const char *nl = memchr(*p, '\n', (size_t)(end - *p));
    *event = *p;
    *len = (size_t)((nl ? nl : end) - *p);
    *p = nl ? nl + 1 : end;
    return 1;
}

/* ---- reading ------------------------------------------------------------------ */

static const char *events_get_str(json_t *root, const char *key)
{
    const char *s = json_string_value(json_object_get(root, key));
    return s && *s ? s : NULL;
}

int yard_event_read(yard_event_read_t *out, const void *data, size_t len)
{
    json_error_t jerr;
    memset(out, 0, sizeof *out);
    json_t *root = json_loadb(data, len, 0, &jerr);
    if (!json_is_object(root) || json_integer_value(json_object_get(root, "v")) != 1) {
        json_decref(root);
        return YARD_EFORMAT;
    }
    out->root = root;
    out->id = events_get_str(root, "id");
    out->event = events_get_str(root, "event");
    out->actor = events_get_str(root, "actor");
    out->trace_id = events_get_str(root, "trace_id");
    out->job_id = events_get_str(root, "job_id");
    out->workflow_id = events_get_str(root, "workflow_id");
    out->target = events_get_str(root, "target");
    out->at_ms = json_integer_value(json_object_get(root, "at"));
    json_t *d = json_object_get(root, "data");
    if (!json_is_object(d) && json_object_set_new(root, "data", json_object()) == 0)
        d = json_object_get(root, "data");
    out->data = json_is_object(d) ? d : NULL;
    if (!out->id || !out->event || !out->actor || out->at_ms <= 0 || !out->data) {
        int rc = out->data ? YARD_EFORMAT : YARD_ENOMEM;
        yard_event_read_free(out);
        return rc;
    }
    return 0;
}

void yard_event_read_free(yard_event_read_t *out)
{
    if (!out)
        return;
    json_decref(out->root);
    memset(out, 0, sizeof *out);
}
