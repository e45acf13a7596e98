/*
 * retention.c - the schedule role's pruner (wk.h): every
 * cfg.retention_interval_s, deletes finished jobs (and their attempts)
 * older than cfg.retention_s, cfg.retention_batch rows per transaction
 * (bus/retention.h). Safe with any number of schedule replicas: batches
 * take their rows with SKIP LOCKED, so replicas split the work instead of
 * waiting on each other.
 */
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "db.h"
#include "err.h"
#include "log.h"
#include "retention.h"
#include "wk.h"

#define RETENTION_TICK_MS 200       /* how often the thread checks for a stop */
#define RETENTION_PG_CONNECT_S 5
#define RETENTION_PASS_BATCHES 100  /* batches per pass at most: the rest waits a pass */

struct wk_retention {
    wk_t *wk;
    pthread_t thread;
    PGconn *conn;
};

static void retention_pass(wk_retention_t *r)
{
    wk_t *wk = r->wk;
    if (yard_db_ensure(&r->conn, wk->cfg.pg_dsn, RETENTION_PG_CONNECT_S) < 0)
        return; /* logged; next pass */
    int64_t cutoff = wk_wall_ms() - wk->cfg.retention_s * 1000, total = 0;
    for (int b = 0; b < RETENTION_PASS_BATCHES && !atomic_load(&wk->stopping); b++) {
        int64_t n = 0;
        if (yard_retention_prune(&n, r->conn, cutoff, (int)wk->cfg.retention_batch, 1) < 0)
            break; /* logged */
        total += n;
        if (n < wk->cfg.retention_batch)
            break;
    }
    if (total)
        YARD_LOG_INFO(NULL, "retention: deleted %lld finished jobs older than %lld s",
                      (long long)total, (long long)wk->cfg.retention_s);
}

static void *retention_main(void *arg)
{
    wk_retention_t *r = arg;
    wk_t *wk = r->wk;
    int64_t next = wk_clock_ms() + wk->cfg.retention_interval_s * 1000;
    while (!atomic_load(&wk->stopping)) {
        if (wk_clock_ms() < next) {
            usleep(RETENTION_TICK_MS * 1000);
            continue;
        }
        retention_pass(r);
        next = wk_clock_ms() + wk->cfg.retention_interval_s * 1000;
    }
    return NULL;
}

int wk_retention_start(wk_retention_t **out, wk_t *wk)
{
    wk_retention_t *r = calloc(1, sizeof *r);
    if (!r)
        return YARD_ENOMEM;
    r->wk = wk;
    if (pthread_create(&r->thread, NULL, retention_main, r) != 0) {
        free(r);
        YARD_LOG_ERROR(NULL, "retention: cannot start its thread");
        return YARD_EIO;
    }
    *out = r;
    return 0;
}

void wk_retention_join(wk_retention_t *r)
{
    if (!r)
        return;
    pthread_join(r->thread, NULL);
    yard_db_close(r->conn);
    free(r);
}
