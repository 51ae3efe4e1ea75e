-- Per integration: the event types it receives (a JSON list; NULL is the seed's two,
-- semgrep_scan and semgrep_finding) and its filters (a JSON object; NULL filters nothing).
ALTER TABLE integrations ADD COLUMN events TEXT;
ALTER TABLE integrations ADD COLUMN filters TEXT;

-- The findings a backfill sent an integration, so that a second backfill sends only what
-- is new (unless forced).
CREATE TABLE backfilled (
    integration_id  BIGINT NOT NULL,
    project_id      BIGINT NOT NULL,
    identity        TEXT NOT NULL,
    PRIMARY KEY (integration_id, project_id, identity)
);
