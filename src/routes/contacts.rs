//! `/api/v1/contact`: the caller's address book (SAMA's contacts).
//!
//! A contact is its owner's alone: anyone else's, like an unknown id, answers 404. Each of its
//! emails and phones says which registered user it belongs to (`matchedUserId`), worked out at
//! every read: someone who registers, or changes their email or phone, later is matched (or
//! stops being matched) at once. Only the user's id is shown, never more of them; a deleted
//! account, or a block between the owner and the user either way, matches nobody.
//!
//! Sending an entry again (to `POST /contact` or in a batch) finds the contact it made instead
//! of making a second one: an entry's identity for its owner is the SHA-256 of its normalised
//! fields, kept in a unique column, so imports can be retried safely.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, delete, get, patch, post, web};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::envelope::{Success, created, ok};
use super::extract::{Alias, FieldAliases, Json, Path, Query};
use crate::auth::AuthUser;
use crate::domain::{Email, Name, Phone, page_limit};
use crate::error::{ApiError, ErrorCode, ErrorEnvelope};
use crate::limits::Action;
use crate::realtime::payloads;
use crate::state::AppState;
use crate::store::{
    self, Contact, ContactChanges, ContactCursor, ContactDetails, ContactListing, ContactUpdate, ContactValue,
    SavedContact,
};
use crate::views::ContactView;

/// Most emails, and most phones, one contact holds.
pub const VALUES_MAX: usize = 10;
/// Most entries one `POST /contact/batch` takes.
pub const BATCH_MAX: usize = 500;
/// Most contacts one user keeps, so that nobody can fill the disk.
pub const CONTACTS_MAX: u32 = 10_000;
/// The longest `type` of an email or phone, in characters.
const LABEL_MAX_CHARS: usize = 30;
/// The `type` of an email or phone given without one.
const DEFAULT_LABEL: &str = "other";

/// Failing fields, each under its name in the request (`phone[2].value`), with what is wrong.
type Problems = Vec<(String, String)>;

#[derive(Serialize, ToSchema)]
pub struct ContactData {
    pub contact: ContactView,
}

impl ContactData {
    fn new(contact: Contact) -> Self {
        Self {
            contact: contact.into(),
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContactsData {
    /// Most recently changed first.
    pub contacts: Vec<ContactView>,
    /// Pass as `before` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContactBatchData {
    /// One per entry, in the order sent: the contact the entry made, or had made before (the
    /// same entry sent again); `null` for an entry listed in `failed`.
    pub contacts: Vec<Option<ContactView>>,
    /// The entries that wrote nothing, by index.
    pub failed: Vec<ContactEntryFailure>,
    /// How many entries made a new contact (the others found theirs, or failed).
    pub created: usize,
}

/// Why one entry of a batch wrote nothing.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContactEntryFailure {
    /// The entry's position in `contacts`, from 0.
    pub index: usize,
    /// `validation_failed`, or `quota_exceeded` when the caller has as many contacts as allowed.
    pub code: ErrorCode,
    #[schema(example = "phone[0].value: is not a valid phone number")]
    pub message: String,
    /// For `validation_failed`: each failing field of the entry and what is wrong with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<BTreeMap<String, String>>,
}

impl ContactEntryFailure {
    fn invalid(index: usize, problems: Problems) -> Self {
        let fields: BTreeMap<String, String> = problems.into_iter().collect();
        let message = crate::error::fields_message(&fields);
        Self {
            index,
            code: ErrorCode::ValidationFailed,
            message,
            fields: Some(fields),
        }
    }

    /// An entry that is not a contact's shape at all (not an object, a number for a name...),
    /// in serde's words.
    fn malformed(index: usize, message: String) -> Self {
        Self {
            index,
            code: ErrorCode::ValidationFailed,
            message,
            fields: None,
        }
    }

    fn address_book_full(index: usize) -> Self {
        Self {
            index,
            code: ErrorCode::QuotaExceeded,
            message: address_book_full_message(),
            fields: None,
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContactDeletedData {
    pub contact_id: Uuid,
}

/// A contact's fields. To create one: a first or a last name, and at least one email or
/// phone. To change one: absent fields stay as they are, `null` (or an empty text) removes a
/// name or the company, and a list replaces the old one (`null` or `[]` empties it), as long
/// as the contact keeps a name and an email or phone.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContactRequest {
    /// At most 100 characters, trimmed. Alias: `first_name`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, example = "Ana")]
    pub first_name: Option<Option<String>>,
    /// At most 100 characters, trimmed. Alias: `last_name`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, example = "Lima")]
    pub last_name: Option<Option<String>>,
    /// At most 100 characters, trimmed.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, example = "Atelier Lima")]
    pub company: Option<Option<String>>,
    /// At most 10 email addresses (kept lower-cased).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<ContactValueRequest>>)]
    pub email: Option<Option<Vec<ContactValueRequest>>>,
    /// At most 10 phone numbers in international form (`+` and the country code), kept in
    /// E.164.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<ContactValueRequest>>)]
    pub phone: Option<Option<Vec<ContactValueRequest>>>,
}

impl FieldAliases for ContactRequest {
    const ALIASES: &'static [Alias] = &[
        Alias::new("firstName", "first_name"),
        Alias::new("lastName", "last_name"),
    ];
}

/// One email or phone, as sent.
#[derive(Deserialize, ToSchema)]
pub struct ContactValueRequest {
    /// 1 to 30 characters (`home`, `work`, `mobile`...); `other` when absent.
    #[serde(rename = "type")]
    #[schema(example = "mobile")]
    pub label: Option<String>,
    #[schema(example = "+351 912 345 678")]
    pub value: String,
}

#[derive(Deserialize, ToSchema)]
pub struct ContactBatchRequest {
    /// 1 to 500 entries, each a contact as `POST /contact` takes it.
    #[schema(value_type = Vec<ContactRequest>)]
    pub contacts: Vec<Value>,
}

impl FieldAliases for ContactBatchRequest {}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ContactListQuery {
    /// Page size: 1 to 100, default 20.
    pub limit: Option<u32>,
    /// `nextCursor` of the previous page.
    pub before: Option<String>,
    /// Only contacts changed after this time (RFC 3339). Alias: `updated_after`.
    #[serde(rename = "updatedAfter", alias = "updated_after")]
    pub updated_after: Option<String>,
}

/// A field that may be `null`: present (`Some(None)` for `null`) or absent (`None`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

impl ContactRequest {
    /// The changes asked for, checked and normalised, with every problem found: a field that
    /// fails is left out of the changes.
    fn parse(self) -> (ContactChanges, Problems) {
        let mut problems = Problems::new();
        let changes = ContactChanges {
            first_name: text(&mut problems, "firstName", self.first_name),
            last_name: text(&mut problems, "lastName", self.last_name),
            company: text(&mut problems, "company", self.company),
            emails: values(&mut problems, "email", self.email, |raw| {
                Email::parse(raw).map(Email::into_inner)
            }),
            phones: values(&mut problems, "phone", self.phone, |raw| {
                Phone::parse(raw).map(Phone::into_inner)
            }),
        };
        (changes, problems)
    }
}

/// A name or the company: `None` unchanged, `Some(None)` none (`null`, or only white space).
/// The rules of a display name: trimmed, at most 100 characters, no control characters.
fn text(problems: &mut Problems, field: &str, given: Option<Option<String>>) -> Option<Option<String>> {
    let Some(raw) = given? else {
        return Some(None);
    };
    if raw.trim().is_empty() {
        return Some(None);
    }
    match Name::parse(&raw) {
        Ok(name) => Some(Some(name.into_inner())),
        Err(problem) => {
            problems.push((field.to_string(), problem));
            None
        }
    }
}

/// A list of emails or phones: `None` unchanged, else the new list (`null`: empty), each value
/// read by `parse`; problems are named `field[index].type` or `field[index].value`.
fn values(
    problems: &mut Problems,
    field: &str,
    given: Option<Option<Vec<ContactValueRequest>>>,
    parse: fn(&str) -> Result<String, String>,
) -> Option<Vec<ContactValue>> {
    let list = given?.unwrap_or_default();
    if list.len() > VALUES_MAX {
        problems.push((field.to_string(), format!("at most {VALUES_MAX} per contact")));
        return None;
    }
    let mut values = Vec::with_capacity(list.len());
    for (index, given) in list.into_iter().enumerate() {
        let label = given
            .label
            .as_deref()
            .map_or_else(|| Ok(DEFAULT_LABEL.to_string()), parse_label);
        match (label, parse(&given.value)) {
            (Ok(label), Ok(value)) => values.push(ContactValue { label, value }),
            (label, value) => {
                if let Err(problem) = label {
                    problems.push((format!("{field}[{index}].type"), problem));
                }
                if let Err(problem) = value {
                    problems.push((format!("{field}[{index}].value"), problem));
                }
            }
        }
    }
    Some(values)
}

/// The `type` of an email or phone: trimmed, 1 to 30 characters, no control characters.
fn parse_label(raw: &str) -> Result<String, String> {
    let trimmed = raw.trim();
    let length = trimmed.chars().count();
    if length == 0 || length > LABEL_MAX_CHARS {
        return Err(format!("must be 1 to {LABEL_MAX_CHARS} characters"));
    }
    if trimmed.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(trimmed.to_string())
}

/// Adds what `details` lacks to `problems`, under the fields that would supply it: a first or
/// a last name; an email or a phone. Not where a field of the same kind failed already (its
/// own problem says what to fix).
fn add_missing(problems: &mut Problems, details: &ContactDetails) {
    let failed = |prefixes: [&str; 2]| {
        problems
            .iter()
            .any(|(field, _)| prefixes.iter().any(|prefix| field.starts_with(prefix)))
    };
    let (name_failed, reach_failed) = (failed(["firstName", "lastName"]), failed(["email", "phone"]));
    if !details.has_name() && !name_failed {
        for field in ["firstName", "lastName"] {
            problems.push((field.to_string(), "a contact needs a first or a last name".to_string()));
        }
    }
    if !details.has_email_or_phone() && !reach_failed {
        for field in ["email", "phone"] {
            problems.push((field.to_string(), "a contact needs an email or a phone".to_string()));
        }
    }
}

/// A new contact from `request`, or every problem with it.
fn new_contact(request: ContactRequest) -> Result<ContactDetails, Problems> {
    let (changes, mut problems) = request.parse();
    let details = changes.applied_to(&ContactDetails::default());
    add_missing(&mut problems, &details);
    if problems.is_empty() {
        Ok(details)
    } else {
        Err(problems)
    }
}

/// Entry `index` of a batch read as `POST /contact` reads its body (its aliases included), or
/// why it cannot be stored.
fn batch_entry(index: usize, mut entry: Value) -> Result<ContactDetails, ContactEntryFailure> {
    // The body's aliases were applied to the batch itself, not inside its entries.
    if let Value::Object(fields) = &mut entry {
        for alias in <ContactRequest as FieldAliases>::ALIASES {
            let Some(given) = fields.remove(alias.name) else {
                continue;
            };
            match fields.get(alias.field) {
                Some(existing) if *existing != given => {
                    let problem = format!(
                        "given as `{}` and as `{}` with different values",
                        alias.field, alias.name
                    );
                    return Err(ContactEntryFailure::invalid(
                        index,
                        vec![(alias.field.to_string(), problem)],
                    ));
                }
                Some(_) => {}
                None => {
                    fields.insert(alias.field.to_string(), given);
                }
            }
        }
    }
    let request: ContactRequest =
        serde_json::from_value(entry).map_err(|error| ContactEntryFailure::malformed(index, error.to_string()))?;
    new_contact(request).map_err(|problems| ContactEntryFailure::invalid(index, problems))
}

fn address_book_full_message() -> String {
    format!("an address book holds at most {CONTACTS_MAX} contacts")
}

fn address_book_full() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        ErrorCode::QuotaExceeded,
        address_book_full_message(),
    )
}

/// Add a contact to the caller's address book.
///
/// A first or a last name, and at least one email or phone; every failing field is listed in
/// one 422 (an email or phone by its place: `phone[2].value`). Emails are kept lower-cased and
/// phones in E.164, and each says which registered user it belongs to (`matchedUserId`).
/// Sending the same entry again answers 200 with the contact it made, as it is now (edited
/// since or not), instead of making a second one. An address book holds at most 10,000
/// contacts (409 `quota_exceeded` past that).
#[utoipa::path(
    post, path = "/api/v1/contact", tag = "contacts",
    security(("bearer" = [])),
    request_body = ContactRequest,
    responses(
        (status = 201, description = "Created", body = Success<ContactData>),
        (status = 200, description = "The contact this same entry made before", body = Success<ContactData>),
        (status = 400, description = "Body is not JSON", body = ErrorEnvelope),
        (status = 401, description = "Missing, invalid or expired access token", body = ErrorEnvelope),
        (status = 409, description = "The caller has 10,000 contacts already (`quota_exceeded`)", body = ErrorEnvelope),
        (status = 422, description = "No name, no email and no phone, or an invalid field (`validation_failed`, every failing field listed)", body = ErrorEnvelope),
        (status = 429, description = "Past the caller's budget (`rate_limited`, with `Retry-After` and `RateLimit`)", body = ErrorEnvelope),
    )
)]
#[post("")]
pub async fn create_contact(
    state: web::Data<AppState>,
    caller: AuthUser,
    body: Json<ContactRequest>,
) -> Result<HttpResponse, ApiError> {
    state.check_rate_limit(Action::Contacts, caller.user_id)?;
    let details = new_contact(body.into_inner()).map_err(ApiError::invalid_fields)?;
    let saved = state
        .store
        .save_contacts(caller.user_id, &[details], CONTACTS_MAX, store::now(), |new| {
            payloads::contacts_changed(caller.user_id, new, true)
        })
        .await?;
    match saved.into_iter().next() {
        Some(SavedContact::Created(contact)) => Ok(created(ContactData::new(contact))),
        Some(SavedContact::Existing(contact)) => Ok(ok(ContactData::new(contact))),
        Some(SavedContact::LimitReached) => Err(address_book_full()),
        None => Err(ApiError::internal("the store saved no contact for the one entry")),
    }
}

/// Add many contacts at once (an import).
///
/// 1 to 500 entries, each as `POST /contact` takes it, in one request and one transaction.
/// Each entry is checked and stored on its own: a bad one (or one past the 10,000 contacts an
/// address book holds) is listed in `failed` with its index and writes nothing, and the others
/// are stored. `contacts` has one place per entry, in order: the contact, or `null` for a
/// failed entry. Sending the same entries again creates nothing new: each finds the contact it
/// made (`created` counts the new ones). The call counts once against the caller's budget,
/// however many entries it holds.
#[utoipa::path(
    post, path = "/api/v1/contact/batch", tag = "contacts",
    security(("bearer" = [])),
    request_body = ContactBatchRequest,
    responses(
        (status = 200, description = "Each entry's contact, and the entries that failed", body = Success<ContactBatchData>),
        (status = 400, description = "Body is not JSON", body = ErrorEnvelope),
        (status = 401, description = "Missing, invalid or expired access token", body = ErrorEnvelope),
        (status = 413, description = "Body larger than `JSON_BODY_LIMIT` (`payload_too_large`)", body = ErrorEnvelope),
        (status = 422, description = "No `contacts`, none, or more than 500 (`validation_failed`)", body = ErrorEnvelope),
        (status = 429, description = "Past the caller's budget (`rate_limited`, with `Retry-After` and `RateLimit`)", body = ErrorEnvelope),
    )
)]
#[post("/batch")]
pub async fn create_contacts(
    state: web::Data<AppState>,
    caller: AuthUser,
    body: Json<ContactBatchRequest>,
) -> Result<HttpResponse, ApiError> {
    state.check_rate_limit(Action::Contacts, caller.user_id)?;
    let entries = body.into_inner().contacts;
    if entries.is_empty() || entries.len() > BATCH_MAX {
        return Err(ApiError::invalid_field(
            "contacts",
            format!("must hold 1 to {BATCH_MAX} entries"),
        ));
    }
    let count = entries.len();
    let mut failed = Vec::new();
    let (mut valid, mut valid_at) = (Vec::with_capacity(count), Vec::with_capacity(count));
    for (index, entry) in entries.into_iter().enumerate() {
        match batch_entry(index, entry) {
            Ok(details) => {
                valid.push(details);
                valid_at.push(index);
            }
            Err(failure) => failed.push(failure),
        }
    }
    let saved = state
        .store
        .save_contacts(caller.user_id, &valid, CONTACTS_MAX, store::now(), |new| {
            payloads::contacts_changed(caller.user_id, new, true)
        })
        .await?;
    let mut contacts: Vec<Option<ContactView>> = std::iter::repeat_with(|| None).take(count).collect();
    let mut created_count = 0;
    for (index, outcome) in valid_at.into_iter().zip(saved) {
        match outcome {
            SavedContact::Created(contact) => {
                created_count += 1;
                contacts[index] = Some(contact.into());
            }
            SavedContact::Existing(contact) => contacts[index] = Some(contact.into()),
            SavedContact::LimitReached => failed.push(ContactEntryFailure::address_book_full(index)),
        }
    }
    failed.sort_by_key(|failure| failure.index);
    Ok(ok(ContactBatchData {
        contacts,
        failed,
        created: created_count,
    }))
}

/// The caller's contacts.
///
/// Most recently changed first (then by id); cursor-paginated with `limit` and `before`.
/// `updatedAfter` keeps only contacts created or changed after that time (for a client that
/// syncs: a match that appears or goes is not a change of the contact, and deleted contacts are
/// simply absent).
#[utoipa::path(
    get, path = "/api/v1/contact", tag = "contacts",
    security(("bearer" = [])),
    params(ContactListQuery),
    responses(
        (status = 200, description = "A page of contacts", body = Success<ContactsData>),
        (status = 400, description = "Malformed query string", body = ErrorEnvelope),
        (status = 401, description = "Missing, invalid or expired access token", body = ErrorEnvelope),
        (status = 422, description = "`limit` out of range, a `before` that is not a cursor of this list, or an `updatedAfter` that is not an RFC 3339 time (`validation_failed`)", body = ErrorEnvelope),
    )
)]
#[get("")]
pub async fn list_contacts(
    state: web::Data<AppState>,
    caller: AuthUser,
    query: Query<ContactListQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let limit = page_limit(query.limit, 20, 100).map_err(|problem| ApiError::invalid_field("limit", problem))?;
    let before = query.before.as_deref().map(decode_cursor).transpose()?;
    let updated_after = query
        .updated_after
        .as_deref()
        .map(|raw| super::rfc3339_time("updatedAfter", raw))
        .transpose()?;
    let mut contacts = state
        .store
        .list_contacts(&ContactListing {
            owner: caller.user_id,
            limit: limit + 1,
            before,
            updated_after,
        })
        .await?;
    let next_cursor = super::next_page(&mut contacts, limit, |contact| {
        encode_cursor(ContactCursor {
            updated_at: contact.updated_at,
            id: contact.id,
        })
    });
    Ok(ok(ContactsData {
        contacts: contacts.into_iter().map(ContactView::from).collect(),
        next_cursor,
    }))
}

/// One of the caller's contacts.
#[utoipa::path(
    get, path = "/api/v1/contact/{id}", tag = "contacts",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The contact's id")),
    responses(
        (status = 200, description = "The contact", body = Success<ContactData>),
        (status = 400, description = "The id is not a UUID", body = ErrorEnvelope),
        (status = 401, description = "Missing, invalid or expired access token", body = ErrorEnvelope),
        (status = 404, description = "No such contact of the caller's", body = ErrorEnvelope),
        (status = 422, description = "The id holds U+0000 (`validation_failed`)", body = ErrorEnvelope),
    )
)]
#[get("/{id}")]
pub async fn get_contact(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let contact = state
        .store
        .find_contact(caller.user_id, id.into_inner())
        .await?
        .ok_or_else(|| ApiError::not_found("contact"))?;
    Ok(ok(ContactData::new(contact)))
}

/// Change one of the caller's contacts.
///
/// The fields of `POST /contact`: absent ones stay, `null` removes a name or the company, and
/// `email` or `phone` replaces that whole list. The contact must keep a first or a last name
/// and an email or phone (422 otherwise, nothing changed). A change that changes nothing
/// writes nothing (`updatedAt` stays). The contact is still the one its first entry finds.
#[utoipa::path(
    patch, path = "/api/v1/contact/{id}", tag = "contacts",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The contact's id")),
    request_body = ContactRequest,
    responses(
        (status = 200, description = "The contact now", body = Success<ContactData>),
        (status = 400, description = "Malformed id, or body is not JSON", body = ErrorEnvelope),
        (status = 401, description = "Missing, invalid or expired access token", body = ErrorEnvelope),
        (status = 404, description = "No such contact of the caller's", body = ErrorEnvelope),
        (status = 422, description = "An invalid field, or a result without a name or without any email and phone (`validation_failed`, every failing field listed)", body = ErrorEnvelope),
        (status = 429, description = "Past the caller's budget (`rate_limited`, with `Retry-After` and `RateLimit`)", body = ErrorEnvelope),
    )
)]
#[patch("/{id}")]
pub async fn update_contact(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: Path<Uuid>,
    body: Json<ContactRequest>,
) -> Result<HttpResponse, ApiError> {
    state.check_rate_limit(Action::Contacts, caller.user_id)?;
    let (changes, problems) = body.into_inner().parse();
    if !problems.is_empty() {
        return Err(ApiError::invalid_fields(problems));
    }
    let update = state
        .store
        .update_contact(caller.user_id, id.into_inner(), &changes, store::now(), |contact| {
            payloads::contacts_changed(caller.user_id, &[contact], false)
        })
        .await?;
    match update {
        ContactUpdate::Updated(contact) => Ok(ok(ContactData::new(contact))),
        ContactUpdate::Incomplete(details) => {
            let mut problems = Problems::new();
            add_missing(&mut problems, &details);
            Err(ApiError::invalid_fields(problems))
        }
    }
}

/// Delete one of the caller's contacts.
#[utoipa::path(
    delete, path = "/api/v1/contact/{id}", tag = "contacts",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The contact's id")),
    responses(
        (status = 200, description = "Deleted", body = Success<ContactDeletedData>),
        (status = 400, description = "Malformed id", body = ErrorEnvelope),
        (status = 401, description = "Missing, invalid or expired access token", body = ErrorEnvelope),
        (status = 404, description = "No such contact of the caller's", body = ErrorEnvelope),
        (status = 422, description = "The id holds U+0000 (`validation_failed`)", body = ErrorEnvelope),
        (status = 429, description = "Past the caller's budget (`rate_limited`, with `Retry-After` and `RateLimit`)", body = ErrorEnvelope),
    )
)]
#[delete("/{id}")]
pub async fn delete_contact(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    state.check_rate_limit(Action::Contacts, caller.user_id)?;
    let id = id.into_inner();
    state
        .store
        .delete_contact(caller.user_id, id, store::now(), || {
            payloads::contact_deleted(caller.user_id, id)
        })
        .await?;
    Ok(ok(ContactDeletedData { contact_id: id }))
}

/// The cursor is opaque to clients: `<updatedAt in µs>_<id>`.
fn encode_cursor(cursor: ContactCursor) -> String {
    format!("{}_{}", cursor.updated_at.timestamp_micros(), cursor.id.simple())
}

fn decode_cursor(raw: &str) -> Result<ContactCursor, ApiError> {
    let invalid = || ApiError::invalid_field("before", "is not a cursor returned by this route");
    let (micros, id) = raw.split_once('_').ok_or_else(invalid)?;
    let updated_at = super::cursor_time(micros).ok_or_else(invalid)?;
    let id = Uuid::try_parse(id).map_err(|_| invalid())?;
    Ok(ContactCursor { updated_at, id })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: Value) -> ContactRequest {
        serde_json::from_value(body).unwrap()
    }

    fn failing_fields(body: Value) -> Vec<String> {
        let mut fields: Vec<String> = new_contact(request(body))
            .unwrap_err()
            .into_iter()
            .map(|(field, _)| field)
            .collect();
        fields.sort();
        fields
    }

    #[test]
    fn entries_are_normalised() {
        let details = new_contact(request(serde_json::json!({
            "firstName": "  Ana ",
            "company": "",
            "email": [{"type": " work ", "value": " Ana@Example.COM "}],
            "phone": [{"value": "+44 20 7946 0958"}],
        })))
        .unwrap();
        assert_eq!(details.first_name.as_deref(), Some("Ana"));
        assert_eq!(details.company, None, "an empty text is none");
        assert_eq!(
            details.emails,
            [ContactValue {
                label: "work".into(),
                value: "ana@example.com".into()
            }]
        );
        assert_eq!(
            details.phones,
            [ContactValue {
                label: "other".into(),
                value: "+442079460958".into()
            }]
        );
    }

    #[test]
    fn every_failing_field_is_named() {
        let phone = |value: &str| serde_json::json!({"value": value});
        let cases = [
            (serde_json::json!({}), vec!["email", "firstName", "lastName", "phone"]),
            (serde_json::json!({"lastName": "Lima"}), vec!["email", "phone"]),
            (
                serde_json::json!({"firstName": "  ", "phone": [phone("+442079460958")]}),
                vec!["firstName", "lastName"],
            ),
            (
                serde_json::json!({
                    "firstName": "Ana",
                    "phone": [phone("+442079460958"), phone("+14155552671"), phone("020 7946 0958")],
                }),
                vec!["phone[2].value"],
            ),
            (
                serde_json::json!({"firstName": "x".repeat(101), "email": [{"type": "", "value": "nope"}]}),
                vec!["email[0].type", "email[0].value", "firstName"],
            ),
            (
                serde_json::json!({"lastName": "Lima", "email": vec![serde_json::json!({"value": "a@example.com"}); 11]}),
                vec!["email"],
            ),
            (
                serde_json::json!({"lastName": "Lima", "company": "c".repeat(101), "phone": [{"type": "t".repeat(31), "value": "+442079460958"}]}),
                vec!["company", "phone[0].type"],
            ),
        ];
        for (body, expected) in cases {
            assert_eq!(failing_fields(body.clone()), expected, "{body}");
        }
    }

    #[test]
    fn batch_entries_take_the_aliases_and_refuse_conflicting_ones() {
        let entry = serde_json::json!({"first_name": "Ana", "phone": [{"value": "+442079460958"}]});
        assert_eq!(batch_entry(0, entry).unwrap().first_name.as_deref(), Some("Ana"));
        let conflicting =
            serde_json::json!({"firstName": "Ana", "first_name": "Bo", "phone": [{"value": "+442079460958"}]});
        let failure = batch_entry(3, conflicting).unwrap_err();
        assert_eq!((failure.index, failure.code), (3, ErrorCode::ValidationFailed));
        assert!(failure.fields.unwrap().contains_key("firstName"));
        let malformed = batch_entry(4, serde_json::json!(42)).unwrap_err();
        assert_eq!((malformed.index, malformed.fields), (4, None));
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let cursor = ContactCursor {
            updated_at: store::now(),
            id: Uuid::now_v7(),
        };
        assert_eq!(decode_cursor(&encode_cursor(cursor)).unwrap(), cursor);
        for garbage in ["", "abc", "12_notauuid", "x_0190a0a0a0a07000800000000000000"] {
            assert_eq!(decode_cursor(garbage).unwrap_err().code(), ErrorCode::ValidationFailed);
        }
    }
}
