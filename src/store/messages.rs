//! Messages.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{
    DeleteScope, Dialect, Message, MessagePage, MessageRow, NewEvent, NewMessage, Quote, Store, StoreError,
    StoreResult, commit_with_events, is_unique_violation, with_backend, with_writer,
};

macro_rules! select_messages {
    () => {
        "SELECT m.id, m.conversation_id, m.seq, m.sender_id, u.name AS sender_name, m.content, m.client_id, m.created_at,
                m.edited_at, m.x, m.deleted_at, r.id AS reply_id, r.sender_id AS reply_sender_id, ru.name AS reply_sender_name,
                r.content AS reply_content
         FROM messages m JOIN users u ON u.id = m.sender_id
         LEFT JOIN messages r ON r.id = m.reply_to
         LEFT JOIN users ru ON ru.id = r.sender_id"
    };
}

/// Inserts `$new` (a `&NewMessage`) at position `$seq` with reply quote `$quote` inside
/// transaction `$tx`, which holds the conversation's lock and has moved its `last_seq`, and
/// moves the sender's read position to it (sending means having read what came before).
/// Evaluates to the stored message or the insert's error. Shared by sends and the system
/// messages of group changes.
macro_rules! insert_message {
    ($tx:ident, $new:expr, $seq:expr, $quote:expr) => {{
        let new: &$crate::store::NewMessage = $new;
        let inserted = sqlx::query(
            "INSERT INTO messages (id, conversation_id, seq, sender_id, content, client_id, reply_to, x, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(new.id)
        .bind(new.conversation_id)
        .bind($seq)
        .bind(new.sender_id)
        .bind(&new.content)
        .bind(&new.client_id)
        .bind(new.reply_to)
        .bind(&new.x)
        .bind(new.created_at)
        .execute(&mut *$tx)
        .await;
        match inserted {
            Err(error) => Err(error),
            Ok(_) => {
                // The name from the same statement; a sender who just left the group has no
                // participant row to update, so it is read on its own.
                let moved: Option<String> = sqlx::query_scalar(
                    "UPDATE participants SET last_read_seq = $3 WHERE conversation_id = $1 AND user_id = $2
                     RETURNING (SELECT name FROM users WHERE id = $2)",
                )
                .bind(new.conversation_id)
                .bind(new.sender_id)
                .bind($seq)
                .fetch_optional(&mut *$tx)
                .await?;
                let sender_name: String = match moved {
                    Some(name) => name,
                    None => {
                        sqlx::query_scalar("SELECT name FROM users WHERE id = $1")
                            .bind(new.sender_id)
                            .fetch_one(&mut *$tx)
                            .await?
                    }
                };
                Ok($crate::store::Message {
                    id: new.id,
                    conversation_id: new.conversation_id,
                    seq: $seq,
                    sender: $crate::store::UserRef {
                        id: new.sender_id,
                        name: sender_name,
                    },
                    content: new.content.clone(),
                    client_id: new.client_id.clone(),
                    created_at: new.created_at,
                    edited_at: None,
                    reply_to: $quote,
                    x: new.x.clone(),
                    deleted: false,
                })
            }
        }
    }};
}
pub(super) use insert_message;

/// Outcome of [`Store::create_message`].
pub enum Sent {
    /// Stored now.
    Created(Message),
    /// A retry: the message with this `clientId` was stored before and is returned as it was.
    AlreadyStored(Message),
}

impl Store {
    /// Stores a message, moves the conversation's last message and the sender's read
    /// position, and appends the events `events` gives, in one transaction. `NotFound` when
    /// the sender is not a participant. The conversation row is locked by the update of
    /// `last_seq`, so a conversation's messages get their `seq` in commit order.
    pub async fn create_message(
        &self,
        new: &NewMessage,
        events: impl Fn(&Message) -> Vec<NewEvent>,
    ) -> StoreResult<Sent> {
        if let Some(client_id) = &new.client_id
            && let Some(stored) = self.find_by_client_id(new, client_id).await?
        {
            return Ok(Sent::AlreadyStored(stored));
        }
        let stored = with_writer!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            // First statement of the transaction: the conversation lock comes before anything
            // else (see `Dialect::LOCK_CONVERSATION`).
            let sql = sqlx::AssertSqlSafe(format!(
                "UPDATE conversations SET last_seq = last_seq + 1, last_message_id = $3, updated_at = $4
                 WHERE id = $1 AND {lock}
                   AND EXISTS (SELECT 1 FROM participants WHERE conversation_id = $1 AND user_id = $2)
                   AND (request_status IS NULL OR request_status = 'accepted'
                        OR (request_status = 'pending' AND requester_id = $2))
                 RETURNING last_seq",
                lock = pool.lock_conversation()
            ));
            let seq: Option<i64> = sqlx::query_scalar(sql)
                .bind(new.conversation_id)
                .bind(new.sender_id)
                .bind(new.id)
                .bind(new.created_at)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(seq) = seq else {
                drop(tx);
                return Err(self.why_not_sendable(new.conversation_id, new.sender_id).await);
            };
            let quote = match new.reply_to {
                None => None,
                Some(reply_to) => {
                    let quote = sqlx::query_as::<_, Quote>(
                        "SELECT r.id AS reply_id, r.sender_id AS reply_sender_id, ru.name AS reply_sender_name,
                                r.content AS reply_content
                         FROM messages r JOIN users ru ON ru.id = r.sender_id
                         WHERE r.id = $1 AND r.conversation_id = $2",
                    )
                    .bind(reply_to)
                    .bind(new.conversation_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let Some(quote) = quote else {
                        return Err(StoreError::Invalid {
                            field: "replyTo",
                            problem: "is not a message of this conversation".into(),
                        });
                    };
                    Some(quote)
                }
            };
            match insert_message!(tx, new, seq, quote) {
                // Two concurrent sends with one clientId: this one lost the race (rolled back).
                Err(error) if is_unique_violation(&error) && new.client_id.is_some() => None,
                Err(error) => return Err(error.into()),
                Ok(message) => {
                    commit_with_events!(self, tx, events(&message), new.created_at);
                    Some(message)
                }
            }
        });
        match (stored, &new.client_id) {
            (Some(message), _) => Ok(Sent::Created(message)),
            (None, Some(client_id)) => self
                .find_by_client_id(new, client_id)
                .await?
                .map(Sent::AlreadyStored)
                .ok_or(StoreError::NotFound("message")),
            (None, None) => Err(StoreError::NotFound("message")),
        }
    }

    /// Replaces the text of `editor`'s message `id` and appends the events `events` gives for
    /// the edited message and the participants' read positions (returned too). `NotFound` when the message does not exist or `editor` is not in its
    /// conversation; `Forbidden` when it is someone else's.
    pub async fn edit_message(
        &self,
        editor: Uuid,
        id: Uuid,
        content: &str,
        now: DateTime<Utc>,
        events: impl Fn(&Message, &[(Uuid, i64)]) -> Vec<NewEvent>,
    ) -> StoreResult<(Message, Vec<(Uuid, i64)>)> {
        let (conversation, sender, deleted) = self.visible_message(editor, id).await?;
        if sender != editor {
            return Err(StoreError::Forbidden("only the sender may edit a message"));
        }
        if deleted {
            return Err(StoreError::Conflict {
                code: "message_deleted",
                message: "a deleted message cannot be edited".into(),
            });
        }
        with_writer!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            // First statement: the conversation lock (see `Dialect::LOCK_CONVERSATION`).
            let sql = sqlx::AssertSqlSafe(format!(
                "UPDATE messages SET content = $3, edited_at = $4 WHERE conversation_id = $1 AND id = $2 AND {lock}",
                lock = pool.lock_conversation()
            ));
            sqlx::query(sql)
                .bind(conversation)
                .bind(id)
                .bind(content)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            let message: Message = sqlx::query_as::<_, MessageRow>(concat!(select_messages!(), " WHERE m.id = $1"))
                .bind(id)
                .fetch_one(&mut *tx)
                .await?
                .into();
            let read_positions: Vec<(Uuid, i64)> =
                sqlx::query_as("SELECT user_id, last_read_seq FROM participants WHERE conversation_id = $1")
                    .bind(conversation)
                    .fetch_all(&mut *tx)
                    .await?;
            commit_with_events!(self, tx, events(&message, &read_positions), now);
            Ok((message, read_positions))
        })
    }

    /// The conversation and sender of message `id`, and whether it was deleted for everyone,
    /// if `user` is in its conversation.
    pub async fn visible_message(&self, user: Uuid, id: Uuid) -> StoreResult<(Uuid, Uuid, bool)> {
        let found = with_backend!(self, |pool| {
            sqlx::query_as::<_, (Uuid, Uuid, bool)>(
                "SELECT m.conversation_id, m.sender_id, m.deleted_at IS NOT NULL FROM messages m
                 JOIN participants p ON p.conversation_id = m.conversation_id AND p.user_id = $2
                 WHERE m.id = $1",
            )
            .bind(id)
            .bind(user)
            .fetch_optional(pool)
            .await?
        });
        found.ok_or(StoreError::NotFound("message"))
    }

    /// Stars `user`'s view of message `id`, or unstars it if starred; the new state, with the
    /// events `events` gives for it. `NotFound` as for reading the message.
    pub async fn toggle_star(
        &self,
        user: Uuid,
        id: Uuid,
        now: DateTime<Utc>,
        events: impl Fn(Uuid, bool) -> Vec<NewEvent>,
    ) -> StoreResult<bool> {
        let (conversation, _, _) = self.visible_message(user, id).await?;
        with_writer!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let removed = sqlx::query("DELETE FROM starred_messages WHERE user_id = $1 AND message_id = $2")
                .bind(user)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            let starred = removed.rows_affected() == 0;
            if starred {
                sqlx::query("INSERT INTO starred_messages (user_id, message_id, starred_at) VALUES ($1, $2, $3)")
                    .bind(user)
                    .bind(id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            commit_with_events!(self, tx, events(conversation, starred), now);
            Ok(starred)
        })
    }

    /// `user`'s starred messages, most recently starred first: `limit` of them after
    /// `cursor` (the previous page's last star), each with when it was starred. Stars of
    /// conversations the user is no longer in are left out.
    pub async fn starred_messages(
        &self,
        user: Uuid,
        limit: u32,
        cursor: Option<(DateTime<Utc>, Uuid)>,
    ) -> StoreResult<Vec<(Message, DateTime<Utc>)>> {
        let rows: Vec<StarredRow> = with_backend!(self, |pool| {
            sqlx::query_as::<_, StarredRow>(concat!(
                "SELECT s.starred_at, sub.* FROM starred_messages s
                 JOIN (",
                select_messages!(),
                ") sub ON sub.id = s.message_id
                 JOIN participants p ON p.conversation_id = sub.conversation_id AND p.user_id = s.user_id
                 WHERE s.user_id = $1 AND ($2 IS NULL OR (s.starred_at, s.message_id) < ($2, $3))
                 ORDER BY s.starred_at DESC, s.message_id DESC
                 LIMIT $4"
            ))
            .bind(user)
            .bind(cursor.map(|(starred_at, _)| starred_at))
            .bind(cursor.map(|(_, id)| id))
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|row| (Message::from(row.message), row.starred_at))
            .collect())
    }

    /// Why `sender` could not send into `conversation`: not a participant (`NotFound`), or a
    /// chat request that is pending for them or declined (`Forbidden`).
    async fn why_not_sendable(&self, conversation: Uuid, sender: Uuid) -> StoreError {
        match self.membership(sender, conversation).await {
            Ok(None) => StoreError::NotFound("conversation"),
            Ok(Some(membership)) if membership.request_status.as_deref() == Some("declined") => {
                StoreError::Forbidden("this chat request was declined: no more messages")
            }
            Ok(Some(_)) => StoreError::Forbidden("accept this chat request before sending"),
            Err(error) => error,
        }
    }

    /// Deletes messages `ids` of `conversation` for `caller` (scope `Me`: hidden for them) or
    /// for everyone (scope `All`: tombstones; the sender's own, or any as the group's owner),
    /// with the events `events` gives. `NotFound` for a non-participant, `Invalid` on `ids`
    /// for a message not in the conversation, `Forbidden` for another's message with `All`.
    pub async fn delete_messages(
        &self,
        caller: Uuid,
        conversation: Uuid,
        ids: &[Uuid],
        scope: DeleteScope,
        now: DateTime<Utc>,
        events: impl Fn() -> Vec<NewEvent>,
    ) -> StoreResult<()> {
        let Some(membership) = self.membership(caller, conversation).await? else {
            return Err(StoreError::NotFound("conversation"));
        };
        let owner = membership.owner;
        let found: Vec<(Uuid, Uuid, i64)> = with_backend!(self, |pool| {
            let mut builder =
                sqlx::QueryBuilder::new("SELECT id, sender_id, seq FROM messages WHERE conversation_id = ");
            builder.push_bind(conversation);
            builder.push(" AND id IN (");
            let mut list = builder.separated(", ");
            for id in ids {
                list.push_bind(*id);
            }
            builder.push(")");
            builder.build_query_as().fetch_all(pool).await?
        });
        let unknown: Vec<String> = ids
            .iter()
            .filter(|id| !found.iter().any(|(found, _, _)| found == *id))
            .map(Uuid::to_string)
            .collect();
        if !unknown.is_empty() {
            return Err(StoreError::Invalid {
                field: "ids",
                problem: format!("not messages of this conversation: {}", unknown.join(", ")),
            });
        }
        if scope == DeleteScope::All && owner != Some(caller) && found.iter().any(|(_, sender, _)| *sender != caller) {
            return Err(StoreError::Forbidden(
                "only the sender (or the group's owner) may delete a message for everyone",
            ));
        }
        with_writer!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            // Before any write: the conversation lock (see `Dialect::LOCK_CONVERSATION`).
            let lock = sqlx::AssertSqlSafe(format!("SELECT {}", pool.lock_conversation()));
            sqlx::query(lock).bind(conversation).execute(&mut *tx).await?;
            for (id, _, seq) in &found {
                match scope {
                    DeleteScope::All => {
                        sqlx::query(
                            "UPDATE messages SET deleted_at = $2, content = '', x = NULL
                             WHERE id = $1 AND deleted_at IS NULL",
                        )
                        .bind(id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    }
                    DeleteScope::Me => {
                        sqlx::query(
                            "INSERT INTO hidden_messages (user_id, message_id, conversation_id, seq)
                             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                        )
                        .bind(caller)
                        .bind(id)
                        .bind(conversation)
                        .bind(seq)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
            }
            commit_with_events!(self, tx, events(), now);
            Ok(())
        })
    }

    /// The caller's messages matching `words`, newest first: in every conversation of the
    /// caller, ordered by id, or in one (`NotFound` unless the caller is in it), ordered by
    /// position as the message list is. `before` is the last message of the previous page.
    /// Deleted messages and messages hidden for the caller are never found.
    ///
    /// Neither index answers "the newest matches" alone, so there are two plans. A word with
    /// few matches (at most `COMMON_WORD_MATCHES` in the caller's conversations, per backend)
    /// is read through the full-text index and its matches sorted. A common word is looked for
    /// in the caller's newest messages first, testing each until a page is found, within a
    /// window of `NEWEST_FIRST_WINDOW` messages; what the window lacks comes from sorting the
    /// older matches. The first query tells which case this is.
    pub async fn search_messages(
        &self,
        caller: Uuid,
        conversation: Option<Uuid>,
        words: &str,
        limit: u32,
        before: Option<Uuid>,
    ) -> StoreResult<Vec<Message>> {
        let before_seq = match (conversation, before) {
            (Some(conversation), before) => {
                if !self.is_participant(conversation, caller).await? {
                    return Err(StoreError::NotFound("conversation"));
                }
                match before {
                    Some(before) => Some(self.message_seq(conversation, before, "before").await?),
                    None => None,
                }
            }
            (None, _) => None,
        };
        // Unbounded cursors as the largest values keep the conditions usable by the indexes.
        let scope = SearchScope {
            caller,
            conversation,
            words,
            before_id: before.filter(|_| conversation.is_none()).unwrap_or(Uuid::max()),
            before_seq: before_seq.unwrap_or(i64::MAX),
        };
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let (mut ids, common) = self.sorted_matches(&scope, self.common_word_matches, limit).await?;
        if common {
            let window = self.newest_first_window(&scope).await?;
            ids = self.newest_matches(&scope, window, limit).await?;
            if ids.len() < limit
                && let Some(oldest) = window
            {
                let older = scope.below(oldest);
                ids.extend(self.sorted_matches(&older, i64::MAX, limit - ids.len()).await?.0);
            }
        }
        self.messages_in_order(&ids).await
    }

    /// The newest `limit` matches of `scope`, read through the full-text index, and whether
    /// there are `cap` matches or more (then only the count is sure, not the order: the
    /// caller switches plans).
    async fn sorted_matches(&self, scope: &SearchScope<'_>, cap: i64, limit: usize) -> StoreResult<(Vec<Uuid>, bool)> {
        let found: Vec<(Uuid, i64)> = with_backend!(self, |pool| {
            let sql = sqlx::AssertSqlSafe(format!(
                "WITH found AS MATERIALIZED (
                     SELECT m.id, m.seq FROM {matching}
                     JOIN participants p ON p.conversation_id = m.conversation_id AND p.user_id = $1
                     WHERE m.deleted_at IS NULL
                       AND ($3 IS NULL OR m.conversation_id = $3) AND m.id < $4 AND m.seq < $5
                       AND NOT EXISTS (SELECT 1 FROM hidden_messages h WHERE h.user_id = $1 AND h.message_id = m.id)
                     LIMIT $6
                 )
                 SELECT id, (SELECT COUNT(*) FROM found) FROM found ORDER BY {key} DESC LIMIT $7",
                matching = pool.matching_messages(),
                key = scope.order_key(),
            ));
            // Not prepared once and reused (`persistent(false)`): PostgreSQL then plans each
            // search for its own words, where a plan cached for "any words" read the
            // full-text index once per conversation (1.2 s instead of 4 ms, measured).
            sqlx::query_as(sql)
                .persistent(false)
                .bind(scope.caller)
                .bind(pool.text_query(scope.words))
                .bind(scope.conversation)
                .bind(scope.before_id)
                .bind(scope.before_seq)
                .bind(cap)
                .bind(limit as i64)
                .fetch_all(pool)
                .await?
        });
        let common = found.first().is_some_and(|(_, count)| *count >= cap);
        Ok((found.into_iter().map(|(id, _)| id).collect(), common))
    }

    /// The oldest message (id, seq) of the `NEWEST_FIRST_WINDOW` newest of `scope`, or `None`
    /// when the scope holds fewer.
    async fn newest_first_window(&self, scope: &SearchScope<'_>) -> StoreResult<Option<(Uuid, i64)>> {
        let oldest = with_backend!(self, |pool| {
            let sql = sqlx::AssertSqlSafe(format!(
                "SELECT m.id, m.seq FROM messages m
                 {join} participants p ON p.conversation_id = m.conversation_id AND p.user_id = $1
                 WHERE {in_scope} AND m.id < $3 AND m.seq < $4
                 ORDER BY m.{key} DESC LIMIT 1 OFFSET $5",
                join = pool.join_in_order(),
                in_scope = scope.conversation_condition("$2"),
                key = scope.order_key(),
            ));
            sqlx::query_as::<_, (Uuid, i64)>(sql)
                .bind(scope.caller)
                .bind(scope.conversation)
                .bind(scope.before_id)
                .bind(scope.before_seq)
                .bind(self.newest_first_window - 1)
                .fetch_optional(pool)
                .await?
        });
        Ok(oldest)
    }

    /// The newest `limit` matches of `scope` down to `oldest` (included; `None`: all), found
    /// by testing the scope's messages newest first.
    async fn newest_matches(
        &self,
        scope: &SearchScope<'_>,
        oldest: Option<(Uuid, i64)>,
        limit: usize,
    ) -> StoreResult<Vec<Uuid>> {
        let ids = with_backend!(self, |pool| {
            let sql = sqlx::AssertSqlSafe(format!(
                "SELECT m.id FROM messages m
                 {join} participants p ON p.conversation_id = m.conversation_id AND p.user_id = $1
                 WHERE {in_scope} AND m.id < $4 AND m.seq < $5 AND m.{key} >= {oldest}
                   AND {matches} AND m.deleted_at IS NULL
                   AND NOT EXISTS (SELECT 1 FROM hidden_messages h WHERE h.user_id = $1 AND h.message_id = m.id)
                 ORDER BY m.{key} DESC LIMIT $8",
                join = pool.join_in_order(),
                in_scope = scope.conversation_condition("$3"),
                key = scope.order_key(),
                oldest = if scope.conversation.is_some() { "$7" } else { "$6" },
                matches = pool.text_match_each(),
            ));
            // The window's oldest message, or the smallest values when the window holds all.
            let (oldest_id, oldest_seq) = oldest.unwrap_or((Uuid::nil(), i64::MIN));
            sqlx::query_scalar(sql)
                .persistent(false)
                .bind(scope.caller)
                .bind(pool.text_query(scope.words))
                .bind(scope.conversation)
                .bind(scope.before_id)
                .bind(scope.before_seq)
                .bind(oldest_id)
                .bind(oldest_seq)
                .bind(limit as i64)
                .fetch_all(pool)
                .await?
        });
        Ok(ids)
    }

    /// The messages `ids`, in that order.
    async fn messages_in_order(&self, ids: &[Uuid]) -> StoreResult<Vec<Message>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<MessageRow> = with_backend!(self, |pool| {
            let mut builder = sqlx::QueryBuilder::new(concat!(select_messages!(), " WHERE m.id IN ("));
            let mut list = builder.separated(", ");
            for id in ids {
                list.push_bind(*id);
            }
            builder.push(")");
            builder.build_query_as().fetch_all(pool).await?
        });
        let mut by_id: std::collections::HashMap<Uuid, Message> =
            rows.into_iter().map(|row| (row.id, Message::from(row))).collect();
        Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
    }

    pub async fn find_message(&self, id: Uuid) -> StoreResult<Option<Message>> {
        let row = with_backend!(self, |pool| {
            sqlx::query_as::<_, MessageRow>(concat!(select_messages!(), " WHERE m.id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(Message::from))
    }

    async fn find_by_client_id(&self, new: &NewMessage, client_id: &str) -> StoreResult<Option<Message>> {
        let row = with_backend!(self, |pool| {
            sqlx::query_as::<_, MessageRow>(concat!(
                select_messages!(),
                " WHERE m.conversation_id = $1 AND m.sender_id = $2 AND m.client_id = $3"
            ))
            .bind(new.conversation_id)
            .bind(new.sender_id)
            .bind(client_id)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(Message::from))
    }

    /// A page of a conversation's messages for `caller`: newest first, or oldest first when
    /// `page.after` is set. `NotFound` for non-participants; `Invalid` for a cursor that is
    /// not a message of this conversation.
    pub async fn list_messages(
        &self,
        caller: Uuid,
        conversation: Uuid,
        page: MessagePage,
    ) -> StoreResult<Vec<Message>> {
        if !self.is_participant(conversation, caller).await? {
            return Err(StoreError::NotFound("conversation"));
        }
        let before = match page.before {
            Some(id) => self.message_seq(conversation, id, "before").await?,
            None => i64::MAX,
        };
        let after = match page.after {
            Some(id) => self.message_seq(conversation, id, "after").await?,
            None => 0,
        };
        let rows = with_backend!(self, |pool| {
            let sql = if page.after.is_some() {
                concat!(
                    select_messages!(),
                    " WHERE m.conversation_id = $1 AND m.seq < $2 AND m.seq > $3
                      AND NOT EXISTS (SELECT 1 FROM hidden_messages h WHERE h.user_id = $5 AND h.message_id = m.id)
                      ORDER BY m.seq ASC LIMIT $4"
                )
            } else {
                concat!(
                    select_messages!(),
                    " WHERE m.conversation_id = $1 AND m.seq < $2 AND m.seq > $3
                      AND NOT EXISTS (SELECT 1 FROM hidden_messages h WHERE h.user_id = $5 AND h.message_id = m.id)
                      ORDER BY m.seq DESC LIMIT $4"
                )
            };
            sqlx::query_as::<_, MessageRow>(sql)
                .bind(conversation)
                .bind(before)
                .bind(after)
                .bind(i64::from(page.limit))
                .bind(caller)
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().map(Message::from).collect())
    }

    async fn message_seq(&self, conversation: Uuid, message: Uuid, field: &'static str) -> StoreResult<i64> {
        let seq = with_backend!(self, |pool| {
            sqlx::query_scalar::<_, i64>("SELECT seq FROM messages WHERE id = $1 AND conversation_id = $2")
                .bind(message)
                .bind(conversation)
                .fetch_optional(pool)
                .await?
        });
        seq.ok_or(StoreError::Invalid {
            field,
            problem: "not a message of this conversation".into(),
        })
    }
}

#[derive(sqlx::FromRow)]
struct StarredRow {
    starred_at: DateTime<Utc>,
    #[sqlx(flatten)]
    message: MessageRow,
}

/// What a message search looks in: the caller's conversations, or one of them, below a cursor
/// (an id across conversations, a position within one).
struct SearchScope<'a> {
    caller: Uuid,
    conversation: Option<Uuid>,
    words: &'a str,
    before_id: Uuid,
    before_seq: i64,
}

impl SearchScope<'_> {
    /// Newest first is by id across conversations, by position within one.
    fn order_key(&self) -> &'static str {
        if self.conversation.is_some() { "seq" } else { "id" }
    }

    /// "In the scope's conversation", with the conversation bound as `param`: an equality the
    /// conversation's index can use, or (across conversations, `param` bound to NULL) true.
    fn conversation_condition(&self, param: &str) -> String {
        if self.conversation.is_some() {
            format!("m.conversation_id = {param}")
        } else {
            format!("{param} IS NULL")
        }
    }

    /// The same scope, below message `oldest` (id, seq).
    fn below(&self, oldest: (Uuid, i64)) -> Self {
        let (id, seq) = oldest;
        Self {
            before_id: if self.conversation.is_some() {
                self.before_id
            } else {
                id
            },
            before_seq: if self.conversation.is_some() {
                seq
            } else {
                self.before_seq
            },
            ..*self
        }
    }
}
