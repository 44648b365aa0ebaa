//! `/api/v1/user`: the caller, other users, search.

use actix_web::{HttpResponse, get, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::envelope::{Success, ok};
use super::views::UserView;
use crate::auth::AuthUser;
use crate::domain::page_limit;
use crate::error::{ApiError, ErrorEnvelope};
use crate::startup::AppState;
use crate::store::UserSearch;

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
    )
)]
#[get("")]
pub async fn search_users(
    state: web::Data<AppState>,
    caller: AuthUser,
    query: web::Query<UserSearchQuery>,
) -> Result<HttpResponse, ApiError> {
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
    )
)]
#[get("/{id}")]
pub async fn get_user(
    state: web::Data<AppState>,
    _caller: AuthUser,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let user = state
        .store
        .find_user(id.into_inner())
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    Ok(ok(UserData { user: user.into() }))
}
