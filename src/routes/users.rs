//! `/api/v1/user`: the caller, other users, search.

use actix_web::{HttpResponse, get, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::envelope::{Success, ok};
use super::extract::{Path, Query};
use crate::auth::AuthUser;
use crate::domain::page_limit;
use crate::error::{ApiError, ErrorEnvelope};
use crate::limits::Action;
use crate::realtime::presence;
use crate::state::AppState;
use crate::store::UserSearch;
use crate::views::UserView;

#[derive(Serialize, ToSchema)]
pub struct UserData {
    pub user: UserView,
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
    /// Matched anywhere in the name or the email, case-insensitively. Empty: every user.
    pub keyword: Option<String>,
    /// Page size: 1 to 100, default 20.
    pub limit: Option<u32>,
    /// `nextCursor` of the previous page.
    pub before: Option<Uuid>,
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
    Ok(ok(UserData { user: user.into() }))
}

/// Search users by name or email.
///
/// Users whose name or email contains `keyword` (case-insensitive), the caller excluded,
/// ordered by name.
#[utoipa::path(
    get, path = "/api/v1/user", tag = "users",
    security(("bearer" = [])),
    params(UserSearchQuery),
    responses(
        (status = 200, description = "Matching users", body = Success<UsersData>),
        (status = 400, description = "Malformed query string", body = ErrorEnvelope),
        (status = 401, description = "Missing, invalid or expired access token", body = ErrorEnvelope),
        (status = 422, description = "`limit` out of range or `keyword` too long", body = ErrorEnvelope),
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
    if keyword.chars().count() > 100 {
        return Err(ApiError::invalid_field("keyword", "must be at most 100 characters"));
    }
    let mut users = state
        .store
        .search_users(&UserSearch {
            caller: caller.user_id,
            keyword,
            limit: limit + 1,
            after_user: query.before,
        })
        .await?;
    let next_cursor = super::next_page(&mut users, limit, |user| user.id.to_string());
    Ok(ok(UsersData {
        users: users.into_iter().map(UserView::from).collect(),
        next_cursor,
    }))
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
    _caller: AuthUser,
    query: Query<LastActivityQuery>,
) -> Result<HttpResponse, ApiError> {
    let ids = super::parse_id_list("ids", &query.ids, 100)?;
    let now = chrono::Utc::now();
    let last_activity = presence::last_activity(&state.store, &ids)
        .await?
        .into_iter()
        .map(|(id, (online, last_active_at))| {
            let value = match (online, last_active_at) {
                (true, _) => serde_json::Value::from("online"),
                (false, Some(at)) => serde_json::Value::from((now - at).num_seconds().max(0)),
                (false, None) => serde_json::Value::Null,
            };
            (id.to_string(), value)
        })
        .collect();
    Ok(ok(LastActivityData { last_activity }))
}

/// One user's public profile.
#[utoipa::path(
    get, path = "/api/v1/user/{id}", tag = "users",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The user's id")),
    responses(
        (status = 200, description = "The user", body = Success<UserData>),
        (status = 400, description = "The id is not a UUID", body = ErrorEnvelope),
        (status = 401, description = "Missing, invalid or expired access token", body = ErrorEnvelope),
        (status = 404, description = "No such user", body = ErrorEnvelope),
        (status = 422, description = "The id holds U+0000 (`validation_failed`)", body = ErrorEnvelope),
    )
)]
#[get("/{id}")]
pub async fn get_user(state: web::Data<AppState>, _caller: AuthUser, id: Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let user = state
        .store
        .find_user(id.into_inner())
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    Ok(ok(UserData { user: user.into() }))
}
