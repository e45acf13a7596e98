/*
 * yt_chaos.c - the chaos suite's producer and verdict (see yt_chaos.h).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "yt_chaos.h"
#include "yt_http.h"
#include "yt_workers.h"

#define MAX_THREADS 16
#define RETRY_PAUSE_MS 100
#define SHOW_IDS 5

typedef struct {
    int accepted;
    char id[YT_JOB_ID_MAX];
} slot_t;

struct yt_chaos {
    yt_chaos_load_t cfg;
    char *job_head; /* job_json without its closing brace */
    slot_t *slots;
    atomic_int port;
    atomic_int next_batch;
    atomic_int stop;
    atomic_long accepted, refused, no_answer, other;
    pthread_t threads[MAX_THREADS];
    int nthreads;
    pthread_mutex_t mu; /* guards ok_times */
    long long *ok_times;
    size_t nok, cap_ok;
};

static void note_ok(yt_chaos_t *c, long long t)
{
    pthread_mutex_lock(&c->mu);
    if (c->nok == c->cap_ok) {
        size_t cap = c->cap_ok ? c->cap_ok * 2 : 1024;
        long long *p = realloc(c->ok_times, cap * sizeof *p);
        if (p) {
            c->ok_times = p;
            c->cap_ok = cap;
        }
    }
    if (c->nok < c->cap_ok)
        c->ok_times[c->nok++] = t;
    pthread_mutex_unlock(&c->mu);
}

/* The body for the jobs of batch b not accepted yet; sets *idx to their
 * numbers. NULL when none is left. */
static char *batch_body(yt_chaos_t *c, int b, int *idx, int *n)
{
    int first = b * c->cfg.batch, last = first + c->cfg.batch;
    if (last > c->cfg.njobs)
        last = c->cfg.njobs;
    size_t cap = 32 + (size_t)(last - first) * (strlen(c->job_head) + 96);
    char *body = malloc(cap);
    size_t len = 0;
    *n = 0;
    if (!body)
        return NULL;
    len += (size_t)snprintf(body + len, cap - len, "{\"jobs\":[");
    for (int i = first; i < last; i++) {
        if (c->slots[i].accepted)
            continue;
        len += (size_t)snprintf(body + len, cap - len, "%s%s,\"idempotency_key\":\"%s-%d\"}",
                                *n ? "," : "", c->job_head, c->cfg.run, i);
        idx[(*n)++] = i;
    }
    snprintf(body + len, cap - len, "]}");
    if (!*n) {
        free(body);
        return NULL;
    }
    return body;
}

/* Posts what is left of batch b once. Returns the jobs still not accepted. */
static int post_batch(yt_chaos_t *c, int b, int *idx)
{
    static const char *const ct[] = {"Content-Type: application/json", NULL};
    int n;
    char *body = batch_body(c, b, idx, &n);
    if (!body)
        return 0;
    yt_http_resp_t r;
    int st = yt_http_request(&r, atomic_load(&c->port), "POST", "/v1/jobs/batch", ct, body,
                             strlen(body));
    free(body);
    int left = n;
    if (st == 202) {
        json_t *doc = r.body ? json_loadb(r.body, r.body_len, 0, NULL) : NULL;
        json_t *results = json_object_get(doc, "results");
        int got = 0;
        for (int k = 0; k < n && k < (int)json_array_size(results); k++) {
            json_t *item = json_array_get(results, (size_t)k);
            const char *id = json_string_value(json_object_get(item, "id"));
            if (id && !json_object_get(item, "error")) {
                slot_t *s = &c->slots[idx[k]];
                snprintf(s->id, sizeof s->id, "%s", id);
                s->accepted = 1;
                got++;
            }
        }
        json_decref(doc);
        left -= got;
        atomic_fetch_add(&c->accepted, got);
        if (got)
            note_ok(c, yt_now_ms());
        if (left)
            atomic_fetch_add(&c->refused, 1); /* some jobs of the batch were refused */
    } else if (st == 503 || st == 429) {
        atomic_fetch_add(&c->refused, 1);
    } else if (st < 0) {
        atomic_fetch_add(&c->no_answer, 1);
    } else {
        atomic_fetch_add(&c->other, 1);
        if (atomic_load(&c->other) <= 3)
            fprintf(stderr, "chaos: unexpected HTTP %d: %s\n", st, yt_http_body_excerpt(&r));
    }
    yt_http_resp_free(&r);
    return left;
}

static void *producer(void *arg)
{
    yt_chaos_t *c = arg;
    int nbatches = (c->cfg.njobs + c->cfg.batch - 1) / c->cfg.batch;
    int *idx = malloc((size_t)c->cfg.batch * sizeof *idx);
    long long pace_ms = c->cfg.batches_per_s > 0 ? 1000 / c->cfg.batches_per_s : 0;
    if (!idx)
        return NULL;
    while (!atomic_load(&c->stop)) {
        int b = atomic_fetch_add(&c->next_batch, 1);
        if (b >= nbatches)
            break;
        long long t0 = yt_now_ms();
        while (!atomic_load(&c->stop) && post_batch(c, b, idx) > 0)
            yt_nap_ms(RETRY_PAUSE_MS);
        long long spent = yt_now_ms() - t0;
        if (pace_ms > spent)
            yt_nap_ms((int)(pace_ms - spent));
    }
    free(idx);
    return NULL;
}

int yt_chaos_start(yt_chaos_t **out, const yt_chaos_load_t *cfg)
{
    yt_chaos_t *c = calloc(1, sizeof *c);
    if (!c)
        return -1;
    c->cfg = *cfg;
    c->slots = calloc((size_t)cfg->njobs, sizeof *c->slots);
    size_t jl = strlen(cfg->job_json);
    c->job_head = strdup(cfg->job_json);
    if (!c->slots || !c->job_head || jl < 2 || cfg->job_json[jl - 1] != '}' || cfg->batch < 1) {
        yt_chaos_free(c);
        return -1;
    }
    c->job_head[jl - 1] = '\0';
    atomic_store(&c->port, cfg->port);
    pthread_mutex_init(&c->mu, NULL);
    int n = cfg->threads < 1 ? 1 : cfg->threads > MAX_THREADS ? MAX_THREADS : cfg->threads;
    for (int i = 0; i < n; i++)
        if (pthread_create(&c->threads[c->nthreads], NULL, producer, c) == 0)
            c->nthreads++;
    *out = c;
    return c->nthreads ? 0 : -1;
}

void yt_chaos_set_port(yt_chaos_t *c, int port)
{
    atomic_store(&c->port, port);
}

int yt_chaos_finish(yt_chaos_t *c, int timeout_ms)
{
    long long end = yt_now_ms() + timeout_ms;
    while (atomic_load(&c->accepted) < c->cfg.njobs && yt_now_ms() < end)
        yt_nap_ms(50);
    atomic_store(&c->stop, 1);
    for (int i = 0; i < c->nthreads; i++)
        pthread_join(c->threads[i], NULL);
    c->nthreads = 0;
    return atomic_load(&c->accepted) == c->cfg.njobs ? 0 : -1;
}

void yt_chaos_counts(yt_chaos_t *c, long *accepted, long *refused, long *no_answer, long *other)
{
    *accepted = atomic_load(&c->accepted);
    *refused = atomic_load(&c->refused);
    *no_answer = atomic_load(&c->no_answer);
    *other = atomic_load(&c->other);
}

long long yt_chaos_first_ok_after(yt_chaos_t *c, long long t_ms)
{
    long long best = -1;
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < c->nok; i++)
        if (c->ok_times[i] >= t_ms && (best < 0 || c->ok_times[i] < best))
            best = c->ok_times[i];
    pthread_mutex_unlock(&c->mu);
    return best;
}

/* Runs one statement that returns no rows on conn. Returns 0 or -1. */
static int exec_command(PGconn *conn, const char *sql)
{
    PGresult *r = PQexec(conn, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        fprintf(stderr, "chaos: `%.120s`: %s", sql, PQerrorMessage(conn));
    PQclear(r);
    return ok ? 0 : -1;
}

/* Loads the accepted ids into table chaos_accepted. Returns 0 or -1. */
static int load_accepted(yt_chaos_t *c, yt_env_t *env)
{
    PGconn *conn = PQconnectdb(env->pg_dsn);
    size_t cap = 64 + 1000 * (YT_JOB_ID_MAX + 8);
    char *sql = malloc(cap);
    int rc = -1;
    if (PQstatus(conn) != CONNECTION_OK || !sql ||
        exec_command(conn, "SET client_min_messages = warning") < 0 ||
        exec_command(conn, "DROP TABLE IF EXISTS chaos_accepted") < 0 ||
        exec_command(conn, "CREATE TABLE chaos_accepted (id uuid PRIMARY KEY)") < 0)
        goto done;
    for (int i = 0; i < c->cfg.njobs;) {
        size_t len = (size_t)snprintf(sql, cap, "INSERT INTO chaos_accepted VALUES ");
        int n = 0;
        for (; i < c->cfg.njobs && n < 1000; i++) {
            if (!c->slots[i].accepted)
                continue;
            len += (size_t)snprintf(sql + len, cap - len, "%s('%s')", n ? "," : "",
                                    c->slots[i].id);
            n++;
        }
        if (!n)
            break;
        snprintf(sql + len, cap - len, " ON CONFLICT DO NOTHING");
        if (exec_command(conn, sql) < 0)
            goto done;
    }
    rc = 0;
done:
    free(sql);
    PQfinish(conn);
    return rc;
}

static void show_ids(yt_env_t *env, const char *what, const char *query)
{
    PGresult *r = yt_sql_query(env, "%s LIMIT %d", query, SHOW_IDS);
    if (!r)
        return;
    for (int i = 0; i < PQntuples(r); i++)
        fprintf(stderr, "chaos: %s: %s\n", what, PQgetvalue(r, i, 0));
    PQclear(r);
}

int yt_chaos_verdict(yt_chaos_t *c, yt_env_t *env, const char *scenario, long long recovery_ms,
                     int timeout_ms)
{
    long accepted = atomic_load(&c->accepted);
    if (load_accepted(c, env) < 0)
        return -1;
    long long completed = 0, end = yt_now_ms() + timeout_ms;
    for (;;) {
        completed = yt_sql_int(env, "SELECT count(*) FROM chaos_accepted a JOIN jobs j "
                                    "ON j.id = a.id WHERE j.status = 'succeeded'");
        if (completed >= accepted || yt_now_ms() >= end)
            break;
        yt_nap_ms(200);
    }
    long long dup = yt_sql_int(env, "SELECT count(*) FROM (SELECT job_id FROM job_attempts "
                                    "WHERE outcome = 'succeeded' GROUP BY job_id "
                                    "HAVING count(*) > 1) d");
    long long extra = yt_sql_int(env, "SELECT count(*) FROM jobs j WHERE NOT EXISTS "
                                      "(SELECT 1 FROM chaos_accepted a WHERE a.id = j.id)");
    long long lost = accepted - completed;
    char rec[32];
    if (recovery_ms < 0)
        snprintf(rec, sizeof rec, "-");
    else
        snprintf(rec, sizeof rec, "%lld ms", recovery_ms);
    long refused, no_answer, other, acc;
    yt_chaos_counts(c, &acc, &refused, &no_answer, &other);
    printf("chaos %s: posted %d, accepted %ld, completed %lld, lost %lld, duplicated %lld, "
           "extra %lld, recovery %s (refused %ld, unanswered %ld requests)\n",
           scenario, c->cfg.njobs, accepted, completed, lost, dup, extra, rec, refused, no_answer);
    fflush(stdout);
    if (lost)
        show_ids(env, "lost",
                 "SELECT a.id || ' ' || coalesce(j.status, 'no row') FROM chaos_accepted a "
                 "LEFT JOIN jobs j ON j.id = a.id WHERE j.status IS DISTINCT FROM 'succeeded'");
    if (dup)
        show_ids(env, "duplicated",
                 "SELECT job_id::text FROM job_attempts WHERE outcome = 'succeeded' "
                 "GROUP BY job_id HAVING count(*) > 1");
    if (extra)
        show_ids(env, "extra",
                 "SELECT j.id || ' ' || j.status FROM jobs j WHERE NOT EXISTS "
                 "(SELECT 1 FROM chaos_accepted a WHERE a.id = j.id)");
    return lost == 0 && dup == 0 && extra == 0 && accepted == c->cfg.njobs && other == 0 ? 0
                                                                                          : -1;
}

void yt_chaos_show_stranded(yard_js_t *js, const char *scenario)
{
    uint64_t first = 0, last = 0, held = 0, pending = 0, ack_pending = 0;
    if (yard_js_stream_state(&first, &last, &held, js, "JOBS") == 0 &&
        yard_js_consumer_depth(&pending, &ack_pending, js, "JOBS", "execute_default") == 0)
        printf("chaos %s: JOBS still holds %llu messages; execute_default: %llu pending, %llu "
               "awaiting an ack\n",
               scenario, (unsigned long long)held, (unsigned long long)pending,
               (unsigned long long)ack_pending);
}

char *const yt_chaos_env[] = {"YARD_JS_ACK_WAIT_S=5", NULL};

int yt_chaos_cluster_start(yt_cluster_t *c, int without_worker)
{
    if (yt_cluster_start(c, yt_chaos_env) != 0)
        return -1;
    if (without_worker)
        return 0;
    return yt_worker_start(&c->exec, c->env, "execute", NULL, yt_chaos_env, 0);
}

void yt_chaos_free(yt_chaos_t *c)
{
    if (!c)
        return;
    if (c->nthreads)
        yt_chaos_finish(c, 0);
    free(c->slots);
    free(c->job_head);
    free(c->ok_times);
    free(c);
}
