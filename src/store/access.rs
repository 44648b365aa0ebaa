//! The authorization gate: who the caller is in a conversation, in one query. Every
//! conversation- or message-scoped operation starts here and refuses a non-member with
//! `NotFound` (so a stranger cannot tell a conversation exists). The store's operations on a
//! conversation take the [`Member`] this returns, so none can be called without asking first;
//! writes also check the participant inside their transaction, after the conversation's lock,
//! as defence in depth against a membership that changed in between. The fields of both are
//! private: only the store makes them, so holding one means the gate said yes.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{ConversationKind, Forbidden, Store, StoreError, StoreResult, with_backend};

/// A chat request's state, as its participants see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestState {
    Pending,
    Accepted,
    Declined,
}

impl RequestState {
    /// A status the schema does not allow reads as declined: refusing is the safe side.
    fn parse(status: &str) -> Self {
        match status {
            "pending" => Self::Pending,
            "accepted" => Self::Accepted,
            _ => Self::Declined,
        }
    }
}

/// Proof that `user` is a participant of `conversation`, with what the rules depend on.
/// Only the store makes one ([`Store::member_of`], [`Store::visible_message`]).
#[derive(Clone, Debug)]
pub struct Member {
    conversation: Uuid,
    user: Uuid,
    kind: ConversationKind,
    owner: Option<Uuid>,
    request: Option<(RequestState, Uuid)>,
    /// Messages sent since the request was (re)opened (only the requester sends meanwhile).
    request_sent: i64,
    /// When the request was answered (or made, for one declined before that was recorded).
    request_answered_at: DateTime<Utc>,
    only_owner_renames: bool,
    /// A chat request hidden from its recipient by a block (see `Member::is_hidden_request`).
    request_hidden: bool,
}

impl Member {
    pub fn conversation(&self) -> Uuid {
        self.conversation
    }

    pub fn user(&self) -> Uuid {
        self.user
    }

    pub fn kind(&self) -> ConversationKind {
        self.kind
    }

    /// A group's owner (`None` for direct conversations).
    pub fn owner(&self) -> Option<Uuid> {
        self.owner
    }

    /// For a direct conversation that began as a chat request: its state and who asked.
    pub fn request(&self) -> Option<(RequestState, Uuid)> {
        self.request
    }

    /// A chat request that its recipient blocks (made while they did): what its requester
    /// does in it reaches nobody but themselves.
    pub fn is_hidden_request(&self) -> bool {
        self.request_hidden
    }

    /// This member deleting their account: they may tombstone their messages even where a
    /// declined chat request keeps them from acting otherwise.
    pub fn deleting_account(mut self) -> Self {
        self.request = None;
        self
    }

    /// Only the owner may rename or describe the group.
    pub fn only_owner_renames(&self) -> bool {
        self.only_owner_renames
    }

    pub fn is_owner(&self) -> bool {
        self.owner == Some(self.user)
    }

    /// `Forbidden(refusal)` unless the member owns the group.
    pub fn require_owner(&self, refusal: Forbidden) -> StoreResult<()> {
        if self.is_owner() {
            Ok(())
        } else {
            Err(StoreError::Forbidden(refusal))
        }
    }

    /// May this member send a message? A chat request must be accepted; or pending, with
    /// them as the requester and fewer than `pending_max` messages sent; or declined by them
    /// (writing reopens it). A declined requester may not.
    pub fn require_can_send(&self, pending_max: i64) -> StoreResult<()> {
        self.require_can_act()?;
        match self.request {
            Some((RequestState::Pending, requester)) if requester != self.user || self.request_sent >= pending_max => {
                Err(StoreError::Forbidden(Forbidden::ChatRequestPending))
            }
            _ => Ok(()),
        }
    }

    /// May this member put anything into the conversation (edits, deletes, reads, typing)?
    /// Everyone but the requester of a declined chat request: a decline holds for the pair.
    pub fn require_can_act(&self) -> StoreResult<()> {
        if self.is_declined_requester() {
            return Err(StoreError::Forbidden(Forbidden::ChatRequestDeclined));
        }
        Ok(())
    }

    /// Did the other user decline this member's chat request after `since`?
    pub fn declined_since(&self, since: DateTime<Utc>) -> bool {
        self.is_declined_requester() && self.request_answered_at > since
    }

    /// Is this member the requester of a chat request the other user declined?
    pub fn is_declined_requester(&self) -> bool {
        self.request == Some((RequestState::Declined, self.user))
    }
}

/// A message whose conversation the caller is in, with its sender and state.
#[derive(Clone, Debug)]
pub struct VisibleMessage {
    member: Member,
    id: Uuid,
    sender: Uuid,
    deleted: bool,
}

impl VisibleMessage {
    /// The caller, in the message's conversation.
    pub fn member(&self) -> &Member {
        &self.member
    }

    pub fn id(&self) -> Uuid {
        self.id
    }

    pub fn sender(&self) -> Uuid {
        self.sender
    }

    /// Deleted for everyone.
    pub fn deleted(&self) -> bool {
        self.deleted
    }
}

/// What the gate reads of a conversation and the caller's place in it.
const SELECT_MEMBER: &str = "SELECT c.id, c.kind, c.owner_id, c.request_status, c.requester_id, c.only_owner_renames,
        c.request_hidden,
        c.last_seq - c.request_from_seq AS request_sent, COALESCE(c.request_answered_at, c.created_at) AS request_answered_at";

/// A chat request hidden from its recipient (`p`) by a block: to them it does not exist. (So
/// is a message withheld from them: see `visible_message`.)
const NOT_HIDDEN_FROM_P: &str = "NOT (c.request_hidden AND c.requester_id <> p.user_id)";

#[derive(sqlx::FromRow)]
struct MemberRow {
    id: Uuid,
    kind: String,
    owner_id: Option<Uuid>,
    request_status: Option<String>,
    requester_id: Option<Uuid>,
    only_owner_renames: bool,
    request_hidden: bool,
    request_sent: i64,
    request_answered_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct VisibleMessageRow {
    #[sqlx(flatten)]
    member: MemberRow,
    sender_id: Uuid,
    deleted: bool,
}

fn member_from(user: Uuid, row: MemberRow) -> Member {
    Member {
        conversation: row.id,
        user,
        kind: if row.kind == "group" {
            ConversationKind::Group
        } else {
            ConversationKind::Direct
        },
        owner: row.owner_id,
        request: row
            .request_status
            .map(|status| (RequestState::parse(&status), row.requester_id.unwrap_or_default())),
        request_sent: row.request_sent,
        request_answered_at: row.request_answered_at,
        only_owner_renames: row.only_owner_renames,
        request_hidden: row.request_hidden,
    }
}

impl Store {
    /// `user` in `conversation`; `NotFound("conversation")` when they are not in it or it
    /// does not exist.
    pub async fn member_of(&self, user: Uuid, conversation: Uuid) -> StoreResult<Member> {
        let row = with_backend!(self, |pool| {
            let sql = sqlx::AssertSqlSafe(format!(
                "{SELECT_MEMBER} FROM conversations c
                 JOIN participants p ON p.conversation_id = c.id AND p.user_id = $2
                 WHERE c.id = $1 AND {NOT_HIDDEN_FROM_P}"
            ));
            sqlx::query_as::<_, MemberRow>(sql)
                .bind(conversation)
                .bind(user)
                .fetch_optional(pool)
                .await
                .map_err(StoreError::from)
        })?;
        row.map(|row| member_from(user, row))
            .ok_or(StoreError::NotFound("conversation"))
    }

    /// Message `id`, if `user` is in its conversation; `NotFound("message")` otherwise.
    pub async fn visible_message(&self, user: Uuid, id: Uuid) -> StoreResult<VisibleMessage> {
        let row = with_backend!(self, |pool| {
            let sql = sqlx::AssertSqlSafe(format!(
                "{SELECT_MEMBER}, m.sender_id, m.deleted_at IS NOT NULL AS deleted FROM messages m
                 JOIN conversations c ON c.id = m.conversation_id
                 JOIN participants p ON p.conversation_id = c.id AND p.user_id = $2
                 WHERE m.id = $1 AND {NOT_HIDDEN_FROM_P}
                   AND NOT EXISTS (SELECT 1 FROM hidden_messages h
                                   WHERE h.user_id = $2 AND h.message_id = m.id AND h.withheld)"
            ));
            sqlx::query_as::<_, VisibleMessageRow>(sql)
                .bind(id)
                .bind(user)
                .fetch_optional(pool)
                .await
                .map_err(StoreError::from)
        })?;
        let row = row.ok_or(StoreError::NotFound("message"))?;
        Ok(VisibleMessage {
            member: member_from(user, row.member),
            id,
            sender: row.sender_id,
            deleted: row.deleted,
        })
    }
}
