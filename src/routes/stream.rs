//! `/api/v1/events`: the SSE stream, its tickets, and the same events as JSON for polling.

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, Responder, get, post, web};
use actix_web_lab::sse::Sse;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::{IntoParams, ToSchema};

use super::envelope::{Success, ok};
use super::extract::Query;
use crate::auth::AuthUser;
use crate::auth::tokens::{random_hex, sha256};
use crate::domain::page_limit;
use crate::error::{ApiError, ErrorCode, ErrorEnvelope};
use crate::limits::Action;
use crate::realtime::payloads::RESET;
use crate::realtime::stream::{self, Resume, Start};
use crate::state::AppState;
use crate::store::{self, EventPosition};

/// How long a stream ticket may wait to be used.
const TICKET_TTL: chrono::Duration = chrono::Duration::seconds(60);

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TicketData {
    /// Single use: pass as `?ticket=` to `GET /api/v1/events/stream` within 60 s.
    pub ticket: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct StreamQuery {
    /// A ticket from `POST /api/v1/events/ticket`, for clients that cannot send headers
    /// (browsers' `EventSource`).
    pub ticket: Option<String>,
    /// Resume after this event id; the `Last-Event-ID` header takes precedence.
    pub last_event_id: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventListQuery {
    /// Events after this id (`eventId` of a list response, or `nextAfter` of the previous
    /// poll). Absent: from the oldest event kept.
    pub after: Option<String>,
    /// At most this many events: 1 to 1000, default 100.
    pub limit: Option<u32>,
}

/// One event, as the stream sends it.
#[derive(Serialize, ToSchema)]
pub struct EventItem {
    /// The position: resume after it with `Last-Event-ID` or `after`.
    pub id: String,
    /// The type, e.g. `message.created`.
    #[schema(example = "message.created")]
    pub event: String,
    /// The payload (for message events, the message itself).
    #[schema(value_type = Object)]
    pub data: Box<RawValue>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventsData {
    pub events: Vec<EventItem>,
    /// Pass as `after` next time (unchanged when there was nothing new).
    pub next_after: String,
}

/// Get a ticket for opening the event stream.
///
/// Browsers' `EventSource` cannot send an Authorization header, and long-lived tokens do not
/// belong in URLs: this short-lived (60 s), single-use ticket does.
#[utoipa::path(
    post, path = "/api/v1/events/ticket", tag = "events",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A fresh ticket", body = Success<TicketData>),
        (status = 401, description = "Missing, invalid or expired access token", body = ErrorEnvelope),
        (status = 429, description = "Past the caller's budget (`rate_limited`, with `Retry-After` and `RateLimit`)", body = ErrorEnvelope),
    )
)]
#[post("/ticket")]
pub async fn create_ticket(state: web::Data<AppState>, caller: AuthUser) -> Result<impl Responder, ApiError> {
    state.check_rate_limit(Action::Stream, caller.user_id)?;
    let ticket = random_hex(32);
    let expires_at = store::now() + TICKET_TTL;
    state
        .store
        .create_stream_ticket(&sha256(&ticket), caller.user_id, caller.session_id, expires_at)
        .await?;
    Ok(ok(TicketData { ticket, expires_at }))
}

/// The caller's event stream (Server-Sent Events).
///
/// Authenticate with `Authorization: Bearer <token>` or `?ticket=`. Each event has `id:` (its
/// position), `event:` (its type) and `data:` (JSON): `message.created`, `message.updated`,
/// `message.deleted`, `message.read`, `conversation.created`, `conversation.updated`,
/// `conversation.removed`, and the live-only `typing` and `presence` (no `id:`). Reconnect with
/// `Last-Event-ID` (header, or `lastEventId`) to receive every stored event missed, in order,
/// exactly once, then live ones. A position the log cannot serve (too old, unknown) gets an
/// `event: reset`: refetch your state and continue from its `id`. A keep-alive comment comes
/// every 15 s; a stream that falls too far behind is closed (just reconnect).
#[utoipa::path(
    get, path = "/api/v1/events/stream", tag = "events",
    security(("bearer" = [])),
    params(StreamQuery, ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id")),
    responses(
        (status = 200, description = "The event stream", content_type = "text/event-stream", body = String),
        (status = 401, description = "Missing, invalid, expired or used token or ticket", body = ErrorEnvelope),
        (status = 429, description = "Past the caller's budget (`rate_limited`, with `Retry-After` and `RateLimit`)", body = ErrorEnvelope),
    )
)]
#[get("/stream")]
pub async fn open_stream(
    state: web::Data<AppState>,
    request: HttpRequest,
    query: Query<StreamQuery>,
) -> Result<impl Responder, ApiError> {
    let query = query.into_inner();
    let (user, session) = if request.headers().contains_key(header::AUTHORIZATION) {
        let caller = AuthUser::from_request(&request, &mut Payload::None).await?;
        (caller.user_id, caller.session_id)
    } else {
        let ticket = query.ticket.as_deref().ok_or_else(|| {
            ApiError::unauthorized(
                ErrorCode::MissingToken,
                "send 'Authorization: Bearer <token>' or ?ticket= from /events/ticket",
            )
        })?;
        let invalid = || {
            ApiError::unauthorized(
                ErrorCode::InvalidTicket,
                "the ticket is unknown, expired or already used",
            )
        };
        let (user, session) = state
            .store
            .redeem_stream_ticket(&sha256(ticket), store::now())
            .await?
            .ok_or_else(invalid)?;
        if !state.store.session_is_active(session, user).await? {
            return Err(invalid());
        }
        (user, session)
    };
    state.check_rate_limit(Action::Stream, user)?;
    let header_position = request
        .headers()
        .get("last-event-id")
        .and_then(|value| value.to_str().ok());
    let resume = Resume::parse(header_position.or(query.last_event_id.as_deref()));
    let events = stream::open(&state.hub, user, session, resume).await?;
    let settings = state.hub.settings();
    Ok(Sse::from_infallible_stream(events)
        .with_keep_alive(settings.keep_alive)
        .with_retry_duration(settings.retry)
        .customize()
        // Reverse proxies (nginx) must pass events through at once, not buffer them.
        .insert_header(("X-Accel-Buffering", "no")))
}

/// The caller's events as JSON, for clients that poll.
///
/// The same events, order and positions as the stream. A position the log cannot serve
/// answers a single `reset` event.
#[utoipa::path(
    get, path = "/api/v1/events", tag = "events",
    security(("bearer" = [])),
    params(EventListQuery),
    responses(
        (status = 200, description = "Events after `after`, oldest first", body = Success<EventsData>),
        (status = 400, description = "Malformed query string", body = ErrorEnvelope),
        (status = 401, description = "Missing, invalid or expired access token", body = ErrorEnvelope),
        (status = 422, description = "`after` is not an event id, or `limit` out of range", body = ErrorEnvelope),
        (status = 429, description = "Past the caller's budget (`rate_limited`, with `Retry-After` and `RateLimit`)", body = ErrorEnvelope),
    )
)]
#[get("")]
pub async fn list_events(
    state: web::Data<AppState>,
    caller: AuthUser,
    query: Query<EventListQuery>,
) -> Result<impl Responder, ApiError> {
    state.check_rate_limit(Action::Stream, caller.user_id)?;
    let query = query.into_inner();
    let limit = page_limit(query.limit, 100, 1000).map_err(|problem| ApiError::invalid_field("limit", problem))?;
    let after = match query.after.as_deref() {
        None => state.store.pruned_through().await?,
        Some(raw) => EventPosition::parse(raw).ok_or_else(|| ApiError::invalid_field("after", "is not an event id"))?,
    };
    let after = match stream::start_for(&state.store, Resume::After(after)).await? {
        Start::After(position) => position,
        Start::Reset { head, reason } => {
            let data = serde_json::to_string(&crate::realtime::payloads::ResetData {
                reason: reason.to_string(),
            })
            .map_err(ApiError::internal)?;
            let item = EventItem {
                id: head.to_string(),
                event: RESET.to_string(),
                data: RawValue::from_string(data).map_err(ApiError::internal)?,
            };
            return Ok(ok(EventsData {
                events: vec![item],
                next_after: head.to_string(),
            }));
        }
    };
    // The head first: every event at or below it is final, so when the page is not full the
    // caller has seen all of theirs up to it, and the next poll starts there instead of
    // rescanning everyone else's events since `after` again.
    let head = state.store.head_position().await?;
    let stored = state.store.user_events_after(caller.user_id, after, limit).await?;
    let last = stored.last().map_or(after, |event| event.position());
    let page_full = stored.len() >= limit as usize;
    let next_after = if page_full { last } else { last.max(head) }.to_string();
    let events = stored
        .into_iter()
        .map(|event| {
            Ok(EventItem {
                id: event.position().to_string(),
                event: event.kind,
                data: RawValue::from_string(crate::realtime::payload_for(
                    &event.payload,
                    caller.user_id,
                    &state.file_links,
                ))
                .map_err(ApiError::internal)?,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(ok(EventsData { events, next_after }))
}
