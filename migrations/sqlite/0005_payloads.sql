-- A message's body moves to `payloads`, shared by every message that sends the same bytes:
-- a scan's semgrep_scan object goes to each integration, and integrations notified of the
-- same rule modes get the same semgrep_finding arrays. A message row is then a few dozen
-- bytes, so a claim and an attempt's record rewrite small rows instead of whole bodies,
-- and a scan fanned out to ten integrations stores its object once.
CREATE TABLE payloads (
    id    INTEGER PRIMARY KEY,
    body  TEXT NOT NULL
);
INSERT INTO payloads (id, body) SELECT id, body FROM messages;
ALTER TABLE messages ADD COLUMN payload_id INTEGER REFERENCES payloads(id);
UPDATE messages SET payload_id = id;
ALTER TABLE messages DROP COLUMN body;

-- Claims take each integration's due messages in turn (a worker asks for what each
-- integration can send next), so the due index leads with the integration.
DROP INDEX messages_due;
CREATE INDEX messages_due ON messages (integration_id, next_attempt_at, id) WHERE status = 'pending';
