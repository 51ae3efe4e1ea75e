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
-- their partial indexes (messages_due, messages_lease): they are few. One row, so that
-- a transaction takes one lock however its messages move (no order between rows to
-- deadlock on); queueing (pending, delivering) never touches it.
CREATE TABLE message_totals (
    id         SMALLINT PRIMARY KEY CHECK (id = 1),
    delivered  BIGINT NOT NULL,
    failed     BIGINT NOT NULL
);
INSERT INTO message_totals (id, delivered, failed)
SELECT 1,
       COUNT(*) FILTER (WHERE status = 'delivered'),
       COUNT(*) FILTER (WHERE status = 'failed')
FROM messages;

CREATE FUNCTION message_totals_count() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    d BIGINT := 0;
    f BIGINT := 0;
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        d := d + (NEW.status = 'delivered')::int;
        f := f + (NEW.status = 'failed')::int;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        d := d - (OLD.status = 'delivered')::int;
        f := f - (OLD.status = 'failed')::int;
    END IF;
    IF d <> 0 OR f <> 0 THEN
        UPDATE message_totals SET delivered = delivered + d, failed = failed + f WHERE id = 1;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER message_totals_insert AFTER INSERT ON messages FOR EACH ROW
WHEN (NEW.status IN ('delivered', 'failed'))
EXECUTE FUNCTION message_totals_count();

CREATE TRIGGER message_totals_update AFTER UPDATE OF status ON messages FOR EACH ROW
WHEN (OLD.status IS DISTINCT FROM NEW.status
      AND (OLD.status IN ('delivered', 'failed') OR NEW.status IN ('delivered', 'failed')))
EXECUTE FUNCTION message_totals_count();

CREATE TRIGGER message_totals_delete AFTER DELETE ON messages FOR EACH ROW
WHEN (OLD.status IN ('delivered', 'failed'))
EXECUTE FUNCTION message_totals_count();
