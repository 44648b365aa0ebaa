//! Chat requests: direct conversations that wait for their recipient to accept.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::sql::direct_key;
use super::tx::{commit_with_events, require_participant};
use super::{
    Conflict, Dialect, Forbidden, Member, NewEvent, Store, StoreError, StoreResult, with_backend, with_writer,
};

/// A chat request as either side sees it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ChatRequest {
    /// The conversation's id.
    pub chat_id: Uuid,
    pub status: String,
    pub requester_id: Uuid,
    pub requester_name: String,
    pub recipient_id: Uuid,
    pub recipient_name: String,
    pub created_at: DateTime<Utc>,
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

const SELECT_REQUESTS: &str = "SELECT c.id AS chat_id, c.request_status AS status, c.created_at,
        c.requester_id, rq.name AS requester_name, q.user_id AS recipient_id, rc.name AS recipient_name
     FROM conversations c
     JOIN users rq ON rq.id = c.requester_id
     JOIN participants q ON q.conversation_id = c.id AND q.user_id <> c.requester_id
     JOIN users rc ON rc.id = q.user_id";

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
        let created = with_writer!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let inserted: Option<Uuid> = sqlx::query_scalar(
                "INSERT INTO conversations (id, kind, direct_key, request_status, requester_id, created_at, updated_at)
                 VALUES ($1, 'direct', $2, 'pending', $3, $4, $4)
                 ON CONFLICT (direct_key) DO NOTHING
                 RETURNING id",
            )
            .bind(id)
            .bind(direct_key(requester, recipient))
            .bind(requester)
            .bind(now)
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
                "UPDATE conversations SET request_status = 'pending', request_answered_at = NULL, request_from_seq = last_seq
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

    /// `user`'s chat requests by status and direction, newest first.
    pub async fn list_chat_requests(&self, user: Uuid, filter: RequestFilter) -> StoreResult<Vec<ChatRequest>> {
        with_backend!(self, |pool| {
            let sql = sqlx::AssertSqlSafe(format!(
                "{SELECT_REQUESTS}
                 JOIN participants mine ON mine.conversation_id = c.id AND mine.user_id = $1
                 WHERE c.request_status = $2 AND ((c.requester_id <> $1) = $3)
                 ORDER BY c.created_at DESC, c.id DESC
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

    /// How many chat requests wait for `user`'s answer.
    pub async fn pending_requests(&self, user: Uuid) -> StoreResult<i64> {
        with_backend!(self, |pool| {
            Ok(sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM participants p JOIN conversations c ON c.id = p.conversation_id
                 WHERE p.user_id = $1 AND c.request_status = 'pending' AND c.requester_id <> $1",
            )
            .bind(user)
            .fetch_one(pool)
            .await?)
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
