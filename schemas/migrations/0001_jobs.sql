-- 0001_jobs.sql - jobs and their attempts.
--
-- jobs holds one row per job, keyed by the time-ordered id the gateway assigns
-- (the same id is the message's Nats-Msg-Id). Workers upsert the row as the job
-- moves through DESIGN.md's lifecycle; the gateway's GET /v1/jobs/{id} reads it.
-- job_attempts holds one row per finished run of a job. Its primary key
-- (job_id, attempt) is the idempotency key of result writes: a worker that
-- crashes after its commit and before its ack gets the message again, and its
-- second INSERT ... ON CONFLICT DO NOTHING changes nothing.
--
-- yard_touch_updated_at() is shared by the later migrations: it stamps
-- updated_at on every UPDATE that does not set it itself.

CREATE FUNCTION yard_touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at THEN
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END
$$;

CREATE TABLE jobs (
    id                  uuid        PRIMARY KEY,
    -- Queue and type names follow yard_js_valid_name (bus/js.h): queue names
    -- end NATS subjects (jobs.execute.<queue>) and name consumers.
    queue               text        NOT NULL CHECK (queue ~ '^[a-z0-9][a-z0-9._-]{0,63}$'),
    type                text        NOT NULL CHECK (type ~ '^[a-z0-9][a-z0-9._-]{0,63}$'),
    status              text        NOT NULL DEFAULT 'queued'
                        CHECK (status IN ('queued', 'scheduled', 'running', 'succeeded',
                                          'failed', 'dead', 'cancelled')),
    priority            smallint    NOT NULL DEFAULT 0,
    payload             jsonb,
    result              jsonb,
    last_error          text,
    attempts            integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts        integer     NOT NULL CHECK (max_attempts >= 1),
    timeout_s           integer     NOT NULL CHECK (timeout_s >= 1),
    run_at              timestamptz,            -- NULL: run as soon as possible
    idempotency_key     text,                   -- as the producer sent it
    api_key_id          uuid,                   -- who submitted it (NULL: auth disabled)
    workflow_id         uuid,
    step_id             text,
    schedule_name       text,                   -- the cron schedule that fired it
    trace_id            text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    started_at          timestamptz,            -- first attempt began
    finished_at         timestamptz,            -- reached a final status
    cancel_requested_at timestamptz,            -- DELETE /v1/jobs/{id} arrived
    -- A job is a workflow step exactly when it names both.
    CONSTRAINT jobs_step_in_workflow CHECK ((workflow_id IS NULL) = (step_id IS NULL))
);

-- GET /v1/queues: per-queue counts by status.
CREATE INDEX jobs_queue_status_idx ON jobs (queue, status);
-- Sweeps: running jobs whose worker stopped heartbeating, retention of old
-- finished jobs. Both scan one status in updated_at order.
CREATE INDEX jobs_status_updated_idx ON jobs (status, updated_at);
-- The schedule role's delayed jobs, earliest first.
CREATE INDEX jobs_scheduled_run_at_idx ON jobs (run_at) WHERE status = 'scheduled';
-- A workflow's jobs.
CREATE INDEX jobs_workflow_idx ON jobs (workflow_id) WHERE workflow_id IS NOT NULL;

CREATE TRIGGER jobs_touch_updated_at BEFORE UPDATE ON jobs
    FOR EACH ROW EXECUTE FUNCTION yard_touch_updated_at();

CREATE TABLE job_attempts (
    job_id      uuid        NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    attempt     integer     NOT NULL CHECK (attempt >= 1),   -- 1 for the first run
    started_at  timestamptz NOT NULL,
    finished_at timestamptz NOT NULL DEFAULT now(),
    outcome     text        NOT NULL
                CHECK (outcome IN ('succeeded', 'failed', 'retry', 'dead', 'cancelled', 'timeout')),
    error       text,                                        -- NULL when it succeeded
    worker      text,                                        -- host/pid of the worker
    duration_ms bigint      CHECK (duration_ms >= 0),
    PRIMARY KEY (job_id, attempt)
);
