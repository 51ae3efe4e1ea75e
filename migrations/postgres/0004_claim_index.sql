-- Claims walk due messages in (next_attempt_at, id) order straight off this index and stop at
-- the batch size, so a claim costs the same with a thousand or a million messages queued.
DROP INDEX messages_due;
CREATE INDEX messages_due ON messages (status, next_attempt_at, id);
-- Expired leases are found without reading the messages in flight.
CREATE INDEX messages_lease ON messages (status, lease_until);
