-- Real-time delivery: the event log, stream tickets, presence.
-- Twin: migrations/postgres/0002_events.sql.

-- Every event a stream delivers (but the ephemeral ones: typing, presence). An event goes to
-- the participants of `conversation_id`, or to `user_id` alone.
--
-- Position: (tx_id, id), as on PostgreSQL. SQLite has one writer at a time, so ids become
-- visible in the order they are handed out and tx_id is always 0: the position is the id.
CREATE TABLE events (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    tx_id           INTEGER NOT NULL DEFAULT 0,
    kind            TEXT NOT NULL,
    conversation_id BLOB,
    user_id         BLOB,
    payload         TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    CHECK ((conversation_id IS NULL) <> (user_id IS NULL))
);
CREATE INDEX events_by_position ON events (tx_id, id);
CREATE INDEX events_by_conversation ON events (conversation_id, tx_id, id) WHERE conversation_id IS NOT NULL;
CREATE INDEX events_by_user ON events (user_id, tx_id, id) WHERE user_id IS NOT NULL;
CREATE INDEX events_by_time ON events (created_at);

-- Up to which position events have been pruned (retention): older resume positions get a reset.
CREATE TABLE event_log_state (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    pruned_tx  INTEGER NOT NULL,
    pruned_id  INTEGER NOT NULL
);
INSERT INTO event_log_state (id, pruned_tx, pruned_id) VALUES (1, 0, 0);

-- Short-lived, single-use tickets for EventSource, which cannot send an Authorization header.
CREATE TABLE stream_tickets (
    ticket_hash BLOB PRIMARY KEY,
    user_id     BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_id  BLOB NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    expires_at  TEXT NOT NULL,
    used_at     TEXT
);
CREATE INDEX stream_tickets_by_expiry ON stream_tickets (expires_at);

-- Presence: a row while an instance holds at least one stream of the user. An instance whose
-- heartbeat is old is dead, and its rows no longer count.
CREATE TABLE instances (
    id           BLOB PRIMARY KEY,
    heartbeat_at TEXT NOT NULL
);
CREATE TABLE presence (
    user_id     BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    instance_id BLOB NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, instance_id)
);

ALTER TABLE users ADD COLUMN last_active_at TEXT;
