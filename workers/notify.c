/*
 * notify.c - the notify role: delivers the webhook notifications the
 * execute role publishes to jobs.notify (notify.h).
 *
 * Several threads (wk_loop, one message per fetch) share the durable
 * consumer `notify`. Each notification is POSTed as JSON with
 * Yard-Signature (HMAC-SHA256 over "<unix time>.<body>" with the
 * submitting API key's webhook secret, notify_key.h, named by Yard-Key-Id;
 * with config notify_secret for a job without a key), through the egress guard and the host's circuit
 * breaker (outbound.h), under notify_timeout_ms. A 2xx acks it. Any other
 * answer or a network error naks it with exponential backoff and jitter
 * (retry_base_ms, retry_cap_ms) until notify_max_attempts, then it goes to
 * the DLQ (dlq.jobs.notify, with the DESIGN.md headers) and is terminated;
 * an egress refusal goes to the DLQ at once. While the host's circuit is
 * open the message is naked for the rest of the cool-down without spending
 * a try: tries are JetStream's delivery count minus these deferrals,
 * which this process remembers (a bounded table by stream sequence; after
 * a restart, earlier deferrals count as tries, so a notification may reach
 * the DLQ early, never late).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>
#include <sodium.h>

#include "consume_loop.h"
#include "err.h"
#include "log.h"
#include "notify_key.h"
#include "notify.h"
#include "outbound.h"
#include "retry.h"

#define NOTIFY_THREADS_MAX 8      /* deliveries in parallel, at most */
#define NOTIFY_DEFER_SLOTS 4096   /* deferral counts remembered (by stream sequence) */
#define NOTIFY_DLQ_RETRY_MS 5000  /* redelivery delay when the DLQ publish failed */
#define NOTIFY_ACK_MARGIN_MS 5000 /* a POST ends this long before the message's AckWait */
#define NOTIFY_ANSWER_MAX 200     /* bytes of a receiver's answer quoted in an error */
#define NOTIFY_JITTER_STEPS 1000000

typedef struct {
    uint64_t seq;
    unsigned count;
} notify_defer_t;

struct wk_runtime {
    wk_t *wk;
    wk_loop_t *loops[NOTIFY_THREADS_MAX];
    int nloops;
    int64_t timeout_ms;
    pthread_mutex_t defer_mu;
    notify_defer_t defers[NOTIFY_DEFER_SLOTS];
    yard_metrics_family_t *m_sent;
};

/* ---- the signature -------------------------------------------------------------- */

void wk_notify_sign(char out[WK_NOTIFY_SIG_MAX], const char *secret, long long t,
                    const char *body, size_t len)
{
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    char ts[24], hex[2 * crypto_auth_hmacsha256_BYTES + 1];
    crypto_auth_hmacsha256_state st;
    int tl = snprintf(ts, sizeof ts, "%lld.", t);
    crypto_auth_hmacsha256_init(&st, (const unsigned char *)secret, strlen(secret));
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)ts, (unsigned long long)tl);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)body, len);
    crypto_auth_hmacsha256_final(&st, mac);
    sodium_bin2hex(hex, sizeof hex, mac, sizeof mac);
    snprintf(out, WK_NOTIFY_SIG_MAX, "t=%lld,v1=%s", t, hex);
}

/* ---- deferrals (tries not spent while a circuit was open) ---------------------- */

static unsigned notify_deferrals(wk_runtime_t *rt, uint64_t seq, int add)
{
    notify_defer_t *d = &rt->defers[seq % NOTIFY_DEFER_SLOTS];
    unsigned n;
    pthread_mutex_lock(&rt->defer_mu);
    if (d->seq != seq) {
        d->seq = seq;
        d->count = 0;
    }
    d->count += add ? 1 : 0;
    n = d->count;
    pthread_mutex_unlock(&rt->defer_mu);
    return n;
}

static void notify_forget(wk_runtime_t *rt, uint64_t seq)
{
    notify_defer_t *d = &rt->defers[seq % NOTIFY_DEFER_SLOTS];
    pthread_mutex_lock(&rt->defer_mu);
    if (d->seq == seq)
        d->seq = d->count = 0;
    pthread_mutex_unlock(&rt->defer_mu);
}

/* ---- one POST ----------------------------------------------------------------- */

typedef struct {
    char text[NOTIFY_ANSWER_MAX + 1];
    size_t len;
} notify_answer_t;

static size_t notify_on_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
    notify_answer_t *a = ud;
    size_t n = size * nmemb, room = NOTIFY_ANSWER_MAX - a->len;
    memcpy(a->text + a->len, ptr, n < room ? n : room);
    a->len += n < room ? n : room;
    a->text[a->len] = '\0';
    return n;
}

/* POSTs body to url with the signature and id headers. Returns what the
 * call says of the host; *delivered is set on a 2xx; otherwise why holds
 * the reason and *refused is set for an egress refusal. */
static wk_call_health_t notify_post(wk_runtime_t *rt, const char *url, const char *key_id,
                                    const char *body, const char *event, const char *notif_id,
                                    int *delivered, int *refused, char *why, size_t cap)
{
    wk_t *wk = rt->wk;
    char sig[WK_NOTIFY_SIG_MAX], errbuf[CURL_ERROR_SIZE] = "";
    char key_secret[YARD_NOTIFY_KEY_SECRET_LEN + 1], l_key[128] = "";
    struct curl_slist *h = NULL, *l;
    notify_answer_t answer = {.len = 0};
    wk_egress_call_t guard;
    wk_call_health_t health = WK_CALL_NEUTRAL; /* until the request goes out */
    long status = 0;
    char l_sig[WK_NOTIFY_SIG_MAX + 32], l_event[64], l_id[YARD_MSGID_MAX + 40];
    *delivered = *refused = 0;
    CURL *c = curl_easy_init();
    const char *secret = wk->cfg.notify_secret;
    if (key_id && yard_notify_key_secret(key_secret, secret, key_id) == 0) {
        secret = key_secret;
        snprintf(l_key, sizeof l_key, "%s: %.80s", WK_NOTIFY_KEY_HEADER, key_id);
    }
    wk_notify_sign(sig, secret, (long long)time(NULL), body, strlen(body));
    sodium_memzero(key_secret, sizeof key_secret);
    snprintf(l_sig, sizeof l_sig, "%s: %s", WK_NOTIFY_SIG_HEADER, sig);
    snprintf(l_event, sizeof l_event, "Yard-Event: %s", event);
    snprintf(l_id, sizeof l_id, "%s: %s", WK_NOTIFY_ID_HEADER, notif_id);
    const char *lines[] = {"Content-Type: application/json", "User-Agent: switchyard-notify",
                           l_sig, l_event, l_id, l_key[0] ? l_key : NULL};
    for (size_t i = 0; i < sizeof lines / sizeof lines[0] && lines[i]; i++) {
        if (!(l = curl_slist_append(h, lines[i]))) {
            snprintf(why, cap, "out of memory");
            goto done;
        }
        h = l;
    }
    if (!c || wk_egress_attach(&guard, wk->outbound->egress, c) < 0) {
        snprintf(why, cap, "cannot set up libcurl");
        goto done;
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)rt->timeout_ms);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, notify_on_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &answer);
    CURLcode code = curl_easy_perform(c);
    if (code != CURLE_OK && guard.refused) {
        snprintf(why, cap, "%s", guard.why);
        *refused = 1;
        health = WK_CALL_NEUTRAL;
    } else if (code != CURLE_OK) {
        snprintf(why, cap, "POST failed: %s", errbuf[0] ? errbuf : curl_easy_strerror(code));
        health = WK_CALL_FAILED;
    } else {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        wk_utf8_scrub(answer.text, answer.len);
        if (status >= 200 && status <= 299) {
            *delivered = 1;
            health = WK_CALL_OK;
        } else {
            snprintf(why, cap, "the receiver answered %ld: %s", status, answer.text);
            /* 4xx: the host is up; the answer is the receiver's choice. */
            health = status == 429 || status >= 500 ? WK_CALL_FAILED : WK_CALL_OK;
        }
    }
done:
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return health;
}

/* ---- one notification ------------------------------------------------------------ */

static void notify_count(wk_runtime_t *rt, const char *outcome)
{
    yard_metrics_counter_add(yard_metrics_counter_with(rt->m_sent, outcome, NULL), 1);
}

/* Moves m to the DLQ with why and terminates it (naks it when the DLQ
 * cannot take it now). */
static void notify_dead(wk_runtime_t *rt, yard_js_msg_t *m, const char *job_id, uint64_t seq,
                        unsigned tries, const char *why)
{
    size_t len = 0;
    const void *data = yard_js_msg_data(m, &len);
    yard_log_ctx_t ctx = {NULL, job_id, NULL};
    YARD_LOG_ERROR(&ctx, "notify: giving up after %u tries (%s); moving it to the DLQ", tries,
                   why);
    if (wk_dlq_publish(rt->wk, YARD_SUBJ_NOTIFY, job_id, seq, data, len, tries, why) == 0) {
        yard_js_term(m);
        notify_forget(rt, seq);
        notify_count(rt, "dead");
    } else {
        yard_js_nak(m, NOTIFY_DLQ_RETRY_MS);
    }
}

static void notify_one(wk_runtime_t *rt, yard_js_msg_t *m)
{
    wk_t *wk = rt->wk;
    uint64_t seq = 0, delivered = 1;
    size_t len = 0;
    const void *data = yard_js_msg_data(m, &len);
    const char *job_id = yard_js_msg_header(m, YARD_HDR_JOB_ID);
    const char *msg_id = yard_js_msg_header(m, YARD_HDR_MSG_ID);
    char host[WK_BREAKER_HOST_MAX], why[512] = "", seq_text[24];
    yard_js_msg_meta(m, &seq, &delivered);
    snprintf(seq_text, sizeof seq_text, "notify.%llu", (unsigned long long)seq);
    yard_log_ctx_t ctx = {NULL, job_id, NULL};
    json_t *doc = data ? json_loadb(data, len, 0, NULL) : NULL;
    const char *url = json_string_value(json_object_get(doc, "url"));
    const char *key_id = json_string_value(json_object_get(doc, "key"));
    json_t *event = json_object_get(doc, "event");
    const char *event_name = json_string_value(json_object_get(event, "event"));
    char *body = json_is_object(event) ? json_dumps(event, JSON_COMPACT) : NULL;
    int key_ok = !key_id || (strlen(key_id) == YARD_ENV_ID_LEN &&
                             strspn(key_id, "0123456789abcdef-") == YARD_ENV_ID_LEN);
    if (!url || !body || !event_name || !key_ok || wk_outbound_host(host, url) < 0) {
        notify_dead(rt, m, job_id ? job_id : "", seq, (unsigned)delivered,
                    "the notification cannot be read (want {\"url\",\"key\"?: uuid,"
                    "\"event\":{...}})");
        goto done;
    }
    unsigned deferred = notify_deferrals(rt, seq, 0);
    unsigned tries = delivered > deferred ? (unsigned)(delivered - deferred) : 1;
    int64_t wait = 0;
    if (wk_breaker_allow(wk->outbound->breaker, host, &wait, NULL) < 0) {
        notify_deferrals(rt, seq, 1);
        YARD_LOG_INFO(&ctx, "notify: circuit open for %s; %s deferred %lld ms (try %u not spent)",
                      host, event_name, (long long)wait, tries);
        notify_count(rt, "deferred");
        yard_js_nak(m, wait);
        goto done;
    }
    int ok = 0, refused = 0;
    int64_t t0 = wk_clock_us();
    wk_call_health_t health = notify_post(rt, url, key_id, body, event_name,
                                          msg_id ? msg_id : seq_text, &ok, &refused, why,
                                          sizeof why);
    wk_time_add(wk, "handler", wk_clock_us() - t0);
    wk_outbound_report(wk->outbound, host, health);
    if (ok) {
        YARD_LOG_INFO(&ctx, "notify: %s delivered to %s (try %u)", event_name, host, tries);
        yard_js_ack(m);
        notify_forget(rt, seq);
        notify_count(rt, "delivered");
    } else if (refused || tries >= (unsigned)wk->cfg.notify_max_attempts) {
        notify_dead(rt, m, job_id ? job_id : "", seq, tries, why);
        if (refused)
            notify_count(rt, "refused");
    } else {
        double jitter = randombytes_uniform(NOTIFY_JITTER_STEPS) / (double)NOTIFY_JITTER_STEPS;
        int64_t delay = wk_retry_delay_ms(wk->cfg.retry_base_ms, wk->cfg.retry_cap_ms, tries,
                                          jitter);
        YARD_LOG_WARN(&ctx, "notify: %s to %s failed (try %u of %lld): %s; again in %lld ms",
                      event_name, host, tries, (long long)wk->cfg.notify_max_attempts, why,
                      (long long)delay);
        yard_js_nak(m, delay);
        notify_count(rt, "retried");
    }
done:
    free(body);
    json_decref(doc);
}

static void notify_batch(wk_t *wk, PGconn *conn, yard_js_msg_t **msgs, int n, void *ud)
{
    wk_runtime_t *rt = ud;
    yard_metrics_gauge_add(wk->m_in_flight, n);
    for (int i = 0; i < n; i++)
        notify_one(rt, msgs[i]);
    yard_metrics_gauge_add(wk->m_in_flight, -n);
}

/* ---- the role ------------------------------------------------------------------ */

int wk_notify_start(wk_runtime_t **out, wk_t *wk)
{
    static const char *const outcomes[] = {"delivered", "retried", "deferred", "refused", "dead"};
    if (!wk->cfg.notify_secret[0]) {
        YARD_LOG_ERROR(NULL, "notify: notify_secret (YARD_NOTIFY_SECRET) must be set: it signs "
                             "every webhook");
        return YARD_ECONFIG;
    }
    /* Checked here, not in config: only this role's deliveries count
     * against the notify consumer's MaxDeliver. */
    if (wk->cfg.notify_max_attempts >= wk->cfg.js_max_deliver) {
        YARD_LOG_ERROR(NULL,
                       "notify: notify_max_attempts (%lld) must be below js_max_deliver (%lld), "
                       "the consumer's ceiling on deliveries",
                       (long long)wk->cfg.notify_max_attempts, (long long)wk->cfg.js_max_deliver);
        return YARD_ECONFIG;
    }
    if (sodium_init() < 0)
        return YARD_ECRYPTO;
    wk_runtime_t *rt = calloc(1, sizeof *rt);
    if (!rt)
        return YARD_ENOMEM;
    rt->wk = wk;
    pthread_mutex_init(&rt->defer_mu, NULL);
    int64_t ack_ms = wk->cfg.js_ack_wait_s * 1000 - NOTIFY_ACK_MARGIN_MS;
    rt->timeout_ms = wk->cfg.notify_timeout_ms;
    if (ack_ms > 0 && ack_ms < rt->timeout_ms)
        rt->timeout_ms = ack_ms;
    int rc = yard_metrics_counter_family(&rt->m_sent, wk->metrics, "yard_notifications_total",
                                         "Webhook notification tries by outcome: delivered, "
                                         "retried, deferred (circuit open), refused (egress), "
                                         "dead (to the DLQ).",
                                         (const char *const[]){"outcome", NULL});
    for (size_t i = 0; rc == 0 && i < sizeof outcomes / sizeof outcomes[0]; i++)
        yard_metrics_counter_with(rt->m_sent, outcomes[i], NULL);
    int threads = (int)(wk->cfg.worker_concurrency < NOTIFY_THREADS_MAX
                            ? wk->cfg.worker_concurrency
                            : NOTIFY_THREADS_MAX);
    for (int i = 0; rc == 0 && i < threads; i++) {
        rc = wk_loop_start(&rt->loops[i], wk, YARD_STREAM_JOBS, YARD_CONSUMER_NOTIFY, 1, 0,
                           notify_batch, rt);
        if (rc == 0)
            rt->nloops++;
    }
    if (rc < 0) {
        atomic_store(&wk->stopping, 1);
        wk_notify_join(rt);
        return rc;
    }
    YARD_LOG_INFO(NULL, "notify: %d delivery threads; POST timeout %lld ms, %lld tries", threads,
                  (long long)rt->timeout_ms, (long long)wk->cfg.notify_max_attempts);
    atomic_store(&wk->ready, 1);
    *out = rt;
    return 0;
}

void wk_notify_join(wk_runtime_t *rt)
{
    if (!rt)
        return;
    for (int i = 0; i < rt->nloops; i++)
        wk_loop_join(rt->loops[i]);
    pthread_mutex_destroy(&rt->defer_mu);
    free(rt);
}
