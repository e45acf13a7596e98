/*
 * ctl_jobs.c - `yardctl jobs list|get|cancel|retry`: jobs in PostgreSQL for
 * operators, without psql. list and get read through bus/job_report.h;
 * cancel goes through the lifecycle (jobs.h) and tells a running job's
 * worker; retry replays a dead job's letter through the DLQ library.
 */
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "db.h"
#include "dlq.h"
#include "err.h"
#include "id.h"
#include "job_report.h"
#include "jobs.h"
#include "js.h"
#include "log.h"

#define JOBS_PG_CONNECT_S 10
#define JOBS_LIST_DEFAULT 50
#define JOBS_LIST_MAX 1000
#define JOBS_ERROR_WIDTH 50

const char ctl_jobs_help[] =
    "usage: yardctl jobs list [--status S] [--queue Q] [--type T] [--since T] [--limit N]\n"
    "       yardctl jobs get ID\n"
    "       yardctl jobs cancel ID\n"
    "       yardctl jobs retry ID\n"
    "       (every form takes --json)\n"
    "\n"
    "Reads and acts on jobs in PostgreSQL (pg_dsn, YARD_PG_DSN); cancel and\n"
    "retry also use NATS (nats_url, YARD_NATS_URL).\n"
    "\n"
    "list     jobs, newest first: id, type, queue, status, attempts, created,\n"
    "         last error.\n"
    "           --status S   queued, scheduled, running, succeeded, failed, dead,\n"
    "                        cancelled\n"
    "           --queue Q    --type T\n"
    "           --since T    created at or after T: RFC 3339 UTC time, or a\n"
    "                        duration back from now (15m, 2h, 7d)\n"
    "           --limit N    at most N (default 50, at most 1000)\n"
    "get      one job in full, with every attempt.\n"
    "cancel   cancels a job that has not finished (a running one is stopped by\n"
    "         its worker).\n"
    "retry    gives a dead job another run: replays its dead letter (as\n"
    "         `yardctl dlq replay`).\n"
    "\n"
    "Exit status: 0 done; 1 failed, or the job is in a state that refuses it;\n"
    "2 bad arguments; 3 no such job (or no dead letter for retry).\n";

static const char *const jobs_heads[] = {"ID",      "TYPE",    "QUEUE",     "STATUS",
                                         "ATTEMPTS", "CREATED", "LAST ERROR"};
#define JOBS_COLS (sizeof jobs_heads / sizeof jobs_heads[0])

/* A string field of o, or NULL. */
static const char *jstr(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static int jobs_list(PGconn *db, int argc, char **argv)
{
    yard_job_filter_t f = {0};
    f.limit = JOBS_LIST_DEFAULT;
    for (int i = 2; i < argc; i++) {
        const char *v = NULL;
        int m;
        yard_job_state_t st;
        if ((m = ctl_opt(&v, argc, argv, &i, "--status")) > 0) {
            if (yard_job_state_parse(&st, v) < 0)
                return ctl_usage_error("jobs", "--status takes queued, scheduled, running, "
                                       "succeeded, failed, dead or cancelled");
            f.status = v;
        } else if ((m = ctl_opt(&v, argc, argv, &i, "--queue")) > 0) {
            f.queue = v;
        } else if ((m = ctl_opt(&v, argc, argv, &i, "--type")) > 0) {
            f.type = v;
        } else if ((m = ctl_opt(&v, argc, argv, &i, "--since")) > 0) {
            if (ctl_parse_since(&f.since_ms, v) < 0)
                return ctl_usage_error("jobs", "--since takes an RFC 3339 UTC time or a "
                                       "duration (15m, 2h, 7d)");
        } else if ((m = ctl_opt(&v, argc, argv, &i, "--limit")) > 0) {
            char *end;
            long n = strtol(v, &end, 10);
            if (*end || n < 1 || n > JOBS_LIST_MAX)
                return ctl_usage_error("jobs", "--limit takes a number from 1 to %d",
                                       JOBS_LIST_MAX);
            f.limit = (int)n;
        } else {
            return ctl_usage_error("jobs", m < 0 ? "list: %s needs a value"
                                                 : "list: unexpected argument '%s'",
                                   argv[i]);
        }
    }
    json_t *jobs = NULL;
    if (yard_job_report_list(&jobs, db, &f) < 0)
        return CTL_EXIT_FAIL; /* logged */
    if (ctl_out_json())
        return ctl_out_json_print(json_pack("{s:o}", "jobs", jobs)) < 0 ? CTL_EXIT_FAIL
                                                                        : CTL_EXIT_OK;
    ctl_table_t *t = ctl_table_new(jobs_heads, JOBS_COLS, JOBS_ERROR_WIDTH);
    size_t i;
    json_t *j;
    json_array_foreach(jobs, i, j)
    {
        char att[32];
        snprintf(att, sizeof att, "%lld/%lld",
                 (long long)json_integer_value(json_object_get(j, "attempts")),
                 (long long)json_integer_value(json_object_get(j, "max_attempts")));
        const char *row[JOBS_COLS] = {jstr(j, "id"),     jstr(j, "type"),
                                      jstr(j, "queue"),  jstr(j, "status"),
                                      att,               jstr(j, "created_at"),
                                      jstr(j, "last_error")};
        if (t && ctl_table_add(t, row) < 0)
            break;
    }
    if (t)
        ctl_table_print(t, stdout);
    printf("%zu job%s shown\n", json_array_size(jobs), json_array_size(jobs) == 1 ? "" : "s");
    ctl_table_free(t);
    json_decref(jobs);
    return t ? CTL_EXIT_OK : CTL_EXIT_FAIL;
}

/* Prints one job in full (human form): each scalar field, then attempts. */
static void jobs_print_one(const json_t *job)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)job, key, v)
    {
        if (!strcmp(key, "history"))
            continue;
        if (json_is_string(v)) {
            ctl_out_line("%-17s %s\n", key, json_string_value(v));
        } else {
            char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT | JSON_ENSURE_ASCII);
            ctl_out_line("%-17s %s\n", key, s ? s : "?");
            free(s);
        }
    }
    json_t *h = json_object_get(job, "history");
    size_t i;
    json_t *a;
    printf("\nattempts:\n");
    json_array_foreach(h, i, a)
    {
        ctl_out_line("  #%lld  %-9s %s  %lld ms  %s  %s\n",
                     (long long)json_integer_value(json_object_get(a, "attempt")),
                     jstr(a, "outcome") ? jstr(a, "outcome") : "-",
                     jstr(a, "started_at") ? jstr(a, "started_at") : "-",
                     (long long)json_integer_value(json_object_get(a, "duration_ms")),
                     jstr(a, "worker") ? jstr(a, "worker") : "-",
                     jstr(a, "error") ? jstr(a, "error") : "");
    }
    if (json_array_size(h) == 0)
        printf("  none\n");
}

static int jobs_get(PGconn *db, const char *id)
{
    json_t *job = NULL;
    int rc = yard_job_report_get(&job, db, id);
    if (rc == YARD_EINVAL)
        return ctl_usage_error("jobs", "a job id is a UUID");
    if (rc == YARD_ENOTFOUND) {
        fprintf(stderr, "yardctl jobs: no job %s\n", id);
        return CTL_EXIT_NOTFOUND;
    }
    if (rc < 0)
        return CTL_EXIT_FAIL;
    if (ctl_out_json())
        return ctl_out_json_print(job) < 0 ? CTL_EXIT_FAIL : CTL_EXIT_OK;
    jobs_print_one(job);
    json_decref(job);
    return CTL_EXIT_OK;
}

static int jobs_cancel(const yard_config_t *cfg, PGconn *db, const char *id)
{
    yard_job_state_t st;
    int rc = yard_jobs_cancel(&st, db, id, NULL);
    if (rc == YARD_ENOTFOUND) {
        fprintf(stderr, "yardctl jobs: no job %s\n", id);
        return CTL_EXIT_NOTFOUND;
    }
    if (rc < 0)
        return CTL_EXIT_FAIL;
    int done = st == YARD_JOB_CANCELLED || st == YARD_JOB_RUNNING;
    if (st == YARD_JOB_CANCELLED) {
        /* A running job's cancel is recorded by its worker. */
        char actor[160];
        ctl_operator(actor, sizeof actor);
        yard_event_t e = {YARD_EVENT_JOB, YARD_EVENT_CANCELLED, id, NULL, actor, 0, NULL,
                          "{\"by\":\"yardctl\"}"};
        ctl_event_publish(cfg, NULL, &e);
    }
    if (st == YARD_JOB_RUNNING) {
        /* Its worker stops it; PostgreSQL backs this at-most-once notice. */
        yard_js_t *js = NULL;
        char subject[sizeof YARD_SUBJ_CANCEL + YARD_ID_TEXT_LEN];
        snprintf(subject, sizeof subject, "%s%s", YARD_SUBJ_CANCEL, id);
        if (yard_js_connect(&js, cfg, "yardctl") == 0)
            yard_js_notify(js, subject, id, strlen(id));
        yard_js_destroy(js, 1000);
    }
    if (ctl_out_json())
        ctl_out_json_print(json_pack("{s:s, s:s, s:b}", "id", id, "status",
                                     yard_job_state_name(st), "cancelled", done));
    else if (st == YARD_JOB_CANCELLED)
        printf("cancelled job %s\n", id);
    else if (st == YARD_JOB_RUNNING)
        printf("cancel requested: job %s is running; its worker stops it\n", id);
    else
        printf("job %s has already finished: %s\n", id, yard_job_state_name(st));
    return done ? CTL_EXIT_OK : CTL_EXIT_FAIL;
}

/* Retry: the newest dead letter of the job, replayed. */
static int jobs_retry(const yard_config_t *cfg, PGconn *db, const char *id)
{
    yard_jobs_replay_t plan;
    int rc = yard_jobs_replay_plan(&plan, db, id, UINT64_MAX);
    if (rc == YARD_ENOTFOUND) {
        fprintf(stderr, "yardctl jobs: no job %s\n", id);
        return CTL_EXIT_NOTFOUND;
    }
    if (rc < 0)
        return CTL_EXIT_FAIL;
    if (plan.state != YARD_JOB_DEAD) {
        fprintf(stderr, "yardctl jobs: job %s is %s; only a dead job can be retried\n", id,
                yard_job_state_name(plan.state));
        return CTL_EXIT_FAIL;
    }
    yard_js_t *js = NULL;
    if (yard_js_connect(&js, cfg, "yardctl") < 0)
        return CTL_EXIT_FAIL;
    yard_dlq_filter_t f = {0};
    yard_dlq_list_t l = {0};
    f.job_id = id;
    rc = yard_dlq_list(&l, js, &f);
    uint64_t seq = rc == 0 && l.n ? l.items[l.n - 1].seq : 0;
    yard_dlq_list_free(&l);
    if (rc == 0 && !seq) {
        fprintf(stderr, "yardctl jobs: dead job %s has no letter in the DLQ (purged?)\n", id);
        rc = YARD_ENOTFOUND;
    }
    yard_dlq_result_t r;
    struct passwd *pw = getpwuid(getuid());
    char who[128];
    snprintf(who, sizeof who, "yardctl:%s", pw ? pw->pw_name : "unknown");
    yard_dlq_replay_opts_t o = {0, who, cfg->js_publish_timeout_ms};
    if (rc == 0)
        rc = yard_dlq_replay(&r, js, db, seq, &o);
    yard_js_destroy(js, 1000);
    if (rc < 0)
        return ctl_exit_of(rc);
    if (ctl_out_json())
        ctl_out_json_print(yard_dlq_result_json(&r));
    else if (r.outcome == YARD_DLQ_REPLAYED)
        ctl_out_line("retrying job %s: replayed DLQ #%llu to %s (max_attempts %u)\n", id,
                     (unsigned long long)seq, r.subject, r.max_attempts);
    else
        ctl_out_line("job %s: %s %s\n", id, yard_dlq_outcome_name(r.outcome), r.why);
    return r.outcome == YARD_DLQ_REPLAYED || r.outcome == YARD_DLQ_ALREADY_REPLAYED
               ? CTL_EXIT_OK
               : CTL_EXIT_FAIL;
}

int ctl_cmd_jobs(const yard_config_t *cfg, int argc, char **argv)
{
    const char *sub = argc > 1 ? argv[1] : "";
    PGconn *db = NULL;
    int rc;
    int one = !strcmp(sub, "get") || !strcmp(sub, "cancel") || !strcmp(sub, "retry");
    if (!one && strcmp(sub, "list") != 0)
        return ctl_usage_error("jobs", "expected list, get, cancel or retry");
    if (one && argc != 3)
        return ctl_usage_error("jobs", "%s takes one job id", sub);
    yard_id_t id;
    char idtext[YARD_ID_TEXT_LEN + 1] = "";
    if (one) {
        if (yard_id_parse(&id, argv[2], strlen(argv[2])) < 0)
            return ctl_usage_error("jobs", "a job id is a UUID, not '%s'", argv[2]);
        yard_id_format(&id, idtext);
    }
    if (yard_jobs_connect(&db, cfg->pg_dsn, JOBS_PG_CONNECT_S, YARD_JOBS_DURABLE) < 0)
        return CTL_EXIT_FAIL; /* logged */
    if (!strcmp(sub, "list"))
        rc = jobs_list(db, argc, argv);
    else if (!strcmp(sub, "get"))
        rc = jobs_get(db, idtext);
    else if (!strcmp(sub, "cancel"))
        rc = jobs_cancel(cfg, db, idtext);
    else
        rc = jobs_retry(cfg, db, idtext);
    yard_db_close(db);
    return rc;
}
