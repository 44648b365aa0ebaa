//! `/api/v1/user/block`, `/user/unblock`, `/user/blocked`: blocking (SAMA's three requests).
//!
//! While A blocks B, B never reaches A and is never told so: B's direct messages are accepted
//! and shown to B as sent but withheld from A (for good), B's new chat requests and group
//! invitations to A stay pending without reaching A, and neither gets the other's presence,
//! typing, read receipts or profile changes, nor finds the other in user search or contact
//! matches. In groups both stay members and see each other's messages.

use actix_web::{HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::envelope::{Success, ok, ok_signed};
use super::extract::{FieldAliases, Json};
use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorEnvelope};
use crate::limits::Action;
use crate::realtime::payloads;
use crate::state::AppState;
use crate::store;
use crate::views::UserView;

/// Most ids one block or unblock names.
const IDS_MAX: usize = 100;

#[derive(Deserialize, ToSchema)]
pub struct BlockRequest {
    /// User ids, 1 to 100.
    pub ids: Vec<Uuid>,
}

impl FieldAliases for BlockRequest {}

#[derive(Serialize, ToSchema)]
pub struct BlockChangeData {
    /// Those of `ids` whose state changed (already blocked, unknown users are left out).
    pub ids: Vec<Uuid>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BlockedUserView {
    #[serde(flatten)]
    pub user: UserView,
    pub blocked_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct BlockedData {
    /// Everyone the caller blocks, most recently blocked first.
    pub users: Vec<BlockedUserView>,
}

fn requested_ids(caller: AuthUser, ids: &[Uuid]) -> Result<Vec<Uuid>, ApiError> {
    if ids.is_empty() || ids.len() > IDS_MAX {
        return Err(ApiError::invalid_field(
            "ids",
            format!("must name 1 to {IDS_MAX} users"),
        ));
    }
    if ids.contains(&caller.user_id) {
        return Err(ApiError::invalid_field("ids", "cannot block yourself"));
    }
    let mut ids = ids.to_vec();
    ids.sort();
    ids.dedup();
    Ok(ids)
}

/// Block users.
///
/// The blocked users are not told. Sends `user.blocked` `{userIds}` to the caller's own
/// streams. A user blocks at most 1,000 others.
#[utoipa::path(
    post, path = "/api/v1/user/block", tag = "users",
    security(("bearer" = [])),
    request_body = BlockRequest,
    responses(
        (status = 200, description = "Those newly blocked", body = Success<BlockChangeData>),
        (status = 400, description = "Body is not JSON", body = ErrorEnvelope),
        (status = 401, description = "Missing, invalid or expired access token", body = ErrorEnvelope),
        (status = 422, description = "No ids, more than 100, the caller's own, or past 1,000 blocked users (`validation_failed`)", body = ErrorEnvelope),
        (status = 429, description = "Past the caller's budget (`rate_limited`, with `Retry-After` and `RateLimit`)", body = ErrorEnvelope),
    )
)]
#[post("/block")]
pub async fn block_users(
    state: web::Data<AppState>,
    caller: AuthUser,
    body: Json<BlockRequest>,
) -> Result<HttpResponse, ApiError> {
    change_blocks(&state, caller, &body.ids, true).await
}

/// Unblock users.
///
/// From now on they reach the caller again; nothing withheld meanwhile appears. Sends
/// `user.unblocked` `{userIds}` to the caller's own streams.
#[utoipa::path(
    post, path = "/api/v1/user/unblock", tag = "users",
    security(("bearer" = [])),
    request_body = BlockRequest,
    responses(
        (status = 200, description = "Those unblocked", body = Success<BlockChangeData>),
        (status = 400, description = "Body is not JSON", body = ErrorEnvelope),
        (status = 401, description = "Missing, invalid or expired access token", body = ErrorEnvelope),
        (status = 422, description = "No ids, more than 100, or the caller's own (`validation_failed`)", body = ErrorEnvelope),
        (status = 429, description = "Past the caller's budget (`rate_limited`, with `Retry-After` and `RateLimit`)", body = ErrorEnvelope),
    )
)]
#[post("/unblock")]
pub async fn unblock_users(
    state: web::Data<AppState>,
    caller: AuthUser,
    body: Json<BlockRequest>,
) -> Result<HttpResponse, ApiError> {
    change_blocks(&state, caller, &body.ids, false).await
}

/// Blocks (or unblocks) `ids` for the caller: those whose state changed.
async fn change_blocks(
    state: &AppState,
    caller: AuthUser,
    ids: &[Uuid],
    block: bool,
) -> Result<HttpResponse, ApiError> {
    state.check_rate_limit(Action::Profile, caller.user_id)?;
    let ids = requested_ids(caller, ids)?;
    let (user, now) = (caller.user_id, store::now());
    let events = |ids: &[Uuid]| payloads::blocks_changed(user, ids, block);
    let ids = if block {
        state.store.block_users(user, &ids, now, events).await?
    } else {
        state.store.unblock_users(user, &ids, now, events).await?
    };
    Ok(ok(BlockChangeData { ids }))
}

/// The users the caller blocks.
#[utoipa::path(
    get, path = "/api/v1/user/blocked", tag = "users",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Blocked users, most recent first", body = Success<BlockedData>),
        (status = 401, description = "Missing, invalid or expired access token", body = ErrorEnvelope),
    )
)]
#[get("/blocked")]
pub async fn blocked_users(state: web::Data<AppState>, caller: AuthUser) -> Result<HttpResponse, ApiError> {
    let users = state
        .store
        .blocked_users(caller.user_id)
        .await?
        .into_iter()
        .map(|blocked| BlockedUserView {
            user: UserView::seen_by(blocked.user, Some(caller.user_id), state.emails),
            blocked_at: blocked.blocked_at,
        })
        .collect();
    Ok(ok_signed(BlockedData { users }, &state.file_signer(caller.user_id)))
}
