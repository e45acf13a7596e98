-- 0011_job_list_indexes.sql - indexes for GET /v1/jobs (bus/jobs_list.c).
--
-- The list is newest first by (created_at, id), with a cursor that is the
-- last row's (created_at, id), so every page is an index range scan that
-- stops after limit + 1 rows. One index per filter a page is commonly asked
-- for (none, status, type, and the submitting key, which every non-admin
-- request adds, alone and with status), each ending in the list's order, so
-- a filtered page reads only matching rows in order; filters combined use the
-- most selective of them and check the rest on the rows they read. A queue
-- has none of its own: there are few queues, each usually holding many jobs,
-- so walking the list's order finds a page soon, and a rare queue is found
-- through 0001's (queue, status) index. Every index here is work for each
-- insert and status change of the hottest table, so there are no more than
-- the list needs.
-- The error-text filter (a case-insensitive substring) uses a trigram index
-- on last_error (pg_trgm, a trusted extension: the database owner may create
-- it).

CREATE INDEX jobs_list_idx ON jobs (created_at DESC, id DESC);
CREATE INDEX jobs_list_status_idx ON jobs (status, created_at DESC, id DESC);
CREATE INDEX jobs_list_type_idx ON jobs (type, created_at DESC, id DESC);
CREATE INDEX jobs_list_key_idx ON jobs (api_key_id, created_at DESC, id DESC)
    WHERE api_key_id IS NOT NULL;
-- A non-admin key filtering by status (the console's usual question: "my
-- dead jobs"): without it a status the key has few or no jobs in reads all
-- of the key's jobs.
CREATE INDEX jobs_list_key_status_idx ON jobs (api_key_id, status, created_at DESC, id DESC)
    WHERE api_key_id IS NOT NULL;

CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX jobs_last_error_trgm_idx ON jobs USING gin (last_error gin_trgm_ops)
    WHERE last_error IS NOT NULL;
