//! The JSON shapes of users, conversations and messages, shared by every route (and by the
//! SSE stream): ids as `_id`, fields camelCase, timestamps RFC 3339 UTC.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::MessagePolicy;
use crate::store::{Contact, Conversation, MatchedContactValue, Message, MessageLink, StoredFile, User, UserRef};

/// Whose email a reader sees: their own always, other people's only where the deployment
/// shows them to everyone (`USER_EMAILS_VISIBLE`, for company directories). Every view of a
/// user is built through it, so no route can hand out addresses by forgetting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EmailPolicy {
    pub visible_to_all: bool,
}

impl EmailPolicy {
    /// Does `reader` (`None`: whoever reads a shared event) see `owner`'s email?
    fn shows(self, owner: Uuid, reader: Option<Uuid>) -> bool {
        self.visible_to_all || reader == Some(owner)
    }
}

/// A user. Never carries a password hash: the store does not even read it for this.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    #[serde(rename = "_id")]
    pub id: Uuid,
    #[schema(example = "Ana Lima")]
    pub name: String,
    /// Only in the user's own profile, unless the deployment shows emails to everyone.
    #[schema(example = "ana@example.com")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Only in the user's own profile: who may start a conversation with them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_policy: Option<MessagePolicy>,
    /// What they say about themselves (empty: nothing).
    #[schema(example = "Designer in Lisbon")]
    pub about: String,
    /// Only in the user's own profile: their phone in E.164 (`null`: none).
    #[schema(example = "+351912345678")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<Option<String>>,
    /// Only in the user's own profile: `auto` (presence follows their streams), `online` or
    /// `offline` (what others see whatever the streams do), set by `POST /user/me/status`.
    #[schema(example = "auto")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence_status: Option<String>,
    /// The profile photo (`PATCH /user/me` `avatar`), a signed link like every file link;
    /// `null`: none.
    #[schema(
        example = "/api/v1/file/0190f3a4-5b6c-7d8e-9f00-112233445566?expires=1767225600&user=0190f3a4-5b6c-7d8e-9f00-112233445567&signature=9f2c"
    )]
    pub avatar_url: Option<String>,
    /// Its 320-pixel thumbnail, signed; `null`: no photo.
    pub avatar_thumbnail_url: Option<String>,
    /// `true` for a deleted account (shown as "Deleted user", with no profile); absent otherwise.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl UserView {
    /// `user` as `reader` sees them (`None`: a payload every member reads).
    pub fn seen_by(user: User, reader: Option<Uuid>, emails: EmailPolicy) -> Self {
        let own = reader == Some(user.id);
        Self {
            email: emails.shows(user.id, reader).then_some(user.email),
            message_policy: own.then(|| MessagePolicy::from_stored(&user.message_policy)),
            phone: own.then_some(user.phone),
            presence_status: own.then_some(user.presence_status),
            deleted: user.deleted_at.is_some(),
            avatar_url: user.avatar_id.map(|file| unsigned_file_path(file, "")),
            avatar_thumbnail_url: user.avatar_id.map(|file| unsigned_file_path(file, "/thumbnail")),
            about: user.about,
            id: user.id,
            name: user.name,
            created_at: user.created_at,
            updated_at: user.updated_at,
        }
    }

    /// The user's own view of themselves.
    pub fn own(user: User) -> Self {
        let reader = Some(user.id);
        Self::seen_by(user, reader, EmailPolicy::default())
    }
}

/// The author of a message.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct SenderView {
    #[serde(rename = "_id")]
    pub id: Uuid,
    pub name: String,
}

impl From<UserRef> for SenderView {
    fn from(sender: UserRef) -> Self {
        Self {
            id: sender.id,
            name: sender.name,
        }
    }
}

#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageView {
    #[serde(rename = "_id")]
    pub id: Uuid,
    /// The conversation's id.
    pub conversation: Uuid,
    pub sender: SenderView,
    #[schema(example = "Hello!")]
    pub content: String,
    /// Links to the uploaded files attached, in order (Chatify's shape): each file
    /// attachment's `url`.
    pub files: Vec<String>,
    /// What it carries (nothing on a tombstone): the uploaded files, in order, with links
    /// signed for the reader (`kind: "file"`), then the URLs it points at (`kind: "image_url"`
    /// or `"link"`).
    pub attachments: Vec<AttachmentView>,
    /// The image URL sent as `imageUrl` (the chat-requests API's field); `null` if none.
    #[schema(example = "https://example.com/cat.jpg")]
    pub image_url: Option<String>,
    /// The page URL sent as `linkPreviewUrl`; `null` if none. The server fetches neither.
    pub link_preview_url: Option<String>,
    /// The sender's idempotency key, if one was given.
    pub client_id: Option<String>,
    pub created_at: DateTime<Utc>,
    /// When the sender last edited it; `null`: never.
    pub edited_at: Option<DateTime<Utc>>,
    /// The message this one answers, quoted; `null` if none.
    pub reply_to: Option<QuoteView>,
    /// The sender's custom data, as sent; `null` if none.
    #[schema(value_type = Option<Object>)]
    pub x: Option<Box<serde_json::value::RawValue>>,
    /// Deleted for everyone: a tombstone whose `content` is empty and `x` null.
    pub deleted: bool,
    /// How many of the other participants have read it. Present in message lists and in
    /// `POST /message` answers; absent where it is not computed (events after the first).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_by: Option<usize>,
    /// `read` once every other participant has read it, else `sent`. Present with `readBy`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "sent")]
    pub status: Option<&'static str>,
}

impl MessageView {
    /// A message just stored: read by no one yet.
    pub fn newly_sent(message: Message) -> Self {
        Self {
            read_by: Some(0),
            status: Some("sent"),
            ..Self::from(message)
        }
    }

    /// Adds the read state, from the read positions (`last_read_seq`) of the conversation's
    /// participants.
    pub fn with_read_state(mut self, seq: i64, sender: Uuid, read_positions: &[(Uuid, i64)]) -> Self {
        let others: Vec<i64> = read_positions
            .iter()
            .filter(|(user, _)| *user != sender)
            .map(|(_, position)| *position)
            .collect();
        let read_by = others.iter().filter(|position| **position >= seq).count();
        self.read_by = Some(read_by);
        self.status = Some(if !others.is_empty() && read_by == others.len() {
            "read"
        } else {
            "sent"
        });
        self
    }
}

/// A compact quote of the message replied to.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuoteView {
    #[serde(rename = "_id")]
    pub id: Uuid,
    pub sender: SenderView,
    pub content: String,
    /// Whether the quoted message carries files or URLs, and the content type of its first
    /// file, else the kind of its first URL (`image_url`, `link`); `null`: none. So that a
    /// quote can say "Photo".
    pub has_attachments: bool,
    #[schema(example = "image/jpeg")]
    pub attachment_type: Option<String>,
}

impl From<Message> for MessageView {
    fn from(message: Message) -> Self {
        let files = message.attachments.iter().map(|file| file_path(file.id, "")).collect();
        let link = |kind: &str| {
            message
                .links
                .iter()
                .find(|link| link.kind == kind)
                .map(|link| link.url.clone())
        };
        let (image_url, link_preview_url) = (link(MessageLink::IMAGE), link(MessageLink::LINK));
        let attachments = message
            .attachments
            .into_iter()
            .map(|file| AttachmentView::File(FileView::new(file, file_path)))
            .chain(message.links.into_iter().map(|link| {
                AttachmentView::Url(UrlAttachmentView {
                    kind: link.kind,
                    url: link.url,
                })
            }))
            .collect();
        Self {
            id: message.id,
            conversation: message.conversation_id,
            sender: message.sender.into(),
            content: message.content,
            files,
            attachments,
            image_url,
            link_preview_url,
            client_id: message.client_id,
            created_at: message.created_at,
            edited_at: message.edited_at,
            reply_to: message.reply_to.map(|quote| QuoteView {
                id: quote.id,
                sender: SenderView {
                    id: quote.sender.id,
                    name: quote.sender.name,
                },
                content: quote.content,
                has_attachments: quote.attachment_type.is_some(),
                attachment_type: quote.attachment_type,
            }),
            // Stored as validated JSON; should it ever not parse, leave it out rather than fail.
            x: message.x.and_then(|x| serde_json::value::RawValue::from_string(x).ok()),
            deleted: message.deleted,
            read_by: None,
            status: None,
        }
    }
}

#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConversationType {
    Direct,
    Group,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConversationView {
    #[serde(rename = "_id")]
    pub id: Uuid,
    #[serde(rename = "type")]
    pub kind: ConversationType,
    /// The group's name; `null` for direct conversations (show the other participant's name).
    pub name: Option<String>,
    /// The group's owner; `null` for direct conversations.
    pub owner: Option<Uuid>,
    /// A group's description, if set.
    pub description: Option<String>,
    /// Only the owner may rename or describe the group (the owner sets it); `false` for direct
    /// conversations.
    pub only_owner_can_rename: bool,
    pub participants: Vec<UserView>,
    /// For a direct conversation opened as a chat request: `pending`, `accepted` or
    /// `declined`; `null` for every other conversation.
    #[schema(example = json!(null))]
    pub request_status: Option<String>,
    /// The last message's text, as Chatify clients expect, or `null`.
    pub last_message: Option<String>,
    /// The whole last message (richer than `lastMessage`), or `null`.
    pub latest_message: Option<MessageView>,
    /// Messages from others after the caller's read position.
    pub unread_count: i64,
    /// Pinned by the caller: sorts first in their list.
    pub pinned: bool,
    /// Archived by the caller: listed with `?archived=true` only.
    pub archived: bool,
    /// Muted by the caller (`POST /conversation/{id}/mute`): no push notifications for it.
    pub muted: bool,
    /// When the caller's mute ends; `null` when not muted or muted until they unmute.
    #[schema(example = json!(null))]
    pub muted_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// Time of the last activity: creation or the last message.
    pub updated_at: DateTime<Utc>,
}

impl ConversationView {
    /// `conversation` as `reader` sees its participants (`None`: a payload every member reads).
    pub fn seen_by(conversation: Conversation, reader: Option<Uuid>, emails: EmailPolicy) -> Self {
        let read_positions = &conversation.read_positions;
        let latest_message: Option<MessageView> = conversation.last_message.map(|message| {
            let (seq, sender) = (message.seq, message.sender.id);
            MessageView::from(message).with_read_state(seq, sender, read_positions)
        });
        Self {
            id: conversation.id,
            kind: match conversation.kind {
                crate::store::ConversationKind::Direct => ConversationType::Direct,
                crate::store::ConversationKind::Group => ConversationType::Group,
            },
            name: conversation.name,
            owner: conversation.owner_id,
            description: conversation.description,
            only_owner_can_rename: conversation.only_owner_renames,
            request_status: conversation.request_status,
            participants: conversation
                .participants
                .into_iter()
                .map(|user| UserView::seen_by(user, reader, emails))
                .collect(),
            last_message: latest_message.as_ref().map(|message| message.content.clone()),
            latest_message,
            unread_count: conversation.unread_count,
            pinned: conversation.pinned,
            archived: conversation.archived,
            muted: conversation.mute.is_some(),
            muted_until: conversation.mute.and_then(|mute| mute.until),
            created_at: conversation.created_at,
            updated_at: conversation.updated_at,
        }
    }
}

/// A chat request: a direct conversation waiting for its recipient.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChatRequestView {
    /// `direct` (a direct conversation waiting for its recipient) or `group_invitation` (an
    /// invitation to join a group, whose recipient's message policy is `requests`).
    #[schema(example = "direct")]
    pub kind: String,
    /// The conversation's id: the group's, for an invitation.
    pub chat_id: Uuid,
    /// `pending`, `accepted` or `declined`.
    #[schema(example = "pending")]
    pub status: String,
    /// Who asked: for an invitation, the member who invited.
    pub requester: SenderView,
    pub recipient: SenderView,
    /// The group's name, for an invitation (`null` for a direct request).
    pub group_name: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<crate::store::ChatRequest> for ChatRequestView {
    fn from(request: crate::store::ChatRequest) -> Self {
        Self {
            kind: request.kind,
            chat_id: request.chat_id,
            status: request.status,
            requester: SenderView {
                id: request.requester_id,
                name: request.requester_name,
            },
            recipient: SenderView {
                id: request.recipient_id,
                name: request.recipient_name,
            },
            group_name: request.group_name,
            created_at: request.created_at,
        }
    }
}

/// One thing a message carries: an uploaded file, or a URL.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum AttachmentView {
    File(FileView),
    Url(UrlAttachmentView),
}

/// A URL a message points at, as sent (the server fetches nothing).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct UrlAttachmentView {
    /// `image_url` (sent as `imageUrl`) or `link` (sent as `linkPreviewUrl`).
    #[schema(example = "image_url")]
    pub kind: String,
    #[schema(example = "https://example.com/cat.jpg")]
    pub url: String,
}

/// An uploaded file, with links signed for the reader.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FileView {
    /// Always `file` (beside the URL kinds of a message's `attachments`).
    #[schema(example = "file")]
    pub kind: &'static str,
    #[serde(rename = "_id")]
    pub id: Uuid,
    /// For display: the uploaded name without folders or control characters.
    #[schema(example = "photo.jpg")]
    pub name: String,
    /// In bytes.
    pub size: i64,
    /// Sniffed from the bytes.
    #[schema(example = "image/jpeg")]
    pub content_type: String,
    /// Of an image, in pixels (`null` otherwise, or until known).
    pub width: Option<i32>,
    pub height: Option<i32>,
    /// A signed link that works without a header until `FILE_URL_TTL` passes
    /// (`POST /file/urls` gives fresh ones).
    pub url: String,
    /// A signed link to a 320 px thumbnail of an image (`null`: none).
    pub thumbnail_url: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl FileView {
    /// `file` with links from `sign(file id, variant)` (`""`: the file itself).
    pub fn new(file: StoredFile, sign: impl Fn(Uuid, &str) -> String) -> Self {
        Self {
            kind: "file",
            url: sign(file.id, ""),
            thumbnail_url: file.thumbnail_type.as_ref().map(|_| sign(file.id, "/thumbnail")),
            id: file.id,
            name: file.name,
            size: file.size,
            content_type: file.content_type,
            width: file.width,
            height: file.height,
            created_at: file.created_at,
        }
    }
}

/// The unsigned path of file `id` (`variant`: `""` or `"/thumbnail"`), as views shared by
/// several readers (stored event payloads) carry it until [`sign_file_links`] signs it for one.
pub fn file_path(id: Uuid, variant: &str) -> String {
    format!("/api/v1/file/{id}{variant}")
}

/// Where a file is before its link is signed for a reader (see [`sign_file_links`]).
fn unsigned_file_path(file: Uuid, variant: &str) -> String {
    format!("{UNSIGNED_FILE_PREFIX}{file}{variant}")
}

const UNSIGNED_FILE_PREFIX: &str = "/api/v1/file/";

/// The file an unsigned avatar link names, and its variant (`""` or `/thumbnail`).
fn unsigned_file(link: &str) -> Option<(Uuid, &str)> {
    let rest = link.strip_prefix(UNSIGNED_FILE_PREFIX)?;
    if rest.contains('?') {
        return None;
    }
    let (id, variant) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    matches!(variant, "" | "/thumbnail").then_some(())?;
    Some((id.parse().ok()?, variant))
}

/// Signs, in `value`, every attachment's links and every user's avatar links with
/// `sign(file, variant)`, and sets each message's `files` to its attachments' links; whether
/// there were any. One walk for every
/// answer and event that shows messages, so no route can hand out an unsigned link by
/// forgetting.
pub fn sign_file_links(value: &mut serde_json::Value, sign: &dyn Fn(Uuid, &str) -> String) -> bool {
    use serde_json::Value;
    match value {
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |signed, item| sign_file_links(item, sign) | signed),
        Value::Object(object) => {
            let mut signed = false;
            for key in ["avatarUrl", "avatarThumbnailUrl"] {
                if let Some(Value::String(link)) = object.get_mut(key)
                    && let Some((file, variant)) = unsigned_file(link)
                {
                    *link = sign(file, variant);
                    signed = true;
                }
            }
            if let Some(Value::Array(attachments)) = object.get_mut("attachments") {
                let mut urls = Vec::with_capacity(attachments.len());
                for attachment in attachments.iter_mut() {
                    let Some(id) = attachment
                        .get("_id")
                        .and_then(Value::as_str)
                        .and_then(|id| id.parse().ok())
                    else {
                        continue;
                    };
                    let url = sign(id, "");
                    attachment["url"] = Value::from(url.clone());
                    if attachment.get("thumbnailUrl").is_some_and(Value::is_string) {
                        attachment["thumbnailUrl"] = Value::from(sign(id, "/thumbnail"));
                    }
                    urls.push(Value::from(url));
                }
                if object.contains_key("files") {
                    object.insert("files".into(), Value::Array(urls));
                }
                signed = true;
            }
            // `x` is the sender's own data, returned untouched.
            object
                .iter_mut()
                .filter(|(key, _)| key.as_str() != "attachments" && key.as_str() != "x")
                .fold(signed, |signed, (_, field)| sign_file_links(field, sign) | signed)
        }
        _ => false,
    }
}

/// A contact, as its owner sees it.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContactView {
    #[serde(rename = "_id")]
    pub id: Uuid,
    /// `null`: none.
    #[schema(example = "Ana")]
    pub first_name: Option<String>,
    /// `null`: none.
    #[schema(example = "Lima")]
    pub last_name: Option<String>,
    /// `null`: none.
    #[schema(example = "Atelier Lima")]
    pub company: Option<String>,
    /// In the order given.
    pub email: Vec<ContactValueView>,
    /// In the order given.
    pub phone: Vec<ContactValueView>,
    pub created_at: DateTime<Utc>,
    /// The last change of the contact itself: a match that appears or goes does not move it.
    pub updated_at: DateTime<Utc>,
}

/// One email or phone of a contact.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContactValueView {
    /// The owner's word for it.
    #[serde(rename = "type")]
    #[schema(example = "mobile")]
    pub label: String,
    /// An email lower-cased, a phone in E.164.
    #[schema(example = "+351912345678")]
    pub value: String,
    /// The registered user whose email (case-insensitively) or phone this is now; `null` when
    /// nobody's, when that account is deleted, or when the caller and that user block each
    /// other (either way).
    pub matched_user_id: Option<Uuid>,
}

impl From<Contact> for ContactView {
    fn from(contact: Contact) -> Self {
        let values = |values: Vec<MatchedContactValue>| {
            values
                .into_iter()
                .map(|value| ContactValueView {
                    label: value.label,
                    value: value.value,
                    matched_user_id: value.matched_user_id,
                })
                .collect()
        };
        Self {
            id: contact.id,
            first_name: contact.first_name,
            last_name: contact.last_name,
            company: contact.company,
            email: values(contact.emails),
            phone: values(contact.phones),
            created_at: contact.created_at,
            updated_at: contact.updated_at,
        }
    }
}
