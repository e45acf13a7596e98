-- 0014_program_roles.sql - one PostgreSQL role per program, with only the
-- rights that program's statements use (least privilege).
--
-- Roles: yard_gateway, yard_execute, yard_schedule, yard_notify, yard_audit.
-- Operators and yardctl use the database's owner (which runs migrations).
-- Deployments create each role as a LOGIN user with a password before
-- migrating (ops/cluster.sh does; ops/k8s/README in the README's
-- "Locked-down cluster" section); a role that does not exist yet is created
-- here as NOLOGIN, so migrating never fails. Roles are cluster-wide: an
-- existing one is reused and only granted table rights.
--
-- No role but the owner may create anything (no CREATE on the schema, no
-- TEMPORARY on the database), read api_keys (but the gateway), or change
-- audit_log (the audit worker appends through yard_audit_writer, 0009).
-- A later migration that adds a table grants it to the roles whose
-- statements use it, in the same way.

DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['yard_gateway', 'yard_execute', 'yard_schedule',
                             'yard_notify', 'yard_audit'] LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN', r);
        END IF;
        EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA public FROM %I', r);
        EXECUTE format('GRANT USAGE ON SCHEMA public TO %I', r);
        EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), r);
    END LOOP;
    EXECUTE format('REVOKE TEMPORARY, CREATE ON DATABASE %I FROM PUBLIC', current_database());
    -- The audit worker switches to yard_audit_writer for audit_log.
    GRANT yard_audit_writer TO yard_audit;
END
$$;

REVOKE CREATE ON SCHEMA public FROM PUBLIC;

-- The gateway: API keys (and their last use), submits, reads, cancels, DLQ
-- replays, workflows and schedules.
GRANT SELECT, UPDATE ON api_keys TO yard_gateway;
GRANT SELECT, INSERT, UPDATE ON jobs, job_attempts, workflows, workflow_steps TO yard_gateway;
GRANT SELECT, INSERT, UPDATE, DELETE ON schedules TO yard_gateway;
GRANT SELECT, DELETE ON schedule_firings TO yard_gateway;

-- The execute worker: claims and outcomes (jobs.c); the step trigger of 0008
-- follows a step job's state into workflow_steps.
GRANT SELECT, INSERT, UPDATE ON jobs, job_attempts TO yard_execute;
GRANT SELECT, UPDATE ON workflow_steps TO yard_execute;
GRANT SELECT ON workflows TO yard_execute;

-- The schedule worker: delayed jobs, cron firings, workflow releases,
-- the rescuer and retention (deletes finished jobs, attempts cascade).
GRANT SELECT, INSERT, UPDATE, DELETE ON jobs, job_attempts TO yard_schedule;
GRANT SELECT, INSERT, UPDATE, DELETE ON workflows, workflow_steps TO yard_schedule;
GRANT SELECT, UPDATE ON schedules TO yard_schedule;
GRANT SELECT, INSERT, DELETE ON schedule_firings TO yard_schedule;

-- The notify worker: reads the job a notification is about.
GRANT SELECT ON jobs, job_attempts TO yard_notify;

-- The audit worker: records accepted jobs as queued / scheduled rows (and
-- audit_log rows as yard_audit_writer, granted above).
GRANT SELECT, INSERT, UPDATE ON jobs TO yard_audit;
GRANT SELECT ON job_attempts, workflows TO yard_audit;
GRANT SELECT, UPDATE ON workflow_steps TO yard_audit;
