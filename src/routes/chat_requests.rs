//! `/api/v1/chat-request`: direct conversations that wait for the recipient to accept, and
//! invitations to groups for users whose message policy is `requests`.

use actix_web::{HttpResponse, get, post, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::envelope::{Success, created, ok};
use super::extract::{Alias, FieldAliases, Json, Path, Query};
use crate::auth::AuthUser;
use crate::domain::page_limit;
use crate::error::{ApiError, ErrorEnvelope};
use crate::limits::Action;
use crate::realtime::payloads;
use crate::state::AppState;
use crate::store::{self, RequestFilter};
use crate::views::ChatRequestView;

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChatRequestRequest {
    /// The user to ask. Alias: `user_id`.
    pub user_id: Uuid,
}

impl FieldAliases for ChatRequestRequest {
    const ALIASES: &'static [Alias] = &[Alias::new("userId", "user_id")];
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChatRequestData {
    pub chat_request: ChatRequestView,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChatRequestsData {
    pub chat_requests: Vec<ChatRequestView>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RequestStatus {
    #[default]
    Pending,
    Rejected,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    #[default]
    Incoming,
    Outgoing,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChatRequestQuery {
    /// `pending` (default) or `rejected` (declined).
    pub status: Option<RequestStatus>,
    /// `incoming` (default: sent to the caller) or `outgoing` (sent by the caller).
    pub direction: Option<Direction>,
    /// How many to skip (default 0).
    pub skip: Option<u32>,
    /// How many (1 to 100, default 15).
    pub limit: Option<u32>,
}

/// Ask a user to chat.
///
/// Opens a pending direct conversation: the requester may send into it at once; the recipient
/// sees it under requests (not in the conversation list) until accepting. Sends
/// `chat_request.created` to both users' streams.
#[utoipa::path(
    post, path = "/api/v1/chat-request", tag = "chat requests",
    security(("bearer" = [])),
    request_body = ChatRequestRequest,
    responses(
        (status = 201, description = "The request", body = Success<ChatRequestData>),
        (status = 400, description = "Body is not JSON", body = ErrorEnvelope),
        (status = 401, description = "Missing, invalid or expired access token", body = ErrorEnvelope),
        (status = 403, description = "The recipient declined the caller's request within `CHAT_REQUEST_COOLDOWN_DAYS` (`chat_request_declined`)", body = ErrorEnvelope),
        (status = 404, description = "No such user", body = ErrorEnvelope),
        (status = 409, description = "The two already have a conversation (`chat_exists`)", body = ErrorEnvelope),
        (status = 422, description = "Missing `userId`, or yourself", body = ErrorEnvelope),
        (status = 429, description = "Past the caller's budget (`rate_limited`, with `Retry-After` and `RateLimit`)", body = ErrorEnvelope),
    )
)]
#[post("")]
pub async fn create_chat_request(
    state: web::Data<AppState>,
    caller: AuthUser,
    body: Json<ChatRequestRequest>,
) -> Result<HttpResponse, ApiError> {
    state.check_rate_limit(Action::ChatRequest, caller.user_id)?;
    let recipient = body.user_id;
    if recipient == caller.user_id {
        return Err(ApiError::invalid_field(
            "userId",
            "cannot send a chat request to yourself",
        ));
    }
    if state.store.find_user(recipient).await?.is_none() {
        return Err(ApiError::not_found("user"));
    }
    let request = state
        .store
        .create_chat_request(
            caller.user_id,
            recipient,
            Uuid::now_v7(),
            store::now(),
            payloads::chat_request,
        )
        .await?;
    Ok(created(ChatRequestData {
        chat_request: request.into(),
    }))
}

/// The caller's chat requests and group invitations.
///
/// Newest first; `skip`/`limit` paging. Each has a `kind`: `direct` (a direct conversation,
/// `chatId` its id) or `group_invitation` (`chatId` the group's id, `groupName` its name; the
/// recipient is not a member until accepting). Outgoing invitations are those the caller made.
#[utoipa::path(
    get, path = "/api/v1/chat-request", tag = "chat requests",
    security(("bearer" = [])),
    params(ChatRequestQuery),
    responses(
        (status = 200, description = "The requests", body = Success<ChatRequestsData>),
        (status = 400, description = "Malformed query string (unknown status or direction)", body = ErrorEnvelope),
        (status = 401, description = "Missing, invalid or expired access token", body = ErrorEnvelope),
        (status = 422, description = "`limit` out of range", body = ErrorEnvelope),
    )
)]
#[get("")]
pub async fn list_chat_requests(
    state: web::Data<AppState>,
    caller: AuthUser,
    query: Query<ChatRequestQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = page_limit(query.limit, 15, 100).map_err(|problem| ApiError::invalid_field("limit", problem))?;
    let filter = RequestFilter {
        status: match query.status.unwrap_or_default() {
            RequestStatus::Pending => "pending",
            RequestStatus::Rejected => "declined",
        },
        incoming: matches!(query.direction.unwrap_or_default(), Direction::Incoming),
        skip: query.skip.unwrap_or(0),
        limit,
    };
    let requests = state.store.list_chat_requests(caller.user_id, filter).await?;
    Ok(ok(ChatRequestsData {
        chat_requests: requests.into_iter().map(ChatRequestView::from).collect(),
    }))
}

/// Accept a chat request or a group invitation (its recipient only).
///
/// A direct request becomes an ordinary conversation; `chat_request.accepted` goes to both
/// users' streams. An invitation makes the caller a member of the group from now on (its
/// members get the system message and `conversation.updated`, the caller
/// `conversation.created`). A declined direct request may be accepted later; a declined
/// invitation may not (the group can invite again after the cooldown).
#[utoipa::path(
    post, path = "/api/v1/chat-request/{chatId}/accept", tag = "chat requests",
    security(("bearer" = [])),
    params(("chatId" = Uuid, Path, description = "The request's conversation id")),
    responses(
        (status = 200, description = "Accepted", body = Success<ChatRequestData>),
        (status = 400, description = "The id is not a UUID", body = ErrorEnvelope),
        (status = 401, description = "Missing, invalid or expired access token", body = ErrorEnvelope),
        (status = 403, description = "The requester cannot answer their own request", body = ErrorEnvelope),
        (status = 404, description = "No such request for the caller", body = ErrorEnvelope),
        (status = 409, description = "Answered already (`chat_request_answered`)", body = ErrorEnvelope),
        (status = 422, description = "The id holds U+0000 (`validation_failed`), or the group has no seat left (`validation_failed` on `participants`)", body = ErrorEnvelope),
        (status = 429, description = "Past the caller's budget (`rate_limited`, with `Retry-After` and `RateLimit`)", body = ErrorEnvelope),
    )
)]
#[post("/{chatId}/accept")]
pub async fn accept_chat_request(
    state: web::Data<AppState>,
    caller: AuthUser,
    chat: Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    answer(&state, caller, chat.into_inner(), true).await
}

/// Decline a chat request or a group invitation (its recipient only).
///
/// The requester can no longer send into it; `chat_request.declined` goes to both users'
/// streams. For `CHAT_REQUEST_COOLDOWN_DAYS` the requester (for an invitation: the member who
/// invited) can neither ask again, nor open a conversation, nor add the caller to a group.
#[utoipa::path(
    post, path = "/api/v1/chat-request/{chatId}/decline", tag = "chat requests",
    security(("bearer" = [])),
    params(("chatId" = Uuid, Path, description = "The request's conversation id")),
    responses(
        (status = 200, description = "Declined", body = Success<ChatRequestData>),
        (status = 400, description = "The id is not a UUID", body = ErrorEnvelope),
        (status = 401, description = "Missing, invalid or expired access token", body = ErrorEnvelope),
        (status = 403, description = "The requester cannot answer their own request", body = ErrorEnvelope),
        (status = 404, description = "No such request for the caller", body = ErrorEnvelope),
        (status = 409, description = "Answered already (`chat_request_answered`)", body = ErrorEnvelope),
        (status = 422, description = "The id holds U+0000 (`validation_failed`)", body = ErrorEnvelope),
        (status = 429, description = "Past the caller's budget (`rate_limited`, with `Retry-After` and `RateLimit`)", body = ErrorEnvelope),
    )
)]
#[post("/{chatId}/decline")]
pub async fn decline_chat_request(
    state: web::Data<AppState>,
    caller: AuthUser,
    chat: Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    answer(&state, caller, chat.into_inner(), false).await
}

/// Answers the caller's invitation to group `chat` if they have one, else their direct
/// request `chat`.
async fn answer(state: &AppState, caller: AuthUser, chat: Uuid, accept: bool) -> Result<HttpResponse, ApiError> {
    state.check_rate_limit(Action::ChatRequest, caller.user_id)?;
    let request = match state.store.invitation_for(caller.user_id, chat).await? {
        Some(invitation) => {
            state
                .store
                .answer_group_invitation(&invitation, accept, store::now(), payloads::invitation_answered)
                .await?
                .request
        }
        None => {
            let member = state.store.member_of(caller.user_id, chat).await?;
            state
                .store
                .answer_chat_request(&member, accept, store::now(), payloads::chat_request)
                .await?
        }
    };
    Ok(ok(ChatRequestData {
        chat_request: request.into(),
    }))
}
