-- Claims walk due messages in (next_attempt_at, id) order straight off an index and stop at
-- the batch size, so a claim costs the same with a thousand or a million messages queued.
-- Both indexes hold only the messages still moving: delivered and failed ones (nearly all,
-- over time) leave them, which keeps them small however long the log grows.
DROP INDEX messages_due;
CREATE INDEX messages_due ON messages (next_attempt_at, id) WHERE status = 'pending';
-- Expired leases (a process died mid-attempt) are found without reading the messages.
CREATE INDEX messages_lease ON messages (lease_until) WHERE status = 'delivering';
