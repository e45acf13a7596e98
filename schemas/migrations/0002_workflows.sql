-- 0002_workflows.sql - workflows (DAGs of jobs) and their steps.
--
-- A workflow is created with all of its steps at once, and every step gets its
-- job id then, so releasing a step twice (after a crash of the schedule role)
-- republishes the same job id and JetStream drops the duplicate. The schedule
-- role releases a step once every step named in its depends_on has succeeded,
-- and hands the parents' results to it; the step's status follows its job's,
-- with 'waiting' before release and 'skipped' when a parent failed.

CREATE TABLE workflows (
    id          uuid        PRIMARY KEY,
    name        text        NOT NULL DEFAULT '' CHECK (length(name) <= 200),
    status      text        NOT NULL DEFAULT 'running'
                CHECK (status IN ('running', 'succeeded', 'failed', 'cancelled')),
    api_key_id  uuid,                       -- who submitted it (NULL: auth disabled)
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);

-- Sweeps over the workflows that are still running.
CREATE INDEX workflows_running_idx ON workflows (updated_at) WHERE status = 'running';

CREATE TRIGGER workflows_touch_updated_at BEFORE UPDATE ON workflows
    FOR EACH ROW EXECUTE FUNCTION yard_touch_updated_at();

CREATE TABLE workflow_steps (
    workflow_id uuid        NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    step_id     text        NOT NULL CHECK (length(step_id) BETWEEN 1 AND 128),
    -- Unique: a finished job finds its step through this index.
    job_id      uuid        NOT NULL UNIQUE,
    depends_on  text[]      NOT NULL DEFAULT '{}',
    status      text        NOT NULL DEFAULT 'waiting'
                CHECK (status IN ('waiting', 'queued', 'scheduled', 'running', 'succeeded',
                                  'failed', 'dead', 'cancelled', 'skipped')),
    result      jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workflow_id, step_id),
    CONSTRAINT workflow_steps_no_self_dependency CHECK (NOT (step_id = ANY (depends_on))),
    CONSTRAINT workflow_steps_depends_on_no_nulls CHECK (array_position(depends_on, NULL) IS NULL)
);

CREATE TRIGGER workflow_steps_touch_updated_at BEFORE UPDATE ON workflow_steps
    FOR EACH ROW EXECUTE FUNCTION yard_touch_updated_at();
