-- Message edits (the sender's; NULL: never edited) and per-user stars.
ALTER TABLE messages ADD COLUMN edited_at TIMESTAMPTZ;

CREATE TABLE starred_messages (
    user_id    UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    message_id UUID NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    starred_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, message_id)
);
-- "My starred messages, most recently starred first", by keyset.
CREATE INDEX starred_messages_by_time ON starred_messages (user_id, starred_at, message_id);
