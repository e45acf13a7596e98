/*
 * consume_loop.c - the fetch loop of the simple roles (consume_loop.h).
 * Its PostgreSQL connection commits without waiting for the WAL flush: the
 * roles using it (ingest, the schedule role's release) lose nothing if such a
 * commit is lost: the claim writes the same row again.
 */
#include <stdlib.h>
#include <unistd.h>

#include "db.h"
#include "err.h"
#include "log.h"
#include "jobs.h"
#include "consume_loop.h"

#define LOOP_PG_CONNECT_S 5       /* PostgreSQL connect timeout */
#define LOOP_WAIT_MS 1000 /* an idle loop waits this long for a message */
#define LOOP_STOP_ANSWER_US 2000 /* at the stop, the pause for answers still on the way */

struct wk_loop {
    wk_t *wk;
    yard_js_consumer_t *consumer;
    pthread_t thread;
    int needs_pg;
    int batch; /* messages per fetch, at most */
    PGconn *conn;
    wk_batch_fn fn;
    void *ud;
    char name[YARD_JS_NAME_MAX];
};

/* Takes up to l->batch messages into *out: what the consumer has comes at
 * once; with nothing there the fetch waits up to LOOP_WAIT_MS and returns
 * with the first message that arrives (a lone accepted job is not held back
 * waiting for a full batch). Returns 0 (count may be 0) or an error. */
static int loop_fetch(wk_loop_t *l, yard_js_batch_t *out)
{
    return yard_js_fetch(l->consumer, out, l->batch, LOOP_WAIT_MS);
}

/* Hands back (nak) what the subscription holds but the loop never took
 * (answers that arrived after their fetch ended). */
static void loop_hand_back_held(wk_loop_t *l)
{
    usleep(LOOP_STOP_ANSWER_US);
    yard_js_hand_back_held(l->consumer);
}

static void *loop_main(void *arg)
{
    wk_loop_t *l = arg;
    wk_t *wk = l->wk;
    while (!atomic_load(&wk->stopping)) {
        if (l->needs_pg &&
            yard_jobs_connect(&l->conn, wk->cfg.pg_dsn, LOOP_PG_CONNECT_S,
                              (l->needs_pg == WK_LOOP_PG_DURABLE ? YARD_JOBS_DURABLE
                                                                 : YARD_JOBS_FAST) |
                                  YARD_JOBS_PLAN_ONCE) < 0) {
            sleep(1);
            continue;
        }
        yard_js_batch_t batch;
        int64_t t0 = wk_clock_us();
        if (loop_fetch(l, &batch) < 0) {
            sleep(1);
            continue;
        }
        if (batch.count > 0) {
            wk_time_add(wk, "jetstream", wk_clock_us() - t0);
            l->fn(wk, l->needs_pg ? l->conn : NULL, batch.msgs, batch.count, l->ud);
        }
        yard_js_batch_destroy(&batch);
    }
    loop_hand_back_held(l);
    return NULL;
}

int wk_loop_start(wk_loop_t **out, wk_t *wk, const char *stream, const char *durable, int batch,
                  int needs_pg, wk_batch_fn fn, void *ud)
{
    wk_loop_t *l = calloc(1, sizeof *l);
    if (!l)
        return YARD_ENOMEM;
    l->wk = wk;
    l->needs_pg = needs_pg;
    l->batch = batch;
    l->fn = fn;
    l->ud = ud;
    snprintf(l->name, sizeof l->name, "%s", durable);
    int rc = yard_js_consumer_bind(&l->consumer, wk->js, stream, durable);
    if (rc == 0 && pthread_create(&l->thread, NULL, loop_main, l) != 0)
        rc = YARD_EIO;
    if (rc < 0) {
        YARD_LOG_ERROR(NULL, "%s: cannot start: %s", durable, yard_strerror(rc));
        yard_js_consumer_destroy(l->consumer);
        free(l);
        return rc;
    }
    *out = l;
    return 0;
}

void wk_loop_join(wk_loop_t *l)
{
    if (!l)
        return;
    pthread_join(l->thread, NULL);
    yard_js_consumer_destroy(l->consumer);
    yard_db_close(l->conn);
    free(l);
}
