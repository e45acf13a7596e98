/*
 * retention.h - finished jobs are kept for a configured time (retention_s,
 * default 14 days), then deleted with their attempts.
 *
 * Deletion runs in small batches, each its own short transaction: the
 * batch picks the oldest finished rows through jobs_finished_at_idx
 * (migration 0012) with FOR UPDATE SKIP LOCKED, so two schedule replicas
 * pruning at once take different rows and never wait on each other, and a
 * batch holds its row locks only for the few milliseconds of its DELETE.
 * The cost of one batch is O(batch * log n) (an index range scan and the
 * cascaded attempts' primary key), so pruning keeps pace with a steady
 * load whatever the table's size; what grows with the table is only the
 * vacuum work that deleted rows leave behind.
 */
#ifndef YARD_RETENTION_H
#define YARD_RETENTION_H

#include <stdint.h>

#include <libpq-fe.h>

/* Rows per transaction unless configured otherwise (retention_batch). */
#define YARD_RETENTION_BATCH_DEFAULT 1000

/* What a prune with cutoff would remove. */
typedef struct {
    int64_t jobs;      /* finished jobs with finished_at before the cutoff */
    int64_t attempts;  /* their attempt rows */
    int64_t oldest_ms; /* finished_at of the oldest of them, Unix ms; 0: none */
} yard_retention_preview_t;

/* Counts what a prune at cutoff_ms (Unix ms: finished before it) would
 * delete, reading only. Returns 0 or an error. */
int yard_retention_preview(yard_retention_preview_t *out, PGconn *c, int64_t cutoff_ms);

/* Deletes finished jobs (succeeded, dead, cancelled) whose finished_at is
 * before cutoff_ms, oldest first, batch rows per transaction, until none is
 * left or max_batches batches ran (0: no bound). Their attempts go with
 * them (ON DELETE CASCADE). Sets *deleted to the jobs deleted (also on
 * error: those of the batches committed). Returns 0 or an error. */
int yard_retention_prune(int64_t *deleted, PGconn *c, int64_t cutoff_ms, int batch,
                         int max_batches);

#endif
