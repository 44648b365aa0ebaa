//! The events streams deliver: their names (a contract with clients) and how each is built
//! from the change it reports. A new kind of event is a constant here and a builder below.

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::store::{
    Audience, ChatRequest, Contact, Conversation, GroupCreated, GroupUpdate, InvitationAnswer, Message, NewEvent, User,
};
use crate::views::{
    ChatRequestView, ContactView, ConversationType, ConversationView, EmailPolicy, MessageView, UserView,
};

pub const MESSAGE_CREATED: &str = "message.created";
pub const MESSAGE_UPDATED: &str = "message.updated";
pub const MESSAGE_DELETED: &str = "message.deleted";
pub const MESSAGE_READ: &str = "message.read";
pub const CONVERSATION_CREATED: &str = "conversation.created";
pub const CONVERSATION_UPDATED: &str = "conversation.updated";
pub const CONVERSATION_REMOVED: &str = "conversation.removed";
/// A user starred or unstarred a message (to that user's streams only).
pub const MESSAGE_STARRED: &str = "message.starred";
pub const CHAT_REQUEST_CREATED: &str = "chat_request.created";
pub const CHAT_REQUEST_ACCEPTED: &str = "chat_request.accepted";
pub const CHAT_REQUEST_DECLINED: &str = "chat_request.declined";
/// A pending group invitation was withdrawn: its invitee was removed from the group.
pub const CHAT_REQUEST_WITHDRAWN: &str = "chat_request.withdrawn";
/// A user's profile changed: to their own streams (their view) and to the people who share an
/// active conversation with them (the public view).
pub const USER_UPDATED: &str = "user.updated";
/// Ephemeral: delivered live, never stored or replayed.
pub const TYPING: &str = "typing";
/// Ephemeral: delivered live, never stored or replayed.
pub const PRESENCE: &str = "presence";
/// Sent instead of a replay the log can no longer give: refetch your state.
pub const RESET: &str = "reset";
/// The first event of every stream: its `streamId`, for `POST /user/last-activity/subscribe`.
pub const READY: &str = "ready";
/// An address-book entry was created or changed, or deleted (to its owner's streams only:
/// their other devices).
pub const CONTACT_CREATED: &str = "contact.created";
pub const CONTACT_UPDATED: &str = "contact.updated";
pub const CONTACT_DELETED: &str = "contact.deleted";
/// The caller blocked users (to their own streams: their other devices).
pub const USER_BLOCKED: &str = "user.blocked";
/// The caller unblocked users (to their own streams).
pub const USER_UNBLOCKED: &str = "user.unblocked";

/// `data` of `ready`.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadyData {
    /// Names this stream in `POST /user/last-activity/subscribe`; valid while it is open.
    pub stream_id: Uuid,
}

/// `data` of `contact.created` and `contact.updated`.
#[derive(Serialize, ToSchema)]
pub struct ContactData {
    pub contact: ContactView,
}

/// `data` of `contact.deleted`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContactDeletedData {
    pub contact_id: Uuid,
}

/// `contact.created` (or `.updated`) for each of `contacts`, to `owner`'s own streams.
pub fn contacts_changed(owner: Uuid, contacts: &[&Contact], created: bool) -> Vec<NewEvent> {
    let kind = if created { CONTACT_CREATED } else { CONTACT_UPDATED };
    contacts
        .iter()
        .map(|contact| {
            let contact = ContactView::from((*contact).clone());
            NewEvent::new(kind, Audience::User(owner), json(&ContactData { contact }))
        })
        .collect()
}

/// `contact.deleted` to `owner`'s own streams.
pub fn contact_deleted(owner: Uuid, contact: Uuid) -> Vec<NewEvent> {
    vec![NewEvent::new(
        CONTACT_DELETED,
        Audience::User(owner),
        json(&ContactDeletedData { contact_id: contact }),
    )]
}

/// `data` of `user.blocked` and `user.unblocked`.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BlocksChangedData {
    pub user_ids: Vec<Uuid>,
}

/// `user.blocked` (or `user.unblocked`) to `user`'s own streams: their other devices learn it.
/// The blocked users are never told.
pub fn blocks_changed(user: Uuid, users: &[Uuid], blocked: bool) -> Vec<NewEvent> {
    vec![NewEvent::new(
        if blocked { USER_BLOCKED } else { USER_UNBLOCKED },
        Audience::User(user),
        json(&BlocksChangedData {
            user_ids: users.to_vec(),
        }),
    )]
}

fn json(value: &impl Serialize) -> String {
    serde_json::to_string(value).expect("event payloads serialise")
}

/// `message.created` to the conversation: the message, as `POST /message` returns it.
pub fn message_created(message: &Message) -> Vec<NewEvent> {
    vec![
        NewEvent::new(
            MESSAGE_CREATED,
            Audience::Conversation(message.conversation_id),
            json(&MessageView::newly_sent(message.clone())),
        )
        .showing(Some(message)),
    ]
}

/// `message.updated` to the conversation: the edited message, as `PATCH /message/{id}` returns it.
pub fn message_updated(message: &Message, read_positions: &[(Uuid, i64)]) -> Vec<NewEvent> {
    let view = MessageView::from(message.clone()).with_read_state(message.seq, message.sender.id, read_positions);
    vec![
        NewEvent::new(
            MESSAGE_UPDATED,
            Audience::Conversation(message.conversation_id),
            json(&view),
        )
        .showing(Some(message))
        .superseding(),
    ]
}

/// `chat_request.created`, `.accepted` or `.declined` (by its status) to both users: for a
/// direct request its two participants, for a group invitation the inviter and the invitee
/// (not the group: its members hear of the invitee when they join).
pub fn chat_request(request: &ChatRequest) -> Vec<NewEvent> {
    let kind = match request.status.as_str() {
        "accepted" => CHAT_REQUEST_ACCEPTED,
        "declined" => CHAT_REQUEST_DECLINED,
        "withdrawn" => CHAT_REQUEST_WITHDRAWN,
        _ => CHAT_REQUEST_CREATED,
    };
    let payload = json(&ChatRequestView::from(request.clone()));
    if request.hidden {
        // The recipient blocks the requester: only the requester hears of it.
        return vec![NewEvent::new(kind, Audience::User(request.requester_id), payload)];
    }
    if !request.is_invitation() {
        return vec![NewEvent::new(kind, Audience::Conversation(request.chat_id), payload)];
    }
    [request.recipient_id, request.requester_id]
        .into_iter()
        .map(|user| NewEvent::new(kind, Audience::User(user), payload.clone()))
        .collect()
}

/// After answering a group invitation: its `chat_request.*` event and, when accepted, what an
/// addition sends (see [`group_changed`]).
pub fn invitation_answered(answer: &InvitationAnswer) -> Vec<NewEvent> {
    let mut events = chat_request(&answer.request);
    events.extend(answer.joined.iter().flat_map(group_changed));
    events
}

/// After creating a group: `conversation.created` to its members and `chat_request.created`
/// for each invitation it made.
pub fn group_created(created: &GroupCreated, emails: EmailPolicy) -> Vec<NewEvent> {
    let mut events = conversation_created(&created.conversation, emails);
    events.extend(created.invited.iter().flat_map(chat_request));
    events
}

/// `data` of `message.deleted`.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeletedData {
    pub conversation_id: Uuid,
    pub message_ids: Vec<Uuid>,
    /// `me` (hidden for the caller: sent to their streams only) or `all` (tombstones: sent to
    /// every participant).
    #[schema(example = "all")]
    pub scope: &'static str,
}

/// `message.deleted`: to everyone for scope `all`, to the deleting user for scope `me`.
pub fn message_deleted(user: Uuid, data: &DeletedData) -> Vec<NewEvent> {
    let audience = if data.scope == "all" {
        Audience::Conversation(data.conversation_id)
    } else {
        Audience::User(user)
    };
    vec![NewEvent::new(MESSAGE_DELETED, audience, json(data))]
}

/// `data` of `message.read`.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadData {
    pub conversation_id: Uuid,
    pub user_id: Uuid,
    /// The message read up to (`null`: the conversation has none).
    pub up_to: Option<Uuid>,
}

/// `message.read` to the conversation: `user` has read everything up to `up_to`.
pub fn message_read(conversation: Uuid, user: Uuid, up_to: Option<Uuid>) -> Vec<NewEvent> {
    vec![NewEvent::new(
        MESSAGE_READ,
        Audience::Conversation(conversation),
        json(&ReadData {
            conversation_id: conversation,
            user_id: user,
            up_to,
        }),
    )]
}

/// `data` of `message.starred`.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StarredData {
    pub message_id: Uuid,
    pub conversation_id: Uuid,
    pub starred: bool,
}

#[derive(Serialize, ToSchema)]
pub struct UserUpdatedData {
    pub user: UserView,
}

/// `user.updated`: `{user}`, the user's own view to their streams (their other devices), the
/// public one to each of `partners`.
pub fn user_updated(user: &User, partners: &[Uuid], emails: EmailPolicy) -> Vec<NewEvent> {
    let public = json(&UserUpdatedData {
        user: UserView::seen_by(user.clone(), None, emails),
    });
    std::iter::once(NewEvent::new(
        USER_UPDATED,
        Audience::User(user.id),
        json(&UserUpdatedData {
            user: UserView::own(user.clone()),
        }),
    ))
    .chain(
        partners
            .iter()
            .map(|partner| NewEvent::new(USER_UPDATED, Audience::User(*partner), public.clone())),
    )
    .collect()
}

/// `message.starred` to the user who (un)starred: their other devices follow.
pub fn message_starred(user: Uuid, message: Uuid, conversation: Uuid, starred: bool) -> Vec<NewEvent> {
    vec![NewEvent::new(
        MESSAGE_STARRED,
        Audience::User(user),
        json(&StarredData {
            message_id: message,
            conversation_id: conversation,
            starred,
        }),
    )]
}

/// `conversation.created` to its participants: the conversation, as `POST /conversation`
/// returns it.
pub fn conversation_created(conversation: &Conversation, emails: EmailPolicy) -> Vec<NewEvent> {
    vec![
        NewEvent::new(
            CONVERSATION_CREATED,
            Audience::Conversation(conversation.id),
            json(&ConversationView::seen_by(conversation.clone(), None, emails)),
        )
        .showing(conversation.last_message.as_ref()),
    ]
}

/// `data` of `conversation.updated` after a pin, archive or mute toggle: the user's own flags.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FlagsChangedData {
    #[serde(rename = "_id")]
    pub id: Uuid,
    pub pinned: bool,
    pub archived: bool,
    pub muted: bool,
    pub muted_until: Option<chrono::DateTime<chrono::Utc>>,
}

/// `conversation.updated` to the user who pinned, unpinned, archived, unarchived, muted or
/// unmuted: their flags only, so that other devices follow (not the whole conversation again).
pub fn flags_changed(user: Uuid, conversation: &Conversation) -> Vec<NewEvent> {
    let data = FlagsChangedData {
        id: conversation.id,
        pinned: conversation.pinned,
        archived: conversation.archived,
        muted: conversation.mute.is_some(),
        muted_until: conversation.mute.and_then(|mute| mute.until),
    };
    vec![NewEvent::new(CONVERSATION_UPDATED, Audience::User(user), json(&data))]
}

/// `data` of `conversation.updated` after a group change (to its members) and of
/// `conversation.created` to the members it added: the group's own fields and who came and
/// went, never the member list or the latest message (clients read the group for those), and
/// nothing that differs per member. So one change stores a bounded amount, whatever the group's
/// size.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupChangedData {
    #[serde(rename = "_id")]
    pub id: Uuid,
    #[serde(rename = "type")]
    pub kind: ConversationType,
    pub name: Option<String>,
    pub owner: Option<Uuid>,
    pub description: Option<String>,
    pub only_owner_can_rename: bool,
    /// How many members the group has now.
    pub participant_count: usize,
    /// The users this change added (empty: none).
    pub added_ids: Vec<Uuid>,
    /// The users this change removed (empty: none).
    pub removed_ids: Vec<Uuid>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

impl From<&GroupUpdate> for GroupChangedData {
    fn from(update: &GroupUpdate) -> Self {
        let group = &update.conversation;
        Self {
            id: group.id,
            kind: ConversationType::Group,
            name: group.name.clone(),
            owner: group.owner_id,
            description: group.description.clone(),
            only_owner_can_rename: group.only_owner_renames,
            participant_count: group.participants.len(),
            added_ids: update.added.iter().map(|user| user.id).collect(),
            removed_ids: update.removed.iter().map(|user| user.id).collect(),
            created_at: group.created_at,
            updated_at: group.updated_at,
        }
    }
}

/// After a group change: `conversation.updated` to its members, `conversation.created` to the
/// members added, `conversation.removed` to those removed (see [`GroupChangedData`]),
/// `chat_request.created` for each invitation made, `chat_request.withdrawn` for each
/// withdrawn, and the system messages.
pub fn group_changed(update: &GroupUpdate) -> Vec<NewEvent> {
    let payload = json(&GroupChangedData::from(update));
    let group = update.conversation.id;
    let mut events = vec![NewEvent::new(
        CONVERSATION_UPDATED,
        Audience::Conversation(group),
        payload.clone(),
    )];
    for user in &update.added {
        events.push(NewEvent::new(
            CONVERSATION_CREATED,
            Audience::User(user.id),
            payload.clone(),
        ));
    }
    for user in &update.removed {
        events.push(removed_for(user.id, group));
    }
    events.extend(update.invited.iter().chain(&update.withdrawn).flat_map(chat_request));
    events.extend(update.messages.iter().flat_map(message_created));
    events
}

/// `data` of `conversation.removed`.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RemovedData {
    pub conversation_id: Uuid,
}

/// `conversation.removed` to `user`: the conversation left their list (removed, left, deleted).
pub fn removed_for(user: Uuid, conversation: Uuid) -> NewEvent {
    NewEvent::new(
        CONVERSATION_REMOVED,
        Audience::User(user),
        json(&RemovedData {
            conversation_id: conversation,
        }),
    )
}

/// The [`PayloadRewrite`](crate::store::PayloadRewrite) of the event log: `payload` with every
/// view of one of `messages` (a message, a quote, a conversation's latest message) showing
/// the message as it is now; `None` if it shows none of them.
pub fn showing_current(payload: &str, messages: &[Message]) -> Option<String> {
    let mut value: serde_json::Value = serde_json::from_str(payload).ok()?;
    let current: Vec<(String, &Message)> = messages
        .iter()
        .map(|message| (message.id.to_string(), message))
        .collect();
    show_current(&mut value, &current).then(|| value.to_string())
}

/// Rewrites `value` in place; whether anything changed.
fn show_current(value: &mut serde_json::Value, messages: &[(String, &Message)]) -> bool {
    use serde_json::Value;
    let found = |value: &Value| {
        let id = value.get("_id").and_then(Value::as_str)?;
        messages
            .iter()
            .find(|(shown, _)| shown == id)
            .map(|(_, message)| *message)
    };
    match value {
        Value::Array(items) => items
            .iter_mut()
            .map(|item| show_current(item, messages))
            .fold(false, |changed, item| changed | item),
        Value::Object(_) => {
            let mut changed = false;
            if let Some(message) = found(value) {
                let object = value.as_object_mut().expect("an object");
                for (field, now) in [
                    ("content", json_value(&message.content)),
                    ("deleted", json_value(&message.deleted)),
                    ("editedAt", json_value(&message.edited_at)),
                    (
                        "x",
                        message
                            .x
                            .as_deref()
                            .and_then(|x| serde_json::from_str(x).ok())
                            .unwrap_or_default(),
                    ),
                ] {
                    if let Some(shown) = object.get_mut(field) {
                        changed |= *shown != now;
                        *shown = now;
                    }
                }
                // A tombstone shows no files either, nor does a quote of one.
                if message.deleted {
                    for (field, none) in [
                        ("files", serde_json::json!([])),
                        ("attachments", serde_json::json!([])),
                        ("imageUrl", serde_json::Value::Null),
                        ("linkPreviewUrl", serde_json::Value::Null),
                        ("hasAttachments", serde_json::json!(false)),
                        ("attachmentType", serde_json::Value::Null),
                    ] {
                        if let Some(shown) = object.get_mut(field) {
                            changed |= *shown != none;
                            *shown = none;
                        }
                    }
                }
            }
            // A conversation repeats its latest message's text in `lastMessage`.
            if let Some(message) = value.get("latestMessage").and_then(found)
                && let Some(text) = value.get_mut("lastMessage")
            {
                let now = json_value(&message.content);
                changed |= *text != now;
                *text = now;
            }
            let object = value.as_object_mut().expect("an object");
            object
                .values_mut()
                .fold(changed, |changed, field| show_current(field, messages) || changed)
        }
        _ => false,
    }
}

fn json_value(value: &impl Serialize) -> serde_json::Value {
    serde_json::to_value(value).expect("event payloads serialise")
}

/// `data` of `typing`.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TypingData {
    pub conversation_id: Uuid,
    pub user_id: Uuid,
    pub typing: bool,
}

/// `data` of `presence`.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PresenceData {
    pub user_id: Uuid,
    /// `online` or `offline`.
    #[schema(example = "online")]
    pub status: &'static str,
    pub last_active_at: chrono::DateTime<chrono::Utc>,
}

/// `data` of `reset`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ResetData {
    /// Why the replay was refused.
    #[schema(example = "resume position is older than the event retention window")]
    pub reason: String,
}
