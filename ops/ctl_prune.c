/*
 * ctl_prune.c - `yardctl prune [--dry-run] [--older-than D]`: deletes
 * finished jobs past retention now (the schedule role does it every
 * retention_interval_s), or shows what would go (bus/retention.h).
 */
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "db.h"
#include "err.h"
#include "log.h"
#include "retention.h"

#define PRUNE_PG_CONNECT_S 10

const char ctl_prune_help[] =
    "usage: yardctl prune [--dry-run] [--older-than D]\n"
    "\n"
    "Deletes finished jobs (succeeded, dead, cancelled) and their attempts whose\n"
    "finished_at is older than the retention (retention_s, YARD_RETENTION_S;\n"
    "default 14 days), in batches of retention_batch rows, each its own short\n"
    "transaction. The schedule role does the same every retention_interval_s.\n"
    "\n"
    "options:\n"
    "  --dry-run        count what would be deleted (jobs, attempts, oldest)\n"
    "                   and delete nothing\n"
    "  --older-than D   use D (90s, 15m, 2h, 7d) instead of retention_s\n"
    "\n"
    "Exit status: 0 done; 1 failed; 2 bad arguments.\n";

int ctl_cmd_prune(const yard_config_t *cfg, int argc, char **argv)
{
    int dry_run = 0;
    int64_t keep_s = cfg->retention_s;
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        int m;
        if (!strcmp(argv[i], "--dry-run")) {
            dry_run = 1;
        } else if ((m = ctl_opt(&v, argc, argv, &i, "--older-than")) != 0) {
            if (m < 0 || ctl_parse_duration(&keep_s, v) < 0)
                return ctl_usage_error("prune", "--older-than takes a duration: 90s, 15m, "
                                       "2h, 7d");
        } else {
            return ctl_usage_error("prune", "unexpected argument '%s'", argv[i]);
        }
    }
    PGconn *db = NULL;
    if (yard_db_connect(&db, cfg->pg_dsn, PRUNE_PG_CONNECT_S) < 0)
        return CTL_EXIT_FAIL;
    int64_t cutoff = ctl_now_ms() - keep_s * 1000;
    char when[40], oldest[40];
    ctl_out_time(when, cutoff);
    int rc;
    if (dry_run) {
        yard_retention_preview_t p;
        rc = yard_retention_preview(&p, db, cutoff);
        if (rc == 0 && ctl_out_json())
            ctl_out_json_print(json_pack("{s:b, s:s, s:I, s:I, s:o}", "dry_run", 1, "cutoff",
                                         when, "jobs", (json_int_t)p.jobs, "attempts",
                                         (json_int_t)p.attempts, "oldest_finished_at",
                                         p.oldest_ms ? json_string(ctl_out_time(oldest,
                                                                                p.oldest_ms))
                                                     : json_null()));
        else if (rc == 0)
            printf("dry run: %lld finished job%s (with %lld attempt%s) finished before %s "
                   "would be deleted; the oldest finished at %s\n",
                   (long long)p.jobs, p.jobs == 1 ? "" : "s", (long long)p.attempts,
                   p.attempts == 1 ? "" : "s", when, ctl_out_time(oldest, p.oldest_ms));
    } else {
        int64_t deleted = 0;
        rc = yard_retention_prune(&deleted, db, cutoff, (int)cfg->retention_batch, 0);
        if (ctl_out_json())
            ctl_out_json_print(json_pack("{s:b, s:s, s:I}", "dry_run", 0, "cutoff", when,
                                         "deleted", (json_int_t)deleted));
        else
            printf("deleted %lld finished job%s that finished before %s\n", (long long)deleted,
                   deleted == 1 ? "" : "s", when);
        if (rc == 0)
            YARD_LOG_INFO(NULL, "prune: deleted %lld finished jobs older than %s",
                          (long long)deleted, when);
    }
    yard_db_close(db);
    return rc < 0 ? CTL_EXIT_FAIL : CTL_EXIT_OK;
}
