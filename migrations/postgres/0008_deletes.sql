-- Deleting messages. For everyone: the row stays as a tombstone (deleted_at set, text and
-- custom data gone) so positions, replies and read receipts keep their meaning. For oneself:
-- a row here hides the message from that user only.
ALTER TABLE messages ADD COLUMN deleted_at TIMESTAMPTZ;
-- Unread counts subtract the tombstones after a read position: an index of the few there are.
CREATE INDEX messages_deleted_by_seq ON messages (conversation_id, seq) WHERE deleted_at IS NOT NULL;

CREATE TABLE hidden_messages (
    user_id         UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    message_id      UUID NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    conversation_id UUID NOT NULL,
    seq             BIGINT NOT NULL,
    PRIMARY KEY (user_id, message_id)
);
CREATE INDEX hidden_messages_by_seq ON hidden_messages (user_id, conversation_id, seq);
