-- One B-tree fewer written per new finding (issue 14: a first scan's 10,000 findings): the
-- unique key leads with the identity, (project_id, identity, git_ref), and so also serves
-- the lookups of an identity across a project's refs that `findings_by_identity` served;
-- the ref's findings are read through `findings_by_ref_tool`. SQLite cannot change a
-- table's constraint in place: the table is rebuilt with its rows, ids and id sequence.
CREATE TABLE findings_new (
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
    tool              TEXT NOT NULL DEFAULT 'semgrep',
    UNIQUE (project_id, identity, git_ref)
);
INSERT INTO findings_new SELECT * FROM findings;
-- The sequence goes with the rows, so that no id of a pruned finding is given again.
DELETE FROM sqlite_sequence WHERE name = 'findings_new';
UPDATE sqlite_sequence SET name = 'findings_new' WHERE name = 'findings';
DROP TABLE findings;
ALTER TABLE findings_new RENAME TO findings;
CREATE INDEX findings_by_deployment ON findings (deployment_id, id);
CREATE INDEX findings_by_ref_tool ON findings (project_id, git_ref, tool);
