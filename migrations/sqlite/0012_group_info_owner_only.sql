-- A group owner may keep renaming and describing the group to themselves (PATCH
-- /conversation/{id} {onlyOwnerCanRename}). Off by default: any member may rename.
ALTER TABLE conversations ADD COLUMN only_owner_renames BOOLEAN NOT NULL DEFAULT 0;
