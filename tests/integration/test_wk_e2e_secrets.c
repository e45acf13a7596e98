/*
 * test_wk_e2e_secrets.c - sealed job secrets end to end: real yard-gateway
 * and yard-worker processes, real nats-server and PostgreSQL.
 *
 * The test makes two key pairs, "old" and "new". The gateway seals with the
 * old public key; the execute worker holds "new,old" (the middle of a
 * rotation). An exec program reads fd 3 (YARD_JOB_SECRETS_FD) and prints the
 * SHA-256 of what it read: it must equal the hash of the secrets' JSON text.
 * The plaintext values appear nowhere: not in any file of the nats-server
 * store, read while the job waits in JOBS, after it ran (EVENTS) and once it
 * is dead (DLQ) (each time the sealed blob's key id is found in that
 * stream's files, so the files read are the right ones), not in any row of
 * jobs, job_attempts or audit_log (row_to_json), not in the gateway's and
 * workers' logs (debug level), not in GET /v1/jobs/{id} or GET /v1/jobs
 * (which say "has_secrets": true). A worker holding only the new key fails
 * such a job for good, naming the old key id; once it holds both, a DLQ
 * replay runs it. A delayed job, published again from its PostgreSQL row by
 * the schedule role, still hands its program the secrets. A gateway without
 * secrets_public_key answers 400.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "log.h"
#include "sealed.h"
#include "yt_http.h"
#include "yt_workers.h"

#define PLAIN_1 "PLAINdbpass-7f3a91"
#define PLAIN_2 "PLAINtoken-c2e8b4"
/* The secrets object as the test posts it, and as the gateway encodes it
 * (compact, in order): what the program must read on fd 3. */
#define SECRETS_JSON "{\"db_password\":\"" PLAIN_1 "\",\"api_token\":\"" PLAIN_2 "\"}"

static const char *const plains[] = {PLAIN_1, PLAIN_2};

typedef struct {
    char pub[YARD_SEALED_KEY_B64_LEN + 1], priv[YARD_SEALED_KEY_B64_LEN + 1];
    char kid[YARD_SEALED_KEY_ID_LEN + 1];
} pair_t;

static struct {
    yt_cluster_t c;
    pair_t old, new;
    char pub_var[120], both_var[160], new_var[120], exec_var[400];
} g;

/* ---- helpers ---------------------------------------------------------------- */

static void submit(int port, const char *body, char id[YT_JOB_ID_MAX])
{
    int st = yt_job_submit(port, body, id);
    if (st != 202)
        fail_msg("%s: expected 202, got %d", body, st);
}

static void wait_status(const char *id, const char *want, int timeout_ms)
{
    char got[64];
    if (yt_job_wait_status(g.c.port, id, want, timeout_ms, got, sizeof got) != 0) {
        yt_worker_log_tail(g.c.env, &g.c.exec);
        fail_msg("job %s: expected status %s within %d ms, got %s", id, want, timeout_ms, got);
    }
}

/* Fails if the len bytes at text hold a plaintext secret value. */
static void assert_no_plain(const char *what, const char *text, size_t len)
{
    for (size_t i = 0; i < sizeof plains / sizeof plains[0]; i++)
        if (memmem(text, len, plains[i], strlen(plains[i])))
            fail_msg("%s holds the secret value `%s`", what, plains[i]);
}

/* Reads a whole file (binary) into *out (malloc'd) and *len. Returns 0 or -1. */
static int read_all(const char *path, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (size_t got; buf && (got = fread(buf + n, 1, cap - n, f)) > 0;) {
        n += got;
        if (n == cap) {
            char *bigger = realloc(buf, cap *= 2);
            if (!bigger) {
                free(buf);
                buf = NULL;
            }
            buf = bigger;
        }
    }
    fclose(f);
    if (!buf)
        return -1;
    *out = buf;
    *len = n;
    return 0;
}

static struct {
    size_t files, bytes, with_key_id;
    const char *stream; /* "/streams/<name>/": count key ids only there */
    char hit[400];
} walk;

static int walk_file(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    if (type != FTW_F)
        return 0;
    char *buf;
    size_t len;
    if (read_all(path, &buf, &len) != 0)
        return 0;
    walk.files++;
    walk.bytes += len;
    if (strstr(path, walk.stream) && memmem(buf, len, g.old.kid, YARD_SEALED_KEY_ID_LEN))
        walk.with_key_id++;
    for (size_t i = 0; i < sizeof plains / sizeof plains[0] && !walk.hit[0]; i++)
        if (memmem(buf, len, plains[i], strlen(plains[i])))
            snprintf(walk.hit, sizeof walk.hit, "%s holds `%s`", path, plains[i]);
    free(buf);
    return 0;
}

static void assert_log_clean(const char *name)
{
    char path[400];
    snprintf(path, sizeof path, "%s/%s.log", g.c.env->dir, name);
    char *buf;
    size_t len;
    if (read_all(path, &buf, &len) != 0)
        fail_msg("cannot read %s", path);
    if (len == 0)
        fail_msg("%s is empty: the check proves nothing", path);
    assert_no_plain(path, buf, len);
    free(buf);
}

/* GETs path; checks 200, no plaintext, no sealed blob, and has_secrets true. */
static void assert_get_clean(const char *path)
{
    yt_http_resp_t r;
    int st = yt_http_request(&r, g.c.port, "GET", path, NULL, NULL, 0);
    if (st != 200)
        fail_msg("GET %s: expected 200, got %d", path, st);
    assert_no_plain(path, r.body, r.body_len);
    char blob_head[YARD_SEALED_KEY_ID_LEN + 2];
    snprintf(blob_head, sizeof blob_head, "%s.", g.old.kid);
    if (memmem(r.body, r.body_len, blob_head, strlen(blob_head)))
        fail_msg("GET %s shows the sealed blob: %s", path, yt_http_body_excerpt(&r));
    if (!strstr(r.body, "\"has_secrets\" : true") && !strstr(r.body, "\"has_secrets\":true"))
        fail_msg("GET %s: expected \"has_secrets\": true, got %s", path, yt_http_body_excerpt(&r));
    yt_http_resp_free(&r);
}

/* Reads every file of the nats-server store: none may hold a plaintext
 * value, and some file of stream (e.g. "JOBS") must hold the sealed blob's
 * key id, or the check read the wrong files. */
static void assert_store_clean(const char *stream)
{
    char dir[64];
    snprintf(dir, sizeof dir, "/streams/%s/", stream);
    /* nats-server writes its blocks lazily: look again for up to 10 s. */
    for (int tries = 0; tries < 100; tries++) {
        memset(&walk, 0, sizeof walk);
        walk.stream = dir;
        assert_int_equal(nftw(g.c.env->nats_store, walk_file, 16, FTW_PHYS), 0);
        if (walk.hit[0] || walk.with_key_id > 0)
            break;
        yt_nap_ms(100);
    }
    if (walk.hit[0])
        fail_msg("the JetStream store: %s", walk.hit);
    if (walk.with_key_id == 0)
        fail_msg("no file of stream %s in %s (%zu files, %zu bytes read) holds the sealed "
                 "blob's key id %s: the check read the wrong files", stream,
                 g.c.env->nats_store, walk.files, walk.bytes, g.old.kid);
}

/* Checks that job id's program read exactly the secrets' JSON on fd 3 and
 * saw no secret value in its argv or environment. */
static void assert_program_read_secrets(const char *id)
{
    unsigned char h[crypto_hash_sha256_BYTES];
    char hex[2 * sizeof h + 1], got[512];
    crypto_hash_sha256(h, (const unsigned char *)SECRETS_JSON, strlen(SECRETS_JSON));
    sodium_bin2hex(hex, sizeof hex, h, sizeof h);
    yt_sql_text(g.c.env, got, sizeof got, "SELECT result::text FROM jobs WHERE id = '%s'", id);
    if (!strstr(got, hex) || !strstr(got, "\"fd\": \"3\""))
        fail_msg("job %s: expected a result with sha256 %s and fd \"3\", got %s", id, hex, got);
    if (strstr(got, "\"env_has_plain\": \"no\"") == NULL)
        fail_msg("job %s: the program saw a secret value in its environment or argv: %s", id,
                 got);
}

/* ---- tests ------------------------------------------------------------------ */

static void test_exec_reads_secrets_on_fd3_and_they_stay_sealed(void **state)
{
    char id[YT_JOB_ID_MAX];
    /* No execute worker yet: the job waits in the JOBS stream, sealed. */
    submit(g.c.port,
           "{\"type\":\"exec-secrets\",\"payload\":{\"n\":1},\"secrets\":" SECRETS_JSON "}", id);
    wait_status(id, "queued", 10000);
    assert_store_clean("JOBS");
    assert_int_equal(yt_worker_start(&g.c.exec, g.c.env, "execute", NULL,
                                     (char *[]){g.exec_var, g.both_var, "YARD_LOG_LEVEL=debug",
                                                NULL},
                                     0),
                     0);
    wait_status(id, "succeeded", 15000);

    assert_program_read_secrets(id);

    /* PostgreSQL: the sealed blob is kept, the plaintext nowhere. */
    long long sealed = yt_sql_int(g.c.env,
                                  "SELECT count(*) FROM jobs WHERE id = '%s'"
                                  " AND secrets_sealed LIKE '%s.%%'", id, g.old.kid);
    if (sealed != 1)
        fail_msg("job %s: expected jobs.secrets_sealed to start with `%s.`", id, g.old.kid);
    /* The audit role records events asynchronously: wait until it has this job's. */
    yt_wait_sql(g.c.env, 1, 10000, "SELECT (count(*) > 0)::int FROM audit_log WHERE"
                " row_to_json(audit_log)::text LIKE '%%%s%%'", id);
    static const char *const tables[] = {"jobs", "job_attempts", "audit_log"};
    for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++)
        for (size_t i = 0; i < sizeof plains / sizeof plains[0]; i++) {
            long long n = yt_sql_int(g.c.env,
                                     "SELECT count(*) FROM %s x WHERE row_to_json(x)::text"
                                     " LIKE '%%%s%%'", tables[t], plains[i]);
            if (n != 0)
                fail_msg("%lld row(s) of %s hold the secret value `%s`", n, tables[t], plains[i]);
        }
    if (yt_sql_int(g.c.env, "SELECT count(*) FROM job_attempts WHERE job_id = '%s'", id) < 1)
        fail_msg("job %s has no attempt row: the job_attempts check proves nothing", id);

    /* GET answers. */
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    assert_get_clean(path);
    assert_get_clean("/v1/jobs?type=exec-secrets");

    /* The nats-server store, every file, after the run (its events too). */
    assert_store_clean("EVENTS");

    /* Logs. */
    assert_log_clean("gateway");
    assert_log_clean(g.c.exec.name);
    assert_log_clean(g.c.audit.name);
}

static void test_worker_without_the_key_fails_naming_it_then_replay_runs(void **state)
{
    yt_cluster_stop_worker(&g.c, &g.c.exec);
    assert_int_equal(yt_worker_start(&g.c.exec, g.c.env, "execute", NULL,
                                     (char *[]){g.exec_var, g.new_var, NULL}, 0),
                     0);
    char id[YT_JOB_ID_MAX], err[1024];
    submit(g.c.port, "{\"type\":\"exec-secrets\",\"max_attempts\":5,\"secrets\":" SECRETS_JSON "}",
           id);
    wait_status(id, "dead", 15000);
    yt_sql_text(g.c.env, err, sizeof err, "SELECT coalesce(last_error, '') FROM jobs WHERE id = '%s'",
                id);
    if (!strstr(err, g.old.kid) || !strstr(err, "secrets"))
        fail_msg("job %s: expected an error naming key id %s, got `%s`", id, g.old.kid, err);
    long long attempts = yt_sql_int(g.c.env, "SELECT count(*) FROM job_attempts WHERE job_id = "
                                             "'%s'", id);
    if (attempts != 1)
        fail_msg("job %s: expected 1 attempt (not retried), got %lld", id, attempts);
    assert_log_clean(g.c.exec.name);
    assert_store_clean("DLQ"); /* the dead letter holds the message as it came */

    /* Ops add the old key back and replay the job from the DLQ. */
    yt_cluster_stop_worker(&g.c, &g.c.exec);
    assert_int_equal(yt_worker_start(&g.c.exec, g.c.env, "execute", NULL,
                                     (char *[]){g.exec_var, g.both_var, NULL}, 0),
                     0);
    char out[2048], errout[4096];
    setenv("YARD_NATS_URL", g.c.env->nats_url, 1);
    const char *args[] = {"dlq", "replay", "--error-contains", g.old.kid, NULL};
    int st = yt_run_program(g.c.env, "yardctl", args, out, sizeof out, errout, sizeof errout);
    if (st != 0)
        fail_msg("yardctl dlq replay %s: exit %d: %s %s", id, st, out, errout);
    wait_status(id, "succeeded", 15000);
}

/* A delayed job is held in PostgreSQL and published again from its row by
 * the schedule role: the sealed secrets must come back from the row. */
static void test_delayed_job_rebuilt_from_its_row_keeps_its_secrets(void **state)
{
    assert_int_equal(yt_worker_start(&g.c.sched, g.c.env, "schedule", NULL, NULL, 0), 0);
    char run_at[40], body[512], id[YT_JOB_ID_MAX];
    yt_rfc3339_in(run_at, 1500);
    snprintf(body, sizeof body,
             "{\"type\":\"exec-secrets\",\"run_at\":\"%s\",\"secrets\":" SECRETS_JSON "}",
             run_at);
    submit(g.c.port, body, id);
    wait_status(id, "succeeded", 20000);
    if (yt_sql_int(g.c.env, "SELECT (released_at IS NOT NULL)::int FROM jobs WHERE id = '%s'",
                   id) != 1)
        fail_msg("job %s was not released by the schedule role: the test proves nothing", id);
    assert_program_read_secrets(id);
}

static void test_gateway_without_public_key_answers_400(void **state)
{
    int port;
    pid_t gw = yt_e2e_gateway_start(g.c.env, &port, NULL);
    assert_true(gw > 0);
    static const char body[] = "{\"type\":\"exec-secrets\",\"secrets\":" SECRETS_JSON "}";
    static const char *const hdr[] = {"Content-Type: application/json", NULL};
    yt_http_resp_t r;
    int st = yt_http_request(&r, port, "POST", "/v1/jobs", hdr, body, strlen(body));
    yt_kill_wait(gw, SIGTERM, 10000);
    if (st != 400 || !strstr(r.body, "secrets_public_key"))
        fail_msg("a job with secrets at a gateway without secrets_public_key: expected 400 "
                 "naming it, got %d %s", st, yt_http_body_excerpt(&r));
    assert_no_plain("the 400 answer", r.body, r.body_len);
    yt_http_resp_free(&r);
    /* Secrets must be an object of strings. */
    static const char bad[] = "{\"type\":\"exec-secrets\",\"secrets\":{\"n\":1}}";
    st = yt_http_request(&r, g.c.port, "POST", "/v1/jobs", hdr, bad, strlen(bad));
    if (st != 400 || !strstr(r.body, "secrets"))
        fail_msg("secrets with a number: expected 400 naming `secrets`, got %d %s", st,
                 yt_http_body_excerpt(&r));
    yt_http_resp_free(&r);
}

/* ---- setup ------------------------------------------------------------------ */

static int write_exec_files(void)
{
    /* Hashes fd 3; says whether argv or the environment hold a secret value. */
    static const char prog[] =
        "#!/bin/sh\n"
        "cat >/dev/null\n"
        "h=$(cat <&3 | sha256sum | cut -d' ' -f1)\n"
        "if env | grep -q PLAIN || echo \"$0 $*\" | grep -q PLAIN; then e=yes; else e=no; fi\n"
        "printf '{\"sha256\":\"%s\",\"fd\":\"%s\",\"env_has_plain\":\"%s\"}\\n' \"$h\" "
        "\"$YARD_JOB_SECRETS_FD\" \"$e\"\n";
    char conf[1024];
    const char *d = g.c.env->dir;
    snprintf(conf, sizeof conf, "[exec-secrets]\npath = %s/secrets.sh\nenv = PATH=/usr/bin:/bin\n",
             d);
    if (yt_write_file(g.c.env, "secrets.sh", prog, 0755) ||
        yt_write_file(g.c.env, "exec.conf", conf, 0644))
        return -1;
    snprintf(g.exec_var, sizeof g.exec_var, "YARD_EXEC_CONFIG=%s/exec.conf", d);
    return 0;
}

static int setup(void **state)
{
    yard_log_init("test_wk_e2e_secrets", YARD_LOG_ERROR);
    if (sodium_init() < 0 || yard_sealed_keygen(g.old.pub, g.old.priv, g.old.kid) != 0 ||
        yard_sealed_keygen(g.new.pub, g.new.priv, g.new.kid) != 0)
        return -1;
    snprintf(g.pub_var, sizeof g.pub_var, "YARD_SECRETS_PUBLIC_KEY=%s", g.old.pub);
    snprintf(g.both_var, sizeof g.both_var, "YARD_SECRETS_PRIVATE_KEYS=%s,%s", g.new.priv,
             g.old.priv);
    snprintf(g.new_var, sizeof g.new_var, "YARD_SECRETS_PRIVATE_KEYS=%s", g.new.priv);
    char *const extra[] = {g.pub_var, "YARD_LOG_LEVEL=debug", NULL};
    if (yt_cluster_start(&g.c, extra) != 0 || write_exec_files() != 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    yt_cluster_stop(&g.c);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exec_reads_secrets_on_fd3_and_they_stay_sealed),
        cmocka_unit_test(test_worker_without_the_key_fails_naming_it_then_replay_runs),
        cmocka_unit_test(test_delayed_job_rebuilt_from_its_row_keeps_its_secrets),
        cmocka_unit_test(test_gateway_without_public_key_answers_400),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
