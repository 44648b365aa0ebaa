-- Per-user organisation of the conversation list: pinned conversations sort first, archived
-- ones leave the default list. NULL: not pinned / not archived.
ALTER TABLE participants ADD COLUMN pinned_at TIMESTAMPTZ;
ALTER TABLE participants ADD COLUMN archived_at TIMESTAMPTZ;
