-- 0012_replay_retention.sql - what DLQ replays (bus/dlq.c) and retention
-- (bus/retention.c) need.
--
-- A replay is recorded on the job row: replayed_seq is the DLQ sequence of
-- the last dead letter replayed (a DLQ copy at or below it was replayed
-- already, so a replay interrupted and run again republishes nothing
-- twice, however long after), replays counts them, replayed_at/_by say
-- when and who. replay_budget is the attempts each replay grants: the
-- job's max_attempts as submitted, kept here once the first replay raised
-- max_attempts to attempts + budget.
--
-- Retention deletes finished jobs (and, by cascade, their attempts) in
-- batches in finished_at order; jobs_finished_at_idx serves exactly that
-- scan. Built in this migration's transaction: on a large existing table,
-- create it CONCURRENTLY by hand first (same name) and this is a no-op.

ALTER TABLE jobs
    ADD COLUMN replay_budget integer CHECK (replay_budget >= 1),
    ADD COLUMN replayed_seq  bigint  CHECK (replayed_seq >= 1),
    ADD COLUMN replays       integer NOT NULL DEFAULT 0 CHECK (replays >= 0),
    ADD COLUMN replayed_at   timestamptz,
    ADD COLUMN replayed_by   text;

CREATE INDEX IF NOT EXISTS jobs_finished_at_idx ON jobs (finished_at)
    WHERE status IN ('succeeded', 'dead', 'cancelled');
