-- Replies (the message replied to, in the same conversation) and custom data: a JSON object of
-- at most 4 KiB that the service stores and returns untouched, serialised as text.
ALTER TABLE messages ADD COLUMN reply_to UUID REFERENCES messages (id) ON DELETE SET NULL;
ALTER TABLE messages ADD COLUMN x TEXT;
