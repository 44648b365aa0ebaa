-- Chat requests mean consent (issue 9). Twin: migrations/sqlite/0015_chat_request_consent.sql.
--
-- When the recipient answered: a decline holds for the pair for CHAT_REQUEST_COOLDOWN_DAYS from
-- here (NULL on requests declined before this migration: their creation time counts).
ALTER TABLE conversations ADD COLUMN request_answered_at TIMESTAMPTZ;
-- `last_seq` when the request was (re)opened: while pending only the requester sends, so
-- `last_seq - request_from_seq` is how many messages they sent (CHAT_REQUEST_MAX_MESSAGES).
ALTER TABLE conversations ADD COLUMN request_from_seq BIGINT NOT NULL DEFAULT 0;
