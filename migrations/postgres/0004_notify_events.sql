-- Announce committed events to every instance (LISTEN chat_events) from the database itself:
-- one NOTIFY per transaction that appended events, delivered at its commit (and only if it
-- commits), without a round trip of its own. The payload is the transaction id, which tells a
-- listener how far its reading must get. Identical notifications within a transaction fold.
CREATE FUNCTION announce_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('chat_events', pg_current_xact_id()::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER events_announce AFTER INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION announce_events();
