-- Message search: a full-text vector kept by PostgreSQL itself ('simple': lower-cased words,
-- no stemming, so both backends match the same words), and a GIN index over it. A tombstone's
-- content is empty, so deleted messages are never found.
ALTER TABLE messages ADD COLUMN search_vector tsvector
    GENERATED ALWAYS AS (to_tsvector('simple', content)) STORED;
CREATE INDEX messages_search ON messages USING gin (search_vector);
