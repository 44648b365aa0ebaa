//! Conversations and their participants.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{
    Conversation, ConversationCursor, ConversationKind, ConversationRow, Dialect, NewEvent, NewGroup, ParticipantRow,
    Store, StoreError, StoreResult, User, commit_with_events, with_backend, with_writer,
};

/// A conversation as participant `$1` sees it, with its last message.
macro_rules! select_conversations {
    () => {
        "SELECT c.id, c.kind, c.name, c.owner_id, c.last_seq, p.last_read_seq, c.created_at, c.updated_at,
                m.id AS last_message_id, m.seq AS last_message_seq, m.sender_id AS last_message_sender_id,
                u.name AS last_message_sender_name, m.content AS last_message_content,
                m.client_id AS last_message_client_id, m.created_at AS last_message_created_at
         FROM participants p
         JOIN conversations c ON c.id = p.conversation_id
         LEFT JOIN messages m ON m.id = c.last_message_id
         LEFT JOIN users u ON u.id = m.sender_id
         WHERE p.user_id = $1"
    };
}

/// Loads users by id inside a transaction (`$tx`), ordered by id, as the participant lists are.
macro_rules! users_by_id {
    ($tx:ident, $ids:expr) => {{
        let mut builder =
            sqlx::QueryBuilder::new("SELECT id, name, email, created_at, updated_at FROM users WHERE id IN (");
        let mut list = builder.separated(", ");
        for id in $ids {
            list.push_bind(id);
        }
        builder.push(") ORDER BY id");
        let users: Vec<User> = builder.build_query_as().fetch_all(&mut *$tx).await?;
        users
    }};
}

/// A conversation that was just created: no messages, nothing unread.
fn new_conversation(
    id: Uuid,
    kind: ConversationKind,
    name: Option<String>,
    owner_id: Option<Uuid>,
    participants: Vec<User>,
    now: DateTime<Utc>,
) -> Conversation {
    Conversation {
        id,
        kind,
        name,
        owner_id,
        participants,
        last_message: None,
        unread_count: 0,
        created_at: now,
        updated_at: now,
    }
}

impl Store {
    /// The direct conversation of `caller` and `other`, created if the pair has none.
    /// Returns it and whether it was created; `events` gives the events a creation appends.
    /// One per pair, also under concurrent requests: the unique `direct_key` decides, and the
    /// loser of a race reads the winner's row.
    pub async fn find_or_create_direct_conversation(
        &self,
        caller: Uuid,
        other: Uuid,
        id: Uuid,
        now: DateTime<Utc>,
        events: impl Fn(&Conversation) -> Vec<NewEvent>,
    ) -> StoreResult<(Conversation, bool)> {
        let (low, high) = if caller < other {
            (caller, other)
        } else {
            (other, caller)
        };
        let direct_key = format!("{low}:{high}");
        let created = with_writer!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let inserted: Option<Uuid> = sqlx::query_scalar(
                "INSERT INTO conversations (id, kind, direct_key, created_at, updated_at)
                 VALUES ($1, 'direct', $2, $3, $3)
                 ON CONFLICT (direct_key) DO NOTHING
                 RETURNING id",
            )
            .bind(id)
            .bind(&direct_key)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            if inserted.is_none() {
                tx.rollback().await?;
                None
            } else {
                for user in [low, high] {
                    sqlx::query(
                        "INSERT INTO participants (conversation_id, user_id, role, joined_at)
                         VALUES ($1, $2, 'member', $3)",
                    )
                    .bind(id)
                    .bind(user)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                let participants = users_by_id!(tx, [low, high]);
                let conversation = new_conversation(id, ConversationKind::Direct, None, None, participants, now);
                commit_with_events!(self, tx, events(&conversation), now);
                Some(conversation)
            }
        });
        if let Some(conversation) = created {
            return Ok((conversation, true));
        }
        let existing: Uuid = with_backend!(self, |pool| {
            sqlx::query_scalar("SELECT id FROM conversations WHERE direct_key = $1")
                .bind(&direct_key)
                .fetch_one(pool)
                .await?
        });
        let conversation = self
            .find_conversation(caller, existing)
            .await?
            .ok_or(StoreError::NotFound("conversation"))?;
        Ok((conversation, false))
    }

    /// Creates a group owned by `group.owner_id`, with its members, in one transaction, with
    /// the events `events` gives. Every member must exist (`Invalid` on `participants`).
    pub async fn create_group(
        &self,
        group: &NewGroup,
        events: impl Fn(&Conversation) -> Vec<NewEvent>,
    ) -> StoreResult<Conversation> {
        with_writer!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let everyone = std::iter::once(group.owner_id).chain(group.members.iter().copied());
            let participants = users_by_id!(tx, everyone);
            let unknown: Vec<String> = group
                .members
                .iter()
                .filter(|member| !participants.iter().any(|user| user.id == **member))
                .map(Uuid::to_string)
                .collect();
            if !unknown.is_empty() {
                return Err(StoreError::Invalid {
                    field: "participants",
                    problem: format!("unknown user id(s): {}", unknown.join(", ")),
                });
            }
            sqlx::query(
                "INSERT INTO conversations (id, kind, name, owner_id, created_at, updated_at)
                 VALUES ($1, 'group', $2, $3, $4, $4)",
            )
            .bind(group.id)
            .bind(&group.name)
            .bind(group.owner_id)
            .bind(group.created_at)
            .execute(&mut *tx)
            .await?;
            for user in &participants {
                let role = if user.id == group.owner_id { "owner" } else { "member" };
                sqlx::query(
                    "INSERT INTO participants (conversation_id, user_id, role, joined_at) VALUES ($1, $2, $3, $4)",
                )
                .bind(group.id)
                .bind(user.id)
                .bind(role)
                .bind(group.created_at)
                .execute(&mut *tx)
                .await?;
            }
            let conversation = new_conversation(
                group.id,
                ConversationKind::Group,
                Some(group.name.clone()),
                Some(group.owner_id),
                participants,
                group.created_at,
            );
            commit_with_events!(self, tx, events(&conversation), group.created_at);
            Ok(conversation)
        })
    }

    /// One conversation as `caller` sees it; `None` when it does not exist or `caller` is
    /// not a participant (the two are deliberately indistinguishable).
    pub async fn find_conversation(&self, caller: Uuid, id: Uuid) -> StoreResult<Option<Conversation>> {
        let row = with_backend!(self, |pool| {
            sqlx::query_as::<_, ConversationRow>(concat!(select_conversations!(), " AND c.id = $2"))
                .bind(caller)
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        match row {
            None => Ok(None),
            Some(row) => Ok(self.with_participants(vec![row]).await?.pop()),
        }
    }

    /// The caller's conversations, most recent activity first, `limit` of them after `cursor`.
    pub async fn list_conversations(
        &self,
        caller: Uuid,
        limit: u32,
        cursor: Option<ConversationCursor>,
    ) -> StoreResult<Vec<Conversation>> {
        let rows = with_backend!(self, |pool| {
            sqlx::query_as::<_, ConversationRow>(concat!(
                select_conversations!(),
                " AND ($2 IS NULL OR (c.updated_at, c.id) < ($2, $3))
                  ORDER BY c.updated_at DESC, c.id DESC
                  LIMIT $4"
            ))
            .bind(caller)
            .bind(cursor.map(|cursor| cursor.updated_at))
            .bind(cursor.map(|cursor| cursor.id))
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?
        });
        self.with_participants(rows).await
    }

    /// Is `user` a participant of `conversation`?
    pub async fn is_participant(&self, conversation: Uuid, user: Uuid) -> StoreResult<bool> {
        let found = with_backend!(self, |pool| {
            sqlx::query_scalar::<_, i32>("SELECT 1 FROM participants WHERE conversation_id = $1 AND user_id = $2")
                .bind(conversation)
                .bind(user)
                .fetch_optional(pool)
                .await?
        });
        Ok(found.is_some())
    }

    /// Loads the participants of all `rows` with one query and assembles the conversations.
    async fn with_participants(&self, rows: Vec<ConversationRow>) -> StoreResult<Vec<Conversation>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let participants: Vec<ParticipantRow> = with_backend!(self, |pool| {
            let mut builder = sqlx::QueryBuilder::new(
                "SELECT p.conversation_id, u.id, u.name, u.email, u.created_at, u.updated_at
                 FROM participants p JOIN users u ON u.id = p.user_id
                 WHERE p.conversation_id IN (",
            );
            let mut list = builder.separated(", ");
            for row in &rows {
                list.push_bind(row.id);
            }
            builder.push(") ORDER BY p.joined_at, u.id");
            builder.build_query_as().fetch_all(pool).await?
        });
        let mut by_conversation: HashMap<Uuid, Vec<User>> = HashMap::new();
        for participant in participants {
            by_conversation
                .entry(participant.conversation_id)
                .or_default()
                .push(participant.user);
        }
        Ok(rows
            .into_iter()
            .map(|row| {
                let members = by_conversation.remove(&row.id).unwrap_or_default();
                row.into_conversation(members)
            })
            .collect())
    }
}
