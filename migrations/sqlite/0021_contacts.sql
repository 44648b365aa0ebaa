-- The address book (issue 11). Twin: migrations/postgres/0021_contacts.sql.

-- A user's own contacts, seen by nobody else; they go with their owner. Names and company are
-- NULL when not given (a contact has a first or a last name, checked by the service).
CREATE TABLE contacts (
    id          BLOB PRIMARY KEY,
    owner_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    first_name  TEXT,
    last_name   TEXT,
    company     TEXT,
    -- SHA-256 of the entry as first sent, normalised: sending the same entry again finds this
    -- contact instead of making a second one (batch imports are idempotent).
    fingerprint BLOB NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    UNIQUE (owner_id, fingerprint)
);
-- An owner's contacts, most recently changed first (the list, its cursor and updatedAfter).
CREATE INDEX contacts_by_owner_updated ON contacts (owner_id, updated_at, id);

-- A contact's emails and phones, in order, normalised as users' are (emails lower-cased, phones
-- in E.164) so that they compare with users.email and users.phone through those columns'
-- unique indexes: who a value belongs to is worked out at each read, never stored.
CREATE TABLE contact_values (
    contact_id BLOB NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    kind       TEXT NOT NULL CHECK (kind IN ('email', 'phone')),
    position   INTEGER NOT NULL,
    -- The client's word for it ("home", "work"; "other" when none was given).
    label      TEXT NOT NULL,
    value      TEXT NOT NULL,
    PRIMARY KEY (contact_id, kind, position)
);
