-- Push notifications (issue 12). Twin: migrations/postgres/0022_push.sql.

-- A device or browser that receives pushes for its user. It belongs to the login session that
-- registered it: ending the session (logout, revocation, account deletion) removes it.
CREATE TABLE push_subscriptions (
    id             BLOB PRIMARY KEY,
    user_id        BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_id     BLOB NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    platform       TEXT NOT NULL CHECK (platform IN ('web', 'ios', 'android')),
    -- Web Push (platform 'web'): the push service URL and the browser's keys
    web_endpoint   TEXT,
    web_key_auth   TEXT,
    web_key_p256dh TEXT,
    -- FCM registration token (platforms 'ios' and 'android')
    device_token   TEXT,
    device_udid    TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    UNIQUE (user_id, device_udid)
);
CREATE INDEX push_subscriptions_by_session ON push_subscriptions (session_id);
-- One device, one user: registering a token or endpoint removes other users' rows of it (a
-- shared or resold device must not keep receiving its earlier user's messages).
CREATE INDEX push_subscriptions_by_token ON push_subscriptions (device_token);
CREATE INDEX push_subscriptions_by_endpoint ON push_subscriptions (web_endpoint);

-- POST /conversation/{id}/mute: muted since muted_at (NULL: not muted), until muted_until
-- (NULL: until unmuted).
ALTER TABLE participants ADD COLUMN muted_at TEXT;
ALTER TABLE participants ADD COLUMN muted_until TEXT;

-- The push worker's place in the event log and its lease: one instance at a time holds it
-- (holder) until lease_until, renewing it while alive. The position is NULL until the first
-- worker starts, which begins at the head of the log (no pushes for history).
CREATE TABLE push_worker (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    position_tx INTEGER,
    position_id INTEGER,
    holder      BLOB,
    lease_until TEXT
);
INSERT INTO push_worker (id) VALUES (1);

-- Pushes decided and not yet sent: written in the transaction that moves the worker's
-- position, removed once the push service took them (or gave up on them). The id is the
-- push's stable id, the same on every retry.
CREATE TABLE push_outbox (
    id              BLOB PRIMARY KEY,
    subscription_id BLOB NOT NULL REFERENCES push_subscriptions (id) ON DELETE CASCADE,
    -- the new message it announces (NULL for POST /push/event): deleted since, it is not sent
    message_id      BLOB,
    -- the JSON payload, and the Topic (collapse key) of its conversation
    payload         TEXT NOT NULL,
    topic           TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    due_at          TEXT NOT NULL,
    created_at      TEXT NOT NULL
);
CREATE INDEX push_outbox_by_due ON push_outbox (due_at);
CREATE INDEX push_outbox_by_subscription ON push_outbox (subscription_id);
