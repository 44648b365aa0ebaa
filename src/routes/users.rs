//! `/api/v1/user`: the caller, other users, search.

use actix_web::{HttpResponse, delete, get, patch, post, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::envelope::{Success, ok, ok_signed};
use super::extract::{Alias, FieldAliases, Json, Path, Query};
use super::{collect_fields, field};
use crate::auth::AuthUser;
use crate::domain::{About, Email, MessagePolicy, Name, Password, Phone, page_limit};
use crate::error::{ApiError, ErrorEnvelope};
use crate::limits::Action;
use crate::realtime::{payloads, presence};
use crate::state::AppState;
use crate::store::{self, ProfileChanges, UserSearch};
use crate::views::UserView;

#[derive(Serialize, ToSchema)]
pub struct UserData {
    pub user: UserView,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProfileData {
    pub user: UserView,
    /// `"online"`, the seconds since last seen, or `null`: never seen, or not someone the
    /// caller has an active conversation with (presence is shared only with contacts).
    #[schema(value_type = Option<Object>, example = json!("online"))]
    pub last_activity: serde_json::Value,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsersData {
    pub users: Vec<UserView>,
    /// Pass as `before` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserSearchQuery {
    /// At least 2 characters, matched anywhere in the name, or as the whole email address,
    /// case-insensitively. Empty: the people the caller has conversations with.
    pub keyword: Option<String>,
    /// Page size: 1 to 100, default 20.
    pub limit: Option<u32>,
    /// `nextCursor` of the previous page.
    pub before: Option<Uuid>,
    /// Comma-separated ids to leave out (at most 100). Alias: `ignore_ids`.
    #[serde(rename = "ignoreIds", alias = "ignore_ids")]
    pub ignore_ids: Option<String>,
    /// Only users whose profile changed after this time (RFC 3339). Alias: `updated_after`.
    #[serde(rename = "updatedAfter", alias = "updated_after")]
    pub updated_after: Option<String>,
}

/// The caller's own profile.
#[utoipa::path(
    get, path = "/api/v1/user/getme", tag = "users",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller", body = Success<UserData>),
        (status = 401, description = "Missing, invalid or expired access token", body = ErrorEnvelope),
    )
)]
#[get("/getme")]
pub async fn get_me(state: web::Data<AppState>, caller: AuthUser) -> Result<HttpResponse, ApiError> {
    let user = state
        .store
        .find_user(caller.user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    Ok(ok_signed(
        UserData {
            user: UserView::own(user),
        },
        &state.file_signer(caller.user_id),
    ))
}

/// What `PATCH /user/me` changes; absent fields stay as they are.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateMeRequest {
    /// 1 to 100 characters, trimmed.
    pub name: Option<String>,
    /// At most 500 characters; `""` clears it.
    pub about: Option<String>,
    /// International form (`+` and the country code), stored in E.164; unique. `null` removes
    /// it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, example = "+351 912 345 678")]
    pub phone: Option<Option<String>>,
    /// A new sign-in email (unique); needs `currentPassword`.
    pub email: Option<String>,
    /// The caller's password, to change `email`. Alias: `current_password`.
    pub current_password: Option<String>,
    /// A file id: an image the caller uploaded (`POST /file/upload`), shown as `avatarUrl` and
    /// `avatarThumbnailUrl` on every user object; `null` removes the photo.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Uuid>)]
    pub avatar: Option<Option<Uuid>>,
    /// `everyone` (the default): anyone may start a conversation with the caller or add them
    /// to a group. `requests`: `POST /conversation` to the caller opens a chat request and a
    /// group addition an invitation, both waiting for the caller to accept. Alias:
    /// `message_policy`.
    pub message_policy: Option<MessagePolicy>,
}

/// A field that may be `null`: present (`Some(None)` for `null`) or absent (`None`).
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

impl FieldAliases for UpdateMeRequest {
    const ALIASES: &'static [Alias] = &[
        Alias::new("messagePolicy", "message_policy"),
        Alias::new("currentPassword", "current_password"),
    ];
}

/// Change the caller's profile and settings.
///
/// Any of `name`, `about`, `avatar`, `phone`, `email` (with `currentPassword`) and `messagePolicy`;
/// returns the caller's profile as `getme` does, and sends `user.updated` to the caller's
/// streams and to everyone who shares an active conversation with them. A `messagePolicy`
/// change applies to what others do from now on: conversations and groups the caller is in
/// already stay.
#[utoipa::path(
    patch, path = "/api/v1/user/me", tag = "users",
    security(("bearer" = [])),
    request_body = UpdateMeRequest,
    responses(
        (status = 200, description = "The caller now", body = Success<UserData>),
        (status = 400, description = "Body is not JSON", body = ErrorEnvelope),
        (status = 401, description = "Missing, invalid or expired access token", body = ErrorEnvelope),
        (status = 403, description = "`currentPassword` is wrong (`invalid_credentials`)", body = ErrorEnvelope),
        (status = 409, description = "The email (`email_taken`) or phone (`phone_taken`) is another user's", body = ErrorEnvelope),
        (status = 422, description = "An invalid field, or `email` without `currentPassword` (`validation_failed`, every failing field listed)", body = ErrorEnvelope),
        (status = 429, description = "Past the caller's budget (`rate_limited`, with `Retry-After` and `RateLimit`)", body = ErrorEnvelope),
    )
)]
#[patch("/me")]
pub async fn update_me(
    state: web::Data<AppState>,
    caller: AuthUser,
    body: Json<UpdateMeRequest>,
) -> Result<HttpResponse, ApiError> {
    state.check_rate_limit(Action::Profile, caller.user_id)?;
    let body = body.into_inner();
    let parsed =
        |raw: &Option<String>, parse: fn(&str) -> Result<String, String>| raw.as_deref().map(parse).transpose();
    let (name, about, phone, email, _) = collect_fields((
        field("name", parsed(&body.name, |raw| Name::parse(raw).map(Name::into_inner))),
        field(
            "about",
            parsed(&body.about, |raw| About::parse(raw).map(About::into_inner)),
        ),
        field(
            "phone",
            body.phone
                .as_ref()
                .map(|phone| {
                    phone
                        .as_deref()
                        .map(|raw| Phone::parse(raw).map(Phone::into_inner))
                        .transpose()
                })
                .transpose(),
        ),
        field(
            "email",
            parsed(&body.email, |raw| Email::parse(raw).map(Email::into_inner)),
        ),
        field(
            "currentPassword",
            match (&body.email, &body.current_password) {
                (Some(_), None) => Err("is needed to change the email".to_string()),
                _ => Ok(()),
            },
        ),
    ))?;
    if email.is_some() {
        state.check_rate_limit(Action::PasswordCheck, caller.user_id)?;
        state
            .auth
            .confirm_password(caller.user_id, body.current_password.as_deref().unwrap_or_default())
            .await?;
    }
    let changes = ProfileChanges {
        name,
        about,
        phone,
        email,
        message_policy: body.message_policy,
        avatar: body.avatar,
    };
    let emails = state.emails;
    let user = state
        .store
        .update_profile(caller.user_id, &changes, store::now(), |user, partners| {
            payloads::user_updated(user, partners, emails)
        })
        .await?;
    Ok(ok_signed(
        UserData {
            user: UserView::own(user),
        },
        &state.file_signer(caller.user_id),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangePasswordRequest {
    /// Alias: `current_password`.
    pub current_password: String,
    /// 8 to 72 bytes. Alias: `new_password`.
    pub new_password: String,
}

impl FieldAliases for ChangePasswordRequest {
    const ALIASES: &'static [Alias] = &[
        Alias::new("currentPassword", "current_password"),
        Alias::new("newPassword", "new_password"),
    ];
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PasswordChangedData {
    /// How many other sessions (devices) were signed out.
    pub ended_sessions: usize,
}

/// Change the caller's password.
///
/// Needs the current one. Every other session of the caller ends at once (their tokens answer
/// 401 `session_ended`, their streams close); this one goes on.
#[utoipa::path(
    post, path = "/api/v1/user/me/password", tag = "users",
    security(("bearer" = [])),
    request_body = ChangePasswordRequest,
    responses(
        (status = 200, description = "Changed", body = Success<PasswordChangedData>),
        (status = 400, description = "Body is not JSON", body = ErrorEnvelope),
        (status = 401, description = "Missing, invalid or expired access token", body = ErrorEnvelope),
        (status = 403, description = "`currentPassword` is wrong (`invalid_credentials`)", body = ErrorEnvelope),
        (status = 422, description = "A missing field, or a new password out of 8 to 72 bytes (`validation_failed`)", body = ErrorEnvelope),
        (status = 429, description = "Past the caller's budget (`rate_limited`, with `Retry-After` and `RateLimit`)", body = ErrorEnvelope),
    )
)]
#[post("/me/password")]
pub async fn change_password(
    state: web::Data<AppState>,
    caller: AuthUser,
    body: Json<ChangePasswordRequest>,
) -> Result<HttpResponse, ApiError> {
    state.check_rate_limit(Action::PasswordCheck, caller.user_id)?;
    let new = Password::parse(&body.new_password).map_err(|problem| ApiError::invalid_field("newPassword", problem))?;
    let ended = state.auth.change_password(caller, &body.current_password, new).await?;
    for session in &ended {
        state.hub.close_session(*session);
    }
    Ok(ok(PasswordChangedData {
        ended_sessions: ended.len(),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeleteMeRequest {
    /// The caller's password.
    pub password: String,
    /// Also tombstone every message the caller sent, for everyone (as delete-for-all).
    /// Default `false`: they stay readable to the others, from "Deleted user". Alias:
    /// `delete_messages`.
    #[serde(default)]
    pub delete_messages: bool,
}

impl FieldAliases for DeleteMeRequest {
    const ALIASES: &'static [Alias] = &[Alias::new("deleteMessages", "delete_messages")];
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountDeletedData {
    pub deleted: bool,
    /// How many messages were tombstoned (`deleteMessages`).
    pub deleted_messages: usize,
}

/// Messages tombstoned per transaction when an account goes with its messages.
const DELETION_BATCH: u32 = 100;

/// Delete the caller's account.
///
/// Needs the password. In this order, so that a failure half-way can simply be retried:
/// with `deleteMessages`, every message the caller sent becomes a tombstone for everyone;
/// the caller leaves every group (ownership passes on as when leaving); then, at once, every
/// session ends (old tokens answer 401, streams close), the email and phone become free, and
/// the profile, stars, blocks, address book, presence subscriptions and invitations go. In
/// conversations the user shows as "Deleted user" (`deleted: true`), and their partners get
/// `user.updated` saying so. The account cannot log in again.
#[utoipa::path(
    delete, path = "/api/v1/user/me", tag = "users",
    security(("bearer" = [])),
    request_body = DeleteMeRequest,
    responses(
        (status = 200, description = "Deleted", body = Success<AccountDeletedData>),
        (status = 400, description = "Body is not JSON", body = ErrorEnvelope),
        (status = 401, description = "Missing, invalid or expired access token", body = ErrorEnvelope),
        (status = 403, description = "`password` is wrong (`invalid_credentials`)", body = ErrorEnvelope),
        (status = 415, description = "Not application/json", body = ErrorEnvelope),
        (status = 422, description = "A missing field (`validation_failed`)", body = ErrorEnvelope),
        (status = 429, description = "Past the caller's budget (`rate_limited`, with `Retry-After` and `RateLimit`)", body = ErrorEnvelope),
    )
)]
#[delete("/me")]
pub async fn delete_me(
    state: web::Data<AppState>,
    caller: AuthUser,
    body: Json<DeleteMeRequest>,
) -> Result<HttpResponse, ApiError> {
    state.check_rate_limit(Action::PasswordCheck, caller.user_id)?;
    let user = caller.user_id;
    let verified = state.auth.confirm_password(user, &body.password).await?;
    let mut deleted_messages = 0;
    if body.delete_messages {
        loop {
            let batch = state.store.undeleted_messages_of(user, DELETION_BATCH).await?;
            if batch.is_empty() {
                break;
            }
            let mut by_conversation: Vec<(Uuid, Vec<Uuid>)> = Vec::new();
            for (conversation, message) in batch {
                match by_conversation.last_mut() {
                    Some((last, ids)) if *last == conversation => ids.push(message),
                    _ => by_conversation.push((conversation, vec![message])),
                }
            }
            for (conversation, ids) in by_conversation {
                let member = state.store.member_of(user, conversation).await?.deleting_account();
                deleted_messages += ids.len();
                super::messages::delete(&state, &member, ids, super::messages::Scope::All).await?;
            }
        }
    }
    for group in state.store.groups_of(user).await? {
        match state.store.member_of(user, group).await {
            Ok(member) => {
                super::conversations::leave(&state, &member).await?;
            }
            // Left meanwhile (another request of theirs).
            Err(store::StoreError::NotFound(_)) => {}
            Err(error) => return Err(error.into()),
        }
    }
    let emails = state.emails;
    let ended = state
        .store
        .delete_account(user, &verified, store::now(), |user, partners| {
            payloads::user_updated(user, partners, emails)
        })
        .await?;
    for session in &ended {
        state.hub.close_session(*session);
    }
    Ok(ok(AccountDeletedData {
        deleted: true,
        deleted_messages,
    }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsersByIdsQuery {
    /// Comma-separated user ids, at most 100.
    pub ids: String,
}

#[derive(Serialize, ToSchema)]
pub struct UsersByIdsData {
    /// The known users among `ids`, in the order asked (unknown ids are left out).
    pub users: Vec<UserView>,
}

/// Users by their ids (SAMA's `get_users_by_ids`).
///
/// Public profiles, as `GET /user/{id}` shows them, in the order asked; unknown ids are left
/// out.
#[utoipa::path(
    get, path = "/api/v1/user/by-ids", tag = "users",
    security(("bearer" = [])),
    params(UsersByIdsQuery),
    responses(
        (status = 200, description = "The known users", body = Success<UsersByIdsData>),
        (status = 400, description = "Malformed query string", body = ErrorEnvelope),
        (status = 401, description = "Missing, invalid or expired access token", body = ErrorEnvelope),
        (status = 422, description = "More than 100 ids, or one that is not a UUID", body = ErrorEnvelope),
    )
)]
#[get("/by-ids")]
pub async fn users_by_ids(
    state: web::Data<AppState>,
    caller: AuthUser,
    query: Query<UsersByIdsQuery>,
) -> Result<HttpResponse, ApiError> {
    let ids = super::parse_id_list("ids", &query.ids, 100)?;
    let mut found = state.store.users_by_ids(&ids).await?;
    let mut users = Vec::with_capacity(found.len());
    for id in &ids {
        if let Some(at) = found.iter().position(|user| user.id == *id) {
            users.push(UserView::seen_by(
                found.swap_remove(at),
                Some(caller.user_id),
                state.emails,
            ));
        }
    }
    Ok(ok_signed(UsersByIdsData { users }, &state.file_signer(caller.user_id)))
}

/// Search users by name, or find one by email.
///
/// Users whose name contains `keyword`, or whose email is exactly `keyword` (case-insensitive),
/// the caller excluded, ordered by name. An email is never matched in part, so nobody can list
/// addresses; an empty keyword lists only the caller's conversation partners.
#[utoipa::path(
    get, path = "/api/v1/user", tag = "users",
    security(("bearer" = [])),
    params(UserSearchQuery),
    responses(
        (status = 200, description = "Matching users", body = Success<UsersData>),
        (status = 400, description = "Malformed query string", body = ErrorEnvelope),
        (status = 401, description = "Missing, invalid or expired access token", body = ErrorEnvelope),
        (status = 422, description = "`limit` out of range, or `keyword` of 1 or over 100 characters", body = ErrorEnvelope),
        (status = 429, description = "Past the caller's budget (`rate_limited`, with `Retry-After` and `RateLimit`)", body = ErrorEnvelope),
    )
)]
#[get("")]
pub async fn search_users(
    state: web::Data<AppState>,
    caller: AuthUser,
    query: Query<UserSearchQuery>,
) -> Result<HttpResponse, ApiError> {
    state.check_rate_limit(Action::Search, caller.user_id)?;
    let query = query.into_inner();
    let limit = page_limit(query.limit, 20, 100).map_err(|problem| ApiError::invalid_field("limit", problem))?;
    let keyword = query.keyword.unwrap_or_default().trim().to_lowercase();
    match keyword.chars().count() {
        1 => {
            return Err(ApiError::invalid_field(
                "keyword",
                "must be empty or at least 2 characters",
            ));
        }
        length if length > 100 => return Err(ApiError::invalid_field("keyword", "must be at most 100 characters")),
        _ => {}
    }
    let ignore = match &query.ignore_ids {
        Some(raw) => super::parse_id_list("ignoreIds", raw, 100)?,
        None => Vec::new(),
    };
    let updated_after = query
        .updated_after
        .as_deref()
        .map(|raw| {
            use chrono::Datelike;
            chrono::DateTime::parse_from_rfc3339(raw)
                .ok()
                .map(|time| time.with_timezone(&chrono::Utc))
                // The years both backends store and SQLite's text timestamps sort right.
                .filter(|time| (1..=9999).contains(&time.year()))
                .ok_or_else(|| {
                    ApiError::invalid_field("updatedAfter", "must be an RFC 3339 time in the years 1 to 9999")
                })
        })
        .transpose()?;
    let mut users = state
        .store
        .search_users(&UserSearch {
            caller: caller.user_id,
            keyword,
            limit: limit + 1,
            after_user: query.before,
            ignore,
            updated_after,
        })
        .await?;
    let next_cursor = super::next_page(&mut users, limit, |user| user.id.to_string());
    Ok(ok_signed(
        UsersData {
            users: users
                .into_iter()
                .map(|user| UserView::seen_by(user, Some(caller.user_id), state.emails))
                .collect(),
            next_cursor,
        },
        &state.file_signer(caller.user_id),
    ))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LastActivityQuery {
    /// Comma-separated user ids, at most 100.
    pub ids: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastActivityData {
    /// For each known user id: `"online"`, or the seconds since they were last seen online
    /// (`null`: never).
    #[schema(value_type = Object, example = json!({"0190f3a4-5b6c-7d8e-9f00-112233445566": "online"}))]
    pub last_activity: serde_json::Map<String, serde_json::Value>,
}

/// Who is online, and since when the others are not.
///
/// A user is online while at least one of their event streams is open (on any instance).
/// Only for users who share an active conversation with the caller (not a pending or declined
/// chat request): the others read `null`, like users never seen.
#[utoipa::path(
    get, path = "/api/v1/user/last-activity", tag = "users",
    security(("bearer" = [])),
    params(LastActivityQuery),
    responses(
        (status = 200, description = "Each known user's activity", body = Success<LastActivityData>),
        (status = 400, description = "Malformed query string", body = ErrorEnvelope),
        (status = 401, description = "Missing, invalid or expired access token", body = ErrorEnvelope),
        (status = 422, description = "More than 100 ids, or one that is not a UUID", body = ErrorEnvelope),
    )
)]
#[get("/last-activity")]
pub async fn last_activity(
    state: web::Data<AppState>,
    caller: AuthUser,
    query: Query<LastActivityQuery>,
) -> Result<HttpResponse, ApiError> {
    let ids = super::parse_id_list("ids", &query.ids, 100)?;
    let (_, activity) = activity_seen_by(&state, caller, &ids).await?;
    Ok(ok(LastActivityData {
        last_activity: activity.into_iter().collect(),
    }))
}

/// Those of `users` whose presence the caller may see (they share an active conversation and
/// have no block either way), and for each of `users` that exists: `"online"`, the seconds
/// since last seen, or `null` (never seen, or not one the caller may see).
pub(super) async fn activity_seen_by(
    state: &AppState,
    caller: AuthUser,
    users: &[Uuid],
) -> Result<(Vec<Uuid>, Vec<(String, serde_json::Value)>), ApiError> {
    let contacts = state.store.contacts_among(caller.user_id, users).await?;
    let now = chrono::Utc::now();
    let activity = presence::last_activity(&state.store, users)
        .await?
        .into_iter()
        .map(|(id, (online, last_active_at))| {
            let value = match (contacts.contains(&id), online, last_active_at) {
                (false, _, _) => serde_json::Value::Null,
                (true, true, _) => serde_json::Value::from("online"),
                (true, false, Some(at)) => serde_json::Value::from((now - at).num_seconds().max(0)),
                (true, false, None) => serde_json::Value::Null,
            };
            (id.to_string(), value)
        })
        .collect();
    Ok((contacts, activity))
}

/// One user's public profile, with their presence for a contact of the caller's.
#[utoipa::path(
    get, path = "/api/v1/user/{id}", tag = "users",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The user's id")),
    responses(
        (status = 200, description = "The user", body = Success<ProfileData>),
        (status = 400, description = "The id is not a UUID", body = ErrorEnvelope),
        (status = 401, description = "Missing, invalid or expired access token", body = ErrorEnvelope),
        (status = 404, description = "No such user", body = ErrorEnvelope),
        (status = 422, description = "The id holds U+0000 (`validation_failed`)", body = ErrorEnvelope),
    )
)]
#[get("/{id}")]
pub async fn get_user(state: web::Data<AppState>, caller: AuthUser, id: Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let user = state
        .store
        .find_user(id.into_inner())
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    let activity = activity_seen_by(&state, caller, &[user.id])
        .await?
        .1
        .pop()
        .map_or(serde_json::Value::Null, |(_, activity)| activity);
    Ok(ok_signed(
        ProfileData {
            user: UserView::seen_by(user, Some(caller.user_id), state.emails),
            last_activity: activity,
        },
        &state.file_signer(caller.user_id),
    ))
}
