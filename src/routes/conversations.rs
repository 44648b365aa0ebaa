//! `/api/v1/conversation`: direct and group conversations.

use std::collections::BTreeSet;

use actix_web::{HttpResponse, delete, get, patch, post, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::envelope::{Success, created_signed, ok, ok_signed};
use super::extract::{Alias, FieldAliases, Json, Path, Query};
use super::{collect_fields, field};
use crate::auth::AuthUser;
use crate::domain::{MessagePolicy, Name, page_limit};
use crate::error::{ApiError, ErrorEnvelope};
use crate::limits::Action;
use crate::realtime::fanout::{EphemeralAudience, EphemeralEvent};
use crate::realtime::payloads;
use crate::state::AppState;
use crate::store::{self, ConversationCursor, ConversationFlag, GroupChanges, Left, NewGroup};
use crate::views::{ConversationView, UserView};

/// Either `{receiver_id}` for a direct conversation, or `{type: "group", name, participants}`.
#[derive(Deserialize, ToSchema)]
pub struct CreateConversationRequest {
    /// `direct` (the default) or `group`.
    #[serde(default, rename = "type")]
    #[schema(example = "direct")]
    pub kind: Option<String>,
    /// For a direct conversation: the other user. Alias: `receiverId`.
    #[serde(default)]
    pub receiver_id: Option<Uuid>,
    /// For a group: its name, 1 to 100 characters.
    #[serde(default)]
    pub name: Option<String>,
    /// For a group: the other members (the caller is added as owner).
    #[serde(default)]
    pub participants: Option<Vec<Uuid>>,
}

impl FieldAliases for CreateConversationRequest {
    const ALIASES: &'static [Alias] = &[Alias::new("receiver_id", "receiverId")];
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConversationData {
    pub conversation: ConversationView,
    /// After creating or changing a group: the users invited instead of added, because their
    /// message policy is `requests` or they block the caller (they join when they accept).
    /// Absent elsewhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invited_ids: Option<Vec<Uuid>>,
}

impl ConversationData {
    pub fn new(conversation: ConversationView) -> Self {
        Self {
            conversation,
            invited_ids: None,
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConversationsData {
    pub conversations: Vec<ConversationView>,
    /// Pass as `before` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
    /// The event position this page was read at: open the event stream from it
    /// (`Last-Event-ID`) to miss nothing that happened after.
    pub event_id: String,
}

#[derive(Deserialize, ToSchema)]
pub struct TypingRequest {
    /// `true` while the caller types, `false` when they stop.
    pub typing: bool,
}

impl FieldAliases for TypingRequest {}

#[derive(Serialize, ToSchema)]
pub struct TypingAck {
    pub typing: bool,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConversationListQuery {
    /// `true`: the archived conversations instead of the others.
    pub archived: Option<bool>,
    /// Page size: 1 to 100, default 20.
    pub limit: Option<u32>,
    /// `nextCursor` of the previous page.
    pub before: Option<String>,
}

/// Start a direct conversation or create a group.
///
/// With `receiver_id`: the direct conversation between the caller and that user; 201 when
/// it was created now, 200 with the existing one (a pair never has two). With
/// `type: "group"`: a new group owned by the caller.
#[utoipa::path(
    post, path = "/api/v1/conversation", tag = "conversations",
    security(("bearer" = [])),
    request_body = CreateConversationRequest,
    responses(
        (status = 201, description = "Created", body = Success<ConversationData>),
        (status = 200, description = "The pair's existing direct conversation", body = Success<ConversationData>),
        (status = 400, description = "Body is not JSON", body = ErrorEnvelope),
        (status = 401, description = "Missing, invalid or expired access token", body = ErrorEnvelope),
        (status = 403, description = "The recipient declined the caller's chat request within `CHAT_REQUEST_COOLDOWN_DAYS`, or a group with such a user (`chat_request_declined`)", body = ErrorEnvelope),
        (status = 404, description = "The receiver does not exist", body = ErrorEnvelope),
        (status = 422, description = "Missing receiver, conversation with oneself, bad group name or members", body = ErrorEnvelope),
        (status = 429, description = "Past the caller's budget (`rate_limited`, with `Retry-After` and `RateLimit`)", body = ErrorEnvelope),
    )
)]
#[post("")]
pub async fn create_conversation(
    state: web::Data<AppState>,
    caller: AuthUser,
    body: Json<CreateConversationRequest>,
) -> Result<HttpResponse, ApiError> {
    state.check_rate_limit(Action::Conversation, caller.user_id)?;
    let body = body.into_inner();
    match body.kind.as_deref() {
        None | Some("direct") => start_direct(&state, caller, body.receiver_id).await,
        Some("group") => create_group(&state, caller, body.name, body.participants).await,
        Some(_) => Err(ApiError::invalid_field("type", "must be \"direct\" or \"group\"")),
    }
}

async fn start_direct(state: &AppState, caller: AuthUser, receiver: Option<Uuid>) -> Result<HttpResponse, ApiError> {
    let receiver = receiver.ok_or_else(|| ApiError::invalid_field("receiver_id", "is required"))?;
    if receiver == caller.user_id {
        return Err(ApiError::invalid_field(
            "receiver_id",
            "cannot start a conversation with yourself",
        ));
    }
    let receiver = state
        .store
        .find_user(receiver)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    // Someone who blocks the caller is asked as if their policy were `requests`, and never
    // sees the request: to the caller it looks like one that is simply not answered.
    if MessagePolicy::from_stored(&receiver.message_policy) == MessagePolicy::Requests
        || state.store.blocks(receiver.id, caller.user_id).await?
    {
        match state
            .store
            .create_chat_request(
                caller.user_id,
                receiver.id,
                Uuid::now_v7(),
                store::now(),
                payloads::chat_request,
            )
            .await
        {
            Ok(request) => {
                let member = state.store.member_of(caller.user_id, request.chat_id).await?;
                let conversation = state.store.conversation(&member).await?;
                return Ok(created_signed(
                    ConversationData::new(ConversationView::seen_by(conversation, None, state.emails)),
                    &state.file_signer(caller.user_id),
                ));
            }
            // The pair has a conversation: it is returned below, as for anyone.
            Err(store::StoreError::Conflict(store::Conflict::ChatExists)) => {}
            Err(error) => return Err(error.into()),
        }
    }
    let (conversation, was_created) = state
        .store
        .find_or_create_direct_conversation(
            caller.user_id,
            receiver.id,
            Uuid::now_v7(),
            store::now(),
            |conversation| payloads::conversation_created(conversation, state.emails),
        )
        .await?;
    let data = ConversationData::new(ConversationView::seen_by(conversation, None, state.emails));
    let sign = state.file_signer(caller.user_id);
    Ok(if was_created {
        created_signed(data, &sign)
    } else {
        ok_signed(data, &sign)
    })
}

async fn create_group(
    state: &AppState,
    caller: AuthUser,
    name: Option<String>,
    participants: Option<Vec<Uuid>>,
) -> Result<HttpResponse, ApiError> {
    let max = state.store.group_max_members();
    let members = |participants: Option<Vec<Uuid>>| -> Result<Vec<Uuid>, String> {
        let distinct: BTreeSet<Uuid> = participants
            .unwrap_or_default()
            .into_iter()
            .filter(|id| *id != caller.user_id)
            .collect();
        if distinct.is_empty() {
            return Err("must name at least one other user".into());
        }
        if distinct.len() >= max {
            return Err(format!("a group has at most {max} members, its owner included"));
        }
        Ok(distinct.into_iter().collect())
    };
    let (name, members) = collect_fields((
        field(
            "name",
            name.as_deref().map_or(Err("is required".to_string()), Name::parse),
        ),
        field("participants", members(participants)),
    ))?;
    let group = state
        .store
        .create_group(
            &NewGroup {
                id: Uuid::now_v7(),
                owner_id: caller.user_id,
                name: name.into_inner(),
                members,
                created_at: store::now(),
            },
            |created| payloads::group_created(created, state.emails),
        )
        .await?;
    Ok(created_signed(
        ConversationData {
            conversation: ConversationView::seen_by(group.conversation, None, state.emails),
            invited_ids: Some(group.invited.iter().map(|invitation| invitation.recipient_id).collect()),
        },
        &state.file_signer(caller.user_id),
    ))
}

/// The caller's conversations.
///
/// Most recent activity first; cursor-paginated with `limit` and `before`.
#[utoipa::path(
    get, path = "/api/v1/conversation", tag = "conversations",
    security(("bearer" = [])),
    params(ConversationListQuery),
    responses(
        (status = 200, description = "A page of conversations", body = Success<ConversationsData>),
        (status = 400, description = "Malformed query string", body = ErrorEnvelope),
        (status = 401, description = "Missing, invalid or expired access token", body = ErrorEnvelope),
        (status = 422, description = "`limit` out of range or unknown `before` cursor", body = ErrorEnvelope),
    )
)]
#[get("")]
pub async fn list_conversations(
    state: web::Data<AppState>,
    caller: AuthUser,
    query: Query<ConversationListQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let limit = page_limit(query.limit, 20, 100).map_err(|problem| ApiError::invalid_field("limit", problem))?;
    let cursor = query.before.as_deref().map(decode_cursor).transpose()?;
    // Read before the page: whatever happens after this position is in the stream.
    let event_id = state.store.head_position().await?.to_string();
    let mut conversations = state
        .store
        .list_conversations(caller.user_id, query.archived.unwrap_or(false), limit + 1, cursor)
        .await?;
    let next_cursor = super::next_page(&mut conversations, limit, |conversation| {
        encode_cursor(ConversationCursor {
            pinned: conversation.pinned,
            updated_at: conversation.updated_at,
            id: conversation.id,
        })
    });
    let data = ConversationsData {
        conversations: conversations
            .into_iter()
            .map(|conversation| ConversationView::seen_by(conversation, None, state.emails))
            .collect(),
        next_cursor,
        event_id,
    };
    Ok(ok_signed(data, &state.file_signer(caller.user_id)))
}

/// One conversation.
///
/// 404 when it does not exist or the caller is not a participant.
#[utoipa::path(
    get, path = "/api/v1/conversation/{id}", tag = "conversations",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The conversation's id")),
    responses(
        (status = 200, description = "The conversation", body = Success<ConversationData>),
        (status = 400, description = "The id is not a UUID", body = ErrorEnvelope),
        (status = 401, description = "Missing, invalid or expired access token", body = ErrorEnvelope),
        (status = 404, description = "No such conversation, or the caller is not in it", body = ErrorEnvelope),
        (status = 422, description = "The id holds U+0000 (`validation_failed`)", body = ErrorEnvelope),
    )
)]
#[get("/{id}")]
pub async fn get_conversation(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let member = state.store.member_of(caller.user_id, id.into_inner()).await?;
    let conversation = state.store.conversation(&member).await?;
    let data = ConversationData::new(ConversationView::seen_by(conversation, None, state.emails));
    Ok(ok_signed(data, &state.file_signer(caller.user_id)))
}

#[derive(Deserialize, ToSchema, Default)]
pub struct MemberChanges {
    /// Users to add (the owner only).
    #[serde(default)]
    pub add: Vec<Uuid>,
    /// Users to remove (the owner only; not the owner).
    #[serde(default)]
    pub remove: Vec<Uuid>,
}

#[derive(Deserialize, ToSchema)]
pub struct UpdateConversationRequest {
    /// A new name, 1 to 100 characters (any member).
    #[serde(default)]
    pub name: Option<String>,
    /// A new description, at most 500 characters; empty clears it (any member).
    #[serde(default)]
    pub description: Option<String>,
    /// Members to add and remove (the owner only).
    #[serde(default)]
    pub participants: Option<MemberChanges>,
    /// `true`: only the owner may rename or describe the group from now on; `false`: any
    /// member may (the default). The owner only.
    #[serde(default, rename = "onlyOwnerCanRename")]
    pub only_owner_can_rename: Option<bool>,
}

impl FieldAliases for UpdateConversationRequest {}

/// Rename a group, describe it, add or remove members.
///
/// Any member may rename or describe it, unless the owner set `onlyOwnerCanRename`; only its
/// owner may add or remove members or change that setting. Each member
/// change also stores a system message (`x: {type: "added_participant" | "removed_participant",
/// user}`) that every member receives like any message. Added users get `conversation.created`,
/// removed users `conversation.removed`, members `conversation.updated`; the first and last
/// carry the group's own fields and who came and went (`GroupChangedData`), not the member
/// list. Direct conversations cannot be renamed or change members (422).
#[utoipa::path(
    patch, path = "/api/v1/conversation/{id}", tag = "conversations",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The conversation's id")),
    request_body = UpdateConversationRequest,
    responses(
        (status = 200, description = "The group now", body = Success<ConversationData>),
        (status = 400, description = "Malformed id or body", body = ErrorEnvelope),
        (status = 401, description = "Missing, invalid or expired access token", body = ErrorEnvelope),
        (status = 403, description = "Member changes or `onlyOwnerCanRename` by someone other than the owner, or a rename by a member when the owner kept renaming to themselves; or the recipient declined the caller's chat request (`chat_request_declined`)", body = ErrorEnvelope),
        (status = 404, description = "No such conversation, or the caller is not in it", body = ErrorEnvelope),
        (status = 422, description = "A direct conversation, a bad name, an unknown user, or removing the owner", body = ErrorEnvelope),
        (status = 429, description = "Past the caller's budget (`rate_limited`, with `Retry-After` and `RateLimit`)", body = ErrorEnvelope),
    )
)]
#[patch("/{id}")]
pub async fn update_conversation(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: Path<Uuid>,
    body: Json<UpdateConversationRequest>,
) -> Result<HttpResponse, ApiError> {
    state.check_rate_limit(Action::Conversation, caller.user_id)?;
    let member = state.store.member_of(caller.user_id, id.into_inner()).await?;
    let body = body.into_inner();
    let description = |raw: Option<String>| -> Result<Option<Option<String>>, String> {
        match raw.map(|text| text.trim().to_string()) {
            None => Ok(None),
            Some(text) if text.is_empty() => Ok(Some(None)),
            Some(text) if text.chars().count() > 500 => Err("must be at most 500 characters".into()),
            Some(text) => Ok(Some(Some(text))),
        }
    };
    let (name, description) = collect_fields((
        field("name", body.name.as_deref().map(Name::parse).transpose()),
        field("description", description(body.description)),
    ))?;
    let members = body.participants.unwrap_or_default();
    // Each list is bounded by the group size: no request names more users than a group holds.
    let max = state.store.group_max_members();
    if members.add.len() > max || members.remove.len() > max {
        return Err(ApiError::invalid_field(
            "participants",
            format!("add and remove name at most {max} users each"),
        ));
    }
    let changes = GroupChanges {
        name: name.map(Name::into_inner),
        description,
        add: members.add.into_iter().filter(|user| *user != caller.user_id).collect(),
        remove: members.remove,
        only_owner_renames: body.only_owner_can_rename,
    };
    let update = state
        .store
        .update_group(&member, &changes, store::now(), |update| {
            payloads::group_changed(update)
        })
        .await?;
    Ok(ok_signed(
        ConversationData {
            invited_ids: Some(
                update
                    .invited
                    .iter()
                    .map(|invitation| invitation.recipient_id)
                    .collect(),
            ),
            conversation: ConversationView::seen_by(update.conversation, None, state.emails),
        },
        &state.file_signer(caller.user_id),
    ))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeftData {
    pub conversation_id: Uuid,
    /// `hidden` (a direct conversation, until a new message), `left` (a group) or `deleted`
    /// (the last member left a group).
    #[schema(example = "left")]
    pub result: &'static str,
}

/// Leave a group, or remove a direct conversation from the caller's list.
///
/// A group: the caller leaves (a system message `x: {type: "left_participant", user}` tells the
/// rest); if the owner leaves, ownership passes to the longest-standing member (earliest joined,
/// ties to the smallest user id); the last one out deletes the group. A direct conversation
/// disappears from the caller's list until a new message arrives. The caller's streams get
/// `conversation.removed`.
#[utoipa::path(
    delete, path = "/api/v1/conversation/{id}", tag = "conversations",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The conversation's id")),
    responses(
        (status = 200, description = "Done", body = Success<LeftData>),
        (status = 400, description = "Malformed id", body = ErrorEnvelope),
        (status = 401, description = "Missing, invalid or expired access token", body = ErrorEnvelope),
        (status = 404, description = "No such conversation, or the caller is not in it", body = ErrorEnvelope),
        (status = 422, description = "The id holds U+0000 (`validation_failed`)", body = ErrorEnvelope),
        (status = 429, description = "Past the caller's budget (`rate_limited`, with `Retry-After` and `RateLimit`)", body = ErrorEnvelope),
    )
)]
#[delete("/{id}")]
pub async fn leave_conversation(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    state.check_rate_limit(Action::Conversation, caller.user_id)?;
    let member = state.store.member_of(caller.user_id, id.into_inner()).await?;
    let conversation = member.conversation();
    let left = leave(&state, &member).await?;
    let result = match left {
        Left::Hidden => "hidden",
        Left::Group { .. } => "left",
        Left::Deleted => "deleted",
    };
    Ok(ok(LeftData {
        conversation_id: conversation,
        result,
    }))
}

/// The member leaves (see `Store::leave_conversation`): the group hears of it, their own
/// streams drop the conversation. Also what deleting an account does in each group.
pub(crate) async fn leave(state: &AppState, member: &store::Member) -> Result<Left, ApiError> {
    let (user, conversation) = (member.user(), member.conversation());
    Ok(state
        .store
        .leave_conversation(member, store::now(), |left| {
            let told = match left {
                Left::Group { message } => payloads::message_created(message),
                Left::Hidden | Left::Deleted => Vec::new(),
            };
            told.into_iter()
                .chain([payloads::removed_for(user, conversation)])
                .collect()
        })
        .await?)
}

#[derive(Serialize, ToSchema)]
pub struct PinnedData {
    pub pinned: bool,
}

#[derive(Serialize, ToSchema)]
pub struct ArchivedData {
    pub archived: bool,
}

/// Pin or unpin a conversation (for the caller only).
///
/// Toggles the caller's pin: pinned conversations sort first in their list. Sends
/// `conversation.updated` (`{_id, pinned, archived}`) to the caller's streams.
#[utoipa::path(
    post, path = "/api/v1/conversation/{id}/pin", tag = "conversations",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The conversation's id")),
    responses(
        (status = 200, description = "The new state", body = Success<PinnedData>),
        (status = 400, description = "The id is not a UUID", body = ErrorEnvelope),
        (status = 401, description = "Missing, invalid or expired access token", body = ErrorEnvelope),
        (status = 404, description = "No such conversation, or the caller is not in it", body = ErrorEnvelope),
        (status = 422, description = "The id holds U+0000 (`validation_failed`)", body = ErrorEnvelope),
        (status = 429, description = "Past the caller's budget (`rate_limited`, with `Retry-After` and `RateLimit`)", body = ErrorEnvelope),
    )
)]
#[post("/{id}/pin")]
pub async fn toggle_pin(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let conversation = toggle(&state, caller, id.into_inner(), ConversationFlag::Pinned).await?;
    Ok(ok(PinnedData {
        pinned: conversation.pinned,
    }))
}

/// Archive or unarchive a conversation (for the caller only).
///
/// Toggles the caller's archive flag: archived conversations leave the default list and show
/// with `GET /conversation?archived=true`. A new message in an archived conversation keeps it
/// archived (it does not pop back into the main list). Sends `conversation.updated`
/// (`{_id, pinned, archived}`) to the caller's streams.
#[utoipa::path(
    post, path = "/api/v1/conversation/{id}/archive", tag = "conversations",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The conversation's id")),
    responses(
        (status = 200, description = "The new state", body = Success<ArchivedData>),
        (status = 400, description = "The id is not a UUID", body = ErrorEnvelope),
        (status = 401, description = "Missing, invalid or expired access token", body = ErrorEnvelope),
        (status = 404, description = "No such conversation, or the caller is not in it", body = ErrorEnvelope),
        (status = 422, description = "The id holds U+0000 (`validation_failed`)", body = ErrorEnvelope),
        (status = 429, description = "Past the caller's budget (`rate_limited`, with `Retry-After` and `RateLimit`)", body = ErrorEnvelope),
    )
)]
#[post("/{id}/archive")]
pub async fn toggle_archive(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let conversation = toggle(&state, caller, id.into_inner(), ConversationFlag::Archived).await?;
    Ok(ok(ArchivedData {
        archived: conversation.archived,
    }))
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct MuteRequest {
    /// When the mute ends (RFC 3339, in the future); absent or `null`: until unmuted.
    #[schema(value_type = Option<String>, format = DateTime, example = json!(null))]
    pub until: Option<String>,
}

impl FieldAliases for MuteRequest {}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MutedData {
    pub muted: bool,
    /// When the mute ends; `null` when not muted or muted until unmuted.
    #[schema(example = json!(null))]
    pub muted_until: Option<chrono::DateTime<chrono::Utc>>,
}

/// Mute or unmute a conversation (for the caller only).
///
/// Toggles the caller's mute: while muted, new messages of the conversation send the caller
/// no push notifications (they still arrive on the caller's streams and count as unread).
/// Muting takes `until` (RFC 3339, in the future; absent or `null`: until unmuted); calling
/// again while muted unmutes, whatever the body. A mute whose `until` passed is over. Sends
/// `conversation.updated` (`{_id, pinned, archived, muted, mutedUntil}`) to the caller's
/// streams. The body may be empty.
#[utoipa::path(
    post, path = "/api/v1/conversation/{id}/mute", tag = "conversations",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The conversation's id")),
    request_body(content = Option<MuteRequest>, content_type = "application/json"),
    responses(
        (status = 200, description = "The new state", body = Success<MutedData>),
        (status = 400, description = "The id is not a UUID, or the body is not JSON", body = ErrorEnvelope),
        (status = 401, description = "Missing, invalid or expired access token", body = ErrorEnvelope),
        (status = 404, description = "No such conversation, or the caller is not in it", body = ErrorEnvelope),
        (status = 422, description = "`until` is not an RFC 3339 time in the future (`validation_failed`)", body = ErrorEnvelope),
        (status = 429, description = "Past the caller's budget (`rate_limited`, with `Retry-After` and `RateLimit`)", body = ErrorEnvelope),
    )
)]
#[post("/{id}/mute")]
pub async fn toggle_mute(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: Path<Uuid>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let request: MuteRequest = if body.iter().all(u8::is_ascii_whitespace) {
        MuteRequest::default()
    } else {
        super::extract::parse_json(&body)?
    };
    let now = store::now();
    let until = match request.until.as_deref() {
        None => None,
        Some(raw) => match super::rfc3339_time("until", raw)? {
            until if until > now => Some(until),
            _ => return Err(ApiError::invalid_field("until", "must be in the future")),
        },
    };
    let conversation = toggle(&state, caller, id.into_inner(), ConversationFlag::Muted { until }).await?;
    Ok(ok(MutedData {
        muted: conversation.mute.is_some(),
        muted_until: conversation.mute.and_then(|mute| mute.until),
    }))
}

async fn toggle(
    state: &AppState,
    caller: AuthUser,
    conversation: Uuid,
    flag: ConversationFlag,
) -> Result<crate::store::Conversation, ApiError> {
    state.check_rate_limit(Action::Conversation, caller.user_id)?;
    let member = state.store.member_of(caller.user_id, conversation).await?;
    let toggled = state
        .store
        .toggle_conversation_flag(&member, flag, store::now(), |conversation| {
            payloads::flags_changed(caller.user_id, conversation)
        })
        .await?;
    Ok(toggled)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ParticipantsQuery {
    /// Comma-separated conversation ids, at most 100.
    pub cids: String,
}

#[derive(Serialize, ToSchema)]
pub struct ParticipantsData {
    pub users: Vec<UserView>,
}

/// The people of several conversations at once.
///
/// The distinct users of the listed conversations, the caller included. Conversations the
/// caller is not in are ignored.
#[utoipa::path(
    get, path = "/api/v1/conversation/participants", tag = "conversations",
    security(("bearer" = [])),
    params(ParticipantsQuery),
    responses(
        (status = 200, description = "The users, by name", body = Success<ParticipantsData>),
        (status = 400, description = "Malformed query string", body = ErrorEnvelope),
        (status = 401, description = "Missing, invalid or expired access token", body = ErrorEnvelope),
        (status = 422, description = "More than 100 ids, or one that is not a UUID", body = ErrorEnvelope),
    )
)]
#[get("/participants")]
pub async fn list_participants(
    state: web::Data<AppState>,
    caller: AuthUser,
    query: Query<ParticipantsQuery>,
) -> Result<HttpResponse, ApiError> {
    let conversations = super::parse_id_list("cids", &query.cids, 100)?;
    let users = state.store.participants_of(caller.user_id, &conversations).await?;
    Ok(ok_signed(
        ParticipantsData {
            users: users
                .into_iter()
                .map(|user| UserView::seen_by(user, Some(caller.user_id), state.emails))
                .collect(),
        },
        &state.file_signer(caller.user_id),
    ))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConversationSearchQuery {
    /// Matched anywhere in a group's name, or in the other participant's name for a direct
    /// conversation; case-insensitive. 1 to 100 characters.
    pub name: String,
    /// At most this many: 1 to 100, default 20.
    pub limit: Option<u32>,
}

/// Find the caller's conversations by name.
#[utoipa::path(
    get, path = "/api/v1/conversation/search", tag = "conversations",
    security(("bearer" = [])),
    params(ConversationSearchQuery),
    responses(
        (status = 200, description = "Matching conversations, most recent activity first", body = Success<ConversationsFound>),
        (status = 400, description = "Malformed query string", body = ErrorEnvelope),
        (status = 401, description = "Missing, invalid or expired access token", body = ErrorEnvelope),
        (status = 422, description = "`name` empty or too long, or `limit` out of range", body = ErrorEnvelope),
        (status = 429, description = "Past the caller's budget (`rate_limited`, with `Retry-After` and `RateLimit`)", body = ErrorEnvelope),
    )
)]
#[get("/search")]
pub async fn search_conversations(
    state: web::Data<AppState>,
    caller: AuthUser,
    query: Query<ConversationSearchQuery>,
) -> Result<HttpResponse, ApiError> {
    state.check_rate_limit(Action::Search, caller.user_id)?;
    let limit = page_limit(query.limit, 20, 100).map_err(|problem| ApiError::invalid_field("limit", problem))?;
    let name = Name::parse(&query.name).map_err(|problem| ApiError::invalid_field("name", problem))?;
    let conversations = state
        .store
        .search_conversations(caller.user_id, &name.into_inner(), limit)
        .await?;
    let data = ConversationsFound {
        conversations: conversations
            .into_iter()
            .map(|conversation| ConversationView::seen_by(conversation, None, state.emails))
            .collect(),
    };
    Ok(ok_signed(data, &state.file_signer(caller.user_id)))
}

#[derive(Serialize, ToSchema)]
pub struct ConversationsFound {
    pub conversations: Vec<ConversationView>,
}

#[derive(Deserialize, ToSchema, Default)]
pub struct ReadRequest {
    /// Read up to this message (of this conversation); absent: everything. Alias: `up_to`.
    #[serde(default, rename = "upTo")]
    pub up_to: Option<Uuid>,
}

impl FieldAliases for ReadRequest {
    const ALIASES: &'static [Alias] = &[Alias::new("upTo", "up_to")];
}

/// Mark a conversation read, up to a message or entirely.
///
/// Moves the caller's read position forward (never back): their `unreadCount` drops, and the
/// other participants see the messages as read (`readBy`, `status`). Sends `message.read`
/// `{conversationId, userId, upTo}` to the participants' streams when the position moved.
#[utoipa::path(
    post, path = "/api/v1/conversation/{id}/read", tag = "conversations",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The conversation's id")),
    request_body(content = ReadRequest, description = "Optional: `{}` or no body reads everything"),
    responses(
        (status = 200, description = "The message now read up to", body = Success<payloads::ReadData>),
        (status = 400, description = "Malformed id or body", body = ErrorEnvelope),
        (status = 401, description = "Missing, invalid or expired access token", body = ErrorEnvelope),
        (status = 403, description = "The recipient declined the caller's chat request (`chat_request_declined`)", body = ErrorEnvelope),
        (status = 404, description = "No such conversation, or the caller is not in it", body = ErrorEnvelope),
        (status = 422, description = "`upTo` is not a message of this conversation", body = ErrorEnvelope),
        (status = 429, description = "Past the caller's budget (`rate_limited`, with `Retry-After` and `RateLimit`)", body = ErrorEnvelope),
    )
)]
#[post("/{id}/read")]
pub async fn mark_read(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: Path<Uuid>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    state.check_rate_limit(Action::Read, caller.user_id)?;
    let member = state.store.member_of(caller.user_id, id.into_inner()).await?;
    let conversation = member.conversation();
    let request: ReadRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ReadRequest::default()
    } else {
        super::extract::parse_json(&body)?
    };
    let up_to = state
        .store
        .mark_read(&member, request.up_to, store::now(), |up_to| {
            payloads::message_read(conversation, caller.user_id, up_to)
        })
        .await?;
    Ok(ok(payloads::ReadData {
        conversation_id: conversation,
        user_id: caller.user_id,
        up_to,
    }))
}

/// Tell the other participants that the caller is typing (or stopped).
///
/// Sends `typing` `{conversationId, userId, typing}` to the other participants' streams. Live
/// only: never stored or replayed.
#[utoipa::path(
    post, path = "/api/v1/conversation/{id}/typing", tag = "conversations",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The conversation's id")),
    request_body = TypingRequest,
    responses(
        (status = 200, description = "Sent", body = Success<TypingAck>),
        (status = 400, description = "Malformed id or body", body = ErrorEnvelope),
        (status = 401, description = "Missing, invalid or expired access token", body = ErrorEnvelope),
        (status = 403, description = "The recipient declined the caller's chat request (`chat_request_declined`)", body = ErrorEnvelope),
        (status = 404, description = "No such conversation, or the caller is not in it", body = ErrorEnvelope),
        (status = 422, description = "`typing` missing or not a boolean", body = ErrorEnvelope),
        (status = 429, description = "Past the caller's budget (`rate_limited`, with `Retry-After` and `RateLimit`)", body = ErrorEnvelope),
    )
)]
#[post("/{id}/typing")]
pub async fn send_typing(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: Path<Uuid>,
    body: Json<TypingRequest>,
) -> Result<HttpResponse, ApiError> {
    state.check_rate_limit(Action::Typing, caller.user_id)?;
    let member = state.store.member_of(caller.user_id, id.into_inner()).await?;
    member.require_can_act()?;
    let conversation = member.conversation();
    let typing = body.typing;
    // Accepted either way; forwarded at most once per TYPING_MIN_INTERVAL_MS, and never out
    // of a chat request hidden from its recipient.
    if member.is_hidden_request() || !state.limits.typing_is_due(caller.user_id, conversation) {
        return Ok(ok(TypingAck { typing }));
    }
    let data = payloads::TypingData {
        conversation_id: conversation,
        user_id: caller.user_id,
        typing,
    };
    state
        .hub
        .publish_ephemeral(EphemeralEvent {
            kind: payloads::TYPING.to_string(),
            audience: EphemeralAudience::Conversation {
                id: conversation,
                except: Some(caller.user_id),
            },
            payload: serde_json::to_string(&data).map_err(ApiError::internal)?,
        })
        .await;
    Ok(ok(TypingAck { typing }))
}

/// The cursor is opaque to clients: `<1 if pinned else 0>_<last activity in µs>_<id>`.
fn encode_cursor(cursor: ConversationCursor) -> String {
    format!(
        "{}_{}_{}",
        u8::from(cursor.pinned),
        cursor.updated_at.timestamp_micros(),
        cursor.id.simple()
    )
}

fn decode_cursor(raw: &str) -> Result<ConversationCursor, ApiError> {
    let invalid = || ApiError::invalid_field("before", "is not a cursor returned by this route");
    let parts: Vec<&str> = raw.split('_').collect();
    // Cursors from before pinning existed have no pinned part: they point among the unpinned.
    let (pinned, micros, id) = match parts.as_slice() {
        [pinned, micros, id] => (*pinned, *micros, *id),
        [micros, id] => ("0", *micros, *id),
        _ => return Err(invalid()),
    };
    let pinned = match pinned {
        "0" => false,
        "1" => true,
        _ => return Err(invalid()),
    };
    let updated_at = super::cursor_time(micros).ok_or_else(invalid)?;
    let id = Uuid::try_parse(id).map_err(|_| invalid())?;
    Ok(ConversationCursor { pinned, updated_at, id })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        for pinned in [false, true] {
            let cursor = ConversationCursor {
                pinned,
                updated_at: store::now(),
                id: Uuid::now_v7(),
            };
            assert_eq!(decode_cursor(&encode_cursor(cursor)).unwrap(), cursor);
        }
        for garbage in [
            "",
            "abc",
            "12_notauuid",
            "x_0190a0a0a0a07000800000000000000",
            "2_1_0190a0a0a0a07000800000000000000",
        ] {
            assert_eq!(decode_cursor(garbage).unwrap_err().code(), ErrorCode::ValidationFailed);
        }
    }
}
