-- 0009_audit_writer.sql - the audit role's own PostgreSQL role.
--
-- The audit worker runs `SET ROLE yard_audit_writer` on its connection, so
-- whatever goes wrong in it, it can read and append audit_log rows but never
-- change or remove one: UPDATE, DELETE and TRUNCATE are refused by the
-- privileges (and, independently, by the append-only trigger of 0005). The
-- role cannot log in; the migrating user is made a member so its connections
-- may switch to it. Roles are cluster-wide: an existing one is reused.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'yard_audit_writer') THEN
        CREATE ROLE yard_audit_writer NOLOGIN;
    END IF;
    EXECUTE format('GRANT yard_audit_writer TO %I', current_user);
END
$$;

REVOKE ALL ON audit_log FROM yard_audit_writer;
GRANT SELECT, INSERT ON audit_log TO yard_audit_writer;
