-- Retention (issue 15): delivered and failed messages, raw uploads of unfinished scans and
-- fail-open reports are pruned in small batches once they are older than their retention.
-- Each batch reads its rows straight off an index holding only what it may prune, in age
-- order, and stops at its limit, so a batch costs the same however long the log is.
CREATE INDEX messages_delivered ON messages (next_attempt_at) WHERE status = 'delivered';
CREATE INDEX messages_failed ON messages (next_attempt_at) WHERE status = 'failed';
-- A payload goes with its last message: "is any message left on it" is one index probe
-- (and deleting a payload checks its foreign key through the same index).
CREATE INDEX messages_by_payload ON messages (payload_id);
-- Uploads are kept until /complete applies them; those of scans that never completed stay.
CREATE INDEX scans_with_upload ON scans (results_at) WHERE results IS NOT NULL;
CREATE INDEX failures_by_age ON failures (created_at);

-- How many messages are delivered and failed, kept by the triggers below in the
-- transaction of every change, so that /metrics reads two numbers instead of counting
-- every message ever sent. Pending and delivering messages are counted live, through
-- their partial indexes (messages_due, messages_lease): they are few.
CREATE TABLE message_totals (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    delivered  INTEGER NOT NULL,
    failed     INTEGER NOT NULL
);
INSERT INTO message_totals (id, delivered, failed)
SELECT 1,
       COALESCE(SUM(CASE WHEN status = 'delivered' THEN 1 ELSE 0 END), 0),
       COALESCE(SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END), 0)
FROM messages;

CREATE TRIGGER message_totals_insert AFTER INSERT ON messages
WHEN NEW.status IN ('delivered', 'failed')
BEGIN
    UPDATE message_totals SET delivered = delivered + (NEW.status = 'delivered'),
                              failed = failed + (NEW.status = 'failed');
END;

CREATE TRIGGER message_totals_update AFTER UPDATE OF status ON messages
WHEN OLD.status IS NOT NEW.status
     AND (OLD.status IN ('delivered', 'failed') OR NEW.status IN ('delivered', 'failed'))
BEGIN
    UPDATE message_totals
    SET delivered = delivered + (NEW.status = 'delivered') - (OLD.status = 'delivered'),
        failed = failed + (NEW.status = 'failed') - (OLD.status = 'failed');
END;

CREATE TRIGGER message_totals_delete AFTER DELETE ON messages
WHEN OLD.status IN ('delivered', 'failed')
BEGIN
    UPDATE message_totals SET delivered = delivered - (OLD.status = 'delivered'),
                              failed = failed - (OLD.status = 'failed');
END;
