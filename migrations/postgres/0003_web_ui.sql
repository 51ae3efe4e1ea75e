-- Web UI sessions. The cookie holds a random id; only its hash is kept. A session belongs to
-- the admin token it was opened with and ends with it.

CREATE TABLE ui_sessions (
    id_hash        TEXT PRIMARY KEY,
    token_id       BIGINT NOT NULL REFERENCES tokens(id) ON DELETE CASCADE,
    csrf           TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL
);

CREATE INDEX ui_sessions_expiry ON ui_sessions (expires_at);

-- The messages of one scan, for its page in the UI.
CREATE INDEX messages_by_scan ON messages (scan_id);
