//! `/api/v1/user/me/status` and `/api/v1/user/last-activity/subscribe|unsubscribe`: presence
//! that a client asks for.
//!
//! Presence goes unasked only to a user's direct partners and to the members of their groups
//! of at most `PRESENCE_GROUP_MAX_MEMBERS`: told everyone, the 1,000 members of one group
//! coming online would be about 500,000 events. For anyone else a stream subscribes, naming
//! itself by the `streamId` of its first event (`ready`); the subscriptions end with it.

use actix_web::{HttpResponse, post, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::envelope::{Success, ok, ok_signed};
use super::extract::{Alias, FieldAliases, Json};
use super::users::{LastActivityData, UserData, activity_seen_by};
use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorEnvelope};
use crate::limits::Action;
use crate::realtime::{payloads, presence};
use crate::state::AppState;
use crate::store;
use crate::views::UserView;

/// Most users one stream follows, and one subscribe names.
const SUBSCRIPTIONS_MAX: usize = 500;

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PresenceStatus {
    /// Presence follows the streams (the default).
    Auto,
    /// Shown online whatever the streams do.
    Online,
    /// Shown offline while the streams stay open (last seen stops moving).
    Offline,
}

impl PresenceStatus {
    fn as_str(&self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Online => "online",
            Self::Offline => "offline",
        }
    }
}

#[derive(Deserialize, ToSchema)]
pub struct StatusRequest {
    pub status: PresenceStatus,
}

/// Choose how the caller's presence shows to others.
///
/// `offline` makes the caller appear offline while their streams stay open; `online` shows
/// them online with none open; `auto` (the default) follows the streams. Those who see the
/// caller's presence get a `presence` event when what they see changes; the caller's own
/// streams get `user.updated` (with `presenceStatus`).
#[utoipa::path(
    post, path = "/api/v1/user/me/status", tag = "users",
    security(("bearer" = [])),
    request_body = StatusRequest,
    responses(
        (status = 200, description = "The caller now", body = Success<UserData>),
        (status = 400, description = "Body is not JSON", body = ErrorEnvelope),
        (status = 401, description = "Missing, invalid or expired access token", body = ErrorEnvelope),
        (status = 422, description = "`status` is not `online`, `offline` or `auto`", body = ErrorEnvelope),
        (status = 429, description = "Past the caller's budget (`rate_limited`, with `Retry-After` and `RateLimit`)", body = ErrorEnvelope),
    )
)]
#[post("/me/status")]
pub async fn set_status(
    state: web::Data<AppState>,
    caller: AuthUser,
    body: Json<StatusRequest>,
) -> Result<HttpResponse, ApiError> {
    state.check_rate_limit(Action::Presence, caller.user_id)?;
    let user = caller.user_id;
    let was_online = presence::online_anywhere(&state.store, user).await?;
    let emails = state.emails;
    let updated = state
        .store
        .set_presence_status(user, body.status.as_str(), store::now(), |user| {
            payloads::user_updated(user, &[], emails)
        })
        .await?;
    let online = presence::online_anywhere(&state.store, user).await?;
    if online != was_online {
        state.hub.announce_presence(user, online).await;
    }
    Ok(ok_signed(
        UserData {
            user: UserView::own(updated),
        },
        &state.file_signer(caller.user_id),
    ))
}

impl FieldAliases for StatusRequest {}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscribeRequest {
    /// The `streamId` of the caller's stream (its `ready` event). Alias: `stream_id`.
    pub stream_id: Uuid,
    /// User ids, 1 to 500.
    pub ids: Vec<Uuid>,
}

impl FieldAliases for SubscribeRequest {
    const ALIASES: &'static [Alias] = &[Alias::new("streamId", "stream_id")];
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnsubscribeRequest {
    /// The `streamId` of the caller's stream. Alias: `stream_id`.
    pub stream_id: Uuid,
    /// User ids (at most 500); absent: every subscription of the stream.
    pub ids: Option<Vec<Uuid>>,
}

impl FieldAliases for UnsubscribeRequest {
    const ALIASES: &'static [Alias] = &[Alias::new("streamId", "stream_id")];
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnsubscribedData {
    pub stream_id: Uuid,
}

fn bounded(ids: &[Uuid], at_least_one: bool) -> Result<(), ApiError> {
    if (at_least_one && ids.is_empty()) || ids.len() > SUBSCRIPTIONS_MAX {
        return Err(ApiError::invalid_field(
            "ids",
            format!("must name 1 to {SUBSCRIPTIONS_MAX} users"),
        ));
    }
    Ok(())
}

/// Follow users' presence on one stream (SAMA's `user_last_activity_subscribe`).
///
/// Answers each user's current activity as `GET /user/last-activity` does, and from now on
/// sends `presence` events for them to the stream `streamId` (which must be the caller's and
/// open) until it closes or they are unsubscribed. Only users whose presence the caller may
/// see (an active conversation shared, no block either way) are followed; the others read
/// `null` and are not. A stream follows at most 500 users.
#[utoipa::path(
    post, path = "/api/v1/user/last-activity/subscribe", tag = "users",
    security(("bearer" = [])),
    request_body = SubscribeRequest,
    responses(
        (status = 200, description = "Each known user's activity", body = Success<LastActivityData>),
        (status = 400, description = "Body is not JSON", body = ErrorEnvelope),
        (status = 401, description = "Missing, invalid or expired access token", body = ErrorEnvelope),
        (status = 404, description = "No open stream of the caller's has this id", body = ErrorEnvelope),
        (status = 422, description = "No ids, more than 500, or the stream would follow more than 500", body = ErrorEnvelope),
        (status = 429, description = "Past the caller's budget (`rate_limited`, with `Retry-After` and `RateLimit`)", body = ErrorEnvelope),
    )
)]
#[post("/last-activity/subscribe")]
pub async fn subscribe(
    state: web::Data<AppState>,
    caller: AuthUser,
    body: Json<SubscribeRequest>,
) -> Result<HttpResponse, ApiError> {
    state.check_rate_limit(Action::Presence, caller.user_id)?;
    bounded(&body.ids, true)?;
    let (visible, activity) = activity_seen_by(&state, caller, &body.ids).await?;
    state
        .store
        .subscribe_presence(caller.user_id, body.stream_id, &visible, SUBSCRIPTIONS_MAX)
        .await?;
    Ok(ok(LastActivityData {
        last_activity: activity.into_iter().collect(),
    }))
}

/// Stop following users' presence on one stream.
#[utoipa::path(
    post, path = "/api/v1/user/last-activity/unsubscribe", tag = "users",
    security(("bearer" = [])),
    request_body = UnsubscribeRequest,
    responses(
        (status = 200, description = "Unsubscribed", body = Success<UnsubscribedData>),
        (status = 400, description = "Body is not JSON", body = ErrorEnvelope),
        (status = 401, description = "Missing, invalid or expired access token", body = ErrorEnvelope),
        (status = 404, description = "No open stream of the caller's has this id", body = ErrorEnvelope),
        (status = 422, description = "More than 500 ids", body = ErrorEnvelope),
        (status = 429, description = "Past the caller's budget (`rate_limited`, with `Retry-After` and `RateLimit`)", body = ErrorEnvelope),
    )
)]
#[post("/last-activity/unsubscribe")]
pub async fn unsubscribe(
    state: web::Data<AppState>,
    caller: AuthUser,
    body: Json<UnsubscribeRequest>,
) -> Result<HttpResponse, ApiError> {
    state.check_rate_limit(Action::Presence, caller.user_id)?;
    if let Some(ids) = &body.ids {
        bounded(ids, false)?;
    }
    state
        .store
        .unsubscribe_presence(caller.user_id, body.stream_id, body.ids.as_deref())
        .await?;
    Ok(ok(UnsubscribedData {
        stream_id: body.stream_id,
    }))
}
