/*
 * handler_http.c - the `http` built-in: one outbound HTTP(S) request per job,
 * with libcurl's easy interface on the handler thread.
 *
 * Safety: only http and https (redirects too, at most 5, and only when
 * egress_follow_redirects is on), no signals (CURLOPT_NOSIGNAL: we run on
 * many threads), the response body capped at 64 KiB, the job's deadline as
 * the transfer timeout, and the progress callback stopping the transfer on
 * cancellation. libcurl checks the progress callback about once a second
 * while a transfer is idle, so a cancellation takes up to a second to be
 * noticed; a deadline is exact. Every connection passes the egress guard
 * (egress.h: loopback, private, link-local... refused by resolved address,
 * unless egress_allow permits it) and the host's circuit breaker
 * (breaker.h): an open circuit defers the job without counting an attempt.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <jansson.h>

#include "err.h"
#include "handler.h"
#include "log.h"
#include "outbound.h"

#define BODY_MAX (64 * 1024) /* response bytes kept */
#define SNIPPET 200          /* response bytes quoted in an error */
#define METHOD_MAX 16

/* One transfer. */
typedef struct {
    const wk_job_t *job;
    char *body;
    size_t len;
    int truncated;
    int64_t next_beat;
    wk_outcome_t stopped; /* CANCELLED or TIMEOUT when the progress callback stopped it */
} http_run_t;

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_rc;

static void http_init(void)
{
    CURLcode c = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (c != CURLE_OK) {
        YARD_LOG_ERROR(NULL, "curl_global_init: %s", curl_easy_strerror(c));
        init_rc = YARD_EIO;
        return;
    }
    const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
    if (!(v->features & CURL_VERSION_ASYNCHDNS))
        YARD_LOG_WARN(NULL, "libcurl %s resolves names synchronously: with CURLOPT_NOSIGNAL a "
                            "slow DNS lookup can outlast a job's deadline", v->version);
}

int wk_http_global_init(void)
{
    pthread_once(&init_once, http_init);
    return init_rc;
}

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
    http_run_t *h = ud;
    size_t n = size * nmemb, room = BODY_MAX - h->len;
    if (n > room) {
        memcpy(h->body + h->len, ptr, room);
        h->len += room;
        h->truncated = 1;
        return 0; /* stops the transfer with CURLE_WRITE_ERROR; we keep what we have */
    }
    memcpy(h->body + h->len, ptr, n);
    h->len += n;
    return n;
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    http_run_t *h = ud;
    wk_outcome_t o = wk_job_check(h->job);
    if (o != WK_OUTCOME_OK) {
        h->stopped = o;
        return 1;
    }
    int64_t now = wk_clock_ms();
    if (now >= h->next_beat) {
        wk_job_heartbeat(h->job);
        h->next_beat = now + WK_HEARTBEAT_MS;
    }
    return 0;
}

static int token_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Builds the header list from {"name":"value"}; sets *has_type when a
 * Content-Type is among them. Returns 0, or YARD_EFORMAT after setting res. */
static int make_headers(struct curl_slist **out, int *has_type, json_t *headers,
                        wk_result_t *res)
{
    struct curl_slist *list = NULL;
    const char *name;
    json_t *value;
    if (!headers) {
        *out = NULL;
        return 0;
    }
    if (!json_is_object(headers)) {
        wk_result_set(res, WK_OUTCOME_FAIL, "http: headers must be an object of strings");
        return YARD_EFORMAT;
    }
    json_object_foreach(headers, name, value) {
        const char *v = json_string_value(value);
        size_t i;
        for (i = 0; token_char(name[i]); i++)
            ;
        if (i == 0 || name[i] || !v || strpbrk(v, "\r\n")) {
            wk_result_set(res, WK_OUTCOME_FAIL,
                          "http: header '%s' needs a token name and a one-line string value",
                          name);
            curl_slist_free_all(list);
            return YARD_EFORMAT;
        }
        if (strcasecmp(name, "Content-Type") == 0)
            *has_type = 1;
        char line[8192];
        snprintf(line, sizeof line, "%s: %s", name, v);
        struct curl_slist *l = curl_slist_append(list, line);
        if (!l) {
            wk_result_set(res, WK_OUTCOME_RETRY, "out of memory");
            curl_slist_free_all(list);
            return YARD_ENOMEM;
        }
        list = l;
    }
    *out = list;
    return 0;
}

/* Sets the result or the error for a finished transfer; returns what it
 * says of the host's health, for its circuit breaker. */
static wk_call_health_t http_classify(http_run_t *h, CURL *c, CURLcode code,
                                      const wk_egress_call_t *guard, const char *errbuf,
                                      const char *method, int64_t timeout_ms, int by_deadline,
                                      wk_result_t *res)
{
    static const CURLcode permanent[] = {CURLE_UNSUPPORTED_PROTOCOL, CURLE_URL_MALFORMAT,
                                         CURLE_TOO_MANY_REDIRECTS, CURLE_NOT_BUILT_IN,
                                         CURLE_BAD_FUNCTION_ARGUMENT};
    long status = 0;
    if (h->stopped == WK_OUTCOME_CANCELLED || h->stopped == WK_OUTCOME_TIMEOUT) {
        wk_result_set(res, h->stopped, "http: %s %s", method,
                      h->stopped == WK_OUTCOME_CANCELLED ? "cancelled" : "deadline reached");
        return WK_CALL_NEUTRAL;
    }
    /* A refused connection is the producer's doing: never retried. */
    if (code != CURLE_OK && guard->refused) {
        wk_result_set(res, WK_OUTCOME_FAIL, "http: %s: %s", method, guard->why);
        return WK_CALL_NEUTRAL;
    }
    if (code == CURLE_OPERATION_TIMEDOUT) {
        wk_result_set(res, by_deadline ? WK_OUTCOME_TIMEOUT : WK_OUTCOME_RETRY,
                      "http: %s timed out after %lld ms (%s)", method, (long long)timeout_ms,
                      by_deadline ? "the job's deadline" : "timeout_ms");
        return WK_CALL_FAILED;
    }
    if (code != CURLE_OK && !(code == CURLE_WRITE_ERROR && h->truncated)) {
        wk_outcome_t o = WK_OUTCOME_RETRY;
        for (size_t i = 0; i < sizeof permanent / sizeof permanent[0]; i++)
            if (code == permanent[i])
                o = WK_OUTCOME_FAIL;
        wk_result_set(res, o, "http: %s failed: %s", method,
                      errbuf[0] ? errbuf : curl_easy_strerror(code));
        return o == WK_OUTCOME_RETRY ? WK_CALL_FAILED : WK_CALL_NEUTRAL;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    wk_utf8_scrub(h->body, h->len);
    if (status >= 200 && status <= 299) {
        json_t *v = json_pack("{s:i,s:s%}", "status", (int)status, "body", h->body, h->len);
        if (v && h->truncated)
            json_object_set_new(v, "truncated", json_true());
        if (!v)
            wk_result_set(res, WK_OUTCOME_RETRY, "out of memory");
        else
            wk_result_set_json(res, v);
        json_decref(v);
        return WK_CALL_OK;
    }
    int host_failed = status == 429 || status >= 500;
    wk_result_set(res, host_failed ? WK_OUTCOME_RETRY : WK_OUTCOME_FAIL,
                  "http: %s answered %ld: %.*s", method, status,
                  (int)(h->len < SNIPPET ? h->len : SNIPPET), h->body);
    if (status >= 300 && status <= 399)
        snprintf(res->error + strlen(res->error), sizeof res->error - strlen(res->error),
                 " (a redirect: followed only when egress_follow_redirects is on)");
    return host_failed ? WK_CALL_FAILED : WK_CALL_OK;
}


void wk_handler_http(const wk_job_t *job, wk_result_t *res, void *ud)
{
    json_t *root = NULL, *headers = NULL, *body = NULL;
    const char *method = NULL, *url = NULL;
    json_int_t timeout_ms = 0;
    struct curl_slist *hlist = NULL;
    char *body_text = NULL;
    size_t body_len = 0;
    int has_type = 0;
    char errbuf[CURL_ERROR_SIZE] = "";
    http_run_t h = {.job = job, .next_beat = wk_clock_ms() + WK_HEARTBEAT_MS};
    CURL *c = NULL;
    int64_t limit = wk_job_remaining_ms(job); /* the transfer's timeout */
    int by_deadline = 1;
    size_t mlen;
    wk_outbound_t *out = ud;
    wk_egress_call_t guard;
    char host[WK_BREAKER_HOST_MAX] = "";

    if (wk_job_payload_unpack(&root, job, res, "{s?s,s:s,s?o,s?o,s?I!}", "method", &method,
                              "url", &url, "headers", &headers, "body", &body, "timeout_ms",
                              &timeout_ms) < 0)
        return;
    if (!method)
        method = body ? "POST" : "GET";
    mlen = strspn(method, "ABCDEFGHIJKLMNOPQRSTUVWXYZ");
    if (mlen == 0 || mlen > METHOD_MAX || method[mlen]) {
        wk_result_set(res, WK_OUTCOME_FAIL, "http: method '%.32s' is not an upper-case token",
                      method);
        goto done;
    }
    if (timeout_ms < 0) {
        wk_result_set(res, WK_OUTCOME_FAIL, "http: timeout_ms must not be negative");
        goto done;
    }
    if (make_headers(&hlist, &has_type, headers, res) < 0)
        goto done;
    if (body && json_is_string(body)) {
        body_text = strndup(json_string_value(body), json_string_length(body));
        body_len = json_string_length(body);
    } else if (body) {
        body_text = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
        body_len = body_text ? strlen(body_text) : 0;
        if (body_text && !has_type) {
            struct curl_slist *l = curl_slist_append(hlist, "Content-Type: application/json");
            if (l)
                hlist = l;
            else {
                free(body_text);
                body_text = NULL;
            }
        }
    }
    h.body = malloc(BODY_MAX);
    c = curl_easy_init();
    if ((body && !body_text) || !h.body || !c) {
        wk_result_set(res, WK_OUTCOME_RETRY, "http: out of memory");
        goto done;
    }
    /* The job's deadline, or timeout_ms if sooner. */
    if (limit == 0) {
        wk_result_set(res, WK_OUTCOME_TIMEOUT, "http: deadline reached before the request");
        goto done;
    }
    if (timeout_ms > 0 && timeout_ms < limit) {
        limit = timeout_ms;
        by_deadline = 0;
    }
    /* The host's circuit: while it is open, the job waits without
     * spending an attempt. */
    if (!out) {
        wk_result_set(res, WK_OUTCOME_FAIL, "http: no egress guard (register the handler with "
                                            "the worker's wk_outbound_t)");
        goto done;
    }
    if (wk_outbound_host(host, url) == 0 &&
        wk_breaker_allow(out->breaker, host, &res->defer_ms, NULL) < 0) {
        wk_result_set(res, WK_OUTCOME_RETRY,
                      "http: circuit open for %s (it failed repeatedly); trying again in %lld ms",
                      host, (long long)res->defer_ms);
        goto done;
    }
    if (wk_egress_attach(&guard, out->egress, c) < 0) {
        wk_result_set(res, WK_OUTCOME_FAIL, "http: this libcurl cannot guard egress");
        goto done;
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, limit == INT64_MAX ? 0L : (long)limit);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "switchyard-worker");
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &h);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &h);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hlist);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    else if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0)
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body_text || strcmp(method, "POST") == 0) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body_text ? body_text : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
        if (strcmp(method, "POST") != 0)
            curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    }
    CURLcode code = curl_easy_perform(c);
    wk_call_health_t health =
        http_classify(&h, c, code, &guard, errbuf, method, limit, by_deadline, res);
    if (host[0])
        wk_outbound_report(out, host, health);
done:
    curl_easy_cleanup(c);
    curl_slist_free_all(hlist);
    free(body_text);
    free(h.body);
    json_decref(root);
}
