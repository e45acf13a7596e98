-- 0006_job_lifecycle.sql - what the lifecycle module (bus/jobs.c) needs to
-- rebuild and rescue a job without its message.
--
-- js_seq is the JOBS stream sequence of the message that currently carries
-- the job (set by ingest, claim, release, replay and rescue). The rescuer in
-- the schedule role compares it with what JOBS still holds: a job stuck in
-- queued/scheduled/running/failed whose message is gone is republished.
-- traceparent and notify complete the row, so the envelope can be rebuilt
-- from PostgreSQL alone.

ALTER TABLE jobs
    ADD COLUMN js_seq      bigint CHECK (js_seq >= 1),
    ADD COLUMN traceparent text,
    ADD COLUMN notify      jsonb;
