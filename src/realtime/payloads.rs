//! The events streams deliver: their names (a contract with clients) and how each is built
//! from the change it reports. A new kind of event is a constant here and a builder below.

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::store::{Audience, ChatRequest, Conversation, GroupUpdate, Message, NewEvent};
use crate::views::{ChatRequestView, ConversationView, EmailPolicy, MessageView};

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
/// Ephemeral: delivered live, never stored or replayed.
pub const TYPING: &str = "typing";
/// Ephemeral: delivered live, never stored or replayed.
pub const PRESENCE: &str = "presence";
/// Sent instead of a replay the log can no longer give: refetch your state.
pub const RESET: &str = "reset";

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

/// `chat_request.created`, `.accepted` or `.declined` (by its status) to both users.
pub fn chat_request(request: &ChatRequest) -> Vec<NewEvent> {
    let kind = match request.status.as_str() {
        "accepted" => CHAT_REQUEST_ACCEPTED,
        "declined" => CHAT_REQUEST_DECLINED,
        _ => CHAT_REQUEST_CREATED,
    };
    vec![NewEvent::new(
        kind,
        Audience::Conversation(request.chat_id),
        json(&ChatRequestView::from(request.clone())),
    )]
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

/// `conversation.updated` to one participant: the conversation as that participant sees it
/// (after a change of their own flags: pinned, archived).
pub fn conversation_updated_for(user: Uuid, conversation: &Conversation, emails: EmailPolicy) -> Vec<NewEvent> {
    vec![
        NewEvent::new(
            CONVERSATION_UPDATED,
            Audience::User(user),
            json(&ConversationView::seen_by(conversation.clone(), None, emails)),
        )
        .showing(conversation.last_message.as_ref()),
    ]
}

/// After a group change: `conversation.updated` (the group) to its members, `conversation.created`
/// to the members added (the group, as they will find it), `conversation.removed` to those removed.
/// One payload goes to every member, so it carries no field that differs per member
/// (`pinned`, `archived`, `unreadCount`): each member keeps their own, or reads the group.
pub fn group_changed(update: &GroupUpdate, emails: EmailPolicy) -> Vec<NewEvent> {
    let group = ConversationView::seen_by(update.conversation.clone(), None, emails);
    let latest = update.conversation.last_message.as_ref();
    let mut events = vec![
        NewEvent::new(
            CONVERSATION_UPDATED,
            Audience::Conversation(group.id),
            json(&without_fields(&group, &PER_MEMBER_FIELDS)),
        )
        .showing(latest),
    ];
    for user in &update.added {
        let mut theirs = group.clone();
        (theirs.pinned, theirs.archived) = (false, false);
        events.push(
            NewEvent::new(
                CONVERSATION_CREATED,
                Audience::User(user.id),
                // Their unread count is not the actor's: they read the group to learn it.
                json(&without_fields(&theirs, &["unreadCount"])),
            )
            .showing(latest),
        );
    }
    for user in &update.removed {
        events.push(removed_for(user.id, group.id));
    }
    events.extend(update.messages.iter().flat_map(message_created));
    events
}

/// The fields of a conversation that belong to the member who reads it.
const PER_MEMBER_FIELDS: [&str; 3] = ["pinned", "archived", "unreadCount"];

/// `view` as a JSON object without `fields`.
fn without_fields(view: &ConversationView, fields: &[&str]) -> serde_json::Value {
    let mut value = serde_json::to_value(view).expect("event payloads serialise");
    if let Some(object) = value.as_object_mut() {
        for field in fields {
            object.remove(*field);
        }
    }
    value
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
