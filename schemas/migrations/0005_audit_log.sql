-- 0005_audit_log.sql - the append-only, hash-chained audit log.
--
-- The audit role appends one row per lifecycle event. event_id (from the event
-- message) is unique, so a redelivered event is inserted once. Each row's hash
-- covers its own fields and prev_hash, the hash of the row before it in seq
-- order (NULL only for the first row); `yardctl audit verify` recomputes the
-- chain. A trigger refuses UPDATE, DELETE and TRUNCATE, so rows change only
-- if someone disables triggers, and then the chain shows it.

CREATE TABLE audit_log (
    seq         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id    text        NOT NULL UNIQUE,
    at          timestamptz NOT NULL DEFAULT now(),   -- when the event happened
    event       text        NOT NULL CHECK (event <> ''),  -- e.g. job.succeeded
    job_id      uuid,
    workflow_id uuid,
    actor       text,                                 -- api key id, worker or operator
    detail      jsonb,
    prev_hash   bytea,
    hash        bytea       NOT NULL CHECK (octet_length(hash) >= 16),
    CONSTRAINT audit_log_prev_hash_size
        CHECK (prev_hash IS NULL OR octet_length(prev_hash) = octet_length(hash))
);

-- A job's or a workflow's history.
CREATE INDEX audit_log_job_idx ON audit_log (job_id) WHERE job_id IS NOT NULL;
CREATE INDEX audit_log_workflow_idx ON audit_log (workflow_id) WHERE workflow_id IS NOT NULL;
-- Time ranges; rows arrive in time order, so a BRIN index stays tiny.
CREATE INDEX audit_log_at_idx ON audit_log USING brin (at);

CREATE FUNCTION yard_audit_log_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'audit entries are only ever inserted';
END
$$;

-- Statement-level, so even an UPDATE or DELETE that matches no row is refused.
CREATE TRIGGER audit_log_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION yard_audit_log_refuse_change();
