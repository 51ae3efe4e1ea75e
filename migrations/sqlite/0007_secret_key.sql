-- The fingerprint of the key that seals this database's secrets (integration signing
-- secrets, chat URLs): a process started with another key refuses to start.
CREATE TABLE secret_key_check (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    fingerprint  TEXT NOT NULL,
    created_at   INTEGER NOT NULL
);
