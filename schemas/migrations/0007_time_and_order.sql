-- 0007_time_and_order.sql - delayed jobs held in PostgreSQL, cron schedules
-- that fire once, and the job's schedule firing.
--
-- Delayed jobs: the schedule role takes a job not yet due off jobs.schedule,
-- makes sure its row is 'scheduled' (it already is when the audit role wrote
-- it first) and acks the message; from then on the row alone holds the job
-- (jobs_scheduled_run_at_idx of 0001 serves the due query). So a job may wait
-- a year without any delivery counting toward a consumer's MaxDeliver.
--
-- released_at is when the schedule role published a delayed job to its
-- execute subject (after the PubAck, in the releasing transaction): how late
-- releases are is measured from it (released_at - run_at).
--
-- Schedules: catch_up says what a schedule does with firings it missed while
-- no schedule role ran ('skip': none, 'once': one, for the latest missed
-- time). enabled = false is "paused". A cron text is five fields or one of
-- the @ names (@hourly, @daily, @midnight, @weekly, @monthly, @yearly,
-- @annually), so 0003's five-field CHECK is replaced.
--
-- schedule_firings has one row per (schedule, fire time), written in the
-- transaction that advances next_run_at: a firing happens once, forever,
-- whatever the replicas do (its job id is derived from the same pair, so a
-- republish after a crash is a duplicate JetStream drops and the claim
-- never runs twice).

ALTER TABLE schedules
    DROP CONSTRAINT schedules_cron_check,
    ADD CONSTRAINT schedules_cron_check CHECK (
        cron ~ '^@(hourly|daily|midnight|weekly|monthly|yearly|annually)$'
        OR cardinality(regexp_split_to_array(btrim(cron), '\s+')) = 5),
    ADD COLUMN catch_up text NOT NULL DEFAULT 'skip' CHECK (catch_up IN ('skip', 'once'));

ALTER TABLE jobs ADD COLUMN released_at timestamptz;

CREATE TABLE schedule_firings (
    schedule_name text        NOT NULL,
    fire_at       timestamptz NOT NULL,
    job_id        uuid        NOT NULL UNIQUE,
    fired_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (schedule_name, fire_at)
);
