//! `/api/v1/push/...`: the devices that receive push notifications (SAMA's
//! `push_subscription_*`), the VAPID key browsers subscribe with, and pushes that are not
//! messages (`push_event_create`). What gets pushed, and how, is `crate::push`.

use actix_web::{HttpResponse, delete, get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::envelope::{Success, created, ok};
use super::extract::{Alias, FieldAliases, Json, Path};
use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorEnvelope};
use crate::limits::Action;
use crate::push::webpush::BrowserKeys;
use crate::state::AppState;
use crate::store::{self, PushSubscription};

/// Most characters of a Web Push endpoint (browsers' are a few hundred).
const ENDPOINT_MAX: usize = 2048;
/// Most characters of an FCM registration token (they are ~160; APNs-through-FCM longer).
const DEVICE_TOKEN_MAX: usize = 4096;
const DEVICE_UDID_MAX: usize = 255;
/// Most recipients of one push event.
const RECIPIENTS_MAX: usize = 100;
/// A push event's title and body, in characters: together they stay well under Web Push's
/// 4 KB payload.
const TITLE_MAX: usize = 100;
const BODY_MAX: usize = 500;

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionRequest {
    /// `web`, `ios` or `android`.
    #[schema(example = "web")]
    pub platform: String,
    /// Web: the push service URL from `PushSubscription.endpoint` (https, public host).
    pub web_endpoint: Option<String>,
    /// Web: `PushSubscription.getKey('auth')`, base64url.
    pub web_key_auth: Option<String>,
    /// Web: `PushSubscription.getKey('p256dh')`, base64url.
    pub web_key_p256dh: Option<String>,
    /// iOS and Android: the FCM registration token.
    pub device_token: Option<String>,
    /// The device's own stable id (1 to 255 characters, no `/`): registering it again replaces the
    /// earlier subscription.
    pub device_udid: String,
}

impl FieldAliases for SubscriptionRequest {
    const ALIASES: &'static [Alias] = &[
        Alias::new("webEndpoint", "web_endpoint"),
        Alias::new("webKeyAuth", "web_key_auth"),
        Alias::new("webKeyP256dh", "web_key_p256dh"),
        Alias::new("deviceToken", "device_token"),
        Alias::new("deviceUdid", "device_udid"),
    ];
}

/// A push subscription, without its keys or token (which only push services need).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionView {
    #[serde(rename = "_id")]
    pub id: Uuid,
    pub platform: String,
    /// Web subscriptions' push service URL; `null` for devices.
    pub web_endpoint: Option<String>,
    pub device_udid: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<PushSubscription> for SubscriptionView {
    fn from(subscription: PushSubscription) -> Self {
        Self {
            id: subscription.id,
            platform: subscription.platform,
            web_endpoint: subscription.web_endpoint,
            device_udid: subscription.device_udid,
            created_at: subscription.created_at,
            updated_at: subscription.updated_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct SubscriptionData {
    pub subscription: SubscriptionView,
}

#[derive(Serialize, ToSchema)]
pub struct SubscriptionsData {
    /// The caller's subscriptions, most recently registered first (at most 20).
    pub subscriptions: Vec<SubscriptionView>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VapidKeyData {
    /// The `applicationServerKey` for `PushManager.subscribe`: the uncompressed P-256 public
    /// key, base64url.
    pub public_key: String,
}

/// The key browsers subscribe with.
///
/// Pass it as `applicationServerKey` to `PushManager.subscribe` (decoded from base64url to
/// bytes), then register the subscription with `POST /push/subscription`. Needs no token.
#[utoipa::path(
    get, path = "/api/v1/push/vapid-public-key", tag = "push",
    responses((status = 200, description = "The VAPID public key", body = Success<VapidKeyData>))
)]
#[get("/vapid-public-key")]
pub async fn vapid_public_key(state: web::Data<AppState>) -> HttpResponse {
    ok(VapidKeyData {
        public_key: state.push.vapid_public_key().to_string(),
    })
}

/// Register a device or browser for push notifications.
///
/// `platform: "web"` takes `webEndpoint`, `webKeyAuth` and `webKeyP256dh` (a browser's
/// `PushSubscription`); `ios` and `android` take `deviceToken` (an FCM registration token;
/// iOS through FCM's APNs link). SAMA's snake_case names are accepted too. The same
/// `deviceUdid` again replaces the earlier subscription (keeping its `_id`). A user keeps at
/// most 20: one more drops the least recently registered. The subscription belongs to the
/// login session that made it: logging out, revoking the session or deleting the account
/// removes it. Web endpoints must be `https://` URLs on public hosts (not loopback, private or
/// link-local; `OUTBOUND_ALLOWED_HOSTS` lists exceptions): the server calls them.
#[utoipa::path(
    post, path = "/api/v1/push/subscription", tag = "push",
    security(("bearer" = [])),
    request_body = SubscriptionRequest,
    responses(
        (status = 201, description = "Registered (or replaced)", body = Success<SubscriptionData>),
        (status = 400, description = "The body is not JSON", body = ErrorEnvelope),
        (status = 401, description = "Missing, invalid or expired access token", body = ErrorEnvelope),
        (status = 422, description = "A field is missing or unusable, e.g. an endpoint that is not https or not public (`validation_failed`)", body = ErrorEnvelope),
        (status = 429, description = "Past the caller's budget (`rate_limited`)", body = ErrorEnvelope),
    )
)]
#[post("/subscription")]
pub async fn create_subscription(
    state: web::Data<AppState>,
    caller: AuthUser,
    body: Json<SubscriptionRequest>,
) -> Result<HttpResponse, ApiError> {
    state.check_rate_limit(Action::Profile, caller.user_id)?;
    let request = body.into_inner();
    let udid = request.device_udid.trim();
    // No `/`: the udid is a path segment of `DELETE /push/subscription/{deviceUdid}`.
    if udid.is_empty()
        || udid.chars().count() > DEVICE_UDID_MAX
        || udid.chars().any(|character| character.is_control() || character == '/')
    {
        return Err(ApiError::invalid_field(
            "deviceUdid",
            format!("must be 1 to {DEVICE_UDID_MAX} characters, without control characters or `/`"),
        ));
    }
    let now = store::now();
    let mut subscription = PushSubscription {
        id: Uuid::now_v7(),
        user_id: caller.user_id,
        session_id: caller.session_id,
        platform: request.platform.clone(),
        web_endpoint: None,
        web_key_auth: None,
        web_key_p256dh: None,
        device_token: None,
        device_udid: udid.to_string(),
        created_at: now,
        updated_at: now,
    };
    match request.platform.as_str() {
        "web" => {
            let endpoint = request
                .web_endpoint
                .as_deref()
                .map(str::trim)
                .filter(|endpoint| !endpoint.is_empty())
                .ok_or_else(|| ApiError::invalid_field("webEndpoint", "is required for web subscriptions"))?;
            if endpoint.len() > ENDPOINT_MAX {
                return Err(ApiError::invalid_field(
                    "webEndpoint",
                    format!("must be at most {ENDPOINT_MAX} characters"),
                ));
            }
            state
                .push
                .check_endpoint(endpoint)
                .map_err(|refusal| ApiError::invalid_field("webEndpoint", refusal.to_string()))?;
            let (auth, p256dh) = match (request.web_key_auth.as_deref(), request.web_key_p256dh.as_deref()) {
                (Some(auth), Some(p256dh)) => (auth.trim(), p256dh.trim()),
                (None, _) => {
                    return Err(ApiError::invalid_field(
                        "webKeyAuth",
                        "is required for web subscriptions",
                    ));
                }
                (_, None) => {
                    return Err(ApiError::invalid_field(
                        "webKeyP256dh",
                        "is required for web subscriptions",
                    ));
                }
            };
            BrowserKeys::parse(p256dh, auth).map_err(|(field, problem)| ApiError::invalid_field(field, problem))?;
            subscription.web_endpoint = Some(endpoint.to_string());
            subscription.web_key_auth = Some(auth.to_string());
            subscription.web_key_p256dh = Some(p256dh.to_string());
        }
        "ios" | "android" => {
            let token = request
                .device_token
                .as_deref()
                .map(str::trim)
                .filter(|token| !token.is_empty())
                .ok_or_else(|| {
                    ApiError::invalid_field("deviceToken", "is required for ios and android subscriptions")
                })?;
            if token.len() > DEVICE_TOKEN_MAX || !token.bytes().all(|byte| byte.is_ascii_graphic()) {
                return Err(ApiError::invalid_field(
                    "deviceToken",
                    format!("must be at most {DEVICE_TOKEN_MAX} printable ASCII characters"),
                ));
            }
            subscription.device_token = Some(token.to_string());
        }
        _ => return Err(ApiError::invalid_field("platform", "must be web, ios or android")),
    }
    let saved = state.store.save_push_subscription(&subscription).await?;
    Ok(created(SubscriptionData {
        subscription: saved.into(),
    }))
}

/// The caller's push subscriptions.
#[utoipa::path(
    get, path = "/api/v1/push/subscription", tag = "push",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Most recently registered first", body = Success<SubscriptionsData>),
        (status = 401, description = "Missing, invalid or expired access token", body = ErrorEnvelope),
    )
)]
#[get("/subscription")]
pub async fn list_subscriptions(state: web::Data<AppState>, caller: AuthUser) -> Result<HttpResponse, ApiError> {
    let subscriptions = state.store.push_subscriptions_of(caller.user_id).await?;
    Ok(ok(SubscriptionsData {
        subscriptions: subscriptions.into_iter().map(SubscriptionView::from).collect(),
    }))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeletedSubscriptionData {
    pub device_udid: String,
}

/// Remove one of the caller's push subscriptions, by its `deviceUdid`.
#[utoipa::path(
    delete, path = "/api/v1/push/subscription/{deviceUdid}", tag = "push",
    security(("bearer" = [])),
    params(("deviceUdid" = String, Path, description = "The device's id, as registered")),
    responses(
        (status = 200, description = "Removed", body = Success<DeletedSubscriptionData>),
        (status = 401, description = "Missing, invalid or expired access token", body = ErrorEnvelope),
        (status = 404, description = "The caller has no subscription of this device", body = ErrorEnvelope),
        (status = 422, description = "The id holds U+0000 (`validation_failed`)", body = ErrorEnvelope),
        (status = 429, description = "Past the caller's budget (`rate_limited`)", body = ErrorEnvelope),
    )
)]
#[delete("/subscription/{udid}")]
pub async fn delete_subscription(
    state: web::Data<AppState>,
    caller: AuthUser,
    udid: Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.check_rate_limit(Action::Profile, caller.user_id)?;
    let udid = udid.into_inner();
    if !state
        .store
        .delete_push_subscription(caller.user_id, udid.trim())
        .await?
    {
        return Err(ApiError::not_found("push subscription"));
    }
    Ok(ok(DeletedSubscriptionData { device_udid: udid }))
}

#[derive(Deserialize, ToSchema)]
pub struct PushMessage {
    /// 1 to 100 characters.
    pub title: String,
    /// 1 to 500 characters.
    pub body: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PushEventRequest {
    /// 1 to 100 user ids.
    pub recipients_ids: Vec<Uuid>,
    pub message: PushMessage,
}

impl FieldAliases for PushEventRequest {
    const ALIASES: &'static [Alias] = &[Alias::new("recipientsIds", "recipients_ids")];
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PushEventView {
    #[serde(rename = "_id")]
    pub id: Uuid,
    /// Those of the requested recipients the push goes to.
    pub recipients_ids: Vec<Uuid>,
    pub created_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PushEventData {
    pub event: PushEventView,
    /// Requested recipients left out: those who share no active conversation with the caller,
    /// unknown ids, and the caller.
    pub skipped_count: usize,
}

/// Push a notification that is not a message (SAMA's `push_event_create`).
///
/// Goes to every device of each recipient who shares an active conversation with the caller
/// (not a pending or declined chat request); the others are left out and counted in
/// `skippedCount`. Someone in a block with the caller gets nothing and is listed as reached
/// (a block is never told). Sent whether or not the recipients are online. The
/// payload is `{title, body, firstAttachmentUrl: null, senderId, eventId, pushId}`.
#[utoipa::path(
    post, path = "/api/v1/push/event", tag = "push",
    security(("bearer" = [])),
    request_body = PushEventRequest,
    responses(
        (status = 201, description = "Queued", body = Success<PushEventData>),
        (status = 400, description = "The body is not JSON", body = ErrorEnvelope),
        (status = 401, description = "Missing, invalid or expired access token", body = ErrorEnvelope),
        (status = 422, description = "No recipients, too many, or a title or body out of bounds (`validation_failed`)", body = ErrorEnvelope),
        (status = 429, description = "Past the caller's budget (`rate_limited`, `RATE_LIMIT_PUSH_EVENT`)", body = ErrorEnvelope),
    )
)]
#[post("/event")]
pub async fn create_event(
    state: web::Data<AppState>,
    caller: AuthUser,
    body: Json<PushEventRequest>,
) -> Result<HttpResponse, ApiError> {
    let request = body.into_inner();
    let mut requested = request.recipients_ids.clone();
    requested.sort();
    requested.dedup();
    let (title, body, _) = super::collect_fields((
        super::field("message.title", bounded_text(&request.message.title, TITLE_MAX)),
        super::field("message.body", bounded_text(&request.message.body, BODY_MAX)),
        super::field(
            "recipientsIds",
            if requested.is_empty() || requested.len() > RECIPIENTS_MAX {
                Err(format!("must name 1 to {RECIPIENTS_MAX} users"))
            } else {
                Ok(())
            },
        ),
    ))?;
    state.check_rate_limit(Action::PushEvent, caller.user_id)?;
    let shared = state.store.push_event_recipients(caller.user_id, &requested).await?;
    // Someone in a block with the caller reads as reached: the caller is never told of a
    // block, so they get nothing and count as sent to.
    let unblocked: Vec<Uuid> = shared
        .iter()
        .filter(|(_, blocked)| !blocked)
        .map(|(user, _)| *user)
        .collect();
    let recipients: Vec<Uuid> = shared.into_iter().map(|(user, _)| user).collect();
    let event = state.push.push_event(caller.user_id, &unblocked, &title, &body).await?;
    Ok(created(PushEventData {
        skipped_count: requested.len() - recipients.len(),
        event: PushEventView {
            id: event,
            recipients_ids: recipients,
            created_at: store::now(),
        },
    }))
}

/// `text` trimmed, if it has 1 to `max` characters.
fn bounded_text(text: &str, max: usize) -> Result<String, String> {
    let text = text.trim();
    if text.is_empty() || text.chars().count() > max {
        Err(format!("must be 1 to {max} characters"))
    } else {
        Ok(text.to_string())
    }
}
