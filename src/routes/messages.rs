//! `/api/v1/message`: sending and reading messages.

use actix_web::{HttpResponse, get, post, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::envelope::{Success, created, ok};
use super::views::MessageView;
use super::{collect_fields, field};
use crate::auth::AuthUser;
use crate::domain::{ClientId, MessageText, page_limit};
use crate::error::{ApiError, ErrorEnvelope};
use crate::realtime::events;
use crate::startup::AppState;
use crate::store::{self, MessagePage, NewMessage, Sent};

#[derive(Deserialize, ToSchema)]
pub struct SendMessageRequest {
    /// The conversation. Aliases: `conversationId`, `convoId`.
    #[serde(alias = "conversationId", alias = "convoId")]
    pub convo_id: Uuid,
    /// The text, 1 to 10,000 characters.
    #[schema(example = "Hello!")]
    pub message: String,
    /// An idempotency key chosen by the client: a retried send with the same key returns
    /// the stored message (200) instead of storing it twice. Alias: `client_id`.
    #[serde(default, rename = "clientId", alias = "client_id")]
    pub client_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct MessageData {
    pub message: MessageView,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessagesData {
    pub messages: Vec<MessageView>,
    /// Pass as `before` (or as `after`, when paging forward with `after`) for the next page;
    /// `null` on the last page.
    pub next_cursor: Option<String>,
    /// The event position this page was read at: open the event stream from it
    /// (`Last-Event-ID`) to miss nothing that happened after.
    pub event_id: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MessageListQuery {
    /// Page size: 1 to 100, default 50.
    pub limit: Option<u32>,
    /// Only messages older than this message id (newest first).
    pub before: Option<Uuid>,
    /// Only messages newer than this message id; the page is then oldest first.
    pub after: Option<Uuid>,
}

/// Send a message.
///
/// 201 with the stored message; 200 with the message stored earlier when `clientId` repeats
/// an earlier send (a retry).
#[utoipa::path(
    post, path = "/api/v1/message", tag = "messages",
    security(("bearer" = [])),
    request_body = SendMessageRequest,
    responses(
        (status = 201, description = "Stored", body = Success<MessageData>),
        (status = 200, description = "A retry: the message stored earlier with this clientId", body = Success<MessageData>),
        (status = 400, description = "Body is not JSON", body = ErrorEnvelope),
        (status = 401, description = "Missing, invalid or expired access token", body = ErrorEnvelope),
        (status = 404, description = "No such conversation, or the caller is not in it", body = ErrorEnvelope),
        (status = 413, description = "Body too large", body = ErrorEnvelope),
        (status = 415, description = "Not application/json", body = ErrorEnvelope),
        (status = 422, description = "Missing or invalid field", body = ErrorEnvelope),
    )
)]
#[post("")]
pub async fn send_message(
    state: web::Data<AppState>,
    caller: AuthUser,
    body: web::Json<SendMessageRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let (content, client_id) = collect_fields((
        field("message", MessageText::parse(&body.message)),
        field("clientId", body.client_id.as_deref().map(ClientId::parse).transpose()),
    ))?;
    let sent = state
        .store
        .create_message(
            &NewMessage {
                id: Uuid::now_v7(),
                conversation_id: body.convo_id,
                sender_id: caller.user_id,
                content: content.into_inner(),
                client_id: client_id.map(ClientId::into_inner),
                created_at: store::now(),
            },
            events::message_created,
        )
        .await?;
    Ok(match sent {
        Sent::Created(message) => created(MessageData {
            message: message.into(),
        }),
        Sent::AlreadyStored(message) => ok(MessageData {
            message: message.into(),
        }),
    })
}

/// A conversation's messages.
///
/// Newest first, paginated by message id with `before`; with `after`, oldest first from just
/// after that message (for catching up).
#[utoipa::path(
    get, path = "/api/v1/message/{conversationId}", tag = "messages",
    security(("bearer" = [])),
    params(("conversationId" = Uuid, Path, description = "The conversation's id"), MessageListQuery),
    responses(
        (status = 200, description = "A page of messages", body = Success<MessagesData>),
        (status = 400, description = "Malformed id or query string", body = ErrorEnvelope),
        (status = 401, description = "Missing, invalid or expired access token", body = ErrorEnvelope),
        (status = 404, description = "No such conversation, or the caller is not in it", body = ErrorEnvelope),
        (status = 422, description = "`limit` out of range, or a cursor that is not a message of this conversation", body = ErrorEnvelope),
    )
)]
#[get("/{conversationId}")]
pub async fn list_messages(
    state: web::Data<AppState>,
    caller: AuthUser,
    conversation: web::Path<Uuid>,
    query: web::Query<MessageListQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let limit = page_limit(query.limit, 50, 100).map_err(|problem| ApiError::invalid_field("limit", problem))?;
    let page = MessagePage {
        before: query.before,
        after: query.after,
        limit: limit + 1,
    };
    // Read before the page: whatever happens after this position is in the stream.
    let event_id = state.store.head_position().await?.to_string();
    let mut messages = state
        .store
        .list_messages(caller.user_id, conversation.into_inner(), page)
        .await?;
    let next_cursor = super::next_page(&mut messages, limit, |message| message.id.to_string());
    Ok(ok(MessagesData {
        messages: messages.into_iter().map(MessageView::from).collect(),
        next_cursor,
        event_id,
    }))
}
