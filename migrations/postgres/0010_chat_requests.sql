-- Chat requests: a direct conversation opened with POST /chat-request waits for its recipient.
-- NULL status: an ordinary conversation. While pending, only the requester may send and the
-- recipient sees it under requests; declined, nobody may send.
ALTER TABLE conversations ADD COLUMN request_status TEXT
    CHECK (request_status IN ('pending', 'accepted', 'declined'));
ALTER TABLE conversations ADD COLUMN requester_id UUID REFERENCES users (id) ON DELETE SET NULL;
-- "My incoming pending requests" and the pending total: conversations with a request status
-- are few, so a partial index keeps those lookups off the rest.
CREATE INDEX conversations_requests ON conversations (request_status, requester_id) WHERE request_status IS NOT NULL;
