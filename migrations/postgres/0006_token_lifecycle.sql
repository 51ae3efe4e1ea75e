-- Tokens get a lifecycle: a public id and a name to list and revoke them by, when they were
-- last used, an optional expiry, a revocation time, and for CI tokens an optional project
-- scope (a JSON list of repository globs; NULL reaches every project of the deployment).
ALTER TABLE tokens ADD COLUMN public_id TEXT;
ALTER TABLE tokens ADD COLUMN name TEXT NOT NULL DEFAULT '';
ALTER TABLE tokens ADD COLUMN last_used_at BIGINT;
ALTER TABLE tokens ADD COLUMN expires_at BIGINT;
ALTER TABLE tokens ADD COLUMN revoked_at BIGINT;
ALTER TABLE tokens ADD COLUMN repos TEXT;
-- Tokens made before this migration are named by their row id.
UPDATE tokens SET public_id = 'tok_' || id, name = scope || ' token ' || id;
CREATE UNIQUE INDEX tokens_by_public_id ON tokens (public_id);
CREATE INDEX ui_sessions_by_token ON ui_sessions (token_id);
