-- Webhook integrations, which rule modes notify them, and the delivery queue (SQLite).

CREATE TABLE integrations (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    public_id            TEXT NOT NULL UNIQUE,
    deployment_id        INTEGER NOT NULL REFERENCES deployments(id),
    name                 TEXT NOT NULL,
    url                  TEXT NOT NULL,
    enabled              INTEGER NOT NULL DEFAULT 1,
    disabled_reason      TEXT,
    secret               TEXT NOT NULL,
    old_secret           TEXT,
    old_secret_until     INTEGER,
    failing_since        INTEGER,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL
);

CREATE TABLE mode_integrations (
    deployment_id   INTEGER NOT NULL REFERENCES deployments(id),
    mode            TEXT NOT NULL,
    integration_id  INTEGER NOT NULL REFERENCES integrations(id) ON DELETE CASCADE,
    PRIMARY KEY (deployment_id, mode, integration_id)
);

-- One webhook POST body for one integration. Bodies are immutable: every attempt sends
-- the same bytes under the same webhook-id.
CREATE TABLE messages (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    public_id        TEXT NOT NULL UNIQUE,
    deployment_id    INTEGER NOT NULL,
    integration_id   INTEGER NOT NULL,
    scan_id          INTEGER,
    kind             TEXT NOT NULL,
    body             TEXT NOT NULL,
    status           TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    lease_until      INTEGER,
    created_at       INTEGER NOT NULL,
    delivered_at     INTEGER
);
CREATE INDEX messages_due ON messages (status, next_attempt_at);
CREATE INDEX messages_by_integration ON messages (integration_id, id);

CREATE TABLE attempts (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id        INTEGER NOT NULL,
    attempted_at      INTEGER NOT NULL,
    status_code       INTEGER,
    latency_us        INTEGER NOT NULL,
    response_excerpt  TEXT,
    error             TEXT
);
CREATE INDEX attempts_by_message ON attempts (message_id, id);
