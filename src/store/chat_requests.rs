//! Chat requests: direct conversations that wait for their recipient to accept, and group
//! invitations, which wait likewise for a user whose message policy is `requests`. Both are
//! listed, accepted and declined through the same routes; a decline of either holds the pair.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::sql::direct_key;
use super::tx::{
    append_system_message, commit_with_events, conversation_in_tx, group_seats_taken, join_group, lock_conversation,
    require_participant, users_by_id,
};
use super::{
    Conflict, Dialect, Forbidden, GroupUpdate, Invalid, Member, NewEvent, Store, StoreError, StoreResult, User,
    with_backend, with_writer,
};
use crate::domain::MemberChange;

/// A chat request as either side sees it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ChatRequest {
    /// `direct` or `group_invitation`.
    pub kind: String,
    /// The conversation's id (the group's, for an invitation).
    pub chat_id: Uuid,
    pub status: String,
    pub requester_id: Uuid,
    pub requester_name: String,
    pub recipient_id: Uuid,
    pub recipient_name: String,
    /// The group's name, for an invitation.
    pub group_name: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Made while the recipient blocks the requester: it looks pending to the requester and
    /// never reaches the recipient.
    pub hidden: bool,
}

/// The kinds of [`ChatRequest`].
pub const DIRECT_REQUEST: &str = "direct";
pub const GROUP_INVITATION: &str = "group_invitation";

impl ChatRequest {
    /// `invitee`'s invitation to `group` from `inviter`, as just made.
    pub(super) fn invitation(
        group: Uuid,
        group_name: Option<String>,
        inviter: &User,
        invitee: &User,
        now: DateTime<Utc>,
        hidden: bool,
    ) -> Self {
        Self {
            kind: GROUP_INVITATION.to_string(),
            chat_id: group,
            status: "pending".to_string(),
            requester_id: inviter.id,
            requester_name: inviter.name.clone(),
            recipient_id: invitee.id,
            recipient_name: invitee.name.clone(),
            group_name,
            created_at: now,
            hidden,
        }
    }

    /// This pending invitation, withdrawn by removing its invitee from the group.
    pub(super) fn withdrawn(mut self) -> Self {
        self.status = "withdrawn".to_string();
        self
    }

    pub fn is_invitation(&self) -> bool {
        self.kind == GROUP_INVITATION
    }
}

/// What answering a group invitation did: the invitation with its new status, and, when
/// accepted, the group the user joined.
#[derive(Clone, Debug)]
pub struct InvitationAnswer {
    pub request: ChatRequest,
    pub joined: Option<GroupUpdate>,
}

/// Which requests to list.
#[derive(Clone, Copy, Debug)]
pub struct RequestFilter {
    /// `pending` or `declined`.
    pub status: &'static str,
    /// Requests others sent to the user (`true`) or the user sent (`false`).
    pub incoming: bool,
    pub skip: u32,
    pub limit: u32,
}

const SELECT_REQUESTS: &str = "SELECT 'direct' AS kind, c.id AS chat_id, c.request_status AS status, c.created_at,
        c.requester_id, rq.name AS requester_name, q.user_id AS recipient_id, rc.name AS recipient_name,
        CAST(NULL AS TEXT) AS group_name, c.request_hidden AS hidden
     FROM conversations c
     JOIN users rq ON rq.id = c.requester_id
     JOIN participants q ON q.conversation_id = c.id AND q.user_id <> c.requester_id
     JOIN users rc ON rc.id = q.user_id";

/// The same columns for group invitations.
pub(super) const SELECT_INVITATIONS: &str =
    "SELECT 'group_invitation' AS kind, i.conversation_id AS chat_id, i.status, i.created_at,
        i.inviter_id AS requester_id, rq.name AS requester_name, i.user_id AS recipient_id, rc.name AS recipient_name,
        g.name AS group_name, i.hidden
     FROM group_invitations i
     JOIN conversations g ON g.id = i.conversation_id
     JOIN users rq ON rq.id = i.inviter_id
     JOIN users rc ON rc.id = i.user_id";

/// The chat request `$chat`, read inside `$tx` (see `tx.rs` for the helpers' contract).
macro_rules! request_in_tx {
    ($tx:ident, $chat:expr) => {
        super::tx::store_body(async {
            let request: ChatRequest =
                sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT_REQUESTS} WHERE c.id = $1")))
                    .bind($chat)
                    .fetch_one(&mut *$tx)
                    .await?;
            Ok(request)
        })
        .await
    };
}

impl Store {
    /// Opens a pending direct conversation from `requester` to `recipient` with the events
    /// `events` gives. When the pair has a conversation already: `Forbidden(chat_request_declined)`
    /// if the recipient declined the requester's request within the cooldown, the same
    /// conversation pending again if longer ago, else `Conflict(chat_exists)`.
    pub async fn create_chat_request(
        &self,
        requester: Uuid,
        recipient: Uuid,
        id: Uuid,
        now: DateTime<Utc>,
        events: impl Fn(&ChatRequest) -> Vec<NewEvent>,
    ) -> StoreResult<ChatRequest> {
        self.refuse_declined_pairs(requester, &[recipient], now).await?;
        let created = with_writer!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            // While the recipient blocks the requester, the request is hidden from them.
            let inserted: Option<Uuid> = sqlx::query_scalar(
                "INSERT INTO conversations (id, kind, direct_key, request_status, requester_id, created_at, updated_at,
                                            request_hidden)
                 VALUES ($1, 'direct', $2, 'pending', $3, $4, $4,
                         EXISTS (SELECT 1 FROM user_blocks WHERE blocker_id = $5 AND blocked_id = $3))
                 ON CONFLICT (direct_key) DO NOTHING
                 RETURNING id",
            )
            .bind(id)
            .bind(direct_key(requester, recipient))
            .bind(requester)
            .bind(now)
            .bind(recipient)
            .fetch_optional(&mut *tx)
            .await?;
            if inserted.is_none() {
                tx.rollback().await?;
                return Ok(None);
            }
            for user in [requester, recipient] {
                sqlx::query(
                    "INSERT INTO participants (conversation_id, user_id, role, joined_at) VALUES ($1, $2, 'member', $3)",
                )
                .bind(id)
                .bind(user)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            let request = request_in_tx!(tx, id)?;
            commit_with_events!(self, tx, events(&request), now)?;
            Ok(Some(request))
        })?;
        if let Some(request) = created {
            return Ok(request);
        }
        let existing = self.direct_conversation_of(requester, recipient).await?;
        let member = self.member_of(requester, existing).await?;
        if !member.is_declined_requester() {
            return Err(StoreError::Conflict(Conflict::ChatExists));
        }
        if member.declined_since(self.declines_since(now)) {
            return Err(StoreError::Forbidden(Forbidden::ChatRequestDeclined));
        }
        self.reopen_chat_request(&member, now, events).await
    }

    /// A declined request asked again after the cooldown: pending, with a fresh message budget.
    async fn reopen_chat_request(
        &self,
        member: &Member,
        now: DateTime<Utc>,
        events: impl Fn(&ChatRequest) -> Vec<NewEvent>,
    ) -> StoreResult<ChatRequest> {
        let chat = member.conversation();
        with_writer!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let sql = sqlx::AssertSqlSafe(format!(
                "UPDATE conversations SET request_status = 'pending', request_answered_at = NULL, request_from_seq = last_seq,
                     request_hidden = EXISTS (SELECT 1 FROM participants o JOIN user_blocks b ON b.blocker_id = o.user_id
                                              WHERE o.conversation_id = $1 AND o.user_id <> $2 AND b.blocked_id = $2)
                 WHERE id = $1 AND {lock} AND request_status = 'declined' AND requester_id = $2",
                lock = pool.lock_conversation()
            ));
            let updated = sqlx::query(sql)
                .bind(chat)
                .bind(member.user())
                .execute(&mut *tx)
                .await?;
            if updated.rows_affected() == 0 {
                // Answered or reopened meanwhile.
                return Err(StoreError::Conflict(Conflict::ChatExists));
            }
            let request = request_in_tx!(tx, chat)?;
            commit_with_events!(self, tx, events(&request), now)?;
            Ok(request)
        })
    }

    /// `user`'s chat requests and group invitations by status and direction, newest first.
    pub async fn list_chat_requests(&self, user: Uuid, filter: RequestFilter) -> StoreResult<Vec<ChatRequest>> {
        with_backend!(self, |pool| {
            let sql = sqlx::AssertSqlSafe(format!(
                "SELECT * FROM (
                   {SELECT_REQUESTS}
                   JOIN participants mine ON mine.conversation_id = c.id AND mine.user_id = $1
                   WHERE c.request_status = $2 AND ((c.requester_id <> $1) = $3)
                     AND NOT (c.request_hidden AND c.requester_id <> $1)
                   UNION ALL
                   {SELECT_INVITATIONS}
                   WHERE i.status = $2 AND (CASE WHEN $3 THEN i.user_id ELSE i.inviter_id END) = $1
                     AND NOT (i.hidden AND i.user_id = $1)
                 ) requests
                 ORDER BY created_at DESC, chat_id DESC
                 LIMIT $4 OFFSET $5"
            ));
            Ok(sqlx::query_as::<_, ChatRequest>(sql)
                .bind(user)
                .bind(filter.status)
                .bind(filter.incoming)
                .bind(i64::from(filter.limit))
                .bind(i64::from(filter.skip))
                .fetch_all(pool)
                .await?)
        })
    }

    /// How many chat requests and group invitations wait for `user`'s answer.
    pub async fn pending_requests(&self, user: Uuid) -> StoreResult<i64> {
        with_backend!(self, |pool| {
            Ok(sqlx::query_scalar::<_, i64>(
                "SELECT (SELECT COUNT(*) FROM participants p JOIN conversations c ON c.id = p.conversation_id
                         WHERE p.user_id = $1 AND c.request_status = 'pending' AND c.requester_id <> $1
                           AND NOT c.request_hidden)
                      + (SELECT COUNT(*) FROM group_invitations WHERE user_id = $1 AND status = 'pending' AND NOT hidden)",
            )
            .bind(user)
            .fetch_one(pool)
            .await?)
        })
    }

    /// `user`'s invitation to group `chat`, pending or declined, if there is one they may see
    /// (not one hidden from them by a block).
    pub async fn invitation_for(&self, user: Uuid, chat: Uuid) -> StoreResult<Option<ChatRequest>> {
        with_backend!(self, |pool| {
            let sql = sqlx::AssertSqlSafe(format!(
                "{SELECT_INVITATIONS} WHERE i.conversation_id = $1 AND i.user_id = $2 AND NOT i.hidden"
            ));
            Ok(sqlx::query_as::<_, ChatRequest>(sql)
                .bind(chat)
                .bind(user)
                .fetch_optional(pool)
                .await?)
        })
    }

    /// The invitee accepts or declines their pending invitation to `group` (as
    /// [`Store::invitation_for`] found it; read again under the group's lock). Accepting makes
    /// them a member from now on, with a system message from the inviter, as an addition
    /// would; declining holds the pair for the cooldown. With the events `events` gives.
    /// `NotFound` when it was withdrawn meanwhile; `Conflict(chat_request_answered)` when it
    /// is no longer pending; `Invalid(group_too_large)` when the group has no seat left.
    pub async fn answer_group_invitation(
        &self,
        invitation: &ChatRequest,
        accept: bool,
        now: DateTime<Utc>,
        events: impl Fn(&InvitationAnswer) -> Vec<NewEvent>,
    ) -> StoreResult<InvitationAnswer> {
        let (group, user) = (invitation.chat_id, invitation.recipient_id);
        with_writer!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            lock_conversation!(tx, pool, group)?;
            let sql = sqlx::AssertSqlSafe(format!(
                "{SELECT_INVITATIONS} WHERE i.conversation_id = $1 AND i.user_id = $2 AND NOT i.hidden"
            ));
            let current: Option<ChatRequest> = sqlx::query_as(sql)
                .bind(group)
                .bind(user)
                .fetch_optional(&mut *tx)
                .await?;
            let mut request = current.ok_or(StoreError::NotFound("chat request"))?;
            if request.status != "pending" {
                return Err(StoreError::Conflict(Conflict::ChatRequestAnswered));
            }
            let joined = if accept {
                if !join_group!(tx, pool, group, user, now)? {
                    // A member already (added another way): nothing to join.
                    return Err(StoreError::Conflict(Conflict::ChatRequestAnswered));
                }
                if group_seats_taken!(tx, group)? > self.group_max_members {
                    return Err(StoreError::Invalid(Invalid::GroupTooLarge(self.group_max_members())));
                }
                let invitee = users_by_id!(tx, [user])?;
                let message =
                    append_system_message!(tx, group, request.requester_id, MemberChange::Added, &invitee[0], now)?;
                Some(GroupUpdate {
                    conversation: conversation_in_tx!(tx, user, group)?,
                    added: invitee,
                    removed: Vec::new(),
                    invited: Vec::new(),
                    withdrawn: Vec::new(),
                    messages: vec![message],
                })
            } else {
                sqlx::query(
                    "UPDATE group_invitations SET status = 'declined', answered_at = $3
                     WHERE conversation_id = $1 AND user_id = $2",
                )
                .bind(group)
                .bind(user)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO invitation_declines (inviter_id, user_id, declined_at) VALUES ($1, $2, $3)
                     ON CONFLICT (inviter_id, user_id) DO UPDATE SET declined_at = excluded.declined_at",
                )
                .bind(request.requester_id)
                .bind(user)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                None
            };
            request.status = if accept { "accepted" } else { "declined" }.to_string();
            let answer = InvitationAnswer { request, joined };
            commit_with_events!(self, tx, events(&answer), now)?;
            Ok(answer)
        })
    }

    /// The recipient accepts or declines a pending request, or accepts one they declined,
    /// with the events `events` gives. `NotFound` unless the member's conversation is a chat
    /// request; `Forbidden` for the requester; `Conflict(chat_request_answered)` when it is
    /// no longer pending (or, to accept, declined).
    pub async fn answer_chat_request(
        &self,
        member: &Member,
        accept: bool,
        now: DateTime<Utc>,
        events: impl Fn(&ChatRequest) -> Vec<NewEvent>,
    ) -> StoreResult<ChatRequest> {
        let Some((_, requester)) = member.request() else {
            return Err(StoreError::NotFound("chat request"));
        };
        if requester == member.user() {
            return Err(StoreError::Forbidden(Forbidden::NotTheRecipient));
        }
        let chat = member.conversation();
        let status = if accept { "accepted" } else { "declined" };
        with_writer!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let sql = sqlx::AssertSqlSafe(format!(
                "UPDATE conversations SET request_status = $2, request_answered_at = $3
                 WHERE id = $1 AND {lock}
                   AND (request_status = 'pending' OR (request_status = 'declined' AND $2 = 'accepted'))",
                lock = pool.lock_conversation()
            ));
            let updated = sqlx::query(sql)
                .bind(chat)
                .bind(status)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            if updated.rows_affected() == 0 {
                return Err(StoreError::Conflict(Conflict::ChatRequestAnswered));
            }
            require_participant!(tx, chat, member.user())?;
            let answered = request_in_tx!(tx, chat)?;
            commit_with_events!(self, tx, events(&answered), now)?;
            Ok(answered)
        })
    }
}
