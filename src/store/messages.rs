//! Messages: sending, editing, starring, deleting, reading pages. Every operation on a
//! conversation's messages takes the caller's [`Member`] or [`VisibleMessage`] from the
//! authorization gate (`access.rs`). Search lives in `search.rs`.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::event_log::{addressed_to, withheld_from};
use super::sql::push_ids;
use super::tx::{
    WITHHELD_MESSAGE, WITHHELD_SEND, attach_files, attach_new_files, commit_with_events, insert_links, insert_message,
    lock_conversation, require_participant, rewrite_events_showing, withheld_partner,
};
use super::{
    Conflict, DeleteScope, Dialect, Forbidden, Invalid, Member, Message, MessagePage, MessageReference, MessageRow,
    NewEvent, NewMessage, PayloadRewrite, Quote, Store, StoreError, StoreResult, VisibleMessage, is_unique_violation,
    with_backend, with_writer,
};

macro_rules! select_messages {
    () => {
        concat!(
            "SELECT m.id, m.conversation_id, m.seq, m.sender_id, u.name AS sender_name, m.content, m.client_id, m.created_at,
                m.edited_at, m.x, m.deleted_at, r.id AS reply_id, r.sender_id AS reply_sender_id, ru.name AS reply_sender_name,
                r.content AS reply_content, ",
            $crate::store::sql::reply_attachment_type!(),
            "
         FROM messages m JOIN users u ON u.id = m.sender_id
         LEFT JOIN messages r ON r.id = m.reply_to
         LEFT JOIN users ru ON ru.id = r.sender_id"
        )
    };
}

/// Outcome of [`Store::create_message`].
pub enum Sent {
    /// Stored now.
    Created(Message),
    /// A retry: the message with this `clientId` was stored before and is returned as it was.
    AlreadyStored(Message),
}

/// How one attempt at storing a send ended.
enum Attempt {
    Stored(Box<Message>),
    /// A concurrent send with the same `clientId` won (this one was rolled back).
    LostClientIdRace,
    /// The member left, or the chat request changed, since the gate answered.
    NoLongerSendable,
}

impl Store {
    /// Stores a message from `member` (as `new`, whose conversation and sender are the
    /// member's), moves the conversation's last message and the sender's read position, and
    /// appends the events `events` gives, in one transaction. `Forbidden` while a chat request
    /// does not let the member send. The conversation row is locked by the update of
    /// `last_seq`, so a conversation's messages get their `seq` in commit order.
    pub async fn create_message(
        &self,
        member: &Member,
        new: &NewMessage,
        events: impl Fn(&Message) -> Vec<NewEvent>,
    ) -> StoreResult<Sent> {
        debug_assert_eq!(
            (new.conversation_id, new.sender_id),
            (member.conversation(), member.user())
        );
        if let Some(client_id) = &new.client_id
            && let Some(stored) = self.find_by_client_id(new, client_id).await?
        {
            return Ok(Sent::AlreadyStored(stored));
        }
        member.require_can_send(self.chat_request_max_messages)?;
        let attempt = with_writer!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            // The conversation lock comes with the first write (see `Dialect::LOCK_CONVERSATION`);
            // the participant and request conditions repeat the gate's, in case it changed since.
            // The decliner of a chat request writing reopens it (accepted).
            let sql = sqlx::AssertSqlSafe(format!(
                "UPDATE conversations SET last_seq = last_seq + 1, last_message_id = $3, updated_at = $4,
                     request_status = CASE WHEN request_status = 'declined' THEN 'accepted' ELSE request_status END,
                     request_answered_at = CASE WHEN request_status = 'declined' THEN $4 ELSE request_answered_at END
                 WHERE id = $1 AND {lock}
                   AND EXISTS (SELECT 1 FROM participants WHERE conversation_id = $1 AND user_id = $2)
                   AND (request_status IS NULL OR request_status = 'accepted'
                        OR (request_status = 'pending' AND requester_id = $2 AND last_seq - request_from_seq < $5)
                        OR (request_status = 'declined' AND requester_id <> $2))
                 RETURNING last_seq",
                lock = pool.lock_conversation()
            ));
            let seq: Option<i64> = sqlx::query_scalar(sql)
                .bind(new.conversation_id)
                .bind(new.sender_id)
                .bind(new.id)
                .bind(new.created_at)
                .bind(self.chat_request_max_messages)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(seq) = seq else {
                return Ok(Attempt::NoLongerSendable);
            };
            let quote = match new.reply_to {
                None => None,
                Some(reply_to) => {
                    let quote = sqlx::query_as::<_, Quote>(concat!(
                        "SELECT r.id AS reply_id, r.sender_id AS reply_sender_id, ru.name AS reply_sender_name,
                                r.content AS reply_content, ",
                        super::sql::reply_attachment_type!(),
                        " FROM messages r JOIN users ru ON ru.id = r.sender_id
                         WHERE r.id = $1 AND r.conversation_id = $2"
                    ))
                    .bind(reply_to)
                    .bind(new.conversation_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    Some(quote.ok_or(StoreError::Invalid(Invalid::ForeignMessage(MessageReference::ReplyTo)))?)
                }
            };
            let withheld = withheld_partner!(tx, new.conversation_id, new.sender_id, WITHHELD_SEND)?;
            match insert_message!(tx, new, seq, quote, true) {
                Err(StoreError::Database(error)) if is_unique_violation(&error) && new.client_id.is_some() => {
                    Ok(Attempt::LostClientIdRace)
                }
                Err(error) => Err(error),
                Ok(mut message) => {
                    message.attachments = attach_new_files!(tx, new)?;
                    message.links = insert_links!(tx, new)?;
                    let mut events = events(&message);
                    if let Some(partner) = withheld {
                        // Shown to its sender as sent; never to the partner, not even later.
                        sqlx::query(
                            "INSERT INTO hidden_messages (user_id, message_id, conversation_id, seq, withheld)
                             VALUES ($1, $2, $3, $4, TRUE)",
                        )
                        .bind(partner)
                        .bind(message.id)
                        .bind(new.conversation_id)
                        .bind(seq)
                        .execute(&mut *tx)
                        .await?;
                        events = withheld_from(events, partner, new.sender_id);
                    }
                    commit_with_events!(self, tx, events, new.created_at)?;
                    Ok(Attempt::Stored(Box::new(message)))
                }
            }
        })?;
        match attempt {
            Attempt::Stored(message) => Ok(Sent::Created(*message)),
            Attempt::LostClientIdRace => {
                let client_id = new.client_id.as_deref().unwrap_or_default();
                self.find_by_client_id(new, client_id)
                    .await?
                    .map(Sent::AlreadyStored)
                    .ok_or(StoreError::NotFound("message"))
            }
            Attempt::NoLongerSendable => {
                self.member_of(member.user(), member.conversation())
                    .await?
                    .require_can_send(self.chat_request_max_messages)?;
                Err(StoreError::NotFound("conversation"))
            }
        }
    }

    /// Replaces the text of the caller's message, rewrites the stored events that showed the
    /// old text (`rewrite`), and appends the events `events` gives for the edited message and
    /// the participants' read positions (returned too). `Forbidden` when it is someone else's;
    /// `Conflict` when it was deleted for everyone.
    pub async fn edit_message(
        &self,
        message: &VisibleMessage,
        content: &str,
        now: DateTime<Utc>,
        rewrite: PayloadRewrite,
        events: impl Fn(&Message, &[(Uuid, i64)]) -> Vec<NewEvent>,
    ) -> StoreResult<(Message, Vec<(Uuid, i64)>)> {
        message.member().require_can_act()?;
        if message.sender() != message.member().user() {
            return Err(StoreError::Forbidden(Forbidden::NotTheSender));
        }
        if message.deleted() {
            return Err(StoreError::Conflict(Conflict::MessageDeleted));
        }
        let conversation = message.member().conversation();
        with_writer!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            // The first write takes the conversation lock (see `Dialect::LOCK_CONVERSATION`).
            let sql = sqlx::AssertSqlSafe(format!(
                "UPDATE messages SET content = $3, edited_at = $4
                 WHERE conversation_id = $1 AND id = $2 AND deleted_at IS NULL AND {lock}",
                lock = pool.lock_conversation()
            ));
            let updated = sqlx::query(sql)
                .bind(conversation)
                .bind(message.id())
                .bind(content)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            if updated.rows_affected() == 0 {
                // Deleted for everyone since the gate read it.
                return Err(StoreError::Conflict(Conflict::MessageDeleted));
            }
            require_participant!(tx, conversation, message.member().user())?;
            let mut edited: Message = sqlx::query_as::<_, MessageRow>(concat!(select_messages!(), " WHERE m.id = $1"))
                .bind(message.id())
                .fetch_one(&mut *tx)
                .await?
                .into();
            attach_files!(&mut *tx, std::slice::from_mut(&mut edited))?;
            let read_positions: Vec<(Uuid, i64)> =
                sqlx::query_as("SELECT user_id, last_read_seq FROM participants WHERE conversation_id = $1")
                    .bind(conversation)
                    .fetch_all(&mut *tx)
                    .await?;
            rewrite_events_showing!(tx, std::slice::from_ref(&edited), rewrite)?;
            let mut events = events(&edited, &read_positions);
            let (editor, id) = (message.member().user(), message.id());
            if let Some(partner) = withheld_partner!(tx, conversation, editor, id, WITHHELD_MESSAGE)? {
                events = withheld_from(events, partner, editor);
            }
            commit_with_events!(self, tx, events, now)?;
            Ok((edited, read_positions))
        })
    }

    /// Stars the caller's view of the message, or unstars it if starred; the new state, with
    /// the events `events` gives for it.
    pub async fn toggle_star(
        &self,
        message: &VisibleMessage,
        now: DateTime<Utc>,
        events: impl Fn(Uuid, bool) -> Vec<NewEvent>,
    ) -> StoreResult<bool> {
        let user = message.member().user();
        with_writer!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            require_participant!(tx, message.member().conversation(), user)?;
            let removed = sqlx::query("DELETE FROM starred_messages WHERE user_id = $1 AND message_id = $2")
                .bind(user)
                .bind(message.id())
                .execute(&mut *tx)
                .await?;
            let starred = removed.rows_affected() == 0;
            if starred {
                sqlx::query("INSERT INTO starred_messages (user_id, message_id, starred_at) VALUES ($1, $2, $3)")
                    .bind(user)
                    .bind(message.id())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            commit_with_events!(self, tx, events(message.member().conversation(), starred), now)?;
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
            Ok(sqlx::query_as::<_, StarredRow>(concat!(
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
            .await?)
        })?;
        let (messages, starred_at): (Vec<Message>, Vec<DateTime<Utc>>) = rows
            .into_iter()
            .map(|row| (Message::from(row.message), row.starred_at))
            .unzip();
        let messages = self.with_attachments(messages).await?;
        Ok(messages.into_iter().zip(starred_at).collect())
    }

    /// `messages` with their attachments loaded.
    pub(super) async fn with_attachments(&self, mut messages: Vec<Message>) -> StoreResult<Vec<Message>> {
        with_backend!(self, |pool| attach_files!(pool, &mut messages))?;
        Ok(messages)
    }

    /// Deletes messages `ids` of the member's conversation for them (scope `Me`: hidden for
    /// them) or for everyone (scope `All`: tombstones; the sender's own, or any as the group's
    /// owner), with the events `events` gives. `Invalid` for a message not in the
    /// conversation, `Forbidden` for another's message with `All`. Deleting for everyone also
    /// rewrites the stored events that showed the text (`rewrite`).
    pub async fn delete_messages(
        &self,
        member: &Member,
        ids: &[Uuid],
        scope: DeleteScope,
        now: DateTime<Utc>,
        rewrite: PayloadRewrite,
        events: impl Fn(&[Uuid]) -> Vec<NewEvent>,
    ) -> StoreResult<()> {
        member.require_can_act()?;
        let (conversation, caller) = (member.conversation(), member.user());
        let found: Vec<(Uuid, Uuid, i64)> = with_backend!(self, |pool| {
            let mut builder =
                sqlx::QueryBuilder::new("SELECT id, sender_id, seq FROM messages WHERE conversation_id = ");
            builder.push_bind(conversation);
            builder.push(" AND id IN ");
            push_ids(&mut builder, ids.iter().copied());
            Ok(builder.build_query_as().fetch_all(pool).await?)
        })?;
        let unknown: Vec<Uuid> = ids
            .iter()
            .filter(|id| !found.iter().any(|(found, _, _)| found == *id))
            .copied()
            .collect();
        if !unknown.is_empty() {
            return Err(StoreError::Invalid(Invalid::ForeignMessages(unknown)));
        }
        if scope == DeleteScope::All && !member.is_owner() && found.iter().any(|(_, sender, _)| *sender != caller) {
            return Err(StoreError::Forbidden(Forbidden::NotTheSenderOrOwner));
        }
        with_writer!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            // Before any write: the conversation lock (see `Dialect::LOCK_CONVERSATION`).
            lock_conversation!(tx, pool, conversation)?;
            require_participant!(tx, conversation, caller)?;
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
                        // The URLs it pointed at go with its text (its files stay their
                        // uploader's, unreachable for the others).
                        sqlx::query("DELETE FROM message_links WHERE message_id = $1")
                            .bind(id)
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
            if scope == DeleteScope::All {
                let mut builder = sqlx::QueryBuilder::new(concat!(select_messages!(), " WHERE m.id IN "));
                push_ids(&mut builder, found.iter().map(|(id, _, _)| *id));
                let tombstones: Vec<MessageRow> = builder.build_query_as().fetch_all(&mut *tx).await?;
                let tombstones: Vec<Message> = tombstones.into_iter().map(Message::from).collect();
                rewrite_events_showing!(tx, &tombstones, rewrite)?;
            }
            let events_for = &events;
            let mut events = events_for(ids);
            // In a direct conversation the partner is told only of the messages they saw.
            let partner = match scope {
                DeleteScope::All => withheld_partner!(tx, conversation, caller, "TRUE")?,
                DeleteScope::Me => None,
            };
            if let Some(partner) = partner {
                let mut builder = sqlx::QueryBuilder::new("SELECT message_id FROM hidden_messages WHERE user_id = ");
                builder.push_bind(partner);
                builder.push(" AND message_id IN ");
                push_ids(&mut builder, ids.iter().copied());
                let unseen: Vec<Uuid> = builder.build_query_scalar().fetch_all(&mut *tx).await?;
                if !unseen.is_empty() {
                    events = withheld_from(events, partner, caller);
                    let seen: Vec<Uuid> = ids.iter().filter(|id| !unseen.contains(id)).copied().collect();
                    if !seen.is_empty() {
                        events.extend(addressed_to(events_for(&seen), partner));
                    }
                }
            }
            commit_with_events!(self, tx, events, now)
        })
    }

    async fn find_by_client_id(&self, new: &NewMessage, client_id: &str) -> StoreResult<Option<Message>> {
        let row = with_backend!(self, |pool| {
            Ok(sqlx::query_as::<_, MessageRow>(concat!(
                select_messages!(),
                " WHERE m.conversation_id = $1 AND m.sender_id = $2 AND m.client_id = $3"
            ))
            .bind(new.conversation_id)
            .bind(new.sender_id)
            .bind(client_id)
            .fetch_optional(pool)
            .await?)
        })?;
        Ok(self
            .with_attachments(row.map(Message::from).into_iter().collect())
            .await?
            .pop())
    }

    /// A page of the member's conversation: newest first, or oldest first when `page.after`
    /// is set. `Invalid` for a cursor that is not a message of this conversation.
    pub async fn list_messages(&self, member: &Member, page: MessagePage) -> StoreResult<Vec<Message>> {
        let conversation = member.conversation();
        let before = match page.before {
            Some(id) => self.message_seq(conversation, id, MessageReference::Before).await?,
            None => i64::MAX,
        };
        let after = match page.after {
            Some(id) => self.message_seq(conversation, id, MessageReference::After).await?,
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
            Ok(sqlx::query_as::<_, MessageRow>(sql)
                .bind(conversation)
                .bind(before)
                .bind(after)
                .bind(i64::from(page.limit))
                .bind(member.user())
                .fetch_all(pool)
                .await?)
        })?;
        self.with_attachments(rows.into_iter().map(Message::from).collect())
            .await
    }

    /// The position of `message` in `conversation`; `Invalid` (about `reference`) when it is
    /// not a message of that conversation.
    pub(super) async fn message_seq(
        &self,
        conversation: Uuid,
        message: Uuid,
        reference: MessageReference,
    ) -> StoreResult<i64> {
        let seq = with_backend!(self, |pool| {
            Ok(
                sqlx::query_scalar::<_, i64>("SELECT seq FROM messages WHERE id = $1 AND conversation_id = $2")
                    .bind(message)
                    .bind(conversation)
                    .fetch_optional(pool)
                    .await?,
            )
        })?;
        seq.ok_or(StoreError::Invalid(Invalid::ForeignMessage(reference)))
    }

    /// The messages `ids`, in that order.
    pub(super) async fn messages_in_order(&self, ids: &[Uuid]) -> StoreResult<Vec<Message>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<MessageRow> = with_backend!(self, |pool| {
            let mut builder = sqlx::QueryBuilder::new(concat!(select_messages!(), " WHERE m.id IN "));
            push_ids(&mut builder, ids.iter().copied());
            Ok(builder.build_query_as().fetch_all(pool).await?)
        })?;
        let mut by_id: std::collections::HashMap<Uuid, Message> =
            rows.into_iter().map(|row| (row.id, Message::from(row))).collect();
        self.with_attachments(ids.iter().filter_map(|id| by_id.remove(id)).collect())
            .await
    }
}

#[derive(sqlx::FromRow)]
struct StarredRow {
    starred_at: DateTime<Utc>,
    #[sqlx(flatten)]
    message: MessageRow,
}
