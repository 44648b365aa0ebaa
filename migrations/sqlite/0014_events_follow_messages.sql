-- Events never outlive what they show (issue 9). Twin: migrations/postgres/0014_events_follow_messages.sql.
--
-- An event that shows a message (message.created/updated: the message; conversation events:
-- the latest message) records its id, and the id of the message it quotes. When a message is
-- edited or deleted for everyone, the events that show or quote it are rewritten in the same
-- transaction, so no read of the log (replay, GET /events) returns the old text.
ALTER TABLE events ADD COLUMN message_id BLOB;
ALTER TABLE events ADD COLUMN quoted_id BLOB;
CREATE INDEX events_by_message ON events (message_id) WHERE message_id IS NOT NULL;
CREATE INDEX events_by_quoted ON events (quoted_id) WHERE quoted_id IS NOT NULL;

-- Where in the log a participant joined: they read a conversation's events after it only, not
-- the group's past. (0, 0) for everyone who was there from the start.
ALTER TABLE participants ADD COLUMN joined_tx BIGINT NOT NULL DEFAULT 0;
ALTER TABLE participants ADD COLUMN joined_id BIGINT NOT NULL DEFAULT 0;
