-- 0004_api_keys.sql - API keys of the HTTP gateway.
--
-- Only a hash of each key is stored. A key's first characters (prefix) are
-- stored in clear and unique, so the gateway finds the one candidate row by
-- prefix and compares hashes in constant time. Revoking sets revoked_at; rows
-- are kept so that jobs, workflows and audit entries keep naming their key.
-- rate_per_s and burst size the key's token bucket; NULL means the gateway's
-- default.

CREATE TABLE api_keys (
    id           uuid             PRIMARY KEY,
    name         text             NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    prefix       text             NOT NULL UNIQUE CHECK (length(prefix) BETWEEN 6 AND 64),
    key_hash     bytea            NOT NULL CHECK (octet_length(key_hash) >= 16),
    scopes       text[]           NOT NULL
                 CHECK (cardinality(scopes) >= 1
                        AND scopes <@ ARRAY['submit', 'read', 'admin']::text[]),
    rate_per_s   double precision CHECK (rate_per_s > 0),
    burst        integer          CHECK (burst >= 1),
    created_at   timestamptz      NOT NULL DEFAULT now(),
    revoked_at   timestamptz,
    last_used_at timestamptz
);
