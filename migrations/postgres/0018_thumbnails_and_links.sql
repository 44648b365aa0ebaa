-- Photos' thumbnails, and messages' URL attachments (issue 10). Twin: migrations/sqlite/0018_thumbnails_and_links.sql.

-- The content type of a photo's thumbnail, stored under `thumbnails/<id>` beside the bytes;
-- NULL: no thumbnail (not a photo, or one that did not decode).
ALTER TABLE files ADD COLUMN thumbnail_type TEXT;

-- The chat-requests API's `imageUrl` and `linkPreviewUrl`: a URL a message points at, kept
-- as given (the server fetches nothing). At most one of each kind per message.
CREATE TABLE message_links (
    message_id UUID NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    kind       TEXT NOT NULL CHECK (kind IN ('image_url', 'link')),
    url        TEXT NOT NULL,
    PRIMARY KEY (message_id, kind)
);
