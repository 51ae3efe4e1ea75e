-- scanhook core schema (SQLite). Times are integer microseconds since the Unix epoch;
-- JSON is TEXT. The PostgreSQL schema has the same tables and columns.

CREATE TABLE deployments (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    slug        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE tokens (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    deployment_id  INTEGER NOT NULL REFERENCES deployments(id),
    scope          TEXT NOT NULL,
    token_hash     TEXT NOT NULL UNIQUE,
    created_at     INTEGER NOT NULL
);

CREATE TABLE policies (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    deployment_id  INTEGER NOT NULL REFERENCES deployments(id),
    name           TEXT NOT NULL,
    slug           TEXT NOT NULL,
    is_default     INTEGER NOT NULL DEFAULT 0,
    created_at     INTEGER NOT NULL,
    UNIQUE (deployment_id, slug)
);

CREATE TABLE rules (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    deployment_id  INTEGER NOT NULL REFERENCES deployments(id),
    rule_id        TEXT NOT NULL,
    body           TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    UNIQUE (deployment_id, rule_id)
);

CREATE TABLE policy_rules (
    policy_id  INTEGER NOT NULL REFERENCES policies(id),
    rule_pk    INTEGER NOT NULL REFERENCES rules(id),
    mode       TEXT NOT NULL,
    PRIMARY KEY (policy_id, rule_pk)
);

CREATE TABLE projects (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    deployment_id  INTEGER NOT NULL REFERENCES deployments(id),
    name           TEXT NOT NULL,
    repo_url       TEXT,
    ignored_files  TEXT NOT NULL DEFAULT '[]',
    created_at     INTEGER NOT NULL,
    last_scan_at   INTEGER,
    UNIQUE (deployment_id, name)
);

CREATE TABLE scans (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    public_id        TEXT NOT NULL UNIQUE,
    deployment_id    INTEGER NOT NULL REFERENCES deployments(id),
    project_id       INTEGER NOT NULL REFERENCES projects(id),
    unique_id        TEXT NOT NULL,
    git_ref          TEXT NOT NULL,
    is_full_scan     INTEGER NOT NULL,
    cli_version      TEXT,
    meta             TEXT NOT NULL,
    ignored_files    TEXT NOT NULL,
    status           TEXT NOT NULL,
    started_at       INTEGER NOT NULL,
    completed_at     INTEGER,
    exit_code        INTEGER,
    -- The /results upload as sent, LZ4-compressed, until /complete applies it.
    results          BLOB,
    results_at       INTEGER,
    stats            TEXT,
    error_stderr     TEXT,
    n_findings       INTEGER NOT NULL DEFAULT 0,
    n_opened         INTEGER NOT NULL DEFAULT 0,
    n_fixed          INTEGER NOT NULL DEFAULT 0,
    n_notified       INTEGER NOT NULL DEFAULT 0,
    scan_payload     TEXT,
    finding_payload  TEXT,
    complete_response TEXT,
    UNIQUE (deployment_id, unique_id)
);
CREATE INDEX scans_by_status ON scans (status, started_at);
CREATE INDEX scans_by_deployment ON scans (deployment_id, id);

-- Rule metadata as compact JSON, stored once per distinct value: the findings of one
-- rule share it.
CREATE TABLE finding_metadata (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    deployment_id  INTEGER NOT NULL,
    hash           TEXT NOT NULL,
    body           TEXT NOT NULL,
    UNIQUE (deployment_id, hash)
);

-- The high-volume tables below (findings, identities, scan_changes, finding_metadata)
-- carry no foreign-key constraints: they are written only by the scan-completion
-- transaction, which takes its ids from the rows it just read, and per-row constraint
-- triggers cost more than the rest of a 10,000-finding upload on PostgreSQL.
CREATE TABLE findings (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    deployment_id     INTEGER NOT NULL,
    project_id        INTEGER NOT NULL,
    git_ref           TEXT NOT NULL,
    identity          TEXT NOT NULL,
    syntactic_id      TEXT NOT NULL,
    match_based_id    TEXT,
    rule_id           TEXT NOT NULL,
    path              TEXT NOT NULL,
    line              INTEGER NOT NULL,
    col               INTEGER NOT NULL,
    end_line          INTEGER NOT NULL,
    end_col           INTEGER NOT NULL,
    message           TEXT NOT NULL,
    severity          INTEGER NOT NULL,
    idx               INTEGER NOT NULL,
    commit_date       TEXT,
    metadata_id       INTEGER NOT NULL,
    mode              TEXT NOT NULL,
    policy_slug       TEXT,
    state             TEXT NOT NULL,
    -- Hash of the columns a re-scan may change; equal digests mean nothing to write.
    digest            TEXT NOT NULL,
    created_at        INTEGER NOT NULL,
    relevant_since    INTEGER NOT NULL,
    state_updated_at  INTEGER NOT NULL,
    last_scan_id      INTEGER NOT NULL,
    UNIQUE (project_id, git_ref, identity)
);
CREATE INDEX findings_by_deployment ON findings (deployment_id, id);

CREATE TABLE identities (
    project_id          INTEGER NOT NULL,
    identity            TEXT NOT NULL,
    first_seen_scan_id  TEXT NOT NULL,
    first_seen_at       INTEGER NOT NULL,
    triage_state        TEXT NOT NULL DEFAULT 'untriaged',
    triage_reason       TEXT,
    triage_comment      TEXT,
    triaged_at          INTEGER,
    PRIMARY KEY (project_id, identity)
);

CREATE TABLE scan_changes (
    scan_id     INTEGER NOT NULL,
    finding_id  INTEGER NOT NULL,
    change      TEXT NOT NULL,
    notify      INTEGER NOT NULL,
    PRIMARY KEY (scan_id, finding_id)
);

CREATE TABLE failures (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    deployment_id  INTEGER NOT NULL REFERENCES deployments(id),
    request_id     TEXT,
    exit_code      INTEGER,
    body           TEXT NOT NULL,
    created_at     INTEGER NOT NULL
);

CREATE INDEX findings_by_identity ON findings (project_id, identity);
CREATE INDEX scan_changes_by_finding ON scan_changes (finding_id);
