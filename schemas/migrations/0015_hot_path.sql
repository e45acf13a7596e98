-- 0015_hot_path.sql - a job row written as few times, and as cheaply, as
-- its lifecycle allows (issue 12).
--
-- A short job's row is written once or twice: ingest's queued row (when the
-- audit role gets there first) and the outcome; the claim only reads, and a
-- job is marked running only once it has run for a few tens of ms
-- (bus/jobs.h). What each write costs is the row, its WAL, and one entry in
-- every index the new row version belongs to:
--   * updated_at is stamped by the statements of bus/jobs.c themselves (they
--     are the only ones that change jobs): no PL/pgSQL trigger call per row;
--   * the sweeps' indexes hold only the rows they look for, the live ones
--     (queued, scheduled, running, failed): a finished row, nearly all of a
--     big table, has no entry in them;
--   * job_attempts has no foreign key to jobs: its check ran one query per
--     attempt row (about as much as the rest of the outcome's statement).
--     The finish writes a job's row and its attempt in one statement, and
--     retention (bus/retention.c) deletes a job's attempts with it;
--   * autovacuum comes round sooner on jobs: each outcome leaves the row's
--     queued version behind, and fresh statistics keep the batch statements
--     on their index plans as the table grows.

DROP TRIGGER jobs_touch_updated_at ON jobs;

ALTER TABLE job_attempts DROP CONSTRAINT job_attempts_job_id_fkey;

-- yard_jobs_queued_age: per queue, its oldest queued job, one index probe
-- (min() of the indexed expression), whatever the backlog.
DROP INDEX jobs_queue_status_idx;
CREATE INDEX jobs_queue_live_idx ON jobs (queue, status, (coalesce(run_at, created_at)))
    WHERE status IN ('queued', 'scheduled', 'running', 'failed');

-- The rescuer (yard_jobs_stale): jobs without progress, oldest change first.
-- Retention reads jobs_finished_at_idx.
DROP INDEX jobs_status_updated_idx;
CREATE INDEX jobs_live_updated_idx ON jobs (status, updated_at)
    WHERE status IN ('queued', 'running', 'failed');

ALTER TABLE jobs SET (autovacuum_vacuum_scale_factor = 0.05,
                      autovacuum_analyze_scale_factor = 0.02);
