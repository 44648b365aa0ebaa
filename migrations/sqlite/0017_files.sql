-- Uploaded files (issue 10). Twin: migrations/postgres/0017_files.sql.
--
-- The bytes live in the file store (a local folder or S3) under `files/<id>`; this is what the
-- API knows of them. `ready`: the bytes are complete and checked (the only state so far; the
-- two-step upload will add `pending`).
CREATE TABLE files (
    id           BLOB PRIMARY KEY,
    owner_id     BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- For display only, sanitised: no folders, no control characters, at most 255 bytes.
    name         TEXT NOT NULL,
    size         BIGINT NOT NULL,
    -- Sniffed from the bytes, never the client's say.
    content_type TEXT NOT NULL,
    width        INTEGER,
    height       INTEGER,
    state        TEXT NOT NULL DEFAULT 'ready' CHECK (state IN ('pending', 'ready')),
    created_at   TEXT NOT NULL
);
-- A user's uploads, newest first (quota, orphan cleanup).
CREATE INDEX files_by_owner ON files (owner_id, created_at);

-- The files a message carries, in order.
CREATE TABLE message_files (
    message_id BLOB NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    file_id    BLOB NOT NULL REFERENCES files (id) ON DELETE CASCADE,
    position   INTEGER NOT NULL,
    PRIMARY KEY (message_id, file_id)
);
-- "Which messages carry this file": who may download it.
CREATE INDEX message_files_by_file ON message_files (file_id);
