//! The address book: each user's own contacts (names, company, emails and phones), seen by
//! nobody else, and which registered user each email or phone belongs to, worked out at every
//! read (so that someone who registers, or changes their email or phone, later is matched, or
//! stops being matched, without anything rewriting the contacts).
//!
//! A contact's identity for its owner is the fingerprint of the entry it was created from
//! (SHA-256 of the normalised fields): sending that entry again finds it instead of making a
//! second contact, which makes imports idempotent.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::sql::push_ids;
use super::tx::{commit_with_events, lock_conversation};
use super::{Dialect, NewEvent, Store, StoreError, StoreResult, with_backend, with_writer};

/// One email or phone of a contact, as the owner gave it, normalised: an email lower-cased, a
/// phone in E.164 (the forms `users.email` and `users.phone` are kept in).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContactValue {
    /// The owner's word for it: `home`, `work`, ...
    pub label: String,
    pub value: String,
}

/// What a contact says, checked and normalised by the HTTP layer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContactDetails {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub company: Option<String>,
    /// In order.
    pub emails: Vec<ContactValue>,
    /// In order.
    pub phones: Vec<ContactValue>,
}

impl ContactDetails {
    /// A first or a last name: what every stored contact has.
    pub fn has_name(&self) -> bool {
        self.first_name.is_some() || self.last_name.is_some()
    }

    /// An email or a phone: what every stored contact has.
    pub fn has_email_or_phone(&self) -> bool {
        !self.emails.is_empty() || !self.phones.is_empty()
    }

    /// The entry's identity for its owner: SHA-256 of its fields in a fixed order, as a JSON
    /// array (so that no two different entries can read the same).
    fn fingerprint(&self) -> Vec<u8> {
        fn values(list: &[ContactValue]) -> Vec<[&str; 2]> {
            list.iter()
                .map(|value| [value.label.as_str(), value.value.as_str()])
                .collect()
        }
        let canonical = serde_json::json!([
            self.first_name,
            self.last_name,
            self.company,
            values(&self.emails),
            values(&self.phones),
        ]);
        Sha256::digest(canonical.to_string().as_bytes()).to_vec()
    }
}

/// What `PATCH /contact/{id}` changes; `None`: unchanged.
#[derive(Clone, Debug, Default)]
pub struct ContactChanges {
    /// `Some(None)` removes it.
    pub first_name: Option<Option<String>>,
    pub last_name: Option<Option<String>>,
    pub company: Option<Option<String>>,
    /// Replaces the list.
    pub emails: Option<Vec<ContactValue>>,
    pub phones: Option<Vec<ContactValue>>,
}

impl ContactChanges {
    /// `current` with these changes made. A new contact is the changes made to an empty one.
    pub fn applied_to(&self, current: &ContactDetails) -> ContactDetails {
        let text =
            |change: &Option<Option<String>>, now: &Option<String>| change.clone().unwrap_or_else(|| now.clone());
        let list =
            |change: &Option<Vec<ContactValue>>, now: &[ContactValue]| change.clone().unwrap_or_else(|| now.to_vec());
        ContactDetails {
            first_name: text(&self.first_name, &current.first_name),
            last_name: text(&self.last_name, &current.last_name),
            company: text(&self.company, &current.company),
            emails: list(&self.emails, &current.emails),
            phones: list(&self.phones, &current.phones),
        }
    }
}

/// An email or phone of a stored contact, with the user it belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatchedContactValue {
    pub label: String,
    pub value: String,
    /// The registered user whose email or phone this is now; `None` when nobody's, when that
    /// account is deleted, or when the owner and that user block each other (either way).
    pub matched_user_id: Option<Uuid>,
}

/// A stored contact, as its owner sees it.
#[derive(Clone, Debug)]
pub struct Contact {
    pub id: Uuid,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub company: Option<String>,
    pub emails: Vec<MatchedContactValue>,
    pub phones: Vec<MatchedContactValue>,
    pub created_at: DateTime<Utc>,
    /// The last change of the contact itself (not of who its values match).
    pub updated_at: DateTime<Utc>,
}

impl Contact {
    fn details(&self) -> ContactDetails {
        let plain = |values: &[MatchedContactValue]| {
            values
                .iter()
                .map(|value| ContactValue {
                    label: value.label.clone(),
                    value: value.value.clone(),
                })
                .collect()
        };
        ContactDetails {
            first_name: self.first_name.clone(),
            last_name: self.last_name.clone(),
            company: self.company.clone(),
            emails: plain(&self.emails),
            phones: plain(&self.phones),
        }
    }
}

/// What saving one entry of [`Store::save_contacts`] did.
#[derive(Clone, Debug)]
pub enum SavedContact {
    Created(Contact),
    /// The owner has a contact made from this same entry already: that one, as it is now.
    Existing(Contact),
    /// The owner has as many contacts as allowed: nothing was written for this entry.
    LimitReached,
}

/// What [`Store::update_contact`] did.
#[derive(Clone, Debug)]
pub enum ContactUpdate {
    /// The contact as now stored (unchanged, and not written, when the change changed nothing).
    Updated(Contact),
    /// The change would leave the contact without a name, or without any email and phone:
    /// nothing was written. What it would have left.
    Incomplete(ContactDetails),
}

/// Where a page of contacts starts: strictly after this in list order (most recently changed
/// first, then by id).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContactCursor {
    pub updated_at: DateTime<Utc>,
    pub id: Uuid,
}

/// One page of an owner's contacts, most recently changed first.
#[derive(Clone, Debug)]
pub struct ContactListing {
    pub owner: Uuid,
    pub limit: u32,
    pub before: Option<ContactCursor>,
    /// Only contacts changed after this.
    pub updated_after: Option<DateTime<Utc>>,
}

/// `contact_values.kind` of an email and of a phone.
const EMAIL: &str = "email";
const PHONE: &str = "phone";

/// Rows per multi-row `INSERT`, well under both backends' limits on bound parameters (SQLite
/// 32,766, PostgreSQL 65,535): contacts bind 8 values a row, contact values 5.
const CONTACT_ROWS_PER_STATEMENT: usize = 500;
const VALUE_ROWS_PER_STATEMENT: usize = 1000;

macro_rules! contact_columns {
    () => {
        "id, first_name, last_name, company, created_at, updated_at"
    };
}

/// The values of contacts (the query appends the list of their ids), each with the user it
/// belongs to: the one whose email (both lower-cased) or phone (both E.164) it is, through the
/// unique indexes on `users.email` and `users.phone`, unless that account is deleted or a block
/// stands between the contact's owner and them, either way. Nothing of the user but the id.
const SELECT_VALUES_WITH_MATCHES: &str = "SELECT cv.contact_id, cv.kind, cv.label, cv.value,
        COALESCE(by_email.id, by_phone.id) AS matched_user_id
     FROM contact_values cv
     JOIN contacts c ON c.id = cv.contact_id
     LEFT JOIN users by_email ON cv.kind = 'email' AND by_email.email = cv.value
       AND by_email.deleted_at IS NULL
       AND NOT EXISTS (SELECT 1 FROM user_blocks b
                       WHERE (b.blocker_id = c.owner_id AND b.blocked_id = by_email.id)
                          OR (b.blocker_id = by_email.id AND b.blocked_id = c.owner_id))
     LEFT JOIN users by_phone ON cv.kind = 'phone' AND by_phone.phone = cv.value
       AND by_phone.deleted_at IS NULL
       AND NOT EXISTS (SELECT 1 FROM user_blocks b
                       WHERE (b.blocker_id = c.owner_id AND b.blocked_id = by_phone.id)
                          OR (b.blocker_id = by_phone.id AND b.blocked_id = c.owner_id))
     WHERE cv.contact_id IN ";

#[derive(sqlx::FromRow)]
struct ContactRow {
    id: Uuid,
    first_name: Option<String>,
    last_name: Option<String>,
    company: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct ValueRow {
    contact_id: Uuid,
    kind: String,
    label: String,
    value: String,
    matched_user_id: Option<Uuid>,
}

/// The contacts of `$rows` (a `Vec<ContactRow>`, in the order wanted) with their values and
/// matches, read through `$executor` (a pool, or `&mut *tx`): one query.
macro_rules! with_values {
    ($executor:expr, $rows:expr) => {
        $crate::store::tx::store_body(async {
            let rows: Vec<ContactRow> = $rows;
            if rows.is_empty() {
                return Ok(Vec::new());
            }
            let mut builder = sqlx::QueryBuilder::new(SELECT_VALUES_WITH_MATCHES);
            push_ids(&mut builder, rows.iter().map(|row| row.id));
            builder.push(" ORDER BY cv.contact_id, cv.kind, cv.position");
            let values: Vec<ValueRow> = builder.build_query_as().fetch_all($executor).await?;
            Ok(assemble(rows, values))
        })
        .await
    };
}

/// `$owner`'s contacts among `$ids` (a `&[Uuid]`; callers bound it), in no particular order,
/// read through `$executor`: two queries.
macro_rules! load_contacts {
    ($executor:expr, $owner:expr, $ids:expr) => {
        $crate::store::tx::store_body(async {
            let ids: &[Uuid] = $ids;
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let mut builder = sqlx::QueryBuilder::new(concat!(
                "SELECT ",
                contact_columns!(),
                " FROM contacts WHERE owner_id = "
            ));
            builder.push_bind($owner);
            builder.push(" AND id IN ");
            push_ids(&mut builder, ids.iter().copied());
            let rows: Vec<ContactRow> = builder.build_query_as().fetch_all($executor).await?;
            with_values!($executor, rows)
        })
        .await
    };
}

/// Stores the emails and phones of `$contacts` (a `&[(Uuid, &ContactDetails)]`: contacts
/// inserted in `$tx` without values yet) in as few statements as the parameter limits allow.
macro_rules! insert_values {
    ($tx:ident, $contacts:expr) => {
        $crate::store::tx::store_body(async {
            let contacts: &[(Uuid, &ContactDetails)] = $contacts;
            let mut rows: Vec<(Uuid, &str, i32, &ContactValue)> = Vec::new();
            for (id, details) in contacts {
                for (kind, values) in [(EMAIL, &details.emails), (PHONE, &details.phones)] {
                    for (position, value) in values.iter().enumerate() {
                        rows.push((*id, kind, i32::try_from(position).unwrap_or(i32::MAX), value));
                    }
                }
            }
            for chunk in rows.chunks(VALUE_ROWS_PER_STATEMENT) {
                let mut builder =
                    sqlx::QueryBuilder::new("INSERT INTO contact_values (contact_id, kind, position, label, value) ");
                builder.push_values(chunk, |mut row, (id, kind, position, value)| {
                    row.push_bind(*id)
                        .push_bind(*kind)
                        .push_bind(*position)
                        .push_bind(&value.label)
                        .push_bind(&value.value);
                });
                builder.build().execute(&mut *$tx).await?;
            }
            Ok(())
        })
        .await
    };
}

/// Puts each value on its contact, in the order read (by kind, then position).
fn assemble(rows: Vec<ContactRow>, values: Vec<ValueRow>) -> Vec<Contact> {
    let mut contacts: Vec<Contact> = rows
        .into_iter()
        .map(|row| Contact {
            id: row.id,
            first_name: row.first_name,
            last_name: row.last_name,
            company: row.company,
            emails: Vec::new(),
            phones: Vec::new(),
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
        .collect();
    let position: HashMap<Uuid, usize> = contacts
        .iter()
        .enumerate()
        .map(|(index, contact)| (contact.id, index))
        .collect();
    for value in values {
        let Some(&index) = position.get(&value.contact_id) else {
            continue;
        };
        let matched = MatchedContactValue {
            label: value.label,
            value: value.value,
            matched_user_id: value.matched_user_id,
        };
        if value.kind == EMAIL {
            contacts[index].emails.push(matched);
        } else {
            contacts[index].phones.push(matched);
        }
    }
    contacts
}

/// How [`Store::save_contacts`] handles one entry.
#[derive(Clone, Copy)]
enum Plan {
    Create(Uuid),
    Found(Uuid),
    Full,
}

impl Store {
    /// Saves `entries` for `owner` (callers bound the list), in one transaction: each entry
    /// becomes a new contact, unless `owner` has a contact made from the same entry already
    /// (that one is returned, unchanged; so is the first of an entry given twice), or has
    /// `max_contacts` contacts (`LimitReached`). One outcome per entry, in order. Under a
    /// lock on the owner, so that imports racing each other pass neither the limit nor the
    /// fingerprint check together. A handful of statements whatever the number of entries.
    pub async fn save_contacts(
        &self,
        owner: Uuid,
        entries: &[ContactDetails],
        max_contacts: u32,
        now: DateTime<Utc>,
        events: impl Fn(&[&Contact]) -> Vec<NewEvent>,
    ) -> StoreResult<Vec<SavedContact>> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let fingerprints: Vec<Vec<u8>> = entries.iter().map(ContactDetails::fingerprint).collect();
        with_writer!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            // The conversation lock's mechanism, keyed by the owner: ids never collide.
            lock_conversation!(tx, pool, owner)?;
            let mut builder = sqlx::QueryBuilder::new("SELECT fingerprint, id FROM contacts WHERE owner_id = ");
            builder.push_bind(owner);
            builder.push(" AND fingerprint IN (");
            let mut list = builder.separated(", ");
            for fingerprint in &fingerprints {
                list.push_bind(fingerprint.as_slice());
            }
            builder.push(")");
            let found: Vec<(Vec<u8>, Uuid)> = builder.build_query_as().fetch_all(&mut *tx).await?;
            let mut known: HashMap<&[u8], Uuid> = HashMap::with_capacity(found.len() + entries.len());
            for (fingerprint, id) in &found {
                known.insert(fingerprint.as_slice(), *id);
            }
            let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM contacts WHERE owner_id = $1")
                .bind(owner)
                .fetch_one(&mut *tx)
                .await?;
            let mut room = i64::from(max_contacts).saturating_sub(stored);
            let mut plans = Vec::with_capacity(entries.len());
            let mut created: Vec<(Uuid, &ContactDetails, &[u8])> = Vec::new();
            for (entry, fingerprint) in entries.iter().zip(&fingerprints) {
                let plan = match known.get(fingerprint.as_slice()).copied() {
                    Some(id) => Plan::Found(id),
                    None if room > 0 => {
                        let id = Uuid::now_v7();
                        known.insert(fingerprint.as_slice(), id);
                        created.push((id, entry, fingerprint.as_slice()));
                        room -= 1;
                        Plan::Create(id)
                    }
                    None => Plan::Full,
                };
                plans.push(plan);
            }
            for chunk in created.chunks(CONTACT_ROWS_PER_STATEMENT) {
                let mut builder = sqlx::QueryBuilder::new(
                    "INSERT INTO contacts (id, owner_id, first_name, last_name, company, fingerprint, created_at, updated_at) ",
                );
                builder.push_values(chunk, |mut row, (id, entry, fingerprint)| {
                    row.push_bind(*id)
                        .push_bind(owner)
                        .push_bind(&entry.first_name)
                        .push_bind(&entry.last_name)
                        .push_bind(&entry.company)
                        .push_bind(*fingerprint)
                        .push_bind(now)
                        .push_bind(now);
                });
                builder.build().execute(&mut *tx).await?;
            }
            let new_values: Vec<(Uuid, &ContactDetails)> = created.iter().map(|(id, entry, _)| (*id, *entry)).collect();
            insert_values!(tx, &new_values)?;
            let mut ids: Vec<Uuid> = plans
                .iter()
                .filter_map(|plan| match plan {
                    Plan::Create(id) | Plan::Found(id) => Some(*id),
                    Plan::Full => None,
                })
                .collect();
            ids.sort_unstable();
            ids.dedup();
            let contacts: HashMap<Uuid, Contact> = load_contacts!(&mut *tx, owner, &ids)?
                .into_iter()
                .map(|contact| (contact.id, contact))
                .collect();
            let mut saved = Vec::with_capacity(plans.len());
            for plan in plans {
                let outcome = match plan {
                    Plan::Create(id) => contacts.get(&id).cloned().map(SavedContact::Created),
                    // Deletes take the owner's lock too: a contact found above is still there.
                    Plan::Found(id) => contacts.get(&id).cloned().map(SavedContact::Existing),
                    Plan::Full => Some(SavedContact::LimitReached),
                };
                saved.push(outcome.ok_or(StoreError::NotFound("contact"))?);
            }
            let new: Vec<&Contact> = saved
                .iter()
                .filter_map(|outcome| match outcome {
                    SavedContact::Created(contact) => Some(contact),
                    _ => None,
                })
                .collect();
            commit_with_events!(self, tx, events(&new), now)?;
            Ok(saved)
        })
    }

    /// `owner`'s contact `id` (`None` for anyone else's, or an unknown id).
    pub async fn find_contact(&self, owner: Uuid, id: Uuid) -> StoreResult<Option<Contact>> {
        with_backend!(self, |pool| Ok(load_contacts!(pool, owner, &[id])?.pop()))
    }

    /// One page of an owner's contacts: most recently changed first, then by id.
    pub async fn list_contacts(&self, listing: &ContactListing) -> StoreResult<Vec<Contact>> {
        with_backend!(self, |pool| {
            let mut builder = sqlx::QueryBuilder::new(concat!(
                "SELECT ",
                contact_columns!(),
                " FROM contacts WHERE owner_id = "
            ));
            builder.push_bind(listing.owner);
            if let Some(updated_after) = listing.updated_after {
                builder.push(" AND updated_at > ");
                builder.push_bind(updated_after);
            }
            if let Some(cursor) = listing.before {
                builder.push(" AND (updated_at, id) < (");
                builder.push_bind(cursor.updated_at);
                builder.push(", ");
                builder.push_bind(cursor.id);
                builder.push(")");
            }
            builder.push(" ORDER BY updated_at DESC, id DESC LIMIT ");
            builder.push_bind(i64::from(listing.limit));
            let rows: Vec<ContactRow> = builder.build_query_as().fetch_all(pool).await?;
            with_values!(pool, rows)
        })
    }

    /// Applies `changes` to `owner`'s contact `id` in one transaction; `NotFound` for anyone
    /// else's, or an unknown id. The result must keep a name and an email or phone
    /// (`Incomplete` otherwise, nothing written); changing nothing writes nothing. A changed
    /// list replaces the old one. The contact keeps the fingerprint of the entry it was made
    /// from: sending that entry again finds it, edited or not.
    pub async fn update_contact(
        &self,
        owner: Uuid,
        id: Uuid,
        changes: &ContactChanges,
        now: DateTime<Utc>,
        events: impl Fn(&Contact) -> Vec<NewEvent>,
    ) -> StoreResult<ContactUpdate> {
        with_writer!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            // A write first: on PostgreSQL it waits for a concurrent change of this contact
            // to commit, and what is read next includes that change (no lost update).
            let locked: Option<Uuid> = sqlx::query_scalar(
                "UPDATE contacts SET updated_at = updated_at WHERE id = $1 AND owner_id = $2 RETURNING id",
            )
            .bind(id)
            .bind(owner)
            .fetch_optional(&mut *tx)
            .await?;
            if locked.is_none() {
                return Err(StoreError::NotFound("contact"));
            }
            let current = load_contacts!(&mut *tx, owner, &[id])?
                .pop()
                .ok_or(StoreError::NotFound("contact"))?;
            let before = current.details();
            let after = changes.applied_to(&before);
            if after == before {
                return Ok(ContactUpdate::Updated(current));
            }
            if !after.has_name() || !after.has_email_or_phone() {
                return Ok(ContactUpdate::Incomplete(after));
            }
            sqlx::query(
                "UPDATE contacts SET first_name = $3, last_name = $4, company = $5, updated_at = $6
                 WHERE id = $1 AND owner_id = $2",
            )
            .bind(id)
            .bind(owner)
            .bind(&after.first_name)
            .bind(&after.last_name)
            .bind(&after.company)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if after.emails != before.emails || after.phones != before.phones {
                sqlx::query("DELETE FROM contact_values WHERE contact_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                insert_values!(tx, &[(id, &after)])?;
            }
            let updated = load_contacts!(&mut *tx, owner, &[id])?
                .pop()
                .ok_or(StoreError::NotFound("contact"))?;
            commit_with_events!(self, tx, events(&updated), now)?;
            Ok(ContactUpdate::Updated(updated))
        })
    }

    /// Deletes `owner`'s contact `id`; `NotFound` for anyone else's, or an unknown id.
    pub async fn delete_contact(
        &self,
        owner: Uuid,
        id: Uuid,
        now: DateTime<Utc>,
        events: impl Fn() -> Vec<NewEvent>,
    ) -> StoreResult<()> {
        with_writer!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            // As `save_contacts` does: a contact it finds stays until it has answered.
            lock_conversation!(tx, pool, owner)?;
            let deleted = sqlx::query("DELETE FROM contacts WHERE id = $1 AND owner_id = $2")
                .bind(id)
                .bind(owner)
                .execute(&mut *tx)
                .await?;
            if deleted.rows_affected() == 0 {
                return Err(StoreError::NotFound("contact"));
            }
            // Its earlier events showed its emails and phones: they leave the log with it (a
            // stream resuming from before gets the `contact.deleted` alone).
            sqlx::query(
                "DELETE FROM events WHERE user_id = $1 AND kind IN ('contact.created', 'contact.updated')
                   AND payload LIKE $2",
            )
            .bind(owner)
            .bind(format!("%\"_id\":\"{id}\"%"))
            .execute(&mut *tx)
            .await?;
            commit_with_events!(self, tx, events(), now)?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(first_name: &str, phone: &str) -> ContactDetails {
        ContactDetails {
            first_name: Some(first_name.to_string()),
            phones: vec![ContactValue {
                label: "other".into(),
                value: phone.into(),
            }],
            ..ContactDetails::default()
        }
    }

    #[test]
    fn fingerprints_tell_entries_apart_by_every_field() {
        let ana = entry("Ana", "+442079460958");
        assert_eq!(ana.fingerprint(), ana.clone().fingerprint());
        assert_eq!(ana.fingerprint().len(), 32);
        assert_ne!(ana.fingerprint(), entry("Ana", "+14155552671").fingerprint());
        let as_last_name = ContactDetails {
            first_name: None,
            last_name: Some("Ana".into()),
            ..ana.clone()
        };
        assert_ne!(ana.fingerprint(), as_last_name.fingerprint());
        let as_email = ContactDetails {
            emails: ana.phones.clone(),
            phones: Vec::new(),
            ..ana.clone()
        };
        assert_ne!(ana.fingerprint(), as_email.fingerprint());
    }

    #[test]
    fn changes_replace_what_they_name_and_keep_the_rest() {
        let ana = entry("Ana", "+442079460958");
        let changes = ContactChanges {
            first_name: Some(None),
            last_name: Some(Some("Lima".into())),
            emails: Some(ana.phones.clone()),
            ..ContactChanges::default()
        };
        let changed = changes.applied_to(&ana);
        assert_eq!(changed.first_name, None);
        assert_eq!(changed.last_name.as_deref(), Some("Lima"));
        assert_eq!(changed.phones, ana.phones, "absent: unchanged");
        assert_eq!(changed.emails, ana.phones, "given: replaced");
        assert!(changed.has_name() && changed.has_email_or_phone());
        assert!(!ContactDetails::default().has_name());
        assert!(!ContactDetails::default().has_email_or_phone());
    }
}
