-- Refresh tokens that have been rotated away, per session. Presenting one of these again is
-- reuse (the token was copied): the session is revoked. A token that was never issued (a forgery
-- naming a real session) is merely refused, so guessing cannot end other people's sessions.
CREATE TABLE used_refresh_tokens (
    token_hash BLOB PRIMARY KEY,
    session_id BLOB NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    used_at    TEXT NOT NULL
);
CREATE INDEX used_refresh_tokens_by_session ON used_refresh_tokens (session_id);
