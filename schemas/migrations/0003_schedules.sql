-- 0003_schedules.sql - cron schedules.
--
-- One row per schedule, named by the producer (POST /v1/schedules). job is the
-- template of the job each firing submits (the fields of POST /v1/jobs). The
-- schedule role picks due rows with
--   SELECT ... WHERE enabled AND next_run_at <= now() FOR UPDATE SKIP LOCKED
-- so that each firing happens once across replicas, derives the job id from
-- (name, fire time), and advances next_run_at in the same transaction.

CREATE TABLE schedules (
    -- The name appears in URLs (/v1/schedules/{name}).
    name        text        PRIMARY KEY
                CHECK (length(name) BETWEEN 1 AND 200 AND name !~ '[/[:space:][:cntrl:]]'),
    -- Five fields: minute hour day-of-month month day-of-week.
    cron        text        NOT NULL
                CHECK (cardinality(regexp_split_to_array(btrim(cron), '\s+')) = 5),
    timezone    text        NOT NULL DEFAULT 'UTC' CHECK (timezone <> ''),   -- IANA name
    job         jsonb       NOT NULL CHECK (jsonb_typeof(job) = 'object'),
    enabled     boolean     NOT NULL DEFAULT true,
    next_run_at timestamptz,                -- NULL: not computed yet
    last_run_at timestamptz,
    last_job_id uuid,
    api_key_id  uuid,                       -- who created it (NULL: auth disabled)
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- The due-schedules query above.
CREATE INDEX schedules_due_idx ON schedules (next_run_at) WHERE enabled;

CREATE TRIGGER schedules_touch_updated_at BEFORE UPDATE ON schedules
    FOR EACH ROW EXECUTE FUNCTION yard_touch_updated_at();
