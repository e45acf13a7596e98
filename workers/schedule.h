/*
 * schedule.h - the parts of the schedule role (schedule.c starts them):
 *   schedule.c       takes delayed jobs off jobs.schedule into PostgreSQL
 *   schedule_due.c   the due thread: every schedule_poll_ms releases the
 *                    due delayed jobs and fires the due cron schedules
 *   schedule_cron.c  one cron firing pass
 *   rescue.c         the rescuer (wk.h)
 */
#ifndef WK_SCHEDULE_H
#define WK_SCHEDULE_H

#include <libpq-fe.h>

#include "wk.h"

/* Delayed jobs released per transaction, at most: large, so that ten
 * thousand jobs due the same second are published by two replicas in one
 * transaction each (the publishes are fast; the status update after them
 * is what takes time). */
#define WK_DUE_BATCH 5000
/* Jobs due within this are locked and encoded ahead, then published as
 * each falls due (the rows stay locked meanwhile: a cancel waits as long). */
#define WK_DUE_LOOKAHEAD_MS 1000
/* Cron firings per pass, at most (the rest wait for the next pass). */
#define WK_CRON_PASS_MAX 200
/* A firing missed by more than this (the role was down) follows the
 * schedule's catch_up policy; a later one within it simply fires late. */
#define WK_CRON_GRACE_S 60

typedef struct wk_due wk_due_t;

/* Starts the due thread. Returns 0 and sets *out, or an error (logged). */
int wk_due_start(wk_due_t **out, wk_t *wk);

/* Waits for the due thread after wk->stopping is set; frees it. NULL: no-op. */
void wk_due_join(wk_due_t *d);

/* Fires the cron schedules due now (each in its own transaction, once
 * across replicas: schedules.h) on conn (lifecycle statements prepared).
 * Returns how many schedules were handled, or an error (logged). */
int wk_cron_pass(wk_t *wk, PGconn *conn);

#endif
