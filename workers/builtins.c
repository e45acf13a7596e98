/*
 * builtins.c - the built-in handlers every execute worker has (noop, echo,
 * sleep, fail, http and, for poison-message tests, crash) and
 * wk_builtins_register, which also registers the exec mappings.
 *
 * They exist for smoke tests, benchmarks and chaos tests, and as small
 * examples of the handler contract in handler.h.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "err.h"
#include "exec_config.h"
#include "handler.h"
#include "log.h"

/* Sets result_json to a copy of text; on failure RETRY. */
static void result_copy(wk_result_t *res, const char *text, size_t len)
{
    res->result_json = strndup(text, len);
    if (!res->result_json)
        wk_result_set(res, WK_OUTCOME_RETRY, "out of memory");
}

/* noop: succeeds at once with {"ok":true}. */
static void builtin_noop(const wk_job_t *job, wk_result_t *res, void *ud)
{
    static const char ok[] = "{\"ok\":true}";
    result_copy(res, ok, sizeof ok - 1);
}

/* echo: the result is the payload. */
static void builtin_echo(const wk_job_t *job, wk_result_t *res, void *ud)
{
    if (job->payload && job->payload_len)
        result_copy(res, job->payload, job->payload_len);
    else
        result_copy(res, "null", 4);
}

/* sleep: {"ms":N} sleeps N ms, then {"slept_ms":N}; stops early (TIMEOUT or
 * CANCELLED) at the deadline or on cancellation. */
static void builtin_sleep(const wk_job_t *job, wk_result_t *res, void *ud)
{
    json_t *root;
    json_int_t ms;
    json_t *inputs; /* a workflow step's parents' results: ignored */
    if (wk_job_payload_unpack(&root, job, res, "{s:I,s?o!}", "ms", &ms, "inputs", &inputs) < 0)
        return;
    json_decref(root);
    if (ms < 0) {
        wk_result_set(res, WK_OUTCOME_FAIL, "sleep: ms must not be negative");
        return;
    }
    int64_t start = wk_clock_ms();
    wk_outcome_t o = wk_job_sleep(job, ms);
    if (o != WK_OUTCOME_OK) {
        wk_result_set(res, o, "sleep: %s after %lld of %lld ms",
                      o == WK_OUTCOME_CANCELLED ? "cancelled" : "deadline reached",
                      (long long)(wk_clock_ms() - start), (long long)ms);
        return;
    }
    json_t *v = json_pack("{s:I}", "slept_ms", ms);
    if (!v) {
        wk_result_set(res, WK_OUTCOME_RETRY, "out of memory");
        return;
    }
    wk_result_set_json(res, v);
    json_decref(v);
}

/* fail: {"retryable":bool,"message":"..."} fails with that message: RETRY
 * when retryable, else FAIL (the default). */
static void builtin_fail(const wk_job_t *job, wk_result_t *res, void *ud)
{
    json_t *root;
    int retryable = 0;
    const char *message = "failed on request (the fail handler)";
    json_t *inputs; /* a workflow step's parents' results: ignored */
    if (wk_job_payload_unpack(&root, job, res, "{s?b,s?s,s?o!}", "retryable", &retryable,
                              "message", &message, "inputs", &inputs) < 0)
        return;
    wk_result_set(res, retryable ? WK_OUTCOME_RETRY : WK_OUTCOME_FAIL, "%s", message);
    json_decref(root);
}

/* crash: aborts the whole worker, to test that poison messages reach the DLQ
 * ({"after_ms":N}: after running N ms, so that it crashes as a job already
 * marked running). Registered only when the config allows it. */
static void builtin_crash(const wk_job_t *job, wk_result_t *res, void *ud)
{
    json_t *root;
    json_int_t after_ms = 0;
    json_t *inputs; /* a workflow step's parents' results: ignored */
    if (wk_job_payload_unpack(&root, job, res, "{s?I,s?o!}", "after_ms", &after_ms, "inputs",
                              &inputs) < 0)
        return;
    json_decref(root);
    if (after_ms > 0)
        wk_job_sleep(job, after_ms);
    yard_log_ctx_t ctx = wk_job_log_ctx(job);
    YARD_LOG_ERROR(&ctx, "crash: aborting the worker as asked (handlers_allow_crash is on)");
    abort();
}

int wk_builtins_register(wk_registry_t *r, const wk_builtins_opts_t *opts)
{
    static const struct {
        const char *type;
        wk_handler_fn fn;
    } table[] = {
        {"noop", builtin_noop}, {"echo", builtin_echo},    {"sleep", builtin_sleep},
        {"fail", builtin_fail}, {"http", wk_handler_http}, {"crash", builtin_crash},
    };
    int allow_crash = opts && opts->allow_crash;
    int rc = wk_http_global_init();
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        if (table[i].fn == builtin_crash && !allow_crash)
            continue;
        void *ud = table[i].fn == wk_handler_http && opts ? (void *)opts->outbound : NULL;
        if ((rc = wk_registry_add(r, table[i].type, table[i].fn, ud)) < 0) {
            YARD_LOG_ERROR(NULL, "cannot register built-in handler %s: %s", table[i].type,
                           yard_strerror(rc));
            return rc;
        }
    }
    if (allow_crash)
        YARD_LOG_WARN(NULL, "the crash handler is registered: any producer can abort this worker");
    if (opts && opts->exec_config && opts->exec_config[0])
        return wk_exec_register(r, opts->exec_config);
    return 0;
}
