/*
 * ctl_dlq.c - `yardctl dlq list|replay`: the dead-letter stream for
 * operators.
 *
 * list shows what died, why and when (DLQ headers). replay gives dead jobs
 * another run: it marks the job `queued` again in PostgreSQL (so the
 * worker's claim accepts it), grants it its max_attempts again on top of
 * the attempts it used, republishes the envelope to its original subject,
 * waits for the PubAck, then deletes the DLQ copy. Who replayed what, and
 * when, goes to the JSON log.
 */
#include <pwd.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "db.h"
#include "envelope.h"
#include "err.h"
#include "jobs.h"
#include "js.h"
#include "log.h"

const char ctl_dlq_help[] =
    "usage: yardctl dlq list [--queue Q] [--limit N]\n"
    "       yardctl dlq replay (--all | SEQ...) [--queue Q] [--dry-run]\n"
    "\n"
    "Inspects and replays the DLQ stream (NATS at nats_url, YARD_NATS_URL; job\n"
    "states in PostgreSQL at pg_dsn, YARD_PG_DSN).\n"
    "\n"
    "list     prints dead jobs, oldest first: DLQ sequence, job id, original\n"
    "         subject, attempts, time of death and last error.\n"
    "           --queue Q   only jobs of execute queue Q\n"
    "           --limit N   at most N rows (default 100)\n"
    "replay   republishes dead jobs to their original subjects with a fresh set\n"
    "         of attempts and removes them from the DLQ.\n"
    "           SEQ...      the DLQ sequences to replay (from list)\n"
    "           --all       every dead job (of --queue Q, if given)\n"
    "           --dry-run   show what would be replayed, change nothing\n"
    "\n"
    "Exit status: 0 done, 1 failed (see the log on stderr), 2 bad arguments.\n";

typedef struct {
    const char *queue;
    long limit;
    int all, dry_run;
    uint64_t *seqs;
    size_t nseqs;
} dlq_args_t;

/* The value of header name of m, or fallback. */
static const char *dlq_header(const yard_js_msg_t *m, const char *name, const char *fallback)
{
    const char *v = yard_js_msg_header(m, name);
    return v ? v : fallback;
}

/* Nonzero if m belongs to the queue filter (NULL: every message). */
static int dlq_matches(const yard_js_msg_t *m, const char *queue)
{
    char want[YARD_JS_NAME_MAX];
    if (!queue)
        return 1;
    snprintf(want, sizeof want, "%s%s", YARD_SUBJ_EXECUTE, queue);
    return strcmp(dlq_header(m, YARD_HDR_ORIGINAL_SUBJECT, ""), want) == 0;
}

/* Calls fn on each DLQ message in order (or only on the given sequences),
 * until it returns nonzero. Returns 0 or an error. */
typedef int (*dlq_visit_fn)(yard_js_t *js, const yard_js_msg_t *m, uint64_t seq, void *ud);
static int dlq_each(yard_js_t *js, const dlq_args_t *a, dlq_visit_fn fn, void *ud)
{
    uint64_t first = 0, last = 0, count = 0;
    int src = yard_js_stream_state(&first, &last, &count, js, YARD_STREAM_DLQ);
    if (src < 0)
        return src;
    size_t n = a->nseqs ? a->nseqs : (count ? (size_t)(last - first + 1) : 0);
    for (size_t i = 0; i < n; i++) {
        uint64_t seq = a->nseqs ? a->seqs[i] : first + i;
        yard_js_msg_t *m = NULL;
        int rc = yard_js_get_msg(&m, js, YARD_STREAM_DLQ, seq);
        if (rc == YARD_ENOTFOUND) {
            if (a->nseqs)
                fprintf(stderr, "yardctl dlq: no DLQ message #%llu\n", (unsigned long long)seq);
            continue;
        }
        if (rc < 0)
            return rc;
        int stop = dlq_matches(m, a->queue) ? fn(js, m, seq, ud) : 0;
        yard_js_msg_destroy(m);
        if (stop < 0)
            return stop;
        if (stop)
            break;
    }
    return 0;
}

typedef struct {
    long shown, limit;
} dlq_list_t;

static int dlq_print(yard_js_t *js, const yard_js_msg_t *m, uint64_t seq, void *ud)
{
    dlq_list_t *l = ud;
    printf("%-8llu %-36s %-28s %-8s %-20s %.60s\n", (unsigned long long)seq,
           dlq_header(m, YARD_HDR_JOB_ID, "-"), dlq_header(m, YARD_HDR_ORIGINAL_SUBJECT, "-"),
           dlq_header(m, YARD_HDR_ATTEMPTS, "-"), dlq_header(m, YARD_HDR_DIED_AT, "-"),
           dlq_header(m, YARD_HDR_LAST_ERROR, "-"));
    return ++l->shown >= l->limit;
}

typedef struct {
    const yard_config_t *cfg;
    PGconn *db;
    int dry_run;
    long replayed, failed;
    const char *who;
} dlq_replay_t;

/* Publishes the job.replayed event of DLQ message seq (job id, env). */
static int dlq_replay_event(const dlq_replay_t *r, yard_js_t *js, const yard_envelope_t *env,
                            const char *id, uint64_t seq, const char *subject)
{
    char actor[160], key[24], trace[YARD_TRACE_ID_LEN + 1];
    ctl_operator(actor, sizeof actor);
    snprintf(key, sizeof key, "%llu", (unsigned long long)seq);
    json_t *d = json_pack("{s:I, s:s, s:i}", "dlq_seq", (json_int_t)seq, "subject", subject,
                          "max_attempts", (int)env->max_attempts);
    char *data = d ? json_dumps(d, JSON_COMPACT) : NULL;
    json_decref(d);
    yard_event_t e = {YARD_EVENT_JOB, YARD_EVENT_REPLAYED, id, key, actor, 0,
                      yard_env_trace_id(trace, env->traceparent), data};
    int rc = data ? ctl_event_publish(r->cfg, js, &e) : YARD_ENOMEM;
    free(data);
    return rc;
}

static int dlq_replay_one(yard_js_t *js, const yard_js_msg_t *m, uint64_t seq, void *ud)
{
    dlq_replay_t *r = ud;
    const char *subject = dlq_header(m, YARD_HDR_ORIGINAL_SUBJECT, NULL);
    unsigned used = (unsigned)atoi(dlq_header(m, YARD_HDR_ATTEMPTS, "0"));
    yard_envelope_t env;
    char id[YARD_ENV_ID_LEN + 1] = "", msg_id[YARD_MSGID_MAX];
    size_t dlen = 0;
    const void *data = yard_js_msg_data(m, &dlen);
    if (!subject || yard_env_decode(&env, data, dlen) < 0) {
        fprintf(stderr, "yardctl dlq: #%llu has no readable job; left in the DLQ\n",
                (unsigned long long)seq);
        r->failed++;
        return 0;
    }
    memcpy(id, env.id.ptr, env.id.len);
    /* A fresh set of attempts on top of those used (attempts are numbered on). */
    unsigned max = used + env.max_attempts;
    env.max_attempts = max > YARD_ENV_ATTEMPTS_MAX ? YARD_ENV_ATTEMPTS_MAX : max;
    if (r->dry_run) {
        printf("would replay #%llu: job %s to %s (max_attempts %u)\n", (unsigned long long)seq,
               id, subject, env.max_attempts);
        r->replayed++;
        return 0;
    }
    size_t cap = yard_env_encoded_size_max(&env), len = 0;
    char *buf = malloc(cap);
    int rc = buf ? yard_env_encode(&env, buf, cap, &len) : YARD_ENOMEM;
    /* The event first: a replay that happens is always recorded. */
    if (rc == 0)
        rc = dlq_replay_event(r, js, &env, id, seq, subject);
    /* Queued first: a worker claims only a job that is not final. */
    if (rc == 0)
        rc = yard_jobs_replay(r->db, id);
    if (rc == 0) {
        yard_js_msg_id(msg_id, YARD_MSGID_REPLAY, id, seq);
        yard_js_pub_t pub = {subject, msg_id, NULL, 0, buf, len};
        yard_js_puback_t ack = {0};
        rc = yard_js_publish(&ack, js, &pub, r->cfg->js_publish_timeout_ms);
        /* The rescuer looks for the job's message by this sequence. */
        if (rc == 0)
            yard_jobs_track(r->db, id, 0, ack.seq);
        if (rc < 0)
            yard_jobs_replay_undo(r->db, id);
    }
    free(buf);
    if (rc == 0)
        rc = yard_js_delete_msg(js, YARD_STREAM_DLQ, seq);
    yard_log_ctx_t ctx = {NULL, id, NULL};
    if (rc < 0) {
        YARD_LOG_ERROR(&ctx, "dlq: replay of #%llu failed: %s", (unsigned long long)seq,
                       yard_strerror(rc));
        r->failed++;
        return 0;
    }
    YARD_LOG_INFO(&ctx, "dlq: #%llu replayed to %s by %s", (unsigned long long)seq, subject,
                  r->who);
    printf("replayed #%llu: job %s to %s\n", (unsigned long long)seq, id, subject);
    r->replayed++;
    return 0;
}

static int dlq_parse(dlq_args_t *a, int argc, char **argv, int replay)
{
    a->limit = 100;
    a->seqs = calloc((size_t)argc, sizeof *a->seqs);
    if (!a->seqs)
        return -1;
    for (int i = 2; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end;
        if (!strcmp(argv[i], "--queue") && v) {
            a->queue = argv[++i];
        } else if (!strcmp(argv[i], "--limit") && v && !replay) {
            a->limit = strtol(argv[++i], &end, 10);
            if (*end || a->limit < 1)
                return ctl_usage_error("dlq", "--limit takes a positive number");
        } else if (replay && !strcmp(argv[i], "--all")) {
            a->all = 1;
        } else if (replay && !strcmp(argv[i], "--dry-run")) {
            a->dry_run = 1;
        } else if (replay && (a->seqs[a->nseqs] = strtoull(argv[i], &end, 10)) > 0 && !*end) {
            a->nseqs++;
        } else {
            return ctl_usage_error("dlq", "unexpected argument `%s`", argv[i]);
        }
    }
    if (replay && !a->all == !a->nseqs)
        return ctl_usage_error("dlq", "replay takes --all or DLQ sequences, not both");
    return 0;
}

int ctl_cmd_dlq(const yard_config_t *cfg, int argc, char **argv)
{
    dlq_args_t a = {0};
    yard_js_t *js = NULL;
    int replay = argc > 1 && !strcmp(argv[1], "replay");
    int rc;
    if (argc < 2 || (!replay && strcmp(argv[1], "list")))
        return ctl_usage_error("dlq", "expected `list` or `replay`");
    if ((rc = dlq_parse(&a, argc, argv, replay)) != 0) {
        free(a.seqs);
        return rc < 0 ? CTL_EXIT_FAIL : rc;
    }
    if (yard_js_connect(&js, cfg, "yardctl") < 0) {
        free(a.seqs);
        return CTL_EXIT_FAIL;
    }
    if (!replay) {
        dlq_list_t l = {0, a.limit};
        printf("%-8s %-36s %-28s %-8s %-20s %s\n", "SEQ", "JOB", "SUBJECT", "ATTEMPTS", "DIED AT",
               "LAST ERROR");
        rc = dlq_each(js, &a, dlq_print, &l);
        if (rc == 0)
            printf("%ld dead job%s shown\n", l.shown, l.shown == 1 ? "" : "s");
    } else {
        struct passwd *pw = getpwuid(getuid());
        dlq_replay_t r = {cfg, NULL, a.dry_run, 0, 0, pw ? pw->pw_name : "unknown"};
        rc = a.dry_run ? 0 : yard_db_connect(&r.db, cfg->pg_dsn, 10);
        if (rc == 0 && r.db)
            rc = yard_jobs_prepare(r.db, YARD_JOBS_DURABLE);
        if (rc == 0)
            rc = dlq_each(js, &a, dlq_replay_one, &r);
        yard_db_close(r.db);
        if (rc == 0)
            printf("%ld replayed, %ld failed\n", r.replayed, r.failed);
        if (rc == 0 && r.failed)
            rc = YARD_EIO;
    }
    yard_js_destroy(js, 1000);
    free(a.seqs);
    return rc < 0 ? CTL_EXIT_FAIL : CTL_EXIT_OK;
}
