/*
 * ctl_dlq.c - `yardctl dlq list|show|replay|purge`: the dead-letter stream
 * for operators, through the DLQ library (bus/dlq.h) that the gateway's
 * /v1/dlq routes use too. This file parses arguments and prints; what a
 * replay does is dlq.h's.
 */
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "db.h"
#include "dlq.h"
#include "err.h"
#include "jobs.h"
#include "js.h"
#include "log.h"

#define DLQ_LIST_DEFAULT 100
#define DLQ_PAGE 500            /* letters read per page when selecting */
#define DLQ_PG_CONNECT_S 10
#define DLQ_ERROR_WIDTH 60      /* characters of an error shown in a table */

const char ctl_dlq_help[] =
    "usage: yardctl dlq list [--queue Q] [--since T] [--error-contains S] [--limit N]\n"
    "                        [--cursor SEQ]\n"
    "       yardctl dlq show SEQ\n"
    "       yardctl dlq replay (SEQ... | --all | FILTERS) [--dry-run] [--rate N/s]\n"
    "       yardctl dlq purge --older-than D [--queue Q] [--dry-run]\n"
    "       (every form takes --json)\n"
    "\n"
    "Inspects, replays and purges the DLQ stream (NATS at nats_url,\n"
    "YARD_NATS_URL; job rows in PostgreSQL at pg_dsn, YARD_PG_DSN).\n"
    "\n"
    "list     dead letters, oldest first: DLQ sequence, job, type, queue,\n"
    "         attempts, time of death, last error.\n"
    "           --queue Q            only jobs of queue Q\n"
    "           --since T            died at or after T: RFC 3339 UTC time, or a\n"
    "                                duration back from now (90s, 15m, 2h, 7d)\n"
    "           --error-contains S   whose last error contains S\n"
    "           --limit N            at most N (default 100)\n"
    "           --cursor SEQ         after sequence SEQ (the next page)\n"
    "show     one letter in full, with its payload.\n"
    "replay   republishes dead jobs to their original subjects, each with a fresh\n"
    "         set of attempts (max_attempts = attempts used + its max_attempts as\n"
    "         submitted), and removes each DLQ copy once the new publish is\n"
    "         acknowledged. Safe to run again after an interruption: no letter is\n"
    "         replayed twice.\n"
    "           SEQ...               these letters\n"
    "           --all                every letter (or those FILTERS select:\n"
    "                                --queue, --since, --error-contains)\n"
    "           --dry-run            say what would happen, with the max_attempts\n"
    "                                each job would get; change nothing\n"
    "           --rate N/s           at most N replays a second\n"
    "purge    deletes letters that died more than D ago (90s, 15m, 2h, 7d).\n"
    "           --older-than D       required\n"
    "           --queue Q            only letters of queue Q\n"
    "           --dry-run            count them, delete nothing\n"
    "\n"
    "Exit status: 0 done; 1 failed; 2 bad arguments; 3 no such letter, or no\n"
    "letter matched; 4 some letters replayed, others missing or failed.\n";

typedef struct {
    yard_dlq_filter_t f;
    int all, dry_run, filtered;
    double rate;
    uint64_t *seqs;
    size_t nseqs;
    const char *older_than;
} dlq_args_t;

/* Parses the arguments after the action (argv[1]). Returns 0 or
 * CTL_EXIT_USAGE (told), or -1 when out of memory. */
static int dlq_parse(dlq_args_t *a, int argc, char **argv, const char *action)
{
    int list = !strcmp(action, "list"), replay = !strcmp(action, "replay");
    int purge = !strcmp(action, "purge"), show = !strcmp(action, "show");
    if (!(a->seqs = calloc((size_t)argc, sizeof *a->seqs)))
        return -1;
    if (list)
        a->f.limit = DLQ_LIST_DEFAULT;
    for (int i = 2; i < argc; i++) {
        const char *v = NULL;
        char *end;
        int m;
        if ((m = ctl_opt(&v, argc, argv, &i, "--queue")) != 0 && !show) {
            a->f.queue = v;
            a->filtered = 1;
        } else if ((m = ctl_opt(&v, argc, argv, &i, "--error-contains")) != 0 &&
                   (list || replay)) {
            a->f.error_contains = v;
            a->filtered = 1;
        } else if ((m = ctl_opt(&v, argc, argv, &i, "--since")) != 0 && (list || replay)) {
            if (m > 0 && ctl_parse_since(&a->f.since_ms, v) < 0)
                return ctl_usage_error("dlq", "--since takes an RFC 3339 UTC time "
                                       "(2026-01-02T03:04:05Z) or a duration (15m, 2h, 7d)");
            a->filtered = 1;
        } else if ((m = ctl_opt(&v, argc, argv, &i, "--limit")) != 0 && list) {
            long n = m > 0 ? strtol(v, &end, 10) : 0;
            if (m > 0 && (*end || n < 1))
                return ctl_usage_error("dlq", "--limit takes a positive number");
            a->f.limit = (size_t)n;
        } else if ((m = ctl_opt(&v, argc, argv, &i, "--cursor")) != 0 && list) {
            a->f.after_seq = m > 0 ? strtoull(v, &end, 10) : 0;
            if (m > 0 && *end)
                return ctl_usage_error("dlq", "--cursor takes a DLQ sequence");
        } else if ((m = ctl_opt(&v, argc, argv, &i, "--rate")) != 0 && replay) {
            a->rate = m > 0 ? strtod(v, &end) : 0;
            if (m > 0 && ((*end && strcmp(end, "/s") != 0) || !(a->rate > 0)))
                return ctl_usage_error("dlq", "--rate takes replays a second: 5 or 5/s");
        } else if ((m = ctl_opt(&v, argc, argv, &i, "--older-than")) != 0 && purge) {
            a->older_than = v;
        } else if ((replay || purge) && !strcmp(argv[i], "--dry-run")) {
            m = a->dry_run = 1;
        } else if (replay && !strcmp(argv[i], "--all")) {
            m = a->all = 1;
        } else if ((replay || show) && argv[i][0] >= '1' && argv[i][0] <= '9' &&
                   (a->seqs[a->nseqs] = strtoull(argv[i], &end, 10)) > 0 && !*end) {
            m = 1;
            a->nseqs++;
        } else {
            return ctl_usage_error("dlq", "%s: unexpected argument '%s'", action, argv[i]);
        }
        if (m < 0)
            return ctl_usage_error("dlq", "%s: %s needs a value", action, argv[i]);
    }
    if (replay && !a->nseqs == !(a->all || a->filtered))
        return ctl_usage_error("dlq", "replay takes DLQ sequences, or --all or filters "
                               "(--queue, --since, --error-contains), not both");
    if (show && a->nseqs != 1)
        return ctl_usage_error("dlq", "show takes one DLQ sequence");
    if (purge && !a->older_than)
        return ctl_usage_error("dlq", "purge needs --older-than D (e.g. 7d)");
    return 0;
}

/* ---- list and show ------------------------------------------------------------- */

static const char *const dlq_heads[] = {"SEQ", "JOB", "TYPE", "QUEUE", "ATTEMPTS", "DIED AT",
                                        "ERROR"};
#define DLQ_COLS (sizeof dlq_heads / sizeof dlq_heads[0])

static int dlq_list(yard_js_t *js, const dlq_args_t *a)
{
    yard_dlq_list_t l;
    int rc = yard_dlq_list(&l, js, &a->f);
    if (rc < 0)
        return CTL_EXIT_FAIL; /* logged */
    if (ctl_out_json()) {
        json_t *arr = json_array();
        for (size_t i = 0; arr && i < l.n; i++)
            json_array_append_new(arr, yard_dlq_entry_json(&l.items[i]));
        json_t *doc = json_pack("{s:o*, s:o*}", "dead_letters", arr, "next_cursor",
                                l.next_cursor ? json_sprintf("%llu",
                                                             (unsigned long long)l.next_cursor)
                                              : json_null());
        rc = ctl_out_json_print(doc);
    } else {
        ctl_table_t *t = ctl_table_new(dlq_heads, DLQ_COLS, DLQ_ERROR_WIDTH);
        for (size_t i = 0; t && i < l.n; i++) {
            const yard_dlq_entry_t *e = &l.items[i];
            char seq[24], att[16];
            snprintf(seq, sizeof seq, "%llu", (unsigned long long)e->seq);
            snprintf(att, sizeof att, "%u", e->attempts);
            const char *row[DLQ_COLS] = {seq, e->job_id, e->type, e->queue, att, e->died_at,
                                         e->error};
            if (ctl_table_add(t, row) < 0)
                rc = YARD_ENOMEM;
        }
        if (t)
            ctl_table_print(t, stdout);
        ctl_table_free(t);
        printf("%zu dead job%s shown\n", l.n, l.n == 1 ? "" : "s");
        if (l.next_cursor)
            printf("more: yardctl dlq list --cursor %llu\n", (unsigned long long)l.next_cursor);
        if (!t)
            rc = YARD_ENOMEM;
    }
    yard_dlq_list_free(&l);
    return rc < 0 ? CTL_EXIT_FAIL : CTL_EXIT_OK;
}

static int dlq_show(yard_js_t *js, uint64_t seq)
{
    yard_dlq_entry_t e;
    int rc = yard_dlq_get(&e, js, seq);
    if (rc == YARD_ENOTFOUND) {
        fprintf(stderr, "yardctl dlq: no DLQ message #%llu\n", (unsigned long long)seq);
        return CTL_EXIT_NOTFOUND;
    }
    if (rc < 0)
        return CTL_EXIT_FAIL;
    if (ctl_out_json()) {
        rc = ctl_out_json_print(yard_dlq_entry_json(&e));
    } else {
        char *payload = NULL;
        json_t *p = yard_dlq_entry_json(&e);
        if (p && json_object_get(p, "payload"))
            payload = json_dumps(json_object_get(p, "payload"),
                                 JSON_INDENT(2) | JSON_ENSURE_ASCII | JSON_ENCODE_ANY);
        json_decref(p);
        ctl_out_line("seq         %llu\n", (unsigned long long)e.seq);
        ctl_out_line("job         %s\n", e.job_id);
        ctl_out_line("type        %s\n", e.type);
        ctl_out_line("queue       %s\n", e.queue);
        ctl_out_line("subject     %s\n", e.subject);
        ctl_out_line("attempts    %u (max_attempts %u)\n", e.attempts,
                     e.env_ok ? e.env.max_attempts : 0);
        ctl_out_line("died at     %s\n", e.died_at);
        ctl_out_line("error       %s\n", e.error);
        printf("payload     %s\n", payload ? payload : "null"); /* JSON: ASCII, escaped */
        free(payload);
    }
    yard_dlq_entry_clear(&e);
    return rc < 0 ? CTL_EXIT_FAIL : CTL_EXIT_OK;
}

/* ---- replay ------------------------------------------------------------------- */

/* Appends the sequences of every letter a's filters select to a->seqs.
 * Returns 0 or an error. */
static int dlq_select(dlq_args_t *a, yard_js_t *js)
{
    yard_dlq_filter_t f = a->f;
    size_t cap = 0;
    f.limit = DLQ_PAGE;
    free(a->seqs);
    a->seqs = NULL;
    do {
        yard_dlq_list_t l;
        int rc = yard_dlq_list(&l, js, &f);
        if (rc < 0)
            return rc;
        if (a->nseqs + l.n > cap) {
            cap = (a->nseqs + l.n) * 2;
            uint64_t *s = realloc(a->seqs, cap * sizeof *s);
            if (!s) {
                yard_dlq_list_free(&l);
                return YARD_ENOMEM;
            }
            a->seqs = s;
        }
        for (size_t i = 0; i < l.n; i++)
            a->seqs[a->nseqs++] = l.items[i].seq;
        f.after_seq = l.next_cursor;
        yard_dlq_list_free(&l);
    } while (f.after_seq);
    return 0;
}

static void dlq_sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

static void dlq_print_result(const yard_dlq_result_t *r)
{
    unsigned long long seq = (unsigned long long)r->seq;
    switch (r->outcome) {
    case YARD_DLQ_REPLAYED:
        ctl_out_line("replayed #%llu: job %s to %s (max_attempts %u, JOBS #%llu)\n", seq,
                     r->job_id, r->subject, r->max_attempts, (unsigned long long)r->jobs_seq);
        break;
    case YARD_DLQ_WOULD_REPLAY:
        ctl_out_line("would replay #%llu: job %s to %s (attempts used %u; it would run with "
                     "max_attempts %u)\n",
                     seq, r->job_id, r->subject, r->attempts, r->max_attempts);
        break;
    case YARD_DLQ_MISSING:
        ctl_out_line("missing #%llu: no such DLQ message\n", seq);
        break;
    case YARD_DLQ_ALREADY_REPLAYED:
        ctl_out_line("already replayed #%llu: job %s (the leftover copy %s removed)\n", seq,
                     r->job_id, r->why[0] ? "was not" : "is");
        break;
    case YARD_DLQ_FAILED:
        ctl_out_line("failed #%llu: job %s: %s (left in the DLQ)\n", seq,
                     r->job_id[0] ? r->job_id : "?", r->why);
        break;
    }
}

static int dlq_replay(const yard_config_t *cfg, yard_js_t *js, dlq_args_t *a)
{
    size_t count[YARD_DLQ_FAILED + 1] = {0};
    PGconn *db = NULL;
    struct passwd *pw = getpwuid(getuid());
    char who[128];
    snprintf(who, sizeof who, "yardctl:%s", pw ? pw->pw_name : "unknown");
    int rc = a->nseqs ? 0 : dlq_select(a, js);
    if (rc == 0)
        rc = yard_jobs_connect(&db, cfg->pg_dsn, DLQ_PG_CONNECT_S, YARD_JOBS_DURABLE);
    if (rc < 0) {
        yard_db_close(db);
        return CTL_EXIT_FAIL; /* logged */
    }
    yard_dlq_replay_opts_t o = {a->dry_run, who, cfg->js_publish_timeout_ms};
    json_t *results = ctl_out_json() ? json_array() : NULL, *missing = json_array();
    ctl_progress_t bar;
    ctl_progress_start(&bar, a->dry_run ? "dry run" : "replaying", a->nseqs);
    for (size_t i = 0; i < a->nseqs; i++) {
        yard_dlq_result_t r;
        if (i > 0 && a->rate > 0)
            dlq_sleep_s(1.0 / a->rate);
        int one = yard_dlq_replay(&r, js, db, a->seqs[i], &o);
        count[r.outcome]++;
        if (one < 0 && (one == YARD_EUNAVAIL || !yard_db_ok(db)))
            yard_jobs_connect(&db, cfg->pg_dsn, DLQ_PG_CONNECT_S, YARD_JOBS_DURABLE);
        if (r.outcome == YARD_DLQ_MISSING)
            json_array_append_new(missing, json_integer((json_int_t)r.seq));
        if (results)
            json_array_append_new(results, yard_dlq_result_json(&r));
        else {
            ctl_progress_end(&bar);
            dlq_print_result(&r);
            ctl_progress_start(&bar, bar.label, a->nseqs);
        }
        ctl_progress_step(&bar, i + 1);
        fflush(stdout);
    }
    ctl_progress_end(&bar);
    yard_db_close(db);
    size_t ok = count[YARD_DLQ_REPLAYED] + count[YARD_DLQ_WOULD_REPLAY] +
                count[YARD_DLQ_ALREADY_REPLAYED];
    if (results) {
        rc = ctl_out_json_print(json_pack(
            "{s:I, s:I, s:I, s:o, s:I, s:o}", "replayed", (json_int_t)count[YARD_DLQ_REPLAYED],
            "would_replay", (json_int_t)count[YARD_DLQ_WOULD_REPLAY], "already_replayed",
            (json_int_t)count[YARD_DLQ_ALREADY_REPLAYED], "missing", missing, "failed",
            (json_int_t)count[YARD_DLQ_FAILED], "results", results));
    } else {
        json_decref(missing);
        if (a->dry_run)
            printf("dry run: %zu would be replayed, %zu already replayed, %zu missing, "
                   "%zu cannot be replayed; nothing changed\n",
                   count[YARD_DLQ_WOULD_REPLAY], count[YARD_DLQ_ALREADY_REPLAYED],
                   count[YARD_DLQ_MISSING], count[YARD_DLQ_FAILED]);
        else
            printf("%zu replayed, %zu already replayed, %zu missing, %zu failed\n",
                   count[YARD_DLQ_REPLAYED], count[YARD_DLQ_ALREADY_REPLAYED],
                   count[YARD_DLQ_MISSING], count[YARD_DLQ_FAILED]);
    }
    if (rc < 0)
        return CTL_EXIT_FAIL;
    if (a->nseqs == 0) {
        fprintf(stderr, "yardctl dlq: no dead letter matched\n");
        return CTL_EXIT_NOTFOUND;
    }
    size_t bad = count[YARD_DLQ_MISSING] + count[YARD_DLQ_FAILED];
    if (bad == 0)
        return CTL_EXIT_OK;
    if (ok > 0)
        return CTL_EXIT_PARTIAL;
    return count[YARD_DLQ_FAILED] ? CTL_EXIT_FAIL : CTL_EXIT_NOTFOUND;
}

/* ---- purge -------------------------------------------------------------------- */

static int dlq_purge(yard_js_t *js, dlq_args_t *a)
{
    int64_t age_s = 0;
    size_t removed = 0;
    if (ctl_parse_duration(&age_s, a->older_than) < 0)
        return ctl_usage_error("dlq", "--older-than takes a duration: 90s, 15m, 2h, 7d");
    a->f.before_ms = ctl_now_ms() - age_s * 1000;
    if (a->f.before_ms <= 0)
        a->f.before_ms = 1;
    char who[160];
    ctl_operator(who, sizeof who);
    int rc = yard_dlq_purge(&removed, js, &a->f, a->dry_run, who);
    if (ctl_out_json())
        ctl_out_json_print(json_pack("{s:I, s:b}", a->dry_run ? "would_purge" : "purged",
                                     (json_int_t)removed, "dry_run", a->dry_run));
    else if (a->dry_run)
        printf("dry run: %zu dead letter%s would be purged\n", removed, removed == 1 ? "" : "s");
    else
        printf("purged %zu dead letter%s\n", removed, removed == 1 ? "" : "s");
    return rc < 0 ? CTL_EXIT_FAIL : CTL_EXIT_OK;
}

int ctl_cmd_dlq(const yard_config_t *cfg, int argc, char **argv)
{
    static const char *const actions[] = {"list", "show", "replay", "purge"};
    dlq_args_t a;
    yard_js_t *js = NULL;
    const char *action = argc > 1 ? argv[1] : "";
    int known = 0, rc;
    memset(&a, 0, sizeof a);
    for (size_t i = 0; i < sizeof actions / sizeof actions[0]; i++)
        known |= strcmp(action, actions[i]) == 0;
    if (!known)
        return ctl_usage_error("dlq", "expected list, show, replay or purge");
    if ((rc = dlq_parse(&a, argc, argv, action)) != 0) {
        free(a.seqs);
        return rc < 0 ? CTL_EXIT_FAIL : rc;
    }
    if (yard_js_connect(&js, cfg, "yardctl") < 0) {
        free(a.seqs);
        return CTL_EXIT_FAIL;
    }
    if (!strcmp(action, "list"))
        rc = dlq_list(js, &a);
    else if (!strcmp(action, "show"))
        rc = dlq_show(js, a.seqs[0]);
    else if (!strcmp(action, "replay"))
        rc = dlq_replay(cfg, js, &a);
    else
        rc = dlq_purge(js, &a);
    yard_js_destroy(js, 1000);
    free(a.seqs);
    return rc;
}
