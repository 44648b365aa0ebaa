-- Profiles (issue 11). Twin: migrations/postgres/0019_profiles.sql.

-- What a user says about themselves; empty: nothing.
ALTER TABLE users ADD COLUMN about TEXT NOT NULL DEFAULT '';
-- In E.164 (`+442079460958`), unique like the email; NULL: none given.
ALTER TABLE users ADD COLUMN phone TEXT;
CREATE UNIQUE INDEX users_phone ON users (phone);
-- "Changed since" lists of users (search's updatedAfter).
CREATE INDEX users_updated ON users (updated_at);
