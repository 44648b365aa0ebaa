-- Foundation: users, sessions, conversations, participants, messages.
-- The PostgreSQL twin of this file is migrations/postgres/0001_foundation.sql: same tables, same
-- columns, same indexes; only the column types differ, and user search has no trigram index
-- here (a 'contains' search reads the users table; PostgreSQL is the backend for large sites).

CREATE TABLE users (
    id            BLOB PRIMARY KEY,
    name          TEXT NOT NULL,
    -- lower-cased name, written by the service, for case-insensitive search
    search_name   TEXT NOT NULL,
    -- lower-cased by the service: emails compare case-insensitively
    email         TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
CREATE INDEX users_by_search_name ON users (search_name, id);

-- One row per login: a refresh token family. Revoking it ends its refresh and access tokens.
CREATE TABLE sessions (
    id                 BLOB PRIMARY KEY,
    user_id            BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    device_id          TEXT,
    -- SHA-256 of the current refresh token; the token itself is never stored
    refresh_token_hash BLOB NOT NULL,
    created_at         TEXT NOT NULL,
    refreshed_at       TEXT NOT NULL,
    expires_at         TEXT NOT NULL,
    revoked_at         TEXT
);
CREATE INDEX sessions_by_user ON sessions (user_id);

CREATE TABLE conversations (
    id              BLOB PRIMARY KEY,
    kind            TEXT NOT NULL CHECK (kind IN ('direct', 'group')),
    name            TEXT,
    owner_id        BLOB REFERENCES users (id) ON DELETE SET NULL,
    -- '<smaller user id>:<larger user id>' for direct conversations: one per pair, enforced here
    direct_key      TEXT UNIQUE,
    -- number of messages ever sent; each message's seq is its position
    last_seq        INTEGER NOT NULL DEFAULT 0,
    last_message_id BLOB,
    created_at      TEXT NOT NULL,
    -- last activity: creation or last message
    updated_at      TEXT NOT NULL
);

CREATE TABLE participants (
    conversation_id BLOB NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    user_id         BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role            TEXT NOT NULL DEFAULT 'member' CHECK (role IN ('owner', 'admin', 'member')),
    joined_at       TEXT NOT NULL,
    -- seq of the last message this participant has read; unread = last_seq - last_read_seq
    last_read_seq   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (conversation_id, user_id)
);
CREATE INDEX participants_by_user ON participants (user_id, conversation_id);

CREATE TABLE messages (
    id              BLOB PRIMARY KEY,
    conversation_id BLOB NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq             INTEGER NOT NULL,
    sender_id       BLOB NOT NULL REFERENCES users (id),
    content         TEXT NOT NULL,
    -- the sender's idempotency key: a retried send with the same key returns the stored message
    client_id       TEXT,
    created_at      TEXT NOT NULL,
    UNIQUE (conversation_id, seq)
);
CREATE UNIQUE INDEX messages_by_client_id ON messages (conversation_id, sender_id, client_id)
    WHERE client_id IS NOT NULL;
