-- Real-time delivery: the event log, stream tickets, presence.
-- Twin: migrations/sqlite/0002_events.sql.

-- Every event a stream delivers (but the ephemeral ones: typing, presence). An event goes to
-- the participants of `conversation_id`, or to `user_id` alone.
--
-- Position: (tx_id, id). `id` comes from a sequence, and sequence values do not become visible
-- in the order they are handed out: two transactions can commit 101 before 100, and a reader
-- that has passed 101 would never see 100. So readers only read events whose transaction id
-- is below the oldest transaction still running (pg_snapshot_xmin): every transaction below
-- that mark has ended, so nothing can appear there later. Ordering by (tx_id, id) below the
-- mark gives every reader the same, final order.
CREATE TABLE events (
    id              BIGSERIAL PRIMARY KEY,
    tx_id           BIGINT NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
    kind            TEXT NOT NULL,
    conversation_id UUID,
    user_id         UUID,
    payload         TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    CHECK ((conversation_id IS NULL) <> (user_id IS NULL))
);
CREATE INDEX events_by_position ON events (tx_id, id);
CREATE INDEX events_by_conversation ON events (conversation_id, tx_id, id) WHERE conversation_id IS NOT NULL;
CREATE INDEX events_by_user ON events (user_id, tx_id, id) WHERE user_id IS NOT NULL;
CREATE INDEX events_by_time ON events (created_at);

-- Up to which position events have been pruned (retention): older resume positions get a reset.
CREATE TABLE event_log_state (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    pruned_tx  BIGINT NOT NULL,
    pruned_id  BIGINT NOT NULL
);
INSERT INTO event_log_state (id, pruned_tx, pruned_id) VALUES (1, 0, 0);

-- Short-lived, single-use tickets for EventSource, which cannot send an Authorization header.
CREATE TABLE stream_tickets (
    ticket_hash BYTEA PRIMARY KEY,
    user_id     UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_id  UUID NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    expires_at  TIMESTAMPTZ NOT NULL,
    used_at     TIMESTAMPTZ
);
CREATE INDEX stream_tickets_by_expiry ON stream_tickets (expires_at);

-- Presence: a row while an instance holds at least one stream of the user. An instance whose
-- heartbeat is old is dead, and its rows no longer count.
CREATE TABLE instances (
    id           UUID PRIMARY KEY,
    heartbeat_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE presence (
    user_id     UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    instance_id UUID NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, instance_id)
);

ALTER TABLE users ADD COLUMN last_active_at TIMESTAMPTZ;
