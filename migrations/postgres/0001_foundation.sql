-- Foundation: users, sessions, conversations, participants, messages.
-- The SQLite twin of this file is migrations/sqlite/0001_foundation.sql: same tables, same
-- columns, same indexes; only the column types differ.

-- Trigram indexes make "name or email contains" searches index lookups instead of scans.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE users (
    id            UUID PRIMARY KEY,
    name          TEXT NOT NULL,
    -- lower-cased name, written by the service, for case-insensitive search
    search_name   TEXT NOT NULL,
    -- lower-cased by the service: emails compare case-insensitively
    email         TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX users_search_name_trgm ON users USING gin (search_name gin_trgm_ops);
CREATE INDEX users_email_trgm ON users USING gin (email gin_trgm_ops);
CREATE INDEX users_by_search_name ON users (search_name, id);

-- One row per login: a refresh token family. Revoking it ends its refresh and access tokens.
CREATE TABLE sessions (
    id                 UUID PRIMARY KEY,
    user_id            UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    device_id          TEXT,
    -- SHA-256 of the current refresh token; the token itself is never stored
    refresh_token_hash BYTEA NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL,
    refreshed_at       TIMESTAMPTZ NOT NULL,
    expires_at         TIMESTAMPTZ NOT NULL,
    revoked_at         TIMESTAMPTZ
);
CREATE INDEX sessions_by_user ON sessions (user_id);

CREATE TABLE conversations (
    id              UUID PRIMARY KEY,
    kind            TEXT NOT NULL CHECK (kind IN ('direct', 'group')),
    name            TEXT,
    owner_id        UUID REFERENCES users (id) ON DELETE SET NULL,
    -- '<smaller user id>:<larger user id>' for direct conversations: one per pair, enforced here
    direct_key      TEXT UNIQUE,
    -- number of messages ever sent; each message's seq is its position
    last_seq        BIGINT NOT NULL DEFAULT 0,
    last_message_id UUID,
    created_at      TIMESTAMPTZ NOT NULL,
    -- last activity: creation or last message
    updated_at      TIMESTAMPTZ NOT NULL
);

CREATE TABLE participants (
    conversation_id UUID NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    user_id         UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role            TEXT NOT NULL DEFAULT 'member' CHECK (role IN ('owner', 'admin', 'member')),
    joined_at       TIMESTAMPTZ NOT NULL,
    -- seq of the last message this participant has read; unread = last_seq - last_read_seq
    last_read_seq   BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (conversation_id, user_id)
);
CREATE INDEX participants_by_user ON participants (user_id, conversation_id);

CREATE TABLE messages (
    id              UUID PRIMARY KEY,
    conversation_id UUID NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq             BIGINT NOT NULL,
    sender_id       UUID NOT NULL REFERENCES users (id),
    content         TEXT NOT NULL,
    -- the sender's idempotency key: a retried send with the same key returns the stored message
    client_id       TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    UNIQUE (conversation_id, seq)
);
CREATE UNIQUE INDEX messages_by_client_id ON messages (conversation_id, sender_id, client_id)
    WHERE client_id IS NOT NULL;
