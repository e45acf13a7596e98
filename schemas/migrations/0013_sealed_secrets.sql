-- 0013_sealed_secrets.sql - a job's sealed secrets (bus/sealed.h).
--
-- secrets_sealed is the job's `secrets` object exactly as the gateway sealed
-- it (`<key id>.<base64 sealed box>`), kept so that the rescuer and the
-- schedule role can rebuild the job's message. It is opaque here: only an
-- execute worker holding the key id's private key opens it. NULL: no secrets.

ALTER TABLE jobs
    ADD COLUMN secrets_sealed text
        CHECK (secrets_sealed IS NULL OR length(secrets_sealed) BETWEEN 10 AND 24576);
