/*
 * test_wk_handlers.c - the execute worker's handlers without NATS or
 * PostgreSQL: the registry and a custom C handler; the built-ins noop, echo,
 * fail, sleep (cancel, deadline, heartbeat) and crash; exec mappings run
 * against small shell scripts in a temporary folder (results, exit codes,
 * stderr tail, invalid JSON, timeouts that must kill the whole process
 * group, memory and output limits, a cleared environment, config errors
 * that name their line); http against a raw-socket server on 127.0.0.1 in
 * a thread (statuses, deadline, cancel, protocols, size cap).
 *
 * Timing bounds are scaled by YARD_TEST_TIMEOUT_SCALE (sanitizers, valgrind).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "err.h"
#include "exec_config.h"
#include "handler.h"
#include "log.h"
#include "outbound.h"

/* ---- fixture ------------------------------------------------------------ */

static struct {
    char dir[256];         /* scripts, the exec config and pid files */
    wk_registry_t *reg;    /* built-ins and the exec mappings below */
    wk_outbound_t *outbound; /* http's egress guard: the test server on 127.0.0.1 allowed */
    int port;              /* the test HTTP server */
    pthread_t server;
    int stop[2];           /* closing stop[1] stops the server */
    int64_t scale;
} fx;

/* Bounds for "finished soon after": ms plus slack, scaled under sanitizers. */
static int64_t soon(int64_t ms)
{
    return ms + 150 * fx.scale;
}

static void job_init(wk_job_t *job, const char *type, const char *payload, atomic_int *cancel)
{
    memset(job, 0, sizeof *job);
    job->id = "01900000-0000-7000-8000-000000000001";
    job->type = type;
    job->queue = "default";
    job->payload = payload;
    job->payload_len = payload ? strlen(payload) : 0;
    job->attempt = 2;
    job->max_attempts = 5;
    job->cancelled = cancel;
}

/* Runs type through the registry; deadline_in_ms 0 = no deadline. */
static void run_job(wk_result_t *res, const char *type, const char *payload,
                    int64_t deadline_in_ms, atomic_int *cancel)
{
    wk_job_t job;
    job_init(&job, type, payload, cancel);
    if (deadline_in_ms)
        job.deadline_ms = wk_clock_ms() + deadline_in_ms;
    wk_registry_run(fx.reg, &job, res);
}

static void expect_outcome(const wk_result_t *res, wk_outcome_t want)
{
    if (res->outcome != want)
        fail_msg("expected outcome %s, got %s (error: %s; result: %s)", wk_outcome_name(want),
                 wk_outcome_name(res->outcome), res->error,
                 res->result_json ? res->result_json : "NULL");
}

static void expect_error_has(const wk_result_t *res, const char *part)
{
    if (!strstr(res->error, part))
        fail_msg("expected the error to contain '%s', got '%s'", part, res->error);
}

static json_t *result_json(const wk_result_t *res)
{
    json_error_t jerr;
    if (!res->result_json)
        fail_msg("expected a result, got NULL (error: %s)", res->error);
    json_t *v = json_loads(res->result_json, JSON_DECODE_ANY, &jerr);
    if (!v)
        fail_msg("result is not JSON (%s): %s", jerr.text, res->result_json);
    return v;
}

/* Sets *flag after ms, on its own thread. */
typedef struct {
    atomic_int *flag;
    int ms;
    pthread_t t;
} canceller_t;

static void *canceller_main(void *arg)
{
    canceller_t *c = arg;
    struct timespec ts = {c->ms / 1000, (long)(c->ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    atomic_store(c->flag, 1);
    return NULL;
}

static void canceller_start(canceller_t *c, atomic_int *flag, int ms)
{
    c->flag = flag;
    c->ms = ms;
    assert_int_equal(pthread_create(&c->t, NULL, canceller_main, c), 0);
}

/* Log capture: lines written between begin and end land in buf. */
static int log_pipe[2];

static void log_capture_begin(void)
{
    assert_int_equal(pipe2(log_pipe, O_NONBLOCK), 0);
    yard_log_set_fd(log_pipe[1]);
}

static void log_capture_end(char *buf, size_t cap)
{
    yard_log_set_fd(2);
    ssize_t n = read(log_pipe[0], buf, cap - 1);
    buf[n > 0 ? n : 0] = '\0';
    close(log_pipe[0]);
    close(log_pipe[1]);
}

/* ---- registry ------------------------------------------------------------ */

static void counting_handler(const wk_job_t *job, wk_result_t *res, void *ud)
{
    int *calls = ud;
    (*calls)++;
    res->result_json = strdup("{\"custom\":true}");
}

static void retry_without_message(const wk_job_t *job, wk_result_t *res, void *ud)
{
    res->outcome = WK_OUTCOME_RETRY;
}

static void bad_json_handler(const wk_job_t *job, wk_result_t *res, void *ud)
{
    res->result_json = strdup("{not json");
}

static void bad_utf8_handler(const wk_job_t *job, wk_result_t *res, void *ud)
{
    wk_result_set(res, WK_OUTCOME_FAIL, "bad \xff\xfe bytes \xe2\x82");
}

static void test_registry_add_find(void **state)
{
    wk_registry_t *r;
    wk_handler_fn fn;
    void *ud;
    int calls = 0;
    assert_int_equal(wk_registry_create(&r), 0);
    assert_int_equal(wk_registry_add(r, "resize-image", counting_handler, &calls), 0);
    assert_int_equal(wk_registry_add(r, "resize-image", counting_handler, NULL), YARD_EEXIST);
    assert_int_equal(wk_registry_add(r, "has space", counting_handler, NULL), YARD_EINVAL);
    assert_int_equal(wk_registry_add(r, "", counting_handler, NULL), YARD_EINVAL);
    assert_int_equal(wk_registry_add(r, "no-fn", NULL, NULL), YARD_EINVAL);
    /* Lengths, not NUL terminators: "resize" is a prefix, not a match. */
    assert_int_equal(wk_registry_find(r, "resize-image!!", 12, &fn, &ud), 0);
    assert_ptr_equal(fn, counting_handler);
    assert_ptr_equal(ud, &calls);
    fn = NULL;
    assert_int_equal(wk_registry_find(r, "resize-image", 6, &fn, &ud), YARD_ENOTFOUND);
    assert_null(fn);
    assert_int_equal(wk_registry_find(r, "nope", 4, &fn, &ud), YARD_ENOTFOUND);
    wk_registry_destroy(r);
    wk_registry_destroy(NULL);
}

static void test_registry_runs_custom_handler(void **state)
{
    wk_registry_t *r;
    wk_job_t job;
    wk_result_t res;
    int calls = 0;
    char logs[4096];
    assert_int_equal(wk_registry_create(&r), 0);
    assert_int_equal(wk_registry_add(r, "custom", counting_handler, &calls), 0);
    assert_int_equal(wk_registry_add(r, "lazy", retry_without_message, NULL), 0);
    assert_int_equal(wk_registry_add(r, "badjson", bad_json_handler, NULL), 0);
    assert_int_equal(wk_registry_add(r, "badutf8", bad_utf8_handler, NULL), 0);

    job_init(&job, "custom", "{}", NULL);
    memset(&res, 0x5a, sizeof res); /* run must zero it */
    wk_registry_run(r, &job, &res);
    expect_outcome(&res, WK_OUTCOME_OK);
    assert_int_equal(calls, 1);
    assert_string_equal(res.result_json, "{\"custom\":true}");
    assert_string_equal(res.error, "");
    free(res.result_json);

    job.type = "lazy";
    wk_registry_run(r, &job, &res);
    expect_outcome(&res, WK_OUTCOME_RETRY);
    expect_error_has(&res, "lazy returned retry without a message");

    log_capture_begin();
    job.type = "badjson";
    wk_registry_run(r, &job, &res);
    expect_outcome(&res, WK_OUTCOME_FAIL);
    assert_null(res.result_json);
    expect_error_has(&res, "invalid JSON");

    job.type = "unknown-type";
    wk_registry_run(r, &job, &res);
    log_capture_end(logs, sizeof logs);
    /* Dead at once (not retryable) with a reason naming the type... */
    expect_outcome(&res, WK_OUTCOME_FAIL);
    expect_error_has(&res, "no_handler: no handler for job type \"unknown-type\"");
    assert_non_null(strstr(logs, "\"job_id\":\"01900000-0000-7000-8000-000000000001\""));
    /* ...unless the worker is told to retry such jobs. */
    wk_registry_retry_unknown(r, 1);
    wk_registry_run(r, &job, &res);
    expect_outcome(&res, WK_OUTCOME_RETRY);
    expect_error_has(&res, "no_handler");
    wk_registry_retry_unknown(r, 0);

    job.type = "badutf8";
    wk_registry_run(r, &job, &res);
    assert_string_equal(res.error, "bad ?? bytes ??");
    wk_registry_destroy(r);
}

static int destroyed;
static void count_destroy(void *p)
{
    destroyed += *(int *)p;
}

static void test_registry_owns(void **state)
{
    wk_registry_t *r;
    int one = 1, ten = 10;
    destroyed = 0;
    assert_int_equal(wk_registry_create(&r), 0);
    assert_int_equal(wk_registry_own(r, &one, count_destroy), 0);
    assert_int_equal(wk_registry_own(r, &ten, count_destroy), 0);
    assert_int_equal(destroyed, 0);
    wk_registry_destroy(r);
    assert_int_equal(destroyed, 11);
}

/* ---- built-ins ------------------------------------------------------------ */

static void test_noop_and_echo(void **state)
{
    wk_result_t res;
    const char *payload = "{\"big\":9007199254740993,\"list\":[1,\"two\",null]}";
    run_job(&res, "noop", NULL, 0, NULL);
    expect_outcome(&res, WK_OUTCOME_OK);
    assert_string_equal(res.result_json, "{\"ok\":true}");
    free(res.result_json);

    run_job(&res, "echo", payload, 0, NULL);
    expect_outcome(&res, WK_OUTCOME_OK);
    assert_string_equal(res.result_json, payload); /* byte for byte: 2^53+1 intact */
    free(res.result_json);

    run_job(&res, "echo", NULL, 0, NULL);
    assert_string_equal(res.result_json, "null");
    free(res.result_json);
}

static void test_fail(void **state)
{
    wk_result_t res;
    run_job(&res, "fail", "{\"retryable\":true,\"message\":\"db busy\"}", 0, NULL);
    expect_outcome(&res, WK_OUTCOME_RETRY);
    assert_string_equal(res.error, "db busy");
    assert_null(res.result_json);

    run_job(&res, "fail", "{\"retryable\":false,\"message\":\"bad input\"}", 0, NULL);
    expect_outcome(&res, WK_OUTCOME_FAIL);
    assert_string_equal(res.error, "bad input");

    run_job(&res, "fail", NULL, 0, NULL);
    expect_outcome(&res, WK_OUTCOME_FAIL);

    /* A misspelt key is reported, not silently treated as "not retryable". */
    run_job(&res, "fail", "{\"retriable\":true}", 0, NULL);
    expect_outcome(&res, WK_OUTCOME_FAIL);
    expect_error_has(&res, "retriable");

    run_job(&res, "fail", "{\"retryable\":\"yes\"}", 0, NULL);
    expect_outcome(&res, WK_OUTCOME_FAIL);
    expect_error_has(&res, "fail: payload:");

    run_job(&res, "fail", "{oops", 0, NULL);
    expect_outcome(&res, WK_OUTCOME_FAIL);
    expect_error_has(&res, "not valid JSON");
}

static void test_sleep_completes(void **state)
{
    wk_result_t res;
    int64_t t0 = wk_clock_ms();
    run_job(&res, "sleep", "{\"ms\":40}", 5000, NULL);
    int64_t took = wk_clock_ms() - t0;
    expect_outcome(&res, WK_OUTCOME_OK);
    assert_string_equal(res.result_json, "{\"slept_ms\":40}");
    free(res.result_json);
    assert_true(took >= 40 && took < soon(40));

    run_job(&res, "sleep", "{\"ms\":\"40\"}", 0, NULL);
    expect_outcome(&res, WK_OUTCOME_FAIL);
    run_job(&res, "sleep", "{\"ms\":-1}", 0, NULL);
    expect_outcome(&res, WK_OUTCOME_FAIL);
}

static void test_sleep_honours_cancel(void **state)
{
    wk_result_t res;
    atomic_int cancel = 0;
    canceller_t c;
    int64_t t0 = wk_clock_ms();
    canceller_start(&c, &cancel, 100);
    run_job(&res, "sleep", "{\"ms\":10000}", 0, &cancel);
    int64_t took = wk_clock_ms() - t0;
    pthread_join(c.t, NULL);
    expect_outcome(&res, WK_OUTCOME_CANCELLED);
    if (took < 100 || took > 100 + 50 * fx.scale)
        fail_msg("expected the cancel to be noticed within 50 ms of 100 ms, took %lld ms",
                 (long long)took);
}

static void test_sleep_honours_deadline(void **state)
{
    wk_result_t res;
    int64_t t0 = wk_clock_ms();
    run_job(&res, "sleep", "{\"ms\":10000}", 100, NULL);
    int64_t took = wk_clock_ms() - t0;
    expect_outcome(&res, WK_OUTCOME_TIMEOUT);
    expect_error_has(&res, "deadline");
    if (took < 100 || took > 100 + 50 * fx.scale)
        fail_msg("expected the deadline to end the sleep at about 100 ms, took %lld ms",
                 (long long)took);
}

static void count_beat(void *ud)
{
    (*(int *)ud)++;
}

static void test_sleep_heartbeats(void **state)
{
    wk_job_t job;
    int beats = 0;
    job_init(&job, "sleep", NULL, NULL);
    job.heartbeat = count_beat;
    job.heartbeat_ud = &beats;
    assert_int_equal(wk_job_sleep(&job, WK_HEARTBEAT_MS + 150), WK_OUTCOME_OK);
    if (beats < 1)
        fail_msg("expected a heartbeat during a %d ms sleep, got %d", WK_HEARTBEAT_MS + 150,
                 beats);
}

static void test_crash_only_when_allowed(void **state)
{
    wk_registry_t *r;
    wk_handler_fn fn;
    void *ud;
    assert_int_equal(wk_registry_find(fx.reg, "crash", 5, &fn, &ud), YARD_ENOTFOUND);

    log_capture_begin(); /* the warning about the crash handler */
    assert_int_equal(wk_registry_create(&r), 0);
    wk_builtins_opts_t opts = {.allow_crash = 1};
    assert_int_equal(wk_builtins_register(r, &opts), 0);
    char logs[2048];
    log_capture_end(logs, sizeof logs);
    assert_int_equal(wk_registry_find(r, "crash", 5, &fn, &ud), 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        yard_log_set_fd(open("/dev/null", O_WRONLY));
        wk_job_t job;
        wk_result_t res;
        job_init(&job, "crash", NULL, NULL);
        wk_registry_run(r, &job, &res);
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
    wk_registry_destroy(r);
}

/* ---- exec ------------------------------------------------------------------ */

static const struct {
    const char *name;
    const char *text; /* @DIR@ is the fixture folder */
} scripts[] = {
    {"ok.sh", "#!/bin/sh\n"
              "in=$(/bin/cat)\n"
              "printf '{\"got\":%s,\"id\":\"%s\",\"attempt\":%s,' \"$in\" \"$YARD_JOB_ID\" "
              "\"$YARD_JOB_ATTEMPT\"\n"
              "printf '\"type\":\"%s\",\"args\":\"%s\"}\\n' \"$YARD_JOB_TYPE\" \"$*\"\n"},
    {"env.sh", "#!/bin/sh\n"
               "names=$(/usr/bin/env | /usr/bin/cut -d= -f1 | /bin/grep -vx -e PWD -e SHLVL -e _ |"
               " /usr/bin/sort | /usr/bin/tr '\\n' ' ')\n"
               "printf '{\"names\":\"%s\",\"keep\":\"%s\",\"fixed\":\"%s\"}' \"$names\" "
               "\"$YARD_T_KEEP\" \"$FIXED\"\n"},
    {"exit.sh", "#!/bin/sh\necho \"boom on stderr\" >&2\nexit \"$1\"\n"},
    {"noisy.sh", "#!/bin/sh\n/usr/bin/head -c 5000 /dev/zero | /usr/bin/tr '\\0' e >&2\n"
                 "echo THE-END >&2\nexit 1\n"},
    {"notjson.sh", "#!/bin/sh\necho 'this is not json'\n"},
    {"silent.sh", "#!/bin/sh\nexit 0\n"},
    {"group.sh", "#!/bin/sh\n"
                 "/bin/sleep 30 &\n"
                 "echo $! > @DIR@/bg.pid\n"
                 "trap '' TERM\n"
                 "/bin/sleep 30 &\n"
                 "echo $! > @DIR@/deaf.pid\n"
                 "wait\n"},
    {"sleeper.sh", "#!/bin/sh\nexec /bin/sleep 30\n"},
    {"hog.sh", "#!/bin/sh\n"
               "s=$(/usr/bin/head -c 20000000 /dev/zero | /usr/bin/tr '\\0' x)\n"
               "echo \"{\\\"len\\\":${#s}}\"\n"},
    {"chatty.sh", "#!/bin/sh\n/usr/bin/head -c 5000 /dev/zero | /usr/bin/tr '\\0' a\n"},
    {"noshebang", "echo this file has no interpreter line\n"},
};

static const char exec_conf[] = "# mappings for test_wk_handlers\n"
                                "[t.ok]\npath = @DIR@/ok.sh\nargs = one  two\n"
                                "[t.env]\npath = @DIR@/env.sh\n"
                                "env = YARD_T_KEEP, YARD_T_UNSET, FIXED = yes\n"
                                "[t.exit75]\npath = @DIR@/exit.sh\nargs = 75\n"
                                "[t.exit3]\npath = @DIR@/exit.sh\nargs = 3\n"
                                "[t.noisy]\npath = @DIR@/noisy.sh\n"
                                "[t.notjson]\npath = @DIR@/notjson.sh\n"
                                "[t.silent]\npath = @DIR@/silent.sh\n"
                                "[t.group]\npath = @DIR@/group.sh\nterm_grace_ms = 200\n"
                                "[t.sleeper]\npath = @DIR@/sleeper.sh\n"
                                "[t.hog]\npath = @DIR@/hog.sh\nmemory_mb = 16\n"
                                "[t.hog-roomy]\npath = @DIR@/hog.sh\nmemory_mb = 512\n"
                                "[t.chatty]\npath = @DIR@/chatty.sh\nmax_output_kb = 1\n"
                                "[t.noshebang]\npath = @DIR@/noshebang\n";

/* Writes text to the fixture folder, @DIR@ replaced by the folder. */
static void write_file(const char *name, const char *text, mode_t mode)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", fx.dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (const char *p = text, *at; *p; p = at + 5) {
        if ((at = strstr(p, "@DIR@")) == NULL) {
            fputs(p, f);
            break;
        }
        fwrite(p, 1, (size_t)(at - p), f);
        fputs(fx.dir, f);
    }
    fclose(f);
    chmod(path, mode);
}

/* Returns nonzero once pid is gone: no such process, or a zombie that only
 * waits for its reaper (init). */
static int pid_gone(pid_t pid)
{
    char path[64], stat[256] = "";
    if (kill(pid, 0) < 0 && errno == ESRCH)
        return 1;
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 1;
    size_t n = fread(stat, 1, sizeof stat - 1, f);
    fclose(f);
    stat[n] = '\0';
    char *p = strrchr(stat, ')');
    return p && (p[2] == 'Z' || p[2] == 'X');
}

static pid_t read_pid(const char *name)
{
    char path[512];
    int pid = 0;
    snprintf(path, sizeof path, "%s/%s", fx.dir, name);
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("expected the script to write %s", path);
    if (fscanf(f, "%d", &pid) != 1)
        pid = 0;
    fclose(f);
    assert_true(pid > 1);
    return pid;
}

static void test_exec_success(void **state)
{
    wk_result_t res;
    run_job(&res, "t.ok", "{\"n\":1}", 5000, NULL);
    expect_outcome(&res, WK_OUTCOME_OK);
    json_t *v = result_json(&res);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(v, "got"), "n")), 1);
    assert_string_equal(json_string_value(json_object_get(v, "id")),
                        "01900000-0000-7000-8000-000000000001");
    assert_int_equal(json_integer_value(json_object_get(v, "attempt")), 2);
    assert_string_equal(json_string_value(json_object_get(v, "type")), "t.ok");
    assert_string_equal(json_string_value(json_object_get(v, "args")), "one two");
    json_decref(v);
    free(res.result_json);

    run_job(&res, "t.silent", "{}", 5000, NULL); /* no output: result null */
    expect_outcome(&res, WK_OUTCOME_OK);
    assert_null(res.result_json);
}

static void test_exec_env_cleared(void **state)
{
    wk_result_t res;
    run_job(&res, "t.env", NULL, 5000, NULL);
    expect_outcome(&res, WK_OUTCOME_OK);
    json_t *v = result_json(&res);
    /* The script drops what shells export themselves (PWD, SHLVL, _). */
    const char *want = "FIXED YARD_JOB_ATTEMPT YARD_JOB_ID YARD_JOB_MAX_ATTEMPTS "
                       "YARD_JOB_QUEUE YARD_JOB_TYPE YARD_T_KEEP ";
    const char *names = json_string_value(json_object_get(v, "names"));
    if (!names || strcmp(names, want) != 0)
        fail_msg("expected the environment '%s', got '%s'", want, names ? names : "NULL");
    assert_string_equal(json_string_value(json_object_get(v, "keep")), "kept");
    assert_string_equal(json_string_value(json_object_get(v, "fixed")), "yes");
    json_decref(v);
    free(res.result_json);
}

static void test_exec_exit_statuses(void **state)
{
    wk_result_t res;
    run_job(&res, "t.exit75", NULL, 5000, NULL);
    expect_outcome(&res, WK_OUTCOME_RETRY);
    expect_error_has(&res, "75 (EX_TEMPFAIL)");

    run_job(&res, "t.exit3", NULL, 5000, NULL);
    expect_outcome(&res, WK_OUTCOME_FAIL);
    expect_error_has(&res, "exited with 3; stderr: boom on stderr");

    /* Only the last 2 KiB of a long stderr are kept. */
    run_job(&res, "t.noisy", NULL, 5000, NULL);
    expect_outcome(&res, WK_OUTCOME_FAIL);
    expect_error_has(&res, "stderr: ...eeee");
    expect_error_has(&res, "eTHE-END");
    size_t len = strlen(res.error);
    assert_true(len > 2000 && len < 2200);

    run_job(&res, "t.noshebang", NULL, 5000, NULL);
    expect_outcome(&res, WK_OUTCOME_FAIL);
    expect_error_has(&res, "cannot execute");
    expect_error_has(&res, "Exec format error");
}

static void test_exec_invalid_json(void **state)
{
    wk_result_t res;
    run_job(&res, "t.notjson", NULL, 5000, NULL);
    expect_outcome(&res, WK_OUTCOME_FAIL);
    expect_error_has(&res, "stdout is not valid JSON");
    assert_null(res.result_json);
}

static void test_exec_timeout_kills_group(void **state)
{
    wk_result_t res;
    char path[512];
    snprintf(path, sizeof path, "%s/bg.pid", fx.dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/deaf.pid", fx.dir);
    unlink(path);
    int64_t t0 = wk_clock_ms();
    run_job(&res, "t.group", NULL, 300, NULL);
    int64_t took = wk_clock_ms() - t0;
    expect_outcome(&res, WK_OUTCOME_TIMEOUT);
    /* The script ignores SIGTERM, so this took the 200 ms grace and SIGKILL. */
    if (took < 300 + 200 || took > soon(300 + 200))
        fail_msg("expected SIGTERM at 300 ms and SIGKILL 200 ms later, took %lld ms",
                 (long long)took);
    pid_t bg = read_pid("bg.pid"), deaf = read_pid("deaf.pid");
    /* SIGKILL is delivered asynchronously; give the kernel a moment. */
    for (int i = 0; i < 50 && !(pid_gone(bg) && pid_gone(deaf)); i++)
        usleep(10000);
    if (!pid_gone(bg) || !pid_gone(deaf)) {
        kill(bg, SIGKILL);
        kill(deaf, SIGKILL);
        fail_msg("expected the program's children to die with it: %d %s, %d %s", (int)bg,
                 pid_gone(bg) ? "gone" : "alive", (int)deaf, pid_gone(deaf) ? "gone" : "alive");
    }
}

static void test_exec_cancel(void **state)
{
    wk_result_t res;
    atomic_int cancel = 0;
    canceller_t c;
    int64_t t0 = wk_clock_ms();
    canceller_start(&c, &cancel, 100);
    run_job(&res, "t.sleeper", NULL, 10000, &cancel);
    int64_t took = wk_clock_ms() - t0;
    pthread_join(c.t, NULL);
    expect_outcome(&res, WK_OUTCOME_CANCELLED);
    if (took > soon(100))
        fail_msg("expected the cancel to stop the program at about 100 ms, took %lld ms",
                 (long long)took);

    run_job(&res, "t.sleeper", NULL, 10000, &cancel); /* cancelled before it starts */
    expect_outcome(&res, WK_OUTCOME_CANCELLED);
    expect_error_has(&res, "was not started");
}

static void test_exec_memory_limit(void **state)
{
    wk_result_t res;
    run_job(&res, "t.hog-roomy", NULL, 10000, NULL); /* the hog works with room */
    expect_outcome(&res, WK_OUTCOME_OK);
    assert_string_equal(res.result_json, "{\"len\":20000000}");
    free(res.result_json);
    run_job(&res, "t.hog", NULL, 10000, NULL);
    expect_outcome(&res, WK_OUTCOME_FAIL);
    assert_null(res.result_json);
}

static void test_exec_output_cap(void **state)
{
    wk_result_t res;
    run_job(&res, "t.chatty", NULL, 5000, NULL);
    expect_outcome(&res, WK_OUTCOME_FAIL);
    expect_error_has(&res, "max_output_kb (1 KiB)");
}

static void test_exec_unread_stdin(void **state)
{
    /* 4 MiB the program never reads: EPIPE, not SIGPIPE, and no leftover. */
    size_t n = 4 << 20;
    char *payload = malloc(n + 3);
    assert_non_null(payload);
    payload[0] = '"';
    memset(payload + 1, 'p', n);
    payload[n + 1] = '"';
    payload[n + 2] = '\0';
    wk_result_t res;
    sigset_t pending, mask;
    run_job(&res, "t.silent", payload, 5000, NULL);
    free(payload);
    expect_outcome(&res, WK_OUTCOME_OK);
    sigpending(&pending);
    assert_false(sigismember(&pending, SIGPIPE));
    pthread_sigmask(SIG_SETMASK, NULL, &mask);
    assert_false(sigismember(&mask, SIGPIPE));
}

static void test_exec_config_errors(void **state)
{
    static const struct {
        const char *text;
        const char *want;
    } cases[] = {
        {"# c\n\n[a]\npath = /bin/true\ncolour = red\n", "bad.conf:5: unknown key 'colour'"},
        {"[a]\nargs = -x\n\n[b]\npath = /bin/true\n", "bad.conf:1: [a] has no path"},
        {"[a]\npath = /bin/true\n[b]\n", "bad.conf:3: [b] has no path"},
        {"path = /bin/true\n", "bad.conf:1: 'path' outside a [type] section"},
        {"[a]\npath = bin/true\n", "bad.conf:2: path: 'bin/true' is not an absolute path"},
        {"[a]\npath = /nonexistent/prog\n", "bad.conf:2: path: /nonexistent/prog: No such file"},
        {"[a]\npath = /etc/passwd\n", "bad.conf:2: path: /etc/passwd is not an executable"},
        {"[a]\npath = /bin/true\nmemory_mb = lots\n", "bad.conf:3: memory_mb: 'lots' is not"},
        {"[a]\npath = /bin/true\ntimeout_s = 999999\n", "bad.conf:3: timeout_s: 999999 is out of"},
        {"[a]\npath = /bin/true\n[a]\n", "bad.conf:3: [a] is already defined at line 1"},
        {"[a b]\n", "bad.conf:1: 'a b' is not a valid job type"},
        {"[a\n", "bad.conf:1: a section header must be [type]"},
        {"[a]\npath /bin/true\n", "bad.conf:2: expected `key = value`"},
        {"[a]\npath = /bin/true\nenv = YARD_JOB_ID\n", "bad.conf:3: env: YARD_JOB_* variables"},
        {"[a]\npath = /bin/true\nenv = 9X\n", "bad.conf:3: env: '9X' is not a variable"},
        {"[a]\npath = /bin/true\npath = /bin/true\n", "bad.conf:3: path is given twice in [a]"},
        {"[a]\npath = /bin/true\ndir = /etc/passwd\n", "bad.conf:3: dir: /etc/passwd is not a"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        wk_exec_config_t *cfg = NULL;
        char logs[4096];
        log_capture_begin();
        int rc = wk_exec_config_parse(&cfg, cases[i].text, "bad.conf");
        log_capture_end(logs, sizeof logs);
        if (rc != YARD_ECONFIG || cfg)
            fail_msg("case %zu: expected YARD_ECONFIG, got %d", i, rc);
        if (!strstr(logs, cases[i].want))
            fail_msg("case %zu: expected the log to say '%s', got: %s", i, cases[i].want, logs);
    }
}

static void test_exec_config_parses(void **state)
{
    wk_exec_config_t *cfg;
    const char *text = "; comment\n[x.y]\n  path = /bin/echo  \nargs = a  b\tc\n"
                       "env = YARD_T_KEEP,,FIXED=a b\ncpu_s = 0\nmax_output_kb = 8\n"
                       "timeout_s = 5\ndir = /tmp\n[z]\npath=/bin/true\n";
    assert_int_equal(wk_exec_config_parse(&cfg, text, "good.conf"), 0);
    assert_int_equal(cfg->n, 2);
    const wk_exec_entry_t *e = &cfg->entries[0];
    assert_string_equal(e->type, "x.y");
    assert_string_equal(e->argv[0], "/bin/echo");
    assert_string_equal(e->argv[1], "a");
    assert_string_equal(e->argv[2], "b");
    assert_string_equal(e->argv[3], "c");
    assert_null(e->argv[4]);
    assert_int_equal(e->envc, 2);
    assert_string_equal(e->envp[0], "YARD_T_KEEP=kept");
    assert_string_equal(e->envp[1], "FIXED=a b");
    assert_int_equal(e->cpu_s, 0);
    assert_int_equal(e->max_output_kb, 8);
    assert_int_equal(e->timeout_s, 5);
    assert_string_equal(e->dir, "/tmp");
    e = &cfg->entries[1];
    assert_int_equal(e->memory_mb, 1024); /* defaults */
    assert_int_equal(e->term_grace_ms, 2000);
    assert_string_equal(e->dir, "/");
    assert_int_equal(e->envc, 0);
    assert_null(e->envp[0]);
    wk_exec_config_destroy(cfg);
    wk_exec_config_destroy(NULL);
}

static void test_exec_type_clash(void **state)
{
    wk_registry_t *r;
    char logs[4096];
    write_file("clash.conf", "[t.fine]\npath = /bin/true\n\n[echo]\npath = /bin/true\n", 0644);
    char path[512];
    snprintf(path, sizeof path, "%s/clash.conf", fx.dir);
    wk_builtins_opts_t opts = {.exec_config = path};
    assert_int_equal(wk_registry_create(&r), 0);
    log_capture_begin();
    assert_int_equal(wk_builtins_register(r, &opts), YARD_EEXIST);
    log_capture_end(logs, sizeof logs);
    assert_non_null(strstr(logs, "clash.conf:4: type 'echo' is already registered"));
    wk_registry_destroy(r); /* frees the half-registered mappings */

    opts.exec_config = "/nonexistent/exec.conf";
    assert_int_equal(wk_registry_create(&r), 0);
    log_capture_begin();
    assert_int_equal(wk_builtins_register(r, &opts), YARD_EIO);
    log_capture_end(logs, sizeof logs);
    assert_non_null(strstr(logs, "/nonexistent/exec.conf"));
    wk_registry_destroy(r);
}

/* ---- http ------------------------------------------------------------------- */

/* Reads one request (headers and Content-Length body) into buf. */
static size_t server_read_request(int fd, char *buf, size_t cap)
{
    size_t len = 0, want = 0;
    while (len < cap - 1) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 2000) <= 0)
            break;
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
        buf[len] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (!end)
            continue;
        if (!want) {
            char *cl = strcasestr(buf, "\r\nContent-Length:");
            want = (size_t)(end + 4 - buf) + (cl && cl < end ? strtoul(cl + 17, NULL, 10) : 0);
        }
        if (len >= want)
            break;
    }
    buf[len] = '\0';
    return len;
}

static void server_reply(int fd, const char *status, const char *extra, const char *body,
                         size_t len)
{
    char head[512];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %s\r\nContent-Length: %zu\r\nConnection: close\r\n%s\r\n", status,
                     len, extra);
    ssize_t w = write(fd, head, (size_t)n);
    for (size_t off = 0; w >= 0 && off < len; off += (size_t)w)
        w = write(fd, body + off, len - off);
}

static void server_handle(int fd)
{
    static char req[65536];
    server_read_request(fd, req, sizeof req);
    char path[128] = "";
    sscanf(req, "%*s %127s", path);
    if (strcmp(path, "/ok") == 0)
        server_reply(fd, "200 OK", "", "hello", 5);
    else if (strcmp(path, "/unavail") == 0)
        server_reply(fd, "503 Service Unavailable", "", "try later", 9);
    else if (strcmp(path, "/ratelimit") == 0)
        server_reply(fd, "429 Too Many Requests", "Retry-After: 1\r\n", "", 0);
    else if (strcmp(path, "/missing") == 0)
        server_reply(fd, "404 Not Found", "", "no such thing", 13);
    else if (strcmp(path, "/echo") == 0)
        server_reply(fd, "200 OK", "", req, strlen(req));
    else if (strcmp(path, "/binary") == 0)
        server_reply(fd, "200 OK", "", "\xff\xfeok\0!", 6);
    else if (strcmp(path, "/redir-file") == 0)
        server_reply(fd, "302 Found", "Location: file:///etc/passwd\r\n", "", 0);
    else if (strcmp(path, "/big") == 0) {
        size_t n = 100 * 1024;
        char *big = malloc(n);
        memset(big, 'b', n);
        server_reply(fd, "200 OK", "", big, n);
        free(big);
    } else if (strcmp(path, "/slow") == 0) {
        /* Answers only after 5 s, or gives up when the client hangs up. */
        struct pollfd p[2] = {{fd, POLLIN, 0}, {fx.stop[0], POLLIN, 0}};
        if (poll(p, 2, 5000) == 0)
            server_reply(fd, "200 OK", "", "late", 4);
    } else
        server_reply(fd, "400 Bad Request", "", "", 0);
}

static void *server_main(void *arg)
{
    int lfd = *(int *)arg;
    for (;;) {
        struct pollfd p[2] = {{lfd, POLLIN, 0}, {fx.stop[0], POLLIN, 0}};
        if (poll(p, 2, -1) < 0 && errno != EINTR)
            break;
        if (p[1].revents)
            break;
        if (!(p[0].revents & POLLIN))
            continue;
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0)
            continue;
        server_handle(fd);
        close(fd);
    }
    close(lfd);
    return NULL;
}

static int server_start(void)
{
    static int lfd;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    socklen_t alen = sizeof a;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(lfd, 16) < 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &alen) < 0 || pipe2(fx.stop, O_CLOEXEC) < 0)
        return -1;
    fx.port = ntohs(a.sin_port);
    return pthread_create(&fx.server, NULL, server_main, &lfd) == 0 ? 0 : -1;
}

/* Runs `http` on a URL path of the test server with extra payload fields. */
static void run_http(wk_result_t *res, const char *path, const char *extra, int64_t deadline,
                     atomic_int *cancel)
{
    char payload[1024];
    snprintf(payload, sizeof payload, "{\"url\":\"http://127.0.0.1:%d%s\"%s}", fx.port, path,
             extra ? extra : "");
    run_job(res, "http", payload, deadline, cancel);
}

static void test_http_statuses(void **state)
{
    wk_result_t res;
    run_http(&res, "/ok", NULL, 5000, NULL);
    expect_outcome(&res, WK_OUTCOME_OK);
    assert_string_equal(res.result_json, "{\"status\":200,\"body\":\"hello\"}");
    free(res.result_json);

    run_http(&res, "/unavail", NULL, 5000, NULL);
    expect_outcome(&res, WK_OUTCOME_RETRY);
    expect_error_has(&res, "answered 503: try later");

    run_http(&res, "/ratelimit", NULL, 5000, NULL);
    expect_outcome(&res, WK_OUTCOME_RETRY);
    expect_error_has(&res, "answered 429");

    run_http(&res, "/missing", NULL, 5000, NULL);
    expect_outcome(&res, WK_OUTCOME_FAIL);
    expect_error_has(&res, "answered 404");

    /* Not valid UTF-8 (and a NUL): still a valid JSON result. */
    run_http(&res, "/binary", NULL, 5000, NULL);
    expect_outcome(&res, WK_OUTCOME_OK);
    assert_string_equal(res.result_json, "{\"status\":200,\"body\":\"??ok?!\"}");
    free(res.result_json);
}

static void test_http_request_shape(void **state)
{
    wk_result_t res;
    run_http(&res, "/echo",
             ",\"method\":\"PUT\",\"headers\":{\"X-Test\":\"1\"},\"body\":{\"k\":[1,2]}", 5000,
             NULL);
    expect_outcome(&res, WK_OUTCOME_OK);
    json_t *v = result_json(&res);
    const char *req = json_string_value(json_object_get(v, "body"));
    assert_non_null(req);
    if (strncmp(req, "PUT /echo HTTP/1.1\r\n", 20) != 0 || !strstr(req, "\r\nX-Test: 1\r\n") ||
        !strstr(req, "\r\nContent-Type: application/json\r\n") ||
        !strstr(req, "\r\n\r\n{\"k\":[1,2]}"))
        fail_msg("expected a PUT with X-Test, a JSON type and the body, the server got:\n%s",
                 req);
    json_decref(v);
    free(res.result_json);

    run_http(&res, "/echo", ",\"body\":\"plain text\"", 5000, NULL); /* POST by default */
    expect_outcome(&res, WK_OUTCOME_OK);
    assert_non_null(strstr(res.result_json, "POST /echo"));
    assert_non_null(strstr(res.result_json, "plain text"));
    free(res.result_json);

    run_http(&res, "/echo", ",\"headers\":{\"X-Evil\":\"a\\r\\nInjected: 1\"}", 5000, NULL);
    expect_outcome(&res, WK_OUTCOME_FAIL);
    expect_error_has(&res, "X-Evil");

    run_job(&res, "http", "{\"method\":\"GET\"}", 5000, NULL);
    expect_outcome(&res, WK_OUTCOME_FAIL);
    expect_error_has(&res, "http: payload:");
}

static void test_http_deadline_and_timeout(void **state)
{
    wk_result_t res;
    int64_t t0 = wk_clock_ms();
    run_http(&res, "/slow", NULL, 300, NULL);
    int64_t took = wk_clock_ms() - t0;
    expect_outcome(&res, WK_OUTCOME_TIMEOUT);
    if (took < 290 || took > soon(300))
        fail_msg("expected the request to stop at the 300 ms deadline, took %lld ms",
                 (long long)took);

    /* The request's own timeout_ms is a network problem: retry. */
    run_http(&res, "/slow", ",\"timeout_ms\":200", 5000, NULL);
    expect_outcome(&res, WK_OUTCOME_RETRY);
    expect_error_has(&res, "timeout_ms");
}

static void test_http_cancel(void **state)
{
    wk_result_t res;
    atomic_int cancel = 0;
    canceller_t c;
    int64_t t0 = wk_clock_ms();
    canceller_start(&c, &cancel, 100);
    run_http(&res, "/slow", NULL, 10000, &cancel);
    int64_t took = wk_clock_ms() - t0;
    pthread_join(c.t, NULL);
    expect_outcome(&res, WK_OUTCOME_CANCELLED);
    if (took > soon(1100)) /* libcurl looks at progress about once a second */
        fail_msg("expected the cancel to stop the request within a second, took %lld ms",
                 (long long)took);
}

static void test_http_protocols_and_errors(void **state)
{
    wk_result_t res;
    run_job(&res, "http", "{\"url\":\"file:///etc/passwd\"}", 5000, NULL);
    expect_outcome(&res, WK_OUTCOME_FAIL);
    expect_error_has(&res, "Protocol \"file\" not supported");
    assert_null(res.result_json);

    run_http(&res, "/redir-file", NULL, 5000, NULL);
    expect_outcome(&res, WK_OUTCOME_FAIL);
    expect_error_has(&res, "Protocol \"file\" not supported");
    assert_null(res.result_json);

    /* Nothing listens on port 1: a network error, worth a retry. */
    run_job(&res, "http", "{\"url\":\"http://127.0.0.1:1/\"}", 5000, NULL);
    expect_outcome(&res, WK_OUTCOME_RETRY);
}

static void test_http_body_cap(void **state)
{
    wk_result_t res;
    run_http(&res, "/big", NULL, 5000, NULL);
    expect_outcome(&res, WK_OUTCOME_OK);
    json_t *v = result_json(&res);
    assert_int_equal(json_string_length(json_object_get(v, "body")), 64 * 1024);
    assert_true(json_is_true(json_object_get(v, "truncated")));
    json_decref(v);
    free(res.result_json);
}

/* ---- main ------------------------------------------------------------------- */

static int group_setup(void **state)
{
    const char *scale = getenv("YARD_TEST_TIMEOUT_SCALE");
    const char *root = getenv("YARD_TEST_DIR");
    char conf[512];
    fx.scale = scale && atoi(scale) > 0 ? atoi(scale) : 1;
    snprintf(fx.dir, sizeof fx.dir, "%s/wk-handlers.XXXXXX", root ? root : "/tmp");
    if (!mkdtemp(fx.dir))
        return -1;
    for (size_t i = 0; i < sizeof scripts / sizeof scripts[0]; i++)
        write_file(scripts[i].name, scripts[i].text, 0755);
    write_file("exec.conf", exec_conf, 0644);
    snprintf(conf, sizeof conf, "%s/exec.conf", fx.dir);
    setenv("YARD_T_KEEP", "kept", 1);
    setenv("YARD_T_DROP", "dropped", 1);
    unsetenv("YARD_T_UNSET");
    yard_log_init("test_wk_handlers", YARD_LOG_WARN);
    yard_config_t cfg;
    yard_config_defaults(&cfg);
    if (yard_config_set(&cfg, "egress_allow", "127.0.0.1/32") < 0 ||
        yard_config_set(&cfg, "egress_follow_redirects", "true") < 0 ||
        wk_outbound_create(&fx.outbound, &cfg) < 0)
        return -1;
    wk_builtins_opts_t opts = {.exec_config = conf, .allow_crash = 0, .outbound = fx.outbound};
    if (wk_registry_create(&fx.reg) < 0 || wk_builtins_register(fx.reg, &opts) < 0)
        return -1;
    return server_start();
}

static int group_teardown(void **state)
{
    char cmd[600];
    close(fx.stop[1]);
    pthread_join(fx.server, NULL);
    close(fx.stop[0]);
    wk_registry_destroy(fx.reg);
    wk_outbound_destroy(fx.outbound);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fx.dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry_add_find),
        cmocka_unit_test(test_registry_runs_custom_handler),
        cmocka_unit_test(test_registry_owns),
        cmocka_unit_test(test_noop_and_echo),
        cmocka_unit_test(test_fail),
        cmocka_unit_test(test_sleep_completes),
        cmocka_unit_test(test_sleep_honours_cancel),
        cmocka_unit_test(test_sleep_honours_deadline),
        cmocka_unit_test(test_sleep_heartbeats),
        cmocka_unit_test(test_crash_only_when_allowed),
        cmocka_unit_test(test_exec_success),
        cmocka_unit_test(test_exec_env_cleared),
        cmocka_unit_test(test_exec_exit_statuses),
        cmocka_unit_test(test_exec_invalid_json),
        cmocka_unit_test(test_exec_timeout_kills_group),
        cmocka_unit_test(test_exec_cancel),
        cmocka_unit_test(test_exec_memory_limit),
        cmocka_unit_test(test_exec_output_cap),
        cmocka_unit_test(test_exec_unread_stdin),
        cmocka_unit_test(test_exec_config_errors),
        cmocka_unit_test(test_exec_config_parses),
        cmocka_unit_test(test_exec_type_clash),
        cmocka_unit_test(test_http_statuses),
        cmocka_unit_test(test_http_request_shape),
        cmocka_unit_test(test_http_deadline_and_timeout),
        cmocka_unit_test(test_http_cancel),
        cmocka_unit_test(test_http_protocols_and_errors),
        cmocka_unit_test(test_http_body_cap),
    };
    return cmocka_run_group_tests_name("wk_handlers", tests, group_setup, group_teardown);
}
