//! `/api/v1/message`: sending and reading messages.

use actix_multipart::Multipart;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, HttpResponse, delete, get, patch, post, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::envelope::{Success, created_signed, ok, ok_signed};
use super::extract::{Alias, FieldAliases, Json, Path, Query};
use super::files::{Form, complete_pending, read_form, record};
use super::{collect_fields, field};
use crate::auth::AuthUser;
use crate::domain::{ClientId, ExternalUrl, MessageText, page_limit};
use crate::error::{ApiError, ErrorEnvelope};
use crate::limits::Action;
use crate::realtime::payloads;
use crate::state::AppState;
use crate::store::{self, DeleteScope, FileState, Member, Message, MessageLink, MessagePage, NewMessage, Sent};
use crate::views::MessageView;

#[derive(Deserialize, ToSchema)]
pub struct SendMessageRequest {
    /// The conversation. Aliases: `conversationId`, `convoId`, `cid`.
    pub convo_id: Uuid,
    /// The text, 1 to 10,000 characters; may be empty (or absent) when `files` are attached.
    /// Aliases: `text`, `body`.
    #[schema(example = "Hello!")]
    #[serde(default)]
    pub message: String,
    /// Files the caller uploaded (`POST /file`) to attach, in order: at most 10.
    #[serde(default)]
    pub files: Vec<Uuid>,
    /// An idempotency key chosen by the client: a retried send with the same key returns
    /// the stored message (200) instead of storing it twice. Alias: `client_id`.
    #[serde(default, rename = "clientId")]
    pub client_id: Option<String>,
    /// The id of the message this one answers, in the same conversation. Aliases: `reply_to`,
    /// `reply`.
    #[serde(default, rename = "replyTo")]
    pub reply_to: Option<Uuid>,
    /// Custom data for the client: a JSON object of at most 4 KiB (serialised), stored and
    /// returned untouched.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub x: Option<serde_json::Value>,
    /// An image to show with the message (the chat-requests API's field): an `http(s)://`
    /// URL, kept as an attachment of kind `image_url`; the server never fetches it. Alias:
    /// `image_url`.
    #[serde(default, rename = "imageUrl")]
    #[schema(example = "https://example.com/cat.jpg")]
    pub image_url: Option<String>,
    /// A page the message links to, kept as an attachment of kind `link` (not fetched: the
    /// client draws any preview). Alias: `link_preview_url`.
    #[serde(default, rename = "linkPreviewUrl")]
    pub link_preview_url: Option<String>,
}

/// Chatify's multipart send (documentation only: the body is read as a stream). Any other
/// field of the JSON body may be given as a text part too (`x` as JSON text).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct SendMessageForm {
    pub convo_id: Uuid,
    /// May be empty when files come along.
    pub message: Option<String>,
    /// Up to 10 files, each uploaded as `POST /file` would.
    #[schema(value_type = Vec<String>, format = Binary)]
    pub files: Vec<Vec<u8>>,
}

/// The conversation's names in the seed APIs, for every body that names one.
const CONVERSATION_ALIASES: [Alias; 3] = [
    Alias::new("convo_id", "conversationId"),
    Alias::new("convo_id", "convoId"),
    Alias::new("convo_id", "cid"),
];

impl FieldAliases for SendMessageRequest {
    const ALIASES: &'static [Alias] = &[
        CONVERSATION_ALIASES[0],
        CONVERSATION_ALIASES[1],
        CONVERSATION_ALIASES[2],
        Alias::new("message", "text"),
        Alias::new("message", "body"),
        Alias::new("clientId", "client_id"),
        Alias::new("replyTo", "reply_to"),
        Alias::new("replyTo", "reply"),
        Alias::new("imageUrl", "image_url"),
        Alias::new("linkPreviewUrl", "link_preview_url"),
    ];
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
/// an earlier send (a retry). JSON, or Chatify's `multipart/form-data` with `convo_id`,
/// `message` and `files` parts: the files are uploaded as `POST /file` would and attached
/// (a refused send keeps none of them).
#[utoipa::path(
    post, path = "/api/v1/message", tag = "messages",
    security(("bearer" = [])),
    request_body(content((SendMessageRequest = "application/json"), (SendMessageForm = "multipart/form-data"))),
    responses(
        (status = 201, description = "Stored", body = Success<MessageData>),
        (status = 200, description = "A retry: the message stored earlier with this clientId", body = Success<MessageData>),
        (status = 400, description = "Body is not JSON", body = ErrorEnvelope),
        (status = 401, description = "Missing, invalid or expired access token", body = ErrorEnvelope),
        (status = 403, description = "A chat request that does not take this message: the caller received it and has not accepted, or sent `CHAT_REQUEST_MAX_MESSAGES` already (`chat_request_pending`); or the recipient declined it (`chat_request_declined`)", body = ErrorEnvelope),
        (status = 404, description = "No such conversation, or the caller is not in it", body = ErrorEnvelope),
        (status = 413, description = "Body too large; in a form, a file past `FILE_MAX_BYTES` (`file_too_large`) or the quota (`quota_exceeded`)", body = ErrorEnvelope),
        (status = 415, description = "Neither application/json nor multipart/form-data; in a form, a file of a type not allowed (`file_type_not_allowed`)", body = ErrorEnvelope),
        (status = 422, description = "Missing or invalid field: text, clientId, `replyTo` not in this conversation, `x` not an object or over 4 KiB, `files` over 10 or not files the caller uploaded", body = ErrorEnvelope),
        (status = 429, description = "Past the caller's budget (`rate_limited`, with `Retry-After` and `RateLimit`)", body = ErrorEnvelope),
    )
)]
#[post("")]
pub async fn send_message(
    state: web::Data<AppState>,
    caller: AuthUser,
    request: HttpRequest,
    payload: web::Payload,
) -> actix_web::Result<HttpResponse> {
    state.check_rate_limit(Action::Send, caller.user_id)?;
    let multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value
                .trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/form-data")
        });
    if !multipart {
        let body = Json::<SendMessageRequest>::from_request(&request, &mut payload.into_inner()).await?;
        return Ok(send(&state, caller, body.into_inner()).await?);
    }
    // Chatify's form: `convo_id`, `message` and `files` parts in one request. The files are
    // stored first, then sent; a refused send takes them back.
    state.check_rate_limit(Action::Upload, caller.user_id)?;
    let _slot = state.upload_slot(caller.user_id)?;
    let parts = Multipart::new(request.headers(), payload);
    let mut form = Form::new(&state.files);
    let outcome = async {
        read_form(&state, caller.user_id, parts, "files", &mut form).await?;
        let body = form_message(&form)?;
        record(&state, &form.files, FileState::Ready).await?;
        send(&state, caller, body).await
    }
    .await;
    match outcome {
        Ok(response) => {
            form.kept.keep();
            Ok(response)
        }
        Err(error) => {
            let ids: Vec<Uuid> = form.files.iter().map(|file| file.id).collect();
            if let Err(cleanup) = state.store.forget_files(caller.user_id, &ids).await {
                tracing::warn!(error = %cleanup, "could not forget the files of a refused send");
            }
            form.kept.discard().await;
            Err(error.into())
        }
    }
}

/// The send a multipart form asks for: its text fields as the JSON body would carry them
/// (with the same names and aliases; `x` as JSON text), and its uploaded files.
fn form_message(form: &Form) -> Result<SendMessageRequest, ApiError> {
    let mut body = serde_json::Map::new();
    for (name, value) in &form.fields {
        let value = if name == "x" {
            serde_json::from_str(value).map_err(|_| ApiError::invalid_field("x", "must be a JSON object"))?
        } else {
            serde_json::Value::from(value.as_str())
        };
        body.insert(name.clone(), value);
    }
    body.insert(
        "files".into(),
        form.files
            .iter()
            .map(|file| serde_json::Value::from(file.id.to_string()))
            .collect(),
    );
    let bytes = serde_json::to_vec(&body).map_err(ApiError::internal)?;
    super::extract::parse_json(&bytes)
}

/// Stores and announces the message `body` asks for.
async fn send(state: &AppState, caller: AuthUser, body: SendMessageRequest) -> Result<HttpResponse, ApiError> {
    // The gate first: an outsider learns nothing, not even what is wrong with the body.
    let member = state.store.member_of(caller.user_id, body.convo_id).await?;
    let files = attached_files(&body.files);
    if let Ok(files) = &files {
        // Two-step uploads not completed yet are completed on first use.
        let pending = state.store.pending_files(caller.user_id, files).await?;
        if !pending.is_empty() {
            let _slot = state.upload_slot(caller.user_id)?;
            for file in pending {
                complete_pending(state, file, "files").await?;
            }
        }
    }
    let url = |raw: &Option<String>| raw.as_deref().map(ExternalUrl::parse).transpose();
    let (image_url, link_preview_url) = (url(&body.image_url), url(&body.link_preview_url));
    // Something to show besides text: then the text may be empty.
    let carries = matches!(&files, Ok(files) if !files.is_empty())
        || matches!(&image_url, Ok(Some(_)))
        || matches!(&link_preview_url, Ok(Some(_)));
    let (content, client_id, x, files, image_url, link_preview_url) = collect_fields((
        field(
            "message",
            if carries && body.message.trim().is_empty() {
                Ok(String::new())
            } else {
                MessageText::parse(&body.message).map(MessageText::into_inner)
            },
        ),
        field("clientId", body.client_id.as_deref().map(ClientId::parse).transpose()),
        field("x", body.x.as_ref().map(custom_data).transpose()),
        field("files", files),
        field("imageUrl", image_url),
        field("linkPreviewUrl", link_preview_url),
    ))?;
    let links = [(MessageLink::IMAGE, image_url), (MessageLink::LINK, link_preview_url)]
        .into_iter()
        .filter_map(|(kind, url)| {
            url.map(|url| MessageLink {
                kind: kind.to_string(),
                url: url.into_inner(),
            })
        })
        .collect();
    let sent = state
        .store
        .create_message(
            &member,
            &NewMessage {
                id: Uuid::now_v7(),
                conversation_id: member.conversation(),
                sender_id: member.user(),
                content,
                client_id: client_id.map(ClientId::into_inner),
                reply_to: body.reply_to,
                x,
                files,
                links,
                created_at: store::now(),
            },
            payloads::message_created,
        )
        .await?;
    Ok(match sent {
        Sent::Created(message) => created_signed(
            MessageData {
                message: MessageView::newly_sent(message),
            },
            &state.file_signer(caller.user_id),
        ),
        Sent::AlreadyStored(message) => {
            let positions = state.store.read_positions(&member).await?;
            ok_signed(
                MessageData {
                    message: with_read_state(message, &positions),
                },
                &state.file_signer(caller.user_id),
            )
        }
    })
}

/// At most [`MAX_FILES_PER_MESSAGE`] distinct files, in the order given (a repeat is dropped).
fn attached_files(files: &[Uuid]) -> Result<Vec<Uuid>, String> {
    let mut distinct: Vec<Uuid> = Vec::with_capacity(files.len().min(MAX_FILES_PER_MESSAGE));
    for file in files {
        if !distinct.contains(file) {
            distinct.push(*file);
        }
        if distinct.len() > MAX_FILES_PER_MESSAGE {
            return Err(format!("at most {MAX_FILES_PER_MESSAGE} files"));
        }
    }
    Ok(distinct)
}

/// How many files one message carries at most.
const MAX_FILES_PER_MESSAGE: usize = 10;

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
    conversation: Path<Uuid>,
    query: Query<MessageListQuery>,
) -> Result<HttpResponse, ApiError> {
    let member = state.store.member_of(caller.user_id, conversation.into_inner()).await?;
    let query = query.into_inner();
    let limit = page_limit(query.limit, 50, 100).map_err(|problem| ApiError::invalid_field("limit", problem))?;
    let page = MessagePage {
        before: query.before,
        after: query.after,
        limit: limit + 1,
    };
    // Read before the page: whatever happens after this position is in the stream.
    let event_id = state.store.head_position().await?.to_string();
    let mut messages = state.store.list_messages(&member, page).await?;
    let next_cursor = super::next_page(&mut messages, limit, |message| message.id.to_string());
    let positions = state.store.read_positions(&member).await?;
    let data = MessagesData {
        messages: messages
            .into_iter()
            .map(|message| with_read_state(message, &positions))
            .collect(),
        next_cursor,
        event_id,
    };
    Ok(ok_signed(data, &state.file_signer(caller.user_id)))
}

#[derive(Deserialize, ToSchema)]
pub struct EditMessageRequest {
    /// The new text, 1 to 10,000 characters.
    #[schema(example = "Hello again!")]
    pub message: String,
}

impl FieldAliases for EditMessageRequest {
    const ALIASES: &'static [Alias] = &[Alias::new("message", "text"), Alias::new("message", "body")];
}

/// Edit one of the caller's messages.
///
/// Replaces the text and sets `editedAt`; `message.updated` (the message) goes to every
/// participant's streams.
#[utoipa::path(
    patch, path = "/api/v1/message/{id}", tag = "messages",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The message's id")),
    request_body = EditMessageRequest,
    responses(
        (status = 200, description = "The edited message", body = Success<MessageData>),
        (status = 400, description = "Malformed id or body", body = ErrorEnvelope),
        (status = 401, description = "Missing, invalid or expired access token", body = ErrorEnvelope),
        (status = 403, description = "Someone else's message (`forbidden`); or the recipient declined the caller's chat request (`chat_request_declined`)", body = ErrorEnvelope),
        (status = 404, description = "No such message, or the caller is not in its conversation", body = ErrorEnvelope),
        (status = 422, description = "Missing or invalid text", body = ErrorEnvelope),
        (status = 429, description = "Past the caller's budget (`rate_limited`, with `Retry-After` and `RateLimit`)", body = ErrorEnvelope),
    )
)]
#[patch("/{id}")]
pub async fn edit_message(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: Path<Uuid>,
    body: Json<EditMessageRequest>,
) -> Result<HttpResponse, ApiError> {
    state.check_rate_limit(Action::Edit, caller.user_id)?;
    let message = state.store.visible_message(caller.user_id, id.into_inner()).await?;
    let content = MessageText::parse(&body.message).map_err(|problem| ApiError::invalid_field("message", problem))?;
    let (message, read_positions) = state
        .store
        .edit_message(
            &message,
            &content.into_inner(),
            store::now(),
            payloads::showing_current,
            payloads::message_updated,
        )
        .await?;
    let data = MessageData {
        message: with_read_state(message, &read_positions),
    };
    Ok(ok_signed(data, &state.file_signer(caller.user_id)))
}

#[derive(Serialize, ToSchema)]
pub struct StarData {
    pub starred: bool,
}

/// Star or unstar a message (for the caller only).
///
/// Toggles the caller's star; `message.starred` `{messageId, conversationId, starred}` goes to
/// the caller's streams.
#[utoipa::path(
    post, path = "/api/v1/message/{id}/star", tag = "messages",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The message's id")),
    responses(
        (status = 200, description = "The new state", body = Success<StarData>),
        (status = 400, description = "The id is not a UUID", body = ErrorEnvelope),
        (status = 401, description = "Missing, invalid or expired access token", body = ErrorEnvelope),
        (status = 404, description = "No such message, or the caller is not in its conversation", body = ErrorEnvelope),
        (status = 422, description = "The id holds U+0000 (`validation_failed`)", body = ErrorEnvelope),
        (status = 429, description = "Past the caller's budget (`rate_limited`, with `Retry-After` and `RateLimit`)", body = ErrorEnvelope),
    )
)]
#[post("/{id}/star")]
pub async fn toggle_star(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    state.check_rate_limit(Action::Star, caller.user_id)?;
    let message = state.store.visible_message(caller.user_id, id.into_inner()).await?;
    let starred = state
        .store
        .toggle_star(&message, store::now(), |conversation, starred| {
            payloads::message_starred(caller.user_id, message.id(), conversation, starred)
        })
        .await?;
    Ok(ok(StarData { starred }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StarredQuery {
    /// Page size: 1 to 100, default 20.
    pub limit: Option<u32>,
    /// `nextCursor` of the previous page.
    pub before: Option<String>,
}

/// The caller's starred messages.
///
/// Most recently starred first; paginated with `limit` and `before`.
#[utoipa::path(
    get, path = "/api/v1/message/starred", tag = "messages",
    security(("bearer" = [])),
    params(StarredQuery),
    responses(
        (status = 200, description = "A page of starred messages", body = Success<StarredMessagesData>),
        (status = 400, description = "Malformed query string", body = ErrorEnvelope),
        (status = 401, description = "Missing, invalid or expired access token", body = ErrorEnvelope),
        (status = 422, description = "`limit` out of range or unknown `before` cursor", body = ErrorEnvelope),
    )
)]
#[get("/starred")]
pub async fn list_starred(
    state: web::Data<AppState>,
    caller: AuthUser,
    query: Query<StarredQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = page_limit(query.limit, 20, 100).map_err(|problem| ApiError::invalid_field("limit", problem))?;
    let cursor = query.before.as_deref().map(decode_star_cursor).transpose()?;
    let mut starred = state.store.starred_messages(caller.user_id, limit + 1, cursor).await?;
    let next_cursor = super::next_page(&mut starred, limit, |(message, starred_at)| {
        format!("{}_{}", starred_at.timestamp_micros(), message.id.simple())
    });
    let messages = starred
        .into_iter()
        .map(|(message, _)| MessageView::from(message))
        .collect();
    Ok(ok_signed(
        StarredMessagesData { messages, next_cursor },
        &state.file_signer(caller.user_id),
    ))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StarredMessagesData {
    pub messages: Vec<MessageView>,
    /// Pass as `before` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// `<starred at, µs>_<message id>`, opaque to clients.
fn decode_star_cursor(raw: &str) -> Result<(chrono::DateTime<chrono::Utc>, Uuid), ApiError> {
    let invalid = || ApiError::invalid_field("before", "is not a cursor returned by this route");
    let (micros, id) = raw.split_once('_').ok_or_else(invalid)?;
    let starred_at = super::cursor_time(micros).ok_or_else(invalid)?;
    Ok((starred_at, Uuid::try_parse(id).map_err(|_| invalid())?))
}

fn with_read_state(message: Message, read_positions: &[(Uuid, i64)]) -> MessageView {
    let (seq, sender) = (message.seq, message.sender.id);
    MessageView::from(message).with_read_state(seq, sender, read_positions)
}

/// The most custom data a message may carry, serialised.
const MAX_CUSTOM_DATA_BYTES: usize = 4096;

/// Checks custom data: a JSON object of at most 4 KiB once serialised; returns it serialised.
fn custom_data(x: &serde_json::Value) -> Result<String, String> {
    if !x.is_object() {
        return Err("must be a JSON object".into());
    }
    let serialised = x.to_string();
    if serialised.len() > MAX_CUSTOM_DATA_BYTES {
        return Err(format!("must be at most {MAX_CUSTOM_DATA_BYTES} bytes serialised"));
    }
    Ok(serialised)
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TotalsData {
    /// Unread messages over all the caller's conversations.
    pub total_unread_messages: i64,
    /// Incoming chat requests waiting for the caller's answer.
    pub total_pending_request: i64,
}

/// The caller's totals: unread messages, pending chat requests.
#[utoipa::path(
    get, path = "/api/v1/message/totals", tag = "messages",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The totals", body = Success<TotalsData>),
        (status = 401, description = "Missing, invalid or expired access token", body = ErrorEnvelope),
    )
)]
#[get("/totals")]
pub async fn totals(state: web::Data<AppState>, caller: AuthUser) -> Result<HttpResponse, ApiError> {
    let total_unread_messages = state.store.total_unread(caller.user_id).await?;
    Ok(ok(TotalsData {
        total_unread_messages,
        total_pending_request: state.store.pending_requests(caller.user_id).await?,
    }))
}

#[derive(Clone, Copy, Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Hide for the caller only (the default).
    #[default]
    Me,
    /// Replace with a tombstone for everyone: the sender, or the group's owner.
    All,
}

impl Scope {
    fn store(self) -> DeleteScope {
        match self {
            Scope::Me => DeleteScope::Me,
            Scope::All => DeleteScope::All,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Scope::Me => "me",
            Scope::All => "all",
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// `me` (default) or `all`.
    pub scope: Option<Scope>,
}

#[derive(Deserialize, ToSchema)]
pub struct DeleteMessagesRequest {
    /// The conversation. Aliases: `conversationId`, `convoId`, `cid`.
    pub convo_id: Uuid,
    /// The messages, 1 to 100, all of that conversation.
    pub ids: Vec<Uuid>,
    /// `me` (default) or `all`. Alias: `type`, as `myself` or `all`.
    #[serde(default)]
    pub scope: Scope,
}

impl FieldAliases for DeleteMessagesRequest {
    const ALIASES: &'static [Alias] = &[
        CONVERSATION_ALIASES[0],
        CONVERSATION_ALIASES[1],
        CONVERSATION_ALIASES[2],
        Alias {
            field: "scope",
            name: "type",
            values: &[("myself", "me")],
        },
    ];
}

/// Delete a message, for the caller (`scope=me`, the default) or for everyone (`scope=all`).
///
/// `all` is for the sender, or the group's owner: the message becomes a tombstone
/// (`deleted: true`, empty `content`) for everyone and `message.deleted` goes to every
/// participant. `me` hides it from the caller's lists and sends `message.deleted` to the
/// caller's streams. Deleted and hidden messages no longer count as unread.
#[utoipa::path(
    delete, path = "/api/v1/message/{id}", tag = "messages",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The message's id"), DeleteQuery),
    responses(
        (status = 200, description = "Deleted", body = Success<payloads::DeletedData>),
        (status = 400, description = "Malformed id or scope", body = ErrorEnvelope),
        (status = 401, description = "Missing, invalid or expired access token", body = ErrorEnvelope),
        (status = 403, description = "`all` on someone else's message, as anyone but a group's owner; or the recipient declined the caller's chat request (`chat_request_declined`)", body = ErrorEnvelope),
        (status = 404, description = "No such message, or the caller is not in its conversation", body = ErrorEnvelope),
        (status = 422, description = "The id holds U+0000 (`validation_failed`)", body = ErrorEnvelope),
        (status = 429, description = "Past the caller's budget (`rate_limited`, with `Retry-After` and `RateLimit`)", body = ErrorEnvelope),
    )
)]
#[delete("/{id}")]
pub async fn delete_message(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: Path<Uuid>,
    query: Query<DeleteQuery>,
) -> Result<HttpResponse, ApiError> {
    state.check_rate_limit(Action::Delete, caller.user_id)?;
    let message = state.store.visible_message(caller.user_id, id.into_inner()).await?;
    delete(
        &state,
        message.member(),
        vec![message.id()],
        query.scope.unwrap_or_default(),
    )
    .await
}

/// Delete several messages of one conversation at once.
///
/// Like `DELETE /message/{id}` for each, in one go: all or none.
#[utoipa::path(
    post, path = "/api/v1/message/delete", tag = "messages",
    security(("bearer" = [])),
    request_body = DeleteMessagesRequest,
    responses(
        (status = 200, description = "Deleted", body = Success<payloads::DeletedData>),
        (status = 400, description = "Body is not JSON", body = ErrorEnvelope),
        (status = 401, description = "Missing, invalid or expired access token", body = ErrorEnvelope),
        (status = 403, description = "`all` on someone else's message, as anyone but a group's owner; or the recipient declined the caller's chat request (`chat_request_declined`)", body = ErrorEnvelope),
        (status = 404, description = "No such conversation, or the caller is not in it", body = ErrorEnvelope),
        (status = 422, description = "No ids, more than 100, or one not of this conversation", body = ErrorEnvelope),
        (status = 429, description = "Past the caller's budget (`rate_limited`, with `Retry-After` and `RateLimit`)", body = ErrorEnvelope),
    )
)]
#[post("/delete")]
pub async fn delete_messages(
    state: web::Data<AppState>,
    caller: AuthUser,
    body: Json<DeleteMessagesRequest>,
) -> Result<HttpResponse, ApiError> {
    state.check_rate_limit(Action::Delete, caller.user_id)?;
    let body = body.into_inner();
    let member = state.store.member_of(caller.user_id, body.convo_id).await?;
    let mut ids = body.ids;
    ids.sort();
    ids.dedup();
    if ids.is_empty() || ids.len() > 100 {
        return Err(ApiError::invalid_field("ids", "must name 1 to 100 messages"));
    }
    delete(&state, &member, ids, body.scope).await
}

/// Deletes the member's messages `ids` (1 to 100, of their conversation) in `scope`, with the
/// `message.deleted` event; also what deleting an account with `deleteMessages` does.
pub(crate) async fn delete(
    state: &AppState,
    member: &Member,
    ids: Vec<Uuid>,
    scope: Scope,
) -> Result<HttpResponse, ApiError> {
    let data = payloads::DeletedData {
        conversation_id: member.conversation(),
        message_ids: ids,
        scope: scope.name(),
    };
    state
        .store
        .delete_messages(
            member,
            &data.message_ids,
            scope.store(),
            store::now(),
            payloads::showing_current,
            |ids| {
                let told = payloads::DeletedData {
                    message_ids: ids.to_vec(),
                    ..data.clone()
                };
                payloads::message_deleted(member.user(), &told)
            },
        )
        .await?;
    Ok(ok(data))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// Words to find (every one must occur, case-insensitive): 1 to 200 characters.
    pub q: String,
    /// Page size: 1 to 100, default 20.
    pub limit: Option<u32>,
    /// `nextCursor` of the previous page.
    pub before: Option<Uuid>,
}

/// Search the caller's messages in every conversation they are in.
///
/// Full-text search (PostgreSQL `tsvector` with a GIN index, SQLite FTS5): messages containing
/// every word of `q`, newest first, each with its conversation's id. Deleted messages and
/// messages the caller hid are never found.
#[utoipa::path(
    get, path = "/api/v1/message/search", tag = "messages",
    security(("bearer" = [])),
    params(SearchQuery),
    responses(
        (status = 200, description = "Matching messages, newest first", body = Success<FoundMessagesData>),
        (status = 400, description = "Malformed query string", body = ErrorEnvelope),
        (status = 401, description = "Missing, invalid or expired access token", body = ErrorEnvelope),
        (status = 422, description = "`q` empty or too long, or `limit` out of range", body = ErrorEnvelope),
        (status = 429, description = "Past the caller's budget (`rate_limited`, with `Retry-After` and `RateLimit`)", body = ErrorEnvelope),
    )
)]
#[get("/search")]
pub async fn search_all(
    state: web::Data<AppState>,
    caller: AuthUser,
    query: Query<SearchQuery>,
) -> Result<HttpResponse, ApiError> {
    search(&state, caller, None, query.into_inner()).await
}

/// Search the caller's messages in one conversation.
///
/// Like `GET /message/search`, within one conversation.
#[utoipa::path(
    get, path = "/api/v1/message/{conversationId}/search", tag = "messages",
    security(("bearer" = [])),
    params(("conversationId" = Uuid, Path, description = "The conversation's id"), SearchQuery),
    responses(
        (status = 200, description = "Matching messages, newest first", body = Success<FoundMessagesData>),
        (status = 400, description = "Malformed id or query string", body = ErrorEnvelope),
        (status = 401, description = "Missing, invalid or expired access token", body = ErrorEnvelope),
        (status = 404, description = "No such conversation, or the caller is not in it", body = ErrorEnvelope),
        (status = 422, description = "`q` empty or too long, or `limit` out of range", body = ErrorEnvelope),
        (status = 429, description = "Past the caller's budget (`rate_limited`, with `Retry-After` and `RateLimit`)", body = ErrorEnvelope),
    )
)]
#[get("/{conversationId}/search")]
pub async fn search_conversation(
    state: web::Data<AppState>,
    caller: AuthUser,
    conversation: Path<Uuid>,
    query: Query<SearchQuery>,
) -> Result<HttpResponse, ApiError> {
    let member = state.store.member_of(caller.user_id, conversation.into_inner()).await?;
    search(&state, caller, Some(&member), query.into_inner()).await
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FoundMessagesData {
    pub messages: Vec<MessageView>,
    /// Pass as `before` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

async fn search(
    state: &AppState,
    caller: AuthUser,
    within: Option<&Member>,
    query: SearchQuery,
) -> Result<HttpResponse, ApiError> {
    state.check_rate_limit(Action::Search, caller.user_id)?;
    let limit = page_limit(query.limit, 20, 100).map_err(|problem| ApiError::invalid_field("limit", problem))?;
    let words = query.q.trim();
    if words.is_empty() || words.chars().count() > 200 {
        return Err(ApiError::invalid_field("q", "must be 1 to 200 characters"));
    }
    let mut found = state
        .store
        .search_messages(caller.user_id, within, words, limit + 1, query.before)
        .await?;
    let next_cursor = super::next_page(&mut found, limit, |message| message.id.to_string());
    let data = FoundMessagesData {
        messages: found.into_iter().map(MessageView::from).collect(),
        next_cursor,
    };
    Ok(ok_signed(data, &state.file_signer(caller.user_id)))
}
