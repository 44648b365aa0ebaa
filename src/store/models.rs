//! What the store reads and writes. Plain data: the HTTP layer turns these into JSON views.

use chrono::{DateTime, Utc};
use uuid::Uuid;

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct User {
    pub id: Uuid,
    pub name: String,
    /// Lower-cased on the way in, so comparisons are case-insensitive on both backends.
    pub email: String,
    /// `everyone` or `requests` (see [`MessagePolicy`](crate::domain::MessagePolicy)).
    pub message_policy: String,
    /// What they say about themselves (empty: nothing).
    pub about: String,
    /// In E.164; unique.
    pub phone: Option<String>,
    /// `auto`, `online` or `offline`: what `POST /user/me/status` chose.
    pub presence_status: String,
    /// When the account was deleted: it shows as "Deleted user", with no profile.
    pub deleted_at: Option<DateTime<Utc>>,
    /// Their profile photo (a file of theirs, an image with a thumbnail).
    pub avatar_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct UserCredentials {
    #[sqlx(flatten)]
    pub user: User,
    pub password_hash: String,
}

#[derive(Clone, Debug)]
pub struct NewUser {
    pub id: Uuid,
    pub name: String,
    pub email: String,
    pub password_hash: String,
    pub created_at: DateTime<Utc>,
}

/// One page of a user search: users ordered by name, then id.
#[derive(Clone, Debug)]
pub struct UserSearch {
    pub caller: Uuid,
    /// Lower-cased: matched anywhere in the name, or as the whole email; empty lists the
    /// caller's conversation partners.
    pub keyword: String,
    pub limit: u32,
    /// The last user of the previous page.
    pub after_user: Option<Uuid>,
    /// Users left out (SAMA's `ignore_ids`).
    pub ignore: Vec<Uuid>,
    /// Only users whose profile changed after this.
    pub updated_after: Option<DateTime<Utc>>,
}

/// What `PATCH /user/me` changes; `None`: unchanged.
#[derive(Clone, Debug, Default)]
pub struct ProfileChanges {
    pub name: Option<String>,
    pub about: Option<String>,
    /// `Some(None)` clears it.
    pub phone: Option<Option<String>>,
    /// Lower-cased.
    pub email: Option<String>,
    pub message_policy: Option<crate::domain::MessagePolicy>,
    /// `Some(None)` removes the photo.
    pub avatar: Option<Option<Uuid>>,
}

#[derive(Clone, Debug)]
pub struct NewSession {
    pub id: Uuid,
    pub user_id: Uuid,
    pub device_id: Option<String>,
    pub refresh_token_hash: Vec<u8>,
    /// The password hash a login verified: the session opens only if it is still the user's
    /// (a password change between the check and the insert must not let the old one in).
    pub verified_hash: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// What presenting a refresh token did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// The token was the session's current one; it has been replaced.
    Rotated { user_id: Uuid },
    /// The token had already been rotated away: the session has been revoked (reuse detection).
    ReuseDetected,
    /// Unknown, expired or revoked session.
    Invalid,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConversationKind {
    Direct,
    Group,
}

impl ConversationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ConversationKind::Direct => "direct",
            ConversationKind::Group => "group",
        }
    }

    fn parse(kind: &str) -> Self {
        if kind == "group" {
            ConversationKind::Group
        } else {
            ConversationKind::Direct
        }
    }
}

/// The author of a message, as messages show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRef {
    pub id: Uuid,
    pub name: String,
}

#[derive(Clone, Debug)]
pub struct Message {
    pub id: Uuid,
    pub conversation_id: Uuid,
    /// Position in the conversation: 1, 2, 3... in commit order.
    pub seq: i64,
    pub sender: UserRef,
    pub content: String,
    pub client_id: Option<String>,
    pub created_at: DateTime<Utc>,
    /// When the sender last edited it; `None`: never.
    pub edited_at: Option<DateTime<Utc>>,
    /// The message it answers, quoted.
    pub reply_to: Option<Quote>,
    /// Custom data (a serialised JSON object), as sent.
    pub x: Option<String>,
    /// Deleted for everyone: a tombstone without text or custom data.
    pub deleted: bool,
    /// The files it carries, in order (none on a tombstone). Loaded with
    /// `tx::attach_files!` wherever messages are read.
    pub attachments: Vec<super::StoredFile>,
    /// The URLs it points at (`imageUrl`, `linkPreviewUrl`), loaded with the files.
    pub links: Vec<MessageLink>,
}

/// A URL a message points at, kept as given: the server never fetches it.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct MessageLink {
    /// [`MessageLink::IMAGE`] or [`MessageLink::LINK`].
    pub kind: String,
    pub url: String,
}

impl MessageLink {
    /// An image to show (the chat-requests API's `imageUrl`).
    pub const IMAGE: &'static str = "image_url";
    /// A page to preview (`linkPreviewUrl`).
    pub const LINK: &'static str = "link";
}

/// For whom messages are deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteScope {
    /// Hidden for the caller only.
    Me,
    /// Replaced by a tombstone for everyone (the sender, or a group's owner).
    All,
}
#[derive(Clone, Debug)]
pub struct Conversation {
    pub id: Uuid,
    pub kind: ConversationKind,
    pub name: Option<String>,
    pub owner_id: Option<Uuid>,
    /// A group's description.
    pub description: Option<String>,
    /// Only the owner may rename or describe this group (set by the owner).
    pub only_owner_renames: bool,
    /// For a direct conversation opened as a chat request: `pending`, `accepted` or `declined`.
    pub request_status: Option<String>,
    pub participants: Vec<User>,
    /// Each participant's read position (`seq` of the last message they read).
    pub read_positions: Vec<(Uuid, i64)>,
    pub last_message: Option<Message>,
    pub unread_count: i64,
    /// Pinned by this participant: sorts first in their list.
    pub pinned: bool,
    /// Archived by this participant: out of their default list (new messages keep it there).
    pub archived: bool,
    /// Muted by this participant: no pushes for it (its messages still arrive on streams).
    pub mute: Option<Mute>,
    pub created_at: DateTime<Utc>,
    /// Time of the last activity (creation or last message): the list's sort key.
    pub updated_at: DateTime<Utc>,
}

/// Where a page of the conversation list starts: strictly after this in list order (pinned
/// first, then most recent activity first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConversationCursor {
    pub pinned: bool,
    pub updated_at: DateTime<Utc>,
    pub id: Uuid,
}

/// A participant's mute of a conversation, in force.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mute {
    /// When it ends; `None`: when the participant unmutes.
    pub until: Option<DateTime<Utc>>,
}

impl Mute {
    /// The mute recorded as `muted_at`, `muted_until`, if it is still in force at `now`.
    pub fn in_force(muted_at: Option<DateTime<Utc>>, until: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Option<Self> {
        muted_at?;
        match until {
            Some(until) if until <= now => None,
            until => Some(Self { until }),
        }
    }
}

/// Which of a participant's flags to toggle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConversationFlag {
    Pinned,
    Archived,
    /// Mute until this time (`None`: until unmuted), or unmute if muted.
    Muted {
        until: Option<DateTime<Utc>>,
    },
}

#[derive(Clone, Debug)]
pub struct NewGroup {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub name: String,
    /// Other members (the owner is added by the store); distinct, without the owner.
    pub members: Vec<Uuid>,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug)]
pub struct NewMessage {
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub sender_id: Uuid,
    pub content: String,
    pub client_id: Option<String>,
    /// A message of the same conversation this one answers (`Invalid` on `replyTo` otherwise).
    pub reply_to: Option<Uuid>,
    /// Custom data: a serialised JSON object, stored and returned untouched.
    pub x: Option<String>,
    /// Files the sender uploaded, to attach in this order (`Invalid` on `files` otherwise).
    pub files: Vec<Uuid>,
    /// URLs to keep with it, at most one of each kind.
    pub links: Vec<MessageLink>,
    pub created_at: DateTime<Utc>,
}

/// The compact quote of a replied-to message that a reply carries.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Quote {
    #[sqlx(rename = "reply_id")]
    pub id: Uuid,
    #[sqlx(flatten)]
    pub sender: QuoteSender,
    #[sqlx(rename = "reply_content")]
    pub content: String,
    /// The content type of its first file, if it carries any.
    #[sqlx(rename = "reply_attachment_type")]
    pub attachment_type: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct QuoteSender {
    #[sqlx(rename = "reply_sender_id")]
    pub id: Uuid,
    #[sqlx(rename = "reply_sender_name")]
    pub name: String,
}

/// Which slice of a conversation's messages to read.
#[derive(Clone, Copy, Debug)]
pub struct MessagePage {
    /// Only messages older than this one (newest first).
    pub before: Option<Uuid>,
    /// Only messages newer than this one; when set, the page is oldest first.
    pub after: Option<Uuid>,
    pub limit: u32,
}

// ---- rows as the database returns them -------------------------------------------------

#[derive(sqlx::FromRow)]
pub(super) struct MessageRow {
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub seq: i64,
    pub sender_id: Uuid,
    pub sender_name: String,
    pub content: String,
    pub client_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub edited_at: Option<DateTime<Utc>>,
    pub x: Option<String>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub reply_id: Option<Uuid>,
    pub reply_sender_id: Option<Uuid>,
    pub reply_sender_name: Option<String>,
    pub reply_content: Option<String>,
    pub reply_attachment_type: Option<String>,
}

/// The quote of a replied-to message from the four nullable columns a LEFT JOIN gives.
fn quote(
    id: Option<Uuid>,
    sender_id: Option<Uuid>,
    sender_name: Option<String>,
    content: Option<String>,
    attachment_type: Option<String>,
) -> Option<Quote> {
    match (id, sender_id, sender_name, content) {
        (Some(id), Some(sender_id), Some(name), Some(content)) => Some(Quote {
            id,
            sender: QuoteSender { id: sender_id, name },
            content,
            attachment_type,
        }),
        _ => None,
    }
}

impl From<MessageRow> for Message {
    fn from(row: MessageRow) -> Self {
        Message {
            id: row.id,
            conversation_id: row.conversation_id,
            seq: row.seq,
            sender: UserRef {
                id: row.sender_id,
                name: row.sender_name,
            },
            content: row.content,
            client_id: row.client_id,
            created_at: row.created_at,
            edited_at: row.edited_at,
            reply_to: quote(
                row.reply_id,
                row.reply_sender_id,
                row.reply_sender_name,
                row.reply_content,
                row.reply_attachment_type,
            ),
            x: row.x,
            deleted: row.deleted_at.is_some(),
            attachments: Vec::new(),
            links: Vec::new(),
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ConversationRow {
    pub id: Uuid,
    pub kind: String,
    pub name: Option<String>,
    pub owner_id: Option<Uuid>,
    pub description: Option<String>,
    pub only_owner_renames: bool,
    pub request_status: Option<String>,
    pub pinned: bool,
    pub archived: bool,
    pub muted_at: Option<DateTime<Utc>>,
    pub muted_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_message_id: Option<Uuid>,
    pub last_message_seq: Option<i64>,
    pub last_message_sender_id: Option<Uuid>,
    pub last_message_sender_name: Option<String>,
    pub last_message_content: Option<String>,
    pub last_message_client_id: Option<String>,
    pub last_message_created_at: Option<DateTime<Utc>>,
    pub last_message_edited_at: Option<DateTime<Utc>>,
    pub last_message_x: Option<String>,
    pub last_message_deleted_at: Option<DateTime<Utc>>,
    /// See `sql::unread_count!`.
    pub unread_count: i64,
    pub reply_id: Option<Uuid>,
    pub reply_sender_id: Option<Uuid>,
    pub reply_sender_name: Option<String>,
    pub reply_content: Option<String>,
    pub reply_attachment_type: Option<String>,
}

impl ConversationRow {
    pub(super) fn into_conversation(self, participants: Vec<User>, read_positions: Vec<(Uuid, i64)>) -> Conversation {
        let last_message = match (
            self.last_message_id,
            self.last_message_seq,
            self.last_message_sender_id,
            self.last_message_sender_name,
            self.last_message_content,
            self.last_message_created_at,
        ) {
            (Some(id), Some(seq), Some(sender_id), Some(sender_name), Some(content), Some(created_at)) => {
                Some(Message {
                    id,
                    conversation_id: self.id,
                    seq,
                    sender: UserRef {
                        id: sender_id,
                        name: sender_name,
                    },
                    content,
                    client_id: self.last_message_client_id,
                    created_at,
                    edited_at: self.last_message_edited_at,
                    reply_to: quote(
                        self.reply_id,
                        self.reply_sender_id,
                        self.reply_sender_name,
                        self.reply_content,
                        self.reply_attachment_type,
                    ),
                    x: self.last_message_x,
                    deleted: self.last_message_deleted_at.is_some(),
                    attachments: Vec::new(),
                    links: Vec::new(),
                })
            }
            _ => None,
        };
        Conversation {
            id: self.id,
            kind: ConversationKind::parse(&self.kind),
            name: self.name,
            owner_id: self.owner_id,
            description: self.description,
            only_owner_renames: self.only_owner_renames,
            request_status: self.request_status,
            participants,
            read_positions,
            last_message,
            unread_count: self.unread_count,
            pinned: self.pinned,
            archived: self.archived,
            mute: Mute::in_force(self.muted_at, self.muted_until, super::now()),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ParticipantRow {
    pub conversation_id: Uuid,
    pub last_read_seq: i64,
    #[sqlx(flatten)]
    pub user: User,
}
