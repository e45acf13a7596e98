/*
 * js.c - the NATS connection, status conversion, and publishing.
 *
 * Async publishes: nats.c calls one AckHandler per jsCtx for every message,
 * so each outstanding message is kept in a small open-addressing table
 * (natsMsg pointer -> callback, user data) under a mutex; the handler finds
 * the entry, calls the caller's callback once and destroys the message.
 * Each publish carries MaxWait, so nats.c itself reports a missing PubAck as
 * NATS_TIMEOUT through the same handler.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "iostats.h"
#include "js_internal.h"
#include "log.h"
#include "redact.h"

typedef struct {
    natsMsg *msg; /* key; NULL = empty slot */
    yard_js_ack_cb cb;
    void *ud;
    size_t bytes; /* the message's data and headers, counted in pending_bytes */
} js_pending_t;

struct yard_js {
    natsConnection *nc;
    jsCtx *jsc;
    int64_t pub_timeout_ms;
    pthread_mutex_t mu;
    pthread_cond_t drained; /* signalled when count drops to 0 */
    js_pending_t *slots;
    size_t cap; /* power of two, at least 2 * max_pending */
    size_t count;
    size_t max_pending;
    size_t pending_bytes;     /* bytes of the async publishes in flight */
    size_t max_pending_bytes; /* ... at most this much, but always one */
    atomic_int closing; /* yard_js_destroy began: a disconnect is expected */
    int closed;         /* nats.c's closed callback ran (under mu) */
    pthread_cond_t closed_cv;
};

int yard_js_status(natsStatus s, jsErrCode jerr, const char *what)
{
    int rc;
    switch (s) {
    case NATS_OK:
        return 0;
    case NATS_TIMEOUT:
        rc = YARD_ETIMEOUT;
        break;
    case NATS_NO_RESPONDERS:
    case NATS_CONNECTION_CLOSED:
    case NATS_CONNECTION_DISCONNECTED:
    case NATS_NOT_YET_CONNECTED:
    case NATS_NO_SERVER:
    case NATS_STALE_CONNECTION:
        rc = YARD_EUNAVAIL;
        break;
    case NATS_NOT_FOUND:
        rc = YARD_ENOTFOUND;
        break;
    case NATS_NO_MEMORY:
        rc = YARD_ENOMEM;
        break;
    case NATS_INVALID_ARG:
        rc = YARD_EINVAL;
        break;
    default:
        rc = YARD_ENATS;
        break;
    }
    if (jerr == JSStreamNotFoundErr || jerr == JSConsumerNotFoundErr ||
        jerr == JSNoMessageFoundErr || jerr == JSSequenceNotFoundErr)
        rc = YARD_ENOTFOUND;
    if (jerr == JSInsufficientResourcesErr || jerr == JSStorageResourcesExceededErr)
        rc = YARD_ENOSPACE;
    /* "No such message / consumer" is an answer, not a failed call. */
    if (rc != YARD_ENOTFOUND)
        yard_iostats_nats_error();
    if (what)
        YARD_LOG_ERROR(NULL, "%s: %s (jetstream error %d): %s", what, natsStatus_GetText(s),
                       (int)jerr, nats_GetLastError(NULL) ? nats_GetLastError(NULL) : "");
    return rc;
}

/* ---- pending table ------------------------------------------------------- */

static size_t js_slot_of(const yard_js_t *js, const natsMsg *m)
{
    uintptr_t h = (uintptr_t)m;
    h ^= h >> 17;
    h *= UINT64_C(0xed5ad4bb);
    h ^= h >> 11;
    return (size_t)h & (js->cap - 1);
}

/* Called with mu held. */
static void js_pending_put(yard_js_t *js, natsMsg *m, yard_js_ack_cb cb, void *ud, size_t bytes)
{
    size_t i = js_slot_of(js, m);
    while (js->slots[i].msg)
        i = (i + 1) & (js->cap - 1);
    js->slots[i] = (js_pending_t){m, cb, ud, bytes};
    js->count++;
    js->pending_bytes += bytes;
}

/* Removes m's entry from the table (called with mu held); returns 0 and
 * *out, or -1. The entry still counts as pending until js_pending_done, so
 * yard_js_publish_wait does not return while its callback runs. */
static int js_pending_take(yard_js_t *js, const natsMsg *m, js_pending_t *out)
{
    size_t i = js_slot_of(js, m);
    while (js->slots[i].msg && js->slots[i].msg != m)
        i = (i + 1) & (js->cap - 1);
    if (!js->slots[i].msg)
        return -1;
    *out = js->slots[i];
    js->slots[i].msg = NULL;
    js->pending_bytes -= out->bytes;
    /* Backward-shift the following cluster so lookups stay correct. */
    size_t hole = i, j = (i + 1) & (js->cap - 1);
    while (js->slots[j].msg) {
        size_t home = js_slot_of(js, js->slots[j].msg);
        if (((j - home) & (js->cap - 1)) >= ((j - hole) & (js->cap - 1))) {
            js->slots[hole] = js->slots[j];
            js->slots[j].msg = NULL;
            hole = j;
        }
        j = (j + 1) & (js->cap - 1);
    }
    return 0;
}

/* Ends one pending publish whose callback has run. */
static void js_pending_done(yard_js_t *js)
{
    pthread_mutex_lock(&js->mu);
    if (--js->count == 0)
        pthread_cond_broadcast(&js->drained);
    pthread_mutex_unlock(&js->mu);
}

/* Logs a failed async publish, at most once a second (a full store or an
 * outage fails thousands): the lines between are counted in the next one. */
static void js_warn_failed_publish(const char *subject, natsStatus s, jsErrCode jerr)
{
    static atomic_llong last_ms;
    static atomic_long suppressed;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    long long now = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    long long last = atomic_load(&last_ms);
    if (now - last < 1000 || !atomic_compare_exchange_strong(&last_ms, &last, now)) {
        atomic_fetch_add(&suppressed, 1);
        return;
    }
    long more = atomic_exchange(&suppressed, 0);
    YARD_LOG_WARN(NULL, "async publish to %s failed: %s (jetstream error %d)%s%ld more in the "
                        "last second",
                  subject, natsStatus_GetText(s), (int)jerr, "; ", more);
}

static void js_ack_handler(jsCtx *jsc, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    yard_js_t *js = closure;
    js_pending_t e;
    pthread_mutex_lock(&js->mu);
    int found = js_pending_take(js, msg, &e);
    pthread_mutex_unlock(&js->mu);
    if (found == 0) {
        if (pa) {
            yard_js_puback_t ack = {pa->Sequence, pa->Duplicate};
            e.cb(e.ud, 0, &ack);
        } else {
            natsStatus s = pae ? pae->Err : NATS_ERR;
            jsErrCode jerr = pae ? pae->ErrCode : 0;
            int rc = yard_js_status(s, jerr, NULL);
            js_warn_failed_publish(natsMsg_GetSubject(msg), s, jerr);
            e.cb(e.ud, rc, NULL);
        }
        js_pending_done(js);
    }
    natsMsg_Destroy(msg);
}

/* ---- connection ---------------------------------------------------------- */

static void js_on_disconnect(natsConnection *nc, void *closure)
{
    yard_js_t *js = closure;
    if (!atomic_load(&js->closing))
        YARD_LOG_WARN(NULL, "nats: disconnected; reconnecting");
}

/* The last callback nats.c delivers for a connection: after it, none will
 * touch js again, so yard_js_destroy waits for it before freeing js. */
static void js_on_closed(natsConnection *nc, void *closure)
{
    yard_js_t *js = closure;
    pthread_mutex_lock(&js->mu);
    js->closed = 1;
    pthread_cond_broadcast(&js->closed_cv);
    pthread_mutex_unlock(&js->mu);
}

static void js_on_reconnect(natsConnection *nc, void *closure)
{
    char url[256] = "";
    char shown[256];
    natsConnection_GetConnectedUrl(nc, url, sizeof url);
    YARD_LOG_INFO(NULL, "nats: reconnected to %s", yard_redact_dsn(shown, sizeof shown, url));
}

static void js_on_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *closure)
{
    YARD_LOG_ERROR(NULL, "nats: asynchronous error: %s", natsStatus_GetText(err));
}

static size_t js_pow2_at_least(size_t n)
{
    size_t c = 16;
    while (c < n)
        c <<= 1;
    return c;
}

/* Most servers a nats_url list may name. */
#define JS_MAX_SERVERS 16

/* Gives opts the servers of list ("nats://a:4222,nats://b:4222", spaces
 * around commas allowed). natsOptions_SetURL takes one URL only (a list
 * fails every connect with "No server available"), so a list of several
 * goes through natsOptions_SetServers. */
static natsStatus js_set_servers(natsOptions *opts, const char *list)
{
    char buf[YARD_CONFIG_STR_MAX];
    const char *urls[JS_MAX_SERVERS];
    int n = 0;
    snprintf(buf, sizeof buf, "%s", list);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        tok = yard_config_trim(tok);
        if (*tok == '\0')
            continue;
        if (n == JS_MAX_SERVERS)
            return NATS_INVALID_ARG;
        urls[n++] = tok;
    }
    if (n == 0)
        return NATS_INVALID_ARG;
    return n == 1 ? natsOptions_SetURL(opts, urls[0]) : natsOptions_SetServers(opts, urls, n);
}

/* TLS settings: a tls:// URL makes nats.c require TLS by itself; a CA file
 * (or a client certificate) requires it too, and verifies the server's
 * certificate and host name against that CA instead of the system's. */
static natsStatus js_set_tls(natsOptions *opts, const yard_config_t *cfg)
{
    natsStatus s = NATS_OK;
    int secure = cfg->nats_tls_ca_file[0] || cfg->nats_tls_cert_file[0];
    if (secure)
        s = natsOptions_SetSecure(opts, true);
    if (s == NATS_OK && cfg->nats_tls_ca_file[0]) {
        s = natsOptions_LoadCATrustedCertificates(opts, cfg->nats_tls_ca_file);
        if (s != NATS_OK)
            YARD_LOG_ERROR(NULL, "nats: cannot load nats_tls_ca_file %s: %s",
                           cfg->nats_tls_ca_file, natsStatus_GetText(s));
    }
    if (s == NATS_OK && (cfg->nats_tls_cert_file[0] || cfg->nats_tls_key_file[0])) {
        s = natsOptions_LoadCertificatesChain(opts, cfg->nats_tls_cert_file,
                                              cfg->nats_tls_key_file);
        if (s != NATS_OK)
            YARD_LOG_ERROR(NULL, "nats: cannot load nats_tls_cert_file %s / nats_tls_key_file %s: %s",
                           cfg->nats_tls_cert_file, cfg->nats_tls_key_file,
                           natsStatus_GetText(s));
    }
    return s;
}

int yard_js_connect(yard_js_t **out, const yard_config_t *cfg, const char *name)
{
    yard_js_t *js = calloc(1, sizeof *js);
    natsOptions *opts = NULL;
    natsStatus s;
    int rc;
    if (!js)
        return YARD_ENOMEM;
    js->max_pending = (size_t)cfg->js_publish_max_pending;
    js->max_pending_bytes = (size_t)cfg->js_publish_max_pending_bytes;
    js->cap = js_pow2_at_least(js->max_pending * 2);
    js->pub_timeout_ms = cfg->js_publish_timeout_ms;
    js->slots = calloc(js->cap, sizeof *js->slots);
    if (!js->slots) {
        free(js);
        return YARD_ENOMEM;
    }
    pthread_mutex_init(&js->mu, NULL);
    pthread_cond_init(&js->drained, NULL);
    pthread_cond_init(&js->closed_cv, NULL);

    s = natsOptions_Create(&opts);
    if (s == NATS_OK)
        s = js_set_servers(opts, cfg->nats_url);
    if (s == NATS_OK && cfg->nats_token[0])
        s = natsOptions_SetToken(opts, cfg->nats_token);
    if (s == NATS_OK && cfg->nats_user[0])
        s = natsOptions_SetUserInfo(opts, cfg->nats_user, cfg->nats_password);
    if (s == NATS_OK)
        s = js_set_tls(opts, cfg);
    if (s == NATS_OK)
        s = natsOptions_SetName(opts, name);
    if (s == NATS_OK)
        s = natsOptions_SetTimeout(opts, cfg->js_publish_timeout_ms);
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(opts, -1);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(opts, 250);
    if (s == NATS_OK)
        s = natsOptions_SetDisconnectedCB(opts, js_on_disconnect, js);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectedCB(opts, js_on_reconnect, js);
    if (s == NATS_OK)
        s = natsOptions_SetErrorHandler(opts, js_on_error, js);
    if (s == NATS_OK)
        s = natsOptions_SetClosedCB(opts, js_on_closed, js);
    if (s != NATS_OK) {
        rc = yard_js_status(s, 0, "nats: options (nats_url: 1 to 16 servers, comma separated)");
        goto fail;
    }
    s = natsConnection_Connect(&js->nc, opts);
    if (s != NATS_OK) {
        char shown[1024];
        YARD_LOG_ERROR(NULL, "nats: cannot connect to %s: %s",
                       yard_redact_dsn(shown, sizeof shown, cfg->nats_url), natsStatus_GetText(s));
        rc = yard_js_status(s, 0, NULL);
        if (rc == YARD_ENATS)
            rc = YARD_EUNAVAIL;
        goto fail;
    }
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = cfg->js_publish_timeout_ms;
    jo.PublishAsync.MaxPending = (int64_t)js->max_pending;
    jo.PublishAsync.AckHandler = js_ack_handler;
    jo.PublishAsync.AckHandlerClosure = js;
    jo.PublishAsync.StallWait = 50;
    s = natsConnection_JetStream(&js->jsc, js->nc, &jo);
    if (s != NATS_OK) {
        rc = yard_js_status(s, 0, "nats: jetstream context");
        goto fail;
    }
    natsOptions_Destroy(opts);
    *out = js;
    return 0;
fail:
    natsOptions_Destroy(opts);
    yard_js_destroy(js, 0);
    return rc;
}

natsConnection *yard_js_conn(yard_js_t *js)
{
    return js->nc;
}

jsCtx *yard_js_ctx(yard_js_t *js)
{
    return js->jsc;
}

int yard_js_connected(yard_js_t *js)
{
    return js->nc && natsConnection_Status(js->nc) == NATS_CONN_STATUS_CONNECTED;
}

void yard_js_destroy(yard_js_t *js, int64_t timeout_ms)
{
    if (!js)
        return;
    atomic_store(&js->closing, 1);
    if (js->jsc) {
        yard_js_publish_wait(js, timeout_ms);
        /* Take back what nats.c still holds and fail it, once. */
        natsMsgList left = {0};
        /* nats.c 3.4.1 crashes here if nothing was ever published async. */
        if (yard_js_pending(js) > 0 &&
            js_PublishAsyncGetPendingList(&left, js->jsc) == NATS_OK) {
            for (int i = 0; i < left.Count; i++) {
                js_pending_t e;
                pthread_mutex_lock(&js->mu);
                int found = js_pending_take(js, left.Msgs[i], &e);
                pthread_mutex_unlock(&js->mu);
                if (found == 0) {
                    e.cb(e.ud, YARD_EUNAVAIL, NULL);
                    js_pending_done(js);
                }
            }
            natsMsgList_Destroy(&left);
        }
        jsCtx_Destroy(js->jsc);
    }
    if (js->nc) {
        natsConnection_Close(js->nc);
        /* Callbacks run on nats.c's thread after Close returns: wait for the
         * closed callback, the last one, before js goes away. */
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 5;
        pthread_mutex_lock(&js->mu);
        while (!js->closed &&
               pthread_cond_timedwait(&js->closed_cv, &js->mu, &until) == 0)
            ;
        int closed = js->closed;
        pthread_mutex_unlock(&js->mu);
        natsConnection_Destroy(js->nc);
        if (!closed) {
            /* Never seen in practice; leaking beats a use after free. */
            YARD_LOG_WARN(NULL, "nats: no closed callback within 5 s; leaking the handle");
            return;
        }
    }
    pthread_mutex_destroy(&js->mu);
    pthread_cond_destroy(&js->drained);
    pthread_cond_destroy(&js->closed_cv);
    free(js->slots);
    free(js);
}

/* ---- publishing ---------------------------------------------------------- */

/* Builds a natsMsg carrying pub's subject, data and headers. */
static int js_make_msg(natsMsg **out, const yard_js_pub_t *pub)
{
    natsMsg *m = NULL;
    if (!pub->subject || pub->len > YARD_JS_MAX_MSG_SIZE)
        return YARD_EINVAL;
    natsStatus s = natsMsg_Create(&m, pub->subject, NULL, pub->data, (int)pub->len);
    for (size_t i = 0; s == NATS_OK && i < pub->nheaders; i++)
        s = natsMsgHeader_Set(m, pub->headers[i].name, pub->headers[i].value);
    if (s != NATS_OK) {
        natsMsg_Destroy(m);
        return yard_js_status(s, 0, "nats: build message");
    }
    *out = m;
    return 0;
}

/* What a publish holds in memory until its PubAck: data, headers, subject. */
static size_t js_msg_bytes(const yard_js_pub_t *pub)
{
    size_t n = pub->len + strlen(pub->subject) + 64;
    for (size_t i = 0; i < pub->nheaders; i++)
        n += strlen(pub->headers[i].name) + strlen(pub->headers[i].value) + 4;
    return n;
}

int yard_js_publish(yard_js_puback_t *out, yard_js_t *js, const yard_js_pub_t *pub,
                    int64_t timeout_ms)
{
    natsMsg *m = NULL;
    jsPubAck *pa = NULL;
    jsErrCode jerr = 0;
    jsPubOptions po;
    int rc = js_make_msg(&m, pub);
    if (rc < 0)
        return rc;
    jsPubOptions_Init(&po);
    po.MsgId = pub->msg_id;
    po.MaxWait = timeout_ms;
    natsStatus s = js_PublishMsg(&pa, js->jsc, m, &po, &jerr);
    if (s == NATS_OK) {
        if (out)
            *out = (yard_js_puback_t){pa->Sequence, pa->Duplicate};
        jsPubAck_Destroy(pa);
        rc = 0;
    } else {
        char what[300];
        snprintf(what, sizeof what, "publish to %s", pub->subject);
        rc = yard_js_status(s, jerr, what);
    }
    natsMsg_Destroy(m);
    return rc;
}

int yard_js_publish_async(yard_js_t *js, const yard_js_pub_t *pub, yard_js_ack_cb cb, void *ud)
{
    natsMsg *m = NULL;
    jsPubOptions po;
    int rc;
    if (!yard_js_connected(js))
        return YARD_EUNAVAIL;
    if ((rc = js_make_msg(&m, pub)) < 0)
        return rc;
    size_t bytes = js_msg_bytes(pub);
    pthread_mutex_lock(&js->mu);
    /* Bounded by count and by bytes; one publish always fits, whatever its size. */
    if (js->count >= js->max_pending ||
        (js->count && js->pending_bytes + bytes > js->max_pending_bytes)) {
        pthread_mutex_unlock(&js->mu);
        natsMsg_Destroy(m);
        return YARD_EBUSY;
    }
    /* Registered before publishing: the PubAck may arrive before we return. */
    js_pending_put(js, m, cb, ud, bytes);
    pthread_mutex_unlock(&js->mu);

    jsPubOptions_Init(&po);
    po.MsgId = pub->msg_id;
    po.MaxWait = js->pub_timeout_ms;
    natsMsg *owned = m;
    natsStatus s = js_PublishMsgAsync(js->jsc, &owned, &po);
    if (s != NATS_OK) {
        js_pending_t e;
        pthread_mutex_lock(&js->mu);
        int found = js_pending_take(js, m, &e);
        pthread_mutex_unlock(&js->mu);
        natsMsg_Destroy(owned); /* no-op if the library took it */
        if (found == 0)
            js_pending_done(js);
        char what[300];
        snprintf(what, sizeof what, "async publish to %s", pub->subject);
        rc = yard_js_status(s, 0, what);
        if (found != 0) {
            /* The handler already ran and reported it; count it accepted. */
            return 0;
        }
        return rc;
    }
    return 0;
}

size_t yard_js_pending(yard_js_t *js)
{
    pthread_mutex_lock(&js->mu);
    size_t n = js->count;
    pthread_mutex_unlock(&js->mu);
    return n;
}

int yard_js_publish_wait(yard_js_t *js, int64_t timeout_ms)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += (time_t)(timeout_ms / 1000);
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    int rc = 0;
    pthread_mutex_lock(&js->mu);
    while (js->count > 0 && rc == 0)
        rc = pthread_cond_timedwait(&js->drained, &js->mu, &deadline);
    int left = js->count > 0;
    pthread_mutex_unlock(&js->mu);
    return left ? YARD_ETIMEOUT : 0;
}

int yard_js_rtt(double *out, yard_js_t *js)
{
    int64_t ns = 0;
    natsStatus s = natsConnection_GetRTT(js->nc, &ns);
    if (s != NATS_OK)
        return yard_js_status(s, 0, NULL);
    double secs = (double)ns / 1e9;
    yard_iostats_nats_rtt(secs);
    if (out)
        *out = secs;
    return 0;
}

int64_t yard_js_max_payload(yard_js_t *js)
{
    return js->nc ? natsConnection_GetMaxPayload(js->nc) : 0;
}
