-- 0008_workflow_release.sql - what releasing workflow steps needs (bus/workflows.c).
--
-- A step keeps the job it will become (job: type, queue, payload, priority,
-- max_attempts, timeout_s, notify) until the schedule role releases it: in
-- one transaction it writes the job row (status queued, the step's
-- preassigned job_id, the parents' results under payload.inputs) and marks
-- the step queued, then publishes the job with Nats-Msg-Id = job_id. A crash
-- after the commit leaves a queued job without a JOBS sequence, which the
-- releaser's sweep republishes under the same id: nothing lost, nothing
-- doubled (the claim never runs a finished job).
--
-- Once released, a step follows its job: the trigger below copies the job's
-- status and result to the step in the transaction that changes the job, and
-- when the job reaches a final state it notifies channel yard_workflows with
-- the workflow id, so the releaser (LISTEN) looks at that workflow at once.

ALTER TABLE workflow_steps
    ADD COLUMN job         jsonb   NOT NULL DEFAULT '{}'::jsonb,
    ADD COLUMN position    integer NOT NULL DEFAULT 0 CHECK (position >= 0),
    ADD COLUMN released_at timestamptz;

ALTER TABLE workflows
    ADD COLUMN traceparent text CHECK (length(traceparent) <= 128);

-- GET /v1/workflows: newest first, per key (api_key_id) or all (admin).
CREATE INDEX workflows_key_created_idx ON workflows (api_key_id, created_at DESC, id DESC);
CREATE INDEX workflows_created_idx ON workflows (created_at DESC, id DESC);

CREATE FUNCTION yard_workflow_step_follow_job() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE workflow_steps SET status = NEW.status, result = NEW.result
     WHERE job_id = NEW.id
       AND status NOT IN ('succeeded', 'dead', 'cancelled', 'skipped');
    IF NEW.status IN ('succeeded', 'dead', 'cancelled') THEN
        PERFORM pg_notify('yard_workflows', NEW.workflow_id::text);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_workflow_step_follows AFTER UPDATE OF status ON jobs
    FOR EACH ROW
    WHEN (NEW.workflow_id IS NOT NULL AND OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION yard_workflow_step_follow_job();
